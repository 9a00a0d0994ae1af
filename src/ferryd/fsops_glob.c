/*
 * fsops_glob.c - server-side pattern expansion beneath the root (the
 * contract is in fsops_glob.h).
 *
 * The expansion goes one component at a time over a set of directories
 * (at first only the root): a component with a metacharacter keeps the
 * entries of each directory that fnmatch accepts, a literal one is
 * appended as it is.  Only the final set is checked to exist (a literal
 * tail "*\/log.txt" may name nothing), and every path made is passed
 * through fspath_check again before it is kept, so an escaped "\.\." can
 * never become a "..".
 */
#include "fsops_glob.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct pathset {
    char **v;
    size_t n, cap;
    size_t bytes;       /* of the paths held, their NULs included */
};

static void set_free(struct pathset *s)
{
    fsops_glob_free(s->v, s->n);
    *s = (struct pathset){ 0 };
}

/* Keep p (taken: freed on failure).  0, -ENOMEM or -E2BIG. */
static int set_add(struct pathset *s, char *p)
{
    if (!p)
        return -ENOMEM;
    if (fspath_check(p, NULL, 0) < 0) {
        free(p);
        return 0;
    }
    if (s->n >= FSOPS_GLOB_MAX_MATCHES || s->bytes + strlen(p) + 1 > FSOPS_GLOB_MAX_BYTES) {
        free(p);
        return -E2BIG;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        char **v = realloc(s->v, cap * sizeof *v);

        if (!v) {
            free(p);
            return -ENOMEM;
        }
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = p;
    s->bytes += strlen(p) + 1;
    return 0;
}

/* dir + "/" + name[0..len), or the name alone under the root ("."). */
static char *join(const char *dir, const char *name, size_t len)
{
    size_t dl = strcmp(dir, ".") == 0 ? 0 : strlen(dir);
    char *p = malloc(dl + 1 + len + 1);

    if (!p)
        return NULL;
    memcpy(p, dir, dl);
    if (dl)
        p[dl++] = '/';
    memcpy(p + dl, name, len);
    p[dl + len] = '\0';
    return p;
}

int fsops_glob_magic(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\\')
            i++;
        else if (s[i] == '*' || s[i] == '?' || s[i] == '[')
            return 1;
    }
    return 0;
}

/* A literal component without its escapes ("a\*b" -> "a*b"); a final
 * lone backslash stays.  malloc'd, or NULL. */
static char *unescape(const char *s, size_t len)
{
    char *out = malloc(len + 1), *o = out;

    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\\' && i + 1 < len)
            i++;
        *o++ = s[i];
    }
    *o = '\0';
    return out;
}

static int hidden(const char *name, const char *suffix)
{
    size_t n = strlen(name), sl = strlen(suffix);

    return sl > 0 && n > sl + 1 && name[0] == '.' && memcmp(name + n - sl, suffix, sl) == 0;
}

/* The entries of directory `dir` that pattern `pat` matches, into next. */
static int match_dir(const struct fsroot *root, const char *dir, const char *pat,
                     const char *hide_suffix, size_t *scanned, struct pathset *next)
{
    struct dirent *e;
    DIR *d;
    int fd, r = fspath_open(root, dir, O_RDONLY | O_DIRECTORY | O_NONBLOCK, 0, &fd);

    if (r < 0)
        return 0;   /* not a directory, gone, or outside: it matches nothing */
    d = fdopendir(fd);
    if (!d) {
        r = -errno;
        close(fd);
        return r == -ENOMEM ? r : 0;
    }
    while ((e = readdir(d)) != NULL) {
        if (++*scanned > FSOPS_GLOB_MAX_SCANNED) {
            r = -E2BIG;
            break;
        }
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
            hidden(e->d_name, hide_suffix) || fnmatch(pat, e->d_name, FNM_PERIOD) != 0)
            continue;
        r = set_add(next, join(dir, e->d_name, strlen(e->d_name)));
        if (r < 0)
            break;
    }
    closedir(d);
    return r;
}

