/*
 * client_session.c - a session as a ferry_conn on the client's one loop,
 * and the file service's frames over it (client_session.h).
 *
 * The file service's requests read like blocking code: each waits by
 * running the loop until its answer's header is in the slot.  The slot
 * holds one header: the connection stops reading when it fills (pause at
 * HEADER), so a listing's many frames arrive one by one as they are
 * taken, and nothing is buffered here beyond what libferry holds.
 */
#include "client_session.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/sockios.h>   /* SIOCOUTQ */

#include "ferry/ferry.h"
#include "proto.h"
#include "signals.h"

/* Before authentication a server's messages are small (PROTOCOL.md 2);
 * after it the file service's data frames carry up to 16 MiB (a command's
 * output chunks are smaller). */
static const struct ferry_frame_limits preauth_limits = {
    .max_header = PROTO_PREAUTH_MAX_HEADER,
};
static const struct ferry_frame_limits session_limits = {
    .max_header = PROTO_MAX_HEADER,
    .max_body = PROTO_DATA_SEGMENT,
};

static struct ferry_loop *the_loop;

/* The signal pipe (signals.h) wakes the loop: a forwarding hook takes the
 * signals (exec_stream.c sets one), or else a transfer's interrupt stops
 * whatever waits. */
static void on_signal_pipe(struct ferry_loop *loop, int fd, unsigned events, void *arg)
{
    (void)fd;
    (void)events;
    (void)arg;
    if (!signals_dispatch())
        ferry_loop_stop(loop);
}

struct ferry_loop *client_loop(void)
{
    int fd;

    if (the_loop)
        return the_loop;
    fd = signals_pipe_fd();
    if (fd < 0 || ferry_loop_new(&the_loop) < 0)
        return NULL;
    if (ferry_loop_add(the_loop, fd, FERRY_READABLE, on_signal_pipe, NULL) < 0) {
        ferry_loop_free(the_loop);
        the_loop = NULL;
    }
    return the_loop;
}

void session_wake(struct client_session *s)
{
    ferry_loop_stop(s->loop);
}

/* Run the loop until a wake.  The loop itself failing (epoll) leaves
 * nothing to wait with: the session is then gone. */
static void loop_turns(struct client_session *s)
{
    int r = ferry_loop_run(s->loop);

    if (r < 0) {
        s->broken = s->gone = 1;
        if (!s->close_reason)
            s->close_reason = r;
    }
}

/* ---- the connection's handler -------------------------------------------------- */

/* Keep a closing message's words for people: printable ASCII only (they
 * come from the peer and go to a terminal). */
static void keep_closing(struct client_session *s, const json_t *h)
{
    const char *msg = json_string_value(json_object_get(h, "message"));

    if (!msg)
        msg = json_string_value(json_object_get(h, "reason"));
    snprintf(s->closing, sizeof s->closing, "%s", msg ? msg : "no reason given");
    for (char *p = s->closing; *p; p++)
        if (*p < 0x20 || *p > 0x7e)
            *p = '?';
    ferry_log_debug("the server closes the connection: %s", s->closing);
}

/* A TLS handshake the server answered in the clear: a ferryd at its
 * connection limit sends a closing frame before TLS (PROTOCOL.md 2.7). */
static void plain_answer(struct client_session *s, struct ferry_transport *t)
{
    static const struct ferry_frame_limits limits = { .max_header = PROTO_PREAUTH_MAX_HEADER };
    size_t len = 0, used = 0;
    const uint8_t *p = ferry_transport_plain_answer(t, &len);
    struct ferry_frame_parser *parser = NULL;
    struct ferry_frame_event ev = { 0 };

    if (!p || ferry_frame_parser_new(&limits, &parser) < 0)
        return;
    /* Through the codec like every frame: only a whole header counts. */
    if (ferry_frame_parser_feed(parser, p, len, &used, &ev) == FERRY_FRAME_HEADER) {
        const char *type = json_string_value(json_object_get(ev.header, "type"));

        if (ev.body_size == 0 && type && strcmp(type, MSG_CLOSING) == 0)
            keep_closing(s, ev.header);
        json_decref(ev.header);
    }
    ferry_frame_parser_free(parser);
}

