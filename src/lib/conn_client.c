/*
 * conn_client.c - connections a client opens on its own loop
 * (ferry_conn_open).  They share one state per loop (the read buffer, the
 * list), kept in the loop's slot: made with the first connection, freed
 * with the last one or with the loop.  The handler meets a connection from
 * the loop, never inside ferry_conn_open.
 */
#include "conn_int.h"

#include <errno.h>
#include <stdlib.h>

#include "ferry/error.h"
#include "ferry/log.h"
#include "ferry/tls.h"
#include "ferry/transport.h"
#include "loop_int.h"

static void client_loop_free(struct conn_loop *cl)
{
    ferry__loop_set_slot(cl->loop, NULL, NULL);
    free(cl->read_buf);
    free(cl);
}

/* A client connection was freed: the loop's state goes with the last one
 * (unless the loop itself is being freed, which frees it then). */
static void client_conn_gone(struct conn_loop *cl)
{
    if (cl->nconns == 0 && !cl->releasing)
        client_loop_free(cl);
}

/* The loop is being freed with connections still on it: they close, and
 * the last one's free (deferred, run by ferry_loop_free) frees cl. */
static void client_loop_release(void *arg)
{
    struct conn_loop *cl = arg;

    cl->releasing = 1;
    ferry__conn_loop_abort_all(cl, 0);
    cl->releasing = 0;
    /* Normally the connections' deferred frees, run by ferry_loop_free
     * next, free cl with the last of them; those that could not be
     * deferred are gone already. */
    if (cl->nconns == 0)
        client_loop_free(cl);
}

static int client_loop_get(struct ferry_loop *loop, struct conn_loop **out)
{
    struct conn_loop *cl = ferry__loop_slot(loop);

    if (!cl) {
        cl = calloc(1, sizeof *cl);
        if (!cl)
            return -ENOMEM;
        cl->read_buf = malloc(FERRY_READ_CHUNK);
        if (!cl->read_buf) {
            free(cl);
            return -ENOMEM;
        }
        cl->loop = loop;
        cl->conn_gone = client_conn_gone;
        list_init(&cl->conns);
        ferry__loop_set_slot(loop, cl, client_loop_release);
    }
    *out = cl;
    return 0;
}

/* On the loop, never inside ferry_conn_open: the handler meets the
 * connection (plain) or the client's TLS hello goes out. */
static void client_start(struct ferry_loop *loop, void *arg)
{
    struct ferry_conn *c = arg;
    (void)loop;

    c->starting = 0;
    if (c->closed)
        return;
    if (c->closing) {
        ferry__conn_update_interest(c);   /* closed before it started: finish that */
        return;
    }
    if (c->tls_handshaking) {
        ferry__conn_tls_step(c);
        return;
    }
    if (ferry__conn_open(c) < 0 || c->closed)
        return;
    ferry__conn_update_interest(c);
}

int ferry_conn_open(struct ferry_loop *loop, struct ferry_transport *t, const char *peer,
                    const struct ferry_handler *h, const struct ferry_conn_opts *o,
                    struct ferry_conn **out)
{
    struct ferry_conn_opts opts = { 0 };
    struct ferry_tls_info info;
    struct conn_loop *cl = NULL;
    struct ferry_conn *c = NULL;
    int r;

    if (out)
        *out = NULL;
    if (!loop || !t || !h || !out || h->serve || h->on_datagram || (h->on_data && h->on_frame) ||
        !ferry__handler_is_event(h))
        return -EINVAL;
    if (o)
        opts = *o;
    if (opts.write_high_water == 0)
        opts.write_high_water = FERRY_DEFAULT_HIGH_WATER;
    r = ferry_transport_set_nonblocking(t, 1);
    if (r < 0)
        return r;
    r = client_loop_get(loop, &cl);
    if (r < 0)
        return r;
    r = ferry__conn_event_new(cl, t, h, &opts, ++cl->next_id, peer, 0, &c);
    if (r == 0 && ferry_loop_defer(loop, client_start, c) < 0) {
        r = -ENOMEM;
        c->t = NULL;   /* stays the caller's */
        ferry__conn_teardown_now(c, r, 1);
        return r;
    }
    if (r < 0) {
        if (cl->nconns == 0)
            client_loop_free(cl);
        return r;
    }
    /* The handler is copied, so the caller's struct may go. */
    c->client_h = *h;
    c->h = &c->client_h;
    c->close_owed = 1;   /* whatever happens from here, on_close reports it */
    c->starting = 1;
    c->tls_handshaking = ferry_transport_tls_info(t, &info) != FERRY_EUNSUPPORTED;
    ferry_log_debug("conn %llu to %s%s", (unsigned long long)c->id, c->peer,
                    c->tls_handshaking ? " (TLS)" : "");
    *out = c;
    return 0;
}
