/*
 * loop.c - the backend-independent half of the event loop: watchers indexed
 * by fd, the timer heap, deferred calls, the wakeup channel and the run loop.
 * loop.h states the contract; loop_int.h is the seam to the I/O backends.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/eventfd.h>
#endif

#include "ferry/loop.h"
#include "clock.h"
#include "list.h"
#include "loop_int.h"

#define INITIAL_CAP    64
#define TIMER_INACTIVE SIZE_MAX
#define IO_EVENTS      (FERRY_READABLE | FERRY_WRITABLE)

struct watcher {
    ferry_io_cb *cb;    /* NULL: the fd is not watched */
    void *arg;
    unsigned events;
    uint32_t gen;       /* distinguishes successive watchers of one fd */
};

struct ferry_timer {
    struct ferry_loop *loop;
    ferry_timer_cb *cb;
    void *arg;
    uint64_t deadline;
    uint64_t seq;                       /* tie-break: equal deadlines fire in arming order */
    size_t heap_idx;                    /* TIMER_INACTIVE when not armed */
    struct list_node link;              /* in loop->timers: every timer, armed or not */
};

struct deferred {
    ferry_defer_cb *cb;
    void *arg;
    struct deferred *next;
};

struct ferry_loop {
    struct ferry_backend *backend;

    struct watcher *watchers;           /* indexed by fd */
    size_t watchers_cap;
    size_t nwatched;                    /* includes the internal wakeup fd */
    uint32_t next_gen;

    struct ferry_ready *ready;          /* filled by the backend each iteration */
    size_t ready_cap;

    struct ferry_timer **heap;
    size_t nheap;
    size_t heap_cap;                    /* >= ntimers, so arming never allocates */
    size_t ntimers;
    struct list_node timers;            /* every timer, for ferry_loop_free */
    uint64_t next_seq;

    struct deferred *defer_head, *defer_tail;

    uint64_t now;
    bool stop;

    void *slot;                         /* ferry__loop_slot: libferry's own per-loop state */
    void (*slot_release)(void *slot);

    int wake_rfd, wake_wfd;             /* the same eventfd on Linux */
    ferry_defer_cb *wake_cb;
    void *wake_arg;
};

/* ---- watchers ---------------------------------------------------------- */

static int reserve_watchers(struct ferry_loop *loop, int fd)
{
    size_t need = (size_t)fd + 1;
    size_t cap = loop->watchers_cap ? loop->watchers_cap : INITIAL_CAP;
    struct watcher *w;

    if (need <= loop->watchers_cap)
        return 0;
    while (cap < need)
        cap *= 2;
    w = realloc(loop->watchers, cap * sizeof(*w));
    if (!w)
        return -ENOMEM;
    memset(w + loop->watchers_cap, 0, (cap - loop->watchers_cap) * sizeof(*w));
    loop->watchers = w;
    loop->watchers_cap = cap;
    return 0;
}

static struct watcher *lookup(struct ferry_loop *loop, int fd)
{
    if (fd < 0 || (size_t)fd >= loop->watchers_cap || !loop->watchers[fd].cb)
        return NULL;
    return &loop->watchers[fd];
}

int ferry_loop_add(struct ferry_loop *loop, int fd, unsigned events, ferry_io_cb *cb, void *arg)
{
    int rc;

    if (fd < 0)
        return -EBADF;
    if (!cb || (events & ~IO_EVENTS))
        return -EINVAL;
    rc = reserve_watchers(loop, fd);
    if (rc < 0)
        return rc;
    if (loop->watchers[fd].cb)
        return -EEXIST;
    rc = ferry_backend_add(loop->backend, fd, events);
    if (rc < 0)
        return rc;
    loop->watchers[fd] = (struct watcher){
        .cb = cb, .arg = arg, .events = events, .gen = ++loop->next_gen,
    };
    loop->nwatched++;
    return 0;
}

int ferry_loop_modify(struct ferry_loop *loop, int fd, unsigned events)
{
    struct watcher *w = lookup(loop, fd);
    int rc;

    if (!w)
        return -ENOENT;
    if (events & ~IO_EVENTS)
        return -EINVAL;
    rc = ferry_backend_modify(loop->backend, fd, w->events, events);
    if (rc < 0)
        return rc;
    w->events = events;
    return 0;
}

