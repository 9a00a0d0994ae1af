/*
 * test_handshake.c - the client's handshake state machine
 * (src/shared/handshake.c), without a socket.
 *
 * The test plays ferryd: it makes the server's messages and checks ours
 * with auth.c, as ferryd does, and compares our messages' encoded bytes
 * with docs/PROTOCOL.md 2.1's, so ferry and ferry-bench cannot drift off
 * the wire format.  Every refusal the state machine can return is driven
 * by a message that provokes it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "errcode.h"
#include "ferry/error.h"
#include "ferry/frame.h"
#include "handshake.h"
#include "proto.h"

/* ---- helpers ------------------------------------------------------------------ */

static const struct ferry_key test_key = { .bytes = {
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
    17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32 } };
static const struct ferry_key other_key = { .bytes = { 9 } };

/* The server's nonce in the tests, and its hex form. */
static uint8_t sn[AUTH_NONCE_LEN];
static char sn_hex[AUTH_HEX_LEN + 1];

static int setup(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof sn; i++)
        sn[i] = (uint8_t)(0xa0 + i);
    hex_encode(sn, sizeof sn, sn_hex);
    return 0;
}

/* A message's frame bytes (prefix and header) as the encoder makes them,
 * NUL-terminated for comparisons; the caller frees. */
static char *encoded(json_t *m, size_t *len)
{
    uint8_t *buf = NULL, *text;
    size_t n = 0;

    assert_int_equal(ferry_frame_encode(m, 0, NULL, &buf, &n), 0);
    text = malloc(n + 1);
    assert_non_null(text);
    memcpy(text, buf, n);
    text[n] = '\0';
    free(buf);
    if (len)
        *len = n;
    return (char *)text;
}

static json_t *parse(const char *text)
{
    json_t *m = json_loads(text, 0, NULL);

    assert_non_null(m);
    return m;
}

static json_t *server_hello(const char *method)
{
    json_t *m = json_pack("{s:s, s:i, s:s, s:s}", "type", "hello", "version", 1,
                          "server", "ferryd test", "auth", method);

    assert_non_null(m);
    if (strcmp(method, AUTH_METHOD) == 0)
        assert_int_equal(json_object_set_new(m, "nonce", json_string(sn_hex)), 0);
    return m;
}

/* Start h and take our hello and the server's. */
static void greet(struct handshake *h, int over_tls, int allow_none, const char *method)
{
    json_t *ours = NULL, *theirs = server_hello(method);

    handshake_init(h, over_tls, allow_none);
    assert_int_equal(handshake_hello(h, &ours), 0);
    json_decref(ours);
    assert_int_equal(handshake_on_hello(h, theirs, 0), 0);
    json_decref(theirs);
}

/* What the server answers to an auth message: ferryd's check of the
 * client's proof, then its own proof made with `key`. */
static json_t *server_welcome(const json_t *auth, const struct ferry_key *key,
                              const uint8_t *binding)
{
    uint8_t cn[AUTH_NONCE_LEN], proof[AUTH_PROOF_LEN];
    char proof_hex[AUTH_HEX_LEN + 1];
    const char *cn_hex = json_string_value(json_object_get(auth, "nonce"));
    const char *client_proof = json_string_value(json_object_get(auth, "proof"));
    json_t *m;

    assert_non_null(cn_hex);
    assert_non_null(client_proof);
    assert_int_equal(hex_decode(cn_hex, cn, sizeof cn), 0);
    assert_true(auth_check(&test_key, AUTH_CLIENT, sn, cn, binding, client_proof));
    auth_proof(key, AUTH_SERVER, sn, cn, binding, proof);
    hex_encode(proof, sizeof proof, proof_hex);
    m = json_pack("{s:s, s:s}", "type", "welcome", "proof", proof_hex);
    assert_non_null(m);
    return m;
}

/* ---- the wire format ---------------------------------------------------------- */

