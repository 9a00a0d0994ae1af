/*
 * tty.c - the client's terminal for `ferry exec -t` (tty.h).
 *
 * Restoring must work from anywhere: tcsetattr is async-signal-safe, so
 * the fatal-signal handlers restore and then die of the same signal (the
 * shell sees the real cause); atexit covers every exit().  INT, TERM, HUP
 * and QUIT go through the signal pipe (signals.c) and end the session on
 * the normal path, which restores.
 */
#include "tty.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "proto.h"
#include "ttymodes.h"

static struct termios saved;
static struct winsize described;        /* the size tty_describe sent */
static volatile sig_atomic_t raw_on;    /* saved holds the state to go back to */
static int hooks_installed;

static const int fatal[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGALRM, SIGUSR1,
                             SIGUSR2, SIGXCPU, SIGXFSZ, SIGPIPE };

void tty_restore(void)
{
    if (raw_on) {
        /* TCSADRAIN: what we wrote is shown before the modes change. */
        (void)tcsetattr(STDIN_FILENO, TCSADRAIN, &saved);
        raw_on = 0;
    }
}

static void on_fatal(int signo)
{
    tty_restore();
    /* SA_RESETHAND made the disposition the default again. */
    (void)raise(signo);
}

static void exit_hook(void)
{
    tty_restore();
}

static void install_hooks(void)
{
    struct sigaction sa, old;

    if (hooks_installed++)
        return;
    (void)atexit(exit_hook);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal;
    sa.sa_flags = SA_RESETHAND | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof fatal / sizeof fatal[0]; i++) {
        /* An ignored signal stays ignored (SIGPIPE is, in ferry). */
        if (sigaction(fatal[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN)
            continue;
        (void)sigaction(fatal[i], &sa, NULL);
    }
}

int tty_raw_enter(void)
{
    struct termios t;

    if (!isatty(STDIN_FILENO) || raw_on)
        return 0;
    if (tcgetattr(STDIN_FILENO, &saved) < 0)
        return -errno;
    install_hooks();
    t = saved;
    t.c_iflag |= IGNPAR;
    t.c_iflag &= ~(tcflag_t)(ISTRIP | INLCR | IGNCR | ICRNL | IXON | IXANY | IXOFF);
    t.c_lflag &= ~(tcflag_t)(ISIG | ICANON | ECHO | ECHOE | ECHOK | ECHONL | IEXTEN);
    t.c_oflag &= ~(tcflag_t)OPOST;
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    raw_on = 1;
    if (tcsetattr(STDIN_FILENO, TCSADRAIN, &t) < 0) {
        int e = -errno;

        raw_on = 0;
        return e;
    }
    return 0;
}

/* Our window: fd 0's, else fd 1's; 0 x 0 when neither is a terminal. */
static void window(struct winsize *ws)
{
    memset(ws, 0, sizeof *ws);
    if (ioctl(STDIN_FILENO, TIOCGWINSZ, ws) < 0 || ws->ws_row == 0)
        if (ioctl(STDOUT_FILENO, TIOCGWINSZ, ws) < 0)
            memset(ws, 0, sizeof *ws);
}

int tty_describe(json_t *request)
{
    const char *term = getenv("TERM");
    json_t *tty = json_object();
    struct termios t;
    struct winsize ws;

    if (!tty || json_object_set_new(request, "tty", tty) < 0)
        return -ENOMEM;
    window(&ws);
    described = ws;
    if (ttysize_to_json(&ws, tty) < 0)
        return -ENOMEM;
    if (ttymodes_term_valid(term) && json_object_set_new(tty, "term", json_string(term)) < 0)
        return -ENOMEM;
    /* The modes of the terminal being typed on; raw_on: as they were. */
    if (isatty(STDIN_FILENO) && (raw_on ? (t = saved, 0) : tcgetattr(STDIN_FILENO, &t)) == 0) {
        json_t *modes = ttymodes_to_json(&t);

        if (!modes || json_object_set_new(tty, "modes", modes) < 0)
            return -ENOMEM;
    }
    if (!isatty(STDERR_FILENO) && json_object_set_new(tty, "stderr", json_string("pipe")) < 0)
        return -ENOMEM;
    return 0;
}

json_t *tty_resize_message(int if_changed)
{
    struct winsize ws;
    json_t *msg;

    window(&ws);
    if (ws.ws_row == 0 && ws.ws_col == 0)
        return NULL;
    if (if_changed && memcmp(&ws, &described, sizeof ws) == 0)
        return NULL;
    described = ws;
    msg = json_pack("{s:s}", "type", MSG_RESIZE);
    if (msg && ttysize_to_json(&ws, msg) < 0) {
        json_decref(msg);
        msg = NULL;
    }
    return msg;
}
