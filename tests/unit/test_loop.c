/*
 * test_loop.c - the event loop's ordering and re-entrancy guarantees, run
 * against whichever backend this build links (epoll or poll).
 *
 * Nothing here sleeps: tests sequence themselves with the loop's own timers,
 * pipes and socketpairs.  A "safety" timer fails a test that would hang.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ferry/loop.h"
#include "fix_util.h"
#include "loop_int.h"

/* ---- helpers ----------------------------------------------------------- */

static int trace[256];
static size_t ntrace;

static int reset_trace(void **state)
{
    ntrace = 0;
    return 0;
}

static void record(int v)
{
    assert_true(ntrace < sizeof(trace) / sizeof(trace[0]));
    trace[ntrace++] = v;
}

static void expect_trace(const int *want, size_t n)
{
    assert_int_equal(ntrace, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(trace[i], want[i]);
}

#define EXPECT_TRACE(...)                                                    \
    do {                                                                     \
        static const int want_[] = { __VA_ARGS__ };                          \
        expect_trace(want_, sizeof(want_) / sizeof(want_[0]));               \
    } while (0)

static struct ferry_loop *new_loop(void)
{
    struct ferry_loop *loop = NULL;

    assert_int_equal(ferry_loop_new(&loop), 0);
    assert_non_null(loop);
    return loop;
}

static void make_pipe(int fds[2])
{
    assert_int_equal(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
}

static void make_socketpair(int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
}

static void put_byte(int fd)
{
    assert_int_equal(write(fd, "x", 1), 1);
}

static void close_pair(int fds[2])
{
    close(fds[0]);
    close(fds[1]);
}

static void on_safety(struct ferry_loop *loop, struct ferry_timer *timer, void *arg)
{
    fail_msg("the loop did not finish within %d ms", FIX_SAFETY_MS);
}

static void never_io(struct ferry_loop *loop, int fd, unsigned events, void *arg)
{
    fail_msg("unexpected I/O callback for fd %d", fd);
}

static void never_defer(struct ferry_loop *loop, void *arg)
{
    fail_msg("unexpected deferred or wakeup call");
}

static void record_timer(struct ferry_loop *loop, struct ferry_timer *timer, void *arg)
{
    record((int)(intptr_t)arg);
}

/* ---- basics ------------------------------------------------------------ */

static void test_run_returns_when_empty(void **state)
{
    struct ferry_loop *loop = new_loop();
    int fds[2];

    /* The internal wakeup fd and a wakeup callback keep nothing alive. */
    assert_int_equal(ferry_loop_set_wakeup(loop, never_defer, NULL), 0);
    assert_int_equal(ferry_loop_run(loop), 0);

    make_pipe(fds);
    assert_int_equal(ferry_loop_add(loop, fds[0], FERRY_READABLE, never_io, NULL), 0);
    assert_int_equal(ferry_loop_remove(loop, fds[0]), 0);
    assert_int_equal(ferry_loop_run(loop), 0);

    ferry_loop_free(loop);
    close_pair(fds);
}

static void test_argument_errors(void **state)
{
    struct ferry_loop *loop = new_loop();
    ferry_io_cb *cb = never_io;
    int fds[2];

    make_pipe(fds);
    assert_int_equal(ferry_loop_add(loop, -1, FERRY_READABLE, cb, NULL), -EBADF);
    assert_int_equal(ferry_loop_add(loop, fds[0], FERRY_HANGUP, cb, NULL), -EINVAL);
    assert_int_equal(ferry_loop_add(loop, fds[0], FERRY_READABLE, NULL, NULL), -EINVAL);
    assert_int_equal(ferry_loop_add(loop, fds[0], FERRY_READABLE, cb, NULL), 0);
    assert_int_equal(ferry_loop_add(loop, fds[0], FERRY_WRITABLE, cb, NULL), -EEXIST);
    assert_int_equal(ferry_loop_modify(loop, fds[1], FERRY_WRITABLE), -ENOENT);
    assert_int_equal(ferry_loop_remove(loop, fds[1]), -ENOENT);
    assert_int_equal(ferry_loop_remove(loop, fds[0]), 0);
    assert_int_equal(ferry_loop_remove(loop, fds[0]), -ENOENT);
    assert_int_equal(ferry_loop_defer(loop, NULL, NULL), -EINVAL);
    assert_null(ferry_loop_timer(loop, 1, NULL, NULL));
    ferry_timer_cancel(NULL);
    ferry_loop_free(loop);
    ferry_loop_free(NULL);
    close_pair(fds);
}

/* ---- timers ------------------------------------------------------------ */

static void check_elapsed(struct ferry_loop *loop, struct ferry_timer *timer, void *arg)
{
    uint64_t *start = arg;

    assert_true(ferry_loop_now(loop) - *start >= 30);
    record(30);
}

static void test_timers_fire_in_deadline_order(void **state)
{
    struct ferry_loop *loop = new_loop();
    uint64_t start = ferry_loop_now(loop);

    assert_non_null(ferry_loop_timer(loop, 30, check_elapsed, &start));
    assert_non_null(ferry_loop_timer(loop, 10, record_timer, (void *)10));
    assert_non_null(ferry_loop_timer(loop, 20, record_timer, (void *)20));
    assert_non_null(ferry_loop_timer(loop, 0, record_timer, (void *)0));
    assert_int_equal(ferry_loop_run(loop), 0);
    EXPECT_TRACE(0, 10, 20, 30);
    /* Fired timers stay allocated until the loop goes (ASan checks this). */
    ferry_loop_free(loop);
}

static void test_equal_deadlines_fire_in_creation_order(void **state)
{
    struct ferry_loop *loop = new_loop();
    struct ferry_timer *first = NULL;

    for (int i = 0; i < 8; i++) {
        struct ferry_timer *t = ferry_loop_timer(loop, 5, record_timer, (void *)(intptr_t)i);

        assert_non_null(t);
        if (i == 0)
            first = t;
    }
    /* Same deadline again (the cached clock has not moved): re-arming counts
     * as arming last. */
    ferry_timer_restart(first, 5);
    assert_int_equal(ferry_loop_run(loop), 0);
    EXPECT_TRACE(1, 2, 3, 4, 5, 6, 7, 0);
    ferry_loop_free(loop);
}

struct restart_ctx {
    struct ferry_timer *victim;
    int fired;
};

static void restart_victim(struct ferry_loop *loop, struct ferry_timer *timer, void *arg)
{
    struct restart_ctx *ctx = arg;

    record(0);
    assert_true(ferry_timer_active(ctx->victim));
    ferry_timer_restart(ctx->victim, 40);
    assert_false(ferry_timer_active(timer));
}

static void test_timer_restart(void **state)
{
    struct ferry_loop *loop = new_loop();
    struct restart_ctx ctx = { 0 };

    ctx.victim = ferry_loop_timer(loop, 10, record_timer, (void *)40);
    assert_non_null(ctx.victim);
    assert_non_null(ferry_loop_timer(loop, 20, record_timer, (void *)20));
    assert_non_null(ferry_loop_timer(loop, 0, restart_victim, &ctx));
    assert_int_equal(ferry_loop_run(loop), 0);
    EXPECT_TRACE(0, 20, 40);
    assert_false(ferry_timer_active(ctx.victim));

    /* A fired timer can be armed again. */
    ferry_timer_restart(ctx.victim, 0);
    assert_true(ferry_timer_active(ctx.victim));
    assert_int_equal(ferry_loop_run(loop), 0);
    EXPECT_TRACE(0, 20, 40, 40);
    ferry_timer_cancel(ctx.victim);
    ferry_loop_free(loop);
}

static void cancel_self(struct ferry_loop *loop, struct ferry_timer *timer, void *arg)
{
    record(1);
    ferry_timer_cancel(timer);
}

static void cancel_other(struct ferry_loop *loop, struct ferry_timer *timer, void *arg)
{
    struct ferry_timer **other = arg;

    record(2);
    ferry_timer_cancel(*other);
    *other = NULL;
}

struct rearm_ctx {
    int left;
    int pass_open;      /* set by the timer, cleared by a call deferred to the end of its pass */
};

static void close_pass(struct ferry_loop *loop, void *arg)
{
    struct rearm_ctx *ctx = arg;

    ctx->pass_open = 0;
}

static void rearm_three_times(struct ferry_loop *loop, struct ferry_timer *timer, void *arg)
{
    struct rearm_ctx *ctx = arg;

    record(3);
    /* A 0 ms re-arm must wait for the next pass, or this would never yield. */
    assert_false(ctx->pass_open);
    ctx->pass_open = 1;
    assert_int_equal(ferry_loop_defer(loop, close_pass, ctx), 0);
    if (--ctx->left > 0)
        ferry_timer_restart(timer, 0);
    else
        ferry_timer_cancel(timer);
}

static void test_timer_cancel(void **state)
{
    struct ferry_loop *loop = new_loop();
    struct ferry_timer *never = ferry_loop_timer(loop, 0, record_timer, (void *)99);
    struct ferry_timer *doomed;
    struct rearm_ctx rearm = { .left = 3 };

    ferry_timer_cancel(never);
    assert_non_null(ferry_loop_timer(loop, 0, cancel_self, NULL));
    /* Both due in the same pass; the first cancels the second. */
    assert_non_null(ferry_loop_timer(loop, 1, cancel_other, &doomed));
    doomed = ferry_loop_timer(loop, 1, record_timer, (void *)99);
    assert_non_null(doomed);
    assert_non_null(ferry_loop_timer(loop, 2, rearm_three_times, &rearm));

    assert_int_equal(ferry_loop_run(loop), 0);
    EXPECT_TRACE(1, 2, 3, 3, 3);
    assert_null(doomed);
    ferry_loop_free(loop);
}

/* ---- I/O --------------------------------------------------------------- */

static void drain(int fd)
{
    char buf[64];

    while (read(fd, buf, sizeof(buf)) > 0)
        ;
}

static void remove_self(struct ferry_loop *loop, int fd, unsigned events, void *arg)
{
    int *calls = arg;

    assert_true(events & FERRY_READABLE);
    ++*calls;
    assert_int_equal(ferry_loop_remove(loop, fd), 0);
    /* Closing right away is what callers do; the loop must not care. */
    close(fd);
}

static void test_remove_own_fd_in_callback(void **state)
{
    struct ferry_loop *loop = new_loop();
    int fds[2], calls = 0;

    make_pipe(fds);
    put_byte(fds[1]);
    assert_int_equal(ferry_loop_add(loop, fds[0], FERRY_READABLE, remove_self, &calls), 0);
    assert_int_equal(ferry_loop_run(loop), 0);
    assert_int_equal(calls, 1);
    close(fds[1]);
    ferry_loop_free(loop);
}

struct pair_ctx {
    int rfd[2];
    int first_calls, second_calls;
    int pass_ended;
};

static int other_fd(const struct pair_ctx *ctx, int fd)
{
    return fd == ctx->rfd[0] ? ctx->rfd[1] : ctx->rfd[0];
}

static void remove_other(struct ferry_loop *loop, int fd, unsigned events, void *arg)
{
    struct pair_ctx *ctx = arg;

    ctx->first_calls++;
    assert_int_equal(ferry_loop_remove(loop, other_fd(ctx, fd)), 0);
    assert_int_equal(ferry_loop_remove(loop, fd), 0);
}

static void test_removed_ready_fd_is_not_dispatched(void **state)
{
    struct ferry_loop *loop = new_loop();
    struct pair_ctx ctx = { 0 };
    int p1[2], p2[2];

    make_pipe(p1);
    make_pipe(p2);
    put_byte(p1[1]);
    put_byte(p2[1]);
    ctx.rfd[0] = p1[0];
    ctx.rfd[1] = p2[0];
    /* Both are ready in the first pass; whichever runs first removes the other. */
    assert_int_equal(ferry_loop_add(loop, p1[0], FERRY_READABLE, remove_other, &ctx), 0);
    assert_int_equal(ferry_loop_add(loop, p2[0], FERRY_READABLE, remove_other, &ctx), 0);
    assert_int_equal(ferry_loop_run(loop), 0);
    assert_int_equal(ctx.first_calls, 1);
    close_pair(p1);
    close_pair(p2);
    ferry_loop_free(loop);
}

static void mark_pass_end(struct ferry_loop *loop, void *arg)
{
    struct pair_ctx *ctx = arg;

    ctx->pass_ended = 1;
}

static void replacement(struct ferry_loop *loop, int fd, unsigned events, void *arg)
{
    struct pair_ctx *ctx = arg;

    /* The event reported before the swap belonged to the old watcher. */
    assert_true(ctx->pass_ended);
    ctx->second_calls++;
    drain(fd);
    assert_int_equal(ferry_loop_remove(loop, fd), 0);
}

static void replace_other(struct ferry_loop *loop, int fd, unsigned events, void *arg)
{
    struct pair_ctx *ctx = arg;
    int other = other_fd(ctx, fd);

    ctx->first_calls++;
    assert_int_equal(ferry_loop_remove(loop, other), 0);
    assert_int_equal(ferry_loop_add(loop, other, FERRY_READABLE, replacement, ctx), 0);
    assert_int_equal(ferry_loop_remove(loop, fd), 0);
    assert_int_equal(ferry_loop_defer(loop, mark_pass_end, ctx), 0);
}

static void test_readded_fd_gets_no_stale_event(void **state)
{
    struct ferry_loop *loop = new_loop();
    struct pair_ctx ctx = { 0 };
    int p1[2], p2[2];

    make_pipe(p1);
    make_pipe(p2);
    put_byte(p1[1]);
    put_byte(p2[1]);
    ctx.rfd[0] = p1[0];
    ctx.rfd[1] = p2[0];
    assert_int_equal(ferry_loop_add(loop, p1[0], FERRY_READABLE, replace_other, &ctx), 0);
    assert_int_equal(ferry_loop_add(loop, p2[0], FERRY_READABLE, replace_other, &ctx), 0);
    assert_int_equal(ferry_loop_run(loop), 0);
    assert_int_equal(ctx.first_calls, 1);
    assert_int_equal(ctx.second_calls, 1);
    close_pair(p1);
    close_pair(p2);
    ferry_loop_free(loop);
}

enum { EV_IO = 1, EV_TIMER, EV_DEFER, EV_DEFER_LATER };

static void deferred_later(struct ferry_loop *loop, void *arg)
{
    record(EV_DEFER_LATER);
}

static void deferred(struct ferry_loop *loop, void *arg)
{
    record(EV_DEFER);
    assert_int_equal(ferry_loop_defer(loop, deferred_later, NULL), 0);
}

static void io_then_schedule(struct ferry_loop *loop, int fd, unsigned events, void *arg)
{
    record(EV_IO);
    /* Deferred first, timer second: the phases, not the call order, decide. */
    assert_int_equal(ferry_loop_defer(loop, deferred, NULL), 0);
    assert_non_null(ferry_loop_timer(loop, 0, record_timer, (void *)EV_TIMER));
    assert_int_equal(ferry_loop_remove(loop, fd), 0);
}

static void test_defer_runs_after_io_and_timers(void **state)
{
    struct ferry_loop *loop = new_loop();
    int fds[2];

    make_pipe(fds);
    put_byte(fds[1]);
    assert_int_equal(ferry_loop_add(loop, fds[0], FERRY_READABLE, io_then_schedule, NULL), 0);
    assert_int_equal(ferry_loop_run(loop), 0);
    EXPECT_TRACE(EV_IO, EV_TIMER, EV_DEFER, EV_DEFER_LATER);
    close_pair(fds);
    ferry_loop_free(loop);
}

static void free_on_defer(struct ferry_loop *loop, void *arg)
{
    free(arg);
}

static void test_free_runs_pending_defers(void **state)
{
    struct ferry_loop *loop = new_loop();

    /* Leak-checked under ASan: the object is freed by the deferred call. */
    assert_int_equal(ferry_loop_defer(loop, free_on_defer, malloc(16)), 0);
    assert_non_null(ferry_loop_timer(loop, 1000, record_timer, (void *)1));
    ferry_loop_free(loop);
    assert_int_equal(ntrace, 0);
}

struct both_ctx {
    int calls;
    unsigned events;
};

static void note_events(struct ferry_loop *loop, int fd, unsigned events, void *arg)
{
    struct both_ctx *ctx = arg;

    ctx->calls++;
    ctx->events = events;
    ferry_loop_stop(loop);
}

static void test_one_callback_per_fd_and_modify(void **state)
{
    struct ferry_loop *loop = new_loop();
    struct both_ctx ctx = { 0 };
    int sv[2];

    make_socketpair(sv);
    put_byte(sv[1]);
    assert_int_equal(ferry_loop_add(loop, sv[0], FERRY_READABLE | FERRY_WRITABLE, note_events, &ctx), 0);
    assert_int_equal(ferry_loop_run(loop), 0);
    assert_int_equal(ctx.calls, 1);
    assert_int_equal(ctx.events, FERRY_READABLE | FERRY_WRITABLE);

    assert_int_equal(ferry_loop_modify(loop, sv[0], FERRY_WRITABLE), 0);
    assert_int_equal(ferry_loop_run(loop), 0);
    assert_int_equal(ctx.calls, 2);
    assert_int_equal(ctx.events, FERRY_WRITABLE);

    assert_int_equal(ferry_loop_modify(loop, sv[0], FERRY_READABLE), 0);
    assert_int_equal(ferry_loop_run(loop), 0);
    assert_int_equal(ctx.calls, 3);
    assert_int_equal(ctx.events, FERRY_READABLE);

    assert_int_equal(ferry_loop_remove(loop, sv[0]), 0);
    close_pair(sv);
    ferry_loop_free(loop);
}

static void stop_loop(struct ferry_loop *loop, struct ferry_timer *timer, void *arg)
{
    ferry_loop_stop(loop);
}

static void test_stop(void **state)
{
    struct ferry_loop *loop = new_loop();
    struct both_ctx ctx = { 0 };
    int fds[2];

    /* Never drained, so the watcher is ready on every pass: only stop ends run. */
    make_pipe(fds);
    put_byte(fds[1]);
    assert_int_equal(ferry_loop_add(loop, fds[0], FERRY_READABLE, note_events, &ctx), 0);
    assert_int_equal(ferry_loop_run(loop), 0);
    assert_int_equal(ctx.calls, 1);
    /* The stop request is consumed: the next run goes on until stopped again. */
    assert_int_equal(ferry_loop_run(loop), 0);
    assert_int_equal(ctx.calls, 2);

    /* Stop from a timer with an idle watcher. */
    drain(fds[0]);
    assert_non_null(ferry_loop_timer(loop, 1, stop_loop, NULL));
    assert_int_equal(ferry_loop_run(loop), 0);
    assert_int_equal(ctx.calls, 2);

    assert_int_equal(ferry_loop_remove(loop, fds[0]), 0);
    close_pair(fds);
    ferry_loop_free(loop);
}

static void expect_hangup(struct ferry_loop *loop, int fd, unsigned events, void *arg)
{
    struct both_ctx *ctx = arg;
    char c;

    ctx->calls++;
    ctx->events = events;
    assert_int_equal(read(fd, &c, 1), 0);
    assert_int_equal(ferry_loop_remove(loop, fd), 0);
}

static void test_hangup_when_peer_closes(void **state)
{
    struct ferry_loop *loop = new_loop();
    struct both_ctx ctx = { 0 };
    int sv[2], fds[2];

    make_socketpair(sv);
    assert_int_equal(ferry_loop_add(loop, sv[0], FERRY_READABLE, expect_hangup, &ctx), 0);
    close(sv[1]);
    assert_int_equal(ferry_loop_run(loop), 0);
    assert_int_equal(ctx.calls, 1);
    assert_int_equal(ctx.events & (FERRY_HANGUP | FERRY_READABLE), FERRY_HANGUP | FERRY_READABLE);
    close(sv[0]);

    ctx = (struct both_ctx){ 0 };
    make_pipe(fds);
    assert_int_equal(ferry_loop_add(loop, fds[0], FERRY_READABLE, expect_hangup, &ctx), 0);
    close(fds[1]);
    assert_int_equal(ferry_loop_run(loop), 0);
    assert_int_equal(ctx.calls, 1);
    assert_true(ctx.events & FERRY_HANGUP);
    close(fds[0]);

    /* Interest 0 means "deliver nothing", hang-ups included. */
    ctx = (struct both_ctx){ 0 };
    make_socketpair(sv);
    assert_int_equal(ferry_loop_add(loop, sv[0], FERRY_READABLE, expect_hangup, &ctx), 0);
    assert_int_equal(ferry_loop_modify(loop, sv[0], 0), 0);
    close(sv[1]);
    assert_non_null(ferry_loop_timer(loop, 20, stop_loop, NULL));
    assert_int_equal(ferry_loop_run(loop), 0);
    assert_int_equal(ctx.calls, 0);
    assert_int_equal(ferry_loop_remove(loop, sv[0]), 0);
    close(sv[0]);

    ferry_loop_free(loop);
}

#define MANY_PAIRS 1100

struct many_ctx {
    struct ferry_timer *safety;
    int done;
};

static void read_and_forget(struct ferry_loop *loop, int fd, unsigned events, void *arg)
{
    struct many_ctx *ctx = arg;
    char c;

    assert_int_equal(read(fd, &c, 1), 1);
    assert_int_equal(ferry_loop_remove(loop, fd), 0);
    if (++ctx->done == MANY_PAIRS) {
        ferry_timer_cancel(ctx->safety);
        ctx->safety = NULL;
    }
}

static void test_many_fds(void **state)
{
    rlim_t need = 2 * MANY_PAIRS + 64;
    struct rlimit rl;
    struct ferry_loop *loop;
    struct many_ctx ctx = { 0 };
    int (*pairs)[2];
    int highest = -1;

    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < need) {
        rl.rlim_cur = rl.rlim_max < need ? rl.rlim_max : need;
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    if (rl.rlim_cur < need)
        skip();

    loop = new_loop();
    pairs = calloc(MANY_PAIRS, sizeof(*pairs));
    assert_non_null(pairs);
    for (int i = 0; i < MANY_PAIRS; i++) {
        make_socketpair(pairs[i]);
        put_byte(pairs[i][1]);
        assert_int_equal(ferry_loop_add(loop, pairs[i][0], FERRY_READABLE, read_and_forget, &ctx), 0);
        if (pairs[i][0] > highest)
            highest = pairs[i][0];
    }
    assert_true(highest > 1024);
    ctx.safety = ferry_loop_timer(loop, FIX_SAFETY_MS, on_safety, NULL);
    assert_non_null(ctx.safety);
    assert_int_equal(ferry_loop_run(loop), 0);
    assert_int_equal(ctx.done, MANY_PAIRS);

    for (int i = 0; i < MANY_PAIRS; i++)
        close_pair(pairs[i]);
    free(pairs);
    ferry_loop_free(loop);
}

/* ---- wakeup ------------------------------------------------------------ */

struct wake_ctx {
    struct ferry_timer *safety;
    int woken;
};

static void on_wake(struct ferry_loop *loop, void *arg)
{
    struct wake_ctx *ctx = arg;

    ctx->woken++;
    /* With the safety timer gone nothing is left, so run returns. */
    ferry_timer_cancel(ctx->safety);
    ctx->safety = NULL;
}

#define WAKE_THREADS 4
#define WAKES_PER_THREAD 1000

static void *wake_from_thread(void *arg)
{
    int errno_kept = 1;

    for (int i = 0; i < WAKES_PER_THREAD; i++) {
        errno = EDOM;
        ferry_loop_wakeup(arg);
        errno_kept &= errno == EDOM;
    }
    return (void *)(intptr_t)errno_kept;
}

/* Whether an fd can be watched does not depend on the events asked for
 * first: epoll refuses a regular file (EPERM) with or without events, poll
 * takes it either way.  (Asked with none, the epoll backend once said yes
 * and failed at the first modify: ferry exec's stdin from a file hung.) */
static void test_unwatchable_fd_is_said_at_add(void **state)
{
    struct ferry_loop *loop;
    char path[] = "/tmp/ferry-test-loop-XXXXXX";
    int fd = mkstemp(path), with_none, with_read;
    (void)state;

    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(ferry_loop_new(&loop), 0);
    with_none = ferry_loop_add(loop, fd, 0, never_io, NULL);
    if (with_none == 0)
        assert_int_equal(ferry_loop_remove(loop, fd), 0);
    with_read = ferry_loop_add(loop, fd, FERRY_READABLE, never_io, NULL);
    if (with_read == 0)
        assert_int_equal(ferry_loop_remove(loop, fd), 0);
    assert_int_equal(with_none, with_read);
    ferry_loop_free(loop);
    close(fd);
}

static void test_wakeup_from_threads(void **state)
{
    struct ferry_loop *loop = new_loop();
    struct wake_ctx ctx = { 0 };
    pthread_t threads[WAKE_THREADS];

    ctx.safety = ferry_loop_timer(loop, FIX_SAFETY_MS, on_safety, NULL);
    assert_non_null(ctx.safety);
    assert_int_equal(ferry_loop_set_wakeup(loop, on_wake, &ctx), 0);
    for (int i = 0; i < WAKE_THREADS; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, wake_from_thread, loop), 0);
    assert_int_equal(ferry_loop_run(loop), 0);
    assert_true(ctx.woken >= 1);
    for (int i = 0; i < WAKE_THREADS; i++) {
        void *kept = NULL;

        assert_int_equal(pthread_join(threads[i], &kept), 0);
        assert_true((intptr_t)kept);
    }
    ferry_loop_free(loop);
}

static struct ferry_loop *signal_loop;
static volatile sig_atomic_t signal_errno_kept;

static void on_sigusr1(int sig)
{
    int saved = errno;

    errno = EDOM;
    ferry_loop_wakeup(signal_loop);
    signal_errno_kept = errno == EDOM;
    errno = saved;
}

static void raise_sigusr1(struct ferry_loop *loop, struct ferry_timer *timer, void *arg)
{
    assert_int_equal(raise(SIGUSR1), 0);
}

static void *signal_main_thread(void *arg)
{
    pthread_kill(*(pthread_t *)arg, SIGUSR1);
    return NULL;
}

static void test_wakeup_from_signal_handler(void **state)
{
    struct sigaction sa = { .sa_handler = on_sigusr1 }, old;
    struct wake_ctx ctx = { 0 };
    pthread_t self = pthread_self(), killer;

    signal_loop = new_loop();
    sigemptyset(&sa.sa_mask);
    /* No SA_RESTART: the backend wait must treat EINTR as "go round again". */
    assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
    assert_int_equal(ferry_loop_set_wakeup(signal_loop, on_wake, &ctx), 0);

    /* From a handler running on the loop's own thread, inside a callback. */
    ctx.safety = ferry_loop_timer(signal_loop, FIX_SAFETY_MS, on_safety, NULL);
    assert_non_null(ferry_loop_timer(signal_loop, 0, raise_sigusr1, NULL));
    assert_int_equal(ferry_loop_run(signal_loop), 0);
    assert_int_equal(ctx.woken, 1);
    assert_true(signal_errno_kept);

    /* Sent from another thread, most likely while the loop is in its wait. */
    ctx.safety = ferry_loop_timer(signal_loop, FIX_SAFETY_MS, on_safety, NULL);
    signal_errno_kept = 0;
    assert_int_equal(pthread_create(&killer, NULL, signal_main_thread, &self), 0);
    assert_int_equal(ferry_loop_run(signal_loop), 0);
    assert_int_equal(pthread_join(killer, NULL), 0);
    assert_int_equal(ctx.woken, 2);
    assert_true(signal_errno_kept);

    assert_int_equal(sigaction(SIGUSR1, &old, NULL), 0);
    ferry_loop_free(signal_loop);
    signal_loop = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_run_returns_when_empty, reset_trace),
        cmocka_unit_test_setup(test_argument_errors, reset_trace),
        cmocka_unit_test_setup(test_timers_fire_in_deadline_order, reset_trace),
        cmocka_unit_test_setup(test_equal_deadlines_fire_in_creation_order, reset_trace),
        cmocka_unit_test_setup(test_timer_restart, reset_trace),
        cmocka_unit_test_setup(test_timer_cancel, reset_trace),
        cmocka_unit_test_setup(test_remove_own_fd_in_callback, reset_trace),
        cmocka_unit_test_setup(test_removed_ready_fd_is_not_dispatched, reset_trace),
        cmocka_unit_test_setup(test_readded_fd_gets_no_stale_event, reset_trace),
        cmocka_unit_test_setup(test_defer_runs_after_io_and_timers, reset_trace),
        cmocka_unit_test_setup(test_free_runs_pending_defers, reset_trace),
        cmocka_unit_test_setup(test_one_callback_per_fd_and_modify, reset_trace),
        cmocka_unit_test_setup(test_stop, reset_trace),
        cmocka_unit_test_setup(test_hangup_when_peer_closes, reset_trace),
        cmocka_unit_test_setup(test_many_fds, reset_trace),
        cmocka_unit_test_setup(test_unwatchable_fd_is_said_at_add, reset_trace),
        cmocka_unit_test_setup(test_wakeup_from_threads, reset_trace),
        cmocka_unit_test_setup(test_wakeup_from_signal_handler, reset_trace),
    };

    return cmocka_run_group_tests_name(ferry_backend_name(), tests, NULL, NULL);
}
