/*
 * conn.h - a connection and the handler that serves it.
 *
 * A ferry_conn is one stream connection driven by libferry: accepted by a
 * server (server.h) or made by the caller and handed over with
 * ferry_conn_open (a client).  Both run the same engine: the transport
 * underneath (plain or TLS, transport.h), the frame parser, an output
 * queue with a high-water mark and back-pressure, timeouts, and a
 * graceful close.  The handler's callbacks are the same on either side.
 */
#ifndef FERRY_CONN_H
#define FERRY_CONN_H

#include "ferry/common.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <jansson.h>

#include "ferry/frame.h"

FERRY_BEGIN_DECLS

struct ferry_conn;       /* opaque; owned by the server or by its loop */
struct ferry_datagram;
struct ferry_loop;
struct ferry_transport;
struct ferry_tls_info;

struct ferry_handler {
    /* Blocking style.  Return 0 or a negative code (logged at debug level). */
    int (*serve)(struct ferry_conn *c, void *arg);

    /* Event style.  A negative return from on_open/on_data/on_frame closes
     * the connection at once (queued output is discarded), and is on_close's
     * reason (on_open's refusal has no on_close) and named, with its
     * callback, in a debug-level log line: return a -errno or FERRY_E* code
     * (-1 reads as -EPERM). */
    int  (*on_open)(struct ferry_conn *c, void *arg);
    int  (*on_data)(struct ferry_conn *c, const void *data, size_t len, void *arg);
    /* Set instead of on_data to receive parsed frames: the server runs a
     * ferry_frame_parser with the server's frame_limits.  ev->header (on
     * FERRY_FRAME_HEADER) is a reference the callback owns.  When the peer
     * breaks framing, on_frame gets one FERRY_FRAME_ERROR event (ev->error)
     * to send a last word, and the connection is then closed once its output
     * is flushed; nothing more is read from it. */
    int  (*on_frame)(struct ferry_conn *c, struct ferry_frame_event *ev, void *arg);
    void (*on_drain)(struct ferry_conn *c, void *arg);
    /* The server is shutting down; close when convenient.  NULL: the
     * connection is closed once its output queue is flushed. */
    void (*on_shutdown)(struct ferry_conn *c, void *arg);
    /* Always called once per connection that reached on_open, last.
     * reason: 0 for a clean close, else the negative code that ended it. */
    void (*on_close)(struct ferry_conn *c, int reason, void *arg);
    /* The handshake timeout fired after on_open: a last word may be
     * queued here, and the connection is then closed once it is flushed.
     * NULL: it is torn down at once (on_close gets -ETIMEDOUT). */
    void (*on_auth_timeout)(struct ferry_conn *c, void *arg);

    /* Datagram endpoints. */
    void (*on_datagram)(const struct ferry_datagram *d, void *arg);

    void *arg;   /* passed to every callback */
};

/* ---- connections the caller makes (clients) ------------------------------ */

struct ferry_conn_opts {
    size_t write_high_water;       /* output queue limit; 0 = 1 MiB */
    struct ferry_frame_limits frame_limits;   /* for on_frame (size_key must outlive the conn) */
    int idle_timeout_ms;           /* close a connection silent this long (while the
                                    * handshake timeout runs, that decides); 0 = never */
    /* Close one whose TLS handshake has not finished, or that has not been
     * ferry_conn_set_authenticated(), in time (-ETIMEDOUT); 0 = never. */
    int handshake_timeout_ms;
};

/*
 * Serve a connected transport with an event-style handler (on_open,
 * on_data or on_frame, on_drain, on_close; serve and on_datagram are
 * -EINVAL) on `loop`, the caller's thread's loop.  The connection takes
 * t (made non-blocking here) and frees it after on_close; peer is a label
 * for logs ("web1:7171", copied).  A TLS transport's handshake runs on the
 * loop first; on_open follows once it is done, always from the loop,
 * never inside this call.  If the handshake fails, on_close runs with the
 * reason (FERRY_ETLS: ferry_transport_error() on ferry_conn_transport()
 * says why, until on_close returns): for a connection made here on_close
 * always runs once, whether or not on_open was reached (a failed
 * handshake, a close before the loop ran, the loop freed), unless on_open
 * refused it.  Output written before on_open is queued and sent once the
 * connection is up.  on_shutdown is never called
 * (there is no server to stop); ferry_conn_stopping() is 0.  The loop
 * keeps running while the connection lives, so ferry_loop_run() returns
 * once every connection (and every other watcher and timer) is gone.
 * 0 and *out (valid until on_close returns), or a negative code (t is
 * then still the caller's).
 */
