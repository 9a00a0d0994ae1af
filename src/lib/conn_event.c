/*
 * conn_event.c - the event-style connection engine: read and deliver
 * (bytes or parsed frames, bodies into files), queue and flush with
 * back-pressure, timeouts, the TLS handshake on the loop, the graceful
 * close and the deferred teardown (conn_int.h states the rule).  One
 * engine for the server's connections and a client's; it calls none of
 * the other conn_*.c files.
 */
#include "conn_int.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ferry/error.h"
#include "ferry/frame.h"
#include "ferry/log.h"
#include "ferry/tls.h"
#include "ferry/transport.h"
#include "frame_int.h"
#include "transport_int.h"

/* The most one recvfile is asked for: what recvfile's pipe holds. */
#define FERRY_RECVFILE_CHUNK (1u << 20)

static void conn_on_io(struct ferry_loop *loop, int fd, unsigned events, void *arg);
static void schedule_pending_read(struct ferry_conn *c);
static void conn_read(struct ferry_conn *c);
static int deliver(struct ferry_conn *c, const uint8_t *data, size_t len);
static int conn_flush(struct ferry_conn *c);
static void linger_shut(struct ferry_conn *c);

int ferry__handler_is_event(const struct ferry_handler *h)
{
    return h->on_open || h->on_data || h->on_frame;
}

/* A callback's negative return closes the connection: the debug line names
 * the callback, so a handler's -1 is not read as a system's EPERM. */
static int refused(const struct ferry_conn *c, const char *callback, int r)
{
    if (r < 0)
        ferry_log_debug("conn %llu (%s): the handler's %s returned %d (%s), closing",
                        (unsigned long long)c->id, c->peer, callback, r, ferry_err_name(r));
    return r;
}

static int reading_enabled(const struct ferry_conn *c)
{
    return !c->closed && !c->closing && !c->user_paused && !c->write_blocked;
}

void ferry__conn_update_interest(struct ferry_conn *c)
{
    unsigned ev = 0;

    if (c->closed)
        return;
    if (c->tls_handshaking || c->starting)
        return;   /* tls_step (client_start) sets what the connection waits for */
    if (reading_enabled(c) || c->lingering)
        ev |= FERRY_READABLE;
    if (c->shutdown_pending)
        ev |= FERRY_WRITABLE;
    if (ferry_buf_len(&c->out) > 0 || c->drain_wanted)
        ev |= FERRY_WRITABLE;
    if (ev != c->events) {
        int r = ferry_loop_modify(c->cl->loop, c->fd, ev);
        if (r < 0)
            ferry_log_error("conn %llu: cannot update interest: %s",
                            (unsigned long long)c->id, ferry_strerror(r));
        c->events = ev;
    }
    schedule_pending_read(c);
}

static void conn_free(struct ferry_loop *loop, void *arg)
{
    struct ferry_conn *c = arg;
    struct conn_loop *cl = c->cl;
    (void)loop;

    /* The slot is named by the fd: given back before the fd is closed. */
    if (c->server)
        ferry__slot_release(&c->server->slots, c->unauth_held, c->fd);
    ferry_transport_free(c->t);
    ferry_buf_free(&c->out);
    ferry_buf_free(&c->in);
    ferry_frame_parser_free(c->parser);
    free(c);
    cl->nconns--;
    /* The loop's owner may end the loop, or free cl, with its last one. */
    if (cl->conn_gone)
        cl->conn_gone(cl);
}

/* Tear down now: stop watching, tell the handler, free later (or at once
 * when the loop has finished and will run no more deferred calls).  Must
 * not be called from inside one of this connection's handler callbacks. */
void ferry__conn_teardown_now(struct ferry_conn *c, int reason, int free_now)
{
    struct conn_loop *cl = c->cl;

    if (c->closed)
        return;
    c->closed = 1;
    ferry_loop_remove(cl->loop, c->fd);
    ferry_timer_cancel(c->idle_timer);
    ferry_timer_cancel(c->handshake_timer);
    ferry_timer_cancel(c->linger_timer);
    c->idle_timer = c->handshake_timer = c->linger_timer = NULL;

    list_unlink(&c->link);

    if (reason < 0 && reason != FERRY_ECLOSED)
        ferry_log_debug("conn %llu (%s) closed: %s", (unsigned long long)c->id, c->peer,
                        ferry_strerror(reason));
    else
        ferry_log_debug("conn %llu (%s) closed", (unsigned long long)c->id, c->peer);

    if (c->close_owed && c->h->on_close)
        c->h->on_close(c, reason, c->h->arg);
    if (free_now || ferry_loop_defer(cl->loop, conn_free, c) < 0)
        conn_free(cl->loop, c);
}

