/*
 * sweeper.h - ferryd's start-up sweep of its root for the temporaries of
 * uploads that never finished (fspath_sweep_temporaries), in a thread of
 * its own that runs beside serving.
 *
 * Why beside: a root of `/` is the whole machine, and a walk of it takes
 * minutes; nothing the sweep does has to come before the first client.
 * Uploads that start meanwhile hold their temporaries' flock, which the
 * sweep respects (fspath.h), so serving and sweeping never step on each
 * other.  ferryd logs one line for each root it sweeps ("swept for
 * unfinished uploads" or, on a stop, "stopped early").
 */
#ifndef FERRYD_SWEEPER_H
#define FERRYD_SWEEPER_H

#include "fspath.h"

struct sweeper;

/* One directory to sweep: dir is its name, for the log. */
struct sweeper_root {
    const struct fsroot *root;
    const char *dir;
};

/* Start sweeping the n roots, one after the other in that order (--root
 * first, then the keys' root= directories: a key's uploads leave their
 * temporaries there).  roots is copied; what its members point to must
 * outlive the sweeper.  One log line for each root.  0 and *out, or
 * -errno and nothing runs. */
int sweeper_start(const struct sweeper_root *roots, size_t n, struct sweeper **out);

/* End the sweep if it still runs (it stops before its next directory
 * entry and logs that it stopped early), wait for its thread, free it
 * and set *sw to NULL.  *sw may be NULL. */
void sweeper_stop(struct sweeper **sw);

#endif
