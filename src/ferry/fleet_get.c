/*
 * fleet_get.c - one remote file downloaded from many hosts, each host's
 * copy in DIR/HOST/ (fleet_xfer.h).
 *
 * Each host: get -> get-ready (DIR/HOST/ is made and the temporary
 * DIR/HOST/.NAME.ferry-part opened only now, so a host that cannot be
 * reached leaves nothing) -> data frames, stored in the temporary by
 * libferry as they arrive (ferry_conn_recv_body_to_file: no copy through
 * us in plaintext) and hashed as stored -> get-end, whose checksum must
 * be ours -> mode, mtime, fsync and the rename (filecommit.h).  A host
 * that fails has its temporary removed: the final name never holds a
 * part.  The socket is read only as fast as the disk takes the bytes, so
 * a download holds no more than libferry's buffers in memory.
 */
#include "fleet_xfer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "client_session.h"
#include "ferry/ferry.h"
#include "filecommit.h"
#include "proto.h"
#include "remotefs.h"
#include "transfer.h"

/* What every host's download shares. */
struct get_job {
    const struct fleet_xfer_opts *xo;
    char *remote;               /* the remote file, canonical */
    char *base;                 /* its name, the local file's */
    char *tmpname;              /* .BASE.ferry-part */
    int dirfd;                  /* DIR, opened once (O_PATH) */
    mode_t umask;
    uint8_t buf[FLEET_XFER_PIECE];   /* hashing back what went straight to a file */
};

/* One host's download. */
struct get_host {
    struct get_job *j;
    char *dir, *tmp, *target;   /* DIR/HOST, its temporary, the final name (shown) */
    char *name;                 /* HOST's directory in DIR */
    int dirfd;                  /* DIR/HOST (O_PATH), where all is made and renamed */
    int fd;
    int ready;                  /* get-ready came: data frames follow */
    uint64_t off, size, hashed; /* [0, off) stored, [0, hashed) hashed */
    unsigned mode;
    int64_t mtime, mtime_nsec;
    struct digest *d;
    json_t *end;                /* get-end, once it came */
    int bad, committed;
    char err[320];
};

__attribute__((format(printf, 2, 3)))
static void bad(struct get_host *h, const char *fmt, ...)
{
    va_list ap;

    if (h->bad)
        return;   /* the first reason is the one */
    h->bad = 1;
    va_start(ap, fmt);
    vsnprintf(h->err, sizeof h->err, fmt, ap);
    va_end(ap);
}

/* Catch the digest up with the file: bytes that went straight into it
 * are hashed back from it (still in the page cache: a copy, not a read
 * from disk). */
static void hash_up(struct get_host *h)
{
    while (h->hashed < h->off && !h->bad) {
        size_t want = h->off - h->hashed < sizeof h->j->buf ? (size_t)(h->off - h->hashed)
                                                           : sizeof h->j->buf;
        ssize_t n = pread(h->fd, h->j->buf, want, (off_t)h->hashed);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            bad(h, "get %s: local %s: %s", h->j->xo->src, h->tmp, n < 0 ? strerror(errno)
                                                                    : "file shorter than written");
            return;
        }
        digest_update(h->d, h->j->buf, (size_t)n);
        h->hashed += (uint64_t)n;
    }
}

/* get-ready: the file's size and metadata; the temporary is made. */
static void took_ready(struct get_host *h, struct client_session *s, const json_t *m)
{
    int ok = 1;

    h->size = (uint64_t)transfer_int_member(m, "filesize", 0, INT64_MAX, &ok);
    h->mode = (unsigned)transfer_int_member(m, "mode", 0, 07777, &ok) & 0777;
    h->mtime = transfer_int_member(m, "mtime", INT64_MIN, INT64_MAX, &ok);
    h->mtime_nsec = json_object_get(m, "mtime_nsec")
                    ? transfer_int_member(m, "mtime_nsec", 0, 999999999, &ok) : 0;
    if (!ok || transfer_int_member(m, "offset", 0, 0, &ok) != 0 || !ok) {
        bad(h, "protocol error: %s: bad get-ready", s->peer);
        return;
    }
    /* DIR/HOST is made by us: a symlink there (another user's, in a
     * shared DIR) is not followed, and all else is done in it. */
    h->dirfd = transfer_open_local_dir(h->j->dirfd, h->name, 0);
    if (h->dirfd < 0) {
        bad(h, "get %s: local %s: %s", h->j->xo->src, h->dir, transfer_local_dir_error(h->dirfd));
        h->dirfd = -1;
        return;
    }
    /* A stale temporary (a killed run) goes; the new one is made with
     * O_EXCL, so nothing put in its place is written through. */
    (void)unlinkat(h->dirfd, h->j->tmpname, 0);
    h->fd = openat(h->dirfd, h->j->tmpname, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                   0600);
    if (h->fd < 0) {
        bad(h, "get %s: local %s: %s", h->j->xo->src, h->dir, strerror(errno));
        return;
    }
    h->ready = 1;
}

