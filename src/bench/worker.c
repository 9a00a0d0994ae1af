/*
 * worker.c - one load-generating thread: its own epoll, its share of the
 * connections, and nothing allocated after setup.
 *
 * Sockets are non-blocking and registered once, edge-triggered, for input
 * and output (EPOLLOUT fires once when a connect completes, and again only
 * after a send hit EAGAIN, so it costs nothing in the steady state).  A
 * request is sent whole from one buffer encoded before the run; the reply
 * is counted, not copied: echo mode waits for as many bytes as it sent,
 * frame mode walks the reply's length prefix, header and body, exec mode
 * walks ferryd's frames up to the exit (exec.c says what each one means),
 * put and get modes hand the sending and each answer header to xfer.c,
 * which drives one whole file transfer as one request.
 * One clock read per completed request serves as both its end and the
 * next one's start.
 *
 * Against ferryd a connection goes CONNECTING -> HANDSHAKE -> OPEN, the
 * handshake driven by session.c from the same events; with --fresh every
 * request opens its own connection, whose connect and handshake are timed
 * as part of it, and closes it once the exit frame is in.
 */
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ferry/error.h"
#include "ferry/frame.h"
#include "bench.h"
#include "bench_exec.h"

#define SCRATCH_LEN    (64u * 1024u)
#define MAX_EVENTS     256
#define REPLY_HDR_MAX  1024u      /* a larger reply header is a protocol error */
#define MAX_WAIT_MS    1000
#define TIMEOUT_SCAN_NS 100000000u   /* connect deadlines are checked this often */

enum conn_kind { KIND_ACTIVE, KIND_HOLD, KIND_STOP };
enum conn_state { ST_DEAD, ST_CONNECTING, ST_HANDSHAKE, ST_OPEN };
enum reply_state { RD_PREFIX, RD_HEADER, RD_BODY };

/* The common head of every epoll registration (data.ptr points at it). */
struct conn {
    int fd;
    uint8_t kind;
    uint8_t state;
};

struct hold_conn {
    struct conn c;
};

struct active_conn {
    struct conn c;
    uint8_t busy;         /* a request is in flight */
    uint8_t measured;     /* ... and it started after the warmup */
    uint8_t replied;      /* its whole reply has arrived */
    uint8_t rd;           /* frame mode: which part of the reply comes next */
    uint8_t last;         /* exec mode: the frame being read ends the reply */
    int fail;             /* exec mode: the command failed (a tally code), counted at the end */
    uint32_t gen;         /* bumped by every connect: tells a replaced connection apart */
    uint8_t prefix[FERRY_FRAME_PREFIX_LEN];
    uint32_t hdr_len;
    uint32_t got;         /* bytes of prefix or header collected */
    size_t sent;          /* request bytes sent */
    uint64_t recvd;       /* echo mode: reply bytes received */
    uint64_t body_left;   /* frame mode: reply body bytes still to skip */
    uint64_t t0;          /* when the request started (ns) */
    uint64_t deadline;    /* connecting or authenticating: give up at this time */
    struct hs hs;         /* against ferryd: the handshake */
    struct bench_xfer_conn x;   /* put and get: the transfer */
    uint8_t hdr[REPLY_HDR_MAX];
};

/* The stop eventfd's registration; only its kind is ever read. */
static const struct conn stop_marker = { .fd = -1, .kind = KIND_STOP };

uint64_t bench_now_ns(void)
{
    struct timespec ts;

    /* CLOCK_MONOTONIC is read through the vDSO and cannot fail with a
     * valid clock id and pointer. */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t seconds_ns(double s)
{
    return (uint64_t)llround(s * 1e9);
}

/* ---- connections ---------------------------------------------------------- */

/* Start a non-blocking connect; its outcome arrives as an epoll event. */
static int conn_open(struct worker *w, struct conn *c)
{
    const struct ferry_addr *a = &w->sh->opts->addr;
    struct epoll_event ev = {
        .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
        .data.ptr = c,
    };
    int fd, r;

    fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    /* A Unix socket may connect at once (or fail with EAGAIN when the
     * backlog is full); an immediate success is still reported by epoll,
     * which signals an fd that is already writable when it is added. */
    if (connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0 && errno != EINPROGRESS) {
        r = -errno;
        goto fail;
    }
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        r = -errno;
        goto fail;
    }
    c->fd = fd;
    c->state = ST_CONNECTING;
    return 0;

fail:
    close(fd);
    return r;
}

