"""The log cannot be forged and ferryd keeps an audit trail (issue 11,
defect 3; docs/DESIGN.md "The audit trail").

Peer-chosen text (a message type, a key name, a path, a command line) is
escaped in the log, so a type of "x\\nferryd: authenticated ..." stays one
line, on the session address and on the unauthenticated classic address.
Sessions, commands and file operations each leave one "audit:" line of
key=value pairs, which the parser here (the grammar DESIGN.md gives) reads
back field by field.  Under systemd (JOURNAL_STREAM names stderr) each
line starts with its priority."""
import os
import re
import socket
import struct
import subprocess
import json
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ferrytest as ft  # noqa: E402
from ferrytest import SLOW  # noqa: E402

SANITIZER_RX = re.compile(r"Sanitizer|runtime error:|LeakSanitizer")
FORGED = "ferryd: authenticated with key 'root'"
PAIR = r'(\w+)=("(?:[^"\\]|\\.)*"|[^\s"]+)'
PAIRS_RX = re.compile(r"%s(?: %s)*" % (PAIR, PAIR))
PAIR_RX = re.compile(PAIR)
WORD_RX = re.compile(r'"(?:[^"\\]|\\.)*"|[^\s"]+')
ESC_RX = re.compile(r'\\(x[0-9a-f]{2}|[\\"nrt])')


def unescape(value):
    """A value as written (quoted or not) -> the original, as a str whose
    undecodable bytes are surrogate escapes (os.fsdecode's way)."""
    if not value.startswith('"'):
        return value
    out, pos, inner = bytearray(), 0, value[1:-1]
    for m in ESC_RX.finditer(inner):
        out += inner[pos:m.start()].encode()
        e = m.group(1)
        out += bytes([int(e[1:], 16)]) if e[0] == "x" else \
            {"\\": b"\\", '"': b'"', "n": b"\n", "r": b"\r", "t": b"\t"}[e]
        pos = m.end()
    out += inner[pos:].encode()
    return out.decode("utf-8", "surrogateescape")


def parse_audit(line):
    """The fields of an audit line; fails unless the whole line parses."""
    rest = line.split(" audit: ", 1)[1]
    if not PAIRS_RX.fullmatch(rest):
        raise AssertionError("audit line does not parse: %r" % line)
    return {k: unescape(v) for k, v in PAIR_RX.findall(rest)}


