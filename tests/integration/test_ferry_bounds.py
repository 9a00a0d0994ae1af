#!/usr/bin/env python3
"""ferry, the client, bounds what a server can make it do (issue 11,
defects 6, 8, 9, 10a): a hostile server's announced size reserves no
more disk than what arrived plus a bounded window, a transfer that ends
short gives back what it took, a temporary left by a killed run is
removed by the next get of that target, and --keepalive gives up on a
server that stopped answering.  ferryd's side: idle means idle (a quiet
command is not), and a connection it closes says why first
(PROTOCOL.md 2.7).  The fakes (test_ferry_client.FakeServer) speak the
protocol in the clear."""

import os
import socket
import signal
import subprocess
import tempfile
import time
import unittest

import ferrytest
from ferrytest import SLOW, MiB, frame, recv_frame, write_key
from test_ferry_client import FakeServer

FERRY = ferrytest.binary("ferry")
GiB = 1 << 30
RESERVE_STEP = 64 * MiB   # GET_RESERVE_STEP in src/ferry/transfer_get.c


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name
        self.key = os.path.join(self.dir, "key")
        write_key(self.key)
        with open(self.key) as f:
            self.raw_key = bytes.fromhex(f.read().strip())
        self.target = os.path.join(self.dir, "out.bin")
        self.part = os.path.join(self.dir, ".out.bin" + ferrytest.PART)

    def tearDown(self):
        self.tmp.cleanup()

    def env(self):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.dir,
               "LANG": "C.UTF-8"}
        env.update(ferrytest.sanitizer_env())
        return env

    def get_argv(self, fake, *opts):
        return [FERRY, "--plaintext", "get", "-k", self.key, *opts, fake.address, "f.bin",
                self.target]

    def get(self, fake, *opts):
        r = subprocess.run(self.get_argv(fake, *opts), capture_output=True, env=self.env(),
                           timeout=20 * SLOW)
        fake.join(10 * SLOW)
        self.assertIsNone(fake.error)
        return r

    @staticmethod
    def ready(filesize, offset=0):
        return frame({"type": "get-ready", "filesize": filesize, "offset": offset,
                      "mode": 0o644, "mtime": 0, "mtime_nsec": 0})



class BoundsTest(Base):
    def test_announced_size_reserves_only_a_window(self):
        """2^40 bytes announced, 1 MiB sent, then a hang-up: while the data
        flows the temporary holds at most what arrived plus one step, and
        once the transfer ended short (--resume keeps the temporary) it
        holds only what arrived."""
        seen = {}

        def script(conn, srv):
            srv.handshake(conn)
            req, _ = recv_frame(conn)
            srv.received.append(req)
            conn.sendall(self.ready(1 << 40))
            conn.sendall(frame({"type": "data", "offset": 0, "size": MiB}, b"x" * MiB))
            # The client stored that MiB: what does the temporary hold now?
            ferrytest.wait_until(lambda: os.path.exists(self.part) and
                                 os.stat(self.part).st_size == MiB, what="the first MiB stored")
            seen["blocks"] = os.stat(self.part).st_blocks * 512
        r = self.get(FakeServer(script, self.raw_key), "--resume")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(b"connection closed by server", r.stderr)
        self.assertEqual(r.stdout, b"")
        self.assertLessEqual(seen["blocks"], MiB + RESERVE_STEP + MiB)
        st = os.stat(self.part)
        self.assertEqual(st.st_size, MiB)
        self.assertLessEqual(st.st_blocks * 512, 2 * MiB)   # the reservation was given back

    def test_short_transfer_without_resume_leaves_nothing(self):
        def script(conn, srv):
            srv.handshake(conn)
            recv_frame(conn)
            conn.sendall(self.ready(1 << 40))
            conn.sendall(frame({"type": "data", "offset": 0, "size": MiB}, b"x" * MiB))
        r = self.get(FakeServer(script, self.raw_key))
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(b"connection closed by server", r.stderr)
        self.assertEqual(os.listdir(self.dir), ["key"])

    def test_killed_get_temporary_is_removed_by_the_next_get(self):
        """SIGKILL leaves .out.bin.ferry-part behind; the next get of that
        target removes it even when that get fails, and a get that succeeds
        leaves only the target."""
        def stalls(conn, srv):
            srv.handshake(conn)
            recv_frame(conn)
            conn.sendall(self.ready(4 * MiB))
            conn.sendall(frame({"type": "data", "offset": 0, "size": MiB}, b"x" * MiB))
            srv.drain(conn)    # until the killed client's socket closes
        fake = FakeServer(stalls, self.raw_key)
        p = subprocess.Popen(self.get_argv(fake), env=self.env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        try:
            ferrytest.wait_until(lambda: os.path.exists(self.part) and
                                 os.stat(self.part).st_size == MiB, what="the first MiB stored")
        finally:
            p.send_signal(signal.SIGKILL)
            p.wait()
        fake.join(10 * SLOW)
        self.assertTrue(os.path.exists(self.part))

        def missing(conn, srv):
            srv.handshake(conn)
            recv_frame(conn)
            conn.sendall(frame({"type": "error", "code": "fs", "errno": "ENOENT",
                                "message": "no such file"}))
            srv.drain(conn)
        r = self.get(FakeServer(missing, self.raw_key))
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(os.listdir(self.dir), ["key"])

        # And once more, left by a killed run and then a whole download.
        with open(self.part, "wb") as f:
            f.write(b"stale")

        def whole(conn, srv):
            srv.handshake(conn)
            recv_frame(conn)
            conn.sendall(self.ready(3))
            conn.sendall(frame({"type": "data", "offset": 0, "size": 3}, b"abc"))
            conn.sendall(frame({"type": "get-end", "checksum": ferrytest.digest(b"abc")}))
            srv.drain(conn)
        r = self.get(FakeServer(whole, self.raw_key))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(os.listdir(self.dir)), ["key", "out.bin"])


