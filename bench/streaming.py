#!/usr/bin/env python3
"""streaming.py - a command's output streamed through ferry exec, in both of
ferry's modes, beside ssh and a plain local pipe (issue 5, comparison 4).

Side by side in one run, interleaved round-robin, each column's output going
into the same byte-counting reader (a Python readinto loop, 1 MiB buffer, its
count checked):

  ferry exec (TLS)
                ferry exec -k KEY 127.0.0.1:PORT 'head -c 4G /dev/zero' | reader
                (a fresh ferryd --listen 127.0.0.1:0 with a fresh key; TLS 1.3
                keyed by it, ferry's default)
  ferry exec (plaintext)
                the same with --plaintext on both sides (a second ferryd):
                issue 5's goal (>= 0.8x the local pipe) is for this column;
                issue 12 keeps it and adds >= 0.6x for the TLS column
  ssh           ssh localhost 'head -c 4G /dev/zero' | reader
                (a throw-away sshd on an ephemeral loopback port, fresh
                connection, key auth, default cipher; it logs in as a
                dedicated user whose login shell is /bin/sh, home empty:
                sshlib.BenchUser)
  local pipe    head -c 4G /dev/zero | reader
  local pipe, wc -c   head -c 4G /dev/zero | wc -c  (another reader, to show
                the reader is not what bounds the columns)

Time: from starting the producer until it and the reader have exited.
While ferry runs, the RSS (VmRSS, and VmHWM, the kernel's own peak) of the
ferry client and of that mode's ferryd (the event-model daemon serves the
connection in its one process; with --model fork its per-connection child is
sampled too) is read from /proc every 100 ms; peaks are kept per mode.

The machine is small and noisy: quote ratios between columns of one run
(medians of --reps repetitions).  Nothing here asserts; every loop is
bounded in count and in time.

python3 standard library only.  Usage:

    bench/streaming.py [--install] [--quick] [--reps N] [--size 4G] [--bin DIR]

--install (root only) apt-gets openssh-server/openssh-client if missing.
"""

import argparse
import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True   # no __pycache__ in bench/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
from benchlib import (ROOT, DEVNULL, note, stop_all, start, percentile,  # noqa: E402
                      summary, machine_info, Ferryd, git_describe, dump_logs)
from sshlib import Sshd, ensure_sshd, ssh_baseline_line  # noqa: E402  (the fair ssh baseline)

benchlib.set_name("streaming")
GB = 1e9

READER = r'''
import sys
n = 0
b = bytearray(1 << 20)
r = sys.stdin.buffer.raw
while True:
    k = r.readinto(b)
    if not k:
        break
    n += k
print(n)
'''


class Failed(Exception):
    pass


def parse_size(s):
    s = s.strip().upper()
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if s and s[-1] in mult:
        return int(s[:-1]) * mult[s[-1]], s
    return int(s), s


