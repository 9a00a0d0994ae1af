/*
 * remotefs.c - the file service's small requests (stat, list, mkdir, rm),
 * remote paths in the server's one spelling, metadata and error texts
 * (remotefs.h).
 */
#include "remotefs.h"

#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/ferry.h"
#include "proto.h"

/* ---- errors ------------------------------------------------------------------- */

int remotefs_error_errno(const struct fs_error *err)
{
    if (!err->errname[0])
        return 0;
    /* glibc knows every name; 4096 covers any errno value. */
    for (int e = 1; e < 4096; e++) {
        const char *name = strerrorname_np(e);

        if (name && strcmp(name, err->errname) == 0)
            return e;
    }
    return 0;
}

const char *remotefs_error_text(const struct fs_error *err)
{
    int e = strcmp(err->code, ERR_FS) == 0 ? remotefs_error_errno(err) : 0;

    if (e) {
        const char *plain = strerror(e);
        size_t n = strlen(err->message), k = strlen(plain);

        /* The server's usual "PATH: <the errno's text>" says nothing the
         * errno's text does not (and would repeat the path the caller
         * names); a message that ends otherwise is the server's own
         * account (an upload's temporary taken away: ESTALE) and is
         * shown as it is. */
        if (n == 0 || (n >= k && strcmp(err->message + n - k, plain) == 0))
            return plain;
    }
    return err->message[0] ? err->message : "unknown error";
}

/* ---- paths ---------------------------------------------------------------- */

char *remotefs_canon(const char *path)
{
    size_t len = strlen(path);
    char *out = malloc(len + 2), *o = out;
    const char *p = path;

    if (!out)
        return NULL;
    if (*p == '/')
        *o++ = '/';
    while (*p) {
        const char *start, *end;

        while (*p == '/')
            p++;
        start = p;
        while (*p && *p != '/')
            p++;
        end = p;
        if (end == start || (end - start == 1 && start[0] == '.'))
            continue;
        if (o > out && o[-1] != '/')
            *o++ = '/';
        memcpy(o, start, (size_t)(end - start));
        o += end - start;
    }
    if (o == out)
        *o++ = '.';
    *o = '\0';
    return out;
}

char *remotefs_join(const char *a, const char *b)
{
    char *joined = NULL, *canon;

    if (asprintf(&joined, "%s/%s", a, b) < 0)
        return NULL;
    canon = remotefs_canon(joined);
    free(joined);
    return canon;
}

char *remotefs_basename(const char *path)
{
    size_t len = strlen(path);
    const char *start;

    while (len > 1 && path[len - 1] == '/')
        len--;
    start = path + len;
    while (start > path && start[-1] != '/')
        start--;
    if (start == path + len)   /* "/" (or "") */
        return strndup(path, len);
    return strndup(start, (size_t)(path + len - start));
}

/* ---- metadata ------------------------------------------------------------- */

static const char *const kinds[] = { "file", "dir", "link", "fifo", "socket", "char", "block" };

int remotefs_parse_meta(struct client_session *s, const json_t *obj, struct fs_meta *m,
                     struct fs_error *err)
{
    const char *kind = json_string_value(json_object_get(obj, "kind"));
    const json_t *mode = json_object_get(obj, "mode"), *size = json_object_get(obj, "filesize");
    const json_t *mtime = json_object_get(obj, "mtime"), *nsec = json_object_get(obj, "mtime_nsec");
    const json_t *target = json_object_get(obj, "target");
    size_t i;

