/*
 * runner.c - ferryd's command runner; the contract is in runner.h.
 *
 * launch.c sets the process up and spawns it.  From then on the command
 * is a set of loop sources owned by struct runner: two output pipes (read,
 * or offered to on_output_pipe, as they become readable; paused on request;
 * a timerfd lets a streaming pipe fill first), the stdin pipe (watched for
 * writability only while its queue is non-empty: runner_stdin.c), a pidfd (or a polling
 * timer where pidfd_open is missing) and the timeout timer.  The command is
 * over when it has been reaped and both output pipes are at EOF; only then
 * does on_exit run.
 *
 * Re-entrancy: every callback may free or abort its runner.  Loop
 * callbacks bracket their work with enter()/leave(); runner_free and
 * runner_abort release all sources at once (so nothing else can fire) and,
 * when called from inside a callback, leave the final free() to leave().
 */
#include "runner.h"
#include "runner_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ferry/error.h"
#include "ferry/log.h"
#include "ferry/loop.h"
#include "errbuf.h"
#include "fdio.h"
#include "launch.h"
#include "monoclock.h"
#include "pty.h"
#include "reap.h"

#define READ_CHUNK       (256 * 1024)
#define READS_PER_EVENT  4          /* fairness: at most 1 MiB per wakeup */
/* The output pipes are grown to this (the kernel's default is 64 KiB): a
 * command writing fast fills a 64 KiB pipe in microseconds and then sleeps
 * until we read, one context switch per 64 KiB.  Best effort: a lower
 * /proc/sys/fs/pipe-max-size just leaves the default. */
#define OUTPUT_PIPE_SIZE RUNNER_PIPE_CHUNK
/* Coalescing: a command writing in 4 KiB pieces (head, cat) to a reader
 * that keeps up would make every piece a frame of its own, and the frames'
 * fixed costs (a wakeup, a header, the syscalls) then bound the stream.
 * So while output is streaming (some went out within STREAM_NS), a pipe
 * holding less than COALESCE_MIN is given COALESCE_NS to fill before it is
 * sent.  Output after a quiet spell (a prompt, a line) goes at once. */
#define COALESCE_MIN     (256 * 1024)
#define COALESCE_NS      (500 * 1000)
#define STREAM_NS        (1000 * 1000)
#define REAP_POLL_MS     50         /* waitpid polling when pidfd is missing */
/* A terminal command has ended: how long the terminal's other holders (a
 * shell's background jobs) may keep it open before it is hung up, as sshd
 * does, instead of holding the session until they end. */
#define PTY_LINGER_MS    200
#define ABORT_REAP_MS    200        /* how long runner_abort waits on the loop */


/* ---- teardown ----------------------------------------------------------- */

static void output_close(struct runner *e, int i)
{
    if (e->out_fd[i] >= 0) {
        ferry_loop_remove(e->loop, e->out_fd[i]);
        fdio_close(&e->out_fd[i]);
    }
}

static void coalesce_close(struct runner *e)
{
    if (e->coalesce_fd >= 0) {
        ferry_loop_remove(e->loop, e->coalesce_fd);
        fdio_close(&e->coalesce_fd);
    }
}

static void stop_reaping(struct runner *e)
{
    if (e->pidfd >= 0) {
        ferry_loop_remove(e->loop, e->pidfd);
        fdio_close(&e->pidfd);
    }
    ferry_timer_cancel(e->reap_timer);
    e->reap_timer = NULL;
}

/* Drop every loop source and descriptor; idempotent. */
static void release(struct runner *e)
{
    output_close(e, 0);
    output_close(e, 1);
    coalesce_close(e);
    runner__stdin_close(e);
    stop_reaping(e);
    ferry_timer_cancel(e->kill_timer);
    e->kill_timer = NULL;
    ferry_timer_cancel(e->linger_timer);
    e->linger_timer = NULL;
}

static void dispose(struct runner *e)
{
    e->finished = true;
    release(e);
    if (e->depth > 0)
        e->doomed = true;
    else
        free(e);
}

