/*
 * transport.h - the one interface connection I/O goes through.
 *
 * Handlers never touch a socket: they read and write a ferry_transport.
 * Today the only transport is a plain socket; TLS slots in later as another
 * set of ops without changing any handler.  A transport is either blocking
 * (thread and fork models) or non-blocking (event model); in the latter case
 * read and write return -EAGAIN when the socket would block.
 */
#ifndef FERRY_TRANSPORT_H
#define FERRY_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

struct ferry_transport;   /* opaque */

/* Wrap a connected socket (or any stream fd).  The transport owns fd from
 * now on and closes it in ferry_transport_free().  NULL on allocation
 * failure (fd is then left open for the caller). */
struct ferry_transport *ferry_transport_new_fd(int fd);

/* Close the descriptor and free.  NULL is allowed. */
void ferry_transport_free(struct ferry_transport *t);

/* The underlying descriptor, for polling; never read or write it directly. */
int ferry_transport_fd(const struct ferry_transport *t);

/* Read up to len bytes.  Returns the count (> 0), 0 at end of stream,
 * -EAGAIN when non-blocking and nothing is available, or a negative error.
 * EINTR is retried internally. */
ssize_t ferry_transport_read(struct ferry_transport *t, void *buf, size_t len);

/* Gathered write; returns bytes written (possibly short), -EAGAIN, or a
 * negative error.  Never raises SIGPIPE (-EPIPE is returned instead). */
ssize_t ferry_transport_writev(struct ferry_transport *t, const struct iovec *iov, int iovcnt);

/* Blocking helpers: loop until all of len is transferred.  read_full
 * returns 0, FERRY_EEOF when the stream ended before the first byte, or
 * FERRY_ETRUNCATED when it ended part way.  write_full and writev_full
 * return 0 or a negative error; writev_full may modify iov. */
int ferry_transport_read_full(struct ferry_transport *t, void *buf, size_t len);
int ferry_transport_write_full(struct ferry_transport *t, const void *buf, size_t len);
int ferry_transport_writev_full(struct ferry_transport *t, struct iovec *iov, int iovcnt);

/* Up to len bytes of the file in_fd, from *offset, to the peer; *offset
 * advances by what was sent (in_fd's own position is not used).  Zero-copy
 * (sendfile(2)) where the transport allows it.  Returns bytes sent (> 0),
 * 0 when the file has no byte at *offset (it ended early), -EAGAIN, or a
 * negative error from either side.  One attempt, without the transport's
 * timeout: on a blocking descriptor it waits as write(2) would. */
ssize_t ferry_transport_sendfile(struct ferry_transport *t, int in_fd, uint64_t *offset, size_t len);

/* Half-close: no more writes from us (the peer reads EOF). */
int ferry_transport_shutdown_write(struct ferry_transport *t);

/* Blocking transports only: fail reads and writes that wait longer than
 * timeout_ms with -ETIMEDOUT (0 = wait forever). */
void ferry_transport_set_timeout(struct ferry_transport *t, int timeout_ms);

#endif
