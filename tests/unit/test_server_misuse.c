/*
 * test_server_misuse.c - what a newcomer's slips with the server API get:
 * the codes server.h names, never a crash (an unknown or NULL model name,
 * running with no endpoint, no handler, an empty one, both input
 * callbacks, a port already taken, a write after close, a reply to a unix
 * datagram peer without an address), and a handler's own refusal (on_data
 * returning C's habitual -1) named with its callback in the log.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "ferry/ferry.h"
#include "fix_server.h"
#include "fix_sock.h"

static int on_data_echo(struct ferry_conn *c, const void *data, size_t len, void *arg)
{
    (void)arg;
    return ferry_conn_write(c, data, len);
}

/* A handler that refuses input with C's habitual -1: the connection closes,
 * on_close hears why, and the debug line names the callback rather than
 * leaving "Operation not permitted" to look like a system's error. */
static atomic_int refused_reason;

static int on_data_refuse(struct ferry_conn *c, const void *data, size_t len, void *arg)
{
    (void)c;
    (void)data;
    (void)len;
    (void)arg;
    return -1;
}

static void on_close_note(struct ferry_conn *c, int reason, void *arg)
{
    (void)c;
    (void)arg;
    atomic_store(&refused_reason, reason);
}

static void test_handler_refusal_is_named(void **state)
{
    struct ferry_handler h = { .on_data = on_data_refuse, .on_close = on_close_note };
    enum ferry_log_level level = ferry_log_get_level();
    char log[4096] = { 0 };
    char path[] = "/tmp/ferry-test-log.XXXXXX";
    struct fix_server r;
    char byte;
    int saved, fd;
    (void)state;

    fd = mkstemp(path);          /* the server's log lines, read back below */
    assert_true(fd >= 0);
    unlink(path);
    saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
    ferry_log_set_level(FERRY_LOG_DEBUG);
    fix_server_start(&r, NULL, &h, "127.0.0.1:0", FERRY_SOCK_STREAM);
    struct ferry_transport *t = fix_dial(r.bound);
    assert_int_equal(ferry_transport_write_full(t, "x", 1), 0);
    assert_true(ferry_transport_read(t, &byte, 1) <= 0);   /* closed: EOF or reset */
    ferry_transport_free(t);
    fix_server_stop(&r);
    ferry_log_set_level(level);
    assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
    close(saved);
    assert_true(pread(fd, log, sizeof log - 1, 0) > 0);
    close(fd);
    assert_int_equal(atomic_load(&refused_reason), -EPERM);
    assert_non_null(strstr(log, "the handler's on_data returned -1 (EPERM), closing"));
}

/* The slips a newcomer makes are refused with the codes server.h names,
 * not a crash: no handler, an empty one, both input callbacks, a port
 * already taken. */
static int on_frame_ignore(struct ferry_conn *c, struct ferry_frame_event *ev, void *arg)
{
    (void)c;
    (void)arg;
    if (ev->type == FERRY_FRAME_HEADER)
        json_decref(ev->header);
    return 0;
}

static void test_listen_refuses_handler_slips(void **state)
{
    struct ferry_handler none = { 0 };
    struct ferry_handler both = { .on_data = on_data_echo, .on_frame = on_frame_ignore };
    struct ferry_handler h = { .on_data = on_data_echo };
    struct ferry_server *s = NULL;
    char bound[FERRY_ADDRSTRLEN];
    int sock;
    (void)state;

    struct ferry_server_opts bad_model = { .model = (enum ferry_model)3 };
    assert_int_equal(ferry_model_parse(NULL, &bad_model.model), -EINVAL);
    assert_int_equal(ferry_model_parse("Event", &bad_model.model), -EINVAL);
    assert_int_equal(bad_model.model, 3);
    assert_int_equal(ferry_server_new(&bad_model, &s), -EINVAL);
    assert_null(s);
    assert_int_equal(ferry_server_new(NULL, &s), 0);
    assert_int_equal(ferry_server_run(s), -EINVAL);    /* nothing to serve yet */
    assert_int_equal(ferry_server_listen(s, "127.0.0.1:0", FERRY_SOCK_STREAM, NULL, NULL), -EINVAL);
    assert_int_equal(ferry_server_listen(s, "127.0.0.1:0", FERRY_SOCK_DGRAM, NULL, NULL), -EINVAL);
    assert_int_equal(ferry_server_listen(s, "127.0.0.1:0", FERRY_SOCK_STREAM, &none, NULL), -EINVAL);
    assert_int_equal(ferry_server_listen(s, "127.0.0.1:0", FERRY_SOCK_STREAM, &both, NULL), -EINVAL);
    assert_int_equal(ferry_server_listen(s, "127.0.0.1", FERRY_SOCK_STREAM, &h, NULL), FERRY_EADDR);
    assert_int_equal(ferry_server_listen(s, NULL, FERRY_SOCK_STREAM, &h, NULL), FERRY_EADDR);
    sock = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(sock >= 0);
    assert_int_equal(ferry_server_listen_fd(s, sock, NULL, NULL, NULL), -EINVAL);
    close(sock);

    assert_int_equal(ferry_server_listen(s, "127.0.0.1:0", FERRY_SOCK_STREAM, &h, bound), 0);
    assert_int_equal(ferry_server_listen(s, bound, FERRY_SOCK_STREAM, &h, NULL), -EADDRINUSE);
    assert_string_equal(ferry_strerror(-EADDRINUSE), strerror(EADDRINUSE));
    ferry_server_free(s);
}

