/*
 * acceptor.c - the accepting loop shared by the THREAD and FORK models
 * (see acceptor.h).
 */
#include "acceptor.h"

#include <errno.h>
#include <string.h>

#include "ferry/error.h"
#include "ferry/log.h"

static void watch_listeners(struct acceptor *a, unsigned events)
{
    for (size_t i = 0; i < a->server->nlisteners; i++)
        if (a->server->listeners[i]->type == FERRY_SOCK_STREAM)
            ferry_loop_modify(a->loop, a->server->listeners[i]->fd, events);
}

static void on_resume(struct ferry_loop *loop, struct ferry_timer *t, void *arg)
{
    struct acceptor *a = arg;
    (void)loop;
    ferry_timer_cancel(t);
    a->resume_timer = NULL;
    if (!a->stopping)
        watch_listeners(a, FERRY_READABLE);
}

static void on_listener(struct ferry_loop *loop, int fd, unsigned events, void *arg)
{
    struct listener *l = arg;
    struct acceptor *a = l->server->acceptor;
    char peer[FERRY_ADDRSTRLEN];
    (void)fd;
    (void)events;

    if (l->type == FERRY_SOCK_DGRAM) {
        ferry__serve_datagrams(l);
        return;
    }
    for (int i = 0; i < 64 && !a->stopping; i++) {
        int cfd = ferry__accept(l, 0, peer);
        if (cfd == -EMFILE || cfd == -ENFILE) {
            watch_listeners(a, 0);
            if (!a->resume_timer)
                a->resume_timer = ferry_loop_timer(loop, FERRY_EMFILE_BACKOFF_MS, on_resume, a);
            return;
        }
        if (cfd < 0)
            return;
        a->ops->start(a, l, cfd, peer);
    }
}

void ferry__acceptor_check_done(struct acceptor *a)
{
    if (a->stopping && a->ops->live(a) == 0) {
        ferry_timer_cancel(a->grace_timer);
        a->grace_timer = NULL;
        ferry_loop_stop(a->loop);
    }
}

static void on_grace(struct ferry_loop *loop, struct ferry_timer *t, void *arg)
{
    struct acceptor *a = arg;
    (void)loop;
    ferry_timer_cancel(t);
    a->grace_timer = NULL;
    ferry_log_info("shutdown grace period over: ending %zu connection(s)", a->ops->live(a));
    a->ops->force(a);
}

static void on_stop(struct ferry_loop *loop, int fd, unsigned events, void *arg)
{
    struct acceptor *a = arg;
    (void)events;

    ferry_loop_remove(loop, fd);
    a->stopping = 1;
    ferry_timer_cancel(a->resume_timer);
    a->resume_timer = NULL;
    for (size_t i = 0; i < a->server->nlisteners; i++)
        ferry_loop_remove(loop, a->server->listeners[i]->fd);
    if (a->ops->stopping)
        a->ops->stopping(a);
    if (a->ops->live(a) > 0)
        a->grace_timer = ferry_loop_timer(loop, (uint64_t)(a->server->opts.shutdown_grace_ms +
                                                           a->ops->extra_grace_ms), on_grace, a);
    ferry__acceptor_check_done(a);
}

int ferry__acceptor_init(struct acceptor *a, struct ferry_server *s,
                         const struct acceptor_ops *ops, void *model)
{
    int r = 0;

    memset(a, 0, sizeof *a);
    a->server = s;
    a->ops = ops;
    a->model = model;
    s->acceptor = a;
    r = ferry_loop_new(&a->loop);
    if (r < 0)
        return r;
    r = ferry_loop_add(a->loop, s->stop_pipe[0], FERRY_READABLE, on_stop, a);
    for (size_t i = 0; i < s->nlisteners && r == 0; i++)
        r = ferry_loop_add(a->loop, s->listeners[i]->fd, FERRY_READABLE, on_listener, s->listeners[i]);
    return r;
}

int ferry__acceptor_run(struct acceptor *a)
{
    return ferry_loop_run(a->loop);
}

void ferry__acceptor_destroy(struct acceptor *a)
{
    ferry_timer_cancel(a->grace_timer);
    ferry_timer_cancel(a->resume_timer);
    a->grace_timer = a->resume_timer = NULL;
    if (a->loop)
        ferry_loop_free(a->loop);
    a->loop = NULL;
    a->server->acceptor = NULL;
}
