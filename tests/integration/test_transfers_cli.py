"""Transfers as people expect (issue 14): `-` as put's source and get's
destination (the streamed put of PROTOCOL.md 2.4), remote globs, the
summary line after a transfer on a terminal, and error messages that name
the side and the path that failed.

The `ferry` client runs over TLS against a ferryd of its own, as users run
it; what only the protocol can show (a streamed put's put-end, the glob
request) is driven frame by frame by ferrytest.Session against a
--plaintext ferryd.  Terminals are pseudo-terminals; nothing sleeps to
synchronise."""
import os
import pty
import re
import signal
import subprocess
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ferrytest as ft  # noqa: E402
from ferrytest import MiB, SLOW, digest, parts_under  # noqa: E402
from test_files import FERRY, FilesBase, read, write  # noqa: E402
from test_ferry_client import FakeServer  # noqa: E402


class Cli(FilesBase):
    """The ferry commands against a TLS ferryd; each test works in its own
    remote directory (self.p) and local one (self.lp)."""

    PLAINTEXT = False

    def env(self, **extra):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.home,
               "LANG": "C.UTF-8"}
        env.update(ft.sanitizer_env())
        env.update(extra)
        return env

    def argv(self, cmd, *args, opts=()):
        return [FERRY, cmd, "-k", self.key_path, *opts, self.host, *args]

    def ferry(self, cmd, *args, opts=(), input=b"", env=None, **kw):
        return subprocess.run(self.argv(cmd, *args, opts=opts), input=input,
                              capture_output=True, env=env or self.env(),
                              timeout=60 * SLOW, cwd=self.local, **kw)

    def on_terminal(self, cmd, *args, opts=(), stdout_tty=True):
        """Run with stdout (stdout_tty) or stderr on a pseudo-terminal:
        (status, what the terminal showed, the other stream)."""
        master, slave = pty.openpty()
        try:
            other = subprocess.PIPE
            p = subprocess.Popen(self.argv(cmd, *args, opts=opts), stdin=subprocess.DEVNULL,
                                 stdout=slave if stdout_tty else other,
                                 stderr=other if stdout_tty else slave,
                                 env=self.env(), cwd=self.local)
            os.close(slave)
            slave = -1
            # The other stream is read alongside, so neither side blocks.
            pipe, rest = (p.stderr if stdout_tty else p.stdout), []
            reader = threading.Thread(target=lambda: rest.append(pipe.read()), daemon=True)
            reader.start()
            shown = ft.read_pty(master)
            reader.join(30 * SLOW)
            pipe.close()
            return p.wait(timeout=30 * SLOW), shown, rest[0]
        finally:
            os.close(master)
            if slave >= 0:
                os.close(slave)

    def assertOk(self, r):
        self.assertEqual(r.returncode, 0, "stdout %r stderr %r" % (r.stdout[-500:], r.stderr))

    def assertOneLine(self, r, status=1):
        self.assertEqual(r.returncode, status, r.stderr)
        self.assertEqual(r.stderr.count(b"\n"), 1, r.stderr)

    def lp(self, *names):
        return os.path.join(self.local, *names)


