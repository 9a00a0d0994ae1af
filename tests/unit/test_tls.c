/*
 * test_tls.c - the TLS 1.3 transport (tls.h, transport.h) and TLS
 * listeners (server.h), over socketpairs and loopback TCP:
 *
 *   PSK handshakes driven non-blocking (polling on ferry_transport_wants)
 *   and blocking (the client in a thread), and what tls_info reports;
 *   8 MiB each way through small socket buffers with mixed iovecs and
 *   100-byte reads (the ferry_transport_pending contract); wrong and
 *   unknown keys; a peer that does not speak TLS; certificates (host
 *   names, addresses, client certificates, a rogue CA), generated at start
 *   with the `openssl` command into a temporary directory; clean and
 *   truncated ends of stream; sendfile's fallback; servers under the event
 *   and thread models.
 *
 * Nothing sleeps: every wait is a poll or a blocking call with a
 * SAFETY_MS bound, and every loop is bounded.  Threads only record
 * results; the test thread asserts after joining them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/sockios.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "ferry/ferry.h"
#include "unit_util.h"

#define SAFETY_MS 10000

static const uint8_t psk_key[32] = {
    0x3c, 0x91, 0x0e, 0x5a, 0x77, 0x12, 0xd4, 0x8b, 0x29, 0xf0, 0x66, 0x41, 0xbe, 0x03, 0x9d, 0x58,
    0xa7, 0x1f, 0xc2, 0x64, 0x08, 0xe9, 0x35, 0x7b, 0xd0, 0x4e, 0x92, 0x16, 0xfb, 0x2a, 0x83, 0x5d,
};
static const uint8_t wrong_key[32] = {
    0x3c, 0x91, 0x0e, 0x5a, 0x77, 0x12, 0xd4, 0x8b, 0x29, 0xf0, 0x66, 0x41, 0xbe, 0x03, 0x9d, 0x58,
    0xa7, 0x1f, 0xc2, 0x64, 0x08, 0xe9, 0x35, 0x7b, 0xd0, 0x4e, 0x92, 0x16, 0xfb, 0x2a, 0x83, 0x5e,
};

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void fill_random(uint8_t *p, size_t len, uint64_t seed)
{
    uint64_t x = seed | 1;

    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (uint8_t)(x >> 24);
    }
}

/* ---- certificates, made once for the whole program ------------------------------ */

static char certdir[64];
static char ca_pem[128], server_pem[128], server_key[128], client_pem[128], client_key[128];
static char rogue_client_pem[128], rogue_client_key[128];

static int run_cmd(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int run_cmd(const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof cmd)
        return -1;
    if (system(cmd) != 0) {
        fprintf(stderr, "failed: %s\n", cmd);
        return -1;
    }
    return 0;
}

static const char openssl_cnf[] =
    "[req]\n"
    "distinguished_name = dn\n"
    "prompt = no\n"
    "[dn]\n"
    "CN = unused\n"
    "[v3_ca]\n"
    "basicConstraints = critical,CA:TRUE\n"
    "keyUsage = critical,keyCertSign,cRLSign\n"
    "subjectKeyIdentifier = hash\n"
    "[server]\n"
    "basicConstraints = CA:FALSE\n"
    "keyUsage = critical,digitalSignature\n"
    "extendedKeyUsage = serverAuth\n"
    "subjectAltName = DNS:localhost,IP:127.0.0.1\n"
    "[client]\n"
    "basicConstraints = CA:FALSE\n"
    "keyUsage = critical,digitalSignature\n"
    "extendedKeyUsage = clientAuth\n";

/* A P-256 key, and a certificate for it: self-signed CA (signer NULL) or
 * signed by signer with the extensions section ext. */
static int make_cert(const char *name, const char *subject, const char *signer, const char *ext,
                     int serial)
{
    const char *d = certdir;

    if (run_cmd("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 "
                "-out %s/%s.key >/dev/null 2>&1", d, name) < 0)
        return -1;
    if (!signer)
        return run_cmd("openssl req -new -x509 -config %s/openssl.cnf -extensions v3_ca "
                       "-key %s/%s.key -subj '%s' -days 2 -out %s/%s.pem >/dev/null 2>&1",
                       d, d, name, subject, d, name);
    if (run_cmd("openssl req -new -config %s/openssl.cnf -key %s/%s.key -subj '%s' "
                "-out %s/%s.csr >/dev/null 2>&1", d, d, name, subject, d, name) < 0)
        return -1;
    return run_cmd("openssl x509 -req -in %s/%s.csr -CA %s/%s.pem -CAkey %s/%s.key "
                   "-set_serial %d -days 2 -extfile %s/openssl.cnf -extensions %s "
                   "-out %s/%s.pem >/dev/null 2>&1",
                   d, name, d, signer, d, signer, serial, d, ext, d, name);
}

static int group_setup(void **state)
{
    char path[128];
    FILE *f;
    (void)state;

    snprintf(certdir, sizeof certdir, "/tmp/ferry-tls-XXXXXX");
    if (!mkdtemp(certdir))
        return -1;
    snprintf(path, sizeof path, "%s/openssl.cnf", certdir);
    f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(openssl_cnf, f);
    fclose(f);
    if (make_cert("ca", "/CN=ferry test CA", NULL, NULL, 0) < 0 ||
        make_cert("server", "/CN=localhost", "ca", "server", 2) < 0 ||
        make_cert("client", "/CN=ferry-client", "ca", "client", 3) < 0 ||
        make_cert("rogue", "/CN=rogue CA", NULL, NULL, 0) < 0 ||
        make_cert("rclient", "/CN=ferry-client", "rogue", "client", 4) < 0)
        return -1;
    snprintf(ca_pem, sizeof ca_pem, "%s/ca.pem", certdir);
    snprintf(server_pem, sizeof server_pem, "%s/server.pem", certdir);
    snprintf(server_key, sizeof server_key, "%s/server.key", certdir);
    snprintf(client_pem, sizeof client_pem, "%s/client.pem", certdir);
    snprintf(client_key, sizeof client_key, "%s/client.key", certdir);
    snprintf(rogue_client_pem, sizeof rogue_client_pem, "%s/rclient.pem", certdir);
    snprintf(rogue_client_key, sizeof rogue_client_key, "%s/rclient.key", certdir);
    ferry_log_set_level(FERRY_LOG_WARN);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (certdir[0] && strncmp(certdir, "/tmp/ferry-tls-", 15) == 0)
        run_cmd("rm -rf '%s'", certdir);
    return 0;
}

/* SIGPIPE keeps its default action, so a write that raised it would kill
 * the program rather than pass unnoticed (a server test sets it ignored
 * through ferry_server_new; this puts it back). */
static int setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_DFL);
    return 0;
}

/* ---- configurations ------------------------------------------------------------- */

static atomic_int lookups;

struct lookup {
    const uint8_t *key;   /* NULL: psk_key */
    int fail;             /* return an error */
};

static int psk_lookup(const char *identity, uint8_t key[FERRY_TLS_PSK_MAX], void *arg)
{
    const struct lookup *lk = arg;

    atomic_fetch_add(&lookups, 1);
    if (lk && lk->fail)
        return -1;
    if (strcmp(identity, "ferry") != 0)
        return 0;
    memcpy(key, lk && lk->key ? lk->key : psk_key, 32);
    return 32;
}

static struct ferry_tls *cfg_new(const struct ferry_tls_opts *o)
{
    struct ferry_tls *cfg = NULL;
    char err[256] = "";
    int r = ferry_tls_new(o, err, sizeof err, &cfg);

    if (r != 0)
        print_message("ferry_tls_new: %s (%s)\n", err, ferry_strerror(r));
    assert_int_equal(r, 0);
    assert_non_null(cfg);
    return cfg;
}

static struct ferry_tls *psk_server(struct lookup *lk)
{
    struct ferry_tls_opts o = { .role = FERRY_TLS_SERVER, .psk_lookup = psk_lookup,
                                .psk_lookup_arg = lk };
    return cfg_new(&o);
}

static struct ferry_tls *psk_client(const uint8_t *key, const char *identity)
{
    struct ferry_tls_opts o = { .role = FERRY_TLS_CLIENT, .psk = key, .psk_len = 32,
                                .psk_identity = identity };
    return cfg_new(&o);
}

/* ---- pairs and handshakes -------------------------------------------------------- */

struct tpair {
    struct ferry_transport *c, *s;
};

/* A socketpair with a TLS client (verifying `name`) and server on it.
 * bufsize != 0: SO_SNDBUF and SO_RCVBUF on both ends. */
static void tpair_open(struct tpair *p, struct ferry_tls *ccfg, const char *name,
                       struct ferry_tls *scfg, int nonblocking, int bufsize)
{
    int sv[2];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC |
                                (nonblocking ? SOCK_NONBLOCK : 0), 0, sv), 0);
    for (int i = 0; bufsize && i < 2; i++) {
        assert_int_equal(setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &bufsize, sizeof bufsize), 0);
        assert_int_equal(setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &bufsize, sizeof bufsize), 0);
    }
    assert_int_equal(ferry_transport_new_tls(sv[0], ccfg, name, &p->c), 0);
    assert_int_equal(ferry_transport_new_tls(sv[1], scfg, NULL, &p->s), 0);
}

static void tpair_close(struct tpair *p)
{
    ferry_transport_free(p->c);
    ferry_transport_free(p->s);
    p->c = p->s = NULL;
}

/*
 * Both handshakes, non-blocking, in this thread: call each side until it
 * stops returning -EAGAIN, polling for what it wants when neither can go
 * on.  A side that fails stops talking (its write side is shut, as its
 * owner closing it would), so the other sees the alert and then the end.
 */
static void hs_drive(struct ferry_transport *c, struct ferry_transport *s, int *rc, int *rs)
{
    struct ferry_transport *t[2] = { c, s };
    int r[2] = { -EAGAIN, -EAGAIN };

    for (int round = 0; round < 200 && (r[0] == -EAGAIN || r[1] == -EAGAIN); round++) {
        struct pollfd pfd[2];
        int n = 0;

        for (int i = 0; i < 2; i++) {
            if (r[i] != -EAGAIN)
                continue;
            r[i] = ferry_transport_handshake(t[i]);
            if (r[i] < 0 && r[i] != -EAGAIN)
                shutdown(ferry_transport_fd(t[i]), SHUT_WR);
        }
        for (int i = 0; i < 2; i++) {
            if (r[i] != -EAGAIN)
                continue;
            short w = ferry_transport_wants(t[i]);
            assert_true(w == POLLIN || w == POLLOUT);
            pfd[n++] = (struct pollfd){ .fd = ferry_transport_fd(t[i]), .events = w };
        }
        if (n > 0 && poll(pfd, (nfds_t)n, SAFETY_MS) <= 0)
            fail_msg("handshake stalled (client %s, server %s)", ferry_err_name(r[0]),
                     ferry_err_name(r[1]));
    }
    assert_int_not_equal(r[0], -EAGAIN);
    assert_int_not_equal(r[1], -EAGAIN);
    *rc = r[0];
    *rs = r[1];
}

static void hs_ok(struct tpair *p)
{
    int rc, rs;

    hs_drive(p->c, p->s, &rc, &rs);
    if (rc != 0 || rs != 0)
        fail_msg("handshake: client %s '%s', server %s '%s'", ferry_err_name(rc),
                 ferry_transport_error(p->c), ferry_err_name(rs), ferry_transport_error(p->s));
}

/* One read on a non-blocking transport, waiting (bounded) while it says
 * -EAGAIN: the first other result. */
static ssize_t read_nb(struct ferry_transport *t, void *buf, size_t len)
{
    for (int i = 0; i < 1000; i++) {
        ssize_t n = ferry_transport_read(t, buf, len);
        struct pollfd pfd;

        if (n != -EAGAIN)
            return n;
        pfd = (struct pollfd){ .fd = ferry_transport_fd(t), .events = ferry_transport_wants(t) };
        if (poll(&pfd, 1, SAFETY_MS) <= 0)
            fail_msg("read stalled");
    }
    fail_msg("read: too many -EAGAIN");
    return -1;
}

/* Exactly len bytes from a non-blocking transport. */
static void read_exact_nb(struct ferry_transport *t, void *buf, size_t len)
{
    size_t got = 0;

    for (int i = 0; i < 100000 && got < len; i++) {
        ssize_t n = read_nb(t, (uint8_t *)buf + got, len - got);
        if (n <= 0)
            fail_msg("read_exact: %s after %zu of %zu ('%s')", n == 0 ? "EOF" : ferry_err_name((int)n),
                     got, len, ferry_transport_error(t));
        got += (size_t)n;
    }
    assert_int_equal(got, len);
}