    for (i = 0; kind && i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(kind, kinds[i]) == 0)
            break;
    if (!kind || i == sizeof kinds / sizeof kinds[0] ||
        !json_is_integer(mode) || json_integer_value(mode) < 0 ||
        json_integer_value(mode) > 07777 ||
        !json_is_integer(size) || json_integer_value(size) < 0 ||
        !json_is_integer(mtime) ||
        (nsec && (!json_is_integer(nsec) || json_integer_value(nsec) < 0 ||
                  json_integer_value(nsec) > 999999999)) ||
        (target && (!json_is_string(target) || json_string_length(target) >= PATH_MAX ||
                    strlen(json_string_value(target)) != json_string_length(target))))
        return session_lost(s, err, "protocol error: %s: bad file metadata", s->peer);
    snprintf(m->kind, sizeof m->kind, "%s", kind);
    m->mode = (unsigned)json_integer_value(mode);
    m->size = (uint64_t)json_integer_value(size);
    m->mtime = (int64_t)json_integer_value(mtime);
    m->mtime_nsec = nsec ? (long)json_integer_value(nsec) : 0;
    return 0;
}

/* ---- small requests ------------------------------------------------------- */

/* Send a request and wait for a header-only answer of type `want`. */
static int request(struct client_session *s, json_t *req, const char *want, json_t **answer,
                   struct fs_error *err)
{
    const char *type;
    uint64_t body;
    json_t *h = NULL;
    int r;

    if (!req)
        return session_lost(s, err, "out of memory");
    r = session_send(s, req, err);
    if (r < 0)
        return r;
    r = session_recv(s, &h, &type, &body, err);
    if (r < 0)
        return r;
    if (strcmp(type, want) != 0 || body != 0) {
        r = session_lost(s, err, "protocol error: %s: unexpected '%s' message", s->peer, type);
        json_decref(h);
        return r;
    }
    if (answer)
        *answer = h;
    else
        json_decref(h);
    return 0;
}

/* json_pack fails on a path that is not UTF-8, which the protocol cannot
 * carry; say so instead of "out of memory". */
static int bad_name(struct fs_error *err)
{
    err->code[0] = err->errname[0] = '\0';
    snprintf(err->message, sizeof err->message, "the name is not valid UTF-8");
    return FERRY_EREMOTE;
}

int remotefs_stat(struct client_session *s, const char *path, struct fs_meta *m, json_t **answer,
               struct fs_error *err)
{
    json_t *req = json_pack("{s:s, s:s}", "type", MSG_STAT, "path", path), *h = NULL;
    int r;

    if (!req)
        return bad_name(err);
    r = request(s, req, MSG_STAT, &h, err);
    if (r == 0)
        r = remotefs_parse_meta(s, h, m, err);
    if (r == 0 && answer)
        *answer = json_incref(h);
    json_decref(h);
    return r;
}

int remotefs_names_dir(const char *arg)
{
    size_t n = strlen(arg);

    return n > 1 && arg[n - 1] == '/' && strspn(arg, "/") < n;
}

int remotefs_check_dir(struct client_session *s, const char *arg, struct fs_error *err)
{
    char *path = remotefs_canon(arg);
    struct fs_meta m;
    int r;

    if (!path)
        return session_lost(s, err, "out of memory");
    r = remotefs_stat(s, path, &m, NULL, err);
    free(path);
    if (r == FERRY_EREMOTE) {
        memset(err, 0, sizeof *err);
        return 0;
    }
    if (r < 0 || strcmp(m.kind, "dir") == 0 || strcmp(m.kind, "link") == 0)
        return r;
    snprintf(err->code, sizeof err->code, "%s", ERR_FS);
    snprintf(err->errname, sizeof err->errname, "ENOTDIR");
    snprintf(err->message, sizeof err->message, "%s", strerror(ENOTDIR));
    return FERRY_EREMOTE;
}

int remotefs_cd_names(struct client_session *s, const char *dir, const char *prefix, json_t **names,
                      struct fs_error *err)
{
    json_t *h = NULL, *list;
    size_t i;
    json_t *e;
    int r = request(s, json_pack("{s:s, s:s, s:s}", "type", MSG_CD_NAMES, "path", dir, "prefix",
                                 prefix), MSG_CD_NAMES, &h, err);

