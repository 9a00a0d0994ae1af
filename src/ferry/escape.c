/*
 * escape.c - the escape-sequence state machine (escape.h).
 *
 * As in ssh, a line starts after a CR or LF (raw terminals send CR for
 * Enter) and at the start of the session; the escape character is only
 * special there, so a `~` inside a line, or in a pasted path, is typed
 * as is.
 */
#include "escape.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

void escape_init(struct escape *e, int ch)
{
    e->ch = ch;
    e->line_start = 1;
    e->pending = 0;
}

enum escape_action escape_feed(struct escape *e, const uint8_t *in, size_t n, size_t *consumed,
                               uint8_t *out, size_t *outlen)
{
    size_t i;

    for (i = 0; i < n; i++) {
        uint8_t b = in[i];

        if (e->ch == ESCAPE_OFF) {
            out[(*outlen)++] = b;
            continue;
        }
        if (e->pending) {
            e->pending = 0;
            if (b == '.') {
                *consumed = i + 1;
                return ESCAPE_DISCONNECT;
            }
            if (b == '?') {
                e->line_start = 1;   /* another sequence may follow at once */
                *consumed = i + 1;
                return ESCAPE_HELP;
            }
            if (b != (uint8_t)e->ch)
                out[(*outlen)++] = (uint8_t)e->ch;   /* not a sequence: both go */
            out[(*outlen)++] = b;
            e->line_start = b == '\r' || b == '\n';
            continue;
        }
        if (e->line_start && b == (uint8_t)e->ch) {
            e->pending = 1;
            e->line_start = 0;
            continue;
        }
        out[(*outlen)++] = b;
        e->line_start = b == '\r' || b == '\n';
    }
    *consumed = n;
    return ESCAPE_NONE;
}

const char *escape_help(int ch, char *buf, size_t len)
{
    char c[8];

    if (ch < 0x20 || ch == 0x7f)
        snprintf(c, sizeof c, "^%c", ch ^ 0x40);
    else
        snprintf(c, sizeof c, "%c", ch);
    snprintf(buf, len,
             "Supported escape sequences (at the start of a line):\r\n"
             " %s.  - disconnect (the remote command is killed)\r\n"
             " %s?  - this message\r\n"
             " %s%s  - send the escape character by typing it twice\r\n", c, c, c, c);
    return buf;
}

int escape_parse(const char *arg, int *ch)
{
    if (strcmp(arg, "none") == 0) {
        *ch = ESCAPE_OFF;
        return 0;
    }
    if (arg[0] == '^' && arg[1] && !arg[2]) {
        unsigned char c = (unsigned char)arg[1];

        if (c >= 'a' && c <= 'z')
            c = (unsigned char)(c - 'a' + 'A');
        if (c < '@' || c > '_')
            return -EINVAL;
        *ch = c & 0x1f;
        return 0;
    }
    if (arg[0] && !arg[1]) {
        *ch = (unsigned char)arg[0];
        return 0;
    }
    return -EINVAL;
}
