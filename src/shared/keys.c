/*
 * keys.c - reading ferryd's named keys file (keys.h).
 *
 * The file is small and read whole, with the same ownership rules as a key
 * file; every line is checked on every read, so a typo is reported where
 * it is, rather than silently skipping a key.
 */
#include "keys.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "auth.h"
#include "errcode.h"

int keys_name_ok(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > KEYS_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] <= ' ' || (unsigned char)name[i] > '~')
            return 0;
    return 1;
}

/* The file's text, NUL-terminated, in *out (caller frees with free_text):
 * 0, or a negative code with err set. */
static int read_text(const char *path, char **out, size_t *len, struct errbuf *err)
{
    struct stat st;
    char *text = NULL;
    size_t got = 0;
    int r = 0, fd = keyfile_open_private(path, "keys file", 1, &st, err);

    if (fd < 0)
        return fd;
    if (st.st_size > KEYS_FILE_MAX) {
        r = errbuf_set(err, -EFBIG, "keys file %s is larger than %d bytes", path, KEYS_FILE_MAX);
        goto out;
    }
    text = malloc((size_t)st.st_size + 1);
    if (!text) {
        r = errbuf_set(err, -ENOMEM, "out of memory");
        goto out;
    }
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, text + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = errbuf_set(err, -errno, "cannot read keys file %s: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;   /* it shrank meanwhile: use what is there */
        got += (size_t)n;
    }
    text[got] = '\0';
    *len = got;
    *out = text;
    text = NULL;
out:
    free(text);
    close(fd);
    return r;
}

static void free_text(char *text, size_t len)
{
    if (text) {
        OPENSSL_cleanse(text, len);
        free(text);
    }
}

/* Split a line at its first blank: the word is NUL-terminated and the
 * rest (blanks skipped) returned, or NULL at the end of the line. */
static char *word(char *p, char **rest)
{
    p += strspn(p, " \t");
    if (!*p) {
        *rest = p;
        return NULL;
    }
    *rest = p + strcspn(p, " \t");
    if (**rest)
        *(*rest)++ = '\0';
    *rest += strspn(*rest, " \t");
    return p;
}

/* A name and the line it is on, for finding one given twice. */
struct named_line {
    const char *name;
    int line;
};

static int by_name_then_line(const void *a, const void *b)
{
    const struct named_line *x = a, *y = b;
    int c = strcmp(x->name, y->name);

    return c ? c : (x->line > y->line) - (x->line < y->line);
}

/* A name on two lines: which of them counts is not for the file's order to
 * decide (a restricted line added below an old one would do nothing, and
 * deleting one of them would not revoke the name).  The first such pair,
 * by name, or 0. */
static int find_twice(const char *path, struct named_line *seen, int n, struct errbuf *err)
{
    qsort(seen, (size_t)n, sizeof *seen, by_name_then_line);
    for (int i = 1; i < n; i++)
        if (strcmp(seen[i - 1].name, seen[i].name) == 0)
            return errbuf_set(err, FERRY_EKEYS_LINE, "keys file %s, line %d: the name '%s' is "
                              "on line %d too (one line per name)", path, seen[i].line,
                              seen[i].name, seen[i - 1].line);
    return 0;
}

/*
 * Walk every line; for the one named `want` (if any) fill key and opts.
 * Returns the number of keys, or FERRY_EKEYS_LINE with err naming the bad
 * line (or the first name given twice, with `want` or without), or -ENOMEM.
 */
/* What a walk does with each line's options besides (NULL: nothing);
 * a negative return ends the walk with that code. */
typedef int (*line_fn)(const struct keyopts *o, void *arg);

static int walk(const char *path, char *text, const char *want, struct ferry_key *key,
                struct keyopts *opts, int *found, line_fn each, void *each_arg,
                struct errbuf *err)
{
    int count = 0, lineno = 0, r = 0;
    struct named_line *seen = NULL;
    char *next;

