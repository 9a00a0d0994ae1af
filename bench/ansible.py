#!/usr/bin/env python3
"""ansible.py - a 20-task Ansible playbook on 5 and 20 hosts through ferry's
connection plugin, beside ssh and Mitogen (issue 16).

Measured side by side in one run, on loopback.  The hosts are the loopback
addresses 127.0.0.2-(N+1), all this machine.  One playbook of 20 tasks
(command, shell, file, copy, stat, lineinfile, fetch; fact gathering off)
runs with `ansible-playbook --forks N` through each column:

  ferry (TLS)          ansible/plugins/connection/ferry.py, against a ferryd
                       listening on every host address (pipelining: the
                       plugin's default)
  ferry (plaintext)    the same against a ferryd --plaintext
  ssh ControlPersist   Ansible's ssh plugin with its default ssh_args
                       (-C -o ControlMaster=auto -o ControlPersist=60s),
                       pipelining off (Ansible's default) ...
  ssh ControlPersist + pipelining   ... and on
  Mitogen              Debian's ansible-mitogen, strategy mitogen_linear,
                       over the same ssh
  local connection     `connection: local`: Ansible's own per-task work and
                       the remote Python without any transport: the
                       reference the transports are read against (no goal;
                       not a strict floor: its modules run as the workers'
                       children, in the controller's environment)

ssh logs in as the fair baseline user (sshlib.BenchUser: login shell
/bin/sh, an empty home); OpenSSH's sshd listens on at most 16 addresses,
so one sshd per 15 hosts shares the config of sshlib.Sshd.  The
ControlPersist masters of a run are closed after it (each run starts cold,
as a playbook run after a pause does).  Each figure is the wall time of
the whole ansible-playbook run (the default callback's output), the
median of --reps repetitions; the columns take turns (the first one
rotates).  Every run's recap must show
no failed and no unreachable host, or the run stops.

Not a test: nothing asserts.  python3 standard library, plus ansible-core,
ansible-mitogen and openssh-server (--install as root apt-gets them).
"""
import argparse
import atexit
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
import sshlib  # noqa: E402
from benchlib import DEVNULL, ROOT, note, ratio, summary  # noqa: E402

PLUGINS = os.path.join(ROOT, "ansible", "plugins", "connection")
MITOGEN = "/usr/lib/python3/dist-packages/ansible_mitogen/plugins/strategy"
PLAYBOOK_BIN = "/usr/bin/ansible-playbook"
PYTHON = "/usr/bin/python3"
PER_SSHD = 15            # sshd's MAX_LISTEN_SOCKS is 16
PER_FERRYD = 15          # ferryd takes 16 --listen addresses, one is its own 127.0.0.1:0
TASKS = 20

PLAYBOOK = """
- hosts: all
  gather_facts: false
  vars:
    dir: "{{ work }}/{{ inventory_hostname }}"
  tasks:
    - {name: "1 file: a directory", file: {path: "{{ dir }}", state: directory, mode: "0755"}}
    - {name: "2 command", command: "echo hello {{ inventory_hostname }}"}
    - {name: "3 shell", shell: "uname -r > {{ dir }}/kernel && wc -c < {{ dir }}/kernel"}
    - {name: "4 copy a file", copy: {src: "{{ files }}/small.txt", dest: "{{ dir }}/small.txt"}}
    - {name: "5 stat", stat: {path: "{{ dir }}/small.txt"}}
    - {name: "6 lineinfile", lineinfile: {path: "{{ dir }}/small.txt", line: "line one"}}
    - {name: "7 fetch", fetch: {src: "{{ dir }}/small.txt", dest: "{{ fetched }}/{{ inventory_hostname }}/a", flat: true}}
    - {name: "8 command", command: "uname -r"}
    - {name: "9 file: touch", file: {path: "{{ dir }}/touched", state: touch}}
    - {name: "10 copy content", copy: {content: "{{ inventory_hostname }}\\n", dest: "{{ dir }}/name.txt"}}
    - {name: "11 stat", stat: {path: "{{ dir }}/name.txt", checksum_algorithm: sha1}}
    - {name: "12 shell", shell: "ls {{ dir }} | sort | wc -l"}
    - {name: "13 lineinfile", lineinfile: {path: "{{ dir }}/name.txt", line: "line two"}}
    - {name: "14 fetch", fetch: {src: "{{ dir }}/name.txt", dest: "{{ fetched }}/{{ inventory_hostname }}/b", flat: true}}
    - {name: "15 file: mode", file: {path: "{{ dir }}/name.txt", mode: "0600"}}
    - {name: "16 command", command: "id -u"}
    - {name: "17 copy the file again (unchanged)", copy: {src: "{{ files }}/small.txt", dest: "{{ dir }}/copy2.txt"}}
    - {name: "18 stat", stat: {path: "{{ dir }}/copy2.txt"}}
    - {name: "19 shell", shell: "cat {{ dir }}/*.txt | wc -l"}
    - {name: "20 file: absent", file: {path: "{{ dir }}/touched", state: absent}}
"""


