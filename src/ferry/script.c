/*
 * script.c - lines from a non-terminal stdin, with a look that never
 * blocks (script.h says why).  A read happens only when poll() says the
 * descriptor is readable (or when told to wait), so no descriptor flag
 * is changed: stdin's open file may be shared with other processes.
 */
#include "script.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SCRIPT_READ 65536

void script_init(struct script *sc, int fd)
{
    *sc = (struct script){ .fd = fd };
}

void script_free(struct script *sc)
{
    free(sc->buf);
    *sc = (struct script){ .fd = -1 };
}

/* Read what is there (waiting for it when wait).  0, or -ENOMEM. */
static int fill(struct script *sc, int wait)
{
    struct pollfd p = { .fd = sc->fd, .events = POLLIN };
    ssize_t n;

    if (!wait) {
        int r = poll(&p, 1, 0);
        if (r == 0 || (r < 0 && errno == EINTR))
            return 0;
    }
    if (sc->cap - sc->len < SCRIPT_READ) {
        char *nb = realloc(sc->buf, sc->len + SCRIPT_READ);

        if (!nb)
            return -ENOMEM;
        sc->buf = nb;
        sc->cap = sc->len + SCRIPT_READ;
    }
    do
        n = read(sc->fd, sc->buf + sc->len, SCRIPT_READ);
    while (n < 0 && errno == EINTR && wait);
    if (n < 0 && errno == EINTR)
        return 0;
    if (n <= 0)
        sc->eof = 1;   /* a read error ends the script as the end would */
    else
        sc->len += (size_t)n;
    return 0;
}

/* Take the first n bytes as a line (the terminator, if any, dropped). */
static int take(struct script *sc, size_t n, size_t skip, char **line)
{
    *line = malloc(n + 1);
    if (!*line)
        return -ENOMEM;
    memcpy(*line, sc->buf, n);
    (*line)[n] = '\0';
    memmove(sc->buf, sc->buf + n + skip, sc->len - n - skip);
    sc->len -= n + skip;
    return 1;
}

int script_line(struct script *sc, int wait, char **line)
{
    size_t scanned = 0;

    *line = NULL;
    for (;;) {
        char *nl = sc->len > scanned ? memchr(sc->buf + scanned, '\n', sc->len - scanned) : NULL;
        size_t before = sc->len;
        int r;

        if (nl)
            return take(sc, (size_t)(nl - sc->buf), 1, line);
        scanned = sc->len;
        if (sc->eof)
            return sc->len > 0 ? take(sc, sc->len, 0, line) : -1;
        r = fill(sc, wait);
        if (r < 0)
            return r;
        if (!wait && sc->len == before && !sc->eof)
            return 0;
    }
}