static void write_all_nb(struct ferry_transport *t, const void *buf, size_t len)
{
    size_t sent = 0;

    for (int i = 0; i < 100000 && sent < len; i++) {
        struct iovec iov = { (uint8_t *)buf + sent, len - sent };
        ssize_t n = ferry_transport_writev(t, &iov, 1);
        if (n == -EAGAIN) {
            struct pollfd pfd = { .fd = ferry_transport_fd(t), .events = ferry_transport_wants(t) };
            if (poll(&pfd, 1, SAFETY_MS) <= 0)
                fail_msg("write stalled");
            continue;
        }
        if (n <= 0)
            fail_msg("write: %s ('%s')", ferry_err_name((int)n), ferry_transport_error(t));
        sent += (size_t)n;
    }
    assert_int_equal(sent, len);
}

static void check_psk_info(struct ferry_transport *t)
{
    struct ferry_tls_info info;

    assert_int_equal(ferry_transport_tls_info(t, &info), 0);
    assert_string_equal(info.version, "TLSv1.3");
    assert_string_equal(info.cipher, "TLS_AES_128_GCM_SHA256");
    assert_non_null(info.psk_identity);
    assert_string_equal(info.psk_identity, "ferry");
    /* psk_dhe_ke: an (EC)DHE exchange ran alongside the key. */
    assert_non_null(info.group);
    assert_true(info.group[0] != '\0');
    assert_int_equal(info.peer_verified, 0);
    assert_string_equal(info.peer_subject, "");
    assert_int_equal(info.ktls_send, 0);   /* never over a unix socket */
}

/* ---- 1. PSK handshakes -------------------------------------------------------------- */

static void test_psk_handshake_nonblocking(void **state)
{
    struct ferry_tls *scfg = psk_server(NULL), *ccfg = psk_client(psk_key, "ferry");
    struct ferry_tls_info info;
    struct tpair p;
    char buf[8];
    int sv[2];
    (void)state;

    /* Blocking descriptors, made non-blocking through the transport. */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(ferry_transport_new_tls(sv[0], ccfg, NULL, &p.c), 0);
    assert_int_equal(ferry_transport_new_tls(sv[1], scfg, NULL, &p.s), 0);
    assert_true(fcntl(sv[0], F_GETFL) & O_NONBLOCK);   /* always, underneath */
    assert_int_equal(ferry_transport_set_nonblocking(p.c, 1), 0);
    assert_int_equal(ferry_transport_set_nonblocking(p.s, 1), 0);

    assert_int_equal(ferry_transport_tls_info(p.s, &info), FERRY_ESTATE);
    assert_int_equal(ferry_transport_pending(p.s), 0);
    /* Nothing has arrived: the server waits for input. */
    assert_int_equal(ferry_transport_handshake(p.s), -EAGAIN);
    assert_int_equal(ferry_transport_wants(p.s), POLLIN);
    /* The client sent its ClientHello and waits for the answer. */
    assert_int_equal(ferry_transport_handshake(p.c), -EAGAIN);
    assert_int_equal(ferry_transport_wants(p.c), POLLIN);

    atomic_store(&lookups, 0);
    hs_ok(&p);
    assert_true(atomic_load(&lookups) >= 1);
    assert_int_equal(ferry_transport_handshake(p.c), 0);   /* done stays done */
    assert_int_equal(ferry_transport_handshake(p.s), 0);
    check_psk_info(p.c);
    check_psk_info(p.s);
    assert_string_equal(ferry_transport_error(p.c), "");

    /* Nothing to read yet: -EAGAIN, wanting input. */
    assert_int_equal(ferry_transport_read(p.s, buf, sizeof buf), -EAGAIN);
    assert_int_equal(ferry_transport_wants(p.s), POLLIN);
    write_all_nb(p.c, "ping", 4);
    read_exact_nb(p.s, buf, 4);
    assert_memory_equal(buf, "ping", 4);
    write_all_nb(p.s, "pong", 4);
    read_exact_nb(p.c, buf, 4);
    assert_memory_equal(buf, "pong", 4);

    tpair_close(&p);
    ferry_tls_free(ccfg);
    ferry_tls_free(scfg);
}

struct blocking_peer {
    struct ferry_transport *t;
    int hs, rd, wr;
    char got[8];
};

static void *blocking_client(void *arg)
{
    struct blocking_peer *bp = arg;

    bp->hs = ferry_transport_handshake(bp->t);
    if (bp->hs == 0) {
        /* Blocks (in the transport's own poll) until the server writes. */
        bp->rd = ferry_transport_read_full(bp->t, bp->got, 5);
        bp->wr = ferry_transport_write_full(bp->t, "world", 5);
    }
    return NULL;
}

static void test_psk_handshake_blocking(void **state)
{
    struct ferry_tls *scfg = psk_server(NULL), *ccfg = psk_client(psk_key, "ferry");
    struct blocking_peer bp = { .hs = 1, .rd = 1, .wr = 1 };
    struct tpair p;
    pthread_t th;
    char buf[8];
    (void)state;

    tpair_open(&p, ccfg, NULL, scfg, 0, 0);
    assert_true(fcntl(ferry_transport_fd(p.s), F_GETFL) & O_NONBLOCK);
    ferry_transport_set_timeout(p.c, SAFETY_MS);
    ferry_transport_set_timeout(p.s, SAFETY_MS);
    bp.t = p.c;
    assert_int_equal(pthread_create(&th, NULL, blocking_client, &bp), 0);
    int rs = ferry_transport_handshake(p.s);
    int ws = rs == 0 ? ferry_transport_write_full(p.s, "hello", 5) : rs;
    int rd = ws == 0 ? ferry_transport_read_full(p.s, buf, 5) : ws;
    if (rs != 0)
        shutdown(ferry_transport_fd(p.s), SHUT_RDWR);   /* let the client thread end */
    pthread_join(th, NULL);

    if (rs != 0 || bp.hs != 0)
        fail_msg("blocking handshake: client %s '%s', server %s '%s'", ferry_err_name(bp.hs),
                 ferry_transport_error(p.c), ferry_err_name(rs), ferry_transport_error(p.s));
    assert_int_equal(ws, 0);
    assert_int_equal(bp.rd, 0);
    assert_memory_equal(bp.got, "hello", 5);
    assert_int_equal(bp.wr, 0);
    assert_int_equal(rd, 0);
    assert_memory_equal(buf, "world", 5);
    check_psk_info(p.c);
    check_psk_info(p.s);
    tpair_close(&p);
    ferry_tls_free(ccfg);
    ferry_tls_free(scfg);
}

/* A plain transport: the TLS calls answer as documented. */
static void test_plain_transport_tls_calls(void **state)
{
    struct ferry_transport *t;
    struct ferry_tls_info info;
    int sv[2];
    (void)state;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(ferry_transport_new_fd(sv[0], &t), 0);
    assert_non_null(t);
    assert_int_equal(ferry_transport_handshake(t), 0);
    assert_int_equal(ferry_transport_tls_info(t, &info), FERRY_EUNSUPPORTED);
    assert_int_equal(ferry_transport_pending(t), 0);
    assert_string_equal(ferry_transport_error(t), "");
    ferry_transport_free(t);
    close(sv[1]);
    assert_non_null(strstr(ferry_tls_library(), "OpenSSL"));
    assert_true(ferry_tls_ktls_available() == 0 || ferry_tls_ktls_available() == 1);
}

static void test_config_errors(void **state)
{
    struct ferry_tls *cfg = (struct ferry_tls *)&cfg;
    char err[256];
    (void)state;

    /* A server with neither a key nor a certificate. */
    struct ferry_tls_opts o = { .role = FERRY_TLS_SERVER };
    assert_int_equal(ferry_tls_new(&o, err, sizeof err, &cfg), -EINVAL);
    assert_null(cfg);
    assert_true(err[0] != '\0');
    /* A client with neither a key nor a CA. */
    o = (struct ferry_tls_opts){ .role = FERRY_TLS_CLIENT };
    assert_int_equal(ferry_tls_new(&o, err, sizeof err, &cfg), -EINVAL);
    /* A certificate without its key. */
    o = (struct ferry_tls_opts){ .role = FERRY_TLS_SERVER, .cert_file = server_pem };
    assert_int_equal(ferry_tls_new(&o, err, sizeof err, &cfg), -EINVAL);
    /* A missing file is named in the reason. */
    o = (struct ferry_tls_opts){ .role = FERRY_TLS_SERVER, .cert_file = "/nonexistent/x.pem",
                                 .key_file = server_key };
    assert_int_equal(ferry_tls_new(&o, err, sizeof err, &cfg), FERRY_ETLS);
    assert_non_null(strstr(err, "/nonexistent/x.pem"));
    /* A key that does not match the certificate. */
    o = (struct ferry_tls_opts){ .role = FERRY_TLS_SERVER, .cert_file = server_pem,
                                 .key_file = client_key };
    assert_int_equal(ferry_tls_new(&o, err, sizeof err, &cfg), FERRY_ETLS);
    assert_null(cfg);
    /* PSK identities: printable, no spaces; keys 1..64 bytes. */
    o = (struct ferry_tls_opts){ .role = FERRY_TLS_CLIENT, .psk = psk_key, .psk_len = 32,
                                 .psk_identity = "two words" };
    assert_int_equal(ferry_tls_new(&o, err, sizeof err, &cfg), -EINVAL);
    o.psk_identity = "ferry";
    o.psk_len = FERRY_TLS_PSK_MAX + 1;
    assert_int_equal(ferry_tls_new(&o, err, sizeof err, &cfg), -EINVAL);
    o.psk_len = 0;
    assert_int_equal(ferry_tls_new(&o, err, sizeof err, &cfg), -EINVAL);
    /* The plaintext reply is bounded. */
    static const char big[1025];
    o = (struct ferry_tls_opts){ .role = FERRY_TLS_SERVER, .psk_lookup = psk_lookup,
                                 .plaintext_reply = big, .plaintext_reply_len = sizeof big };
    assert_int_equal(ferry_tls_new(&o, err, sizeof err, &cfg), -EINVAL);
    o.plaintext_reply_len = 1024;
    assert_int_equal(ferry_tls_new(&o, err, sizeof err, &cfg), 0);
    ferry_tls_free(cfg);
    ferry_tls_free(NULL);
}

/* ---- 2. data integrity --------------------------------------------------------------- */

/*
 * One end of a transfer: what it sends (as iovecs cut from `segs`, up to
 * max_iov at a time, or by sendfile from file_fd), what it must receive,
 * and how it reads: rbuf bytes at a time, then again without polling only
 * while ferry_transport_pending() says so (the event-loop discipline the
 * header prescribes).  A read that pending() announced must not come back
 * -EAGAIN.
 */
struct flow {
    struct ferry_transport *t;
    const uint8_t *out;
    size_t out_len, sent;
    const size_t *segs;   /* NULL: one entry of the rest */
    size_t nsegs, seg, seg_off;
    int max_iov;
    int file_fd;          /* >= 0: send by ferry_transport_sendfile */
    int shut_when_done, shut;
    const uint8_t *expect;
    size_t expect_len, recvd;
    size_t rbuf;
    int expect_eof, eof;
    short r_want, w_want;
    /* observations */
    long writes, eagain_writes, pending_seen, pending_reads, pending_eagain;
};

static void flow_advance(struct flow *f, size_t n)
{
    f->sent += n;
    while (f->segs && n > 0 && f->seg < f->nsegs) {
        size_t room = f->segs[f->seg] - f->seg_off;
        if (n < room) {
            f->seg_off += n;
            n = 0;
        } else {
            n -= room;
            f->seg++;
            f->seg_off = 0;
        }
    }
}

static void flow_write(struct flow *f)
{
    for (int k = 0; k < 100000 && f->sent < f->out_len; k++) {
        struct iovec iov[16];
        int cnt = 0;
        ssize_t n;

        if (f->file_fd >= 0) {
            uint64_t off = f->sent;
            n = ferry_transport_sendfile(f->t, f->file_fd, &off, f->out_len - f->sent);
            if (n > 0)
                assert_int_equal(off, f->sent + (size_t)n);
            else
                assert_int_equal(off, f->sent);
        } else {
            if (f->segs) {
                size_t pos = f->sent, off = f->seg_off;
                for (size_t s = f->seg; cnt < f->max_iov && s < f->nsegs; s++, off = 0) {
                    iov[cnt].iov_base = (void *)(f->out + pos);
                    iov[cnt].iov_len = f->segs[s] - off;
                    pos += iov[cnt++].iov_len;
                }
            } else {
                iov[cnt].iov_base = (void *)(f->out + f->sent);
                iov[cnt++].iov_len = f->out_len - f->sent;
            }
            n = ferry_transport_writev(f->t, iov, cnt);
        }
        f->writes++;
        if (n == -EAGAIN) {
            f->eagain_writes++;
            f->w_want = ferry_transport_wants(f->t);
            return;
        }
        if (n <= 0)
            fail_msg("write at %zu: %s ('%s')", f->sent, ferry_err_name((int)n),
                     ferry_transport_error(f->t));
        assert_true((size_t)n <= f->out_len - f->sent);
        flow_advance(f, (size_t)n);
    }
}

