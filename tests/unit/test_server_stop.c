/*
 * test_server_stop.c - what a server says as its stop begins:
 * ferry_server_on_stop's function runs once (however many loops see the
 * stop), on a thread of the server's, before the connections hear of it,
 * and ferry_server_connections counts what it holds then.  (The fork
 * model's parent is ferryd's integration tests' business: test_ferryd.py.)
 *
 * The server runs on a thread of this process; the client blocks on its
 * socket with a receive timeout as a safety net.  Nothing sleeps.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>

#include "ferry/ferry.h"
#include "fix_sock.h"

static atomic_int told, conns_then;
static pthread_t server_thread;

static void on_stop(struct ferry_server *s, void *arg)
{
    (void)arg;
    atomic_fetch_add(&told, 1);
    atomic_store(&conns_then, ferry_server_connections(s));
}

static int on_data_echo(struct ferry_conn *c, const void *data, size_t len, void *arg)
{
    (void)arg;
    return ferry_conn_write(c, data, len);
}

static void *run(void *arg)
{
    return (void *)(intptr_t)ferry_server_run(arg);
}

static void stop_is_told_once(enum ferry_model model, int workers)
{
    struct ferry_server_opts o = { .model = model, .workers = workers };
    struct ferry_handler h = { .on_data = on_data_echo };
    struct ferry_server *s = NULL;
    char bound[FERRY_ADDRSTRLEN], buf[2];
    void *result;

    atomic_store(&told, 0);
    atomic_store(&conns_then, -1);
    assert_int_equal(ferry_server_new(&o, &s), 0);
    assert_int_equal(ferry_server_listen(s, "127.0.0.1:0", FERRY_SOCK_STREAM, &h, bound), 0);
    ferry_server_on_stop(s, on_stop, NULL);
    assert_int_equal(ferry_server_connections(s), 0);
    assert_int_equal(pthread_create(&server_thread, NULL, run, s), 0);

    struct ferry_transport *t = fix_dial(bound);
    assert_int_equal(ferry_transport_write_full(t, "hi", 2), 0);
    assert_int_equal(ferry_transport_read_full(t, buf, 2), 0);   /* served: it holds one */
    assert_int_equal(ferry_server_connections(s), 1);
    assert_int_equal(atomic_load(&told), 0);

    ferry_server_stop(s);
    ferry_server_stop(s);   /* a second request is the same stop */
    /* The idle connection is closed by the stop (after the told count);
     * our end goes too, so the server's close need not wait for it. */
    assert_int_equal(ferry_transport_read(t, buf, 1), 0);
    ferry_transport_free(t);
    assert_int_equal(pthread_join(server_thread, &result), 0);
    assert_int_equal((intptr_t)result, 0);
    assert_int_equal(atomic_load(&told), 1);
    assert_int_equal(atomic_load(&conns_then), 1);   /* before the connection was closed */
    assert_int_equal(ferry_server_connections(s), 0);
    ferry_server_free(s);
}

static void test_event_one_worker(void **state) { (void)state; stop_is_told_once(FERRY_MODEL_EVENT, 1); }
static void test_event_workers(void **state) { (void)state; stop_is_told_once(FERRY_MODEL_EVENT, 3); }
static void test_thread(void **state) { (void)state; stop_is_told_once(FERRY_MODEL_THREAD, 0); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_one_worker),
        cmocka_unit_test(test_event_workers),
        cmocka_unit_test(test_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
