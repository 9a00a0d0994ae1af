/*
 * test_tls_server.c - TLS listeners (server.h) over loopback: echo under
 * the event and thread models, handshake timeouts, stop during a
 * handshake, client certificates through the listener, a large reply then
 * close, input left in TLS's buffer across a pause, and the refusal of a
 * TLS datagram endpoint.  The server runs on a thread (fix_server).
 */
#include "fix_util.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ferry/ferry.h"
#include "fix_flow.h"
#include "fix_io.h"
#include "fix_pki.h"
#include "fix_server.h"
#include "fix_sock.h"
#include "fix_tls.h"

/* ---- servers ------------------------------------------------------------------------------- */

static const char frame_hello[] = FIX_FRAME_HELLO;
static const char tls_reply[] = FIX_TLS_REPLY;

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


static void garbage_client(const char *bound, const void *bytes, size_t len)
{
    char buf[256];
    int fd = fix_dial_raw(bound, 0), err;

    assert_int_equal(send(fd, bytes, len, MSG_NOSIGNAL), (ssize_t)len);
    size_t n = fix_read_to_eof(fd, buf, sizeof buf, &err);
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
    struct ferry_tls_opts so = { .role = FERRY_TLS_SERVER, .psk_lookup = fix_psk_lookup,
                                 .plaintext_reply = tls_reply,
                                 .plaintext_reply_len = sizeof tls_reply - 1 };
    struct ferry_tls *scfg = fix_tls_cfg_new(&so);
    struct ferry_tls *ccfg = fix_psk_client(fix_psk_key, "ferry");
    struct ferry_tls *bad = fix_psk_client(fix_wrong_key, "ferry");
    struct ferry_transport *t;
    struct fix_server r;
    uint8_t *data = malloc(total);
    char buf[64];
    int hs;

    assert_non_null(data);
    fix_fill_random(data, total, 31337);
    seen_reset();
    fix_server_start_tls(&r, &opts, h, "127.0.0.1:0", scfg);

    /* Clients that are not TLS get the reply and the end... */
    garbage_client(r.bound, frame_hello, sizeof frame_hello - 1);
    garbage_client(r.bound, "GET / HTTP/1.0\r\n\r\n", 18);
    /* ...one with the wrong key fails its handshake... */
    t = fix_dial_tls(r.bound, bad, 0, &hs);
    if (hs == 0) {   /* (cannot happen: the binder is checked before the server's Finished) */
        ssize_t n = ferry_transport_read(t, buf, 1);
        fail_msg("wrong key: handshake passed, read %zd", n);
    }
    assert_true(hs == FERRY_ETLS || hs == FERRY_EEOF || hs == -ECONNRESET);
    ferry_transport_free(t);

    /* ...and the server goes on serving. */
    t = fix_dial_tls(r.bound, ccfg, 16 * 1024, &hs);
    if (hs != 0)
        fail_msg("handshake: %s '%s'", ferry_err_name(hs), ferry_transport_error(t));
    fix_check_psk_info(t);
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
    struct fix_flow f = { .t = t, .out = data, .out_len = total, .file_fd = -1,
                      .shut_when_done = 1, .expect = data, .expect_len = total, .rbuf = 1000,
                      .expect_eof = 1 };
    fix_pump(&f, 1);
    /* (f.pending_eagain can be non-zero here: see
     * test_pending_partial_record_at_boundary.) */
    ferry_transport_free(t);
    fix_server_stop(&r);
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
    struct ferry_tls *scfg = fix_psk_server(NULL), *ccfg = fix_psk_client(fix_psk_key, "ferry");
    struct ferry_transport *t;
    struct fix_server r;
    char buf[64];
    int hs, err;

    fix_server_start_tls(&r, &opts, h, "127.0.0.1:0", scfg);
    for (int partial = 0; partial < 2; partial++) {
        int fd = fix_dial_raw(r.bound, 0);
        int64_t t0 = fix_now_ms();
        if (partial)   /* a handshake record header, and nothing more */
            assert_int_equal(send(fd, "\x16\x03\x01\x02\x00", 5, MSG_NOSIGNAL), 5);
        size_t n = fix_read_to_eof(fd, buf, sizeof buf, &err);
        int64_t took = fix_now_ms() - t0;
        assert_int_equal(n, 0);
        assert_true(err == 0 || err == -ECONNRESET);
        assert_true(took >= 250 && took < FIX_SAFETY_MS);
        close(fd);
    }
    t = fix_dial_tls(r.bound, ccfg, 0, &hs);
    assert_int_equal(hs, 0);
    assert_int_equal(ferry_transport_write_full(t, "again", 5), 0);
    assert_int_equal(ferry_transport_read_full(t, buf, 5), 0);
    assert_memory_equal(buf, "again", 5);
    ferry_transport_free(t);
    fix_server_stop(&r);
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
    /* A grace far above the bound below, so a loaded machine cannot blur
     * "did not wait for the grace" into "waited for it". */
    struct ferry_server_opts opts = { .model = model, .workers = 1, .shutdown_grace_ms = 10000 };
    struct ferry_tls *scfg = fix_psk_server(NULL), *ccfg = fix_psk_client(fix_psk_key, "ferry");
    struct ferry_transport *t;
    struct fix_server r;
    char buf[8];
    int hs, err;

    fix_server_start_tls(&r, &opts, h, "127.0.0.1:0", scfg);
    int silent = fix_dial_raw(r.bound, 0);
    assert_int_equal(send(silent, "\x16", 1, MSG_NOSIGNAL), 1);   /* a TLS record begins... */
    /* A client served after it: the silent one was accepted before. */
    t = fix_dial_tls(r.bound, ccfg, 0, &hs);
    assert_int_equal(hs, 0);
    assert_int_equal(ferry_transport_write_full(t, "x", 1), 0);
    assert_int_equal(ferry_transport_read_full(t, buf, 1), 0);
    ferry_transport_free(t);

    int64_t t0 = fix_now_ms();
    ferry_server_stop(r.s);
    size_t n = fix_read_to_eof(silent, buf, sizeof buf, &err);
    pthread_join(r.thread, NULL);
    int64_t took = fix_now_ms() - t0;
    assert_int_equal(r.result, 0);
    ferry_server_free(r.s);
    close(silent);
    assert_int_equal(n, 0);
    assert_true(err == 0 || err == -ECONNRESET);
    print_message("%s: stop took %lld ms\n", ferry_model_name(model), (long long)took);
    if (took >= 5000)
        fail_msg("the stop waited %lld ms (the grace is 10000) for a handshake", (long long)took);
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
    struct ferry_tls *scfg = fix_cert_server(fix_pki.ca_pem, NULL, 0);
    struct ferry_tls *good = fix_ca_client(fix_pki.client_pem, fix_pki.client_key);
    struct ferry_tls *none = fix_ca_client(NULL, NULL);
    struct ferry_transport *t;
    struct ferry_tls_info info;
    struct fix_server r;
    char buf[8];
    int fd;
    (void)state;

    seen_reset();
    fix_server_start_tls(&r, &opts, &h, "127.0.0.1:0", scfg);
    fd = fix_dial_raw(r.bound, 0);
    assert_int_equal(ferry_transport_new_tls(fd, good, "127.0.0.1", &t), 0);
    ferry_transport_set_timeout(t, FIX_SAFETY_MS);
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
    fd = fix_dial_raw(r.bound, 0);
    assert_int_equal(ferry_transport_new_tls(fd, none, "127.0.0.1", &t), 0);
    ferry_transport_set_timeout(t, FIX_SAFETY_MS);
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
    fix_server_stop(&r);
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
    struct ferry_tls *scfg = fix_psk_server(NULL), *ccfg = fix_psk_client(fix_psk_key, "ferry");
    struct ferry_transport *t;
    struct fix_server r;
    int hs;
    (void)state;

    assert_non_null(big);
    fix_fill_random(big, total, 5);
    fix_server_start_tls(&r, &opts, &h, "127.0.0.1:0", scfg);
    t = fix_dial_tls(r.bound, ccfg, 8 * 1024, &hs);
    assert_int_equal(hs, 0);
    assert_int_equal(ferry_transport_write_full(t, "go", 2), 0);
    assert_int_equal(ferry_transport_set_nonblocking(t, 1), 0);
    struct fix_flow f = { .t = t, .file_fd = -1, .expect = big, .expect_len = total, .rbuf = 100,
                      .expect_eof = 1 };
    fix_pump(&f, 1);
    ferry_transport_free(t);
    fix_server_stop(&r);
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
    struct ferry_tls *scfg = fix_psk_server(NULL), *ccfg = fix_psk_client(fix_psk_key, "ferry");
    struct ferry_transport *t;
    struct ferry_addr a;
    struct fix_server r;
    char endpoint[128];
    int fd, sndbuf = 4 << 20;
    uint8_t first;
    (void)state;

    assert_non_null(expect);
    fix_fill_random(expect, reply_len + payload_len, 8);
    pathf(endpoint, sizeof endpoint, "unix:%s/pending.sock", fix_pki.dir);
    fix_server_start_tls(&r, &opts, &h, endpoint, scfg);

    assert_int_equal(ferry_addr_parse(endpoint, -1, &a), 0);
    fd = ferry_connect(&a, FIX_SAFETY_MS);
    assert_true(fd >= 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf), 0);
    assert_int_equal(ferry_transport_new_tls(fd, ccfg, NULL, &t), 0);
    ferry_transport_set_timeout(t, FIX_SAFETY_MS);
    assert_int_equal(ferry_transport_handshake(t), 0);
    assert_int_equal(ferry_transport_write_full(t, "B", 1), 0);
    /* A byte of the reply: the server has paused reading by now, until
     * the reply has gone out. */
    assert_int_equal(ferry_transport_read_full(t, &first, 1), 0);
    assert_int_equal(first, expect[0]);
    assert_int_equal(ferry_transport_write_full(t, expect + reply_len, 1000), 0);
    assert_int_equal(ferry_transport_write_full(t, expect + reply_len + 1000, payload_len - 1000), 0);
    assert_int_equal(ferry_transport_set_nonblocking(t, 1), 0);
    struct fix_flow f = { .t = t, .file_fd = -1, .expect = expect + 1,
                      .expect_len = reply_len + payload_len - 1, .rbuf = 64 * 1024 };
    fix_pump(&f, 1);
    ferry_transport_free(t);
    fix_server_stop(&r);
    free(expect);
    ferry_tls_free(ccfg);
    ferry_tls_free(scfg);
}

