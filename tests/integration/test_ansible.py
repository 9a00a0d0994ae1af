#!/usr/bin/env python3
"""Ansible over ferry: ansible/plugins/connection/ferry.py driven by the real
ansible-core (Debian's package, scripts/deps.sh) against three real ferryds
on 127.0.0.2, .3 and .4.

The same playbook (command, shell, copy of a small and a 10 MiB file,
template, lineinfile, fetch, stat, file, a failing task, become to another
user through sudo) runs once through ferry and once with `connection:
local`, side by side; the recap of every host and the files each run left
must be the same.  Then the same for a `--check --diff` run (on one host).  Separately:
sudo with a password (the plugin answers sudo's prompt, and a wrong password
is "Incorrect sudo password"), a host that is not listening (unreachable,
with ferry's own one-line reason), a missing ferry binary, the inventory's
options (a ferry host configuration, plaintext, a key name, a timeout), and
copy and fetch outside the directory ferryd serves.

All the "hosts" are this machine, so every run works in a directory of its
own (base/HOST/...).  The ferryds serve the test's directory (--root TMP)
and the plugin is told so (ansible_ferry_remote_root), with Ansible's remote
temporary directories inside it.  The become tests need root (useradd, a
sudoers drop-in); without it they are skipped with the reason.
"""
import hashlib
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ferrytest import SLOW, binary, cost, main, start_ferryd, write_key  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PLUGINS = os.path.join(REPO, "ansible", "plugins", "connection")
PLAYBOOK = shutil.which("ansible-playbook", path="/usr/bin:" + os.environ.get("PATH", ""))
ANSIBLE = shutil.which("ansible", path="/usr/bin:" + os.environ.get("PATH", ""))
HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
BIG = 10 << 20
IS_ROOT = os.geteuid() == 0 and shutil.which("useradd") and shutil.which("sudo")
WHY_NOT_ROOT = "become needs root (a user and a sudoers drop-in made for the test) and sudo"

MAIN = """
- hosts: fleet
  gather_facts: false
  vars:
    dir: "{{ base }}/{{ inventory_hostname }}"
  tasks:
    - name: a directory
      file: {path: "{{ dir }}", state: directory, mode: "0755"}
    - name: command
      command: echo hello {{ inventory_hostname }}
      register: cmd
    - assert: {that: ["cmd.stdout == 'hello ' ~ inventory_hostname"]}
    - name: shell
      shell: echo $((6 * 7)) > {{ dir }}/shell.out && cat {{ dir }}/shell.out
      register: sh
    - assert: {that: ["sh.stdout == '42'"]}
    - name: copy a small file
      copy: {src: "{{ files }}/small.txt", dest: "{{ dir }}/small.txt", mode: "0640"}
    - name: copy 10 MiB
      copy: {src: "{{ files }}/big.bin", dest: "{{ dir }}/big.bin"}
    - name: template
      template: {src: "{{ files }}/t.j2", dest: "{{ dir }}/t.txt"}
    - name: lineinfile
      lineinfile: {path: "{{ dir }}/t.txt", line: "added by lineinfile"}
    - name: fetch
      fetch: {src: "{{ dir }}/t.txt", dest: "{{ base }}/fetched/{{ inventory_hostname }}.txt", flat: true}
    - name: stat
      stat: {path: "{{ dir }}/big.bin", checksum_algorithm: sha1}
      register: st
    - assert: {that: ["st.stat.size == %(big)d", "st.stat.checksum == big_sha1"]}
    - name: a failing task
      command: /bin/false
      ignore_errors: true
%(become)s
"""

BECOME = """
    - name: a directory for the other user
      file: {path: "{{ dir }}/owned", state: directory, owner: "{{ become_to }}", mode: "0755"}
    - name: become, no password
      command: id -un
      become: true
      become_user: "{{ become_to }}"
      register: who
    - assert: {that: ["who.stdout == become_to"]}
    - name: become, a copy the other user makes (its temporary file handed over)
      copy: {content: "mine\\n", dest: "{{ dir }}/owned/mine.txt"}
      become: true
      become_user: "{{ become_to }}"
"""

