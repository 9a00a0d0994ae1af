/*
 * log.c - levelled, one-line-per-event logging to stderr.
 *
 * Each line is formatted into a stack buffer and emitted with a single
 * write(2), so lines from concurrent threads and forked children never
 * interleave mid-line.
 */
#include "ferry/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_level = FERRY_LOG_INFO;
static const char *_Atomic log_ident = "ferry";

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void ferry_log_set_level(enum ferry_log_level level)
{
    if (level < FERRY_LOG_ERROR)
        level = FERRY_LOG_ERROR;
    if (level > FERRY_LOG_DEBUG)
        level = FERRY_LOG_DEBUG;
    atomic_store(&log_level, (int)level);
}

enum ferry_log_level ferry_log_get_level(void)
{
    return (enum ferry_log_level)atomic_load(&log_level);
}

void ferry_log_set_ident(const char *ident)
{
    atomic_store(&log_ident, ident ? ident : "ferry");
}

void ferry_log(enum ferry_log_level level, const char *fmt, ...)
{
    char line[1024];
    struct timespec ts;
    struct tm tm;
    size_t n;
    int r;
    va_list ap;

    if ((int)level > atomic_load(&log_level))
        return;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    r = snprintf(line + n, sizeof line - n, ".%03ldZ %s[%ld] %s: ", ts.tv_nsec / 1000000L,
                 atomic_load(&log_ident), (long)getpid(),
                 level_names[level <= FERRY_LOG_DEBUG ? level : FERRY_LOG_DEBUG]);
    if (r > 0)
        n += (size_t)r < sizeof line - n ? (size_t)r : sizeof line - n - 1;

    va_start(ap, fmt);
    r = vsnprintf(line + n, sizeof line - n, fmt, ap);
    va_end(ap);
    if (r > 0)
        n += (size_t)r < sizeof line - n ? (size_t)r : sizeof line - n - 1;

    /* A truncated line still ends in a newline. */
    if (n >= sizeof line - 1)
        n = sizeof line - 2;
    line[n++] = '\n';

    /* Best effort: a logger has nowhere to report its own failure. */
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}
