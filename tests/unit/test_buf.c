/*
 * test_buf.c - the byte queue, slices, iovec stepping and LE32 helpers.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "buf.h"

static void test_empty(void **state)
{
    struct ferry_buf b;

    ferry_buf_init(&b, 0);
    assert_int_equal(ferry_buf_len(&b), 0);
    assert_null(b.data);
    assert_int_equal(b.max, SIZE_MAX / 2);
    ferry_buf_consume(&b, 0);
    ferry_buf_clear(&b);
    ferry_buf_free(&b);
    ferry_buf_burn(&b);
}

static void test_append_consume(void **state)
{
    struct ferry_buf b;
    char out[16];

    ferry_buf_init(&b, 0);
    assert_int_equal(ferry_buf_append(&b, "hello ", 6), 0);
    assert_int_equal(ferry_buf_append(&b, "world", 5), 0);
    assert_int_equal(ferry_buf_len(&b), 11);
    assert_memory_equal(ferry_buf_head(&b), "hello world", 11);
    ferry_buf_consume(&b, 6);
    assert_int_equal(ferry_buf_len(&b), 5);
    assert_memory_equal(ferry_buf_head(&b), "world", 5);
    memcpy(out, ferry_buf_head(&b), 5);
    ferry_buf_consume(&b, 5);
    assert_int_equal(ferry_buf_len(&b), 0);
    /* An emptied queue starts over at offset 0. */
    assert_int_equal(b.pos, 0);
    assert_int_equal(b.len, 0);
    ferry_buf_free(&b);
}

static void test_growth_is_geometric(void **state)
{
    struct ferry_buf b;
    unsigned reallocs = 0;
    size_t last_cap = 0;

    ferry_buf_init(&b, 0);
    for (int i = 0; i < 100000; i++) {
        assert_int_equal(ferry_buf_append(&b, "x", 1), 0);
        if (b.cap != last_cap) {
            reallocs++;
            last_cap = b.cap;
        }
    }
    assert_int_equal(ferry_buf_len(&b), 100000);
    /* Doubling from 64 reaches 100000 in about 11 steps, linear in 100000. */
    assert_true(reallocs <= 12);
    ferry_buf_free(&b);
}

static void test_compaction(void **state)
{
    struct ferry_buf b;
    uint8_t chunk[48];
    size_t cap;

    memset(chunk, 'a', sizeof chunk);
    ferry_buf_init(&b, 0);
    assert_int_equal(ferry_buf_append(&b, chunk, sizeof chunk), 0);
    cap = b.cap;
    ferry_buf_consume(&b, 40);
    /* 8 live bytes + 48 fit in the old allocation once moved to the front. */
    memset(chunk, 'b', sizeof chunk);
    assert_int_equal(ferry_buf_append(&b, chunk, sizeof chunk), 0);
    assert_int_equal(b.cap, cap);
    assert_int_equal(b.pos, 0);
    assert_int_equal(ferry_buf_len(&b), 56);
    assert_memory_equal(ferry_buf_head(&b), "aaaaaaaabbbb", 12);
    ferry_buf_free(&b);
}

static void test_grow_with_offset(void **state)
{
    struct ferry_buf b;
    uint8_t big[1000];

    ferry_buf_init(&b, 0);
    assert_int_equal(ferry_buf_append(&b, "0123456789", 10), 0);
    ferry_buf_consume(&b, 3);
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)i;
    assert_int_equal(ferry_buf_append(&b, big, sizeof big), 0);
    assert_int_equal(ferry_buf_len(&b), 1007);
    assert_memory_equal(ferry_buf_head(&b), "3456789", 7);
    assert_memory_equal(ferry_buf_head(&b) + 7, big, sizeof big);
    ferry_buf_free(&b);
}

static void test_max_is_a_ceiling(void **state)
{
    struct ferry_buf b;

    ferry_buf_init(&b, 100);
    assert_int_equal(ferry_buf_reserve(&b, 101), -ENOBUFS);
    assert_null(b.data);   /* refused before allocating anything */
    assert_int_equal(ferry_buf_reserve(&b, 100), 0);
    assert_true(b.cap <= 100);
    assert_int_equal(ferry_buf_append(&b, "abcdefghij", 10), 0);
    assert_int_equal(ferry_buf_reserve(&b, 91), -ENOBUFS);
    assert_int_equal(ferry_buf_reserve(&b, 90), 0);
    /* Consumed bytes give their room back, as contiguous tail room even
     * when growing up to the ceiling. */
    ferry_buf_consume(&b, 5);
    assert_int_equal(ferry_buf_reserve(&b, 95), 0);
    assert_true(ferry_buf_tailroom(&b) >= 95);
    assert_true(b.cap <= 100);
    assert_memory_equal(ferry_buf_head(&b), "fghij", 5);
    assert_int_equal(ferry_buf_append(&b, NULL, 0), 0);
    ferry_buf_free(&b);
    assert_int_equal(b.max, 100);
}

/* Growing right up to the ceiling with consumed bytes at the front: the
 * whole request must be contiguous at the tail. */