    if (r < 0)
        return r;
    list = json_object_get(h, "names");
    if (!json_is_array(list)) {
        json_decref(h);
        return session_lost(s, err, "protocol error: %s: cd-names without names", s->peer);
    }
    /* Names are one component each: a server's answer never reaches
     * beyond the directory asked about. */
    json_array_foreach(list, i, e) {
        const char *name = json_string_value(e);

        if (!name || !*name || strchr(name, '/')) {
            json_decref(h);
            return session_lost(s, err, "protocol error: %s: a bad name in cd-names", s->peer);
        }
    }
    *names = json_incref(list);
    json_decref(h);
    return 0;
}

int remotefs_list(struct client_session *s, const char *path, json_t **entries, struct fs_error *err)
{
    json_t *req = json_pack("{s:s, s:s}", "type", MSG_LIST, "path", path);
    json_t *all = NULL, *h = NULL;
    const char *type;
    uint64_t body;
    size_t held = 0;
    int r;

    if (!req)
        return bad_name(err);
    r = session_send(s, req, err);
    if (r < 0)
        return r;
    all = json_array();
    if (!all)
        return session_lost(s, err, "out of memory");
    for (;;) {
        json_t *batch, *e;
        size_t i;

        r = session_recv(s, &h, &type, &body, err);
        if (r < 0)
            goto out;
        if (body != 0) {
            r = session_lost(s, err, "protocol error: %s: '%s' with a body", s->peer, type);
            goto out;
        }
        if (strcmp(type, MSG_LIST_END) == 0)
            break;
        batch = json_object_get(h, "entries");
        if (strcmp(type, MSG_ENTRIES) != 0 || !json_is_array(batch)) {
            r = session_lost(s, err, "protocol error: %s: unexpected '%s' message", s->peer, type);
            goto out;
        }
        json_array_foreach(batch, i, e) {
            const char *name = json_string_value(json_object_get(e, "name"));
            struct fs_meta m;

            /* A name is one component: never let a server steer a local
             * write (get -r) anywhere else. */
            if (!name || !*name || strchr(name, '/') || strcmp(name, ".") == 0 ||
                strcmp(name, "..") == 0 || strlen(name) > NAME_MAX) {
                r = session_lost(s, err, "protocol error: %s: bad name in a listing", s->peer);
                goto out;
            }
            r = remotefs_parse_meta(s, e, &m, err);
            if (r < 0)
                goto out;
            /* A listing is held whole (to sort it): bound what a server
             * can make us hold, in entries and in bytes. */
            held += strlen(name) + json_string_length(json_object_get(e, "target"));
            if (json_array_size(all) >= REMOTEFS_LIST_MAX) {
                r = session_lost(s, err, "%s: more than %d entries in one directory", path,
                               REMOTEFS_LIST_MAX);
                goto out;
            }
            if (held > REMOTEFS_LIST_BYTES) {
                r = session_lost(s, err, "%s: more than %zu MiB of names in one directory",
                                 path, REMOTEFS_LIST_BYTES >> 20);
                goto out;
            }
            if (json_array_append(all, e) < 0) {
                r = session_lost(s, err, "out of memory");
                goto out;
            }
        }
        json_decref(h);
        h = NULL;
    }
    *entries = all;
    all = NULL;
    r = 0;
out:
    json_decref(h);
    json_decref(all);
    return r;
}

int remotefs_mkdir(struct client_session *s, const char *path, int parents, struct fs_error *err)
{
    json_t *req = json_pack("{s:s, s:s, s:b}", "type", MSG_MKDIR, "path", path, "parents", parents);

    return req ? request(s, req, MSG_OK, NULL, err) : bad_name(err);
}

int remotefs_rm(struct client_session *s, const char *path, int recursive, struct fs_error *err)
{
    json_t *req = json_pack("{s:s, s:s, s:b}", "type", MSG_RM, "path", path,
                            "recursive", recursive);

    return req ? request(s, req, MSG_OK, NULL, err) : bad_name(err);
}

