"""ferry, the client: its command line, key handling, exit statuses,
stdin/stdout/stderr streaming and `ferry shell`, against a real ferryd (over
TLS, keyed by the shared key, as users run it), plus scripted fake servers
for what a real one never does (a wrong server proof, an unauthenticated
server, a hang-up in the middle of a command).  The fakes speak the session
protocol in the clear, so ferry runs with --plaintext against them.

Server-side behaviour (process groups, limits, bad input) is tested with
ferryd's own suite; this file is about what the client does."""
import hashlib
import os
import select
import signal
import socket
import stat
import subprocess
import tempfile
import termios
import threading
import time
import unittest

import ferrytest
from ferrytest import SLOW, frame, recv_frame, write_key

FERRY = ferrytest.binary("ferry")


class ClientTest(unittest.TestCase):
    """Shared fixture: one ferryd with KEY (TLS, the default), and a private
    HOME."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = cls.tmp.name
        cls.key = os.path.join(cls.dir, "key")
        write_key(cls.key)
        cls.wrong_key = os.path.join(cls.dir, "wrong-key")
        write_key(cls.wrong_key)
        cls.home = os.path.join(cls.dir, "home")
        os.mkdir(cls.home)
        cls.server = ferrytest.start_ferryd(key_path=cls.key)
        cls.host = cls.server.addr()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.tmp.cleanup()

    def env(self, key_env=None, home=None):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home or self.home,
               "LANG": "C.UTF-8"}
        env.update(ferrytest.sanitizer_env())
        if key_env:
            env["FERRY_KEY_FILE"] = key_env
        return env

    def ferry(self, *args, input=b"", env=None, timeout=20):
        """Run ferry to completion (bytes in, bytes out)."""
        return subprocess.run([FERRY] + list(args), input=input, capture_output=True,
                              env=env or self.env(), timeout=timeout * SLOW)

    def exec(self, *args, input=b"", opts=(), **kw):
        return self.ferry("exec", "-k", self.key, *opts, self.host, *args, input=input, **kw)

    def assertStatus(self, r, status):
        self.assertEqual(r.returncode, status, "stdout %r stderr %r" % (r.stdout[:300], r.stderr))

    def assertAuthFailed(self, r):
        """Refused for a wrong key, in one line.  Over TLS the PSK does not
        match, and ferry names the key and its file, not the TLS alert:
        "ferry: authentication failed: HOST refused key 'ferry' from FILE
        (...)"."""
        self.assertStatus(r, 255)
        self.assertTrue(r.stderr.startswith(b"ferry: authentication failed"), r.stderr)
        self.assertIn(b"key 'ferry'", r.stderr)
        self.assertEqual(r.stderr.count(b"\n"), 1, r.stderr)
        self.assertEqual(r.stdout, b"")


class UsageTest(ClientTest):
    def test_help_everywhere(self):
        for args in ([], ["exec"], ["shell"], ["keygen"]):
            r = self.ferry(*(args + ["--help"]))
            self.assertStatus(r, 0)
            self.assertIn(b"usage: ferry", r.stdout)
            self.assertEqual(r.stderr, b"")

    def test_every_subcommand_lists_the_common_options(self):
        # The same lines, word for word, in every --help: -h and -V
        # everywhere, the connection options wherever a server is dialled.
        common = ["  -h, --help ", "  -V, --version "]
        dial = ["  -k, --key-file ", "      --key-name ", "      --ca ", "      --cert ",
                "      --cert-key ", "      --plaintext ", "      --connect-timeout ",
                "      --keepalive ", "      --insecure-no-auth ", "  -F, --config ",
                "  -v, --verbose "]
        reference = None
        for sub in ("keygen", "exec", "shell", "put", "get", "ls", "stat", "mkdir", "rm",
                    "config"):
            with self.subTest(sub=sub):
                r = self.ferry(sub, "--help")
                self.assertStatus(r, 0)
                lines = r.stdout.decode().splitlines()
                found = {}
                for want in common + ([] if sub == "keygen" else dial):
                    hits = [l for l in lines if l.startswith(want)]
                    self.assertEqual(len(hits), 1, (want, r.stdout))
                    found[want] = hits[0]
                got = [found[w] for w in common]
                reference = reference or got
                self.assertEqual(got, reference)
                r = self.ferry(sub, "-V")
                self.assertStatus(r, 0)
                self.assertRegex(r.stdout, rb"^ferry \d+\.\d+\.\d+\n$")

    def test_version(self):
        for args in (["--version"], ["exec", "--version"], ["shell", "-V"], ["keygen", "-V"]):
            r = self.ferry(*args)
            self.assertStatus(r, 0)
            self.assertRegex(r.stdout, rb"^ferry \d+\.\d+\.\d+\n$")

    def test_usage_errors_exit_2(self):
        cases = [
            [],                                        # no subcommand
            ["frobnicate"],                            # unknown subcommand
            ["exec"],                                  # no HOST
            ["exec", "--bogus", "h", "true"],
            ["exec", "-k"],                            # missing value
            ["exec", "--timeout", "0", "h", "true"],
            ["exec", "--timeout", "soon", "h", "true"],
            ["exec", "--env", "1X=y", "h", "true"],
            ["exec", "--env", "NOEQUALS", "h", "true"],
            ["shell"],
            ["shell", "h", "extra"],
            ["keygen", "a", "b"],
            ["--plaintext"],                           # connection options, no command
            ["--bogus", "exec", "h", "true"],          # not a connection option
            ["-k"],                                    # missing value, before the command
            ["exec", "h", ""],                         # an empty command line
            ["exec", "h", "--", "", "x"],              # an empty program name
            ["exec", "-w", "h", ""],
        ]
        for args in cases:
            r = self.ferry(*args)
            self.assertStatus(r, 2)
            self.assertTrue(r.stderr.startswith(b"ferry: ") or b"usage:" in r.stderr, r.stderr)
            self.assertEqual(r.stdout, b"")

    def test_zero_turns_keepalive_and_persist_off(self):
        # 0 means none for both, however written; a bad value's message
        # says so (it said "more than 0", and "0.0" was refused).
        for opt in ("--keepalive", "--persist"):
            with self.subTest(opt=opt):
                r = self.ferry("exec", "-k", self.key, opt, "0.0", self.host, "true")
                self.assertStatus(r, 0)
                r = self.ferry("exec", opt, "-1", "h", "true")
                self.assertStatus(r, 2)
                self.assertTrue(r.stderr.startswith(("ferry: bad value for %s: '-1' (seconds, "
                                                     "0 for none, at most " % opt).encode()),
                                r.stderr)

    def test_no_command_is_the_login_shell(self):
        # As ssh: without a terminal the login shell reads its commands
        # from stdin (issue 13); -T makes no difference then.
        for opts in ((), ("-T",)):
            r = self.ferry("exec", "-k", self.key, *opts, self.host,
                           input=b'case "$0" in -*) echo login;; esac; exit 3\n')
            self.assertStatus(r, 3)
            self.assertEqual(r.stdout, b"login\n")

    def test_options_after_host_belong_to_the_command(self):
        # --timeout after HOST is the command's argument, not ferry's option
        r = self.exec("--timeout", "1")
        self.assertStatus(r, 127)


