/*
 * bench_xfer.c - ferry-bench's put and get modes (see bench_xfer.h).
 *
 * The upload's content is made and hashed once; every connection sends it
 * from that one buffer, a data frame at a time, the frame's header and
 * body (and, after the last frame, put-end) gathered into one write, so
 * a byte of the file is copied only by the kernel.  A download's bytes are
 * read by bench_request.c in BENCH_XFER_READ_LEN pieces into the thread's
 * buffer, lent by libferry's frame parser and hashed where they lie
 * (bench_xfer_body), never copied.  Every header, data headers (one per
 * 16 MiB) included, is encoded and decoded by libferry's frame codec, as
 * exact as ferry's own client.
 */
#include "bench_xfer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "ferry/frame.h"
#include "ferry/transport.h"
#include "proto.h"
#include "bench_tally.h"

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* ---- what every connection shares ---------------------------------------- */

void bench_xfer_fill(uint8_t *buf, uint64_t len, uint64_t seed)
{
    uint64_t s = seed, i;

    for (i = 0; i < len; i += 8) {
        uint64_t z = (s += 0x9e3779b97f4a7c15ull);
        uint8_t w[8];

        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        put_le32(w, (uint32_t)z);
        put_le32(w + 4, (uint32_t)(z >> 32));
        memcpy(buf + i, w, (size_t)min_u64(8, len - i));
    }
}

/* Encode the prefix and header of a frame (h is consumed); its body of
 * body_size bytes, if any, is the caller's to send. */
static int encode(json_t *h, uint64_t body_size, uint8_t **out, size_t *out_len)
{
    int r;

    if (!h)
        return -ENOMEM;
    r = ferry_frame_encode(h, body_size, NULL, out, out_len);
    json_decref(h);
    return r;
}

int bench_xfer_shared_init(struct bench_xfer_shared *xs, int put, uint64_t size, const struct bench_xfer_opts *o)
{
    struct digest *d = NULL;
    int r = 0;

    memset(xs, 0, sizeof *xs);
    xs->put = put;
    xs->alg = o->alg;
    if (!put)
        return encode(json_pack("{s:s, s:s, s:s}", "type", MSG_GET, "path", o->path,
                                "checksum", digest_name(o->alg)), 0, &xs->req, &xs->req_len);

    if (o->remote_dir) {
        size_t n = strlen(o->remote_dir);

        /* "dir/" is "dir"; "." and "" are the root, which needs no prefix. */
        while (n > 1 && o->remote_dir[n - 1] == '/')
            n--;
        if (n > 0 && !(n == 1 && o->remote_dir[0] == '.')) {
            xs->dir = strndup(o->remote_dir, n);
            if (!xs->dir)
                return -ENOMEM;
        }
    }
    xs->size = size;
    /* +1: malloc(0) may return NULL, and a 0-byte file is a valid test. */
    xs->data = malloc((size_t)size + 1);
    d = digest_new(o->alg);
    if (!xs->data || !d) {
        r = -ENOMEM;
        goto out;
    }
    bench_xfer_fill(xs->data, size, o->seed);
    digest_update(d, xs->data, (size_t)size);
    digest_hex(d, xs->sum);
    r = encode(json_pack("{s:s, s:s}", "type", MSG_PUT_END, "checksum", xs->sum), 0, &xs->end,
               &xs->end_len);
out:
    digest_free(d);
    if (r < 0)
        bench_xfer_shared_free(xs);
    return r;
}

void bench_xfer_shared_free(struct bench_xfer_shared *xs)
{
    free(xs->data);
    free(xs->end);
    free(xs->req);
    free(xs->dir);
    memset(xs, 0, sizeof *xs);
}

int bench_xfer_put_path(const struct bench_xfer_shared *xs, unsigned index, char *out, size_t cap)
{
    if (xs->dir)
        return snprintf(out, cap, "%s/bench-put-%u.bin", xs->dir, index);
    return snprintf(out, cap, "bench-put-%u.bin", index);
}

/* ---- one connection ------------------------------------------------------ */

int bench_xfer_conn_init(struct bench_xfer_conn *x, const struct bench_xfer_shared *xs, unsigned index)
{
    char path[4096 + 64];   /* main.c keeps --remote-dir far below */
    int n;

    memset(x, 0, sizeof *x);
    if (!xs->put) {
        x->d = digest_new(xs->alg);
        return x->d ? 0 : -ENOMEM;
    }
    n = bench_xfer_put_path(xs, index, path, sizeof path);
    if (n < 0 || (size_t)n >= sizeof path)
        return -ENAMETOOLONG;
    /* resume false: every put starts at offset 0 and a dropped one leaves
     * nothing behind; fsync false: the disk is not what is measured. */
    return encode(json_pack("{s:s, s:s, s:I, s:i, s:s, s:b, s:b}", "type", MSG_PUT, "path", path,
                            "filesize", (json_int_t)xs->size, "mode", 0644,
                            "checksum", digest_name(xs->alg), "resume", 0, "fsync", 0),
                  0, &x->req, &x->req_len);
}

