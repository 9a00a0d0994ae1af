/*
 * signals.c - the client's signal handlers (signals.h).
 *
 * The forwarding handler uses the classic self-pipe: a handler may call
 * write() but nothing that formats or allocates, and the pipe wakes the
 * loop that watches it.  No SA_RESTART anywhere: a wait must return at
 * once so the loop sees the pipe, or a transfer sees the flag.
 */
#include "signals.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

static const int forwarded[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
static const int interrupting[] = { SIGINT, SIGTERM, SIGHUP };
#define N_FORWARDED (sizeof forwarded / sizeof forwarded[0])
#define N_INTERRUPTING (sizeof interrupting / sizeof interrupting[0])

static int signal_pipe[2] = { -1, -1 };

volatile sig_atomic_t signals_interrupted;

int signals_pipe_fd(void)
{
    if (signal_pipe[0] < 0 && pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
        return -errno;
    return signal_pipe[0];
}

static void on_forwarded(int signo)
{
    int saved = errno;
    unsigned char b = (unsigned char)signo;

    if (write(signal_pipe[1], &b, 1) < 0) {
        /* The pipe is full: plenty of signals are already waiting. */
    }
    errno = saved;   /* the interrupted code may be about to read errno */
}

static void on_interrupting(int signo)
{
    signals_interrupted = signo;
    on_forwarded(signo);   /* and wake the loop that waits */
}

static signals_hook_fn *hook;
static void *hook_arg;

void signals_set_hook(signals_hook_fn *fn, void *arg)
{
    hook = fn;
    hook_arg = arg;
}

int signals_dispatch(void)
{
    unsigned char junk[64];

    if (hook) {
        hook(hook_arg);
        return 1;
    }
    while (read(signal_pipe[0], junk, sizeof junk) > 0)
        ;
    return 0;
}

/* Install handler for sigs[0..n), all or none.  0 or -errno. */
static int install(const int *sigs, size_t n, void (*handler)(int), struct signals_saved *saved)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < n; i++) {
        if (sigaction(sigs[i], &sa, &saved->old[i]) < 0) {
            int e = -errno;

            while (i-- > 0)
                sigaction(sigs[i], &saved->old[i], NULL);
            return e;
        }
    }
    return 0;
}

static void restore(const int *sigs, size_t n, const struct signals_saved *saved)
{
    for (size_t i = 0; i < n; i++)
        sigaction(sigs[i], &saved->old[i], NULL);
}

int signals_forward_install(struct signals_saved *saved)
{
    int r = signals_pipe_fd();

    if (r < 0)
        return r;
    return install(forwarded, N_FORWARDED, on_forwarded, saved);
}

void signals_forward_restore(const struct signals_saved *saved)
{
    unsigned char junk[64];

    restore(forwarded, N_FORWARDED, saved);
    /* A signal that arrived after the command ended has nobody to go to. */
    while (read(signal_pipe[0], junk, sizeof junk) > 0)
        ;
}

int signals_winch_install(struct sigaction *old)
{
    struct sigaction sa;
    int r = signals_pipe_fd();

    if (r < 0)
        return r;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_forwarded;
    sigemptyset(&sa.sa_mask);
    return sigaction(SIGWINCH, &sa, old) < 0 ? -errno : 0;
}

void signals_winch_restore(const struct sigaction *old)
{
    sigaction(SIGWINCH, old, NULL);
}

size_t signals_take(int *sigs, size_t n)
{
    unsigned char b[16];
    ssize_t got;

    if (n > sizeof b)
        n = sizeof b;
    got = signal_pipe[0] >= 0 ? read(signal_pipe[0], b, n) : -1;
    for (ssize_t i = 0; i < got; i++)
        sigs[i] = b[i];
    return got > 0 ? (size_t)got : 0;
}

const char *signals_name(int signo)
{
    switch (signo) {
    case SIGINT:  return "INT";
    case SIGTERM: return "TERM";
    case SIGHUP:  return "HUP";
    case SIGQUIT: return "QUIT";
    default:      return NULL;
    }
}

int signals_interrupt_install(struct signals_saved *saved)
{
    int r = signals_pipe_fd();

    if (r < 0)
        return r;
    return install(interrupting, N_INTERRUPTING, on_interrupting, saved);
}

void signals_interrupt_restore(const struct signals_saved *saved)
{
    restore(interrupting, N_INTERRUPTING, saved);
}
