/*
 * transport.h - the one interface connection I/O goes through.
 *
 * Handlers never touch a socket: they read and write a ferry_transport,
 * which is a plain descriptor or a TLS 1.3 channel over a socket (tls.h);
 * no handler can tell which.  A transport is either blocking (thread and
 * fork models) or non-blocking (event model); in the latter case read and
 * write return -EAGAIN when they cannot go on, and the caller polls for
 * ferry_transport_wants() (TLS may need to read in order to write) and
 * reads again without polling while ferry_transport_pending().
 */
#ifndef FERRY_TRANSPORT_H
#define FERRY_TRANSPORT_H

#include "ferry/common.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

FERRY_BEGIN_DECLS

struct ferry_transport;   /* opaque */
struct ferry_tls;
struct ferry_tls_info;

/*
 * Ignore SIGPIPE for the whole process, for good.  libferry's writes never
 * raise it anyway (-EPIPE is returned), but writev, sendfile and OpenSSL's
 * writes cannot say MSG_NOSIGNAL, so each is wrapped in a signal-mask
 * change unless the process ignores SIGPIPE: after this call (which
 * ferry_server_new makes too) they are not.  Call it only if the program
 * keeps SIGPIPE ignored from then on, as most servers and clients do.
 */
FERRY_EXPORT void ferry_ignore_sigpipe(void);

/* Wrap a connected socket (or any stream fd) into *out.  The transport
 * owns fd from now on and closes it in ferry_transport_free().  0, or
 * -ENOMEM (fd is then left open for the caller). */
FERRY_EXPORT FERRY_NODISCARD int ferry_transport_new_fd(int fd, struct ferry_transport **out);

/*
 * Wrap a connected socket in TLS configured by tls (which must outlive the
 * transport).  The role is tls's; a client verifies the server's
 * certificate against server_name (a host name or an address literal);
 * a configuration with a CA file refuses NULL (-EINVAL), since a
 * certificate checked against no name proves nothing about the peer.  The
 * socket is made non-blocking underneath; whether the transport blocks is
 * what the descriptor was (see ferry_transport_set_nonblocking).  Returns 0
 * and *out (owning fd), or a negative code (fd left to the caller).  The
 * handshake runs in ferry_transport_handshake, or implicitly on first I/O.
 */
FERRY_EXPORT FERRY_NODISCARD int ferry_transport_new_tls(int fd, struct ferry_tls *tls, const char *server_name,
                            struct ferry_transport **out);

/*
 * Drive the TLS handshake: 0 once it is complete (at once for a plain
 * transport), -EAGAIN (non-blocking: poll for ferry_transport_wants()),
 * FERRY_ENOTTLS when the peer's first bytes are not TLS, FERRY_ETLS when
 * the handshake failed (ferry_transport_error() says why), FERRY_EEOF when
 * the peer hung up, or another negative error.
 */
FERRY_EXPORT FERRY_NODISCARD int ferry_transport_handshake(struct ferry_transport *t);

/* After -EAGAIN: the poll events (POLLIN, POLLOUT) the transport waits
 * for.  A plain transport wants what the failed call was doing. */
FERRY_EXPORT short ferry_transport_wants(const struct ferry_transport *t);

/* Bytes already received and decrypted that poll() on the descriptor will
 * not announce: read them before waiting.  Always 0 for a plain transport. */
FERRY_EXPORT int ferry_transport_pending(const struct ferry_transport *t);

/* The reason behind the last FERRY_ETLS / FERRY_ENOTTLS, one line ("tlsv1
 * alert decrypt error", "certificate verify failed: hostname mismatch");
 * "" when there is none.  Valid until the next call on t. */
FERRY_EXPORT const char *ferry_transport_error(const struct ferry_transport *t);

/* A TLS client whose server answered its ClientHello with something that
 * is not TLS (FERRY_ENOTTLS): the first bytes of that answer (at most
 * FERRY_TLS_PLAIN_ANSWER_MAX), e.g. a server's plaintext refusal for a
 * caller that knows its format; NULL (and *len 0) otherwise.  Valid as
 * ferry_transport_error. */
#define FERRY_TLS_PLAIN_ANSWER_MAX 512
FERRY_EXPORT const uint8_t *ferry_transport_plain_answer(const struct ferry_transport *t,
                                                         size_t *len);

/* After the handshake: fill *info and return 0; FERRY_EUNSUPPORTED for a
 * plain transport.  The strings live as long as the transport. */
FERRY_EXPORT FERRY_NODISCARD int ferry_transport_tls_info(const struct ferry_transport *t, struct ferry_tls_info *info);

/* After the handshake: len bytes exported from the TLS session under
 * label (RFC 8446 7.5, empty context), the same on both ends of this one
 * connection and unpredictable on any other; for binding an application's
 * own authentication to the channel.  0, FERRY_EUNSUPPORTED (plain),
 * FERRY_ESTATE (no handshake yet) or FERRY_ETLS. */
FERRY_EXPORT FERRY_NODISCARD int ferry_transport_tls_exporter(const struct ferry_transport *t, const char *label,
                                 uint8_t *out, size_t len);

/* Whether read and write block (0) or return -EAGAIN (1).  Use this, not
 * fcntl on the descriptor: a TLS transport's socket is always non-blocking
 * and the transport waits itself when it is blocking. */
FERRY_EXPORT int ferry_transport_set_nonblocking(struct ferry_transport *t, int on);

/* Close the descriptor and free.  NULL is allowed. */
FERRY_EXPORT void ferry_transport_free(struct ferry_transport *t);

