/*
 * server_int.h - the server's and its listeners' structs, which server.c,
 * stop.c, the models, admission.c and the connection engine (conn_int.h)
 * share, and the models' entry points.  Calls go downward only:
 * server.c -> model_*.c -> admission.c / acceptor.c -> conn_*.c.
 *
 * Ownership: the server owns its listeners; a connection is owned by the
 * context that accepted it (an event worker, a connection thread or a
 * forked child) and is freed there, never elsewhere.
 */
#ifndef FERRY_SERVER_INT_H
#define FERRY_SERVER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "ferry/addr.h"
#include "ferry/loop.h"
#include "ferry/server.h"
#include "slots.h"

#define FERRY_DEFAULT_MAX_CONNS   1024
#define FERRY_DEFAULT_GRACE_MS    5000
/* How long accepting pauses after EMFILE/ENFILE. */
#define FERRY_EMFILE_BACKOFF_MS   100

struct listener {
    struct ferry_server *server;
    int fd;
    enum ferry_sock_type type;
    struct ferry_handler h;
    struct ferry_tls *tls;     /* not owned: every connection is TLS; NULL: plain */
    char name[FERRY_ADDRSTRLEN];
    char unix_path[108];       /* set when we created a unix socket file to unlink */
    char origin[32];           /* adopted: who passed it ("systemd"), for the log; or "" */
};

struct ferry_server {
    struct ferry_server_opts opts;
    struct listener **listeners;
    size_t nlisteners;
    int stop_pipe[2];          /* written once by ferry_server_stop; read end polled, never drained */
    atomic_int stopping;
    atomic_int running;
    /* ferry_server_on_stop: told once, by the first loop that sees the stop. */
    void (*on_stop)(struct ferry_server *s, void *arg);
    void *on_stop_arg;
    atomic_int stop_told;
    struct ferry_slots slots;  /* admission.c takes them, connection ends give them back */
    atomic_uint_fast64_t next_conn_id;
    atomic_int emfile_logged;  /* admission.c: the EMFILE warning is out */
    /* admission.c: refusals (and evictions) since the last summary line,
     * by admit_verdict, then ADMIT_NVERDICTS = the connection cap and
     * ADMIT_NVERDICTS + 1 = the verify hook; and when that line went out. */
    atomic_uint_fast64_t refused[ADMIT_NVERDICTS + 2];
    atomic_uint_fast64_t refused_logged_ms;
    int auth_notify_fd;            /* FORK child: closed when its connection authenticates; else -1 */
};

/* model_*.c */
int ferry__run_event(struct ferry_server *s);
int ferry__run_thread(struct ferry_server *s);
int ferry__run_fork(struct ferry_server *s);

#endif