class Stdio(Cli):
    def test_put_from_stdin_streams_and_commits_whole(self):
        data = os.urandom(3 * MiB + 17)       # several reads, the last one short
        r = self.ferry("put", "-", self.p("backup.tar"), input=data)
        self.assertOk(r)
        self.assertEqual(r.stderr, b"")
        self.assertEqual(read(self.rp("backup.tar")), data)
        self.assertEqual(parts_under(self.tdir), [])
        # mode as a new file's: 0666 less the umask (the test's 022 or so)
        mode = os.stat(self.rp("backup.tar")).st_mode & 0o777
        self.assertEqual(mode & 0o111, 0)
        # empty input: an empty file
        self.assertOk(self.ferry("put", "-", self.p("empty"), input=b""))
        self.assertEqual(read(self.rp("empty")), b"")

    def test_put_from_a_failing_stdin_commits_nothing(self):
        write(self.rp("kept"), b"old")
        d = os.open("/", os.O_RDONLY | os.O_DIRECTORY)   # read(2) of it: EISDIR
        try:
            r = subprocess.run(self.argv("put", "-", self.p("kept")), stdin=d,
                               capture_output=True, env=self.env(), timeout=30 * SLOW)
        finally:
            os.close(d)
        self.assertOneLine(r)
        self.assertIn(b"put -: stdin: Is a directory", r.stderr)
        self.assertEqual(read(self.rp("kept")), b"old")
        self.wait_no_parts(self.tdir)

    def test_put_from_stdin_into_a_missing_remote_directory(self):
        r = self.ferry("put", "-", self.p("nodir", "x"), input=b"x")
        self.assertOneLine(r)
        self.assertIn(("put -: remote %s/: No such file" % self.p("nodir")).encode(), r.stderr)

    def test_put_whose_temporary_is_removed_says_so(self):
        """Something on the server removes an upload's temporary: ferry
        shows the server's account (not "Stale file handle") on one line."""
        p = subprocess.Popen(self.argv("put", "-", self.p("vanish")), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env(),
                             cwd=self.local)
        try:
            p.stdin.write(os.urandom(MiB))
            p.stdin.flush()
            part = self.rp(".vanish" + ft.PART)
            ft.wait_until(lambda: os.path.exists(part), 10, "the upload's temporary")
            os.unlink(part)
            out, err = p.communicate(os.urandom(1000), timeout=30 * SLOW)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, 1, err)
        self.assertEqual(err.count(b"\n"), 1, err)
        self.assertIn(b"remote " + self.p("vanish").encode() + b": the upload's temporary file "
                      b"was removed or replaced on the server", err)
        self.assertIn(b"send the file again", err)
        self.assertNotIn(b"Stale file handle", err)
        self.assertFalse(os.path.lexists(self.rp("vanish")))

    def test_put_from_stdin_needs_a_name(self):
        r = self.ferry("put", "-", input=b"x")
        self.assertOneLine(r)
        self.assertIn(b"stdin needs a remote file name", r.stderr)
        r = self.ferry("put", "-", self.p() + "/", input=b"x")
        self.assertOneLine(r)
        r = self.ferry("put", "-", self.p("r"), opts=["--resume"], input=b"x")
        self.assertOneLine(r)
        self.assertIn(b"--resume", r.stderr)
        self.assertFalse(os.path.exists(self.rp("r")))

    def test_get_to_stdout_is_exact(self):
        data = os.urandom(2 * MiB + 3)
        write(self.rp("b.bin"), data)
        r = self.ferry("get", self.p("b.bin"), "-")
        self.assertOk(r)
        self.assertEqual(r.stdout, data)
        self.assertEqual(r.stderr, b"")
        self.assertEqual(parts_under(self.local), [])

    def test_get_to_a_reader_that_stops_ends_quietly(self):
        write(self.rp("big"), os.urandom(8 * MiB))
        p = subprocess.Popen(self.argv("get", self.p("big"), "-"), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=self.env())
        self.assertEqual(len(p.stdout.read(1000)), 1000)
        p.stdout.close()                       # as `| head -c 1000` does
        self.assertEqual(p.wait(timeout=30 * SLOW), 1)
        self.assertEqual(p.stderr.read(), b"")
        p.stderr.close()

    def test_get_to_stdout_takes_one_file(self):
        write(self.rp("a"), b"a")
        write(self.rp("b"), b"b")
        r = self.ferry("get", self.p("a"), self.p("b"), "-")
        self.assertOneLine(r)
        self.assertEqual(r.stdout, b"")
        r = self.ferry("get", self.p("a"), "-", opts=["-r"])
        self.assertOneLine(r)
        self.assertEqual(r.stdout, b"")
        r = self.ferry("get", self.p("nope"), "-")
        self.assertOneLine(r)
        self.assertIn(b"No such file", r.stderr)

    def test_binary_to_a_terminal_is_refused_unless_forced(self):
        write(self.rp("bin"), b"\x7fELF\x00\x01" * 1000)
        write(self.rp("text"), b"hello terminal\n")
        status, shown, err = self.on_terminal("get", self.p("bin"), "-")
        self.assertEqual(status, 1, err)
        self.assertNotIn(b"ELF", shown)
        self.assertEqual(err.count(b"\n"), 1, err)
        self.assertIn(b"--force", err)
        status, shown, err = self.on_terminal("get", self.p("bin"), "-", opts=["--force"])
        self.assertEqual(status, 0, err)
        self.assertIn(b"ELF", shown)
        status, shown, err = self.on_terminal("get", self.p("text"), "-")
        self.assertEqual(status, 0, err)
        self.assertIn(b"hello terminal", shown)

    def test_shell_get_to_stdout_and_put_from_stdin_refused(self):
        write(self.rp("t.txt"), b"from the shell\n")
        script = ("get %s -\nput - %s\n" % (self.p("t.txt"), self.p("x"))).encode()
        r = subprocess.run([FERRY, "shell", "-k", self.key_path, "--keep-going", self.host],
                           input=script, capture_output=True, env=self.env(),
                           timeout=60 * SLOW, cwd=self.local)
        self.assertIn(b"from the shell\n", r.stdout)
        self.assertIn(b"stdin is where the shell's commands come from", r.stderr)
        self.assertFalse(os.path.exists(self.rp("x")))


