/*
 * bench_handshake.c - ferryd's handshake without blocking (see
 * bench_handshake.h).
 *
 * The client speaks first.  The server sends nothing before our hello,
 * nothing between its hello and our auth, or between welcome and our
 * first request, so a byte read past either of its two messages is a
 * protocol error, never the start of something to keep.  The message we
 * send is kept in the connection's own small buffer until the transport
 * has taken all of it: our hello, encoded once per run, then our auth,
 * which carries this connection's nonce and proof.  The messages are JSON
 * objects, so allocations: a connection costs ferryd an accept, a nonce
 * and two HMACs, so being exactly as strict as ferry's own client (it is
 * the same code) is worth more than the microseconds.
 */
#include "bench_handshake.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "ferry/error.h"
#include "ferry/frame.h"
#include "ferry/transport.h"
#include "errcode.h"

/* The server's messages: hello is about 170 bytes, welcome about 100, an
 * error about 70. */
static const struct ferry_frame_limits hs_limits = { .max_header = 508 };

void bench_handshake_start(const struct bench_hs_config *cfg, struct bench_handshake *b,
                           struct ferry_frame_parser *fp)
{
    handshake_init(&b->hs, 0, cfg->allow_none);
    b->out_len = 0;
    b->out_sent = 0;
    ferry_frame_parser_reset(fp);
    ferry_frame_parser_set_limits(fp, &hs_limits);
}

/* The report counts what the server got wrong as one kind, EPROTO, as it
 * always has; refusals and a wrong key keep their own names. */
static int verdict(int r)
{
    switch (r) {
    case FERRY_EHS_NOT_HELLO:
    case FERRY_EHS_VERSION:
    case FERRY_EHS_BODY:
    case FERRY_EHS_TLS_CLAIM:
    case FERRY_EHS_METHOD:
    case FERRY_EHS_NONCE:
    case FERRY_EHS_NOT_WELCOME:
    case FERRY_ESTATE:
        return -EPROTO;
    default:
        return r;
    }
}

/* Encode msg (consumed) into out, at most cap bytes; its length in *len. */
static int encode(json_t *msg, uint8_t *out, size_t cap, uint16_t *len)
{
    uint8_t *buf = NULL;
    size_t n = 0;
    int r;

    r = ferry_frame_encode(msg, 0, NULL, &buf, &n);
    json_decref(msg);
    if (r < 0)
        return r;
    if (n > cap) {
        free(buf);
        return -EOVERFLOW;
    }
    memcpy(out, buf, n);
    free(buf);
    *len = (uint16_t)n;
    return 0;
}

int bench_handshake_prepare(struct bench_hs_config *cfg)
{
    struct handshake h;
    json_t *m = NULL;
    int r;

    handshake_init(&h, 0, cfg->allow_none);
    r = handshake_hello(&h, &m);
    if (r == 0)
        r = encode(m, cfg->hello, sizeof cfg->hello, &cfg->hello_len);
    handshake_wipe(&h);
    return r;
}

/* Encode msg (consumed) as the next thing to send. */
static int queue(struct bench_handshake *b, json_t *msg)
{
    b->out_len = 0;
    b->out_sent = 0;
    return encode(msg, b->out, sizeof b->out, &b->out_len);
}

/* Send the rest of the queued message.  1 when all of it is out, 0 on
 * EAGAIN (the next EPOLLOUT edge resumes), or a negative code. */
static int flush(struct bench_handshake *b, struct ferry_transport *t)
{
    while (b->out_sent < b->out_len) {
        struct iovec iov = { b->out + b->out_sent, (size_t)(b->out_len - b->out_sent) };
        ssize_t n = ferry_transport_writev(t, &iov, 1);

        if (n < 0)
            return n == -EAGAIN ? 0 : (int)n;
        b->out_sent += (uint16_t)n;
    }
    return 1;
}

/* Read until the server's message is whole.  1 with its header in *msg
 * (the caller's reference) and its body size in *body, 0 on EAGAIN, or a
 * negative code. */
static int receive(struct ferry_transport *t, struct ferry_frame_parser *fp, uint8_t *scratch,
                   size_t scratch_len, json_t **msg, uint64_t *body)
{
    for (;;) {
        ssize_t n = ferry_transport_read(t, scratch, scratch_len);
        const uint8_t *p = scratch;
        size_t left;

        if (n == 0)
            return FERRY_EEOF;
        if (n < 0)
            return n == -EAGAIN ? 0 : (int)n;
        left = (size_t)n;
        for (;;) {
            struct ferry_frame_event ev;
            size_t used = 0;
            int r = ferry_frame_parser_feed(fp, p, left, &used, &ev);

            p += used;
            left -= used;
            if (r == FERRY_FRAME_NEED_MORE)
                break;
            if (r == FERRY_FRAME_HEADER && !*msg) {
                *msg = ev.header;
                *body = ev.body_size;
                continue;
            }
            if (r == FERRY_FRAME_END)
                continue;
            /* Broken framing, a second message or a body: nothing may
             * follow a handshake message before our turn. */
            json_decref(ev.header);
            json_decref(*msg);
            *msg = NULL;
            return -EPROTO;
        }
        if (*msg) {
            if (left > 0 || !ferry_frame_parser_at_boundary(fp)) {
                json_decref(*msg);
                *msg = NULL;
                return -EPROTO;
            }
            return 1;
        }
    }
}

int bench_handshake_step(const struct bench_hs_config *cfg, struct bench_handshake *b,
                         struct ferry_transport *t, struct ferry_frame_parser *fp,
                         uint8_t *scratch, size_t scratch_len)
{
    const struct ferry_key *key = cfg->have_key ? &cfg->key : NULL;

    for (;;) {
        json_t *m = NULL;
        uint64_t body = 0;
        int r;

        if (b->out_sent < b->out_len) {
            r = flush(b, t);
            if (r <= 0)
                return r;
        }
        switch (b->hs.state) {
        case HANDSHAKE_SEND_HELLO:
            /* The state machine moves on; the bytes are the run's, made
             * from the same message once (a connect burst is thousands). */
            r = handshake_hello(&b->hs, &m);
            json_decref(m);
            if (r == 0) {
                memcpy(b->out, cfg->hello, cfg->hello_len);
                b->out_len = cfg->hello_len;
                b->out_sent = 0;
            }
            break;
        case HANDSHAKE_WAIT_HELLO:
            r = receive(t, fp, scratch, scratch_len, &m, &body);
            if (r <= 0)
                return r;
            r = handshake_on_hello(&b->hs, m, body);
            json_decref(m);
            break;
        case HANDSHAKE_SEND_AUTH:
            /* -k FILE is the single key ferryd --key-file calls "ferry". */
            r = handshake_auth(&b->hs, key, NULL, NULL, &m);
            if (r == 0)
                r = queue(b, m);
            break;
        case HANDSHAKE_WAIT_WELCOME:
            r = receive(t, fp, scratch, scratch_len, &m, &body);
            if (r <= 0)
                return r;
            r = handshake_on_welcome(&b->hs, key, m, body);
            json_decref(m);
            if (r == 0)
                return 1;
            break;
        case HANDSHAKE_DONE:
            return 1;
        default:
            r = FERRY_ESTATE;
            break;
        }
        if (r < 0)
            return verdict(r);
    }
}
