/*
 * server.h - socketserver for C: listeners, handlers and concurrency models.
 *
 * A server owns one or more listening endpoints, each with its handler, and
 * serves them under one concurrency model chosen at run time:
 *
 *   FERRY_MODEL_EVENT   N worker threads, each running its own epoll loop;
 *                       connections are non-blocking and never block a worker.
 *   FERRY_MODEL_THREAD  a thread per connection (socketserver's ThreadingMixIn).
 *   FERRY_MODEL_FORK    a process per connection (ForkingMixIn), children reaped,
 *                       their number capped by max_conns.
 *
 * A handler is written in one of two styles:
 *
 *   Blocking  (.serve): called once per connection in its own thread or
 *             process; reads and writes with ferry_conn_read and ferry_conn_write and
 *             returns when done.  Runs under THREAD and FORK.
 *
 *   Event     (.on_open, .on_data or .on_frame, .on_drain, .on_close):
 *             callbacks on a loop.  Runs under every model: under THREAD and
 *             FORK each connection gets a private loop in its thread or
 *             process, so one implementation of a service serves all three.
 *             Callbacks must not block.  ferry_conn_write queues output; when
 *             more than write_high_water bytes are queued the server stops
 *             reading that connection until the queue drains below half of it,
 *             then calls .on_drain, so a slow reader never makes the server
 *             buffer without bound.  A handler that produces output from
 *             another source (a pipe, a file) should stop reading that source
 *             while ferry_conn_write_blocked() and resume in .on_drain.
 *
 * Datagram endpoints (UDP, unix datagram) take .on_datagram, which runs on a
 * loop thread in every model and answers with ferry_datagram_reply().
 *
 * Shutdown: ferry_server_stop() (or SIGINT/SIGTERM when handle_signals is
 * set) stops accepting, tells every connection (.on_shutdown for event
 * handlers; blocking reads at a request boundary see end of stream), waits up
 * to shutdown_grace_ms for them to finish, closes the rest, and makes
 * ferry_server_run() return 0.
 */
#ifndef FERRY_SERVER_H
#define FERRY_SERVER_H

#include "ferry/common.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <jansson.h>

#include "ferry/addr.h"
#include "ferry/frame.h"

struct ferry_server;     /* opaque */
struct ferry_conn;       /* opaque; owned by the server */
struct ferry_loop;
struct ferry_transport;
struct ferry_tls;
struct ferry_tls_info;

enum ferry_model { FERRY_MODEL_EVENT = 0, FERRY_MODEL_THREAD = 1, FERRY_MODEL_FORK = 2 };

/* "event", "thread", "fork" -> model; 0 or FERRY_EADDR-like -EINVAL. */
FERRY_EXPORT int ferry_model_parse(const char *name, enum ferry_model *out);
FERRY_EXPORT const char *ferry_model_name(enum ferry_model model);

struct ferry_datagram {
    const uint8_t *data;       /* the datagram; valid during the callback */
    size_t len;
    struct ferry_addr peer;    /* who sent it */
    int fd;                    /* the socket it arrived on (reply through it) */
};

struct ferry_handler {
    /* Blocking style.  Return 0 or a negative code (logged at debug level). */
    int (*serve)(struct ferry_conn *c, void *arg);

    /* Event style.  A negative return from on_open/on_data/on_frame closes
     * the connection at once (queued output is discarded). */
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

    /* Datagram endpoints. */
    void (*on_datagram)(const struct ferry_datagram *d, void *arg);

    void *arg;   /* passed to every callback */
};

struct ferry_server_opts {
    enum ferry_model model;
    int workers;               /* EVENT: loop threads; 0 = 1 */
    int max_conns;             /* concurrent connections, over it: closed at once; 0 = 1024 */
    /* Of those, how many may be waiting to authenticate (accepted, and not
     * yet ferry_conn_set_authenticated) at once, as sshd's MaxStartups:
     * over it new connections are closed at once, so a flood of silent
     * peers cannot lock authenticated users out.  0 = no separate cap.
     * Only with handshake_timeout_ms. */
    int max_unauthenticated;
    int backlog;               /* listen(2) backlog; 0 = SOMAXCONN */
    int reuse_port;            /* SO_REUSEPORT on TCP/UDP listeners */
    int idle_timeout_ms;       /* close a connection silent this long; 0 = never */
    int handshake_timeout_ms;  /* close one not ferry_conn_set_authenticated() in time; 0 = never */
    int shutdown_grace_ms;     /* how long a graceful stop waits; 0 = 5000 */
    int handle_signals;        /* SIGINT/SIGTERM stop the server gracefully */
    size_t write_high_water;   /* EVENT style output queue limit; 0 = 1 MiB */
    struct ferry_frame_limits frame_limits;   /* for on_frame and ferry_conn_read_frame */
    /* Allow-list hook, before any handler runs: return 0 to serve, non-zero
     * to close the connection (or drop the datagram).  NULL: serve all. */
    int (*verify)(const struct sockaddr *peer, socklen_t len, void *arg);
    void *verify_arg;
};

