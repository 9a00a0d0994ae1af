/*
 * log.c - levelled, one-line-per-event logging to stderr, the audit lines,
 * and the one escaping function for text a peer chose.
 *
 * Each line is formatted into a stack buffer and emitted with a single
 * write(2), so lines from concurrent threads and forked children never
 * interleave mid-line.  Whatever the arguments, a call writes exactly one
 * line: a control byte that reaches the formatted message is written as
 * \xNN (the backstop for a caller that forgot ferry_log_escape).
 */
#include "ferry/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_level = FERRY_LOG_INFO;
static atomic_int log_audit = 1;
static const char *_Atomic log_ident = "ferry";

static const char *const level_names[] = { "error", "warn", "info", "debug" };
/* syslog priorities (sd-daemon.h SD_ERR, SD_WARNING, SD_INFO, SD_DEBUG) */
static const int level_prio[] = { 3, 4, 6, 7 };
#define AUDIT_PRIO 5   /* SD_NOTICE */

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

void ferry_log_set_audit(int on)
{
    atomic_store(&log_audit, on != 0);
}

/* ---- escaping ------------------------------------------------------------------ */

/* The length (2 to 4) of the well-formed UTF-8 sequence at s, or 0: not
 * UTF-8 (overlong forms, surrogates, beyond U+10FFFF, truncated), or a C1
 * control (U+0080 to U+009F), which terminals obey as controls. */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
    unsigned c = s[0], cp, min;
    size_t n;

    if (c >= 0xc2 && c <= 0xdf) {
        n = 2, cp = c & 0x1f, min = 0xa0;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3, cp = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* The escaped form of the byte or UTF-8 sequence at s[i]: *u bytes, at
 * *copy or else in unit; *step input bytes.  full: see escape_into. */
static void unit_at(const unsigned char *s, size_t i, size_t len, int full, char unit[4],
                    size_t *u, size_t *step, const unsigned char **copy)
{
    static const char hex[] = "0123456789abcdef";
    unsigned c = s[i];
    size_t seq = 0;

    *u = *step = 1;
    *copy = NULL;
    if (c == '\n' || c == '\r' || c == '\t') {
        unit[0] = '\\', unit[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't', *u = 2;
    } else if (full && (c == '\\' || c == '"')) {
        unit[0] = '\\', unit[1] = (char)c, *u = 2;
    } else if (full && c >= 0x80 && (seq = utf8_seq(s + i, len - i)) > 0) {
        *copy = s + i, *u = *step = seq;
    } else if (c < 0x20 || c == 0x7f || (full && c >= 0x80)) {
        unit[0] = '\\', unit[1] = 'x', unit[2] = hex[c >> 4], unit[3] = hex[c & 15], *u = 4;
    } else {
        unit[0] = (char)c;
    }
}

/* The escaped length of s[i..len). */
static size_t escaped_len(const unsigned char *s, size_t i, size_t len, int full)
{
    size_t total = 0, u, step;
    const unsigned char *copy;
    char unit[4];

    for (; i < len; i += step) {
        unit_at(s, i, len, full, unit, &u, &step, &copy);
        total += u;
    }
    return total;
}

/*
 * Escapes len bytes into out (size >= 6), NUL-terminated; returns the
 * length written.  full: the value escaping of ferry_log_escape; else only
 * the C0 controls and DEL (the backstop for a whole formatted message,
 * which may hold values escaped already).  Once fewer than five bytes would
 * be left, the rest is written only if all of it fits; else the value is
 * cut there with the marker \... (and the NUL) in those five bytes.
 */
static size_t escape_into(char *out, size_t size, const unsigned char *s, size_t len, int full)
{
    size_t o = 0, i = 0, u, step;
    const unsigned char *copy;
    char unit[4];
    int fits = 0;

    while (i < len) {
        unit_at(s, i, len, full, unit, &u, &step, &copy);
        if (!fits && o + u + 5 > size) {
            fits = o + escaped_len(s, i, len, full) + 1 <= size;
            if (!fits) {
                memcpy(out + o, "\\...", 4);
                o += 4;
                break;
            }
        }
        memcpy(out + o, copy ? (const char *)copy : unit, u);
        o += u;
        i += step;
    }
    out[o] = '\0';
    return o;
}

const char *ferry_log_escape(char *out, size_t size, const char *s, size_t len)
{
    escape_into(out, size, (const unsigned char *)(s ? s : ""), s ? len : 0, 1);
    return out;
}

const char *ferry_log_quote(char *out, size_t size, const char *s)
{
    size_t len = s ? strlen(s) : 0, n;
    int plain = len > 0;

    for (size_t i = 0; plain && i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        plain = c > 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '=';
    }
    if (plain)
        return ferry_log_escape(out, size, s, len);
    /* The closing quote's room is kept back from the escaping. */
    out[0] = '"';
    n = escape_into(out + 1, size - 2, (const unsigned char *)(s ? s : ""), len, 1);
    out[1 + n] = '"';
    out[2 + n] = '\0';
    return out;
}

/* ---- lines --------------------------------------------------------------------- */

/* Whether stderr is the journal: JOURNAL_STREAM holds its "DEV:INODE"
 * (systemd.exec(5)); a redirected stderr no longer matches.  Asked on each
 * line, as stderr may be redirected after start-up. */
static int stderr_is_journal(void)
{
    const char *e = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;

    if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) < 0)
        return 0;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

__attribute__((format(printf, 3, 0)))
static void emit(int prio, const char *name, const char *fmt, va_list ap)
{
    char line[2048], msg[2048];
    struct timespec ts;
    struct tm tm;
    size_t n = 0;
    int r;

    if (stderr_is_journal()) {
        r = snprintf(line, sizeof line, "<%d>", prio);
        n = r > 0 ? (size_t)r : 0;
    } else {
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
        r = snprintf(line + n, sizeof line - n, ".%03ldZ ", ts.tv_nsec / 1000000L);
        if (r > 0)
            n += (size_t)r;
    }
    r = snprintf(line + n, sizeof line - n, "%s[%ld] %s: ", atomic_load(&log_ident),
                 (long)getpid(), name);
    if (r > 0)
        n += (size_t)r < sizeof line - n ? (size_t)r : sizeof line - n - 1;

    r = vsnprintf(msg, sizeof msg, fmt, ap);
    if (r > 0) {
        size_t len = (size_t)r < sizeof msg ? (size_t)r : sizeof msg - 1;
        /* One byte stays for the newline. */
        n += escape_into(line + n, sizeof line - n - 1, (const unsigned char *)msg, len, 0);
    }
    line[n++] = '\n';

    /* Best effort: a logger has nowhere to report its own failure. */
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}

void ferry_log(enum ferry_log_level level, const char *fmt, ...)
{
    va_list ap;

    if ((int)level > atomic_load(&log_level))
        return;
    if ((int)level < FERRY_LOG_ERROR || (int)level > FERRY_LOG_DEBUG)
        level = FERRY_LOG_DEBUG;
    va_start(ap, fmt);
    emit(level_prio[level], level_names[level], fmt, ap);
    va_end(ap);
}

void ferry_log_audit(const char *fmt, ...)
{
    va_list ap;

    if (!atomic_load(&log_audit))
        return;
    va_start(ap, fmt);
    emit(AUDIT_PRIO, "audit", fmt, ap);
    va_end(ap);
}