static void test_grow_to_ceiling_with_offset(void **state)
{
    struct ferry_buf b;

    ferry_buf_init(&b, 100);
    assert_int_equal(ferry_buf_append(&b, "abcdefghij", 10), 0);
    assert_true(b.cap < 100);
    ferry_buf_consume(&b, 5);
    assert_int_equal(ferry_buf_reserve(&b, 95), 0);
    assert_int_equal(b.cap, 100);
    assert_true(ferry_buf_tailroom(&b) >= 95);
    assert_memory_equal(ferry_buf_head(&b), "fghij", 5);
    ferry_buf_free(&b);
}

static void test_size_overflow(void **state)
{
    struct ferry_buf b;

    ferry_buf_init(&b, SIZE_MAX);
    assert_int_equal(ferry_buf_append(&b, "abc", 3), 0);
    /* avail + n wraps past SIZE_MAX: must be refused, not allocated small. */
    assert_int_equal(ferry_buf_reserve(&b, SIZE_MAX), -ENOBUFS);
    assert_int_equal(ferry_buf_reserve(&b, SIZE_MAX - 2), -ENOBUFS);
    assert_int_equal(ferry_buf_len(&b), 3);
    assert_memory_equal(ferry_buf_head(&b), "abc", 3);
    ferry_buf_free(&b);

    ferry_buf_init(&b, 0);
    assert_int_equal(ferry_buf_reserve(&b, SIZE_MAX / 2 + 1), -ENOBUFS);
    ferry_buf_free(&b);
}

static void test_tail_commit(void **state)
{
    struct ferry_buf b;

    ferry_buf_init(&b, 0);
    assert_int_equal(ferry_buf_reserve(&b, 5), 0);
    assert_true(ferry_buf_tailroom(&b) >= 5);
    memcpy(ferry_buf_tail(&b), "abcde", 5);
    ferry_buf_commit(&b, 3);
    assert_int_equal(ferry_buf_len(&b), 3);
    assert_memory_equal(ferry_buf_head(&b), "abc", 3);
    ferry_buf_burn(&b);
    assert_null(b.data);
    assert_int_equal(ferry_buf_len(&b), 0);
}

static void test_slices(void **state)
{
    const char *text = "frame bytes";
    struct ferry_slice s = ferry_slice_make(text, strlen(text));
    struct ferry_slice h;

    h = ferry_slice_head(s, 5);
    assert_int_equal(h.len, 5);
    assert_memory_equal(h.p, "frame", 5);
    ferry_slice_advance(&s, 6);
    assert_int_equal(s.len, 5);
    assert_memory_equal(s.p, "bytes", 5);
    ferry_slice_advance(&s, 5);
    assert_int_equal(s.len, 0);

    s = ferry_slice_make(NULL, 0);
    ferry_slice_advance(&s, 0);
    assert_null(s.p);
    assert_int_equal(ferry_slice_head(s, 0).len, 0);
}

static void test_le32(void **state)
{
    uint8_t b[4];

    ferry_le32_write(b, 0x12345678u);
    assert_memory_equal(b, "\x78\x56\x34\x12", 4);
    assert_int_equal(ferry_le32_read(b), 0x12345678u);
    ferry_le32_write(b, 0xFFFFFFFFu);
    assert_int_equal(ferry_le32_read(b), 0xFFFFFFFFu);
    assert_int_equal(ferry_le32_read((const uint8_t *)"\x01\x00\x00\x80"), 0x80000001u);
}

static void test_iov_advance(void **state)
{
    char a[] = "abc", c[] = "defgh";
    struct iovec vec[4] = {
        { a, 3 }, { NULL, 0 }, { c, 5 }, { NULL, 0 },
    };
    struct iovec *iov = vec;
    int cnt = 4;

    ferry_iov_advance(&iov, &cnt, 0);
    assert_ptr_equal(iov, &vec[0]);
    assert_int_equal(cnt, 4);

    ferry_iov_advance(&iov, &cnt, 2);
    assert_int_equal(cnt, 4);
    assert_ptr_equal(iov->iov_base, a + 2);
    assert_int_equal(iov->iov_len, 1);

    /* Finishing "abc" also steps over the empty entry after it. */
    ferry_iov_advance(&iov, &cnt, 1);
    assert_ptr_equal(iov, &vec[2]);
    assert_int_equal(cnt, 2);

    ferry_iov_advance(&iov, &cnt, 4);
    assert_ptr_equal(iov->iov_base, c + 4);
    assert_int_equal(iov->iov_len, 1);

    ferry_iov_advance(&iov, &cnt, 1);
    assert_int_equal(cnt, 0);

    /* Across several entries at once. */
    struct iovec more[3] = { { a, 3 }, { c, 5 }, { a, 3 } };
    iov = more;
    cnt = 3;
    ferry_iov_advance(&iov, &cnt, 9);
    assert_int_equal(cnt, 1);
    assert_ptr_equal(iov->iov_base, a + 1);
    assert_int_equal(iov->iov_len, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_append_consume),
        cmocka_unit_test(test_growth_is_geometric),
        cmocka_unit_test(test_compaction),
        cmocka_unit_test(test_grow_with_offset),
        cmocka_unit_test(test_max_is_a_ceiling),
        cmocka_unit_test(test_grow_to_ceiling_with_offset),
        cmocka_unit_test(test_size_overflow),
        cmocka_unit_test(test_tail_commit),
        cmocka_unit_test(test_slices),
        cmocka_unit_test(test_le32),
        cmocka_unit_test(test_iov_advance),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
