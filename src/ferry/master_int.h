/*
 * master_int.h - what the pieces of `ferry master` share (master.h says
 * what a master is): the master process's state (master_pool.c runs it)
 * and the worker processes it forks (master_worker.c).
 *
 * The master owns the listening socket and never touches the network;
 * each worker holds one authenticated session to the server.  A client the
 * master accepts is passed, as a descriptor over the worker's control
 * socket, to an idle worker, which relays it; a worker whose client
 * released the session at rest goes back to idle with the same connection,
 * otherwise it ends.  Over the control socket a worker says one byte at a
 * time what became of it (enum worker_news).
 */
#ifndef FERRY_CLIENT_MASTER_INT_H
#define FERRY_CLIENT_MASTER_INT_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "dial.h"

/* Sessions at once (each a worker with its own connection to the server),
 * and clients that may wait for one. */
#define MASTER_WORKERS 16
#define MASTER_QUEUE 64

/* How long a client may take to say what it wants (PROTOCOL.md 2.9):
 * the master keeps one that has not spoken from the workers that long. */
#define MASTER_ASK_MS 5000

/* BUSY: handed a client that has not said what it wants; SESSION: relaying. */
enum worker_state { W_STARTING = 0, W_IDLE, W_BUSY, W_SESSION };
enum worker_news { WORKER_READY = 'r', WORKER_SESSION = 'S', WORKER_FAILED = 'f', WORKER_LOST = 'l',
                   WORKER_STOP = 's' };

struct worker {
    pid_t pid;
    int ctl;                 /* our end of its control socket */
    enum worker_state state;
    uint64_t since;          /* when it was started (ms) */
    uint64_t idle_at;        /* when it last became idle (ms) */
};

struct master {
    const char *host;
    const struct dial_opts *o;      /* as given: each worker resolves HOST itself */
    char path[128];                 /* the socket */
    int listen_fd, lock_fd, sig_fd;
    int ready_fd;                   /* --background: the waiting caller, until told */
    int background;                 /* --background: stdio is the caller's until then */
    sigset_t old_mask;              /* the mask before ours, for the workers */
    pid_t pid;                      /* the master's */
    double persist;                 /* idle seconds before stopping; 0 = never */
    struct worker w[MASTER_WORKERS];
    size_t nw;
    /* Accepted clients, waiting for their request to arrive, then for an
     * idle worker: one that never speaks must not hold a worker. */
    struct waiting {
        int fd;
        uint64_t since;             /* accepted (ms) */
        int spoke;                  /* something (its request, or its end) is there to read */
        int peeked;                 /* ... and the master looked whether it is its own */
    } queue[MASTER_QUEUE];
    size_t nq;
    int failures;                   /* workers that failed to connect, in a row */
    int ever_ready;
    int stop;
    uint64_t idle_since;            /* no session since (ms) */
    uint64_t retry_at;              /* a worker is due then (ms; 0: none due) */
};

/* Run the master until it stops: 0 when it ever had a session to offer,
 * else FERRY_EXIT_ERROR (the first worker said why).  master_pool.c. */
int master_run(struct master *m);

/* Tell the caller of --background how it went ('y' or 'n'), once. */
void master_say_ready(struct master *m, char what);

/* stdin, stdout and stderr to /dev/null: a background master's (and its
 * workers') once the caller has its answer, so that it is not held.
 * master_worker.c. */
void master_quiet_stdio(void);

/* The worker's life, in the child just forked: connect, then serve the
 * clients passed over ctl.  Never returns.  master_worker.c. */
void master_worker_main(struct master *m, int ctl) __attribute__((noreturn));

#endif
