/*
 * runner.h - ferryd's command runner.
 *
 * Starts one command (an exact argv, or a /bin/sh -c line) in a fresh
 * process group with a clean environment and only descriptors 0, 1 and 2
 * open, and drives it from a ferry_loop: output is passed to callbacks as
 * it is read, stdin is fed from a queue, a timeout terminates the group,
 * and the process is reaped through a pidfd (never waitpid(-1): the daemon
 * reaps only its own children).
 *
 * Threading: a runner belongs to the loop it was started on; every function
 * here must be called on that loop's thread.  Different loops (threads) may
 * run commands concurrently.
 *
 * Process-wide preconditions (the daemon's, not ours to change):
 *   - SIGPIPE is ignored (ferry_server_new does this): a command that closes
 *     its stdin makes our write fail with EPIPE instead of killing us.
 *   - SIGCHLD is not SIG_IGN and nobody else waits for arbitrary children,
 *     or the kernel/another thread could reap our child and lose its status.
 *
 * Output goes either through on_output (read here, borrowed for the call)
 * or, when the caller has on_output_pipe and can splice, straight from the
 * pipe.  While output streams, a pipe holding little is given 0.5 ms to
 * fill before it is offered (runner.c, COALESCE_MIN), so a command writing
 * in small pieces does not make each piece a frame.
 *
 * Memory: output is never buffered here (each chunk is borrowed by
 * on_output for the call only, at most 256 KiB); the stdin queue holds
 * whatever the caller queued, so bounding it is the caller's job: stop
 * reading input while runner_stdin_pending() is high and resume from
 * on_stdin_drained.
 */
#ifndef FERRYD_RUNNER_H
#define FERRYD_RUNNER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct ferry_loop;
struct pty_spec;
struct launch_account;
struct winsize;
#include "errcode.h"

struct runner;    /* opaque */

/* After a timeout: SIGTERM to the group, then SIGKILL this much later. */
#define RUNNER_KILL_GRACE_MS 2000

/* runner_start fails with FERRY_ECWD (errcode.h) when the working
 * directory cannot be used (missing, not a directory, not searchable). */

struct runner_spec {
    /* argv mode: the exact argv, NULL-terminated, never re-parsed.  argv[0]
     * is looked up in the child's PATH (see env) unless it contains '/', in
     * which case it is used as is (relative to cwd). */
    char *const *argv;
    /* shell mode: run as /bin/sh -c SHELL.  Exactly one of argv and shell. */
    const char *shell;
    /* Working directory; NULL = the daemon user's home directory, or /
     * when that cannot be used (as sshd does). */
    const char *cwd;
    /* Extra NAME=VALUE entries (NULL-terminated) or NULL.  They override
     * the defaults: PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:
     * /sbin:/bin, HOME, USER, LOGNAME and SHELL of the daemon's user, and
     * LANG (the daemon's, else C.UTF-8).  NAME must match
     * [A-Za-z_][A-Za-z0-9_]*.  A PATH given here is the one argv[0] is
     * looked up in. */
    char *const *env;
    /* 0 = none; else SIGTERM to the group after timeout_ms, SIGKILL
     * RUNNER_KILL_GRACE_MS later; the result then has timed_out = 1. */
    uint64_t timeout_ms;
    /* 1: stdin is a pipe fed by runner_write_stdin; 0: /dev/null. */
    int stdin_pipe;
    /* NULL: pipes.  Else the command runs on a new pseudo-terminal (pty.h)
     * in a session of its own: stdin and stdout are the terminal (stdin_pipe
     * is ignored; runner_write_stdin types on it), output comes as stream 1,
     * stderr as stream 2 only with pty->stderr_pipe.  The output ends when
     * the last process holding the terminal has closed it, or shortly after
     * the command's end (the terminal is then hung up); runner_abort kills
     * the command's whole session. */
    const struct pty_spec *pty;
    /* 1: neither argv nor shell; the account's login shell (launch.h). */
    int login;
    /* The daemon user's account as its session looked it up (launch.h),
     * borrowed for the call; NULL: looked up for this command. */
    const struct launch_account *account;
};

/* How the command ended.  Exactly one of exited/signaled is set, except in
 * the pathological case where someone else reaped our child (both 0). */
struct runner_result {
    int exited, status;          /* normal exit and its status (0-255) */
    int signaled, signal, core;  /* killed by `signal`; core dumped */
    int timed_out;               /* our timeout fired (TERM or KILL sent) */
};

/* Callbacks run on the loop's thread.  Each may call any function here on
 * its own runner, including runner_abort and runner_free. */