def proc_status(pid):
    """(VmRSS, VmHWM) in bytes, or None when the process is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            rss = hwm = None
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) * 1024
            return (rss, hwm) if rss is not None else None
    except (OSError, ValueError):
        return None


def ferryd_pids(pid):
    """ferryd and any child of it that is still ferryd (fork model)."""
    pids = [pid]
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                for c in f.read().split():
                    try:
                        with open("/proc/%s/comm" % c) as g:
                            if g.read().strip() == "ferryd":
                                pids.append(int(c))
                    except OSError:
                        pass
    except OSError:
        pass
    return pids


class Sampler:
    """Samples VmRSS/VmHWM of the given processes every interval seconds."""

    def __init__(self, client_pid, ferryd_pid, interval=0.1):
        self.client, self.daemon, self.interval = client_pid, ferryd_pid, interval
        self.peak = {"ferry": 0, "ferryd": 0}
        self.hwm = {"ferry": 0, "ferryd": 0}
        self.n = 0
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop.is_set():
            self.n += 1
            for who, pids in (("ferry", [self.client]),
                              ("ferryd", ferryd_pids(self.daemon))):
                for pid in pids:
                    st = proc_status(pid)
                    if st:
                        self.peak[who] = max(self.peak[who], st[0])
                        self.hwm[who] = max(self.hwm[who], st[1] or 0)
            self.stop.wait(self.interval)

    def finish(self):
        self.stop.set()
        self.t.join(timeout=5)


def wait_bounded(p, deadline, what):
    killed = []

    def kill():
        killed.append(1)
        try:
            p.kill()
        except OSError:
            pass
    t = threading.Timer(max(0.0, deadline - time.monotonic()), kill)
    t.daemon = True
    t.start()
    try:
        rc = p.wait()
    finally:
        t.cancel()
    if killed:
        raise Failed("%s: timed out" % what)
    return rc


def run_pipe(producer, reader, size, timeout, sample_ferryd=None):
    """producer | reader; returns (seconds, rss dict or None)."""
    r, w = os.pipe()
    t0 = time.perf_counter()
    try:
        prod = start(producer, stdin=DEVNULL, stdout=w, stderr=subprocess.PIPE)
        os.close(w)
        w = -1
        rd = start(reader, stdin=r, stdout=subprocess.PIPE, stderr=DEVNULL)
        os.close(r)
        r = -1
    finally:
        for fd in (r, w):
            if fd >= 0:
                os.close(fd)
    sampler = Sampler(prod.pid, sample_ferryd) if sample_ferryd else None
    dl = time.monotonic() + timeout
    try:
        rc_p = wait_bounded(prod, dl, producer[0])
        rc_r = wait_bounded(rd, dl, "reader")
        dt = time.perf_counter() - t0
    finally:
        if sampler:
            sampler.finish()
        for p in (prod, rd):
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
    out = rd.stdout.read().decode().strip()
    err = prod.stderr.read().decode(errors="replace").strip()
    if rc_p != 0 or rc_r != 0:
        raise Failed("%s: exit %s, reader exit %s: %s" % (producer[0], rc_p, rc_r, err[-300:]))
    if out.split()[0] != str(size) if out else True:
        raise Failed("reader counted %r bytes, expected %d" % (out, size))
    rss = None
    if sampler:
        rss = {"ferry_rss_peak": sampler.peak["ferry"],
               "ferryd_rss_peak": sampler.peak["ferryd"],
               "ferry_hwm": sampler.hwm["ferry"], "ferryd_hwm": sampler.hwm["ferryd"],
               "samples": sampler.n}
    return dt, rss


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--install", action="store_true",
                    help="apt-get install openssh-server if missing (root)")
    ap.add_argument("--quick", action="store_true", help="1 GiB, 2 reps")
    ap.add_argument("--reps", type=int, default=5, help="repetitions (5)")
    ap.add_argument("--size", default="4G", help="head -c SIZE (4G)")
    ap.add_argument("--timeout", type=float, default=600,
                    help="seconds allowed per run (600)")
    ap.add_argument("--time-limit", type=float, default=2400,
                    help="seconds allowed for all repetitions (2400)")
    ap.add_argument("--no-ssh", action="store_true", help="skip the ssh column")
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    ap.add_argument("--json", default=os.path.join(ROOT, "bench", "results",
                                                   "streaming.json"))
    a = ap.parse_args()
    if a.quick:
        a.size, a.reps = "1G", min(a.reps, 2)
    size, size_arg = parse_size(a.size)
    for prog in ("ferry", "ferryd"):
        if not os.access(os.path.join(a.bin, prog), os.X_OK):
            sys.exit("streaming: %s/%s not found: run `make` first" % (a.bin, prog))

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started_at = time.time()
    machine = machine_info()
    notes = []
    tmp = tempfile.mkdtemp(prefix="ferry-bench-st-")
    atexit.register(shutil.rmtree, tmp, True)
    snap = os.path.join(tmp, "bin")
    os.mkdir(snap)
    for prog in ("ferry", "ferryd"):
        shutil.copy2(os.path.join(a.bin, prog), snap)
    commit = git_describe()

    # one ferryd per mode: the default (TLS 1.3, PSK + X25519) and --plaintext
    fds = {}
    for mode in ("TLS", "plaintext"):
        root = os.path.join(tmp, "root-" + mode)
        os.mkdir(root)
        fds[mode] = Ferryd(snap, tmp, classic=False, root=root,
                           plaintext=(mode == "plaintext"))
        note("ferryd (%s) on 127.0.0.1:%d" % (mode, fds[mode].port))
    sessions = {m: benchlib.tls_session_info(f) for m, f in fds.items()}
    ssh_skip = "--no-ssh given" if a.no_ssh else ensure_sshd(a.install)
    sshd = None
    if ssh_skip is None:
        try:
            sshd = Sshd(tmp)
            note("sshd on 127.0.0.1:%d; %s" % (sshd.port, ssh_baseline_line(sshd)))
            if not sshd.user.fair:
                notes.append("ssh baseline UNFAIR: " + sshd.user.why)
                note(notes[-1])
        except (RuntimeError, subprocess.SubprocessError, OSError) as e:
            ssh_skip = "sshd could not be used: %s" % e
    if ssh_skip:
        notes.append("ssh column skipped: " + ssh_skip)
        note(notes[-1])

    cmd = "head -c %s /dev/zero" % size_arg
    reader = [sys.executable, "-c", READER]
    # (name, producer, reader, the ferryd whose RSS is sampled, its mode)
    cols = [("ferry exec (%s)" % m, f.client("exec", f.host, cmd), reader, f, m)
            for m, f in fds.items()]
    if sshd:
        cols.append(("ssh", sshd.fresh(cmd), reader, None, None))
    cols += [("local pipe", ["head", "-c", size_arg, "/dev/zero"], reader, None, None),
             ("local pipe, wc -c", ["head", "-c", size_arg, "/dev/zero"], ["wc", "-c"],
              None, None)]
    samples = {c[0]: [] for c in cols}
    rss = {m: [] for m in fds}
    failures = {c[0]: [] for c in cols}
    note("%d reps of %s bytes, round-robin over: %s" %
         (a.reps, size_arg, ", ".join(c[0] for c in cols)))
    end = time.monotonic() + a.time_limit
    for rep in range(a.reps):
        k = rep % len(cols)
        for name, prod, rdr, ferryd, mode in cols[k:] + cols[:k]:
            if len(failures[name]) >= 2:
                continue
            try:
                if ferryd:
                    ferryd.ensure(notes, "%s, repetition %d" % (name, rep + 1))
                    prod = ferryd.client("exec", ferryd.host, cmd)
                dt, r = run_pipe(prod, rdr, size, a.timeout,
                                 ferryd.proc.pid if ferryd else None)
                samples[name].append(dt)
                if r:
                    rss[mode].append(r)
                note("rep %d %-22s %6.2f s %5.2f GB/s%s" %
                     (rep + 1, name, dt, size / dt / GB,
                      "  RSS peak ferry %.1f MiB, ferryd %.1f MiB" %
                      (r["ferry_rss_peak"] / 2**20, r["ferryd_rss_peak"] / 2**20) if r else ""))
            except (Failed, OSError, subprocess.SubprocessError) as e:
                failures[name].append(str(e))
                note("rep %d %s failed: %s" % (rep + 1, name, e))
        if time.monotonic() > end:
            notes.append("time limit reached after %d of %d reps" % (rep + 1, a.reps))
            note(notes[-1])
            break
    ferryd_hwm_end = {m: (proc_status(f.proc.pid) or (None, None))[1]
                      for m, f in fds.items()}
    stop_all()

    results = {}
    for name, s in samples.items():
        r = dict(summary(s), samples_s=s, gbps_samples=[size / x / GB for x in s],
                 failures=failures[name])
        r["median_gbps"] = size / r["median"] / GB if s else None
        r["status"] = "ok" if s else "failed: " + "; ".join(failures[name])[:300]
        results[name] = r
        if failures[name]:
            notes.append("%s: %d failed run(s): %s" % (name, len(failures[name]),
                                                        failures[name][0][:200]))
    if not sshd:
        results["ssh"] = {"status": "not installed" if ssh_skip and "not installed"
                          in ssh_skip else ssh_skip}
    # peak RSS per mode: {"plaintext": {...}, "TLS": {...}}
    mem = {m: {
        "ferry_rss_peak_bytes": max([r["ferry_rss_peak"] for r in rss[m]], default=None),
        "ferryd_rss_peak_bytes": max([r["ferryd_rss_peak"] for r in rss[m]], default=None),
        "ferry_vmhwm_bytes": max([r["ferry_hwm"] for r in rss[m]], default=None),
        "ferryd_vmhwm_bytes_at_end": ferryd_hwm_end[m],
        "per_run": rss[m],
    } for m in fds}
    med = lambda n: results.get(n, {}).get("median_gbps")
    ratios = []

    def add(what, num, den, goal=None):
        if num and den:
            ratios.append({"what": what, "ratio": num / den, "goal": goal})
    p, t = med("ferry exec (plaintext)"), med("ferry exec (TLS)")
    fair = "(%s)" % (sshd.user.label if sshd else "fair")
    add("ferry exec (plaintext) / local pipe", p, med("local pipe"), ">= 0.8x (issue 5)")
    # issue 12 sets the same goal for plaintext, and one for TLS
    add("ferry exec (plaintext) / local pipe", p, med("local pipe"), ">= 0.8x (issue 12)")
    add("ferry exec (TLS) / local pipe", t, med("local pipe"), ">= 0.6x (issue 12)")
    add("ferry exec (TLS) / ferry exec (plaintext)", t, p)
    add("ferry exec (plaintext) / ssh %s" % fair, p, med("ssh"))
    add("ferry exec (TLS) / ssh %s" % fair, t, med("ssh"))
    if med("local pipe") and med("local pipe, wc -c"):
        ratios.append({"what": "local pipe (Python reader) / local pipe, wc -c",
                       "ratio": med("local pipe") / med("local pipe, wc -c"), "goal": None})

    versions = dict(benchlib.ferry_versions(snap), **{
        "ssh": (subprocess.run(["ssh", "-V"], capture_output=True, text=True, timeout=10)
                .stderr.strip() if shutil.which("ssh") else "not installed"),
        "python3": sys.version.split()[0],
    })
    machine["loadavg_end"] = os.getloadavg()
    doc = {
        "benchmark": "streaming", "issue": [5, 12],
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started_at)),
        "duration_s": round(time.time() - started_at, 1),
        "machine": machine, "commit": commit, "versions": versions,
        "ferry_modes": {m: {"ferryd": "ferryd --plaintext" if f.plaintext else
                            "ferryd (default: TLS 1.3)", "session": sessions[m]}
                        for m, f in fds.items()},
        "params": {"size": size, "head_arg": size_arg, "reps": a.reps, "quick": a.quick,
                   "timeout_s": a.timeout, "time_limit_s": a.time_limit,
                   "bin": benchlib.repo_path(a.bin), "rss_interval_s": 0.1},
        "units": "seconds per run; GB/s with GB = 1e9 bytes; RSS in bytes",
        "ssh_baseline": sshd.describe() if sshd else None,
        "results": results, "memory": mem, "ratios": ratios, "notes": notes,
    }

    print("streaming: %s bytes (head -c %s), %d cpus, load %.2f -> %.2f, %s" %
          (size, size_arg, os.cpu_count(), machine["loadavg_start"][0],
           machine["loadavg_end"][0], commit))
    for m, info in sessions.items():
        print("ferry (%s): %s" % (m, info or "-"))
    if sshd:
        print(ssh_baseline_line(sshd))
    print("\nmedian GB/s")
    for name, r in results.items():
        if r.get("median_gbps"):
            print("  %-24s %6.2f GB/s  (%.2f s, n=%d)" % (name, r["median_gbps"],
                                                        r["median"], r["n"]))
        else:
            print("  %-24s %s" % (name, r["status"]))
    mib = lambda b: "-" if b is None else "%.1f MiB" % (b / 2**20)
    print("\npeak RSS while streaming (sampled every 100 ms; VmHWM)")
    for m in fds:
        print("  %-26s %9s  (VmHWM %s)" % (
            "ferry client (%s)" % m, mib(mem[m]["ferry_rss_peak_bytes"]),
            mib(mem[m]["ferry_vmhwm_bytes"])))
        print("  %-26s %9s  (VmHWM over its life %s)" % (
            "ferryd (%s)" % m, mib(mem[m]["ferryd_rss_peak_bytes"]),
            mib(mem[m]["ferryd_vmhwm_bytes_at_end"])))
    benchlib.finish(doc, ratios, notes, a.json, width=50)


if __name__ == "__main__":
    benchlib.run(main)
