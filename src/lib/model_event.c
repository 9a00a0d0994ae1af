/*
 * model_event.c - FERRY_MODEL_EVENT: N worker threads, one loop each.
 *
 * Every worker watches every listener; the kernel wakes them and whichever
 * accepts first owns the connection for its whole life, so a connection is
 * only ever touched by one thread and needs no locks.  The calling thread
 * runs worker 0 itself.
 */
#include "server_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/error.h"
#include "ferry/log.h"

struct worker;

/* What a listener watcher on one worker's loop needs to know. */
struct listen_watch {
    struct worker *w;
    struct listener *l;
};

struct worker {
    struct conn_loop cl;
    struct listen_watch *watches;       /* one per listener */
    struct ferry_server *server;
    pthread_t thread;
    int started;
    int result;
    struct ferry_timer *resume_timer;   /* EMFILE back-off */
};

static void on_listener(struct ferry_loop *loop, int fd, unsigned events, void *arg);

static void watch_listeners(struct worker *w, unsigned events)
{
    struct ferry_server *s = w->server;
    /* Datagram endpoints need no descriptors to be served: never paused. */
    for (size_t i = 0; i < s->nlisteners; i++)
        if (s->listeners[i]->type == FERRY_SOCK_STREAM)
            ferry_loop_modify(w->cl.loop, s->listeners[i]->fd, events);
}

static void on_resume_accept(struct ferry_loop *loop, struct ferry_timer *t, void *arg)
{
    struct worker *w = arg;
    (void)loop;
    ferry_timer_cancel(t);
    w->resume_timer = NULL;
    if (!w->cl.stopping)
        watch_listeners(w, FERRY_READABLE);
}

static void on_listener(struct ferry_loop *loop, int fd, unsigned events, void *arg)
{
    struct listen_watch *lw = arg;
    struct listener *l = lw->l;
    struct worker *w = lw->w;
    char peer[FERRY_ADDRSTRLEN];
    (void)fd;
    (void)events;

    if (l->type == FERRY_SOCK_DGRAM) {
        ferry__serve_datagrams(l);
        return;
    }
    /* Bounded per wakeup so accepting never starves established connections. */
    for (int i = 0; i < 64 && !w->cl.stopping; i++) {
        int cfd = ferry__accept(l, 1, peer);
        if (cfd == -EMFILE || cfd == -ENFILE) {
            /* Out of descriptors: keep serving what we have and try again
             * shortly, instead of spinning on a listener we cannot drain. */
            watch_listeners(w, 0);
            if (!w->resume_timer)
                w->resume_timer = ferry_loop_timer(loop, FERRY_EMFILE_BACKOFF_MS, on_resume_accept, w);
            return;
        }
        if (cfd < 0)
            return;
        ferry__conn_start_event(&w->cl, l, cfd, peer);
    }
}

static void stop_accepting(struct conn_loop *cl)
{
    struct worker *w = cl->owner;
    struct ferry_server *s = w->server;

    ferry_timer_cancel(w->resume_timer);
    w->resume_timer = NULL;
    for (size_t i = 0; i < s->nlisteners; i++)
        ferry_loop_remove(cl->loop, s->listeners[i]->fd);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    w->result = ferry_loop_run(w->cl.loop);
    /* A failed loop must not leave the others waiting for it. */
    if (w->result < 0) {
        ferry_log_error("event loop failed: %s", ferry_strerror(w->result));
        ferry_server_stop(w->server);
    }
    ferry__conn_loop_abort_all(&w->cl, 1);
    return NULL;
}

static int worker_init(struct worker *w, struct ferry_server *s)
{
    int r;

    memset(w, 0, sizeof *w);
    w->server = s;
    r = ferry__conn_loop_init(&w->cl, s);
    if (r < 0)
        return r;
    w->cl.owner = w;
    w->cl.on_stop = stop_accepting;
    w->watches = calloc(s->nlisteners, sizeof *w->watches);
    if (!w->watches)
        return -ENOMEM;
    for (size_t i = 0; i < s->nlisteners; i++) {
        w->watches[i].w = w;
        w->watches[i].l = s->listeners[i];
        r = ferry_loop_add(w->cl.loop, s->listeners[i]->fd, FERRY_READABLE, on_listener, &w->watches[i]);
        if (r < 0)
            return r;
    }
    return 0;
}

int ferry__run_event(struct ferry_server *s)
{
    int n = s->opts.workers, r = 0;
    struct worker *workers = calloc((size_t)n, sizeof *workers);

    if (!workers)
        return -ENOMEM;
    for (int i = 0; i < n; i++) {
        r = worker_init(&workers[i], s);
        if (r < 0)
            goto out;
    }
    ferry__log_ready(s);
    for (int i = 1; i < n; i++) {
        r = -pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]);
        if (r < 0) {
            ferry_server_stop(s);
            break;
        }
        workers[i].started = 1;
    }
    worker_main(&workers[0]);
    if (workers[0].result < 0 && r == 0)
        r = workers[0].result;
    for (int i = 1; i < n; i++) {
        if (!workers[i].started)
            continue;
        pthread_join(workers[i].thread, NULL);
        if (workers[i].result < 0 && r == 0)
            r = workers[i].result;
    }

out:
    for (int i = 0; i < n; i++) {
        ferry_timer_cancel(workers[i].resume_timer);
        workers[i].resume_timer = NULL;
        ferry__conn_loop_destroy(&workers[i].cl);
        free(workers[i].watches);
    }
    free(workers);
    return r;
}
