#!/usr/bin/env python3
"""sshlib.py - the ssh baseline the benchmarks share (not a benchmark itself:
bench/run.sh skips *lib.py, and running it only says so).

A throw-away sshd on an ephemeral loopback port (own host key, config and
client key in a temp dir, key auth only) and the dedicated user it logs in
(BenchUser: login shell /bin/sh, an empty home, made for the run and
removed after it, also on a signal; stale ones of killed runs removed at the
next start), so that ssh, scp and sftp figures are sshd's own and not a login
shell's rc files (issue 12).  pdsh and Ansible-over-ssh baselines go through
Sshd.client_cfg the same way.  python3 standard library only; uses benchlib
for process bookkeeping.
"""

import atexit
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (DEVNULL, _logs, apt_install, free_port, note, start,  # noqa: E402
                      stop_all, wait_for)


# ------------------------------------------------------- the ssh baseline's user

# sshd starts every command through the user's login shell, and a shell that
# reads rc files (root's ~/.bashrc here ran `pyenv init`, ~0.6 s) measures
# them, not sshd.  ferryd runs `sh -c` in a clean environment, so the fair
# baseline is ssh to a user whose login shell is /bin/sh and whose home holds
# nothing.  Every ssh, scp and sftp column (and the pdsh and Ansible ones,
# through Sshd) logs in as such a user, made for the run and removed after it.
USER_PREFIX = "ferrybench-"
# The name every host of Sshd(hosts=...) is checked under in known_hosts:
# one sshd serves them all, with one host key.
FLEET_KEY_ALIAS = "ferrybench-fleet"


def _run_quiet(argv, timeout=60):
    """argv's exit status and its stderr (text); never raises for a status."""
    r = subprocess.run(argv, stdin=DEVNULL, stdout=DEVNULL,
                       stderr=subprocess.PIPE, text=True, timeout=timeout)
    return r.returncode, r.stderr.strip()


def _pids_of_uid(uid):
    """The processes running as uid (from /proc): those of a bench user are
    ours, since the user exists only for one run."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            if os.stat("/proc/" + d).st_uid == uid:
                pids.append(int(d))
        except OSError:
            pass            # it ended meanwhile
    return pids


def _end_processes_of(uid):
    """SIGTERM, then SIGKILL after 2 s, to what still runs as uid (sshd's
    session children of a client that was killed)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = _pids_of_uid(uid)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, sig)
            except OSError:
                pass        # it ended meanwhile
        if wait_for(lambda: not _pids_of_uid(uid), 2):
            return


def _delete_user(name):
    """userdel -r -f NAME (its home and mail spool go too), retried while
    another useradd/userdel holds the lock on /etc/passwd.  Returns None or
    why it failed."""
    try:
        uid = pwd.getpwnam(name).pw_uid
    except KeyError:
        return None
    _end_processes_of(uid)
    why = None
    for _ in range(20):
        status, why = _run_quiet(["userdel", "-r", "-f", name])
        # 0 done; 12: the home could not be removed (already gone: fine);
        # 6: no such user (removed meanwhile)
        if status in (0, 6, 12):
            return None
        time.sleep(0.25)
    return why or "userdel failed"


