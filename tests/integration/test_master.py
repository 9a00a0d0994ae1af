"""Connection masters (`ferry master`, --persist, --no-master; master.h,
README "Connection masters"): a master keeps authenticated sessions to one
ferryd and hands them to commands over a private unix socket; a command
that ended at rest hands its session back for the next one.  Against a real
ferryd (TLS and plaintext) and real masters, each test in a private
XDG_RUNTIME_DIR."""
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import unittest

import ferrytest
from ferrytest import SLOW, wait_until, write_key

FERRY = ferrytest.binary("ferry")

# A "master" of another user: answers any request with a session, reads
# what the client then sends (its command), and closes.
FAKE_MASTER = r"""
import json, socket, struct, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(8)
print("listening", flush=True)
while True:
    c, _ = s.accept()
    try:
        c.recv(4096)
        h = json.dumps({"type": "master", "ok": True, "pid": 1, "peer": "x"}).encode()
        c.sendall(struct.pack("<I", len(h)) + h)
        c.recv(65536)
    except OSError:
        pass   # the client went without a word: as it should
    c.close()
"""


class MasterTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.key = os.path.join(cls.tmp.name, "key")
        write_key(cls.key)
        cls.root = os.path.join(cls.tmp.name, "root")
        os.mkdir(cls.root)
        cls.server = ferrytest.start_ferryd("--root", cls.root, key_path=cls.key)
        cls.host = "%s:%d" % cls.server.hostport()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.tmp.cleanup()

    def setUp(self):
        self.run_dir = tempfile.mkdtemp(dir=self.tmp.name)
        os.chmod(self.run_dir, 0o700)
        self.addCleanup(self.stop_master, self.host)

    def env(self, **extra):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.tmp.name,
               "LANG": "C.UTF-8", "XDG_RUNTIME_DIR": self.run_dir, "FERRY_KEY_FILE": self.key}
        env.update(ferrytest.sanitizer_env())
        env.update(extra)
        return env

    def ferry(self, *args, input=None, env=None, timeout=30):
        return subprocess.run([FERRY] + list(args), capture_output=True, input=input,
                              env=env or self.env(), timeout=timeout * SLOW)

    def start_master(self, host, *opts):
        r = self.ferry("master", "-b", *opts, host)
        self.assertEqual(r.returncode, 0, r.stderr)
        return self.master_pid(host, *opts)

    def master_pid(self, host, *opts):
        r = self.ferry("master", "--check", *opts, host)
        if r.returncode != 0:
            return None
        return int(re.search(rb"pid (\d+)", r.stdout).group(1))

    def stop_master(self, host, *opts):
        self.ferry("master", "--stop", *opts, host)

    def sessions_since(self, mark):
        """Sessions ferryd authenticated since its log had `mark` lines, up
        to a fence: a direct command whose audit line is waited for, so no
        line still on its way is missed (the fence's own is not counted)."""
        token = "fence-%d-%d" % (os.getpid(), len(self.server.log))
        r = self.ferry("exec", "--no-master", self.host, "true " + token)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.server.wait_for_log(re.escape(token), start=mark)
        return sum(1 for line in self.server.log[mark:]
                   if "event=session" in line and "result=ok" in line) - 1

    def exec_peers(self, mark):
        """The connection (peer) of each command ferryd ran since its log had
        `mark` lines, in order, up to a fence as sessions_since's."""
        token = "fence-%d-%d" % (os.getpid(), len(self.server.log))
        r = self.ferry("exec", "--no-master", self.host, "true " + token)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.server.wait_for_log(re.escape(token), start=mark)
        return [re.search(r" peer=(\S+)", line).group(1) for line in self.server.log[mark:]
                if "event=exec" in line and token not in line]

    def via_master(self, r):
        return b"through master" in r.stderr

    def socket_path(self):
        d = os.path.join(self.run_dir, "ferry")
        names = [n for n in os.listdir(d) if not n.endswith(".lock")]
        self.assertEqual(len(names), 1, names)
        return os.path.join(d, names[0])

    def raw_session(self):
        """A session from the master, spoken by hand (PROTOCOL.md 2.9)."""
        s = socket.socket(socket.AF_UNIX)
        self.addCleanup(s.close)
        s.settimeout(20 * SLOW)
        s.connect(self.socket_path())
        s.sendall(ferrytest.frame({"type": "master", "op": "session"}))
        h = ferrytest.recv_header(s)
        self.assertTrue(h.get("ok"), h)
        return s

    # ---- the basics --------------------------------------------------------------

    def test_commands_go_through_the_master_and_reuse_its_session(self):
        mark = len(self.server.log)
        self.start_master(self.host)
        r = self.ferry("exec", "-v", self.host, "echo out; echo err >&2; exit 3")
        self.assertEqual(r.returncode, 3)
        self.assertEqual(r.stdout, b"out\n")
        self.assertIn(b"err\n", r.stderr)
        self.assertTrue(self.via_master(r), r.stderr)
        r = self.ferry("exec", self.host, "--", "tr", "a-z", "A-Z", input=b"abc\n" * 1000)
        self.assertEqual((r.returncode, r.stdout), (0, b"ABC\n" * 1000), r.stderr)
        r = self.ferry("exec", self.host, "kill -9 $$")
        self.assertEqual(r.returncode, 137, r.stderr)
        r = self.ferry("ls", self.host)
        self.assertEqual(r.returncode, 0, r.stderr)
        # Every command above ended at rest and handed its session back, so
        # a later one ran on a connection an earlier one had used.  (Not
        # all on one: a command slower than the master's 100 ms gets a
        # spare beside it, and a sanitized build is that slow.)
        peers = self.exec_peers(mark)
        self.assertEqual(len(peers), 3, peers)
        self.assertLess(len(set(peers)), len(peers), peers)

    def start_master_peer(self):
        """Start a master; the peer address of its first worker's session."""
        mark = len(self.server.log)
        self.start_master(self.host)
        return self.server.wait_for_log(r"event=session peer=(\S+)", start=mark).group(1)

    def test_a_release_split_across_reads_is_never_passed_on(self):
        wpeer = self.start_master_peer()
        mark = len(self.server.log)
        sock = self.raw_session()
        release = ferrytest.frame({"type": "master", "op": "release"})
        # A request and the first bytes of the release in one write; the
        # answer proves the relay has read (and passed on) all it could.
        sock.sendall(ferrytest.frame({"type": "stat", "path": "."}) + release[:7])
        reply = ferrytest.recv_header(sock)
        self.assertEqual(reply["type"], "stat", reply)
        sock.sendall(release[7:])
        sock.close()
        # Had those 7 bytes reached ferryd, it would have waited for the rest
        # of that frame, the worker for the pong to its ping, and the next
        # command would have run on a new connection: it runs on this one.
        r = self.ferry("exec", self.host, "echo next")
        self.assertEqual((r.returncode, r.stdout), (0, b"next\n"), r.stderr)
        self.assertEqual(self.exec_peers(mark), [wpeer])

    def test_a_client_that_leaves_without_release_is_not_reused(self):
        self.start_master_peer()
        mark = len(self.server.log)
        sock = self.raw_session()
        sock.sendall(ferrytest.frame({"type": "chdir", "path": "/tmp"}))
        self.assertEqual(ferrytest.recv_header(sock)["type"], "cwd")
        sock.close()
        # The session that went to /tmp is not handed to the next client.
        r = self.ferry("exec", self.host, "pwd")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotEqual(r.stdout, b"/tmp\n")
        self.assertGreaterEqual(self.sessions_since(mark), 1)

    def test_files_through_the_master(self):
        self.start_master(self.host)
        data = os.urandom(3 * 1024 * 1024 + 17)
        src = os.path.join(self.run_dir, "up.bin")
        with open(src, "wb") as f:
            f.write(data)
        r = self.ferry("put", "-v", self.host, src, "m-up.bin")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(self.via_master(r), r.stderr)
        with open(os.path.join(self.root, "m-up.bin"), "rb") as f:
            self.assertEqual(f.read(), data)
        dst = os.path.join(self.run_dir, "down.bin")
        r = self.ferry("get", self.host, "m-up.bin", dst)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(dst, "rb") as f:
            self.assertEqual(f.read(), data)

    def test_terminal_through_the_master(self):
        self.start_master(self.host)
        r = self.ferry("exec", "-tt", "-v", self.host, "test -t 0 && stty size; exit 5")
        self.assertEqual(r.returncode, 5, r.stderr)
        self.assertTrue(self.via_master(r), r.stderr)
        self.assertRegex(r.stdout, rb"^\d+ \d+\r?\n")

    def test_plaintext_has_its_own_master(self):
        plain = ferrytest.start_ferryd("--root", self.root, key_path=self.key, plaintext=True)
        self.addCleanup(plain.stop)
        host = "%s:%d" % plain.hostport()
        self.addCleanup(self.stop_master, host, "--plaintext")
        self.start_master(host, "--plaintext")
        # A TLS command to the same address is another master's business.
        self.assertIsNone(self.master_pid(host))
        r = self.ferry("exec", "--plaintext", "-v", host, "echo plain")
        self.assertEqual((r.returncode, r.stdout), (0, b"plain\n"), r.stderr)
        self.assertTrue(self.via_master(r), r.stderr)

    def test_looking_for_a_master_leaves_no_trace(self):
        r = self.ferry("exec", self.host, "true")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.ferry("master", "--check", self.host)
        self.assertEqual(r.returncode, 1)
        self.assertFalse(os.path.exists(os.path.join(self.run_dir, "ferry")))

    def test_no_master_connects_directly(self):
        self.start_master(self.host)
        r = self.ferry("exec", "--no-master", "-v", self.host, "true")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse(self.via_master(r), r.stderr)

    @unittest.skipUnless(os.geteuid() == 0, "needs root to listen as another user")
    def test_a_socket_of_another_user_is_not_used(self):
        # Put there behind the directory's back (a parent others may
        # write to): the listener's uid is checked, not only the directory.
        self.start_master(self.host)
        path = self.socket_path()
        self.stop_master(self.host)
        wait_until(lambda: not os.path.exists(path), what="the master's socket to go")
        other = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, other)
        os.chmod(other, 0o777)
        fake_sock = os.path.join(other, "fake")
        fake = subprocess.Popen(
            ["python3", "-c", FAKE_MASTER, fake_sock], stdout=subprocess.PIPE,
            preexec_fn=lambda: (os.setgid(65534), os.setuid(65534)))
        self.addCleanup(fake.wait)
        self.addCleanup(fake.kill)
        self.assertEqual(fake.stdout.readline(), b"listening\n")
        os.rename(fake_sock, path)
        r = self.ferry("exec", "-v", self.host, "echo direct")
        self.assertEqual((r.returncode, r.stdout), (0, b"direct\n"), r.stderr)
        self.assertFalse(self.via_master(r), r.stderr)
        self.assertIn(b"not our master", r.stderr)

    # ---- a client that goes ----------------------------------------------------------

    def test_a_killed_client_kills_its_remote_command(self):
        self.start_master(self.host)
        marker = "ferry-master-test-%d" % os.getpid()
        p = subprocess.Popen([FERRY, "exec", "-v", self.host, "echo ready; sleep 300; echo "
                              + marker], env=self.env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        self.addCleanup(p.wait)
        self.addCleanup(p.stdout.close)
        # Its first line came back: the remote command runs.  (Waited for
        # so, not with pgrep: that would also find the local client, whose
        # arguments carry the marker too.)
        self.assertEqual(p.stdout.readline(), b"ready\n")
        p.kill()
        p.wait()
        err = p.stderr.read()
        p.stderr.close()
        self.assertIn(b"through master", err)
        # Killed without a release: the session is closed, and ferryd kills
        # what it ran, as for any client that goes away.
        pgrep = lambda: subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 0
        wait_until(lambda: not pgrep(), what="the remote command to go")
        # The master still serves (the spare it started beside the long
        # command, or a new worker).
        r = self.ferry("exec", "-v", self.host, "echo again")
        self.assertEqual((r.returncode, r.stdout), (0, b"again\n"), r.stderr)
        self.assertTrue(self.via_master(r), r.stderr)

    def test_a_release_mid_command_is_not_reused(self):
        # A client that releases while its command runs (or after a chdir)
        # is taken at its word only if the server agrees: the next command
        # must neither inherit the command (its output, "already running")
        # nor its directory, and the released command ends with its session.
        self.start_master(self.host)
        home = self.ferry("exec", self.host, "pwd").stdout
        self.assertNotEqual(home, b"/\n")
        marker = "ferry-master-mid-%d" % os.getpid()
        s = self.raw_session()
        s.sendall(ferrytest.frame({"type": "exec", "shell": "echo started; sleep 300; echo "
                                   + marker, "stdin": False}))
        h = ferrytest.recv_header(s)
        self.assertEqual(h["type"], "stdout", h)
        pgrep = lambda: subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode
        self.assertEqual(pgrep(), 0)
        s.sendall(ferrytest.frame({"type": "master", "op": "release"}))
        s.close()
        # Not at rest: the worker closes the connection, and the server
        # ends the command, as for a client that goes without a release.
        wait_until(lambda: pgrep() != 0, what="the released command to end")
        for _ in range(3):
            r = self.ferry("exec", self.host, "echo mine")
            self.assertEqual((r.returncode, r.stdout), (0, b"mine\n"), r.stderr)
        s = self.raw_session()
        s.sendall(ferrytest.frame({"type": "chdir", "path": "/"}))
        self.assertEqual(ferrytest.recv_header(s)["type"], "cwd")
        s.sendall(ferrytest.frame({"type": "master", "op": "release"}))
        s.close()
        for _ in range(3):
            r = self.ferry("exec", self.host, "pwd")
            self.assertEqual((r.returncode, r.stdout), (0, home), r.stderr)

    def test_clients_that_never_speak_hold_no_worker(self):
        # More silent clients than there are workers: a command behind them
        # is still served at once (before, each held a worker for 5 s, and
        # the command gave up on the master after its connect timeout).
        self.start_master(self.host)
        path = self.socket_path()
        for _ in range(20):
            s = socket.socket(socket.AF_UNIX)
            self.addCleanup(s.close)
            s.connect(path)
        r = self.ferry("exec", "-v", "--connect-timeout", "2", self.host, "echo served")
        self.assertEqual((r.returncode, r.stdout), (0, b"served\n"), r.stderr)
        self.assertTrue(self.via_master(r), r.stderr)

    def test_every_worker_busy(self):
        # Sixteen sessions held (MASTER_WORKERS): --check and --stop are
        # still answered, and a command waits a second at most before it
        # connects by itself (not its whole connect timeout).
        self.start_master(self.host)
        held = [self.raw_session() for _ in range(16)]
        r = self.ferry("master", "--check", "--connect-timeout", "5", self.host)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"master running", r.stdout)
        r = self.ferry("exec", "-v", "--connect-timeout", "5", self.host, "echo direct")
        self.assertEqual((r.returncode, r.stdout), (0, b"direct\n"), r.stderr)
        self.assertFalse(self.via_master(r), r.stderr)
        self.assertNotIn(b"timed out", r.stderr)
        r = self.ferry("master", "--stop", "--connect-timeout", "5", self.host)
        self.assertEqual(r.returncode, 0, r.stderr)
        wait_until(lambda: self.master_pid(self.host) is None, what="the master to stop")
        # The sessions it held go on.
        s = held[-1]
        s.sendall(ferrytest.frame({"type": "exec", "shell": "echo still", "stdin": False}))
        self.assertEqual(ferrytest.recv_frame(s)[1], b"still\n")

    def test_interrupt_is_forwarded(self):
        self.start_master(self.host)
        p = subprocess.Popen([FERRY, "exec", self.host, "trap 'exit 42' INT; echo ready; "
                              "while :; do sleep 0.05; done"], env=self.env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertEqual(p.stdout.readline(), b"ready\n")
        p.send_signal(signal.SIGINT)
        self.assertEqual(p.wait(timeout=20 * SLOW), 42)
        p.stdout.close()
        p.stderr.close()

    # ---- its life ------------------------------------------------------------------

    def test_persist_starts_one_that_ends_when_idle(self):
        self.assertIsNone(self.master_pid(self.host))
        r = self.ferry("exec", "--persist", "1", self.host, "echo first")
        self.assertEqual((r.returncode, r.stdout), (0, b"first\n"), r.stderr)
        wait_until(lambda: self.master_pid(self.host), what="the background master")
        r = self.ferry("exec", "-v", self.host, "echo second")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(self.via_master(r), r.stderr)
        # Idle for its second: it stops, and removes its socket.
        wait_until(lambda: self.master_pid(self.host) is None, what="the master to stop",
                   timeout=20)
        self.assertEqual([n for n in os.listdir(os.path.join(self.run_dir, "ferry"))
                          if not n.endswith(".lock")], [])

    def test_persist_from_the_host_configuration(self):
        conf = os.path.join(self.run_dir, "config")
        ferrytest.write_host_config(conf, [ferrytest.host_block("pers", *self.server.hostport(),
                                                                "Persist 30")])
        r = self.ferry("config", "-F", conf, "pers")
        self.assertIn(b"persist 30\n", r.stdout)
        r = self.ferry("exec", "-F", conf, "pers", "true")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.addCleanup(self.stop_master, "pers", "-F", conf)
        wait_until(lambda: self.master_pid("pers", "-F", conf), what="the master")

    def test_stop_and_check(self):
        pid = self.start_master(self.host)
        self.assertIsNotNone(pid)
        # One runs already: fine, and said (it was silent with -b), with
        # its pid, in the foreground too.
        for opts in (("-b",), ()):
            r = self.ferry("master", *opts, self.host)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stderr, ("ferry: a master for %s already runs (pid %d)\n"
                                        % (self.host, pid)).encode())
        self.assertEqual(self.master_pid(self.host), pid)
        r = self.ferry("master", "--stop", self.host)
        self.assertEqual(r.returncode, 0, r.stderr)
        wait_until(lambda: not os.path.exists("/proc/%d" % pid) or
                   open("/proc/%d/stat" % pid).read().split()[2] == "Z", what="the master to end")
        r = self.ferry("master", "--check", self.host)
        self.assertEqual(r.returncode, 1)
        r = self.ferry("master", "--stop", self.host)
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"no master runs", r.stderr)

    def test_a_dead_master_is_replaced_and_never_blocks(self):
        pid = self.start_master(self.host)
        os.kill(pid, signal.SIGKILL)
        # Its socket is left behind; a command connects by itself at once.
        r = self.ferry("exec", "-v", self.host, "echo direct")
        self.assertEqual((r.returncode, r.stdout), (0, b"direct\n"), r.stderr)
        self.assertFalse(self.via_master(r), r.stderr)
        self.start_master(self.host)
        r = self.ferry("exec", "-v", self.host, "echo again")
        self.assertTrue(self.via_master(r), r.stderr)

    def test_a_gone_server_makes_commands_say_so(self):
        other = ferrytest.start_ferryd("--root", self.root, key_path=self.key)
        host = "%s:%d" % other.hostport()
        self.addCleanup(self.stop_master, host)
        self.start_master(host)
        other.stop()
        # The master's session is dead: the command finds no working master
        # and says what a command without one would, at once (not after
        # the master's next try, a second away, nor its own timeout).
        r = self.ferry("exec", "-v", "--connect-timeout", "1", host, "true", timeout=60)
        self.assertEqual(r.returncode, 255)
        self.assertIn(b"cannot connect", r.stderr)
        self.assertNotIn(b"timed out", r.stderr)

    def test_failures_are_one_line(self):
        r = self.ferry("master", "127.0.0.1:%d" % ferrytest.closed_port("127.0.0.1"))
        self.assertEqual(r.returncode, 255)
        self.assertIn(b"cannot connect", r.stderr)
        r = self.ferry("master", "-b", self.host, env=self.env(FERRY_KEY_FILE="/nonexistent"))
        self.assertEqual(r.returncode, 255)
        self.assertIn(b"/nonexistent", r.stderr)
        r = self.ferry("master", "--persist", "x", self.host)
        self.assertEqual(r.returncode, 2)
        r = self.ferry("master")
        self.assertEqual(r.returncode, 2)
        # Its help has its own --persist only, and no --no-master (a usage
        # error here).
        r = self.ferry("master", "--help")
        self.assertEqual(r.returncode, 0)
        self.assertEqual(r.stdout.count(b"--persist"), 1, r.stdout)
        self.assertNotIn(b"--no-master", r.stdout)

    def test_a_directory_others_can_enter_is_not_used(self):
        os.makedirs(os.path.join(self.run_dir, "ferry"), mode=0o755, exist_ok=True)
        os.chmod(os.path.join(self.run_dir, "ferry"), 0o755)
        r = self.ferry("master", "-b", self.host)
        self.assertEqual(r.returncode, 255)
        self.assertIn(b"not a private directory", r.stderr)
        # A command just connects by itself.
        r = self.ferry("exec", "--persist", "5", self.host, "echo ok")
        self.assertEqual((r.returncode, r.stdout), (0, b"ok\n"), r.stderr)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(self.run_dir, "ferry")).st_mode), 0o755)


if __name__ == "__main__":
    ferrytest.main()