static void conn_close(struct conn *c)
{
    if (c->state != ST_DEAD)
        close(c->fd);   /* also removes it from the epoll set */
    c->fd = -1;
    c->state = ST_DEAD;
}

/* 0 when the connect succeeded, else the positive errno it failed with. */
static int connect_result(int fd)
{
    int err = 0;
    socklen_t len = sizeof err;

    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return errno;
    return err;
}

/* ---- held connections ----------------------------------------------------- */

/* A held connection failed before it counted as connected. */
static void hold_fail(struct worker *w, struct hold_conn *h, int code)
{
    bench_tally_add(&w->hold_err, code, 1);
    conn_close(&h->c);
    w->hold_pending--;
}

static void hold_event(struct worker *w, struct hold_conn *h, uint32_t events, uint64_t now)
{
    uint8_t was = h->c.state;

    if (h->c.state == ST_DEAD)
        return;
    if (h->c.state == ST_CONNECTING) {
        int err;

        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        err = connect_result(h->c.fd);
        if (err) {
            hold_fail(w, h, -err);
            return;
        }
        if (w->sh->opts->session) {
            h->c.state = ST_HANDSHAKE;
            hs_reset(&w->hold_hs[h - w->held]);
        } else {
            h->c.state = ST_OPEN;
        }
    }
    if (h->c.state == ST_HANDSHAKE) {
        int r = hs_step(&w->sh->opts->hs, &w->hold_hs[h - w->held], h->c.fd);

        if (r < 0) {
            hold_fail(w, h, r);
            return;
        }
        if (r == 0)
            return;
        h->c.state = ST_OPEN;
    }
    if (was != ST_OPEN) {
        /* Connected, and authenticated when against ferryd: it counts. */
        w->hold_pending--;
        w->hold_connected++;
        w->t_burst_end = now;
        if (!(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
            return;
    }
    /* An idle connection with something to read: unsolicited bytes are
     * discarded; end of stream or an error means the server dropped it.
     * Edge-triggered, so read until EAGAIN; bounded, so a server that
     * streams at us cannot keep this thread here. */
    for (int i = 0; i < 64; i++) {
        ssize_t n = recv(h->c.fd, w->scratch, w->scratch_len, 0);

        if (n > 0)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0 && errno == EINTR)
            continue;
        w->hold_dropped++;
        conn_close(&h->c);
        return;
    }
}

/* Held connects that have not finished by the deadline are given up. */
static void hold_timeouts(struct worker *w)
{
    for (unsigned i = 0; i < w->n_hold; i++)
        if (w->held[i].c.state == ST_CONNECTING || w->held[i].c.state == ST_HANDSHAKE)
            hold_fail(w, &w->held[i], -ETIMEDOUT);
}

/* ---- active connections: requests ----------------------------------------- */

static int send_more(struct worker *w, struct active_conn *a)
{
    const struct bench_shared *sh = w->sh;

    if (MODE_IS_XFER(sh->opts->mode))
        return bench_xfer_send(sh->xs, &a->x, a->c.fd);
    while (a->sent < sh->req_len) {
        ssize_t n = send(a->c.fd, sh->req + a->sent, sh->req_len - a->sent, MSG_NOSIGNAL);

        if (n >= 0) {
            a->sent += (size_t)n;
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;   /* the next EPOLLOUT edge resumes */
        if (errno != EINTR)
            return -errno;
    }
    return 0;
}

/* Open an active connection; its connect (and handshake) must be done by
 * the connect timeout. */
static int active_open(struct worker *w, struct active_conn *a, uint64_t now)
{
    int r = conn_open(w, &a->c);

    if (r < 0)
        return r;
    a->gen++;
    a->deadline = now + seconds_ns(w->sh->opts->connect_timeout);
    w->connecting++;
    return 0;
}

/* Start the next request on an idle connection (with --fresh: on a new
 * connection), unless the run is over or this thread's share of -n has
 * been started. */
static int start_request(struct worker *w, struct active_conn *a, uint64_t now)
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
    a->rd = RD_PREFIX;
    a->got = 0;
    a->fail = 0;
    w->inflight++;
    if (MODE_IS_XFER(w->sh->opts->mode))
        bench_xfer_start(w->sh->xs, &a->x);
    if (w->sh->opts->fresh)
        return active_open(w, a, now);   /* sent once the handshake is done */
    return send_more(w, a);
}

/* Every byte of the request is out (in put mode: the whole file). */
static int request_sent(const struct worker *w, const struct active_conn *a)
{
    if (MODE_IS_XFER(w->sh->opts->mode))
        return bench_xfer_sent(w->sh->xs, &a->x);
    return a->sent >= w->sh->req_len;
}

/* The request is done once it is all sent and all of its reply is in. */
static int maybe_complete(struct worker *w, struct active_conn *a)
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
        conn_close(&a->c);
    return start_request(w, a, now);
}

