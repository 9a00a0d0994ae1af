#!/usr/bin/env python3
"""exec_latency.py - command latency of ferry beside what users would pick instead.

Measured side by side in one run, on loopback only (issue 3, "Benchmark"; the
command-latency part of issue 5's suite, ferry in plaintext mode; issue 6's
encrypted exec latency and handshake cost, ferry's default TLS mode).  Two
ferryds run throughout: one in the default mode (TLS 1.3 keyed by the key,
PSK with X25519) and one with --plaintext (the key's HMAC handshake, then
cleartext); every ferry column runs against each.

  1. fresh: one command per client process and connection
       ferry exec 127.0.0.1:PORT true        client spawn + connect + handshake
                                             + remote /bin/sh -c true + exit;
                                             TLS and --plaintext
       ferry exec 127.0.0.1:PORT true, through a running `ferry master`
                                             (TLS): client spawn + the master's
                                             socket + a session it kept
       ssh localhost true                    fresh connection (key auth)
       ssh localhost true, ControlMaster     multiplexed over a warm master
       /bin/true                             the same harness spawning locally
       /bin/sh -c true                       the same, through sh
     interleaved round-robin (the starting column rotates each round), N runs
     each; median and p90.  The floor of a fresh command (issue 12) is the
     last two added up round by round: a client process started locally plus
     the remote `sh -c true` ferryd spawns; the fresh ferry columns are
     given as ratios to it.

     The handshake cost is the TLS column minus the plaintext one.

  2. session: 1000 commands over one session
       1000 lines "true" piped into `ferry shell 127.0.0.1:PORT` (both modes)
       1000 lines "/bin/true" piped into one `ssh localhost sh` (through the
         warm ControlMaster)
       sh -c 'for i in $(seq 1000); do /bin/true; done'  (local fork+exec)
       os.posix_spawn + waitpid of /bin/true x1000 (local spawn as ferryd does it)
     whole wall time / 1000; median over repetitions.  Piping lets ssh's sh
     read ahead (no round trip per command), so 2b drives both sessions
     lock-step as well: write one line, wait for its marker, then the next,
     beside os.posix_spawn + waitpid of /bin/true timed one at a time in the
     same repetitions (the lock-step columns' local counterpart).

  3. the tutorials' "simple ssh" (seed 000): the Python ThreadingTCPServer +
     subprocess.Popen(shell=True) server, rendered faithfully below, against
     `ferryd --classic`, both driven by the tutorial's own client logic over
     one connection, 1000 "true" round trips; plus ferry's own protocol
     driven by a Python client of the same shape (docs/PROTOCOL.md section 2,
     the client-first handshake), so all share a client.  That client speaks
     to the --plaintext ferryd (which also serves --classic): Python's ssl
     module cannot do TLS 1.3 with an external PSK.  A fourth column runs the Python original with
     TCP_NODELAY (not in the tutorial): its four send() calls per reply meet
     Nagle and delayed ACKs, which costs ~40 ms per round trip on loopback.

ssh logs in as a dedicated user (sshlib.BenchUser: login shell /bin/sh, an
empty home, made for the run and removed after it), so its figures are sshd's
per-command start-up, not a login shell's rc files: the fair baseline
(issue 12).  Without root it falls back to the current user and every ssh
ratio's name says UNFAIR.

One process per command, everywhere.  ferryd, ferry shell, `ssh host CMD`, the
classic protocol and the Python original all run a command line with
`sh -c LINE`, and Debian's sh (dash) forks even for a lone external command,
so "true" (a builtin) costs exactly one process (the sh) and "/bin/true" two.
A `sh` reading lines (ssh sh, the local loop) forks once for "/bin/true" and
never for "true".  So: "true" where a command line is spawned per command,
"/bin/true" where one long-lived sh reads the lines.

The machine this runs on is small and noisy: the figures to quote are the
ratios between columns of the same run, never a lone absolute time.  Nothing
here asserts anything; every loop is bounded in count and in time.

python3 standard library only.  Usage:

    bench/exec_latency.py [--install] [--quick] [-n N] [--lines N] [--reps N]

--install (root only) installs openssh-server/openssh-client with apt-get when
sshd is missing; without sshd the ssh columns are skipped with a note.
"""