    /* Line by line, blank ones counted too, so an error names the right one. */
    for (char *line = text; line; line = next) {
        char *name, *hex, *rest, why[200];
        struct ferry_key k;
        struct keyopts o;
        size_t end;

        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        lineno++;
        line[strcspn(line, "\r")] = '\0';
        name = word(line, &rest);
        if (!name || name[0] == '#')
            continue;
        hex = word(rest, &rest);
        if (!keys_name_ok(name) || !hex || strlen(hex) != 2 * KEY_LEN ||
            hex_decode(hex, k.bytes, KEY_LEN) < 0) {
            key_wipe(&k);
            r = errbuf_set(err, FERRY_EKEYS_LINE, "keys file %s, line %d: expected 'NAME HEX "
                           "[OPTIONS]' (a name without spaces, the 64 hex digits of a key, "
                           "then any options)", path, lineno);
            goto out;
        }
        for (end = strlen(rest); end > 0 && (rest[end - 1] == ' ' || rest[end - 1] == '\t'); end--)
            rest[end - 1] = '\0';
        if (keyopts_parse(rest, &o, why, sizeof why) < 0) {
            key_wipe(&k);
            r = errbuf_set(err, FERRY_EKEYS_LINE, "keys file %s, line %d: %s", path, lineno, why);
            goto out;
        }
        if (each && (r = each(&o, each_arg)) < 0) {
            key_wipe(&k);
            goto out;
        }
        if (want && !*found && strcmp(name, want) == 0) {
            *key = k;
            if (opts)
                *opts = o;
            *found = 1;
        }
        /* Every name, for find_twice (they point into text), at a lookup
         * as at start: a file the start refuses serves nobody, as a file
         * with a bad line serves nobody. */
        struct named_line *grown = realloc(seen, (size_t)(count + 1) * sizeof *seen);

        if (!grown) {
            key_wipe(&k);
            r = -ENOMEM;
            goto out;
        }
        seen = grown;
        seen[count] = (struct named_line){ name, lineno };
        count++;
        key_wipe(&k);
    }
    r = find_twice(path, seen, count, err);
    if (r < 0 && want && *found) {
        key_wipe(key);
        *found = 0;
    }
out:
    free(seen);
    return r < 0 ? r : count;
}

int keys_check(const char *path, int *count, struct errbuf *err)
{
    size_t len = 0;
    char *text = NULL;
    int found = 0, n = read_text(path, &text, &len, err);

    if (n < 0)
        return n;
    n = walk(path, text, NULL, NULL, NULL, &found, NULL, NULL, err);
    free_text(text, len);
    if (n < 0)
        return n;
    *count = n;
    return 0;
}

int keys_find(const char *path, const char *name, struct ferry_key *key, struct keyopts *opts,
              struct errbuf *err)
{
    size_t len = 0;
    char *text = NULL;
    int found = 0, n = read_text(path, &text, &len, err);

    if (n < 0)
        return n;
    n = walk(path, text, name, key, opts, &found, NULL, NULL, err);
    free_text(text, len);
    if (n < 0) {
        key_wipe(key);
        return n;
    }
    return found;
}

struct roots {
    char **v;
    size_t n;
};

static int add_root(const struct keyopts *o, void *arg)
{
    struct roots *rs = arg;
    char **grown;

    if (!o->root[0])
        return 0;
    for (size_t i = 0; i < rs->n; i++)
        if (strcmp(rs->v[i], o->root) == 0)
            return 0;
    grown = realloc(rs->v, (rs->n + 1) * sizeof *rs->v);
    if (!grown)
        return -ENOMEM;
    rs->v = grown;
    if (!(rs->v[rs->n] = strdup(o->root)))
        return -ENOMEM;
    rs->n++;
    return 0;
}

int keys_roots(const char *path, char ***roots, size_t *n, struct errbuf *err)
{
    struct roots rs = { NULL, 0 };
    size_t len = 0;
    char *text = NULL;
    int found = 0, r = read_text(path, &text, &len, err);

    *roots = NULL;
    *n = 0;
    if (r < 0)
        return r;
    r = walk(path, text, NULL, NULL, NULL, &found, add_root, &rs, err);
    free_text(text, len);
    if (r < 0) {
        keys_roots_free(rs.v, rs.n);
        return r;
    }
    *roots = rs.v;
    *n = rs.n;
    return 0;
}

void keys_roots_free(char **roots, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(roots[i]);
    free(roots);
}
