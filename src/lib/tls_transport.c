/*
 * tls_transport.c - the TLS transport ops (transport.h) over OpenSSL's
 * libssl, on a configuration from tls_config.c.
 *
 * The socket under a TLS transport is always non-blocking: OpenSSL may need
 * to read in order to write (during the handshake) and may hold decrypted
 * bytes the descriptor no longer announces, so the ops report -EAGAIN with
 * t->want set and the generic layer in transport.c waits when the
 * transport is blocking.  Reads drain every whole record that has arrived
 * (up to the caller's buffer), so what poll() cannot see is only the rest
 * of a record the buffer was too small for: ferry_transport_pending().
 *
 * OpenSSL's socket BIO writes with write(2), so every call that may write
 * runs with SIGPIPE held off (transport_int.h).  Its error queue is per
 * thread and is cleared before each call, so SSL_get_error() is about that
 * call alone.  Receive-side zero copy (recvfile) is not offered: records
 * are decrypted in user space.
 */
#include "ferry/tls.h"
#include "ferry/error.h"
#include "ferry/log.h"
#include "clock.h"
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
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/* ---- errors ------------------------------------------------------------------- */

/*
 * A client's record of what OpenSSL read from the socket before the
 * handshake ended.  A server's refusal in the clear can arrive between the
 * probe (probe_answer) and the read that follows the ClientHello; OpenSSL
 * then takes its first bytes as a record header and fails, and without
 * this copy the refusal would be lost with them.
 */
static long capture_answer(BIO *b, int oper, const char *argp, size_t len, int argi,
                           long argl, int ret, size_t *processed)
{
    struct tls_conn *tc = (struct tls_conn *)BIO_get_callback_arg(b);
    (void)len, (void)argi, (void)argl;

    if (oper == (BIO_CB_READ | BIO_CB_RETURN) && ret > 0 && processed && tc &&
        !tc->handshake_done && tc->seen_len < sizeof tc->plain) {
        size_t n = *processed, room = sizeof tc->plain - tc->seen_len;

        if (n > room)
            n = room;
        memcpy(tc->plain + tc->seen_len, argp, n);
        tc->seen_len += n;
    }
    return ret;
}

/* The answer was not TLS: what OpenSSL took of it, then what is left on
 * the socket (best effort, never blocking), for
 * ferry_transport_plain_answer. */
static void keep_plain_answer(struct ferry_transport *t)
{
    struct tls_conn *tc = t->tls;
    ssize_t n;

    if (tc->plain_len > 0)
        return;
    tc->plain_len = tc->seen_len;
    while (tc->plain_len < sizeof tc->plain &&
           (n = recv(t->fd, tc->plain + tc->plain_len, sizeof tc->plain - tc->plain_len,
                     MSG_DONTWAIT)) > 0)
        tc->plain_len += (size_t)n;
}

/* Record why the handshake or a record failed, in words a user can act
 * on, and return the code for it. */
static int tls_fail(struct ferry_transport *t, int ssl_error, int ret)
{
    struct tls_conn *tc = t->tls;
    unsigned long e = ERR_peek_last_error();
    int saved = errno;

    if (ssl_error == SSL_ERROR_SYSCALL && e == 0) {
        ERR_clear_error();
        if (ret == 0 || saved == 0) {
            /* After the handshake only close_notify ends the stream. */
            snprintf(tc->error, sizeof tc->error, "%s", tc->handshake_done
                     ? "the peer closed the connection without ending TLS (truncated)"
                     : "the peer closed the connection during the TLS handshake");
            return tc->handshake_done ? FERRY_ETRUNCATED : FERRY_EEOF;
        }
        snprintf(tc->error, sizeof tc->error, "%s", strerror(saved));
        return -saved;
    }
    if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
        long v = SSL_get_verify_result(tc->ssl);
        snprintf(tc->error, sizeof tc->error, "certificate verify failed: %s",
                 X509_verify_cert_error_string(v));
    } else if (tc->cfg->role == FERRY_TLS_CLIENT && !tc->handshake_done &&
               ((tc->seen_len > 0 && (tc->plain[0] < 20 || tc->plain[0] > 23)) ||
                (ERR_GET_LIB(e) == ERR_LIB_SSL &&
                 (ERR_GET_REASON(e) == SSL_R_WRONG_VERSION_NUMBER ||
                  ERR_GET_REASON(e) == SSL_R_PACKET_LENGTH_TOO_LONG)))) {
        /* What came back is not a TLS record at all. */
        snprintf(tc->error, sizeof tc->error, "the server did not answer with TLS");
        ERR_clear_error();
        keep_plain_answer(t);
        return FERRY_ENOTTLS;
    } else if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
               ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        snprintf(tc->error, sizeof tc->error, "the peer closed the connection without "
                 "ending TLS (truncated)");
        ERR_clear_error();
        return tc->handshake_done ? FERRY_ETRUNCATED : FERRY_EEOF;
    } else {
        const char *r = e ? ERR_reason_error_string(e) : NULL;
        snprintf(tc->error, sizeof tc->error, "%s", r ? r : "TLS failure");
    }
    ERR_clear_error();
    return FERRY_ETLS;
}

