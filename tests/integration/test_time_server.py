"""time_server and time_client: the tutorial's UDP time service, RFC 868 and
SNTP, checked with the tutorial's own client protocol, hand-built packets,
the real rdate(8) and a Python rendition of the tutorial's server."""
import calendar
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
import unittest

import ferrytest
from ferrytest import SLOW

EPOCH_1900 = 2208988800          # seconds from 1900-01-01 to 1970-01-01
DEFAULT_FORMAT = "%Y-%m-%d %X"
REPLY_MAX = 512
TOO_LONG = b"error: format output too long"
# How far apart two clocks on the same host may read; generous for ASan.
SLACK = 3 * SLOW

# Our own line names the service; the library's "listening on" lines, one
# per socket, come after all of them and say the server is running.
_SERVICE_RE = re.compile(r"(\w+) service on (udp|tcp) (\S+)")
_LISTENING_RE = re.compile(r"listening on (\w+) (\S+)")


def reply_limit(request_len):
    """The server's documented amplification rule."""
    return min(REPLY_MAX, max(64, 4 * request_len))


def split_hostport(addr):
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


def start_time_server(timeout=10):
    """All three services on ephemeral ports; returns (server, services)
    where services maps ("strftime", "udp") and friends to (host, port)."""
    server = ferrytest.start_server(
        "time_server", "--listen", "127.0.0.1:0", "--rfc868", "127.0.0.1:0",
        "--sntp", "127.0.0.1:0", endpoints=4, timeout=timeout)
    services = {}
    for line in list(server.log):
        m = _SERVICE_RE.search(line)
        if m:
            services[(m.group(1), m.group(2))] = split_hostport(m.group(3))
    return server, services


def stop_server(server, sig=signal.SIGTERM):
    """Stop the server and wait for it; returns its exit status."""
    try:
        return server.stop(sig, timeout=5)
    finally:
        server.kill()


def udp_ask(addr, payload, timeout=5):
    """The tutorial client's exchange: sendto, then one recv."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout * SLOW)
        s.sendto(payload, addr)
        return s.recv(65536)


def find_rdate():
    path = shutil.which("rdate")
    for candidate in ("/usr/sbin/rdate", "/sbin/rdate"):
        if path is None and os.access(candidate, os.X_OK):
            path = candidate
    return path


def ntp_to_unix(ts64):
    return (ts64 >> 32) - EPOCH_1900 + (ts64 & 0xFFFFFFFF) / 2**32


def unix_to_ntp(t):
    return (int(t) + EPOCH_1900) << 32 | int((t % 1) * 2**32)


def sntp_request(version=4, mode=3, poll=6, transmit=None):
    """A 48-byte client packet; the transmit timestamp is what the server
    must echo as originate."""
    if transmit is None:
        transmit = unix_to_ntp(time.time())
    first = (0 << 6) | (version << 3) | mode
    return struct.pack("!BBbbII4sQQQQ", first, 0, poll, 0, 0, 0, b"\0\0\0\0",
                       0, 0, 0, transmit)


class TutorialServer:
    """The tutorial's UDP time server, as written there, on a thread."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.addr = self.sock.getsockname()
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        bufsize = 1024
        while self.running:
            try:
                msg, addr = self.sock.recvfrom(bufsize)
            except socket.timeout:
                continue
            if not msg:
                time_fmt = "%Y-%m-%d %X"
            else:
                time_fmt = msg.decode("utf-8")
            back_msg = time.strftime(time_fmt)
            self.sock.sendto(back_msg.encode("utf-8"), addr)

    def close(self):
        self.running = False
        self.thread.join()
        self.sock.close()


class TimeServerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server, cls.services = start_time_server()
        cls.strftime_addr = cls.services[("strftime", "udp")]
        cls.rfc868_tcp = cls.services[("rfc868", "tcp")]
        cls.rfc868_udp = cls.services[("rfc868", "udp")]
        cls.sntp_addr = cls.services[("sntp", "udp")]

    @classmethod
    def tearDownClass(cls):
        status = stop_server(cls.server)
        if status != 0:
            raise AssertionError("time_server exited with %s:\n%s"
                                 % (status, "\n".join(cls.server.log)))

    def ask(self, payload):
        return udp_ask(self.strftime_addr, payload)

    def assertFormatted(self, fmt):
        """The reply to fmt is time.strftime(fmt) at some instant around the
        request (the second may tick between the reads)."""
        before = time.strftime(fmt)
        reply = self.ask(fmt.encode("utf-8")).decode("utf-8")
        after = time.strftime(fmt)
        self.assertIn(reply, (before, after), "format %r" % fmt)

    # ---- the tutorial's service ------------------------------------------

    def test_services_announced(self):
        self.assertEqual(len(self.services), 4, self.server.log)
        # RFC 868 serves TCP and UDP on one port, as on port 37.
        self.assertEqual(self.rfc868_tcp, self.rfc868_udp)

    def test_empty_datagram_is_default_format(self):
        reply = self.ask(b"").decode("utf-8")
        parsed = time.mktime(time.strptime(reply, DEFAULT_FORMAT))
        self.assertLess(abs(parsed - time.time()), SLACK, reply)

    def test_custom_formats(self):
        for fmt in ("%Y", "%H:%M:%S", "%c", "%a %b %d", "%s", "%j %U %w",
                    "100%% sure", "%Y年%m月%d日", "%-d/%-m", "%_5H|"):
            self.assertFormatted(fmt)

    def test_exact_reply_limit(self):
        # A 4-byte request may have 64 bytes: a padded year fills it exactly.
        self.assertEqual(len(self.ask(b"%64Y")), 64)
        self.assertEqual(self.ask(b"%65Y"), TOO_LONG)
        # Past the floor, 4 bytes of reply per request byte.
        fmt = b"%100Y" + b"x" * 20          # 25 bytes: 100 allowed, 120 asked
        self.assertEqual(self.ask(fmt), TOO_LONG)
        fmt = b"%80Y" + b"x" * 20           # 24 bytes: 96 allowed, 100 asked
        self.assertEqual(self.ask(fmt), TOO_LONG)
        fmt = b"%76Y" + b"x" * 20           # 24 bytes: 96 allowed, 96 given
        self.assertEqual(len(self.ask(fmt)), 96)

    def test_long_output_rejected_not_truncated(self):
        for fmt in (b"%c" * 30, b"%c" * 100, b"%999Y", b"%A" * 200):
            self.assertEqual(self.ask(fmt), TOO_LONG, fmt)

    def test_reply_never_exceeds_rule(self):
        formats = [b"", b"%c", b"%c%c", b"%c" * 3, b"%s" * 10, b"%Y" * 64,
                   b"x" * 511, b"x" * 512, b"x" * 513, b"%%" * 200, b"\xff" * 300]
        for fmt in formats:
            reply = self.ask(fmt)
            self.assertLessEqual(len(reply), reply_limit(len(fmt)), fmt[:20])
            self.assertLessEqual(len(reply), REPLY_MAX)
        # Long literal text within the cap comes back whole.
        self.assertEqual(self.ask(b"x" * 512), b"x" * 512)

    def test_over_long_request(self):
        for n in (513, 2000, 65000):
            self.assertEqual(self.ask(b"y" * n), b"error: format too long")

    def test_garbage_formats(self):
        garbage = [b"\xff\xfe", b"\x00", b"%Y\x00%m", b"abc\x01", b"\x1b[31m", b"\x7f",
                   b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe6\x97",
                   b"\xc2\x85", b"%", b"%Q", b"%E", b"%1000Y", b"%5", b"%n%\xff",
                   os.urandom(64)]
        for fmt in garbage:
            reply = self.ask(fmt)
            self.assertTrue(reply.startswith(b"error: "), (fmt, reply))
            self.assertLessEqual(len(reply), 64)
        # ...and the service is still there.
        self.assertFormatted("%Y")

    # ---- RFC 868 ----------------------------------------------------------

    def check_rfc868(self, data):
        self.assertEqual(len(data), 4)
        (seconds,) = struct.unpack("!I", data)
        self.assertLess(abs(seconds - EPOCH_1900 - time.time()), SLACK)

    def test_rfc868_tcp(self):
        with socket.create_connection(self.rfc868_tcp, timeout=5 * SLOW) as s:
            self.check_rfc868(ferrytest.recv_until_closed(s))

    def test_rfc868_tcp_client_talks_anyway(self):
        with socket.create_connection(self.rfc868_tcp, timeout=5 * SLOW) as s:
            s.sendall(b"what time is it?\n")
            self.check_rfc868(ferrytest.recv_until_closed(s))

    def test_rfc868_udp(self):
        for payload in (b"", b"x", b"\0" * 100):
            self.check_rfc868(udp_ask(self.rfc868_udp, payload))

    # ---- SNTP -------------------------------------------------------------

    def test_sntp_reply_fields(self):
        for version in (3, 4):
            sent = unix_to_ntp(time.time() - 1000)   # any value: it is echoed
            reply = udp_ask(self.sntp_addr, sntp_request(version=version, poll=10,
                                                         transmit=sent))
            now = time.time()
            self.assertEqual(len(reply), 48)
            (first, stratum, poll, precision, root_delay, root_disp, refid,
             reference, originate, receive, transmit) = struct.unpack("!BBbbII4sQQQQ", reply)
            self.assertEqual(first >> 6, 0, "leap indicator")
            self.assertEqual((first >> 3) & 7, version, "version is echoed")
            self.assertEqual(first & 7, 4, "server mode")
            self.assertEqual(stratum, 1)
            self.assertEqual(poll, 10)
            self.assertLess(precision, 0)
            self.assertEqual(refid, b"LOCL")
            self.assertEqual(originate, sent)
            self.assertLessEqual(receive, transmit)
            self.assertLessEqual(reference, transmit)
            for ts in (receive, transmit):
                self.assertLess(abs(ntp_to_unix(ts) - now), SLACK)

    def test_sntp_fraction_has_subsecond_resolution(self):
        fractions = set()
        for _ in range(5):
            reply = udp_ask(self.sntp_addr, sntp_request())
            fractions.add(struct.unpack("!Q", reply[40:48])[0] & 0xFFFFFFFF)
        self.assertGreater(len(fractions), 1)

    def test_sntp_ignores_malformed(self):
        good = unix_to_ntp(time.time())
        bad = [sntp_request()[:47], b"", sntp_request(mode=1), sntp_request(mode=4),
               sntp_request(version=5), sntp_request(version=2), sntp_request(version=0)]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(5 * SLOW)
            for packet in bad:
                s.sendto(packet, self.sntp_addr)
            s.sendto(sntp_request(transmit=good) + b"\0" * 20, self.sntp_addr)
            # One socket, one server thread: replies come in request order,
            # so the first one must already be the good request's.
            reply = s.recv(65536)
        self.assertEqual(len(reply), 48)
        self.assertEqual(struct.unpack("!Q", reply[24:32])[0], good)

    # ---- rdate(8) -------------------------------------------------------

    def rdate(self, *args):
        rdate = find_rdate()
        if rdate is None:
            self.fail("rdate is not installed: run scripts/deps.sh (Debian package 'rdate')")
        env = dict(os.environ, TZ="UTC", LC_ALL="C")
        proc = subprocess.run([rdate, "-p"] + list(args) + ["127.0.0.1"], capture_output=True,
                              text=True, timeout=20 * SLOW, env=env)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        # e.g. "Mon Nov 23 20:00:41 UTC 2026"
        printed = " ".join(proc.stdout.split())
        parsed = calendar.timegm(time.strptime(printed, "%a %b %d %H:%M:%S UTC %Y"))
        self.assertLess(abs(parsed - time.time()), SLACK, printed)

    def test_rdate_rfc868_tcp(self):
        self.rdate("-o", str(self.rfc868_tcp[1]))

    def test_rdate_rfc868_udp(self):
        self.rdate("-u", "-o", str(self.rfc868_udp[1]))

    def test_rdate_sntp(self):
        self.rdate("-n", "-o", str(self.sntp_addr[1]))

    # ---- time_client ------------------------------------------------------

    def client_target(self):
        return "%s:%d" % self.strftime_addr

    def test_client_arguments(self):
        before = time.strftime("%Y")
        proc = ferrytest.run("time_client", self.client_target(), "", "%Y", "%c")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        lines = proc.stdout.splitlines()
        self.assertEqual(len(lines), 3, proc.stdout)
        time.strptime(lines[0], DEFAULT_FORMAT)
        self.assertIn(lines[1], (before, time.strftime("%Y")))
        time.strptime(lines[2], "%c")

    def test_client_stdin_lines(self):
        # Lines are stripped like the tutorial's input().strip(); an empty
        # one asks for the default.
        proc = ferrytest.run("time_client", self.client_target(),
                             input="%Y\n   %m  \n\n%Y年\n")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        lines = proc.stdout.splitlines()
        self.assertEqual(len(lines), 4, proc.stdout)
        self.assertRegex(lines[0], r"^\d{4}$")
        self.assertRegex(lines[1], r"^\d\d$")
        time.strptime(lines[2], DEFAULT_FORMAT)
        self.assertEqual(lines[3], lines[0] + "年")

    def test_client_prints_server_errors(self):
        # An error answer goes to stderr and makes the exit status 1; the
        # other formats are still asked.
        proc = ferrytest.run("time_client", self.client_target(), "%c" * 40, "%Y")
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertEqual(proc.stderr, "time_client: the server answered: " + TOO_LONG.decode() + "\n")
        self.assertRegex(proc.stdout, r"^\d{4}\n$")
        proc = ferrytest.run("time_client", self.client_target(), input="%c" * 40 + "\n%Y\n")
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertIn(TOO_LONG.decode(), proc.stderr)
        # A format that asks for the prefix itself is answered, not an error.
        proc = ferrytest.run("time_client", self.client_target(), "error: %Y")
        self.assertEqual(proc.returncode, 0, proc.stderr)

    def test_client_against_tutorial_server(self):
        tutorial = TutorialServer()
        try:
            target = "%s:%d" % tutorial.addr
            proc = ferrytest.run("time_client", target, "", "%H:%M:%S", "%Y年")
            self.assertEqual(proc.returncode, 0, proc.stderr)
            lines = proc.stdout.splitlines()
            self.assertEqual(len(lines), 3, proc.stdout)
            time.strptime(lines[0], DEFAULT_FORMAT)
            time.strptime(lines[1], "%H:%M:%S")
            self.assertRegex(lines[2], r"^\d{4}年$")
        finally:
            tutorial.close()

    def test_client_times_out(self):
        # A bound socket that never answers: the datagrams vanish.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
            silent.bind(("127.0.0.1", 0))
            target = "%s:%d" % silent.getsockname()
            started = time.monotonic()
            proc = ferrytest.run("time_client", "--timeout", "1", target, "%Y")
            elapsed = time.monotonic() - started
            self.assertEqual(proc.returncode, 1)
            self.assertIn("no reply from %s within 1 s" % target, proc.stderr)
            self.assertEqual(proc.stdout, "")
            self.assertLess(elapsed, 5 * SLOW)
            # It tried more than once before giving up.
            silent.setblocking(False)
            received = 0
            try:
                while True:
                    silent.recv(100)
                    received += 1
            except BlockingIOError:
                pass
            self.assertGreaterEqual(received, 2)

    def test_client_refused(self):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = ferrytest.run("time_client", "127.0.0.1:%d" % port, "%Y")
        self.assertEqual(proc.returncode, 1)
        self.assertIn("time_client: 127.0.0.1:%d:" % port, proc.stderr)

    def test_client_usage(self):
        self.assertEqual(ferrytest.run("time_client").returncode, 2)
        self.assertEqual(ferrytest.run("time_client", "--timeout", "x", "127.0.0.1").returncode, 2)
        self.assertEqual(ferrytest.run("time_client", "--bogus").returncode, 2)
        self.assertEqual(ferrytest.run("time_client", "no:such:addr:x").returncode, 2)
        proc = ferrytest.run("time_client", "--help")
        self.assertEqual(proc.returncode, 0)
        self.assertIn("usage: time_client", proc.stdout)
        proc = ferrytest.run("time_client", "--version")
        self.assertEqual(proc.returncode, 0)
        self.assertRegex(proc.stdout, r"^time_client \(ferry\) \d+\.\d+\.\d+\n$")


