/*
 * cli.c - see cli.h.
 */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

int cli_int(const char *prog, const char *option, const char *text, long min, long max, long *out)
{
    char *end = NULL;
    long v;

    errno = 0;
    v = strtol(text, &end, 10);
    if (errno || end == text || *end != '\0' || v < min || v > max) {
        fprintf(stderr, "%s: bad value for %s: '%s' (expected %ld..%ld)\n", prog, option, text, min, max);
        return -1;
    }
    *out = v;
    return 0;
}
