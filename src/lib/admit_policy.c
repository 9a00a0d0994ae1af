/*
 * admit_policy.c - the admission decision (see admit_policy.h).
 */
#include "admit_policy.h"

enum admit_verdict admit_decide(const struct admit_limits *lim, const struct admit_counts *c,
                                uint32_t rnd)
{
    if (c->penalized)
        return ADMIT_DROP_PENALTY;
    if (lim->per_source > 0 && c->from_source >= lim->per_source)
        return ADMIT_DROP_SOURCE;
    if (c->unauth >= lim->full) {
        /* Evict only from a source that would still hold more than the
         * newcomer's then does: sources end up level, and a client with
         * one connection pending is never the one evicted while an
         * attacker holds two.  A source with nothing waiting always gets
         * in, even when every source holds one (many addresses): the
         * oldest goes, which has had the longest to authenticate. */
        if (c->biggest > c->from_source + 1 || (c->from_source == 0 && c->biggest > 0))
            return ADMIT_EVICT;
        return ADMIT_DROP_FULL;
    }
    /* A source with nothing pending is never dropped by chance: the free
     * slots left are for it, and the eviction above keeps them coming. */
    if (c->from_source > 0 && lim->start > 0 && c->unauth >= lim->start) {
        int span = lim->full - lim->start;
        /* sshd: rate% at start, rising linearly to 100% at full. */
        uint64_t p = (uint64_t)lim->rate;
        if (span > 0)
            p += (uint64_t)(100 - lim->rate) * (uint64_t)(c->unauth - lim->start) / (uint64_t)span;
        if ((uint64_t)rnd % 100 < p)
            return ADMIT_DROP_EARLY;
    }
    return ADMIT_ACCEPT;
}

const char *admit_verdict_name(enum admit_verdict v)
{
    static const char *const names[ADMIT_NVERDICTS] = {
        "accepted", "evicted", "penalty", "per-source", "early-drop", "full",
    };
    return (unsigned)v < ADMIT_NVERDICTS ? names[v] : "?";
}