CHECK = """
- hosts: fleet
  gather_facts: false
  vars:
    dir: "{{ base }}/{{ inventory_hostname }}"
  tasks:
    - lineinfile: {path: "{{ dir }}/t.txt", line: "only in check mode"}
    - copy: {content: "changed\\n", dest: "{{ dir }}/small.txt"}
    - file: {path: "{{ dir }}/newdir", state: directory}
"""

PING = """
- hosts: all
  gather_facts: false
  tasks:
    - command: "true"
"""

OUTSIDE = """
- hosts: all
  gather_facts: false
  tasks:
    - copy: {src: "{{ files }}/big.bin", dest: "{{ out }}/big.bin"}
    - fetch: {src: "{{ out }}/big.bin", dest: "{{ back }}/big.bin", flat: true}
"""

WHOAMI = """
- hosts: all
  gather_facts: false
  tasks:
    - command: id -un
      become: true
      become_user: "{{ become_to }}"
      register: who
    - assert: {that: ["who.stdout == become_to"]}
"""


# Debian's ansible-core has no json callback (that is the ansible.posix
# collection's), so the test brings a small one: every task's result per
# host, and the recap, as one JSON document at the end.
CALLBACK = """
import json
from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "ferrytest_json"

    def __init__(self):
        super().__init__()
        self.tasks = []

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.tasks.append({"task": {"name": task.get_name()}, "hosts": {}})

    def _record(self, result, **flags):
        r = dict(result._result, **flags)
        self.tasks[-1]["hosts"][result._host.get_name()] = r

    def v2_runner_on_ok(self, result):
        self._record(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, failed=True)

    def v2_runner_on_unreachable(self, result):
        self._record(result, unreachable=True)

    def v2_runner_on_skipped(self, result):
        self._record(result, skipped=True)

    def v2_playbook_on_stats(self, stats):
        hosts = sorted(stats.processed)
        doc = {"plays": [{"tasks": self.tasks}],
               "stats": {h: stats.summarize(h) for h in hosts}}
        self._display.display(json.dumps(doc, default=str))
"""


def ansible_env(tmp):
    cfg = os.path.join(tmp, "ansible.cfg")
    if not os.path.exists(cfg):
        with open(cfg, "w"):
            pass                        # no /etc/ansible/ansible.cfg, no ./ansible.cfg
        os.mkdir(os.path.join(tmp, "callback"))
        with open(os.path.join(tmp, "callback", "ferrytest_json.py"), "w") as f:
            f.write(CALLBACK)
    os.makedirs(os.path.join(tmp, "run"), mode=0o700, exist_ok=True)
    env = dict(os.environ)
    env.update({
        "ANSIBLE_CONFIG": cfg,
        "ANSIBLE_CONNECTION_PLUGINS": PLUGINS,
        "ANSIBLE_STDOUT_CALLBACK": "ferrytest_json",
        "ANSIBLE_CALLBACK_PLUGINS": os.path.join(tmp, "callback"),
        "ANSIBLE_GATHERING": "explicit",
        "ANSIBLE_PYTHON_INTERPRETER": "/usr/bin/python3",
        "ANSIBLE_PIPELINING": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": os.path.join(tmp, "ansible-local"),
        "ANSIBLE_REMOTE_TMP": os.path.join(tmp, "ansible-remote"),
        "ANSIBLE_SYSTEM_TMPDIRS": os.path.join(tmp, "ansible-system"),
        # ferry's connection masters (ansible_ferry_persist) stay in here
        "XDG_RUNTIME_DIR": os.path.join(tmp, "run"),
        "ANSIBLE_DEPRECATION_WARNINGS": "0",
        "ANSIBLE_HOME": os.path.join(tmp, "ansible-home"),
    })
    return env


def start_playbook(tmp, inventory, playbook, *args, extra=None):
    argv = [PLAYBOOK, "-i", inventory, playbook, *args]
    if extra:
        argv += ["-e", json.dumps(extra)]
    return subprocess.Popen(argv, env=ansible_env(tmp), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc, timeout=120):
    """The json callback's document of a finished run, and its status."""
    out, err = proc.communicate(timeout=timeout * SLOW)
    try:
        return json.loads(out[out.index("{"):]), proc.returncode
    except ValueError:
        raise AssertionError("no JSON from ansible (exit %s):\n%s\n%s"
                             % (proc.returncode, out[-3000:], err[-3000:]))


