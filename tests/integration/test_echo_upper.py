"""echo_upper and echo_client: the tutorials' upper-casing echo, end to end.

Every behaviour is checked in every concurrency model (event, thread, fork,
and event with two workers) with real processes on loopback: the tutorial's
own clients (rendered faithfully in Python), our echo_client, many
concurrent clients, large bursts, a slow reader (backpressure), abrupt
disconnects, the idle timeout, the connection cap, graceful stop on SIGTERM
and SIGINT, descriptor and child-process hygiene, and running out of
descriptors.  Nothing sleeps to synchronise: readiness comes from log lines,
sockets, or /proc polled against a deadline.
"""
import os
import resource
import shutil
import select
import signal
import socket
import socketserver
import struct
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ferrytest as ft  # noqa: E402
from ferrytest import fd_targets, wait_until  # noqa: E402

SLOW = ft.SLOW
# ASan keeps freed memory in quarantine and adds redzones, so RSS says
# nothing about how much the server buffers; TSan's shadow is proportional.
ASAN = "address" in (os.environ.get("FERRY_SANITIZE") or "")

MODELS = {
    "event": ["--model", "event"],
    "thread": ["--model", "thread"],
    "fork": ["--model", "fork"],
    "event_workers2": ["--model", "event", "--workers", "2"],
}

# Every byte value: only a-z may change.  b'\xc3\xa9' (e-acute) and b'\xff'
# must pass untouched.
ALL_BYTES = bytes(range(256))


def upper(b):
    """bytes.upper() is ASCII-only, exactly what echo_upper promises."""
    return bytes(b).upper()


def have_ipv6():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def proc_stat(pid):
    """(state, utime+stime in ticks) of a process."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return fields[0], int(fields[11]) + int(fields[12])


def tree_rss_kib(server):
    """RSS of the server and its children (fork model: the child holds the
    connection's buffers)."""
    return sum(ft.rss_kib(pid) for pid in [server.pid] + server.children())


def exchange(sock, data):
    sock.sendall(data)
    return ft.recv_exact(sock, len(data))


def read_or_closed(sock, n, timeout):
    """Read n bytes; returns the bytes, b'' on EOF, or None on reset."""
    sock.settimeout(timeout)
    try:
        return ft.recv_exact(sock, n)
    except EOFError:
        return b""
    except (ConnectionResetError, BrokenPipeError):
        return None


# ---- faithful renditions of the tutorial's programs (001) -------------------

def tutorial_tcp_client(family, ip_port, lines):
    """The tutorial's TCP client: connect_ex, then per input line
    strip / skip empty / send / recv(1024) / print."""
    printed = []
    BUFSIZE = 1024
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(10 * SLOW)   # not in the tutorial: a test must not hang
    res = s.connect_ex(ip_port)
    assert res == 0, "connect_ex: %s" % os.strerror(res)
    for msg in lines:                       # msg=input('>>: ').strip()
        msg = msg.strip()
        if len(msg) == 0:
            continue
        s.send(msg.encode("utf-8"))
        feedback = s.recv(BUFSIZE)
        printed.append(feedback.decode("utf-8"))
    s.close()
    return printed


def tutorial_udp_client(family, ip_port, lines, bind=None):
    """The tutorial's UDP client: sendto / recvfrom(1024) / print."""
    printed = []
    BUFSIZE = 1024
    udp_server_client = socket.socket(family, socket.SOCK_DGRAM)
    if bind:   # a unix datagram client needs an address to be answered at
        udp_server_client.bind(bind)
    udp_server_client.settimeout(2 * SLOW)
    try:
        for msg in lines:
            msg = msg.strip()
            if not msg:
                continue
            # UDP may drop; the tutorial would hang, a test retries.
            for attempt in range(5):
                udp_server_client.sendto(msg.encode("utf-8"), ip_port)
                try:
                    back_msg, addr = udp_server_client.recvfrom(BUFSIZE)
                    break
                except socket.timeout:
                    if attempt == 4:
                        raise
            printed.append((back_msg.decode("utf-8"), addr))
    finally:
        udp_server_client.close()
    return printed


class TutorialThreadingServer:
    """The tutorial's socketserver echo: ThreadingTCPServer + a
    BaseRequestHandler that recv(1024)s and sendall(data.upper())s."""

    def __init__(self):
        class Myserver(socketserver.BaseRequestHandler):
            def handle(self):
                while True:
                    try:
                        data = self.request.recv(1024)
                        if not data:
                            break
                        self.request.sendall(data.upper())
                    except Exception:
                        break

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.s = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Myserver)
        self.s.daemon_threads = True
        self.t = threading.Thread(target=self.s.serve_forever, daemon=True)
        self.t.start()

    @property
    def addr(self):
        return "%s:%d" % self.s.server_address

    def close(self):
        self.s.shutdown()
        self.s.server_close()
        self.t.join(5)


