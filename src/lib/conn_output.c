/*
 * conn_output.c - what a handler sends, in both styles: bytes, frames and
 * file ranges.  Event style queues behind the engine's back-pressure
 * (conn_event.c); blocking style writes everything before returning.
 */
#include "conn_int.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ferry/error.h"
#include "ferry/frame.h"
#include "ferry/transport.h"
#include "transport_int.h"

int ferry_conn_writev(struct ferry_conn *c, const struct iovec *iov, int iovcnt)
{
    size_t total = 0, sent = 0, high;
    int r;

    if (iovcnt < 0 || iovcnt > IOV_MAX)
        return -EINVAL;
    if (c->blocking) {
        struct iovec copy[IOV_MAX];
        memcpy(copy, iov, (size_t)iovcnt * sizeof *iov);
        return ferry_transport_writev_full(c->t, copy, iovcnt);
    }
    if (c->closed || c->closing)
        return FERRY_ECLOSED;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (total == 0)
        return 0;

    /* Inside a read pass a small write waits for the pass to end (see
     * FERRY_CORK_MAX); a large one first sends what waits, to keep order. */
    int cork = c->corked && ferry_buf_len(&c->out) + total <= FERRY_CORK_MAX;
    if (c->corked && !cork && ferry_buf_len(&c->out) > 0) {
        r = ferry__conn_send_queued(c);
        if (r < 0) {
            ferry__conn_schedule_teardown(c, r);
            return r;
        }
    }
    /* Nothing queued: try the socket directly and only queue the rest,
     * which saves a loop iteration and a copy on the common path. */
    if (!cork && ferry_buf_len(&c->out) == 0 && !c->starting && !c->tls_handshaking) {
        ssize_t n = ferry_transport_writev(c->t, iov, iovcnt);
        if (n < 0 && n != -EAGAIN) {
            ferry__conn_schedule_teardown(c, (int)n);
            return (int)n;
        }
        if (n > 0) {
            sent = (size_t)n;
            c->last_activity = ferry_loop_now(c->cl->loop);
        }
    }
    for (int i = 0; i < iovcnt && sent < total; i++) {
        struct ferry_slice s = ferry_slice_make(iov[i].iov_base, iov[i].iov_len);
        if (sent >= s.len) {
            sent -= s.len;
            total -= s.len;
            continue;
        }
        ferry_slice_advance(&s, sent);
        total -= sent;
        sent = 0;
        r = ferry_buf_append(&c->out, s.p, s.len);
        if (r < 0) {
            ferry__conn_schedule_teardown(c, r);
            return r;
        }
    }
    high = c->opts.write_high_water;
    if (ferry_buf_len(&c->out) > high)
        c->write_blocked = 1;
    /* Corked: the flush at the end of the pass settles the interest set,
     * usually without asking for writability at all. */
    if (!c->corked)
        ferry__conn_update_interest(c);
    return 0;
}

int ferry_conn_write(struct ferry_conn *c, const void *data, size_t len)
{
    struct iovec iov = { (void *)data, len };
    return ferry_conn_writev(c, &iov, 1);
}

/* The configured limits bound what we accept (and may be small before a
 * peer authenticates); what we send is bounded only by the format's
 * default, or by the configured limit where that is larger. */
static int encode_head(struct ferry_conn *c, json_t *header, size_t body_len, uint8_t **head,
                       size_t *head_len)
{
    struct ferry_frame_limits send = c->opts.frame_limits;

    if (send.max_header < FERRY_FRAME_DEFAULT_MAX_HEADER)
        send.max_header = FERRY_FRAME_DEFAULT_MAX_HEADER;
    return ferry_frame_encode(header, body_len, &send, head, head_len);
}

int ferry_conn_write_frame(struct ferry_conn *c, json_t *header, const void *body, size_t body_len)
{
    uint8_t *head = NULL;
    size_t head_len = 0;
    int r;

    r = encode_head(c, header, body_len, &head, &head_len);
    if (r < 0)
        return r;
    struct iovec iov[2] = { { head, head_len }, { (void *)body, body_len } };
    r = ferry_conn_writev(c, iov, body_len ? 2 : 1);
    free(head);
    return r;
}

/* Exactly len bytes of the pipe into the output queue: what the socket did
 * not take of a spliced body.  The caller promised they are there. */