void bench_xfer_conn_free(struct bench_xfer_conn *x)
{
    digest_free(x->d);
    free(x->req);
    x->d = NULL;
    x->req = NULL;
}

void bench_xfer_start(const struct bench_xfer_shared *xs, struct bench_xfer_conn *x)
{
    x->phase = XP_REQUEST;
    x->hp = xs->put ? x->req : xs->req;
    x->hlen = (uint32_t)(xs->put ? x->req_len : xs->req_len);
    x->hsent = 0;
    x->pos = 0;
    x->frame_end = 0;
    x->end_sent = 0;
    x->size = xs->put ? xs->size : 0;
    if (x->d)
        digest_reset(x->d);
}

/* ---- sending ------------------------------------------------------------- */

/* The next data frame's header, for the bytes from x->pos on, encoded by
 * libferry into the connection's own head[]: one per 16 MiB, so the
 * encoder's allocation is nothing next to the bytes it announces.
 * 0 or a negative code. */
static int next_frame(struct bench_xfer_conn *x)
{
    uint64_t len = min_u64(x->size - x->pos, PROTO_DATA_SEGMENT);
    uint8_t *buf = NULL;
    size_t n = 0;
    int r;

    r = encode(json_pack("{s:s, s:I}", "type", MSG_DATA, "offset", (json_int_t)x->pos), len,
               &buf, &n);
    if (r < 0)
        return r;
    /* Two numbers of at most 19 digits: always fits, but say so if not. */
    if (n > sizeof x->head) {
        free(buf);
        return -EOVERFLOW;
    }
    memcpy(x->head, buf, n);
    free(buf);
    x->hp = x->head;
    x->hlen = (uint32_t)n;
    x->hsent = 0;
    x->frame_end = x->pos + len;
    return 0;
}

/* put-ready is in: the data goes out next (none for an empty file, whose
 * put-end follows the ready at once). */
static int begin_data(struct bench_xfer_conn *x)
{
    x->phase = XP_DATA;
    x->pos = 0;
    x->end_sent = 0;
    if (x->size > 0)
        return next_frame(x);
    x->hlen = x->hsent = 0;
    x->frame_end = 0;
    return 0;
}

/* k bytes went out: they are consumed in the order they were gathered.
 * 0 or a negative code (the next data frame's header cannot be made). */
static int advance(const struct bench_xfer_shared *xs, struct bench_xfer_conn *x, size_t k)
{
    uint64_t t;

    if (x->phase == XP_REQUEST) {
        x->hsent += (uint32_t)k;
        if (x->hsent == x->hlen)
            x->phase = XP_READY;
        return 0;
    }
    t = min_u64(k, x->hlen - x->hsent);
    x->hsent += (uint32_t)t;
    k -= (size_t)t;
    t = min_u64(k, x->frame_end - x->pos);
    x->pos += t;
    k -= (size_t)t;
    x->end_sent += k;   /* only gathered after the last frame */
    if (x->hsent < x->hlen || x->pos < x->frame_end)
        return 0;
    if (x->pos < x->size)
        return next_frame(x);
    if (x->end_sent == xs->end_len)
        x->phase = XP_OK;
    return 0;
}

int bench_xfer_send(const struct bench_xfer_shared *xs, struct bench_xfer_conn *x,
                    struct ferry_transport *t)
{
    for (;;) {
        struct iovec iov[3];
        ssize_t k;
        int n = 0, r;

        if (x->phase == XP_REQUEST) {
            iov[n++] = (struct iovec){ (void *)(x->hp + x->hsent), x->hlen - x->hsent };
        } else if (x->phase == XP_DATA && xs->put) {
            if (x->hsent < x->hlen)
                iov[n++] = (struct iovec){ x->head + x->hsent, x->hlen - x->hsent };
            if (x->pos < x->frame_end)
                iov[n++] = (struct iovec){ xs->data + x->pos, (size_t)(x->frame_end - x->pos) };
            if (x->frame_end == x->size && x->end_sent < xs->end_len)
                iov[n++] = (struct iovec){ xs->end + x->end_sent, xs->end_len - x->end_sent };
        }
        if (n == 0)
            return 0;   /* nothing to send until the server answers */
        /* The transport never raises SIGPIPE: a server that goes away is
         * an -EPIPE to count, not a signal that kills the run. */
        k = ferry_transport_writev(t, iov, n);
        if (k == -EAGAIN)
            return 0;   /* the next EPOLLOUT edge resumes */
        if (k < 0)
            return (int)k;
        r = advance(xs, x, (size_t)k);
        if (r < 0)
            return r;
    }
}

int bench_xfer_sent(const struct bench_xfer_shared *xs, const struct bench_xfer_conn *x)
{
    return x->phase != XP_REQUEST && !(xs->put && x->phase == XP_DATA);
}

/* ---- answers ------------------------------------------------------------- */

/* A download's data frame: it must follow on and stay within the file. */
static int get_data(const struct bench_xfer_conn *x, uint64_t offset, uint64_t size)
{
    if (offset != x->pos || size > PROTO_DATA_SEGMENT || size > x->size - x->pos)
        return -EPROTO;
    return 0;
}

