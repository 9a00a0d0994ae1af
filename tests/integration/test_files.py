"""The file service of ferryd and ferry (issue 4; docs/PROTOCOL.md 2.4): stat,
list, mkdir, rm, put and get, with integrity, atomic commit, resume, the
sandboxed root, concurrency, faults, the `ferry` commands and their progress
bar, and the tutorials' classic upload (seed 002).

Two ways in: ferrytest.Session, an independent client written from
PROTOCOL.md (for what only the protocol level can show: exact replies,
wrong checksums, connections cut at a chosen byte, bad paths), and the real
`ferry` client (end to end).  Session speaks the protocol in the clear,
so its ferryd runs with --plaintext; the `ferry` commands run over TLS 1.3
(keyed by the shared key), as users run them, against a ferryd without
--plaintext.  Servers run on ephemeral loopback ports, once per model
(event, fork) where the model matters.

Nothing sleeps to synchronise: readiness comes from log lines and sockets;
file and process state is polled against a deadline (scaled by SLOW under
the sanitizers)."""
import json
import os
import pty
import re
import resource
import select
import shutil
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ferrytest as ft  # noqa: E402
from ferrytest import MiB, PART, SLOW, SANITIZED, digest, parts_under, wait_until  # noqa: E402

FERRY = ft.binary("ferry")
FERRYD = ft.binary("ferryd")
MODELS = {"event": ["--model", "event"], "fork": ["--model", "fork"]}
SANITIZER_RX = re.compile(r"Sanitizer|runtime error:|LeakSanitizer")
GiB = 1 << 30
OPS = ("stat", "list", "mkdir", "rm", "put", "get")


def write(path, data, mode=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    if mode is not None:
        os.chmod(path, mode)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def tmpfs_allowed(where):
    """Whether a tmpfs can be mounted in a private mount namespace here."""
    if not shutil.which("unshare"):
        return False
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                        'mount -t tmpfs -o size=64k ferrytest "$1"', "sh", where],
                       capture_output=True, timeout=10 * SLOW)
    return r.returncode == 0


class FilesBase(unittest.TestCase):
    """One ferryd per class with --root ROOT; each test works in its own
    directory ROOT/<test name> (self.td, relative to the root).  PLAINTEXT:
    the class's ferryds run with --plaintext (for Session), else TLS
    (for the ferry client)."""

    ARGS = ["--model", "event"]
    PLAINTEXT = True

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="ferry-files-")
        cls.dir = cls.tmp.name
        cls.key_path = os.path.join(cls.dir, "key")
        cls.key = ft.write_key(cls.key_path)
        cls.root = os.path.join(cls.dir, "root")
        os.mkdir(cls.root)
        cls.home = os.path.join(cls.dir, "home")
        os.mkdir(cls.home)
        cls.srv = ft.start_ferryd("--root", cls.root, *cls.ARGS, *cls.tls_args(),
                                  key_path=cls.key_path)
        cls.host = cls.srv.addr()
        cls.hostport = cls.srv.hostport()

    @classmethod
    def tls_args(cls, plaintext=None):
        return ["--plaintext"] if (cls.PLAINTEXT if plaintext is None else plaintext) else []

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        subprocess.run(["chattr", "-R", "-i", cls.dir], capture_output=True)
        cls.tmp.cleanup()

    def setUp(self):
        self.td = self.id().rsplit(".", 1)[1][:100]
        self.tdir = os.path.join(self.root, self.td)
        os.makedirs(self.tdir, exist_ok=True)
        self.local = tempfile.mkdtemp(prefix="local-", dir=self.dir)
        self.outside = tempfile.mkdtemp(prefix="outside-", dir=self.dir)
        write(os.path.join(self.outside, "secret"), b"outside the root\n")

    def tearDown(self):
        self.assert_healthy(self.srv)

    # -- plumbing -------------------------------------------------------------

    def assert_healthy(self, srv):
        self.assertIsNone(srv.proc.poll(), "ferryd died (status %s): %s"
                          % (srv.proc.returncode, "\n".join(srv.log[-20:])))
        bad = [l for l in srv.log if SANITIZER_RX.search(l)]
        self.assertEqual(bad, [], "sanitizer report from ferryd:\n" + "\n".join(srv.log[-60:]))

    def own_server(self, root, *extra, preexec_fn=None, prefix=(), key_path=None, endpoints=1,
                   plaintext=None):
        srv = ft.start_ferryd("--root", root, *self.ARGS, *self.tls_args(plaintext), *extra,
                              key_path=key_path or self.key_path,
                              preexec_fn=preexec_fn, prefix=prefix, endpoints=endpoints)
        self.addCleanup(self.assert_no_sanitizer_report, srv)
        self.addCleanup(srv.kill)
        return srv

    def assert_no_sanitizer_report(self, srv):
        bad = [l for l in srv.log if SANITIZER_RX.search(l)]
        self.assertEqual(bad, [], "sanitizer report from ferryd:\n" + "\n".join(srv.log[-60:]))

    def session(self, hostport=None, **kw):
        s = ft.Session(hostport or self.hostport, self.key, **kw)
        self.addCleanup(s.close)
        return s

    def p(self, *names):
        """A client path inside this test's directory."""
        return "/".join((self.td,) + names)

    def rp(self, *names):
        """The same place on disk."""
        return os.path.join(self.tdir, *names)

    def assertType(self, h, type_, code=None):
        self.assertEqual(h.get("type"), type_, h)
        if code is not None:
            self.assertEqual(h.get("code"), code, h)

    def assertFsError(self, h, *errnos):
        self.assertEqual((h.get("type"), h.get("code")), ("error", "fs"), h)
        if errnos:
            self.assertIn(h.get("errno"), errnos, h)
        self.assertTrue(h.get("message"), h)

    def assert_serving(self, srv=None, hostport=None):
        """A fresh session is served (stat of the root)."""
        hp = hostport or (srv.hostport() if srv else self.hostport)
        s = ft.Session(hp, self.key)
        try:
            self.assertType(s.stat("."), "stat")
        finally:
            s.close()

    def wait_no_parts(self, where, srv=None, timeout=10):
        wait_until(lambda: not parts_under(where), timeout,
                   "no *.ferry-part under %s (now %s)" % (where, parts_under(where)))

    def wait_not_open(self, suffix, srv=None, timeout=10):
        srv = srv or self.srv
        wait_until(lambda: not ft.open_by(srv.pid, suffix), timeout,
                   "ferryd to close %s" % suffix)


# ==== the protocol, once per model ============================================

