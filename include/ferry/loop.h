/*
 * loop.h - a small event loop: descriptor watchers and timers.
 *
 * One loop belongs to one thread.  Backends: epoll on Linux, poll()
 * elsewhere (src/lib/loop_epoll.c, src/lib/loop_poll.c), chosen at build
 * time.  Each iteration runs fixed phases: wait for I/O (bounded by the next
 * timer), dispatch I/O callbacks, run expired timers, run deferred work.
 * Callbacks may add, modify or remove any watcher or timer, including their
 * own, at any time: removal inside a dispatch pass only marks the entry and
 * the memory is reclaimed after the pass.
 */
#ifndef FERRY_LOOP_H
#define FERRY_LOOP_H

#include "ferry/common.h"

#include <stdint.h>

FERRY_BEGIN_DECLS

struct ferry_loop;    /* opaque */
struct ferry_timer;   /* opaque */

#define FERRY_READABLE 1u
#define FERRY_WRITABLE 2u
/* Passed to callbacks (never requested): the peer hung up or the fd errored.
 * The callback should read to collect the error or EOF. */
#define FERRY_HANGUP   4u

typedef void ferry_io_cb(struct ferry_loop *loop, int fd, unsigned events, void *arg);
typedef void ferry_timer_cb(struct ferry_loop *loop, struct ferry_timer *timer, void *arg);
typedef void ferry_defer_cb(struct ferry_loop *loop, void *arg);

/* Create a loop into *out: 0, or a negative code (*out NULL). */
FERRY_EXPORT FERRY_NODISCARD int ferry_loop_new(struct ferry_loop **out);

/* Free the loop.  Watchers are dropped (their fds are not closed); pending
 * timers are freed without running. */
FERRY_EXPORT void ferry_loop_free(struct ferry_loop *loop);

/* Watch fd for `events` (FERRY_READABLE | FERRY_WRITABLE; 0: none yet).
 * One watcher per fd: -EEXIST if fd is already watched; an fd the backend
 * cannot watch is refused here whatever the events (epoll: -EPERM for a
 * regular file).  Level-triggered. */
FERRY_EXPORT FERRY_NODISCARD int ferry_loop_add(struct ferry_loop *loop, int fd, unsigned events, ferry_io_cb *cb, void *arg);

/* Change the interest set of a watched fd (0 = keep watching, deliver nothing). */
FERRY_EXPORT int ferry_loop_modify(struct ferry_loop *loop, int fd, unsigned events);

/* Stop watching fd; safe from inside any callback, including fd's own.
 * The caller still owns (and closes) fd.  0, -ENOENT when fd is not
 * watched, or the kernel's -errno (the watch is forgotten all the same). */
FERRY_EXPORT int ferry_loop_remove(struct ferry_loop *loop, int fd);

/* One-shot timer after `ms` milliseconds (monotonic clock); re-arm it with
 * ferry_timer_restart.  The loop owns the timer until ferry_timer_cancel,
 * which the callback may call on its own timer; a fired timer that is not
 * restarted stays allocated (inactive) until cancelled or the loop is freed. */
FERRY_EXPORT struct ferry_timer *ferry_loop_timer(struct ferry_loop *loop, uint64_t ms, ferry_timer_cb *cb, void *arg);
FERRY_EXPORT void ferry_timer_restart(struct ferry_timer *timer, uint64_t ms);
FERRY_EXPORT void ferry_timer_cancel(struct ferry_timer *timer);   /* frees; NULL allowed */

/* Run cb once at the end of the current (or next) iteration, after I/O and
 * timers: the place to free objects that callbacks of this pass may still
 * reference. */
FERRY_EXPORT FERRY_NODISCARD int ferry_loop_defer(struct ferry_loop *loop, ferry_defer_cb *cb, void *arg);

/* Run until ferry_loop_stop() or until nothing is watched and no timer or
 * deferred call is pending.  Returns 0 or a negative error from the backend. */
FERRY_EXPORT FERRY_NODISCARD int ferry_loop_run(struct ferry_loop *loop);

/* Make ferry_loop_run return after the current iteration.  Same thread only;
 * from another thread or a signal handler use ferry_loop_wakeup(). */
FERRY_EXPORT void ferry_loop_stop(struct ferry_loop *loop);

/* Thread- and async-signal-safe: interrupt the loop's wait and call
 * `cb(loop, arg)` (as set by ferry_loop_set_wakeup) on the loop's thread. */
FERRY_EXPORT int ferry_loop_set_wakeup(struct ferry_loop *loop, ferry_defer_cb *cb, void *arg);
FERRY_EXPORT void ferry_loop_wakeup(struct ferry_loop *loop);

/* Milliseconds on the monotonic clock, cached once per iteration. */
FERRY_EXPORT uint64_t ferry_loop_now(const struct ferry_loop *loop);

FERRY_END_DECLS

#endif