/* A header that is about the connection, not the request in hand: a
 * pong or an upload's put-ack (hearing them is all they are for) or the
 * server's reason for closing, shown once the connection is gone
 * (session_gone_text).  1 when taken. */
static int connection_message(struct client_session *s, struct ferry_frame_event *ev)
{
    const char *type = json_string_value(json_object_get(ev->header, "type"));

    if (!type || ev->body_size > 0)
        return 0;
    if (strcmp(type, MSG_PONG) == 0 || strcmp(type, MSG_PUT_ACK) == 0) {
        json_decref(ev->header);
        return 1;
    }
    if (strcmp(type, MSG_CLOSING) != 0)
        return 0;
    keep_closing(s, ev->header);
    json_decref(ev->header);
    return 1;
}

static int on_frame(struct ferry_conn *c, struct ferry_frame_event *ev, void *arg)
{
    struct client_session *s = arg;

    s->heard_at = ferry_loop_now(s->loop);
    s->ping_at = 0;
    if (ev->type == FERRY_FRAME_HEADER && connection_message(s, ev))
        return 0;
    if (s->rx)
        return s->rx(s, ev, s->rx_arg);
    switch (ev->type) {
    case FERRY_FRAME_HEADER:
        /* One at a time: the next waits inside libferry until this one
         * is taken. */
        json_decref(s->hdr);
        s->hdr = ev->header;
        s->hdr_body = ev->body_size;
        ferry_conn_pause_read(c);
        session_wake(s);
        break;
    case FERRY_FRAME_ERROR:
        s->broken = 1;
        s->close_reason = ev->error;
        session_wake(s);
        break;
    default:
        break;   /* bodies of answers that have none to speak of */
    }
    return 0;
}

static int on_open(struct ferry_conn *c, void *arg)
{
    struct client_session *s = arg;

    (void)c;
    s->opened = 1;
    session_wake(s);
    return 0;
}

static void on_drain(struct ferry_conn *c, void *arg)
{
    (void)c;
    session_wake(arg);
}

static void on_close(struct ferry_conn *c, int reason, void *arg)
{
    struct client_session *s = arg;

    /* A failed TLS handshake's reason is the transport's, and only until
     * we return.  So is an alert after our side of the handshake ended: a
     * TLS 1.3 server judges the client's certificate (or its absence)
     * only then. */
    snprintf(s->tls_error, sizeof s->tls_error, "%s",
             ferry_transport_error(ferry_conn_transport(c)));
    if (!s->opened)
        plain_answer(s, ferry_conn_transport(c));
    s->conn = NULL;
    ferry_timer_cancel(s->keepalive);
    s->keepalive = NULL;
    s->gone = 1;
    s->broken = 1;
    if (!s->close_reason)
        s->close_reason = reason;
    session_wake(s);
}

int session_start(struct client_session *s, struct ferry_transport *t, int timeout_ms)
{
    const struct ferry_conn_opts opts = {
        .frame_limits = preauth_limits,
        .handshake_timeout_ms = timeout_ms,
    };
    const struct ferry_handler h = {
        .on_open = on_open,
        .on_frame = on_frame,
        .on_drain = on_drain,
        .on_close = on_close,
        .arg = s,
    };
    int r;

    s->loop = client_loop();
    if (!s->loop) {
        ferry_transport_free(t);
        return -ENOMEM;
    }
    r = ferry_conn_open(s->loop, t, s->peer, &h, &opts, &s->conn);
    if (r < 0)
        ferry_transport_free(t);
    return r;
}

/* Our socket's send queue, for the keepalive: the bytes we wrote that
 * the server's kernel has not acknowledged (SIOCOUTQ).  Over TLS the fd
 * under the transport is still the TCP socket; the queue counts
 * ciphertext.  -1 when the transport cannot say (not a socket). */
static int send_queue(struct client_session *s, uint64_t *outq)
{
    int fd = ferry_transport_fd(ferry_conn_transport(s->conn)), n = 0;

    if (fd < 0 || ioctl(fd, SIOCOUTQ, &n) < 0 || n < 0)
        return -1;
    *outq = (uint64_t)n;
    return 0;
}

