/*
 * test_progress.c - the transfer progress bar's line (src/ferry/progress.c):
 * it fits every terminal width, so it never wraps and scrolls; narrow
 * terminals drop the ETA, then the rate, then the size, never the
 * percentage; a long name keeps its end.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "progress.h"

#define GIB (1024ull * 1024 * 1024)

static void test_fits_every_width(void **state)
{
    static const char *const names[] = { "a", "big.iso",
        "some/rather/long/directory/path/with/a/file-name-at-the-end.tar.gz" };
    char line[1024];
    (void)state;

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        for (int width = 1; width <= 400; width++) {
            int n = progress_format(line, sizeof line, width, names[i], 4 * GIB, GIB, 150e6);

            assert_int_equal(n, (int)strlen(line));
            assert_true(n < width || (width == 1 && n == 0));
            if (width >= 6)
                assert_non_null(strstr(line, "25%"));
        }
    }
}

static void test_narrow_drops_eta_then_rate_then_size(void **state)
{
    char line[256];
    (void)state;

    progress_format(line, sizeof line, 80, "big.iso", 4 * GIB, GIB, 150e6);
    assert_non_null(strstr(line, "ETA"));
    assert_non_null(strstr(line, "/s"));
    assert_non_null(strstr(line, "1.0GiB"));
    assert_non_null(strstr(line, "big.iso"));

    progress_format(line, sizeof line, 40, "big.iso", 4 * GIB, GIB, 150e6);
    assert_null(strstr(line, "ETA"));
    assert_non_null(strstr(line, "/s"));
    assert_non_null(strstr(line, "big.iso"));
    assert_true(strlen(line) < 40);

    progress_format(line, sizeof line, 26, "big.iso", 4 * GIB, GIB, 150e6);
    assert_null(strstr(line, "/s"));
    assert_non_null(strstr(line, "1.0GiB"));

    progress_format(line, sizeof line, 15, "big.iso", 4 * GIB, GIB, 150e6);
    assert_null(strstr(line, "GiB"));
    assert_string_equal(line, "big.iso    25%");
}

static void test_a_long_name_keeps_its_end(void **state)
{
    char line[256];
    (void)state;

    progress_format(line, sizeof line, 60, "a/very/long/path/to/somewhere/deep/the-file.bin",
                    100, 100, 0);
    assert_memory_equal(line, "...", 3);
    assert_non_null(strstr(line, "the-file.bin  100%"));
    assert_true(strlen(line) < 60);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fits_every_width),
        cmocka_unit_test(test_narrow_drops_eta_then_rate_then_size),
        cmocka_unit_test(test_a_long_name_keeps_its_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
