/*
 * test_frame_io.c - the frame codec's output and blocking side: encoding
 * (round trip, the protocol's example, errors), the blocking helpers over
 * a socketpair (fix_sock), and the error strings.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "ferry/error.h"
#include "ferry/frame.h"
#include "ferry/transport.h"
#include "fix_sock.h"
#include "fix_util.h"
#include "buf.h"


/* ---- encoding ------------------------------------------------------------ */

static void test_encode_round_trip(void **state)
{
    json_t *h = json_pack("{s:s, s:[i,i], s:s}", "cmd", "put", "n", 1, 2, "name", "r\xc3\xa9sum\xc3\xa9");
    json_t *back = NULL;
    uint8_t *out = NULL;
    size_t out_len = 0;
    uint64_t size = 0;

    assert_non_null(h);
    assert_int_equal(ferry_frame_encode(h, 42, NULL, &out, &out_len), 0);
    assert_int_equal(json_integer_value(json_object_get(h, "size")), 42);
    assert_int_equal(ferry_le32_read(out), out_len - 4);
    /* Compact JSON, in insertion order. */
    assert_memory_equal(out + 4, "{\"cmd\":\"put\",\"n\":[1,2],\"name\":\"r\xc3\xa9sum\xc3\xa9\",\"size\":42}",
                        out_len - 4);
    assert_int_equal(ferry_frame_decode_header(out + 4, out_len - 4, NULL, &back, &size), 0);
    assert_true(json_equal(h, back));
    assert_int_equal(size, 42);
    json_decref(back);
    free(out);

    /* Body 0 adds no size member. */
    json_t *bare = json_pack("{s:s}", "cmd", "ls");
    assert_int_equal(ferry_frame_encode(bare, 0, NULL, &out, &out_len), 0);
    assert_int_equal(out_len, 4 + 12);
    assert_memory_equal(out, "\x0c\0\0\0{\"cmd\":\"ls\"}", 16);
    free(out);

    /* Custom size member, biggest legal size. */
    struct ferry_frame_limits l = { .size_key = "total_size" };
    assert_int_equal(ferry_frame_encode(bare, INT64_MAX, &l, &out, &out_len), 0);
    assert_int_equal(ferry_frame_decode_header(out + 4, out_len - 4, &l, &back, &size), 0);
    assert_int_equal(size, INT64_MAX);
    assert_null(json_object_get(back, "size"));
    json_decref(back);
    free(out);

    json_decref(bare);
    json_decref(h);
}

/* The worked example in docs/PROTOCOL.md, byte for byte. */
static void test_encode_protocol_example(void **state)
{
    static const uint8_t want[] = {
        0x16, 0x00, 0x00, 0x00, 0x7b, 0x22, 0x63, 0x6d, 0x64, 0x22, 0x3a, 0x22, 0x70, 0x75, 0x74, 0x22,
        0x2c, 0x22, 0x73, 0x69, 0x7a, 0x65, 0x22, 0x3a, 0x35, 0x7d, 0x68, 0x65, 0x6c, 0x6c, 0x6f,
    };
    json_t *h = json_pack("{s:s}", "cmd", "put");
    uint8_t *out = NULL;
    size_t out_len = 0;

    assert_int_equal(ferry_frame_encode(h, 5, NULL, &out, &out_len), 0);
    assert_int_equal(out_len, 26);
    assert_memory_equal(out, want, 26);
    assert_memory_equal(want + 26, "hello", 5);
    free(out);
    json_decref(h);
}

static void test_encode_errors(void **state)
{
    struct ferry_frame_limits small = { .max_header = 16, .max_body = 100 };
    json_t *h = json_pack("{s:s}", "a", "12345678");   /* exactly 16 bytes */
    json_t *arr = json_array();
    uint8_t *out = (uint8_t *)"unchanged";
    size_t out_len = 7;

    assert_int_equal(ferry_frame_encode(h, 0, &small, &out, &out_len), 0);
    assert_int_equal(out_len, 20);
    free(out);
    /* Adding the size member pushes it over. */
    assert_int_equal(ferry_frame_encode(h, 5, &small, &out, &out_len), FERRY_EHDR_TOOBIG);
    assert_null(out);
    assert_int_equal(out_len, 0);
    json_object_del(h, "size");

    assert_int_equal(ferry_frame_encode(h, 101, &small, &out, &out_len), FERRY_EBODY_TOOBIG);
    assert_int_equal(ferry_frame_encode(h, (uint64_t)INT64_MAX + 1, NULL, &out, &out_len),
                     FERRY_ESIZE_RANGE);
    assert_int_equal(ferry_frame_encode(h, UINT64_MAX, NULL, &out, &out_len), FERRY_ESIZE_RANGE);
    assert_int_equal(ferry_frame_encode(arr, 0, NULL, &out, &out_len), FERRY_ENOT_OBJECT);

    /* A stale size with no body would leave the peer waiting. */
    json_object_set_new(h, "size", json_integer(3));
    assert_int_equal(ferry_frame_encode(h, 0, NULL, &out, &out_len), -EINVAL);
    json_object_set_new(h, "size", json_string("3"));
    assert_int_equal(ferry_frame_encode(h, 0, NULL, &out, &out_len), FERRY_ESIZE_TYPE);
    json_object_set_new(h, "size", json_integer(0));
    assert_int_equal(ferry_frame_encode(h, 0, NULL, &out, &out_len), 0);
    free(out);

    json_decref(arr);
    json_decref(h);
}

