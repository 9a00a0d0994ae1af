"""ferry exec -w: host names are looked up off the loop (src/ferry/lookup.c),
and the host configuration is read once per fleet (hostconf_db).

A real slow resolver, no mocks: the name tests run in their own user, mount
and network namespaces (unshare -rmn), where /etc/resolv.conf is a private
file naming a DNS server this test runs on 127.0.0.1:53.  That server
holds its answer for slow.test until the test lets it go, so "a slow name
does not hold the other hosts" is checked by events, not by timing: the
address's output must arrive while the name's query is still unanswered.
Under the old blocking getaddrinfo the fleet waited there (glibc's own
timeout: 30 s) and the tests fail at their deadlines.  Where namespaces
are not allowed (some containers), those tests are skipped and say so."""
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import ferrytest
from ferrytest import SLOW, write_key

FERRY = ferrytest.binary("ferry")
IN_NETNS = "--in-netns"
SLOW_NAME = "slow.test"


def netns_allowed():
    """Whether this machine lets us make user, mount and network namespaces
    and bind-mount a file in them."""
    if not (shutil.which("unshare") and shutil.which("ip")):
        return False
    r = subprocess.run(["unshare", "-rmn", "--propagation", "private", "sh", "-c",
                        "ip link set lo up && mount --bind /etc/hostname /etc/hostname"],
                       capture_output=True, timeout=10 * SLOW)
    return r.returncode == 0


def is_slow(name):
    return name == SLOW_NAME or name.endswith("." + SLOW_NAME)


class HeldDNS:
    """A DNS server on 127.0.0.1:53 (UDP): the queries for SLOW_NAME and the
    names under it are held until release(), then answered (A: 127.0.0.1;
    other types: no records); any other name is answered at once with
    NXDOMAIN."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 53))
        self.seen = threading.Event()       # a query for SLOW_NAME arrived
        self.released = threading.Event()
        self.held = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @staticmethod
    def _question(data):
        i, labels = 12, []
        while data[i]:
            labels.append(data[i + 1:i + 1 + data[i]].decode("ascii", "replace"))
            i += 1 + data[i]
        qtype = struct.unpack(">H", data[i + 1:i + 3])[0]
        return ".".join(labels).lower(), qtype, data[12:i + 5]

    def _answer(self, data, peer):
        name, qtype, question = self._question(data)
        if not is_slow(name):
            reply = data[:2] + struct.pack(">HHHHH", 0x8183, 1, 0, 0, 0) + question
        elif qtype == 1:
            reply = (data[:2] + struct.pack(">HHHHH", 0x8180, 1, 1, 0, 0) + question +
                     b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + bytes([127, 0, 0, 1]))
        else:
            reply = data[:2] + struct.pack(">HHHHH", 0x8180, 1, 0, 0, 0) + question
        self.sock.sendto(reply, peer)

    def _serve(self):
        while True:
            try:
                data, peer = self.sock.recvfrom(512)
            except OSError:
                return
            if len(data) < 17:
                continue
            name = self._question(data)[0]
            with self.lock:
                if is_slow(name) and not self.released.is_set():
                    self.held.append((data, peer))
                    self.seen.set()
                    continue
            self._answer(data, peer)

    def release(self):
        with self.lock:
            self.released.set()
            held, self.held = self.held, []
        for data, peer in held:
            self._answer(data, peer)

    def close(self):
        self.sock.close()


def read_line(proc, timeout):
    """The next line of proc's stdout within timeout seconds (scaled), or
    None."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout * SLOW)
    return proc.stdout.readline().decode() if ready else None


