/*
 * frame.c - the frame codec: push parser, encoder and blocking helpers.
 *
 * All validation of a received header lives in ferry_frame_decode_header()
 * and check_header_len(); the push parser and the blocking reader both go
 * through them, so the two interfaces cannot disagree about what a valid
 * frame is.  Input is walked with ferry_slice (buf.h): no pointer
 * arithmetic here.
 */
#include "ferry/frame.h"
#include "ferry/error.h"
#include "ferry/transport.h"
#include "buf.h"
#include "frame_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum parse_state {
    ST_PREFIX,   /* collecting the 4-byte length */
    ST_HEADER,   /* collecting header_len bytes of JSON */
    ST_BODY,     /* passing body_left bytes through */
    ST_END,      /* all of the frame consumed; END not yet reported */
    ST_FAILED,   /* sticky until reset */
};

struct ferry_frame_parser {
    struct ferry_frame_limits limits;   /* with defaults filled in */
    enum parse_state state;
    uint8_t prefix[FERRY_FRAME_PREFIX_LEN];
    size_t prefix_got;
    uint32_t header_len;
    struct ferry_buf header;            /* a header split across feeds; kept for reuse, <= max_header */
    uint64_t body_left;
    int err;                            /* ST_FAILED: the code to repeat */
    /* ferry_frame_parser_expect: a header known byte for byte, decoded once */
    uint8_t *expect;
    size_t expect_len;
    json_t *expect_header;
    uint64_t expect_size;
};

static struct ferry_frame_limits effective_limits(const struct ferry_frame_limits *in)
{
    struct ferry_frame_limits l = { 0 };

    if (in)
        l = *in;
    if (l.max_header == 0)
        l.max_header = FERRY_FRAME_DEFAULT_MAX_HEADER;
    if (l.max_body == 0 || l.max_body > FERRY_FRAME_MAX_SIZE)
        l.max_body = FERRY_FRAME_MAX_SIZE;
    if (!l.size_key)
        l.size_key = "size";
    return l;
}

/* The prefix is judged before a single header byte is stored. */
static int check_header_len(uint64_t len, const struct ferry_frame_limits *l)
{
    if (len == 0)
        return FERRY_EHDR_EMPTY;
    if (len > l->max_header)
        return FERRY_EHDR_TOOBIG;
    return 0;
}

static int map_json_error(const json_error_t *jerr)
{
    switch (json_error_code(jerr)) {
    case json_error_invalid_utf8:      return FERRY_EUTF8;
    case json_error_duplicate_key:     return FERRY_EDUP_KEY;
    case json_error_numeric_overflow:  return FERRY_ENUM_RANGE;
    case json_error_out_of_memory:     return -ENOMEM;
    default:                           return FERRY_EJSON;
    }
}

/* jansson keeps every integer it accepts in a json_int_t (64-bit), so the
 * wire's 0..2^63-1 range is enforced by the parser itself: anything larger
 * already failed as FERRY_ENUM_RANGE. */
static int read_size(const json_t *root, const struct ferry_frame_limits *l, uint64_t *size)
{
    const json_t *v = json_object_get(root, l->size_key);
    json_int_t n;

    *size = 0;
    if (!v)
        return 0;
    if (json_is_real(v))
        return FERRY_ESIZE_FRAC;   /* 1.0 too: a size is written as an integer */
    if (!json_is_integer(v))
        return FERRY_ESIZE_TYPE;
    n = json_integer_value(v);
    if (n < 0)
        return FERRY_ESIZE_NEG;
    if ((uint64_t)n > l->max_body)
        return FERRY_EBODY_TOOBIG;
    *size = (uint64_t)n;
    return 0;
}

int ferry_frame_decode_header(const void *json, size_t len,
                              const struct ferry_frame_limits *limits,
                              json_t **header, uint64_t *body_size)
{
    struct ferry_frame_limits l = effective_limits(limits);
    json_error_t jerr;
    json_t *root = NULL;
    int rc;

    *header = NULL;
    *body_size = 0;
    rc = check_header_len(len, &l);
    if (rc < 0)
        return rc;

    /* JSON_DECODE_ANY so that a well-formed scalar is reported as "not an
     * object" rather than as bad JSON.  No JSON_ALLOW_NUL: a NUL inside a
     * string would make keys and values ambiguous for C callers.  jansson
     * checks UTF-8 itself (overlong forms and surrogates included). */
    root = json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!root)
        return map_json_error(&jerr);
    if (!json_is_object(root)) {
        rc = FERRY_ENOT_OBJECT;
        goto out;
    }
    rc = read_size(root, &l, body_size);
    if (rc < 0)
        goto out;
    *header = root;
    root = NULL;   /* ownership passes to the caller */
