"""ferry exec -w / -g: one command on many hosts from one client process
(src/ferry/fleet*.c, hostlist.c; README "Many hosts").  Three real ferryds
listen on 127.0.0.2-4 and a host configuration (-F) names them web01-03;
"dead" is a closed port, "hang" a listening socket that never answers.
Each ferryd passes its own LANG to commands, so a command can tell which
host it runs on (for outputs and statuses that differ by host)."""
import base64
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import unittest

import ferrytest
from ferrytest import SLOW, write_key

FERRY = ferrytest.binary("ferry")


class FleetTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = cls.tmp.name
        cls.key = os.path.join(cls.dir, "key")
        write_key(cls.key)
        cls.servers = []
        conf = []
        for i in range(3):
            env = dict(os.environ, LANG="C.UTF-8@web0%d" % (i + 1))
            s = ferrytest.start_ferryd(key_path=cls.key, listen="127.0.0.%d:0" % (i + 2),
                                       env=env)
            cls.servers.append(s)
            conf.append(ferrytest.host_block("web0%d" % (i + 1), *s.hostport()))
        # A plaintext ferryd: its host's own settings (and a TLS context
        # of its own) beside the others'.
        cls.plain = ferrytest.start_ferryd(key_path=cls.key, listen="127.0.0.7:0",
                                           plaintext=True)
        conf.append(ferrytest.host_block("plain", *cls.plain.hostport(), "Plaintext yes"))
        # Listens, never accepts: the TCP connect succeeds, TLS never answers.
        cls.hang = socket.socket()
        cls.hang.bind(("127.0.0.6", 0))
        cls.hang.listen(8)
        conf.append(ferrytest.host_block("dead", "127.0.0.5",
                                         ferrytest.closed_port("127.0.0.5")))
        conf.append(ferrytest.host_block("hang", "127.0.0.6", cls.hang.getsockname()[1]))
        conf.append("Group web web[01-03]\nGroup odd web01\nGroup odd web03\n")
        cls.conf = ferrytest.write_host_config(os.path.join(cls.dir, "config"), conf)

    @classmethod
    def tearDownClass(cls):
        for s in cls.servers + [cls.plain]:
            s.stop()
        cls.hang.close()
        cls.tmp.cleanup()

    def args(self, *args):
        return [FERRY, "exec", "-k", self.key, "-F", self.conf] + list(args)

    def run_fleet(self, *args, input=None, timeout=20):
        return subprocess.run(self.args(*args), input=input, capture_output=True,
                              stdin=None if input is not None else subprocess.DEVNULL,
                              timeout=timeout * SLOW)

    def lines(self, data):
        return sorted(data.decode().splitlines())

    def test_ranges_and_exclude(self):
        r = self.run_fleet("-w", "web[01-03]", "-x", "web02", "echo", "hi")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.lines(r.stdout), ["web01: hi", "web03: hi"])
        self.assertEqual(r.stderr, b"")
        # several -w, duplicates once
        r = self.run_fleet("-w", "web01", "-w", "web[01-02]", "echo hi")
        self.assertEqual(self.lines(r.stdout), ["web01: hi", "web02: hi"])
        r = self.run_fleet("-w", "web[3-1]", "true")
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"bad range", r.stderr)
        r = self.run_fleet("-w", "h[1-1000000]", "true")
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"more than 65536 hosts", r.stderr)

    def test_each_host_its_own_settings(self):
        r = self.run_fleet("-w", "web01,plain", "echo hi")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.lines(r.stdout), ["plain: hi", "web01: hi"])

    def test_group(self):
        r = self.run_fleet("-g", "web", "-x", "web01", "echo x")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.lines(r.stdout), ["web02: x", "web03: x"])
        r = self.run_fleet("-g", "odd", "echo x")   # two Group lines of one name
        self.assertEqual(self.lines(r.stdout), ["web01: x", "web03: x"])
        r = self.run_fleet("-g", "nosuch", "true")
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"nosuch: no such group", r.stderr)

    def test_prefixes_streams_and_whole_lines(self):
        # Three hosts write 200 long lines each at once, and stderr too.
        script = ("awk 'BEGIN{for(i=0;i<200;i++){s=sprintf(\"%03d\",i); "
                  "for(j=0;j<300;j++) s=s \"abcdefghij\"; print s}}'; echo oops >&2")
        r = self.run_fleet("-g", "web", script)
        self.assertEqual(r.returncode, 0, r.stderr)
        want = ["%03d" % i + "abcdefghij" * 300 for i in range(200)]
        got = {}
        for line in r.stdout.decode().splitlines():
            host, _, text = line.partition(": ")
            got.setdefault(host, []).append(text)
        self.assertEqual(sorted(got), ["web01", "web02", "web03"])
        for host in got:
            self.assertEqual(got[host], want, host)
        self.assertEqual(self.lines(r.stderr), ["web01: oops", "web02: oops", "web03: oops"])

    def test_long_line_cut_and_last_line_ended(self):
        r = self.run_fleet("-w", "web01", "head -c 10000 /dev/zero | tr '\\0' a")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"web01: " + b"a" * 4096 + b"\n" + b"web01: " + b"a" * 4096
                         + b"\n" + b"web01: " + b"a" * 1808 + b"\n")
        # A line of exactly twice the limit: two pieces, and its newline
        # makes no empty third line; an empty line of its own stays.
        r = self.run_fleet("-w", "web01", "head -c 8192 /dev/zero | tr '\\0' a; echo; echo; "
                           "echo next")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, (b"web01: " + b"a" * 4096 + b"\n") * 2 + b"web01: \n"
                         + b"web01: next\n")

    def test_gather(self):
        r = self.run_fleet("-b", "-g", "web",
                           'case $LANG in *web02) echo other;; *) echo same;; esac')
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.decode()
        self.assertIn("---------------\nweb[01,03]\n---------------\nsame\n", out)
        self.assertIn("---------------\nweb02\n---------------\nother\n", out)

    def test_json(self):
        r = self.run_fleet("--json", "-w", "web01,dead",
                           "printf 'ok\\n'; printf '\\377\\n' >&2; exit 3")
        self.assertEqual(r.returncode, 255, r.stderr)
        objs = {}
        for line in r.stdout.decode().splitlines():
            o = json.loads(line)
            objs[o["host"]] = o
        w = objs["web01"]
        self.assertEqual(w["status"], 3)
        self.assertEqual(w["stdout"], "ok\n")
        self.assertIsNone(w["stderr"])
        self.assertEqual(base64.b64decode(w["stderr_base64"]), b"\xff\n")
        self.assertIsNone(w["error"])
        self.assertIsInstance(w["duration"], float)
        d = objs["dead"]
        self.assertEqual(d["status"], 255)
        self.assertIn("cannot connect to dead", d["error"])
        # A name that is not UTF-8 still has its object (it had none, and
        # "out of memory" was said).
        r = self.run_fleet("--json", "-w", "web01,h\udcff", "true")
        self.assertEqual(r.returncode, 255, r.stderr)
        objs = [json.loads(line) for line in r.stdout.decode().splitlines()]
        self.assertEqual(sorted(o["host"] for o in objs), ["h?", "web01"])
        self.assertNotIn(b"out of memory", r.stderr)

    def test_exit_status_rule_and_summary(self):
        r = self.run_fleet("-g", "web", 'case $LANG in *web01) exit 0;; *web02) exit 5;; '
                           '*) exit 3;; esac')
        self.assertEqual(r.returncode, 5, r.stderr)
        self.assertEqual(r.stderr, b"ferry: 2 of 3 hosts failed: exit 3: web03; exit 5: web02\n")
        r = self.run_fleet("-w", "web[01-03],dead", "exit 1")
        self.assertEqual(r.returncode, 255)
        err = r.stderr.decode().splitlines()
        # the host's error once, then the summary
        self.assertEqual(err[0], "ferry: dead: cannot connect to dead: Connection refused")
        self.assertEqual(err[-1], "ferry: 4 of 4 hosts failed: exit 1: web[01-03]; "
                                  "unreachable: dead (connection refused)")
        self.assertEqual(len(err), 2)
        r = self.run_fleet("-g", "web", "true")
        self.assertEqual((r.returncode, r.stderr), (0, b""))
        # --timeout per command, as for one host
        r = self.run_fleet("--timeout", "0.3", "-g", "web",
                           'case $LANG in *web02) sleep 5;; esac')
        self.assertEqual(r.returncode, 124, r.stderr)
        self.assertEqual(r.stderr, b"ferry: 1 of 3 hosts failed: exit 124: web02\n")

    def test_hanging_host_costs_only_its_slot(self):
        p = subprocess.Popen(self.args("--connect-timeout", "1.5", "-f", "2", "-w",
                                       "hang,web[01-03],dead", "echo ok"),
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        try:
            got = sorted(p.stdout.readline() for _ in range(3))
            # every other host is done while hang still holds its slot
            self.assertIsNone(p.poll())
            self.assertEqual(got, [b"web01: ok\n", b"web02: ok\n", b"web03: ok\n"])
            out, err = p.communicate(timeout=20 * SLOW)
            self.assertEqual(p.returncode, 255)
            self.assertIn(b"ferry: hang: ", err)
            self.assertIn(b"within the connect timeout", err)
            self.assertIn(b"unreachable: dead (connection refused)", err)
        finally:
            p.kill()
            p.communicate()

    def test_fanout_one_and_stdin_to_every_host(self):
        r = self.run_fleet("-f", "1", "-g", "web", "cat", input=b"line1\nline2\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.lines(r.stdout), ["web01: line1", "web01: line2",
                                                "web02: line1", "web02: line2",
                                                "web03: line1", "web03: line2"])
        # More than the stdin window (1 MiB), through a pipe, to hosts
        # started one after another.
        data = os.urandom(3 << 20)
        r = self.run_fleet("-f", "1", "-g", "web", "md5sum", input=data)
        import hashlib
        want = hashlib.md5(data).hexdigest()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([l.split()[1] for l in self.lines(r.stdout)], [want] * 3)
        r = self.run_fleet("-n", "-g", "web", "cat")
        self.assertEqual((r.returncode, r.stdout), (0, b""))

    def test_stdin_spool_given_back_once_every_host_started(self):
        # A stream to hosts all running at once: what they all have had
        # leaves the spool (a hole), which otherwise holds the whole stream
        # on $TMPDIR's file system (memory on a tmpfs) until the end.
        tmpdir = tempfile.mkdtemp(dir=self.dir)
        probe = os.path.join(tmpdir, "probe")
        with open(probe, "wb") as f:
            f.write(b"x" * 8192)
        if subprocess.run(["fallocate", "-p", "-o", "0", "-l", "4096", probe]).returncode:
            self.skipTest("the file system of the spool cannot punch holes")
        p = subprocess.Popen(self.args("-g", "web", "cat > /dev/null; echo eof; sleep 30"),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=dict(os.environ, TMPDIR=tmpdir))
        try:
            chunk = b"y" * (1 << 20)
            for _ in range(48):
                p.stdin.write(chunk)
            p.stdin.close()
            for _ in range(3):
                self.assertTrue(p.stdout.readline().endswith(b": eof\n"))
            spool = [os.path.join("/proc/%d/fd" % p.pid, fd)
                     for fd in os.listdir("/proc/%d/fd" % p.pid)
                     if os.readlink(os.path.join("/proc/%d/fd" % p.pid, fd))
                     .startswith(tmpdir)]
            self.assertEqual(len(spool), 1)
            st = os.stat(spool[0])
            self.assertEqual(st.st_size, 48 << 20)
            self.assertLess(st.st_blocks * 512, 2 << 20)
        finally:
            p.kill()
            p.wait()
            p.stdout.close()
            p.stderr.close()
        # A stdin that is a regular file is read in place: never punched.
        data = os.path.join(tmpdir, "data")
        with open(data, "wb") as f:
            f.write(b"z" * (8 << 20))
        before = os.stat(data).st_blocks
        with open(data, "rb") as f:
            r = subprocess.run(self.args("-g", "web", "wc -c"), stdin=f, capture_output=True,
                               timeout=20 * SLOW)
        self.assertEqual(self.lines(r.stdout), ["web0%d: %d" % (i, 8 << 20) for i in (1, 2, 3)])
        self.assertEqual(os.stat(data).st_blocks, before)

    def test_fanout_beyond_the_descriptor_limit(self):
        # 48 hosts at once (aliases of a listener that never accepts: each
        # holds its socket until the connect timeout) under a soft limit of
        # 40 descriptors: the limit is raised, where hosts past it failed as
        # "bad host" (their configuration could not be opened); under a hard
        # limit of 40, -f is cut to what fits, and said.
        import resource
        lsock = socket.socket()
        lsock.bind(("127.0.0.8", 0))
        lsock.listen(128)
        self.addCleanup(lsock.close)
        conf = ferrytest.write_host_config(
            os.path.join(self.dir, "config-many"),
            [ferrytest.host_block("m%d" % i, "127.0.0.8", lsock.getsockname()[1])
             for i in range(48)])
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        for limits, said in (((40, hard), b""),
                             ((40, 40), b"ferry: -f: only 40 descriptors may be open "
                                        b"(ulimit -n): at most 8 hosts at once\n")):
            r = subprocess.run([FERRY, "exec", "-k", self.key, "-F", conf, "-n", "-f", "48",
                                "--connect-timeout", "0.3", "-w", "m[0-47]", "true"],
                               capture_output=True, timeout=30 * SLOW,
                               preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE,
                                                                     limits))
            self.assertEqual(r.returncode, 255, r.stderr)
            self.assertTrue(r.stderr.startswith(said), r.stderr)
            self.assertTrue(r.stderr.endswith(b"ferry: 48 of 48 hosts failed: unreachable: "
                                              b"m[0-47] (handshake timed out)\n"),
                            r.stderr)

    def start_ready(self, script):
        """The fleet running script on web01-03, once each host said ready."""
        p = subprocess.Popen(self.args("-n", "-g", "web", script), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        self.addCleanup(p.communicate)
        self.addCleanup(p.kill)
        for _ in range(3):
            self.assertTrue(p.stdout.readline().endswith(b": ready\n"))
        return p

    def test_sigint_forwarded_then_hang_up(self):
        p = self.start_ready("trap 'echo got INT; exit 7' INT; echo ready; "
                             "while :; do sleep 0.1; done")
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=10 * SLOW)
        self.assertEqual(p.returncode, 7)
        self.assertEqual(sorted(out.decode().splitlines()),
                         ["web01: got INT", "web02: got INT", "web03: got INT"])
        # Commands that carry on after SIGINT: the second one hangs up on all.
        p = self.start_ready("trap 'echo got INT' INT; echo ready; while :; do sleep 0.1; done")
        p.send_signal(signal.SIGINT)
        for _ in range(3):
            self.assertTrue(p.stdout.readline().endswith(b": got INT\n"))
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=10 * SLOW)
        self.assertEqual(p.returncode, 130)
        self.assertIn(b"ferry: 3 of 3 hosts failed: interrupted: web[01-03] (hung up)", err)

    def test_two_signals_taken_at_once(self):
        # Both signals reach the loop in one batch (the process is stopped
        # while they arrive): the first gives up "hang" (still in its TLS
        # handshake), the second hangs up on every host, and a host given up
        # by the first is not ended a second time (it was: its JSON object
        # twice, its timer and descriptor freed twice).
        ready = os.path.join(self.dir, "two-signals-ready")
        p = subprocess.Popen(self.args("-n", "--json", "--connect-timeout", "60", "-w",
                                       "web01,hang", "touch %s; sleep 30" % ready),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            ferrytest.wait_until(lambda: os.path.exists(ready), what="web01's command")
            for sig in (signal.SIGSTOP, signal.SIGINT, signal.SIGTERM, signal.SIGCONT):
                p.send_signal(sig)
            out, err = p.communicate(timeout=10 * SLOW)
            self.assertEqual(sorted(json.loads(l)["host"] for l in out.splitlines()),
                             ["hang", "web01"], err)
            self.assertEqual(p.returncode, 128 + signal.SIGTERM, err)
        finally:
            p.kill()
            p.communicate()

    def test_closed_stdout_ends_quietly(self):
        p = subprocess.Popen(self.args("-n", "-g", "web", "yes"), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        try:
            self.assertTrue(p.stdout.readline().endswith(b": y\n"))
            p.stdout.close()
            self.assertEqual(p.wait(timeout=10 * SLOW), 128 + signal.SIGPIPE)
            self.assertEqual(p.stderr.read(), b"")
        finally:
            p.kill()
            p.stderr.close()

    def test_output_errors_in_every_mode(self):
        # A failed write is said in every mode (-b and --json said nothing).
        for mode in ([], ["-b"], ["--json"]):
            with open("/dev/full", "wb") as full:
                r = subprocess.run(self.args("-n", *mode, "-g", "web", "echo hi"),
                                   stdout=full, stderr=subprocess.PIPE, timeout=20 * SLOW)
            self.assertEqual(r.returncode, 255, mode)
            self.assertIn(b"ferry: cannot write output: No space left on device", r.stderr, mode)
        # -b writes only at the end: a pipe closed by then ends quietly, 141
        # (it was 255).
        rd, wr = os.pipe()
        os.close(rd)
        try:
            r = subprocess.run(self.args("-n", "-b", "-g", "web", "echo hi"), stdout=wr,
                               stderr=subprocess.PIPE, timeout=20 * SLOW)
        finally:
            os.close(wr)
        self.assertEqual((r.returncode, r.stderr), (128 + signal.SIGPIPE, b""))

    def test_missing_key_said_once(self):
        r = subprocess.run([FERRY, "exec", "-k", os.path.join(self.dir, "nokey"), "-F",
                            self.conf, "-g", "web", "true"], capture_output=True,
                           stdin=subprocess.DEVNULL, timeout=20 * SLOW)
        self.assertEqual(r.returncode, 255)
        self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
        self.assertIn(b"ferry keygen", r.stderr)

    def test_usage_errors(self):
        h = subprocess.run([FERRY, "exec", "--help"], capture_output=True).stdout
        self.assertIn(b"(default port 7171)", h)
        self.assertIn(b"at most N hosts at once (default 64)", h)
        r = self.run_fleet("-w", "web01")
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"missing COMMAND", r.stderr)
        r = self.run_fleet("-t", "-w", "web01", "true")
        self.assertEqual(r.returncode, 2)
        r = self.run_fleet("-b", "web01", "true")
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"for many hosts", r.stderr)


if __name__ == "__main__":
    ferrytest.main()
