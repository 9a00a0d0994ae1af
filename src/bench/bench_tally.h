/*
 * bench_tally.h - failures counted by kind, in a fixed table: counting
 * never allocates.
 *
 * A kind is a negative code of the project's one convention: -errno,
 * libferry's FERRY_E* (include/ferry/error.h) or the programs' table
 * (src/shared/errcode.h, where ferry-bench's own outcomes live).  The
 * report names each kind in a word a script can match ("ECONNREFUSED",
 * "auth-refused", "exit-status").
 */
#ifndef FERRY_BENCH_TALLY_H
#define FERRY_BENCH_TALLY_H

#include <stdint.h>

#include "errcode.h"

#define BENCH_TALLY_KINDS 16

struct bench_tally {
    uint64_t total;
    int code[BENCH_TALLY_KINDS];
    uint64_t n[BENCH_TALLY_KINDS];
    unsigned used;
};

/* Count n failures of kind code (< 0).  Once the table is full, kinds not
 * in it are counted as FERRY_EOTHER. */
void bench_tally_add(struct bench_tally *t, int code, uint64_t n);
void bench_tally_merge(struct bench_tally *dst, const struct bench_tally *src);

/* The report's word for a code bench_tally_add was given: "ECONNREFUSED",
 * "EOF", "error-frame", ... */
const char *bench_tally_name(int code);

#endif
