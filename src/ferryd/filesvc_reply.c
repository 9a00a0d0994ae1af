/*
 * filesvc_reply.c - the file service's answers: a message, an error, and
 * the error for a failed operation on a path, which is where a code
 * becomes the protocol's "code"/"errno"/"message" (PROTOCOL.md 2.4).
 * Below both the requests (filesvc.c) and the transfers (filesvc_xfer.c).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ferry/ferry.h"
#include "audit.h"
#include "filesvc_int.h"
#include "proto.h"

/* The answer to a put whose temporary went away before its commit. */
#define UPLOAD_GONE_MESSAGE                                                              \
    "the upload's temporary file was removed or replaced on the server before the "     \
    "upload finished (something other than ferryd touched it; the server's log says "   \
    "which file); nothing was saved: send the file again"

int filesvc_reply_send(struct filesvc *f, json_t *msg)
{
    int r;

    if (!msg)
        return -ENOMEM;
    r = ferry_conn_write_frame(f->c, msg, NULL, 0);
    json_decref(msg);
    return r;
}

int filesvc_reply_error(struct filesvc *f, const char *code, const char *message)
{
    return filesvc_reply_send(f, json_pack("{s:s, s:s, s:s}", "type", MSG_ERROR, "code", code,
                                   "message", message));
}

int filesvc_reply_op_error(struct filesvc *f, const char *path, int code)
{
    json_t *msg = filesvc_reply_op_error_msg(f, path, code);

    /* A refused request: its audit line, with the reply's reason. */
    if (f->op)
        audit_file(f->who, f->op, path, -1, "error",
                   json_string_value(json_object_get(msg, "message")));
    return filesvc_reply_send(f, msg);
}

json_t *filesvc_reply_commit_error_msg(struct filesvc *f, const char *path, int code)
{
    json_t *msg;

    if (code != -ESTALE)
        return filesvc_reply_op_error_msg(f, path, code);
    /* fsops_upload_commit's ESTALE: not a stale NFS handle (what the
     * errno's own text says) but a temporary something else took away.
     * The message says so, and what to do, in words a client shows as
     * they are (PROTOCOL.md 2.4); it does not start with the path, which
     * the client names itself. */
    msg = json_pack("{s:s, s:s, s:s, s:s}", "type", MSG_ERROR, "code", ERR_FS, "errno", "ESTALE",
                    "message", UPLOAD_GONE_MESSAGE);
    ferry_log_debug("session %s: %s: %s", ferry_conn_peer(f->c), FERRY_LOG_Q(path),
                    UPLOAD_GONE_MESSAGE);
    return msg;
}

/* How many bytes of s (valid UTF-8) to show in at most max: never part of
 * a character, which would make the message invalid UTF-8, the JSON
 * unbuildable, and the session end over what is only an error. */
static int utf8_prefix(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);

    if (n > max)
        for (n = max; n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80; n--)
            ;
    return (int)n;
}

json_t *filesvc_reply_op_error_msg(struct filesvc *f, const char *path, int code)
{
    const char *errno_name;
    const char *kind = fsops_error_code(code, &errno_name);
    char message[512];
    json_t *msg;

    /* A refused path is never echoed: it may hold anything the client
     * chose to send.  A filesystem error names the (acceptable) path. */
    if (!errno_name)
        snprintf(message, sizeof message, "%s", app_strerror(code));
    else
        snprintf(message, sizeof message, "%.*s: %s", utf8_prefix(path, 400), path,
                 strerror(-code));
    msg = json_pack("{s:s, s:s, s:s}", "type", MSG_ERROR, "code", kind, "message", message);
    if (msg && errno_name)
        json_object_set_new(msg, "errno", json_string(errno_name));
    ferry_log_debug("session %s: %s", ferry_conn_peer(f->c), FERRY_LOG_Q(message));
    return msg;
}
