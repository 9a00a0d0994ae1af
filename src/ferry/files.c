/*
 * files.c - file-service frames and small requests over a session (files.h).
 */
#include "files.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ferry/ferry.h"
#include "proto.h"

volatile sig_atomic_t files_interrupted;

static const int caught_signals[3] = { SIGINT, SIGTERM, SIGHUP };

static void on_signal(int signo)
{
    files_interrupted = signo;
}

int files_signals_install(struct sigaction old[3])
{
    struct sigaction sa = { .sa_handler = on_signal };

    sigemptyset(&sa.sa_mask);
    /* No SA_RESTART: a wait in poll() must return so we can clean up. */
    for (int i = 0; i < 3; i++) {
        if (sigaction(caught_signals[i], &sa, &old[i]) < 0) {
            int e = -errno;

            while (i-- > 0)
                sigaction(caught_signals[i], &old[i], NULL);
            return e;
        }
    }
    return 0;
}

void files_signals_restore(const struct sigaction old[3])
{
    for (int i = 0; i < 3; i++)
        sigaction(caught_signals[i], &old[i], NULL);
}

/* ---- errors ------------------------------------------------------------------- */

int files_error_errno(const struct fs_error *err)
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

const char *files_error_text(const struct fs_error *err)
{
    int e = strcmp(err->code, ERR_FS) == 0 ? files_error_errno(err) : 0;

    if (e)
        return strerror(e);
    return err->message[0] ? err->message : "unknown error";
}

int files_lost(struct session *s, struct fs_error *err, const char *fmt, ...)
{
    va_list ap;

    s->broken = 1;
    err->code[0] = err->errname[0] = '\0';
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return FERRY_ELOST;
}

/* Copy a string member into a fixed buffer, cutting it if it is long. */
static void copy_member(char *dst, size_t cap, const json_t *h, const char *name)
{
    const char *v = json_string_value(json_object_get(h, name));

    snprintf(dst, cap, "%s", v ? v : "");
}

/* An error message from the server into err. */
static int remote_error(struct session *s, const json_t *h, struct fs_error *err)
{
    copy_member(err->code, sizeof err->code, h, "code");
    copy_member(err->errname, sizeof err->errname, h, "errno");
    copy_member(err->message, sizeof err->message, h, "message");
    if (strcmp(err->code, ERR_PROTOCOL) == 0 || strcmp(err->code, ERR_AUTH) == 0) {
        /* The server closes after these; say which it was. */
        char msg[sizeof err->message];

        snprintf(msg, sizeof msg, "%s", err->message);
        files_lost(s, err, "%s: %s", err->code[0] == 'p' ? "protocol error" :
                   "authentication failed", msg);
        return FERRY_ELOST;
    }
    return FERRY_EREMOTE;
}

/* ---- paths ---------------------------------------------------------------- */

char *files_canon(const char *path)
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

char *files_join(const char *a, const char *b)
{
    char *joined = NULL, *canon;

    if (asprintf(&joined, "%s/%s", a, b) < 0)
        return NULL;
    canon = files_canon(joined);
    free(joined);
    return canon;
}

char *files_basename(const char *path)
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

/* ---- the socket ------------------------------------------------------------- */

/* Wait for events on the socket.  0 (revents in *got), -EINTR when a
 * signal asked us to stop, or FERRY_ELOST. */
static int wait_sock(struct session *s, short events, short *got, struct fs_error *err)
{
    struct pollfd pfd = { .fd = ferry_transport_fd(s->t), .events = events };

    /* TLS may hold input that poll() cannot see. */
    if ((events & POLLIN) && ferry_transport_pending(s->t)) {
        *got = POLLIN;
        return 0;
    }
    for (;;) {
        if (files_interrupted)
            return -EINTR;
        if (poll(&pfd, 1, -1) >= 0)
            break;
        if (errno != EINTR)
            return files_lost(s, err, "poll: %s", strerror(errno));
    }
    *got = pfd.revents;
    return 0;
}

/* Read once into rbuf (making room first).  Returns the bytes read, 0 when
 * none were ready (non-blocking), or FERRY_ELOST. */
static ssize_t fill_once(struct session *s, struct fs_error *err)
{
    ssize_t n;

    if (s->rpos == s->rlen) {
        s->rpos = s->rlen = 0;
    } else if (s->rlen == sizeof s->rbuf && s->rpos > 0) {
        memmove(s->rbuf, s->rbuf + s->rpos, s->rlen - s->rpos);
        s->rlen -= s->rpos;
        s->rpos = 0;
    }
    if (s->rlen == sizeof s->rbuf)
        return 0;   /* full: the caller takes a header out first */
    n = ferry_transport_read(s->t, s->rbuf + s->rlen, sizeof s->rbuf - s->rlen);
    if (n == -EAGAIN)
        return 0;
    if (n == 0)
        return files_lost(s, err, "connection closed by server");
    if (n < 0)
        return files_lost(s, err, "connection to %s lost: %s", s->peer, ferry_strerror((int)n));
    s->rlen += (size_t)n;
    return n;
}

