/*
 * auth.c - proofs and nonces for the session handshake (see auth.h).
 */
#include "auth.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

static const char client_label[] = "ferry-v1 client proof";
static const char server_label[] = "ferry-v1 server proof";

/* From the kernel, not OpenSSL's generator: a plaintext session needs no
 * other randomness, and starting that generator (a provider fetch and a
 * seeded DRBG) was a fifth of a fresh plaintext command's own time. */
int auth_nonce(uint8_t nonce[AUTH_NONCE_LEN])
{
    size_t got = 0;

    while (got < AUTH_NONCE_LEN) {
        ssize_t n = getrandom(nonce + got, AUTH_NONCE_LEN - got, 0);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO;
        got += (size_t)n;
    }
    return 0;
}

void auth_proof(const struct ferry_key *key, enum auth_role role,
                const uint8_t server_nonce[AUTH_NONCE_LEN],
                const uint8_t client_nonce[AUTH_NONCE_LEN], const uint8_t *binding,
                uint8_t out[AUTH_PROOF_LEN])
{
    /* label, a NUL separating it from the binary part, both nonces, and
     * over TLS the channel binding */
    uint8_t msg[sizeof server_label + 2 * AUTH_NONCE_LEN + AUTH_BINDING_LEN];
    const char *label = role == AUTH_CLIENT ? client_label : server_label;
    size_t label_len = strlen(label) + 1, len;
    unsigned int out_len = AUTH_PROOF_LEN;

    memcpy(msg, label, label_len);
    memcpy(msg + label_len, server_nonce, AUTH_NONCE_LEN);
    memcpy(msg + label_len + AUTH_NONCE_LEN, client_nonce, AUTH_NONCE_LEN);
    len = label_len + 2 * AUTH_NONCE_LEN;
    if (binding) {
        memcpy(msg + len, binding, AUTH_BINDING_LEN);
        len += AUTH_BINDING_LEN;
    }
    HMAC(EVP_sha256(), key->bytes, KEY_LEN, msg, len, out, &out_len);
    OPENSSL_cleanse(msg, sizeof msg);
}

int auth_check(const struct ferry_key *key, enum auth_role role,
               const uint8_t server_nonce[AUTH_NONCE_LEN],
               const uint8_t client_nonce[AUTH_NONCE_LEN], const uint8_t *binding,
               const char *proof_hex)
{
    uint8_t expected[AUTH_PROOF_LEN], got[AUTH_PROOF_LEN];
    int ok;

    if (!proof_hex || hex_decode(proof_hex, got, sizeof got) < 0)
        return 0;
    auth_proof(key, role, server_nonce, client_nonce, binding, expected);
    ok = CRYPTO_memcmp(expected, got, AUTH_PROOF_LEN) == 0;
    OPENSSL_cleanse(expected, sizeof expected);
    return ok;
}

void hex_encode(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int hex_decode(const char *in, uint8_t *out, size_t n)
{
    if (strlen(in) != 2 * n)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        int hi = hex_value(in[2 * i]), lo = hex_value(in[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -EINVAL;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}
