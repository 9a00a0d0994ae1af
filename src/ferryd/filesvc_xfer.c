/*
 * filesvc_xfer.c - put and get on the session's loop (PROTOCOL.md 2.4).
 *
 * put: the body of each data frame is written to the upload's temporary
 * as the parser hands it over and hashed on the way; put-end's checksum
 * decides between rename and removal (fsops.c).  A put that asked for
 * acknowledgements ("ack_ms") hears how far it got while the bytes are
 * taken: the client's keepalive cannot see the megabytes queued in the
 * sockets being worked through otherwise (PROTOCOL.md 2.4, 2.7).
 *
 * get: a pump sends one data frame header, then the file range itself with
 * sendfile, hashing each slice just before it goes (from the page cache the
 * send is about to use).  The pump runs while the socket takes more, at
 * most PUMP_BUDGET bytes per turn, and otherwise waits for on_drain, so a
 * fast reader does not monopolise the loop and a slow one costs no memory.
 *
 * A resume has to hash bytes that are already there (the temporary's, or
 * the prefix a client claims to have) before anything else can happen;
 * that runs in HASH_SLICE steps from a zero-delay timer, so other
 * connections on the loop are served between steps.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ferry/ferry.h"
#include "audit.h"
#include "filesvc_int.h"
#include "monoclock.h"
#include "proto.h"

#define HASH_SLICE   (8u << 20)   /* bytes hashed per loop turn during a resume check */
#define SEND_SLICE   (1u << 20)   /* bytes hashed then sent at a time by the pump */
#define PUMP_BUDGET  (8u << 20)   /* bytes the pump sends before yielding the loop */

void filesvc_xfer_reset(struct filesvc *f, int keep_upload)
{
    ferry_timer_cancel(f->slicer);
    f->slicer = NULL;
    digest_free(f->digest);
    f->digest = NULL;
    if (f->up.fd >= 0)
        fsops_upload_abandon(&f->up, keep_upload && f->resume);
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
    free(f->path);
    f->path = NULL;
    if (f->dir)
        closedir(f->dir);
    f->dir = NULL;
    f->state = XFER_NONE;
    f->rx_data = 0;
    f->ack_ms = 0;
}

/* The transfer is over: release it (so a temporary is gone before the
 * client hears why), then send the one answer, msg (NULL: none). */
static int finish(struct filesvc *f, int keep_upload, json_t *msg)
{
    int r = 0;

    filesvc_xfer_reset(f, keep_upload);
    if (msg)
        r = filesvc_reply_send(f, msg);
    if (f->on_idle)
        f->on_idle(f->idle_arg);
    return r;
}

static json_t *error_msg(const char *code, const char *message)
{
    return json_pack("{s:s, s:s, s:s}", "type", MSG_ERROR, "code", code, "message", message);
}

/* Optional unsigned integer member; -1 when present but not one. */
static int get_u64(json_t *msg, const char *key, uint64_t max, uint64_t *out)
{
    json_t *v = json_object_get(msg, key);

    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > max)
        return -1;
    *out = (uint64_t)json_integer_value(v);
    return 1;
}

static int get_flag(json_t *msg, const char *key, int *out)
{
    json_t *v = json_object_get(msg, key);

    if (!v) {
        *out = 0;
        return 0;
    }
    if (!json_is_boolean(v))
        return -1;
    *out = json_is_true(v);
    return 0;
}

static int parse_checksum(json_t *msg, enum digest_alg *alg)
{
    json_t *v = json_object_get(msg, "checksum");

    *alg = DIGEST_XXH3_128;
    return v ? digest_parse(json_string_value(v), alg) : 0;
}

/* Run step() from a zero-delay timer until it says it is done (> 0). */
static void slice_cb(struct ferry_loop *loop, struct ferry_timer *t, void *arg);

static int start_slicing(struct filesvc *f)
{
    f->slicer = ferry_loop_timer(ferry_conn_loop(f->c), 0, slice_cb, f);
    return f->slicer ? 0 : -ENOMEM;
}

