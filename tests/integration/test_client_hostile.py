"""The ferry client against what it cannot trust: a hostile server (a
fleet's compromised host, a typo'd address that answers) and other local
users on a shared machine.  Each test is an attack that once worked.

The real ferryd serves where an honest server shows the attack (a local
symlink is the attacker's part); a scripted FakeServer speaks the
plaintext protocol where the server itself is the attacker.  Nothing
sleeps to synchronise."""
import os
import pty
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ferrytest as ft  # noqa: E402
from ferrytest import SLOW  # noqa: E402
from test_files import FERRY, read, write  # noqa: E402
from test_ferry_client import FakeServer  # noqa: E402
from test_transfers_cli import Cli  # noqa: E402


class LocalTree(Cli):
    """get -r writes only into directories it made or found as
    directories under the destination: a symlink there (planted, or put in
    place of a directory while the download runs) is not followed."""

    def test_get_r_does_not_follow_a_symlink_in_the_destination(self):
        write(self.rp("t", "sub", "x"), b"from the server\n")
        write(self.rp("t", "y"), b"y\n")
        os.makedirs(self.lp("dest", "t"))
        os.symlink(self.outside, self.lp("dest", "t", "sub"))
        r = self.ferry("get", self.p("t"), self.lp("dest") + "/", opts=("-r",))
        self.assertOneLine(r, 1)
        self.assertIn(b"is a symbolic link: not followed", r.stderr)
        self.assertEqual(sorted(os.listdir(self.outside)), ["secret"])
        # the rest of the tree came
        self.assertEqual(read(self.lp("dest", "t", "y")), b"y\n")

    def test_get_r_does_not_follow_a_symlink_to_a_file_either(self):
        # a file's name that is a symlink is replaced, not written through
        write(self.rp("t", "x"), b"new\n")
        os.makedirs(self.lp("dest", "t"))
        os.symlink(os.path.join(self.outside, "secret"), self.lp("dest", "t", "x"))
        self.assertOk(self.ferry("get", self.p("t"), self.lp("dest") + "/", opts=("-r",)))
        self.assertEqual(read(os.path.join(self.outside, "secret")), b"outside the root\n")
        self.assertFalse(os.path.islink(self.lp("dest", "t", "x")))
        self.assertEqual(read(self.lp("dest", "t", "x")), b"new\n")

    def test_the_named_destination_may_be_a_symlink(self):
        # what the user named is theirs to point anywhere
        write(self.rp("t", "x"), b"x\n")
        os.symlink(self.outside, self.lp("there"))
        self.assertOk(self.ferry("get", self.p("t"), self.lp("there") + "/", opts=("-r",)))
        self.assertEqual(read(os.path.join(self.outside, "t", "x")), b"x\n")


if __name__ == "__main__":
    ft.main()
