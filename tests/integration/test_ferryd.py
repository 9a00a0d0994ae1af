"""ferryd, the daemon: every behaviour of issue 3 ("Behaviour that must hold"
and "Classic mode") with real processes, in the event and the fork model.

ferryd is driven two ways: through our own `ferry` client (end to end, over
TLS 1.3 keyed by the shared key, as users run it), and through a small
independent implementation of the session protocol written here from
docs/PROTOCOL.md (handshake with hmac/hashlib, frames with struct) for what
only the protocol level can show: nonces, proofs, replays, frame arrival
times, bad input.  That client speaks in the clear (Python's ssl module
cannot do TLS 1.3 with an external PSK), so it talks to a ferryd started
with --plaintext; each test class runs one of each.  TLS itself (PSK,
certificates, mismatched modes) is test_tls.py's business, and the client's
own behaviour (usage, key resolution, shell) test_ferry_client.py's.

Nothing sleeps to synchronise: readiness comes from log lines and sockets,
and process state from /proc polled against a deadline.
"""
import hashlib
import json
import os
import pwd
import re
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ferrytest as ft  # noqa: E402
from ferrytest import (SLOW, SANITIZED, SERVER_LABEL, proof, recv_exact, wait_until,  # noqa: E402
                       write_key)

FERRY = ft.binary("ferry")
FERRYD = ft.binary("ferryd")
ASAN = "address" in (os.environ.get("FERRY_SANITIZE") or "")

MODELS = {
    "event": ["--model", "event"],
    "fork": ["--model", "fork"],
}

HEX64 = re.compile(r"^[0-9a-f]{64}$")
SANITIZER_RX = re.compile(r"Sanitizer|runtime error:|LeakSanitizer")
# A canary in ferryd's own environment: commands must not see it.
CANARY = "FERRYD_TEST_CANARY"


# ---- small helpers ------------------------------------------------------------

def stat_fields(pid):
    """Fields of /proc/PID/stat after the command name: [state, ppid, pgrp, ...],
    or None when the process does not exist."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def gone(pid):
    """The process has ended: no longer exists, or is a zombie (dead, only
    waiting for its parent to collect it: checked separately)."""
    f = stat_fields(pid)
    return f is None or f[0] in ("Z", "X")


def all_procs():
    """{pid: (state, ppid, pgrp)} for every process."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            f = stat_fields(int(entry))
            if f:
                out[int(entry)] = (f[0], int(f[1]), int(f[2]))
    return out


