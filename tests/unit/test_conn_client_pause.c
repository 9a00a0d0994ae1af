/*
 * test_conn_client_pause.c - pausing and resuming input on a client
 * connection (ferry_conn_pause_read, ferry_conn_resume_read) in the
 * middle of a burst of frames: the input already read when the handler
 * paused is kept, and once reading resumes it is delivered before any
 * byte read from the socket since.  Every frame arrives exactly once, in
 * order, with its body intact.
 *
 * Regression: resume_read only defers the delivery of what a pause kept,
 * and the socket's readiness can be dispatched before that deferred call
 * (a resume from a deferred call lands there: the delivery is deferred to
 * the next turn, whose readiness comes first).  conn_read then delivered
 * the new bytes ahead of the kept ones, which reordered frames, or, paused
 * inside a frame, fed the next frame's bytes to the body and broke the
 * framing.
 *
 * Also: a pause at the HEADER of a frame without a body that ends the
 * input owes the handler that frame's END, delivered on resume although
 * no input is kept and none comes (the client's slot met it when a
 * pipelined command's exit arrived with the one before).
 *
 * The peer is the other end of a unix socketpair, written with blocking
 * frame writes from the test's own thread: the bursts are in the socket
 * before the loop looks, so nothing here depends on timing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ferry/ferry.h"
#include "unit_util.h"

#define FIRST_BURST 10   /* frames in the socket before the loop runs */
#define SECOND_BURST 10  /* frames the peer writes while the connection is paused */
#define TOTAL (FIRST_BURST + SECOND_BURST)
#define BODY_LEN 100
#define PAUSE_AT 3       /* the frame whose event pauses reading */

static uint8_t body_byte(int seq, size_t i)
{
    return (uint8_t)(seq * 37 + (int)i * 3 + 1);
}

/* One frame {"seq": seq} with its BODY_LEN bytes, written by the peer. */
static void peer_write_frame(struct ferry_transport *peer, int seq)
{
    uint8_t body[BODY_LEN];
    json_t *h = json_pack("{s:i}", "seq", seq);

    assert_non_null(h);
    for (size_t i = 0; i < BODY_LEN; i++)
        body[i] = body_byte(seq, i);
    assert_int_equal(ferry_frame_write(peer, h, body, sizeof body, NULL), 0);
    json_decref(h);
}

struct seq_client {
    struct ferry_loop *loop;
    struct ferry_conn *c;
    struct ferry_transport *peer;
    int peer_fd;
    enum ferry_frame_event_type pause_on;   /* HEADER: inside frame PAUSE_AT; END: after it */

    int paused;            /* reading is paused (set by the handler, cleared on resume) */
    int pauses, resumes;
    int during_pause;      /* frame events delivered while paused: must be none */
    int cur;               /* the frame being received, -1 between frames */
    size_t body_got;
    int bad_body;          /* BODY bytes that differ from what the peer sent */
    int bad_header;        /* HEADER without a seq, or with the wrong body size */
    int seen[TOTAL + 8];   /* the seq of every complete frame, in arrival order */
    int nseen;
    int errors, last_error;
    int closed, close_reason;
    struct ferry_timer *safety;
    int timed_out;
};

static void resume_deferred(struct ferry_loop *loop, void *arg)
{
    struct seq_client *s = arg;
    (void)loop;

    s->paused = 0;
    s->resumes++;
    ferry_conn_resume_read(s->c);
}

/* Pause now, with the rest of the first burst already read; the peer
 * writes the second burst and ends its stream; reading resumes from a
 * deferred call. */
static void pause_and_send_more(struct seq_client *s)
{
    ferry_conn_pause_read(s->c);
    s->paused = 1;
    s->pauses++;
    for (int i = FIRST_BURST; i < TOTAL; i++)
        peer_write_frame(s->peer, i);
    assert_int_equal(shutdown(s->peer_fd, SHUT_WR), 0);
    assert_int_equal(ferry_loop_defer(s->loop, resume_deferred, s), 0);
}

