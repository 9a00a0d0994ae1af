#!/usr/bin/env python3
"""The keepalive around an upload's last bytes (PROTOCOL.md 2.4 put-ack,
2.7).  Once ferry has handed the kernel its last bytes, megabytes may
still be in flight; a server working through them is slow, not gone, and
must not be reported as "stopped answering" for a file it then saves:
ferryd acknowledges the upload as it takes it (put-ack, when the put asks),
and against an older server the socket's send queue shrinking counts.  A
server that truly stopped is still given up within two intervals, also
right after the last byte.

The fakes that take an upload slowly read at a fixed pace: being slow is
what they are for, so time passing is the subject there; everything else
waits for events (the kernel's queues, the temporary's size)."""

import json
import os
import signal
import socket
import struct
import subprocess
import time

import ferrytest
from ferrytest import SLOW, MiB, frame, recv_frame, recv_exact
from test_ferry_bounds import FERRY, Base, keepalive_handshake
from test_ferry_client import FakeServer

KEEPALIVE = 0.2     # the fakes' --keepalive: given up after about 0.4 s of silence
TAIL = 1.2          # how long a slow fake takes over the bytes in flight: > 2 intervals


def whole_frames(buf):
    """The headers of the complete frames at the start of buf."""
    out, at = [], 0
    while len(buf) - at >= 4:
        n = struct.unpack_from("<I", buf, at)[0]
        if len(buf) - at - 4 < n:
            break
        h = json.loads(buf[at + 4:at + 4 + n])
        end = at + 4 + n + h.get("size", 0)
        if end > len(buf):
            break
        out.append(h)
        at = end
    return out


