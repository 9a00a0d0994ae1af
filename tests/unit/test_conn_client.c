/*
 * test_conn_client.c - connections a client opens on its own loop
 * (ferry_conn_open): opening (and the handlers it refuses), frames
 * exchanged plain and over TLS, a failed TLS handshake, many connections
 * on one loop, and closing (before the loop ran, or by freeing the loop),
 * over real loopback sockets against a libferry server on a thread
 * (fix_conn.h).  Bodies stored into files and recvfile are in
 * test_conn_client_recvfile.c; pausing input in
 * test_conn_client_pause.c.
 *
 * Every test counts the process's descriptors before it starts its server
 * and after it has stopped it: the client side must leave none behind
 * (its transports, the loop's state).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ferry/ferry.h"
#include "fix_conn.h"
#include "fix_tls.h"
#include "unit_util.h"

#define BIG_BODY (3u * 1024u * 1024u + 777u)   /* several read chunks' worth */

static void test_client_exchanges_frames(void **state)
{
    int fds = count_fds();
    struct fix_conn_server srv;
    struct ferry_loop *loop = NULL;
    struct fix_client cl = { .cmd = "echo", .body = (const uint8_t *)"hello, ferry",
                             .body_len = 12 };
    (void)state;

    fix_conn_server_start(&srv, 0);
    assert_int_equal(ferry_loop_new(&loop), 0);
    fix_client_open(loop, &srv, NULL, &cl);
    /* The loop returns by itself once the connection is gone. */
    assert_int_equal(ferry_loop_run(loop), 0);
    fix_check_reply_in_memory(&cl, cl.body, cl.body_len);
    assert_int_equal(cl.spliced, 0);
    free(cl.got);
    ferry_loop_free(loop);
    fix_conn_server_stop(&srv);
    assert_int_equal(count_fds(), fds);
}

static void test_many_connections_one_loop(void **state)
{
    enum { N = 12 };
    int fds = count_fds();
    struct fix_conn_server srv;
    struct ferry_loop *loop = NULL;
    struct fix_client cl[N];
    char bodies[N][32];
    (void)state;

    fix_conn_server_start(&srv, 0);
    assert_int_equal(ferry_loop_new(&loop), 0);
    /* Twice on the same loop: the shared state goes with the last
     * connection and comes back with the next. */
    for (int round = 0; round < 2; round++) {
        uint64_t ids[N];
        for (int i = 0; i < N; i++) {
            snprintf(bodies[i], sizeof bodies[i], "round %d conn %d", round, i);
            cl[i] = (struct fix_client){ .cmd = "echo", .body = (const uint8_t *)bodies[i],
                                         .body_len = strlen(bodies[i]) };
            ids[i] = ferry_conn_id(fix_client_open(loop, &srv, NULL, &cl[i]));
            for (int j = 0; j < i; j++)
                assert_true(ids[j] != ids[i]);
        }
        assert_int_equal(ferry_loop_run(loop), 0);
        for (int i = 0; i < N; i++) {
            fix_check_reply_in_memory(&cl[i], cl[i].body, cl[i].body_len);
            free(cl[i].got);
        }
    }
    ferry_loop_free(loop);
    fix_conn_server_stop(&srv);
    assert_int_equal(count_fds(), fds);
}

static void test_client_over_tls(void **state)
{
    int fds = count_fds();
    struct fix_conn_server srv;
    struct ferry_loop *loop = NULL;
    struct ferry_tls *ctls = fix_psk_client(fix_psk_key, "ferry");
    uint8_t *big = fix_pattern(BIG_BODY);
    struct fix_client small = { .cmd = "echo", .body = (const uint8_t *)"over tls", .body_len = 8 };
    struct fix_client blob = { .cmd = "blob", .blob = BIG_BODY };
    (void)state;

    fix_conn_server_start(&srv, 1);
    assert_int_equal(ferry_loop_new(&loop), 0);
    fix_client_open(loop, &srv, ctls, &small);
    fix_client_open(loop, &srv, ctls, &blob);
    assert_int_equal(ferry_loop_run(loop), 0);
    fix_check_reply_in_memory(&small, small.body, small.body_len);
    fix_check_reply_in_memory(&blob, big, BIG_BODY);
    free(small.got);
    free(blob.got);
    free(big);
    ferry_loop_free(loop);
    fix_conn_server_stop(&srv);
    ferry_tls_free(ctls);
    assert_int_equal(count_fds(), fds);
}

static void test_client_tls_handshake_fails(void **state)
{
    static const uint8_t wrong[32] = { 32, 31, 30 };   /* not the server's */
    int fds = count_fds();
    struct fix_conn_server srv;
    struct ferry_loop *loop = NULL;
    struct ferry_tls *ctls = fix_psk_client(wrong, "ferry");
    struct fix_client cl = { .cmd = "echo", .body = (const uint8_t *)"x", .body_len = 1 };
    (void)state;

    fix_conn_server_start(&srv, 1);
    assert_int_equal(ferry_loop_new(&loop), 0);
    fix_client_open(loop, &srv, ctls, &cl);
    assert_int_equal(ferry_loop_run(loop), 0);
    assert_int_equal(cl.opened, 0);
    assert_int_equal(cl.closed, 1);
    assert_true(cl.close_reason < 0);
    ferry_loop_free(loop);
    fix_conn_server_stop(&srv);
    ferry_tls_free(ctls);
    assert_int_equal(count_fds(), fds);
}

