"""Issue 13: `ferry exec -t`, interactive programs on a terminal on the
server.  The client runs inside a real terminal (tmux, ferrytest.Tmux)
against a real ferryd, over TLS as users run it (and once in plaintext and
under --model fork); the protocol's bad input (docs/PROTOCOL.md 2.8) is
sent by ferrytest.Session to a plaintext ferryd.

Every wait is for something to show on the screen or in /proc, with a
deadline; nothing here times anything."""
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import unittest

import ferrytest
from ferrytest import SLOW, Session, write_key

FERRY = ferrytest.binary("ferry")
STATUS = r"status=(\d+)"


def gone(pid):
    """pid has ended: no such process, or a zombie its new parent (init,
    for an orphan) has not reaped yet."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


class TtyTest(unittest.TestCase):
    """One TLS ferryd, and a fresh terminal per test.  A marker the screen
    is searched for never appears in the command line typed (`echo g""o`
    prints go): a long line wraps, and a marker at the start of a wrapped
    piece would match before the command ran."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = cls.tmp.name
        cls.key = os.path.join(cls.dir, "key")
        cls.raw = write_key(cls.key)
        cls.server = ferrytest.start_ferryd(key_path=cls.key)
        cls.host = cls.server.addr()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.tmp.cleanup()
        bad = [l for l in cls.server.log if "Sanitizer" in l or "runtime error:" in l]
        if bad:
            raise AssertionError("sanitizer reports in ferryd's log: %s" % bad[:5])

    def setUp(self):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.dir,
               "LANG": "C.UTF-8", "PS1": "$ ", "TERM": "xterm"}
        env.update(ferrytest.sanitizer_env())
        self.term = ferrytest.Tmux(env, cwd=self.dir)
        self.addCleanup(self.term.kill)

    def ferry(self, opts, command="", after=""):
        """Type a ferry exec command line (opts and command: shell words,
        already quoted) and the line that shows its status."""
        self.term.line("clear; %s exec -k %s %s %s %s %s; echo status=$?"
                       % (FERRY, self.key, opts, self.host, command, after))

    def ferry_pid(self, marker):
        """The pid of the ferry whose command line holds marker, or None."""
        for entry in os.listdir("/proc"):
            try:
                with open("/proc/%s/cmdline" % entry, "rb") as f:
                    argv = f.read().split(b"\0")
            except (OSError, ValueError):
                continue
            if argv[0] == FERRY.encode() and any(marker.encode() in a for a in argv):
                return int(entry)
        return None

    def status(self, timeout=10):
        return int(self.term.wait_for(STATUS, timeout).group(1))

    def test_window_size_and_resize(self):
        self.ferry("-t", "stty size")
        self.term.wait_for(r"(?m)^40 120\s*$")
        self.assertEqual(self.status(), 0)
        self.ferry("-t", """sh -c 'trap "stty size" WINCH; echo rea""dy; while :; do sleep 0.1; done'""")
        self.term.wait_for(r"(?m)^ready")
        self.term.tmux("resize-window", "-t", "t", "-x", "90", "-y", "30")
        self.term.wait_for(r"(?m)^30 90\s*$")
        # Ctrl-C goes to the remote foreground job, which dies of it.
        self.term.keys("C-c")
        self.assertEqual(self.status(), 130)

    def test_resize_while_connecting(self):
        # The window changes after ferry described it and before its
        # SIGWINCH handler was in place: the new size still gets there.
        # A one-shot relay holds the connection until the window changed.
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(1)
        self.addCleanup(lsock.close)
        accepted, go = threading.Event(), threading.Event()

        def relay():
            c, _ = lsock.accept()
            accepted.set()
            go.wait(30)
            u = socket.create_connection(self.server.hostport())
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=pump, args=(a, b), daemon=True).start()

        def pump(a, b):
            try:
                while True:
                    d = a.recv(65536)
                    if not d:
                        break
                    b.sendall(d)
            except OSError:
                pass
            finally:
                for x in (a, b):
                    try:
                        x.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        threading.Thread(target=relay, daemon=True).start()
        self.term.line("clear; %s exec -k %s -t 127.0.0.1:%d 'stty size'; echo status=$?"
                       % (FERRY, self.key, lsock.getsockname()[1]))
        self.assertTrue(accepted.wait(10 * SLOW))
        self.term.tmux("resize-window", "-t", "t", "-x", "90", "-y", "30")
        go.set()
        self.term.wait_for(r"(?m)^30 90\s*$")
        self.assertEqual(self.status(), 0)

    def test_ctrl_c_reaches_the_job_not_the_session(self):
        self.ferry("-t", """sh -c 'trap "echo cau""ght" INT; echo g""o; sleep 30; echo sti""ll here; exit 4'""")
        self.term.wait_for(r"(?m)^go")
        self.term.keys("C-c")
        self.term.wait_for(r"still here")
        self.assertEqual(self.status(), 4)
        self.assertIn("caught", self.term.screen())

    def test_vim_writes_a_file(self):
        path = os.path.join(self.dir, "vim.txt")
        self.ferry("-t", "vim -u NONE -N -i NONE %s" % path)
        self.term.wait_for(r"\[New\]")
        self.term.type("ihello from vim")
        self.term.keys("Escape")
        self.term.wait_for(r"hello from vim")
        self.term.line(":wq")
        self.assertEqual(self.status(), 0)
        with open(path) as f:
            self.assertEqual(f.read(), "hello from vim\n")

    def test_top_refreshes_and_quits(self):
        self.ferry("-t", "top -d 0.5")
        first = self.term.wait_for(r"top - (\d\d:\d\d:\d\d)").group(1)
        # The header's clock moves on: the screen is redrawn.
        self.term.wait_for(r"top - (?!%s)\d\d:\d\d:\d\d" % first, timeout=5)
        self.term.type("q")
        self.assertEqual(self.status(), 0)

    def test_less_pages_a_long_file(self):
        path = os.path.join(self.dir, "long.txt")
        with open(path, "w") as f:
            f.writelines("line %d\n" % i for i in range(1, 1001))
        self.ferry("-t", "less %s" % path)
        self.term.wait_for(r"(?m)^line 1$")
        self.term.type(" ")
        self.term.wait_for(r"(?m)^line 60$")
        self.term.type("G")
        self.term.wait_for(r"(?m)^line 1000$")
        self.term.type("q")
        self.assertEqual(self.status(), 0)

    def test_read_s_and_wide_characters(self):
        self.ferry("-t", """bash -c 'read -s -p "sec""ret? " x; echo; echo "got [$x]"; printf "\\346\\227\\245\\346\\234\\254 \\342\\234\\223\\n"'""")
        self.term.wait_for(r"(?m)^secret\?")   # not the command line
        self.term.line("hunter2")
        self.term.wait_for(r"got \[hunter2\]")
        self.assertEqual(self.status(), 0)
        screen = self.term.screen()
        self.assertEqual(screen.count("hunter2"), 1, screen)   # never echoed
        self.assertIn("\u65e5\u672c \u2713", screen)

    def test_stderr_apart_when_not_a_terminal(self):
        log = os.path.join(self.dir, "err.log")
        self.ferry("-t", "sh -c 'echo out; echo err >&2; exit 3'", after="2>%s" % log)
        self.assertEqual(self.status(), 3)
        screen = self.term.screen()
        self.assertRegex(screen, r"(?m)^out\s*$")
        self.assertNotRegex(screen, r"(?m)^err\s*$")
        with open(log) as f:
            self.assertEqual(f.read(), "err\n")

    def test_login_shell(self):
        # No command and stdin a terminal: -t is implied.
        self.ferry("")
        self.term.line("cd /tmp; pwd; echo $0; exit 7")
        self.assertEqual(self.status(timeout=20), 7)
        screen = self.term.screen()
        self.assertRegex(screen, r"(?m)^/tmp\s*$")
        self.assertRegex(screen, r"(?m)^-\w+\s*$")    # argv[0] of a login shell

    def test_escapes_and_the_terminal_afterwards(self):
        before = os.path.join(self.dir, "stty.before")
        after = os.path.join(self.dir, "stty.after")
        self.term.line("stty -a > %s" % before)
        self.ferry("-t", "sh -c 'echo pid=$$; exec cat'")
        pid = int(self.term.wait_for(r"pid=(\d+)").group(1))
        # ~~ sends one ~ (cat on the terminal shows what arrived), ~? helps.
        self.term.type("~~x")
        self.term.keys("Enter")
        self.term.wait_for(r"(?m)^~x\s*$")
        self.term.type("~?")
        self.term.wait_for(r"Supported escape sequences")
        self.term.keys("Enter")
        self.term.type("~.")
        self.assertEqual(self.status(), 255)
        self.assertIn("Connection to", self.term.screen())
        # The remote process is gone within 1 s (a reading of /proc, not a
        # timing of ferry: ferryd kills it as soon as the session closes).
        ferrytest.wait_until(lambda: gone(pid), timeout=1,
                             what="the remote cat to be gone")
        self.term.line("clear; stty -a > %s; cmp %s %s && echo same-$((6*7))" % (after, before, after))
        self.term.wait_for(r"same-42")

    def test_terminal_restored_after_a_crash_or_a_signal(self):
        before = os.path.join(self.dir, "stty.before")
        self.term.line("stty -a > %s" % before)
        # The server dies under the session: ferry says so, exits 255, and
        # the terminal is as it was.
        server = ferrytest.start_ferryd(key_path=self.key)
        self.addCleanup(server.stop_quietly)
        self.term.line("clear; %s exec -k %s -t %s 'echo u""p; exec cat'; echo status=$?"
                       % (FERRY, self.key, server.addr()))
        self.term.wait_for(r"(?m)^up")
        server.kill()
        self.assertEqual(self.status(), 255)
        self.term.line("stty -a | cmp - %s && echo same-$((6*7))" % before)
        self.term.wait_for(r"same-42")
        # A fatal signal to ferry: restored, then the signal's own death.
        self.ferry("-t", "'echo rea\"\"dy; exec cat # usr1-marker'")
        self.term.wait_for(r"(?m)^ready")
        pid = ferrytest.wait_until(lambda: self.ferry_pid("usr1-marker"), what="ferry's pid")
        os.kill(pid, signal.SIGUSR1)
        self.assertEqual(self.status(), 128 + signal.SIGUSR1)
        self.term.line("clear; stty -a | cmp - %s && echo same-$((6*8))" % before)
        self.term.wait_for(r"same-48")
        # SIGTERM or a hangup: ferry leaves the session (an interactive
        # remote shell would ignore a forwarded one), the remote command
        # goes, the terminal is as it was.
        self.ferry("-t", "'echo rpid=$$; exec cat # term-marker'")
        rpid = int(self.term.wait_for(r"rpid=(\d+)").group(1))
        pid = ferrytest.wait_until(lambda: self.ferry_pid("term-marker"), what="ferry's pid")
        os.kill(pid, signal.SIGTERM)
        self.assertEqual(self.status(), 128 + signal.SIGTERM)
        ferrytest.wait_until(lambda: gone(rpid), timeout=2,
                             what="the remote cat to be gone")
        self.term.line("clear; stty -a | cmp - %s && echo same-$((6*9))" % before)
        self.term.wait_for(r"same-54")

    def test_disconnect_ends_the_jobs_too(self):
        # A shell with job control puts each job in a group of its own; a
        # client that leaves still ends them all (ssh's hangup does).
        self.ferry("-t", """bash -c 'set -m; sleep 300 & echo bg=$!; sleep 301'""")
        bg = int(self.term.wait_for(r"bg=(\d+)").group(1))
        self.assertNotEqual(os.getpgid(bg), os.getsid(bg))
        self.term.keys("Enter")
        self.term.type("~.")
        self.assertEqual(self.status(), 255)
        ferrytest.wait_until(lambda: gone(bg), timeout=1,
                             what="the background job to be gone")

    def test_background_job_does_not_hold_the_session(self):
        # The command ends; a job it left in the background still holds
        # the terminal.  As with ssh -t, the session ends anyway (the
        # terminal is hung up a moment later) with the command's status.
        self.ferry("-t", """bash -c 'set -m; sleep 300 & echo bg=$!; exit 3'""")
        bg = int(self.term.wait_for(r"bg=(\d+)").group(1))
        self.addCleanup(lambda: gone(bg) or os.kill(bg, signal.SIGKILL))
        self.assertEqual(self.status(timeout=5), 3)

    def test_escape_character_changed_and_off(self):
        self.ferry("-t -e '^]'", "cat")
        self.term.type("~.")
        self.term.keys("Enter")
        self.term.wait_for(r"(?m)^~\.\s*$")      # ~ is nothing special now
        self.term.keys("C-]")
        self.term.type(".")
        self.assertEqual(self.status(), 255)
        self.ferry("-t -e none", "sh -c 'read x; echo \"[$x]\"'")
        self.term.line("~.")
        self.term.wait_for(r"\[~\.\]")
        self.assertEqual(self.status(), 0)

    def test_ferry_shell_bang_t(self):
        self.term.line("clear; %s shell -k %s %s; echo status=$?" % (FERRY, self.key, self.host))
        self.term.wait_for(r">>:")
        self.term.line("!t stty size; tty")
        self.term.wait_for(r"(?m)^40 120\s*$")
        self.term.wait_for(r"(?m)^/dev/pts/\d+")
        self.term.line("tty")           # an ordinary line: no terminal
        self.term.wait_for(r"not a tty")
        self.term.line("exit")
        self.assertEqual(self.status(), 1)