const char *ferry_transport_error(const struct ferry_transport *t)
{
    return t->tls ? t->tls->error : "";
}

const uint8_t *ferry_transport_plain_answer(const struct ferry_transport *t, size_t *len)
{
    *len = t->tls ? t->tls->plain_len : 0;
    return *len ? t->tls->plain : NULL;
}

/* ---- the transport ops -------------------------------------------------------- */

/* Where an SSL call that did not finish must wait: -EAGAIN with t->want,
 * or the failure. */
static int tls_again(struct ferry_transport *t, int ssl_error, int ret)
{
    switch (ssl_error) {
    case SSL_ERROR_WANT_READ:
        t->want = POLLIN;
        return -EAGAIN;
    case SSL_ERROR_WANT_WRITE:
        t->want = POLLOUT;
        return -EAGAIN;
    default:
        return tls_fail(t, ssl_error, ret);
    }
}

/* Best effort, never blocking: the reply, then what the peer already sent
 * is read away so that closing does not answer it with a reset (which
 * could destroy the reply in flight), then our side is shut. */
static void answer_plaintext(struct ferry_transport *t)
{
    const struct ferry_tls *cfg = t->tls->cfg;
    uint8_t sink[4096];

    if (cfg->plaintext_reply_len == 0)
        return;
    if (send(t->fd, cfg->plaintext_reply, cfg->plaintext_reply_len,
             MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        return;
    for (int i = 0; i < 16 && recv(t->fd, sink, sizeof sink, MSG_DONTWAIT) > 0; i++)
        ;
    (void)shutdown(t->fd, SHUT_WR);
}

/* A server's first byte is a handshake record (22) if the peer speaks TLS
 * at all; anything else is answered by the caller, not by an alert. */
static int probe_first_byte(struct ferry_transport *t)
{
    struct tls_conn *tc = t->tls;
    unsigned char b;
    ssize_t n = recv(t->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);

    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            t->want = POLLIN;
            return -EAGAIN;
        }
        return -errno;
    }
    if (n == 0) {
        snprintf(tc->error, sizeof tc->error, "the peer closed the connection before TLS began");
        return FERRY_EEOF;
    }
    if (b != 22) {
        snprintf(tc->error, sizeof tc->error, "the client did not begin with a TLS handshake "
                 "(first byte 0x%02x)", b);
        answer_plaintext(t);
        return FERRY_ENOTTLS;
    }
    tc->probed = 1;
    return 0;
}

/* A client's look at the socket before its ClientHello: a refusal sent at
 * accept (ferryd's "closing" at a connection limit) may be there already,
 * and is kept for the caller (ferry_transport_plain_answer) without a
 * ClientHello written into a closed connection.  What arrives later is
 * read by OpenSSL, and capture_answer keeps it. */
static int probe_answer(struct ferry_transport *t)
{
    struct tls_conn *tc = t->tls;
    ssize_t n = recv(t->fd, tc->plain, sizeof tc->plain, MSG_PEEK | MSG_DONTWAIT);

    tc->probed = 1;
    if (n <= 0 || (tc->plain[0] >= 20 && tc->plain[0] <= 23))
        return 0;   /* nothing yet, or TLS, or OpenSSL words the error */
    tc->plain_len = (size_t)n;
    snprintf(tc->error, sizeof tc->error, "the server did not answer with TLS");
    return FERRY_ENOTTLS;
}

static void note_peer(struct tls_conn *tc)
{
    X509 *cert = SSL_get1_peer_certificate(tc->ssl);

    if (cert && SSL_get_verify_result(tc->ssl) == X509_V_OK)
        X509_NAME_oneline(X509_get_subject_name(cert), tc->peer_subject,
                          (int)sizeof tc->peer_subject);
    X509_free(cert);
}

