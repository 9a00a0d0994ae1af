"""ferry-bench and bench-echo, the benchmark suite's tools (issue 5).

Each mode of ferry-bench runs for a small bounded count against a real
server on an ephemeral loopback port (bench-echo, echo_upper in the event
model, frame_echo, ferryd with a key and with --insecure-no-auth), always
with --json, and the JSON is checked for what was asked: the request count,
no errors, ordered latency percentiles, every held connection connected
(and, against ferryd, authenticated).  put and get are checked against
what lands in (or comes from) ferryd's root: the uploaded files' exact
bytes, recomputed here from --seed, and the byte counts and checksums of
downloads, including one corrupted on the way that must be counted as an
error.  Nothing here asserts a speed: the machine is shared and the
sanitizer builds are many times slower.

The benchmarks' fair ssh baseline (bench/sshlib.py: a dedicated user
with login shell /bin/sh and an empty home, made for a run and removed
after it) is checked too, where it can be: as root, with useradd and sshd.
Each case runs sshlib in a child python, as a benchmark would, so its
exit and signal handling are the real ones.
"""
import hashlib
import json
import os
import pwd
import re
import shutil
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


class FerrydCase(BenchCase):
    """A ferryd with a fresh key (and a second, wrong one) in a temp dir.

    ferry-bench speaks ferryd's plaintext protocol only (no TLS), so every
    ferryd here runs with --plaintext, unless tls=True."""

    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="ferry-bench-test-")
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name
        self.key = os.path.join(self.dir, "key")
        self.wrong_key = os.path.join(self.dir, "wrong-key")
        ft.write_key(self.key)
        ft.write_key(self.wrong_key)

    def ferryd(self, *args, tls=False):
        mode = () if tls else ("--plaintext",)
        srv = self.server("ferryd", "--root", os.path.join(self.dir, "root"), *mode, *args)
        self.addCleanup(self.assert_clean, srv)
        return srv

    def assert_clean(self, srv):
        bad = [l for l in srv.log if SANITIZER_RX.search(l)]
        self.assertEqual(bad, [], "sanitizer report from ferryd:\n" + "\n".join(srv.log[-60:]))


class TestFerryd(FerrydCase):
    """exec and hold against ferryd: every connection authenticates first."""

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

    def test_tls_ferryd(self):
        # A TLS listener answers ferry-bench's plaintext hello with
        # tls-required: one line that says what to do, exit 1.
        srv = self.ferryd("--key-file", self.key, tls=True)
        p = bench("exec", srv.addr(), "-n", 5, "-c", 2, "-k", self.key, "--json")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertEqual(json.loads(p.stdout)["connect_errors"], {"tls-required": 2})
        self.assertEqual(p.stderr.splitlines(),
                         ["ferry-bench: ferryd requires TLS (2 connections refused); ferry-bench "
                          "speaks the plaintext protocol only: start ferryd with --plaintext"])

    def test_missing_key_file(self):
        p = bench("exec", "127.0.0.1:1", "-k", os.path.join(self.dir, "nope"))
        self.assertEqual(p.returncode, 1)
        self.assertIn("cannot read key file", p.stderr)
        self.assertEqual(p.stdout, "")