# the controller's temporary file a diff of copy's content names
LOCAL_TMP_RX = re.compile(r"/ansible-local-[^/]+/tmp[^/\"]+")


def task_results(doc, base):
    """Per host, per task: (name, changed, failed, msg with the base
    directory spelled BASE), so two runs in two directories compare."""
    seen = {}
    for play in doc["plays"]:
        for task in play["tasks"]:
            for host, r in task["hosts"].items():
                seen.setdefault(host, []).append(
                    (task["task"]["name"], bool(r.get("changed")), bool(r.get("failed")),
                     LOCAL_TMP_RX.sub("LOCALTMP", json.dumps(r.get("diff"), sort_keys=True)
                                      .replace(base, "BASE"))))
    return seen


def failures(doc):
    """The failed results of a run, for assertion messages."""
    return [(t["task"]["name"], h, r.get("msg"), r.get("stderr"), r.get("module_stderr"))
            for p in doc["plays"] for t in p["tasks"] for h, r in t["hosts"].items()
            if r.get("failed") or r.get("unreachable")]


def tree(top):
    """Everything under top: relative path -> (kind, mode, owner, content digest)."""
    found = {}
    for d, dirs, files in os.walk(top):
        for name in dirs + files:
            p = os.path.join(d, name)
            st = os.lstat(p)
            if os.path.islink(p):
                what = ("link", os.readlink(p))
            elif os.path.isdir(p):
                what = ("dir",)
            else:
                with open(p, "rb") as f:
                    what = ("file", hashlib.sha256(f.read()).hexdigest())
            found[os.path.relpath(p, top)] = what + (oct(st.st_mode & 0o7777),
                                                     pwd.getpwuid(st.st_uid).pw_name)
    return found


def inventory(path, hosts, common):
    """An INI inventory: group fleet, one line per (name, {var: value})."""
    with open(path, "w") as f:
        f.write("[fleet]\n")
        for name, hv in hosts:
            f.write(name + "".join(" %s=%s" % kv for kv in hv.items()) + "\n")
        f.write("[fleet:vars]\n")
        for kv in common.items():
            f.write("%s=%s\n" % kv)
    return path


USER_RX = re.compile(r"ferryans[bp]-(\d+)$")


def remove_stale_users():
    """The users (and sudoers drop-ins) of earlier runs that were killed
    before they could remove them: their run's PID is gone."""
    for pw in pwd.getpwall():
        m = USER_RX.match(pw.pw_name)
        if m and not os.path.exists("/proc/" + m.group(1)):
            TestUser.remove_named(pw.pw_name)


