/*
 * test_frame_parse.c - the frame codec's parser: every error code, every
 * split of the input, the size member and the body limit, the 64-bit body
 * counter, and the parser's state (sticky errors, boundaries, a header
 * that ends at a guard page).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include "ferry/error.h"
#include "ferry/frame.h"
#include "ferry/transport.h"
#include "fix_sock.h"
#include "fix_util.h"
#include "buf.h"


/* ---- helpers ------------------------------------------------------------- */

/* Append one raw frame: prefix, exactly json_len header bytes, body. */
static void put_frame_n(struct ferry_buf *b, const char *json, size_t json_len,
                        const void *body, size_t body_len)
{
    uint8_t prefix[4];

    ferry_le32_write(prefix, (uint32_t)json_len);
    assert_int_equal(ferry_buf_append(b, prefix, 4), 0);
    assert_int_equal(ferry_buf_append(b, json, json_len), 0);
    assert_int_equal(ferry_buf_append(b, body, body_len), 0);
}

static void put_frame(struct ferry_buf *b, const char *json, const char *body)
{
    put_frame_n(b, json, strlen(json), body, body ? strlen(body) : 0);
}

static void log_printf(struct ferry_buf *log, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    assert_true(n >= 0);
    assert_int_equal(ferry_buf_reserve(log, (size_t)n + 1), 0);
    va_start(ap, fmt);
    vsnprintf((char *)ferry_buf_tail(log), (size_t)n + 1, fmt, ap);
    va_end(ap);
    ferry_buf_commit(log, (size_t)n);   /* the NUL stays outside the log */
}

/* The raw text a HEADER event hands out is the header as sent: whatever
 * the split, it parses to the very header the event carries. */
static void check_raw_header(const struct ferry_frame_event *ev)
{
    json_t *again = json_loadb((const char *)ev->raw_header, ev->raw_header_len, 0, NULL);

    assert_non_null(again);
    assert_true(json_equal(again, ev->header));
    json_decref(again);
}

/*
 * Feed one piece of a stream until the parser wants more, writing every
 * event to `log` in a form that does not depend on how the input was split
 * (body bytes are logged raw, without chunk boundaries).  Checks on the way
 * that body chunks point straight into the input.  Returns the error, if any.
 */
static int feed_piece(struct ferry_frame_parser *p, const uint8_t *data, size_t len,
                      struct ferry_buf *log)
{
    for (;;) {
        struct ferry_frame_event ev;
        size_t used = SIZE_MAX;
        char *text;
        int rc = ferry_frame_parser_feed(p, data, len, &used, &ev);

        assert_true(used <= len);
        if (rc < 0) {
            log_printf(log, "X %s\n", ferry_err_name(rc));
            return rc;
        }
        switch (rc) {
        case FERRY_FRAME_NEED_MORE:
            assert_int_equal(used, len);
            return 0;
        case FERRY_FRAME_HEADER:
            check_raw_header(&ev);
            text = json_dumps(ev.header, JSON_COMPACT | JSON_SORT_KEYS);
            assert_non_null(text);
            log_printf(log, "H %s %llu\n", text, (unsigned long long)ev.body_size);
            free(text);
            json_decref(ev.header);
            break;
        case FERRY_FRAME_BODY:
            assert_true(ev.chunk_len > 0);
            assert_ptr_equal(ev.chunk, data);   /* borrowed, not copied */
            assert_int_equal(used, ev.chunk_len);
            assert_int_equal(ferry_buf_append(log, ev.chunk, ev.chunk_len), 0);
            break;
        case FERRY_FRAME_END:
            log_printf(log, "\nE\n");
            break;
        default:
            fail_msg("unexpected event %d", rc);
        }
        data += used;
        len -= used;
    }
}

/* Parse `len` bytes cut at the given offsets (ascending, may be empty);
 * the log ends with whether the parser was left at a frame boundary.  The
 * caller frees the returned log with ferry_buf_free(). */
static struct ferry_buf parse_cut(const struct ferry_frame_limits *l, const uint8_t *data,
                                  size_t len, const size_t *cuts, size_t ncuts)
{
    struct ferry_frame_parser *p = NULL;
    assert_int_equal(ferry_frame_parser_new(l, &p), 0);
    struct ferry_buf log;
    size_t start = 0;

    assert_non_null(p);
    ferry_buf_init(&log, 0);
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : len;

        if (feed_piece(p, data + start, end - start, &log) < 0)
            break;
        start = end;
    }
    log_printf(&log, "%s", ferry_frame_parser_at_boundary(p) ? "boundary" : "partial");
    ferry_frame_parser_free(p);
    return log;
}

