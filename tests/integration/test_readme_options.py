"""The README's option tables match the programs (issue 14, "Messages that
misled"): every long option a table lists is one the program's --help
lists, and the other way round, so neither can drift alone (--help and
--version, which every program takes, aside); and the variables `make run`
reads are documented."""
import os
import re
import unittest

import ferrytest

TOP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
README = os.path.join(TOP, "README.md")
OPTION_RX = re.compile(r"--[a-z][a-z0-9-]*")
HELP_LINE_RX = re.compile(r"^\s+(?:-[A-Za-z], )?(--[a-z][a-z0-9-]*)", re.M)

# Every program takes these, as the README says once for all of them.
COMMON = {"--help", "--version"}
# program -> the README heading its option table follows
SECTIONS = {
    "ferryd": "## ferryd",
    "frame_echo": "### The frame echo server (`frame_echo`)",
    "auth_echo": "### The HMAC-authenticated echo (`auth_echo`, `auth_client`)",
}


def readme():
    with open(README, encoding="utf-8") as f:
        return f.read()


def table_options(heading):
    """The long options in the first column of the first table after heading."""
    text = readme()
    start = text.index(heading + "\n")
    rows, seen_table = [], False
    for line in text[start:].splitlines()[1:]:
        if line.startswith("|"):
            seen_table = True
            rows.append(line)
        elif seen_table:
            break
    opts = set()
    for row in rows[2:]:                      # the header and the rule
        opts.update(OPTION_RX.findall(row.split(" | ")[0]))
    return opts


def help_options(prog):
    r = ferrytest.run(prog, "--help")
    if r.returncode != 0:
        raise AssertionError("%s --help: %s" % (prog, r.stderr))
    return set(HELP_LINE_RX.findall(r.stdout))


class ReadmeOptionTables(unittest.TestCase):
    def test_tables_match_help(self):
        for prog, heading in SECTIONS.items():
            with self.subTest(prog=prog):
                documented = table_options(heading) - COMMON
                actual = help_options(prog) - COMMON
                self.assertTrue(documented)
                self.assertEqual(sorted(documented - actual), [], "in the README, not in --help")
                self.assertEqual(sorted(actual - documented), [], "in --help, not in the README")

    def test_run_script_variables_are_documented(self):
        with open(os.path.join(TOP, "scripts", "run.sh"), encoding="utf-8") as f:
            names = set(re.findall(r"\$\{(FERRY_[A-Z_]+):-", f.read()))
        self.assertTrue(names)
        text = readme()
        missing = [n for n in sorted(names) if "`%s`" % n not in text]
        self.assertEqual(missing, [])


if __name__ == "__main__":
    ferrytest.main()
