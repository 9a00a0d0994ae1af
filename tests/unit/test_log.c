/*
 * test_log.c - the escaping of peer-chosen text (ferry_log_escape,
 * ferry_log_quote), one call = one line whatever the arguments, the audit
 * lines, and the journal's priority prefix.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "ferry/log.h"

static const char *esc(const char *s, size_t len)
{
    static char out[FERRY_LOG_VALUE_MAX];
    return ferry_log_escape(out, sizeof out, s, len);
}

#define ESC(lit) esc(lit, sizeof lit - 1)

static void test_escape_controls(void **state)
{
    (void)state;
    assert_string_equal(ESC("plain text"), "plain text");
    assert_string_equal(ESC("a\nb\rc\td"), "a\\nb\\rc\\td");
    assert_string_equal(ESC("x\nferryd: authenticated"), "x\\nferryd: authenticated");
    assert_string_equal(ESC("\x01\x1b[31m\x7f"), "\\x01\\x1b[31m\\x7f");
    assert_string_equal(ESC("nul\0byte"), "nul\\x00byte");
    assert_string_equal(ESC("back\\slash \"quoted\""), "back\\\\slash \\\"quoted\\\"");
    assert_string_equal(esc(NULL, 5), "");
}

static void test_escape_utf8(void **state)
{
    (void)state;
    /* valid UTF-8 stays readable */
    assert_string_equal(ESC("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9a\xa2"),
                        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9a\xa2");
    /* a lone continuation byte, a truncated sequence, an overlong '/',
     * a surrogate, beyond U+10FFFF, and bytes that never start one */
    assert_string_equal(ESC("\x80"), "\\x80");
    assert_string_equal(ESC("a\xc3"), "a\\xc3");
    assert_string_equal(ESC("\xe2\x82"), "\\xe2\\x82");
    assert_string_equal(ESC("\xc0\xaf"), "\\xc0\\xaf");
    assert_string_equal(ESC("\xed\xa0\x80"), "\\xed\\xa0\\x80");
    assert_string_equal(ESC("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");
    assert_string_equal(ESC("\xff\xfe"), "\\xff\\xfe");
    /* C1 controls (U+0085 NEL, U+009B CSI) are controls, not text */
    assert_string_equal(ESC("\xc2\x85\xc2\x9b"), "\\xc2\\x85\\xc2\\x9b");
    assert_string_equal(ESC("\xc2\xa0"), "\xc2\xa0");
}

static void test_escape_cut(void **state)
{
    char out[12];
    (void)state;
    /* exactly fits: no marker */
    assert_string_equal(ferry_log_escape(out, sizeof out, "0123456789a", 11), "0123456789a");
    /* too long: cut, and the marker says so */
    assert_string_equal(ferry_log_escape(out, sizeof out, "0123456789ab", 12), "0123456\\...");
    /* never in the middle of an escape */
    assert_string_equal(ferry_log_escape(out, sizeof out, "abc\x01\x02xyzxyz", 12), "abc\\x01\\...");
    assert_true(strlen(out) < sizeof out);
}

static void test_quote(void **state)
{
    char out[64];
    (void)state;
    assert_string_equal(ferry_log_quote(out, sizeof out, "ci"), "ci");
    assert_string_equal(ferry_log_quote(out, sizeof out, "/srv/a.txt"), "/srv/a.txt");
    assert_string_equal(ferry_log_quote(out, sizeof out, ""), "\"\"");
    assert_string_equal(ferry_log_quote(out, sizeof out, NULL), "\"\"");
    assert_string_equal(ferry_log_quote(out, sizeof out, "two words"), "\"two words\"");
    assert_string_equal(ferry_log_quote(out, sizeof out, "k=v"), "\"k=v\"");
    assert_string_equal(ferry_log_quote(out, sizeof out, "a\"b"), "\"a\\\"b\"");
    assert_string_equal(ferry_log_quote(out, sizeof out, "x\ny"), "\"x\\ny\"");
    assert_string_equal(ferry_log_quote(out, sizeof out, "\xff"), "\"\\xff\"");
    assert_string_equal(ferry_log_quote(out, sizeof out, "caf\xc3\xa9"), "\"caf\xc3\xa9\"");
    /* a cut quoted value still closes its quote */
    memset(out, 0, sizeof out);
    char longv[100];
    memset(longv, ' ', sizeof longv - 1);
    longv[sizeof longv - 1] = '\0';
    ferry_log_quote(out, 16, longv);
    assert_string_equal(out, "\"         \\...\"");
}

/* What the calls in fn write to stderr, NUL-terminated in buf. */
static size_t capture(char *buf, size_t size, void (*fn)(void))
{
    char path[] = "/tmp/test_log.XXXXXX";
    int fd = mkstemp(path), saved = dup(STDERR_FILENO);
    ssize_t n;

    assert_true(fd >= 0 && saved >= 0);
    unlink(path);
    assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
    fn();
    assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
    close(saved);
    n = pread(fd, buf, size - 1, 0);
    assert_true(n >= 0);
    buf[n] = '\0';
    close(fd);
    return (size_t)n;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void log_forgery(void)
{
    ferry_log_info("unknown message type \"%s\"", "x\nferryd: authenticated with key 'root'\r");
    ferry_log_audit("event=test path=%s", FERRY_LOG_Q("a b\n"));
}

static void test_one_call_one_line(void **state)
{
    char buf[4096];
    (void)state;
    capture(buf, sizeof buf, log_forgery);
    assert_int_equal(count_lines(buf), 2);
    assert_non_null(strstr(buf, " info: unknown message type \"x\\nferryd: authenticated with key 'root'\\r\"\n"));
    assert_non_null(strstr(buf, " audit: event=test path=\"a b\\n\"\n"));
    assert_null(strchr(buf, '\r'));
}

static void log_quiet(void)
{
    ferry_log_set_level(FERRY_LOG_WARN);
    ferry_log_info("hidden");
    ferry_log_audit("event=shown");
    ferry_log_set_audit(0);
    ferry_log_audit("event=hidden");
    ferry_log_set_audit(1);
    ferry_log_set_level(FERRY_LOG_INFO);
}

static void test_audit_ignores_level(void **state)
{
    char buf[4096];
    (void)state;
    capture(buf, sizeof buf, log_quiet);
    assert_int_equal(count_lines(buf), 1);
    assert_non_null(strstr(buf, "audit: event=shown\n"));
}

static void log_levels(void)
{
    struct stat st;
    char v[64];

    assert_int_equal(fstat(STDERR_FILENO, &st), 0);
    snprintf(v, sizeof v, "%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", v, 1);
    ferry_log_error("e");
    ferry_log_warn("w");
    ferry_log_audit("event=a");
    ferry_log_info("i");
    unsetenv("JOURNAL_STREAM");
    ferry_log_info("not the journal");
    setenv("JOURNAL_STREAM", "1:2", 1);   /* someone else's stream */
    ferry_log_info("not ours");
    unsetenv("JOURNAL_STREAM");
}

static void test_journal_priority(void **state)
{
    char buf[4096], *p;
    (void)state;
    ferry_log_set_ident("tlog");
    capture(buf, sizeof buf, log_levels);
    p = buf;
    assert_int_equal(strncmp(p, "<3>tlog[", 8), 0);
    assert_non_null(strstr(p, "] error: e\n<4>tlog["));
    assert_non_null(strstr(p, "] warn: w\n<5>tlog["));
    assert_non_null(strstr(p, "] audit: event=a\n<6>tlog["));
    p = strstr(p, "] info: i\n");
    assert_non_null(p);
    /* elsewhere the lines start with the timestamp, not a priority */
    p += strlen("] info: i\n");
    assert_true(p[0] == '2' && p[4] == '-');
    assert_null(strchr(p, '<'));
    assert_int_equal(count_lines(buf), 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape_controls),
        cmocka_unit_test(test_escape_utf8),
        cmocka_unit_test(test_escape_cut),
        cmocka_unit_test(test_quote),
        cmocka_unit_test(test_one_call_one_line),
        cmocka_unit_test(test_audit_ignores_level),
        cmocka_unit_test(test_journal_priority),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
