/*
 * classic.c - the tutorials' own "simple ssh" protocol (seed 000), served
 * by `ferryd --classic ADDR` so their Python client works unchanged
 * (docs/PROTOCOL.md section 3).
 *
 * The client sends raw command bytes; the reply is a u32 little-endian
 * header length, a JSON header whose "total_size" counts the bytes that
 * follow, then the command's stdout and stderr.  Because the size comes
 * first, the output has to be collected before anything is sent: it is
 * capped, and so is the command's run time, so `top` cannot hang a
 * session.  The header and as much output as the queue takes are queued
 * together (not as the tutorial's four small sends, which stall on Nagle
 * and delayed ACKs on a reused connection).
 * There is no authentication here; main.c keeps it on loopback unless
 * the operator insists.
 *
 * Nobody on this address is authenticated, so what it may take is bounded
 * for the listener as a whole, not only per connection (classic_limits.h):
 * a connection cap of its own, an idle timeout, and one budget for the
 * output all its connections hold.  Output is reserved from the budget as
 * it is read and given back as the reply leaves the output queue; a
 * command whose output finds the budget spent is killed and its reply says
 * so.  The reply is handed to the queue in chunks as the peer reads, so a
 * peer that never reads holds its own reservation, not a second copy in
 * the queue.
 *
 * The same listener takes the tutorials' FTP upload (seed 002), told apart
 * by its first bytes and handled by classic_put.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/ferry.h"
#include "audit.h"
#include "classic.h"
#include "classic_put.h"
#include "daemon.h"
#include "runner.h"

#define CLASSIC_MAX_OUTPUT   (16u << 20)
#define CLASSIC_TIMEOUT_MS   30000
#define CLASSIC_MAX_COMMAND  (64u * 1024u)
/* How much of a reply is handed to the output queue at a time. */
#define CLASSIC_REPLY_CHUNK  (256u * 1024u)

/* Why a command's output was cut. */
enum { CUT_NONE, CUT_CONN, CUT_BUDGET };

/* Output collected for one reply. */
struct capture {
    uint8_t *data;
    size_t len;
};

struct classic {
    struct ferry_conn *c;
    const struct classic_config *cc;
    int decided;                /* the first bytes told commands from uploads */
    struct classic_put *put;    /* set: this connection uploads files (seed 002) */
    struct runner *exec;
    struct capture out[2];      /* stdout, stderr */
    size_t total;               /* output captured */
    int slot;                   /* in the shared limits */
    size_t reserved;            /* reserved from the shared budget */
    int truncated;              /* CUT_* */
    struct ferry_timer *idle;
    /* The reply being sent: pieces 0 (header), 1 (stdout), 2 (stderr). */
    int sending;
    uint8_t *head;
    size_t head_len;
    int piece;
    size_t off;
    struct audit_cmd cmd;       /* the running command's audit record */
    struct audit_who who;       /* every audit line's peer and listener */
};

static int capture_append(struct capture *cap, const void *data, size_t len)
{
    uint8_t *grown = realloc(cap->data, cap->len + len);
    if (!grown)
        return -ENOMEM;
    memcpy(grown + cap->len, data, len);
    cap->data = grown;
    cap->len += len;
    return 0;
}

static void captures_clear(struct classic *k)
{
    for (int i = 0; i < 2; i++) {
        free(k->out[i].data);
        k->out[i].data = NULL;
        k->out[i].len = 0;
    }
    k->total = 0;
    k->truncated = CUT_NONE;
    classic_limits_release(k->cc->limits, k->slot, k->reserved);
    k->reserved = 0;
    free(k->head);
    k->head = NULL;
    k->head_len = 0;
}

static int on_output(void *arg, int stream, const uint8_t *data, size_t len)
{
    struct classic *k = arg;
    size_t room = CLASSIC_MAX_OUTPUT - k->total;
    size_t want = len < room ? len : room;
    size_t got = classic_limits_reserve(k->cc->limits, k->slot, want);

    if (got > 0 && capture_append(&k->out[stream - 1], data, got) < 0) {
        classic_limits_release(k->cc->limits, k->slot, got);
        return -ENOMEM;
    }
    k->reserved += got;
    k->total += got;
    if (got < len) {
        /* Keep what fits and stop the command: returning < 0 kills it. */
        k->truncated = got < want ? CUT_BUDGET : CUT_CONN;
        return -ENOBUFS;
    }
    return 0;
}

/* Give back the budget a reply no longer holds: what has left the output
 * queue.  Without a notice when the queue empties, the rest is given back
 * at the next command, on drain, or at close: over-counting, never under. */
static void release_sent(struct classic *k)
{
    size_t queued = ferry_conn_pending(k->c);

    if (k->reserved > queued) {
        classic_limits_release(k->cc->limits, k->slot, k->reserved - queued);
        k->reserved = queued;
    }
}