/* ---- put ---------------------------------------------------------------------- */

static int send_put_ready(struct filesvc *f)
{
    json_t *msg = json_pack("{s:s, s:I}", "type", MSG_PUT_READY, "offset", (json_int_t)f->pos);

    if (msg && f->pos > 0) {
        char hex[DIGEST_HEX_MAX];
        digest_hex(f->digest, hex);
        json_object_set_new(msg, "prefix", json_string(hex));
    }
    f->resume_at = f->pos;
    f->first_data = 1;
    f->state = XFER_PUT_DATA;
    f->ack_at = monoclock_ms();
    return filesvc_reply_send(f, msg);
}

/* A put-ack when the put asked for them and ack_ms has passed since the
 * last: the clock is read here, not the loop's (cached per turn), since
 * one turn may take a whole socket buffer of data to a slow disk. */
static int maybe_ack(struct filesvc *f)
{
    uint64_t now;

    if (f->ack_ms == 0)
        return 0;
    now = monoclock_ms();
    if (now - f->ack_at < f->ack_ms)
        return 0;
    f->ack_at = now;
    return filesvc_reply_send(f, json_pack("{s:s, s:I}", "type", MSG_PUT_ACK, "offset",
                                           (json_int_t)f->pos));
}

/* The put failed after it was accepted: say so once, drop the temporary,
 * and swallow the client's data until its put-end. */
static int put_failed(struct filesvc *f, const char *code, const char *message, int op_error)
{
    json_t *msg = op_error ? filesvc_reply_op_error_msg(f, f->path, op_error)
                           : error_msg(code, message);

    audit_file(f->who, "put", f->path, (int64_t)f->pos, "error",
               op_error ? strerror(-op_error) : message);
    f->op = NULL;   /* audited: the session's end is not another line */
    fsops_upload_abandon(&f->up, 0);
    int r = filesvc_reply_send(f, msg);
    f->state = XFER_PUT_FAILED;
    f->rx_data = 0;
    return r;
}

int filesvc_xfer_put(struct filesvc *f, json_t *msg, const char **complaint)
{
    const char *path = json_string_value(json_object_get(msg, "path"));
    uint64_t size = 0, mode = 0644, nsec = 0, ack_ms = 0;
    enum digest_alg alg;
    json_t *jm = json_object_get(msg, "mtime");
    int r;

    if (get_flag(msg, "stream", &f->stream) < 0) {
        *complaint = "put: \"stream\" must be true or false";
        return 1;
    }
    /* A stream's size is only known at put-end: it has none here. */
    if (f->stream ? json_object_get(msg, "filesize") != NULL
                  : get_u64(msg, "filesize", INT64_MAX, &size) != 1) {
        *complaint = f->stream ? "a streamed put has no \"filesize\" (put-end carries it)"
                               : "put needs a \"filesize\" (an integer from 0 to 2^63-1)";
        return 1;
    }
    if (get_u64(msg, "mode", 07777, &mode) < 0 || get_u64(msg, "mtime_nsec", 999999999, &nsec) < 0 ||
        (jm && !json_is_integer(jm)) || get_flag(msg, "resume", &f->resume) < 0 ||
        get_flag(msg, "fsync", &f->do_fsync) < 0 ||
        get_u64(msg, "ack_ms", PROTO_PUT_ACK_MAX_MS, &ack_ms) < 0) {
        *complaint = "put: \"mode\", \"mtime\", \"mtime_nsec\", \"resume\", \"fsync\" or "
                     "\"ack_ms\" is malformed";
        return 1;
    }
    if (f->stream && f->resume)
        return filesvc_reply_error(f, ERR_REQUEST, "a streamed put cannot be resumed");
    if (f->stream)
        size = INT64_MAX;   /* the bound until put-end says */
    if (parse_checksum(msg, &alg) < 0)
        return filesvc_reply_error(f, ERR_REQUEST, "unknown checksum (xxh3-128 or sha256)");
    f->mode = (mode_t)mode;
    f->has_mtime = jm != NULL;
    f->mtime_sec = jm ? (int64_t)json_integer_value(jm) : 0;
    f->mtime_nsec = (long)nsec;

    f->path = strdup(path);
    f->digest = digest_new(alg);
    if (!f->path || !f->digest) {
        filesvc_xfer_reset(f, 0);
        return -ENOMEM;
    }
    r = fsops_upload_open(f->root, path, f->resume, &f->up, &f->pos);
    if (r == 0 && f->pos > size)
        r = fsops_upload_restart(&f->up), f->pos = 0;
    if (r < 0) {
        r = filesvc_reply_op_error(f, path, r);
        filesvc_xfer_reset(f, 0);
        return r;
    }
    f->size = size;
    f->ack_ms = ack_ms == 0 ? 0 : ack_ms < PROTO_PUT_ACK_MIN_MS ? PROTO_PUT_ACK_MIN_MS : ack_ms;
    if (f->stream)
        ferry_log_debug("session %s: put %s (a stream)", ferry_conn_peer(f->c), FERRY_LOG_Q(path));
    else
        ferry_log_debug("session %s: put %s (%llu bytes%s)", ferry_conn_peer(f->c),
                        FERRY_LOG_Q(path), (unsigned long long)size, f->pos ? ", resuming" : "");
    if (f->pos == 0)
        return send_put_ready(f);
    /* Hash what the temporary holds, a slice per loop turn, then offer it. */
    f->hashed = 0;
    f->state = XFER_PUT_HASH;
    r = start_slicing(f);
    if (r < 0)
        filesvc_xfer_reset(f, 1);
    return r;
}