static int seq_on_frame(struct ferry_conn *c, struct ferry_frame_event *ev, void *arg)
{
    struct seq_client *s = arg;
    (void)c;

    if (s->paused)
        s->during_pause++;
    switch (ev->type) {
    case FERRY_FRAME_HEADER: {
        json_t *seq = json_object_get(ev->header, "seq");
        s->cur = json_is_integer(seq) ? (int)json_integer_value(seq) : -1;
        if (s->cur < 0 || ev->body_size != BODY_LEN)
            s->bad_header++;
        json_decref(ev->header);
        s->body_got = 0;
        if (s->cur == PAUSE_AT && s->pause_on == FERRY_FRAME_HEADER && !s->pauses)
            pause_and_send_more(s);
        return 0;
    }
    case FERRY_FRAME_BODY:
        for (size_t i = 0; i < ev->chunk_len; i++)
            if (s->body_got + i >= BODY_LEN || ev->chunk[i] != body_byte(s->cur, s->body_got + i))
                s->bad_body++;
        s->body_got += ev->chunk_len;
        return 0;
    case FERRY_FRAME_END:
        if (s->body_got != BODY_LEN)
            s->bad_body++;
        if (s->nseen < (int)(sizeof s->seen / sizeof s->seen[0]))
            s->seen[s->nseen] = s->cur;
        s->nseen++;
        if (s->cur == PAUSE_AT && s->pause_on == FERRY_FRAME_END && !s->pauses)
            pause_and_send_more(s);
        s->cur = -1;
        return 0;
    case FERRY_FRAME_ERROR:
        s->errors++;
        s->last_error = ev->error;
        return 0;
    default:
        return 0;
    }
}

static void seq_on_close(struct ferry_conn *c, int reason, void *arg)
{
    struct seq_client *s = arg;
    (void)c;

    s->closed++;
    s->close_reason = reason;
    ferry_timer_cancel(s->safety);
    s->safety = NULL;
}

static void on_safety(struct ferry_loop *loop, struct ferry_timer *t, void *arg)
{
    struct seq_client *s = arg;
    ferry_timer_cancel(t);
    s->safety = NULL;
    s->timed_out = 1;
    ferry_loop_stop(loop);
}

static void pause_resume_keeps_order(enum ferry_frame_event_type pause_on)
{
    int fds = count_fds();
    struct seq_client s = { .pause_on = pause_on, .cur = -1 };
    struct ferry_handler h = { .on_frame = seq_on_frame, .on_close = seq_on_close, .arg = &s };
    struct ferry_transport *t = NULL;
    int sv[2];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(ferry_transport_new_fd(sv[0], &t), 0);
    assert_int_equal(ferry_transport_new_fd(sv[1], &s.peer), 0);
    s.peer_fd = sv[1];
    /* The first burst is in the socket before the connection reads. */
    for (int i = 0; i < FIRST_BURST; i++)
        peer_write_frame(s.peer, i);

    assert_int_equal(ferry_loop_new(&s.loop), 0);
    assert_int_equal(ferry_conn_open(s.loop, t, "peer", &h, NULL, &s.c), 0);
    s.safety = ferry_loop_timer(s.loop, FIX_SAFETY_MS, on_safety, &s);
    assert_non_null(s.safety);
    /* Returns once the connection has read the peer's end and gone. */
    assert_int_equal(ferry_loop_run(s.loop), 0);

    assert_int_equal(s.timed_out, 0);
    assert_int_equal(s.pauses, 1);
    assert_int_equal(s.resumes, 1);
    assert_int_equal(s.during_pause, 0);
    assert_int_equal(s.errors, 0);
    assert_int_equal(s.bad_header, 0);
    assert_int_equal(s.bad_body, 0);
    /* Every frame exactly once, in the order sent. */
    assert_int_equal(s.nseen, TOTAL);
    for (int i = 0; i < TOTAL; i++)
        assert_int_equal(s.seen[i], i);
    assert_int_equal(s.closed, 1);
    assert_int_equal(s.close_reason, 0);

    ferry_timer_cancel(s.safety);
    ferry_loop_free(s.loop);
    ferry_transport_free(s.peer);
    assert_int_equal(count_fds(), fds);
}

