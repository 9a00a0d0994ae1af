/*
 * bench_conn.h - one ferry-bench connection: what every connection of a
 * worker thread has in common (its transport, its epoll registration, its
 * state), the held ones that only connect and wait (bench_conn.c), and the
 * active ones that carry requests (bench_request.c).  bench_loop.c owns
 * the arrays of them and dispatches epoll events here.
 *
 * Every byte of a connection goes through its ferry_transport
 * (include/ferry/transport.h); the socket underneath is touched only to
 * connect it, set its options and register it with epoll.
 */
#ifndef FERRY_BENCH_CONN_H
#define FERRY_BENCH_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "ferry/frame.h"
#include "ferry/transport.h"
#include "bench_xfer.h"
#include "bench_handshake.h"

struct worker;

enum bench_conn_kind { KIND_ACTIVE, KIND_HOLD, KIND_STOP };
enum bench_conn_state { ST_DEAD, ST_CONNECTING, ST_HANDSHAKE, ST_OPEN };

/* The common head of every epoll registration (data.ptr points at it). */
struct bench_conn {
    struct ferry_transport *t;   /* NULL while ST_DEAD */
    uint8_t kind;
    uint8_t state;
};

struct bench_hold_conn {
    struct bench_conn c;
    struct ferry_frame_parser *fp;   /* against ferryd: the handshake's, while it runs */
};

struct bench_active_conn {
    struct bench_conn c;
    uint8_t busy;         /* a request is in flight */
    uint8_t measured;     /* ... and it started after the warmup */
    uint8_t replied;      /* its whole reply has arrived */
    uint8_t last;         /* the frame being read ends the reply */
    int fail;             /* a failed command or transfer (a negative code), counted at the end */
    uint32_t gen;         /* bumped by every connect: tells a replaced connection apart */
    size_t sent;          /* request bytes sent */
    uint64_t recvd;       /* echo mode: reply bytes received */
    uint64_t t0;          /* when the request started (ns) */
    uint64_t deadline;    /* connecting or authenticating: give up at this time */
    struct ferry_frame_parser *fp;   /* framed modes: the replies, through libferry's parser */
    struct bench_handshake hs;  /* against ferryd: the handshake */
    struct bench_xfer_conn x;   /* put and get: the transfer */
};

/* Start a non-blocking connect of c to the run's address and register it
 * (edge-triggered, input and output) with the thread's epoll; the outcome
 * arrives as an event.  0 or a negative code (c stays ST_DEAD). */
int bench_conn_open(struct worker *w, struct bench_conn *c);

/* Close c (if open) and free its transport; c becomes ST_DEAD. */
void bench_conn_close(struct bench_conn *c);

/* After the connect's first event: 0 when it succeeded, else the
 * negative errno it failed with. */
int bench_conn_connect_result(const struct bench_conn *c);

/* A held connection's epoll event (now: the event's time). */
void bench_conn_hold_event(struct worker *w, struct bench_hold_conn *h, uint32_t events,
                           uint64_t now);

/* Close a held connection and free what it holds. */
void bench_conn_hold_free(struct bench_hold_conn *h);

/* Held connects (and handshakes) still pending at the burst's deadline
 * are given up as timed out. */
void bench_conn_hold_timeouts(struct worker *w);

/* ---- active connections (bench_request.c) --------------------------------- */

/* Set up a's per-connection state (its reply parser, its transfer) before
 * the run; number is its global index.  0 or a negative code;
 * bench_request_free either way. */
int bench_request_init(struct worker *w, struct bench_active_conn *a, unsigned number);
void bench_request_free(struct bench_active_conn *a);

/* The active phase begins: open a's connection (with --fresh: start its
 * first request, which opens one).  A failure is counted, not returned. */
void bench_request_begin(struct worker *w, struct bench_active_conn *a, uint64_t now);

/* An active connection's epoll event. */
void bench_request_event(struct worker *w, struct bench_active_conn *a, uint32_t events);

/* Connects and handshakes past their deadline are given up. */
void bench_request_timeouts(struct worker *w, uint64_t now);

#endif
