"""Fair admission to ferryd's not-yet-authenticated slots (issue 11, defect
1): one source cannot hold them all, a full table makes room for a client
with nothing waiting by evicting the oldest connection of the source holding
the most, and refusals are logged as one summary line a second at most, not
a line each.  Every model; attackers connect from 127.0.0.2 and up (loopback
answers on all of 127.0.0.0/8), the legitimate client from 127.0.0.1."""
import json
import os
import re
import socket
import struct
import subprocess
import tempfile
import time
import unittest

import ferrytest as ft
from ferrytest import SLOW

MODELS = {"event": ["--model", "event"], "fork": ["--model", "fork"]}
SUMMARY = r"admission since the last summary: "


def held_from(srv, source):
    """A connection from source that ferryd serves (its hello answered) and
    that then sits waiting to authenticate."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(10 * SLOW)
    s.bind((source, 0))
    s.connect(srv.hostport())
    s.sendall(ft.frame({"type": "hello", "version": 1}))
    h, _ = ft.recv_frame(s)
    assert h.get("type") == "hello", h
    return s


def refused_from(srv, source):
    """True if a connection from source is closed without being served:
    its hello is never answered; all that may come is the refusal's
    closing frame (reason busy, PROTOCOL.md 2.7), then the end."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(10 * SLOW)
        s.bind((source, 0))
        s.connect(srv.hostport())
        got = b""
        try:
            s.sendall(ft.frame({"type": "hello", "version": 1}))
            # the first frame decides: a hello is service, a busy closing
            # (or the end before any frame) is a refusal
            while len(got) < 4 or len(got) < 4 + struct.unpack("<I", got[:4])[0]:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
        except (ConnectionResetError, BrokenPipeError):
            pass
        if len(got) < 4:
            return True
        (n,) = struct.unpack("<I", got[:4])
        try:
            hdr = json.loads(got[4:4 + n])
        except ValueError:
            return False
        return hdr.get("type") == "closing" and hdr.get("reason") == "busy"


def closed_by_peer(sock, timeout=10):
    sock.settimeout(timeout * SLOW)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except socket.timeout:
        return False
    return True


