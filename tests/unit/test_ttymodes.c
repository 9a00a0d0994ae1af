/*
 * test_ttymodes.c - terminal modes and window sizes as they travel
 * (src/shared/ttymodes.c): a round trip of every mode, unknown names
 * skipped, garbage refused with nothing applied, absurd sizes refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "ttymodes.h"

static void test_round_trip(void **state)
{
    struct termios t, back;
    char err[160];
    json_t *j;

    (void)state;
    memset(&t, 0, sizeof t);
    t.c_lflag = ECHO | ICANON | ISIG;
    t.c_iflag = ICRNL | IUTF8;
    t.c_oflag = OPOST | ONLCR;
    t.c_cc[VINTR] = 3;
    t.c_cc[VERASE] = 127;
    j = ttymodes_to_json(&t);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "ECHO")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "ECHONL")), 0);
    assert_int_equal(json_integer_value(json_object_get(j, "VERASE")), 127);
    memset(&back, 0xff, sizeof back);
    back.c_cflag = CS8;
    assert_int_equal(ttymodes_apply(j, &back, err, sizeof err), 0);
    assert_int_equal(back.c_lflag & (ECHO | ICANON | ISIG | ECHONL), ECHO | ICANON | ISIG);
    assert_int_equal(back.c_iflag & (ICRNL | IUTF8 | IXON), ICRNL | IUTF8);
    assert_int_equal(back.c_cc[VINTR], 3);
    assert_int_equal(back.c_cc[VERASE], 127);
    json_decref(j);
}

static void refused(const char *modes_json, const char *words)
{
    json_t *m = json_loads(modes_json, JSON_DECODE_ANY, NULL);
    struct termios t, before;
    char err[160] = "";

    assert_non_null(m);
    memset(&t, 0x5a, sizeof t);
    before = t;
    assert_int_equal(ttymodes_apply(m, &t, err, sizeof err), -EINVAL);
    assert_memory_equal(&t, &before, sizeof t);    /* nothing applied */
    if (!strstr(err, words))
        print_message("%s: '%s' lacks '%s'\n", modes_json, err, words);
    assert_non_null(strstr(err, words));
    json_decref(m);
}

static void test_garbage_modes(void **state)
{
    struct termios t;
    char err[160];
    json_t *m;

    (void)state;
    refused("[1, 2]", "object");
    refused("\"ECHO\"", "object");
    refused("{\"ICANON\": 0, \"ECHO\": 2}", "ECHO must be 0 or 1");
    refused("{\"VINTR\": 256}", "VINTR must be 0 to 255");
    refused("{\"VINTR\": -1}", "VINTR");
    refused("{\"ECHO\": true}", "not an integer");
    refused("{\"whatever\": \"x\"}", "not an integer");
    /* Unknown names with integer values are skipped. */
    m = json_loads("{\"NEWMODE\": 9, \"ECHO\": 0}", 0, NULL);
    memset(&t, 0, sizeof t);
    t.c_lflag = ECHO;
    assert_int_equal(ttymodes_apply(m, &t, err, sizeof err), 0);
    assert_int_equal(t.c_lflag & ECHO, 0);
    json_decref(m);
}

static int size_of(const char *text, struct winsize *ws, char *err)
{
    json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);
    int r;

    assert_non_null(j);
    r = ttysize_from_json(j, ws, err, 160);
    json_decref(j);
    return r;
}

static void test_sizes(void **state)
{
    struct winsize ws;
    char err[160];
    json_t *o;

    (void)state;
    assert_int_equal(size_of("{\"rows\": 40, \"cols\": 120}", &ws, err), 0);
    assert_int_equal(ws.ws_row, 40);
    assert_int_equal(ws.ws_col, 120);
    assert_int_equal(ws.ws_xpixel, 0);
    assert_int_equal(size_of("{\"rows\":1,\"cols\":10000,\"xpixel\":65535,\"ypixel\":0}", &ws, err), 0);
    const char *bad[] = {
        "{\"rows\": 0, \"cols\": 80}", "{\"rows\": 24, \"cols\": 10001}", "{\"rows\": 24}",
        "{\"rows\": -5, \"cols\": 80}", "{\"rows\": 24.5, \"cols\": 80}",
        "{\"rows\": \"24\", \"cols\": 80}", "{\"rows\": 24, \"cols\": 80, \"xpixel\": 70000}",
        "{\"rows\": 24, \"cols\": 80, \"ypixel\": -1}", "[24, 80]",
        "{\"rows\": 9223372036854775807, \"cols\": 80}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(size_of(bad[i], &ws, err), -EINVAL);
        assert_non_null(strstr(err, "bad window size"));
    }
    /* 0 x 0 (unknown) goes out as 80 x 24, never as something refused. */
    memset(&ws, 0, sizeof ws);
    o = json_object();
    assert_int_equal(ttysize_to_json(&ws, o), 0);
    assert_int_equal(json_integer_value(json_object_get(o, "rows")), 24);
    assert_int_equal(json_integer_value(json_object_get(o, "cols")), 80);
    json_decref(o);
}

static void test_term_names(void **state)
{
    (void)state;
    assert_true(ttymodes_term_valid("xterm-256color"));
    assert_true(ttymodes_term_valid("screen.xterm+x_y"));
    assert_false(ttymodes_term_valid(""));
    assert_false(ttymodes_term_valid(NULL));
    assert_false(ttymodes_term_valid("x y"));
    assert_false(ttymodes_term_valid("../../etc"));
    assert_false(ttymodes_term_valid("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_garbage_modes),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_term_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
