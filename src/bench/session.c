/*
 * session.c - ferryd's handshake as a non-blocking state machine (see
 * session.h).
 *
 * The client speaks first.  The server sends nothing before our hello,
 * nothing between its hello and our auth, or between welcome and our
 * first request, so each of its two
 * messages is read into the connection's own small buffer and a byte past
 * the message is a protocol error, never the start of something to keep.
 * The messages are parsed with ferry_frame_decode_header (a jansson object,
 * so an allocation): they are two per connection, and a connection costs
 * ferryd an accept, a nonce and two HMACs, so being exactly as strict as
 * ferry's own client is worth more than the microsecond.  Our auth message
 * is written with snprintf from the nonces kept for the welcome's check,
 * so a partial send is resumed by writing it again, not by storing it.
 */
#include "session.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>

#include "ferry/error.h"
#include "ferry/frame.h"
#include "ferry/transport.h"
#include "keys.h"
#include "proto.h"
#include "bench_tally.h"

/* {"type":"auth","version":1,"key":"ferry","nonce":"<64>","proof":"<64>"}:
 * 4 + 198 bytes */
#define AUTH_MSG_MAX 256u

/* Our hello, the first bytes of every session, prefix included. */
static const uint8_t client_hello[] = "\x1c\0\0\0{\"type\":\"hello\",\"version\":1}";

void hs_reset(struct hs *h)
{
    h->state = HS_CLIENT_HELLO;
    h->none = 0;
    h->len = 0;
    h->sent = 0;
}

static const char *member_str(const json_t *o, const char *name)
{
    return json_string_value(json_object_get(o, name));
}

/* Read until the message in h->buf is whole.  Returns 1 with the header
 * decoded into *out, 0 on EAGAIN, or a negative code. */
static int read_message(struct hs *h, struct ferry_transport *t, json_t **out)
{
    const struct ferry_frame_limits limits = { .max_header = HS_BUF - FERRY_FRAME_PREFIX_LEN };
    uint64_t body = 0;
    uint32_t hdr_len = 0;

    for (;;) {
        ssize_t n;

        if (h->len >= FERRY_FRAME_PREFIX_LEN) {
            hdr_len = (uint32_t)h->buf[0] | (uint32_t)h->buf[1] << 8 |
                      (uint32_t)h->buf[2] << 16 | (uint32_t)h->buf[3] << 24;
            if (hdr_len == 0 || hdr_len > HS_BUF - FERRY_FRAME_PREFIX_LEN)
                return -EPROTO;
            if (h->len > FERRY_FRAME_PREFIX_LEN + hdr_len)
                return -EPROTO;   /* more than one message before our turn */
            if (h->len == FERRY_FRAME_PREFIX_LEN + hdr_len)
                break;
        }
        n = ferry_transport_read(t, h->buf + h->len, HS_BUF - h->len);
        if (n > 0) {
            h->len += (uint16_t)n;
            continue;
        }
        if (n == 0)
            return FERRY_EEOF;
        return n == -EAGAIN ? 0 : (int)n;
    }
    if (ferry_frame_decode_header(h->buf + FERRY_FRAME_PREFIX_LEN, hdr_len, &limits, out, &body) < 0)
        return -EPROTO;
    h->len = 0;
    if (body != 0) {
        json_decref(*out);
        *out = NULL;
        return -EPROTO;   /* no body before authentication */
    }
    return 1;
}

/* An error message in place of hello or welcome: a wrong key, a TLS
 * listener, or a refusal such as a full server. */
static int refusal(const json_t *m)
{
    const char *code = member_str(m, "code");

    if (code && strcmp(code, ERR_TLS_REQUIRED) == 0)
        return FERRY_ETLS_REQUIRED;
    return code && strcmp(code, ERR_AUTH) == 0 ? FERRY_EAUTH : FERRY_EREMOTE;
}

static int on_hello(const struct hs_config *cfg, struct hs *h, const json_t *m)
{
    const char *type = member_str(m, "type"), *method = member_str(m, "auth");
    const char *nonce = member_str(m, "nonce");

    if (type && strcmp(type, MSG_ERROR) == 0)
        return refusal(m);
    if (!type || strcmp(type, MSG_HELLO) != 0 || !method ||
        json_integer_value(json_object_get(m, "version")) != PROTO_VERSION)
        return -EPROTO;
    if (strcmp(method, "none") == 0) {
        /* No silent downgrade, as ferry: only when asked for. */
        if (!cfg->allow_none)
            return FERRY_EAUTH_MISMATCH;
        h->none = 1;
        return 0;
    }
    /* "tls" would say TLS authenticated us, and there is no TLS here. */
    if (strcmp(method, AUTH_METHOD) != 0)
        return -EPROTO;
    if (!cfg->have_key)
        return FERRY_EAUTH_MISMATCH;
    if (!nonce || hex_decode(nonce, h->sn, sizeof h->sn) < 0)
        return -EPROTO;
    if (auth_nonce(h->cn) < 0)
        return -EIO;   /* the CSPRNG failed: no nonce, no handshake */
    return 0;
}

