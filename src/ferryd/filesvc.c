/*
 * filesvc.c - the file service on a session: stat, list, mkdir and rm,
 * and the dispatch of put/get traffic to filesvc_xfer.c (the contract is
 * in filesvc.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ferry/ferry.h"
#include "audit.h"
#include "filesvc_int.h"
#include "fsops_glob.h"
#include "proto.h"

/* Entries frames sent per loop turn before a listing yields. */
#define LIST_BATCHES_PER_TURN 16

struct filesvc *filesvc_new(struct ferry_conn *c, const struct fsroot *root,
                            const struct audit_who *who, void (*on_idle)(void *arg), void *arg)
{
    struct filesvc *f = calloc(1, sizeof *f);

    if (!f)
        return NULL;
    f->c = c;
    f->root = root;
    f->who = who;
    f->on_idle = on_idle;
    f->idle_arg = arg;
    f->fd = -1;
    fsops_upload_init(&f->up);
    return f;
}

void filesvc_free(struct filesvc *f)
{
    if (!f)
        return;
    /* Gone mid-upload: a resumable upload keeps its bytes for next time. */
    if (f->state != XFER_NONE && f->state != XFER_LIST && f->op)
        audit_file(f->who, f->op ? f->op : "?", f->path,
                   (int64_t)f->pos, "interrupted", NULL);
    filesvc_xfer_reset(f, 1);
    free(f);
}

int filesvc_handles(const char *type)
{
    static const char *const names[] = { MSG_STAT, MSG_LIST, MSG_MKDIR, MSG_RM,
                                         MSG_PUT, MSG_PUT_END, MSG_GET, MSG_DATA, MSG_GLOB };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(type, names[i]) == 0)
            return 1;
    return 0;
}

int filesvc_busy(const struct filesvc *f)
{
    return f->state != XFER_NONE;
}

int filesvc_sending(const struct filesvc *f)
{
    return f->state == XFER_GET_SEND || f->state == XFER_GET_PAD;
}

/* Whether name is a transfer's temporary (".NAME.ferry-part",
 * ".NAME.XXXXXXXX.ferry-part"): those are the server's own while a
 * transfer runs, so clients may neither name nor see them. */
static int is_temporary(const char *name, size_t len)
{
    size_t sl = sizeof PROTO_PART_SUFFIX - 1;
    return len > sl + 1 && name[0] == '.' && memcmp(name + len - sl, PROTO_PART_SUFFIX, sl) == 0;
}

static int names_a_temporary(const char *path)
{
    for (const char *p = path;;) {
        size_t n = strcspn(p, "/");
        if (is_temporary(p, n))
            return 1;
        if (p[n] == '\0')
            return 0;
        p += n + 1;
    }
}

/* ---- stat, list, mkdir, rm ---------------------------------------------------- */

/* path's metadata (fsops_meta_at: a symlink is looked at itself, with its
 * target) beneath the root into *meta; "." is the root itself. */
static int meta_path(const struct fsroot *root, const char *path, json_t **meta)
{
    const char *name;
    struct stat st;
    int dirfd, r;

    if (strcmp(path, ".") == 0) {
        if (fstat(fsroot_fd(root), &st) < 0)
            return -errno;
        *meta = fsops_meta(&st);
        return *meta ? 0 : -ENOMEM;
    }
    r = fspath_parent(root, path, &dirfd, &name);
    if (r < 0)
        return r;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        r = -errno;
    else if (!(*meta = fsops_meta_at(dirfd, name, &st)))
        r = -ENOMEM;
    close(dirfd);
    return r;
}

static int handle_stat(struct filesvc *f, const char *path)
{
    json_t *msg = NULL;
    int r = meta_path(f->root, path, &msg);

    if (r == -ENOMEM)
        return r;
    if (r < 0)
        return filesvc_reply_op_error(f, path, r);
    if (json_object_set_new(msg, "type", json_string(MSG_STAT)) < 0 ||
        json_object_set_new(msg, "path", json_string(path)) < 0) {
        json_decref(msg);
        return -ENOMEM;
    }
    return filesvc_reply_send(f, msg);
}

