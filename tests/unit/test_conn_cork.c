/*
 * test_conn_cork.c - ferry_conn_cork / ferry_conn_uncork: writes a handler
 * makes outside the connection's own events (here a deferred call, as
 * ferryd's child-exit callback) are held while corked and leave at the
 * uncork, in order; a close or a full queue in between still ends as it
 * would without the cork (the close's flush and linger, on_drain).
 *
 * Deterministic: a socketpair whose peer end the test reads without the
 * loop; "held" is the queue's length (ferry_conn_pending) and an empty peer
 * socket, "sent" the reverse.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ferry/ferry.h"
#include "unit_util.h"

enum step_kind { HOLD_THEN_SEND, CLOSE_WHILE_CORKED, OVER_HIGH_WATER };

struct corked {
    struct ferry_loop *loop;
    struct ferry_conn *c;
    int peer;                 /* the test's end of the socketpair */
    enum step_kind kind;
    size_t held, after;       /* ferry_conn_pending while corked, after uncork */
    ssize_t peer_saw;         /* what the peer could read while corked */
    int drains, closed, close_reason;
    struct ferry_timer *safety;
    int timed_out;
};

static const char msg1[] = "first message;";
static const char msg2[] = "second message.";

static int on_frame(struct ferry_conn *c, struct ferry_frame_event *ev, void *arg)
{
    (void)c;
    (void)arg;
    if (ev->type == FERRY_FRAME_HEADER)
        json_decref(ev->header);
    return 0;
}

static void on_drain(struct ferry_conn *c, void *arg)
{
    struct corked *k = arg;

    k->drains++;
    ferry_conn_close(c);
}

static void on_close(struct ferry_conn *c, int reason, void *arg)
{
    struct corked *k = arg;
    (void)c;

    k->closed++;
    k->close_reason = reason;
    ferry_timer_cancel(k->safety);
    k->safety = NULL;
}

static void on_safety(struct ferry_loop *loop, struct ferry_timer *t, void *arg)
{
    struct corked *k = arg;

    ferry_timer_cancel(t);
    k->safety = NULL;
    k->timed_out = 1;
    ferry_loop_stop(loop);
}

/* The handler's work on an event that is not the connection's own. */
static void act(struct ferry_loop *loop, void *arg)
{
    struct corked *k = arg;
    char probe[8];
    (void)loop;

    ferry_conn_cork(k->c);
    assert_int_equal(ferry_conn_write(k->c, msg1, strlen(msg1)), 0);
    assert_int_equal(ferry_conn_write(k->c, msg2, strlen(msg2)), 0);
    k->held = ferry_conn_pending(k->c);
    k->peer_saw = recv(k->peer, probe, sizeof probe, MSG_DONTWAIT | MSG_PEEK);
    if (k->kind == OVER_HIGH_WATER) {
        static char big[4096];
        memset(big, 'x', sizeof big);
        assert_int_equal(ferry_conn_write(k->c, big, sizeof big), 0);
        assert_true(ferry_conn_write_blocked(k->c));
    }
    if (k->kind == CLOSE_WHILE_CORKED)
        ferry_conn_close(k->c);
    ferry_conn_uncork(k->c);
    k->after = ferry_conn_pending(k->c);
    if (k->kind == HOLD_THEN_SEND)
        ferry_conn_close(k->c);
}

static void run(struct corked *k, enum step_kind kind, size_t high_water)
{
    struct ferry_handler h = { .on_frame = on_frame, .on_drain = on_drain, .on_close = on_close,
                               .arg = k };
    struct ferry_conn_opts o = { .write_high_water = high_water };
    struct ferry_transport *t = NULL;
    int sv[2];

    memset(k, 0, sizeof *k);
    k->kind = kind;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    k->peer = sv[1];
    assert_int_equal(ferry_transport_new_fd(sv[0], &t), 0);
    assert_int_equal(ferry_loop_new(&k->loop), 0);
    assert_int_equal(ferry_conn_open(k->loop, t, "peer", &h, &o, &k->c), 0);
    assert_int_equal(ferry_loop_defer(k->loop, act, k), 0);
    k->safety = ferry_loop_timer(k->loop, FIX_SAFETY_MS, on_safety, k);
    assert_non_null(k->safety);
    /* The connection lingers after its close until the peer's end: give it
     * one once everything has been read (see read_all). */
}

