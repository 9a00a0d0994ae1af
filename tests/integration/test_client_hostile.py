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

    def test_get_r_into_a_directory_follows_no_symlink_in_it(self):
        # 'get -r t dest/' names dest/, not the dest/t another user planted
        write(self.rp("t", "x"), b"from the server\n")
        os.makedirs(self.lp("dest"))
        os.symlink(self.outside, self.lp("dest", "t"))
        r = self.ferry("get", self.p("t"), self.lp("dest") + "/", opts=("-r",))
        self.assertOneLine(r, 1)
        self.assertIn(b"dest/t: is a symbolic link: not followed", r.stderr)
        self.assertEqual(sorted(os.listdir(self.outside)), ["secret"])

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


CSI_C1 = "\u009b31m"         # a CSI in one C1 control, UTF-8 c2 9b


class HostileNames(Cli):
    """Names a server makes up reach no terminal with their controls:
    C1 ones in UTF-8 (U+009B is a CSI to terminals that obey C1) as well
    as C0 and DEL, in ls and in the progress bar."""

    def on_pty(self, script, *argv, env=None):
        """ferry --plaintext ARGV... against a fake, stdout and stderr on
        one pseudo-terminal: (status, what it showed, the fake)."""
        with open(self.key_path) as f:
            fake = FakeServer(script, bytes.fromhex(f.read().strip()))
        cmd, *rest = argv
        master, slave = pty.openpty()
        try:
            p = subprocess.Popen([FERRY, "--plaintext", cmd, "-k", self.key_path, fake.address,
                                  *rest], stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                                 env=env or self.env(), cwd=self.local)
            os.close(slave)
            slave = -1
            shown = ft.read_pty(master)
            status = p.wait(timeout=30 * SLOW)
        finally:
            os.close(master)
            if slave >= 0:
                os.close(slave)
        fake.join(10 * SLOW)
        self.assertIsNone(fake.error)
        return status, shown, fake

    def test_ls_shows_no_c1_control_of_a_name(self):
        def script(conn, srv):
            srv.handshake(conn)
            srv.received.append(ft.recv_frame(conn)[0])
            entry = {"kind": "file", "mode": 0o644, "filesize": 1, "mtime": 0}
            conn.sendall(ft.frame({"type": "entries", "entries": [
                dict(entry, name="a" + CSI_C1 + "b"),
                dict(entry, name="c\u001b[2Jd"),
                dict(entry, name="link", kind="link", target="x" + CSI_C1)]}) +
                ft.frame({"type": "list-end", "count": 3}))
            srv.drain(conn)
        status, shown, _ = self.on_pty(script, "ls")
        self.assertEqual(status, 0, shown)
        self.assertNotIn(b"\xc2\x9b", shown)
        self.assertNotIn(b"\x1b[2J", shown)
        self.assertIn(b"a??31mb", shown)
        self.assertIn(b"c?[2Jd", shown)
        self.assertIn(b"link -> x??31m", shown)

    def test_the_progress_bar_shows_no_c1_control_of_a_name(self):
        name = "f" + CSI_C1
        out = tempfile.mkdtemp(dir=self.local)

        def script(conn, srv):
            srv.handshake(conn, glob=True)
            srv.received.append(ft.recv_frame(conn)[0])       # glob
            conn.sendall(ft.frame({"type": "matches", "paths": [name]}) +
                         ft.frame({"type": "glob-end", "count": 1}))
            srv.received.append(ft.recv_frame(conn)[0])       # get
            conn.sendall(ft.frame({"type": "get-ready", "filesize": 0, "offset": 0,
                                   "mode": 0o644, "mtime": 0}) +
                         ft.frame({"type": "get-end", "checksum": ft.digest(b"")}))
            srv.drain(conn)
        status, shown, fake = self.on_pty(script, "get", "f*", out + "/")
        self.assertEqual(status, 0, shown)
        self.assertEqual(fake.received[3].get("path"), name)
        self.assertIn(b"f??31m", shown)        # the bar and the summary drew it
        self.assertNotIn(b"\xc2\x9b", shown)


class Bounded(Cli):
    """What a server sends is bounded before it is held: a listing's names
    are NAME_MAX bytes at most (a 64 KiB one in each of a million entries
    was 64 GiB), and its names and link targets 64 MiB in all."""

    def ls_of(self, frames):
        """ferry --plaintext ls against a fake sending `frames` (an
        iterable of entry lists, or of frames already encoded), then
        list-end: the run."""
        def script(conn, srv):
            srv.handshake(conn)
            srv.received.append(ft.recv_frame(conn)[0])
            try:
                for f in frames:
                    conn.sendall(f if isinstance(f, bytes) else
                                 ft.frame({"type": "entries", "entries": f}))
                conn.sendall(ft.frame({"type": "list-end", "count": 0}))
            except OSError:       # the client hung up: what the test wants
                pass
            srv.drain(conn)
        with open(self.key_path) as f:
            fake = FakeServer(script, bytes.fromhex(f.read().strip()))
        r = subprocess.run([FERRY, "--plaintext", "ls", "-k", self.key_path, fake.address],
                           capture_output=True, env=self.env(), timeout=60 * SLOW)
        fake.join(30 * SLOW)
        self.assertIsNone(fake.error)
        return r

    ENTRY = {"kind": "file", "mode": 0o644, "filesize": 1, "mtime": 0}

    def test_a_name_longer_than_name_max_is_refused(self):
        r = self.ls_of([[dict(self.ENTRY, name="n" * 256)]])
        self.assertOneLine(r, 255)
        self.assertIn(b"bad name in a listing", r.stderr)
        r = self.ls_of([[dict(self.ENTRY, name="n" * 255)]])
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_a_listing_past_64_mib_of_names_and_targets_is_refused(self):
        # 13 links with 4 KiB targets stay under the 64 KiB header; the
        # same frame (names may repeat) 1350 times is about 69 MiB
        link = dict(self.ENTRY, kind="link", target="t" * 4095)
        one = ft.frame({"type": "entries",
                        "entries": [dict(link, name="l%d" % j) for j in range(13)]})
        r = self.ls_of(one for _ in range(1350))
        self.assertOneLine(r, 255)
        self.assertIn(b"more than 64 MiB of names in one directory", r.stderr)


if __name__ == "__main__":
    ft.main()