class Globs(Cli):
    def tree(self):
        for name, data in (("logs/a.gz", b"a"), ("logs/b.gz", b"b"), ("logs/c.txt", b"c"),
                           ("logs/.hidden.gz", b"h"), ("logs/s*r", b"star"),
                           ("logs/old/d.gz", b"d"), ("tmp/x", b""), ("tmp/y", b"")):
            write(self.rp(name), data)

    def test_get_expands_on_the_server(self):
        self.tree()
        os.mkdir(self.lp("out"))
        r = self.ferry("get", self.p("logs", "*.gz"), self.lp("out") + "/")
        self.assertOk(r)
        self.assertEqual(sorted(os.listdir(self.lp("out"))), ["a.gz", "b.gz"])  # no dot file
        # patterns in several components, one level each
        r = self.ferry("get", self.p("*", "*", "d.g?"), self.lp("out"))
        self.assertOk(r)
        self.assertEqual(read(self.lp("out", "d.gz")), b"d")

    def test_rm_ls_stat_expand_and_no_match_is_an_error(self):
        self.tree()
        r = self.ferry("ls", self.p("logs", "[ab].gz"))
        self.assertOk(r)
        self.assertEqual([l.split()[-1] for l in r.stdout.decode().splitlines()],
                         [self.p("logs", "a.gz"), self.p("logs", "b.gz")])
        r = self.ferry("stat", self.p("logs", "*.txt"))
        self.assertOk(r)
        self.assertIn(self.p("logs", "c.txt").encode(), r.stdout)
        self.assertOk(self.ferry("rm", self.p("tmp", "*")))
        self.assertEqual(os.listdir(self.rp("tmp")), [])
        r = self.ferry("rm", self.p("tmp", "*"))
        self.assertOneLine(r)
        self.assertEqual(r.stderr, ("ferry: rm: no match for '%s'\n" % self.p("tmp", "*")).encode())

    def test_shell_lines_expand_on_the_server_too(self):
        self.tree()
        script = ("ls %s\nrm %s\n" % (self.p("logs", "?.gz"), self.p("tmp", "*"))).encode()
        r = subprocess.run([FERRY, "shell", "-k", self.key_path, self.host], input=script,
                           capture_output=True, env=self.env(), timeout=60 * SLOW, cwd=self.local)
        self.assertOk(r)
        self.assertIn(self.p("logs", "b.gz").encode(), r.stdout)
        self.assertEqual(os.listdir(self.rp("tmp")), [])

    def test_escaped_metacharacters_are_literal(self):
        self.tree()
        r = self.ferry("get", self.p("logs", "s\\*r"), "-")
        self.assertOk(r)
        self.assertEqual(r.stdout, b"star")

    def test_never_leaves_the_root(self):
        self.tree()
        os.symlink(self.outside, self.rp("out"))
        r = self.ferry("get", self.p("out", "*"), self.lp())
        self.assertOneLine(r)
        self.assertIn(b"no match", r.stderr)
        self.assertFalse(os.path.exists(self.lp("secret")))
        r = self.ferry("ls", "../*")
        self.assertOneLine(r)
        self.assertIn(b"'..' is not allowed", r.stderr)