class KeygenTest(ClientTest):
    def test_new_key_mode_and_format(self):
        path = os.path.join(self.dir, "kg", "sub", "key")
        r = self.ferry("keygen", path)
        self.assertStatus(r, 0)
        self.assertIn(path.encode(), r.stdout)
        st = os.stat(path)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode), 0o700)
        with open(path, "rb") as f:
            self.assertRegex(f.read(), rb"^[0-9a-f]{64}\n$")

    def test_refuses_to_overwrite_without_force(self):
        path = os.path.join(self.dir, "kg-keep")
        self.assertStatus(self.ferry("keygen", path), 0)
        with open(path, "rb") as f:
            before = f.read()
        r = self.ferry("keygen", path)
        self.assertStatus(r, 1)
        self.assertIn(b"--force", r.stderr)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), before)
        r = self.ferry("keygen", "--force", path)
        self.assertStatus(r, 0)
        with open(path, "rb") as f:
            after = f.read()
        self.assertNotEqual(after, before)
        self.assertRegex(after, rb"^[0-9a-f]{64}\n$")
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)

    def test_a_directory_is_not_replaced_and_says_so(self):
        # It said "already exists ... (use --force to replace it)", and
        # --force then failed: "cannot create DIR: Is a directory".
        d = tempfile.mkdtemp(dir=self.dir)
        for opts in ((), ("--force",)):
            r = self.ferry("keygen", *opts, d + "/")
            self.assertStatus(r, 1)
            self.assertEqual(r.stderr, ("ferry: %s/ is a directory: name the key file itself "
                                        "(such as %s/key)\n" % (d, d)).encode())
            self.assertEqual(os.listdir(d), [])

    def test_default_path_is_under_home(self):
        home = tempfile.mkdtemp(dir=self.dir)
        r = self.ferry("keygen", env=self.env(home=home))
        self.assertStatus(r, 0)
        path = os.path.join(home, ".config", "ferry", "key")
        self.assertTrue(os.path.exists(path))
        self.assertIn(path.encode(), r.stdout)


class KeyResolutionTest(ClientTest):
    def home_with_key(self, source):
        home = tempfile.mkdtemp(dir=self.dir)
        os.makedirs(os.path.join(home, ".config", "ferry"))
        with open(source) as f:
            write_key(os.path.join(home, ".config", "ferry", "key"), bytes.fromhex(f.read().strip()))
        return home

    def run_echo(self, *opts, env):
        return self.ferry("exec", *opts, self.host, "echo", "ok", env=env)

    def test_dash_k_beats_environment_and_home(self):
        env = self.env(key_env=self.wrong_key, home=self.home_with_key(self.wrong_key))
        r = self.run_echo("-k", self.key, env=env)
        self.assertStatus(r, 0)
        self.assertEqual(r.stdout, b"ok\n")

    def test_environment_beats_home(self):
        env = self.env(key_env=self.key, home=self.home_with_key(self.wrong_key))
        self.assertStatus(self.run_echo(env=env), 0)
        env = self.env(key_env=self.wrong_key, home=self.home_with_key(self.key))
        r = self.run_echo(env=env)
        self.assertAuthFailed(r)

    def test_home_default(self):
        r = self.run_echo(env=self.env(home=self.home_with_key(self.key)))
        self.assertStatus(r, 0)
        self.assertEqual(r.stdout, b"ok\n")

    def test_missing_key_says_how_to_make_one(self):
        r = self.run_echo(env=self.env(home=tempfile.mkdtemp(dir=self.dir)))
        self.assertStatus(r, 255)
        self.assertIn(b"ferry keygen", r.stderr)
        self.assertEqual(r.stderr.count(b"\n"), 1)

    def test_key_readable_by_others_is_refused(self):
        loose = os.path.join(self.dir, "loose-key")
        with open(self.key) as f:
            write_key(loose, bytes.fromhex(f.read().strip()), mode=0o644)
        r = self.run_echo("-k", loose, env=self.env())
        self.assertStatus(r, 255)
        self.assertIn(b"chmod 600", r.stderr)


