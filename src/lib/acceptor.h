/*
 * acceptor.h - the accepting loop of the THREAD and FORK models.
 *
 * Both models run one loop on the calling thread that admits connections
 * (admission.c; each is handed to a thread or a child), serves datagram
 * endpoints, and runs the graceful stop: stop accepting, wait for the live connections up
 * to the grace period, then force the stragglers.  Only what is done with
 * a connection differs, so that is all a model supplies.
 */
#ifndef FERRY_ACCEPTOR_H
#define FERRY_ACCEPTOR_H

#include "admission.h"
#include "server_int.h"

struct acceptor;

struct acceptor_ops {
    /* Take ownership of an accepted (blocking) fd. */
    void (*start)(struct acceptor *a, struct listener *l, int fd, const char *peer);
    /* How many connections are still being served. */
    size_t (*live)(struct acceptor *a);
    /* The server is stopping: tell the live connections, where they cannot
     * see the stop pipe themselves.  May be NULL. */
    void (*stopping)(struct acceptor *a);
    /* The grace period is over: make every live connection finish now. */
    void (*force)(struct acceptor *a);
    /* Added to the grace period before force, so that connections running
     * their own grace timer (fork children) reach its end first. */
    int extra_grace_ms;
};

struct acceptor {
    struct ferry_server *server;
    struct ferry_loop *loop;
    const struct acceptor_ops *ops;
    void *model;                    /* the model's own state */
    int stopping;
    struct ferry_timer *grace_timer;
    struct admission adm;           /* the listeners, on this loop */
};

int ferry__acceptor_init(struct acceptor *a, struct ferry_server *s,
                         const struct acceptor_ops *ops, void *model);
/* Run until the server has stopped and no connection is live. */
int ferry__acceptor_run(struct acceptor *a);
/* A connection finished: the acceptor re-checks whether it is done. */
void ferry__acceptor_check_done(struct acceptor *a);
void ferry__acceptor_destroy(struct acceptor *a);

#endif
