/*
 * bench_loop.c - one load-generating thread of ferry-bench: its own epoll,
 * its share of the connections, and nothing allocated after setup but what
 * the frame codec needs.
 *
 * The thread runs the two phases of bench.h: the burst of held connects,
 * then (once every thread is through its burst) request/response on the
 * active connections until the duration, the count or a stop.  Events go
 * to bench_conn.c (held connections) and bench_request.c (active ones);
 * this file is the wait, the clock and the phases.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "bench.h"
#include "bench_conn.h"

#define SCRATCH_LEN    (64u * 1024u)
#define MAX_EVENTS     256
#define MAX_WAIT_MS    1000
#define TIMEOUT_SCAN_NS 100000000u   /* connect deadlines are checked this often */

/* The stop eventfd's registration; only its kind is ever read. */
static const struct bench_conn stop_marker = { .t = NULL, .kind = KIND_STOP };

/* Milliseconds from now until `until` (rounded up, so the wait never ends
 * just short of it), at most MAX_WAIT_MS. */
static int wait_ms(uint64_t now, uint64_t until)
{
    uint64_t ms;

    if (until <= now)
        return 0;
    ms = (until - now + 999999u) / 1000000u;
    return ms > MAX_WAIT_MS ? MAX_WAIT_MS : (int)ms;
}

/* One epoll_wait and its events.  Returns 1 once the stop eventfd fired,
 * 0, or a negative errno. */
static int poll_once(struct worker *w, int timeout_ms)
{
    struct epoll_event ev[MAX_EVENTS];
    int n, stop = 0;

    n = epoll_wait(w->epfd, ev, MAX_EVENTS, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    for (int i = 0; i < n; i++) {
        struct bench_conn *c = ev[i].data.ptr;

        switch (c->kind) {
        case KIND_ACTIVE:
            bench_request_event(w, (struct bench_active_conn *)c, ev[i].events);
            break;
        case KIND_HOLD:
            bench_conn_hold_event(w, (struct bench_hold_conn *)c, ev[i].events, bench_now_ns());
            break;
        default:
            stop = 1;
            break;
        }
    }
    return stop;
}

/* Phase 1: every held connection's connect is issued at once, then the
 * thread waits until each has connected or failed, or the deadline. */
static int run_burst(struct worker *w)
{
    uint64_t deadline, now;
    int r = 0;

    now = bench_now_ns();
    w->t_burst_start = now;
    w->t_burst_end = now;
    deadline = now + bench_seconds_ns(w->sh->opts->connect_timeout);
    for (unsigned i = 0; i < w->n_hold; i++) {
        r = bench_conn_open(w, &w->held[i].c);
        if (r < 0)
            bench_tally_add(&w->hold_err, r, 1);
        else
            w->hold_pending++;
    }
    r = 0;
    while (w->hold_pending > 0 && r == 0) {
        now = bench_now_ns();
        if (now >= deadline) {
            bench_conn_hold_timeouts(w);
            break;
        }
        r = poll_once(w, wait_ms(now, deadline));
    }
    return r;
}

static int quota_done(const struct worker *w, uint64_t now)
{
    return w->issued >= w->quota && w->inflight == 0 && now >= w->t_meas_start;
}

/* Phase 2: the active connections run request/response until the
 * duration, the count or a stop; threads without any wait for the others
 * (the last active thread to finish signals the stop eventfd). */
static int run_active(struct worker *w)
{
    const struct bench_opts *o = w->sh->opts;
    uint64_t now, next_scan, until;
    int r = 0;

    now = bench_now_ns();
    w->t_meas_start = now + bench_seconds_ns(o->warmup);
    w->t_end = w->t_meas_start + bench_seconds_ns(o->duration > 0 ? o->duration : BENCH_MAX_SECONDS);
    for (unsigned i = 0; i < w->n_active; i++)
        bench_request_begin(w, &w->active[i], now);
    next_scan = now + TIMEOUT_SCAN_NS;
    for (;;) {
        now = bench_now_ns();
        if (now >= w->t_end)
            break;
        if (w->n_active > 0 && (w->live == 0 || quota_done(w, now)))
            break;
        if (w->connecting > 0 && now >= next_scan) {
            bench_request_timeouts(w, now);
            next_scan = now + TIMEOUT_SCAN_NS;
        }
        until = w->t_end;
        if (w->connecting > 0 && next_scan < until)
            until = next_scan;
        if (w->quota != UINT64_MAX && w->t_meas_start > now && w->t_meas_start < until)
            until = w->t_meas_start;   /* a quota of 0 is done when the warmup ends */
        r = poll_once(w, wait_ms(now, until));
        if (r != 0)
            break;
    }
    w->t_meas_end = now < w->t_end ? now : w->t_end;
    return r < 0 ? r : 0;
}

static int setup(struct worker *w)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = (void *)&stop_marker };

    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (w->epfd < 0)
        return -errno;
    /* Level-triggered and never read: once written, every later wait of
     * every thread returns at once. */
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->sh->stop_fd, &ev) < 0)
        return -errno;
    /* A download is read in large pieces; the other modes' replies are
     * small, and 64 KiB stays in cache. */
    w->scratch_len = MODE_IS_XFER(w->sh->opts->mode) ? BENCH_XFER_READ_LEN : SCRATCH_LEN;
    w->scratch = malloc(w->scratch_len);
    w->active = calloc(w->n_active ? w->n_active : 1, sizeof *w->active);
    w->held = calloc(w->n_hold ? w->n_hold : 1, sizeof *w->held);
    if (!w->scratch || !w->active || !w->held)
        return -ENOMEM;
    /* Only held sessions need one: a plain held connection stays small. */
    if (w->sh->opts->session && w->n_hold > 0) {
        w->hold_hs = calloc(w->n_hold, sizeof *w->hold_hs);
        if (!w->hold_hs)
            return -ENOMEM;
    }
    for (unsigned i = 0; i < w->n_active; i++) {
        int r = bench_request_init(w, &w->active[i], w->first_conn + i);

        if (r < 0)
            return r;
    }
    for (unsigned i = 0; i < w->n_hold; i++)
        w->held[i].c.kind = KIND_HOLD;
    return 0;
}

