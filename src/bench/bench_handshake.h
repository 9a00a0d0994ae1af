/*
 * bench_handshake.h - ferryd's handshake (PROTOCOL.md 2.1) driven without
 * blocking, one per connection, so ferry-bench can open thousands of
 * authenticated sessions at once from one epoll loop.
 *
 * What is said and what is checked is src/shared/handshake.c's, the same
 * state machine ferry uses; this file only moves its messages: encoded
 * and decoded by libferry's frame codec, carried by the connection's
 * transport.  ferry-bench speaks the plaintext mode only (ferryd
 * --plaintext, or --insecure-no-auth): no TLS (2.0); a TLS listener's
 * "tls-required" refusal is reported as such.  A connection counts as
 * connected only once the server's proof checked.
 */
#ifndef FERRY_BENCH_HANDSHAKE_H
#define FERRY_BENCH_HANDSHAKE_H

#include <stddef.h>
#include <stdint.h>

#include "handshake.h"
#include "keyfile.h"

struct ferry_frame_parser;
struct ferry_transport;

/* The largest message we send, prefix included: auth is 4 + about 200
 * bytes (two 64-digit hex strings and the key's name). */
#define BENCH_HS_OUT_MAX 256u

/* What every handshake of a run shares, set up once by main. */
struct bench_hs_config {
    struct ferry_key key;
    int have_key;               /* -k: answer "hmac-sha256" */
    int allow_none;             /* --insecure-no-auth: accept "auth":"none" */
    uint16_t hello_len;         /* our hello, the same on every connection, */
    uint8_t hello[64];          /* ... encoded once (bench_handshake_prepare) */
};

/* Encode our hello once for the whole run, from the state machine's own
 * message.  0 or a negative code. */
int bench_handshake_prepare(struct bench_hs_config *cfg);

/* One connection's handshake: fixed size, so a thread's thousands of them
 * are allocated once, before the burst. */
struct bench_handshake {
    struct handshake hs;
    uint16_t out_len;           /* the message being sent, prefix included */
    uint16_t out_sent;          /* ... and how much of it the transport took */
    uint8_t out[BENCH_HS_OUT_MAX];
};

/* Start over on a connection that has just connected.  fp, the parser the
 * server's messages go through, gets the handshake's limits (a small
 * header, no body); a caller that parses more with it afterwards sets its
 * own limits again once the handshake is done. */
void bench_handshake_start(const struct bench_hs_config *cfg, struct bench_handshake *b,
                           struct ferry_frame_parser *fp);

/*
 * Advance the handshake on t as far as it can go without blocking (call
 * on every epoll event until it is done); scratch is a buffer to read
 * into.  Returns 1 once authenticated, 0 when it waits for the socket, or
 * a negative code: FERRY_EAUTH (the server refused our proof: a wrong
 * key), FERRY_EBADPROOF (the server's proof is wrong), FERRY_EAUTH_MISMATCH
 * (-k / --insecure-no-auth and the server's setting differ),
 * FERRY_ETLS_REQUIRED, FERRY_EEOF, FERRY_EREMOTE (another refusal, such as
 * too many connections), -EPROTO (anything else the server got wrong), or
 * the transport's code.
 */
int bench_handshake_step(const struct bench_hs_config *cfg, struct bench_handshake *b,
                         struct ferry_transport *t, struct ferry_frame_parser *fp,
                         uint8_t *scratch, size_t scratch_len);

#endif
