#!/usr/bin/env python3
"""report.py - gather the benchmarks' results into one file and one table.

Reads what each benchmark wrote to bench/results/ (reqresp, throughput,
exec_latency, streaming, c10k, tty, fleet), and:

  - writes bench/results/latest.json: every result as it was written, plus
    one list of the goals with the measured value and whether it is met:
    issue 5's (set for ferry in plaintext mode, `--plaintext` on both sides,
    so its rows point at the plaintext columns) and issue 6's (encrypted
    ferry, the default TLS mode: put and get >= 2x scp and sftp, a fresh
    exec >= 30x `ssh localhost true`) and issue 12's (speed against fair
    baselines: a fresh exec against its floor and the fair ssh, a warm one
    against a local spawn and ssh's session, streaming and bulk in both
    modes) and issue 13's (`ferry exec -t` beside `ssh -t`: keystroke round
    trip, screen output, session start, on TLS) and issue 16's (one command
    on 20 and 100 hosts: `ferry exec -w` and `pdsh -R exec ... ferry exec
    %h` against pdsh -R ssh and clush, on TLS); every row says which mode
    it is;
  - draws docs/img/reqresp.png and docs/img/throughput.png with gnuplot
    (Debian's gnuplot-nox; skipped with a note when it is missing);
  - rewrites the block between the "generated:goals" markers in
    docs/BENCHMARKS.md: the table of goals and the plots.  The prose around
    it (how things were measured, what bounds a miss) is written by people
    and left alone.

bench/run.sh runs it after the benchmarks; it can be run on its own to
redraw from the results already there.  Not a benchmark: it measures
nothing.  python3 standard library only.

    bench/report.py [--results DIR] [--doc FILE] [--no-plots] [--install]
"""

import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

BEGIN = "<!-- generated:goals (bench/report.py rewrites this block) -->"
END = "<!-- /generated:goals -->"


