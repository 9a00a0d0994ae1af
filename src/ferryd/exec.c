/*
 * exec.c - ferryd's command runner; the contract is in exec.h.
 *
 * A command is started with posix_spawn (vfork-like in glibc, so starting
 * is cheap even from a large daemon, and exec failures come back as its
 * return value).  The child's side is built entirely from file actions and
 * attributes: cwd by fchdir to a directory we opened and checked first, the
 * pipes dup2'ed onto 0/1/2, everything else closed, a fresh process group,
 * an empty signal mask and default dispositions (the daemon ignores SIGPIPE,
 * and ignored signals survive exec).
 *
 * From then on the command is a set of loop sources owned by struct exec:
 * two output pipes (read as they become readable, paused on request), the
 * stdin pipe (watched for writability only while its queue is non-empty),
 * a pidfd (or a polling timer where pidfd_open is missing) and the timeout
 * timer.  The command is over when it has been reaped and both output pipes
 * are at EOF; only then does on_exit run.
 *
 * Re-entrancy: every callback may free or abort its exec.  Loop callbacks
 * bracket their work with enter()/leave(); exec_free/exec_abort release all
 * sources at once (so nothing else can fire) and, when called from inside a
 * callback, leave the final free() to leave().
 */
#include "exec.h"
#include "errbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ferry/error.h"
#include "ferry/log.h"
#include "ferry/loop.h"
#include "fdio.h"
#include "monoclock.h"

/* posix_spawn_file_actions_addclosefrom_np arrived in glibc 2.34 (and
 * addfchdir_np in 2.29, which we require).  Without closefrom we rely on
 * every descriptor being close-on-exec, which ferry guarantees for its own. */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
#define HAVE_ADDCLOSEFROM 1
#endif

#define READ_CHUNK       (256 * 1024)
#define READS_PER_EVENT  4          /* fairness: at most 1 MiB per wakeup */
/* The output pipes are grown to this (the kernel's default is 64 KiB): a
 * command writing fast fills a 64 KiB pipe in microseconds and then sleeps
 * until we read, one context switch per 64 KiB.  Best effort: a lower
 * /proc/sys/fs/pipe-max-size just leaves the default. */
#define OUTPUT_PIPE_SIZE (1024 * 1024)
#define REAP_POLL_MS     50         /* waitpid polling when pidfd is missing */
#define ABORT_REAP_MS    200        /* how long exec_abort waits on the loop */
#define STDIN_IOV        16         /* chunks per writev */
#define DEFAULT_PATH     "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define DEFAULT_LANG     "C.UTF-8"

/* One exec_write_stdin call's bytes not yet written. */
struct stdin_chunk {
    struct stdin_chunk *next;
    size_t len;         /* bytes in data */
    size_t off;         /* bytes of data already written */
    uint8_t data[];
};

struct exec {
    struct ferry_loop *loop;        /* borrowed; outlives us */
    struct exec_ops ops;
    void *arg;

    pid_t pid;                      /* also the process group id */
    int pidfd;                      /* -1 when absent (polling) or closed */
    struct ferry_timer *reap_timer; /* polling fallback, else NULL */
    struct ferry_timer *kill_timer; /* timeout, then the grace period */
    int term_stage;                 /* 0: nothing sent, 1: TERM, 2: KILL */

    int out_fd[2];                  /* stdout, stderr (ours, non-blocking); -1 at EOF */
    bool out_paused;

    int in_fd;                      /* stdin write end; -1 when closed or /dev/null */
    bool in_open;                   /* exec_write_stdin still accepts data */
    bool in_watched;                /* in_fd is registered for writability */
    bool in_close_wanted;           /* close in_fd once the queue is flushed */
    struct stdin_chunk *in_head, *in_tail;
    size_t in_pending;

    bool reaped;
    bool finished;                  /* on_exit delivered (or aborted): no more callbacks */
    bool doomed;                    /* freed from inside a callback */
    int depth;                      /* loop callbacks of ours on the stack */
    struct exec_result res;

};