int remotefs_is_pattern(const char *arg)
{
    return strpbrk(arg, "*?[\\") != NULL;
}

/* pattern as fnmatch(3) reads what the server matched: a backslash that
 * ends a component escapes nothing there, so the server keeps it as a
 * literal backslash (fsops_glob.c); fnmatch would match nothing with it.
 * malloc'd, or NULL. */
static char *fnmatch_pattern(const char *pattern)
{
    size_t len = strlen(pattern);
    char *out = malloc(2 * len + 1), *o = out;

    if (!out)
        return NULL;
    for (const char *p = pattern; *p; p++) {
        *o++ = *p;
        if (*p == '\\' && (p[1] == '/' || p[1] == '\0'))
            *o++ = '\\';
        else if (*p == '\\')
            *o++ = *++p;
    }
    *o = '\0';
    return out;
}

int remotefs_glob(struct client_session *s, const char *pattern, json_t **paths,
                  struct fs_error *err)
{
    json_t *req = json_pack("{s:s, s:s}", "type", MSG_GLOB, "path", pattern);
    json_t *all = NULL, *h = NULL;
    char *check = fnmatch_pattern(pattern);
    const char *type;
    uint64_t body;
    size_t held = 0;
    int r;

    if (!check) {
        json_decref(req);
        return session_lost(s, err, "out of memory");
    }
    if (!req) {
        free(check);
        return bad_name(err);
    }
    r = session_send(s, req, err);
    if (r < 0)
        goto out;
    all = json_array();
    if (!all) {
        r = session_lost(s, err, "out of memory");
        goto out;
    }
    for (;;) {
        json_t *batch, *e;
        size_t i;

        r = session_recv(s, &h, &type, &body, err);
        if (r < 0)
            goto out;
        if (body != 0) {
            r = session_lost(s, err, "protocol error: %s: '%s' with a body", s->peer, type);
            goto out;
        }
        if (strcmp(type, MSG_GLOB_END) == 0)
            break;
        batch = json_object_get(h, "paths");
        if (strcmp(type, MSG_MATCHES) != 0 || !json_is_array(batch)) {
            r = session_lost(s, err, "protocol error: %s: unexpected '%s' message", s->peer, type);
            goto out;
        }
        json_array_foreach(batch, i, e) {
            /* Held whole (the command's operands): bounded, as a listing is. */
            if (!json_is_string(e) || json_string_length(e) == 0 ||
                json_string_length(e) >= PATH_MAX) {
                r = session_lost(s, err, "protocol error: %s: bad path in a glob's matches",
                                 s->peer);
                goto out;
            }
            /* Every match is checked against what was asked, as scp learned
             * to (CVE-2019-6111): the names decide local writes (get *.gz
             * DIR), so a server answering ".bashrc" to "*.gz" must not get
             * to choose them.  The server matches each component with
             * fnmatch and FNM_PERIOD, so an honest match always passes. */
            if (fnmatch(check, json_string_value(e), FNM_PATHNAME | FNM_PERIOD) != 0) {
                r = session_lost(s, err, "protocol error: %s: the server matched '%s' to "
                                 "'%s', which the pattern does not match", s->peer,
                                 FERRY_LOG_Q(json_string_value(e)), FERRY_LOG_Q(pattern));
                goto out;
            }
            held += json_string_length(e);
            if (json_array_size(all) >= REMOTEFS_LIST_MAX || held > REMOTEFS_LIST_BYTES) {
                r = session_lost(s, err, "%s: more than %d matches, or %zu MiB of them",
                                 pattern, REMOTEFS_LIST_MAX,
                                 REMOTEFS_LIST_BYTES >> 20);
                goto out;
            }
            if (json_array_append(all, e) < 0) {
                r = session_lost(s, err, "out of memory");
                goto out;
            }
        }
        json_decref(h);
        h = NULL;
    }
    *paths = all;
    all = NULL;
    r = 0;
out:
    json_decref(h);
    json_decref(all);
    free(check);
    return r;
}