/* Whether the server showed signs of life since the keepalive's last look
 * other than a frame (on_frame counts those).  While our queue hands the
 * kernel more, that is one.  After our last bytes left it, megabytes may
 * still be in flight and nothing leaves at all: the socket's send queue
 * shrinking (the server's kernel acknowledging our bytes, as the server
 * reads and opens its window) counts then, so the silence is counted from
 * when it stops shrinking.  An ack to bytes that found room at once (a
 * keystroke, a ping) never counts: the queue only shrinks from what it
 * held at the last look, which the ping is not part of (on_keepalive). */
static int peer_progress(struct client_session *s, uint64_t sent, int sending)
{
    uint64_t outq;
    int moved = sending && sent > s->sent_seen;

    if (send_queue(s, &outq) < 0)
        return moved;
    moved = moved || outq < s->outq_seen;
    s->outq_seen = outq;
    return moved;
}

/* The keepalive's clock (session_authenticated).  A header waiting in
 * the slot has paused reading: the server's words wait unread then, so
 * that is not silence.  While we are the ones sending (an upload), the
 * server taking our bytes is its sign of life (peer_progress), and no
 * ping may cut into a data frame's body: a silent, stalled upload is
 * given up without one.  After our last bytes the server answers an
 * upload that asked (put-ack) as it takes the bytes still in flight. */
static void on_keepalive(struct ferry_loop *loop, struct ferry_timer *t, void *arg)
{
    struct client_session *s = arg;
    uint64_t now = ferry_loop_now(loop), quiet, sent;
    int sending;
    json_t *ping;

    if (!s->conn)
        return;
    sent = session_sent(s);
    sending = s->body_left > 0 || ferry_conn_pending(s->conn) > 0;
    if (peer_progress(s, sent, sending)) {
        s->heard_at = now;
        s->ping_at = 0;
    }
    s->sent_seen = sent;
    if (s->hdr)
        s->heard_at = now;
    quiet = now - s->heard_at;
    if (quiet < s->keepalive_ms) {
        ferry_timer_restart(t, s->keepalive_ms - quiet);
        return;
    }
    if (s->ping_at == 0) {
        if (!sending) {
            ping = json_pack("{s:s}", "type", MSG_PING);
            if (ping)
                (void)session_write_frame(s, ping, NULL, 0);
            json_decref(ping);
            /* The ping leaving proves nothing; outq_seen stays what it
             * was before it, so its acknowledgement proves nothing either
             * (that is the server's kernel, not ferryd). */
            s->sent_seen = session_sent(s);
        }
        s->ping_at = now;
        ferry_timer_restart(t, s->keepalive_ms);
        return;
    }
    ferry_log_debug("no word from %s for %llu ms, a ping unanswered", s->peer,
                    (unsigned long long)quiet);
    s->close_reason = FERRY_EKEEPALIVE;
    s->broken = 1;
    ferry_conn_abort(s->conn, FERRY_EKEEPALIVE);
}

void session_authenticated(struct client_session *s, uint64_t keepalive_ms)
{
    if (!s->conn)
        return;
    ferry_conn_set_authenticated(s->conn);
    ferry_conn_set_frame_limits(s->conn, &session_limits);
    if (keepalive_ms > 0) {
        s->keepalive_ms = keepalive_ms;
        s->heard_at = ferry_loop_now(s->loop);
        s->keepalive = ferry_loop_timer(s->loop, keepalive_ms, on_keepalive, s);
    }
}

void session_release(struct client_session *s)
{
    json_t *m;
    uint64_t mark;

    if (!s || !s->via_master || !s->conn || s->broken)
        return;
    m = json_pack("{s:s, s:s}", "type", "master", "op", "release");
    if (!m || session_write_frame(s, m, NULL, 0) < 0) {
        json_decref(m);
        return;
    }
    json_decref(m);
    /* Sent before the close below drops what is queued: a unix socket
     * takes it at once, or on the loop's next turns. */
    mark = s->queued;
    while (s->conn && !s->gone && session_sent(s) < mark) {
        ferry_conn_want_drain(s->conn);
        loop_turns(s);
    }
}

