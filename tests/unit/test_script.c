/*
 * test_script.c - ferry shell's script lines (src/ferry/script.c): whole
 * lines only, a look that never waits (the writer of a lock-step driver
 * sends the next line only after seeing output: a look that waited would
 * deadlock the shell), a last line without a newline, and the end.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "script.h"

static void put(int fd, const char *s)
{
    assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

static void expect_line(struct script *sc, int wait, const char *want)
{
    char *line = NULL;

    assert_int_equal(script_line(sc, wait, &line), 1);
    assert_string_equal(line, want);
    free(line);
}

static void test_lines_and_the_look_that_never_waits(void **state)
{
    struct script sc;
    char *line = (char *)1;
    int p[2];
    (void)state;

    assert_int_equal(pipe(p), 0);
    script_init(&sc, p[0]);
    assert_int_equal(script_line(&sc, 0, &line), 0);     /* nothing yet: no wait */
    assert_null(line);
    put(p[1], "one\ntwo\nthr");
    expect_line(&sc, 0, "one");
    expect_line(&sc, 0, "two");
    assert_int_equal(script_line(&sc, 0, &line), 0);     /* half a line is no line */
    put(p[1], "ee\n\nlast");
    expect_line(&sc, 0, "three");
    expect_line(&sc, 1, "");                             /* an empty line is a line */
    close(p[1]);
    expect_line(&sc, 1, "last");                         /* no newline at the end */
    assert_int_equal(script_line(&sc, 1, &line), -1);
    assert_int_equal(script_line(&sc, 0, &line), -1);
    script_free(&sc);
    close(p[0]);
}

/* Lines longer than one read, in a file (always readable). */
static void test_long_lines_from_a_file(void **state)
{
    char path[] = "/tmp/ferry-script-XXXXXX";
    int fd = mkstemp(path);
    size_t n = 200000;
    char *big = malloc(n + 1);
    struct script sc;
    (void)state;

    assert_true(fd >= 0);
    assert_non_null(big);
    memset(big, 'x', n);
    big[n] = '\0';
    put(fd, big);
    put(fd, "\nshort\n");
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    script_init(&sc, fd);
    expect_line(&sc, 0, big);
    expect_line(&sc, 0, "short");
    char *line = NULL;
    assert_int_equal(script_line(&sc, 0, &line), -1);
    script_free(&sc);
    close(fd);
    unlink(path);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines_and_the_look_that_never_waits),
        cmocka_unit_test(test_long_lines_from_a_file),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
