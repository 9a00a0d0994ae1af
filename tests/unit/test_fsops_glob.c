/*
 * test_fsops_glob.c - patterns expanded beneath the served root
 * (src/ferryd/fsops_glob.c): one directory level per component, sorted
 * answers, dot files only when asked, escapes that stay literal (and can
 * never spell ".."), temporaries hidden, and symlinks out of the root never
 * entered.
 *
 * Each test runs in the sandbox of fix_fsroot (BASE/root, BASE/outside),
 * with openat2 and with fspath's fallback; the fixture's teardown checks
 * that no descriptor leaked.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "unit_util.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fix_fsroot.h"
#include "fsops_glob.h"

#define SUFFIX ".ferry-part"

static int setup_openat2(void **state)  { return fix_fs_setup(state, false, "test_fsops_glob"); }
static int setup_fallback(void **state) { return fix_fs_setup(state, true, "test_fsops_glob"); }
static int teardown(void **state)       { return fix_fs_teardown(state); }

/* The expansion of pattern as one string, matches joined by ' ' ("" for
 * none), compared with want. */
static void expect(const struct fix_fs *f, const char *pattern, const char *want)
{
    char got[1024] = "";
    char **paths;
    size_t n;

    assert_int_equal(fsops_glob(f->root, pattern, SUFFIX, &paths, &n), 0);
    for (size_t i = 0; i < n; i++) {
        if (i)
            strcat(got, " ");
        assert_true(strlen(got) + strlen(paths[i]) < sizeof got - 1);
        strcat(got, paths[i]);
    }
    fsops_glob_free(paths, n);
    assert_string_equal(got, want);
}

static void tree(const struct fix_fs *f)
{
    fix_fs_mkdir(f, "root/logs");
    fix_fs_mkdir(f, "root/logs/old");
    fix_fs_mkdir(f, "root/tmp");
    fix_fs_file(f, "root/logs/b.gz", "b");
    fix_fs_file(f, "root/logs/a.gz", "a");
    fix_fs_file(f, "root/logs/c.txt", "c");
    fix_fs_file(f, "root/logs/.h.gz", "h");
    fix_fs_file(f, "root/logs/s*r", "s");
    fix_fs_file(f, "root/logs/old/d.gz", "d");
    fix_fs_file(f, "root/logs/.a.gz" SUFFIX, "part");
}

static void test_levels_and_order(void **state)
{
    struct fix_fs *f = *state;

    tree(f);
    expect(f, "logs/*.gz", "logs/a.gz logs/b.gz");
    expect(f, "logs/?.*", "logs/a.gz logs/b.gz logs/c.txt");
    expect(f, "logs/[bc]*", "logs/b.gz logs/c.txt");
    expect(f, "*", "logs tmp");
    expect(f, "*/*/*.gz", "logs/old/d.gz");
    /* A literal tail names only what exists. */
    expect(f, "*/old", "logs/old");
    expect(f, "*/nothing", "");
    expect(f, "nothing/*", "");
    expect(f, "tmp/*", "");
    /* A file is no directory to look in. */
    expect(f, "logs/c.txt/*", "");
}

static void test_dots_escapes_and_temporaries(void **state)
{
    struct fix_fs *f = *state;

    tree(f);
    expect(f, "logs/.*", "logs/.h.gz");            /* never . or .., nor the temporary */
    expect(f, "logs/*" SUFFIX, "");
    expect(f, "logs/s\\*r", "logs/s*r");
    expect(f, "logs/\\*", "");
    /* Escaped dots are still dots: never a way up. */
    expect(f, "logs/\\.\\./*", "");
    expect(f, "\\.\\./*", "");
    expect(f, "\\./logs", "");
    assert_true(fsops_glob_magic("a*", 2));
    assert_false(fsops_glob_magic("a\\*", 3));
    assert_false(fsops_glob_magic("a*", 1));
}

static void test_symlinks_out_are_not_entered(void **state)
{
    struct fix_fs *f = *state;

    fix_fs_file(f, "outside/g", "outside the root");
    fix_fs_link(f, f->outside, "root/out");
    expect(f, "out/*", "");
    expect(f, "*", "out");                 /* the link itself is a name in the root */
}

/* Literal components after a metacharacter are appended as one run: what
 * each names is the same as one at a time (escapes undone; a dot, a
 * double dot or a temporary anywhere in the run names nothing). */
static void test_literal_runs(void **state)
{
    struct fix_fs *f = *state;

    tree(f);
    fix_fs_mkdir(f, "root/logs/old/x");
    fix_fs_mkdir(f, "root/logs/old/x/y*z");
    fix_fs_file(f, "root/logs/old/x/y*z/end", "e");
    expect(f, "*/old/x/y\\*z/end", "logs/old/x/y*z/end");
    expect(f, "l*/old/x/y\\*z/*", "logs/old/x/y*z/end");
    expect(f, "*/old/x/y\\*z/nothing", "");
    expect(f, "*/old/\\.\\./x/*", "");
    expect(f, "*/old/x/\\./y\\*z", "");
    expect(f, "*/old/.d.gz" SUFFIX "/x", "");
}

/* An expansion holds at most FSOPS_GLOB_MAX_BYTES of paths: more is
 * -E2BIG, as more than FSOPS_GLOB_MAX_MATCHES paths is.  The entries sit
 * 14 directories of 255-byte names deep, so a few hundred are enough. */
static void test_bytes_are_bounded(void **state)
{
    struct fix_fs *f = *state;
    char dir[4096] = "root", rel[4400], pattern[4400];
    size_t len = strlen(dir), count;
    char **paths;
    size_t n;

    for (int level = 0; level < 14; level++) {
        len += (size_t)snprintf(dir + len, sizeof dir - len, "/%c%0254d", 'a' + level, 0);
        fix_fs_mkdir(f, dir);
    }
    count = FSOPS_GLOB_MAX_BYTES / (len - strlen("root/") + 1 + 250) + 1;
    for (size_t i = 0; i < count; i++) {
        snprintf(rel, sizeof rel, "%s/%05zu%0245d", dir, i, 0);
        fix_fs_file(f, rel, "");
    }
    snprintf(pattern, sizeof pattern, "%s/*", dir + strlen("root/"));
    assert_int_equal(fsops_glob(f->root, pattern, SUFFIX, &paths, &n), -E2BIG);
    snprintf(pattern, sizeof pattern, "%s/0000[0-9]*", dir + strlen("root/"));
    assert_int_equal(fsops_glob(f->root, pattern, SUFFIX, &paths, &n), 0);
    assert_int_equal(n, 10);
    fsops_glob_free(paths, n);
}

#define BOTH(fn)                                                   \
    { #fn "/openat2", fn, setup_openat2, teardown, NULL },         \
    { #fn "/fallback", fn, setup_fallback, teardown, NULL }

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_levels_and_order),
        BOTH(test_dots_escapes_and_temporaries),
        BOTH(test_symlinks_out_are_not_entered),
        BOTH(test_literal_runs),
        BOTH(test_bytes_are_bounded),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