import argparse
import atexit
import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True   # no __pycache__ in bench/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402  (bench/benchlib.py: shared with the other benchmarks)
from benchlib import (ROOT, DEVNULL, _started, _logs, note, stop_all, start,  # noqa: E402,F401
                      percentile, summary, fmt_ms, ratio, fmt_x, wait_for,
                      free_port, machine_info, Ferryd)
from sshlib import Sshd, ensure_sshd, ssh_baseline_line  # noqa: E402  (the fair ssh baseline)

benchlib.set_name("exec_latency")

FLOOR = "floor (local /bin/true + local sh -c true)"
MASTER = "ferry exec (TLS, through ferry master)"
UNFAIR = "ssh (fresh, UNFAIR: as the invoking user)"
SPAWN1 = "local posix_spawn, one at a time"


# ------------------------------------------------- the tutorial "simple ssh"

# Seed 000's server, as the tutorial writes it: ThreadingTCPServer, a thread per
# connection, recv(1024) per command, Popen(shell=True), read stdout then
# stderr, and four separate send() calls (length, header, stdout, stderr).
# Only the address (ephemeral port, printed) and the print(self.request) (sent
# to stderr, here discarded) differ.
PY_SIMPLE_SSH_SERVER = r'''
import socketserver, subprocess, json, struct, sys

class MyTcpHandler(socketserver.BaseRequestHandler):
    def handle(self):
        print(self.request, file=sys.stderr)
        while True:
            try:
                recv_cliend_cmd = self.request.recv(1024)
                if not recv_cliend_cmd: break
                obj = subprocess.Popen(recv_cliend_cmd.decode('utf-8'), shell=True,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                stdout = obj.stdout.read()
                stderr = obj.stderr.read()
                header_dic = {
                    'total_size': len(stdout) + len(stderr),
                    'filename': 'xxx.mp4',
                    'md5sum': '8f6fbf8347faa4924a76856701edb0f3'
                }
                header_json = json.dumps(header_dic)
                header_bytes = header_json.encode('utf-8')
                self.request.send(struct.pack('i', len(header_bytes)))
                self.request.send(header_bytes)
                self.request.send(stdout)
                self.request.send(stderr)
            except ConnectionResetError: break
        self.request.close()

if __name__ == '__main__':
    server = socketserver.ThreadingTCPServer(('127.0.0.1', 0), MyTcpHandler)
    print(server.server_address[1], flush=True)
    server.serve_forever()
'''


# The same server with TCP_NODELAY on each connection: not in the tutorial, here
# to show how much of its round trip is the Nagle / delayed-ACK stall that its
# four small send() calls per reply run into.
PY_SIMPLE_SSH_SERVER_NODELAY = PY_SIMPLE_SSH_SERVER.replace(
    "        print(self.request, file=sys.stderr)\n",
    "        print(self.request, file=sys.stderr)\n"
    "        import socket\n"
    "        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)\n")
assert PY_SIMPLE_SSH_SERVER_NODELAY != PY_SIMPLE_SSH_SERVER


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return buf


def classic_round_trips(port, cmd, count, time_limit):
    """The tutorial client's loop (send the command, recv 4-byte length, the
    JSON header, then total_size bytes), reading exactly what it is told.
    Returns per-round-trip seconds."""
    lat = []
    with socket.create_connection(("127.0.0.1", port), timeout=30) as c:
        data = cmd.encode("utf-8")
        end = time.monotonic() + time_limit
        for _ in range(count):
            t0 = time.perf_counter()
            c.send(data)
            header_size = struct.unpack("i", recv_exact(c, 4))[0]
            header = json.loads(recv_exact(c, header_size).decode("utf-8"))
            total, got = header["total_size"], 0
            while got < total:
                got += len(c.recv(min(1024, total - got)))
            lat.append(time.perf_counter() - t0)
            if time.monotonic() > end:
                break
    return lat


def _frame(hdr):
    h = json.dumps(hdr, separators=(",", ":")).encode()
    return struct.pack("<I", len(h)) + h


def _read_frame(sock):
    n = struct.unpack("<I", recv_exact(sock, 4))[0]
    hdr = json.loads(recv_exact(sock, n))
    size = hdr.get("size", 0)
    if size:
        recv_exact(sock, size)
    return hdr