/* Logs hold body bytes, NULs included: compare them as memory. */
static void assert_log(const struct ferry_buf *log, const char *want, size_t want_len)
{
    size_t len = ferry_buf_len(log);

    if (len != want_len || memcmp(ferry_buf_head(log), want, len) != 0)
        fail_msg("log differs:\n%.*s\n--- want:\n%.*s", (int)len,
                 (const char *)ferry_buf_head(log), (int)want_len, want);
}

#define ASSERT_LOG(log, literal) assert_log(&(log), literal, sizeof(literal) - 1)

/* The same events for the whole input, every 2-way split and one byte at a
 * time.  Returns the whole-input log for the caller to check. */
static struct ferry_buf parse_every_split(const struct ferry_frame_limits *l,
                                          const struct ferry_buf *stream)
{
    const uint8_t *data = ferry_buf_head(stream);
    size_t len = ferry_buf_len(stream);
    struct ferry_buf whole = parse_cut(l, data, len, NULL, 0), other;
    size_t *bytewise = malloc(len * sizeof *bytewise);

    assert_non_null(bytewise);
    for (size_t k = 0; k <= len; k++) {
        other = parse_cut(l, data, len, &k, 1);
        assert_log(&other, (const char *)ferry_buf_head(&whole), ferry_buf_len(&whole));
        ferry_buf_free(&other);
    }
    for (size_t k = 1; k < len; k++)
        bytewise[k - 1] = k;
    other = parse_cut(l, data, len, bytewise, len - 1);
    assert_log(&other, (const char *)ferry_buf_head(&whole), ferry_buf_len(&whole));
    ferry_buf_free(&other);
    free(bytewise);
    return whole;
}

/* Parse a single frame with header `json` (len bytes) through both the push
 * parser and ferry_frame_decode_header, which must agree.  Returns the code
 * (FERRY_FRAME_HEADER on success) and the declared size. */
static int parse_header_n(const char *json, size_t len, const struct ferry_frame_limits *l,
                          uint64_t *size)
{
    struct ferry_frame_parser *p = NULL;
    assert_int_equal(ferry_frame_parser_new(l, &p), 0);
    struct ferry_frame_event ev;
    struct ferry_buf b;
    json_t *direct = NULL;
    uint64_t direct_size = 99;
    size_t used;
    int rc, drc;

    ferry_buf_init(&b, 0);
    put_frame_n(&b, json, len, NULL, 0);
    rc = ferry_frame_parser_feed(p, ferry_buf_head(&b), ferry_buf_len(&b), &used, &ev);
    drc = ferry_frame_decode_header(json, len, l, &direct, &direct_size);
    if (rc == FERRY_FRAME_HEADER) {
        assert_int_equal(drc, 0);
        assert_true(json_equal(ev.header, direct));
        assert_int_equal(ev.body_size, direct_size);
        *size = ev.body_size;
        json_decref(ev.header);
        json_decref(direct);
    } else {
        assert_int_equal(drc, rc);
        assert_null(direct);
        assert_int_equal(direct_size, 0);
    }
    ferry_buf_free(&b);
    ferry_frame_parser_free(p);
    return rc;
}

static int parse_header(const char *json, const struct ferry_frame_limits *l, uint64_t *size)
{
    return parse_header_n(json, strlen(json), l, size);
}

#define assert_header_err(json, code)                                          \
    do {                                                                       \
        uint64_t size_;                                                        \
        int rc_ = parse_header((json), NULL, &size_);                          \
        if (rc_ != (code))                                                     \
            fail_msg("%s: got %s, want %s", (json), ferry_err_name(rc_),       \
                     ferry_err_name(code));                                    \
    } while (0)

static uint64_t header_size_ok(const char *json, const struct ferry_frame_limits *l)
{
    uint64_t size = 0;
    int rc = parse_header(json, l, &size);

    if (rc != FERRY_FRAME_HEADER)
        fail_msg("%s: got %s", json, ferry_err_name(rc));
    return size;
}

/* ---- prefix -------------------------------------------------------------- */

/* Feed only a prefix: a bad one must fail at once, without waiting for
 * (or buffering) a single header byte. */
