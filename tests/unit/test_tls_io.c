/*
 * test_tls_io.c - data through the TLS transport: 8 MiB each way through
 * small socket buffers with mixed iovecs and 100-byte reads (the
 * ferry_transport_pending contract), whole and gathered records, and
 * sendfile's fallback, non-blocking and blocking.
 *
 * Nothing sleeps: every wait is a poll or a blocking call with a
 * FIX_SAFETY_MS bound, and every loop is bounded.
 */
#include "fix_util.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include "ferry/ferry.h"
#include "fix_flow.h"
#include "fix_io.h"
#include "fix_tls.h"
#include "fix_tmp.h"

/* Where sendfile's source files are made (group_setup). */
static char tmpdir[64];

/* Entry sizes cut from the data in turn: tiny ones among big ones, around
 * and over the 16 KiB record size. */
static size_t *make_segs(size_t total, size_t *nsegs)
{
    static const size_t sizes[] = { 1, 3, 100, 7, 20000, 5, 16384, 64, 2, 40000, 1, 1,
                                    900, 16383, 16385, 333, 4096, 1, 70000, 11 };
    size_t cap = total / 8 + 16, n = 0, left = total;
    size_t *segs = malloc(cap * sizeof *segs);

    assert_non_null(segs);
    for (size_t i = 0; left > 0; i++) {
        size_t s = sizes[i % (sizeof sizes / sizeof sizes[0])];
        if (s > left)
            s = left;
        assert_true(n < cap);
        segs[n++] = s;
        left -= s;
    }
    *nsegs = n;
    return segs;
}

static void test_data_integrity_8mib(void **state)
{
    const size_t total = 8u << 20;
    struct ferry_tls *scfg = fix_psk_server(NULL), *ccfg = fix_psk_client(fix_psk_key, "ferry");
    uint8_t *a = malloc(total), *b = malloc(total);
    size_t nsegs;
    size_t *segs = make_segs(total, &nsegs);
    struct fix_tpair p;
    (void)state;

    assert_non_null(a);
    assert_non_null(b);
    fix_fill_random(a, total, 0x1234567u);
    fix_fill_random(b, total, 0x7654321u);
    fix_tpair_open(&p, ccfg, NULL, scfg, 1, 16 * 1024);
    fix_hs_ok(&p);

    struct fix_flow f[2] = {
        { .t = p.c, .out = a, .out_len = total, .segs = segs, .nsegs = nsegs, .max_iov = 8,
          .file_fd = -1, .shut_when_done = 1, .expect = b, .expect_len = total, .rbuf = 100,
          .expect_eof = 1 },
        { .t = p.s, .out = b, .out_len = total, .segs = segs, .nsegs = nsegs, .max_iov = 8,
          .file_fd = -1, .shut_when_done = 1, .expect = a, .expect_len = total, .rbuf = 100,
          .expect_eof = 1 },
    };
    fix_pump(f, 2);
    for (int i = 0; i < 2; i++) {
        print_message("flow %d: %ld writes, %ld -EAGAIN; pending true %ld times, "
                      "%ld reads while pending, %ld of them -EAGAIN\n", i, f[i].writes,
                      f[i].eagain_writes, f[i].pending_seen, f[i].pending_reads,
                      f[i].pending_eagain);
        assert_true(f[i].eagain_writes > 0);      /* the small buffers pushed back */
        assert_true(f[i].pending_seen > 0);       /* 100-byte reads left record bytes */
        assert_int_equal(f[i].pending_eagain, 0); /* pending() promised data */
    }
    fix_tpair_close(&p);
    free(segs);
    free(a);
    free(b);
    ferry_tls_free(ccfg);
    ferry_tls_free(scfg);
}

/*
 * The pending() contract at record boundaries, deterministically: three
 * 100-byte records arrive together; a 100-byte read takes the first whole
 * (OpenSSL has read the other two ahead, off the socket), so poll() has
 * nothing to announce and only pending() can say that two records wait.
 */