/* ---- the process ------------------------------------------------------- */

static int signal_group(struct runner *e, int sig)
{
    if (killpg(e->pid, sig) < 0) {
        int rc = -errno;

        if (rc != -ESRCH)
            ferry_log_warn("exec: killpg(%d, %d): %s", (int)e->pid, sig, ferry_strerror(rc));
        return rc;
    }
    return 0;
}

static void record_status(struct runner *e, int status)
{
    if (WIFEXITED(status)) {
        e->res.exited = 1;
        e->res.status = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        e->res.signaled = 1;
        e->res.signal = WTERMSIG(status);
        e->res.core = WCOREDUMP(status) ? 1 : 0;
    }
}

/* waitpid(pid, WNOHANG) for exactly our child: true once it is reaped (or
 * cannot be: ECHILD means someone else reaped it, and its status is lost). */
static bool reap_now(struct runner *e)
{
    int status;
    pid_t r;

    do
        r = waitpid(e->pid, &status, WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == 0)
        return false;
    if (r == e->pid) {
        record_status(e, status);
    } else {
        ferry_log_error("exec: waitpid(%d): %s (was SIGCHLD ignored?)",
                        (int)e->pid, ferry_strerror(-errno));
    }
    e->reaped = true;
    return true;
}

static void maybe_finish(struct runner *e)
{
    if (e->finished || !e->reaped || e->out_fd[0] >= 0 || e->out_fd[1] >= 0)
        return;
    e->finished = true;
    /* The process group is gone (or detached from our pipes): stop the
     * timeout, and drop stdin nobody will read. */
    ferry_timer_cancel(e->kill_timer);
    e->kill_timer = NULL;
    runner__stdin_close(e);
    e->ops.on_exit(e->arg, &e->res);
}

static void terminal_output(struct runner *e, int fd);

/* The terminal outlived its command: what it shows now goes out, then it
 * is closed (which hangs it up for whoever still holds it). */
static void on_linger_timer(struct ferry_loop *loop, struct ferry_timer *t, void *arg)
{
    struct runner *e = arg;

    runner__enter(e);
    if (e->out_paused) {
        /* The client is behind: nothing is dropped, the hangup waits. */
        ferry_timer_restart(t, PTY_LINGER_MS);
        runner__leave(e);
        return;
    }
    if (e->out_fd[0] >= 0)
        terminal_output(e, e->out_fd[0]);
    if (!e->finished) {
        output_close(e, 0);
        output_close(e, 1);
        maybe_finish(e);
    }
    runner__leave(e);
}

static void after_reap(struct runner *e)
{
    stop_reaping(e);
    if (e->pty && e->out_fd[0] >= 0 && !e->linger_timer)
        e->linger_timer = ferry_loop_timer(e->loop, PTY_LINGER_MS, on_linger_timer, e);
    maybe_finish(e);
}

static void on_pidfd(struct ferry_loop *loop, int fd, unsigned events, void *arg)
{
    struct runner *e = arg;

    runner__enter(e);
    if (reap_now(e))
        after_reap(e);
    runner__leave(e);
}

static void on_reap_timer(struct ferry_loop *loop, struct ferry_timer *t, void *arg)
{
    struct runner *e = arg;

    runner__enter(e);
    if (reap_now(e))
        after_reap(e);
    else
        ferry_timer_restart(t, REAP_POLL_MS);
    runner__leave(e);
}

static void on_kill_timer(struct ferry_loop *loop, struct ferry_timer *t, void *arg)
{
    struct runner *e = arg;

    if (e->term_stage == 0) {
        e->res.timed_out = 1;
        e->term_stage = 1;
        signal_group(e, SIGTERM);
        ferry_timer_restart(t, RUNNER_KILL_GRACE_MS);
    } else if (e->term_stage == 1) {
        e->term_stage = 2;
        signal_group(e, SIGKILL);
    }
}

/* SIGKILL the group and reap the leader, blocking this thread for at most
 * ABORT_REAP_MS (SIGKILL normally takes microseconds). */