static int queue_from_pipe(struct ferry_conn *c, int pipe_fd, size_t len)
{
    int r = ferry_buf_reserve(&c->out, len);

    while (r == 0 && len > 0) {
        ssize_t n = read(pipe_fd, ferry_buf_tail(&c->out), len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            /* Less than promised: the frame's header has gone out with a
             * length its body can no longer match. */
            r = n < 0 ? -errno : -EIO;
            break;
        }
        ferry_buf_commit(&c->out, (size_t)n);
        len -= (size_t)n;
    }
    return r;
}

int ferry_conn_write_frame_from_pipe(struct ferry_conn *c, json_t *header, int pipe_fd,
                                     size_t body_len)
{
    uint8_t *head = NULL;
    size_t head_len = 0, sent = 0, left = body_len;
    ssize_t n;
    int r;

    if (c->blocking || pipe_fd < 0 || body_len == 0)
        return -EINVAL;
    if (c->closed || c->closing)
        return FERRY_ECLOSED;
    if (c->starting || c->tls_handshaking || !ferry__transport_sends_pipes(c->t))
        return FERRY_EUNSUPPORTED;
    /* The body can only be spliced right behind its header, so both wait
     * until what is queued has gone; the socket's own buffer is the queue
     * meanwhile, and on_drain says when to come back. */
    if (ferry_buf_len(&c->out) > 0) {
        r = ferry__conn_send_queued(c);
        if (r < 0) {
            ferry__conn_schedule_teardown(c, r);
            return r;
        }
        if (ferry_buf_len(&c->out) > 0) {
            ferry_conn_want_drain(c);
            return -EAGAIN;
        }
    }
    r = encode_head(c, header, body_len, &head, &head_len);
    if (r < 0)
        return r;
    struct iovec iov = { head, head_len };
    n = ferry_transport_writev(c->t, &iov, 1);
    if (n < 0 && n != -EAGAIN) {
        r = (int)n;
        goto fail;
    }
    sent = n > 0 ? (size_t)n : 0;
    if (sent < head_len) {
        r = ferry_buf_append(&c->out, head + sent, head_len - sent);
        if (r < 0)
            goto fail;
    } else {
        n = ferry_transport_sendpipe(c->t, pipe_fd, body_len);
        if (n < 0 && n != -EAGAIN && n != FERRY_EUNSUPPORTED) {
            r = (int)n;
            goto fail;
        }
        if (n > 0)
            left -= (size_t)n;
    }
    /* The rest by copy: at most one body, and the caller stops producing
     * until on_drain (write_blocked, or -EAGAIN above next time). */
    if (left > 0) {
        r = queue_from_pipe(c, pipe_fd, left);
        if (r < 0)
            goto fail;
    }
    free(head);
    c->last_activity = ferry_loop_now(c->cl->loop);
    if (ferry_buf_len(&c->out) > c->opts.write_high_water)
        c->write_blocked = 1;
    if (!c->corked)
        ferry__conn_update_interest(c);
    return 0;

fail:
    free(head);
    ferry__conn_schedule_teardown(c, r);
    return r;
}

ssize_t ferry_conn_sendfile(struct ferry_conn *c, int fd, uint64_t *offset, size_t len)
{
    ssize_t n;

    if (c->blocking) {
        size_t sent = 0;
        while (sent < len) {
            n = ferry_transport_sendfile(c->t, fd, offset, len - sent);
            if (n <= 0)
                return sent > 0 ? (ssize_t)sent : n;
            sent += (size_t)n;
        }
        return (ssize_t)sent;
    }
    if (c->closed || c->closing)
        return FERRY_ECLOSED;
    /* Behind queued bytes the file's would come out of order. */
    if (ferry_buf_len(&c->out) > 0) {
        ferry_conn_want_drain(c);
        return -EAGAIN;
    }
    n = ferry_transport_sendfile(c->t, fd, offset, len);
    if (n > 0)
        c->last_activity = ferry_loop_now(c->cl->loop);
    else if (n == -EAGAIN)
        ferry_conn_want_drain(c);
    return n;
}

void ferry_conn_want_drain(struct ferry_conn *c)
{
    if (c->blocking || c->closed)
        return;
    c->drain_wanted = 1;
    ferry__conn_update_interest(c);
}

size_t ferry_conn_pending(const struct ferry_conn *c)
{
    return c->blocking ? 0 : ferry_buf_len(&c->out);
}

int ferry_conn_write_blocked(const struct ferry_conn *c)
{
    return !c->blocking && c->write_blocked;
}
