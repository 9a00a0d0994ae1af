/*
 * fuzz_frame.c - libFuzzer harness for the frame codec.
 *
 * Input layout: byte 0 picks where the stream is cut in two, byte 1 picks
 * the limits, the rest is the byte stream (fuzz/make-corpus.py writes seeds
 * in this layout).  Besides "no crash, no leak", three properties are
 * checked and abort() when broken:
 *   - the cut and uncut parses report the same events;
 *   - every parsed header survives ferry_frame_encode + decode unchanged;
 *   - the whole input through ferry_frame_decode_header never crashes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/error.h"
#include "ferry/frame.h"
#include "buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What a parse reported, in a form two parses can be compared by. */
struct summary {
    uint64_t hash;          /* FNV-1a over header text and body bytes, in order */
    uint64_t body_bytes;
    unsigned headers, ends;
    int rc;                 /* the error that stopped the parse, or 0 */
    int at_boundary;
};

static void mix(uint64_t *h, const void *p, size_t n)
{
    struct ferry_slice s = ferry_slice_make(p, n);

    for (; s.len > 0; ferry_slice_advance(&s, 1))
        *h = (*h ^ s.p[0]) * 0x100000001b3ull;
}

static void check_round_trip(json_t *header, uint64_t body_size,
                             const struct ferry_frame_limits *l)
{
    uint8_t *out = NULL;
    size_t len = 0;
    json_t *back = NULL;
    uint64_t back_size = 0;
    struct ferry_slice json;
    int rc = ferry_frame_encode(header, body_size, l, &out, &len);

    /* Compact output can still be longer than the input ("1E2" -> "100.0"). */
    if (rc == FERRY_EHDR_TOOBIG || rc == -ENOMEM)
        return;
    if (rc != 0)
        abort();
    json = ferry_slice_make(out, len);
    ferry_slice_advance(&json, FERRY_FRAME_PREFIX_LEN);
    if (ferry_le32_read(out) != json.len)
        abort();
    if (ferry_frame_decode_header(json.p, json.len, l, &back, &back_size) != 0 ||
        back_size != body_size || !json_equal(back, header))
        abort();
    json_decref(back);
    free(out);
}

/* Feed one piece until the parser wants more; 0 or the error. */
static int feed_piece(struct ferry_frame_parser *p, struct ferry_slice in,
                      const struct ferry_frame_limits *l, int round_trip, struct summary *sum)
{
    for (;;) {
        struct ferry_frame_event ev;
        size_t used = 0;
        char *text;
        int rc = ferry_frame_parser_feed(p, in.p, in.len, &used, &ev);

        if (used > in.len)
            abort();
        ferry_slice_advance(&in, used);
        switch (rc) {
        case FERRY_FRAME_NEED_MORE:
            if (in.len != 0)
                abort();
            return 0;
        case FERRY_FRAME_HEADER:
            sum->headers++;
            text = json_dumps(ev.header, JSON_COMPACT | JSON_SORT_KEYS);
            if (text)
                mix(&sum->hash, text, strlen(text));
            free(text);
            mix(&sum->hash, &ev.body_size, sizeof ev.body_size);
            if (round_trip)
                check_round_trip(ev.header, ev.body_size, l);
            json_decref(ev.header);
            break;
        case FERRY_FRAME_BODY:
            if (ev.chunk_len == 0)
                abort();
            mix(&sum->hash, ev.chunk, ev.chunk_len);
            sum->body_bytes += ev.chunk_len;
            break;
        case FERRY_FRAME_END:
            sum->ends++;
            break;
        default:
            if (rc >= 0)
                abort();
            sum->rc = rc;
            return rc;
        }
    }
}

static void parse(struct ferry_slice stream, size_t cut, const struct ferry_frame_limits *l,
                  int round_trip, struct summary *sum)
{
    struct ferry_frame_parser *p = NULL;
    if (ferry_frame_parser_new(l, &p) < 0)
        abort();
    struct ferry_slice rest = stream;

    memset(sum, 0, sizeof *sum);
    sum->hash = 0xcbf29ce484222325ull;
    if (!p)
        abort();
    ferry_slice_advance(&rest, cut);
    if (feed_piece(p, ferry_slice_head(stream, cut), l, round_trip, sum) == 0)
        feed_piece(p, rest, l, round_trip, sum);
    sum->at_boundary = ferry_frame_parser_at_boundary(p);
    ferry_frame_parser_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ferry_slice in = ferry_slice_make(data, size);
    struct ferry_frame_limits l = { 0 };
    struct summary whole, split;
    json_t *header = NULL;
    uint64_t body_size;
    uint8_t cut_sel, opts;
    size_t cut;

    if (ferry_frame_decode_header(data, size, NULL, &header, &body_size) == 0)
        json_decref(header);

    if (in.len < 2)
        return 0;
    cut_sel = in.p[0];
    opts = in.p[1];
    ferry_slice_advance(&in, 2);
    if (opts & 1)
        l.max_header = 64;
    if (opts & 2)
        l.max_body = 1000;
    if (opts & 4)
        l.size_key = "total_size";
    cut = (size_t)((uint64_t)in.len * cut_sel / 255);

    parse(in, 0, &l, 1, &whole);
    parse(in, cut, &l, 0, &split);
    if (memcmp(&whole, &split, sizeof whole) != 0)
        abort();
    return 0;
}
