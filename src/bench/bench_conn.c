/*
 * bench_conn.c - a ferry-bench connection's life: the non-blocking
 * connect, the transport it is wrapped in, the close; and the held
 * connections, which connect (and authenticate against ferryd) in one
 * burst and then only watch for the server dropping them (see
 * bench_conn.h).
 */
#include "bench_conn.h"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ferry/error.h"
#include "bench.h"

int bench_conn_open(struct worker *w, struct bench_conn *c)
{
    const struct ferry_addr *a = &w->sh->opts->addr;
    struct epoll_event ev = {
        .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
        .data.ptr = c,
    };
    struct ferry_transport *t = NULL;
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
    r = ferry_transport_new_fd(fd, &t);
    if (r < 0)
        goto fail;
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        r = -errno;
        ferry_transport_free(t);   /* closes fd */
        return r;
    }
    c->t = t;
    c->state = ST_CONNECTING;
    return 0;

fail:
    close(fd);
    return r;
}

void bench_conn_close(struct bench_conn *c)
{
    /* Closing the descriptor also removes it from the epoll set. */
    ferry_transport_free(c->t);
    c->t = NULL;
    c->state = ST_DEAD;
}

int bench_conn_connect_result(const struct bench_conn *c)
{
    int err = 0;
    socklen_t len = sizeof err;

    if (getsockopt(ferry_transport_fd(c->t), SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return -errno;
    return -err;
}

/* ---- held connections ----------------------------------------------------- */

/* The handshake is over: a held connection reads nothing more that
 * needs a parser. */
static void hold_parser_free(struct bench_hold_conn *h)
{
    ferry_frame_parser_free(h->fp);
    h->fp = NULL;
}

/* A held connection failed before it counted as connected. */
static void hold_fail(struct worker *w, struct bench_hold_conn *h, int code)
{
    bench_tally_add(&w->hold_err, code, 1);
    hold_parser_free(h);
    bench_conn_close(&h->c);
    w->hold_pending--;
}

/* Connected: against ferryd the handshake begins, with a parser for the
 * server's messages that lives as long as it does. */
static int hold_connected(struct worker *w, struct bench_hold_conn *h)
{
    int r;

    if (!w->sh->opts->session) {
        h->c.state = ST_OPEN;
        return 0;
    }
    r = ferry_frame_parser_new(NULL, &h->fp);
    if (r < 0)
        return r;
    h->c.state = ST_HANDSHAKE;
    bench_handshake_start(&w->sh->opts->hs, &w->hold_hs[h - w->held], h->fp);
    return 0;
}

void bench_conn_hold_event(struct worker *w, struct bench_hold_conn *h, uint32_t events,
                           uint64_t now)
{
    uint8_t was = h->c.state;

    if (h->c.state == ST_DEAD)
        return;
    if (h->c.state == ST_CONNECTING) {
        int err;

        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        err = bench_conn_connect_result(&h->c);
        if (err == 0)
            err = hold_connected(w, h);
        if (err < 0) {
            hold_fail(w, h, err);
            return;
        }
    }
    if (h->c.state == ST_HANDSHAKE) {
        int r = bench_handshake_step(&w->sh->opts->hs, &w->hold_hs[h - w->held], h->c.t, h->fp,
                                     w->scratch, w->scratch_len);

        if (r < 0) {
            hold_fail(w, h, r);
            return;
        }
        if (r == 0)
            return;
        hold_parser_free(h);
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
        ssize_t n = ferry_transport_read(h->c.t, w->scratch, w->scratch_len);

        if (n > 0)
            continue;
        if (n == -EAGAIN)
            return;
        w->hold_dropped++;
        bench_conn_close(&h->c);
        return;
    }
}

void bench_conn_hold_free(struct bench_hold_conn *h)
{
    hold_parser_free(h);
    bench_conn_close(&h->c);
}

void bench_conn_hold_timeouts(struct worker *w)
{
    for (unsigned i = 0; i < w->n_hold; i++)
        if (w->held[i].c.state == ST_CONNECTING || w->held[i].c.state == ST_HANDSHAKE)
            hold_fail(w, &w->held[i], -ETIMEDOUT);
}