def descendants(pid, procs=None):
    procs = procs or all_procs()
    kids = {}
    for p, (_, ppid, _) in procs.items():
        kids.setdefault(ppid, []).append(p)
    out, todo = [], [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return out


def group_alive(pgid):
    """Live (non-zombie) processes of a process group."""
    return [p for p, (st, _, g) in all_procs().items() if g == pgid and st not in ("Z", "X")]


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


def closed_by_peer(sock, timeout):
    """Read (and drop) until the peer closes; True if it did within timeout."""
    sock.settimeout(timeout * SLOW)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except socket.timeout:
        return False
    return True


def classic_tutorial_client(hostport, cmds):
    """Seed 000's client, faithfully (input() replaced by the list, print()
    by collecting the bytes it would decode).  Returns [(bytes, seconds)]."""
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.settimeout(60 * SLOW)      # the tutorial has none: a hang fails, not wedges
    client.connect(hostport)
    out = []
    for cmd in cmds:
        cmd = cmd.strip()
        if not cmd:
            continue
        t0 = time.monotonic()
        client.send(cmd.encode('utf-8'))
        obj = client.recv(4)
        header_size = struct.unpack('i', obj)[0]
        header_bytes = client.recv(header_size)
        header_json = header_bytes.decode('utf-8')
        header_dic = json.loads(header_json)
        total_size = header_dic['total_size']
        recv_size = 0
        res = b''
        while recv_size < total_size:
            recv_data = client.recv(1024)
            if not recv_data:   # not in the tutorial, which would spin here forever
                raise EOFError("classic server closed after %d of %d bytes" % (recv_size, total_size))
            res += recv_data
            recv_size += len(recv_data)
        out.append((res, time.monotonic() - t0))
    client.close()
    return out


# ---- the tests, once per model ------------------------------------------------

class FerrydModel:
    """Mixed into one TestCase per model; ARGS selects the model.  Two ferryds
    per class with the same key: srv (TLS, the default) for the ferry client,
    and raw (--plaintext) for the protocol-level Session; tests that need
    their own options start their own."""

    ARGS = []

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="ferryd-test-")
        cls.dir = cls.tmp.name
        cls.key_path = os.path.join(cls.dir, "key")
        cls.key = write_key(cls.key_path)
        cls.wrong_key_path = os.path.join(cls.dir, "wrong-key")
        cls.wrong_key = write_key(cls.wrong_key_path)
        cls.home = os.path.join(cls.dir, "home")
        os.mkdir(cls.home)
        env = dict(os.environ, **{CANARY: "leaked"})
        if ASAN:
            # ferryd's TLS hands its record buffers back between writes;
            # ASan's quarantine (256 MiB by default) would keep every one
            # and look like memory growing with the bytes streamed.
            env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=16"
        cls.srv = ft.start_ferryd(*cls.ARGS, key_path=cls.key_path, env=env)
        cls.host = cls.srv.addr()                # for ferry
        try:
            cls.raw = ft.start_ferryd(*cls.ARGS, key_path=cls.key_path, plaintext=True,
                                      env=env)
        except BaseException:
            cls.srv.kill()
            raise
        cls.hostport = cls.raw.hostport()        # for Session

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        cls.raw.stop()
        cls.tmp.cleanup()

    def setUp(self):
        self.marker = os.path.join(self.dir, "marker-" + self.id().rsplit(".", 1)[1])
        if os.path.exists(self.marker):
            os.unlink(self.marker)

    def tearDown(self):
        self.assert_healthy(self.srv)
        self.assert_healthy(self.raw)

    def assert_healthy(self, srv):
        self.assertIsNone(srv.proc.poll(), "ferryd died (status %s): %s"
                          % (srv.proc.returncode, "\n".join(srv.log[-20:])))
        bad = [l for l in srv.log if SANITIZER_RX.search(l)]
        self.assertEqual(bad, [], "sanitizer report from ferryd:\n" + "\n".join(srv.log[-60:]))

    # -- plumbing ---------------------------------------------------------------

    def own_server(self, *extra, key=True, endpoints=1, plaintext=False):
        """plaintext: for Session (--insecure-no-auth implies it)."""
        srv = ft.start_ferryd(*self.ARGS, *extra, key_path=self.key_path if key else None,
                              plaintext=plaintext, endpoints=endpoints)
        self.addCleanup(self.assert_no_sanitizer_report, srv)
        self.addCleanup(srv.kill)
        return srv

    def assert_no_sanitizer_report(self, srv):
        bad = [l for l in srv.log if SANITIZER_RX.search(l)]
        self.assertEqual(bad, [], "sanitizer report from ferryd:\n" + "\n".join(srv.log[-60:]))

    def session(self, hostport=None, login=True):
        s = ft.Session(hostport or self.hostport, timeout=10)
        self.addCleanup(s.close)
        if login:
            s.login(self.key)
        return s

    def client_env(self):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.home,
               "LANG": "C.UTF-8"}
        env.update(ft.sanitizer_env())
        return env

    def ferry_args(self, *cmd, opts=(), key=None, host=None):
        return [FERRY, "exec", "-k", key or self.key_path, *opts, host or self.host, *cmd]

    def ferry(self, *cmd, opts=(), key=None, host=None, input=b"", timeout=30):
        """Run `ferry exec` to completion; returns (CompletedProcess, seconds)."""
        t0 = time.monotonic()
        r = subprocess.run(self.ferry_args(*cmd, opts=opts, key=key, host=host), input=input,
                           capture_output=True, env=self.client_env(), timeout=timeout * SLOW)
        return r, time.monotonic() - t0

    def popen(self, *cmd, opts=(), host=None, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE):
        p = subprocess.Popen(self.ferry_args(*cmd, opts=opts, host=host), stdin=stdin,
                             stdout=subprocess.PIPE, stderr=stderr, env=self.client_env())

        def cleanup():
            if p.poll() is None:
                p.kill()
            p.communicate()
        self.addCleanup(cleanup)
        return p

    def assertStatus(self, r, status):
        self.assertEqual(r.returncode, status, "stdout %r stderr %r" % (r.stdout[:300], r.stderr))

    def assert_no_marker(self):
        self.assertFalse(os.path.exists(self.marker), "a command ran that must not have")

    def assert_marker_absent_settled(self, srv=None):
        """Nothing ran: the marker is absent, and ferryd (of whichever model;
        by default both of the class's) has no command running that could
        still create it."""
        for one in [srv] if srv else [self.srv, self.raw]:
            wait_until(lambda: not [p for p in descendants(one.pid) if comm(p) != "ferryd"],
                       5, "ferryd to have no command running")
        self.assert_no_marker()

    def wait_idle_fds(self, srv, idle):
        wait_until(lambda: srv.fd_count() == idle, 5,
                   "ferryd's descriptors back to %d (now %d)" % (idle, srv.fd_count()))

    def assert_no_zombies(self, srv):
        def none():
            procs = all_procs()
            return not [p for p in descendants(srv.pid, procs) if procs[p][0] == "Z"]
        wait_until(none, 5, "no zombie among ferryd's descendants")

    def expect_protocol_error(self, s, code="protocol", hello=True):
        """The next frames (a hello aside, if `hello`) are one error with
        `code`, then the connection closes."""
        while True:
            h, _ = s.recv()
            if h["type"] != "hello" or not hello:
                break
        self.assertEqual(h["type"], "error", h)
        self.assertEqual(h.get("code"), code, h)
        self.assertTrue(h.get("message"), h)
        self.assertTrue(closed_by_peer(s.sock, 5), "connection not closed after the error")
        return h

    # -- authentication before anything -----------------------------------------

    def test_hello_carries_a_fresh_nonce(self):
        a, b = self.session(login=False), self.session(login=False)
        ha, hb = a.hello(), b.hello()
        for h in (ha, hb):
            self.assertEqual(h["version"], 1)
            self.assertEqual(h["auth"], "hmac-sha256")
            self.assertRegex(h["nonce"], HEX64)
            self.assertTrue(h.get("server", "").startswith("ferryd "), h)
        self.assertNotEqual(ha["nonce"], hb["nonce"])

    def test_correct_proof_is_welcomed_with_a_verified_server_proof(self):
        s = self.session(login=False)
        s.login(self.key)    # checks the server's proof against our own HMAC
        r = s.run({"argv": ["echo", "in"]})
        self.assertEqual(r["out"], b"in\n")

    def test_auth_message_names_its_key(self):
        # --key-file's key is named "ferry": naming it is the same as not.
        s = self.session(login=False)
        s.hello()
        msg = s.auth_message(self.key, name="ferry")
        s.send(msg)
        h = s.recv()[0]
        self.assertEqual(h["type"], "welcome", h)
        self.assertEqual(h["proof"], proof(self.key, SERVER_LABEL, s.sn,
                                           bytes.fromhex(msg["nonce"])))
        # A right proof under a name the server does not hold is refused.
        s = self.session(login=False)
        s.hello()
        s.send(s.auth_message(self.key, name="someone-else"))
        s.send({"type": "exec", "argv": ["touch", self.marker]})
        self.expect_protocol_error(s, code="auth")
        self.assert_marker_absent_settled()
        self.raw.wait_for_log(r"unknown key name 'someone-else'")

    def test_wrong_key_gets_auth_error_then_close(self):
        s = self.session(login=False)
        s.hello()
        msg = s.auth_message(self.wrong_key)
        s.send(msg)
        # Pipelined after the auth: must never run.
        s.send({"type": "exec", "argv": ["touch", self.marker]})
        h = self.expect_protocol_error(s, code="auth")
        self.assertEqual(h["message"], "authentication failed")
        self.assert_marker_absent_settled()

    def test_ferry_with_wrong_key_fails_and_runs_nothing(self):
        # Over TLS the wrong key is a PSK that does not match: the TLS
        # handshake fails, and ferry says which key was refused.
        mark = len(self.srv.log)
        r, _ = self.ferry("touch", self.marker, key=self.wrong_key_path)
        self.assertStatus(r, 255)
        self.assertRegex(r.stderr, rb"^ferry: authentication failed: \S+ refused key 'ferry' "
                                   rb"from \S+ \([^\n]*\)\n$")
        self.assertEqual(r.stdout, b"")
        self.assert_marker_absent_settled()
        self.srv.wait_for_log("TLS handshake failed", start=mark)
        # In the clear (both sides --plaintext) the HMAC proof is refused.
        mark = len(self.raw.log)
        r, _ = self.ferry("touch", self.marker, key=self.wrong_key_path, opts=("--plaintext",),
                          host=self.raw.addr())
        self.assertStatus(r, 255)
        self.assertRegex(r.stderr, rb"^ferry: authentication failed: \S+ refused key 'ferry' "
                                   rb"from \S*wrong-key \([^\n]*\)\n$")
        self.assertEqual(r.stdout, b"")
        self.assert_marker_absent_settled()
        self.raw.wait_for_log("authentication failed", start=mark)

    def test_replayed_transcript_fails(self):
        one = self.session(login=False)
        one.hello()
        recorded = one.auth_message(self.key)
        one.send(recorded)
        self.assertEqual(one.recv()[0]["type"], "welcome")
        two = self.session(login=False)
        two.hello()
        self.assertNotEqual(two.sn, one.sn)
        two.send(recorded)                                    # the very same bytes
        two.send({"type": "exec", "argv": ["touch", self.marker]})
        self.expect_protocol_error(two, code="auth")
        self.assert_marker_absent_settled()
        # The original session is unaffected.
        self.assertEqual(one.run({"shell": "echo still"})["out"], b"still\n")

    def test_exec_before_auth_is_a_protocol_error(self):
        s = self.session(login=False)
        s.hello()
        s.send({"type": "exec", "argv": ["touch", self.marker]})
        self.expect_protocol_error(s)
        self.assert_marker_absent_settled()

    def test_first_message_must_be_the_clients_hello(self):
        # The client speaks first, with its hello; anything else first is a
        # protocol error, answered without a hello of the server's.
        fake_auth = {"type": "auth", "version": 1, "nonce": "00" * 32, "proof": "00" * 32}
        for first in (fake_auth,
                      {"type": "exec", "argv": ["touch", self.marker]},
                      {"type": "welcome"},
                      {"type": "hello", "version": 2},
                      {"type": "hello"}):
            with self.subTest(first=first):
                s = self.session(login=False)
                s.send(first)
                s.send({"type": "exec", "argv": ["touch", self.marker]})   # pipelined
                self.expect_protocol_error(s, hello=False)
        self.assert_marker_absent_settled()

    def test_unauthenticated_connection_closed_after_auth_timeout(self):
        srv = self.own_server("--auth-timeout", "1", plaintext=True)
        silent = self.session(srv.hostport(), login=False)     # not even a hello
        idle = self.session(srv.hostport(), login=False)
        t0 = time.monotonic()
        idle.hello()
        # An authenticated connection that stays silent is not affected.
        authed = self.session(srv.hostport())
        self.assertTrue(closed_by_peer(idle.sock, 5), "not closed after --auth-timeout 1")
        elapsed = time.monotonic() - t0
        self.assertGreater(elapsed, 0.8)
        self.assertLess(elapsed, 3 * SLOW)
        # The server waits for the client to speak first: the peer that
        # never did was closed at the timeout without receiving a byte.
        silent.sock.settimeout(5 * SLOW)
        self.assertEqual(ft.recv_until_closed(silent.sock), b"",
                         "the server spoke before the client's hello")
        self.assertEqual(authed.run({"argv": ["echo", "ok"]})["out"], b"ok\n")

    def test_a_shorter_idle_timeout_leaves_the_unauthenticated_to_auth_timeout(self):
        # The idle timer closed it first: no audit line, no 'not
        # authenticated' in the log, and --auth-timeout cut short.
        srv = self.own_server("--auth-timeout", "2", "--idle-timeout", "1")
        silent = ft.connect(srv)
        self.addCleanup(silent.close)
        t0 = time.monotonic()
        self.assertTrue(closed_by_peer(silent, 6), "not closed after --auth-timeout 2")
        self.assertGreater(time.monotonic() - t0, 1.8)
        srv.wait_for_log(r"audit: event=session .*result=denied auth=tls "
                         r"reason=\"not authenticated in time")

    def test_auth_timeout_covers_the_tls_handshake(self):
        # Over TLS (the default) the timeout runs from accept: a peer that
        # never starts TLS, or stops inside its handshake, is closed; an
        # authenticated session outlives it.
        srv = self.own_server("--auth-timeout", "1")
        silent = ft.connect(srv)
        self.addCleanup(silent.close)
        stalled = ft.connect(srv)
        self.addCleanup(stalled.close)
        t0 = time.monotonic()
        stalled.sendall(b"\x16\x03\x01\x01\x00")     # a ClientHello's record header, no more
        p = self.popen("sleep 1.5; echo outlived", host=srv.addr())
        for sock in (silent, stalled):
            self.assertTrue(closed_by_peer(sock, 5), "not closed after --auth-timeout 1")
        elapsed = time.monotonic() - t0
        self.assertGreater(elapsed, 0.8)
        self.assertLess(elapsed, 3 * SLOW)
        out, err = p.communicate(timeout=10 * SLOW)
        self.assertEqual((p.returncode, out, err), (0, b"outlived\n", b""))
        # (event model: the connection's timer; fork: the handshake's own)
        srv.wait_for_log(r"not authenticated within 1000 ms|TLS handshake failed")

    def test_max_unauth_turns_away_a_flood_of_silent_peers(self):
        srv = self.own_server("--max-unauth", "2", plaintext=True)
        authed = self.session(srv.hostport())
        silent = [self.session(srv.hostport(), login=False) for _ in range(2)]
        for s in silent:
            s.hello()                                         # both are being served
        extra = self.session(srv.hostport(), login=False)
        self.assertTrue(closed_by_peer(extra.sock, 5), "a third waiting connection was served")
        srv.wait_for_log(r"already waiting to authenticate")
        self.assertEqual(authed.run({"argv": ["echo", "still"]})["out"], b"still\n")
        for s in silent:
            s.close()
        # Their slots come back as they go (fork: when the child exits).
        def login_works():
            try:
                return self.session(srv.hostport()).run({"argv": ["true"]})["exit"] is not None
            except (EOFError, OSError, AssertionError):
                return False
        wait_until(login_works, 10, "a new client to be served once the silent ones left")

    def test_max_unauth_counts_peers_still_in_the_tls_handshake(self):
        srv = self.own_server("--max-unauth", "2")
        # An authenticated session holds no slot; it runs until told to end.
        authed = self.popen("echo ready; read line; echo still", host=srv.addr(),
                            stdin=subprocess.PIPE)
        self.assertEqual(authed.stdout.readline(), b"ready\n")
        silent = [ft.connect(srv) for _ in range(2)]    # TCP only: no ClientHello
        for s in silent:
            self.addCleanup(s.close)
        extra = ft.connect(srv)
        self.addCleanup(extra.close)
        self.assertTrue(closed_by_peer(extra, 5), "a third waiting connection was served")
        srv.wait_for_log(r"already waiting to authenticate")
        authed.stdin.write(b"go\n")
        authed.stdin.flush()          # (left open: the exit frame ends ferry)
        self.assertEqual(authed.stdout.read(), b"still\n")
        self.assertEqual(authed.wait(timeout=10 * SLOW), 0)
        for s in silent:
            s.close()

        def login_works():
            r, _ = self.ferry("true", host=srv.addr())
            return r.returncode == 0
        wait_until(login_works, 10, "a new client to be served once the silent ones left")

    def test_insecure_no_auth_on_loopback(self):
        srv = self.own_server("--insecure-no-auth", key=False)
        srv.wait_for_log("authentication is OFF")
        s = self.session(srv.hostport(), login=False)        # it implies --plaintext
        h = s.hello()
        self.assertEqual(h["auth"], "none")
        self.assertNotIn("nonce", h)
        r, _ = self.ferry("echo", "open", opts=("--insecure-no-auth",), host=srv.addr())
        self.assertStatus(r, 0)
        self.assertEqual(r.stdout, b"open\n")
        # A normal ferry refuses the downgrade and sends no command: in the
        # clear it sees "auth":"none" and refuses it ...
        r, _ = self.ferry("touch", self.marker, opts=("--plaintext",), host=srv.addr())
        self.assertStatus(r, 255)
        self.assertIn(b"without authentication", r.stderr)
        self.assert_marker_absent_settled(srv)
        # ... and by default it finds no TLS there.
        r, _ = self.ferry("touch", self.marker, host=srv.addr())
        self.assertStatus(r, 255)
        self.assertIn(b"did not answer with TLS", r.stderr)
        self.assert_marker_absent_settled(srv)

    # -- streaming ---------------------------------------------------------------

    def test_output_arrives_as_produced(self):
        s = self.session()
        r = s.run({"argv": ["sh", "-c", "echo a; sleep 1; echo b"]})
        self.assertEqual(r["out"], b"a\nb\n")
        self.assertEqual(r["exit"], {"type": "exit", "status": 0})
        t_a = next(t for typ, body, t in r["frames"] if typ == "stdout" and b"a" in body)
        t_b = next(t for typ, body, t in r["frames"] if typ == "stdout" and b"b" in body)
        self.assertGreater(t_b - t_a, 0.8, "stdout was not streamed: %r" % r["frames"])

    def test_stdout_and_stderr_stay_apart(self):
        s = self.session()
        r = s.run({"shell": "echo out1; echo err1 >&2; echo out2; echo err2 >&2"})
        self.assertEqual(r["out"], b"out1\nout2\n")
        self.assertEqual(r["err"], b"err1\nerr2\n")
        for typ, body, _ in r["frames"]:
            if typ == "stdout":
                self.assertNotIn(b"err", body)
            if typ == "stderr":
                self.assertNotIn(b"out", body)

    def ferryd_rss_kib(self):
        """The largest RSS among ferryd's own processes (the daemon, and in
        the fork model its connection processes)."""
        pids = [self.srv.pid] + [p for p in descendants(self.srv.pid) if comm(p) == "ferryd"]
        return max(ft.rss_kib(p) for p in pids)

    def test_output_intact_in_bounded_memory(self):
        # 256 MiB, 8 times the RSS bound: buffering would show.
        self.output_intact_in_bounded_memory(256 << 20)

    @ft.heavy
    @ft.cost(15)
    def test_2g_of_output_intact_in_bounded_memory(self):
        # Counts past 2^31 are the session's, not the model's: the event
        # model streams the full 2 GiB (the fork model's 256 MiB run above
        # covers its own path).
        if SANITIZED or "fork" in self.ARGS:
            self.skipTest("2 GiB once, in the event model, unsanitized")
        self.output_intact_in_bounded_memory(2 << 30)

    def output_intact_in_bounded_memory(self, size):
        p = self.popen("head", "-c", str(size), "/dev/zero")
        try:
            import fcntl
            fcntl.fcntl(p.stdout.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)
        except (ImportError, AttributeError, OSError):
            pass
        # The stream must be `size` zeros: each chunk is compared with
        # zeros as it comes (a memcmp), not hashed and checked at the end.
        got, zeros, fd, stray = 0, bytes(1 << 20), p.stdout.fileno(), None
        peak_ferry = peak_ferryd = 0
        first_ferry = first_ferryd = None
        next_sample = 0
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            if stray is None and chunk != zeros[:len(chunk)]:
                stray = got + next(i for i, b in enumerate(chunk) if b)
            got += len(chunk)
            if got >= next_sample:
                next_sample += 16 << 20
                now_ferry, now_ferryd = ft.rss_kib(p.pid), self.ferryd_rss_kib()
                if first_ferry is None:
                    first_ferry, first_ferryd = now_ferry, now_ferryd
                peak_ferry = max(peak_ferry, now_ferry)
                peak_ferryd = max(peak_ferryd, now_ferryd)
        self.assertEqual(p.wait(timeout=30 * SLOW), 0, p.stderr.read())
        self.assertEqual(got, size)
        self.assertIsNone(stray, "a byte that is not zero in the output, at this offset")
        if not SANITIZED:
            self.assertLess(peak_ferry, 32 * 1024, "ferry's RSS in KiB")
            self.assertLess(peak_ferryd, 32 * 1024, "ferryd's RSS in KiB")
        else:
            # A sanitizer runtime, its shadow memory and its allocator's
            # quarantine inflate RSS and make it drift, so what is checked
            # there is that memory does not grow with the amount streamed:
            # buffering the stream would grow by about 256 MiB.
            slack = 48 * 1024
            self.assertLess(peak_ferry - first_ferry, slack, "ferry's RSS growth in KiB")
            self.assertLess(peak_ferryd - first_ferryd, slack, "ferryd's RSS growth in KiB")

    # -- exit status --------------------------------------------------------------

    def test_exit_status_passes_through(self):
        r, _ = self.ferry("exit 3")
        self.assertStatus(r, 3)
        self.assertEqual(self.session().run({"shell": "exit 3"})["exit"],
                         {"type": "exit", "status": 3})

    def test_one_request_waits_for_the_running_command(self):
        """PROTOCOL.md 2.2: the hello says "pipeline"; an exec without stdin
        sent while a command runs waits and starts when it ends (its output
        after the first one's exit, in order); a second one waiting, or one
        that wants stdin, is refused as busy, and the session goes on."""
        s = ft.Session(self.hostport, timeout=10)
        self.addCleanup(s.close)
        hello = s.hello()
        self.assertIs(hello.get("pipeline"), True, hello)
        s.send(s.auth_message(self.key))
        self.assertEqual(s.recv()[0]["type"], "welcome")
        # The first command holds until the marker exists, so the others
        # arrive while it runs.
        s.send({"type": "exec", "stdin": False,
                "shell": "while [ ! -e %s ]; do sleep 0.01; done; echo first" % self.marker})
        s.send({"type": "exec", "shell": "echo second; exit 4", "stdin": False})
        s.send({"type": "exec", "shell": "echo third", "stdin": False})        # two waiting
        s.send({"type": "exec", "shell": "cat"})                               # wants stdin
        for _ in range(2):
            h, _ = s.recv()
            self.assertEqual((h["type"], h.get("code")), ("error", "busy"), h)
        open(self.marker, "w").close()
        frames = []
        while len([h for h, _ in frames if h["type"] == "exit"]) < 2:
            h, body = s.recv()
            frames.append((h, body))
        self.assertEqual([(h["type"], body) for h, body in frames],
                         [("stdout", b"first\n"), ("exit", b""), ("stdout", b"second\n"),
                          ("exit", b"")])
        self.assertEqual(frames[1][0]["status"], 0)
        self.assertEqual(frames[3][0]["status"], 4)
        self.assertEqual(s.run({"shell": "echo after"})["out"], b"after\n")
        # "only_after_success": skipped after a failure, waiting or not;
        # run after a success.
        s.send({"type": "exec", "stdin": False, "shell": "exit 1"})
        s.send({"type": "exec", "stdin": False, "shell": "echo no", "only_after_success": True})
        self.assertEqual([s.recv()[0]["type"] for _ in range(2)], ["exit", "skipped"])
        s.send({"type": "exec", "shell": "echo no", "stdin": False, "only_after_success": True})
        self.assertEqual(s.recv()[0], {"type": "skipped"})      # not waiting: the same
        r = s.run({"shell": "true"})
        self.assertEqual(r["exit"]["status"], 0)
        r = s.run({"shell": "echo yes", "stdin": False, "only_after_success": True})
        self.assertEqual((r["out"], r["exit"]["status"]), (b"yes\n", 0))

    def test_cd_names_are_directories_where_commands_run(self):
        """PROTOCOL.md 2.3 cd-names: the directories under a path (relative
        to the session's directory), starting with a prefix, sorted; files
        are left out, a symbolic link to a directory is in; a path that is
        not a directory is a request error."""
        base = os.path.join(self.dir, "cdn-" + self.id().rsplit(".", 2)[1])
        for d in ("alpha", "alps", "beta", ".hidden-al"):
            os.makedirs(os.path.join(base, d), exist_ok=True)
        open(os.path.join(base, "also-a-file"), "w").close()
        if not os.path.lexists(os.path.join(base, "al-link")):
            os.symlink(os.path.join(base, "beta"), os.path.join(base, "al-link"))
        s = self.session()
        h = s.request({"type": "cd-names", "path": base, "prefix": "al"})
        self.assertEqual(h, {"type": "cd-names", "names": ["al-link", "alpha", "alps"],
                             "truncated": False})
        self.assertEqual(s.request({"type": "chdir", "path": base})["type"], "cwd")
        h = s.request({"type": "cd-names", "path": ".", "prefix": ""})
        self.assertEqual(h["names"], [".hidden-al", "al-link", "alpha", "alps", "beta"])
        h = s.request({"type": "cd-names", "path": "also-a-file", "prefix": ""})
        self.assertEqual((h["type"], h.get("code")), ("error", "request"), h)
        self.assertEqual(s.run({"shell": "echo still"})["out"], b"still\n")

    def test_killed_by_signal_is_128_plus_n(self):
        r, _ = self.ferry("sh", "-c", "kill -TERM $$")
        self.assertStatus(r, 143)
        self.assertEqual(self.session().run({"argv": ["sh", "-c", "kill -TERM $$"]})["exit"],
                         {"type": "exit", "signal": 15, "core": False})

    def test_commands_without_output_return_at_once(self):
        limit = 0.5 if not SANITIZED else 2.0
        for cmd in (["true"], ["cd /tmp"]):
            def one():
                r, elapsed = self.ferry(*cmd)
                self.assertStatus(r, 0)
                self.assertEqual((r.stdout, r.stderr), (b"", b""))
                return elapsed
            elapsed = ft.quickest(one, limit)
            self.assertLess(elapsed, limit, "%s took %.2f s" % (cmd, elapsed))
        s = self.session()

        def in_session():
            t0 = time.monotonic()
            r = s.run({"shell": "cd /tmp"})
            self.assertEqual([f[0] for f in r["frames"]], ["exit"])
            self.assertEqual(r["exit"]["status"], 0)
            return time.monotonic() - t0
        self.assertLess(ft.quickest(in_session, limit), limit)

    # -- never-ending commands ----------------------------------------------------

    def test_sigint_stops_a_never_ending_command(self):
        p = self.popen("sh", "-c", "echo $$; exec yes")
        pid = int(p.stdout.readline())
        self.assertEqual(len(p.stdout.read(1 << 20)), 1 << 20)
        self.assertFalse(gone(pid), "yes ended on its own")
        p.send_signal(signal.SIGINT)
        while p.stdout.read(1 << 16):
            pass
        self.assertEqual(p.wait(timeout=10 * SLOW), 130)
        wait_until(lambda: gone(pid), 2, "the remote yes to end")

    def test_timeout_kills_and_exits_124(self):
        t0 = time.monotonic()
        p = self.popen("sh", "-c", "echo $$; exec sleep 100", opts=("--timeout", "1"))
        pid = int(p.stdout.readline())
        self.assertEqual(p.wait(timeout=10 * SLOW), 124)
        elapsed = time.monotonic() - t0
        self.assertGreater(elapsed, 0.9)
        self.assertLess(elapsed, 1 + 2 * SLOW)
        wait_until(lambda: gone(pid), 2, "the sleep to end")
        # On the wire: the exit says the timeout did it.
        r = self.session().run({"argv": ["sleep", "100"], "timeout": 0.2})
        self.assertEqual(r["exit"], {"type": "exit", "signal": 15, "core": False, "timeout": True})

    def test_timeout_kills_a_command_ignoring_term_after_the_grace(self):
        t0 = time.monotonic()
        p = self.popen("sh", "-c", 'trap "" TERM; sleep 100 & echo $$ $!; wait',
                       opts=("--timeout", "1"))
        pids = [int(x) for x in p.stdout.readline().split()]
        self.assertEqual(p.wait(timeout=15 * SLOW), 124)
        elapsed = time.monotonic() - t0
        self.assertGreater(elapsed, 2.5, "killed before the grace period")
        self.assertLess(elapsed, 3 + 3 * SLOW)
        for pid in pids:
            wait_until(lambda: gone(pid), 2, "process %d to end" % pid)

    # -- stdin ----------------------------------------------------------------------

    def test_stdin_is_forwarded(self):
        r, _ = self.ferry("sort", "-r", input=b"a\nb\n")
        self.assertStatus(r, 0)
        self.assertEqual(r.stdout, b"b\na\n")
        # Over the protocol too.
        r = self.session().run({"argv": ["sort", "-r"]}, stdin=b"x\ny\n")
        self.assertEqual((r["out"], r["exit"]["status"]), (b"y\nx\n", 0))

    def test_eof_closes_the_commands_stdin(self):
        r, _ = self.ferry("cat", input=b"to the end\n")
        self.assertStatus(r, 0)
        self.assertEqual(r.stdout, b"to the end\n")
        r, _ = self.ferry("wc", "-c", input=b"")
        self.assertEqual(r.stdout.strip(), b"0")

    def test_command_not_reading_stdin_is_not_held_by_endless_stdin(self):
        yes = subprocess.Popen(["yes"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: (yes.kill(), yes.wait(), yes.stdout.close()))
        t0 = time.monotonic()
        p = self.popen("true", stdin=yes.stdout)
        # Held by its stdin, the client would never end: the wait's own
        # timeout catches that.  The bound below is generous, as the
        # client shares a loaded machine with `yes` (it took 5 s at load 30).
        self.assertEqual(p.wait(timeout=20 * SLOW), 0)
        self.assertLess(time.monotonic() - t0, 15 * SLOW)

    def test_20mb_of_stdin_intact(self):
        data = os.urandom(20 * 1000 * 1000)
        r, _ = self.ferry("sha256sum", input=data, timeout=60)
        self.assertStatus(r, 0)
        self.assertEqual(r.stdout.split()[0].decode(), hashlib.sha256(data).hexdigest())

    # -- the client vanishing -----------------------------------------------------

    def test_client_killed_kills_the_remote_process_group(self):
        idle_fds = self.srv.fd_count()
        p = self.popen("sh", "-c", 'sh -c "sleep 100 & exec sleep 100" & sleep 100 & echo $$; wait')
        pgid = int(p.stdout.readline())
        # sh, the inner sh (now a sleep), its background sleep, our sleep.
        members = wait_until(lambda: len(group_alive(pgid)) == 4 and group_alive(pgid), 5,
                             "the command's four processes")
        self.assertIn(pgid, members)
        p.kill()
        p.wait()
        deadline = 1.0 if not SANITIZED else 3.0
        wait_until(lambda: not group_alive(pgid), deadline,
                   "the command's process group to be gone", scale=False)
        for pid in members:
            self.assertTrue(gone(pid), pid)
        self.assert_no_zombies(self.srv)
        self.wait_idle_fds(self.srv, idle_fds)

    # -- many at once ---------------------------------------------------------------

    def burst(self, srv, n=100):
        """n ferry clients at once, each command waiting until all n are
        running; checks that each got exactly its own output and status.
        The commands wait on a FIFO, which this test holds open for writing
        (so their opens do not block): each blocks in read until the test
        closes its end, and the EOF releases them all at once, with no
        command polling."""
        results = [None] * n
        gate = os.path.join(self.dir, "gate-%d" % srv.pid)
        os.mkfifo(gate)
        self.addCleanup(lambda: os.path.exists(gate) and os.unlink(gate))
        held = os.open(gate, os.O_RDWR)
        self.addCleanup(lambda: held is None or os.close(held))

        def one(i):
            cmd = ("echo start-{i}; read _ < {gate}; "
                   "seq {i} 7 30000 | sed s/^/{i}:/; "
                   "head -c 100000 /dev/urandom | od | tail -1; echo err-{i} >&2; "
                   "exit $(({i} % 7))").format(i=i, gate=gate)
            try:
                results[i] = self.ferry(cmd, host=srv.addr(), timeout=120)[0]
            except Exception as e:         # reported below
                results[i] = e
        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()

        def waiting_at_gate(pid):
            try:
                return gate in ft.fd_targets(pid)
            except OSError:
                return False

        def sessions_waiting():
            procs = all_procs()
            return len({procs[p][2] for p in descendants(srv.pid, procs)
                        if comm(p) == "sh" and waiting_at_gate(p)})
        try:
            wait_until(lambda: sessions_waiting() == n, 60,
                       "%d commands running at once" % n, interval=0.05)
        finally:
            os.close(held)
            held = None
        for t in threads:
            t.join(180 * SLOW)
        for i, r in enumerate(results):
            self.assertIsInstance(r, subprocess.CompletedProcess, "client %d: %r" % (i, r))
            self.assertStatus(r, i % 7)
            want = ("start-%d\n" % i + "".join("%d:%d\n" % (i, k) for k in range(i, 30001, 7))
                    + "0303240\n").encode()
            self.assertEqual(r.stdout, want, "client %d got someone else's output" % i)
            self.assertEqual(r.stderr, b"err-%d\n" % i)
        os.unlink(gate)
        self.assert_no_zombies(srv)

    @ft.cost(6)
    def test_100_concurrent_clients(self):
        idle_fds = self.srv.fd_count()
        self.burst(self.srv)
        self.wait_idle_fds(self.srv, idle_fds)

    def warm_server(self):
        """A server of our own (its heap untouched by other tests), after
        one command: first-use allocations belong to its idle level."""
        srv = self.own_server()
        r, _ = self.ferry("true", host=srv.addr())
        self.assertStatus(r, 0)
        wait_until(lambda: not descendants(srv.pid), 5, "the warm-up command to be reaped")
        return srv

    @ft.cost(10)
    def test_memory_returns_to_idle_after_100_sessions(self):
        if SANITIZED:
            # ASan's quarantine and redzones, and TSan's shadow memory for
            # every heap page a session touched, make RSS meaningless: a
            # second burst grew TSan's RSS by 2.9 MiB with nothing held.
            # Leaks are LeakSanitizer's to find under ASan; this check runs
            # on the plain build.
            self.skipTest("RSS is meaningless under a sanitizer")
        srv = self.warm_server()
        idle = srv.rss_kib()
        self.burst(srv)
        after_one = srv.rss_kib()
        self.burst(srv)
        after_two = srv.rss_kib()
        self.assertLess(after_two, after_one + 2 * 1024,
                        "ferryd's RSS grows with every 100 sessions (a leak?)")
        slack = 8 * 1024
        wait_until(lambda: srv.rss_kib() <= idle + slack, 3,
                   "ferryd's RSS back near idle (%d KiB idle, %d KiB now)" % (idle, srv.rss_kib()))

    # -- bad input ------------------------------------------------------------------

    def bad_input(self, send, authenticated=True, code="protocol", first=False):
        """A bystander session is logged in first; `send(session)` sends the
        bad input on a second one (authenticated, or after the hellos only,
        or with `first` as the very first bytes, before the client's hello),
        which must get an error frame and be closed; the bystander then still
        runs commands."""
        bystander = self.session()
        self.assertEqual(bystander.run({"argv": ["echo", "before"]})["out"], b"before\n")
        s = self.session(login=authenticated and not first)
        if not authenticated and not first:
            s.hello()
        send(s)
        h = self.expect_protocol_error(s, code, hello=not first)
        self.assertEqual(bystander.run({"argv": ["echo", "after"]})["out"], b"after\n")
        self.assert_marker_absent_settled()
        return h

    def test_garbage_before_the_handshake(self):
        # In place of the client's hello (the server has said nothing yet,
        # and answers with the error alone).
        bystander = self.session()
        s = self.session(login=False)
        s.send_raw(b"GET / HTTP/1.1\r\nHost: ferry\r\n\r\n")
        self.expect_protocol_error(s, hello=False)
        self.assertEqual(bystander.run({"argv": ["echo", "alive"]})["out"], b"alive\n")
        for first in (True, False):        # in place of the hello, and after the hellos
            with self.subTest(first=first):
                # Bytes that look like a small frame but hold no JSON.
                self.bad_input(lambda s: s.send_raw(b"\x05\x00\x00\x00hello"),
                               authenticated=False, first=first)
                # Random binary junk.
                self.bad_input(lambda s: s.send_raw(b"\x10\x00\x00\x00" + os.urandom(16)),
                               authenticated=False, first=first)

    def test_header_length_ffffffff(self):
        self.bad_input(lambda s: s.send_raw(b"\xff\xff\xff\xff"), authenticated=False, first=True)
        self.bad_input(lambda s: s.send_raw(b"\xff\xff\xff\xff"), authenticated=False)
        self.bad_input(lambda s: s.send_raw(b"\xff\xff\xff\xff"))

    def test_header_length_zero(self):
        self.bad_input(lambda s: s.send_raw(b"\x00\x00\x00\x00"), authenticated=False, first=True)
        self.bad_input(lambda s: s.send_raw(b"\x00\x00\x00\x00"))

    def test_unknown_type(self):
        h = self.bad_input(lambda s: s.send({"type": "frobnicate"}))
        self.assertIn("frobnicate", h["message"])
        self.bad_input(lambda s: s.send({"cmd": "ls"}))                 # no type at all
        self.bad_input(lambda s: s.send({"type": 7}))                    # not a string

    def test_exec_without_a_command(self):
        for msg in ({"type": "exec"},
                    {"type": "exec", "argv": []},
                    {"type": "exec", "argv": [""]},
                    {"type": "exec", "argv": "touch " + self.marker},
                    {"type": "exec", "argv": ["touch", 7]},
                    {"type": "exec", "shell": ""},
                    {"type": "exec", "argv": ["touch", self.marker], "shell": "touch " + self.marker}):
            with self.subTest(msg=msg):
                self.bad_input(lambda s: s.send(msg))

    def test_huge_argv(self):
        argv = ["touch", self.marker] + ["x" * 1000] * 70      # a header over 64 KiB
        self.bad_input(lambda s: s.send({"type": "exec", "argv": argv}))
        # More than 4096 strings, in a header under the limit.
        h = self.bad_input(lambda s: s.send({"type": "exec", "argv": ["touch", self.marker]
                                             + ["a"] * 5000}))
        self.assertIn("4096", h["message"])
        # Just under both limits is an ordinary command.
        many = ["b" * 18] * 3000
        r = self.session().run({"argv": ["sh", "-c", 'echo $# ${#1}', "sh"] + many})
        self.assertEqual(r["errors"], [])
        self.assertEqual((r["out"], r["exit"]["status"]), (b"3000 18\n", 0))

    def test_non_utf8_bytes_in_a_command(self):
        for junk in (b"\xff\xfe", b"\xc0\xaf", b"\xed\xa0\x80", b"caf\xe9"):
            with self.subTest(junk=junk):
                header = (b'{"type":"exec","shell":"touch ' + self.marker.encode()
                          + b'; echo ' + junk + b'"}')
                self.bad_input(lambda s: s.send_raw(ft.frame(header)))
        # Before authentication too, and in place of the hello.
        self.bad_input(lambda s: s.send_raw(ft.frame(b'{"type":"auth","nonce":"\xff"}')),
                       authenticated=False)
        self.bad_input(lambda s: s.send_raw(ft.frame(b'{"type":"hello","version":1,"x":"\xff"}')),
                       authenticated=False, first=True)

    def test_body_on_a_message_that_takes_none(self):
        self.bad_input(lambda s: s.send({"type": "exec", "argv": ["touch", self.marker]}, b"body"))
        self.bad_input(lambda s: s.send({"type": "chdir", "path": "/"}, b"body"))
        self.bad_input(lambda s: s.send(dict(s.auth_message(self.key)), b"body"),
                       authenticated=False)
        self.bad_input(lambda s: s.send({"type": "hello", "version": 1}, b"body"),
                       authenticated=False, first=True)

    # -- the command's environment ------------------------------------------------

    def test_fresh_process_group(self):
        r, _ = self.ferry("echo $$ $(ps -o pgid= -p $$)")
        self.assertStatus(r, 0)
        pid, pgid = r.stdout.split()
        self.assertEqual(pid, pgid)
        self.assertNotEqual(int(pgid), os.getpgid(self.srv.pid))

    def test_daemon_descriptors_closed(self):
        r, _ = self.ferry("ls", "-l", "/proc/self/fd")
        self.assertStatus(r, 0)
        fds = dict(re.findall(rb"\s(\d+) -> (.*)", r.stdout))
        self.assertEqual(sorted(int(k) for k in fds)[:3], [0, 1, 2], r.stdout)
        for fd, target in fds.items():
            if int(fd) > 2:   # ls's own descriptor for the directory it lists
                self.assertRegex(target, rb"^/proc/\d+/fd$", r.stdout)
        self.assertEqual(len([fd for fd in fds if int(fd) > 2]) <= 1, True, r.stdout)

    def test_sane_environment(self):
        r, _ = self.ferry("env", opts=("--env", "FERRY_X=hello world", "--env", "EMPTY="))
        self.assertStatus(r, 0)
        env = dict(l.split("=", 1) for l in r.stdout.decode().splitlines() if "=" in l)
        self.assertIn("/bin", env.get("PATH", ""))
        self.assertTrue(env.get("HOME", "").startswith("/"), env)
        home = pwd.getpwuid(os.getuid()).pw_dir
        if os.path.isdir(home):      # the daemon user's home, not ferryd's $HOME
            self.assertEqual(env["HOME"], home)
        self.assertTrue(env.get("LANG"), env)
        self.assertEqual(env.get("FERRY_X"), "hello world")
        self.assertEqual(env.get("EMPTY"), "")
        self.assertNotIn(CANARY, env, "ferryd's own environment leaked into the command")

    def test_account_environment_kept_across_a_session(self):
        """A session looks the daemon user's account up once, for its first
        command, and every later command gets the same HOME, USER, LOGNAME
        and SHELL."""
        pw = pwd.getpwuid(os.getuid())
        s = self.session()
        for _ in range(3):
            r = s.run({"shell": "env"})
            self.assertEqual(r["exit"]["status"], 0)
            env = dict(l.split("=", 1) for l in r["out"].decode().splitlines() if "=" in l)
            self.assertEqual(env.get("USER"), pw.pw_name, env)
            self.assertEqual(env.get("LOGNAME"), pw.pw_name, env)
            self.assertEqual(env.get("SHELL"), pw.pw_shell or "/bin/sh", env)
            if os.path.isdir(pw.pw_dir):
                self.assertEqual(env.get("HOME"), pw.pw_dir, env)

    def test_cwd_option(self):
        r, _ = self.ferry("pwd", opts=("--cwd", "/tmp"))
        self.assertStatus(r, 0)
        self.assertEqual(r.stdout, b"/tmp\n")
        r = self.session().run({"argv": ["pwd"], "cwd": "/nonexistent-ferry-dir"})
        self.assertEqual(r["exit"], None)
        self.assertEqual([e["code"] for e in r["errors"]], ["request"])

    # -- the session's directory ----------------------------------------------------

    def test_chdir(self):
        s = self.session()
        s.send({"type": "chdir", "path": "/tmp"})
        self.assertEqual(s.recv()[0], {"type": "cwd", "path": "/tmp"})
        self.assertEqual(s.run({"argv": ["pwd"]})["out"], b"/tmp\n")
        s.send({"type": "chdir", "path": "/nonexistent-ferry-dir"})
        h = s.recv()[0]
        self.assertEqual((h["type"], h["code"]), ("error", "request"))
        self.assertIn("/nonexistent-ferry-dir", h["message"])
        s.send({"type": "chdir", "path": self.key_path})            # not a directory
        self.assertEqual(s.recv()[0]["code"], "request")
        self.assertEqual(s.run({"shell": "pwd"})["out"], b"/tmp\n")   # unchanged
        s.send({"type": "chdir", "path": ".."})                       # relative
        self.assertEqual(s.recv()[0], {"type": "cwd", "path": "/"})
        self.assertEqual(s.run({"shell": "pwd"})["out"], b"/\n")

    def test_long_replies_are_not_bound_by_the_preauth_limit(self):
        # A chdir error naming a 4100-byte path is a header over the 4 KiB
        # that ferryd accepts before authentication; replies must still go
        # out (a "request" error), and the session must go on.
        s = self.session()
        path = "/nonexistent-" + "a" * 4100
        s.send({"type": "chdir", "path": path})
        h = s.recv()[0]
        self.assertEqual((h["type"], h["code"]), ("error", "request"))
        self.assertEqual(s.run({"shell": "echo alive"})["out"], b"alive\n")

    def test_env_name_with_equals_is_a_request_error(self):
        s = self.session()
        res = s.run({"argv": ["env"], "env": {"PATH=/evil:/bin;X": "y"}})
        self.assertEqual([(e["code"]) for e in res["errors"]], ["request"])
        self.assertIsNone(res["exit"])                      # nothing ran
        self.assertEqual(s.run({"shell": "echo alive"})["out"], b"alive\n")

    def test_stdin_ack_as_the_command_consumes(self):
        # The command takes 900 kB of the 1 MiB window and then waits: the
        # window must reopen while it waits (acks on progress), not only once
        # everything has been consumed.
        s = self.session()
        s.send({"type": "exec", "shell": "head -c 900000 >/dev/null; echo consumed; sleep 30; cat >/dev/null"})
        chunk = b"x" * 65536
        for _ in range(16):                                 # exactly the window
            s.send({"type": "stdin"}, chunk)
        # The server acks every quarter window (256 KiB) of progress, so at
        # least 900000 - 256 KiB must be acknowledged while the command sleeps
        # with its stdin unread; without acks on progress only the first
        # chunk (taken by the empty pipe at once) would be.
        want = 900000 - (1 << 18)
        acked = 0
        while acked < want:
            h, body = s.recv()         # times out (an error) if the acks stop short
            if h["type"] == "stdin-ack":
                acked += h["bytes"]
            elif h["type"] in ("exit", "error"):
                self.fail("unexpected %r" % h)
        s.send({"type": "signal", "signal": "KILL"})
        while s.recv()[0]["type"] != "exit":
            pass

    # -- classic mode ---------------------------------------------------------------

    def classic_server(self):
        # --plaintext: test_classic_tutorial_client speaks to its session
        # address too.
        srv = self.own_server("--classic", "127.0.0.1:0", endpoints=2, plaintext=True)
        addr = srv.wait_for_log(r"classic protocol on (\S+): UNAUTHENTICATED").group(1)
        self.assertIn(addr, [a for _, a in srv.endpoints])
        host, _, port = addr.rpartition(":")
        return srv, (host, int(port))

    def test_classic_tutorial_client(self):
        srv, classic = self.classic_server()
        out = classic_tutorial_client(classic, ["echo hello", "cd /tmp", "ls /nonexistent-ferry",
                                                "  ", "printf 'x%.0s' $(seq 5000)", "echo bye"])
        self.assertEqual(out[0][0], b"hello\n")
        self.assertEqual(out[1][0], b"")                     # total_size 0, and no hang
        self.assertIn(b"/nonexistent-ferry", out[2][0])      # stderr
        self.assertEqual(out[3][0], b"x" * 5000)             # over many recv(1024)
        self.assertEqual(out[4][0], b"bye\n")
        # The session service on the other address still wants a key.
        session_addr = [a for _, a in srv.endpoints if a != "%s:%d" % classic][0]
        host, _, port = session_addr.rpartition(":")
        h = self.session((host, int(port)), login=False).hello()
        self.assertEqual(h["auth"], "hmac-sha256")

    def test_classic_reply_header(self):
        _, classic = self.classic_server()
        with socket.create_connection(classic, timeout=10 * SLOW) as c:
            c.sendall(b"printf out; printf errr >&2; exit 4")
            h = ft.recv_header(c)
            self.assertEqual(h, {"total_size": 7, "stdout_size": 3, "stderr_size": 4, "status": 4})
            self.assertEqual(recv_exact(c, 7), b"outerrr")

    def test_classic_reused_connection_does_not_stall(self):
        _, classic = self.classic_server()
        limit = 0.020 if not SANITIZED else 0.030
        tries = []

        def median_round_trip():
            out = classic_tutorial_client(classic, ["echo %d" % i for i in range(21)])
            self.assertEqual([o for o, _ in out], [b"%d\n" % i for i in range(21)])
            times = [t for _, t in out[1:]]           # the first pays for warming up
            tries.append([round(t * 1000, 1) for t in times])
            return statistics.median(times)
        self.assertLess(ft.quickest(median_round_trip, limit), limit,
                        "round trips (ms), each try: %s" % tries)

    def test_classic_output_cap(self):
        _, classic = self.classic_server()
        cap = 16 << 20
        with socket.create_connection(classic, timeout=30 * SLOW) as c:
            # The tutorial's own client would do, but its `res += recv(1024)`
            # is quadratic: 16 MiB through it takes minutes.
            c.sendall(b"head -c 20000000 /dev/zero")
            h = ft.recv_header(c)
            self.assertEqual(h["stdout_size"], cap)
            self.assertEqual(h["total_size"], h["stdout_size"] + h["stderr_size"])
            self.assertNotEqual(h["status"], 0)
            self.assertEqual(recv_exact(c, cap), bytes(cap))
            note = recv_exact(c, h["stderr_size"])
            self.assertIn(b"[ferryd: output cut at 16 MiB", note)
            # The connection goes on.
            c.sendall(b"echo next")
            h = ft.recv_header(c)
            self.assertEqual(recv_exact(c, h["total_size"]), b"next\n")

    def test_classic_connection_outlives_the_auth_timeout(self):
        # Classic mode has no handshake, so --auth-timeout must not apply:
        # the tutorial client keeps one connection for a whole session.
        srv = self.own_server("--classic", "127.0.0.1:0", "--auth-timeout", "1", endpoints=2)
        addr = srv.wait_for_log(r"classic protocol on (\S+): UNAUTHENTICATED").group(1)
        host, _, port = addr.rpartition(":")
        out = classic_tutorial_client((host, int(port)),
                                      ["sleep 1.5; echo late", "echo still here"])
        self.assertEqual([o for o, _ in out], [b"late\n", b"still here\n"])
        self.assertFalse([l for l in srv.log if "not authenticated" in l], srv.log)

    # -- graceful stop ----------------------------------------------------------------

    def _signal_waits_for_the_running_command(self, sig):
        srv = self.own_server()
        p = self.popen("echo started; sleep 1; echo done; exit 5", host=srv.addr())
        self.assertEqual(p.stdout.readline(), b"started\n")
        srv.proc.send_signal(sig)
        # Said as the stop begins (only "stopped" came, after the grace).
        srv.wait_for_log(r"info: stopping on %s: 1 connection open; waiting up to 5 s for "
                         r"what runs on it$" % sig.name)
        out, err = p.communicate(timeout=15 * SLOW)
        self.assertEqual((p.returncode, out, err), (5, b"done\n", b""))
        self.assertEqual(srv.proc.wait(timeout=10 * SLOW), 0)
        srv.wait_for_log(r"info: stopped$")   # read to the end of the log
        self.assertFalse([l for l in srv.log if SANITIZER_RX.search(l)])
        said = [i for i, l in enumerate(srv.log) if "stopping on" in l or "info: stopped" in l]
        self.assertEqual([srv.log[i].split("info: ")[1][:11] for i in said],
                         ["stopping on", "stopped"], srv.log)

    def test_a_stop_with_nothing_open_says_so(self):
        srv = self.own_server()
        self.assertEqual(ft.signal_stop(srv.proc, signal.SIGINT, 10 * SLOW), 0)
        srv.wait_for_log(r"info: stopping on SIGINT: no connections open$")

    def test_sigterm_waits_for_the_running_command(self):
        self._signal_waits_for_the_running_command(signal.SIGTERM)

    # SIGHUP (an admin's kill -HUP, a closed terminal) stops as SIGTERM
    # does; it ended ferryd at once and the command lived on, orphaned.
    def test_sighup_stops_gracefully_as_sigterm(self):
        self._signal_waits_for_the_running_command(signal.SIGHUP)


    @ft.cost(6)
    def test_sigterm_grace_ends_a_command_that_does_not_finish(self):
        srv = self.own_server()
        p = self.popen("sh", "-c", "echo $$; exec sleep 100", host=srv.addr())
        pid = int(p.stdout.readline())
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        self.assertEqual(srv.proc.wait(timeout=20 * SLOW), 0)
        elapsed = time.monotonic() - t0
        self.assertGreater(elapsed, 4.0, "ferryd did not wait the grace period (5 s)")
        self.assertLess(elapsed, 5 + 3 * SLOW)
        wait_until(lambda: gone(pid), 2, "the command to be killed at the end of the grace")
        self.assertNotEqual(p.wait(timeout=10 * SLOW), 0)
        # The client is told why, as an idle one is (it read a bare
        # "connection closed by server").
        self.assertEqual(p.stderr.read(), b"ferry: connection closed by server: the server is "
                         b"shutting down, and what was still running after its grace period "
                         b"is ended\n")
        self.assertFalse([l for l in srv.log if SANITIZER_RX.search(l)])


for _name, _args in MODELS.items():
    _cls = type("Ferryd_" + _name, (FerrydModel, unittest.TestCase), {"ARGS": _args})
    globals()[_cls.__name__] = _cls
del _cls


# ---- model-independent: what ferryd refuses at start -------------------------

class FerrydStartupRefusals(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="ferryd-start-")
        self.addCleanup(self.tmp.cleanup)
        self.dir = self.tmp.name
        self.key_path = os.path.join(self.dir, "key")
        write_key(self.key_path)

    def ferryd(self, *args, home=None):
        env = dict(os.environ, HOME=home or self.dir)
        return subprocess.run([FERRYD, *args], capture_output=True, text=True, env=env,
                              stdin=subprocess.DEVNULL, timeout=10 * SLOW)

    def assertRefused(self, r, *words):
        self.assertNotEqual(r.returncode, 0, r.stderr)
        for w in words:
            self.assertIn(w, r.stderr)
        self.assertNotIn("listening on", r.stderr)

    def test_refuses_to_start_without_a_key(self):
        empty_home = os.path.join(self.dir, "home")
        os.mkdir(empty_home)
        r = self.ferryd("--listen", "127.0.0.1:0", home=empty_home)
        self.assertRefused(r, "ferry keygen")
        self.assertEqual(r.stderr.count("\n"), 1, r.stderr)    # the cause and the remedy
        r = self.ferryd("--listen", "127.0.0.1:0", "--key-file", os.path.join(self.dir, "nokey"))
        self.assertRefused(r, "nokey", "ferry keygen")
        self.assertEqual(r.stderr.count("\n"), 1, r.stderr)

    def test_refuses_a_key_others_can_read(self):
        os.chmod(self.key_path, 0o644)
        r = self.ferryd("--listen", "127.0.0.1:0", "--key-file", self.key_path)
        self.assertRefused(r, "chmod")

    def test_refuses_a_file_that_is_not_a_key(self):
        with open(self.key_path, "w") as f:
            f.write("not a key\n")
        r = self.ferryd("--listen", "127.0.0.1:0", "--key-file", self.key_path)
        self.assertRefused(r, "ferry keygen")

    def test_bad_options_are_said_by_ferryd_in_one_line(self):
        # Not by getopt under the path ferryd was started by
        # ("/usr/local/sbin/ferryd: unrecognized option"), as ferry says them.
        for args, line in ((["--bogus"], "ferryd: option '--bogus' is not known"),
                           (["-vx"], "ferryd: option '-x' is not known"),
                           (["--listen"], "ferryd: option '--listen' needs a value"),
                           (["-k"], "ferryd: option '-k' needs a value")):
            r = self.ferryd(*args)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertEqual(r.stderr, line + "\nTry 'ferryd --help' for more information.\n")

    def test_serves_when_started_with_the_standard_descriptors_closed(self):
        # Its stop pipe took 1 and 2, its log went into it, and it quit at
        # once, silently, with status 0.
        sock = os.path.join(self.dir, "s")
        env = dict(os.environ, HOME=self.dir)

        def close_std():
            for fd in (0, 1, 2):
                os.close(fd)
        p = subprocess.Popen([FERRYD, "--listen", "unix:" + sock, "--key-file", self.key_path,
                              "--root", self.dir, "--no-sweep"], env=env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, preexec_fn=close_std)
        self.addCleanup(p.wait, 10 * SLOW)
        self.addCleanup(p.terminate)
        ft.wait_until(lambda: ft.unix_listening(sock) or p.poll() is not None,
                      what="ferryd listening on its socket")
        self.assertIsNone(p.poll(), "ferryd ended")
        r = subprocess.run([ft.binary("ferry"), "exec", "-k", self.key_path, "unix:" + sock,
                            "echo served"], capture_output=True, env=env,
                           stdin=subprocess.DEVNULL, timeout=20 * SLOW)
        self.assertEqual((r.returncode, r.stdout), (0, b"served\n"), r.stderr)

    def test_a_listen_address_that_is_none_is_a_bad_command_line(self):
        for addr in ("nonsense:x", "127.0.0.1:99999", "[::1"):
            r = self.ferryd("--listen", addr, "--key-file", self.key_path, "--no-sweep",
                            "--root", self.dir)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("ferryd: cannot listen on %s" % addr, r.stderr)
        r = self.ferryd("--listen", "127.0.0.1:0", "--classic", "127.0.0.1:99999",
                        "--key-file", self.key_path, "--no-sweep", "--root", self.dir)
        self.assertEqual(r.returncode, 2, r.stderr)

    def test_bad_values_are_told_in_the_option_s_own_terms(self):
        # Options where 0 means none said "1 or more" and "1..N"; the pairs
        # said "A:B" where ferryd(8) says START:RATE.
        for args, said in ((["--unauth-penalty", "x"], "(whole seconds, 0..2147483; 0: none)"),
                           (["--max-unauth-per-source", "-1"], "(0..1000000; 0: off)"),
                           (["--unauth-early-drop", "5"], "(START:RATE (0: never), each "),
                           (["--unauth-netblock", "33:64"], "(V4:V6, V4 1..32, V6 1..128)"),
                           (["--idle-timeout", "0"], "(whole seconds, 1..2147483)")):
            r = self.ferryd("--key-file", self.key_path, *args)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertEqual(r.stderr.count("\n"), 1, r.stderr)
            self.assertIn("ferryd: bad value for %s: '%s' %s" % (args[0], args[1], said),
                          r.stderr)

    def test_a_root_whose_parent_is_missing_is_refused(self):
        # mkdir, not mkdir -p: a typo in --root (or root in the file) was
        # served as a new, empty tree.
        for root, parent in ((os.path.join(self.dir, "typo", "deep", "r"),
                              os.path.join(self.dir, "typo", "deep")),
                             (os.path.join(self.dir, "typo", "r") + "//",
                              os.path.join(self.dir, "typo"))):
            r = self.ferryd("--listen", "127.0.0.1:0", "--key-file", self.key_path,
                            "--root", root)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertEqual(r.stderr.count("\n"), 1, r.stderr)
            self.assertIn("ferryd: --root %s: its parent %s does not exist" % (root, parent),
                          r.stderr)
            self.assertFalse(os.path.exists(os.path.join(self.dir, "typo")))
        conf = os.path.join(self.dir, "ferryd.conf")
        with open(conf, "w") as f:
            f.write("root %s\n" % os.path.join(self.dir, "typo", "r"))
        r = self.ferryd("-f", conf, "--listen", "127.0.0.1:0", "--key-file", self.key_path)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("its parent %s does not exist" % os.path.join(self.dir, "typo"), r.stderr)
        # The last level alone is made, as before.
        root = os.path.join(self.dir, "new")
        srv = ft.start_ferryd("--root", root, "--no-sweep", key_path=self.key_path)
        self.addCleanup(srv.stop_quietly)
        self.assertTrue(os.path.isdir(root))

    def test_a_start_that_fails_is_one_line_and_makes_nothing(self):
        # The key was said (info lines that read as started) and the root
        # made before the listener's bind failed.
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = "127.0.0.1:%d" % taken.getsockname()[1]
        root = os.path.join(self.dir, "root")
        for args in (("--listen", busy), ("--listen", "127.0.0.1:0", "--classic", busy),
                     ("--listen", busy, "--plaintext")):
            with self.subTest(args=args):
                r = self.ferryd(*args, "--key-file", self.key_path, "--root", root)
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertEqual(r.stderr, "ferryd: cannot listen on %s: Address already in use\n"
                                 % busy)
                self.assertFalse(os.path.exists(root))
        r = self.ferryd("--listen", busy, "--insecure-no-auth", "--root", root)
        self.assertEqual(r.stderr, "ferryd: cannot listen on %s: Address already in use\n" % busy)
        self.assertFalse(os.path.exists(root))

    def test_insecure_no_auth_is_loopback_only(self):
        r = self.ferryd("--listen", "0.0.0.0:0", "--insecure-no-auth")
        self.assertRefused(r, "loopback")

    def test_classic_is_loopback_only_without_insecure(self):
        r = self.ferryd("--listen", "127.0.0.1:0", "--key-file", self.key_path,
                        "--classic", "0.0.0.0:0")
        self.assertRefused(r, "loopback", "--insecure")
        srv = ft.start_ferryd("--classic", "0.0.0.0:0", "--insecure", key_path=self.key_path,
                              endpoints=2)
        self.addCleanup(srv.kill)
        srv.wait_for_log(r"classic protocol on 0\.0\.0\.0:\d+: UNAUTHENTICATED")

    def test_auth_timeout_option_is_checked(self):
        for bad in ("0", "-1", "soon"):
            r = self.ferryd("--listen", "127.0.0.1:0", "--key-file", self.key_path,
                            "--auth-timeout", bad)
            self.assertRefused(r, "--auth-timeout")

    def test_workers_with_the_fork_model_is_said_to_have_no_effect(self):
        srv = ft.start_ferryd("--model", "fork", "-w", "2", key_path=self.key_path)
        self.addCleanup(srv.stop_quietly)
        srv.wait_for_log(r"-w/--workers has no effect with --model fork")
        srv = ft.start_ferryd("--model", "event", "-w", "2", key_path=self.key_path)
        self.addCleanup(srv.stop_quietly)
        self.assertFalse([l for l in srv.log if "no effect" in l], srv.log)

    def test_classic_options_without_classic_are_said_to_have_no_effect(self):
        srv = ft.start_ferryd("--insecure", "--classic-max-conns", "3", key_path=self.key_path)
        self.addCleanup(srv.stop_quietly)
        srv.wait_for_log(r"--insecure has no effect without --classic")
        srv.wait_for_log(r"the --classic-\* limits have no effect without --classic")
        srv = ft.start_ferryd("--insecure", "--classic-max-conns", "3", "--classic",
                              "127.0.0.1:0", key_path=self.key_path, endpoints=2)
        self.addCleanup(srv.stop_quietly)
        self.assertFalse([l for l in srv.log if "no effect" in l], srv.log)

    def test_unix_socket_sessions_log_the_peers_uid_and_pid(self):
        path = os.path.join(self.dir, "ferryd.sock")
        srv = ft.start_ferryd(key_path=self.key_path, listen="unix:" + path)
        self.addCleanup(srv.stop_quietly)
        env = dict(os.environ, HOME=self.dir)
        p = subprocess.Popen([ft.binary("ferry"), "exec", "-k", self.key_path, "unix:" + path, "true"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, env=env)
        _, err = p.communicate(timeout=20 * SLOW)
        self.assertEqual(p.returncode, 0, err)
        m = srv.wait_for_log(r"audit: event=session peer=(\S+) .*result=ok")
        self.assertEqual(m.group(1), "unix:uid:%d,pid:%d" % (os.getuid(), p.pid))


if __name__ == "__main__":
    ft.main()