static int echo_bytes(struct worker *w, struct active_conn *a, size_t n)
{
    if (!a->busy || a->recvd + n > w->sh->reply_len)
        return FERRY_EUNEXPECTED;
    a->recvd += n;
    if (a->recvd == w->sh->reply_len)
        a->replied = 1;
    return 0;
}

/*
 * A reply header is first compared with the request's: frame_echo answers
 * with the very bytes it was sent (jansson keeps member order and the
 * encoding is compact), and then the body size is the one we sent.  Only a
 * header that differs is parsed, with ferry_frame_decode_header(), which
 * validates it fully and allocates a jansson object.  Measured on this
 * machine (-O2, a million runs) for the 25-byte {"type":"echo","size":64}:
 * the memcmp costs about 1 ns, ferry_frame_decode_header about 770 ns with
 * its allocations - close to a tenth of the whole per-request budget of a
 * generator driving 100k requests/s, which is why it is only the fallback.
 */
static int reply_header(struct worker *w, struct active_conn *a)
{
    const struct bench_shared *sh = w->sh;
    json_t *hdr = NULL;
    uint64_t size = 0;
    int is_error, r;

    if (a->hdr_len == sh->req_hdr_len && memcmp(a->hdr, sh->req_hdr, a->hdr_len) == 0) {
        a->body_left = sh->opts->size;
        return 0;
    }
    r = ferry_frame_decode_header(a->hdr, a->hdr_len, NULL, &hdr, &size);
    if (r < 0)
        return -EPROTO;
    is_error = json_object_get(hdr, "error") != NULL;
    json_decref(hdr);
    if (is_error)
        return FERRY_EREMOTE;
    if (size != sh->opts->size)
        return FERRY_EUNEXPECTED;
    a->body_left = size;
    return 0;
}

static size_t min_size(size_t a, uint64_t b)
{
    return b < a ? (size_t)b : a;
}

/* put and get: xfer.c says what the header means; put-ready opens the
 * sending of the data, which must start now: with edge-triggered epoll no
 * EPOLLOUT comes for a socket that was writable all along. */
static int xfer_on_header(struct worker *w, struct active_conn *a)
{
    struct bench_xfer_frame f;
    int r;

    r = bench_xfer_header(w->sh->xs, &a->x, a->hdr, a->hdr_len, &f,
                    w->server_error[0] ? NULL : w->server_error, sizeof w->server_error);
    if (r < 0)
        return r;
    a->body_left = f.body;
    a->last = (uint8_t)f.last;
    if (f.fail)
        a->fail = f.fail;
    return f.send ? send_more(w, a) : 0;
}

/* A whole header is in: what follows it, and whether the reply ends with
 * this frame (always in frame mode; at the exit frame in exec mode; at
 * put-ok or get-end in put and get modes). */
static int on_header(struct worker *w, struct active_conn *a)
{
    struct bench_exec_frame f;
    int r;

    if (MODE_IS_XFER(w->sh->opts->mode))
        return xfer_on_header(w, a);
    if (w->sh->opts->mode != MODE_EXEC) {
        a->last = 1;
        return reply_header(w, a);
    }
    r = bench_exec_header(a->hdr, a->hdr_len, &f);
    if (r < 0)
        return r;
    a->body_left = f.body;
    a->last = (uint8_t)f.last;
    if (f.fail)
        a->fail = f.fail;
    return 0;
}

/* A frame is over: the reply too, or the next frame's prefix comes. */
static void frame_end(struct active_conn *a)
{
    if (a->last) {
        a->replied = 1;
        return;
    }
    a->rd = RD_PREFIX;
    a->got = 0;
}

/* Walk reply bytes through prefix, header and body; only the prefix and
 * the (small) header are copied. */
