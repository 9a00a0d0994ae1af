/*
 * filesvc.h - the file service on an authenticated session: stat, list,
 * mkdir, rm, put and get (docs/PROTOCOL.md 2.4).
 *
 * session.c owns the connection and the dispatch; it hands every file
 * message here.  Transfers are event-driven on the connection's loop:
 * an upload's bytes are written as they are read, a download is pumped
 * with sendfile whenever the socket takes more, and the long hashes a
 * resume needs run in slices between other connections' events, so one
 * big transfer never stalls the loop's other sessions.
 */
#ifndef FERRYD_FILESVC_H
#define FERRYD_FILESVC_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "ferry/server.h"
#include "fspath.h"

struct filesvc;   /* opaque: one session's file-service state */
struct audit_who;

/* who: the session's, for the audit lines (it outlives the service);
 * on_idle: called when a transfer ends (the session may be waiting to
 * close for a graceful stop). */
struct filesvc *filesvc_new(struct ferry_conn *c, const struct fsroot *root,
                            const struct audit_who *who, void (*on_idle)(void *arg), void *arg);

/* Free; a transfer in progress is abandoned (an upload's temporary is
 * removed, or kept when the upload asked to be resumable).  NULL allowed. */
void filesvc_free(struct filesvc *f);

/* Whether type names a file-service message. */
int filesvc_handles(const char *type);

/* A transfer (put or get) is in progress: other requests are busy. */
int filesvc_busy(const struct filesvc *f);

/* A download is streaming data frames: no other frame may be written to
 * the connection now (it would land inside a body), so the session cannot
 * answer anything until it ends. */
int filesvc_sending(const struct filesvc *f);

/*
 * A file-service message (filesvc_handles(type)); body_size is the frame's
 * body, which only "data" may have.  Returns 0, a negative code that ends
 * the session, or 1 with *complaint set for a protocol error the session
 * reports and closes on.
 */
int filesvc_on_header(struct filesvc *f, const char *type, json_t *msg, uint64_t body_size,
                    const char **complaint);

/* Body bytes of the frame filesvc_on_header accepted. */
int filesvc_on_body(struct filesvc *f, const uint8_t *chunk, size_t len);

/* The connection can take more output. */
void filesvc_on_drain(struct filesvc *f);

#endif