int filesvc_xfer_data(struct filesvc *f, json_t *msg, uint64_t body_size, const char **complaint)
{
    uint64_t offset;

    if (f->state == XFER_PUT_FAILED) {
        f->rx_data = 0;
        return 0;
    }
    if (f->state != XFER_PUT_DATA) {
        *complaint = "data outside a put";
        return 1;
    }
    if (get_u64(msg, "offset", INT64_MAX, &offset) != 1) {
        *complaint = "data needs an \"offset\"";
        return 1;
    }
    if (f->first_data && offset == 0 && f->pos > 0) {
        /* The client's bytes differ from the temporary's: start afresh. */
        int r = fsops_upload_restart(&f->up);
        if (r < 0)
            return put_failed(f, NULL, NULL, r);
        digest_reset(f->digest);
        f->pos = 0;
    }
    f->first_data = 0;
    if (offset != f->pos) {
        *complaint = "data offset does not follow on";
        return 1;
    }
    if (body_size > PROTO_DATA_SEGMENT || body_size > f->size - f->pos) {
        *complaint = "data frame over 16 MiB or past the put's size";
        return 1;
    }
    f->rx_data = body_size > 0;
    return 0;
}

int filesvc_xfer_body(struct filesvc *f, const uint8_t *chunk, size_t len)
{
    int r;

    if (!f->rx_data || f->state != XFER_PUT_DATA)
        return 0;
    r = fsops_upload_write(&f->up, chunk, len);
    if (r < 0)
        return put_failed(f, NULL, NULL, r);
    digest_update(f->digest, chunk, len);
    f->pos += len;
    return maybe_ack(f);
}