def content(seed, n):
    """ferry-bench put's file: splitmix64 from seed, each output stored
    little-endian, the last one cut to fit (bench_xfer.c, bench_xfer_fill)."""
    mask = (1 << 64) - 1
    out = bytearray()
    for k in range((n + 7) // 8):
        z = (seed + (k + 1) * 0x9E3779B97F4A7C15) & mask
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        out += (z ^ (z >> 31)).to_bytes(8, "little")
    return bytes(out[:n])


SEGMENT = 16 << 20      # PROTO_DATA_SEGMENT: the largest data frame


class TestTransfers(FerrydCase):
    """put and get: whole file transfers over warm sessions, one request
    each, checked against ferryd's root."""

    def setUp(self):
        super().setUp()
        self.root = os.path.join(self.dir, "root")
        os.mkdir(self.root)
        self.srv = self.ferryd("--key-file", self.key)

    def check_transfer(self, r, mode, count, conns, size):
        self.check_requests(r, mode, count, conns)
        self.assertEqual(r["size"], size)
        t = r["transfer"]
        self.assertEqual(t["direction"], mode)
        self.assertEqual(t["file_size"], size)
        self.assertEqual(t["bytes"], size * count)
        if size:
            self.assertGreater(t["bytes_per_s"], 0)
            self.assertAlmostEqual(t["mb_per_s"], t["bytes_per_s"] / 1e6, delta=1e-6 * t["mb_per_s"])
            self.assertAlmostEqual(t["gb_per_s"], t["bytes_per_s"] / 1e9, delta=1e-6 * t["gb_per_s"])
        return t

    def write_root(self, name, data):
        with open(os.path.join(self.root, name), "wb") as f:
            f.write(data)

    def test_put_leaves_exact_files(self):
        # Three connections over two threads: each writes its own name,
        # over and over; what is left is the seed's content, byte for byte.
        size, seed = 300001, 7
        r = self.run_json("put", self.srv.addr(), "-k", self.key, "-n", 7, "-c", 3, "-t", 2,
                          "-s", size, "--seed", seed)
        t = self.check_transfer(r, "put", 7, 3, size)
        want = content(seed, size)
        self.assertEqual(t["checksum_alg"], "xxh3-128")
        self.assertEqual(t["checksum"], ft.digest(want))
        self.assertEqual(t["seed"], seed)
        names = ["bench-put-%d.bin" % i for i in range(3)]
        self.assertEqual(t["paths"], names)
        self.assertEqual(sorted(os.listdir(self.root)), names)   # no temporaries left
        for n in names:
            with open(os.path.join(self.root, n), "rb") as f:
                self.assertEqual(f.read(), want, n)

    def test_put_several_frames_remote_dir(self):
        # Past one 16 MiB data frame (two frames, the second 3 bytes), into
        # a subdirectory; the default seed is 0.
        os.mkdir(os.path.join(self.root, "sub"))
        size = SEGMENT + 3
        r = self.run_json("put", self.srv.addr(), "-k", self.key, "-n", 2, "-s", size,
                          "--remote-dir", "sub/")
        t = self.check_transfer(r, "put", 2, 1, size)
        self.assertEqual(t["paths"], ["sub/bench-put-0.bin"])
        path = os.path.join(self.root, "sub", "bench-put-0.bin")
        self.assertEqual(os.path.getsize(path), size)
        self.assertEqual(ft.digest_file(path), t["checksum"])
        with open(path, "rb") as f:
            head = f.read(4096)
            f.seek(SEGMENT - 5)
            tail = f.read()
        want = content(0, size)
        self.assertEqual(head, want[:4096])
        self.assertEqual(tail, want[SEGMENT - 5:])

    def test_put_sizes_and_sha256(self):
        # An empty file (no data frame at all), one byte, a size with K.
        for size, arg in ((0, "0"), (1, "1"), (3 << 10, "3K")):
            with self.subTest(size=size):
                r = self.run_json("put", self.srv.addr(), "-k", self.key, "-n", 3, "-s", arg,
                                  "--seed", 5, "--checksum", "sha256")
                t = self.check_transfer(r, "put", 3, 1, size)
                want = content(5, size)
                self.assertEqual(t["checksum"], hashlib.sha256(want).hexdigest())
                with open(os.path.join(self.root, "bench-put-0.bin"), "rb") as f:
                    self.assertEqual(f.read(), want)

    def test_put_duration_text(self):
        # Bounded by time, human output: transfers, throughput, latency in ms.
        p = bench("put", self.srv.addr(), "-k", self.key, "-d", 0.3, "-s", "64K", "-c", 2)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stderr, "")
        self.assertRegex(p.stdout, r"(?m)^ferry-bench put .*65536-byte file \(xxh3-128\) as "
                                   r"bench-put-0\.bin \.\.\. bench-put-1\.bin, auth hmac-sha256")
        self.assertRegex(p.stdout, r"(?m)^  transfers +[1-9]\d* \(")
        self.assertRegex(p.stdout, r"(?m)^  throughput +\d+\.\d+ GB/s +\(\d+\.\d MB/s, \d+ bytes")
        self.assertRegex(p.stdout, r"(?m)^  latency ms +p50 ")
        self.assertRegex(p.stdout, r"(?m)^  errors +0$")

    def test_get_counts_and_checksums(self):
        # 2.5 MiB: many reads per download; the checksum is the file's.
        data = os.urandom((5 << 19) + 12345)
        self.write_root("known.bin", data)
        r = self.run_json("get", self.srv.addr(), "-k", self.key, "-p", "known.bin", "-n", 9,
                          "-c", 3, "-t", 2)
        t = self.check_transfer(r, "get", 9, 3, len(data))
        self.assertEqual(t["path"], "known.bin")
        self.assertEqual(t["checksum"], ft.digest(data))
        r = self.run_json("get", self.srv.addr(), "-k", self.key, "-p", "known.bin", "-n", 2,
                          "--checksum", "sha256")
        t = self.check_transfer(r, "get", 2, 1, len(data))
        self.assertEqual(t["checksum_alg"], "sha256")
        self.assertEqual(t["checksum"], hashlib.sha256(data).hexdigest())

    def test_get_several_frames_and_empty(self):
        data = os.urandom(SEGMENT + 1000)
        self.write_root("big.bin", data)
        self.write_root("empty.bin", b"")
        t = self.check_transfer(self.run_json("get", self.srv.addr(), "-k", self.key,
                                              "-p", "big.bin", "-n", 2), "get", 2, 1, len(data))
        self.assertEqual(t["checksum"], ft.digest(data))
        t = self.check_transfer(self.run_json("get", self.srv.addr(), "-k", self.key,
                                              "-p", "empty.bin", "-n", 3), "get", 3, 1, 0)
        self.assertEqual(t["checksum"], ft.digest(b""))

    def test_get_corrupted_is_an_error(self):
        # One bit flipped inside the first download's body, on the way:
        # that download is an error (not a transfer); the session goes on.
        data = os.urandom(100000)
        self.write_root("known.bin", data)
        relay = ft.Relay(self.srv.hostport(), corrupt={"down": 8192})
        self.addCleanup(relay.close)
        p = bench("get", relay.addr, "-k", self.key, "-p", "known.bin", "-n", 3, "--json")
        self.assertEqual(p.returncode, 1, p.stderr)
        r = json.loads(p.stdout)
        self.assertEqual(r["requests"], 2)
        self.assertEqual(r["errors"], 1)
        self.assertEqual(r["request_errors"], {"checksum-mismatch": 1})
        self.assertEqual(r["transfer"]["bytes"], 2 * len(data))
        self.assertEqual(p.stderr.splitlines(),
                         ["ferry-bench: 1 download failed its checksum check: the bytes that "
                          "arrived are not the server's file"])

    def test_get_missing_file(self):
        p = bench("get", self.srv.addr(), "-k", self.key, "-p", "nope.bin", "-n", 3)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertEqual(len(p.stderr.splitlines()), 1, p.stderr)
        self.assertIn("ferryd refused 1 transfer: nope.bin: No such file or directory", p.stderr)
        self.assertRegex(p.stdout, r"(?m)^  transfers +0 of 3 ")

    def test_wrong_key(self):
        for args in (("put", "-s", "1K"), ("get", "-p", "x")):
            with self.subTest(mode=args[0]):
                p = bench(args[0], self.srv.addr(), "-k", self.wrong_key, "-n", 5, "-c", 2,
                          "--json", *args[1:])
                self.assertEqual(p.returncode, 1, p.stderr)
                self.assertEqual(p.stderr.splitlines(),
                                 ["ferry-bench: authentication failed on 2 connections: ferryd "
                                  "refused the key in %s (not the server's key?)" % self.wrong_key])
                r = json.loads(p.stdout)
                self.assertEqual(r["requests"], 0)
                self.assertEqual(r["connect_errors"], {"auth-refused": 2})
                self.assertEqual(r["transfer"]["bytes"], 0)
        self.assertEqual(os.listdir(self.root), [])
        self.assertIsNone(self.srv.proc.poll())


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
                     ["exec", "127.0.0.1:1", "-k", "key", "-s", "10"],
                     ["put", "127.0.0.1:1"], ["get", "127.0.0.1:1", "-k", "key"],
                     ["get", "127.0.0.1:1", "-k", "key", "-p", "x", "-s", "10"],
                     ["put", "127.0.0.1:1", "-k", "key", "-p", "x"],
                     ["get", "127.0.0.1:1", "-k", "key", "-p", "x", "--seed", "1"],
                     ["exec", "127.0.0.1:1", "-k", "key", "--remote-dir", "d"],
                     ["echo", "127.0.0.1:1", "--checksum", "sha256"],
                     ["put", "127.0.0.1:1", "-k", "key", "--checksum", "md5"],
                     ["put", "127.0.0.1:1", "-k", "key", "-s", "65G"],
                     ["put", "127.0.0.1:1", "-k", "key", "-s", "1X"],
                     ["echo", "127.0.0.1:1", "-s", "65M"],
                     ["put", "127.0.0.1:1", "-k", "key", "--fresh"]):
            with self.subTest(args=args):
                p = bench(*args)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertEqual(len(p.stderr.splitlines()), 1, p.stderr)
                self.assertEqual(p.stdout, "")


