/*
 * test_transport.c - the plain transport over socketpairs and pipes:
 * short and gathered writes, EOF and truncation, EPIPE without SIGPIPE,
 * timeouts, EINTR from a signal delivered mid-call, and splice between
 * pipes and sockets (sendpipe, recvpipe).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "ferry/error.h"
#include "ferry/transport.h"
#include "fix_sock.h"
#include "fix_util.h"

static void set_int_opt(struct ferry_transport *t, int opt, int value)
{
    assert_int_equal(setsockopt(ferry_transport_fd(t), SOL_SOCKET, opt, &value, sizeof value), 0);
}

static void set_nonblocking(struct ferry_transport *t)
{
    int fd = ferry_transport_fd(t);

    assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
}

static uint8_t pattern(size_t i)
{
    return (uint8_t)(i * 31 + (i >> 9));
}

/* ---- basics -------------------------------------------------------------- */

static void test_read_write(void **state)
{
    struct fix_pair p;
    char buf[16];

    fix_pair_open(&p);
    assert_int_equal(ferry_transport_write_full(p.a, "ping", 4), 0);
    assert_int_equal(ferry_transport_read(p.b, buf, sizeof buf), 4);
    assert_memory_equal(buf, "ping", 4);
    assert_int_equal(ferry_transport_write_full(p.a, "", 0), 0);

    assert_int_equal(ferry_transport_shutdown_write(p.a), 0);
    assert_int_equal(ferry_transport_read(p.b, buf, sizeof buf), 0);
    /* The other direction still works after a half-close. */
    assert_int_equal(ferry_transport_write_full(p.b, "pong", 4), 0);
    assert_int_equal(ferry_transport_read_full(p.a, buf, 4), 0);
    assert_memory_equal(buf, "pong", 4);
    fix_pair_close(&p);
}

static void test_read_full_eof_and_truncated(void **state)
{
    struct fix_pair p;
    char buf[8];

    fix_pair_open(&p);
    assert_int_equal(ferry_transport_write_full(p.a, "abcdefgh", 8), 0);
    assert_int_equal(ferry_transport_write_full(p.a, "xyz", 3), 0);
    assert_int_equal(ferry_transport_shutdown_write(p.a), 0);
    assert_int_equal(ferry_transport_read_full(p.b, buf, 8), 0);
    assert_memory_equal(buf, "abcdefgh", 8);
    assert_int_equal(ferry_transport_read_full(p.b, buf, 8), FERRY_ETRUNCATED);
    assert_memory_equal(buf, "xyz", 3);
    assert_int_equal(ferry_transport_read_full(p.b, buf, 8), FERRY_EEOF);
    assert_int_equal(ferry_transport_read_full(p.b, buf, 0), 0);
    fix_pair_close(&p);
}

static void test_nonblocking_short_write(void **state)
{
    const size_t len = 1u << 20;
    uint8_t *data = malloc(len), *got = malloc(len);
    struct iovec iov;
    struct fix_pair p;
    ssize_t n;
    size_t have = 0;

    assert_non_null(data);
    assert_non_null(got);
    for (size_t i = 0; i < len; i++)
        data[i] = pattern(i);
    fix_pair_open(&p);
    set_nonblocking(p.a);
    set_nonblocking(p.b);
    assert_int_equal(ferry_transport_read(p.b, got, len), -EAGAIN);

    iov = (struct iovec){ .iov_base = data, .iov_len = len };
    n = ferry_transport_writev(p.a, &iov, 1);
    assert_true(n > 0 && (size_t)n < len);
    iov.iov_base = data + n;
    iov.iov_len = len - (size_t)n;
    assert_int_equal(ferry_transport_writev(p.a, &iov, 1), -EAGAIN);
    assert_int_equal(ferry_transport_write_full(p.a, data, len), -EAGAIN);

    /* Exactly what was accepted arrives. */
    while (have < (size_t)n) {
        ssize_t r = ferry_transport_read(p.b, got + have, len - have);

        assert_true(r > 0);
        have += (size_t)r;
    }
    assert_int_equal(have, n);
    assert_memory_equal(got, data, have);
    fix_pair_close(&p);
    free(data);
    free(got);
}

/* ---- gathered writes ----------------------------------------------------- */

struct writer {
    struct ferry_transport *t;
    struct iovec *iov;
    int iovcnt;
    const void *buf;    /* write_full instead when set */
    size_t len;
    _Atomic pid_t tid;
    int rc;
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;

