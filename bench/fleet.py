#!/usr/bin/env python3
"""fleet.py - one command on many hosts (issue 16): `ferry exec -w` and
`pdsh -R exec ... ferry exec %h` beside pdsh -R ssh and clush.

The hosts are the loopback addresses 127.0.0.2 to 127.0.0.(N+1).  One
throw-away sshd (the fair baseline user, sshlib.py) and two ferryds (TLS and
--plaintext) each listen on 0.0.0.0, so every one of those addresses is a
host with an sshd and a ferryd, the same daemons behind all of them.  OpenSSH
caps an sshd at 16 listening sockets (MAX_LISTEN_SOCKS: past them it logs
"Too many listen sockets" and serves the first 16), so 100 addresses cannot
be listed one by one; listening on 0.0.0.0 is safe because the whole
benchmark runs in a network namespace of its own (`unshare -n`, loopback
brought up inside): the daemons are reachable from nothing but the
benchmark.  That needs root (as the fair baseline user does); without it the
benchmark says why and exits 0.

For each host count (--hosts, 20 and 100) and command (`true`, `uname -r`),
interleaved round-robin for --reps repetitions, the wall time of one run
over all the hosts of:

  ferry exec -w (TLS|plaintext)     ferry exec -F CONF -f 64 -w H1,H2,... CMD
                                    one client process for every host; skipped
                                    with a note while `ferry exec --help` does
                                    not offer -w (it lands with issue 16's
                                    fleet client)
  pdsh -R exec ferry (TLS|plaintext)  pdsh -R exec -f 64 -w ... ferry exec -F CONF %h CMD
                                    a ferry client process per host
  pdsh -R ssh                       pdsh -R ssh -f 64 -w ... CMD (ssh per host)
  clush                             clush -f 64 -w ... CMD (ssh per host)

Every run's output is checked: exit status 0, and for `uname -r` exactly one
line `HOST: RELEASE` per host.  A run that fails counts as an error, not a
sample.  The CPU time of each run is kept beside its wall time: the client
side (every process the run waited for: pdsh, its ssh or ferry clients) and
the server side (the sshd or ferryd that served it, with the sessions and
commands it reaped), per host, which is what bounds a figure on two cores.

Ratios (medians of one run):
  faster of pdsh -R ssh and clush / ferry exec -w (TLS)      >= 10x (issue 16)
  pdsh -R ssh / pdsh -R exec ferry (TLS)                     >= 3x (issue 16)
and the same for plaintext, without a goal.  python3 standard library only.

    sudo bench/fleet.py [--quick] [--hosts 20,100] [--reps N] [--fanout N]
                        [--bin DIR] [--json FILE] [--install]
"""

import argparse
import atexit
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
import sshlib  # noqa: E402
from benchlib import DEVNULL, ROOT, fmt_ms, note, ratio, summary  # noqa: E402

# Set in the copy of this script that runs inside the network namespace.
NETNS_ENV = "FERRY_BENCH_FLEET_NETNS"
COMMANDS = ("true", "uname -r")
LINE_RX = re.compile(r"^(\S+?)(?::\d+)?: (.*)$")


def netns_why_not():
    """None when we can run in a network namespace of our own, else why not."""
    if os.geteuid() != 0:
        return "not root: unshare -n (a private network namespace) needs root"
    for tool in ("unshare", "ip"):
        if not shutil.which(tool):
            return "%s not found (util-linux, iproute2)" % tool
    return None


def enter_netns():
    """Re-run this script inside a new network namespace and exit with its
    status; inside it (NETNS_ENV set), bring loopback up and return."""
    if os.environ.get(NETNS_ENV) == "1":
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True, timeout=30)
        return
    p = benchlib.start(["unshare", "-n", "--", sys.executable, os.path.abspath(__file__)] +
                       sys.argv[1:], env=dict(os.environ, **{NETNS_ENV: "1"}))
    try:
        status = p.wait()
    except KeyboardInterrupt:
        p.send_signal(signal.SIGINT)
        status = p.wait()
    sys.exit(status if status >= 0 else 128 - status)


def proc_cpu(pid):
    """CPU seconds of pid and the children it has reaped (utime + stime +
    cutime + cstime from /proc/PID/stat)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _own_group():
    """In the child: a process group of its own (a timed-out run is killed
    whole, pdsh's ssh clients too) and dying with the benchmark."""
    os.setsid()
    benchlib._die_with_the_bench()


def timed(argv, env, server_pid, timeout):
    """One run: (wall s, client CPU s, server CPU s, exit status, stdout,
    stderr), or a status of None when it timed out."""
    server0, client0 = proc_cpu(server_pid), children_cpu()
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdin=DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env, preexec_fn=_own_group)
    try:
        out, err = p.communicate(timeout=timeout)
        status = p.returncode
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        status = None
    wall = time.monotonic() - t0
    return (wall, children_cpu() - client0, proc_cpu(server_pid) - server0, status,
            out.decode(errors="replace"), err.decode(errors="replace"))