static int feed_prefix(uint32_t len, const struct ferry_frame_limits *l)
{
    struct ferry_frame_parser *p = NULL;
    assert_int_equal(ferry_frame_parser_new(l, &p), 0);
    struct ferry_frame_event ev;
    uint8_t prefix[4];
    size_t used;
    int rc;

    ferry_le32_write(prefix, len);
    rc = ferry_frame_parser_feed(p, prefix, 4, &used, &ev);
    assert_int_equal(used, 4);
    ferry_frame_parser_free(p);
    return rc;
}

static void test_hdr_empty(void **state)
{
    assert_int_equal(feed_prefix(0, NULL), FERRY_EHDR_EMPTY);
    assert_header_err("", FERRY_EHDR_EMPTY);
}

static void test_hdr_toobig(void **state)
{
    struct ferry_frame_limits small = { .max_header = 16 };
    uint64_t size;

    assert_int_equal(feed_prefix(0xFFFFFFFFu, NULL), FERRY_EHDR_TOOBIG);
    assert_int_equal(feed_prefix(FERRY_FRAME_DEFAULT_MAX_HEADER + 1, NULL), FERRY_EHDR_TOOBIG);
    assert_int_equal(feed_prefix(FERRY_FRAME_DEFAULT_MAX_HEADER, NULL), FERRY_FRAME_NEED_MORE);
    assert_int_equal(feed_prefix(17, &small), FERRY_EHDR_TOOBIG);
    assert_int_equal(feed_prefix(16, &small), FERRY_FRAME_NEED_MORE);
    /* Exactly the limit parses; one more byte does not. */
    assert_int_equal(parse_header("{\"a\":\"12345678\"}", &small, &size), FERRY_FRAME_HEADER);
    assert_int_equal(parse_header("{\"a\":\"123456789\"}", &small, &size), FERRY_EHDR_TOOBIG);
}

static char *padded_header(size_t len)
{
    char *json = malloc(len + 1);

    assert_non_null(json);
    memset(json, 'x', len);
    memcpy(json, "{\"pad\":\"", 8);
    memcpy(json + len - 2, "\"}", 3);
    return json;
}

static void test_header_exactly_default_max(void **state)
{
    size_t max = FERRY_FRAME_DEFAULT_MAX_HEADER;
    char *json = padded_header(max);
    struct ferry_buf stream, log;
    uint64_t size;

    assert_int_equal(parse_header(json, NULL, &size), FERRY_FRAME_HEADER);
    free(json);
    json = padded_header(max + 1);
    assert_int_equal(parse_header(json, NULL, &size), FERRY_EHDR_TOOBIG);
    free(json);

    /* Buffered across feeds too. */
    json = padded_header(max);
    ferry_buf_init(&stream, 0);
    put_frame_n(&stream, json, max, NULL, 0);
    size_t cuts[] = { 2, 5, 30000, 65539 };
    log = parse_cut(NULL, ferry_buf_head(&stream), ferry_buf_len(&stream), cuts, 4);
    static const char tail[] = "\"} 0\n\nE\nboundary";
    /* "H " + the header + " 0\n" + "\nE\n" + "boundary" */
    assert_int_equal(ferry_buf_len(&log), 2 + max + 3 + 3 + 8);
    assert_memory_equal(ferry_buf_head(&log) + ferry_buf_len(&log) - (sizeof tail - 1), tail,
                        sizeof tail - 1);
    ferry_buf_free(&log);
    free(json);
    ferry_buf_free(&stream);
}

/* ---- header content ------------------------------------------------------ */

static void test_not_object(void **state)
{
    assert_header_err("[1,2]", FERRY_ENOT_OBJECT);
    assert_header_err("[]", FERRY_ENOT_OBJECT);
    assert_header_err("\"size\"", FERRY_ENOT_OBJECT);
    assert_header_err("42", FERRY_ENOT_OBJECT);
    assert_header_err("-1.5", FERRY_ENOT_OBJECT);
    assert_header_err("true", FERRY_ENOT_OBJECT);
    assert_header_err("null", FERRY_ENOT_OBJECT);
    assert_header_err(" [{}] ", FERRY_ENOT_OBJECT);
}

static void test_bad_json(void **state)
{
    uint64_t size;

    assert_header_err("{", FERRY_EJSON);
    assert_header_err("{\"a\":}", FERRY_EJSON);
    assert_header_err("{}x", FERRY_EJSON);
    assert_header_err("{} {}", FERRY_EJSON);
    assert_header_err("{'a':1}", FERRY_EJSON);
    assert_header_err("{\"a\":01}", FERRY_EJSON);
    assert_header_err("\xef\xbb\xbf{}", FERRY_EJSON);       /* a BOM is not JSON */
    assert_header_err("{\"a\":\"\\u0000\"}", FERRY_EJSON);  /* no NUL in strings */
    assert_int_equal(parse_header_n("{}\0", 3, NULL, &size), FERRY_EJSON);
    assert_int_equal(parse_header_n("{\"a\0\":1}", 8, NULL, &size), FERRY_EJSON);
}

