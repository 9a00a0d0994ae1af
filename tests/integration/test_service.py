"""ferryd as a system service (README "Run ferryd as a service"): socket
activation through systemd-socket-activate (the first client's command
runs, and ferryd goes on serving the inherited socket), the readiness and
stopping notifications on NOTIFY_SOCKET, and the configuration file
(ferryd -f FILE: every long option as `KEY VALUE`, the command line over
the file, FILE:LINE in errors, unknown keys and files others can change
refused)."""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import unittest

import ferrytest
from ferrytest import SANITIZED, SLOW, Session, write_key

FERRYD = ferrytest.binary("ferryd")
ACTIVATE = shutil.which("systemd-socket-activate")
ANALYZE = shutil.which("systemd-analyze")
STRACE = shutil.which("strace")
BUILD = os.path.dirname(os.path.abspath(ferrytest.BIN))
SOURCE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# `systemd-analyze security ferryd.service`, as the README records it
# ("Run ferryd as a service"):
# a change that loosens the sandbox has to say so there and here.
EXPOSURE = 1.5


def free_port():
    """A loopback port nobody listens on right now (systemd-socket-activate
    takes no port 0); the caller tries again should another test take it
    in between."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def exe_of(pid):
    return os.path.basename(os.readlink("/proc/%d/exe" % pid))


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.dir = self.tmp.name
        self.key_path = os.path.join(self.dir, "key")
        self.key = write_key(self.key_path)
        self.root = os.path.join(self.dir, "root")
        os.mkdir(self.root)

    def exec_env(self, hostport):
        """The environment a command run by the ferryd at hostport sees."""
        r = ferrytest.run("ferry", "exec", "-k", self.key_path, hostport, "env")
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout


@unittest.skipUnless(ACTIVATE, "systemd-socket-activate is not installed (package systemd)")
class SocketActivationTest(Base):
    def activate(self, *args):
        """systemd-socket-activate listening for ferryd; ferryd itself is
        started only by the first connection."""
        for _ in range(5):
            port = free_port()
            srv = ferrytest.start_server(
                "ferryd", "--key-file", self.key_path, "--root", self.root, *args, endpoints=0,
                prefix=(ACTIVATE, "-l", "127.0.0.1:%d" % port))
            self.addCleanup(srv.stop_quietly)
            try:
                srv.wait_for_log(r"Listening on 127\.0\.0\.1:%d" % port)
                return srv, "127.0.0.1:%d" % port
            except AssertionError:
                if srv.proc.poll() is None:
                    raise
                srv.kill()   # the port was taken in between: another one
        self.fail("systemd-socket-activate never listened")

    def test_first_client_runs_and_ferryd_serves_the_inherited_socket(self):
        srv, hostport = self.activate("--listen", "127.0.0.1:0")
        self.assertEqual(exe_of(srv.pid), "systemd-socket-activate")   # nothing started yet
        r = ferrytest.run("ferry", "exec", "-k", self.key_path, hostport, "echo", "first")
        self.assertEqual((r.returncode, r.stdout), (0, "first\n"), r.stderr)
        # The activator exec'd ferryd, which serves the socket it was given
        # rather than --listen.
        self.assertEqual(exe_of(srv.pid), "ferryd")
        # The log says where the socket came from (it read as if ferryd
        # had bound it).
        srv.wait_for_log(r"listening on tcp %s \(from systemd, event model\)$"
                         % hostport.replace(".", r"\."))
        srv.wait_for_log(r"serving the 1 socket systemd passed; --listen is not used")
        self.assertEqual(sum("listening on" in line for line in srv.log), 1, srv.log)
        # Still the same process for the next client, and the commands it
        # runs inherit neither the variables nor the socket.
        env = self.exec_env(hostport)
        self.assertNotIn("LISTEN_", env)
        r = ferrytest.run("ferry", "exec", "-k", self.key_path, hostport, "sh", "-c",
                          "ls /proc/self/fd")
        self.assertEqual(sorted(r.stdout.split()), ["0", "1", "2", "3"], r.stdout)  # 3: ls's dir
        self.assertEqual(exe_of(srv.pid), "ferryd")
        self.assertEqual(srv.stop(), 0)

    def test_the_fork_model_serves_the_inherited_socket(self):
        srv, hostport = self.activate("--model", "fork")
        for word in ("one", "two"):
            r = ferrytest.run("ferry", "exec", "-k", self.key_path, hostport, "echo", word)
            self.assertEqual((r.returncode, r.stdout), (0, word + "\n"), r.stderr)
        srv.wait_for_log(r"listening on tcp %s \(from systemd, fork model\)$"
                         % hostport.replace(".", r"\."))
        self.assertEqual(srv.stop(), 0)


class NotifyTest(Base):
    def notify_socket(self, abstract=False):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        if abstract:
            name = "@ferrytest-notify-%d-%s" % (os.getpid(), os.urandom(4).hex())
            sock.bind("\0" + name[1:])
        else:
            name = os.path.join(self.dir, "notify")
            sock.bind(name)
        sock.settimeout(10 * SLOW)
        return sock, name

    def check_ready_and_stopping(self, abstract):
        sock, name = self.notify_socket(abstract)
        env = dict(os.environ, NOTIFY_SOCKET=name)
        srv = ferrytest.start_ferryd("--root", self.root, key_path=self.key_path, env=env)
        self.addCleanup(srv.stop_quietly)
        msg = sock.recv(4096).decode()
        self.assertIn("READY=1", msg.split("\n"))
        # The commands ferryd runs cannot speak for it.
        self.assertNotIn("NOTIFY_SOCKET", self.exec_env("%s:%d" % srv.hostport()))
        # STOPPING=1 comes when the stop begins, while a running command
        # still holds ferryd in its grace period, not when it is over.
        client = subprocess.Popen([ferrytest.binary("ferry"), "exec", "-k", self.key_path,
                                   "%s:%d" % srv.hostport(), "sleep", str(2 * SLOW)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(client.kill)
        ferrytest.wait_until(lambda: srv.children(), what="the command to run")
        srv.proc.terminate()
        self.assertIn("STOPPING=1", sock.recv(4096).decode().split("\n"))
        self.assertIsNone(srv.proc.poll())
        self.assertEqual(srv.stop(), 0)
        client.wait(timeout=10 * SLOW)

    def test_ready_and_stopping_on_a_path(self):
        self.check_ready_and_stopping(abstract=False)

    def test_ready_and_stopping_in_the_abstract_namespace(self):
        self.check_ready_and_stopping(abstract=True)

    def test_sockets_meant_for_another_process_are_not_taken(self):
        # LISTEN_PID names someone else (a parent that was activated):
        # ferryd binds --listen, and descriptor 3 is not touched.
        env = dict(os.environ, LISTEN_PID="1", LISTEN_FDS="1")
        srv = ferrytest.start_ferryd("--root", self.root, key_path=self.key_path, env=env)
        self.addCleanup(srv.stop_quietly)
        self.assertNotIn("LISTEN_", self.exec_env("%s:%d" % srv.hostport()))
        self.assertEqual(srv.stop(), 0)


class ConfigFileTest(Base):
    def conf(self, text, mode=0o600, name="ferryd.conf"):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def ferryd_fails(self, *args):
        r = subprocess.run([FERRYD] + list(args), capture_output=True, text=True,
                           timeout=10 * SLOW)
        self.assertEqual(r.returncode, 2, r.stderr)
        return r.stderr

    def test_every_setting_from_the_file(self):
        path = self.conf("# a system ferryd\n\n"
                         "listen 127.0.0.1:0\n"
                         "  key-file   %s  \n"
                         "root %s\n"
                         "plaintext yes\n"
                         "quiet no\n"
                         "auth-timeout 5\n" % (self.key_path, self.root))
        srv = ferrytest.start_server("ferryd", "-f", path)
        self.addCleanup(srv.stop_quietly)
        srv.wait_for_log(r"serving files from %s$" % self.root)
        # plaintext yes: a Session (which speaks in the clear) logs in.
        s = Session(srv.hostport(), key=self.key)
        res = s.run({"argv": ["sh", "-c", "echo from-conf"]})
        self.assertEqual(res["out"], b"from-conf\n")
        s.close()
        self.assertEqual(srv.stop(), 0)

    def test_the_command_line_wins(self):
        other = os.path.join(self.dir, "other")
        # The file's listen address could not be bound: the command line's
        # replaces it rather than adding to it.
        path = self.conf("listen unix:%s/no/such/dir/sock\nkey-file %s\nroot %s\n"
                         % (self.dir, self.key_path, self.root))
        srv = ferrytest.start_server("ferryd", "--config", path, "--root", other,
                                     "--listen", "127.0.0.1:0")
        self.addCleanup(srv.stop_quietly)
        srv.wait_for_log(r"serving files from %s$" % other)
        self.assertEqual(len(srv.endpoints), 1)
        self.assertEqual(srv.stop(), 0)

    def test_keys_on_the_command_line_replace_the_files_key_file(self):
        # The shipped file has key-file; --keys said 'use --key-file or
        # --keys, not both', of which only one was typed.  Each way round.
        keys = os.path.join(self.dir, "keys")
        with open(keys, "w") as f:
            f.write("alice %s\n" % ("ab" * 32))
        os.chmod(keys, 0o600)
        for line, args, want in (("key-file %s" % self.key_path, ("--keys", keys),
                                  r"keys: %s \(1 key" % keys),
                                 ("keys %s" % keys, ("--key-file", self.key_path),
                                  r"key: %s \(as 'ferry'\)" % self.key_path)):
            with self.subTest(line=line):
                path = self.conf("%s\nroot %s\n" % (line, self.root))
                srv = ferrytest.start_server("ferryd", "-f", path, "--listen", "127.0.0.1:0",
                                             "--no-sweep", *args)
                self.addCleanup(srv.stop_quietly)
                srv.wait_for_log(want)
                # Stopped only once it serves (its stop signals caught: the
                # no-sweep line comes after): a SIGTERM among the start-up
                # lines went unheeded once under TSan in CI (not understood
                # yet: the closing note of 2026-12-07 says more).
                srv.wait_for_log(r"no sweep for unfinished uploads")
                self.assertEqual(srv.stop(), 0)

    def test_errors_name_the_file_and_line(self):
        cases = [
            ("root %s\ncolour blue\n", ":2: unknown key 'colour'"),
            ("workers lots\n", ":1: bad value for --workers: 'lots'"),
            ("\n\nplaintext maybe\n", ":3: plaintext takes yes or no, not 'maybe'"),
            ("# c\nroot\n", ":2: root needs a value"),
            ("model threads\n", ":1: unknown model 'threads'"),
            ("config /etc/ferry/ferryd.conf\n", ":1: unknown key 'config'"),
            ("help yes\n", ":1: unknown key 'help'"),
        ]
        for text, want in cases:
            with self.subTest(text=text):
                path = self.conf(text.replace("%s", self.root))
                self.assertIn("ferryd: %s%s" % (path, want), self.ferryd_fails("-f", path))

    def test_a_file_others_can_change_is_refused(self):
        for mode in (0o620, 0o602):
            with self.subTest(mode=oct(mode)):
                path = self.conf("root %s\n" % self.root, mode=mode)
                err = self.ferryd_fails("-f", path)
                self.assertIn("can be changed by others", err)
                self.assertIn("chmod go-w", err)
        err = self.ferryd_fails("-f", os.path.join(self.dir, "missing.conf"))
        self.assertIn("No such file", err)


class InstalledServiceTest(unittest.TestCase):
    """The units, the account, the served directory and the configuration
    as `make install` writes them (the component "service" alone, into a
    prefix of the test's own), checked by systemd's own tools."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.prefix = os.path.join(cls.tmp.name, "prefix")
        cls.install()
        cls.units = os.path.join(cls.prefix, "lib", "systemd", "system")
        cls.conf = os.path.join(cls.prefix, "etc", "ferry", "ferryd.conf")

    @classmethod
    def install(cls):
        return subprocess.run(["cmake", "--install", BUILD, "--component", "service", "--prefix",
                               cls.prefix], check=True, capture_output=True, text=True,
                              timeout=60).stdout

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def read(self, *parts):
        with open(os.path.join(self.prefix, *parts)) as f:
            return f.read()

    def test_layout_and_paths(self):
        service = self.read("lib", "systemd", "system", "ferryd.service")
        self.assertIn("\nExecStart=%s/sbin/ferryd -f %s\n" % (self.prefix, self.conf), service)
        self.assertIn("\nType=notify\n", service)
        self.assertIn("\nAccept=no\n", self.read("lib", "systemd", "system", "ferryd.socket"))
        self.assertIn("u ferry ", self.read("lib", "sysusers.d", "ferry.conf"))
        self.assertIn("d /srv/ferry 0750 ferry ferry", self.read("lib", "tmpfiles.d", "ferry.conf"))
        self.assertIn("key-file %s/etc/ferry/key\n" % self.prefix, self.read(self.conf))

    def test_an_edited_configuration_is_kept(self):
        with open(self.conf, "a") as f:
            f.write("#edited\n")
        self.assertIn("Kept: " + self.conf, self.install())
        self.assertTrue(self.read(self.conf).endswith("#edited\n"))

    def test_the_installed_configuration_is_valid(self):
        # As the service would read it, with what only exists on a real
        # system (the key, /srv/ferry) given on the command line.
        tmp = tempfile.mkdtemp(dir=self.tmp.name)
        key = os.path.join(tmp, "key")
        write_key(key)
        srv = ferrytest.start_ferryd("-f", self.conf, "--root", os.path.join(tmp, "root"),
                                     key_path=key)
        self.addCleanup(srv.stop_quietly)
        r = ferrytest.run("ferry", "exec", "-k", key, "%s:%d" % srv.hostport(), "echo", "ok")
        self.assertEqual((r.returncode, r.stdout), (0, "ok\n"), r.stderr)

    @unittest.skipUnless(ANALYZE, "systemd-analyze is not installed (package systemd)")
    def test_systemd_analyze_verify_is_clean(self):
        sbin = os.path.join(self.prefix, "sbin")
        os.makedirs(sbin, exist_ok=True)
        if not os.path.lexists(os.path.join(sbin, "ferryd")):
            os.symlink(FERRYD, os.path.join(sbin, "ferryd"))
        # Documentation=man:ferryd(8) is checked too: the page from the tree.
        man = os.path.join(self.tmp.name, "man", "man8")
        os.makedirs(man, exist_ok=True)
        shutil.copy(os.path.join(SOURCE, "man", "ferryd.8"), man)
        r = subprocess.run([ANALYZE, "verify", "ferryd.socket", "ferryd.service"], cwd=self.units,
                           capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, MANPATH=os.path.dirname(man)))
        self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""))

    @unittest.skipUnless(ANALYZE, "systemd-analyze is not installed (package systemd)")
    def test_systemd_analyze_security_score(self):
        r = subprocess.run([ANALYZE, "security", "--offline=true", "--no-pager", "ferryd.service"],
                           cwd=self.units, capture_output=True, text=True, timeout=60)
        m = re.search(r"Overall exposure level for ferryd.service: ([0-9.]+)", r.stdout)
        self.assertTrue(m, r.stdout + r.stderr)
        self.assertLessEqual(float(m.group(1)), EXPOSURE, r.stdout)


