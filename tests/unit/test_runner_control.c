/*
 * test_runner_control.c - ferryd's command runner (src/ferryd/runner.c)
 * controlling running processes: output volume and backpressure, an output
 * callback that aborts, timeouts (terminate, then kill after the grace),
 * signals to the process group, abort without zombies, and the fallback
 * without pidfd (last: its seccomp filter stays for the process).
 *
 * Nothing here sleeps: each test runs the loop until the command's on_exit
 * (or an abort) leaves nothing to wait for, and sequences itself with the
 * loop's own timers.  A safety timer (fix_runner) fails a test that would
 * hang.  Every test also checks that the process's descriptor count is the
 * same before and after (so failure paths leak nothing either).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "unit_util.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ferry/loop.h"
#include "runner.h"
#include "fix_runner.h"

/* ---- output: volume, backpressure, abort ---------------------------------- */

#define BIG_OUTPUT (100u * 1024 * 1024)
static const char pattern[] = "abcdefghij\n";   /* what `yes abcdefghij` repeats */

struct big {
    struct ferry_timer *resume;
    uint64_t checksum;
    int pauses, resumes;
    bool bad;
};

static void on_resume(struct ferry_loop *loop, struct ferry_timer *t, void *arg)
{
    struct fix_run *r = arg;
    struct big *b = r->user;

    if (!r->e)
        return;
    b->resumes++;
    runner_resume_output(r->e);
}

static int big_output(struct fix_run *r, int stream, const uint8_t *data, size_t len)
{
    struct big *b = r->user;
    uint64_t off = r->total[1] - len;

    assert_int_equal(stream, 1);
    for (size_t i = 0; i < len; i++) {
        if (data[i] != (uint8_t)pattern[(off + i) % (sizeof(pattern) - 1)])
            b->bad = true;
        b->checksum = b->checksum * 31 + data[i];
    }
    /* A slow client: stop after every chunk, resume on the next pass. */
    runner_pause_output(r->e);
    runner_pause_output(r->e);
    b->pauses++;
    ferry_timer_restart(b->resume, 0);
    return 0;
}

static void test_big_output_with_backpressure(void **state)
{
    char cmd[64];
    struct big b = { 0 };
    struct fix_run *r = fix_run_new();
    uint64_t want = 0;

    for (uint64_t i = 0; i < BIG_OUTPUT; i++)
        want = want * 31 + (uint8_t)pattern[i % (sizeof(pattern) - 1)];
    snprintf(cmd, sizeof(cmd), "yes abcdefghij | head -c %u", BIG_OUTPUT);
    struct runner_spec spec = { .shell = cmd };
    r->user = &b;
    r->output_hook = big_output;
    b.resume = ferry_loop_timer(r->loop, 0, on_resume, r);
    assert_non_null(b.resume);
    assert_int_equal(fix_run_start(r, &spec), 0);
    fix_run_loop(r);
    fix_assert_exit(r, 0);
    assert_int_equal(r->total[1], BIG_OUTPUT);
    assert_false(b.bad);
    assert_true(b.checksum == want);
    assert_true(b.pauses > 0);
    assert_true(b.resumes >= b.pauses - 1);
    ferry_timer_cancel(b.resume);
    fix_run_free(r);
}

static int refuse_output(struct fix_run *r, int stream, const uint8_t *data, size_t len)
{
    return -1;
}

static void test_output_callback_aborts(void **state)
{
    char *argv[] = { "yes", NULL };
    struct runner_spec spec = { .argv = argv };
    struct fix_run *r = fix_run_new();

    r->output_hook = refuse_output;
    assert_int_equal(fix_run_start(r, &spec), 0);
    fix_run_loop(r);
    assert_int_equal(r->exits, 1);
    assert_int_equal(r->res.signaled, 1);
    assert_int_equal(r->res.signal, SIGKILL);
    /* Exactly one chunk was delivered. */
    assert_true(r->total[1] > 0 && r->total[1] <= 256 * 1024);
    fix_run_free(r);
}

/* ---- timeouts and signals --------------------------------------------------- */