static int frame_bytes(struct worker *w, struct active_conn *a, const uint8_t *p, size_t n)
{
    size_t off = 0, k;
    int r;

    while (off < n) {
        if (!a->busy || a->replied)
            return FERRY_EUNEXPECTED;
        switch (a->rd) {
        case RD_PREFIX:
            k = min_size(n - off, FERRY_FRAME_PREFIX_LEN - a->got);
            memcpy(a->prefix + a->got, p + off, k);
            a->got += (uint32_t)k;
            off += k;
            if (a->got < FERRY_FRAME_PREFIX_LEN)
                break;
            a->hdr_len = (uint32_t)a->prefix[0] | (uint32_t)a->prefix[1] << 8 |
                         (uint32_t)a->prefix[2] << 16 | (uint32_t)a->prefix[3] << 24;
            if (a->hdr_len == 0 || a->hdr_len > REPLY_HDR_MAX)
                return -EPROTO;
            a->got = 0;
            a->rd = RD_HEADER;
            break;
        case RD_HEADER:
            k = min_size(n - off, a->hdr_len - a->got);
            memcpy(a->hdr + a->got, p + off, k);
            a->got += (uint32_t)k;
            off += k;
            if (a->got < a->hdr_len)
                break;
            r = on_header(w, a);
            if (r < 0)
                return r;
            a->rd = RD_BODY;
            if (a->body_left == 0)
                frame_end(a);
            break;
        case RD_BODY:
            k = min_size(n - off, a->body_left);
            if (w->sh->opts->mode == MODE_GET)
                bench_xfer_body(&a->x, p + off, k);   /* hashed in place, not copied */
            off += k;
            a->body_left -= k;
            if (a->body_left == 0)
                frame_end(a);
            break;
        }
    }
    return 0;
}

/* Read until EAGAIN (edge-triggered) or until a request completes: a
 * server answers one request at a time, so nothing more can be waiting. */
static int active_read(struct worker *w, struct active_conn *a)
{
    int frame = w->sh->opts->mode != MODE_ECHO;

    for (;;) {
        ssize_t n = recv(a->c.fd, w->scratch, w->scratch_len, 0);
        int r;

        if (n > 0) {
            r = frame ? frame_bytes(w, a, w->scratch, (size_t)n) : echo_bytes(w, a, (size_t)n);
            if (r < 0)
                return r;
            if (a->replied)
                return maybe_complete(w, a);
            continue;
        }
        if (n == 0)
            return FERRY_EEOF;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        if (errno != EINTR)
            return -errno;
    }
}

/* A connection failed: counted as a connect error until it was usable
 * (with --fresh, also when a request's new connection cannot be opened). */
static void active_fail(struct worker *w, struct active_conn *a, int code)
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
    conn_close(&a->c);
    w->live--;
}

/* The connection is up, and authenticated when against ferryd: run
 * requests on it, or with --fresh send the one it was opened for. */
static int active_ready(struct worker *w, struct active_conn *a)
{
    a->c.state = ST_OPEN;
    w->connecting--;
    if (w->sh->opts->fresh)
        return send_more(w, a);
    return start_request(w, a, bench_now_ns());
}

