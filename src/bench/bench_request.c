/*
 * bench_request.c - ferry-bench's active connections: a request sent whole
 * from one buffer encoded before the run, its reply read and counted, then
 * the next request (see bench_conn.h).
 *
 * Sockets are registered edge-triggered for input and output: EPOLLOUT
 * fires once when a connect completes, and again only after a write hit
 * EAGAIN, so it costs nothing in the steady state.  The reply is counted,
 * not copied: echo mode waits for as many bytes as it sent; the framed
 * modes feed what they read to libferry's frame parser, which hands back
 * each header and lends the body bytes where they lie: frame mode expects
 * its own request back, exec mode walks ferryd's frames up to the exit
 * (bench_exec.c says what each one means), put and get modes hand the
 * sending and each answer to bench_xfer.c, which drives one whole file
 * transfer as one request.  One clock read per completed request serves
 * as both its end and the next one's start.
 *
 * Against ferryd a connection goes CONNECTING -> HANDSHAKE -> OPEN, the
 * handshake driven from the same events; with --fresh every request opens
 * its own connection, whose connect and handshake are timed as part of
 * it, and closes it once the exit frame is in.
 */
#include "bench_conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "ferry/error.h"
#include "bench.h"
#include "bench_exec.h"

/* A reply header larger than 1 KiB is a protocol error. */
static const struct ferry_frame_limits reply_limits = { .max_header = 1024 };

int bench_request_init(struct worker *w, struct bench_active_conn *a, unsigned number)
{
    enum bench_mode mode = w->sh->opts->mode;
    int r;

    a->c.t = NULL;
    a->c.kind = KIND_ACTIVE;
    if (mode != MODE_ECHO) {
        r = ferry_frame_parser_new(&reply_limits, &a->fp);
        if (r < 0)
            return r;
    }
    /* frame_echo answers with the very header bytes it was sent (jansson
     * keeps member order and the encoding is compact): decoded once, not
     * once per reply.  Decoding {"type":"echo","size":64} every time costs
     * about 7,600 instructions, over ten times the rest of a request's
     * user-space path, and would show in every frame-mode number. */
    if (mode == MODE_FRAME) {
        r = ferry_frame_parser_expect(a->fp, w->sh->req_hdr, w->sh->req_hdr_len);
        if (r < 0)
            return r;
    }
    /* exec mode: the answer that ends most round trips, as ferryd's
     * compact encoder writes it (any other bytes are simply decoded). */
    if (mode == MODE_EXEC) {
        static const char exit0[] = "{\"type\":\"exit\",\"status\":0}";

        r = ferry_frame_parser_expect(a->fp, exit0, sizeof exit0 - 1);
        if (r < 0)
            return r;
    }
    if (MODE_IS_XFER(mode))
        return bench_xfer_conn_init(&a->x, w->sh->xs, number);
    return 0;
}

void bench_request_free(struct bench_active_conn *a)
{
    bench_conn_close(&a->c);
    ferry_frame_parser_free(a->fp);
    a->fp = NULL;
    bench_xfer_conn_free(&a->x);   /* all zeros outside put and get */
}

/* ---- sending -------------------------------------------------------------- */

static int send_more(struct worker *w, struct bench_active_conn *a)
{
    const struct bench_shared *sh = w->sh;

    if (MODE_IS_XFER(sh->opts->mode))
        return bench_xfer_send(sh->xs, &a->x, a->c.t);
    while (a->sent < sh->req_len) {
        struct iovec iov = { (void *)(sh->req + a->sent), sh->req_len - a->sent };
        ssize_t n = ferry_transport_writev(a->c.t, &iov, 1);

        if (n == -EAGAIN)
            return 0;   /* the next EPOLLOUT edge resumes */
        if (n < 0)
            return (int)n;
        a->sent += (size_t)n;
    }
    return 0;
}

/* Open an active connection; its connect (and handshake) must be done by
 * the connect timeout.  Its replies are parsed from a frame boundary. */
static int active_open(struct worker *w, struct bench_active_conn *a, uint64_t now)
{
    int r = bench_conn_open(w, &a->c);

    if (r < 0)
        return r;
    if (a->fp)
        ferry_frame_parser_reset(a->fp);
    a->gen++;
    a->deadline = now + bench_seconds_ns(w->sh->opts->connect_timeout);
    w->connecting++;
    return 0;
}

/* Start the next request on an idle connection (with --fresh: on a new
 * connection), unless the run is over or this thread's share of -n has
 * been started. */
static int start_request(struct worker *w, struct bench_active_conn *a, uint64_t now)
{
    if (now >= w->t_end)
        return 0;
    a->measured = now >= w->t_meas_start;
    if (a->measured) {
        if (w->issued >= w->quota)
            return 0;
        w->issued++;
    }
    a->busy = 1;
    a->replied = 0;
    a->t0 = now;
    a->sent = 0;
    a->recvd = 0;
    a->fail = 0;
    w->inflight++;
    if (MODE_IS_XFER(w->sh->opts->mode))
        bench_xfer_start(w->sh->xs, &a->x);
    if (w->sh->opts->fresh)
        return active_open(w, a, now);   /* sent once the handshake is done */
    return send_more(w, a);
}

