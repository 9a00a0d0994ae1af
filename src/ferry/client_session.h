/*
 * client_session.h - a connected, authenticated session to ferryd, run
 * by libferry as a ferry_conn on the process's one ferry_loop, and the
 * file service's frames over it (docs/PROTOCOL.md 2.4).
 *
 * Every byte goes through the connection (transport.h underneath, the
 * frame codec for every frame, the conn's output queue for everything we
 * send).  Incoming frames go to whoever takes them now: an event-style
 * receiver (exec_stream.c while a command runs, transfer_get.c while a
 * file arrives), or else the one-header slot the file service's requests
 * wait on.  Waiting means running the loop until something arrives, so
 * the socket, stdin, the signal pipe and any other connection on the
 * loop are served together.
 *
 * The file calls return 0 or a negative code and fill a struct fs_error:
 *   FERRY_EREMOTE  the server refused this request (err->code, err->errname,
 *                  err->message); the session goes on unless err->code is
 *                  "protocol" or "auth" (then s->broken is set);
 *   FERRY_ELOST    the connection is gone or out of step (s->broken is set;
 *                  err->message says why);
 *   -EINTR         signals_interrupted was set by a signal while waiting.
 */
#ifndef FERRY_CLIENT_SESSION_H
#define FERRY_CLIENT_SESSION_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "errcode.h"
#include "ferry/conn.h"
#include "ferry/frame.h"
#include "ferry/loop.h"

struct client_session;

/* An event-style receiver: every frame event of the connection while it
 * is set (HEADER's ev->header is the receiver's to keep or free).  A
 * negative return closes the connection. */
typedef int session_rx_fn(struct client_session *s, struct ferry_frame_event *ev, void *arg);

struct client_session {
    struct ferry_loop *loop;         /* the process's loop (client_loop()) */
    struct ferry_conn *conn;         /* NULL once the connection is gone */
    struct ferry_transport *t;       /* while dial.c connects, before the conn */
    struct ferry_tls *tls;           /* the transport's configuration, freed last */
    int tls_borrowed;                /* ... unless it is shared (fleet.c): not ours to free */
    char peer[128];                  /* "127.0.0.1:7171", for messages */
    int broken;                      /* the connection can carry nothing more */
    int opened;                      /* TLS (if any) is up: on_open ran */
    int gone;                        /* on_close ran: why in close_reason */
    int close_reason;
    int pipeline;                    /* the server queues one exec (its hello said so) */
    int put_stream;                  /* ... takes a put of unknown size (PROTOCOL.md 2.4) */
    int glob;                        /* ... expands patterns (PROTOCOL.md 2.4) */
    int put_ack;                     /* ... acknowledges an upload as it goes (put-ack, 2.4) */
    int answers_ping;                /* ... answers pings (its hello: "keepalive") */
    int via_master;                  /* handed over by a connection master (master.h) */
    char tls_error[256];             /* why TLS failed or was closed, when it was */
    uint64_t queued;                 /* bytes ever handed to the connection */
    session_rx_fn *rx;               /* the receiver, or NULL: the slot below */
    void *rx_arg;
    json_t *hdr;                     /* the slot: a header waiting to be taken */
    uint64_t hdr_body;
    char closing[256];               /* why the server said it closes ("closing"), or "" */
    /* --keepalive (PROTOCOL.md 2.7): a ping after interval ms without a
     * word from the server, and the session is given up once a whole
     * interval more passes without one. */
    struct ferry_timer *keepalive;
    uint64_t keepalive_ms;
    uint64_t heard_at;               /* loop ms the server was last heard from */
    uint64_t ping_at;                /* ... and a ping went unanswered since; 0 = none */
    uint64_t sent_seen;              /* session_sent() at the keepalive's last look */
    uint64_t outq_seen;              /* ... and our socket's unacknowledged bytes (SIOCOUTQ) */
    uint64_t body_left;              /* of a data frame we send: body bytes still due */
};

/* The process's one loop, made on first use (NULL: out of memory). */
struct ferry_loop *client_loop(void);

/* Hand the connected transport t to libferry (the session owns it from
 * now on, whatever the result).  Its TLS handshake, if any, runs on the
 * loop, and the connection closes with -ETIMEDOUT unless it is
 * authenticated within timeout_ms.  Until then frames are held to the
 * pre-authentication limits.  0, or a negative code. */
int session_start(struct client_session *s, struct ferry_transport *t, int timeout_ms);

/* The handshake succeeded: no more deadline, the session's frame limits;
 * keepalive_ms > 0 (and a server that said it answers pings): a server
 * silent that long is pinged, and given up (FERRY_EKEEPALIVE) once as
 * long again passes without a word from it. */
void session_authenticated(struct client_session *s, uint64_t keepalive_ms);

