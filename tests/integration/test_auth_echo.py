"""auth_echo and auth_client: the tutorial's HMAC challenge (seed 001),
checked against faithful Python renditions of the tutorial's own client and
server, in every concurrency model."""
import hmac
import os
import socket
import tempfile
import threading
import time
import unittest

import ferrytest
from ferrytest import SLOW, recv_exact, recv_until_closed

KEY = b"linhaifeng bang bang bang"   # the tutorial's hard-coded key
NONCE_LEN = 32
DIGEST_LEN = {"sha256": 32, "md5": 16}


def tutorial_client(hostport, key, digestmod, messages):
    """The tutorial's client, line for line: recv(32), answer
    hmac.new(key, msg).digest() (digestmod: the old default was md5),
    then sendall / recv(1024) per message."""
    replies = []
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(10 * SLOW)
        s.connect(hostport)
        msg = s.recv(32)
        s.sendall(hmac.new(key, msg, digestmod).digest())
        for data in messages:
            s.sendall(data.encode("utf-8"))
            replies.append(s.recv(1024).decode("utf-8"))
    return replies


class TutorialServer(threading.Thread):
    """The tutorial's server: one client at a time, os.urandom(32)
    challenge, compare_digest, then recv(1024) / sendall(data.upper())."""

    def __init__(self, key, digestmod):
        super().__init__(daemon=True)
        self.key, self.digestmod = key, digestmod
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(5)
        self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.rejected = 0
        self.start()

    def conn_auth(self, conn):
        msg = os.urandom(32)
        conn.sendall(msg)
        digest = hmac.new(self.key, msg, self.digestmod).digest()
        respone = conn.recv(len(digest))
        return hmac.compare_digest(respone, digest)

    def run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return   # closed by stop()
            with conn:
                conn.settimeout(10 * SLOW)
                try:
                    if not self.conn_auth(conn):
                        self.rejected += 1
                        continue
                    while True:
                        data = conn.recv(1024)
                        if not data:
                            break
                        conn.sendall(data.upper())
                except OSError:
                    pass

    def stop(self):
        # shutdown() wakes the blocked accept(); close() alone may not.
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.join(5 * SLOW)


class KeyDir:
    """A private directory of key files, removed when the test ends."""

    def make_keys(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.keydir = tmp.name
        self.key_file = self.key_path("key", KEY)
        self.wrong_key_file = self.key_path("wrong", b"not the key")

    def key_path(self, name, data, mode=0o600):
        """A key file in the directory holding exactly data; its path."""
        path = os.path.join(self.keydir, name)
        ferrytest.write_key(path, data=data, mode=mode)
        return path


class AuthEchoSuite(KeyDir):
    MODEL = None

    def setUp(self):
        self.make_keys()

    def start(self, *args, digest="sha256"):
        server = ferrytest.start_server("auth_echo", "--model", self.MODEL, "--listen", "127.0.0.1:0",
                                        "--key-file", self.key_file, "--digest", digest, *args)
        self.addCleanup(server.stop_quietly)
        return server

    def authenticated(self, server, digest="sha256"):
        s = ferrytest.connect(server)
        self.addCleanup(s.close)
        nonce = recv_exact(s, NONCE_LEN)
        s.sendall(hmac.new(KEY, nonce, digest).digest())
        return s

    def assert_serves(self, server, digest="sha256"):
        s = self.authenticated(server, digest)
        s.sendall(b"still here")
        self.assertEqual(recv_exact(s, 10), b"STILL HERE")
        s.close()

    def test_tutorial_client_in_both_digests(self):
        messages = ["hello", "Mixed Case 123", "ünïcode stays ünïcode"]
        for digest in ("sha256", "md5"):
            with self.subTest(digest=digest):
                server = self.start(digest=digest)
                replies = tutorial_client(server.hostport(), KEY, digest, messages)
                self.assertEqual(replies, [m.encode().upper().decode() for m in messages])

    def test_auth_client_against_our_server(self):
        for digest in ("sha256", "md5"):
            with self.subTest(digest=digest):
                server = self.start(digest=digest)
                r = ferrytest.run("auth_client", "--key-file", self.key_file, "--digest", digest,
                                  server.addr(), "hello", "world")
                self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "HELLO\nWORLD\n", ""))
                r = ferrytest.run("auth_client", "-k", self.key_file, "-d", digest, server.addr(),
                                  input="line one\n\nline two\n")
                self.assertEqual((r.returncode, r.stdout), (0, "LINE ONE\nLINE TWO\n"))

    def test_wrong_key_is_closed_with_nothing_echoed(self):
        server = self.start()
        with ferrytest.connect(server) as s:
            nonce = recv_exact(s, NONCE_LEN)
            s.sendall(hmac.new(b"wrong key", nonce, "sha256").digest() + b"echo me")
            self.assertEqual(recv_until_closed(s), b"")
            port = s.getsockname()[1]
        server.wait_for_log(r"127\.0\.0\.1:%d\): authentication failed" % port)
        self.assert_serves(server)

    def test_wrong_digest_length_never_passes(self):
        # An md5 answer to a sha256 server is half a digest: with more
        # bytes after it, the server compares and refuses.
        server = self.start()
        with ferrytest.connect(server) as s:
            nonce = recv_exact(s, NONCE_LEN)
            s.sendall(hmac.new(KEY, nonce, "md5").digest() + b"x" * 16 + b"echo me")
            self.assertEqual(recv_until_closed(s), b"")
        self.assert_serves(server)

    def test_auth_client_reports_a_wrong_key(self):
        server = self.start()
        r = ferrytest.run("auth_client", "--key-file", self.wrong_key_file, server.addr(), "hello")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout, "")
        self.assertEqual(r.stderr, "auth_client: authentication failed\n")

    def test_digest_in_pieces_and_data_in_the_same_send(self):
        server = self.start()
        s = ferrytest.connect(server)
        self.addCleanup(s.close)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        digest = hmac.new(KEY, recv_exact(s, NONCE_LEN), "sha256").digest()
        for i in range(len(digest) - 4):
            s.send(digest[i:i + 1])
        s.sendall(digest[-4:] + b"glued to the digest")
        self.assertEqual(recv_exact(s, 19), b"GLUED TO THE DIGEST")

    def test_silent_client_is_closed_by_the_auth_timeout(self):
        server = self.start("--auth-timeout", "1")
        good = self.authenticated(server)    # connected first: its deadline passes first
        with ferrytest.connect(server) as silent:
            recv_exact(silent, NONCE_LEN)
            started = time.monotonic()
            self.assertEqual(recv_until_closed(silent), b"")
            self.assertGreater(time.monotonic() - started, 0.5)
        server.wait_for_log(r"not authenticated within 1000 ms")
        # Authentication ended the timeout for the other connection.
        good.sendall(b"after the deadline")
        self.assertEqual(recv_exact(good, 18), b"AFTER THE DEADLINE")

    def test_many_clients_at_once(self):
        server = self.start()
        errors = []

        def client(n):
            try:
                msg = "client %d says hi" % n
                if tutorial_client(server.hostport(), KEY, "sha256", [msg]) != [msg.upper()]:
                    errors.append(n)
            except OSError as e:
                errors.append((n, e))

        threads = [threading.Thread(target=client, args=(n,)) for n in range(30)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30 * SLOW)
        self.assertEqual(errors, [])
        self.assertEqual(server.stop(), 0)


