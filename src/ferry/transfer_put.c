/*
 * transfer_put.c - uploads, files and trees (transfer.h).
 *
 * The data path: the file is read in TRANSFER_BUF_SIZE pieces, each is
 * hashed and written to the transport (a data frame header per 16 MiB).
 * Every byte is hashed exactly as it was sent, so the checksum vouches for
 * the bytes themselves, and no JSON is touched per chunk.
 */
#include "transfer.h"

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
#include "progress.h"
#include "proto.h"
#include "remotefs.h"
#include "signals.h"

/* ---- put ------------------------------------------------------------------- */

/* The put request for a file of this stat. */
static json_t *put_request(const struct transfer *x, const char *remote, const struct stat *st)
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
static uint64_t resume_point(struct transfer *x, int fd, uint64_t size, uint64_t k,
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

/* n bytes of fd from *off, already hashed, sent by copy (after
 * session_send_file stopped short). */
static int send_hashed_by_copy(struct transfer *x, struct client_session *s, int fd, uint64_t *off,
                               uint64_t n, struct fs_error *err)
{
    while (n > 0) {
        ssize_t got = pread(fd, x->buf, n < x->buf_len ? (size_t)n : x->buf_len, (off_t)*off);
        int r;

        if (got < 0 && errno == EINTR && !signals_interrupted)
            continue;
        if (got <= 0)
            return got < 0 && errno == EINTR ? -EINTR
                   : session_lost(s, err, "%s", got == 0 ? "file changed while being sent" : strerror(errno));
        r = session_send_body(s, x->buf, (size_t)got, err);
        if (r < 0)
            return r;
        *off += (uint64_t)got;
        n -= (uint64_t)got;
    }
    return 0;
}

/* Send the file's bytes from `off` to `size` as data frames.  0 when all
 * went; otherwise the put is over (err says why, or the connection is). */
static int send_data(struct transfer *x, struct client_session *s, int fd, uint64_t off, uint64_t size,
                     struct progress *bar, struct fs_error *err)
{
    int r;

    while (off < size) {
        uint64_t seg = size - off < PROTO_DATA_SEGMENT ? size - off : PROTO_DATA_SEGMENT;

        r = session_send_data_header(s, off, seg, err);
        if (r < 0)
            return r;
        while (seg > 0 && !s->tls && !s->hdr) {
            /* Plaintext: hash a slice from the page cache, then let the
             * kernel send those same pages (no copy through here).  Should
             * the file change in between, the server's checksum of what it
             * got no longer matches ours and the put fails: integrity holds. */
            uint64_t hashed = off, want = seg < x->buf_len ? seg : x->buf_len;
            ssize_t n;

            r = digest_file_slice(x->d, fd, &hashed, off + want, want);
            if (r < 0)
                return session_lost(s, err, "%s", r == FERRY_ETRUNCATED ? "file changed while being sent"
                                                                      : strerror(-r));
            n = session_send_file(s, fd, &off, want, err);
            if (n < 0)
                return (int)n;
            seg -= (uint64_t)n;
            progress_update(bar, off);
            if ((uint64_t)n < want) {
                /* Hashed but not sent: the copying path below sends it,
                 * so it must not be hashed twice. */
                r = send_hashed_by_copy(x, s, fd, &off, want - (uint64_t)n, err);
                if (r < 0)
                    return r;
                seg -= want - (uint64_t)n;
                progress_update(bar, off);
            }
        }
        /* read() goes on from the descriptor's position; sendfile and
         * pread leave it where it was. */
        if (seg > 0 && lseek(fd, (off_t)off, SEEK_SET) < 0)
            return session_lost(s, err, "%s", strerror(errno));
        while (seg > 0) {
            ssize_t n = read(fd, x->buf, seg < x->buf_len ? (size_t)seg : x->buf_len);

            if (n < 0 && errno == EINTR && !signals_interrupted)
                continue;
            if (n <= 0) {
                /* The frame promised seg more bytes and we cannot give
                 * them: only closing the connection ends it. */
                if (n < 0 && errno == EINTR)
                    return -EINTR;
                return session_lost(s, err, "%s", n == 0 ? "file changed while being sent" :
                                  strerror(errno));
            }
            digest_update(x->d, x->buf, (size_t)n);
            r = session_send_body(s, x->buf, (size_t)n, err);
            if (r < 0)
                return r;
            seg -= (uint64_t)n;
            off += (uint64_t)n;
            progress_update(bar, off);
        }
        /* Between frames, see whether the server has refused already
         * (disk full...): then it is pointless to send the rest. */
        r = transfer_check_incoming(s, err);
        if (r < 0)
            return r;
    }
    return 0;
}

/* Upload one regular file: opened at (dirfd, name), shown as `display`,
 * stored as `remote`.  Failures are reported. */
static void put_file(struct transfer *x, int dirfd, const char *name, int nofollow,
                     const char *display, const char *remote)
{
    char sum[DIGEST_HEX_MAX];
    struct progress *bar = NULL;
    struct fs_error err = { 0 };
    struct client_session *s;
    struct stat st;
    json_t *h = NULL;
    const char *type;
    uint64_t body, k, off;
    int fd, ok = 1, r;

    /* O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then
     * tells us what it is before a byte is read. */
    fd = openat(dirfd, name, O_RDONLY | O_NONBLOCK | O_CLOEXEC | (nofollow ? O_NOFOLLOW : 0));
    if (fd < 0) {
        transfer_report(x, "put", display, "%s", strerror(errno));
        return;
    }
    if (fstat(fd, &st) < 0) {
        transfer_report(x, "put", display, "%s", strerror(errno));
        goto out;
    }
    if (S_ISDIR(st.st_mode)) {
        transfer_report(x, "put", display, "is a directory (use -r)");
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        transfer_report(x, "put", display, "not a regular file");
        goto out;
    }
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    h = put_request(x, remote, &st);
    if (!h) {
        transfer_report(x, "put", display, "the name is not valid UTF-8");
        goto out;
    }
    if (transfer_need_session(x) < 0)
        goto out;
    s = *x->sp;
    if (session_ask_put_acks(s, h) < 0) {
        json_decref(h);
        h = NULL;
    }
    r = session_send(s, h, &err);   /* NULL: "out of memory" */
    h = NULL;
    if (r == 0)
        r = session_recv(s, &h, &type, &body, &err);
    if (r == 0 && (strcmp(type, MSG_PUT_READY) != 0 || body != 0))
        r = session_lost(s, &err, "protocol error: %s: '%s' instead of put-ready", s->peer, type);
    if (r < 0)
        goto failed;
    k = (uint64_t)transfer_int_member(h, "offset", 0, INT64_MAX, &ok);
    if (!ok || (k > 0 && !x->o.resume)) {
        r = session_lost(s, &err, "protocol error: %s: bad put-ready offset", s->peer);
        goto failed;
    }
    off = resume_point(x, fd, (uint64_t)st.st_size, k,
                       json_string_value(json_object_get(h, "prefix")));
    if (off > 0)
        ferry_log_debug("put %s: resuming at %llu", display, (unsigned long long)off);
    if (lseek(fd, (off_t)off, SEEK_SET) < 0) {
        r = session_lost(s, &err, "%s", strerror(errno));
        goto failed;
    }
    bar = progress_start(display, (uint64_t)st.st_size, off);
    r = send_data(x, s, fd, off, (uint64_t)st.st_size, bar, &err);
    if (r == 0 && transfer_source_changed(fd, &st)) {
        /* Every byte went, but some may be from before a write and some
         * from after.  The put is cut off (the next file, if any, opens
         * another session): ferryd discards the temporary of a put cut
         * off, and the file there stays as it was.  (A put-end with abort
         * would want its answer read, unless an error had crossed it.) */
        s->broken = 1;
        progress_end(bar);
        bar = NULL;
        transfer_report(x, "put", display, "file changed while being sent (not stored)");
        goto out;
    }
    if (r == FERRY_EREMOTE) {
        /* The error was the put's answer; the server expects this
         * put-end and answers nothing to it. */
        struct fs_error ignored;

        session_send(s, json_pack("{s:s, s:b}", "type", MSG_PUT_END, "abort", 1), &ignored);
        goto failed;
    }
    if (r < 0)
        goto failed;
    digest_hex(x->d, sum);
    json_decref(h);
    h = NULL;
    r = session_send(s, json_pack("{s:s, s:s}", "type", MSG_PUT_END, "checksum", sum), &err);
    if (r == 0)
        r = session_recv(s, &h, &type, &body, &err);
    if (r == 0 && (strcmp(type, MSG_PUT_OK) != 0 || body != 0))
        r = session_lost(s, &err, "protocol error: %s: '%s' instead of put-ok", s->peer, type);
    if (r < 0)
        goto failed;
    if (!json_is_string(json_object_get(h, "checksum")) ||
        !digest_hex_equal(json_string_value(json_object_get(h, "checksum")), sum)) {
        transfer_report(x, "put", display, "the server confirmed a different checksum");
        goto out;
    }
    transfer_done(x, display, remote, (uint64_t)st.st_size);
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
            transfer_prefer_server_error(*x->sp, &err);
        transfer_report_remote(x, "put", display, remote, &err);
    }
out:
    progress_end(bar);
    json_decref(h);
    close(fd);
}

