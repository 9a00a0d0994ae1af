/*
 * escape.h - the escape sequences of `ferry exec -t`, as ssh's: typed at
 * the start of a line, `~.` disconnects, `~?` lists the sequences and
 * `~~` sends one `~`; any other character after the escape sends both.
 * The escape character can be changed (`-e CHAR`) or switched off.
 *
 * A pure state machine over the bytes read from the terminal, so that
 * every sequence can be tested without one: bytes go in, the bytes to
 * send and what to do come out.
 */
#ifndef FERRY_CLIENT_ESCAPE_H
#define FERRY_CLIENT_ESCAPE_H

#include <stddef.h>
#include <stdint.h>

/* What the caller must do after escape_feed returns. */
enum escape_action {
    ESCAPE_NONE = 0,      /* all input consumed */
    ESCAPE_HELP,          /* `~?`: show escape_help(), then feed the rest */
    ESCAPE_DISCONNECT,    /* `~.`: close the session; ignore the rest */
};

#define ESCAPE_OFF (-1)

struct escape {
    int ch;               /* the escape character, or ESCAPE_OFF */
    int line_start;       /* the next byte starts a line */
    int pending;          /* the escape character was typed, held back */
};

/* ch: the escape character (0-255) or ESCAPE_OFF.  The session starts at
 * the start of a line. */
void escape_init(struct escape *e, int ch);

/*
 * Feed in[0..n).  Bytes to send are appended to out (room for n + 1 bytes
 * is always enough: a held-back escape character can come out with the
 * byte after it) and *outlen counts them.  Stops after the byte that asks
 * for an action, which it returns; *consumed says how far it got.
 */
enum escape_action escape_feed(struct escape *e, const uint8_t *in, size_t n, size_t *consumed,
                               uint8_t *out, size_t *outlen);

/* The text `~?` shows, with \r\n line ends (the terminal is raw), for the
 * escape character ch. */
const char *escape_help(int ch, char *buf, size_t len);

/* Parse -e's argument: one character, ^X for a control character, or
 * "none".  0 and *ch, or -EINVAL. */
int escape_parse(const char *arg, int *ch);

#endif
