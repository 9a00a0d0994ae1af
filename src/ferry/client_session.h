/*
 * client_session.h - a connected, authenticated session to ferryd, and
 * the file service's frames over it (docs/PROTOCOL.md 2.4): requests and
 * answers, data frames' bodies, the server's errors.
 *
 * The session's transport is non-blocking (exec_stream.c multiplexes it);
 * these helpers wait with poll() themselves, so callers read like
 * blocking code.  Frames go through the session's frame parser: headers
 * are taken out of the session's buffer, and a body is read straight into
 * the caller's large buffer (the parser counts it there, without a copy)
 * or moved into a file by the transport, and the parser is left at a frame boundary for
 * exec_stream.c.
 *
 * Every call returns 0 or a negative code and fills a struct fs_error:
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
#include "ferry/frame.h"
#include "outq.h"

/* Room for the largest header (64 KiB) and its prefix with some to spare:
 * whole headers are parsed out of this buffer. */
#define SESSION_RBUF_SIZE (128 * 1024)

/* A connected, authenticated session (dial.h makes one). */
struct client_session {
    struct ferry_transport *t;
    struct ferry_tls *tls;           /* t's configuration, freed after t */
    struct ferry_frame_parser *parser;
    char peer[128];                  /* "127.0.0.1:7171", for messages */
    uint8_t rbuf[SESSION_RBUF_SIZE]; /* received bytes not yet parsed are */
    size_t rpos, rlen;               /* rbuf[rpos..rlen) */
    struct outq out;
    int broken;                      /* the connection can carry nothing more */
    uint64_t body_left;              /* of the body of the frame session_recv took */
    int body_in_parser;              /* the parser counts that body too (no recvfile) */
    int no_recvfile;                 /* the transport or file cannot take a body directly */
};

/* Close the connection and free.  NULL is allowed. */
void client_session_close(struct client_session *s);

struct fs_error {
    char code[16];        /* the server's "code" ("fs", "path", ...), or "" */
    char errname[32];     /* for "fs": the errno name ("ENOSPC"), or "" */
    char message[512];    /* for people: see remotefs_error_text */
};

/* Mark the session unusable and say why (for FERRY_ELOST).  Returns
 * FERRY_ELOST. */
int session_lost(struct client_session *s, struct fs_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Send one header-only frame (the reference to hdr is taken, NULL meaning
 * out of memory).  Whatever exec_stream.c left queued goes first. */
int session_send(struct client_session *s, json_t *hdr, struct fs_error *err);

/* Send a data frame's header for n body bytes starting at offset. */
int session_send_data_header(struct client_session *s, uint64_t offset, uint64_t n,
                           struct fs_error *err);

/*
 * Send n raw bytes (a data frame's body), waiting for the socket as
 * needed.  While waiting, bytes the server sends are buffered, and
 * *incoming is set once any arrived: during an upload that can only be an
 * error, which the caller picks up with session_poll_header after the frame.
 */
int session_send_body(struct client_session *s, const void *p, size_t n, int *incoming,
                    struct fs_error *err);

/*
 * Wait for the next frame and return its header (*hdr, a new reference),
 * its type (borrowed from *hdr) and its body size, which the caller must
 * read with session_read_body (or drop with session_skip_body).  Bodies over
 * PROTO_DATA_SEGMENT are refused.  An "error" message is returned as
 * FERRY_EREMOTE with err filled (and its body skipped), not as a header.
 */
int session_recv(struct client_session *s, json_t **hdr, const char **type, uint64_t *body,
               struct fs_error *err);

/* The same without waiting: 1 and a header when a whole one is buffered
 * already, 0 when not (yet). */
int session_poll_header(struct client_session *s, json_t **hdr, const char **type, uint64_t *body,
                      struct fs_error *err);

/* Read at most n (> 0) body bytes: buffered ones first, then straight
 * from the socket into buf.  Returns the count (> 0) or a negative code. */
ssize_t session_read_body(struct client_session *s, void *buf, size_t n, struct fs_error *err);
int session_skip_body(struct client_session *s, uint64_t n, struct fs_error *err);

/*
 * A body straight into a file, not through user space (get's data path):
 * socket -> pipe -> file (ferry_transport_recvfile), on a plain transport
 * only (TLS decrypts every byte in user space).  Moves up to n (> 0) body
 * bytes into fd at offset off (pwrite semantics): bytes already buffered
 * first, then from the transport.  The bytes are never seen here, so the
 * caller hashes them back from the file (transfer_get.c).  Returns the
 * count moved (> 0); 0 when that is not possible here (TLS, a file system
 * without splice: nothing was consumed, and the session reads bodies from
 * now on: use session_read_body); -EINTR; or FERRY_ELOST, with *local_err
 * = -errno when writing the file failed.
 */
ssize_t session_recvfile_body(struct client_session *s, int fd, uint64_t off, size_t n,
                              int *local_err, struct fs_error *err);

#endif