def have_ansible():
    return os.path.exists(PLAYBOOK_BIN)


def have_mitogen():
    return os.path.isdir(MITOGEN)


def host_addrs(n):
    return ["127.0.0.%d" % i for i in range(2, n + 2)]


class SshFleet:
    """sshlib.Sshd (127.0.0.1, the fair user) plus sshds with the same
    config listening on the host addresses, PER_SSHD each on Sshd's port;
    an ssh client config and known_hosts for all of them."""

    def __init__(self, tmp, addrs):
        self.sshd = sshlib.Sshd(tmp)
        d = self.sshd.dir
        port = self.sshd.port
        base = open(os.path.join(d, "sshd_config")).read()
        self.procs = []
        for k in range(0, len(addrs), PER_SSHD):
            chunk = addrs[k:k + PER_SSHD]
            cfg = os.path.join(d, "sshd_config.%d" % k)
            with open(cfg, "w") as f:
                f.write(base.replace("ListenAddress 127.0.0.1",
                                     "\n".join("ListenAddress " + a for a in chunk))
                        .replace("PidFile %s/sshd.pid" % d, "PidFile %s/sshd.%d.pid" % (d, k)))
            log = os.path.join(d, "sshd.%d.log" % k)
            self.procs.append(benchlib.start([shutil.which("sshd") or "/usr/sbin/sshd",
                                              "-f", cfg, "-D", "-e"], stdin=DEVNULL,
                                             stdout=DEVNULL, stderr=open(log, "w")))
        for a in addrs:
            if not benchlib.wait_for(lambda a=a: self._listening(a, port), 10):
                raise RuntimeError("sshd on %s:%d did not start" % (a, port))
        hostpub = open(os.path.join(d, "host_ed25519.pub")).read().split()
        known = os.path.join(d, "known_hosts.fleet")
        with open(known, "w") as f:
            for a in addrs:
                f.write("[%s]:%d %s %s\n" % (a, port, hostpub[0], hostpub[1]))
        self.cfg = os.path.join(d, "ssh_config.fleet")
        with open(self.cfg, "w") as f:
            f.write("\n".join([
                "Host 127.0.0.*",
                "  User %s" % self.sshd.user.name,
                "  IdentityFile %s/id_ed25519" % d,
                "  IdentitiesOnly yes",
                "  UserKnownHostsFile %s" % known,
                "  StrictHostKeyChecking yes",
                "  CheckHostIP no",
                "  BatchMode yes",
                "  LogLevel ERROR",
                ""]))
        self.port = port

    @staticmethod
    def _listening(addr, port):
        try:
            with socket.create_connection((addr, port), timeout=1):
                return True
        except OSError:
            return False


