/*
 * test_exec.c - ferryd's command runner (src/ferryd/exec.c) against real
 * processes on a real ferry_loop.
 *
 * Nothing here sleeps: each test runs the loop until the command's on_exit
 * (or an abort) leaves nothing to wait for, and sequences itself with the
 * loop's own timers.  A safety timer fails a test that would hang.  Every
 * test also checks that the process's descriptor count is the same before
 * and after (so failure paths leak nothing either).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "unit_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ferry/loop.h"
#include "runner.h"

#define SAFETY_MS   60000
#define CAPTURE_MAX 65536

/* ---- the harness ------------------------------------------------------- */

struct run {
    struct ferry_loop *loop;
    struct runner *e;
    pid_t pid;
    char err[256];

    char out[3][CAPTURE_MAX + 1];   /* [1] stdout, [2] stderr: the first bytes */
    size_t out_len[3];
    uint64_t total[3];              /* all bytes seen per stream */

    struct runner_result res;
    int exits;
    int drained;
    uint64_t t_start, t_exit;       /* loop clock */
    struct ferry_timer *safety;

    /* Per-test hooks (optional). */
    int (*output_hook)(struct run *r, int stream, const uint8_t *data, size_t len);
    void (*drained_hook)(struct run *r);
    void *user;
};

static int h_output(void *arg, int stream, const uint8_t *data, size_t len)
{
    struct run *r = arg;

    assert_true(stream == 1 || stream == 2);
    assert_true(len > 0 && len <= 256 * 1024);
    assert_int_equal(r->exits, 0);
    size_t room = CAPTURE_MAX - r->out_len[stream];
    size_t take = len < room ? len : room;
    memcpy(r->out[stream] + r->out_len[stream], data, take);
    r->out_len[stream] += take;
    r->out[stream][r->out_len[stream]] = '\0';
    r->total[stream] += len;
    return r->output_hook ? r->output_hook(r, stream, data, len) : 0;
}

static void h_exit(void *arg, const struct runner_result *res)
{
    struct run *r = arg;

    r->exits++;
    r->res = *res;
    r->t_exit = ferry_loop_now(r->loop);
    /* Freeing from inside on_exit is part of the contract. */
    runner_free(r->e);
    r->e = NULL;
    ferry_timer_cancel(r->safety);
    r->safety = NULL;
}

static void h_drained(void *arg)
{
    struct run *r = arg;

    r->drained++;
    if (r->drained_hook)
        r->drained_hook(r);
}

static const struct runner_ops run_ops = {
    .on_output = h_output,
    .on_exit = h_exit,
    .on_stdin_drained = h_drained,
};

static void on_safety(struct ferry_loop *loop, struct ferry_timer *t, void *arg)
{
    struct run *r = arg;

    runner_abort(r->e);
    r->e = NULL;
    fail_msg("the command did not finish within %d ms", SAFETY_MS);
}

static struct run *run_new(void)
{
    struct run *r = calloc(1, sizeof(*r));

    assert_non_null(r);
    assert_int_equal(ferry_loop_new(&r->loop), 0);
    assert_non_null(r->loop);
    return r;
}

static void run_free(struct run *r)
{
    ferry_timer_cancel(r->safety);
    runner_free(r->e);
    ferry_loop_free(r->loop);
    free(r);
}

/* Start; on success the command is running and a safety timer is armed. */
static int run_start(struct run *r, const struct runner_spec *spec)
{
    int rc = runner_start(r->loop, spec, &run_ops, r, &r->e, r->err, sizeof(r->err));

    if (rc == 0) {
        assert_non_null(r->e);
        r->pid = runner_pid(r->e);
        assert_true(r->pid > 0);
        r->t_start = ferry_loop_now(r->loop);
        r->safety = ferry_loop_timer(r->loop, SAFETY_MS, on_safety, r);
        assert_non_null(r->safety);
    } else {
        assert_null(r->e);
        assert_true(r->err[0] != '\0');
    }
    return rc;
}

