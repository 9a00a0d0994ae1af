/*
 * test_fspath.c - ferryd's path sandbox (src/ferryd/fspath.c) against a real
 * directory tree.
 *
 * Each test gets a fresh mkdtemp directory BASE holding the served root
 * (BASE/root) and a place outside it (BASE/outside, with a file "secret"
 * and a directory "d" holding "f").  Tests that resolve paths run twice:
 * with openat2, and with the component-by-component fallback forced by
 * fspath_force_fallback; the expectations differ only where documented
 * (the fallback follows no symlink at all).  Every test also checks that
 * the process has the same number of descriptors before and after, so
 * failure paths leak nothing.  Nothing sleeps: the race test is a bounded
 * number of opens against a thread that swaps as fast as it can.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "unit_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fix_fsroot.h"
#include "fspath.h"

#define RACE_OPENS 2000

/* ---- the fixture (fix_fsroot) --------------------------------------------- */

static int setup_openat2(void **state)  { return fix_fs_setup(state, false, "test_fspath"); }
static int setup_fallback(void **state) { return fix_fs_setup(state, true, "test_fspath"); }
static int teardown(void **state)       { return fix_fs_teardown(state); }

/* fspath_open for reading; returns the code, closes any descriptor. */
static int try_open(const struct fix_fs *f, const char *path, int flags)
{
    int fd = -1;
    int rc = fspath_open(f->root, path, flags, 0, &fd);

    if (rc == 0) {
        assert_true(fd >= 0);
        close(fd);
    } else {
        assert_int_equal(fd, -1);
    }
    return rc;
}

/* ---- fspath_check: what is accepted -------------------------------------- */

static void test_check_accepts(void **state)
{
    static const char *const ok[] = {
        ".", "a", "a/b/c", "a.b", "..a", "a..", "...", ".hidden", "a/.b",
        "with space", "caf\xc3\xa9", "x.ferry-part",
    };
    char name[NAME_MAX + 1];
    char err[128];
    size_t i;

    for (i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        strcpy(err, "untouched");
        assert_int_equal(fspath_check(ok[i], err, sizeof err), 0);
        assert_string_equal(err, "untouched");
    }
    memset(name, 'n', NAME_MAX);
    name[NAME_MAX] = '\0';
    assert_int_equal(fspath_check(name, err, sizeof err), 0);
}

static void test_check_empty(void **state)
{
    char err[128] = "";

    assert_int_equal(fspath_check("", err, sizeof err), FERRY_EPATH_EMPTY);
    assert_string_equal(err, "empty path");
    assert_int_equal(try_open(*state, "", O_RDONLY), FERRY_EPATH_EMPTY);
}

/* ---- rejections from the "Path safety" list ----------------------- */

static void test_reject_absolute(void **state)
{
    struct fix_fs *f = *state;
    int dirfd = -1;
    const char *name = NULL;
    char err[128] = "";

    assert_int_equal(fspath_check("/etc/passwd", err, sizeof err), FERRY_EPATH_ABSOLUTE);
    assert_non_null(strstr(err, "absolute"));
    assert_int_equal(fspath_check("/", NULL, 0), FERRY_EPATH_ABSOLUTE);
    assert_int_equal(try_open(f, "/etc/passwd", O_RDONLY), FERRY_EPATH_ABSOLUTE);
    assert_int_equal(fspath_parent(f->root, "/etc/passwd", &dirfd, &name), FERRY_EPATH_ABSOLUTE);
    assert_int_equal(dirfd, -1);
}

static void test_reject_dotdot_leading(void **state)
{
    struct fix_fs *f = *state;
    char err[128] = "";

    fix_fs_file(f, "x", "in base, next to root\n");
    assert_int_equal(fspath_check("../x", err, sizeof err), FERRY_EPATH_DOTDOT);
    assert_non_null(strstr(err, "'..'"));
    assert_int_equal(try_open(f, "../x", O_RDONLY), FERRY_EPATH_DOTDOT);
    assert_int_equal(try_open(f, "../outside/secret", O_RDONLY), FERRY_EPATH_DOTDOT);
    assert_int_equal(try_open(f, "..", O_RDONLY | O_DIRECTORY), FERRY_EPATH_DOTDOT);
}

static void test_reject_dotdot_nested(void **state)
{
    struct fix_fs *f = *state;

    fix_fs_mkdir(f, "root/a");
    fix_fs_file(f, "root/b", "inside\n");
    assert_int_equal(try_open(f, "a/../../x", O_RDONLY), FERRY_EPATH_DOTDOT);
    /* Even when it would stay inside. */
    assert_int_equal(try_open(f, "a/../b", O_RDONLY), FERRY_EPATH_DOTDOT);
}

static void test_reject_dotdot_trailing(void **state)
{
    struct fix_fs *f = *state;

    fix_fs_mkdir(f, "root/a");
    assert_int_equal(fspath_check("a/..", NULL, 0), FERRY_EPATH_DOTDOT);
    assert_int_equal(try_open(f, "a/..", O_RDONLY | O_DIRECTORY), FERRY_EPATH_DOTDOT);
}

