/*
 * test_conn_client_recvfile.c - receive-side zero copy: the transport's
 * ferry_transport_recvfile (TCP and unix sockets, non-blocking, what it
 * refuses, a file that fails), and bodies a client connection stores
 * straight into files (ferry_conn_recv_body_to_file) or a pipe
 * (ferry_conn_recv_body_to_pipe), plain and over TLS,
 * against a libferry server on a thread (fix_conn.h).
 *
 * Every test counts the process's descriptors before and after: nothing
 * may be left behind (transports, recvfile's pipe, the loop's state).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ferry/ferry.h"
#include "fix_conn.h"
#include "fix_tls.h"
#include "unit_util.h"

#define BIG_BODY (3u * 1024u * 1024u + 777u)   /* several pipes' and read chunks' worth */

/* ---- recvfile ------------------------------------------------------------------- */

struct writer {
    int fd;
    const uint8_t *data;
    size_t len;
};

static void *write_all_thread(void *arg)
{
    struct writer *w = arg;
    size_t done = 0;

    while (done < w->len) {
        ssize_t n = write(w->fd, w->data + done, w->len - done);
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    shutdown(w->fd, SHUT_WR);
    return NULL;
}

/* A connected TCP pair on loopback: *a and *b. */
static void tcp_pair(int *a, int *b)
{
    struct sockaddr_in sin = { .sin_family = AF_INET };
    socklen_t len = sizeof sin;
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(l >= 0);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(l, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(listen(l, 1), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&sin, &len), 0);
    *a = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(*a >= 0);
    assert_int_equal(connect(*a, (struct sockaddr *)&sin, sizeof sin), 0);
    *b = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    assert_true(*b >= 0);
    close(l);
}

/* Everything the peer sends lands in the file at the offset asked, byte
 * for byte, and the file's own position does not move. */
static void recvfile_moves_bytes(int tcp)
{
    int fds = count_fds();
    uint8_t *data = fix_pattern(BIG_BODY);
    struct ferry_transport *t = NULL;
    struct writer w = { .data = data, .len = BIG_BODY };
    uint64_t off = 100, total = 0;
    int sv[2], file = fix_conn_temp_file(), file_err = 1;
    pthread_t th;

    if (tcp)
        tcp_pair(&sv[0], &sv[1]);
    else
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(ferry_transport_new_fd(sv[0], &t), 0);
    w.fd = sv[1];
    assert_int_equal(pthread_create(&th, NULL, write_all_thread, &w), 0);
    for (;;) {
        ssize_t n = ferry_transport_recvfile(t, file, &off, BIG_BODY, &file_err);
        assert_int_equal(file_err, 0);
        assert_true(n >= 0);
        if (n == 0)
            break;
        total += (uint64_t)n;
        assert_int_equal(off, 100 + total);
    }
    pthread_join(th, NULL);
    assert_int_equal(total, BIG_BODY);
    assert_int_equal(lseek(file, 0, SEEK_CUR), 0);
    fix_check_file(file, 100, data, BIG_BODY);
    ferry_transport_free(t);
    close(sv[1]);
    close(file);
    free(data);
    assert_int_equal(count_fds(), fds);
}

static void test_recvfile_tcp(void **state)
{
    (void)state;
    recvfile_moves_bytes(1);
}

static void test_recvfile_unix(void **state)
{
    (void)state;
    recvfile_moves_bytes(0);
}

/* Non-blocking and nothing sent yet: -EAGAIN, nothing stored. */
static void test_recvfile_nonblocking_empty(void **state)
{
    struct ferry_transport *t = NULL;
    uint64_t off = 0;
    int sv[2], file = fix_conn_temp_file(), file_err = 1;
    (void)state;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(ferry_transport_new_fd(sv[0], &t), 0);
    assert_int_equal(ferry_transport_set_nonblocking(t, 1), 0);
    assert_int_equal(ferry_transport_recvfile(t, file, &off, 4096, &file_err), -EAGAIN);
    assert_int_equal(file_err, 0);
    assert_int_equal(off, 0);
    ferry_transport_free(t);
    close(sv[1]);
    close(file);
}

/* TLS decrypts in user space, a pipe is no socket: both say so, and take
 * nothing from the stream. */
static void test_recvfile_unsupported(void **state)
{
    int fds = count_fds();
    struct ferry_tls *ctls = fix_psk_client(fix_psk_key, "ferry");
    struct ferry_transport *t = NULL;
    uint64_t off = 0;
    int sv[2], p[2], file = fix_conn_temp_file(), file_err = 1;
    char c = 0;
    (void)state;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(write(sv[1], "z", 1), 1);
    assert_int_equal(ferry_transport_new_tls(sv[0], ctls, NULL, &t), 0);
    assert_int_equal(ferry_transport_recvfile(t, file, &off, 4096, &file_err), FERRY_EUNSUPPORTED);
    assert_int_equal(file_err, 0);
    assert_int_equal(off, 0);
    assert_int_equal(recv(sv[0], &c, 1, MSG_DONTWAIT), 1);   /* still there */
    assert_int_equal(c, 'z');
    ferry_transport_free(t);
    close(sv[1]);

    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    assert_int_equal(ferry_transport_new_fd(p[0], &t), 0);
    assert_int_equal(ferry_transport_recvfile(t, file, &off, 4096, NULL), FERRY_EUNSUPPORTED);
    ferry_transport_free(t);
    close(p[1]);
    close(file);
    ferry_tls_free(ctls);
    assert_int_equal(count_fds(), fds);
}

/* A file that cannot take the bytes is the file's error, told apart. */
static void test_recvfile_file_error(void **state)
{
    int fds = count_fds();
    struct ferry_transport *t = NULL;
    uint64_t off = 0;
    int sv[2], file = open("/dev/null", O_RDONLY | O_CLOEXEC), file_err = 0;
    ssize_t n;
    (void)state;

    assert_true(file >= 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(write(sv[1], "abcdef", 6), 6);
    assert_int_equal(ferry_transport_new_fd(sv[0], &t), 0);
    n = ferry_transport_recvfile(t, file, &off, 6, &file_err);
    assert_true(n < 0);
    assert_true(file_err < 0);
    assert_int_equal(n, file_err);
    /* The transport is still usable: its pipe starts clean. */
    int good = fix_conn_temp_file();
    assert_int_equal(write(sv[1], "ghi", 3), 3);
    off = 0;
    assert_int_equal(ferry_transport_recvfile(t, good, &off, 3, &file_err), 3);
    assert_int_equal(file_err, 0);
    fix_check_file(good, 0, (const uint8_t *)"ghi", 3);
    ferry_transport_free(t);
    close(sv[1]);
    close(file);
    close(good);
    assert_int_equal(count_fds(), fds);
}

/* ---- bodies into files ---------------------------------------------------------- */

static void body_to_file(int tls)
{
    int fds = count_fds();
    struct fix_conn_server srv;
    struct ferry_loop *loop = NULL;
    struct ferry_tls *ctls = tls ? fix_psk_client(fix_psk_key, "ferry") : NULL;
    uint8_t *big = fix_pattern(BIG_BODY);
    struct fix_client cl = { .cmd = "blob", .blob = BIG_BODY, .to_file = 1,
                             .file_fd = fix_conn_temp_file() };
    struct fix_client empty = { .cmd = "blob", .blob = 0, .to_file = 1, .file_fd = cl.file_fd };

    fix_conn_server_start(&srv, tls);
    assert_int_equal(ferry_loop_new(&loop), 0);
    fix_client_open(loop, &srv, ctls, &cl);
    fix_client_open(loop, &srv, ctls, &empty);
    assert_int_equal(ferry_loop_run(loop), 0);
    assert_int_equal(cl.opened, 1);
    assert_int_equal(cl.ends, 1);
    assert_int_equal(cl.closed, 1);
    assert_int_equal(cl.close_reason, 0);
    assert_int_equal(cl.file_error, 0);
    assert_int_equal(cl.got_len, BIG_BODY);
    assert_int_equal(cl.spliced + cl.copied, BIG_BODY);
    assert_int_equal(cl.misplaced_to_file, -EINVAL);
    if (tls)
        assert_int_equal(cl.spliced, 0);
    else
        assert_true(cl.spliced > 0);   /* more than one read's worth came around the parser */
    fix_check_file(cl.file_fd, 0, big, BIG_BODY);
    assert_int_equal(empty.ends, 1);
    assert_int_equal(empty.got_len, 0);
    free(empty.got);
    close(cl.file_fd);
    free(big);
    ferry_loop_free(loop);
    fix_conn_server_stop(&srv);
    ferry_tls_free(ctls);
    assert_int_equal(count_fds(), fds);
}

static void test_body_to_file_plain(void **state)
{
    (void)state;
    body_to_file(0);
}

static void test_body_to_file_tls(void **state)
{
    (void)state;
    body_to_file(1);
}

/* ---- bodies into a pipe ------------------------------------------------------- */

struct pipe_reader {
    int fd;
    uint8_t *buf;
    size_t len, cap;
};

static void *read_pipe(void *arg)
{
    struct pipe_reader *r = arg;

    for (;;) {
        ssize_t n = read(r->fd, r->buf + r->len, r->cap - r->len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        r->len += (size_t)n;
    }
    return NULL;
}

/* A body bigger than the pipe, read at the other end by a thread: exact
 * bytes; in the clear most of it spliced socket -> pipe, over TLS all of
 * it through the handler, which writes it itself. */
static void body_to_pipe(int tls)
{
    int fds = count_fds();
    struct fix_conn_server srv;
    struct ferry_loop *loop = NULL;
    struct ferry_tls *ctls = tls ? fix_psk_client(fix_psk_key, "ferry") : NULL;
    uint8_t *big = fix_pattern(BIG_BODY);
    int pfd[2];
    pthread_t th;

    assert_int_equal(pipe(pfd), 0);
    struct pipe_reader rd = { .fd = pfd[0], .buf = malloc(BIG_BODY + 1), .cap = BIG_BODY + 1 };
    struct fix_client cl = { .cmd = "blob", .blob = BIG_BODY, .to_pipe = 1, .file_fd = pfd[1] };

    assert_non_null(rd.buf);
    assert_int_equal(pthread_create(&th, NULL, read_pipe, &rd), 0);
    fix_conn_server_start(&srv, tls);
    assert_int_equal(ferry_loop_new(&loop), 0);
    fix_client_open(loop, &srv, ctls, &cl);
    assert_int_equal(ferry_loop_run(loop), 0);
    close(pfd[1]);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(cl.ends, 1);
    assert_int_equal(cl.close_reason, 0);
    assert_int_equal(cl.file_error, 0);
    assert_int_equal(cl.got_len, BIG_BODY);
    assert_int_equal(cl.spliced + cl.copied, BIG_BODY);
    if (tls)
        assert_int_equal(cl.spliced, 0);
    else
        assert_true(cl.spliced > BIG_BODY / 2);
    assert_int_equal(rd.len, BIG_BODY);
    assert_memory_equal(rd.buf, big, BIG_BODY);
    close(pfd[0]);
    free(rd.buf);
    free(big);
    ferry_loop_free(loop);
    fix_conn_server_stop(&srv);
    ferry_tls_free(ctls);
    assert_int_equal(count_fds(), fds);
}

static void test_body_to_pipe_plain(void **state)
{
    (void)state;
    body_to_pipe(0);
}

static void test_body_to_pipe_tls(void **state)
{
    (void)state;
    body_to_pipe(1);
}

/* The file refuses the body: one FRAME_ERROR with the file's code, then
 * the connection closes. */
static void test_body_to_file_error(void **state)
{
    int fds = count_fds();
    struct fix_conn_server srv;
    struct ferry_loop *loop = NULL;
    struct fix_client cl = { .cmd = "blob", .blob = BIG_BODY, .to_file = 1,
                         .file_fd = open("/dev/null", O_RDONLY | O_CLOEXEC) };
    (void)state;

    assert_true(cl.file_fd >= 0);
    fix_conn_server_start(&srv, 0);
    assert_int_equal(ferry_loop_new(&loop), 0);
    fix_client_open(loop, &srv, NULL, &cl);
    assert_int_equal(ferry_loop_run(loop), 0);
    assert_int_equal(cl.file_error, -EBADF);
    assert_int_equal(cl.ends, 0);
    assert_int_equal(cl.closed, 1);
    close(cl.file_fd);
    ferry_loop_free(loop);
    fix_conn_server_stop(&srv);
    assert_int_equal(count_fds(), fds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recvfile_tcp),
        cmocka_unit_test(test_recvfile_unix),
        cmocka_unit_test(test_recvfile_nonblocking_empty),
        cmocka_unit_test(test_recvfile_unsupported),
        cmocka_unit_test(test_recvfile_file_error),
        cmocka_unit_test(test_body_to_file_plain),
        cmocka_unit_test(test_body_to_file_tls),
        cmocka_unit_test(test_body_to_file_error),
        cmocka_unit_test(test_body_to_pipe_plain),
        cmocka_unit_test(test_body_to_pipe_tls),
    };

    signal(SIGPIPE, SIG_IGN);
    ferry_log_set_level(FERRY_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