static void run_loop(struct run *r)
{
    assert_int_equal(ferry_loop_run(r->loop), 0);
}

/* Run spec to completion: on_exit exactly once. */
static struct run *run_spec(const struct runner_spec *spec)
{
    struct run *r = run_new();

    assert_int_equal(run_start(r, spec), 0);
    run_loop(r);
    assert_int_equal(r->exits, 1);
    return r;
}

static struct run *run_shell(const char *cmd)
{
    struct runner_spec spec = { .shell = cmd };

    return run_spec(&spec);
}

static void assert_exit(const struct run *r, int status)
{
    assert_int_equal(r->res.exited, 1);
    assert_int_equal(r->res.signaled, 0);
    assert_int_equal(r->res.status, status);
    assert_int_equal(r->res.timed_out, 0);
}

/* Start-time failure: the code, and the message runner_start wrote. */
static void expect_start_error(const struct runner_spec *spec, int want, const char *msg)
{
    struct run *r = run_new();

    assert_int_equal(run_start(r, spec), want);
    if (msg)
        assert_string_equal(r->err, msg);
    /* Nothing was left on the loop. */
    run_loop(r);
    assert_int_equal(r->exits, 0);
    run_free(r);
}

/* /proc/PID/stat's state letter, or 0 when the process is gone. */
static char proc_state(pid_t pid)
{
    char path[64], buf[512];
    FILE *f;
    char state = 0;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    f = fopen(path, "re");
    if (!f)
        return 0;
    if (fgets(buf, sizeof(buf), f)) {
        char *p = strrchr(buf, ')');   /* comm may contain anything */

        if (p && p[1] == ' ')
            state = p[2];
    }
    fclose(f);
    return state;
}

static int fd_setup(void **state)
{
    *state = (void *)(intptr_t)count_fds();
    return 0;
}

static int fd_teardown(void **state)
{
    int before = (int)(intptr_t)*state;

    assert_int_equal(count_fds(), before);
    return 0;
}

/* ---- argv and shell mode ----------------------------------------------- */

static void test_argv_exact(void **state)
{
    char *argv[] = { "printf", "%s|", "a b", "\"c\"", "$HOME", "*", NULL };
    struct runner_spec spec = { .argv = argv };
    struct run *r = run_spec(&spec);

    assert_exit(r, 0);
    assert_string_equal(r->out[1], "a b|\"c\"|$HOME|*|");
    assert_int_equal(r->out_len[2], 0);
    run_free(r);
}

static void test_shell_pipeline(void **state)
{
    struct run *r = run_shell("echo a | tr a b");

    assert_exit(r, 0);
    assert_string_equal(r->out[1], "b\n");
    run_free(r);
}

static void test_stdout_and_stderr_separate(void **state)
{
    struct run *r = run_shell("echo out; echo err >&2; echo out2");

    assert_exit(r, 0);
    assert_string_equal(r->out[1], "out\nout2\n");
    assert_string_equal(r->out[2], "err\n");
    run_free(r);
}

static void test_exit_status(void **state)
{
    struct run *r = run_shell("true");

    assert_exit(r, 0);
    assert_int_equal(r->total[1] + r->total[2], 0);
    run_free(r);

    r = run_shell("exit 3");
    assert_exit(r, 3);
    run_free(r);
}

static void test_killed_by_signal(void **state)
{
    struct run *r = run_shell("kill -9 $$");

    assert_int_equal(r->res.exited, 0);
    assert_int_equal(r->res.signaled, 1);
    assert_int_equal(r->res.signal, SIGKILL);
    assert_int_equal(r->res.timed_out, 0);
    run_free(r);
}

/* ---- start failures ----------------------------------------------------- */

