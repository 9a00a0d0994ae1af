/*
 * test_slots.c - the table of connections waiting to authenticate: who is
 * evicted (the oldest of the source holding the most, by shutdown(2)), the
 * FORK hand-over to a pid, sources and netblocks, and penalties.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>
#include <cmocka.h>

#include "slots.h"

static struct slot_source src4(const char *ip, int bits)
{
    struct sockaddr_in in = { .sin_family = AF_INET };
    struct slot_source s;

    inet_pton(AF_INET, ip, &in.sin_addr);
    ferry__slot_source((struct sockaddr *)&in, sizeof in, bits, 128, &s);
    return s;
}

/* A connected pair; [0] is "ours" (what the table names), [1] the peer. */
static void pair(int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
}

/* Did shutdown(2) reach sv[0]?  Its peer then reads the end. */
static int was_shut(int sv[2])
{
    char c;
    return recv(sv[1], &c, 1, MSG_DONTWAIT) == 0;
}

static const struct admit_limits lim3 = { .full = 3 };

static void test_evicts_the_oldest_of_the_biggest_source(void **state)
{
    struct ferry_slots k = { 0 };
    struct slot_source a = src4("10.0.0.1", 32), b = src4("10.0.0.2", 32), c = src4("10.0.0.3", 32);
    int s1[2], s2[2], s3[2], s4[2];
    (void)state;

    assert_int_equal(ferry__slots_init(&k, 3, 0, 1000, 0), 0);
    pair(s1);
    pair(s2);
    pair(s3);
    pair(s4);
    assert_int_equal(ferry__slot_unauth_take(&k, &lim3, s1[0], &b, 0, 100), ADMIT_ACCEPT);
    assert_int_equal(ferry__slot_unauth_take(&k, &lim3, s2[0], &a, 0, 100), ADMIT_ACCEPT);
    assert_int_equal(ferry__slot_unauth_take(&k, &lim3, s3[0], &a, 0, 100), ADMIT_ACCEPT);
    /* Full; c holds none: a (two) loses its oldest, s2, not b's older s1. */
    assert_int_equal(ferry__slot_unauth_take(&k, &lim3, s4[0], &c, 0, 100), ADMIT_EVICT);
    assert_true(was_shut(s2));
    assert_false(was_shut(s1));
    assert_false(was_shut(s3));
    /* a serves its penalty; b (one held, would be level) is refused as full. */
    assert_int_equal(ferry__slot_unauth_take(&k, &lim3, 99, &a, 0, 500), ADMIT_DROP_PENALTY);
    assert_int_equal(ferry__slot_unauth_take(&k, &lim3, 99, &b, 0, 500), ADMIT_DROP_FULL);
    /* The penalty ends. */
    assert_int_equal(ferry__slot_unauth_take(&k, &lim3, 99, &a, 0, 1100), ADMIT_DROP_FULL);
    /* The evicted one's owner gives it back: nothing changes in the count. */
    ferry__slot_unauth_release(&k, s2[0]);
    assert_int_equal(k.held, 3);
    assert_int_equal(k.n, 3);
    ferry__slot_unauth_release(&k, s1[0]);
    assert_int_equal(k.held, 2);
    assert_int_equal(ferry__slot_unauth_take(&k, &lim3, s1[0], &b, 0, 1200), ADMIT_ACCEPT);
    int *all[] = { s1, s2, s3, s4 };
    for (int i = 0; i < 4; i++) {
        close(all[i][0]);
        close(all[i][1]);
    }
    ferry__slots_free(&k);
}

static void test_fork_hand_over_and_release_by_pid(void **state)
{
    struct ferry_slots k = { 0 };
    struct slot_source a = src4("10.0.0.1", 32);
    (void)state;

    assert_int_equal(ferry__slots_init(&k, 3, 0, 0, 0), 0);
    assert_int_equal(ferry__slot_unauth_take(&k, &lim3, 7, &a, 0, 0), ADMIT_ACCEPT);
    ferry__slot_unauth_to_pid(&k, 7, 4242);
    ferry__slot_unauth_release(&k, 7);          /* the fd is no longer its name */
    assert_int_equal(k.held, 1);
    ferry__slot_unauth_release_pid(&k, 4242);
    assert_int_equal(k.held, 0);
    assert_int_equal(k.n, 0);
    ferry__slots_free(&k);
}

static void test_netblocks(void **state)
{
    struct slot_source x, y;
    (void)state;

    x = src4("192.0.2.7", 24);
    y = src4("192.0.2.200", 24);
    assert_memory_equal(x.b, y.b, 16);
    x = src4("192.0.2.7", 32);
    y = src4("192.0.2.200", 32);
    assert_memory_not_equal(x.b, y.b, 16);

    struct sockaddr_in6 a6 = { .sin6_family = AF_INET6 }, b6 = { .sin6_family = AF_INET6 };
    inet_pton(AF_INET6, "2001:db8:1:2::1", &a6.sin6_addr);
    inet_pton(AF_INET6, "2001:db8:1:2:ffff::9", &b6.sin6_addr);
    ferry__slot_source((struct sockaddr *)&a6, sizeof a6, 32, 64, &x);
    ferry__slot_source((struct sockaddr *)&b6, sizeof b6, 32, 64, &y);
    assert_memory_equal(x.b, y.b, 16);
    ferry__slot_source((struct sockaddr *)&b6, sizeof b6, 32, 128, &y);
    assert_memory_not_equal(x.b, y.b, 16);
    /* A v4-mapped peer is its v4 address. */
    inet_pton(AF_INET6, "::ffff:192.0.2.7", &a6.sin6_addr);
    ferry__slot_source((struct sockaddr *)&a6, sizeof a6, 32, 64, &x);
    y = src4("192.0.2.7", 32);
    assert_memory_equal(x.b, y.b, 16);
}

static void test_timeout_earns_a_penalty(void **state)
{
    struct ferry_slots k = { 0 };
    struct slot_source a = src4("10.0.0.1", 32);
    (void)state;

    /* A grace of 1 ms: a slot given back now has used all of it. */
    assert_int_equal(ferry__slots_init(&k, 3, 1, 0, 60000), 0);
    assert_int_equal(ferry__slot_unauth_take(&k, &lim3, 5, &a, 0, 0), ADMIT_ACCEPT);
    ferry__slot_unauth_release(&k, 5);
    assert_int_equal(ferry__slot_unauth_take(&k, &lim3, 5, &a, 0, 1000), ADMIT_DROP_PENALTY);
    ferry__slots_free(&k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_evicts_the_oldest_of_the_biggest_source),
        cmocka_unit_test(test_fork_hand_over_and_release_by_pid),
        cmocka_unit_test(test_netblocks),
        cmocka_unit_test(test_timeout_earns_a_penalty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
