/*
 * sessionsvc.c - the session service, ferryd's side of an authenticated
 * session: the handshake, then exec requests with streamed output, stdin,
 * signals and a session directory (the command runner, runner.h), and the
 * file service's requests, which filesvc.c carries out (docs/PROTOCOL.md
 * section 2).
 *
 * One event-style handler serves every model: under --model fork the
 * framework runs it on a private loop in the connection's own process.
 * A session runs at most one command at a time; its output is forwarded as
 * it is read and its reading pauses whenever the client falls behind, and
 * reading the client pauses whenever the command falls behind on stdin, so
 * memory stays bounded on both sides whatever the volume.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "ferry/ferry.h"
#include "audit.h"
#include "auth.h"
#include "daemon.h"
#include "sessionsvc.h"
#include "sessionsvc_int.h"
#include "tlsconf.h"
#include "runner.h"
#include "filesvc.h"
#include "launch.h"
#include "proto.h"
#include "pty.h"

/* Tell the client why the connection closes, then close once that is
 * sent (PROTOCOL.md 2.7).  Not while a download's body is on the wire:
 * a frame there would corrupt it (the session is not idle then); not to a
 * peer that has not said hello (the server never speaks first). */
static void close_saying(struct session *s, const char *reason, const char *message)
{
    if (s->state != AWAIT_HELLO && !filesvc_sending(s->files))
        (void)session_send_msg(s, json_pack("{s:s, s:s, s:s}", "type", MSG_CLOSING, "reason", reason,
                                    "message", message));
    ferry_conn_close(s->c);
}

/* Something happened that makes the session not idle. */
static void touch(struct session *s)
{
    s->last_active = ferry_loop_now(ferry_conn_loop(s->c));
}

/* Idle means idle: a running command (however quiet) or a transfer in
 * flight keeps the session; keepalive pings do not (on_header). */
static void on_idle_timer(struct ferry_loop *loop, struct ferry_timer *t, void *arg)
{
    struct session *s = arg;
    uint64_t idle = (uint64_t)s->cfg->idle_timeout_ms;
    uint64_t quiet;
    char why[96];

    if (s->exec || filesvc_busy(s->files))
        touch(s);
    quiet = ferry_loop_now(loop) - s->last_active;
    if (quiet < idle) {
        ferry_timer_restart(t, idle - quiet);
        return;
    }
    ferry_log_info("session %s: idle for %llu ms, closing", ferry_conn_peer(s->c),
                   (unsigned long long)quiet);
    snprintf(why, sizeof why, "idle for %g s (the server's --idle-timeout)",
             s->cfg->idle_timeout_ms / 1000.0);
    close_saying(s, CLOSE_IDLE, why);
}

/* ---- the command's side ------------------------------------------------------- */

static int on_output(void *arg, int stream, const uint8_t *data, size_t len)
{
    struct session *s = arg;
    json_t *h = json_pack("{s:s}", "type", stream == 1 ? MSG_STDOUT : MSG_STDERR);
    int r;

    if (!h)
        return -ENOMEM;
    r = ferry_conn_write_frame(s->c, h, data, len);
    json_decref(h);
    if (r < 0)
        return r;
    /* The client is behind: let the pipe fill and the command block,
     * rather than queue its output here. on_drain resumes. */
    if (ferry_conn_write_blocked(s->c))
        runner_pause_output(s->exec);
    return 0;
}

/* Output the client gets straight from the command's pipe: spliced into
 * the socket in plaintext (no copy here); FERRY_EUNSUPPORTED under TLS,
 * and the runner reads it for on_output instead. */
static int on_output_pipe(void *arg, int stream, int fd, size_t len)
{
    struct session *s = arg;
    json_t *h = json_pack("{s:s}", "type", stream == 1 ? MSG_STDOUT : MSG_STDERR);
    int r;

    if (!h)
        return -ENOMEM;
    r = ferry_conn_write_frame_from_pipe(s->c, h, fd, len);
    json_decref(h);
    if (r == 0 && ferry_conn_write_blocked(s->c))
        runner_pause_output(s->exec);
    return r;
}