static void flow_read(struct flow *f)
{
    uint8_t buf[64 * 1024];

    assert_true(f->rbuf > 0 && f->rbuf <= sizeof buf);
    for (long k = 0; k < 10000000 && !f->eof; k++) {
        int pend = ferry_transport_pending(f->t);
        ssize_t n = ferry_transport_read(f->t, buf, f->rbuf);

        if (pend) {
            f->pending_reads++;
            if (n == -EAGAIN)
                f->pending_eagain++;
        }
        if (n == -EAGAIN) {
            f->r_want = ferry_transport_wants(f->t);
            return;
        }
        if (n == 0) {
            if (f->recvd != f->expect_len || !f->expect_eof)
                fail_msg("end of stream after %zu of %zu bytes", f->recvd, f->expect_len);
            f->eof = 1;
            return;
        }
        if (n < 0)
            fail_msg("read after %zu of %zu bytes: %s ('%s')", f->recvd, f->expect_len,
                     ferry_err_name((int)n), ferry_transport_error(f->t));
        if (f->recvd + (size_t)n > f->expect_len)
            fail_msg("%zu bytes too many", f->recvd + (size_t)n - f->expect_len);
        if (memcmp(buf, f->expect + f->recvd, (size_t)n) != 0)
            fail_msg("bytes differ within %zu..%zu", f->recvd, f->recvd + (size_t)n);
        f->recvd += (size_t)n;
        f->r_want = POLLIN;
        if (!ferry_transport_pending(f->t))
            return;   /* poll() will announce the rest */
        f->pending_seen++;
    }
}

static int flow_done(const struct flow *f)
{
    return f->sent == f->out_len && (!f->shut_when_done || f->shut) &&
           f->recvd == f->expect_len && (!f->expect_eof || f->eof);
}

static void flow_maybe_shut(struct flow *f)
{
    struct pollfd pfd = { .fd = ferry_transport_fd(f->t), .events = POLLOUT };

    /* close_notify needs room in the socket: wait until there is some. */
    if (f->sent < f->out_len || !f->shut_when_done || f->shut || poll(&pfd, 1, 0) != 1)
        return;
    assert_int_equal(ferry_transport_shutdown_write(f->t), 0);
    f->shut = 1;
}

static void pump(struct flow *fl, int nf)
{
    assert_true(nf <= 4);
    for (int i = 0; i < nf; i++)
        fl[i].r_want = POLLIN;
    for (long round = 0; round < 1000000; round++) {
        struct pollfd pfd[4];
        int done = 1;

        for (int i = 0; i < nf; i++) {
            flow_write(&fl[i]);
            flow_maybe_shut(&fl[i]);
            flow_read(&fl[i]);
        }
        for (int i = 0; i < nf; i++)
            done &= flow_done(&fl[i]);
        if (done)
            return;
        for (int i = 0; i < nf; i++) {
            struct flow *f = &fl[i];
            short ev = 0;

            if (f->sent < f->out_len)
                ev |= f->w_want;
            else if (f->shut_when_done && !f->shut)
                ev |= POLLOUT;
            if (f->recvd < f->expect_len || (f->expect_eof && !f->eof))
                ev |= f->r_want;
            pfd[i] = (struct pollfd){ .fd = ev ? ferry_transport_fd(f->t) : -1, .events = ev };
        }
        if (poll(pfd, (nfds_t)nf, SAFETY_MS) <= 0) {
            for (int i = 0; i < nf; i++)
                print_message("flow %d: sent %zu/%zu received %zu/%zu eof %d pending %d\n", i,
                              fl[i].sent, fl[i].out_len, fl[i].recvd, fl[i].expect_len,
                              fl[i].eof, ferry_transport_pending(fl[i].t));
            fail_msg("transfer stalled");
        }
    }
    fail_msg("transfer: too many rounds");
}

/* Entry sizes cut from the data in turn: tiny ones among big ones, around
 * and over the 16 KiB record size. */
static size_t *make_segs(size_t total, size_t *nsegs)
{
    static const size_t sizes[] = { 1, 3, 100, 7, 20000, 5, 16384, 64, 2, 40000, 1, 1,
                                    900, 16383, 16385, 333, 4096, 1, 70000, 11 };
    size_t cap = total / 8 + 16, n = 0, left = total;
    size_t *segs = malloc(cap * sizeof *segs);

    assert_non_null(segs);
    for (size_t i = 0; left > 0; i++) {
        size_t s = sizes[i % (sizeof sizes / sizeof sizes[0])];
        if (s > left)
            s = left;
        assert_true(n < cap);
        segs[n++] = s;
        left -= s;
    }
    *nsegs = n;
    return segs;
}

static void test_data_integrity_8mib(void **state)
{
    const size_t total = 8u << 20;
    struct ferry_tls *scfg = psk_server(NULL), *ccfg = psk_client(psk_key, "ferry");
    uint8_t *a = malloc(total), *b = malloc(total);
    size_t nsegs;
    size_t *segs = make_segs(total, &nsegs);
    struct tpair p;
    (void)state;

    assert_non_null(a);
    assert_non_null(b);
    fill_random(a, total, 0x1234567u);
    fill_random(b, total, 0x7654321u);
    tpair_open(&p, ccfg, NULL, scfg, 1, 16 * 1024);
    hs_ok(&p);

    struct flow f[2] = {
        { .t = p.c, .out = a, .out_len = total, .segs = segs, .nsegs = nsegs, .max_iov = 8,
          .file_fd = -1, .shut_when_done = 1, .expect = b, .expect_len = total, .rbuf = 100,
          .expect_eof = 1 },
        { .t = p.s, .out = b, .out_len = total, .segs = segs, .nsegs = nsegs, .max_iov = 8,
          .file_fd = -1, .shut_when_done = 1, .expect = a, .expect_len = total, .rbuf = 100,
          .expect_eof = 1 },
    };
    pump(f, 2);
    for (int i = 0; i < 2; i++) {
        print_message("flow %d: %ld writes, %ld -EAGAIN; pending true %ld times, "
                      "%ld reads while pending, %ld of them -EAGAIN\n", i, f[i].writes,
                      f[i].eagain_writes, f[i].pending_seen, f[i].pending_reads,
                      f[i].pending_eagain);
        assert_true(f[i].eagain_writes > 0);      /* the small buffers pushed back */
        assert_true(f[i].pending_seen > 0);       /* 100-byte reads left record bytes */
        assert_int_equal(f[i].pending_eagain, 0); /* pending() promised data */
    }
    tpair_close(&p);
    free(segs);
    free(a);
    free(b);
    ferry_tls_free(ccfg);
    ferry_tls_free(scfg);
}

/*
 * The pending() contract at record boundaries, deterministically: three
 * 100-byte records arrive together; a 100-byte read takes the first whole
 * (OpenSSL has read the other two ahead, off the socket), so poll() has
 * nothing to announce and only pending() can say that two records wait.
 */
static void test_pending_whole_records(void **state)
{
    struct ferry_tls *scfg = psk_server(NULL), *ccfg = psk_client(psk_key, "ferry");
    uint8_t data[300], buf[100];
    struct tpair p;
    (void)state;

    fill_random(data, sizeof data, 3);
    tpair_open(&p, ccfg, NULL, scfg, 1, 0);
    hs_ok(&p);
    for (int i = 0; i < 3; i++)
        assert_int_equal(ferry_transport_writev(p.c, &(struct iovec){ data + 100 * i, 100 }, 1),
                         100);
    assert_int_equal(ferry_transport_pending(p.s), 0);   /* nothing read yet */
    for (int i = 0; i < 3; i++) {
        struct pollfd pfd = { .fd = ferry_transport_fd(p.s), .events = POLLIN };
        if (i == 0)
            assert_int_equal(poll(&pfd, 1, SAFETY_MS), 1);
        else   /* what waits is in TLS's buffer, not the socket's */
            assert_int_equal(poll(&pfd, 1, 0), 0);
        assert_int_equal(ferry_transport_read(p.s, buf, sizeof buf), 100);
        assert_memory_equal(buf, data + 100 * i, 100);
        assert_int_equal(ferry_transport_pending(p.s), i < 2);
    }
    assert_int_equal(ferry_transport_read(p.s, buf, sizeof buf), -EAGAIN);
    /* Half a record's worth of a read: the rest of it is pending. */
    assert_int_equal(ferry_transport_writev(p.c, &(struct iovec){ data, 100 }, 1), 100);
    assert_int_equal(read_nb(p.s, buf, 40), 40);
    assert_int_equal(ferry_transport_pending(p.s), 1);
    assert_int_equal(ferry_transport_read(p.s, buf + 40, 100), 60);
    assert_memory_equal(buf, data, 100);
    assert_int_equal(ferry_transport_pending(p.s), 0);
    tpair_close(&p);
    ferry_tls_free(ccfg);
    ferry_tls_free(scfg);
}

/* Small entries go out in one record: 1000 one-byte entries are one
 * 1022-byte record on the wire (5 header, 1000, 1 type, 16 tag), not 1000
 * records; and more than IOV_MAX entries are a short write of IOV_MAX. */
static void test_gather_small_entries(void **state)
{
    struct ferry_tls *scfg = psk_server(NULL), *ccfg = psk_client(psk_key, "ferry");
    static struct iovec iov[2000];
    static uint8_t src[2000], dst[2000];
    struct tpair p;
    int queued = -1;
    (void)state;

    for (size_t i = 0; i < sizeof src; i++) {
        src[i] = (uint8_t)(i * 7 + 3);
        iov[i] = (struct iovec){ &src[i], 1 };
    }
    tpair_open(&p, ccfg, NULL, scfg, 1, 0);
    hs_ok(&p);
    assert_int_equal(ioctl(ferry_transport_fd(p.s), FIONREAD, &queued), 0);
    assert_int_equal(queued, 0);
    assert_int_equal(ferry_transport_writev(p.c, iov, 1000), 1000);
    assert_int_equal(ioctl(ferry_transport_fd(p.s), FIONREAD, &queued), 0);
    assert_int_equal(queued, 1000 + 22);
    read_exact_nb(p.s, dst, 1000);
    assert_memory_equal(dst, src, 1000);

    /* 2000 entries: the first IOV_MAX are taken. */
    assert_int_equal(ferry_transport_writev(p.c, iov, 2000), IOV_MAX);
    read_exact_nb(p.s, dst, IOV_MAX);
    assert_memory_equal(dst, src, IOV_MAX);
    tpair_close(&p);
    ferry_tls_free(ccfg);
    ferry_tls_free(scfg);
}


/* ---- 3. wrong and unknown keys -------------------------------------------------------- */

static void expect_hs_failure(struct tpair *p, int *rc, int *rs)
{
    hs_drive(p->c, p->s, rc, rs);
    print_message("client %s '%s'; server %s '%s'\n", ferry_err_name(*rc),
                  ferry_transport_error(p->c), ferry_err_name(*rs), ferry_transport_error(p->s));
}

static void test_wrong_psk(void **state)
{
    struct ferry_tls *scfg = psk_server(NULL), *ccfg = psk_client(wrong_key, "ferry");
    struct ferry_tls_info info;
    struct tpair p;
    int rc, rs;
    (void)state;

    tpair_open(&p, ccfg, NULL, scfg, 1, 0);
    expect_hs_failure(&p, &rc, &rs);
    assert_int_equal(rs, FERRY_ETLS);
    assert_true(ferry_transport_error(p.s)[0] != '\0');
    assert_null(strstr(ferry_transport_error(p.s), "unknown key name"));   /* the name was known */
    assert_true(rc == FERRY_ETLS || rc == FERRY_EEOF);
    assert_true(ferry_transport_error(p.c)[0] != '\0');
    assert_int_equal(ferry_transport_tls_info(p.c, &info), FERRY_ESTATE);
    tpair_close(&p);
    ferry_tls_free(ccfg);
    ferry_tls_free(scfg);
}

static void test_unknown_identity(void **state)
{
    struct ferry_tls *scfg = psk_server(NULL), *ccfg = psk_client(psk_key, "nobody");
    struct tpair p;
    int rc, rs;
    (void)state;

    tpair_open(&p, ccfg, NULL, scfg, 1, 0);
    expect_hs_failure(&p, &rc, &rs);
    assert_int_equal(rs, FERRY_ETLS);
    assert_non_null(strstr(ferry_transport_error(p.s), "unknown key name 'nobody'"));
    assert_true(rc == FERRY_ETLS || rc == FERRY_EEOF);
    assert_true(ferry_transport_error(p.c)[0] != '\0');
    tpair_close(&p);
    ferry_tls_free(ccfg);
    ferry_tls_free(scfg);
}

