#!/usr/bin/env python3
"""tty.py - interactive terminals: `ferry exec -t` beside `ssh -t` (issue 13).

Measured side by side in one run, on loopback only.  Every client runs on a
pseudo-terminal of its own that this script holds the master of (120 x 40,
the client's controlling terminal), as a person's terminal emulator would:

  1. keystroke round trip: `ferry exec -t HOST 'cat >/dev/null'` and
     `ssh -t localhost 'cat >/dev/null'`, open side by side; one byte is
     written to a client's terminal and the clock stops when its echo
     (made by the remote terminal, the only output) comes back on it; the
     sessions take turns, byte by byte.  --keys round trips per session
     and repetition; median and p90.
  2. screen output: `cat` of a --mib MiB text file on the remote terminal,
     the client writing to its terminal and this script reading the master
     as fast as it can; MB/s from the client's start to its exit.  The
     same file cat'ed locally on the same kind of terminal, read the same
     way, is the ceiling (the reader and the local terminal bound every
     column).
  3. session start: `ferry exec -t HOST true` and `ssh -t localhost true`,
     from the client's start to its exit, --starts runs each, interleaved;
     also `ferry exec -t` through a running `ferry master` (TLS).

ferry runs against a ferryd in its default TLS mode and one with
--plaintext; the issue's goals are on TLS.  ssh logs in as a dedicated user
(sshlib.BenchUser: login shell /bin/sh, an empty home), so its figures are
sshd's own; without root that falls back to the current user and the ratio
names say UNFAIR.  Bounded everywhere: fixed counts, and a deadline on every
wait.  Not a test: nothing asserts.  python3 standard library only.
"""
import argparse
import fcntl
import os
import select
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
import sshlib  # noqa: E402
from benchlib import ROOT, note, summary, fmt_ms, ratio  # noqa: E402

MASTER = "ferry -t (TLS, through ferry master)"
ROWS, COLS = 40, 120
WAIT = 30.0          # seconds any single wait may take before the run gives up


class Term:
    """argv running on a new pseudo-terminal (its controlling terminal);
    we hold the master."""

    def __init__(self, argv, env=None):
        self.master, slave = os.openpty()
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))

        def child():
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.t0 = time.perf_counter()
        self.proc = benchlib.start(argv, stdin=slave, stdout=slave, stderr=slave,
                                   preexec_fn=child, env=env, close_fds=True)
        os.close(slave)
        self.seen = b""

    def write(self, data):
        os.write(self.master, data)

    def read_some(self, deadline):
        """Some output, b"" at the end (EIO: the client and its children
        are gone), None at the deadline."""
        left = deadline - time.perf_counter()
        if left <= 0:
            return None
        r, _, _ = select.select([self.master], [], [], left)
        if not r:
            return None
        try:
            return os.read(self.master, 1 << 16)
        except OSError:
            return b""

    def wait_for(self, needle, timeout=WAIT):
        deadline = time.perf_counter() + timeout
        while needle not in self.seen:
            data = self.read_some(deadline)
            if not data:
                raise RuntimeError("%s: never saw %r (got %r)"
                                   % (self.proc.args[:3], needle, self.seen[-200:]))
            self.seen += data
        self.seen = self.seen[self.seen.index(needle) + len(needle):]

    def drain_to_exit(self, timeout=WAIT):
        """Read everything until the client exits; (bytes, seconds from
        the start, status)."""
        deadline = time.perf_counter() + timeout
        total = 0
        while True:
            data = self.read_some(deadline)
            if data is None:
                raise RuntimeError("%s: still running after %.0f s" % (self.proc.args[:3], timeout))
            if not data:
                break
            total += len(data)
        status = self.proc.wait(timeout=timeout)
        return total, time.perf_counter() - self.t0, status

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        os.close(self.master)


def keystroke_session(argv):
    """A client on its terminal, ready for keystrokes: its terminal raw
    (a byte typed before would be echoed here, by the local terminal) and
    one round trip done."""
    t = Term(argv)
    deadline = time.perf_counter() + WAIT
    while termios.tcgetattr(t.master)[3] & termios.ECHO:
        if time.perf_counter() > deadline or t.proc.poll() is not None:
            t.close()
            raise RuntimeError("%s: the terminal never went raw" % argv[:3])
        time.sleep(0.005)
    t.write(b"r")
    t.wait_for(b"r")
    return t


