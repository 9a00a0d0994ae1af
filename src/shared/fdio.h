/*
 * fdio.h - whole-buffer writes, a descriptor close and the standard
 * descriptors made safe, the loops ferryd,
 * ferry and ferry-bench would otherwise each spell out (and get subtly
 * different: EINTR, a non-blocking descriptor, a zero-byte write).
 *
 * Errors: 0 or -errno.  A write that makes no progress is -EIO, so a
 * caller never loops forever on a device that accepts nothing.
 */
#ifndef FERRY_SHARED_FDIO_H
#define FERRY_SHARED_FDIO_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Write all len bytes of buf to fd.  EINTR is retried unless stop is not
 * NULL and *stop is set (a signal that asked us to give up): then -EINTR.
 * A non-blocking fd that says EAGAIN is waited for with poll(), so a
 * caller's stdout left non-blocking by someone else still gets everything.
 */
int fdio_write_all(int fd, const void *buf, size_t len, const volatile sig_atomic_t *stop);

/* The same at file offset off, by pwrite (the file offset is not moved). */
int fdio_pwrite_all(int fd, const void *buf, size_t len, uint64_t off,
                    const volatile sig_atomic_t *stop);

/*
 * close(*fd) if it is open (>= 0) and mark it closed (-1).  Never retried:
 * on Linux the descriptor is gone whatever close() says, and a retry
 * could close one another thread has just been given.
 */
void fdio_close(int *fd);

/*
 * Open /dev/null on whichever of descriptors 0, 1 and 2 is closed, as
 * ssh's sanitise_stdfd does: a program started with one closed would give
 * that number to its first socket, pipe or file, and then read it as
 * stdin or write its messages into it (ferryd's log went into its stop
 * pipe and it quit at once, silently).  Call first thing in main.  0 or
 * -errno.
 */
int fdio_std_open(void);

#endif
