/*
 * files.h - the file service (docs/PROTOCOL.md 2.4) as seen from the
 * client: request and answer frames over an authenticated session, remote
 * paths in the one spelling the server accepts, the server's errors, and
 * the small requests (stat, list, mkdir, rm).
 *
 * The session's socket is non-blocking (run.c multiplexes it); these
 * helpers wait with poll() themselves, so callers read like blocking code.
 * They read frames by hand rather than through the session's push parser:
 * a file body is read straight into the caller's large buffer (or spliced
 * into a file), never copied through a parser, and the parser is left at
 * a frame boundary for run.c.
 *
 * Every call returns 0 or a negative code and fills a struct fs_error:
 *   FERRY_EREMOTE  the server refused this request (err->code, err->errname,
 *                  err->message); the session goes on unless err->code is
 *                  "protocol" or "auth" (then s->broken is set);
 *   FERRY_ELOST    the connection is gone or out of step (s->broken is set;
 *                  err->message says why);
 *   -EINTR         files_interrupted was set by a signal while waiting.
 */
#ifndef FERRY_CLIENT_FILES_H
#define FERRY_CLIENT_FILES_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "connect.h"
#include "errcode.h"


/* Set (to the signal's number) by the handlers files_signals_install puts
 * in place; waits give up with -EINTR once it is. */
extern volatile sig_atomic_t files_interrupted;

struct fs_error {
    char code[16];        /* the server's "code" ("fs", "path", ...), or "" */
    char errname[32];     /* for "fs": the errno name ("ENOSPC"), or "" */
    char message[512];    /* for people: see files_error_text */
};

/* File metadata as PROTOCOL.md 2.4 sends it. */
struct fs_meta {
    char kind[8];         /* "file", "dir", "link", "fifo", "socket", "char", "block" */
    unsigned mode;        /* permission bits, & 07777 */
    uint64_t size;
    int64_t mtime;
    long mtime_nsec;
};

/* What to print after "ferry: put NAME: " for an error: for an fs error the
 * system's text for its errno name ("No space left on device"), so the
 * server's own spelling of the path does not repeat ours; otherwise the
 * server's or our message. */
const char *files_error_text(const struct fs_error *err);

/* The local errno value for err->errname, or 0 when unknown. */
int files_error_errno(const struct fs_error *err);

/* SIGINT, SIGTERM and SIGHUP set files_interrupted instead of killing us,
 * so a transfer can remove its temporary first.  0 or -errno; restore
 * with files_signals_restore. */
int files_signals_install(struct sigaction old[3]);
void files_signals_restore(const struct sigaction old[3]);

/*
 * Canonical remote path (PROTOCOL.md 2.4): empty and "." components and
 * trailing slashes dropped ("./a//b/" -> "a/b"), nothing left -> ".".  A
 * leading "/" is kept so the server refuses it with its own message rather
 * than our guessing what was meant; ".." is kept for the same reason.
 * Returns a malloc'd string or NULL (out of memory).
 */
char *files_canon(const char *path);

/* a + "/" + b canonically ("." + "b" -> "b").  malloc'd or NULL. */
char *files_join(const char *a, const char *b);

/* The last component of a path, ignoring trailing slashes, as a new
 * string ("a/b/" -> "b", "." -> ".", "/" -> "/").  NULL: out of memory. */
char *files_basename(const char *path);

/* ---- frames ------------------------------------------------------------- */

/* Send one header-only frame (the reference to hdr is taken, NULL meaning
 * out of memory).  Whatever run.c left queued goes first. */
int files_send(struct session *s, json_t *hdr, struct fs_error *err);

/* Send a data frame's header for n body bytes starting at offset. */
int files_send_data_header(struct session *s, uint64_t offset, uint64_t n,
                           struct fs_error *err);

/*
 * Send n raw bytes (a data frame's body), waiting for the socket as
 * needed.  While waiting, bytes the server sends are buffered, and
 * *incoming is set once any arrived: during an upload that can only be an
 * error, which the caller picks up with files_poll_header after the frame.
 */
