/*
 * fleet_put.c - one local file uploaded to many hosts (fleet_xfer.h).
 *
 * Each host: [stat DEST, when it may be a directory] -> put -> put-ready
 * -> data frames, a piece at a time while the connection's queue is
 * under FLEET_XFER_QUEUED -> put-end with our checksum -> put-ok with
 * the server's, which must be the same.  The file is opened once and read
 * by pread at each host's own offset; every piece is hashed as it is
 * queued, so each host's checksum vouches for the bytes that host got.
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
#include "proto.h"
#include "remotefs.h"
#include "transfer.h"

/* What every host's upload shares. */
struct put_job {
    const struct fleet_xfer_opts *xo;
    int fd;
    struct stat st;
    unsigned mode;
    char *dest;                 /* DEST, canonical */
    char *base;                 /* the file's own name, under a directory DEST */
    int into_dir;               /* DEST ends in '/' or is the root: no stat needed */
    uint8_t buf[FLEET_XFER_PIECE];
};

enum put_state { P_STAT, P_READY, P_DATA, P_OK };

/* One host's upload. */
struct put_host {
    struct put_job *j;
    enum put_state state;
    char *path;                 /* where it goes on this host */
    uint64_t off;               /* bytes queued so far */
    struct digest *d;
    json_t *answer;             /* the server's last header, not yet looked at */
    int bad;                    /* a frame we cannot take: err says which */
    char err[256];
};

__attribute__((format(printf, 3, 4)))
static int fail(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
    return -1;
}

static void put_frame(void *state, struct client_session *s, struct ferry_frame_event *ev)
{
    struct put_host *h = state;

    if (ev->type == FERRY_FRAME_HEADER) {
        /* Every answer is one header without a body, and one at a time:
         * advance takes each before the next request goes. */
        if (ev->body_size > 0 || h->answer) {
            h->bad = 1;
            snprintf(h->err, sizeof h->err, "protocol error: %s: unexpected message", s->peer);
            json_decref(ev->header);
        } else {
            h->answer = ev->header;
        }
    } else if (ev->type == FERRY_FRAME_ERROR && !h->bad) {
        h->bad = 1;
        snprintf(h->err, sizeof h->err, "protocol error: %s: %s", s->peer,
                 ferry_strerror(ev->error));
    }
}

/* The answer's type when it is one (borrowed), or NULL with err set (an
 * error message's words, or a protocol error). */
static const char *answer_type(struct put_host *h, struct client_session *s, const char *want,
                               char *err, size_t len)
{
    const char *type = json_string_value(json_object_get(h->answer, "type"));
    struct fs_error fe = { 0 };

    if (type && strcmp(type, want) == 0)
        return type;
    if (type && strcmp(type, MSG_ERROR) == 0) {
        session_remote_error(s, h->answer, &fe);
        fail(err, len, "put %s -> %s: %s", h->j->xo->src, h->path ? h->path : h->j->dest,
             remotefs_error_text(&fe));
    } else {
        fail(err, len, "protocol error: %s: '%s' instead of %s", s->peer,
             type ? type : "(no type)", want);
    }
    return NULL;
}

static int send_put(struct put_host *h, struct client_session *s, char *err, size_t len)
{
    const struct put_job *j = h->j;
    json_t *req = json_pack("{s:s, s:s, s:I, s:i, s:s, s:b, s:b}", "type", MSG_PUT, "path",
                            h->path, "filesize", (json_int_t)j->st.st_size, "mode", (int)j->mode,
                            "checksum", digest_name(j->xo->alg), "resume", 0,
                            "fsync", j->xo->fsync);
    int r;

    if (req && j->xo->preserve &&
        (json_object_set_new(req, "mtime", json_integer((json_int_t)j->st.st_mtim.tv_sec)) < 0 ||
         json_object_set_new(req, "mtime_nsec", json_integer(j->st.st_mtim.tv_nsec)) < 0)) {
        json_decref(req);
        req = NULL;
    }
    if (!req)
        return fail(err, len, "put %s: the name is not valid UTF-8", h->path);
    if (session_ask_put_acks(s, req) < 0) {
        json_decref(req);
        return fail(err, len, "out of memory");
    }
    r = session_write_frame(s, req, NULL, 0);
    json_decref(req);
    if (r < 0)
        return fail(err, len, "cannot send the put request: %s", ferry_strerror(r));
    h->state = P_READY;
    return 0;
}