static void active_event(struct worker *w, struct active_conn *a, uint32_t events)
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
        r = connect_result(a->c.fd);
        if (r) {
            active_fail(w, a, -r);
            return;
        }
        if (o->addr.ss.ss_family != AF_UNIX) {
            int one = 1;
            /* A request is one send(), so Nagle would not delay it, but a
             * request larger than the send buffer goes out in pieces. */
            if (setsockopt(a->c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0) {
                active_fail(w, a, -errno);
                return;
            }
        }
        if (o->session) {
            a->c.state = ST_HANDSHAKE;
            hs_reset(&a->hs);
        } else {
            r = active_ready(w, a);
        }
    }
    if (r == 0 && a->c.state == ST_HANDSHAKE) {
        r = hs_step(&o->hs, &a->hs, a->c.fd);
        if (r == 0)
            return;
        if (r == 1)
            r = active_ready(w, a);
    } else if (was == ST_OPEN && (events & EPOLLOUT) && a->busy && !request_sent(w, a)) {
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

/* Connects and handshakes that have run past their deadline are given up. */
static void active_timeouts(struct worker *w, uint64_t now)
{
    for (unsigned i = 0; i < w->n_active; i++) {
        struct active_conn *a = &w->active[i];

        if ((a->c.state == ST_CONNECTING || a->c.state == ST_HANDSHAKE) && now >= a->deadline)
            active_fail(w, a, -ETIMEDOUT);
    }
}

/* ---- the loop ------------------------------------------------------------- */

/* Milliseconds from now until `until` (rounded up, so the wait never ends
 * just short of it), at most MAX_WAIT_MS. */
static int wait_ms(uint64_t now, uint64_t until)
{
    uint64_t ms;

    if (until <= now)
        return 0;
    ms = (until - now + 999999u) / 1000000u;
    return ms > MAX_WAIT_MS ? MAX_WAIT_MS : (int)ms;
}

/* One epoll_wait and its events.  Returns 1 once the stop eventfd fired,
 * 0, or a negative errno. */
static int poll_once(struct worker *w, int timeout_ms)
{
    struct epoll_event ev[MAX_EVENTS];
    int n, stop = 0;

    n = epoll_wait(w->epfd, ev, MAX_EVENTS, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    for (int i = 0; i < n; i++) {
        struct conn *c = ev[i].data.ptr;

        switch (c->kind) {
        case KIND_ACTIVE:
            active_event(w, (struct active_conn *)c, ev[i].events);
            break;
        case KIND_HOLD:
            hold_event(w, (struct hold_conn *)c, ev[i].events, bench_now_ns());
            break;
        default:
            stop = 1;
            break;
        }
    }
    return stop;
}

/* Phase 1: every held connection's connect is issued at once, then the
 * thread waits until each has connected or failed, or the deadline. */
static int run_burst(struct worker *w)
{
    uint64_t deadline, now;
    int r = 0;

    now = bench_now_ns();
    w->t_burst_start = now;
    w->t_burst_end = now;
    deadline = now + seconds_ns(w->sh->opts->connect_timeout);
    for (unsigned i = 0; i < w->n_hold; i++) {
        r = conn_open(w, &w->held[i].c);
        if (r < 0)
            bench_tally_add(&w->hold_err, r, 1);
        else
            w->hold_pending++;
    }
    r = 0;
    while (w->hold_pending > 0 && r == 0) {
        now = bench_now_ns();
        if (now >= deadline) {
            hold_timeouts(w);
            break;
        }
        r = poll_once(w, wait_ms(now, deadline));
    }
    return r;
}

static int quota_done(const struct worker *w, uint64_t now)
{
    return w->issued >= w->quota && w->inflight == 0 && now >= w->t_meas_start;
}

/* Phase 2: the active connections run request/response until the
 * duration, the count or a stop; threads without any wait for the others
 * (the last active thread to finish signals the stop eventfd). */
static int run_active(struct worker *w)
{
    const struct bench_opts *o = w->sh->opts;
    uint64_t now, next_scan, until;
    int r = 0;

    now = bench_now_ns();
    w->t_meas_start = now + seconds_ns(o->warmup);
    w->t_end = w->t_meas_start + seconds_ns(o->duration > 0 ? o->duration : BENCH_MAX_SECONDS);
    for (unsigned i = 0; i < w->n_active; i++) {
        struct active_conn *a = &w->active[i];

        /* With --fresh a connection is opened by its first request. */
        w->live++;
        r = o->fresh ? start_request(w, a, now) : active_open(w, a, now);
        if (r < 0)
            active_fail(w, a, r);
    }
    r = 0;
    next_scan = now + TIMEOUT_SCAN_NS;
    for (;;) {
        now = bench_now_ns();
        if (now >= w->t_end)
            break;
        if (w->n_active > 0 && (w->live == 0 || quota_done(w, now)))
            break;
        if (w->connecting > 0 && now >= next_scan) {
            active_timeouts(w, now);
            next_scan = now + TIMEOUT_SCAN_NS;
        }
        until = w->t_end;
        if (w->connecting > 0 && next_scan < until)
            until = next_scan;
        if (w->quota != UINT64_MAX && w->t_meas_start > now && w->t_meas_start < until)
            until = w->t_meas_start;   /* a quota of 0 is done when the warmup ends */
        r = poll_once(w, wait_ms(now, until));
        if (r != 0)
            break;
    }
    w->t_meas_end = now < w->t_end ? now : w->t_end;
    return r < 0 ? r : 0;
}

static int setup(struct worker *w)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = (void *)&stop_marker };

    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (w->epfd < 0)
        return -errno;
    /* Level-triggered and never read: once written, every later wait of
     * every thread returns at once. */
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->sh->stop_fd, &ev) < 0)
        return -errno;
    /* A download is read in large pieces; the other modes' replies are
     * small, and 64 KiB stays in cache. */
    w->scratch_len = MODE_IS_XFER(w->sh->opts->mode) ? BENCH_XFER_READ_LEN : SCRATCH_LEN;
    w->scratch = malloc(w->scratch_len);
    w->active = calloc(w->n_active ? w->n_active : 1, sizeof *w->active);
    w->held = calloc(w->n_hold ? w->n_hold : 1, sizeof *w->held);
    if (!w->scratch || !w->active || !w->held)
        return -ENOMEM;
    /* Only held sessions need one: a plain held connection stays 8 bytes. */
    if (w->sh->opts->session && w->n_hold > 0) {
        w->hold_hs = calloc(w->n_hold, sizeof *w->hold_hs);
        if (!w->hold_hs)
            return -ENOMEM;
    }
    for (unsigned i = 0; i < w->n_active; i++) {
        w->active[i].c.fd = -1;
        w->active[i].c.kind = KIND_ACTIVE;
        if (MODE_IS_XFER(w->sh->opts->mode)) {
            int r = bench_xfer_conn_init(&w->active[i].x, w->sh->xs, w->first_conn + i);

            if (r < 0)
                return r;
        }
    }
    for (unsigned i = 0; i < w->n_hold; i++) {
        w->held[i].c.fd = -1;
        w->held[i].c.kind = KIND_HOLD;
    }
    return 0;
}