def keepalive_handshake(srv, conn, keepalive=True, **hello_extra):
    """FakeServer.handshake with a hello that says whether it answers pings
    (and whatever else hello_extra offers)."""
    srv.read_hello(conn)
    sn = os.urandom(32)
    hello = dict({"type": "hello", "version": 1, "server": "fake", "auth": "hmac-sha256",
                  "nonce": sn.hex()}, **hello_extra)
    if keepalive:
        hello["keepalive"] = True
    conn.sendall(frame(hello))
    auth, _ = recv_frame(conn)
    srv.received.append(auth)
    cn = bytes.fromhex(auth["nonce"])
    conn.sendall(frame({"type": "welcome",
                        "proof": ferrytest.proof(srv.key, ferrytest.SERVER_LABEL, sn, cn)}))


class KeepaliveFakeTest(Base):
    """A server that stops answering, as a fake that goes silent: the
    client's error comes within its bound (two intervals, plus slack)."""

    def exec_against(self, script, *opts):
        fake = FakeServer(script, self.raw_key)
        t0 = time.monotonic()
        r = subprocess.run([FERRY, "--plaintext", "exec", "-n", "-k", self.key, *opts,
                            fake.address, "true"], capture_output=True, env=self.env(),
                           timeout=20 * SLOW)
        took = time.monotonic() - t0
        fake.join(10 * SLOW)
        self.assertIsNone(fake.error)
        return r, fake, took

    def test_silent_server_during_exec(self):
        def script(conn, srv):
            keepalive_handshake(srv, conn)
            srv.drain(conn)          # reads the pings, answers nothing
        r, fake, took = self.exec_against(script, "--keepalive", "0.3")
        self.assertEqual(r.returncode, 255, r.stderr)
        self.assertIn(b"stopped answering", r.stderr)
        self.assertIn({"type": "ping"}, fake.received)
        self.assertLess(took, 0.6 + 2 * SLOW)

    def test_pongs_keep_a_quiet_command_going(self):
        def script(conn, srv):
            keepalive_handshake(srv, conn)
            srv.received.append(recv_frame(conn)[0])      # exec
            deadline = time.monotonic() + 1.2
            conn.settimeout(0.1)
            while time.monotonic() < deadline:            # quiet, but answering
                try:
                    m, _ = recv_frame(conn)
                except (TimeoutError, socket.timeout):
                    continue
                srv.received.append(m)
                if m["type"] == "ping":
                    conn.sendall(frame({"type": "pong"}))
            conn.settimeout(10)
            conn.sendall(frame({"type": "exit", "status": 0}))
            srv.drain(conn)
        r, fake, _ = self.exec_against(script, "--keepalive", "0.2")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertGreaterEqual([m["type"] for m in fake.received].count("ping"), 2)

    def test_old_server_gets_no_ping(self):
        """A server whose hello does not say "keepalive" would take a ping
        for a protocol error: it gets none, and its silence is waited out."""
        def script(conn, srv):
            keepalive_handshake(srv, conn, keepalive=False)
            srv.received.append(recv_frame(conn)[0])
            conn.settimeout(0.8)
            try:
                srv.received.append(recv_frame(conn)[0])
            except (TimeoutError, socket.timeout):
                pass
            conn.settimeout(10)
            conn.sendall(frame({"type": "exit", "status": 0}))
            srv.drain(conn)
        r, fake, _ = self.exec_against(script, "--keepalive", "0.2")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("ping", [m["type"] for m in fake.received])

    def test_silent_server_during_a_download(self):
        def script(conn, srv):
            keepalive_handshake(srv, conn)
            recv_frame(conn)
            conn.sendall(self.ready(4 * MiB))
            conn.sendall(frame({"type": "data", "offset": 0, "size": MiB}, b"x" * MiB))
            srv.drain(conn)
        fake = FakeServer(script, self.raw_key)
        t0 = time.monotonic()
        r = subprocess.run(self.get_argv(fake, "--keepalive", "0.3"), capture_output=True,
                           env=self.env(), timeout=20 * SLOW)
        took = time.monotonic() - t0
        fake.join(10 * SLOW)
        self.assertIsNone(fake.error)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(b"stopped answering", r.stderr)
        self.assertLess(took, 0.6 + 2 * SLOW)
        self.assertEqual(os.listdir(self.dir), ["key"])


