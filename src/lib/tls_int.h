/*
 * tls_int.h - what tls_config.c (configurations, PSK callbacks) and
 * tls_transport.c (the TLS transport ops) share: a configuration, the
 * per-connection state, and the SSL ex_data slot through which OpenSSL's
 * callbacks find the transport.  tls_transport.c uses configurations;
 * tls_config.c calls nothing in it.
 */
#ifndef FERRY_TLS_INT_H
#define FERRY_TLS_INT_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "ferry/tls.h"
#include "ferry/transport.h"

/* Records are at most 16 KiB of plaintext: small iovec entries are
 * gathered into one record rather than sealed one by one. */
#define TLS_RECORD_MAX   16384
/* What OpenSSL may read from the socket at once (read-ahead). */
#define TLS_READ_BUFFER  (64 * 1024)
#define TLS_PLAINTEXT_REPLY_MAX 1024

struct ferry_tls {
    SSL_CTX *ctx;
    enum ferry_tls_role role;
    int use_certs;                       /* client: verify the server's certificate */
    ferry_tls_psk_lookup_fn psk_lookup;  /* server */
    void *psk_lookup_arg;
    uint8_t psk[FERRY_TLS_PSK_MAX];      /* client */
    size_t psk_len;
    char psk_identity[FERRY_TLS_IDENTITY_MAX + 1];
    uint8_t plaintext_reply[TLS_PLAINTEXT_REPLY_MAX];   /* server */
    size_t plaintext_reply_len;
};

struct tls_conn {
    SSL *ssl;
    struct ferry_tls *cfg;
    int handshake_done;
    int probed;              /* server: the first byte was checked for TLS;
                              * client: the socket, before the ClientHello */
    size_t plain_len;        /* client: a non-TLS answer's first bytes */
    size_t seen_len;         /* client: bytes OpenSSL read before the handshake ended */
    uint8_t plain[FERRY_TLS_PLAIN_ANSWER_MAX];   /* client: those bytes */
    int read_starved;        /* the last read stopped for want of socket bytes */
    int deferred_error;      /* a failure found after data a read returned first */
    int ktls_send;
    int cork_ok;             /* TCP_CORK may be tried (tls_writev) */
    char identity[FERRY_TLS_IDENTITY_MAX + 1];   /* the PSK identity offered / used */
    int identity_known;      /* server: the lookup found a key for it */
    int lookup_failed;       /* server: the lookup itself failed */
    char peer_subject[256];
    char error[200];
    uint8_t gather[TLS_RECORD_MAX];
};

/* The SSL ex_data index that points back at the transport; set by the
 * first ferry_tls_new, before any TLS transport can exist. */
extern int ferry__tls_ssl_index;

#endif
