/*
 * test_fsops_tree.c - the file service's tree operations
 * (src/ferryd/fsops.c) on a real directory tree: mkdir (with parents,
 * through symlinks, in the sandbox), rm (recursive, with links that lead
 * out, at any depth), and the metadata / error-name helpers.
 *
 * Each test runs in the served-root sandbox of fix_fsroot (BASE/root, and
 * BASE/outside that symlinks aim at, then checked untouched), twice: with
 * openat2 and with fspath's component-by-component fallback; where they
 * answer with different codes, fix_fs_escape_code() says which.  The
 * fixture's teardown checks that no descriptor leaked.  Nothing sleeps.
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
#include <stdbool.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "fsops.h"
#include "fspath.h"
#include "fix_fsroot.h"

/* ---- the fixture (fix_fsroot) ---------------------------------------------------- */

static int setup_openat2(void **state)  { return fix_fs_setup(state, false, "test_fsops"); }
static int setup_fallback(void **state) { return fix_fs_setup(state, true, "test_fsops"); }
static int teardown(void **state)       { return fix_fs_teardown(state); }

/* ---- mkdir ---------------------------------------------------------------------------- */

static void test_mkdir(void **state)
{
    struct fix_fs *f = *state;
    struct stat st;

    assert_int_equal(fsops_mkdir(f->root, "a", 0), 0);
    fix_fs_lstat(f, "root/a", &st);
    assert_true(S_ISDIR(st.st_mode));
    /* Plain mkdir of what exists: EEXIST, as mkdir(1). */
    assert_int_equal(fsops_mkdir(f->root, "a", 0), -EEXIST);
    /* Plain mkdir does not make parents. */
    assert_int_equal(fsops_mkdir(f->root, "x/y", 0), -ENOENT);
    assert_false(fix_fs_exists(f, "root/x"));

    /* -p through several levels, then again: a no-op. */
    assert_int_equal(fsops_mkdir(f->root, "p/q/r/s", 1), 0);
    fix_fs_lstat(f, "root/p/q/r/s", &st);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(fsops_mkdir(f->root, "p/q/r/s", 1), 0);
    assert_int_equal(fsops_mkdir(f->root, "p/q", 1), 0);
    assert_int_equal(fsops_mkdir(f->root, "a", 1), 0);
    /* -p below an existing part. */
    assert_int_equal(fsops_mkdir(f->root, "p/q/t/u", 1), 0);
    assert_true(fix_fs_exists(f, "root/p/q/t/u"));
}

/* -p where the last component is a file: -EEXIST (the name is taken by
 * something that is not a directory); where one on the way is: -ENOTDIR,
 * as mkdir -p and plain mkdir say ("File exists" named a path that does
 * not); nothing is made below or instead of it. */
static void test_mkdir_p_file_in_the_way(void **state)
{
    struct fix_fs *f = *state;

    fix_fs_mkdir(f, "root/a");
    fix_fs_file(f, "root/a/file", "f\n");
    assert_int_equal(fsops_mkdir(f->root, "a/file/b/c", 1), -ENOTDIR);
    assert_int_equal(fsops_mkdir(f->root, "a/file/b", 0), -ENOTDIR);
    assert_int_equal(fsops_mkdir(f->root, "a/file", 1), -EEXIST);
    assert_int_equal(fsops_mkdir(f->root, "a/file", 0), -EEXIST);
    assert_true(fix_fs_has_content(f, "root/a/file", "f\n"));
}

/* -p through a symlink that leads out of the root: refused, nothing made
 * outside.  A symlink to a directory inside is fine with openat2 (which
 * follows it) and refused by the fallback (which follows none). */