/* A write after ferry_conn_close is FERRY_ECLOSED, as conn.h says. */
static atomic_int late_write;

static int on_data_close_then_write(struct ferry_conn *c, const void *data, size_t len, void *arg)
{
    (void)arg;
    ferry_conn_close(c);
    atomic_store(&late_write, ferry_conn_write(c, data, len));
    return 0;
}

static void test_write_after_close_is_eclosed(void **state)
{
    struct ferry_handler h = { .on_data = on_data_close_then_write };
    struct fix_server r;
    char byte;
    (void)state;

    atomic_store(&late_write, 1);
    fix_server_start(&r, NULL, &h, "127.0.0.1:0", FERRY_SOCK_STREAM);
    struct ferry_transport *t = fix_dial(r.bound);
    assert_int_equal(ferry_transport_write_full(t, "x", 1), 0);
    assert_int_equal(ferry_transport_read(t, &byte, 1), 0);   /* closed, nothing echoed */
    ferry_transport_free(t);
    fix_server_stop(&r);
    assert_int_equal(atomic_load(&late_write), FERRY_ECLOSED);
}

/* A unix datagram client that bound no address cannot be answered: the
 * reply's code says so (-ENOTCONN, as server.h tells), and the server
 * goes on answering those that did bind. */
static int replies[2];
static atomic_int nreplies;

static void on_datagram_reply(const struct ferry_datagram *d, void *arg)
{
    int i = atomic_fetch_add(&nreplies, 1);
    (void)arg;
    if (i < 2)
        replies[i] = ferry_datagram_reply(d, d->data, d->len);
}

static void test_unbound_unix_datagram_peer_cannot_be_answered(void **state)
{
    struct ferry_handler h = { .on_datagram = on_datagram_reply };
    struct timeval tv = { .tv_sec = 10 };
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    struct fix_server r;
    char path[64], endpoint[80], mine[64], buf[8];
    (void)state;

    snprintf(path, sizeof path, "/tmp/ferry-test-%d.dgram", (int)getpid());
    snprintf(mine, sizeof mine, "/tmp/ferry-test-%d.client", (int)getpid());
    snprintf(endpoint, sizeof endpoint, "unix:%s", path);
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
    unlink(mine);
    fix_server_start(&r, NULL, &h, endpoint, FERRY_SOCK_DGRAM);

    int anon = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(anon >= 0);
    assert_int_equal(sendto(anon, "one", 3, 0, (struct sockaddr *)&sun, sizeof sun), 3);
    /* A bound client next: its answer means the first was handled. */
    struct sockaddr_un me = { .sun_family = AF_UNIX };
    snprintf(me.sun_path, sizeof me.sun_path, "%s", mine);
    int named = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(named >= 0);
    assert_int_equal(bind(named, (struct sockaddr *)&me, sizeof me), 0);
    setsockopt(named, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    assert_int_equal(sendto(named, "two", 3, 0, (struct sockaddr *)&sun, sizeof sun), 3);
    assert_int_equal(recv(named, buf, sizeof buf, 0), 3);
    assert_memory_equal(buf, "two", 3);
    fix_server_stop(&r);
    assert_int_equal(replies[0], -ENOTCONN);
    assert_int_equal(replies[1], 0);
    close(anon);
    close(named);
    unlink(mine);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listen_refuses_handler_slips),
        cmocka_unit_test(test_handler_refusal_is_named),
        cmocka_unit_test(test_write_after_close_is_eclosed),
        cmocka_unit_test(test_unbound_unix_datagram_peer_cannot_be_answered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
