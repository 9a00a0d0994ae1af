/*
 * fleet.c - one command (or a job) on many hosts, on one loop (fleet.h).
 *
 * Callbacks only note what happened (a connect answered, a handshake
 * ended, an exit frame, stdin arrived, a signal) and stop the loop; the
 * engine then steps every host in flight until none moves, and starts
 * waiting hosts into the free slots.  So a session is never closed from
 * inside its own callback, and a wake-up is never lost: a stop asked for
 * while stepping makes the next loop run return at once.
 *
 * Signals: the first SIGINT (TERM, HUP, QUIT) is forwarded to every
 * running command, and no more hosts start; hosts still connecting are
 * given up.  A second one hangs up on all: ferryd kills a command whose
 * client has gone.  Such hosts count 128+N.  A job (fleet.h: put -w,
 * get -w) has no command to forward to: the first signal ends every host
 * in flight, which leaves no part behind on either side.
 */
#include "fleet.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "dial_hs.h"
#include "exec_stream.h"
#include "ferry/ferry.h"
#include "fleet_ctx.h"
#include "fleet_stdin.h"
#include "hostconf.h"
#include "proto.h"
#include "signals.h"

enum run_state { R_RESOLVE, R_CONNECT, R_SESSION, R_RUNNING, R_OVER };

struct fleet_host {
    struct fleet_result r;
    char *error, *why;           /* owned copies of r.error, r.why */
};

struct fleet;

/* A host in flight. */
struct fleet_run {
    struct fleet *f;
    size_t idx;
    const char *name;
    enum run_state state;
    struct dial_opts eff;
    struct hostconf hc;
    struct fleet_ctx *ctx;
    char target[320];
    struct ferry_addr addr[FLEET_ADDRS];
    int naddr, ai;
    struct lookup *lookup;       /* R_RESOLVE: the name's lookup, until on_lookup */
    int resolved;
    int fd, watched, writable, timed_out;
    struct ferry_timer *timer;   /* the connect's deadline */
    uint64_t started, deadline;  /* loop ms */
    struct client_session *s;
    struct dial_hs hs;
    int hs_begun;
    int sink;                    /* 1 stdout, 2 stderr, 0 none */
    int finish_at_end, done, failed, status;
    char err[DIAL_HS_ERR_MAX];
    int stdin_on;
    uint64_t stdin_off, stdin_unacked;
    struct fleet_hostout out;
    void *job;                   /* fo->job's state for this host */
};

/* Descriptors besides the hosts' sockets: stdio, the loop's, the signal
 * pipe, the lookups' pipe, the stdin spool, and a key file read as a
 * host starts. */
#define FLEET_SPARE_FDS 32

struct fleet {
    struct ferry_loop *loop;
    const struct fleet_opts *fo;
    size_t fanout;               /* -f, within the descriptors we may open */
    json_t *request;
    const struct hostlist *hosts;
    struct fleet_host *h;
    size_t next;
    struct fleet_run **active;
    size_t nactive;
    struct fleet_ctx *ctxs;
    struct hostconf_db *conf;    /* the host configuration, read once */
    struct lookup_pool *lookups; /* host names, off the loop's thread */
    struct fleet_out out;
    struct fleet_stdin in;
    int stdin_open;
    int sigs[16];
    size_t nsigs;
    int stop_sig;                /* the first signal: no more hosts start */
    uint8_t buf[RUN_STDIN_CHUNK];
};

static void wake(struct fleet *f)
{
    ferry_loop_stop(f->loop);
}

/* ---- ending a host ------------------------------------------------------------ */

/* Record how the host ended and release its run.  Once only: a run over
 * stays among the active ones until compact(), and a second signal taken
 * in the same batch as the first (take_signals) hangs up on those too. */