out:
    json_decref(root);
    return rc;
}

/* ---- push parser --------------------------------------------------------- */

int ferry_frame_parser_new(const struct ferry_frame_limits *limits, struct ferry_frame_parser **out)
{
    struct ferry_frame_parser *p = calloc(1, sizeof *p);

    *out = p;
    if (!p)
        return -ENOMEM;
    p->limits = effective_limits(limits);
    ferry_buf_init(&p->header, p->limits.max_header);
    p->state = ST_PREFIX;
    return 0;
}

static void forget_expected(struct ferry_frame_parser *p)
{
    free(p->expect);
    json_decref(p->expect_header);
    p->expect = NULL;
    p->expect_len = 0;
    p->expect_header = NULL;
    p->expect_size = 0;
}

/* Decode the expected header under the current limits; one they refuse
 * is forgotten, and such headers are then decoded, and refused, as any. */
static int decode_expected(struct ferry_frame_parser *p)
{
    json_t *h = NULL;
    uint64_t size = 0;
    int rc = ferry_frame_decode_header(p->expect, p->expect_len, &p->limits, &h, &size);

    if (rc < 0) {
        forget_expected(p);
        return rc;
    }
    json_decref(p->expect_header);
    p->expect_header = h;
    p->expect_size = size;
    return 0;
}

void ferry_frame_parser_free(struct ferry_frame_parser *p)
{
    if (!p)
        return;
    forget_expected(p);
    ferry_buf_free(&p->header);
    free(p);
}

void ferry_frame_parser_set_limits(struct ferry_frame_parser *p, const struct ferry_frame_limits *limits)
{
    const char *old_key = p->limits.size_key;

    p->limits = effective_limits(limits);
    p->header.max = p->limits.max_header;
    if (!p->expect)
        return;
    /* Another size member may give another size: decode it again.  With
     * the same one the header decodes the same, and only the bounds it
     * was checked against can have moved. */
    if (strcmp(old_key, p->limits.size_key) != 0)
        (void)decode_expected(p);
    else if (p->expect_len > p->limits.max_header || p->expect_size > p->limits.max_body)
        forget_expected(p);
}

int ferry_frame_parser_expect(struct ferry_frame_parser *p, const void *json, size_t len)
{
    forget_expected(p);
    if (!json || len == 0)
        return 0;
    p->expect = malloc(len);
    if (!p->expect)
        return -ENOMEM;
    memcpy(p->expect, json, len);
    p->expect_len = len;
    return decode_expected(p);
}

void ferry_frame_parser_reset(struct ferry_frame_parser *p)
{
    p->state = ST_PREFIX;
    p->prefix_got = 0;
    p->header_len = 0;
    ferry_buf_clear(&p->header);
    p->body_left = 0;
    p->err = 0;
}

int ferry_frame_parser_at_boundary(const struct ferry_frame_parser *p)
{
    return (p->state == ST_PREFIX && p->prefix_got == 0) || p->state == ST_END;
}

/* Collect prefix bytes; true once all four are in and decoded. */
static int take_prefix(struct ferry_frame_parser *p, struct ferry_slice *in)
{
    while (p->prefix_got < FERRY_FRAME_PREFIX_LEN && in->len > 0) {
        p->prefix[p->prefix_got++] = in->p[0];
        ferry_slice_advance(in, 1);
    }
    if (p->prefix_got < FERRY_FRAME_PREFIX_LEN)
        return 0;
    p->prefix_got = 0;
    p->header_len = ferry_le32_read(p->prefix);
    return 1;
}

static int take_header(struct ferry_frame_parser *p, struct ferry_slice *in,
                       struct ferry_frame_event *ev)
{
    size_t have = ferry_buf_len(&p->header);
    struct ferry_slice whole;
    int rc;

