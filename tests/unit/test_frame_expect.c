/*
 * test_frame_expect.c - ferry_frame_parser_expect: a header expected byte
 * for byte is decoded once and shared, any other is decoded as usual, and
 * the shortcut never accepts what the limits would refuse.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "ferry/error.h"
#include "ferry/frame.h"
#include "buf.h"

static const char echo_hdr[] = "{\"type\":\"echo\",\"size\":3}";

/* One raw frame (prefix, header, body) appended to b. */
static void put_frame(struct ferry_buf *b, const char *json, const char *body)
{
    uint8_t prefix[4];

    ferry_le32_write(prefix, (uint32_t)strlen(json));
    assert_int_equal(ferry_buf_append(b, prefix, 4), 0);
    assert_int_equal(ferry_buf_append(b, json, strlen(json)), 0);
    assert_int_equal(ferry_buf_append(b, body, strlen(body)), 0);
}

/* Feed until the next HEADER event (or an error, returned as is); the
 * header, a new reference, goes to *h. */
static int next_header(struct ferry_frame_parser *p, const uint8_t **data, size_t *len,
                       json_t **h, uint64_t *body_size)
{
    for (;;) {
        struct ferry_frame_event ev;
        size_t used = 0;
        int r = ferry_frame_parser_feed(p, *data, *len, &used, &ev);

        *data += used;
        *len -= used;
        if (r < 0)
            return r;
        assert_int_not_equal(r, FERRY_FRAME_NEED_MORE);
        if (r == FERRY_FRAME_HEADER) {
            *h = ev.header;
            *body_size = ev.body_size;
            return r;
        }
    }
}

static void test_expected_header_is_shared(void **state)
{
    struct ferry_frame_parser *p = NULL;
    struct ferry_buf b;
    const uint8_t *data;
    size_t len;
    json_t *h1 = NULL, *h2 = NULL, *h3 = NULL;
    uint64_t size = 0;
    (void)state;

    ferry_buf_init(&b, 0);
    put_frame(&b, echo_hdr, "abc");
    put_frame(&b, "{\"type\":\"other\",\"size\":2}", "de");
    put_frame(&b, echo_hdr, "fgh");
    assert_int_equal(ferry_frame_parser_new(NULL, &p), 0);
    assert_int_equal(ferry_frame_parser_expect(p, echo_hdr, strlen(echo_hdr)), 0);
    data = ferry_buf_head(&b);
    len = ferry_buf_len(&b);

    assert_int_equal(next_header(p, &data, &len, &h1, &size), FERRY_FRAME_HEADER);
    assert_int_equal(size, 3);
    assert_string_equal(json_string_value(json_object_get(h1, "type")), "echo");

    assert_int_equal(next_header(p, &data, &len, &h2, &size), FERRY_FRAME_HEADER);
    assert_int_equal(size, 2);
    assert_string_equal(json_string_value(json_object_get(h2, "type")), "other");
    assert_ptr_not_equal(h1, h2);

    /* The same bytes again: the same decoded object, one more reference. */
    assert_int_equal(next_header(p, &data, &len, &h3, &size), FERRY_FRAME_HEADER);
    assert_int_equal(size, 3);
    assert_ptr_equal(h1, h3);

    json_decref(h1);
    json_decref(h2);
    json_decref(h3);
    ferry_frame_parser_free(p);
    ferry_buf_free(&b);
}

static void test_expect_refuses_what_decoding_refuses(void **state)
{
    struct ferry_frame_parser *p = NULL;
    static const char dup[] = "{\"a\":1,\"a\":2}";
    (void)state;

    assert_int_equal(ferry_frame_parser_new(NULL, &p), 0);
    assert_int_equal(ferry_frame_parser_expect(p, "{\"a\":", 5), FERRY_EJSON);
    assert_int_equal(ferry_frame_parser_expect(p, dup, strlen(dup)), FERRY_EDUP_KEY);
    assert_int_equal(ferry_frame_parser_expect(p, "[1]", 3), FERRY_ENOT_OBJECT);
    /* NULL (and empty) forget, and succeed. */
    assert_int_equal(ferry_frame_parser_expect(p, NULL, 0), 0);
    ferry_frame_parser_free(p);
}

/* New limits decode the expectation again: a smaller body limit makes the
 * shortcut refuse, as decoding would; a new size key changes the size. */
static void test_limits_apply_to_expected(void **state)
{
    struct ferry_frame_limits small = { .max_body = 2 };
    struct ferry_frame_limits by_n = { .size_key = "n" };
    static const char with_n[] = "{\"size\":3,\"n\":1}";
    struct ferry_frame_parser *p = NULL;
    struct ferry_buf b;
    const uint8_t *data;
    size_t len;
    json_t *h = NULL;
    uint64_t size = 0;
    (void)state;

    ferry_buf_init(&b, 0);
    put_frame(&b, echo_hdr, "abc");
    assert_int_equal(ferry_frame_parser_new(NULL, &p), 0);
    assert_int_equal(ferry_frame_parser_expect(p, echo_hdr, strlen(echo_hdr)), 0);
    ferry_frame_parser_set_limits(p, &small);
    data = ferry_buf_head(&b);
    len = ferry_buf_len(&b);
    assert_int_equal(next_header(p, &data, &len, &h, &size), FERRY_EBODY_TOOBIG);
    ferry_frame_parser_free(p);
    ferry_buf_free(&b);

    ferry_buf_init(&b, 0);
    put_frame(&b, with_n, "x");
    assert_int_equal(ferry_frame_parser_new(NULL, &p), 0);
    assert_int_equal(ferry_frame_parser_expect(p, with_n, strlen(with_n)), 0);
    ferry_frame_parser_set_limits(p, &by_n);
    /* It survives a reset too. */
    ferry_frame_parser_reset(p);
    data = ferry_buf_head(&b);
    len = ferry_buf_len(&b);
    assert_int_equal(next_header(p, &data, &len, &h, &size), FERRY_FRAME_HEADER);
    assert_int_equal(size, 1);
    json_decref(h);
    ferry_frame_parser_free(p);
    ferry_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expected_header_is_shared),
        cmocka_unit_test(test_expect_refuses_what_decoding_refuses),
        cmocka_unit_test(test_limits_apply_to_expected),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
