/*
 * fuzz_handshake.c - libFuzzer harness for the client's half of the
 * session handshake (src/shared/handshake.c): what a hostile server can
 * answer to our hello and to our auth.
 *
 * Input layout: byte 0 holds the options (bit 0: over TLS, bit 1: the user
 * allows "auth":"none", bit 2: we have a key, bit 3: the hello frame
 * "has" a body, bit 4: the welcome does); the rest is the server's hello
 * header and its welcome header, as JSON texts split at the first NUL.
 * The state machine must never crash, leak, or report success for a
 * welcome without a right proof under HMAC (the proof cannot be forged by
 * the fuzzer: a success there aborts).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "handshake.h"
#include "keyfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t binding[AUTH_BINDING_LEN] = { 1, 2, 3 };
    struct ferry_key key;
    struct handshake h;
    json_t *out = NULL, *hello = NULL, *welcome = NULL;
    const uint8_t *nul;
    size_t first;
    uint8_t opts;
    int r;

    if (size < 1)
        return 0;
    opts = data[0];
    data++;
    size--;
    nul = memchr(data, 0, size);
    first = nul ? (size_t)(nul - data) : size;
    memset(&key, 0x5a, sizeof key);

    handshake_init(&h, opts & 1, (opts >> 1) & 1);
    if (handshake_hello(&h, &out) < 0)
        abort();
    json_decref(out);
    out = NULL;

    hello = json_loadb((const char *)data, first, JSON_REJECT_DUPLICATES, NULL);
    if (!hello)
        goto out;
    r = handshake_on_hello(&h, hello, (opts & 8) ? 1 : 0);
    if (r < 0) {
        if (h.state != HANDSHAKE_FAILED)
            abort();
        goto out;
    }
    r = handshake_auth(&h, (opts & 4) ? &key : NULL, NULL, (opts & 1) ? binding : NULL, &out);
    json_decref(out);
    if (r < 0 || !nul)
        goto out;
    welcome = json_loadb((const char *)nul + 1, size - first - 1, JSON_REJECT_DUPLICATES, NULL);
    if (!welcome)
        goto out;
    r = handshake_on_welcome(&h, (opts & 4) ? &key : NULL, welcome, (opts & 16) ? 1 : 0);
    /* Under HMAC only the server holding the key can prove itself, and
     * the nonce we chose is random: the fuzzer cannot have made it. */
    if (r == 0 && h.method == HANDSHAKE_BY_HMAC)
        abort();
    if (r == 0 && h.state != HANDSHAKE_DONE)
        abort();
out:
    handshake_wipe(&h);
    json_decref(hello);
    json_decref(welcome);
    return 0;
}
