"""Integration tests for issue 11: ferryd's --keys file gives nothing away
before authentication, and enforces its per-key restrictions.

No oracle: an unknown key name, a known name with a wrong key, and a key
whose from= leaves the client out get byte-identical answers, both over TLS
(the server's bytes, its alert included, recorded by a relay while
`openssl s_client` offers the PSK) and in plaintext (the error frame).

Restrictions (files-only, read-only, command=, root=, from=): each one is
tried from outside with the real `ferry` client and with raw requests
(ferrytest.Session), and a malformed option stops ferryd at start with the
file and line.
"""
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
import unittest

import ferrytest
from test_tls import make_pki
from ferrytest import SLOW, Relay, Session, recv_until_closed, wait_until, write_key

FERRY = ferrytest.binary("ferry")
OPENSSL = shutil.which("openssl")


def write_keys(path, lines):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("# name key [options]\n")
        for line in lines:
            f.write(line + "\n")


class KeysTest(unittest.TestCase):
    """A temp dir with one key per restriction, and a way to run ferry."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = cls.tmp.name
        cls.home = os.path.join(cls.dir, "home")
        cls.root = os.path.join(cls.dir, "root")
        cls.alt = os.path.join(cls.dir, "alt-root")
        for d in (cls.home, cls.root, cls.alt):
            os.mkdir(d)
        cls.keys = {}
        for name in ("alice", "files", "reader", "ci", "backup", "near", "far", "wrong"):
            path = os.path.join(cls.dir, name + ".key")
            cls.keys[name] = (path, write_key(path))
        cls.keys_file = os.path.join(cls.dir, "keys")
        hx = lambda n: cls.keys[n][1].hex()
        write_keys(cls.keys_file, [
            "alice %s" % hx("alice"),
            "files %s files-only" % hx("files"),
            "reader %s read-only" % hx("reader"),
            'ci %s command="echo forced:$FERRY_ORIGINAL_COMMAND:${SNEAK-unset}:$(pwd)"' % hx("ci"),
            "backup %s files-only,root=%s" % (hx("backup"), cls.alt),
            'near %s from="127.0.0.2/32,::1/128"' % hx("near"),
            "far %s from=10.0.0.0/8" % hx("far"),
            "lost %s files-only,root=%s" % (hx("wrong"), os.path.join(cls.dir, "nowhere")),
        ])
        cls.servers = []

    @classmethod
    def tearDownClass(cls):
        bad = []
        for s in cls.servers:
            s.stop()
            bad += [l for l in s.log if "Sanitizer" in l or "runtime error:" in l]
        cls.tmp.cleanup()
        if bad:
            raise AssertionError("sanitizer reports in ferryd's log: %s" % bad[:5])

    @classmethod
    def ferryd(cls, *args):
        s = ferrytest.start_ferryd("--root", cls.root, "--keys", cls.keys_file, *args)
        cls.servers.append(s)
        return s

    def ferry(self, name, cmd, *args, key=None, input=b""):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.home,
               "LANG": "C.UTF-8"}
        env.update(ferrytest.sanitizer_env())
        return subprocess.run([FERRY, cmd, "-k", key or self.keys[name][0], "--key-name", name]
                              + list(args), input=input, capture_output=True, env=env,
                              timeout=30 * SLOW, cwd=self.dir)


class NoOracleTest(KeysTest):
    """Unknown name, wrong key, and from= elsewhere look the same."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tls = cls.ferryd()
        cls.plain = cls.ferryd("--plaintext")
        cls.plain_fork = cls.ferryd("--plaintext", "--model", "fork")

    def tls_answer(self, name, key):
        """The server's bytes to an s_client offering PSK `key` as `name`."""
        relay = Relay(self.tls.hostport(), record=True)
        try:
            subprocess.run([OPENSSL, "s_client", "-connect", relay.addr, "-tls1_3", "-psk",
                            key.hex(), "-psk_identity", name, "-quiet"], input=b"",
                           capture_output=True, timeout=20 * SLOW)
            self.assertTrue(relay.done["down"].wait(10 * SLOW), "the server did not hang up")
            return bytes(relay.seen["down"])
        finally:
            relay.close()

    @unittest.skipUnless(OPENSSL, "openssl command not installed")
    def test_tls_unknown_name_wrong_key_and_from_elsewhere_get_the_same_alert(self):
        wrong = self.keys["wrong"][1]
        known_wrong = self.tls_answer("alice", wrong)
        # A TLS alert record: content type 21, then level 2 (fatal), description.
        self.assertEqual(known_wrong[:6], b"\x15\x03\x03\x00\x02\x02", known_wrong)
        self.assertEqual(len(known_wrong), 7, known_wrong)
        self.assertEqual(self.tls_answer("mallory", wrong), known_wrong)
        self.assertEqual(self.tls_answer("mallory", self.keys["alice"][1]), known_wrong)
        # The right key, but from= leaves 127.0.0.1 out.
        self.assertEqual(self.tls_answer("far", self.keys["far"][1]), known_wrong)
        # The control: the right key gets a ServerHello, not an alert.
        right = self.tls_answer("alice", self.keys["alice"][1])
        self.assertEqual(right[0], 22, right[:8])

    def plain_answer(self, name, key, server=None):
        s = Session((server or self.plain).hostport())
        try:
            s.hello()
            s.send(s.auth_message(key, name=name))
            return recv_until_closed(s.sock)
        finally:
            s.close()

    def test_plaintext_unknown_name_wrong_key_and_from_elsewhere_get_the_same_frame(self):
        wrong = self.keys["wrong"][1]
        known_wrong = self.plain_answer("alice", wrong)
        self.assertIn(b'"code":"auth"', known_wrong)
        for name, key in (("mallory", wrong), ("mallory", self.keys["alice"][1]),
                          ("far", self.keys["far"][1]), ("bad name", wrong), ("x" * 300, wrong)):
            self.assertEqual(self.plain_answer(name, key), known_wrong, name)
        self.plain.wait_for_log(r"unknown key name 'mallory'")
        self.plain.wait_for_log(r"key 'far' is not allowed from this address")
        # The right key under its name is welcome.
        Session(self.plain.hostport()).login(self.keys["alice"][1], name="alice").close()

    def test_plaintext_unknown_name_takes_as_long_as_a_wrong_key(self):
        """Interleaved, so load on the machine hits both alike; the bound is
        loose (a stand-in check costs microseconds, a file read too), but a
        refusal that skipped the file or the HMAC work would show."""
        wrong = self.keys["wrong"][1]
        times = {"alice": [], "mallory": []}
        for _ in range(15):
            for name in times:
                s = Session(self.plain.hostport())
                try:
                    s.hello()
                    t0 = time.monotonic()
                    s.send(s.auth_message(wrong, name=name))
                    recv_until_closed(s.sock)
                    times[name].append(time.monotonic() - t0)
                finally:
                    s.close()
        known, unknown = (statistics.median(times[n]) for n in ("alice", "mallory"))
        self.assertLess(abs(known - unknown), max(0.005, 0.5 * min(known, unknown)),
                        (known, unknown))

    def test_plaintext_fork_model_is_the_same(self):
        wrong = self.keys["wrong"][1]
        known_wrong = self.plain_answer("alice", wrong, self.plain_fork)
        self.assertIn(b'"code":"auth"', known_wrong)
        for name in ("mallory", "mallory", "far"):
            self.assertEqual(self.plain_answer(name, wrong, self.plain_fork), known_wrong)

    def test_the_ferry_client_says_the_same_in_every_case(self):
        wrong = self.keys["wrong"][0]
        outs = [self.ferry(n, "exec", self.tls.addr(), "true", key=k)
                for n, k in (("alice", wrong), ("mallory", wrong), ("far", None))]
        for r in outs:
            self.assertEqual(r.returncode, 255, r.stderr)
        # Word for word, but for the name and the key file the client
        # itself gave.
        said = {r.stderr.replace((k or self.keys[n][0]).encode(), b"FILE").replace(n.encode(), b"NAME")
                for r, (n, k) in zip(outs, (("alice", wrong), ("mallory", wrong), ("far", None)))}
        self.assertEqual(len(said), 1, said)