/* Our hello is PROTOCOL.md's, byte for byte, prefix included. */
static void test_hello_bytes(void **state)
{
    static const char expect[] = "\x1c\0\0\0{\"type\":\"hello\",\"version\":1}";
    struct handshake h;
    json_t *m = NULL;
    size_t len = 0;
    char *bytes;

    (void)state;
    handshake_init(&h, 0, 0);
    assert_int_equal(h.state, HANDSHAKE_SEND_HELLO);
    assert_int_equal(handshake_hello(&h, &m), 0);
    assert_int_equal(h.state, HANDSHAKE_WAIT_HELLO);
    bytes = encoded(m, &len);
    assert_int_equal(len, sizeof expect - 1);
    assert_memory_equal(bytes, expect, len);
    free(bytes);
    json_decref(m);
}

/* The HMAC exchange in plaintext: our auth names the key, carries a fresh
 * nonce and a proof ferryd accepts, in the specification's member order;
 * a right server proof completes it. */
static void test_hmac_plaintext(void **state)
{
    struct handshake h;
    json_t *auth = NULL, *welcome;
    char *bytes, expect_head[64];
    const char *nonce;

    (void)state;
    greet(&h, 0, 0, AUTH_METHOD);
    assert_int_equal(h.method, HANDSHAKE_BY_HMAC);
    assert_int_equal(h.state, HANDSHAKE_SEND_AUTH);
    assert_memory_equal(h.sn, sn, sizeof sn);
    assert_int_equal(handshake_auth(&h, &test_key, NULL, NULL, &auth), 0);
    bytes = encoded(auth, NULL);
    snprintf(expect_head, sizeof expect_head, "{\"type\":\"auth\",\"version\":1,\"key\":\"ferry\","
             "\"nonce\":\"");
    assert_memory_equal(bytes + FERRY_FRAME_PREFIX_LEN, expect_head, strlen(expect_head));
    assert_non_null(strstr(bytes + FERRY_FRAME_PREFIX_LEN, "\",\"proof\":\""));
    free(bytes);
    nonce = json_string_value(json_object_get(auth, "nonce"));
    assert_non_null(nonce);
    assert_int_equal(strlen(nonce), AUTH_HEX_LEN);

    welcome = server_welcome(auth, &test_key, NULL);
    assert_int_equal(handshake_on_welcome(&h, &test_key, welcome, 0), 0);
    assert_int_equal(h.state, HANDSHAKE_DONE);
    json_decref(welcome);
    json_decref(auth);
    handshake_wipe(&h);
}

/* --key-name names the key in auth. */
static void test_hmac_key_name(void **state)
{
    struct handshake h;
    json_t *auth = NULL;

    (void)state;
    greet(&h, 0, 0, AUTH_METHOD);
    assert_int_equal(handshake_auth(&h, &test_key, "alice", NULL, &auth), 0);
    assert_string_equal(json_string_value(json_object_get(auth, "key")), "alice");
    json_decref(auth);
}

/* Two handshakes pick two different nonces. */
static void test_fresh_nonces(void **state)
{
    struct handshake a, b;

    (void)state;
    greet(&a, 0, 0, AUTH_METHOD);
    greet(&b, 0, 0, AUTH_METHOD);
    assert_memory_not_equal(a.cn, b.cn, sizeof a.cn);
}

/* A caller that lost a partial write rebuilds the same bytes. */
static void test_auth_rebuild(void **state)
{
    struct handshake h;
    json_t *a1 = NULL, *a2 = NULL;
    char *b1, *b2;

    (void)state;
    greet(&h, 0, 0, AUTH_METHOD);
    assert_int_equal(handshake_auth(&h, &test_key, NULL, NULL, &a1), 0);
    assert_int_equal(handshake_auth(&h, &test_key, NULL, NULL, &a2), 0);
    b1 = encoded(a1, NULL);
    b2 = encoded(a2, NULL);
    assert_string_equal(b1 + FERRY_FRAME_PREFIX_LEN, b2 + FERRY_FRAME_PREFIX_LEN);
    free(b1);
    free(b2);
    json_decref(a1);
    json_decref(a2);
}