static void took_header(struct get_host *h, struct client_session *s, json_t *m, uint64_t body)
{
    const char *type = json_string_value(json_object_get(m, "type"));
    struct fs_error fe = { 0 };
    int ok = 1;

    if (!type) {
        bad(h, "protocol error: %s: message without a type", s->peer);
    } else if (strcmp(type, MSG_ERROR) == 0) {
        session_remote_error(s, m, &fe);
        bad(h, "get %s: %s", h->j->xo->src, remotefs_error_text(&fe));
    } else if (h->end) {
        bad(h, "protocol error: %s: '%s' after get-end", s->peer, type);
    } else if (!h->ready) {
        if (strcmp(type, MSG_GET_READY) != 0 || body != 0)
            bad(h, "protocol error: %s: '%s' instead of get-ready", s->peer, type);
        else
            took_ready(h, s, m);
    } else if (strcmp(type, MSG_GET_END) == 0 && body == 0) {
        h->end = json_incref(m);
    } else if (strcmp(type, MSG_DATA) != 0 ||
               (uint64_t)transfer_int_member(m, "offset", 0, INT64_MAX, &ok) != h->off || !ok ||
               body > h->size - h->off) {
        bad(h, "protocol error: %s: bad '%s' during a download", s->peer, type);
    } else if (body > 0) {
        /* libferry stores the body in the temporary and tells us what
         * arrived (BODY events). */
        int r = ferry_conn_recv_body_to_file(s->conn, h->fd, h->off);

        if (r < 0)
            bad(h, "get %s: %s", h->j->xo->src, ferry_strerror(r));
    }
}

static void get_frame(void *state, struct client_session *s, struct ferry_frame_event *ev)
{
    struct get_host *h = state;

    switch (ev->type) {
    case FERRY_FRAME_HEADER:
        if (!h->bad)
            took_header(h, s, ev->header, ev->body_size);
        json_decref(ev->header);
        break;
    case FERRY_FRAME_BODY:
        /* ev->chunk_len more bytes are in the file; ev->chunk shows them
         * when they passed through our memory (TLS). */
        if (ev->chunk && h->hashed == h->off) {
            digest_update(h->d, ev->chunk, ev->chunk_len);
            h->hashed += ev->chunk_len;
        }
        h->off += ev->chunk_len;
        if (h->off - h->hashed >= sizeof h->j->buf)
            hash_up(h);
        break;
    case FERRY_FRAME_END:
        hash_up(h);
        break;
    case FERRY_FRAME_ERROR:
        /* Storing the body failed (-errno), or the stream broke framing. */
        if (ev->error > -4000)
            bad(h, "get %s: local %s: %s", h->j->xo->src, h->tmp, strerror(-ev->error));
        else
            bad(h, "protocol error: %s: %s", s->peer, ferry_strerror(ev->error));
        break;
    default:
        break;
    }
}

/* The host's directory's name in DIR: HOST, with a '/' in HOST
 * (unix:/PATH) made '_' so each host has one directory right under DIR. */
static char *host_dir_name(const char *host)
{
    char *p = strdup(host);

    for (char *c = p; c && *c; c++)
        if (*c == '/')
            *c = '_';
    return p;
}

static int get_start(void *arg, const char *host, struct client_session *s, void **state,
                     char *err, size_t len)
{
    struct get_job *j = arg;
    struct get_host *h = calloc(1, sizeof *h);
    json_t *req;
    int r;

    *state = h;
    if (!h) {
        snprintf(err, len, "out of memory");
        return -1;
    }
    h->j = j;
    h->fd = h->dirfd = -1;
    if (strcmp(host, ".") == 0 || strcmp(host, "..") == 0) {
        snprintf(err, len, "get: '%s' cannot name a directory", host);
        return -1;
    }
    h->d = digest_new(j->xo->alg);
    h->name = host_dir_name(host);
    if (!h->d || !h->name ||
        asprintf(&h->dir, "%s%s%s", j->xo->dest,
                 j->xo->dest[0] && j->xo->dest[strlen(j->xo->dest) - 1] == '/' ? "" : "/",
                 h->name) < 0) {
        h->dir = NULL;
        snprintf(err, len, "out of memory");
        return -1;
    }
    if (asprintf(&h->target, "%s/%s", h->dir, j->base) < 0 ||
        asprintf(&h->tmp, "%s/%s", h->dir, j->tmpname) < 0) {
        h->target = h->tmp = NULL;
        snprintf(err, len, "out of memory");
        return -1;
    }
    req = json_pack("{s:s, s:s, s:s}", "type", MSG_GET, "path", j->remote, "checksum",
                    digest_name(j->xo->alg));
    r = req ? session_write_frame(s, req, NULL, 0) : -ENOMEM;
    json_decref(req);
    if (r < 0) {
        snprintf(err, len, "cannot send the get request: %s", ferry_strerror(r));
        return -1;
    }
    return 0;
}

