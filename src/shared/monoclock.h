/*
 * monoclock.h - the monotonic clock, for deadlines and rates: immune to
 * the wall clock being set, which is all a timeout or a progress bar needs.
 */
#ifndef FERRY_SHARED_MONOCLOCK_H
#define FERRY_SHARED_MONOCLOCK_H

#include <stdint.h>

/* Milliseconds since some fixed, unspecified point (CLOCK_MONOTONIC). */
uint64_t monoclock_ms(void);

/* The same clock in nanoseconds. */
int64_t monoclock_ns(void);

#endif