static void test_invalid_utf8(void **state)
{
    assert_header_err("{\"a\":\"\xff\"}", FERRY_EUTF8);
    assert_header_err("{\"\xfe\":1}", FERRY_EUTF8);
    assert_header_err("{\"a\":\"\x80\"}", FERRY_EUTF8);          /* lone continuation */
    assert_header_err("{\"a\":\"\xc3\"}", FERRY_EUTF8);          /* truncated sequence */
    assert_header_err("{\"a\":\"\xed\xa0\x80\"}", FERRY_EUTF8);  /* UTF-16 surrogate */
    assert_header_err("{\"a\":\"\xf4\x90\x80\x80\"}", FERRY_EUTF8); /* past U+10FFFF */
    assert_header_err("{\"a\":1}\xff", FERRY_EUTF8);
}

static void test_overlong_utf8(void **state)
{
    assert_header_err("{\"a\":\"\xc0\xaf\"}", FERRY_EUTF8);           /* '/' in 2 bytes */
    assert_header_err("{\"a\":\"\xc1\xbf\"}", FERRY_EUTF8);
    assert_header_err("{\"a\":\"\xe0\x80\xaf\"}", FERRY_EUTF8);       /* in 3 bytes */
    assert_header_err("{\"a\":\"\xf0\x80\x80\xaf\"}", FERRY_EUTF8);   /* in 4 bytes */
    assert_header_err("{\"\xc0\x80\":1}", FERRY_EUTF8);               /* "modified UTF-8" NUL */

    /* The shortest forms of all lengths are fine. */
    assert_int_equal(header_size_ok("{\"a\":\"/\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}", NULL), 0);
}

static void test_duplicate_key(void **state)
{
    assert_header_err("{\"a\":1,\"a\":2}", FERRY_EDUP_KEY);
    assert_header_err("{\"a\":1,\"a\":1}", FERRY_EDUP_KEY);
    assert_header_err("{\"size\":1,\"size\":1}", FERRY_EDUP_KEY);
    assert_header_err("{\"o\":{\"k\":1,\"k\":true}}", FERRY_EDUP_KEY);
    /* Same text after escape decoding is the same key. */
    assert_header_err("{\"a\":1,\"\\u0061\":2}", FERRY_EDUP_KEY);
}

/* ---- the size member ----------------------------------------------------- */

static void test_size_absent_and_zero(void **state)
{
    assert_int_equal(header_size_ok("{}", NULL), 0);
    assert_int_equal(header_size_ok("{\"Size\":5,\"sizes\":7}", NULL), 0);
    assert_int_equal(header_size_ok("{\"size\":0}", NULL), 0);
    assert_int_equal(header_size_ok("{\"size\":-0}", NULL), 0);
    assert_int_equal(header_size_ok("{\"o\":{\"size\":5}}", NULL), 0);
    assert_int_equal(header_size_ok("{\"size\":12}", NULL), 12);
}

static void test_size_negative(void **state)
{
    assert_header_err("{\"size\":-1}", FERRY_ESIZE_NEG);
    assert_header_err("{\"size\":-9223372036854775808}", FERRY_ESIZE_NEG);
}

static void test_size_fraction(void **state)
{
    assert_header_err("{\"size\":1.5}", FERRY_ESIZE_FRAC);
    assert_header_err("{\"size\":1.0}", FERRY_ESIZE_FRAC);
    assert_header_err("{\"size\":0.0}", FERRY_ESIZE_FRAC);
    assert_header_err("{\"size\":1e3}", FERRY_ESIZE_FRAC);
    assert_header_err("{\"size\":-2.5}", FERRY_ESIZE_FRAC);
}

static void test_size_type(void **state)
{
    assert_header_err("{\"size\":\"12\"}", FERRY_ESIZE_TYPE);
    assert_header_err("{\"size\":true}", FERRY_ESIZE_TYPE);
    assert_header_err("{\"size\":null}", FERRY_ESIZE_TYPE);
    assert_header_err("{\"size\":[12]}", FERRY_ESIZE_TYPE);
    assert_header_err("{\"size\":{\"n\":12}}", FERRY_ESIZE_TYPE);
}

