"""bash completion for ferry (completion/ferry.bash), run by a real bash with
the completion function called as bash calls it (COMP_WORDS, COMP_CWORD):
subcommands, options read from the programs' --help, host names from the
host configuration, remote paths asked of a real ferryd, local files, and a
server that does not answer costing a bounded wait and no output."""
import os
import shlex
import socket
import subprocess
import tempfile
import time
import unittest

import ferrytest
from ferrytest import SLOW, write_key

FERRY = ferrytest.binary("ferry")
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "completion",
                      "ferry.bash")


class CompletionTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = cls.tmp.name
        cls.key = os.path.join(cls.dir, "key")
        write_key(cls.key)
        cls.root = os.path.join(cls.dir, "root")
        os.makedirs(os.path.join(cls.root, "logs", "old"))
        for name in ("logs/a.gz", "logs/b.gz", "readme.txt"):
            with open(os.path.join(cls.root, name), "w") as f:
                f.write("x")
        cls.server = ferrytest.start_ferryd("--root", cls.root, key_path=cls.key)
        host, port = cls.server.hostport()
        cls.home = os.path.join(cls.dir, "home")
        os.makedirs(os.path.join(cls.home, ".config", "ferry"))
        conf = os.path.join(cls.home, ".config", "ferry", "config")
        with open(conf, "w") as f:
            f.write("Host box\n  Address %s\n  Port %d\n  KeyFile %s\n"
                    "Host web* !web-test\n  Port 7000\nHost db1 db2\n"
                    "Group farm node7 node8\n" % (host, port, cls.key))
        os.chmod(conf, 0o600)
        cls.local = os.path.join(cls.dir, "local")
        os.makedirs(os.path.join(cls.local, "sub"))
        with open(os.path.join(cls.local, "upload.bin"), "w") as f:
            f.write("x")

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.tmp.cleanup()

    def complete(self, *words):
        """COMPREPLY for the line `words` (the last one is being typed)."""
        script = ('source %s; COMP_WORDS=(%s); COMP_CWORD=%d; _ferry; '
                  'printf "%%s\\n" "${COMPREPLY[@]}"'
                  % (shlex.quote(SCRIPT), " ".join(shlex.quote(w) for w in words),
                     len(words) - 1))
        env = {"PATH": os.path.dirname(FERRY) + ":" + os.environ.get("PATH", "/usr/bin:/bin"),
               "HOME": self.home, "LANG": "C.UTF-8"}
        for name in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "TSAN_OPTIONS"):
            if name in os.environ:
                env[name] = os.environ[name]
        r = subprocess.run(["bash", "--noprofile", "--norc", "-c", script], capture_output=True,
                           env=env, cwd=self.local, timeout=30 * SLOW)
        self.assertEqual(r.returncode, 0, r.stderr)
        return sorted(l for l in r.stdout.decode().splitlines() if l)

    def test_subcommands_and_options(self):
        self.assertEqual(self.complete("ferry", "s"), ["shell", "stat"])
        self.assertEqual(self.complete("ferry", "co"), ["config"])
        self.assertIn("--keep-going", self.complete("ferry", "shell", "--k"))
        self.assertIn("--no-stdin", self.complete("ferry", "exec", "--no"))
        self.assertIn("--plaintext", self.complete("ferry", "--pl"))

    def test_hosts_from_the_configuration(self):
        self.assertEqual(self.complete("ferry", "exec", ""), ["box", "db1", "db2", "node7",
                                                              "node8"])
        self.assertEqual(self.complete("ferry", "get", "-k", self.key, "n"), ["node7", "node8"])

    def test_fleet_options(self):
        # exec -w / -x: host names after the last comma; -g: group names;
        # with -w the operands are the command's, not hosts.
        self.assertEqual(self.complete("ferry", "exec", "-w", "d"), ["db1", "db2"])
        self.assertEqual(self.complete("ferry", "exec", "-w", "box,node"),
                         ["box,node7", "box,node8"])
        self.assertEqual(self.complete("ferry", "exec", "-x", "b"), ["box"])
        self.assertEqual(self.complete("ferry", "exec", "-g", ""), ["farm"])
        self.assertEqual(self.complete("ferry", "exec", "-g", "farm", ""), [])
        self.assertIn("--json", self.complete("ferry", "exec", "--js"))

    def test_remote_paths(self):
        self.assertEqual(self.complete("ferry", "get", "box", ""),
                         ["logs/", "readme.txt"])
        self.assertEqual(self.complete("ferry", "ls", "box", "logs/"),
                         ["logs/a.gz", "logs/b.gz", "logs/old/"])
        self.assertEqual(self.complete("ferry", "rm", "--plaintext", "-k", self.key, "box",
                                       "re"), [])          # a TLS server: ls fails, quietly

    def test_local_files_for_put_and_key_options(self):
        self.assertEqual(self.complete("ferry", "put", "box", "up"), ["upload.bin"])
        self.assertEqual(self.complete("ferry", "exec", "-k", "su"), ["sub"])

    def test_a_silent_server_costs_a_bounded_wait(self):
        # A listener that never answers: the TCP connect succeeds (backlog),
        # the TLS handshake never does.
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        self.addCleanup(silent.close)
        host = "127.0.0.1:%d" % silent.getsockname()[1]
        t0 = time.monotonic()
        self.assertEqual(self.complete("ferry", "ls", "-k", self.key, host, ""), [])
        self.assertLess(time.monotonic() - t0, 10 * SLOW)


if __name__ == "__main__":
    ferrytest.main()
