/*
 * tls.h - TLS 1.3 for ferry connections, through OpenSSL's libssl.
 *
 * A ferry_tls is one configuration (an SSL_CTX underneath) shared by every
 * connection it secures, from any thread.  It authenticates with either
 *
 *   an external PSK (RFC 8446 4.2.11): a shared key and an identity naming
 *   it.  The key exchange is always psk_dhe_ke, so a key that leaks later
 *   does not decrypt sessions recorded before; or
 *
 *   certificates: the server's chain and key, checked by the client against
 *   a CA file with the host name verified; optionally a client certificate
 *   checked by the server against its own CA file.
 *
 * A server may offer both: a client that names a known PSK identity uses
 * the key, any other gets the certificate.  Only TLS 1.3 is spoken (no
 * renegotiation exists there), without session tickets or early data.
 *
 * Connections use it through ferry_transport_new_tls() (transport.h) or a
 * server listener (ferry_server_listen_tls() in server.h).
 */
#ifndef FERRY_TLS_H
#define FERRY_TLS_H

#include "ferry/common.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

FERRY_BEGIN_DECLS

struct ferry_tls;   /* opaque */

#define FERRY_TLS_PSK_MAX      64    /* bytes of key */
#define FERRY_TLS_IDENTITY_MAX 128   /* bytes of PSK identity */

enum ferry_tls_role { FERRY_TLS_CLIENT = 0, FERRY_TLS_SERVER = 1 };

/*
 * Server side of PSK: copy the key named `identity` (NUL-terminated,
 * printable ASCII, at most FERRY_TLS_IDENTITY_MAX bytes), for the client
 * at peer (its address, NULL when it cannot be had), into key and
 * return its length (1..FERRY_TLS_PSK_MAX); 0 when no key has that name;
 * negative on error (the handshake then fails).  Called during handshakes,
 * on whichever thread runs them, so it must be thread-safe.
 */
typedef int (*ferry_tls_psk_lookup_fn)(const char *identity, const struct sockaddr *peer,
                                       uint8_t key[FERRY_TLS_PSK_MAX], void *arg);

struct ferry_tls_opts {
    enum ferry_tls_role role;

    /* PSK.  Server: psk_lookup (NULL: no PSK).  Client: psk/psk_len and
     * psk_identity (psk NULL: no PSK); both are copied. */
    ferry_tls_psk_lookup_fn psk_lookup;
    void *psk_lookup_arg;
    const uint8_t *psk;
    size_t psk_len;
    const char *psk_identity;

    /* Certificates, PEM files.  cert_file/key_file: the server's chain and
     * key, or the client's own (optional).  ca_file: server: clients must
     * present a certificate it signed; client: the server must (with
     * the host name given to ferry_transport_new_tls verified). */
    const char *cert_file;
    const char *key_file;
    const char *ca_file;

    /* Server: what to send, in the clear, to a peer whose first byte is not
     * TLS (an error message in the application's plaintext protocol, so a
     * client that forgot to ask for TLS learns why), before closing.  The
     * bytes are copied; at most 1 KiB.  NULL: just close. */
    const void *plaintext_reply;
    size_t plaintext_reply_len;
};

/*
 * Build a configuration.  Returns 0 and *out, or a negative code with a
 * one-line reason in err ("cannot read certificate x.pem: no such file").
 * A server needs a PSK lookup or a certificate; a client needs a PSK or a
 * CA file.
 */
FERRY_EXPORT FERRY_NODISCARD int ferry_tls_new(const struct ferry_tls_opts *o, char *err, size_t errlen,
                                               struct ferry_tls **out);

/* Free a configuration no connection uses any more.  NULL allowed. */
FERRY_EXPORT void ferry_tls_free(struct ferry_tls *tls);

/* The OpenSSL in use, and whether it can hand record encryption to the
 * kernel (kernel TLS): 1 when both OpenSSL and the running kernel support
 * it (the `tls` module is loaded), 0 otherwise.  For --version and logs. */
FERRY_EXPORT const char *ferry_tls_library(void);
FERRY_EXPORT int ferry_tls_ktls_available(void);

/* What a finished handshake established (ferry_transport_tls_info). */
struct ferry_tls_info {
    const char *version;    /* "TLSv1.3" */
    const char *cipher;     /* "TLS_AES_128_GCM_SHA256" */
    const char *group;      /* the (EC)DHE group, "x25519"; "" if none */
    const char *psk_identity;   /* the PSK used, or NULL (certificates) */
    int peer_verified;      /* the peer presented a certificate that verified */
    char peer_subject[256]; /* its subject, when peer_verified */
    int ktls_send;          /* records are sealed by the kernel */
};

FERRY_END_DECLS

#endif
