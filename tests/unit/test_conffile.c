/*
 * test_conffile.c - the reading of ferryd's configuration file
 * (src/ferryd/conffile.c): how lines split into a key and a value, what is
 * skipped, what stops the read and with which FILE:LINE, and which owners
 * and modes are refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conffile.h"
#include "errcode.h"

static char dir[] = "/tmp/test_conffile.XXXXXX";
static char path[256];

/* What the callback saw: "key=value;" for each line. */
static char seen[4096];

static int record(const char *key, const char *value, void *arg, struct errbuf *eb)
{
    size_t n = strlen(seen);
    (void)arg;
    if (strcmp(key, "refuse") == 0)
        return errbuf_set(eb, -EINVAL, "refused '%s'", value);
    snprintf(seen + n, sizeof seen - n, "%s=%s;", key, value);
    return 0;
}

static void write_file(const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, mode), 0);
    seen[0] = '\0';
}

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof path, "%s/ferryd.conf", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(path);
    return rmdir(dir);
}

static void test_lines_split_into_key_and_value(void **state)
{
    struct errbuf eb;
    (void)state;
    write_file("# comment\n\n   \t\n  # indented comment\n"
               "root /srv/ferry\n"
               "\tkey-file   /etc/ferry/key with space  \r\n"
               "listen *:7171\n"
               "last no-newline", 0600);
    assert_int_equal(conffile_read(path, record, NULL, &eb), 0);
    assert_string_equal(seen, "root=/srv/ferry;key-file=/etc/ferry/key with space;"
                              "listen=*:7171;last=no-newline;");
}

static void expect_error(const char *text, int code, const char *where_what)
{
    struct errbuf eb;
    char want[512];

    write_file(text, 0600);
    assert_int_equal(conffile_read(path, record, NULL, &eb), code);
    snprintf(want, sizeof want, "%s:%s", path, where_what);
    if (strcmp(errbuf_msg(&eb, code), want) != 0)
        print_message("got '%s', want '%s'\n", errbuf_msg(&eb, code), want);
    assert_string_equal(errbuf_msg(&eb, code), want);
}

static void test_errors_name_the_line(void **state)
{
    static char longline[CONFFILE_MAX_LINE + 16];
    (void)state;
    expect_error("root /a\n\nroot\n", FERRY_ECONF_LINE, "3: root needs a value ('KEY VALUE')");
    expect_error("root \t \n", FERRY_ECONF_LINE, "1: root needs a value ('KEY VALUE')");
    /* The callback's own message, after FILE:LINE; lines before it were
     * handed over in order. */
    expect_error("a 1\nrefuse this one\nb 2\n", -EINVAL, "2: refused 'this one'");
    assert_string_equal(seen, "a=1;");
    memset(longline, 'x', sizeof longline - 2);
    longline[sizeof longline - 2] = '\n';
    expect_error(longline, FERRY_ECONF_LINE, "1: line longer than 4095 bytes");
}

static void test_files_others_can_change_are_refused(void **state)
{
    struct errbuf eb;
    (void)state;
    write_file("root /a\n", 0620);
    assert_int_equal(conffile_read(path, record, NULL, &eb), FERRY_ECONF_EXPOSED);
    assert_non_null(strstr(errbuf_msg(&eb, 0), "chmod go-w"));
    assert_string_equal(seen, "");   /* nothing was read */
    write_file("root /a\n", 0602);
    assert_int_equal(conffile_read(path, record, NULL, &eb), FERRY_ECONF_EXPOSED);
    write_file("root /a\n", 0644);   /* readable is fine: no secret in it */
    assert_int_equal(conffile_read(path, record, NULL, &eb), 0);
    assert_int_equal(conffile_read(dir, record, NULL, &eb), -EINVAL);   /* a directory */
    unlink(path);
    assert_int_equal(conffile_read(path, record, NULL, &eb), -ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines_split_into_key_and_value),
        cmocka_unit_test(test_errors_name_the_line),
        cmocka_unit_test(test_files_others_can_change_are_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