void client_session_close(struct client_session *s)
{
    if (!s)
        return;
    if (s->conn) {
        /* What is queued is dropped, as a closed socket would drop it. */
        ferry_conn_abort(s->conn, 0);
        while (!s->gone)
            loop_turns(s);
    }
    /* The transport is freed a turn after on_close; it uses s->tls. */
    if (s->loop)
        session_poll(s);
    json_decref(s->hdr);
    ferry_transport_free(s->t);
    if (!s->tls_borrowed)
        ferry_tls_free(s->tls);
    free(s);
}

void session_set_receiver(struct client_session *s, session_rx_fn *fn, void *arg)
{
    s->rx = fn;
    s->rx_arg = arg;
    if (fn && s->hdr) {
        struct ferry_frame_event ev = { .type = FERRY_FRAME_HEADER, .header = s->hdr,
                                        .body_size = s->hdr_body };

        s->hdr = NULL;
        if (fn(s, &ev, arg) < 0 && s->conn)
            ferry_conn_close(s->conn);
        if (s->conn)
            ferry_conn_resume_read(s->conn);
    }
}

int session_wait(struct client_session *s)
{
    if (!signals_interrupted && !s->gone)
        loop_turns(s);
    return signals_interrupted ? -EINTR : 0;
}

static void stop_now(struct ferry_loop *loop, void *arg)
{
    (void)arg;
    ferry_loop_stop(loop);
}

void session_poll(struct client_session *s)
{
    if (ferry_loop_defer(s->loop, stop_now, NULL) == 0)
        loop_turns(s);
}

int session_write_frame(struct client_session *s, json_t *hdr, const void *body, size_t body_len)
{
    uint8_t *enc = NULL;
    size_t len = 0;
    int r;

    if (!s->conn)
        return FERRY_ECLOSED;
    r = ferry_frame_encode(hdr, body_len, NULL, &enc, &len);
    if (r == 0) {
        struct iovec iov[2] = { { enc, len }, { (void *)body, body_len } };

        r = ferry_conn_writev(s->conn, iov, body_len > 0 ? 2 : 1);
        if (r == 0)
            s->queued += len + body_len;
    }
    free(enc);
    return r;
}

uint64_t session_sent(const struct client_session *s)
{
    return s->conn ? s->queued - ferry_conn_pending(s->conn) : s->queued;
}

int session_ask_put_acks(const struct client_session *s, json_t *req)
{
    uint64_t ms;

    if (!s->put_ack || s->keepalive_ms == 0)
        return 0;
    /* A quarter of the interval: a put-ack held up by a busy turn or two
     * still leaves the server heard from well within it. */
    ms = s->keepalive_ms / 4;
    if (ms < PROTO_PUT_ACK_MIN_MS)
        ms = PROTO_PUT_ACK_MIN_MS;
    if (ms > PROTO_PUT_ACK_MAX_MS)
        ms = PROTO_PUT_ACK_MAX_MS;
    return json_object_set_new(req, "ack_ms", json_integer((json_int_t)ms)) < 0 ? -ENOMEM : 0;
}

void session_gone_text(const struct client_session *s, char *buf, size_t len)
{
    int r = s->close_reason;

    if (s->closing[0])
        snprintf(buf, len, "connection closed by server: %s", s->closing);
    else if (r == FERRY_EKEEPALIVE)
        snprintf(buf, len, "%s stopped answering: no reply to keepalive within %g s",
                 s->peer, 2 * (double)s->keepalive_ms / 1000.0);
    else if (r == 0 || r == FERRY_EEOF || r == FERRY_ETRUNCATED || r == FERRY_ECLOSED)
        snprintf(buf, len, "connection closed by server");
    else if (r <= FERRY_EHDR_EMPTY && r >= FERRY_EBODY_TOOBIG)
        snprintf(buf, len, "protocol error: %s: %s", s->peer, ferry_strerror(r));
    else
        snprintf(buf, len, "connection to %s lost: %s", s->peer, ferry_strerror(r));
}

