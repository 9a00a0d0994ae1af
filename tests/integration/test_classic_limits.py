"""The --classic listener cannot hurt the main service (issue 11, defect 2):
its connections have their own cap (--classic-max-conns, on top of
--max-conns) and an idle timeout (--classic-idle-timeout), and the command
output all of them hold at once is one budget (--classic-max-output), in
the event and the fork model.  Reserved names on classic uploads are
test_files.py's (ClassicPut).

Nothing sleeps to synchronise: readiness comes from log lines and sockets.
"""
import os
import re
import select
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ferrytest as ft  # noqa: E402
from ferrytest import MiB, SLOW, SANITIZED, recv_exact, wait_until, write_key  # noqa: E402

FERRY = ft.binary("ferry")
SANITIZER_RX = re.compile(r"Sanitizer|runtime error:|LeakSanitizer")
MODELS = {"event": ["--model", "event"], "fork": ["--model", "fork"]}


def closed_by_peer(sock):
    """Whether the server has closed sock (EOF or reset waiting), now.  A
    connection refused at the server's own cap gets its busy closing frame
    first (PROTOCOL.md 2.7): it is read away and the end looked for."""
    while True:
        r, _, _ = select.select([sock], [], [], 0)
        if not r:
            return False
        try:
            data = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return True
        if not data:
            return True
        if b'"closing"' not in data:
            return False


def pss_kib(pid):
    """Proportional set size of pid and its descendants (the fork model's
    connection processes): shared pages counted once in all."""
    total = 0
    for p in ft.process_tree(pid):
        try:
            with open("/proc/%d/smaps_rollup" % p) as f:
                total += sum(int(l.split()[1]) for l in f if l.startswith("Pss:"))
        except OSError:
            pass
    return total


