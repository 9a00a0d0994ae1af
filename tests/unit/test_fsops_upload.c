/*
 * test_fsops_upload.c - the file service's upload (src/ferryd/fsops.c) on
 * a real directory tree: the temporary-then-rename path, abandon and
 * resume, two uploads at once, the lock-then-verify race, refusals
 * (directories, planted temporaries, the sandbox, long names) and a write
 * that fails.
 *
 * Each test runs in the served-root sandbox of fix_fsroot (BASE/root, and
 * BASE/outside that symlinks aim at), twice: with openat2 and with
 * fspath's component-by-component fallback (fsops resolves through
 * fspath, so both resolvers must give fsops the same guarantees; where
 * they answer with different codes, fix_fs_escape_code() says which).  The
 * fixture's teardown checks that no descriptor leaked, so failure paths
 * (and abandoned or failed uploads) leak nothing.
 *
 * Nothing sleeps.  The lock-then-verify race in take_shared() is made
 * deterministic by interposing flock(2) (see "the flock hook" below): the
 * test commits upload A at the exact instant between upload B's open of
 * the shared temporary and its lock.  The RLIMIT_FSIZE test runs in a
 * forked child so the limit never applies to the test process itself.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "unit_util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>


#include "fsops.h"
#include "fspath.h"
#include "fix_fsroot.h"

#define PART ".ferry-part"

/* ---- the flock hook ------------------------------------------------------------ */

/*
 * fsops.c is linked in statically, so this definition of flock() is the one
 * its take_shared() calls.  Normally it is just the system call.  A test
 * may arm flock_hook: it then runs once, on the next call, before the real
 * lock is taken, which lets the test act in the window between fsops'
 * openat() of the shared temporary and its flock() of it.
 */
static void (*flock_hook)(void *arg);
static void *flock_hook_arg;
static unsigned flock_calls;

int flock(int fd, int op)
{
    void (*hook)(void *) = flock_hook;

    flock_calls++;
    if (hook) {
        flock_hook = NULL;   /* once: the hook itself may lead to flock */
        hook(flock_hook_arg);
    }
    return (int)syscall(SYS_flock, fd, op);
}

/* ---- the fixture (fix_fsroot), with the flock hook disarmed --------------------- */

static int setup_openat2(void **state)
{
    flock_hook = NULL;
    return fix_fs_setup(state, false, "test_fsops");
}

static int setup_fallback(void **state)
{
    flock_hook = NULL;
    return fix_fs_setup(state, true, "test_fsops");
}

static int teardown(void **state)
{
    flock_hook = NULL;
    return fix_fs_teardown(state);
}

/* How many upload temporaries (names ending ".ferry-part") BASE/rel holds. */
static int count_parts(const struct fix_fs *f, const char *rel)
{
    char p[PATH_MAX];
    struct dirent *de;
    DIR *d;
    int n = 0;

    pathf(p, sizeof p, "%s/%s", f->base, rel);
    d = opendir(p);
    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len >= strlen(PART) && strcmp(de->d_name + len - strlen(PART), PART) == 0)
            n++;
    }
    closedir(d);
    return n;
}

/* Is tmp a private temporary for name: ".NAME.XXXXXXXX.ferry-part", with
 * NAME possibly cut short to fit NAME_MAX? */
static bool is_private_tmp(const char *tmp, const char *name)
{
    size_t len = strlen(tmp), keep;

    if (len > NAME_MAX || len < 1 + 1 + 1 + 8 + strlen(PART) || tmp[0] != '.')
        return false;
    if (strcmp(tmp + len - strlen(PART), PART) != 0)
        return false;
    for (size_t i = len - strlen(PART) - 8; i < len - strlen(PART); i++)
        if (!isxdigit((unsigned char)tmp[i]) || isupper((unsigned char)tmp[i]))
            return false;
    if (tmp[len - strlen(PART) - 9] != '.')
        return false;
    keep = len - strlen(PART) - 9 - 1;
    return keep >= 1 && keep <= strlen(name) && memcmp(tmp + 1, name, keep) == 0;
}

/* An upload that owns nothing, as the contract promises after commit,
 * abandon and a failed open. */
static void assert_owns_nothing(const struct fsops_upload *u)
{
    assert_int_equal(u->fd, -1);
    assert_int_equal(u->dirfd, -1);
}