/* A member that must be an integer from 0 to 2^63-1. */
static int get_u64(const json_t *h, const char *name, uint64_t *v)
{
    const json_t *m = json_object_get(h, name);

    if (!json_is_integer(m) || json_integer_value(m) < 0)
        return -EPROTO;
    *v = (uint64_t)json_integer_value(m);
    return 0;
}

/* ferryd refused the transfer: keep its words for the report. */
static int refused(const json_t *h, char *why, size_t why_len)
{
    const char *code = json_string_value(json_object_get(h, "code"));
    const char *msg = json_string_value(json_object_get(h, "message"));

    if (why && why_len > 0)
        snprintf(why, why_len, "%s (%s)", msg ? msg : "no message", code ? code : "no code");
    return FERRY_EREMOTE;
}

static int put_answer(const struct bench_xfer_shared *xs, struct bench_xfer_conn *x, const char *type,
                      const json_t *h, struct bench_xfer_frame *f)
{
    const char *sum;
    uint64_t v;

    if (x->phase == XP_READY && strcmp(type, MSG_PUT_READY) == 0) {
        /* resume false: the server has nothing to offer but offset 0. */
        if (get_u64(h, "offset", &v) < 0 || v != 0)
            return FERRY_EUNEXPECTED;
        f->send = 1;
        return begin_data(x);
    }
    if (x->phase == XP_OK && strcmp(type, MSG_PUT_OK) == 0) {
        sum = json_string_value(json_object_get(h, "checksum"));
        if (get_u64(h, "filesize", &v) < 0 || !sum)
            return -EPROTO;
        f->last = 1;
        x->phase = XP_DONE;
        /* ferryd checked our checksum before it said ok; this checks that
         * it stored what we meant, and that the answer is ours. */
        if (v != x->size || !digest_hex_equal(sum, xs->sum))
            f->fail = FERRY_ECHECKSUM;
        else
            memcpy(x->sum, xs->sum, sizeof x->sum);
        return 0;
    }
    return FERRY_EUNEXPECTED;
}

static int get_answer(struct bench_xfer_conn *x, const char *type, const json_t *h, struct bench_xfer_frame *f)
{
    char mine[DIGEST_HEX_MAX];
    const char *sum;
    uint64_t v;

    if (x->phase == XP_READY && strcmp(type, MSG_GET_READY) == 0) {
        /* No "offset" asked: the whole file comes, from 0. */
        if (get_u64(h, "filesize", &x->size) < 0 || get_u64(h, "offset", &v) < 0 || v != 0 ||
            x->size > INT64_MAX)
            return -EPROTO;
        x->phase = XP_DATA;
        x->pos = 0;
        return 0;
    }
    if (x->phase == XP_DATA && strcmp(type, MSG_GET_END) == 0) {
        sum = json_string_value(json_object_get(h, "checksum"));
        if (x->pos != x->size || !sum)
            return -EPROTO;
        f->last = 1;
        x->phase = XP_DONE;
        digest_hex(x->d, mine);
        if (!digest_hex_equal(mine, sum))
            f->fail = FERRY_ECHECKSUM;   /* counted and reported, never ignored */
        else
            memcpy(x->sum, mine, sizeof x->sum);
        return 0;
    }
    return FERRY_EUNEXPECTED;
}

int bench_xfer_header(const struct bench_xfer_shared *xs, struct bench_xfer_conn *x, const json_t *h,
                      uint64_t body, struct bench_xfer_frame *f, char *why, size_t why_len)
{
    const char *type;
    uint64_t offset = 0;
    int r;

    memset(f, 0, sizeof *f);
    if (x->phase == XP_IDLE || x->phase == XP_DONE)
        return FERRY_EUNEXPECTED;
    type = json_string_value(json_object_get(h, "type"));
    if (!type) {
        r = -EPROTO;
    } else if (!xs->put && x->phase == XP_DATA && strcmp(type, MSG_DATA) == 0) {
        r = get_u64(h, "offset", &offset);
        if (r == 0)
            r = get_data(x, offset, body);
    } else if (body != 0) {
        r = -EPROTO;   /* only data frames carry bodies */
    } else if (strcmp(type, MSG_ERROR) == 0) {
        const char *code = json_string_value(json_object_get(h, "code"));

        /* A put whose checksum ferryd found wrong, answered after our
         * put-end: the transfer is over and the session in step, so it
         * is counted and the session goes on.  Any other refusal ends
         * the connection (a refused path would be refused again). */
        if (xs->put && x->phase == XP_OK && code && strcmp(code, ERR_CHECKSUM) == 0) {
            refused(h, why, why_len);
            f->last = 1;
            f->fail = FERRY_ECHECKSUM;
            x->phase = XP_DONE;
            r = 0;
        } else {
            r = refused(h, why, why_len);
        }
    } else {
        r = xs->put ? put_answer(xs, x, type, h, f) : get_answer(x, type, h, f);
    }
    return r;
}

void bench_xfer_body(struct bench_xfer_conn *x, const uint8_t *p, size_t n)
{
    digest_update(x->d, p, n);
    x->pos += n;
}