class FilesProto:
    # -- stat, list, mkdir, rm ------------------------------------------------

    def test_stat_reports_kind_mode_size_and_mtime(self):
        write(self.rp("f.txt"), b"hello world\n", mode=0o640)
        os.utime(self.rp("f.txt"), ns=(1795000000123456789, 1795000000123456789))
        os.mkdir(self.rp("d"), 0o750)
        os.chmod(self.rp("d"), 0o750)
        os.symlink("f.txt", self.rp("l"))
        s = self.session()
        h = s.stat(self.p("f.txt"))
        self.assertType(h, "stat")
        self.assertEqual((h["kind"], h["mode"], h["filesize"], h["mtime"], h["mtime_nsec"]),
                         ("file", 0o640, 12, 1795000000, 123456789), h)
        h = s.stat(self.p("d"))
        self.assertEqual((h["type"], h["kind"], h["mode"]), ("stat", "dir", 0o750), h)
        h = s.stat(self.p("l"))       # a final symlink is not followed
        self.assertEqual((h["type"], h["kind"]), ("stat", "link"), h)
        self.assertFsError(s.stat(self.p("nothing")), "ENOENT")
        self.assertFsError(s.stat(self.p("f.txt", "below")), "ENOTDIR", "ENOENT")
        self.assertType(s.stat("."), "stat")
        self.assertEqual(s.stat(".")["kind"], "dir")

    def test_list_a_directory(self):
        write(self.rp("a"), b"1234", mode=0o600)
        write(self.rp("b"), b"")
        os.mkdir(self.rp("c"))
        os.mkfifo(self.rp("f"))
        s = self.session()
        entries, end = s.list(self.td)
        self.assertType(end, "list-end")
        self.assertEqual(end["count"], 4)
        by = {e["name"]: e for e in entries}
        self.assertEqual(sorted(by), ["a", "b", "c", "f"])
        self.assertEqual((by["a"]["kind"], by["a"]["filesize"], by["a"]["mode"]), ("file", 4, 0o600))
        self.assertEqual(by["c"]["kind"], "dir")
        self.assertEqual(by["f"]["kind"], "fifo")
        for e in entries:
            for k in ("mtime", "mtime_nsec", "mode", "filesize"):
                self.assertIn(k, e)

    def test_list_many_entries_in_frames_of_at_most_256(self):
        for i in range(600):
            write(self.rp("many", "f%03d" % i), b"x")
        entries, end = self.session().list(self.p("many"))   # the check is in Session.list
        self.assertType(end, "list-end")
        self.assertEqual(end["count"], 600)
        self.assertEqual(sorted(e["name"] for e in entries), ["f%03d" % i for i in range(600)])

    def test_list_a_file_gives_that_file(self):
        write(self.rp("one.txt"), b"abc")
        entries, end = self.session().list(self.p("one.txt"))
        self.assertType(end, "list-end")
        self.assertEqual([(e["name"], e["filesize"]) for e in entries], [("one.txt", 3)])

    def test_list_and_stat_carry_symlink_targets(self):
        """A symlink's entry says where it points, in the link's own words,
        whether that is inside the root, outside it or nowhere; nothing is
        followed (the sizes are the links' own)."""
        write(self.rp("f.txt"), b"12345")
        os.mkdir(self.rp("sub"))
        links = {"in": "f.txt", "out": "/etc/passwd", "dangling": "nowhere", "updir": "../x",
                 "todir": "sub"}
        for name, target in links.items():
            os.symlink(target, self.rp(name))
        s = self.session()
        entries, end = s.list(self.td)
        self.assertType(end, "list-end")
        by = {e["name"]: e for e in entries}
        self.assertEqual(sorted(by), sorted(list(links) + ["f.txt", "sub"]))
        for name, target in links.items():
            self.assertEqual((by[name]["kind"], by[name].get("target"), by[name]["filesize"]),
                             ("link", target, len(target)), by[name])
        self.assertNotIn("target", by["f.txt"])
        self.assertNotIn("target", by["sub"])
        h = s.stat(self.p("out"))
        self.assertEqual((h["type"], h["kind"], h.get("target")), ("stat", "link", "/etc/passwd"))
        self.assertNotIn("target", s.stat(self.p("f.txt")))
        # ls FILE on a link to a file: the link itself, target and all.
        entries, end = s.list(self.p("in"))
        self.assertType(end, "list-end")
        self.assertEqual([(e["name"], e["kind"], e.get("target")) for e in entries],
                         [("in", "link", "f.txt")])
        # The link out is still not a way out.
        self.assertEqual(s.get(self.p("out"))[0].get("code"), "path")

    def test_list_leaves_out_names_that_are_not_utf8(self):
        """A name that is not UTF-8 cannot be carried (nor named back): it
        is left out, as glob leaves it out, and the session goes on; so is
        the target of a link whose text is not UTF-8."""
        latin = os.fsencode(self.tdir) + b"/caf\xe9"
        write(latin, b"x")
        os.symlink(b"caf\xe9", os.fsencode(self.rp("latin")))
        write(self.rp("ok"), b"y")
        s = self.session()
        entries, end = s.list(self.td)
        self.assertEqual((end["type"], end["count"]), ("list-end", 2), end)
        by = {e["name"]: e for e in entries}
        self.assertEqual(sorted(by), ["latin", "ok"])
        self.assertEqual(by["latin"]["kind"], "link")
        self.assertNotIn("target", by["latin"])
        self.assertNotIn("target", s.stat(self.p("latin")))
        self.assertType(s.stat("."), "stat")

    def test_list_long_names_and_targets_stay_in_bounded_frames(self):
        """256 entries with long names, or a few links with the longest
        targets all escaped (\\u0001 is 6 bytes for 1), would pass a
        receiver's 64 KiB header limit: frames end sooner."""
        names = set()
        for i in range(300):
            name = "%03d" % i + "n" * 240
            names.add(name)
            write(self.rp("long", name), b"")
        for i in range(12):
            name = "l%02d" % i + "\x01" * 200
            names.add(name)
            os.symlink("\x01" * 4095, self.rp("long", name))
        entries, end = self.session().list(self.p("long"))   # Session.list checks each frame
        self.assertEqual((end["type"], end["count"]), ("list-end", 312), end)
        self.assertEqual({e["name"] for e in entries}, names)
        self.assertEqual({e.get("target") for e in entries if e["kind"] == "link"},
                         {"\x01" * 4095})

    def test_list_missing(self):
        entries, end = self.session().list(self.p("nope"))
        self.assertEqual(entries, [])
        self.assertFsError(end, "ENOENT")

    def test_mkdir(self):
        s = self.session()
        self.assertType(s.mkdir(self.p("new")), "ok")
        self.assertTrue(os.path.isdir(self.rp("new")))
        self.assertFsError(s.mkdir(self.p("new")), "EEXIST")
        self.assertFsError(s.mkdir(self.p("x", "y", "z")), "ENOENT")
        self.assertFalse(os.path.exists(self.rp("x")))
        self.assertType(s.mkdir(self.p("x", "y", "z"), parents=True), "ok")
        self.assertTrue(os.path.isdir(self.rp("x", "y", "z")))
        self.assertType(s.mkdir(self.p("x", "y", "z"), parents=True), "ok")   # mkdir -p
        write(self.rp("file"), b"")
        self.assertFsError(s.mkdir(self.p("file"), parents=True), "EEXIST", "ENOTDIR")
        # A file on the way is not a directory, as mkdir -p says (not EEXIST).
        self.assertFsError(s.mkdir(self.p("file", "sub"), parents=True), "ENOTDIR")
        self.assertFsError(s.mkdir(self.p("file", "sub")), "ENOTDIR")

    def test_rm(self):
        write(self.rp("f"), b"x")
        os.mkdir(self.rp("empty"))
        write(self.rp("tree", "a", "b"), b"deep")
        os.symlink(self.outside, self.rp("tree", "out"))
        os.symlink(self.outside, self.rp("link"))
        s = self.session()
        self.assertType(s.rm(self.p("f")), "ok")
        self.assertFalse(os.path.lexists(self.rp("f")))
        self.assertType(s.rm(self.p("empty")), "ok")
        self.assertFalse(os.path.lexists(self.rp("empty")))
        self.assertFsError(s.rm(self.p("tree")), "ENOTEMPTY", "EEXIST", "EISDIR")
        self.assertTrue(os.path.exists(self.rp("tree", "a", "b")))
        # A symlink is removed itself, never its target.
        self.assertType(s.rm(self.p("link")), "ok")
        self.assertFalse(os.path.lexists(self.rp("link")))
        self.assertTrue(os.path.exists(os.path.join(self.outside, "secret")))
        # Recursive: the whole tree, no symlink followed.
        self.assertType(s.rm(self.p("tree"), recursive=True), "ok")
        self.assertFalse(os.path.lexists(self.rp("tree")))
        self.assertEqual(read(os.path.join(self.outside, "secret")), b"outside the root\n")
        self.assertFsError(s.rm(self.p("gone")), "ENOENT")

    def test_rm_recursive_removes_what_mkdir_p_made(self):
        # Repeated mkdir -p builds trees deeper than any one path can name;
        # rm -r once stopped at 64 levels.  1,000 levels per request here
        # (5,000 in tests/unit/test_fsops_tree.c).
        s = self.session()
        chain = "/".join(["d"] * 1000)
        self.assertType(s.mkdir(self.p("deep", chain), parents=True), "ok")
        self.assertType(s.mkdir(self.p("deep", chain, "e"), parents=True), "ok")
        self.assertType(s.rm(self.p("deep"), recursive=True), "ok")
        self.assertFalse(os.path.lexists(self.rp("deep")))
        self.assert_serving()

    def test_rm_root_is_refused(self):
        s = self.session()
        h = s.rm(".", recursive=True)
        self.assertType(h, "error")
        self.assertIn(h.get("code"), ("path", "fs"), h)
        self.assertTrue(os.path.isdir(self.tdir))
        self.assertType(s.stat("."), "stat")

    # -- put -----------------------------------------------------------------------

    def test_put_commits_exact_content_and_mode(self):
        data = os.urandom(3 * MiB + 17)
        s = self.session()
        ready, end = s.put(self.p("up.bin"), data, mode=0o640)
        self.assertEqual(ready, {"type": "put-ready", "offset": 0}, ready)
        self.assertType(end, "put-ok")
        self.assertEqual(end["filesize"], len(data))
        self.assertEqual(end["checksum"], digest(data))
        self.assertEqual(read(self.rp("up.bin")), data)
        self.assertEqual(stat.S_IMODE(os.stat(self.rp("up.bin")).st_mode), 0o640)
        self.assertEqual(parts_under(self.tdir), [])
        # The session goes on.
        self.assertEqual(s.stat(self.p("up.bin"))["filesize"], len(data))

    def test_put_sha256(self):
        data = os.urandom(100000)
        ready, end = self.session().put(self.p("s.bin"), data, alg="sha256")
        self.assertType(end, "put-ok")
        self.assertEqual(end["checksum"], digest(data, "sha256"))
        self.assertEqual(read(self.rp("s.bin")), data)

    def test_put_mtime_and_no_setid_bits(self):
        ready, end = self.session().put(self.p("t"), b"x", mode=0o6755, mtime=1500000000,
                                        mtime_nsec=250)
        self.assertType(end, "put-ok")
        st = os.stat(self.rp("t"))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o755)
        self.assertEqual(st.st_mtime_ns, 1500000000 * 10**9 + 250)

    def test_put_fsync(self):
        data = os.urandom(MiB)
        ready, end = self.session().put(self.p("synced"), data, fsync=True)
        self.assertType(end, "put-ok")
        self.assertEqual(read(self.rp("synced")), data)

    def test_put_replaces_an_existing_file(self):
        write(self.rp("r"), b"old content")
        ready, end = self.session().put(self.p("r"), b"new")
        self.assertType(end, "put-ok")
        self.assertEqual(read(self.rp("r")), b"new")

    def test_put_into_a_missing_directory(self):
        ready, end = self.session().put(self.p("nodir", "f"), b"x")
        self.assertFsError(ready, "ENOENT")
        self.assertIsNone(end)

    def test_put_empty_file(self):
        s = self.session()
        ready, end = s.put(self.p("empty"), b"")
        self.assertType(end, "put-ok")
        self.assertEqual(end["checksum"], digest(b""))
        self.assertEqual(os.path.getsize(self.rp("empty")), 0)
        ready, data, end = s.get(self.p("empty"))
        self.assertType(ready, "get-ready")
        self.assertEqual((ready["filesize"], data), (0, b""))
        self.assertEqual(end, {"type": "get-end", "checksum": digest(b"")})

    def test_put_wrong_checksum_commits_nothing(self):
        write(self.rp("keep"), b"the original")
        s = self.session()
        data = os.urandom(2 * MiB)
        bad = digest(data + b"x")
        ready, end = s.put(self.p("keep"), data, checksum=bad)
        self.assertType(end, "error", "checksum")
        self.assertEqual(read(self.rp("keep")), b"the original")
        ready, end = s.put(self.p("fresh"), data, checksum=bad)
        self.assertType(end, "error", "checksum")
        self.assertFalse(os.path.lexists(self.rp("fresh")))
        # (ferryd answers before it unlinks the temporary: poll, briefly)
        self.wait_no_parts(self.tdir, timeout=2)
        # sha256 too
        ready, end = s.put(self.p("fresh"), data, alg="sha256", checksum="0" * 64)
        self.assertType(end, "error", "checksum")
        self.assertFalse(os.path.lexists(self.rp("fresh")))
        self.wait_no_parts(self.tdir, timeout=2)
        # The session goes on.
        self.assertType(s.stat(self.p("keep")), "stat")

    def _cut_upload(self, name, total, sent, rst=False, resume=False):
        s = ft.Session(self.hostport, self.key)
        data = os.urandom(total)
        ready = s.put_begin(self.p(name), total, resume=resume)
        self.assertType(ready, "put-ready")
        if sent:
            s.send_data(data[:sent], 0, segment=max(1, sent))
        if rst:
            s.reset()
        else:
            s.close()
        return data

    def test_client_gone_mid_upload_leaves_nothing(self):
        write(self.rp("victim"), b"must survive")
        for i, (sent, rst) in enumerate([(0, False), (MiB, False), (MiB + 5, True)]):
            self._cut_upload("victim", 4 * MiB, sent, rst=rst)
            self._cut_upload("new%d" % i, 4 * MiB, sent, rst=rst)
        self.wait_no_parts(self.tdir)
        self.assertEqual(read(self.rp("victim")), b"must survive")
        self.assertEqual(sorted(os.listdir(self.tdir)), ["victim"])
        self.assert_serving()

    def test_client_gone_inside_a_data_frame_header(self):
        s = ft.Session(self.hostport, self.key)
        self.assertType(s.put_begin(self.p("hdr"), 100), "put-ready")
        s.sock.sendall(b"\x30\x00\x00\x00{\"type\":\"da")
        s.close()
        self.wait_no_parts(self.tdir)
        self.assertFalse(os.path.lexists(self.rp("hdr")))
        self.assert_serving()

    def test_leftover_temporaries_are_removed_at_start(self):
        root = os.path.join(self.local, "root2")
        write(os.path.join(root, ".a.ferry-part"), b"left over")
        write(os.path.join(root, "sub", "deeper", ".b.XXXXXX.ferry-part"), b"left over")
        write(os.path.join(root, "keep.txt"), b"kept")
        write(os.path.join(root, "mine.ferry-part"), b"a user's file, not a temporary")
        os.symlink(os.path.join(self.outside, "secret"), os.path.join(root, "l.ferry-part"))
        srv = self.own_server(root)
        # The sweep runs beside serving (a root of / takes minutes); its
        # line says when it has ended.
        srv.wait_for_log(r"swept for unfinished uploads: .*removed 2;")
        self.assertEqual(parts_under(root), ["l.ferry-part", "mine.ferry-part"])
        self.assertEqual(read(os.path.join(root, "keep.txt")), b"kept")
        self.assertEqual(read(os.path.join(root, "mine.ferry-part")), b"a user's file, not a temporary")
        self.assertEqual(read(os.path.join(self.outside, "secret")), b"outside the root\n")
        self.assert_serving(srv)

    def test_no_sweep_leaves_leftover_temporaries(self):
        """--no-sweep, or `no-sweep yes` in the -f file: the temporaries
        stay (an administrator's choice for a root too big to walk)."""
        root = os.path.join(self.local, "unswept")
        write(os.path.join(root, ".a.ferry-part"), b"left over")
        write(os.path.join(root, "sub", ".b.1a2b3c4d.ferry-part"), b"left over")
        conf = os.path.join(self.local, "ferryd.conf")
        write(conf, b"no-sweep yes\n", mode=0o600)
        for extra in (["--no-sweep"], ["-f", conf]):
            srv = self.own_server(root, *extra)
            srv.wait_for_log(r"no sweep for unfinished uploads \(--no-sweep\)")
            self.assertEqual(parts_under(root), [".a.ferry-part", "sub/.b.1a2b3c4d.ferry-part"])
            self.assert_serving(srv)
            srv.stop()
            self.assertFalse([l for l in srv.log if re.search(ft.SWEPT_RE, l)], srv.log)

    def test_the_sweep_stays_off_other_filesystems(self):
        """A mount inside the root: a tmpfs (local storage an upload can
        write to) is swept; a filesystem the sweep does not take for local
        storage (a ramfs here; /proc, /sys, network and FUSE mounts alike)
        is not entered, and its temporaries stay."""
        if os.geteuid() != 0:
            self.skipTest("mounting inside the root needs root (CI runs the tests as root)")
        root = os.path.join(self.local, "mounts")
        write(os.path.join(root, ".top.ferry-part"), b"left over")
        if not tmpfs_allowed(root):
            self.skipTest("no private mount namespace here (unshare -m)")
        script = ('cd "$1" && mkdir tmp ram && mount -t tmpfs ferrytest tmp && '
                  'mount -t ramfs ferrytest ram && echo x > tmp/.a.ferry-part && '
                  'echo x > ram/.b.ferry-part || exit 97; shift; exec "$@"')
        srv = self.own_server(root, prefix=["unshare", "-m", "--propagation", "private",
                                            "sh", "-c", script, "sh", root])
        m = srv.wait_for_log(r"swept for unfinished uploads: .*removed (\d+); (\d+) mounts? of")
        self.assertEqual(m.groups(), ("2", "1"))
        view = "/proc/%d/root%s" % (srv.pid, root)      # the daemon's mount namespace
        self.assertEqual(parts_under(view), ["ram/.b.ferry-part"])
        self.assert_serving(srv)

    def test_a_second_ferryd_on_the_root_spares_uploads_in_flight(self):
        """A ferryd starting on a root another one serves (a second
        listener, a restart that overlaps the old daemon) sweeps only the
        temporaries no upload holds: the uploads in flight, to the shared
        temporary and to a private one, commit."""
        data = os.urandom(MiB + 7)
        a, b = self.session(), self.session()
        self.assertType(a.put_begin(self.p("live"), len(data), resume=True), "put-ready")
        self.assertType(b.put_begin(self.p("live"), len(data)), "put-ready")
        a.send_data(data[:MiB], 0)
        b.send_data(data[:MiB], 0)
        self.assertEqual(len(parts_under(self.tdir)), 2)   # .live.ferry-part and a private one
        write(self.rp(".dead.ferry-part"), b"left by an upload that is gone")
        self.own_server(self.root)
        self.assertFalse(os.path.lexists(self.rp(".dead.ferry-part")))
        for s in (a, b):
            s.send_data(data[MiB:], MiB)
            s.put_end(digest(data))
            self.assertType(s.recv()[0], "put-ok")
        self.assertEqual(read(self.rp("live")), data)
        self.assertEqual(parts_under(self.tdir), [])

    def test_a_temporary_removed_under_an_upload_is_reported(self):
        """Something else (a local user) removes an upload's temporary: the
        commit refuses (ESTALE) and ferryd's log says what happened."""
        data = os.urandom(MiB + 7)
        s = self.session()
        self.assertType(s.put_begin(self.p("gone"), len(data)), "put-ready")
        s.send_data(data[:MiB], 0)
        os.unlink(self.rp(".gone" + PART))
        s.send_data(data[MiB:], MiB)
        s.put_end(digest(data))
        h = s.recv()[0]
        self.assertFsError(h, "ESTALE")
        # Not "Stale file handle" (a bare NFS strerror): what happened, and
        # what to do; the client shows these words (test_transfers_cli).
        self.assertIn("temporary file was removed or replaced on the server", h["message"])
        self.assertIn("send the file again", h["message"])
        self.assertFalse(os.path.lexists(self.rp("gone")))
        self.srv.wait_for_log(r"upload of .?gone.?: its temporary .* was removed by something else")

    def test_leftover_temporaries_are_removed_at_any_depth(self):
        # 1,500 levels (past the sweep's old 64-level limit; 5,000 in
        # tests/unit/test_fspath.c), made a level at a time through
        # directory descriptors.
        root = os.path.join(self.local, "root3")
        os.makedirs(root)
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for _ in range(1500):
                os.mkdir("d", dir_fd=fd)
                nfd = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
                os.close(fd)
                fd = nfd
            with open(os.open(".t.ferry-part", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd),
                      "wb") as f:
                f.write(b"left over")
            with open(os.open("keep", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd), "wb") as f:
                f.write(b"kept")
            srv = self.own_server(root)

            def gone():
                try:
                    os.stat(".t.ferry-part", dir_fd=fd)
                    return False
                except FileNotFoundError:
                    return True
            wait_until(gone, 10, "the temporary 1,500 levels down to be removed")
            os.stat("keep", dir_fd=fd)
        finally:
            os.close(fd)
        # And rm -r takes the whole tree away (no rmtree could: too deep
        # for its recursion).
        s = ft.Session(srv.hostport(), self.key)
        try:
            self.assertType(s.rm("d", recursive=True), "ok")
        finally:
            s.close()
        self.assertEqual(os.listdir(root), [])

    # -- path safety: one test per case ----------------------------------------

    def do_op(self, s, op, path):
        """One request of kind op on path; returns its (first) answer."""
        if op == "stat":
            return s.stat(path)
        if op == "list":
            return s.list(path)[1]
        if op == "mkdir":
            return s.mkdir(path)
        if op == "rm":
            return s.rm(path)
        if op == "put":
            ready, end = s.put(path, b"planted\n")
            return ready if end is None else end
        if op == "get":
            ready, data, end = s.get(path)
            return ready
        raise ValueError(op)

    def assert_refused(self, path, ops=OPS, code=("path",), raw=None):
        """Every op on path is a `path` error; the session and the daemon go
        on; nothing was planted outside the root."""
        before = sorted(os.listdir(self.outside))
        s = self.session()
        for op in ops:
            h = self.do_op(s, op, path)
            self.assertEqual(h.get("type"), "error", "%s %r: %r" % (op, path, h))
            self.assertIn(h.get("code"), code, "%s %r: %r" % (op, path, h))
            self.assertTrue(h.get("message"), h)
            if len(path) > 3:
                self.assertNotIn(path, h["message"], "the message echoes the path")
            self.assertType(s.stat("."), "stat")    # the session goes on
        self.assertEqual(sorted(os.listdir(self.outside)), before)
        self.assertEqual(read(os.path.join(self.outside, "secret")), b"outside the root\n")
        self.assert_serving()

    def test_path_dotdot_inside(self):
        self.assert_refused(self.p("..", "..", "x"))
        self.assert_refused("a/../../x")

    def test_path_dotdot_alone(self):
        self.assert_refused("..")

    def test_path_dotdot_leading(self):
        self.assert_refused("../" + os.path.basename(self.outside) + "/secret")

    def test_path_dotdot_that_stays_inside_is_still_refused(self):
        write(self.rp("f"), b"x")
        self.assert_refused(self.p("sub", "..", "f"))

    def test_path_absolute(self):
        self.assert_refused(os.path.join(self.outside, "secret"))
        self.assert_refused("/")

    def test_path_through_absolute_symlink_out(self):
        os.symlink(self.outside, self.rp("out"))
        for op, path in [("get", "out/secret"), ("stat", "out/secret"), ("list", "out"),
                         ("rm", "out/secret"), ("mkdir", "out/newdir"), ("put", "out/new")]:
            self.assert_refused(self.p(*path.split("/")), ops=[op])

    def test_path_through_relative_symlink_out(self):
        target = os.path.relpath(self.outside, self.tdir)      # ../../outside-...
        os.symlink(target, self.rp("rel"))
        for op, path in [("get", "rel/secret"), ("stat", "rel/secret"), ("list", "rel"),
                         ("rm", "rel/secret"), ("mkdir", "rel/newdir"), ("put", "rel/new")]:
            self.assert_refused(self.p(*path.split("/")), ops=[op])

    def test_path_final_symlink_out_is_not_read_or_written_through(self):
        os.symlink(os.path.join(self.outside, "secret"), self.rp("lnk"))
        self.assert_refused(self.p("lnk"), ops=["get"])
        s = self.session()
        s.put(self.p("lnk"), b"planted\n")        # may replace the link itself, or refuse
        self.assertEqual(read(os.path.join(self.outside, "secret")), b"outside the root\n")

    def test_path_symlink_inside_is_followed(self):
        write(self.rp("real", "f"), b"inside")
        os.symlink("real", self.rp("alias"))
        s = self.session()
        ready, data, end = s.get(self.p("alias", "f"))
        self.assertType(end, "get-end")
        self.assertEqual(data, b"inside")

    def test_path_control_byte_01(self):
        self.assert_refused(self.p("a\x01b"))

    def test_path_control_byte_7f(self):
        self.assert_refused(self.p("a\x7fb"))

    def test_path_newline(self):
        self.assert_refused(self.p("a\nb"))

    def test_path_escaped_nul(self):
        # A NUL cannot be a raw byte in JSON; as \u0000 it is a frame error
        # (PROTOCOL.md 1.1: protocol, the connection closes) or a path error.
        for op in ("stat", "put", "mkdir"):
            s = ft.Session(self.hostport, self.key)
            raw = ('{"type":"%s","path":"%s/a\\u0000b","parents":false,"filesize":1,'
                   '"mode":420,"checksum":"xxh3-128"}' % (op, self.td)).encode()
            s.send_header_bytes(raw)
            h = s.recv_header()
            self.assertEqual(h.get("type"), "error", h)
            self.assertIn(h.get("code"), ("path", "protocol"), h)
            s.close()
        self.assertEqual(os.listdir(self.tdir), [])
        self.assert_serving()

    def test_path_component_longer_than_255(self):
        self.assert_refused(self.p("x" * 256))

    def test_put_name_of_255_bytes(self):
        ready, end = self.session().put(self.p("y" * 255), b"long name")
        self.assertType(end, "put-ok")
        self.assertEqual(read(self.rp("y" * 255)), b"long name")

    def test_path_longer_than_path_max(self):
        self.assert_refused("/".join([self.td] + ["d" * 200] * 21))

    def test_path_dot_and_dotdot_as_targets(self):
        for path in (".", "..", self.p("."), self.p("..")):
            self.assert_refused(path, ops=("put", "rm", "mkdir"))

    def test_path_non_canonical_spellings(self):
        for path in (self.td + "//x", self.td + "/", "./" + self.td, ""):
            self.assert_refused(path, ops=("stat", "put", "mkdir"))

    # -- resume ---------------------------------------------------------------

    def _interrupted_resumable(self, name, data, sent):
        s = ft.Session(self.hostport, self.key)
        ready = s.put_begin(self.p(name), len(data), resume=True)
        self.assertType(ready, "put-ready")
        s.send_data(data[:sent], ready.get("offset", 0))
        s.close()
        part = self.rp("." + name + PART)
        wait_until(lambda: os.path.exists(part) and os.path.getsize(part) == sent, 10,
                   "the kept temporary to hold the %d bytes sent" % sent)
        self.wait_not_open(os.path.join(self.td, "." + name + PART))
        return part

    def test_put_resume_continues_at_the_servers_offset(self):
        data = os.urandom(3 * MiB)
        K = 1234567
        self._interrupted_resumable("res.bin", data, K)
        s = self.session()
        ready = s.put_begin(self.p("res.bin"), len(data), resume=True)
        self.assertType(ready, "put-ready")
        self.assertEqual(ready["offset"], K, ready)
        self.assertEqual(ready["prefix"], digest(data[:K]))
        s.send_data(data[K:], K)
        s.put_end(digest(data))
        h, _ = s.recv()
        self.assertType(h, "put-ok")
        self.assertEqual(read(self.rp("res.bin")), data)
        self.assertEqual(parts_under(self.tdir), [])

    def test_put_resume_with_a_different_prefix_restarts_at_zero(self):
        old = os.urandom(2 * MiB)
        self._interrupted_resumable("res2.bin", old, MiB)
        new = os.urandom(2 * MiB)
        s = self.session()
        ready = s.put_begin(self.p("res2.bin"), len(new), resume=True)
        self.assertEqual(ready["offset"], MiB, ready)
        self.assertNotEqual(ready["prefix"], digest(new[:MiB]))
        s.send_data(new, 0)                        # the client starts over
        s.put_end(digest(new))
        h, _ = s.recv()
        self.assertType(h, "put-ok")
        self.assertEqual(read(self.rp("res2.bin")), new)
        self.assertEqual(parts_under(self.tdir), [])

    def test_put_resume_verifies_the_bytes_kept(self):
        data = os.urandom(2 * MiB)
        part = self._interrupted_resumable("res3.bin", data, MiB)
        with open(part, "r+b") as f:            # corrupt what the server kept
            f.seek(1000)
            f.write(bytes([data[1000] ^ 0xff]))
        ready, end = self.session().put(self.p("res3.bin"), data, resume=True)
        self.assertEqual(ready.get("offset"), MiB, ready)
        self.assertNotEqual(ready.get("prefix"), digest(data[:MiB]), "prefix not recomputed")
        self.assertType(end, "put-ok")           # the client restarted at 0
        self.assertEqual(read(self.rp("res3.bin")), data)

    def test_get_resume_honours_offset_and_prefix(self):
        data = os.urandom(3 * MiB + 5)
        write(self.rp("g.bin"), data)
        K = 2 * MiB + 3
        s = self.session()
        ready, rest, end = s.get(self.p("g.bin"), offset=K, prefix=digest(data[:K]))
        self.assertType(ready, "get-ready")
        self.assertEqual((ready["offset"], ready["filesize"]), (K, len(data)))
        self.assertEqual(rest, data[K:])
        self.assertEqual(end, {"type": "get-end", "checksum": digest(data)})

    def test_get_resume_with_a_wrong_prefix_starts_over(self):
        data = os.urandom(MiB)
        write(self.rp("g2.bin"), data)
        s = self.session()
        ready, got, end = s.get(self.p("g2.bin"), offset=1000, prefix=digest(b"y" * 1000))
        self.assertEqual(ready["offset"], 0, ready)
        self.assertEqual(got, data)
        self.assertType(end, "get-end")
        ready, got, end = s.get(self.p("g2.bin"), offset=len(data) + 1,
                                prefix=digest(data + b"z"))
        self.assertEqual(ready["offset"], 0, ready)
        self.assertEqual(got, data)

    def test_get_data_frames_follow_on(self):
        data = os.urandom(40 * MiB + 3)
        write(self.rp("big"), data)
        s = self.session()
        ready = s.get_begin(self.p("big"))
        got, end, frames = s.get_rest()
        self.assertEqual(got, data)
        off = 0
        for h in frames:
            self.assertEqual(h["offset"], off)
            self.assertLessEqual(h["size"], 16 * MiB)
            off += h["size"]
        self.assertEqual(end["checksum"], digest(data))
        self.assertEqual(stat.S_IMODE(os.stat(self.rp("big")).st_mode), ready["mode"])

    # -- sizes and special files -----------------------------------------------

    @ft.heavy
    @unittest.skipIf(SANITIZED, "4 GiB through a sanitized daemon is too slow")
    @ft.cost(25)
    def test_get_past_4_gib(self):
        # Offsets and counts past 2^32 are the file service's, not the
        # model's: once, in the event model.
        if "fork" in self.ARGS:
            self.skipTest("4 GiB once, in the event model")
        path = self.rp("huge")
        size = 4 * GiB + 4099
        with open(path, "wb") as f:
            f.truncate(size)
            for off in (0, 4 * GiB - 3, size - 5):
                f.seek(off)
                f.write(b"FERRY")
        self.addCleanup(os.unlink, path)
        s = self.session(timeout=120)
        ready = s.get_begin(self.p("huge"))
        self.assertType(ready, "get-ready")
        self.assertEqual(ready["filesize"], size)
        d = ft.Digest()
        count, end, _ = s.get_rest(sink=d.update)
        self.assertEqual(count, size)
        self.assertType(end, "get-end")
        self.assertEqual(end["checksum"], d.hexdigest())
        self.assertEqual(end["checksum"], ft.digest_file(path))

    def test_get_a_fifo_is_refused_promptly(self):
        os.mkfifo(self.rp("fifo"))
        s = self.session(timeout=5)
        t0 = time.monotonic()
        ready, data, end = s.get(self.p("fifo"))
        self.assertFsError(ready)
        self.assertLess(time.monotonic() - t0, 5 * SLOW)
        self.assertType(s.stat(self.p("fifo")), "stat")

    def test_get_a_device_is_refused(self):
        try:
            os.mknod(self.rp("dev"), 0o600 | stat.S_IFCHR, os.makedev(1, 3))
        except (PermissionError, OSError) as e:
            self.skipTest("cannot make a device node here: %s" % e)
        s = self.session(timeout=5)
        ready, data, end = s.get(self.p("dev"))
        self.assertFsError(ready, "EINVAL")
        self.assertEqual(data, b"")
        self.assertType(s.stat("."), "stat")

    # -- the server's own temporaries ----------------------------------------------

    def test_temporary_names_are_reserved(self):
        write(self.rp(".held.ferry-part"), b"an upload's bytes")
        s = self.session()
        for path in (self.p(".held.ferry-part"), self.p(".x.1a2b3c4d.ferry-part"),
                     self.p(".d.ferry-part", "inside")):
            for op in ("stat", "list", "get", "put", "rm", "mkdir"):
                h = self.do_op(s, op, path)
                self.assertType(h, "error", "path")
                self.assertIn("reserved", h["message"])
        self.assertEqual(read(self.rp(".held.ferry-part")), b"an upload's bytes")
        # Only that exact pattern is reserved: a user's name that merely ends
        # in the suffix is an ordinary file.
        ready, end = s.put(self.p("notes.ferry-part"), b"mine")
        self.assertType(end, "put-ok")
        self.assertEqual(read(self.rp("notes.ferry-part")), b"mine")

    def test_list_hides_temporaries(self):
        write(self.rp(".busy.ferry-part"), b"in flight")
        write(self.rp("visible"), b"x")
        entries, end = self.session().list(self.td)
        self.assertEqual(sorted(e["name"] for e in entries), ["visible"])
        self.assertEqual(end, {"type": "list-end", "count": 1})

    def test_a_request_during_a_download_never_lands_inside_its_body(self):
        with open(self.rp("as"), "wb") as f:
            f.write(b"A" * (32 * MiB))
        s = self.session(rcvbuf=128 * 1024, timeout=15)
        self.assertType(s.get_begin(self.p("as")), "get-ready")
        got, end, _ = s.get_rest(stop_after=1, sink=lambda b: None)
        self.assertIsNone(end)
        s.send({"type": "stat", "path": "."})
        foreign = []

        def sink(b):
            if b.strip(b"A"):
                foreign.append(b)
        # The server cannot answer inside a body: it closes the connection.
        # Whatever arrives before that must be the file's bytes only.
        with self.assertRaises((EOFError, ConnectionError)):
            s.get_rest(sink=sink)
        self.assertEqual(foreign, [], "a frame was written inside a data body")
        self.assert_serving()

    def test_get_a_directory_is_refused(self):
        ready, data, end = self.session().get(self.td)
        self.assertFsError(ready, "EISDIR", "EINVAL")

    def test_put_to_a_fifo_is_not_written_through(self):
        os.mkfifo(self.rp("fifo"))
        fd = os.open(self.rp("fifo"), os.O_RDONLY | os.O_NONBLOCK)
        self.addCleanup(os.close, fd)
        s = self.session(timeout=10)
        ready, end = s.put(self.p("fifo"), b"through the pipe?\n")
        try:
            leaked = os.read(fd, 100)
        except BlockingIOError:
            leaked = b""
        self.assertEqual(leaked, b"", "the upload was written into the FIFO")
        if end is not None and end.get("type") == "put-ok":
            self.assertEqual(read(self.rp("fifo")), b"through the pipe?\n")
        self.assertType(s.stat("."), "stat")

    def test_file_request_while_exec_runs_is_busy(self):
        s = self.session()
        s.send({"type": "exec", "argv": ["cat"]})
        for msg in ({"type": "stat", "path": "."}, {"type": "list", "path": "."},
                    {"type": "get", "path": self.td, "checksum": "xxh3-128"}):
            h = s.request(msg)
            self.assertType(h, "error", "busy")
        s.send({"type": "stdin-eof"})
        h, _ = s.recv()
        self.assertEqual(h, {"type": "exit", "status": 0})
        self.assertType(s.stat("."), "stat")

    # -- concurrency --------------------------------------------------------------

    def test_16_uploads_and_16_downloads_at_once(self):
        n, size = 16, 2 * MiB
        ups = [os.urandom(size) for _ in range(n)]
        downs = [os.urandom(size) for _ in range(n)]
        for i, d in enumerate(downs):
            write(self.rp("down%02d" % i), d)
        results = {}
        barrier = threading.Barrier(2 * n, timeout=30 * SLOW)

        def up(i):
            s = ft.Session(self.hostport, self.key)
            try:
                barrier.wait()
                results[("up", i)] = s.put(self.p("up%02d" % i), ups[i])[1]
            finally:
                s.close()

        def down(i):
            s = ft.Session(self.hostport, self.key)
            try:
                barrier.wait()
                results[("down", i)] = s.get(self.p("down%02d" % i))[1:]
            finally:
                s.close()
        threads = [threading.Thread(target=f, args=(i,)) for i in range(n) for f in (up, down)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120 * SLOW)
        self.assertEqual(len(results), 2 * n, "some transfers did not finish")
        for i in range(n):
            self.assertType(results[("up", i)], "put-ok")
            self.assertEqual(read(self.rp("up%02d" % i)), ups[i])
            data, end = results[("down", i)]
            self.assertEqual(data, downs[i])
            self.assertEqual(end["checksum"], digest(downs[i]))
        self.assertEqual(parts_under(self.tdir), [])

    def test_two_uploads_of_one_name_never_mix(self):
        size = 32 * MiB
        contents = [os.urandom(size), os.urandom(size)]
        barrier = threading.Barrier(2, timeout=30 * SLOW)
        answers = {}

        def upload(i):
            s = ft.Session(self.hostport, self.key)
            try:
                ready = s.put_begin(self.p("same"), size)
                answers[("ready", i)] = ready
                barrier.wait()              # both under way before either sends
                seg = 4 * MiB
                for off in range(0, size, seg):
                    s.send_data(contents[i][off:off + seg], off)
                    barrier.wait()          # interleave segment by segment
                s.put_end(digest(contents[i]))
                answers[i] = s.recv()[0]
            finally:
                s.close()
        threads = [threading.Thread(target=upload, args=(i,)) for i in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120 * SLOW)
        self.assertType(answers[("ready", 0)], "put-ready")
        self.assertType(answers[("ready", 1)], "put-ready")
        self.assertType(answers[0], "put-ok")
        self.assertType(answers[1], "put-ok")
        final = read(self.rp("same"))
        self.assertTrue(final == contents[0] or final == contents[1],
                        "the final file is neither upload whole")
        self.assertEqual(parts_under(self.tdir), [])

    @ft.cost(6)
    def test_download_of_a_file_replaced_midway_is_whole(self):
        old, new = os.urandom(64 * MiB), os.urandom(64 * MiB)
        write(self.rp("swap"), old)
        s = self.session(rcvbuf=256 * 1024)
        self.assertType(s.get_begin(self.p("swap")), "get-ready")
        first, end, _ = s.get_rest(stop_after=1)
        self.assertIsNone(end)
        write(self.rp(".swap.new"), new)
        os.rename(self.rp(".swap.new"), self.rp("swap"))
        rest, end, _ = s.get_rest()
        got = first + rest
        self.assertType(end, "get-end")
        self.assertTrue(got == old or got == new, "a mixed download")
        self.assertEqual(got, old, "PROTOCOL.md 2.4: the version open when the get began")
        self.assertEqual(end["checksum"], digest(got))

    # -- faults -------------------------------------------------------------------

    def _disk_full(self, srv, view_root, errnos):
        s = ft.Session(srv.hostport(), self.key)
        self.addCleanup(s.close)
        ready, end = s.put("victim", b"small and safe")
        self.assertType(end, "put-ok")
        ready, end = s.put("victim", os.urandom(8 * MiB))
        h = end if end is not None else ready
        self.assertFsError(h, *errnos)
        self.assertEqual(read(os.path.join(view_root, "victim")), b"small and safe")
        self.wait_no_parts(view_root)
        self.assertType(s.stat("victim"), "stat")           # this session goes on
        other = ft.Session(srv.hostport(), self.key)    # and others are served
        self.addCleanup(other.close)
        ready, end = other.put("after", b"x" * 100000)
        self.assertType(end, "put-ok")
        self.assertIsNone(srv.proc.poll())

    def test_disk_full(self):
        root = os.path.join(self.local, "small")
        os.mkdir(root)
        if tmpfs_allowed(root):
            script = 'mount -t tmpfs -o size=4m ferrytest "$1" || exit 97; shift; exec "$@"'
            srv = self.own_server(root, prefix=["unshare", "-m", "--propagation", "private",
                                                "sh", "-c", script, "sh", root])
            # The test sees the tmpfs through the daemon's own mount namespace.
            self._disk_full(srv, "/proc/%d/root%s" % (srv.pid, root), ("ENOSPC",))
        else:
            srv = self.own_server(root, preexec_fn=lambda: resource.setrlimit(
                resource.RLIMIT_FSIZE, (4 * MiB, 4 * MiB)))
            self._disk_full(srv, root, ("EFBIG", "ENOSPC"))

    def test_file_size_limit(self):
        # RLIMIT_FSIZE: the kernel sends SIGXFSZ, which must not kill ferryd.
        root = os.path.join(self.local, "limited")
        os.mkdir(root)
        srv = self.own_server(root, preexec_fn=lambda: resource.setrlimit(
            resource.RLIMIT_FSIZE, (4 * MiB, 4 * MiB)))
        self._disk_full(srv, root, ("EFBIG", "ENOSPC"))

    def test_permission_denied(self):
        root = os.path.join(self.local, "perm")
        os.makedirs(os.path.join(root, "ro"))
        write(os.path.join(root, "ro", "f"), b"read-only")
        write(os.path.join(root, "secret"), b"root only", mode=0o600)
        try:
            import pwd
            nobody = pwd.getpwnam("nobody")
        except KeyError:
            nobody = None
        if os.geteuid() != 0:
            os.chmod(os.path.join(root, "ro"), 0o555)
            os.chmod(os.path.join(root, "secret"), 0o000)
            preexec, key = None, self.key_path
        elif nobody is not None:
            # root bypasses permission bits: run ferryd as nobody instead.
            for d in (self.dir, self.local):
                os.chmod(d, 0o755)
            os.chown(root, nobody.pw_uid, nobody.pw_gid)
            key = os.path.join(self.local, "nobody-key")
            shutil.copy(self.key_path, key)
            os.chown(key, nobody.pw_uid, nobody.pw_gid)
            os.chmod(key, 0o600)

            def preexec():
                os.setgroups([])
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
        elif shutil.which("chattr") and subprocess.run(
                ["chattr", "+i", os.path.join(root, "ro")]).returncode == 0:
            self.addCleanup(subprocess.run, ["chattr", "-i", os.path.join(root, "ro")])
            preexec, key = None, self.key_path
        else:
            self.skipTest("running as root, no user nobody and no chattr +i: "
                          "nothing root cannot bypass")
        srv = self.own_server(root, preexec_fn=preexec, key_path=key)
        s = ft.Session(srv.hostport(), self.key)
        self.addCleanup(s.close)
        denied = ("EACCES", "EPERM")
        ready, end = s.put("ro/new", b"x")
        self.assertFsError(end or ready, *denied)
        ready, end = s.put("ro/f", b"replaced")
        self.assertFsError(end or ready, *denied)
        self.assertEqual(read(os.path.join(root, "ro", "f")), b"read-only")
        self.assertFsError(s.mkdir("ro/d"), *denied)
        self.assertFsError(s.rm("ro/f"), *denied)
        if preexec is not None or os.geteuid() != 0:
            ready, data, end = s.get("secret")
            self.assertFsError(ready, *denied)
        self.assertEqual(parts_under(root), [])
        ready, end = s.put("fine", b"ok")       # the daemon goes on serving
        self.assertType(end, "put-ok")
        self.assert_serving(srv)

    def _mid_download(self, name, change):
        path = self.rp(name)
        with open(path, "wb") as f:
            f.truncate(64 * MiB)
        s = self.session(rcvbuf=256 * 1024, timeout=15)
        ready = s.get_begin(self.p(name))
        self.assertType(ready, "get-ready")
        got, end, _ = s.get_rest(stop_after=1, sink=lambda b: None)
        self.assertIsNone(end)
        change(path)
        t0 = time.monotonic()
        got, end, _ = s.get_rest(sink=lambda b: None)   # socket timeout: a hang fails
        self.assertLess(time.monotonic() - t0, 15 * SLOW)
        self.assertType(s.stat("."), "stat")            # the session goes on
        return end

    def test_file_vanishing_mid_download(self):
        end = self._mid_download("vanish", os.unlink)
        self.assertFsError(end, "ENOENT")

    def test_file_truncated_mid_download(self):
        end = self._mid_download("shrink", lambda p: os.truncate(p, 0))
        self.assertType(end, "error")
        self.assertTrue(end.get("message"), end)


