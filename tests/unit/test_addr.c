/*
 * test_addr.c - endpoint syntax, formatting round trips, and the listen /
 * connect helpers on loopback and unix sockets.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ferry/addr.h"
#include "ferry/error.h"
#include "fix_tmp.h"

/* ---- helpers ----------------------------------------------------------- */

static const char *fmt(const struct ferry_addr *a, char buf[FERRY_ADDRSTRLEN])
{
    return ferry_addr_format((const struct sockaddr *)&a->ss, a->len, buf);
}

static unsigned port_of(const struct ferry_addr *a)
{
    if (a->ss.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
}

/* Parse `text` and expect it to format back as `want`. */
static void expect_round_trip(const char *text, int default_port, const char *want)
{
    struct ferry_addr a;
    char buf[FERRY_ADDRSTRLEN];

    assert_int_equal(ferry_addr_parse(text, default_port, &a), 0);
    assert_string_equal(fmt(&a, buf), want);
}

static void expect_bad(const char *text, int default_port)
{
    struct ferry_addr a;

    if (ferry_addr_parse(text, default_port, &a) != FERRY_EADDR)
        fail_msg("\"%s\" (default port %d) was accepted", text, default_port);
}

static int ipv6_available(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return 0;
    close(fd);
    return 1;
}

/* A fresh directory for unix socket paths, removed by teardown. */
static char tmpdir[64];

static int make_tmpdir(void **state)
{
    return fix_tmpdir_make(tmpdir, sizeof tmpdir, "ferry-test-addr");
}

/* Tests remove their own files; these are the leftovers of a failed one. */
static int remove_tmpdir(void **state)
{
    static const char *const names[] = { "s.sock", "stale.sock", "not-a-socket" };
    char path[128];

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
        unlink(path);
    }
    return rmdir(tmpdir);
}

/* ---- parsing ----------------------------------------------------------- */

static void test_parse_host_port(void **state)
{
    struct ferry_addr a;

    expect_round_trip("127.0.0.1:7171", -1, "127.0.0.1:7171");
    expect_round_trip("10.1.2.3:0", -1, "10.1.2.3:0");
    expect_round_trip("127.0.0.1:65535", -1, "127.0.0.1:65535");
    expect_round_trip("127.0.0.1:080", -1, "127.0.0.1:80");

    /* A name: whatever the resolver puts first, it is loopback. */
    assert_int_equal(ferry_addr_parse("localhost:7171", -1, &a), 0);
    assert_true(a.ss.ss_family == AF_INET || a.ss.ss_family == AF_INET6);
    assert_int_equal(port_of(&a), 7171);
    assert_true(ferry_addr_is_loopback(&a));
}

static void test_parse_default_port(void **state)
{
    expect_round_trip("127.0.0.1", 8080, "127.0.0.1:8080");
    expect_round_trip("[::1]", 9, "[::1]:9");
    expect_round_trip("*", 7171, "[::]:7171");
    expect_round_trip("127.0.0.1:1", 8080, "127.0.0.1:1");
    expect_bad("127.0.0.1", -1);
    expect_bad("[::1]", -1);
    expect_bad("127.0.0.1", 65536);
}

static void test_parse_wildcard(void **state)
{
    struct ferry_addr a;

    expect_round_trip("*:8080", -1, "[::]:8080");
    expect_round_trip(":8080", -1, "[::]:8080");
    expect_round_trip("[::]:8080", -1, "[::]:8080");
    assert_int_equal(ferry_addr_parse("*:0", -1, &a), 0);
    assert_int_equal(a.ss.ss_family, AF_INET6);
    assert_int_equal(a.len, sizeof(struct sockaddr_in6));
    assert_false(ferry_addr_is_loopback(&a));
}

static void test_parse_ipv6(void **state)
{
    expect_round_trip("[::1]:7171", -1, "[::1]:7171");
    expect_round_trip("[2001:db8::1]:443", -1, "[2001:db8::1]:443");
    expect_round_trip("[::ffff:127.0.0.1]:1", -1, "[::ffff:127.0.0.1]:1");
    expect_bad("::1:80", -1);          /* needs brackets */
    expect_bad("::1", 80);
    expect_bad("[::1", -1);
    expect_bad("[::1]x", -1);
    expect_bad("[::1]:", -1);
    expect_bad("[::1]:x", -1);
    expect_bad("[]:80", -1);
    expect_bad("[127.0.0.1]:80", -1);  /* brackets are for IPv6 only */
    expect_bad("[localhost]:80", -1);
}

