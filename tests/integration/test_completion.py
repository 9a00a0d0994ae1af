"""Shell completion for ferry: completion/ferry.bash, run by a real bash with
the completion function called as bash calls it (COMP_WORDS, COMP_CWORD),
and completion/_ferry, run by a real interactive zsh on a pseudo-terminal
with compinit, the line typed and Tab pressed (the matches zsh's compadd
takes are printed as it takes them).  The same cases for both:
subcommands, options read from the programs' --help, host names from the
host configuration, remote paths asked of a real ferryd, local files, and a
server that does not answer costing a bounded wait and no output."""
import os
import pty
import re
import select
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

import ferrytest
from ferrytest import SLOW, write_key

FERRY = ferrytest.binary("ferry")
COMPLETION = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "completion")
SCRIPT = os.path.join(COMPLETION, "ferry.bash")
ZSH = shutil.which("zsh")


class Completion:
    """The cases; complete() is the shell's."""

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

    def env(self):
        env = {"PATH": os.path.dirname(FERRY) + ":" + os.environ.get("PATH", "/usr/bin:/bin"),
               "HOME": self.home, "LANG": "C.UTF-8"}
        env.update(ferrytest.sanitizer_env())
        return env

    def test_subcommands_and_options(self):
        self.assertEqual(self.complete("ferry", "s"), ["shell", "stat"])
        self.assertEqual(self.complete("ferry", "co"), ["config"])
        self.assertIn("--keep-going", self.complete("ferry", "shell", "--k"))
        self.assertIn("--no-stdin", self.complete("ferry", "exec", "--no"))
        self.assertIn("--plaintext", self.complete("ferry", "--pl"))

    def test_every_subcommand_of_the_help(self):
        listed = re.findall(r"^  ferry (\w+) ", ferrytest.run("ferry", "--help").stdout, re.M)
        self.assertEqual(self.complete("ferry", ""), sorted(set(listed)))

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
        # put -w / get -w: no HOST operand; put's FILE is a local file, get's
        # DIR a local directory (its FILE is each host's: nothing offered).
        self.assertEqual(self.complete("ferry", "put", "-w", "box", "up"), ["upload.bin"])
        self.assertEqual(self.complete("ferry", "put", "-f", "2", "-g", "farm", "up"),
                         ["upload.bin"])
        self.assertEqual(self.complete("ferry", "get", "-w", "box", "re"), [])
        self.assertEqual([w.rstrip("/") for w in
                          self.complete("ferry", "get", "-w", "box", "readme.txt", "s")], ["sub"])

    def test_remote_paths(self):
        self.assertEqual(self.complete("ferry", "get", "box", ""),
                         ["logs/", "readme.txt"])
        self.assertEqual(self.complete("ferry", "ls", "box", "logs/"),
                         ["logs/a.gz", "logs/b.gz", "logs/old/"])
        self.assertEqual(self.complete("ferry", "rm", "--plaintext", "-k", self.key, "box",
                                       "re"), [])          # a TLS server: ls fails, quietly

    def test_remote_names_are_offered_quoted_and_never_run(self):
        # bash's compgen -W expanded the names it was given, so a file on the
        # server named $(cmd) ran cmd here at a Tab; and a name with a blank
        # came back as two words.
        weird = os.path.join(self.root, "weird")
        os.mkdir(weird)
        self.addCleanup(shutil.rmtree, weird)
        for name in ("$(touch ran)", "odd name.txt"):
            open(os.path.join(weird, name), "w").close()
        got = self.complete("ferry", "stat", "box", "weird/")
        self.assertFalse(os.path.exists(os.path.join(self.local, "ran")), "a name ran")
        # As the line will hold them: each blank and metacharacter escaped.
        self.assertEqual(got, ["weird/\\$\\(touch\\ ran\\)", "weird/odd\\ name.txt"])
        if isinstance(self, BashCompletionTest):
            # What was typed escaped is read back so ("odd\ " is "odd ").
            self.assertEqual(self.complete("ferry", "stat", "box", "weird/odd\\ "),
                             ["weird/odd\\ name.txt"])

    def test_a_name_with_a_control_character_is_not_offered(self):
        # listed, it would reach the terminal as an escape sequence
        ctl = os.path.join(self.root, "ctl")
        os.mkdir(ctl)
        self.addCleanup(shutil.rmtree, ctl)
        for name in ("zz\x1b]0;pwned\x07", "zz\u009b31m", "zz\x7f", "zz-plain"):
            open(os.path.join(ctl, name), "w").close()
        self.assertEqual(self.complete("ferry", "stat", "box", "ctl/"), ["ctl/zz-plain"])

    def test_a_symlink_is_offered_by_its_name_not_its_ls_line(self):
        # ls shows a link as "name -> target"; only the name is a path.
        links = os.path.join(self.root, "links")
        os.mkdir(links)
        self.addCleanup(shutil.rmtree, links)
        os.symlink("../readme.txt", os.path.join(links, "to-readme"))
        os.symlink("/etc/passwd", os.path.join(links, "to out"))
        self.assertEqual(self.complete("ferry", "get", "box", "links/"),
                         ["links/to-readme", "links/to\\ out"])

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