static void conn_teardown(struct ferry_conn *c, int reason)
{
    ferry__conn_teardown_now(c, reason, 0);
}

static void deferred_teardown(struct ferry_loop *loop, void *arg)
{
    struct ferry_conn *c = arg;
    (void)loop;
    conn_teardown(c, c->pending_reason);
}

/* Teardown from API calls that handler code makes: always deferred. */
void ferry__conn_schedule_teardown(struct ferry_conn *c, int reason)
{
    if (c->closed || c->teardown_scheduled)
        return;
    c->teardown_scheduled = 1;
    c->pending_reason = reason;
    c->closing = 1;
    ferry__conn_update_interest(c);
    if (ferry_loop_defer(c->cl->loop, deferred_teardown, c) < 0) {
        /* Cannot defer: let the next I/O event finish it. */
        c->teardown_scheduled = 0;
    }
}

void ferry__conn_loop_abort_all(struct conn_loop *cl, int loop_done)
{
    struct list_node *n, *tmp;

    list_for_each_safe(n, tmp, &cl->conns)
        ferry__conn_teardown_now(list_entry(n, struct ferry_conn, link), FERRY_ECLOSED, loop_done);
}

static void read_pending(struct ferry_loop *loop, void *arg)
{
    struct ferry_conn *c = arg;
    (void)loop;

    c->read_scheduled = 0;
    if (!c->closed && reading_enabled(c))
        conn_read(c);
}

/* TLS may hold decrypted input that epoll will never announce (the rest of
 * a record a read had no room for): read it on the next loop turn. */
static void schedule_pending_read(struct ferry_conn *c)
{
    if (c->read_scheduled || c->closed || c->tls_handshaking || !reading_enabled(c) ||
        !ferry_transport_pending(c->t))
        return;
    if (ferry_loop_defer(c->cl->loop, read_pending, c) == 0)
        c->read_scheduled = 1;
}

/* Whether a pause left anything to deliver: input kept in c->in, or the
 * END of a frame whose last byte came just before the pause (it needs no
 * input, so no read would ever bring it). */
static int has_saved(const struct ferry_conn *c)
{
    return ferry_buf_len(&c->in) > 0 || (c->parser && ferry__frame_parser_owes_end(c->parser));
}

/* Input that arrived while the handler paused reading mid-chunk is kept
 * in c->in and delivered from here once reading resumes. */
static void deliver_saved(struct ferry_loop *loop, void *arg)
{
    struct ferry_conn *c = arg;
    int r;
    (void)loop;

    c->resume_scheduled = 0;
    if (c->closed || !reading_enabled(c) || !has_saved(c))
        return;
    /* deliver() may stash a remainder back into c->in, so hand it a copy
     * of the view and consume before calling. */
    size_t n = ferry_buf_len(&c->in);
    uint8_t *copy = n ? malloc(n) : NULL;
    if (n && !copy) {
        conn_teardown(c, -ENOMEM);
        return;
    }
    if (n)          /* only an owed END saved (has_saved): copy is NULL */
        memcpy(copy, ferry_buf_head(&c->in), n);
    ferry_buf_clear(&c->in);
    r = deliver(c, copy, n);
    free(copy);
    if (r < 0)
        conn_teardown(c, r);
    else
        ferry__conn_update_interest(c);
}

void ferry__conn_schedule_saved(struct ferry_conn *c)
{
    if (!c->closed && has_saved(c) && !c->resume_scheduled &&
        ferry_loop_defer(c->cl->loop, deliver_saved, c) == 0)
        c->resume_scheduled = 1;
}

/* The body bound for a file could not be stored: the handler hears it
 * once, and the connection closes (what is left of the body can no longer
 * be told from the next frame). */