static void test_lookup_error_aborts(void **state)
{
    struct lookup lk = { .fail = 1 };
    struct ferry_tls *scfg = psk_server(&lk), *ccfg = psk_client(psk_key, "ferry");
    struct tpair p;
    int rc, rs;
    (void)state;

    tpair_open(&p, ccfg, NULL, scfg, 1, 0);
    expect_hs_failure(&p, &rc, &rs);
    assert_int_equal(rs, FERRY_ETLS);
    assert_true(rc == FERRY_ETLS || rc == FERRY_EEOF);
    /* The key name was not found unknown: the lookup failed.  The reason
     * must not send the operator looking for a missing key. */
    assert_null(strstr(ferry_transport_error(p.s), "unknown key name"));
    tpair_close(&p);
    ferry_tls_free(ccfg);
    ferry_tls_free(scfg);
}

/* ---- 4. a peer that does not speak TLS --------------------------------------------------- */

static const char frame_hello[] = "\x10\x00\x00\x00{\"cmd\":\"status\"}";
static const char tls_reply[] = "\x18\x00\x00\x00{\"error\":\"TLS required\"}";

/* Everything a raw socket receives until the end of stream (bounded). */
static size_t read_to_eof(int fd, char *buf, size_t cap, int *err)
{
    size_t got = 0;

    *err = 0;
    for (int i = 0; i < 1000; i++) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        ssize_t n;

        if (poll(&pfd, 1, SAFETY_MS) <= 0) {
            *err = -ETIMEDOUT;
            return got;
        }
        n = recv(fd, buf + got, cap - got, MSG_DONTWAIT);
        if (n == 0)
            return got;
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            *err = -errno;
            return got;
        }
        got += (size_t)n;
        if (got == cap) {
            *err = -ENOBUFS;
            return got;
        }
    }
    *err = -ELOOP;
    return got;
}

static void test_not_tls_plaintext_reply(void **state)
{
    struct ferry_tls_opts o = { .role = FERRY_TLS_SERVER, .psk_lookup = psk_lookup,
                                .plaintext_reply = tls_reply,
                                .plaintext_reply_len = sizeof tls_reply - 1 };
    struct ferry_tls *scfg = cfg_new(&o);
    struct ferry_transport *s;
    char buf[256];
    int sv[2], err, r = -EAGAIN;
    (void)state;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
    assert_int_equal(ferry_transport_new_tls(sv[1], scfg, NULL, &s), 0);
    assert_int_equal(ferry_transport_handshake(s), -EAGAIN);   /* nothing yet */
    assert_int_equal(send(sv[0], frame_hello, sizeof frame_hello - 1, 0),
                     (ssize_t)(sizeof frame_hello - 1));
    for (int i = 0; i < 100 && r == -EAGAIN; i++) {
        struct pollfd pfd = { .fd = sv[1], .events = ferry_transport_wants(s) };
        r = ferry_transport_handshake(s);
        if (r == -EAGAIN)
            assert_true(poll(&pfd, 1, SAFETY_MS) > 0);
    }
    assert_int_equal(r, FERRY_ENOTTLS);
    assert_non_null(strstr(ferry_transport_error(s), "0x10"));
    /* The reply, in the clear, and then the end (before the transport is
     * even freed: the server shut its side). */
    size_t n = read_to_eof(sv[0], buf, sizeof buf, &err);
    assert_int_equal(err, 0);
    assert_int_equal(n, sizeof tls_reply - 1);
    assert_memory_equal(buf, tls_reply, sizeof tls_reply - 1);
    ferry_transport_free(s);
    close(sv[0]);
    ferry_tls_free(scfg);
}

static void test_not_tls_no_reply_and_early_eof(void **state)
{
    struct ferry_tls *scfg = psk_server(NULL);
    struct ferry_transport *s;
    char buf[64];
    int sv[2], err;
    (void)state;

    /* No reply configured: nothing is sent; the end comes with the free. */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
    assert_int_equal(ferry_transport_new_tls(sv[1], scfg, NULL, &s), 0);
    assert_int_equal(send(sv[0], "GET / HTTP/1.0\r\n\r\n", 18, 0), 18);
    assert_int_equal(ferry_transport_handshake(s), FERRY_ENOTTLS);
    assert_int_equal(recv(sv[0], buf, sizeof buf, MSG_DONTWAIT), -1);
    assert_int_equal(errno, EAGAIN);
    ferry_transport_free(s);
    size_t n = read_to_eof(sv[0], buf, sizeof buf, &err);
    assert_true(err == 0 || err == -ECONNRESET);
    assert_int_equal(n, 0);
    close(sv[0]);

    /* The peer goes away before sending anything. */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
    assert_int_equal(ferry_transport_new_tls(sv[1], scfg, NULL, &s), 0);
    close(sv[0]);
    assert_int_equal(ferry_transport_handshake(s), FERRY_EEOF);
    ferry_transport_free(s);

    /* The peer goes away after its ClientHello. */
    struct ferry_tls *ccfg = psk_client(psk_key, "ferry");
    struct tpair p;
    tpair_open(&p, ccfg, NULL, scfg, 1, 0);
    assert_int_equal(ferry_transport_handshake(p.c), -EAGAIN);
    ferry_transport_free(p.c);
    int r = -EAGAIN;
    for (int i = 0; i < 100 && r == -EAGAIN; i++) {
        struct pollfd pfd = { .fd = ferry_transport_fd(p.s), .events = POLLIN };
        r = ferry_transport_handshake(p.s);
        if (r == -EAGAIN)
            assert_true(poll(&pfd, 1, SAFETY_MS) > 0);
    }
    /* Still alive: SIGPIPE (default action here) was held off while the
     * server wrote its flight to a closed socket. */
    print_message("hang-up after ClientHello: %s '%s'\n", ferry_err_name(r),
                  ferry_transport_error(p.s));
    if (r != FERRY_EEOF && r != -EPIPE && r != -ECONNRESET)
        fail_msg("server: %s '%s'", ferry_err_name(r), ferry_transport_error(p.s));
    ferry_transport_free(p.s);
    ferry_tls_free(ccfg);
    ferry_tls_free(scfg);
}

/* ---- 5. certificates ------------------------------------------------------------------------ */

static struct ferry_tls *cert_server(const char *ca, struct lookup *lk, int with_psk)
{
    struct ferry_tls_opts o = { .role = FERRY_TLS_SERVER, .cert_file = server_pem,
                                .key_file = server_key, .ca_file = ca };
    if (with_psk) {
        o.psk_lookup = psk_lookup;
        o.psk_lookup_arg = lk;
    }
    return cfg_new(&o);
}

static struct ferry_tls *ca_client(const char *cert, const char *key)
{
    struct ferry_tls_opts o = { .role = FERRY_TLS_CLIENT, .ca_file = ca_pem, .cert_file = cert,
                                .key_file = key };
    return cfg_new(&o);
}

/* A client of scfg verifying `name`: 0 on success, else the client's
 * code, with both errors in cerr/serr. */
static int cert_attempt(struct ferry_tls *ccfg, const char *name, struct ferry_tls *scfg,
                        int *rs_out, char *cerr, char *serr, size_t errlen,
                        struct ferry_tls_info *cinfo, struct ferry_tls_info *sinfo)
{
    struct tpair p;
    int rc, rs;
    uint8_t b;

    tpair_open(&p, ccfg, name, scfg, 1, 0);
    hs_drive(p.c, p.s, &rc, &rs);
    /* TLS 1.3: a client finishes before the server has judged its
     * certificate; a refusal then arrives as an alert on its first read. */
    if (rc == 0 && rs < 0) {
        ssize_t n = read_nb(p.c, &b, 1);
        rc = n < 0 ? (int)n : FERRY_EPROTO;
    }
    snprintf(cerr, errlen, "%s", ferry_transport_error(p.c));
    snprintf(serr, errlen, "%s", ferry_transport_error(p.s));
    print_message("%s: client %s '%s'; server %s '%s'\n", name ? name : "(no name)",
                  ferry_err_name(rc), cerr, ferry_err_name(rs), serr);
    if (rc == 0 && rs == 0) {
        struct ferry_tls_info i;
        assert_int_equal(ferry_transport_tls_info(p.c, &i), 0);
        *cinfo = i;
        assert_int_equal(ferry_transport_tls_info(p.s, &i), 0);
        *sinfo = i;
        /* The strings die with the transports. */
        cinfo->version = sinfo->version = "";
        cinfo->cipher = sinfo->cipher = cinfo->group = sinfo->group = "";
        cinfo->psk_identity = cinfo->psk_identity ? "set" : NULL;
        sinfo->psk_identity = sinfo->psk_identity ? "set" : NULL;
        /* and the data flows */
        write_all_nb(p.c, "cert", 4);
        char buf[4];
        read_exact_nb(p.s, buf, 4);
        assert_memory_equal(buf, "cert", 4);
    }
    *rs_out = rs;
    tpair_close(&p);
    return rc;
}

static void test_cert_server_verified(void **state)
{
    struct ferry_tls *scfg = cert_server(NULL, NULL, 0), *ccfg = ca_client(NULL, NULL);
    struct ferry_tls_info ci, si;
    char cerr[256], serr[256];
    int rs;
    (void)state;

    assert_int_equal(cert_attempt(ccfg, "localhost", scfg, &rs, cerr, serr, sizeof cerr, &ci, &si), 0);
    assert_int_equal(rs, 0);
    assert_int_equal(ci.peer_verified, 1);
    assert_non_null(strstr(ci.peer_subject, "CN=localhost"));
    assert_null(ci.psk_identity);
    assert_int_equal(si.peer_verified, 0);   /* no client certificate */
    assert_string_equal(si.peer_subject, "");

    /* An address literal is checked against the IP SAN. */
    assert_int_equal(cert_attempt(ccfg, "127.0.0.1", scfg, &rs, cerr, serr, sizeof cerr, &ci, &si), 0);
    assert_int_equal(ci.peer_verified, 1);

    assert_int_equal(cert_attempt(ccfg, "wrong.example", scfg, &rs, cerr, serr, sizeof cerr, &ci,
                                  &si), FERRY_ETLS);
    assert_non_null(strstr(cerr, "hostname mismatch"));
    assert_true(rs == FERRY_ETLS || rs == FERRY_EEOF);

    assert_int_equal(cert_attempt(ccfg, "127.0.0.2", scfg, &rs, cerr, serr, sizeof cerr, &ci,
                                  &si), FERRY_ETLS);
    assert_non_null(strstr(cerr, "IP address mismatch"));
    ferry_tls_free(ccfg);
    ferry_tls_free(scfg);
}

/* transport.h: "server_name NULL: no certificate check is possible, so
 * only a PSK can succeed". */
static void test_cert_client_without_name_refused(void **state)
{
    /* Without a name a certificate proves only that the CA signed it, for
     * anyone: a certificate-checking client refuses to start. */
    struct ferry_tls *ccfg = ca_client(NULL, NULL);
    struct ferry_transport *t = NULL;
    int sv[2];
    (void)state;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(ferry_transport_new_tls(sv[0], ccfg, NULL, &t), -EINVAL);
    assert_null(t);
    close(sv[0]);   /* still the caller's after a failure */
    close(sv[1]);
    ferry_tls_free(ccfg);
}

static void test_cert_psk_only_client_refused(void **state)
{
    struct ferry_tls *scfg = cert_server(NULL, NULL, 0), *ccfg = psk_client(psk_key, "ferry");
    struct ferry_tls_info ci, si;
    char cerr[256], serr[256];
    int rs;
    (void)state;

    /* The server cannot use the key and answers with a certificate the
     * client has no CA to check. */
    assert_int_equal(cert_attempt(ccfg, "localhost", scfg, &rs, cerr, serr, sizeof cerr, &ci,
                                  &si), FERRY_ETLS);
    assert_non_null(strstr(cerr, "certificate verify failed"));
    assert_true(rs == FERRY_ETLS || rs == FERRY_EEOF);
    ferry_tls_free(ccfg);
    ferry_tls_free(scfg);
}

