/*
 * session.h - ferryd's handshake (PROTOCOL.md 2.1) as a non-blocking
 * state machine, one per connection, so ferry-bench can open thousands of
 * authenticated sessions at once from one epoll loop:
 *
 *   our hello -> hello (server nonce) -> auth (key name, client nonce,
 *   proof) -> welcome (server proof)
 *
 * ferry-bench speaks the plaintext mode only (ferryd --plaintext, or
 * --insecure-no-auth): no TLS (2.0).  A TLS listener's "tls-required"
 * refusal is reported as such.  The proofs are src/shared/auth.c's, the
 * same code ferry and ferryd use.  A connection counts as connected only
 * once the server's proof checked.
 */
#ifndef FERRY_BENCH_SESSION_H
#define FERRY_BENCH_SESSION_H

#include <stdint.h>

#include "auth.h"
#include "keyfile.h"

struct ferry_transport;

/* Largest handshake message accepted from the server: hello is about 170
 * bytes, welcome about 100, an auth error about 70. */
#define HS_BUF 512u

/* What every handshake of a run shares, set up once by main. */
struct hs_config {
    struct ferry_key key;
    int have_key;               /* -k: answer "hmac-sha256" */
    int allow_none;             /* --insecure-no-auth: accept "auth":"none" */
};

enum hs_state { HS_CLIENT_HELLO = 0, HS_HELLO, HS_AUTH, HS_WELCOME, HS_DONE };

/* One connection's handshake: fixed size, so a thread's thousands of them
 * are allocated once, before the burst. */
struct hs {
    uint8_t state;
    uint8_t none;               /* the server said "auth":"none" */
    uint16_t len;               /* bytes of the current message in buf */
    uint16_t sent;              /* bytes of our hello, then of our auth, sent */
    uint8_t sn[AUTH_NONCE_LEN];
    uint8_t cn[AUTH_NONCE_LEN];
    uint8_t buf[HS_BUF];        /* prefix and header of hello / welcome */
};

/* Start over on a connection that has just connected. */
void hs_reset(struct hs *h);

/*
 * Advance the handshake on t as far as it can go without blocking (call
 * on every epoll event until it is done).  Returns 1 once authenticated,
 * 0 when it waits for the socket, or a negative code: FERRY_EAUTH (the
 * server refused our proof: a wrong key), FERRY_EBADPROOF (the server's
 * proof is wrong), FERRY_EAUTH_MISMATCH (a mismatch of -k / --insecure-no-auth
 * and the server's setting), FERRY_ETLS_REQUIRED (the server wants TLS),
 * FERRY_EEOF, FERRY_EREMOTE (another refusal, such as too many
 * connections), -EPROTO, or a socket's -errno.
 */
int hs_step(const struct hs_config *cfg, struct hs *h, struct ferry_transport *t);

#endif
