/*
 * bench_hist.c - the log-linear latency histogram (see bench_hist.h for the layout).
 */
#include "bench_hist.h"

#include <math.h>
#include <string.h>

void bench_hist_init(struct bench_hist *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

/* Bucket of v: exact below HIST_SUB; above, the top HIST_SUB_BITS+1 bits
 * (the leading one and 7 more) select a bucket within v's power of two. */
static unsigned bucket_of(uint64_t v)
{
    unsigned msb, shift;

    if (v < HIST_SUB)
        return (unsigned)v;
    msb = 63u - (unsigned)__builtin_clzll(v);
    shift = msb - HIST_SUB_BITS;
    if (shift > HIST_MAX_SHIFT)
        return HIST_BUCKETS - 1;
    return (shift + 1) * HIST_SUB + (unsigned)((v >> shift) - HIST_SUB);
}

/* The highest value that lands in bucket i. */
static uint64_t bucket_high(unsigned i)
{
    unsigned shift;
    uint64_t mant;

    if (i < HIST_SUB)
        return i;
    shift = i / HIST_SUB - 1;
    mant = HIST_SUB + i % HIST_SUB;
    return ((mant + 1) << shift) - 1;
}

void bench_hist_record(struct bench_hist *h, uint64_t v)
{
    h->bucket[bucket_of(v)]++;
    h->count++;
    h->sum += v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src)
{
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        dst->bucket[i] += src->bucket[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t bench_hist_percentile(const struct bench_hist *h, double p)
{
    uint64_t target, seen = 0;

    if (h->count == 0)
        return 0;
    if (p >= 100.0)
        return h->max;
    /* The epsilon keeps 99.9 % of 2000 at rank 1998: 0.999 is not exact. */
    target = (uint64_t)ceil(p / 100.0 * (double)h->count - 1e-9);
    if (target < 1)
        target = 1;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->bucket[i];
        if (seen >= target) {
            uint64_t v = bucket_high(i);
            /* A bucket's top can lie above anything actually seen. */
            if (v > h->max)
                v = h->max;
            return v;
        }
    }
    return h->max;
}
