/*
 * stopsig.c - SIGINT, SIGTERM and SIGHUP: tell the manager, stop the
 * server (stopsig.h).  Everything the handler calls is async-signal-safe: a
 * send(2) on an already connected socket, and ferry_server_stop's write to
 * its stop pipe.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>

#include "sdnotify.h"
#include "stopsig.h"

static struct ferry_server *_Atomic target;

static void on_stop(int sig)
{
    struct ferry_server *s = atomic_load(&target);
    int saved = errno;

    (void)sig;
    if (s) {
        (void)sdnotify_send("STOPPING=1");
        ferry_server_stop(s);
    }
    errno = saved;
}

static int set_handler(void (*fn)(int))
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sigemptyset(&sa.sa_mask);
    /* SIGHUP too: left at its default it ended ferryd at once, unlogged,
     * and the commands it ran lived on without it (an admin's kill -HUP,
     * a closed terminal).  ferryd has nothing to reload: the keys file is
     * read at every connection. */
    if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0 ||
        sigaction(SIGHUP, &sa, NULL) < 0)
        return -errno;
    return 0;
}

int stopsig_catch(struct ferry_server *s)
{
    atomic_store(&target, s);
    return set_handler(on_stop);
}

void stopsig_release(void)
{
    (void)set_handler(SIG_DFL);
    atomic_store(&target, NULL);
}