static void kill_and_reap(struct runner *e)
{
    uint64_t deadline = monoclock_ms() + ABORT_REAP_MS;

    signal_group(e, SIGKILL);
    while (!reap_now(e)) {
        uint64_t now = monoclock_ms();

        if (now >= deadline) {
            reap_detached(e->pid);
            e->reaped = true;
            return;
        }
        if (e->pidfd >= 0) {
            struct pollfd pfd = { .fd = e->pidfd, .events = POLLIN };

            /* EINTR or an error just loops back to waitpid and the clock. */
            (void)poll(&pfd, 1, (int)(deadline - now));
        } else {
            struct timespec ts = { 0, 2 * 1000000L };

            nanosleep(&ts, NULL);
        }
    }
}

/* ---- output ------------------------------------------------------------ */

static void watch_output(struct runner *e, int i, unsigned events);

static void on_coalesce_timer(struct ferry_loop *loop, int fd, unsigned events, void *arg)
{
    struct runner *e = arg;
    uint64_t expirations;

    /* Read to clear the readiness; EAGAIN (already read) is harmless. */
    (void)!read(fd, &expirations, sizeof expirations);
    if (!e->coalesce_armed)
        return;
    e->coalesce_armed = false;
    e->coalesce_done = true;
    if (!e->out_paused)
        watch_output(e, e->coalesce_i, FERRY_READABLE);
}

/*
 * Whether to let pipe i fill a little before sending (the comment at
 * COALESCE_MIN says why).  true: it is unwatched until the timer fires.
 * Any failure just sends at once.
 */
static bool coalesce_wait(struct runner *e, int i, int fd)
{
    struct itimerspec its = { .it_value = { 0, COALESCE_NS } };
    int avail = 0;

    if (e->coalesce_done) {
        e->coalesce_done = false;
        return false;
    }
    if (e->coalesce_armed)      /* for the other pipe: one wait at a time */
        return false;
    if (monoclock_ns() - e->last_out_ns > STREAM_NS)
        return false;
    /* 0 bytes: EOF (or a spurious wakeup), which read() finds out at once. */
    if (ioctl(fd, FIONREAD, &avail) < 0 || avail <= 0 || avail >= COALESCE_MIN)
        return false;
    if (e->coalesce_fd < 0) {
        e->coalesce_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (e->coalesce_fd < 0)
            return false;
        if (ferry_loop_add(e->loop, e->coalesce_fd, FERRY_READABLE, on_coalesce_timer, e) < 0) {
            fdio_close(&e->coalesce_fd);
            return false;
        }
    }
    if (timerfd_settime(e->coalesce_fd, 0, &its, NULL) < 0)
        return false;
    e->coalesce_armed = true;
    e->coalesce_i = i;
    watch_output(e, i, 0);
    return true;
}

/* The caller wants no more output: kill the command and stop reading;
 * on_exit follows once it is reaped. */
static void output_refused(struct runner *e)
{
    signal_group(e, SIGKILL);
    output_close(e, 0);
    output_close(e, 1);
    maybe_finish(e);
}

/*
 * What the pipe holds now, offered to on_output_pipe to be sent without a
 * copy.  0: sent a full chunk; 1: stop this round (sent what there was,
 * paused, refused or finished; the loop is level-triggered);
 * 2: read() instead (the pipe looks empty, which may be EOF, or the
 * caller cannot splice).
 */
static int output_from_pipe(struct runner *e, int i, int fd)
{
    int avail = 0;
    int rc;

    if (ioctl(fd, FIONREAD, &avail) < 0 || avail <= 0)
        return 2;
    rc = e->ops.on_output_pipe(e->arg, i + 1, fd,
                               avail < RUNNER_PIPE_CHUNK ? (size_t)avail : RUNNER_PIPE_CHUNK);
    if (e->finished)        /* freed or aborted from the callback */
        return 1;
    if (rc == 0)            /* a full chunk: more may be waiting */
        return avail >= RUNNER_PIPE_CHUNK ? 0 : 1;
    if (rc == -EAGAIN) {
        runner_pause_output(e);
        return 1;
    }
    if (rc == FERRY_EUNSUPPORTED) {
        e->out_no_splice = true;
        return 2;
    }
    output_refused(e);
    return 1;
}