class AdmissionModel:
    ARGS = []

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="ferryd-adm-")
        self.addCleanup(self.tmp.cleanup)
        self.key_path = os.path.join(self.tmp.name, "key")
        self.key = ft.write_key(self.key_path)

    def ferryd(self, *args):
        srv = ft.start_ferryd(*self.ARGS, "--root", os.path.join(self.tmp.name, "root"), *args,
                              key_path=self.key_path, plaintext=True)
        self.addCleanup(srv.stop_quietly)
        return srv

    def hold(self, srv, source, n):
        socks = [held_from(srv, source) for _ in range(n)]
        for s in socks:
            self.addCleanup(s.close)
        return socks

    def login_runs(self, srv):
        s = ft.Session(srv.hostport(), key=self.key, timeout=10)
        try:
            return s.run({"argv": ["echo", "in"]})["out"] == b"in\n"
        finally:
            s.close()

    def test_one_source_cannot_take_every_slot(self):
        srv = self.ferryd("--max-unauth", "6", "--max-unauth-per-source", "3",
                          "--unauth-early-drop", "0")
        self.hold(srv, "127.0.0.2", 3)
        self.assertTrue(refused_from(srv, "127.0.0.2"), "a 4th from one source was served")
        srv.wait_for_log(SUMMARY + r".*1 refused \(the source holds its share")
        # a second source still gets in, and so does the legitimate client
        self.hold(srv, "127.0.0.3", 1)
        self.assertTrue(self.login_runs(srv))

    def test_netblock_counts_a_network_as_one_source(self):
        srv = self.ferryd("--max-unauth", "6", "--max-unauth-per-source", "2",
                          "--unauth-netblock", "24:64", "--unauth-early-drop", "0")
        self.hold(srv, "127.0.0.2", 1)
        self.hold(srv, "127.0.0.3", 1)
        self.assertTrue(refused_from(srv, "127.0.0.4"), "the /24 holds its share")
        self.assertFalse(refused_from(srv, "127.0.1.4"), "another /24 was refused")

    def test_eviction_lets_a_client_in_when_every_slot_is_held(self):
        srv = self.ferryd("--max-unauth", "4", "--unauth-early-drop", "0")
        socks = self.hold(srv, "127.0.0.2", 4)
        # full: the legitimate client evicts the attacker's oldest
        self.assertTrue(self.login_runs(srv))
        self.assertTrue(closed_by_peer(socks[0]), "the oldest was not evicted")
        # the evicted source serves its penalty (default 1 s) ...
        self.assertTrue(refused_from(srv, "127.0.0.2"))
        srv.wait_for_log(SUMMARY + r".*evicted .*source under penalty|"
                         + SUMMARY + r".*source under penalty.*")
        # ... and a client that authenticated is never evicted
        authed = ft.Session(srv.hostport(), key=self.key, timeout=10)
        self.addCleanup(authed.close)
        self.hold(srv, "127.0.0.3", 2)
        self.hold(srv, "127.0.0.4", 1)
        self.assertEqual(authed.run({"argv": ["echo", "still"]})["out"], b"still\n")

    def test_many_sources_holding_one_each_still_let_a_newcomer_in(self):
        srv = self.ferryd("--max-unauth", "5", "--unauth-early-drop", "0")
        socks = [self.hold(srv, "127.0.0.%d" % i, 1)[0] for i in range(2, 7)]
        self.assertTrue(self.login_runs(srv))
        self.assertTrue(closed_by_peer(socks[0]), "the oldest of all was not evicted")

    def test_a_source_that_times_out_serves_a_penalty(self):
        srv = self.ferryd("--auth-timeout", "1", "--unauth-timeout-penalty", "60",
                          "--unauth-early-drop", "0")
        silent = self.hold(srv, "127.0.0.2", 1)[0]
        self.assertTrue(closed_by_peer(silent), "not closed by --auth-timeout 1")
        # The parent learns of the timeout when the slot comes back (fork:
        # when the child exits); from then on the source is refused.
        ft.wait_until(lambda: refused_from(srv, "127.0.0.2"), 10,
                      "127.0.0.2 to be refused after its timeout")
        srv.wait_for_log(SUMMARY + r".*refused \(source under penalty\)")
        self.assertFalse(refused_from(srv, "127.0.0.3"), "another source was refused")
        self.assertTrue(self.login_runs(srv))

    def test_refusals_are_summarised_not_logged_one_by_one(self):
        srv = self.ferryd("--max-unauth", "2", "--unauth-early-drop", "0", "--unauth-penalty", "0")
        self.hold(srv, "127.0.0.2", 2)
        start = len(srv.log)
        t0 = time.monotonic()
        n = 300
        refused = sum(refused_from(srv, "127.0.0.2") for _ in range(n))
        self.assertEqual(refused, n)
        # the last refusals are told within a second of the previous line
        m = None
        total = 0
        deadline = time.monotonic() + 5 * SLOW
        while total < n and time.monotonic() < deadline:
            m = srv.wait_for_log(SUMMARY, start=start)
            lines = [l for l in srv.log[start:] if re.search(SUMMARY, l)]
            total = sum(int(x) for l in lines
                        for x in re.findall(r"(\d+) refused \(connections already waiting", l))
            if total < n:
                srv.wait_for_log(SUMMARY, start=len(srv.log))
        self.assertIsNotNone(m)
        self.assertEqual(total, n)
        elapsed = time.monotonic() - t0
        lines = [l for l in srv.log[start:] if re.search(SUMMARY, l)]
        self.assertLessEqual(len(lines), int(elapsed) + 2, lines)
        self.assertFalse([l for l in srv.log[start:] if "127.0.0.2" in l], "a line per refusal")


class AdmissionOptions(unittest.TestCase):
    """Bad values are refused at start, each naming its option."""

    def test_bad_values_are_refused(self):
        for opt, val in (("--max-unauth-per-source", "-1"), ("--unauth-netblock", "33:64"),
                         ("--unauth-netblock", "24"), ("--unauth-netblock", "24:129"),
                         ("--unauth-early-drop", "5:101"), ("--unauth-early-drop", "x"),
                         ("--unauth-penalty", "-2"), ("--unauth-timeout-penalty", "1.5")):
            r = subprocess.run([ft.binary("ferryd"), opt, val], capture_output=True, timeout=10)
            self.assertEqual(r.returncode, 2, (opt, val, r.stderr))
            self.assertIn(b"bad value for " + opt.encode(), r.stderr)

    def test_help_names_every_option(self):
        r = subprocess.run([ft.binary("ferryd"), "--help"], capture_output=True, timeout=10)
        for opt in (b"--max-unauth-per-source", b"--unauth-netblock", b"--unauth-early-drop",
                    b"--unauth-penalty", b"--unauth-timeout-penalty"):
            self.assertIn(opt, r.stdout)


for _name, _args in MODELS.items():
    _cls = type("Admission_" + _name, (AdmissionModel, unittest.TestCase), {"ARGS": _args})
    globals()[_cls.__name__] = _cls
del _cls


if __name__ == "__main__":
    ft.main()
