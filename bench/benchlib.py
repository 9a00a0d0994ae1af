#!/usr/bin/env python3
"""benchlib.py - what the benchmarks in bench/ share (not a benchmark itself:
bench/run.sh skips *lib.py, and running it only says so).

Process bookkeeping (every process a benchmark starts is stopped at exit),
statistics, machine facts, a ferryd with a fresh key in either mode (TLS,
ferryd's default, or --plaintext; Ferryd.client() builds the matching ferry
command line), and installing Debian packages with apt-get (root only,
without starting the packages' system services).  The ssh baseline (a
throw-away sshd and the dedicated user it logs in) is sshlib.py's.  python3
standard library only.
"""

import atexit
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEVNULL = subprocess.DEVNULL

# Every process this script starts, so that they are all stopped at exit,
# and the servers' logs, shown if the run fails.
_started = []
_logs = []


NAME = ["bench"]


def set_name(name):
    """The prefix of note()'s lines: the benchmark's name."""
    NAME[0] = name


def note(msg):
    print(NAME[0] + ": " + msg, file=sys.stderr, flush=True)


def stop_all():
    for p in reversed(_started):
        if p.poll() is None:
            try:
                p.terminate()
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
            except ProcessLookupError:
                pass
    _started.clear()


atexit.register(stop_all)