def ferry_protocol_round_trips(port, keyfile, cmd, count, time_limit):
    """The same shape of client speaking ferry's protocol in plaintext mode
    (docs/PROTOCOL.md 2.1, against `ferryd --plaintext`): the client's hello,
    the server's hello with its nonce, the HMAC proofs both ways, once; then
    exec / frames until exit, per command."""
    key = bytes.fromhex(open(keyfile).read().strip())
    lat = []
    with socket.create_connection(("127.0.0.1", port), timeout=30) as c:
        c.sendall(_frame({"type": "hello", "version": 1}))   # the client speaks first
        hello = _read_frame(c)
        if hello.get("type") != "hello" or hello.get("auth") != "hmac-sha256" \
                or "nonce" not in hello:
            raise RuntimeError("ferry handshake: expected a plaintext hello with "
                               "auth hmac-sha256 (is ferryd --plaintext?), got %r" % hello)
        sn, cn = bytes.fromhex(hello["nonce"]), os.urandom(32)
        mac = lambda label: hmac.new(key, label + b"\0" + sn + cn,
                                     hashlib.sha256).hexdigest()
        c.sendall(_frame({"type": "auth", "version": 1, "key": "ferry", "nonce": cn.hex(),
                          "proof": mac(b"ferry-v1 client proof")}))
        welcome = _read_frame(c)
        if welcome.get("type") != "welcome" or not hmac.compare_digest(
                welcome.get("proof", ""), mac(b"ferry-v1 server proof")):
            raise RuntimeError("ferry handshake failed: %r" % welcome)
        req = _frame({"type": "exec", "shell": cmd, "stdin": False})
        end = time.monotonic() + time_limit
        for _ in range(count):
            t0 = time.perf_counter()
            c.sendall(req)
            while True:
                f = _read_frame(c)
                if f["type"] == "exit":
                    break
                if f["type"] == "error":
                    raise RuntimeError("ferryd: %r" % f)
            lat.append(time.perf_counter() - t0)
            if time.monotonic() > end:
                break
    return lat


# ------------------------------------------------------------ measurements

def timed_run(argv, stdin_bytes=None, timeout=60):
    """Wall time of one process, stdout/stderr discarded; raises on failure."""
    t0 = time.perf_counter()
    if stdin_bytes is None:
        r = subprocess.run(argv, stdin=DEVNULL, stdout=DEVNULL,
                           stderr=subprocess.PIPE, timeout=timeout)
    else:
        r = subprocess.run(argv, input=stdin_bytes, stdout=DEVNULL,
                           stderr=subprocess.PIPE, timeout=timeout)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(argv[:4]), r.returncode,
                                                r.stderr.decode(errors="replace").strip()))
    return dt


def spawn_loop(path, count, time_limit):
    """posix_spawn + waitpid of PATH, count times (glibc's posix_spawn is
    vfork-like, as ferryd's spawn is); returns seconds per spawn."""
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        acts = [(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1)]
        env = {"PATH": "/usr/bin:/bin"}
        end = time.monotonic() + time_limit
        t0 = time.perf_counter()
        for i in range(count):
            pid = os.posix_spawn(path, [path], env, file_actions=acts)
            os.waitpid(pid, 0)
            if time.monotonic() > end:
                break
        return (time.perf_counter() - t0) / (i + 1)
    finally:
        os.close(devnull)


def spawn_latencies(path, count, time_limit):
    """spawn_loop's posix_spawn + waitpid, each timed alone: the local
    counterpart of a lock-step column (per-command seconds, so its median
    sits beside theirs)."""
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        acts = [(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1)]
        env = {"PATH": "/usr/bin:/bin"}
        lat = []
        end = time.monotonic() + time_limit
        for _ in range(count):
            t0 = time.perf_counter()
            pid = os.posix_spawn(path, [path], env, file_actions=acts)
            os.waitpid(pid, 0)
            lat.append(time.perf_counter() - t0)
            if time.monotonic() > end:
                break
        return lat
    finally:
        os.close(devnull)


def lockstep(argv, count, time_limit, cmd):
    """A command-line session (ferry shell, ssh sh) driven one command at a
    time: write "CMD; echo MARK", wait for MARK on stdout, then the next.
    Unlike piping all the lines in at once, this is a real round trip per
    command for every alternative.  Returns per-command seconds."""
    mark = b"__ferry_bench__"
    line = cmd.encode() + b"; echo " + mark + b"\n"
    p = start(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
              stderr=subprocess.DEVNULL)
    lat = []
    try:
        end = time.monotonic() + time_limit
        for _ in range(count):
            t0 = time.perf_counter()
            p.stdin.write(line)
            p.stdin.flush()
            while True:
                out = p.stdout.readline()
                if not out:
                    raise RuntimeError("%s ended early (exit %s)" %
                                       (" ".join(argv[:2]), p.wait(timeout=10)))
                if out.rstrip(b"\n") == mark:
                    break
            lat.append(time.perf_counter() - t0)
            if time.monotonic() > end:
                break
        p.stdin.close()
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)
    return lat