FERRY_EXPORT FERRY_NODISCARD int ferry_conn_open(struct ferry_loop *loop, struct ferry_transport *t,
                                                 const char *peer, const struct ferry_handler *h,
                                                 const struct ferry_conn_opts *o,
                                                 struct ferry_conn **out);

/* ---- every connection ----------------------------------------------------- */

/* The peer's address as text ("127.0.0.1:50312", "unix:"), stable for the
 * connection's life. */
FERRY_EXPORT const char *ferry_conn_peer(const struct ferry_conn *c);
FERRY_EXPORT uint64_t ferry_conn_id(const struct ferry_conn *c);

/* Per-connection handler state.  The handler owns what it stores and frees
 * it in on_close (or before serve returns). */
FERRY_EXPORT void ferry_conn_set_data(struct ferry_conn *c, void *data);
FERRY_EXPORT void *ferry_conn_data(const struct ferry_conn *c);

/* The connection passed its authentication: the handshake timeout ends. */
FERRY_EXPORT void ferry_conn_set_authenticated(struct ferry_conn *c);

/* Event style: the idle timeout of this connection from now on (0 = none),
 * e.g. 0 for a handler that judges idleness itself (ferryd's sessions: a
 * running command is not idle, keepalive pings are not activity). */
FERRY_EXPORT void ferry_conn_set_idle_timeout(struct ferry_conn *c, int ms);

/* Event style with on_frame: limits for the frames that follow, e.g.
 * small before authentication and larger after (the struct is copied;
 * size_key must outlive the connection). */
FERRY_EXPORT void ferry_conn_set_frame_limits(struct ferry_conn *c, const struct ferry_frame_limits *limits);

/* True once the server has begun a graceful stop. */
FERRY_EXPORT int ferry_conn_stopping(const struct ferry_conn *c);

/* The loop an event-style connection runs on (to watch pipes, set timers);
 * NULL for blocking handlers. */
FERRY_EXPORT struct ferry_loop *ferry_conn_loop(const struct ferry_conn *c);

/* Output.  Event style: copy into the output queue (never blocks).
 * Blocking style: write everything before returning.  0, or a negative
 * code: FERRY_ECLOSED once the connection is closed or closing
 * (ferry_conn_close), -ENOMEM, the socket's -errno (-EPIPE, -ECONNRESET;
 * the event style then tears the connection down), -EINVAL for an iovcnt
 * outside 0..IOV_MAX.  An event handler can return it as it is. */
FERRY_EXPORT FERRY_NODISCARD int ferry_conn_write(struct ferry_conn *c, const void *data, size_t len);
FERRY_EXPORT FERRY_NODISCARD int ferry_conn_writev(struct ferry_conn *c, const struct iovec *iov, int iovcnt);
/* A whole frame (header, then body_len bytes of body with "size" set).
 * Codes as ferry_conn_write's, and FERRY_EHDR_TOOBIG for a header that
 * encodes over the frame limit (nothing is sent). */
FERRY_EXPORT FERRY_NODISCARD int ferry_conn_write_frame(struct ferry_conn *c, json_t *header, const void *body, size_t body_len);
/*
 * Event style: a frame whose body is the next body_len (> 0) bytes of the
 * pipe pipe_fd, which the caller promises are there to be read now
 * (FIONREAD) and that nobody else reads.  With nothing queued, the header
 * goes to the socket and the body follows from the pipe by splice, without
 * a copy through user space; what the socket does not take is read into
 * the queue (at most this body; write_blocked as for any write).  Returns
 * 0 once the frame is sent or queued; -EAGAIN when output is queued ahead
 * (nothing was done; .on_drain follows once it has gone);
 * FERRY_EUNSUPPORTED when the transport cannot splice (TLS, not a socket)
 * or the connection is not yet open (nothing was done: read the bytes and
 * use ferry_conn_write_frame); another negative code after the connection
 * was torn down.  The caller keeps owning pipe_fd.
 */
FERRY_EXPORT FERRY_NODISCARD int ferry_conn_write_frame_from_pipe(struct ferry_conn *c, json_t *header,
                                                                  int pipe_fd, size_t body_len);

/*
 * Up to len bytes of the file fd, from *offset, straight to the peer
 * (sendfile(2): no copy through user space), advancing *offset.  Event
 * style: one attempt, and only when nothing is queued ahead (the bytes
 * would otherwise overtake it); returns the count sent (> 0), or -EAGAIN
 * with .on_drain due once the connection can take more, 0 when the file
 * ends before *offset + 1, or a negative error from the file or the socket
 * (the connection is not closed for it: the handler decides).  Blocking
 * style: sends len bytes, or fewer when the file ends.  The caller keeps
 * owning fd.
 */