def keystroke(t, b):
    """One byte to the terminal until its echo is back: seconds."""
    start = time.perf_counter()
    t.write(b)
    got = t.read_some(start + WAIT)
    took = time.perf_counter() - start
    if got != b:
        raise RuntimeError("%s: echo %r for %r" % (t.proc.args[:3], got, b))
    return took


def keystrokes(argvs, n):
    """n one-byte round trips on each session, the sessions open side by
    side and taking turns (the first rotates), so that every column meets
    the same moments of a busy machine.  The remote command is `cat
    >/dev/null`: the echo is all that comes back, and each byte's echo is
    exactly that byte (n stays far below a terminal's 4095-byte line).
    The clients are killed at the end; their servers end the commands."""
    terms = {}
    try:
        for name, argv in argvs.items():
            terms[name] = keystroke_session(argv)
        times = {name: [] for name in argvs}
        names = list(argvs)
        for i in range(n):
            b = bytes([ord("a") + i % 26])
            for name in names[i % len(names):] + names[:i % len(names)]:
                times[name].append(keystroke(terms[name], b))
        return times
    finally:
        for t in terms.values():
            t.close()


def screen(argv, nbytes):
    t = Term(argv)
    try:
        total, secs, status = t.drain_to_exit(timeout=300)
        if status != 0 or total < nbytes:
            raise RuntimeError("%s: status %s, %d of %d bytes" % (argv[:3], status, total, nbytes))
        return nbytes / secs
    finally:
        t.close()