/* Read what the connection sent until its end of stream. */
static size_t read_all(struct corked *k, char *buf, size_t cap)
{
    size_t got = 0;

    for (;;) {
        ssize_t n = recv(k->peer, buf + got, cap - got, MSG_DONTWAIT);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        assert_true(n == 0 || errno == EAGAIN);
        break;
    }
    return got;
}

static void finish(struct corked *k)
{
    ferry_timer_cancel(k->safety);
    ferry_loop_free(k->loop);
    close(k->peer);
}

static void test_cork_holds_until_uncork(void **state)
{
    int fds = count_fds();
    struct corked k;
    char buf[256];
    (void)state;

    run(&k, HOLD_THEN_SEND, 0);
    /* Shut the peer's side first: the close's linger then ends at once. */
    assert_int_equal(shutdown(k.peer, SHUT_WR), 0);
    assert_int_equal(ferry_loop_run(k.loop), 0);
    assert_int_equal(k.timed_out, 0);
    /* Held: queued, nothing at the peer; then sent, nothing queued. */
    assert_int_equal(k.held, strlen(msg1) + strlen(msg2));
    assert_int_equal(k.peer_saw, -1);
    assert_int_equal(k.after, 0);
    size_t got = read_all(&k, buf, sizeof buf);
    assert_int_equal(got, strlen(msg1) + strlen(msg2));
    assert_memory_equal(buf, msg1, strlen(msg1));
    assert_memory_equal(buf + strlen(msg1), msg2, strlen(msg2));
    assert_int_equal(k.closed, 1);
    finish(&k);
    assert_int_equal(count_fds(), fds);
}

static void test_close_while_corked_flushes_then_closes(void **state)
{
    int fds = count_fds();
    struct corked k;
    char buf[256];
    (void)state;

    run(&k, CLOSE_WHILE_CORKED, 0);
    assert_int_equal(shutdown(k.peer, SHUT_WR), 0);
    assert_int_equal(ferry_loop_run(k.loop), 0);
    assert_int_equal(k.timed_out, 0);
    assert_int_equal(k.held, strlen(msg1) + strlen(msg2));
    assert_int_equal(k.after, 0);
    /* Everything written before the close arrived, then the end. */
    size_t got = read_all(&k, buf, sizeof buf);
    assert_int_equal(got, strlen(msg1) + strlen(msg2));
    assert_memory_equal(buf + strlen(msg1), msg2, strlen(msg2));
    assert_int_equal(recv(k.peer, buf, sizeof buf, MSG_DONTWAIT), 0);
    assert_int_equal(k.closed, 1);
    assert_int_equal(k.close_reason, 0);
    finish(&k);
    assert_int_equal(count_fds(), fds);
}

static void test_uncork_over_high_water_calls_on_drain(void **state)
{
    int fds = count_fds();
    struct corked k;
    static char buf[8192];
    (void)state;

    /* Held writes pass the high-water mark (the handler is told to stop);
     * the uncork sends them all, and on_drain must still come. */
    run(&k, OVER_HIGH_WATER, 1024);
    assert_int_equal(shutdown(k.peer, SHUT_WR), 0);
    assert_int_equal(ferry_loop_run(k.loop), 0);
    assert_int_equal(k.timed_out, 0);
    assert_int_equal(k.after, 0);
    assert_int_equal(k.drains, 1);   /* on_drain closes the connection */
    assert_int_equal(read_all(&k, buf, sizeof buf), strlen(msg1) + strlen(msg2) + 4096);
    assert_int_equal(k.closed, 1);
    finish(&k);
    assert_int_equal(count_fds(), fds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cork_holds_until_uncork),
        cmocka_unit_test(test_close_while_corked_flushes_then_closes),
        cmocka_unit_test(test_uncork_over_high_water_calls_on_drain),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
