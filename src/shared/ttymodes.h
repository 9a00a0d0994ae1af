/*
 * ttymodes.h - a terminal's description as it travels in an exec request's
 * "tty" member and in "resize" messages (docs/PROTOCOL.md 2.8): the window
 * size, the terminal type, and the modes (termios flags and control
 * characters by name).  ferry builds them from its own terminal, ferryd
 * checks them and applies them to the command's pseudo-terminal; both use
 * this one table so that they spell every mode the same way.
 *
 * Pure: no descriptor is touched, so every bad input can be unit-tested.
 * Errors: 0, or -EINVAL with a one-line reason in (err, errlen) that is
 * fit to send back to the peer as is.
 */
#ifndef FERRY_TTYMODES_H
#define FERRY_TTYMODES_H

#include <stddef.h>
#include <sys/ioctl.h>
#include <termios.h>

#include <jansson.h>

/* Limits of a window size: rows and columns 1..TTY_MAX_CELLS, pixels
 * 0..TTY_MAX_PIXELS (0: unknown, as TIOCGWINSZ says). */
#define TTY_MAX_CELLS  10000
#define TTY_MAX_PIXELS 65535
/* A terminal type: 1..TTY_MAX_TERM characters of [A-Za-z0-9._+-]. */
#define TTY_MAX_TERM   64
/* Most members a "modes" object may have (the table has fewer). */
#define TTY_MAX_MODES  128

/* The modes of t as a JSON object {"ECHO":1, "VINTR":3, ...}; NULL when
 * out of memory.  The caller owns the result. */
json_t *ttymodes_to_json(const struct termios *t);

/* Apply a "modes" object over t (names we do not know are skipped, as
 * ssh does with opcodes it does not know).  Garbage (not an object, too
 * many members, a flag that is not 0 or 1, a character over 255) changes
 * nothing in t and gives -EINVAL. */
int ttymodes_apply(const json_t *modes, struct termios *t, char *err, size_t errlen);

/* Read "rows", "cols", "xpixel" and "ypixel" from msg (pixels optional,
 * 0 when absent) into ws; -EINVAL for a missing or absurd value. */
int ttysize_from_json(const json_t *msg, struct winsize *ws, char *err, size_t errlen);

/* Set those four members on obj.  0 or -ENOMEM. */
int ttysize_to_json(const struct winsize *ws, json_t *obj);

/* Whether term is a terminal type we pass on as TERM. */
int ttymodes_term_valid(const char *term);

#endif