static int put_start(void *arg, const char *host, struct client_session *s, void **state,
                     char *err, size_t len)
{
    struct put_job *j = arg;
    struct put_host *h = calloc(1, sizeof *h);
    json_t *req;
    int r;

    (void)host;
    *state = h;
    if (!h || !(h->d = digest_new(j->xo->alg)))
        return fail(err, len, "out of memory");
    h->j = j;
    if (j->into_dir) {
        h->path = remotefs_join(j->dest, j->base);
        if (!h->path)
            return fail(err, len, "out of memory");
        return send_put(h, s, err, len);
    }
    /* A directory DEST takes the file under its own name, as one host's
     * put does; each host may differ. */
    req = json_pack("{s:s, s:s}", "type", MSG_STAT, "path", j->dest);
    if (!req)
        return fail(err, len, "put %s: the name is not valid UTF-8", j->dest);
    r = session_write_frame(s, req, NULL, 0);
    json_decref(req);
    if (r < 0)
        return fail(err, len, "cannot send a request: %s", ferry_strerror(r));
    h->state = P_STAT;
    return 0;
}

/* The stat answer: where the file goes on this host. */
static int took_stat(struct put_host *h, struct client_session *s, char *err, size_t len)
{
    const char *type = json_string_value(json_object_get(h->answer, "type"));
    const char *kind = json_string_value(json_object_get(h->answer, "kind"));
    struct fs_error fe = { 0 };

    if (type && strcmp(type, MSG_STAT) == 0) {
        h->path = kind && strcmp(kind, "dir") == 0 ? remotefs_join(h->j->dest, h->j->base)
                                                  : strdup(h->j->dest);
    } else if (type && strcmp(type, MSG_ERROR) == 0) {
        session_remote_error(s, h->answer, &fe);
        if (strcmp(fe.code, ERR_FS) != 0 ||
            (strcmp(fe.errname, "ENOENT") != 0 && strcmp(fe.errname, "ENOTDIR") != 0))
            return fail(err, len, "put %s -> %s: %s", h->j->xo->src, h->j->dest,
                        remotefs_error_text(&fe));
        h->path = strdup(h->j->dest);   /* nothing there yet: the file's new name */
    } else {
        return fail(err, len, "protocol error: %s: '%s' instead of stat", s->peer,
                    type ? type : "(no type)");
    }
    if (!h->path)
        return fail(err, len, "out of memory");
    return send_put(h, s, err, len);
}

/* Queue data frames while the connection takes them; put-end after the
 * last.  0, or -1 with err. */
