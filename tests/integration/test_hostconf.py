"""ferry's host configuration file (src/ferry/hostconf.c, README "Host
configuration"): Host blocks with globs and negation, first value wins,
the command line over the files, `ferry config HOST`, -F, and the errors a
bad file gets (FILE:LINE, unknown keys, a file others can write), against a
real ferryd reached through an alias."""
import os
import subprocess
import tempfile
import unittest

import ferrytest
from ferrytest import SLOW, write_key

FERRY = ferrytest.binary("ferry")


class HostConfTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = cls.tmp.name
        cls.key = os.path.join(cls.dir, "key")
        write_key(cls.key)
        cls.server = ferrytest.start_ferryd(key_path=cls.key)
        cls.hostname, cls.port = cls.server.hostport()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.tmp.cleanup()

    def setUp(self):
        self.home = tempfile.mkdtemp(dir=self.dir)
        os.makedirs(os.path.join(self.home, ".config", "ferry"))
        self.conf = os.path.join(self.home, ".config", "ferry", "config")

    def write_conf(self, text, path=None, mode=0o600):
        path = path or self.conf
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def ferry(self, *args):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.home,
               "LANG": "C.UTF-8"}
        env.update(ferrytest.sanitizer_env())
        return subprocess.run([FERRY] + list(args), capture_output=True, env=env,
                              timeout=20 * SLOW)

    def settings(self, *args):
        r = self.ferry("config", *args)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = {}
        for line in r.stdout.decode().splitlines():
            k, _, v = line.partition(" ")
            out.setdefault(k, []).append(v)
        return {k: v[0] if len(v) == 1 else v for k, v in out.items()}

    def test_alias_reaches_the_server(self):
        self.write_conf("Host web1\n    Address %s\n    Port %d\n    KeyFile %s\n"
                        % (self.hostname, self.port, self.key))
        r = self.ferry("exec", "web1", "echo", "through the alias")
        self.assertEqual((r.returncode, r.stdout), (0, b"through the alias\n"), r.stderr)

    def test_first_value_wins_and_negation(self):
        self.write_conf("Port 1000\n"                      # before any Host: every host
                        "Host web* !web-test\n"
                        "  Port 2000\n  Keepalive 3\n  KeyName=webkey\n"
                        "Host *\n  Port 3000\n  Keepalive 4\n  ConnectTimeout 2.5\n")
        s = self.settings("web7")
        self.assertEqual((s["port"], s["keepalive"], s["keyname"], s["connecttimeout"]),
                         ("1000", "3", "webkey", "2.5"))
        s = self.settings("web-test")
        self.assertEqual((s["keepalive"], s["keyname"]), ("4", "ferry"))

    def test_command_line_wins(self):
        self.write_conf("Host h\n  Address 10.1.2.3\n  Port 2000\n  KeyFile ~/some.key\n"
                        "  Keepalive 5\n  ConnectTimeout 7\n  Plaintext yes\n")
        s = self.settings("h")
        self.assertEqual((s["address"], s["port"], s["keyfile"], s["plaintext"]),
                         ("10.1.2.3", "2000", os.path.join(self.home, "some.key"), "yes"))
        s = self.settings("-k", "/other.key", "--keepalive", "0", "--connect-timeout", "1",
                          "h:4000")
        self.assertEqual((s["port"], s["keyfile"], s["keepalive"], s["connecttimeout"]),
                         ("4000", "/other.key", "0", "1"))

    def test_groups_and_ipv6(self):
        self.write_conf("Group web web1 web2\nGroup all web1 db1\nHost v6\n  Address ::1\n")
        self.assertEqual(self.settings("web1")["group"], ["web", "all"])
        self.assertNotIn("group", self.settings("db2"))
        s = self.settings("v6")
        self.assertEqual((s["address"], s["port"]), ("::1", "7171"))

    def test_dash_f_is_the_only_file(self):
        self.write_conf("Host h\n  Port 2000\n")
        other = self.write_conf("Host h\n  Port 3000\n", os.path.join(self.home, "alt"))
        self.assertEqual(self.settings("-F", other, "h")["port"], "3000")
        r = self.ferry("config", "-F", os.path.join(self.home, "missing"), "h")
        self.assertEqual(r.returncode, 255)
        self.assertIn(b"cannot read", r.stderr)

    def test_bad_files_are_errors_with_file_and_line(self):
        cases = [
            ("Host h\n  Prot 2000\n", b":2: unknown key 'Prot'"),
            ("Host h\n  Port 99999\n", b":2: Port: expected a port number"),
            ("\n# c\nPlaintext maybe\n", b":3: Plaintext: expected yes or no"),
            ("Keepalive -1\n", b":1: Keepalive: expected seconds"),
            ("Group\tweb\n", b":1: Group web: expected the hosts it names"),
            ("Host\n", b":1: Host: expected a value"),
        ]
        for text, want in cases:
            with self.subTest(text=text):
                self.write_conf(text)
                r = self.ferry("exec", "-k", self.key, "h", "true")
                self.assertEqual(r.returncode, 255, r.stderr)
                self.assertIn(self.conf.encode() + want, r.stderr)
                self.assertEqual(r.stderr.count(b"\n"), 1, r.stderr)

    def test_an_unknown_key_lists_every_keyword(self):
        self.write_conf("Host h\n  Prot 2000\n")
        r = self.ferry("config", "h")
        self.assertEqual(r.returncode, 255, r.stderr)
        listed = r.stderr.decode().split("(", 1)[1].lower()
        self.write_conf("Host h\n")
        for keyword in self.settings("h"):
            self.assertRegex(listed, r"\b%s\b" % keyword)
        self.assertIn("host, group, ", listed)

    def test_a_file_others_can_write_is_refused(self):
        self.write_conf("Host h\n  Port 2000\n", mode=0o620)
        r = self.ferry("config", "h")
        self.assertEqual(r.returncode, 255)
        self.assertIn(b"others can write it", r.stderr)
        self.assertIn(b"chmod go-w", r.stderr)


if __name__ == "__main__":
    ferrytest.main()