/* The most one on_output_pipe call is offered: the stdout pipe's size. */
#define RUNNER_PIPE_CHUNK (1024 * 1024)

struct runner_ops {
    /* Output from stream 1 (stdout) or 2 (stderr); data is borrowed for the
     * call (len <= 256 KiB).  Return < 0 to abort: the group gets SIGKILL,
     * no more output is delivered, and on_exit still follows. */
    int  (*on_output)(void *arg, int stream, const uint8_t *data, size_t len);
    /* Optional: len (<= RUNNER_PIPE_CHUNK) bytes are waiting in the output
     * pipe fd of stream 1 or 2; send them straight from there (nobody else
     * reads fd) and return 0.  -EAGAIN: not now (nothing taken; output is
     * paused, and the caller resumes it with runner_resume_output);
     * FERRY_EUNSUPPORTED: never (nothing taken; they are read and go to
     * on_output, as all output does from then on); another < 0 aborts as
     * from on_output. */
    int  (*on_output_pipe)(void *arg, int stream, int fd, size_t len);
    /* Called exactly once, after the process is reaped AND both output
     * pipes reached EOF (so no output is lost).  A background process that
     * keeps stdout open delays it, as with ssh.  Not called after
     * runner_abort. */
    void (*on_exit)(void *arg, const struct runner_result *res);
    /* The stdin queue fell to zero after being non-empty (flushed, or
     * dropped because the command closed its stdin): the caller may resume
     * reading input.  May be NULL. */
    void (*on_stdin_drained)(void *arg);
    /* Some, not all, of the stdin queue was written to the command
     * (runner_stdin_pending() says how much is left): for callers that
     * track consumption, such as a flow-control window.  May be NULL. */
    void (*on_stdin_progress)(void *arg);
};

/*
 * Start the command.  On success returns 0 and *out (owned by the caller:
 * end it with runner_free after on_exit, or runner_abort).  On failure returns a
 * negative code, writes a one-line reason into err (if errlen > 0), and
 * nothing is left running or open:
 *   -ENOENT    "NAME: command not found" (or "NAME: No such file or
 *              directory" for a name with '/'); the caller reports 127
 *   -EACCES    "NAME: permission denied"                          126
 *   -ENOEXEC   "NAME: cannot execute: Exec format error"           126
 *   FERRY_ECWD  "cd DIR: No such file or directory" (or the reason)
 *   -EINVAL    bad spec (both or neither of argv/shell, empty argv) or a
 *              bad env entry ("bad environment variable name: ...")
 *   other      -errno from pipe2, posix_spawn, malloc ...
 */
int runner_start(struct ferry_loop *loop, const struct runner_spec *spec,
               const struct runner_ops *ops, void *arg,
               struct runner **out, char *err, size_t errlen);

/* Queue a copy of data for the command's stdin (written as the pipe allows;
 * never blocks).  Returns 0, -ENOMEM, or -EPIPE when stdin is not open any
 * more (the command closed it or exited, runner_close_stdin was called, or
 * stdin_pipe was 0): the data is dropped, which is not an error for the
 * session. */
int runner_write_stdin(struct runner *e, const void *data, size_t len);

/* Bytes queued for stdin and not yet written to the pipe. */
size_t runner_stdin_pending(const struct runner *e);

/* Close stdin once the queue is flushed (EOF for the command).  Idempotent. */
void runner_close_stdin(struct runner *e);

/* Send sig to the command's whole process group.  0, or -errno (-ESRCH once
 * the command is over). */
int runner_signal(struct runner *e, int sig);

/* Stop / restart reading the output pipes (backpressure from a slow
 * client).  While paused the command blocks once the pipe (1 MiB for
 * stdout, 64 KiB for stderr) is full, and on_exit waits for resume. */
void runner_pause_output(struct runner *e);
void runner_resume_output(struct runner *e);

/* The client is gone: SIGKILL the group, reap the process (waiting at most
 * ~200 ms on this thread; a process stuck in the kernel longer is reaped by
 * a detached thread, so no zombie is left), free everything.  No callback
 * runs after this.  Safe from inside a callback. */
void runner_abort(struct runner *e);

/* Free after on_exit (also from inside on_exit).  On a command that is still
 * running it acts as runner_abort.  NULL allowed. */
void runner_free(struct runner *e);

/* A command on a terminal: set its window size (its foreground job gets
 * SIGWINCH).  0; -ENOTTY without a terminal; -errno. */
int runner_resize(struct runner *e, const struct winsize *ws);

/* The command's pid, which is also its process group id. */
pid_t runner_pid(const struct runner *e);

#endif
