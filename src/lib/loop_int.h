/*
 * loop_int.h - the seam between loop.c and its I/O backends.
 *
 * loop.c owns watchers, timers and the run loop; a backend only knows how to
 * wait for readiness on a set of fds.  Exactly one backend is linked in
 * (loop_epoll.c or loop_poll.c, chosen by FERRY_POLL_BACKEND).
 *
 * Invariant shared by both backends: an fd is registered with the kernel only
 * while its interest set is non-zero.  Both epoll and poll report hang-ups and
 * errors even for an empty interest set, so keeping such fds registered would
 * make a level-triggered loop spin on a "deliver nothing" watcher.
 */
#ifndef FERRY_LOOP_INT_H
#define FERRY_LOOP_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "ferry/loop.h"

struct ferry_backend;   /* defined by the backend */

/* One ready descriptor.  The backend fills fd and events (FERRY_* bits;
 * hang-up and error conditions as FERRY_HANGUP | FERRY_READABLE); gen is
 * loop.c's, used to spot watchers replaced after the wait returned. */
struct ferry_ready {
    int fd;
    unsigned events;
    uint32_t gen;
};

int ferry_backend_init(struct ferry_backend **out);
void ferry_backend_free(struct ferry_backend *b);

/* `events`, `old` and `now` are interest sets (FERRY_READABLE|FERRY_WRITABLE);
 * the caller passes the previous set so the backend can follow the invariant
 * above without keeping its own copy. */
int ferry_backend_add(struct ferry_backend *b, int fd, unsigned events);
int ferry_backend_modify(struct ferry_backend *b, int fd, unsigned old, unsigned now);
int ferry_backend_remove(struct ferry_backend *b, int fd, unsigned old);

/* Wait up to timeout_ms (-1: forever) and store at most `max` ready fds.
 * Returns the count (0 on timeout or EINTR) or a negative errno. */
int ferry_backend_wait(struct ferry_backend *b, struct ferry_ready *ready, int max,
                       int timeout_ms);

/* In a forked child: close the backend's own descriptor (the epoll fd)
 * without touching the kernel state the parent still relies on. */
void ferry_backend_forget(struct ferry_backend *b);

/* In a forked child that will never run this loop: close the descriptors
 * the loop owns (backend, wakeup) and nothing else, so the child does not
 * carry them.  The loop's memory is left alone (it dies with the child);
 * the loop must not be used afterwards. */
void ferry__loop_forget_after_fork(struct ferry_loop *loop);

/* One pointer per loop for libferry's own state on it (the client
 * connections' shared state, conn.c), so a caller's loop needs no field
 * for it.  ferry_loop_free calls release(slot) first, while the loop still
 * works; release may defer frees, which then run before the loop goes.
 * Setting NULL clears the slot without calling release. */
void *ferry__loop_slot(const struct ferry_loop *loop);
void ferry__loop_set_slot(struct ferry_loop *loop, void *slot, void (*release)(void *slot));

/* "epoll" or "poll", for logs and tests. */
const char *ferry_backend_name(void);

/* True while the timer is armed (started or restarted and not yet fired). */
bool ferry_timer_active(const struct ferry_timer *timer);

#endif