int filesvc_xfer_put_end(struct filesvc *f, json_t *msg, const char **complaint)
{
    const char *sum = json_string_value(json_object_get(msg, "checksum"));
    char mine[DIGEST_HEX_MAX];
    int abort_flag, r;

    if (f->state == XFER_PUT_FAILED)
        return finish(f, 0, NULL);   /* the error already answered the put */
    if (f->state != XFER_PUT_DATA) {
        *complaint = "put-end outside a put";
        return 1;
    }
    if (get_flag(msg, "abort", &abort_flag) < 0) {
        *complaint = "\"abort\" must be true or false";
        return 1;
    }
    if (abort_flag) {   /* kept for a later resume only if this put asked */
        audit_file(f->who, "put", f->path, (int64_t)f->pos, "abandoned",
                   NULL);
        return finish(f, 1, error_msg(ERR_REQUEST, "upload abandoned by the client"));
    }
    if (f->stream) {
        /* The stream's size, said now, must be what came. */
        uint64_t said;

        if (get_u64(msg, "filesize", INT64_MAX, &said) != 1 || said != f->pos) {
            *complaint = "a streamed put's put-end needs the \"filesize\" of the bytes sent";
            return 1;
        }
        f->size = said;
    }
    if (f->pos != f->size || !sum) {
        *complaint = "put-end needs every byte of the file and a \"checksum\"";
        return 1;
    }
    digest_hex(f->digest, mine);
    if (!digest_hex_equal(mine, sum)) {
        audit_file(f->who, "put", f->path, (int64_t)f->pos, "error",
                   "checksum mismatch, not committed");
        return finish(f, 0, error_msg(ERR_CHECKSUM, "checksum mismatch: the file was not saved"));
    }
    r = fsops_upload_commit(&f->up, f->mode, f->has_mtime ? &f->mtime_sec : NULL, f->mtime_nsec,
                            f->do_fsync);
    if (r < 0) {
        audit_file(f->who, "put", f->path, (int64_t)f->pos, "error",
                   strerror(-r));
        return finish(f, 0, filesvc_reply_commit_error_msg(f, f->path, r));
    }
    audit_file(f->who, "put", f->path, (int64_t)f->size, "ok", NULL);
    return finish(f, 0, json_pack("{s:s, s:I, s:s}", "type", MSG_PUT_OK, "filesize",
                                  (json_int_t)f->size, "checksum", mine));
}

/* ---- get ---------------------------------------------------------------------- */

static int send_get_ready(struct filesvc *f)
{
    json_t *msg = fsops_meta(&f->st);

    f->state = XFER_GET_SEND;
    f->hashed = f->frame_end = f->pos;
    if (!msg)
        return -ENOMEM;
    json_object_del(msg, "kind");
    json_object_set_new(msg, "type", json_string(MSG_GET_READY));
    json_object_set_new(msg, "offset", json_integer((json_int_t)f->pos));
    return filesvc_reply_send(f, msg);
}

/* Open path for reading only if it is a regular file: its type is looked
 * at through an O_PATH descriptor first, because merely opening a device
 * can have effects (a tape rewinds, a watchdog arms), and a FIFO would
 * wait for a writer.  The second open is checked to be the same file. */
static int open_regular(const struct fsroot *root, const char *path, int *fd, struct stat *st)
{
    struct stat first;
    int probe, r = fspath_open(root, path, O_PATH, 0, &probe);

    *fd = -1;
    if (r < 0)
        return r;
    if (fstat(probe, &first) < 0)
        r = -errno;
    close(probe);
    if (r == 0 && !S_ISREG(first.st_mode))
        r = S_ISDIR(first.st_mode) ? -EISDIR : -EINVAL;
    if (r == 0)
        r = fspath_open(root, path, O_RDONLY | O_NONBLOCK | O_NOCTTY, 0, fd);
    if (r == 0 && fstat(*fd, st) < 0)
        r = -errno;
    if (r == 0 && (st->st_dev != first.st_dev || st->st_ino != first.st_ino || !S_ISREG(st->st_mode)))
        r = -EAGAIN;   /* swapped between the two opens: let the client retry */
    if (r < 0 && *fd >= 0) {
        close(*fd);
        *fd = -1;
    }
    return r;
}