BENCH_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench")


def sshlib_child(code, tmp, **kw):
    """A python running CODE after `import sshlib` (bench/), with TMP as a
    temp dir of its own; stdout and stderr piped."""
    prologue = ("import sys, os, json, signal, time\nsys.dont_write_bytecode = True\n"
                "sys.path.insert(0, %r)\nimport sshlib\ntmp = %r\n" % (BENCH_DIR, tmp))
    return subprocess.Popen([sys.executable, "-c", prologue + code], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def have_user_tools():
    return os.geteuid() == 0 and bool(shutil.which("useradd") and shutil.which("userdel"))


@unittest.skipUnless(have_user_tools(), "needs root with useradd and userdel")
class TestBenchUser(unittest.TestCase):
    """The user ssh, scp and sftp log in as in the benchmarks."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ferry-benchuser-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.names = []
        self.addCleanup(self.no_users_left)

    def no_users_left(self):
        for name in self.names:          # never leave a user behind, even failing
            try:
                pwd.getpwnam(name)
            except KeyError:
                continue
            subprocess.run(["userdel", "-r", "-f", name], capture_output=True, timeout=60)

    def child(self, code):
        p = sshlib_child(code, self.tmp)
        self.addCleanup(lambda: p.poll() is None and (p.kill(), p.wait()))
        name = p.stdout.readline().strip()
        self.assertTrue(name.startswith("ferrybench-"), (name, p.stderr.read()
                                                         if p.poll() is not None else ""))
        self.names.append(name)
        return p, name

    def run_bench(self, script, *args):
        """Run bench/SCRIPT ARGS to completion (exit 0) with our binaries;
        returns its JSON, whose fair ssh user is known to be gone or removed
        at cleanup."""
        out = os.path.join(self.tmp, script + ".json")
        p = subprocess.run([sys.executable, os.path.join(BENCH_DIR, script), "--bin", ft.BIN,
                            "--json", out] + list(args), stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=300 * SLOW)
        self.assertEqual(p.returncode, 0, p.stderr[-3000:])
        with open(out) as f:
            d = json.load(f)
        self.names.append(d["ssh_baseline"]["name"])
        self.assertTrue(d["ssh_baseline"]["fair"])
        return d

    def assert_gone(self, name, home):
        self.assertRaises(KeyError, pwd.getpwnam, name)
        self.assertFalse(os.path.exists(home), home)

    @unittest.skipUnless(shutil.which("ssh") and shutil.which("scp") and
                         (shutil.which("sshd") or os.path.exists("/usr/sbin/sshd")),
                         "OpenSSH client and server not installed")
    def test_ssh_logs_in_as_a_fresh_user_removed_at_exit(self):
        # ssh's login shell is sh, its home empty; an scp upload lands in
        # the user's directory, owned by it; at a normal exit the user and
        # its home are gone.
        p, name = self.child(
            "s = sshlib.Sshd(tmp)\nprint(s.user.name, flush=True)\n"
            "src = os.path.join(tmp, 'src.txt')\nopen(src, 'w').write('payload\\n')\n"
            "os.chmod(src, 0o644)\n"
            "out = os.path.join(s.user.drop, 'up.txt')\n"
            "import subprocess\nsubprocess.run(s.scp(src, 'localhost:' + out), check=True,"
            " timeout=60)\n"
            "who = subprocess.run(s.fresh('id -un'), capture_output=True, text=True,"
            " timeout=60).stdout.strip()\n"
            "print(json.dumps(dict(s.describe(), who=who, owner=os.stat(out).st_uid,"
            " uid=s.user.uid, content=open(out).read())), flush=True)\n")
        out, err = p.communicate(timeout=120 * SLOW)
        self.assertEqual(p.returncode, 0, err)
        d = json.loads(out.splitlines()[-1])
        self.assertTrue(d["fair"])
        self.assertEqual(d["who"], name)
        self.assertEqual(d["shell"], "/bin/sh")
        self.assertEqual(d["check"]["shell"], "sh")
        self.assertEqual(d["check"]["home"], d["home"])
        self.assertEqual(d["check"]["home_entries"], [])
        self.assertEqual((d["owner"], d["content"]), (d["uid"], "payload\n"))
        self.assert_gone(name, d["home"])

    @unittest.skipUnless(shutil.which("ssh") and
                         (shutil.which("sshd") or os.path.exists("/usr/sbin/sshd")),
                         "OpenSSH client and server not installed")
    @ft.heavy
    @ft.cost(15)
    def test_exec_latency_smoke(self):
        # The smallest run of bench/exec_latency.py: every column measured
        # (the floor's two local ones and their sum included), issue 12's
        # goal rows present and named for the fair baseline, the user gone.
        d = self.run_bench("exec_latency.py", "-n", "2", "--lines", "3", "--reps", "1",
                           "--tutorial-reps", "1", "--ssh-as-invoker")
        b = d["ssh_baseline"]
        self.assertEqual((b["shell"], b["check"]["shell"], b["check"]["home_entries"]),
                         ("/bin/sh", "sh", []))
        fresh = d["results"]["fresh"]
        for col in ("local /bin/true (same harness)", "local sh -c true (same harness)",
                    "floor (local /bin/true + local sh -c true)", "ssh (fresh)",
                    "ssh (fresh, UNFAIR: as the invoking user)"):
            self.assertEqual(fresh[col]["n"], 2, col)
        self.assertEqual(d["results"]["lockstep"]["local posix_spawn, one at a time"]["n"], 1)
        floor = fresh["floor (local /bin/true + local sh -c true)"]["samples"]
        parts = zip(fresh["local /bin/true (same harness)"]["samples"],
                    fresh["local sh -c true (same harness)"]["samples"])
        self.assertEqual(floor, [a + b for a, b in parts])
        goals = {(r["what"], r["goal"]) for r in d["ratios"] if r.get("goal")}
        for want in (("ferry exec fresh (TLS) / floor", "<= 1.5x (issue 12)"),
                     ("ssh fresh (fair) / ferry exec fresh (TLS)", ">= 25x (issue 12)"),
                     ("ferry shell (TLS) per command, piped / local posix_spawn",
                      "<= 1.2x (issue 12)"),
                     ("ferry shell (TLS) per command, lock-step / local posix_spawn",
                      "<= 1.2x (issue 12)"),
                     ("ssh sh (fair) ControlMaster, piped / ferry shell (TLS)",
                      "> 1.0x (issue 12)"),
                     ("ssh sh (fair) ControlMaster, lock-step / ferry shell (TLS, lock-step)",
                      "> 1.0x (issue 12)")):
            self.assertIn(want, goals)
        self.assert_gone(b["name"], b["home"])

    @unittest.skipUnless(shutil.which("ssh") and shutil.which("pdsh") and
                         shutil.which("clush") and shutil.which("unshare") and
                         shutil.which("ip") and
                         (shutil.which("sshd") or os.path.exists("/usr/sbin/sshd")),
                         "OpenSSH, pdsh, clustershell, unshare or ip not installed")
    @ft.heavy
    @ft.cost(12)
    def test_fleet_smoke(self):
        # The smallest run of bench/fleet.py (issue 16): two hosts, one
        # repetition, in its own network namespace; every column it can
        # measure measured with its output checked, the goal rows present
        # (the -w ones empty while ferry has no -w), the user gone.
        d = self.run_bench("fleet.py", "--hosts", "2", "--reps", "1")
        b = d["ssh_baseline"]
        self.assertEqual(b["tools_log_in_as"], {"pdsh -R ssh": "127.0.0.2: " + b["name"],
                                                "clush": "127.0.0.2: " + b["name"]})
        self.assertFalse([n for n in d["notes"] if "failed run" in n], d["notes"])
        cols = ["pdsh -R exec ferry (TLS)", "pdsh -R exec ferry (plaintext)", "pdsh -R ssh",
                "clush"]
        if d["ferry_exec_w"]:
            cols += ["ferry exec -w (TLS)", "ferry exec -w (plaintext)"]
        for cell in ("2 hosts, true", "2 hosts, uname -r"):
            for col in cols:
                self.assertEqual(d["results"][cell][col]["n"], 1, (cell, col))
        goals = {r["what"]: r for r in d["ratios"] if r.get("goal")}
        for cmd in ("true", "uname -r"):
            w = goals["2 hosts, %s: faster of pdsh -R ssh, clush (fair) / ferry exec -w (TLS)"
                      % cmd]
            self.assertEqual(w["goal"], ">= 10x (issue 16)")
            self.assertEqual(w["ratio"] is not None, d["ferry_exec_w"])
            x = goals["2 hosts, %s: pdsh -R ssh (fair) / pdsh -R exec ferry (TLS)" % cmd]
            self.assertEqual(x["goal"], ">= 3x (issue 16)")
            self.assertIsNotNone(x["ratio"])
        self.assert_gone(b["name"], b["home"])

    def test_removed_on_a_signal_and_after_a_killed_run(self):
        # SIGHUP and SIGTERM end the run through its exit handlers; a run
        # killed with SIGKILL leaves its user, which the next run removes.
        code = ("u = sshlib.BenchUser(tmp)\nprint(u.name, flush=True)\n"
                "print(u.home, flush=True)\ntime.sleep(60)\n")
        for sig in (signal.SIGHUP, signal.SIGTERM):
            with self.subTest(sig=sig):
                sub = tempfile.mkdtemp(dir=self.tmp)
                p = sshlib_child(code, sub)
                name, home = p.stdout.readline().strip(), p.stdout.readline().strip()
                self.names.append(name)
                self.assertEqual(pwd.getpwnam(name).pw_shell, "/bin/sh")
                self.assertEqual(os.listdir(home), [])
                p.send_signal(sig)
                p.communicate(timeout=60 * SLOW)
                self.assertEqual(p.returncode, 128 + sig)
                self.assert_gone(name, home)
        sub = tempfile.mkdtemp(dir=self.tmp)
        p = sshlib_child(code, sub)
        name, home = p.stdout.readline().strip(), p.stdout.readline().strip()
        self.names.append(name)
        p.kill()
        p.communicate(timeout=60 * SLOW)
        self.assertEqual(pwd.getpwnam(name).pw_dir, home)
        q = sshlib_child("print(json.dumps(sshlib.remove_stale_users()))", self.tmp)
        out, err = q.communicate(timeout=60 * SLOW)
        self.assertEqual(q.returncode, 0, err)
        self.assertIn(name, json.loads(out))
        self.assert_gone(name, home)


if __name__ == "__main__":
    ft.main()