/* Whether path names something (a final symlink is not followed). */
static int exists(const struct fsroot *root, const char *path)
{
    const char *name;
    struct stat st;
    int dirfd, ok;

    if (fspath_parent(root, path, &dirfd, &name) < 0)
        return 0;
    ok = fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
    close(dirfd);
    return ok;
}

static int by_bytes(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The literal components that start at c, up to the next one with a
 * metacharacter or the end, without their escapes and joined by '/'
 * ("a/b\*c" -> "a/b*c"), into *out (malloc'd); *end: where the next
 * component starts ("" at the end).  *out is NULL when one of them names
 * nothing to walk through: an escaped "." or ".." ("\.\."), or a
 * temporary.  0 or -ENOMEM. */
static int literal_run(const char *c, const char *hide_suffix, char **out, const char **end)
{
    size_t cap = strlen(c) + 1, used = 0;
    char *run = malloc(cap);
    int nothing = 0;

    *out = NULL;
    if (!run)
        return -ENOMEM;
    for (;;) {
        size_t len = strcspn(c, "/");
        char *lit = unescape(c, len);

        if (!lit) {
            free(run);
            return -ENOMEM;
        }
        nothing |= strcmp(lit, ".") == 0 || strcmp(lit, "..") == 0 || hidden(lit, hide_suffix);
        if (used)
            run[used++] = '/';
        memcpy(run + used, lit, strlen(lit) + 1);   /* unescaped: never longer */
        used += strlen(lit);
        free(lit);
        c += len;
        if (*c == '\0' || fsops_glob_magic(c + 1, strcspn(c + 1, "/")))
            break;
        c++;
    }
    *end = c;
    if (nothing)
        free(run);
    else
        *out = run;
    return 0;
}

int fsops_glob(const struct fsroot *root, const char *pattern, const char *hide_suffix,
               char ***paths, size_t *n)
{
    struct pathset cur = { 0 }, next = { 0 };
    size_t scanned = 0, keep = 0;
    const char *c = pattern;
    int last_literal = 0, r;

    *paths = NULL;
    *n = 0;
    r = set_add(&cur, strdup("."));
    while (r == 0 && cur.n > 0) {
        size_t len = strcspn(c, "/");

        last_literal = !fsops_glob_magic(c, len);
        if (!last_literal) {
            char *pat = strndup(c, len);

            r = pat ? 0 : -ENOMEM;
            for (size_t i = 0; r == 0 && i < cur.n; i++)
                r = match_dir(root, cur.v[i], pat, hide_suffix, &scanned, &next);
            free(pat);
            c += len;
        } else {
            /* A run of literal components ("x/y/z") is appended in one
             * step: one at a time, each step would copy every path held
             * again: a "*" followed by 2000 literal "x" components, over a
             * directory of 10000 entries, kept the loop busy for a minute. */
            char *lit = NULL;

            r = literal_run(c, hide_suffix, &lit, &c);
            for (size_t i = 0; r == 0 && lit && i < cur.n; i++)
                r = set_add(&next, join(cur.v[i], lit, strlen(lit)));
            free(lit);
        }
        set_free(&cur);
        cur = next;
        next = (struct pathset){ 0 };
        if (*c == '\0')
            break;
        c++;
    }
    if (r < 0) {
        set_free(&cur);
        return r;
    }
    /* Matched entries exist; a literal tail may name nothing. */
    for (size_t i = 0; i < cur.n; i++) {
        if (!last_literal || exists(root, cur.v[i]))
            cur.v[keep++] = cur.v[i];
        else
            free(cur.v[i]);
    }
    cur.n = keep;
    if (cur.n > 1)
        qsort(cur.v, cur.n, sizeof *cur.v, by_bytes);
    *paths = cur.v;
    *n = cur.n;
    return 0;
}

void fsops_glob_free(char **paths, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
}
