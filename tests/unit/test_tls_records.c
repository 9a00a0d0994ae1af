/*
 * test_tls_records.c - the end of a TLS stream and its records: clean ends
 * (close_notify) and truncated ones, records cut and altered on the way
 * (a relay between the ends), a partial record at a read boundary, and
 * close_notify sent when the socket is full (shutdown_write and free).
 *
 * Nothing sleeps: every wait is a poll or a blocking call with a
 * FIX_SAFETY_MS bound, and every loop is bounded.
 */
#include "fix_util.h"

#include <errno.h>
#include <linux/sockios.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ferry/ferry.h"
#include "fix_io.h"
#include "fix_tls.h"

/* ---- the end of the stream -------------------------------------------------------------- */

static void test_eof_after_close_notify(void **state)
{
    struct ferry_tls *scfg = fix_psk_server(NULL), *ccfg = fix_psk_client(fix_psk_key, "ferry");
    struct fix_tpair p;
    char buf[16];
    (void)state;

    /* Half-close: EOF one way, the other way still carries data. */
    fix_tpair_open(&p, ccfg, NULL, scfg, 1, 0);
    fix_hs_ok(&p);
    fix_write_all_nb(p.c, "bye", 3);
    assert_int_equal(ferry_transport_shutdown_write(p.c), 0);
    /* Data and close_notify arrive together: the data first, the end on
     * the next call. */
    assert_int_equal(fix_read_nb(p.s, buf, sizeof buf), 3);
    assert_memory_equal(buf, "bye", 3);
    assert_int_equal(fix_read_nb(p.s, buf, sizeof buf), 0);
    assert_int_equal(fix_read_nb(p.s, buf, sizeof buf), 0);   /* and stays at the end */
    fix_write_all_nb(p.s, "pong", 4);
    fix_read_exact_nb(p.c, buf, 4);
    assert_memory_equal(buf, "pong", 4);
    assert_int_equal(ferry_transport_shutdown_write(p.s), 0);
    assert_int_equal(fix_read_nb(p.c, buf, sizeof buf), 0);
    fix_tpair_close(&p);

    /* Freeing sends close_notify too. */
    fix_tpair_open(&p, ccfg, NULL, scfg, 1, 0);
    fix_hs_ok(&p);
    fix_write_all_nb(p.s, "last", 4);
    ferry_transport_free(p.s);
    p.s = NULL;
    fix_read_exact_nb(p.c, buf, 4);
    assert_memory_equal(buf, "last", 4);
    assert_int_equal(fix_read_nb(p.c, buf, sizeof buf), 0);
    fix_tpair_close(&p);

    /* Blocking read_full: the clean end before a byte is FERRY_EEOF. */
    fix_tpair_open(&p, ccfg, NULL, scfg, 1, 0);
    fix_hs_ok(&p);
    ferry_transport_free(p.s);
    p.s = NULL;
    assert_int_equal(ferry_transport_set_nonblocking(p.c, 0), 0);
    ferry_transport_set_timeout(p.c, FIX_SAFETY_MS);
    assert_int_equal(ferry_transport_read_full(p.c, buf, 4), FERRY_EEOF);
    fix_tpair_close(&p);
    ferry_tls_free(ccfg);
    ferry_tls_free(scfg);
}

static void test_eof_without_close_notify(void **state)
{
    struct ferry_tls *scfg = fix_psk_server(NULL), *ccfg = fix_psk_client(fix_psk_key, "ferry");
    struct fix_tpair p;
    char buf[16];
    ssize_t n;
    (void)state;

    /* The socket ends under TLS: a truncation, never a clean 0. */
    fix_tpair_open(&p, ccfg, NULL, scfg, 1, 0);
    fix_hs_ok(&p);
    fix_write_all_nb(p.c, "abc", 3);
    assert_int_equal(shutdown(ferry_transport_fd(p.c), SHUT_RDWR), 0);
    assert_int_equal(fix_read_nb(p.s, buf, sizeof buf), 3);   /* the data first */
    assert_memory_equal(buf, "abc", 3);
    n = fix_read_nb(p.s, buf, sizeof buf);
    if (n >= 0)
        fail_msg("a truncated stream read as %zd", n);
    assert_int_equal(n, FERRY_ETRUNCATED);
    assert_true(ferry_transport_error(p.s)[0] != '\0');
    fix_tpair_close(&p);

    /* read_full sees it part way. */
    fix_tpair_open(&p, ccfg, NULL, scfg, 1, 0);
    fix_hs_ok(&p);
    fix_write_all_nb(p.s, "xyz", 3);
    assert_int_equal(shutdown(ferry_transport_fd(p.s), SHUT_RDWR), 0);
    assert_int_equal(ferry_transport_set_nonblocking(p.c, 0), 0);
    ferry_transport_set_timeout(p.c, FIX_SAFETY_MS);
    assert_int_equal(ferry_transport_read_full(p.c, buf, 8), FERRY_ETRUNCATED);
    assert_memory_equal(buf, "xyz", 3);
    fix_tpair_close(&p);

    ferry_tls_free(ccfg);
    ferry_tls_free(scfg);
}

