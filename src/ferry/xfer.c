/*
 * xfer.c - put and get, files and trees (xfer.h).
 *
 * The data path: put reads the file in XFER_BUF_SIZE pieces, hashes each
 * and writes it to the socket (a data frame header per 16 MiB, written by
 * hand); get splices frame bodies from the socket into the temporary
 * (socket -> pipe -> page cache, files_splice_body) and hashes them back
 * from the temporary, or, where splice cannot be used (TLS), reads them
 * into the same buffer, writes them and hashes them.  Every byte is hashed
 * exactly as it was sent or stored, so the checksum vouches for the bytes
 * themselves, and no JSON is touched per chunk.
 */
#include "xfer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "ferry/ferry.h"
#include "files.h"
#include "progress.h"
#include "proto.h"

/* Large enough that syscalls are not the cost; small enough to stay in
 * cache while it is hashed. */
#define XFER_BUF_SIZE (1024 * 1024)
/* A download collects at least this much before writing it out. */
#define XFER_MIN_WRITE (256 * 1024)
/* Data frames at least this large are spliced into the file (files.h). */
#define XFER_SPLICE_MIN (64 * 1024)

int xfer_init(struct xfer *x, struct session **sp, const char *host,
              const struct session_opts *so, const struct xfer_opts *o)
{
    *x = (struct xfer){ .sp = sp, .host = host, .so = so, .o = *o };
    x->umask = umask(0);
    umask(x->umask);
    x->d = digest_new(o->alg);
    x->buf = malloc(XFER_BUF_SIZE);
    x->buf_len = XFER_BUF_SIZE;
    files_splice_init(&x->splice);
    if (!x->d || !x->buf) {
        xfer_free(x);
        cli_error("out of memory");
        return -ENOMEM;
    }
    return 0;
}

void xfer_free(struct xfer *x)
{
    digest_free(x->d);
    free(x->buf);
    files_splice_reset(&x->splice);
    x->d = NULL;
    x->buf = NULL;
}

static void report(struct xfer *x, const char *op, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* One line for a file that failed: "ferry: put a.txt: reason". */
static void report(struct xfer *x, const char *op, const char *name, const char *fmt, ...)
{
    char msg[768];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cli_error("%s %s: %s", op, name, msg);
    x->failed = 1;
}

static void report_err(struct xfer *x, const char *op, const char *name,
                       const struct fs_error *err)
{
    report(x, op, name, "%s", files_error_text(err));
}

/* A usable session, reopened if the last one broke.  0, or -1 when none
 * can be had (already printed; the whole command stops). */
static int need_session(struct xfer *x)
{
    if (*x->sp && !(*x->sp)->broken)
        return 0;
    session_close(*x->sp);
    *x->sp = NULL;
    if (files_interrupted || x->fatal)
        return -1;
    *x->sp = session_open(x->host, x->so);
    if (!*x->sp) {
        x->fatal = 1;
        return -1;
    }
    return 0;
}

static int stopped(const struct xfer *x)
{
    return x->fatal || files_interrupted;
}

/* An integer member in [lo, hi], or -1 in *ok. */
static int64_t int_member(const json_t *h, const char *name, int64_t lo, int64_t hi, int *ok)
{
    const json_t *v = json_object_get(h, name);

    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        *ok = 0;
        return 0;
    }
    return (int64_t)json_integer_value(v);
}

/* ---- put ------------------------------------------------------------------- */

/* The put request for a file of this stat. */
static json_t *put_request(const struct xfer *x, const char *remote, const struct stat *st)
{
    /* Without -p, as cp: the source's permission bits less our umask.
     * Set-id bits never travel (the server would drop them anyway). */
    unsigned mode = st->st_mode & 0777;
    json_t *req;

    if (!x->o.preserve)
        mode &= ~(unsigned)x->umask;
    req = json_pack("{s:s, s:s, s:I, s:i, s:s, s:b, s:b}", "type", MSG_PUT, "path", remote,
                    "filesize", (json_int_t)st->st_size, "mode", (int)mode,
                    "checksum", digest_name(x->o.alg), "resume", x->o.resume,
                    "fsync", x->o.fsync);
    if (req && x->o.preserve &&
        (json_object_set_new(req, "mtime", json_integer((json_int_t)st->st_mtim.tv_sec)) < 0 ||
         json_object_set_new(req, "mtime_nsec", json_integer(st->st_mtim.tv_nsec)) < 0)) {
        json_decref(req);
        req = NULL;
    }
    return req;
}

