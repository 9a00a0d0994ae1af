/*
 * sessionsvc_reply.c - the replies every part of the session service
 * sends: a frame, a request error, and the protocol error that ends a
 * session (aborting its command, never cutting into a download's body).
 */
#include <errno.h>
#include <string.h>

#include "ferry/ferry.h"
#include "audit.h"
#include "sessionsvc_int.h"
#include "runner.h"
#include "filesvc.h"
#include "proto.h"

int session_send_msg(struct session *s, json_t *msg)
{
    int r;
    if (!msg)
        return -ENOMEM;
    r = ferry_conn_write_frame(s->c, msg, NULL, 0);
    json_decref(msg);
    return r;
}

int session_send_error(struct session *s, const char *code, const char *message)
{
    json_t *msg = json_pack("{s:s, s:s, s:s}", "type", MSG_ERROR, "code", code,
                            "message", message);

    /* A message that names what the client sent, cut to fit a buffer (a
     * spawn error naming a 600-byte argv[0]), can end inside a character:
     * not UTF-8, so json_pack refuses it.  It goes escaped (\xNN) rather
     * than not at all, which would end the session over a request error. */
    if (!msg) {
        char safe[1024];

        ferry_log_escape(safe, sizeof safe, message, strlen(message));
        msg = json_pack("{s:s, s:s, s:s}", "type", MSG_ERROR, "code", code, "message", safe);
    }
    return session_send_msg(s, msg);
}

/* A protocol error ends the session: say why, then close once it is sent. */
int session_protocol_error(struct session *s, const char *message)
{
    /* message is ours; any peer text in it was escaped (on_header). */
    ferry_log_info("session %s: protocol error: %s", ferry_conn_peer(s->c), message);
    if (!s->audited) {
        s->audited = 1;
        audit_session(&s->who, NULL, "denied", message);
    }
    if (filesvc_sending(s->files)) {
        /* A download's body is on the wire: a frame now would corrupt it. */
        ferry_conn_abort(s->c, -EPROTO);
        return 0;
    }
    session_send_error(s, ERR_PROTOCOL, message);
    if (s->exec) {
        runner_abort(s->exec);
        s->exec = NULL;
        audit_cmd_end(&s->cmd, &s->who, NULL, NULL);
    }
    json_decref(s->queued);   /* a request waiting for that command goes with it */
    s->queued = NULL;
    ferry_conn_close(s->c);
    return 0;
}
