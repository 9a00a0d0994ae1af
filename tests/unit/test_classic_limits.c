/*
 * test_classic_limits.c - the --classic listener's shared connection count
 * and output budget: caps, partial grants, the once-a-second refusal
 * summary, and that threads and forked processes see one set of counters.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "classic_limits.h"

static void test_connection_cap(void **state)
{
    struct classic_limits *l;
    (void)state;

    assert_int_equal(classic_limits_new(3, 100, &l), 0);
    assert_int_equal(classic_limits_max_conns(l), 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(classic_limits_enter(l), 0);
    assert_int_equal(classic_limits_enter(l), -EUSERS);
    assert_int_equal(classic_limits_enter(l), -EUSERS);
    classic_limits_leave(l);
    assert_int_equal(classic_limits_enter(l), 0);
    assert_int_equal(classic_limits_enter(l), -EUSERS);
    /* Three refusals, reported at once; the next one waits for the next
     * second (unless the clock just ticked over) and is not lost. */
    assert_int_equal(classic_limits_refusals(l), 3);
    assert_int_equal(classic_limits_enter(l), -EUSERS);
    assert_true(classic_limits_refusals(l) <= 1);
    classic_limits_free(l);
}

static void test_budget_grants_what_is_left(void **state)
{
    struct classic_limits *l;
    (void)state;

    assert_int_equal(classic_limits_new(1, 100, &l), 0);
    assert_int_equal(classic_limits_max_output(l), 100);
    assert_int_equal(classic_limits_reserve(l, 60), 60);
    assert_int_equal(classic_limits_reserve(l, 60), 40);
    assert_int_equal(classic_limits_reserve(l, 1), 0);
    classic_limits_release(l, 50);
    assert_int_equal(classic_limits_reserve(l, 0), 0);
    assert_int_equal(classic_limits_reserve(l, 70), 50);
    classic_limits_release(l, 100);
    assert_int_equal(classic_limits_reserve(l, 100), 100);
    classic_limits_free(l);
}

/* The fork model: a connection's process reserves, the next one sees it. */
static void test_shared_with_forked_processes(void **state)
{
    struct classic_limits *l;
    int status;
    pid_t pid;
    (void)state;

    assert_int_equal(classic_limits_new(2, 100, &l), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(classic_limits_reserve(l, 70) == 70 && classic_limits_enter(l) == 0 ? 0 : 1);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(classic_limits_reserve(l, 70), 30);
    assert_int_equal(classic_limits_enter(l), 0);
    assert_int_equal(classic_limits_enter(l), -EUSERS);
    classic_limits_free(l);
}

#define ROUNDS 20000

static void *churn(void *arg)
{
    struct classic_limits *l = arg;
    for (int i = 0; i < ROUNDS; i++) {
        size_t got = classic_limits_reserve(l, 3);
        classic_limits_release(l, got);
        if (classic_limits_enter(l) == 0)
            classic_limits_leave(l);
    }
    return NULL;
}

/* The event model's workers: concurrent reservations never overshoot and
 * every release comes back. */
static void test_threads_leave_it_balanced(void **state)
{
    struct classic_limits *l;
    pthread_t t[4];
    (void)state;

    assert_int_equal(classic_limits_new(2, 5, &l), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, churn, l), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    assert_int_equal(classic_limits_reserve(l, 10), 5);
    assert_int_equal(classic_limits_enter(l), 0);
    assert_int_equal(classic_limits_enter(l), 0);
    assert_int_equal(classic_limits_enter(l), -EUSERS);
    classic_limits_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connection_cap),
        cmocka_unit_test(test_budget_grants_what_is_left),
        cmocka_unit_test(test_shared_with_forked_processes),
        cmocka_unit_test(test_threads_leave_it_balanced),
    };
    classic_limits_free(NULL);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
