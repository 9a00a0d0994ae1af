"""Integration tests for issue 6: TLS 1.3 between ferry and ferryd.

Real processes on ephemeral loopback ports: the PSK made from the key file
(checked with `openssl s_client`, a standard tool), certificates with host
name verification and client certificates, per-client named keys and their
revocation, the plaintext mode and what happens when the two sides
disagree, and bad input at the TLS layer (garbage hellos, truncated
records, a peer that stops mid-handshake), after each of which the daemon
must still serve.
"""
import hashlib
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest
import json

import ferrytest
from ferrytest import SLOW, frame, recv_header, recv_until_closed, write_key

FERRY = ferrytest.binary("ferry")
OPENSSL = shutil.which("openssl")


def openssl(*args):
    subprocess.run([OPENSSL] + list(args), check=True, capture_output=True, timeout=60 * SLOW)


def make_pki(d):
    """A throw-away CA, a server certificate for localhost / 127.0.0.1, a
    client certificate, and a second CA that signed nothing of ours."""
    p = lambda name: os.path.join(d, name)
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", p(ca + ".key"), "-out", p(ca + ".pem"), "-days", "2",
                "-subj", "/CN=ferry test " + ca)
    exts = {"server": "subjectAltName=DNS:localhost,IP:127.0.0.1", "client": None}
    for who, ext in exts.items():
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", p(who + ".key"), "-out", p(who + ".csr"), "-subj", "/CN=" + who)
        args = ["x509", "-req", "-in", p(who + ".csr"), "-CA", p("ca.pem"), "-CAkey",
                p("ca.key"), "-CAcreateserial", "-out", p(who + ".pem"), "-days", "2"]
        if ext:
            with open(p(who + ".ext"), "w") as f:
                f.write(ext + "\n")
            args += ["-extfile", p(who + ".ext")]
        openssl(*args)
    for name in os.listdir(d):
        if name.endswith(".key"):
            os.chmod(p(name), 0o600)
    return p