class EventModel(AuthEchoSuite, unittest.TestCase):
    MODEL = "event"


class ThreadModel(AuthEchoSuite, unittest.TestCase):
    MODEL = "thread"


class ForkModel(AuthEchoSuite, unittest.TestCase):
    MODEL = "fork"


class AgainstTheTutorialServer(KeyDir, unittest.TestCase):
    """Our client, the tutorial's server."""

    def setUp(self):
        self.make_keys()

    def test_auth_client_in_both_digests(self):
        for digest in ("sha256", "md5"):
            with self.subTest(digest=digest):
                server = TutorialServer(KEY, digest)
                self.addCleanup(server.stop)
                r = ferrytest.run("auth_client", "--key-file", self.key_file, "--digest", digest,
                                  server.address, "hello", "Tutorial")
                self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "HELLO\nTUTORIAL\n", ""))

    def test_wrong_key_against_the_tutorial_server(self):
        server = TutorialServer(KEY, "md5")
        self.addCleanup(server.stop)
        r = ferrytest.run("auth_client", "--key-file", self.wrong_key_file, "--digest", "md5",
                          server.address, "hello")
        self.assertEqual((r.returncode, r.stderr), (1, "auth_client: authentication failed\n"))


class KeyFileHandling(KeyDir, unittest.TestCase):
    def setUp(self):
        self.make_keys()

    def test_empty_key_file_is_refused(self):
        empty = self.key_path("empty", b"")
        for prog, extra in (("auth_echo", ["--listen", "127.0.0.1:0"]), ("auth_client", ["127.0.0.1:1"])):
            with self.subTest(prog=prog):
                r = ferrytest.run(prog, "--key-file", empty, *extra)
                self.assertEqual(r.returncode, 1)
                self.assertEqual(r.stderr, "%s: %s: key file is empty\n" % (prog, empty))

    def test_missing_key_file_and_bad_options(self):
        missing = os.path.join(self.keydir, "missing")
        r = ferrytest.run("auth_echo", "--key-file", missing, "--listen", "127.0.0.1:0")
        self.assertEqual(r.returncode, 1)
        self.assertIn("No such file", r.stderr)
        for args in ([], ["--key-file", self.key_file, "--digest", "sha1"],
                     ["--key-file", self.key_file, "--auth-timeout", "0"]):
            with self.subTest(args=args):
                self.assertEqual(ferrytest.run("auth_echo", *args).returncode, 2)
        self.assertEqual(ferrytest.run("auth_client", "127.0.0.1:1").returncode, 2)

    def test_readable_key_file_is_a_warning(self):
        loose = self.key_path("loose", KEY, mode=0o644)
        server = ferrytest.start_server("auth_echo", "--listen", "127.0.0.1:0", "--key-file", loose)
        self.addCleanup(server.stop_quietly)
        self.assertTrue(any("readable by group or others" in line for line in server.log), server.log)
        self.assertEqual(tutorial_client(server.hostport(), KEY, "sha256", ["ok"]), ["OK"])
        r = ferrytest.run("auth_client", "--key-file", loose, "%s:%d" % server.hostport(), "ok")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "OK\n")
        self.assertIn("auth_client: warning: key file %s is readable by group or others" % loose,
                      r.stderr)
        r = ferrytest.run("auth_client", "--key-file", self.key_file, "%s:%d" % server.hostport(), "ok")
        self.assertNotIn("readable", r.stderr)


if __name__ == "__main__":
    ferrytest.main()