/* Every byte of the request is out (in put mode: the whole file). */
static int request_sent(const struct worker *w, const struct bench_active_conn *a)
{
    if (MODE_IS_XFER(w->sh->opts->mode))
        return bench_xfer_sent(w->sh->xs, &a->x);
    return a->sent >= w->sh->req_len;
}

/* The request is done once it is all sent and all of its reply is in. */
static int maybe_complete(struct worker *w, struct bench_active_conn *a)
{
    int xfer = MODE_IS_XFER(w->sh->opts->mode);
    uint64_t now;

    if (!a->busy || !a->replied || !request_sent(w, a))
        return 0;
    now = bench_now_ns();
    a->busy = 0;
    w->inflight--;
    /* A transfer that did not verify is not a transfer: only an error. */
    if (a->measured && !(xfer && a->fail)) {
        bench_hist_record(&w->hist, now - a->t0);
        w->done++;
        if (xfer) {
            w->bytes += a->x.size;
            w->file_size = a->x.size;
            memcpy(w->checksum, a->x.sum, sizeof w->checksum);
        }
    }
    /* A command that failed is a round trip all the same: timed and
     * counted, and counted again as an error; the session goes on. */
    if (a->fail)
        bench_tally_add(&w->req_err, a->fail, 1);
    if (w->sh->opts->fresh)
        bench_conn_close(&a->c);
    return start_request(w, a, now);
}

/* ---- replies -------------------------------------------------------------- */

static int echo_bytes(struct worker *w, struct bench_active_conn *a, size_t n)
{
    if (!a->busy || a->recvd + n > w->sh->reply_len)
        return FERRY_EUNEXPECTED;
    a->recvd += n;
    if (a->recvd == w->sh->reply_len)
        a->replied = 1;
    return 0;
}

/* frame mode: frame_echo answers with our own header and body size; a
 * header with "error" is the server's refusal. */
static int frame_reply(struct worker *w, const json_t *h, uint64_t body_size)
{
    if (json_object_get(h, "error") != NULL)
        return FERRY_EREMOTE;
    if (body_size != w->sh->opts->size)
        return FERRY_EUNEXPECTED;
    return 0;
}

/* put and get: bench_xfer.c says what the header means; put-ready opens
 * the sending of the data, which must start now: with edge-triggered
 * epoll no EPOLLOUT comes for a socket that was writable all along. */
static int xfer_reply(struct worker *w, struct bench_active_conn *a, const json_t *h,
                      uint64_t body_size)
{
    struct bench_xfer_frame f;
    int r;

    r = bench_xfer_header(w->sh->xs, &a->x, h, body_size, &f,
                          w->server_error[0] ? NULL : w->server_error, sizeof w->server_error);
    if (r < 0)
        return r;
    a->last = (uint8_t)f.last;
    if (f.fail)
        a->fail = f.fail;
    return f.send ? send_more(w, a) : 0;
}

/* A whole header is in: whether the reply ends with this frame (always
 * in frame mode; at the exit frame in exec mode; at put-ok or get-end in
 * put and get modes). */
static int on_header(struct worker *w, struct bench_active_conn *a, const json_t *h,
                     uint64_t body_size)
{
    struct bench_exec_frame f;
    int r;

    switch (w->sh->opts->mode) {
    case MODE_PUT:
    case MODE_GET:
        return xfer_reply(w, a, h, body_size);
    case MODE_EXEC:
        r = bench_exec_header(h, &f);
        if (r < 0)
            return r;
        a->last = (uint8_t)f.last;
        if (f.fail)
            a->fail = f.fail;
        return 0;
    default:
        a->last = 1;
        return frame_reply(w, h, body_size);
    }
}

/* Feed reply bytes to the parser until it wants more; only a header split
 * across reads is copied (by the parser), bodies are looked at in place. */
static int frame_bytes(struct worker *w, struct bench_active_conn *a, const uint8_t *p, size_t n)
{
    for (;;) {
        struct ferry_frame_event ev;
        size_t used = 0;
        int r;

        /* Bytes nobody asked for: none may follow a whole reply. */
        if (n > 0 && (!a->busy || a->replied))
            return FERRY_EUNEXPECTED;
        r = ferry_frame_parser_feed(a->fp, p, n, &used, &ev);
        p += used;
        n -= used;
        switch (r) {
        case FERRY_FRAME_NEED_MORE:
            return 0;
        case FERRY_FRAME_HEADER:
            r = on_header(w, a, ev.header, ev.body_size);
            json_decref(ev.header);
            if (r < 0)
                return r;
            break;
        case FERRY_FRAME_BODY:
            if (w->sh->opts->mode == MODE_GET)
                bench_xfer_body(&a->x, ev.chunk, ev.chunk_len);   /* hashed in place */
            break;
        case FERRY_FRAME_END:
            if (a->last)
                a->replied = 1;
            break;
        default:
            return -EPROTO;   /* the stream broke framing (r < 0) */
        }
    }
}

