/*
 * acceptor.c - the accepting loop shared by the THREAD and FORK models
 * (see acceptor.h): the loop, its graceful stop and grace period; the
 * accepting itself is admission.c's.
 */
#include "acceptor.h"

#include <errno.h>
#include <string.h>

#include "ferry/error.h"
#include "ferry/log.h"
#include "stop.h"

/* An admitted connection goes to the model. */
static void start_conn(void *arg, struct listener *l, int fd, const char *peer)
{
    struct acceptor *a = arg;

    a->ops->start(a, l, fd, peer);
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
    ferry__stop_tell(a->server);
    ferry__admission_stop(&a->adm);
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
    r = ferry_loop_new(&a->loop);
    if (r < 0)
        return r;
    r = ferry_loop_add(a->loop, s->stop_pipe[0], FERRY_READABLE, on_stop, a);
    if (r == 0)
        r = ferry__admission_init(&a->adm, s, a->loop, 0, start_conn, a);
    return r;
}

int ferry__acceptor_run(struct acceptor *a)
{
    return ferry_loop_run(a->loop);
}

void ferry__acceptor_destroy(struct acceptor *a)
{
    ferry_timer_cancel(a->grace_timer);
    a->grace_timer = NULL;
    if (a->loop) {
        ferry__admission_destroy(&a->adm);
        ferry_loop_free(a->loop);
    }
    a->loop = NULL;
}