static int tls_handshake(struct ferry_transport *t)
{
    struct tls_conn *tc = t->tls;
    struct sigpipe_guard g;
    int r, e, saved;

    if (tc->handshake_done)
        return 0;
    if (tc->cfg->role == FERRY_TLS_SERVER && !tc->probed) {
        r = probe_first_byte(t);
        if (r < 0)
            return r;
    } else if (tc->cfg->role == FERRY_TLS_CLIENT && !tc->probed) {
        r = probe_answer(t);
        if (r < 0)
            return r;
    }
    ERR_clear_error();
    errno = 0;
    ferry__sigpipe_hold(&g);
    r = SSL_do_handshake(tc->ssl);
    saved = errno;
    ferry__sigpipe_release(&g, saved);
    if (r == 1) {
        tc->handshake_done = 1;
#ifdef SSL_OP_ENABLE_KTLS
        tc->ktls_send = BIO_get_ktls_send(SSL_get_wbio(tc->ssl)) > 0;
#endif
        note_peer(tc);
        return 0;
    }
    e = SSL_get_error(tc->ssl, r);
    errno = saved;
    r = tls_again(t, e, r);
    if (r == FERRY_ETLS && tc->cfg->role == FERRY_TLS_SERVER && tc->identity_known &&
        strstr(tc->error, "binder")) {
        /* The PSK binder proves the key: it is the wrong one. */
        size_t n = strlen(tc->error);
        /* A lookup may answer an unknown name with a stand-in key (ferryd
         * does, so the two look alike): it logs which it was. */
        snprintf(tc->error + n, sizeof tc->error - n, " (a wrong key for the name '%s', "
                 "or no such name)",
                 ferry_log_escape((char[128]){ 0 }, 128, tc->identity, strlen(tc->identity)));
    } else if (r == FERRY_ETLS && tc->cfg->role == FERRY_TLS_SERVER && tc->identity[0] &&
               !tc->identity_known) {
        size_t n = strlen(tc->error);
        snprintf(tc->error + n, sizeof tc->error - n, tc->lookup_failed
                 ? " (the key named '%s' could not be looked up)" : " (unknown key name '%s')",
                 ferry_log_escape((char[128]){ 0 }, 128, tc->identity, strlen(tc->identity)));
    }
    return r;
}

static ssize_t tls_read(struct ferry_transport *t, void *buf, size_t len, int dontwait)
{
    struct tls_conn *tc = t->tls;
    struct sigpipe_guard g;
    size_t got = 0;
    int r, e = SSL_ERROR_NONE, saved = 0;
    (void)dontwait;

    if (tc->deferred_error)
        return tc->deferred_error;
    if (!tc->handshake_done && (r = tls_handshake(t)) < 0)
        return r;
    ferry__sigpipe_hold(&g);
    while (got < len) {
        size_t n = 0;

        ERR_clear_error();
        errno = 0;
        if (SSL_read_ex(tc->ssl, (uint8_t *)buf + got, len - got, &n) == 1) {
            got += n;
            tc->read_starved = 0;
            continue;
        }
        saved = errno;
        e = SSL_get_error(tc->ssl, 0);
        if (e == SSL_ERROR_WANT_READ)
            tc->read_starved = 1;
        break;
    }
    ferry__sigpipe_release(&g, saved);
    if (got == 0 && e == SSL_ERROR_ZERO_RETURN)
        return 0;   /* close_notify: a clean end of stream */
    if (got == 0) {
        errno = saved;
        return tls_again(t, e, 0);
    }
    /* What arrived is handed over first.  The end of the stream is still
     * there for the next call; a failure is not (OpenSSL reports it once),
     * so it is kept, with its reason, for the next call. */
    if (e != SSL_ERROR_NONE && e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE &&
        e != SSL_ERROR_ZERO_RETURN) {
        errno = saved;
        tc->deferred_error = tls_fail(t, e, 0);
    }
    ERR_clear_error();
    return (ssize_t)got;
}

/* One SSL_write_ex: bytes written, or -EAGAIN / an error.  The caller
 * holds SIGPIPE off (once for a whole run of records: it costs three
 * system calls). */
static ssize_t write_once(struct ferry_transport *t, const void *p, size_t n, int *saved)
{
    struct tls_conn *tc = t->tls;
    size_t done = 0;
    int e;

    ERR_clear_error();
    errno = 0;
    if (SSL_write_ex(tc->ssl, p, n, &done) == 1)
        return (ssize_t)done;
    *saved = errno;
    e = SSL_get_error(tc->ssl, 0);
    return tls_again(t, e, 0);
}