/* ---- the file service's frames ----------------------------------------------------- */

int session_lost(struct client_session *s, struct fs_error *err, const char *fmt, ...)
{
    va_list ap;

    s->broken = 1;
    err->code[0] = err->errname[0] = '\0';
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return FERRY_ELOST;
}

int session_lost_gone(struct client_session *s, struct fs_error *err)
{
    char why[SESSION_GONE_TEXT_MAX];

    session_gone_text(s, why, sizeof why);
    return session_lost(s, err, "%s", why);
}

/* Copy a string member into a fixed buffer, cutting it if it is long. */
static void copy_member(char *dst, size_t cap, const json_t *h, const char *name)
{
    const char *v = json_string_value(json_object_get(h, name));

    snprintf(dst, cap, "%s", v ? v : "");
}

int session_remote_error(struct client_session *s, const json_t *h, struct fs_error *err)
{
    copy_member(err->code, sizeof err->code, h, "code");
    copy_member(err->errname, sizeof err->errname, h, "errno");
    copy_member(err->message, sizeof err->message, h, "message");
    if (strcmp(err->code, ERR_PROTOCOL) == 0 || strcmp(err->code, ERR_AUTH) == 0) {
        /* The server closes after these; say which it was. */
        char msg[sizeof err->message];

        snprintf(msg, sizeof msg, "%s", err->message);
        session_lost(s, err, "%s: %s", err->code[0] == 'p' ? "protocol error" :
                     "authentication failed", msg);
        return FERRY_ELOST;
    }
    return FERRY_EREMOTE;
}

/* A failed write: the connection's reason when it is gone. */
static int write_failed(struct client_session *s, int r, struct fs_error *err)
{
    if (s->gone)
        return session_lost_gone(s, err);
    return session_lost(s, err, "connection to %s lost: %s", s->peer, ferry_strerror(r));
}

int session_send(struct client_session *s, json_t *hdr, struct fs_error *err)
{
    int r;

    if (!hdr)
        return session_lost(s, err, "out of memory");
    if (s->broken || !s->conn) {
        json_decref(hdr);
        return session_lost(s, err, "connection to %s is closed", s->peer);
    }
    r = session_write_frame(s, hdr, NULL, 0);
    json_decref(hdr);
    if (r == FERRY_EHDR_TOOBIG || r == -ENOMEM || r == FERRY_ENOT_OBJECT) {
        /* Not the connection's fault, but nothing was sent: the caller
         * cannot go on with this request either. */
        snprintf(err->message, sizeof err->message, "%s", r == FERRY_EHDR_TOOBIG ?
                 "request too long" : ferry_strerror(r));
        err->code[0] = err->errname[0] = '\0';
        return FERRY_EREMOTE;
    }
    return r < 0 ? write_failed(s, r, err) : 0;
}

int session_send_data_header(struct client_session *s, uint64_t offset, uint64_t n,
                             struct fs_error *err)
{
    json_t *hdr = json_pack("{s:s, s:I}", "type", MSG_DATA, "offset", (json_int_t)offset);
    uint8_t *enc = NULL;
    size_t len = 0;
    int r;

    /* The codec sets "size" to the body that follows (n bytes, sent by the
     * caller); one header per 16 MiB, so its cost does not show. */
    if (!hdr)
        return session_lost(s, err, "out of memory");
    if (!s->conn) {
        json_decref(hdr);
        return session_lost_gone(s, err);
    }
    r = ferry_frame_encode(hdr, n, NULL, &enc, &len);
    json_decref(hdr);
    if (r < 0) {
        free(enc);
        return session_lost(s, err, "cannot encode a data frame: %s", ferry_strerror(r));
    }
    r = ferry_conn_write(s->conn, enc, len);
    free(enc);
    if (r < 0)
        return write_failed(s, r, err);
    s->queued += len;
    s->body_left = n;
    return 0;
}