/*
 * Through a relay this test controls (client <-> r[0] | r[1] <-> server):
 * a record cut short by the end of the stream, and a record altered on
 * the way, are errors; no byte of either is handed out.
 */
static void relay_open(struct fix_tpair *p, int r[2], struct ferry_tls *ccfg, struct ferry_tls *scfg)
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

static void relay_handshake(struct fix_tpair *p, const int r[2])
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
        if (poll(pfd, (nfds_t)n, FIX_SAFETY_MS) <= 0)
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
        assert_true(poll(&pfd, 1, FIX_SAFETY_MS) > 0);
        ssize_t n = recv(fd, buf + got, want - got, MSG_DONTWAIT);
        assert_true(n > 0);
        got += (size_t)n;
    }
    return got;
}

static void test_truncated_and_altered_records(void **state)
{
    struct ferry_tls *scfg = fix_psk_server(NULL), *ccfg = fix_psk_client(fix_psk_key, "ferry");
    static uint8_t data[1000], rec[1022];
    struct fix_tpair p;
    int r[2];
    ssize_t n;
    (void)state;

    fix_fill_random(data, sizeof data, 11);
    /* Cut: half of a 1000-byte record, then the end of the stream. */
    relay_open(&p, r, ccfg, scfg);
    relay_handshake(&p, r);
    fix_write_all_nb(p.c, data, sizeof data);
    assert_int_equal(relay_take(r[0], rec, sizeof rec), sizeof rec);
    assert_int_equal(send(r[1], rec, 500, MSG_NOSIGNAL), 500);
    {
        struct pollfd pfd = { .fd = ferry_transport_fd(p.s), .events = POLLIN };
        assert_int_equal(poll(&pfd, 1, FIX_SAFETY_MS), 1);
    }
    /* Half a record: nothing to hand out, and nothing pending. */
    assert_int_equal(ferry_transport_read(p.s, rec, sizeof rec), -EAGAIN);
    assert_int_equal(ferry_transport_pending(p.s), 0);
    assert_int_equal(shutdown(r[1], SHUT_WR), 0);
    n = fix_read_nb(p.s, rec, sizeof rec);
    if (n >= 0)
        fail_msg("a record cut short read as %zd", n);
    assert_int_equal(n, FERRY_ETRUNCATED);
    fix_tpair_close(&p);
    close(r[0]);
    close(r[1]);

    /* Altered: one bit of the ciphertext flipped. */
    relay_open(&p, r, ccfg, scfg);
    relay_handshake(&p, r);
    fix_write_all_nb(p.c, data, sizeof data);
    assert_int_equal(relay_take(r[0], rec, sizeof rec), sizeof rec);
    rec[300] ^= 0x04;
    assert_int_equal(send(r[1], rec, sizeof rec, MSG_NOSIGNAL), (ssize_t)sizeof rec);
    n = fix_read_nb(p.s, rec, sizeof rec);
    if (n >= 0)
        fail_msg("an altered record read as %zd", n);
    assert_int_equal(n, FERRY_ETLS);
    print_message("altered record: '%s'\n", ferry_transport_error(p.s));
    assert_true(ferry_transport_error(p.s)[0] != '\0');
    fix_tpair_close(&p);
    close(r[0]);
    close(r[1]);

    /* A good record and an altered one in the same read: the good bytes
     * are handed out, and the next call reports the altered record as
     * such (not as something else). */
    relay_open(&p, r, ccfg, scfg);
    relay_handshake(&p, r);
    fix_write_all_nb(p.c, data, 100);
    fix_write_all_nb(p.c, data + 100, 100);
    assert_int_equal(relay_take(r[0], rec, 244), 244);
    rec[122 + 50] ^= 0x01;
    assert_int_equal(send(r[1], rec, 244, MSG_NOSIGNAL), 244);
    n = fix_read_nb(p.s, rec, sizeof rec);
    assert_int_equal(n, 100);
    assert_memory_equal(rec, data, 100);
    n = fix_read_nb(p.s, rec, sizeof rec);
    print_message("altered record after a good one: %s '%s'\n", ferry_err_name((int)n),
                  ferry_transport_error(p.s));
    assert_int_equal(n, FERRY_ETLS);
    assert_non_null(strstr(ferry_transport_error(p.s), "bad record mac"));
    fix_tpair_close(&p);
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
    struct ferry_tls *scfg = fix_psk_server(NULL), *ccfg = fix_psk_client(fix_psk_key, "ferry");
    static uint8_t data[200], rec[244], buf[100];
    struct fix_tpair p;
    int r[2];
    (void)state;

    fix_fill_random(data, sizeof data, 21);
    relay_open(&p, r, ccfg, scfg);
    relay_handshake(&p, r);
    fix_write_all_nb(p.c, data, 100);
    fix_write_all_nb(p.c, data + 100, 100);
    assert_int_equal(relay_take(r[0], rec, sizeof rec), sizeof rec);
    /* The first record whole, the second's first half. */
    assert_int_equal(send(r[1], rec, 122 + 61, MSG_NOSIGNAL), 122 + 61);
    assert_int_equal(fix_read_nb(p.s, buf, sizeof buf), 100);
    assert_memory_equal(buf, data, 100);
    int pend = ferry_transport_pending(p.s);
    ssize_t n = ferry_transport_read(p.s, buf, sizeof buf);
    print_message("pending %d, then read %zd\n", pend, n);
    assert_int_equal(n, -EAGAIN);   /* half a record: nothing to hand out */
    if (pend)
        fail_msg("pending() was true with only half a record buffered");
    /* The rest comes: poll() says so, and the record is whole. */
    assert_int_equal(send(r[1], rec + 183, sizeof rec - 183, MSG_NOSIGNAL), (ssize_t)(sizeof rec - 183));
    assert_int_equal(fix_read_nb(p.s, buf, sizeof buf), 100);
    assert_memory_equal(buf, data + 100, 100);
    fix_tpair_close(&p);
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
    int64_t deadline = fix_now_ms() + FIX_SAFETY_MS;

    while (fix_now_ms() < deadline) {
        int tid = atomic_load(&e->tid);
        if (atomic_load(&e->done) || (tid > 0 && in_poll(tid)))
            return;
        sched_yield();
    }
    fail_msg("the thread ending the stream neither returned nor waited");
}