static void test_command_not_found(void **state)
{
    char *argv[] = { "ferry-no-such-command", NULL };
    char *abs_argv[] = { "/nonexistent/ferry-cmd", NULL };
    struct runner_spec spec = { .argv = argv };

    expect_start_error(&spec, -ENOENT, "ferry-no-such-command: command not found");
    spec.argv = abs_argv;
    expect_start_error(&spec, -ENOENT, "/nonexistent/ferry-cmd: No such file or directory");
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
    expect_start_error(&spec, -EACCES, msg);

    /* ... and found in the child's PATH (given as an extra), where a
     * directory of the same name earlier in PATH is skipped. */
    char *name_argv[] = { "noexec", NULL };
    snprintf(pathenv, sizeof(pathenv), "PATH=/:%s", dir);
    char *env[] = { pathenv, NULL };
    spec.argv = name_argv;
    spec.env = env;
    expect_start_error(&spec, -EACCES, "noexec: permission denied");

    /* With the execute bit it runs, from that PATH only. */
    assert_int_equal(chmod(path, 0755), 0);
    struct run *r = run_spec(&spec);
    assert_exit(r, 0);
    assert_string_equal(r->out[1], "hi\n");
    run_free(r);

    /* Executable but not a program (no #!): the kernel's ENOEXEC, which
     * glibc's posix_spawn does not paper over with /bin/sh. */
    fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "echo hi\n", 8), 8);
    close(fd);
    spec.argv = argv;
    spec.env = NULL;
    snprintf(msg, sizeof(msg), "%s: cannot execute: Exec format error", path);
    expect_start_error(&spec, -ENOEXEC, msg);

    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
}

static void test_bad_cwd(void **state)
{
    char *argv[] = { "true", NULL };
    struct runner_spec spec = { .argv = argv, .cwd = "/nonexistent/dir" };

    expect_start_error(&spec, FERRY_ECWD, "cd /nonexistent/dir: No such file or directory");
    spec.cwd = "/etc/passwd";
    expect_start_error(&spec, FERRY_ECWD, "cd /etc/passwd: Not a directory");
    /* A missing cwd is reported as such even when the command is missing too. */
    char *missing[] = { "ferry-no-such-command", NULL };
    spec.argv = missing;
    spec.cwd = "/nonexistent/dir";
    expect_start_error(&spec, FERRY_ECWD, NULL);
}

static void test_bad_spec(void **state)
{
    char *argv[] = { "true", NULL };
    char *empty[] = { NULL };
    struct runner_spec both = { .argv = argv, .shell = "true" };
    struct runner_spec neither = { .cwd = "/" };
    struct runner_spec no_args = { .argv = empty };

    expect_start_error(&both, -EINVAL, NULL);
    expect_start_error(&neither, -EINVAL, NULL);
    expect_start_error(&no_args, -EINVAL, NULL);
}

/* ---- cwd and environment ------------------------------------------------- */

static void test_cwd_honoured(void **state)
{
    char *argv[] = { "pwd", NULL };
    struct runner_spec spec = { .argv = argv, .cwd = "/usr/bin" };
    struct run *r = run_spec(&spec);

    assert_exit(r, 0);
    assert_string_equal(r->out[1], "/usr/bin\n");
    run_free(r);

    /* A relative name with '/' is resolved from the command's cwd. */
    char *rel[] = { "./true", NULL };
    spec.argv = rel;
    r = run_spec(&spec);
    assert_exit(r, 0);
    run_free(r);

    /* Default: the user's home directory. */
    struct passwd *pw = getpwuid(getuid());
    char want[512];
    assert_non_null(pw);
    spec.argv = argv;
    spec.cwd = NULL;
    r = run_spec(&spec);
    snprintf(want, sizeof(want), "%s\n", pw->pw_dir);
    assert_string_equal(r->out[1], want);
    run_free(r);
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
    struct run *r;

    assert_non_null(pw);
    /* Nothing of the daemon's own environment leaks. */
    assert_int_equal(setenv("FERRY_TEST_LEAK", "1", 1), 0);

    r = run_spec(&spec);
    assert_exit(r, 0);
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
    run_free(r);

    spec.env = env;
    r = run_spec(&spec);
    assert_exit(r, 0);
    assert_true(has_line(r->out[1], "FOO=second"));
    assert_true(has_line(r->out[1], "LANG=xx_XX.UTF-8"));
    assert_true(has_line(r->out[1], "EMPTY="));
    assert_int_equal(count_lines(r->out[1]), 8);
    run_free(r);

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
        expect_start_error(&spec, -EINVAL, NULL);
    }
}

