/*
 * log.h - one line per event on stderr.
 *
 *   2026-11-23T19:49:00.123Z ferryd[1234] info: listening on 127.0.0.1:7171
 *
 * The default level is INFO, so per-request lines (DEBUG) stay quiet unless
 * asked for.  Safe to call from any thread (each line is one write(2)).
 */
#ifndef FERRY_LOG_H
#define FERRY_LOG_H

#include "ferry/common.h"

enum ferry_log_level {
    FERRY_LOG_ERROR = 0,
    FERRY_LOG_WARN  = 1,
    FERRY_LOG_INFO  = 2,
    FERRY_LOG_DEBUG = 3,
};

FERRY_EXPORT void ferry_log_set_level(enum ferry_log_level level);
FERRY_EXPORT enum ferry_log_level ferry_log_get_level(void);
/* The program name printed on each line (default: "ferry"); the string must outlive logging. */
FERRY_EXPORT void ferry_log_set_ident(const char *ident);

FERRY_EXPORT void ferry_log(enum ferry_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define ferry_log_error(...) ferry_log(FERRY_LOG_ERROR, __VA_ARGS__)
#define ferry_log_warn(...)  ferry_log(FERRY_LOG_WARN, __VA_ARGS__)
#define ferry_log_info(...)  ferry_log(FERRY_LOG_INFO, __VA_ARGS__)
#define ferry_log_debug(...) \
    do { if (ferry_log_get_level() >= FERRY_LOG_DEBUG) ferry_log(FERRY_LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