static void test_timeout_terminates(void **state)
{
    char *argv[] = { "sleep", "100", NULL };
    struct runner_spec spec = { .argv = argv, .timeout_ms = 100 };
    struct fix_run *r = fix_run_spec(&spec);

    assert_int_equal(r->res.timed_out, 1);
    assert_int_equal(r->res.signaled, 1);
    assert_int_equal(r->res.signal, SIGTERM);
    assert_true(r->t_exit - r->t_start >= 100);
    assert_true(r->t_exit - r->t_start < RUNNER_KILL_GRACE_MS);
    fix_run_free(r);
}

/*
 * The shell must ignore TERM before the timeout sends it, and on a loaded
 * machine a 50 ms timeout can beat the shell to its trap.  "armed" says
 * the trap was set: a run that TERM ended without it lost that race (the
 * runner did its part) and runs again with a longer timeout.
 */
static void test_timeout_kills_after_grace(void **state)
{
    struct runner_spec spec = { .shell = "trap '' TERM; echo armed; sleep 100", .timeout_ms = 50 };
    struct fix_run *r = fix_run_spec(&spec);

    for (int tries = 0; tries < 4 && r->res.signal == SIGTERM && !strstr(r->out[1], "armed");
         tries++) {
        fix_run_free(r);
        spec.timeout_ms *= 4;
        r = fix_run_spec(&spec);
    }
    assert_int_equal(r->res.timed_out, 1);
    assert_int_equal(r->res.signaled, 1);
    assert_int_equal(r->res.signal, SIGKILL);
    assert_true(r->t_exit - r->t_start >= spec.timeout_ms + RUNNER_KILL_GRACE_MS);
    assert_true(r->t_exit - r->t_start < spec.timeout_ms + RUNNER_KILL_GRACE_MS + 3000);
    fix_run_free(r);
}

static void send_int(struct ferry_loop *loop, struct ferry_timer *t, void *arg)
{
    struct fix_run *r = arg;

    assert_int_equal(runner_signal(r->e, SIGINT), 0);
}

static void test_signal_reaches_group(void **state)
{
    char *argv[] = { "sleep", "100", NULL };
    struct runner_spec spec = { .argv = argv };
    struct fix_run *r = fix_run_new();

    assert_int_equal(fix_run_start(r, &spec), 0);
    assert_non_null(ferry_loop_timer(r->loop, 10, send_int, r));
    fix_run_loop(r);
    assert_int_equal(r->exits, 1);
    assert_int_equal(r->res.signaled, 1);
    assert_int_equal(r->res.signal, SIGINT);
    assert_int_equal(r->res.timed_out, 0);
    fix_run_free(r);
}

/* ---- abort ------------------------------------------------------------------ */

struct abort_ctx {
    pid_t grandchild;
    struct ferry_timer *poll;
    int polls;
};

/* The grandchild gets SIGKILL through the group; it is then reparented
 * and reaped by init, so "gone or a zombie" both mean killed. */
static void poll_grandchild(struct ferry_loop *loop, struct ferry_timer *t, void *arg)
{
    struct abort_ctx *a = arg;
    char st = fix_proc_state(a->grandchild);

    if (st == 0 || st == 'Z')
        return;
    assert_true(++a->polls < 1000);
    ferry_timer_restart(t, 5);
}

static int abort_on_pid(struct fix_run *r, int stream, const uint8_t *data, size_t len)
{
    struct abort_ctx *a = r->user;

    if (!memchr(r->out[1], '\n', r->out_len[1]))
        return 0;
    a->grandchild = (pid_t)atoi(r->out[1]);
    assert_true(a->grandchild > 0);
    assert_int_equal(getpgid(a->grandchild), r->pid);
    /* From inside the callback: no further callback may run. */
    runner_abort(r->e);
    r->e = NULL;
    ferry_timer_cancel(r->safety);
    r->safety = NULL;
    /* Reaped before runner_abort returned: not even a zombie is left. */
    assert_int_equal(fix_proc_state(r->pid), 0);
    a->poll = ferry_loop_timer(r->loop, 0, poll_grandchild, a);
    assert_non_null(a->poll);
    return 0;
}