class ModelsTest(unittest.TestCase):
    """The same terminal under --model fork and in plaintext."""

    def test_fork_model_and_plaintext(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        d = tmp.name
        key = os.path.join(d, "key")
        write_key(key)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": d,
               "LANG": "C.UTF-8", "PS1": "$ ", "TERM": "xterm"}
        term = ferrytest.Tmux(env, cwd=d)
        self.addCleanup(term.kill)
        for args, client in ((("--model", "fork"), ""), (("--plaintext",), "--plaintext")):
            server = ferrytest.start_ferryd(*args, key_path=key)
            self.addCleanup(server.stop_quietly)
            term.line("clear; %s exec %s -k %s -t %s 'stty size; exit 5'; echo status=$?"
                      % (FERRY, client, key, server.addr()))
            term.wait_for(r"(?m)^40 120\s*$")
            self.assertEqual(int(term.wait_for(STATUS).group(1)), 5)


class NoTerminalTest(unittest.TestCase):
    """-t when stdin is not a terminal: said, and run without one (as ssh),
    unless -tt."""

    def test_t_refused_tt_forced(self):
        with tempfile.TemporaryDirectory() as d:
            key = os.path.join(d, "key")
            write_key(key)
            server = ferrytest.start_ferryd(key_path=key)
            self.addCleanup(server.stop_quietly)
            run = lambda *a: subprocess.run([FERRY, "exec", "-k", key] + list(a), capture_output=True,
                                            stdin=subprocess.DEVNULL, timeout=20 * SLOW)
            r = run("-t", server.addr(), "tty")
            # One line that says what happens, the command then running
            # without a terminal (the man page once said "refused").
            self.assertEqual(r.stderr, b"ferry: -t: stdin is not a terminal, so the command "
                                       b"runs without one (-tt forces one)\n")
            self.assertEqual(r.stdout, b"not a tty\n")
            self.assertEqual(r.returncode, 1)
            r = run("-tt", server.addr(), "tty; echo TERM=$TERM")
            self.assertRegex(r.stdout, rb"^/dev/pts/\d+\r\nTERM=")
            self.assertEqual(r.returncode, 0)
            r = run("-T", server.addr(), "tty")
            self.assertEqual(r.stdout, b"not a tty\n")
            # The end of our stdin is the terminal's end-of-file character
            # there: a shell reading the terminal ends.
            r = subprocess.run([FERRY, "exec", "-k", key, "-tt", server.addr(), "sh"],
                               capture_output=True, input=b"echo h''i\n", timeout=20 * SLOW)
            self.assertIn(b"hi\r\n", r.stdout)
            self.assertEqual(r.returncode, 0)
            # ferry shell reading a script: `!t` needs a terminal, says so,
            # and is never sent ahead as a command line of its own.
            r = subprocess.run([FERRY, "shell", "-k", key, server.addr()], capture_output=True,
                               input=b"echo a\n!t tty\n", timeout=20 * SLOW)
            self.assertEqual(r.stdout, b"a\n")
            self.assertEqual(r.stderr, b"ferry: !t: stdin is not a terminal\n")
            self.assertEqual(r.returncode, 1)