/* After put-ready: where to start.  With a resumable temporary of K bytes
 * on the server, our own first K bytes must hash the same, or we start
 * over (the server then does too).  The digest holds the bytes before the
 * returned offset. */
static uint64_t resume_point(struct xfer *x, int fd, uint64_t size, uint64_t k,
                             const char *prefix)
{
    char mine[DIGEST_HEX_MAX];

    digest_reset(x->d);
    if (k == 0 || k > size || !prefix)
        return 0;
    if (digest_file(x->d, fd, k) == 0) {
        digest_hex(x->d, mine);
        if (digest_hex_equal(mine, prefix))
            return k;
    }
    ferry_log_debug("the server's %llu bytes differ from ours: starting over",
                    (unsigned long long)k);
    digest_reset(x->d);
    return 0;
}

/* Look for an answer that came in while we were sending: only an error
 * may.  0: none yet; FERRY_EREMOTE: the put failed (err filled); other
 * negatives: the connection is gone. */
static int check_incoming(struct session *s, struct fs_error *err)
{
    const char *type;
    json_t *h = NULL;
    uint64_t body;
    int r = files_poll_header(s, &h, &type, &body, err);

    if (r == 1) {
        r = files_lost(s, err, "protocol error: %s: unexpected '%s' during an upload", s->peer,
                       type);
        json_decref(h);
    }
    return r;
}

/* Send the file's bytes from `off` to `size` as data frames.  0 when all
 * went; otherwise the put is over (err says why, or the connection is). */
static int send_data(struct xfer *x, struct session *s, int fd, uint64_t off, uint64_t size,
                     struct progress *bar, struct fs_error *err)
{
    int incoming = 0, r;

    while (off < size) {
        uint64_t seg = size - off < PROTO_DATA_SEGMENT ? size - off : PROTO_DATA_SEGMENT;

        r = files_send_data_header(s, off, seg, err);
        if (r < 0)
            return r;
        while (seg > 0) {
            ssize_t n = read(fd, x->buf, seg < x->buf_len ? (size_t)seg : x->buf_len);

            if (n < 0 && errno == EINTR && !files_interrupted)
                continue;
            if (n <= 0) {
                /* The frame promised seg more bytes and we cannot give
                 * them: only closing the connection ends it. */
                if (n < 0 && errno == EINTR)
                    return -EINTR;
                return files_lost(s, err, "%s", n == 0 ? "file changed while being sent" :
                                  strerror(errno));
            }
            digest_update(x->d, x->buf, (size_t)n);
            r = files_send_body(s, x->buf, (size_t)n, &incoming, err);
            if (r < 0)
                return r;
            seg -= (uint64_t)n;
            off += (uint64_t)n;
            progress_update(bar, off);
        }
        /* Between frames, see whether the server has refused already
         * (disk full...): then it is pointless to send the rest. */
        r = check_incoming(s, err);
        if (r < 0)
            return r;
    }
    return 0;
}

/* After a failed send: an error the server sent before hanging up says
 * more than "connection reset". */
static void prefer_server_error(struct session *s, struct fs_error *err)
{
    struct fs_error e2;

    if (check_incoming(s, &e2) == FERRY_EREMOTE)
        *err = e2;
}

/* Upload one regular file: opened at (dirfd, name), shown as `display`,
 * stored as `remote`.  Failures are reported. */
