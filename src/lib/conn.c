/*
 * conn.c - the rest of a connection's public API: pausing and resuming
 * input, aborting, bodies into files, authentication, and the accessors.
 */
#include "conn_int.h"

#include <errno.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ferry/error.h"
#include "ferry/transport.h"

void ferry_conn_pause_read(struct ferry_conn *c)
{
    if (c->blocking || c->user_paused)
        return;
    c->user_paused = 1;
    ferry__conn_update_interest(c);
}

void ferry_conn_resume_read(struct ferry_conn *c)
{
    if (c->blocking || !c->user_paused)
        return;
    c->user_paused = 0;
    ferry__conn_update_interest(c);
    ferry__conn_schedule_saved(c);
}

void ferry_conn_abort(struct ferry_conn *c, int reason)
{
    if (c->blocking) {
        shutdown(c->fd, SHUT_RDWR);
        return;
    }
    ferry_buf_clear(&c->out);
    ferry__conn_schedule_teardown(c, reason ? reason : FERRY_ECLOSED);
}

int ferry_conn_recv_body_to_file(struct ferry_conn *c, int fd, uint64_t offset)
{
    if (c->blocking || !c->at_header || fd < 0 || offset > (uint64_t)INT64_MAX)
        return -EINVAL;
    c->body_fd = fd;
    c->body_off = offset;
    c->body_to_file = 1;
    c->body_to_pipe = 0;
    return 0;
}

int ferry_conn_recv_body_to_pipe(struct ferry_conn *c, int fd)
{
    if (c->blocking || !c->at_header || fd < 0)
        return -EINVAL;
    c->body_fd = fd;
    c->body_off = 0;
    c->body_to_file = 1;
    c->body_to_pipe = 1;
    return 0;
}

const char *ferry_conn_peer(const struct ferry_conn *c) { return c->peer; }

uint64_t ferry_conn_id(const struct ferry_conn *c) { return c->id; }

void ferry_conn_set_data(struct ferry_conn *c, void *data) { c->data = data; }

void *ferry_conn_data(const struct ferry_conn *c) { return c->data; }

struct ferry_transport *ferry_conn_transport(struct ferry_conn *c) { return c->t; }

int ferry_conn_tls_info(const struct ferry_conn *c, struct ferry_tls_info *info)
{
    return ferry_transport_tls_info(c->t, info);
}

struct ferry_loop *ferry_conn_loop(const struct ferry_conn *c)
{
    return c->blocking ? NULL : c->cl->loop;
}

int ferry_conn_stopping(const struct ferry_conn *c)
{
    return c->server ? atomic_load(&c->server->stopping) : 0;
}

void ferry_conn_set_frame_limits(struct ferry_conn *c, const struct ferry_frame_limits *limits)
{
    if (c->parser)
        ferry_frame_parser_set_limits(c->parser, limits);
}

void ferry_conn_set_authenticated(struct ferry_conn *c)
{
    c->authenticated = 1;
    if (c->unauth_held) {
        c->unauth_held = 0;
        ferry__slot_unauth_release(&c->server->slots, c->fd);
        /* A forked connection process: tell the parent, which counts. */
        if (c->server->auth_notify_fd >= 0) {
            close(c->server->auth_notify_fd);
            c->server->auth_notify_fd = -1;
        }
    }
    if (!c->blocking) {
        ferry_timer_cancel(c->handshake_timer);
        c->handshake_timer = NULL;
    }
}
