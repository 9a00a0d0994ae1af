/*
 * test_shared_io.c - what ferryd and ferry share for files, time and
 * errors (src/shared/fdio.c, filecommit.c, monoclock.c, errbuf.c), and the
 * codes the key files fail with (keyfile.c, keys.c).
 *
 * The whole-write loops are driven through a pipe made small and
 * non-blocking, so a short write and EAGAIN really happen; the commit
 * steps in a fresh mkdtemp directory per test.  Like every ferry unit
 * test, each checks that the process has as many descriptors after as
 * before.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "unit_util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "errbuf.h"
#include "errcode.h"
#include "fdio.h"
#include "filecommit.h"
#include "keyfile.h"
#include "keys.h"
#include "monoclock.h"
#include "proto.h"

struct dir_fixture {
    char dir[64];
    int dirfd;
    int fds_before;
};

static int setup_dir(void **state)
{
    struct dir_fixture *f = calloc(1, sizeof *f);

    if (!f)
        return -1;
    f->fds_before = count_fds();
    snprintf(f->dir, sizeof f->dir, "/tmp/ferry-shared-io-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    f->dirfd = open(f->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    *state = f;
    return f->dirfd < 0 ? -1 : 0;
}

static int teardown_dir(void **state)
{
    struct dir_fixture *f = *state;
    char cmd[128];
    int leaked;

    close(f->dirfd);
    leaked = count_fds() != f->fds_before;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        leaked = 1;
    free(f);
    *state = NULL;
    return leaked ? -1 : 0;
}

static char *read_file(int dirfd, const char *name, size_t *len)
{
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
    char *buf = malloc(1 << 20);
    ssize_t n;

    assert_true(fd >= 0);
    assert_non_null(buf);
    n = read(fd, buf, (1 << 20) - 1);
    assert_true(n >= 0);
    buf[n] = '\0';
    *len = (size_t)n;
    close(fd);
    return buf;
}

/* ---- fdio ----------------------------------------------------------------- */

struct drain {
    int fd;
    size_t got;
    unsigned char *buf;
    size_t cap;
};

/* Reads the other end slowly, so the writer meets a full pipe. */
static void *drain_pipe(void *arg)
{
    struct drain *d = arg;

    for (;;) {
        ssize_t n;

        usleep(1000);
        n = read(d->fd, d->buf + d->got, d->cap - d->got < 4096 ? d->cap - d->got : 4096);
        if (n <= 0)
            break;
        d->got += (size_t)n;
    }
    return NULL;
}

static void test_write_all_through_full_nonblocking_pipe(void **state)
{
    enum { LEN = 256 * 1024 };
    int fds = count_fds(), p[2];
    unsigned char *src = malloc(LEN);
    struct drain d = { .cap = LEN };
    pthread_t t;

    (void)state;
    assert_non_null(src);
    d.buf = malloc(LEN);
    assert_non_null(d.buf);
    for (size_t i = 0; i < LEN; i++)
        src[i] = (unsigned char)(i * 131 + (i >> 9));
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    /* Smallest pipe the system gives, non-blocking: every write is short
     * or EAGAIN, and fdio_write_all must still deliver all of it. */
    (void)fcntl(p[1], F_SETPIPE_SZ, 4096);
    assert_int_equal(fcntl(p[1], F_SETFL, O_NONBLOCK), 0);
    d.fd = p[0];
    assert_int_equal(pthread_create(&t, NULL, drain_pipe, &d), 0);
    assert_int_equal(fdio_write_all(p[1], src, LEN, NULL), 0);
    fdio_close(&p[1]);
    assert_int_equal(p[1], -1);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(d.got, LEN);
    assert_memory_equal(d.buf, src, LEN);
    fdio_close(&p[0]);
    fdio_close(&p[0]);   /* a second close is a no-op */
    free(src);
    free(d.buf);
    assert_int_equal(count_fds(), fds);
}

