/*
 * master_relay.c - a handed-over session's bytes, both ways, between the
 * client's unix connection and the server's authenticated one (plain or
 * TLS), in the worker that holds that connection (master.c).
 *
 * The bytes pass unchanged, but the relay follows the frames of both
 * directions (libferry's parser: headers are looked at, bodies only
 * counted), for one reason: a client whose session ended at rest sends a
 * last frame of its own, {"type":"master","op":"release"}, which is not
 * passed on.  The relay then sends the server a ping and drops whatever
 * the server still says until the pong: every frame of the old session has
 * then been read and answered, and the connection is clean for the next
 * client.  A client that just goes away (killed, ~., a broken session) is
 * one the server must see go: the connection is closed, as without a
 * master, and the server kills what it was running.
 *
 * Each direction has one buffer; a full buffer stops reading from its
 * source, which is the back-pressure (the sender's socket fills, as it
 * would without us).
 */
#include "master.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ferry/ferry.h"
#include "monoclock.h"
#include "proto.h"

#define RELAY_BUF (256 * 1024)
/* How long the server may take to answer the ping that ends a session. */
#define BARRIER_MS 5000

/* The session's frame limits (client_session.c's). */
static const struct ferry_frame_limits relay_limits = {
    .max_header = PROTO_MAX_HEADER,
    .max_body = PROTO_DATA_SEGMENT,
};

/* One relay per process, so its buffers are static, and touched by
 * master_relay_prepare while the worker waits: a session's first bytes
 * must not wait for page faults. */
static uint8_t bufs[2][RELAY_BUF];

void master_relay_prepare(void)
{
    memset(bufs, 0, sizeof bufs);
}

struct pump {
    struct ferry_transport *from, *to;
    uint8_t *buf;
    size_t head, len;     /* bytes buf[head .. head+len) are held */
    size_t parsed;        /* ... of which the first `parsed` went through the parser */
    size_t ready;         /* ... and the first `ready` may go: all parsed bytes but
                             those of a header not yet whole, which may be the
                             release (never passed on, not even in part) */
    struct ferry_frame_parser *parser;   /* NULL once framing was lost: not reusable */
    size_t frame_start;   /* offset in buf where the frame being parsed began */
    int in_body;          /* the parser is inside a frame's body */
    int eof;              /* `from` has ended */
    int held;             /* stop reading `from` (the release came) */
    short rd_wants, wr_wants;   /* what the last -EAGAIN of each waits for */
};

struct relay {
    struct pump up, down;
    uint64_t pings, pongs;   /* the client's keepalive pings, the server's pongs */
    int released;         /* the client's release frame came */
    int pong;             /* ... and the server's pong to our ping after it */
    int rest;             /* ... which said the session is at rest */
    int trailing;         /* the server said more after that pong */
};

/* A header seen going `up` (client to server) or down: 1 when its frame
 * is the last one to keep (the release, which is itself dropped; our
 * ping's pong). */
static int on_header(struct relay *rl, int up, const json_t *h)
{
    const char *t = json_string_value(json_object_get(h, "type"));
    const char *op = json_string_value(json_object_get(h, "op"));

    if (!t)
        return 0;
    if (up && strcmp(t, "ping") == 0)
        rl->pings++;
    if (up && strcmp(t, "master") == 0 && op && strcmp(op, "release") == 0)
        return rl->released = 1;
    /* The client's own pings are answered first, in order: ours is the
     * one after them. */
    if (!up && strcmp(t, "pong") == 0 && ++rl->pongs > rl->pings && rl->released) {
        /* The client's word that it is done is not enough (a client may
         * release mid-command, or after a chdir): the server says whether
         * anything of the session outlives it (PROTOCOL.md 2.7). */
        rl->rest = json_is_true(json_object_get(h, "rest"));
        return rl->pong = 1;
    }
    return 0;
}

/* Follow the frames of what came since the last look; a frame on_header
 * picks ends the look, and the bytes from its start on are dropped. */
