"""`make install` (cmake/install.cmake), tested from the installed place: the
tree lands where GNUInstallDirs says, the installed ferryd serves the
installed ferry, libferry.so has its soname and exports only the public
API, each installed header compiles alone (C99 and C11, -pedantic),
ferry.pc lets a C programmer build the README's "libferry in thirty
lines" against the installed prefix (shared, and with --static),
uninstall leaves nothing behind but a configuration the administrator
edited, and debian/changelog has version.h's version.

The tree is installed once per class into a temporary prefix.  The installs
name their component (every rule is in CMake's default one, "Unspecified"),
so the manifest they write is build/install_manifest_Unspecified.txt and a
real `make install`'s build/install_manifest.txt, which `make uninstall`
reads, is left alone."""
import os
import re
import signal
import socket
import subprocess
import tempfile
import unittest

import ferrytest
from ferrytest import SANITIZED, write_key

BUILD = os.path.dirname(os.path.abspath(ferrytest.BIN))
SOURCE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MANIFEST = os.path.join(BUILD, "install_manifest_Unspecified.txt")


def source_version():
    """(MAJOR, MINOR, PATCH) from include/ferry/version.h, the one place."""
    with open(os.path.join(SOURCE, "include", "ferry", "version.h")) as f:
        text = f.read()
    return tuple(int(re.search(r"#define FERRY_VERSION_%s (\d+)" % p, text).group(1))
                 for p in ("MAJOR", "MINOR", "PATCH"))


def readme_example():
    """The C block under README's "libferry in thirty lines"."""
    with open(os.path.join(SOURCE, "README.md")) as f:
        text = f.read()
    section = text[text.index("## libferry in thirty lines"):]
    return re.search(r"```c\n(.*?)```", section, re.S).group(1)


def install(env=None, prefix=None):
    args = ["cmake", "--install", BUILD, "--component", "Unspecified"]
    if prefix:
        args += ["--prefix", prefix]
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, env=env, timeout=60)


