/*
 * test_digest.c - the file service's checksums (src/shared/digest.c).
 *
 * sha256 is checked against the published FIPS 180-2 vectors; xxh3-128
 * against libxxhash's own one-shot XXH3_128bits(), written out here by hand
 * as the canonical form (high 64 bits first, big-endian), so a byte-order
 * slip in digest.c cannot hide behind the same helper on both sides.  The
 * file tests get a fresh mkdtemp directory each and, like every ferry unit
 * test, check that the process has as many descriptors after as before.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "unit_util.h"
#include "fix_tmp.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#include "ferry/error.h"
#include "digest.h"

#define MIB (1024 * 1024)

/* ---- helpers ------------------------------------------------------------------ */

/* A pattern with no short period, so a slice hashed twice or skipped
 * changes the result. */
static unsigned char *pattern(size_t len)
{
    unsigned char *p = malloc(len ? len : 1);
    uint32_t x = 2463534242u;

    assert_non_null(p);
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (unsigned char)(x >> 24);
    }
    return p;
}

/* What xxh3-128 of data must print as, independently of digest.c. */
static void xxh_expected(const void *data, size_t len, char out[DIGEST_HEX_MAX])
{
    XXH128_hash_t h = XXH3_128bits(data, len);

    snprintf(out, DIGEST_HEX_MAX, "%016" PRIx64 "%016" PRIx64,
             (uint64_t)h.high64, (uint64_t)h.low64);
}

/* One-shot through the module. */
static void one_shot(enum digest_alg alg, const void *data, size_t len,
                     char out[DIGEST_HEX_MAX])
{
    struct digest *d = digest_new(alg);

    assert_non_null(d);
    assert_int_equal(digest_alg(d), alg);
    digest_update(d, data, len);
    digest_hex(d, out);
    digest_free(d);
}

/* ---- sha256 ------------------------------------------------------------------- */