/* Our auth message, prefix included, into buf; returns its length. */
static size_t auth_message(const struct hs_config *cfg, const struct hs *h, uint8_t buf[AUTH_MSG_MAX])
{
    char cn_hex[AUTH_HEX_LEN + 1], proof_hex[AUTH_HEX_LEN + 1];
    uint8_t proof[AUTH_PROOF_LEN];
    char *json = (char *)buf + FERRY_FRAME_PREFIX_LEN;
    size_t cap = AUTH_MSG_MAX - FERRY_FRAME_PREFIX_LEN;
    int n;

    if (h->none) {
        n = snprintf(json, cap, "{\"type\":\"%s\",\"version\":%d}", MSG_AUTH, PROTO_VERSION);
    } else {
        auth_proof(&cfg->key, AUTH_CLIENT, h->sn, h->cn, NULL, proof);
        hex_encode(h->cn, sizeof h->cn, cn_hex);
        hex_encode(proof, sizeof proof, proof_hex);
        /* -k FILE is the single key ferryd --key-file calls "ferry". */
        n = snprintf(json, cap, "{\"type\":\"%s\",\"version\":%d,\"key\":\"%s\",\"nonce\":\"%s\","
                     "\"proof\":\"%s\"}", MSG_AUTH, PROTO_VERSION, KEYS_DEFAULT_NAME, cn_hex, proof_hex);
    }
    /* Both forms are far below cap: the lengths are fixed. */
    buf[0] = (uint8_t)n;
    buf[1] = (uint8_t)(n >> 8);
    buf[2] = 0;
    buf[3] = 0;
    return FERRY_FRAME_PREFIX_LEN + (size_t)n;
}

/* Send (the rest of) msg, h->sent bytes of which are out.  1 when all of
 * it is, 0 on EAGAIN (the next EPOLLOUT edge resumes), or -errno. */
static int send_rest(struct hs *h, struct ferry_transport *t, const uint8_t *msg, size_t len)
{
    while (h->sent < len) {
        struct iovec iov = { (void *)(msg + h->sent), len - h->sent };
        ssize_t n = ferry_transport_writev(t, &iov, 1);

        if (n >= 0) {
            h->sent += (uint16_t)n;
            continue;
        }
        return n == -EAGAIN ? 0 : (int)n;
    }
    return 1;
}

static int send_auth(const struct hs_config *cfg, struct hs *h, struct ferry_transport *t)
{
    uint8_t msg[AUTH_MSG_MAX];

    return send_rest(h, t, msg, auth_message(cfg, h, msg));
}

static int on_welcome(const struct hs_config *cfg, const struct hs *h, const json_t *m)
{
    const char *type = member_str(m, "type"), *proof = member_str(m, "proof");

    if (type && strcmp(type, MSG_ERROR) == 0)
        return refusal(m);
    if (!type || strcmp(type, MSG_WELCOME) != 0)
        return -EPROTO;
    if (h->none)
        return 0;
    /* A server without the key cannot pretend to have it. */
    if (!auth_check(&cfg->key, AUTH_SERVER, h->sn, h->cn, NULL, proof ? proof : ""))
        return FERRY_EBADPROOF;
    return 0;
}

int hs_step(const struct hs_config *cfg, struct hs *h, struct ferry_transport *t)
{
    json_t *m = NULL;
    int r;

    for (;;) {
        switch (h->state) {
        case HS_CLIENT_HELLO:
            r = send_rest(h, t, client_hello, sizeof client_hello - 1);
            if (r <= 0)
                return r;
            h->sent = 0;
            h->state = HS_HELLO;
            break;
        case HS_HELLO:
            r = read_message(h, t, &m);
            if (r <= 0)
                return r;
            r = on_hello(cfg, h, m);
            json_decref(m);
            if (r < 0)
                return r;
            h->state = HS_AUTH;
            break;
        case HS_AUTH:
            r = send_auth(cfg, h, t);
            if (r <= 0)
                return r;
            h->state = HS_WELCOME;
            break;
        case HS_WELCOME:
            r = read_message(h, t, &m);
            if (r <= 0)
                return r;
            r = on_welcome(cfg, h, m);
            json_decref(m);
            if (r < 0)
                return r;
            h->state = HS_DONE;
            return 1;
        default:
            return 1;
        }
    }
}