int ferry_loop_remove(struct ferry_loop *loop, int fd)
{
    struct watcher *w = lookup(loop, fd);
    int rc;

    if (!w || fd == loop->wake_rfd)
        return -ENOENT;
    rc = ferry_backend_remove(loop->backend, fd, w->events);
    /* Forget the watcher even if the kernel complained: the caller is about
     * to close fd and must never see its callback again. */
    *w = (struct watcher){ 0 };
    loop->nwatched--;
    return rc;
}

/* Grown only between passes, never while dispatch_io walks the array. */
static void reserve_ready(struct ferry_loop *loop)
{
    size_t cap = loop->ready_cap;
    struct ferry_ready *r;

    if (cap >= loop->nwatched)
        return;
    while (cap < loop->nwatched)
        cap *= 2;
    r = realloc(loop->ready, cap * sizeof(*r));
    /* On failure keep the smaller batch: level triggering reports the rest
     * on the next pass. */
    if (r) {
        loop->ready = r;
        loop->ready_cap = cap;
    }
}

static void dispatch_io(struct ferry_loop *loop, int n)
{
    /* Record which watcher each event was meant for before any callback runs:
     * a callback may remove a later fd of this batch and watch it again with
     * a new callback, which must not receive the old event. */
    for (int i = 0; i < n; i++) {
        struct ferry_ready *r = &loop->ready[i];
        struct watcher *w = lookup(loop, r->fd);

        if (w)
            r->gen = w->gen;
        else
            r->events = 0;
    }

    for (int i = 0; i < n; i++) {
        struct ferry_ready *r = &loop->ready[i];
        struct watcher *w = lookup(loop, r->fd);
        unsigned ev;

        if (!w || w->gen != r->gen || !w->events)
            continue;
        /* The interest set may have shrunk since the wait returned. */
        ev = r->events & (w->events | FERRY_HANGUP);
        if (ev & FERRY_HANGUP)
            ev |= FERRY_READABLE;
        if (ev)
            w->cb(loop, r->fd, ev, w->arg);
    }
}

/* ---- timers ------------------------------------------------------------ */