def _run_alive(pid):
    """Whether pid is a live python (a benchmark run that still needs its user)."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return b"python" in f.read()
    except OSError:
        return False


def remove_stale_users():
    """Removes the ferrybench-PID users whose run PID is gone: a run killed
    with SIGKILL could not remove its own.  Returns the names removed."""
    removed = []
    for pw in pwd.getpwall():
        suffix = pw.pw_name[len(USER_PREFIX):]
        if not pw.pw_name.startswith(USER_PREFIX) or not suffix.isdigit() \
                or _run_alive(int(suffix)):
            continue
        why = _delete_user(pw.pw_name)
        if why:
            note("stale user %s not removed: %s" % (pw.pw_name, why))
        else:
            removed.append(pw.pw_name)
    return removed


def _exit_on_signals():
    """SIGHUP, SIGTERM and SIGQUIT end the run through sys.exit (so atexit
    removes the user) wherever the benchmark has not set a handler already;
    SIGINT raises KeyboardInterrupt, which does the same."""
    def leave(sig, _frame):
        sys.exit(128 + sig)
    for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGQUIT):
        if signal.getsignal(sig) == signal.SIG_DFL:
            signal.signal(sig, leave)


class BenchUser:
    """The user ssh, scp and sftp log in as: ferrybench-PID, made with
    useradd (login shell /bin/sh, home TMP/user/home, empty: no skeleton
    files) and removed with userdel at exit, also when the run fails or is
    ended by a signal; stale ones of killed runs are removed first.  Its
    authorized_keys lie outside the home (keys/), so the home stays empty;
    drop/ is a directory it owns, where uploads land.

    Without root (useradd needs it) the current user stands in: fair is
    False and why says so; the benchmarks print that and mark the ssh
    ratios unfair."""

    def __init__(self, tmp):
        # created: useradd succeeded, so remove() must undo it even if what
        # follows fails; fair: the user is ready
        self.fair, self.why, self.created, self.removed = False, None, False, False
        self.stale_removed = []
        base = os.path.join(tmp, "user")
        os.mkdir(base, 0o755)
        self.keys = os.path.join(base, "keys")
        self.drop = os.path.join(base, "drop")
        if os.geteuid() != 0 or not shutil.which("useradd") or not shutil.which("userdel"):
            self.why = ("not root" if os.geteuid() != 0 else "no useradd/userdel") + \
                ": ssh runs as the current user with its login shell and rc files " \
                "(unfair: their start-up counts in every ssh figure)"
            pw = pwd.getpwuid(os.geteuid())
            self.name, self.home, self.shell = pw.pw_name, pw.pw_dir, pw.pw_shell
            for d in (self.keys, self.drop):
                os.mkdir(d, 0o700)
            return
        self.stale_removed = remove_stale_users()
        for name in self.stale_removed:
            note("removed stale user %s (its run is gone)" % name)
        self.name = USER_PREFIX + str(os.getpid())
        self.home, self.shell = os.path.join(base, "home"), "/bin/sh"
        # The user must reach its directories: tmp gets search (not read)
        # permission for others.
        os.chmod(tmp, os.stat(tmp).st_mode & 0o7777 | 0o711)
        if _delete_user(self.name):       # left by an earlier run with our pid
            raise RuntimeError("user %s exists and could not be removed" % self.name)
        atexit.register(self.remove)
        _exit_on_signals()
        why = None
        for _ in range(20):              # another run may hold /etc/passwd's lock
            status, why = _run_quiet(["useradd", "-M", "-U", "-d", self.home,
                                      "-s", self.shell, "-p", "*",
                                      "-c", "ferry benchmark baseline", self.name])
            if status == 0:
                self.created = True
                break
            time.sleep(0.25)
        else:
            raise RuntimeError("useradd %s failed: %s" % (self.name, why))
        pw = pwd.getpwnam(self.name)
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        for d, mode in ((self.home, 0o700), (self.keys, 0o700), (self.drop, 0o755)):
            os.mkdir(d, mode)
            os.chown(d, self.uid, self.gid)
        self.fair = True

    def own(self, path):
        """Hands path (a file made for the user, e.g. authorized_keys) to it."""
        if self.fair:
            os.chown(path, self.uid, self.gid)

    def remove(self):
        """Stops what runs as the user and deletes it with its home; safe to
        call more than once.  Everything this run started goes first: ssh
        clients whose sessions run as the user."""
        if not self.created or self.removed:
            return
        stop_all()
        why = _delete_user(self.name)
        if why:
            note("user %s not removed: %s (the next run removes it)" % (self.name, why))
        else:
            self.removed = True

    def describe(self):
        """For the JSON and the notes."""
        return {"name": self.name, "shell": self.shell, "home": self.home,
                "fair": self.fair, "why_unfair": self.why,
                "stale_users_removed": self.stale_removed}

    @property
    def label(self):
        """What the ssh ratios' names say about the baseline."""
        return "fair" if self.fair else "UNFAIR: %s" % self.name


def sftp_server():
    for p in ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server",
              "/usr/libexec/sftp-server"):
        if os.path.exists(p):
            return p
    return "internal-sftp"