def write_inventory(path, addrs, hostvars):
    with open(path, "w") as f:
        f.write("[fleet]\n")
        for i, a in enumerate(addrs, 2):
            f.write("b%d ansible_host=%s\n" % (i, a))
        f.write("[fleet:vars]\n")
        for k, v in hostvars.items():
            f.write("%s=%s\n" % (k, v))
    return path


def close_masters(cpdir):
    """`ssh -O exit` for every ControlPersist master a run left in cpdir."""
    for sock in glob.glob(os.path.join(cpdir, "*")):
        subprocess.run(["ssh", "-o", "ControlPath=" + sock, "-O", "exit", "x"],
                       stdin=DEVNULL, stdout=DEVNULL, stderr=DEVNULL, timeout=30)


def recap(out):
    """The PLAY RECAP of the default callback: host -> {ok: N, changed: N, ...}."""
    stats = {}
    for line in out[out.rfind("PLAY RECAP"):].splitlines()[1:]:
        host, sep, counts = line.partition(" : ")
        if sep:
            stats[host.strip()] = {k: int(v) for k, v in
                                   (kv.split("=") for kv in counts.split())}
    return stats


def run_playbook(col, n, tmp, playbook, timeout):
    """One ansible-playbook run of column col on n hosts: its wall time in
    seconds.  The recap must show every host ok."""
    env = dict(os.environ)
    env.update({
        "ANSIBLE_CONFIG": os.path.join(tmp, "ansible.cfg"),
        "ANSIBLE_STDOUT_CALLBACK": "default",
        "ANSIBLE_GATHERING": "explicit",
        "ANSIBLE_PYTHON_INTERPRETER": PYTHON,
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORKS": str(n),
        "ANSIBLE_HOME": os.path.join(tmp, "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": os.path.join(tmp, "ansible-local"),
        "ANSIBLE_SSH_RETRIES": "0",
        "ANSIBLE_DEPRECATION_WARNINGS": "0",
    })
    env.update(col["env"])
    cpdir = tempfile.mkdtemp(prefix="cp-", dir=tmp)
    env["ANSIBLE_SSH_CONTROL_PATH_DIR"] = cpdir
    for d in col["clean"]:
        shutil.rmtree(d, ignore_errors=True)
    argv = [PLAYBOOK_BIN, "-i", col["inventory"][n], playbook, "-e", json.dumps(col["extra"])]
    t0 = time.perf_counter()
    r = subprocess.run(argv, env=env, stdin=DEVNULL, capture_output=True, text=True,
                       timeout=timeout)
    took = time.perf_counter() - t0
    close_masters(cpdir)
    shutil.rmtree(cpdir, ignore_errors=True)
    stats = recap(r.stdout)
    bad = {h: s for h, s in stats.items() if s.get("failed") or s.get("unreachable")}
    if r.returncode != 0 or bad or len(stats) != n:
        raise RuntimeError("%s on %d hosts failed (exit %d): %s\n%s" % (
            col["name"], n, r.returncode, bad or stats, r.stdout[-3000:] + r.stderr[-2000:]))
    return took


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--install", action="store_true",
                    help="as root, apt-get ansible-core, ansible-mitogen and openssh-server if missing")
    ap.add_argument("--quick", action="store_true", help="5 hosts, one repetition")
    ap.add_argument("--hosts", default="5,20", help="host counts (5,20)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions (3)")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds one playbook run may take")
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    ap.add_argument("--json", default=os.path.join(ROOT, "bench", "results", "ansible.json"))
    ap.add_argument("--no-ssh", action="store_true", help="skip the ssh and Mitogen columns")
    args = ap.parse_args()
    benchlib.set_name("ansible")
    if args.quick:
        args.hosts, args.reps = "5", 1
    counts = [int(x) for x in args.hosts.split(",")]
    notes = []
    why = benchlib.apt_install(["ansible-core"], have_ansible, "ansible-core") if args.install \
        else (None if have_ansible() else "ansible-core not installed (rerun as root with --install)")
    if why:
        note("skipped: " + why)
        doc = {"benchmark": "ansible", "issue": 16, "skipped": why, "ratios": [], "notes": [why]}
        benchlib.finish(doc, [], [why], args.json)
        return
    if args.install and not have_mitogen():
        benchlib.apt_install(["ansible-mitogen"], have_mitogen, "ansible-mitogen")

    tmp = tempfile.mkdtemp(prefix="ferry-bench-ansible-")
    atexit.register(shutil.rmtree, tmp, True)
    bindir = os.path.join(tmp, "bin")
    os.mkdir(bindir)
    for prog in ("ferry", "ferryd"):
        shutil.copy2(os.path.join(os.path.abspath(args.bin), prog), bindir)
    open(os.path.join(tmp, "ansible.cfg"), "w").close()   # no /etc/ansible/ansible.cfg
    files = os.path.join(tmp, "files")
    os.mkdir(files)
    with open(os.path.join(files, "small.txt"), "w") as f:
        f.write("a small file\n" * 40)
    playbook = os.path.join(tmp, "playbook.yml")
    with open(playbook, "w") as f:
        f.write(PLAYBOOK)
    addrs = host_addrs(max(counts))

    # ferry: one ferryd per mode, listening on every host address (one
    # port), serving ferry-root, where the plugin's transfers and Ansible's
    # remote temporaries live (ansible_ferry_remote_root)
    froot = os.path.join(tmp, "ferry-root")
    os.mkdir(froot)
    cols = []
    for plaintext in (False, True):
        port = benchlib.free_port()
        # ferryd takes at most 16 addresses: one daemon per 16 hosts, one
        # key and one root for all of them
        fd = None
        for k in range(0, len(addrs), PER_FERRYD):
            d = benchlib.Ferryd(bindir, tmp if fd is None else tempfile.mkdtemp(dir=tmp),
                                classic=False, root=froot, plaintext=plaintext,
                                key=fd.key if fd else None,
                                extra=[x for a in addrs[k:k + PER_FERRYD]
                                       for x in ("--listen", "%s:%d" % (a, port))])
            fd = fd or d
        mode = fd.mode
        hv = {"ansible_connection": "ferry", "ansible_port": port,
              "ansible_ferry_key_file": fd.key, "ansible_ferry_plaintext": plaintext,
              "ansible_ferry_executable": os.path.join(bindir, "ferry"),
              "ansible_ferry_remote_root": froot}
        work = os.path.join(froot, "work-" + mode)
        cols.append({"name": "ferry (%s)" % mode, "hostvars": hv,
                     "env": {"ANSIBLE_CONNECTION_PLUGINS": PLUGINS,
                             "ANSIBLE_REMOTE_TMP": os.path.join(froot, "tmp")},
                     "work": work})
        notes.append("ferry (%s): %s" % (mode, benchlib.tls_session_info(fd)))

    fleet = None
    why = None if not args.no_ssh else "--no-ssh"
    why = why or sshlib.ensure_sshd(args.install)
    if why:
        notes.append("ssh and Mitogen columns skipped: " + why)
    else:
        fleet = SshFleet(tmp, addrs)
        notes.append(sshlib.ssh_baseline_line(fleet.sshd))
        label = fleet.sshd.user.label
        hv = {"ansible_connection": "ssh", "ansible_port": fleet.port,
              "ansible_ssh_common_args": "'-F %s'" % fleet.cfg}
        drop = fleet.sshd.user.drop
        cols.append({"name": "ssh ControlPersist (%s)" % label, "hostvars": hv,
                     "env": {"ANSIBLE_PIPELINING": "0"}, "work": os.path.join(drop, "work-ssh")})
        cols.append({"name": "ssh ControlPersist + pipelining (%s)" % label, "hostvars": hv,
                     "env": {"ANSIBLE_PIPELINING": "1"}, "work": os.path.join(drop, "work-sshpipe")})
        if have_mitogen():
            cols.append({"name": "Mitogen (mitogen_linear, ssh, %s)" % label, "hostvars": hv,
                         "env": {"ANSIBLE_STRATEGY_PLUGINS": MITOGEN,
                                 "ANSIBLE_STRATEGY": "mitogen_linear"},
                         "work": os.path.join(drop, "work-mitogen")})
        else:
            notes.append("Mitogen column skipped: ansible-mitogen not installed (--install)")
    local_work = os.path.join(tmp, "local-work")
    cols.append({"name": "local connection (no transport)", "hostvars":
                 {"ansible_connection": "local"}, "env": {"ANSIBLE_PIPELINING": "1"},
                 "work": local_work})

    for col in cols:
        slug = col["work"].rsplit("work-", 1)[-1] if "work-" in col["work"] else "local"
        fetched = os.path.join(tmp, "fetched-" + slug)
        col["extra"] = {"work": col["work"], "files": files, "fetched": fetched}
        col["clean"] = [col["work"], fetched]
        col["inventory"] = {n: write_inventory(os.path.join(tmp, "inv-%s-%d.ini" % (slug, n)),
                                               addrs[:n], col["hostvars"]) for n in counts}

    samples = {n: {c["name"]: [] for c in cols} for n in counts}
    for rep in range(args.reps):
        for n in counts:
            order = cols[rep % len(cols):] + cols[:rep % len(cols)]
            for col in order:
                took = run_playbook(col, n, tmp, playbook, args.timeout)
                samples[n][col["name"]].append(took)
                note("rep %d, %d hosts, %s: %.2f s" % (rep + 1, n, col["name"], took))

    med = {n: {name: summary(xs)["median"] for name, xs in per.items()} for n, per in samples.items()}
    print("playbook of %d tasks, wall time (median of %d), per host count" % (TASKS, args.reps))
    for n in counts:
        print("  %d hosts" % n)
        for name, v in med[n].items():
            print("    %-52s %8.2f s  (%.0f ms a task)" % (name, v, v * 1e3 / TASKS))
    ratios = []
    for n in counts:
        m = med[n]
        ferry = m.get("ferry (TLS)")
        for name in m:
            if name.startswith("ssh ControlPersist + pipelining"):
                ratios.append({"what": "%s / ferry (TLS), %d hosts" % (name, n),
                               "ratio": ratio(m[name], ferry), "goal": "> 1.0x (issue 16)"})
            elif name.startswith("ssh") or name.startswith("Mitogen"):
                ratios.append({"what": "%s / ferry (TLS), %d hosts" % (name, n),
                               "ratio": ratio(m[name], ferry), "goal": None})
        ratios.append({"what": "ferry (plaintext) / ferry (TLS), %d hosts" % n,
                       "ratio": ratio(m.get("ferry (plaintext)"), ferry), "goal": None})
        local = m.get("local connection (no transport)")
        ratios.append({"what": "ferry (TLS) / local connection (no transport), %d hosts" % n,
                       "ratio": ratio(ferry, local), "goal": None})
        if ferry is not None and local is not None:
            ratios.append({"what": "ferry (TLS) - local connection, per task, %d hosts" % n,
                           "value": (ferry - local) * 1e3 / TASKS, "unit": "ms", "goal": None})
    doc = {"benchmark": "ansible", "issue": 16, "git": benchlib.git_describe(),
           "machine": benchlib.machine_info(), "tasks": TASKS, "hosts": counts,
           "reps": args.reps, "ansible": benchlib.version_of([PLAYBOOK_BIN, "--version"]),
           "ferry": benchlib.ferry_versions(bindir), "samples": samples, "medians": med,
           "ratios": ratios, "ssh_baseline": fleet.sshd.describe() if fleet else None,
           "notes": notes}
    benchlib.finish(doc, ratios, notes, args.json, width=72)


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    benchlib.run(main)
