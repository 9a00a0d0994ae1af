/*
 * test_lookup.c - host names looked up off the loop (src/ferry/lookup.c):
 * addresses and hosts-file names answered at once, other names by the
 * worker threads with the answer delivered on the loop, at most
 * max_threads of them however many names wait, cancelled requests never
 * answered, and the pool freed with requests queued and running (the
 * workers finish on their own; ASan and TSan watch).  The names that go to
 * the workers here are answered by /etc/hosts (localhost), so the tests
 * need no DNS; a slow DNS server is test_fleet_lookup.py's.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fix_tmp.h"
#include "lookup.h"

#define MANY 40

struct answers {
    struct ferry_loop *loop;
    int calls, want, last_n;
    int seen[MANY];
    struct ferry_addr first;
};

struct tag {
    struct answers *a;
    int i;
};

static void on_answer(void *arg, int n, const struct ferry_addr *addrs)
{
    struct tag *t = arg;
    struct answers *a = t->a;

    a->calls++;
    a->seen[t->i]++;
    a->last_n = n;
    if (n > 0)
        a->first = addrs[0];
    if (a->calls >= a->want)
        ferry_loop_stop(a->loop);
}

static void on_deadline(struct ferry_loop *loop, struct ferry_timer *t, void *arg)
{
    (void)t;
    *(int *)arg = 1;
    ferry_loop_stop(loop);
}

/* Run the loop until `want` answers came, or 10 s passed (then fail). */
static void wait_answers(struct answers *a, int want)
{
    int late = 0;
    struct ferry_timer *t = ferry_loop_timer(a->loop, 10000, on_deadline, &late);

    assert_non_null(t);
    a->want = want;
    while (a->calls < want && !late)
        assert_int_equal(ferry_loop_run(a->loop), 0);
    ferry_timer_cancel(t);
    assert_false(late);
}

static uint16_t port_of(const struct ferry_addr *a)
{
    return ntohs(a->ss.ss_family == AF_INET ? ((const struct sockaddr_in *)&a->ss)->sin_port
                                            : ((const struct sockaddr_in6 *)&a->ss)->sin6_port);
}

static int is_loopback(const struct ferry_addr *a)
{
    return ferry_addr_is_loopback(a) && a->ss.ss_family != AF_UNIX;
}

static int count_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int n = 0;

    if (!d)
        return -1;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void *nothing(void *arg)
{
    return arg;
}

/* First, while no other pool's workers linger: with max_threads 2, forty
 * names are all answered, by two workers at most.  (A thread made and
 * joined first: TSan starts a thread of its own with the first one.) */
