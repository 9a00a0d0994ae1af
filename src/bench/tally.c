/*
 * tally.c - failures counted by kind (see tally.h).
 */
#include "tally.h"

#include <string.h>

void tally_add(struct tally *t, int code, uint64_t n)
{
    unsigned i;

    if (n == 0)
        return;
    t->total += n;
    for (i = 0; i < t->used; i++) {
        if (t->code[i] == code) {
            t->n[i] += n;
            return;
        }
    }
    if (t->used == TALLY_KINDS) {
        /* The last slot becomes the catch-all once the table is full. */
        t->code[TALLY_KINDS - 1] = TALLY_OTHER;
        t->n[TALLY_KINDS - 1] += n;
        return;
    }
    t->code[t->used] = code;
    t->n[t->used] = n;
    t->used++;
}

void tally_merge(struct tally *dst, const struct tally *src)
{
    for (unsigned i = 0; i < src->used; i++)
        tally_add(dst, src->code[i], src->n[i]);
}

const char *tally_name(int code)
{
    const char *name;

    switch (code) {
    case TALLY_EOF:        return "EOF";
    case TALLY_ERRFRAME:   return "error-frame";
    case TALLY_UNEXPECTED: return "unexpected-reply";
    case TALLY_OTHER:      return "other";
    case TALLY_AUTH:       return "auth-refused";
    case TALLY_BADPROOF:   return "bad-server-proof";
    case TALLY_NOAUTH:     return "auth-mismatch";
    case TALLY_EXIT_STATUS: return "exit-status";
    case TALLY_EXIT_SIGNAL: return "exit-signal";
    case TALLY_CHECKSUM:   return "checksum-mismatch";
    case TALLY_TLS:        return "tls-required";
    default:
        break;
    }
    name = code > 0 && code < TALLY_EOF ? strerrorname_np(code) : NULL;
    return name ? name : "unknown";
}