class DistributionLayoutTest(unittest.TestCase):
    """PREFIX=/usr, as a distribution builds: the unit directories systemd's
    pkg-config file names, /etc for the configuration (GNUInstallDirs'
    rule, also /etc/opt/NAME for /opt/NAME).  Always staged with DESTDIR:
    nothing is written outside the test's directory."""

    def test_usr_and_opt_prefixes(self):
        with tempfile.TemporaryDirectory() as tmp:
            build = os.path.join(tmp, "build")
            subprocess.run(["cmake", "-S", SOURCE, "-B", build, "-DCMAKE_INSTALL_PREFIX=/usr",
                            "-DBUILD_TESTING=OFF"], check=True, capture_output=True, timeout=120)
            unitdir = subprocess.run(["pkg-config", "--variable=systemdsystemunitdir", "systemd"],
                                     capture_output=True, text=True).stdout.strip() or "/usr/lib/systemd/system"
            for prefix, etc in (("/usr", "/etc"), ("/opt/fy", "/etc/opt/fy")):
                stage = os.path.join(tmp, "stage" + prefix.replace("/", "-"))
                subprocess.run(["cmake", "--install", build, "--component", "service", "--prefix",
                                prefix], check=True, capture_output=True, timeout=60,
                               env=dict(os.environ, DESTDIR=stage))
                with open(stage + unitdir + "/ferryd.service") as f:
                    self.assertIn("\nExecStart=%s/sbin/ferryd -f %s/ferry/ferryd.conf\n" % (prefix, etc),
                                  f.read())
                self.assertTrue(os.path.isfile(stage + unitdir + "/ferryd.socket"))
                with open(stage + etc + "/ferry/ferryd.conf") as f:
                    self.assertIn("\nkey-file %s/ferry/key\n" % etc, f.read())


