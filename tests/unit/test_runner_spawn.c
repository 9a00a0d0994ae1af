/*
 * test_runner_spawn.c - ferryd's command runner (src/ferryd/runner.c) starting
 * real processes on a real ferry_loop: argv and shell mode, start
 * failures, cwd and environment, the child's descriptors and signal
 * state, and stdin (fed, /dev/null, not read, bounded feeder).
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
#include <fcntl.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ferry/loop.h"
#include "runner.h"
#include "fix_runner.h"

/* ---- argv and shell mode ----------------------------------------------- */

static void test_argv_exact(void **state)
{
    char *argv[] = { "printf", "%s|", "a b", "\"c\"", "$HOME", "*", NULL };
    struct runner_spec spec = { .argv = argv };
    struct fix_run *r = fix_run_spec(&spec);

    fix_assert_exit(r, 0);
    assert_string_equal(r->out[1], "a b|\"c\"|$HOME|*|");
    assert_int_equal(r->out_len[2], 0);
    fix_run_free(r);
}

static void test_shell_pipeline(void **state)
{
    struct fix_run *r = fix_run_shell("echo a | tr a b");

    fix_assert_exit(r, 0);
    assert_string_equal(r->out[1], "b\n");
    fix_run_free(r);
}

static void test_stdout_and_stderr_separate(void **state)
{
    struct fix_run *r = fix_run_shell("echo out; echo err >&2; echo out2");

    fix_assert_exit(r, 0);
    assert_string_equal(r->out[1], "out\nout2\n");
    assert_string_equal(r->out[2], "err\n");
    fix_run_free(r);
}

static void test_exit_status(void **state)
{
    struct fix_run *r = fix_run_shell("true");

    fix_assert_exit(r, 0);
    assert_int_equal(r->total[1] + r->total[2], 0);
    fix_run_free(r);

    r = fix_run_shell("exit 3");
    fix_assert_exit(r, 3);
    fix_run_free(r);
}

static void test_killed_by_signal(void **state)
{
    struct fix_run *r = fix_run_shell("kill -9 $$");

    assert_int_equal(r->res.exited, 0);
    assert_int_equal(r->res.signaled, 1);
    assert_int_equal(r->res.signal, SIGKILL);
    assert_int_equal(r->res.timed_out, 0);
    fix_run_free(r);
}

/* ---- start failures ----------------------------------------------------- */

static void test_command_not_found(void **state)
{
    char *argv[] = { "ferry-no-such-command", NULL };
    char *abs_argv[] = { "/nonexistent/ferry-cmd", NULL };
    struct runner_spec spec = { .argv = argv };

    fix_expect_start_error(&spec, -ENOENT, "ferry-no-such-command: command not found");
    spec.argv = abs_argv;
    fix_expect_start_error(&spec, -ENOENT, "/nonexistent/ferry-cmd: No such file or directory");
}

static void test_permission_denied(void **state)
{
    char dir[] = "/tmp/ferry-exec-XXXXXX";
    char path[128], pathenv[160];
    int fd;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/noexec", dir);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "#!/bin/sh\necho hi\n", 18), 18);
    close(fd);

    /* By path ... */
    char *argv[] = { path, NULL };
    struct runner_spec spec = { .argv = argv };
    char msg[200];
    snprintf(msg, sizeof(msg), "%s: permission denied", path);
    fix_expect_start_error(&spec, -EACCES, msg);

    /* ... and found in the child's PATH (given as an extra), where a
     * directory of the same name earlier in PATH is skipped. */
    char *name_argv[] = { "noexec", NULL };
    snprintf(pathenv, sizeof(pathenv), "PATH=/:%s", dir);
    char *env[] = { pathenv, NULL };
    spec.argv = name_argv;
    spec.env = env;
    fix_expect_start_error(&spec, -EACCES, "noexec: permission denied");

    /* With the execute bit it runs, from that PATH only. */
    assert_int_equal(chmod(path, 0755), 0);
    struct fix_run *r = fix_run_spec(&spec);
    fix_assert_exit(r, 0);
    assert_string_equal(r->out[1], "hi\n");
    fix_run_free(r);

    /* Executable but not a program (no #!): the kernel's ENOEXEC, which
     * glibc's posix_spawn does not paper over with /bin/sh. */
    fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "echo hi\n", 8), 8);
    close(fd);
    spec.argv = argv;
    spec.env = NULL;
    snprintf(msg, sizeof(msg), "%s: cannot execute: Exec format error", path);
    fix_expect_start_error(&spec, -ENOEXEC, msg);

    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
}