static void test_mkdir_symlinks(void **state)
{
    struct fix_fs *f = *state;

    fix_fs_link(f, f->outside, "root/out");
    assert_int_equal(fsops_mkdir(f->root, "out/new", 1), fix_fs_escape_code(f));
    assert_int_equal(fsops_mkdir(f->root, "out/new", 0), fix_fs_escape_code(f));
    assert_false(fix_fs_exists(f, "outside/new"));
    /* The link itself is "there", and is not a directory we may use. */
    assert_true(fsops_mkdir(f->root, "out", 1) < 0);

    fix_fs_mkdir(f, "root/real");
    fix_fs_link(f, "real", "root/in");
    assert_int_equal(fsops_mkdir(f->root, "in/sub", 1),
                     f->fallback ? FERRY_EPATH_SYMLINK : 0);
    assert_int_equal(fix_fs_exists(f, "root/real/sub"), !f->fallback);
}

static void test_mkdir_sandbox(void **state)
{
    struct fix_fs *f = *state;

    assert_int_equal(fsops_mkdir(f->root, "../x", 0), FERRY_EPATH_DOTDOT);
    assert_int_equal(fsops_mkdir(f->root, "../x", 1), FERRY_EPATH_DOTDOT);
    assert_int_equal(fsops_mkdir(f->root, "/abs", 1), FERRY_EPATH_ABSOLUTE);
    assert_int_equal(fsops_mkdir(f->root, ".", 0), FERRY_EPATH_DOT);
    assert_int_equal(fsops_mkdir(f->root, "a/./b", 1), FERRY_EPATH_DOT);
    assert_int_equal(fsops_mkdir(f->root, "", 1), FERRY_EPATH_EMPTY);
    assert_int_equal(fsops_mkdir(f->root, "a//b", 1), FERRY_EPATH_SLASH);
    /* Refused before anything was made: no "a" from the prefix walk. */
    assert_false(fix_fs_exists(f, "root/a"));
    assert_false(fix_fs_exists(f, "x"));
}

/* ---- rm ------------------------------------------------------------------------------- */

static void test_rm_basic(void **state)
{
    struct fix_fs *f = *state;

    fix_fs_file(f, "root/file", "f\n");
    fix_fs_mkdir(f, "root/empty");
    fix_fs_mkdir(f, "root/full");
    fix_fs_file(f, "root/full/x", "x\n");

    assert_int_equal(fsops_rm(f->root, "file", 0), 0);
    assert_false(fix_fs_exists(f, "root/file"));
    assert_int_equal(fsops_rm(f->root, "empty", 0), 0);
    assert_false(fix_fs_exists(f, "root/empty"));
    assert_int_equal(fsops_rm(f->root, "full", 0), -ENOTEMPTY);
    assert_true(fix_fs_has_content(f, "root/full/x", "x\n"));
    assert_int_equal(fsops_rm(f->root, "missing", 0), -ENOENT);
    assert_int_equal(fsops_rm(f->root, "missing", 1), -ENOENT);
    assert_int_equal(fsops_rm(f->root, "missing/x", 0), -ENOENT);
    assert_int_equal(fsops_rm(f->root, "full/x/y", 0), -ENOTDIR);
    /* Recursive on a plain file is just rm. */
    assert_int_equal(fsops_rm(f->root, "full/x", 1), 0);
    assert_false(fix_fs_exists(f, "root/full/x"));
    assert_true(fix_fs_exists(f, "root/full"));
}

static void test_rm_recursive(void **state)
{
    struct fix_fs *f = *state;
    char p[PATH_MAX];

    fix_fs_mkdir(f, "root/t");
    fix_fs_mkdir(f, "root/t/a");
    fix_fs_mkdir(f, "root/t/a/b");
    fix_fs_mkdir(f, "root/t/a/b/c");
    fix_fs_mkdir(f, "root/t/empty");
    fix_fs_file(f, "root/t/f1", "1\n");
    fix_fs_file(f, "root/t/a/f2", "2\n");
    fix_fs_file(f, "root/t/a/b/c/f3", "3\n");
    fix_fs_file(f, "root/t/.hidden", "h\n");
    fix_fs_link(f, "a/f2", "root/t/link");
    fix_fs_link(f, "nowhere", "root/t/a/dangling");
    pathf(p, sizeof p, "%s/root/t/a/fifo", f->base);
    assert_int_equal(mkfifo(p, 0600), 0);
    fix_fs_file(f, "root/keep", "keep\n");

    assert_int_equal(fsops_rm(f->root, "t", 1), 0);
    assert_false(fix_fs_exists(f, "root/t"));
    assert_true(fix_fs_has_content(f, "root/keep", "keep\n"));
    /* A subtree only. */
    fix_fs_mkdir(f, "root/u");
    fix_fs_mkdir(f, "root/u/v");
    fix_fs_file(f, "root/u/v/w", "w\n");
    fix_fs_file(f, "root/u/sibling", "s\n");
    assert_int_equal(fsops_rm(f->root, "u/v", 1), 0);
    assert_false(fix_fs_exists(f, "root/u/v"));
    assert_true(fix_fs_has_content(f, "root/u/sibling", "s\n"));
}