static void body_file_failed(struct ferry_conn *c, int err)
{
    struct ferry_frame_event ev = { .type = FERRY_FRAME_ERROR, .error = err };

    ferry_log_info("conn %llu (%s): cannot store a body: %s", (unsigned long long)c->id, c->peer,
                   ferry_strerror(err));
    c->body_to_file = 0;
    c->h->on_frame(c, &ev, c->h->arg);
    ferry_conn_close(c);
}

/* One parsed frame event to on_frame; body bytes bound for a file are
 * stored first, and the handler hears where they went. */
static int frame_event(struct ferry_conn *c, struct ferry_frame_event *ev)
{
    int r;

    if (c->body_to_file && !c->body_to_pipe && ev->type == FERRY_FRAME_BODY) {
        r = ferry__pwrite_all(c->body_fd, ev->chunk, ev->chunk_len, c->body_off);
        if (r < 0) {
            body_file_failed(c, r);
            return 0;
        }
        c->body_off += ev->chunk_len;
    } else if (ev->type == FERRY_FRAME_END) {
        c->piped_last = c->body_to_pipe && !c->no_recvpipe;
        c->body_to_file = 0;
        c->body_to_pipe = 0;
    }
    c->at_header = ev->type == FERRY_FRAME_HEADER && ev->body_size > 0;
    r = refused(c, "on_frame", c->h->on_frame(c, ev, c->h->arg));
    c->at_header = 0;
    return r;
}

static int deliver(struct ferry_conn *c, const uint8_t *data, size_t len)
{
    struct ferry_slice in = ferry_slice_make(data, len);
    int r = 0;

    c->in_callback = 1;
    c->corked = 1;
    /* Frames: keep going after the input is used up until the parser says
     * it needs more, so an END owed for the last byte is not held back
     * until the next read. */
    while ((in.len > 0 || c->parser) && !c->closed && !c->closing) {
        if (!reading_enabled(c)) {
            if (in.len == 0)
                break;
            /* Paused mid-chunk: keep the rest for later, in order. */
            r = ferry_buf_append(&c->in, in.p, in.len);
            break;
        }
        if (c->h->on_data) {
            if (in.len > 0)
                r = refused(c, "on_data", c->h->on_data(c, in.p, in.len, c->h->arg));
            break;
        }
        if (!c->parser)
            break;   /* a handler that takes no input (only on_open): discard it */
        size_t used = 0;
        struct ferry_frame_event ev;
        r = ferry_frame_parser_feed(c->parser, in.p, in.len, &used, &ev);
        if (r < 0) {
            ferry_log_info("conn %llu (%s): bad frame: %s", (unsigned long long)c->id,
                           c->peer, ferry_strerror(r));
            /* Framing is lost for good; let the handler answer, then close
             * once that answer is flushed. */
            memset(&ev, 0, sizeof ev);
            ev.type = FERRY_FRAME_ERROR;
            ev.error = r;
            c->h->on_frame(c, &ev, c->h->arg);
            ferry_conn_close(c);
            r = 0;
            break;
        }
        ferry_slice_advance(&in, used);
        if (r == FERRY_FRAME_NEED_MORE) {
            r = 0;
            break;
        }
        r = frame_event(c, &ev);
        if (r < 0)
            break;
    }
    c->in_callback = 0;
    c->corked = 0;
    /* What the handler wrote during the pass goes out now, in one write. */
    if (r >= 0 && !c->closed && ferry_buf_len(&c->out) > 0)
        conn_flush(c);
    return r < 0 ? r : 0;
}

/*
 * Body bytes bound for a file straight from the socket (recvfile), the
 * parser told they went around it.  1 when bytes moved, 0 to read as
 * usual instead, -EAGAIN when nothing is there, or another negative code
 * once the connection is torn down or closing.
 */