class Summary(Cli):
    def test_summary_line_after_a_transfer_on_a_terminal(self):
        write(self.lp("a.iso"), os.urandom(MiB))
        status, shown, _ = self.on_terminal("put", self.lp("a.iso"), self.p("a.iso"),
                                            stdout_tty=False)
        self.assertEqual(status, 0, shown)
        # after the bar's last erase; the terminal turns \n into \r\n
        line = shown.split(b"\x1b[K")[-1].replace(b"\r\n", b"\n").decode()
        want = (r"put %s -> %s:%s 1\.0 MiB in [0-9.]+ s, [0-9.]+ [KMG]?i?B/s, verified\n$"
                % (re.escape(self.lp("a.iso")), re.escape(self.host), re.escape(self.p("a.iso"))))
        self.assertRegex(line, want)
        # several files: one line for them all
        write(self.lp("b.iso"), b"b")
        os.mkdir(self.lp("back"))
        status, shown, _ = self.on_terminal("get", self.p("a.iso"), self.p("a.iso"),
                                            self.lp("back"), stdout_tty=False)
        self.assertEqual(status, 0, shown)
        self.assertEqual(shown.count(b"verified"), 1, shown)
        self.assertIn(b"get 2 files from", shown)

    def test_get_to_stdout_draws_on_stderr(self):
        data = os.urandom(MiB)
        write(self.rp("b"), data)
        status, shown, out = self.on_terminal("get", self.p("b"), "-", stdout_tty=False)
        self.assertEqual(status, 0, shown)
        self.assertEqual(out, data)
        self.assertIn(b"\r" + self.p("b").encode(), shown)        # the bar
        self.assertIn(("get %s:%s -> - 1.0 MiB in " % (self.host, self.p("b"))).encode(), shown)

    def test_quiet_when_piped_or_with_q(self):
        write(self.lp("a"), b"a" * 1000)
        r = self.ferry("put", self.lp("a"), self.p("a"))
        self.assertOk(r)
        self.assertEqual(r.stderr, b"")
        status, shown, _ = self.on_terminal("put", self.lp("a"), self.p("a"), opts=["-q"],
                                            stdout_tty=False)
        self.assertEqual(status, 0, shown)
        self.assertEqual(shown, b"")

    def test_no_summary_when_nothing_arrived(self):
        status, shown, _ = self.on_terminal("get", self.p("nope"), self.lp("x"),
                                            stdout_tty=False)
        self.assertEqual(status, 1)
        self.assertNotIn(b"verified", shown)