/* ---- the child's process state ------------------------------------------- */

static void test_child_fds_are_0_1_2(void **state)
{
    char *argv[] = { "ls", "/proc/self/fd", NULL };
    struct runner_spec spec = { .argv = argv, .stdin_pipe = 1 };
    /* A descriptor without close-on-exec must not reach the command either. */
    int stray = open("/dev/null", O_RDONLY);
    struct run *r;

    assert_true(stray >= 0);
    r = run_spec(&spec);
    assert_exit(r, 0);
    /* 3 is ls's own directory descriptor. */
    assert_string_equal(r->out[1], "0\n1\n2\n3\n");
    run_free(r);
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
    struct run *r;

    /* The daemon's blocked and ignored signals (SIGPIPE is ignored by main)
     * must not be inherited. */
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    assert_int_equal(pthread_sigmask(SIG_BLOCK, &block, &old), 0);
    assert_int_equal(sigaction(SIGUSR2, &ignore, &old_usr2), 0);
    r = run_spec(&spec);
    assert_int_equal(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
    assert_int_equal(sigaction(SIGUSR2, &old_usr2, NULL), 0);
    assert_exit(r, 0);
    unsigned long long blk = 1, ign = 1;
    assert_int_equal(sscanf(r->out[1], "SigBlk: %llx SigIgn: %llx", &blk, &ign), 2);
    assert_true(blk == 0);
    /* glibc's posix_spawn sets its two internal signals (32 and 33, below
     * SIGRTMIN) to SIG_IGN in the child when the parent handles them, and
     * sigaddset refuses them, so no attribute can undo that.  Programs
     * never use them; everything else must be default. */
    ign &= ~((1ULL << (32 - 1)) | (1ULL << (33 - 1)));
    assert_true(ign == 0);
    run_free(r);

    /* The command leads its own process group. */
    spec.argv = pg_argv;
    r = run_new();
    assert_int_equal(run_start(r, &spec), 0);
    assert_int_equal(getpgid(r->pid), r->pid);
    run_loop(r);
    snprintf(want, sizeof(want), "%d\n", (int)r->pid);
    assert_string_equal(r->out[1], want);
    run_free(r);
}

/* ---- stdin --------------------------------------------------------------- */

static void test_stdin_fed_and_eof(void **state)
{
    char *argv[] = { "sort", "-r", NULL };
    struct runner_spec spec = { .argv = argv, .stdin_pipe = 1 };
    struct run *r = run_new();

    assert_int_equal(run_start(r, &spec), 0);
    assert_int_equal(runner_write_stdin(r->e, "a\n", 2), 0);
    assert_int_equal(runner_write_stdin(r->e, "c\nb\n", 4), 0);
    assert_int_equal(runner_write_stdin(r->e, "", 0), 0);
    runner_close_stdin(r->e);
    runner_close_stdin(r->e);
    assert_int_equal(runner_write_stdin(r->e, "late\n", 5), -EPIPE);
    run_loop(r);
    assert_int_equal(r->exits, 1);
    assert_exit(r, 0);
    assert_string_equal(r->out[1], "c\nb\na\n");
    run_free(r);
}

static void test_stdin_devnull(void **state)
{
    char *argv[] = { "cat", NULL };
    struct runner_spec spec = { .argv = argv };
    struct run *r = run_new();

    assert_int_equal(run_start(r, &spec), 0);
    assert_int_equal(runner_write_stdin(r->e, "x", 1), -EPIPE);
    assert_int_equal(runner_stdin_pending(r->e), 0);
    runner_close_stdin(r->e);
    run_loop(r);
    assert_exit(r, 0);
    assert_int_equal(r->total[1], 0);
    run_free(r);
}

/* Bigger than any pipe buffer, so most of it must queue. */
#define STDIN_BIG (10u * 1024 * 1024)

static void test_stdin_not_read_does_not_hang(void **state)
{
    char *argv[] = { "echo", "started", NULL };
    struct runner_spec spec = { .argv = argv, .stdin_pipe = 1 };
    struct run *r = run_new();
    uint8_t *big = malloc(STDIN_BIG);

    assert_non_null(big);
    memset(big, 'z', STDIN_BIG);
    assert_int_equal(run_start(r, &spec), 0);
    /* The command may already be gone (-EPIPE) or not (queued). */
    int rc = runner_write_stdin(r->e, big, STDIN_BIG);
    assert_true(rc == 0 || rc == -EPIPE);
    assert_true(runner_stdin_pending(r->e) <= STDIN_BIG);
    runner_close_stdin(r->e);
    free(big);
    run_loop(r);
    assert_exit(r, 0);
    assert_string_equal(r->out[1], "started\n");
    run_free(r);
}

/* A caller that bounds its queue: refill from on_stdin_drained until the
 * command (which reads one line and exits) closes its stdin. */
struct feeder {
    uint64_t sent;
    int epipe;
};

static void feed_more(struct run *r)
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
    struct run *r = run_new();

    r->user = &f;
    r->drained_hook = feed_more;
    assert_int_equal(run_start(r, &spec), 0);
    feed_more(r);
    run_loop(r);
    assert_exit(r, 0);
    assert_string_equal(r->out[1], "got\n");
    /* The pipe took what it could; the rest was never sent. */
    assert_true(f.sent < STDIN_BIG);
    run_free(r);
}

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
    struct run *r = arg;
    struct big *b = r->user;

    if (!r->e)
        return;
    b->resumes++;
    runner_resume_output(r->e);
}

