"""What a hostile or unlucky client could do to ferryd's file service and
session, found in an adversarial review: each test is the reproduction of
one finding (it failed before its fix) and checks the fix.

One --plaintext ferryd with a keys file (an unrestricted key, a read-only
one and a files-only one confined to a root= of its own) serves every
test, driven frame by frame by ferrytest.Session; a test that needs the
tree in a given shape makes it in a directory of its own under the root.
"""
import os
import re
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ferrytest as ft  # noqa: E402
from ferrytest import SLOW, Session  # noqa: E402
from test_files import SANITIZER_RX  # noqa: E402


class Hostile(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="ferry-hostile-")
        cls.dir = cls.tmp.name
        cls.root = os.path.join(cls.dir, "root")
        cls.alt = os.path.join(cls.dir, "alt")
        os.mkdir(cls.root)
        os.mkdir(cls.alt)
        cls.keys = {name: os.urandom(32) for name in ("alice", "reader", "boxed", "forced")}
        cls.keys_file = keys_file = os.path.join(cls.dir, "keys")
        fd = os.open(keys_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("alice %s\n" % cls.keys["alice"].hex())
            f.write("reader %s read-only\n" % cls.keys["reader"].hex())
            f.write("boxed %s files-only,root=%s\n" % (cls.keys["boxed"].hex(), cls.alt))
            # A forced command that never reads its stdin.
            f.write('forced %s command="exec sleep 60"\n' % cls.keys["forced"].hex())
        cls.srv = ft.start_ferryd("--root", cls.root, "--keys", keys_file, plaintext=True)

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        cls.tmp.cleanup()

    def tearDown(self):
        self.assertIsNone(self.srv.proc.poll(), "ferryd died: %s" % self.srv.log[-20:])
        bad = [l for l in self.srv.log if SANITIZER_RX.search(l)]
        self.assertEqual(bad, [], "sanitizer report from ferryd")

    def session(self, name="alice", timeout=20):
        s = Session(self.srv.hostport(), timeout=timeout).login(self.keys[name], name=name)
        self.addCleanup(s.close)
        return s

    def own_dir(self, base=None):
        """A directory of this test's own under the root (or base)."""
        d = os.path.join(base or self.root, self.id().rsplit(".", 1)[1])
        os.mkdir(d)
        return d

    def test_a_glob_of_many_literal_components_does_not_stall_the_loop(self):
        """A "*" over a big directory followed by some 2000 literal
        components: each was appended to every path held, one component
        at a time, on the loop thread: minutes of copying (78 s for 10000
        entries) during which no other session was served, from any key
        that may list, read-only included."""
        d = self.own_dir()
        for i in range(2000):
            open(os.path.join(d, "f%04d" % i), "wb").close()
        base = os.path.basename(d) + "/*"
        pattern = base + "/x" * ((4000 - len(base)) // 2)
        s = self.session("reader", timeout=3)
        start = time.monotonic()
        s.send({"type": "glob", "path": pattern})
        h = s.recv()[0]
        self.assertLess(time.monotonic() - start, 3 * SLOW)
        # No match; or, since the answer is bounded in bytes too (the test
        # below), refused as too big: either way at once.
        self.assertIn(h, [{"type": "glob-end", "count": 0},
                          {"type": "error", "code": "request", "message": h.get("message")}])
        # A literal run still names what exists, escapes and all.
        os.makedirs(os.path.join(d, "zdir", "a*b", "c"))
        s.send({"type": "glob", "path": base + "/a\\*b/c"})
        h = s.recv()[0]
        self.assertEqual(h["paths"], [os.path.basename(d) + "/zdir/a*b/c"], h)
        self.assertEqual(s.recv()[0]["count"], 1)
        s.send({"type": "glob", "path": base + "/a\\*b/\\.\\./c"})
        self.assertEqual(s.recv()[0], {"type": "glob-end", "count": 0})

    def test_names_that_are_not_utf8_are_left_out_not_the_session(self):
        """A file a local user named in Latin-1 cannot be said in JSON:
        listing its directory, completing a cd there, or a cd that ends in
        such a directory (through a symlink with a UTF-8 name) ended the
        whole session ("Cannot allocate memory") for every name beside it."""
        d = self.own_dir()
        rel = os.path.basename(d)
        os.mkdir(os.path.join(d.encode(), b"d\xe9j\xe0"))
        open(os.path.join(d.encode(), b"caf\xe9.txt"), "wb").close()
        os.mkdir(os.path.join(d, "plain"))
        open(os.path.join(d, "ok.txt"), "wb").close()
        os.symlink(b"d\xe9j\xe0", os.path.join(d.encode(), b"latin"))
        s = self.session()
        entries, end = s.list(rel)
        self.assertEqual(sorted(e["name"] for e in entries), ["latin", "ok.txt", "plain"])
        self.assertEqual(end, {"type": "list-end", "count": 3})
        h = s.request({"type": "cd-names", "path": d, "prefix": ""})
        self.assertEqual((h["type"], h["names"]), ("cd-names", ["latin", "plain"]), h)
        h = s.request({"type": "chdir", "path": d})
        self.assertEqual(h, {"type": "cwd", "path": d})
        h = s.request({"type": "chdir", "path": "latin"})
        self.assertEqual((h["type"], h["code"]), ("error", "request"), h)
        self.assertIn("not valid UTF-8", h["message"])
        # The session goes on, in the directory it was in.
        self.assertEqual(s.request({"type": "chdir", "path": "plain"}),
                         {"type": "cwd", "path": os.path.join(d, "plain")})

    def test_a_key_that_may_not_run_commands_has_no_directory_to_probe_with(self):
        """chdir looked at any path on the machine for any key: a
        files-only key confined to its root= learnt what exists outside
        it ("Not a directory" / "No such file") and where symlinks lead
        (the answer is the realpath).  Such a key has no directory (no
        command runs in it): chdir is refused, as cd-names was."""
        for name in ("boxed", "reader"):
            s = self.session(name)
            for path in ("/etc", "/etc/passwd", "/nonexistent", ".", ""):
                mark = len(self.srv.log)
                h = s.request({"type": "chdir", "path": path})
                self.assertEqual((h["type"], h.get("code")), ("error", "denied"), (name, path, h))
                self.assertNotIn("passwd", h["message"])
                self.srv.wait_for_log(r"audit: event=file .*op=chdir result=denied", start=mark)
            self.assertEqual(s.stat(".")["type"], "stat")   # the session goes on
        # ferry shell with such a key says nothing at its start (it asks
        # for its directory quietly), and a cd is refused in words.
        open(os.path.join(self.alt, "in-the-box.txt"), "wb").close()
        key = os.path.join(self.dir, "boxed.key")
        with open(key, "w") as f:
            f.write(self.keys["boxed"].hex() + "\n")
        os.chmod(key, 0o600)
        r = subprocess.run([ft.binary("ferry"), "--plaintext", "shell", "--keep-going", "-k", key,
                            "--key-name", "boxed", self.srv.addr()], input=b"cd /etc\nls\n",
                           capture_output=True, timeout=30 * SLOW, cwd=self.dir,
                           env=dict(ft.sanitizer_env(), PATH=os.environ.get("PATH", "/bin"),
                                    HOME=self.dir, LANG="C.UTF-8"))
        self.assertIn(b"in-the-box.txt", r.stdout, r.stderr)
        self.assertEqual(r.stderr.decode().splitlines(),
                         ["ferry: this key may not run commands, so it has no directory to change"])

    def test_a_glob_answer_is_bounded_in_bytes_not_only_in_paths(self):
        """10000 matches of 4 KiB each (entries at the bottom of a deep
        tree) were 40 MiB queued for a client that never reads the
        answer, per connection: a few hundred connections of a read-only
        key took the machine's memory.  The answer is now bounded at
        1 MiB of paths as well."""
        d = self.own_dir()
        deep = "/".join(["a"] * 900)
        here = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for _ in range(900):      # deeper than one path string can be made
                os.mkdir("a", dir_fd=here)
                down = os.open("a", os.O_RDONLY | os.O_DIRECTORY, dir_fd=here)
                os.close(here)
                here = down
            for i in range(600):
                os.mkdir("f%03d" % i, dir_fd=here)
        finally:
            os.close(here)
        rel = os.path.basename(d) + "/" + deep
        s = self.session("reader")
        s.send({"type": "glob", "path": rel + "/*"})       # 600 x 1.9 KB: over 1 MiB
        h = s.recv()[0]
        self.assertEqual((h["type"], h.get("code")), ("error", "request"), h)
        self.assertIn("1048576 bytes", h["message"])
        s.send({"type": "glob", "path": rel + "/f0*"})     # 100 of them: answered
        got = []
        while True:
            h = s.recv()[0]
            if h["type"] != "matches":
                break
            got += h["paths"]
        self.assertEqual(h, {"type": "glob-end", "count": 100})
        self.assertEqual(got, [rel + "/f%03d" % i for i in range(100)])

    def test_an_error_naming_a_long_path_is_not_cut_inside_a_character(self):
        """An fs error names the path cut at 400 bytes: cut inside a
        character (a path in Greek or CJK), the message was not UTF-8, the
        error could not be built, and the session ended ("Cannot allocate
        memory") instead of answering ENOENT."""
        s = self.session("reader")
        path = "a" * 200 + "/" + "a" * 198 + "\u00e9\u00e9"    # byte 400 is inside an e-acute
        for req in ({"type": "stat", "path": path}, {"type": "get", "path": path},
                    {"type": "list", "path": path}):
            h = s.request(req)
            self.assertEqual((h["type"], h.get("errno")), ("error", "ENOENT"), (req, h))
            self.assertTrue(h["message"].startswith("a" * 200 + "/" + "a" * 198 + ": "), h)

    def test_a_request_error_cut_inside_a_character_is_still_sent(self):
        """A spawn error names argv[0], cut to fit ferryd's message buffer:
        a long non-ASCII name was cut inside a character, the error could
        not be built, and the session ended instead of answering 127."""
        s = self.session()
        res = s.run({"argv": ["\u00e9" * 300]})
        self.assertEqual(res["errors"][0]["code"], "spawn", res)
        self.assertEqual(res["exit"]["status"], 127, res)
        self.assertIn("\u00e9\u00e9", res["errors"][0]["message"])
        self.assertEqual(s.run({"argv": ["true"]})["exit"]["status"], 0)   # the session goes on

    def rss_kib(self):
        with open("/proc/%d/status" % self.srv.proc.pid) as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))

    @unittest.skipIf(ft.SANITIZED, "a sanitizer's quarantine keeps freed memory: RSS says nothing")
    def test_stdin_sent_a_byte_a_frame_is_held_in_about_its_own_size(self):
        """The stdin window is 1 MiB, but each frame's body was queued in a
        chunk of its own: sent one byte a frame, to a command that does not
        read it (a command= key's forced command will do), the window held
        48 MiB of ferryd's memory per session, in under two seconds."""
        s = self.session("forced")
        s.send({"type": "exec", "argv": ["anything"]})
        before = self.rss_kib()
        s.send_raw(ft.frame({"type": "stdin"}, b"x") * ((1 << 20) - 1))
        s.send({"type": "ping"})          # answered once everything before it was read
        while s.recv()[0]["type"] != "pong":
            pass
        grown = self.rss_kib() - before
        self.assertLess(grown, 16 * 1024, "ferryd grew by %d KiB for 1 MiB of stdin" % grown)

    def test_the_keys_roots_are_swept_for_unfinished_uploads_too(self):
        """Only --root was swept at start: a temporary that a crash (or a
        resumable upload never resumed) left in a key's root= stayed there
        for good, hidden from every listing, holding its disk space."""
        stale = os.path.join(self.alt, ".stale.bin.ferry-part")
        mine = os.path.join(self.alt, "notes.ferry-part")     # a user's own: no leading dot
        for path in (stale, mine):
            with open(path, "wb") as f:
                f.write(b"x" * 1000)
        srv = ft.start_ferryd("--root", self.root, "--keys", self.keys_file, plaintext=True)
        self.addCleanup(srv.stop)
        srv.wait_for_log(r"root %s: swept for unfinished uploads: .* removed 1;" % re.escape(self.alt))
        self.assertFalse(os.path.exists(stale))
        self.assertTrue(os.path.exists(mine))


if __name__ == "__main__":
    ft.main()