static void scan(struct relay *rl, struct pump *p)
{
    int up = p == &rl->up, cut = 0;

    /* Fed until the parser needs more, also with nothing left to feed: an
     * END owed for the last byte comes then. */
    while (p->parser && !cut) {
        struct ferry_frame_event ev;
        size_t used = 0, at = p->head + p->parsed;
        int r;

        if (ferry_frame_parser_at_boundary(p->parser))
            p->frame_start = at;
        r = ferry_frame_parser_feed(p->parser, p->buf + at, p->len - p->parsed, &used, &ev);
        if (r < 0) {
            /* Not our protocol, or a broken peer: pass the bytes on and let
             * the ends judge; the connection cannot be reused. */
            ferry_frame_parser_free(p->parser);
            p->parser = NULL;
            break;
        }
        p->parsed += used;
        if (r == FERRY_FRAME_NEED_MORE)
            break;
        if (r == FERRY_FRAME_HEADER) {
            p->in_body = ev.body_size > 0;
            cut = on_header(rl, up, ev.header);
            json_decref(ev.header);
            /* Whatever came after our pong (a closing, say) is not the
             * next client's and is not passed on: then not reusable. */
            if (cut && !up && (p->len > p->parsed || !ferry_frame_parser_at_boundary(p->parser)))
                rl->trailing = 1;
            if (cut)
                p->len = p->parsed = p->frame_start - p->head;
        } else if (r == FERRY_FRAME_END) {
            p->in_body = 0;
        }
    }
    if (!p->parser)
        p->ready = p->parsed = p->len;
    else if (cut || p->in_body || ferry_frame_parser_at_boundary(p->parser))
        p->ready = p->parsed;
    else
        p->ready = p->frame_start - p->head;   /* a header not yet whole waits */
}

/* Read what there is room for.  0, or a negative code. */
static int fill(struct pump *p)
{
    /* Room at the front only (a header held back at the end): move the
     * bytes down.  Our TLS lets a retried write start elsewhere in memory
     * (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER, tls_config.c). */
    if (p->head > 0 && p->head + p->len == RELAY_BUF) {
        memmove(p->buf, p->buf + p->head, p->len);
        p->frame_start = p->frame_start > p->head ? p->frame_start - p->head : 0;
        p->head = 0;
    }
    while (!p->eof && !p->held && p->head + p->len < RELAY_BUF) {
        ssize_t n = ferry_transport_read(p->from, p->buf + p->head + p->len,
                                         RELAY_BUF - p->head - p->len);
        if (n > 0) {
            p->len += (size_t)n;
        } else if (n == 0) {
            p->eof = 1;
        } else if (n == -EAGAIN) {
            p->rd_wants = ferry_transport_wants(p->from);
            return 0;
        } else {
            return (int)n;
        }
    }
    return 0;
}

/* Write what may go.  0, or a negative code.  A write that must be retried
 * is retried with the same first byte (transport.h): the buffer only moves
 * back to its start once it is empty. */
static int drain(struct pump *p)
{
    while (p->ready > 0) {
        struct iovec iov = { .iov_base = p->buf + p->head, .iov_len = p->ready };
        ssize_t n = ferry_transport_writev(p->to, &iov, 1);

        if (n > 0) {
            p->head += (size_t)n;
            p->len -= (size_t)n;
            p->parsed -= (size_t)n;
            p->ready -= (size_t)n;
        } else if (n == -EAGAIN) {
            p->wr_wants = ferry_transport_wants(p->to);
            return 0;
        } else {
            return n < 0 ? (int)n : -EIO;
        }
    }
    if (p->len == 0) {
        p->frame_start = p->frame_start > p->head ? p->frame_start - p->head : 0;
        p->head = 0;
    }
    return 0;
}

/* The release came: nothing more from the client, the bytes before it
 * go, then a ping; from now on the server's words are not the client's. */
static int begin_barrier(struct relay *rl)
{
    static const uint8_t ping[] = "\x0f\x00\x00\x00{\"type\":\"ping\"}";
    struct pump *up = &rl->up;

    up->held = 1;
    if (up->head + up->len + sizeof ping - 1 > RELAY_BUF)
        return -ENOBUFS;   /* cannot happen: the release frame's room is free */
    memcpy(up->buf + up->head + up->len, ping, sizeof ping - 1);
    up->len += sizeof ping - 1;
    up->ready = up->parsed = up->len;
    return 0;
}

