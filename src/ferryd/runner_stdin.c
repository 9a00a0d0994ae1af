/*
 * runner_stdin.c - a running command's stdin (runner.h): bytes written to
 * its pipe at once when it takes them, queued (byteq) and written as the
 * pipe drains otherwise, with on_stdin_progress / on_stdin_drained for the
 * session's flow-control window; its end, which on a terminal is the
 * end-of-file character typed.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "ferry/error.h"
#include "ferry/log.h"
#include "ferry/loop.h"
#include "byteq.h"
#include "fdio.h"
#include "pty.h"
#include "runner.h"
#include "runner_int.h"

void runner__stdin_close(struct runner *e)
{
    if (e->in_watched) {
        ferry_loop_remove(e->loop, e->in_fd);
        e->in_watched = false;
    }
    fdio_close(&e->in_fd);
    e->in_open = false;
    byteq_clear(&e->in_queue);
}

/* The command closed its stdin (EPIPE) or writing failed: drop what is
 * queued.  Returns whether anything was queued (worth an on_stdin_drained). */
static bool stdin_broken(struct runner *e)
{
    bool had = e->in_queue.pending > 0;

    runner__stdin_close(e);
    return had;
}

/* Write as much of the queue as the pipe takes.  0 when the queue is
 * flushed, 1 when the pipe is full, -EPIPE when stdin broke. */
static int stdin_flush(struct runner *e)
{
    int rc = byteq_flush(&e->in_queue, e->in_fd);

    if (rc < 0 && rc != -EPIPE)
        ferry_log_warn("exec: writing stdin of pid %d: %s", (int)e->pid, ferry_strerror(rc));
    return rc < 0 ? -EPIPE : rc;
}

static void on_stdin_writable(struct ferry_loop *loop, int fd, unsigned events, void *arg)
{
    struct runner *e = arg;
    bool drained = false;
    size_t before = runner_stdin_pending(e);
    int rc;

    runner__enter(e);
    rc = stdin_flush(e);
    if (rc < 0) {
        drained = stdin_broken(e);
    } else if (rc == 0) {
        ferry_loop_remove(e->loop, e->in_fd);
        e->in_watched = false;
        if (e->in_close_wanted)
            fdio_close(&e->in_fd);
        drained = true;
    }
    if (drained && e->ops.on_stdin_drained)
        e->ops.on_stdin_drained(e->arg);
    else if (!drained && rc > 0 && runner_stdin_pending(e) < before && e->ops.on_stdin_progress)
        e->ops.on_stdin_progress(e->arg);
    runner__leave(e);
}

int runner_write_stdin(struct runner *e, const void *data, size_t len)
{
    const uint8_t *p = data;

    if (!e->in_open)
        return -EPIPE;
    if (len == 0)
        return 0;
    /* Nothing queued: try the pipe directly, the common case for an
     * interactive command that keeps up. */
    while (byteq_empty(&e->in_queue) && len > 0) {
        ssize_t n = write(e->in_fd, p, len);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            if (errno != EPIPE)
                ferry_log_warn("exec: writing stdin of pid %d: %s", (int)e->pid,
                               ferry_strerror(-errno));
            stdin_broken(e);
            return -EPIPE;
        }
        p += n;
        len -= (size_t)n;
    }
    if (len == 0)
        return 0;

    if (!e->in_watched) {
        int rc = ferry_loop_add(e->loop, e->in_fd, FERRY_WRITABLE, on_stdin_writable, e);

        if (rc < 0)
            return rc;
        e->in_watched = true;
    }
    /* -ENOMEM: nothing queued; the watcher finds the queue as it was. */
    return byteq_push(&e->in_queue, p, len);
}

size_t runner_stdin_pending(const struct runner *e)
{
    return e->in_queue.pending;
}

void runner_close_stdin(struct runner *e)
{
    /* A terminal has no end of input but its end-of-file character, which
     * in canonical mode makes the reader's read return 0: type it. */
    if (e->pty && e->in_open) {
        int c = pty_eof_char(e->in_fd);

        if (c >= 0)
            (void)runner_write_stdin(e, &(uint8_t){ (uint8_t)c }, 1);
    }
    e->in_open = false;
    e->in_close_wanted = true;
    if (byteq_empty(&e->in_queue))
        fdio_close(&e->in_fd);
}