class FerrydCloseTest(Base):
    """ferryd: idle means idle, and a connection it closes says why."""

    def start(self, *args):
        self.server = ferrytest.start_ferryd(*args, key_path=self.key)
        self.addCleanup(self.server.stop_quietly)
        return self.server.addr()

    def ferry(self, *args, **kw):
        return subprocess.run([FERRY, *args], capture_output=True, env=self.env(),
                              timeout=20 * SLOW, **kw)

    def quiet_shell(self, host):
        """ferry shell whose stdin stays open and says nothing (until
        p.stdin is written to)."""
        return subprocess.Popen([FERRY, "shell", "-k", self.key, host], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env())

    def test_quiet_command_outlives_the_idle_timeout(self):
        for model in ("event", "fork"):
            with self.subTest(model=model):
                host = self.start("--idle-timeout", "1", "--model", model)
                r = self.ferry("exec", "-n", "-k", self.key, host, "sleep 2; echo done")
                self.assertEqual((r.returncode, r.stdout), (0, b"done\n"), r.stderr)
                self.server.stop()

    def test_idle_close_is_explained(self):
        host = self.start("--idle-timeout", "1")
        p = self.quiet_shell(host)
        try:
            self.server.wait_for_log(r"idle for \d+ ms, closing")
            # The shell learns it at its next command.
            out, err = p.communicate(b"echo hi\n", timeout=10 * SLOW)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, 255, err)
        self.assertIn(b"connection closed by server: idle for 1 s", err)

    def test_shutdown_is_explained(self):
        host = self.start()
        p = self.quiet_shell(host)
        try:
            self.server.wait_for_log(r"authenticated with")
            self.server.stop()
            out, err = p.communicate(b"echo hi\n", timeout=10 * SLOW)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, 255, err)
        self.assertIn(b"connection closed by server: the server is shutting down", err)

    def test_connection_limit_is_explained(self):
        """At --max-conns ferryd answers in the clear, before TLS, and the
        client says so instead of blaming TLS (defect 9)."""
        for plaintext in (False, True):
            with self.subTest(plaintext=plaintext):
                host = self.start("--max-conns", "1", *(["--plaintext"] if plaintext else []))
                before = self.server.fd_count()
                hold = socket.create_connection(self.server.hostport())
                self.addCleanup(hold.close)
                ferrytest.wait_until(lambda: self.server.fd_count() > before,
                                     what="the first connection accepted")
                r = self.ferry(*(["--plaintext"] if plaintext else []), "exec", "-n", "-k",
                               self.key, host, "true")
                self.assertEqual(r.returncode, 255, r.stderr)
                self.assertIn(b"the server is at its connection limit", r.stderr)
                self.assertNotIn(b"TLS", r.stderr)
                self.assertEqual(r.stderr.count(b"\n"), 1, r.stderr)
                hold.close()
                self.server.stop()

    def test_auth_timeout_is_explained(self):
        """A client that said hello and then nothing is told why it is
        closed; one that said nothing at all hears nothing."""
        self.start("--auth-timeout", "1", "--plaintext")
        s = ferrytest.Session(self.server.hostport())
        self.addCleanup(s.close)
        s.hello()
        h, _ = s.recv()
        self.assertEqual((h["type"], h["reason"]), ("closing", "auth-timeout"))
        self.assertRaises(EOFError, s.recv)

    def test_silent_peer_is_closed_without_a_word(self):
        """Idle before its hello: closed, and the server never spoke."""
        self.start("--idle-timeout", "1", "--plaintext")
        sock = socket.create_connection(self.server.hostport())
        self.addCleanup(sock.close)
        sock.settimeout(10 * SLOW)
        self.assertEqual(ferrytest.recv_until_closed(sock), b"")

    def test_client_prints_a_closing_before_the_greeting(self):
        def script(conn, srv):
            srv.read_hello(conn)
            conn.sendall(frame({"type": "closing", "reason": "whatever",
                                "message": "going away\x1b[2J now"}))
        fake = FakeServer(script, self.raw_key)
        r = self.ferry("--plaintext", "exec", "-k", self.key, fake.address, "true")
        fake.join(10 * SLOW)
        self.assertIsNone(fake.error)
        self.assertEqual(r.returncode, 255, r.stderr)
        self.assertEqual(r.stderr, b"ferry: connection closed by server before its greeting: "
                                   b"going away?[2J now\n")

    def test_stopped_server_during_the_handshake(self):
        """Before authentication --connect-timeout bounds the silence."""
        host = self.start()
        os.kill(self.server.pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            r = self.ferry("exec", "--connect-timeout", "0.5", "-k", self.key, host, "true")
            took = time.monotonic() - t0
        finally:
            os.kill(self.server.pid, signal.SIGCONT)
        self.assertEqual(r.returncode, 255, r.stderr)
        self.assertIn(b"the server stopped answering", r.stderr)
        self.assertLess(took, 0.5 + 2 * SLOW)

    def test_transfer_in_flight_is_not_idle(self):
        """An upload whose client pauses longer than --idle-timeout between
        data frames is still a transfer in flight: it completes."""
        root = os.path.join(self.dir, "root")
        os.mkdir(root)
        self.start("--idle-timeout", "1", "--plaintext", "--root", root)
        s = ferrytest.Session(self.server.hostport()).login(self.raw_key)
        self.addCleanup(s.close)
        data = b"a" * 1000 + b"b" * 1000
        self.assertEqual(s.put_begin("up.bin", len(data))["type"], "put-ready")
        s.send_data(data[:1000], 0)
        time.sleep(1.6)                         # longer than the idle timeout
        s.send_data(data[1000:], 1000)
        s.put_end(ferrytest.digest(data))
        h, _ = s.recv()
        self.assertEqual(h["type"], "put-ok", h)
        with open(os.path.join(root, "up.bin"), "rb") as f:
            self.assertEqual(f.read(), data)

    def test_keepalive_never_cuts_into_an_upload(self):
        """A keepalive due in the middle of a data frame's body must not be
        sent there (it corrupted a 4 GiB put at the 15 s default): an
        upload much longer than the interval arrives whole."""
        root = os.path.join(self.dir, "root")
        os.mkdir(root)
        host = self.start("--root", root)
        big = os.path.join(self.dir, "big")
        with open(big, "wb") as f:
            f.truncate(512 * MiB)
        r = self.ferry("put", "-q", "--keepalive", "0.5", "-k", self.key, host, big, "big")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(os.path.getsize(os.path.join(root, "big")), 512 * MiB)

    def test_stopped_server_during_an_upload(self):
        """SIGSTOP ferryd while a put streams: --keepalive ends the client
        within two intervals (its ping waits behind data that no longer
        drains, and nothing comes back)."""
        root = os.path.join(self.dir, "root")
        os.mkdir(root)
        host = self.start("--root", root)
        big = os.path.join(self.dir, "big")
        with open(big, "wb") as f:
            f.truncate(8 << 30)                 # sparse: read fast, sent in full
        p = subprocess.Popen([FERRY, "put", "-q", "--keepalive", "0.3", "-k", self.key, host,
                              big, "big"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=self.env())
        stopped = False
        try:
            ferrytest.wait_until(lambda: ferrytest.parts_under(root), what="the upload begun")
            os.kill(self.server.pid, signal.SIGSTOP)
            stopped = True
            t0 = time.monotonic()
            out, err = p.communicate(timeout=10 * SLOW)
            took = time.monotonic() - t0
        finally:
            if stopped:
                os.kill(self.server.pid, signal.SIGCONT)
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertNotEqual(p.returncode, 0, err)
        self.assertIn(b"stopped answering", err)
        self.assertLess(took, 0.6 + 2 * SLOW)

    def test_pings_are_answered_and_are_not_activity(self):
        self.start("--idle-timeout", "1", "--plaintext", "--model", "fork")
        s = ferrytest.Session(self.server.hostport()).login(self.raw_key)
        self.addCleanup(s.close)
        for _ in range(3):                       # pings for about half of the 1 s
            s.send({"type": "ping"})
            last_ping = time.monotonic()
            self.assertEqual(s.recv()[0], {"type": "pong", "rest": True})
            time.sleep(0.2)
        h, _ = s.recv()
        self.assertEqual((h["type"], h["reason"]), ("closing", "idle"))
        # Counted from the login, not from the last ping (that would close
        # a whole second after it).
        self.assertLess(time.monotonic() - last_ping, 0.9)
        self.assertRaises(EOFError, s.recv)

    def test_a_ping_during_a_download_is_answered_after_it(self):
        # One pong a ping, so that a connection master that counts them
        # finds its own (PROTOCOL.md 2.7, 2.9); "rest" says the session
        # holds nothing any more.
        root = os.path.join(self.dir, "root")
        os.mkdir(root)
        with open(os.path.join(root, "big.bin"), "wb") as f:
            f.write(os.urandom(8 * MiB))
        self.start("--root", root, "--plaintext")
        s = ferrytest.Session(self.server.hostport(), rcvbuf=64 * 1024).login(self.raw_key)
        self.addCleanup(s.close)
        self.assertEqual(s.get_begin("big.bin")["type"], "get-ready")
        s.send({"type": "ping"})   # while 8 MiB wait for us to read them
        data, end, _ = s.get_rest()
        self.assertEqual((len(data), end["type"]), (8 * MiB, "get-end"))
        self.assertEqual(s.recv()[0], {"type": "pong", "rest": True})

    def test_stopped_server_is_detected_by_keepalive(self):
        host = self.start()
        p = subprocess.Popen([FERRY, "exec", "-n", "--keepalive", "0.3", "-k", self.key, host,
                              "sleep 30"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=self.env())
        stopped = []
        try:
            ferrytest.wait_until(lambda: len(ferrytest.process_tree(self.server.pid)) > 1,
                                 what="the command")
            stopped = ferrytest.process_tree(self.server.pid)
            t0 = time.monotonic()
            for pid in stopped:
                os.kill(pid, signal.SIGSTOP)
            out, err = p.communicate(timeout=10 * SLOW)
            took = time.monotonic() - t0
        finally:
            for pid in stopped:
                try:
                    os.kill(pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, 255, err)
        self.assertIn(b"stopped answering", err)
        self.assertLess(took, 0.6 + 2 * SLOW)


if __name__ == "__main__":
    ferrytest.main()