/* Name meta (taken) as a list entry called name into *e.  1: left out,
 * the name being no UTF-8 (the protocol carries only text, and no client
 * could name it back: glob leaves such paths out too); -ENOMEM. */
static int entry(const char *name, json_t *meta, json_t **e)
{
    json_t *jname = json_string(name);

    *e = NULL;
    if (!meta) {
        json_decref(jname);
        return -ENOMEM;
    }
    if (!jname) {
        json_decref(meta);
        return 1;
    }
    if (json_object_set_new(meta, "name", jname) < 0) {
        json_decref(meta);
        return -ENOMEM;
    }
    *e = meta;
    return 0;
}

static int send_entries(struct filesvc *f, json_t *batch)
{
    return filesvc_reply_send(f, json_pack("{s:s, s:o}", "type", MSG_ENTRIES, "entries", batch));
}

/* At most this many bytes of an entry's JSON are not its name or target:
 * its keys, the metadata's numbers at their longest ("filesize" and
 * "mtime" 20 characters each), punctuation and the comma after it. */
#define ENTRY_JSON_FIXED 192

/* A string's JSON text at its longest: quoted, a control byte as \u00XX,
 * '"' and '\\' after a backslash (cheaper than writing it out to know). */
static size_t json_string_bound(const char *s)
{
    size_t n = 2;

    for (; s && *s; s++)
        n += (unsigned char)*s < 0x20 ? 6 : (*s == '"' || *s == '\\') ? 2 : 1;
    return n;
}

/* A list entry's JSON text at its longest (entry() made of name, with a
 * symlink's target or NULL). */
static size_t entry_json_bound(const char *name, const char *target)
{
    return ENTRY_JSON_FIXED + json_string_bound(name) + json_string_bound(target);
}

/* Send a full batch and start the next, empty one (NULL: no memory);
 * a frame of the turn's budget spent. */
static int next_batch(struct filesvc *f, json_t **batch, size_t *bytes, int *budget)
{
    int r = send_entries(f, *batch);

    *batch = json_array();
    *bytes = 0;
    (*budget)--;
    return r;
}

/* Send entries until the directory ends or the client falls behind (then
 * on_drain brings us back), so a huge directory costs no more memory than
 * a write_high_water of queued frames. */