    if (have == 0 && in->len >= p->header_len) {
        /* The common case: the whole header is in this feed, parse in place. */
        whole = ferry_slice_head(*in, p->header_len);
        ferry_slice_advance(in, p->header_len);
    } else {
        /* header_len <= max_header was checked, and at most the missing
         * part of it is copied. */
        size_t take = p->header_len - have;

        if (take > in->len)
            take = in->len;
        rc = ferry_buf_append(&p->header, in->p, take);
        if (rc < 0)
            return rc;
        ferry_slice_advance(in, take);
        if (ferry_buf_len(&p->header) < p->header_len)
            return FERRY_FRAME_NEED_MORE;
        whole = ferry_slice_make(ferry_buf_head(&p->header), p->header_len);
    }

    if (p->expect && whole.len == p->expect_len && memcmp(whole.p, p->expect, whole.len) == 0) {
        /* The same bytes decode to the same header: share the one. */
        ev->header = json_incref(p->expect_header);
        ev->body_size = p->expect_size;
        rc = 0;
    } else {
        rc = ferry_frame_decode_header(whole.p, whole.len, &p->limits, &ev->header, &ev->body_size);
    }
    /* Cleared, not freed: the bytes stay put for raw_header until the next
     * header is appended, which only a later feed does. */
    ferry_buf_clear(&p->header);
    if (rc < 0)
        return rc;
    ev->raw_header = whole.p;
    ev->raw_header_len = whole.len;
    p->body_left = ev->body_size;
    p->state = p->body_left > 0 ? ST_BODY : ST_END;
    ev->type = FERRY_FRAME_HEADER;
    return FERRY_FRAME_HEADER;
}

static int step(struct ferry_frame_parser *p, struct ferry_slice *in, struct ferry_frame_event *ev)
{
    int rc;

    for (;;) {
        switch (p->state) {
        case ST_PREFIX:
            if (!take_prefix(p, in))
                return FERRY_FRAME_NEED_MORE;
            rc = check_header_len(p->header_len, &p->limits);
            if (rc < 0)
                return rc;
            p->state = ST_HEADER;
            break;
        case ST_HEADER:
            return take_header(p, in, ev);
        case ST_BODY: {
            size_t n = in->len;

            if (n == 0)
                return FERRY_FRAME_NEED_MORE;
            if (n > p->body_left)
                n = (size_t)p->body_left;
            ev->type = FERRY_FRAME_BODY;
            ev->chunk = in->p;
            ev->chunk_len = n;
            ferry_slice_advance(in, n);
            p->body_left -= n;
            if (p->body_left == 0)
                p->state = ST_END;
            return FERRY_FRAME_BODY;
        }
        case ST_END:
            p->state = ST_PREFIX;
            ev->type = FERRY_FRAME_END;
            return FERRY_FRAME_END;
        case ST_FAILED:
            return p->err;
        }
    }
}

int ferry_frame_parser_feed(struct ferry_frame_parser *p, const void *data, size_t len,
                            size_t *consumed, struct ferry_frame_event *ev)
{
    struct ferry_slice in = ferry_slice_make(data, len);
    int rc;

    memset(ev, 0, sizeof *ev);
    rc = step(p, &in, ev);
    *consumed = len - in.len;
    if (rc < 0 && p->state != ST_FAILED) {
        ferry_buf_free(&p->header);   /* a failed stream keeps nothing */
        p->state = ST_FAILED;
        p->err = rc;
    }
    return rc;
}

uint64_t ferry__frame_parser_body_left(const struct ferry_frame_parser *p)
{
    return p->state == ST_BODY ? p->body_left : 0;
}

int ferry__frame_parser_owes_end(const struct ferry_frame_parser *p)
{
    return p->state == ST_END;
}

void ferry__frame_parser_body_taken(struct ferry_frame_parser *p, uint64_t n)
{
    if (p->state != ST_BODY)
        return;
    if (n > p->body_left)
        n = p->body_left;
    p->body_left -= n;
    if (p->body_left == 0)
        p->state = ST_END;
}

/* ---- encoding ------------------------------------------------------------ */