static int flush_queue(struct session *s, struct fs_error *err)
{
    while (s->out.len > 0) {
        short got = 0;
        int r = outq_flush(&s->out, s->t);

        if (r < 0)
            return files_lost(s, err, "connection to %s lost: %s", s->peer, ferry_strerror(r));
        if (s->out.len == 0)
            break;
        r = wait_sock(s, POLLOUT, &got, err);
        if (r < 0)
            return r;
    }
    return 0;
}

int files_send_body(struct session *s, const void *p, size_t n, int *incoming,
                    struct fs_error *err)
{
    const uint8_t *b = p;

    if (s->broken)
        return files_lost(s, err, "connection to %s is closed", s->peer);
    while (n > 0) {
        struct iovec iov = { .iov_base = (void *)b, .iov_len = n };
        ssize_t w = ferry_transport_writev(s->t, &iov, 1);
        short got = 0;
        int r;

        if (w > 0) {
            b += w;
            n -= (size_t)w;
            continue;
        }
        if (w != -EAGAIN)
            return files_lost(s, err, "connection to %s lost: %s", s->peer,
                              ferry_strerror((int)w));
        /* Watch for input too: an error from the server must be read (or
         * it could not tell us anything), and must not wait for us. */
        r = wait_sock(s, s->rlen < sizeof s->rbuf ? POLLIN | POLLOUT : POLLOUT, &got, err);
        if (r < 0)
            return r;
        if (got & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t m = fill_once(s, err);

            if (m < 0)
                return (int)m;
            if (m > 0 && incoming)
                *incoming = 1;
        }
    }
    return 0;
}

int files_send(struct session *s, json_t *hdr, struct fs_error *err)
{
    uint8_t *enc = NULL;
    size_t len = 0;
    int r;

    if (!hdr)
        return files_lost(s, err, "out of memory");
    if (s->broken) {
        json_decref(hdr);
        return files_lost(s, err, "connection to %s is closed", s->peer);
    }
    r = ferry_frame_encode(hdr, 0, NULL, &enc, &len);
    json_decref(hdr);
    if (r < 0) {
        /* Not the connection's fault, but nothing was sent: the caller
         * cannot go on with this request either. */
        snprintf(err->message, sizeof err->message, "%s", r == FERRY_EHDR_TOOBIG ?
                 "request too long" : ferry_strerror(r));
        err->code[0] = err->errname[0] = '\0';
        free(enc);
        return FERRY_EREMOTE;
    }
    r = flush_queue(s, err);
    if (r == 0)
        r = files_send_body(s, enc, len, NULL, err);
    free(enc);
    return r;
}

int files_send_data_header(struct session *s, uint64_t offset, uint64_t n,
                           struct fs_error *err)
{
    json_t *hdr = json_pack("{s:s, s:I}", "type", MSG_DATA, "offset", (json_int_t)offset);
    uint8_t *enc = NULL;
    size_t len = 0;
    int r;

    /* The codec sets "size" to the body that follows (n bytes, sent by the
     * caller); one header per 16 MiB, so its cost does not show. */
    if (!hdr)
        return files_lost(s, err, "out of memory");
    r = ferry_frame_encode(hdr, n, NULL, &enc, &len);
    json_decref(hdr);
    if (r < 0) {
        free(enc);
        return files_lost(s, err, "cannot encode a data frame: %s", ferry_strerror(r));
    }
    r = files_send_body(s, enc, len, NULL, err);
    free(enc);
    return r;
}

/* Take one whole header out of rbuf.  1 when one was there, 0 if not. */
static int take_header(struct session *s, json_t **hdr, uint64_t *body, struct fs_error *err)
{
    const struct ferry_frame_limits limits = {
        .max_header = PROTO_MAX_HEADER,
        .max_body = PROTO_DATA_SEGMENT,
    };
    const uint8_t *p = s->rbuf + s->rpos;
    size_t avail = s->rlen - s->rpos;
    uint32_t len;
    int r;

    if (avail < 4)
        return 0;
    len = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    if (len == 0 || len > PROTO_MAX_HEADER)
        return files_lost(s, err, "protocol error: %s: bad frame length", s->peer);
    if (avail < 4 + (size_t)len)
        return 0;
    r = ferry_frame_decode_header(p + 4, len, &limits, hdr, body);
    if (r < 0)
        return files_lost(s, err, "protocol error: %s: %s", s->peer, ferry_strerror(r));
    s->rpos += 4 + (size_t)len;
    return 1;
}