static int pump(struct put_host *h, struct client_session *s, char *err, size_t len)
{
    const struct put_job *j = h->j;
    uint64_t size = (uint64_t)j->st.st_size;
    char sum[DIGEST_HEX_MAX];
    json_t *m;
    int r;

    while (h->off < size && s->conn && ferry_conn_pending(s->conn) < FLEET_XFER_QUEUED) {
        size_t want = size - h->off < FLEET_XFER_PIECE ? (size_t)(size - h->off)
                                                       : FLEET_XFER_PIECE;
        ssize_t n = pread(j->fd, h->j->buf, want, (off_t)h->off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            /* The host is given up: its connection closes, and ferryd
             * removes the temporary of a put cut off. */
            return fail(err, len, "put %s: %s", j->xo->src,
                        n == 0 ? "file changed while being sent" : strerror(errno));
        digest_update(h->d, h->j->buf, (size_t)n);
        m = json_pack("{s:s, s:I}", "type", MSG_DATA, "offset", (json_int_t)h->off);
        r = m ? session_write_frame(s, m, h->j->buf, (size_t)n) : -ENOMEM;
        json_decref(m);
        if (r < 0)
            return fail(err, len, "cannot send data: %s", ferry_strerror(r));
        h->off += (uint64_t)n;
    }
    if (h->off < size) {
        if (s->conn)
            ferry_conn_want_drain(s->conn);   /* woken once it has gone */
        return 0;
    }
    /* Written to while it was read: this host's copy may mix two
     * versions.  The host is given up as above, and ferryd discards the
     * temporary. */
    if (transfer_source_changed(j->fd, &j->st))
        return fail(err, len, "put %s: file changed while being sent (not stored)", j->xo->src);
    digest_hex(h->d, sum);
    m = json_pack("{s:s, s:s}", "type", MSG_PUT_END, "checksum", sum);
    r = m ? session_write_frame(s, m, NULL, 0) : -ENOMEM;
    json_decref(m);
    if (r < 0)
        return fail(err, len, "cannot send put-end: %s", ferry_strerror(r));
    h->state = P_OK;
    return 0;
}

static int put_advance(void *state, struct client_session *s, char *err, size_t len)
{
    struct put_host *h = state;
    char sum[DIGEST_HEX_MAX];
    const char *theirs;
    int r = 0;

    if (h->bad)
        return fail(err, len, "%s", h->err);
    switch (h->state) {
    case P_STAT:
        if (h->answer)
            r = took_stat(h, s, err, len);
        break;
    case P_READY:
        if (!h->answer)
            break;
        if (!answer_type(h, s, MSG_PUT_READY, err, len)) {
            r = -1;
        } else if (json_integer_value(json_object_get(h->answer, "offset")) != 0) {
            r = fail(err, len, "protocol error: %s: bad put-ready offset", s->peer);
        } else {
            h->state = P_DATA;
            json_decref(h->answer);
            h->answer = NULL;
            r = pump(h, s, err, len);
        }
        break;
    case P_DATA:
        if (h->answer) {
            /* The server refused mid-way (disk full...): its error was
             * the put's answer, and it waits for this put-end. */
            json_t *m = json_pack("{s:s, s:b}", "type", MSG_PUT_END, "abort", 1);

            if (m)
                (void)session_write_frame(s, m, NULL, 0);
            json_decref(m);
            (void)answer_type(h, s, MSG_PUT_OK, err, len);
            return -1;
        }
        r = pump(h, s, err, len);
        break;
    case P_OK:
        if (!h->answer)
            break;
        if (!answer_type(h, s, MSG_PUT_OK, err, len))
            return -1;
        digest_hex(h->d, sum);
        theirs = json_string_value(json_object_get(h->answer, "checksum"));
        if (!theirs || !digest_hex_equal(theirs, sum))
            return fail(err, len, "put %s -> %s: the server confirmed a different checksum",
                        h->j->xo->src, h->path);
        return 1;
    }
    if (r == 0 && h->state != P_DATA) {
        json_decref(h->answer);
        h->answer = NULL;
    }
    return r;
}

static void put_end(void *state, int ok)
{
    struct put_host *h = state;

    (void)ok;   /* ferryd removes the temporary of a put cut off */
    if (!h)
        return;
    json_decref(h->answer);
    digest_free(h->d);
    free(h->path);
    free(h);
}

int fleet_put(const struct hostlist *hosts, struct fleet_opts *fo,
              const struct fleet_xfer_opts *xo)
{
    struct put_job *j = calloc(1, sizeof *j);
    struct fleet_job job = { .start = put_start, .frame = put_frame, .advance = put_advance,
                             .end = put_end, .arg = j, .why = "transfer failed" };
    mode_t mask;
    int status = FERRY_EXIT_ERROR;

    if (!j) {
        cli_error("out of memory");
        return status;
    }
    j->xo = xo;
    j->fd = open(xo->src, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (j->fd < 0 || fstat(j->fd, &j->st) < 0) {
        cli_error("put %s: %s", xo->src, strerror(errno));
        goto out;
    }
    if (!S_ISREG(j->st.st_mode)) {
        cli_error("put %s: %s", xo->src, S_ISDIR(j->st.st_mode)
                  ? "is a directory (-r is not supported with -w)" : "not a regular file");
        goto out;
    }
    posix_fadvise(j->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    /* As cp, and as one host's put: the source's bits less our umask
     * unless -p. */
    mask = umask(0);
    umask(mask);
    j->mode = j->st.st_mode & 0777;
    if (!xo->preserve)
        j->mode &= ~(unsigned)mask;
    j->dest = remotefs_canon(xo->dest);
    j->base = transfer_own_name(xo->src);
    if (!j->dest || !j->base) {
        if (j->dest)
            cli_error("put %s: not a file name", xo->src);
        else
            cli_error("out of memory");
        goto out;
    }
    j->into_dir = transfer_ends_in_slash(xo->dest) || strcmp(j->dest, ".") == 0;
    fo->job = &job;
    status = fleet_run_job(hosts, fo);
    fo->job = NULL;
out:
    if (j->fd >= 0)
        close(j->fd);
    free(j->dest);
    free(j->base);
    free(j);
    return status;
}
