/*
 * history.c - ferry shell's lines kept across sessions (history.h).
 *
 * The file is plain text, one line per entry, oldest first, so that it can
 * be read and edited by hand (libedit's own format escapes every blank).
 * Each line is appended as it is entered, so a session that is killed
 * loses nothing and two shells at once interleave rather than overwrite
 * each other.  The file is bounded: once it has twice HISTORY_MAX lines
 * (found at load, or reached by a long session's appends), it is rewritten
 * with the last HISTORY_MAX, through a temporary file renamed over it.  History is a convenience: a file that
 * cannot be read or written costs one warning, never the session.
 */
#include "history.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "lineedit.h"

/* Lines recalled from earlier sessions and kept in the file. */
#define HISTORY_MAX 1000
/* Longer lines are neither saved nor loaded: a pasted blob is no history. */
#define HISTORY_LINE_MAX 4096

static struct {
    char *path;          /* NULL: not kept (no HOME, or a failure) */
    char *last;          /* the line added last, not repeated */
    size_t lines;        /* in the file, as far as we know */
} hist;

/* Where the history lives: $XDG_STATE_HOME/ferry/history, else
 * ~/.local/state/ferry/history (the XDG default).  malloc'd, or NULL. */
static char *history_path(void)
{
    const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    char *path = NULL;
    int n;

    if (xdg && *xdg == '/')
        n = asprintf(&path, "%s/ferry/history", xdg);
    else if (home && *home)
        n = asprintf(&path, "%s/.local/state/ferry/history", home);
    else
        return NULL;
    return n < 0 ? NULL : path;
}

/* The file's directories, new ones private to the owner (the lines may
 * name hosts and paths).  0 or -errno. */
static int make_parents(const char *path)
{
    char *dir = strdup(path);
    int rc = 0;

    if (!dir)
        return -ENOMEM;
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
            rc = -errno;
            break;
        }
        *p = '/';
    }
    free(dir);
    return rc;
}

/* Warn once, then keep no history for the rest of the session. */
static void give_up(const char *what, int err)
{
    cli_error("history not kept: %s %s: %s", what, hist.path, strerror(err));
    free(hist.path);
    hist.path = NULL;
}

/* The file opened to append, mode 0600 whatever it was (a history may
 * hold what was typed as a password by mistake).  fd or -errno. */
static int open_append(void)
{
    int fd = open(hist.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    struct stat st;

    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0 || (!S_ISREG(st.st_mode) && (errno = EINVAL)) ||
        ((st.st_mode & 077) && fchmod(fd, 0600) < 0)) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* Rewrite the file with its last `keep` lines of `lines` (n in all). */
static void rewrite(char **lines, size_t n, size_t keep)
{
    char *tmp = NULL;
    FILE *f = NULL;
    int fd;

    if (asprintf(&tmp, "%s.%ld.tmp", hist.path, (long)getpid()) < 0)
        return;
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd >= 0)
        f = fdopen(fd, "w");
    if (!f) {
        if (fd >= 0)
            close(fd);
        free(tmp);
        return;
    }
    for (size_t i = n - keep; i < n; i++)
        fprintf(f, "%s\n", lines[i]);
    if (fclose(f) != 0 || rename(tmp, hist.path) < 0)
        unlink(tmp);
    free(tmp);
}

/* The file's last 2 * HISTORY_MAX lines (fewer if it has fewer), oldest
 * first, in a new array of *n strings (free_lines), and in *total how many
 * it has in all.  A ring holds them while reading, so a file of any length
 * is read in one pass and bounded memory.  NULL with errno when it cannot
 * be opened (*n 0). */
#define RING (2 * HISTORY_MAX)
static char **read_last(size_t *n, size_t *total)
{
    char **ring = calloc(RING, sizeof *ring), **out = NULL, *line = NULL;
    size_t linecap = 0, count = 0;
    ssize_t len;
    FILE *f;

    *n = *total = 0;
    if (!ring)
        return NULL;
    f = fopen(hist.path, "re");
    if (!f) {
        int e = errno;
        free(ring);
        errno = e;
        return NULL;
    }
    while ((len = getline(&line, &linecap, f)) >= 0) {
        char *copy;

        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        if (len == 0 || len > HISTORY_LINE_MAX || !(copy = strdup(line)))
            continue;
        free(ring[count % RING]);
        ring[count++ % RING] = copy;
    }
    free(line);
    fclose(f);
    *n = count < RING ? count : RING;
    *total = count;
    out = calloc(*n + 1, sizeof *out);
    for (size_t i = 0; out && i < *n; i++)
        out[i] = ring[(count - *n + i) % RING];
    if (!out) {
        for (size_t i = 0; i < RING; i++)
            free(ring[i]);
        *n = 0;
    }
    free(ring);
    return out;
}

static void free_lines(char **lines, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
}

/* The file is cut to its last HISTORY_MAX lines once it reaches twice
 * that, at load or by the lines a long session appends. */
static void trim(void)
{
    size_t n, total;
    char **lines = read_last(&n, &total);

    if (lines && n == RING)
        rewrite(lines, n, HISTORY_MAX);
    hist.lines = n < HISTORY_MAX ? n : HISTORY_MAX;
    free_lines(lines, n);
}

void history_load(void)
{
    size_t n, total;
    char **lines;
    int r;

    hist.path = history_path();
    if (!hist.path)
        return;
    r = make_parents(hist.path);
    if (r < 0) {
        give_up("cannot create the directory of", -r);
        return;
    }
    lines = read_last(&n, &total);
    if (!lines) {
        if (errno != ENOENT)
            give_up("cannot read", errno);
        return;
    }
    hist.lines = total;
    if (total >= RING) {
        rewrite(lines, n, HISTORY_MAX);
        hist.lines = HISTORY_MAX;
    }
    for (size_t i = n > HISTORY_MAX ? n - HISTORY_MAX : 0; i < n; i++)
        lineedit_add_history(lines[i]);
    if (n > 0)
        hist.last = strdup(lines[n - 1]);
    free_lines(lines, n);
}

void history_add(const char *line)
{
    size_t len = strlen(line);
    char *copy, *rec;
    int fd;

    if (len == 0 || (hist.last && strcmp(hist.last, line) == 0))
        return;
    lineedit_add_history(line);
    copy = strdup(line);
    if (copy) {
        free(hist.last);
        hist.last = copy;
    }
    if (!hist.path || len > HISTORY_LINE_MAX)
        return;
    /* One write per line: another shell appending at once cannot split it. */
    rec = malloc(len + 1);
    if (!rec)
        return;
    memcpy(rec, line, len);
    rec[len] = '\n';
    fd = open_append();
    if (fd < 0)
        give_up("cannot write", -fd);
    else if (write(fd, rec, len + 1) < 0)
        give_up("cannot write", errno);
    else if (++hist.lines >= RING)
        trim();
    if (fd >= 0)
        close(fd);
    free(rec);
}

void history_free(void)
{
    free(hist.path);
    free(hist.last);
    hist.path = hist.last = NULL;
}