class ClassicLimits:
    ARGS = []

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="ferry-classic-")
        self.addCleanup(self.tmp.cleanup)
        self.key_path = os.path.join(self.tmp.name, "key")
        write_key(self.key_path)
        self.home = os.path.join(self.tmp.name, "home")
        os.mkdir(self.home)

    def server(self, *extra):
        srv = ft.start_ferryd(*self.ARGS, "--root", os.path.join(self.tmp.name, "root"),
                              "--classic", "127.0.0.1:0", *extra, key_path=self.key_path,
                              endpoints=2)
        self.addCleanup(self.assert_no_sanitizer_report, srv)
        self.addCleanup(srv.stop_quietly)      # a graceful stop, so LeakSanitizer runs
        addr = srv.wait_for_log(r"classic protocol on (\S+): UNAUTHENTICATED").group(1)
        host, _, port = addr.rpartition(":")
        main = [a for _, a in srv.endpoints if a != addr][0]
        return srv, (host, int(port)), main

    def assert_no_sanitizer_report(self, srv):
        bad = [l for l in srv.log if SANITIZER_RX.search(l)]
        self.assertEqual(bad, [], "sanitizer report from ferryd:\n" + "\n".join(srv.log[-60:]))

    def connect(self, addr):
        c = socket.create_connection(addr, timeout=10 * SLOW)
        self.addCleanup(c.close)
        return c

    def exec_ok(self, main, *cmd):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.home,
               "LANG": "C.UTF-8"}
        r = subprocess.run([FERRY, "exec", "-k", self.key_path, main, *cmd], env=env,
                           capture_output=True, timeout=20 * SLOW)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def test_idle_classic_connections_do_not_lock_out_the_main_service(self):
        # Before: classic connections counted against --max-conns, so 1,100
        # of them (here 40 against 20) and `ferry exec` failed.
        srv, classic, main = self.server("--max-conns", "20", "--classic-max-conns", "10")
        conns = [self.connect(classic) for _ in range(40)]
        wait_until(lambda: sum(closed_by_peer(c) for c in conns) == 30, 10 * SLOW,
                   "30 classic connections over the cap to be closed")
        srv.wait_for_log(r"classic: \d+ connections? refused: limit of 10 classic connections")
        self.assertEqual(self.exec_ok(main, "echo", "main service"), b"main service\n")
        # The 10 admitted ones still work.
        kept = [c for c in conns if not closed_by_peer(c)]
        self.assertEqual(len(kept), 10)
        kept[0].sendall(b"echo classic")
        h = ft.recv_header(kept[0])
        self.assertEqual(recv_exact(kept[0], h["total_size"]), b"classic\n")
        # Refusals are one summary line, not one line each.
        self.assertLess(len([l for l in srv.log if "refused: limit" in l]), 30)

    def test_idle_classic_connections_are_closed(self):
        srv, classic, main = self.server("--classic-idle-timeout", "1")
        quiet = self.connect(classic)
        busy = self.connect(classic)
        t0 = time.monotonic()
        # A running command is not idle, even past the timeout.
        busy.sendall(b"sleep 1.5; echo done")
        h = ft.recv_header(busy)
        self.assertEqual(recv_exact(busy, h["total_size"]), b"done\n")
        wait_until(lambda: closed_by_peer(quiet), 5 * SLOW, "the idle connection to be closed")
        self.assertGreater(time.monotonic() - t0, 0.9)
        srv.wait_for_log(r"classic \S+: idle for 1 s, closing")
        wait_until(lambda: closed_by_peer(busy), 5 * SLOW, "the other one once its command ended")

    def test_output_memory_is_one_budget_across_connections(self):
        # Before: twenty connections holding 16 MiB of output each took
        # ferryd from 4 MB to 317 MB.  Here 12 connections with a small
        # receive window run a command that writes 12 MB and stays a moment
        # (so that all of them hold their output at once), read only the
        # reply's header and leave the rest unread; 16 MiB is what they may
        # hold together.
        srv, classic, main = self.server("--classic-max-output", "16")
        n, each = 12, 12000000
        base = pss_kib(srv.pid)
        conns = []
        for _ in range(n):
            c = socket.socket()
            self.addCleanup(c.close)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)   # before the window scale
            c.settimeout(20 * SLOW)
            c.connect(classic)
            conns.append(c)
        for c in conns:
            c.sendall(b"head -c %d /dev/zero; sleep 1" % each)
        heads = [ft.recv_header(c) for c in conns]
        cut = [h for h in heads if h["stdout_size"] < each]
        self.assertGreaterEqual(len(cut), n - 2, heads)
        for h in cut:
            self.assertNotEqual(h["status"], 0)
        if not SANITIZED:
            grown = pss_kib(srv.pid) - base
            # 16 MiB of budget, up to ~1.25 MiB per connection on its way
            # out, and (fork model) each connection's process; without the
            # budget it is 12 * 12 MB less what the kernel takes.
            self.assertLess(grown, 48 * 1024, "ferryd grew %d KiB" % grown)
        # The main service is unaffected, and closing the holders gives the
        # budget back.
        self.assertEqual(self.exec_ok(main, "echo", "ok"), b"ok\n")
        for c in conns:
            c.close()

        def full_reply():
            with socket.create_connection(classic, timeout=10 * SLOW) as c:
                c.sendall(b"head -c %d /dev/zero" % each)
                h = ft.recv_header(c)
                recv_exact(c, h["total_size"])
                return h["stdout_size"] == each
        wait_until(full_reply, 10 * SLOW, "the budget to be given back")

    def test_a_command_over_the_budget_is_cut_and_says_why(self):
        srv, classic, main = self.server("--classic-max-output", "1")
        with self.connect(classic) as c:
            c.sendall(b"head -c 3000000 /dev/zero; echo never")
            h = ft.recv_header(c)
            self.assertEqual(h["stdout_size"], MiB)
            self.assertEqual(h["status"], 128 + 9)
            body = recv_exact(c, h["total_size"])
            self.assertIn(b"[ferryd: output cut at 1048576 bytes: the classic listener's output "
                          b"budget (1 MiB across its connections) is in use; command killed]",
                          body[MiB:])
            # The connection goes on, with the budget back.
            c.sendall(b"echo next")
            h = ft.recv_header(c)
            self.assertEqual(recv_exact(c, h["total_size"]), b"next\n")

    def test_killed_connection_processes_give_their_slots_back(self):
        # Fork model: a classic command can kill its own connection process,
        # which then never gives its slot back; without reclaiming, a few
        # such commands would shut the classic listener for good.
        if self.ARGS[-1] != "fork":
            self.skipTest("a connection is a process only in the fork model")
        srv, classic, main = self.server("--classic-max-conns", "2")
        for _ in range(4):
            with self.connect(classic) as c:
                c.sendall(b"head -c 100000 /dev/zero >&2; kill -9 $PPID")
                wait_until(lambda: closed_by_peer(c), 10 * SLOW, "the connection process to die")
                # Reaped: a zombie still counts as a process.
                wait_until(lambda: not srv.children(), 10 * SLOW, "ferryd to reap it")
        with self.connect(classic) as a, self.connect(classic) as b:
            for c in (a, b):
                c.sendall(b"echo alive")
                h = ft.recv_header(c)
                self.assertEqual(recv_exact(c, h["total_size"]), b"alive\n")

    def test_options_are_checked(self):
        for opt in ("--classic-max-conns", "--classic-idle-timeout", "--classic-max-output"):
            r = subprocess.run([ft.binary("ferryd"), "--key-file", self.key_path, opt, "0"],
                               capture_output=True, text=True, timeout=10 * SLOW)
            self.assertEqual(r.returncode, 2)
            self.assertIn(opt, r.stderr)
        r = subprocess.run([ft.binary("ferryd"), "--help"], capture_output=True, text=True)
        for opt in ("--classic-max-conns", "--classic-idle-timeout", "--classic-max-output"):
            self.assertIn(opt, r.stdout)


for _name, _args in MODELS.items():
    _cls = type("ClassicLimits_" + _name, (ClassicLimits, unittest.TestCase), {"ARGS": _args})
    globals()[_cls.__name__] = _cls
del _cls


if __name__ == "__main__":
    ft.main()