static int recv_body_direct(struct ferry_conn *c)
{
    uint64_t left = ferry__frame_parser_body_left(c->parser);
    size_t ask = left < FERRY_RECVFILE_CHUNK ? (size_t)left : FERRY_RECVFILE_CHUNK;
    int file_err = 0;
    ssize_t n;
    int r;

    if (left == 0 || ferry_buf_len(&c->in) > 0)
        return 0;
    if (c->body_to_pipe) {
        if (c->no_recvpipe)
            return 0;
        n = ferry_transport_recvpipe(c->t, c->body_fd, ask);
        if (n == FERRY_EUNSUPPORTED)
            c->no_recvpipe = 1;
        if (n == -EAGAIN)
            return -EAGAIN;
        if (n <= 0) {
            /* Nothing was consumed: the rest of this body reaches the
             * handler by the ordinary read, which also meets the socket's
             * error or end, and the handler its pipe's. */
            c->body_to_pipe = 0;
            c->body_to_file = 0;
            return 0;
        }
    } else {
        n = ferry_transport_recvfile(c->t, c->body_fd, &c->body_off, ask, &file_err);
    }
    if (n == FERRY_EUNSUPPORTED) {
        c->no_recvfile = 1;
        return 0;
    }
    if (n == -EAGAIN)
        return -EAGAIN;
    if (file_err < 0) {
        body_file_failed(c, file_err);
        return file_err;
    }
    if (n <= 0) {
        r = n == 0 ? FERRY_ETRUNCATED : (int)n;
        conn_teardown(c, r);
        return r;
    }
    c->last_activity = ferry_loop_now(c->cl->loop);
    ferry__frame_parser_body_taken(c->parser, (uint64_t)n);
    struct ferry_frame_event ev = { .type = FERRY_FRAME_BODY, .chunk_len = (size_t)n };
    c->in_callback = 1;
    c->corked = 1;
    r = refused(c, "on_frame", c->h->on_frame(c, &ev, c->h->arg));
    c->in_callback = 0;
    c->corked = 0;
    /* Once the body is done, END needs no input: deliver nothing.  deliver
     * also flushes what the handler wrote. */
    if (r >= 0 && !c->closed)
        r = deliver(c, NULL, 0);
    if (r < 0) {
        conn_teardown(c, r);
        return r;
    }
    return 1;
}

static void conn_read(struct ferry_conn *c)
{
    struct conn_loop *cl = c->cl;

    /* Input a pause stashed goes first: bytes read now must not overtake
     * it (resume_read only defers its delivery, and readiness can come
     * before the deferred call). */
    if (has_saved(c)) {
        deliver_saved(cl->loop, c);
        if (c->closed || !reading_enabled(c) || ferry_buf_len(&c->in) > 0)
            return;
    }
    /* A pass that kept input (the handler's output went over the
     * high-water mark mid-read) ends the reads even when the flush at its
     * end lifted the pause: the kept bytes go first, from deliver_saved. */
    for (int i = 0; i < FERRY_READS_PER_EVENT && reading_enabled(c) &&
                    ferry_buf_len(&c->in) == 0; i++) {
        if (c->body_to_file && (c->body_to_pipe || !c->no_recvfile)) {
            int r = recv_body_direct(c);
            if (r < 0)
                return;
            if (r > 0)
                continue;
        }
        /* Behind a body that went into a pipe the next frame is likely
         * another such: read little more than its header, so its body is
         * left in the socket for the splice rather than copied. */
        size_t want = c->piped_last ? FERRY_HEADER_READ : FERRY_READ_CHUNK;
        ssize_t n = ferry_transport_read(c->t, cl->read_buf, want);
        if (n == -EAGAIN)
            break;
        if (n < 0) {
            conn_teardown(c, (int)n);
            return;
        }
        c->piped_last = 0;
        if (n == 0) {
            if (c->parser && !ferry_frame_parser_at_boundary(c->parser))
                conn_teardown(c, FERRY_ETRUNCATED);
            else if (ferry_buf_len(&c->out) == 0)
                conn_teardown(c, 0);
            else
                ferry_conn_close(c);   /* the peer may still read what we owe it */
            return;
        }
        c->last_activity = ferry_loop_now(cl->loop);
        int r = deliver(c, cl->read_buf, (size_t)n);
        if (r < 0) {
            conn_teardown(c, r);
            return;
        }
        if ((size_t)n < want)
            break;
    }
    /* Stopped by the per-event cap with input left inside TLS: no
     * readiness event will come for it. */
    if (!c->closed)
        schedule_pending_read(c);
}

static void on_linger_timer(struct ferry_loop *loop, struct ferry_timer *t, void *arg)
{
    (void)loop;
    (void)t;
    conn_teardown(arg, 0);
}