def needed(path):
    out = subprocess.run(["readelf", "-d", path], check=True, capture_output=True,
                         text=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[(.*?)\]", out)


class InstalledTree(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.prefix = os.path.join(cls.tmp.name, "prefix")
        install(prefix=cls.prefix)
        cls.version = "%d.%d.%d" % source_version()
        cls.major = source_version()[0]
        cls.env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(cls.prefix, "lib", "pkgconfig"))
        cls.env.pop("PKG_CONFIG_LIBDIR", None)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def path(self, *parts):
        return os.path.join(self.prefix, *parts)

    def pkg_config(self, *args):
        return subprocess.run(["pkg-config", *args, "ferry"], check=True, capture_output=True,
                              text=True, env=self.env).stdout.split()

    def compile(self, name, source, link):
        """cc SOURCE with the given link arguments; returns the program."""
        src = os.path.join(self.tmp.name, name + ".c")
        out = os.path.join(self.tmp.name, name)
        with open(src, "w") as f:
            f.write(source)
        r = subprocess.run(["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", src,
                            *self.pkg_config("--cflags"), *link, "-o", out],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        return out

    def test_layout(self):
        for rel in ("bin/ferry", "sbin/ferryd"):
            self.assertTrue(os.access(self.path(rel), os.X_OK), rel)
        for rel in ("lib/libferry.a", "lib/pkgconfig/ferry.pc",
                    "share/man/man1/ferry.1", "share/man/man8/ferryd.8",
                    "share/man/man5/ferry-config.5", "share/man/man3/libferry.3",
                    "share/doc/ferry/examples/config",
                    "share/bash-completion/completions/ferry",
                    "share/zsh/site-functions/_ferry",
                    "share/ansible/plugins/connection/ferry.py"):
            self.assertTrue(os.path.isfile(self.path(rel)), rel)
        with open(os.path.join(SOURCE, "ansible", "plugins", "connection", "ferry.py"), "rb") as a, \
             open(self.path("share", "ansible", "plugins", "connection", "ferry.py"), "rb") as b:
            self.assertEqual(a.read(), b.read(), "the Ansible plugin")
        for page in ("ferry.1", "ferryd.8", "ferry-config.5", "libferry.3"):
            with open(os.path.join(SOURCE, "man", page), "rb") as a, \
                 open(self.path("share", "man", "man" + page[-1], page), "rb") as b:
                self.assertEqual(a.read(), b.read(), page)
        headers = sorted(h for h in os.listdir(os.path.join(SOURCE, "include", "ferry"))
                         if h.endswith(".h"))
        self.assertEqual(sorted(os.listdir(self.path("include", "ferry"))), headers)
        # the real file carries the full version; the soname link the major
        # (a new ABI); the dev link is what -lferry finds
        real = "libferry.so." + self.version
        self.assertTrue(os.path.isfile(self.path("lib", real)))
        self.assertEqual(os.readlink(self.path("lib", "libferry.so.%d" % self.major)), real)
        self.assertEqual(os.path.realpath(self.path("lib", "libferry.so")),
                         os.path.realpath(self.path("lib", real)))
        out = subprocess.run(["readelf", "-d", self.path("lib", real)], check=True,
                             capture_output=True, text=True).stdout
        self.assertIn("Library soname: [libferry.so.%d]" % self.major, out)

    def test_programs_keep_the_static_library(self):
        # their start-up must not pay for loading one more library (issue 12)
        for rel in ("bin/ferry", "sbin/ferryd"):
            self.assertFalse([n for n in needed(self.path(rel)) if "ferry" in n], rel)

    def test_programs_zero_no_large_thread_local_storage_at_start(self):
        # glibc zeroes a program's static thread-local storage at its start
        # and at every thread's: 384 KiB of buffers there cost a fresh
        # command 96 page faults, and ferryd's 700 KiB every thread (issue 12)
        limit = 16 * 1024
        for rel in ("bin/ferry", "sbin/ferryd", "lib/libferry.so"):
            out = subprocess.run(["readelf", "-lW", self.path(rel)], check=True,
                                 capture_output=True, text=True).stdout
            sizes = [int(m, 16) for m in
                     re.findall(r"^\s*TLS\s+\S+\s+\S+\s+\S+\s+\S+\s+(0x[0-9a-f]+)", out, re.M)]
            self.assertLessEqual(sum(sizes), limit, "%s: %s bytes of static TLS" % (rel, sizes))

    def test_installed_programs_print_the_version_and_work(self):
        r = subprocess.run([self.path("bin", "ferry"), "--version"], capture_output=True,
                           text=True, check=True)
        self.assertEqual(r.stdout, "ferry %s\n" % self.version)
        r = subprocess.run([self.path("sbin", "ferryd"), "--version"], capture_output=True,
                           text=True)
        self.assertTrue(r.stdout.startswith("ferryd %s " % self.version), r.stdout)
        key = os.path.join(self.tmp.name, "key")
        write_key(key)
        root = os.path.join(self.tmp.name, "root")
        server = ferrytest.start_ferryd("--root", root, key_path=key,
                                        path=self.path("sbin", "ferryd"))
        self.addCleanup(server.stop_quietly)
        host, port = server.hostport()
        r = subprocess.run([self.path("bin", "ferry"), "exec", "-k", key,
                            "%s:%d" % (host, port), "--", "echo", "from the prefix"],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
        self.assertEqual((r.returncode, r.stdout), (0, "from the prefix\n"), r.stderr)

    def test_only_the_public_api_is_exported(self):
        out = subprocess.run(["nm", "-D", "--defined-only", self.path("lib", "libferry.so")],
                             check=True, capture_output=True, text=True).stdout
        exported = {line.split()[-1] for line in out.splitlines() if line.strip()}
        declared = set()
        for h in os.listdir(self.path("include", "ferry")):
            with open(self.path("include", "ferry", h)) as f:
                text = f.read()
            # every FERRY_EXPORT declaration: the name before its '('
            for decl in re.findall(r"^FERRY_EXPORT\b(.*?)\(", text, re.S | re.M):
                declared.add(re.findall(r"\w+", decl)[-1])
        self.assertIn("ferry_version", exported)
        self.assertFalse(exported - declared, "exported but not in the headers")
        self.assertFalse(declared - exported, "declared but not exported")

    def test_each_header_compiles_alone(self):
        # a C programmer includes just the header they need, in C99 or C11,
        # with the warnings on: each must bring what it uses, and twice is
        # harmless (its include guard)
        inc = self.path("include", "ferry")
        srcs = []
        for h in sorted(os.listdir(inc)):
            src = os.path.join(self.tmp.name, "alone_" + h.replace(".h", ".c"))
            with open(src, "w") as f:
                f.write("#include <ferry/%s>\n#include <ferry/%s>\n"
                        "int main(void)\n{\n    return 0;\n}\n" % (h, h))
            srcs.append(src)
        self.assertGreater(len(srcs), 10)
        for std in ("c99", "c11"):
            r = subprocess.run(["cc", "-std=" + std, "-Wall", "-Wextra", "-pedantic", "-Werror",
                                "-fsyntax-only", *self.pkg_config("--cflags"), *srcs],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)

    def test_pkg_config_static_lists_the_private_libraries(self):
        self.assertEqual(self.pkg_config("--modversion"), [self.version])
        libs = self.pkg_config("--static", "--libs")
        for lib in ("-lferry", "-ljansson", "-lssl", "-lcrypto", "-pthread"):
            self.assertIn(lib, libs)
        # a shared link needs only what the headers use (jansson)
        self.assertNotIn("-lssl", self.pkg_config("--libs"))

    @unittest.skipIf(SANITIZED, "a sanitized libferry.so needs its runtime in the program")
    def test_ferry_version_matches_the_headers(self):
        prog = self.compile("version", '#include <stdio.h>\n#include <string.h>\n'
                            '#include <ferry/ferry.h>\n'
                            'int main(void)\n{\n'
                            '    printf("%s %s\\n", ferry_version(), FERRY_VERSION);\n'
                            '    return strcmp(ferry_version(), FERRY_VERSION) != 0;\n}\n',
                            self.pkg_config("--libs"))
        r = subprocess.run([prog], capture_output=True, text=True,
                           env=dict(os.environ, LD_LIBRARY_PATH=self.path("lib")))
        self.assertEqual((r.returncode, r.stdout), (0, "%s %s\n" % (self.version, self.version)))

    @unittest.skipIf(SANITIZED, "a sanitized libferry.so needs its runtime in the program")
    def test_a_cplusplus_program_links_and_runs(self):
        # every header gives C++ callers C linkage (FERRY_BEGIN_DECLS):
        # without it the calls below are mangled and do not link
        src = os.path.join(self.tmp.name, "cxx.cc")
        out = os.path.join(self.tmp.name, "cxx")
        with open(src, "w") as f:
            f.write('#include <cstdio>\n#include <ferry/ferry.h>\n'
                    'int main()\n{\n'
                    '    struct ferry_server_opts o = {};\n'
                    '    struct ferry_server *s = nullptr;\n'
                    '    if (ferry_server_new(&o, &s) != 0)\n        return 1;\n'
                    '    ferry_server_free(s);\n'
                    '    std::printf("%s %s\\n", ferry_version(), ferry_strerror(FERRY_EADDR));\n'
                    '    return 0;\n}\n')
        r = subprocess.run(["g++", "-std=c++17", "-Wall", "-Wextra", "-Werror", src,
                            *self.pkg_config("--cflags"), *self.pkg_config("--libs"), "-o", out],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = subprocess.run([out], capture_output=True, text=True,
                           env=dict(os.environ, LD_LIBRARY_PATH=self.path("lib")))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith(self.version + " "), r.stdout)

    def echo_through(self, prog, env):
        server = ferrytest.start_server("example", "127.0.0.1:0", path=prog, env=env)
        self.addCleanup(server.stop_quietly)
        with ferrytest.connect(server) as s:
            s.sendall(b"hello, libferry")
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(ferrytest.recv_until_closed(s), b"hello, libferry")
        self.assertEqual(server.stop(signal.SIGTERM), 0)

    @unittest.skipIf(SANITIZED, "a sanitized libferry.so needs its runtime in the program")
    def test_readme_example_builds_with_pkg_config_and_runs(self):
        prog = self.compile("example", readme_example(), self.pkg_config("--libs"))
        self.assertIn("libferry.so.%d" % self.major, needed(prog))
        self.echo_through(prog, dict(os.environ, LD_LIBRARY_PATH=self.path("lib")))

    @unittest.skipIf(SANITIZED, "the static archive is sanitized; the example is not")
    def test_readme_example_links_statically_with_pkg_config_static(self):
        link = ["-Wl,-Bstatic", "-lferry", "-Wl,-Bdynamic"]
        libs = self.pkg_config("--static", "--libs")
        libs = [a for x in libs for a in (link if x == "-lferry" else [x])]
        prog = self.compile("example_static", readme_example(), libs)
        self.assertFalse([n for n in needed(prog) if "ferry" in n])
        env = dict(os.environ)
        env.pop("LD_LIBRARY_PATH", None)
        self.echo_through(prog, env)

    def test_example_config_is_valid(self):
        r = subprocess.run([self.path("bin", "ferry"), "config", "-F",
                            self.path("share", "doc", "ferry", "examples", "config"), "web1"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        for want in ("address 10.0.0.5", "port 7272", "connecttimeout 5"):
            self.assertIn(want, lines)
        # it shows every keyword ferry knows (those `ferry config` prints)
        with open(self.path("share", "doc", "ferry", "examples", "config")) as f:
            used = {line.split()[0].lower() for line in f
                    if line.strip() and not line.lstrip().startswith("#")}
        known = {line.split()[0] for line in lines}
        self.assertEqual(sorted(known - used), [])


class Uninstall(unittest.TestCase):
    def test_destdir_install_then_uninstall_leaves_nothing(self):
        with tempfile.TemporaryDirectory() as stage:
            env = dict(os.environ, DESTDIR=stage)
            install(env=env)
            with open(MANIFEST) as f:
                files = f.read().split()
            self.assertTrue(files)
            for f in files:             # DESTDIR is honoured: all under it
                self.assertTrue(os.path.lexists(stage + f), f)
            subprocess.run(["cmake", "-DMANIFEST=" + MANIFEST, "-P",
                            os.path.join(SOURCE, "cmake", "uninstall.cmake")],
                           check=True, stdout=subprocess.DEVNULL, env=env, timeout=60)
            left = [os.path.join(d, n) for d, _, names in os.walk(stage) for n in names]
            self.assertEqual(left, [])
            dirs = [d for d, _, _ in os.walk(stage)]
            self.assertFalse([d for d in dirs if d.endswith(("/include/ferry", "/doc/ferry"))])


class EditedConfiguration(unittest.TestCase):
    """An install's files under etc (ferryd.conf) are the administrator's once
    edited (cmake/etcfiles.cmake): uninstall removes one only if unchanged
    since the install, a new install replaces it only then.  In a build
    directory of the test's own (configured, not built: the component
    "service" installs only what it writes), so that no other test's install
    rewrites the manifest between an install and its uninstall here."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.build = os.path.join(cls.tmp.name, "build")
        subprocess.run(["cmake", "-S", SOURCE, "-B", cls.build, "-DBUILD_TESTING=OFF",
                        "-DCMAKE_INSTALL_PREFIX=/usr/local"], check=True, capture_output=True,
                       timeout=120)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def setUp(self):
        self.stage = tempfile.mkdtemp(dir=self.tmp.name)
        self.conf = self.stage + "/usr/local/etc/ferry/ferryd.conf"

    def run_cmake(self, *args):
        r = subprocess.run(["cmake", *args], capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, DESTDIR=self.stage))
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def install(self):
        return self.run_cmake("--install", self.build, "--component", "service")

    def uninstall(self):
        return self.run_cmake("-DMANIFEST=" + os.path.join(self.build,
                                                           "install_manifest_service.txt"),
                              "-P", os.path.join(SOURCE, "cmake", "uninstall.cmake"))

    def left(self):
        return sorted(os.path.relpath(os.path.join(d, n), self.stage)
                      for d, _, names in os.walk(self.stage) for n in names)

    def test_an_unchanged_configuration_is_removed(self):
        self.install()
        self.assertTrue(os.path.isfile(self.conf))
        self.uninstall()
        self.assertEqual(self.left(), [])
        self.assertFalse(os.path.exists(os.path.dirname(self.conf)))    # etc/ferry: ours

    def test_an_edited_configuration_is_kept_with_a_message(self):
        self.install()
        with open(self.conf, "a") as f:
            f.write("idle-timeout 60\n")
        out = self.uninstall()
        self.assertIn("Kept (changed since it was installed): " + self.conf, out)
        self.assertEqual(self.left(), ["usr/local/etc/ferry/ferryd.conf"])
        with open(self.conf) as f:
            self.assertTrue(f.read().endswith("\nidle-timeout 60\n"))

    def test_an_unchanged_configuration_is_ours_at_the_next_install(self):
        self.install()
        out = self.install()                 # unchanged: replaced, and so in the manifest
        self.assertNotIn("Kept", out)
        self.uninstall()
        self.assertEqual(self.left(), [])

    def test_a_configuration_that_was_there_first_is_never_touched(self):
        os.makedirs(os.path.dirname(self.conf))
        with open(self.conf, "w") as f:
            f.write("root /srv/mine\n")
        self.assertIn("Kept: " + self.conf, self.install())
        self.uninstall()
        self.assertEqual(self.left(), ["usr/local/etc/ferry/ferryd.conf"])


class DebianPackaging(unittest.TestCase):
    def test_the_changelog_has_the_version_of_version_h(self):
        # debian/changelog's first entry is the packages' version (a native
        # package: no Debian revision); version.h is the one place it is set.
        with open(os.path.join(SOURCE, "debian", "changelog")) as f:
            first = f.readline()
        m = re.match(r"ferry \(([^)]+)\) ", first)
        self.assertTrue(m, first)
        self.assertEqual(m.group(1), "%d.%d.%d" % source_version())


if __name__ == "__main__":
    ferrytest.main()