for _name, _args in MODELS.items():
    _cls = type("Files_" + _name, (FilesProto, FilesBase), {"ARGS": _args})
    globals()[_cls.__name__] = _cls
del _cls


# ==== classic mode: the tutorial's FTP upload (seed 002) =======================

# ---- the tutorial's FTP client (seed 002), faithfully -------------------------

class TutorialFtpClient:
    """Seed 002's MYTCPClient, with input() replaced by method calls and
    print() by a list.  struct.pack('i', ...) is native-endian as in the
    tutorial (little-endian here)."""
    address_family = socket.AF_INET
    socket_type = socket.SOCK_STREAM
    allow_reuse_address = False
    max_packet_size = 8192
    coding = 'utf-8'
    request_queue_size = 5

    def __init__(self, server_address, connect=True):
        self.server_address = server_address
        self.printed = []
        self.socket = socket.socket(self.address_family, self.socket_type)
        self.socket.settimeout(60 * SLOW)    # the tutorial has none: a hang fails, not wedges
        if connect:
            try:
                self.client_connect()
            except:  # noqa: E722 (as in the tutorial)
                self.client_close()
                raise

    def client_connect(self):
        self.socket.connect(self.server_address)

    def client_close(self):
        self.socket.close()

    def run_line(self, inp):
        inp = inp.strip()
        if not inp:
            return
        l = inp.split()  # noqa: E741
        cmd = l[0]
        if hasattr(self, cmd):
            func = getattr(self, cmd)
            func(l)

    def put(self, args):
        cmd = args[0]
        filename = args[1]
        if not os.path.isfile(filename):
            self.printed.append('file:%s is not exists' % filename)
            return
        else:
            filesize = os.path.getsize(filename)

        head_dic = {'cmd': cmd, 'filename': os.path.basename(filename), 'filesize': filesize}
        self.printed.append(head_dic)
        head_json = json.dumps(head_dic)
        head_json_bytes = bytes(head_json, encoding=self.coding)

        head_struct = struct.pack('i', len(head_json_bytes))
        self.socket.send(head_struct)
        self.socket.send(head_json_bytes)
        send_size = 0
        with open(filename, 'rb') as f:
            for line in f:
                self.socket.send(line)
                send_size += len(line)
            else:
                self.printed.append('upload successful')