/* A session a master handed over (s->via_master) that is at rest (not
 * broken: no request in flight, nothing owed either way) is handed back,
 * so that the master's relay can keep the connection for the next command
 * (master.h); else nothing.  Call before client_session_close, only where
 * the session holds no state a next command must not inherit (ferry shell's
 * `cd` does).  NULL is allowed. */
void session_release(struct client_session *s);

/* Close the connection and free.  NULL is allowed. */
void client_session_close(struct client_session *s);

/* Frames to the receiver fn (NULL: back to the slot).  A header the slot
 * holds goes to fn first, then reading resumes: frames that arrived
 * between two requests reach the second one's receiver in order. */
void session_set_receiver(struct client_session *s, session_rx_fn *fn, void *arg);

/* Run the loop until a callback calls session_wake (something a waiter
 * may wait for has happened: callers check their own condition and wait
 * again), the connection is gone, or a signal set signals_interrupted
 * (-EINTR).  0 or -EINTR. */
int session_wait(struct client_session *s);
void session_wake(struct client_session *s);

/* One turn of the loop without waiting: what has arrived is delivered. */
void session_poll(struct client_session *s);

/* Queue a frame (the header's size member set to body_len when > 0).
 * 0, FERRY_EHDR_TOOBIG, or a connection's error. */
int session_write_frame(struct client_session *s, json_t *hdr, const void *body, size_t body_len);

/* Bytes handed to the connection and written to the socket so far: a
 * frame queued when s->queued was Q has gone once this reaches Q. */
uint64_t session_sent(const struct client_session *s);

/* Ask a put request (req) for the server's put-ack frames while the
 * upload streams, when the server offers them and the keepalive is on:
 * the server is then heard from while it works through megabytes that
 * are already out of our hands (PROTOCOL.md 2.4, 2.7).  0 or -ENOMEM. */
int session_ask_put_acks(const struct client_session *s, json_t *req);

/* Why the connection ended, in words ("connection closed by server"):
 * SESSION_GONE_TEXT_MAX bytes hold any of them whole. */
#define SESSION_GONE_TEXT_MAX 320
void session_gone_text(const struct client_session *s, char *buf, size_t len);

struct fs_error {
    char code[16];        /* the server's "code" ("fs", "path", ...), or "" */
    char errname[32];     /* for "fs": the errno name ("ENOSPC"), or "" */
    char message[512];    /* for people: see remotefs_error_text */
};

/* Mark the session unusable and say why (for FERRY_ELOST).  Returns
 * FERRY_ELOST. */
int session_lost(struct client_session *s, struct fs_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* FERRY_ELOST with the reason the connection ended. */
int session_lost_gone(struct client_session *s, struct fs_error *err);

/* An error message from the server into err: FERRY_EREMOTE, or
 * FERRY_ELOST for "protocol" and "auth" (the server closes after them). */
int session_remote_error(struct client_session *s, const json_t *h, struct fs_error *err);

/* Send one header-only frame (the reference to hdr is taken, NULL meaning
 * out of memory). */
int session_send(struct client_session *s, json_t *hdr, struct fs_error *err);

/* Send a data frame's header for n body bytes starting at offset. */
int session_send_data_header(struct client_session *s, uint64_t offset, uint64_t n,
                             struct fs_error *err);

/* Send n raw bytes (a data frame's body), waiting while the connection's
 * queue is over its high-water mark.  Headers that arrive meanwhile wait
 * in the slot, for session_poll_header after the frame. */
int session_send_body(struct client_session *s, const void *p, size_t n, struct fs_error *err);

/* Send up to n bytes of the file fd from *off (advanced by what went) as a
 * data frame's body, by sendfile: in plaintext the page cache goes to the
 * socket without a copy here (over TLS libferry reads and seals).  Waits
 * while the socket is full.  Returns the bytes sent, fewer than n only
 * when a header from the server arrived meanwhile (the caller sends the
 * rest by session_send_body), or < 0 when the put is over (err says why;
 * "file changed while being sent" when the file ended early). */
ssize_t session_send_file(struct client_session *s, int fd, uint64_t *off, uint64_t n,
                          struct fs_error *err);

/*
 * Wait for the next frame and return its header (*hdr, a new reference),
 * its type (borrowed from *hdr) and its body size.  A body is not kept:
 * the answers this is for have none (a caller treats one as a protocol
 * error).  An "error" message is returned as FERRY_EREMOTE with err filled,
 * not as a header.
 */
int session_recv(struct client_session *s, json_t **hdr, const char **type, uint64_t *body,
                 struct fs_error *err);

/* The same without waiting: 1 and a header when one has arrived, 0 when
 * not (yet). */
int session_poll_header(struct client_session *s, json_t **hdr, const char **type,
                        uint64_t *body, struct fs_error *err);

#endif