static void put_file(struct xfer *x, int dirfd, const char *name, int nofollow,
                     const char *display, const char *remote)
{
    char sum[DIGEST_HEX_MAX];
    struct progress *bar = NULL;
    struct fs_error err = { 0 };
    struct session *s;
    struct stat st;
    json_t *h = NULL;
    const char *type;
    uint64_t body, k, off;
    int fd, ok = 1, r;

    /* O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then
     * tells us what it is before a byte is read. */
    fd = openat(dirfd, name, O_RDONLY | O_NONBLOCK | O_CLOEXEC | (nofollow ? O_NOFOLLOW : 0));
    if (fd < 0) {
        report(x, "put", display, "%s", strerror(errno));
        return;
    }
    if (fstat(fd, &st) < 0) {
        report(x, "put", display, "%s", strerror(errno));
        goto out;
    }
    if (S_ISDIR(st.st_mode)) {
        report(x, "put", display, "is a directory (use -r)");
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        report(x, "put", display, "not a regular file");
        goto out;
    }
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    h = put_request(x, remote, &st);
    if (!h) {
        report(x, "put", display, "the name is not valid UTF-8");
        goto out;
    }
    if (need_session(x) < 0)
        goto out;
    s = *x->sp;
    r = files_send(s, h, &err);
    h = NULL;
    if (r == 0)
        r = files_recv(s, &h, &type, &body, &err);
    if (r == 0 && (strcmp(type, MSG_PUT_READY) != 0 || body != 0))
        r = files_lost(s, &err, "protocol error: %s: '%s' instead of put-ready", s->peer, type);
    if (r < 0)
        goto failed;
    k = (uint64_t)int_member(h, "offset", 0, INT64_MAX, &ok);
    if (!ok || (k > 0 && !x->o.resume)) {
        r = files_lost(s, &err, "protocol error: %s: bad put-ready offset", s->peer);
        goto failed;
    }
    off = resume_point(x, fd, (uint64_t)st.st_size, k,
                       json_string_value(json_object_get(h, "prefix")));
    if (off > 0)
        ferry_log_debug("put %s: resuming at %llu", display, (unsigned long long)off);
    if (lseek(fd, (off_t)off, SEEK_SET) < 0) {
        r = files_lost(s, &err, "%s", strerror(errno));
        goto failed;
    }
    bar = progress_start(display, (uint64_t)st.st_size, off);
    r = send_data(x, s, fd, off, (uint64_t)st.st_size, bar, &err);
    if (r == FERRY_EREMOTE) {
        /* The error was the put's answer; the server expects this
         * put-end and answers nothing to it. */
        struct fs_error ignored;

        files_send(s, json_pack("{s:s, s:b}", "type", MSG_PUT_END, "abort", 1), &ignored);
        goto failed;
    }
    if (r < 0)
        goto failed;
    digest_hex(x->d, sum);
    json_decref(h);
    h = NULL;
    r = files_send(s, json_pack("{s:s, s:s}", "type", MSG_PUT_END, "checksum", sum), &err);
    if (r == 0)
        r = files_recv(s, &h, &type, &body, &err);
    if (r == 0 && (strcmp(type, MSG_PUT_OK) != 0 || body != 0))
        r = files_lost(s, &err, "protocol error: %s: '%s' instead of put-ok", s->peer, type);
    if (r < 0)
        goto failed;
    if (!json_is_string(json_object_get(h, "checksum")) ||
        !digest_hex_equal(json_string_value(json_object_get(h, "checksum")), sum)) {
        report(x, "put", display, "the server confirmed a different checksum");
        goto out;
    }
    goto out;
failed:
    progress_end(bar);
    bar = NULL;
    if (r == -EINTR) {
        /* Mid-frame: only a hang-up stops it; the server discards the
         * temporary (or keeps it for --resume). */
        (*x->sp)->broken = 1;
    } else {
        if (r == FERRY_ELOST)
            prefer_server_error(*x->sp, &err);
        report_err(x, "put", display, &err);
    }
out:
    progress_end(bar);
    json_decref(h);
    close(fd);
}

/* Upload the tree at (dirfd, name) as remote directory `remote`.  Inside
 * it symlinks and special files are skipped with a warning, as rsync
 * does without -l. */
