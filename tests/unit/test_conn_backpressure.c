/*
 * test_conn_backpressure.c - output backpressure that pauses reading in
 * the middle of a read, and lifts within the same pass, must not let the
 * next read overtake the input the pause kept.
 *
 * Regression (seen once in CI as frame_echo answering a body's bytes with
 * FERRY_EHDR_TOOBIG): an echo handler's output went over the high-water
 * mark while the read buffer still held later frames, so the rest was kept
 * in c->in; the flush at the end of the pass then drained the queue, which
 * re-enabled reading, and conn_read's loop read the socket again and
 * delivered those bytes ahead of the kept ones.  The parser, at a frame
 * boundary, took body bytes for a header.
 *
 * Deterministic: every frame is in the socket before the loop looks (more
 * than one read's worth, so the loop reads twice), the high-water mark is
 * far below one frame's echo, and the peer's socket has room for the whole
 * echo, so every flush drains the queue at once.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "ferry/ferry.h"
#include "unit_util.h"

#define FRAMES 80
#define BODY_LEN 4000     /* 80 frames: over one 256 KiB read */
#define HIGH_WATER 1024   /* one frame's echo is over it */
#define SOCKBUF (208 * 1024)

static uint8_t body_byte(int seq, size_t i)
{
    return (uint8_t)(seq * 31 + (int)i * 7 + 3);
}

struct echo {
    struct ferry_loop *loop;
    struct ferry_conn *c;
    int errors;
    int closed, close_reason;
    struct ferry_timer *safety;
    int timed_out;
};

/* frame_echo's handler: the header as it came, the body chunk by chunk. */
static int echo_on_frame(struct ferry_conn *c, struct ferry_frame_event *ev, void *arg)
{
    struct echo *e = arg;

    switch (ev->type) {
    case FERRY_FRAME_HEADER: {
        uint32_t n = (uint32_t)ev->raw_header_len;
        uint8_t prefix[4] = { (uint8_t)n, (uint8_t)(n >> 8), (uint8_t)(n >> 16),
                              (uint8_t)(n >> 24) };
        struct iovec iov[2] = { { prefix, 4 }, { (void *)ev->raw_header, n } };

        json_decref(ev->header);
        return ferry_conn_writev(c, iov, 2);
    }
    case FERRY_FRAME_BODY:
        return ferry_conn_write(c, ev->chunk, ev->chunk_len);
    case FERRY_FRAME_ERROR:
        e->errors++;
        return 0;
    default:
        return 0;
    }
}

static void echo_on_close(struct ferry_conn *c, int reason, void *arg)
{
    struct echo *e = arg;
    (void)c;

    e->closed++;
    e->close_reason = reason;
    ferry_timer_cancel(e->safety);
    e->safety = NULL;
}

static void on_safety(struct ferry_loop *loop, struct ferry_timer *t, void *arg)
{
    struct echo *e = arg;

    ferry_timer_cancel(t);
    e->safety = NULL;
    e->timed_out = 1;
    ferry_loop_stop(loop);
}

/* Everything the test's side of the socketpair sends, frame by frame. */
static uint8_t *build_input(size_t *len)
{
    size_t cap = (size_t)FRAMES * (BODY_LEN + 64), off = 0;
    uint8_t *all = malloc(cap);

    assert_non_null(all);
    for (int i = 0; i < FRAMES; i++) {
        uint8_t body[BODY_LEN], *head = NULL;
        size_t head_len = 0;
        json_t *h = json_pack("{s:i, s:i}", "seq", i, "size", BODY_LEN);

        for (size_t k = 0; k < BODY_LEN; k++)
            body[k] = body_byte(i, k);
        assert_non_null(h);
        assert_int_equal(ferry_frame_encode(h, BODY_LEN, NULL, &head, &head_len), 0);
        json_decref(h);
        assert_true(off + head_len + BODY_LEN <= cap);
        memcpy(all + off, head, head_len);
        memcpy(all + off + head_len, body, BODY_LEN);
        off += head_len + BODY_LEN;
        free(head);
    }
    *len = off;
    return all;
}

static void set_bufs(int fd)
{
    int size = SOCKBUF;

    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size), 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size), 0);
}

static void test_backpressure_lifted_mid_read_keeps_order(void **state)
{
    int fds = count_fds();
    struct echo e = { 0 };
    struct ferry_handler h = { .on_frame = echo_on_frame, .on_close = echo_on_close, .arg = &e };
    struct ferry_conn_opts o = { .write_high_water = HIGH_WATER };
    struct ferry_transport *t = NULL;
    size_t in_len = 0, sent = 0, got = 0;
    uint8_t *in = build_input(&in_len), *out = malloc(in_len + 1);
    int sv[2];
    (void)state;

    assert_non_null(out);
    assert_true(in_len > 256 * 1024);   /* more than one read */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    set_bufs(sv[0]);
    set_bufs(sv[1]);
    /* All of it in the socket before the connection reads a byte. */
    while (sent < in_len) {
        ssize_t n = send(sv[1], in + sent, in_len - sent, MSG_DONTWAIT);
        assert_true(n > 0);   /* the buffers hold the whole input */
        sent += (size_t)n;
    }
    assert_int_equal(shutdown(sv[1], SHUT_WR), 0);

    assert_int_equal(ferry_transport_new_fd(sv[0], &t), 0);
    assert_int_equal(ferry_loop_new(&e.loop), 0);
    assert_int_equal(ferry_conn_open(e.loop, t, "peer", &h, &o, &e.c), 0);
    e.safety = ferry_loop_timer(e.loop, FIX_SAFETY_MS, on_safety, &e);
    assert_non_null(e.safety);
    /* Returns once the connection has echoed everything and read the end. */
    assert_int_equal(ferry_loop_run(e.loop), 0);
    assert_int_equal(e.timed_out, 0);
    assert_int_equal(e.errors, 0);
    assert_int_equal(e.closed, 1);
    assert_int_equal(e.close_reason, 0);

    /* The echo is the input, byte for byte, in order. */
    for (;;) {
        ssize_t n = recv(sv[1], out + got, in_len + 1 - got, MSG_DONTWAIT);
        if (n <= 0) {
            assert_true(n == 0 || errno == EAGAIN);
            break;
        }
        got += (size_t)n;
    }
    assert_int_equal(got, in_len);
    assert_memory_equal(out, in, in_len);

    ferry_timer_cancel(e.safety);
    ferry_loop_free(e.loop);
    close(sv[1]);
    free(in);
    free(out);
    assert_int_equal(count_fds(), fds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backpressure_lifted_mid_read_keeps_order),
    };

    signal(SIGPIPE, SIG_IGN);
    ferry_log_set_level(FERRY_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