class ExecTest(ClientTest):
    def test_several_operands_are_the_exact_argv(self):
        r = self.exec("--", "printf", "%s|", "a b", "c")
        self.assertStatus(r, 0)
        self.assertEqual(r.stdout, b"a b|c|")
        # nothing is re-parsed by a shell on the way
        r = self.exec("printf", "%s\n", "$HOME", "*", "'q'")
        self.assertEqual(r.stdout, b"$HOME\n*\n'q'\n")

    def test_one_operand_is_a_shell_command_line(self):
        r = self.exec("echo $((1 + 2)) | tr 3 x")
        self.assertStatus(r, 0)
        self.assertEqual(r.stdout, b"x\n")

    def test_options_of_the_command_pass_through(self):
        # -n is also a ferry option: after HOST it is echo's
        r = self.exec("/bin/echo", "-n", "hi")
        self.assertEqual(r.stdout, b"hi")
        r = self.exec("--", "/bin/echo", "-n", "hi")
        self.assertEqual(r.stdout, b"hi")

    def test_stdout_and_stderr_stay_apart(self):
        r = self.exec("echo out; echo err >&2; echo out2")
        self.assertStatus(r, 0)
        self.assertEqual(r.stdout, b"out\nout2\n")
        self.assertEqual(r.stderr, b"err\n")

    def test_a_closed_stdin_is_an_empty_one(self):
        # ferry started with descriptor 0 closed: its socket took 0 and was
        # read as stdin ("out of memory", or a 30 s keepalive wait).
        r = subprocess.run([FERRY, "exec", "-k", self.key, self.host, "cat; echo end"],
                           capture_output=True, env=self.env(), timeout=20 * SLOW,
                           preexec_fn=lambda: os.close(0))
        self.assertStatus(r, 0)
        self.assertEqual((r.stdout, r.stderr), (b"end\n", b""))

    def test_stdin_is_forwarded_until_eof(self):
        r = self.exec("--", "sort", "-r", input=b"a\nb\n")
        self.assertStatus(r, 0)
        self.assertEqual(r.stdout, b"b\na\n")
        data = os.urandom(3 * 1024 * 1024 + 7)
        r = self.exec("sha256sum", input=data, timeout=60)
        self.assertStatus(r, 0)
        self.assertEqual(r.stdout.split()[0].decode(), hashlib.sha256(data).hexdigest())

    def test_stdin_from_a_file_or_dev_null(self):
        # epoll refuses regular files and /dev/null: they are read in turns
        # instead of watched, and must still reach the command, to the end
        path = os.path.join(self.dir, "stdin.bin")
        data = os.urandom(1024 * 1024 + 3)
        with open(path, "wb") as f:
            f.write(data)
        for source, want in ((path, data), (os.devnull, b"")):
            with open(source, "rb") as f:
                r = subprocess.run([FERRY, "exec", "-k", self.key, self.host, "sha256sum"], stdin=f,
                                   capture_output=True, env=self.env(), timeout=30 * SLOW)
            self.assertStatus(r, 0)
            self.assertEqual(r.stdout.split()[0].decode(), hashlib.sha256(want).hexdigest(), source)

    def test_no_stdin_option(self):
        r = self.exec("wc -c", input=b"ignored", opts=("-n",))
        self.assertStatus(r, 0)
        self.assertEqual(r.stdout.strip(), b"0")

    def test_command_not_reading_stdin_is_not_held_by_it(self):
        # stdin stays open and silent: the exit frame must end ferry anyway
        p = subprocess.Popen([FERRY, "exec", "-k", self.key, self.host, "true"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=self.env())
        try:
            self.assertEqual(p.wait(timeout=5 * SLOW), 0)
        finally:
            p.kill()
            p.communicate()

    def test_env_and_cwd(self):
        r = self.exec('echo "$FOO|$BAR|$(pwd)"',
                      opts=("--env", "FOO=a b", "--env", "BAR=", "--cwd", "/tmp"))
        self.assertStatus(r, 0)
        self.assertEqual(r.stdout, b"a b||/tmp\n")
        r = self.exec("pwd", opts=("--cwd", "/nonexistent-ferry-dir"))
        self.assertStatus(r, 255)
        self.assertTrue(r.stderr.startswith(b"ferry: "), r.stderr)

    def test_an_exec_option_after_host_gets_a_hint(self):
        for word in ("--timeout", "--timeout=1", "-n", "--cwd"):
            with self.subTest(word=word):
                r = self.exec(word, "1", "sleep", "5")
                self.assertStatus(r, 127)
                last = r.stderr.decode().splitlines()[-1]
                self.assertEqual(last, "ferry: hint: '%s' is an option of ferry exec, but everything "
                                 "after HOST is the command: put options before HOST "
                                 "(ferry exec [OPTIONS] HOST COMMAND)" % word)
        # After "--" the word is meant as the command: no hint.
        r = self.exec("--", "--timeout", "1")
        self.assertStatus(r, 127)
        self.assertNotIn(b"hint", r.stderr)
        # A command that is not an option, or that ran, gets none either.
        r = self.exec("no-such-ferry-command")
        self.assertStatus(r, 127)
        self.assertNotIn(b"hint", r.stderr)

    def test_exit_status_passes_through(self):
        self.assertStatus(self.exec("exit 3"), 3)
        self.assertStatus(self.exec("true"), 0)
        self.assertStatus(self.exec("--", "false"), 1)

    def test_killed_by_signal_is_128_plus_n(self):
        self.assertStatus(self.exec("kill -TERM $$"), 128 + signal.SIGTERM)
        self.assertStatus(self.exec("kill -KILL $$"), 128 + signal.SIGKILL)

    def test_timeout_is_124(self):
        start = time.monotonic()
        r = self.exec("sleep 30", opts=("--timeout", "1"))
        self.assertStatus(r, 124)
        self.assertLess(time.monotonic() - start, 10 * SLOW)

    def test_command_not_found_is_127(self):
        r = self.exec("--", "no-such-command-ferry", "x")
        self.assertStatus(r, 127)
        self.assertTrue(r.stderr.startswith(b"ferry: "), r.stderr)
        self.assertIn(b"no-such-command-ferry", r.stderr)
        self.assertStatus(self.exec("no-such-command-ferry"), 127)

    def test_output_streams_as_produced(self):
        p = subprocess.Popen([FERRY, "exec", "-n", "-k", self.key, self.host,
                              "echo a; sleep 1; echo b"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env())
        try:
            self.assertEqual(p.stdout.readline(), b"a\n")
            t_a = time.monotonic()
            self.assertEqual(p.stdout.readline(), b"b\n")
            self.assertGreater(time.monotonic() - t_a, 0.5)
            self.assertEqual(p.wait(timeout=10 * SLOW), 0)
        finally:
            p.kill()
            p.communicate()

    def test_sigint_is_forwarded(self):
        p = subprocess.Popen([FERRY, "exec", "-n", "-k", self.key, self.host,
                              "trap 'echo got INT; exit 7' INT; echo ready; "
                              "while :; do sleep 0.1; done"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env())
        try:
            self.assertEqual(p.stdout.readline(), b"ready\n")
            p.send_signal(signal.SIGINT)
            out, _ = p.communicate(timeout=10 * SLOW)
            self.assertEqual(p.returncode, 7)
            self.assertIn(b"got INT", out)
        finally:
            p.kill()

    def test_a_second_signal_hangs_up(self):
        # A command that does not end on SIGINT could only be left with
        # SIGKILL: every Ctrl-C was forwarded.  The second one hangs up, as
        # with -w and pdsh, and ferryd ends the command.
        marker = os.path.join(self.dir, "still-running-%d" % os.getpid())
        p = subprocess.Popen([FERRY, "exec", "-n", "-k", self.key, self.host,
                              "trap 'echo got INT' INT; echo ready; "
                              "while :; do sleep 0.1; done; touch %s" % marker],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env())
        try:
            self.assertEqual(p.stdout.readline(), b"ready\n")
            p.send_signal(signal.SIGINT)
            self.assertEqual(p.stdout.readline(), b"got INT\n")   # forwarded, and survived
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=10 * SLOW)
            self.assertEqual(p.returncode, 128 + signal.SIGINT, err)
            self.assertEqual(err, b"ferry: SIGINT again: hung up (ferryd ends the command)\n")
        finally:
            p.kill()

    def test_closed_stdout_stops_the_command(self):
        # `ferry exec h yes | head -1`: ends like a local pipeline, quietly
        p = subprocess.Popen([FERRY, "exec", "-n", "-k", self.key, self.host, "yes"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env())
        try:
            self.assertEqual(p.stdout.read(2), b"y\n")
            p.stdout.close()
            self.assertEqual(p.wait(timeout=10 * SLOW), 128 + signal.SIGPIPE)
            self.assertEqual(p.stderr.read(), b"")
        finally:
            p.kill()
            p.stderr.close()

    def test_large_output_in_bounded_memory(self):
        # 256 MiB is 8 times the RSS bound: buffering would show.  The 2 GiB
        # boundary (counts past 2^31) is test_ferryd's
        # test_2g_of_output_intact_in_bounded_memory, which runs this same
        # client and bounds its RSS too.
        size = 256 << 20
        p = subprocess.Popen([FERRY, "exec", "-n", "-k", self.key, self.host,
                              "head -c %d /dev/zero" % size],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=self.env())
        got = 0
        try:
            while True:
                chunk = p.stdout.read1(1 << 20)
                if not chunk:
                    break
                if chunk.count(0) != len(chunk):
                    self.fail("non-zero byte in the output")
                got += len(chunk)
        finally:
            p.stdout.close()
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        self.assertEqual(p.returncode, 0)
        self.assertEqual(got, size)
        if not ferrytest.SANITIZED:
            self.assertLess(usage.ru_maxrss, 32 * 1024, "ferry's peak RSS in KiB")


def read_whole(path):
    with open(path, "rb") as f:
        return f.read()


class PlaintextStreamTest(ClientTest):
    """Output of a plaintext session whose stdout is a pipe travels pipe ->
    socket -> pipe by splice, with no copy in ferryd or ferry; everything
    else (a file, a non-blocking pipe, TLS) by copy.  Each path must keep
    the bytes exact, stdout and stderr apart, and memory bounded."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.plain = ferrytest.start_ferryd(key_path=cls.key, plaintext=True)
        # Pieces of random data of awkward sizes: a splice boundary, a
        # frame boundary or a pipe's size never falls on a piece's edge.
        cls.pieces = []
        for i, size in enumerate((1048576 + 7, 3, 2097152, 65537, 1, 3145728 - 5)):
            path = os.path.join(cls.dir, "piece%d" % i)
            with open(path, "wb") as f:
                f.write(os.urandom(size))
            cls.pieces.append(path)
        cls.script = "; ".join("cat %s; echo err%d >&2" % (p, i) for i, p in enumerate(cls.pieces))
        cls.want = b"".join(read_whole(p) for p in cls.pieces)
        cls.want_err = b"".join(b"err%d\n" % i for i in range(len(cls.pieces)))

    @classmethod
    def tearDownClass(cls):
        cls.plain.stop()
        super().tearDownClass()

    def argv(self, command):
        return [FERRY, "--plaintext", "exec", "-n", "-k", self.key, self.plain.addr(), command]

    def test_pipe_gets_exact_bytes_and_stderr_apart(self):
        r = subprocess.run(self.argv(self.script), capture_output=True, env=self.env(),
                           timeout=30 * SLOW)
        self.assertStatus(r, 0)
        self.assertEqual(len(r.stdout), len(self.want))
        self.assertTrue(r.stdout == self.want, "stdout differs")
        self.assertEqual(r.stderr, self.want_err)

    def test_file_and_nonblocking_pipe_get_exact_bytes(self):
        # A regular file takes no splice from a socket; a non-blocking pipe
        # is refused one (its "full" would look like "no input"): both by copy.
        out = os.path.join(self.dir, "out")
        with open(out, "wb") as f:
            r = subprocess.run(self.argv(self.script), stdout=f, stderr=subprocess.PIPE,
                               env=self.env(), timeout=30 * SLOW)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out, "rb") as f:
            self.assertTrue(f.read() == self.want, "stdout differs")
        self.assertEqual(r.stderr, self.want_err)

        rd, wr = os.pipe()
        os.set_blocking(wr, False)
        p = subprocess.Popen(self.argv(self.script), stdout=wr, stderr=subprocess.PIPE,
                             env=self.env())
        os.close(wr)
        got = []
        with os.fdopen(rd, "rb") as f:
            while True:
                chunk = f.read1(1 << 16)
                if not chunk:
                    break
                got.append(chunk)
        self.assertEqual(p.wait(timeout=30 * SLOW), 0)
        self.assertEqual(p.stderr.read(), self.want_err)
        p.stderr.close()
        self.assertTrue(b"".join(got) == self.want, "stdout differs")

    def test_slow_reader_keeps_ferryd_bounded(self):
        # 96 MiB read at a crawl: ferryd must let the command block rather
        # than take its output (the splice path queues at most one chunk).
        size = 96 << 20
        before = self.plain.rss_kib()
        p = subprocess.Popen(self.argv("head -c %d /dev/zero" % size), stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, env=self.env())
        got, peak = 0, before
        try:
            while True:
                chunk = p.stdout.read1(1 << 20)
                if not chunk:
                    break
                if chunk.count(0) != len(chunk):
                    self.fail("non-zero byte in the output")
                got += len(chunk)
                peak = max(peak, self.plain.rss_kib())
                time.sleep(0.01)
        finally:
            p.stdout.close()
        self.assertEqual(p.wait(timeout=30 * SLOW), 0)
        self.assertEqual(got, size)
        if not ferrytest.SANITIZED:
            self.assertLess(peak - before, 16 * 1024, "ferryd's RSS growth in KiB")

    def test_reader_gone_ends_the_command(self):
        # `ferry exec h yes | head -1`: the splice into a pipe nobody reads
        # fails, ferry stops the command and exits as a pipeline would.
        p = subprocess.Popen(self.argv("yes"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=self.env())
        try:
            self.assertEqual(p.stdout.readline(), b"y\n")
            p.stdout.close()
            self.assertEqual(p.wait(timeout=10 * SLOW), 128 + signal.SIGPIPE)
            self.assertEqual(p.stderr.read(), b"")
        finally:
            p.kill()
            p.stderr.close()


class FailureTest(ClientTest):
    def test_wrong_key(self):
        marker = os.path.join(self.dir, "must-not-exist")
        r = self.ferry("exec", "-k", self.wrong_key, self.host, "touch", marker)
        self.assertAuthFailed(r)
        self.assertFalse(os.path.exists(marker))

    def test_cannot_connect(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))          # a port nobody listens on
        port = s.getsockname()[1]
        s.close()
        r = self.exec_to("127.0.0.1:%d" % port)
        self.assertStatus(r, 255)
        self.assertEqual(r.stderr, b"ferry: cannot connect to 127.0.0.1:%d: Connection refused\n"
                         % port)

    def test_a_bad_port_is_named(self):
        # It said "bad address or unknown host", as for a name no resolver knows.
        for target in ("127.0.0.1:99999", "127.0.0.1:0", "127.0.0.1:7x"):
            r = self.exec_to(target)
            self.assertStatus(r, 255)
            self.assertEqual(r.stderr, b"ferry: cannot connect to %s: the port is not a number "
                             b"from 1 to 65535\n" % target.encode())
        r = self.exec_to("no-such-host.invalid:80")
        self.assertStatus(r, 255)
        self.assertIn(b": bad address or unknown host\n", r.stderr)
        # The same words for a fleet's host, and in its summary.
        r = self.ferry("exec", "-k", self.key, "-w", "127.0.0.1:99999", "true")
        self.assertStatus(r, 255)
        self.assertIn(b"unreachable: 127.0.0.1:99999 (the port is not a number from 1 to 65535)",
                      r.stderr)

    def test_unix_socket_host_syntax(self):
        r = self.exec_to("unix:" + os.path.join(self.dir, "no-such-socket"))
        self.assertStatus(r, 255)
        self.assertIn(b"cannot connect to unix:", r.stderr)

    def exec_to(self, host):
        return self.ferry("exec", "-k", self.key, host, "true")


class ShellTest(ClientTest):
    def shell(self, script, **kw):
        return self.ferry("shell", "-k", self.key, self.host, input=script.encode(), **kw)

    def test_commands_and_cd(self):
        r = self.ferry("shell", "--keep-going", "-k", self.key, self.host,
                       input=b"pwd\ncd /tmp\npwd\ncd /nonexistent-ferry-dir\npwd\n"
                             b"cd\npwd\ncd /\ncd tmp\npwd\n")
        self.assertStatus(r, 0)
        lines = r.stdout.decode().splitlines()
        self.assertEqual(len(lines), 5, r.stdout)
        start = lines[0]
        self.assertEqual(lines[1:], ["/tmp", "/tmp", start, "/tmp"])
        self.assertIn(b"cd /nonexistent-ferry-dir", r.stderr)
        self.assertEqual(r.stderr.count(b"\n"), 1, r.stderr)

    def test_cd_reads_quotes_and_backslashes_as_sh_does(self):
        """cd a\\ b, cd 'a b' and cd "a b" go to "a b" (they went to a
        directory named with the quotes); cd a b still does too, since an
        operand without a quote or a backslash is taken as typed, as the
        README says.  Two words are too many, as in bash; a quoted ~ is a
        name; cd '' and an open quote are errors."""
        base = tempfile.mkdtemp(dir=self.dir)
        os.makedirs(os.path.join(base, "a b", "it's"))
        os.mkdir(os.path.join(base, "~"))
        script = ("cd {0}\ncd a\\ b\npwd\n"
                  "cd {0}\ncd 'a b'\npwd\n"
                  "cd {0}\ncd \"a b\"/\"it's\"\npwd\n"
                  "cd {0}\ncd a b\npwd\n"
                  "cd {0}\ncd '~'\npwd\n"
                  "cd 'a b' c\ncd ''\ncd 'a b\npwd\n").format(base)
        r = self.ferry("shell", "--keep-going", "-k", self.key, self.host, input=script.encode())
        self.assertStatus(r, 0)
        ab = os.path.join(base, "a b")
        self.assertEqual(r.stdout.decode().splitlines(),
                         [ab, ab, os.path.join(ab, "it's"), ab, os.path.join(base, "~"),
                          os.path.join(base, "~")])
        self.assertEqual(r.stderr, b"ferry: cd: too many arguments\n"
                                   b"ferry: cd: the directory name is empty\n"
                                   b"ferry: cd: unterminated ' quote\n")
        # In a script (no --keep-going), one is a failing line like any.
        r = self.shell("cd {0}\ncd 'a b' c\necho never\n".format(base))
        self.assertStatus(r, 1)
        self.assertEqual(r.stdout, b"")

    def test_stderr_and_status_of_last_command(self):
        # "ls" alone is the shell's file listing; "command ls" is the remote
        # program, as the shell's help says.
        r = self.shell("echo hi\ncommand ls /nonexistent-ferry-dir\n")
        self.assertStatus(r, 2)             # ls's status for a missing file
        self.assertEqual(r.stdout, b"hi\n")
        self.assertIn(b"nonexistent-ferry-dir", r.stderr)
        self.assertNotIn(b"ferry:", r.stderr)
        self.assertStatus(self.shell("true\nfalse\n"), 1)
        # An option of the remote ls given to ours is refused, and the way
        # to the remote one said.
        r = self.shell("ls -l\n")
        self.assertStatus(r, 2)
        self.assertEqual(r.stderr, b"ferry: option '-l' is not known\n"
                                   b"Try 'ls --help' for more information.\n"
                                   b"ferry: hint: ls here is ferry's file command; "
                                   b"'command ls ...' runs the server's own\n")

    def test_a_script_stops_at_its_first_failing_line(self):
        """Issue 14: as sh -e, with the failing line's status; the line sent
        ahead meanwhile was conditional and did not run (the server skipped
        it).  --keep-going runs every line; at a prompt nothing stops."""
        marker = os.path.join(self.dir, "ran-after-failure")
        script = "echo one\nsh -c 'exit 3'\ntouch %s\necho never\n" % marker
        r = self.shell(script)
        self.assertStatus(r, 3)
        self.assertEqual(r.stdout, b"one\n")
        self.assertFalse(os.path.exists(marker), "the line after the failure ran")
        r = self.shell("cd /nonexistent-ferry-dir\necho never\n")
        self.assertStatus(r, 1)
        self.assertEqual(r.stdout, b"")
        r = self.ferry("shell", "--keep-going", "-k", self.key, self.host,
                       input=script.encode())
        self.assertStatus(r, 0)
        self.assertEqual(r.stdout, b"one\nnever\n")
        self.assertTrue(os.path.exists(marker))

    def test_exit_quit_and_eof(self):
        r = self.shell("echo one\nexit\necho two\n")
        self.assertEqual(r.stdout, b"one\n")
        r = self.shell("echo one\n  quit  \necho two\n")
        self.assertEqual(r.stdout, b"one\n")
        r = self.shell("")
        self.assertStatus(r, 0)
        self.assertEqual(r.stdout, b"")

    def test_exit_with_a_status(self):
        # `exit N` leaves with N, as sh's; it once ran as the remote
        # `sh -c 'exit N'` and the shell went on (at a prompt, or with
        # --keep-going).  Without N, the last line's status.
        keep = lambda script: self.ferry("shell", "--keep-going", "-k", self.key, self.host,
                                         input=script.encode())
        for script, status, out in (("echo one\nexit 3\necho two\n", 3, b"one\n"),
                                    ("false\nquit 0\necho two\n", 0, b""),
                                    ("false\nexit\necho two\n", 1, b"")):
            r = keep(script)
            self.assertStatus(r, status)
            self.assertEqual(r.stdout, out)
        r = keep("exit 256\nexit soon\necho two\n")
        self.assertStatus(r, 0)
        self.assertEqual(r.stdout, b"two\n")
        self.assertEqual(r.stderr, b"ferry: exit: '256': expected a status from 0 to 255\n"
                                   b"ferry: exit: 'soon': expected a status from 0 to 255\n")
        r = self.shell("exit soon\necho two\n")   # a script stops there, as at an error
        self.assertStatus(r, 2)
        self.assertEqual(r.stdout, b"")

    def test_no_prompt_when_not_a_terminal(self):
        r = self.shell("echo x\n\n   \necho y\n")
        self.assertEqual(r.stdout, b"x\ny\n")

    def test_commands_do_not_eat_the_script(self):
        # stdin is the shell's input, so `cat` must not read the next lines
        r = self.shell("cat\necho after\n")
        self.assertEqual(r.stdout, b"after\n")

    def test_wrong_key(self):
        r = self.ferry("shell", "-k", self.wrong_key, self.host, input=b"echo x\n")
        self.assertAuthFailed(r)

    def test_lock_step_driver_is_not_kept_waiting(self):
        """A driver that writes the next line only after the output of the
        one before (bench/exec_latency.py's lock-step mode, expect-style
        scripts) must get that output: the shell looks ahead for a line to
        send early but never waits for one (script.c)."""
        p = subprocess.Popen([FERRY, "shell", "-k", self.key, self.host], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, env=self.env())
        try:
            for word in ("first", "second", "third"):
                p.stdin.write(b"echo %s\n" % word.encode())
                p.stdin.flush()
                ready = select.select([p.stdout], [], [], 10 * SLOW)[0]
                self.assertTrue(ready, "no output for %r: the shell waits for the next line" % word)
                self.assertEqual(p.stdout.readline(), word.encode() + b"\n")
            p.stdin.close()
            self.assertEqual(p.wait(timeout=10 * SLOW), 0)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdout.close()

    def test_terminal_prompt_edits_and_recalls(self):
        """On a terminal the shell prompts and edits lines with libedit, which
        it loads only then (lineedit.c): the up arrow recalls the last line.
        No other command loads it (ldd shows it is not linked)."""
        master, slave = os.openpty()
        p = subprocess.Popen([FERRY, "shell", "-k", self.key, self.host], stdin=slave,
                             stdout=slave, stderr=slave, env=dict(self.env(), TERM="xterm"),
                             start_new_session=True)
        os.close(slave)
        self.addCleanup(os.close, master)
        seen = bytearray()

        def until(what):
            deadline = time.monotonic() + 10 * SLOW
            while what not in seen:
                left = deadline - time.monotonic()
                self.assertGreater(left, 0, "waited for %r; got %r" % (what, bytes(seen)))
                if select.select([master], [], [], left)[0]:
                    try:
                        chunk = os.read(master, 4096)
                    except OSError:   # EIO: the terminal's last user left
                        chunk = b""
                    self.assertTrue(chunk, "ended before %r; got %r" % (what, bytes(seen)))
                    seen.extend(chunk)
            start = seen.index(what) + len(what)
            del seen[:start]

        def type_(data):
            # Once libedit reads key by key: before, the terminal's line
            # discipline would take the keys (and lose a Ctrl-D).
            ferrytest.wait_until(lambda: not termios.tcgetattr(master)[3] & termios.ICANON,
                                 what="the line editor to read the terminal")
            os.write(master, data)

        try:
            until(b">>: ")
            type_(b"echo ferry-$((6*7))\r")
            until(b"ferry-42\r\n")
            until(b">>: ")
            type_(b"\x1b[A\r")          # up arrow: the line again
            until(b"ferry-42\r\n")
            until(b">>: ")
            type_(b"\x04")               # Ctrl-D: the end
            self.assertEqual(p.wait(timeout=10 * SLOW), 0)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        ldd = subprocess.run(["ldd", FERRY], capture_output=True, text=True)
        if ldd.returncode == 0:   # not under a sanitizer runtime that ldd refuses
            self.assertNotIn("libedit", ldd.stdout)


class ShellTerminalTest(ClientTest):
    """ferry shell at a terminal (a pty): Tab completion of remote and
    local paths, history kept across sessions, `!CMD` and `lls`.  Its own
    ferryd, with a file root the test fills."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = os.path.join(cls.dir, "root")
        os.makedirs(os.path.join(cls.root, "remote-dir", "inner-file"))
        with open(os.path.join(cls.root, "remote-only.txt"), "w") as f:
            f.write("r\n")
        cls.files = ferrytest.start_ferryd("--root", cls.root, key_path=cls.key)

    @classmethod
    def tearDownClass(cls):
        cls.files.stop()
        super().tearDownClass()

    def setUp(self):
        self.work = tempfile.mkdtemp(dir=self.dir)
        os.mkdir(os.path.join(self.work, "local-dir"))
        with open(os.path.join(self.work, "local-only.txt"), "w") as f:
            f.write("l\n")
        self.state = os.path.join(self.work, "state")

    def start(self):
        """ferry shell on a new pty, in self.work, with XDG_STATE_HOME set."""
        master, slave = os.openpty()
        env = dict(self.env(), TERM="xterm", XDG_STATE_HOME=self.state)
        p = subprocess.Popen([FERRY, "shell", "-k", self.key, self.files.addr()], stdin=slave,
                             stdout=slave, stderr=slave, env=env, cwd=self.work,
                             start_new_session=True)
        os.close(slave)
        self.addCleanup(os.close, master)

        def cleanup():
            if p.poll() is None:
                p.kill()
                p.wait()
        self.addCleanup(cleanup)
        seen = bytearray()

        def until(what):
            """Wait for `what` on the screen (with a deadline); drop what came
            up to it and return it."""
            deadline = time.monotonic() + 10 * SLOW
            while what not in seen:
                left = deadline - time.monotonic()
                self.assertGreater(left, 0, "waited for %r; got %r" % (what, bytes(seen)))
                if select.select([master], [], [], left)[0]:
                    try:
                        chunk = os.read(master, 4096)
                    except OSError:   # EIO: the terminal's last user left
                        chunk = b""
                    self.assertTrue(chunk, "ended before %r; got %r" % (what, bytes(seen)))
                    seen.extend(chunk)
            end = seen.index(what) + len(what)
            got = bytes(seen[:end])
            del seen[:end]
            return got

        def type_(data):
            """Type at the prompt once libedit reads keys one by one: a key
            typed before it left canonical mode is taken by the terminal's
            line discipline instead (a Ctrl-D there would be lost)."""
            ferrytest.wait_until(lambda: not termios.tcgetattr(master)[3] & termios.ICANON,
                                 what="the line editor to read the terminal")
            os.write(master, data)
        return p, until, type_

    def finish(self, p, until, type_):
        """Ctrl-D at the prompt (already on the screen): the end."""
        type_(b"\x04")
        self.assertEqual(p.wait(timeout=10 * SLOW), 0)

    # The screen shows a completion as libedit redraws it (a bell, cursor
    # moves), so the tests judge what the completed line did.

    def test_tab_completes_remote_paths_for_remote_operands(self):
        p, until, type_ = self.start()
        until(b">>: ")
        # A directory completes with '/' and no space, so Tab goes on inside.
        type_(b"stat remote-d\tin\t\r")
        until(b"remote-dir/inner-file")
        until(b">>: ")
        type_(b"ls remote-o\t\r")                    # a file
        until(b" remote-only.txt")
        until(b">>: ")
        type_(b"get remote-o\tlocal-d\t\r")          # get's destination is local
        until(b">>: ")
        self.assertTrue(os.path.exists(os.path.join(self.work, "local-dir", "remote-only.txt")))
        self.finish(p, until, type_)

    def test_tab_completion_escapes_what_the_line_would_split(self):
        # A name with a blank or a quote is offered escaped, so the line
        # reads it back whole (it was inserted bare: "stat odd dir/...").
        os.makedirs(os.path.join(self.root, "odd dir"), exist_ok=True)
        with open(os.path.join(self.root, "odd dir", "it's here.txt"), "w") as f:
            f.write("odd\n")
        with open(os.path.join(self.work, "a local (copy).txt"), "w") as f:
            f.write("local\n")
        p, until, type_ = self.start()
        until(b">>: ")
        type_(b"stat od\tit\t\r")
        until(b"path: odd dir/it's here.txt\r\n")
        until(b">>: ")
        type_(b"put a\\ l\todd\\ d\t\r")      # typed escapes complete on
        until(b">>: ")
        self.assertTrue(os.path.exists(os.path.join(self.root, "odd dir", "a local (copy).txt")))
        type_(b"!cat a\t\r")                       # sh reads the escapes too
        until(b"local\r\n")
        until(b">>: ")
        self.finish(p, until, type_)

    def test_tab_completion_offers_no_name_with_controls(self):
        """A server's names with control characters (an OSC or CSI to the
        terminal when listed) are not offered: libedit prints a list of
        matches as it is, and no such name can be asked for anyway."""
        for tail in ("\x1b]0;pwned\x07a", "\u009b31mb"):
            with open(os.path.join(self.root, "zz" + tail), "w") as f:
                f.write("x\n")
        p, until, type_ = self.start()
        until(b">>: ")
        type_(b"stat zz\t\t\r")
        shown = until(b">>: ")
        self.assertNotIn(b"pwned", shown)
        self.assertNotIn(b"\xc2\x9b", shown)
        type_(b"lpwd\r")                  # the shell's status is its last command's
        until(b">>: ")
        self.finish(p, until, type_)

    def test_tab_completes_cd_with_directories_where_commands_run(self):
        """cd's operand is a directory where commands run (not the file
        root), asked of the server: only directories are offered, so
        'local-' completes to local-dir/ although local-only.txt is there."""
        p, until, type_ = self.start()
        until(b">>: ")
        type_(b"cd " + self.work.encode() + b"/local-\t\r")
        until(b">>: ")
        type_(b"pwd\r")
        until(os.path.join(self.work, "local-dir").encode() + b"\r\n")
        until(b">>: ")
        self.finish(p, until, type_)

    def test_tab_completes_cd_with_blanks_escaped(self):
        """A directory with a blank completes as "sp\\ ace\\ dir/", which cd
        reads back as one word, and Tab goes on inside it (unescaped, the
        blanks made the next Tab's word another operand: nothing offered)."""
        os.makedirs(os.path.join(self.work, "sp ace dir", "in ner"))
        p, until, type_ = self.start()
        until(b">>: ")
        type_(b"cd " + self.work.encode() + b"/sp\tin\t\r")
        until(b">>: ")
        type_(b"pwd\r")
        until(os.path.join(self.work, "sp ace dir", "in ner").encode() + b"\r\n")
        until(b">>: ")
        self.finish(p, until, type_)

    def test_tab_completes_local_paths_for_local_operands(self):
        p, until, type_ = self.start()
        until(b">>: ")
        type_(b"put local-o\tremote-d\t\r")          # put's source local, destination remote
        until(b">>: ")
        self.assertTrue(os.path.exists(os.path.join(self.root, "remote-dir", "local-only.txt")))
        type_(b"lcd local-d\t\r")
        until(b">>: ")
        type_(b"lpwd\r")
        until(os.path.join(self.work, "local-dir").encode() + b"\r\n")
        until(b">>: ")
        # The first word completes to the shell's commands.
        type_(b"lpw\t\r")
        until(os.path.join(self.work, "local-dir").encode() + b"\r\n")
        until(b">>: ")
        self.finish(p, until, type_)

    def test_a_remote_listing_is_asked_for_once_per_directory(self):
        p, until, type_ = self.start()
        until(b">>: ")
        type_(b"stat remote-o\t\r")
        until(b" remote-only.txt")
        until(b">>: ")
        # Made on the server behind the shell's back: the cached listing
        # does not have it, so Tab leaves the word as typed (stat fails).
        with open(os.path.join(self.root, "remote-late.txt"), "w") as f:
            f.write("x")
        type_(b"stat remote-l\t\r")
        until(b"remote-l: No such file")
        until(b">>: ")
        # A line that may change the file root (mkdir, put, rm, a command)
        # makes the next Tab ask again.
        type_(b"mkdir made-here\r")
        until(b">>: ")
        type_(b"stat remote-l\t\r")
        until(b"path: remote-late.txt")
        until(b">>: ")
        self.finish(p, until, type_)

    def test_history_is_kept_across_sessions(self):
        p, until, type_ = self.start()
        until(b">>: ")
        type_(b"echo first-$((1+1))\r")
        until(b"first-2\r\n")
        until(b">>: ")
        type_(b"echo second-$((2+1))\r")
        until(b"second-3\r\n")
        until(b">>: ")
        self.finish(p, until, type_)
        path = os.path.join(self.state, "ferry", "history")
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"echo first-$((1+1))\necho second-$((2+1))\n")
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        # The next session recalls them, newest first.
        p, until, type_ = self.start()
        until(b">>: ")
        type_(b"\x1b[A\x1b[A\r")
        until(b"first-2\r\n")
        until(b">>: ")
        self.finish(p, until, type_)

    def test_history_file_stays_bounded(self):
        path = os.path.join(self.state, "ferry", "history")
        os.makedirs(os.path.dirname(path))
        with open(path, "w") as f:
            f.writelines("echo line-%d\n" % i for i in range(2000))
        os.chmod(path, 0o644)
        p, until, type_ = self.start()
        until(b">>: ")
        type_(b"\x1b[A\r")
        until(b"line-1999\r\n")
        until(b">>: ")
        self.finish(p, until, type_)
        with open(path) as f:
            lines = f.read().splitlines()
        self.assertEqual(len(lines), 1000)
        self.assertEqual(lines[0], "echo line-1000")
        self.assertEqual(lines[-1], "echo line-1999")
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        # A session's own lines bring it to the bound too.
        with open(path, "w") as f:
            f.writelines("echo line-%d\n" % i for i in range(1999))
        p, until, type_ = self.start()
        until(b">>: ")
        type_(b"echo last-$((1+1))\r")
        until(b"last-2\r\n")
        until(b">>: ")
        self.finish(p, until, type_)
        with open(path) as f:
            lines = f.read().splitlines()
        self.assertEqual(len(lines), 1000)
        self.assertEqual(lines[0], "echo line-1000")       # 1000..1998, then the new one
        self.assertEqual(lines[-1], "echo last-$((1+1))")

    def test_bang_runs_a_local_command_and_lls_lists_here(self):
        p, until, type_ = self.start()
        until(b">>: ")
        type_(b"!echo hi-from-$((40+2)) > bang-out; cat bang-out\r")
        until(b"hi-from-42\r\n")
        until(b">>: ")
        self.assertTrue(os.path.exists(os.path.join(self.work, "bang-out")))
        type_(b"lls\r")
        got = until(b">>: ")
        self.assertIn(b"local-only.txt", got)
        self.assertIn(b"bang-out", got)
        self.finish(p, until, type_)

    def test_bang_and_lls_in_a_script(self):
        here = os.path.join(self.work, "local-dir").encode()
        r = self.ferry("shell", "-k", self.key, self.files.addr(),
                       input=b"!echo hi\nlls -d %s\n!exit 3\necho never\n" % here)
        self.assertStatus(r, 3)
        self.assertEqual(r.stdout, b"hi\n%s\n" % here)


# ---- scripted fake servers --------------------------------------------------

class FakeServer(threading.Thread):
    """Accepts one connection and runs script(sock, server) on it.  Like
    ferryd, a fake says nothing before the client's hello (read_hello):
    a client that waited for the server to speak first would hang and fail."""

    def __init__(self, script, key=None):
        super().__init__(daemon=True)
        self.script, self.key = script, key
        self.received = []
        self.error = None
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.sock.settimeout(20 * SLOW)
        self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.start()

    def run(self):
        try:
            conn, _ = self.sock.accept()
            with conn:
                conn.settimeout(20 * SLOW)
                self.script(conn, self)
        except Exception as e:       # reported by the test through .error
            self.error = e
        finally:
            self.sock.close()

    def read_hello(self, conn):
        """The client speaks first: {"type":"hello","version":1}."""
        hello, body = recv_frame(conn)
        self.received.append(hello)
        if (hello.get("type"), hello.get("version"), body) != ("hello", 1, b""):
            raise AssertionError("the client's first message is not its hello: %r" % hello)

    def handshake(self, conn, server_proof=None, **hello_extra):
        self.read_hello(conn)
        sn = os.urandom(32)
        conn.sendall(frame(dict({"type": "hello", "version": 1, "server": "fake",
                                 "auth": "hmac-sha256", "nonce": sn.hex()}, **hello_extra)))
        auth, _ = recv_frame(conn)
        self.received.append(auth)
        cn = bytes.fromhex(auth["nonce"])
        if auth["proof"] != ferrytest.proof(self.key, ferrytest.CLIENT_LABEL, sn, cn):
            raise AssertionError("client proof is wrong")
        conn.sendall(frame({"type": "welcome", "proof": server_proof or
                            ferrytest.proof(self.key, ferrytest.SERVER_LABEL, sn, cn)}))

    def drain(self, conn):
        """Record frames until the client hangs up."""
        try:
            while True:
                self.received.append(recv_frame(conn)[0])
        except (EOFError, OSError):
            pass


class FakeServerTest(ClientTest):
    def setUp(self):
        with open(self.key) as f:
            self.raw_key = bytes.fromhex(f.read().strip())

    def run_against(self, script, *args, opts=(), plaintext=True):
        """ferry exec against a fake: in the clear (`ferry --plaintext exec
        ...`), as the fakes do not speak TLS."""
        fake = FakeServer(script, self.raw_key)
        pre = ["--plaintext"] if plaintext else []
        r = self.ferry(*pre, "exec", "-k", self.key, *opts, fake.address, *(args or ("true",)))
        fake.join(10 * SLOW)
        self.assertIsNone(fake.error)
        return r, fake

    def test_another_service_on_the_port_is_named_so(self):
        # An sshd answers a plaintext hello with its banner, which is no
        # frame header: one line that says it may not be ferryd.
        def script(conn, srv):
            srv.read_hello(conn)
            conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
            srv.drain(conn)
        r, fake = self.run_against(script)
        self.assertStatus(r, 255)
        self.assertTrue(r.stderr.startswith(b"ferry: protocol error: "), r.stderr)
        self.assertTrue(r.stderr.endswith(b" (is it ferryd?)\n"), r.stderr)
        self.assertEqual(r.stderr.count(b"\n"), 1, r.stderr)

    def test_a_servers_message_reaches_the_terminal_without_its_controls(self):
        # C0 controls, DEL and the C1 controls in UTF-8 (U+009B is a CSI
        # to terminals that obey C1) become '?'; other text stays.
        def script(conn, srv):
            srv.handshake(conn)
            srv.received.append(recv_frame(conn)[0])
            conn.sendall(frame({"type": "error", "code": "request",
                                "message": "no\x1b]0;owned\x07 \u009b2J \x7f caf\u00e9"},
                               ensure_ascii=False))
            srv.drain(conn)
        r, fake = self.run_against(script)
        self.assertEqual(r.stderr.count(b"\n"), 1, r.stderr)
        self.assertIn("no?]0;owned? ??2J ? caf\u00e9".encode(), r.stderr)

    def test_server_without_the_key_is_refused(self):
        def script(conn, srv):
            srv.handshake(conn, server_proof="00" * 32)
            srv.drain(conn)
        r, fake = self.run_against(script)
        self.assertStatus(r, 255)
        self.assertEqual(r.stderr.decode(), "ferry: authentication failed: %s does not hold key "
                         "'ferry' from %s (its proof is wrong: is it the server you meant?)\n"
                         % (fake.address, self.key))
        # not even the command went out
        self.assertEqual([m["type"] for m in fake.received], ["hello", "auth"])

    def test_client_proof_is_the_documented_hmac(self):
        def script(conn, srv):
            srv.handshake(conn)             # raises if the proof is wrong
            req, _ = recv_frame(conn)
            srv.received.append(req)
            conn.sendall(frame({"type": "stdout"}, b"fine\n"))
            conn.sendall(frame({"type": "exit", "status": 0}))
            srv.drain(conn)
        r, fake = self.run_against(script, "echo", "x", opts=("-n",))
        self.assertStatus(r, 0)
        self.assertEqual(r.stdout, b"fine\n")
        self.assertEqual(fake.received[0], {"type": "hello", "version": 1})
        self.assertEqual(fake.received[1].get("key"), "ferry")      # the default key name
        self.assertEqual(fake.received[2], {"type": "exec", "argv": ["echo", "x"],
                                            "stdin": False})

    def test_shell_sends_the_next_command_ahead(self):
        """To a server whose hello says "pipeline" (PROTOCOL.md 2.2), ferry
        shell reading a script sends each command line's request while the
        one before still runs: this fake reads the second request before it
        answers the first (a client waiting for the exit would hang here).
        cd and the shell's own commands are not sent ahead."""
        def script(conn, srv):
            srv.handshake(conn, pipeline=True)
            start, _ = recv_frame(conn)           # the shell learns its directory
            srv.received.append(start)
            conn.sendall(frame({"type": "cwd", "path": "/home"}))
            first, _ = recv_frame(conn)
            second, _ = recv_frame(conn)          # ahead of the first's exit
            srv.received += [first, second]
            conn.sendall(frame({"type": "stdout"}, b"one\n") + frame({"type": "exit", "status": 0}))
            third, _ = recv_frame(conn)           # ahead of the second's exit
            srv.received.append(third)
            conn.sendall(frame({"type": "stdout"}, b"two\n") + frame({"type": "exit", "status": 0}))
            conn.sendall(frame({"type": "exit", "status": 0}))
            chdir, _ = recv_frame(conn)           # cd: after the third ended
            srv.received.append(chdir)
            conn.sendall(frame({"type": "cwd", "path": "/tmp"}))
            last, _ = recv_frame(conn)
            srv.received.append(last)
            conn.sendall(frame({"type": "exit", "status": 3}))
            srv.drain(conn)
        fake = FakeServer(script, self.raw_key)
        r = self.ferry("--plaintext", "shell", "-k", self.key, fake.address,
                       input=b"echo one\necho two\ntrue\ncd /tmp\nfalse\n")
        fake.join(10 * SLOW)
        self.assertIsNone(fake.error)
        self.assertStatus(r, 3)
        self.assertEqual(r.stdout, b"one\ntwo\n")
        self.assertEqual([(m["type"], m.get("shell", m.get("path"))) for m in fake.received[2:]],
                         [("chdir", "."), ("exec", "echo one"), ("exec", "echo two"), ("exec", "true"),
                          ("chdir", "/tmp"), ("exec", "false")])
        # A script stops at its first failure: what went ahead runs only
        # if the line before succeeds.
        self.assertEqual([m.get("only_after_success") for m in fake.received[3:6]],
                         [None, True, True])

    def test_unauthenticated_server_needs_explicit_consent(self):
        def script(conn, srv):
            srv.read_hello(conn)
            conn.sendall(frame({"type": "hello", "version": 1, "auth": "none"}))
            srv.drain(conn)
        r, fake = self.run_against(script)
        self.assertStatus(r, 255)
        self.assertIn(b"--insecure-no-auth", r.stderr)
        self.assertEqual([m["type"] for m in fake.received], ["hello"])   # nothing after it

        def consenting(conn, srv):
            srv.read_hello(conn)
            conn.sendall(frame({"type": "hello", "version": 1, "auth": "none"}))
            srv.received.append(recv_frame(conn)[0])
            conn.sendall(frame({"type": "welcome"}))
            srv.received.append(recv_frame(conn)[0])
            conn.sendall(frame({"type": "exit", "status": 5}))
            srv.drain(conn)
        # --insecure-no-auth alone: it implies plaintext.
        r, fake = self.run_against(consenting, opts=("--insecure-no-auth",), plaintext=False)
        self.assertStatus(r, 5)
        self.assertEqual(fake.received[1], {"type": "auth", "version": 1})

    def test_tls_authentication_claimed_in_the_clear_is_refused(self):
        # "auth":"tls" means TLS already authenticated both sides; on a
        # plaintext connection nothing did, so the client must not accept
        # it (nor send anything more).
        def script(conn, srv):
            srv.read_hello(conn)
            conn.sendall(frame({"type": "hello", "version": 1, "server": "fake", "auth": "tls"}))
            srv.drain(conn)
        r, fake = self.run_against(script)
        self.assertStatus(r, 255)
        self.assertTrue(r.stderr.startswith(b"ferry: protocol error"), r.stderr)
        self.assertIn(b"TLS", r.stderr)
        self.assertEqual([m["type"] for m in fake.received], ["hello"])

    def test_hang_up_without_exit(self):
        def script(conn, srv):
            srv.handshake(conn)
            recv_frame(conn)
            conn.sendall(frame({"type": "stdout"}, b"partial"))
        r, _ = self.run_against(script, opts=("-n",))
        self.assertStatus(r, 255)
        self.assertEqual(r.stdout, b"partial")
        self.assertEqual(r.stderr, b"ferry: connection closed by server\n")

    def test_broken_framing_is_a_protocol_error(self):
        def script(conn, srv):
            srv.handshake(conn)
            recv_frame(conn)
            conn.sendall(ferrytest.length_prefix(5) + b"nope!")
            srv.drain(conn)
        r, _ = self.run_against(script, opts=("-n",))
        self.assertStatus(r, 255)
        self.assertTrue(r.stderr.startswith(b"ferry: protocol error"), r.stderr)
        self.assertEqual(r.stderr.count(b"\n"), 1)

    def test_signal_exit_and_timeout_mapping(self):
        for exit_frame, status in (({"signal": 9, "core": False}, 137),
                                   ({"signal": 15, "core": False, "timeout": True}, 124),
                                   ({"status": 255}, 255)):
            def script(conn, srv, exit_frame=exit_frame):
                srv.handshake(conn)
                recv_frame(conn)
                conn.sendall(frame(dict(exit_frame, type="exit")))
                srv.drain(conn)
            r, _ = self.run_against(script, opts=("-n",))
            self.assertStatus(r, status)
            self.assertEqual(r.stderr, b"")


if __name__ == "__main__":
    ferrytest.main()
