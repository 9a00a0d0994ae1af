/*
 * conn.c - connections: the event-style engine (read, deliver, queue,
 * backpressure, timeouts, deferred teardown, bodies into files) for the
 * server's connections and the ones a client opens on its own loop, and
 * the blocking-style I/O that thread- and process-per-connection handlers
 * use.
 *
 * Teardown rule: handler code may call ferry_conn_close/abort (or hit a
 * write error) from inside its own callbacks, so those never free anything
 * on the spot.  They schedule a deferred teardown; the teardown runs
 * on_close and schedules the free one step later still, so every deferred
 * call that was queued while the connection lived runs before its memory
 * goes away.
 */
#include "server_int.h"
#include "clock.h"
#include "frame_int.h"
#include "loop_int.h"
#include "transport_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ferry/error.h"
#include "ferry/frame.h"
#include "ferry/log.h"
#include "ferry/tls.h"
#include "ferry/transport.h"

/* The most one recvfile is asked for: what recvfile's pipe holds. */
#define FERRY_RECVFILE_CHUNK (1u << 20)

static void conn_on_io(struct ferry_loop *loop, int fd, unsigned events, void *arg);
static void conn_teardown(struct ferry_conn *c, int reason);
static void schedule_teardown(struct ferry_conn *c, int reason);
static void begin_linger(struct ferry_conn *c);
static void linger_shut(struct ferry_conn *c);
static void conn_teardown_now(struct ferry_conn *c, int reason, int free_now);
static void schedule_pending_read(struct ferry_conn *c);
static void tls_step(struct ferry_conn *c);
static void conn_read(struct ferry_conn *c);
static void client_loop_free(struct conn_loop *cl);

int ferry__handler_is_event(const struct ferry_handler *h)
{
    return h->on_open || h->on_data || h->on_frame;
}

/* ---- the loop a set of event-style connections runs on -------------------- */

static void on_stop_pipe(struct ferry_loop *loop, int fd, unsigned events, void *arg)
{
    struct conn_loop *cl = arg;
    (void)events;
    ferry_loop_remove(loop, fd);
    ferry__conn_loop_shutdown(cl);
}

int ferry__conn_loop_init(struct conn_loop *cl, struct ferry_server *s)
{
    int r = 0;

    memset(cl, 0, sizeof *cl);
    list_init(&cl->conns);
    cl->server = s;
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

void ferry__conn_loop_shutdown(struct conn_loop *cl)
{
    struct list_node *n, *tmp;

    if (cl->stopping)
        return;
    cl->stopping = 1;
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

void ferry__conn_loop_abort_all(struct conn_loop *cl, int loop_done)
{
    struct list_node *n, *tmp;

    list_for_each_safe(n, tmp, &cl->conns)
        conn_teardown_now(list_entry(n, struct ferry_conn, link), FERRY_ECLOSED, loop_done);
}

/* ---- event-style engine ----------------------------------------------------- */

static int reading_enabled(const struct ferry_conn *c)
{
    return !c->closed && !c->closing && !c->user_paused && !c->write_blocked;
}

static void update_interest(struct ferry_conn *c)
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

    ferry_transport_free(c->t);
    ferry_buf_free(&c->out);
    ferry_buf_free(&c->in);
    ferry_frame_parser_free(c->parser);
    if (c->server)
        ferry__slot_release(&c->server->slots, c->unauth_held);
    free(c);
    cl->nconns--;
    if (cl->client && cl->nconns == 0 && !cl->releasing)
        client_loop_free(cl);
    else
        maybe_finished(cl);
}

/* Tear down now: stop watching, tell the handler, free later (or at once
 * when the loop has finished and will run no more deferred calls).  Must
 * not be called from inside one of this connection's handler callbacks. */
static void conn_teardown_now(struct ferry_conn *c, int reason, int free_now)
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
    conn_teardown_now(c, reason, 0);
}

static void deferred_teardown(struct ferry_loop *loop, void *arg)
{
    struct ferry_conn *c = arg;
    (void)loop;
    conn_teardown(c, c->pending_reason);
}