static void test_size_range(void **state)
{
    assert_int_equal(header_size_ok("{\"size\":9223372036854775807}", NULL), INT64_MAX);
    assert_int_equal(header_size_ok("{\"size\":4294967296}", NULL), 4294967296u);
    assert_header_err("{\"size\":9223372036854775808}", FERRY_ENUM_RANGE);     /* 2^63 */
    assert_header_err("{\"size\":18446744073709551615}", FERRY_ENUM_RANGE);    /* 2^64-1 */
    assert_header_err("{\"size\":18446744073709551616}", FERRY_ENUM_RANGE);    /* 2^64 */
    assert_header_err("{\"size\":340282366920938463463374607431768211456}", FERRY_ENUM_RANGE);
    assert_header_err("{\"size\":-9223372036854775809}", FERRY_ENUM_RANGE);
    assert_header_err("{\"size\":1e400}", FERRY_ENUM_RANGE);
    /* Any number in the header, not just the size. */
    assert_header_err("{\"id\":18446744073709551616}", FERRY_ENUM_RANGE);
}

static void test_body_limit(void **state)
{
    struct ferry_frame_limits l = { .max_body = 10 };
    uint64_t size;

    assert_int_equal(header_size_ok("{\"size\":10}", &l), 10);
    assert_int_equal(parse_header("{\"size\":11}", &l, &size), FERRY_EBODY_TOOBIG);
    assert_int_equal(parse_header("{\"size\":9223372036854775807}", &l, &size),
                     FERRY_EBODY_TOOBIG);
}

static void test_custom_size_key(void **state)
{
    struct ferry_frame_limits l = { .size_key = "total_size" };
    struct ferry_buf stream, log;
    uint64_t size;

    assert_int_equal(header_size_ok("{\"total_size\":3,\"size\":99}", &l), 3);
    assert_int_equal(header_size_ok("{\"size\":99}", &l), 0);
    assert_int_equal(parse_header("{\"total_size\":\"3\"}", &l, &size), FERRY_ESIZE_TYPE);
    assert_int_equal(parse_header("{\"total_size\":-3}", &l, &size), FERRY_ESIZE_NEG);

    ferry_buf_init(&stream, 0);
    put_frame(&stream, "{\"total_size\":3,\"size\":99}", "abc");
    put_frame(&stream, "{\"filesize\":1,\"total_size\":0}", NULL);
    put_frame_n(&stream, "{\"total_size\":2}", 16, "\0\xff", 2);
    log = parse_every_split(&l, &stream);
    ASSERT_LOG(log,
        "H {\"size\":99,\"total_size\":3} 3\nabc\nE\n"
        "H {\"filesize\":1,\"total_size\":0} 0\n\nE\n"
        "H {\"total_size\":2} 2\n\0\xff\nE\nboundary");
    ferry_buf_free(&log);
    ferry_buf_free(&stream);
}

/* ---- streams ------------------------------------------------------------- */

static void test_every_split_multi_frame(void **state)
{
    struct ferry_buf stream, log;

    ferry_buf_init(&stream, 0);
    put_frame(&stream, "{\"cmd\":\"put\",\"name\":\"a.txt\",\"size\":5}", "hello");
    put_frame(&stream, "{\"cmd\":\"ls\"}", NULL);
    put_frame(&stream, " { \"x\" : [1, {\"y\":\"\xc3\xa9\"}], \"size\" : 0 } ", NULL);
    put_frame(&stream, "{\"cmd\":\"get\",\"size\":1}", "Z");
    log = parse_every_split(NULL, &stream);
    ASSERT_LOG(log,
        "H {\"cmd\":\"put\",\"name\":\"a.txt\",\"size\":5} 5\nhello\nE\n"
        "H {\"cmd\":\"ls\"} 0\n\nE\n"
        "H {\"size\":0,\"x\":[1,{\"y\":\"\xc3\xa9\"}]} 0\n\nE\n"
        "H {\"cmd\":\"get\",\"size\":1} 1\nZ\nE\nboundary");
    ferry_buf_free(&log);
    ferry_buf_free(&stream);
}

