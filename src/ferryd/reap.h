/*
 * reap.h - the two ways the command runner waits for a process that only
 * its pid names: a pidfd to watch on the loop, and a detached thread for a
 * child that did not die promptly after SIGKILL (stuck in uninterruptible
 * sleep): it will die eventually, and someone must reap it or it stays a
 * zombie in a long-running daemon.
 *
 * Apart from runner.c because neither needs the runner's state: they are
 * process primitives, as launch.c's spawn is.
 */
#ifndef FERRYD_REAP_H
#define FERRYD_REAP_H

#include <sys/types.h>

/* pidfd_open(pid): a close-on-exec descriptor that becomes readable when
 * the process exits; -1 with errno set (ENOSYS before Linux 5.3, EPERM
 * under older seccomp profiles), when the caller polls waitpid instead. */
int reap_pidfd_open(pid_t pid);

/* Reap pid from a detached thread that blocks in waitpid (with every
 * signal blocked, so process signals keep going to the threads that
 * handle them).  A thread that cannot be started is logged: the process
 * then stays a zombie. */
void reap_detached(pid_t pid);

#endif