/* Upload the tree at (dirfd, name) as remote directory `remote`.  Inside
 * it symlinks and special files are skipped with a warning, as rsync
 * does without -l. */
static void put_tree(struct transfer *x, int dirfd, const char *name, int nofollow,
                     const char *display, const char *remote)
{
    struct fs_error err = { 0 };
    struct dirent *e;
    DIR *dir = NULL;
    int fd, r;

    fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | (nofollow ? O_NOFOLLOW : 0));
    if (fd < 0) {
        transfer_report(x, "put", display, "%s", strerror(errno));
        return;
    }
    dir = fdopendir(fd);
    if (!dir) {
        transfer_report(x, "put", display, "%s", strerror(errno));
        close(fd);
        return;
    }
    if (transfer_need_session(x) < 0)
        goto out;
    /* "parents": an existing directory is fine, as cp -r into one. */
    r = remotefs_mkdir(*x->sp, remote, 1, &err);
    if (r < 0) {
        transfer_report_remote(x, "put", display, remote, &err);
        goto out;
    }
    while (!transfer_stopped(x)) {
        char *child_display = NULL, *child_remote = NULL;
        struct stat st;

        errno = 0;
        e = readdir(dir);
        if (!e) {
            if (errno)
                transfer_report(x, "put", display, "%s", strerror(errno));
            break;
        }
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (asprintf(&child_display, "%s%s%s", display,
                     display[strlen(display) - 1] == '/' ? "" : "/", e->d_name) < 0) {
            transfer_report(x, "put", display, "out of memory");
            break;
        }
        child_remote = remotefs_join(remote, e->d_name);
        if (!child_remote) {
            transfer_report(x, "put", child_display, "out of memory");
        } else if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            transfer_report(x, "put", child_display, "%s", strerror(errno));
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
static int remote_is_dir(struct transfer *x, const char *path, struct fs_error *err)
{
    struct fs_meta m;
    int r;

    if (transfer_need_session(x) < 0)
        return -1;
    r = remotefs_stat(*x->sp, path, &m, NULL, err);
    if (r == 0)
        return strcmp(m.kind, "dir") == 0;
    if (r == FERRY_EREMOTE && strcmp(err->code, ERR_FS) == 0 &&
        (strcmp(err->errname, "ENOENT") == 0 || strcmp(err->errname, "ENOTDIR") == 0))
        return 0;
    return -1;
}

int transfer_put(struct transfer *x, char *const *locals, int n, const char *remote_arg)
{
    struct fs_error err = { 0 };
    struct signals_saved old;
    char *remote = remotefs_canon(remote_arg);
    int into_dir, r;

    if (!remote) {
        cli_error("out of memory");
        return FERRY_EXIT_ERROR;
    }
    signals_interrupted = 0;
    r = signals_interrupt_install(&old);
    if (r < 0) {
        cli_error("cannot install signal handlers: %s", strerror(-r));
        free(remote);
        return FERRY_EXIT_ERROR;
    }
    x->op = "put";
    if (n == 1 && strcmp(locals[0], "-") == 0) {
        /* stdin has no name of its own to go under a directory. */
        if (transfer_ends_in_slash(remote_arg) || strcmp(remote, ".") == 0)
            transfer_report(x, "put", "-", "stdin needs a remote file name ('put HOST - NAME')");
        else if (x->o.resume)
            transfer_report(x, "put", "-", "--resume cannot go on from a stream");
        else
            transfer_put_stdin(x, remote);
        goto done;
    }
    into_dir = transfer_ends_in_slash(remote_arg) || strcmp(remote, ".") == 0;
    if (!into_dir) {
        r = remote_is_dir(x, remote, &err);
        if (r < 0 && !x->fatal && n > 1)
            transfer_report_err(x, "put", remote_arg, &err);
        into_dir = r > 0;
    }
    if (n > 1 && !into_dir && !transfer_stopped(x) && !x->failed) {
        cli_error("put: target '%s' is not a directory", remote_arg);
        x->failed = 1;
    }
    for (int i = 0; i < n && !transfer_stopped(x) && (n == 1 || into_dir); i++) {
        char *base = transfer_own_name(locals[i]), *target;
        struct stat st;

        target = into_dir && base ? remotefs_join(remote, base) : strdup(remote);
        if (!target) {
            transfer_report(x, "put", locals[i], "out of memory");
        } else if (stat(locals[i], &st) < 0) {
            transfer_report(x, "put", locals[i], "%s", strerror(errno));
        } else if (S_ISDIR(st.st_mode)) {
            if (x->o.recursive)
                put_tree(x, AT_FDCWD, locals[i], 0, locals[i], target);
            else
                transfer_report(x, "put", locals[i], "is a directory (use -r)");
        } else {
            put_file(x, AT_FDCWD, locals[i], 0, locals[i], target);
        }
        free(base);
        free(target);
    }
done:
    signals_interrupt_restore(&old);
    free(remote);
    transfer_summary(x);
    return transfer_status(x);
}
