/*
 * client_session.c - frames over an authenticated session, for the file
 * service's request/answer exchanges (client_session.h): sending, waiting
 * for an answer, reading or splicing a body, and the server's errors.
 */
#include "client_session.h"

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
#include "fdio.h"
#include "signals.h"

void client_session_close(struct client_session *s)
{
    if (!s)
        return;
    ferry_frame_parser_free(s->parser);
    ferry_transport_free(s->t);
    ferry_tls_free(s->tls);
    outq_free(&s->out);
    free(s);
}

int session_lost(struct client_session *s, struct fs_error *err, const char *fmt, ...)
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
static int remote_error(struct client_session *s, const json_t *h, struct fs_error *err)
{
    copy_member(err->code, sizeof err->code, h, "code");
    copy_member(err->errname, sizeof err->errname, h, "errno");
    copy_member(err->message, sizeof err->message, h, "message");
    if (strcmp(err->code, ERR_PROTOCOL) == 0 || strcmp(err->code, ERR_AUTH) == 0) {
        /* The server closes after these; say which it was. */
        char msg[sizeof err->message];

        snprintf(msg, sizeof msg, "%s", err->message);
        session_lost(s, err, "%s: %s", err->code[0] == 'p' ? "protocol error" :
                   "authentication failed", msg);
        return FERRY_ELOST;
    }
    return FERRY_EREMOTE;
}

/* ---- the socket ------------------------------------------------------------- */

/* Wait for events on the socket.  0 (revents in *got), -EINTR when a
 * signal asked us to stop, or FERRY_ELOST. */
static int wait_sock(struct client_session *s, short events, short *got, struct fs_error *err)
{
    struct pollfd pfd = { .fd = ferry_transport_fd(s->t), .events = events };

    /* TLS may hold input that poll() cannot see. */
    if ((events & POLLIN) && ferry_transport_pending(s->t)) {
        *got = POLLIN;
        return 0;
    }
    for (;;) {
        if (signals_interrupted)
            return -EINTR;
        if (poll(&pfd, 1, -1) >= 0)
            break;
        if (errno != EINTR)
            return session_lost(s, err, "poll: %s", strerror(errno));
    }
    *got = pfd.revents;
    return 0;
}

/* Read once into rbuf (making room first).  Returns the bytes read, 0 when
 * none were ready (non-blocking), or FERRY_ELOST. */
static ssize_t fill_once(struct client_session *s, struct fs_error *err)
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
        return session_lost(s, err, "connection closed by server");
    if (n < 0)
        return session_lost(s, err, "connection to %s lost: %s", s->peer, ferry_strerror((int)n));
    s->rlen += (size_t)n;
    return n;
}

static int flush_queue(struct client_session *s, struct fs_error *err)
{
    while (s->out.len > 0) {
        short got = 0;
        int r = outq_flush(&s->out, s->t);

        if (r < 0)
            return session_lost(s, err, "connection to %s lost: %s", s->peer, ferry_strerror(r));
        if (s->out.len == 0)
            break;
        r = wait_sock(s, POLLOUT, &got, err);
        if (r < 0)
            return r;
    }
    return 0;
}

int session_send_body(struct client_session *s, const void *p, size_t n, int *incoming,
                    struct fs_error *err)
{
    const uint8_t *b = p;

