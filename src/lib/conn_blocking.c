/*
 * conn_blocking.c - blocking-style connections (THREAD and FORK models):
 * the handler's serve() runs in the calling thread; reads wait on the
 * socket and the server's stop pipe together, within the idle and
 * handshake timeouts.
 */
#include "conn_int.h"

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "ferry/error.h"
#include "ferry/frame.h"
#include "ferry/log.h"
#include "ferry/transport.h"

/* TLS before serve(), within the handshake timeout (else the idle one),
 * and given up when the server stops: nothing has been served yet. */
static int blocking_tls_handshake(struct ferry_conn *c)
{
    int timeout = c->opts.handshake_timeout_ms;
    uint64_t deadline;
    int r;

    if (timeout <= 0)
        timeout = c->opts.idle_timeout_ms;
    deadline = timeout > 0 ? ferry__now_ms() + (uint64_t)timeout : 0;
    ferry_transport_set_nonblocking(c->t, 1);
    for (;;) {
        r = ferry_transport_handshake(c->t);
        if (r != -EAGAIN)
            break;
        struct pollfd pfd[2] = {
            { .fd = c->fd, .events = ferry_transport_wants(c->t) },
            { .fd = c->server->stop_pipe[0], .events = POLLIN },
        };
        int wait = -1;
        if (deadline) {
            uint64_t now = ferry__now_ms();
            if (now >= deadline) {
                r = -ETIMEDOUT;
                break;
            }
            wait = (int)(deadline - now);
        }
        int n = poll(pfd, 2, wait);
        if (n < 0 && errno != EINTR) {
            r = -errno;
            break;
        }
        if (n > 0 && pfd[1].revents) {
            r = FERRY_ECLOSED;   /* stopping */
            break;
        }
    }
    ferry_transport_set_nonblocking(c->t, 0);
    if (r < 0) {
        const char *why = ferry_transport_error(c->t)[0] ? ferry_transport_error(c->t)
                                                         : ferry_strerror(r);
        /* As conn_event.c: a peer that only connects and goes is debug,
         * and no session for the audit trail. */
        if (r == FERRY_EEOF || r == -ECONNRESET) {
            ferry_log_debug("conn %llu (%s): TLS handshake failed: %s",
                            (unsigned long long)c->id, c->peer, why);
        } else if (r != FERRY_ECLOSED) {
            ferry_log_info("conn %llu (%s): TLS handshake failed: %s",
                           (unsigned long long)c->id, c->peer, why);
            /* Refused before the handler: the audit trail's line (conn_event.c). */
            ferry_log_audit("event=session peer=%s result=denied auth=tls reason=%s",
                            FERRY_LOG_Q(c->peer), FERRY_LOG_Q(why));
        }
        return r;
    }
    ferry__conn_log_tls(c);
    return 0;
}

void ferry__conn_run_blocking(struct ferry_server *s, struct listener *l, int fd, const char *peer,
                              void (*before_close)(void *arg), void *arg)
{
    struct ferry_conn c;
    int r;

    memset(&c, 0, sizeof c);
    c.server = s;
    c.h = &l->h;
    c.fd = fd;
    c.blocking = 1;
    ferry__conn_opts_of_server(s, &c.opts);
    c.id = atomic_fetch_add(&s->next_conn_id, 1) + 1;
    snprintf(c.peer, sizeof c.peer, "%s", peer);
    if (l->tls)
        r = ferry_transport_new_tls(fd, l->tls, NULL, &c.t);
    else
        r = ferry_transport_new_fd(fd, &c.t);
    if (r < 0) {
        ferry_log_warn("cannot serve connection from %s: %s", peer, ferry_strerror(r));
        if (before_close)
            before_close(arg);
        ferry__slot_release(&s->slots, s->slots.unauth_capped, fd);   /* before the close */
        close(fd);
        return;
    }
    c.unauth_held = s->slots.unauth_capped;
    if (s->opts.idle_timeout_ms > 0)
        ferry_transport_set_timeout(c.t, s->opts.idle_timeout_ms);
    if (s->opts.handshake_timeout_ms > 0)
        c.handshake_deadline = ferry__now_ms() + (uint64_t)s->opts.handshake_timeout_ms;

    ferry_log_debug("conn %llu from %s on %s%s", (unsigned long long)c.id, peer, l->name,
                    l->tls ? " (TLS)" : "");
    r = l->tls ? blocking_tls_handshake(&c) : 0;
    if (r == 0)
        r = l->h.serve(&c, l->h.arg);
    if (r < 0 && r != FERRY_EEOF)
        ferry_log_debug("conn %llu (%s) ended: %s", (unsigned long long)c.id, peer, ferry_strerror(r));
    else
        ferry_log_debug("conn %llu (%s) closed", (unsigned long long)c.id, peer);
    if (before_close)
        before_close(arg);
    ferry__slot_release(&s->slots, c.unauth_held, fd);   /* before the close */
    ferry_transport_free(c.t);
}