static void finish(struct fleet_run *r, int status, int ran, const char *error, const char *why)
{
    struct fleet *f = r->f;
    struct fleet_host *h = &f->h[r->idx];
    uint64_t now = ferry_loop_now(f->loop);

    if (r->state == R_OVER)
        return;
    h->error = error ? strdup(error) : NULL;
    h->why = why ? strdup(why) : NULL;
    h->r = (struct fleet_result){ .host = r->name, .status = status, .ran = ran,
                                  .error = h->error, .why = h->why,
                                  .duration = (double)(now - r->started) / 1000.0 };
    if (error)
        fleet_out_note(&f->out, r->name, error);
    lookup_cancel(r->lookup);
    r->lookup = NULL;
    if (r->s)
        session_set_receiver(r->s, NULL, NULL);
    client_session_close(r->s);
    r->s = NULL;
    if (r->job)
        f->fo->job->end(r->job, ran && status == 0);
    r->job = NULL;
    if (r->hs_begun)
        dial_hs_end(&r->hs);
    if (r->watched)
        ferry_loop_remove(f->loop, r->fd);
    if (r->fd >= 0)
        close(r->fd);
    ferry_timer_cancel(r->timer);
    hostconf_free(&r->hc);
    fleet_out_host_done(&f->out, &r->out, &h->r);
    r->state = R_OVER;
}