/* Output is only lent to on_output for the call, and a loop runs on one
 * thread, so one buffer per thread serves every command on it: an idle
 * command costs no 256 KiB of its own.  It is made on the thread's first
 * output and freed when the thread ends (as static thread-local storage
 * it was zeroed by the start of every thread, the sweep's and every
 * worker loop's, whether it ran a command or not).  Without memory for
 * it, a page of static storage serves, in smaller reads. */
static pthread_key_t rbuf_key;
static pthread_once_t rbuf_once = PTHREAD_ONCE_INIT;
static bool rbuf_key_made;

static void make_rbuf_key(void)
{
    rbuf_key_made = pthread_key_create(&rbuf_key, free) == 0;
}

static uint8_t *read_buffer(size_t *cap)
{
    static _Thread_local uint8_t page[4096];
    uint8_t *b = NULL;

    if (pthread_once(&rbuf_once, make_rbuf_key) == 0 && rbuf_key_made) {
        b = pthread_getspecific(rbuf_key);
        if (!b && (b = malloc(READ_CHUNK)) && pthread_setspecific(rbuf_key, b) != 0) {
            free(b);
            b = NULL;
        }
    }
    *cap = b ? READ_CHUNK : sizeof page;
    return b ? b : page;
}

/* A terminal's output, gathered from its small reads into one chunk.
 * Not coalesced by time: a terminal buffers only a few KiB, so a writer
 * blocks long before a wait could pay off, and an echo must go at once. */
static void terminal_output(struct runner *e, int fd)
{
    size_t cap;
    uint8_t *rbuf = read_buffer(&cap);
    ssize_t n = pty_read(fd, rbuf, cap);

    if (n == -EAGAIN)
        return;
    if (n <= 0) {
        if (n < 0)
            ferry_log_warn("exec: reading the terminal of pid %d: %s", (int)e->pid,
                           ferry_strerror((int)n));
        output_close(e, 0);
        maybe_finish(e);
        return;
    }
    if (e->ops.on_output(e->arg, 1, rbuf, (size_t)n) < 0 && !e->finished)
        output_refused(e);
}

static void on_output_ready(struct ferry_loop *loop, int fd, unsigned events, void *arg)
{
    struct runner *e = arg;
    int i = fd == e->out_fd[0] ? 0 : 1;
    size_t cap;
    uint8_t *rbuf;

    runner__enter(e);
    if (e->pty && i == 0) {
        terminal_output(e, fd);
        runner__leave(e);
        return;
    }
    if (coalesce_wait(e, i, fd)) {
        runner__leave(e);
        return;
    }
    e->last_out_ns = monoclock_ns();
    rbuf = read_buffer(&cap);
    for (int n_reads = 0; n_reads < READS_PER_EVENT && !e->out_paused; n_reads++) {
        if (e->ops.on_output_pipe && !e->out_no_splice) {
            int rc = output_from_pipe(e, i, fd);

            if (rc == 0)
                continue;       /* sent; more may have come meanwhile */
            if (rc == 1)
                break;          /* not now, or aborted */
            /* rc == 2: an empty pipe (EOF?) or no splicing: read() */
        }
        ssize_t n = read(fd, rbuf, cap);

        if (n < 0 && errno == EINTR) {
            n_reads--;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            if (n < 0)
                ferry_log_warn("exec: reading %s of pid %d: %s", i ? "stderr" : "stdout",
                               (int)e->pid, ferry_strerror(-errno));
            output_close(e, i);
            maybe_finish(e);
            break;
        }
        int rc = e->ops.on_output(e->arg, i + 1, rbuf, (size_t)n);
        if (e->finished)        /* freed or aborted from the callback */
            break;
        if (rc < 0) {
            output_refused(e);
            break;
        }
        if ((size_t)n < cap)
            break;              /* the pipe is empty for now */
    }
    runner__leave(e);
}