def interleaved(columns, count, time_limit, label):
    """Runs each column's argv once per round, round-robin (the starting
    column rotates each round, so no column always follows the same one), up
    to count rounds or time_limit seconds.  Returns {name: [seconds]}: the
    i-th sample of every column comes from round i, so columns pair up."""
    out = {name: [] for name, _ in columns}
    end = time.monotonic() + time_limit
    for i in range(count):
        k = i % max(1, len(columns))
        for name, argv in columns[k:] + columns[:k]:
            out[name].append(timed_run(argv))
        if time.monotonic() > end:
            note("%s: time limit reached after %d of %d rounds" % (label, i + 1, count))
            break
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--install", action="store_true",
                    help="apt-get install openssh-server if missing (root)")
    ap.add_argument("--quick", action="store_true",
                    help="a short run for development (n=30, lines=200, reps=3)")
    ap.add_argument("-n", type=int, default=200, help="fresh-connection runs (200)")
    ap.add_argument("--lines", type=int, default=1000,
                    help="commands per session (1000)")
    ap.add_argument("--reps", type=int, default=7,
                    help="repetitions of each session measurement (7)")
    ap.add_argument("--tutorial-reps", type=int, default=3,
                    help="repetitions of the tutorial round trips (3; the "
                         "Python original takes ~45 s per 1000)")
    ap.add_argument("--time-limit", type=float, default=240,
                    help="seconds allowed per measurement loop (240)")
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    ap.add_argument("--json", default=os.path.join(ROOT, "bench", "results",
                                                   "exec_latency.json"))
    ap.add_argument("--no-ssh", action="store_true", help="skip the ssh columns")
    ap.add_argument("--ssh-as-invoker", action="store_true",
                    help="add a fresh ssh column logging in as the invoking user, "
                         "through its login shell and rc files (the unfair way "
                         "earlier figures were measured; no goal uses it)")
    a = ap.parse_args()
    if a.quick:
        a.n, a.lines = min(a.n, 30), min(a.lines, 200)
        a.reps, a.tutorial_reps = min(a.reps, 3), min(a.tutorial_reps, 2)
    for prog in ("ferry", "ferryd"):
        if not os.access(os.path.join(a.bin, prog), os.X_OK):
            sys.exit("exec_latency: %s/%s not found: run `make` first" % (a.bin, prog))

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started_at = time.time()
    machine = machine_info()
    tmp = tempfile.mkdtemp(prefix="ferry-bench-")
    atexit.register(shutil.rmtree, tmp, True)
    # ferry's connection masters live here (private, removed with tmp):
    # the fresh columns say --no-master, the master's column uses one.
    os.environ["XDG_RUNTIME_DIR"] = os.path.join(tmp, "run")
    os.mkdir(os.environ["XDG_RUNTIME_DIR"], 0o700)
    results, notes = {}, []
    # Run copies: a rebuild of build/ during the run (make, another shell)
    # must not swap or truncate the binaries under the running daemon.
    snap = os.path.join(tmp, "bin")
    os.mkdir(snap)
    for prog in ("ferry", "ferryd"):
        shutil.copy2(os.path.join(a.bin, prog), snap)
    commit = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                            capture_output=True, text=True).stdout.strip() or None

    ssh_skip = "--no-ssh given" if a.no_ssh else ensure_sshd(a.install)
    # Two daemons: ferryd's default (TLS 1.3, PSK + X25519) and --plaintext.
    # The plaintext one also serves --classic, so that section 3 compares the
    # tutorial's protocol and ferry's (Python client, plaintext) on one daemon.
    ft = Ferryd(snap, tmp, classic=False)
    fp = Ferryd(snap, tmp, classic=True, plaintext=True)
    fds = {"TLS": ft, "plaintext": fp}
    note("ferryd (TLS) on 127.0.0.1:%d; ferryd --plaintext on 127.0.0.1:%d, classic on "
         "127.0.0.1:%d" % (ft.port, fp.port, fp.classic_port))
    sessions = {m: benchlib.tls_session_info(f) for m, f in fds.items()}
    for m, info in sessions.items():
        note("ferry (%s) session: %s" % (m, info))
    sshd = None
    if ssh_skip is None:
        try:
            sshd = Sshd(tmp)
            sshd.start_master()
            note("sshd on 127.0.0.1:%d, ControlMaster up; ssh logs in as %s (%s)" %
                 (sshd.port, sshd.user.name, sshd.user.label))
            if not sshd.user.fair:
                notes.append("ssh baseline UNFAIR: " + sshd.user.why)
                note(notes[-1])
        except (RuntimeError, subprocess.SubprocessError, OSError) as e:
            ssh_skip = "sshd could not be used: %s" % e
            sshd = None
    if ssh_skip:
        notes.append("ssh columns skipped: " + ssh_skip)
        note(notes[-1])

    # 1. fresh connection, one command per client process -------------------
    cols = [("ferry exec (fresh, %s)" % m, f.client("exec", "--no-master", f.host, "true"))
            for m, f in fds.items()]
    r = subprocess.run(ft.client("master", "-b", ft.host), capture_output=True)
    if r.returncode == 0:
        cols += [(MASTER, ft.client("exec", ft.host, "true"))]
    else:
        notes.append("no ferry master column: %s" % r.stderr.decode(errors="replace").strip())
        note(notes[-1])
    if sshd:
        cols += [("ssh (fresh)", sshd.fresh("true")),
                 ("ssh (ControlMaster, warm)", sshd.muxed("true"))]
        if a.ssh_as_invoker and sshd.user.fair:
            cols += [(UNFAIR, sshd.fresh_as_invoker("true"))]
    LT, LS = "local /bin/true (same harness)", "local sh -c true (same harness)"
    cols += [(LT, ["/bin/true"]), (LS, ["/bin/sh", "-c", "true"])]
    for _, argv in cols:          # warm-up: page cache, first connection
        timed_run(argv)
    note("fresh: %d rounds of %s" % (a.n, ", ".join(c[0] for c in cols)))
    fresh = interleaved(cols, a.n, a.time_limit, "fresh")
    subprocess.run(ft.client("master", "--stop", ft.host), capture_output=True)
    # the floor: a local exec plus a local sh -c, added up round by round
    fresh[FLOOR] = [t + c for t, c in zip(fresh[LT], fresh[LS])]
    results["fresh"] = {k: dict(summary(v), samples=v) for k, v in fresh.items()}

    # 2. many commands over one session --------------------------------------
    for f in fds.values():
        f.ensure(notes, "the session section")
    loop = ["sh", "-c", 'for i in $(seq %d); do /bin/true; done' % a.lines]
    scols = [("ferry shell (%s)" % m, f.client("shell", f.host), b"true\n" * a.lines)
             for m, f in fds.items()]
    if sshd:
        scols += [("ssh sh (ControlMaster, warm)", sshd.muxed("sh"),
                   b"/bin/true\n" * a.lines)]
    scols += [("local sh loop (fork+exec)", loop, None),
              ("local posix_spawn loop", None, None)]
    note("session: %d reps of %d commands: %s" %
         (a.reps, a.lines, ", ".join(c[0] for c in scols)))
    sess = {name: [] for name, _, _ in scols}
    end = time.monotonic() + a.time_limit
    for rep in range(a.reps):
        for name, argv, inp in scols:
            if argv is None:
                sess[name].append(spawn_loop("/bin/true", a.lines, a.time_limit))
            else:
                sess[name].append(timed_run(argv, inp, timeout=a.time_limit) / a.lines)
        if time.monotonic() > end:
            note("session: time limit reached after %d reps" % (rep + 1))
            break
    results["session"] = {k: dict(summary(v), samples=v) for k, v in sess.items()}

    # 2b. the same sessions driven lock-step: one round trip per command ------
    for f in fds.values():
        f.ensure(notes, "the lock-step section")
    lcols = [("ferry shell (%s, lock-step)" % m, f.client("shell", f.host), "true")
             for m, f in fds.items()]
    if sshd:
        lcols += [("ssh sh (ControlMaster, lock-step)", sshd.muxed("sh"), "/bin/true")]
    # the local spawn in the same repetitions, one at a time: the lock-step
    # goal divides by it, not by section 2's loop measured minutes apart
    lcols += [(SPAWN1, None, None)]
    note("lock-step: %d reps of %d commands: %s" %
         (a.reps, a.lines, ", ".join(c[0] for c in lcols)))
    lock = {name: [] for name, _, _ in lcols}
    lock_p90 = {name: [] for name, _, _ in lcols}
    for rep in range(a.reps):
        for name, argv, cmd in lcols:
            if argv is None:
                lat = spawn_latencies("/bin/true", a.lines, a.time_limit / max(1, a.reps))
            else:
                lat = lockstep(argv, a.lines, a.time_limit / max(1, a.reps), cmd)
            lock[name].append(percentile(lat, 50))
            lock_p90[name].append(percentile(lat, 90))
    results["lockstep"] = {k: dict(summary(v), samples=v, p90_per_rep=lock_p90[k])
                           for k, v in lock.items()}
    for k in lock:   # p90 of a column: the median of its repetitions' p90s
        results["lockstep"][k]["p90"] = percentile(lock_p90[k], 50)

    # 3. the tutorial's simple ssh, one connection, same client --------------
    pysrv = start([sys.executable, "-c", PY_SIMPLE_SSH_SERVER], stdin=DEVNULL,
                  stdout=subprocess.PIPE, stderr=DEVNULL, cwd=tmp)
    pyport = int(pysrv.stdout.readline())
    pysrv2 = start([sys.executable, "-c", PY_SIMPLE_SSH_SERVER_NODELAY], stdin=DEVNULL,
                   stdout=subprocess.PIPE, stderr=DEVNULL, cwd=tmp)
    pyport2 = int(pysrv2.stdout.readline())
    tcols = [("python simple ssh (seed 000)",
              lambda n, t: classic_round_trips(pyport, "true", n, t)),
             ("python simple ssh + TCP_NODELAY (not seed)",
              lambda n, t: classic_round_trips(pyport2, "true", n, t)),
             ("ferryd --classic",
              lambda n, t: classic_round_trips(fp.classic_port, "true", n, t)),
             ("ferryd, ferry protocol (Python client, plaintext)",
              lambda n, t: ferry_protocol_round_trips(fp.port, fp.key, "true", n, t))]
    note("tutorial: %d reps of %d round trips: %s" %
         (a.tutorial_reps, a.lines, ", ".join(c[0] for c in tcols)))
    tut = {name: [] for name, _ in tcols}
    tut_n = {name: [] for name, _ in tcols}
    per_rep_limit = a.time_limit / max(1, a.tutorial_reps)
    for rep in range(a.tutorial_reps):
        for name, fn in tcols:
            fp.ensure(notes, "%s, repetition %d" % (name, rep + 1))
            lat = fn(a.lines, per_rep_limit)
            tut_n[name].append(len(lat))
            tut[name].append(percentile(lat, 50))
            results.setdefault("tutorial_p90", {}).setdefault(name, []).append(
                percentile(lat, 90))
    results["tutorial"] = {}
    for name in tut:
        results["tutorial"][name] = dict(summary(tut[name]), samples=tut[name],
                                         round_trips=tut_n[name],
                                         p90_per_rep=results["tutorial_p90"][name])
        results["tutorial"][name]["p90"] = percentile(
            results["tutorial_p90"][name], 50)
    del results["tutorial_p90"]
    for name, ns in tut_n.items():
        if min(ns) < a.lines:
            notes.append("%s: time limit cut a repetition to %d of %d round trips"
                         % (name, min(ns), a.lines))

    stop_all()

    # ------------------------------------------------------------- ratios
    med = lambda sec, k: results[sec].get(k, {}).get("median")
    F, S, L, T = "fresh", "session", "lockstep", "tutorial"
    ratios = []

    def add(desc, num, den, goal=None):
        r = ratio(num, den)
        if r is not None:
            ratios.append({"what": desc, "ratio": r, "goal": goal})

    FT, FP = "ferry exec (fresh, TLS)", "ferry exec (fresh, plaintext)"
    ST, SP = "ferry shell (TLS)", "ferry shell (plaintext)"
    LST = "ferry shell (TLS, lock-step)"
    SPAWN = "local posix_spawn loop"
    # "fair": ssh logs in as a user whose login shell is /bin/sh, home empty
    fair = "(%s)" % (sshd.user.label if sshd else "fair")
    # issue 12: a fresh command near its floor, far from the fair ssh; a
    # warm one near a local spawn and ahead of ssh's session
    add("ferry exec fresh (TLS) / floor", med(F, FT), med(F, FLOOR), "<= 1.5x (issue 12)")
    add("ssh fresh %s / ferry exec fresh (TLS)" % fair, med(F, "ssh (fresh)"), med(F, FT),
        ">= 25x (issue 12)")
    add("ferry shell (TLS) per command, piped / local posix_spawn", med(S, ST),
        med(S, SPAWN), "<= 1.2x (issue 12)")
    add("ferry shell (TLS) per command, lock-step / local posix_spawn", med(L, LST),
        med(L, SPAWN1), "<= 1.2x (issue 12)")
    add("ssh sh %s ControlMaster, piped / ferry shell (TLS)" % fair,
        med(S, "ssh sh (ControlMaster, warm)"), med(S, ST), "> 1.0x (issue 12)")
    add("ssh sh %s ControlMaster, lock-step / ferry shell (TLS, lock-step)" % fair,
        med(L, "ssh sh (ControlMaster, lock-step)"), med(L, LST), "> 1.0x (issue 12)")
    add("ferry exec fresh (plaintext) / floor", med(F, FP), med(F, FLOOR))
    # with a connection master, ferry's ControlMaster: against the floor,
    # and against ssh through its own warm ControlMaster
    add("ferry exec through ferry master (TLS) / floor", med(F, MASTER), med(F, FLOOR),
        "<= 1.5x (issue 12)")
    add("ssh %s through a warm ControlMaster / ferry exec through ferry master (TLS)" % fair,
        med(F, "ssh (ControlMaster, warm)"), med(F, MASTER))
    add("ferry exec fresh (TLS) / through ferry master (TLS)", med(F, FT), med(F, MASTER))
    # with --ssh-as-invoker: what the login shell's rc files added before
    add("ssh fresh, UNFAIR as the invoking user / ssh fresh (fair)", med(F, UNFAIR),
        med(F, "ssh (fresh)"))
    add("ssh fresh, UNFAIR as the invoking user / ferry exec fresh (TLS)", med(F, UNFAIR),
        med(F, FT))
    # issue 6: a fresh encrypted exec against ssh; issue 5: the same in plaintext
    add("ssh fresh %s / ferry exec fresh (TLS)" % fair, med(F, "ssh (fresh)"), med(F, FT),
        ">= 30x (issue 6)")
    add("ssh fresh %s / ferry exec fresh (plaintext)" % fair, med(F, "ssh (fresh)"),
        med(F, FP), ">= 50x (issue 5)")
    # the handshake cost: what TLS adds to a fresh connection
    add("ferry exec fresh, TLS / plaintext", med(F, FT), med(F, FP))
    if med(F, FT) is not None and med(F, FP) is not None:
        paired = [t - p for t, p in zip(results[F][FT]["samples"], results[F][FP]["samples"])]
        results["handshake_cost"] = {
            "difference_of_medians_s": med(F, FT) - med(F, FP),
            "median_paired_difference_s": percentile(paired, 50),
            "paired_differences_s": paired,
            "ratio_tls_plaintext": ratio(med(F, FT), med(F, FP)),
            "how": "fresh `ferry exec true` against the TLS ferryd minus the same "
                   "against ferryd --plaintext: the same client, daemon and command, so "
                   "the difference is the TLS 1.3 handshake (PSK + X25519) and the "
                   "per-record work of a short session; paired: round by round "
                   "(the columns are interleaved)"}
        hc = results["handshake_cost"]
        ratios.append({"what": "handshake cost: fresh TLS - plaintext (difference of medians)",
                       "value": hc["difference_of_medians_s"] * 1e3, "unit": "ms",
                       "goal": None})
        ratios.append({"what": "handshake cost: fresh TLS - plaintext (median paired difference)",
                       "value": hc["median_paired_difference_s"] * 1e3, "unit": "ms",
                       "goal": None})
    for m, col in (("TLS", FT), ("plaintext", FP)):
        add("ssh ControlMaster %s / ferry exec fresh (%s)" % (fair, m),
            med(F, "ssh (ControlMaster, warm)"), med(F, col))
        add("ferry exec fresh (%s) / local /bin/true (same harness)" % m,
            med(F, col), med(F, LT))
    add("ferry shell (plaintext) per command / local posix_spawn", med(S, SP),
        med(S, SPAWN), "<= 1.5x (issue 5)")
    add("ferry shell per command, TLS / plaintext", med(S, ST), med(S, SP))
    add("ferry shell (plaintext) per command, lock-step / local posix_spawn",
        med(L, "ferry shell (plaintext, lock-step)"), med(L, SPAWN1))
    for m, col in (("TLS", ST), ("plaintext", SP)):
        add("ferry shell (%s) per command / local sh loop" % m, med(S, col),
            med(S, "local sh loop (fork+exec)"))
        if m == "plaintext":   # TLS: the issue 12 rows above
            add("ssh sh %s ControlMaster, piped / ferry shell (plaintext)" % fair,
                med(S, "ssh sh (ControlMaster, warm)"), med(S, col))
            add("ssh sh %s ControlMaster, lock-step / ferry shell (plaintext, lock-step)"
                % fair, med(L, "ssh sh (ControlMaster, lock-step)"),
                med(L, "ferry shell (plaintext, lock-step)"))
        add("ssh ControlMaster per process %s / ferry shell (%s) per command" % (fair, m),
            med(F, "ssh (ControlMaster, warm)"), med(S, col))
    PY = "ferryd, ferry protocol (Python client, plaintext)"
    add("python simple ssh / ferryd --classic", med(T, "python simple ssh (seed 000)"),
        med(T, "ferryd --classic"))
    add("python simple ssh + TCP_NODELAY / ferryd --classic",
        med(T, "python simple ssh + TCP_NODELAY (not seed)"), med(T, "ferryd --classic"))
    add("python simple ssh / ferry protocol (plaintext)",
        med(T, "python simple ssh (seed 000)"), med(T, PY))
    add("ferry protocol (plaintext) / ferryd --classic", med(T, PY),
        med(T, "ferryd --classic"))

    doc = {
        "benchmark": "exec_latency",
        "issue": [3, 5, 6, 12],
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started_at)),
        "duration_s": round(time.time() - started_at, 1),
        "machine": dict(machine, loadavg_end=os.getloadavg()),
        "commit": commit,
        "versions": dict(benchlib.ferry_versions(snap), ssh=(
            subprocess.run(["ssh", "-V"], capture_output=True, text=True)
            .stderr.strip() if shutil.which("ssh") else None)),
        "ssh_baseline": sshd.describe() if sshd else None,
        "ferry_modes": {m: {"ferryd": "ferryd --plaintext" if f.plaintext else
                            "ferryd (default: TLS 1.3)", "session": sessions[m]}
                        for m, f in fds.items()},
        "params": {"n_fresh": a.n, "lines": a.lines, "reps": a.reps,
                   "tutorial_reps": a.tutorial_reps,
                   "time_limit_s": a.time_limit, "quick": a.quick},
        "units": "seconds",
        "results": results,
        "ratios": ratios,
        "notes": notes,
    }

    # -------------------------------------------------------------- report
    print("exec_latency: %d cpus, load %.2f -> %.2f; medians (p90)" %
          (os.cpu_count(), doc["machine"]["loadavg_start"][0],
           doc["machine"]["loadavg_end"][0]))
    sections = [
        (F, "1. one command, fresh client process + connection (n=%d each, interleaved)" % a.n),
        (S, "2. %d commands over one session, per command (median of %d reps)" %
         (a.lines, a.reps)),
        (L, "2b. the same sessions, one round trip per command "
            "(driver waits for each; median of %d reps of %d)" % (a.reps, a.lines)),
        (T, "3. tutorial simple ssh, one connection, per round trip "
            "(median of %d reps of %d)" % (a.tutorial_reps, a.lines)),
    ]
    for m, info in sessions.items():
        print("ferry (%s): %s" % (m, info or "-"))
    if sshd:
        print(ssh_baseline_line(sshd))
    for sec, title in sections:
        print("\n" + title)
        for name, s in results[sec].items():
            print("  %-50s %10s  (p90 %s, n=%d)" % (name, fmt_ms(s.get("median")),
                                                   fmt_ms(s.get("p90")), s["n"]))
    hc = results.get("handshake_cost")
    if hc:
        print("\nhandshake cost (fresh TLS - fresh plaintext): %.2f ms difference of medians, "
              "%.2f ms median of paired differences; TLS / plaintext %s" %
              (hc["difference_of_medians_s"] * 1e3, hc["median_paired_difference_s"] * 1e3,
               fmt_x(hc["ratio_tls_plaintext"])))
    benchlib.finish(doc, ratios, notes, a.json, width=76)


if __name__ == "__main__":
    benchlib.run(main)
