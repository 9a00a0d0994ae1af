#!/usr/bin/env python3
"""c10k.py - 10,000 idle connections opened in one burst (issue 5, comparison 5).

ferry-bench opens --hold N connections at once (every connect issued before
any is waited on), holds them idle, and runs 100 active 64-byte
request/response connections beside them; the server's RSS is read from
/proc before the burst and while everything is held.  Side by side:

  echo_upper      the tutorials' echo on libferry, event model
  ferryd          N authenticated sessions (every held connection completes
                  the HMAC handshake), the active load being command round
                  trips (`true`) over 10 warm sessions.  This ferryd runs
                  with --plaintext: ferry-bench (src/bench/, C) speaks the
                  plaintext handshake (client hello, HMAC proofs) and no
                  TLS, so these figures are ferryd in plaintext mode, the
                  mode issue 5's goals are set for
  python          the tutorials' socketserver.ThreadingTCPServer echo: a
                  thread per connection

Goals (issue 5): all N connected in under 3 s, RSS growth under 40 MiB
(4 KiB per connection), active p99 under 5 ms.  Quote these beside each
other, from one run: the machine is small and noisy.

    bench/c10k.py [--bin DIR] [--quick] [--hold N] [--reps N] [--json FILE]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402
from reqresp import PYTHON_ECHO, start_server  # noqa: E402


def raise_nofile():
    """Servers need a descriptor per held connection; the hard limit bounds it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def run_one(bench, argv_tail, pid, duration):
    """One ferry-bench run; the server's RSS sampled before and while held."""
    before = rss_kib(pid)
    p = subprocess.Popen([bench] + argv_tail + ["--json"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    peak = before or 0
    # Sample while the run lasts: a bounded number of 100 ms waits.
    for _ in range(int((duration + 30) * 10)):
        try:
            p.wait(timeout=0.1)
            break
        except subprocess.TimeoutExpired:
            r = rss_kib(pid)
            if r:
                peak = max(peak, r)
    else:
        p.kill()
    out, err = p.communicate(timeout=30)
    try:
        d = json.loads(out)
    except ValueError:
        return {"error": (err or "no output").strip().splitlines()[-1:]}
    hold = d.get("hold") or {}
    return {"connected": hold.get("connected"), "failed": hold.get("failed"),
            "failures": hold.get("failures"), "connect_ms": hold.get("connect_ms"),
            "dropped": hold.get("dropped"), "rps": d.get("requests_per_s"),
            "p99_us": (d.get("latency_us") or {}).get("p99"), "errors": d.get("errors"),
            "rss_before_kib": before, "rss_peak_kib": peak,
            "rss_growth_kib": (peak - before) if before else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(bl.ROOT, "build", "bin"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--hold", type=int)
    ap.add_argument("--reps", type=int)
    ap.add_argument("--install", action="store_true", help="(nothing to install here)")
    ap.add_argument("--json", default=os.path.join(bl.ROOT, "bench", "results", "c10k.json"))
    args = ap.parse_args()
    bl.set_name("c10k")
    raise_nofile()
    hold = args.hold or (2000 if args.quick else 10000)
    reps = args.reps or (1 if args.quick else 3)
    duration = 2 if args.quick else 5
    b = lambda name: os.path.join(args.bin, name)  # noqa: E731
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if limit < hold + 300:
        sys.exit("c10k: RLIMIT_NOFILE hard limit %d is too low for --hold %d (the server and "
                 "ferry-bench each need about %d descriptors)" % (limit, hold, hold + 300))

    results = {"machine": bl.machine_info(), "git": bl.git_describe(), "hold": hold,
               "reps": reps, "duration_s": duration, "load_start": os.getloadavg(),
               "ferryd_mode": "plaintext",
               "notes": ["ferryd runs with --plaintext: ferry-bench speaks ferry's plaintext "
                         "handshake (client hello, HMAC proofs), not TLS, so every held "
                         "session is authenticated but not encrypted"],
               "servers": {}}
    with tempfile.TemporaryDirectory(prefix="ferry-c10k-") as tmp:
        key = os.path.join(tmp, "key")
        subprocess.run([b("ferry"), "keygen", key], check=True, stdout=subprocess.DEVNULL)
        cap = str(hold + 1000)
        commands = {
            "echo_upper": [b("echo_upper"), "-l", "127.0.0.1:0", "--max-conns", cap],
            # --plaintext: ferry-bench speaks the plaintext handshake only
            "ferryd": [b("ferryd"), "-l", "127.0.0.1:0", "-k", key, "--plaintext", "--root",
                       os.path.join(tmp, "root"), "--max-conns", cap, "--max-unauth", cap,
                       # one source, the burst is the point: no random early drop
                       "--unauth-early-drop", "0"],
            "python": [sys.executable, "-c", PYTHON_ECHO],
        }
        samples = {n: [] for n in commands}
        baseline = {}
        # One server at a time: a server tearing down 10,000 threads (the
        # Python one) would otherwise disturb the next one's measurement.
        for name, argv0 in commands.items():
            addr = start_server(name, argv0, tmp)
            pid = bl._started[-1].pid
            baseline[name] = rss_kib(pid)
            load = (["exec", addr, "-k", key, "-c", "10"] if name == "ferryd"
                    else ["echo", addr, "-c", "100"])
            argv = load + ["--hold", str(hold), "-d", str(duration), "--warmup", "0.5",
                           "--connect-timeout", "20"]
            for rep in range(reps):
                r = run_one(b("ferry-bench"), argv, pid, duration)
                if r.get("rss_peak_kib") and baseline[name]:
                    # Against the server's RSS before its first burst: later
                    # bursts reuse what the first one allocated.
                    r["rss_growth_kib"] = r["rss_peak_kib"] - baseline[name]
                samples[name].append(r)
                bl.note("%-10s rep %d: %s" % (name, rep + 1, r))
            bl.stop_all()
        servers = commands
    results["load_end"] = os.getloadavg()

    def med(name, key):
        xs = sorted(s[key] for s in samples[name] if s.get(key) is not None)
        return xs[len(xs) // 2] if xs else None

    print("\n%d idle connections in one burst, beside active request/response "
          "(median of %d; RSS growth: the peak over all bursts above the server's RSS "
          "before the first)" % (hold, reps))
    print("%-18s %10s %10s %12s %14s %12s" % ("", "connected", "in (ms)", "RSS +MiB",
                                               "active req/s", "active p99"))
    fs = [s for s in samples["ferryd"] if s.get("connected") is not None and s["connected"] < hold]
    if fs:
        results["notes"].append(
            "ferryd (plaintext): %d of %d connections authenticated in a burst (failures: %s); "
            "a ferry-bench older than the client-first handshake (it waits for the server's "
            "hello, which ferryd now sends only after the client's) completes none"
            % (fs[0]["connected"], hold, fs[0].get("failures")))
    label = {"ferryd": "ferryd (plaintext)"}
    for name in servers:
        t = {k: med(name, k) for k in ("connected", "connect_ms", "rss_growth_kib", "rps", "p99_us")}
        results["servers"][name] = dict(t, samples=samples[name])
        if name == "ferryd":
            results["servers"][name]["mode"] = "plaintext"
        print("%-18s %10s %10s %12s %14s %12s" % (
            label.get(name, name), t["connected"], "-" if t["connect_ms"] is None else "%.0f" % t["connect_ms"],
            "-" if t["rss_growth_kib"] is None else "%.1f" % (t["rss_growth_kib"] / 1024),
            "-" if t["rps"] is None else "%.0f" % t["rps"],
            "-" if t["p99_us"] is None else "%.2f ms" % (t["p99_us"] / 1e3)))
    print("goals: all %d connected in < 3 s, RSS growth < 40 MiB, active p99 < 5 ms "
          "(ferryd's active load is command round trips, so its p99 is a spawn's)" % hold)
    for n in results["notes"]:
        print("note: " + n)
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(results, f, indent=1)
    print("raw results: %s" % os.path.relpath(args.json, bl.ROOT))


if __name__ == "__main__":
    main()