class BashCompletionTest(Completion, unittest.TestCase):
    def complete(self, *words):
        """COMPREPLY for the line `words` (the last one is being typed)."""
        script = ('source %s; COMP_WORDS=(%s); COMP_CWORD=%d; _ferry; '
                  'printf "%%s\\n" "${COMPREPLY[@]}"'
                  % (shlex.quote(SCRIPT), " ".join(shlex.quote(w) for w in words),
                     len(words) - 1))
        r = subprocess.run(["bash", "--noprofile", "--norc", "-c", script], capture_output=True,
                           env=self.env(), cwd=self.local, timeout=30 * SLOW)
        self.assertEqual(r.returncode, 0, r.stderr)
        return sorted(l for l in r.stdout.decode().splitlines() if l)


# Sourced by the zsh under test: compinit with completion/ first in fpath,
# and compadd wrapped so that every match it takes is printed between
# markers, as the word it would make (after any ignored prefix: compset -P).  The wrapper lets calls that only test matches (-O, -A, -D) through
# untouched, as they add nothing.  After the completion the shell exits.
ZSH_SETUP = r"""
PS1=
fpath=(%s $fpath)
autoload -Uz compinit
compinit -u -D
zstyle ':completion:*' list-grouped false
_ferry_test_done() { print -r -- '@@done@@' }
comppostfuncs=(_ferry_test_done exit)
compadd() {
    if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then
        builtin compadd "$@"
        return
    fi
    local -a __hits
    local __h
    builtin compadd -A __hits "$@"
    for __h in $__hits; do print -r -- "@@hit@@$IPREFIX$__h@@"; done
    builtin compadd "$@"
}
print -r -- '@@ready''@@'
"""


@unittest.skipUnless(ZSH, "zsh is not installed (scripts/deps.sh installs it)")
class ZshCompletionTest(Completion, unittest.TestCase):
    def complete(self, *words):
        """The matches zsh offers for the line `words` and a Tab."""
        setup = os.path.join(self.dir, "setup.zsh")
        if not os.path.exists(setup):
            with open(setup, "w") as f:
                f.write(ZSH_SETUP % shlex.quote(os.path.abspath(COMPLETION)))
        master, slave = pty.openpty()
        try:
            p = subprocess.Popen([ZSH, "-f", "-i"], stdin=slave, stdout=slave, stderr=slave,
                                 env=dict(self.env(), TERM="dumb"), cwd=self.local,
                                 start_new_session=True)
        finally:
            os.close(slave)
        self.addCleanup(p.wait)
        self.addCleanup(os.close, master)
        out = b""
        deadline = time.monotonic() + 30 * SLOW

        def read_until(mark):
            nonlocal out
            while mark not in out:
                left = deadline - time.monotonic()
                self.assertGreater(left, 0, "zsh said: %r" % out)
                if not select.select([master], [], [], left)[0]:
                    continue
                try:
                    data = os.read(master, 65536)
                except OSError:          # EIO: zsh has exited
                    data = b""
                self.assertTrue(data, "zsh exited: %r" % out)
                out += data

        try:
            os.write(master, b"source %s\n" % shlex.quote(setup).encode())
            read_until(b"@@ready@@")
            out = b""
            line = " ".join(shlex.quote(w) if w else "" for w in words)
            os.write(master, line.encode() + b"\t")
            read_until(b"@@done@@")
        finally:
            if p.poll() is None:
                p.kill()
        return sorted(set(m.decode() for m in re.findall(rb"@@hit@@(.*?)@@", out)))

    def test_hosts_from_the_file_given_with_F(self):
        conf = os.path.join(self.dir, "other-config")
        with open(conf, "w") as f:
            f.write("Host elsewhere\n")
        self.assertEqual(self.complete("ferry", "ls", "-F", conf, ""), ["elsewhere"])


if __name__ == "__main__":
    ferrytest.main()
