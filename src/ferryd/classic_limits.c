/*
 * classic_limits.c - the --classic listener's shared connection count and
 * output budget (see classic_limits.h).  Lock-free atomics on a
 * MAP_SHARED mapping: they work between threads and between the
 * processes of the fork model alike.
 *
 * Each connection holds a slot that records its process and what it has
 * reserved.  A fork-model connection process killed from outside never
 * gives its slot back (a classic command can `kill -9 $PPID` its own);
 * when no slot is free, slots of processes that no longer exist are
 * reclaimed, reservation and all, so nobody can leak the listener shut.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "classic_limits.h"

struct slot {
    atomic_int pid;                /* 0 free, -1 being reclaimed, else the holder */
    atomic_size_t reserved;
};

struct classic_limits {
    int max_conns;
    size_t max_output;
    size_t map_len;
    atomic_size_t output;          /* bytes reserved by all connections */
    atomic_ulong refused;          /* refusals not yet logged */
    atomic_llong last_report;      /* CLOCK_MONOTONIC second of the last summary */
    struct slot slots[];
};

int classic_limits_new(int max_conns, size_t max_output, struct classic_limits **out)
{
    size_t len = sizeof(struct classic_limits) + (size_t)max_conns * sizeof(struct slot);
    struct classic_limits *l = mmap(NULL, len, PROT_READ | PROT_WRITE,
                                    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (l == MAP_FAILED)
        return -errno;
    /* A fresh anonymous mapping is zeroed: every slot is free. */
    l->max_conns = max_conns;
    l->max_output = max_output;
    l->map_len = len;
    *out = l;
    return 0;
}

void classic_limits_free(struct classic_limits *l)
{
    if (l)
        munmap(l, l->map_len);
}

static int take_free_slot(struct classic_limits *l, int self)
{
    for (int i = 0; i < l->max_conns; i++) {
        int zero = 0;
        if (atomic_compare_exchange_strong(&l->slots[i].pid, &zero, self))
            return i;
    }
    return -1;
}

/* Give back the slots of processes that are gone.  The claim (pid -> -1)
 * makes one caller do each. */
static void reclaim_dead(struct classic_limits *l)
{
    for (int i = 0; i < l->max_conns; i++) {
        int pid = atomic_load(&l->slots[i].pid);
        if (pid <= 0 || kill(pid, 0) == 0 || errno != ESRCH)
            continue;
        if (!atomic_compare_exchange_strong(&l->slots[i].pid, &pid, -1))
            continue;
        atomic_fetch_sub(&l->output, atomic_exchange(&l->slots[i].reserved, 0));
        atomic_store(&l->slots[i].pid, 0);
    }
}

int classic_limits_enter(struct classic_limits *l)
{
    int self = (int)getpid();
    int slot = take_free_slot(l, self);

    if (slot < 0) {
        reclaim_dead(l);
        slot = take_free_slot(l, self);
    }
    if (slot < 0) {
        atomic_fetch_add(&l->refused, 1);
        return -EUSERS;
    }
    return slot;
}

void classic_limits_leave(struct classic_limits *l, int slot)
{
    classic_limits_release(l, slot, atomic_load(&l->slots[slot].reserved));
    atomic_store(&l->slots[slot].pid, 0);
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

size_t classic_limits_reserve(struct classic_limits *l, int slot, size_t want)
{
    size_t used = atomic_load(&l->output), grant;

    do {
        size_t room = used < l->max_output ? l->max_output - used : 0;
        grant = want < room ? want : room;
        if (grant == 0)
            return 0;
    } while (!atomic_compare_exchange_weak(&l->output, &used, used + grant));
    atomic_fetch_add(&l->slots[slot].reserved, grant);
    return grant;
}

void classic_limits_release(struct classic_limits *l, int slot, size_t n)
{
    if (n == 0)
        return;
    /* Only the slot's holder changes its count: no race on the order. */
    atomic_fetch_sub(&l->slots[slot].reserved, n);
    atomic_fetch_sub(&l->output, n);
}

int classic_limits_max_conns(const struct classic_limits *l)
{
    return l->max_conns;
}

size_t classic_limits_max_output(const struct classic_limits *l)
{
    return l->max_output;
}