/* Watch (FERRY_READABLE) or stop watching (0) output pipe i if open. */
static void watch_output(struct runner *e, int i, unsigned events)
{
    if (e->out_fd[i] >= 0) {
        int rc = ferry_loop_modify(e->loop, e->out_fd[i], events);

        if (rc < 0)
            ferry_log_error("exec: cannot %s reading pid %d: %s", events ? "resume" : "pause",
                            (int)e->pid, ferry_strerror(rc));
    }
}

void runner_pause_output(struct runner *e)
{
    if (!e->out_paused) {
        e->out_paused = true;
        for (int i = 0; i < 2; i++)
            if (!e->coalesce_armed || i != e->coalesce_i)
                watch_output(e, i, 0);
    }
}

void runner_resume_output(struct runner *e)
{
    if (e->out_paused) {
        e->out_paused = false;
        /* A pipe waiting to fill is watched again when the wait is over. */
        for (int i = 0; i < 2; i++)
            if (!e->coalesce_armed || i != e->coalesce_i)
                watch_output(e, i, FERRY_READABLE);
    }
}

/* ---- public life cycle -------------------------------------------------- */

int runner_signal(struct runner *e, int sig)
{
    /* Once finished the group id may already belong to someone else. */
    if (e->finished)
        return -ESRCH;
    return signal_group(e, sig);
}

int runner_resize(struct runner *e, const struct winsize *ws)
{
    if (!e->pty)
        return -ENOTTY;
    if (e->finished || e->out_fd[0] < 0)
        return 0;       /* over: nobody to tell */
    return pty_resize(e->out_fd[0], ws);
}

pid_t runner_pid(const struct runner *e)
{
    return e->pid;
}

void runner_abort(struct runner *e)
{
    if (!e)
        return;
    /* On a terminal the command leads a session, and a shell's jobs
     * there have groups of their own: the whole session goes. */
    if (!e->finished && e->pty)
        pty_kill_session(e->pid);
    if (!e->finished) {
        if (!e->reaped)
            kill_and_reap(e);
        else
            signal_group(e, SIGKILL);   /* leftovers still holding our pipes */
    }
    dispose(e);
}

void runner_free(struct runner *e)
{
    if (!e)
        return;
    if (!e->finished)
        runner_abort(e);
    else
        dispose(e);
}

int runner_start(struct ferry_loop *loop, const struct runner_spec *spec,
               const struct runner_ops *ops, void *arg,
               struct runner **out, char *err, size_t errlen)
{
    struct launch l;
    struct runner *e = NULL;
    int in_pipe[2] = { -1, -1 }, out_pipe[2] = { -1, -1 }, err_pipe[2] = { -1, -1 };
    int child_fd[3];
    char tty[64];
    int rc;

    errbuf_format(err, errlen, "%s", "");
    *out = NULL;
    launch_init(&l);
    if (!ops || !ops->on_output || !ops->on_exit ||
        (spec->login ? spec->argv || spec->shell : !spec->argv == !spec->shell) ||
        (spec->argv && !spec->argv[0])) {
        errbuf_format(err, errlen, "bad command: give exactly one of argv and shell");
        return -EINVAL;
    }

    rc = launch_prepare(&l, spec->account, spec->argv, spec->shell, spec->cwd, spec->env, err, errlen);
    if (rc < 0)
        goto out;

    e = calloc(1, sizeof(*e));
    if (!e) {
        rc = -ENOMEM;
        goto fail_msg;
    }
    e->loop = loop;
    e->ops = *ops;
    e->arg = arg;
    e->pid = -1;
    e->pidfd = -1;
    e->in_fd = e->out_fd[0] = e->out_fd[1] = -1;
    e->coalesce_fd = -1;

