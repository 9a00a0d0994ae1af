/*
 * test_server.c - the server framework driven from C, over real loopback
 * sockets: blocking handlers under the thread and fork models, the verify
 * hook, the connection cap, timeouts, pause/resume and backpressure in the
 * event style, datagrams, unix endpoints and graceful stop.
 *
 * The server runs on a thread of this process (for fork, in a child
 * process that exits with ferry_server_run's result).  Nothing sleeps:
 * clients block on their sockets with a receive timeout as a safety net.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ferry/ferry.h"
#include "fix_server.h"
#include "fix_sock.h"
#include "fix_util.h"

/* A TCP client whose receive window is set small before connecting. */
static struct ferry_transport *dial_small_window(const char *bound)
{
    struct ferry_addr a;
    struct timeval tv = { .tv_sec = FIX_SAFETY_MS / 1000 };
    int small = 16 * 1024;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    assert_int_equal(ferry_addr_parse(bound, -1, &a), 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    assert_int_equal(connect(fd, (struct sockaddr *)&a.ss, a.len), 0);
    struct ferry_transport *t = NULL;
    assert_int_equal(ferry_transport_new_fd(fd, &t), 0);
    return t;
}

/* One frame out, one frame back; returns the echoed body (caller frees). */
static char *frame_round_trip(struct ferry_transport *t, const char *body)
{
    json_t *h = json_pack("{s:s}", "cmd", "echo");
    json_t *back = NULL;
    uint64_t size = 0;
    char *out;

    assert_int_equal(ferry_frame_write(t, h, body, strlen(body), NULL), 0);
    json_decref(h);
    assert_int_equal(ferry_frame_read(t, NULL, &back, &size), 0);
    assert_string_equal(json_string_value(json_object_get(back, "cmd")), "echo");
    json_decref(back);
    out = calloc(1, size + 1);
    assert_int_equal(ferry_transport_read_full(t, out, size), 0);
    return out;
}

/* ---- a blocking handler: socketserver's handle() -------------------------- */

static atomic_int served;

static int serve_frames(struct ferry_conn *c, void *arg)
{
    (void)arg;
    atomic_fetch_add(&served, 1);
    for (;;) {
        json_t *h = NULL;
        uint64_t size = 0;
        int r = ferry_conn_read_frame(c, &h, &size);
        if (r < 0)
            return r == FERRY_EEOF ? 0 : r;
        char *body = malloc(size ? size : 1);
        r = ferry_conn_read_full(c, body, size);
        if (r == 0)
            r = ferry_conn_write_frame(c, h, body, size);
        free(body);
        json_decref(h);
        if (r < 0)
            return r;
    }
}

static void blocking_echo(enum ferry_model model)
{
    struct ferry_server_opts opts = { .model = model };
    struct ferry_handler h = { .serve = serve_frames };
    struct fix_server r;
    struct ferry_transport *t1, *t2;
    char *b;

    fix_server_start(&r, &opts, &h, "127.0.0.1:0", FERRY_SOCK_STREAM);
    t1 = fix_dial(r.bound);
    t2 = fix_dial(r.bound);   /* two at once: each has its own thread or process */
    b = frame_round_trip(t2, "second");
    assert_string_equal(b, "second");
    free(b);
    b = frame_round_trip(t1, "first");
    assert_string_equal(b, "first");
    free(b);
    /* An idle client must not hold up a graceful stop: its handler's next
     * read sees end of stream. */
    fix_server_stop(&r);
    char byte;
    assert_int_equal(ferry_transport_read(t1, &byte, 1), 0);
    ferry_transport_free(t1);
    ferry_transport_free(t2);
}

static void test_blocking_thread(void **state) { (void)state; blocking_echo(FERRY_MODEL_THREAD); }
static void test_blocking_fork(void **state) { (void)state; blocking_echo(FERRY_MODEL_FORK); }

static void test_blocking_rejected_under_event(void **state)
{
    struct ferry_handler h = { .serve = serve_frames };
    struct ferry_server *s = NULL;
    (void)state;
    assert_int_equal(ferry_server_new(NULL, &s), 0);
    assert_int_equal(ferry_server_listen(s, "127.0.0.1:0", FERRY_SOCK_STREAM, &h, NULL),
                     FERRY_EUNSUPPORTED);
    ferry_server_free(s);
}

/* ---- handshake timeout for a blocking handler --------------------------------- */

static int serve_needs_auth(struct ferry_conn *c, void *arg)
{
    char buf[8];
    (void)arg;
    ssize_t n = ferry_conn_read(c, buf, sizeof buf);   /* the client never sends */
    assert_int_equal(n, -ETIMEDOUT);
    return (int)n;
}

static void test_blocking_handshake_timeout(void **state)
{
    struct ferry_server_opts opts = { .model = FERRY_MODEL_THREAD, .handshake_timeout_ms = 200 };
    struct ferry_handler h = { .serve = serve_needs_auth };
    struct fix_server r;
    char byte;
    (void)state;

    fix_server_start(&r, &opts, &h, "127.0.0.1:0", FERRY_SOCK_STREAM);
    struct ferry_transport *t = fix_dial(r.bound);
    assert_int_equal(ferry_transport_read(t, &byte, 1), 0);   /* closed by the server */
    ferry_transport_free(t);
    fix_server_stop(&r);
}

/* A peer that sends one byte of a frame and stalls is still cut off when
 * the handshake time is up: the deadline covers the rest of the read. */
static atomic_int stalled_result;

static int serve_read_frame(struct ferry_conn *c, void *arg)
{
    json_t *h = NULL;
    uint64_t size = 0;
    (void)arg;
    int r = ferry_conn_read_frame(c, &h, &size);
    json_decref(h);
    atomic_store(&stalled_result, r);
    return r;
}

static void test_blocking_handshake_deadline_mid_frame(void **state)
{
    struct ferry_server_opts opts = { .model = FERRY_MODEL_THREAD, .handshake_timeout_ms = 300 };
    struct ferry_handler h = { .serve = serve_read_frame };
    struct fix_server r;
    char byte;
    (void)state;

    atomic_store(&stalled_result, 1);
    fix_server_start(&r, &opts, &h, "127.0.0.1:0", FERRY_SOCK_STREAM);
    struct ferry_transport *t = fix_dial(r.bound);
    assert_int_equal(ferry_transport_write_full(t, "\x05", 1), 0);   /* a quarter of a prefix */
    assert_int_equal(ferry_transport_read(t, &byte, 1), 0);            /* closed by the server */
    ferry_transport_free(t);
    fix_server_stop(&r);
    assert_int_equal(atomic_load(&stalled_result), -ETIMEDOUT);
}

/* ---- verify hook and connection cap --------------------------------------------- */

static int deny_all(const struct sockaddr *peer, socklen_t len, void *arg)
{
    (void)peer;
    (void)len;
    atomic_fetch_add((atomic_int *)arg, 1);
    return -1;
}

static void test_verify_hook_refuses(void **state)
{
    static atomic_int asked;
    struct ferry_server_opts opts = { .model = FERRY_MODEL_THREAD, .verify = deny_all,
                                      .verify_arg = &asked };
    struct ferry_handler h = { .serve = serve_frames };
    struct fix_server r;
    char byte;
    (void)state;

    atomic_store(&served, 0);
    fix_server_start(&r, &opts, &h, "127.0.0.1:0", FERRY_SOCK_STREAM);
    struct ferry_transport *t = fix_dial(r.bound);
    ssize_t n = ferry_transport_read(t, &byte, 1);
    assert_true(n == 0 || n == -ECONNRESET);
    ferry_transport_free(t);
    fix_server_stop(&r);
    assert_int_equal(atomic_load(&asked), 1);
    assert_int_equal(atomic_load(&served), 0);   /* the handler never ran */
}

static int on_data_echo(struct ferry_conn *c, const void *data, size_t len, void *arg)
{
    (void)arg;
    return ferry_conn_write(c, data, len);
}

static void test_max_conns(void **state)
{
    struct ferry_server_opts opts = { .max_conns = 1 };
    struct ferry_handler h = { .on_data = on_data_echo };
    struct fix_server r;
    char buf[4];
    (void)state;

    fix_server_start(&r, &opts, &h, "127.0.0.1:0", FERRY_SOCK_STREAM);
    struct ferry_transport *t1 = fix_dial(r.bound);
    assert_int_equal(ferry_transport_write_full(t1, "one", 3), 0);
    assert_int_equal(ferry_transport_read_full(t1, buf, 3), 0);   /* t1 is being served */
    struct ferry_transport *t2 = fix_dial(r.bound);
    ssize_t n = ferry_transport_read(t2, buf, 1);
    assert_true(n == 0 || n == -ECONNRESET);                       /* over the cap: closed */
    assert_int_equal(ferry_transport_write_full(t1, "two", 3), 0);
    assert_int_equal(ferry_transport_read_full(t1, buf, 3), 0);   /* t1 unharmed */
    assert_memory_equal(buf, "two", 3);
    ferry_transport_free(t2);
    ferry_transport_free(t1);
    fix_server_stop(&r);
}

/* Over the cap, the server's refusal (opts.refusal) goes out in the clear
 * before the close, so the client can say why (issue 11, defect 9). */
static void test_max_conns_refusal(void **state)
{
    static const char busy[] = "busy: try later";
    struct ferry_server_opts opts = { .max_conns = 1, .refusal = busy,
                                      .refusal_len = sizeof busy - 1 };
    struct ferry_handler h = { .on_data = on_data_echo };
    struct fix_server r;
    char buf[64];
    size_t got = 0;
    ssize_t n;
    (void)state;

    fix_server_start(&r, &opts, &h, "127.0.0.1:0", FERRY_SOCK_STREAM);
    struct ferry_transport *t1 = fix_dial(r.bound);
    assert_int_equal(ferry_transport_write_full(t1, "one", 3), 0);
    assert_int_equal(ferry_transport_read_full(t1, buf, 3), 0);
    struct ferry_transport *t2 = fix_dial(r.bound);
    while ((n = ferry_transport_read(t2, buf + got, sizeof buf - got)) > 0)
        got += (size_t)n;
    assert_int_equal(got, sizeof busy - 1);
    assert_memory_equal(buf, busy, sizeof busy - 1);
    ferry_transport_free(t2);
    ferry_transport_free(t1);
    fix_server_stop(&r);
}

/* on_auth_timeout: a last word before the close; and a handler that turns
 * the idle timeout off keeps a silent connection past it. */
static void last_word(struct ferry_conn *c, void *arg)
{
    (void)arg;
    assert_int_equal(ferry_conn_write(c, "late", 4), 0);
}

static int open_no_idle(struct ferry_conn *c, void *arg)
{
    (void)arg;
    ferry_conn_set_idle_timeout(c, 0);
    return 0;
}

static void test_auth_timeout_last_word_and_idle_off(void **state)
{
    struct ferry_server_opts opts = { .handshake_timeout_ms = 200 };
    struct ferry_handler h = { .on_data = on_data_echo, .on_auth_timeout = last_word };
    struct ferry_server_opts opts2 = { .idle_timeout_ms = 100 };
    struct ferry_handler h2 = { .on_open = open_no_idle, .on_data = on_data_echo };
    struct fix_server r;
    char buf[8];
    (void)state;

    fix_server_start(&r, &opts, &h, "127.0.0.1:0", FERRY_SOCK_STREAM);
    struct ferry_transport *t = fix_dial(r.bound);
    assert_int_equal(ferry_transport_read_full(t, buf, 4), 0);
    assert_memory_equal(buf, "late", 4);
    assert_int_equal(ferry_transport_read(t, buf, 1), 0);        /* then the close */
    ferry_transport_free(t);
    fix_server_stop(&r);

    fix_server_start(&r, &opts2, &h2, "127.0.0.1:0", FERRY_SOCK_STREAM);
    t = fix_dial(r.bound);
    struct pollfd pfd = { .fd = ferry_transport_fd(t), .events = POLLIN };
    assert_int_equal(poll(&pfd, 1, 400), 0);                     /* still open, silent */
    assert_int_equal(ferry_transport_write_full(t, "ok", 2), 0);
    assert_int_equal(ferry_transport_read_full(t, buf, 2), 0);
    ferry_transport_free(t);
    fix_server_stop(&r);
}

/* The cap on connections waiting to authenticate: "auth" authenticates,
 * anything else is echoed. */
static int on_data_auth_echo(struct ferry_conn *c, const void *data, size_t len, void *arg)
{
    (void)arg;
    if (len == 4 && memcmp(data, "auth", 4) == 0)
        ferry_conn_set_authenticated(c);
    return ferry_conn_write(c, data, len);
}

static int serve_auth_echo(struct ferry_conn *c, void *arg)
{
    char buf[64];
    for (;;) {
        ssize_t n = ferry_conn_read(c, buf, sizeof buf);
        if (n <= 0)
            return (int)n;
        if (on_data_auth_echo(c, buf, (size_t)n, arg) < 0)
            return -EIO;
    }
}

/* Is t served?  Sends "ping" (or "auth") and expects it back; a
 * connection turned away sees end of stream instead. */
static int served_with(struct ferry_transport *t, const char *word)
{
    char buf[4];
    if (ferry_transport_write_full(t, word, 4) < 0)
        return 0;
    return ferry_transport_read_full(t, buf, 4) == 0 && memcmp(buf, word, 4) == 0;
}

static void unauth_cap(enum ferry_model model, int blocking)
{
    struct ferry_server_opts opts = { .model = model, .max_unauthenticated = 2,
                                      .handshake_timeout_ms = 60000 };
    struct ferry_handler h = { 0 };
    struct fix_server r;

    if (blocking)
        h.serve = serve_auth_echo;
    else
        h.on_data = on_data_auth_echo;
    fix_server_start(&r, &opts, &h, "127.0.0.1:0", FERRY_SOCK_STREAM);
    struct ferry_transport *a = fix_dial(r.bound), *b = fix_dial(r.bound);
    assert_true(served_with(a, "ping"));
    assert_true(served_with(b, "ping"));      /* two waiting: the cap */
    struct ferry_transport *c = fix_dial(r.bound);
    assert_false(served_with(c, "ping"));     /* a third is turned away */
    ferry_transport_free(c);

    /* a authenticates: its slot is free at once (under FORK the child
     * tells the parent by closing its end of a pipe). */
    assert_true(served_with(a, "auth"));
    int ok = 0;
    /* The parent sees it a moment later: bounded by time, not by a count
     * of tries, so a loaded machine does not fail it. */
    for (int64_t end = fix_now_ms() + FIX_SAFETY_MS; !ok && fix_now_ms() < end;) {
        struct ferry_transport *d = fix_dial(r.bound);
        ok = served_with(d, "ping");
        ferry_transport_free(d);
    }
    assert_true(ok);
    ferry_transport_free(a);
    ferry_transport_free(b);
    fix_server_stop(&r);
}

static void test_unauth_cap_event(void **state) { (void)state; unauth_cap(FERRY_MODEL_EVENT, 0); }
static void test_unauth_cap_thread(void **state) { (void)state; unauth_cap(FERRY_MODEL_THREAD, 1); }
static void test_unauth_cap_fork(void **state) { (void)state; unauth_cap(FERRY_MODEL_FORK, 0); }

/* ---- event style: idle timeout, pause/resume, backpressure --------------------- */

static void test_idle_timeout(void **state)
{
    struct ferry_server_opts opts = { .idle_timeout_ms = 200 };
    struct ferry_handler h = { .on_data = on_data_echo };
    struct fix_server r;
    char byte;
    (void)state;

    fix_server_start(&r, &opts, &h, "127.0.0.1:0", FERRY_SOCK_STREAM);
    struct ferry_transport *t = fix_dial(r.bound);
    assert_int_equal(ferry_transport_read(t, &byte, 1), 0);
    ferry_transport_free(t);
    fix_server_stop(&r);
}

/* Pauses input after each frame and resumes it from a timer: frames that
 * arrived together must still come out whole and in order. */
struct pause_state {
    int frames;
};

static void resume_cb(struct ferry_loop *loop, struct ferry_timer *t, void *arg)
{
    (void)loop;
    ferry_timer_cancel(t);
    ferry_conn_resume_read(arg);
}

static int on_frame_pausing(struct ferry_conn *c, struct ferry_frame_event *ev, void *arg)
{
    (void)arg;
    if (ev->type == FERRY_FRAME_HEADER) {
        int r = ferry_conn_write_frame(c, ev->header, NULL, 0);
        json_decref(ev->header);
        ferry_conn_pause_read(c);
        ferry_loop_timer(ferry_conn_loop(c), 5, resume_cb, c);
        return r;
    }
    return 0;
}

/* Within one read pass small writes are held and sent together; a write
 * too big to hold sends what is held first.  Whatever the mix, the bytes
 * leave in the order they were written. */
#define MIXED_BIG (3 * 64 * 1024 + 17)
static int on_data_mixed(struct ferry_conn *c, const void *data, size_t len, void *arg)
{
    static uint8_t big[MIXED_BIG];
    (void)data;
    (void)len;
    (void)arg;
    memset(big, 'b', sizeof big);
    if (ferry_conn_write(c, "head:", 5) < 0 || ferry_conn_write(c, "1", 1) < 0 ||
        ferry_conn_write(c, big, sizeof big) < 0 || ferry_conn_write(c, ":2", 2) < 0 ||
        ferry_conn_write(c, ":tail", 5) < 0)
        return -EIO;
    return 0;
}

static void test_writes_in_a_pass_keep_order(void **state)
{
    struct ferry_handler h = { .on_data = on_data_mixed };
    struct fix_server r;
    static uint8_t got[5 + 1 + MIXED_BIG + 2 + 5];
    (void)state;

    fix_server_start(&r, NULL, &h, "127.0.0.1:0", FERRY_SOCK_STREAM);
    struct ferry_transport *t = fix_dial(r.bound);
    assert_int_equal(ferry_transport_write_full(t, "go", 2), 0);
    assert_int_equal(ferry_transport_read_full(t, got, sizeof got), 0);
    assert_memory_equal(got, "head:1", 6);
    for (size_t i = 6; i < 6 + MIXED_BIG; i++)
        assert_int_equal(got[i], 'b');
    assert_memory_equal(got + 6 + MIXED_BIG, ":2:tail", 7);
    ferry_transport_free(t);
    fix_server_stop(&r);
}

static void test_pause_resume_keeps_order(void **state)
{
    struct ferry_handler h = { .on_frame = on_frame_pausing };
    struct fix_server r;
    uint8_t wire[1024];
    size_t used = 0;
    (void)state;

    fix_server_start(&r, NULL, &h, "127.0.0.1:0", FERRY_SOCK_STREAM);
    struct ferry_transport *t = fix_dial(r.bound);
    /* Five frames in one write: the server sees them in one read. */
    for (int i = 0; i < 5; i++) {
        uint8_t *enc = NULL;
        size_t len = 0;
        json_t *hd = json_pack("{s:i}", "n", i);
        assert_int_equal(ferry_frame_encode(hd, 0, NULL, &enc, &len), 0);
        memcpy(wire + used, enc, len);
        used += len;
        free(enc);
        json_decref(hd);
    }
    assert_int_equal(ferry_transport_write_full(t, wire, used), 0);
    for (int i = 0; i < 5; i++) {
        json_t *back = NULL;
        uint64_t size;
        assert_int_equal(ferry_frame_read(t, NULL, &back, &size), 0);
        assert_int_equal(json_integer_value(json_object_get(back, "n")), i);
        json_decref(back);
    }
    ferry_transport_free(t);
    fix_server_stop(&r);
}

/* Answers "go" with 32 MiB at once, far more than the kernel can buffer
 * towards a client with a small receive window, so most of it must queue
 * past the 64 KiB high-water mark set below; counts on_drain calls. */
#define FLOOD_BLOCKS 512
static atomic_int drained, was_blocked;

static int on_data_flood(struct ferry_conn *c, const void *data, size_t len, void *arg)
{
    static uint8_t block[1 << 16];
    int small = 4096;
    (void)data;
    (void)len;
    (void)arg;
    /* A small send buffer too: with the kernel's autotuned one (MiBs) and
     * a client reading as fast as we write, a slow (sanitized) server
     * could see every write go straight out and never queue. */
    assert_int_equal(setsockopt(ferry_transport_fd(ferry_conn_transport(c)), SOL_SOCKET, SO_SNDBUF,
                                &small, sizeof small), 0);
    for (int i = 0; i < FLOOD_BLOCKS; i++) {
        int r = ferry_conn_write(c, block, sizeof block);
        if (r < 0)
            return r;
    }
    atomic_store(&was_blocked, ferry_conn_write_blocked(c));
    return 0;
}

static void on_drain_count(struct ferry_conn *c, void *arg)
{
    (void)c;
    (void)arg;
    atomic_fetch_add(&drained, 1);
}

static void test_backpressure_and_drain(void **state)
{
    struct ferry_server_opts opts = { .write_high_water = 1 << 16 };
    struct ferry_handler h = { .on_data = on_data_flood, .on_drain = on_drain_count };
    struct fix_server r;
    static uint8_t sink[1 << 16];
    size_t got = 0;
    (void)state;

    fix_server_start(&r, &opts, &h, "127.0.0.1:0", FERRY_SOCK_STREAM);
    struct ferry_transport *t = dial_small_window(r.bound);
    assert_int_equal(ferry_transport_write_full(t, "go", 2), 0);
    while (got < (size_t)FLOOD_BLOCKS << 16) {
        ssize_t n = ferry_transport_read(t, sink, sizeof sink);
        assert_true(n > 0);
        got += (size_t)n;
    }
    assert_int_equal(got, (size_t)FLOOD_BLOCKS << 16);
    ferry_transport_free(t);
    fix_server_stop(&r);
    assert_true(atomic_load(&was_blocked));
    assert_true(atomic_load(&drained) >= 1);
}

/* A peer that breaks framing gets one FERRY_FRAME_ERROR event, may be
 * answered, and is then closed. */
static int on_frame_report(struct ferry_conn *c, struct ferry_frame_event *ev, void *arg)
{
    (void)arg;
    if (ev->type == FERRY_FRAME_HEADER)
        json_decref(ev->header);
    if (ev->type != FERRY_FRAME_ERROR)
        return 0;
    json_t *h = json_pack("{s:s}", "error", ferry_err_name(ev->error));
    int r = ferry_conn_write_frame(c, h, NULL, 0);
    json_decref(h);
    return r;
}

static void test_frame_error_answered_then_closed(void **state)
{
    struct ferry_handler h = { .on_frame = on_frame_report };
    struct fix_server r;
    const uint8_t huge[4] = { 0xff, 0xff, 0xff, 0xff };
    json_t *back = NULL;
    uint64_t size;
    char byte;
    (void)state;

    fix_server_start(&r, NULL, &h, "127.0.0.1:0", FERRY_SOCK_STREAM);
    struct ferry_transport *t = fix_dial(r.bound);
    assert_int_equal(ferry_transport_write_full(t, huge, sizeof huge), 0);
    assert_int_equal(ferry_frame_read(t, NULL, &back, &size), 0);
    assert_string_equal(json_string_value(json_object_get(back, "error")), "FERRY_EHDR_TOOBIG");
    json_decref(back);
    assert_int_equal(ferry_transport_read(t, &byte, 1), 0);
    ferry_transport_free(t);
    fix_server_stop(&r);
}

/* ---- datagrams and unix endpoints ------------------------------------------------ */

static void on_datagram_echo(const struct ferry_datagram *d, void *arg)
{
    (void)arg;
    ferry_datagram_reply(d, d->data, d->len);
}

static void datagram_round_trip(enum ferry_model model)
{
    struct ferry_server_opts opts = { .model = model };
    struct ferry_handler h = { .on_datagram = on_datagram_echo };
    struct ferry_addr a;
    struct fix_server r;
    struct timeval tv = { .tv_sec = FIX_SAFETY_MS / 1000 };
    char buf[16] = { 0 };

    fix_server_start(&r, &opts, &h, "127.0.0.1:0", FERRY_SOCK_DGRAM);
    assert_int_equal(ferry_addr_parse(r.bound, -1, &a), 0);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    assert_int_equal(connect(fd, (struct sockaddr *)&a.ss, a.len), 0);
    assert_int_equal(send(fd, "ping", 4, 0), 4);
    assert_int_equal(recv(fd, buf, sizeof buf, 0), 4);
    assert_string_equal(buf, "ping");
    close(fd);
    fix_server_stop(&r);
}

static void test_datagram_event(void **state) { (void)state; datagram_round_trip(FERRY_MODEL_EVENT); }
static void test_datagram_thread(void **state) { (void)state; datagram_round_trip(FERRY_MODEL_THREAD); }

static void test_unix_endpoint_and_stale_socket(void **state)
{
    struct ferry_handler h = { .on_data = on_data_echo };
    struct fix_server r;
    char path[64], endpoint[80], buf[4];
    struct stat st;
    (void)state;

    snprintf(path, sizeof path, "/tmp/ferry-test-%d.sock", (int)getpid());
    snprintf(endpoint, sizeof endpoint, "unix:%s", path);
    unlink(path);
    /* A socket file nobody listens on, as a crashed server leaves behind. */
    struct ferry_addr a;
    assert_int_equal(ferry_addr_parse(endpoint, -1, &a), 0);
    int stale = ferry_listen(&a, FERRY_SOCK_STREAM, NULL);
    assert_true(stale >= 0);
    close(stale);
    assert_int_equal(stat(path, &st), 0);

    fix_server_start(&r, NULL, &h, endpoint, FERRY_SOCK_STREAM);
    struct ferry_transport *t = fix_dial(endpoint);
    assert_int_equal(ferry_transport_write_full(t, "abc", 3), 0);
    assert_int_equal(ferry_transport_read_full(t, buf, 3), 0);
    assert_memory_equal(buf, "abc", 3);
    ferry_transport_free(t);
    fix_server_stop(&r);
    assert_int_equal(stat(path, &st), -1);   /* the server removed its socket file */
}

static void on_datagram_echo(const struct ferry_datagram *d, void *arg);

static void *run_server(void *arg)
{
    return (void *)(intptr_t)ferry_server_run(arg);
}

/* ferry_server_listen_fd adopts a socket someone else bound and listened
 * on (systemd's socket activation): it is made non-blocking and
 * close-on-exec, served, and closed by ferry_server_free. */
static void test_listen_fd_adopts_a_bound_socket(void **state)
{
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof sin;
    struct ferry_handler h = { .on_data = on_data_echo };
    struct ferry_server *s = NULL;
    char bound[FERRY_ADDRSTRLEN], want[FERRY_ADDRSTRLEN], buf[3];
    pthread_t thread;
    void *result;
    (void)state;

    /* Blocking and inheritable, as systemd passes it by default. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(listen(fd, 8), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    snprintf(want, sizeof want, "127.0.0.1:%u", ntohs(sin.sin_port));

    assert_int_equal(ferry_server_new(NULL, &s), 0);
    assert_int_equal(ferry_server_listen_fd(s, fd, &h, NULL, bound), 0);
    assert_string_equal(bound, want);
    assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    assert_int_equal(pthread_create(&thread, NULL, run_server, s), 0);

    struct ferry_transport *t = fix_dial(bound);
    assert_int_equal(ferry_transport_write_full(t, "abc", 3), 0);
    assert_int_equal(ferry_transport_read_full(t, buf, 3), 0);
    assert_memory_equal(buf, "abc", 3);
    ferry_transport_free(t);

    ferry_server_stop(s);
    assert_int_equal(pthread_join(thread, &result), 0);
    assert_int_equal((intptr_t)result, 0);
    ferry_server_free(s);
    assert_int_equal(fcntl(fd, F_GETFD), -1);   /* the server closed it */
    assert_int_equal(errno, EBADF);
}

/* A datagram socket (systemd's ListenDatagram=) is adopted as well. */
static void test_listen_fd_adopts_a_datagram_socket(void **state)
{
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof sin;
    struct ferry_handler h = { .on_datagram = on_datagram_echo };
    struct timeval tv = { .tv_sec = FIX_SAFETY_MS / 1000 };
    struct ferry_server *s = NULL;
    char buf[16] = { 0 };
    pthread_t thread;
    void *result;
    (void)state;

    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    assert_int_equal(ferry_server_new(NULL, &s), 0);
    struct ferry_handler stream = { .on_data = on_data_echo };
    assert_int_equal(ferry_server_listen_fd(s, fd, &stream, NULL, NULL), -EINVAL);   /* no .on_datagram */
    assert_int_equal(ferry_server_listen_fd(s, fd, &h, NULL, NULL), 0);
    assert_int_equal(pthread_create(&thread, NULL, run_server, s), 0);

    int c = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    assert_int_equal(connect(c, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(send(c, "ping", 4, 0), 4);
    assert_int_equal(recv(c, buf, sizeof buf, 0), 4);
    assert_string_equal(buf, "ping");
    close(c);

    ferry_server_stop(s);
    assert_int_equal(pthread_join(thread, &result), 0);
    assert_int_equal((intptr_t)result, 0);
    ferry_server_free(s);
}

/* What cannot be served is refused, and the caller keeps the fd. */
static void test_listen_fd_refuses_what_it_cannot_serve(void **state)
{
    struct ferry_handler h = { .on_data = on_data_echo };
    struct ferry_server *s = NULL;
    int p[2], sock;
    (void)state;

    assert_int_equal(ferry_server_new(NULL, &s), 0);
    assert_int_equal(pipe(p), 0);
    assert_int_equal(ferry_server_listen_fd(s, p[0], &h, NULL, NULL), -ENOTSOCK);
    sock = socket(AF_INET, SOCK_STREAM, 0);   /* never listen()ed on */
    assert_true(sock >= 0);
    assert_int_equal(ferry_server_listen_fd(s, sock, &h, NULL, NULL), -EINVAL);
    assert_int_equal(ferry_server_listen_fd(s, -1, &h, NULL, NULL), -EBADF);
    ferry_server_free(s);
    /* Still open: the failures left them to us. */
    assert_true(fcntl(p[0], F_GETFD) >= 0);
    assert_true(fcntl(sock, F_GETFD) >= 0);
    close(p[0]);
    close(p[1]);
    close(sock);
}

static void test_model_names(void **state)
{
    enum ferry_model m;
    (void)state;
    assert_int_equal(ferry_model_parse("fork", &m), 0);
    assert_int_equal(m, FERRY_MODEL_FORK);
    assert_string_equal(ferry_model_name(FERRY_MODEL_THREAD), "thread");
    assert_int_equal(ferry_model_parse("threads", &m), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blocking_thread),
        cmocka_unit_test(test_listen_fd_adopts_a_bound_socket),
        cmocka_unit_test(test_listen_fd_adopts_a_datagram_socket),
        cmocka_unit_test(test_listen_fd_refuses_what_it_cannot_serve),
        cmocka_unit_test(test_blocking_fork),
        cmocka_unit_test(test_blocking_rejected_under_event),
        cmocka_unit_test(test_blocking_handshake_timeout),
        cmocka_unit_test(test_blocking_handshake_deadline_mid_frame),
        cmocka_unit_test(test_verify_hook_refuses),
        cmocka_unit_test(test_max_conns),
        cmocka_unit_test(test_max_conns_refusal),
        cmocka_unit_test(test_auth_timeout_last_word_and_idle_off),
        cmocka_unit_test(test_unauth_cap_event),
        cmocka_unit_test(test_unauth_cap_thread),
        cmocka_unit_test(test_unauth_cap_fork),
        cmocka_unit_test(test_idle_timeout),
        cmocka_unit_test(test_pause_resume_keeps_order),
        cmocka_unit_test(test_writes_in_a_pass_keep_order),
        cmocka_unit_test(test_backpressure_and_drain),
        cmocka_unit_test(test_frame_error_answered_then_closed),
        cmocka_unit_test(test_datagram_event),
        cmocka_unit_test(test_datagram_thread),
        cmocka_unit_test(test_unix_endpoint_and_stale_socket),
        cmocka_unit_test(test_model_names),
    };
    ferry_log_set_level(FERRY_LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
