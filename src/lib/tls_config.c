/*
 * tls_config.c - TLS 1.3 configurations (tls.h) over OpenSSL's libssl:
 * the context, certificates, the external PSK on either side (the
 * callbacks OpenSSL runs during a handshake), and what the library and
 * the kernel offer (kernel TLS).  Connections over a configuration are
 * tls_transport.c's.
 */
#include "ferry/tls.h"
#include "ferry/error.h"
#include "tls_int.h"
#include "transport_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/* TLS_AES_128_GCM_SHA256: the suite an external PSK is bound to, as
 * openssl s_client -psk binds it (the PSK's hash must be SHA-256). */
static const unsigned char psk_suite_id[2] = { 0x13, 0x01 };

/* Index of the SSL ex_data slot that points back at the transport. */
int ferry__tls_ssl_index = -1;
static pthread_once_t index_once = PTHREAD_ONCE_INIT;

static void make_index(void)
{
    ferry__tls_ssl_index = SSL_get_ex_new_index(0, "ferry transport", NULL, NULL, NULL);
}

/* err = the formatted words, ": ", and OpenSSL's reason for the failure. */
__attribute__((format(printf, 3, 4)))
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    /* The first error is the cause; the last only says which layer gave
     * up ("PEM lib" for a file that is not PEM, "system lib" for one that
     * is missing). */
    unsigned long e = ERR_peek_error();
    const char *reason = !e ? NULL
                       : ERR_SYSTEM_ERROR(e) ? strerror(ERR_GET_REASON(e))
                                             : ERR_reason_error_string(e);
    int saved = errno;
    va_list ap;
    int n;

    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    n = vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < errlen)
        snprintf(err + n, errlen - (size_t)n, ": %s",
                 reason ? reason : saved ? strerror(saved) : "failed");
    ERR_clear_error();
}

/* ---- PSK callbacks ---------------------------------------------------------- */

static SSL_SESSION *psk_session(SSL *ssl, const uint8_t *key, size_t len)
{
    const SSL_CIPHER *suite = SSL_CIPHER_find(ssl, psk_suite_id);
    SSL_SESSION *sess = suite ? SSL_SESSION_new() : NULL;

    if (!sess)
        return NULL;
    if (!SSL_SESSION_set1_master_key(sess, key, len) || !SSL_SESSION_set_cipher(sess, suite) ||
        !SSL_SESSION_set_protocol_version(sess, TLS1_3_VERSION)) {
        SSL_SESSION_free(sess);
        return NULL;
    }
    return sess;
}

/* Printable ASCII without spaces: what a key name may be (and what is
 * safe to log). */