static void test_parse_bad_ports(void **state)
{
    expect_bad("127.0.0.1:", -1);
    expect_bad("127.0.0.1:", 80);
    expect_bad("127.0.0.1:65536", -1);
    expect_bad("127.0.0.1:99999999999999999999", -1);
    expect_bad("127.0.0.1:12a", -1);
    expect_bad("127.0.0.1:-1", -1);
    expect_bad("127.0.0.1:+1", -1);
    expect_bad("127.0.0.1: 1", -1);
    expect_bad(":", -1);
}

static void test_parse_bad_syntax(void **state)
{
    struct ferry_addr a;

    expect_bad("", -1);
    expect_bad("", 80);
    assert_int_equal(ferry_addr_parse(NULL, 80, &a), FERRY_EADDR);
    expect_bad("no-such-host.invalid:80", -1);
    expect_bad("a:b:c", -1);
}

static void test_parse_unix(void **state)
{
    char path[200];
    struct ferry_addr a;
    size_t max = sizeof(((struct sockaddr_un *)NULL)->sun_path) - 1;

    expect_round_trip("unix:/tmp/ferry.sock", -1, "unix:/tmp/ferry.sock");
    expect_round_trip("unix:/tmp/ferry.sock", 80, "unix:/tmp/ferry.sock");
    expect_bad("unix:", -1);

    /* The longest path that still leaves room for the terminating NUL. */
    strcpy(path, "unix:/");
    memset(path + 6, 'p', max - 1);
    path[5 + max] = '\0';
    assert_int_equal(ferry_addr_parse(path, -1, &a), 0);
    assert_int_equal(a.ss.ss_family, AF_UNIX);
    strcat(path, "p");
    expect_bad(path, -1);
}

/* ---- formatting -------------------------------------------------------- */

static void test_format_unnamed_unix_and_unknown(void **state)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char buf[FERRY_ADDRSTRLEN];
    int sv[2];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(getpeername(sv[0], (struct sockaddr *)&ss, &len), 0);
    assert_string_equal(ferry_addr_format((struct sockaddr *)&ss, len, buf), "unix:");
    assert_int_equal(ferry_sock_name(sv[1], buf), 0);
    assert_string_equal(buf, "unix:");
    close(sv[0]);
    close(sv[1]);

    memset(&ss, 0, sizeof(ss));
    ss.ss_family = AF_UNSPEC;
    assert_string_equal(ferry_addr_format((struct sockaddr *)&ss, sizeof(ss), buf), "?");
    assert_int_equal(ferry_sock_name(-1, buf), -EBADF);
}

static void test_loopback_detection(void **state)
{
    static const struct {
        const char *text;
        int loopback;
    } cases[] = {
        { "127.0.0.1:1", 1 },       { "127.255.1.2:1", 1 },  { "128.0.0.1:1", 0 },
        { "10.0.0.1:1", 0 },        { "[::1]:1", 1 },        { "[::2]:1", 0 },
        { "[::]:1", 0 },            { "[::ffff:127.0.0.1]:1", 1 },
        { "[::ffff:10.0.0.1]:1", 0 }, { "unix:/tmp/x", 1 },
    };
    struct ferry_addr a;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(ferry_addr_parse(cases[i].text, -1, &a), 0);
        if (ferry_addr_is_loopback(&a) != cases[i].loopback)
            fail_msg("%s: expected loopback=%d", cases[i].text, cases[i].loopback);
    }
    assert_false(ferry_addr_is_loopback(NULL));
}

/* ---- sockets ----------------------------------------------------------- */

static void test_listen_port_zero_and_connect(void **state)
{
    struct ferry_addr a, bound;
    char name[FERRY_ADDRSTRLEN], peer[FERRY_ADDRSTRLEN];
    int lfd, cfd, afd;

    assert_int_equal(ferry_addr_parse("127.0.0.1:0", -1, &a), 0);
    lfd = ferry_listen(&a, FERRY_SOCK_STREAM, NULL);
    assert_true(lfd >= 0);
    assert_true(fcntl(lfd, F_GETFL) & O_NONBLOCK);
    assert_true(fcntl(lfd, F_GETFD) & FD_CLOEXEC);

    assert_int_equal(ferry_sock_name(lfd, name), 0);
    assert_int_equal(strncmp(name, "127.0.0.1:", 10), 0);
    assert_string_not_equal(name, "127.0.0.1:0");

    /* The formatted name is itself a valid endpoint. */
    assert_int_equal(ferry_addr_parse(name, -1, &bound), 0);
    cfd = ferry_connect(&bound, 2000);
    assert_true(cfd >= 0);
    assert_false(fcntl(cfd, F_GETFL) & O_NONBLOCK);
    assert_true(fcntl(cfd, F_GETFD) & FD_CLOEXEC);

    afd = accept(lfd, NULL, NULL);
    assert_true(afd >= 0);
    assert_int_equal(ferry_sock_name(cfd, peer), 0);
    assert_int_equal(strncmp(peer, "127.0.0.1:", 10), 0);
    close(afd);
    close(cfd);
    close(lfd);
}

