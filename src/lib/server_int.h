/*
 * server_int.h - what server.c, conn.c and the three model files share.
 *
 * Ownership: the server owns its listeners; a connection is owned by the
 * context that accepted it (an event worker, a connection thread or a
 * forked child) and is freed there, never elsewhere.
 */
#ifndef FERRY_SERVER_INT_H
#define FERRY_SERVER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "ferry/addr.h"
#include "ferry/loop.h"
#include "ferry/server.h"
#include "buf.h"

#define FERRY_DEFAULT_MAX_CONNS   1024
#define FERRY_DEFAULT_GRACE_MS    5000
#define FERRY_DEFAULT_HIGH_WATER  (1u << 20)
#define FERRY_READ_CHUNK          (256u * 1024u)
/* Reads per readiness event, so one busy peer cannot starve the others. */
#define FERRY_READS_PER_EVENT     4
/* Small writes made while a read pass is dispatched are held (up to this
 * much) and sent together when it ends: a reply made of a header and a
 * body, or the replies to several pipelined requests, cost one syscall. */
#define FERRY_CORK_MAX            (64u * 1024u)
/* How long a graceful close waits for the peer to close its side. */
#define FERRY_LINGER_MS           1000
/* How long accepting pauses after EMFILE/ENFILE. */
#define FERRY_EMFILE_BACKOFF_MS   100

struct listener {
    struct ferry_server *server;
    int fd;
    enum ferry_sock_type type;
    struct ferry_handler h;
    struct ferry_tls *tls;     /* not owned: every connection is TLS; NULL: plain */
    char name[FERRY_ADDRSTRLEN];
    char unix_path[108];       /* set when we created a unix socket file to unlink */
};

struct ferry_server {
    struct ferry_server_opts opts;
    struct listener **listeners;
    size_t nlisteners;
    int stop_pipe[2];          /* written once by ferry_server_stop; read end polled, never drained */
    atomic_int stopping;
    atomic_int running;
    atomic_int nconns;         /* live connections (or children) across all models */
    atomic_int nunauth;        /* of those, holding a not-yet-authenticated slot */
    atomic_uint_fast64_t next_conn_id;
    atomic_int emfile_logged;
    struct acceptor *acceptor;     /* THREAD/FORK: the accepting loop while running */
    int auth_notify_fd;            /* FORK child: closed when its connection authenticates; else -1 */
};

/* One event loop and the connections on it: an event-model worker, the
 * private loop of one connection under THREAD/FORK, or (client) the
 * connections ferry_conn_open put on a caller's loop, kept in that loop's
 * slot and freed with its last connection. */
struct conn_loop {
    struct ferry_server *server;   /* NULL for a client loop */
    int client;                    /* ferry_conn_open's: no server, no stop */
    uint64_t next_id;              /* client: the last connection id given */
    struct ferry_loop *loop;
    struct ferry_conn *conns;      /* doubly linked list of live connections */
    size_t nconns;
    uint8_t *read_buf;             /* FERRY_READ_CHUNK bytes shared by the loop's connections */
    int stopping;                  /* shutdown began on this loop */
    int private_loop;              /* THREAD/FORK: the loop exists for one connection */
    struct ferry_timer *grace_timer;
    /* Called once when the server's stop reaches this loop, before the
     * connections are told (the event model stops accepting here). */
    void (*on_stop)(struct conn_loop *cl);
    void *owner;                   /* the model's state for this loop */
};

struct ferry_conn {
    struct ferry_server *server;   /* NULL for a client connection */
    const struct ferry_handler *h;
    struct ferry_handler client_h; /* a client's copy of its handler (h points here) */
    struct ferry_conn_opts opts;   /* the server's, or the client's with defaults */
    struct ferry_transport *t;
    int fd;
    uint64_t id;
    char peer[FERRY_ADDRSTRLEN];
    void *data;