static void test_every_split_binary_bodies(void **state)
{
    static const char tail[] = "\nE\nH {\"size\":6} 6\n\0\0\0\0\xff\xff\nE\nH {} 0\n\nE\nboundary";
    struct ferry_buf stream, log;
    uint8_t body[300];

    /* Bodies that look like prefixes and headers must pass through as data. */
    for (size_t i = 0; i < sizeof body; i++)
        body[i] = (uint8_t)(i * 7);
    memcpy(body, "\x02\x00\x00\x00{}", 6);
    ferry_buf_init(&stream, 0);
    put_frame_n(&stream, "{\"size\":300}", 12, body, sizeof body);
    put_frame_n(&stream, "{\"size\":6}", 10, "\x00\x00\x00\x00\xff\xff", 6);
    put_frame(&stream, "{}", NULL);
    log = parse_every_split(NULL, &stream);
    assert_int_equal(ferry_buf_len(&log), 19 + sizeof body + sizeof tail - 1);
    assert_memory_equal(ferry_buf_head(&log), "H {\"size\":300} 300\n", 19);
    assert_memory_equal(ferry_buf_head(&log) + 19, body, sizeof body);
    assert_memory_equal(ferry_buf_head(&log) + 19 + sizeof body, tail, sizeof tail - 1);
    ferry_buf_free(&log);
    ferry_buf_free(&stream);
}

static void test_every_split_error_stream(void **state)
{
    struct ferry_buf stream, log;
    uint8_t prefix[4];

    ferry_buf_init(&stream, 0);
    put_frame(&stream, "{\"size\":2}", "ok");
    put_frame(&stream, "{\"a\":1,\"a\":2}", NULL);
    put_frame(&stream, "{}", NULL);
    log = parse_every_split(NULL, &stream);
    ASSERT_LOG(log, "H {\"size\":2} 2\nok\nE\nX FERRY_EDUP_KEY\npartial");
    ferry_buf_free(&log);

    /* Cut off mid-header: no error, just not at a boundary. */
    ferry_buf_clear(&stream);
    put_frame(&stream, "{\"size\":2}", "ok");
    ferry_le32_write(prefix, 20);
    assert_int_equal(ferry_buf_append(&stream, prefix, 4), 0);
    assert_int_equal(ferry_buf_append(&stream, "{\"never\":\"fin", 13), 0);
    log = parse_every_split(NULL, &stream);
    ASSERT_LOG(log, "H {\"size\":2} 2\nok\nE\npartial");
    ferry_buf_free(&log);
    ferry_buf_free(&stream);
}

/* ---- 64-bit body counting ------------------------------------------------ */

static void test_body_past_4gib(void **state)
{
    const uint64_t total = (5ull << 30) + 3;   /* 5 GiB + 3 */
    const size_t chunk = 1u << 20;
    struct ferry_frame_parser *p = NULL;
    assert_int_equal(ferry_frame_parser_new(NULL, &p), 0);
    struct ferry_frame_event ev;
    struct ferry_buf b;
    uint8_t *zeros = calloc(1, chunk);
    uint64_t seen = 0;
    size_t used;

    assert_non_null(zeros);
    ferry_buf_init(&b, 0);
    put_frame(&b, "{\"size\":5368709123}", NULL);
    assert_int_equal(ferry_frame_parser_feed(p, ferry_buf_head(&b), ferry_buf_len(&b), &used, &ev),
                     FERRY_FRAME_HEADER);
    assert_int_equal(ev.body_size, total);
    json_decref(ev.header);

    /* Whole chunks up to the last 3 bytes: the counter crosses 2^32 here. */
    while (total - seen > 3) {
        size_t n = total - seen - 3 < chunk ? (size_t)(total - seen - 3) : chunk;

        assert_int_equal(ferry_frame_parser_feed(p, zeros, n, &used, &ev), FERRY_FRAME_BODY);
        assert_int_equal(ev.chunk_len, n);
        assert_ptr_equal(ev.chunk, zeros);
        seen += n;
        assert_int_equal(ferry_frame_parser_feed(p, zeros, 0, &used, &ev), FERRY_FRAME_NEED_MORE);
        assert_false(ferry_frame_parser_at_boundary(p));
    }
    assert_int_equal(seen, total - 3);

    /* The tail and the next frame arrive together. */
    ferry_buf_clear(&b);
    assert_int_equal(ferry_buf_append(&b, "xyz", 3), 0);
    put_frame(&b, "{}", NULL);
    struct ferry_slice in = ferry_slice_make(ferry_buf_head(&b), ferry_buf_len(&b));
    assert_int_equal(ferry_frame_parser_feed(p, in.p, in.len, &used, &ev), FERRY_FRAME_BODY);
    assert_int_equal(ev.chunk_len, 3);
    assert_memory_equal(ev.chunk, "xyz", 3);
    ferry_slice_advance(&in, used);
    assert_int_equal(ferry_frame_parser_feed(p, in.p, in.len, &used, &ev), FERRY_FRAME_END);
    assert_int_equal(used, 0);
    assert_int_equal(ferry_frame_parser_feed(p, in.p, in.len, &used, &ev), FERRY_FRAME_HEADER);
    assert_int_equal(ev.body_size, 0);
    json_decref(ev.header);
    ferry_slice_advance(&in, used);
    assert_int_equal(ferry_frame_parser_feed(p, in.p, in.len, &used, &ev), FERRY_FRAME_END);
    assert_int_equal(ferry_frame_parser_feed(p, in.p, in.len, &used, &ev), FERRY_FRAME_NEED_MORE);
    assert_true(ferry_frame_parser_at_boundary(p));

    /* Exactly 2^32: a 32-bit counter would see 0 and end at once. */
    ferry_buf_clear(&b);
    put_frame(&b, "{\"size\":4294967296}", "a");
    assert_int_equal(ferry_frame_parser_feed(p, ferry_buf_head(&b), ferry_buf_len(&b), &used, &ev),
                     FERRY_FRAME_HEADER);
    json_decref(ev.header);
    assert_int_equal(ferry_frame_parser_feed(p, "a", 1, &used, &ev), FERRY_FRAME_BODY);
    assert_int_equal(ferry_frame_parser_feed(p, "", 0, &used, &ev), FERRY_FRAME_NEED_MORE);
    assert_false(ferry_frame_parser_at_boundary(p));

    ferry_buf_free(&b);
    free(zeros);
    ferry_frame_parser_free(p);
}