/* A taken header: typed, and an error turned into its code. */
static int classify(struct session *s, json_t **hdr, const char **type, uint64_t body,
                    struct fs_error *err)
{
    int r;

    *type = json_string_value(json_object_get(*hdr, "type"));
    if (!*type) {
        json_decref(*hdr);
        *hdr = NULL;
        return files_lost(s, err, "protocol error: %s: message without a type", s->peer);
    }
    if (strcmp(*type, MSG_ERROR) != 0)
        return 0;
    r = remote_error(s, *hdr, err);
    json_decref(*hdr);
    *hdr = NULL;
    *type = NULL;
    if (r == FERRY_EREMOTE && body > 0) {
        struct fs_error skip;

        if (files_skip_body(s, body, &skip) < 0)
            s->broken = 1;
    }
    return r;
}

int files_poll_header(struct session *s, json_t **hdr, const char **type, uint64_t *body,
                      struct fs_error *err)
{
    int r;

    *hdr = NULL;
    r = take_header(s, hdr, body, err);
    if (r == 0) {
        ssize_t n = fill_once(s, err);

        if (n < 0)
            return (int)n;
        r = take_header(s, hdr, body, err);
    }
    if (r <= 0)
        return r;
    r = classify(s, hdr, type, *body, err);
    return r < 0 ? r : 1;
}

int files_recv(struct session *s, json_t **hdr, const char **type, uint64_t *body,
               struct fs_error *err)
{
    *hdr = NULL;
    if (s->broken)
        return files_lost(s, err, "connection to %s is closed", s->peer);
    for (;;) {
        short got = 0;
        ssize_t n;
        int r = take_header(s, hdr, body, err);

        if (r < 0)
            return r;
        if (r > 0)
            return classify(s, hdr, type, *body, err);
        n = fill_once(s, err);
        if (n < 0)
            return (int)n;
        if (n > 0)
            continue;
        r = wait_sock(s, POLLIN, &got, err);
        if (r < 0)
            return r;
    }
}

ssize_t files_read_body(struct session *s, void *buf, size_t n, struct fs_error *err)
{
    for (;;) {
        ssize_t got;
        short ev;
        int r;

        if (s->rpos < s->rlen) {
            size_t m = s->rlen - s->rpos < n ? s->rlen - s->rpos : n;

            memcpy(buf, s->rbuf + s->rpos, m);
            s->rpos += m;
            return (ssize_t)m;
        }
        /* Nothing buffered: straight into the caller's buffer, which is
         * where a file's bytes should land anyway. */
        got = ferry_transport_read(s->t, buf, n);
        if (got > 0)
            return got;
        if (got == 0)
            return files_lost(s, err, "connection closed by server");
        if (got != -EAGAIN)
            return files_lost(s, err, "connection to %s lost: %s", s->peer,
                              ferry_strerror((int)got));
        r = wait_sock(s, POLLIN, &ev, err);
        if (r < 0)
            return r;
    }
}

int files_skip_body(struct session *s, uint64_t n, struct fs_error *err)
{
    uint8_t junk[16 * 1024];

    while (n > 0) {
        ssize_t got = files_read_body(s, junk, n < sizeof junk ? (size_t)n : sizeof junk, err);

        if (got < 0)
            return (int)got;
        n -= (uint64_t)got;
    }
    return 0;
}

