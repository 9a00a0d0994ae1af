/*
 * log.h - one line per event on stderr.
 *
 *   2026-11-23T19:49:00.123Z ferryd[1234] info: listening on 127.0.0.1:7171
 *
 * The default level is INFO, so per-request lines (DEBUG) stay quiet unless
 * asked for.  Safe to call from any thread (each line is one write(2)).
 *
 * No line can be forged: text a peer chose goes through ferry_log_escape()
 * (or FERRY_LOG_Q), and as a backstop every control byte left in a formatted
 * line is written as \xNN, so one call is always exactly one line.
 *
 * Under systemd (JOURNAL_STREAM names stderr) each line starts with its
 * syslog priority, "<3>" error, "<4>" warn, "<5>" audit, "<6>" info, "<7>"
 * debug, as sd-daemon(3) describes, and without the timestamp (the journal
 * stamps its own).
 */
#ifndef FERRY_LOG_H
#define FERRY_LOG_H

#include <stddef.h>

#include "ferry/common.h"

FERRY_BEGIN_DECLS

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

/* An audit line ("audit:" in place of the level name, priority 5, notice):
 * written whatever the level, so -q does not silence the audit trail;
 * only ferry_log_set_audit(0) does. */
FERRY_EXPORT void ferry_log_audit(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
FERRY_EXPORT void ferry_log_set_audit(int on);

/* The size of a buffer that holds any escaped value FERRY_LOG_Q makes. */
#define FERRY_LOG_VALUE_MAX 768

/*
 * ferry_log_escape - the len bytes at s (NULL: none) as printable,
 * unambiguous text in out (size bytes, size >= 8), always NUL-terminated.
 * Backslash and double quote are written \\ and \", newline, carriage
 * return and tab \n \r \t, every other control byte (C0, DEL, and the C1
 * controls encoded in UTF-8) and every byte that is not part of valid UTF-8
 * as \xNN (two lower-case hex digits); valid UTF-8 is copied.  A value too
 * long for out is cut between two escapes and ends with \... (a backslash
 * never precedes '.' otherwise).  Returns out.
 */
FERRY_EXPORT const char *ferry_log_escape(char *out, size_t size, const char *s, size_t len);

/*
 * ferry_log_quote - the NUL-terminated s (NULL: empty) as the value of a
 * key=value pair: as it is when it is non-empty printable ASCII without
 * space, '"', '\\' or '=', else in double quotes, escaped as
 * ferry_log_escape does.  Returns out.
 */
FERRY_EXPORT const char *ferry_log_quote(char *out, size_t size, const char *s);

/* A quoted value in a buffer that lives until the end of the enclosing
 * block: ferry_log_audit("path=%s", FERRY_LOG_Q(path)). */
#define FERRY_LOG_Q(s) ferry_log_quote((char[FERRY_LOG_VALUE_MAX]){ 0 }, FERRY_LOG_VALUE_MAX, (s))

#define ferry_log_error(...) ferry_log(FERRY_LOG_ERROR, __VA_ARGS__)
#define ferry_log_warn(...)  ferry_log(FERRY_LOG_WARN, __VA_ARGS__)
#define ferry_log_info(...)  ferry_log(FERRY_LOG_INFO, __VA_ARGS__)
#define ferry_log_debug(...) \
    do { if (ferry_log_get_level() >= FERRY_LOG_DEBUG) ferry_log(FERRY_LOG_DEBUG, __VA_ARGS__); } while (0)

FERRY_END_DECLS

#endif