static void test_listen_tls_rejects_datagram(void **state)
{
    struct ferry_handler h = { .on_datagram = ignore_datagram };
    struct ferry_tls *scfg = fix_psk_server(NULL);
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
        cmocka_unit_test_setup(test_server_event_echo, fix_sigpipe_default),
        cmocka_unit_test_setup(test_server_thread_echo, fix_sigpipe_default),
        cmocka_unit_test_setup(test_server_thread_event_echo, fix_sigpipe_default),
        cmocka_unit_test_setup(test_server_event_handshake_timeout, fix_sigpipe_default),
        cmocka_unit_test_setup(test_server_thread_handshake_timeout, fix_sigpipe_default),
        cmocka_unit_test_setup(test_server_event_stop_during_handshake, fix_sigpipe_default),
        cmocka_unit_test_setup(test_server_thread_stop_during_handshake, fix_sigpipe_default),
        cmocka_unit_test_setup(test_server_event_certificates, fix_sigpipe_default),
        cmocka_unit_test_setup(test_server_event_big_reply_then_close, fix_sigpipe_default),
        cmocka_unit_test_setup(test_server_event_pending_after_pause, fix_sigpipe_default),
        cmocka_unit_test_setup(test_listen_tls_rejects_datagram, fix_sigpipe_default),
    };
    return cmocka_run_group_tests(tests, fix_pki_setup, fix_pki_teardown);
}