static void put_tree(struct xfer *x, int dirfd, const char *name, int nofollow,
                     const char *display, const char *remote)
{
    struct fs_error err = { 0 };
    struct dirent *e;
    DIR *dir = NULL;
    int fd, r;

    fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | (nofollow ? O_NOFOLLOW : 0));
    if (fd < 0) {
        report(x, "put", display, "%s", strerror(errno));
        return;
    }
    dir = fdopendir(fd);
    if (!dir) {
        report(x, "put", display, "%s", strerror(errno));
        close(fd);
        return;
    }
    if (need_session(x) < 0)
        goto out;
    /* "parents": an existing directory is fine, as cp -r into one. */
    r = files_mkdir(*x->sp, remote, 1, &err);
    if (r < 0) {
        report_err(x, "put", display, &err);
        goto out;
    }
    while (!stopped(x)) {
        char *child_display = NULL, *child_remote = NULL;
        struct stat st;

        errno = 0;
        e = readdir(dir);
        if (!e) {
            if (errno)
                report(x, "put", display, "%s", strerror(errno));
            break;
        }
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (asprintf(&child_display, "%s%s%s", display,
                     display[strlen(display) - 1] == '/' ? "" : "/", e->d_name) < 0) {
            report(x, "put", display, "out of memory");
            break;
        }
        child_remote = files_join(remote, e->d_name);
        if (!child_remote) {
            report(x, "put", child_display, "out of memory");
        } else if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            report(x, "put", child_display, "%s", strerror(errno));
        } else if (S_ISDIR(st.st_mode)) {
            put_tree(x, fd, e->d_name, 1, child_display, child_remote);
        } else if (S_ISREG(st.st_mode)) {
            put_file(x, fd, e->d_name, 1, child_display, child_remote);
        } else {
            cli_error("skipping %s %s (not a regular file or directory)",
                      S_ISLNK(st.st_mode) ? "symlink" : "special file", child_display);
        }
        free(child_display);
        free(child_remote);
    }
out:
    closedir(dir);
}

/* Does `path` name a directory on the server?  1, 0 (no such thing or not
 * a directory), or -1 with err filled (another failure). */
static int remote_is_dir(struct xfer *x, const char *path, struct fs_error *err)
{
    struct fs_meta m;
    int r;

    if (need_session(x) < 0)
        return -1;
    r = files_stat(*x->sp, path, &m, NULL, err);
    if (r == 0)
        return strcmp(m.kind, "dir") == 0;
    if (r == FERRY_EREMOTE && strcmp(err->code, ERR_FS) == 0 &&
        (strcmp(err->errname, "ENOENT") == 0 || strcmp(err->errname, "ENOTDIR") == 0))
        return 0;
    return -1;
}

static int ends_in_slash(const char *p)
{
    size_t n = strlen(p);

    return n > 0 && p[n - 1] == '/';
}

/* A source's own name for use under a target directory; NULL when the
 * source is ".", ".." or "/", whose contents go into the target itself. */
static char *own_name(const char *path)
{
    char *b = files_basename(path);

    if (b && (strcmp(b, ".") == 0 || strcmp(b, "..") == 0 || strcmp(b, "/") == 0)) {
        free(b);
        return NULL;
    }
    return b;
}

static int final_status(const struct xfer *x)
{
    if (files_interrupted)
        return 128 + files_interrupted;
    if (x->fatal)
        return FERRY_EXIT_ERROR;
    return x->failed ? 1 : 0;
}

int xfer_put(struct xfer *x, char *const *locals, int n, const char *remote_arg)
{
    struct fs_error err = { 0 };
    struct sigaction old[3];
    char *remote = files_canon(remote_arg);
    int into_dir, r;

    if (!remote) {
        cli_error("out of memory");
        return FERRY_EXIT_ERROR;
    }
    files_interrupted = 0;
    r = files_signals_install(old);
    if (r < 0) {
        cli_error("cannot install signal handlers: %s", strerror(-r));
        free(remote);
        return FERRY_EXIT_ERROR;
    }
    into_dir = ends_in_slash(remote_arg) || strcmp(remote, ".") == 0;
    if (!into_dir) {
        r = remote_is_dir(x, remote, &err);
        if (r < 0 && !x->fatal && n > 1)
            report_err(x, "put", remote_arg, &err);
        into_dir = r > 0;
    }
    if (n > 1 && !into_dir && !stopped(x) && !x->failed) {
        cli_error("put: target '%s' is not a directory", remote_arg);
        x->failed = 1;
    }
    for (int i = 0; i < n && !stopped(x) && (n == 1 || into_dir); i++) {
        char *base = own_name(locals[i]), *target;
        struct stat st;

        target = into_dir && base ? files_join(remote, base) : strdup(remote);
        if (!target) {
            report(x, "put", locals[i], "out of memory");
        } else if (stat(locals[i], &st) < 0) {
            report(x, "put", locals[i], "%s", strerror(errno));
        } else if (S_ISDIR(st.st_mode)) {
            if (x->o.recursive)
                put_tree(x, AT_FDCWD, locals[i], 0, locals[i], target);
            else
                report(x, "put", locals[i], "is a directory (use -r)");
        } else {
            put_file(x, AT_FDCWD, locals[i], 0, locals[i], target);
        }
        free(base);
        free(target);
    }
    files_signals_restore(old);
    free(remote);
    return final_status(x);
}