    atomic_store(&w->tid, gettid());
    if (w->buf)
        w->rc = ferry_transport_write_full(w->t, w->buf, w->len);
    else
        w->rc = ferry_transport_writev_full(w->t, w->iov, w->iovcnt);
    return NULL;
}

static void read_and_check(struct ferry_transport *t, size_t len)
{
    uint8_t *got = malloc(len);

    assert_non_null(got);
    assert_int_equal(ferry_transport_read_full(t, got, len), 0);
    for (size_t i = 0; i < len; i++)
        if (got[i] != pattern(i))
            fail_msg("byte %zu is %u, want %u", i, got[i], pattern(i));
    free(got);
}

/* More entries than IOV_MAX, some empty, through a small socket buffer:
 * writev_full must resume from the middle of an entry many times over. */
static void test_writev_full_many_iovecs(void **state)
{
    const int count = 3 * IOV_MAX + 7;
    struct iovec *iov = calloc((size_t)count, sizeof *iov);
    uint8_t *data = malloc((size_t)count * 64);
    struct writer w = { 0 };
    pthread_t thread;
    struct fix_pair p;
    size_t total = 0;

    assert_non_null(iov);
    assert_non_null(data);
    for (int i = 0; i < count; i++) {
        size_t n = i % 5 == 0 ? 0 : (size_t)(i * 7 % 64) + 1;

        iov[i].iov_base = data + total;
        iov[i].iov_len = n;
        for (size_t k = 0; k < n; k++)
            data[total + k] = pattern(total + k);
        total += n;
    }
    fix_pair_open(&p);
    set_int_opt(p.a, SO_SNDBUF, 4096);
    set_int_opt(p.b, SO_RCVBUF, 4096);
    /* With a timeout, sends are MSG_DONTWAIT after poll: short writes. */
    ferry_transport_set_timeout(p.a, 60000);

    w.t = p.a;
    w.iov = iov;
    w.iovcnt = count;
    w.rc = 1;
    assert_int_equal(pthread_create(&thread, NULL, writer_main, &w), 0);
    read_and_check(p.b, total);
    assert_int_equal(pthread_join(thread, NULL), 0);
    assert_int_equal(w.rc, 0);

    /* Nothing but empty entries is a no-op. */
    struct iovec empty[2] = { { data, 0 }, { NULL, 0 } };
    assert_int_equal(ferry_transport_writev_full(p.a, empty, 2), 0);
    assert_int_equal(ferry_transport_writev_full(p.a, empty, 0), 0);

    fix_pair_close(&p);
    free(data);
    free(iov);
}

/* ---- EPIPE, never SIGPIPE ------------------------------------------------ */

static void test_epipe_socket(void **state)
{
    struct fix_pair p;

    fix_pair_open(&p);
    ferry_transport_free(p.b);
    p.b = NULL;
    assert_int_equal(ferry_transport_write_full(p.a, "x", 1), -EPIPE);
    fix_pair_close(&p);
}

static int sigpipe_pending(void)
{
    sigset_t pending;

    sigpending(&pending);
    return sigismember(&pending, SIGPIPE);
}

static void test_epipe_pipe(void **state)
{
    struct ferry_transport *t;
    sigset_t pipe_set, old;
    int fds[2];

    assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
    assert_int_equal(ferry_transport_new_fd(fds[1], &t), 0);
    assert_non_null(t);
    close(fds[0]);
    assert_int_equal(ferry_transport_write_full(t, "x", 1), -EPIPE);
    assert_false(sigpipe_pending());
    assert_int_equal(ferry_transport_shutdown_write(t), FERRY_EUNSUPPORTED);

    /* A SIGPIPE that was already pending is someone else's: left alone. */
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    pthread_kill(pthread_self(), SIGPIPE);
    assert_true(sigpipe_pending());
    assert_int_equal(ferry_transport_write_full(t, "x", 1), -EPIPE);
    assert_true(sigpipe_pending());
    static const struct timespec zero = { 0, 0 };
    assert_int_equal(sigtimedwait(&pipe_set, NULL, &zero), SIGPIPE);
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    ferry_transport_free(t);
}

/* ---- sendfile ------------------------------------------------------------- */

/* A file range arrives intact, in pieces the caller advances through, and a
 * read past the file's end says 0 (the file ended early). */