static bool timer_before(const struct ferry_timer *a, const struct ferry_timer *b)
{
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static void heap_place(struct ferry_loop *loop, size_t i, struct ferry_timer *t)
{
    loop->heap[i] = t;
    t->heap_idx = i;
}

static void sift_up(struct ferry_loop *loop, size_t i)
{
    struct ferry_timer *t = loop->heap[i];

    while (i > 0) {
        size_t parent = (i - 1) / 2;

        if (!timer_before(t, loop->heap[parent]))
            break;
        heap_place(loop, i, loop->heap[parent]);
        i = parent;
    }
    heap_place(loop, i, t);
}

static void sift_down(struct ferry_loop *loop, size_t i)
{
    struct ferry_timer *t = loop->heap[i];

    for (;;) {
        size_t child = 2 * i + 1;

        if (child >= loop->nheap)
            break;
        if (child + 1 < loop->nheap && timer_before(loop->heap[child + 1], loop->heap[child]))
            child++;
        if (!timer_before(loop->heap[child], t))
            break;
        heap_place(loop, i, loop->heap[child]);
        i = child;
    }
    heap_place(loop, i, t);
}

static void heap_remove(struct ferry_loop *loop, struct ferry_timer *t)
{
    size_t i = t->heap_idx;
    struct ferry_timer *last = loop->heap[--loop->nheap];

    t->heap_idx = TIMER_INACTIVE;
    if (last == t)
        return;
    heap_place(loop, i, last);
    if (i > 0 && timer_before(last, loop->heap[(i - 1) / 2]))
        sift_up(loop, i);
    else
        sift_down(loop, i);
}

static void arm(struct ferry_timer *t, uint64_t ms)
{
    struct ferry_loop *loop = t->loop;

    if (t->heap_idx != TIMER_INACTIVE)
        heap_remove(loop, t);
    t->deadline = ms > UINT64_MAX - loop->now ? UINT64_MAX : loop->now + ms;
    t->seq = loop->next_seq++;
    heap_place(loop, loop->nheap++, t);
    sift_up(loop, t->heap_idx);
}

struct ferry_timer *ferry_loop_timer(struct ferry_loop *loop, uint64_t ms, ferry_timer_cb *cb, void *arg)
{
    struct ferry_timer *t;

    if (!cb)
        return NULL;
    if (loop->ntimers == loop->heap_cap) {
        size_t cap = loop->heap_cap ? loop->heap_cap * 2 : INITIAL_CAP;
        struct ferry_timer **heap = realloc(loop->heap, cap * sizeof(*heap));

        if (!heap)
            return NULL;
        loop->heap = heap;
        loop->heap_cap = cap;
    }
    t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->loop = loop;
    t->cb = cb;
    t->arg = arg;
    t->heap_idx = TIMER_INACTIVE;
    list_push(&loop->timers, &t->link);
    loop->ntimers++;
    arm(t, ms);
    return t;
}

void ferry_timer_restart(struct ferry_timer *timer, uint64_t ms)
{
    if (timer)
        arm(timer, ms);
}

void ferry_timer_cancel(struct ferry_timer *timer)
{
    struct ferry_loop *loop;

    if (!timer)
        return;
    loop = timer->loop;
    if (timer->heap_idx != TIMER_INACTIVE)
        heap_remove(loop, timer);
    list_unlink(&timer->link);
    loop->ntimers--;
    free(timer);
}

bool ferry_timer_active(const struct ferry_timer *timer)
{
    return timer && timer->heap_idx != TIMER_INACTIVE;
}

static void run_timers(struct ferry_loop *loop)
{
    /* Timers armed by this pass's own callbacks wait for the next pass, so a
     * callback re-arming with 0 ms cannot keep this loop from returning. */
    uint64_t horizon = loop->next_seq;

    while (loop->nheap > 0) {
        struct ferry_timer *t = loop->heap[0];

        if (t->deadline > loop->now || t->seq >= horizon)
            break;
        heap_remove(loop, t);
        /* t may be freed by its callback: do not touch it afterwards. */
        t->cb(loop, t, t->arg);
    }
}

static int next_timeout(const struct ferry_loop *loop)
{
    uint64_t now, deadline;

    if (loop->defer_head || loop->stop)
        return 0;
    if (loop->nheap == 0)
        return -1;
    now = ferry__now_ms();
    deadline = loop->heap[0]->deadline;
    if (deadline <= now)
        return 0;
    return deadline - now > INT_MAX ? INT_MAX : (int)(deadline - now);
}

/* ---- deferred calls ---------------------------------------------------- */

int ferry_loop_defer(struct ferry_loop *loop, ferry_defer_cb *cb, void *arg)
{
    struct deferred *d;

    if (!cb)
        return -EINVAL;
    d = malloc(sizeof(*d));
    if (!d)
        return -ENOMEM;
    *d = (struct deferred){ .cb = cb, .arg = arg };
    if (loop->defer_tail)
        loop->defer_tail->next = d;
    else
        loop->defer_head = d;
    loop->defer_tail = d;
    return 0;
}

static void run_deferred(struct ferry_loop *loop)
{
    /* Detach the queue first: calls deferred from here run next iteration. */
    struct deferred *d = loop->defer_head;

    loop->defer_head = loop->defer_tail = NULL;
    while (d) {
        struct deferred *next = d->next;

        d->cb(loop, d->arg);
        free(d);
        d = next;
    }
}

/* ---- wakeup ------------------------------------------------------------ */

static int open_wakeup(struct ferry_loop *loop)
{
#ifdef __linux__
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

    if (fd < 0)
        return -errno;
    loop->wake_rfd = loop->wake_wfd = fd;
    return 0;
#else
    int fds[2] = { -1, -1 };
    int rc = 0;

    if (pipe(fds) < 0)
        return -errno;
    for (int i = 0; i < 2; i++) {
        if (fcntl(fds[i], F_SETFD, FD_CLOEXEC) < 0 || fcntl(fds[i], F_SETFL, O_NONBLOCK) < 0) {
            rc = -errno;
            close(fds[0]);
            close(fds[1]);
            return rc;
        }
    }
    loop->wake_rfd = fds[0];
    loop->wake_wfd = fds[1];
    return 0;
#endif
}

static void on_wakeup(struct ferry_loop *loop, int fd, unsigned events, void *arg)
{
    uint64_t drain[16];

    for (;;) {
        ssize_t n = read(fd, drain, sizeof(drain));

        if (n > 0 || (n < 0 && errno == EINTR))
            continue;
        break;
    }
    if (loop->wake_cb)
        loop->wake_cb(loop, loop->wake_arg);
}

int ferry_loop_set_wakeup(struct ferry_loop *loop, ferry_defer_cb *cb, void *arg)
{
    loop->wake_cb = cb;
    loop->wake_arg = arg;
    return 0;
}

void ferry_loop_wakeup(struct ferry_loop *loop)
{
    int saved_errno = errno;
    uint64_t one = 1;
    ssize_t n;

    /* Only write(2) here: this runs in signal handlers and other threads.  A
     * full pipe or saturated eventfd already guarantees a wakeup, so a failed
     * write needs no retry. */
    do {
        n = write(loop->wake_wfd, &one, sizeof(one));
    } while (n < 0 && errno == EINTR);
    errno = saved_errno;
}

/* ---- the loop ---------------------------------------------------------- */

int ferry_loop_new(struct ferry_loop **out)
{
    struct ferry_loop *loop = calloc(1, sizeof(*loop));
    int rc = -ENOMEM;

    if (!loop)
        goto fail;
    loop->wake_rfd = loop->wake_wfd = -1;
    list_init(&loop->timers);
    loop->ready = malloc(INITIAL_CAP * sizeof(*loop->ready));
    if (!loop->ready)
        goto fail;
    loop->ready_cap = INITIAL_CAP;
    rc = ferry_backend_init(&loop->backend);
    if (rc < 0)
        goto fail;
    rc = open_wakeup(loop);
    if (rc < 0)
        goto fail;
    rc = ferry_loop_add(loop, loop->wake_rfd, FERRY_READABLE, on_wakeup, NULL);
    if (rc < 0)
        goto fail;
    loop->now = ferry__now_ms();
    *out = loop;
    return 0;

fail:
    ferry_loop_free(loop);
    *out = NULL;
    return rc;
}

void ferry__loop_forget_after_fork(struct ferry_loop *loop)
{
    ferry_backend_forget(loop->backend);
    if (loop->wake_wfd >= 0 && loop->wake_wfd != loop->wake_rfd)
        close(loop->wake_wfd);
    if (loop->wake_rfd >= 0)
        close(loop->wake_rfd);
    loop->wake_rfd = loop->wake_wfd = -1;
}

void ferry_loop_free(struct ferry_loop *loop)
{
    if (!loop)
        return;
    /* The slot's owner winds its state down while the loop still works:
     * what it defers (frees) runs just below. */
    if (loop->slot_release) {
        void (*release)(void *) = loop->slot_release;

        loop->slot_release = NULL;
        release(loop->slot);
    }
    /* Deferred calls are where callers free objects that callbacks may still
     * reference; dropping them here would leak those objects. */
    while (loop->defer_head)
        run_deferred(loop);
    while (!list_empty(&loop->timers)) {
        struct list_node *n = loop->timers.next;

        list_unlink(n);
        free(list_entry(n, struct ferry_timer, link));
    }
    if (loop->backend)
        ferry_backend_free(loop->backend);
    if (loop->wake_wfd >= 0 && loop->wake_wfd != loop->wake_rfd)
        close(loop->wake_wfd);
    if (loop->wake_rfd >= 0)
        close(loop->wake_rfd);
    free(loop->heap);
    free(loop->ready);
    free(loop->watchers);
    free(loop);
}

void *ferry__loop_slot(const struct ferry_loop *loop)
{
    return loop->slot;
}

void ferry__loop_set_slot(struct ferry_loop *loop, void *slot, void (*release)(void *slot))
{
    loop->slot = slot;
    loop->slot_release = slot ? release : NULL;
}

static bool has_work(const struct ferry_loop *loop)
{
    /* The wakeup fd alone does not keep the loop alive. */
    return loop->nwatched > 1 || loop->nheap > 0 || loop->defer_head;
}

int ferry_loop_run(struct ferry_loop *loop)
{
    int rc = 0;

    loop->now = ferry__now_ms();
    while (!loop->stop && has_work(loop)) {
        int n;

        reserve_ready(loop);
        n = ferry_backend_wait(loop->backend, loop->ready,
                               loop->ready_cap > INT_MAX ? INT_MAX : (int)loop->ready_cap,
                               next_timeout(loop));
        if (n < 0) {
            rc = n;
            break;
        }
        loop->now = ferry__now_ms();
        dispatch_io(loop, n);
        run_timers(loop);
        run_deferred(loop);
    }
    loop->stop = false;
    return rc;
}

void ferry_loop_stop(struct ferry_loop *loop)
{
    loop->stop = true;
}

uint64_t ferry_loop_now(const struct ferry_loop *loop)
{
    return loop->now;
}
