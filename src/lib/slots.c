/*
 * slots.c - the table of not-yet-authenticated slots, eviction and
 * per-source penalties (see slots.h).  Counting is done here, under the
 * lock; deciding is admit_policy.c's.
 */
#include "slots.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include "clock.h"

/* Penalised sources remembered at once; the one nearest its end gives way. */
#define PENALTY_SLOTS 256

struct slot_entry {
    int fd;                 /* -1 once the slot is a FORK child's */
    pid_t pid;              /* the child, or 0 */
    int evicted;            /* shut down, waiting for its owner to give it back */
    uint64_t seq;           /* taken in this order */
    uint64_t since_ms;      /* when */
    struct slot_source src;
};

struct slot_penalty {
    struct slot_source src;
    uint64_t until_ms;
};

int ferry__slots_init(struct ferry_slots *k, int max_unauth, int grace_ms, int penalty_ms,
                      int timeout_penalty_ms)
{
    int r = pthread_mutex_init(&k->mu, NULL);

    if (r != 0)
        return -r;
    k->unauth_capped = 1;
    k->grace_ms = grace_ms > 0 ? (uint64_t)grace_ms : 0;
    k->penalty_ms = penalty_ms > 0 ? penalty_ms : 0;
    k->timeout_penalty_ms = timeout_penalty_ms > 0 ? timeout_penalty_ms : 0;
    /* Room for the evicted ones their owners have not given back yet. */
    k->cap = max_unauth * 2 + 16;
    k->tab = calloc((size_t)k->cap, sizeof *k->tab);
    k->scratch = calloc((size_t)k->cap, sizeof *k->scratch);
    k->pen = calloc(PENALTY_SLOTS, sizeof *k->pen);
    if (!k->tab || !k->scratch || !k->pen) {
        ferry__slots_free(k);
        return -ENOMEM;
    }
    return 0;
}

void ferry__slots_free(struct ferry_slots *k)
{
    if (!k->unauth_capped)
        return;
    free(k->tab);
    free(k->scratch);
    free(k->pen);
    k->tab = NULL;
    k->scratch = NULL;
    k->pen = NULL;
    pthread_mutex_destroy(&k->mu);
    k->unauth_capped = 0;
}

static void mask_bits(uint8_t *b, int bits)
{
    for (int i = 0; i < 16; i++) {
        int keep = bits - i * 8;
        if (keep >= 8)
            continue;
        b[i] &= keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep));
    }
}

void ferry__slot_source(const struct sockaddr *sa, socklen_t len, int v4_bits, int v6_bits,
                        struct slot_source *out)
{
    memset(out, 0, sizeof *out);
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        out->b[10] = out->b[11] = 0xff;
        memcpy(out->b + 12, &in->sin_addr, 4);
        mask_bits(out->b, 96 + v4_bits);
    } else if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        memcpy(out->b, &in6->sin6_addr, 16);
        /* A v4-mapped peer on a dual-stack socket is the v4 address. */
        mask_bits(out->b, IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) ? 96 + v4_bits : v6_bits);
    }
    /* unix sockets: all one source (the all-zero key). */
}

static int src_cmp(const struct slot_source *a, const struct slot_source *b)
{
    return memcmp(a->b, b->b, sizeof a->b);
}

static int penalized(struct ferry_slots *k, const struct slot_source *src, uint64_t now)
{
    for (int i = 0; i < k->npen; i++)
        if (k->pen[i].until_ms > now && src_cmp(&k->pen[i].src, src) == 0)
            return 1;
    return 0;
}

static void penalize(struct ferry_slots *k, const struct slot_source *src, uint64_t until)
{
    int at = -1;

    for (int i = 0; i < k->npen && at < 0; i++)
        if (src_cmp(&k->pen[i].src, src) == 0)
            at = i;
    if (at < 0 && k->npen < PENALTY_SLOTS)
        at = k->npen++;
    if (at < 0) {
        /* Full: replace the one that ends first (expired ones end first). */
        at = 0;
        for (int i = 1; i < k->npen; i++)
            if (k->pen[i].until_ms < k->pen[at].until_ms)
                at = i;
    }
    k->pen[at].src = *src;
    k->pen[at].until_ms = until;
}