class TutorialUdpServer:
    """The tutorial's UDP echo: recvfrom(1024), sendto(msg.upper(), addr)."""

    def __init__(self):
        BUFSIZE = 1024
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)    # lets the loop notice close()
        self.done = False

        def loop():
            while not self.done:
                try:
                    msg, addr = self.sock.recvfrom(BUFSIZE)
                except socket.timeout:
                    continue
                except OSError:
                    break
                self.sock.sendto(msg.upper(), addr)

        self.t = threading.Thread(target=loop, daemon=True)
        self.t.start()

    @property
    def addr(self):
        return "%s:%d" % self.sock.getsockname()

    def close(self):
        self.done = True
        self.t.join(5)
        self.sock.close()


# ---- the per-model suite ----------------------------------------------------

class EchoUpperModel:
    """Mixed into one TestCase per model; ARGS selects the model."""

    ARGS = []

    def start(self, *extra, listen="127.0.0.1:0", **kw):
        srv = ft.start_server("echo_upper", "--listen", listen, *self.ARGS, *extra, **kw)
        self.addCleanup(self._no_sanitizer_reports, srv)   # runs after the kill
        self.addCleanup(srv.kill)
        return srv

    def _no_sanitizer_reports(self, srv):
        srv._reader.join(5 * SLOW)   # the whole stderr, up to the exit
        bad = [l for l in srv.log if "Sanitizer" in l or "runtime error:" in l]
        self.assertEqual(bad, [], "sanitizer report from the server:\n" + "\n".join(srv.log[-60:]))

    def conn(self, srv, timeout=10):
        s = ft.connect(srv, timeout=timeout)
        self.addCleanup(s.close)
        return s

    def assert_alive_and_serving(self, srv):
        self.assertIsNone(srv.proc.poll(), "server died: %s" % srv.log[-20:])
        with ft.connect(srv) as s:
            self.assertEqual(exchange(s, b"still there?"), b"STILL THERE?")

    # -- the tutorial's clients --------------------------------------------

    LINES = ["hello", "   ", "socket programming", "你好, world", "Mixed Case 123 !?",
             "café ÿ"]

    def expected_lines(self):
        return [l.strip().upper() if l.isascii() else
                upper(l.strip().encode("utf-8")).decode("utf-8")
                for l in self.LINES if l.strip()]

    def test_tutorial_tcp_client_ipv4(self):
        srv = self.start()
        out = tutorial_tcp_client(socket.AF_INET, srv.hostport(), self.LINES)
        self.assertEqual(out, self.expected_lines())
        self.assertEqual(out[2], "你好, WORLD")   # non-ASCII bytes pass unchanged

    def test_tutorial_tcp_client_ipv6(self):
        if not have_ipv6():
            self.skipTest("no IPv6 loopback")
        srv = self.start(listen="[::1]:0")
        self.assertTrue(srv.addr().startswith("[::1]:"), srv.addr())
        out = tutorial_tcp_client(socket.AF_INET6, srv.hostport(), self.LINES)
        self.assertEqual(out, self.expected_lines())

    def test_tutorial_tcp_client_unix(self):
        d = tempfile.mkdtemp(prefix="ferry-eu-")
        path = os.path.join(d, "echo.sock")
        self.addCleanup(shutil.rmtree, d, True)
        srv = self.start(listen="unix:" + path)
        self.assertEqual(srv.addr("unix"), "unix:" + path)
        out = tutorial_tcp_client(socket.AF_UNIX, path, self.LINES)
        self.assertEqual(out, self.expected_lines())
        # The server removes the socket file it created when it stops.
        self.assertEqual(srv.stop(), 0)
        self.assertFalse(os.path.exists(path))

    def test_tutorial_udp_client(self):
        srv = self.start("--udp")
        host, port = srv.hostport("udp")
        out = tutorial_udp_client(socket.AF_INET, (host, port), self.LINES)
        self.assertEqual([m for m, _ in out], self.expected_lines())
        self.assertTrue(all(a == (host, port) for _, a in out))
        # UDP keeps message boundaries, even an empty datagram gets one back.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.settimeout(5 * SLOW)
            for msg in [b"", ALL_BYTES, b"x" * 1500, b"\xc3\xa9\xff abc"]:
                u.sendto(msg, (host, port))
                back, _ = u.recvfrom(65536)
                self.assertEqual(back, upper(msg))

    def test_tutorial_udp_client_ipv6(self):
        if not have_ipv6():
            self.skipTest("no IPv6 loopback")
        srv = self.start("--udp", listen="[::1]:0")
        out = tutorial_udp_client(socket.AF_INET6, srv.hostport("udp"), self.LINES)
        self.assertEqual([m for m, _ in out], self.expected_lines())

    def test_tutorial_udp_client_unixgram(self):
        d = tempfile.mkdtemp(prefix="ferry-eu-")
        path = os.path.join(d, "echo.sock")
        me = os.path.join(d, "client.sock")
        self.addCleanup(shutil.rmtree, d, True)
        srv = self.start("--udp", listen="unix:" + path)
        self.assertEqual(srv.addr("unixgram"), "unix:" + path)
        out = tutorial_udp_client(socket.AF_UNIX, path, self.LINES, bind=me)
        self.assertEqual([m for m, _ in out], self.expected_lines())
        self.assertEqual(srv.stop(), 0)
        self.assertFalse(os.path.exists(path))

    # -- our echo_client ---------------------------------------------------

    def test_echo_client_against_echo_upper(self):
        srv = self.start()
        big = "abc" * 3000    # far past one recv(1024): counting fixes sticky packets
        r = ft.run("echo_client", srv.addr(), "hello", "héllo wörld", big)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "HELLO\nHéLLO WöRLD\n" + big.upper() + "\n")
        # Lines from stdin (not a terminal: no prompt).
        r = ft.run("echo_client", srv.addr(), input="one\ntwo two\n\nthree\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "ONE\nTWO TWO\nTHREE\n")

    def test_echo_client_udp_against_echo_upper(self):
        srv = self.start("--udp")
        r = ft.run("echo_client", "--udp", srv.addr("udp"), "hello", "mixed Case")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "HELLO\nMIXED CASE\n")

    # -- many clients ------------------------------------------------------

    def test_100_concurrent_clients(self):
        srv = self.start()
        n, rounds = 100, 5
        barrier = threading.Barrier(n, timeout=30 * SLOW)
        errors = []

        def client(i):
            try:
                s = ft.connect(srv, timeout=30)
                with s:
                    barrier.wait()      # all 100 connected at once
                    for k in range(rounds):
                        msg = (b"client %d message %d: " % (i, k) + ALL_BYTES
                               + b"caf\xc3\xa9 \xff" * (i % 7 + 1) + b"end %d" % i)
                        got = exchange(s, msg)
                        if got != upper(msg):
                            errors.append("client %d round %d: wrong reply" % (i, k))
                            return
            except Exception as e:   # noqa: BLE001 - collect and report
                errors.append("client %d: %r" % (i, e))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60 * SLOW)
        self.assertFalse(any(t.is_alive() for t in threads), "clients hung")
        self.assertEqual(errors, [])
        self.assert_alive_and_serving(srv)

    def test_1mb_bursts_from_several_clients(self):
        srv = self.start()
        n, size = 6, 1 << 20
        errors = []

        def client(i):
            try:
                data = os.urandom(size)
                with ft.connect(srv, timeout=60) as s:
                    sender = threading.Thread(target=s.sendall, args=(data,))
                    sender.start()
                    got = ft.recv_exact(s, size)
                    sender.join(30 * SLOW)
                    if got != upper(data):
                        errors.append("client %d: reply differs" % i)
            except Exception as e:   # noqa: BLE001
                errors.append("client %d: %r" % (i, e))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120 * SLOW)
        self.assertFalse(any(t.is_alive() for t in threads), "clients hung")
        self.assertEqual(errors, [])

    # -- backpressure ------------------------------------------------------

    # A block of prime length, so a reply shifted or repeated by whole
    # server-side chunks (64 KiB, 4 KiB) cannot line up by accident.
    BLOCK = bytes((b"the quick brown fox caf\xc3\xa9 \xff jumps " * 2000)[:65521])

    def _send_until_stalled(self, s, total, stall_s, at_least):
        """Send from a repeating BLOCK without reading until the socket stays
        unwritable for stall_s seconds (and at_least bytes have gone, so a
        server that was merely not scheduled for a moment does not count as
        a stall); returns bytes sent."""
        s.setblocking(False)
        sent = 0
        B = len(self.BLOCK)
        doubled = self.BLOCK * 2
        deadline = time.monotonic() + 20 * SLOW
        while sent < total:
            _, w, _ = select.select([], [s], [], stall_s)
            if not w:
                if sent >= at_least:
                    break
                if time.monotonic() > deadline:
                    raise AssertionError("server stopped reading after %d bytes" % sent)
                continue
            off = sent % B
            try:
                sent += s.send(doubled[off:off + min(B, total - sent)])
            except BlockingIOError:
                pass
        s.setblocking(True)
        return sent

    def _check_stream(self, chunks_iter, total):
        """Compare a received stream against BLOCK.upper() repeated."""
        ub = upper(self.BLOCK) * 2
        B = len(self.BLOCK)
        pos = 0
        for chunk in chunks_iter:
            mv = memoryview(chunk)
            while len(mv):
                off = pos % B
                n = min(len(mv), B)
                if mv[:n] != ub[off:off + n]:
                    raise AssertionError("reply corrupt near byte %d" % pos)
                pos += n
                mv = mv[n:]
        return pos

    @ft.cost(3)
    def test_slow_reader_backpressure(self):
        srv = self.start()
        total = 64 << 20
        s = self.conn(srv, timeout=60)
        self.assertEqual(exchange(s, b"warm up"), b"WARM UP")
        rss0 = tree_rss_kib(srv)
        peak = [rss0]
        stop_sampling = threading.Event()

        def sample():
            while not stop_sampling.is_set():
                peak[0] = max(peak[0], tree_rss_kib(srv))
                stop_sampling.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            sent = self._send_until_stalled(s, total, 1.0 * SLOW, 2 << 20)
            self.assertLess(sent, total, "64 MB went in without the server pushing back")
            peak[0] = max(peak[0], tree_rss_kib(srv))
            stalled_peak = peak[0]

            # Now read everything while sending the rest.
            result = {}

            def reader():
                def chunks():
                    left = total
                    while left:
                        b = s.recv(min(left, 1 << 20))
                        if not b:
                            raise EOFError("EOF with %d bytes outstanding" % left)
                        left -= len(b)
                        yield b
                try:
                    result["n"] = self._check_stream(chunks(), total)
                except Exception as e:   # noqa: BLE001
                    result["err"] = e

            rt = threading.Thread(target=reader)
            rt.start()
            B = len(self.BLOCK)
            doubled = self.BLOCK * 2
            while sent < total:
                off = sent % B
                n = min(B, total - sent)
                s.sendall(doubled[off:off + n])
                sent += n
            rt.join(120 * SLOW)
            self.assertFalse(rt.is_alive(), "reader hung")
            self.assertNotIn("err", result, result.get("err"))
            self.assertEqual(result["n"], total)
        finally:
            stop_sampling.set()
            sampler.join(5)
        if not ASAN:   # ASan's quarantine and redzones make RSS meaningless here
            limit = rss0 + 16 * 1024
            self.assertLessEqual(stalled_peak, limit,
                                 "RSS grew from %d to %d KiB while the client did not read"
                                 % (rss0, stalled_peak))
            self.assertLessEqual(peak[0], limit, "RSS peaked at %d KiB (start %d)"
                                 % (peak[0], rss0))
        self.assert_alive_and_serving(srv)

    # -- abrupt clients ------------------------------------------------------

    def test_abrupt_disconnects_do_not_harm_others(self):
        srv = self.start()
        steady = self.conn(srv)
        payload = b"abcdefgh" * (64 * 1024)    # 512 KiB
        for i in range(10):
            # Sent data, closed without reading.
            with ft.connect(srv) as s:
                s.sendall(payload[:100000])
            # Sent data, then reset (SO_LINGER 0).
            s = ft.connect(srv)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.sendall(payload[:200000])
            s.close()
            # Closed mid-reply: read a little of a big reply, then reset.
            s = ft.connect(srv)
            sender = threading.Thread(target=lambda: self._ignore_errors(s.sendall, payload))
            sender.start()
            s.recv(1000)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.shutdown(socket.SHUT_RDWR)
            sender.join(30 * SLOW)
            s.close()
            # The long-lived client keeps being served, correctly.
            msg = b"steady %d \xc3\xa9" % i
            self.assertEqual(exchange(steady, msg), upper(msg))
        # Half-close: everything sent before our FIN still comes back.
        with ft.connect(srv) as s:
            sender = threading.Thread(target=lambda: (s.sendall(payload), s.shutdown(socket.SHUT_WR)))
            sender.start()
            got = ft.recv_until_closed(s)
            sender.join(30 * SLOW)
            self.assertEqual(len(got), len(payload))
            self.assertEqual(got, upper(payload))
        self.assert_alive_and_serving(srv)

    @staticmethod
    def _ignore_errors(fn, *a):
        try:
            fn(*a)
        except OSError:
            pass

    # -- idle timeout --------------------------------------------------------

    def test_idle_timeout_closes_silent_client(self):
        srv = self.start("--idle-timeout", "1")
        t0 = time.monotonic()
        silent = self.conn(srv)
        talker = self.conn(srv)
        self.assertEqual(exchange(talker, b"once"), b"ONCE")
        # Both go quiet now; each must see end of stream (no sleeping: the
        # read blocks until the server closes).
        self.assertIn(read_or_closed(silent, 1, 10 * SLOW), (b"", None))
        self.assertIn(read_or_closed(talker, 1, 10 * SLOW), (b"", None))
        elapsed = time.monotonic() - t0
        self.assertGreaterEqual(elapsed, 0.9, "closed before the idle timeout")
        self.assert_alive_and_serving(srv)

    # -- connection cap ------------------------------------------------------

    def test_max_conns(self):
        srv = self.start("--max-conns", "5")
        five = [self.conn(srv) for _ in range(5)]
        for i, s in enumerate(five):
            self.assertEqual(exchange(s, b"hi %d" % i), b"HI %d" % i)
        sixth = self.conn(srv)
        try:
            sixth.sendall(b"am I served?")
        except OSError:
            pass
        # Closed at once: EOF or reset, not a reply and not a timeout.
        self.assertIn(read_or_closed(sixth, 1, 10 * SLOW), (b"", None))
        for i, s in enumerate(five):
            self.assertEqual(exchange(s, b"still %d" % i), b"STILL %d" % i)
        five[0].close()

        def served():
            try:
                with ft.connect(srv, timeout=2) as s:
                    return exchange(s, b"new one") == b"NEW ONE"
            except (OSError, EOFError):
                return False
        wait_until(served, 10, "a new connection to be served after one left")
        for s in five[1:]:
            self.assertEqual(exchange(s, b"x"), b"X")

    # -- graceful stop -------------------------------------------------------

    def _graceful_stop(self, sig, strict_close=False):
        srv = self.start()
        n = 4
        started = [threading.Event() for _ in range(n)]
        errors = []
        ended = []

        def pinger(i):
            k = 0
            try:
                with ft.connect(srv, timeout=30) as s:
                    while True:
                        msg = b"pinger %d seq %d \xc3\xa9" % (i, k)
                        try:
                            s.sendall(msg)
                        except OSError:
                            ended.append(i)
                            return
                        got = read_or_closed(s, len(msg), 30 * SLOW)
                        if got is None or got == b"":
                            ended.append(i)
                            return
                        if got != upper(msg):
                            errors.append("pinger %d: wrong reply" % i)
                            return
                        k += 1
                        if k == 20:
                            started[i].set()
            except EOFError:
                ended.append(i)   # the stop came in the middle of a reply
            except Exception as e:   # noqa: BLE001
                errors.append("pinger %d: %r" % (i, e))
            finally:
                started[i].set()

        threads = [threading.Thread(target=pinger, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        # A client whose replies are backed up in the server when the signal
        # comes (it sent 8 MB and read nothing): the server has read and
        # queued at least its high-water mark (1 MiB) of replies.
        slow = self.conn(srv, timeout=30)
        sent = self._send_until_stalled(slow, 8 << 20, 0.5 * SLOW, 3 << 19)
        for e in started:
            self.assertTrue(e.wait(30 * SLOW))
        self.assertEqual(errors, [])

        t0 = time.monotonic()
        srv.proc.send_signal(sig)
        got = []
        reset = False
        slow.settimeout(30 * SLOW)
        try:
            while True:
                b = slow.recv(1 << 20)
                if not b:
                    break
                got.append(b)
        except ConnectionResetError:
            reset = True
        received = self._check_stream(got, sent)   # a correct prefix
        rc = srv.proc.wait(timeout=15 * SLOW)
        elapsed = time.monotonic() - t0
        for t in threads:
            t.join(30 * SLOW)
        self.assertEqual(rc, 0, srv.log[-20:])
        self.assertLess(elapsed, 5 + 5 * SLOW, "exit took longer than the grace period")
        self.assertEqual(errors, [])
        self.assertEqual(sorted(ended), list(range(n)))
        self.assertGreaterEqual(received, 1 << 20,
                                "only %d of %d bytes came back after the stop" % (received, sent))
        if strict_close:
            # The replies already written must not be destroyed by a reset
            # (close(2) with unread input sends RST and drops the socket's
            # send queue): expect an orderly end of stream.
            self.assertFalse(reset, "the slow client's connection was reset after %d of %d "
                             "bytes" % (received, sent))

    def test_sigterm_during_traffic_is_graceful(self):
        self._graceful_stop(signal.SIGTERM)

    def test_sigint_during_traffic_is_graceful(self):
        self._graceful_stop(signal.SIGINT)

    # A graceful close shuts down our side and drains the peer's unread input
    # before closing, so the kernel does not answer with RST and drop replies.
    def test_graceful_stop_does_not_reset_a_client_with_unread_input(self):
        self._graceful_stop(signal.SIGTERM, strict_close=True)

    @ft.cost(5)
    def test_stop_with_a_client_that_never_reads(self):
        # Replies backed up to a client that never reads must not keep the
        # server alive past the grace period (5 s by default).
        srv = self.start()
        s = self.conn(srv)
        self._send_until_stalled(s, 8 << 20, 0.5 * SLOW, 3 << 19)
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        try:
            rc = srv.proc.wait(timeout=5 + 5 * SLOW)
        except Exception:   # noqa: BLE001 - report a hang as a failure
            self.fail("server still running %.1fs after SIGTERM" % (time.monotonic() - t0))
        self.assertEqual(rc, 0, srv.log[-20:])

    # -- descriptors and children --------------------------------------------

    def _quiet_fd_count(self, srv, listener_sockets):
        """fd count once no connection-related descriptors remain."""
        def quiet():
            t = fd_targets(srv.pid)
            socks = sorted(x for x in t if x.startswith("socket:"))
            if socks != listener_sockets or any("pidfd" in x for x in t):
                return None
            return len(t)
        return wait_until(quiet, 15, "connection descriptors to be released: %s"
                          % fd_targets(srv.pid))

    def _no_children_left(self, srv):
        def none():
            kids = srv.children()
            return not kids
        wait_until(none, 15, "children of the server to be reaped")

    def test_descriptors_and_children_after_200_connections(self):
        srv = self.start()
        listeners = sorted(x for x in fd_targets(srv.pid) if x.startswith("socket:"))
        with ft.connect(srv) as s:   # let every lazily created loop exist
            self.assertEqual(exchange(s, b"warm"), b"WARM")
        before = self._quiet_fd_count(srv, listeners)
        for batch in range(4):
            socks = [ft.connect(srv) for _ in range(50)]
            try:
                for i, s in enumerate(socks):
                    s.sendall(b"b%d c%d" % (batch, i))
                for i, s in enumerate(socks):
                    self.assertEqual(ft.recv_exact(s, len(b"b%d c%d" % (batch, i))),
                                     b"B%d C%d" % (batch, i))
            finally:
                for s in socks:
                    s.close()
        after = self._quiet_fd_count(srv, listeners)
        self.assertEqual(before, after, fd_targets(srv.pid))
        self._no_children_left(srv)
        for pid in srv.children():
            self.assertNotEqual(proc_stat(pid)[0], "Z", "zombie child %d" % pid)
        self.assert_alive_and_serving(srv)

    # A connection process holds only its connection and the stop pipe, not
    # the parent's listeners, loop or the pidfds of its earlier siblings.
    def test_fork_children_do_not_inherit_parent_descriptors(self):
        if "fork" not in self.ARGS:
            self.skipTest("fork model only")
        srv = self.start()
        socks = [self.conn(srv) for _ in range(8)]
        for i, s in enumerate(socks):
            self.assertEqual(exchange(s, b"k%d" % i), b"K%d" % i)
        kids = wait_until(lambda: len(srv.children()) == 8 and srv.children(), 10,
                          "8 connection processes")
        counts = {}
        for pid in kids:
            t = fd_targets(pid)
            self.assertFalse(any("pidfd" in x for x in t),
                             "child %d holds pidfds: %s" % (pid, sorted(t)))
            counts[pid] = len(t)
        self.assertEqual(len(set(counts.values())), 1,
                         "children hold different numbers of fds: %s" % counts)

    # -- out of descriptors --------------------------------------------------

    @ft.cost(5)
    def test_emfile_survival(self):
        def low_nofile():
            resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
        srv = self.start(preexec_fn=low_nofile)
        n = 100
        socks = []
        try:
            for _ in range(n):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.settimeout(10 * SLOW)
                s.connect(srv.hostport())   # completes in the kernel's backlog
                socks.append(s)
            for i, s in enumerate(socks):
                s.sendall(b"ping %03d" % i)
            held, closed = self._collect(socks, b"PING %03d", 8, 4 * SLOW)
            self.assertGreater(len(held), 5, "the server served almost nothing")
            # Some were not served: left in the backlog (event, fork) or
            # accepted and closed for want of descriptors (thread).
            self.assertLess(len(held), n, "every connection was served: the limit did not bite")

            # Held connections keep working while the server is out of fds,
            # and meanwhile it does not spin.
            state, cpu0 = proc_stat(srv.pid)
            w0 = time.monotonic()
            for i in held:
                socks[i].sendall(b"again %03d" % i)
            held2, closed2 = self._collect(socks, b"AGAIN %03d", 9, 1.5, only=held)
            self.assertEqual(sorted(held2), sorted(held), "held connections stopped working")
            # Keep the window at least 1.5 s so the CPU figure means something.
            rest = 1.5 - (time.monotonic() - w0)
            if rest > 0:
                select.select([], [], [], rest)
            _, cpu1 = proc_stat(srv.pid)
            window = time.monotonic() - w0
            ticks = os.sysconf("SC_CLK_TCK")
            cpu = (cpu1 - cpu0) / ticks
            self.assertLess(cpu, 0.5 * window, "server used %.2fs CPU in %.2fs while out of "
                            "descriptors (spinning?)" % (cpu, window))
        finally:
            for s in socks:
                s.close()
        self.assertIsNone(srv.proc.poll(), srv.log[-20:])

        def served():
            try:
                with ft.connect(srv, timeout=2) as s:
                    s.settimeout(2 * SLOW)
                    return exchange(s, b"after") == b"AFTER"
            except (OSError, EOFError):
                return False
        wait_until(served, 20, "a new connection to be served once fds were released")
        # And a burst of new ones, all of them served.
        for i in range(20):
            with ft.connect(srv) as s:
                self.assertEqual(exchange(s, b"more %d" % i), b"MORE %d" % i)

    def _collect(self, socks, fmt, size, window, only=None):
        """Wait up to window seconds for the reply fmt % i on each socket;
        returns (indexes answered correctly, indexes closed/reset)."""
        pending = {socks[i].fileno(): i for i in (only if only is not None else range(len(socks)))}
        bufs = {i: b"" for i in pending.values()}
        held, closed = [], []
        deadline = time.monotonic() + window
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            r, _, _ = select.select(list(pending), [], [], left)
            for fd in r:
                i = pending[fd]
                try:
                    b = socks[i].recv(size - len(bufs[i]))
                except (ConnectionResetError, socket.timeout):
                    b = b""
                if not b:
                    closed.append(i)
                    del pending[fd]
                    continue
                bufs[i] += b
                if len(bufs[i]) == size:
                    del pending[fd]
                    self.assertEqual(bufs[i], fmt % i)
                    held.append(i)
        return held, closed


for _name, _args in MODELS.items():
    _cls = type("EchoUpper_" + _name, (EchoUpperModel, unittest.TestCase), {"ARGS": _args})
    globals()[_cls.__name__] = _cls
del _cls


# ---- model-independent: command line, and echo_client vs the tutorial --------

class EchoUpperCommandLine(unittest.TestCase):

    def test_help(self):
        r = ft.run("echo_upper", "--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("usage: echo_upper", r.stdout)
        self.assertIn("--listen", r.stdout)
        self.assertEqual(r.stderr, "")

    def test_bad_options_exit_2(self):
        for args in (["--bogus"], ["--model", "nope"], ["--workers", "0"],
                     ["--workers", "many"], ["--max-conns", "-3"], ["--idle-timeout", "x"],
                     ["--listen"], ["stray-argument"]):
            r = ft.run("echo_upper", *args)
            self.assertEqual(r.returncode, 2, "%s: %s" % (args, r.stderr))
            self.assertNotEqual(r.stderr.strip(), "", args)
            self.assertEqual(r.stdout, "", args)

    def test_bad_listen_address(self):
        for addr in ("nosuchhost.invalid:80", "127.0.0.1:99999", "300.1.1.1:80", "[::1:80",
                     "unix:", "bogus"):
            r = ft.run("echo_upper", "--listen", addr)
            self.assertNotEqual(r.returncode, 0, addr)
            lines = r.stderr.strip().splitlines()
            self.assertEqual(len(lines), 1, "%s: %r" % (addr, r.stderr))
            self.assertIn(addr, lines[0])

    def test_address_in_use(self):
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen(1)
            addr = "127.0.0.1:%d" % taken.getsockname()[1]
            r = ft.run("echo_upper", "--listen", addr)
            self.assertNotEqual(r.returncode, 0)
            lines = r.stderr.strip().splitlines()
            self.assertEqual(len(lines), 1, r.stderr)
            self.assertIn(addr, lines[0])
            self.assertIn("in use", lines[0].lower())
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
            taken.bind(("127.0.0.1", 0))
            addr = "127.0.0.1:%d" % taken.getsockname()[1]
            r = ft.run("echo_upper", "--udp", "--listen", addr)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn(addr, r.stderr)
            self.assertIn("in use", r.stderr.lower())


class EchoClientAgainstTutorialServers(unittest.TestCase):

    def test_echo_client_against_threading_tcp_server(self):
        srv = TutorialThreadingServer()
        self.addCleanup(srv.close)
        big = "sticky " * 1000   # the server answers in recv(1024) pieces
        r = ft.run("echo_client", srv.addr, "hello", "你好 abc", big)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "HELLO\n你好 ABC\n" + big.upper() + "\n")
        r = ft.run("echo_client", srv.addr, input="line one\nline two\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "LINE ONE\nLINE TWO\n")

    def test_echo_client_udp_against_tutorial_udp_server(self):
        srv = TutorialUdpServer()
        self.addCleanup(srv.close)
        r = ft.run("echo_client", "--udp", srv.addr, "hello", "udp Echo")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "HELLO\nUDP ECHO\n")

    def test_echo_client_connection_refused(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            addr = "127.0.0.1:%d" % s.getsockname()[1]
        r = ft.run("echo_client", addr, "x")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(addr, r.stderr)


if __name__ == "__main__":
    ft.main()