static int identity_ok(const unsigned char *id, size_t len)
{
    if (len == 0 || len > FERRY_TLS_IDENTITY_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (id[i] <= ' ' || id[i] > '~')
            return 0;
    return 1;
}

static int server_find_psk(SSL *ssl, const unsigned char *id, size_t id_len, SSL_SESSION **sess)
{
    struct ferry_transport *t = SSL_get_ex_data(ssl, ferry__tls_ssl_index);
    struct tls_conn *tc = t->tls;
    uint8_t key[FERRY_TLS_PSK_MAX];
    struct sockaddr_storage peer;
    socklen_t peer_len = sizeof peer;
    int len, have_peer;

    *sess = NULL;
    if (!identity_ok(id, id_len)) {
        snprintf(tc->identity, sizeof tc->identity, "(unprintable)");
        return 1;   /* no such key: the certificate, if any, decides */
    }
    memcpy(tc->identity, id, id_len);
    tc->identity[id_len] = '\0';
    /* The lookup may depend on where the client is (ferryd's from=). */
    have_peer = getpeername(t->fd, (struct sockaddr *)&peer, &peer_len) == 0;
    len = tc->cfg->psk_lookup(tc->identity, have_peer ? (struct sockaddr *)&peer : NULL, key,
                              tc->cfg->psk_lookup_arg);
    if (len < 0 || len > FERRY_TLS_PSK_MAX) {
        tc->lookup_failed = 1;
        OPENSSL_cleanse(key, sizeof key);
        return 0;   /* the lookup failed: abort rather than guess */
    }
    if (len > 0) {
        tc->identity_known = 1;
        *sess = psk_session(ssl, key, (size_t)len);
    }
    OPENSSL_cleanse(key, sizeof key);
    return len == 0 || *sess ? 1 : 0;
}

static int client_use_psk(SSL *ssl, const EVP_MD *md, const unsigned char **id, size_t *id_len,
                          SSL_SESSION **sess)
{
    struct ferry_transport *t = SSL_get_ex_data(ssl, ferry__tls_ssl_index);
    struct ferry_tls *cfg = t->tls->cfg;
    const SSL_CIPHER *suite = SSL_CIPHER_find(ssl, psk_suite_id);

    *sess = NULL;
    /* After a HelloRetryRequest the suite is fixed: a PSK for another hash
     * cannot be offered. */
    if (!suite || (md && md != SSL_CIPHER_get_handshake_digest(suite)))
        return 1;
    *sess = psk_session(ssl, cfg->psk, cfg->psk_len);
    if (!*sess)
        return 0;
    *id = (const unsigned char *)cfg->psk_identity;
    *id_len = strlen(cfg->psk_identity);
    snprintf(t->tls->identity, sizeof t->tls->identity, "%s", cfg->psk_identity);
    return 1;
}

/* ---- configurations ----------------------------------------------------------- */

int ferry_tls_new(const struct ferry_tls_opts *o, char *err, size_t errlen, struct ferry_tls **out)
{
    int server = o->role == FERRY_TLS_SERVER;
    struct ferry_tls *cfg = NULL;
    SSL_CTX *ctx = NULL;
    int rc = FERRY_ETLS;

    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    if (pthread_once(&index_once, make_index) != 0 || ferry__tls_ssl_index < 0) {
        set_err(err, errlen, "OpenSSL");
        return FERRY_ETLS;
    }
    if (server ? !o->psk_lookup && !o->cert_file : !o->psk && !o->ca_file) {
        snprintf(err, errlen, "TLS needs %s", server ? "a key or a certificate"
                                                    : "a key or a CA file");
        return -EINVAL;
    }
    if (!o->cert_file != !o->key_file) {
        snprintf(err, errlen, "a certificate needs its private key, and the reverse");
        return -EINVAL;
    }
    if (o->psk && (o->psk_len == 0 || o->psk_len > FERRY_TLS_PSK_MAX || !o->psk_identity ||
                   !identity_ok((const unsigned char *)o->psk_identity, strlen(o->psk_identity)))) {
        snprintf(err, errlen, "a PSK needs 1 to %d bytes and a printable identity without "
                 "spaces of at most %d", FERRY_TLS_PSK_MAX, FERRY_TLS_IDENTITY_MAX);
        return -EINVAL;
    }
    if (o->plaintext_reply_len > TLS_PLAINTEXT_REPLY_MAX) {
        snprintf(err, errlen, "the plaintext reply is over %d bytes", TLS_PLAINTEXT_REPLY_MAX);
        return -EINVAL;
    }
    cfg = calloc(1, sizeof *cfg);
    if (!cfg)
        return -ENOMEM;
    if (server && o->plaintext_reply) {
        memcpy(cfg->plaintext_reply, o->plaintext_reply, o->plaintext_reply_len);
        cfg->plaintext_reply_len = o->plaintext_reply_len;
    }
    ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!ctx) {
        set_err(err, errlen, "cannot create a TLS context");
        goto fail;
    }
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
        !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION)) {
        set_err(err, errlen, "TLS 1.3");
        goto fail;
    }
    /* SHA-256 suites first, and the server's order wins: an external PSK
     * is bound to SHA-256, and a SHA-384 suite chosen by preference would
     * quietly set the PSK aside.  AES-128-GCM is also the fastest suite
     * with AES-NI and one kernel TLS offers. */
    if (!SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:"
                                       "TLS_AES_256_GCM_SHA384")) {
        set_err(err, errlen, "TLS 1.3 cipher suites");
        goto fail;
    }
    if (server)
        SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* Security level 2 at least (2048-bit RSA, SHA-256 signatures, for
     * certificates), whether or not the program had openssl.cnf read:
     * Debian's sets 2, and ferry does not read it (dial.c). */
    if (SSL_CTX_get_security_level(ctx) < 2)
        SSL_CTX_set_security_level(ctx, 2);
    /* Without SSL_OP_ALLOW_NO_DHE_KEX a PSK is only ever used with an
     * (EC)DHE exchange (psk_dhe_ke): forward secrecy for PSK sessions. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET
#ifdef SSL_OP_ENABLE_KTLS
                             | SSL_OP_ENABLE_KTLS
#endif
    );
    /* A server may hold thousands of idle connections: their buffers
     * (about 80 KiB each) go back to the allocator between bursts.  A
     * client has one connection and keeps them. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                          (server ? SSL_MODE_RELEASE_BUFFERS : 0));
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_default_read_buffer_len(ctx, TLS_READ_BUFFER);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (server)
        SSL_CTX_set_num_tickets(ctx, 0);

    if (o->cert_file) {
        if (SSL_CTX_use_certificate_chain_file(ctx, o->cert_file) != 1) {
            set_err(err, errlen, "cannot use certificate %s", o->cert_file);
            goto fail;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, o->key_file, SSL_FILETYPE_PEM) != 1) {
            set_err(err, errlen, "cannot use private key %s", o->key_file);
            goto fail;
        }
        if (SSL_CTX_check_private_key(ctx) != 1) {
            set_err(err, errlen, "%s does not match the certificate", o->key_file);
            goto fail;
        }
    }
    if (o->ca_file) {
        if (SSL_CTX_load_verify_locations(ctx, o->ca_file, NULL) != 1) {
            set_err(err, errlen, "cannot load CA file %s", o->ca_file);
            goto fail;
        }
        SSL_CTX_set_verify(ctx, server ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                                       : SSL_VERIFY_PEER, NULL);
    } else if (!server) {
        /* PSK only: a server that answers with a certificate instead
         * cannot be checked, so it is refused. */
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    if (server && o->psk_lookup) {
        cfg->psk_lookup = o->psk_lookup;
        cfg->psk_lookup_arg = o->psk_lookup_arg;
        SSL_CTX_set_psk_find_session_callback(ctx, server_find_psk);
    }
    if (!server && o->psk) {
        memcpy(cfg->psk, o->psk, o->psk_len);
        cfg->psk_len = o->psk_len;
        snprintf(cfg->psk_identity, sizeof cfg->psk_identity, "%s", o->psk_identity);
        SSL_CTX_set_psk_use_session_callback(ctx, client_use_psk);
    }
    cfg->ctx = ctx;
    cfg->role = o->role;
    cfg->use_certs = !server && o->ca_file;
    *out = cfg;
    return 0;
fail:
    SSL_CTX_free(ctx);
    OPENSSL_cleanse(cfg, sizeof *cfg);
    free(cfg);
    return rc;
}

void ferry_tls_free(struct ferry_tls *cfg)
{
    if (!cfg)
        return;
    SSL_CTX_free(cfg->ctx);
    OPENSSL_cleanse(cfg, sizeof *cfg);
    free(cfg);
}

const char *ferry_tls_library(void)
{
    return OpenSSL_version(OPENSSL_VERSION);
}

int ferry_tls_ktls_available(void)
{
#ifdef SSL_OP_ENABLE_KTLS
    /* The kernel loads the module on first use only for privileged
     * processes; what is listed here can be attached now. */
    char ulps[256] = "";
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_available_ulp", "re");
    int yes = 0;

    if (!f)
        return 0;
    if (fgets(ulps, sizeof ulps, f)) {
        for (char *w = strtok(ulps, " \n"); w; w = strtok(NULL, " \n"))
            if (strcmp(w, "tls") == 0)
                yes = 1;
    }
    fclose(f);
    return yes;
#else
    return 0;
#endif
}
