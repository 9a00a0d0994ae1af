/*
 * test_escape.c - the escape sequences of `ferry exec -t`
 * (src/ferry/escape.c): what is sent and what is done for each sequence,
 * only at the start of a line, split across reads, with another escape
 * character or none, and -e's argument.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "escape.h"

/* Feed text in one go (or byte by byte); returns the bytes sent, and the
 * actions seen in order in acts ("h" help, "d" disconnect). */
static const char *feed(struct escape *e, const char *text, int bytewise, char *acts)
{
    static char sent[256];
    size_t n = strlen(text), at = 0, total = 0;

    acts[0] = '\0';
    while (at < n) {
        size_t len = bytewise ? 1 : n - at, used = 0, out = 0;
        uint8_t buf[258];
        enum escape_action a = escape_feed(e, (const uint8_t *)text + at, len, &used, buf, &out);

        assert_true(used >= 1 && used <= len);
        assert_true(out <= used + 1);
        memcpy(sent + total, buf, out);
        total += out;
        at += used;
        if (a == ESCAPE_HELP)
            strcat(acts, "h");
        if (a == ESCAPE_DISCONNECT) {
            strcat(acts, "d");
            break;
        }
    }
    sent[total] = '\0';
    return sent;
}

static void check(int ch, const char *typed, const char *want_sent, const char *want_acts)
{
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        struct escape e;
        char acts[16];

        escape_init(&e, ch);
        assert_string_equal(feed(&e, typed, bytewise, acts), want_sent);
        assert_string_equal(acts, want_acts);
    }
}

static void test_sequences_at_line_start(void **state)
{
    (void)state;
    check('~', "~.", "", "d");
    check('~', "ls\r~.rest", "ls\r", "d");
    check('~', "ls\n~.", "ls\n", "d");
    check('~', "~?", "", "h");
    check('~', "~?~.", "", "hd");           /* help leaves us at a line start */
    check('~', "~~", "~", "");
    check('~', "~~.", "~.", "");            /* the ~ sent ends the line start */
    check('~', "~x", "~x", "");
    check('~', "~\r~.", "~\r", "d");
}

static void test_not_inside_a_line(void **state)
{
    (void)state;
    check('~', "a~.", "a~.", "");
    check('~', "cd ~/x\r", "cd ~/x\r", "");
    check('~', "x~?", "x~?", "");
}

static void test_other_escape_and_off(void **state)
{
    (void)state;
    check(0x1d, "~.", "~.", "");
    check(0x1d, "\x1d.", "", "d");
    check(0x1d, "\x1d\x1d", "\x1d", "");
    check(ESCAPE_OFF, "~.~?~~", "~.~?~~", "");
}

static void test_parse_argument(void **state)
{
    int ch = 0;

    (void)state;
    assert_int_equal(escape_parse("none", &ch), 0);
    assert_int_equal(ch, ESCAPE_OFF);
    assert_int_equal(escape_parse("%", &ch), 0);
    assert_int_equal(ch, '%');
    assert_int_equal(escape_parse("^]", &ch), 0);
    assert_int_equal(ch, 0x1d);
    assert_int_equal(escape_parse("^a", &ch), 0);
    assert_int_equal(ch, 1);
    assert_int_equal(escape_parse("", &ch), -EINVAL);
    assert_int_equal(escape_parse("ab", &ch), -EINVAL);
    assert_int_equal(escape_parse("^1", &ch), -EINVAL);
    assert_int_equal(escape_parse("^", &ch), 0);    /* the character ^ itself */
    assert_int_equal(ch, '^');
}

static void test_help_names_the_character(void **state)
{
    char buf[512];

    (void)state;
    assert_non_null(strstr(escape_help('~', buf, sizeof buf), " ~.  - disconnect"));
    assert_non_null(strstr(escape_help(0x1d, buf, sizeof buf), " ^].  - disconnect"));
    assert_non_null(strstr(buf, "\r\n"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sequences_at_line_start),
        cmocka_unit_test(test_not_inside_a_line),
        cmocka_unit_test(test_other_escape_and_off),
        cmocka_unit_test(test_parse_argument),
        cmocka_unit_test(test_help_names_the_character),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