/* ---- get ------------------------------------------------------------------- */

/* Hash the temporary's bytes [from, to) as they are stored: the spliced
 * bytes were never in our memory.  They are still in the page cache, so
 * this is a copy, not a disk read.  0, or -errno (-EIO: the file is
 * shorter than what we wrote into it). */
static int hash_stored(struct xfer *x, int fd, uint64_t from, uint64_t to)
{
    while (from < to) {
        size_t want = to - from < x->buf_len ? (size_t)(to - from) : x->buf_len;
        ssize_t n = pread(fd, x->buf, want, (off_t)from);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO;
        digest_update(x->d, x->buf, (size_t)n);
        from += (uint64_t)n;
    }
    return 0;
}

/*
 * One data frame's body (*body bytes) into fd at *off by splice, hashed
 * back from the file every XFER_BUF_SIZE bytes and at the end, so the
 * digest always covers [start, *off) in order.  *off and *body advance by
 * what was moved; when splicing is not possible here (0 returned with
 * *body left) the caller reads the rest.  0 or a negative code.
 *
 * The client's CPU stays about the same (the copy out of the socket
 * becomes the pread of the hash), but over loopback ferryd, whose sendfile
 * runs the receive path, needs a fifth less: a 1 GiB download went from
 * 1.9 to 2.3 GB/s (docs/BENCHMARKS.md).
 */
static int splice_frame(struct xfer *x, struct session *s, int fd, uint64_t *off,
                        uint64_t *body, struct progress *bar, int *local_err,
                        struct fs_error *err)
{
    uint64_t hashed = *off;
    int r = 0;

    while (*body > 0) {
        ssize_t n = files_splice_body(s, &x->splice, fd, *off,
                                      *body < SIZE_MAX ? (size_t)*body : SIZE_MAX, local_err, err);

        if (n < 0) {
            files_splice_reset(&x->splice);
            return (int)n;
        }
        if (n == 0)
            break;
        *off += (uint64_t)n;
        *body -= (uint64_t)n;
        if (*off - hashed >= x->buf_len) {
            r = hash_stored(x, fd, hashed, *off);
            if (r < 0)
                break;
            hashed = *off;
        }
        progress_update(bar, *off);
    }
    if (r == 0)
        r = hash_stored(x, fd, hashed, *off);
    if (r < 0) {
        *local_err = r;
        return files_lost(s, err, "%s", strerror(-r));
    }
    return 0;
}

/* Receive data frames into fd, from offset `off` on, until get-end.  0
 * when the whole file is there and its checksum matches; *local_err is
 * set (-errno) when our own side failed. */
static int receive_data(struct xfer *x, struct session *s, int fd, uint64_t off,
                        uint64_t size, struct progress *bar, int *local_err,
                        struct fs_error *err)
{
    char sum[DIGEST_HEX_MAX];
    const char *type;
    uint64_t body;
    json_t *h = NULL;
    int ok = 1, r;

    for (;;) {
        r = files_recv(s, &h, &type, &body, err);
        if (r < 0)
            return r;
        if (strcmp(type, MSG_GET_END) == 0)
            break;
        if (strcmp(type, MSG_DATA) != 0 ||
            (uint64_t)int_member(h, "offset", 0, INT64_MAX, &ok) != off || !ok ||
            body > size - off) {
            r = files_lost(s, err, "protocol error: %s: bad '%s' during a download", s->peer, type);
            json_decref(h);
            return r;
        }
        json_decref(h);
        h = NULL;
        if (body >= XFER_SPLICE_MIN) {
            r = splice_frame(x, s, fd, &off, &body, bar, local_err, err);
            if (r < 0)
                return r;
        }
        while (body > 0) {
            size_t have = 0;
            uint64_t want = body < x->buf_len ? body : x->buf_len;

            /* Collect a good amount before writing: fewer, larger writes. */
            while (have < want && (have < XFER_MIN_WRITE || have == 0)) {
                ssize_t n = files_read_body(s, x->buf + have, (size_t)want - have, err);

                if (n < 0)
                    return (int)n;
                have += (size_t)n;
            }
            r = files_pwrite_all(fd, x->buf, have, off);
            if (r < 0) {
                /* The server is still sending: only a hang-up stops it. */
                *local_err = r;
                if (r == -EINTR)
                    return -EINTR;
                return files_lost(s, err, "%s", strerror(-r));
            }
            digest_update(x->d, x->buf, have);
            body -= have;
            off += have;
            progress_update(bar, off);
        }
    }
    r = 0;
    digest_hex(x->d, sum);
    if (off != size) {
        r = files_lost(s, err, "protocol error: %s: get-end before the whole file", s->peer);
    } else if (!json_is_string(json_object_get(h, "checksum")) ||
               !digest_hex_equal(json_string_value(json_object_get(h, "checksum")), sum)) {
        snprintf(err->code, sizeof err->code, "%s", ERR_CHECKSUM);
        err->errname[0] = '\0';
        snprintf(err->message, sizeof err->message, "checksum mismatch: the file was not saved");
        r = FERRY_EREMOTE;
    }
    json_decref(h);
    return r;
}