class TestUser:
    """A user made for the test (login shell /bin/sh, home in the test's
    directory), removed with its sudoers drop-in when the test ends."""

    def __init__(self, tmp, tag, password=None, sudo_rule=None):
        self.name = "ferryans%s-%d" % (tag, os.getpid())
        home = os.path.join(tmp, "home-" + self.name)
        subprocess.run(["userdel", "-r", "-f", self.name], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        subprocess.run(["useradd", "-M", "-d", home, "-s", "/bin/sh", self.name], check=True)
        self.pw = pwd.getpwnam(self.name)
        os.mkdir(home, 0o755)
        os.chown(home, self.pw.pw_uid, self.pw.pw_gid)
        self.sudoers = None
        if password:
            subprocess.run(["chpasswd"], input="%s:%s\n" % (self.name, password), text=True, check=True)
        if sudo_rule:
            self.sudoers = "/etc/sudoers.d/" + self.name     # no "." (sudo would skip it)
            fd = os.open(self.sudoers, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o440)
            with os.fdopen(fd, "w") as f:
                f.write("%s %s\n" % (self.name, sudo_rule))
            subprocess.run(["visudo", "-c", "-q", "-f", self.sudoers], check=True)

    def remove(self):
        TestUser.remove_named(self.name)

    @staticmethod
    def remove_named(name):
        sudoers = "/etc/sudoers.d/" + name
        if os.path.exists(sudoers):
            os.unlink(sudoers)
        # what still runs as the user (its ferryd has been stopped by now)
        subprocess.run(["pkill", "-KILL", "-u", name], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        subprocess.run(["userdel", "-r", "-f", name], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)

    def become(self):
        """preexec_fn: run the child as this user."""
        os.setgroups([])
        os.setgid(self.pw.pw_gid)
        os.setuid(self.pw.pw_uid)


@unittest.skipUnless(shutil.which("ansible-doc", path="/usr/bin"), "ansible-core is not installed (scripts/deps.sh)")
class PluginDocumentation(unittest.TestCase):
    def test_ansible_doc_reads_it_and_the_readme_lists_every_option(self):
        # a DOCUMENTATION block Ansible cannot parse disables the plugin
        r = subprocess.run(["/usr/bin/ansible-doc", "-t", "connection", "ferry", "--json"],
                           env=dict(os.environ, ANSIBLE_CONNECTION_PLUGINS=PLUGINS),
                           capture_output=True, text=True, timeout=60 * SLOW)
        self.assertEqual(r.returncode, 0, r.stderr)
        options = json.loads(r.stdout)["ferry"]["doc"]["options"]
        with open(os.path.join(REPO, "README.md")) as f:
            readme = f.read()
        section = readme[readme.index("\n## Ansible\n"):readme.index("\n## Endpoints\n")]
        for name, o in options.items():
            names = [v["name"] for v in o.get("vars", []) + o.get("env", [])
                     if v["name"].startswith(("ansible_ferry_", "ANSIBLE_FERRY_"))]
            self.assertTrue(names, name)
            for n in names:
                self.assertTrue("`%s`" % n in section, "README's Ansible section lacks %s (%s)" % (n, name))


@unittest.skipUnless(PLAYBOOK and ANSIBLE, "ansible-core is not installed (scripts/deps.sh)")
class AnsibleOverFerry(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="ferry-ansible-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, ignore_errors=True)
        # other users (become) walk through it, as through /home
        os.chmod(cls.tmp, 0o755)
        for d in ("ansible-local", "files", "out-ferry", "out-local"):
            os.mkdir(os.path.join(cls.tmp, d))
        # Ansible's temporaries, shared by every user, as /tmp is: a become
        # user makes its module's temporary directory in remote_tmp too
        for d in ("ansible-remote", "ansible-system"):
            os.mkdir(os.path.join(cls.tmp, d))
            os.chmod(os.path.join(cls.tmp, d), 0o1777)
        cls.key = os.path.join(cls.tmp, "key")
        write_key(cls.key)
        cls.ferry = binary("ferry")
        cls.daemons = []
        for h in HOSTS:
            d = start_ferryd("--root", cls.tmp, key_path=cls.key, listen=h + ":0")
            cls.addClassCleanup(d.stop_quietly)
            cls.daemons.append(d)
        files = os.path.join(cls.tmp, "files")
        with open(os.path.join(files, "small.txt"), "w") as f:
            f.write("a small file\n")
        big = os.urandom(BIG)
        cls.big_sha1 = hashlib.sha1(big).hexdigest()
        with open(os.path.join(files, "big.bin"), "wb") as f:
            f.write(big)
        with open(os.path.join(files, "t.j2"), "w") as f:
            f.write("host {{ inventory_hostname }}, {{ 6 * 7 }}\n")
        cls.become_to = None
        if IS_ROOT:
            remove_stale_users()
            cls.user = TestUser(cls.tmp, "b")
            cls.addClassCleanup(cls.user.remove)
            cls.become_to = cls.user.name
        main_yml = MAIN % {"big": BIG, "become": BECOME if cls.become_to else ""}
        cls.main_yml = cls.write("main.yml", main_yml)
        cls.check_yml = cls.write("check.yml", CHECK)
        common = {"ansible_user": pwd.getpwuid(os.geteuid()).pw_name}
        cls.ferry_inv = inventory(
            os.path.join(cls.tmp, "ferry.ini"),
            [("h%d" % i, {"ansible_host": h, "ansible_port": d.hostport()[1]})
             for i, (h, d) in enumerate(zip(HOSTS, cls.daemons), 2)],
            dict(common, ansible_connection="ferry", ansible_ferry_key_file=cls.key,
                 ansible_ferry_executable=cls.ferry, ansible_ferry_remote_root=cls.tmp))
        cls.local_inv = inventory(
            os.path.join(cls.tmp, "local.ini"),
            [("h%d" % i, {}) for i in range(2, 2 + len(HOSTS))],
            dict(common, ansible_connection="local"))

        # Both runs side by side: the test takes the longer one's time.
        runs = {}
        for name, inv in (("ferry", cls.ferry_inv), ("local", cls.local_inv)):
            runs[name] = start_playbook(cls.tmp, inv, cls.main_yml, extra=cls.extra(name))
        cls.main = {name: finish(p) for name, p in runs.items()}
        cls.before_check = {name: tree(os.path.join(cls.tmp, "out-" + name)) for name in runs}
        # check mode on one host: it is the same code path on each
        runs = {name: start_playbook(cls.tmp, inv, cls.check_yml, "--check", "--diff", "--limit", "h2",
                                     extra=cls.extra(name))
                for name, inv in (("ferry", cls.ferry_inv), ("local", cls.local_inv))}
        cls.check = {name: finish(p) for name, p in runs.items()}

    @classmethod
    def write(cls, name, text):
        path = os.path.join(cls.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    @classmethod
    def extra(cls, run):
        e = {"base": os.path.join(cls.tmp, "out-" + run), "files": os.path.join(cls.tmp, "files"),
             "big_sha1": cls.big_sha1}
        if cls.become_to:
            e["become_to"] = cls.become_to
        return e

    def base(self, run):
        return os.path.join(self.tmp, "out-" + run)

    def expected_stats(self):
        # 13 tasks (4 more with become), every one ok (the ignored failure
        # too); changed: the directory, command, shell, the two copies,
        # template, lineinfile, fetch, the failing command; with become its
        # directory, command and copy
        return {"ok": 13 + (4 if self.become_to else 0),
                "changed": 9 + (3 if self.become_to else 0),
                "failures": 0, "unreachable": 0, "skipped": 0, "rescued": 0, "ignored": 1}

    @cost(30)
    def test_playbook_same_as_local(self):
        (fdoc, frc), (ldoc, lrc) = self.main["ferry"], self.main["local"]
        self.assertEqual(frc, 0, failures(fdoc))
        self.assertEqual(lrc, 0, failures(ldoc))
        self.assertEqual(sorted(fdoc["stats"]), ["h2", "h3", "h4"])
        self.assertEqual(fdoc["stats"], ldoc["stats"])
        for h, stats in fdoc["stats"].items():
            self.assertEqual(stats, self.expected_stats(), h)
        self.assertEqual(task_results(fdoc, self.base("ferry")), task_results(ldoc, self.base("local")))
        # the files: every host's directory and the fetched copies
        ferry_tree, local_tree = self.before_check["ferry"], self.before_check["local"]
        self.assertEqual(ferry_tree, local_tree)
        self.assertIn("h3/big.bin", ferry_tree)
        with open(os.path.join(self.base("ferry"), "fetched", "h4.txt")) as f:
            self.assertEqual(f.read(), "host h4, 42\nadded by lineinfile\n")
        if self.become_to:
            self.assertEqual(ferry_tree["h2/owned/mine.txt"][3], self.become_to)
        # ferryd started Ansible's /bin/sh -c itself (argv), never a shell
        # of its own in front of it (ferry.py, _command_operands)
        execs = [line for d in self.daemons for line in d.log if "event=exec" in line]
        self.assertTrue(execs)
        self.assertEqual([line for line in execs if " argv=" not in line], [])
        self.assertTrue(all(" argv=\"/bin/sh -c " in line for line in execs), execs[:3])
        # the failing task failed, and said why, through ferry too
        failed = [r for p in fdoc["plays"] for t in p["tasks"] if t["task"]["name"] == "a failing task"
                  for r in t["hosts"].values()]
        self.assertTrue(failed and all(r["failed"] and r["rc"] == 1 for r in failed), failed)

    def test_check_diff_same_as_local(self):
        (fdoc, frc), (ldoc, lrc) = self.check["ferry"], self.check["local"]
        self.assertEqual(frc, 0, failures(fdoc))
        self.assertEqual(lrc, 0, failures(ldoc))
        self.assertEqual(fdoc["stats"], ldoc["stats"])
        self.assertEqual(list(fdoc["stats"]), ["h2"])
        stats = fdoc["stats"]["h2"]
        self.assertEqual((stats["ok"], stats["changed"], stats["failures"]), (3, 3, 0))
        fres = task_results(fdoc, self.base("ferry"))
        self.assertEqual(fres, task_results(ldoc, self.base("local")))
        self.assertIn("only in check mode", fres["h2"][0][3])       # lineinfile's diff
        # check mode changed nothing on disk
        for run in ("ferry", "local"):
            self.assertEqual(tree(self.base(run)), self.before_check[run], run)

    def test_inventory_options(self):
        # down: a port nothing listens on (a ferryd's, once it has stopped);
        # noferry: a client that is not there; viaconf: address, port and
        # key from a ferry host configuration (-F); plain: a ferryd
        # --plaintext holding the key under a name (--keys), a connect
        # timeout
        spare = start_ferryd("--root", self.tmp, key_path=self.key, listen="127.0.0.5:0")
        port = spare.hostport()[1]
        spare.stop()
        keys = os.path.join(self.tmp, "keys")
        with open(self.key) as f:
            hexkey = f.read().strip()
        fd = os.open(keys, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("ansible %s\n" % hexkey)
        plain = start_ferryd("--root", self.tmp, "--keys", keys, "--plaintext", listen=HOSTS[1] + ":0")
        self.addCleanup(plain.stop_quietly)
        conf = self.write("ferry.conf", "Host fleet-h2\n    Address %s\n    Port %d\n    KeyFile %s\n"
                          % (HOSTS[0], self.daemons[0].hostport()[1], self.key))
        os.chmod(conf, 0o600)
        key = {"ansible_ferry_key_file": self.key}
        inv = inventory(os.path.join(self.tmp, "options.ini"), [
            ("down", dict(key, ansible_host="127.0.0.5", ansible_port=port)),
            ("noferry", dict(key, ansible_host=HOSTS[0], ansible_port=self.daemons[0].hostport()[1],
                             ansible_ferry_executable=os.path.join(self.tmp, "no-such-ferry"))),
            ("viaconf", {"ansible_host": "fleet-h2", "ansible_ferry_config": conf}),
            ("plain", dict(key, ansible_host=HOSTS[1], ansible_port=plain.hostport()[1],
                           ansible_ferry_plaintext="true", ansible_ferry_key_name="ansible",
                           ansible_ferry_timeout=5)),
        ], {"ansible_connection": "ferry", "ansible_ferry_executable": self.ferry,
            "ansible_ferry_remote_root": self.tmp})
        doc, rc = finish(start_playbook(self.tmp, inv, self.write("ping.yml", PING)))
        self.assertNotEqual(rc, 0)
        stats = doc["stats"]
        self.assertEqual(stats["down"]["unreachable"], 1, stats)
        self.assertEqual(stats["noferry"]["failures"], 1, stats)
        res = doc["plays"][0]["tasks"][0]["hosts"]
        self.assertIn("ferry: cannot connect to 127.0.0.5:%d" % port, res["down"]["msg"])
        self.assertIn("cannot run the ferry client", res["noferry"]["msg"])
        self.assertIn("no-such-ferry", res["noferry"]["msg"])
        for h in ("viaconf", "plain"):
            self.assertEqual((stats[h]["ok"], stats[h]["failures"], stats[h]["unreachable"]), (1, 0, 0),
                             (h, res[h]))
        self.assertTrue([line for line in plain.log if "event=exec" in line], plain.log[-5:])

    def test_persist_leaves_a_master_the_next_tasks_use(self):
        host, port = self.daemons[0].hostport()
        target = "%s:%d" % (host, port)
        env = ansible_env(self.tmp)
        master = [self.ferry, "master", "-k", self.key]
        self.addCleanup(subprocess.run, master + ["--stop", target], env=env, capture_output=True)
        inv = inventory(os.path.join(self.tmp, "persist.ini"), [
            ("kept", {"ansible_host": host, "ansible_port": port, "ansible_ferry_persist": 30,
                      "ansible_ferry_key_file": self.key})],
            {"ansible_connection": "ferry", "ansible_ferry_executable": self.ferry,
             "ansible_ferry_remote_root": self.tmp})
        doc, rc = finish(start_playbook(self.tmp, inv, self.write("ping2.yml", PING + PING)))
        self.assertEqual(rc, 0, doc)
        # The first task's command started the master; it runs on.
        r = subprocess.run(master + ["--check", target], env=env, capture_output=True)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_transfers_outside_the_served_root(self):
        # this ferryd serves served/, while Ansible's temporaries and the
        # files copied and fetched lie outside it: they go through ferry
        # exec and cat, and arrive whole
        served = os.path.join(self.tmp, "served")
        os.mkdir(served)
        d = start_ferryd("--root", served, key_path=self.key, listen=HOSTS[2] + ":0")
        self.addCleanup(d.stop_quietly)
        inv = inventory(os.path.join(self.tmp, "outside.ini"), [
            ("h4", {"ansible_host": HOSTS[2], "ansible_port": d.hostport()[1]})],
            {"ansible_connection": "ferry", "ansible_ferry_key_file": self.key,
             "ansible_ferry_executable": self.ferry, "ansible_ferry_remote_root": served})
        out, back = os.path.join(self.tmp, "outside-out"), os.path.join(self.tmp, "outside-back")
        os.mkdir(out)
        doc, rc = finish(start_playbook(self.tmp, inv, self.write("outside.yml", OUTSIDE),
                                        extra={"files": os.path.join(self.tmp, "files"),
                                               "out": out, "back": back}))
        self.assertEqual(rc, 0, failures(doc))
        self.assertEqual(doc["stats"]["h4"]["changed"], 2, doc["stats"])
        for path in (os.path.join(out, "big.bin"), os.path.join(back, "big.bin")):
            with open(path, "rb") as f:
                self.assertEqual(hashlib.sha1(f.read()).hexdigest(), self.big_sha1, path)
        self.assertEqual([n for n in os.listdir(out) if n != "big.bin"], [])   # no temporary left
        execs = [line for line in d.log if "event=exec" in line]
        self.assertTrue([line for line in execs if ".ferry-put" in line], execs)
        self.assertTrue([line for line in execs if 'argv="cat -- ' in line], execs)
        self.assertEqual(os.listdir(served), [])

    @unittest.skipUnless(IS_ROOT, WHY_NOT_ROOT)
    def test_become_with_password(self):
        # sudo asks root for no password, so this ferryd runs as a user of
        # its own whose sudo rule wants its password
        password = os.urandom(12).hex()
        user = TestUser(self.tmp, "p", password=password, sudo_rule="ALL=(ALL:ALL) ALL")
        self.addCleanup(user.remove)
        key = os.path.join(self.tmp, "key-" + user.name)
        write_key(key)
        os.chown(key, user.pw.pw_uid, user.pw.pw_gid)
        d = start_ferryd("--root", self.tmp, key_path=key, listen=HOSTS[1] + ":0", preexec_fn=user.become)
        self.addCleanup(d.stop_quietly)
        ckey = os.path.join(self.tmp, "key-client")
        shutil.copy(key, ckey)
        os.chown(ckey, 0, 0)
        where = {"ansible_host": HOSTS[1], "ansible_port": d.hostport()[1]}
        inv = inventory(os.path.join(self.tmp, "pw.ini"), [
            ("right", dict(where, ansible_become_password=password)),
            ("wrong", dict(where, ansible_become_password="not-" + password)),
        ], {"ansible_connection": "ferry", "ansible_ferry_key_file": ckey, "ansible_user": user.name,
            "ansible_ferry_executable": self.ferry, "ansible_ferry_remote_root": self.tmp})
        doc, rc = finish(start_playbook(self.tmp, inv, self.write("pw.yml", WHOAMI),
                                        extra={"become_to": self.become_to}))
        self.assertEqual(doc["stats"]["right"]["failures"], 0, doc["plays"][0]["tasks"][0])
        self.assertEqual(doc["stats"]["right"]["ok"], 2, doc["stats"])
        self.assertEqual(doc["stats"]["wrong"]["failures"], 1, doc["stats"])
        self.assertIn("Incorrect sudo password", doc["plays"][0]["tasks"][0]["hosts"]["wrong"]["msg"])


if __name__ == "__main__":
    main()
