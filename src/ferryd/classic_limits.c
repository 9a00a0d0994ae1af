/*
 * classic_limits.c - the --classic listener's shared connection count and
 * output budget (see classic_limits.h).  Lock-free atomics on a
 * MAP_SHARED mapping: they work between threads and between the
 * processes of the fork model alike.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <time.h>

#include "classic_limits.h"

struct classic_limits {
    int max_conns;
    size_t max_output;
    atomic_int conns;
    atomic_size_t output;          /* bytes reserved by all connections */
    atomic_ulong refused;          /* refusals not yet logged */
    atomic_llong last_report;      /* CLOCK_MONOTONIC second of the last summary */
};

int classic_limits_new(int max_conns, size_t max_output, struct classic_limits **out)
{
    struct classic_limits *l = mmap(NULL, sizeof *l, PROT_READ | PROT_WRITE,
                                    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (l == MAP_FAILED)
        return -errno;
    l->max_conns = max_conns;
    l->max_output = max_output;
    atomic_init(&l->conns, 0);
    atomic_init(&l->output, 0);
    atomic_init(&l->refused, 0);
    atomic_init(&l->last_report, 0);
    *out = l;
    return 0;
}

void classic_limits_free(struct classic_limits *l)
{
    if (l)
        munmap(l, sizeof *l);
}

int classic_limits_enter(struct classic_limits *l)
{
    int n = atomic_load(&l->conns);

    do {
        if (n >= l->max_conns) {
            atomic_fetch_add(&l->refused, 1);
            return -EUSERS;
        }
    } while (!atomic_compare_exchange_weak(&l->conns, &n, n + 1));
    return 0;
}

void classic_limits_leave(struct classic_limits *l)
{
    atomic_fetch_sub(&l->conns, 1);
}

unsigned long classic_limits_refusals(struct classic_limits *l)
{
    struct timespec ts;
    long long now, last;

    if (atomic_load(&l->refused) == 0 || clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
        return 0;
    now = (long long)ts.tv_sec;
    last = atomic_load(&l->last_report);
    /* One caller a second wins the exchange and reports for everyone. */
    if (now <= last || !atomic_compare_exchange_strong(&l->last_report, &last, now))
        return 0;
    return atomic_exchange(&l->refused, 0);
}

size_t classic_limits_reserve(struct classic_limits *l, size_t want)
{
    size_t used = atomic_load(&l->output), grant;

    do {
        size_t room = used < l->max_output ? l->max_output - used : 0;
        grant = want < room ? want : room;
        if (grant == 0)
            return 0;
    } while (!atomic_compare_exchange_weak(&l->output, &used, used + grant));
    return grant;
}

void classic_limits_release(struct classic_limits *l, size_t n)
{
    if (n)
        atomic_fetch_sub(&l->output, n);
}

size_t classic_limits_max_output(const struct classic_limits *l)
{
    return l->max_output;
}

int classic_limits_max_conns(const struct classic_limits *l)
{
    return l->max_conns;
}