static int relay_init(struct relay *rl, struct ferry_transport *client,
                      struct ferry_transport *server, struct ferry_frame_parser **down_parser)
{
    memset(rl, 0, sizeof *rl);
    rl->up = (struct pump){ .from = client, .to = server, .buf = bufs[0], .rd_wants = POLLIN,
                            .wr_wants = POLLOUT };
    rl->down = (struct pump){ .from = server, .to = client, .buf = bufs[1], .rd_wants = POLLIN,
                              .wr_wants = POLLOUT, .parser = *down_parser };
    if (ferry_frame_parser_new(&relay_limits, &rl->up.parser) < 0)
        rl->up.parser = NULL;   /* then simply not reusable */
    if (ferry_transport_set_nonblocking(client, 1) < 0 ||
        ferry_transport_set_nonblocking(server, 1) < 0)
        return -EIO;
    return 0;
}

int master_relay(struct ferry_transport *client, struct ferry_transport *server)
{
    /* The server's stream stays framed across sessions: its parser lives
     * as long as the connection (this process). */
    static struct ferry_frame_parser *down_parser;
    static int down_lost;
    struct relay rl;
    uint64_t deadline = 0;
    int r, hup[2] = { 0, 0 };

    if (!down_parser && !down_lost && ferry_frame_parser_new(&relay_limits, &down_parser) < 0)
        down_lost = 1;
    r = relay_init(&rl, client, server, &down_parser);
    while (r == 0) {
        struct pollfd pf[2] = { { .fd = ferry_transport_fd(client) },
                                { .fd = ferry_transport_fd(server) } };
        struct pump *up = &rl.up, *down = &rl.down;
        int wait_ms = -1;

        if ((r = fill(up)) < 0 || (r = fill(down)) < 0)
            break;
        if (!rl.released) {
            scan(&rl, up);
            if (rl.released && (r = begin_barrier(&rl)) < 0)
                break;
            if (rl.released)
                deadline = monoclock_ms() + BARRIER_MS;
        }
        scan(&rl, down);
        if (rl.released)
            down->len = down->ready = down->parsed = down->head = down->frame_start = 0;
        if (rl.pong)
            break;   /* clean: the connection can serve the next client */
        if ((r = drain(up)) < 0 || (!rl.released && (r = drain(down)) < 0))
            break;
        /* The client left without a release (the server then ends what it
         * ran, as for any client that goes), or the server ended the
         * session and the client has heard all of it. */
        if ((up->eof && !rl.released && up->len == 0) || (down->eof && down->len == 0))
            break;
        /* TLS may hold decrypted bytes poll cannot see. */
        if (!down->eof && down->head + down->len < RELAY_BUF && ferry_transport_pending(server) > 0)
            continue;
        if (!up->eof && !up->held && up->head + up->len < RELAY_BUF)
            pf[0].events |= up->rd_wants;
        if (down->ready > 0 && !rl.released)
            pf[0].events |= down->wr_wants;
        if (!down->eof && down->head + down->len < RELAY_BUF)
            pf[1].events |= down->rd_wants;
        if (up->ready > 0)
            pf[1].events |= up->wr_wants;
        /* A hung-up side we are not reading from would wake poll at
         * once, forever: leave it out until there is room to read its
         * end (fill then sees it). */
        if ((!(pf[0].events & POLLIN) && hup[0]) || rl.released)
            pf[0].fd = -1;
        if (!(pf[1].events & POLLIN) && hup[1])
            pf[1].fd = -1;
        if (rl.released) {
            uint64_t now = monoclock_ms();
            if (now >= deadline)
                break;   /* no pong in time: not reused */
            wait_ms = (int)(deadline - now);
        }
        if (poll(pf, 2, wait_ms) < 0 && errno != EINTR) {
            r = -errno;
            break;
        }
        hup[0] |= (pf[0].revents & (POLLHUP | POLLERR)) != 0;
        hup[1] |= (pf[1].revents & (POLLHUP | POLLERR)) != 0;
        /* Each side says again what it waits for on its next -EAGAIN. */
        up->rd_wants = down->rd_wants = POLLIN;
        up->wr_wants = down->wr_wants = POLLOUT;
    }
    ferry_frame_parser_free(rl.up.parser);
    if (!rl.down.parser) {
        down_parser = NULL;   /* freed by scan when framing was lost */
        down_lost = 1;
    }
    if (r < 0)
        return r;
    /* Reusable: released, answered at rest, and nothing of the server's
     * after the answer (read here, or held by TLS). */
    return rl.pong && rl.rest && !rl.trailing && !down_lost &&
           ferry_transport_pending(server) == 0 ? 1 : 0;
}