/* Over TLS the proofs cover the channel binding: without it ferryd would
 * not accept ours, and a server proof made without it is refused. */
static void test_hmac_tls_binding(void **state)
{
    uint8_t binding[AUTH_BINDING_LEN];
    struct handshake h;
    json_t *auth = NULL, *welcome;

    (void)state;
    memset(binding, 0x5c, sizeof binding);
    greet(&h, 1, 0, AUTH_METHOD);
    assert_int_equal(handshake_auth(&h, &test_key, NULL, NULL, &auth), -EINVAL);
    assert_null(auth);
    assert_int_equal(handshake_auth(&h, &test_key, NULL, binding, &auth), 0);
    welcome = server_welcome(auth, &test_key, binding);
    assert_int_equal(handshake_on_welcome(&h, &test_key, welcome, 0), 0);
    json_decref(welcome);
    json_decref(auth);

    /* the same exchange, the server's proof without the binding */
    greet(&h, 1, 0, AUTH_METHOD);
    assert_int_equal(handshake_auth(&h, &test_key, NULL, binding, &auth), 0);
    welcome = server_welcome(auth, &test_key, binding);
    json_decref(welcome);
    {
        uint8_t cn[AUTH_NONCE_LEN], proof[AUTH_PROOF_LEN];
        char proof_hex[AUTH_HEX_LEN + 1];

        assert_int_equal(hex_decode(json_string_value(json_object_get(auth, "nonce")), cn,
                                    sizeof cn), 0);
        auth_proof(&test_key, AUTH_SERVER, sn, cn, NULL, proof);
        hex_encode(proof, sizeof proof, proof_hex);
        welcome = json_pack("{s:s, s:s}", "type", "welcome", "proof", proof_hex);
    }
    assert_int_equal(handshake_on_welcome(&h, &test_key, welcome, 0), FERRY_EBADPROOF);
    assert_int_equal(h.state, HANDSHAKE_FAILED);
    json_decref(welcome);
    json_decref(auth);
}

/* A server that does not hold the key cannot pretend to: a proof made
 * with another key, a missing one, or one that is not hex. */
static void test_bad_server_proof(void **state)
{
    static const char *const welcomes[] = {
        NULL, /* made with other_key below */
        "{\"type\":\"welcome\"}",
        "{\"type\":\"welcome\",\"proof\":\"zz\"}",
        "{\"type\":\"welcome\",\"proof\":7}",
    };

    (void)state;
    for (size_t i = 0; i < sizeof welcomes / sizeof welcomes[0]; i++) {
        struct handshake h;
        json_t *auth = NULL, *welcome;

        greet(&h, 0, 0, AUTH_METHOD);
        assert_int_equal(handshake_auth(&h, &test_key, NULL, NULL, &auth), 0);
        welcome = welcomes[i] ? parse(welcomes[i]) : server_welcome(auth, &other_key, NULL);
        assert_int_equal(handshake_on_welcome(&h, &test_key, welcome, 0), FERRY_EBADPROOF);
        json_decref(welcome);
        json_decref(auth);
    }
}

