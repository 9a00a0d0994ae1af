/*
 * handshake.c - the client's handshake state machine (handshake.h).
 *
 * Every check a client makes of the server's two messages is here, in the
 * order ferry has always made them, so the programs built on it print the
 * same verdict for the same server.  The messages are built with
 * json_pack in PROTOCOL.md's member order, which the frame encoder keeps:
 * the bytes on the wire are the specification's.
 */
#include "handshake.h"

#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>

#include "errcode.h"
#include "ferry/error.h"
#include "keys.h"
#include "proto.h"

void handshake_init(struct handshake *h, int over_tls, int allow_none)
{
    memset(h, 0, sizeof *h);
    h->state = HANDSHAKE_SEND_HELLO;
    h->method = HANDSHAKE_BY_UNKNOWN;
    h->over_tls = over_tls != 0;
    h->allow_none = allow_none != 0;
}

static const char *member_str(const json_t *m, const char *name)
{
    return json_string_value(json_object_get(m, name));
}

/* An error frame in place of hello or welcome: a wrong key, a TLS
 * listener, or another refusal (a full server, ...). */
static int refusal(const json_t *m)
{
    const char *code = member_str(m, "code");

    if (code && strcmp(code, ERR_AUTH) == 0)
        return FERRY_EAUTH;
    if (code && strcmp(code, ERR_TLS_REQUIRED) == 0)
        return FERRY_ETLS_REQUIRED;
    return FERRY_EREMOTE;
}

static int is_type(const json_t *m, const char *type)
{
    const char *t = member_str(m, "type");

    return t && strcmp(t, type) == 0;
}

/* Record a failure: after one, no step goes on. */
static int fail(struct handshake *h, int err)
{
    h->state = HANDSHAKE_FAILED;
    return err;
}

int handshake_hello(struct handshake *h, json_t **out)
{
    *out = NULL;
    if (h->state != HANDSHAKE_SEND_HELLO)
        return FERRY_ESTATE;
    *out = json_pack("{s:s, s:i}", "type", MSG_HELLO, "version", PROTO_VERSION);
    if (!*out)
        return -ENOMEM;
    h->state = HANDSHAKE_WAIT_HELLO;
    return 0;
}

/* The method the server named, with the checks that go with it. */
static int take_method(struct handshake *h, const json_t *msg)
{
    const char *method = member_str(msg, "auth"), *nonce;

    if (method && strcmp(method, AUTH_METHOD_NONE) == 0) {
        if (!h->allow_none)
            return FERRY_EAUTH_MISMATCH;
        h->method = HANDSHAKE_BY_NONE;
        return 0;
    }
    if (method && strcmp(method, AUTH_METHOD_TLS) == 0) {
        /* Only TLS itself can have authenticated us, and only over TLS
         * has the server proved itself (by the PSK, or a certificate that
         * verified). */
        if (!h->over_tls)
            return FERRY_EHS_TLS_CLAIM;
        h->method = HANDSHAKE_BY_TLS;
        return 0;
    }
    if (!method || strcmp(method, AUTH_METHOD) != 0)
        return FERRY_EHS_METHOD;
    nonce = member_str(msg, "nonce");
    if (!nonce || strlen(nonce) != AUTH_HEX_LEN || hex_decode(nonce, h->sn, sizeof h->sn) < 0)
        return FERRY_EHS_NONCE;
    if (auth_nonce(h->cn) < 0)
        return -EIO;
    h->method = HANDSHAKE_BY_HMAC;
    return 0;
}

int handshake_on_hello(struct handshake *h, const json_t *msg, uint64_t body_size)
{
    int r;

    if (h->state != HANDSHAKE_WAIT_HELLO)
        return FERRY_ESTATE;
    if (body_size != 0)
        return fail(h, FERRY_EHS_BODY);
    if (is_type(msg, MSG_ERROR))
        return fail(h, refusal(msg));
    if (!is_type(msg, MSG_HELLO))
        return fail(h, FERRY_EHS_NOT_HELLO);
    if (json_integer_value(json_object_get(msg, "version")) != PROTO_VERSION)
        return fail(h, FERRY_EHS_VERSION);
    r = take_method(h, msg);
    if (r < 0)
        return fail(h, r);
    if (h->early) {
        /* Our auth claimed TLS already: any other method is not the
         * server a PSK connection can have. */
        if (h->method != HANDSHAKE_BY_TLS)
            return fail(h, FERRY_EHS_METHOD);
        h->state = HANDSHAKE_WAIT_WELCOME;
        return 0;
    }
    h->state = HANDSHAKE_SEND_AUTH;
    return 0;
}