static void test_pending_whole_records(void **state)
{
    struct ferry_tls *scfg = fix_psk_server(NULL), *ccfg = fix_psk_client(fix_psk_key, "ferry");
    uint8_t data[300], buf[100];
    struct fix_tpair p;
    (void)state;

    fix_fill_random(data, sizeof data, 3);
    fix_tpair_open(&p, ccfg, NULL, scfg, 1, 0);
    fix_hs_ok(&p);
    for (int i = 0; i < 3; i++)
        assert_int_equal(ferry_transport_writev(p.c, &(struct iovec){ data + 100 * i, 100 }, 1),
                         100);
    assert_int_equal(ferry_transport_pending(p.s), 0);   /* nothing read yet */
    for (int i = 0; i < 3; i++) {
        struct pollfd pfd = { .fd = ferry_transport_fd(p.s), .events = POLLIN };
        if (i == 0)
            assert_int_equal(poll(&pfd, 1, FIX_SAFETY_MS), 1);
        else   /* what waits is in TLS's buffer, not the socket's */
            assert_int_equal(poll(&pfd, 1, 0), 0);
        assert_int_equal(ferry_transport_read(p.s, buf, sizeof buf), 100);
        assert_memory_equal(buf, data + 100 * i, 100);
        assert_int_equal(ferry_transport_pending(p.s), i < 2);
    }
    assert_int_equal(ferry_transport_read(p.s, buf, sizeof buf), -EAGAIN);
    /* Half a record's worth of a read: the rest of it is pending. */
    assert_int_equal(ferry_transport_writev(p.c, &(struct iovec){ data, 100 }, 1), 100);
    assert_int_equal(fix_read_nb(p.s, buf, 40), 40);
    assert_int_equal(ferry_transport_pending(p.s), 1);
    assert_int_equal(ferry_transport_read(p.s, buf + 40, 100), 60);
    assert_memory_equal(buf, data, 100);
    assert_int_equal(ferry_transport_pending(p.s), 0);
    fix_tpair_close(&p);
    ferry_tls_free(ccfg);
    ferry_tls_free(scfg);
}

/* Small entries go out in one record: 1000 one-byte entries are one
 * 1022-byte record on the wire (5 header, 1000, 1 type, 16 tag), not 1000
 * records; and more than IOV_MAX entries are a short write of IOV_MAX. */
static void test_gather_small_entries(void **state)
{
    struct ferry_tls *scfg = fix_psk_server(NULL), *ccfg = fix_psk_client(fix_psk_key, "ferry");
    static struct iovec iov[2000];
    static uint8_t src[2000], dst[2000];
    struct fix_tpair p;
    int queued = -1;
    (void)state;

    for (size_t i = 0; i < sizeof src; i++) {
        src[i] = (uint8_t)(i * 7 + 3);
        iov[i] = (struct iovec){ &src[i], 1 };
    }
    fix_tpair_open(&p, ccfg, NULL, scfg, 1, 0);
    fix_hs_ok(&p);
    assert_int_equal(ioctl(ferry_transport_fd(p.s), FIONREAD, &queued), 0);
    assert_int_equal(queued, 0);
    assert_int_equal(ferry_transport_writev(p.c, iov, 1000), 1000);
    assert_int_equal(ioctl(ferry_transport_fd(p.s), FIONREAD, &queued), 0);
    assert_int_equal(queued, 1000 + 22);
    fix_read_exact_nb(p.s, dst, 1000);
    assert_memory_equal(dst, src, 1000);

    /* 2000 entries: the first IOV_MAX are taken. */
    assert_int_equal(ferry_transport_writev(p.c, iov, 2000), IOV_MAX);
    fix_read_exact_nb(p.s, dst, IOV_MAX);
    assert_memory_equal(dst, src, IOV_MAX);
    fix_tpair_close(&p);
    ferry_tls_free(ccfg);
    ferry_tls_free(scfg);
}


/*
 * A write of several records corks a TCP socket so that they leave in full
 * segments; the cork must be off again whenever the write returns (else
 * the kernel holds the tail back for up to 200 ms), also when the socket
 * filled mid-write.  4 MiB through 64 KiB buffers: writes stop short many
 * times.
 */