def peek(conn):
    try:
        return conn.recv(8 * MiB, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return b""


def tcp_queued(port):
    """Bytes in the kernel's queues of the loopback connections to port:
    the clients' unacknowledged send queues and the server's unread receive
    queues (/proc/net/tcp)."""
    total = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, remote, state = fields[1], fields[2], fields[3]
            if state != "01" or port not in (int(local.split(":")[1], 16),
                                             int(remote.split(":")[1], 16)):
                continue
            tx, rx = (int(x, 16) for x in fields[4].split(":"))
            total += tx + rx
    return total


class SlowTakerTest(Base):
    """Fakes that take an upload slowly once the client has sent it all."""

    def put_against(self, script, data, rcvbuf=None):
        src = os.path.join(self.dir, "src.bin")
        with open(src, "wb") as f:
            f.write(data)
        fake = FakeServer(script, self.raw_key)
        if rcvbuf:
            # Inherited by the accepted socket: the bytes in flight stay in
            # the client's send queue, where SIOCOUTQ sees them.
            fake.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        r = subprocess.run([FERRY, "--plaintext", "put", "-q", "-k", self.key, "--keepalive",
                            str(KEEPALIVE), fake.address, src, "."], capture_output=True,
                           env=self.env(), timeout=20 * SLOW)
        fake.join(10 * SLOW)
        self.assertIsNone(fake.error)
        return r, fake

    def slow_script(self, data, put_ack, wait_for_all, piece):
        """A fake that answers put-ready, optionally waits until the whole
        upload (put-end included) is in its receive queue, then reads it in
        pieces over TAIL seconds, acknowledging as ferryd does when the put
        asked, and answers put-ok.  It records the put request and the
        put-acks it sent (srv.acks)."""
        def script(conn, srv):
            keepalive_handshake(srv, conn, **({"put_ack": True} if put_ack else {}))
            req, _ = recv_frame(conn)
            srv.received.append(req)
            conn.sendall(frame({"type": "put-ready", "offset": 0}))
            if wait_for_all:
                ferrytest.wait_until(lambda: [h["type"] for h in whole_frames(peek(conn))]
                                     [-1:] == ["put-end"], what="the whole upload queued")
            ack_s = req.get("ack_ms", 0) / 1000.0
            srv.acks = []
            got, last_ack, t0 = 0, time.monotonic(), time.monotonic()
            try:
                while got < len(data):
                    h = ferrytest.recv_header(conn)
                    if h["type"] == "ping":
                        conn.sendall(frame({"type": "pong"}))
                        continue
                    left = h["size"]
                    while left > 0:
                        n = min(piece, left)
                        recv_exact(conn, n)
                        left -= n
                        got += n
                        # The pace: the whole file over TAIL seconds.
                        due = t0 + TAIL * got / len(data)
                        time.sleep(max(0.0, due - time.monotonic()))
                        if ack_s and time.monotonic() - last_ack >= ack_s:
                            conn.sendall(frame({"type": "put-ack", "offset": got}))
                            srv.acks.append(got)
                            last_ack = time.monotonic()
                end, _ = recv_frame(conn)
                while end["type"] == "ping":     # answered as ferryd does, when read
                    conn.sendall(frame({"type": "pong"}))
                    end, _ = recv_frame(conn)
                srv.received.append(end)
                conn.sendall(frame({"type": "put-ok", "filesize": got,
                                    "checksum": end["checksum"]}))
            except (EOFError, OSError):
                srv.received.append({"type": "(client gone)"})
                return
            srv.drain(conn)
        return script

    def test_acknowledged_upload_outlasts_a_slow_tail(self):
        """All of it sent at once, then taken over TAIL (three keepalive
        intervals) with put-acks: the put succeeds, and it asked for them
        at a quarter of the interval."""
        data = os.urandom(64 * 1024)
        r, fake = self.put_against(self.slow_script(data, True, True, 2048), data)
        self.assertEqual(r.returncode, 0, r.stderr)
        put = fake.received[2]
        self.assertEqual((put["type"], put.get("ack_ms")), ("put", int(KEEPALIVE * 1000 / 4)))
        self.assertGreaterEqual(len(fake.acks), 3)

    def test_old_server_is_asked_for_no_acks(self):
        """The same slow tail from a server whose hello does not offer
        put_ack: the put asks for nothing, the socket has nothing left to
        drain (all of it sits in the server's receive queue), so after
        two silent intervals the client gives up (the tail of the test
        above is long enough to matter)."""
        data = os.urandom(64 * 1024)
        r, fake = self.put_against(self.slow_script(data, False, True, 2048), data)
        self.assertNotIn("ack_ms", fake.received[2])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(b"stopped answering", r.stderr)

    def test_draining_send_queue_is_progress(self):
        """An old server (no put_ack) with a small receive buffer that takes
        1 MiB over TAIL: what is in flight waits in the client's send queue,
        and its shrinking keeps the client going to the end."""
        data = os.urandom(MiB)
        r, fake = self.put_against(self.slow_script(data, False, False, 16 * 1024), data,
                                   rcvbuf=32 * 1024)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("ack_ms", fake.received[2])
        self.assertIn("put-end", [m["type"] for m in fake.received])


class SlowDownloadTest(Base):
    def test_trickling_download_is_heard(self):
        """The other direction had no blind spot: a server that sends one
        data frame's body slowly, over TAIL, is heard with every piece."""
        data = os.urandom(256 * 1024)

        def script(conn, srv):
            keepalive_handshake(srv, conn)
            srv.received.append(recv_frame(conn)[0])
            conn.sendall(self.ready(len(data)))
            conn.sendall(frame({"type": "data", "offset": 0, "size": len(data)}))
            t0 = time.monotonic()
            for i in range(0, len(data), 8192):
                conn.sendall(data[i:i + 8192])
                due = t0 + TAIL * (i + 8192) / len(data)     # the pace: the subject
                time.sleep(max(0.0, due - time.monotonic()))
            conn.sendall(frame({"type": "get-end", "checksum": ferrytest.digest(data)}))
            srv.drain(conn)
        r = self.get(FakeServer(script, self.raw_key), "--keepalive", str(KEEPALIVE))
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(self.target, "rb") as f:
            self.assertEqual(f.read(), data)


class PutAckProtoTest(Base):
    """ferryd's put-ack at the protocol level."""

    def setUp(self):
        super().setUp()
        self.root = os.path.join(self.dir, "root")
        os.mkdir(self.root)
        self.server = ferrytest.start_ferryd("--plaintext", "--root", self.root,
                                             key_path=self.key)
        self.addCleanup(self.server.stop_quietly)

    def session(self):
        s = ferrytest.Session(self.server.hostport())
        self.addCleanup(s.close)
        return s

    def put_with_a_pause(self, s, name, **extra):
        """128 KiB in two data frames with more than 10 ms (the floor of
        ack_ms) between them; the frames until put-ok."""
        data = os.urandom(128 * 1024)
        self.assertEqual(s.put_begin(name, len(data), **extra)["type"], "put-ready")
        s.send_data(data[:64 * 1024], 0)
        time.sleep(0.05)                  # the subject: ack_ms passing
        s.send_data(data[64 * 1024:], 64 * 1024)
        s.put_end(ferrytest.digest(data))
        frames = []
        while not frames or frames[-1]["type"] not in ("put-ok", "error"):
            frames.append(s.recv()[0])
        with open(os.path.join(self.root, name), "rb") as f:
            self.assertEqual(f.read(), data)
        return frames

    def test_hello_offers_put_ack(self):
        self.assertIs(self.session().hello().get("put_ack"), True)

    def test_put_asking_for_acks_hears_how_far_it_got(self):
        s = self.session()
        s.login(self.raw_key)
        frames = self.put_with_a_pause(s, "a.bin", ack_ms=1)     # below the floor: 10 ms
        acks = [h["offset"] for h in frames if h["type"] == "put-ack"]
        self.assertEqual(frames[-1]["type"], "put-ok", frames)
        self.assertTrue(acks, frames)
        self.assertEqual(set(h["type"] for h in frames), {"put-ack", "put-ok"})
        self.assertEqual(acks, sorted(acks))
        self.assertGreater(acks[0], 64 * 1024)     # the first bytes after the pause
        self.assertLessEqual(acks[-1], 128 * 1024)

    def test_put_without_ack_ms_gets_none(self):
        s = self.session()
        s.login(self.raw_key)
        frames = self.put_with_a_pause(s, "b.bin")
        self.assertEqual([h["type"] for h in frames], ["put-ok"])

    def test_malformed_ack_ms_is_a_protocol_error(self):
        for bad in ("fast", -1, 3600001):
            with self.subTest(ack_ms=bad):
                s = self.session()
                s.login(self.raw_key)
                h = s.put_begin("c.bin", 1, ack_ms=bad)
                self.assertEqual((h["type"], h["code"]), ("error", "protocol"), h)
                self.assertIn("ack_ms", h["message"])


class StoppedFerrydTest(Base):
    """ferryd SIGSTOPped during and right after an upload: a stop shorter
    than two intervals is waited out, a longer one is found within them."""

    KEEPALIVE = 0.4

    def start(self, *args):
        self.root = os.path.join(self.dir, "root")
        os.mkdir(self.root)
        self.server = ferrytest.start_ferryd("--root", self.root, *args, key_path=self.key)
        self.addCleanup(self.server.stop_quietly)
        return self.server.addr()

    def stop_server(self):
        os.kill(self.server.pid, signal.SIGSTOP)
        self.addCleanup(os.kill, self.server.pid, signal.SIGCONT)
        return time.monotonic()

    def test_stop_mid_upload_with_full_buffers_is_waited_out(self):
        """Stopped for 1.25 intervals once the kernel's buffers hold all
        they can, then continued: the upload completes."""
        host = self.start()
        big = os.path.join(self.dir, "big")
        with open(big, "wb") as f:
            f.truncate(64 * MiB)                 # sparse: read fast, sent in full
        p = subprocess.Popen([FERRY, "put", "-q", "--keepalive", str(self.KEEPALIVE), "-k",
                              self.key, host, big, "big"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=self.env())
        try:
            port = int(host.rsplit(":", 1)[1])
            ferrytest.wait_until(lambda: ferrytest.parts_under(self.root), what="the upload begun")
            t0 = self.stop_server()
            # Full: what the kernels hold stops growing (a bounded poll).
            last = [-1]

            def settled():
                q = tcp_queued(port)
                full, last[0] = q > 0 and q == last[0], q
                return full
            ferrytest.wait_until(settled, what="the socket buffers full", interval=0.02)
            time.sleep(max(0.0, t0 + 1.25 * self.KEEPALIVE - time.monotonic()))  # the subject
            os.kill(self.server.pid, signal.SIGCONT)
            out, err = p.communicate(timeout=20 * SLOW)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, 0, err)
        self.assertEqual(os.path.getsize(os.path.join(self.root, "big")), 64 * MiB)

    def tail_put(self, host):
        """ferry put - with 2 MiB taken by ferryd, which is then stopped,
        and the last 256 KiB and put-end handed to the kernel."""
        p = subprocess.Popen([FERRY, "--plaintext", "put", "-q", "--keepalive",
                              str(self.KEEPALIVE), "-k", self.key, host, "-", "tail.bin"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=self.env())
        port = int(host.rsplit(":", 1)[1])
        p.stdin.write(b"a" * (2 * MiB))
        p.stdin.flush()
        ferrytest.wait_until(lambda: any(os.path.getsize(os.path.join(self.root, x)) == 2 * MiB
                                         for x in ferrytest.parts_under(self.root)),
                             what="2 MiB taken by ferryd")
        t0 = self.stop_server()
        p.stdin.write(b"b" * (256 * 1024))
        p.stdin.close()
        ferrytest.wait_until(lambda: tcp_queued(port) >= 256 * 1024,
                             what="the last bytes in the kernel")
        self.addCleanup(p.stdout.close)
        self.addCleanup(p.stderr.close)
        return p, t0

    def test_stop_right_after_the_last_byte(self):
        """Stopped with the upload's last bytes in flight: for longer than
        two intervals, the client says the server stopped answering within
        them; for 1.25 intervals, the upload completes."""
        host = self.start("--plaintext")
        p, t0 = self.tail_put(host)
        try:
            p.wait(timeout=20 * SLOW)
            took = time.monotonic() - t0
            err = p.stderr.read()
        finally:
            os.kill(self.server.pid, signal.SIGCONT)
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, 1, err)
        self.assertIn(b"stopped answering", err)
        self.assertLess(took, 2 * self.KEEPALIVE + 2 * SLOW)
        # The abandoned upload's temporary goes once ferryd runs again.
        ferrytest.wait_until(lambda: not ferrytest.parts_under(self.root),
                             what="the first temporary removed")

        p, t0 = self.tail_put(host)
        try:
            time.sleep(max(0.0, t0 + 1.25 * self.KEEPALIVE - time.monotonic()))  # the subject
            os.kill(self.server.pid, signal.SIGCONT)
            p.wait(timeout=20 * SLOW)
            err = p.stderr.read()
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, 0, err)
        self.assertEqual(os.path.getsize(os.path.join(self.root, "tail.bin")),
                         2 * MiB + 256 * 1024)


if __name__ == "__main__":
    ferrytest.main()