class ProtocolTest(unittest.TestCase):
    """Bad terminal requests, straight on the wire: each a clear request
    error, and the session (and a terminal command running) goes on."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.tmp.name
        cls.key = write_key(os.path.join(d, "key"))
        cls.files_key = write_key(os.path.join(d, "files.key"))
        cls.forced_key = write_key(os.path.join(d, "forced.key"))
        keys = os.path.join(d, "keys")
        fd = os.open(keys, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("alice %s\nfiles %s files-only\n" % (cls.key.hex(), cls.files_key.hex()))
            f.write('forced %s command="tty >/dev/null && echo on-tty; echo [$FERRY_ORIGINAL_COMMAND]"\n'
                    % cls.forced_key.hex())
        cls.server = ferrytest.start_ferryd("--keys", keys, plaintext=True)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.tmp.cleanup()

    def session(self, key=None, name="alice"):
        s = Session(self.server.hostport()).login(key or self.key, name=name)
        self.addCleanup(s.close)
        return s

    def assertRequestError(self, h, words):
        self.assertEqual((h.get("type"), h.get("code")), ("error", "request"), h)
        self.assertIn(words, h["message"])

    def test_bad_terminal_requests(self):
        s = self.session()
        tty = {"term": "xterm", "rows": 24, "cols": 80}
        for bad, words in (({"rows": 0}, "rows"), ({"cols": 100000}, "cols"),
                           ({"rows": "24"}, "rows"), ({"xpixel": -1}, "xpixel"),
                           ({"modes": [1, 2]}, "modes"), ({"modes": {"ECHO": 7}}, "ECHO"),
                           ({"modes": {"VINTR": 300}}, "VINTR"), ({"modes": {"x": "y"}}, "integer"),
                           ({"term": "x y;rm"}, "term"), ({"stderr": "both"}, "stderr")):
            res = s.run({"shell": "echo no", "tty": dict(tty, **bad)})
            self.assertIsNone(res["exit"])
            self.assertEqual(len(res["errors"]), 1)
            self.assertRequestError(res["errors"][0], words)
        # Unknown modes are skipped; the session still runs commands.
        res = s.run({"shell": "stty size; echo $TERM", "tty": dict(tty, modes={"NEWMODE": 1})})
        self.assertEqual(res["out"], b"24 80\r\nxterm\r\n")
        self.assertEqual(res["exit"], {"type": "exit", "status": 0})
        # The audit trail says the command had a terminal.
        self.server.wait_for_log(r"event=exec .*result=exit status=0 .*tty=1 .*shell=")

    def test_forced_command_runs_on_the_terminal(self):
        s = self.session(self.forced_key, "forced")
        res = s.run({"shell": "vim x", "tty": {"rows": 24, "cols": 80}})
        self.assertEqual(res["out"], b"on-tty\r\n[vim x]\r\n")
        res = s.run({"login": True, "tty": {"rows": 24, "cols": 80}})
        self.assertEqual(res["out"], b"on-tty\r\n[]\r\n")
        self.assertEqual(res["exit"]["status"], 0)

    def test_resize_absurd_second_terminal_and_files_only(self):
        s = self.session()
        s.send({"type": "exec", "shell": 'trap "stty size" WINCH; echo ready; read x; exit 9',
                "tty": {"rows": 24, "cols": 80}})
        h, body = s.recv()
        self.assertEqual((h["type"], body), ("stdout", b"ready\r\n"))
        for bad in ({"rows": 0, "cols": 80}, {"rows": 70000, "cols": 80}, {"rows": 24}):
            s.send(dict({"type": "resize"}, **bad))
            self.assertRequestError(s.recv()[0], "window size")
        s.send({"type": "exec", "shell": "true", "tty": {"rows": 1, "cols": 1}})
        h, _ = s.recv()
        self.assertEqual((h["type"], h["code"]), ("error", "busy"))
        self.assertIn("terminal", h["message"])
        # The command was not touched: a good resize reaches it, it exits.
        s.send({"type": "resize", "rows": 30, "cols": 90})
        out = b""
        while b"30 90" not in out:
            h, body = s.recv()
            self.assertEqual(h["type"], "stdout")
            out += body
        s.send({"type": "stdin"}, b"\n")
        while True:
            h, _ = s.recv()
            if h["type"] == "exit":
                break
        self.assertEqual(h["status"], 9)
        # Typing is acknowledged per quarter of the window only: no ack
        # comes before the answer to the next request (frames are handled
        # in order), and one comes once 256 KiB are consumed.
        s.send({"type": "exec", "shell": "cat >/dev/null", "tty": {"rows": 24, "cols": 80}})
        s.send({"type": "stdin"}, b"x")
        s.send({"type": "resize", "rows": 0, "cols": 0})
        self.assertRequestError(s.recv()[0], "window size")
        # Lines, so that the terminal's 4 KiB line limit drops nothing.
        chunk = (b"y" * 63 + b"\n") * 1024
        for _ in range(5):
            s.send({"type": "stdin"}, chunk)
        while True:
            h, _ = s.recv()
            if h["type"] == "stdin-ack":
                break
            self.assertEqual(h["type"], "stdout")    # the terminal's echo
        self.assertGreaterEqual(h["bytes"], 256 * 1024)
        s.close()
        # A files-only key gets no terminal either.
        f = self.session(self.files_key, "files")
        res = f.run({"login": True, "tty": {"rows": 24, "cols": 80}})
        self.assertEqual(res["errors"][0]["code"], "denied")
        self.assertIsNone(res["exit"])
        self.assertEqual(f.stat(".").get("type"), "stat")


if __name__ == "__main__":
    ferrytest.main()
