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
import unittest

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


class PlantedTemporary(Cli):
    """get --resume goes on only from a temporary of the user's own that
    no other name links to: on a shared machine another user may have put
    one there first."""

    def test_a_hard_linked_temporary_is_not_written_through(self):
        write(self.rp("x"), b"from the server\n")
        write(self.lp("victim"), b"the user's other file\n")
        os.link(self.lp("victim"), self.lp(".x.ferry-part"))
        r = self.ferry("get", self.p("x"), self.lp("x"), opts=("--resume",))
        self.assertOneLine(r, 1)
        self.assertIn(b"not resumed from", r.stderr)
        self.assertEqual(read(self.lp("victim")), b"the user's other file\n")
        self.assertFalse(os.path.exists(self.lp("x")))

    @unittest.skipUnless(os.geteuid() == 0, "needs a second user: root gives the file away")
    def test_a_temporary_of_another_user_is_not_resumed_from(self):
        # its first bytes are the server's, so it would pass the check
        # and become the target, still the other user's to change
        write(self.rp("x"), b"0123456789" * 100)
        write(self.lp(".x.ferry-part"), b"0123456789" * 10)
        os.chown(self.lp(".x.ferry-part"), 65534, 65534)
        os.chmod(self.lp(".x.ferry-part"), 0o666)
        r = self.ferry("get", self.p("x"), self.lp("x"), opts=("--resume",))
        self.assertOneLine(r, 1)
        self.assertIn(b"not resumed from", r.stderr)
        self.assertFalse(os.path.exists(self.lp("x")))
        # without --resume the stale one is removed and the file is ours
        self.assertOk(self.ferry("get", self.p("x"), self.lp("x")))
        self.assertEqual(os.stat(self.lp("x")).st_uid, os.geteuid())


if __name__ == "__main__":
    ft.main()
