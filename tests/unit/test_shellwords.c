/*
 * test_shellwords.c - how ferry shell reads its own commands' words
 * (src/ferry/shellwords.c): sh's quoting without expansions, and cd's
 * operand: as typed when nothing is quoted, one word when something is,
 * ~ only when unquoted.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "shellwords.h"

/* The words of line joined by '|' ("" for none); the split must work. */
static const char *joined(const char *line)
{
    static char out[256];
    char *store = NULL, **w = NULL;
    int n = -1;

    assert_int_equal(shellwords_split(line, &store, &w, &n), 0);
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (i > 0)
            strcat(out, "|");
        strcat(out, w[i]);
    }
    assert_null(w[n]);
    free(store);
    free(w);
    return out;
}

static void test_split(void **state)
{
    char *store = NULL, **w = NULL;
    int n = 0;

    (void)state;
    assert_string_equal(joined(""), "");
    assert_string_equal(joined("   \t "), "");
    assert_string_equal(joined(" put  a.txt\tb "), "put|a.txt|b");
    assert_string_equal(joined("a\\ b c"), "a b|c");
    assert_string_equal(joined("'a b' \"c d\""), "a b|c d");
    assert_string_equal(joined("'it\\'s"), "it\\s");          /* no escapes inside '...' */
    assert_string_equal(joined("\"say \\\"hi\\\" \\\\ \\n\""), "say \"hi\" \\ \\n");
    assert_string_equal(joined("x'y z'w"), "xy zw");            /* quotes join a word */
    assert_string_equal(joined("'' \"\""), "|");                /* two empty words */
    assert_string_equal(joined("end\\"), "end\\");              /* a lone final backslash */
    assert_string_equal(joined("\\'"), "'");
    assert_int_equal(shellwords_split("'open", &store, &w, &n), '\'');
    assert_int_equal(shellwords_split("a \"open", &store, &w, &n), '"');
    assert_null(store);
}

/* cd's operand arg gives 0, the directory want and from_home home. */
static void expect_cd(const char *arg, const char *want, int home)
{
    char *dir = NULL;
    int from_home = -1;

    assert_int_equal(shellwords_cd_operand(arg, &dir, &from_home), 0);
    assert_string_equal(dir, want);
    assert_int_equal(from_home, home);
    free(dir);
}

/* cd's operand arg is refused with code want, nothing allocated. */
static void expect_cd_error(const char *arg, int want)
{
    char *dir = (char *)"unset";
    int from_home;

    assert_int_equal(shellwords_cd_operand(arg, &dir, &from_home), want);
    assert_null(dir);
}

static void test_cd_operand(void **state)
{
    (void)state;
    /* Nothing quoted: as typed, blanks and all (as cd always read it). */
    expect_cd("a b", "a b", 0);
    expect_cd("/tmp", "/tmp", 0);
    /* Quoted or escaped: one word, as sh reads it. */
    expect_cd("a\\ b", "a b", 0);
    expect_cd("'a b'", "a b", 0);
    expect_cd("\"a b\"/c", "a b/c", 0);
    expect_cd("\"it's\"", "it's", 0);
    expect_cd_error("'a b' c", -E2BIG);
    expect_cd_error("a\\ b c", -E2BIG);
    expect_cd_error("''", -ENOENT);
    expect_cd_error("'a b", '\'');
    /* The first directory: nothing, or an unquoted leading ~. */
    expect_cd("", "", 1);
    expect_cd("~", "", 1);
    expect_cd("~/a b", "/a b", 1);
    expect_cd("~/a\\ b", "/a b", 1);
    /* A quoted ~, or one that starts a name, is a name. */
    expect_cd("'~'", "~", 0);
    expect_cd("~'/x'", "~/x", 0);
    expect_cd("~user", "~user", 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_cd_operand),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