def load(results, name):
    try:
        with open(os.path.join(results, name + ".json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def met(value, goal):
    """'>= 1.0x', '<= 1.5x', '> 10x', '< 3 s': whether value meets it."""
    m = re.match(r"\s*(>=|<=|>|<)\s*([0-9.]+)", goal or "")
    if value is None or not m:
        return None
    op, bound = m.group(1), float(m.group(2))
    return {">=": value >= bound, "<=": value <= bound, ">": value > bound, "<": value < bound}[op]


ISSUE_RX = re.compile(r"\s*\(issue (\d+)\)\s*$")

# Sections of the table: issue 5 numbers its five comparisons; issue 6 is
# about encryption (ferry's default TLS mode).
SECTIONS = {
    ("throughput", 5): "2. bulk transfer", ("exec_latency", 5): "3. command latency",
    ("streaming", 5): "4. output streaming",
    ("throughput", 6): "encrypted bulk transfer", ("exec_latency", 6): "encrypted command latency",
    ("streaming", 6): "encrypted output streaming",
    ("throughput", 12): "bulk transfer", ("exec_latency", 12): "command latency",
    ("streaming", 12): "output streaming",
    ("tty", 13): "interactive terminals",
    ("fleet", 16): "fleets",
    ("ansible", 16): "Ansible playbook",
}


def goals_from(results):
    rows = []

    def add(section, what, value, unit, goal, issue=5):
        rows.append({"issue": issue, "section": section, "what": what, "value": value,
                     "unit": unit, "goal": goal, "met": met(value, goal)})

    rr = load(results, "reqresp")
    if rr:
        r256 = rr["ratios"].get("256", {})
        add("1. request/response", "echo_upper / minimal epoll echo, 256 conn",
            r256.get("echo_upper/bench-echo"), "x", ">= 0.9x")
        add("1. request/response", "echo_upper / tutorials' Python server, 256 conn",
            r256.get("echo_upper/python"), "x", "> 10x")
        add("1. request/response", "frame_echo / echo_upper, 256 conn",
            r256.get("frame_echo/echo_upper"), "x", ">= 0.8x")
    for name in ("throughput", "exec_latency", "streaming", "tty", "fleet", "ansible"):
        d = load(results, name)
        # A ratio's goal names its issue: ">= 3x (issue 5)", ">= 2x (issue 6)".
        for r in (d or {}).get("ratios", []):
            if r.get("goal"):
                m = ISSUE_RX.search(r["goal"])
                issue = int(m.group(1)) if m else 5
                add(SECTIONS.get((name, issue), name), r["what"],
                    r.get("value", r.get("ratio")), r.get("unit", "x"),
                    ISSUE_RX.sub("", r["goal"]), issue)
        if name == "streaming" and d:
            mem = d.get("memory") or {}
            # issue 5's memory goal is for the plaintext mode (streaming.py
            # keeps peaks per mode; results from before the modes have one set)
            per_mode = mem.get("plaintext")
            label = " (plaintext)"
            if per_mode is None and "ferry_rss_peak_bytes" in mem:
                per_mode, label = mem, ""
            for who in ("ferry", "ferryd"):
                peak = (per_mode or {}).get(who + "_rss_peak_bytes")
                if peak is not None:
                    add(SECTIONS[(name, 5)], "peak RSS of %s%s while streaming" % (who, label),
                        peak / (1 << 20), "MiB", "< 32 MiB")
    ck = load(results, "c10k")
    if ck:
        hold = ck.get("hold")
        for name in ("echo_upper", "ferryd"):
            s = ck["servers"].get(name) or {}
            # c10k.py runs ferryd --plaintext (ferry-bench speaks no TLS)
            label = name if name != "ferryd" or not ck.get("ferryd_mode") else \
                "ferryd (%s)" % ck["ferryd_mode"]
            ms = s.get("connect_ms")
            add("5. C10K", "%s: %s connections in one burst, seconds" % (label, hold),
                None if ms is None else ms / 1e3, "s", "< 3 s")
            kib = s.get("rss_growth_kib")
            add("5. C10K", "%s: RSS growth for them" % label,
                None if kib is None else kib / 1024, "MiB", "< 40 MiB")
        p99 = (ck["servers"].get("echo_upper") or {}).get("p99_us")
        add("5. C10K", "echo_upper: active p99 beside them", None if p99 is None else p99 / 1e3,
            "ms", "< 5 ms")
    # issue 5's rows first (in its order), then issue 6's, 12's, 13's, 16's
    rows.sort(key=lambda r: r["issue"])
    return rows


def fmt(v, unit):
    if v is None:
        return "-"
    if unit == "x":
        return "%.2fx" % v
    return "%.2f %s" % (v, unit)


def table(rows):
    """Issue 5's goals are for ferry --plaintext, issue 6's for ferry's
    default TLS mode; each row's comparison names the mode it measured."""
    out = ["| issue | comparison | measured | goal | |", "| --- | --- | ---: | --- | --- |"]
    for r in rows:
        verdict = {True: "met", False: "**missed**", None: "-"}[r["met"]]
        out.append("| %s | %s: %s | %s | %s | %s |" % (
            r.get("issue", 5), r["section"], r["what"], fmt(r["value"], r["unit"]), r["goal"],
            verdict))
    return "\n".join(out)


def plot(results, imgdir):
    """Two bar charts with gnuplot; returns the images drawn."""
    gp = shutil.which("gnuplot")
    if not gp:
        bl.note("gnuplot not installed (apt-get install gnuplot-nox): no plots")
        return []
    os.makedirs(imgdir, exist_ok=True)
    drawn = []
    with tempfile.TemporaryDirectory(prefix="ferry-report-") as tmp:
        rr = load(results, "reqresp")
        if rr:
            data = os.path.join(tmp, "reqresp.dat")
            with open(data, "w") as f:
                f.write("server 1 16 256\n")
                for name, per in rr["servers"].items():
                    f.write("%s %s\n" % (name, " ".join(str((per.get(c) or {}).get("rps") or 0)
                                                         for c in ("1", "16", "256"))))
            drawn.append(("reqresp.png", data, "requests/s, 64-byte echo (median)",
                          "using 2:xtic(1) title '1 conn', '' using 3 title '16 conn', "
                          "'' using 4 title '256 conn'"))
        tp = load(results, "throughput")
        if tp:
            data = os.path.join(tmp, "throughput.dat")
            with open(data, "w") as f:
                f.write("tool upload download\n")
                for name, per in tp["results"].items():
                    up = (per.get("upload") or {}).get("median_gbps") or 0
                    down = (per.get("download") or {}).get("median_gbps") or 0
                    # quoted: "ferry (TLS)" and "ferry (plaintext)" are two bars
                    label = name if name.startswith("ferry") else name.split(" ")[0]
                    f.write('"%s" %s %s\n' % (label.replace('"', "'"), up, down))
            size = (tp.get("params") or {}).get("size") or (1 << 30)
            size_s = ("%g GiB" % (size / (1 << 30))) if size >= (1 << 30) else \
                ("%g MiB" % (size / (1 << 20)))
            drawn.append(("throughput.png", data, "GB/s, %s over loopback (median)" % size_s,
                          "using 2:xtic(1) title 'upload', '' using 3 title 'download'"))
        made = []
        for png, data, ylabel, using in drawn:
            script = ("set terminal png size 800,400 noenhanced\nset output '%s'\n"
                      "set style data histograms\nset style histogram cluster gap 1\n"
                      "set style fill solid 0.8 border -1\nset key autotitle columnhead top right\n"
                      "set ylabel '%s'\nset yrange [0:*]\nset grid ytics\nset xtics rotate by -20\n"
                      "plot '%s' %s\n" % (os.path.join(imgdir, png), ylabel, data, using))
            r = subprocess.run([gp], input=script, text=True, capture_output=True, timeout=60)
            if r.returncode == 0:
                made.append(png)
            else:
                bl.note("gnuplot failed for %s: %s" % (png, r.stderr.strip()[:200]))
        return made


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", default=os.path.join(bl.ROOT, "bench", "results"))
    ap.add_argument("--doc", default=os.path.join(bl.ROOT, "docs", "BENCHMARKS.md"))
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--install", action="store_true", help="apt-get install gnuplot-nox (root)")
    # run.sh hands every script the same arguments (--quick, --bin ...):
    # those that are not ours are not errors here.
    args, _ = ap.parse_known_args()
    bl.set_name("report")
    if args.install and not args.no_plots:
        why = bl.apt_install(["gnuplot-nox"], lambda: shutil.which("gnuplot"), "gnuplot")
        if why:
            bl.note(why)

    rows = goals_from(args.results)
    latest = {"generated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "git": bl.git_describe(), "goals": rows, "results": {}}
    for name in ("reqresp", "throughput", "exec_latency", "streaming", "c10k", "tty", "fleet"):
        d = load(args.results, name)
        if d is not None:
            latest["results"][name] = d
    with open(os.path.join(args.results, "latest.json"), "w") as f:
        json.dump(latest, f, indent=1)

    imgs = [] if args.no_plots else plot(args.results, os.path.join(os.path.dirname(args.doc), "img"))
    block = [BEGIN, "", table(rows), ""]
    for png in imgs:
        block += ["![%s](img/%s)" % (png[:-4], png), ""]
    block.append(END)
    with open(args.doc) as f:
        doc = f.read()
    if BEGIN in doc and END in doc:
        a, b = doc.index(BEGIN), doc.index(END) + len(END)
        doc = doc[:a] + "\n".join(block) + doc[b:]
        with open(args.doc, "w") as f:
            f.write(doc)
        bl.note("rewrote the goals block of %s" % os.path.relpath(args.doc, bl.ROOT))
    else:
        bl.note("%s has no generated:goals markers: left alone" % os.path.relpath(args.doc, bl.ROOT))
    print(table(rows))
    print("\nwrote %s" % os.path.relpath(os.path.join(args.results, "latest.json"), bl.ROOT))


if __name__ == "__main__":
    main()