static void test_sha256_vectors(void **state)
{
    static const struct { const char *in, *hex; } v[] = {
        { "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
        { "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
        { "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
    };
    char hex[DIGEST_HEX_MAX];

    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        one_shot(DIGEST_SHA256, v[i].in, strlen(v[i].in), hex);
        assert_string_equal(hex, v[i].hex);
    }
}

/* A million 'a's (the FIPS long vector), fed in uneven pieces. */
static void test_sha256_million_a(void **state)
{
    struct digest *d = digest_new(DIGEST_SHA256);
    char *a = malloc(1000000);
    char hex[DIGEST_HEX_MAX];
    size_t off = 0, step = 1;

    assert_non_null(d);
    assert_non_null(a);
    memset(a, 'a', 1000000);
    while (off < 1000000) {
        size_t n = step < 1000000 - off ? step : 1000000 - off;
        digest_update(d, a + off, n);
        off += n;
        step = step * 3 + 1;
    }
    digest_hex(d, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    digest_free(d);
    free(a);
}

/* ---- xxh3-128 ------------------------------------------------------------------ */

/* Lengths on both sides of xxh3's internal boundaries (16, 128, 240: the
 * short-input paths; then the striped path; 1 KiB blocks). */
static const size_t xxh_lengths[] = {
    0, 1, 3, 4, 8, 9, 16, 17, 128, 129, 240, 241, 1023, 1024, 1025, 65536, MIB,
};

static void test_xxh3_matches_library(void **state)
{
    unsigned char *p = pattern(MIB);
    char want[DIGEST_HEX_MAX], got[DIGEST_HEX_MAX];

    for (size_t i = 0; i < sizeof xxh_lengths / sizeof xxh_lengths[0]; i++) {
        xxh_expected(p, xxh_lengths[i], want);
        one_shot(DIGEST_XXH3_128, p, xxh_lengths[i], got);
        assert_int_equal(strlen(got), 32);
        assert_string_equal(got, want);
    }
    free(p);
}

/* Published: xxh128sum of an empty file. */
static void test_xxh3_empty_vector(void **state)
{
    char hex[DIGEST_HEX_MAX];

    one_shot(DIGEST_XXH3_128, "", 0, hex);
    assert_string_equal(hex, "99aa06d3014798d86001c324468d497f");
    /* A NULL pointer with length 0 is an empty update, not a crash. */
    one_shot(DIGEST_XXH3_128, NULL, 0, hex);
    assert_string_equal(hex, "99aa06d3014798d86001c324468d497f");
}

/* Streaming in odd-sized pieces equals one piece, for both algorithms and
 * every length above. */
static void test_pieces_equal_whole(void **state)
{
    static const size_t steps[] = { 1, 7, 63, 241, 4099 };
    static const enum digest_alg algs[] = { DIGEST_XXH3_128, DIGEST_SHA256 };
    unsigned char *p = pattern(MIB);
    char whole[DIGEST_HEX_MAX], pieces[DIGEST_HEX_MAX];

    for (size_t a = 0; a < 2; a++) {
        for (size_t i = 0; i < sizeof xxh_lengths / sizeof xxh_lengths[0]; i++) {
            size_t len = xxh_lengths[i];

            one_shot(algs[a], p, len, whole);
            for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
                struct digest *d;
                size_t off = 0;

                /* 1-byte steps over a MiB would only cost time. */
                if (steps[s] == 1 && len > 65536)
                    continue;
                d = digest_new(algs[a]);
                assert_non_null(d);
                while (off < len) {
                    size_t n = steps[s] < len - off ? steps[s] : len - off;
                    digest_update(d, p + off, n);
                    digest_update(d, p + off, 0);   /* empty updates change nothing */
                    off += n;
                }
                digest_hex(d, pieces);
                assert_string_equal(pieces, whole);
                digest_free(d);
            }
        }
    }
    free(p);
}

/* digest_hex peeks: the running checksum goes on afterwards, and a second
 * hex with nothing added in between is the same. */
static void test_hex_does_not_end(void **state)
{
    static const enum digest_alg algs[] = { DIGEST_XXH3_128, DIGEST_SHA256 };
    unsigned char *p = pattern(5000);
    char mid[DIGEST_HEX_MAX], again[DIGEST_HEX_MAX];
    char want[DIGEST_HEX_MAX], got[DIGEST_HEX_MAX], first[DIGEST_HEX_MAX];

    for (size_t a = 0; a < 2; a++) {
        struct digest *d = digest_new(algs[a]);

        assert_non_null(d);
        digest_update(d, p, 1234);
        digest_hex(d, mid);
        digest_hex(d, again);
        assert_string_equal(mid, again);
        one_shot(algs[a], p, 1234, first);
        assert_string_equal(mid, first);

        digest_update(d, p + 1234, 5000 - 1234);
        digest_hex(d, got);
        one_shot(algs[a], p, 5000, want);
        assert_string_equal(got, want);
        assert_string_not_equal(got, mid);
        digest_free(d);
    }
    free(p);
}

static void test_reset(void **state)
{
    static const enum digest_alg algs[] = { DIGEST_XXH3_128, DIGEST_SHA256 };
    char fresh[DIGEST_HEX_MAX], got[DIGEST_HEX_MAX], want[DIGEST_HEX_MAX];

    for (size_t a = 0; a < 2; a++) {
        struct digest *d = digest_new(algs[a]);

        assert_non_null(d);
        digest_hex(d, fresh);
        digest_update(d, "garbage", 7);
        digest_reset(d);
        digest_hex(d, got);
        assert_string_equal(got, fresh);
        assert_int_equal(digest_alg(d), algs[a]);   /* same algorithm */
        digest_update(d, "abc", 3);
        digest_hex(d, got);
        one_shot(algs[a], "abc", 3, want);
        assert_string_equal(got, want);
        digest_free(d);
    }
    digest_free(NULL);
}

/* ---- names and comparison --------------------------------------------------------- */

static void test_parse_and_name(void **state)
{
    static const char *const bad[] = {
        "", "XXH3-128", "SHA256", "md5", "xxh3", "xxh3-128 ", " sha256", "sha-256",
        "xxh128", "sha256\n",
    };
    enum digest_alg alg = (enum digest_alg)42;

    assert_int_equal(digest_parse("xxh3-128", &alg), 0);
    assert_int_equal(alg, DIGEST_XXH3_128);
    assert_int_equal(digest_parse("sha256", &alg), 0);
    assert_int_equal(alg, DIGEST_SHA256);

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        alg = (enum digest_alg)42;
        assert_int_equal(digest_parse(bad[i], &alg), -EINVAL);
        assert_int_equal(alg, 42);   /* left alone on failure */
    }
    assert_int_equal(digest_parse(NULL, &alg), -EINVAL);

    /* name and parse round-trip. */
    assert_string_equal(digest_name(DIGEST_XXH3_128), "xxh3-128");
    assert_string_equal(digest_name(DIGEST_SHA256), "sha256");
    assert_int_equal(digest_parse(digest_name(DIGEST_SHA256), &alg), 0);
    assert_int_equal(alg, DIGEST_SHA256);
}

static void test_hex_equal(void **state)
{
    const char *a = "99aa06d3014798d86001c324468d497f";
    char b[DIGEST_HEX_MAX];

    strcpy(b, a);
    assert_int_equal(digest_hex_equal(a, b), 1);
    b[31] = 'e';                                 /* last digit */
    assert_int_equal(digest_hex_equal(a, b), 0);
    strcpy(b, a);
    b[0] = '8';                                  /* first digit */
    assert_int_equal(digest_hex_equal(a, b), 0);
    /* A prefix is not a match, either way round. */
    strcpy(b, a);
    b[16] = '\0';
    assert_int_equal(digest_hex_equal(a, b), 0);
    assert_int_equal(digest_hex_equal(b, a), 0);
    /* An xxh3-128 against a sha256 never matches. */
    assert_int_equal(digest_hex_equal(a,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"), 0);
    /* Empty never equals anything, itself included: digest_hex writes ""
     * when it fails, and that must not pass a check. */
    assert_int_equal(digest_hex_equal("", ""), 0);
    assert_int_equal(digest_hex_equal("", a), 0);
    assert_int_equal(digest_hex_equal(a, ""), 0);
}

/* ---- files ------------------------------------------------------------------------- */

struct ffx {
    char dir[64];
    char path[128];
    int fd;
    unsigned char *data;
    size_t len;
    int fds_before;
};

/* A temp file holding 1 MiB + 17 bytes of the pattern (not a multiple of
 * any buffer size), opened read-only. */
static int setup_file(void **state)
{
    struct ffx *f = calloc(1, sizeof *f);
    int w;

    if (!f)
        return -1;
    f->fds_before = count_fds();
    if (fix_tmpdir_make(f->dir, sizeof f->dir, "test_digest") < 0) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/data", f->dir);
    f->len = MIB + 17;
    f->data = pattern(f->len);
    w = open(f->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (w < 0 || write(w, f->data, f->len) != (ssize_t)f->len) {
        if (w >= 0)
            close(w);
        free(f->data);
        free(f);
        return -1;
    }
    close(w);
    f->fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (f->fd < 0) {
        free(f->data);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown_file(void **state)
{
    struct ffx *f = *state;
    int fds;

    close(f->fd);
    unlink(f->path);
    rmdir(f->dir);
    free(f->data);
    fds = count_fds();
    if (fds != f->fds_before) {
        print_error("descriptor leak: %d before, %d after\n", f->fds_before, fds);
        free(f);
        return -1;
    }
    free(f);
    return 0;
}

static void test_file_whole(void **state)
{
    static const enum digest_alg algs[] = { DIGEST_XXH3_128, DIGEST_SHA256 };
    struct ffx *f = *state;
    char want[DIGEST_HEX_MAX], got[DIGEST_HEX_MAX];

    for (size_t a = 0; a < 2; a++) {
        struct digest *d = digest_new(algs[a]);

        assert_non_null(d);
        /* Move the file position: digest_file uses pread from 0 and must
         * neither depend on it nor change it. */
        assert_int_equal(lseek(f->fd, 12345, SEEK_SET), 12345);
        assert_int_equal(digest_file(d, f->fd, f->len), 0);
        assert_int_equal(lseek(f->fd, 0, SEEK_CUR), 12345);
        digest_hex(d, got);
        one_shot(algs[a], f->data, f->len, want);
        assert_string_equal(got, want);

        /* A prefix of the file: only len bytes are hashed. */
        digest_reset(d);
        assert_int_equal(digest_file(d, f->fd, 1000), 0);
        digest_hex(d, got);
        one_shot(algs[a], f->data, 1000, want);
        assert_string_equal(got, want);

        /* Length 0: the empty checksum. */
        digest_reset(d);
        assert_int_equal(digest_file(d, f->fd, 0), 0);
        digest_hex(d, got);
        one_shot(algs[a], "", 0, want);
        assert_string_equal(got, want);
        digest_free(d);
    }
    xxh_expected(f->data, f->len, want);
    {
        struct digest *d = digest_new(DIGEST_XXH3_128);
        assert_non_null(d);
        assert_int_equal(digest_file(d, f->fd, f->len), 0);
        digest_hex(d, got);
        assert_string_equal(got, want);
        digest_free(d);
    }
}

/* The daemon's way: many small slices, each advancing *off by at most max,
 * sum to the whole. */
static void test_file_slices(void **state)
{
    static const uint64_t maxes[] = { 1, 4093, 65536, 256 * 1024, 256 * 1024 + 1, MIB + 17, UINT64_MAX };
    struct ffx *f = *state;
    char whole[DIGEST_HEX_MAX], got[DIGEST_HEX_MAX];

    one_shot(DIGEST_XXH3_128, f->data, f->len, whole);
    for (size_t m = 0; m < sizeof maxes / sizeof maxes[0]; m++) {
        struct digest *d = digest_new(DIGEST_XXH3_128);
        uint64_t off = 0, end = f->len;

        assert_non_null(d);
        /* max 1 over a MiB is a million calls: do it over the first 5000 bytes
         * and the rest in one go, which still crosses the slice boundary. */
        if (maxes[m] == 1) {
            while (off < 5000) {
                uint64_t before = off;
                assert_int_equal(digest_file_slice(d, f->fd, &off, end, 1), 0);
                assert_int_equal(off, before + 1);
            }
            assert_int_equal(digest_file_slice(d, f->fd, &off, end, UINT64_MAX), 0);
        } else {
            while (off < end) {
                uint64_t before = off;
                assert_int_equal(digest_file_slice(d, f->fd, &off, end, maxes[m]), 0);
                assert_true(off > before);
                assert_true(off - before <= maxes[m]);
            }
        }
        assert_int_equal(off, end);
        digest_hex(d, got);
        assert_string_equal(got, whole);
        /* At the end already: nothing more is hashed. */
        assert_int_equal(digest_file_slice(d, f->fd, &off, end, 4096), 0);
        assert_int_equal(off, end);
        digest_hex(d, got);
        assert_string_equal(got, whole);
        digest_free(d);
    }
}

/* A slice range in the middle of the file hashes exactly [start, end). */
static void test_file_slice_range(void **state)
{
    struct ffx *f = *state;
    struct digest *d = digest_new(DIGEST_SHA256);
    char want[DIGEST_HEX_MAX], got[DIGEST_HEX_MAX];
    uint64_t off = 300000, end = 700001;

    assert_non_null(d);
    while (off < end)
        assert_int_equal(digest_file_slice(d, f->fd, &off, end, 100000), 0);
    assert_int_equal(off, end);
    digest_hex(d, got);
    one_shot(DIGEST_SHA256, f->data + 300000, 700001 - 300000, want);
    assert_string_equal(got, want);
    digest_free(d);
}

/* *off already past end (a caller that overshot): the contract says "not
 * past end", so nothing may be hashed and *off may not move forward. */
static void test_file_slice_off_past_end(void **state)
{
    struct ffx *f = *state;
    struct digest *d = digest_new(DIGEST_XXH3_128);
    char empty[DIGEST_HEX_MAX], got[DIGEST_HEX_MAX];
    uint64_t off = 2000;

    int rc;

    assert_non_null(d);
    digest_hex(d, empty);
    rc = digest_file_slice(d, f->fd, &off, 1000, 4096);
    digest_hex(d, got);
    digest_free(d);   /* before asserting: a failure must not also leak */
    assert_int_equal(rc, 0);
    assert_string_equal(got, empty);
    assert_int_equal(off, 2000);
}

/* Shorter than asked: FERRY_ETRUNCATED, from whole-file and slice alike,
 * also when the shortfall is inside the last slice. */
static void test_file_truncated(void **state)
{
    struct ffx *f = *state;
    struct digest *d = digest_new(DIGEST_XXH3_128);
    uint64_t off = 0;
    int rc = 0;

    assert_non_null(d);
    assert_int_equal(digest_file(d, f->fd, f->len + 1), FERRY_ETRUNCATED);
    digest_reset(d);
    assert_int_equal(digest_file(d, f->fd, (uint64_t)f->len * 2), FERRY_ETRUNCATED);

    digest_reset(d);
    while (off < f->len + 100 && (rc = digest_file_slice(d, f->fd, &off, f->len + 100, 65536)) == 0)
        ;
    assert_int_equal(rc, FERRY_ETRUNCATED);
    assert_int_equal(off, f->len);   /* everything there was hashed */

    /* An empty file asked for one byte. */
    {
        char p[160];
        int e;

        snprintf(p, sizeof p, "%s/empty", f->dir);
        e = open(p, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        assert_true(e >= 0);
        digest_reset(d);
        assert_int_equal(digest_file(d, e, 1), FERRY_ETRUNCATED);
        assert_int_equal(digest_file(d, e, 0), 0);
        close(e);
        unlink(p);
    }
    digest_free(d);
}

/* A read error is -errno, not a checksum: a write-only descriptor. */
static void test_file_read_error(void **state)
{
    struct ffx *f = *state;
    struct digest *d = digest_new(DIGEST_XXH3_128);
    int w = open(f->path, O_WRONLY | O_CLOEXEC);

    assert_non_null(d);
    assert_true(w >= 0);
    assert_int_equal(digest_file(d, w, 10), -EBADF);
    close(w);
    digest_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_sha256_million_a),
        cmocka_unit_test(test_xxh3_matches_library),
        cmocka_unit_test(test_xxh3_empty_vector),
        cmocka_unit_test(test_pieces_equal_whole),
        cmocka_unit_test(test_hex_does_not_end),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_parse_and_name),
        cmocka_unit_test(test_hex_equal),
        cmocka_unit_test_setup_teardown(test_file_whole, setup_file, teardown_file),
        cmocka_unit_test_setup_teardown(test_file_slices, setup_file, teardown_file),
        cmocka_unit_test_setup_teardown(test_file_slice_range, setup_file, teardown_file),
        cmocka_unit_test_setup_teardown(test_file_slice_off_past_end, setup_file, teardown_file),
        cmocka_unit_test_setup_teardown(test_file_truncated, setup_file, teardown_file),
        cmocka_unit_test_setup_teardown(test_file_read_error, setup_file, teardown_file),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