int filesvc_xfer_get(struct filesvc *f, json_t *msg, const char **complaint)
{
    const char *path = json_string_value(json_object_get(msg, "path"));
    const char *prefix = json_string_value(json_object_get(msg, "prefix"));
    enum digest_alg alg;
    uint64_t offset = 0;
    struct stat *st = &f->st;
    int r, has_offset = get_u64(msg, "offset", INT64_MAX, &offset);

    if (has_offset < 0 || (offset > 0 && (!prefix || strlen(prefix) >= DIGEST_HEX_MAX))) {
        *complaint = "get: \"offset\" must be an integer, with the \"prefix\" checksum of those bytes";
        return 1;
    }
    if (parse_checksum(msg, &alg) < 0)
        return filesvc_reply_error(f, ERR_REQUEST, "unknown checksum (xxh3-128 or sha256)");
    r = open_regular(f->root, path, &f->fd, st);
    if (r == 0 && !(f->path = strdup(path)))
        r = -ENOMEM;
    if (r == 0 && !(f->digest = digest_new(alg)))
        r = -ENOMEM;
    if (r < 0) {
        int e = r;
        filesvc_xfer_reset(f, 0);
        if (e == -ENOMEM)
            return e;
        if (e == -EINVAL)
            return filesvc_reply_send(f, json_pack("{s:s, s:s, s:s, s:s}", "type", MSG_ERROR,
                                                   "code", ERR_FS, "errno", "EINVAL", "message",
                                                   "not a regular file: only regular files "
                                                   "can be fetched"));
        return filesvc_reply_op_error(f, path, e);
    }
    f->size = (uint64_t)st->st_size;
    f->pos = 0;
    ferry_log_debug("session %s: get %s (%llu bytes)", ferry_conn_peer(f->c), FERRY_LOG_Q(path),
                    (unsigned long long)f->size);
    if (offset == 0 || offset > f->size) {
        r = send_get_ready(f);
        if (r == 0)
            filesvc_xfer_pump(f);
        return r;
    }
    /* Verify the client's prefix before trusting it. */
    snprintf(f->prefix, sizeof f->prefix, "%s", prefix);
    f->frame_end = offset;   /* where the prefix ends, while hashing */
    f->hashed = 0;
    f->state = XFER_GET_HASH;
    r = start_slicing(f);
    if (r < 0)
        filesvc_xfer_reset(f, 0);
    return r;
}

static int send_data_header(struct filesvc *f)
{
    uint64_t len = f->size - f->pos > PROTO_DATA_SEGMENT ? PROTO_DATA_SEGMENT : f->size - f->pos;
    json_t *h = json_pack("{s:s, s:I}", "type", MSG_DATA, "offset", (json_int_t)f->pos);
    uint8_t *head = NULL;
    size_t head_len = 0;
    int r;

    if (!h)
        return -ENOMEM;
    r = ferry_frame_encode(h, len, NULL, &head, &head_len);
    json_decref(h);
    if (r == 0)
        r = ferry_conn_write(f->c, head, head_len);
    free(head);
    if (r == 0)
        f->frame_end = f->pos + len;
    return r;
}

/* The end of a get: the checksum, unless the file was removed meanwhile. */
static void get_done(struct filesvc *f)
{
    char hex[DIGEST_HEX_MAX];
    struct stat st;
    json_t *msg;
    int fd, gone = 0;

    if (fstat(f->fd, &st) == 0 && st.st_nlink == 0) {
        int r = fspath_open(f->root, f->path, O_PATH | O_NOFOLLOW, 0, &fd);
        if (r == 0)
            close(fd);   /* replaced: the old version went out whole */
        gone = r == -ENOENT;
    }
    if (gone) {
        /* Unlinked and not replaced: the file the client asked for no
         * longer exists, whatever we managed to read of it. */
        msg = json_pack("{s:s, s:s, s:s, s:s}", "type", MSG_ERROR, "code", ERR_FS, "errno", "ENOENT",
                        "message", "the file was removed during the transfer");
        audit_file(f->who, "get", f->path, (int64_t)f->pos, "error",
                   "removed during the transfer");
    } else {
        digest_hex(f->digest, hex);
        msg = json_pack("{s:s, s:s}", "type", MSG_GET_END, "checksum", hex);
        audit_file(f->who, "get", f->path, (int64_t)f->size, "ok", NULL);
    }
    finish(f, 0, msg);
}

/* The file failed under us (it shrank, or a read failed): finish the frame
 * under way with zeros, then say why instead of get-end. */
