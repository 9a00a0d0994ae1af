/*
 * script.h - `ferry shell`'s lines when stdin is not a terminal (a pipe,
 * a file): read in our own buffer, so that the shell can ask whether the
 * next whole line is already there without waiting for it.  It sends that
 * line's command ahead while the one before runs (PROTOCOL.md 2.2), but
 * must never wait for a line its writer only sends after seeing the output
 * of the one before (a driver working in lock-step).
 */
#ifndef FERRY_SCRIPT_H
#define FERRY_SCRIPT_H

#include <stddef.h>

struct script {
    int fd;
    char *buf;          /* bytes read and not yet taken as lines */
    size_t len, cap;
    int eof;            /* read() said the end (or failed: the end too) */
};

/* Lines from fd. */
void script_init(struct script *sc, int fd);
void script_free(struct script *sc);

/*
 * The next line, without its newline, into *line (malloc'd; the caller
 * frees): 1.  0: no whole line has arrived yet, and wait was 0 (nothing
 * waited for).  -1: the end of input (a last line without a newline is
 * still returned first).  With wait, blocks until a line or the end.
 * -ENOMEM: out of memory.
 */
int script_line(struct script *sc, int wait, char **line);

#endif