static void teardown(struct worker *w)
{
    if (w->active) {
        for (unsigned i = 0; i < w->n_active; i++) {
            conn_close(&w->active[i].c);
            bench_xfer_conn_free(&w->active[i].x);   /* all zeros outside put and get */
        }
    }
    if (w->held)
        for (unsigned i = 0; i < w->n_hold; i++)
            conn_close(&w->held[i].c);
    if (w->epfd >= 0)
        close(w->epfd);
    w->epfd = -1;
    free(w->scratch);
    free(w->active);
    free(w->held);
    free(w->hold_hs);
    w->hold_hs = NULL;
    w->scratch = NULL;
    w->active = NULL;
    w->held = NULL;
}

int bench_loop_burst_done(struct bench_shared *sh)
{
    uint64_t one = 1;

    if (atomic_fetch_sub(&sh->burst_left, 1) == 1 && write(sh->go_fd, &one, sizeof one) < 0)
        return -errno;
    return 0;
}

/* Wait until every thread is through its burst (or the run is stopped:
 * returns 1).  Each burst ends by its connect deadline, so this wait is
 * bounded by that plus a margin. */
static int wait_for_go(struct worker *w)
{
    struct pollfd p[2] = {
        { .fd = w->sh->go_fd, .events = POLLIN },
        { .fd = w->sh->stop_fd, .events = POLLIN },
    };
    uint64_t deadline = bench_now_ns() + seconds_ns(w->sh->opts->connect_timeout + 10.0);

    for (;;) {
        uint64_t now = bench_now_ns();
        int n;

        if (now >= deadline)
            return -ETIMEDOUT;
        n = poll(p, 2, wait_ms(now, deadline));
        if (n < 0 && errno != EINTR)
            return -errno;
        if (p[1].revents)
            return 1;
        if (p[0].revents)
            return 0;
    }
}

void *bench_loop_main(void *arg)
{
    struct worker *w = arg;
    uint64_t eventfd_one = 1;
    int r, r2;

    bench_hist_init(&w->hist);
    r = setup(w);
    if (r == 0)
        r = run_burst(w);
    /* Every thread counts itself out of the burst, failed or not, so none
     * waits for ever; a failed thread then sits the active phase out. */
    r2 = bench_loop_burst_done(w->sh);
    if (r == 0)
        r = r2;
    if (r == 0)
        r = wait_for_go(w);
    if (r == 0)
        r = run_active(w);
    if (r < 0)
        w->fatal = r;
    if (w->n_active > 0 && atomic_fetch_sub(&w->sh->active_left, 1) == 1) {
        /* The last thread with requests to make tells the threads that
         * only hold connections that the run is over. */
        if (write(w->sh->stop_fd, &eventfd_one, sizeof eventfd_one) < 0 && w->fatal == 0)
            w->fatal = -errno;
    }
    teardown(w);
    return NULL;
}