    if (s->broken)
        return session_lost(s, err, "connection to %s is closed", s->peer);
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
            return session_lost(s, err, "connection to %s lost: %s", s->peer,
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

int session_send(struct client_session *s, json_t *hdr, struct fs_error *err)
{
    uint8_t *enc = NULL;
    size_t len = 0;
    int r;

    if (!hdr)
        return session_lost(s, err, "out of memory");
    if (s->broken) {
        json_decref(hdr);
        return session_lost(s, err, "connection to %s is closed", s->peer);
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
        r = session_send_body(s, enc, len, NULL, err);
    free(enc);
    return r;
}

int session_send_data_header(struct client_session *s, uint64_t offset, uint64_t n,
                           struct fs_error *err)
{
    json_t *hdr = json_pack("{s:s, s:I}", "type", MSG_DATA, "offset", (json_int_t)offset);
    uint8_t *enc = NULL;
    size_t len = 0;
    int r;

    /* The codec sets "size" to the body that follows (n bytes, sent by the
     * caller); one header per 16 MiB, so its cost does not show. */
    if (!hdr)
        return session_lost(s, err, "out of memory");
    r = ferry_frame_encode(hdr, n, NULL, &enc, &len);
    json_decref(hdr);
    if (r < 0) {
        free(enc);
        return session_lost(s, err, "cannot encode a data frame: %s", ferry_strerror(r));
    }
    r = session_send_body(s, enc, len, NULL, err);
    free(enc);
    return r;
}

/* The file service's frames: data frames carry up to 16 MiB. */
static const struct ferry_frame_limits file_limits = {
    .max_header = PROTO_MAX_HEADER,
    .max_body = PROTO_DATA_SEGMENT,
};

/* Take one whole header out of rbuf through the frame parser, which keeps
 * a header split across reads.  1 when one was there, 0 if not. */
static int take_header(struct client_session *s, json_t **hdr, uint64_t *body, struct fs_error *err)
{
    ferry_frame_parser_set_limits(s->parser, &file_limits);
    while (s->rpos < s->rlen) {
        struct ferry_frame_event ev;
        size_t used = 0;
        int r = ferry_frame_parser_feed(s->parser, s->rbuf + s->rpos, s->rlen - s->rpos, &used,
                                        &ev);

        s->rpos += used;
        if (r == FERRY_EHDR_EMPTY || r == FERRY_EHDR_TOOBIG)
            return session_lost(s, err, "protocol error: %s: bad frame length", s->peer);
        if (r < 0)
            return session_lost(s, err, "protocol error: %s: %s", s->peer, ferry_strerror(r));
        if (r == FERRY_FRAME_HEADER) {
            *hdr = ev.header;
            *body = ev.body_size;
            s->body_left = ev.body_size;
            s->body_in_parser = 1;
            return 1;
        }
        if (r == FERRY_FRAME_NEED_MORE)
            break;
        /* FERRY_FRAME_END of the frame before: on to the next one. */
    }
    if (s->rpos == s->rlen)
        s->rpos = s->rlen = 0;
    return 0;
}

/* n bytes of the current frame's body, at p, were taken by the caller:
 * the parser counts them (it hands them back as one BODY piece, since
 * they are no more than it waits for), unless splicing took it out of
 * the body.  0 or FERRY_ELOST. */
static int body_taken(struct client_session *s, const uint8_t *p, size_t n,
                      struct fs_error *err)
{
    struct ferry_frame_event ev;
    size_t used = 0;
    int r;

    s->body_left -= n;
    if (!s->body_in_parser)
        return 0;
    r = ferry_frame_parser_feed(s->parser, p, n, &used, &ev);
    if (r != FERRY_FRAME_BODY || used != n || ev.chunk != p)
        return session_lost(s, err, "protocol error: %s: out of step in a body", s->peer);
    return 0;
}

/* Splicing moves body bytes past user space, where the parser cannot
 * count them: it is set at the frame's end (a boundary) at once, and the
 * body is counted in s->body_left alone from here on. */
static void body_detach(struct client_session *s)
{
    if (s->body_in_parser) {
        ferry_frame_parser_reset(s->parser);
        s->body_in_parser = 0;
    }
}

/* A taken header: typed, and an error turned into its code. */
static int classify(struct client_session *s, json_t **hdr, const char **type, uint64_t body,
                    struct fs_error *err)
{
    int r;

    *type = json_string_value(json_object_get(*hdr, "type"));
    if (!*type) {
        json_decref(*hdr);
        *hdr = NULL;
        return session_lost(s, err, "protocol error: %s: message without a type", s->peer);
    }
    if (strcmp(*type, MSG_ERROR) != 0)
        return 0;
    r = remote_error(s, *hdr, err);
    json_decref(*hdr);
    *hdr = NULL;
    *type = NULL;
    if (r == FERRY_EREMOTE && body > 0) {
        struct fs_error skip;

        if (session_skip_body(s, body, &skip) < 0)
            s->broken = 1;
    }
    return r;
}

int session_poll_header(struct client_session *s, json_t **hdr, const char **type, uint64_t *body,
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

int session_recv(struct client_session *s, json_t **hdr, const char **type, uint64_t *body,
               struct fs_error *err)
{
    *hdr = NULL;
    if (s->broken)
        return session_lost(s, err, "connection to %s is closed", s->peer);
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

ssize_t session_read_body(struct client_session *s, void *buf, size_t n, struct fs_error *err)
{
    if (n > s->body_left)
        n = (size_t)s->body_left;
    if (n == 0)
        return session_lost(s, err, "protocol error: %s: read past a body", s->peer);
    for (;;) {
        ssize_t got;
        short ev;
        int r;

        if (s->rpos < s->rlen) {
            size_t m = s->rlen - s->rpos < n ? s->rlen - s->rpos : n;

            memcpy(buf, s->rbuf + s->rpos, m);
            r = body_taken(s, s->rbuf + s->rpos, m, err);
            s->rpos += m;
            return r < 0 ? r : (ssize_t)m;
        }
        /* Nothing buffered: straight into the caller's buffer, which is
         * where a file's bytes should land anyway. */
        got = ferry_transport_read(s->t, buf, n);
        if (got > 0) {
            r = body_taken(s, buf, (size_t)got, err);
            return r < 0 ? r : got;
        }
        if (got == 0)
            return session_lost(s, err, "connection closed by server");
        if (got != -EAGAIN)
            return session_lost(s, err, "connection to %s lost: %s", s->peer,
                              ferry_strerror((int)got));
        r = wait_sock(s, POLLIN, &ev, err);
        if (r < 0)
            return r;
    }
}

int session_skip_body(struct client_session *s, uint64_t n, struct fs_error *err)
{
    uint8_t junk[16 * 1024];

    while (n > 0) {
        ssize_t got = session_read_body(s, junk, n < sizeof junk ? (size_t)n : sizeof junk, err);

        if (got < 0)
            return (int)got;
        n -= (uint64_t)got;
    }
    return 0;
}


/* ---- bodies straight into a file ------------------------------------------------ */

ssize_t session_recvfile_body(struct client_session *s, int fd, uint64_t off, size_t n,
                              int *local_err, struct fs_error *err)
{
    int r;

    if (s->broken)
        return session_lost(s, err, "connection to %s is closed", s->peer);
    if (n > s->body_left)
        n = (size_t)s->body_left;
    if (n == 0)
        return session_lost(s, err, "protocol error: %s: read past a body", s->peer);
    if (s->rpos < s->rlen) {
        /* What arrived with the header is written as it is. */
        size_t m = s->rlen - s->rpos < n ? s->rlen - s->rpos : n;

        r = fdio_pwrite_all(fd, s->rbuf + s->rpos, m, off, &signals_interrupted);
        if (r < 0) {
            *local_err = r;
            return r == -EINTR ? -EINTR : session_lost(s, err, "%s", strerror(-r));
        }
        r = body_taken(s, s->rbuf + s->rpos, m, err);
        s->rpos += m;
        return r < 0 ? r : (ssize_t)m;
    }
    if (s->no_recvfile)
        return 0;
    for (;;) {
        uint64_t pos = off;
        int file_err = 0;
        ssize_t got = ferry_transport_recvfile(s->t, fd, &pos, n, &file_err);
        short ev;

        if (got > 0) {
            /* The bytes went around the parser: the body is counted here
             * alone from now on. */
            body_detach(s);
            s->body_left -= (uint64_t)got;
            return got;
        }
        if (got == FERRY_EUNSUPPORTED) {
            s->no_recvfile = 1;   /* nothing was taken: the caller reads instead */
            return 0;
        }
        if (file_err < 0) {
            /* The server is still sending: only a hang-up stops it. */
            *local_err = file_err;
            return session_lost(s, err, "%s", strerror(-file_err));
        }
        if (got == 0)
            return session_lost(s, err, "connection closed by server");
        if (got != -EAGAIN)
            return session_lost(s, err, "connection to %s lost: %s", s->peer,
                                ferry_strerror((int)got));
        r = wait_sock(s, POLLIN, &ev, err);
        if (r < 0)
            return r;
    }
}
