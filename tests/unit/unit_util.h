/*
 * unit_util.h - helpers the cmocka programs share.  Include after
 * <cmocka.h>: the helpers fail the running test through its asserts.
 */
#ifndef FERRY_UNIT_UTIL_H
#define FERRY_UNIT_UTIL_H

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>

/* Descriptors the process holds now: compared before and after a test, so
 * that no path through the code under test leaks one. */
static inline int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;
    int n = 0;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1;   /* the DIR's own descriptor */
}

/* Build a path from printf-style parts; failing the test if it does not fit. */
static inline void pathf(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static inline void pathf(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < len);
}

#endif
