"""ferry put -w / get -w: one file to or from many hosts from one client
process (src/ferry/fleet_put.c, fleet_get.c on the fleet engine; README
"Many hosts").  Three real ferryds on 127.0.0.2-4, each with its own file
root, are web01-03 in a host configuration (-F); "plain" is a plaintext
one on 127.0.0.7; "dead" is a closed port.
Uploads are checked on each server's root (content and checksum),
downloads in DIR/HOST/, and nothing partial is left anywhere."""
import contextlib
import os
import signal
import subprocess
import tempfile
import unittest

import ferrytest
from ferrytest import SLOW, write_key

FERRY = ferrytest.binary("ferry")
HOSTS = ["web01", "web02", "web03"]


class FleetXferTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = cls.tmp.name
        cls.key = os.path.join(cls.dir, "key")
        write_key(cls.key)
        cls.servers, cls.roots = [], []
        conf = []
        for i in range(3):
            root = os.path.join(cls.dir, "root%d" % (i + 1))
            os.mkdir(root)
            s = ferrytest.start_ferryd("--root", root, key_path=cls.key,
                                       listen="127.0.0.%d:0" % (i + 2))
            cls.servers.append(s)
            cls.roots.append(root)
            conf.append(ferrytest.host_block("web0%d" % (i + 1), *s.hostport()))
        # A plaintext ferryd: a download's bytes go socket -> file without
        # passing through ferry (hashed back from the file), an upload's
        # without TLS.
        root = os.path.join(cls.dir, "root-plain")
        os.mkdir(root)
        s = ferrytest.start_ferryd("--root", root, key_path=cls.key,
                                   listen="127.0.0.7:0", plaintext=True)
        cls.servers.append(s)
        cls.roots.append(root)
        conf.append(ferrytest.host_block("plain", *s.hostport(), "Plaintext yes"))
        conf.append(ferrytest.host_block("dead", "127.0.0.5",
                                         ferrytest.closed_port("127.0.0.5")))
        conf.append("Group web web[01-03]\n")
        cls.conf = ferrytest.write_host_config(os.path.join(cls.dir, "config"), conf)

    @classmethod
    def tearDownClass(cls):
        for s in cls.servers:
            s.stop()
        cls.tmp.cleanup()

    def setUp(self):
        self.work = tempfile.mkdtemp(dir=self.dir)

    def ferry(self, cmd, *args, timeout=20):
        return subprocess.run([FERRY, cmd, "-k", self.key, "-F", self.conf] + list(args),
                              capture_output=True, stdin=subprocess.DEVNULL,
                              timeout=timeout * SLOW)

    def local(self, name, data):
        path = os.path.join(self.work, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def remote(self, i, name, data):
        with open(os.path.join(self.roots[i], name), "wb") as f:
            f.write(data)

    def read(self, path):
        with open(path, "rb") as f:
            return f.read()

    @contextlib.contextmanager
    def plain_stopped_midway(self, cmd, args, part, done):
        """Start `ferry CMD -w ARGS...`; once `part` (the plaintext host's
        temporary) holds bytes, stop that host's ferryd, wait for `done`
        (another host's file) and yield the ferry process; the ferryd goes
        on after.  A ferry still running at the test's end is killed."""
        p = subprocess.Popen([FERRY, cmd, "-k", self.key, "-F", self.conf, "-w"] + args,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        self.addCleanup(lambda: p.poll() is not None or (p.kill(), p.communicate()))
        ferrytest.wait_until(lambda: os.path.exists(part) and os.path.getsize(part) > 0,
                             what="the transfer to begin", interval=0.001)
        slow = self.servers[3]
        os.kill(slow.pid, signal.SIGSTOP)
        try:
            ferrytest.wait_until(lambda: os.path.exists(done), what="the other host's file")
            yield p
        finally:
            os.kill(slow.pid, signal.SIGCONT)

    def assert_no_parts(self, *roots):
        for root in roots:
            self.assertEqual(ferrytest.parts_under(root), [])

    # ---- put ---------------------------------------------------------------

    def test_put_to_three_hosts(self):
        data = os.urandom(100000)
        src = self.local("up.bin", data)
        r = self.ferry("put", "-w", "web[01-03]", src, "up-copy.bin")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"")
        self.assertEqual(r.stderr, b"")   # quiet on success
        for root in self.roots[:3]:
            got = self.read(os.path.join(root, "up-copy.bin"))
            self.assertEqual(ferrytest.digest(got), ferrytest.digest(data))
            self.assertEqual(got, data)
        self.assert_no_parts(*self.roots)
        # -v: a summary line on success too.
        r = self.ferry("put", "-v", "-w", "web[01-03]", src, "up-copy.bin")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("ferry: put %s: 3 of 3 hosts done\n" % src, r.stderr.decode())

    def test_sha256_and_preserve(self):
        """--checksum sha256 and -p work as for one host, both ways."""
        data = b"sha\n" * 1000
        src = self.local("sha.txt", data)
        os.chmod(src, 0o640)
        os.utime(src, (1700000000, 1700000000))
        r = self.ferry("put", "--checksum", "sha256", "-p", "-w", "web[01-02]", src, "sha.txt")
        self.assertEqual(r.returncode, 0, r.stderr)
        for root in self.roots[:2]:
            st = os.stat(os.path.join(root, "sha.txt"))
            self.assertEqual((st.st_mode & 0o777, int(st.st_mtime)), (0o640, 1700000000))
        out = os.path.join(self.work, "sha")
        os.mkdir(out)
        r = self.ferry("get", "--checksum", "sha256", "-p", "-w", "web[01-02]", "sha.txt", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        for h in HOSTS[:2]:
            path = os.path.join(out, h, "sha.txt")
            self.assertEqual(self.read(path), data)
            st = os.stat(path)
            self.assertEqual((st.st_mode & 0o777, int(st.st_mtime)), (0o640, 1700000000))

    def test_put_into_directory_and_empty_file(self):
        """DEST a directory on a server: the file goes in under its own
        name; elsewhere DEST is its name (each host decides).  An empty
        file works too, and a DEST ending in '/' needs no look first."""
        for root in self.roots[:2]:
            os.makedirs(os.path.join(root, "incoming"), exist_ok=True)
        src = self.local("empty.txt", b"")
        r = self.ferry("put", "-g", "web", src, "incoming")
        self.assertEqual(r.returncode, 0, r.stderr)
        for root in self.roots[:2]:
            self.assertEqual(self.read(os.path.join(root, "incoming", "empty.txt")), b"")
        # web03 has no such directory: the file takes that name there.
        self.assertEqual(self.read(os.path.join(self.roots[2], "incoming")), b"")
        src = self.local("slash.txt", b"x\n")
        r = self.ferry("put", "-w", "web01,web02", src, "incoming/")
        self.assertEqual(r.returncode, 0, r.stderr)
        for root in self.roots[:2]:
            self.assertEqual(self.read(os.path.join(root, "incoming", "slash.txt")), b"x\n")

    def test_put_several_mib_one_at_a_time(self):
        """A few MiB (read a piece at a time as each connection drains),
        with -f 1: one host after the other."""
        data = os.urandom(6 * 1024 * 1024 + 123)
        src = self.local("big.bin", data)
        r = self.ferry("put", "-f", "1", "-w", "web[01-03],plain", src, "big.bin", timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        want = ferrytest.digest(data)
        for root in self.roots:
            self.assertEqual(ferrytest.digest_file(os.path.join(root, "big.bin")), want)
        self.assert_no_parts(*self.roots)

    def test_put_slow_host_bounded_memory(self):
        """A host that stops taking bytes mid-upload (its ferryd stopped)
        holds its slot and a few hundred KiB of ours, never the file: the
        other host finishes meanwhile, and ferry's memory stays far below
        the file's size.  Then it goes on and completes."""
        # ASan's shadow memory about doubles ferry's own: so do the file
        # and the bound under it.
        scale = 2 if ferrytest.SANITIZED else 1
        size = scale * 32 * 1024 * 1024
        src = os.path.join(self.work, "slow.bin")
        with open(src, "wb") as f:
            f.write(os.urandom(1024 * 1024) * (size // (1024 * 1024)))
        part = os.path.join(self.roots[3], ".slow.bin.ferry-part")
        with self.plain_stopped_midway("put", ["plain,web01", src, "slow.bin"], part,
                                       os.path.join(self.roots[0], "slow.bin")) as p:
            got = os.path.getsize(part)
            rss = ferrytest.rss_kib(p.pid)
        out, err = p.communicate(timeout=60 * SLOW)
        if got >= size:
            self.skipTest("the stopped host had it all already")
        # About 9 MiB here (24 MiB under ASan); the file is 32 MiB (64).
        self.assertLess(rss, scale * 24 * 1024, "ferry holds %d KiB" % rss)
        self.assertEqual(p.returncode, 0, err)
        for root in (self.roots[0], self.roots[3]):
            self.assertEqual(ferrytest.digest_file(os.path.join(root, "slow.bin")),
                             ferrytest.digest_file(src))

    def test_put_unreachable_host(self):
        """-x takes web02 out; dead cannot be reached: the others succeed."""
        data = b"reach me\n"
        src = self.local("reach.txt", data)
        r = self.ferry("put", "-w", "web[01-03],dead", "-x", "web02", src, "reach.txt")
        self.assertEqual(r.returncode, 255, r.stderr)
        err = r.stderr.decode()
        self.assertIn("dead: cannot connect", err)
        self.assertIn("1 of 3 hosts failed", err)
        self.assertNotIn("web01", err.replace("web01,", ""))
        for i in (0, 2):
            self.assertEqual(self.read(os.path.join(self.roots[i], "reach.txt")), data)
        self.assertFalse(os.path.exists(os.path.join(self.roots[1], "reach.txt")))
        self.assert_no_parts(*self.roots)

    def test_put_refused_by_one_host(self):
        """A host whose DEST cannot take the file (its parent is missing
        there) fails alone, with the server's reason."""
        os.makedirs(os.path.join(self.roots[0], "only1"), exist_ok=True)
        src = self.local("p.txt", b"p\n")
        r = self.ferry("put", "-w", "web[01-02]", src, "only1/p.txt")
        self.assertEqual(r.returncode, 255)
        self.assertRegex(r.stderr.decode(), r"web02: put .*p\.txt -> only1/p\.txt: ")
        self.assertEqual(self.read(os.path.join(self.roots[0], "only1", "p.txt")), b"p\n")
        self.assert_no_parts(*self.roots)

    def test_put_of_a_file_written_meanwhile_is_not_stored(self):
        """The file grows after ferry took its size: no host stores what
        it got (a mix of two versions), each says so, and nothing partial
        is left.  web01's ferryd is held from before ferry starts until
        ferry has the file open and waits for the host."""
        src = self.local("growing.bin", os.urandom(2 * 1024 * 1024))
        srv = self.servers[0]
        os.kill(srv.pid, signal.SIGSTOP)
        self.addCleanup(os.kill, srv.pid, signal.SIGCONT)
        p = subprocess.Popen([FERRY, "put", "-k", self.key, "-F", self.conf, "-w", "web01",
                              src, "growing.bin"], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(lambda: p.poll() is not None or (p.kill(), p.communicate()))

        def opened_and_waiting():
            links = ferrytest.fd_targets(p.pid)
            return src in links and any(l.startswith("socket:") for l in links)
        ferrytest.wait_until(opened_and_waiting, what="ferry to open the file and connect")
        with open(src, "ab") as f:
            f.write(b"written while it was being sent")
        os.kill(srv.pid, signal.SIGCONT)
        out, err = p.communicate(timeout=60 * SLOW)
        self.assertEqual(p.returncode, 255, err)
        self.assertIn("file changed while being sent (not stored)", err.decode())
        self.assertFalse(os.path.exists(os.path.join(self.roots[0], "growing.bin")))
        ferrytest.wait_until(lambda: not ferrytest.parts_under(self.roots[0]),
                             what="the upload's temporary to go")

    def test_put_missing_local_file(self):
        r = self.ferry("put", "-w", "web01", os.path.join(self.work, "nope"), "x")
        self.assertEqual(r.returncode, 255)
        self.assertIn("No such file or directory", r.stderr.decode())

    # ---- get ---------------------------------------------------------------

    def test_get_from_three_hosts(self):
        """Each host's own file (they differ) in DIR/HOST/."""
        for i in range(3):
            self.remote(i, "motd", b"host %d\n" % (i + 1) * (i + 1))
        out = os.path.join(self.work, "out")
        os.mkdir(out)
        r = self.ferry("get", "-w", "web[01-03]", "motd", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, b"")
        self.assertEqual(sorted(os.listdir(out)), HOSTS)
        for i, h in enumerate(HOSTS):
            self.assertEqual(os.listdir(os.path.join(out, h)), ["motd"])
            self.assertEqual(self.read(os.path.join(out, h, "motd")),
                             b"host %d\n" % (i + 1) * (i + 1))

    def test_get_several_mib_one_at_a_time(self):
        data = os.urandom(5 * 1024 * 1024 + 7)
        for i in range(4):
            self.remote(i, "big-get.bin", data)
        out = os.path.join(self.work, "big")
        os.mkdir(out)
        r = self.ferry("get", "-f", "1", "-w", "web[01-03],plain", "big-get.bin", out + "/",
                       timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        for h in HOSTS + ["plain"]:
            self.assertEqual(ferrytest.digest_file(os.path.join(out, h, "big-get.bin")),
                             ferrytest.digest(data))

    def test_get_unreachable_and_missing(self):
        """A host that cannot be reached and one without the file fail
        alone; nothing partial stays, and the unreachable host gets no
        directory."""
        self.remote(0, "some", b"one\n")
        self.remote(2, "some", b"three\n")
        missing = os.path.join(self.roots[1], "some")
        if os.path.exists(missing):
            os.unlink(missing)
        out = os.path.join(self.work, "some-out")
        os.mkdir(out)
        r = self.ferry("get", "-w", "web[01-03],dead", "some", out)
        self.assertEqual(r.returncode, 255, r.stderr)
        err = r.stderr.decode()
        self.assertIn("dead: cannot connect", err)
        self.assertIn("web02: get some: No such file or directory", err)
        self.assertIn("2 of 4 hosts failed", err)
        self.assertEqual(self.read(os.path.join(out, "web01", "some")), b"one\n")
        self.assertEqual(self.read(os.path.join(out, "web03", "some")), b"three\n")
        # HOST/ is made when the file is on its way: not for these two.
        self.assertFalse(os.path.exists(os.path.join(out, "dead")))
        self.assertFalse(os.path.exists(os.path.join(out, "web02")))
        self.assert_no_parts(out)

    def test_get_interrupted(self):
        """Ctrl-C while a host is mid-download (its ferryd stopped): ferry
        ends with 130 and removes that host's temporary; the host that was
        done keeps its file."""
        data = os.urandom(1024 * 1024) * 24
        for i in (0, 3):
            self.remote(i, "int.bin", data)
        out = os.path.join(self.work, "int")
        os.mkdir(out)
        part = os.path.join(out, "plain", ".int.bin.ferry-part")
        with self.plain_stopped_midway("get", ["web01,plain", "int.bin", out], part,
                                       os.path.join(out, "web01", "int.bin")) as p:
            p.send_signal(signal.SIGINT)
            _, err = p.communicate(timeout=20 * SLOW)
        if os.path.exists(os.path.join(out, "plain", "int.bin")):
            self.skipTest("the stopped host had sent it all already")
        self.assertEqual(p.returncode, 128 + signal.SIGINT, err)
        self.assertEqual(os.listdir(os.path.join(out, "plain")), [])
        self.assertEqual(self.read(os.path.join(out, "web01", "int.bin")), data)
        self.assert_no_parts(out)

    def test_get_follows_no_symlink_as_a_hosts_directory(self):
        """DIR/HOST is ferry's to make: a symlink planted there (a shared
        DIR) is not followed, and another host's copy still comes."""
        for i in range(2):
            self.remote(i, "motd", b"host %d\n" % (i + 1))
        out, elsewhere = (os.path.join(self.work, n) for n in ("sym-out", "elsewhere"))
        os.mkdir(out)
        os.mkdir(elsewhere)
        os.symlink(elsewhere, os.path.join(out, "web01"))
        r = self.ferry("get", "-w", "web01,web02", "motd", out)
        self.assertEqual(r.returncode, 255, r.stderr)
        self.assertIn(b"web01: is a symbolic link: not followed", r.stderr)
        self.assertEqual(os.listdir(elsewhere), [])
        self.assertEqual(self.read(os.path.join(out, "web02", "motd")), b"host 2\n")

    def test_get_writes_through_no_planted_temporary(self):
        """A file linked as a host's temporary is not truncated and
        written: the stale name goes and a new one is made (O_EXCL)."""
        self.remote(0, "motd", b"host 1\n")
        out = os.path.join(self.work, "planted")
        os.makedirs(os.path.join(out, "web01"))
        victim = self.local("victim", b"the user's own\n")
        os.link(victim, os.path.join(out, "web01", ".motd.ferry-part"))
        r = self.ferry("get", "-w", "web01", "motd", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.read(victim), b"the user's own\n")
        self.assertEqual(self.read(os.path.join(out, "web01", "motd")), b"host 1\n")
        self.assert_no_parts(out)

    def test_get_into_missing_dir(self):
        out = os.path.join(self.work, "no-such-dir")
        r = self.ferry("get", "-w", "web01", "motd", out)
        self.assertEqual(r.returncode, 255)
        self.assertIn("no-such-dir: No such file or directory", r.stderr.decode())
        self.assertIn("DIR must be an existing directory", r.stderr.decode())
        self.assertFalse(os.path.exists(out))

    # ---- the command line ---------------------------------------------------

    def test_usage_errors(self):
        src = self.local("u.txt", b"u")
        for cmd, args, words in [
                ("put", ["-r", "-w", "web01", src, "d"], "-r is not supported with -w"),
                ("get", ["--resume", "-w", "web01", "u.txt", self.work],
                 "--resume is not supported with -w"),
                ("get", ["-w", "web01", "logs/*.gz", self.work], "patterns are not supported"),
                ("get", ["-w", "web01", "u.txt/", self.work], "names a directory"),
                ("put", ["-w", "web01", "-", "d"], "'-' (stdin or stdout) is not supported"),
                ("put", ["-w", "web01", src, src, "d"], "one FILE and one DEST"),
                ("put", ["-f", "2", "web01", src], "-f is for many hosts"),
                ("get", ["-w", "web01"], "missing FILE")]:
            r = self.ferry(cmd, *args)
            self.assertEqual(r.returncode, 2, (cmd, args, r.stderr))
            self.assertIn(words, r.stderr.decode(), (cmd, args))

    def test_help_lists_many_hosts(self):
        for cmd in ("put", "get"):
            r = subprocess.run([FERRY, cmd, "--help"], capture_output=True, timeout=10 * SLOW)
            self.assertEqual(r.returncode, 0)
            for opt in ("-w HOSTS", "-g GROUP", "-x HOSTS", "-f N"):
                self.assertIn(opt, r.stdout.decode())


if __name__ == "__main__":
    ferrytest.main()
