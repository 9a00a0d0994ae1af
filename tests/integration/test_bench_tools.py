"""ferry-bench and bench-echo, the benchmark suite's tools (issue 5).

Each mode of ferry-bench runs for a small bounded count against a real
server on an ephemeral loopback port (bench-echo, echo_upper in the event
model, frame_echo, ferryd with a key and with --insecure-no-auth), always
with --json, and the JSON is checked for what was asked: the request count,
no errors, ordered latency percentiles, every held connection connected
(and, against ferryd, authenticated).  Nothing here asserts a speed: the
machine is shared and the sanitizer builds are many times slower.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ferrytest as ft  # noqa: E402

SLOW = ft.SLOW
SANITIZER_RX = re.compile(r"Sanitizer|runtime error:|LeakSanitizer")
# Small enough for ASan and TSan, large enough to fill every percentile.
COUNT = 500 if ft.SANITIZED else 2000
HOLD = 200


def bench(*args, timeout=60):
    """Run ferry-bench to completion; returns CompletedProcess (text)."""
    return subprocess.run([ft.binary("ferry-bench")] + [str(a) for a in args],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout * SLOW)


def closed_port():
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BenchCase(unittest.TestCase):

    def server(self, name, *args):
        srv = ft.start_server(name, "--listen", "127.0.0.1:0", *map(str, args))
        self.addCleanup(srv.kill)
        return srv

    def run_json(self, *args):
        """ferry-bench ARGS --json: exit 0, one JSON object on stdout."""
        p = bench(*args, "--json")
        self.assertEqual(p.returncode, 0, "ferry-bench %s: exit %d, stderr: %s"
                         % (" ".join(map(str, args)), p.returncode, p.stderr))
        lines = p.stdout.splitlines()
        self.assertEqual(len(lines), 1, p.stdout)
        return json.loads(lines[0])

    def check_requests(self, r, mode, asked, conns):
        self.assertEqual(r["mode"], mode)
        self.assertEqual(r["connections"], conns)
        self.assertEqual(r["requests"], asked)
        self.assertEqual(r["requests_asked"], asked)
        self.assertEqual(r["errors"], 0, r)
        self.assertEqual(r["request_errors"], {})
        self.assertEqual(r["connect_errors"], {})
        self.assertGreater(r["duration_s"], 0)
        self.assertGreater(r["requests_per_s"], 0)
        lat = r["latency_us"]
        self.assertGreater(lat["min"], 0)
        self.assertLessEqual(lat["min"], lat["p50"])
        self.assertLessEqual(lat["p50"], lat["p90"])
        self.assertLessEqual(lat["p90"], lat["p99"])
        self.assertLessEqual(lat["p99"], lat["p99_9"])
        self.assertLessEqual(lat["p99_9"], lat["max"])
        self.assertGreaterEqual(lat["mean"], lat["min"])
        self.assertLessEqual(lat["mean"], lat["max"])

    def check_hold(self, r, held):
        h = r["hold"]
        self.assertEqual(h["requested"], held)
        self.assertEqual(h["connected"], held, h)
        self.assertEqual(h["failed"], 0, h)
        self.assertEqual(h["failures"], {})
        self.assertEqual(h["dropped"], 0)
        self.assertEqual(h["held"], h["connected"])
        self.assertGreater(h["connect_ms"], 0)


class TestEcho(BenchCase):

    def test_bench_echo(self):
        srv = self.server("bench-echo")
        r = self.run_json("echo", srv.addr(), "-n", COUNT, "-c", 4)
        self.check_requests(r, "echo", COUNT, 4)
        self.assertEqual(r["size"], 64)
        self.assertNotIn("hold", r)
        self.assertEqual(srv.stop(), 0)

    def test_bench_echo_threads(self):
        # Two threads on each side: SO_REUSEPORT listeners, the count split
        # over the client's threads must still add up exactly.
        srv = self.server("bench-echo", "-t", 2)
        r = self.run_json("echo", srv.addr(), "-n", COUNT + 1, "-c", 5, "-t", 2, "-s", 1000)
        self.check_requests(r, "echo", COUNT + 1, 5)
        self.assertEqual(r["threads"], 2)
        self.assertEqual(srv.stop(signal.SIGINT), 0)

    def test_large_messages(self):
        # Larger than a socket buffer: sends and replies interleave.
        srv = self.server("bench-echo")
        r = self.run_json("echo", srv.addr(), "-n", 20, "-c", 2, "-s", 1 << 20)
        self.check_requests(r, "echo", 20, 2)
        self.assertEqual(srv.stop(), 0)

    def test_echo_upper(self):
        srv = self.server("echo_upper", "--model", "event")
        r = self.run_json("echo", srv.addr(), "-n", COUNT, "-c", 4)
        self.check_requests(r, "echo", COUNT, 4)

    def test_duration(self):
        # Bounded by time alone: some requests, none failed.
        srv = self.server("bench-echo")
        r = self.run_json("echo", srv.addr(), "-d", 0.3, "-c", 2, "--warmup", 0.1)
        self.assertEqual(r["errors"], 0)
        self.assertGreater(r["requests"], 0)
        self.assertIsNone(r["requests_asked"])
        self.assertEqual(r["warmup_s"], 0.1)


class TestFrame(BenchCase):

    def test_frame_echo(self):
        srv = self.server("frame_echo")
        r = self.run_json("frame", srv.addr(), "-n", COUNT, "-c", 4)
        self.check_requests(r, "frame", COUNT, 4)

    def test_frame_echo_sizes(self):
        srv = self.server("frame_echo")
        for size in (0, 1, 300000):
            with self.subTest(size=size):
                r = self.run_json("frame", srv.addr(), "-n", 50, "-c", 2, "-s", size)
                self.check_requests(r, "frame", 50, 2)
                self.assertEqual(r["size"], size)

    def test_error_frame_is_an_error(self):
        # Raw echo bytes are not a frame: frame_echo answers with an error
        # frame, and ferry-bench counts it and exits 1.
        srv = self.server("frame_echo")
        p = bench("echo", srv.addr(), "-n", 10, "--json")
        self.assertEqual(p.returncode, 1, p.stderr)
        r = json.loads(p.stdout)
        self.assertEqual(r["errors"], 1)
        self.assertEqual(r["requests"], 0)


class TestHold(BenchCase):

    def test_hold(self):
        srv = self.server("echo_upper", "--model", "event")
        r = self.run_json("hold", srv.addr(), "--hold", HOLD, "-d", 0.2, "-t", 2)
        self.assertEqual(r["mode"], "hold")
        self.assertEqual(r["connections"], 0)
        self.assertIsNone(r["latency_us"])
        self.check_hold(r, HOLD)

    def test_hold_with_active(self):
        # The C10K shape in small: idle connections held while active ones
        # run request/response.
        srv = self.server("echo_upper", "--model", "event")
        r = self.run_json("echo", srv.addr(), "-n", COUNT, "-c", 4, "--hold", HOLD, "-t", 2)
        self.check_requests(r, "echo", COUNT, 4)
        self.check_hold(r, HOLD)

    def test_refused(self):
        port = closed_port()
        p = bench("hold", "127.0.0.1:%d" % port, "--hold", 5, "-d", 0.1, "--json")
        self.assertEqual(p.returncode, 1, p.stderr)
        h = json.loads(p.stdout)["hold"]
        self.assertEqual(h["connected"], 0)
        self.assertEqual(h["failed"], 5)
        self.assertEqual(h["failures"], {"ECONNREFUSED": 5})


def write_key(path):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(os.urandom(32).hex() + "\n")


class TestFerryd(BenchCase):
    """exec and hold against ferryd: every connection authenticates first."""

    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="ferry-bench-test-")
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name
        self.key = os.path.join(self.dir, "key")
        self.wrong_key = os.path.join(self.dir, "wrong-key")
        write_key(self.key)
        write_key(self.wrong_key)

    def ferryd(self, *args):
        srv = self.server("ferryd", "--root", os.path.join(self.dir, "root"), *args)
        self.addCleanup(self.assert_clean, srv)
        return srv

    def assert_clean(self, srv):
        bad = [l for l in srv.log if SANITIZER_RX.search(l)]
        self.assertEqual(bad, [], "sanitizer report from ferryd:\n" + "\n".join(srv.log[-60:]))

    def test_exec(self):
        srv = self.ferryd("--key-file", self.key)
        r = self.run_json("exec", srv.addr(), "-n", 200, "-c", 4, "-k", self.key)
        self.check_requests(r, "exec", 200, 4)
        self.assertEqual(r["auth"], "hmac-sha256")
        self.assertIs(r["fresh"], False)
        self.assertNotIn("hold", r)
        self.assertIsNone(srv.proc.poll())

    def test_exec_with_output(self):
        # stdout and stderr frames are read through and discarded; only
        # the exit frame ends a round trip.
        srv = self.ferryd("--key-file", self.key)
        p = bench("exec", srv.addr(), "-n", 30, "-c", 2, "-t", 2, "-k", self.key, "--json", "--",
                  "sh", "-c", "seq 1 30000; echo done >&2")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.check_requests(json.loads(p.stdout), "exec", 30, 2)

    def test_exec_fresh(self):
        srv = self.ferryd("--key-file", self.key)
        r = self.run_json("exec", srv.addr(), "-n", 50, "-c", 2, "-k", self.key, "--fresh")
        self.check_requests(r, "exec", 50, 2)
        self.assertIs(r["fresh"], True)

    def test_hold_sessions(self):
        srv = self.ferryd("--key-file", self.key)
        r = self.run_json("hold", srv.addr(), "--hold", 100, "-k", self.key, "-d", 1)
        self.assertEqual(r["mode"], "hold")
        self.assertEqual(r["auth"], "hmac-sha256")
        self.check_hold(r, 100)

    def test_exec_with_held_sessions(self):
        srv = self.ferryd("--key-file", self.key)
        r = self.run_json("exec", srv.addr(), "-n", 100, "-c", 2, "--hold", 50, "-t", 2,
                          "-k", self.key)
        self.check_requests(r, "exec", 100, 2)
        self.check_hold(r, 50)

    def test_wrong_key(self):
        srv = self.ferryd("--key-file", self.key)
        p = bench("exec", srv.addr(), "-n", 200, "-c", 4, "-k", self.wrong_key, "--json")
        self.assertEqual(p.returncode, 1, p.stderr)
        r = json.loads(p.stdout)
        self.assertEqual(r["requests"], 0)
        self.assertEqual(r["errors"], 4)
        self.assertEqual(r["connect_errors"], {"auth-refused": 4})
        self.assertIn("authentication failed on 4 connections", p.stderr)
        p = bench("hold", srv.addr(), "--hold", 20, "-d", 0.1, "-k", self.wrong_key, "--json")
        self.assertEqual(p.returncode, 1, p.stderr)
        h = json.loads(p.stdout)["hold"]
        self.assertEqual(h["connected"], 0)
        self.assertEqual(h["failures"], {"auth-refused": 20})
        self.assertIn("authentication failed on 20 connections", p.stderr)
        self.assertIsNone(srv.proc.poll())

    def test_failing_command_counts_errors(self):
        # A failing command is a round trip all the same (timed, counted)
        # and an error; the sessions go on.
        srv = self.ferryd("--key-file", self.key)
        p = bench("exec", srv.addr(), "-n", 40, "-c", 2, "-k", self.key, "--json", "--", "false")
        self.assertEqual(p.returncode, 1, p.stderr)
        r = json.loads(p.stdout)
        self.assertEqual(r["requests"], 40)
        self.assertEqual(r["errors"], 40)
        self.assertEqual(r["request_errors"], {"exit-status": 40})
        self.assertEqual(r["connect_errors"], {})
        self.assertIn("40 commands failed", p.stderr)

    def test_insecure_no_auth(self):
        srv = self.ferryd("--insecure-no-auth")
        r = self.run_json("exec", srv.addr(), "-n", 50, "-c", 2, "--insecure-no-auth")
        self.check_requests(r, "exec", 50, 2)
        self.assertEqual(r["auth"], "none")
        r = self.run_json("hold", srv.addr(), "--hold", 30, "-d", 0.1, "--insecure-no-auth")
        self.check_hold(r, 30)
        # No silent downgrade: a key given, a server without one.
        p = bench("exec", srv.addr(), "-n", 5, "-k", self.key, "--json")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertEqual(json.loads(p.stdout)["connect_errors"], {"auth-mismatch": 1})
        self.assertIn("--insecure-no-auth", p.stderr)

    def test_missing_key_file(self):
        p = bench("exec", "127.0.0.1:1", "-k", os.path.join(self.dir, "nope"))
        self.assertEqual(p.returncode, 1)
        self.assertIn("cannot read key file", p.stderr)
        self.assertEqual(p.stdout, "")


class TestCommandLine(unittest.TestCase):

    def test_help_and_version(self):
        p = bench("--help")
        self.assertEqual(p.returncode, 0)
        self.assertIn("usage: ferry-bench", p.stdout)
        p = bench("--version")
        self.assertEqual(p.returncode, 0)
        self.assertRegex(p.stdout, r"^ferry-bench \(ferry\) \d+\.\d+\.\d+\n$")
        p = subprocess.run([ft.binary("bench-echo"), "--version"], capture_output=True, text=True,
                           timeout=10 * SLOW)
        self.assertEqual(p.returncode, 0)
        self.assertIn("bench-echo", p.stdout)

    def test_usage_errors(self):
        for args in ([], ["echo"], ["bogus", "127.0.0.1:1"], ["echo", "127.0.0.1:1", "-c", "x"],
                     ["echo", "127.0.0.1:1", "-s", "0"], ["hold", "127.0.0.1:1"],
                     ["hold", "127.0.0.1:1", "--hold", "3", "-n", "5"], ["echo", "nonsense"],
                     ["exec", "127.0.0.1:1"], ["echo", "127.0.0.1:1", "-k", "key"],
                     ["hold", "127.0.0.1:1", "--hold", "3", "--fresh", "-k", "key"],
                     ["echo", "127.0.0.1:1", "--", "true"],
                     ["exec", "127.0.0.1:1", "-k", "key", "-s", "10"]):
            with self.subTest(args=args):
                p = bench(*args)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertEqual(len(p.stderr.splitlines()), 1, p.stderr)
                self.assertEqual(p.stdout, "")


if __name__ == "__main__":
    ft.main()
