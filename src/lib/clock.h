/*
 * clock.h - the one monotonic clock libferry reads: milliseconds that
 * never go back, for deadlines and timers (loop, transport timeouts,
 * connect, handshake deadlines).  Inline: it is one system call.
 */
#ifndef FERRY_CLOCK_H
#define FERRY_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t ferry__now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#endif