static void teardown(struct worker *w)
{
    /* Entries that setup never reached are all zeros, which is free. */
    if (w->active)
        for (unsigned i = 0; i < w->n_active; i++)
            bench_request_free(&w->active[i]);
    if (w->held)
        for (unsigned i = 0; i < w->n_hold; i++)
            bench_conn_hold_free(&w->held[i]);
    if (w->epfd >= 0)
        close(w->epfd);
    w->epfd = -1;
    free(w->scratch);
    free(w->active);
    free(w->held);
    free(w->hold_hs);
    w->hold_hs = NULL;
    w->scratch = NULL;
    w->active = NULL;
    w->held = NULL;
}

int bench_loop_burst_done(struct bench_shared *sh)
{
    uint64_t one = 1;

    if (atomic_fetch_sub(&sh->burst_left, 1) == 1 && write(sh->go_fd, &one, sizeof one) < 0)
        return -errno;
    return 0;
}

/* Wait until every thread is through its burst (or the run is stopped:
 * returns 1).  Each burst ends by its connect deadline, so this wait is
 * bounded by that plus a margin. */
static int wait_for_go(struct worker *w)
{
    struct pollfd p[2] = {
        { .fd = w->sh->go_fd, .events = POLLIN },
        { .fd = w->sh->stop_fd, .events = POLLIN },
    };
    uint64_t deadline = bench_now_ns() + bench_seconds_ns(w->sh->opts->connect_timeout + 10.0);

    for (;;) {
        uint64_t now = bench_now_ns();
        int n;

        if (now >= deadline)
            return -ETIMEDOUT;
        n = poll(p, 2, wait_ms(now, deadline));
        if (n < 0 && errno != EINTR)
            return -errno;
        if (p[1].revents)
            return 1;
        if (p[0].revents)
            return 0;
    }
}

void *bench_loop_main(void *arg)
{
    struct worker *w = arg;
    uint64_t eventfd_one = 1;
    int r, r2;

    bench_hist_init(&w->hist);
    r = setup(w);
    if (r == 0)
        r = run_burst(w);
    /* Every thread counts itself out of the burst, failed or not, so none
     * waits for ever; a failed thread then sits the active phase out. */
    r2 = bench_loop_burst_done(w->sh);
    if (r == 0)
        r = r2;
    if (r == 0)
        r = wait_for_go(w);
    if (r == 0)
        r = run_active(w);
    if (r < 0)
        w->fatal = r;
    if (w->n_active > 0 && atomic_fetch_sub(&w->sh->active_left, 1) == 1) {
        /* The last thread with requests to make tells the threads that
         * only hold connections that the run is over. */
        if (write(w->sh->stop_fd, &eventfd_one, sizeof eventfd_one) < 0 && w->fatal == 0)
            w->fatal = -errno;
    }
    teardown(w);
    return NULL;
}