/* "none" only when asked for; then auth and welcome are bare. */
static void test_none(void **state)
{
    static const char expect[] = "{\"type\":\"auth\",\"version\":1}";
    struct handshake h;
    json_t *hello = server_hello(AUTH_METHOD_NONE), *ours = NULL, *auth = NULL, *welcome;
    char *bytes;

    (void)state;
    handshake_init(&h, 0, 0);
    assert_int_equal(handshake_hello(&h, &ours), 0);
    json_decref(ours);
    assert_int_equal(handshake_on_hello(&h, hello, 0), FERRY_EAUTH_MISMATCH);
    assert_int_equal(h.state, HANDSHAKE_FAILED);
    assert_int_equal(handshake_auth(&h, &test_key, NULL, NULL, &auth), FERRY_ESTATE);
    assert_null(auth);
    json_decref(hello);

    greet(&h, 0, 1, AUTH_METHOD_NONE);
    assert_int_equal(h.method, HANDSHAKE_BY_NONE);
    /* no key is needed, and a key given is not used */
    assert_int_equal(handshake_auth(&h, NULL, NULL, NULL, &auth), 0);
    bytes = encoded(auth, NULL);
    assert_string_equal(bytes + FERRY_FRAME_PREFIX_LEN, expect);
    free(bytes);
    welcome = parse("{\"type\":\"welcome\"}");
    assert_int_equal(handshake_on_welcome(&h, NULL, welcome, 0), 0);
    assert_int_equal(h.state, HANDSHAKE_DONE);
    json_decref(welcome);
    json_decref(auth);
}

/* "tls" only on a TLS connection; then no proofs either way. */
static void test_tls_method(void **state)
{
    struct handshake h;
    json_t *hello = server_hello(AUTH_METHOD_TLS), *ours = NULL, *auth = NULL, *welcome;
    char *bytes;

    (void)state;
    handshake_init(&h, 0, 1);
    assert_int_equal(handshake_hello(&h, &ours), 0);
    json_decref(ours);
    assert_int_equal(handshake_on_hello(&h, hello, 0), FERRY_EHS_TLS_CLAIM);
    json_decref(hello);

    greet(&h, 1, 0, AUTH_METHOD_TLS);
    assert_int_equal(h.method, HANDSHAKE_BY_TLS);
    assert_int_equal(handshake_auth(&h, NULL, NULL, NULL, &auth), 0);
    bytes = encoded(auth, NULL);
    assert_string_equal(bytes + FERRY_FRAME_PREFIX_LEN, "{\"type\":\"auth\",\"version\":1}");
    free(bytes);
    welcome = parse("{\"type\":\"welcome\"}");
    assert_int_equal(handshake_on_welcome(&h, NULL, welcome, 0), 0);
    json_decref(welcome);
    json_decref(auth);
}

/* Over a PSK connection the auth goes with the hello (one round trip
 * fewer): the same bytes as the auth that waits; the server's hello must
 * then say "tls", and welcome follows.  Not in plaintext, not twice, and
 * any other method from the server ends it. */
static void test_early_auth(void **state)
{
    static const char *const others[] = { AUTH_METHOD, AUTH_METHOD_NONE };
    struct handshake h;
    json_t *ours = NULL, *auth = NULL, *hello, *welcome;
    char *bytes;

    (void)state;
    handshake_init(&h, 0, 0);
    assert_int_equal(handshake_hello(&h, &ours), 0);
    json_decref(ours);
    assert_int_equal(handshake_auth_early(&h, &auth), FERRY_ESTATE);   /* plaintext */
    assert_null(auth);

    handshake_init(&h, 1, 0);
    assert_int_equal(handshake_auth_early(&h, &auth), FERRY_ESTATE);   /* before hello */
    assert_int_equal(handshake_hello(&h, &ours), 0);
    json_decref(ours);
    assert_int_equal(handshake_auth_early(&h, &auth), 0);
    bytes = encoded(auth, NULL);
    assert_string_equal(bytes + FERRY_FRAME_PREFIX_LEN, "{\"type\":\"auth\",\"version\":1}");
    free(bytes);
    json_decref(auth);
    assert_int_equal(handshake_auth_early(&h, &auth), FERRY_ESTATE);   /* twice */
    hello = server_hello(AUTH_METHOD_TLS);
    assert_int_equal(handshake_on_hello(&h, hello, 0), 0);
    json_decref(hello);
    assert_int_equal(h.state, HANDSHAKE_WAIT_WELCOME);
    welcome = parse("{\"type\":\"welcome\"}");
    assert_int_equal(handshake_on_welcome(&h, NULL, welcome, 0), 0);
    json_decref(welcome);
    assert_int_equal(h.state, HANDSHAKE_DONE);

    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        handshake_init(&h, 1, 1);
        assert_int_equal(handshake_hello(&h, &ours), 0);
        json_decref(ours);
        assert_int_equal(handshake_auth_early(&h, &auth), 0);
        json_decref(auth);
        hello = server_hello(others[i]);
        assert_int_equal(handshake_on_hello(&h, hello, 0), FERRY_EHS_METHOD);
        json_decref(hello);
        assert_int_equal(h.state, HANDSHAKE_FAILED);
    }
}

