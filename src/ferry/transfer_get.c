/*
 * transfer_get.c - downloads, files and trees (transfer.h), committed
 * atomically here: bytes go to .NAME.ferry-part beside the target, which
 * is renamed over it once the whole file checked.
 *
 * The data path: at each data frame's header the download asks libferry
 * to store the body in the temporary (ferry_conn_recv_body_to_file):
 * socket -> pipe -> page cache without passing through our memory, the
 * bytes then hashed back from the file, or, where that cannot be done
 * (TLS decrypts in user space), written from libferry's read buffer and
 * hashed from there.  Every byte is hashed exactly as
 * it was stored, so the checksum vouches for the bytes themselves.
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
#include "fdio.h"
#include "filecommit.h"
#include "ferry/ferry.h"
#include "progress.h"
#include "proto.h"
#include "remotefs.h"
#include "signals.h"

/* ---- get ------------------------------------------------------------------- */

/* Disk is reserved ahead of the bytes in steps of at most this much: the
 * server's announced size is only a claim, and a hostile one announcing
 * 2^40 bytes must not fill the client's disk (issue 11, defect 6). */
#define GET_RESERVE_STEP ((uint64_t)64 * 1024 * 1024)

/* Hash the temporary's bytes [from, to) as they are stored: bytes that
 * went straight into the file were never in our memory.  They are still in the page cache, so
 * this is a copy, not a disk read.  0, or -errno (-EIO: the file is
 * shorter than what we wrote into it). */
static int hash_stored(struct transfer *x, int fd, uint64_t from, uint64_t to)
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

/* A download in flight: what the receiver below needs between frames. */
struct download {
    struct transfer *x;
    struct client_session *s;
    int fd;
    uint64_t off, size;     /* the file's bytes [0, off) are in fd */
    uint64_t hashed;        /* ... and [0, hashed) are in the digest */
    uint64_t reserved;      /* blocks [off, reserved) are fallocated ahead */
    struct progress *bar;
    json_t *end;            /* the get-end header, once it came */
    int done;
    int r;                  /* the result once done */
    int local_err;          /* -errno when our own side failed */
    struct fs_error *err;
};

/* Keep the reservation at most GET_RESERVE_STEP ahead of what arrived,
 * and never past the announced size.  Best effort: the reservation only
 * spares ext4 its per-page delayed-allocation bookkeeping (12% of the
 * client's CPU on a 1 GiB download). */
static void dl_reserve(struct download *d)
{
    uint64_t want = d->size - d->off < GET_RESERVE_STEP ? d->size : d->off + GET_RESERVE_STEP;
    uint64_t from = d->reserved > d->off ? d->reserved : d->off;

    /* Top up once less than half a step is left ahead, not at every chunk. */
    if (want <= from || (want < d->size && from - d->off >= GET_RESERVE_STEP / 2))
        return;
    (void)fallocate(d->fd, FALLOC_FL_KEEP_SIZE, (off_t)from, (off_t)(want - from));
    d->reserved = want;
}

/* Give back blocks reserved past what arrived (a transfer that ended
 * short): the temporary then holds only its bytes.  ext4 punches no hole
 * past the end of a file, but a truncate to its own size frees the blocks
 * beyond it. */
static void dl_unreserve(int fd, uint64_t reserved)
{
    struct stat st;

    if (fstat(fd, &st) == 0 && reserved > (uint64_t)st.st_size &&
        ftruncate(fd, st.st_size) < 0)
        ferry_log_debug("cannot free the reserved blocks: %s", strerror(errno));
}

static void dl_finish(struct download *d, int r)
{
    if (d->done)
        return;
    d->done = 1;
    d->r = r;
    session_set_receiver(d->s, NULL, NULL);
    session_wake(d->s);
}

/* Catch the digest up with the file: bytes that went straight into it
 * are hashed back from it, in order. */
