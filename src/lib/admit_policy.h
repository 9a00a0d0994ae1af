/*
 * admit_policy.h - who may take a not-yet-authenticated slot: the pure
 * decision, on counts and a random number, with no I/O and no clock, so
 * that every branch is unit-tested (tests/unit/test_admit_policy.c).
 * admission.c gathers the counts and carries the verdict out.
 *
 * The anchors are sshd's MaxStartups start:rate:full and PerSourceMaxStartups
 * and dropbear's MAX_UNAUTH_PER_IP, with one change that matters when an
 * attacker holds every slot: a full table evicts a connection of the source
 * holding the most rather than refusing the newcomer (a source with nothing
 * waiting always gets in), and random early drop
 * only hits sources that already have a connection waiting, so a client
 * that arrives with nothing pending is never dropped by chance.
 */
#ifndef FERRY_ADMIT_POLICY_H
#define FERRY_ADMIT_POLICY_H

#include <stdint.h>

struct admit_limits {
    int full;          /* not-yet-authenticated slots in all (max_unauthenticated) */
    int start;         /* from this many on, random early drop (sshd's start) */
    int rate;          /* its probability at start, percent, rising to 100 at full */
    int per_source;    /* slots one source (address or netblock) may hold; 0 = no cap */
};

enum admit_verdict {
    ADMIT_ACCEPT = 0,     /* take a free slot */
    ADMIT_EVICT,          /* close the oldest of the biggest source's, then take it */
    ADMIT_DROP_PENALTY,   /* the source is serving a penalty */
    ADMIT_DROP_SOURCE,    /* the source holds its share */
    ADMIT_DROP_EARLY,     /* random early drop */
    ADMIT_DROP_FULL,      /* full, and no source holds more than this one would */
    ADMIT_NVERDICTS
};

/* What is known about the table and the newcomer's source. */
struct admit_counts {
    int unauth;        /* slots held now */
    int from_source;   /* of those, by the newcomer's source */
    int biggest;       /* held by the source holding the most (0 when none) */
    int penalized;     /* the source is serving a penalty */
};

/*
 * The verdict for one new connection.  rnd is uniform over uint32_t (the
 * caller's random source); only ADMIT_DROP_EARLY depends on it.
 */
enum admit_verdict admit_decide(const struct admit_limits *lim, const struct admit_counts *c,
                                uint32_t rnd);

/* "accepted", "evicted", "penalty", "per-source", "early-drop", "full". */
const char *admit_verdict_name(enum admit_verdict v);

#endif