@unittest.skipUnless(OPENSSL, "openssl command not installed")
class CertificateServerTest(KeysTest):
    """ferryd with a certificate: a client that verifies it (ferry --ca)
    proves its key with the HMAC exchange inside TLS, which must be as
    mute about names as the PSK, and apply the same restrictions."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pki = os.path.join(cls.dir, "pki")
        os.mkdir(cls.pki)
        make_pki(cls.pki)
        cls.server = cls.ferryd("--cert", os.path.join(cls.pki, "server.pem"),
                                "--cert-key", os.path.join(cls.pki, "server.key"))
        cls.host = "localhost:%d" % cls.server.hostport()[1]

    def via_ca(self, name, *args, key=None):
        return self.ferry(name, "exec", "--ca", os.path.join(self.pki, "ca.pem"), self.host,
                          *args, key=key)

    def test_hmac_over_tls_says_the_same_for_every_failure(self):
        r = self.via_ca("alice", "echo", "ok")
        self.assertEqual((r.returncode, r.stdout), (0, b"ok\n"), r.stderr)
        self.server.wait_for_log(r"authenticated with key 'alice' \(HMAC over TLS\)")
        wrong = self.keys["wrong"][0]
        outs = [(n, self.via_ca(n, "true", key=k))
                for n, k in (("alice", wrong), ("mallory", wrong), ("far", None))]
        said = {r.stderr.replace((k or self.keys[n][0]).encode(), b"FILE").replace(n.encode(), b"NAME")
                for (n, r), k in zip(outs, (wrong, wrong, None))}
        self.assertEqual(len(said), 1, said)
        for _, r in outs:
            self.assertEqual(r.returncode, 255)

    def test_restrictions_hold_over_hmac_too(self):
        r = self.via_ca("files", "true")
        self.assertEqual(r.returncode, 255)
        self.assertIn(b"may not run commands", r.stderr)
        r = self.via_ca("ci", "uname")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith(b"forced:uname:"), r.stdout)


class RestrictionsTest(KeysTest):
    """Each option, enforced, with the real client and raw requests."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tls = cls.ferryd()
        cls.plain = cls.ferryd("--plaintext")
        with open(os.path.join(cls.root, "served.txt"), "w") as f:
            f.write("from the root\n")
        with open(os.path.join(cls.alt, "alt.txt"), "w") as f:
            f.write("from the alt root\n")
        cls.local = os.path.join(cls.dir, "local.txt")
        with open(cls.local, "w") as f:
            f.write("local\n")

    def session(self, name, **kw):
        return Session(self.plain.hostport(), **kw).login(self.keys[name][1], name=name)

    def test_unrestricted_key_does_everything(self):
        r = self.ferry("alice", "exec", self.tls.addr(), "echo", "hi")
        self.assertEqual((r.returncode, r.stdout), (0, b"hi\n"), r.stderr)
        r = self.ferry("alice", "put", self.tls.addr(), self.local, "alice.txt")
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_files_only_refuses_exec_and_serves_files(self):
        r = self.ferry("files", "exec", self.tls.addr(), "touch", os.path.join(self.dir, "x"))
        self.assertEqual(r.returncode, 255)
        self.assertIn(b"may not run commands", r.stderr)
        # The shell still serves its file commands, but runs no command
        # (--keep-going: the refused line would end the script).
        r = self.ferry("files", "shell", "--keep-going", self.tls.addr(),
                       input=b"touch %s\nls\n" % os.path.join(self.dir, "x").encode())
        self.assertIn(b"may not run commands", r.stderr)
        self.assertIn(b"served.txt", r.stdout)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "x")))
        r = self.ferry("files", "put", self.tls.addr(), self.local, "files.txt")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.exists(os.path.join(self.root, "files.txt")))
        s = self.session("files")
        mark = len(self.plain.log)
        for req in ({"argv": ["true"]}, {"shell": "true"}):
            res = s.run(req)
            self.assertEqual(res["errors"][0]["code"], "denied", res)
            self.assertIsNone(res["exit"])
        # the audit trail has each refusal, and whose it was
        self.plain.wait_for_log(r"audit: event=exec .* key=files result=denied "
                                r"reason=\"files-only or read-only key\"", start=mark)
        self.assertEqual(s.stat("served.txt")["type"], "stat")   # the session goes on
        # No directory to change, so no names to complete a cd with.
        h = s.request({"type": "cd-names", "path": "/", "prefix": ""})
        self.assertEqual((h["type"], h.get("code")), ("error", "denied"), h)
        s.close()

    def test_read_only_reads_and_refuses_every_change(self):
        r = self.ferry("reader", "get", self.tls.addr(), "served.txt",
                       os.path.join(self.dir, "got.txt"))
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.ferry("reader", "ls", self.tls.addr())
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"served.txt", r.stdout)
        r = self.ferry("reader", "put", self.tls.addr(), self.local, "reader.txt")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"read-only", r.stderr)
        r = self.ferry("reader", "rm", self.tls.addr(), "served.txt")
        self.assertNotEqual(r.returncode, 0)
        r = self.ferry("reader", "exec", self.tls.addr(), "true")
        self.assertEqual(r.returncode, 255)
        s = self.session("reader")
        for req in ({"type": "mkdir", "path": "d"}, {"type": "rm", "path": "served.txt"},
                    {"type": "put", "path": "p.txt", "filesize": 1, "mode": 0o644,
                     "checksum": "xxh3-128"}):
            mark = len(self.plain.log)
            h = s.request(req)
            self.assertEqual((h["type"], h["code"]), ("error", "denied"), (req, h))
            self.plain.wait_for_log(r"audit: event=file .*op=%s result=denied reason=\"read-only "
                                  r"key\" path=%s" % (req["type"], req["path"]), start=mark)
        self.assertEqual(s.run({"argv": ["true"]})["errors"][0]["code"], "denied")
        self.assertEqual(s.get("served.txt")[1], b"from the root\n")
        s.close()
        self.assertTrue(os.path.exists(os.path.join(self.root, "served.txt")))
        for name in ("reader.txt", "d", "p.txt"):
            self.assertFalse(os.path.exists(os.path.join(self.root, name)))

    def test_command_is_forced_with_the_original_in_the_environment(self):
        mark = len(self.tls.log)
        r = self.ferry("ci", "exec", self.tls.addr(), "rm", "-rf", "/tmp/nothing")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith(b"forced:rm -rf /tmp/nothing:unset:"), r.stdout)
        # The audit line has what ran and what the client asked for.
        self.tls.wait_for_log(r'audit: event=exec .*result=exit status=0 .*shell="echo forced:.*" '
                              r'original="rm -rf /tmp/nothing"$', start=mark)
        s = self.session("ci")
        # The client's environment and directory do not reach it.
        res = s.run({"shell": "cat /etc/passwd", "env": {"SNEAK": "in", "BASH_ENV": "/x"},
                     "cwd": self.dir})
        self.assertEqual(res["exit"]["status"], 0, res)
        self.assertTrue(res["out"].startswith(b"forced:cat /etc/passwd:unset:"), res["out"])
        self.assertNotIn(self.dir.encode() + b"\n", res["out"])
        # No file service: that would be a way around the command.
        h = s.stat("served.txt")
        self.assertEqual((h["type"], h["code"]), ("error", "denied"), h)
        s.close()
        r = self.ferry("ci", "put", self.tls.addr(), self.local, "ci.txt")
        self.assertNotEqual(r.returncode, 0)
        self.assertFalse(os.path.exists(os.path.join(self.root, "ci.txt")))

    def test_root_serves_its_own_directory_only(self):
        r = self.ferry("backup", "ls", self.tls.addr())
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"alt.txt", r.stdout)
        self.assertNotIn(b"served.txt", r.stdout)
        r = self.ferry("backup", "put", self.tls.addr(), self.local, "b.txt")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.exists(os.path.join(self.alt, "b.txt")))
        self.assertFalse(os.path.exists(os.path.join(self.root, "b.txt")))
        s = self.session("backup")
        for path in ("../root/served.txt", self.root + "/served.txt"):
            h = s.stat(path)
            self.assertEqual(h["type"], "error", (path, h))
        self.assertEqual(s.get("alt.txt")[1], b"from the alt root\n")
        s.close()

    def test_root_that_does_not_exist_refuses_the_key(self):
        r = self.ferry("lost", "ls", self.tls.addr(), key=self.keys["wrong"][0])
        self.assertEqual(r.returncode, 255)
        self.assertIn(b"authentication failed", r.stderr)
        self.tls.wait_for_log(r"root=%s/nowhere: " % self.dir)

    def test_the_log_names_the_restrictions(self):
        mark = len(self.tls.log)
        r = self.ferry("backup", "ls", self.tls.addr())
        self.assertEqual(r.returncode, 0, r.stderr)
        self.tls.wait_for_log(r"authenticated with key 'backup' .*; restricted: files-only root=",
                              start=mark)

    def test_from_lets_in_only_its_networks(self):
        s = self.session("near", source="127.0.0.2")
        self.assertEqual(s.run({"argv": ["echo", "near"]})["out"], b"near\n")
        s.close()
        with self.assertRaises(ferrytest.ProtoError):
            self.session("near", source="127.0.0.1")
        r = self.ferry("near", "exec", self.tls.addr(), "true")   # from 127.0.0.1
        self.assertEqual(r.returncode, 255)
        self.assertIn(b"authentication failed", r.stderr)
        self.tls.wait_for_log(r"key 'near' is not allowed from this address")