static int dl_hash_up(struct download *d)
{
    int r = hash_stored(d->x, d->fd, d->hashed, d->off);

    if (r < 0) {
        d->local_err = r;
        dl_finish(d, session_lost(d->s, d->err, "%s", strerror(-r)));
        return r;
    }
    d->hashed = d->off;
    return 0;
}

static void dl_header(struct download *d, json_t *h, uint64_t body)
{
    struct client_session *s = d->s;
    const char *type = json_string_value(json_object_get(h, "type"));
    int ok = 1, r;

    if (!type) {
        dl_finish(d, session_lost(s, d->err, "protocol error: %s: message without a type",
                                  s->peer));
    } else if (strcmp(type, MSG_ERROR) == 0) {
        dl_finish(d, session_remote_error(s, h, d->err));
    } else if (strcmp(type, MSG_GET_END) == 0) {
        d->end = json_incref(h);
        dl_finish(d, 0);
    } else if (strcmp(type, MSG_DATA) != 0 ||
               (uint64_t)transfer_int_member(h, "offset", 0, INT64_MAX, &ok) != d->off || !ok ||
               body > d->size - d->off) {
        dl_finish(d, session_lost(s, d->err, "protocol error: %s: bad '%s' during a download",
                                  s->peer, type));
    } else if (body > 0) {
        /* libferry stores the body in the file (without a copy where the
         * transport allows) and tells us what arrived. */
        r = ferry_conn_recv_body_to_file(s->conn, d->fd, d->off);
        if (r < 0)
            dl_finish(d, session_lost(s, d->err, "%s", ferry_strerror(r)));
    }
    json_decref(h);
}

/* Every frame event of the connection during a download. */
static int dl_frame(struct client_session *s, struct ferry_frame_event *ev, void *arg)
{
    struct download *d = arg;

    (void)s;
    switch (ev->type) {
    case FERRY_FRAME_HEADER:
        dl_header(d, ev->header, ev->body_size);
        break;
    case FERRY_FRAME_BODY:
        /* ev->chunk_len more bytes are in the file; ev->chunk shows them
         * when they passed through our memory (TLS). */
        if (ev->chunk && d->hashed == d->off) {
            digest_update(d->x->d, ev->chunk, ev->chunk_len);
            d->hashed += ev->chunk_len;
        }
        d->off += ev->chunk_len;
        dl_reserve(d);
        if (d->off - d->hashed >= d->x->buf_len && dl_hash_up(d) < 0)
            break;
        progress_update(d->bar, d->off);
        break;
    case FERRY_FRAME_END:
        (void)dl_hash_up(d);
        break;
    case FERRY_FRAME_ERROR:
        /* Storing the body failed (-errno), or the stream broke framing;
         * either way libferry closes the connection now. */
        if (ev->error > -4000) {
            d->local_err = ev->error;
            dl_finish(d, session_lost(s, d->err, "%s", strerror(-ev->error)));
        } else {
            dl_finish(d, session_lost(s, d->err, "protocol error: %s: %s", s->peer,
                                      ferry_strerror(ev->error)));
        }
        break;
    default:
        break;
    }
    return 0;
}

/* Receive data frames into fd, from offset `off` on, until get-end.  0
 * when the whole file is there and its checksum matches; *local_err is
 * set (-errno) when our own side failed.  On any failure the connection
 * is dropped: libferry may be in the middle of storing a body in fd. */
static int receive_data(struct transfer *x, struct client_session *s, int fd, uint64_t off,
                        uint64_t size, struct progress *bar, int *local_err,
                        struct fs_error *err)
{
    struct download d = {
        .x = x, .s = s, .fd = fd, .off = off, .size = size, .hashed = off, .bar = bar,
        .err = err, .reserved = off,
    };
    char sum[DIGEST_HEX_MAX];
    int r;