/*
 * A graceful close, once the output is flushed.  close() on a socket with
 * unread input makes the kernel answer with RST, which throws away replies
 * still in flight to the peer; so we only shut down our sending side, read
 * and discard until the peer closes too (or FERRY_LINGER_MS passes), and
 * close then.  Safe inside handler callbacks: nothing is freed here.
 */
static void begin_linger(struct ferry_conn *c)
{
    if (c->lingering || c->closed)
        return;
    c->lingering = 1;
    c->linger_timer = ferry_loop_timer(c->cl->loop, FERRY_LINGER_MS, on_linger_timer, c);
    linger_shut(c);
}

/* Our side's end of stream: for TLS a close_notify first, which may wait
 * for room in the socket (then writability brings us back here). */
static void linger_shut(struct ferry_conn *c)
{
    int r = ferry_transport_shutdown_write(c->t);

    c->shutdown_pending = r == -EAGAIN;
    if (r < 0 && r != -EAGAIN) {
        ferry__conn_schedule_teardown(c, 0);
        return;
    }
    ferry__conn_update_interest(c);
}

static void linger_drain(struct ferry_conn *c)
{
    for (int i = 0; i < FERRY_READS_PER_EVENT; i++) {
        ssize_t n = ferry_transport_read(c->t, c->cl->read_buf, FERRY_READ_CHUNK);
        if (n == -EAGAIN)
            return;
        if (n <= 0) {
            conn_teardown(c, 0);
            return;
        }
    }
}

/* Send queued bytes until the socket is full, calling nothing (the caller
 * may be a handler).  0, or the socket's error for the caller to act on. */
int ferry__conn_send_queued(struct ferry_conn *c)
{
    while (ferry_buf_len(&c->out) > 0) {
        struct iovec iov = { (void *)ferry_buf_head(&c->out), ferry_buf_len(&c->out) };
        ssize_t n = ferry_transport_writev(c->t, &iov, 1);
        if (n == -EAGAIN)
            break;
        if (n < 0)
            return (int)n;
        ferry_buf_consume(&c->out, (size_t)n);
        c->last_activity = ferry_loop_now(c->cl->loop);
    }
    return 0;
}

/* Send what is queued.  Returns 0, or a negative code after tearing down. */
static int conn_flush(struct ferry_conn *c)
{
    size_t high = c->opts.write_high_water;
    int r = ferry__conn_send_queued(c);

    if (r < 0) {
        conn_teardown(c, r);
        return r;
    }
    if (ferry_buf_len(&c->out) == 0 && c->closing && !c->teardown_scheduled) {
        begin_linger(c);
        return 0;
    }
    if ((c->write_blocked && ferry_buf_len(&c->out) <= high / 2) ||
        (c->drain_wanted && ferry_buf_len(&c->out) == 0)) {
        c->write_blocked = 0;
        c->drain_wanted = 0;
        ferry__conn_update_interest(c);
        if (c->h->on_drain) {
            c->in_callback = 1;
            c->h->on_drain(c, c->h->arg);
            c->in_callback = 0;
        }
        ferry__conn_schedule_saved(c);
    }
    ferry__conn_update_interest(c);
    return 0;
}

static void conn_on_io(struct ferry_loop *loop, int fd, unsigned events, void *arg)
{
    struct ferry_conn *c = arg;
    (void)loop;
    (void)fd;

    if (c->tls_handshaking) {
        ferry__conn_tls_step(c);
        return;
    }
    if (c->lingering) {
        if (c->shutdown_pending && (events & FERRY_WRITABLE))
            linger_shut(c);
        if (!c->closed && (events & (FERRY_READABLE | FERRY_HANGUP)))
            linger_drain(c);
        return;
    }
    if (events & FERRY_WRITABLE) {
        if (conn_flush(c) < 0 || c->closed)
            return;
    }
    if (events & (FERRY_READABLE | FERRY_HANGUP)) {
        if (reading_enabled(c))
            conn_read(c);
        else if (events & FERRY_HANGUP)
            /* Level-triggered hangup while we are not reading would spin;
             * the peer is gone both ways, so nobody is left to serve. */
            conn_teardown(c, FERRY_EEOF);
    }
}

