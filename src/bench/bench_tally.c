/*
 * bench_tally.c - failures counted by kind (see bench_tally.h).
 */
#include "bench_tally.h"

#include <string.h>

#include "ferry/error.h"

void bench_tally_add(struct bench_tally *t, int code, uint64_t n)
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
    if (t->used == BENCH_TALLY_KINDS) {
        /* The last slot becomes the catch-all once the table is full. */
        t->code[BENCH_TALLY_KINDS - 1] = FERRY_EOTHER;
        t->n[BENCH_TALLY_KINDS - 1] += n;
        return;
    }
    t->code[t->used] = code;
    t->n[t->used] = n;
    t->used++;
}

void bench_tally_merge(struct bench_tally *dst, const struct bench_tally *src)
{
    for (unsigned i = 0; i < src->used; i++)
        bench_tally_add(dst, src->code[i], src->n[i]);
}

const char *bench_tally_name(int code)
{
    const char *name;

    /* The words the reports have always used (bench/ scripts and the
     * tests match them), not the table's symbolic names. */
    switch (code) {
    case FERRY_EEOF:           return "EOF";
    case FERRY_EREMOTE:        return "error-frame";
    case FERRY_EUNEXPECTED:    return "unexpected-reply";
    case FERRY_EOTHER:         return "other";
    case FERRY_EAUTH:          return "auth-refused";
    case FERRY_EBADPROOF:      return "bad-server-proof";
    case FERRY_EAUTH_MISMATCH: return "auth-mismatch";
    case FERRY_EEXIT_STATUS:   return "exit-status";
    case FERRY_EEXIT_SIGNAL:   return "exit-signal";
    case FERRY_ECHECKSUM:      return "checksum-mismatch";
    case FERRY_ETLS_REQUIRED:  return "tls-required";
    default:
        break;
    }
    name = code < 0 && code > -4000 ? strerrorname_np(-code) : NULL;
    return name ? name : "unknown";
}