/* The server wants the key and we have none (ferry loads it first when it
 * can; ferry-bench without -k cannot). */
static void test_hmac_without_key(void **state)
{
    struct handshake h;
    json_t *auth = NULL;

    (void)state;
    greet(&h, 0, 0, AUTH_METHOD);
    assert_int_equal(handshake_auth(&h, NULL, NULL, NULL, &auth), FERRY_EAUTH_MISMATCH);
    assert_null(auth);
    assert_int_equal(h.state, HANDSHAKE_FAILED);
}

/* Each wrong answer to our hello has its own verdict. */
static void test_bad_hellos(void **state)
{
    static const struct {
        const char *msg;
        int err;
    } cases[] = {
        { "{\"type\":\"error\",\"code\":\"auth\",\"message\":\"authentication failed\"}",
          FERRY_EAUTH },
        { "{\"type\":\"error\",\"code\":\"tls-required\",\"message\":\"use TLS\"}",
          FERRY_ETLS_REQUIRED },
        { "{\"type\":\"error\",\"code\":\"busy\",\"message\":\"too many\"}", FERRY_EREMOTE },
        { "{\"type\":\"error\"}", FERRY_EREMOTE },
        { "{\"type\":\"welcome\"}", FERRY_EHS_NOT_HELLO },
        { "{\"version\":1,\"auth\":\"none\"}", FERRY_EHS_NOT_HELLO },
        { "{\"type\":\"hello\",\"version\":2,\"auth\":\"none\"}", FERRY_EHS_VERSION },
        { "{\"type\":\"hello\",\"auth\":\"none\"}", FERRY_EHS_VERSION },
        { "{\"type\":\"hello\",\"version\":1}", FERRY_EHS_METHOD },
        { "{\"type\":\"hello\",\"version\":1,\"auth\":\"rot13\"}", FERRY_EHS_METHOD },
        { "{\"type\":\"hello\",\"version\":1,\"auth\":\"hmac-sha256\"}", FERRY_EHS_NONCE },
        { "{\"type\":\"hello\",\"version\":1,\"auth\":\"hmac-sha256\",\"nonce\":\"abcd\"}",
          FERRY_EHS_NONCE },
        { "{\"type\":\"hello\",\"version\":1,\"auth\":\"hmac-sha256\",\"nonce\":"
          "\"zz00000000000000000000000000000000000000000000000000000000000000\"}",
          FERRY_EHS_NONCE },
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct handshake h;
        json_t *ours = NULL, *m = parse(cases[i].msg);

        handshake_init(&h, 1, 1);
        assert_int_equal(handshake_hello(&h, &ours), 0);
        json_decref(ours);
        assert_int_equal(handshake_on_hello(&h, m, 0), cases[i].err);
        assert_int_equal(h.state, HANDSHAKE_FAILED);
        json_decref(m);
    }
}

/* No body before authentication, whatever the header says. */
static void test_body_refused(void **state)
{
    struct handshake h;
    json_t *ours = NULL, *hello = server_hello(AUTH_METHOD_NONE), *auth = NULL, *welcome;

    (void)state;
    handshake_init(&h, 0, 1);
    assert_int_equal(handshake_hello(&h, &ours), 0);
    json_decref(ours);
    assert_int_equal(handshake_on_hello(&h, hello, 1), FERRY_EHS_BODY);
    json_decref(hello);

    greet(&h, 0, 1, AUTH_METHOD_NONE);
    assert_int_equal(handshake_auth(&h, NULL, NULL, NULL, &auth), 0);
    welcome = parse("{\"type\":\"welcome\"}");
    assert_int_equal(handshake_on_welcome(&h, NULL, welcome, 5), FERRY_EHS_BODY);
    json_decref(welcome);
    json_decref(auth);
}

