/*
 * transfer.c - what put and get share (transfer.h): the command's state,
 * its session (reopened when a file's failure broke it), one line per
 * failed file, cp's rules for targets, and the exit status.
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
#include "monoclock.h"
#include "ferry/ferry.h"
#include "progress.h"
#include "proto.h"
#include "remotefs.h"
#include "signals.h"

int transfer_init(struct transfer *x, struct client_session **sp, const char *host,
              const struct dial_opts *so, const struct transfer_opts *o)
{
    *x = (struct transfer){ .sp = sp, .host = host, .so = so, .o = *o };
    x->t0 = monoclock_ns();
    x->umask = umask(0);
    umask(x->umask);
    x->d = digest_new(o->alg);
    x->buf = malloc(TRANSFER_BUF_SIZE);
    x->buf_len = TRANSFER_BUF_SIZE;
    if (!x->d || !x->buf) {
        transfer_free(x);
        cli_error("out of memory");
        return -ENOMEM;
    }
    return 0;
}

void transfer_free(struct transfer *x)
{
    digest_free(x->d);
    free(x->buf);
    free(x->done_src);
    free(x->done_dst);
    x->d = NULL;
    x->buf = NULL;
    x->done_src = x->done_dst = NULL;
}

/* One line for a file that failed: "ferry: put a.txt: reason". */
void transfer_report(struct transfer *x, const char *op, const char *name, const char *fmt, ...)
{
    char msg[768];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cli_error("%s %s: %s", op, name, msg);
    x->failed = 1;
}

void transfer_report_err(struct transfer *x, const char *op, const char *name,
                       const struct fs_error *err)
{
    transfer_report(x, op, name, "%s", remotefs_error_text(err));
}

void transfer_report_remote(struct transfer *x, const char *op, const char *name,
                            const char *remote, const struct fs_error *err)
{
    const char *slash = strrchr(remote, '/');
    int missing_dir = strcmp(op, "put") == 0 && strcmp(err->code, ERR_FS) == 0 &&
                      (strcmp(err->errname, "ENOENT") == 0 || strcmp(err->errname, "ENOTDIR") == 0);

    if (err->code[0] == '\0')
        transfer_report_err(x, op, name, err);
    else if (missing_dir && slash)
        /* The file is being created: what is missing is its directory. */
        transfer_report(x, op, name, "remote %.*s: %s", (int)(slash - remote + 1), remote,
                        remotefs_error_text(err));
    else
        transfer_report(x, op, name, "remote %s: %s", remote, remotefs_error_text(err));
}

void transfer_done(struct transfer *x, const char *src, const char *dst, uint64_t bytes)
{
    x->done_bytes += bytes;
    if (x->done_files++ == 0) {
        x->done_src = strdup(src);
        x->done_dst = strdup(dst);
    }
}

void transfer_summary(const struct transfer *x)
{
    char what[1024];
    int put = strcmp(x->op, "put") == 0;

    if (x->done_files == 0 || signals_interrupted)
        return;
    if (x->done_files == 1 && x->done_src && x->done_dst)
        snprintf(what, sizeof what, "%s %s%s%s -> %s%s%s", x->op, put ? "" : x->host,
                 put ? "" : ":", x->done_src, put ? x->host : "", put ? ":" : "", x->done_dst);
    else
        snprintf(what, sizeof what, "%s %d files %s %s", x->op, x->done_files,
                 put ? "to" : "from", x->host);
    progress_summary(what, x->done_bytes, monoclock_ns() - x->t0);
}

/* A usable session, reopened if the last one broke.  0, or -1 when none
 * can be had (already printed; the whole command stops). */
int transfer_need_session(struct transfer *x)
{
    if (*x->sp && !(*x->sp)->broken)
        return 0;
    client_session_close(*x->sp);
    *x->sp = NULL;
    if (signals_interrupted || x->fatal)
        return -1;
    *x->sp = dial_open(x->host, x->so);
    if (!*x->sp) {
        x->fatal = 1;
        return -1;
    }
    return 0;
}

/* Only an error may come in while we send: 0 when none has yet,
 * FERRY_EREMOTE (err filled) when the put failed, other negatives when
 * the connection is gone. */
int transfer_check_incoming(struct client_session *s, struct fs_error *err)
{
    const char *type;
    json_t *h = NULL;
    uint64_t body;
    int r = session_poll_header(s, &h, &type, &body, err);

    if (r == 1) {
        r = session_lost(s, err, "protocol error: %s: unexpected '%s' during an upload", s->peer,
                       type);
        json_decref(h);
    }
    return r;
}

/* An error the server sent before hanging up says more than "connection
 * reset". */
void transfer_prefer_server_error(struct client_session *s, struct fs_error *err)
{
    struct fs_error e2;

    if (transfer_check_incoming(s, &e2) == FERRY_EREMOTE)
        *err = e2;
}

int transfer_stopped(const struct transfer *x)
{
    return x->fatal || signals_interrupted;
}

/* An integer member in [lo, hi], or -1 in *ok. */
int64_t transfer_int_member(const json_t *h, const char *name, int64_t lo, int64_t hi, int *ok)
{
    const json_t *v = json_object_get(h, name);

    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        *ok = 0;
        return 0;
    }
    return (int64_t)json_integer_value(v);
}

int transfer_ends_in_slash(const char *p)
{
    size_t n = strlen(p);

    return n > 0 && p[n - 1] == '/';
}

int transfer_source_changed(int fd, const struct stat *before)
{
    struct stat now;

    if (fstat(fd, &now) < 0)
        return 1;
    return now.st_size != before->st_size || now.st_mtim.tv_sec != before->st_mtim.tv_sec ||
           now.st_mtim.tv_nsec != before->st_mtim.tv_nsec;
}

/* A source's own name for use under a target directory; NULL when the
 * source is ".", ".." or "/", whose contents go into the target itself. */
int transfer_open_local_dir(int parentfd, const char *name, int follow)
{
    struct stat st;
    int fd;

    if (mkdirat(parentfd, name, 0777) < 0 && errno != EEXIST)
        return -errno;
    fd = openat(parentfd, name, O_PATH | O_DIRECTORY | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW));
    if (fd >= 0)
        return fd;
    /* O_PATH | O_NOFOLLOW on a symlink says ENOTDIR: name it. */
    if (!follow && errno == ENOTDIR && fstatat(parentfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISLNK(st.st_mode))
        return -ELOOP;
    return -errno;
}

const char *transfer_local_dir_error(int r)
{
    return r == -ELOOP ? "is a symbolic link: not followed" : strerror(-r);
}

char *transfer_own_name(const char *path)
{
    char *b = remotefs_basename(path);

    if (b && (strcmp(b, ".") == 0 || strcmp(b, "..") == 0 || strcmp(b, "/") == 0)) {
        free(b);
        return NULL;
    }
    return b;
}

int transfer_status(const struct transfer *x)
{
    if (signals_interrupted)
        return 128 + signals_interrupted;
    if (x->fatal)
        return FERRY_EXIT_ERROR;
    return x->failed ? 1 : 0;
}