/*
 * OpenSSL's socket BIO writes each record (16 KiB at most) with a write(2)
 * of its own, which TCP_NODELAY sends as a segment of its own: for a write
 * of several records the socket is corked meanwhile, so they leave in full
 * segments (on loopback, fewer passes through the stack and wakeups of
 * the reader).  Uncorked before returning, whatever happened: the kernel
 * would otherwise hold the tail back for up to 200 ms.  A socket that
 * refuses (not TCP) is not asked again.
 */
static int tcp_cork(struct ferry_transport *t, int on)
{
    struct tls_conn *tc = t->tls;

    if (on && (!tc->cork_ok || tc->ktls_send))
        return 0;
    if (setsockopt(t->fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on) < 0) {
        tc->cork_ok = 0;
        return 0;
    }
    return on;
}

/*
 * Partial-write mode returns after each record, so this loops until the
 * socket is full.  A retry after -EAGAIN must offer the same bytes again
 * (OpenSSL keeps the record it sealed): callers retry from the first byte
 * not reported written, which is exactly that, and the gather buffer is
 * rebuilt from the same entries.
 */
static ssize_t tls_writev(struct ferry_transport *t, const struct iovec *iov, int iovcnt,
                          int dontwait)
{
    struct tls_conn *tc = t->tls;
    struct sigpipe_guard g;
    size_t total = 0;
    int i = 0, r, saved = 0;
    size_t skip = 0;   /* bytes of iov[i] already written */
    (void)dontwait;

    if (!tc->handshake_done && (r = tls_handshake(t)) < 0)
        return r;
    size_t want = 0;
    for (int k = 0; k < iovcnt; k++)
        want += iov[k].iov_len;
    int corked = want > TLS_RECORD_MAX && tcp_cork(t, 1);
    ferry__sigpipe_hold(&g);
    while (i < iovcnt) {
        const uint8_t *p = (const uint8_t *)iov[i].iov_base + skip;
        size_t n = iov[i].iov_len - skip;
        ssize_t w;

        if (n == 0) {
            i++;
            skip = 0;
            continue;
        }
        if (n < TLS_RECORD_MAX && i + 1 < iovcnt) {
            /* Gather this and the following entries into one record. */
            size_t fill = 0, s = skip;
            for (int k = i; k < iovcnt && fill < TLS_RECORD_MAX; k++, s = 0) {
                size_t take = iov[k].iov_len - s;
                if (take > TLS_RECORD_MAX - fill)
                    take = TLS_RECORD_MAX - fill;
                memcpy(tc->gather + fill, (const uint8_t *)iov[k].iov_base + s, take);
                fill += take;
            }
            p = tc->gather;
            n = fill;
        }
        w = write_once(t, p, n, &saved);
        if (w < 0) {
            if (corked)
                tcp_cork(t, 0);
            ferry__sigpipe_release(&g, saved);
            return total > 0 ? (ssize_t)total : w;
        }
        total += (size_t)w;
        /* Advance through the entries by what was written. */
        for (size_t left = (size_t)w; left > 0 && i < iovcnt;) {
            size_t room = iov[i].iov_len - skip;
            if (left < room) {
                skip += left;
                left = 0;
            } else {
                left -= room;
                i++;
                skip = 0;
            }
        }
    }
    if (corked)
        tcp_cork(t, 0);
    ferry__sigpipe_release(&g, 0);
    return (ssize_t)total;
}

#ifdef SSL_OP_ENABLE_KTLS
/* Kernel TLS seals the records, so file pages go to the socket without a
 * copy through here, as for a plain socket. */
static ssize_t tls_sendfile(struct ferry_transport *t, int in_fd, off_t *off, size_t len)
{
    struct tls_conn *tc = t->tls;
    struct sigpipe_guard g;
    ossl_ssize_t n;
    int e, saved;

    /* Without kernel TLS the generic layer reads and writes instead. */
    if (!tc->ktls_send)
        return FERRY_EUNSUPPORTED;
    ERR_clear_error();
    errno = 0;
    ferry__sigpipe_hold(&g);
    n = SSL_sendfile(tc->ssl, in_fd, *off, len, 0);
    saved = errno;
    ferry__sigpipe_release(&g, saved);
    if (n > 0) {
        *off += n;
        return n;
    }
    e = SSL_get_error(tc->ssl, (int)n);
    errno = saved;
    return tls_again(t, e, (int)n);
}
#endif