/* Each wrong answer to our auth has its own verdict. */
static void test_bad_welcomes(void **state)
{
    static const struct {
        const char *msg;
        int err;
    } cases[] = {
        { "{\"type\":\"error\",\"code\":\"auth\",\"message\":\"authentication failed\"}",
          FERRY_EAUTH },
        { "{\"type\":\"error\",\"code\":\"protocol\",\"message\":\"no\"}", FERRY_EREMOTE },
        { "{\"type\":\"hello\",\"version\":1}", FERRY_EHS_NOT_WELCOME },
        { "{\"proof\":\"00\"}", FERRY_EHS_NOT_WELCOME },
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct handshake h;
        json_t *auth = NULL, *m = parse(cases[i].msg);

        greet(&h, 0, 0, AUTH_METHOD);
        assert_int_equal(handshake_auth(&h, &test_key, NULL, NULL, &auth), 0);
        assert_int_equal(handshake_on_welcome(&h, &test_key, m, 0), cases[i].err);
        assert_int_equal(h.state, HANDSHAKE_FAILED);
        json_decref(m);
        json_decref(auth);
    }
}

/* Steps out of turn change nothing. */
static void test_out_of_turn(void **state)
{
    struct handshake h;
    json_t *m = parse("{\"type\":\"welcome\"}"), *out = NULL;

    (void)state;
    handshake_init(&h, 0, 1);
    assert_int_equal(handshake_on_hello(&h, m, 0), FERRY_ESTATE);
    assert_int_equal(handshake_on_welcome(&h, NULL, m, 0), FERRY_ESTATE);
    assert_int_equal(handshake_auth(&h, NULL, NULL, NULL, &out), FERRY_ESTATE);
    assert_int_equal(h.state, HANDSHAKE_SEND_HELLO);
    assert_int_equal(handshake_hello(&h, &out), 0);
    json_decref(out);
    assert_int_equal(handshake_hello(&h, &out), FERRY_ESTATE);
    assert_null(out);
    json_decref(m);
}

/* Every new code has a name and a message of its own. */
static void test_codes_described(void **state)
{
    static const int codes[] = {
        FERRY_EHS_NOT_HELLO, FERRY_EHS_VERSION, FERRY_EHS_BODY, FERRY_EHS_TLS_CLAIM,
        FERRY_EHS_METHOD, FERRY_EHS_NONCE, FERRY_EHS_NOT_WELCOME,
    };

    (void)state;
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        assert_string_not_equal(app_err_name(codes[i]), "UNKNOWN");
        assert_string_not_equal(app_strerror(codes[i]), ferry_strerror(-99999));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hello_bytes),
        cmocka_unit_test(test_hmac_plaintext),
        cmocka_unit_test(test_hmac_key_name),
        cmocka_unit_test(test_fresh_nonces),
        cmocka_unit_test(test_auth_rebuild),
        cmocka_unit_test(test_hmac_tls_binding),
        cmocka_unit_test(test_bad_server_proof),
        cmocka_unit_test(test_none),
        cmocka_unit_test(test_tls_method),
        cmocka_unit_test(test_early_auth),
        cmocka_unit_test(test_hmac_without_key),
        cmocka_unit_test(test_bad_hellos),
        cmocka_unit_test(test_body_refused),
        cmocka_unit_test(test_bad_welcomes),
        cmocka_unit_test(test_out_of_turn),
        cmocka_unit_test(test_codes_described),
    };

    return cmocka_run_group_tests(tests, setup, NULL);
}