    dl_reserve(&d);
    session_set_receiver(s, dl_frame, &d);
    while (!d.done) {
        if (s->gone) {
            dl_finish(&d, session_lost_gone(s, err));
            break;
        }
        r = session_wait(s);
        if (r < 0 && !d.done) {
            dl_finish(&d, r);
            break;
        }
    }
    session_set_receiver(s, NULL, NULL);
    *local_err = d.local_err;
    r = d.r;
    if (r < 0 || d.off != size)
        dl_unreserve(fd, d.reserved);
    if (r < 0) {
        s->broken = 1;
        if (s->conn)
            ferry_conn_abort(s->conn, 0);
        json_decref(d.end);
        return r;
    }
    digest_hex(x->d, sum);
    if (d.off != size) {
        r = session_lost(s, err, "protocol error: %s: get-end before the whole file", s->peer);
    } else if (!json_is_string(json_object_get(d.end, "checksum")) ||
               !digest_hex_equal(json_string_value(json_object_get(d.end, "checksum")), sum)) {
        snprintf(err->code, sizeof err->code, "%s", ERR_CHECKSUM);
        err->errname[0] = '\0';
        snprintf(err->message, sizeof err->message, "checksum mismatch: the file was not saved");
        r = FERRY_EREMOTE;
    }
    json_decref(d.end);
    return r;
}

/* Mode, mtime, fsync, then the rename that commits the download
 * (src/shared/filecommit.c, as ferryd commits an upload): all in the
 * directory dirfd, where the temporary was made. */
static int commit(struct transfer *x, int fd, const json_t *ready, int dirfd, const char *tmp,
                  const char *base, const char *dir)
{
    int ok = 1;
    unsigned mode = (unsigned)transfer_int_member(ready, "mode", 0, 07777, &ok) & 0777;
    int64_t mtime = transfer_int_member(ready, "mtime", INT64_MIN, INT64_MAX, &ok);
    int64_t nsec = json_object_get(ready, "mtime_nsec") ?
                   transfer_int_member(ready, "mtime_nsec", 0, 999999999, &ok) : 0;
    struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT },
                              { .tv_sec = (time_t)mtime, .tv_nsec = (long)nsec } };
    int r;

    (void)ok;   /* every member was checked at get-ready */
    if (!x->o.preserve)
        mode &= ~(unsigned)x->umask;
    r = filecommit_prepare(fd, mode, x->o.preserve ? ts : NULL, x->o.fsync);
    if (r == 0)
        r = filecommit_rename(dirfd, tmp, base);
    if (r < 0)
        return r;
    /* The rename is done; a directory that cannot be synced is worth a
     * word but does not undo it. */
    if (x->o.fsync && (r = filecommit_sync_dir(dirfd, ".")) < 0)
        cli_error("warning: cannot sync directory %s: %s", dir, strerror(-r));
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

/* The temporary of an earlier, interrupted download, to go on from
 * (--resume): only a regular file of our own that no other name links
 * to.  In a directory others may write to (a sticky /tmp/...), another
 * user could plant it: a file of theirs would become the target, theirs
 * to change after the checksum passed, and a hard link would have the
 * download truncate and write whatever else it names.  fd or -1. */
static int open_resumable(struct transfer *x, const char *display, int dirfd,
                          const char *tmpname, const char *tmp)
{
    struct stat st;
    int fd = openat(dirfd, tmpname, O_RDWR | O_NOFOLLOW | O_CLOEXEC);

    if (fd < 0 && errno == ENOENT)
        return -1;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
        st.st_nlink != 1) {
        transfer_report(x, "get", display, "%s is not a regular file of ours that only this "
                        "name links to: not resumed from (remove it to start over)", tmp);
        if (fd >= 0)
            close(fd);
        return -2;
    }
    return fd;
}

/* Download remote file `remote` (shown as `display`) into the directory
 * dirfd (shown as `dir`) as `base` (the whole shown as `target`), through
 * .BASE.ferry-part beside it.  Every local name is taken in dirfd, so
 * what that directory's path leads to afterwards does not matter: a
 * directory swapped for a symlink during a get -r is not followed.
 * Failures are reported. */