static int big_output(struct run *r, int stream, const uint8_t *data, size_t len)
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
    struct run *r = run_new();
    uint64_t want = 0;

    for (uint64_t i = 0; i < BIG_OUTPUT; i++)
        want = want * 31 + (uint8_t)pattern[i % (sizeof(pattern) - 1)];
    snprintf(cmd, sizeof(cmd), "yes abcdefghij | head -c %u", BIG_OUTPUT);
    struct runner_spec spec = { .shell = cmd };
    r->user = &b;
    r->output_hook = big_output;
    b.resume = ferry_loop_timer(r->loop, 0, on_resume, r);
    assert_non_null(b.resume);
    assert_int_equal(run_start(r, &spec), 0);
    run_loop(r);
    assert_exit(r, 0);
    assert_int_equal(r->total[1], BIG_OUTPUT);
    assert_false(b.bad);
    assert_true(b.checksum == want);
    assert_true(b.pauses > 0);
    assert_true(b.resumes >= b.pauses - 1);
    ferry_timer_cancel(b.resume);
    run_free(r);
}

static int refuse_output(struct run *r, int stream, const uint8_t *data, size_t len)
{
    return -1;
}

static void test_output_callback_aborts(void **state)
{
    char *argv[] = { "yes", NULL };
    struct runner_spec spec = { .argv = argv };
    struct run *r = run_new();

    r->output_hook = refuse_output;
    assert_int_equal(run_start(r, &spec), 0);
    run_loop(r);
    assert_int_equal(r->exits, 1);
    assert_int_equal(r->res.signaled, 1);
    assert_int_equal(r->res.signal, SIGKILL);
    /* Exactly one chunk was delivered. */
    assert_true(r->total[1] > 0 && r->total[1] <= 256 * 1024);
    run_free(r);
}

/* ---- timeouts and signals --------------------------------------------------- */

