/*
 * handshake.h - the client's half of the session handshake
 * (docs/PROTOCOL.md 2.1), once for ferry and ferry-bench:
 *
 *   our hello -> server hello (method, nonce) -> our auth -> welcome (proof)
 *
 * Sans-I/O: it builds the messages we send and checks the ones we get,
 * as JSON headers; the caller encodes and decodes them with libferry's
 * frame codec and moves the bytes however it likes (a blocking transport,
 * a connection on a loop, thousands of non-blocking sockets).  So both
 * programs agree on every byte and every verdict, and the state machine
 * is tested without a socket (tests/unit/test_handshake.c).
 *
 * The state is a small fixed-size struct the caller owns: no allocation
 * but the json_t messages, which the caller frees.  Proofs come from
 * auth.c, the same code ferryd checks them with.
 */
#ifndef FERRY_SHARED_HANDSHAKE_H
#define FERRY_SHARED_HANDSHAKE_H

#include <stdint.h>

#include <jansson.h>

#include "auth.h"
#include "keyfile.h"

/* How the server wants us to prove ourselves (its hello's "auth"). */
enum handshake_method {
    HANDSHAKE_BY_UNKNOWN = 0,   /* no hello seen yet */
    HANDSHAKE_BY_NONE,          /* --insecure-no-auth server: nothing */
    HANDSHAKE_BY_TLS,           /* TLS authenticated us already */
    HANDSHAKE_BY_HMAC,          /* the key's HMAC proofs (auth.h) */
};

enum handshake_state {
    HANDSHAKE_SEND_HELLO = 0,   /* handshake_hello() next */
    HANDSHAKE_WAIT_HELLO,       /* handshake_on_hello() next */
    HANDSHAKE_SEND_AUTH,        /* handshake_auth() next */
    HANDSHAKE_WAIT_WELCOME,     /* handshake_on_welcome() next */
    HANDSHAKE_DONE,             /* authenticated both ways */
    HANDSHAKE_FAILED,           /* a step failed; nothing more may be sent */
};

/* One connection's handshake.  Fields are read-only to the caller. */
struct handshake {
    uint8_t state;              /* enum handshake_state */
    uint8_t method;             /* enum handshake_method, from the server's hello */
    uint8_t over_tls;           /* the connection is TLS (the server proved itself) */
    uint8_t allow_none;         /* the user accepts a server without authentication */
    uint8_t bound;              /* binding[] holds the TLS channel binding */
    uint8_t early;              /* our auth went with our hello (handshake_auth_early) */
    uint8_t sn[AUTH_NONCE_LEN]; /* the server's nonce */
    uint8_t cn[AUTH_NONCE_LEN]; /* ours */
    uint8_t binding[AUTH_BINDING_LEN];
};

/* Start a handshake on a connection that has just come up (after the TLS
 * handshake when over_tls).  allow_none: accept "auth":"none" (only when
 * the user asked for it: no silent downgrade). */
void handshake_init(struct handshake *h, int over_tls, int allow_none);

/* Our hello, {"type":"hello","version":1}, into *out (a new reference the
 * caller frees after encoding it).  0, or -ENOMEM. */
int handshake_hello(struct handshake *h, json_t **out);

/*
 * Our auth in the same flight as our hello, before the server's hello
 * (PROTOCOL.md 2.1), into *out ({"type":"auth","version":1}; the caller
 * frees it).  Only over TLS keyed by a PSK: TLS has then authenticated
 * both sides, so the server's hello can only say "tls" and the auth owes
 * it nothing; waiting for it would cost a round trip.  Call right after
 * handshake_hello.  handshake_on_hello then insists on "tls"
 * (FERRY_EHS_METHOD otherwise) and handshake_on_welcome comes next.
 * 0, -ENOMEM, or FERRY_ESTATE out of turn or not over TLS.
 */
int handshake_auth_early(struct handshake *h, json_t **out);

/*
 * Check the server's answer to our hello: its header `msg` and the size
 * of its body (none is allowed before authentication).  On success the
 * method is in h->method and 0 is returned.  Failures (the handshake is
 * then over):
 *   FERRY_EAUTH          an error frame with code "auth"
 *   FERRY_ETLS_REQUIRED  an error frame with code "tls-required"
 *   FERRY_EREMOTE        any other error frame (its "message" says why)
 *   FERRY_EHS_NOT_HELLO  not a hello (not ferryd?)
 *   FERRY_EHS_VERSION    a hello of another protocol version
 *   FERRY_EHS_BODY       a body before authentication
 *   FERRY_EAUTH_MISMATCH "none", and allow_none was not given
 *   FERRY_EHS_TLS_CLAIM  "tls" on a plaintext connection
 *   FERRY_EHS_METHOD     a method we do not know, or none named
 *   FERRY_EHS_NONCE      "hmac-sha256" with a malformed nonce
 *   -EIO                 the CSPRNG gave no nonce of ours
 */
int handshake_on_hello(struct handshake *h, const json_t *msg, uint64_t body_size);

/*
 * Our auth message into *out (a new reference the caller frees).  Under
 * HANDSHAKE_BY_HMAC it needs `key` (FERRY_EAUTH_MISMATCH when NULL: the
 * server wants a key we do not have) and names it `key_name` (NULL:
 * KEYS_DEFAULT_NAME); over TLS `binding` is the AUTH_BINDING_LEN bytes
 * exported under AUTH_BINDING_LABEL (-EINVAL when missing), NULL in
 * plaintext.  Both are copied or used at once; the message can be built
 * again with the same inputs and comes out byte for byte the same (a
 * caller that lost a partial write may rebuild rather than keep it).
 * 0, -ENOMEM, or FERRY_ESTATE out of turn.
 */
int handshake_auth(struct handshake *h, const struct ferry_key *key, const char *key_name,
                   const uint8_t *binding, json_t **out);

/*
 * Check the server's answer to our auth.  0: authenticated both ways (the
 * server's proof checked under HANDSHAKE_BY_HMAC; `key` is the one given
 * to handshake_auth).  Failures as handshake_on_hello's error frames, and
 *   FERRY_EHS_NOT_WELCOME  neither welcome nor error
 *   FERRY_EHS_BODY         a body before authentication
 *   FERRY_EBADPROOF        the server's proof is wrong or missing
 */
int handshake_on_welcome(struct handshake *h, const struct ferry_key *key, const json_t *msg,
                         uint64_t body_size)
    __attribute__((warn_unused_result));

/* Forget the nonces and the binding (call when done with h). */
void handshake_wipe(struct handshake *h);

#endif