static void get_file_at(struct transfer *x, const char *remote, const char *display, int dirfd,
                        const char *dir, const char *base, const char *target)
{
    char prefix[DIGEST_HEX_MAX] = "";
    char *tmp = NULL, *tmpname = NULL;
    struct progress *bar = NULL;
    struct fs_error err = { 0 };
    struct client_session *s;
    const char *type;
    json_t *req = NULL, *h = NULL;
    uint64_t body, size, k = 0, off;
    int fd = -1, keep_tmp = x->o.resume, made_tmp = 0, local_err = 0, ok = 1, r;

    if (asprintf(&tmpname, ".%s%s", base, PROTO_PART_SUFFIX) < 0) {
        tmpname = NULL;
        transfer_report(x, "get", display, "out of memory");
        goto out;
    }
    if (asprintf(&tmp, "%s/%s", dir, tmpname) < 0) {
        tmp = NULL;
        transfer_report(x, "get", display, "out of memory");
        goto out;
    }
    digest_reset(x->d);
    /* A temporary left by a killed run (SIGKILL, a crash) is ours to
     * remove: without --resume nothing will ever go on from it. */
    if (!x->o.resume && unlinkat(dirfd, tmpname, 0) == 0)
        ferry_log_debug("get %s: removed the stale %s", display, tmp);
    if (x->o.resume) {
        /* What an earlier, interrupted download left: its size is where
         * we ask to go on, and its checksum proves it to the server. */
        struct stat st;

        fd = open_resumable(x, display, dirfd, tmpname, tmp);
        if (fd == -2) {
            fd = -1;
            keep_tmp = 1;
            goto out;
        }
        if (fd >= 0 && fstat(fd, &st) == 0 && st.st_size > 0) {
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
        transfer_report(x, "get", display, "the name is not valid UTF-8");
        goto out;
    }
    if (transfer_need_session(x) < 0)
        goto out;
    s = *x->sp;
    r = session_send(s, req, &err);
    req = NULL;
    if (r == 0)
        r = session_recv(s, &h, &type, &body, &err);
    if (r == 0 && (strcmp(type, MSG_GET_READY) != 0 || body != 0))
        r = session_lost(s, &err, "protocol error: %s: '%s' instead of get-ready", s->peer, type);
    if (r < 0)
        goto failed;
    size = (uint64_t)transfer_int_member(h, "filesize", 0, INT64_MAX, &ok);
    off = (uint64_t)transfer_int_member(h, "offset", 0, INT64_MAX, &ok);
    transfer_int_member(h, "mode", 0, 07777, &ok);
    transfer_int_member(h, "mtime", INT64_MIN, INT64_MAX, &ok);
    if (!ok || (off != 0 && off != k) || off > size) {
        r = session_lost(s, &err, "protocol error: %s: bad get-ready", s->peer);
        goto failed;
    }
    if (fd < 0) {
        /* Made here, by us: O_EXCL, so a file someone put in its place
         * since the unlink above is not written through. */
        fd = openat(dirfd, tmpname, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) {
            local_err = -errno;
            session_lost(s, &err, "%s", strerror(errno));   /* the data is on its way */
            /* The temporary is ours, not the user's: name its directory. */
            transfer_report(x, "get", display, "local %s%s: %s", dir,
                            strcmp(dir, "/") == 0 ? "" : "/", strerror(-local_err));
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
        r = session_lost(s, &err, "%s", strerror(errno));
        goto failed;
    }
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
    r = commit(x, fd, h, dirfd, tmpname, base, dir);
    if (r < 0) {
        transfer_report(x, "get", display, "local %s: %s", target, strerror(-r));
        keep_tmp = 0;
        goto out;
    }
    made_tmp = 0;   /* it is the target now */
    transfer_done(x, display, target, size);
    goto out;
failed:
    progress_end(bar);
    bar = NULL;
    if (r == -EINTR)
        (*x->sp)->broken = 1;   /* mid-stream: only a hang-up stops the server */
    else if (!x->o.recursive && strcmp(err.errname, "EISDIR") == 0)
        transfer_report(x, "get", display, "%s (use -r)", remotefs_error_text(&err));
    else
        transfer_report_err(x, "get", display, &err);
out:
    progress_end(bar);
    if (fd >= 0)
        close(fd);
    if (made_tmp && !keep_tmp && tmpname)
        unlinkat(dirfd, tmpname, 0);
    json_decref(req);
    json_decref(h);
    free(tmp);
    free(tmpname);
}

/* get_file_at for a target the user named, a path: its directory, as
 * the path leads to it now (the user's to point anywhere), is opened once
 * and the rest is done in it. */
static void get_file(struct transfer *x, const char *remote, const char *display,
                     const char *target)
{
    const char *slash = strrchr(target, '/');
    char *dir = slash ? strndup(target, slash == target ? 1 : (size_t)(slash - target))
                      : strdup(".");
    char *base = remotefs_basename(target);
    int dirfd = -1;

    if (!dir || !base) {
        transfer_report(x, "get", display, "out of memory");
        goto out;
    }
    dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        transfer_report(x, "get", display, "local %s%s: %s", dir,
                        strcmp(dir, "/") == 0 ? "" : "/", strerror(errno));
        goto out;
    }
    get_file_at(x, remote, display, dirfd, dir, base, target);
out:
    if (dirfd >= 0)
        close(dirfd);
    free(dir);
    free(base);
}

/* Remote directory `remote` into local `name` in parentfd (shown as
 * `target`); a symlink as `name` is followed only when the user named it
 * (follow). */
static void get_tree(struct transfer *x, const char *remote, const char *display, int parentfd,
                     const char *name, const char *target, int depth, int follow)
{
    struct fs_error err = { 0 };
    json_t *entries = NULL, *e;
    size_t i;
    int fd, r;

    if (depth > REMOTEFS_TREE_DEPTH) {
        transfer_report(x, "get", display, "more than %d directory levels: not descending", REMOTEFS_TREE_DEPTH);
        return;
    }
    fd = transfer_open_local_dir(parentfd, name, follow);
    if (fd < 0) {
        transfer_report(x, "get", display, "local %s: %s", target,
                        transfer_local_dir_error(fd));
        return;
    }
    if (transfer_need_session(x) < 0)
        goto out;
    r = remotefs_list(*x->sp, remote, &entries, &err);
    if (r < 0) {
        transfer_report_err(x, "get", display, &err);
        goto out;
    }
    json_array_foreach(entries, i, e) {
        const char *child = json_string_value(json_object_get(e, "name"));
        const char *kind = json_string_value(json_object_get(e, "kind"));
        char *child_remote = remotefs_join(remote, child), *child_display = NULL;
        char *child_target = NULL;

        if (transfer_stopped(x)) {
            free(child_remote);
            break;
        }
        if (!child_remote || asprintf(&child_display, "%s/%s", display, child) < 0 ||
            asprintf(&child_target, "%s/%s", target, child) < 0) {
            child_display = child_target = NULL;
            transfer_report(x, "get", display, "out of memory");
        } else if (strcmp(kind, "dir") == 0) {
            get_tree(x, child_remote, child_display, fd, child, child_target, depth + 1, 0);
        } else if (strcmp(kind, "file") == 0) {
            get_file_at(x, child_remote, child_display, fd, target, child, child_target);
        } else {
            cli_error("skipping %s %s (not a regular file or directory)",
                      strcmp(kind, "link") == 0 ? "symlink" : kind, child_display);
        }
        free(child_remote);
        free(child_display);
        free(child_target);
    }
out:
    json_decref(entries);
    close(fd);
}

/* get -r of remote directory `remote` to `target`: LOCAL itself when
 * into_dir is NULL (the user named it: followed), else BASE in the
 * directory into_dir (followed), where a symlink as BASE is not: the user
 * named the directory, not what another user may have put in it. */
static void get_tree_top(struct transfer *x, const char *remote, const char *display,
                         const char *into_dir, const char *base, const char *target)
{
    int fd;

    if (!into_dir || !base) {
        get_tree(x, remote, display, AT_FDCWD, target, target, 0, 1);
        return;
    }
    fd = open(into_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        transfer_report(x, "get", display, "local %s: %s", target, strerror(errno));
        return;
    }
    get_tree(x, remote, display, fd, base, target, 0, 0);
    close(fd);
}

/* "file/" is not the file (remotefs_canon drops the slash): 0 when arg is
 * fine to fetch, 1 when it was reported, -1 when no session can be had. */
static int slashed_file(struct transfer *x, const char *arg)
{
    struct fs_error err = { 0 };

    if (!remotefs_names_dir(arg))
        return 0;
    if (transfer_need_session(x) < 0)
        return -1;
    if (remotefs_check_dir(*x->sp, arg, &err) == 0)
        return 0;
    transfer_report_err(x, "get", arg, &err);
    return 1;
}

int transfer_get(struct transfer *x, char *const *remotes, int n, const char *local)
{
    struct signals_saved old;
    struct stat st;
    int into_dir, r;

    signals_interrupted = 0;
    r = signals_interrupt_install(&old);
    if (r < 0) {
        cli_error("cannot install signal handlers: %s", strerror(-r));
        return FERRY_EXIT_ERROR;
    }
    x->op = "get";
    if (strcmp(local, "-") == 0) {
        char *remote = n == 1 && !x->o.recursive ? remotefs_canon(remotes[0]) : NULL;

        if (n != 1 || x->o.recursive || x->o.resume)
            transfer_report(x, "get", remotes[0], "stdout ('-') takes one file, without -r "
                            "or --resume");
        else if (!remote)
            transfer_report(x, "get", remotes[0], "out of memory");
        else if (slashed_file(x, remotes[0]) == 0)
            transfer_get_stdout(x, remotes[0], remote);
        free(remote);
        goto done;
    }
    into_dir = transfer_ends_in_slash(local) || (stat(local, &st) == 0 && S_ISDIR(st.st_mode));
    if (n > 1 && !into_dir) {
        cli_error("get: target '%s' is not a directory", local);
        x->failed = 1;
    } else if (n > 1 && stat(local, &st) < 0) {
        /* Said once, as cp says it, not once for every file. */
        cli_error("get: target '%s': %s", local, strerror(errno));
        x->failed = 1;
        into_dir = 0;
    }
    for (int i = 0; i < n && !transfer_stopped(x) && (n == 1 || into_dir); i++) {
        struct fs_error err = { 0 };
        char *remote = remotefs_canon(remotes[i]), *base = NULL, *target = NULL;
        int is_dir = 0;

        if (!remote) {
            transfer_report(x, "get", remotes[i], "out of memory");
            continue;
        }
        r = slashed_file(x, remotes[i]);
        if (r != 0) {
            free(remote);
            if (r < 0)
                break;
            continue;
        }
        if (x->o.recursive) {
            struct fs_meta m;

            if (transfer_need_session(x) < 0) {
                free(remote);
                break;
            }
            r = remotefs_stat(*x->sp, remote, &m, NULL, &err);
            if (r < 0) {
                transfer_report_err(x, "get", remotes[i], &err);
                free(remote);
                continue;
            }
            is_dir = strcmp(m.kind, "dir") == 0;
        }
        base = transfer_own_name(remote);
        if (into_dir && base)
            r = asprintf(&target, "%s%s%s", local, transfer_ends_in_slash(local) ? "" : "/", base);
        else
            r = (target = strdup(local)) ? 0 : -1;
        if (r < 0) {
            target = NULL;
            transfer_report(x, "get", remotes[i], "out of memory");
        } else if (is_dir) {
            get_tree_top(x, remote, remotes[i], into_dir ? local : NULL, base, target);
        } else if (!base) {
            transfer_report(x, "get", remotes[i], "is a directory (use -r)");
        } else {
            get_file(x, remote, remotes[i], target);
        }
        free(remote);
        free(base);
        free(target);
    }
done:
    signals_interrupt_restore(&old);
    transfer_summary(x);
    return transfer_status(x);
}