static void test_connect_refused(void **state)
{
    struct ferry_addr a;
    char name[FERRY_ADDRSTRLEN];
    int lfd;

    /* Borrow an ephemeral port, then free it: nothing listens there now. */
    assert_int_equal(ferry_addr_parse("127.0.0.1:0", -1, &a), 0);
    lfd = ferry_listen(&a, FERRY_SOCK_STREAM, NULL);
    assert_true(lfd >= 0);
    assert_int_equal(ferry_sock_name(lfd, name), 0);
    close(lfd);
    assert_int_equal(ferry_addr_parse(name, -1, &a), 0);
    assert_int_equal(ferry_connect(&a, 2000), -ECONNREFUSED);
    assert_int_equal(ferry_connect(&a, 0), -ECONNREFUSED);
    assert_int_equal(ferry_connect(NULL, 0), -EINVAL);
}

/* Wait until fd is writable (a connect in progress has an answer). */
static void wait_writable(int fd)
{
    struct pollfd pfd = { .fd = fd, .events = POLLOUT };

    assert_int_equal(poll(&pfd, 1, 5000), 1);
}

static void test_connect_start_nonblocking(void **state)
{
    struct ferry_addr a;
    char name[FERRY_ADDRSTRLEN];
    int lfd, cfd = -1, afd, r;

    (void)state;
    assert_int_equal(ferry_addr_parse("127.0.0.1:0", -1, &a), 0);
    lfd = ferry_listen(&a, FERRY_SOCK_STREAM, NULL);
    assert_true(lfd >= 0);
    assert_int_equal(ferry_sock_name(lfd, name), 0);
    assert_int_equal(ferry_addr_parse(name, -1, &a), 0);
    r = ferry_connect_start(&a, &cfd);
    assert_true(r == 0 || r == FERRY_CONNECT_IN_PROGRESS);
    assert_true(cfd >= 0);
    assert_true(fcntl(cfd, F_GETFL) & O_NONBLOCK);
    assert_true(fcntl(cfd, F_GETFD) & FD_CLOEXEC);
    wait_writable(cfd);
    assert_int_equal(ferry_connect_finish(cfd), 0);
    afd = accept(lfd, NULL, NULL);
    assert_true(afd >= 0);
    close(afd);
    close(cfd);
    close(lfd);
    assert_int_equal(ferry_connect_start(NULL, &cfd), -EINVAL);
}

/* A refused port: "in progress" first (or refused at once), then the
 * refusal from ferry_connect_finish, never a false success. */
static void test_connect_start_refused(void **state)
{
    struct ferry_addr a;
    char name[FERRY_ADDRSTRLEN];
    int lfd, cfd = -1, r;

    (void)state;
    assert_int_equal(ferry_addr_parse("127.0.0.1:0", -1, &a), 0);
    lfd = ferry_listen(&a, FERRY_SOCK_STREAM, NULL);
    assert_true(lfd >= 0);
    assert_int_equal(ferry_sock_name(lfd, name), 0);
    close(lfd);
    assert_int_equal(ferry_addr_parse(name, -1, &a), 0);
    r = ferry_connect_start(&a, &cfd);
    if (r == FERRY_CONNECT_IN_PROGRESS) {
        assert_true(cfd >= 0);
        wait_writable(cfd);
        assert_int_equal(ferry_connect_finish(cfd), -ECONNREFUSED);
        close(cfd);
    } else {
        assert_int_equal(r, -ECONNREFUSED);
        assert_int_equal(cfd, -1);
    }
}

