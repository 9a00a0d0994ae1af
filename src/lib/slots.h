/*
 * slots.h - the connection slots a server counts: every live connection
 * (or FORK child) holds one, and while it has not authenticated, one of
 * the not-yet-authenticated slots too (sshd's MaxStartups).  admission.c
 * takes them when it accepts; whoever ends a connection (the connection
 * engine, the THREAD and FORK models) gives them back here, so nothing
 * below admission has to call up into it.
 *
 * The not-yet-authenticated slots are a table of who holds them (the
 * connection's fd, or its FORK child's pid, and its source), so that a
 * full table can evict the oldest connection of the source holding the
 * most (see admit_policy.h): shutdown(2) of the fd, which every model
 * reads as the peer's end, or SIGKILL of the child.  An entry is named by
 * its fd, so it must be given back BEFORE the fd is closed: then no two
 * entries ever share an fd, and an eviction never reaches a socket that
 * was reused.  The table has its own lock: EVENT workers admit at once.
 */
#ifndef FERRY_SLOTS_H
#define FERRY_SLOTS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "admit_policy.h"

/* A source: an address masked to its netblock, v4 as ::ffff:a.b.c.d. */
struct slot_source {
    uint8_t b[16];
};

struct slot_entry;
struct slot_penalty;

struct ferry_slots {
    atomic_int live;       /* connections (or children) across all models */
    int unauth_capped;     /* max_unauthenticated applies (it needs a handshake timeout) */

    pthread_mutex_t mu;    /* guards everything below */
    struct slot_entry *tab;        /* cap entries, the first n used */
    int n, cap;
    int held;                      /* of the n, not evicted (the count the policy sees) */
    uint64_t seq;                  /* age order of entries */
    int *scratch;                  /* cap indices, to find the biggest source */
    struct slot_penalty *pen;      /* sources refused until a deadline */
    int npen;
    uint64_t grace_ms;             /* the handshake timeout */
    int penalty_ms;                /* for an evicted source */
    int timeout_penalty_ms;        /* for one that used the whole grace */
};

/* Make the table for max_unauth slots (unauth_capped set), 0 or -ENOMEM.
 * An evicted connection earns its source penalty_ms of refusals; one that
 * gives its slot back after grace_ms or more (it used the whole handshake
 * timeout without authenticating) timeout_penalty_ms (sshd's
 * PerSourcePenalties grace-exceeded); 0 = none. */
int ferry__slots_init(struct ferry_slots *k, int max_unauth, int grace_ms, int penalty_ms,
                      int timeout_penalty_ms);
void ferry__slots_free(struct ferry_slots *k);

/* The source key of a peer address: its first v4_bits (v6_bits) bits. */
void ferry__slot_source(const struct sockaddr *sa, socklen_t len, int v4_bits, int v6_bits,
                        struct slot_source *out);

/*
 * Take a not-yet-authenticated slot for fd from src, as admit_decide says
 * on the table's counts and rnd (now_ms dates penalties).  ADMIT_ACCEPT
 * and ADMIT_EVICT: the slot is fd's (and a connection of the biggest
 * source was shut down; its source serves the penalty); any other
 * verdict: fd holds nothing.
 */
enum admit_verdict ferry__slot_unauth_take(struct ferry_slots *k, const struct admit_limits *lim,
                                           int fd, const struct slot_source *src, uint32_t rnd,
                                           uint64_t now_ms);

/* The connection on fd authenticated (or is going): its slot is free.
 * Call before closing fd.  No-op when fd holds none. */
void ferry__slot_unauth_release(struct ferry_slots *k, int fd);

/* FORK: fd's slot now belongs to child pid (the parent is closing fd). */
void ferry__slot_unauth_to_pid(struct ferry_slots *k, int fd, pid_t pid);
/* FORK: child pid authenticated or is gone. */
void ferry__slot_unauth_release_pid(struct ferry_slots *k, pid_t pid);

/* The connection on fd is gone: its slot, and the not-yet-authenticated
 * one when it still held that.  Call before closing fd. */
static inline void ferry__slot_release(struct ferry_slots *k, int unauth_held, int fd)
{
    if (unauth_held)
        ferry__slot_unauth_release(k, fd);
    atomic_fetch_sub(&k->live, 1);
}

#endif