/* A tree holding symlinks to a directory and a file OUTSIDE the root:
 * the links go, what they point to stays, every byte of it. */
static void test_rm_recursive_outside_links(void **state)
{
    struct fix_fs *f = *state;
    char target[PATH_MAX];

    fix_fs_mkdir(f, "root/t");
    fix_fs_mkdir(f, "root/t/sub");
    fix_fs_file(f, "root/t/sub/mine", "mine\n");
    pathf(target, sizeof target, "%s/d", f->outside);
    fix_fs_link(f, target, "root/t/abs_dir");
    fix_fs_link(f, "../../outside/d", "root/t/rel_dir");
    fix_fs_link(f, "../../../outside", "root/t/sub/up");
    pathf(target, sizeof target, "%s/secret", f->outside);
    fix_fs_link(f, target, "root/t/secret_link");

    assert_int_equal(fsops_rm(f->root, "t", 1), 0);
    assert_false(fix_fs_exists(f, "root/t"));
    assert_true(fix_fs_has_content(f, "outside/d/f", "outside f\n"));
    assert_true(fix_fs_has_content(f, "outside/secret", "outside secret\n"));
    assert_true(fix_fs_exists(f, "outside/d"));

    /* The link named directly, recursive or not: the link goes. */
    fix_fs_link(f, f->outside, "root/out");
    assert_int_equal(fsops_rm(f->root, "out", 1), 0);
    assert_false(fix_fs_exists(f, "root/out"));
    assert_true(fix_fs_has_content(f, "outside/d/f", "outside f\n"));

    /* Through the link: refused, nothing outside is removed. */
    fix_fs_link(f, f->outside, "root/out");
    assert_int_equal(fsops_rm(f->root, "out/d", 1), fix_fs_escape_code(f));
    assert_int_equal(fsops_rm(f->root, "out/secret", 0), fix_fs_escape_code(f));
    assert_true(fix_fs_has_content(f, "outside/d/f", "outside f\n"));
    assert_true(fix_fs_has_content(f, "outside/secret", "outside secret\n"));
}

/* rm of a symlink removes the link, never the target, whatever it is. */
static void test_rm_symlink(void **state)
{
    struct fix_fs *f = *state;

    fix_fs_mkdir(f, "root/dir");
    fix_fs_file(f, "root/dir/x", "x\n");
    fix_fs_file(f, "root/file", "file\n");
    fix_fs_link(f, "dir", "root/ldir");
    fix_fs_link(f, "file", "root/lfile");
    fix_fs_link(f, "nowhere", "root/ldangling");

    assert_int_equal(fsops_rm(f->root, "ldir", 0), 0);
    assert_int_equal(fsops_rm(f->root, "lfile", 0), 0);
    assert_int_equal(fsops_rm(f->root, "ldangling", 0), 0);
    assert_false(fix_fs_exists(f, "root/ldir"));
    assert_false(fix_fs_exists(f, "root/lfile"));
    assert_false(fix_fs_exists(f, "root/ldangling"));
    assert_true(fix_fs_has_content(f, "root/dir/x", "x\n"));
    assert_true(fix_fs_has_content(f, "root/file", "file\n"));
}