/* ---- parser state -------------------------------------------------------- */

static void test_sticky_error_until_reset(void **state)
{
    struct ferry_frame_parser *p = NULL;
    assert_int_equal(ferry_frame_parser_new(NULL, &p), 0);
    struct ferry_frame_event ev;
    struct ferry_buf good;
    size_t used;

    ferry_buf_init(&good, 0);
    put_frame(&good, "{}", NULL);
    assert_int_equal(ferry_frame_parser_feed(p, "\0\0\0\0", 4, &used, &ev), FERRY_EHDR_EMPTY);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ferry_frame_parser_feed(p, ferry_buf_head(&good), ferry_buf_len(&good),
                                                 &used, &ev), FERRY_EHDR_EMPTY);
        assert_int_equal(used, 0);
    }
    assert_false(ferry_frame_parser_at_boundary(p));

    ferry_frame_parser_reset(p);
    assert_true(ferry_frame_parser_at_boundary(p));
    assert_int_equal(ferry_frame_parser_feed(p, ferry_buf_head(&good), ferry_buf_len(&good),
                                             &used, &ev), FERRY_FRAME_HEADER);
    json_decref(ev.header);

    /* Reset also drops a half-received header (the first call only
     * reports the END of "{}" and consumes nothing). */
    assert_int_equal(ferry_frame_parser_feed(p, "\x05\0\0\0{\"a", 7, &used, &ev), FERRY_FRAME_END);
    assert_int_equal(ferry_frame_parser_feed(p, "\x05\0\0\0{\"a", 7, &used, &ev),
                     FERRY_FRAME_NEED_MORE);
    ferry_frame_parser_reset(p);
    assert_int_equal(ferry_frame_parser_feed(p, ferry_buf_head(&good), ferry_buf_len(&good),
                                             &used, &ev), FERRY_FRAME_HEADER);
    json_decref(ev.header);

    ferry_buf_free(&good);
    ferry_frame_parser_free(p);
}

static void test_at_boundary(void **state)
{
    struct ferry_frame_parser *p = NULL;
    assert_int_equal(ferry_frame_parser_new(NULL, &p), 0);
    struct ferry_frame_event ev;
    size_t used;

    assert_true(ferry_frame_parser_at_boundary(p));
    assert_int_equal(ferry_frame_parser_feed(p, "\x0a\0", 2, &used, &ev), FERRY_FRAME_NEED_MORE);
    assert_false(ferry_frame_parser_at_boundary(p));
    assert_int_equal(ferry_frame_parser_feed(p, "\0\0{\"size\":2", 11, &used, &ev),
                     FERRY_FRAME_NEED_MORE);
    assert_false(ferry_frame_parser_at_boundary(p));
    assert_int_equal(ferry_frame_parser_feed(p, "}", 1, &used, &ev), FERRY_FRAME_HEADER);
    assert_int_equal(ev.body_size, 2);
    json_decref(ev.header);
    assert_false(ferry_frame_parser_at_boundary(p));
    assert_int_equal(ferry_frame_parser_feed(p, "a", 1, &used, &ev), FERRY_FRAME_BODY);
    assert_false(ferry_frame_parser_at_boundary(p));
    assert_int_equal(ferry_frame_parser_feed(p, "b", 1, &used, &ev), FERRY_FRAME_BODY);
    /* Every byte is in; only the END report is pending. */
    assert_true(ferry_frame_parser_at_boundary(p));
    assert_int_equal(ferry_frame_parser_feed(p, NULL, 0, &used, &ev), FERRY_FRAME_END);
    assert_true(ferry_frame_parser_at_boundary(p));
    assert_int_equal(ferry_frame_parser_feed(p, NULL, 0, &used, &ev), FERRY_FRAME_NEED_MORE);
    assert_true(ferry_frame_parser_at_boundary(p));
    ferry_frame_parser_free(p);
}