int handshake_auth_early(struct handshake *h, json_t **out)
{
    *out = NULL;
    if (h->state != HANDSHAKE_WAIT_HELLO || h->early || !h->over_tls)
        return FERRY_ESTATE;
    *out = json_pack("{s:s, s:i}", "type", MSG_AUTH, "version", PROTO_VERSION);
    if (!*out)
        return -ENOMEM;
    h->early = 1;
    return 0;
}

/* The HMAC form of auth: our nonce and the proof over both nonces (and
 * the channel binding over TLS). */
static json_t *hmac_auth(const struct handshake *h, const struct ferry_key *key,
                         const char *key_name)
{
    char cn_hex[AUTH_HEX_LEN + 1], proof_hex[AUTH_HEX_LEN + 1];
    uint8_t proof[AUTH_PROOF_LEN];
    json_t *m;

    auth_proof(key, AUTH_CLIENT, h->sn, h->cn, h->bound ? h->binding : NULL, proof);
    hex_encode(h->cn, sizeof h->cn, cn_hex);
    hex_encode(proof, sizeof proof, proof_hex);
    m = json_pack("{s:s, s:i, s:s, s:s, s:s}", "type", MSG_AUTH, "version", PROTO_VERSION,
                  "key", key_name ? key_name : KEYS_DEFAULT_NAME, "nonce", cn_hex,
                  "proof", proof_hex);
    OPENSSL_cleanse(proof, sizeof proof);
    OPENSSL_cleanse(proof_hex, sizeof proof_hex);
    return m;
}

int handshake_auth(struct handshake *h, const struct ferry_key *key, const char *key_name,
                   const uint8_t *binding, json_t **out)
{
    *out = NULL;
    /* A rebuild after a lost write is allowed: the same inputs give the
     * same bytes. */
    if (h->state != HANDSHAKE_SEND_AUTH && h->state != HANDSHAKE_WAIT_WELCOME)
        return FERRY_ESTATE;
    if (h->method == HANDSHAKE_BY_HMAC) {
        if (!key)
            return fail(h, FERRY_EAUTH_MISMATCH);
        /* Over TLS the proofs are bound to this connection (auth.h), so a
         * host we would trust cannot relay them to another. */
        if (h->over_tls && !binding)
            return -EINVAL;
        if (h->over_tls) {
            memcpy(h->binding, binding, sizeof h->binding);
            h->bound = 1;
        }
        *out = hmac_auth(h, key, key_name);
    } else {
        *out = json_pack("{s:s, s:i}", "type", MSG_AUTH, "version", PROTO_VERSION);
    }
    if (!*out)
        return -ENOMEM;
    h->state = HANDSHAKE_WAIT_WELCOME;
    return 0;
}

int handshake_on_welcome(struct handshake *h, const struct ferry_key *key, const json_t *msg,
                         uint64_t body_size)
{
    const char *proof;

    if (h->state != HANDSHAKE_WAIT_WELCOME)
        return FERRY_ESTATE;
    if (body_size != 0)
        return fail(h, FERRY_EHS_BODY);
    if (is_type(msg, MSG_ERROR))
        return fail(h, refusal(msg));
    if (!is_type(msg, MSG_WELCOME))
        return fail(h, FERRY_EHS_NOT_WELCOME);
    /* Mutual: a server that cannot prove the key gets no request, not
     * even the command line. */
    if (h->method == HANDSHAKE_BY_HMAC) {
        proof = member_str(msg, "proof");
        if (!key || !auth_check(key, AUTH_SERVER, h->sn, h->cn, h->bound ? h->binding : NULL,
                                proof ? proof : ""))
            return fail(h, FERRY_EBADPROOF);
    }
    h->state = HANDSHAKE_DONE;
    return 0;
}

void handshake_wipe(struct handshake *h)
{
    OPENSSL_cleanse(h, sizeof *h);
}
