/*
 * bench_hist.h - a log-linear latency histogram (HDR style) of fixed size.
 *
 * Values (nanoseconds) below 128 are counted exactly; above, every power
 * of two is split into 128 equal buckets, so any value is known to within
 * 1/128 (0.8 %) however large it is.  Recording is a few instructions and
 * never allocates; per-thread histograms are merged at the end.
 */
#ifndef FERRY_BENCH_HIST_H
#define FERRY_BENCH_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS  7
#define HIST_SUB       (1u << HIST_SUB_BITS)
#define HIST_MAX_SHIFT 36   /* largest exactly-placed value: 2^43 ns, about 2.4 hours */
#define HIST_BUCKETS   ((HIST_MAX_SHIFT + 2) * HIST_SUB)

struct bench_hist {
    uint64_t count;
    uint64_t sum;      /* for the mean; 2^64 ns is 584 years */
    uint64_t min;
    uint64_t max;
    uint64_t bucket[HIST_BUCKETS];
};

void bench_hist_init(struct bench_hist *h);
void bench_hist_record(struct bench_hist *h, uint64_t v);
void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src);

/* The smallest recorded value v such that at least p percent of all values
 * are <= v (to the bucket's precision, capped at the maximum seen); 0 when
 * nothing was recorded.  Monotonic in p. */
uint64_t bench_hist_percentile(const struct bench_hist *h, double p);

#endif