int files_send_body(struct session *s, const void *p, size_t n, int *incoming,
                    struct fs_error *err);

/*
 * Wait for the next frame and return its header (*hdr, a new reference),
 * its type (borrowed from *hdr) and its body size, which the caller must
 * read with files_read_body (or drop with files_skip_body).  Bodies over
 * PROTO_DATA_SEGMENT are refused.  An "error" message is returned as
 * FERRY_EREMOTE with err filled (and its body skipped), not as a header.
 */
int files_recv(struct session *s, json_t **hdr, const char **type, uint64_t *body,
               struct fs_error *err);

/* The same without waiting: 1 and a header when a whole one is buffered
 * already, 0 when not (yet). */
int files_poll_header(struct session *s, json_t **hdr, const char **type, uint64_t *body,
                      struct fs_error *err);

/* Read at most n (> 0) body bytes: buffered ones first, then straight
 * from the socket into buf.  Returns the count (> 0) or a negative code. */
ssize_t files_read_body(struct session *s, void *buf, size_t n, struct fs_error *err);
int files_skip_body(struct session *s, uint64_t n, struct fs_error *err);

/* Write all of n bytes to fd at offset off (its position is not used).
 * 0 or -errno (-EINTR once files_interrupted is set). */
int files_pwrite_all(int fd, const void *p, size_t n, uint64_t off);

/*
 * Bodies straight into a file, not through user space (get's data path):
 * socket -> pipe -> file with splice(2), on a plain transport only (TLS
 * decrypts every byte in user space).  The bytes are never seen here, so
 * the caller hashes them back from the file (xfer.c).
 */
struct files_splice {
    int pipe[2];       /* -1, -1 until first used */
    size_t cap;        /* the pipe's size */
    int off;           /* this socket or file cannot be spliced: read instead */
};

void files_splice_init(struct files_splice *sp);
/* Close the pipe (after a failure it may still hold bytes); the next
 * files_splice_body makes a new one. */
void files_splice_reset(struct files_splice *sp);

/*
 * Move up to n (> 0) body bytes into fd at offset off (pwrite semantics:
 * fd's own position is not used): bytes already buffered first, then by
 * splice.  Returns the count moved (> 0); 0 when splicing is not possible
 * here (TLS, no pipe, a socket or file system without splice; sp->off is
 * then set and nothing was consumed: read the body with files_read_body);
 * -EINTR; or FERRY_ELOST, with *local_err = -errno when writing the file
 * failed.  After a negative return call files_splice_reset.
 */
ssize_t files_splice_body(struct session *s, struct files_splice *sp, int fd, uint64_t off,
                          size_t n, int *local_err, struct fs_error *err);

/* Mark the session unusable and say why (for FERRY_ELOST).  Returns
 * FERRY_ELOST. */
int files_lost(struct session *s, struct fs_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A metadata object (stat answer, list entry, get-ready) into *m.
 * 0, or FERRY_ELOST when a member is missing or out of range. */
int files_parse_meta(struct session *s, const json_t *obj, struct fs_meta *m,
                     struct fs_error *err);

/* ---- small requests ------------------------------------------------------ */

/* stat: *m filled; *answer (may be NULL) gets the whole message. */
int files_stat(struct session *s, const char *path, struct fs_meta *m, json_t **answer,
               struct fs_error *err);

/* Most entries one listing may have, and most levels get -r descends:
 * what a server sends is bounded before it is held. */
#define FILES_LIST_MAX  (1 << 20)
#define FILES_TREE_DEPTH 64

/* list: every entry, in one new JSON array (*entries), validated (each has
 * a string "name" without '/', and valid metadata). */
int files_list(struct session *s, const char *path, json_t **entries, struct fs_error *err);

int files_mkdir(struct session *s, const char *path, int parents, struct fs_error *err);
int files_rm(struct session *s, const char *path, int recursive, struct fs_error *err);

#endif
