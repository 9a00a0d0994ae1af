/*
 * conn_int.h - the connection engine's own header: the structs of a
 * connection and of the loop it runs on, and what the conn_*.c files call
 * in one another.  The files form layers, and calls go down only:
 *
 *   conn_loop.c (server loops)  conn_client.c (ferry_conn_open)
 *   conn_blocking.c (blocking style)  conn_output.c  conn.c (control, accessors)
 *        \______________________  |  ___________________/
 *                               conn_event.c (the event engine)
 *
 * The engine calls none of the others: what must happen when a
 * connection is freed reaches its loop's owner through conn_gone.
 *
 * Teardown rule: handler code may call ferry_conn_close/abort (or hit a
 * write error) from inside its own callbacks, so those never free anything
 * on the spot.  They schedule a deferred teardown; the teardown runs
 * on_close and schedules the free one step later still, so every deferred
 * call that was queued while the connection lived runs before its memory
 * goes away.
 */
#ifndef FERRY_CONN_INT_H
#define FERRY_CONN_INT_H

#include <stdint.h>

#include "ferry/conn.h"
#include "ferry/loop.h"
#include "buf.h"
#include "list.h"
#include "server_int.h"

#define FERRY_DEFAULT_HIGH_WATER  (1u << 20)
#define FERRY_READ_CHUNK          (256u * 1024u)
/* Reads per readiness event, so one busy peer cannot starve the others. */
#define FERRY_READS_PER_EVENT     4
/* A read at a frame boundary behind a spliced body (conn_read): a stdout
 * or stderr header and a little more. */
#define FERRY_HEADER_READ         512u
/* Small writes made while a read pass is dispatched are held (up to this
 * much) and sent together when it ends: a reply made of a header and a
 * body, or the replies to several pipelined requests, cost one syscall. */
#define FERRY_CORK_MAX            (64u * 1024u)
/* How long a graceful close waits for the peer to close its side. */
#define FERRY_LINGER_MS           1000

/* One event loop and the connections on it: an event-model worker, the
 * private loop of one connection under THREAD/FORK, or (client) the
 * connections ferry_conn_open put on a caller's loop, kept in that loop's
 * slot and freed with its last connection. */
struct conn_loop {
    struct ferry_server *server;   /* NULL for a client loop */
    int releasing;                 /* client: the loop is being freed; keep cl until done */
    uint64_t next_id;              /* client: the last connection id given */
    struct ferry_loop *loop;
    struct list_node conns;        /* live connections (ferry_conn.link) */
    size_t nconns;
    uint8_t *read_buf;             /* FERRY_READ_CHUNK bytes shared by the loop's connections */
    int stopping;                  /* shutdown began on this loop */
    int private_loop;              /* THREAD/FORK: the loop exists for one connection */
    struct ferry_timer *grace_timer;
    /* Called once when the server's stop reaches this loop, before the
     * connections are told (the event model stops accepting here). */
    void (*on_stop)(struct conn_loop *cl);
    /* Called after each connection of cl is freed: the owner ends the loop
     * (conn_loop.c) or frees cl (conn_client.c) with the last one. */
    void (*conn_gone)(struct conn_loop *cl);
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
    struct list_node link;         /* in cl->conns */
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
    unsigned body_to_pipe : 1;     /* with body_to_file: body_fd is a pipe (no offset), and
                                    * bytes that pass through user space go to the handler */
    unsigned no_recvpipe : 1;      /* the transport cannot splice into a pipe */
    unsigned piped_last : 1;       /* the last body went into a pipe by splice: read
                                    * only a header's worth at the boundary after it */
    int pending_reason;            /* for a scheduled teardown */
    int body_fd;                   /* ferry_conn_recv_body_to_file's file */
    uint64_t body_off;             /* where its next byte goes */

    /* Blocking style only. */
    unsigned blocking : 1;
    unsigned authenticated : 1;
    unsigned unauth_held : 1;      /* holds a not-yet-authenticated slot (both styles) */
    uint64_t handshake_deadline;   /* monotonic ms; 0 = none */
};

/* ---- conn_event.c: the engine ---------------------------------------------- */

/* A handler of the event style (on_open, on_data or on_frame). */
int ferry__handler_is_event(const struct ferry_handler *h);
/* A server connection's options: the server's. */
void ferry__conn_opts_of_server(const struct ferry_server *s, struct ferry_conn_opts *o);
/* A new event-style connection over t on cl: watched for `events`, timed,
 * in cl's list; the handler has not met it yet.  0 and *out (t is now the
 * connection's), or a negative code (t still the caller's). */
int ferry__conn_event_new(struct conn_loop *cl, struct ferry_transport *t,
                          const struct ferry_handler *h, const struct ferry_conn_opts *o,
                          uint64_t id, const char *peer, unsigned events, struct ferry_conn **out);
/* The handler meets the connection.  0, or the handler's refusal (the
 * connection is then torn down, without on_close). */
int ferry__conn_open(struct ferry_conn *c);
/* One step of a TLS handshake; on_open once it is done. */
void ferry__conn_tls_step(struct ferry_conn *c);
/* One debug line with what a TLS handshake established. */
void ferry__conn_log_tls(const struct ferry_conn *c);
/* Register the events the connection's state asks for. */
void ferry__conn_update_interest(struct ferry_conn *c);
/* Tear down now: stop watching, tell the handler, free later (or at once
 * when free_now: the loop has finished and will run no more deferred
 * calls).  Never from inside one of this connection's handler callbacks. */
void ferry__conn_teardown_now(struct ferry_conn *c, int reason, int free_now);
/* Teardown from API calls that handler code makes: always deferred. */
void ferry__conn_schedule_teardown(struct ferry_conn *c, int reason);
/* Send queued bytes until the socket is full, calling nothing (the caller
 * may be a handler).  0, or the socket's error for the caller to act on. */
int ferry__conn_send_queued(struct ferry_conn *c);
/* Deliver input saved while reading was paused, on the next loop turn. */
void ferry__conn_schedule_saved(struct ferry_conn *c);
/* Abort every connection still on cl.  loop_done: the loop has returned
 * and will run no deferred calls, so free at once. */
void ferry__conn_loop_abort_all(struct conn_loop *cl, int loop_done);

/* ---- conn_loop.c: the server's loops -------------------------------------- */

int ferry__conn_loop_init(struct conn_loop *cl, struct ferry_server *s);
void ferry__conn_loop_destroy(struct conn_loop *cl);
/* Begin graceful shutdown on every connection of cl. */
void ferry__conn_loop_shutdown(struct conn_loop *cl);
/* Adopt an accepted fd as an event-style connection on cl; on failure the
 * fd is closed and the count released. */
int ferry__conn_start_event(struct conn_loop *cl, struct listener *l, int fd, const char *peer);
/* Run an event-style connection on a private loop in the calling thread
 * (THREAD and FORK models) until it closes or the server stops. */
void ferry__conn_run_private(struct ferry_server *s, struct listener *l, int fd, const char *peer);

/* ---- conn_blocking.c ------------------------------------------------------- */

/* Run a blocking-style handler on fd in the calling thread; closes fd and
 * releases the count before returning. */
void ferry__conn_run_blocking(struct ferry_server *s, struct listener *l, int fd, const char *peer,
                              void (*before_close)(void *arg), void *arg);

#endif