if IN_NETNS in sys.argv:
    class Inside(unittest.TestCase):
        """Run in the namespaces (NameLookupTest starts them): one ferryd on
        127.0.0.1, and HeldDNS behind the private resolv.conf."""

        @classmethod
        def setUpClass(cls):
            cls.tmp = tempfile.TemporaryDirectory()
            cls.key = os.path.join(cls.tmp.name, "key")
            write_key(cls.key)
            cls.dns = HeldDNS()
            cls.server = ferrytest.start_ferryd(key_path=cls.key)
            cls.port = cls.server.hostport()[1]

        @classmethod
        def tearDownClass(cls):
            cls.dns.release()
            cls.server.stop()
            cls.dns.close()
            cls.tmp.cleanup()

        def fleet(self, hosts, *args):
            p = subprocess.Popen([FERRY, "exec", "-k", self.key, "-w", hosts] + list(args),
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
            self.addCleanup(self.reap, p)
            return p

        @staticmethod
        def reap(p):
            """A ferry a failed test left running is killed."""
            if p.poll() is None:
                p.kill()
            p.communicate()

        def test_slow_name_does_not_hold_the_others(self):
            fast, slow = "127.0.0.1:%d" % self.port, "%s:%d" % (SLOW_NAME, self.port)
            p = self.fleet(slow + "," + fast, "echo", "hi")
            self.assertTrue(self.dns.seen.wait(10 * SLOW), "the name was never asked for")
            # The name was launched first; its answer is still held.
            self.assertEqual(read_line(p, 10), fast + ": hi\n")
            self.assertIsNone(p.poll())
            self.dns.release()
            out, err = p.communicate(timeout=20 * SLOW)
            self.assertEqual(p.returncode, 0, err)
            self.assertEqual(out.decode(), slow + ": hi\n")

        def test_interrupted_while_a_lookup_is_pending(self):
            # SIGINT with the lookup unanswered: ferry ends at once (the
            # worker thread is left to glibc's timeout and dies with the
            # process), as interrupted, without a leak (ASan's check runs
            # at exit) and without TSan's complaint.
            slow = "%s:%d" % (SLOW_NAME, self.port)
            p = self.fleet(slow + ",127.0.0.1:%d" % self.port, "sleep", "30")
            self.assertTrue(self.dns.seen.wait(10 * SLOW), "the name was never asked for")
            # And ferry waits on its loop (the other host's command runs).
            # Once, under TSan in CI, a SIGINT sent here went unhandled until
            # the lookup's 30 s timeout: TSan runs a handler at the thread's
            # next intercepted call, so the signal is sent while ferry's
            # main thread sleeps in its loop's wait.
            ferrytest.wait_until(lambda: open("/proc/%d/wchan" % p.pid).read()
                                 in ("do_epoll_wait", "do_sys_poll"),
                                 what="ferry to wait on its loop")
            start = time.monotonic()
            p.send_signal(signal.SIGINT)
            _, err = p.communicate(timeout=20 * SLOW)
            self.assertLess(time.monotonic() - start, 20 * SLOW)
            self.assertEqual(p.returncode, 128 + signal.SIGINT, err)
            self.assertIn(b"interrupted before the command started", err)
            self.assertNotIn(b"Sanitizer", err)

        def test_connect_timeout_covers_the_lookup(self):
            slow = "%s:%d" % (SLOW_NAME, self.port)
            fast = "127.0.0.1:%d" % self.port
            p = self.fleet(slow + "," + fast, "--connect-timeout", "0.5", "echo", "hi")
            out, err = p.communicate(timeout=20 * SLOW)
            self.assertEqual(p.returncode, 255, err)
            self.assertEqual(out.decode(), fast + ": hi\n")
            self.assertIn(("cannot connect to %s: the name lookup timed out" % slow).encode(),
                          err)
            self.assertIn(b"unreachable: %s (name lookup timed out)" % slow.encode(), err)

        def test_unknown_name(self):
            # NXDOMAIN at once from the server: said as before.
            p = self.fleet("nosuch.test:%d,127.0.0.1:%d" % (self.port, self.port), "echo", "hi")
            out, err = p.communicate(timeout=20 * SLOW)
            self.assertEqual(p.returncode, 255, err)
            self.assertEqual(out.decode(), "127.0.0.1:%d: hi\n" % self.port)
            self.assertIn(b"cannot connect to nosuch.test:%d: bad address or unknown host"
                          % self.port, err)

        def test_hosts_file_names_never_wait(self):
            # Sixteen held names take every lookup thread (min(-f, 16));
            # localhost, which /etc/hosts lists, is answered on the spot
            # all the same, where a queue would have kept it behind them.
            p = self.fleet("h[01-16].%s:%d,localhost:%d" % (SLOW_NAME, self.port, self.port),
                           "echo", "hi")
            self.assertTrue(self.dns.seen.wait(10 * SLOW), "the names were never asked for")
            self.assertEqual(read_line(p, 10), "localhost:%d: hi\n" % self.port)
            self.assertIsNone(p.poll())
            self.dns.release()
            out, err = p.communicate(timeout=20 * SLOW)
            self.assertEqual(p.returncode, 0, err)
            self.assertEqual(sorted(out.decode().splitlines()),
                             ["h%02d.%s:%d: hi" % (i, SLOW_NAME, self.port) for i in range(1, 17)])


@unittest.skipUnless(IN_NETNS not in sys.argv and netns_allowed(),
                     "user, mount and network namespaces (unshare -rmn) not allowed here")
class NameLookupTest(unittest.TestCase):
    """Each test runs its Inside twin in fresh namespaces, where a private
    /etc/resolv.conf names HeldDNS."""

    def inside(self, name):
        with tempfile.TemporaryDirectory() as tmp:
            resolv = os.path.join(tmp, "resolv.conf")
            with open(resolv, "w") as f:
                f.write("nameserver 127.0.0.1\noptions timeout:30 attempts:1\n")
            script = ('ip link set lo up && mount --bind "$1" /etc/resolv.conf && shift && '
                      'exec "$@"')
            r = subprocess.run(["unshare", "-rmn", "--propagation", "private", "sh", "-c",
                                script, "sh", resolv, sys.executable, "-B",
                                os.path.abspath(__file__), IN_NETNS, "Inside." + name],
                               capture_output=True, timeout=60 * SLOW)
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace")[-4000:])

    def test_slow_name_does_not_hold_the_others(self):
        self.inside("test_slow_name_does_not_hold_the_others")

    def test_interrupted_while_a_lookup_is_pending(self):
        self.inside("test_interrupted_while_a_lookup_is_pending")

    def test_connect_timeout_covers_the_lookup(self):
        self.inside("test_connect_timeout_covers_the_lookup")

    def test_unknown_name(self):
        self.inside("test_unknown_name")

    def test_hosts_file_names_never_wait(self):
        self.inside("test_hosts_file_names_never_wait")


@unittest.skipIf(IN_NETNS in sys.argv, "outside the namespaces only")
class ConfigReadOnceTest(unittest.TestCase):
    """The fleet reads the host configuration once, whatever the number of
    hosts (-g included): strace counts the opens of the file."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.key = os.path.join(cls.tmp.name, "key")
        write_key(cls.key)
        cls.server = ferrytest.start_ferryd(key_path=cls.key)
        host, port = cls.server.hostport()
        blocks = [ferrytest.host_block("h%d" % i, host, port) for i in range(1, 6)]
        blocks.append("Group hs h[1-5]\n")
        cls.conf = ferrytest.write_host_config(os.path.join(cls.tmp.name, "config"), blocks)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.tmp.cleanup()

    @unittest.skipUnless(shutil.which("strace"), "strace not installed")
    def test_one_read_for_every_host(self):
        for hosts in (["-w", "h[1-5]"], ["-g", "hs", "-x", "h3"]):
            with self.subTest(hosts=hosts):
                trace = os.path.join(self.tmp.name, "trace")
                # LeakSanitizer cannot run under ptrace: the other tests check leaks.
                env = dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") +
                           ":detect_leaks=0")
                r = subprocess.run(["strace", "-f", "-qq", "-e", "trace=open,openat", "-o", trace,
                                    FERRY, "exec", "-k", self.key, "-F", self.conf, "-f", "2"]
                                   + hosts + ["echo", "hi"],
                                   capture_output=True, env=env, timeout=30 * SLOW)
                self.assertEqual(r.returncode, 0, r.stderr)
                n = 4 if "-x" in hosts else 5
                self.assertEqual(len(r.stdout.decode().splitlines()), n)
                with open(trace) as f:
                    opens = [line for line in f if '"%s"' % self.conf in line]
                self.assertEqual(len(opens), 1, opens)


if __name__ == "__main__":
    if IN_NETNS in sys.argv:
        sys.argv.remove(IN_NETNS)
    ferrytest.main()
