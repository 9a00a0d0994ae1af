"""ferrytest - helpers for ferry's integration tests (standard library only).

Servers are started as real processes on ephemeral loopback ports.  A server
logs one line per endpoint once it is ready,

    ... info: listening on tcp 127.0.0.1:41233 (event model)

and start_server() reads those lines from its stderr, so tests never sleep
to wait for readiness.  Everything a test starts is killed when the test
ends, even when it fails.
"""
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import unittest

BIN = os.environ.get("FERRY_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "bin")
SANITIZED = bool(os.environ.get("FERRY_SANITIZE"))
# Sanitizers make everything slower; deadlines scale with them.
SLOW = 4 if SANITIZED else 1

_LISTEN_RE = re.compile(r"listening on (\w+) (\S+)")


def binary(name):
    path = os.path.join(BIN, name)
    if not os.path.exists(path):
        raise AssertionError("missing program %s (build first)" % path)
    return path


class Server:
    """A running server process and the endpoints it announced.

    One thread reads the server's stderr for its whole life, so a pipe that
    fills up can never block the server, and every line lands in `log`."""

    def __init__(self, name, proc):
        self.name = name
        self.proc = proc
        self.endpoints = []                 # [(proto, "host:port"), ...]
        self.log = []                       # every stderr line so far
        self._cond = threading.Condition()
        self._eof = False
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self):
        for line in self.proc.stderr:
            line = line.rstrip("\n")
            with self._cond:
                self.log.append(line)
                m = _LISTEN_RE.search(line)
                if m:
                    self.endpoints.append((m.group(1), m.group(2)))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def wait_for_log(self, pattern, timeout=10, start=0):
        """Wait until a stderr line (from index `start` on) matches the
        regular expression `pattern`; returns the match."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout * SLOW
        with self._cond:
            while True:
                for line in self.log[start:]:
                    m = rx.search(line)
                    if m:
                        return m
                left = deadline - time.monotonic()
                if self._eof or left <= 0:
                    raise AssertionError("%s: no log line matching %r; log: %s"
                                         % (self.name, pattern, self.log[-20:]))
                self._cond.wait(left)

    def _wait_endpoints(self, count, timeout):
        deadline = time.monotonic() + timeout * SLOW
        with self._cond:
            while len(self.endpoints) < count:
                left = deadline - time.monotonic()
                if self._eof or left <= 0:
                    break
                self._cond.wait(left)
            if len(self.endpoints) >= count:
                return
        self.kill()
        raise AssertionError("%s did not start (exit %s): %s"
                             % (self.name, self.proc.returncode, self.log[-20:]))

    def addr(self, proto="tcp", index=0):
        found = [a for p, a in self.endpoints if p == proto]
        return found[index]

    def hostport(self, proto="tcp", index=0):
        a = self.addr(proto, index)
        host, _, port = a.rpartition(":")
        return host.strip("[]"), int(port)

    @property
    def pid(self):
        return self.proc.pid

    def fd_count(self):
        return len(os.listdir("/proc/%d/fd" % self.proc.pid))

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def children(self):
        """PIDs whose parent is this server."""
        kids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % entry) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == self.proc.pid:
                    kids.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
        return kids

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Send sig and wait; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout * SLOW)
        finally:
            self._close_pipe()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._close_pipe()

    def _close_pipe(self):
        self._reader.join(timeout=2)
        if not self._reader.is_alive() and not self.proc.stderr.closed:
            self.proc.stderr.close()


def start_server(name, *args, endpoints=1, timeout=10, env=None, preexec_fn=None, prefix=()):
    """Start build/bin/NAME with ARGS; wait until it has announced
    `endpoints` "listening on" lines.  Returns a Server.  preexec_fn runs
    in the child before exec (e.g. to lower a resource limit); prefix is a
    command that execs the server in the end (e.g. unshare ... sh -c '...
    exec "$@"' sh), so the process is still the server's."""
    proc = subprocess.Popen(list(prefix) + [binary(name)] + list(args), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=env, preexec_fn=preexec_fn)
    server = Server(name, proc)
    server._wait_endpoints(endpoints, timeout)
    return server


def connect(server, proto="tcp", index=0, timeout=10):
    host, port = server.hostport(proto, index)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout * SLOW)
    s.connect((host, port))
    return s


def recv_exact(sock, n):
    """Read exactly n bytes; raise EOFError if the peer closes first."""
    chunks = []
    while n > 0:
        b = sock.recv(min(n, 1 << 20))
        if not b:
            raise EOFError("peer closed with %d bytes outstanding" % n)
        chunks.append(b)
        n -= len(b)
    return b"".join(chunks)


def recv_until_closed(sock):
    """Read until EOF (or reset); returns the bytes received."""
    data = []
    while True:
        try:
            b = sock.recv(65536)
        except ConnectionResetError:
            break
        if not b:
            break
        data.append(b)
    return b"".join(data)


def frame(header_bytes, body=b""):
    """One ferry frame from raw header bytes (which may be invalid on purpose)."""
    return struct.pack("<I", len(header_bytes)) + header_bytes + body


def run(name, *args, input=None, timeout=20):
    """Run a client program to completion; returns CompletedProcess (text)."""
    return subprocess.run([binary(name)] + list(args), input=input, capture_output=True,
                          text=True, timeout=timeout * SLOW)


def main():
    unittest.main(verbosity=2)
