/*
 * test_version.c - ferry_version() is the library's FERRY_VERSION, built
 * from the MAJOR/MINOR/PATCH macros the build reads (include/ferry/version.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "ferry/ferry.h"

static void test_version_is_the_headers(void **state)
{
    char want[32];

    snprintf(want, sizeof want, "%d.%d.%d", FERRY_VERSION_MAJOR, FERRY_VERSION_MINOR,
             FERRY_VERSION_PATCH);
    assert_string_equal(FERRY_VERSION, want);
    assert_string_equal(ferry_version(), FERRY_VERSION);
    /* a static string: the same pointer every time */
    assert_ptr_equal(ferry_version(), ferry_version());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version_is_the_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