static void test_sendfile(void **state)
{
    char path[] = "/tmp/ferry-test-sendfile-XXXXXX";
    uint8_t buf[300000], got[sizeof buf];
    uint64_t off = 1000;
    size_t have = 0;
    struct fix_pair p;
    int fd = mkstemp(path);
    (void)state;

    assert_true(fd >= 0);
    unlink(path);
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = pattern(i);
    assert_int_equal(write(fd, buf, sizeof buf), (ssize_t)sizeof buf);
    fix_pair_open(&p);
    set_int_opt(p.b, SO_RCVBUF, 1 << 20);
    set_int_opt(p.a, SO_SNDBUF, 1 << 20);
    while (off < sizeof buf) {
        ssize_t n = ferry_transport_sendfile(p.a, fd, &off, sizeof buf - (size_t)off);
        assert_true(n > 0);
        while (have < off - 1000) {
            ssize_t m = ferry_transport_read(p.b, got + have, sizeof got - have);
            assert_true(m > 0);
            have += (size_t)m;
        }
    }
    assert_int_equal(off, sizeof buf);
    assert_memory_equal(got, buf + 1000, sizeof buf - 1000);
    assert_int_equal(ferry_transport_sendfile(p.a, fd, &off, 10), 0);
    assert_int_equal(ferry_transport_sendfile(p.a, fd, &off, 0), 0);
    fix_pair_close(&p);
    close(fd);
}

/* sendfile(2) to a socket whose peer is gone raises SIGPIPE in the kernel;
 * with SIGPIPE at its default action the test would die here. */
static void test_sendfile_epipe(void **state)
{
    char path[] = "/tmp/ferry-test-sendfile-XXXXXX";
    uint64_t off = 0;
    struct fix_pair p;
    int fd = mkstemp(path);
    (void)state;

    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(write(fd, "abc", 3), 3);
    fix_pair_open(&p);
    ferry_transport_free(p.b);
    p.b = NULL;
    assert_int_equal(ferry_transport_sendfile(p.a, fd, &off, 3), -EPIPE);
    assert_false(sigpipe_pending());
    assert_int_equal(off, 0);
    fix_pair_close(&p);
    close(fd);
}

/* Pipe -> socket -> pipe by splice: the bytes arrive exact; an empty
 * socket, a non-blocking pipe and a pipe without a reader each say so,
 * and the last consumes nothing and raises no SIGPIPE. */
static void test_sendpipe_recvpipe(void **state)
{
    uint8_t buf[60000], got[sizeof buf];
    int in[2], out[2];
    size_t sent = 0, have = 0;
    struct fix_pair p;
    (void)state;

    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = pattern(i);
    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(out), 0);
    assert_int_equal(write(in[1], buf, sizeof buf), (ssize_t)sizeof buf);
    fix_pair_open(&p);
    set_int_opt(p.b, SO_RCVBUF, 1 << 20);
    set_int_opt(p.a, SO_SNDBUF, 1 << 20);
    while (sent < sizeof buf) {
        ssize_t n = ferry_transport_sendpipe(p.a, in[0], sizeof buf - sent);
        assert_true(n > 0);
        sent += (size_t)n;
    }
    /* Nothing left in the pipe, whose writer is still open. */
    assert_int_equal(ferry_transport_sendpipe(p.a, in[0], 10), -EAGAIN);
    while (have < sizeof buf) {
        ssize_t n = ferry_transport_recvpipe(p.b, out[1], sizeof buf - have);
        assert_true(n > 0);
        assert_int_equal(read(out[0], got + have, (size_t)n), n);
        have += (size_t)n;
    }
    assert_memory_equal(got, buf, sizeof buf);

    set_nonblocking(p.b);
    assert_int_equal(ferry_transport_recvpipe(p.b, out[1], 10), -EAGAIN);
    assert_int_equal(fcntl(out[1], F_SETFL, O_NONBLOCK), 0);
    assert_int_equal(ferry_transport_recvpipe(p.b, out[1], 10), FERRY_EUNSUPPORTED);
    assert_int_equal(fcntl(out[1], F_SETFL, 0), 0);

    assert_int_equal(ferry_transport_write_full(p.a, "abc", 3), 0);
    close(out[0]);
    assert_int_equal(ferry_transport_recvpipe(p.b, out[1], 3), -EPIPE);
    assert_false(sigpipe_pending());
    assert_int_equal(ferry_transport_read(p.b, got, sizeof got), 3);
    assert_memory_equal(got, "abc", 3);
    fix_pair_close(&p);
    close(in[0]);
    close(in[1]);
    close(out[1]);
}

