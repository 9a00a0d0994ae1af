/*
 * errbuf.h - the detail that goes with a negative code.
 *
 * Every function in the project says what went wrong with its return
 * value: 0, or a negative code (-errno, libferry's FERRY_E*, errcode.h's
 * table).  Some failures need more than the code to be acted on ("keys
 * file /etc/ferry/keys, line 7: ..."); those functions also take a
 * struct errbuf * (NULL allowed: the caller only wants the code), filled
 * only on failure.  The caller prints errbuf_msg(), which falls back to the
 * code's own message when no detail was written.
 */
#ifndef FERRY_SHARED_ERRBUF_H
#define FERRY_SHARED_ERRBUF_H

#include <stddef.h>

/* Long enough for a message that names a path (PATH_MAX is for paths
 * that are used, not for ones that are quoted back). */
#define ERRBUF_MAX 512

struct errbuf {
    char msg[ERRBUF_MAX];   /* "" until a failure is described */
};

/* Forget any message. */
void errbuf_clear(struct errbuf *eb);

/* Describe a failure (printf-style, one line, no trailing newline) and
 * return code, so that `return errbuf_set(eb, -ENOENT, ...);` reads as
 * what it does.  eb may be NULL. */
int errbuf_set(struct errbuf *eb, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* What to print for a failure with code: the message set, else the code's
 * own (app_strerror). */
const char *errbuf_msg(const struct errbuf *eb, int code);

/* The formatting under errbuf_set, for the few interfaces whose callers
 * hand in their own (char *, size_t) buffer.  Nothing when buf is NULL or
 * len is 0. */
void errbuf_format(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
