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
#include "ferry/conn.h"

FERRY_BEGIN_DECLS

struct ferry_server;     /* opaque */
struct ferry_conn;       /* opaque; owned by the server */
struct ferry_loop;
struct ferry_transport;
struct ferry_tls;
struct ferry_tls_info;

enum ferry_model { FERRY_MODEL_EVENT = 0, FERRY_MODEL_THREAD = 1, FERRY_MODEL_FORK = 2 };

/* "event", "thread", "fork" -> *out: 0, or -EINVAL for any other name or
 * NULL (*out unchanged). */
FERRY_EXPORT int ferry_model_parse(const char *name, enum ferry_model *out);
FERRY_EXPORT const char *ferry_model_name(enum ferry_model model);

struct ferry_datagram {
    const uint8_t *data;       /* the datagram; valid during the callback */
    size_t len;
    struct ferry_addr peer;    /* who sent it */
    int fd;                    /* the socket it arrived on (reply through it) */
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
    /* Fair admission among those (sshd's MaxStartups start:rate:full and
     * PerSourceMaxStartups): a source (an address, or its netblock of
     * unauth_v4_bits / unauth_v6_bits, 0 = 32 / 128) holds at most
     * max_unauth_per_source of the slots (0 = no cap); from unauth_start
     * slots held on, a source that already has one waiting is dropped at
     * random, unauth_rate percent of the time rising to 100 at the cap (0 =
     * no early drop); when all are held, the oldest connection of the
     * source holding the most is closed to make room (a client with none
     * waiting always gets in), and that source is refused for
     * unauth_penalty_ms (0 = not at all); one whose connection used the
     * whole handshake_timeout_ms without authenticating, for
     * unauth_timeout_penalty_ms (0 = not at all).  Refusals are logged as one
     * summary line a second at most. */
    int max_unauth_per_source;
    int unauth_v4_bits, unauth_v6_bits;
    int unauth_start, unauth_rate;
    int unauth_penalty_ms;
    int unauth_timeout_penalty_ms;
    int backlog;               /* listen(2) backlog; 0 = SOMAXCONN */
    int reuse_port;            /* SO_REUSEPORT on TCP/UDP listeners */
    int idle_timeout_ms;       /* close a connection silent this long (not yet
                                * authenticated: handshake_timeout_ms's); 0 = never */
    int handshake_timeout_ms;  /* close one not ferry_conn_set_authenticated() in time; 0 = never */
    int shutdown_grace_ms;     /* how long a graceful stop waits; 0 = 5000 */
    int handle_signals;        /* SIGINT/SIGTERM stop the server gracefully */
    size_t write_high_water;   /* EVENT style output queue limit; 0 = 1 MiB */
    struct ferry_frame_limits frame_limits;   /* for on_frame and ferry_conn_read_frame */
    /* Allow-list hook, before any handler runs: return 0 to serve, non-zero
     * to close the connection (or drop the datagram).  NULL: serve all. */
    int (*verify)(const struct sockaddr *peer, socklen_t len, void *arg);
    void *verify_arg;
    /* Sent in the clear (best effort, never blocking) to a connection
     * closed at once for max_conns or max_unauthenticated, so its client
     * can say why (ferryd: a "closing" frame, which ferry reads also on a
     * TLS connection: ferry_transport_plain_answer).  NULL: none; the
     * bytes must outlive the server. */
    const void *refusal;
    size_t refusal_len;
};

/* Create a server into *out.  opts may be NULL (all defaults: EVENT, one
 * worker).  SIGPIPE is ignored process-wide from here on.  0, or a
 * negative code (*out NULL): -EINVAL for a model that is none of the
 * three, -ENOMEM, or pipe2(2)'s -errno (-EMFILE). */
FERRY_EXPORT FERRY_NODISCARD int ferry_server_new(const struct ferry_server_opts *opts,
                                                  struct ferry_server **out);

/*
 * Bind an endpoint (addr.h syntax) and attach its handler.  The handler
 * struct is copied.  Stream endpoints need .serve or event callbacks,
 * datagram endpoints .on_datagram.  On success, if bound != NULL, it
 * receives the bound address as text (with the real port when 0 was
 * asked).  0, or a negative code: -EINVAL for a NULL handler, one without
 * what the endpoint's type needs, or one with both .on_data and .on_frame;
 * FERRY_EUNSUPPORTED for a blocking handler under EVENT; FERRY_EADDR for
 * an endpoint that does not parse or resolve; the -errno of socket(2),
 * bind(2) or listen(2) (-EADDRINUSE: the port is taken, -EACCES: a
 * privileged port, -EADDRNOTAVAIL: not an address of this host).
 */