/* The underlying descriptor, for polling; never read or write it directly. */
FERRY_EXPORT int ferry_transport_fd(const struct ferry_transport *t);

/* Read up to len bytes.  Returns the count (> 0), 0 at end of stream,
 * -EAGAIN when non-blocking and nothing is available, or a negative error.
 * EINTR is retried internally. */
FERRY_EXPORT FERRY_NODISCARD ssize_t ferry_transport_read(struct ferry_transport *t, void *buf, size_t len);

/* Gathered write; returns bytes written (possibly short), -EAGAIN, or a
 * negative error.  Never raises SIGPIPE (-EPIPE is returned instead).
 * After -EAGAIN, the next write must offer at least the same bytes again,
 * from the same first byte (more may follow): TLS has already sealed a
 * record of them.  A caller that keeps unsent bytes queued does this by
 * itself. */
FERRY_EXPORT FERRY_NODISCARD ssize_t ferry_transport_writev(struct ferry_transport *t, const struct iovec *iov, int iovcnt);

/* Blocking helpers: loop until all of len is transferred.  read_full
 * returns 0, FERRY_EEOF when the stream ended before the first byte, or
 * FERRY_ETRUNCATED when it ended part way.  write_full and writev_full
 * return 0 or a negative error; writev_full may modify iov. */
FERRY_EXPORT FERRY_NODISCARD int ferry_transport_read_full(struct ferry_transport *t, void *buf, size_t len);
FERRY_EXPORT FERRY_NODISCARD int ferry_transport_write_full(struct ferry_transport *t, const void *buf, size_t len);
FERRY_EXPORT FERRY_NODISCARD int ferry_transport_writev_full(struct ferry_transport *t, struct iovec *iov, int iovcnt);

/* Up to len bytes of the file in_fd, from *offset, to the peer; *offset
 * advances by what was sent (in_fd's own position is not used).  Zero-copy
 * (sendfile(2)) where the transport allows it.  Returns bytes sent (> 0),
 * 0 when the file has no byte at *offset (it ended early), -EAGAIN, or a
 * negative error from either side.  One attempt, without the transport's
 * timeout: on a blocking descriptor it waits as write(2) would. */
FERRY_EXPORT FERRY_NODISCARD ssize_t ferry_transport_sendfile(struct ferry_transport *t, int in_fd, uint64_t *offset, size_t len);

/*
 * The receiving side of sendfile: up to len bytes from the peer into the
 * file out_fd at *offset (pwrite semantics: out_fd's own position is not
 * used), advancing *offset, without passing through user space (splice(2)
 * socket -> pipe -> file, through a pipe the transport keeps).  Returns the
 * bytes stored (> 0), 0 at end of stream, -EAGAIN (non-blocking, nothing to
 * read), FERRY_EUNSUPPORTED when this transport cannot do it (TLS
 * decrypts in user space; not a socket): nothing was consumed, and the
 * caller reads and writes instead, as with sendfile's fallback, or another
 * negative error.  A file system without splice gets the bytes by copy.  When it was the file that failed
 * (ENOSPC, EIO, ...), *file_err (if not NULL) is set to that -errno, else
 * to 0: bytes read for the file are then lost, the stream is out of step
 * and should be closed.  One attempt, without the transport's timeout.
 */
FERRY_EXPORT FERRY_NODISCARD ssize_t ferry_transport_recvfile(struct ferry_transport *t, int out_fd,
                                                              uint64_t *offset, size_t len,
                                                              int *file_err);

/*
 * Up to len bytes from the pipe pipe_fd to the peer without passing through
 * user space (splice(2) pipe -> socket: the pipe's pages are sent by
 * reference).  Never waits for the pipe (what it holds now is what can
 * go); the socket side waits as write(2) would unless the descriptor is
 * non-blocking.  Returns bytes sent (> 0), -EAGAIN (the socket is full, or
 * the pipe empty), FERRY_EUNSUPPORTED when this transport cannot (TLS
 * encrypts in user space; not a socket): nothing was taken, or another
 * negative error.  One attempt, without the transport's timeout.
 */
FERRY_EXPORT FERRY_NODISCARD ssize_t ferry_transport_sendpipe(struct ferry_transport *t, int pipe_fd,
                                                              size_t len);

/*
 * Up to len bytes from the peer into the pipe pipe_fd without passing
 * through user space (splice(2) socket -> pipe).  Waits for room in the
 * pipe as write(2) would (so pipe_fd must be blocking; a non-blocking pipe
 * gets FERRY_EUNSUPPORTED), and for input only if the socket is blocking.
 * Returns the bytes moved (> 0), 0 at end of stream, -EAGAIN (nothing to
 * read), FERRY_EUNSUPPORTED (TLS, not a socket, a pipe that takes no
 * splice: nothing was consumed, the caller reads and writes instead), or
 * another negative error from either side (-EPIPE: the pipe has no reader
 * any more; nothing was consumed then either).  One attempt, without the
 * transport's timeout.
 */
FERRY_EXPORT FERRY_NODISCARD ssize_t ferry_transport_recvpipe(struct ferry_transport *t, int pipe_fd,
                                                              size_t len);

/* Half-close: no more writes from us (the peer reads EOF). */
FERRY_EXPORT int ferry_transport_shutdown_write(struct ferry_transport *t);

/* Blocking transports only: fail reads and writes that wait longer than
 * timeout_ms with -ETIMEDOUT (0 = wait forever). */
FERRY_EXPORT void ferry_transport_set_timeout(struct ferry_transport *t, int timeout_ms);

FERRY_END_DECLS

#endif