def check_output(cmd, hosts, status, out, err):
    """None when a run did what it should, else what was wrong."""
    if status is None:
        return "timed out"
    if status != 0:
        return "exit status %d: %s" % (status, (err.strip().splitlines() or [""])[-1][:200])
    lines = out.splitlines()
    if cmd == "true":
        return None if not lines else "unexpected output: %r" % lines[:2]
    release, seen = platform.release(), []
    for line in lines:
        m = LINE_RX.match(line)
        if not m or m.group(2) != release:
            return "unexpected line %r" % line[:200]
        seen.append(m.group(1))
    if sorted(seen) != sorted(hosts):
        return "%d lines from %d distinct hosts, expected one from each of %d" % (
            len(seen), len(set(seen)), len(hosts))
    return None


def has_dash_w(bindir):
    """Whether this ferry's exec takes -w HOSTS (issue 16's fleet client)."""
    r = subprocess.run([os.path.join(bindir, "ferry"), "exec", "--help"], stdin=DEVNULL,
                       capture_output=True, text=True, timeout=10)
    return re.search(r"^\s+-w[ ,]", r.stdout, re.M) is not None


def ferry_conf(tmp, fd):
    """A ferry host configuration file sending every 127.0.0.* to fd's port
    with its key and mode, as a fleet's would."""
    path = os.path.join(tmp, "ferry-%s.conf" % fd.mode)
    with open(path, "w") as f:
        f.write("Host 127.0.0.*\n    Port %d\n    KeyFile %s\n    Plaintext %s\n" %
                (fd.port, fd.key, "yes" if fd.plaintext else "no"))
    os.chmod(path, 0o600)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 repetitions instead of 5")
    ap.add_argument("--hosts", default="20,100", help="host counts (20,100)")
    ap.add_argument("--reps", type=int, default=5, help="repetitions (5)")
    ap.add_argument("--fanout", type=int, default=64, help="connections at once (64)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per run (300)")
    ap.add_argument("--install", action="store_true",
                    help="as root, apt-get pdsh, clustershell and the OpenSSH server")
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    ap.add_argument("--json", default=os.path.join(ROOT, "bench", "results", "fleet.json"))
    args = ap.parse_args()
    args.bin = os.path.abspath(args.bin)
    args.json = os.path.abspath(args.json)
    if args.quick:
        args.reps = 2
    sizes = [int(x) for x in args.hosts.split(",") if x]
    if not sizes or min(sizes) < 1 or max(sizes) > 250:
        ap.error("--hosts: counts from 1 to 250 (127.0.0.2 to 127.0.0.251)")
    benchlib.set_name("fleet")
    notes = []
    why = netns_why_not()
    if why:
        note("skipped: " + why)
        return
    inside = os.environ.get(NETNS_ENV) == "1"
    # apt-get before the namespace, which has no network
    if args.install and not inside:
        for pkgs, have in ((["pdsh"], lambda: shutil.which("pdsh")),
                           (["clustershell"], lambda: shutil.which("clush"))):
            w = benchlib.apt_install(pkgs, have, pkgs[0])
            if w:
                note(w)
    missing = sshlib.ensure_sshd(args.install and not inside)
    enter_netns()
    started_at, machine = time.time(), benchlib.machine_info()
    tools = {"pdsh": shutil.which("pdsh"), "clush": shutil.which("clush")}
    tmp = tempfile.mkdtemp(prefix="ferry-bench-fleet-")
    atexit.register(shutil.rmtree, tmp, True)
    snap = os.path.join(tmp, "bin")
    os.mkdir(snap)
    for prog in ("ferry", "ferryd"):
        shutil.copy2(os.path.join(args.bin, prog), snap)
    os.chmod(tmp, 0o711)
    # Fixed ports: the namespace is ours, and a ferryd restarted by
    # Ferryd.ensure keeps the port the configuration files name.
    fds = {m: benchlib.Ferryd(snap, tmp, classic=False, plaintext=(m == "plaintext"),
                              listen="0.0.0.0:%d" % port)
           for m, port in (("TLS", 7171), ("plaintext", 7172))}
    confs = {m: ferry_conf(tmp, fd) for m, fd in fds.items()}
    sshd = None
    if missing:
        notes.append("ssh columns skipped: " + missing)
    else:
        sshd = sshlib.Sshd(tmp, listen="0.0.0.0", hosts="127.0.0.*")
        if not sshd.user.fair:
            notes.append("ssh baseline UNFAIR: " + sshd.user.why)
    dash_w = has_dash_w(snap)
    if not dash_w:
        notes.append("ferry exec -w columns skipped: this ferry's `exec --help` offers no -w "
                     "(issue 16's fleet client is not in this build); the goal rows "
                     "against it stay empty")
    for name, path in tools.items():
        if not path:
            notes.append("%s columns skipped: %s not installed (rerun as root with "
                         "--install)" % (name, name))
    for n in notes:
        note(n)

    env = dict(os.environ, PATH=snap + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin"))
    ssh_env = env
    if sshd:
        # pdsh runs `ssh ARGS`: the client config (user, key, known hosts)
        # and no connection sharing, as clush's -o below
        ssh_env = dict(env, PDSH_SSH_ARGS="-F %s -o ControlPath=none -a -x %%h"
                       % sshd.client_cfg)
    fan = str(args.fanout)

    def columns(hosts, cmd):
        """name -> (argv, env, pid of the server it loads)"""
        hl = ",".join(hosts)
        cols = {}
        for m, fd in fds.items():
            if dash_w:
                cols["ferry exec -w (%s)" % m] = (
                    ["ferry", "exec", "-F", confs[m], "-f", fan, "-w", hl, cmd], env, fd.proc.pid)
            if tools["pdsh"]:
                cols["pdsh -R exec ferry (%s)" % m] = (
                    ["pdsh", "-R", "exec", "-f", fan, "-w", hl, "ferry", "exec", "-F",
                     confs[m], "%h", cmd], env, fd.proc.pid)
        if sshd and tools["pdsh"]:
            cols["pdsh -R ssh"] = (["pdsh", "-R", "ssh", "-f", fan, "-w", hl, cmd], ssh_env,
                                   sshd.proc.pid)
        if sshd and tools["clush"]:
            cols["clush"] = (["clush", "-f", fan, "-o", "-F %s -o ControlPath=none"
                              % sshd.client_cfg, "-w", hl, cmd], env, sshd.proc.pid)
        return cols

    versions = dict(benchlib.ferry_versions(snap),
                    pdsh=benchlib.version_of(["pdsh", "-V"]) if tools["pdsh"] else None,
                    clush=benchlib.version_of(["clush", "--version"]) if tools["clush"] else None,
                    ssh=benchlib.version_of(["ssh", "-V"], stderr=True))

    # pdsh and clush log in as the fair user, as ssh does (their own
    # arguments could name another): checked once, through one host
    logins = {}
    for name, (argv, e, pid) in columns(["127.0.0.2"], "id -un").items():
        if name in ("pdsh -R ssh", "clush") and sshd.user.fair:
            r = timed(argv, e, pid, args.timeout)
            logins[name] = r[4].strip()
            if r[3] != 0 or logins[name] != "127.0.0.2: " + sshd.user.name:
                raise RuntimeError("%s does not log in as %s: %r (stderr %s)" % (
                    name, sshd.user.name, logins[name], r[5].strip()[-300:]))

    # warm-up: the page cache, each tool's first start, one run of each
    warm_hosts = ["127.0.0.%d" % (2 + i) for i in range(min(sizes))]
    errors = {}
    for name, (argv, e, pid) in columns(warm_hosts, "true").items():
        r = timed(argv, e, pid, args.timeout)
        bad = check_output("true", warm_hosts, *r[3:])
        if bad:
            note("warm-up of %s failed: %s" % (name, bad))

    results = {}
    for size in sizes:
        hosts = ["127.0.0.%d" % (2 + i) for i in range(size)]
        for cmd in COMMANDS:
            cols = columns(hosts, cmd)
            key = "%d hosts, %s" % (size, cmd)
            note("%s: %d reps of %s" % (key, args.reps, ", ".join(cols)))
            got = {name: {"wall_s": [], "client_cpu_s": [], "server_cpu_s": []} for name in cols}
            names = list(cols)
            for rep in range(args.reps):
                for f in fds.values():
                    f.ensure(notes, key)
                for name in names[rep % len(names):] + names[:rep % len(names)]:
                    argv, e, pid = cols[name]
                    wall, ccpu, scpu, status, out, err = timed(argv, e, pid, args.timeout)
                    bad = check_output(cmd, hosts, status, out, err)
                    if bad:
                        errors.setdefault("%s: %s" % (key, name), []).append(bad)
                        continue
                    got[name]["wall_s"].append(wall)
                    got[name]["client_cpu_s"].append(ccpu)
                    got[name]["server_cpu_s"].append(scpu)
            results[key] = {}
            for name, g in got.items():
                s = dict(summary(g["wall_s"]), samples=g["wall_s"])
                for k in ("client_cpu_s", "server_cpu_s"):
                    cpu = summary(g[k]).get("median")
                    s[k + "_median"] = cpu
                    s[k.replace("_s", "_per_host_s")] = None if cpu is None else cpu / size
                    s[k + "_samples"] = g[k]
                results[key][name] = s
    for what, bad in errors.items():
        notes.append("%s: %d failed run(s), not counted; first: %s" % (what, len(bad), bad[0]))

    # ---------------------------------------------------------------- ratios
    fair = "(%s)" % (sshd.user.label if sshd else "fair")
    med = lambda key, col: (results[key].get(col) or {}).get("median")
    ratios = []
    for size in sizes:
        for cmd in COMMANDS:
            key = "%d hosts, %s" % (size, cmd)
            ssh_meds = [v for v in (med(key, "pdsh -R ssh"), med(key, "clush")) if v]
            fastest = min(ssh_meds) if ssh_meds else None
            for m in ("TLS", "plaintext"):
                goal = m == "TLS"
                ratios.append({"what": "%s: faster of pdsh -R ssh, clush %s / ferry exec -w (%s)"
                               % (key, fair, m),
                               "ratio": ratio(fastest, med(key, "ferry exec -w (%s)" % m)),
                               "goal": ">= 10x (issue 16)" if goal else None})
                ratios.append({"what": "%s: pdsh -R ssh %s / pdsh -R exec ferry (%s)"
                               % (key, fair, m),
                               "ratio": ratio(med(key, "pdsh -R ssh"),
                                              med(key, "pdsh -R exec ferry (%s)" % m)),
                               "goal": ">= 3x (issue 16)" if goal else None})
            ratios.append({"what": "%s: pdsh -R exec ferry (TLS) / ferry exec -w (TLS)" % key,
                           "ratio": ratio(med(key, "pdsh -R exec ferry (TLS)"),
                                          med(key, "ferry exec -w (TLS)")), "goal": None})
            ratios.append({"what": "%s: clush / pdsh -R ssh %s" % (key, fair),
                           "ratio": ratio(med(key, "clush"), med(key, "pdsh -R ssh")),
                           "goal": None})
    # rows without a figure stay only where they carry a goal (an empty
    # goal row says the column was missing)
    ratios = [r for r in ratios if r["ratio"] is not None or r["goal"]]

    benchlib.stop_all()
    doc = {
        "benchmark": "fleet",
        "issue": 16,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started_at)),
        "duration_s": round(time.time() - started_at, 1),
        "machine": dict(machine, loadavg_end=os.getloadavg()),
        "commit": benchlib.git_describe(),
        "versions": versions,
        "ssh_baseline": dict(sshd.describe(), tools_log_in_as=logins) if sshd else None,
        "network": "a network namespace of its own (unshare -n); hosts 127.0.0.2-(N+1), "
                   "every daemon on 0.0.0.0",
        "params": {"hosts": sizes, "reps": args.reps, "fanout": args.fanout,
                   "quick": args.quick, "commands": list(COMMANDS)},
        "ferry_exec_w": dash_w,
        "units": "seconds (wall per run over all hosts; CPU medians per run and per host)",
        "results": results,
        "ratios": ratios,
        "notes": notes,
    }
    print("fleet: %d cpus, load %.2f -> %.2f; medians of %d reps, fanout %d" %
          (os.cpu_count(), doc["machine"]["loadavg_start"][0],
           doc["machine"]["loadavg_end"][0], args.reps, args.fanout))
    if sshd:
        print(sshlib.ssh_baseline_line(sshd))
    for key, cols in results.items():
        print("\n" + key)
        print("  %-30s %10s %10s  %s" % ("", "wall", "p90", "CPU per host: client, server"))
        for name, s in cols.items():
            print("  %-30s %10s %10s  %s, %s" % (
                name, fmt_ms(s.get("median")), fmt_ms(s.get("p90")),
                fmt_ms(s.get("client_cpu_per_host_s")), fmt_ms(s.get("server_cpu_per_host_s"))))
    benchlib.finish(doc, ratios, notes, args.json, width=80)


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    benchlib.run(main)
