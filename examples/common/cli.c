/*
 * cli.c - see cli.h.
 */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "ferry/log.h"

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

int cli_server_option(const char *prog, int opt, const char *arg, struct ferry_server_opts *o)
{
    long n;

    switch (opt) {
    case 'm':
        if (ferry_model_parse(arg, &o->model) < 0) {
            fprintf(stderr, "%s: unknown model '%s' (event, thread or fork)\n", prog, arg);
            return -1;
        }
        return 1;
    case 'w':
        if (cli_int(prog, "--workers", arg, 1, 256, &n) < 0)
            return -1;
        o->workers = (int)n;
        return 1;
    case CLI_OPT_MAX_CONNS:
        if (cli_int(prog, "--max-conns", arg, 1, 1000000, &n) < 0)
            return -1;
        o->max_conns = (int)n;
        return 1;
    case CLI_OPT_IDLE_TIMEOUT:
        if (cli_int(prog, "--idle-timeout", arg, 1, 86400, &n) < 0)
            return -1;
        o->idle_timeout_ms = (int)n * 1000;
        return 1;
    case 'v':
        ferry_log_set_level(FERRY_LOG_DEBUG);
        return 1;
    default:
        return 0;
    }
}
