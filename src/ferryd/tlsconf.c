/*
 * tlsconf.c - ferryd's keys and TLS configuration: which key a name
 * stands for (the PSK identity of a TLS session, or the "key" of a
 * plaintext auth message), and the ferry_tls the main listeners use.
 *
 * No oracle: a name the file does not hold, or holds with a from= that
 * leaves this client out, is answered exactly as a wrong key is.  Such a
 * name gets a stand-in key (an HMAC of the name under a secret drawn at
 * start), so the TLS binder check, or the plaintext proof check, runs and
 * fails the same way: same alert or error frame, same work.
 *
 * A plaintext client that reaches a TLS listener is told so in its own
 * protocol (an error frame), so it can say "this server requires TLS"
 * instead of timing out; docs/PROTOCOL.md 2.0.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ferry/ferry.h"
#include "tlsconf.h"
#include "auth.h"
#include "proto.h"

static uint8_t standin_secret[32];
static int standin_ok;
static pthread_once_t standin_once = PTHREAD_ONCE_INIT;

static void standin_init(void)
{
    standin_ok = auth_nonce(standin_secret) == 0;
}

/* The stand-in for a name with no usable key: stable per name (a client
 * retrying sees nothing change), unguessable without the secret. */
static void standin_key(const char *name, struct ferry_key *key)
{
    unsigned int len = KEY_LEN;

    pthread_once(&standin_once, standin_init);
    if (!standin_ok || !HMAC(EVP_sha256(), standin_secret, sizeof standin_secret,
                             (const unsigned char *)name, strlen(name), key->bytes, &len))
        auth_nonce(key->bytes);   /* random: as unknown, just not stable */
}

void tlsconf_prepare(void)
{
    pthread_once(&standin_once, standin_init);
}

int tlsconf_find_key(const struct daemon_config *cfg, const char *name,
                     const struct sockaddr *peer, struct ferry_key *key, struct keyopts *opts)
{
    struct keyopts scratch;
    struct errbuf err;
    int r;

    if (!opts)
        opts = &scratch;
    memset(opts, 0, sizeof *opts);
    if (!keys_name_ok(name)) {
        r = 0;
    } else if (!cfg->keys_file) {
        r = cfg->have_key && strcmp(name, KEYS_DEFAULT_NAME) == 0;
        if (r)
            *key = cfg->key;
    } else {
        r = keys_find(cfg->keys_file, name, key, opts, &err);
        if (r < 0) {
            ferry_log_error("%s", errbuf_msg(&err, r));
            return r;
        }
        if (r == 1 && !keyopts_from_ok(opts, peer)) {
            ferry_log_info("key '%s' is not allowed from this address (from=): refused as "
                           "a wrong key", name);
            key_wipe(key);
            r = 0;
        }
    }
    if (r == 0) {
        ferry_log_info("unknown key name '%.*s': a stand-in key answers for it, so the "
                       "client is refused as with a wrong key", KEYS_NAME_MAX, name);
        memset(opts, 0, sizeof *opts);
        standin_key(name, key);
    }
    return r;
}

static int psk_lookup(const char *identity, const struct sockaddr *peer,
                      uint8_t out[FERRY_TLS_PSK_MAX], void *arg)
{
    struct ferry_key key;
    int r = tlsconf_find_key(arg, identity, peer, &key, NULL);

    if (r < 0)
        return r;
    /* Unknown or not from here: the stand-in, whose binder cannot match,
     * fails the handshake just as a wrong key does. */
    memcpy(out, key.bytes, KEY_LEN);
    key_wipe(&key);
    return KEY_LEN;
}

/* The certificate's private key as the shared key is held: others may not
 * read it (ferryd refused a key file so exposed, and took this one).  The
 * group may, as Debian's ssl-cert group reads /etc/ssl/private. */
static int cert_key_private(const char *path)
{
    struct stat st;

    if (stat(path, &st) < 0)
        return 0;   /* OpenSSL's load says what is wrong with it */
    if (st.st_mode & 007) {
        fprintf(stderr, "ferryd: --cert-key %s is accessible by others (mode %03o); run: "
                "chmod o= %s\n", path, (unsigned)(st.st_mode & 0777), path);
        return -1;
    }
    return 0;
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

    if (cert_key && cert_key_private(cert_key) < 0) {
        json_decref(refusal);
        return -1;
    }
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