def start_once(argv):
    t = Term(argv)
    try:
        _, secs, status = t.drain_to_exit(timeout=WAIT)
        if status != 0:
            raise RuntimeError("%s: status %s" % (argv[:3], status))
        return secs
    finally:
        t.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--install", action="store_true",
                    help="as root, apt-get the OpenSSH server if missing")
    ap.add_argument("--quick", action="store_true", help="fewer and smaller runs")
    ap.add_argument("--keys", type=int, default=300, help="round trips per repetition (300)")
    ap.add_argument("--mib", type=int, default=100, help="size of the screen output (100 MiB)")
    ap.add_argument("--starts", type=int, default=30, help="session starts each (30)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions (3)")
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    ap.add_argument("--json", default=os.path.join(ROOT, "bench", "results", "tty.json"))
    ap.add_argument("--no-ssh", action="store_true", help="skip the ssh columns")
    args = ap.parse_args()
    args.bin = os.path.abspath(args.bin)
    if args.quick:
        args.keys, args.mib, args.starts, args.reps = 50, 10, 8, 1
    benchlib.set_name("tty")
    notes = []
    tmp = tempfile.mkdtemp(prefix="ferry-bench-tty-")
    # ferry's connection masters live here: the ferry columns say
    # --no-master, the session start's master column uses one.
    os.environ["XDG_RUNTIME_DIR"] = os.path.join(tmp, "run")
    os.mkdir(os.environ["XDG_RUNTIME_DIR"], 0o700)
    why = None if args.no_ssh else sshlib.ensure_sshd(args.install)
    if args.no_ssh:
        why = "--no-ssh"
    sshd = None
    if why:
        notes.append("ssh columns skipped: " + why)
    else:
        sshd = sshlib.Sshd(tmp)
        notes.append(sshlib.ssh_baseline_line(sshd))
    fair = "" if not sshd or sshd.user.fair else " (UNFAIR: %s)" % sshd.user.name

    # The screen's text: printable lines, as a terminal gets them.
    text = os.path.join(tmp, "screen.txt")
    line = (b"".join(bytes([32 + (i * 7) % 95]) for i in range(99)) + b"\n")
    with open(text, "wb") as f:
        for _ in range(args.mib * (1 << 20) // len(line)):
            f.write(line)
    os.chmod(text, 0o644)
    nbytes = os.path.getsize(text)

    servers = {"TLS": benchlib.Ferryd(args.bin, tmp, classic=False),
               "plaintext": benchlib.Ferryd(args.bin, tmp, classic=False, plaintext=True)}
    cols = {}
    for mode, d in servers.items():
        cols["ferry -t (%s)" % mode] = lambda *cmd, d=d: d.client("exec", "-t", "--no-master",
                                                                  d.host, *cmd)
    if sshd:
        cols["ssh -t" + fair] = lambda *cmd: ["ssh", "-t", "-F", sshd.client_cfg, "-o",
                                              "ControlMaster=no", "-o", "ControlPath=none",
                                              "localhost"] + list(cmd)

    # The screen's ceiling: the same file cat'ed by a local process on the
    # same kind of terminal, read the same way; no goal.
    ceiling = "local cat (ceiling)"
    results = {"keystroke_s": {}, "screen_Bps": {ceiling: []}, "start_s": {}}
    for rep in range(args.reps):
        order = list(cols)[rep % len(cols):] + list(cols)[:rep % len(cols)]
        got = keystrokes({name: cols[name]("cat >/dev/null") for name in order}, args.keys)
        for name in order:
            results["keystroke_s"].setdefault(name, []).extend(got[name])
        for name in order:
            results["screen_Bps"].setdefault(name, []).append(screen(cols[name]("cat", text),
                                                                     nbytes))
        results["screen_Bps"][ceiling].append(screen(["cat", text], nbytes))
    # Session start also through a running `ferry master` (TLS).
    tls = servers["TLS"]
    starts = dict(cols)
    r = subprocess.run(tls.client("master", "-b", tls.host), capture_output=True)
    if r.returncode == 0:
        starts[MASTER] = lambda *cmd: tls.client("exec", "-t", tls.host, *cmd)
    else:
        notes.append("no ferry master column: %s" % r.stderr.decode(errors="replace").strip())
    for i in range(args.starts):
        order = list(starts)[i % len(starts):] + list(starts)[:i % len(starts)]
        for name in order:
            results["start_s"].setdefault(name, []).append(start_once(starts[name]("true")))
    subprocess.run(tls.client("master", "--stop", tls.host), capture_output=True)

    print("keystroke round trip (a byte to the client's terminal until its echo)")
    for name, xs in results["keystroke_s"].items():
        s = summary(xs)
        print("  %-32s median %-9s p90 %-9s n %d" % (name, fmt_ms(s["median"]), fmt_ms(s["p90"]), s["n"]))
    print("screen output (cat of %d MiB on the terminal)" % (nbytes >> 20))
    for name, xs in results["screen_Bps"].items():
        s = summary(xs)
        print("  %-32s median %7.1f MB/s  (min %.1f, max %.1f)" % (name, s["median"] / 1e6,
                                                                   s["min"] / 1e6, s["max"] / 1e6))
    print("session start (`-t HOST true` until exit)")
    for name, xs in results["start_s"].items():
        s = summary(xs)
        print("  %-32s median %-9s p90 %-9s n %d" % (name, fmt_ms(s["median"]), fmt_ms(s["p90"]), s["n"]))

    med = {k: {n: summary(xs)["median"] for n, xs in v.items()} for k, v in results.items()}
    ratios = []
    ssh = "ssh -t" + fair
    if sshd:
        for mode in ("TLS", "plaintext"):
            f = "ferry -t (%s)" % mode
            goal = mode == "TLS"
            ratios.append({"what": "keystroke: %s / %s" % (ssh, f),
                           "ratio": ratio(med["keystroke_s"][ssh], med["keystroke_s"][f]),
                           "goal": ">= 2x (issue 13)" if goal else None})
            ratios.append({"what": "screen: %s / %s" % (f, ssh),
                           "ratio": ratio(med["screen_Bps"][f], med["screen_Bps"][ssh]),
                           "goal": ">= 1.5x (issue 13)" if goal else None})
            ratios.append({"what": "start: %s / %s" % (ssh, f),
                           "ratio": ratio(med["start_s"][ssh], med["start_s"][f]),
                           "goal": ">= 20x (issue 13)" if goal else None})
    if sshd and MASTER in med["start_s"]:
        ratios.append({"what": "start: %s / %s" % (ssh, MASTER),
                       "ratio": ratio(med["start_s"][ssh], med["start_s"][MASTER]),
                       "goal": ">= 20x (issue 13)"})
    doc = {"benchmark": "tty", "issue": 13, "git": benchlib.git_describe(),
           "machine": benchlib.machine_info(), "rows": ROWS, "cols": COLS,
           "screen_bytes": nbytes, "keys_per_rep": args.keys, "reps": args.reps,
           "starts": args.starts, "samples": results, "medians": med, "ratios": ratios,
           "ssh_baseline": sshd.describe() if sshd else None, "notes": notes}
    benchlib.finish(doc, ratios, notes, args.json)


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    benchlib.run(main)