static void test_tcp_cork_released(void **state)
{
    const size_t total = 4u << 20;
    struct ferry_tls *scfg = fix_psk_server(NULL), *ccfg = fix_psk_client(fix_psk_key, "ferry");
    uint8_t *src = malloc(total), *dst = malloc(total);
    size_t sent = 0, got = 0;
    long short_writes = 0;
    struct fix_tpair p;
    (void)state;

    assert_non_null(src);
    assert_non_null(dst);
    fix_fill_random(src, total, 99);
    fix_tpair_open_tcp(&p, ccfg, scfg, 64 * 1024);
    fix_hs_ok(&p);
    for (int rounds = 0; got < total && rounds < 100000; rounds++) {
        int fd = ferry_transport_fd(p.c), corked = -1;
        socklen_t len = sizeof corked;

        if (sent < total) {
            size_t want = total - sent > (256u << 10) ? 256u << 10 : total - sent;
            ssize_t w = ferry_transport_writev(p.c, &(struct iovec){ src + sent, want }, 1);

            assert_true(w > 0 || w == -EAGAIN);
            if (w < (ssize_t)want)
                short_writes++;
            if (w > 0)
                sent += (size_t)w;
            assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_CORK, &corked, &len), 0);
            assert_int_equal(corked, 0);
        }
        ssize_t r = ferry_transport_read(p.s, dst + got, total - got);
        assert_true(r > 0 || r == -EAGAIN);
        if (r > 0) {
            got += (size_t)r;
        } else {
            struct pollfd pfd = { .fd = ferry_transport_fd(p.s), .events = POLLIN };
            assert_int_equal(poll(&pfd, 1, FIX_SAFETY_MS), 1);   /* the tail is not held */
        }
    }
    assert_int_equal(got, total);
    assert_memory_equal(dst, src, total);
    assert_true(short_writes > 0);
    fix_tpair_close(&p);
    free(src);
    free(dst);
    ferry_tls_free(ccfg);
    ferry_tls_free(scfg);
}

/* ---- sendfile -------------------------------------------------------------------------------- */


static void test_sendfile_nonblocking(void **state)
{
    const size_t size = (1u << 20) + 777;
    struct ferry_tls *scfg = fix_psk_server(NULL), *ccfg = fix_psk_client(fix_psk_key, "ferry");
    struct ferry_tls_info info;
    uint8_t *data = malloc(size);
    struct fix_tpair p;
    uint64_t off;
    uint8_t buf[16];
    int fd;
    (void)state;

    assert_non_null(data);
    fix_fill_random(data, size, 4242);
    fd = fix_tmp_file(tmpdir, data, size);
    fix_tpair_open(&p, ccfg, NULL, scfg, 1, 16 * 1024);
    fix_hs_ok(&p);
    assert_int_equal(ferry_transport_tls_info(p.c, &info), 0);
    assert_int_equal(info.ktls_send, 0);

    struct fix_flow f[2] = {
        { .t = p.c, .out = data, .out_len = size, .file_fd = fd, .expect_len = 0, .rbuf = 4096 },
        { .t = p.s, .out = NULL, .out_len = 0, .file_fd = -1, .expect = data, .expect_len = size,
          .rbuf = 4096 },
    };
    fix_pump(f, 2);
    assert_true(f[0].eagain_writes > 0);
    /* in_fd's own position is not used. */
    assert_int_equal(lseek(fd, 0, SEEK_CUR), 0);
    /* At the end of the file: 0. */
    off = size;
    assert_int_equal(ferry_transport_sendfile(p.c, fd, &off, 100), 0);
    assert_int_equal(off, size);
    /* A range from the middle; len 0 sends nothing. */
    off = 4096;
    assert_int_equal(ferry_transport_sendfile(p.c, fd, &off, 0), 0);
    assert_int_equal(off, 4096);
    static uint8_t part[10000];
    size_t sent = 0;
    for (int i = 0; i < 1000 && sent < sizeof part; i++) {
        ssize_t n = ferry_transport_sendfile(p.c, fd, &off, sizeof part - sent);
        assert_true(n > 0 || n == -EAGAIN);
        if (n > 0)
            sent += (size_t)n;
    }
    assert_int_equal(sent, sizeof part);
    assert_int_equal(off, 4096 + sizeof part);
    fix_read_exact_nb(p.s, part, sizeof part);
    assert_memory_equal(part, data + 4096, sizeof part);
    /* The file ends early: what there is, then 0. */
    off = size - 10;
    ssize_t n = ferry_transport_sendfile(p.c, fd, &off, 100);
    assert_int_equal(n, 10);
    fix_read_exact_nb(p.s, buf, 10);
    assert_memory_equal(buf, data + size - 10, 10);
    assert_int_equal(ferry_transport_sendfile(p.c, fd, &off, 100), 0);
    fix_tpair_close(&p);
    close(fd);
    free(data);
    ferry_tls_free(ccfg);
    ferry_tls_free(scfg);
}

