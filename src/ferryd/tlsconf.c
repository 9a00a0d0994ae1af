/*
 * tlsconf.c - ferryd's keys and TLS configuration: which key a name
 * stands for (the PSK identity of a TLS session, or the "key" of a
 * plaintext auth message), and the ferry_tls the main listeners use.
 *
 * A plaintext client that reaches a TLS listener is told so in its own
 * protocol (an error frame), so it can say "this server requires TLS"
 * instead of timing out; docs/PROTOCOL.md 2.0.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ferry/ferry.h"
#include "tlsconf.h"
#include "proto.h"

int tlsconf_find_key(const struct daemon_config *cfg, const char *name, struct ferry_key *key)
{
    struct errbuf err;
    int r;

    if (!keys_name_ok(name))
        return 0;
    if (!cfg->keys_file) {
        if (!cfg->have_key || strcmp(name, KEYS_DEFAULT_NAME) != 0)
            return 0;
        *key = cfg->key;
        return 1;
    }
    r = keys_find(cfg->keys_file, name, key, &err);
    if (r < 0)
        ferry_log_error("%s", errbuf_msg(&err, r));
    return r;
}

static int psk_lookup(const char *identity, uint8_t out[FERRY_TLS_PSK_MAX], void *arg)
{
    struct ferry_key key;
    int r = tlsconf_find_key(arg, identity, &key);

    if (r <= 0)
        return r;
    memcpy(out, key.bytes, KEY_LEN);
    key_wipe(&key);
    return KEY_LEN;
}

int tlsconf_setup(struct daemon_config *cfg, const char *cert, const char *cert_key,
                     const char *client_ca)
{
    struct ferry_tls_opts o = {
        .role = FERRY_TLS_SERVER,
        .cert_file = cert,
        .key_file = cert_key,
        .ca_file = client_ca,
    };
    json_t *refusal = json_pack("{s:s, s:s, s:s}", "type", MSG_ERROR, "code", ERR_TLS_REQUIRED,
                                "message", "this server requires TLS (it was not started with "
                                "--plaintext): connect without --plaintext");
    uint8_t *frame = NULL;
    size_t frame_len = 0;
    char err[512];
    int r;

    if (!refusal || ferry_frame_encode(refusal, 0, NULL, &frame, &frame_len) < 0) {
        json_decref(refusal);
        fprintf(stderr, "ferryd: out of memory\n");
        return -1;
    }
    json_decref(refusal);
    if (cfg->have_key || cfg->keys_file) {
        o.psk_lookup = psk_lookup;
        o.psk_lookup_arg = cfg;
    }
    o.plaintext_reply = frame;
    o.plaintext_reply_len = frame_len;
    r = ferry_tls_new(&o, err, sizeof err, &cfg->tls);
    free(frame);
    if (r < 0) {
        fprintf(stderr, "ferryd: %s\n", err);
        return -1;
    }
    return 0;
}