static void close_notify_when_full(int use_free)
{
    struct ferry_tls *scfg = fix_psk_server(NULL), *ccfg = fix_psk_client(fix_psk_key, "ferry");
    struct ender e = { .use_free = use_free, .result = 1 };
    struct fix_tpair p;
    int sndbuf = 0, outq = 0;
    socklen_t sl = sizeof sndbuf;
    size_t k = 0;
    pthread_t th;
    static uint8_t got[100000];

    fix_tpair_open(&p, ccfg, NULL, scfg, 1, 4096);
    fix_hs_ok(&p);
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
    ferry_transport_set_timeout(p.c, FIX_SAFETY_MS);
    e.t = p.c;
    if (use_free)
        p.c = NULL;
    assert_int_equal(pthread_create(&th, NULL, end_stream, &e), 0);
    wait_ender(&e);
    fix_read_exact_nb(p.s, got, k);
    for (size_t i = 0; i < k; i++)
        assert_int_equal(got[i], (uint8_t)i);
    ssize_t n = fix_read_nb(p.s, got, sizeof got);
    pthread_join(th, NULL);
    assert_int_equal(e.result, 0);
    if (n != 0)
        fail_msg("after %zu bytes and a %s, the reader got %s ('%s') instead of the end",
                 k, use_free ? "free" : "shutdown_write", ferry_err_name((int)n),
                 ferry_transport_error(p.s));
    fix_tpair_close(&p);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_eof_after_close_notify, fix_sigpipe_default),
        cmocka_unit_test_setup(test_eof_without_close_notify, fix_sigpipe_default),
        cmocka_unit_test_setup(test_truncated_and_altered_records, fix_sigpipe_default),
        cmocka_unit_test_setup(test_pending_partial_record_at_boundary, fix_sigpipe_default),
        cmocka_unit_test_setup(test_close_notify_full_socket_shutdown, fix_sigpipe_default),
        cmocka_unit_test_setup(test_close_notify_full_socket_free, fix_sigpipe_default),
    };
    return cmocka_run_group_tests(tests, fix_tls_quiet, NULL);
}