static void test_bounded_workers(void **state)
{
    struct answers a = { 0 };
    struct tag tags[MANY];
    struct lookup_pool *p;
    struct lookup *q;
    struct ferry_addr out[LOOKUP_MAX_ADDRS];
    pthread_t t;
    int before;

    (void)state;
    assert_int_equal(pthread_create(&t, NULL, nothing, NULL), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    before = count_threads();
    assert_true(before > 0);
    assert_int_equal(ferry_loop_new(&a.loop), 0);
    assert_int_equal(lookup_pool_new(a.loop, 2, "", &p), 0);
    for (int i = 0; i < MANY; i++) {
        tags[i] = (struct tag){ &a, i };
        assert_int_equal(lookup_start(p, "localhost", 7000, out, LOOKUP_MAX_ADDRS, on_answer,
                                      &tags[i], &q), 0);
        assert_non_null(q);
        assert_true(count_threads() - before <= 2);
    }
    wait_answers(&a, MANY);
    for (int i = 0; i < MANY; i++)
        assert_int_equal(a.seen[i], 1);
    assert_true(a.last_n >= 1);
    assert_true(is_loopback(&a.first));
    assert_int_equal(port_of(&a.first), 7000);
    assert_true(count_threads() - before <= 2);
    lookup_pool_free(p);
    ferry_loop_free(a.loop);
}

/* Addresses (v4, v6) and names the hosts file lists need no worker. */
static void test_at_once(void **state)
{
    struct answers a = { 0 };
    struct tag tag = { &a, 0 };
    struct lookup_pool *p;
    struct lookup *q = (struct lookup *)1;
    struct ferry_addr out[LOOKUP_MAX_ADDRS];
    char dir[256], hosts[300];
    FILE *f;

    (void)state;
    assert_int_equal(fix_tmpdir_make(dir, sizeof dir, "test_lookup"), 0);
    snprintf(hosts, sizeof hosts, "%s/hosts", dir);
    f = fopen(hosts, "w");
    assert_non_null(f);
    fputs("# a comment line\n127.0.0.1\tother.test LocalHost # trailing\n\n::1 ip6-x\n", f);
    fclose(f);
    assert_int_equal(ferry_loop_new(&a.loop), 0);
    assert_int_equal(lookup_pool_new(a.loop, 4, hosts, &p), 0);

    assert_int_equal(lookup_start(p, "127.0.0.3", 7171, out, 8, on_answer, &tag, &q), 1);
    assert_null(q);
    assert_int_equal(out[0].ss.ss_family, AF_INET);
    assert_int_equal(port_of(&out[0]), 7171);
    assert_int_equal(lookup_start(p, "::1", 1, out, 8, on_answer, &tag, &q), 1);
    assert_int_equal(out[0].ss.ss_family, AF_INET6);
    assert_int_equal(port_of(&out[0]), 1);
    /* Listed (any case): getaddrinfo on the spot answers from the file. */
    assert_true(lookup_start(p, "localhost", 22, out, 8, on_answer, &tag, &q) >= 1);
    assert_null(q);
    assert_true(is_loopback(&out[0]));
    /* Not names at all. */
    assert_int_equal(lookup_start(p, "", 1, out, 8, on_answer, &tag, &q), FERRY_EADDR);
    assert_int_equal(lookup_start(p, "1.2.3.4", 1, out, 0, on_answer, &tag, &q), FERRY_EADDR);
    assert_int_equal(a.calls, 0);
    assert_int_equal(count_threads() >= 1, 1);
    lookup_pool_free(p);
    ferry_loop_free(a.loop);
    fix_tmpdir_remove(dir);
}

/* A cancelled request is never answered, wherever it was (queued,
 * looked up, answered but not yet delivered); the others are. */
static void test_cancel(void **state)
{
    struct answers a = { 0 };
    struct tag tags[MANY];
    struct lookup *qs[MANY];
    struct lookup_pool *p;
    struct ferry_addr out[LOOKUP_MAX_ADDRS];
    int kept = 0;

    (void)state;
    assert_int_equal(ferry_loop_new(&a.loop), 0);
    /* One worker: requests are looked up and answered in order. */
    assert_int_equal(lookup_pool_new(a.loop, 1, "", &p), 0);
    for (int i = 0; i < MANY; i++) {
        tags[i] = (struct tag){ &a, i };
        assert_int_equal(lookup_start(p, "localhost", 1, out, 8, on_answer, &tags[i], &qs[i]), 0);
    }
    for (int i = 0; i < MANY; i += 2)
        lookup_cancel(qs[i]);
    for (int i = 1; i < MANY; i += 2)
        kept++;
    wait_answers(&a, kept);
    /* An answer for a cancelled one would have come before this one's. */
    {
        struct tag last = { &a, 0 };
        struct lookup *q;

        a.seen[0] = 0;
        assert_int_equal(lookup_start(p, "localhost", 1, out, 8, on_answer, &last, &q), 0);
        wait_answers(&a, kept + 1);
    }
    for (int i = 2; i < MANY; i += 2)
        assert_int_equal(a.seen[i], 0);
    for (int i = 1; i < MANY; i += 2)
        assert_int_equal(a.seen[i], 1);
    lookup_pool_free(p);
    ferry_loop_free(a.loop);
}

/* Freed with requests queued, running and answered-but-undelivered: no
 * callback after the free, no leak, no race (ASan, TSan); the loop no
 * longer watches the pipe. */
static void test_free_while_pending(void **state)
{
    struct answers a = { 0 };
    struct tag tags[MANY];
    struct lookup_pool *p;
    struct lookup *q;
    struct ferry_addr out[LOOKUP_MAX_ADDRS];
    struct ferry_timer *t;
    int calls, fired = 0;

    (void)state;
    assert_int_equal(ferry_loop_new(&a.loop), 0);
    for (int round = 0; round < 20; round++) {
        assert_int_equal(lookup_pool_new(a.loop, 4, "", &p), 0);
        for (int i = 0; i < MANY; i++) {
            tags[i] = (struct tag){ &a, i };
            assert_int_equal(lookup_start(p, "localhost", 1, out, 8, on_answer, &tags[i], &q), 0);
        }
        if (round % 2)
            wait_answers(&a, a.calls + 1);   /* some delivered, the rest not */
        lookup_pool_free(p);
    }
    calls = a.calls;
    t = ferry_loop_timer(a.loop, 20, on_deadline, &fired);
    assert_non_null(t);
    assert_int_equal(ferry_loop_run(a.loop), 0);
    ferry_timer_cancel(t);
    assert_true(fired);
    assert_int_equal(a.calls, calls);
    ferry_loop_free(a.loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bounded_workers),
        cmocka_unit_test(test_at_once),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_free_while_pending),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
