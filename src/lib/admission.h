/*
 * admission.h - what comes in through a server's listeners, for every
 * model: connections, accepted in bounded bursts under the server's limits
 * (the connection cap, fair admission to the not-yet-authenticated slots
 * (admit_policy.h, slots.h), the verify hook), refusals logged as one
 * summary line a second at most, and
 * paused for a moment when the process runs out of descriptors; and
 * datagrams.  An event worker admits on its own loop; THREAD and FORK on
 * the acceptor's.  What is done with an admitted connection is the
 * model's (the start callback), so this module calls no connection code.
 */
#ifndef FERRY_ADMISSION_H
#define FERRY_ADMISSION_H

#include "server_int.h"

/* Take an accepted fd (it holds its slots, see slots.h). */
typedef void admission_start_fn(void *arg, struct listener *l, int fd, const char *peer);

struct admission;

/* What one listener's watcher needs. */
struct admission_watch {
    struct admission *adm;
    struct listener *l;
};

struct admission {
    struct ferry_server *server;
    struct ferry_loop *loop;
    int nonblock;                        /* accepted fds non-blocking (EVENT) or not */
    int stopped;                         /* no more accepting on this loop */
    struct ferry_timer *resume_timer;    /* the descriptor back-off */
    struct ferry_timer *summary_timer;   /* the refusals' summary line is due */
    struct admission_watch *watches;     /* one per listener */
    uint8_t *dgram_buf;                  /* DGRAM_MAX, lent to on_datagram; NULL without
                                          * datagram listeners */
    admission_start_fn *start;
    void *arg;
};

/* Watch every listener of s on loop; connections go to start(arg, ...). */
int ferry__admission_init(struct admission *a, struct ferry_server *s, struct ferry_loop *loop,
                          int nonblock, admission_start_fn *start, void *arg);
/* Stop watching the listeners (the server is stopping). */
void ferry__admission_stop(struct admission *a);
/* Free what init made; the loop must still exist. */
void ferry__admission_destroy(struct admission *a);

/* Log "listening on PROTO ADDR (MODEL model)" for every listener.  Models
 * call it once they can serve, so the line means "ready" (tests wait for
 * it). */
void ferry__admission_log_ready(const struct ferry_server *s, const char *model);

#endif
