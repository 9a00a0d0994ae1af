/*
 * stopsig.c - SIGINT, SIGTERM and SIGHUP: tell the manager, stop the
 * server, and say so (stopsig.h).  Everything the handler calls is
 * async-signal-safe: a send(2) on an already connected socket,
 * ferry_server_stop's write to its stop pipe, and an atomic store of the
 * signal's number.  A log line is not (it formats a time and takes the
 * log's lock), so the line that says the stop begins is written by the
 * server's first loop to see the stop (ferry_server_on_stop), which reads
 * that number back.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "ferry/log.h"
#include "sdnotify.h"
#include "stopsig.h"

static struct ferry_server *_Atomic target;
static atomic_int caught;   /* the first stop signal's number, or 0 */
static int grace_s;

static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGINT:  return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGHUP:  return "SIGHUP";
    default:      return "a signal";
    }
}

/* One line, from what the server knows as the stop begins: the
 * connections it holds (their commands and transfers may run on for the
 * grace).  A stop no signal asked for (a loop that failed) says so too. */
static void say_stop(struct ferry_server *s, void *arg)
{
    int sig = atomic_load(&caught), n = ferry_server_connections(s);
    char why[32] = "";

    (void)arg;
    if (sig)
        snprintf(why, sizeof why, " on %s", signal_name(sig));
    if (n == 0)
        ferry_log_info("stopping%s: no connections open", why);
    else
        ferry_log_info("stopping%s: %d connection%s open; waiting up to %d s for what runs on "
                       "%s", why, n, n == 1 ? "" : "s", grace_s, n == 1 ? "it" : "them");
}

static void on_stop(int sig)
{
    struct ferry_server *s = atomic_load(&target);
    int none = 0, saved = errno;

    if (s) {
        /* The first signal names the stop; it is stored before the stop
         * is asked for, so the line that reads it finds it. */
        (void)atomic_compare_exchange_strong(&caught, &none, sig);
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

int stopsig_catch(struct ferry_server *s, int grace_ms)
{
    grace_s = (grace_ms + 999) / 1000;
    ferry_server_on_stop(s, say_stop, NULL);
    atomic_store(&target, s);
    return set_handler(on_stop);
}

void stopsig_release(void)
{
    (void)set_handler(SIG_DFL);
    atomic_store(&target, NULL);
}
