/*
 * sessionsvc_tty.c - the session service's terminal requests
 * (docs/PROTOCOL.md 2.8): an exec request's "tty" member, read into what
 * the runner needs to start the command on a pseudo-terminal, and the
 * "resize" message that follows the client's window.
 *
 * Everything wrong in them is a request error, not a protocol error: the
 * session goes on, and nothing else running is affected.
 */
#include <stdio.h>
#include <string.h>
#include <termios.h>

#include "proto.h"
#include "pty.h"
#include "runner.h"
#include "sessionsvc_int.h"
#include "ttymodes.h"

const char *sessionsvc_tty_parse(const json_t *tty, struct pty_spec *pty, const char **term,
                                 char *err, size_t errlen)
{
    const json_t *t = json_object_get(tty, "term");
    const json_t *modes = json_object_get(tty, "modes");
    const json_t *stderr_kind = json_object_get(tty, "stderr");
    struct termios scratch;

    if (!json_is_object(tty))
        return "bad terminal request: \"tty\" must be an object";
    if (ttysize_from_json(tty, &pty->size, err, errlen) < 0)
        return err;
    *term = "dumb";
    if (t) {
        if (!json_is_string(t) || !ttymodes_term_valid(json_string_value(t)))
            return "bad terminal request: \"term\" must be 1 to 64 of A-Z a-z 0-9 . _ + -";
        *term = json_string_value(t);
    }
    /* Checked here, so that garbage is refused before anything is made;
     * pty.c applies them over the new terminal's defaults. */
    memset(&scratch, 0, sizeof scratch);
    if (modes && ttymodes_apply(modes, &scratch, err, errlen) < 0)
        return err;
    pty->modes = modes;
    pty->stderr_pipe = 0;
    if (stderr_kind) {
        const char *k = json_string_value(stderr_kind);

        if (!k || (strcmp(k, "pty") != 0 && strcmp(k, "pipe") != 0))
            return "bad terminal request: \"stderr\" must be \"pty\" or \"pipe\"";
        pty->stderr_pipe = strcmp(k, "pipe") == 0;
    }
    return NULL;
}

int sessionsvc_handle_resize(struct session *s, json_t *msg)
{
    struct winsize ws;
    char err[160];
    int r;

    if (ttysize_from_json(msg, &ws, err, sizeof err) < 0)
        return session_send_error(s, ERR_REQUEST, err);
    /* No command, or one without a terminal: a resize that crossed the
     * end of the last one, which is nothing to complain about. */
    if (!s->exec || !s->tty)
        return 0;
    r = runner_resize(s->exec, &ws);
    if (r < 0)
        ferry_log_debug("session %s: resize: %s", ferry_conn_peer(s->c), ferry_strerror(r));
    return 0;
}
