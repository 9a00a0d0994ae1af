#!/usr/bin/env python3
"""ferry, the client, bounds what a server can make it do (issue 11,
defects 6, 8, 9, 10a): a hostile server's announced size reserves no
more disk than what arrived plus a bounded window, a transfer that ends
short gives back what it took, and a temporary left by a killed run is
removed by the next get of that target.  The servers here are scripted
fakes (test_ferry_client.FakeServer) speaking the protocol in the clear."""

import os
import signal
import subprocess
import tempfile
import unittest

import ferrytest
from ferrytest import SLOW, MiB, frame, recv_frame, write_key
from test_ferry_client import FakeServer

FERRY = ferrytest.binary("ferry")
GiB = 1 << 30
RESERVE_STEP = 64 * MiB   # GET_RESERVE_STEP in src/ferry/transfer_get.c


class BoundsTest(unittest.TestCase):
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
        for name in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "TSAN_OPTIONS"):
            if name in os.environ:
                env[name] = os.environ[name]
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


if __name__ == "__main__":
    ferrytest.main()
