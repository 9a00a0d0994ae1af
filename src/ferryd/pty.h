/*
 * pty.h - the pseudo-terminal a command runs on when the client asks for
 * one (`ferry exec -t`, docs/PROTOCOL.md 2.8): allocating the pair with
 * the client's modes and window size applied, resizing it, and reading
 * its output.
 *
 * The runner (runner.c) owns the master and drives it like an output
 * pipe; the child opens the slave by name after it has become a session
 * leader (launch.c), which makes it its controlling terminal.  Calls go
 * one way: runner.c -> pty.c.
 */
#ifndef FERRYD_PTY_H
#define FERRYD_PTY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/types.h>

#include <jansson.h>

/* What the client asked for (checked by the caller, except the modes). */
struct pty_spec {
    const json_t *modes;       /* the "modes" object (ttymodes.h), or NULL */
    struct winsize size;       /* the client's window */
    int stderr_pipe;           /* 1: stderr is a pipe of its own, not the terminal */
};

/* A new pseudo-terminal: *master (non-blocking, close-on-exec, owned by
 * the caller) and the slave's path in name.  The modes and size are set
 * before any process sees the slave.  -EINVAL (garbage modes, with the
 * reason in err) or -errno. */
int pty_open(const struct pty_spec *spec, int *master, char *name, size_t namelen,
             char *err, size_t errlen);

/* TIOCSWINSZ: the kernel sends SIGWINCH to the foreground job. */
int pty_resize(int master, const struct winsize *ws);

/* Read what the master holds, up to cap, in as many reads as it takes
 * (a pty hands out at most a few KiB per read).  The count; 0 once every
 * slave descriptor is closed (Linux says EIO); -EAGAIN when nothing is
 * waiting; another -errno on failure. */
ssize_t pty_read(int master, uint8_t *buf, size_t cap);

/* The terminal's end-of-file character when it is in canonical mode (a
 * read of an empty line then returns 0), else -1. */
int pty_eof_char(int master);

/* SIGKILL every process of session sid (a command that runs on a
 * terminal leads its own session), found by a walk of /proc: a shell's
 * jobs have process groups of their own, which a signal to the command's
 * group misses.  Best effort: a process that left the session (setsid, as
 * a daemon does) is not ours to end. */
void pty_kill_session(pid_t sid);

#endif
