/*
 * errbuf.c - a failure's detail beside its code (errbuf.h).
 */
#include "errbuf.h"

#include <stdarg.h>
#include <stdio.h>

#include "errcode.h"

void errbuf_clear(struct errbuf *eb)
{
    if (eb)
        eb->msg[0] = '\0';
}

int errbuf_set(struct errbuf *eb, int code, const char *fmt, ...)
{
    va_list ap;

    if (eb) {
        va_start(ap, fmt);
        vsnprintf(eb->msg, sizeof eb->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

const char *errbuf_msg(const struct errbuf *eb, int code)
{
    return eb && eb->msg[0] ? eb->msg : app_strerror(code);
}

void errbuf_format(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;

    if (!buf || len == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}