static void test_cert_client_certificates(void **state)
{
    struct ferry_tls *scfg = cert_server(ca_pem, NULL, 0);
    struct ferry_tls *none = ca_client(NULL, NULL);
    struct ferry_tls *good = ca_client(client_pem, client_key);
    struct ferry_tls *rogue = ca_client(rogue_client_pem, rogue_client_key);
    struct ferry_tls_info ci, si;
    char cerr[256], serr[256];
    int rc, rs;
    (void)state;

    rc = cert_attempt(none, "localhost", scfg, &rs, cerr, serr, sizeof cerr, &ci, &si);
    assert_int_equal(rs, FERRY_ETLS);
    assert_true(serr[0] != '\0');
    assert_true(rc == FERRY_ETLS || rc == FERRY_EEOF);

    rc = cert_attempt(good, "localhost", scfg, &rs, cerr, serr, sizeof cerr, &ci, &si);
    assert_int_equal(rc, 0);
    assert_int_equal(rs, 0);
    assert_int_equal(si.peer_verified, 1);
    assert_non_null(strstr(si.peer_subject, "CN=ferry-client"));
    assert_int_equal(ci.peer_verified, 1);
    assert_non_null(strstr(ci.peer_subject, "CN=localhost"));

    rc = cert_attempt(rogue, "localhost", scfg, &rs, cerr, serr, sizeof cerr, &ci, &si);
    assert_int_equal(rs, FERRY_ETLS);
    assert_non_null(strstr(serr, "certificate verify failed"));
    assert_true(rc == FERRY_ETLS || rc == FERRY_EEOF);
    ferry_tls_free(none);
    ferry_tls_free(good);
    ferry_tls_free(rogue);
    ferry_tls_free(scfg);
}

/* A server with both: a known key name gets the key, anyone else the
 * certificate. */
static void test_cert_and_psk_server(void **state)
{
    struct ferry_tls *scfg = cert_server(NULL, NULL, 1);
    struct ferry_tls *pskc = psk_client(psk_key, "ferry");
    struct ferry_tls *cac = ca_client(NULL, NULL);
    struct ferry_tls *stranger = psk_client(psk_key, "nobody");
    struct ferry_tls_info ci, si;
    char cerr[256], serr[256];
    int rs;
    (void)state;

    assert_int_equal(cert_attempt(pskc, "localhost", scfg, &rs, cerr, serr, sizeof cerr, &ci, &si), 0);
    assert_non_null(ci.psk_identity);
    assert_non_null(si.psk_identity);
    assert_int_equal(ci.peer_verified, 0);

    assert_int_equal(cert_attempt(cac, "localhost", scfg, &rs, cerr, serr, sizeof cerr, &ci, &si), 0);
    assert_null(ci.psk_identity);
    assert_null(si.psk_identity);
    assert_int_equal(ci.peer_verified, 1);

    /* An unknown name falls back to the certificate, which a PSK-only
     * client cannot check. */
    assert_int_equal(cert_attempt(stranger, "localhost", scfg, &rs, cerr, serr, sizeof cerr, &ci,
                                  &si), FERRY_ETLS);
    assert_non_null(strstr(cerr, "certificate verify failed"));
    ferry_tls_free(pskc);
    ferry_tls_free(cac);
    ferry_tls_free(stranger);
    ferry_tls_free(scfg);
}

/* ---- 6. the end of the stream -------------------------------------------------------------- */

static void test_eof_after_close_notify(void **state)
{
    struct ferry_tls *scfg = psk_server(NULL), *ccfg = psk_client(psk_key, "ferry");
    struct tpair p;
    char buf[16];
    (void)state;

    /* Half-close: EOF one way, the other way still carries data. */
    tpair_open(&p, ccfg, NULL, scfg, 1, 0);
    hs_ok(&p);
    write_all_nb(p.c, "bye", 3);
    assert_int_equal(ferry_transport_shutdown_write(p.c), 0);
    /* Data and close_notify arrive together: the data first, the end on
     * the next call. */
    assert_int_equal(read_nb(p.s, buf, sizeof buf), 3);
    assert_memory_equal(buf, "bye", 3);
    assert_int_equal(read_nb(p.s, buf, sizeof buf), 0);
    assert_int_equal(read_nb(p.s, buf, sizeof buf), 0);   /* and stays at the end */
    write_all_nb(p.s, "pong", 4);
    read_exact_nb(p.c, buf, 4);
    assert_memory_equal(buf, "pong", 4);
    assert_int_equal(ferry_transport_shutdown_write(p.s), 0);
    assert_int_equal(read_nb(p.c, buf, sizeof buf), 0);
    tpair_close(&p);

    /* Freeing sends close_notify too. */
    tpair_open(&p, ccfg, NULL, scfg, 1, 0);
    hs_ok(&p);
    write_all_nb(p.s, "last", 4);
    ferry_transport_free(p.s);
    p.s = NULL;
    read_exact_nb(p.c, buf, 4);
    assert_memory_equal(buf, "last", 4);
    assert_int_equal(read_nb(p.c, buf, sizeof buf), 0);
    tpair_close(&p);

    /* Blocking read_full: the clean end before a byte is FERRY_EEOF. */
    tpair_open(&p, ccfg, NULL, scfg, 1, 0);
    hs_ok(&p);
    ferry_transport_free(p.s);
    p.s = NULL;
    assert_int_equal(ferry_transport_set_nonblocking(p.c, 0), 0);
    ferry_transport_set_timeout(p.c, SAFETY_MS);
    assert_int_equal(ferry_transport_read_full(p.c, buf, 4), FERRY_EEOF);
    tpair_close(&p);
    ferry_tls_free(ccfg);
    ferry_tls_free(scfg);
}

static void test_eof_without_close_notify(void **state)
{
    struct ferry_tls *scfg = psk_server(NULL), *ccfg = psk_client(psk_key, "ferry");
    struct tpair p;
    char buf[16];
    ssize_t n;
    (void)state;

    /* The socket ends under TLS: a truncation, never a clean 0. */
    tpair_open(&p, ccfg, NULL, scfg, 1, 0);
    hs_ok(&p);
    write_all_nb(p.c, "abc", 3);
    assert_int_equal(shutdown(ferry_transport_fd(p.c), SHUT_RDWR), 0);
    assert_int_equal(read_nb(p.s, buf, sizeof buf), 3);   /* the data first */
    assert_memory_equal(buf, "abc", 3);
    n = read_nb(p.s, buf, sizeof buf);
    if (n >= 0)
        fail_msg("a truncated stream read as %zd", n);
    assert_int_equal(n, FERRY_ETRUNCATED);
    assert_true(ferry_transport_error(p.s)[0] != '\0');
    tpair_close(&p);

    /* read_full sees it part way. */
    tpair_open(&p, ccfg, NULL, scfg, 1, 0);
    hs_ok(&p);
    write_all_nb(p.s, "xyz", 3);
    assert_int_equal(shutdown(ferry_transport_fd(p.s), SHUT_RDWR), 0);
    assert_int_equal(ferry_transport_set_nonblocking(p.c, 0), 0);
    ferry_transport_set_timeout(p.c, SAFETY_MS);
    assert_int_equal(ferry_transport_read_full(p.c, buf, 8), FERRY_ETRUNCATED);
    assert_memory_equal(buf, "xyz", 3);
    tpair_close(&p);

    ferry_tls_free(ccfg);
    ferry_tls_free(scfg);
}

/*
 * Through a relay this test controls (client <-> r[0] | r[1] <-> server):
 * a record cut short by the end of the stream, and a record altered on
 * the way, are errors; no byte of either is handed out.
 */
static void relay_open(struct tpair *p, int r[2], struct ferry_tls *ccfg, struct ferry_tls *scfg)
{
    int a[2], b[2];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, a), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, b), 0);
    assert_int_equal(ferry_transport_new_tls(a[0], ccfg, NULL, &p->c), 0);
    assert_int_equal(ferry_transport_new_tls(b[1], scfg, NULL, &p->s), 0);
    r[0] = a[1];
    r[1] = b[0];
}

/* Move what is there, both ways; bytes moved. */
static size_t relay_once(const int r[2])
{
    uint8_t buf[16384];
    size_t moved = 0;

    for (int dir = 0; dir < 2; dir++) {
        for (int i = 0; i < 64; i++) {
            ssize_t n = recv(r[dir], buf, sizeof buf, MSG_DONTWAIT);
            if (n <= 0)
                break;
            assert_int_equal(send(r[!dir], buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL), n);
            moved += (size_t)n;
        }
    }
    return moved;
}

static void relay_handshake(struct tpair *p, const int r[2])
{
    struct ferry_transport *t[2] = { p->c, p->s };
    int res[2] = { -EAGAIN, -EAGAIN };

    for (int round = 0; round < 200 && (res[0] == -EAGAIN || res[1] == -EAGAIN); round++) {
        struct pollfd pfd[4];
        int n = 0;

        for (int i = 0; i < 2; i++)
            if (res[i] == -EAGAIN)
                res[i] = ferry_transport_handshake(t[i]);
        if (relay_once(r) > 0)
            continue;
        if (res[0] != -EAGAIN && res[1] != -EAGAIN)
            break;
        for (int i = 0; i < 2; i++)
            if (res[i] == -EAGAIN)
                pfd[n++] = (struct pollfd){ .fd = ferry_transport_fd(t[i]),
                                            .events = ferry_transport_wants(t[i]) };
        pfd[n++] = (struct pollfd){ .fd = r[0], .events = POLLIN };
        pfd[n++] = (struct pollfd){ .fd = r[1], .events = POLLIN };
        if (poll(pfd, (nfds_t)n, SAFETY_MS) <= 0)
            fail_msg("relayed handshake stalled");
    }
    if (res[0] != 0 || res[1] != 0)
        fail_msg("relayed handshake: client %s, server %s", ferry_err_name(res[0]),
                 ferry_err_name(res[1]));
}

/* want bytes off the relay's client side (what the client sent); the
 * count taken. */
static size_t relay_take(int fd, uint8_t *buf, size_t want)
{
    size_t got = 0;

    for (int i = 0; i < 100 && got < want; i++) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        assert_true(poll(&pfd, 1, SAFETY_MS) > 0);
        ssize_t n = recv(fd, buf + got, want - got, MSG_DONTWAIT);
        assert_true(n > 0);
        got += (size_t)n;
    }
    return got;
}

static void test_truncated_and_altered_records(void **state)
{
    struct ferry_tls *scfg = psk_server(NULL), *ccfg = psk_client(psk_key, "ferry");
    static uint8_t data[1000], rec[1022];
    struct tpair p;
    int r[2];
    ssize_t n;
    (void)state;

    fill_random(data, sizeof data, 11);
    /* Cut: half of a 1000-byte record, then the end of the stream. */
    relay_open(&p, r, ccfg, scfg);
    relay_handshake(&p, r);
    write_all_nb(p.c, data, sizeof data);
    assert_int_equal(relay_take(r[0], rec, sizeof rec), sizeof rec);
    assert_int_equal(send(r[1], rec, 500, MSG_NOSIGNAL), 500);
    {
        struct pollfd pfd = { .fd = ferry_transport_fd(p.s), .events = POLLIN };
        assert_int_equal(poll(&pfd, 1, SAFETY_MS), 1);
    }
    /* Half a record: nothing to hand out, and nothing pending. */
    assert_int_equal(ferry_transport_read(p.s, rec, sizeof rec), -EAGAIN);
    assert_int_equal(ferry_transport_pending(p.s), 0);
    assert_int_equal(shutdown(r[1], SHUT_WR), 0);
    n = read_nb(p.s, rec, sizeof rec);
    if (n >= 0)
        fail_msg("a record cut short read as %zd", n);
    assert_int_equal(n, FERRY_ETRUNCATED);
    tpair_close(&p);
    close(r[0]);
    close(r[1]);

    /* Altered: one bit of the ciphertext flipped. */
    relay_open(&p, r, ccfg, scfg);
    relay_handshake(&p, r);
    write_all_nb(p.c, data, sizeof data);
    assert_int_equal(relay_take(r[0], rec, sizeof rec), sizeof rec);
    rec[300] ^= 0x04;
    assert_int_equal(send(r[1], rec, sizeof rec, MSG_NOSIGNAL), (ssize_t)sizeof rec);
    n = read_nb(p.s, rec, sizeof rec);
    if (n >= 0)
        fail_msg("an altered record read as %zd", n);
    assert_int_equal(n, FERRY_ETLS);
    print_message("altered record: '%s'\n", ferry_transport_error(p.s));
    assert_true(ferry_transport_error(p.s)[0] != '\0');
    tpair_close(&p);
    close(r[0]);
    close(r[1]);

    /* A good record and an altered one in the same read: the good bytes
     * are handed out, and the next call reports the altered record as
     * such (not as something else). */
    relay_open(&p, r, ccfg, scfg);
    relay_handshake(&p, r);
    write_all_nb(p.c, data, 100);
    write_all_nb(p.c, data + 100, 100);
    assert_int_equal(relay_take(r[0], rec, 244), 244);
    rec[122 + 50] ^= 0x01;
    assert_int_equal(send(r[1], rec, 244, MSG_NOSIGNAL), 244);
    n = read_nb(p.s, rec, sizeof rec);
    assert_int_equal(n, 100);
    assert_memory_equal(rec, data, 100);
    n = read_nb(p.s, rec, sizeof rec);
    print_message("altered record after a good one: %s '%s'\n", ferry_err_name((int)n),
                  ferry_transport_error(p.s));
    assert_int_equal(n, FERRY_ETLS);
    assert_non_null(strstr(ferry_transport_error(p.s), "bad record mac"));
    tpair_close(&p);
    close(r[0]);
    close(r[1]);
    ferry_tls_free(ccfg);
    ferry_tls_free(scfg);
}