/* The whole file arrived and checked: its mode, times, and the rename. */
static int commit(struct get_host *h)
{
    const struct fleet_xfer_opts *xo = h->j->xo;
    struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT },
                              { .tv_sec = (time_t)h->mtime, .tv_nsec = (long)h->mtime_nsec } };
    unsigned mode = xo->preserve ? h->mode : h->mode & ~(unsigned)h->j->umask;
    int r = filecommit_prepare(h->fd, mode, xo->preserve ? ts : NULL, xo->fsync);

    if (r == 0)
        r = filecommit_rename(h->dirfd, h->j->tmpname, h->j->base);
    if (r < 0)
        return r;
    h->committed = 1;
    if (xo->fsync && (r = filecommit_sync_dir(h->dirfd, ".")) < 0)
        cli_error("warning: cannot sync directory %s: %s", h->dir, strerror(-r));
    return 0;
}

static int get_advance(void *state, struct client_session *s, char *err, size_t len)
{
    struct get_host *h = state;
    char sum[DIGEST_HEX_MAX];
    const char *theirs;
    int r;

    (void)s;
    if (!h->bad && h->end) {
        hash_up(h);
        digest_hex(h->d, sum);
        theirs = json_string_value(json_object_get(h->end, "checksum"));
        if (h->off != h->size)
            bad(h, "protocol error: %s: get-end before the whole file", s->peer);
        else if (!h->bad && (!theirs || !digest_hex_equal(theirs, sum)))
            bad(h, "get %s: checksum mismatch: the file was not saved", h->j->xo->src);
        else if (!h->bad && (r = commit(h)) < 0)
            bad(h, "get %s: local %s: %s", h->j->xo->src, h->target, strerror(-r));
        if (!h->bad)
            return 1;
    }
    if (h->bad) {
        snprintf(err, len, "%s", h->err);
        return -1;
    }
    return 0;
}

static void get_end(void *state, int ok)
{
    struct get_host *h = state;

    (void)ok;
    if (!h)
        return;
    if (h->fd >= 0) {
        close(h->fd);
        /* Whatever stopped it, a part never stays (there is no --resume
         * with -w). */
        if (!h->committed && unlinkat(h->dirfd, h->j->tmpname, 0) < 0 && errno != ENOENT)
            cli_error("warning: cannot remove %s: %s", h->tmp, strerror(errno));
    }
    if (h->dirfd >= 0)
        close(h->dirfd);
    json_decref(h->end);
    digest_free(h->d);
    free(h->name);
    free(h->dir);
    free(h->tmp);
    free(h->target);
    free(h);
}

int fleet_get(const struct hostlist *hosts, struct fleet_opts *fo,
              const struct fleet_xfer_opts *xo)
{
    struct get_job *j = calloc(1, sizeof *j);
    struct fleet_job job = { .start = get_start, .frame = get_frame, .advance = get_advance,
                             .end = get_end, .arg = j, .why = "transfer failed" };
    struct stat st;
    int status = FERRY_EXIT_ERROR, e;

    if (!j) {
        cli_error("out of memory");
        return status;
    }
    j->xo = xo;
    j->dirfd = -1;
    e = stat(xo->dest, &st) < 0 ? errno : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
    if (e) {
        cli_error("get: %s: %s (with -w, DIR must be an existing directory: each host's "
                  "copy goes in DIR/HOST/)", xo->dest, strerror(e));
        goto out;
    }
    j->umask = umask(0);
    umask(j->umask);
    j->remote = remotefs_canon(xo->src);
    j->base = transfer_own_name(xo->src);
    if (!j->remote || !j->base) {
        if (j->remote)
            cli_error("get %s: not a file name", xo->src);
        else
            cli_error("out of memory");
        goto out;
    }
    if (asprintf(&j->tmpname, ".%s%s", j->base, PROTO_PART_SUFFIX) < 0) {
        j->tmpname = NULL;
        cli_error("out of memory");
        goto out;
    }
    /* DIR as it is now, for every host (what the user named: followed). */
    j->dirfd = open(xo->dest, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (j->dirfd < 0) {
        cli_error("get: %s: %s", xo->dest, strerror(errno));
        goto out;
    }
    fo->job = &job;
    status = fleet_run_job(hosts, fo);
    fo->job = NULL;
out:
    if (j->dirfd >= 0)
        close(j->dirfd);
    free(j->remote);
    free(j->base);
    free(j->tmpname);
    free(j);
    return status;
}