FERRY_EXPORT FERRY_NODISCARD ssize_t ferry_conn_sendfile(struct ferry_conn *c, int fd, uint64_t *offset, size_t len);

/* Event style: have .on_drain called once the connection can take more
 * output (on the next loop iteration when it already can).  A producer
 * that sends in batches yields with it, so one busy connection cannot hold
 * the loop. */
FERRY_EXPORT void ferry_conn_want_drain(struct ferry_conn *c);

/* Event style: bytes queued and not yet sent, and whether the queue is over
 * the high-water mark (stop producing until on_drain). */
FERRY_EXPORT size_t ferry_conn_pending(const struct ferry_conn *c);
FERRY_EXPORT int ferry_conn_write_blocked(const struct ferry_conn *c);

/* Event style: stop / resume delivering input (on_data/on_frame). */
FERRY_EXPORT void ferry_conn_pause_read(struct ferry_conn *c);
FERRY_EXPORT void ferry_conn_resume_read(struct ferry_conn *c);

/* Close after queued output is flushed (event style), or at once.  Safe
 * inside callbacks: the connection is freed after the current dispatch, and
 * on_close runs first.  Blocking style: simply return from serve. */
FERRY_EXPORT void ferry_conn_close(struct ferry_conn *c);
FERRY_EXPORT void ferry_conn_abort(struct ferry_conn *c, int reason);

/* Blocking style input.  read returns bytes (> 0), 0 at end of stream
 * (also when the server is stopping and nothing is buffered), or a
 * negative error (-ETIMEDOUT after idle_timeout_ms).  read_full and
 * read_frame follow transport.h and frame.h. */
FERRY_EXPORT FERRY_NODISCARD ssize_t ferry_conn_read(struct ferry_conn *c, void *buf, size_t len);
FERRY_EXPORT FERRY_NODISCARD int ferry_conn_read_full(struct ferry_conn *c, void *buf, size_t len);
FERRY_EXPORT FERRY_NODISCARD int ferry_conn_read_frame(struct ferry_conn *c, json_t **header, uint64_t *body_size);

/* For a TLS connection, what its handshake established (0); otherwise
 * FERRY_EUNSUPPORTED.  Strings live as long as the connection. */
FERRY_EXPORT int ferry_conn_tls_info(const struct ferry_conn *c, struct ferry_tls_info *info);

/* The transport underneath, for code that needs it (blocking style). */
FERRY_EXPORT struct ferry_transport *ferry_conn_transport(struct ferry_conn *c);

/*
 * Event style with on_frame, called at FERRY_FRAME_HEADER of a frame with
 * a body: store that body in the file fd, from offset on (pwrite: fd's
 * own position is not used), instead of handing it over.  The handler
 * then gets FERRY_FRAME_BODY events that report progress: chunk_len
 * bytes were written to the file; chunk points at them when they passed
 * through user space (a TLS connection, bytes already read) and is NULL
 * when they went socket -> pipe -> file without a copy
 * (ferry_transport_recvfile), so a handler that checksums the body reads
 * those back from the file.  Then FERRY_FRAME_END.  A failure to write the
 * file ends the frame with one FERRY_FRAME_ERROR event whose error is the
 * -errno (ENOSPC, EIO, ...; framing errors are FERRY_E* codes), and the
 * connection then closes, since the rest of the body can no longer be
 * told from the next frame.  The caller keeps owning fd; it must stay
 * open until FERRY_FRAME_END or on_close.  0, or -EINVAL outside HEADER.
 */
FERRY_EXPORT FERRY_NODISCARD int ferry_conn_recv_body_to_file(struct ferry_conn *c, int fd,
                                                              uint64_t offset);

/*
 * Like ferry_conn_recv_body_to_file, for a pipe fd that must be blocking
 * (a program's stdout): where the transport can, the body's bytes go
 * socket -> pipe by splice, and the handler gets FERRY_FRAME_BODY events
 * with chunk NULL and chunk_len the bytes moved.  Bytes that pass through
 * user space anyway (TLS; bytes read along with the header; after the
 * pipe refused a splice, e.g. EPIPE) come to the handler as usual, chunk
 * set, and the handler writes them itself, so it also sees the pipe's
 * error in its own write.  Waiting for room in the pipe is the
 * backpressure, as a blocking write would be.  0, or -EINVAL outside
 * HEADER.
 */
FERRY_EXPORT FERRY_NODISCARD int ferry_conn_recv_body_to_pipe(struct ferry_conn *c, int fd);

FERRY_END_DECLS

#endif
