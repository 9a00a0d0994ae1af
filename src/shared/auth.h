/*
 * auth.h - the ferry session handshake: mutual HMAC-SHA256 proof of the
 * shared key over both sides' fresh nonces.  docs/PROTOCOL.md section 2
 * gives the exchange byte by byte.
 *
 *   server -> {"type":"hello","version":1,"auth":"hmac-sha256","nonce":SN,...}
 *   client -> {"type":"auth","nonce":CN,"proof":HMAC(key, "ferry-v1 client proof\0" SN CN)}
 *   server -> {"type":"welcome","proof":HMAC(key, "ferry-v1 server proof\0" SN CN)}
 *
 * Each proof covers both nonces, so neither side can replay an old
 * transcript; the two proofs carry different labels, so one side's proof
 * can never be reflected back as the other's.
 */
#ifndef FERRY_AUTH_H
#define FERRY_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "keyfile.h"

#define AUTH_NONCE_LEN 32
#define AUTH_PROOF_LEN 32
#define AUTH_HEX_LEN   64          /* nonces and proofs travel as lowercase hex */
#define AUTH_VERSION   1
#define AUTH_METHOD    "hmac-sha256"
/* Over TLS both proofs also cover this many bytes exported from the TLS
 * session (RFC 8446 7.5) under AUTH_BINDING_LABEL, so a proof made on one
 * connection is worthless on any other: a host with a certificate the
 * client trusts cannot relay the exchange to the real server. */
#define AUTH_BINDING_LEN   32
#define AUTH_BINDING_LABEL "EXPERIMENTAL-ferry-v1-auth"

enum auth_role { AUTH_CLIENT = 0, AUTH_SERVER = 1 };

/* Fill a nonce from the system's CSPRNG.  0 or -EIO. */
int auth_nonce(uint8_t nonce[AUTH_NONCE_LEN]);

/* The proof a role sends.  binding: AUTH_BINDING_LEN bytes over TLS,
 * NULL in plaintext. */
void auth_proof(const struct ferry_key *key, enum auth_role role,
                const uint8_t server_nonce[AUTH_NONCE_LEN],
                const uint8_t client_nonce[AUTH_NONCE_LEN], const uint8_t *binding,
                uint8_t out[AUTH_PROOF_LEN]);

/* Check a received proof (hex text from the wire) in constant time.
 * Returns 1 when it is right, 0 otherwise (malformed hex included). */
int auth_check(const struct ferry_key *key, enum auth_role role,
               const uint8_t server_nonce[AUTH_NONCE_LEN],
               const uint8_t client_nonce[AUTH_NONCE_LEN], const uint8_t *binding,
               const char *proof_hex)
    __attribute__((warn_unused_result));

/* Hex helpers: encode n bytes into 2n+1 chars; decode exactly n bytes from
 * a string of exactly 2n hex digits (0, or -EINVAL if it is anything
 * else). */
void hex_encode(const uint8_t *in, size_t n, char *out);
int hex_decode(const char *in, uint8_t *out, size_t n);

#endif