/* Mode, mtime, fsync, then the rename that commits the download. */
static int commit(struct xfer *x, int fd, const json_t *ready, const char *tmp,
                  const char *target, const char *dir)
{
    int ok = 1;
    unsigned mode = (unsigned)int_member(ready, "mode", 0, 07777, &ok) & 0777;
    int64_t mtime = int_member(ready, "mtime", INT64_MIN, INT64_MAX, &ok);
    int64_t nsec = json_object_get(ready, "mtime_nsec") ?
                   int_member(ready, "mtime_nsec", 0, 999999999, &ok) : 0;

    (void)ok;   /* every member was checked at get-ready */
    if (!x->o.preserve)
        mode &= ~(unsigned)x->umask;
    if (fchmod(fd, mode) < 0)
        return -errno;
    if (x->o.preserve) {
        struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT },
                                  { .tv_sec = (time_t)mtime, .tv_nsec = (long)nsec } };

        if (futimens(fd, ts) < 0)
            return -errno;
    }
    if (x->o.fsync && fsync(fd) < 0)
        return -errno;
    if (rename(tmp, target) < 0)
        return -errno;
    if (x->o.fsync) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        /* The rename is done; a directory that cannot be synced is
         * worth a word but does not undo it. */
        if (dfd < 0 || fsync(dfd) < 0)
            cli_error("warning: cannot sync directory %s: %s", dir, strerror(errno));
        if (dfd >= 0)
            close(dfd);
    }
    return 0;
}

/* Cut the temporary to `off` bytes, unless it is that long already.  On
 * ext4 any truncate to 0, even of an empty file, arms "auto_da_alloc":
 * close() then starts writing the whole file out, allocating every block,
 * before it returns (about 0.35 s for 1 GiB here, a third of the
 * download's wall time).  A freshly created temporary is empty and needs
 * no truncate.  0 or -1 (errno set). */
static int truncate_to(int fd, uint64_t off)
{
    struct stat st;

    if (fstat(fd, &st) < 0)
        return -1;
    if ((uint64_t)st.st_size == off)
        return 0;
    return ftruncate(fd, (off_t)off);
}

/* Download remote file `remote` (shown as `display`) to local `target`,
 * through .NAME.ferry-part beside it.  Failures are reported. */