static void test_reject_control_bytes(void **state)
{
    static const char *const bad[] = {
        "\x01", "a\nb", "a/\x7f", "tab\there", "cr\r", "\x1f/x", "esc\x1b[31m",
    };
    struct fix_fs *f = *state;
    char err[128];
    size_t i;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(fspath_check(bad[i], err, sizeof err), FERRY_EPATH_CONTROL);
        /* The reason names the byte but never echoes the path. */
        assert_non_null(strstr(err, "control character"));
        assert_null(strchr(err, '\n'));
        assert_null(strchr(err, '\x1b'));
    }
    /* A file with such a name exists: still refused, by name alone. */
    fix_fs_file(f, "root/a\nb", "newline\n");
    assert_int_equal(try_open(f, "a\nb", O_RDONLY), FERRY_EPATH_CONTROL);
}

static void test_reject_name_too_long(void **state)
{
    struct fix_fs *f = *state;
    char path[NAME_MAX + 8];
    int fd = -1;

    memset(path, 'n', NAME_MAX + 1);
    path[NAME_MAX + 1] = '\0';
    assert_int_equal(fspath_check(path, NULL, 0), FERRY_EPATH_NAMELONG);
    assert_int_equal(try_open(f, path, O_WRONLY | O_CREAT), FERRY_EPATH_NAMELONG);

    /* Exactly NAME_MAX is fine, and really creatable. */
    path[NAME_MAX] = '\0';
    assert_int_equal(fspath_open(f->root, path, O_WRONLY | O_CREAT | O_EXCL, 0644, &fd), 0);
    close(fd);
}

static void test_reject_path_too_long(void **state)
{
    struct fix_fs *f = *state;
    char *path = malloc(PATH_MAX + 1);
    size_t i;

    assert_non_null(path);
    /* "a/a/a/...": PATH_MAX bytes, every component short. */
    for (i = 0; i < PATH_MAX; i++)
        path[i] = (i % 2) ? '/' : 'a';
    path[PATH_MAX] = '\0';
    if (path[PATH_MAX - 1] == '/')
        path[PATH_MAX - 1] = 'a';
    assert_int_equal(fspath_check(path, NULL, 0), FERRY_EPATH_LONG);
    assert_int_equal(try_open(f, path, O_RDONLY), FERRY_EPATH_LONG);

    /* One byte less passes the string check (it does not exist, of course). */
    path[PATH_MAX - 1] = '\0';
    if (path[PATH_MAX - 2] == '/')
        path[PATH_MAX - 2] = 'a';
    assert_int_equal(fspath_check(path, NULL, 0), 0);
    assert_int_equal(try_open(f, path, O_RDONLY), -ENOENT);
    free(path);
}

static void test_reject_slashes(void **state)
{
    struct fix_fs *f = *state;

    fix_fs_mkdir(f, "root/a");
    fix_fs_file(f, "root/a/b", "b\n");
    assert_int_equal(fspath_check("a//b", NULL, 0), FERRY_EPATH_SLASH);
    assert_int_equal(fspath_check("a/", NULL, 0), FERRY_EPATH_SLASH);
    assert_int_equal(fspath_check("a/b/", NULL, 0), FERRY_EPATH_SLASH);
    assert_int_equal(try_open(f, "a//b", O_RDONLY), FERRY_EPATH_SLASH);
    assert_int_equal(try_open(f, "a/b", O_RDONLY), 0);
}

static void test_reject_dot_components(void **state)
{
    struct fix_fs *f = *state;

    assert_int_equal(fspath_check("./a", NULL, 0), FERRY_EPATH_DOT);
    assert_int_equal(fspath_check("a/./b", NULL, 0), FERRY_EPATH_DOT);
    assert_int_equal(fspath_check("a/.", NULL, 0), FERRY_EPATH_DOT);
    assert_int_equal(try_open(f, "./a", O_RDONLY), FERRY_EPATH_DOT);
}

/* "." alone is the root, for listing. */
static void test_dot_is_root(void **state)
{
    struct fix_fs *f = *state;
    struct dirent *de;
    bool seen = false;
    DIR *d;
    int fd = -1;

    fix_fs_file(f, "root/listed", "x\n");
    assert_int_equal(fspath_open(f->root, ".", O_RDONLY | O_DIRECTORY, 0, &fd), 0);
    assert_true(fix_fs_same_file(fd, f, "root"));
    d = fdopendir(fd);
    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        seen |= strcmp(de->d_name, "listed") == 0;
    closedir(d);
    assert_true(seen);
}

static void test_parent_rejects_dot_targets(void **state)
{
    static const char *const bad[] = { ".", "..", "a/.", "a/..", "a/b/.." };
    struct fix_fs *f = *state;
    const char *name;
    int dirfd;
    size_t i;

    fix_fs_mkdir(f, "root/a");
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dirfd = 12345;
        name = "untouched";
        assert_int_equal(fspath_parent(f->root, bad[i], &dirfd, &name), FERRY_EPATH_DOT);
        assert_int_equal(dirfd, -1);
        assert_null(name);
    }
    /* A ".." that is not the target is still a "..". */
    assert_int_equal(fspath_parent(f->root, "../x", &dirfd, &name), FERRY_EPATH_DOTDOT);
    assert_int_equal(fspath_parent(f->root, "", &dirfd, &name), FERRY_EPATH_EMPTY);
}