int session_send_body(struct client_session *s, const void *p, size_t n, struct fs_error *err)
{
    int r;

    if (s->broken || !s->conn)
        return s->gone ? session_lost_gone(s, err)
                       : session_lost(s, err, "connection to %s is closed", s->peer);
    r = ferry_conn_write(s->conn, p, n);
    if (r < 0)
        return write_failed(s, r, err);
    s->queued += n;
    s->body_left -= n < s->body_left ? n : s->body_left;
    /* Over the high-water mark: let the socket catch up (the loop reads
     * meanwhile, so an error from the server is not held up). */
    while (s->conn && ferry_conn_write_blocked(s->conn) && !s->hdr) {
        ferry_conn_want_drain(s->conn);
        r = session_wait(s);
        if (r < 0)
            return r;
    }
    if (s->gone && !s->hdr)
        return session_lost_gone(s, err);
    return 0;
}

ssize_t session_send_file(struct client_session *s, int fd, uint64_t *off, uint64_t n,
                          struct fs_error *err)
{
    uint64_t sent = 0;

    while (sent < n) {
        ssize_t w;
        int r;

        if (s->broken || !s->conn)
            return s->gone ? session_lost_gone(s, err)
                           : session_lost(s, err, "connection to %s is closed", s->peer);
        w = ferry_conn_sendfile(s->conn, fd, off, n - sent > SIZE_MAX ? SIZE_MAX : (size_t)(n - sent));
        if (w == -EAGAIN) {
            /* A header from the server waits in the slot (an error?): the
             * caller sends the rest by copy, as session_send_body would
             * queue it, and looks at the header after the frame. */
            if (s->hdr)
                break;
            r = session_wait(s);       /* sendfile asked for on_drain */
            if (r < 0)
                return r;
            continue;
        }
        if (w == 0)
            return session_lost(s, err, "file changed while being sent");
        if (w < 0)
            return write_failed(s, (int)w, err);
        sent += (uint64_t)w;
        s->queued += (uint64_t)w;
        s->body_left -= (uint64_t)w < s->body_left ? (uint64_t)w : s->body_left;
    }
    if (s->gone && !s->hdr)
        return session_lost_gone(s, err);
    return (ssize_t)sent;
}

/* Take the slot's header: typed, and an error turned into its code. */
static int take_header(struct client_session *s, json_t **hdr, const char **type, uint64_t *body,
                       struct fs_error *err)
{
    int r;

    *hdr = s->hdr;
    *body = s->hdr_body;
    s->hdr = NULL;
    if (s->conn)
        ferry_conn_resume_read(s->conn);
    *type = json_string_value(json_object_get(*hdr, "type"));
    if (!*type) {
        json_decref(*hdr);
        *hdr = NULL;
        return session_lost(s, err, "protocol error: %s: message without a type", s->peer);
    }
    if (strcmp(*type, MSG_ERROR) != 0)
        return 0;
    r = session_remote_error(s, *hdr, err);
    json_decref(*hdr);
    *hdr = NULL;
    *type = NULL;
    return r;
}

/* The slot's header or the connection's end, whichever comes first. */
static int wait_header(struct client_session *s, struct fs_error *err)
{
    while (!s->hdr) {
        int r;

        if (s->gone || s->broken)
            return s->gone ? session_lost_gone(s, err)
                           : session_lost(s, err, "connection to %s is closed", s->peer);
        r = session_wait(s);
        if (r < 0)
            return r;
    }
    return 0;
}

int session_recv(struct client_session *s, json_t **hdr, const char **type, uint64_t *body,
                 struct fs_error *err)
{
    int r;

    *hdr = NULL;
    if (!s->hdr && s->broken)
        return s->gone ? session_lost_gone(s, err)
                       : session_lost(s, err, "connection to %s is closed", s->peer);
    r = wait_header(s, err);
    if (r < 0)
        return r;
    return take_header(s, hdr, type, body, err);
}

int session_poll_header(struct client_session *s, json_t **hdr, const char **type,
                        uint64_t *body, struct fs_error *err)
{
    int r;

    *hdr = NULL;
    if (!s->hdr && !s->gone)
        session_poll(s);
    if (!s->hdr)
        return s->gone ? session_lost_gone(s, err) : 0;
    r = take_header(s, hdr, type, body, err);
    return r < 0 ? r : 1;
}