/* A frame placed flush against an inaccessible page: any read past the
 * input faults. */
static void test_guard_page(void **state)
{
    static const struct {
        const char *json;
        int decode_rc;
    } cases[] = {
        { "{\"size\":3}", 0 },
        { "{}", 0 },
        { "{\"a\":12345", FERRY_EJSON },
        { "{\"a\":\"\xe2", FERRY_EUTF8 },
        { "{\"a\":tru", FERRY_EJSON },
        { "12345", FERRY_ENOT_OBJECT },
    };
    long page = sysconf(_SC_PAGESIZE);
    uint8_t *map = mmap(NULL, 2 * (size_t)page, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    struct ferry_buf frame, one, bytewise;
    size_t cuts[32];
    uint8_t *end;

    assert_true(map != MAP_FAILED);
    assert_int_equal(mprotect(map + page, (size_t)page, PROT_NONE), 0);
    end = map + page;
    ferry_buf_init(&frame, 0);

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = strlen(cases[i].json), flen;
        uint64_t size;
        json_t *h;

        /* The header alone, ending at the guard. */
        memcpy(end - n, cases[i].json, n);
        assert_int_equal(ferry_frame_decode_header(end - n, n, NULL, &h, &size),
                         cases[i].decode_rc);
        json_decref(h);

        /* The whole frame ending at the guard, in one piece and bytewise. */
        ferry_buf_clear(&frame);
        put_frame_n(&frame, cases[i].json, n, "xyz", i == 0 ? 3 : 0);
        flen = ferry_buf_len(&frame);
        assert_true(flen <= sizeof cuts);
        memcpy(end - flen, ferry_buf_head(&frame), flen);
        for (size_t k = 1; k < flen; k++)
            cuts[k - 1] = k;
        one = parse_cut(NULL, end - flen, flen, NULL, 0);
        bytewise = parse_cut(NULL, end - flen, flen, cuts, flen - 1);
        assert_log(&bytewise, (const char *)ferry_buf_head(&one), ferry_buf_len(&one));
        if (i == 0)
            ASSERT_LOG(one, "H {\"size\":3} 3\nxyz\nE\nboundary");
        ferry_buf_free(&one);
        ferry_buf_free(&bytewise);
    }

    /* A prefix promising more than the page holds: wait, don't read on. */
    memcpy(end - 6, "\x64\0\0\0{\"", 6);
    one = parse_cut(NULL, end - 6, 6, NULL, 0);
    ASSERT_LOG(one, "partial");
    ferry_buf_free(&one);

    ferry_buf_free(&frame);
    munmap(map, 2 * (size_t)page);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hdr_empty),
        cmocka_unit_test(test_hdr_toobig),
        cmocka_unit_test(test_header_exactly_default_max),
        cmocka_unit_test(test_not_object),
        cmocka_unit_test(test_bad_json),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_overlong_utf8),
        cmocka_unit_test(test_duplicate_key),
        cmocka_unit_test(test_size_absent_and_zero),
        cmocka_unit_test(test_size_negative),
        cmocka_unit_test(test_size_fraction),
        cmocka_unit_test(test_size_type),
        cmocka_unit_test(test_size_range),
        cmocka_unit_test(test_body_limit),
        cmocka_unit_test(test_custom_size_key),
        cmocka_unit_test(test_every_split_multi_frame),
        cmocka_unit_test(test_every_split_binary_bodies),
        cmocka_unit_test(test_every_split_error_stream),
        cmocka_unit_test(test_body_past_4gib),
        cmocka_unit_test(test_sticky_error_until_reset),
        cmocka_unit_test(test_at_boundary),
        cmocka_unit_test(test_guard_page),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