class BrokenKeysFileTest(KeysTest):
    def test_a_keys_file_broken_while_serving_is_not_called_a_wrong_key(self):
        # It is read at every connection; once it cannot be, the client's
        # handshake ends with the server's internal error, which ferry
        # passed on as "tlsv1 alert internal error".
        path = os.path.join(self.dir, "keys-broken")
        write_keys(path, ["alice %s" % self.keys["alice"][1].hex()])
        s = ferrytest.start_ferryd("--root", self.root, "--keys", path)
        self.servers.append(s)
        r = self.ferry("alice", "exec", s.addr(), "true")
        self.assertEqual(r.returncode, 0, r.stderr)
        write_keys(path, ["alice not-a-key"])
        r = self.ferry("alice", "exec", s.addr(), "true")
        self.assertEqual(r.returncode, 255)
        self.assertEqual(r.stderr, ("ferry: TLS handshake with %s failed: the server had an "
                                    "internal error (its log says why; for ferryd, a keys "
                                    "file it cannot read is one)\n" % s.addr()).encode())

    def test_a_name_added_twice_while_serving_is_refused_not_the_first_taken(self):
        # The first line won: a restricted line added below an old one did
        # nothing, and deleting one of two did not revoke the name.
        path = os.path.join(self.dir, "keys-twice")
        alice = "alice %s" % self.keys["alice"][1].hex()
        write_keys(path, [alice, "bob %s" % self.keys["wrong"][1].hex()])
        s = ferrytest.start_ferryd("--root", self.root, "--keys", path)
        self.servers.append(s)
        write_keys(path, [alice, "bob %s" % self.keys["wrong"][1].hex(), alice + " files-only"])
        mark = len(s.log)
        r = self.ferry("alice", "exec", s.addr(), "true")
        self.assertEqual(r.returncode, 255)
        s.wait_for_log(r"keys file %s, line 4: the name 'alice' is on line 2 too \(one line "
                       r"per name\)" % re.escape(path), start=mark)
        write_keys(path, [alice + " files-only"])
        r = self.ferry("alice", "exec", s.addr(), "true")
        self.assertIn(b"may not run commands", r.stderr)