/*
 * A read that ends exactly at the end of a record, while the start of the
 * next record is in OpenSSL's buffer: nothing is decrypted, so nothing is
 * pending (transport.h: "Bytes already received and decrypted that poll()
 * will not announce"); a caller that reads because pending() said so must
 * get data, not -EAGAIN.
 */
static void test_pending_partial_record_at_boundary(void **state)
{
    struct ferry_tls *scfg = psk_server(NULL), *ccfg = psk_client(psk_key, "ferry");
    static uint8_t data[200], rec[244], buf[100];
    struct tpair p;
    int r[2];
    (void)state;

    fill_random(data, sizeof data, 21);
    relay_open(&p, r, ccfg, scfg);
    relay_handshake(&p, r);
    write_all_nb(p.c, data, 100);
    write_all_nb(p.c, data + 100, 100);
    assert_int_equal(relay_take(r[0], rec, sizeof rec), sizeof rec);
    /* The first record whole, the second's first half. */
    assert_int_equal(send(r[1], rec, 122 + 61, MSG_NOSIGNAL), 122 + 61);
    assert_int_equal(read_nb(p.s, buf, sizeof buf), 100);
    assert_memory_equal(buf, data, 100);
    int pend = ferry_transport_pending(p.s);
    ssize_t n = ferry_transport_read(p.s, buf, sizeof buf);
    print_message("pending %d, then read %zd\n", pend, n);
    assert_int_equal(n, -EAGAIN);   /* half a record: nothing to hand out */
    if (pend)
        fail_msg("pending() was true with only half a record buffered");
    /* The rest comes: poll() says so, and the record is whole. */
    assert_int_equal(send(r[1], rec + 183, sizeof rec - 183, MSG_NOSIGNAL), (ssize_t)(sizeof rec - 183));
    assert_int_equal(read_nb(p.s, buf, sizeof buf), 100);
    assert_memory_equal(buf, data + 100, 100);
    tpair_close(&p);
    close(r[0]);
    close(r[1]);
    ferry_tls_free(ccfg);
    ferry_tls_free(scfg);
}

/*
 * close_notify when the socket is full and the transport is blocking: the
 * peer that reads everything must see a clean end (0), not a truncation.
 * The client writes one-byte records until its socket is full (SIOCOUTQ
 * reaches SO_SNDBUF), turns blocking, and ends the stream from a thread
 * while the server reads.
 */
struct ender {
    struct ferry_transport *t;
    int use_free;
    int result;
    atomic_int tid;
    atomic_int done;
};

static void *end_stream(void *arg)
{
    struct ender *e = arg;

    atomic_store(&e->tid, (int)syscall(SYS_gettid));
    if (e->use_free) {
        ferry_transport_free(e->t);
        e->result = 0;
    } else {
        e->result = ferry_transport_shutdown_write(e->t);
    }
    atomic_store(&e->done, 1);
    return NULL;
}

/* Whether thread tid is blocked in poll(2)/ppoll(2) now. */
static int in_poll(int tid)
{
    char path[64], line[64] = "";
    FILE *f;
    long nr = -1;

    pathf(path, sizeof path, "/proc/self/task/%d/syscall", tid);
    f = fopen(path, "re");
    if (!f)
        return 0;
    if (fgets(line, sizeof line, f))
        nr = strtol(line, NULL, 10);
    fclose(f);
#ifdef SYS_poll
    if (nr == SYS_poll)
        return 1;
#endif
    return nr == SYS_ppoll;
}

/* Until the ender has either returned or is waiting in poll() for room
 * (then it would hold on to the close_notify, and our reads let it go):
 * only then may the reader start, or it would make the room itself. */
static void wait_ender(struct ender *e)
{
    int64_t deadline = now_ms() + SAFETY_MS;

    while (now_ms() < deadline) {
        int tid = atomic_load(&e->tid);
        if (atomic_load(&e->done) || (tid > 0 && in_poll(tid)))
            return;
        sched_yield();
    }
    fail_msg("the thread ending the stream neither returned nor waited");
}

static void close_notify_when_full(int use_free)
{
    struct ferry_tls *scfg = psk_server(NULL), *ccfg = psk_client(psk_key, "ferry");
    struct ender e = { .use_free = use_free, .result = 1 };
    struct tpair p;
    int sndbuf = 0, outq = 0;
    socklen_t sl = sizeof sndbuf;
    size_t k = 0;
    pthread_t th;
    static uint8_t got[100000];

    tpair_open(&p, ccfg, NULL, scfg, 1, 4096);
    hs_ok(&p);
    assert_int_equal(getsockopt(ferry_transport_fd(p.c), SOL_SOCKET, SO_SNDBUF, &sndbuf, &sl), 0);
    for (; k < sizeof got; k++) {
        uint8_t b = (uint8_t)k;
        struct iovec iov = { &b, 1 };
        assert_int_equal(ioctl(ferry_transport_fd(p.c), SIOCOUTQ, &outq), 0);
        if (outq >= sndbuf)
            break;
        ssize_t n = ferry_transport_writev(p.c, &iov, 1);
        if (n != 1)
            fail_msg("record %zu: %s (queued %d of %d)", k, ferry_err_name((int)n), outq, sndbuf);
    }
    assert_true(k > 0 && k < sizeof got);
    assert_int_equal(ferry_transport_set_nonblocking(p.c, 0), 0);
    ferry_transport_set_timeout(p.c, SAFETY_MS);
    e.t = p.c;
    if (use_free)
        p.c = NULL;
    assert_int_equal(pthread_create(&th, NULL, end_stream, &e), 0);
    wait_ender(&e);
    read_exact_nb(p.s, got, k);
    for (size_t i = 0; i < k; i++)
        assert_int_equal(got[i], (uint8_t)i);
    ssize_t n = read_nb(p.s, got, sizeof got);
    pthread_join(th, NULL);
    assert_int_equal(e.result, 0);
    if (n != 0)
        fail_msg("after %zu bytes and a %s, the reader got %s ('%s') instead of the end",
                 k, use_free ? "free" : "shutdown_write", ferry_err_name((int)n),
                 ferry_transport_error(p.s));
    tpair_close(&p);
    ferry_tls_free(ccfg);
    ferry_tls_free(scfg);
}

static void test_close_notify_full_socket_shutdown(void **state)
{
    (void)state;
    close_notify_when_full(0);
}

static void test_close_notify_full_socket_free(void **state)
{
    (void)state;
    close_notify_when_full(1);
}

/* ---- 7. sendfile -------------------------------------------------------------------------------- */

static int temp_file(const uint8_t *data, size_t len)
{
    char path[128];
    int fd;

    pathf(path, sizeof path, "%s/sendfile-XXXXXX", certdir);
    fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    for (size_t off = 0; off < len;) {
        ssize_t n = write(fd, data + off, len - off);
        assert_true(n > 0);
        off += (size_t)n;
    }
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    return fd;
}

static void test_sendfile_nonblocking(void **state)
{
    const size_t size = (1u << 20) + 777;
    struct ferry_tls *scfg = psk_server(NULL), *ccfg = psk_client(psk_key, "ferry");
    struct ferry_tls_info info;
    uint8_t *data = malloc(size);
    struct tpair p;
    uint64_t off;
    uint8_t buf[16];
    int fd;
    (void)state;

    assert_non_null(data);
    fill_random(data, size, 4242);
    fd = temp_file(data, size);
    tpair_open(&p, ccfg, NULL, scfg, 1, 16 * 1024);
    hs_ok(&p);
    assert_int_equal(ferry_transport_tls_info(p.c, &info), 0);
    assert_int_equal(info.ktls_send, 0);

    struct flow f[2] = {
        { .t = p.c, .out = data, .out_len = size, .file_fd = fd, .expect_len = 0, .rbuf = 4096 },
        { .t = p.s, .out = NULL, .out_len = 0, .file_fd = -1, .expect = data, .expect_len = size,
          .rbuf = 4096 },
    };
    pump(f, 2);
    assert_true(f[0].eagain_writes > 0);
    /* in_fd's own position is not used. */
    assert_int_equal(lseek(fd, 0, SEEK_CUR), 0);
    /* At the end of the file: 0. */
    off = size;
    assert_int_equal(ferry_transport_sendfile(p.c, fd, &off, 100), 0);
    assert_int_equal(off, size);
    /* A range from the middle; len 0 sends nothing. */
    off = 4096;
    assert_int_equal(ferry_transport_sendfile(p.c, fd, &off, 0), 0);
    assert_int_equal(off, 4096);
    static uint8_t part[10000];
    size_t sent = 0;
    for (int i = 0; i < 1000 && sent < sizeof part; i++) {
        ssize_t n = ferry_transport_sendfile(p.c, fd, &off, sizeof part - sent);
        assert_true(n > 0 || n == -EAGAIN);
        if (n > 0)
            sent += (size_t)n;
    }
    assert_int_equal(sent, sizeof part);
    assert_int_equal(off, 4096 + sizeof part);
    read_exact_nb(p.s, part, sizeof part);
    assert_memory_equal(part, data + 4096, sizeof part);
    /* The file ends early: what there is, then 0. */
    off = size - 10;
    ssize_t n = ferry_transport_sendfile(p.c, fd, &off, 100);
    assert_int_equal(n, 10);
    read_exact_nb(p.s, buf, 10);
    assert_memory_equal(buf, data + size - 10, 10);
    assert_int_equal(ferry_transport_sendfile(p.c, fd, &off, 100), 0);
    tpair_close(&p);
    close(fd);
    free(data);
    ferry_tls_free(ccfg);
    ferry_tls_free(scfg);
}

struct reader {
    struct ferry_transport *t;
    uint8_t *buf;
    size_t len;
    int result;
};

static void *read_all_thread(void *arg)
{
    struct reader *r = arg;

    r->result = ferry_transport_read_full(r->t, r->buf, r->len);
    return NULL;
}

static void test_sendfile_blocking(void **state)
{
    const size_t size = 1u << 20;
    struct ferry_tls *scfg = psk_server(NULL), *ccfg = psk_client(psk_key, "ferry");
    uint8_t *data = malloc(size), *got = malloc(size);
    struct reader rd = { .buf = got, .len = size, .result = 1 };
    struct tpair p;
    pthread_t th;
    uint64_t off = 0;
    int fd, calls = 0;
    ssize_t n = 0;
    (void)state;

    assert_non_null(data);
    assert_non_null(got);
    fill_random(data, size, 777);
    fd = temp_file(data, size);
    tpair_open(&p, ccfg, NULL, scfg, 1, 16 * 1024);
    hs_ok(&p);
    assert_int_equal(ferry_transport_set_nonblocking(p.c, 0), 0);
    assert_int_equal(ferry_transport_set_nonblocking(p.s, 0), 0);
    ferry_transport_set_timeout(p.s, SAFETY_MS);
    rd.t = p.s;
    assert_int_equal(pthread_create(&th, NULL, read_all_thread, &rd), 0);
    /* Blocking: each call waits rather than returning -EAGAIN. */
    while (off < size && calls < 100000) {
        n = ferry_transport_sendfile(p.c, fd, &off, size - off);
        calls++;
        if (n <= 0)
            break;
    }
    pthread_join(th, NULL);
    if (n <= 0)
        fail_msg("sendfile at %llu: %s ('%s')", (unsigned long long)off, ferry_err_name((int)n),
                 ferry_transport_error(p.c));
    assert_int_equal(off, size);
    assert_int_equal(rd.result, 0);
    assert_memory_equal(got, data, size);
    tpair_close(&p);
    close(fd);
    free(data);
    free(got);
    ferry_tls_free(ccfg);
    ferry_tls_free(scfg);
}

/* ---- 8. servers ------------------------------------------------------------------------------- */

struct running {
    struct ferry_server *s;
    char bound[FERRY_ADDRSTRLEN];
    pthread_t thread;
    int result;
};

static void *run_thread(void *arg)
{
    struct running *r = arg;
    r->result = ferry_server_run(r->s);
    return NULL;
}

