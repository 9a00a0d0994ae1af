#!/usr/bin/env python3
"""reqresp.py - request/response throughput and latency (issue 5, comparison 1).

64-byte messages over 1, 16 and 256 connections, driven by ferry-bench
(build/bin/ferry-bench: epoll, never the bottleneck), side by side in one run:

  bench-echo      the machine's ceiling: a minimal epoll echo written for the
                  benchmark (one read, one write per request, no framework)
  echo_upper      the tutorials' upper-casing echo on libferry, event model
  frame_echo      the frame echo on libferry: what the frame codec costs
  python          the tutorials' own socketserver.ThreadingTCPServer echo
                  (recv(1024), sendall(data.upper())), in its own process

Servers are measured round-robin within each connection count, --reps times
each, --duration seconds per measurement after a warm-up; the table gives the
median requests/s and the median p99 latency, and the ratios the issue sets
goals for: echo_upper / bench-echo at 256 connections (goal >= 0.9),
frame_echo / echo_upper (goal >= 0.8), echo_upper / python (goal > 10).

The machine is small and noisy: quote the ratios, not the absolute rates.
Every run is bounded in time; loopback only; python3 standard library only.

    bench/reqresp.py [--bin DIR] [--quick] [--reps N] [--duration S] [--json FILE]
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

PYTHON_ECHO = r'''
import socketserver, sys
class Myserver(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            try:
                data = self.request.recv(1024)
                if not data:
                    break
                self.request.sendall(data.upper())
            except Exception:
                break
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer.request_queue_size = 1024
s = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Myserver)
s.daemon_threads = True
print("listening on tcp 127.0.0.1:%d" % s.server_address[1], file=sys.stderr, flush=True)
s.serve_forever()
'''

LISTEN_RX = re.compile(r"listening on (?:tcp )?(\S+:\d+)")


def start_server(name, argv, tmp):
    """Start a server that logs 'listening on [tcp] ADDR' on stderr; return ADDR."""
    log = open(os.path.join(tmp, name + ".log"), "w+")
    bl.start(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)

    def ready():
        log.flush()
        with open(log.name) as f:
            m = LISTEN_RX.search(f.read())
        return m.group(1) if m else None
    addr = bl.wait_for(ready, 10)
    if not addr:
        raise RuntimeError("%s did not start (see %s)" % (name, log.name))
    return addr


def measure(bench, mode, addr, conns, duration, warmup):
    argv = [bench, mode, addr, "-c", str(conns), "-s", "64", "-d", str(duration),
            "--warmup", str(warmup), "--json"]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=duration + warmup + 60)
    try:
        d = json.loads(p.stdout)
    except ValueError:
        return {"error": (p.stderr or "no output").strip().splitlines()[-1:]}
    return {"rps": d["requests_per_s"], "p50_us": d["latency_us"]["p50"],
            "p99_us": d["latency_us"]["p99"], "errors": d["errors"]}


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    return xs[len(xs) // 2] if xs else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(bl.ROOT, "build", "bin"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reps", type=int)
    ap.add_argument("--duration", type=float)
    ap.add_argument("--install", action="store_true", help="(nothing to install here)")
    ap.add_argument("--json", default=os.path.join(bl.ROOT, "bench", "results", "reqresp.json"))
    args = ap.parse_args()
    bl.set_name("reqresp")
    reps = args.reps or (1 if args.quick else 3)
    duration = args.duration or (1.0 if args.quick else 3.0)
    warmup = 0.3 if args.quick else 0.5
    conn_counts = [1, 16, 256]
    b = lambda name: os.path.join(args.bin, name)  # noqa: E731
    for prog in ("ferry-bench", "bench-echo", "echo_upper", "frame_echo"):
        if not os.access(b(prog), os.X_OK):
            sys.exit("reqresp: %s not found: build first (make, or --bin DIR)" % b(prog))

    info = bl.machine_info()
    results = {"machine": info, "reps": reps, "duration_s": duration, "size": 64,
               "git": bl.git_describe(), "servers": {}, "load_start": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="ferry-reqresp-") as tmp:
        servers = [
            ("bench-echo", "echo", start_server("bench-echo", [b("bench-echo"), "-l", "127.0.0.1:0"], tmp)),
            ("echo_upper", "echo", start_server("echo_upper", [b("echo_upper"), "-l", "127.0.0.1:0",
                                                              "--max-conns", "4096"], tmp)),
            ("frame_echo", "frame", start_server("frame_echo", [b("frame_echo"), "-l", "127.0.0.1:0",
                                                               "--max-conns", "4096"], tmp)),
            ("python", "echo", start_server("python", [sys.executable, "-c", PYTHON_ECHO], tmp)),
        ]
        samples = {name: {c: [] for c in conn_counts} for name, _, _ in servers}
        for conns in conn_counts:
            for rep in range(reps):
                for name, mode, addr in servers:
                    r = measure(b("ferry-bench"), mode, addr, conns, duration, warmup)
                    samples[name][conns].append(r)
                    bl.note("%-10s c=%-3d rep %d: %s" % (name, conns, rep + 1,
                            "%.0f req/s, p99 %.0f us" % (r["rps"], r["p99_us"]) if "rps" in r
                            else r["error"]))
        bl.stop_all()
    results["load_end"] = os.getloadavg()

    table = {}
    for name, _, _ in servers:
        table[name] = {}
        for conns in conn_counts:
            ok = [s for s in samples[name][conns] if "rps" in s]
            table[name][conns] = {"rps": median([s["rps"] for s in ok]),
                                  "p99_us": median([s["p99_us"] for s in ok]),
                                  "errors": sum(s.get("errors", 0) for s in ok),
                                  "failed_runs": len(samples[name][conns]) - len(ok)}
    results["servers"] = {n: {str(c): v for c, v in t.items()} for n, t in table.items()}
    results["samples"] = {n: {str(c): v for c, v in t.items()} for n, t in samples.items()}
    ratios = {}
    for conns in conn_counts:
        g = lambda n: table[n][conns]["rps"]  # noqa: E731
        ratios[str(conns)] = {
            "echo_upper/bench-echo": bl.ratio(g("echo_upper"), g("bench-echo")),
            "frame_echo/echo_upper": bl.ratio(g("frame_echo"), g("echo_upper")),
            "echo_upper/python": bl.ratio(g("echo_upper"), g("python")),
        }
    results["ratios"] = ratios
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(results, f, indent=1)

    print("\nrequests/s (median of %d x %.0f s), p99 latency in parentheses, 64-byte messages" %
          (reps, duration))
    print("%-12s" % "" + "".join("%22s" % ("%d conn" % c) for c in conn_counts))
    for name, _, _ in servers:
        cells = []
        for c in conn_counts:
            t = table[name][c]
            cells.append("-" if t["rps"] is None else "%.0f (%.2f ms)" % (t["rps"], t["p99_us"] / 1e3))
        print("%-12s" % name + "".join("%22s" % x for x in cells))
    print()
    for c in conn_counts:
        r = ratios[str(c)]
        print("%3d conn: echo_upper/bench-echo %s   frame_echo/echo_upper %s   echo_upper/python %s" %
              (c, bl.fmt_x(r["echo_upper/bench-echo"]), bl.fmt_x(r["frame_echo/echo_upper"]),
               bl.fmt_x(r["echo_upper/python"])))
    print("\nraw results: %s" % os.path.relpath(args.json, bl.ROOT))


if __name__ == "__main__":
    main()