int files_pwrite_all(int fd, const void *p, size_t n, uint64_t off)
{
    const uint8_t *b = p;

    while (n > 0) {
        ssize_t w = pwrite(fd, b, n, (off_t)off);

        if (w < 0 && errno == EINTR && !files_interrupted)
            continue;
        if (w < 0)
            return -errno;
        if (w == 0)
            return -EIO;
        b += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

/* ---- bodies by splice ------------------------------------------------------- */

/* What the pipe is grown to where the system allows it (fs.pipe-max-size,
 * 1 MiB by default): one splice pair moves up to this much. */
#define SPLICE_PIPE_SIZE (1024 * 1024)

void files_splice_init(struct files_splice *sp)
{
    *sp = (struct files_splice){ .pipe = { -1, -1 } };
}

void files_splice_reset(struct files_splice *sp)
{
    int off = sp->off;

    if (sp->pipe[0] >= 0)
        close(sp->pipe[0]);
    if (sp->pipe[1] >= 0)
        close(sp->pipe[1]);
    files_splice_init(sp);
    sp->off = off;
}

/* 1 when the body may be spliced (the pipe made if need be), 0 if not. */
static int splice_ready(struct session *s, struct files_splice *sp)
{
    struct ferry_tls_info info;
    int size;

    if (sp->off)
        return 0;
    if (sp->pipe[0] >= 0)
        return 1;
    /* Only a plain descriptor carries the body's bytes as they are. */
    if (ferry_transport_tls_info(s->t, &info) != FERRY_EUNSUPPORTED ||
        pipe2(sp->pipe, O_CLOEXEC) < 0) {
        sp->pipe[0] = sp->pipe[1] = -1;
        sp->off = 1;
        return 0;
    }
    (void)fcntl(sp->pipe[1], F_SETPIPE_SZ, SPLICE_PIPE_SIZE);   /* best effort */
    size = fcntl(sp->pipe[1], F_GETPIPE_SZ);
    sp->cap = size > 0 ? (size_t)size : 64 * 1024;
    return 1;
}

/* The pipe's `left` bytes into fd at off by read and pwrite, for a file
 * system that takes no splice (rbuf is empty: it serves as the buffer).
 * 0 or -errno. */
static int drain_pipe_by_copy(struct session *s, struct files_splice *sp, int fd, uint64_t off,
                              size_t left)
{
    while (left > 0) {
        ssize_t got = read(sp->pipe[0], s->rbuf, left < sizeof s->rbuf ? left : sizeof s->rbuf);
        int r;

        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return got < 0 ? -errno : -EIO;
        r = files_pwrite_all(fd, s->rbuf, (size_t)got, off);
        if (r < 0)
            return r;
        off += (uint64_t)got;
        left -= (size_t)got;
    }
    return 0;
}

ssize_t files_splice_body(struct session *s, struct files_splice *sp, int fd, uint64_t off,
                          size_t n, int *local_err, struct fs_error *err)
{
    int sock = ferry_transport_fd(s->t), r;
    ssize_t got;
    size_t left;

    if (s->broken)
        return files_lost(s, err, "connection to %s is closed", s->peer);
    if (s->rpos < s->rlen) {
        /* What arrived with the header is written as it is. */
        size_t m = s->rlen - s->rpos < n ? s->rlen - s->rpos : n;

        r = files_pwrite_all(fd, s->rbuf + s->rpos, m, off);
        if (r < 0) {
            *local_err = r;
            return r == -EINTR ? -EINTR : files_lost(s, err, "%s", strerror(-r));
        }
        s->rpos += m;
        return (ssize_t)m;
    }
    if (!splice_ready(s, sp))
        return 0;
    for (;;) {
        short ev;

        got = splice(sock, NULL, sp->pipe[1], NULL, n < sp->cap ? n : sp->cap,
                     SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (got > 0)
            break;
        if (got == 0)
            return files_lost(s, err, "connection closed by server");
        if (errno == EINTR)
            continue;
        if (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP) {
            sp->off = 1;   /* nothing was taken: the caller reads instead */
            return 0;
        }
        if (errno != EAGAIN)
            return files_lost(s, err, "connection to %s lost: %s", s->peer, strerror(errno));
        r = wait_sock(s, POLLIN, &ev, err);
        if (r < 0)
            return r;
    }
    /* The pipe was empty, so it holds exactly these bytes: all of them go
     * into the file before we return. */
    s->rpos = s->rlen = 0;
    for (left = (size_t)got; left > 0;) {
        loff_t pos = (loff_t)off;
        ssize_t w = splice(sp->pipe[0], NULL, fd, &pos, left, SPLICE_F_MOVE);

        if (w > 0) {
            off += (uint64_t)w;
            left -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR && !files_interrupted)
            continue;
        r = w == 0 ? -EIO : -errno;
        if (r == -EINVAL || r == -EOPNOTSUPP) {
            /* A file system without splice: copy these, read the rest. */
            sp->off = 1;
            r = drain_pipe_by_copy(s, sp, fd, off, left);
            if (r == 0)
                return got;
        }
        /* The server is still sending: only a hang-up stops it. */
        *local_err = r;
        return r == -EINTR ? -EINTR : files_lost(s, err, "%s", strerror(-r));
    }
    return got;
}

/* ---- metadata ------------------------------------------------------------- */

static const char *const kinds[] = { "file", "dir", "link", "fifo", "socket", "char", "block" };

int files_parse_meta(struct session *s, const json_t *obj, struct fs_meta *m,
                     struct fs_error *err)
{
    const char *kind = json_string_value(json_object_get(obj, "kind"));
    const json_t *mode = json_object_get(obj, "mode"), *size = json_object_get(obj, "filesize");
    const json_t *mtime = json_object_get(obj, "mtime"), *nsec = json_object_get(obj, "mtime_nsec");
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
                  json_integer_value(nsec) > 999999999)))
        return files_lost(s, err, "protocol error: %s: bad file metadata", s->peer);
    snprintf(m->kind, sizeof m->kind, "%s", kind);
    m->mode = (unsigned)json_integer_value(mode);
    m->size = (uint64_t)json_integer_value(size);
    m->mtime = (int64_t)json_integer_value(mtime);
    m->mtime_nsec = nsec ? (long)json_integer_value(nsec) : 0;
    return 0;
}