static void get_file(struct xfer *x, const char *remote, const char *display,
                     const char *target)
{
    char prefix[DIGEST_HEX_MAX] = "";
    char *dir = NULL, *base = NULL, *tmp = NULL;
    struct progress *bar = NULL;
    struct fs_error err = { 0 };
    struct session *s;
    const char *type;
    json_t *req = NULL, *h = NULL;
    uint64_t body, size, k = 0, off;
    int fd = -1, keep_tmp = x->o.resume, made_tmp = 0, local_err = 0, ok = 1, r;

    base = files_basename(target);
    {
        const char *slash = strrchr(target, '/');

        dir = slash ? strndup(target, slash == target ? 1 : (size_t)(slash - target))
                    : strdup(".");
    }
    if (!base || !dir || asprintf(&tmp, "%s/.%s%s", dir, base, PROTO_PART_SUFFIX) < 0) {
        tmp = NULL;
        report(x, "get", display, "out of memory");
        goto out;
    }
    digest_reset(x->d);
    if (x->o.resume) {
        /* What an earlier, interrupted download left: its size is where
         * we ask to go on, and its checksum proves it to the server. */
        struct stat st;

        fd = open(tmp, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))) {
            report(x, "get", display, "%s is not a regular file", tmp);
            keep_tmp = 1;
            goto out;
        }
        if (fd >= 0 && st.st_size > 0) {
            if (digest_file(x->d, fd, (uint64_t)st.st_size) == 0) {
                k = (uint64_t)st.st_size;
                digest_hex(x->d, prefix);
            } else {
                digest_reset(x->d);
            }
        }
    }
    req = json_pack("{s:s, s:s, s:s}", "type", MSG_GET, "path", remote, "checksum",
                    digest_name(x->o.alg));
    if (req && k > 0 &&
        (json_object_set_new(req, "offset", json_integer((json_int_t)k)) < 0 ||
         json_object_set_new(req, "prefix", json_string(prefix)) < 0)) {
        json_decref(req);
        req = NULL;
    }
    if (!req) {
        report(x, "get", display, "the name is not valid UTF-8");
        goto out;
    }
    if (need_session(x) < 0)
        goto out;
    s = *x->sp;
    r = files_send(s, req, &err);
    req = NULL;
    if (r == 0)
        r = files_recv(s, &h, &type, &body, &err);
    if (r == 0 && (strcmp(type, MSG_GET_READY) != 0 || body != 0))
        r = files_lost(s, &err, "protocol error: %s: '%s' instead of get-ready", s->peer, type);
    if (r < 0)
        goto failed;
    size = (uint64_t)int_member(h, "filesize", 0, INT64_MAX, &ok);
    off = (uint64_t)int_member(h, "offset", 0, INT64_MAX, &ok);
    int_member(h, "mode", 0, 07777, &ok);
    int_member(h, "mtime", INT64_MIN, INT64_MAX, &ok);
    if (!ok || (off != 0 && off != k) || off > size) {
        r = files_lost(s, &err, "protocol error: %s: bad get-ready", s->peer);
        goto failed;
    }
    if (fd < 0) {
        fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) {
            local_err = -errno;
            files_lost(s, &err, "%s", strerror(errno));   /* the data is on its way */
            report(x, "get", display, "%s: %s", tmp, strerror(-local_err));
            keep_tmp = 1;   /* not ours */
            goto out;
        }
    }
    made_tmp = 1;
    if (off == 0 && k > 0) {
        ferry_log_debug("get %s: the server's first %llu bytes differ: starting over", display,
                        (unsigned long long)k);
        digest_reset(x->d);
    }
    /* Nothing past where the server goes on belongs to the download (a
     * temporary we could not hash is started afresh too). */
    if (truncate_to(fd, off) < 0) {
        r = files_lost(s, &err, "%s", strerror(errno));
        goto failed;
    }
    /* Reserve the blocks at once (best effort; the size stays, so an
     * interrupted download still shows what arrived): ext4 then skips its
     * per-page delayed-allocation bookkeeping, 12% of the client's CPU on
     * a 1 GiB download.  A --resume temporary keeps the reservation until
     * it completes or is removed. */
    if (size > off)
        (void)fallocate(fd, FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)(size - off));
    if (off > 0)
        ferry_log_debug("get %s: resuming at %llu", display, (unsigned long long)off);
    bar = progress_start(display, size, off);
    r = receive_data(x, s, fd, off, size, bar, &local_err, &err);
    if (r == FERRY_EREMOTE && strcmp(err.code, ERR_CHECKSUM) == 0)
        keep_tmp = 0;   /* the bytes are wrong: nothing to resume from */
    if (r < 0)
        goto failed;
    progress_end(bar);
    bar = NULL;
    r = commit(x, fd, h, tmp, target, dir);
    if (r < 0) {
        report(x, "get", display, "%s", strerror(-r));
        keep_tmp = 0;
        goto out;
    }
    made_tmp = 0;   /* it is the target now */
    goto out;
failed:
    progress_end(bar);
    bar = NULL;
    if (r == -EINTR)
        (*x->sp)->broken = 1;   /* mid-stream: only a hang-up stops the server */
    else if (!x->o.recursive && strcmp(err.errname, "EISDIR") == 0)
        report(x, "get", display, "%s (use -r)", files_error_text(&err));
    else
        report_err(x, "get", display, &err);