static int tls_pending(const struct ferry_transport *t)
{
    /* Only a cache of what OpenSSL knows changes here. */
    struct tls_conn *tc = ((struct ferry_transport *)t)->tls;
    struct sigpipe_guard g;
    unsigned char b;
    size_t n = 0;
    int ok;

    if (!tc->handshake_done || tc->deferred_error)
        return tc->deferred_error != 0;
    if (SSL_pending(tc->ssl) > 0)
        return 1;   /* decrypted bytes */
    if (!SSL_has_pending(tc->ssl) || tc->read_starved)
        return 0;
    /* Bytes read ahead: a whole record (a read makes progress) or only part
     * of one (it would not, and poll() announces the rest).  Peeking
     * decrypts a whole record without consuming it. */
    ERR_clear_error();
    ferry__sigpipe_hold(&g);
    ok = SSL_peek_ex(tc->ssl, &b, 1, &n);
    ferry__sigpipe_release(&g, errno);
    if (ok == 1)
        return 1;
    switch (SSL_get_error(tc->ssl, 0)) {
    case SSL_ERROR_WANT_READ:
        tc->read_starved = 1;
        ERR_clear_error();
        return 0;
    case SSL_ERROR_WANT_WRITE:
        /* It must send first (a KeyUpdate answer on a full socket): a
         * read now would not progress either. */
        ((struct ferry_transport *)t)->want = POLLOUT;
        ERR_clear_error();
        return 0;
    default:
        break;
    }
    /* The end of the stream or a failure: a read reports it now. */
    ERR_clear_error();
    return 1;
}

/* Send close_notify.  A blocking transport waits (within its timeout, or
 * `bound_ms`) for room to send it; a non-blocking one returns -EAGAIN with
 * t->want set when the socket is full. */
static int send_close_notify(struct ferry_transport *t, int bound_ms)
{
    struct tls_conn *tc = t->tls;
    int limit = t->timeout_ms > 0 && t->timeout_ms < bound_ms ? t->timeout_ms : bound_ms;
    int64_t deadline = (int64_t)ferry__now_ms() + limit;
    struct sigpipe_guard g;

    if (!tc->handshake_done)
        return 0;   /* nothing to end: TLS never began */
    for (;;) {
        int r, e, saved;

        ERR_clear_error();
        errno = 0;
        ferry__sigpipe_hold(&g);
        r = SSL_shutdown(tc->ssl);
        saved = errno;
        ferry__sigpipe_release(&g, saved);
        if (r >= 0) {
            ERR_clear_error();
            return 0;   /* sent (1: the peer's came too) */
        }
        e = SSL_get_error(tc->ssl, r);
        ERR_clear_error();
        if (e == SSL_ERROR_WANT_WRITE) {
            t->want = POLLOUT;
            if (t->nonblocking)
                return -EAGAIN;
            if (ferry__transport_wait(t, POLLOUT, deadline) < 0)
                return -ETIMEDOUT;
            continue;
        }
        /* WANT_READ cannot happen before we wait for the peer's; anything
         * else means the connection is gone already. */
        return saved ? -saved : FERRY_ETLS;
    }
}

/* How long closing a blocking transport may wait to send close_notify
 * when it has no timeout of its own. */
#define TLS_CLOSE_WAIT_MS 5000

static int tls_shutdown_write(struct ferry_transport *t)
{
    /* close_notify tells the peer the stream ended here, not that it was
     * cut; the TCP half-close follows it. */
    int r = send_close_notify(t, TLS_CLOSE_WAIT_MS);

    if (r == -EAGAIN)
        return r;   /* non-blocking: call again once writable */
    return shutdown(t->fd, SHUT_WR) < 0 ? -errno : 0;
}

static void tls_close(struct ferry_transport *t)
{
    struct tls_conn *tc = t->tls;

    /* Best effort: a non-blocking transport that cannot send close_notify
     * now gives up (its owner lingered with shutdown_write if it cared). */
    if (tc->handshake_done && !(SSL_get_shutdown(tc->ssl) & SSL_SENT_SHUTDOWN))
        (void)send_close_notify(t, TLS_CLOSE_WAIT_MS);
    SSL_free(tc->ssl);
    OPENSSL_cleanse(tc->gather, sizeof tc->gather);
    free(tc);
    t->tls = NULL;
    close(t->fd);
}

