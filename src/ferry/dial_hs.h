/*
 * dial_hs.h - the session handshake (docs/PROTOCOL.md 2.1) driven by the
 * connection's events, and its failures in words, for `ferry HOST` (one
 * session, dial.c waits for it) and `ferry exec -w` (hundreds at once on
 * one loop, fleet.c).
 *
 * The protocol is the shared state machine's (src/shared/handshake.c);
 * this file only moves its messages over a client_session and words its
 * verdicts.  Nothing here prints: every failure is one line of text in
 * d->err, which the caller prints (dial.c as it is, fleet.c prefixed with
 * the host).
 */
#ifndef FERRY_CLIENT_DIAL_HS_H
#define FERRY_CLIENT_DIAL_HS_H

#include <stdint.h>

#include <jansson.h>

#include "client_session.h"
#include "dial.h"
#include "handshake.h"
#include "keyfile.h"

#define DIAL_HS_ERR_MAX 512

struct dial_hs {
    struct handshake hs;
    const struct dial_opts *o;       /* the effective options (the host's) */
    const struct ferry_key *key;     /* NULL: none loaded (--ca), loaded on demand */
    struct ferry_key own_key;        /* ... into here */
    int done;                        /* 1 authenticated, -1 failed (err says why) */
    char err[DIAL_HS_ERR_MAX];
};

/*
 * Load the key: -k (o->key_file), else $FERRY_KEY_FILE, else the
 * per-user default.  0 and, unless used is NULL, the path it came from
 * in *used (to free); or -1 with the reason in err.
 */
int dial_load_key(const struct dial_opts *o, struct ferry_key *key, char **used, char *err,
                  size_t errlen);

/*
 * Check the options for contradictions (--cert without --ca, ...).  0, or
 * -1 with the reason in err.
 */
int dial_check_opts(const struct dial_opts *o, char *err, size_t errlen);

/*
 * Start the handshake on a session just handed to libferry (session_start):
 * our hello (and over TLS keyed by the PSK, our auth with it) is queued
 * and goes once TLS is up.  key may be NULL (loaded on demand when the
 * server asks for one).  0, or -1 with d->done = -1 and d->err.
 */
int dial_hs_begin(struct dial_hs *d, struct client_session *s, const struct dial_opts *o,
                  const struct ferry_key *key);

/*
 * A frame event of the session while d->done == 0 (the caller's receiver
 * passes them on; HEADER's header is taken).  On the welcome d->done
 * becomes 1, the session is marked authenticated (its frame limits, the
 * keepalive) and s->pipeline, put_stream and glob are set from the
 * server's hello; on a failure d->done becomes -1 (the caller closes).
 */
void dial_hs_on_frame(struct dial_hs *d, struct client_session *s, struct ferry_frame_event *ev);

/* The connection ended (s->gone) before d->done: why, in d->err
 * (d->done = -1). */
void dial_hs_gone(struct dial_hs *d, struct client_session *s);

/* Forget the nonces, the binding and any key loaded here. */
void dial_hs_end(struct dial_hs *d);

#endif