static void test_bad_cwd(void **state)
{
    char *argv[] = { "true", NULL };
    struct runner_spec spec = { .argv = argv, .cwd = "/nonexistent/dir" };

    fix_expect_start_error(&spec, FERRY_ECWD, "cd /nonexistent/dir: No such file or directory");
    spec.cwd = "/etc/passwd";
    fix_expect_start_error(&spec, FERRY_ECWD, "cd /etc/passwd: Not a directory");
    /* A missing cwd is reported as such even when the command is missing too. */
    char *missing[] = { "ferry-no-such-command", NULL };
    spec.argv = missing;
    spec.cwd = "/nonexistent/dir";
    fix_expect_start_error(&spec, FERRY_ECWD, NULL);
}

static void test_bad_spec(void **state)
{
    char *argv[] = { "true", NULL };
    char *empty[] = { NULL };
    struct runner_spec both = { .argv = argv, .shell = "true" };
    struct runner_spec neither = { .cwd = "/" };
    struct runner_spec no_args = { .argv = empty };

    fix_expect_start_error(&both, -EINVAL, NULL);
    fix_expect_start_error(&neither, -EINVAL, NULL);
    fix_expect_start_error(&no_args, -EINVAL, NULL);
}

/* ---- cwd and environment ------------------------------------------------- */

static void test_cwd_honoured(void **state)
{
    char *argv[] = { "pwd", NULL };
    struct runner_spec spec = { .argv = argv, .cwd = "/usr/bin" };
    struct fix_run *r = fix_run_spec(&spec);

    fix_assert_exit(r, 0);
    assert_string_equal(r->out[1], "/usr/bin\n");
    fix_run_free(r);

    /* A relative name with '/' is resolved from the command's cwd. */
    char *rel[] = { "./true", NULL };
    spec.argv = rel;
    r = fix_run_spec(&spec);
    fix_assert_exit(r, 0);
    fix_run_free(r);

    /* Default: the user's home directory. */
    struct passwd *pw = getpwuid(getuid());
    char want[512];
    assert_non_null(pw);
    spec.argv = argv;
    spec.cwd = NULL;
    r = fix_run_spec(&spec);
    snprintf(want, sizeof(want), "%s\n", pw->pw_dir);
    assert_string_equal(r->out[1], want);
    fix_run_free(r);
}

static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);

    for (const char *p = text; *p; ) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);

        if (len == n && memcmp(p, line, n) == 0)
            return true;
        if (!nl)
            break;
        p = nl + 1;
    }
    return false;
}

static int count_lines(const char *text)
{
    int n = 0;

    for (; *text; text++)
        n += *text == '\n';
    return n;
}