static void on_idle_timer(struct ferry_loop *loop, struct ferry_timer *t, void *arg)
{
    struct ferry_conn *c = arg;
    uint64_t idle = (uint64_t)c->opts.idle_timeout_ms;
    uint64_t quiet = ferry_loop_now(loop) - c->last_activity;

    /* Activity only stamps last_activity; the timer re-arms lazily here,
     * which keeps the per-read cost at one store. */
    if (quiet < idle) {
        ferry_timer_restart(t, idle - quiet);
        return;
    }
    /* Not authenticated yet: the handshake timeout decides, so that such a
     * connection ends as one (said so, audited, penalised), not as an idle
     * session the audit trail never saw. */
    if (c->handshake_timer) {
        ferry_timer_restart(t, idle);
        return;
    }
    ferry_log_info("conn %llu (%s): idle for %llu ms, closing", (unsigned long long)c->id,
                   c->peer, (unsigned long long)quiet);
    conn_teardown(c, -ETIMEDOUT);
}

void ferry_conn_set_idle_timeout(struct ferry_conn *c, int ms)
{
    if (c->blocking || c->closed)
        return;
    c->opts.idle_timeout_ms = ms > 0 ? ms : 0;
    ferry_timer_cancel(c->idle_timer);
    c->idle_timer = NULL;
    if (ms > 0)
        c->idle_timer = ferry_loop_timer(c->cl->loop, (uint64_t)ms, on_idle_timer, c);
}

/* A connection TLS refused never reaches its handler, so the audit trail
 * (ferryd's) hears of it here: the same line a refused session gets. */
static void audit_tls_refused(const struct ferry_conn *c, const char *reason)
{
    if (!c->server)
        return;   /* a client's connection: its caller reports the failure */
    ferry_log_audit("event=session peer=%s result=denied auth=tls reason=%s", FERRY_LOG_Q(c->peer),
                    FERRY_LOG_Q(reason));
}

static void on_handshake_timer(struct ferry_loop *loop, struct ferry_timer *t, void *arg)
{
    struct ferry_conn *c = arg;
    (void)loop;
    (void)t;
    ferry_log_info("conn %llu (%s): not authenticated within %d ms, closing",
                   (unsigned long long)c->id, c->peer, c->opts.handshake_timeout_ms);
    if (c->tls_handshaking)
        audit_tls_refused(c, "not authenticated in time (TLS handshake)");
    if (c->opened && c->h->on_auth_timeout) {
        c->h->on_auth_timeout(c, c->h->arg);
        ferry_conn_close(c);
        return;
    }
    conn_teardown(c, -ETIMEDOUT);
}

/* The handler meets the connection.  0, or the handler's refusal (the
 * connection is then torn down, without on_close). */
int ferry__conn_open(struct ferry_conn *c)
{
    int r;

    if (c->h->on_open) {
        c->in_callback = 1;
        r = refused(c, "on_open", c->h->on_open(c, c->h->arg));
        c->in_callback = 0;
        if (r < 0) {
            c->close_owed = 0;     /* refused: on_close is not owed, client or server */
            conn_teardown(c, r);
            return r;
        }
    }
    c->opened = 1;
    c->close_owed = 1;
    if (c->cl->stopping && !c->closed)
        ferry_conn_close(c);
    return 0;
}

void ferry__conn_log_tls(const struct ferry_conn *c)
{
    struct ferry_tls_info info;

    if (ferry_transport_tls_info(c->t, &info) < 0)
        return;
    ferry_log_debug("conn %llu (%s): %s %s%s%s%s%s%s", (unsigned long long)c->id, c->peer,
                    info.version, info.cipher, info.group[0] ? ", " : "", info.group,
                    info.psk_identity ? ", PSK " : "", info.psk_identity ? info.psk_identity : "",
                    info.ktls_send ? ", kernel TLS" : "");
}

/* One step of a TLS handshake, on readiness (a client's first one from
 * client_start: it speaks first). */