static void get_failed(struct filesvc *f, int code)
{
    audit_file(f->who, "get", f->path, (int64_t)f->pos, "error",
               code == FERRY_ETRUNCATED ? "the file shrank" : strerror(-code));
    f->op = NULL;   /* audited: the session's end is not another line */
    f->fail_code = code;   /* reported once the padding is out */
    f->state = XFER_GET_PAD;
    filesvc_xfer_pump(f);
}

static void pad(struct filesvc *f)
{
    static const uint8_t zeros[64 * 1024];
    int code = f->fail_code;

    while (f->pos < f->frame_end) {
        size_t n = f->frame_end - f->pos > sizeof zeros ? sizeof zeros : (size_t)(f->frame_end - f->pos);
        if (ferry_conn_write_blocked(f->c))
            return;   /* on_drain brings us back */
        if (ferry_conn_write(f->c, zeros, n) < 0)
            return;   /* the connection is going */
        f->pos += n;
    }
    finish(f, 0, code == FERRY_ETRUNCATED ? error_msg(ERR_FS, "the file shrank during the transfer")
                                          : filesvc_reply_op_error_msg(f, f->path, code));
}

void filesvc_xfer_pump(struct filesvc *f)
{
    uint64_t budget = PUMP_BUDGET;

    if (f->state == XFER_GET_PAD) {
        pad(f);
        return;
    }
    while (f->state == XFER_GET_SEND) {
        ssize_t n;
        int r;

        if (f->pos == f->size) {
            get_done(f);
            return;
        }
        if (budget == 0) {
            ferry_conn_want_drain(f->c);
            return;
        }
        if (f->pos == f->frame_end && send_data_header(f) < 0)
            return;   /* the connection is going; on_close cleans up */
        if (f->hashed == f->pos) {
            r = digest_file_slice(f->digest, f->fd, &f->hashed, f->frame_end, SEND_SLICE);
            if (r < 0) {
                get_failed(f, r);
                return;
            }
        }
        n = ferry_conn_sendfile(f->c, f->fd, &f->pos, (size_t)(f->hashed - f->pos));
        if (n == -EAGAIN)
            return;   /* on_drain brings us back */
        if (n == 0) {
            get_failed(f, FERRY_ETRUNCATED);
            return;
        }
        if (n < 0) {
            audit_file(f->who, "get", f->path, (int64_t)f->pos, "error",
                       ferry_strerror((int)n));
            f->op = NULL;
            ferry_conn_abort(f->c, (int)n);
            return;
        }
        budget = (uint64_t)n >= budget ? 0 : budget - (uint64_t)n;
    }
}

/* ---- the long hashes of a resume --------------------------------------------- */

static void slice_cb(struct ferry_loop *loop, struct ferry_timer *t, void *arg)
{
    struct filesvc *f = arg;
    int fd = f->state == XFER_PUT_HASH ? f->up.fd : f->fd;
    uint64_t end = f->state == XFER_PUT_HASH ? f->pos : f->frame_end;
    int r = digest_file_slice(f->digest, fd, &f->hashed, end, HASH_SLICE);
    (void)loop;

    if (r == 0 && f->hashed < end) {
        ferry_timer_restart(t, 0);
        return;
    }
    ferry_timer_cancel(t);
    f->slicer = NULL;
    if (f->state == XFER_PUT_HASH) {
        if (r < 0) {
            /* The temporary cannot be read back: start it afresh. */
            if (fsops_upload_restart(&f->up) < 0) {
                finish(f, 0, filesvc_reply_op_error_msg(f, f->path, -EIO));
                return;
            }
            digest_reset(f->digest);
            f->pos = 0;
        }
        send_put_ready(f);
        return;
    }
    /* get: start at the client's offset only if its prefix is ours. */
    char mine[DIGEST_HEX_MAX];
    digest_hex(f->digest, mine);
    if (r == 0 && digest_hex_equal(mine, f->prefix)) {
        f->pos = end;
    } else {
        digest_reset(f->digest);
        f->pos = 0;
    }
    if (send_get_ready(f) == 0)
        filesvc_xfer_pump(f);
}