/* Teardown from API calls that handler code makes: always deferred. */
static void schedule_teardown(struct ferry_conn *c, int reason)
{
    if (c->closed || c->teardown_scheduled)
        return;
    c->teardown_scheduled = 1;
    c->pending_reason = reason;
    c->closing = 1;
    update_interest(c);
    if (ferry_loop_defer(c->cl->loop, deferred_teardown, c) < 0) {
        /* Cannot defer: let the next I/O event finish it. */
        c->teardown_scheduled = 0;
    }
}

static int deliver(struct ferry_conn *c, const uint8_t *data, size_t len);
static int conn_flush(struct ferry_conn *c);

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

/* Input that arrived while the handler paused reading mid-chunk is kept
 * in c->in and delivered from here once reading resumes. */
static void deliver_saved(struct ferry_loop *loop, void *arg)
{
    struct ferry_conn *c = arg;
    int r;
    (void)loop;

    c->resume_scheduled = 0;
    if (c->closed || !reading_enabled(c) || ferry_buf_len(&c->in) == 0)
        return;
    /* deliver() may stash a remainder back into c->in, so hand it a copy
     * of the view and consume before calling. */
    size_t n = ferry_buf_len(&c->in);
    uint8_t *copy = malloc(n);
    if (!copy) {
        conn_teardown(c, -ENOMEM);
        return;
    }
    memcpy(copy, ferry_buf_head(&c->in), n);
    ferry_buf_clear(&c->in);
    r = deliver(c, copy, n);
    free(copy);
    if (r < 0)
        conn_teardown(c, r);
    else
        update_interest(c);
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

    if (c->body_to_file && ev->type == FERRY_FRAME_BODY) {
        r = ferry__pwrite_all(c->body_fd, ev->chunk, ev->chunk_len, c->body_off);
        if (r < 0) {
            body_file_failed(c, r);
            return 0;
        }
        c->body_off += ev->chunk_len;
    } else if (ev->type == FERRY_FRAME_END) {
        c->body_to_file = 0;
    }
    c->at_header = ev->type == FERRY_FRAME_HEADER && ev->body_size > 0;
    r = c->h->on_frame(c, ev, c->h->arg);
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
                r = c->h->on_data(c, in.p, in.len, c->h->arg);
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
    int file_err = 0;
    ssize_t n;
    int r;

    if (left == 0 || ferry_buf_len(&c->in) > 0)
        return 0;
    n = ferry_transport_recvfile(c->t, c->body_fd, &c->body_off,
                                 left < FERRY_RECVFILE_CHUNK ? (size_t)left : FERRY_RECVFILE_CHUNK,
                                 &file_err);
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
    r = c->h->on_frame(c, &ev, c->h->arg);
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

    for (int i = 0; i < FERRY_READS_PER_EVENT && reading_enabled(c); i++) {
        if (c->body_to_file && !c->no_recvfile) {
            int r = recv_body_direct(c);
            if (r < 0)
                return;
            if (r > 0)
                continue;
        }
        ssize_t n = ferry_transport_read(c->t, cl->read_buf, FERRY_READ_CHUNK);
        if (n == -EAGAIN)
            break;
        if (n < 0) {
            conn_teardown(c, (int)n);
            return;
        }
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
        if ((size_t)n < FERRY_READ_CHUNK)
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
        schedule_teardown(c, 0);
        return;
    }
    update_interest(c);
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
static int send_queued(struct ferry_conn *c)
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
    int r = send_queued(c);

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
        update_interest(c);
        if (c->h->on_drain) {
            c->in_callback = 1;
            c->h->on_drain(c, c->h->arg);
            c->in_callback = 0;
        }
        if (!c->closed && ferry_buf_len(&c->in) > 0 && !c->resume_scheduled &&
            ferry_loop_defer(c->cl->loop, deliver_saved, c) == 0)
            c->resume_scheduled = 1;
    }
    update_interest(c);
    return 0;
}