static void reply_done(struct classic *k)
{
    size_t keep;

    k->sending = 0;
    /* The captures go; what the queue still holds of them stays counted. */
    release_sent(k);
    keep = k->reserved;
    k->reserved = 0;
    captures_clear(k);
    k->reserved = keep;
    if (ferry_conn_stopping(k->c))
        ferry_conn_close(k->c);
    else
        ferry_conn_resume_read(k->c);
}

/* Hand the reply to the connection while it takes more (on_drain calls
 * again); the budget is given back once all of it is handed over. */
static void reply_pump(struct classic *k)
{
    while (k->sending && !ferry_conn_write_blocked(k->c)) {
        const uint8_t *base = k->piece == 0 ? k->head : k->out[k->piece - 1].data;
        size_t len = k->piece == 0 ? k->head_len : k->out[k->piece - 1].len;
        size_t n = len - k->off < CLASSIC_REPLY_CHUNK ? len - k->off : CLASSIC_REPLY_CHUNK;
        int r;

        if (n == 0) {
            if (++k->piece == 3)
                reply_done(k);
            k->off = 0;
            continue;
        }
        r = ferry_conn_write(k->c, base + k->off, n);
        if (r < 0) {
            k->sending = 0;
            ferry_conn_abort(k->c, r);
            return;
        }
        k->off += n;
    }
}

static void on_exit_cb(void *arg, const struct runner_result *res)
{
    struct classic *k = arg;
    char note[192] = "";
    json_t *h;

    if (k->truncated == CUT_BUDGET)
        snprintf(note, sizeof note, "\n[ferryd: output cut at %zu bytes: the classic listener's "
                 "output budget (%zu MiB across its connections) is in use; command killed]\n",
                 k->total, classic_limits_max_output(k->cc->limits) >> 20);
    else if (k->truncated == CUT_CONN)
        snprintf(note, sizeof note, "\n[ferryd: output cut at %u MiB; command killed]\n",
                 CLASSIC_MAX_OUTPUT >> 20);
    else if (res->timed_out)
        snprintf(note, sizeof note, "\n[ferryd: command killed after %d s]\n", CLASSIC_TIMEOUT_MS / 1000);
    if (note[0] && capture_append(&k->out[1], note, strlen(note)) == 0)
        k->total += strlen(note);
    if (k->exec)   /* else it never started, and said so */
        audit_cmd_end(&k->cmd, &k->who, res, NULL);

    runner_free(k->exec);
    k->exec = NULL;
    ferry_timer_restart(k->idle, (uint64_t)k->cc->idle_timeout_ms);
    h = json_pack("{s:I, s:I, s:I, s:i}",
                  "total_size", (json_int_t)(k->out[0].len + k->out[1].len),
                  "stdout_size", (json_int_t)k->out[0].len,
                  "stderr_size", (json_int_t)k->out[1].len,
                  "status", res->signaled ? 128 + res->signal : res->status);
    /* body_size 0: the encoder leaves "size" alone; total_size is the
     * tutorial's own count of what follows. */
    if (!h || ferry_frame_encode(h, 0, NULL, &k->head, &k->head_len) < 0) {
        json_decref(h);
        captures_clear(k);
        ferry_conn_abort(k->c, -ENOMEM);
        return;
    }
    json_decref(h);
    k->sending = 1;
    k->piece = 0;
    k->off = 0;
    reply_pump(k);
}

static const struct runner_ops classic_exec_ops = {
    .on_output = on_output,
    .on_exit = on_exit_cb,
};

static int classic_on_data(struct ferry_conn *c, const void *data, size_t len, void *arg)
{
    struct classic *k = ferry_conn_data(c);
    struct runner_spec spec = { .timeout_ms = CLASSIC_TIMEOUT_MS };
    char *command = NULL, err[512];
    int r;
    (void)arg;

    ferry_timer_restart(k->idle, (uint64_t)k->cc->idle_timeout_ms);
    /* What left of the last reply since gives its budget back. */
    release_sent(k);
    if (!k->decided) {
        k->decided = 1;
        if (classic_put_detect(data, len)) {
            k->put = classic_put_new(c, k->cc->daemon->root);
            if (!k->put)
                return -ENOMEM;
        }
    }
    if (k->put)
        return classic_put_feed(k->put, data, len);
    if (len > CLASSIC_MAX_COMMAND)
        len = CLASSIC_MAX_COMMAND;
    command = strndup(data, len);
    if (!command)
        return -ENOMEM;
    spec.shell = command;
    /* One command at a time, as the tutorial's client expects: input that
     * arrives meanwhile waits in the socket until the reply is sent. */
    ferry_conn_pause_read(c);
    ferry_log_debug("classic %s: %s", ferry_conn_peer(c), FERRY_LOG_Q(command));
    r = runner_start(ferry_conn_loop(c), &spec, &classic_exec_ops, k, &k->exec, err, sizeof err);
    if (audit_cmd_begin(&k->cmd, NULL, command, NULL, NULL, r == 0 ? runner_pid(k->exec) : 0) < 0) {
        free(command);
        if (r == 0)
            runner_abort(k->exec);
        k->exec = NULL;
        return -ENOMEM;   /* not run unrecorded */
    }
    free(command);
    if (r < 0) {
        audit_cmd_end(&k->cmd, &k->who, NULL, err);
        struct runner_result res = { .exited = 1, .status = r == -ENOENT ? 127 : 126 };
        capture_append(&k->out[1], err, strlen(err));
        capture_append(&k->out[1], "\n", 1);
        k->total = k->out[1].len;
        k->exec = NULL;
        on_exit_cb(k, &res);
    }
    return 0;
}