def _listening_port(pid):
    """The TCP port pid listens on (from /proc), or None."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            t = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if t.startswith("socket:["):
            inodes.add(t[8:-1])
    with open("/proc/%d/net/tcp" % pid) as f:
        for row in f.readlines()[1:]:
            cols = row.split()
            if cols[3] == "0A" and cols[9] in inodes:
                return int(cols[1].split(":")[1], 16)
    return None


def words(argv_value):
    return [unescape(w) for w in WORD_RX.findall(argv_value)]


class AuditTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="ferry-audit-")
        cls.key_path = os.path.join(cls.tmp.name, "key")
        cls.key = ft.write_key(cls.key_path)
        cls.root = os.path.join(cls.tmp.name, "root")
        os.mkdir(cls.root)
        cls.srv = ft.start_ferryd("--root", cls.root, "--classic", "127.0.0.1:0",
                                  key_path=cls.key_path, plaintext=True, endpoints=2)
        addr = cls.srv.wait_for_log(r"classic protocol on (\S+): UNAUTHENTICATED").group(1)
        host, _, port = addr.rpartition(":")
        cls.classic = (host, int(port))
        cls.main_addr = [a for _, a in cls.srv.endpoints if a != addr][0]
        host, _, port = cls.main_addr.rpartition(":")
        cls.hostport = (host, int(port))

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        cls.tmp.cleanup()
        bad = [line for line in cls.srv.log if SANITIZER_RX.search(line)]
        if bad:
            raise AssertionError("sanitizer report from ferryd:\n" + "\n".join(cls.srv.log[-60:]))

    def session(self, login=True):
        s = ft.Session(self.hostport, key=self.key if login else None)
        self.addCleanup(s.close)
        return s

    def audit(self, event, peer, start=0, **fields):
        """The parsed audit line of this event and peer (and fields)."""
        rx = r" audit: event=%s peer=%s " % (event, re.escape(peer))
        rx += "".join(r"(?=.* %s=%s\b)" % (k, re.escape(v)) for k, v in fields.items())
        return parse_audit(self.srv.wait_for_log(rx, start=start).string)

    def lines_with(self, text, start=0):
        return [line for line in self.srv.log[start:] if text in line]

    @staticmethod
    def peer(sock):
        return "%s:%d" % sock.getsockname()

    # -- forging ----------------------------------------------------------------------

    def test_forged_type_is_one_escaped_line(self):
        mark = len(self.srv.log)
        s = self.session()
        s.send({"type": "x\n" + FORGED})
        h, _ = s.recv()
        self.assertEqual(h["code"], "protocol")
        line = self.srv.wait_for_log(r"protocol error: unknown message type", start=mark).string
        self.assertIn("x\\n" + FORGED, line)
        # exactly one line holds the forged text, and it is not a line of its own
        self.assertEqual(self.lines_with(FORGED, mark), [line])
        self.assertFalse(any(l.startswith(FORGED) for l in self.srv.log))

    def test_forged_hello_before_auth(self):
        mark = len(self.srv.log)
        s = self.session(login=False)
        s.send({"type": "x\n" + FORGED})
        h, _ = s.recv()
        self.assertEqual(h["code"], "protocol")
        a = self.audit("session", self.peer(s.sock), start=mark, result="denied")
        self.assertEqual(a["reason"], "expected a hello message first")
        self.assertEqual(self.lines_with(FORGED, mark), [])

    def test_forged_on_classic_address(self):
        mark = len(self.srv.log)
        # an upload header whose cmd is the forgery
        with socket.create_connection(self.classic, timeout=10 * SLOW) as c:
            head = json.dumps({"cmd": "x\n" + FORGED, "filename": "f", "filesize": 0}).encode()
            c.sendall(struct.pack("<i", len(head)) + head)
            line = self.srv.wait_for_log(r"classic .*: ignoring cmd", start=mark).string
        self.assertIn('"x\\n' + FORGED + '"', line)
        self.assertEqual(self.lines_with(FORGED, mark), [line])
        # a command line whose second line is the forgery
        mark = len(self.srv.log)
        with socket.create_connection(self.classic, timeout=10 * SLOW) as c:
            c.sendall(("true\n" + FORGED).encode())
            a = self.audit("exec", self.peer(c), start=mark)
        self.assertEqual(a["listener"], "classic")
        self.assertEqual(a["shell"], "true\n" + FORGED)
        self.assertEqual(len(self.lines_with(FORGED, mark)), 1)

    def test_control_bytes_and_invalid_utf8_are_escaped(self):
        mark = len(self.srv.log)
        cmd = b"true \xff\xfe \x1b[31m \x01 \xc2\x85 caf\xc3\xa9"
        with socket.create_connection(self.classic, timeout=10 * SLOW) as c:
            c.sendall(cmd)
            line = self.srv.wait_for_log(r" audit: event=exec peer=%s " % re.escape(self.peer(c)),
                                         start=mark).string
        self.assertIn(r"true \xff\xfe \x1b[31m \x01 \xc2\x85 caf" + "\u00e9", line)
        self.assertIsNone(re.search(r"[\x00-\x1f\x7f\x80-\x9f]", line))
        self.assertEqual(os.fsencode(parse_audit(line)["shell"]), cmd)

    # -- the trail --------------------------------------------------------------------

    def test_session_lines(self):
        s = self.session()
        a = self.audit("session", self.peer(s.sock))
        self.assertEqual((a["listener"], a["result"], a["auth"], a["key"]),
                         ("main", "ok", "hmac", "ferry"))
        self.assertNotIn("reason", a)
        # a wrong key: denied, and why
        s = self.session(login=False)
        s.hello()
        s.send(s.auth_message(b"\x01" * 32))
        self.assertEqual(s.recv()[0]["code"], "auth")
        a = self.audit("session", self.peer(s.sock), result="denied")
        self.assertEqual((a["key"], a["reason"]), ("ferry", "wrong proof"))
        # an unknown name with a newline in it
        s = self.session(login=False)
        s.hello()
        s.send(s.auth_message(self.key, name="ghost\n" + FORGED))
        s.recv()
        a = self.audit("session", self.peer(s.sock), result="denied")
        self.assertEqual(a["reason"], "malformed key name")
        self.assertEqual(a["key"], "ghost\n" + FORGED)
        # one that never authenticates
        s = self.session(login=False)
        peer = self.peer(s.sock)
        s.close()
        a = self.audit("session", peer, result="denied")
        self.assertEqual(a["reason"], "closed before authentication")

    def test_command_lines(self):
        s = self.session()
        cwd = os.path.join(self.root)
        res = s.run({"argv": ["sh", "-c", "exit 3", "two words", 'q"uote'], "cwd": cwd})
        self.assertEqual(res["exit"]["status"], 3)
        a = self.audit("exec", self.peer(s.sock))
        self.assertEqual((a["result"], a["status"], a["cwd"]), ("exit", "3", cwd))
        # every line of an authenticated session says who it is, not only its session line
        self.assertEqual((a["listener"], a["key"]), ("main", "ferry"))
        self.assertEqual(words(a["argv"]), ["sh", "-c", "exit 3", "two words", 'q"uote'])
        self.assertGreaterEqual(int(a["duration_ms"]), 0)
        self.assertGreater(int(a["pid"]), 0)
        mark = len(self.srv.log)
        res = s.run({"shell": "kill -9 $$"})
        self.assertEqual(res["exit"]["signal"], 9)
        a = self.audit("exec", self.peer(s.sock), start=mark)
        self.assertEqual((a["result"], a["signal"], a["shell"]), ("signal", "9", "kill -9 $$"))
        mark = len(self.srv.log)
        res = s.run({"argv": ["/nonexistent/ferry-audit"]})
        a = self.audit("exec", self.peer(s.sock), start=mark)
        self.assertEqual(a["result"], "error")
        self.assertIn("ferry-audit", a["reason"])

    def test_file_lines(self):
        s = self.session()
        peer = self.peer(s.sock)
        self.assertEqual(s.mkdir("audit dir")["type"], "ok")
        a = self.audit("file", peer, op="mkdir")
        self.assertEqual((a["result"], a["path"], a["key"]), ("ok", "audit dir", "ferry"))
        data = b"audited bytes\n" * 100
        ready, end = s.put("audit dir/file one.txt", data)
        self.assertEqual(end["type"], "put-ok")
        a = self.audit("file", peer, op="put")
        self.assertEqual((a["result"], a["bytes"], a["path"]),
                         ("ok", str(len(data)), "audit dir/file one.txt"))
        # a refused path is still recorded, escaped, as the client sent it
        mark = len(self.srv.log)
        bad = "x\x01\n" + FORGED
        ready, _ = s.put(bad, data)
        self.assertEqual(ready["code"], "path")
        a = self.audit("file", peer, start=mark, op="put")
        self.assertEqual((a["result"], a["path"], a["reason"]),
                         ("error", bad, "control character in path"))
        self.assertEqual(len(self.lines_with(FORGED, mark)), 1)
        mark = len(self.srv.log)
        self.assertEqual(s.rm("audit dir/missing")["type"], "error")
        a = self.audit("file", peer, start=mark, op="rm")
        self.assertEqual((a["result"], a["path"]), ("error", "audit dir/missing"))
        self.assertIn("No such file", a["reason"])

    def test_tls_sessions(self):
        srv = ft.start_ferryd("--root", self.root, key_path=self.key_path)
        self.addCleanup(srv.stop_quietly)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.tmp.name}
        env.update(ft.sanitizer_env())

        def ferry(*args):
            return subprocess.run([ft.binary("ferry"), "exec", "-k", self.key_path, *args,
                                   srv.addr(), "true"], env=env, capture_output=True,
                                  timeout=30 * SLOW)
        # refused by TLS itself, before ferryd's session service sees it
        self.assertEqual(ferry("--key-name", "mallory").returncode, 255)
        line = srv.wait_for_log(r" audit: event=session .*result=denied auth=tls").string
        # the library cannot tell an unknown name from a wrong key (ferryd
        # answers an unknown name with a stand-in key: no oracle)
        self.assertIn("a wrong key for the name 'mallory', or no such name",
                      parse_audit(line)["reason"])
        mark = len(srv.log)
        self.assertEqual(ferry().returncode, 0)
        a = parse_audit(srv.wait_for_log(r" audit: event=session .*result=ok", start=mark).string)
        self.assertEqual((a["auth"], a["key"]), ("tls-psk", "ferry"))
        a = parse_audit(srv.wait_for_log(r" audit: event=exec ", start=mark).string)
        self.assertEqual((a["result"], a["status"], a.get("shell", a.get("argv"))), ("exit", "0", "true"))
        self.assertEqual(a["key"], "ferry")

    def test_interrupted_and_abandoned_puts(self):
        s = self.session()
        peer = self.peer(s.sock)
        self.assertEqual(s.put_begin("abandoned.txt", 10)["type"], "put-ready")
        s.send_data(b"12345", 0)
        s.put_end(abort=True)
        self.assertEqual(s.recv()[0]["type"], "error")
        a = self.audit("file", peer, op="put", result="abandoned")
        self.assertEqual((a["path"], a["bytes"]), ("abandoned.txt", "5"))
        self.assertEqual(s.put_begin("cut.txt", 10)["type"], "put-ready")
        s.send_data(b"1234", 0)
        s.close()
        a = self.audit("file", peer, op="put", result="interrupted")
        self.assertEqual(a["path"], "cut.txt")

    def test_classic_upload_line(self):
        mark = len(self.srv.log)
        data = b"classic upload\n" * 10
        with socket.create_connection(self.classic, timeout=10 * SLOW) as c:
            head = json.dumps({"cmd": "put", "filename": "classic up.txt",
                               "filesize": len(data)}).encode()
            c.sendall(struct.pack("<i", len(head)) + head + data)
            peer = self.peer(c)
            a = self.audit("file", peer, start=mark, op="put")
        self.assertEqual((a["listener"], a["result"], a["bytes"], a["path"]),
                         ("classic", "ok", str(len(data)), "classic up.txt"))
        self.assertNotIn("key", a)   # the classic protocol has no keys
        a = self.audit("session", peer, start=mark)
        self.assertEqual((a["listener"], a["result"], a["auth"]), ("classic", "ok", "none"))

    def test_fork_model_and_auth_timeout(self):
        srv = ft.start_ferryd("--root", self.root, "--model", "fork", "--auth-timeout", "1",
                             key_path=self.key_path, plaintext=True)
        self.addCleanup(srv.stop_quietly)
        s = ft.Session(srv.hostport(), key=self.key)
        self.addCleanup(s.close)
        peer = self.peer(s.sock)
        self.assertEqual(s.run({"argv": ["sh", "-c", "exit 7"]})["exit"]["status"], 7)
        s.put("fork.txt", b"x" * 1000)
        for event, fields in (("session", {"result": "ok"}), ("exec", {"status": "7"}),
                              ("file", {"op": "put", "bytes": "1000"})):
            line = srv.wait_for_log(r" audit: event=%s peer=%s " % (event, re.escape(peer))).string
            a = parse_audit(line)
            for k, v in fields.items():
                self.assertEqual(a[k], v, line)
        # a peer that never says hello is denied when its time is up
        quiet = ft.Session(srv.hostport())
        self.addCleanup(quiet.close)
        line = srv.wait_for_log(r" audit: event=session peer=%s "
                                % re.escape(self.peer(quiet.sock)), timeout=10).string
        self.assertEqual(parse_audit(line)["reason"], "not authenticated in time")

    def test_no_audit(self):
        srv = ft.start_ferryd("--root", self.root, "--no-audit", key_path=self.key_path,
                              plaintext=True)
        self.addCleanup(srv.stop_quietly)
        s = ft.Session(srv.hostport(), key=self.key)
        self.addCleanup(s.close)
        self.assertEqual(s.run({"argv": ["true"]})["exit"]["status"], 0)
        s.close()
        srv.stop()
        self.assertEqual([l for l in srv.log if " audit: " in l], [])

    def test_quiet_keeps_the_trail(self):
        srv = ft.start_ferryd("--root", self.root, "-q", key_path=self.key_path, plaintext=True,
                              endpoints=0)
        self.addCleanup(srv.stop_quietly)
        # -q hides the "listening on" line itself: find the port another way
        port = ft.wait_until(lambda: _listening_port(srv.pid), 10, "ferryd's listening socket")
        s = ft.Session(("127.0.0.1", port), key=self.key)
        self.addCleanup(s.close)
        srv.wait_for_log(r" audit: event=session peer=%s " % re.escape(self.peer(s.sock)))

    def test_journal_priority_prefix(self):
        def journal_stream():
            st = os.fstat(2)
            os.environ["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino)
        srv = ft.start_ferryd("--root", self.root, key_path=self.key_path, plaintext=True,
                              preexec_fn=journal_stream)
        self.addCleanup(srv.stop_quietly)
        self.assertTrue(srv.log[0].startswith("<"), srv.log[0])
        host, port = srv.hostport()
        s = ft.Session((host, port), key=self.key)
        self.addCleanup(s.close)
        line = srv.wait_for_log(r"audit: event=session").string
        self.assertTrue(line.startswith("<5>ferryd["), line)
        self.assertTrue(any(l.startswith("<6>ferryd[") and " info: listening on " in l
                            for l in srv.log))


if __name__ == "__main__":
    ft.main()