/* Read until EAGAIN (edge-triggered) or until a request completes: a
 * server answers one request at a time, so nothing more can be waiting. */
static int active_read(struct worker *w, struct bench_active_conn *a)
{
    int frame = w->sh->opts->mode != MODE_ECHO;

    for (;;) {
        ssize_t n = ferry_transport_read(a->c.t, w->scratch, w->scratch_len);
        int r;

        if (n == -EAGAIN)
            return 0;
        if (n < 0)
            return (int)n;
        if (n == 0)
            return FERRY_EEOF;
        r = frame ? frame_bytes(w, a, w->scratch, (size_t)n) : echo_bytes(w, a, (size_t)n);
        if (r < 0)
            return r;
        if (a->replied)
            return maybe_complete(w, a);
    }
}

/* ---- events --------------------------------------------------------------- */

/* A connection failed: counted as a connect error until it was usable
 * (with --fresh, also when a request's new connection cannot be opened). */
static void active_fail(struct worker *w, struct bench_active_conn *a, int code)
{
    if (a->c.state != ST_OPEN) {
        if (a->c.state != ST_DEAD)
            w->connecting--;
        bench_tally_add(&w->conn_err, code, 1);
    } else {
        bench_tally_add(&w->req_err, code, 1);
    }
    if (a->busy) {
        a->busy = 0;
        w->inflight--;
    }
    bench_conn_close(&a->c);
    w->live--;
}

/* The connection is up, and authenticated when against ferryd: run
 * requests on it, or with --fresh send the one it was opened for. */
static int active_ready(struct worker *w, struct bench_active_conn *a)
{
    if (w->sh->opts->session)
        ferry_frame_parser_set_limits(a->fp, &reply_limits);
    a->c.state = ST_OPEN;
    w->connecting--;
    if (w->sh->opts->fresh)
        return send_more(w, a);
    return start_request(w, a, bench_now_ns());
}

/* The connect completed: the socket's options, then the handshake or the
 * first request. */
static int connected(struct worker *w, struct bench_active_conn *a)
{
    const struct bench_opts *o = w->sh->opts;
    int r = bench_conn_connect_result(&a->c);

    if (r < 0)
        return r;
    if (o->addr.ss.ss_family != AF_UNIX) {
        int one = 1;
        /* A request is one write, so Nagle would not delay it, but a
         * request larger than the send buffer goes out in pieces. */
        if (setsockopt(ferry_transport_fd(a->c.t), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
            return -errno;
    }
    if (o->session) {
        a->c.state = ST_HANDSHAKE;
        bench_handshake_start(&o->hs, &a->hs, a->fp);
        return 0;
    }
    return active_ready(w, a);
}

void bench_request_event(struct worker *w, struct bench_active_conn *a, uint32_t events)
{
    const struct bench_opts *o = w->sh->opts;
    uint8_t was = a->c.state;
    uint32_t gen = a->gen;
    int r = 0;

    if (a->c.state == ST_DEAD)
        return;
    if (a->c.state == ST_CONNECTING) {
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        r = connected(w, a);
    }
    if (r == 0 && a->c.state == ST_HANDSHAKE) {
        r = bench_handshake_step(&o->hs, &a->hs, a->c.t, a->fp, w->scratch, w->scratch_len);
        if (r == 0)
            return;
        if (r == 1)
            r = active_ready(w, a);
    } else if (r == 0 && was == ST_OPEN && (events & EPOLLOUT) && a->busy && !request_sent(w, a)) {
        r = send_more(w, a);
        if (r == 0)
            r = maybe_complete(w, a);
    }
    /* Not on a connection --fresh has just replaced with a new one. */
    if (r == 0 && a->gen == gen && a->c.state == ST_OPEN &&
        (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
        r = active_read(w, a);
    if (r < 0)
        active_fail(w, a, r);
}

void bench_request_begin(struct worker *w, struct bench_active_conn *a, uint64_t now)
{
    int r;

    /* With --fresh a connection is opened by its first request. */
    w->live++;
    r = w->sh->opts->fresh ? start_request(w, a, now) : active_open(w, a, now);
    if (r < 0)
        active_fail(w, a, r);
}

void bench_request_timeouts(struct worker *w, uint64_t now)
{
    for (unsigned i = 0; i < w->n_active; i++) {
        struct bench_active_conn *a = &w->active[i];

        if ((a->c.state == ST_CONNECTING || a->c.state == ST_HANDSHAKE) && now >= a->deadline)
            active_fail(w, a, -ETIMEDOUT);
    }
}