/* A unix socket connects at once, or fails at once: no "in progress". */
static void test_connect_start_unix(void **state)
{
    char text[128];
    struct ferry_addr a;
    int lfd, cfd = -1;

    (void)state;
    snprintf(text, sizeof(text), "unix:%s/nb.sock", tmpdir);
    assert_int_equal(ferry_addr_parse(text, -1, &a), 0);
    assert_int_equal(ferry_connect_start(&a, &cfd), -ENOENT);
    assert_int_equal(cfd, -1);
    lfd = ferry_listen(&a, FERRY_SOCK_STREAM, NULL);
    assert_true(lfd >= 0);
    assert_int_equal(ferry_connect_start(&a, &cfd), 0);
    assert_int_equal(ferry_connect_finish(cfd), 0);
    close(cfd);
    close(lfd);
    unlink(text + 5);
}

static void test_dual_stack_wildcard_accepts_ipv4(void **state)
{
    struct ferry_addr a, v4;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char name[FERRY_ADDRSTRLEN], peer[FERRY_ADDRSTRLEN], target[FERRY_ADDRSTRLEN];
    const char *port;
    int lfd, cfd, afd;

    if (!ipv6_available())
        skip();
    assert_int_equal(ferry_addr_parse("*:0", -1, &a), 0);
    lfd = ferry_listen(&a, FERRY_SOCK_STREAM, NULL);
    assert_true(lfd >= 0);
    assert_int_equal(ferry_sock_name(lfd, name), 0);
    assert_int_equal(strncmp(name, "[::]:", 5), 0);

    port = strrchr(name, ':') + 1;
    snprintf(target, sizeof(target), "127.0.0.1:%s", port);
    assert_int_equal(ferry_addr_parse(target, -1, &v4), 0);
    cfd = ferry_connect(&v4, 2000);
    assert_true(cfd >= 0);

    afd = accept(lfd, (struct sockaddr *)&ss, &len);
    assert_true(afd >= 0);
    ferry_addr_format((struct sockaddr *)&ss, len, peer);
    assert_int_equal(strncmp(peer, "[::ffff:127.0.0.1]:", 19), 0);
    close(afd);
    close(cfd);
    close(lfd);
}

static void test_reuse_port(void **state)
{
    struct ferry_addr a;
    struct ferry_listen_opts opts = { .reuse_port = 1 };
    char name[FERRY_ADDRSTRLEN];
    int fd1, fd2, fd3;

    assert_int_equal(ferry_addr_parse("127.0.0.1:0", -1, &a), 0);
    fd1 = ferry_listen(&a, FERRY_SOCK_STREAM, &opts);
    assert_true(fd1 >= 0);
    assert_int_equal(ferry_sock_name(fd1, name), 0);
    assert_int_equal(ferry_addr_parse(name, -1, &a), 0);

    fd2 = ferry_listen(&a, FERRY_SOCK_STREAM, &opts);
    assert_true(fd2 >= 0);
    fd3 = ferry_listen(&a, FERRY_SOCK_STREAM, NULL);
    assert_int_equal(fd3, -EADDRINUSE);
    close(fd1);
    close(fd2);
}

static void test_listen_datagram(void **state)
{
    struct ferry_addr a;
    char name[FERRY_ADDRSTRLEN];
    int type = 0;
    socklen_t len = sizeof(type);
    int fd;

    assert_int_equal(ferry_addr_parse("127.0.0.1:0", -1, &a), 0);
    fd = ferry_listen(&a, FERRY_SOCK_DGRAM, &(struct ferry_listen_opts){ .reuse_port = 1 });
    assert_true(fd >= 0);
    assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len), 0);
    assert_int_equal(type, SOCK_DGRAM);
    assert_int_equal(ferry_sock_name(fd, name), 0);
    assert_string_not_equal(name, "127.0.0.1:0");
    close(fd);
    assert_int_equal(ferry_listen(&a, (enum ferry_sock_type)7, NULL), -EINVAL);
}

static void test_unix_listen_and_connect(void **state)
{
    char text[128], name[FERRY_ADDRSTRLEN];
    struct ferry_addr a;
    int lfd, cfd, afd;

    snprintf(text, sizeof(text), "unix:%s/s.sock", tmpdir);
    assert_int_equal(ferry_addr_parse(text, -1, &a), 0);
    lfd = ferry_listen(&a, FERRY_SOCK_STREAM, &(struct ferry_listen_opts){ .reuse_port = 1 });
    assert_true(lfd >= 0);
    assert_int_equal(ferry_sock_name(lfd, name), 0);
    assert_string_equal(name, text);

    cfd = ferry_connect(&a, 1000);
    assert_true(cfd >= 0);
    assert_false(fcntl(cfd, F_GETFL) & O_NONBLOCK);
    afd = accept(lfd, NULL, NULL);
    assert_true(afd >= 0);
    close(afd);
    close(cfd);
    close(lfd);
    unlink(text + 5);

    assert_int_equal(ferry_connect(&a, 1000), -ENOENT);
}