static int by_source(const void *a, const void *b, void *arg)
{
    const struct slot_entry *tab = arg;
    const struct slot_entry *x = &tab[*(const int *)a];
    const struct slot_entry *y = &tab[*(const int *)b];
    int c = src_cmp(&x->src, &y->src);

    if (c != 0)
        return c;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The oldest held entry of the source holding the most (of those, the one
 * holding the oldest); *count its count. */
static int biggest_source(struct ferry_slots *k, int *count)
{
    int m = 0, best = -1, best_n = 0;

    for (int i = 0; i < k->n; i++)
        if (!k->tab[i].evicted)
            k->scratch[m++] = i;
    /* Sorted by source then age, a run is one source, its head the oldest. */
    qsort_r(k->scratch, (size_t)m, sizeof *k->scratch, by_source, k->tab);
    for (int i = 0; i < m;) {
        int j = i;
        while (j < m && src_cmp(&k->tab[k->scratch[j]].src, &k->tab[k->scratch[i]].src) == 0)
            j++;
        /* Ties: the source whose oldest is oldest. */
        if (j - i > best_n || (j - i == best_n && k->tab[k->scratch[i]].seq < k->tab[best].seq)) {
            best_n = j - i;
            best = k->scratch[i];
        }
        i = j;
    }
    *count = best_n;
    return best;
}

enum admit_verdict ferry__slot_unauth_take(struct ferry_slots *k, const struct admit_limits *lim,
                                           int fd, const struct slot_source *src, uint32_t rnd,
                                           uint64_t now_ms)
{
    struct admit_counts c = { 0 };
    enum admit_verdict v;
    int victim = -1;

    pthread_mutex_lock(&k->mu);
    c.unauth = k->held;
    for (int i = 0; i < k->n; i++)
        if (!k->tab[i].evicted && src_cmp(&k->tab[i].src, src) == 0)
            c.from_source++;
    c.penalized = penalized(k, src, now_ms);
    /* The biggest source matters only when the table is full. */
    if (c.unauth >= lim->full)
        victim = biggest_source(k, &c.biggest);
    v = admit_decide(lim, &c, rnd);
    if ((v == ADMIT_ACCEPT || v == ADMIT_EVICT) && k->n == k->cap)
        v = ADMIT_DROP_FULL;   /* evicted ones not given back yet fill the room */
    if (v == ADMIT_EVICT) {
        struct slot_entry *e = &k->tab[victim];
        /* Its owner sees the end of input and gives the slot back. */
        if (e->fd >= 0)
            shutdown(e->fd, SHUT_RDWR);
        else if (e->pid > 0)
            kill(e->pid, SIGKILL);
        e->evicted = 1;
        k->held--;
        if (k->penalty_ms > 0)
            penalize(k, &e->src, now_ms + (uint64_t)k->penalty_ms);
    }
    if (v == ADMIT_ACCEPT || v == ADMIT_EVICT) {
        k->tab[k->n++] = (struct slot_entry){ .fd = fd, .seq = ++k->seq, .since_ms = now_ms,
                                              .src = *src };
        k->held++;
    }
    pthread_mutex_unlock(&k->mu);
    return v;
}

static void drop_at(struct ferry_slots *k, int i)
{
    struct slot_entry *e = &k->tab[i];

    if (!e->evicted) {
        uint64_t now = ferry__now_ms();
        /* Held through the whole grace: it timed out (an authenticated
         * one gives its slot back before the deadline). */
        if (k->timeout_penalty_ms > 0 && k->grace_ms > 0 && now - e->since_ms >= k->grace_ms)
            penalize(k, &e->src, now + (uint64_t)k->timeout_penalty_ms);
        k->held--;
    }
    k->tab[i] = k->tab[--k->n];
}

void ferry__slot_unauth_release(struct ferry_slots *k, int fd)
{
    if (!k->unauth_capped || fd < 0)
        return;
    pthread_mutex_lock(&k->mu);
    for (int i = 0; i < k->n; i++)
        if (k->tab[i].fd == fd) {
            drop_at(k, i);
            break;
        }
    pthread_mutex_unlock(&k->mu);
}

void ferry__slot_unauth_to_pid(struct ferry_slots *k, int fd, pid_t pid)
{
    if (!k->unauth_capped || fd < 0)
        return;
    pthread_mutex_lock(&k->mu);
    for (int i = 0; i < k->n; i++)
        if (k->tab[i].fd == fd) {
            k->tab[i].fd = -1;
            k->tab[i].pid = pid;
            break;
        }
    pthread_mutex_unlock(&k->mu);
}

void ferry__slot_unauth_release_pid(struct ferry_slots *k, pid_t pid)
{
    if (!k->unauth_capped || pid <= 0)
        return;
    pthread_mutex_lock(&k->mu);
    for (int i = 0; i < k->n; i++)
        if (k->tab[i].fd < 0 && k->tab[i].pid == pid) {
            drop_at(k, i);
            break;
        }
    pthread_mutex_unlock(&k->mu);
}
