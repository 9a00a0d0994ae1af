/*
 * runner_int.h - what runner.c and runner_stdin.c share: the runner
 * itself, and the bracket every loop callback of theirs puts around its
 * work (a callback may free its runner: the free waits for the bracket).
 */
#ifndef FERRY_RUNNER_INT_H
#define FERRY_RUNNER_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>

#include "ferry/loop.h"
#include "byteq.h"
#include "runner.h"

struct runner {
    struct ferry_loop *loop;        /* borrowed; outlives us */
    struct runner_ops ops;
    void *arg;

    pid_t pid;                      /* also the process group id */
    int pidfd;                      /* -1 when absent (polling) or closed */
    struct ferry_timer *reap_timer; /* polling fallback, else NULL */
    struct ferry_timer *kill_timer; /* timeout, then the grace period */
    struct ferry_timer *linger_timer; /* PTY_LINGER_MS after a terminal command's end */
    int term_stage;                 /* 0: nothing sent, 1: TERM, 2: KILL */

    int out_fd[2];                  /* stdout, stderr (ours, non-blocking); -1 at EOF */
    bool out_paused;
    bool out_no_splice;             /* on_output_pipe said never: read and copy */
    int coalesce_fd;                /* timerfd of the coalescing wait; -1: none (or none possible) */
    bool coalesce_armed;            /* waiting on it: out_fd[coalesce_i] is not watched */
    int coalesce_i;
    bool coalesce_done;             /* the wait is over: send what there is */
    int64_t last_out_ns;            /* when output last went out */

    bool pty;                       /* out_fd[0] is a terminal's master, in_fd its dup */
    int in_fd;                      /* stdin write end; -1 when closed or /dev/null */
    bool in_open;                   /* runner_write_stdin still accepts data */
    bool in_watched;                /* in_fd is registered for writability */
    bool in_close_wanted;           /* close in_fd once the queue is flushed */
    struct byteq in_queue;          /* what the pipe has not taken yet */

    bool reaped;
    bool finished;                  /* on_exit delivered (or aborted): no more callbacks */
    bool doomed;                    /* freed from inside a callback */
    int depth;                      /* loop callbacks of ours on the stack */
    struct runner_result res;

};

static inline void runner__enter(struct runner *e)
{
    e->depth++;
}

/* The end of a loop callback; e must not be touched after this. */
static inline void runner__leave(struct runner *e)
{
    if (--e->depth == 0 && e->doomed)
        free(e);
}

/* Stop feeding the command's stdin and drop what is queued (runner_stdin.c). */
void runner__stdin_close(struct runner *e);

#endif