class TlsTest(unittest.TestCase):
    """Shared pieces: a temp dir with keys, and helpers to run ferry."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = cls.tmp.name
        cls.key_path = os.path.join(cls.dir, "key")
        cls.key = write_key(cls.key_path)
        cls.root = os.path.join(cls.dir, "root")
        cls.home = os.path.join(cls.dir, "home")
        os.mkdir(cls.home)
        cls.servers = []

    @classmethod
    def tearDownClass(cls):
        for s in cls.servers:
            s.stop()
        cls.tmp.cleanup()

    @classmethod
    def ferryd(cls, *args):
        s = ferrytest.start_ferryd("--root", cls.root, *args)
        cls.servers.append(s)
        return s

    def env(self):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.home,
               "LANG": "C.UTF-8"}
        env.update(ferrytest.sanitizer_env())
        return env

    def ferry(self, *args, input=b"", timeout=30):
        return subprocess.run([FERRY] + list(args), input=input, capture_output=True,
                              env=self.env(), timeout=timeout * SLOW)

    def assertStatus(self, r, status):
        self.assertEqual(r.returncode, status, "stdout %r stderr %r" % (r.stdout[:300], r.stderr))

    def assertServes(self, server, *opts):
        """The daemon still runs commands for a well-behaved client."""
        r = self.ferry("exec", "-k", self.key_path, *opts, server.addr(), "echo", "still here")
        self.assertStatus(r, 0)
        self.assertEqual(r.stdout, b"still here\n")


class PskTest(TlsTest):
    """The default: TLS 1.3 keyed by the key file, identity "ferry"."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server = cls.ferryd("--key-file", cls.key_path, "--auth-timeout", "2")
        cls.host = cls.server.addr()

    def test_exec_is_tls_with_psk_and_ecdhe(self):
        mark = len(self.server.log)
        r = self.ferry("exec", "-k", self.key_path, self.host, "echo", "over tls")
        self.assertStatus(r, 0)
        self.assertEqual(r.stdout, b"over tls\n")
        # psk_dhe_ke: the PSK authenticated, and an (EC)DHE exchange ran.
        self.server.wait_for_log(r"authenticated with key 'ferry' \(TLS PSK, (x25519|X25519|"
                                 r"secp\w+|ffdhe\w+)\)", start=mark)

    def test_exit_status_and_large_output_over_tls(self):
        # 20 MB of random bytes on stdout, their sha256 on stderr, status 7.
        r = self.ferry("exec", "-k", self.key_path, self.host, "--", "sh", "-c",
                       'f=$(mktemp); head -c 20000000 /dev/urandom > "$f"; cat "$f"; '
                       'sha256sum < "$f" | cut -d" " -f1 >&2; rm -f "$f"; exit 7')
        self.assertStatus(r, 7)
        self.assertEqual(len(r.stdout), 20000000)
        self.assertEqual(hashlib.sha256(r.stdout).hexdigest().encode(), r.stderr.strip())

    def test_put_get_round_trip_over_tls(self):
        src = os.path.join(self.dir, "blob")
        with open(src, "wb") as f:
            f.write(os.urandom(24 * 1024 * 1024 + 12345))
        r = self.ferry("put", "-k", self.key_path, self.host, src, "blob.bin")
        self.assertStatus(r, 0)
        dst = os.path.join(self.dir, "blob.back")
        r = self.ferry("get", "-k", self.key_path, self.host, "blob.bin", dst)
        self.assertStatus(r, 0)
        with open(src, "rb") as a, open(dst, "rb") as b:
            self.assertEqual(hashlib.sha256(a.read()).digest(), hashlib.sha256(b.read()).digest())

    def test_shell_runs_several_commands_over_one_tls_session(self):
        r = self.ferry("shell", "-k", self.key_path, self.host,
                       input=b"echo one\ncd /tmp\npwd\nexit\n")
        self.assertStatus(r, 0)
        self.assertIn(b"one\n", r.stdout)
        self.assertIn(b"/tmp\n", r.stdout)

    def test_wrong_key_is_refused_and_says_so(self):
        other = os.path.join(self.dir, "other-key")
        write_key(other)
        mark = len(self.server.log)
        r = self.ferry("exec", "-k", other, self.host, "true")
        self.assertStatus(r, 255)
        # The key's name and file and the server's refusal, never the TLS
        # alert's words (sslv3 alert illegal parameter).
        self.assertEqual(r.stderr.decode(), "ferry: authentication failed: %s refused key 'ferry' "
                         "from %s (it holds another key under that name, or none by it)\n"
                         % (self.host, other))
        self.server.wait_for_log(r"TLS handshake failed: .*a wrong key for the name 'ferry'",
                                 start=mark)
        self.assertServes(self.server)

    def test_unknown_key_name_is_refused_and_logged(self):
        mark = len(self.server.log)
        r = self.ferry("exec", "-k", self.key_path, "--key-name", "mallory", self.host, "true")
        self.assertStatus(r, 255)
        self.assertIn(b"refused key 'mallory' from %s " % self.key_path.encode(), r.stderr)
        self.assertNotIn(b"alert", r.stderr)
        self.server.wait_for_log(r"unknown key name 'mallory'", start=mark)
        self.server.wait_for_log(r"TLS handshake failed.*'mallory'", start=mark)

    @unittest.skipUnless(OPENSSL, "openssl command not installed")
    def test_openssl_s_client_with_the_key_as_psk(self):
        """A standard tool completes the handshake with the key's hex and
        identity "ferry", and then speaks the ferry protocol through it."""
        r = subprocess.run([OPENSSL, "s_client", "-connect", self.host, "-tls1_3",
                            "-psk", self.key.hex(), "-psk_identity", "ferry", "-quiet"],
                           input=frame({"type": "hello", "version": 1}),
                           capture_output=True, timeout=20 * SLOW)
        # The server's hello came back through TLS, offering TLS auth.
        m = re.search(rb'\{"type":"hello"[^}]*\}', r.stdout)
        self.assertIsNotNone(m, (r.stdout, r.stderr))
        hello = json.loads(m.group(0))
        self.assertEqual(hello["auth"], "tls")

    @unittest.skipUnless(OPENSSL, "openssl command not installed")
    def test_openssl_s_client_reports_psk_suite_and_key_exchange(self):
        r = subprocess.run([OPENSSL, "s_client", "-connect", self.host, "-tls1_3",
                            "-psk", self.key.hex(), "-psk_identity", "ferry"],
                           input=b"", capture_output=True, timeout=20 * SLOW)
        out = r.stdout.decode(errors="replace")
        self.assertIn("TLSv1.3", out)
        self.assertIn("Cipher is TLS_AES_128_GCM_SHA256", out)
        # (EC)DHE happened beside the PSK: psk_dhe_ke.
        self.assertRegex(out, r"(Server Temp Key|Negotiated TLS1.3 group): \w+")

    @unittest.skipUnless(OPENSSL, "openssl command not installed")
    def test_openssl_s_client_with_a_wrong_psk_is_refused(self):
        wrong = bytes(b ^ 0xFF for b in self.key).hex()
        mark = len(self.server.log)
        r = subprocess.run([OPENSSL, "s_client", "-connect", self.host, "-tls1_3",
                            "-psk", wrong, "-psk_identity", "ferry"],
                           input=frame({"type": "hello", "version": 1}),
                           capture_output=True, timeout=20 * SLOW)
        self.assertNotIn(b'"type":"hello"', r.stdout)
        self.assertRegex(r.stdout + r.stderr, rb"alert|error")
        self.server.wait_for_log(r"TLS handshake failed", start=mark)
        self.assertServes(self.server)

    def test_plaintext_client_to_tls_server_is_told_why(self):
        mark = len(self.server.log)
        r = self.ferry("--plaintext", "exec", "-k", self.key_path, self.host, "true")
        self.assertStatus(r, 255)
        self.assertIn(b"requires TLS", r.stderr)
        self.assertIn(b"without --plaintext", r.stderr)
        self.server.wait_for_log(r"did not begin with a TLS handshake", start=mark)
        self.assertServes(self.server)

    def test_raw_plaintext_hello_gets_a_clear_error_frame(self):
        with ferrytest.connect(self.server) as s:
            s.sendall(frame({"type": "hello", "version": 1}))
            h = recv_header(s)
            self.assertEqual(h["type"], "error")
            self.assertEqual(h["code"], "tls-required")
            self.assertEqual(recv_until_closed(s), b"")

    def test_garbage_client_hello_is_closed_and_logged(self):
        mark = len(self.server.log)
        with ferrytest.connect(self.server) as s:
            # A handshake record header announcing 512 bytes of nonsense.
            s.sendall(b"\x16\x03\x01\x02\x00" + os.urandom(512))
            self.assertEqual(recv_until_closed(s)[:1] in (b"", b"\x15"), True)
        self.server.wait_for_log(r"TLS handshake failed", start=mark)
        self.assertServes(self.server)

    def test_non_tls_bytes_are_closed_and_logged(self):
        mark = len(self.server.log)
        with ferrytest.connect(self.server) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            recv_until_closed(s)
        self.server.wait_for_log(r"did not begin with a TLS handshake \(first byte 0x47\)",
                                 start=mark)
        self.assertServes(self.server)

    def test_peer_that_stops_mid_handshake_is_cut_off(self):
        mark = len(self.server.log)
        with ferrytest.connect(self.server, timeout=15) as s:
            # The first 5 bytes of a ClientHello record, and then silence.
            s.sendall(b"\x16\x03\x01\x01\x00")
            # Meanwhile the daemon serves others.
            self.assertServes(self.server)
            started = time.monotonic()
            self.assertEqual(recv_until_closed(s), b"")
            self.assertLess(time.monotonic() - started, 10 * SLOW)
        self.server.wait_for_log(r"not authenticated within 2000 ms", start=mark)

    def test_graceful_stop_with_a_handshake_in_progress(self):
        """SIGTERM while a client has connected but not begun TLS: the
        daemon stops cleanly (the half-open connection never met the
        session handler)."""
        server = self.ferryd("--key-file", self.key_path)
        with ferrytest.connect(server) as s:
            s.sendall(b"\x16\x03\x01")   # the start of a ClientHello, then nothing
            self.assertServes(server)
            server.proc.send_signal(signal.SIGTERM)
            self.assertEqual(server.proc.wait(timeout=15 * SLOW), 0, server.log[-10:])
        server.wait_for_log(r"stopped")

    def test_version_says_whether_kernel_tls_is_available(self):
        r = subprocess.run([ferrytest.binary("ferryd"), "--version"], capture_output=True,
                           text=True, timeout=10)
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"OpenSSL 3")
        self.assertRegex(r.stdout, r"kernel TLS (available|not available)")


