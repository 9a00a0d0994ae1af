/*
 * signals.h - what the client does with the signals a user sends it.
 *
 * Two uses, one module, so no two handlers fight over a signal:
 *   - forwarding (exec, shell commands): SIGINT, SIGTERM, SIGHUP and
 *     SIGQUIT are written to a self-pipe, which the streaming code watches
 *     beside the socket and turns into "signal" messages for the remote
 *     command;
 *   - interrupting (put, get): SIGINT, SIGTERM and SIGHUP set
 *     signals_interrupted (and wake the loop through the same pipe), so a
 *     transfer can remove its temporary before the process exits with
 *     128+N.
 * Handlers only write a byte or set a flag: nothing in them formats or
 * allocates.
 */
#ifndef FERRY_CLIENT_SIGNALS_H
#define FERRY_CLIENT_SIGNALS_H

#include <signal.h>
#include <stddef.h>

#define SIGNALS_MAX 4

/* The dispositions a install replaced, for its restore. */
struct signals_saved {
    struct sigaction old[SIGNALS_MAX];
};

/* The self-pipe's read end (non-blocking; made on first use and kept for
 * the process's life, since a shell runs many commands).  -errno when it
 * cannot be made. */
int signals_pipe_fd(void);

/* Forward the four signals to the pipe until signals_forward_restore,
 * which also drops any still unread (nobody is left to receive them).
 * 0 or -errno. */
int signals_forward_install(struct signals_saved *saved);
void signals_forward_restore(const struct signals_saved *saved);

/* SIGWINCH (a terminal session's window changed) goes to the same pipe
 * until signals_winch_restore.  0 or -errno. */
int signals_winch_install(struct sigaction *old);
void signals_winch_restore(const struct sigaction *old);

/* Read up to n forwarded signal numbers from the pipe: the count, 0 when
 * none is waiting. */
size_t signals_take(int *sigs, size_t n);

/* "INT", "TERM", "HUP", "QUIT" (PROTOCOL.md 2.2's names), or NULL. */
const char *signals_name(int signo);

/* What the loop does when the pipe has signals (client_session.c watches
 * it): the hook takes them (exec_stream.c forwards them to the command),
 * or, with no hook, they are dropped and signals_dispatch returns 0 (an
 * interrupted transfer: signals_interrupted says the rest). */
typedef void signals_hook_fn(void *arg);
void signals_set_hook(signals_hook_fn *fn, void *arg);
int signals_dispatch(void);

/* Set to the signal's number by the interrupting handlers (which also
 * write it to the pipe, to wake the loop). */
extern volatile sig_atomic_t signals_interrupted;

/* Interrupt on SIGINT, SIGTERM and SIGHUP until signals_interrupt_restore.
 * 0 or -errno. */
int signals_interrupt_install(struct signals_saved *saved);
void signals_interrupt_restore(const struct signals_saved *saved);

#endif
