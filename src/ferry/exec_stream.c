/*
 * exec_stream.c - one request streamed to its end (exec_stream.h).
 *
 * The client's one loop (client_session.c) serves three sources: the
 * connection (libferry reads it and hands us frames; what we send waits
 * in its output queue), stdin (watched only while forwarding is on and
 * the queue is short) and the self-pipe carrying the signals we forward.
 * Body pieces are written straight to fd 1 or 2 from libferry's read
 * buffer, so nothing bigger than one read is ever held.  Our writes to stdout block on purpose: a slow
 * reader of our output stops us reading the socket, which makes the server
 * stop reading the command's output.  That chain is the backpressure.
 */
#include "exec_stream.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "escape.h"
#include "fdio.h"
#include "ferry/ferry.h"
#include "proto.h"
#include "signals.h"
#include "tty.h"

/* What the body of the frame being received is for. */
enum body_sink { SINK_NONE = 0, SINK_STDOUT, SINK_STDERR };

/* What ends the request. */
enum awaiting { AWAIT_EXIT = 0, AWAIT_CWD };

struct run {
    struct client_session *s;
    enum awaiting awaiting;
    enum body_sink sink;
    int finish_at_end;       /* the frame being received completes the request */
    int done;
    int status;              /* what to exit with once done */
    int stdin_on;            /* still reading and forwarding fd 0 */
    uint64_t stdin_unacked;  /* stdin bytes sent and not yet acknowledged (the window) */
    int stdin_watch;         /* 0 is on the loop (1), or read by a timer (2: epoll
                                takes no regular file or /dev/null) */
    int stdin_reading;       /* 0's watcher or timer is armed */
    struct ferry_timer *stdin_timer;
    int stdout_pipe;         /* fd 1 is a pipe: bodies go to it by splice where they can */
    int stdout_err;          /* errno of a failed write to fd 1, output discarded since */
    int stderr_dead;         /* fd 2 failed: stderr output discarded since */
    uint64_t signal_mark;    /* queue position just past the last signal frame */
    int second_hangs_up;     /* a signal after one was forwarded hangs up */
    int signals_forwarded;
    char *cwd;               /* AWAIT_CWD: the answer */
    int quiet_denied;        /* a "denied" answer is not printed */
    int tty;                 /* on a terminal: stdin goes through esc, SIGWINCH resizes */
    struct escape esc;
    uint8_t stdin_buf[RUN_STDIN_CHUNK];
    uint8_t typed[RUN_STDIN_CHUNK + 1];   /* stdin_buf after the escape sequences */
};

/* ---- sending ---------------------------------------------------------------- */

/* Queue one frame: header (its size member set to body_len) and body. */
static int queue_frame(struct client_session *s, json_t *header, const void *body, size_t body_len)
{
    if (!header)
        return -ENOMEM;
    return session_write_frame(s, header, body, body_len);
}

/* Queue a header-only message built by json_pack (NULL: out of memory). */
static int queue_message(struct client_session *s, json_t *header)
{
    int r = queue_frame(s, header, NULL, 0);

    json_decref(header);
    return r;
}