static void test_timeout_terminates(void **state)
{
    char *argv[] = { "sleep", "100", NULL };
    struct runner_spec spec = { .argv = argv, .timeout_ms = 100 };
    struct run *r = run_spec(&spec);

    assert_int_equal(r->res.timed_out, 1);
    assert_int_equal(r->res.signaled, 1);
    assert_int_equal(r->res.signal, SIGTERM);
    assert_true(r->t_exit - r->t_start >= 100);
    assert_true(r->t_exit - r->t_start < RUNNER_KILL_GRACE_MS);
    run_free(r);
}

static void test_timeout_kills_after_grace(void **state)
{
    struct runner_spec spec = { .shell = "trap '' TERM; sleep 100", .timeout_ms = 50 };
    struct run *r = run_spec(&spec);

    assert_int_equal(r->res.timed_out, 1);
    assert_int_equal(r->res.signaled, 1);
    assert_int_equal(r->res.signal, SIGKILL);
    assert_true(r->t_exit - r->t_start >= 50 + RUNNER_KILL_GRACE_MS);
    assert_true(r->t_exit - r->t_start < 50 + RUNNER_KILL_GRACE_MS + 3000);
    run_free(r);
}

static void send_int(struct ferry_loop *loop, struct ferry_timer *t, void *arg)
{
    struct run *r = arg;

    assert_int_equal(runner_signal(r->e, SIGINT), 0);
}

static void test_signal_reaches_group(void **state)
{
    char *argv[] = { "sleep", "100", NULL };
    struct runner_spec spec = { .argv = argv };
    struct run *r = run_new();

    assert_int_equal(run_start(r, &spec), 0);
    assert_non_null(ferry_loop_timer(r->loop, 10, send_int, r));
    run_loop(r);
    assert_int_equal(r->exits, 1);
    assert_int_equal(r->res.signaled, 1);
    assert_int_equal(r->res.signal, SIGINT);
    assert_int_equal(r->res.timed_out, 0);
    run_free(r);
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
    char st = proc_state(a->grandchild);

    if (st == 0 || st == 'Z')
        return;
    assert_true(++a->polls < 1000);
    ferry_timer_restart(t, 5);
}

static int abort_on_pid(struct run *r, int stream, const uint8_t *data, size_t len)
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
    assert_int_equal(proc_state(r->pid), 0);
    a->poll = ferry_loop_timer(r->loop, 0, poll_grandchild, a);
    assert_non_null(a->poll);
    return 0;
}

static void test_abort_kills_group_no_zombie(void **state)
{
    struct runner_spec spec = { .shell = "sleep 100 & echo $!; sleep 100", .stdin_pipe = 1 };
    struct abort_ctx a = { 0 };
    struct run *r = run_new();

    r->user = &a;
    r->output_hook = abort_on_pid;
    assert_int_equal(run_start(r, &spec), 0);
    /* Queued stdin is freed with it. */
    assert_int_equal(runner_write_stdin(r->e, "x", 1), 0);
    run_loop(r);
    assert_int_equal(r->exits, 0);
    assert_true(a.grandchild > 0);
    char st = proc_state(a.grandchild);
    assert_true(st == 0 || st == 'Z');
    ferry_timer_cancel(a.poll);
    run_free(r);
}

static void abort_from_timer(struct ferry_loop *loop, struct ferry_timer *t, void *arg)
{
    struct run *r = arg;
    pid_t pid = r->pid;

    runner_abort(r->e);
    r->e = NULL;
    ferry_timer_cancel(r->safety);
    r->safety = NULL;
    assert_int_equal(proc_state(pid), 0);
}

