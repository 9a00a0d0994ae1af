/*
 * frame.h - the ferry frame codec: the cure for TCP's "sticky packets".
 *
 * On the wire a frame is
 *
 *     u32 header_len (little-endian) | header_len bytes of UTF-8 JSON object | body
 *
 * and the body is exactly `size` bytes when the header carries a "size"
 * member (an unsigned integer up to 2^63-1), empty otherwise.  The name of
 * the size member is configurable so the tutorials' own frames
 * ({"total_size": N}, {"filesize": N}) parse with the same code.
 * docs/PROTOCOL.md describes every byte.
 *
 * There are two interfaces over one implementation:
 *   - a push parser (ferry_frame_parser_*) for event loops: feed it any
 *     split of the byte stream, it hands back headers and streams body bytes
 *     as borrowed chunks, never buffering a body;
 *   - blocking helpers (ferry_frame_read/ferry_frame_write) over a
 *     transport (transport.h), for thread- and process-per-connection code.
 *
 * Headers are jansson objects (json_t).  A header handed to the caller is a
 * new reference the caller must json_decref().
 */
#ifndef FERRY_FRAME_H
#define FERRY_FRAME_H

#include "ferry/common.h"

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

FERRY_BEGIN_DECLS

struct ferry_transport;

#define FERRY_FRAME_PREFIX_LEN     4u
#define FERRY_FRAME_DEFAULT_MAX_HEADER (64u * 1024u)
#define FERRY_FRAME_MAX_SIZE       INT64_MAX   /* largest body size on the wire */

struct ferry_frame_limits {
    uint32_t max_header;   /* largest accepted header_len; 0 means the default (64 KiB) */
    uint64_t max_body;     /* largest accepted body size; 0 means FERRY_FRAME_MAX_SIZE */
    const char *size_key;  /* member naming the body size; NULL means "size" */
};

/* ---- push parser --------------------------------------------------------- */

struct ferry_frame_parser;   /* opaque */

enum ferry_frame_event_type {
    FERRY_FRAME_NEED_MORE = 0, /* all input consumed; feed more bytes */
    FERRY_FRAME_HEADER    = 1, /* a header was parsed: ev->header, ev->body_size */
    FERRY_FRAME_BODY      = 2, /* a piece of body: ev->chunk, ev->chunk_len */
    FERRY_FRAME_END       = 3, /* the frame is complete (follows HEADER at once when size is 0) */
    FERRY_FRAME_ERROR     = 4, /* server.h only: the stream broke framing (ev->error); never
                                  returned by ferry_frame_parser_feed, which returns the code */
};

struct ferry_frame_event {
    enum ferry_frame_event_type type;
    json_t *header;          /* HEADER: new reference, owned by the caller */
    uint64_t body_size;      /* HEADER: the declared body size (0 if none) */
    const uint8_t *raw_header;  /* HEADER: the header's JSON text as received and
                                   validated; borrowed, valid until the parser
                                   is fed again (a relay or echo can resend it
                                   without re-encoding) */
    size_t raw_header_len;
    const uint8_t *chunk;    /* BODY: borrowed from the fed input; valid while it is */
    size_t chunk_len;        /* BODY: bytes in chunk (> 0) */
    int error;               /* ERROR: the FERRY_E* code */
};

/* Create a parser into *out.  `limits` is copied (size_key must outlive
 * the parser); NULL means all defaults.  0, or -ENOMEM (*out NULL). */
FERRY_EXPORT FERRY_NODISCARD int ferry_frame_parser_new(const struct ferry_frame_limits *limits,
                                                        struct ferry_frame_parser **out);
FERRY_EXPORT void ferry_frame_parser_free(struct ferry_frame_parser *p);

/* Change the limits for the frames that follow (call at a frame boundary,
 * e.g. to allow larger headers once a peer has authenticated). */
FERRY_EXPORT void ferry_frame_parser_set_limits(struct ferry_frame_parser *p, const struct ferry_frame_limits *limits);