def syscall_set(group):
    """The system calls a systemd filter group allows, its subgroups expanded."""
    out = subprocess.run([ANALYZE, "syscall-filter", "--no-pager"], check=True,
                         capture_output=True, text=True).stdout
    groups, cur = {}, None
    for line in out.splitlines():
        if line.startswith("@"):
            cur = groups.setdefault(line.strip(), [])
        elif cur is not None and line.strip() and not line.strip().startswith("#"):
            cur.append(line.strip())

    def expand(g):
        names = set()
        for x in groups.get(g, []):
            names |= expand(x) if x.startswith("@") else {x}
        return names
    return expand(group)


@unittest.skipUnless(ANALYZE and STRACE, "needs systemd-analyze and strace (scripts/deps.sh)")
@unittest.skipIf(SANITIZED, "LeakSanitizer refuses to run under ptrace, and the sanitizers "
                 "make system calls of their own")
class SyscallFilterTest(Base):
    def test_a_session_stays_inside_the_units_filter(self):
        # Every system call ferryd (and the commands it runs: -f) makes over
        # exec, put, get, ls and rm is one SystemCallFilter= allows; one
        # outside would fail with EPERM under systemd.
        with open(os.path.join(SOURCE, "systemd", "ferryd.service.in")) as f:
            service = f.read()
        group = re.search(r"^SystemCallFilter=(@[\w-]+)$", service, re.M).group(1)
        allowed = syscall_set(group)
        self.assertIn("openat2", allowed)
        trace = os.path.join(self.dir, "strace.txt")
        srv = ferrytest.start_server("ferryd", "--listen", "127.0.0.1:0", "--key-file",
                                     self.key_path, "--root", self.root,
                                     prefix=(STRACE, "-f", "-qq", "-c", "-o", trace))
        self.addCleanup(srv.stop_quietly)
        host = "%s:%d" % srv.hostport()
        data = os.path.join(self.dir, "data")
        with open(data, "wb") as f:
            f.write(os.urandom(300000))
        for args in (["exec", host, "sh", "-c", "echo hi"], ["put", host, data, "d"],
                     ["get", host, "d", data + ".back"], ["ls", host, "."], ["rm", host, "d"]):
            r = ferrytest.run("ferry", args[0], "-k", self.key_path, *args[1:])
            self.assertEqual(r.returncode, 0, (args, r.stderr))
        (ferryd,) = srv.children()
        os.kill(ferryd, signal.SIGTERM)
        self.assertEqual(srv.proc.wait(timeout=10 * SLOW), 0)
        used = set()
        with open(trace) as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 4 and fields[-1] != "total" and re.match(r"[0-9.]+$", fields[0]):
                    used.add(fields[-1])
        self.assertIn("accept4", used)
        self.assertEqual(sorted(used - allowed), [])


if __name__ == "__main__":
    ferrytest.main()
