/*
 * tty.h - the client's own terminal during `ferry exec -t`: describing it
 * to the server (TERM, window size, modes: docs/PROTOCOL.md 2.8), putting
 * it in raw mode for the session and giving it back as it was on every
 * way out (a normal return, exit(), a fatal signal).
 *
 * One terminal per process: the saved state is process-wide, because an
 * exit handler and a signal handler must be able to restore it.
 */
#ifndef FERRY_CLIENT_TTY_H
#define FERRY_CLIENT_TTY_H

#include <jansson.h>

/* Add the "tty" member to an exec request: TERM (if set and valid), the
 * window size and modes of fd 0 when it is a terminal (else fd 1's size,
 * else 80 x 24, and the server's default modes), and "stderr": "pipe"
 * when our stderr is not a terminal, so the remote stderr stays apart.
 * 0 or -ENOMEM. */
int tty_describe(json_t *request);

/* A {"type":"resize",...} message with our window's size now, or NULL
 * (out of memory, or no terminal to ask; with if_changed, also when the
 * size is the one last sent, e.g. by tty_describe). */
json_t *tty_resize_message(int if_changed);

/* Put fd 0 in raw mode (as ssh does: no echo, no line editing, no signal
 * characters, no output processing) after saving its state; registers,
 * once, an atexit handler and handlers for the fatal signals that restore
 * it.  Nothing when fd 0 is not a terminal.  0 or -errno. */
int tty_raw_enter(void);

/* Give fd 0 its saved state back; idempotent and async-signal-safe. */
void tty_restore(void);

#endif