int ferry_frame_encode(json_t *header, uint64_t body_size,
                       const struct ferry_frame_limits *limits,
                       uint8_t **out, size_t *out_len)
{
    struct ferry_frame_limits l = effective_limits(limits);
    struct ferry_buf b;
    size_t json_len;
    int rc;

    *out = NULL;
    *out_len = 0;
    ferry_buf_init(&b, 0);
    if (!json_is_object(header))
        return FERRY_ENOT_OBJECT;
    if (body_size > FERRY_FRAME_MAX_SIZE)
        return FERRY_ESIZE_RANGE;
    if (body_size > l.max_body)
        return FERRY_EBODY_TOOBIG;

    if (body_size > 0) {
        if (json_object_set_new(header, l.size_key, json_integer((json_int_t)body_size)) < 0)
            return -ENOMEM;
    } else if (json_object_get(header, l.size_key)) {
        /* A stale size member would make the peer wait for a body that
         * never comes; refuse rather than silently drop it. */
        uint64_t declared;

        rc = read_size(header, &l, &declared);
        if (rc < 0)
            return rc;
        if (declared != 0)
            return -EINVAL;
    }

    json_len = json_dumpb(header, NULL, 0, JSON_COMPACT);
    if (json_len == 0)
        return -ENOMEM;   /* jansson's only failure for a valid object */
    rc = check_header_len(json_len, &l);
    if (rc < 0)
        return rc;

    /* json_len <= max_header (a u32), so the sum cannot overflow. */
    rc = ferry_buf_reserve(&b, FERRY_FRAME_PREFIX_LEN + json_len);
    if (rc < 0)
        return rc;
    ferry_le32_write(ferry_buf_tail(&b), (uint32_t)json_len);
    ferry_buf_commit(&b, FERRY_FRAME_PREFIX_LEN);
    if (json_dumpb(header, (char *)ferry_buf_tail(&b), json_len, JSON_COMPACT) != json_len) {
        ferry_buf_free(&b);
        return -ENOMEM;
    }
    ferry_buf_commit(&b, json_len);

    /* Nothing was consumed, so the allocation starts at the first byte:
     * hand it to the caller instead of freeing it. */
    *out = b.data;
    *out_len = ferry_buf_len(&b);
    return 0;
}

/* ---- blocking helpers ---------------------------------------------------- */

int ferry_frame_read(struct ferry_transport *t, const struct ferry_frame_limits *limits,
                     json_t **header, uint64_t *body_size)
{
    struct ferry_frame_limits l = effective_limits(limits);
    uint8_t prefix[FERRY_FRAME_PREFIX_LEN];
    struct ferry_buf b;
    uint32_t len;
    int rc;

    *header = NULL;
    *body_size = 0;
    ferry_buf_init(&b, l.max_header);

    rc = ferry_transport_read_full(t, prefix, sizeof prefix);
    if (rc < 0)
        goto out;
    len = ferry_le32_read(prefix);
    rc = check_header_len(len, &l);
    if (rc < 0)
        goto out;

    rc = ferry_buf_reserve(&b, len);
    if (rc < 0)
        goto out;
    rc = ferry_transport_read_full(t, ferry_buf_tail(&b), len);
    if (rc == FERRY_EEOF)
        rc = FERRY_ETRUNCATED;   /* the prefix already started this frame */
    if (rc < 0)
        goto out;
    ferry_buf_commit(&b, len);
    rc = ferry_frame_decode_header(ferry_buf_head(&b), len, &l, header, body_size);
out:
    ferry_buf_free(&b);
    return rc;
}

int ferry_frame_write(struct ferry_transport *t, json_t *header,
                      const void *body, size_t body_len,
                      const struct ferry_frame_limits *limits)
{
    uint8_t *head = NULL;
    size_t head_len;
    struct iovec iov[2];
    int rc;

    rc = ferry_frame_encode(header, body_len, limits, &head, &head_len);
    if (rc < 0)
        return rc;
    iov[0] = (struct iovec){ .iov_base = head, .iov_len = head_len };
    iov[1] = (struct iovec){ .iov_base = (void *)body, .iov_len = body_len };
    rc = ferry_transport_writev_full(t, iov, body_len > 0 ? 2 : 1);
    free(head);
    return rc;
}

int ferry_frame_write_header(struct ferry_transport *t, json_t *header, uint64_t body_size,
                             const struct ferry_frame_limits *limits)
{
    uint8_t *head = NULL;
    size_t head_len;
    int rc;

    rc = ferry_frame_encode(header, body_size, limits, &head, &head_len);
    if (rc < 0)
        return rc;
    rc = ferry_transport_write_full(t, head, head_len);
    free(head);
    return rc;
}