class ForkModelTest(TlsTest):
    def test_tls_in_the_fork_model(self):
        server = self.ferryd("--key-file", self.key_path, "--model", "fork")
        r = self.ferry("exec", "-k", self.key_path, server.addr(), "echo", "forked")
        self.assertStatus(r, 0)
        self.assertEqual(r.stdout, b"forked\n")
        server.wait_for_log(r"authenticated with key 'ferry' \(TLS PSK")


class PlaintextTest(TlsTest):
    """--plaintext on both sides keeps the mutual HMAC handshake."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server = cls.ferryd("--key-file", cls.key_path, "--plaintext")
        cls.host = cls.server.addr()

    def test_both_sides_plaintext_works(self):
        mark = len(self.server.log)
        r = self.ferry("--plaintext", "exec", "-k", self.key_path, self.host, "echo", "clear")
        self.assertStatus(r, 0)
        self.assertEqual(r.stdout, b"clear\n")
        self.server.wait_for_log(r"authenticated with key 'ferry' \(plaintext, HMAC\)", start=mark)
        r = self.ferry("exec", "--plaintext", "-k", self.key_path, self.host, "true")
        self.assertStatus(r, 0)

    def test_tls_client_to_plaintext_server_fails_clearly(self):
        mark = len(self.server.log)
        r = self.ferry("exec", "-k", self.key_path, self.host, "true")
        self.assertStatus(r, 255)
        self.assertIn(b"did not answer with TLS", r.stderr)
        self.assertIn(b"--plaintext", r.stderr)
        self.server.wait_for_log(r"not a ferry frame \(a TLS client\? this listener is "
                                 r"--plaintext\)", start=mark)
        self.assertServes(self.server, "--plaintext")

    def test_plaintext_wrong_key_still_refused(self):
        other = os.path.join(self.dir, "other-key")
        write_key(other)
        r = self.ferry("--plaintext", "exec", "-k", other, self.host, "true")
        self.assertStatus(r, 255)
        self.assertIn(b"authentication failed: %s refused key 'ferry' from %s "
                      % (self.host.encode(), other.encode()), r.stderr)

    def test_plaintext_with_certificates_is_a_usage_error(self):
        r = subprocess.run([ferrytest.binary("ferryd"), "--plaintext", "--cert", "x.pem",
                            "--cert-key", "x.key", "--key-file", self.key_path],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 2)
        self.assertIn("drop --plaintext", r.stderr)


@unittest.skipUnless(OPENSSL, "openssl command not installed")
class CertificateTest(TlsTest):
    """ferryd --cert/--cert-key [--client-ca], ferry --ca (host name checked)."""

    @classmethod
    def p(cls, name):
        return os.path.join(cls.pki, name)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        pki = os.path.join(cls.dir, "pki")
        os.mkdir(pki)
        make_pki(pki)
        cls.pki = pki
        cls.server = cls.ferryd("--key-file", cls.key_path, "--cert", cls.p("server.pem"),
                                "--cert-key", cls.p("server.key"))
        cls.port = cls.server.hostport()[1]

    def test_a_private_key_others_can_read_is_refused(self):
        # As a key file so exposed is; it was taken.  The group may read it
        # (Debian's ssl-cert group).
        exposed = self.p("exposed.key")
        shutil.copy(self.p("server.key"), exposed)
        os.chmod(exposed, 0o644)
        r = subprocess.run([ferrytest.binary("ferryd"), "--listen", "127.0.0.1:0", "--key-file",
                            self.key_path, "--cert", self.p("server.pem"), "--cert-key", exposed],
                           capture_output=True, text=True, timeout=10 * SLOW)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stderr.splitlines()[-1], "ferryd: --cert-key %s is accessible by "
                         "others (mode 644); run: chmod o= %s" % (exposed, exposed))
        os.chmod(exposed, 0o640)
        s = ferrytest.start_ferryd("--key-file", self.key_path, "--cert", self.p("server.pem"),
                                   "--cert-key", exposed, "--root", self.dir)
        s.stop()

    def test_a_certificate_that_cannot_be_used_says_why(self):
        # OpenSSL's first error, the cause: it said the layer that gave up
        # ("system lib", "PEM lib").
        for cert, why in ((os.path.join(self.dir, "missing.pem"), "No such file or directory"),
                          (self.key_path, "no start line")):
            r = subprocess.run([ferrytest.binary("ferryd"), "--listen", "127.0.0.1:0",
                                "--key-file", self.key_path, "--cert", cert, "--cert-key",
                                self.p("server.key")],
                               capture_output=True, text=True, timeout=10 * SLOW)
            self.assertEqual(r.returncode, 1, r.stderr)
            # The one line: the key was said before, which read as started.
            self.assertEqual(r.stderr, "ferryd: cannot use certificate %s: %s\n" % (cert, why))

    def test_ca_verified_server_by_name_and_address(self):
        for host in ("localhost", "127.0.0.1"):
            mark = len(self.server.log)
            r = self.ferry("exec", "--ca", self.p("ca.pem"), "-k", self.key_path,
                           "%s:%d" % (host, self.port), "echo", "verified")
            self.assertStatus(r, 0)
            self.assertEqual(r.stdout, b"verified\n")
            # No client certificate: the key's HMAC proofs ran inside TLS.
            self.server.wait_for_log(r"authenticated with key 'ferry' \(HMAC over TLS\)",
                                     start=mark)

    def test_host_name_mismatch_is_refused(self):
        # The certificate names localhost and 127.0.0.1, not 127.0.0.2
        # (loopback all the same).
        server = ferrytest.start_ferryd("--root", self.root, "--cert", self.p("server.pem"),
                                        "--cert-key", self.p("server.key"),
                                        key_path=self.key_path, listen="127.0.0.2:0")
        self.servers.append(server)
        r = self.ferry("exec", "--ca", self.p("ca.pem"), "-k", self.key_path, server.addr(),
                       "true")
        self.assertStatus(r, 255)
        self.assertRegex(r.stderr, rb"certificate verify failed: .*mismatch")
        self.assertEqual(r.stderr.count(b"\n"), 1, r.stderr)

    def test_unknown_ca_is_refused(self):
        r = self.ferry("exec", "--ca", self.p("other-ca.pem"), "-k", self.key_path,
                       "localhost:%d" % self.port, "true")
        self.assertStatus(r, 255)
        self.assertIn(b"certificate verify failed", r.stderr)
        self.assertServes(self.server)

    def test_psk_clients_still_use_the_key(self):
        self.assertServes(self.server)

    def test_python_ssl_speaks_to_it(self):
        """Another TLS stack (Python's) verifies the certificate and then
        authenticates with the key's HMAC inside TLS."""
        ctx = ssl.create_default_context(cafile=self.p("ca.pem"))
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        with socket.create_connection(("127.0.0.1", self.port)) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                self.assertEqual(s.version(), "TLSv1.3")
                s.sendall(frame({"type": "hello", "version": 1}))
                h = recv_header(s)
                self.assertEqual(h["auth"], "hmac-sha256")

    def test_truncated_record_after_the_handshake(self):
        """Handshake through memory BIOs (so the test holds every byte),
        then half of an application record and a hang-up."""
        ctx = ssl.create_default_context(cafile=self.p("ca.pem"))
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
        mark = len(self.server.log)
        with socket.create_connection(("127.0.0.1", self.port)) as s:
            s.settimeout(10 * SLOW)
            for _ in range(20):
                try:
                    obj.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    s.sendall(out.read())
                    data = s.recv(65536)
                    self.assertTrue(data, "server closed during the handshake")
                    inc.write(data)
            s.sendall(out.read())   # the client's Finished
            obj.write(frame({"type": "hello", "version": 1}))
            record = out.read()
            self.assertGreater(len(record), 10)
            s.sendall(record[: len(record) // 2])
            s.shutdown(socket.SHUT_WR)
            recv_until_closed(s)
        self.server.wait_for_log(r"session 127\.0\.0\.1:\d+: connection lost: .*without "
                                 r"ending TLS \(truncated\)", start=mark)
        self.assertServes(self.server)

    def test_hmac_proofs_are_bound_to_the_tls_connection(self):
        """Over TLS the key's proofs also cover bytes exported from this TLS
        session, so a proof computed without them (as a relay that does
        not hold the key would have to forward from another connection) is
        refused."""
        import hashlib as hl
        import hmac as hm
        ctx = ssl.create_default_context(cafile=self.p("ca.pem"))
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        mark = len(self.server.log)
        with socket.create_connection(("127.0.0.1", self.port)) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.settimeout(10 * SLOW)
                s.sendall(frame({"type": "hello", "version": 1}))
                h = recv_header(s)
                self.assertEqual(h["auth"], "hmac-sha256")
                sn, cn = bytes.fromhex(h["nonce"]), os.urandom(32)
                unbound = hm.new(self.key, b"ferry-v1 client proof\0" + sn + cn,
                                 hl.sha256).hexdigest()
                s.sendall(frame({"type": "auth", "version": 1, "nonce": cn.hex(),
                                 "proof": unbound}))
                h = recv_header(s)
                self.assertEqual(h["type"], "error")
                self.assertEqual(h["code"], "auth")
        self.server.wait_for_log(r"authentication failed: wrong proof for key 'ferry'", start=mark)

    def test_client_certificates(self):
        server = self.ferryd("--cert", self.p("server.pem"), "--cert-key", self.p("server.key"),
                             "--client-ca", self.p("ca.pem"))
        port = server.hostport()[1]
        r = self.ferry("exec", "--ca", self.p("ca.pem"), "--cert", self.p("client.pem"),
                       "--cert-key", self.p("client.key"), "localhost:%d" % port, "echo", "cc")
        self.assertStatus(r, 0)
        self.assertEqual(r.stdout, b"cc\n")
        server.wait_for_log(r"authenticated with certificate .*CN ?= ?client")
        # Without a certificate (and no key configured on the server) there
        # is nothing to authenticate with.
        r = self.ferry("exec", "--ca", self.p("ca.pem"), "-k", self.key_path,
                       "localhost:%d" % port, "true")
        self.assertStatus(r, 255)
        self.assertEqual(r.stderr.decode(), "ferry: authentication failed: 127.0.0.1:%d requires "
                         "a client certificate: give --cert FILE --cert-key FILE (signed by the "
                         "CA of its --client-ca), with --ca\n" % port)
        # With the key alone, the server's certificate comes first.
        r = self.ferry("exec", "-k", self.key_path, "localhost:%d" % port, "true")
        self.assertStatus(r, 255)
        self.assertIn(b"--client-ca, give --cert and --cert-key", r.stderr)


class NamedKeysTest(TlsTest):
    """ferryd --keys FILE: one key per client, revocable one at a time."""

    def write_keys(self, path, entries):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("# name key\n")
            for name, raw in entries:
                f.write("%s %s\n" % (name, raw.hex()))

    def test_per_client_keys_and_revocation_without_restart(self):
        alice_path, bob_path = (os.path.join(self.dir, n) for n in ("alice.key", "bob.key"))
        alice, bob = write_key(alice_path), write_key(bob_path)
        keys = os.path.join(self.dir, "keys")
        self.write_keys(keys, [("alice", alice), ("bob", bob)])
        server = self.ferryd("--keys", keys)
        host = server.addr()
        for name, path in (("alice", alice_path), ("bob", bob_path)):
            mark = len(server.log)
            r = self.ferry("exec", "-k", path, "--key-name", name, host, "echo", name)
            self.assertStatus(r, 0)
            self.assertEqual(r.stdout, name.encode() + b"\n")
            server.wait_for_log(r"authenticated with key '%s' \(TLS PSK" % name, start=mark)
        # Alice's key under Bob's name does not work.
        r = self.ferry("exec", "-k", alice_path, "--key-name", "bob", host, "true")
        self.assertStatus(r, 255)
        # Revoke Bob: delete his line.  No restart.
        self.write_keys(keys, [("alice", alice)])
        r = self.ferry("exec", "-k", bob_path, "--key-name", "bob", host, "true")
        self.assertStatus(r, 255)
        self.assertIn(b"authentication failed", r.stderr)
        r = self.ferry("exec", "-k", alice_path, "--key-name", "alice", host, "echo", "ok")
        self.assertStatus(r, 0)

    def test_plaintext_named_keys_travel_in_the_auth_message(self):
        carol_path = os.path.join(self.dir, "carol.key")
        carol = write_key(carol_path)
        keys = os.path.join(self.dir, "keys-plain")
        self.write_keys(keys, [("carol", carol)])
        server = self.ferryd("--keys", keys, "--plaintext")
        r = self.ferry("--plaintext", "--key-name", "carol", "exec", "-k", carol_path,
                       server.addr(), "echo", "c")
        self.assertStatus(r, 0)
        server.wait_for_log(r"authenticated with key 'carol' \(plaintext, HMAC\)")
        r = self.ferry("--plaintext", "exec", "-k", carol_path, server.addr(), "true")
        self.assertStatus(r, 255)   # it is not known as "ferry"

    def test_malformed_keys_file_is_refused_at_start(self):
        keys = os.path.join(self.dir, "keys-bad")
        fd = os.open(keys, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("alice 1234\n")
        r = subprocess.run([ferrytest.binary("ferryd"), "--listen", "127.0.0.1:0", "--keys",
                            keys], capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 1)
        self.assertIn("line 1", r.stderr)

    def test_keys_file_others_can_read_is_refused(self):
        keys = os.path.join(self.dir, "keys-open")
        self.write_keys(keys, [("dave", os.urandom(32))])
        os.chmod(keys, 0o644)
        r = subprocess.run([ferrytest.binary("ferryd"), "--listen", "127.0.0.1:0", "--keys",
                            keys], capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 1)
        self.assertIn("chmod 600", r.stderr)


if __name__ == "__main__":
    ferrytest.main()