static void fail(struct run *run, int broken, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* End the request with status 255 and a one-line message. */
static void fail(struct run *run, int broken, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (run->tty)
        tty_restore();   /* the request is over: the message on a sane terminal */
    cli_error("%s", msg);
    run->status = FERRY_EXIT_ERROR;
    run->done = 1;
    if (broken)
        run->s->broken = 1;
}

static int forward_signal(struct run *run, int signo)
{
    const char *name = signals_name(signo);
    int r;

    if (!name)
        return 0;
    /* The previous signal still queued behind stdin data the server is not
     * reading (it stops reading while the command ignores its stdin):
     * in-band delivery is stuck, so hang up.  ferryd kills the command's
     * process group when its client goes away. */
    if (!run->s->conn || session_sent(run->s) < run->signal_mark) {
        ferry_log_debug("SIG%s again before the last signal was sent; closing the session", name);
        run->status = 128 + signo;
        run->done = 1;
        run->s->broken = 1;
        return 0;
    }
    /* The command did not end on the first (it may ignore it), and there
     * is no other way out short of SIGKILL: hang up. */
    if (run->second_hangs_up && run->signals_forwarded > 0) {
        cli_error("SIG%s again: hung up (ferryd ends the command)", name);
        run->status = 128 + signo;
        run->done = 1;
        run->s->broken = 1;
        return 0;
    }
    run->signals_forwarded++;
    ferry_log_debug("forwarding SIG%s", name);
    r = queue_message(run->s, json_pack("{s:s, s:s}", "type", MSG_SIGNAL, "signal", name));
    if (r < 0)
        return r;
    run->signal_mark = run->s->queued;
    return 0;
}

/* The terminal's window changed: tell the server its new size.  Also once
 * at the start, if_changed, for a change before SIGWINCH was ours. */
static int send_resize(struct run *run, int if_changed)
{
    json_t *msg = tty_resize_message(if_changed);

    if (!msg || !run->s->conn)
        return 0;   /* no size to tell (nor memory for it): the old one stays */
    return queue_message(run->s, msg);
}

static int drain_signals(struct run *run)
{
    int sigs[16];
    size_t n;

    while ((n = signals_take(sigs, sizeof sigs / sizeof sigs[0])) > 0) {
        for (size_t i = 0; i < n && !run->done; i++) {
            int r;

            if (sigs[i] == SIGWINCH) {
                r = run->tty ? send_resize(run, 0) : 0;
            } else if (run->tty) {
                /* On a terminal the keys that make signals are bytes for
                 * the remote terminal; a signal that still reaches us came
                 * from elsewhere (a hangup, kill) and ends the session, as
                 * with ssh: an interactive shell would ignore it. */
                ferry_log_debug("signal %d: leaving the session", sigs[i]);
                run->status = 128 + sigs[i];
                run->done = 1;
                run->s->broken = 1;
                r = 0;
            } else {
                r = forward_signal(run, sigs[i]);
            }

            if (r < 0)
                return r;
        }
    }
    return 0;
}

/* Queue typed bytes as one stdin frame. */
static int send_stdin(struct run *run, const uint8_t *p, size_t n)
{
    json_t *h;
    int r;

    if (n == 0)
        return 0;
    h = json_pack("{s:s}", "type", MSG_STDIN);
    r = queue_frame(run->s, h, p, n);
    if (r == 0)
        run->stdin_unacked += (uint64_t)n;
    json_decref(h);
    return r;
}

/* Where messages for the person at the terminal go: the terminal. */
static int user_fd(void)
{
    return isatty(STDERR_FILENO) ? STDERR_FILENO : STDOUT_FILENO;
}

/* What was typed on a terminal session, through the escape sequences. */
static int send_typed(struct run *run, size_t n)
{
    size_t at = 0;

    while (at < n && !run->done) {
        size_t used = 0, out = 0;
        enum escape_action a = escape_feed(&run->esc, run->stdin_buf + at, n - at, &used,
                                           run->typed, &out);
        int r = send_stdin(run, run->typed, out);
        char text[512];

        if (r < 0)
            return r;
        at += used;
        if (a == ESCAPE_HELP) {
            escape_help(run->esc.ch, text, sizeof text);
            (void)fdio_write_all(user_fd(), text, strlen(text), NULL);
        } else if (a == ESCAPE_DISCONNECT) {
            /* As ssh: the session goes, and ferryd kills the command when
             * its client leaves. */
            snprintf(text, sizeof text, "\r\nConnection to %s closed.\r\n", run->s->peer);
            (void)fdio_write_all(user_fd(), text, strlen(text), NULL);
            run->status = FERRY_EXIT_ERROR;
            run->done = 1;
            run->s->broken = 1;
        }
    }
    return 0;
}

/* Read one piece of stdin and queue it (or the end of it). */
static int forward_stdin(struct run *run)
{
    /* Never more than the server's window in flight (PROTOCOL.md 2.2). */
    size_t room = PROTO_STDIN_WINDOW - run->stdin_unacked;
    ssize_t n = read(STDIN_FILENO, run->stdin_buf, room < sizeof run->stdin_buf ? room : sizeof run->stdin_buf);
    json_t *h;
    int r;

    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return 0;
    if (n < 0) {
        /* An unreadable stdin (EBADF when it was closed, EIO from a lost
         * terminal) ends the command's input rather than the command. */
        ferry_log_debug("stdin: %s; sending end of input", strerror(errno));
        n = 0;
    }
    if (n == 0) {
        run->stdin_on = 0;
        return queue_message(run->s, json_pack("{s:s}", "type", MSG_STDIN_EOF));
    }
    if (run->tty)
        return send_typed(run, (size_t)n);
    h = json_pack("{s:s}", "type", MSG_STDIN);
    r = queue_frame(run->s, h, run->stdin_buf, (size_t)n);
    if (r == 0)
        run->stdin_unacked += (uint64_t)n;

    json_decref(h);
    return r;
}

/* ---- receiving -------------------------------------------------------------- */

static void on_body(struct run *run, const uint8_t *p, size_t n)
{
    int r;

    if (!p)
        return;     /* spliced into fd 1 already (ferry_conn_recv_body_to_pipe) */
    if (run->sink == SINK_STDOUT && !run->stdout_err) {
        r = fdio_write_all(STDOUT_FILENO, p, n, NULL);
        if (r < 0) {
            /* Nobody reads our output any more: stop the command as a
             * local pipeline would, and drain until it has gone.  EPIPE
             * (`ferry exec h yes | head -1`) is the normal way a pipeline
             * ends and stays quiet; anything else is reported. */
            run->stdout_err = -r;
            run->stdin_on = 0;
            if (r != -EPIPE)
                cli_error("cannot write output: %s", strerror(-r));
            if (forward_signal(run, SIGTERM) < 0)
                fail(run, 1, "out of memory");
        }
    } else if (run->sink == SINK_STDERR && !run->stderr_dead) {
        if (fdio_write_all(STDERR_FILENO, p, n, NULL) < 0)
            run->stderr_dead = 1;
    }
}

int exec_exit_status(const json_t *h)
{
    const json_t *status = json_object_get(h, "status");
    const json_t *sig = json_object_get(h, "signal");
    json_int_t v;

    if (json_is_true(json_object_get(h, "timeout")))
        return FERRY_EXIT_TIMEOUT;
    if (json_is_integer(status) && (v = json_integer_value(status)) >= 0 && v <= 255)
        return (int)v;
    if (json_is_integer(sig) && (v = json_integer_value(sig)) >= 1 && v <= 127)
        return 128 + (int)v;
    return -1;
}

/* The exit frame: the command's status as a shell would show it. */
static void on_exit_frame(struct run *run, const json_t *h)
{
    run->status = exec_exit_status(h);
    if (run->status < 0) {
        fail(run, 1, "protocol error: %s: exit message without a valid status or signal",
             run->s->peer);
        return;
    }
    if (run->stdout_err == EPIPE)
        run->status = 128 + SIGPIPE;
    else if (run->stdout_err)
        run->status = FERRY_EXIT_ERROR;
    run->finish_at_end = 1;
}

static void on_error_frame(struct run *run, const json_t *h)
{
    const char *code = json_string_value(json_object_get(h, "code"));
    const char *msg = json_string_value(json_object_get(h, "message"));

    if (!code)
        code = "";
    if (!msg)
        msg = "(no message)";
    if (strcmp(code, ERR_SPAWN) == 0 && run->awaiting == AWAIT_EXIT) {
        /* The exit frame follows with 127 or 126. */
        cli_error("%s", msg);
        return;
    }
    run->finish_at_end = 1;
    if (strcmp(code, ERR_PROTOCOL) == 0) {
        cli_error("protocol error: %s", msg);
        run->s->broken = 1;   /* the server closes after a protocol error */
    } else if (strcmp(code, ERR_AUTH) == 0) {
        cli_error("authentication failed");
        run->s->broken = 1;
    } else if (!run->quiet_denied || strcmp(code, ERR_DENIED) != 0) {
        cli_error("%s", msg);   /* request, busy, or one we do not know */
    }
    run->status = run->awaiting == AWAIT_CWD ? 1 : FERRY_EXIT_ERROR;
}

static void on_header(struct run *run, const json_t *h)
{
    const char *type = json_string_value(json_object_get(h, "type"));

    run->sink = SINK_NONE;
    if (!type) {
        fail(run, 1, "protocol error: %s: message without a type", run->s->peer);
    } else if (strcmp(type, MSG_STDOUT) == 0) {
        run->sink = SINK_STDOUT;
    } else if (strcmp(type, MSG_STDERR) == 0) {
        run->sink = SINK_STDERR;
    } else if (strcmp(type, MSG_EXIT) == 0 && run->awaiting == AWAIT_EXIT) {
        on_exit_frame(run, h);
    } else if (strcmp(type, MSG_CWD) == 0 && run->awaiting == AWAIT_CWD) {
        const char *path = json_string_value(json_object_get(h, "path"));

        if (!path) {
            fail(run, 1, "protocol error: %s: cwd without a path", run->s->peer);
            return;
        }
        run->cwd = strdup(path);
        if (!run->cwd) {
            fail(run, 0, "out of memory");
            return;
        }
        run->status = 0;
        run->finish_at_end = 1;
    } else if (strcmp(type, MSG_SKIPPED) == 0 && run->awaiting == AWAIT_EXIT) {
        /* Sent ahead on a condition the server found false: not run. */
        run->status = 1;
        run->finish_at_end = 1;
    } else if (strcmp(type, MSG_STDIN_ACK) == 0) {
        json_int_t n = json_integer_value(json_object_get(h, "bytes"));

        if (n <= 0 || (uint64_t)n > run->stdin_unacked) {
            fail(run, 1, "protocol error: %s: bad stdin-ack", run->s->peer);
            return;
        }
        run->stdin_unacked -= (uint64_t)n;
    } else if (strcmp(type, MSG_ERROR) == 0) {
        on_error_frame(run, h);
    } else if (strcmp(type, MSG_EXIT) == 0 || strcmp(type, MSG_CWD) == 0) {
        fail(run, 1, "protocol error: %s: unexpected '%s' message", run->s->peer, type);
    } else {
        /* A message from a newer server: its body, if any, is skipped. */
        ferry_log_debug("ignoring %s message", FERRY_LOG_Q(type));
    }
}

static void update_stdin(struct run *run);

/* Every frame event while the request runs (client_session.h). */
static int on_frame(struct client_session *s, struct ferry_frame_event *ev, void *arg)
{
    struct run *run = arg;

    switch (ev->type) {
    case FERRY_FRAME_HEADER:
        on_header(run, ev->header);
        json_decref(ev->header);
        /* Output for a pipe goes socket -> pipe without a copy here where
         * the connection allows it (plaintext); on_body hears of it. */
        if (run->sink == SINK_STDOUT && run->stdout_pipe && !run->stdout_err &&
            ev->body_size > 0 && s->conn && ferry_conn_recv_body_to_pipe(s->conn, STDOUT_FILENO) < 0)
            ferry_log_debug("output by copy: not at a header");
        break;
    case FERRY_FRAME_BODY:
        on_body(run, ev->chunk, ev->chunk_len);
        break;
    case FERRY_FRAME_END:
        run->sink = SINK_NONE;
        if (run->finish_at_end)
            run->done = 1;
        break;
    case FERRY_FRAME_ERROR:
        fail(run, 1, "protocol error: %s: %s", s->peer, ferry_strerror(ev->error));
        break;
    default:
        break;
    }
    if (run->done) {
        /* Frames after the request's last one wait for the next request. */
        session_set_receiver(s, NULL, NULL);
        session_wake(s);
    }
    update_stdin(run);   /* a stdin-ack may have reopened the window */
    return 0;
}

/* ---- stdin ------------------------------------------------------------------ */

static void read_stdin(struct run *run)
{
    if (forward_stdin(run) < 0)
        fail(run, 1, "out of memory");
    update_stdin(run);
    session_wake(run->s);
}

static void on_stdin(struct ferry_loop *loop, int fd, unsigned events, void *arg)
{
    (void)loop;
    (void)fd;
    (void)events;
    read_stdin(arg);
}

static void on_stdin_timer(struct ferry_loop *loop, struct ferry_timer *t, void *arg)
{
    struct run *run = arg;

    (void)loop;
    (void)t;
    run->stdin_reading = 0;
    read_stdin(run);
}

/* Watch fd 0 only while forwarding is on, the window is open and the
 * connection's queue is short, so a fast stdin and a slow command never
 * make us buffer without bound. */
static void update_stdin(struct run *run)
{
    struct client_session *s = run->s;
    int want = run->stdin_on && !run->done && s->conn &&
               ferry_conn_pending(s->conn) < RUN_MAX_QUEUED &&
               run->stdin_unacked < PROTO_STDIN_WINDOW;

    if (run->stdin_on && !run->done && s->conn && ferry_conn_pending(s->conn) >= RUN_MAX_QUEUED)
        ferry_conn_want_drain(s->conn);   /* woken once it has gone */
    if (want == run->stdin_reading)
        return;
    run->stdin_reading = want;
    if (run->stdin_watch == 1) {
        ferry_loop_modify(s->loop, STDIN_FILENO, want ? FERRY_READABLE : 0);
    } else if (run->stdin_watch == 2 && want) {
        if (run->stdin_timer)
            ferry_timer_restart(run->stdin_timer, 0);
        else
            run->stdin_timer = ferry_loop_timer(s->loop, 0, on_stdin_timer, run);
        if (!run->stdin_timer)
            fail(run, 1, "out of memory");
    }
}

static void stdin_start(struct run *run)
{
    if (!run->stdin_on)
        return;
    /* A regular file or /dev/null cannot be watched (epoll: EPERM), and
     * ferry_loop_add says so at once: such a file is always readable. */
    if (ferry_loop_add(run->s->loop, STDIN_FILENO, 0, on_stdin, run) == 0)
        run->stdin_watch = 1;
    else
        run->stdin_watch = 2;   /* a file is always readable: read it in turns */
    update_stdin(run);
}

static void stdin_stop(struct run *run)
{
    if (run->stdin_watch == 1)
        ferry_loop_remove(run->s->loop, STDIN_FILENO);
    ferry_timer_cancel(run->stdin_timer);
    run->stdin_timer = NULL;
    run->stdin_watch = 0;
}

/* ---- the loop --------------------------------------------------------------- */

static void on_signals(void *arg)
{
    struct run *run = arg;

    if (drain_signals(run) < 0)
        fail(run, 1, "out of memory");
    session_wake(run->s);
}

static void serve(struct run *run)
{
    struct client_session *s = run->s;

    session_set_receiver(s, on_frame, run);
    signals_set_hook(on_signals, run);
    stdin_start(run);
    while (!run->done) {
        update_stdin(run);
        if (s->gone) {
            char why[SESSION_GONE_TEXT_MAX];

            session_gone_text(s, why, sizeof why);
            fail(run, 1, "%s", why);
            break;
        }
        (void)session_wait(s);
    }
    stdin_stop(run);
    signals_set_hook(NULL, NULL);
    session_set_receiver(s, NULL, NULL);
}

/* Whether our stdout is a pipe.  When it is, make it hold 1 MiB instead of
 * 64 KiB: output arriving at network speed otherwise wakes the reader (and
 * us) once per 64 KiB.  Best effort, once: a pipe-max-size below it keeps
 * the default. */
static int stdout_is_pipe(void)
{
    static int known, is_pipe;
    struct stat st;

    if (known++)
        return is_pipe;
    is_pipe = fstat(STDOUT_FILENO, &st) == 0 && S_ISFIFO(st.st_mode);
#ifdef F_SETPIPE_SZ
    if (is_pipe)
        (void)fcntl(STDOUT_FILENO, F_SETPIPE_SZ, 1 << 20);
#endif
    return is_pipe;
}

static int run_exec(struct client_session *s, json_t *request, json_t *next, int stdin_on,
                    int tty, int escape_ch, int second_hangs_up);

int exec_stream_run(struct client_session *s, json_t *request, int stdin_on, int second_hangs_up)
{
    return run_exec(s, request, NULL, stdin_on, 0, ESCAPE_OFF, second_hangs_up);
}

int exec_stream_run_ahead(struct client_session *s, json_t *request, json_t *next)
{
    return run_exec(s, request, next, 0, 0, ESCAPE_OFF, 0);
}

int exec_stream_run_tty(struct client_session *s, json_t *request, int stdin_on, int escape_ch)
{
    return run_exec(s, request, NULL, stdin_on, 1, escape_ch, 0);
}

/* exec_stream_run, _run_ahead and _run_tty: send request (unless NULL:
 * it went ahead of the command before), then next (unless NULL), and
 * stream the request to its end; tty: on our terminal (exec_stream.h). */
static int run_exec(struct client_session *s, json_t *request, json_t *next, int stdin_on,
                    int tty, int escape_ch, int second_hangs_up)
{
    struct signals_saved old;
    struct sigaction old_winch;
    struct run *run = NULL;
    int r, status = FERRY_EXIT_ERROR;

    if (s->broken) {
        cli_error("connection to %s is closed", s->peer);
        return FERRY_EXIT_ERROR;
    }
    run = calloc(1, sizeof *run);
    if (!run) {
        cli_error("out of memory");
        return FERRY_EXIT_ERROR;
    }
    *run = (struct run){ .s = s, .awaiting = AWAIT_EXIT, .stdin_on = stdin_on, .tty = tty,
                         .second_hangs_up = second_hangs_up };
    run->stdout_pipe = !tty && stdout_is_pipe();
    escape_init(&run->esc, escape_ch);
    r = signals_forward_install(&old);
    if (r < 0) {
        cli_error("cannot install signal handlers: %s", strerror(-r));
        goto out;
    }
    if (tty && (r = signals_winch_install(&old_winch)) < 0) {
        signals_forward_restore(&old);
        cli_error("cannot install signal handlers: %s", strerror(-r));
        goto out;
    }
    if (tty && (r = tty_raw_enter()) < 0)
        ferry_log_warn("cannot put the terminal in raw mode: %s", strerror(-r));
    /* The window as it is now, not as it was before connecting: a change
     * made meanwhile would otherwise reach the server after the command
     * started, and a command that reads the size at once (stty size) would
     * see the old one.  Later changes come as SIGWINCH, handled from here. */
    r = tty && request ? tty_describe(request) : 0;
    if (r == 0)
        r = request ? queue_frame(s, request, NULL, 0) : 0;
    if (r == 0 && next)
        r = queue_frame(s, next, NULL, 0);
    if (r == 0 && tty)
        r = send_resize(run, 1);
    if (r == FERRY_EHDR_TOOBIG) {
        cli_error("the command is too long for one request (%d bytes of JSON at most)",
                  PROTO_MAX_HEADER);
    } else if (r < 0) {
        cli_error("out of memory");
    } else {
        serve(run);
        status = run->status;
    }
    if (tty) {
        tty_restore();
        signals_winch_restore(&old_winch);
    }
    signals_forward_restore(&old);
out:
    free(run);
    return status;
}

static int chdir_request(struct client_session *s, const char *path, char **cwd,
                         int quiet_denied)
{
    struct run *run = NULL;
    json_t *req = NULL;
    int status = FERRY_EXIT_ERROR;

    if (s->broken) {
        cli_error("connection to %s is closed", s->peer);
        return FERRY_EXIT_ERROR;
    }
    run = calloc(1, sizeof *run);
    if (!run) {
        cli_error("out of memory");
        goto out;
    }
    /* json_pack fails on a path that is not UTF-8, which the protocol
     * cannot carry. */
    req = json_pack("{s:s, s:s}", "type", MSG_CHDIR, "path", path);
    if (!req) {
        cli_error("cd %s: not a valid UTF-8 path", path);
        status = 1;
        goto out;
    }
    *run = (struct run){ .s = s, .awaiting = AWAIT_CWD, .quiet_denied = quiet_denied };
    /* No signal handlers: a chdir is answered at once, and there is no
     * command to forward a signal to (the loop still watches the pipe,
     * harmlessly). */
    if (queue_frame(s, req, NULL, 0) < 0) {
        cli_error("out of memory");
        goto out;
    }
    serve(run);
    status = run->status;
    if (status == 0 && cwd) {
        *cwd = run->cwd;
        run->cwd = NULL;
    }
out:
    if (run)
        free(run->cwd);
    free(run);
    json_decref(req);
    return status;
}

int exec_stream_chdir(struct client_session *s, const char *path, char **cwd)
{
    return chdir_request(s, path, cwd, 0);
}

int exec_stream_cwd(struct client_session *s, char **cwd)
{
    /* A chdir to "." answers with the directory, and changes nothing. */
    return chdir_request(s, ".", cwd, 1);
}
