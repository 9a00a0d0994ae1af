"""frame_echo: ferry's own framing (u32 LE header_len | JSON header | body),
echoed frame for frame, in every concurrency model.

Each model gets the same suite (one TestCase class per model).  Tests that
need a private server (timeouts, signals, descriptor and memory accounting)
start their own; the rest share one server per class."""
import hashlib
import json
import os
import socket
import struct
import threading
import time
import unittest

import ferrytest
from ferrytest import SLOW, frame, recv_exact, recv_until_closed, wait_until

MAX_HEADER = 64 * 1024           # the server's default --max-header


def no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate key in reply header: %r" % keys)
    return dict(pairs)


def make_frame(header, body=b""):
    """Headers go out as UTF-8, not \\u escapes: the codec must pass them."""
    return frame(header, body, ensure_ascii=False)


def read_header(sock):
    """One reply's prefix and header, strictly (length in range, no
    duplicate keys); returns (header dict, body size)."""
    raw = ferrytest.recv_header_bytes(sock, limit=MAX_HEADER)
    header = json.loads(raw.decode(), object_pairs_hook=no_duplicates)
    return header, header.get("size", 0)


def read_frame(sock):
    header, size = read_header(sock)
    return header, recv_exact(sock, size)


class Sender(threading.Thread):
    """sendall() on a thread, so a test can read replies while it writes:
    an echo that is not read stops the server reading (backpressure), and a
    test writing everything first would deadlock against it."""

    def __init__(self, sock, chunks):
        super().__init__(daemon=True)
        self.sock, self.chunks, self.error = sock, chunks, None
        self.sent = 0                  # bytes of whole chunks sent so far
        self.start()

    def run(self):
        try:
            for chunk in self.chunks:
                self.sock.sendall(chunk)
                self.sent += len(chunk)
        except OSError as e:
            self.error = e

    def finish(self, test):
        self.join(30 * SLOW)
        test.assertFalse(self.is_alive(), "sender still blocked")
        test.assertIsNone(self.error)