static void test_abort_running_sleep(void **state)
{
    char *argv[] = { "sleep", "100", NULL };
    struct runner_spec spec = { .argv = argv, .timeout_ms = 60000 };
    struct run *r = run_new();

    assert_int_equal(run_start(r, &spec), 0);
    runner_pause_output(r->e);
    assert_non_null(ferry_loop_timer(r->loop, 20, abort_from_timer, r));
    run_loop(r);
    assert_int_equal(r->exits, 0);
    assert_int_equal(proc_state(r->pid), 0);
    run_free(r);
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
    struct run *r;

    disable_pidfd_open();

    r = run_shell("echo polled; exit 7");
    assert_exit(r, 7);
    assert_string_equal(r->out[1], "polled\n");
    run_free(r);

    char *argv[] = { "sleep", "100", NULL };
    struct runner_spec spec = { .argv = argv, .timeout_ms = 50 };
    r = run_spec(&spec);
    assert_int_equal(r->res.timed_out, 1);
    assert_int_equal(r->res.signal, SIGTERM);
    run_free(r);

    /* runner_abort reaps by polling waitpid. */
    spec.timeout_ms = 0;
    r = run_new();
    assert_int_equal(run_start(r, &spec), 0);
    assert_non_null(ferry_loop_timer(r->loop, 20, abort_from_timer, r));
    run_loop(r);
    assert_int_equal(r->exits, 0);
    assert_int_equal(proc_state(r->pid), 0);
    run_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_argv_exact, fd_setup, fd_teardown),
        cmocka_unit_test_setup_teardown(test_shell_pipeline, fd_setup, fd_teardown),
        cmocka_unit_test_setup_teardown(test_stdout_and_stderr_separate, fd_setup, fd_teardown),
        cmocka_unit_test_setup_teardown(test_exit_status, fd_setup, fd_teardown),
        cmocka_unit_test_setup_teardown(test_killed_by_signal, fd_setup, fd_teardown),
        cmocka_unit_test_setup_teardown(test_command_not_found, fd_setup, fd_teardown),
        cmocka_unit_test_setup_teardown(test_permission_denied, fd_setup, fd_teardown),
        cmocka_unit_test_setup_teardown(test_bad_cwd, fd_setup, fd_teardown),
        cmocka_unit_test_setup_teardown(test_bad_spec, fd_setup, fd_teardown),
        cmocka_unit_test_setup_teardown(test_cwd_honoured, fd_setup, fd_teardown),
        cmocka_unit_test_setup_teardown(test_env_defaults_and_extras, fd_setup, fd_teardown),
        cmocka_unit_test_setup_teardown(test_bad_env_name, fd_setup, fd_teardown),
        cmocka_unit_test_setup_teardown(test_child_fds_are_0_1_2, fd_setup, fd_teardown),
        cmocka_unit_test_setup_teardown(test_child_signal_state_and_group, fd_setup, fd_teardown),
        cmocka_unit_test_setup_teardown(test_stdin_fed_and_eof, fd_setup, fd_teardown),
        cmocka_unit_test_setup_teardown(test_stdin_devnull, fd_setup, fd_teardown),
        cmocka_unit_test_setup_teardown(test_stdin_not_read_does_not_hang, fd_setup, fd_teardown),
        cmocka_unit_test_setup_teardown(test_stdin_bounded_feeder, fd_setup, fd_teardown),
        cmocka_unit_test_setup_teardown(test_big_output_with_backpressure, fd_setup, fd_teardown),
        cmocka_unit_test_setup_teardown(test_output_callback_aborts, fd_setup, fd_teardown),
        cmocka_unit_test_setup_teardown(test_timeout_terminates, fd_setup, fd_teardown),
        cmocka_unit_test_setup_teardown(test_timeout_kills_after_grace, fd_setup, fd_teardown),
        cmocka_unit_test_setup_teardown(test_signal_reaches_group, fd_setup, fd_teardown),
        cmocka_unit_test_setup_teardown(test_abort_kills_group_no_zombie, fd_setup, fd_teardown),
        cmocka_unit_test_setup_teardown(test_abort_running_sleep, fd_setup, fd_teardown),
        cmocka_unit_test_setup_teardown(test_without_pidfd, fd_setup, fd_teardown),
    };

    /* As ferryd runs: SIGPIPE ignored (a precondition of exec.h). */
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests_name("exec", tests, NULL, NULL);
}