static void conn_on_io(struct ferry_loop *loop, int fd, unsigned events, void *arg)
{
    struct ferry_conn *c = arg;
    (void)loop;
    (void)fd;

    if (c->tls_handshaking) {
        tls_step(c);
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
    ferry_log_info("conn %llu (%s): idle for %llu ms, closing", (unsigned long long)c->id,
                   c->peer, (unsigned long long)quiet);
    conn_teardown(c, -ETIMEDOUT);
}

static void on_handshake_timer(struct ferry_loop *loop, struct ferry_timer *t, void *arg)
{
    struct ferry_conn *c = arg;
    (void)loop;
    (void)t;
    ferry_log_info("conn %llu (%s): not authenticated within %d ms, closing",
                   (unsigned long long)c->id, c->peer, c->opts.handshake_timeout_ms);
    conn_teardown(c, -ETIMEDOUT);
}

/* The handler meets the connection.  0, or the handler's refusal (the
 * connection is then torn down, without on_close). */
static int conn_open(struct ferry_conn *c)
{
    int r;

    if (c->h->on_open) {
        c->in_callback = 1;
        r = c->h->on_open(c, c->h->arg);
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

static void log_tls(const struct ferry_conn *c)
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
static void tls_step(struct ferry_conn *c)
{
    int r = ferry_transport_handshake(c->t);

    if (r == -EAGAIN) {
        unsigned ev = ferry_transport_wants(c->t) & POLLOUT ? FERRY_WRITABLE : FERRY_READABLE;
        if (ev != c->events && ferry_loop_modify(c->cl->loop, c->fd, ev) == 0)
            c->events = ev;
        return;
    }
    if (r < 0) {
        ferry_log_info("conn %llu (%s): TLS handshake failed: %s", (unsigned long long)c->id,
                       c->peer, ferry_transport_error(c->t)[0] ? ferry_transport_error(c->t)
                                                               : ferry_strerror(r));
        conn_teardown(c, r);
        return;
    }
    c->tls_handshaking = 0;
    c->last_activity = ferry_loop_now(c->cl->loop);
    log_tls(c);
    if (conn_open(c) < 0 || c->closed)
        return;
    update_interest(c);
    /* The client may have sent its first request with its last handshake
     * flight: it can already sit in TLS's buffer. */
    if (reading_enabled(c))
        conn_read(c);
}

static void conn_opts_of_server(const struct ferry_server *s, struct ferry_conn_opts *o)
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
static int conn_event_new(struct conn_loop *cl, struct ferry_transport *t,
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
        conn_opts_of_server(s, &o);
        r = conn_event_new(cl, t, &l->h, &o, atomic_fetch_add(&s->next_conn_id, 1) + 1, peer,
                           FERRY_READABLE, &c);
    }
    if (r < 0) {
        if (t)
            ferry_transport_free(t);   /* closes fd */
        else
            close(fd);
        ferry__slot_release(&s->slots, s->slots.unauth_capped);
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
    return conn_open(c);
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
        close(fd);
        ferry__slot_release(&s->slots, s->slots.unauth_capped);
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

/* ---- connections a client opens on its own loop ----------------------------------- */

static void client_loop_free(struct conn_loop *cl)
{
    ferry__loop_set_slot(cl->loop, NULL, NULL);
    free(cl->read_buf);
    free(cl);
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
        cl->client = 1;
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
        update_interest(c);   /* closed before it started: finish that */
        return;
    }
    if (c->tls_handshaking) {
        tls_step(c);
        return;
    }
    if (conn_open(c) < 0 || c->closed)
        return;
    update_interest(c);
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
    r = conn_event_new(cl, t, h, &opts, ++cl->next_id, peer, 0, &c);
    if (r == 0 && ferry_loop_defer(loop, client_start, c) < 0) {
        r = -ENOMEM;
        c->t = NULL;   /* stays the caller's */
        conn_teardown_now(c, r, 1);
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

/* ---- blocking style ------------------------------------------------------------ */

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
        if (r != FERRY_ECLOSED)
            ferry_log_info("conn %llu (%s): TLS handshake failed: %s",
                           (unsigned long long)c->id, c->peer,
                           ferry_transport_error(c->t)[0] ? ferry_transport_error(c->t)
                                                          : ferry_strerror(r));
        return r;
    }
    log_tls(c);
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
    conn_opts_of_server(s, &c.opts);
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
        close(fd);
        ferry__slot_release(&s->slots, s->slots.unauth_capped);
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
    ferry_transport_free(c.t);
    ferry__slot_release(&s->slots, c.unauth_held);
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

/* ---- output, both styles --------------------------------------------------------- */

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
        r = send_queued(c);
        if (r < 0) {
            schedule_teardown(c, r);
            return r;
        }
    }
    /* Nothing queued: try the socket directly and only queue the rest,
     * which saves a loop iteration and a copy on the common path. */
    if (!cork && ferry_buf_len(&c->out) == 0 && !c->starting && !c->tls_handshaking) {
        ssize_t n = ferry_transport_writev(c->t, iov, iovcnt);
        if (n < 0 && n != -EAGAIN) {
            schedule_teardown(c, (int)n);
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
            schedule_teardown(c, r);
            return r;
        }
    }
    high = c->opts.write_high_water;
    if (ferry_buf_len(&c->out) > high)
        c->write_blocked = 1;
    /* Corked: the flush at the end of the pass settles the interest set,
     * usually without asking for writability at all. */
    if (!c->corked)
        update_interest(c);
    return 0;
}

int ferry_conn_write(struct ferry_conn *c, const void *data, size_t len)
{
    struct iovec iov = { (void *)data, len };
    return ferry_conn_writev(c, &iov, 1);
}

int ferry_conn_write_frame(struct ferry_conn *c, json_t *header, const void *body, size_t body_len)
{
    uint8_t *head = NULL;
    size_t head_len = 0;
    int r;

    /* The configured limits bound what we accept (and may be small before
     * a peer authenticates); what we send is bounded only by the format's
     * default, or by the configured limit where that is larger. */
    struct ferry_frame_limits send = c->opts.frame_limits;
    if (send.max_header < FERRY_FRAME_DEFAULT_MAX_HEADER)
        send.max_header = FERRY_FRAME_DEFAULT_MAX_HEADER;
    r = ferry_frame_encode(header, body_len, &send, &head, &head_len);
    if (r < 0)
        return r;
    struct iovec iov[2] = { { head, head_len }, { (void *)body, body_len } };
    r = ferry_conn_writev(c, iov, body_len ? 2 : 1);
    free(head);
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
    update_interest(c);
}

size_t ferry_conn_pending(const struct ferry_conn *c)
{
    return c->blocking ? 0 : ferry_buf_len(&c->out);
}

int ferry_conn_write_blocked(const struct ferry_conn *c)
{
    return !c->blocking && c->write_blocked;
}

/* ---- control ---------------------------------------------------------------------- */

void ferry_conn_pause_read(struct ferry_conn *c)
{
    if (c->blocking || c->user_paused)
        return;
    c->user_paused = 1;
    update_interest(c);
}

void ferry_conn_resume_read(struct ferry_conn *c)
{
    if (c->blocking || !c->user_paused)
        return;
    c->user_paused = 0;
    update_interest(c);
    if (!c->closed && ferry_buf_len(&c->in) > 0 && !c->resume_scheduled &&
        ferry_loop_defer(c->cl->loop, deliver_saved, c) == 0)
        c->resume_scheduled = 1;
}

void ferry_conn_close(struct ferry_conn *c)
{
    if (c->blocking || c->closed || c->teardown_scheduled)
        return;
    if (c->tls_handshaking) {
        schedule_teardown(c, 0);   /* nothing was said yet: nothing to flush */
        return;
    }
    c->closing = 1;
    if (ferry_buf_len(&c->out) == 0)
        begin_linger(c);
    else
        update_interest(c);   /* stop reading; conn_flush finishes the close */
}

void ferry_conn_abort(struct ferry_conn *c, int reason)
{
    if (c->blocking) {
        shutdown(c->fd, SHUT_RDWR);
        return;
    }
    ferry_buf_clear(&c->out);
    schedule_teardown(c, reason ? reason : FERRY_ECLOSED);
}

int ferry_conn_recv_body_to_file(struct ferry_conn *c, int fd, uint64_t offset)
{
    if (c->blocking || !c->at_header || fd < 0 || offset > (uint64_t)INT64_MAX)
        return -EINVAL;
    c->body_fd = fd;
    c->body_off = offset;
    c->body_to_file = 1;
    return 0;
}

/* ---- accessors -------------------------------------------------------------------- */

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
        ferry__slot_unauth_release(&c->server->slots);
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