/* Acknowledge the stdin the command has consumed (or that was dropped
 * because it closed its stdin), once a quarter of the window has gone or
 * everything has: the client then sends more. */
static int ack_stdin(struct session *s)
{
    uint64_t pending = s->exec ? runner_stdin_pending(s->exec) : 0;
    uint64_t consumed = s->stdin_received - pending;
    uint64_t fresh = consumed - s->stdin_acked;

    /* On a terminal, keystrokes: an ack for each would double the frames
     * of an interactive session, and put a write ahead of the echo; per
     * quarter of the window is enough to keep the client sending. */
    if (fresh == 0 || ((pending > 0 || s->tty) && fresh < PROTO_STDIN_WINDOW / 4))
        return 0;
    s->stdin_acked = consumed;
    return session_send_msg(s, json_pack("{s:s, s:I}", "type", MSG_STDIN_ACK, "bytes", (json_int_t)fresh));
}

static int handle_exec(struct session *s, json_t *msg);

/* The request that waited for the command just ended, now. */
static void start_queued(struct session *s)
{
    json_t *msg = s->queued;
    int r;

    if (!msg)
        return;
    s->queued = NULL;
    r = handle_exec(s, msg);
    json_decref(msg);
    if (r < 0) {
        ferry_log_info("session %s: cannot start the waiting command: %s", ferry_conn_peer(s->c),
                       ferry_strerror(r));
        ferry_conn_close(s->c);
    }
}

static void on_exit_cb(void *arg, const struct runner_result *res)
{
    struct session *s = arg;
    json_t *msg;

    if (res->signaled)
        msg = json_pack("{s:s, s:i, s:b}", "type", MSG_EXIT, "signal", res->signal, "core", res->core);
    else
        msg = json_pack("{s:s, s:i}", "type", MSG_EXIT, "status", res->status);
    if (msg && res->timed_out)
        json_object_set_new(msg, "timeout", json_true());
    ferry_log_debug("session %s: command %d ended (%s %d%s)", ferry_conn_peer(s->c),
                    (int)runner_pid(s->exec), res->signaled ? "signal" : "status",
                    res->signaled ? res->signal : res->status, res->timed_out ? ", timed out" : "");
    audit_cmd_end(&s->cmd, &s->who, res, NULL);
    s->last_failed = res->signaled || res->status != 0;
    session_send_msg(s, msg);
    runner_free(s->exec);
    s->exec = NULL;
    s->tty = 0;
    touch(s);             /* idle from the command's end on */
    if (s->rx == RX_STDIN)
        s->rx = RX_DISCARD;   /* the rest of a stdin frame in flight has nowhere to go */
    if (s->stop_when_idle && !filesvc_busy(s->files)) {
        close_saying(s, CLOSE_SHUTDOWN, "the server is shutting down");
        return;
    }
    start_queued(s);
}

/* "rest": nothing of this session outlives the frames answered so far
 * (no command, no transfer, the first directory), so that a connection
 * master may hand it to another command (PROTOCOL.md 2.7, 2.9). */
static int send_pong(struct session *s)
{
    return session_send_msg(s, json_pack("{s:s, s:b}", "type", MSG_PONG, "rest",
                                         !s->exec && !filesvc_busy(s->files) && !s->cwd));
}

/* A transfer ended: the pings that came during a download are answered;
 * a stopping server may now close the session. */
static void on_files_idle(void *arg)
{
    struct session *s = arg;
    touch(s);
    for (; s->pongs_owed > 0; s->pongs_owed--)
        (void)send_pong(s);
    if (s->stop_when_idle && !s->exec)
        close_saying(s, CLOSE_SHUTDOWN, "the server is shutting down");
}

/* Both: the command consumed stdin, so the window may reopen. */
static void on_stdin_consumed(void *arg)
{
    ack_stdin(arg);
}