class ParseTest(KeysTest):
    """A bad option stops ferryd at start, naming the file and line."""

    def check_refused(self, line, why):
        path = os.path.join(self.dir, "keys-bad")
        write_keys(path, ["alice %s" % self.keys["alice"][1].hex(), line])
        r = subprocess.run([ferrytest.binary("ferryd"), "--listen", "127.0.0.1:0", "--keys", path],
                           capture_output=True, text=True, timeout=10 * SLOW)
        self.assertEqual(r.returncode, 1, (line, r.stderr))
        self.assertIn("keys file %s, line 3" % path, r.stderr)
        self.assertIn(why, r.stderr)

    def test_malformed_options_are_refused(self):
        k = "bob " + self.keys["wrong"][1].hex()
        for opts, why in (("no-pty", "unknown option 'no-pty'"),
                          ("files-only,", "end of the line expected"),
                          ("files-only,files-only", "given twice"),
                          ("read-only=yes", "takes no value"),
                          ("command", "needs a value"),
                          ('command=""', "empty"),
                          ('command="make', "not closed"),
                          ("command=make deploy", "quote it"),
                          ("root=srv", "not an absolute path"),
                          ("from=127.0.0.1/8", "'127.0.0.1/8'"),
                          ("from=127.0.0.0/33", "'127.0.0.0/33'"),
                          ("from=localhost", "'localhost'"),
                          ("from=127.0.0.1,::1", "option name expected at '::1'"),
                          ("files-only read-only", "end of the line expected")):
            self.check_refused(k + " " + opts, why)

    def test_a_name_given_twice_is_refused(self):
        self.check_refused("alice " + self.keys["wrong"][1].hex(),
                           "the name 'alice' is on line 2 too (one line per name)")

    def test_well_formed_options_are_accepted(self):
        path = os.path.join(self.dir, "keys-good")
        write_keys(path, ['bob %s command="make -C \\"/srv/app\\" deploy",from=127.0.0.0/8 '
                          % self.keys["wrong"][1].hex(),
                          "eve %s files-only,read-only,root=/srv,from=\"::1,10.1.0.0/16\""
                          % self.keys["alice"][1].hex()])
        s = ferrytest.start_ferryd("--root", self.root, "--keys", path)
        try:
            s.wait_for_log(r"keys: .*\(2 keys")
        finally:
            s.stop()


if __name__ == "__main__":
    ferrytest.main()
