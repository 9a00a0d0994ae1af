/*
 * test_classic_limits.c - the --classic listener's shared connection count
 * and output budget: caps, partial grants, the once-a-second refusal
 * summary, that threads and forked processes see one set of counters, and
 * that a connection process killed without leaving gives its share back.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
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
        assert_int_equal(classic_limits_enter(l), i);
    assert_int_equal(classic_limits_enter(l), -EUSERS);
    assert_int_equal(classic_limits_enter(l), -EUSERS);
    classic_limits_leave(l, 1);
    assert_int_equal(classic_limits_enter(l), 1);
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

    assert_int_equal(classic_limits_new(2, 100, &l), 0);
    assert_int_equal(classic_limits_max_output(l), 100);
    assert_int_equal(classic_limits_enter(l), 0);
    assert_int_equal(classic_limits_enter(l), 1);
    assert_int_equal(classic_limits_reserve(l, 0, 60), 60);
    assert_int_equal(classic_limits_reserve(l, 1, 60), 40);
    assert_int_equal(classic_limits_reserve(l, 0, 1), 0);
    classic_limits_release(l, 0, 50);
    assert_int_equal(classic_limits_reserve(l, 1, 0), 0);
    assert_int_equal(classic_limits_reserve(l, 1, 70), 50);
    /* Leaving gives back what the slot still holds (10 + 0 here: slot 1
     * holds 90). */
    classic_limits_leave(l, 0);
    assert_int_equal(classic_limits_reserve(l, 1, 20), 10);
    classic_limits_leave(l, 1);
    assert_int_equal(classic_limits_enter(l), 0);
    assert_int_equal(classic_limits_reserve(l, 0, 100), 100);
    classic_limits_free(l);
}

/* The fork model: a connection's process reserves, the next one sees it. */
static void test_shared_with_forked_processes(void **state)
{
    struct classic_limits *l;
    int status, fds[2];
    char c;
    pid_t pid;
    (void)state;

    assert_int_equal(classic_limits_new(2, 100, &l), 0);
    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int ok = classic_limits_enter(l) == 0 && classic_limits_reserve(l, 0, 70) == 70;
        if (write(fds[1], ok ? "y" : "n", 1) != 1)
            _exit(1);
        pause();    /* until killed, as a connection process can be */
        _exit(0);
    }
    close(fds[1]);
    assert_int_equal(read(fds[0], &c, 1), 1);
    close(fds[0]);
    assert_int_equal(c, 'y');
    assert_int_equal(classic_limits_enter(l), 1);
    assert_int_equal(classic_limits_reserve(l, 1, 70), 30);
    assert_int_equal(classic_limits_enter(l), -EUSERS);   /* the child lives: its slot holds */
    /* Killed without leaving: its slot and its 70 bytes come back. */
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(classic_limits_enter(l), 0);
    assert_int_equal(classic_limits_reserve(l, 0, 100), 70);
    classic_limits_free(l);
}

#define ROUNDS 20000

static void *churn(void *arg)
{
    struct classic_limits *l = arg;
    for (int i = 0; i < ROUNDS; i++) {
        int slot = classic_limits_enter(l);
        if (slot >= 0) {
            size_t got = classic_limits_reserve(l, slot, 3);
            if (got > 3)
                return (void *)1;
            classic_limits_release(l, slot, got);
            classic_limits_leave(l, slot);
        }
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
    for (int i = 0; i < 4; i++) {
        void *ret;
        assert_int_equal(pthread_join(t[i], &ret), 0);
        assert_null(ret);
    }
    assert_true(classic_limits_enter(l) >= 0);
    assert_true(classic_limits_enter(l) >= 0);
    assert_int_equal(classic_limits_enter(l), -EUSERS);
    assert_int_equal(classic_limits_reserve(l, 0, 10), 5);
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
