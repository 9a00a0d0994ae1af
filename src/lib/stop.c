/*
 * stop.c - a server's stop request and the signals that make one (see
 * stop.h).  Apart from server.c so that the models, which stop the server
 * when they fail and catch SIGTERM in a forked child, call down into it.
 */
#include "stop.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "server_int.h"

/* The server that SIGINT/SIGTERM stop.  One at a time per process, which is
 * what signals allow anyway. */
static struct ferry_server *_Atomic signal_target;

void ferry__stop_request(struct ferry_server *s)
{
    int saved = errno;   /* we may run inside a signal handler */

    if (!atomic_exchange(&s->stopping, 1)) {
        /* The read end stays readable from now on: every loop and every
         * blocked reader polling it learns of the stop, including forked
         * children, which share the pipe. */
        ssize_t w = write(s->stop_pipe[1], "x", 1);
        (void)w;
    }
    errno = saved;
}

void ferry__stop_tell(struct ferry_server *s)
{
    if (s->on_stop && !atomic_exchange(&s->stop_told, 1))
        s->on_stop(s, s->on_stop_arg);
}

static void on_signal(int sig)
{
    struct ferry_server *s = atomic_load(&signal_target);

    (void)sig;
    if (s)
        ferry__stop_request(s);
}

void ferry__stop_catch_signal(struct ferry_server *s, int sig, struct sigaction *old)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    atomic_store(&signal_target, s);
    sigaction(sig, &sa, old);
}

void ferry__stop_restore_signal(int sig, const struct sigaction *old)
{
    sigaction(sig, old, NULL);
    atomic_store(&signal_target, NULL);
}