static void filesvc_list_pump(struct filesvc *f)
{
    json_t *batch = json_array(), *e;
    struct stat st;
    size_t bytes = 0, len;   /* bytes: the batch's entries, as JSON */
    int r = 0, done = 0, budget = LIST_BATCHES_PER_TURN;

    while (batch && r >= 0 && !ferry_conn_write_blocked(f->c)) {
        if (budget == 0) {
            /* Let the loop's other sessions in; on_drain brings us back. */
            ferry_conn_want_drain(f->c);
            break;
        }
        struct dirent *d;

        errno = 0;
        d = readdir(f->dir);
        if (!d) {
            if (errno)
                r = -errno;
            done = 1;
            break;
        }
        if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0 ||
            is_temporary(d->d_name, strlen(d->d_name)))
            continue;
        /* An entry removed since readdir saw it is simply left out. */
        if (fstatat(dirfd(f->dir), d->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        r = entry(d->d_name, fsops_meta_at(dirfd(f->dir), d->d_name, &st), &e);
        if (r < 0)
            break;
        if (r == 1) {
            r = 0;
            continue;
        }
        /* A frame's header is bounded (64 KiB at the receiver): long names
         * and targets end a batch before it has PROTO_LIST_BATCH entries. */
        len = entry_json_bound(d->d_name, json_string_value(json_object_get(e, "target")));
        if (json_array_size(batch) > 0 && bytes + len > PROTO_LIST_BATCH_BYTES) {
            r = next_batch(f, &batch, &bytes, &budget);
            if (!batch || r < 0) {
                json_decref(e);
                break;
            }
        }
        if (json_array_append_new(batch, e) < 0) {
            r = -ENOMEM;
            break;
        }
        bytes += len;
        f->listed++;
        if (json_array_size(batch) == PROTO_LIST_BATCH)
            r = next_batch(f, &batch, &bytes, &budget);
    }
    if (!batch || r < 0) {
        json_decref(batch);
        ferry_conn_abort(f->c, batch ? r : -ENOMEM);
        return;
    }
    if (json_array_size(batch) > 0 || (done && f->listed == 0))
        r = send_entries(f, batch);
    else
        json_decref(batch);
    if (r == 0 && done) {
        filesvc_reply_send(f, json_pack("{s:s, s:I}", "type", MSG_LIST_END, "count",
                                        (json_int_t)f->listed));
        filesvc_xfer_reset(f, 0);
        if (f->on_idle)
            f->on_idle(f->idle_arg);
    }
}

static int handle_list(struct filesvc *f, const char *path)
{
    json_t *batch;
    int fd, r = fspath_open(f->root, path, O_RDONLY | O_DIRECTORY | O_NONBLOCK, 0, &fd);

    if (r == -ENOTDIR) {
        /* ls FILE lists the file itself (a client could name it: UTF-8). */
        const char *base = strrchr(path, '/');
        json_t *meta = NULL, *e = NULL;

        r = meta_path(f->root, path, &meta);
        if (r == -ENOMEM)
            return r;
        if (r < 0)
            return filesvc_reply_op_error(f, path, r);
        if (entry(base ? base + 1 : path, meta, &e) != 0)
            return -ENOMEM;
        batch = json_array();
        if (!batch) {
            json_decref(e);
            return -ENOMEM;
        }
        if (json_array_append_new(batch, e) < 0) {
            json_decref(batch);
            return -ENOMEM;
        }
        r = send_entries(f, batch);
        return r < 0 ? r : filesvc_reply_send(f, json_pack("{s:s, s:i}", "type", MSG_LIST_END,
                                                           "count", 1));
    }
    if (r < 0)
        return filesvc_reply_op_error(f, path, r);
    f->dir = fdopendir(fd);
    if (!f->dir) {
        r = -errno;
        close(fd);
        return filesvc_reply_op_error(f, path, r);
    }
    f->listed = 0;
    f->state = XFER_LIST;
    filesvc_list_pump(f);
    return 0;
}

static int send_matches(struct filesvc *f, json_t *batch)
{
    return filesvc_reply_send(f, json_pack("{s:s, s:o}", "type", MSG_MATCHES, "paths", batch));
}

/* glob: the whole expansion at once (bounded by fsops_glob.h), then its
 * paths in frames of bounded size. */
static int handle_glob(struct filesvc *f, const char *pattern)
{
    char **paths;
    size_t n, bytes = 0, i, count;
    json_t *batch = NULL;
    int r = fsops_glob(f->root, pattern, PROTO_PART_SUFFIX, &paths, &n);

    if (r == -E2BIG) {
        char why[160];

        snprintf(why, sizeof why, "the pattern matches more than %d paths (or more than %d "
                 "bytes of them), or needs more than %d entries looked at",
                 FSOPS_GLOB_MAX_MATCHES, FSOPS_GLOB_MAX_BYTES, FSOPS_GLOB_MAX_SCANNED);
        return filesvc_reply_error(f, ERR_REQUEST, why);
    }
    if (r < 0)
        return r;
    count = n;
    for (i = 0; r >= 0 && i < n; i++) {
        json_t *p = json_string(paths[i]);

        if (!p) {
            count--;   /* not UTF-8: no client could name it either */
            continue;
        }
        if ((!batch && !(batch = json_array())) || json_array_append_new(batch, p) < 0) {
            if (!batch)
                json_decref(p);
            r = -ENOMEM;
            break;
        }
        bytes += strlen(paths[i]);
        if (json_array_size(batch) == PROTO_LIST_BATCH || bytes >= PROTO_GLOB_BATCH_BYTES) {
            r = send_matches(f, batch);
            batch = NULL;
            bytes = 0;
        }
    }
    if (r >= 0 && batch)
        r = send_matches(f, batch);
    else
        json_decref(batch);
    fsops_glob_free(paths, n);
    if (r < 0)
        return r;
    return filesvc_reply_send(f, json_pack("{s:s, s:I}", "type", MSG_GLOB_END, "count",
                                           (json_int_t)count));
}

static int handle_mkdir(struct filesvc *f, const char *path, int parents)
{
    int r = fsops_mkdir(f->root, path, parents);

    if (r < 0)
        return filesvc_reply_op_error(f, path, r);
    audit_file(f->who, "mkdir", path, -1, "ok", NULL);
    return filesvc_reply_send(f, json_pack("{s:s}", "type", MSG_OK));
}

static int handle_rm(struct filesvc *f, const char *path, int recursive)
{
    int r = fsops_rm(f->root, path, recursive);

    if (r < 0)
        return filesvc_reply_op_error(f, path, r);
    audit_file(f->who, recursive ? "rm-r" : "rm", path, -1, "ok", NULL);
    return filesvc_reply_send(f, json_pack("{s:s}", "type", MSG_OK));
}

/* ---- dispatch ------------------------------------------------------------------- */

/* A boolean member that may be absent (false); -1 when it is not a boolean. */
static int flag(json_t *msg, const char *key)
{
    json_t *v = json_object_get(msg, key);
    if (!v)
        return 0;
    return json_is_boolean(v) ? json_is_true(v) : -1;
}

int filesvc_on_header(struct filesvc *f, const char *type, json_t *msg, uint64_t body_size,
                    const char **complaint)
{
    const char *path;
    char why[160];
    int opt, r;

    if (strcmp(type, MSG_DATA) == 0)
        return filesvc_xfer_data(f, msg, body_size, complaint);
    if (body_size > 0) {
        *complaint = "only stdin and data messages carry a body";
        return 1;
    }
    if (strcmp(type, MSG_PUT_END) == 0)
        return filesvc_xfer_put_end(f, msg, complaint);
    if (f->state == XFER_PUT_DATA || f->state == XFER_PUT_FAILED || f->state == XFER_PUT_HASH) {
        *complaint = "expected data or put-end during a put";
        return 1;
    }
    if (f->state != XFER_NONE)
        return filesvc_reply_error(f, ERR_BUSY, "a transfer is in progress on this session");

    /* Which operation an error is audited as (filesvc_reply_op_error). */
    f->op = strcmp(type, MSG_PUT) == 0 ? "put" : strcmp(type, MSG_GET) == 0 ? "get"
          : strcmp(type, MSG_MKDIR) == 0 ? "mkdir" : strcmp(type, MSG_RM) == 0 ? "rm" : NULL;
    path = json_string_value(json_object_get(msg, "path"));
    if (!path) {
        *complaint = "file requests need a \"path\" string";
        return 1;
    }
    /* Refuse a bad path here, once, with the checker's reason. */
    r = fspath_check(path, why, sizeof why);
    if (r < 0)
        return filesvc_reply_op_error(f, path, r);
    if (names_a_temporary(path))
        return filesvc_reply_error(f, ERR_PATH, "names of the form .NAME" PROTO_PART_SUFFIX
                                " are reserved for transfers in progress");

    if (strcmp(type, MSG_STAT) == 0)
        return handle_stat(f, path);
    if (strcmp(type, MSG_LIST) == 0)
        return handle_list(f, path);
    if (strcmp(type, MSG_GLOB) == 0)
        return handle_glob(f, path);
    if (strcmp(type, MSG_MKDIR) == 0 || strcmp(type, MSG_RM) == 0) {
        int mk = type[0] == 'm';
        opt = flag(msg, mk ? "parents" : "recursive");
        if (opt < 0) {
            *complaint = mk ? "\"parents\" must be true or false" : "\"recursive\" must be true or false";
            return 1;
        }
        return mk ? handle_mkdir(f, path, opt) : handle_rm(f, path, opt);
    }
    if (strcmp(type, MSG_PUT) == 0)
        return filesvc_xfer_put(f, msg, complaint);
    return filesvc_xfer_get(f, msg, complaint);
}

int filesvc_on_body(struct filesvc *f, const uint8_t *chunk, size_t len)
{
    return filesvc_xfer_body(f, chunk, len);
}

void filesvc_on_drain(struct filesvc *f)
{
    if (f->state == XFER_GET_SEND || f->state == XFER_GET_PAD)
        filesvc_xfer_pump(f);
    else if (f->state == XFER_LIST)
        filesvc_list_pump(f);
}