static const struct runner_ops runner_ops = {
    .on_output = on_output,
    .on_output_pipe = on_output_pipe,
    .on_exit = on_exit_cb,
    .on_stdin_drained = on_stdin_consumed,
    .on_stdin_progress = on_stdin_consumed,
};

/* ---- requests ------------------------------------------------------------------ */

static int signal_number(const char *name)
{
    static const struct { const char *name; int sig; } table[] = {
        { "INT", SIGINT }, { "TERM", SIGTERM }, { "HUP", SIGHUP },
        { "QUIT", SIGQUIT }, { "KILL", SIGKILL },
    };
    for (size_t i = 0; name && i < sizeof table / sizeof table[0]; i++)
        if (strcmp(name, table[i].name) == 0)
            return table[i].sig;
    return 0;
}

static int env_name_valid(const char *name)
{
    if (!(*name == '_' || (*name >= 'A' && *name <= 'Z') || (*name >= 'a' && *name <= 'z')))
        return 0;
    for (const char *p = name + 1; *p; p++)
        if (!(*p == '_' || (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
            return 0;
    return 1;
}

/* Everything an exec request owns until the command is started. */
struct exec_request {
    const char *bad_request;    /* set: answer with a "request" error */
    char **argv;
    char **env;
    size_t nenv;
    char *cwd;
    struct pty_spec pty;        /* "tty": the terminal asked for */
    const char *term;           /* ... its TERM (borrowed from the message) */
    char tty_err[160];          /* ... what is wrong with it */
};

static void exec_request_free(struct exec_request *q)
{
    free(q->argv);
    for (size_t i = 0; i < q->nenv; i++)
        free(q->env[i]);
    free(q->env);
    free(q->cwd);
}

/* Fill q and spec from the message; returns NULL or a protocol complaint. */
static const char *parse_exec(struct session *s, json_t *msg, struct exec_request *q,
                              struct runner_spec *spec)
{
    json_t *argv = json_object_get(msg, "argv");
    json_t *shell = json_object_get(msg, "shell");
    json_t *cwd = json_object_get(msg, "cwd");
    json_t *env = json_object_get(msg, "env");
    json_t *timeout = json_object_get(msg, "timeout");
    json_t *in = json_object_get(msg, "stdin");
    json_t *login = json_object_get(msg, "login");
    json_t *tty = json_object_get(msg, "tty");

    if (login && !json_is_boolean(login))
        return "\"login\" must be true or false";
    if (json_is_true(login)) {
        if (argv || shell)
            return "exec needs exactly one of \"argv\", \"shell\" and \"login\"";
        spec->login = 1;
    } else if (!argv == !shell) {
        return "exec needs exactly one of \"argv\", \"shell\" and \"login\"";
    } else if (shell) {
        if (!json_is_string(shell) || json_string_length(shell) == 0)
            return "\"shell\" must be a non-empty string";
        spec->shell = json_string_value(shell);
    } else {
        size_t n = json_is_array(argv) ? json_array_size(argv) : 0;
        if (n == 0 || n > PROTO_MAX_ARGS)
            return "\"argv\" must be an array of 1 to 4096 strings";
        q->argv = calloc(n + 1, sizeof *q->argv);
        if (!q->argv)
            return "out of memory";
        for (size_t i = 0; i < n; i++) {
            json_t *a = json_array_get(argv, i);
            if (!json_is_string(a))
                return "\"argv\" must be an array of strings";
            q->argv[i] = (char *)json_string_value(a);
        }
        if (q->argv[0][0] == '\0')
            return "argv[0] must not be empty";
        spec->argv = q->argv;
    }
    if (cwd) {
        if (!json_is_string(cwd))
            return "\"cwd\" must be a string";
        q->cwd = sessionsvc_path(s, json_string_value(cwd));
        if (!q->cwd)
            return "out of memory";
        spec->cwd = q->cwd;
    } else {
        spec->cwd = s->cwd;
    }
    if (env) {
        const char *name;
        json_t *value;
        if (!json_is_object(env))
            return "\"env\" must be an object of strings";
        q->env = calloc(json_object_size(env) + 1, sizeof *q->env);
        if (!q->env)
            return "out of memory";
        json_object_foreach(env, name, value) {
            if (!json_is_string(value))
                return "\"env\" values must be strings";
            if (!env_name_valid(name)) {
                /* Well-formed, just not doable: the session goes on. */
                q->bad_request = "bad environment variable name (names match [A-Za-z_][A-Za-z0-9_]*)";
                return NULL;
            }
            if (asprintf(&q->env[q->nenv], "%s=%s", name, json_string_value(value)) < 0)
                return "out of memory";
            q->nenv++;
        }
        spec->env = q->env;
    }
    if (timeout) {
        double t = json_number_value(timeout);
        if (!json_is_number(timeout) || !(t > 0) || t > 1e9)
            return "\"timeout\" must be a number of seconds > 0";
        spec->timeout_ms = (uint64_t)(t * 1000.0);
        if (spec->timeout_ms == 0)
            spec->timeout_ms = 1;
    }
    if (in && !json_is_boolean(in))
        return "\"stdin\" must be true or false";
    spec->stdin_pipe = in ? json_is_true(in) : 1;
    if (tty) {
        /* Well-formed JSON with a bad terminal in it: a request error. */
        q->bad_request = sessionsvc_tty_parse(tty, &q->pty, &q->term, q->tty_err, sizeof q->tty_err);
        if (!q->bad_request)
            spec->pty = &q->pty;
    }
    return NULL;
}

/* Add one NAME=VALUE to the request's environment (after the client's,
 * so it wins). */
static int env_append(struct exec_request *q, const char *name, const char *value)
{
    char **grown = realloc(q->env, (q->nenv + 2) * sizeof *q->env);

    if (!grown)
        return -ENOMEM;
    q->env = grown;
    if (asprintf(&q->env[q->nenv], "%s=%s", name, value) < 0)
        return -ENOMEM;
    q->env[++q->nenv] = NULL;
    return 0;
}

#define ORIGINAL_VAR "FERRY_ORIGINAL_COMMAND="

/* command= in the keys file: run that instead, as ssh does, with what the
 * client asked for in FERRY_ORIGINAL_COMMAND (argv joined by spaces).  The
 * client's environment and directory are dropped: either could steer the
 * forced command (BASH_ENV, a Makefile where it runs). */

static int force_command(struct session *s, struct exec_request *q, struct runner_spec *spec)
{
    size_t len = sizeof ORIGINAL_VAR;
    char *orig;

    if (spec->shell) {
        len += strlen(spec->shell);
    } else if (q->argv) {
        for (size_t i = 0; q->argv[i]; i++)
            len += strlen(q->argv[i]) + 1;
    }
    orig = malloc(len);
    if (!orig)
        return -ENOMEM;
    strcpy(orig, ORIGINAL_VAR);
    if (spec->shell) {
        strcat(orig, spec->shell);
    } else if (q->argv) {       /* a login shell asked for: "" */
        for (size_t i = 0; q->argv[i]; i++) {
            if (i)
                strcat(orig, " ");
            strcat(orig, q->argv[i]);
        }
    }
    for (size_t i = 0; i < q->nenv; i++)
        free(q->env[i]);
    free(q->env);
    q->env = calloc(2, sizeof *q->env);
    if (!q->env) {
        q->nenv = 0;
        free(orig);
        return -ENOMEM;
    }
    q->env[0] = orig;
    q->nenv = 1;
    spec->env = q->env;
    spec->shell = s->opts->command;
    spec->argv = NULL;
    spec->login = 0;
    spec->cwd = NULL;
    return 0;
}

static int handle_exec(struct session *s, json_t *msg)
{
    struct exec_request q = { 0 };
    struct runner_spec spec = { 0 };
    char err[512];
    const char *complaint;
    int r;

    if (s->exec && s->tty && json_object_get(msg, "tty"))
        return session_send_error(s, ERR_BUSY, "a terminal session is already running on this "
                                               "session");
    /* One request without stdin may wait for the running command, so a
     * client that sends it ahead has it started the moment the command
     * ends (PROTOCOL.md 2.2); it is checked when it starts. */
    if (s->exec && !s->queued && json_is_false(json_object_get(msg, "stdin"))) {
        s->queued = json_incref(msg);
        return 0;
    }
    if (s->exec || filesvc_busy(s->files))
        return session_send_error(s, ERR_BUSY, s->exec ? "a command is already running on this session"
                                               : "a transfer is in progress on this session");
    /* A script that stops at its first failure sent this ahead on the
     * condition that the command before it succeeds. */
    if (s->last_failed && json_is_true(json_object_get(msg, "only_after_success")))
        return session_send_msg(s, json_pack("{s:s}", "type", MSG_SKIPPED));
    s->last_failed = 1;   /* until it exits 0 */
    if (s->opts->flags & (KEYOPT_FILES_ONLY | KEYOPT_READ_ONLY)) {
        audit_denied(&s->who, "exec", NULL, "files-only or read-only key");
        return session_send_error(s, ERR_DENIED, "this key may not run commands (files-only or read-only "
                                         "in ferryd's keys file)");
    }
    complaint = parse_exec(s, msg, &q, &spec);
    if (complaint || q.bad_request) {
        exec_request_free(&q);
        return complaint ? session_protocol_error(s, complaint) : session_send_error(s, ERR_REQUEST, q.bad_request);
    }
    if ((s->opts->command[0] && force_command(s, &q, &spec) < 0) ||
        (spec.pty && env_append(&q, "TERM", q.term) < 0)) {
        exec_request_free(&q);
        return -ENOMEM;
    }
    if (spec.pty)
        spec.env = q.env;
    /* Looked up for the session's first command and kept, as sshd does at
     * login (without memory for it, each command looks it up). */
    if (!s->account)
        (void)launch_account_load(&s->account);
    spec.account = s->account;
    s->stdin_received = s->stdin_acked = 0;
    r = runner_start(ferry_conn_loop(s->c), &spec, &runner_ops, s, &s->exec, err, sizeof err);
    static char *const login_argv[] = { "(login shell)", NULL };
    char *const *shown = spec.login ? login_argv : spec.argv;

    if (r == 0)
        ferry_log_debug("session %s: started %d%s: %s", ferry_conn_peer(s->c), (int)runner_pid(s->exec),
                        spec.pty ? " on a terminal" : "", FERRY_LOG_Q(spec.shell ? spec.shell : shown[0]));
    s->tty = r == 0 && spec.pty;
    /* The audit record outlives the request (its line is written at the
     * end); without memory for it the command is not run unrecorded. */
    /* Under command=, the line shows what ran and what was asked for: an
     * admin reading the trail sees what the key's holder tried. */
    int ra = audit_cmd_begin(&s->cmd, shown, spec.shell, spec.cwd ? spec.cwd : sessionsvc_home_dir(),
                             s->opts->command[0] ? q.env[0] + strlen(ORIGINAL_VAR) : NULL,
                             r == 0 ? runner_pid(s->exec) : 0);
    s->cmd.tty = spec.pty != NULL;
    exec_request_free(&q);
    if (r == 0 && ra < 0) {
        runner_abort(s->exec);
        s->exec = NULL;
        return ra;
    }
    if (r == 0)
        return 0;
    s->exec = NULL;
    audit_cmd_end(&s->cmd, &s->who, NULL, err);
    if (r == FERRY_ECWD || r == -EINVAL)
        return session_send_error(s, ERR_REQUEST, err);
    /* As a shell would: 127 when there is no such command, 126 when it
     * cannot be run. */
    int status = r == -ENOENT ? 127 : 126;
    r = session_send_error(s, ERR_SPAWN, err);
    if (r == 0)
        r = session_send_msg(s, json_pack("{s:s, s:i}", "type", MSG_EXIT, "status", status));
    return r;
}

/* ---- dispatch ------------------------------------------------------------------- */

static int on_header(struct session *s, json_t *msg, uint64_t body_size)
{
    const char *type = json_string_value(json_object_get(msg, "type"));
    char complaint[160];

    if (!type)
        return session_protocol_error(s, "message without a \"type\"");
    if (body_size > 0 && (s->state != READY || (strcmp(type, MSG_STDIN) != 0 &&
                                                 strcmp(type, MSG_DATA) != 0)))
        return session_protocol_error(s, "only stdin and data messages carry a body");

    if (s->state == AWAIT_HELLO) {
        if (strcmp(type, MSG_HELLO) != 0)
            return session_protocol_error(s, "expected a hello message first");
        return sessionsvc_handle_hello(s, msg);
    }
    if (s->state == AWAIT_AUTH) {
        if (strcmp(type, MSG_AUTH) != 0)
            return session_protocol_error(s, "expected an auth message");
        return sessionsvc_handle_auth(s, msg);
    }
    /* A keepalive is answered in every state after authentication, also
     * during a download (whose data frames then answer it), and is not
     * activity: it keeps no idle session open. */
    if (strcmp(type, MSG_PING) == 0) {
        if (body_size > 0)
            return session_protocol_error(s, "a ping carries no body");
        if (filesvc_sending(s->files)) {
            /* Answered after get-end: one pong a ping, so that whoever
             * counts them (a connection master) is not thrown off. */
            if (s->pongs_owed < PONGS_OWED_MAX)
                s->pongs_owed++;
            return 0;
        }
        return send_pong(s);
    }
    touch(s);
    if (filesvc_sending(s->files))
        return session_protocol_error(s, "a request during a download (wait for get-end)");
    if (strcmp(type, MSG_EXEC) == 0)
        return handle_exec(s, msg);
    if (filesvc_handles(type)) {
        const char *why = NULL;
        int r;
        if (s->exec)
            return session_send_error(s, ERR_BUSY, "a command is running on this session");
        const char *path = json_string_value(json_object_get(msg, "path"));
        if (s->opts->command[0]) {
            audit_denied(&s->who, type, path ? path : "", "forced command key");
            return session_send_error(s, ERR_DENIED, "this key may only run its forced command "
                                             "(command= in ferryd's keys file)");
        }
        if ((s->opts->flags & KEYOPT_READ_ONLY) && (strcmp(type, MSG_PUT) == 0 ||
                                                   strcmp(type, MSG_MKDIR) == 0 ||
                                                   strcmp(type, MSG_RM) == 0)) {
            audit_denied(&s->who, type, path ? path : "", "read-only key");
            return session_send_error(s, ERR_DENIED, "this key is read-only (read-only in ferryd's "
                                             "keys file)");
        }
        r = filesvc_on_header(s->files, type, msg, body_size, &why);
        if (r == 1)
            return session_protocol_error(s, why);
        if (r == 0 && body_size > 0)
            s->rx = RX_FILE;
        return r;
    }
    if (strcmp(type, MSG_STDIN) == 0) {
        if (body_size > PROTO_MAX_CHUNK)
            return session_protocol_error(s, "stdin chunk over 256 KiB");
        s->rx = s->exec ? RX_STDIN : RX_DISCARD;
        return 0;
    }
    if (strcmp(type, MSG_STDIN_EOF) == 0) {
        if (s->exec)
            runner_close_stdin(s->exec);
        return 0;
    }
    if (strcmp(type, MSG_SIGNAL) == 0) {
        int sig = signal_number(json_string_value(json_object_get(msg, "signal")));
        if (!sig)
            return session_protocol_error(s, "unknown signal (INT, TERM, HUP, QUIT or KILL)");
        if (s->exec)
            runner_signal(s->exec, sig);
        return 0;
    }
    if (strcmp(type, MSG_RESIZE) == 0)
        return sessionsvc_handle_resize(s, msg);
    if (strcmp(type, MSG_CHDIR) == 0) {
        if (filesvc_busy(s->files))
            return session_send_error(s, ERR_BUSY, "a transfer is in progress on this session");
        return sessionsvc_handle_chdir(s, msg);
    }
    if (strcmp(type, MSG_CD_NAMES) == 0)
        return sessionsvc_handle_cd_names(s, msg);
    /* The type is the peer's: escaped (and cut) before it reaches the log. */
    snprintf(complaint, sizeof complaint, "unknown message type \"%s\"",
             ferry_log_escape((char[72]){ 0 }, 72, type, strlen(type)));
    return session_protocol_error(s, complaint);
}

static int on_body(struct session *s, const uint8_t *chunk, size_t len)
{
    if (s->rx == RX_FILE)
        return filesvc_on_body(s->files, chunk, len);
    if (s->rx != RX_STDIN || !s->exec)
        return 0;
    if (s->stdin_received + len - s->stdin_acked > PROTO_STDIN_WINDOW)
        return session_protocol_error(s, "stdin sent past the flow-control window");
    s->stdin_received += len;
    /* -EPIPE: the command no longer reads stdin; its input is dropped
     * (and acknowledged, so the client is not left waiting). */
    int r = runner_write_stdin(s->exec, chunk, len);
    if (r < 0 && r != -EPIPE)
        return r;
    return ack_stdin(s);
}

static int sessionsvc_on_frame(struct ferry_conn *c, struct ferry_frame_event *ev, void *arg)
{
    struct session *s = ferry_conn_data(c);
    int r = 0;
    (void)arg;

    switch (ev->type) {
    case FERRY_FRAME_HEADER:
        r = on_header(s, ev->header, ev->body_size);
        json_decref(ev->header);
        break;
    case FERRY_FRAME_BODY:
        touch(s);
        r = on_body(s, ev->chunk, ev->chunk_len);
        break;
    case FERRY_FRAME_END:
        s->rx = RX_NONE;
        break;
    case FERRY_FRAME_ERROR:
        /* A TLS client hello starts 16 03: read as a length, far too big. */
        if (s->state == AWAIT_HELLO && ev->error == FERRY_EHDR_TOOBIG && s->cfg->plaintext)
            ferry_log_info("session %s: the client's first bytes are not a ferry frame "
                           "(a TLS client? this listener is --plaintext)", ferry_conn_peer(s->c));
        r = session_protocol_error(s, ferry_strerror(ev->error));
        break;
    case FERRY_FRAME_NEED_MORE:
        break;
    }
    return r;
}

/* Every connection has a session from its first byte, authenticated or
 * not, so its size is what C10K and a flood of strangers multiply
 * (bench/c10k.py): large or rare things (a key's restrictions, a
 * command's state) live out of line. */
_Static_assert(sizeof(struct session) <= 1024, "struct session grew: keep large members out of line");

static int sessionsvc_on_open(struct ferry_conn *c, void *arg)
{
    struct session *s = calloc(1, sizeof *s);

    if (!s)
        return -ENOMEM;
    s->c = c;
    s->cfg = arg;
    s->opts = &sessionsvc_no_opts;
    s->files_idle = on_files_idle;
    s->who = (struct audit_who){ .peer = ferry_conn_peer(c), .listener = "main" };
    s->files = filesvc_new(c, s->cfg->root, &s->who, on_files_idle, s);
    /* The client speaks first (docs/PROTOCOL.md 2.1): its hello, then ours. */
    int r = s->files ? 0 : -ENOMEM;
    if (r < 0) {
        /* a connection that fails to open gets no on_close */
        filesvc_free(s->files);
        free(s);
        return r;
    }
    ferry_conn_set_data(c, s);
    if (s->cfg->idle_timeout_ms > 0) {
        /* Idleness is judged here, not by libferry's byte clock. */
        ferry_conn_set_idle_timeout(c, 0);
        touch(s);
        s->idle_timer = ferry_loop_timer(ferry_conn_loop(c), (uint64_t)s->cfg->idle_timeout_ms,
                                         on_idle_timer, s);
    }
    return 0;
}

static void sessionsvc_on_drain(struct ferry_conn *c, void *arg)
{
    struct session *s = ferry_conn_data(c);
    (void)arg;
    if (s->exec)
        runner_resume_output(s->exec);
    filesvc_on_drain(s->files);
}

/* The grace is nearly over and the command or transfer still runs: say
 * why the connection ends, which the grace's end would not (the client
 * saw a bare "connection closed by server"); closing ends the command. */
static void on_stop_timer(struct ferry_loop *loop, struct ferry_timer *t, void *arg)
{
    struct session *s = arg;

    (void)loop;
    ferry_timer_cancel(t);
    s->stop_timer = NULL;
    close_saying(s, CLOSE_SHUTDOWN, "the server is shutting down, and what was still "
                                    "running after its grace period is ended");
}

static void sessionsvc_on_shutdown(struct ferry_conn *c, void *arg)
{
    struct session *s = ferry_conn_data(c);
    (void)arg;
    /* A running command may finish within the grace period; an idle
     * session has nothing to finish. */
    if (s->exec || filesvc_busy(s->files)) {
        s->stop_when_idle = 1;
        s->stop_timer = ferry_loop_timer(ferry_conn_loop(c), FERRYD_STOP_NOTICE_MS,
                                         on_stop_timer, s);
    } else {
        close_saying(s, CLOSE_SHUTDOWN, "the server is shutting down");
    }
}

static void sessionsvc_on_auth_timeout(struct ferry_conn *c, void *arg)
{
    struct session *s = ferry_conn_data(c);
    (void)arg;
    if (s)
        s->auth_timed_out = 1;   /* for the audit line in on_close */
    /* The server never speaks before the client's hello (PROTOCOL.md 2.1):
     * a peer that said nothing is closed without a word. */
    if (s && s->state != AWAIT_HELLO)
        (void)session_send_msg(s, json_pack("{s:s, s:s, s:s}", "type", MSG_CLOSING, "reason",
                                    CLOSE_AUTH_TIMEOUT, "message",
                                    "not authenticated in time (the server's --auth-timeout)"));
}

static void sessionsvc_on_close(struct ferry_conn *c, int reason, void *arg)
{
    struct session *s = ferry_conn_data(c);
    const char *detail;
    (void)arg;
    if (!s)
        return;
    /* A session cut off (killed client, truncated TLS, reset) says so;
     * the timeouts and protocol errors have said it already. */
    if (reason < 0 && reason != FERRY_ECLOSED && reason != -ETIMEDOUT && reason != -EPROTO) {
        detail = ferry_transport_error(ferry_conn_transport(c));
        ferry_log_info("session %s: connection lost: %s%s%s%s", ferry_conn_peer(c),
                       ferry_strerror(reason), detail[0] ? " (" : "", detail,
                       detail[0] ? ")" : "");
    }
    /* The client is gone (or the server is): nobody will read the output,
     * so the command and its whole process group go. */
    /* A session that ended before it was authenticated was denied. */
    if (!s->audited)
        audit_session(&s->who, NULL, "denied",
                      reason == -ETIMEDOUT || s->auth_timed_out ? "not authenticated in time"
                                           : "closed before authentication");
    if (s->exec) {
        runner_abort(s->exec);
        audit_cmd_end(&s->cmd, &s->who, NULL, NULL);
    }
    ferry_timer_cancel(s->idle_timer);
    ferry_timer_cancel(s->stop_timer);
    json_decref(s->queued);
    filesvc_free(s->files);
    fsroot_close(s->key_root);
    sessionsvc_drop_opts(s);
    free(s->cwd);
    launch_account_free(s->account);
    free(s);
    ferry_conn_set_data(c, NULL);
}

const struct ferry_handler sessionsvc_handler = {
    .on_open = sessionsvc_on_open,
    .on_frame = sessionsvc_on_frame,
    .on_drain = sessionsvc_on_drain,
    .on_shutdown = sessionsvc_on_shutdown,
    .on_close = sessionsvc_on_close,
    .on_auth_timeout = sessionsvc_on_auth_timeout,
};