class FrameEchoSuite:
    MODEL = None
    EXTRA = ()                       # further server options for the model

    @classmethod
    def setUpClass(cls):
        cls.server = cls.start("--listen", "127.0.0.1:0")

    @classmethod
    def tearDownClass(cls):
        try:
            status = cls.server.stop()
        finally:
            cls.server.kill()
        if status != 0:
            raise AssertionError("frame_echo exited %s; log: %s" % (status, cls.server.log[-20:]))

    @classmethod
    def start(cls, *args):
        return ferrytest.start_server("frame_echo", "--model", cls.MODEL, *cls.EXTRA, *args)

    def private_server(self, *args):
        server = self.start("--listen", "127.0.0.1:0", *args)
        self.addCleanup(server.stop_quietly)
        return server

    def connect(self, server=None):
        sock = ferrytest.connect(server or self.server)
        self.addCleanup(sock.close)
        return sock

    def assert_round_trip(self, server=None, header=None, body=b"ping"):
        header = header or {"check": "alive"}
        with ferrytest.connect(server or self.server) as s:
            s.sendall(make_frame(header, body))
            got_header, got_body = read_frame(s)
        self.assertEqual(got_header, dict(header, size=len(body)) if body else header)
        self.assertEqual(got_body, body)

    def assert_closed(self, sock):
        """The server hung up: nothing more, or one error frame."""
        rest = recv_until_closed(sock)
        if rest:
            n = ferrytest.unpack_prefix(rest)
            header = json.loads(rest[4:4 + n])
            self.assertEqual(set(header), {"error", "message"}, rest)
            self.assertEqual(len(rest), 4 + n, "bytes after the error frame")
        self.assertIsNone(self.server.proc.poll(), "server died")

    # ---- round trips ------------------------------------------------------

    def test_round_trip_with_and_without_body(self):
        s = self.connect()
        cases = [
            ({"cmd": "hello"}, b""),
            ({"name": "a.txt", "size": 5}, b"hello"),
            ({"size": 0}, b""),
            ({"nested": {"list": [1, 2.5, None, True]}, "unicode": "名字"}, b"\x00\xff" * 100),
        ]
        for header, body in cases:
            with self.subTest(header=header):
                s.sendall(make_frame(header, body))
                got_header, got_body = read_frame(s)
                self.assertEqual(got_header, dict(header, size=len(body)) if body else header)
                self.assertEqual(got_body, body)

    def test_many_frames_in_one_send(self):
        frames = [({"seq": i}, os.urandom(i % 7) * (i % 5)) for i in range(200)]
        s = self.connect()
        s.sendall(b"".join(make_frame(h, b) for h, b in frames))
        for header, body in frames:
            got_header, got_body = read_frame(s)
            self.assertEqual(got_header["seq"], header["seq"])
            self.assertEqual(got_body, body)

    def test_frame_split_byte_by_byte(self):
        data = make_frame({"split": "yes"}, b"body bytes") + make_frame({"second": 2})
        s = self.connect()
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(data)):
            s.send(data[i:i + 1])
        self.assertEqual(read_frame(s), ({"split": "yes", "size": 10}, b"body bytes"))
        self.assertEqual(read_frame(s), ({"second": 2}, b""))

    def test_size_past_4gib_is_echoed_in_64_bits(self):
        size = 5 * 2**30 + 7
        s = self.connect()
        s.sendall(frame(ferrytest.encode({"name": "huge", "size": size}), b"first bytes"))
        header, declared = read_header(s)
        self.assertEqual(header, {"name": "huge", "size": size})
        self.assertEqual(declared, size)
        self.assertEqual(recv_exact(s, len(b"first bytes")), b"first bytes")
        s.close()
        self.assert_round_trip()

    def test_one_megabyte_bursts(self):
        block = os.urandom(1 << 20)
        frames = [({"burst": i}, bytes([i]) + block[1:]) for i in range(8)]
        s = self.connect()
        sender = Sender(s, [make_frame(h, b) for h, b in frames])
        for header, body in frames:
            got_header, got_body = read_frame(s)
            self.assertEqual(got_header, dict(header, size=len(body)))
            self.assertTrue(got_body == body, "burst %d corrupted" % header["burst"])
        sender.finish(self)

    def test_fifty_concurrent_clients_unmixed(self):
        clients = 50
        ready = threading.Barrier(clients)
        errors = []

        def client(n):
            try:
                with ferrytest.connect(self.server) as s:
                    frames = [({"client": n, "seq": j}, ("client %d frame %d;" % (n, j)).encode() * (n + j))
                              for j in range(5)]
                    ready.wait(10 * SLOW)   # all connected before anyone sends
                    sender = Sender(s, [make_frame(h, b) for h, b in frames])
                    for header, body in frames:
                        got = read_frame(s)
                        if got != (dict(header, size=len(body)) if body else header, body):
                            errors.append("client %d got %r" % (n, got[0]))
                    sender.join(10 * SLOW)
            except Exception as e:   # reported below, with the client number
                errors.append("client %d: %r" % (n, e))

        threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60 * SLOW)
        self.assertEqual(errors, [])

    # ---- bad input ---------------------------------------------------------

    def test_bad_frames_close_the_connection(self):
        cases = {
            "header length 0xFFFFFFFF": ferrytest.length_prefix(0xFFFFFFFF),
            "header length over the limit": ferrytest.length_prefix(MAX_HEADER + 1) + b"{",
            "header length 0": ferrytest.length_prefix(0) + b"{}",
            "invalid JSON": frame(b'{"size": 3'),
            "trailing garbage": frame(b'{"a":1} x'),
            "non-object JSON array": frame(b"[1, 2, 3]"),
            "non-object JSON number": frame(b"42"),
            "duplicate keys": frame(b'{"a": 1, "a": 2}'),
            "negative size": frame(b'{"size": -1}'),
            "fractional size": frame(b'{"size": 1.5}'),
            "string size": frame(b'{"size": "5"}'),
            "size over 2^64": frame(b'{"size": 18446744073709551616}'),
            "invalid UTF-8": frame(b'{"a": "\xff"}'),
        }
        for name, data in cases.items():
            with self.subTest(name):
                with ferrytest.connect(self.server) as s:
                    s.sendall(data)
                    self.assert_closed(s)
                self.assert_round_trip()

    def test_good_frame_then_bad_frame(self):
        s = self.connect()
        s.sendall(make_frame({"ok": 1}, b"fine"))
        self.assertEqual(read_frame(s), ({"ok": 1, "size": 4}, b"fine"))
        s.sendall(frame(b"not json"))
        self.assert_closed(s)
        self.assert_round_trip()

    def test_client_vanishing_mid_frame_does_no_harm(self):
        cases = {
            "mid prefix": b"\x10\x00",
            "mid header": frame(b'{"size": 100}')[:9],
            "mid body": make_frame({"x": 1}, b"b" * 100)[:-40],
        }
        for name, data in cases.items():
            with self.subTest(name):
                with ferrytest.connect(self.server) as s:
                    s.sendall(data)
                self.assert_round_trip()
        # A reset instead of an orderly close.
        with ferrytest.connect(self.server) as s:
            s.sendall(make_frame({"x": 1}, b"b" * 100)[:-40])
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.assert_round_trip()

    # ---- options ------------------------------------------------------------

    def test_max_header_option(self):
        server = self.private_server("--max-header", "100")
        self.assert_round_trip(server, {"pad": "a" * 80})
        with ferrytest.connect(server) as s:
            s.sendall(make_frame({"pad": "a" * 100}))
            self.assert_closed(s)

    def test_header_comes_back_byte_for_byte(self):
        # Not re-encoded: "1e2", spacing and escapes come back as sent, and a
        # header exactly at the limit stays exactly at it.
        server = self.private_server("--max-header", "100")
        head = b'{ "x" : 1e2, "u":"\\u00e9", "p":"'
        header = head + b"a" * (100 - len(head) - 2) + b'"}'
        self.assertEqual(len(header), 100)
        with ferrytest.connect(server) as s:
            s.sendall(frame(header))
            n = ferrytest.unpack_prefix(recv_exact(s, 4))
            self.assertEqual(n, 100)
            self.assertEqual(recv_exact(s, n), header)

    def test_idle_client_is_closed_after_idle_timeout(self):
        server = self.private_server("--idle-timeout", "1")
        s = self.connect(server)
        started = time.monotonic()
        self.assertEqual(recv_until_closed(s), b"")
        self.assertGreater(time.monotonic() - started, 0.5)
        self.assert_round_trip(server)

    # ---- lifecycle ------------------------------------------------------------

    def test_sigterm_lets_a_frame_in_progress_finish(self):
        server = self.private_server()
        half = 256 * 1024
        first, second = os.urandom(half), os.urandom(half)

        busy = self.connect(server)
        busy.sendall(frame(ferrytest.encode({"size": 2 * half}), first))
        self.assertEqual(read_header(busy), ({"size": 2 * half}, 2 * half))
        self.assertEqual(recv_exact(busy, half), first)   # the server is mid-frame now

        idle = self.connect(server)
        idle.sendall(make_frame({"n": 1}))
        self.assertEqual(read_frame(idle), ({"n": 1}, b""))

        mark = len(server.log)
        server.proc.send_signal(15)
        server.wait_for_log(r"stopping after the frame in progress", start=mark)
        self.assertEqual(recv_until_closed(idle), b"")    # at a boundary: closed at once

        busy.sendall(second)
        self.assertEqual(recv_exact(busy, half), second)
        self.assertEqual(recv_until_closed(busy), b"")
        self.assertEqual(server.proc.wait(timeout=10 * SLOW), 0)

    def test_descriptors_and_children_after_a_burst(self):
        server = self.private_server()
        baseline = server.fd_count()
        socks = [ferrytest.connect(server) for _ in range(60)]
        try:
            for n, s in enumerate(socks):
                s.sendall(make_frame({"n": n}, b"x" * n))
            for n, s in enumerate(socks):
                self.assertEqual(read_frame(s)[1], b"x" * n)
        finally:
            for s in socks:
                s.close()
        wait_until(lambda: server.fd_count() == baseline,
                   what="descriptors back to %d: %s" % (baseline, ferrytest.fd_targets(server.pid)))
        # Zombies still name the server as parent: none may be left (fork).
        wait_until(lambda: server.children() == [], what="children reaped")
        self.assert_round_trip(server)

    def test_slow_reader_keeps_memory_bounded(self):
        total_mib = 200
        server = self.private_server()
        # Measured before the connection exists; a forked child starts as a
        # copy of its parent, so this is its baseline too.
        start_rss = ferrytest.rss_kib(server.pid)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        # A small receive window makes this reader slow for the server.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.settimeout(30 * SLOW)
        s.connect(server.hostport())

        block = os.urandom(1 << 20)
        chunks = [frame({"size": total_mib << 20})]
        sent_hash = hashlib.sha256()
        for i in range(total_mib):
            chunk = struct.pack("<Q", i) + block[8:]
            sent_hash.update(chunk)
            chunks.append(chunk)
        sender = Sender(s, chunks)

        header_len = len(chunks[0])
        self.assertEqual(read_header(s)[1], total_mib << 20)
        pid = server.pid
        if self.MODEL == "fork":
            wait_until(lambda: len(server.children()) == 1, what="the connection's process")
            pid = server.children()[0]
        peak, in_flight = start_rss, 0
        got_hash = hashlib.sha256()
        left = total_mib << 20
        while left:
            data = s.recv(min(left, 4096))
            self.assertTrue(data, "server closed early")
            got_hash.update(data)
            left -= len(data)
            if left % (1 << 20) < len(data):
                peak = max(peak, ferrytest.rss_kib(pid))
                # Sent but not yet read back: what the kernel and the server
                # hold between us.  Without backpressure the server would
                # keep reading and this would grow with the transfer.
                received = (total_mib << 20) - left
                in_flight = max(in_flight, sender.sent - header_len - received)
        sender.finish(self)
        self.assertEqual(got_hash.digest(), sent_hash.digest())
        self.assertLess(in_flight, pipeline_limit(), "server buffered %d bytes" % in_flight)
        growth_mib = (peak - start_rss) / 1024
        # Output queue (1 MiB high water) + held input (64 KiB) + slack;
        # ASan's quarantine keeps freed blocks resident, so it gets more room.
        self.assertLess(growth_mib, 64 if ferrytest.SANITIZED else 16,
                        "server grew by %.1f MiB" % growth_mib)


def pipeline_limit():
    """The most bytes loopback TCP itself can hold between a sender and a
    reader through an echo (two send buffers and two receive buffers at
    their autotuning maxima), plus 16 MiB for the server's own queues."""
    def max_of(name):
        with open("/proc/sys/net/ipv4/" + name) as f:
            return int(f.read().split()[2])
    return 2 * max_of("tcp_wmem") + 2 * max_of("tcp_rmem") + (16 << 20)


class EventModel(FrameEchoSuite, unittest.TestCase):
    MODEL = "event"
    EXTRA = ("--workers", "2")       # connections spread over two loops


class ThreadModel(FrameEchoSuite, unittest.TestCase):
    MODEL = "thread"


class ForkModel(FrameEchoSuite, unittest.TestCase):
    MODEL = "fork"


if __name__ == "__main__":
    ferrytest.main()