/* ---- small requests ------------------------------------------------------- */

/* Send a request and wait for a header-only answer of type `want`. */
static int request(struct session *s, json_t *req, const char *want, json_t **answer,
                   struct fs_error *err)
{
    const char *type;
    uint64_t body;
    json_t *h = NULL;
    int r;

    if (!req)
        return files_lost(s, err, "out of memory");
    r = files_send(s, req, err);
    if (r < 0)
        return r;
    r = files_recv(s, &h, &type, &body, err);
    if (r < 0)
        return r;
    if (strcmp(type, want) != 0 || body != 0) {
        r = files_lost(s, err, "protocol error: %s: unexpected '%s' message", s->peer, type);
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

int files_stat(struct session *s, const char *path, struct fs_meta *m, json_t **answer,
               struct fs_error *err)
{
    json_t *req = json_pack("{s:s, s:s}", "type", MSG_STAT, "path", path), *h = NULL;
    int r;

    if (!req)
        return bad_name(err);
    r = request(s, req, MSG_STAT, &h, err);
    if (r == 0)
        r = files_parse_meta(s, h, m, err);
    if (r == 0 && answer)
        *answer = json_incref(h);
    json_decref(h);
    return r;
}

int files_list(struct session *s, const char *path, json_t **entries, struct fs_error *err)
{
    json_t *req = json_pack("{s:s, s:s}", "type", MSG_LIST, "path", path);
    json_t *all = NULL, *h = NULL;
    const char *type;
    uint64_t body;
    int r;

    if (!req)
        return bad_name(err);
    r = files_send(s, req, err);
    if (r < 0)
        return r;
    all = json_array();
    if (!all)
        return files_lost(s, err, "out of memory");
    for (;;) {
        json_t *batch, *e;
        size_t i;

        r = files_recv(s, &h, &type, &body, err);
        if (r < 0)
            goto out;
        if (body != 0) {
            r = files_lost(s, err, "protocol error: %s: '%s' with a body", s->peer, type);
            goto out;
        }
        if (strcmp(type, MSG_LIST_END) == 0)
            break;
        batch = json_object_get(h, "entries");
        if (strcmp(type, MSG_ENTRIES) != 0 || !json_is_array(batch)) {
            r = files_lost(s, err, "protocol error: %s: unexpected '%s' message", s->peer, type);
            goto out;
        }
        json_array_foreach(batch, i, e) {
            const char *name = json_string_value(json_object_get(e, "name"));
            struct fs_meta m;

            /* A name is one component: never let a server steer a local
             * write (get -r) anywhere else. */
            if (!name || !*name || strchr(name, '/') || strcmp(name, ".") == 0 ||
                strcmp(name, "..") == 0) {
                r = files_lost(s, err, "protocol error: %s: bad name in a listing", s->peer);
                goto out;
            }
            r = files_parse_meta(s, e, &m, err);
            if (r < 0)
                goto out;
            /* A listing is held whole (to sort it): bound what a server
             * can make us hold. */
            if (json_array_size(all) >= FILES_LIST_MAX) {
                r = files_lost(s, err, "%s: more than %d entries in one directory", path,
                               FILES_LIST_MAX);
                goto out;
            }
            if (json_array_append(all, e) < 0) {
                r = files_lost(s, err, "out of memory");
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

int files_mkdir(struct session *s, const char *path, int parents, struct fs_error *err)
{
    json_t *req = json_pack("{s:s, s:s, s:b}", "type", MSG_MKDIR, "path", path, "parents", parents);

    return req ? request(s, req, MSG_OK, NULL, err) : bad_name(err);
}

int files_rm(struct session *s, const char *path, int recursive, struct fs_error *err)
{
    json_t *req = json_pack("{s:s, s:s, s:b}", "type", MSG_RM, "path", path,
                            "recursive", recursive);

    return req ? request(s, req, MSG_OK, NULL, err) : bad_name(err);
}