/* Create a server into *out.  opts may be NULL (all defaults: EVENT, one
 * worker).  SIGPIPE is ignored process-wide from here on.  0, or a
 * negative code (*out NULL). */
FERRY_EXPORT FERRY_NODISCARD int ferry_server_new(const struct ferry_server_opts *opts,
                                                  struct ferry_server **out);

/*
 * Bind an endpoint (addr.h syntax) and attach its handler.  The handler
 * struct is copied.  Stream endpoints need .serve or event callbacks,
 * datagram endpoints .on_datagram; a blocking handler under EVENT is
 * FERRY_EUNSUPPORTED.  On success, if bound != NULL, it receives the bound
 * address as text (with the real port when 0 was asked).
 */
FERRY_EXPORT FERRY_NODISCARD int ferry_server_listen(struct ferry_server *s, const char *endpoint, enum ferry_sock_type type,
                        const struct ferry_handler *h, char bound[FERRY_ADDRSTRLEN]);

/*
 * The same for a stream endpoint whose every connection is TLS (tls.h,
 * a FERRY_TLS_SERVER configuration that must outlive the server).  The
 * handshake runs before on_open (or serve) within handshake_timeout_ms; a
 * connection that fails it is closed with one log line and never reaches
 * the handler.  Handlers are the same as over plain sockets;
 * ferry_conn_tls_info tells them what the handshake established.
 */
FERRY_EXPORT FERRY_NODISCARD int ferry_server_listen_tls(struct ferry_server *s, const char *endpoint,
                            enum ferry_sock_type type, const struct ferry_handler *h,
                            struct ferry_tls *tls, char bound[FERRY_ADDRSTRLEN]);

/* Serve until stopped.  Returns 0 after a graceful stop, or a negative error. */
FERRY_EXPORT FERRY_NODISCARD int ferry_server_run(struct ferry_server *s);

/* Ask a running server to stop gracefully.  Async-signal- and thread-safe. */
FERRY_EXPORT void ferry_server_stop(struct ferry_server *s);

/* Free a server that is not running (closes listeners, unlinks unix sockets
 * it created).  NULL allowed. */
FERRY_EXPORT void ferry_server_free(struct ferry_server *s);

/* ---- connections --------------------------------------------------------- */

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

/* Event style with on_frame: limits for the frames that follow, e.g.
 * small before authentication and larger after (the struct is copied;
 * size_key must outlive the connection). */
FERRY_EXPORT void ferry_conn_set_frame_limits(struct ferry_conn *c, const struct ferry_frame_limits *limits);

/* True once the server has begun a graceful stop. */
FERRY_EXPORT int ferry_conn_stopping(const struct ferry_conn *c);

/* The loop an event-style connection runs on (to watch pipes, set timers);
 * NULL for blocking handlers. */
FERRY_EXPORT struct ferry_loop *ferry_conn_loop(const struct ferry_conn *c);

/* Output.  Event style: copy into the output queue (never blocks; fails
 * only on allocation failure or a closed connection).  Blocking style:
 * write everything before returning. */
FERRY_EXPORT FERRY_NODISCARD int ferry_conn_write(struct ferry_conn *c, const void *data, size_t len);
FERRY_EXPORT FERRY_NODISCARD int ferry_conn_writev(struct ferry_conn *c, const struct iovec *iov, int iovcnt);
/* A whole frame (header, then body_len bytes of body with "size" set). */
FERRY_EXPORT FERRY_NODISCARD int ferry_conn_write_frame(struct ferry_conn *c, json_t *header, const void *body, size_t body_len);

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

/* Reply to a datagram from within on_datagram (or later, with a copy of d). */
FERRY_EXPORT int ferry_datagram_reply(const struct ferry_datagram *d, const void *buf, size_t len);

#endif