static void test_env_defaults_and_extras(void **state)
{
    struct passwd *pw = getpwuid(getuid());
    char *argv[] = { "env", NULL };
    char *env[] = { "FOO=bar baz", "LANG=xx_XX.UTF-8", "FOO=second", "EMPTY=", NULL };
    struct runner_spec spec = { .argv = argv };
    char line[512];
    struct fix_run *r;

    assert_non_null(pw);
    /* Nothing of the daemon's own environment leaks. */
    assert_int_equal(setenv("FERRY_TEST_LEAK", "1", 1), 0);

    r = fix_run_spec(&spec);
    fix_assert_exit(r, 0);
    assert_true(has_line(r->out[1], "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
    snprintf(line, sizeof(line), "HOME=%s", pw->pw_dir);
    assert_true(has_line(r->out[1], line));
    snprintf(line, sizeof(line), "USER=%s", pw->pw_name);
    assert_true(has_line(r->out[1], line));
    snprintf(line, sizeof(line), "LOGNAME=%s", pw->pw_name);
    assert_true(has_line(r->out[1], line));
    assert_non_null(strstr(r->out[1], "SHELL="));
    assert_non_null(strstr(r->out[1], "LANG="));
    assert_null(strstr(r->out[1], "FERRY_TEST_LEAK"));
    assert_int_equal(count_lines(r->out[1]), 6);
    fix_run_free(r);

    spec.env = env;
    r = fix_run_spec(&spec);
    fix_assert_exit(r, 0);
    assert_true(has_line(r->out[1], "FOO=second"));
    assert_true(has_line(r->out[1], "LANG=xx_XX.UTF-8"));
    assert_true(has_line(r->out[1], "EMPTY="));
    assert_int_equal(count_lines(r->out[1]), 8);
    fix_run_free(r);

    assert_int_equal(unsetenv("FERRY_TEST_LEAK"), 0);
}

static void test_bad_env_name(void **state)
{
    char *argv[] = { "true", NULL };
    const char *bad[] = { "1FOO=x", "NO_EQUALS", "=x", "A-B=x", "A B=x", "" };
    struct runner_spec spec = { .argv = argv };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *env[] = { "GOOD=1", (char *)bad[i], NULL };

        spec.env = env;
        fix_expect_start_error(&spec, -EINVAL, NULL);
    }
}

/* ---- the child's process state ------------------------------------------- */

static void test_child_fds_are_0_1_2(void **state)
{
    char *argv[] = { "ls", "/proc/self/fd", NULL };
    struct runner_spec spec = { .argv = argv, .stdin_pipe = 1 };
    /* A descriptor without close-on-exec must not reach the command either. */
    int stray = open("/dev/null", O_RDONLY);
    struct fix_run *r;

    assert_true(stray >= 0);
    r = fix_run_spec(&spec);
    fix_assert_exit(r, 0);
    /* 3 is ls's own directory descriptor. */
    assert_string_equal(r->out[1], "0\n1\n2\n3\n");
    fix_run_free(r);
    close(stray);
}

static void test_child_signal_state_and_group(void **state)
{
    sigset_t block, old;
    struct sigaction ignore = { .sa_handler = SIG_IGN }, old_usr2;
    char *argv[] = { "grep", "^Sig[IB]", "/proc/self/status", NULL };
    char *pg_argv[] = { "cut", "-d", " ", "-f5", "/proc/self/stat", NULL };
    struct runner_spec spec = { .argv = argv };
    char want[32];
    struct fix_run *r;

    /* The daemon's blocked and ignored signals (SIGPIPE is ignored by main)
     * must not be inherited. */
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    assert_int_equal(pthread_sigmask(SIG_BLOCK, &block, &old), 0);
    assert_int_equal(sigaction(SIGUSR2, &ignore, &old_usr2), 0);
    r = fix_run_spec(&spec);
    assert_int_equal(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
    assert_int_equal(sigaction(SIGUSR2, &old_usr2, NULL), 0);
    fix_assert_exit(r, 0);
    unsigned long long blk = 1, ign = 1;
    assert_int_equal(sscanf(r->out[1], "SigBlk: %llx SigIgn: %llx", &blk, &ign), 2);
    assert_true(blk == 0);
    /* glibc's posix_spawn sets its two internal signals (32 and 33, below
     * SIGRTMIN) to SIG_IGN in the child when the parent handles them, and
     * sigaddset refuses them, so no attribute can undo that.  Programs
     * never use them; everything else must be default. */
    ign &= ~((1ULL << (32 - 1)) | (1ULL << (33 - 1)));
    assert_true(ign == 0);
    fix_run_free(r);

    /* The command leads its own process group. */
    spec.argv = pg_argv;
    r = fix_run_new();
    assert_int_equal(fix_run_start(r, &spec), 0);
    assert_int_equal(getpgid(r->pid), r->pid);
    fix_run_loop(r);
    snprintf(want, sizeof(want), "%d\n", (int)r->pid);
    assert_string_equal(r->out[1], want);
    fix_run_free(r);
}

/* ---- stdin --------------------------------------------------------------- */

static void test_stdin_fed_and_eof(void **state)
{
    char *argv[] = { "sort", "-r", NULL };
    struct runner_spec spec = { .argv = argv, .stdin_pipe = 1 };
    struct fix_run *r = fix_run_new();

    assert_int_equal(fix_run_start(r, &spec), 0);
    assert_int_equal(runner_write_stdin(r->e, "a\n", 2), 0);
    assert_int_equal(runner_write_stdin(r->e, "c\nb\n", 4), 0);
    assert_int_equal(runner_write_stdin(r->e, "", 0), 0);
    runner_close_stdin(r->e);
    runner_close_stdin(r->e);
    assert_int_equal(runner_write_stdin(r->e, "late\n", 5), -EPIPE);
    fix_run_loop(r);
    assert_int_equal(r->exits, 1);
    fix_assert_exit(r, 0);
    assert_string_equal(r->out[1], "c\nb\na\n");
    fix_run_free(r);
}

static void test_stdin_devnull(void **state)
{
    char *argv[] = { "cat", NULL };
    struct runner_spec spec = { .argv = argv };
    struct fix_run *r = fix_run_new();

    assert_int_equal(fix_run_start(r, &spec), 0);
    assert_int_equal(runner_write_stdin(r->e, "x", 1), -EPIPE);
    assert_int_equal(runner_stdin_pending(r->e), 0);
    runner_close_stdin(r->e);
    fix_run_loop(r);
    fix_assert_exit(r, 0);
    assert_int_equal(r->total[1], 0);
    fix_run_free(r);
}

/* Bigger than any pipe buffer, so most of it must queue. */
#define STDIN_BIG (10u * 1024 * 1024)

static void test_stdin_not_read_does_not_hang(void **state)
{
    char *argv[] = { "echo", "started", NULL };
    struct runner_spec spec = { .argv = argv, .stdin_pipe = 1 };
    struct fix_run *r = fix_run_new();
    uint8_t *big = malloc(STDIN_BIG);

    assert_non_null(big);
    memset(big, 'z', STDIN_BIG);
    assert_int_equal(fix_run_start(r, &spec), 0);
    /* The command may already be gone (-EPIPE) or not (queued). */
    int rc = runner_write_stdin(r->e, big, STDIN_BIG);
    assert_true(rc == 0 || rc == -EPIPE);
    assert_true(runner_stdin_pending(r->e) <= STDIN_BIG);
    runner_close_stdin(r->e);
    free(big);
    fix_run_loop(r);
    fix_assert_exit(r, 0);
    assert_string_equal(r->out[1], "started\n");
    fix_run_free(r);
}

/* A caller that bounds its queue: refill from on_stdin_drained until the
 * command (which reads one line and exits) closes its stdin. */
struct feeder {
    uint64_t sent;
    int epipe;
};

static void feed_more(struct fix_run *r)
{
    struct feeder *f = r->user;
    static uint8_t chunk[64 * 1024];

    while (!f->epipe && runner_stdin_pending(r->e) < 256 * 1024 && f->sent < STDIN_BIG) {
        memset(chunk, '\n', sizeof(chunk));
        int rc = runner_write_stdin(r->e, chunk, sizeof(chunk));

        if (rc == -EPIPE) {
            f->epipe = 1;
            break;
        }
        assert_int_equal(rc, 0);
        f->sent += sizeof(chunk);
    }
}

static void test_stdin_bounded_feeder(void **state)
{
    struct runner_spec spec = { .shell = "read line; echo got", .stdin_pipe = 1 };
    struct feeder f = { 0 };
    struct fix_run *r = fix_run_new();

    r->user = &f;
    r->drained_hook = feed_more;
    assert_int_equal(fix_run_start(r, &spec), 0);
    feed_more(r);
    fix_run_loop(r);
    fix_assert_exit(r, 0);
    assert_string_equal(r->out[1], "got\n");
    /* The pipe took what it could; the rest was never sent. */
    assert_true(f.sent < STDIN_BIG);
    fix_run_free(r);
}

/* Each test checks the descriptor count before and after. */
#define FD_CHECKED(fn) cmocka_unit_test_setup_teardown(fn, fix_fd_setup, fix_fd_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        FD_CHECKED(test_argv_exact),
        FD_CHECKED(test_shell_pipeline),
        FD_CHECKED(test_stdout_and_stderr_separate),
        FD_CHECKED(test_exit_status),
        FD_CHECKED(test_killed_by_signal),
        FD_CHECKED(test_command_not_found),
        FD_CHECKED(test_permission_denied),
        FD_CHECKED(test_bad_cwd),
        FD_CHECKED(test_bad_spec),
        FD_CHECKED(test_cwd_honoured),
        FD_CHECKED(test_env_defaults_and_extras),
        FD_CHECKED(test_bad_env_name),
        FD_CHECKED(test_child_fds_are_0_1_2),
        FD_CHECKED(test_child_signal_state_and_group),
        FD_CHECKED(test_stdin_fed_and_eof),
        FD_CHECKED(test_stdin_devnull),
        FD_CHECKED(test_stdin_not_read_does_not_hang),
        FD_CHECKED(test_stdin_bounded_feeder),
    };

    /* As ferryd runs: SIGPIPE ignored (a precondition of exec.h). */
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests_name("runner_spawn", tests, NULL, NULL);
}