/* The peer is doing nothing: no input, no command, no reply read. */
static void on_idle(struct ferry_loop *loop, struct ferry_timer *t, void *arg)
{
    struct classic *k = arg;
    (void)loop;

    if (k->exec) {
        /* A running command is not idle; it has its own time limit. */
        ferry_timer_restart(t, (uint64_t)k->cc->idle_timeout_ms);
        return;
    }
    ferry_log_info("classic %s: idle for %d s, closing", ferry_conn_peer(k->c),
                   k->cc->idle_timeout_ms / 1000);
    /* abort, not close: a reply the peer does not read must not keep it. */
    ferry_conn_abort(k->c, -ETIMEDOUT);
}

/* Refused connections as one line at most once a second, not a line each:
 * a flood must not flood the log too.  Opening and closing connections
 * both report, so the last of a burst is told once its peers leave. */
static void log_refusals(const struct classic_config *cc)
{
    unsigned long refused = classic_limits_refusals(cc->limits);

    if (refused)
        ferry_log_warn("classic: %lu connection%s refused: limit of %d classic connections "
                       "reached (--classic-max-conns)", refused, refused == 1 ? "" : "s",
                       classic_limits_max_conns(cc->limits));
}

static int classic_on_open(struct ferry_conn *c, void *arg)
{
    const struct classic_config *cc = arg;
    struct classic *k;
    int r = classic_limits_enter(cc->limits);

    log_refusals(cc);
    if (r < 0)
        return r;   /* refused: no on_close follows */
    k = calloc(1, sizeof *k);
    if (k)
        k->idle = ferry_loop_timer(ferry_conn_loop(c), (uint64_t)cc->idle_timeout_ms, on_idle, k);
    if (!k || !k->idle) {
        free(k);
        classic_limits_leave(cc->limits, r);
        return -ENOMEM;
    }
    k->slot = r;
    k->c = c;
    k->cc = cc;
    k->who = (struct audit_who){ .peer = ferry_conn_peer(c), .listener = "classic" };
    ferry_conn_set_data(c, k);
    /* The classic protocol has no handshake: the server-wide handshake
     * (--auth-timeout) deadline must not close its connections; its own
     * idle timer does. */
    ferry_conn_set_authenticated(c);
    audit_session(&k->who, "none", "ok", NULL);
    return 0;
}

static void classic_on_drain(struct ferry_conn *c, void *arg)
{
    struct classic *k = ferry_conn_data(c);
    (void)arg;
    if (!k->sending) {
        release_sent(k);
        return;
    }
    /* The peer reads: not idle. */
    ferry_timer_restart(k->idle, (uint64_t)k->cc->idle_timeout_ms);
    reply_pump(k);
}

static void classic_on_shutdown(struct ferry_conn *c, void *arg)
{
    struct classic *k = ferry_conn_data(c);
    (void)arg;
    if (!k->exec && !k->sending)
        ferry_conn_close(c);
}

static void classic_on_close(struct ferry_conn *c, int reason, void *arg)
{
    struct classic *k = ferry_conn_data(c);
    (void)reason;
    (void)arg;
    if (!k)
        return;
    if (k->exec) {
        runner_abort(k->exec);
        audit_cmd_end(&k->cmd, &k->who, NULL, NULL);
    }
    ferry_timer_cancel(k->idle);
    classic_put_free(k->put);
    captures_clear(k);
    classic_limits_leave(k->cc->limits, k->slot);
    log_refusals(k->cc);
    free(k);
}

const struct ferry_handler classic_handler = {
    .on_open = classic_on_open,
    .on_data = classic_on_data,
    .on_drain = classic_on_drain,
    .on_shutdown = classic_on_shutdown,
    .on_close = classic_on_close,
};