    if (spec->pty) {
        /* The master stands in for both pipes' parent ends (in_pipe[1] a
         * dup of it, so stdin can close on its own); the child opens the
         * slave by name. */
        rc = pty_open(spec->pty, &out_pipe[0], tty, sizeof tty, err, errlen);
        if (rc < 0)
            goto out;
        e->pty = true;
        e->out_no_splice = true;
        l.tty = tty;
        in_pipe[1] = fcntl(out_pipe[0], F_DUPFD_CLOEXEC, 3);
        if (in_pipe[1] < 0) {
            rc = -errno;
            goto fail_msg;
        }
        if (spec->pty->stderr_pipe && (rc = launch_pipe(err_pipe, 0)) < 0)
            goto fail_msg;
    } else {
        if (spec->stdin_pipe && (rc = launch_pipe(in_pipe, 1)) < 0)
            goto fail_msg;
        if ((rc = launch_pipe(out_pipe, 0)) < 0 || (rc = launch_pipe(err_pipe, 0)) < 0)
            goto fail_msg;
#ifdef F_SETPIPE_SZ
        /* stdout only: stderr is rarely a stream worth the kernel memory. */
        (void)fcntl(out_pipe[0], F_SETPIPE_SZ, OUTPUT_PIPE_SIZE);
#endif
    }

    child_fd[0] = in_pipe[0];
    child_fd[1] = out_pipe[1];
    child_fd[2] = err_pipe[1];
    rc = launch_spawn(&l, child_fd, &e->pid, err, errlen);
    if (rc < 0)
        goto out;

    /* From here a process exists: any failure must kill and reap it, which
     * runner_abort does once e owns everything. */
    e->in_fd = in_pipe[1];
    e->in_open = e->in_fd >= 0;
    in_pipe[1] = -1;
    e->out_fd[0] = out_pipe[0];
    e->out_fd[1] = err_pipe[0];
    out_pipe[0] = err_pipe[0] = -1;

    /* Any failure (ENOSYS before Linux 5.3, EPERM under seccomp profiles
     * that predate pidfd_open) falls back to polling, which always works. */
    rc = 0;
    e->pidfd = reap_pidfd_open(e->pid);
    if (e->pidfd >= 0)
        rc = ferry_loop_add(loop, e->pidfd, FERRY_READABLE, on_pidfd, e);
    else if (!(e->reap_timer = ferry_loop_timer(loop, REAP_POLL_MS, on_reap_timer, e)))
        rc = -ENOMEM;
    if (rc < 0)
        goto fail_running;
    for (int i = 0; i < 2; i++) {
        if (e->out_fd[i] < 0)
            continue;   /* a terminal's stderr that is the terminal */
        rc = ferry_loop_add(loop, e->out_fd[i], FERRY_READABLE, on_output_ready, e);
        if (rc < 0)
            goto fail_running;
    }
    if (spec->timeout_ms) {
        e->kill_timer = ferry_loop_timer(loop, spec->timeout_ms, on_kill_timer, e);
        if (!e->kill_timer) {
            rc = -ENOMEM;
            goto fail_running;
        }
    }
    errbuf_format(err, errlen, "%s", "");     /* a tried-and-dropped home's message */
    *out = e;
    e = NULL;
    rc = 0;
    goto out;

fail_running:
    /* out_fd/pidfd not yet registered are closed by release(), which only
     * removes watchers; removing an fd the loop does not know is harmless. */
    runner_abort(e);
    e = NULL;
fail_msg:
    launch_cannot_start(spec->shell ? "/bin/sh" : spec->argv ? spec->argv[0] : "the login shell",
                        rc, err, errlen);
out:
    if (e) {
        /* Not started: e owns nothing yet. */
        free(e);
    }
    fdio_close(&in_pipe[0]);
    fdio_close(&in_pipe[1]);
    fdio_close(&out_pipe[0]);
    fdio_close(&out_pipe[1]);
    fdio_close(&err_pipe[0]);
    fdio_close(&err_pipe[1]);
    launch_release(&l);
    return rc;
}