static void test_write_all_errors(void **state)
{
    int fds = count_fds(), p[2], devfull;
    struct sigaction ign = { .sa_handler = SIG_IGN }, old;

    (void)state;
    assert_int_equal(fdio_write_all(-1, "x", 1, NULL), -EBADF);
    assert_int_equal(fdio_pwrite_all(-1, "x", 1, 0, NULL), -EBADF);
    /* Nothing to write is done at once, even on a bad descriptor. */
    assert_int_equal(fdio_write_all(-1, "", 0, NULL), 0);
    devfull = open("/dev/full", O_WRONLY | O_CLOEXEC);
    if (devfull >= 0) {
        assert_int_equal(fdio_write_all(devfull, "x", 1, NULL), -ENOSPC);
        fdio_close(&devfull);
    }
    assert_int_equal(sigaction(SIGPIPE, &ign, &old), 0);
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    fdio_close(&p[0]);
    assert_int_equal(fdio_write_all(p[1], "x", 1, NULL), -EPIPE);
    fdio_close(&p[1]);
    assert_int_equal(sigaction(SIGPIPE, &old, NULL), 0);
    assert_int_equal(count_fds(), fds);
}

static void test_pwrite_all_at_offsets(void **state)
{
    struct dir_fixture *f = *state;
    int fd = openat(f->dirfd, "f", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    size_t len;
    char *got;

    assert_true(fd >= 0);
    assert_int_equal(fdio_pwrite_all(fd, "world", 5, 6, NULL), 0);
    assert_int_equal(fdio_pwrite_all(fd, "hello ", 6, 0, NULL), 0);
    /* pwrite leaves the file offset where it was. */
    assert_int_equal(lseek(fd, 0, SEEK_CUR), 0);
    assert_int_equal(fdio_write_all(fd, "HE", 2, NULL), 0);
    fdio_close(&fd);
    got = read_file(f->dirfd, "f", &len);
    assert_int_equal(len, 11);
    assert_string_equal(got, "HEllo world");
    free(got);
}

/* ---- filecommit -------------------------------------------------------------- */

static void test_tmp_names(void **state)
{
    char out[NAME_MAX + 1], longname[NAME_MAX + 1];
    uint32_t tag = 0xabc12;

    (void)state;
    filecommit_tmp_name(out, "data.bin", NULL);
    assert_string_equal(out, ".data.bin" PROTO_PART_SUFFIX);
    filecommit_tmp_name(out, "data.bin", &tag);
    assert_string_equal(out, ".data.bin.000abc12" PROTO_PART_SUFFIX);
    /* A name of NAME_MAX bytes still gives a temporary that fits, and one
     * that still ends with the suffix the start-up sweep looks for. */
    memset(longname, 'n', NAME_MAX);
    longname[NAME_MAX] = '\0';
    filecommit_tmp_name(out, longname, &tag);
    assert_true(strlen(out) <= NAME_MAX);
    assert_string_equal(out + strlen(out) - strlen(PROTO_PART_SUFFIX), PROTO_PART_SUFFIX);
    filecommit_tmp_name(out, longname, NULL);
    assert_true(strlen(out) <= NAME_MAX);
    assert_int_equal(out[0], '.');
}

static void test_commit_replaces_whole(void **state)
{
    struct dir_fixture *f = *state;
    struct timespec times[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_sec = 1000000000, .tv_nsec = 5 } };
    char tmp[NAME_MAX + 1];
    struct stat st;
    size_t len;
    char *got;
    int fd;

    fd = openat(f->dirfd, "target", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(fdio_write_all(fd, "old\n", 4, NULL), 0);
    fdio_close(&fd);

    filecommit_tmp_name(tmp, "target", NULL);
    fd = openat(f->dirfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(fdio_write_all(fd, "new content\n", 12, NULL), 0);
    /* Set-id and sticky bits never survive a commit. */
    assert_int_equal(filecommit_prepare(fd, 04755, times, 1), 0);
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0755);
    assert_int_equal(st.st_mtim.tv_sec, 1000000000);
    assert_int_equal(st.st_mtim.tv_nsec, 5);

    /* Until the rename, the final name still holds the old file whole. */
    got = read_file(f->dirfd, "target", &len);
    assert_string_equal(got, "old\n");
    free(got);
    assert_int_equal(filecommit_rename(f->dirfd, tmp, "target"), 0);
    assert_int_equal(filecommit_sync_dir(f->dirfd, "."), 0);
    fdio_close(&fd);

    got = read_file(f->dirfd, "target", &len);
    assert_string_equal(got, "new content\n");
    free(got);
    assert_int_equal(fstatat(f->dirfd, tmp, &st, AT_SYMLINK_NOFOLLOW), -1);
    assert_int_equal(errno, ENOENT);
}

static void test_commit_by_path(void **state)
{
    struct dir_fixture *f = *state;
    char tmp[PATH_MAX], target[PATH_MAX];
    struct stat st;
    int fd;

    /* The client's way: paths from the working directory (AT_FDCWD), no
     * times, no fsync. */
    pathf(tmp, sizeof tmp, "%s/.t%s", f->dir, PROTO_PART_SUFFIX);
    pathf(target, sizeof target, "%s/t", f->dir);
    fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(filecommit_prepare(fd, 0640, NULL, 0), 0);
    fdio_close(&fd);
    assert_int_equal(filecommit_rename(AT_FDCWD, tmp, target), 0);
    assert_int_equal(filecommit_sync_dir(AT_FDCWD, f->dir), 0);
    assert_int_equal(stat(target, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
}

static void test_commit_errors(void **state)
{
    struct dir_fixture *f = *state;
    int fd;

    assert_int_equal(filecommit_prepare(-1, 0644, NULL, 0), -EBADF);
    assert_int_equal(filecommit_rename(f->dirfd, ".missing" PROTO_PART_SUFFIX, "x"), -ENOENT);
    assert_int_equal(filecommit_sync_dir(f->dirfd, "no-such-dir"), -ENOENT);
    /* A directory on the final name: the rename says so, and the
     * temporary is still there for the caller to remove. */
    assert_int_equal(mkdirat(f->dirfd, "d", 0755), 0);
    fd = openat(f->dirfd, ".d" PROTO_PART_SUFFIX, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    fdio_close(&fd);
    assert_int_equal(filecommit_rename(f->dirfd, ".d" PROTO_PART_SUFFIX, "d"), -EISDIR);
    assert_int_equal(unlinkat(f->dirfd, ".d" PROTO_PART_SUFFIX, 0), 0);
}

/* ---- monoclock ------------------------------------------------------------------ */

static void test_monoclock(void **state)
{
    uint64_t ms0 = monoclock_ms();
    int64_t ns0 = monoclock_ns();
    struct timespec nap = { .tv_nsec = 20 * 1000000 };

    (void)state;
    nanosleep(&nap, NULL);
    /* Never backwards, and both units count the same clock. */
    assert_true(monoclock_ms() >= ms0 + 20);
    assert_true(monoclock_ns() >= ns0 + 20 * 1000000LL);
    assert_true(monoclock_ns() / 1000000 >= (int64_t)ms0);
    assert_true((uint64_t)(monoclock_ns() / 1000000) <= monoclock_ms() + 1);
}

/* ---- errbuf and the key files' codes ---------------------------------------------- */

static void test_errbuf(void **state)
{
    struct errbuf eb;

    (void)state;
    errbuf_clear(&eb);
    assert_string_equal(eb.msg, "");
    /* No detail: the code's own message. */
    assert_string_equal(errbuf_msg(&eb, FERRY_EKEY_FORMAT), app_strerror(FERRY_EKEY_FORMAT));
    assert_string_equal(errbuf_msg(NULL, -ENOENT), app_strerror(-ENOENT));
    assert_int_equal(errbuf_set(&eb, -EIO, "disk %d: %s", 3, "gone"), -EIO);
    assert_string_equal(errbuf_msg(&eb, -EIO), "disk 3: gone");
    assert_int_equal(errbuf_set(NULL, FERRY_EKEYS_LINE, "dropped"), FERRY_EKEYS_LINE);
    assert_string_equal(app_err_name(FERRY_EKEY_EXPOSED), "FERRY_EKEY_EXPOSED");
    assert_int_equal(hex_decode("zz", (uint8_t[1]){ 0 }, 1), -EINVAL);
    assert_int_equal(hex_decode("abc", (uint8_t[1]){ 0 }, 1), -EINVAL);
}

static void write_at(int dirfd, const char *name, const char *text, mode_t mode)
{
    int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

    assert_true(fd >= 0);
    assert_int_equal(fdio_write_all(fd, text, strlen(text), NULL), 0);
    assert_int_equal(fchmod(fd, mode), 0);
    fdio_close(&fd);
}

static void test_key_file_codes(void **state)
{
    struct dir_fixture *f = *state;
    char path[PATH_MAX];
    struct ferry_key key;
    struct errbuf eb;
    int n;

    pathf(path, sizeof path, "%s/none", f->dir);
    assert_int_equal(keyfile_load(path, 1, &key, &eb), -ENOENT);
    assert_non_null(strstr(eb.msg, path));

    pathf(path, sizeof path, "%s/sub/key", f->dir);
    assert_int_equal(keyfile_create(path, 0, &eb), 0);
    assert_int_equal(keyfile_load(path, 1, &key, &eb), 0);
    assert_int_equal(keyfile_create(path, 0, &eb), -EEXIST);
    assert_non_null(strstr(eb.msg, "--force"));
    assert_int_equal(keyfile_create(path, 1, NULL), 0);

    write_at(f->dirfd, "open", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
             0644);
    pathf(path, sizeof path, "%s/open", f->dir);
    assert_int_equal(keyfile_load(path, 1, &key, &eb), FERRY_EKEY_EXPOSED);
    assert_non_null(strstr(eb.msg, "chmod 600"));
    assert_int_equal(keyfile_load(path, 0, &key, &eb), 0);

    write_at(f->dirfd, "short", "0011\n", 0600);
    pathf(path, sizeof path, "%s/short", f->dir);
    assert_int_equal(keyfile_load(path, 1, &key, &eb), FERRY_EKEY_FORMAT);

    assert_int_equal(keyfile_load(f->dir, 1, &key, &eb), FERRY_EKEY_NOTFILE);

    write_at(f->dirfd, "keys", "# two keys\n"
             "a 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"
             "b ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100\n", 0600);
    pathf(path, sizeof path, "%s/keys", f->dir);
    assert_int_equal(keys_check(path, &n, &eb), 0);
    assert_int_equal(n, 2);
    assert_int_equal(keys_find(path, "b", &key, NULL, &eb), 1);
    assert_int_equal(key.bytes[0], 0xff);
    assert_int_equal(keys_find(path, "c", &key, NULL, &eb), 0);

    write_at(f->dirfd, "keys", "a 0011\n", 0600);
    assert_int_equal(keys_check(path, &n, &eb), FERRY_EKEYS_LINE);
    assert_non_null(strstr(eb.msg, "line 1"));
    assert_int_equal(keys_find(path, "a", &key, NULL, &eb), FERRY_EKEYS_LINE);
}

/* keys_roots: every root= once, in the file's order; a bad file, none. */
static void test_keys_roots(void **state)
{
    struct dir_fixture *f = *state;
    char path[PATH_MAX], **roots;
    struct errbuf eb;
    size_t n;

    write_at(f->dirfd, "keys",
             "a 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff root=/srv/b\n"
             "b ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100\n"
             "c 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff "
             "files-only,root=/srv/a\n"
             "d 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff root=/srv/b\n",
             0600);
    pathf(path, sizeof path, "%s/keys", f->dir);
    assert_int_equal(keys_roots(path, &roots, &n, &eb), 0);
    assert_int_equal(n, 2);
    assert_string_equal(roots[0], "/srv/b");
    assert_string_equal(roots[1], "/srv/a");
    keys_roots_free(roots, n);

    write_at(f->dirfd, "keys", "a 0011 root=/srv/a\n", 0600);
    assert_int_equal(keys_roots(path, &roots, &n, &eb), FERRY_EKEYS_LINE);
    assert_null(roots);
    assert_int_equal(n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_all_through_full_nonblocking_pipe),
        cmocka_unit_test(test_write_all_errors),
        cmocka_unit_test_setup_teardown(test_pwrite_all_at_offsets, setup_dir, teardown_dir),
        cmocka_unit_test(test_tmp_names),
        cmocka_unit_test_setup_teardown(test_commit_replaces_whole, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_commit_by_path, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_commit_errors, setup_dir, teardown_dir),
        cmocka_unit_test(test_monoclock),
        cmocka_unit_test(test_errbuf),
        cmocka_unit_test_setup_teardown(test_key_file_codes, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_keys_roots, setup_dir, teardown_dir),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