class Sshd:
    """A throw-away sshd on 127.0.0.1:EPHEMERAL, its own host key, config and
    client key in a temp dir, key auth only, for a dedicated user (a
    BenchUser made here unless one is given: login shell /bin/sh, empty
    home; see above).  The ssh client runs as the invoking user and logs in
    as that user (User in its config), so scp, sftp and anything else built
    on client_cfg do too.  check holds what `echo $0; echo $HOME; ls -A ~`
    printed through it: the proof for the JSON that the baseline is fair.

    listen is sshd's ListenAddress: 0.0.0.0 serves every loopback address
    (fleet.py, inside a network namespace of its own, so that nothing else
    can reach it); hosts, an ssh_config pattern ("127.0.0.*"), then gets a
    Host block of its own in client_cfg, every name it matches checked
    against the one host key (HostKeyAlias), for pdsh and clush."""

    def __init__(self, tmp, user=None, listen="127.0.0.1", hosts=None):
        self.user = user or BenchUser(tmp)
        self.dir = os.path.join(tmp, "ssh")
        os.mkdir(self.dir, 0o700)
        d = self.dir
        for name in ("host_ed25519", "id_ed25519"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "",
                            "-f", os.path.join(d, name)],
                           stdout=DEVNULL, check=True, timeout=20)
        # sshd reads authorized_keys as the user: in its keys/, not its home
        auth = os.path.join(self.user.keys, "authorized_keys")
        shutil.copy(os.path.join(d, "id_ed25519.pub"), auth)
        os.chmod(auth, 0o600)
        self.user.own(auth)
        self.port = free_port()
        cfg = os.path.join(d, "sshd_config")
        with open(cfg, "w") as f:
            f.write("\n".join([
                "Port %d" % self.port,
                "ListenAddress %s" % listen,
                "HostKey %s/host_ed25519" % d,
                "PidFile %s/sshd.pid" % d,
                "AuthorizedKeysFile %s" % auth,
                # the invoking user too, for fresh_as_invoker() only
                "AllowUsers %s %s" % (self.user.name, pwd.getpwuid(os.geteuid()).pw_name),
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password",
                "UsePAM no",
                "StrictModes no",
                "UseDNS no",
                "PrintMotd no",
                "PrintLastLog no",
                "PermitUserRC no",
                "MaxSessions 100",
                # scp (OpenSSH 9: the SFTP protocol by default) and sftp need it
                "Subsystem sftp %s" % sftp_server(),
                "MaxStartups 100:30:200",
                "LogLevel ERROR",
                ""]))
        hostpub = open(os.path.join(d, "host_ed25519.pub")).read().split()
        with open(os.path.join(d, "known_hosts"), "w") as f:
            for h in ("localhost", "127.0.0.1"):
                f.write("[%s]:%d %s %s\n" % (h, self.port, hostpub[0], hostpub[1]))
            f.write("%s %s %s\n" % (FLEET_KEY_ALIAS, hostpub[0], hostpub[1]))
        self.client_cfg = os.path.join(d, "ssh_config")
        self.mux = os.path.join(d, "mux")
        common = ["  Port %d" % self.port,
                  "  User %s" % self.user.name,
                  "  IdentityFile %s/id_ed25519" % d,
                  "  IdentitiesOnly yes",
                  "  UserKnownHostsFile %s/known_hosts" % d,
                  "  StrictHostKeyChecking yes",
                  "  CheckHostIP no",
                  "  BatchMode yes",
                  "  LogLevel ERROR"]
        with open(self.client_cfg, "w") as f:
            f.write("\n".join(["Host localhost", "  HostName 127.0.0.1"] + common +
                              (["Host %s" % hosts, "  HostKeyAlias %s" % FLEET_KEY_ALIAS] +
                               common if hosts else []) + [""]))
        # Debian's sshd insists on its privilege separation directory.
        if not os.path.isdir("/run/sshd"):
            os.makedirs("/run/sshd", 0o755, exist_ok=True)
        sshd = shutil.which("sshd") or "/usr/sbin/sshd"
        self.log = os.path.join(d, "sshd.log")
        _logs.append(self.log)
        self.proc = start([sshd, "-f", cfg, "-D", "-e"], stdin=DEVNULL,
                          stdout=DEVNULL, stderr=open(self.log, "w"))
        if not wait_for(self._listening, 10):
            raise RuntimeError("sshd did not start; log:\n" + open(self.log).read())
        r = subprocess.run(self.fresh("true"), stdin=DEVNULL,
                           capture_output=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError("ssh localhost true failed: %s\nsshd log:\n%s" %
                               (r.stderr.decode(errors="replace"),
                                open(self.log).read()))
        self.master = None
        self.check = self._check()

    def _check(self):
        """What the login shell says about itself: $0, $HOME and the home's
        entries.  A fair user that does not show sh and an empty home is an
        error, not a figure."""
        r = subprocess.run(self.fresh('echo "$0"; echo "$HOME"; ls -A ~'), stdin=DEVNULL,
                           capture_output=True, text=True, timeout=30)
        lines = r.stdout.splitlines()
        got = {"shell": lines[0] if lines else None,
               "home": lines[1] if len(lines) > 1 else None,
               "home_entries": lines[2:], "exit": r.returncode}
        if self.user.fair and (r.returncode != 0 or
                               os.path.basename(got["shell"] or "").lstrip("-") != "sh" or
                               got["home"] != self.user.home or got["home_entries"]):
            raise RuntimeError("the ssh baseline is not fair: %r (stderr %s)" %
                               (got, r.stderr.strip()))
        return got

    def describe(self):
        """The baseline's user and the check, for the JSON."""
        return dict(self.user.describe(), check=self.check)

    def _listening(self):
        if self.proc.poll() is not None:
            raise RuntimeError("sshd exited; log:\n" + open(self.log).read())
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def fresh(self, *cmd):
        return ["ssh", "-F", self.client_cfg, "-o", "ControlMaster=no",
                "-o", "ControlPath=none", "localhost"] + list(cmd)

    def fresh_as_invoker(self, *cmd):
        """fresh() logging in as the invoking user instead, through its own
        login shell and rc files: how the baseline was measured before it
        was fair, for a comparison column; no goal uses it."""
        return ["ssh", "-F", self.client_cfg, "-l", pwd.getpwuid(os.geteuid()).pw_name,
                "-o", "ControlMaster=no", "-o", "ControlPath=none", "localhost"] + list(cmd)

    def muxed(self, *cmd):
        return ["ssh", "-F", self.client_cfg, "-o", "ControlMaster=no",
                "-o", "ControlPath=" + self.mux, "localhost"] + list(cmd)

    def scp(self, src, dst):
        """scp SRC DST, either side "localhost:PATH" for the throw-away sshd."""
        return ["scp", "-F", self.client_cfg, "-q", "-o", "ControlPath=none",
                src, dst]

    def sftp(self, batchfile):
        """sftp running the commands in BATCHFILE against the throw-away sshd."""
        return ["sftp", "-F", self.client_cfg, "-q", "-o", "ControlPath=none",
                "-b", batchfile, "localhost"]

    def start_master(self):
        self.master = start(["ssh", "-F", self.client_cfg, "-N",
                             "-o", "ControlMaster=yes",
                             "-o", "ControlPath=" + self.mux, "localhost"],
                            stdin=DEVNULL, stdout=DEVNULL, stderr=DEVNULL)
        if not wait_for(lambda: os.path.exists(self.mux), 15):
            raise RuntimeError("ssh ControlMaster did not come up")
        r = subprocess.run(self.muxed("true"), stdin=DEVNULL,
                           capture_output=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError("muxed ssh failed: " + r.stderr.decode(errors="replace"))


def ssh_baseline_line(sshd):
    """One line for a benchmark's report: whom ssh logs in as, and what the
    check saw."""
    u, c = sshd.user, sshd.check
    return "ssh baseline (%s): logs in as %s, login shell %s ($0 %s), home %s" % (
        u.label, u.name, u.shell, c.get("shell"),
        "empty" if not c.get("home_entries") else
        "holding %s" % " ".join(c["home_entries"][:8]))


def have_sshd():
    return bool(shutil.which("ssh") and shutil.which("ssh-keygen") and
                (shutil.which("sshd") or os.path.exists("/usr/sbin/sshd")))


def ensure_sshd(install):
    """Returns None if sshd is usable, else the reason the ssh columns are skipped."""
    if have_sshd():
        return None
    if not install:
        return "OpenSSH server not installed (rerun as root with --install)"
    return apt_install(["openssh-server", "openssh-client"], have_sshd,
                       "OpenSSH server")


if __name__ == "__main__":
    print("sshlib.py is the benchmarks' ssh baseline module, not a benchmark", file=sys.stderr)
    sys.exit(0)
