"""ferry as the remote command of the fleet tools people have (issue 16):
`pdsh -R exec -w h[1-3] ferry exec %h CMD` and `clush -R exec -w h[1-3]
'ferry exec %h CMD'`, run for real (Debian's pdsh and clustershell) against
three ferryd on 127.0.0.2, .3 and .4, ephemeral ports, the names h1-h3
mapped to them by the host configuration file (README "Fleets with pdsh
and clush").

Checked: every output line comes back prefixed by its host, stderr too;
each name reached its own ferryd (their audit lines); the exit status is
the largest (pdsh -S, clush -S), a failing host's status included, and a
host nobody listens on gives 255 and ferry's one-line reason under its
name; under pdsh, whose commands' stdin never ends, `ferry exec -n` keeps a
command that reads stdin from waiting for ever; clush sends its stdin to
every host through ferry."""
import os
import shutil
import subprocess
import tempfile
import unittest

import ferrytest
from ferrytest import SLOW, write_key

HOSTS = ("h1", "h2", "h3")


@unittest.skipUnless(shutil.which("pdsh") and shutil.which("clush"),
                     "pdsh and clush are not installed (scripts/deps.sh installs them)")
class FleetToolsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="ferry-fleet-tools-")
        d = cls.tmp.name
        cls.key = os.path.join(d, "key")
        write_key(cls.key)
        cls.servers = {}
        try:
            for i, name in enumerate(HOSTS):
                cls.servers[name] = ferrytest.start_ferryd(key_path=cls.key,
                                                           listen="127.0.0.%d:0" % (i + 2))
        except Exception:
            cls.tearDownClass()
            raise
        # the names the fleet tools hand to ferry, in the user's own file
        # (XDG_CONFIG_HOME/ferry/config), so `ferry exec %h` is all they run
        conf = [ferrytest.host_block(name, *srv.hostport())
                for name, srv in cls.servers.items()]
        conf.append(ferrytest.host_block("down", "127.0.0.5",
                                         ferrytest.closed_port("127.0.0.5")))
        conf.append("Host *\n    KeyFile %s\n    ConnectTimeout 5\n" % cls.key)
        os.makedirs(os.path.join(d, "config", "ferry"))
        ferrytest.write_host_config(os.path.join(d, "config", "ferry", "config"), conf)
        cls.env = {"PATH": os.path.abspath(ferrytest.BIN) + os.pathsep +
                   os.environ.get("PATH", "/usr/bin:/bin"),
                   "HOME": d, "XDG_CONFIG_HOME": os.path.join(d, "config"),
                   "LANG": "C.UTF-8"}
        cls.env.update(ferrytest.sanitizer_env())

    @classmethod
    def tearDownClass(cls):
        for srv in cls.servers.values():
            srv.stop_quietly()
        cls.tmp.cleanup()

    def run_tool(self, argv, stdin=b""):
        return subprocess.run(argv, input=stdin, capture_output=True, env=self.env,
                              timeout=30 * SLOW)

    def lines(self, data):
        """The output's lines, sorted: the hosts answer in any order."""
        return sorted(data.decode().splitlines())

    def pdsh(self, hosts, *command):
        return self.run_tool(["pdsh", "-S", "-R", "exec", "-w", hosts, "ferry", "exec"] +
                             list(command))

    def clush(self, hosts, command, stdin=b""):
        return self.run_tool(["clush", "-S", "-R", "exec", "-w", hosts, command], stdin)

    def assert_each_server_ran(self, word):
        """Every ferryd logged a command naming its own host, and that word."""
        for name, srv in self.servers.items():
            srv.wait_for_log(r"event=exec .*\b%s\b.*\b%s\b|event=exec .*\b%s\b.*\b%s\b"
                             % (word, name, name, word))

    def assert_one_reason(self, stderr):
        """ferry's one line for the host nobody listens on, under its name."""
        lines = stderr.decode().splitlines()
        self.assertEqual(len([ln for ln in lines if ln.startswith("down: ferry: cannot connect "
                                                                  "to down")]), 1, lines)

    def test_pdsh_prefixes_every_line_with_its_host(self):
        r = self.pdsh("h[1-3]", "%h", "sh", "-c", 'echo "out $0"; echo "err $0" >&2', "%h")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.lines(r.stdout), ["%s: out %s" % (h, h) for h in HOSTS])
        self.assertEqual(self.lines(r.stderr), ["%s: err %s" % (h, h) for h in HOSTS])
        self.assert_each_server_ran("out")

    def test_pdsh_exit_status_is_the_largest(self):
        # h1 fails with 3, h2 with 5, h3 succeeds: pdsh -S gives 5
        r = self.pdsh("h[1-3]", "%h", "sh", "-c",
                      'echo "$0 ran"; case $0 in h1) exit 3;; h2) exit 5;; esac', "%h")
        self.assertEqual(r.returncode, 5, r.stderr)
        self.assertEqual(self.lines(r.stdout), ["%s: %s ran" % (h, h) for h in HOSTS])
        err = r.stderr.decode()
        self.assertIn("h1: ferry exited with exit code 3", err)
        self.assertIn("h2: ferry exited with exit code 5", err)
        self.assertNotIn("h3: ferry exited", err)

    def test_pdsh_unreachable_host_is_255(self):
        r = self.pdsh("h1,down", "%h", "echo", "up")
        self.assertEqual(r.returncode, 255, r.stderr)
        self.assertEqual(self.lines(r.stdout), ["h1: up"])
        # ferry's own reason, one line, under the host's name
        self.assert_one_reason(r.stderr)
        self.assertIn("down: ferry exited with exit code 255", r.stderr.decode())

    def test_pdsh_stdin_never_ends_so_n_gives_null(self):
        # pdsh gives a remote command a socket for stdin that it never
        # writes to nor closes, as it does ssh: with -n the command reads
        # /dev/null and ends, where it would otherwise wait for ever.
        r = self.pdsh("h[1-3]", "-n", "%h", "sh", "-c", 'cat; echo "$0 read all"', "%h")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.lines(r.stdout), ["%s: %s read all" % (h, h) for h in HOSTS])

    def test_clush_exec_worker(self):
        r = self.clush("h[1-3]", "ferry exec %h 'echo out %h; echo err %h >&2'")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.lines(r.stdout), ["%s: out %s" % (h, h) for h in HOSTS])
        self.assertEqual(self.lines(r.stderr), ["%s: err %s" % (h, h) for h in HOSTS])
        self.assert_each_server_ran("out")

    def test_clush_status_failures_and_stdin(self):
        # clush hands its stdin to every host's command; ferry forwards it
        r = self.clush("h[1-3],down", "ferry exec %h 'cat; test %h != h2 || exit 7'",
                       stdin=b"to all\n")
        self.assertEqual(r.returncode, 255, r.stderr)
        self.assertEqual(self.lines(r.stdout), ["%s: to all" % h for h in HOSTS])
        err = r.stderr.decode()
        self.assertIn("h2: exited with exit code 7", err)
        self.assertIn("down: exited with exit code 255", err)
        self.assert_one_reason(r.stderr)


if __name__ == "__main__":
    ferrytest.main()
