/*
 * slots.h - the connection slots a server counts: every live connection
 * (or FORK child) holds one, and while it has not authenticated, one of
 * the not-yet-authenticated slots too (sshd's MaxStartups).  admission.c
 * takes them when it accepts; whoever ends a connection (the connection
 * engine, the THREAD and FORK models) gives them back here, so nothing
 * below admission has to call up into it.
 */
#ifndef FERRY_SLOTS_H
#define FERRY_SLOTS_H

#include <stdatomic.h>

struct ferry_slots {
    atomic_int live;       /* connections (or children) across all models */
    atomic_int unauth;     /* of those, holding a not-yet-authenticated slot */
    int unauth_capped;     /* max_unauthenticated applies (it needs a handshake timeout) */
};

/* The connection authenticated: its not-yet-authenticated slot is free. */
static inline void ferry__slot_unauth_release(struct ferry_slots *k)
{
    atomic_fetch_sub(&k->unauth, 1);
}

/* The connection is gone: its slot, and the not-yet-authenticated one
 * when it still held that. */
static inline void ferry__slot_release(struct ferry_slots *k, int unauth_held)
{
    if (unauth_held)
        ferry__slot_unauth_release(k);
    atomic_fetch_sub(&k->live, 1);
}

#endif