static int dummy_serve(struct ferry_conn *c, void *arg)
{
    (void)c;
    (void)arg;
    return 0;
}

static int dummy_data(struct ferry_conn *c, const void *data, size_t len, void *arg)
{
    (void)c;
    (void)data;
    (void)len;
    (void)arg;
    return 0;
}

static void test_open_refuses_bad_handlers(void **state)
{
    struct ferry_loop *loop = NULL;
    struct ferry_transport *t = NULL;
    struct ferry_conn *c = (struct ferry_conn *)1;
    int sv[2];
    int fds = count_fds();
    (void)state;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(ferry_transport_new_fd(sv[0], &t), 0);
    assert_int_equal(ferry_loop_new(&loop), 0);
    struct ferry_handler serve = { .serve = dummy_serve };
    struct ferry_handler both = { .on_data = dummy_data, .on_frame = fix_client_handler.on_frame };
    struct ferry_handler none = { .on_close = fix_client_handler.on_close };
    assert_int_equal(ferry_conn_open(loop, t, "x", &serve, NULL, &c), -EINVAL);
    assert_null(c);
    assert_int_equal(ferry_conn_open(loop, t, "x", &both, NULL, &c), -EINVAL);
    assert_int_equal(ferry_conn_open(loop, t, "x", &none, NULL, &c), -EINVAL);
    /* t is still ours. */
    ferry_transport_free(t);
    close(sv[1]);
    ferry_loop_free(loop);
    assert_int_equal(count_fds(), fds);
}

/* A loop freed with connections still open closes them (on_close runs)
 * and keeps nothing. */
static void test_loop_freed_with_connections(void **state)
{
    int fds = count_fds();
    struct fix_conn_server srv;
    struct ferry_loop *loop = NULL;
    struct fix_client cl[3] = {
        { .cmd = "echo", .body = (const uint8_t *)"a", .body_len = 1 },
        { .cmd = "echo", .body = (const uint8_t *)"b", .body_len = 1 },
        { .cmd = "echo", .body = (const uint8_t *)"c", .body_len = 1 },
    };
    (void)state;

    fix_conn_server_start(&srv, 0);
    assert_int_equal(ferry_loop_new(&loop), 0);
    for (int i = 0; i < 3; i++)
        fix_client_open(loop, &srv, NULL, &cl[i]);
    ferry_loop_free(loop);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(cl[i].opened, 0);
        assert_int_equal(cl[i].closed, 1);
        assert_int_equal(cl[i].close_reason, FERRY_ECLOSED);
    }
    fix_conn_server_stop(&srv);
    assert_int_equal(count_fds(), fds);
}

/* Closed before the loop ran: what was queued still goes out, the handler
 * never meets the connection, and on_close still reports its end. */
static void test_close_before_start(void **state)
{
    int fds = count_fds();
    struct fix_conn_server srv;
    struct ferry_loop *loop = NULL;
    struct fix_client cl = { .cmd = "echo", .body = (const uint8_t *)"bye", .body_len = 3 };
    struct fix_client tls_cl = { .cmd = "echo", .body = (const uint8_t *)"bye", .body_len = 3 };
    struct ferry_tls *ctls = fix_psk_client(fix_psk_key, "ferry");
    (void)state;

    fix_conn_server_start(&srv, 0);
    assert_int_equal(ferry_loop_new(&loop), 0);
    ferry_conn_close(fix_client_open(loop, &srv, NULL, &cl));
    assert_int_equal(ferry_loop_run(loop), 0);
    assert_int_equal(cl.opened, 0);
    assert_int_equal(cl.closed, 1);
    assert_int_equal(cl.close_reason, 0);
    ferry_loop_free(loop);
    fix_conn_server_stop(&srv);

    fix_conn_server_start(&srv, 1);
    assert_int_equal(ferry_loop_new(&loop), 0);
    ferry_conn_close(fix_client_open(loop, &srv, ctls, &tls_cl));
    assert_int_equal(ferry_loop_run(loop), 0);
    assert_int_equal(tls_cl.opened, 0);
    assert_int_equal(tls_cl.closed, 1);
    ferry_loop_free(loop);
    fix_conn_server_stop(&srv);
    ferry_tls_free(ctls);
    assert_int_equal(count_fds(), fds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_exchanges_frames),
        cmocka_unit_test(test_many_connections_one_loop),
        cmocka_unit_test(test_client_over_tls),
        cmocka_unit_test(test_client_tls_handshake_fails),
        cmocka_unit_test(test_open_refuses_bad_handlers),
        cmocka_unit_test(test_loop_freed_with_connections),
        cmocka_unit_test(test_close_before_start),
    };

    signal(SIGPIPE, SIG_IGN);
    ferry_log_set_level(FERRY_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
