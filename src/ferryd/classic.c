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
 * session.  The reply leaves in one gathered write: the tutorial's four
 * small sends stall on Nagle and delayed ACKs on a reused connection.
 * There is no authentication here; main.c keeps it on loopback unless
 * the operator insists.
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

/* Output collected for one reply. */
struct capture {
    uint8_t *data;
    size_t len;
};

struct classic {
    struct ferry_conn *c;
    const struct daemon_config *cfg;
    int decided;                /* the first bytes told commands from uploads */
    struct classic_put *put;    /* set: this connection uploads files (seed 002) */
    struct runner *exec;
    struct capture out[2];      /* stdout, stderr */
    size_t total;
    int truncated;
    struct audit_cmd cmd;       /* the running command's audit record */
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
    k->truncated = 0;
}

static int on_output(void *arg, int stream, const uint8_t *data, size_t len)
{
    struct classic *k = arg;
    size_t room = CLASSIC_MAX_OUTPUT - k->total;

    if (len > room) {
        /* Keep what fits and stop the command: returning < 0 kills it. */
        capture_append(&k->out[stream - 1], data, room);
        k->total += room;
        k->truncated = 1;
        return -ENOBUFS;
    }
    if (capture_append(&k->out[stream - 1], data, len) < 0)
        return -ENOMEM;
    k->total += len;
    return 0;
}

static void on_exit_cb(void *arg, const struct runner_result *res)
{
    struct classic *k = arg;
    char note[96] = "";
    uint8_t *head = NULL;
    size_t head_len = 0;
    json_t *h;

    if (k->truncated)
        snprintf(note, sizeof note, "\n[ferryd: output cut at %u MiB; command killed]\n",
                 CLASSIC_MAX_OUTPUT >> 20);
    else if (res->timed_out)
        snprintf(note, sizeof note, "\n[ferryd: command killed after %d s]\n", CLASSIC_TIMEOUT_MS / 1000);
    if (note[0] && capture_append(&k->out[1], note, strlen(note)) == 0)
        k->total += strlen(note);
    if (k->exec)   /* else it never started, and said so */
        audit_cmd_end(&k->cmd, ferry_conn_peer(k->c), "classic", res, NULL);

    h = json_pack("{s:I, s:I, s:I, s:i}",
                  "total_size", (json_int_t)(k->out[0].len + k->out[1].len),
                  "stdout_size", (json_int_t)k->out[0].len,
                  "stderr_size", (json_int_t)k->out[1].len,
                  "status", res->signaled ? 128 + res->signal : res->status);
    /* body_size 0: the encoder leaves "size" alone; total_size is the
     * tutorial's own count of what follows. */
    if (!h || ferry_frame_encode(h, 0, NULL, &head, &head_len) < 0) {
        json_decref(h);
        ferry_conn_abort(k->c, -ENOMEM);
        goto out;
    }
    json_decref(h);
    struct iovec iov[3] = {
        { head, head_len },
        { k->out[0].data, k->out[0].len },
        { k->out[1].data, k->out[1].len },
    };
    int r = ferry_conn_writev(k->c, iov, 3);
    if (r < 0)
        ferry_conn_abort(k->c, r);
out:
    free(head);
    runner_free(k->exec);
    k->exec = NULL;
    captures_clear(k);
    ferry_conn_resume_read(k->c);
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

    if (!k->decided) {
        k->decided = 1;
        if (classic_put_detect(data, len)) {
            k->put = classic_put_new(c, k->cfg->root);
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
    if (audit_cmd_begin(&k->cmd, NULL, command, NULL, r == 0 ? runner_pid(k->exec) : 0) < 0) {
        free(command);
        if (r == 0)
            runner_abort(k->exec);
        k->exec = NULL;
        return -ENOMEM;   /* not run unrecorded */
    }
    free(command);
    if (r < 0) {
        audit_cmd_end(&k->cmd, ferry_conn_peer(c), "classic", NULL, err);
        struct runner_result res = { .exited = 1, .status = r == -ENOENT ? 127 : 126 };
        capture_append(&k->out[1], err, strlen(err));
        capture_append(&k->out[1], "\n", 1);
        k->total = k->out[1].len;
        k->exec = NULL;
        on_exit_cb(k, &res);
    }
    return 0;
}

static int classic_on_open(struct ferry_conn *c, void *arg)
{
    struct classic *k = calloc(1, sizeof *k);
    if (!k)
        return -ENOMEM;
    k->c = c;
    k->cfg = arg;
    ferry_conn_set_data(c, k);
    /* The classic protocol has no handshake: the server-wide handshake
     * (--auth-timeout) deadline must not close its connections. */
    ferry_conn_set_authenticated(c);
    audit_session(ferry_conn_peer(c), "classic", "none", NULL, NULL, "ok", NULL);
    return 0;
}

static void classic_on_shutdown(struct ferry_conn *c, void *arg)
{
    struct classic *k = ferry_conn_data(c);
    (void)arg;
    if (!k->exec)
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
        audit_cmd_end(&k->cmd, ferry_conn_peer(c), "classic", NULL, NULL);
    }
    classic_put_free(k->put);
    captures_clear(k);
    free(k);
}

const struct ferry_handler classic_handler = {
    .on_open = classic_on_open,
    .on_data = classic_on_data,
    .on_shutdown = classic_on_shutdown,
    .on_close = classic_on_close,
};
