/*
 * transfer_stdio.c - `-` as put's source or get's destination (transfer.h):
 * stdin uploaded as a stream whose size is only known at its end, and a
 * download written to stdout.
 *
 * The upload uses the streamed put of PROTOCOL.md 2.4: no "filesize" in
 * the request, data frames as stdin yields them, and the size in put-end
 * beside the checksum, so the server still verifies every byte and commits
 * the file atomically only when the whole stream arrived.
 *
 * The download cannot be committed atomically (stdout is not a file we
 * can rename): its bytes are written as they come, hashed on the way, and
 * a mismatch at get-end is an error and a non-zero exit, as a reader of a
 * pipe can still learn that what it read was bad.
 */
#include "transfer.h"

#include <errno.h>
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

/* ---- put - ---------------------------------------------------------------- */

/* Fill buf from stdin: up to len bytes, fewer only at end of input.  The
 * number read, or -errno. */
static ssize_t read_stdin(uint8_t *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = read(STDIN_FILENO, buf + got, len - got);

        if (n < 0 && errno == EINTR && !signals_interrupted)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

/* Send stdin as data frames until it ends.  0 with *size the bytes sent,
 * or with *stdin_err (-errno) when stdin failed: nothing is half-sent
 * then, as a frame goes only once its bytes are in hand.  Otherwise the
 * put is over: FERRY_EREMOTE or FERRY_ELOST (err says why), or -EINTR. */
static int send_stdin(struct transfer *x, struct client_session *s, uint64_t *size,
                      int *stdin_err, struct fs_error *err)
{
    uint64_t off = 0;

    *stdin_err = 0;
    for (;;) {
        ssize_t n = read_stdin(x->buf, x->buf_len);
        int r;

        if (n == -EINTR)
            return -EINTR;   /* a signal: the command stops */
        if (n <= 0 || (uint64_t)n > (uint64_t)INT64_MAX - off) {
            *stdin_err = n < 0 ? (int)n : n > 0 ? -EFBIG : 0;
            *size = off;
            return 0;
        }
        r = session_send_data_header(s, off, (uint64_t)n, err);
        if (r == 0)
            r = session_send_body(s, x->buf, (size_t)n, err);
        if (r == 0)
            r = transfer_check_incoming(s, err);
        if (r < 0)
            return r;
        digest_update(x->d, x->buf, (size_t)n);
        off += (uint64_t)n;
    }
}

void transfer_put_stdin(struct transfer *x, const char *remote)
{
    char sum[DIGEST_HEX_MAX];
    struct fs_error err = { 0 };
    struct client_session *s;
    const char *type;
    json_t *h = NULL;
    uint64_t body, size = 0;
    int ok = 1, stdin_err = 0, r;

    if (transfer_need_session(x) < 0)
        return;
    s = *x->sp;
    if (!s->put_stream) {
        transfer_report(x, "put", "-", "the server at %s is too old to take a stream of "
                        "unknown size (save it to a file and put that)", s->peer);
        return;
    }
    digest_reset(x->d);
    /* As a new file from cp: 0666 less the umask. */
    h = json_pack("{s:s, s:s, s:b, s:i, s:s, s:b}", "type", MSG_PUT, "path", remote, "stream", 1,
                  "mode", (int)(0666 & ~(unsigned)x->umask), "checksum", digest_name(x->o.alg),
                  "fsync", x->o.fsync);
    if (h && session_ask_put_acks(s, h) < 0) {
        json_decref(h);
        h = NULL;
    }
    r = session_send(s, h, &err);   /* NULL: "out of memory" */
    h = NULL;
    if (r == 0)
        r = session_recv(s, &h, &type, &body, &err);
    if (r == 0 && (strcmp(type, MSG_PUT_READY) != 0 || body != 0 ||
                   transfer_int_member(h, "offset", 0, 0, &ok) != 0 || !ok))
        r = session_lost(s, &err, "protocol error: %s: '%s' instead of put-ready", s->peer, type);
    json_decref(h);
    h = NULL;
    if (r < 0)
        goto failed;
    r = send_stdin(x, s, &size, &stdin_err, &err);
    if (r == FERRY_EREMOTE || (r == 0 && stdin_err)) {
        /* The server refused (its error was the put's answer), or stdin
         * failed and we give up (the server answers that it was
         * abandoned): either way put-end ends the put. */
        struct fs_error ignored;
        int sent = session_send(s, json_pack("{s:s, s:b}", "type", MSG_PUT_END, "abort", 1),
                                &ignored);

        if (r == FERRY_EREMOTE)
            goto failed_reported;
        if (sent == 0 && session_recv(s, &h, &type, &body, &ignored) == 0)
            json_decref(h);
        h = NULL;
        transfer_report(x, "put", "-", "stdin: %s", strerror(-stdin_err));
        return;
    }
    if (r < 0)
        goto failed;
    digest_hex(x->d, sum);
    r = session_send(s, json_pack("{s:s, s:s, s:I}", "type", MSG_PUT_END, "checksum", sum,
                                  "filesize", (json_int_t)size), &err);
    if (r == 0)
        r = session_recv(s, &h, &type, &body, &err);
    if (r == 0 && (strcmp(type, MSG_PUT_OK) != 0 || body != 0))
        r = session_lost(s, &err, "protocol error: %s: '%s' instead of put-ok", s->peer, type);
    if (r < 0)
        goto failed;
    if (!json_is_string(json_object_get(h, "checksum")) ||
        !digest_hex_equal(json_string_value(json_object_get(h, "checksum")), sum))
        transfer_report(x, "put", "-", "the server confirmed a different checksum");
    else
        transfer_done(x, "-", remote, size);
    json_decref(h);
    return;
failed:
    if (r == -EINTR) {
        (*x->sp)->broken = 1;   /* mid-frame: only a hang-up stops it */
        return;
    }
    if (r == FERRY_ELOST)
        transfer_prefer_server_error(*x->sp, &err);
failed_reported:
    transfer_report_remote(x, "put", "-", remote, &err);
}

/* ---- get ... - ------------------------------------------------------------- */

/* A download to stdout in flight. */
struct to_stdout {
    struct transfer *x;
    struct client_session *s;
    uint64_t off, size;
    int check_binary;       /* stdout is a terminal and --force was not given */
    int binary;             /* ... and a NUL byte came: stopped */
    int write_err;          /* -errno of a failed write to stdout */
    json_t *end;            /* get-end, once it came */
    struct progress *bar;   /* on stderr, unless stdout is the terminal too */
    int done, r;
    struct fs_error *err;
};

static void ts_finish(struct to_stdout *t, int r)
{
    if (t->done)
        return;
    t->done = 1;
    t->r = r;
    session_set_receiver(t->s, NULL, NULL);
    session_wake(t->s);
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w < 0 && errno == EINTR && !signals_interrupted)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void ts_header(struct to_stdout *t, json_t *h, uint64_t body)
{
    const char *type = json_string_value(json_object_get(h, "type"));
    int ok = 1;

    if (type && strcmp(type, MSG_ERROR) == 0) {
        ts_finish(t, session_remote_error(t->s, h, t->err));
    } else if (type && strcmp(type, MSG_GET_END) == 0) {
        t->end = json_incref(h);
        ts_finish(t, 0);
    } else if (!type || strcmp(type, MSG_DATA) != 0 ||
               (uint64_t)transfer_int_member(h, "offset", 0, INT64_MAX, &ok) != t->off || !ok ||
               body > t->size - t->off) {
        ts_finish(t, session_lost(t->s, t->err, "protocol error: %s: bad '%s' during a download",
                                  t->s->peer, type ? type : "?"));
    }
    json_decref(h);
}

static int ts_frame(struct client_session *s, struct ferry_frame_event *ev, void *arg)
{
    struct to_stdout *t = arg;
    int r;

    (void)s;
    if (t->done)
        return 0;
    if (ev->type == FERRY_FRAME_HEADER) {
        ts_header(t, ev->header, ev->body_size);
    } else if (ev->type == FERRY_FRAME_BODY && ev->chunk_len > 0) {
        /* curl's rule: a NUL byte means binary, which a terminal would
         * show as garbage (or obey as escape sequences). */
        if (t->check_binary && memchr(ev->chunk, 0, ev->chunk_len)) {
            t->binary = 1;
            ts_finish(t, session_lost(t->s, t->err, "binary output"));
            return 0;
        }
        digest_update(t->x->d, ev->chunk, ev->chunk_len);
        r = write_all(STDOUT_FILENO, ev->chunk, ev->chunk_len);
        if (r < 0) {
            t->write_err = r;
            ts_finish(t, session_lost(t->s, t->err, "stdout: %s", strerror(-r)));
            return 0;
        }
        t->off += ev->chunk_len;
        progress_update(t->bar, t->off);
    } else if (ev->type == FERRY_FRAME_ERROR) {
        ts_finish(t, session_lost(t->s, t->err, "protocol error: %s: %s", t->s->peer,
                                  ferry_strerror(ev->error)));
    }
    return 0;
}

void transfer_get_stdout(struct transfer *x, const char *remote_arg, const char *remote)
{
    char sum[DIGEST_HEX_MAX];
    struct fs_error err = { 0 };
    struct to_stdout t = { .x = x, .err = &err };
    struct client_session *s;
    const char *type;
    json_t *h = NULL;
    uint64_t body;
    int ok = 1, r;

    t.check_binary = isatty(STDOUT_FILENO) && !x->o.force;
    if (transfer_need_session(x) < 0)
        return;
    s = t.s = *x->sp;
    digest_reset(x->d);
    r = session_send(s, json_pack("{s:s, s:s, s:s}", "type", MSG_GET, "path", remote, "checksum",
                                  digest_name(x->o.alg)), &err);
    if (r == 0)
        r = session_recv(s, &h, &type, &body, &err);
    if (r == 0 && (strcmp(type, MSG_GET_READY) != 0 || body != 0))
        r = session_lost(s, &err, "protocol error: %s: '%s' instead of get-ready", s->peer, type);
    if (r == 0) {
        t.size = (uint64_t)transfer_int_member(h, "filesize", 0, INT64_MAX, &ok);
        if (transfer_int_member(h, "offset", 0, 0, &ok) != 0 || !ok)
            r = session_lost(s, &err, "protocol error: %s: bad get-ready", s->peer);
    }
    json_decref(h);
    if (r < 0)
        goto failed;
    if (!isatty(STDOUT_FILENO))
        t.bar = progress_start(remote_arg, t.size, 0);
    session_set_receiver(s, ts_frame, &t);
    while (!t.done) {
        if (s->gone) {
            ts_finish(&t, session_lost_gone(s, &err));
            break;
        }
        r = session_wait(s);
        if (r < 0 && !t.done)
            ts_finish(&t, r);
    }
    session_set_receiver(s, NULL, NULL);
    progress_end(t.bar);
    r = t.r;
    if (r < 0) {
        /* The rest of the file may still be coming: only a hang-up stops it. */
        s->broken = 1;
        if (s->conn)
            ferry_conn_abort(s->conn, 0);
        json_decref(t.end);
        if (t.binary)
            transfer_report(x, "get", remote_arg, "not writing binary output to a terminal "
                            "(redirect stdout, or use --force)");
        else if (t.write_err == -EPIPE)
            x->failed = 1;   /* the reader had enough (`| head`): nothing to say */
        else if (t.write_err)
            transfer_report(x, "get", remote_arg, "stdout: %s", strerror(-t.write_err));
        else
            goto failed;
        return;
    }
    digest_hex(x->d, sum);
    if (t.off != t.size)
        r = session_lost(s, &err, "protocol error: %s: get-end before the whole file", s->peer);
    else if (!json_is_string(json_object_get(t.end, "checksum")) ||
             !digest_hex_equal(json_string_value(json_object_get(t.end, "checksum")), sum))
        transfer_report(x, "get", remote_arg, "checksum mismatch: what was written to stdout "
                        "is not the server's file");
    else
        transfer_done(x, remote_arg, "-", t.size);
    json_decref(t.end);
    if (r == 0)
        return;
failed:
    if (r == -EINTR)
        (*x->sp)->broken = 1;
    else
        transfer_report_err(x, "get", remote_arg, &err);
}
