/*
 * fuzz_path.c - libFuzzer harness for the path resolver
 * (src/ferryd/fspath.c): whatever path a client sends, every descriptor
 * the resolver hands out is at or under the served root, and nothing is
 * ever created outside it.
 *
 * Each process makes its own sandbox (fuzz_tmp.h): BASE/root (the served
 * root, with directories, files and symlinks that point back in, out
 * through "..", to absolute paths, to themselves) and BASE/outside, which
 * the symlinks aim at and whose mtime must never change.
 *
 * Input layout: byte 0 picks the operation (bits 0-1: read, O_PATH,
 * create-exclusive then remove, parent lookup; bit 2: the fallback
 * resolver instead of openat2); the rest is the path (cut at the first NUL).
 * Every descriptor's /proc/self/fd link must name the root or lie under
 * it; a violation aborts.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fspath.h"
#include "fuzz_tmp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char base[64], root_real[PATH_MAX], outside[PATH_MAX];
static struct fsroot *root;
static struct timespec outside_mtime;

static void at(const char *rel, const char *target)
{
    char p[PATH_MAX];

    snprintf(p, sizeof p, "%s/%s", base, rel);
    if (!target) {
        if (mkdir(p, 0755) < 0)
            abort();
    } else if (target[0] == '=') {
        FILE *f = fopen(p, "w");
        if (!f)
            abort();
        fputs(target + 1, f);
        fclose(f);
    } else if (symlink(target, p) < 0) {
        abort();
    }
}

static void cleanup(void)
{
    char cmd[128];

    fsroot_close(root);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz_path: could not remove %s\n", base);
}

static void sandbox(void)
{
    char tmpl[48];
    char dir[PATH_MAX];
    struct stat st;

    fuzz_mkdtemp(tmpl, sizeof tmpl, "fuzz_path");
    snprintf(base, sizeof base, "%s", tmpl);
    at("root", NULL);
    at("outside", NULL);
    at("outside/secret", "=secret");
    at("root/a", NULL);
    at("root/a/b", NULL);
    at("root/a/b/f", "=f");
    at("root/file", "=file");
    at("root/a/in", "b/f");
    at("root/a/up", "../file");
    at("root/a/out", "../../outside/secret");
    at("root/a/outdir", "../../outside");
    at("root/abs", "/tmp");
    at("root/etc", "/etc/passwd");
    at("root/self", "self");
    at("root/dangling", "nowhere/x");
    at("root/a/b/deep", "../../../outside");
    snprintf(dir, sizeof dir, "%s/root", base);
    if (!realpath(dir, root_real))
        abort();
    snprintf(outside, sizeof outside, "%s/outside", base);
    if (stat(outside, &st) < 0)
        abort();
    outside_mtime = st.st_mtim;
    if (fsroot_open(dir, 0, &root, NULL, 0) < 0)
        abort();
    atexit(cleanup);
}

/* The descriptor must be the root or under it. */
static void check_under_root(int fd)
{
    char link[64], target[PATH_MAX];
    size_t n = strlen(root_real);
    ssize_t len;

    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    len = readlink(link, target, sizeof target - 1);
    if (len < 0)
        abort();
    target[len] = '\0';
    if (strncmp(target, root_real, n) != 0 || (target[n] != '\0' && target[n] != '/')) {
        fprintf(stderr, "fuzz_path: descriptor outside the root: %s\n", target);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[PATH_MAX + 16];
    const char *name;
    struct stat st;
    size_t n;
    int fd = -1, r;

    if (!root)
        sandbox();
    if (size < 1)
        return 0;
    n = size - 1 < sizeof path - 1 ? size - 1 : sizeof path - 1;
    memcpy(path, data + 1, n);
    path[n] = '\0';
    fspath_force_fallback = (data[0] >> 2) & 1;

    switch (data[0] & 3) {
    case 0:
        r = fspath_open(root, path, O_RDONLY, 0, &fd);
        break;
    case 1:
        r = fspath_open(root, path, O_PATH, 0, &fd);
        break;
    case 2:
        r = fspath_open(root, path, O_WRONLY | O_CREAT | O_EXCL, 0600, &fd);
        if (r == 0) {
            int dirfd;

            check_under_root(fd);
            /* Take it away again, through the resolver too. */
            if (fspath_parent(root, path, &dirfd, &name) < 0 || unlinkat(dirfd, name, 0) < 0)
                abort();
            close(dirfd);
        }
        break;
    default:
        r = fspath_parent(root, path, &fd, &name);
        if (r == 0 && (!name || !*name || strchr(name, '/')))
            abort();
        break;
    }
    if (r == 0) {
        if (fd < 0)
            abort();
        check_under_root(fd);
        close(fd);
    } else if (r > 0 || fd != -1) {
        abort();
    }
    if (stat(outside, &st) < 0 || st.st_mtim.tv_sec != outside_mtime.tv_sec ||
        st.st_mtim.tv_nsec != outside_mtime.tv_nsec)
        abort();
    return 0;
}