class TimeServerLifecycleTest(unittest.TestCase):
    def test_sigterm_exits_zero_promptly(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            server, services = start_time_server()
            try:
                # Serve something first, so the stop is not of an idle server.
                udp_ask(services[("strftime", "udp")], b"")
            finally:
                started = time.monotonic()
                status = stop_server(server, sig)
            self.assertEqual(status, 0, server.log)
            self.assertLess(time.monotonic() - started, 3 * SLOW)

    def test_usage_and_errors(self):
        proc = ferrytest.run("time_server", "--help")
        self.assertEqual(proc.returncode, 0)
        self.assertIn("max(64, 4 x request)", proc.stdout)
        proc = ferrytest.run("time_server", "--version")
        self.assertEqual(proc.returncode, 0)
        self.assertRegex(proc.stdout, r"^time_server \(ferry\) \d+\.\d+\.\d+\n$")
        self.assertEqual(ferrytest.run("time_server", "--bogus").returncode, 2)
        self.assertEqual(ferrytest.run("time_server", "extra").returncode, 2)
        # A port somebody else holds: a one-line error and status 1.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
            taken.bind(("127.0.0.1", 0))
            proc = ferrytest.run("time_server", "--listen", "%s:%d" % taken.getsockname())
        self.assertEqual(proc.returncode, 1)
        errors = [l for l in proc.stderr.splitlines() if "error" in l]
        self.assertEqual(len(errors), 1, proc.stderr)
        self.assertIn("cannot serve strftime on udp", errors[0])
        proc = ferrytest.run("time_server", "--sntp", "not an address")
        self.assertEqual(proc.returncode, 2)
        self.assertEqual(proc.stderr.count("\n"), 1, proc.stderr)
        self.assertIn("--sntp 'not an address'", proc.stderr)


if __name__ == "__main__":
    ferrytest.main()