/*
 * A header the caller expects to receive again and again, byte for byte
 * (a load generator's own request echoed back): it is decoded once, here,
 * and a received header that is exactly these bytes is then handed out as
 * a new reference to that one decoded object, which the caller must not
 * modify, instead of being decoded again (for a small header, most of the
 * parser's cost).  Any other header is decoded as usual.  The bytes are
 * copied; NULL forgets the expectation.  It survives reset; new limits
 * decode it again (one they refuse is forgotten).  0, -ENOMEM, or the
 * code ferry_frame_decode_header gives for json under the parser's limits
 * (the expectation is then forgotten).
 */
FERRY_EXPORT FERRY_NODISCARD int ferry_frame_parser_expect(struct ferry_frame_parser *p,
                                                           const void *json, size_t len);

/* Forget any partial frame and any error: start again at a frame boundary. */
FERRY_EXPORT void ferry_frame_parser_reset(struct ferry_frame_parser *p);

/*
 * Feed bytes.  Consumes a prefix of data[0..len) and stores how much in
 * *consumed; returns the event that stopped it (ev is filled in) or a
 * negative FERRY_E* code.  Call again with the rest until it returns
 * FERRY_FRAME_NEED_MORE.  Only the header and the 4-byte prefix are ever
 * copied, and only after the prefix has been checked against max_header.
 * After an error the parser stays failed (returns the same code) until
 * reset: a stream that lost framing cannot be resynchronised.
 */
FERRY_EXPORT FERRY_NODISCARD int ferry_frame_parser_feed(struct ferry_frame_parser *p, const void *data, size_t len,
                            size_t *consumed, struct ferry_frame_event *ev);

/* True when the parser is between frames (nothing partial is held), so a
 * peer closing now is a clean EOF rather than a truncated frame. */
FERRY_EXPORT int ferry_frame_parser_at_boundary(const struct ferry_frame_parser *p);

/* ---- encoding ------------------------------------------------------------ */

/*
 * Encode the prefix and header of a frame into a malloc'd buffer (*out,
 * *out_len; the caller frees).  When body_size > 0 the size member is set
 * to body_size first (the header is modified); the body itself is sent by
 * the caller.  Fails with FERRY_EHDR_TOOBIG when the JSON exceeds
 * limits->max_header.
 */
FERRY_EXPORT FERRY_NODISCARD int ferry_frame_encode(json_t *header, uint64_t body_size,
                       const struct ferry_frame_limits *limits,
                       uint8_t **out, size_t *out_len);

/* Validate a complete JSON header as the parser would (UTF-8, object, no
 * duplicate keys, size rules).  On success (0) *header is a new reference
 * and *body_size the declared size; otherwise the parser's FERRY_E* code
 * (FERRY_EJSON, FERRY_EUTF8, FERRY_ENOT_OBJECT, FERRY_EDUP_KEY,
 * FERRY_ESIZE_*, FERRY_EBODY_TOOBIG, ...) or -ENOMEM. */
FERRY_EXPORT FERRY_NODISCARD int ferry_frame_decode_header(const void *json, size_t len,
                              const struct ferry_frame_limits *limits,
                              json_t **header, uint64_t *body_size);

/* ---- blocking helpers over a transport ----------------------------------- */

/*
 * Read one frame header.  On success *header is a new reference and
 * *body_size the number of body bytes the caller must now read (with
 * ferry_transport_read_full) or discard.  A peer that closes before the
 * first byte gives FERRY_EEOF; after it, FERRY_ETRUNCATED.
 */
FERRY_EXPORT FERRY_NODISCARD int ferry_frame_read(struct ferry_transport *t, const struct ferry_frame_limits *limits,
                     json_t **header, uint64_t *body_size);

/*
 * Write a whole frame: prefix, header and body in one gathered write
 * (writev), handling short writes and EINTR.  When body_len > 0 the size
 * member of `header` is set to body_len.
 */
FERRY_EXPORT FERRY_NODISCARD int ferry_frame_write(struct ferry_transport *t, json_t *header,
                      const void *body, size_t body_len,
                      const struct ferry_frame_limits *limits);

/* Write only the prefix and header of a frame whose body (body_size bytes,
 * set as the size member when > 0) the caller then streams with
 * ferry_transport_write_full(). */
FERRY_EXPORT FERRY_NODISCARD int ferry_frame_write_header(struct ferry_transport *t, json_t *header, uint64_t body_size,
                             const struct ferry_frame_limits *limits);

FERRY_END_DECLS

#endif