static void test_parent_gives_dir_and_name(void **state)
{
    struct fix_fs *f = *state;
    const char *path = "a/b/new";
    const char *name = NULL;
    int dirfd = -1;

    fix_fs_mkdir(f, "root/a");
    fix_fs_mkdir(f, "root/a/b");
    assert_int_equal(fspath_parent(f->root, path, &dirfd, &name), 0);
    assert_ptr_equal(name, path + 4);
    assert_true(fix_fs_same_file(dirfd, f, "root/a/b"));
    assert_int_equal(fcntl(dirfd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    /* What the file service does with it. */
    assert_int_equal(mkdirat(dirfd, name, 0755), 0);
    assert_true(fix_fs_exists(f, "root/a/b/new"));
    assert_int_equal(unlinkat(dirfd, name, AT_REMOVEDIR), 0);
    assert_false(fix_fs_exists(f, "root/a/b/new"));
    close(dirfd);

    /* A top-level name: the parent is the root. */
    assert_int_equal(fspath_parent(f->root, "top", &dirfd, &name), 0);
    assert_string_equal(name, "top");
    assert_true(fix_fs_same_file(dirfd, f, "root"));
    close(dirfd);

    /* The parent must exist and be a directory. */
    fix_fs_file(f, "root/plain", "p\n");
    assert_int_equal(fspath_parent(f->root, "missing/x", &dirfd, &name), -ENOENT);
    assert_int_equal(fspath_parent(f->root, "plain/x", &dirfd, &name), -ENOTDIR);
    assert_int_equal(dirfd, -1);
}

/* ---- symlinks ----------------------------------------------------------------- */

/* ln -s /etc root/evil; evil/passwd must not be /etc/passwd. */
static void test_symlink_to_etc(void **state)
{
    struct fix_fs *f = *state;

    fix_fs_link(f, "/etc", "root/evil");
    assert_int_equal(try_open(f, "evil/passwd", O_RDONLY), fix_fs_escape_code(f));
    assert_int_equal(try_open(f, "evil", O_RDONLY | O_DIRECTORY), fix_fs_escape_code(f));
}

static void test_symlink_escapes(void **state)
{
    struct fix_fs *f = *state;
    const char *name;
    int dirfd = -1;

    fix_fs_link(f, f->outside, "root/abs");        /* absolute, outside */
    fix_fs_link(f, "../outside", "root/rel");      /* relative, climbs out */
    fix_fs_link(f, "../", "root/up");              /* to the root's parent */
    fix_fs_link(f, "..", "root/up2");
    fix_fs_mkdir(f, "root/sub");
    fix_fs_link(f, "../../outside/secret", "root/sub/deep");

    assert_int_equal(try_open(f, "abs/secret", O_RDONLY), fix_fs_escape_code(f));
    assert_int_equal(try_open(f, "rel/secret", O_RDONLY), fix_fs_escape_code(f));
    assert_int_equal(try_open(f, "up/outside/secret", O_RDONLY), fix_fs_escape_code(f));
    assert_int_equal(try_open(f, "up2", O_RDONLY | O_DIRECTORY), fix_fs_escape_code(f));
    assert_int_equal(try_open(f, "sub/deep", O_RDONLY), fix_fs_escape_code(f));
    /* Nor can one be used as the directory for a write. */
    assert_int_equal(fspath_parent(f->root, "abs/planted", &dirfd, &name), fix_fs_escape_code(f));
    assert_int_equal(fspath_parent(f->root, "up/planted", &dirfd, &name), fix_fs_escape_code(f));
    assert_int_equal(try_open(f, "rel/planted", O_WRONLY | O_CREAT), fix_fs_escape_code(f));
    assert_false(fix_fs_exists(f, "outside/planted"));
    assert_false(fix_fs_exists(f, "planted"));
}

static void test_symlink_inside(void **state)
{
    struct fix_fs *f = *state;
    const char *name;
    int fd = -1, dirfd = -1;
    int rc;

    fix_fs_mkdir(f, "root/sub");
    fix_fs_mkdir(f, "root/other");
    fix_fs_file(f, "root/sub/file", "inside\n");
    fix_fs_link(f, "sub", "root/link");                   /* a directory, inside */
    fix_fs_link(f, "../sub/file", "root/other/rel");      /* climbs, but stays in */
    fix_fs_link(f, "file", "root/sub/flink");             /* final component */

    rc = fspath_open(f->root, "link/file", O_RDONLY, 0, &fd);
    if (f->fallback) {
        /* The fallback follows no symlink at all, inside or not. */
        assert_int_equal(rc, FERRY_EPATH_SYMLINK);
        assert_int_equal(try_open(f, "other/rel", O_RDONLY), FERRY_EPATH_SYMLINK);
        assert_int_equal(try_open(f, "sub/flink", O_RDONLY), FERRY_EPATH_SYMLINK);
        assert_int_equal(try_open(f, "link", O_PATH), FERRY_EPATH_SYMLINK);
        assert_int_equal(fspath_parent(f->root, "link/x", &dirfd, &name), FERRY_EPATH_SYMLINK);
        assert_int_equal(fspath_parent(f->root, "other/rel/x", &dirfd, &name),
                         FERRY_EPATH_SYMLINK);
        return;
    }
    assert_int_equal(rc, 0);
    assert_true(fix_fs_same_file(fd, f, "root/sub/file"));
    close(fd);
    assert_int_equal(fspath_open(f->root, "other/rel", O_RDONLY, 0, &fd), 0);
    assert_true(fix_fs_same_file(fd, f, "root/sub/file"));
    close(fd);
    assert_int_equal(fspath_open(f->root, "sub/flink", O_RDONLY, 0, &fd), 0);
    assert_true(fix_fs_same_file(fd, f, "root/sub/file"));
    close(fd);
    assert_int_equal(fspath_parent(f->root, "link/x", &dirfd, &name), 0);
    assert_true(fix_fs_same_file(dirfd, f, "root/sub"));
    close(dirfd);

    /* An absolute target is refused even when it names a place inside. */
    {
        char target[PATH_MAX];

        pathf(target, sizeof target, "%s/sub", f->root_dir);
        fix_fs_link(f, target, "root/abs_inside");
        assert_int_equal(try_open(f, "abs_inside/file", O_RDONLY), FERRY_EPATH_ESCAPE);
    }
}

/* Magic links (/proc/PID/cwd, /proc/PID/fd/N, ...) can point anywhere, so
 * they are never followed even when they sit beneath the root: served from
 * /proc/self, "cwd" and "root" must not lead anywhere. */
static void test_no_magic_links(void **state)
{
    struct fsroot *proc = NULL;
    char err[256] = "";
    int fd = -1;

    assert_int_equal(fsroot_open("/proc/self", 0, &proc, err, sizeof err), 0);
    assert_int_equal(fspath_open(proc, "cwd", O_RDONLY | O_DIRECTORY, 0, &fd),
                     FERRY_EPATH_SYMLINK);
    assert_int_equal(fspath_open(proc, "root/etc/passwd", O_RDONLY, 0, &fd),
                     FERRY_EPATH_SYMLINK);
    assert_int_equal(fspath_open(proc, "fd/0", O_RDONLY, 0, &fd), FERRY_EPATH_SYMLINK);
    assert_int_equal(fd, -1);
    /* A plain file under it is fine. */
    assert_int_equal(fspath_open(proc, "status", O_RDONLY, 0, &fd), 0);
    close(fd);
    fsroot_close(proc);
}

/* The fallback walker refuses every kind of symlink, wherever it is. */
static void test_fallback_refuses_every_symlink(void **state)
{
    struct fix_fs *f = *state;
    const char *name;
    int dirfd = -1;

    assert_true(f->fallback);
    fix_fs_mkdir(f, "root/d");
    fix_fs_file(f, "root/d/f", "f\n");
    fix_fs_link(f, "d", "root/l");
    fix_fs_link(f, "f", "root/d/lf");
    fix_fs_link(f, "nowhere", "root/dangling");

    assert_int_equal(try_open(f, "l/f", O_RDONLY), FERRY_EPATH_SYMLINK);
    assert_int_equal(try_open(f, "l", O_RDONLY | O_DIRECTORY), FERRY_EPATH_SYMLINK);
    assert_int_equal(try_open(f, "l", O_PATH | O_DIRECTORY), FERRY_EPATH_SYMLINK);
    assert_int_equal(try_open(f, "d/lf", O_RDONLY), FERRY_EPATH_SYMLINK);
    assert_int_equal(try_open(f, "d/lf", O_PATH), FERRY_EPATH_SYMLINK);
    assert_int_equal(try_open(f, "dangling", O_RDONLY), FERRY_EPATH_SYMLINK);
    assert_int_equal(fspath_parent(f->root, "l/new", &dirfd, &name), FERRY_EPATH_SYMLINK);
    /* Plain directories still work. */
    assert_int_equal(try_open(f, "d/f", O_RDONLY), 0);
}

/* ---- creating ------------------------------------------------------------------- */

static void test_create_beneath(void **state)
{
    struct fix_fs *f = *state;
    int fd = -1;

    fix_fs_mkdir(f, "root/sub");
    assert_int_equal(fspath_open(f->root, "sub/new", O_WRONLY | O_CREAT | O_EXCL, 0600, &fd), 0);
    assert_int_equal(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    assert_int_equal(write(fd, "hello", 5), 5);
    assert_true(fix_fs_same_file(fd, f, "root/sub/new"));
    close(fd);
    assert_int_equal(try_open(f, "sub/new", O_WRONLY | O_CREAT | O_EXCL), -EEXIST);
    /* Without O_EXCL an existing regular file is simply opened. */
    assert_int_equal(try_open(f, "sub/new", O_WRONLY | O_CREAT), 0);
    assert_int_equal(try_open(f, "missing/new", O_WRONLY | O_CREAT), -ENOENT);
}

/* root/x -> BASE/outside/created (dangling): creating x creates nothing. */
static void test_create_through_dangling_symlink(void **state)
{
    struct fix_fs *f = *state;
    char target[PATH_MAX];

    pathf(target, sizeof target, "%s/created", f->outside);
    fix_fs_link(f, target, "root/x");
    fix_fs_link(f, "inside-target", "root/y");

    /* O_EXCL: a symlink "exists", whatever it points to. */
    assert_int_equal(try_open(f, "x", O_WRONLY | O_CREAT | O_EXCL), -EEXIST);
    /* Without O_EXCL, O_NOFOLLOW (added by fspath) refuses it. */
    assert_int_equal(try_open(f, "x", O_WRONLY | O_CREAT), FERRY_EPATH_SYMLINK);
    assert_int_equal(try_open(f, "x", O_WRONLY | O_CREAT | O_TRUNC), FERRY_EPATH_SYMLINK);
    assert_false(fix_fs_exists(f, "outside/created"));
    /* Even a dangling link whose target would be inside is not followed. */
    assert_int_equal(try_open(f, "y", O_WRONLY | O_CREAT), FERRY_EPATH_SYMLINK);
    assert_false(fix_fs_exists(f, "root/inside-target"));
}

/* ---- the race -------------------------------------------------------------------- */

struct swapper {
    int rootfd;
    atomic_int stop;
    atomic_uint swaps;
    int error;
};

/* Swap root/d (a real directory) and root/s (a symlink to outside) as fast
 * as possible; RENAME_EXCHANGE leaves no instant where "d" is missing. */
static void *swap_thread(void *arg)
{
    struct swapper *sw = arg;

    while (!atomic_load(&sw->stop)) {
        if (renameat2(sw->rootfd, "d", sw->rootfd, "s", RENAME_EXCHANGE) < 0) {
            sw->error = errno;
            break;
        }
        atomic_fetch_add(&sw->swaps, 1);
    }
    return NULL;
}

static void run_race(struct fix_fs *f, const char *link_target)
{
    struct swapper sw = { .error = 0 };
    struct stat inside, outside;
    unsigned ok = 0, refused = 0, again = 0, escaped = 0;
    int unexpected = 0;
    pthread_t th;
    int i;
    int dirfd = -1;

    fix_fs_mkdir(f, "root/d");
    fix_fs_file(f, "root/d/f", "inside f\n");
    fix_fs_link(f, link_target, "root/s");
    fix_fs_stat(f, "root/d/f", &inside);
    fix_fs_stat(f, "outside/d/f", &outside);

    /* RENAME_EXCHANGE needs filesystem support; find out before racing. */
    dirfd = open(f->root_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    assert_true(dirfd >= 0);
    if (renameat2(dirfd, "d", dirfd, "s", RENAME_EXCHANGE) < 0) {
        close(dirfd);
        print_message("RENAME_EXCHANGE unsupported here (%s): race skipped\n",
                      strerror(errno));
        skip();
    }
    sw.rootfd = dirfd;
    assert_int_equal(pthread_create(&th, NULL, swap_thread, &sw), 0);

    /* Tally first, assert after the join: a failed assertion must not
     * leave the swapper running into the next test. */
    for (i = 0; i < RACE_OPENS; i++) {
        struct stat st;
        int fd = -1;
        int rc = fspath_open(f->root, "d/f", O_RDONLY, 0, &fd);

        if (rc == 0) {
            if (fstat(fd, &st) < 0)
                unexpected = -errno;
            else if (st.st_dev == outside.st_dev && st.st_ino == outside.st_ino)
                escaped++;
            else if (st.st_dev != inside.st_dev || st.st_ino != inside.st_ino)
                unexpected = INT_MIN;
            else
                ok++;
            close(fd);
        } else if (rc == fix_fs_escape_code(f)) {
            refused++;
        } else if (rc == -EAGAIN) {
            /* openat2 gives up on a ".." that keeps racing with renames. */
            again++;
        } else {
            unexpected = rc;
        }
    }
    atomic_store(&sw.stop, 1);
    assert_int_equal(pthread_join(th, NULL), 0);
    close(dirfd);
    print_message("race (%s): %u opened inside, %u refused, %u EAGAIN, %u swaps\n",
                  link_target, ok, refused, again, atomic_load(&sw.swaps));
    assert_int_equal(sw.error, 0);
    assert_int_equal(escaped, 0);       /* never the outside file */
    assert_int_equal(unexpected, 0);
}

static void test_race_absolute_link(void **state)
{
    struct fix_fs *f = *state;
    char target[PATH_MAX];

    pathf(target, sizeof target, "%s/d", f->outside);
    run_race(f, target);
}

static void test_race_relative_link(void **state)
{
    run_race(*state, "../outside/d");
}

/* ---- the root ------------------------------------------------------------------- */

static void test_root_open(void **state)
{
    struct fix_fs *f = *state;
    struct fsroot *r = NULL;
    char dir[PATH_MAX];
    char err[256] = "";
    struct stat a, b;

    /* create = 0: a missing directory is an error with a reason. */
    pathf(dir, sizeof dir, "%s/new/a/b", f->base);
    assert_int_equal(fsroot_open(dir, 0, &r, err, sizeof err), -ENOENT);
    assert_null(r);
    assert_non_null(strstr(err, dir));

    /* create = 1: mkdir, not mkdir -p; a missing parent is named (a typo
     * must not be served as a new empty tree) and nothing is made. */
    assert_int_equal(fsroot_open(dir, 1, &r, err, sizeof err), -ENOENT);
    assert_null(r);
    pathf(dir, sizeof dir, "%s/new/a", f->base);
    assert_non_null(strstr(err, dir));
    assert_non_null(strstr(err, "does not exist"));
    assert_false(fix_fs_exists(f, "new"));
    fix_fs_mkdir(f, "new");
    fix_fs_mkdir(f, "new/a");
    pathf(dir, sizeof dir, "%s//new/a/b/", f->base);
    assert_int_equal(fsroot_open(dir, 1, &r, err, sizeof err), 0);
    assert_non_null(r);
    assert_true(fsroot_fd(r) >= 0);
    assert_int_equal(fcntl(fsroot_fd(r), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    assert_int_equal(fcntl(fsroot_fd(r), F_GETFL) & O_PATH, O_PATH);
    assert_int_equal(fstat(fsroot_fd(r), &a), 0);
    fix_fs_stat(f, "new/a/b", &b);
    assert_true(S_ISDIR(b.st_mode));
    assert_true(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
    fsroot_close(r);
    r = NULL;

    /* Existing already: create is a no-op. */
    assert_int_equal(fsroot_open(dir, 1, &r, err, sizeof err), 0);
    fsroot_close(r);
    r = NULL;

    /* A file is not a root, with or without create. */
    fix_fs_file(f, "plain", "p\n");
    pathf(dir, sizeof dir, "%s/plain", f->base);
    assert_int_equal(fsroot_open(dir, 0, &r, err, sizeof err), -ENOTDIR);
    assert_int_equal(fsroot_open(dir, 1, &r, err, sizeof err), -ENOTDIR);
    pathf(dir, sizeof dir, "%s/plain/sub", f->base);
    assert_int_equal(fsroot_open(dir, 1, &r, err, sizeof err), -ENOTDIR);
    assert_non_null(strstr(err, "mkdir"));
    assert_null(r);

    assert_int_equal(fsroot_open("", 1, &r, err, sizeof err), -EINVAL);
    fsroot_close(NULL);
}

/* ---- the sweep ------------------------------------------------------------------ */

/* The sweep of f's root, to the end: *removed gets how many it removed. */
static int sweep(const struct fix_fs *f, const char *suffix, unsigned *removed)
{
    struct fspath_sweep out = { .stop = NULL };
    int r = fspath_sweep_temporaries(f->root, suffix, &out);

    assert_false(out.stopped);
    *removed = out.removed;
    return r;
}

static void test_sweep(void **state)
{
    struct fix_fs *f = *state;
    char target[PATH_MAX];
    unsigned removed = 99;

    fix_fs_file(f, "root/.a.ferry-part", "tmp\n");
    fix_fs_file(f, "root/keep.txt", "keep\n");
    fix_fs_file(f, "root/ferry-part", "no dot: not the suffix\n");
    fix_fs_file(f, "root/mine.ferry-part", "no leading dot: a user's file, not a temporary\n");
    fix_fs_file(f, "root/..ferry-part", "nothing between the dot and the suffix\n");
    fix_fs_mkdir(f, "root/sub");
    fix_fs_mkdir(f, "root/sub/deep");
    fix_fs_file(f, "root/sub/deep/.b.ferry-part", "tmp\n");
    fix_fs_file(f, "root/sub/deep/b", "keep\n");
    fix_fs_mkdir(f, "root/dir.ferry-part");                 /* a directory: kept */
    fix_fs_file(f, "root/dir.ferry-part/.c.1a2b3c4d.ferry-part", "tmp\n");
    pathf(target, sizeof target, "%s/x.ferry-part", f->outside);
    fix_fs_file(f, "outside/x.ferry-part", "outside\n");
    fix_fs_file(f, "outside/d/y.ferry-part", "outside\n");
    fix_fs_link(f, target, "root/.link.ferry-part");      /* a symlink: kept */
    fix_fs_link(f, f->outside, "root/outlink");           /* never entered */
    fix_fs_link(f, "../outside", "root/reloutlink");
    pathf(target, sizeof target, "%s/root/.fifo.ferry-part", f->base);
    assert_int_equal(mkfifo(target, 0600), 0);          /* not regular: kept */

    assert_int_equal(sweep(f, ".ferry-part", &removed), 0);
    assert_int_equal(removed, 3);
    assert_false(fix_fs_exists(f, "root/.a.ferry-part"));
    assert_false(fix_fs_exists(f, "root/sub/deep/.b.ferry-part"));
    assert_false(fix_fs_exists(f, "root/dir.ferry-part/.c.1a2b3c4d.ferry-part"));
    assert_true(fix_fs_exists(f, "root/keep.txt"));
    assert_true(fix_fs_exists(f, "root/ferry-part"));
    assert_true(fix_fs_exists(f, "root/mine.ferry-part"));
    assert_true(fix_fs_exists(f, "root/..ferry-part"));
    assert_true(fix_fs_exists(f, "root/sub/deep/b"));
    assert_true(fix_fs_exists(f, "root/dir.ferry-part"));
    assert_true(fix_fs_exists(f, "root/.link.ferry-part"));
    assert_true(fix_fs_exists(f, "root/.fifo.ferry-part"));
    assert_true(fix_fs_exists(f, "outside/x.ferry-part"));
    assert_true(fix_fs_exists(f, "outside/d/y.ferry-part"));
    assert_true(fix_fs_exists(f, "outside/secret"));

    /* Nothing left: a second sweep removes nothing. */
    assert_int_equal(sweep(f, ".ferry-part", &removed), 0);
    assert_int_equal(removed, 0);

    /* A suffix that would match everything, or a path, is refused. */
    assert_int_equal(sweep(f, "", &removed), -EINVAL);
    assert_int_equal(sweep(f, "a/b", &removed), -EINVAL);
    assert_true(fix_fs_exists(f, "root/keep.txt"));
}

/* A temporary whose flock is held is an upload in flight (of another
 * ferryd serving this root): the sweep leaves it, and takes it once the
 * lock has gone. */
static void test_sweep_spares_held(void **state)
{
    struct fix_fs *f = *state;
    char path[PATH_MAX];
    unsigned removed = 99;
    int fd;

    fix_fs_file(f, "root/.live.ferry-part", "in flight\n");
    fix_fs_file(f, "root/.live.1a2b3c4d.ferry-part", "in flight, private\n");
    fix_fs_file(f, "root/.dead.ferry-part", "left over\n");
    pathf(path, sizeof path, "%s/root/.live.ferry-part", f->base);
    fd = open(path, O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
    pathf(path, sizeof path, "%s/root/.live.1a2b3c4d.ferry-part", f->base);
    int priv = open(path, O_RDWR | O_CLOEXEC);
    assert_true(priv >= 0);
    assert_int_equal(flock(priv, LOCK_EX | LOCK_NB), 0);

    assert_int_equal(sweep(f, ".ferry-part", &removed), 0);
    assert_int_equal(removed, 1);
    assert_false(fix_fs_exists(f, "root/.dead.ferry-part"));
    assert_true(fix_fs_exists(f, "root/.live.ferry-part"));
    assert_true(fix_fs_exists(f, "root/.live.1a2b3c4d.ferry-part"));

    close(fd);
    close(priv);
    assert_int_equal(sweep(f, ".ferry-part", &removed), 0);
    assert_int_equal(removed, 2);
    assert_false(fix_fs_exists(f, "root/.live.ferry-part"));
    assert_false(fix_fs_exists(f, "root/.live.1a2b3c4d.ferry-part"));
}

/* A file in the directory fd. */
static void file_at(int fd, const char *name)
{
    int file = openat(fd, name, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);

    assert_true(file >= 0);
    close(file);
}

/* A chain of 5,000 directories (made level by level with mkdirat: no path
 * names it), with temporaries, a user's file and a sibling directory holding
 * another temporary every 500 levels: the sweep (which once stopped at 64
 * levels) removes every temporary, including those it can only reach by
 * climbing back past the directories it had let go, and nothing else. */
#define DEEP_LEVELS 5000

static void test_sweep_deep(void **state)
{
    struct fix_fs *f = *state;
    unsigned removed = 0, made = 0;
    int fd = open(f->root_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    assert_true(fd >= 0);
    for (int i = 0; i <= DEEP_LEVELS; i++) {
        int next, side;

        if (i % 500 == 0 || i == DEEP_LEVELS) {
            file_at(fd, ".t.ferry-part");
            file_at(fd, "keep.ferry-part");
            assert_int_equal(mkdirat(fd, "side", 0755), 0);
            side = openat(fd, "side", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            assert_true(side >= 0);
            file_at(side, ".s.ferry-part");
            close(side);
            made += 2;
        }
        if (i == DEEP_LEVELS)
            break;
        assert_int_equal(mkdirat(fd, "d", 0755), 0);
        next = openat(fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(next >= 0);
        close(fd);
        fd = next;
    }
    /* The bottom level still holds what was made there. */
    assert_int_equal(faccessat(fd, "keep.ferry-part", F_OK, 0), 0);
    close(fd);

    assert_int_equal(sweep(f, ".ferry-part", &removed), 0);
    assert_int_equal(removed, made);
    assert_true(fix_fs_exists(f, "root/keep.ferry-part"));
    assert_false(fix_fs_exists(f, "root/.t.ferry-part"));
    assert_false(fix_fs_exists(f, "root/side/.s.ferry-part"));
    assert_int_equal(sweep(f, ".ferry-part", &removed), 0);
    assert_int_equal(removed, 0);
}

/* A stop set before the walk ends it at once: nothing removed, and the
 * sweep says it stopped. */
static void test_sweep_stops(void **state)
{
    struct fix_fs *f = *state;
    atomic_int stop = 1;
    struct fspath_sweep out = { .stop = &stop };

    fix_fs_file(f, "root/.a.ferry-part", "left over\n");
    assert_int_equal(fspath_sweep_temporaries(f->root, ".ferry-part", &out), 0);
    assert_true(out.stopped);
    assert_int_equal(out.removed, 0);
    assert_true(fix_fs_exists(f, "root/.a.ferry-part"));
    atomic_store(&stop, 0);
    assert_int_equal(fspath_sweep_temporaries(f->root, ".ferry-part", &out), 0);
    assert_false(out.stopped);
    assert_int_equal(out.removed, 1);
}

/* Mount a new fstype on rel (made first); 0 or -errno. */
static int mount_at(const struct fix_fs *f, const char *rel, const char *fstype)
{
    char path[PATH_MAX];

    fix_fs_mkdir(f, rel);
    pathf(path, sizeof path, "%s/%s", f->base, rel);
    return mount(fstype, path, fstype, 0, NULL) < 0 ? -errno : 0;
}

static void umount_at(const struct fix_fs *f, const char *rel)
{
    char path[PATH_MAX];

    pathf(path, sizeof path, "%s/%s", f->base, rel);
    assert_int_equal(umount2(path, MNT_DETACH), 0);
}

/* Mounts inside the root (root only: in a mount namespace of the test's
 * own, so nothing outside sees them): a tmpfs is swept like the root's
 * own filesystem; a ramfs (a filesystem the sweep does not know as
 * local storage, like /proc or a network mount), a read-only tmpfs and
 * a proc are not entered, and their temporaries stay. */
static void test_sweep_mounts(void **state)
{
    struct fix_fs *f = *state;
    struct fspath_sweep out = { .stop = NULL };
    struct fsroot *root = NULL;
    char path[PATH_MAX], err[256];

    if (geteuid() != 0)
        skip();     /* mounting needs root: CI runs the tests as root */
    if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        skip();     /* a sandbox without mount namespaces */
    assert_int_equal(mount_at(f, "root/tmp", "tmpfs"), 0);
    assert_int_equal(mount_at(f, "root/ram", "ramfs"), 0);
    assert_int_equal(mount_at(f, "root/ro", "tmpfs"), 0);
    assert_int_equal(mount_at(f, "root/proc", "proc"), 0);
    fix_fs_file(f, "root/.top.ferry-part", "left over\n");
    fix_fs_file(f, "root/tmp/.a.ferry-part", "left over, on a tmpfs\n");
    fix_fs_mkdir(f, "root/tmp/sub");
    fix_fs_file(f, "root/tmp/sub/.b.ferry-part", "left over, deeper\n");
    fix_fs_file(f, "root/ram/.c.ferry-part", "left over, on a ramfs\n");
    fix_fs_file(f, "root/ro/.d.ferry-part", "left over, read-only\n");
    pathf(path, sizeof path, "%s/root/ro", f->base);
    assert_int_equal(mount(NULL, path, NULL, MS_REMOUNT | MS_RDONLY, NULL), 0);

    /* f->root was opened in the namespace the test started in, which
     * has none of these mounts: the root is opened again in this one. */
    assert_int_equal(fsroot_open(f->root_dir, 0, &root, err, sizeof err), 0);
    assert_int_equal(fspath_sweep_temporaries(root, ".ferry-part", &out), 0);
    fsroot_close(root);
    assert_int_equal(out.removed, 3);
    assert_int_equal(out.mounts_skipped, 3);
    assert_false(fix_fs_exists(f, "root/.top.ferry-part"));
    assert_false(fix_fs_exists(f, "root/tmp/.a.ferry-part"));
    assert_false(fix_fs_exists(f, "root/tmp/sub/.b.ferry-part"));
    assert_true(fix_fs_exists(f, "root/ram/.c.ferry-part"));
    assert_true(fix_fs_exists(f, "root/ro/.d.ferry-part"));
    for (size_t i = 0; i < 4; i++)
        umount_at(f, (const char *[]){ "root/tmp", "root/ram", "root/ro", "root/proc" }[i]);
}

/* ---- messages ------------------------------------------------------------------- */

static void test_strerror(void **state)
{
    static const int codes[] = {
        FERRY_EPATH_EMPTY, FERRY_EPATH_ABSOLUTE, FERRY_EPATH_DOTDOT, FERRY_EPATH_CONTROL,
        FERRY_EPATH_NAMELONG, FERRY_EPATH_LONG, FERRY_EPATH_SLASH, FERRY_EPATH_DOT,
        FERRY_EPATH_ESCAPE, FERRY_EPATH_SYMLINK, FERRY_EPATH_DEPTH,
    };
    size_t i, j;

    for (i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *m = app_strerror(codes[i]);

        assert_non_null(m);
        assert_true(m[0] != '\0');
        for (j = 0; j < i; j++) {
            assert_int_not_equal(codes[i], codes[j]);
            assert_string_not_equal(m, app_strerror(codes[j]));
        }
    }
    assert_string_equal(app_strerror(FERRY_EPATH_ESCAPE), "path leaves the served root");
    assert_string_equal(app_strerror(-ENOENT), strerror(ENOENT));
}

/* Both resolvers, each under its own name. */
#define BOTH(fn)                                                   \
    { #fn "/openat2", fn, setup_openat2, teardown, NULL },         \
    { #fn "/fallback", fn, setup_fallback, teardown, NULL }
#define ONE(fn) cmocka_unit_test_setup_teardown(fn, setup_openat2, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_accepts),
        ONE(test_check_empty),
        BOTH(test_reject_absolute),
        BOTH(test_reject_dotdot_leading),
        BOTH(test_reject_dotdot_nested),
        BOTH(test_reject_dotdot_trailing),
        BOTH(test_reject_control_bytes),
        BOTH(test_reject_name_too_long),
        BOTH(test_reject_path_too_long),
        BOTH(test_reject_slashes),
        ONE(test_reject_dot_components),
        BOTH(test_dot_is_root),
        BOTH(test_parent_rejects_dot_targets),
        BOTH(test_parent_gives_dir_and_name),
        BOTH(test_symlink_to_etc),
        BOTH(test_symlink_escapes),
        BOTH(test_symlink_inside),
        BOTH(test_no_magic_links),
        { "test_fallback_refuses_every_symlink", test_fallback_refuses_every_symlink,
          setup_fallback, teardown, NULL },
        BOTH(test_create_beneath),
        BOTH(test_create_through_dangling_symlink),
        BOTH(test_race_absolute_link),
        BOTH(test_race_relative_link),
        ONE(test_root_open),
        ONE(test_sweep),
        ONE(test_sweep_spares_held),
        ONE(test_sweep_deep),
        ONE(test_sweep_stops),
        ONE(test_sweep_mounts),
        cmocka_unit_test(test_strerror),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
