/*
 * test_hostlist.c - host lists in pdsh's syntax (src/ferry/hostlist.c):
 * ranges with their zero padding, several ranges in a name, IPv6
 * literals left alone, duplicates, exclusion, the bounds, and folding
 * back (each fold expands to the names it came from).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "hostlist.h"

/* The list spec expands to, joined with spaces ("ERR" on an error). */
static const char *expand(const char *spec)
{
    static char out[4096];
    struct hostlist l;
    char err[256];

    hostlist_init(&l);
    out[0] = '\0';
    if (hostlist_add(&l, spec, err, sizeof err) < 0) {
        hostlist_free(&l);
        return "ERR";
    }
    for (size_t i = 0; i < l.n; i++) {
        strcat(out, i ? " " : "");
        strcat(out, l.names[i]);
    }
    hostlist_free(&l);
    return out;
}

static void test_ranges(void **state)
{
    (void)state;
    assert_string_equal(expand("web1"), "web1");
    assert_string_equal(expand("web[1-3],db1"), "web1 web2 web3 db1");
    assert_string_equal(expand("web[01-03,10]"), "web01 web02 web03 web10");
    assert_string_equal(expand("web[08-11]"), "web08 web09 web10 web11");
    assert_string_equal(expand("n[9-10]x"), "n9x n10x");
    assert_string_equal(expand("r[1-2]-n[1-2]"), "r1-n1 r1-n2 r2-n1 r2-n2");
    assert_string_equal(expand("127.0.0.[2-4]"), "127.0.0.2 127.0.0.3 127.0.0.4");
    assert_string_equal(expand("a[5]"), "a5");
}

static void test_literals_and_ipv6(void **state)
{
    (void)state;
    assert_string_equal(expand("[::1]:7171"), "[::1]:7171");
    assert_string_equal(expand("[fe80::1%lo],h[1-2]"), "[fe80::1%lo] h1 h2");
    assert_string_equal(expand("::1"), "::1");
    assert_string_equal(expand("unix:/run/ferry.sock"), "unix:/run/ferry.sock");
    assert_string_equal(expand("[a-b]"), "[a-b]");   /* not digits: a literal */
}

static void test_duplicates_keep_first_order(void **state)
{
    (void)state;
    assert_string_equal(expand("b,a,b,a[1-2],a1"), "b a a1 a2");
}

static void test_errors(void **state)
{
    (void)state;
    assert_string_equal(expand(""), "ERR");
    assert_string_equal(expand("a,,b"), "ERR");
    assert_string_equal(expand("a,"), "ERR");
    assert_string_equal(expand("web[3-1]"), "ERR");
    assert_string_equal(expand("web[1-2"), "ERR");
    assert_string_equal(expand("web]1"), "ERR");
    assert_string_equal(expand("web[1--2]"), "ERR");
    assert_string_equal(expand("web[1-,2]"), "ERR");
    assert_string_equal(expand("web[[1]]"), "ERR");
    assert_string_equal(expand("web[1234567890]"), "ERR");
}

static void test_bounds(void **state)
{
    struct hostlist l;
    char err[256], name[300];

    (void)state;
    hostlist_init(&l);
    /* A million hosts: refused before anything is allocated for them. */
    assert_int_equal(hostlist_add(&l, "h[1-1000000]", err, sizeof err), -1);
    assert_non_null(strstr(err, "more than"));
    assert_int_equal(l.n, 0);
    assert_int_equal(hostlist_add(&l, "h[1-1000]-[1-1000]", err, sizeof err), -1);
    assert_int_equal(hostlist_add(&l, "h[1-65536]", err, sizeof err), 0);
    assert_int_equal(l.n, HOSTLIST_MAX);
    assert_int_equal(hostlist_add(&l, "h1", err, sizeof err), 0);   /* a duplicate */
    assert_int_equal(l.n, HOSTLIST_MAX);
    assert_int_equal(hostlist_add(&l, "x", err, sizeof err), -1);
    hostlist_free(&l);
    memset(name, 'a', 256);
    name[256] = '\0';
    assert_string_equal(expand(name), "ERR");
}

static void test_remove(void **state)
{
    struct hostlist l;
    char err[256];

    (void)state;
    hostlist_init(&l);
    assert_int_equal(hostlist_add(&l, "web[01-05],db1", err, sizeof err), 0);
    assert_int_equal(hostlist_remove(&l, "web[02-03],nothere", err, sizeof err), 0);
    assert_int_equal(l.n, 4);
    assert_string_equal(l.names[0], "web01");
    assert_string_equal(l.names[1], "web04");
    assert_string_equal(l.names[3], "db1");
    assert_false(hostlist_has(&l, "web02"));
    assert_true(hostlist_has(&l, "web04"));
    assert_int_equal(hostlist_remove(&l, "web[", err, sizeof err), -1);
    hostlist_free(&l);
}

static void check_fold(const char *spec, const char *want)
{
    struct hostlist l;
    char err[256];
    char *folded;

    hostlist_init(&l);
    assert_int_equal(hostlist_add(&l, spec, err, sizeof err), 0);
    folded = hostlist_fold((const char *const *)l.names, l.n);
    assert_non_null(folded);
    assert_string_equal(folded, want);
    /* The fold names the same hosts. */
    {
        struct hostlist back;

        hostlist_init(&back);
        assert_int_equal(hostlist_add(&back, folded, err, sizeof err), 0);
        assert_int_equal(back.n, l.n);
        for (size_t i = 0; i < l.n; i++)
            assert_true(hostlist_has(&back, l.names[i]));
        hostlist_free(&back);
    }
    free(folded);
    hostlist_free(&l);
}

static void test_fold(void **state)
{
    (void)state;
    check_fold("web01,web02,web03,web05", "web[01-03,05]");
    check_fold("web05,db1,web03,web02,web01", "db1,web[01-03,05]");
    check_fold("n9,n10,n11", "n[9-11]");
    check_fold("n09,n10", "n[09-10]");
    check_fold("n1,n01,n2", "n[01,1-2]");
    check_fold("a1b,a2b,a1c", "a[1-2]b,a1c");
    check_fold("alpha", "alpha");
    check_fold("127.0.0.2,127.0.0.3,127.0.0.4", "127.0.0.[2-4]");
    check_fold("[::1]:7171,[::1]:7172,h1", "[::1]:7171,[::1]:7172,h1");
    /* the run that differs, not the port */
    check_fold("127.0.0.[2-4]:7171,127.0.0.9:7171", "127.0.0.[2-4,9]:7171");
    check_fold("10.0.[1-2].5", "10.0.[1-2].5");
    check_fold("r1-n1,r1-n2,r2-n1", "r1-n[1-2],r2-n1");
    check_fold("unix:/run/f1.sock,unix:/run/f2.sock", "unix:/run/f[1-2].sock");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_literals_and_ipv6),
        cmocka_unit_test(test_duplicates_keep_first_order),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_remove),
        cmocka_unit_test(test_fold),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
