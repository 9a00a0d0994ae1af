/*
 * conn_loop.c - the loops a server's event-style connections run on: an
 * event worker's, or the private loop of one connection under THREAD and
 * FORK.  Adopting an accepted descriptor, the graceful stop that reaches a
 * loop through the server's stop pipe, and its grace period.
 */
#include "conn_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ferry/error.h"
#include "ferry/log.h"
#include "ferry/transport.h"
#include "stop.h"

static void on_stop_pipe(struct ferry_loop *loop, int fd, unsigned events, void *arg)
{
    struct conn_loop *cl = arg;
    (void)events;
    ferry_loop_remove(loop, fd);
    ferry__conn_loop_shutdown(cl);
}

static void maybe_finished(struct conn_loop *cl)
{
    /* A private loop also watches the stop pipe, so it would never run out
     * of work on its own: it ends with its one connection. */
    if ((cl->stopping || cl->private_loop) && cl->nconns == 0) {
        ferry_timer_cancel(cl->grace_timer);
        cl->grace_timer = NULL;
        ferry_loop_stop(cl->loop);
    }
}

int ferry__conn_loop_init(struct conn_loop *cl, struct ferry_server *s)
{
    int r = 0;

    memset(cl, 0, sizeof *cl);
    list_init(&cl->conns);
    cl->server = s;
    cl->conn_gone = maybe_finished;
    r = ferry_loop_new(&cl->loop);
    if (r < 0)
        goto fail;
    cl->read_buf = malloc(FERRY_READ_CHUNK);
    if (!cl->read_buf) {
        r = -ENOMEM;
        goto fail;
    }
    r = ferry_loop_add(cl->loop, s->stop_pipe[0], FERRY_READABLE, on_stop_pipe, cl);
    if (r < 0)
        goto fail;
    return 0;

fail:
    ferry__conn_loop_destroy(cl);
    return r;
}

void ferry__conn_loop_destroy(struct conn_loop *cl)
{
    ferry_timer_cancel(cl->grace_timer);
    cl->grace_timer = NULL;
    if (cl->loop)
        ferry_loop_free(cl->loop);
    cl->loop = NULL;
    free(cl->read_buf);
    cl->read_buf = NULL;
}

static void on_grace_expired(struct ferry_loop *loop, struct ferry_timer *t, void *arg)
{
    struct conn_loop *cl = arg;
    (void)loop;
    ferry_timer_cancel(t);
    cl->grace_timer = NULL;
    if (cl->nconns)
        ferry_log_info("shutdown grace period over: closing %zu connection(s)", cl->nconns);
    ferry__conn_loop_abort_all(cl, 0);
}


void ferry__conn_loop_shutdown(struct conn_loop *cl)
{
    struct list_node *n, *tmp;

    if (cl->stopping)
        return;
    cl->stopping = 1;
    /* The first loop of this process to see the stop tells, before its
     * connections hear of it: under THREAD a connection's own loop may see
     * the stop pipe before the acceptor does (and would close an idle
     * connection uncounted).  A FORK connection's loop is in a process of
     * its own: its parent's acceptor tells. */
    if (!cl->private_loop || cl->server->opts.model == FERRY_MODEL_THREAD)
        ferry__stop_tell(cl->server);
    if (cl->on_stop)
        cl->on_stop(cl);
    list_for_each_safe(n, tmp, &cl->conns) {
        struct ferry_conn *c = list_entry(n, struct ferry_conn, link);
        if (c->closed)
            continue;
        /* Only a connection the handler has met (on_open ran) is the
         * handler's to wind down; one still in its TLS handshake just goes. */
        if (c->opened && c->h->on_shutdown)
            c->h->on_shutdown(c, c->h->arg);
        else
            ferry_conn_close(c);
    }
    if (cl->nconns && !cl->grace_timer)
        cl->grace_timer = ferry_loop_timer(cl->loop, (uint64_t)cl->server->opts.shutdown_grace_ms,
                                           on_grace_expired, cl);
    maybe_finished(cl);
}

int ferry__conn_start_event(struct conn_loop *cl, struct listener *l, int fd, const char *peer)
{
    struct ferry_server *s = cl->server;
    struct ferry_transport *t = NULL;
    struct ferry_conn_opts o;
    struct ferry_conn *c = NULL;
    int r;

    if (l->tls)
        r = ferry_transport_new_tls(fd, l->tls, NULL, &t);
    else
        r = ferry_transport_new_fd(fd, &t);
    if (r == 0) {
        ferry__conn_opts_of_server(s, &o);
        r = ferry__conn_event_new(cl, t, &l->h, &o, atomic_fetch_add(&s->next_conn_id, 1) + 1, peer,
                           FERRY_READABLE, &c);
    }
    if (r < 0) {
        ferry__slot_release(&s->slots, s->slots.unauth_capped, fd);   /* before the close */
        if (t)
            ferry_transport_free(t);   /* closes fd */
        else
            close(fd);
        ferry_log_warn("cannot serve connection from %s: %s", peer, ferry_strerror(r));
        return r;
    }
    c->server = s;
    c->unauth_held = s->slots.unauth_capped;
    ferry_log_debug("conn %llu from %s on %s%s", (unsigned long long)c->id, peer, l->name,
                    l->tls ? " (TLS)" : "");
    if (l->tls) {
        c->tls_handshaking = 1;   /* on_open once TLS is established */
        return 0;
    }
    return ferry__conn_open(c);
}

void ferry__conn_run_private(struct ferry_server *s, struct listener *l, int fd, const char *peer)
{
    struct conn_loop cl;
    int flags = fcntl(fd, F_GETFL);
    int r;

    /* The acceptor hands out blocking sockets (for .serve handlers); an
     * event loop must never block on one. */
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        r = -errno;
    else
        r = ferry__conn_loop_init(&cl, s);
    if (r < 0) {
        ferry_log_warn("cannot serve connection from %s: %s", peer, ferry_strerror(r));
        ferry__slot_release(&s->slots, s->slots.unauth_capped, fd);
        close(fd);
        return;
    }
    cl.private_loop = 1;
    if (ferry__conn_start_event(&cl, l, fd, peer) == 0) {
        r = ferry_loop_run(cl.loop);
        if (r < 0)
            ferry_log_error("connection loop failed: %s", ferry_strerror(r));
    }
    /* A loop that ended early (error) may still hold the connection. */
    ferry__conn_loop_abort_all(&cl, 1);
    ferry__conn_loop_destroy(&cl);
}