static void srv_start(struct running *r, const struct ferry_server_opts *opts,
                      const struct ferry_handler *h, struct ferry_tls *cfg)
{
    memset(r, 0, sizeof *r);
    assert_int_equal(ferry_server_new(opts, &r->s), 0);
    assert_non_null(r->s);
    assert_int_equal(ferry_server_listen_tls(r->s, "127.0.0.1:0", FERRY_SOCK_STREAM, h, cfg,
                                             r->bound), 0);
    assert_int_equal(pthread_create(&r->thread, NULL, run_thread, r), 0);
}

static void srv_stop(struct running *r)
{
    ferry_server_stop(r->s);
    pthread_join(r->thread, NULL);
    assert_int_equal(r->result, 0);
    ferry_server_free(r->s);
}

static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    int opens;
    int closes;
    int info_rc;
    char version[32];
    char identity[64];
    char group[32];
} seen;

static void seen_reset(void)
{
    pthread_mutex_lock(&seen_lock);
    memset(&seen, 0, sizeof seen);
    pthread_mutex_unlock(&seen_lock);
}

static void note_conn(struct ferry_conn *c)
{
    struct ferry_tls_info info;
    int r = ferry_conn_tls_info(c, &info);

    pthread_mutex_lock(&seen_lock);
    seen.opens++;
    seen.info_rc = r;
    if (r == 0) {
        snprintf(seen.version, sizeof seen.version, "%s", info.version);
        snprintf(seen.identity, sizeof seen.identity, "%s",
                 info.psk_identity ? info.psk_identity : "(none)");
        snprintf(seen.group, sizeof seen.group, "%s", info.group);
    }
    pthread_mutex_unlock(&seen_lock);
}

static int ev_open(struct ferry_conn *c, void *arg)
{
    (void)arg;
    ferry_conn_set_authenticated(c);
    note_conn(c);
    return 0;
}

static int ev_echo(struct ferry_conn *c, const void *data, size_t len, void *arg)
{
    (void)arg;
    return ferry_conn_write(c, data, len);
}

static void ev_close(struct ferry_conn *c, int reason, void *arg)
{
    (void)c;
    (void)reason;
    (void)arg;
    pthread_mutex_lock(&seen_lock);
    seen.closes++;
    pthread_mutex_unlock(&seen_lock);
}

/* Blocking echo through a 100-byte buffer: most of each record stays in
 * TLS's buffer, where only ferry_transport_pending() can see it. */
static int serve_echo(struct ferry_conn *c, void *arg)
{
    uint8_t buf[100];
    (void)arg;

    ferry_conn_set_authenticated(c);
    note_conn(c);
    for (long i = 0; i < 10000000; i++) {
        ssize_t n = ferry_conn_read(c, buf, sizeof buf);
        if (n <= 0)
            return (int)n;
        int r = ferry_conn_write(c, buf, (size_t)n);
        if (r < 0)
            return r;
    }
    return -ELOOP;
}

static int dial_raw(const char *bound, int rcvbuf)
{
    struct ferry_addr a;
    struct timeval tv = { .tv_sec = SAFETY_MS / 1000 };
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    assert_int_equal(ferry_addr_parse(bound, -1, &a), 0);
    if (rcvbuf)
        assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf), 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    assert_int_equal(connect(fd, (struct sockaddr *)&a.ss, a.len), 0);
    return fd;
}

/* A TLS client, blocking with a SAFETY_MS timeout; *hs gets the handshake's
 * result. */
static struct ferry_transport *dial_tls(const char *bound, struct ferry_tls *cfg, int rcvbuf,
                                        int *hs)
{
    struct ferry_transport *t;
    int fd = dial_raw(bound, rcvbuf);

    assert_int_equal(ferry_transport_new_tls(fd, cfg, NULL, &t), 0);
    ferry_transport_set_timeout(t, SAFETY_MS);
    *hs = ferry_transport_handshake(t);
    return t;
}

static void garbage_client(const char *bound, const void *bytes, size_t len)
{
    char buf[256];
    int fd = dial_raw(bound, 0), err;

    assert_int_equal(send(fd, bytes, len, MSG_NOSIGNAL), (ssize_t)len);
    size_t n = read_to_eof(fd, buf, sizeof buf, &err);
    assert_int_equal(err, 0);
    assert_int_equal(n, sizeof tls_reply - 1);
    assert_memory_equal(buf, tls_reply, sizeof tls_reply - 1);
    close(fd);
}

static void tls_server_suite(enum ferry_model model, const struct ferry_handler *h)
{
    const size_t total = 1u << 20;
    /* A small output limit: reading pauses and resumes often, with
     * records still in TLS's buffer. */
    struct ferry_server_opts opts = { .model = model, .workers = 1,
                                      .write_high_water = 16 * 1024 };
    struct ferry_tls_opts so = { .role = FERRY_TLS_SERVER, .psk_lookup = psk_lookup,
                                 .plaintext_reply = tls_reply,
                                 .plaintext_reply_len = sizeof tls_reply - 1 };
    struct ferry_tls *scfg = cfg_new(&so);
    struct ferry_tls *ccfg = psk_client(psk_key, "ferry"), *bad = psk_client(wrong_key, "ferry");
    struct ferry_transport *t;
    struct running r;
    uint8_t *data = malloc(total);
    char buf[64];
    int hs;

    assert_non_null(data);
    fill_random(data, total, 31337);
    seen_reset();
    srv_start(&r, &opts, h, scfg);

    /* Clients that are not TLS get the reply and the end... */
    garbage_client(r.bound, frame_hello, sizeof frame_hello - 1);
    garbage_client(r.bound, "GET / HTTP/1.0\r\n\r\n", 18);
    /* ...one with the wrong key fails its handshake... */
    t = dial_tls(r.bound, bad, 0, &hs);
    if (hs == 0) {   /* (cannot happen: the binder is checked before the server's Finished) */
        ssize_t n = ferry_transport_read(t, buf, 1);
        fail_msg("wrong key: handshake passed, read %zd", n);
    }
    assert_true(hs == FERRY_ETLS || hs == FERRY_EEOF || hs == -ECONNRESET);
    ferry_transport_free(t);

    /* ...and the server goes on serving. */
    t = dial_tls(r.bound, ccfg, 16 * 1024, &hs);
    if (hs != 0)
        fail_msg("handshake: %s '%s'", ferry_err_name(hs), ferry_transport_error(t));
    check_psk_info(t);
    assert_int_equal(ferry_transport_write_full(t, "hello", 5), 0);
    assert_int_equal(ferry_transport_read_full(t, buf, 5), 0);
    assert_memory_equal(buf, "hello", 5);
    /* One record larger than the blocking handler's buffer, and nothing
     * after it: the handler must read the rest from TLS's buffer without
     * waiting for the socket (which has nothing more to say). */
    {
        static uint8_t back[1000];
        assert_int_equal(ferry_transport_write_full(t, data, sizeof back), 0);
        int rr = ferry_transport_read_full(t, back, sizeof back);
        if (rr != 0)
            fail_msg("1000-byte echo: %s", ferry_err_name(rr));
        assert_memory_equal(back, data, sizeof back);
    }
    pthread_mutex_lock(&seen_lock);
    assert_int_equal(seen.opens, 1);   /* only this client reached the handler */
    assert_int_equal(seen.info_rc, 0);
    assert_string_equal(seen.version, "TLSv1.3");
    assert_string_equal(seen.identity, "ferry");
    assert_true(seen.group[0] != '\0');
    pthread_mutex_unlock(&seen_lock);

    /* 1 MiB echoed while it is being sent; then our end, and the server's. */
    assert_int_equal(ferry_transport_set_nonblocking(t, 1), 0);
    struct flow f = { .t = t, .out = data, .out_len = total, .file_fd = -1,
                      .shut_when_done = 1, .expect = data, .expect_len = total, .rbuf = 1000,
                      .expect_eof = 1 };
    pump(&f, 1);
    /* (f.pending_eagain can be non-zero here: see
     * test_pending_partial_record_at_boundary.) */
    ferry_transport_free(t);
    srv_stop(&r);
    pthread_mutex_lock(&seen_lock);
    assert_int_equal(seen.opens, 1);
    if (h->on_close)   /* owed to the connection that opened, to no other */
        assert_int_equal(seen.closes, 1);
    pthread_mutex_unlock(&seen_lock);
    free(data);
    ferry_tls_free(bad);
    ferry_tls_free(ccfg);
    ferry_tls_free(scfg);
}

static void test_server_event_echo(void **state)
{
    struct ferry_handler h = { .on_open = ev_open, .on_data = ev_echo, .on_close = ev_close };
    (void)state;
    tls_server_suite(FERRY_MODEL_EVENT, &h);
}

/* An event-style handler under THREAD: a private loop per connection. */
static void test_server_thread_event_echo(void **state)
{
    struct ferry_handler h = { .on_open = ev_open, .on_data = ev_echo, .on_close = ev_close };
    (void)state;
    tls_server_suite(FERRY_MODEL_THREAD, &h);
}

static void test_server_thread_echo(void **state)
{
    struct ferry_handler h = { .serve = serve_echo };
    (void)state;
    tls_server_suite(FERRY_MODEL_THREAD, &h);
}

/* A silent client, and one that stops inside its ClientHello, are closed
 * when handshake_timeout_ms is up; a prompt one is served. */
static void handshake_timeout(enum ferry_model model, const struct ferry_handler *h)
{
    struct ferry_server_opts opts = { .model = model, .workers = 1, .handshake_timeout_ms = 300 };
    struct ferry_tls *scfg = psk_server(NULL), *ccfg = psk_client(psk_key, "ferry");
    struct ferry_transport *t;
    struct running r;
    char buf[64];
    int hs, err;

    srv_start(&r, &opts, h, scfg);
    for (int partial = 0; partial < 2; partial++) {
        int fd = dial_raw(r.bound, 0);
        int64_t t0 = now_ms();
        if (partial)   /* a handshake record header, and nothing more */
            assert_int_equal(send(fd, "\x16\x03\x01\x02\x00", 5, MSG_NOSIGNAL), 5);
        size_t n = read_to_eof(fd, buf, sizeof buf, &err);
        int64_t took = now_ms() - t0;
        assert_int_equal(n, 0);
        assert_true(err == 0 || err == -ECONNRESET);
        assert_true(took >= 250 && took < SAFETY_MS);
        close(fd);
    }
    t = dial_tls(r.bound, ccfg, 0, &hs);
    assert_int_equal(hs, 0);
    assert_int_equal(ferry_transport_write_full(t, "again", 5), 0);
    assert_int_equal(ferry_transport_read_full(t, buf, 5), 0);
    assert_memory_equal(buf, "again", 5);
    ferry_transport_free(t);
    srv_stop(&r);
    ferry_tls_free(ccfg);
    ferry_tls_free(scfg);
}

static void test_server_event_handshake_timeout(void **state)
{
    struct ferry_handler h = { .on_open = ev_open, .on_data = ev_echo };
    (void)state;
    handshake_timeout(FERRY_MODEL_EVENT, &h);
}

static void test_server_thread_handshake_timeout(void **state)
{
    struct ferry_handler h = { .serve = serve_echo };
    (void)state;
    handshake_timeout(FERRY_MODEL_THREAD, &h);
}

/*
 * A graceful stop while a client sits in its TLS handshake: that
 * connection never reached a handler, so nothing is owed to it and the
 * stop does not wait out shutdown_grace_ms for it (as it does not for a
 * plain connection whose handler waits at a request boundary).
 */
static void stop_during_handshake(enum ferry_model model, const struct ferry_handler *h)
{
    struct ferry_server_opts opts = { .model = model, .workers = 1, .shutdown_grace_ms = 3000 };
    struct ferry_tls *scfg = psk_server(NULL), *ccfg = psk_client(psk_key, "ferry");
    struct ferry_transport *t;
    struct running r;
    char buf[8];
    int hs, err;

    srv_start(&r, &opts, h, scfg);
    int silent = dial_raw(r.bound, 0);
    assert_int_equal(send(silent, "\x16", 1, MSG_NOSIGNAL), 1);   /* a TLS record begins... */
    /* A client served after it: the silent one was accepted before. */
    t = dial_tls(r.bound, ccfg, 0, &hs);
    assert_int_equal(hs, 0);
    assert_int_equal(ferry_transport_write_full(t, "x", 1), 0);
    assert_int_equal(ferry_transport_read_full(t, buf, 1), 0);
    ferry_transport_free(t);

    int64_t t0 = now_ms();
    ferry_server_stop(r.s);
    size_t n = read_to_eof(silent, buf, sizeof buf, &err);
    pthread_join(r.thread, NULL);
    int64_t took = now_ms() - t0;
    assert_int_equal(r.result, 0);
    ferry_server_free(r.s);
    close(silent);
    assert_int_equal(n, 0);
    assert_true(err == 0 || err == -ECONNRESET);
    print_message("%s: stop took %lld ms\n", ferry_model_name(model), (long long)took);
    if (took >= 2000)
        fail_msg("the stop waited %lld ms (the grace is 3000) for a handshake", (long long)took);
    ferry_tls_free(ccfg);
    ferry_tls_free(scfg);
}