/* Paused at a frame's HEADER: its body and the frames after it are kept,
 * and the second burst must not be taken for the rest of that body. */
static void test_resume_read_inside_frame_keeps_framing(void **state)
{
    (void)state;
    pause_resume_keeps_order(FERRY_FRAME_HEADER);
}

/* Paused at a frame's END: the frames after it are kept, and the second
 * burst must not overtake them. */
static void test_resume_read_between_frames_keeps_order(void **state)
{
    (void)state;
    pause_resume_keeps_order(FERRY_FRAME_END);
}

/* ---- the END of a frame paused at its header ---------------------------------- */

/* A handler that pauses at the HEADER of a frame without a body, when that
 * frame ends the input, must get its END once reading resumes, with no
 * more input coming: nothing is stashed, and no read will ever bring it. */
struct end_client {
    struct ferry_loop *loop;
    struct ferry_conn *c;
    int headers, ends, paused_events;
    int paused;
    struct ferry_timer *safety;
    int timed_out;
};

static void end_resume(struct ferry_loop *loop, void *arg)
{
    struct end_client *e = arg;
    (void)loop;

    e->paused = 0;
    ferry_conn_resume_read(e->c);
}

static int end_on_frame(struct ferry_conn *c, struct ferry_frame_event *ev, void *arg)
{
    struct end_client *e = arg;

    if (e->paused)
        e->paused_events++;
    if (ev->type == FERRY_FRAME_HEADER) {
        json_decref(ev->header);
        e->headers++;
        ferry_conn_pause_read(c);
        e->paused = 1;
        assert_int_equal(ferry_loop_defer(e->loop, end_resume, e), 0);
    } else if (ev->type == FERRY_FRAME_END) {
        e->ends++;
        ferry_conn_close(c);   /* the peer stays open: only the END ends the test */
    }
    return 0;
}

static void end_on_close(struct ferry_conn *c, int reason, void *arg)
{
    struct end_client *e = arg;
    (void)c;
    (void)reason;

    ferry_timer_cancel(e->safety);
    e->safety = NULL;
}

static void end_on_safety(struct ferry_loop *loop, struct ferry_timer *t, void *arg)
{
    struct end_client *e = arg;

    ferry_timer_cancel(t);
    e->safety = NULL;
    e->timed_out = 1;
    ferry_loop_stop(loop);
}

static void test_end_owed_at_a_pause_comes_on_resume(void **state)
{
    int fds = count_fds();
    struct end_client e = { 0 };
    struct ferry_handler h = { .on_frame = end_on_frame, .on_close = end_on_close, .arg = &e };
    struct ferry_transport *t = NULL, *peer = NULL;
    json_t *hdr = json_pack("{s:s}", "type", "exit");
    int sv[2];
    (void)state;

    assert_non_null(hdr);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(ferry_transport_new_fd(sv[0], &t), 0);
    assert_int_equal(ferry_transport_new_fd(sv[1], &peer), 0);
    assert_int_equal(ferry_frame_write(peer, hdr, NULL, 0, NULL), 0);
    json_decref(hdr);

    assert_int_equal(ferry_loop_new(&e.loop), 0);
    assert_int_equal(ferry_conn_open(e.loop, t, "peer", &h, NULL, &e.c), 0);
    e.safety = ferry_loop_timer(e.loop, FIX_SAFETY_MS, end_on_safety, &e);
    assert_non_null(e.safety);
    assert_int_equal(ferry_loop_run(e.loop), 0);

    assert_int_equal(e.timed_out, 0);
    assert_int_equal(e.headers, 1);
    assert_int_equal(e.ends, 1);
    assert_int_equal(e.paused_events, 0);

    ferry_timer_cancel(e.safety);
    ferry_loop_free(e.loop);
    ferry_transport_free(peer);
    assert_int_equal(count_fds(), fds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_end_owed_at_a_pause_comes_on_resume),
        cmocka_unit_test(test_resume_read_inside_frame_keeps_framing),
        cmocka_unit_test(test_resume_read_between_frames_keeps_order),
    };

    signal(SIGPIPE, SIG_IGN);
    ferry_log_set_level(FERRY_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