/* ---- blocking helpers ---------------------------------------------------- */

static void send_raw(struct ferry_transport *t, const void *data, size_t len)
{
    assert_int_equal(ferry_transport_write_full(t, data, len), 0);
}

static void test_blocking_round_trip(void **state)
{
    struct fix_pair p;
    json_t *h = json_pack("{s:s}", "cmd", "put");
    json_t *got = NULL;
    uint64_t size = 0;
    char body[6];

    fix_pair_open(&p);
    assert_int_equal(ferry_frame_write(p.a, h, "hello", 5, NULL), 0);
    assert_int_equal(ferry_frame_write(p.a, h, NULL, 0, NULL), -EINVAL);   /* stale size */
    json_object_del(h, "size");
    assert_int_equal(ferry_frame_write(p.a, h, NULL, 0, NULL), 0);
    assert_int_equal(ferry_frame_write_header(p.a, h, 3, NULL), 0);
    send_raw(p.a, "abc", 3);

    assert_int_equal(ferry_frame_read(p.b, NULL, &got, &size), 0);
    assert_int_equal(size, 5);
    assert_string_equal(json_string_value(json_object_get(got, "cmd")), "put");
    json_decref(got);
    assert_int_equal(ferry_transport_read_full(p.b, body, 5), 0);
    assert_memory_equal(body, "hello", 5);

    assert_int_equal(ferry_frame_read(p.b, NULL, &got, &size), 0);
    assert_int_equal(size, 0);
    assert_null(json_object_get(got, "size"));
    json_decref(got);

    assert_int_equal(ferry_frame_read(p.b, NULL, &got, &size), 0);
    assert_int_equal(size, 3);
    json_decref(got);
    assert_int_equal(ferry_transport_read_full(p.b, body, 3), 0);
    assert_memory_equal(body, "abc", 3);

    /* Closing here is a clean end. */
    assert_int_equal(ferry_transport_shutdown_write(p.a), 0);
    assert_int_equal(ferry_frame_read(p.b, NULL, &got, &size), FERRY_EEOF);
    assert_null(got);
    json_decref(h);
    fix_pair_close(&p);
}

struct writer_arg {
    struct ferry_transport *t;
    const uint8_t *body;
    size_t body_len;
    int rc;
};

static void *writer_main(void *argp)
{
    struct writer_arg *w = argp;
    json_t *h = json_pack("{s:s}", "cmd", "big");

    w->rc = ferry_frame_write(w->t, h, w->body, w->body_len, NULL);
    json_decref(h);
    return NULL;
}

static void test_blocking_short_writes(void **state)
{
    const size_t len = 4u << 20;
    uint8_t *body = malloc(len), *got_body = malloc(len);
    int small = 4096;
    struct writer_arg w;
    pthread_t thread;
    struct fix_pair p;
    json_t *got;
    uint64_t size;

    assert_non_null(body);
    assert_non_null(got_body);
    for (size_t i = 0; i < len; i++)
        body[i] = (uint8_t)(i ^ (i >> 8) ^ (i >> 16));
    fix_pair_open(&p);
    assert_int_equal(setsockopt(ferry_transport_fd(p.a), SOL_SOCKET, SO_SNDBUF, &small,
                                sizeof small), 0);
    assert_int_equal(setsockopt(ferry_transport_fd(p.b), SOL_SOCKET, SO_RCVBUF, &small,
                                sizeof small), 0);
    /* With a timeout the writer sends with MSG_DONTWAIT after poll(), so a
     * small socket buffer yields genuinely short writes to resume from. */
    ferry_transport_set_timeout(p.a, 60000);

    w = (struct writer_arg){ .t = p.a, .body = body, .body_len = len, .rc = 1 };
    assert_int_equal(pthread_create(&thread, NULL, writer_main, &w), 0);
    assert_int_equal(ferry_frame_read(p.b, NULL, &got, &size), 0);
    assert_int_equal(size, len);
    json_decref(got);
    /* Read in odd-sized pieces to interleave with the writer differently. */
    for (size_t off = 0; off < len;) {
        size_t n = len - off < 7777 ? len - off : 7777;

        assert_int_equal(ferry_transport_read_full(p.b, got_body + off, n), 0);
        off += n;
    }
    assert_int_equal(pthread_join(thread, NULL), 0);
    assert_int_equal(w.rc, 0);
    assert_memory_equal(got_body, body, len);

    fix_pair_close(&p);
    free(body);
    free(got_body);
}