class ClassicPut:
    def classic(self):
        root = os.path.join(self.local, "croot")
        os.mkdir(root)
        srv = self.own_server(root, "--classic", "127.0.0.1:0", endpoints=2)
        addr = srv.wait_for_log(r"classic protocol on (\S+): UNAUTHENTICATED").group(1)
        host, _, port = addr.rpartition(":")
        return srv, root, (host, int(port))

    def test_tutorial_client_uploads(self):
        srv, root, addr = self.classic()
        a = os.path.join(self.local, "a.txt")
        data = b"".join(b"line %d of the tutorial's upload\n" % i for i in range(20000))
        write(a, data)
        b = os.path.join(self.local, "b.bin")
        write(b, b"second file\n" * 10)
        client = TutorialFtpClient(addr)
        self.addCleanup(client.client_close)
        client.run_line("put %s" % a)
        client.run_line("put %s" % b)          # the same connection goes on
        client.run_line("put %s" % os.path.join(self.local, "missing"))
        self.assertIn("upload successful", client.printed)
        wait_until(lambda: os.path.exists(os.path.join(root, "b.bin")) and
                   read(os.path.join(root, "b.bin")) == b"second file\n" * 10, 10,
                   "b.bin under the root")
        self.assertEqual(read(os.path.join(root, "a.txt")), data)
        self.assertEqual(parts_under(root), [])

    def _raw_classic_put(self, addr, filename, data, close_after=None):
        c = socket.create_connection(addr, timeout=10 * SLOW)
        head = json.dumps({"cmd": "put", "filename": filename, "filesize": len(data)}).encode()
        c.send(struct.pack("i", len(head)))
        c.send(head)
        c.sendall(data if close_after is None else data[:close_after])
        return c

    def test_filename_with_a_path_is_saved_by_its_base_name(self):
        srv, root, addr = self.classic()
        cases = {"../../escape.txt": "escape.txt", "sub/dir/x.txt": "x.txt",
                 os.path.join(self.outside, "abs.txt"): "abs.txt"}
        for fn, base in cases.items():
            c = self._raw_classic_put(addr, fn, b"content of " + base.encode())
            self.addCleanup(c.close)
        for fn, base in cases.items():
            want = b"content of " + base.encode()
            wait_until(lambda: os.path.exists(os.path.join(root, base)) and
                       read(os.path.join(root, base)) == want, 10, base + " under the root")
        self.assertFalse(os.path.exists(os.path.join(self.local, "escape.txt")))
        self.assertFalse(os.path.exists(os.path.join(self.dir, "escape.txt")))
        self.assertEqual(sorted(os.listdir(self.outside)), ["secret"])
        self.assertFalse(os.path.exists(os.path.join(root, "sub")))

    def test_client_dying_mid_upload_leaves_no_file(self):
        srv, root, addr = self.classic()
        write(os.path.join(root, "kept.txt"), b"before")
        c = self._raw_classic_put(addr, "kept.txt", os.urandom(4 * MiB), close_after=MiB)
        c.close()
        c = self._raw_classic_put(addr, "new.txt", os.urandom(4 * MiB), close_after=MiB)
        c.close()
        self.wait_no_parts(root)
        self.assertEqual(read(os.path.join(root, "kept.txt")), b"before")
        self.assertFalse(os.path.exists(os.path.join(root, "new.txt")))
        # Commands still work on the classic address.
        with socket.create_connection(addr, timeout=10 * SLOW) as c:
            c.sendall(b"echo still")
            h = ft.recv_header(c)
            self.assertEqual(ft.recv_exact(c, h["total_size"]), b"still\n")

    def test_reserved_names_are_refused(self):
        # Issue 11, defect 5: a classic put to ".victim.txt.ferry-part"
        # replaced an authenticated upload's temporary (that put then failed
        # with ESTALE) and left a file the file service could not reach.
        srv, root, addr = self.classic()
        main = [a for _, a in srv.endpoints if a != "%s:%d" % addr][0]
        host, _, port = main.rpartition(":")
        data = os.urandom(2 * MiB)
        s = self.session((host, int(port)))
        self.assertType(s.put_begin("victim.txt", len(data)), "put-ready")
        s.send_data(data[:MiB], 0)
        wait_until(lambda: parts_under(root), 10, "the authenticated upload's temporary")
        c = self._raw_classic_put(addr, ".victim.txt.ferry-part", b"the classic peer's bytes")
        self.addCleanup(c.close)
        # The same connection's next file is saved after the refused one.
        head = json.dumps({"cmd": "put", "filename": "after.txt", "filesize": 2}).encode()
        c.sendall(struct.pack("i", len(head)) + head + b"ok")
        wait_until(lambda: os.path.exists(os.path.join(root, "after.txt")), 10, "after.txt")
        srv.wait_for_log(r"put refused.*reserved")
        # The authenticated upload in flight is unharmed.
        s.send_data(data[MiB:], MiB)
        s.put_end(digest(data))
        self.assertType(s.recv()[0], "put-ok")
        self.assertEqual(read(os.path.join(root, "victim.txt")), data)
        self.assertEqual(sorted(os.listdir(root)), ["after.txt", "victim.txt"])
        # Tagged temporaries are reserved too; a name merely ending in the
        # suffix is not.
        for name, body in ((".x.1a2b3c4d.ferry-part", b"tagged"), ("notes.ferry-part", b"mine")):
            head = json.dumps({"cmd": "put", "filename": name, "filesize": len(body)}).encode()
            c.sendall(struct.pack("i", len(head)) + head + body)
        wait_until(lambda: os.path.exists(os.path.join(root, "notes.ferry-part")), 10,
                   "notes.ferry-part")
        self.assertEqual(sorted(os.listdir(root)), ["after.txt", "notes.ferry-part", "victim.txt"])