/* Open, write content, commit with mode 0644 and no mtime. */
static void upload(const struct fix_fs *f, const char *path, const char *content)
{
    struct fsops_upload u;
    uint64_t have = 99;

    assert_int_equal(fsops_upload_open(f->root, path, 0, &u, &have), 0);
    assert_int_equal(have, 0);
    assert_int_equal(fsops_upload_write(&u, content, strlen(content)), 0);
    assert_int_equal(fsops_upload_commit(&u, 0644, NULL, 0, 0), 0);
    assert_owns_nothing(&u);
}

/* ---- upload: the plain path ------------------------------------------------------- */

static void test_upload_basic(void **state)
{
    struct fix_fs *f = *state;
    struct fsops_upload u;
    uint64_t have = 99;
    int64_t mtime = 1500000000;
    struct stat st;

    assert_int_equal(fsops_upload_open(f->root, "f", 0, &u, &have), 0);
    assert_int_equal(have, 0);
    assert_int_equal(u.shared_name, 1);
    assert_string_equal(u.name, "f");
    assert_string_equal(u.tmp, ".f" PART);
    assert_true(u.fd >= 0 && u.dirfd >= 0);
    assert_int_equal(fcntl(u.fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    assert_int_equal(fcntl(u.dirfd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    /* The temporary is private to the daemon's user while it fills. */
    fix_fs_lstat(f, "root/.f" PART, &st);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);

    assert_int_equal(fsops_upload_write(&u, "hello ", 6), 0);
    assert_int_equal(fsops_upload_write(&u, "", 0), 0);
    assert_int_equal(fsops_upload_write(&u, "world\n", 6), 0);
    /* Nothing under the final name until the commit. */
    assert_false(fix_fs_exists(f, "root/f"));
    assert_true(fix_fs_has_content(f, "root/.f" PART, "hello world\n"));

    /* 04755: the set-uid bit is a client's wish that is never granted. */
    assert_int_equal(fsops_upload_commit(&u, 04755, &mtime, 123456789, 0), 0);
    assert_owns_nothing(&u);
    assert_true(fix_fs_has_content(f, "root/f", "hello world\n"));
    fix_fs_lstat(f, "root/f", &st);
    assert_int_equal(st.st_mode & 07777, 0755);
    assert_int_equal(st.st_mode & (S_ISUID | S_ISGID | S_ISVTX), 0);
    assert_int_equal(st.st_mtim.tv_sec, 1500000000);
    assert_int_equal(st.st_mtim.tv_nsec, 123456789);
    assert_int_equal(count_parts(f, "root"), 0);

    /* Finished: abandon is a no-op (and must not unlink anything). */
    fsops_upload_abandon(&u, 0);
    assert_owns_nothing(&u);
    assert_true(fix_fs_has_content(f, "root/f", "hello world\n"));
}

/* Other modes, fsync, no mtime, set-gid and sticky, a subdirectory. */
static void test_upload_modes(void **state)
{
    struct fix_fs *f = *state;
    struct fsops_upload u;
    uint64_t have;
    struct stat st;
    time_t before = time(NULL);

    fix_fs_mkdir(f, "root/sub");
    fix_fs_mkdir(f, "root/sub/deeper");
    assert_int_equal(fsops_upload_open(f->root, "sub/deeper/g", 0, &u, &have), 0);
    /* The temporary sits beside the final name, not at the root. */
    assert_true(fix_fs_exists(f, "root/sub/deeper/.g" PART));
    assert_int_equal(count_parts(f, "root"), 0);
    assert_int_equal(fsops_upload_write(&u, "g\n", 2), 0);
    assert_int_equal(fsops_upload_commit(&u, 03777, NULL, 0, 1), 0);
    assert_owns_nothing(&u);
    fix_fs_lstat(f, "root/sub/deeper/g", &st);
    assert_int_equal(st.st_mode & 07777, 0777);
    /* No mtime asked: the file's own, i.e. about now. */
    assert_true(st.st_mtim.tv_sec >= before - 1);

    assert_int_equal(fsops_upload_open(f->root, "sub/h", 0, &u, &have), 0);
    assert_int_equal(fsops_upload_commit(&u, 0, NULL, 0, 1), 0);   /* empty file, mode 0 */
    fix_fs_lstat(f, "root/sub/h", &st);
    assert_int_equal(st.st_size, 0);
    assert_int_equal(st.st_mode & 07777, 0);
    assert_int_equal(count_parts(f, "root/sub"), 0);
    assert_int_equal(count_parts(f, "root/sub/deeper"), 0);

    /* A missing parent fails at open, leaving nothing. */
    have = 7;
    assert_int_equal(fsops_upload_open(f->root, "nodir/x", 0, &u, &have), -ENOENT);
    assert_int_equal(have, 0);
    assert_owns_nothing(&u);
}

/* An existing file keeps its content (and inode) until the commit swaps
 * the new one in whole. */
static void test_upload_replaces_existing(void **state)
{
    struct fix_fs *f = *state;
    struct fsops_upload u;
    uint64_t have;
    struct stat old, mid, now;

    fix_fs_file(f, "root/f", "old\n");
    fix_fs_lstat(f, "root/f", &old);
    assert_int_equal(fsops_upload_open(f->root, "f", 0, &u, &have), 0);
    assert_int_equal(fsops_upload_write(&u, "new content\n", 12), 0);
    fix_fs_lstat(f, "root/f", &mid);
    assert_true(mid.st_ino == old.st_ino);
    assert_true(fix_fs_has_content(f, "root/f", "old\n"));
    assert_int_equal(fsops_upload_commit(&u, 0600, NULL, 0, 0), 0);
    fix_fs_lstat(f, "root/f", &now);
    assert_true(now.st_ino != old.st_ino);   /* renamed over, not rewritten */
    assert_true(fix_fs_has_content(f, "root/f", "new content\n"));
    assert_int_equal(count_parts(f, "root"), 0);
}

/* A symlink at the final name is replaced as itself: the commit never
 * writes through it. */
static void test_upload_over_symlink(void **state)
{
    struct fix_fs *f = *state;
    char target[PATH_MAX];
    struct stat st;

    pathf(target, sizeof target, "%s/secret", f->outside);
    fix_fs_link(f, target, "root/f");
    upload(f, "f", "replaced\n");
    fix_fs_lstat(f, "root/f", &st);
    assert_true(S_ISREG(st.st_mode));
    assert_true(fix_fs_has_content(f, "root/f", "replaced\n"));
    assert_true(fix_fs_has_content(f, "outside/secret", "outside secret\n"));
}

/* ---- upload: abandon and resume ---------------------------------------------------- */

static void test_upload_abandon(void **state)
{
    struct fix_fs *f = *state;
    struct fsops_upload u;
    uint64_t have;

    fix_fs_file(f, "root/f", "old\n");
    assert_int_equal(fsops_upload_open(f->root, "f", 1, &u, &have), 0);
    assert_int_equal(fsops_upload_write(&u, "partial", 7), 0);
    fsops_upload_abandon(&u, 0);
    assert_owns_nothing(&u);
    assert_int_equal(count_parts(f, "root"), 0);
    assert_true(fix_fs_has_content(f, "root/f", "old\n"));
    /* Twice, and on a never-opened upload: both safe. */
    fsops_upload_abandon(&u, 0);
    fsops_upload_abandon(&u, 1);
    fsops_upload_init(&u);
    assert_owns_nothing(&u);
    fsops_upload_abandon(&u, 1);
    assert_true(fix_fs_has_content(f, "root/f", "old\n"));
}

static void test_upload_keep_and_resume(void **state)
{
    struct fix_fs *f = *state;
    struct fsops_upload u;
    uint64_t have = 99;
    struct stat st;

    fix_fs_file(f, "root/f", "old\n");
    assert_int_equal(fsops_upload_open(f->root, "f", 1, &u, &have), 0);
    assert_int_equal(have, 0);
    assert_int_equal(fsops_upload_write(&u, "first part ", 11), 0);
    fsops_upload_abandon(&u, 1);
    assert_owns_nothing(&u);
    /* Kept, as itself, for a later resume; the old file is still there. */
    assert_true(fix_fs_has_content(f, "root/.f" PART, "first part "));
    assert_true(fix_fs_has_content(f, "root/f", "old\n"));

    assert_int_equal(fsops_upload_open(f->root, "f", 1, &u, &have), 0);
    assert_int_equal(have, 11);
    assert_int_equal(u.shared_name, 1);
    /* Writes continue at the end, not at offset 0. */
    assert_int_equal(lseek(u.fd, 0, SEEK_CUR), 11);
    assert_int_equal(fsops_upload_write(&u, "second", 6), 0);
    fsops_upload_abandon(&u, 1);

    /* And again: still resumable, now 17 bytes. */
    assert_int_equal(fsops_upload_open(f->root, "f", 1, &u, &have), 0);
    assert_int_equal(have, 17);
    assert_int_equal(fsops_upload_write(&u, "\n", 1), 0);
    assert_int_equal(fsops_upload_commit(&u, 0644, NULL, 0, 0), 0);
    assert_true(fix_fs_has_content(f, "root/f", "first part second\n"));
    fix_fs_lstat(f, "root/f", &st);
    assert_int_equal(st.st_mode & 07777, 0644);
    assert_int_equal(count_parts(f, "root"), 0);
}

/* resume = 0 on a kept part starts over; so does fsops_upload_restart. */
static void test_upload_no_resume_truncates(void **state)
{
    struct fix_fs *f = *state;
    struct fsops_upload u;
    uint64_t have = 99;
    struct stat st;

    fix_fs_file(f, "root/.f" PART, "stale bytes from an old upload");
    assert_int_equal(fsops_upload_open(f->root, "f", 0, &u, &have), 0);
    assert_int_equal(have, 0);
    assert_int_equal(u.shared_name, 1);
    fix_fs_lstat(f, "root/.f" PART, &st);
    assert_int_equal(st.st_size, 0);
    assert_int_equal(fsops_upload_write(&u, "x", 1), 0);
    assert_int_equal(fsops_upload_commit(&u, 0644, NULL, 0, 0), 0);
    assert_true(fix_fs_has_content(f, "root/f", "x"));

    /* A resume whose prefix the caller rejects: restart cuts it back. */
    fix_fs_file(f, "root/.g" PART, "wrong prefix");
    assert_int_equal(fsops_upload_open(f->root, "g", 1, &u, &have), 0);
    assert_int_equal(have, 12);
    assert_int_equal(fsops_upload_restart(&u), 0);
    assert_int_equal(fsops_upload_write(&u, "right", 5), 0);
    assert_int_equal(fsops_upload_commit(&u, 0644, NULL, 0, 0), 0);
    assert_true(fix_fs_has_content(f, "root/g", "right"));
    assert_int_equal(count_parts(f, "root"), 0);
}

/* ---- upload: two at once -------------------------------------------------------------- */

static void concurrent(struct fix_fs *f, bool second_commits_last)
{
    struct fsops_upload a, b;
    uint64_t have_a = 99, have_b = 99;

    fix_fs_file(f, "root/f", "old\n");
    assert_int_equal(fsops_upload_open(f->root, "f", 1, &a, &have_a), 0);
    /* b asks to resume, but the resumable temporary is a's: b gets a
     * private one, empty. */
    assert_int_equal(fsops_upload_open(f->root, "f", 1, &b, &have_b), 0);
    assert_int_equal(have_a, 0);
    assert_int_equal(have_b, 0);
    assert_int_equal(a.shared_name, 1);
    assert_int_equal(b.shared_name, 0);
    assert_string_equal(a.tmp, ".f" PART);
    assert_true(is_private_tmp(b.tmp, "f"));
    assert_int_equal(count_parts(f, "root"), 2);

    /* Interleaved writes land in separate files. */
    assert_int_equal(fsops_upload_write(&a, "AAAA", 4), 0);
    assert_int_equal(fsops_upload_write(&b, "BB", 2), 0);
    assert_int_equal(fsops_upload_write(&a, "AAAA\n", 5), 0);
    assert_int_equal(fsops_upload_write(&b, "BB\n", 3), 0);
    assert_true(fix_fs_has_content(f, "root/f", "old\n"));

    if (second_commits_last) {
        assert_int_equal(fsops_upload_commit(&a, 0644, NULL, 0, 0), 0);
        assert_true(fix_fs_has_content(f, "root/f", "AAAAAAAA\n"));
        assert_int_equal(fsops_upload_commit(&b, 0644, NULL, 0, 0), 0);
        assert_true(fix_fs_has_content(f, "root/f", "BBBB\n"));
    } else {
        assert_int_equal(fsops_upload_commit(&b, 0644, NULL, 0, 0), 0);
        assert_true(fix_fs_has_content(f, "root/f", "BBBB\n"));
        assert_int_equal(fsops_upload_commit(&a, 0644, NULL, 0, 0), 0);
        assert_true(fix_fs_has_content(f, "root/f", "AAAAAAAA\n"));
    }
    assert_owns_nothing(&a);
    assert_owns_nothing(&b);
    assert_int_equal(count_parts(f, "root"), 0);
}

static void test_concurrent_second_wins(void **state) { concurrent(*state, true); }
static void test_concurrent_first_wins(void **state)  { concurrent(*state, false); }

/* A private temporary is never resumable: abandon(keep = 1) removes it,
 * and leaves the shared one it did not own alone. */
static void test_concurrent_private_not_kept(void **state)
{
    struct fix_fs *f = *state;
    struct fsops_upload a, b;
    uint64_t have;

    assert_int_equal(fsops_upload_open(f->root, "f", 0, &a, &have), 0);
    assert_int_equal(fsops_upload_write(&a, "mine", 4), 0);
    assert_int_equal(fsops_upload_open(f->root, "f", 0, &b, &have), 0);
    assert_int_equal(b.shared_name, 0);
    /* b's resume = 0 must not have truncated a's temporary. */
    assert_true(fix_fs_has_content(f, "root/.f" PART, "mine"));
    assert_int_equal(fsops_upload_write(&b, "theirs", 6), 0);
    fsops_upload_abandon(&b, 1);
    assert_owns_nothing(&b);
    assert_int_equal(count_parts(f, "root"), 1);
    assert_true(fix_fs_has_content(f, "root/.f" PART, "mine"));
    fsops_upload_abandon(&a, 0);
    assert_int_equal(count_parts(f, "root"), 0);
    assert_false(fix_fs_exists(f, "root/f"));
}

/* ---- upload: lock-then-verify --------------------------------------------------------- */

/* Sequentially: A's part was renamed into place, so B's resume finds no
 * part and must start a new one, never lock (or append to) the file A
 * committed. */
static void test_resume_after_commit(void **state)
{
    struct fix_fs *f = *state;
    struct fsops_upload a, b;
    uint64_t have = 99;
    struct stat committed, st;

    assert_int_equal(fsops_upload_open(f->root, "f", 1, &a, &have), 0);
    assert_int_equal(fsops_upload_write(&a, "committed\n", 10), 0);
    assert_int_equal(fsops_upload_commit(&a, 0644, NULL, 0, 0), 0);
    fix_fs_lstat(f, "root/f", &committed);

    assert_int_equal(fsops_upload_open(f->root, "f", 1, &b, &have), 0);
    assert_int_equal(have, 0);
    assert_int_equal(b.shared_name, 1);
    assert_int_equal(fstat(b.fd, &st), 0);
    assert_true(st.st_ino != committed.st_ino);
    assert_int_equal(fsops_upload_write(&b, "BBBB", 4), 0);
    fsops_upload_abandon(&b, 0);
    assert_true(fix_fs_has_content(f, "root/f", "committed\n"));
    assert_int_equal(count_parts(f, "root"), 0);
}

struct race {
    struct fsops_upload *a;
    int rc;
    unsigned runs;
};

/* Runs inside B's fsops_upload_open, after it opened ".f.ferry-part" (A's
 * inode) and before it locks it: A commits, renaming that very inode to
 * "f" and dropping its lock, so B's flock now succeeds on the committed
 * file.  take_shared must notice the name no longer leads there. */
static void commit_a(void *arg)
{
    struct race *r = arg;

    r->runs++;
    r->rc = fsops_upload_commit(r->a, 0644, NULL, 0, 0);
}

static void test_lock_then_verify_race(void **state)
{
    struct fix_fs *f = *state;
    struct fsops_upload a, b;
    struct race r = { .a = &a, .rc = 1 };
    uint64_t have = 99;
    struct stat committed, st;
    unsigned calls;

    assert_int_equal(fsops_upload_open(f->root, "f", 1, &a, &have), 0);
    assert_int_equal(a.shared_name, 1);
    assert_int_equal(fsops_upload_write(&a, "committed\n", 10), 0);

    calls = flock_calls;
    flock_hook_arg = &r;
    flock_hook = commit_a;
    assert_int_equal(fsops_upload_open(f->root, "f", 1, &b, &have), 0);
    /* The hook really ran in the window (fsops calls our flock) and A's
     * commit succeeded. */
    assert_int_equal(r.runs, 1);
    assert_int_equal(r.rc, 0);
    assert_owns_nothing(&a);
    fix_fs_lstat(f, "root/f", &committed);

    assert_int_equal(have, 0);                     /* not the committed 10 bytes */
    /* B noticed, and locked once more, on a new part. */
    assert_true(flock_calls - calls >= 2);
    assert_int_equal(b.shared_name, 1);
    assert_int_equal(fstat(b.fd, &st), 0);
    assert_true(st.st_ino != committed.st_ino);    /* not the committed file */
    assert_int_equal(fsops_upload_write(&b, "BBBB", 4), 0);
    assert_true(fix_fs_has_content(f, "root/f", "committed\n"));
    fsops_upload_abandon(&b, 0);
    assert_true(fix_fs_has_content(f, "root/f", "committed\n"));
    fix_fs_lstat(f, "root/f", &st);
    assert_true(st.st_ino == committed.st_ino);
    assert_int_equal(count_parts(f, "root"), 0);
}

/* ---- upload: refusals ---------------------------------------------------------------- */

static void test_upload_dir_target(void **state)
{
    struct fix_fs *f = *state;
    struct fsops_upload u;
    uint64_t have = 99;

    fix_fs_mkdir(f, "root/d");
    assert_int_equal(fsops_upload_open(f->root, "d", 0, &u, &have), -EISDIR);
    assert_int_equal(have, 0);
    assert_owns_nothing(&u);
    assert_int_equal(count_parts(f, "root"), 0);

    /* A directory that appears at the name during the upload: the commit
     * fails, and the temporary is removed. */
    assert_int_equal(fsops_upload_open(f->root, "late", 0, &u, &have), 0);
    assert_int_equal(fsops_upload_write(&u, "x", 1), 0);
    fix_fs_mkdir(f, "root/late");
    assert_int_equal(fsops_upload_commit(&u, 0644, NULL, 0, 0), -EISDIR);
    assert_owns_nothing(&u);
    assert_int_equal(count_parts(f, "root"), 0);
}

/* A symlink planted where the resumable temporary goes must not be
 * written, truncated or created through, with or without resume. */
static void test_upload_planted_part_symlink(void **state)
{
    struct fix_fs *f = *state;
    char target[PATH_MAX];
    struct fsops_upload u;
    uint64_t have = 99;
    struct stat before, after;
    int rc;

    pathf(target, sizeof target, "%s/secret", f->outside);
    fix_fs_link(f, target, "root/.f" PART);
    fix_fs_lstat(f, "outside/secret", &before);
    for (int resume = 0; resume <= 1; resume++) {
        rc = fsops_upload_open(f->root, "f", resume, &u, &have);
        assert_true(rc < 0);
        assert_int_equal(rc, FERRY_EPATH_SYMLINK);
        assert_int_equal(have, 0);
        assert_owns_nothing(&u);
    }
    fix_fs_lstat(f, "outside/secret", &after);
    assert_true(fix_fs_has_content(f, "outside/secret", "outside secret\n"));
    assert_int_equal(after.st_mode, before.st_mode);
    assert_true(after.st_mtim.tv_sec == before.st_mtim.tv_sec &&
                after.st_mtim.tv_nsec == before.st_mtim.tv_nsec);

    /* Dangling, to a place outside: nothing is created there. */
    pathf(target, sizeof target, "%s/created", f->outside);
    fix_fs_link(f, target, "root/.g" PART);
    assert_int_equal(fsops_upload_open(f->root, "g", 1, &u, &have), FERRY_EPATH_SYMLINK);
    assert_owns_nothing(&u);
    assert_false(fix_fs_exists(f, "outside/created"));
    assert_false(fix_fs_exists(f, "root/f"));
    assert_false(fix_fs_exists(f, "root/g"));
}

/* The temporary's name was removed, or made to lead to another file, while
 * the upload wrote: commit must not rename whatever is there now. */
static void test_commit_refuses_a_replaced_temporary(void **state)
{
    struct fix_fs *f = *state;
    char tmp[PATH_MAX], other[PATH_MAX];
    struct fsops_upload u;
    uint64_t have;

    fix_fs_file(f, "root/f", "old\n");
    /* Removed: nothing under the name, the old file stays. */
    assert_int_equal(fsops_upload_open(f->root, "f", 0, &u, &have), 0);
    assert_int_equal(fsops_upload_write(&u, "verified\n", 9), 0);
    pathf(tmp, sizeof tmp, "%s/root/%s", f->base, u.tmp);
    assert_int_equal(unlink(tmp), 0);
    assert_int_equal(fsops_upload_commit(&u, 0644, NULL, 0, 0), -ESTALE);
    assert_owns_nothing(&u);
    assert_true(fix_fs_has_content(f, "root/f", "old\n"));

    /* Replaced by another file: that file is neither committed nor removed
     * (it is not ours), and the old file stays. */
    assert_int_equal(fsops_upload_open(f->root, "f", 0, &u, &have), 0);
    assert_int_equal(fsops_upload_write(&u, "verified\n", 9), 0);
    pathf(tmp, sizeof tmp, "%s/root/%s", f->base, u.tmp);
    pathf(other, sizeof other, "%s/root/planted", f->base);
    fix_fs_file(f, "root/planted", "foreign\n");
    assert_int_equal(rename(other, tmp), 0);
    assert_int_equal(fsops_upload_commit(&u, 0644, NULL, 0, 0), -ESTALE);
    assert_owns_nothing(&u);
    assert_true(fix_fs_has_content(f, "root/f", "old\n"));
    assert_int_equal(unlink(tmp), 0);
}

/* A hard link planted on the shared temporary's name would make the upload
 * write into the linked file: such a name is left alone. */
static void test_upload_planted_part_hard_link(void **state)
{
    struct fix_fs *f = *state;
    char link_path[PATH_MAX], target[PATH_MAX];
    struct fsops_upload u;
    uint64_t have = 99;

    fix_fs_file(f, "root/victim", "precious\n");
    pathf(target, sizeof target, "%s/root/victim", f->base);
    pathf(link_path, sizeof link_path, "%s/root/.f" PART, f->base);
    assert_int_equal(link(target, link_path), 0);
    assert_int_equal(fsops_upload_open(f->root, "f", 1, &u, &have), 0);
    assert_int_equal(have, 0);
    assert_int_equal(u.shared_name, 0);
    assert_int_equal(fsops_upload_write(&u, "new\n", 4), 0);
    assert_int_equal(fsops_upload_commit(&u, 0644, NULL, 0, 0), 0);
    assert_true(fix_fs_has_content(f, "root/f", "new\n"));
    assert_true(fix_fs_has_content(f, "root/victim", "precious\n"));
    assert_int_equal(unlink(link_path), 0);
}

/* Paths the sandbox refuses come back as its codes; nothing is made. */
static void test_upload_sandbox(void **state)
{
    static const struct { const char *path; int code; } bad[] = {
        { "../x", FERRY_EPATH_DOTDOT },
        { "/abs", FERRY_EPATH_ABSOLUTE },
        { ".", FERRY_EPATH_DOT },
        { "", FERRY_EPATH_EMPTY },
        { "sub/..", FERRY_EPATH_DOT },         /* a ".." target: fspath_parent says EDOT */
        { "sub/./x", FERRY_EPATH_DOT },
        { "a//b", FERRY_EPATH_SLASH },
        { "x/", FERRY_EPATH_SLASH },
        { "bad\nname", FERRY_EPATH_CONTROL },
    };
    struct fix_fs *f = *state;
    struct fsops_upload u;
    uint64_t have;

    fix_fs_mkdir(f, "root/sub");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        have = 99;
        assert_int_equal(fsops_upload_open(f->root, bad[i].path, 0, &u, &have), bad[i].code);
        assert_int_equal(have, 0);
        assert_owns_nothing(&u);
    }
    /* Through a directory symlink that leads out. */
    fix_fs_link(f, f->outside, "root/out");
    assert_int_equal(fsops_upload_open(f->root, "out/new", 0, &u, &have), fix_fs_escape_code(f));
    assert_owns_nothing(&u);
    assert_false(fix_fs_exists(f, "outside/new"));
    assert_false(fix_fs_exists(f, "outside/.new" PART));
    assert_int_equal(count_parts(f, "outside"), 0);
    assert_int_equal(count_parts(f, "root"), 0);
}

/* A 255-byte name leaves no room for ".NAME.ferry-part": the NAME inside
 * the temporary is cut short, and the upload still commits under the full
 * name; likewise for a second, private, temporary. */
static void test_upload_long_name(void **state)
{
    struct fix_fs *f = *state;
    char name[NAME_MAX + 1];
    char rel[PATH_MAX];
    struct fsops_upload a, b;
    uint64_t have;
    size_t keep;

    memset(name, 'n', NAME_MAX);
    name[NAME_MAX] = '\0';
    name[0] = 'L';
    name[NAME_MAX - 1] = 'z';
    assert_int_equal(fsops_upload_open(f->root, name, 0, &a, &have), 0);
    assert_string_equal(a.name, name);
    assert_int_equal(a.shared_name, 1);
    assert_true(strlen(a.tmp) <= NAME_MAX);
    assert_int_equal(a.tmp[0], '.');
    assert_string_equal(a.tmp + strlen(a.tmp) - strlen(PART), PART);
    keep = strlen(a.tmp) - 1 - strlen(PART);
    assert_true(keep >= 1 && keep < NAME_MAX);
    assert_memory_equal(a.tmp + 1, name, keep);

    assert_int_equal(fsops_upload_open(f->root, name, 0, &b, &have), 0);
    assert_int_equal(b.shared_name, 0);
    assert_true(is_private_tmp(b.tmp, name));
    assert_int_equal(count_parts(f, "root"), 2);

    assert_int_equal(fsops_upload_write(&a, "long\n", 5), 0);
    assert_int_equal(fsops_upload_write(&b, "private\n", 8), 0);
    assert_int_equal(fsops_upload_commit(&a, 0644, NULL, 0, 0), 0);
    pathf(rel, sizeof rel, "root/%s", name);
    assert_true(fix_fs_has_content(f, rel, "long\n"));
    assert_int_equal(fsops_upload_commit(&b, 0644, NULL, 0, 0), 0);
    assert_true(fix_fs_has_content(f, rel, "private\n"));
    assert_int_equal(count_parts(f, "root"), 0);
}

/* ---- upload: a write that fails -------------------------------------------------------- */

#define FSIZE_LIMIT 4096

/* In the child: exit 0 when write gave -EFBIG and abandon left nothing;
 * otherwise a code saying which step went wrong. */
static int efbig_child(struct fix_fs *f)
{
    static char buf[FSIZE_LIMIT * 2];
    struct rlimit rl = { .rlim_cur = FSIZE_LIMIT, .rlim_max = FSIZE_LIMIT };
    struct fsops_upload u;
    uint64_t have;
    int rc;

    /* Without this, exceeding the limit kills the process with SIGXFSZ
     * instead of failing the write. */
    if (signal(SIGXFSZ, SIG_IGN) == SIG_ERR)
        return 10;
    if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
        return 11;
    if (fsops_upload_open(f->root, "big", 0, &u, &have) != 0)
        return 12;
    memset(buf, 'b', sizeof buf);
    rc = fsops_upload_write(&u, buf, sizeof buf);
    if (rc != -EFBIG) {
        fprintf(stderr, "child: write gave %d, not -EFBIG\n", rc);
        fsops_upload_abandon(&u, 0);
        return 13;
    }
    fsops_upload_abandon(&u, 0);
    if (u.fd != -1 || u.dirfd != -1)
        return 14;
    if (fix_fs_exists(f, "root/.big" PART) || fix_fs_exists(f, "root/big"))
        return 15;
    return 0;
}

static void test_upload_write_efbig(void **state)
{
    struct fix_fs *f = *state;
    int status;
    pid_t pid;

    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(efbig_child(f));
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(count_parts(f, "root"), 0);
    assert_false(fix_fs_exists(f, "root/big"));
}


/* Both resolvers, each under its own name. */
#define BOTH(fn)                                                   \
    { #fn "/openat2", fn, setup_openat2, teardown, NULL },         \
    { #fn "/fallback", fn, setup_fallback, teardown, NULL }

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_upload_basic),
        BOTH(test_upload_modes),
        BOTH(test_upload_replaces_existing),
        BOTH(test_upload_over_symlink),
        BOTH(test_upload_abandon),
        BOTH(test_upload_keep_and_resume),
        BOTH(test_upload_no_resume_truncates),
        BOTH(test_concurrent_second_wins),
        BOTH(test_concurrent_first_wins),
        BOTH(test_concurrent_private_not_kept),
        BOTH(test_resume_after_commit),
        BOTH(test_lock_then_verify_race),
        BOTH(test_upload_dir_target),
        BOTH(test_upload_planted_part_symlink),
        BOTH(test_upload_planted_part_hard_link),
        BOTH(test_commit_refuses_a_replaced_temporary),
        BOTH(test_upload_sandbox),
        BOTH(test_upload_long_name),
        BOTH(test_upload_write_efbig),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