struct reader {
    struct ferry_transport *t;
    uint8_t *buf;
    size_t len;
    int result;
};

static void *read_all_thread(void *arg)
{
    struct reader *r = arg;

    r->result = ferry_transport_read_full(r->t, r->buf, r->len);
    return NULL;
}

static void test_sendfile_blocking(void **state)
{
    const size_t size = 1u << 20;
    struct ferry_tls *scfg = fix_psk_server(NULL), *ccfg = fix_psk_client(fix_psk_key, "ferry");
    uint8_t *data = malloc(size), *got = malloc(size);
    struct reader rd = { .buf = got, .len = size, .result = 1 };
    struct fix_tpair p;
    pthread_t th;
    uint64_t off = 0;
    int fd, calls = 0;
    ssize_t n = 0;
    (void)state;

    assert_non_null(data);
    assert_non_null(got);
    fix_fill_random(data, size, 777);
    fd = fix_tmp_file(tmpdir, data, size);
    fix_tpair_open(&p, ccfg, NULL, scfg, 1, 16 * 1024);
    fix_hs_ok(&p);
    assert_int_equal(ferry_transport_set_nonblocking(p.c, 0), 0);
    assert_int_equal(ferry_transport_set_nonblocking(p.s, 0), 0);
    ferry_transport_set_timeout(p.s, FIX_SAFETY_MS);
    rd.t = p.s;
    assert_int_equal(pthread_create(&th, NULL, read_all_thread, &rd), 0);
    /* Blocking: each call waits rather than returning -EAGAIN. */
    while (off < size && calls < 100000) {
        n = ferry_transport_sendfile(p.c, fd, &off, size - off);
        calls++;
        if (n <= 0)
            break;
    }
    pthread_join(th, NULL);
    if (n <= 0)
        fail_msg("sendfile at %llu: %s ('%s')", (unsigned long long)off, ferry_err_name((int)n),
                 ferry_transport_error(p.c));
    assert_int_equal(off, size);
    assert_int_equal(rd.result, 0);
    assert_memory_equal(got, data, size);
    fix_tpair_close(&p);
    close(fd);
    free(data);
    free(got);
    ferry_tls_free(ccfg);
    ferry_tls_free(scfg);
}

/* No certificates here: a directory for sendfile's files is all the
 * program needs. */
static int group_setup(void **state)
{
    fix_tls_quiet(state);
    return fix_tmpdir_make(tmpdir, sizeof tmpdir, "ferry-tls-io");
}

static int group_teardown(void **state)
{
    (void)state;
    fix_tmpdir_remove(tmpdir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_data_integrity_8mib, fix_sigpipe_default),
        cmocka_unit_test_setup(test_pending_whole_records, fix_sigpipe_default),
        cmocka_unit_test_setup(test_gather_small_entries, fix_sigpipe_default),
        cmocka_unit_test_setup(test_tcp_cork_released, fix_sigpipe_default),
        cmocka_unit_test_setup(test_sendfile_nonblocking, fix_sigpipe_default),
        cmocka_unit_test_setup(test_sendfile_blocking, fix_sigpipe_default),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