for _name, _args in MODELS.items():
    _cls = type("Classic_" + _name, (ClassicPut, FilesBase), {"ARGS": _args})
    globals()[_cls.__name__] = _cls
del _cls


# ==== the ferry commands ========================================================

class FerryCli(FilesBase):
    """The ferry commands over TLS, as users run them: the class's ferryd has
    no --plaintext, and neither has ferry.  Relays that count or hold bytes
    work on the TLS stream as well; one that flips a byte is also run in the
    clear, where only the transfer's checksum can catch it."""

    PLAINTEXT = False

    def plaintext_server(self):
        """A second ferryd on the same root, with --plaintext."""
        return self.own_server(self.root, plaintext=True)

    def env(self):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.home,
               "LANG": "C.UTF-8"}
        env.update(ft.sanitizer_env())
        return env

    def argv(self, cmd, *args, opts=(), host=None, plaintext=False):
        # --plaintext goes before the command, as `ferry --plaintext put ...`
        return ([FERRY] + (["--plaintext"] if plaintext else [])
                + [cmd, "-k", self.key_path, *opts, host or self.host, *args])

    def ferry(self, cmd, *args, opts=(), host=None, timeout=60, input=b"", cwd=None,
              plaintext=False):
        return subprocess.run(self.argv(cmd, *args, opts=opts, host=host, plaintext=plaintext),
                              input=input, capture_output=True, env=self.env(),
                              timeout=timeout * SLOW, cwd=cwd or self.local)

    def assertOk(self, r):
        # ferryd's last lines too: a failure under load is seldom rerun.
        self.assertEqual(r.returncode, 0, "stdout %r stderr %r; ferryd's last lines:\n%s"
                         % (r.stdout[-500:], r.stderr, "\n".join(self.srv.log[-10:])))

    def lp(self, *names):
        return os.path.join(self.local, *names)

    def test_put_get_round_trip(self):
        data = os.urandom(5 * MiB + 1)
        write(self.lp("a.bin"), data)
        r = self.ferry("put", self.lp("a.bin"), self.p("a.bin"))
        self.assertOk(r)
        self.assertEqual(r.stderr, b"")           # stderr is not a terminal: no progress
        self.assertEqual(read(self.rp("a.bin")), data)
        r = self.ferry("get", self.p("a.bin"), self.lp("back.bin"))
        self.assertOk(r)
        self.assertEqual(read(self.lp("back.bin")), data)
        self.assertEqual(parts_under(self.local), [])

    def test_plaintext_get_round_trips_and_resumes(self):
        """Over --plaintext the client splices frame bodies into the file
        and hashes them back from it: several frames (the last one short),
        a body below the splice threshold, a resumed download, sha256."""
        host = self.plaintext_server().addr()
        big = os.urandom(2 * 16 * MiB + 5 * MiB + 7)
        small = os.urandom(1000)
        write(self.rp("big.bin"), big)
        write(self.rp("small.bin"), small)
        for name, data, opts in (("big.bin", big, []), ("small.bin", small, []),
                                 ("big.bin", big, ["--checksum", "sha256"])):
            with self.subTest(name=name, opts=opts):
                out = self.lp("p-" + name)
                r = self.ferry("get", self.p(name), out, opts=opts, host=host, plaintext=True)
                self.assertOk(r)
                self.assertEqual(read(out), data)
                os.unlink(out)
        # A kept temporary with a good prefix: only the rest crosses.
        write(self.lp(".r.bin" + PART), big[:5 * MiB + 3])
        r = self.ferry("get", self.p("big.bin"), self.lp("r.bin"), opts=["--resume"], host=host,
                       plaintext=True)
        self.assertOk(r)
        self.assertEqual(read(self.lp("r.bin")), big)
        self.assertEqual(parts_under(self.local), [])

    def test_checksum_sha256(self):
        data = os.urandom(MiB)
        write(self.lp("s"), data)
        self.assertOk(self.ferry("put", self.lp("s"), self.p("s"), opts=["--checksum", "sha256"]))
        self.assertEqual(read(self.rp("s")), data)
        self.assertOk(self.ferry("get", self.p("s"), self.lp("s2"), opts=["--checksum", "sha256"]))
        self.assertEqual(read(self.lp("s2")), data)

    def test_directory_destinations(self):
        write(self.lp("f.txt"), b"into a directory")
        os.mkdir(self.rp("dir"))
        self.assertOk(self.ferry("put", self.lp("f.txt"), self.p("dir")))
        self.assertEqual(read(self.rp("dir", "f.txt")), b"into a directory")
        os.mkdir(self.rp("dir2"))
        self.assertOk(self.ferry("put", self.lp("f.txt"), self.p("dir2") + "/"))
        self.assertEqual(read(self.rp("dir2", "f.txt")), b"into a directory")
        # several files into a directory
        write(self.lp("g.txt"), b"g")
        self.assertOk(self.ferry("put", self.lp("f.txt"), self.lp("g.txt"), self.p("dir2")))
        self.assertEqual(read(self.rp("dir2", "g.txt")), b"g")
        # get into an existing local directory, and into one named with '/'
        os.mkdir(self.lp("ldir"))
        self.assertOk(self.ferry("get", self.p("dir", "f.txt"), self.lp("ldir")))
        self.assertEqual(read(self.lp("ldir", "f.txt")), b"into a directory")
        os.mkdir(self.lp("ldir2"))
        self.assertOk(self.ferry("get", self.p("dir", "f.txt"), self.lp("ldir2") + "/"))
        self.assertEqual(read(self.lp("ldir2", "f.txt")), b"into a directory")

    def test_recursive_trees(self):
        tree = {"t/a.txt": b"a", "t/sub/b.bin": os.urandom(300000), "t/sub/deeper/c": b"",
                "t/empty/": None}
        for rel, data in tree.items():
            if data is None:
                os.makedirs(self.lp(rel), exist_ok=True)
            else:
                write(self.lp(rel), data)
        os.mkdir(self.rp("dst"))
        r = self.ferry("put", self.lp("t"), self.p("dst"), opts=["-r"])
        self.assertOk(r)
        for rel, data in tree.items():
            if data is None:
                self.assertTrue(os.path.isdir(self.rp("dst", rel)))
            else:
                self.assertEqual(read(self.rp("dst", rel)), data)
        os.mkdir(self.lp("back"))
        self.assertOk(self.ferry("get", self.p("dst", "t"), self.lp("back"), opts=["-r"]))
        for rel, data in tree.items():
            if data is not None:
                self.assertEqual(read(self.lp("back", rel)), data)
        r = self.ferry("put", self.lp("t"), self.p("dst2"))       # a directory without -r
        self.assertNotEqual(r.returncode, 0)
        self.assertTrue(r.stderr.strip())

    def test_preserve_mode_and_mtime(self):
        write(self.lp("m"), b"keep my times", mode=0o640)
        os.utime(self.lp("m"), (1400000000, 1400000000))
        self.assertOk(self.ferry("put", self.lp("m"), self.p("m"), opts=["-p"]))
        st = os.stat(self.rp("m"))
        self.assertEqual((stat.S_IMODE(st.st_mode), int(st.st_mtime)), (0o640, 1400000000))
        write(self.rp("n"), b"and mine", mode=0o604)
        os.utime(self.rp("n"), (1300000000, 1300000000))
        self.assertOk(self.ferry("get", self.p("n"), self.lp("n"), opts=["-p"]))
        st = os.stat(self.lp("n"))
        self.assertEqual((stat.S_IMODE(st.st_mode), int(st.st_mtime)), (0o604, 1300000000))

    def test_ls_stat_mkdir_rm(self):
        write(self.rp("x.txt"), b"12345")
        r = self.ferry("mkdir", self.p("made", "deep"), opts=["-p"])
        self.assertOk(r)
        self.assertTrue(os.path.isdir(self.rp("made", "deep")))
        r = self.ferry("ls", self.td)
        self.assertOk(r)
        lines = r.stdout.decode().splitlines()
        xl = [l for l in lines if l.endswith("x.txt")]
        self.assertEqual(len(xl), 1, r.stdout)
        self.assertIn("5", xl[0].split())
        self.assertTrue([l for l in lines if l.endswith("made")], r.stdout)
        r = self.ferry("ls", self.td, opts=["--json"])
        self.assertOk(r)
        doc = json.loads(r.stdout)
        entries = doc if isinstance(doc, list) else doc.get("entries", [])
        by = {e["name"]: e for e in entries}
        self.assertEqual(sorted(by), ["made", "x.txt"])
        self.assertEqual(by["x.txt"].get("filesize", by["x.txt"].get("size")), 5)
        r = self.ferry("stat", self.p("x.txt"))
        self.assertOk(r)
        self.assertIn(b"5", r.stdout)
        r = self.ferry("rm", self.p("x.txt"))
        self.assertOk(r)
        self.assertFalse(os.path.exists(self.rp("x.txt")))
        r = self.ferry("rm", self.p("made"))
        self.assertNotEqual(r.returncode, 0)
        self.assertOk(self.ferry("rm", self.p("made"), opts=["-r"]))
        self.assertFalse(os.path.exists(self.rp("made")))

    def test_ls_and_stat_show_symlink_targets(self):
        """ls -l's "name -> target" for a link inside, one out of the root
        (its text, never its content) and a dangling one; stat names the
        target after the path; --json carries it as it came."""
        write(self.rp("f.txt"), b"12345")
        links = {"in": "f.txt", "out": "/etc/passwd", "dangling": "nowhere"}
        for name, target in links.items():
            os.symlink(target, self.rp(name))
        r = self.ferry("ls", self.td)
        self.assertOk(r)
        by = {l.split()[4]: l for l in r.stdout.decode().splitlines()}   # mode size date time name
        self.assertEqual(sorted(by), ["dangling", "f.txt", "in", "out"])
        for name, target in links.items():
            self.assertTrue(by[name].startswith("l"), by[name])
            self.assertTrue(by[name].endswith(" %s -> %s" % (name, target)), by[name])
        self.assertNotIn("->", by["f.txt"])
        self.assertNotIn(b"root:", r.stdout)
        r = self.ferry("stat", self.p("out"), self.p("f.txt"))
        self.assertOk(r)
        out = r.stdout.decode()
        self.assertIn("  path: %s -> /etc/passwd\n  kind: link\n" % self.p("out"), out)
        self.assertIn("  path: %s\n  kind: file\n" % self.p("f.txt"), out)
        r = self.ferry("ls", self.td, opts=["--json"])
        self.assertOk(r)
        self.assertEqual({e["name"]: e.get("target") for e in json.loads(r.stdout)},
                         dict(links, **{"f.txt": None}))
        r = self.ferry("stat", self.p("dangling"), opts=["--json"])
        self.assertOk(r)
        self.assertEqual(json.loads(r.stdout)["target"], "nowhere")

    def test_exit_status_and_one_line_per_failed_file(self):
        write(self.lp("ok.txt"), b"fine")
        os.mkdir(self.rp("d"))
        r = self.ferry("put", self.lp("ok.txt"), self.lp("missing1"), self.lp("missing2"),
                       self.p("d"))
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(read(self.rp("d", "ok.txt")), b"fine")
        err = r.stderr.decode().strip().splitlines()
        self.assertEqual(len(err), 2, r.stderr)
        self.assertIn("missing1", err[0] + err[1])
        self.assertIn("missing2", err[0] + err[1])
        r = self.ferry("get", self.p("nope"), self.lp("nope"))
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(len(r.stderr.decode().strip().splitlines()), 1, r.stderr)
        self.assertFalse(os.path.exists(self.lp("nope")))
        r = self.ferry("get", "../escape", self.lp("esc"))
        self.assertNotEqual(r.returncode, 0)
        self.assertTrue(r.stderr.strip())

    def _kill_when(self, proc, pred, what):
        try:
            wait_until(lambda: pred() or proc.poll() is not None, 30, what)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()

    def test_plaintext_put_round_trips_and_resumes(self):
        """Over --plaintext the client hashes each slice from the page cache
        and sendfiles it: several frames (the last one short), a small
        file, sha256, and a resumed upload that starts mid-file (the read
        path's file position must not matter)."""
        host = self.plaintext_server().addr()
        big = os.urandom(2 * 16 * MiB + 5 * MiB + 7)
        small = os.urandom(1000)
        write(self.lp("big.bin"), big)
        write(self.lp("small.bin"), small)
        for name, data, opts in (("big.bin", big, []), ("small.bin", small, []),
                                 ("big.bin", big, ["--checksum", "sha256"])):
            with self.subTest(name=name, opts=opts):
                r = self.ferry("put", self.lp(name), self.p("p-" + name), opts=opts, host=host,
                               plaintext=True)
                self.assertOk(r)
                self.assertEqual(read(self.rp("p-" + name)), data)
                os.unlink(self.rp("p-" + name))
        # A kept temporary with a good prefix: only the rest crosses.
        write(self.rp(".r.bin" + PART), big[:5 * MiB + 3])
        r = self.ferry("put", self.lp("big.bin"), self.p("r.bin"), opts=["--resume"], host=host,
                       plaintext=True)
        self.assertOk(r)
        self.assertEqual(read(self.rp("r.bin")), big)
        self.assertEqual(parts_under(self.tdir), [])

    def test_put_resume_after_a_killed_client_sends_only_the_rest(self):
        size, cut = 24 * MiB, 10 * MiB
        data = os.urandom(size)
        write(self.lp("r.bin"), data)
        relay = ft.Relay(self.hostport, up_limit=cut)
        self.addCleanup(relay.close)
        p = subprocess.Popen(self.argv("put", self.lp("r.bin"), self.p("r.bin"),
                                       opts=["--resume"], host=relay.addr),
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=self.env())
        part = self.rp(".r.bin" + PART)
        self._kill_when(p, lambda: os.path.exists(part) and os.path.getsize(part) >= cut - 2 * MiB,
                        "the server's temporary to reach the cut")
        relay.close()
        self.assertFalse(os.path.exists(self.rp("r.bin")))
        self.wait_not_open(os.path.join(self.td, ".r.bin" + PART))
        kept = os.path.getsize(part)
        counter = ft.Relay(self.hostport)
        self.addCleanup(counter.close)
        r = self.ferry("put", self.lp("r.bin"), self.p("r.bin"), opts=["--resume"],
                       host=counter.addr)
        self.assertOk(r)
        self.assertEqual(read(self.rp("r.bin")), data)
        self.assertLess(counter.count["up"], size - kept + MiB,
                        "the resumed upload sent %d bytes; %d were kept" % (counter.count["up"], kept))
        self.assertEqual(parts_under(self.tdir), [])

    def test_get_resume_after_a_killed_client_fetches_only_the_rest(self):
        size, cut = 24 * MiB, 10 * MiB
        data = os.urandom(size)
        write(self.rp("g.bin"), data)
        relay = ft.Relay(self.hostport, down_limit=cut)
        self.addCleanup(relay.close)
        p = subprocess.Popen(self.argv("get", self.p("g.bin"), self.lp("g.bin"),
                                       opts=["--resume"], host=relay.addr),
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=self.env())
        part = self.lp(".g.bin" + PART)
        self._kill_when(p, lambda: os.path.exists(part) and os.path.getsize(part) >= cut - 2 * MiB,
                        "the client's temporary to reach the cut")
        relay.close()
        self.assertFalse(os.path.exists(self.lp("g.bin")))
        kept = os.path.getsize(part)
        counter = ft.Relay(self.hostport)
        self.addCleanup(counter.close)
        r = self.ferry("get", self.p("g.bin"), self.lp("g.bin"), opts=["--resume"],
                       host=counter.addr)
        self.assertOk(r)
        self.assertEqual(read(self.lp("g.bin")), data)
        self.assertLess(counter.count["down"], size - kept + MiB)
        self.assertFalse(os.path.exists(part))

    def _via(self, plaintext):
        """Where a corrupting relay forwards to: over TLS (the class's
        ferryd) the flipped bit breaks a record's tag; in the clear (a
        --plaintext ferryd on the same root) only the transfer's checksum
        can catch it."""
        if not plaintext:
            return self.hostport
        return self.plaintext_server().hostport()

    def test_corrupted_upload_is_not_committed(self):
        for plaintext in (False, True):
            with self.subTest(plaintext=plaintext):
                name = "c-%s.bin" % ("plain" if plaintext else "tls")
                write(self.rp(name), b"previous")
                write(self.lp(name), os.urandom(8 * MiB))
                relay = ft.Relay(self._via(plaintext), corrupt={"up": 3 * MiB})  # inside the data
                self.addCleanup(relay.close)
                r = self.ferry("put", self.lp(name), self.p(name), host=relay.addr,
                               plaintext=plaintext)
                self.assertNotEqual(r.returncode, 0)
                self.assertEqual(len(r.stderr.decode().strip().splitlines()), 1, r.stderr)
                self.assertEqual(read(self.rp(name)), b"previous")
                self.wait_no_parts(self.tdir)

    def test_corrupted_download_is_not_committed(self):
        for plaintext in (False, True):
            with self.subTest(plaintext=plaintext):
                name = "c-%s.bin" % ("plain" if plaintext else "tls")
                write(self.rp(name), os.urandom(8 * MiB))
                write(self.lp(name), b"previous")
                relay = ft.Relay(self._via(plaintext), corrupt={"down": 3 * MiB})
                self.addCleanup(relay.close)
                r = self.ferry("get", self.p(name), self.lp(name), host=relay.addr,
                               plaintext=plaintext)
                self.assertNotEqual(r.returncode, 0)
                self.assertEqual(len(r.stderr.decode().strip().splitlines()), 1, r.stderr)
                self.assertEqual(read(self.lp(name)), b"previous")
                self.assertEqual(parts_under(self.local), [])

    def test_killed_download_leaves_the_local_file_alone(self):
        write(self.rp("d.bin"), os.urandom(16 * MiB))
        write(self.lp("d.bin"), b"previous")
        relay = ft.Relay(self.hostport, down_limit=4 * MiB)
        self.addCleanup(relay.close)
        p = subprocess.Popen(self.argv("get", self.p("d.bin"), self.lp("d.bin"), host=relay.addr),
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=self.env())
        self._kill_when(p, relay.held.is_set, "the relay to hold the download")
        relay.close()
        self.assertEqual(read(self.lp("d.bin")), b"previous")

    def test_killed_upload_leaves_no_file(self):
        write(self.rp("k.bin"), b"previous")
        write(self.lp("k.bin"), os.urandom(16 * MiB))
        relay = ft.Relay(self.hostport, up_limit=4 * MiB)
        self.addCleanup(relay.close)
        p = subprocess.Popen(self.argv("put", self.lp("k.bin"), self.p("k.bin"), host=relay.addr),
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=self.env())
        self._kill_when(p, relay.held.is_set, "the relay to hold the upload")
        relay.close()
        self.wait_no_parts(self.tdir)
        self.assertEqual(read(self.rp("k.bin")), b"previous")

    def _pty_run(self, argv, timeout=60):
        """Run with stderr on a pty; returns (status, what was written to it, seconds)."""
        master, slave = pty.openpty()
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=slave, env=dict(self.env(), TERM="xterm", COLUMNS="100"))
        os.close(slave)
        out = b""
        deadline = time.monotonic() + timeout * SLOW
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 1)
            if r:
                try:
                    b = os.read(master, 65536)
                except OSError:      # EIO: the slave side is closed
                    break
                if not b:
                    break
                out += b
            elif p.poll() is not None:
                break
        os.close(master)
        if p.poll() is None:
            p.kill()
        return p.wait(), out, time.monotonic() - t0

    def test_progress_bar_on_a_terminal(self):
        size = 8 * MiB
        write(self.lp("progress.bin"), os.urandom(size))
        relay = ft.Relay(self.hostport, rate=6 * MiB)      # about 1.3 s
        self.addCleanup(relay.close)
        status, out, secs = self._pty_run(self.argv("put", self.lp("progress.bin"),
                                                    self.p("progress.bin"), host=relay.addr))
        self.assertEqual(status, 0, out)
        self.assertIn(b"progress.bin", out)
        self.assertRegex(out, rb"\d+%")
        # gone when the transfer ends: nothing of a bar after the last return
        self.assertNotRegex(out.rsplit(b"\r", 1)[-1], rb"\d+%", "the bar was left on screen")
        draws = len(re.findall(rb"\d+%", out))
        self.assertLessEqual(draws, 12 * secs + 4, "more than ~10 updates a second: %r" % out[:400])
        self.assertEqual(read(self.rp("progress.bin")), read(self.lp("progress.bin")))

    def test_no_progress_with_q_or_without_a_terminal(self):
        write(self.lp("quiet.bin"), os.urandom(4 * MiB))
        relay = ft.Relay(self.hostport, rate=8 * MiB)
        self.addCleanup(relay.close)
        status, out, _ = self._pty_run(self.argv("put", self.lp("quiet.bin"), self.p("quiet.bin"),
                                                 opts=["-q"], host=relay.addr))
        self.assertEqual(status, 0, out)
        self.assertNotRegex(out, rb"\d+%")
        r = self.ferry("put", self.lp("quiet.bin"), self.p("quiet2.bin"), host=relay.addr)
        self.assertOk(r)
        self.assertEqual(r.stderr, b"")
        r = self.ferry("get", self.p("quiet2.bin"), self.lp("quiet2.bin"), host=relay.addr)
        self.assertOk(r)
        self.assertEqual(r.stderr, b"")

    def test_shell_put_get_ls_lcd_lpwd(self):
        write(self.lp("a.txt"), b"from the shell\n")
        write(self.root + "/b-" + self.td + ".txt", b"fetched\n")
        os.mkdir(self.lp("sub"))
        script = ("put a.txt\nls\nlpwd\nlcd sub\nlpwd\nget b-%s.txt\n" % self.td).encode()
        r = subprocess.run([FERRY, "shell", "-k", self.key_path, self.host], input=script,
                           capture_output=True, env=self.env(), cwd=self.local,
                           timeout=60 * SLOW)
        self.assertOk(r)
        out = r.stdout.decode()
        self.assertEqual(read(os.path.join(self.root, "a.txt")), b"from the shell\n")
        self.assertIn("a.txt", out)
        self.assertIn(os.path.realpath(self.local) + "\n", out)
        self.assertIn(os.path.realpath(self.lp("sub")) + "\n", out)
        self.assertEqual(read(self.lp("sub", "b-%s.txt" % self.td)), b"fetched\n")
        os.unlink(os.path.join(self.root, "a.txt"))

    def test_concurrent_cli_transfers(self):
        n = 8
        for i in range(n):
            write(self.lp("c%d" % i), os.urandom(MiB + i))
        procs = [subprocess.Popen(self.argv("put", self.lp("c%d" % i), self.p("c%d" % i)),
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=self.env()) for i in range(n)]
        for p in procs:
            out, err = p.communicate(timeout=60 * SLOW)
            self.assertEqual(p.returncode, 0, err)
        for i in range(n):
            self.assertEqual(read(self.rp("c%d" % i)), read(self.lp("c%d" % i)))

    @ft.heavy
    @unittest.skipIf(SANITIZED, "4 GiB through sanitized programs is too slow")
    @ft.cost(60)
    def test_put_past_4_gib_from_a_sparse_file(self):
        local = self.lp("huge")
        size = 4 * GiB + 12345
        with open(local, "wb") as f:
            f.truncate(size)
            for off in (7, 4 * GiB - 2, size - 9):
                f.seek(off)
                f.write(b"marker")
        self.addCleanup(lambda: os.path.exists(self.rp("huge")) and os.unlink(self.rp("huge")))
        r = self.ferry("put", local, self.p("huge"), opts=["-q"], timeout=600)
        self.assertOk(r)
        self.assertEqual(os.path.getsize(self.rp("huge")), size)
        self.assertEqual(ft.digest_file(self.rp("huge")), ft.digest_file(local))


if __name__ == "__main__":
    ft.main()