FERRY_EXPORT FERRY_NODISCARD int ferry_server_listen(struct ferry_server *s, const char *endpoint, enum ferry_sock_type type,
                        const struct ferry_handler *h, char bound[FERRY_ADDRSTRLEN]);

/*
 * The same for a stream endpoint whose every connection is TLS (tls.h,
 * a FERRY_TLS_SERVER configuration that must outlive the server).  The
 * handshake runs before on_open (or serve) within handshake_timeout_ms; a
 * connection that fails it is closed with one log line and never reaches
 * the handler.  Handlers are the same as over plain sockets;
 * ferry_conn_tls_info tells them what the handshake established.  Codes
 * as ferry_server_listen's, and FERRY_EUNSUPPORTED for a datagram endpoint
 * (no DTLS).
 */
FERRY_EXPORT FERRY_NODISCARD int ferry_server_listen_tls(struct ferry_server *s, const char *endpoint,
                            enum ferry_sock_type type, const struct ferry_handler *h,
                            struct ferry_tls *tls, char bound[FERRY_ADDRSTRLEN]);

/*
 * Adopt a socket someone else bound (systemd's socket activation, inetd, a
 * parent that dropped privileges after binding a low port): a listening
 * stream socket or a datagram socket, served like an endpoint of
 * ferry_server_listen_tls (tls NULL: plain) with handler h (copied).  The
 * socket is made non-blocking and close-on-exec.  On success the server
 * owns fd (ferry_server_free closes it, never unlinks its file) and bound,
 * if not NULL, receives its address; on failure the caller keeps fd.
 * 0, or a negative code: -ENOTSOCK, -EINVAL for a stream socket that is
 * not listening or a handler that does not fit, FERRY_EUNSUPPORTED for
 * other socket types.
 */
FERRY_EXPORT FERRY_NODISCARD int ferry_server_listen_fd(struct ferry_server *s, int fd,
                                                        const struct ferry_handler *h,
                                                        struct ferry_tls *tls,
                                                        char bound[FERRY_ADDRSTRLEN]);

/* The same, naming who passed the socket (origin: "systemd", at most 31
 * bytes kept; NULL: nobody named) for the log line that says the server
 * listens: "listening on tcp 127.0.0.1:7171 (from systemd, event model)". */
FERRY_EXPORT FERRY_NODISCARD int ferry_server_listen_fd_from(struct ferry_server *s, int fd,
                                                             const char *origin,
                                                             const struct ferry_handler *h,
                                                             struct ferry_tls *tls,
                                                             char bound[FERRY_ADDRSTRLEN]);

/* Serve until stopped.  Returns 0 after a graceful stop, or a negative
 * code: -EINVAL when no endpoint was added (no ferry_server_listen* call
 * succeeded), FERRY_ESTATE when the server is already running, or the
 * -errno of what the model could not start (threads, the loop, fork). */
FERRY_EXPORT FERRY_NODISCARD int ferry_server_run(struct ferry_server *s);

/* Ask a running server to stop gracefully.  Async-signal- and thread-safe. */
FERRY_EXPORT void ferry_server_stop(struct ferry_server *s);

/* How many connections the server holds now (under FERRY_MODEL_FORK, its
 * connection processes), authenticated or not, for a status line such as
 * the one a stop begins with.  Thread-safe; a moment's count. */
FERRY_EXPORT int ferry_server_connections(const struct ferry_server *s);

/* Have fn(s, arg) called once as a stop begins (ferry_server_stop, a
 * signal under handle_signals, a failed loop), before any connection is
 * told: for a line that says so, which a signal handler cannot write.  It
 * runs on one of the server's threads (under THREAD perhaps a connection's;
 * under FORK in the parent), so it must not block; NULL: nothing.  Set it
 * before ferry_server_run. */
FERRY_EXPORT void ferry_server_on_stop(struct ferry_server *s,
                                       void (*fn)(struct ferry_server *s, void *arg), void *arg);

/* Free a server that is not running (closes listeners, unlinks unix sockets
 * it created).  NULL allowed. */
FERRY_EXPORT void ferry_server_free(struct ferry_server *s);

/* Reply to a datagram from within on_datagram (or later, with a copy of
 * d), without blocking.  0, or sendto(2)'s -errno: -EAGAIN when the
 * socket's buffer is full (the reply is dropped, as a datagram may be),
 * -ENOTCONN for a unix datagram peer that bound no address of its own
 * (nothing can answer it: such a client must bind(2) to hear back). */
FERRY_EXPORT int ferry_datagram_reply(const struct ferry_datagram *d, const void *buf, size_t len);

FERRY_END_DECLS

#endif