static void test_unix_stale_socket(void **state)
{
    struct ferry_listen_opts unlink_opts = { .unlink_existing = 1 };
    char text[128];
    struct ferry_addr a;
    struct stat st;
    int fd;

    snprintf(text, sizeof(text), "unix:%s/stale.sock", tmpdir);
    assert_int_equal(ferry_addr_parse(text, -1, &a), 0);

    /* Closing a listener leaves its socket file behind. */
    fd = ferry_listen(&a, FERRY_SOCK_STREAM, NULL);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(lstat(text + 5, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(ferry_connect(&a, 1000), -ECONNREFUSED);

    assert_int_equal(ferry_listen(&a, FERRY_SOCK_STREAM, NULL), -EADDRINUSE);
    fd = ferry_listen(&a, FERRY_SOCK_STREAM, &unlink_opts);
    assert_true(fd >= 0);
    close(fd);
    unlink(text + 5);
}

static void test_unix_unlink_spares_regular_files(void **state)
{
    struct ferry_listen_opts unlink_opts = { .unlink_existing = 1 };
    char text[128];
    struct ferry_addr a;
    struct stat st;
    int fd;

    snprintf(text, sizeof(text), "unix:%s/not-a-socket", tmpdir);
    fd = open(text + 5, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    close(fd);

    assert_int_equal(ferry_addr_parse(text, -1, &a), 0);
    assert_int_equal(ferry_listen(&a, FERRY_SOCK_STREAM, &unlink_opts), -EADDRINUSE);
    assert_int_equal(lstat(text + 5, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    unlink(text + 5);
}

/* A name with several addresses: the server listens on only one of them
 * (127.0.0.1), and ferry_connect_host must find it whatever the resolver's
 * order for "localhost" is. */
static void test_connect_host_tries_every_address(void **state)
{
    struct ferry_addr a, got;
    char bound[FERRY_ADDRSTRLEN], text[64];
    const char *port;
    (void)state;

    assert_int_equal(ferry_addr_parse("127.0.0.1:0", -1, &a), 0);
    int lfd = ferry_listen(&a, FERRY_SOCK_STREAM, NULL);
    assert_true(lfd >= 0);
    assert_int_equal(ferry_sock_name(lfd, bound), 0);
    port = strrchr(bound, ':') + 1;

    snprintf(text, sizeof text, "localhost:%s", port);
    int fd = ferry_connect_host(text, -1, 2000, &got);
    assert_true(fd >= 0);
    assert_int_equal(got.ss.ss_family, AF_INET);
    close(fd);

    /* The default port applies when the text has none. */
    fd = ferry_connect_host("127.0.0.1", atoi(port), 2000, NULL);
    assert_true(fd >= 0);
    close(fd);

    assert_int_equal(ferry_connect_host("no-such-host.invalid:1", -1, 2000, NULL), FERRY_EADDR);
    assert_int_equal(ferry_connect_host("*:1", -1, 2000, NULL), FERRY_EADDR);
    close(lfd);
    /* Nobody listens any more: the attempt's own error comes back. */
    assert_int_equal(ferry_connect_host(text, -1, 2000, NULL), -ECONNREFUSED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_host_port),
        cmocka_unit_test(test_parse_default_port),
        cmocka_unit_test(test_parse_wildcard),
        cmocka_unit_test(test_parse_ipv6),
        cmocka_unit_test(test_parse_bad_ports),
        cmocka_unit_test(test_parse_bad_syntax),
        cmocka_unit_test(test_parse_unix),
        cmocka_unit_test(test_format_unnamed_unix_and_unknown),
        cmocka_unit_test(test_loopback_detection),
        cmocka_unit_test(test_listen_port_zero_and_connect),
        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test(test_connect_start_nonblocking),
        cmocka_unit_test(test_connect_start_refused),
        cmocka_unit_test(test_connect_start_unix),
        cmocka_unit_test(test_dual_stack_wildcard_accepts_ipv4),
        cmocka_unit_test(test_reuse_port),
        cmocka_unit_test(test_listen_datagram),
        cmocka_unit_test(test_unix_listen_and_connect),
        cmocka_unit_test(test_unix_stale_socket),
        cmocka_unit_test(test_unix_unlink_spares_regular_files),
        cmocka_unit_test(test_connect_host_tries_every_address),
    };

    return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