static void test_server_event_stop_during_handshake(void **state)
{
    struct ferry_handler h = { .on_open = ev_open, .on_data = ev_echo };
    (void)state;
    stop_during_handshake(FERRY_MODEL_EVENT, &h);
}

static void test_server_thread_stop_during_handshake(void **state)
{
    struct ferry_handler h = { .serve = serve_echo };
    (void)state;
    stop_during_handshake(FERRY_MODEL_THREAD, &h);
}

/* A certificate server with client certificates, through the listener. */
static void test_server_event_certificates(void **state)
{
    struct ferry_server_opts opts = { .model = FERRY_MODEL_EVENT, .workers = 1 };
    struct ferry_handler h = { .on_open = ev_open, .on_data = ev_echo };
    struct ferry_tls *scfg = cert_server(ca_pem, NULL, 0);
    struct ferry_tls *good = ca_client(client_pem, client_key), *none = ca_client(NULL, NULL);
    struct ferry_transport *t;
    struct ferry_tls_info info;
    struct running r;
    char buf[8];
    int fd;
    (void)state;

    seen_reset();
    srv_start(&r, &opts, &h, scfg);
    fd = dial_raw(r.bound, 0);
    assert_int_equal(ferry_transport_new_tls(fd, good, "127.0.0.1", &t), 0);
    ferry_transport_set_timeout(t, SAFETY_MS);
    int hs = ferry_transport_handshake(t);
    if (hs != 0)
        fail_msg("handshake: %s '%s'", ferry_err_name(hs), ferry_transport_error(t));
    assert_int_equal(ferry_transport_tls_info(t, &info), 0);
    assert_int_equal(info.peer_verified, 1);
    assert_int_equal(ferry_transport_write_full(t, "certs", 5), 0);
    assert_int_equal(ferry_transport_read_full(t, buf, 5), 0);
    assert_memory_equal(buf, "certs", 5);
    ferry_transport_free(t);

    /* Without a client certificate: refused, at the latest on the first
     * read (TLS 1.3 clients finish first). */
    fd = dial_raw(r.bound, 0);
    assert_int_equal(ferry_transport_new_tls(fd, none, "127.0.0.1", &t), 0);
    ferry_transport_set_timeout(t, SAFETY_MS);
    hs = ferry_transport_handshake(t);
    if (hs == 0) {
        /* The write may fail already (the server refused us): only the
         * read that follows must. */
        if (ferry_transport_write_full(t, "x", 1) < 0) {
            /* nothing more to check before the read */
        }
        ssize_t n = ferry_transport_read(t, buf, 1);
        assert_true(n < 0);
        assert_int_not_equal(n, -ETIMEDOUT);
    }
    ferry_transport_free(t);
    pthread_mutex_lock(&seen_lock);
    assert_int_equal(seen.opens, 1);
    pthread_mutex_unlock(&seen_lock);
    srv_stop(&r);
    ferry_tls_free(good);
    ferry_tls_free(none);
    ferry_tls_free(scfg);
}

/* The server sends a large reply and closes: the client reads all of it
 * and then a clean end, however full the socket was at the close. */
static int ev_big_then_close(struct ferry_conn *c, const void *data, size_t len, void *arg)
{
    const uint8_t *big = arg;
    (void)data;
    (void)len;

    if (ferry_conn_data(c))
        return 0;
    ferry_conn_set_data(c, c);
    for (size_t off = 0; off < (2u << 20); off += 64 * 1024) {
        int r = ferry_conn_write(c, big + off, 64 * 1024);
        if (r < 0)
            return r;
    }
    ferry_conn_close(c);
    return 0;
}

static void test_server_event_big_reply_then_close(void **state)
{
    const size_t total = 2u << 20;
    uint8_t *big = malloc(total);
    struct ferry_server_opts opts = { .model = FERRY_MODEL_EVENT, .workers = 1 };
    struct ferry_handler h = { .on_data = ev_big_then_close, .arg = big };
    struct ferry_tls *scfg = psk_server(NULL), *ccfg = psk_client(psk_key, "ferry");
    struct ferry_transport *t;
    struct running r;
    int hs;
    (void)state;

    assert_non_null(big);
    fill_random(big, total, 5);
    srv_start(&r, &opts, &h, scfg);
    t = dial_tls(r.bound, ccfg, 8 * 1024, &hs);
    assert_int_equal(hs, 0);
    assert_int_equal(ferry_transport_write_full(t, "go", 2), 0);
    assert_int_equal(ferry_transport_set_nonblocking(t, 1), 0);
    struct flow f = { .t = t, .file_fd = -1, .expect = big, .expect_len = total, .rbuf = 100,
                      .expect_eof = 1 };
    pump(&f, 1);
    ferry_transport_free(t);
    srv_stop(&r);
    free(big);
    ferry_tls_free(ccfg);
    ferry_tls_free(scfg);
}

static void ignore_datagram(const struct ferry_datagram *d, void *arg)
{
    (void)d;
    (void)arg;
}

/*
 * Event model: TLS input left in OpenSSL's buffer when reading is paused
 * must be read after the resume, though epoll has nothing to announce.
 * The handler pauses reading after every chunk and resumes in on_drain.
 * The first byte "B" asks for a 1 MiB reply; while it is being read, a
 * 1000-byte record and sixteen 16 KiB ones arrive and sit in the socket.
 * The next read takes FERRY_READ_CHUNK (256 KiB), which ends 1000 bytes
 * before the end of the last record: those are decrypted and held by
 * OpenSSL, and the socket is empty.  After that pause, only
 * ferry_transport_pending() knows about the last 1000 bytes.  A unix
 * endpoint, so all of it fits in the socket at once.
 */
static int ev_reply_then_echo(struct ferry_conn *c, const void *data, size_t len, void *arg)
{
    const uint8_t *reply = arg;
    const uint8_t *p = data;
    int r = 0;

    if (!ferry_conn_data(c)) {
        ferry_conn_set_data(c, c);
        r = ferry_conn_write(c, reply, 1u << 20);
        p++;
        len--;
    }
    if (r == 0 && len > 0)
        r = ferry_conn_write(c, p, len);
    ferry_conn_pause_read(c);
    ferry_conn_want_drain(c);
    return r;
}

static void ev_resume(struct ferry_conn *c, void *arg)
{
    (void)arg;
    ferry_conn_resume_read(c);
}

static void test_server_event_pending_after_pause(void **state)
{
    const size_t reply_len = 1u << 20, payload_len = 1000 + 256 * 1024;
    uint8_t *expect = malloc(reply_len + payload_len);
    struct ferry_server_opts opts = { .model = FERRY_MODEL_EVENT, .workers = 1,
                                      .write_high_water = 64 * 1024 };
    struct ferry_handler h = { .on_data = ev_reply_then_echo, .on_drain = ev_resume,
                               .arg = expect };
    struct ferry_tls *scfg = psk_server(NULL), *ccfg = psk_client(psk_key, "ferry");
    struct ferry_transport *t;
    struct ferry_addr a;
    struct running r;
    char endpoint[128];
    int fd, sndbuf = 4 << 20;
    uint8_t first;
    (void)state;

    assert_non_null(expect);
    fill_random(expect, reply_len + payload_len, 8);
    pathf(endpoint, sizeof endpoint, "unix:%s/pending.sock", certdir);
    memset(&r, 0, sizeof r);
    assert_int_equal(ferry_server_new(&opts, &r.s), 0);
    assert_non_null(r.s);
    assert_int_equal(ferry_server_listen_tls(r.s, endpoint, FERRY_SOCK_STREAM, &h, scfg, NULL), 0);
    assert_int_equal(pthread_create(&r.thread, NULL, run_thread, &r), 0);

    assert_int_equal(ferry_addr_parse(endpoint, -1, &a), 0);
    fd = ferry_connect(&a, SAFETY_MS);
    assert_true(fd >= 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf), 0);
    assert_int_equal(ferry_transport_new_tls(fd, ccfg, NULL, &t), 0);
    ferry_transport_set_timeout(t, SAFETY_MS);
    assert_int_equal(ferry_transport_handshake(t), 0);
    assert_int_equal(ferry_transport_write_full(t, "B", 1), 0);
    /* A byte of the reply: the server has paused reading by now, until
     * the reply has gone out. */
    assert_int_equal(ferry_transport_read_full(t, &first, 1), 0);
    assert_int_equal(first, expect[0]);
    assert_int_equal(ferry_transport_write_full(t, expect + reply_len, 1000), 0);
    assert_int_equal(ferry_transport_write_full(t, expect + reply_len + 1000, payload_len - 1000), 0);
    assert_int_equal(ferry_transport_set_nonblocking(t, 1), 0);
    struct flow f = { .t = t, .file_fd = -1, .expect = expect + 1,
                      .expect_len = reply_len + payload_len - 1, .rbuf = 64 * 1024 };
    pump(&f, 1);
    ferry_transport_free(t);
    srv_stop(&r);
    free(expect);
    ferry_tls_free(ccfg);
    ferry_tls_free(scfg);
}

static void test_listen_tls_rejects_datagram(void **state)
{
    struct ferry_handler h = { .on_datagram = ignore_datagram };
    struct ferry_tls *scfg = psk_server(NULL);
    struct ferry_server *s = NULL;
    (void)state;

    assert_int_equal(ferry_server_new(NULL, &s), 0);
    assert_non_null(s);
    assert_int_equal(ferry_server_listen_tls(s, "127.0.0.1:0", FERRY_SOCK_DGRAM, &h, scfg, NULL),
                     FERRY_EUNSUPPORTED);
    ferry_server_free(s);
    ferry_tls_free(scfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_psk_handshake_nonblocking, setup),
        cmocka_unit_test_setup(test_psk_handshake_blocking, setup),
        cmocka_unit_test_setup(test_plain_transport_tls_calls, setup),
        cmocka_unit_test_setup(test_config_errors, setup),
        cmocka_unit_test_setup(test_data_integrity_8mib, setup),
        cmocka_unit_test_setup(test_pending_whole_records, setup),
        cmocka_unit_test_setup(test_gather_small_entries, setup),
        cmocka_unit_test_setup(test_wrong_psk, setup),
        cmocka_unit_test_setup(test_unknown_identity, setup),
        cmocka_unit_test_setup(test_lookup_error_aborts, setup),
        cmocka_unit_test_setup(test_not_tls_plaintext_reply, setup),
        cmocka_unit_test_setup(test_not_tls_no_reply_and_early_eof, setup),
        cmocka_unit_test_setup(test_cert_server_verified, setup),
        cmocka_unit_test_setup(test_cert_client_without_name_refused, setup),
        cmocka_unit_test_setup(test_cert_psk_only_client_refused, setup),
        cmocka_unit_test_setup(test_cert_client_certificates, setup),
        cmocka_unit_test_setup(test_cert_and_psk_server, setup),
        cmocka_unit_test_setup(test_eof_after_close_notify, setup),
        cmocka_unit_test_setup(test_eof_without_close_notify, setup),
        cmocka_unit_test_setup(test_truncated_and_altered_records, setup),
        cmocka_unit_test_setup(test_pending_partial_record_at_boundary, setup),
        cmocka_unit_test_setup(test_close_notify_full_socket_shutdown, setup),
        cmocka_unit_test_setup(test_close_notify_full_socket_free, setup),
        cmocka_unit_test_setup(test_sendfile_nonblocking, setup),
        cmocka_unit_test_setup(test_sendfile_blocking, setup),
        cmocka_unit_test_setup(test_server_event_echo, setup),
        cmocka_unit_test_setup(test_server_thread_echo, setup),
        cmocka_unit_test_setup(test_server_thread_event_echo, setup),
        cmocka_unit_test_setup(test_server_event_handshake_timeout, setup),
        cmocka_unit_test_setup(test_server_thread_handshake_timeout, setup),
        cmocka_unit_test_setup(test_server_event_stop_during_handshake, setup),
        cmocka_unit_test_setup(test_server_thread_stop_during_handshake, setup),
        cmocka_unit_test_setup(test_server_event_certificates, setup),
        cmocka_unit_test_setup(test_server_event_big_reply_then_close, setup),
        cmocka_unit_test_setup(test_server_event_pending_after_pause, setup),
        cmocka_unit_test_setup(test_listen_tls_rejects_datagram, setup),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