__attribute__((format(printf, 4, 5)))
static void give_up(struct fleet_run *r, int status, const char *why, const char *fmt, ...)
{
    char msg[DIAL_HS_ERR_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    finish(r, status, 0, msg, why);
}

/* A connect that failed with r: the summary's words ("connection refused"). */
static void unreachable(struct fleet_run *r, int err)
{
    char why[160];
    const char *text = err == FERRY_EADDR ? dial_addr_error(r->target) : ferry_strerror(err);

    snprintf(why, sizeof why, "unreachable (%s)", text);
    if (why[13] >= 'A' && why[13] <= 'Z')
        why[13] = (char)(why[13] - 'A' + 'a');
    give_up(r, FERRY_EXIT_ERROR, why, "cannot connect to %s: %s", r->name, text);
}

/* ---- connecting ---------------------------------------------------------------- */

static void on_connect_ready(struct ferry_loop *loop, int fd, unsigned events, void *arg)
{
    struct fleet_run *r = arg;

    (void)events;
    ferry_loop_modify(loop, fd, 0);
    r->writable = 1;
    wake(r->f);
}

static void on_deadline(struct ferry_loop *loop, struct ferry_timer *t, void *arg)
{
    struct fleet_run *r = arg;

    (void)loop;
    (void)t;
    r->timed_out = 1;
    wake(r->f);
}

/* Connect to the next address from r->ai on.  0 (under way or done), or
 * the last error when no address is left. */
static int connect_next(struct fleet_run *r)
{
    int err = FERRY_EADDR;

    for (; r->ai < r->naddr; r->ai++) {
        int rc = ferry_connect_start(&r->addr[r->ai], &r->fd);

        if (rc == 0) {
            r->writable = 1;   /* a unix socket: connected at once */
            return 0;
        }
        if (rc == FERRY_CONNECT_IN_PROGRESS) {
            rc = ferry_loop_add(r->f->loop, r->fd, FERRY_WRITABLE, on_connect_ready, r);
            if (rc == 0) {
                r->watched = 1;
                return 0;
            }
            close(r->fd);
            r->fd = -1;
        }
        err = rc;
    }
    return err;
}

/* The name's addresses (pool's thread -> the loop's: lookup.h). */
static void on_lookup(void *arg, int n, const struct ferry_addr *addrs)
{
    struct fleet_run *r = arg;

    r->lookup = NULL;
    r->naddr = n > 0 ? n : 0;
    if (n > 0)
        memcpy(r->addr, addrs, (size_t)n * sizeof *addrs);
    r->resolved = 1;
    wake(r->f);
}

static int on_frame(struct client_session *s, struct ferry_frame_event *ev, void *arg);

/* TCP is up: TLS (or plaintext) and the handshake, on the loop. */
static void start_session(struct fleet_run *r)
{
    struct fleet *f = r->f;
    struct ferry_transport *t = NULL;
    uint64_t now = ferry_loop_now(f->loop);
    int left = r->deadline > now ? (int)(r->deadline - now) : 1, rc;
    char err[DIAL_HS_ERR_MAX];

    r->s = calloc(1, sizeof *r->s);
    if (!r->s) {
        give_up(r, FERRY_EXIT_ERROR, "out of memory", "out of memory");
        return;
    }
    ferry_addr_format((const struct sockaddr *)&r->addr[r->ai].ss, r->addr[r->ai].len, r->s->peer);
    r->s->tls = r->ctx->tls;
    r->s->tls_borrowed = 1;
    rc = dial_transport(r->fd, &r->eff, r->ctx->tls, r->name, r->target, &t, err, sizeof err);
    r->fd = -1;   /* the transport's, or closed */
    if (rc < 0) {
        give_up(r, FERRY_EXIT_ERROR, "failed", "%s", err);
        return;
    }
    session_set_receiver(r->s, on_frame, r);
    rc = session_start(r->s, t, left);
    if (rc < 0) {
        give_up(r, FERRY_EXIT_ERROR, "failed", "cannot start the session: %s", ferry_strerror(rc));
        return;
    }
    ferry_timer_cancel(r->timer);   /* the session's own deadline from here */
    r->timer = NULL;
    r->hs_begun = 1;
    r->state = R_SESSION;
    if (dial_hs_begin(&r->hs, r->s, &r->eff, r->ctx->have_key ? &r->ctx->key : NULL) < 0)
        give_up(r, FERRY_EXIT_ERROR, "failed", "%s", r->hs.err);
}

/* A slot is free: start the next host.  Its run is added to the active
 * ones unless it ended at once (bad name, ...). */
static void launch(struct fleet *f)
{
    struct fleet_run *r = calloc(1, sizeof *r);
    size_t i = f->next++;
    int n, timeout_ms;

    f->h[i].r = (struct fleet_result){ .host = f->hosts->names[i], .status = FERRY_EXIT_ERROR };
    if (!r) {
        f->h[i].r.why = "out of memory";
        return;
    }
    *r = (struct fleet_run){ .f = f, .idx = i, .name = f->hosts->names[i], .fd = -1,
                             .state = R_CONNECT, .started = ferry_loop_now(f->loop) };
    if (dial_resolve(r->name, f->fo->dial, f->conf, &r->eff, &r->hc, r->target,
                     sizeof r->target) < 0) {
        finish(r, FERRY_EXIT_ERROR, 0, NULL, "bad host");
        free(r);
        return;
    }
    r->ctx = fleet_ctx_get(&f->ctxs, &r->eff);
    if (!r->ctx || r->ctx->err[0]) {
        give_up(r, FERRY_EXIT_ERROR, "failed", "%s", r->ctx ? r->ctx->err : "out of memory");
        free(r);
        return;
    }
    if (r->ctx->key_path)
        r->eff.key_file = r->ctx->key_path;   /* the one used, for messages */
    /* The connect timeout runs from here: the name's lookup included. */
    timeout_ms = (int)(r->eff.connect_timeout * 1000.0 + 0.5);
    r->deadline = r->started + (uint64_t)(timeout_ms > 0 ? timeout_ms : 1);
    r->timer = ferry_loop_timer(f->loop, (uint64_t)(timeout_ms > 0 ? timeout_ms : 1), on_deadline, r);
    if (!r->timer) {
        give_up(r, FERRY_EXIT_ERROR, "out of memory", "out of memory");
        free(r);
        return;
    }
    n = fleet_resolve(f->lookups, r->target, r->addr, FLEET_ADDRS, on_lookup, r, &r->lookup);
    if (n > 0) {
        r->naddr = n;
        n = connect_next(r);
    } else if (n == 0) {
        r->state = R_RESOLVE;   /* a worker asks DNS; on_lookup brings the answer */
    }
    if (n < 0) {
        unreachable(r, n);
        free(r);
        return;
    }
    f->active[f->nactive++] = r;
}

/* ---- the command ---------------------------------------------------------------- */

__attribute__((format(printf, 2, 3)))
static void run_fail(struct fleet_run *r, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(r->err, sizeof r->err, fmt, ap);
    va_end(ap);
    r->failed = 1;
    r->done = 1;
    r->status = FERRY_EXIT_ERROR;
}

static void on_header(struct fleet_run *r, const json_t *h)
{
    const char *type = json_string_value(json_object_get(h, "type"));

    r->sink = 0;
    if (!type) {
        run_fail(r, "protocol error: %s: message without a type", r->s->peer);
    } else if (strcmp(type, MSG_STDOUT) == 0) {
        r->sink = 1;
    } else if (strcmp(type, MSG_STDERR) == 0) {
        r->sink = 2;
    } else if (strcmp(type, MSG_EXIT) == 0) {
        r->status = exec_exit_status(h);
        if (r->status < 0)
            run_fail(r, "protocol error: %s: exit message without a valid status or signal",
                     r->s->peer);
        r->finish_at_end = 1;
    } else if (strcmp(type, MSG_STDIN_ACK) == 0) {
        json_int_t n = json_integer_value(json_object_get(h, "bytes"));

        if (n <= 0 || (uint64_t)n > r->stdin_unacked)
            run_fail(r, "protocol error: %s: bad stdin-ack", r->s->peer);
        else
            r->stdin_unacked -= (uint64_t)n;
    } else if (strcmp(type, MSG_ERROR) == 0) {
        const char *code = json_string_value(json_object_get(h, "code"));
        const char *msg = json_string_value(json_object_get(h, "message"));

        if (code && strcmp(code, ERR_SPAWN) == 0) {
            fleet_out_note(&r->f->out, r->name, msg ? msg : "cannot start the command");
            return;   /* the exit frame follows with 127 or 126 */
        }
        run_fail(r, "%s", msg ? msg : "(no message)");
    } else {
        ferry_log_debug("%s: ignoring %s message", r->name, FERRY_LOG_Q(type));
    }
}

/* Every frame of a host's session: the handshake's, then the command's. */
static int on_frame(struct client_session *s, struct ferry_frame_event *ev, void *arg)
{
    struct fleet_run *r = arg;

    wake(r->f);
    if (r->state == R_SESSION && !r->hs.done) {
        dial_hs_on_frame(&r->hs, s, ev);
        return 0;
    }
    if (r->done || r->state != R_RUNNING) {
        if (ev->type == FERRY_FRAME_HEADER)
            json_decref(ev->header);
        return 0;
    }
    if (r->f->fo->job) {
        r->f->fo->job->frame(r->job, s, ev);
        return 0;
    }
    switch (ev->type) {
    case FERRY_FRAME_HEADER:
        on_header(r, ev->header);
        json_decref(ev->header);
        break;
    case FERRY_FRAME_BODY:
        if (r->sink && ev->chunk)
            fleet_out_data(&r->f->out, &r->out, r->name, r->sink - 1, ev->chunk, ev->chunk_len);
        break;
    case FERRY_FRAME_END:
        r->sink = 0;
        if (r->finish_at_end)
            r->done = 1;
        break;
    case FERRY_FRAME_ERROR:
        run_fail(r, "protocol error: %s: %s", s->peer, ferry_strerror(ev->error));
        break;
    default:
        break;
    }
    return 0;
}

/* Send what the host has not had of stdin yet, within its window and
 * while its connection's queue is short. */
static void pump_stdin(struct fleet_run *r)
{
    struct fleet *f = r->f;
    struct client_session *s = r->s;

    while (r->stdin_on && s->conn && ferry_conn_pending(s->conn) < RUN_MAX_QUEUED) {
        size_t room = PROTO_STDIN_WINDOW - (size_t)r->stdin_unacked;
        json_t *hdr;
        ssize_t n = 0;

        if (room == 0)
            return;
        if (r->stdin_off < f->in.len)
            n = fleet_stdin_read(&f->in, r->stdin_off, f->buf, room < sizeof f->buf ? room : sizeof f->buf);
        if (n > 0) {
            hdr = json_pack("{s:s}", "type", MSG_STDIN);
            if (!hdr || session_write_frame(s, hdr, f->buf, (size_t)n) < 0) {
                run_fail(r, "cannot send stdin to %s", s->peer);
                r->stdin_on = 0;
            }
            json_decref(hdr);
            r->stdin_off += (uint64_t)n;
            r->stdin_unacked += (uint64_t)n;
        } else if (n < 0 || f->in.eof) {
            hdr = json_pack("{s:s}", "type", MSG_STDIN_EOF);
            if (!hdr || session_write_frame(s, hdr, NULL, 0) < 0)
                run_fail(r, "cannot send stdin to %s", s->peer);
            json_decref(hdr);
            r->stdin_on = 0;
        } else {
            return;   /* all sent: more when stdin brings it */
        }
    }
    if (r->stdin_on && s->conn)
        ferry_conn_want_drain(s->conn);   /* woken once it has gone */
}

/* Move a host on by what its callbacks noted.  1 when it changed state. */
static int advance(struct fleet_run *r)
{
    struct fleet *f = r->f;
    int rc;

    switch (r->state) {
    case R_RESOLVE:
        if (r->timed_out) {
            give_up(r, FERRY_EXIT_ERROR, "unreachable (name lookup timed out)",
                    "cannot connect to %s: the name lookup timed out", r->name);
            return 1;
        }
        if (!r->resolved)
            return 0;
        r->state = R_CONNECT;
        rc = connect_next(r);   /* FERRY_EADDR when the name had no address */
        if (rc < 0)
            unreachable(r, rc);
        return 1;
    case R_CONNECT:
        if (r->timed_out) {
            unreachable(r, -ETIMEDOUT);
            return 1;
        }
        if (!r->writable)
            return 0;
        r->writable = 0;
        if (r->watched)
            ferry_loop_remove(f->loop, r->fd);
        r->watched = 0;
        rc = ferry_connect_finish(r->fd);
        if (rc < 0) {
            close(r->fd);
            r->fd = -1;
            r->ai++;
            if (connect_next(r) < 0)
                unreachable(r, rc);
            return 1;
        }
        start_session(r);
        return 1;
    case R_SESSION:
        if (r->hs.done == 0 && !r->s->gone)
            return 0;
        if (r->hs.done == 0)
            dial_hs_gone(&r->hs, r->s);
        if (r->hs.done < 0) {
            /* The summary's words: a peer that took the connection but never
             * answered is the common case (a firewall, a wrong port). */
            give_up(r, FERRY_EXIT_ERROR,
                    strstr(r->hs.err, "authentication failed") ? "authentication failed"
                    : r->timed_out || strstr(r->hs.err, "within the connect timeout")
                        ? "unreachable (handshake timed out)"
                        : "unreachable (no session)",
                    "%s", r->hs.err);
            return 1;
        }
        r->state = R_RUNNING;
        if (f->fo->job) {
            if (f->fo->job->start(f->fo->job->arg, r->name, r->s, &r->job, r->err,
                                  sizeof r->err) < 0) {
                r->failed = 1;
                r->done = 1;
            }
            return 1;
        }
        r->stdin_on = f->fo->forward_stdin;
        rc = session_write_frame(r->s, f->request, NULL, 0);
        if (rc < 0)
            run_fail(r, rc == FERRY_EHDR_TOOBIG ? "the command is too long for one request"
                                                : "cannot send the command: %s", ferry_strerror(rc));
        return 1;
    case R_RUNNING:
        if (!r->done && f->fo->job) {
            rc = f->fo->job->advance(r->job, r->s, r->err, sizeof r->err);
            r->done = rc != 0;
            r->failed = rc < 0;
        }
        if (!r->done && r->s->gone) {
            char why[SESSION_GONE_TEXT_MAX];

            session_gone_text(r->s, why, sizeof why);
            run_fail(r, "%s", why);
        }
        if (r->done) {
            if (r->failed)
                finish(r, FERRY_EXIT_ERROR, 0, r->err,
                       f->fo->job ? f->fo->job->why : "connection lost or refused");
            else
                finish(r, r->status, 1, NULL, NULL);
            return 1;
        }
        pump_stdin(r);
        return 0;
    default:
        return 0;
    }
}

/* ---- signals and the end ---------------------------------------------------- */

static void on_signals(void *arg)
{
    struct fleet *f = arg;

    f->nsigs += signals_take(f->sigs + f->nsigs, sizeof f->sigs / sizeof f->sigs[0] - f->nsigs);
    wake(f);
}

static void compact(struct fleet *f);

/* End every host in flight now (a second signal, or stdout gone). */
static void hang_up_all(struct fleet *f, int status, const char *why)
{
    for (size_t i = 0; i < f->nactive; i++)
        finish(f->active[i], status, 0, NULL, why);
    compact(f);
}

static void take_signals(struct fleet *f)
{
    for (size_t k = 0; k < f->nsigs; k++) {
        int sig = f->sigs[k];
        const char *name = signals_name(sig);

        if (!name)
            continue;
        if (f->stop_sig) {
            ferry_log_debug("SIG%s again: hanging up on every host", name);
            hang_up_all(f, 128 + sig, "interrupted (hung up)");
            continue;
        }
        f->stop_sig = sig;
        for (size_t i = 0; i < f->nactive; i++) {
            struct fleet_run *r = f->active[i];

            if (f->fo->job) {
                /* A transfer cut off leaves nothing: ferryd drops its
                 * temporary, and ours goes in the job's end. */
                finish(r, 128 + sig, 0, NULL, "interrupted");
            } else if (r->state == R_RUNNING && r->s->conn) {
                json_t *m = json_pack("{s:s, s:s}", "type", MSG_SIGNAL, "signal", name);

                if (!m || session_write_frame(r->s, m, NULL, 0) < 0)
                    run_fail(r, "cannot forward SIG%s", name);
                json_decref(m);
            } else if (r->state != R_RUNNING) {
                finish(r, 128 + sig, 0, NULL, "interrupted before the command started");
            }
        }
    }
    f->nsigs = 0;
}

/* Read stdin while the slowest host that still takes it is less than
 * FLEET_STDIN_AHEAD behind (fleet_stdin.h); once no host is left to
 * start, give back the spool every host has had. */
static void update_stdin(struct fleet *f)
{
    uint64_t low = UINT64_MAX, need;
    int waiting = f->next < f->hosts->n && !f->stop_sig, any = waiting;

    if (!f->stdin_open)
        return;
    need = waiting ? 0 : f->in.len;
    for (size_t i = 0; i < f->nactive; i++) {
        struct fleet_run *r = f->active[i];

        if (r->state == R_RUNNING && r->stdin_on) {
            any = 1;
            low = r->stdin_off < low ? r->stdin_off : low;
        } else if (r->state < R_RUNNING) {
            need = 0;   /* it starts from the first byte */
        }
    }
    if (low == UINT64_MAX)
        low = 0;
    else if (low < need)
        need = low;
    fleet_stdin_want(&f->in, any && f->in.len < low + FLEET_STDIN_AHEAD);
    fleet_stdin_release(&f->in, need);
}

static void on_stdin_data(void *arg)
{
    wake(arg);
}

/* Drop the runs that are over from the active ones. */
static void compact(struct fleet *f)
{
    size_t kept = 0;

    for (size_t i = 0; i < f->nactive; i++) {
        if (f->active[i]->state == R_OVER)
            free(f->active[i]);
        else
            f->active[kept++] = f->active[i];
    }
    f->nactive = kept;
}

/* Step every host until none moves; start hosts into free slots. */
static void step(struct fleet *f)
{
    int moved;

    do {
        moved = 0;
        if (f->nsigs)
            take_signals(f);
        compact(f);
        while (f->nactive < f->fanout && f->next < f->hosts->n && !f->stop_sig &&
               !f->out.stdout_err) {
            launch(f);
            moved = 1;
        }
        for (size_t i = 0; i < f->nactive; i++)
            moved |= advance(f->active[i]);
        compact(f);
    } while (moved);
    update_stdin(f);
}

static int exit_status(struct fleet *f)
{
    int status = 0;

    for (size_t i = 0; i < f->hosts->n; i++)
        status = f->h[i].r.status > status ? f->h[i].r.status : status;
    return status;
}

int fleet_exec(const struct hostlist *hosts, json_t *request, const struct fleet_opts *fo)
{
    struct fleet *f = calloc(1, sizeof *f);
    struct fleet_result *results = NULL;
    struct signals_saved saved;
    int status = FERRY_EXIT_ERROR, r, sigs_on = 0;

    if (f)
        f->fanout = fleet_fit_fanout(fo->fanout, FLEET_SPARE_FDS);
    if (!f || !(f->h = calloc(hosts->n, sizeof *f->h)) ||
        !(f->active = calloc(f->fanout, sizeof *f->active)) || !(f->loop = client_loop())) {
        cli_error("out of memory");
        goto out;
    }
    f->fo = fo;
    f->request = request;
    f->hosts = hosts;
    fleet_out_init(&f->out, fo->mode);
    dial_crypto_init(1);   /* a host's configuration may name certificates */
    r = signals_forward_install(&saved);
    if (r < 0) {
        cli_error("cannot install signal handlers: %s", strerror(-r));
        goto out;
    }
    sigs_on = 1;
    signals_set_hook(on_signals, f);
    f->conf = fo->conf;
    if (fleet_preflight(hosts->names[0], fo->dial, &f->conf, &f->ctxs) < 0)
        goto out;
    r = lookup_pool_new(f->loop, (unsigned)f->fanout, NULL, &f->lookups);
    if (r < 0) {
        cli_error("cannot set up name lookups: %s", strerror(-r));
        goto out;
    }
    if (fo->forward_stdin) {
        r = fleet_stdin_open(&f->in, f->loop, on_stdin_data, f);
        if (r < 0) {
            cli_error("cannot spool stdin for the hosts: %s", strerror(-r));
            goto out;
        }
        f->stdin_open = 1;
    }
    for (;;) {
        step(f);
        if (f->out.stdout_err) {
            hang_up_all(f, 128 + SIGPIPE, "our output was closed");
            break;
        }
        if (f->nactive == 0 && (f->next >= hosts->n || f->stop_sig))
            break;
        r = ferry_loop_run(f->loop);
        if (r < 0) {
            cli_error("event loop: %s", ferry_strerror(r));
            hang_up_all(f, FERRY_EXIT_ERROR, "ferry failed");
            break;
        }
    }
    for (; f->next < hosts->n; f->next++) {
        struct fleet_hostout none = { 0 };

        f->h[f->next].r = (struct fleet_result){ .host = hosts->names[f->next],
            .status = f->out.stdout_err ? 128 + SIGPIPE : 128 + f->stop_sig,
            .why = "not started (interrupted)" };
        if (!f->out.stdout_err)
            fleet_out_host_done(&f->out, &none, &f->h[f->next].r);
    }
    if (f->out.stdout_err != EPIPE)
        fleet_out_finish(&f->out);   /* -b's groups: they may meet the closed pipe too */
    if (f->out.stdout_err == EPIPE) {
        status = 128 + SIGPIPE;   /* quietly, as a pipeline ends */
        goto out;
    }
    results = calloc(hosts->n ? hosts->n : 1, sizeof *results);
    for (size_t i = 0; results && i < hosts->n; i++)
        results[i] = f->h[i].r;
    if (results)
        fleet_out_summary(results, hosts->n);
    status = exit_status(f);
    if (f->out.stdout_err && status < FERRY_EXIT_ERROR)
        status = FERRY_EXIT_ERROR;
out:
    if (sigs_on) {
        signals_set_hook(NULL, NULL);
        signals_forward_restore(&saved);
    }
    if (f) {
        if (f->stdin_open)
            fleet_stdin_close(&f->in);
        lookup_pool_free(f->lookups);   /* lookups still in DNS end on their own */
        if (f->conf != fo->conf)
            hostconf_db_free(f->conf);
        fleet_ctx_free_all(&f->ctxs);
        for (size_t i = 0; f->h && i < hosts->n; i++) {
            free(f->h[i].error);
            free(f->h[i].why);
        }
        fleet_out_free(&f->out);
        free(f->h);
        free(f->active);
    }
    free(results);
    free(f);
    return status;
}