/* ---- small helpers ----------------------------------------------------- */


static int open_pidfd(pid_t pid)
{
#ifdef SYS_pidfd_open
    /* The pidfd is close-on-exec by definition. */
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

/* A pipe whose child end is blocking and above 2 (so dup2 onto 0/1/2 can
 * never clobber another pipe end, even in a daemon started with 0-2 closed)
 * and whose parent end is non-blocking.  Both ends are close-on-exec.
 * p[0] is the read end, as with pipe(2). */
static int make_pipe(int p[2], int parent_end)
{
    int fl, rc;

    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    for (int i = 0; i < 2; i++) {
        if (p[i] < 3) {
            int fd = fcntl(p[i], F_DUPFD_CLOEXEC, 3);

            if (fd < 0)
                goto fail;
            close(p[i]);
            p[i] = fd;
        }
    }
    fl = fcntl(p[parent_end], F_GETFL);
    if (fl < 0 || fcntl(p[parent_end], F_SETFL, fl | O_NONBLOCK) < 0)
        goto fail;
    return 0;

fail:
    rc = -errno;
    fdio_close(&p[0]);
    fdio_close(&p[1]);
    return rc;
}

/* ---- the child's account and environment -------------------------------- */

/* The daemon user's passwd entry, copied (getpwuid is not thread-safe and
 * each worker thread may start commands). */
struct account {
    struct passwd pw;
    char *buf;          /* owns the strings pw points into */
    bool found;
};

static int account_load(struct account *a)
{
    long hint = sysconf(_SC_GETPW_R_SIZE_MAX);
    size_t size = hint > 0 ? (size_t)hint : 4096;
    struct passwd *res = NULL;

    for (;;) {
        char *nb = realloc(a->buf, size);

        if (!nb)
            return -ENOMEM;
        a->buf = nb;
        int rc = getpwuid_r(getuid(), &a->pw, a->buf, size, &res);
        if (rc == ERANGE && size < (1u << 20)) {
            size *= 2;
            continue;
        }
        /* No entry (or a broken NSS) is not fatal: defaults below. */
        a->found = rc == 0 && res != NULL;
        return 0;
    }
}

static const char *account_home(const struct account *a)
{
    return a->found && a->pw.pw_dir && a->pw.pw_dir[0] ? a->pw.pw_dir : "/";
}

static void free_strv(char **v)
{
    if (!v)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

static bool valid_env_name(const char *s, size_t n)
{
    if (n == 0 || !(s[0] == '_' || (s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z')))
        return false;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];

        if (!(c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
            return false;
    }
    return true;
}

/* Index of NAME= in env[0..n), or n. */
static size_t env_find(char **env, size_t n, const char *name, size_t namelen)
{
    for (size_t i = 0; i < n; i++)
        if (strncmp(env[i], name, namelen) == 0 && env[i][namelen] == '=')
            return i;
    return n;
}

static const char *env_get(char *const *env, const char *name)
{
    size_t len = strlen(name);

    for (; *env; env++)
        if (strncmp(*env, name, len) == 0 && (*env)[len] == '=')
            return *env + len + 1;
    return NULL;
}

/* The child's environment: defaults, then the extras (validated; later
 * entries override earlier ones).  *out is a NULL-terminated array of owned
 * strings (free_strv). */
static int build_env(const struct account *a, char *const *extra, char ***out,
                     char *err, size_t errlen)
{
    size_t nextra = 0, n = 0;
    char **env = NULL;
    const char *lang = getenv("LANG");
    int rc;

    while (extra && extra[nextra])
        nextra++;
    env = calloc(7 + nextra, sizeof(*env));   /* 6 defaults + extras + NULL */
    if (!env)
        return -ENOMEM;

#define ENV_ADD(...)                                                          \
    do {                                                                      \
        if (asprintf(&env[n], __VA_ARGS__) < 0) {                             \
            env[n] = NULL;                                                    \
            rc = -ENOMEM;                                                     \
            goto fail;                                                        \
        }                                                                     \
        n++;                                                                  \
    } while (0)

    ENV_ADD("PATH=%s", DEFAULT_PATH);
    ENV_ADD("HOME=%s", account_home(a));
    if (a->found && a->pw.pw_name && a->pw.pw_name[0]) {
        ENV_ADD("USER=%s", a->pw.pw_name);
        ENV_ADD("LOGNAME=%s", a->pw.pw_name);
    }
    ENV_ADD("SHELL=%s", a->found && a->pw.pw_shell && a->pw.pw_shell[0] ? a->pw.pw_shell : "/bin/sh");
    ENV_ADD("LANG=%s", lang && lang[0] ? lang : DEFAULT_LANG);
#undef ENV_ADD

    for (size_t i = 0; i < nextra; i++) {
        const char *eq = strchr(extra[i], '=');
        size_t namelen = eq ? (size_t)(eq - extra[i]) : strlen(extra[i]);
        char *copy;

        if (!eq || !valid_env_name(extra[i], namelen)) {
            errbuf_format(err, errlen, "bad environment variable name: %.*s",
                    (int)(namelen > 64 ? 64 : namelen), extra[i]);
            rc = -EINVAL;
            goto fail;
        }
        copy = strdup(extra[i]);
        if (!copy) {
            rc = -ENOMEM;
            goto fail;
        }
        size_t at = env_find(env, n, extra[i], namelen);
        if (at < n) {
            free(env[at]);
            env[at] = copy;
        } else {
            env[n++] = copy;
        }
    }
    *out = env;
    return 0;

fail:
    free_strv(env);
    if (rc == -ENOMEM)
        errbuf_format(err, errlen, "out of memory");
    return rc;
}

/* ---- program lookup ----------------------------------------------------- */

/*
 * Find NAME in the child's PATH as execvp would, but against the child's
 * PATH and cwd (dirfd) instead of ours.  Empty or relative PATH entries are
 * relative to the child's cwd, so the candidate is checked with *at() calls
 * on dirfd and passed to posix_spawn as it stands (the child has already
 * changed directory when it execs).  Directories are skipped; a file found
 * only without execute permission gives -EACCES, nothing at all -ENOENT.
 */
static int find_program(const char *name, const char *path, int dirfd, char **out)
{
    bool denied = false;
    size_t namelen = strlen(name);
    const char *p = path;

    if (namelen == 0)
        return -ENOENT;
    for (;;) {
        const char *colon = strchr(p, ':');
        size_t dlen = colon ? (size_t)(colon - p) : strlen(p);
        char *cand;
        struct stat st;

        if (dlen == 0)
            cand = strdup(name);
        else if (asprintf(&cand, "%.*s/%s", (int)dlen, p, name) < 0)
            cand = NULL;
        if (!cand)
            return -ENOMEM;
        if (fstatat(dirfd, cand, &st, 0) == 0 && !S_ISDIR(st.st_mode)) {
            if (faccessat(dirfd, cand, X_OK, 0) == 0) {
                *out = cand;
                return 0;
            }
            if (errno == EACCES)
                denied = true;
        }
        free(cand);
        if (!colon)
            break;
        p = colon + 1;
    }
    return denied ? -EACCES : -ENOENT;
}

/* Open and check the working directory.  The child fchdir()s to exactly
 * this directory, so what we checked is what it gets; the search-permission
 * check keeps a bad cwd from surfacing as posix_spawn's EACCES, which would
 * read as "permission denied" on the command. */
static int open_cwd(const char *cwd, int *out, char *err, size_t errlen)
{
    int fd = open(cwd, O_PATH | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0 || access(cwd, X_OK) < 0) {
        int e = errno;

        if (fd >= 0)
            close(fd);
        errbuf_format(err, errlen, "cd %s: %s", cwd, ferry_strerror(-e));
        return FERRY_ECWD;
    }
    *out = fd;
    return 0;
}

/* ---- teardown ----------------------------------------------------------- */

static void stdin_drop_queue(struct exec *e)
{
    struct stdin_chunk *c = e->in_head;

    while (c) {
        struct stdin_chunk *next = c->next;

        free(c);
        c = next;
    }
    e->in_head = e->in_tail = NULL;
    e->in_pending = 0;
}

static void stdin_close(struct exec *e)
{
    if (e->in_watched) {
        ferry_loop_remove(e->loop, e->in_fd);
        e->in_watched = false;
    }
    fdio_close(&e->in_fd);
    e->in_open = false;
    stdin_drop_queue(e);
}

static void output_close(struct exec *e, int i)
{
    if (e->out_fd[i] >= 0) {
        ferry_loop_remove(e->loop, e->out_fd[i]);
        fdio_close(&e->out_fd[i]);
    }
}

static void stop_reaping(struct exec *e)
{
    if (e->pidfd >= 0) {
        ferry_loop_remove(e->loop, e->pidfd);
        fdio_close(&e->pidfd);
    }
    ferry_timer_cancel(e->reap_timer);
    e->reap_timer = NULL;
}

/* Drop every loop source and descriptor; idempotent. */
static void release(struct exec *e)
{
    output_close(e, 0);
    output_close(e, 1);
    stdin_close(e);
    stop_reaping(e);
    ferry_timer_cancel(e->kill_timer);
    e->kill_timer = NULL;
}

static void enter(struct exec *e)
{
    e->depth++;
}

/* The end of a loop callback; e must not be touched after this. */
static void leave(struct exec *e)
{
    if (--e->depth == 0 && e->doomed)
        free(e);
}

static void dispose(struct exec *e)
{
    e->finished = true;
    release(e);
    if (e->depth > 0)
        e->doomed = true;
    else
        free(e);
}

/* ---- the process ------------------------------------------------------- */

static int signal_group(struct exec *e, int sig)
{
    if (killpg(e->pid, sig) < 0) {
        int rc = -errno;

        if (rc != -ESRCH)
            ferry_log_warn("exec: killpg(%d, %d): %s", (int)e->pid, sig, ferry_strerror(rc));
        return rc;
    }
    return 0;
}

static void record_status(struct exec *e, int status)
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
static bool reap_now(struct exec *e)
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

static void maybe_finish(struct exec *e)
{
    if (e->finished || !e->reaped || e->out_fd[0] >= 0 || e->out_fd[1] >= 0)
        return;
    e->finished = true;
    /* The process group is gone (or detached from our pipes): stop the
     * timeout, and drop stdin nobody will read. */
    ferry_timer_cancel(e->kill_timer);
    e->kill_timer = NULL;
    stdin_close(e);
    e->ops.on_exit(e->arg, &e->res);
}

static void after_reap(struct exec *e)
{
    stop_reaping(e);
    maybe_finish(e);
}

static void on_pidfd(struct ferry_loop *loop, int fd, unsigned events, void *arg)
{
    struct exec *e = arg;

    enter(e);
    if (reap_now(e))
        after_reap(e);
    leave(e);
}

static void on_reap_timer(struct ferry_loop *loop, struct ferry_timer *t, void *arg)
{
    struct exec *e = arg;

    enter(e);
    if (reap_now(e))
        after_reap(e);
    else
        ferry_timer_restart(t, REAP_POLL_MS);
    leave(e);
}

static void on_kill_timer(struct ferry_loop *loop, struct ferry_timer *t, void *arg)
{
    struct exec *e = arg;

    if (e->term_stage == 0) {
        e->res.timed_out = 1;
        e->term_stage = 1;
        signal_group(e, SIGTERM);
        ferry_timer_restart(t, EXEC_KILL_GRACE_MS);
    } else if (e->term_stage == 1) {
        e->term_stage = 2;
        signal_group(e, SIGKILL);
    }
}

/* Detached reaper for a child that did not die within ABORT_REAP_MS of
 * SIGKILL (stuck in uninterruptible sleep): it will die eventually, and
 * someone must reap it or it stays a zombie in a long-running daemon. */
static void *reaper_main(void *arg)
{
    pid_t pid = (pid_t)(intptr_t)arg;

    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    return NULL;
}

static void reap_in_background(pid_t pid)
{
    pthread_attr_t attr;
    pthread_t tid;
    sigset_t all, old;
    int rc;

    rc = pthread_attr_init(&attr);
    if (rc == 0) {
        rc = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (rc == 0) {
            /* The reaper inherits a full mask: process signals must keep
             * going to the threads that handle them. */
            sigfillset(&all);
            pthread_sigmask(SIG_SETMASK, &all, &old);
            rc = pthread_create(&tid, &attr, reaper_main, (void *)(intptr_t)pid);
            pthread_sigmask(SIG_SETMASK, &old, NULL);
        }
        pthread_attr_destroy(&attr);
    }
    if (rc != 0)
        ferry_log_error("exec: cannot start a reaper thread for pid %d (%s); it stays a zombie",
                        (int)pid, ferry_strerror(-rc));
}

/* SIGKILL the group and reap the leader, blocking this thread for at most
 * ABORT_REAP_MS (SIGKILL normally takes microseconds). */
static void kill_and_reap(struct exec *e)
{
    uint64_t deadline = monoclock_ms() + ABORT_REAP_MS;

    signal_group(e, SIGKILL);
    while (!reap_now(e)) {
        uint64_t now = monoclock_ms();

        if (now >= deadline) {
            reap_in_background(e->pid);
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

static void on_output_ready(struct ferry_loop *loop, int fd, unsigned events, void *arg)
{
    /* Output is only lent to on_output for the call, and a loop runs on one
     * thread, so one buffer per thread serves every command on it: an idle
     * command costs no 64 KiB of its own. */
    static _Thread_local uint8_t rbuf[READ_CHUNK];
    struct exec *e = arg;
    int i = fd == e->out_fd[0] ? 0 : 1;

    enter(e);
    for (int n_reads = 0; n_reads < READS_PER_EVENT && !e->out_paused; n_reads++) {
        ssize_t n = read(fd, rbuf, sizeof(rbuf));

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
            /* The caller wants no more: kill the command and stop reading;
             * on_exit follows once it is reaped. */
            signal_group(e, SIGKILL);
            output_close(e, 0);
            output_close(e, 1);
            maybe_finish(e);
            break;
        }
        if ((size_t)n < sizeof(rbuf))
            break;              /* the pipe is empty for now */
    }
    leave(e);
}

/* Watch (FERRY_READABLE) or stop watching (0) the open output pipes. */
static void output_interest(struct exec *e, unsigned events)
{
    for (int i = 0; i < 2; i++) {
        if (e->out_fd[i] >= 0) {
            int rc = ferry_loop_modify(e->loop, e->out_fd[i], events);

            if (rc < 0)
                ferry_log_error("exec: cannot %s reading pid %d: %s", events ? "resume" : "pause",
                                (int)e->pid, ferry_strerror(rc));
        }
    }
}

void exec_pause_output(struct exec *e)
{
    if (!e->out_paused) {
        e->out_paused = true;
        output_interest(e, 0);
    }
}

void exec_resume_output(struct exec *e)
{
    if (e->out_paused) {
        e->out_paused = false;
        output_interest(e, FERRY_READABLE);
    }
}

/* ---- stdin ------------------------------------------------------------- */

/* The command closed its stdin (EPIPE) or writing failed: drop what is
 * queued.  Returns whether anything was queued (worth an on_stdin_drained). */
static bool stdin_broken(struct exec *e)
{
    bool had = e->in_pending > 0;

    stdin_close(e);
    return had;
}

/* Write as much of the queue as the pipe takes.  0 when the queue is
 * flushed, 1 when the pipe is full, -EPIPE when stdin broke. */
static int stdin_flush(struct exec *e)
{
    while (e->in_head) {
        struct iovec iov[STDIN_IOV];
        int cnt = 0;

        for (struct stdin_chunk *c = e->in_head; c && cnt < STDIN_IOV; c = c->next, cnt++) {
            iov[cnt].iov_base = c->data + c->off;
            iov[cnt].iov_len = c->len - c->off;
        }
        ssize_t n = writev(e->in_fd, iov, cnt);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 1;
            if (errno != EPIPE)
                ferry_log_warn("exec: writing stdin of pid %d: %s", (int)e->pid,
                               ferry_strerror(-errno));
            return -EPIPE;
        }
        e->in_pending -= (size_t)n;
        while (n > 0) {
            struct stdin_chunk *c = e->in_head;
            size_t left = c->len - c->off;

            if ((size_t)n < left) {
                c->off += (size_t)n;
                break;
            }
            n -= (ssize_t)left;
            e->in_head = c->next;
            free(c);
        }
        if (!e->in_head)
            e->in_tail = NULL;
    }
    return 0;
}

static void on_stdin_writable(struct ferry_loop *loop, int fd, unsigned events, void *arg)
{
    struct exec *e = arg;
    bool drained = false;
    size_t before = exec_stdin_pending(e);
    int rc;

    enter(e);
    rc = stdin_flush(e);
    if (rc < 0) {
        drained = stdin_broken(e);
    } else if (rc == 0) {
        ferry_loop_remove(e->loop, e->in_fd);
        e->in_watched = false;
        if (e->in_close_wanted)
            fdio_close(&e->in_fd);
        drained = true;
    }
    if (drained && e->ops.on_stdin_drained)
        e->ops.on_stdin_drained(e->arg);
    else if (!drained && rc > 0 && exec_stdin_pending(e) < before && e->ops.on_stdin_progress)
        e->ops.on_stdin_progress(e->arg);
    leave(e);
}

int exec_write_stdin(struct exec *e, const void *data, size_t len)
{
    const uint8_t *p = data;

    if (!e->in_open)
        return -EPIPE;
    if (len == 0)
        return 0;
    /* Nothing queued: try the pipe directly, the common case for an
     * interactive command that keeps up. */
    while (!e->in_head && len > 0) {
        ssize_t n = write(e->in_fd, p, len);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            if (errno != EPIPE)
                ferry_log_warn("exec: writing stdin of pid %d: %s", (int)e->pid,
                               ferry_strerror(-errno));
            stdin_broken(e);
            return -EPIPE;
        }
        p += n;
        len -= (size_t)n;
    }
    if (len == 0)
        return 0;

    struct stdin_chunk *c = malloc(sizeof(*c) + len);
    if (!c)
        return -ENOMEM;
    c->next = NULL;
    c->len = len;
    c->off = 0;
    memcpy(c->data, p, len);
    if (!e->in_watched) {
        int rc = ferry_loop_add(e->loop, e->in_fd, FERRY_WRITABLE, on_stdin_writable, e);

        if (rc < 0) {
            free(c);
            return rc;
        }
        e->in_watched = true;
    }
    if (e->in_tail)
        e->in_tail->next = c;
    else
        e->in_head = c;
    e->in_tail = c;
    e->in_pending += len;
    return 0;
}

size_t exec_stdin_pending(const struct exec *e)
{
    return e->in_pending;
}

void exec_close_stdin(struct exec *e)
{
    e->in_open = false;
    e->in_close_wanted = true;
    if (!e->in_head)
        fdio_close(&e->in_fd);
}

/* ---- public life cycle -------------------------------------------------- */

int exec_signal(struct exec *e, int sig)
{
    /* Once finished the group id may already belong to someone else. */
    if (e->finished)
        return -ESRCH;
    return signal_group(e, sig);
}

pid_t exec_pid(const struct exec *e)
{
    return e->pid;
}

void exec_abort(struct exec *e)
{
    if (!e)
        return;
    if (!e->finished) {
        if (!e->reaped)
            kill_and_reap(e);
        else
            signal_group(e, SIGKILL);   /* leftovers still holding our pipes */
    }
    dispose(e);
}

void exec_free(struct exec *e)
{
    if (!e)
        return;
    if (!e->finished)
        exec_abort(e);
    else
        dispose(e);
}

/* Message for a posix_spawn failure, in the shell's words. */
static void spawn_error(int rc, const char *name, bool looked_up, char *err, size_t errlen)
{
    switch (rc) {
    case -ENOENT:
        errbuf_format(err, errlen, "%s: %s", name, looked_up ? "command not found" : "No such file or directory");
        break;
    case -EACCES:
        errbuf_format(err, errlen, "%s: permission denied", name);
        break;
    case -ENOEXEC:
        errbuf_format(err, errlen, "%s: cannot execute: Exec format error", name);
        break;
    default:
        errbuf_format(err, errlen, "%s: %s", name, ferry_strerror(rc));
        break;
    }
}

/* posix_spawn with the child set up as the header promises.  child_fd are
 * the child's ends for 0, 1, 2 (child_fd[0] < 0: /dev/null). */
static int spawn(pid_t *pid, const char *path, char *const *argv, char *const *envp,
                 int dirfd, const int child_fd[3])
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    bool fa_ok = false, attr_ok = false;
    sigset_t set;
    int rc;

    rc = posix_spawn_file_actions_init(&fa);
    if (rc)
        goto out;
    fa_ok = true;
    /* fchdir first: later actions (and the exec) resolve relative paths
     * from the new directory. */
    rc = posix_spawn_file_actions_addfchdir_np(&fa, dirfd);
    if (rc)
        goto out;
    if (child_fd[0] >= 0)
        rc = posix_spawn_file_actions_adddup2(&fa, child_fd[0], 0);
    else
        rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (rc)
        goto out;
    /* dup2 clears close-on-exec on 0-2; the child ends (all >= 3) go. */
    for (int i = 1; i <= 2 && !rc; i++)
        rc = posix_spawn_file_actions_adddup2(&fa, child_fd[i], i);
    if (rc)
        goto out;
#ifdef HAVE_ADDCLOSEFROM
    /* Also descriptors some library opened without O_CLOEXEC. */
    rc = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    if (rc)
        goto out;
#endif

    rc = posix_spawnattr_init(&attr);
    if (rc)
        goto out;
    attr_ok = true;
    /* A fresh process group led by the command, so signals and the final
     * SIGKILL reach everything it starts; the daemon's mask and ignored
     * signals (SIGPIPE!) must not leak into it. */
    rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                         POSIX_SPAWN_SETSIGDEF);
    if (!rc)
        rc = posix_spawnattr_setpgroup(&attr, 0);
    if (!rc) {
        sigemptyset(&set);
        rc = posix_spawnattr_setsigmask(&attr, &set);
    }
    if (!rc) {
        /* Every signal we may name; glibc's own two internal signals are
         * excluded by sigfillset and set to SIG_IGN by posix_spawn itself
         * when handled here (harmless: programs do not use them). */
        sigfillset(&set);
        sigdelset(&set, SIGKILL);
        sigdelset(&set, SIGSTOP);
        rc = posix_spawnattr_setsigdefault(&attr, &set);
    }
    if (rc)
        goto out;

    rc = posix_spawn(pid, path, &fa, &attr, argv, envp);

out:
    if (attr_ok)
        posix_spawnattr_destroy(&attr);
    if (fa_ok)
        posix_spawn_file_actions_destroy(&fa);
    return -rc;
}

int exec_start(struct ferry_loop *loop, const struct exec_spec *spec,
               const struct exec_ops *ops, void *arg,
               struct exec **out, char *err, size_t errlen)
{
    struct account acct = { .buf = NULL };
    char **envp = NULL;
    char *found = NULL;             /* argv[0] resolved in PATH */
    struct exec *e = NULL;
    int dirfd = -1;
    int in_pipe[2] = { -1, -1 }, out_pipe[2] = { -1, -1 }, err_pipe[2] = { -1, -1 };
    char sh_name[] = "sh", sh_opt[] = "-c";
    char *sh_argv[4] = { sh_name, sh_opt, NULL, NULL };
    char *const *argv;
    const char *path, *name;
    int child_fd[3];
    int rc;

    errbuf_format(err, errlen, "%s", "");
    *out = NULL;
    if (!ops || !ops->on_output || !ops->on_exit ||
        !spec->argv == !spec->shell || (spec->argv && !spec->argv[0])) {
        errbuf_format(err, errlen, "bad command: give exactly one of argv and shell");
        return -EINVAL;
    }

    rc = account_load(&acct);
    if (rc < 0)
        goto fail_msg;
    rc = build_env(&acct, spec->env, &envp, err, errlen);
    if (rc < 0)
        goto out;
    if (spec->cwd) {
        rc = open_cwd(spec->cwd, &dirfd, err, errlen);
    } else {
        /* As sshd does: a user whose home is missing (daemon accounts often
         * have /nonexistent) still gets to run commands, from /. */
        rc = open_cwd(account_home(&acct), &dirfd, err, errlen);
        if (rc < 0)
            rc = open_cwd("/", &dirfd, err, errlen);
    }
    if (rc < 0)
        goto out;

    if (spec->shell) {
        /* posix_spawn does not write to argv; the cast only satisfies its
         * historical prototype. */
        sh_argv[2] = (char *)spec->shell;
        argv = sh_argv;
        path = name = "/bin/sh";
    } else {
        argv = spec->argv;
        name = argv[0];
        if (strchr(name, '/')) {
            path = name;
        } else {
            const char *child_path = env_get(envp, "PATH");

            rc = find_program(name, child_path ? child_path : "", dirfd, &found);
            if (rc < 0) {
                spawn_error(rc, name, true, err, errlen);
                goto out;
            }
            path = found;
        }
    }

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

    if (spec->stdin_pipe && (rc = make_pipe(in_pipe, 1)) < 0)
        goto fail_msg;
    if ((rc = make_pipe(out_pipe, 0)) < 0 || (rc = make_pipe(err_pipe, 0)) < 0)
        goto fail_msg;
#ifdef F_SETPIPE_SZ
    /* stdout only: stderr is rarely a stream worth the kernel memory. */
    (void)fcntl(out_pipe[0], F_SETPIPE_SZ, OUTPUT_PIPE_SIZE);
#endif

    child_fd[0] = in_pipe[0];
    child_fd[1] = out_pipe[1];
    child_fd[2] = err_pipe[1];
    rc = spawn(&e->pid, path, argv, envp, dirfd, child_fd);
    if (rc < 0) {
        spawn_error(rc, name, false, err, errlen);
        goto out;
    }

    /* From here a process exists: any failure must kill and reap it, which
     * exec_abort does once e owns everything. */
    e->in_fd = in_pipe[1];
    e->in_open = e->in_fd >= 0;
    in_pipe[1] = -1;
    e->out_fd[0] = out_pipe[0];
    e->out_fd[1] = err_pipe[0];
    out_pipe[0] = err_pipe[0] = -1;

    /* Any failure (ENOSYS before Linux 5.3, EPERM under seccomp profiles
     * that predate pidfd_open) falls back to polling, which always works. */
    rc = 0;
    e->pidfd = open_pidfd(e->pid);
    if (e->pidfd >= 0)
        rc = ferry_loop_add(loop, e->pidfd, FERRY_READABLE, on_pidfd, e);
    else if (!(e->reap_timer = ferry_loop_timer(loop, REAP_POLL_MS, on_reap_timer, e)))
        rc = -ENOMEM;
    if (rc < 0)
        goto fail_running;
    for (int i = 0; i < 2; i++) {
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
    exec_abort(e);
    e = NULL;
fail_msg:
    errbuf_format(err, errlen, "cannot start %s: %s", spec->shell ? "/bin/sh" : spec->argv[0],
            ferry_strerror(rc));
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
    fdio_close(&dirfd);
    free(found);
    free_strv(envp);
    free(acct.buf);
    return rc;
}