static const struct transport_ops tls_ops = {
    .read = tls_read,
    .writev = tls_writev,
    .shutdown_write = tls_shutdown_write,
    .close = tls_close,
#ifdef SSL_OP_ENABLE_KTLS
    .sendfile = tls_sendfile,
#endif
    .handshake = tls_handshake,
    .pending = tls_pending,
};

/* Verify the server as `name`: a host name (SNI and the certificate's
 * DNS names) or an address literal (its IP addresses). */
static int set_server_name(SSL *ssl, const char *name)
{
    unsigned char addr[16];

    if (inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1)
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1 ? 0 : -1;
    if (SSL_set_tlsext_host_name(ssl, name) != 1 || SSL_set1_host(ssl, name) != 1)
        return -1;
    return 0;
}

int ferry_transport_new_tls(int fd, struct ferry_tls *cfg, const char *server_name,
                            struct ferry_transport **out)
{
    struct ferry_transport *t = calloc(1, sizeof *t);
    struct tls_conn *tc = calloc(1, sizeof *tc);
    int flags = fcntl(fd, F_GETFL);
    int rc = -ENOMEM;

    *out = NULL;
    if (!t || !tc)
        goto fail;
    if (flags < 0) {
        rc = -errno;
        goto fail;
    }
    tc->ssl = SSL_new(cfg->ctx);
    if (!tc->ssl || SSL_set_fd(tc->ssl, fd) != 1 || !SSL_set_ex_data(tc->ssl, ferry__tls_ssl_index, t))
        goto fail_ssl;
    if (cfg->role == FERRY_TLS_SERVER) {
        SSL_set_accept_state(tc->ssl);
    } else {
        SSL_set_connect_state(tc->ssl);
        /* Without a name a certificate proves only that the CA signed it,
         * for anyone: refuse rather than accept any of them. */
        if (cfg->use_certs && !server_name) {
            rc = -EINVAL;
            goto fail;
        }
        if (cfg->use_certs && set_server_name(tc->ssl, server_name) < 0)
            goto fail_ssl;
        BIO_set_callback_arg(SSL_get_rbio(tc->ssl), (char *)tc);
        BIO_set_callback_ex(SSL_get_rbio(tc->ssl), capture_answer);
    }
    if (!(flags & O_NONBLOCK) && fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        rc = -errno;
        goto fail;
    }
    tc->cfg = cfg;
    tc->cork_ok = 1;
    t->ops = &tls_ops;
    t->fd = fd;
    t->self_polling = 1;
    t->nonblocking = (flags & O_NONBLOCK) != 0;
    t->tls = tc;
    *out = t;
    return 0;
fail_ssl:
    rc = FERRY_ETLS;
    ERR_clear_error();
fail:
    if (tc)
        SSL_free(tc->ssl);
    free(tc);
    free(t);
    return rc;
}

int ferry_transport_tls_info(const struct ferry_transport *t, struct ferry_tls_info *info)
{
    const struct tls_conn *tc = t->tls;
    const char *group = NULL;
    int nid;

    if (!tc)
        return FERRY_EUNSUPPORTED;
    if (!tc->handshake_done)
        return FERRY_ESTATE;
    memset(info, 0, sizeof *info);
    info->version = SSL_get_version(tc->ssl);
    info->cipher = SSL_CIPHER_get_name(SSL_get_current_cipher(tc->ssl));
    nid = SSL_get_negotiated_group(tc->ssl);
    if (nid != NID_undef)
        group = OBJ_nid2sn(nid);
    info->group = group ? group : "";
    if (SSL_session_reused(tc->ssl) && tc->identity[0])
        info->psk_identity = tc->identity;
    info->peer_verified = tc->peer_subject[0] != '\0';
    snprintf(info->peer_subject, sizeof info->peer_subject, "%s", tc->peer_subject);
    info->ktls_send = tc->ktls_send;
    return 0;
}

int ferry_transport_tls_exporter(const struct ferry_transport *t, const char *label,
                                 uint8_t *out, size_t len)
{
    const struct tls_conn *tc = t->tls;

    if (!tc)
        return FERRY_EUNSUPPORTED;
    if (!tc->handshake_done)
        return FERRY_ESTATE;
    if (SSL_export_keying_material(tc->ssl, out, len, label, strlen(label), NULL, 0, 0) != 1) {
        ERR_clear_error();
        return FERRY_ETLS;
    }
    return 0;
}