/* Wait until the connection has input (1), the server is stopping and it
 * has none (0), or a timeout passes (-ETIMEDOUT). */
static int wait_readable(struct ferry_conn *c)
{
    int idle = c->opts.idle_timeout_ms;

    if (ferry_transport_pending(c->t))
        return 1;
    for (;;) {
        struct pollfd pfd[2] = {
            { .fd = c->fd, .events = POLLIN },
            { .fd = c->server->stop_pipe[0], .events = POLLIN },
        };
        int timeout = idle > 0 ? idle : -1;

        if (c->handshake_deadline && !c->authenticated) {
            uint64_t now = ferry__now_ms();
            if (now >= c->handshake_deadline)
                return -ETIMEDOUT;
            uint64_t left = c->handshake_deadline - now;
            if (timeout < 0 || left < (uint64_t)timeout)
                timeout = (int)left;
        }
        int n = poll(pfd, 2, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0) {
            if (c->handshake_deadline && !c->authenticated && ferry__now_ms() < c->handshake_deadline)
                continue;
            return -ETIMEDOUT;
        }
        if (pfd[0].revents)
            return 1;
        return 0;
    }
}

/* Blocking reads past the first byte run on the transport's own timeout:
 * keep it no longer than what is left of the handshake, so a peer that
 * sends one byte and stalls is still cut off in time. */
static int arm_read_deadline(struct ferry_conn *c)
{
    int idle = c->opts.idle_timeout_ms;
    int timeout = idle > 0 ? idle : 0;

    if (c->handshake_deadline && !c->authenticated) {
        uint64_t now = ferry__now_ms();
        if (now >= c->handshake_deadline)
            return -ETIMEDOUT;
        uint64_t left = c->handshake_deadline - now;
        if (timeout == 0 || left < (uint64_t)timeout)
            timeout = (int)left;
    }
    ferry_transport_set_timeout(c->t, timeout);
    return 0;
}

ssize_t ferry_conn_read(struct ferry_conn *c, void *buf, size_t len)
{
    if (!c->blocking)
        return FERRY_EUNSUPPORTED;
    int r = wait_readable(c);
    if (r <= 0)
        return r;
    return ferry_transport_read(c->t, buf, len);
}

int ferry_conn_read_full(struct ferry_conn *c, void *buf, size_t len)
{
    struct ferry_slice want = ferry_slice_make(buf, len);
    ssize_t n;

    if (len == 0)
        return 0;
    n = ferry_conn_read(c, buf, len);
    if (n < 0)
        return (int)n;
    if (n == 0)
        return FERRY_EEOF;
    ferry_slice_advance(&want, (size_t)n);
    if (want.len == 0)
        return 0;
    /* Past the first byte the request has begun: finish it regardless of a
     * stop (the transport's own timeout still applies). */
    int r = arm_read_deadline(c);
    if (r < 0)
        return r;
    r = ferry_transport_read_full(c->t, (void *)want.p, want.len);
    return r == FERRY_EEOF ? FERRY_ETRUNCATED : r;
}

int ferry_conn_read_frame(struct ferry_conn *c, json_t **header, uint64_t *body_size)
{
    if (!c->blocking)
        return FERRY_EUNSUPPORTED;
    int r = wait_readable(c);
    if (r < 0)
        return r;
    if (r == 0)
        return FERRY_EEOF;
    r = arm_read_deadline(c);
    if (r < 0)
        return r;
    return ferry_frame_read(c->t, &c->opts.frame_limits, header, body_size);
}