def _die_with_the_bench():
    """In the child, before exec: SIGTERM when the benchmark's process dies,
    however it dies (a SIGKILL, a test's timeout, runs no atexit)."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def start(argv, **kw):
    if "preexec_fn" not in kw and "start_new_session" not in kw:
        kw["preexec_fn"] = _die_with_the_bench
    p = subprocess.Popen(argv, **kw)
    _started.append(p)
    return p


# ---------------------------------------------------------------- statistics

def percentile(xs, q):
    """Nearest-rank percentile, q in [0, 100]."""
    s = sorted(xs)
    if not s:
        return None
    k = max(0, min(len(s) - 1, int(-(-q * len(s) // 100)) - 1))
    return s[k]


def summary(xs):
    if not xs:
        return {"n": 0}
    return {
        "n": len(xs),
        "median": percentile(xs, 50),
        "p90": percentile(xs, 90),
        "min": min(xs),
        "max": max(xs),
        "mean": sum(xs) / len(xs),
    }


def fmt_ms(sec):
    if sec is None:
        return "-"
    ms = sec * 1e3
    if ms >= 100:
        return "%.0f ms" % ms
    if ms >= 10:
        return "%.1f ms" % ms
    if ms >= 1:
        return "%.2f ms" % ms
    return "%.0f us" % (ms * 1e3)


def ratio(a, b):
    if a is None or b is None or b <= 0:
        return None
    return a / b


def fmt_x(r):
    return "-" if r is None else ("%.1fx" % r if r < 100 else "%.0fx" % r)


# -------------------------------------------------------------- environment

def wait_for(pred, timeout, step=0.02):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine_info():
    info = {
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nproc": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
    }
    try:
        info["uname"] = " ".join(platform.uname())
    except OSError:
        pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info




# ferryd's log lines naming its ports: "classic protocol on 127.0.0.1:P: ..."
# and "listening on tcp ADDR:P (event model)"
_CLASSIC_RX = re.compile(r"classic protocol on \S+?:(\d+)")
_LISTENING_RX = re.compile(r"listening on tcp \S+:(\d+)")


class Ferryd:
    """ferryd on 127.0.0.1:0 (or listen: 0.0.0.0:0 serves every loopback
    address, for fleet.py inside its own network namespace) with a fresh key
    (from `ferry keygen`), plus --classic on 127.0.0.1:0 when classic is
    true, serving files from root when given.  The ports come from its
    "listening on" log lines.

    TLS 1.3 keyed by the key (ferryd's default) unless plaintext is true:
    then ferryd runs with --plaintext, and client() adds --plaintext to every
    ferry command line, as both sides must agree.  Its key and log files are
    named after the mode, so a TLS and a plaintext ferryd can share tmp."""

    def __init__(self, bindir, tmp, classic=True, root=None, extra=(), plaintext=False,
                 listen="127.0.0.1:0", key=None):
        self.bindir, self.tmp, self.listen = bindir, tmp, listen
        self.classic, self.root, self.extra = classic, root, list(extra)
        self.plaintext = bool(plaintext)
        self.mode = "plaintext" if self.plaintext else "TLS"
        self.name = "ferryd-plaintext" if self.plaintext else "ferryd"
        self.classic_port = None
        # key: another ferryd's, for daemons that serve one set of hosts
        # together (ferryd listens on at most 16 addresses)
        self.key = key or os.path.join(tmp, "ferry-plaintext.key" if self.plaintext
                                       else "ferry.key")
        if not key:
            subprocess.run([os.path.join(bindir, "ferry"), "keygen", self.key],
                           stdout=DEVNULL, check=True, timeout=10)
        self.log = os.path.join(tmp, self.name + ".log")
        _logs.append(self.log)
        self.restarts = 0
        self._start()

    def ensure(self, notes, where):
        """Restart ferryd if something outside this run stopped it (seen on
        this shared machine: a stop signal from elsewhere), with a note."""
        if self.proc.poll() is None:
            return
        last = (open(self.log).read().splitlines() or [""])[-1]
        notes.append("%s (ours, %s) ended with status %s before %s (last log line: %s); "
                     "restarted" % (self.name, self.mode, self.proc.returncode, where, last))
        note(notes[-1])
        self.restarts += 1
        self.log = os.path.join(self.tmp, "%s.%d.log" % (self.name, self.restarts))
        _logs.append(self.log)
        self._start()

    def _start(self):
        bindir, tmp = self.bindir, self.tmp
        # Default log level: the "listening on" lines are info (-q hides them).
        argv = [os.path.join(bindir, "ferryd"),
                "--listen", self.listen, "--key-file", self.key]
        if self.plaintext:
            argv += ["--plaintext"]
        if self.classic:
            argv += ["--classic", "127.0.0.1:0"]
        if self.root:
            argv += ["--root", self.root]
        self.proc = start(argv + self.extra,
                          stdin=DEVNULL, stdout=DEVNULL,
                          stderr=open(self.log, "w"), cwd=tmp)
        got = wait_for(self._ports, 10)
        if not got:
            raise RuntimeError("ferryd did not report its ports; log:\n" +
                               open(self.log).read())
        self.port, self.classic_port = got

    def _ports(self):
        if self.proc.poll() is not None:
            raise RuntimeError("ferryd exited; log:\n" + open(self.log).read())
        text = open(self.log).read()
        classic, listening = None, []
        for line in text.splitlines():
            m = _CLASSIC_RX.search(line)
            if m:
                classic = int(m.group(1))
                continue
            m = _LISTENING_RX.search(line)
            if m:
                listening.append(int(m.group(1)))
        if not self.classic:
            return (listening[0], None) if listening else None
        if classic is None or len(listening) < 2:
            return None
        main = [p for p in listening if p != classic]
        return (main[0], classic) if main else None

    @property
    def host(self):
        return "127.0.0.1:%d" % self.port

    def ferry(self, *args):
        """The ferry client with args as given (no key, no mode): for
        --version and the like.  Use client() to talk to this ferryd."""
        return [os.path.join(self.bindir, "ferry")] + list(args)

    def client(self, command, *args):
        """argv of `ferry COMMAND [--plaintext] -k KEY ARGS...` for this
        ferryd: --plaintext exactly when it runs with --plaintext (ferry
        never falls back from one mode to the other).  ARGS usually start
        with self.host."""
        return ferry_argv(self.bindir, command, self.key, self.plaintext, *args)


def ferry_argv(bindir, command, key, plaintext, *args):
    """`ferry COMMAND [--plaintext] -k KEY ARGS...`: the client's argv for a
    ferryd started with (plaintext=True) or without --plaintext."""
    return ([os.path.join(bindir, "ferry"), command] +
            (["--plaintext"] if plaintext else []) + ["-k", key] + list(args))


def ferry_versions(bindir):
    """`ferry --version` and `ferryd --version` (which names the OpenSSL in
    use and whether kernel TLS is available), for the JSON."""
    out = {}
    for prog in ("ferry", "ferryd"):
        try:
            r = subprocess.run([os.path.join(bindir, prog), "--version"],
                               stdin=DEVNULL, capture_output=True, text=True, timeout=10)
            out[prog] = (r.stdout.strip() or r.stderr.strip()) or None
        except (OSError, subprocess.SubprocessError) as e:
            out[prog] = "unknown: %s" % e
    return out


def tls_session_info(fd):
    """What `ferry -v exec HOST true` says about the session against fd
    (TLS version, suite, key exchange; or that it is plaintext): its debug
    lines, for the notes and the JSON.  None if it could not run."""
    try:
        r = subprocess.run(fd.client("exec", "-v", fd.host, "true"), stdin=DEVNULL,
                           capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = [ln.split(" debug: ", 1)[1] for ln in r.stderr.splitlines() if " debug: " in ln]
    return "; ".join(ln for ln in lines if not ln.startswith("key file")) or None


def apt_install(packages, have, what):
    """Installs the Debian packages with apt-get when have() is false and we
    are root (services are not started: policy-rc.d exits 101).  Returns None
    when have() is (or became) true, else why not, for the notes."""
    if have():
        return None
    if os.geteuid() != 0:
        return "--install needs root; %s not installed" % what
    note("installing %s with apt-get" % " ".join(packages))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    policy = "/usr/sbin/policy-rc.d"
    made_policy = not os.path.exists(policy)
    r = None
    try:
        if made_policy:
            with open(policy, "w") as f:
                f.write("#!/bin/sh\nexit 101\n")
            os.chmod(policy, 0o755)
        cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends"] + \
            list(packages)
        r = subprocess.run(cmd, env=env, stdin=DEVNULL, capture_output=True,
                           timeout=600)
        if r.returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, stdin=DEVNULL,
                           capture_output=True, timeout=600)
            r = subprocess.run(cmd, env=env, stdin=DEVNULL, capture_output=True,
                               timeout=600)
    except (OSError, subprocess.SubprocessError) as e:
        return "apt-get install %s failed: %s" % (" ".join(packages), e)
    finally:
        if made_policy and os.path.exists(policy):
            os.unlink(policy)
    if r.returncode != 0 or not have():
        return ("apt-get install %s failed: " % " ".join(packages)) + \
            r.stderr.decode(errors="replace").strip()[-300:]
    return None


def repo_path(path):
    """path relative to the repository when it lies inside it (build-rel/bin),
    else absolute: what the JSON records, without naming this machine's
    directories."""
    full = os.path.abspath(path)
    rel = os.path.relpath(full, ROOT)
    return full if rel.startswith("..") else rel


def git_describe(root=None):
    r = subprocess.run(["git", "-C", root or ROOT, "describe", "--always",
                        "--dirty"], capture_output=True, text=True, timeout=30)
    return r.stdout.strip() or None


def version_of(argv, stderr=False, timeout=10):
    """The first line a program prints about its version, or None."""
    try:
        r = subprocess.run(argv, stdin=DEVNULL, capture_output=True, text=True,
                           timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    out = (r.stdout + "\n" + r.stderr) if stderr else (r.stdout or r.stderr)
    for line in out.splitlines():
        if line.strip():
            return line.strip()
    return None


def dump_logs():
    """Says what the servers we started were doing before their logs go."""
    for p in _started:
        note("%s: %s" % (" ".join(map(str, p.args[:3]))[:80],
                         "running" if p.poll() is None else
                         "exited with %s" % p.returncode))
    for log in _logs:
        try:
            tail = open(log).read().splitlines()[-15:]
        except OSError:
            continue
        note("last lines of %s:\n  %s" % (os.path.basename(log), "\n  ".join(tail)))


def finish(doc, ratios, notes, path, width=56):
    """The end every benchmark shares: its ratios (with the issue's goal
    where it sets one) and notes on stdout, doc as JSON at path.  A ratio
    entry is {"what", "ratio", "goal"}; an entry with "unit" is a
    difference instead ({"what", "value", "unit", "goal"}), printed as
    such."""
    import json
    print("\nratios (same run)")
    for r in ratios:
        if "unit" in r:       # a difference, not a ratio (e.g. ms)
            v = r.get("value")
            cell = "-" if v is None else "%.2f %s" % (v, r["unit"])
        else:
            cell = "-" if r["ratio"] is None else "%.2fx" % r["ratio"]
        print("  %-*s %8s%s" % (width, r["what"], cell,
                                "   goal " + r["goal"] if r.get("goal") else ""))
    for n in notes:
        print("note: " + n)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print("\nwrote " + os.path.relpath(path))


def run(main):
    """Run a benchmark's main: on failure say what its servers were doing;
    always stop everything it started."""
    try:
        main()
    except Exception:
        dump_logs()
        raise
    finally:
        stop_all()


if __name__ == "__main__":
    print("benchlib.py is the benchmarks' shared module, not a benchmark", file=sys.stderr)
    sys.exit(0)