static void test_abort_kills_group_no_zombie(void **state)
{
    struct runner_spec spec = { .shell = "sleep 100 & echo $!; sleep 100", .stdin_pipe = 1 };
    struct abort_ctx a = { 0 };
    struct fix_run *r = fix_run_new();

    r->user = &a;
    r->output_hook = abort_on_pid;
    assert_int_equal(fix_run_start(r, &spec), 0);
    /* Queued stdin is freed with it. */
    assert_int_equal(runner_write_stdin(r->e, "x", 1), 0);
    fix_run_loop(r);
    assert_int_equal(r->exits, 0);
    assert_true(a.grandchild > 0);
    char st = fix_proc_state(a.grandchild);
    assert_true(st == 0 || st == 'Z');
    ferry_timer_cancel(a.poll);
    fix_run_free(r);
}

static void abort_from_timer(struct ferry_loop *loop, struct ferry_timer *t, void *arg)
{
    struct fix_run *r = arg;
    pid_t pid = r->pid;

    runner_abort(r->e);
    r->e = NULL;
    ferry_timer_cancel(r->safety);
    r->safety = NULL;
    assert_int_equal(fix_proc_state(pid), 0);
}

static void test_abort_running_sleep(void **state)
{
    char *argv[] = { "sleep", "100", NULL };
    struct runner_spec spec = { .argv = argv, .timeout_ms = 60000 };
    struct fix_run *r = fix_run_new();

    assert_int_equal(fix_run_start(r, &spec), 0);
    runner_pause_output(r->e);
    assert_non_null(ferry_loop_timer(r->loop, 20, abort_from_timer, r));
    fix_run_loop(r);
    assert_int_equal(r->exits, 0);
    assert_int_equal(fix_proc_state(r->pid), 0);
    fix_run_free(r);
}

/* ---- without pidfd ----------------------------------------------------------- */

/* Make pidfd_open fail with ENOSYS for the rest of this process, as on a
 * kernel before 5.3.  Its number (434) is the same on every architecture
 * (it is past the point where the syscall tables were unified), so the
 * filter needs no architecture check. */
static void disable_pidfd_open(void)
{
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 434, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { .len = sizeof(code) / sizeof(code[0]), .filter = code };

    assert_int_equal(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
    assert_int_equal(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog), 0);
    assert_int_equal(syscall(434, getpid(), 0), -1);
    assert_int_equal(errno, ENOSYS);
}

/* Must run last: the filter cannot be removed. */
static void test_without_pidfd(void **state)
{
    struct fix_run *r;

    disable_pidfd_open();

    r = fix_run_shell("echo polled; exit 7");
    fix_assert_exit(r, 7);
    assert_string_equal(r->out[1], "polled\n");
    fix_run_free(r);

    char *argv[] = { "sleep", "100", NULL };
    struct runner_spec spec = { .argv = argv, .timeout_ms = 50 };
    r = fix_run_spec(&spec);
    assert_int_equal(r->res.timed_out, 1);
    assert_int_equal(r->res.signal, SIGTERM);
    fix_run_free(r);

    /* runner_abort reaps by polling waitpid. */
    spec.timeout_ms = 0;
    r = fix_run_new();
    assert_int_equal(fix_run_start(r, &spec), 0);
    assert_non_null(ferry_loop_timer(r->loop, 20, abort_from_timer, r));
    fix_run_loop(r);
    assert_int_equal(r->exits, 0);
    assert_int_equal(fix_proc_state(r->pid), 0);
    fix_run_free(r);
}

/* Each test checks the descriptor count before and after. */
#define FD_CHECKED(fn) cmocka_unit_test_setup_teardown(fn, fix_fd_setup, fix_fd_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        FD_CHECKED(test_big_output_with_backpressure),
        FD_CHECKED(test_output_callback_aborts),
        FD_CHECKED(test_timeout_terminates),
        FD_CHECKED(test_timeout_kills_after_grace),
        FD_CHECKED(test_signal_reaches_group),
        FD_CHECKED(test_abort_kills_group_no_zombie),
        FD_CHECKED(test_abort_running_sleep),
        FD_CHECKED(test_without_pidfd),
    };

    /* As ferryd runs: SIGPIPE ignored (a precondition of exec.h). */
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests_name("runner_control", tests, NULL, NULL);
}