    /* Event style only. */
    struct conn_loop *cl;
    struct ferry_conn *prev, *next;
    struct ferry_buf out;          /* queued output */
    struct ferry_buf in;           /* input held back while reading is paused */
    struct ferry_frame_parser *parser;
    struct ferry_timer *idle_timer;
    struct ferry_timer *handshake_timer;
    struct ferry_timer *linger_timer;
    uint64_t last_activity;
    unsigned events;               /* interest currently registered */
    unsigned opened : 1;           /* on_open succeeded: on_close is owed */
    unsigned user_paused : 1;      /* ferry_conn_pause_read */
    unsigned write_blocked : 1;    /* output over high water: reading paused */
    unsigned closing : 1;          /* close once output is flushed */
    unsigned closed : 1;           /* torn down; freed by a deferred call */
    unsigned in_callback : 1;
    unsigned teardown_scheduled : 1;
    unsigned lingering : 1;        /* output flushed, our side shut: draining until the peer closes */
    unsigned resume_scheduled : 1;
    unsigned drain_wanted : 1;     /* call on_drain once the socket takes more */
    unsigned corked : 1;           /* inside a read pass: small writes wait for its end */
    unsigned tls_handshaking : 1;  /* TLS not yet established: on_open not called */
    unsigned read_scheduled : 1;   /* a read of TLS-buffered input is deferred */
    unsigned shutdown_pending : 1; /* lingering: TLS's close_notify waits for room */
    unsigned close_owed : 1;       /* on_close is due at teardown */
    unsigned starting : 1;         /* client: on_open (or TLS) waits for the loop */
    unsigned at_header : 1;        /* on_frame is handling a HEADER with a body */
    unsigned body_to_file : 1;     /* this frame's body goes to body_fd */
    unsigned no_recvfile : 1;      /* the transport cannot splice: read and pwrite */
    int pending_reason;            /* for a scheduled teardown */
    int body_fd;                   /* ferry_conn_recv_body_to_file's file */
    uint64_t body_off;             /* where its next byte goes */

    /* Blocking style only. */
    unsigned blocking : 1;
    unsigned authenticated : 1;
    unsigned unauth_held : 1;      /* holds a not-yet-authenticated slot (both styles) */
    uint64_t handshake_deadline;   /* monotonic ms; 0 = none */
};

/* server.c */
uint64_t ferry__now_ms(void);
int ferry__handler_is_event(const struct ferry_handler *h);
/* Accept one connection from a stream listener: applies accept4 flags,
 * the connection cap and the verify hook.  Returns the fd (>= 0), -EAGAIN
 * when nothing is pending, -EMFILE/-ENFILE to back off, or 1..: never.
 * *peer receives the formatted peer address. */
int ferry__accept(struct listener *l, int nonblock, char peer[FERRY_ADDRSTRLEN]);
/* Serve readable datagrams on l (bounded per call). */
void ferry__serve_datagrams(struct listener *l);
/* Log "listening on PROTO ADDR" for every listener.  Models call it once
 * they can serve, so the line means "ready" (tests wait for it). */
void ferry__log_ready(const struct ferry_server *s);
/* Make sig stop s gracefully (ferry_server_stop from the handler). */
void ferry__catch_stop_signal(struct ferry_server *s, int sig);
/* Whether accepted connections hold a not-yet-authenticated slot. */
int ferry__unauth_enabled(const struct ferry_server *s);
/* Give back the not-yet-authenticated slot ferry__accept took. */
void ferry__unauth_release(struct ferry_server *s);
/* Drop the connection count taken by ferry__accept, and the
 * not-yet-authenticated slot too when unauth_held. */
void ferry__conn_released(struct ferry_server *s, int unauth_held);

/* conn.c */
int ferry__conn_loop_init(struct conn_loop *cl, struct ferry_server *s);
void ferry__conn_loop_destroy(struct conn_loop *cl);
/* Begin graceful shutdown on every connection of cl. */
void ferry__conn_loop_shutdown(struct conn_loop *cl);
/* Abort every connection still on cl.  loop_done: the loop has returned
 * and will run no deferred calls, so free at once. */
void ferry__conn_loop_abort_all(struct conn_loop *cl, int loop_done);
/* Adopt an accepted fd as an event-style connection on cl; on failure the
 * fd is closed and the count released. */
int ferry__conn_start_event(struct conn_loop *cl, struct listener *l, int fd, const char *peer);
/* Run a blocking-style handler on fd in the calling thread; closes fd and
 * releases the count before returning. */
void ferry__conn_run_blocking(struct ferry_server *s, struct listener *l, int fd, const char *peer,
                              void (*before_close)(void *arg), void *arg);
/* Run an event-style connection on a private loop in the calling thread
 * (THREAD and FORK models) until it closes or the server stops. */
void ferry__conn_run_private(struct ferry_server *s, struct listener *l, int fd, const char *peer);

/* model_*.c */
int ferry__run_event(struct ferry_server *s);
int ferry__run_thread(struct ferry_server *s);
int ferry__run_fork(struct ferry_server *s);

#endif