void ferry__conn_tls_step(struct ferry_conn *c)
{
    int r = ferry_transport_handshake(c->t);

    if (r == -EAGAIN) {
        unsigned ev = ferry_transport_wants(c->t) & POLLOUT ? FERRY_WRITABLE : FERRY_READABLE;
        if (ev != c->events && ferry_loop_modify(c->cl->loop, c->fd, ev) == 0)
            c->events = ev;
        return;
    }
    if (r < 0) {
        const char *why = ferry_transport_error(c->t)[0] ? ferry_transport_error(c->t)
                                                         : ferry_strerror(r);
        /* A peer that only connects and goes (a flood, or one evicted by
         * admission) is not worth a line each, nor a session in the audit
         * trail: debug for those. */
        if (r == FERRY_EEOF || r == -ECONNRESET) {
            ferry_log_debug("conn %llu (%s): TLS handshake failed: %s",
                            (unsigned long long)c->id, c->peer, why);
        } else {
            ferry_log_info("conn %llu (%s): TLS handshake failed: %s",
                           (unsigned long long)c->id, c->peer, why);
            audit_tls_refused(c, why);
        }
        conn_teardown(c, r);
        return;
    }
    c->tls_handshaking = 0;
    c->last_activity = ferry_loop_now(c->cl->loop);
    ferry__conn_log_tls(c);
    if (ferry__conn_open(c) < 0 || c->closed)
        return;
    ferry__conn_update_interest(c);
    /* The client may have sent its first request with its last handshake
     * flight: it can already sit in TLS's buffer. */
    if (reading_enabled(c))
        conn_read(c);
}

void ferry__conn_opts_of_server(const struct ferry_server *s, struct ferry_conn_opts *o)
{
    *o = (struct ferry_conn_opts){
        .write_high_water = s->opts.write_high_water,
        .frame_limits = s->opts.frame_limits,
        .idle_timeout_ms = s->opts.idle_timeout_ms,
        .handshake_timeout_ms = s->opts.handshake_timeout_ms,
    };
}

/* A new event-style connection over t on cl: watched for `events`, timed,
 * in cl's list; the handler has not met it yet.  0 and *out (t is now the
 * connection's), or a negative code (t still the caller's). */
int ferry__conn_event_new(struct conn_loop *cl, struct ferry_transport *t,
                          const struct ferry_handler *h, const struct ferry_conn_opts *o,
                          uint64_t id, const char *peer, unsigned events, struct ferry_conn **out)
{
    struct ferry_conn *c = calloc(1, sizeof *c);
    int r;

    if (!c)
        return -ENOMEM;
    c->h = h;
    c->cl = cl;
    c->t = t;
    c->fd = ferry_transport_fd(t);
    c->id = id;
    c->opts = *o;
    c->body_fd = -1;
    snprintf(c->peer, sizeof c->peer, "%s", peer ? peer : "");
    ferry_buf_init(&c->out, 0);
    ferry_buf_init(&c->in, FERRY_READ_CHUNK);
    if (h->on_frame) {
        r = ferry_frame_parser_new(&o->frame_limits, &c->parser);
        if (r < 0)
            goto fail;
    }
    c->last_activity = ferry_loop_now(cl->loop);
    c->events = events;
    r = ferry_loop_add(cl->loop, c->fd, c->events, conn_on_io, c);
    if (r < 0)
        goto fail;
    if (o->idle_timeout_ms > 0)
        c->idle_timer = ferry_loop_timer(cl->loop, (uint64_t)o->idle_timeout_ms, on_idle_timer, c);
    if (o->handshake_timeout_ms > 0)
        c->handshake_timer = ferry_loop_timer(cl->loop, (uint64_t)o->handshake_timeout_ms,
                                              on_handshake_timer, c);
    list_push(&cl->conns, &c->link);
    cl->nconns++;
    *out = c;
    return 0;

fail:
    ferry_frame_parser_free(c->parser);
    ferry_buf_free(&c->out);
    ferry_buf_free(&c->in);
    free(c);
    return r;
}

void ferry_conn_close(struct ferry_conn *c)
{
    if (c->blocking || c->closed || c->teardown_scheduled)
        return;
    if (c->tls_handshaking) {
        ferry__conn_schedule_teardown(c, 0);   /* nothing was said yet: nothing to flush */
        return;
    }
    c->closing = 1;
    if (ferry_buf_len(&c->out) == 0)
        begin_linger(c);
    else
        ferry__conn_update_interest(c);   /* stop reading; conn_flush finishes the close */
}