class Messages(Cli):
    def test_put_into_a_missing_remote_directory_names_it(self):
        write(self.lp("big.bin"), b"exists locally")
        r = self.ferry("put", self.lp("big.bin"), self.p("nodir") + "/")
        self.assertOneLine(r)
        self.assertIn(("remote %s/: No such file or directory" % self.p("nodir")).encode(),
                      r.stderr)

    def test_put_of_a_file_written_meanwhile_is_not_stored(self):
        """A file written to while ferry reads it (here: grown after ferry
        took its size) would be stored as a mix of two versions: the put
        fails in one line and the server keeps nothing of it.  ferryd is
        held (SIGSTOP) from before the client starts until the client has
        the file open and is waiting for ferryd's answer, so the write
        lands in between."""
        root = tempfile.mkdtemp(prefix="root-", dir=self.dir)
        srv = self.own_server(root)
        src = self.lp("growing.bin")
        write(src, os.urandom(4 * MiB))
        os.kill(srv.pid, signal.SIGSTOP)
        self.addCleanup(os.kill, srv.pid, signal.SIGCONT)
        p = subprocess.Popen([FERRY, "put", "-k", self.key_path, srv.addr(), src, "./"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=self.env(), cwd=self.local)
        self.addCleanup(lambda: p.poll() is None and (p.kill(), p.wait()))

        def opened_and_waiting():
            links = ft.fd_targets(p.pid)
            return src in links and any(l.startswith("socket:") for l in links)
        ft.wait_until(opened_and_waiting, 10, "ferry to open the file and connect")
        with open(src, "ab") as f:
            f.write(b"written while it was being sent")
        os.kill(srv.pid, signal.SIGCONT)
        out, err = p.communicate(timeout=60 * SLOW)
        self.assertEqual(p.returncode, 1, err)
        self.assertEqual(err.count(b"\n"), 1, err)
        self.assertIn(b"growing.bin: file changed while being sent (not stored)", err)
        self.assertFalse(os.path.lexists(os.path.join(root, "growing.bin")))
        ft.wait_until(lambda: not parts_under(root), 10, "the upload's temporary to go")
        # Unchanged, the same file goes.
        r = subprocess.run([FERRY, "put", "-k", self.key_path, srv.addr(), src, "./"],
                           capture_output=True, env=self.env(), cwd=self.local,
                           timeout=60 * SLOW)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(read(os.path.join(root, "growing.bin")), read(src))

    def test_get_into_a_missing_local_directory_hides_the_temporary(self):
        write(self.rp("README.md"), b"readme")
        r = self.ferry("get", self.p("README.md"), self.lp("nodir") + "/")
        self.assertOneLine(r)
        self.assertIn(("local %s/: No such file or directory" % self.lp("nodir")).encode(),
                      r.stderr)
        self.assertNotIn(ft.PART.encode(), r.stderr)

    def test_several_files_into_a_missing_local_directory_say_it_once(self):
        write(self.rp("a"), b"a")
        write(self.rp("b"), b"b")
        r = self.ferry("get", self.p("a"), self.p("b"), self.lp("nodir") + "/")
        self.assertOneLine(r)
        self.assertEqual(r.stderr, ("ferry: get: target '%s/': No such file or directory\n"
                                    % self.lp("nodir")).encode())

    def test_put_outside_the_root_says_remote_as_the_readme_does(self):
        write(self.lp("x"), b"x")
        r = self.ferry("put", self.lp("x"), "../y")
        self.assertOneLine(r)
        self.assertEqual(r.stderr, ("ferry: put %s: remote ../y: '..' is not allowed in a path\n"
                                    % self.lp("x")).encode())
        readme = open(os.path.join(os.path.dirname(__file__), "..", "..", "README.md")).read()
        self.assertTrue("ferry: put x: remote ../y: '..' is not allowed in a path" in " ".join(readme.split()),
                        "the README's example of this message")

    def test_a_file_spelled_as_a_directory_is_not_a_directory(self):
        # "f/" is not the file f, as for rm(1) and ls(1); the server is sent
        # the bare name, so the client checks (it once removed the file).
        write(self.rp("f"), b"data")
        os.mkdir(self.rp("d"))
        write(self.rp("d", "in"), b"in")
        for cmd, opts in (("rm", ()), ("rm", ("-r",)), ("stat", ()), ("ls", ()),
                          ("get", ()), ("get", ("-r",))):
            with self.subTest(cmd=cmd, opts=opts):
                r = self.ferry(cmd, self.p("f") + "/", opts=opts)
                self.assertOneLine(r)
                self.assertEqual(r.stderr, ("ferry: %s %s/: Not a directory\n"
                                            % (cmd, self.p("f"))).encode())
                self.assertEqual(r.stdout, b"")
                self.assertTrue(os.path.exists(self.rp("f")))
                self.assertFalse(os.path.exists(self.lp("f")))
        r = self.ferry("get", self.p("f") + "/", "-")
        self.assertOneLine(r)
        self.assertIn(b": Not a directory\n", r.stderr)
        self.assertEqual(r.stdout, b"")
        # A directory so spelled is fine, and the others on the line still run.
        r = self.ferry("ls", self.p("d") + "/")
        self.assertOk(r)
        self.assertIn(b" in\n", r.stdout)
        r = self.ferry("stat", self.p("f") + "/", self.p("d") + "/")
        self.assertOneLine(r)
        self.assertIn(b"kind: dir", r.stdout)
        r = self.ferry("get", self.p("d") + "/", self.p("f") + "/", self.lp("") + "/",
                       opts=("-r",))
        self.assertOneLine(r)
        self.assertTrue(os.path.exists(self.lp("d", "in")))

    def test_an_empty_path_names_nothing(self):
        # '' (an unset "$DIR") went to the server as the root: rm and mkdir
        # answered about '.' and '..', stat and ls showed the root.  Refused
        # before dialling, as the command line's mistake, with the others on
        # the line left alone.
        write(self.rp("f"), b"data")
        write(self.lp("l"), b"local")
        for cmd, args, opts in (("rm", ("",), ()), ("rm", (self.p("f"), ""), ("-r",)),
                                ("mkdir", ("",), ("-p",)), ("stat", ("",), ()),
                                ("ls", ("",), ()), ("get", ("",), ()),
                                ("get", (self.p("f"), ""), ()), ("put", ("",), ()),
                                ("put", (self.lp("l"), ""), ())):
            with self.subTest(cmd=cmd, args=args):
                r = self.ferry(cmd, *args, opts=opts)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertEqual(r.stdout, b"")
                self.assertTrue(r.stderr.startswith(
                    ("ferry: %s: an empty path names nothing\n" % cmd).encode()), r.stderr)
                self.assertTrue(os.path.exists(self.rp("f")))
        r = subprocess.run([FERRY, "get", "-k", self.key_path, "-w", self.host, ""],
                           capture_output=True, env=self.env(), timeout=60 * SLOW)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(b"ferry: get: an empty path names nothing\n", r.stderr)


class OlderServer(Cli):
    """A ferryd from before streamed puts and globs: its hello says
    neither (a scripted fake, in the clear)."""

    def against_old(self, cmd, *args, answer=None, input=b""):
        with open(self.key_path) as f:
            raw = bytes.fromhex(f.read().strip())

        def script(conn, srv):
            srv.handshake(conn)
            if answer:
                srv.received.append(ft.recv_frame(conn)[0])
                conn.sendall(ft.frame(answer))
            srv.drain(conn)
        fake = FakeServer(script, raw)
        r = subprocess.run([FERRY, "--plaintext", cmd, "-k", self.key_path, fake.address, *args],
                           input=input, capture_output=True, env=self.env(),
                           timeout=30 * SLOW, cwd=self.local)
        fake.join(10 * SLOW)
        self.assertIsNone(fake.error)
        return r, [m.get("type") for m in fake.received]

    def test_put_from_stdin_says_the_server_is_too_old(self):
        r, got = self.against_old("put", "-", "x", input=b"data")
        self.assertOneLine(r)
        self.assertIn(b"too old to take a stream", r.stderr)
        self.assertEqual(got, ["hello", "auth"])       # no put went out

    def test_patterns_go_as_they_are(self):
        r, got = self.against_old("get", "a*b", "-", answer={
            "type": "error", "code": "fs", "errno": "ENOENT", "message": "a*b: No such file"})
        self.assertOneLine(r)
        self.assertEqual(got[:3], ["hello", "auth", "get"])


class HostileGlob(Cli):
    """A server that answers a pattern with paths the pattern does not
    match: they would name local files (get *.gz DIR), as scp's server
    could (CVE-2019-6111).  ferry refuses the answer and writes nothing."""

    def glob_answered(self, matches, *args):
        with open(self.key_path) as f:
            raw = bytes.fromhex(f.read().strip())

        def script(conn, srv):
            srv.handshake(conn, glob=True)
            req = ft.recv_frame(conn)[0]
            srv.received.append(req)
            conn.sendall(ft.frame({"type": "matches", "paths": matches}) +
                         ft.frame({"type": "glob-end"}))
            try:    # what the client asks next, if anything; then hang up
                srv.received.append(ft.recv_frame(conn)[0])
            except (EOFError, OSError):
                pass
        fake = FakeServer(script, raw)
        out = tempfile.mkdtemp(dir=self.local)
        r = subprocess.run([FERRY, "--plaintext", "get", "-k", self.key_path, fake.address,
                            *args, out + "/"], capture_output=True, env=self.env(),
                           timeout=30 * SLOW, cwd=self.local)
        fake.join(10 * SLOW)
        self.assertIsNone(fake.error)
        return r, fake, os.listdir(out)

    def test_a_match_the_pattern_does_not_match_is_refused(self):
        for bad in (".bashrc", "a.txt", "logs/../x.gz", "other/x.gz", "x.gz/y"):
            with self.subTest(bad=bad):
                r, fake, made = self.glob_answered(["a.gz", bad], "*.gz")
                self.assertOneLine(r, 255)
                self.assertIn(b"which the pattern does not match", r.stderr)
                self.assertEqual(made, [])
                # the glob was the last request: nothing was fetched
                self.assertEqual([m["type"] for m in fake.received], ["hello", "auth", "glob"])

    def test_a_match_of_path_max_bytes_is_refused(self):
        # paths are under 4096 bytes (PROTOCOL.md): longer ones are not held
        r, fake, made = self.glob_answered(["x" * 4096], "*")
        self.assertOneLine(r, 255)
        self.assertIn(b"bad path in a glob's matches", r.stderr)
        self.assertEqual(made, [])

    def test_honest_matches_pass(self):
        # hidden names only when the pattern says the dot; escapes as fnmatch reads them
        for pattern, good in (("logs/*.gz", "logs/a.gz"), (".*", ".hidden"),
                              ("a\\*b/?", "a*b/c"), ("[ab]*/*", "b1/x"),
                              # a component's last backslash escapes nothing: a name's own
                              ("d\\/*", "d\\/x")):
            with self.subTest(pattern=pattern):
                r, fake, made = self.glob_answered([good], pattern)
                self.assertEqual(fake.received[2]["path"], pattern)
                self.assertNotIn(b"which the pattern does not match", r.stderr)
                # it went on to fetch the match (the fake then hangs up)
                self.assertEqual(fake.received[3].get("type"), "get", fake.received)
                self.assertEqual(fake.received[3].get("path"), good)


class StreamProto(FilesBase):
    """The streamed put at the protocol level (PROTOCOL.md 2.4)."""

    def test_hello_says_put_stream_and_glob(self):
        s = ft.Session(self.hostport)
        self.addCleanup(s.close)
        h = s.hello()
        self.assertIs(h.get("put_stream"), True, h)
        self.assertIs(h.get("glob"), True, h)

    def test_glob_answers_sorted_matches_in_bounded_frames(self):
        names = ["f%04d-%s" % (i, "x" * 200) for i in range(300)]
        for n in names:
            write(self.rp("g", n), b"")
        write(self.rp("g", ".hidden"), b"")
        write(self.rp("g", ".f.ferry-part"), b"")          # a temporary: never matched
        s = self.session()
        s.send({"type": "glob", "path": self.p("g", "*")})
        got, frames = [], 0
        while True:
            h, _ = s.recv()
            if h["type"] != "matches":
                break
            frames += 1
            self.assertLess(len(ft.encode(h)), 64 * 1024)
            got.extend(h["paths"])
        self.assertEqual(h, {"type": "glob-end", "count": 300})
        self.assertGreater(frames, 1)
        self.assertEqual(got, [self.p("g", n) for n in names])
        s.send({"type": "glob", "path": self.p("g", ".*")})
        h, _ = s.recv()
        self.assertEqual(h["paths"], [self.p("g", ".hidden")])
        self.assertEqual(s.recv()[0]["count"], 1)
        s.send({"type": "glob", "path": self.p("nothing", "*")})
        self.assertEqual(s.recv()[0], {"type": "glob-end", "count": 0})
        s.send({"type": "glob", "path": "../*"})
        self.assertType(s.recv()[0], "error", "path")
        self.assertType(s.stat("."), "stat")    # and the session goes on

    def test_glob_of_too_many_paths_is_refused(self):
        os.mkdir(self.rp("many"))
        for i in range(10001):
            open(self.rp("many", str(i)), "wb").close()
        s = self.session()
        s.send({"type": "glob", "path": self.p("many", "*")})
        h, _ = s.recv()
        self.assertType(h, "error", "request")
        self.assertIn("10000", h["message"])
        self.assertType(s.stat("."), "stat")

    def test_glob_under_key_restrictions(self):
        """read-only keys may glob (it changes nothing), command= keys may
        not (no file request at all)."""
        write(self.rp("k", "a"), b"")
        keys = os.path.join(self.dir, "keys-" + self.td)
        reader, forced = os.urandom(32), os.urandom(32)
        fd = os.open(keys, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("reader %s read-only\nforced %s command=\"true\"\n"
                    % (reader.hex(), forced.hex()))
        srv = ft.start_ferryd("--root", self.root, "--keys", keys, plaintext=True)
        self.addCleanup(srv.stop)
        s = ft.Session(srv.hostport()).login(reader, name="reader")
        self.addCleanup(s.close)
        s.send({"type": "glob", "path": self.p("k", "*")})
        self.assertEqual(s.recv()[0]["paths"], [self.p("k", "a")])
        self.assertEqual(s.recv()[0]["count"], 1)
        s = ft.Session(srv.hostport()).login(forced, name="forced")
        self.addCleanup(s.close)
        self.assertType(s.request({"type": "glob", "path": self.p("k", "*")}), "error", "denied")

    def stream_begin(self, s, path, **extra):
        msg = {"type": "put", "path": path, "stream": True, "mode": 0o640,
               "checksum": "xxh3-128"}
        msg.update(extra)
        s.send(msg)
        h, _ = s.recv()
        return h

    def test_streamed_put_commits_with_the_size_at_put_end(self):
        s = self.session()
        data = os.urandom(20 * MiB + 5)       # more than one 16 MiB segment
        self.assertType(self.stream_begin(s, self.p("s.bin")), "put-ready")
        s.send_data(data, 0, segment=16 * MiB)
        self.assertFalse(os.path.exists(self.rp("s.bin")))   # not before put-end
        s.send({"type": "put-end", "checksum": digest(data), "filesize": len(data)})
        h, _ = s.recv()
        self.assertType(h, "put-ok")
        self.assertEqual(h["filesize"], len(data))
        self.assertEqual(read(self.rp("s.bin")), data)
        self.assertEqual(os.stat(self.rp("s.bin")).st_mode & 0o777, 0o640)

    def test_streamed_put_with_a_bad_checksum_is_not_committed(self):
        s = self.session()
        write(self.rp("keep"), b"old")
        self.assertType(self.stream_begin(s, self.p("keep")), "put-ready")
        s.send_data(b"new bytes", 0)
        s.send({"type": "put-end", "checksum": digest(b"other"), "filesize": 9})
        h, _ = s.recv()
        self.assertType(h, "error", "checksum")
        self.assertEqual(read(self.rp("keep")), b"old")
        self.wait_no_parts(self.tdir)

    def test_streamed_put_size_must_match_and_be_said_once(self):
        s = self.session()
        self.assertType(self.stream_begin(s, self.p("a")), "put-ready")
        s.send_data(b"abc", 0)
        s.send({"type": "put-end", "checksum": digest(b"abc"), "filesize": 4})
        h, _ = s.recv()
        self.assertType(h, "error", "protocol")
        self.wait_no_parts(self.tdir)
        # a filesize in the request of a stream, and resume, are refused
        s = self.session()
        self.assertType(self.stream_begin(s, self.p("a"), filesize=3), "error", "protocol")
        s = self.session()
        self.assertType(self.stream_begin(s, self.p("a"), resume=True), "error", "request")
        self.assertType(s.stat("."), "stat")    # and the session goes on

    def test_streamed_put_cut_off_leaves_nothing(self):
        s = self.session()
        self.assertType(self.stream_begin(s, self.p("cut")), "put-ready")
        s.send_data(os.urandom(MiB), 0)
        s.close()
        self.wait_no_parts(self.tdir)
        self.assertFalse(os.path.exists(self.rp("cut")))


if __name__ == "__main__":
    ft.main()