static void test_rm_sandbox(void **state)
{
    struct fix_fs *f = *state;

    fix_fs_file(f, "x", "beside root\n");
    assert_int_equal(fsops_rm(f->root, ".", 0), FERRY_EPATH_DOT);
    assert_int_equal(fsops_rm(f->root, ".", 1), FERRY_EPATH_DOT);
    assert_int_equal(fsops_rm(f->root, "../x", 0), FERRY_EPATH_DOTDOT);
    assert_int_equal(fsops_rm(f->root, "../x", 1), FERRY_EPATH_DOTDOT);
    assert_int_equal(fsops_rm(f->root, "/abs", 1), FERRY_EPATH_ABSOLUTE);
    assert_int_equal(fsops_rm(f->root, "", 1), FERRY_EPATH_EMPTY);
    assert_true(fix_fs_has_content(f, "x", "beside root\n"));
    assert_true(fix_fs_exists(f, "root"));
}

/* A chain of DEEP_LEVELS directories under root/NAME, made with mkdirat one
 * level at a time (deeper than PATH_MAX allows naming at once), with a file,
 * a symlink out of the root and a sibling directory at every 500th level. */
#define DEEP_LEVELS 5000

static void make_deep(const struct fix_fs *f, const char *name)
{
    char top[PATH_MAX];
    int fd;

    pathf(top, sizeof top, "%s/%s", f->root_dir, name);
    assert_int_equal(mkdir(top, 0755), 0);
    fd = open(top, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(fd >= 0);
    for (int i = 0; i < DEEP_LEVELS; i++) {
        int next;

        if (i % 500 == 0) {
            int file = openat(fd, "f", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
            assert_true(file >= 0);
            close(file);
            assert_int_equal(symlinkat(f->outside, fd, "out"), 0);
            assert_int_equal(mkdirat(fd, "side", 0755), 0);
        }
        assert_int_equal(mkdirat(fd, "d", 0755), 0);
        next = openat(fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(next >= 0);
        close(fd);
        fd = next;
    }
    close(fd);
}

/* Deeper than any recursion limit (the old one was 64 levels): the whole
 * tree goes, nothing the symlinks point at is touched, and the fixture's
 * teardown checks no descriptor was left open. */
static void test_rm_deep_tree(void **state)
{
    struct fix_fs *f = *state;

    fix_fs_file(f, "outside/keep", "kept\n");
    make_deep(f, "deep");
    assert_int_equal(fsops_rm(f->root, "deep", 1), 0);
    assert_false(fix_fs_exists(f, "root/deep"));
    assert_true(fix_fs_has_content(f, "outside/keep", "kept\n"));
    assert_true(fix_fs_exists(f, "root"));
}

/* ---- metadata and error names -------------------------------------------------------- */

static void check_meta(const struct stat *st, const char *kind)
{
    json_t *m = fsops_meta(st);

    assert_non_null(m);
    assert_true(json_is_object(m));
    assert_int_equal(json_object_size(m), 5);
    assert_string_equal(json_string_value(json_object_get(m, "kind")), kind);
    assert_true(json_is_integer(json_object_get(m, "mode")));
    assert_int_equal(json_integer_value(json_object_get(m, "mode")), st->st_mode & 07777);
    assert_int_equal(json_integer_value(json_object_get(m, "filesize")), st->st_size);
    assert_int_equal(json_integer_value(json_object_get(m, "mtime")), st->st_mtim.tv_sec);
    assert_int_equal(json_integer_value(json_object_get(m, "mtime_nsec")), st->st_mtim.tv_nsec);
    json_decref(m);
}

static void test_meta(void **state)
{
    struct fix_fs *f = *state;
    struct timespec times[2] = { { .tv_nsec = UTIME_OMIT },
                                 { .tv_sec = 4102444800, .tv_nsec = 123456789 } };
    char p[PATH_MAX];
    struct stat st;
    json_t *m;
    int fd;

    /* A file: 5 GiB (sparse; past 32 bits), mode 0640, mtime in 2100. */
    pathf(p, sizeof p, "%s/root/file", f->base);
    fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)5 << 30), 0);
    assert_int_equal(fchmod(fd, 0640), 0);
    assert_int_equal(futimens(fd, times), 0);
    close(fd);
    fix_fs_lstat(f, "root/file", &st);
    check_meta(&st, "file");
    m = fsops_meta(&st);
    assert_int_equal(json_integer_value(json_object_get(m, "filesize")), (json_int_t)5 << 30);
    assert_int_equal(json_integer_value(json_object_get(m, "mode")), 0640);
    assert_int_equal(json_integer_value(json_object_get(m, "mtime")), 4102444800LL);
    assert_int_equal(json_integer_value(json_object_get(m, "mtime_nsec")), 123456789);
    json_decref(m);

    /* Set-id bits are reported as they are (mode is the low 12 bits). */
    assert_int_equal(chmod(p, 04750), 0);
    fix_fs_lstat(f, "root/file", &st);
    m = fsops_meta(&st);
    assert_int_equal(json_integer_value(json_object_get(m, "mode")), 04750);
    json_decref(m);

    fix_fs_mkdir(f, "root/dir");
    fix_fs_lstat(f, "root/dir", &st);
    check_meta(&st, "dir");

    /* lstat semantics: the link itself, not the directory it names. */
    fix_fs_link(f, "dir", "root/link");
    fix_fs_lstat(f, "root/link", &st);
    check_meta(&st, "link");
    m = fsops_meta(&st);
    assert_int_equal(json_integer_value(json_object_get(m, "filesize")), 3);   /* "dir" */
    json_decref(m);

    pathf(p, sizeof p, "%s/root/fifo", f->base);
    assert_int_equal(mkfifo(p, 0600), 0);
    fix_fs_lstat(f, "root/fifo", &st);
    check_meta(&st, "fifo");
}