out:
    progress_end(bar);
    if (fd >= 0)
        close(fd);
    if (made_tmp && !keep_tmp && tmp)
        unlink(tmp);
    json_decref(req);
    json_decref(h);
    free(tmp);
    free(dir);
    free(base);
}

/* A local directory for get -r: made if missing. */
static int make_local_dir(const char *path)
{
    struct stat st;

    if (mkdir(path, 0777) == 0)
        return 0;
    if (errno == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return 0;
    return -errno;
}

static void get_tree(struct xfer *x, const char *remote, const char *display,
                     const char *target, int depth)
{
    struct fs_error err = { 0 };
    json_t *entries = NULL, *e;
    size_t i;
    int r;

    if (depth > FILES_TREE_DEPTH) {
        report(x, "get", display, "more than %d directory levels: not descending", FILES_TREE_DEPTH);
        return;
    }
    r = make_local_dir(target);
    if (r < 0) {
        report(x, "get", display, "%s: %s", target, strerror(-r));
        return;
    }
    if (need_session(x) < 0)
        return;
    r = files_list(*x->sp, remote, &entries, &err);
    if (r < 0) {
        report_err(x, "get", display, &err);
        return;
    }
    json_array_foreach(entries, i, e) {
        const char *name = json_string_value(json_object_get(e, "name"));
        const char *kind = json_string_value(json_object_get(e, "kind"));
        char *child_remote = files_join(remote, name), *child_display = NULL;
        char *child_target = NULL;

        if (stopped(x)) {
            free(child_remote);
            break;
        }
        if (!child_remote || asprintf(&child_display, "%s/%s", display, name) < 0 ||
            asprintf(&child_target, "%s/%s", target, name) < 0) {
            child_display = child_target = NULL;
            report(x, "get", display, "out of memory");
        } else if (strcmp(kind, "dir") == 0) {
            get_tree(x, child_remote, child_display, child_target, depth + 1);
        } else if (strcmp(kind, "file") == 0) {
            get_file(x, child_remote, child_display, child_target);
        } else {
            cli_error("skipping %s %s (not a regular file or directory)",
                      strcmp(kind, "link") == 0 ? "symlink" : kind, child_display);
        }
        free(child_remote);
        free(child_display);
        free(child_target);
    }
    json_decref(entries);
}

int xfer_get(struct xfer *x, char *const *remotes, int n, const char *local)
{
    struct sigaction old[3];
    struct stat st;
    int into_dir, r;

    files_interrupted = 0;
    r = files_signals_install(old);
    if (r < 0) {
        cli_error("cannot install signal handlers: %s", strerror(-r));
        return FERRY_EXIT_ERROR;
    }
    into_dir = ends_in_slash(local) || (stat(local, &st) == 0 && S_ISDIR(st.st_mode));
    if (n > 1 && !into_dir) {
        cli_error("get: target '%s' is not a directory", local);
        x->failed = 1;
    }
    for (int i = 0; i < n && !stopped(x) && (n == 1 || into_dir); i++) {
        struct fs_error err = { 0 };
        char *remote = files_canon(remotes[i]), *base = NULL, *target = NULL;
        int is_dir = 0;

        if (!remote) {
            report(x, "get", remotes[i], "out of memory");
            continue;
        }
        if (x->o.recursive) {
            struct fs_meta m;

            if (need_session(x) < 0) {
                free(remote);
                break;
            }
            r = files_stat(*x->sp, remote, &m, NULL, &err);
            if (r < 0) {
                report_err(x, "get", remotes[i], &err);
                free(remote);
                continue;
            }
            is_dir = strcmp(m.kind, "dir") == 0;
        }
        base = own_name(remote);
        if (into_dir && base)
            r = asprintf(&target, "%s%s%s", local, ends_in_slash(local) ? "" : "/", base);
        else
            r = (target = strdup(local)) ? 0 : -1;
        if (r < 0) {
            target = NULL;
            report(x, "get", remotes[i], "out of memory");
        } else if (is_dir) {
            get_tree(x, remote, remotes[i], target, 0);
        } else if (!base) {
            report(x, "get", remotes[i], "is a directory (use -r)");
        } else {
            get_file(x, remote, remotes[i], target);
        }
        free(remote);
        free(base);
        free(target);
    }
    files_signals_restore(old);
    return final_status(x);
}
