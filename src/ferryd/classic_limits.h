/*
 * classic_limits.h - what the --classic listener as a whole may take, so
 * that unauthenticated peers on it cannot hurt the authenticated service:
 * a cap on its connections (separate from --max-conns) and one budget for
 * the command output all its connections hold at once.
 *
 * The counters live in a shared anonymous mapping made before the server
 * starts, so they are the same for every worker thread (event model) and
 * every connection process (fork model, which inherits the mapping).
 */
#ifndef FERRYD_CLASSIC_LIMITS_H
#define FERRYD_CLASSIC_LIMITS_H

#include <stddef.h>

struct classic_limits;   /* opaque, shared across threads and forks */

/* 0 and *out, or -errno from mmap. */
int classic_limits_new(int max_conns, size_t max_output, struct classic_limits **out);
/* Unmap; no connection may use it any more.  NULL allowed. */
void classic_limits_free(struct classic_limits *l);

/* Take a connection slot: its number (>= 0), or -EUSERS when max_conns
 * are open (the refusal is counted, see classic_limits_refusals).  Slots
 * of processes that died without leaving are reclaimed first.  Leaving
 * gives back what the slot still has reserved. */
int classic_limits_enter(struct classic_limits *l);
void classic_limits_leave(struct classic_limits *l, int slot);

/* Refusals since the last call that returned non-zero, at most once a
 * second (else 0): the caller logs them as one summary line. */
unsigned long classic_limits_refusals(struct classic_limits *l);

/* Reserve up to want bytes of the output budget; returns how many were
 * granted (less than want once the budget is spent).  Every granted byte
 * is given back with classic_limits_release. */
size_t classic_limits_reserve(struct classic_limits *l, int slot, size_t want);
void classic_limits_release(struct classic_limits *l, int slot, size_t n);

/* The limits, for messages. */
int classic_limits_max_conns(const struct classic_limits *l);
size_t classic_limits_max_output(const struct classic_limits *l);

#endif