static void test_error_code(void **state)
{
    static const int path_codes[] = {
        FERRY_EPATH_EMPTY, FERRY_EPATH_ABSOLUTE, FERRY_EPATH_DOTDOT, FERRY_EPATH_CONTROL,
        FERRY_EPATH_NAMELONG, FERRY_EPATH_LONG, FERRY_EPATH_SLASH, FERRY_EPATH_DOT,
        FERRY_EPATH_ESCAPE, FERRY_EPATH_SYMLINK, FERRY_EPATH_DEPTH,
    };
    const char *name;

    for (size_t i = 0; i < sizeof path_codes / sizeof path_codes[0]; i++) {
        name = "untouched";
        assert_string_equal(fsops_error_code(path_codes[i], &name), "path");
        assert_null(name);
    }
    assert_string_equal(fsops_error_code(-ENOENT, &name), "fs");
    assert_string_equal(name, "ENOENT");
    assert_string_equal(fsops_error_code(-ENOTEMPTY, &name), "fs");
    assert_string_equal(name, "ENOTEMPTY");
    assert_string_equal(fsops_error_code(-EISDIR, &name), "fs");
    assert_string_equal(name, "EISDIR");
    assert_string_equal(fsops_error_code(-EFBIG, &name), "fs");
    assert_string_equal(name, "EFBIG");
    /* Just outside fspath's range is not a path refusal. */
    assert_string_equal(fsops_error_code(FERRY_EPATH_EMPTY + 1, &name), "fs");
    assert_string_equal(fsops_error_code(FERRY_EPATH_DEPTH - 1, &name), "fs");
}

/* Both resolvers, each under its own name. */
#define BOTH(fn)                                                   \
    { #fn "/openat2", fn, setup_openat2, teardown, NULL },         \
    { #fn "/fallback", fn, setup_fallback, teardown, NULL }

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_mkdir),
        BOTH(test_mkdir_p_file_in_the_way),
        BOTH(test_mkdir_symlinks),
        BOTH(test_mkdir_sandbox),
        BOTH(test_rm_basic),
        BOTH(test_rm_recursive),
        BOTH(test_rm_recursive_outside_links),
        BOTH(test_rm_symlink),
        BOTH(test_rm_sandbox),
        /* The resolver only finds the top: one variant is enough. */
        cmocka_unit_test_setup_teardown(test_rm_deep_tree, setup_openat2, teardown),
        BOTH(test_meta),
        cmocka_unit_test(test_error_code),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

