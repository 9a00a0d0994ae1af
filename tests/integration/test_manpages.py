"""The man pages (man/*.[1358], mdoc): `mandoc -T lint` finds nothing in
them, and they keep up with the programs: every option and subcommand
ferry's and ferryd's --help list appears in ferry(1) and ferryd(8), every
keyword `ferry config` prints in ferry-config(5), every public header in
libferry(3), whose example compiles and links against the library."""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import ferrytest
from ferrytest import SANITIZED

SOURCE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MAN = os.path.join(SOURCE, "man")
BUILD = os.path.dirname(os.path.abspath(ferrytest.BIN))
PAGES = ("ferry.1", "ferryd.8", "ferry-config.5", "libferry.3")
# A page may name its siblings before they are installed: mandoc looks for
# them in the system's manual, where they are not (yet).
OWN_XR = re.compile(r"referenced manual not found: Xr (ferry|ferryd|ferry-config|libferry) [1358]")
_OPTION = re.compile(r"--?[A-Za-z][A-Za-z0-9-]*")


def rendered(page):
    """The page as a reader sees it, without overstrike."""
    out = subprocess.run(["mandoc", "-T", "ascii", os.path.join(MAN, page)], check=True,
                         capture_output=True, text=True).stdout
    return re.sub(r".\x08", "", out)


def help_options(*argv):
    """The options a --help lists: the leading '-x, --long' of every line
    that defines one."""
    out = subprocess.run([*argv, "--help"], capture_output=True, text=True).stdout
    found = set()
    for line in out.splitlines():
        rest = line.lstrip()
        if not rest.startswith("-"):
            continue
        for token in rest.split(" ")[0:2]:
            m = _OPTION.fullmatch(token.rstrip(","))
            if m:
                found.add(m.group(0))
            if not token.endswith(","):
                break
    return found, out


def mentions(text, option):
    return re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(option), text) is not None


@unittest.skipUnless(shutil.which("mandoc"), "mandoc is not installed (scripts/deps.sh)")
class ManPages(unittest.TestCase):
    def test_lint_clean(self):
        for page in PAGES:
            r = subprocess.run(["mandoc", "-T", "lint", "-W", "style", os.path.join(MAN, page)],
                               capture_output=True, text=True)
            msgs = [m for m in (r.stdout + r.stderr).splitlines() if m and not OWN_XR.search(m)]
            self.assertEqual(msgs, [], page)

    def test_ferry_page_has_every_command_and_option(self):
        page = rendered("ferry.1")
        ferry = ferrytest.binary("ferry")
        options, top = help_options(ferry)
        commands = re.findall(r"^  ferry (\w+)", top, re.M)
        self.assertIn("exec", commands)
        for cmd in commands:
            self.assertTrue(mentions(page, "ferry " + cmd) or re.search(r"^   %s\b" % cmd, page, re.M),
                            "ferry.1 lacks the command %s" % cmd)
            opts, _ = help_options(ferry, cmd)
            self.assertIn("--help", opts)
            options |= opts
        missing = sorted(o for o in options if not mentions(page, o))
        self.assertEqual(missing, [], "options ferry.1 does not describe")

    def test_each_command_s_options_in_its_own_section(self):
        # An option the page names only elsewhere (get --force beside
        # keygen --force) is still one a reader of "put and get" never
        # finds: each command's options are looked for in the subsections
        # of DESCRIPTION whose title names it, and the connection options'.
        page = rendered("ferry.1")
        desc = page.split("\nDESCRIPTION\n", 1)[1].split("\nENVIRONMENT\n", 1)[0]
        sections, title = {}, None
        for line in desc.splitlines():
            m = re.match(r"^   (\S.*)$", line)
            if m:
                title = m.group(1)
                sections[title] = []
            elif title:
                sections[title].append(line)
        self.assertIn("Connection options", sections)
        ferry = ferrytest.binary("ferry")
        commands = re.findall(r"^  ferry (\w+)", help_options(ferry)[1], re.M)
        for cmd in sorted(set(commands)):
            text = "\n".join(l for t, lines in sections.items()
                             if t == "Connection options" or cmd in re.split(r"[ ,]+", t)
                             for l in lines)
            opts, _ = help_options(ferry, cmd)
            missing = sorted(o for o in opts if not mentions(text, o))
            self.assertEqual(missing, [], "ferry.1's sections for %s lack these" % cmd)

    def test_ferryd_page_has_every_option(self):
        options, _ = help_options(ferrytest.binary("ferryd"))
        self.assertIn("--listen", options)
        page = rendered("ferryd.8")
        missing = sorted(o for o in options if not mentions(page, o))
        self.assertEqual(missing, [], "options ferryd.8 does not describe")

    def test_config_page_has_every_keyword(self):
        with tempfile.TemporaryDirectory() as d:
            conf = os.path.join(d, "config")
            open(conf, "w").close()
            out = subprocess.run([ferrytest.binary("ferry"), "config", "-F", conf, "h"],
                                 capture_output=True, text=True, check=True).stdout
        keywords = [line.split()[0] for line in out.splitlines()]
        self.assertIn("address", keywords)
        with open(os.path.join(MAN, "ferry-config.5")) as f:
            described = {m.lower() for m in re.findall(r"^\.It Cm (\w+)", f.read(), re.M)}
        self.assertEqual(sorted(set(keywords) - described), [])

    def test_library_page_names_every_header_and_its_example_builds(self):
        with open(os.path.join(MAN, "libferry.3")) as f:
            source = f.read()
        for h in os.listdir(os.path.join(SOURCE, "include", "ferry")):
            if h != "common.h":
                self.assertIn("ferry/" + h, source)
        if SANITIZED:
            return          # the archive is instrumented; the example is not
        example = re.search(r"^\.Sh EXAMPLES\n.*?^\.Bd -literal.*?\n(.*?)^\.Ed", source,
                            re.M | re.S).group(1).replace("\\e", "\\")
        with tempfile.TemporaryDirectory() as d:
            src = os.path.join(d, "echo.c")
            with open(src, "w") as f:
                f.write(example)
            libs = subprocess.run(["pkg-config", "--libs", "jansson", "libssl", "libcrypto"],
                                  check=True, capture_output=True, text=True).stdout.split()
            r = subprocess.run(["cc", "-std=c11", "-Wall", "-Wextra", "-Werror",
                                "-I" + os.path.join(SOURCE, "include"), src,
                                os.path.join(BUILD, "lib", "libferry.a"), *libs, "-pthread",
                                "-o", os.path.join(d, "echo")], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    ferrytest.main()
