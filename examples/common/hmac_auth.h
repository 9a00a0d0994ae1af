/*
 * hmac_auth.h - the tutorial's HMAC challenge, shared by auth_echo and
 * auth_client.
 *
 * The server sends AUTH_NONCE_LEN random bytes; the client proves it knows
 * the shared key by answering HMAC(key, nonce).  The key is a file's exact
 * bytes, so the same secret works with the tutorial's Python programs.
 */
#ifndef FERRY_EXAMPLE_HMAC_AUTH_H
#define FERRY_EXAMPLE_HMAC_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>

#define AUTH_NONCE_LEN 32
/* A key longer than this is almost certainly the wrong file. */
#define AUTH_MAX_KEY   (64u * 1024u)

struct auth_key {
    uint8_t *bytes;          /* malloc'd; wiped by auth_key_free */
    size_t len;
    int others_can_read;     /* the file is readable by group or others */
};

/* "sha256" or "md5" (the tutorial's old Python default) -> *md.
 * Returns 0, or -1 for an unknown name. */
int auth_digest_parse(const char *name, const EVP_MD **md);

/* Read the key file at path.  Returns 0, or -1 after printing
 * "PROG: PATH: reason" (unreadable, empty or over AUTH_MAX_KEY bytes). */
int auth_key_load(const char *prog, const char *path, struct auth_key *key);
void auth_key_free(struct auth_key *key);

/* HMAC(key, nonce) into out (EVP_MAX_MD_SIZE bytes); returns the digest
 * length, or 0 if OpenSSL failed. */
size_t auth_answer(const EVP_MD *md, const struct auth_key *key,
                   const uint8_t nonce[AUTH_NONCE_LEN], uint8_t out[EVP_MAX_MD_SIZE]);

#endif
