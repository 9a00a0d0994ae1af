/*
 * model_thread.c - FERRY_MODEL_THREAD: a thread per connection.
 *
 * Threads are joinable and tracked in a list: a finished thread marks its
 * entry done and wakes the acceptor, which joins it.  No thread outlives
 * ferry_server_run(), so the server can be freed the moment it returns.
 * After the grace period, blocking connections still open are shut down
 * (their reads and writes fail at once); event-style connections run their
 * own grace timer on their private loop.
 */
#include "acceptor.h"
#include "conn_int.h"
#include "stop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ferry/error.h"
#include "ferry/log.h"

struct conn_thread {
    struct thread_model *tm;
    struct listener *l;
    int fd;                 /* valid while fd_open (under tm->mu) */
    int fd_open;
    int done;
    pthread_t tid;
    char peer[FERRY_ADDRSTRLEN];
    struct list_node link;  /* in tm->threads, or a reaper's local list */
};

struct thread_model {
    struct acceptor a;
    pthread_mutex_t mu;           /* guards the list, fd_open and done */
    struct list_node threads;     /* struct conn_thread.link */
    size_t nthreads;
};

static void unlink_thread(struct thread_model *tm, struct conn_thread *ct)
{
    list_unlink(&ct->link);
    tm->nthreads--;
}

/* Blocking handlers close their fd inside the connection code; forget it
 * first, so a forced shutdown can never hit a reused descriptor number. */
static void forget_fd(void *arg)
{
    struct conn_thread *ct = arg;
    pthread_mutex_lock(&ct->tm->mu);
    ct->fd_open = 0;
    pthread_mutex_unlock(&ct->tm->mu);
}

static void *thread_main(void *arg)
{
    struct conn_thread *ct = arg;
    struct thread_model *tm = ct->tm;
    struct ferry_server *s = tm->a.server;

    if (ferry__handler_is_event(&ct->l->h)) {
        forget_fd(ct);   /* the private loop has its own grace handling */
        ferry__conn_run_private(s, ct->l, ct->fd, ct->peer);
    } else {
        ferry__conn_run_blocking(s, ct->l, ct->fd, ct->peer, forget_fd, ct);
    }
    pthread_mutex_lock(&tm->mu);
    ct->done = 1;
    pthread_mutex_unlock(&tm->mu);
    ferry_loop_wakeup(tm->a.loop);
    return NULL;
}

/* On the acceptor's thread, after a wakeup: join the threads that ended. */
static void reap_threads(struct ferry_loop *loop, void *arg)
{
    struct thread_model *tm = arg;
    struct list_node finished, *n, *tmp;
    (void)loop;

    list_init(&finished);
    pthread_mutex_lock(&tm->mu);
    list_for_each_safe(n, tmp, &tm->threads) {
        struct conn_thread *ct = list_entry(n, struct conn_thread, link);
        if (ct->done) {
            unlink_thread(tm, ct);
            list_push(&finished, &ct->link);
        }
    }
    pthread_mutex_unlock(&tm->mu);

    list_for_each_safe(n, tmp, &finished) {
        struct conn_thread *ct = list_entry(n, struct conn_thread, link);
        pthread_join(ct->tid, NULL);
        free(ct);
    }
    ferry__acceptor_check_done(&tm->a);
}

static void start_thread(struct acceptor *a, struct listener *l, int fd, const char *peer)
{
    struct thread_model *tm = a->model;
    struct conn_thread *ct = calloc(1, sizeof *ct);
    int r;

    if (!ct) {
        r = -ENOMEM;
        goto fail;
    }
    ct->tm = tm;
    ct->l = l;
    ct->fd = fd;
    ct->fd_open = 1;
    snprintf(ct->peer, sizeof ct->peer, "%s", peer);

    pthread_mutex_lock(&tm->mu);
    r = -pthread_create(&ct->tid, NULL, thread_main, ct);
    if (r == 0) {
        list_push(&tm->threads, &ct->link);
        tm->nthreads++;
    }
    pthread_mutex_unlock(&tm->mu);
    if (r < 0)
        goto fail;
    return;

fail:
    ferry_log_warn("cannot start a thread for %s: %s", peer, ferry_strerror(r));
    free(ct);
    ferry__slot_release(&a->server->slots, a->server->slots.unauth_capped, fd);   /* before the close */
    close(fd);
}

static size_t live_threads(struct acceptor *a)
{
    struct thread_model *tm = a->model;
    size_t n;
    pthread_mutex_lock(&tm->mu);
    n = tm->nthreads;
    pthread_mutex_unlock(&tm->mu);
    return n;
}

static void force_threads(struct acceptor *a)
{
    struct thread_model *tm = a->model;
    struct list_node *n;

    pthread_mutex_lock(&tm->mu);
    list_for_each(n, &tm->threads) {
        struct conn_thread *ct = list_entry(n, struct conn_thread, link);
        if (ct->fd_open)
            shutdown(ct->fd, SHUT_RDWR);
    }
    pthread_mutex_unlock(&tm->mu);
}

static const struct acceptor_ops thread_ops = {
    .start = start_thread,
    .live = live_threads,
    .force = force_threads,
};

int ferry__run_thread(struct ferry_server *s)
{
    struct thread_model tm;
    int r;

    memset(&tm, 0, sizeof tm);
    list_init(&tm.threads);
    pthread_mutex_init(&tm.mu, NULL);
    r = ferry__acceptor_init(&tm.a, s, &thread_ops, &tm);
    if (r == 0)
        r = ferry_loop_set_wakeup(tm.a.loop, reap_threads, &tm);
    if (r == 0) {
        ferry__admission_log_ready(s, "thread");
        r = ferry__acceptor_run(&tm.a);
    }
    if (r < 0) {
        /* The loop failed: stop every connection thread before unwinding. */
        ferry__stop_request(s);
        force_threads(&tm.a);
    }
    /* Join whatever is left (normally nothing). */
    for (;;) {
        struct conn_thread *ct = NULL;
        pthread_mutex_lock(&tm.mu);
        if (!list_empty(&tm.threads)) {
            ct = list_entry(tm.threads.next, struct conn_thread, link);
            unlink_thread(&tm, ct);
        }
        pthread_mutex_unlock(&tm.mu);
        if (!ct)
            break;
        pthread_join(ct->tid, NULL);
        free(ct);
    }
    ferry__acceptor_destroy(&tm.a);
    pthread_mutex_destroy(&tm.mu);
    return r;
}