static void test_pipe_read(void **state)
{
    struct ferry_transport *r, *w;
    int fds[2];
    char buf[4];

    assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
    assert_int_equal(ferry_transport_new_fd(fds[0], &r), 0);
    assert_int_equal(ferry_transport_new_fd(fds[1], &w), 0);
    assert_int_equal(ferry_transport_write_full(w, "pipe", 4), 0);
    ferry_transport_free(w);
    assert_int_equal(ferry_transport_read_full(r, buf, 4), 0);
    assert_memory_equal(buf, "pipe", 4);
    assert_int_equal(ferry_transport_read_full(r, buf, 4), FERRY_EEOF);
    ferry_transport_free(r);
    ferry_transport_free(NULL);
}

/* ---- timeouts ------------------------------------------------------------ */

static void test_read_timeout(void **state)
{
    struct fix_pair p;
    int64_t start;
    char c;

    fix_pair_open(&p);
    ferry_transport_set_timeout(p.b, 50);
    start = fix_now_ms();
    assert_int_equal(ferry_transport_read(p.b, &c, 1), -ETIMEDOUT);
    assert_true(fix_now_ms() - start >= 49);
    assert_int_equal(ferry_transport_read_full(p.b, &c, 1), -ETIMEDOUT);

    /* Data that is there is read at once. */
    assert_int_equal(ferry_transport_write_full(p.a, "k", 1), 0);
    assert_int_equal(ferry_transport_read(p.b, &c, 1), 1);
    assert_int_equal(c, 'k');

    /* 0 waits forever again: EOF, not a timeout. */
    ferry_transport_set_timeout(p.b, 0);
    assert_int_equal(ferry_transport_shutdown_write(p.a), 0);
    assert_int_equal(ferry_transport_read(p.b, &c, 1), 0);
    fix_pair_close(&p);
}

static void test_write_timeout(void **state)
{
    const size_t len = 4u << 20;
    uint8_t *data = calloc(1, len);
    struct fix_pair p;

    assert_non_null(data);
    fix_pair_open(&p);
    set_int_opt(p.a, SO_SNDBUF, 4096);
    ferry_transport_set_timeout(p.a, 50);
    /* Nobody reads: the writer must give up rather than block for good. */
    assert_int_equal(ferry_transport_write_full(p.a, data, len), -ETIMEDOUT);
    fix_pair_close(&p);
    free(data);
}

static void test_timeout_ignored_when_nonblocking(void **state)
{
    struct fix_pair p;
    char c;

    fix_pair_open(&p);
    set_nonblocking(p.b);
    ferry_transport_set_timeout(p.b, 60000);
    assert_int_equal(ferry_transport_read(p.b, &c, 1), -EAGAIN);
    fix_pair_close(&p);
}

/* ---- EINTR --------------------------------------------------------------- */

static sem_t handled;

static void on_usr1(int sig)
{
    sem_post(&handled);   /* async-signal-safe */
}

/* The scheduler state of one of our threads ('S' = asleep in a syscall). */
static char thread_state(pid_t tid)
{
    char path[64], buf[512];
    const char *paren;
    size_t n;
    FILE *f;

    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
    f = fopen(path, "r");
    if (!f)
        return '?';
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    paren = strrchr(buf, ')');   /* the command name may hold spaces */
    return paren && paren[1] == ' ' ? paren[2] : '?';
}

/* Signal `thread` (without SA_RESTART) `times` times, each time only once
 * it is asleep in its blocking call and waiting for the handler to run. */
static void interrupt_blocked(pthread_t thread, _Atomic pid_t *tid, int times)
{
    while (atomic_load(tid) == 0)
        sched_yield();
    for (int i = 0; i < times; i++) {
        while (thread_state(atomic_load(tid)) != 'S')
            sched_yield();
        assert_int_equal(pthread_kill(thread, SIGUSR1), 0);
        while (sem_wait(&handled) < 0)
            assert_int_equal(errno, EINTR);
    }
}

struct reader {
    struct ferry_transport *t;
    _Atomic pid_t tid;
    char buf[4];
    int rc;
};

static void *reader_main(void *arg)
{
    struct reader *r = arg;

    atomic_store(&r->tid, gettid());
    r->rc = ferry_transport_read_full(r->t, r->buf, sizeof r->buf);
    return NULL;
}

static void check_read_survives_signals(int timeout_ms)
{
    struct reader r = { .rc = 1 };
    pthread_t thread;
    struct fix_pair p;

    fix_pair_open(&p);
    ferry_transport_set_timeout(p.b, timeout_ms);
    r.t = p.b;
    assert_int_equal(pthread_create(&thread, NULL, reader_main, &r), 0);
    interrupt_blocked(thread, &r.tid, 3);
    assert_int_equal(ferry_transport_write_full(p.a, "ab", 2), 0);
    interrupt_blocked(thread, &r.tid, 2);   /* now mid-read_full */
    assert_int_equal(ferry_transport_write_full(p.a, "cd", 2), 0);
    assert_int_equal(pthread_join(thread, NULL), 0);
    assert_int_equal(r.rc, 0);
    assert_memory_equal(r.buf, "abcd", 4);
    fix_pair_close(&p);
}