/* Write `len` raw bytes, close, and read a frame: what does it say? */
static int read_after_close(const void *raw, size_t len)
{
    struct fix_pair p;
    json_t *got = NULL;
    uint64_t size;
    int rc;

    fix_pair_open(&p);
    send_raw(p.a, raw, len);
    ferry_transport_free(p.a);
    p.a = NULL;
    rc = ferry_frame_read(p.b, NULL, &got, &size);
    if (rc == 0)
        json_decref(got);
    else
        assert_null(got);
    fix_pair_close(&p);
    return rc;
}

static void test_blocking_peer_close(void **state)
{
    assert_int_equal(read_after_close("", 0), FERRY_EEOF);
    assert_int_equal(read_after_close("\x02", 1), FERRY_ETRUNCATED);
    assert_int_equal(read_after_close("\x02\0\0", 3), FERRY_ETRUNCATED);
    assert_int_equal(read_after_close("\x02\0\0\0", 4), FERRY_ETRUNCATED);
    assert_int_equal(read_after_close("\x02\0\0\0{", 5), FERRY_ETRUNCATED);
    assert_int_equal(read_after_close("\x02\0\0\0{}", 6), 0);
}

static void test_blocking_header_errors(void **state)
{
    assert_int_equal(read_after_close("\0\0\0\0", 4), FERRY_EHDR_EMPTY);
    /* Rejected from the prefix alone: nothing else was sent. */
    assert_int_equal(read_after_close("\xff\xff\xff\xff", 4), FERRY_EHDR_TOOBIG);
    assert_int_equal(read_after_close("\x01\x00\x01\x00", 4), FERRY_EHDR_TOOBIG);
    assert_int_equal(read_after_close("\x0d\0\0\0{\"a\":1,\"a\":2}", 17), FERRY_EDUP_KEY);
    assert_int_equal(read_after_close("\x02\0\0\0[]", 6), FERRY_ENOT_OBJECT);
    assert_int_equal(read_after_close("\x0b\0\0\0{\"size\":-1}", 15), FERRY_ESIZE_NEG);
}

/* ---- error strings ------------------------------------------------------- */

static void test_error_strings(void **state)
{
#define CHECK_(name, value, msg)                                               \
    assert_string_equal(ferry_err_name(value), "FERRY_E" #name);               \
    assert_string_equal(ferry_strerror(value), msg);                          \
    assert_int_equal(FERRY_E##name, value);
    FERRY_ERRNO_MAP(CHECK_)
#undef CHECK_
    /* Spot checks written out, in case the generator itself goes wrong. */
    assert_string_equal(ferry_err_name(-4004), "FERRY_EHDR_TOOBIG");
    assert_string_equal(ferry_err_name(-4014), "FERRY_EBODY_TOOBIG");
    assert_string_equal(ferry_strerror(-4002), "connection closed in the middle of a frame");

    assert_string_equal(ferry_err_name(-ECONNRESET), "ECONNRESET");
    assert_string_equal(ferry_err_name(-EPIPE), "EPIPE");
    assert_string_equal(ferry_err_name(-ETIMEDOUT), "ETIMEDOUT");
    assert_string_equal(ferry_strerror(-ECONNRESET), "Connection reset by peer");
    assert_string_equal(ferry_strerror(-ENOMEM), "Cannot allocate memory");

    assert_string_equal(ferry_err_name(0), "OK");
    assert_string_equal(ferry_err_name(1), "UNKNOWN");
    assert_string_equal(ferry_err_name(-3999), "UNKNOWN");
    assert_string_equal(ferry_err_name(-100000), "UNKNOWN");
    assert_string_equal(ferry_strerror(-100000), "unknown error");
    assert_string_equal(ferry_strerror(7), "unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_round_trip),
        cmocka_unit_test(test_encode_protocol_example),
        cmocka_unit_test(test_encode_errors),
        cmocka_unit_test(test_blocking_round_trip),
        cmocka_unit_test(test_blocking_short_writes),
        cmocka_unit_test(test_blocking_peer_close),
        cmocka_unit_test(test_blocking_header_errors),
        cmocka_unit_test(test_error_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