static int install_usr1(void **state)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = 0;   /* no SA_RESTART: blocking calls fail with EINTR */
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sem_init(&handled, 0, 0), 0);
    return sigaction(SIGUSR1, &sa, NULL);
}

static int remove_usr1(void **state)
{
    signal(SIGUSR1, SIG_DFL);
    sem_destroy(&handled);
    return 0;
}

static void test_eintr_read(void **state)
{
    check_read_survives_signals(0);
}

static void test_eintr_read_with_timeout(void **state)
{
    /* Here the signal lands in poll(), which must be resumed too. */
    check_read_survives_signals(60000);
}

static void test_eintr_write(void **state)
{
    const size_t len = 1u << 20;
    uint8_t *data = malloc(len);
    struct writer w = { .rc = 1 };
    pthread_t thread;
    struct fix_pair p;

    assert_non_null(data);
    for (size_t i = 0; i < len; i++)
        data[i] = pattern(i);
    fix_pair_open(&p);
    set_int_opt(p.a, SO_SNDBUF, 4096);
    set_int_opt(p.b, SO_RCVBUF, 4096);
    w.t = p.a;
    w.buf = data;
    w.len = len;
    assert_int_equal(pthread_create(&thread, NULL, writer_main, &w), 0);
    /* The writer fills the buffers and sleeps in sendmsg; each signal ends
     * that call early, with a partial count or EINTR. */
    interrupt_blocked(thread, &w.tid, 3);
    read_and_check(p.b, len);
    assert_int_equal(pthread_join(thread, NULL), 0);
    assert_int_equal(w.rc, 0);
    fix_pair_close(&p);
    free(data);
}

/* After ferry_ignore_sigpipe the process ignores SIGPIPE and writes skip
 * the signal-mask guard: a write to a closed pipe is still -EPIPE, and the
 * process lives.  Last in main: the setting is for good. */
static void test_ignored_sigpipe_skips_the_guard(void **state)
{
    struct ferry_transport *t;
    struct sigaction sa;
    int fds[2];
    (void)state;

    ferry_ignore_sigpipe();
    assert_int_equal(sigaction(SIGPIPE, NULL, &sa), 0);
    assert_true(sa.sa_handler == SIG_IGN);
    assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
    assert_int_equal(ferry_transport_new_fd(fds[1], &t), 0);
    close(fds[0]);
    assert_int_equal(ferry_transport_write_full(t, "x", 1), -EPIPE);
    assert_false(sigpipe_pending());
    ferry_transport_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_read_write, fix_sigpipe_default),
        cmocka_unit_test_setup(test_sendfile, fix_sigpipe_default),
        cmocka_unit_test_setup(test_sendfile_epipe, fix_sigpipe_default),
        cmocka_unit_test_setup(test_sendpipe_recvpipe, fix_sigpipe_default),
        cmocka_unit_test_setup(test_read_full_eof_and_truncated, fix_sigpipe_default),
        cmocka_unit_test_setup(test_nonblocking_short_write, fix_sigpipe_default),
        cmocka_unit_test_setup(test_writev_full_many_iovecs, fix_sigpipe_default),
        cmocka_unit_test_setup(test_epipe_socket, fix_sigpipe_default),
        cmocka_unit_test_setup(test_epipe_pipe, fix_sigpipe_default),
        cmocka_unit_test_setup(test_pipe_read, fix_sigpipe_default),
        cmocka_unit_test_setup(test_read_timeout, fix_sigpipe_default),
        cmocka_unit_test_setup(test_write_timeout, fix_sigpipe_default),
        cmocka_unit_test_setup(test_timeout_ignored_when_nonblocking, fix_sigpipe_default),
        cmocka_unit_test_setup_teardown(test_eintr_read, install_usr1, remove_usr1),
        cmocka_unit_test_setup_teardown(test_eintr_read_with_timeout, install_usr1, remove_usr1),
        cmocka_unit_test_setup_teardown(test_eintr_write, install_usr1, remove_usr1),
        cmocka_unit_test(test_ignored_sigpipe_skips_the_guard),   /* last: for good */
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
