/*
 * history.c - ferry shell's lines kept across sessions (history.h).
 *
 * The file is plain text, one line per entry, oldest first, so that it can
 * be read and edited by hand (libedit's own format escapes every blank).
 * Each line is appended as it is entered, so a session that is killed
 * loses nothing and two shells at once interleave rather than overwrite
 * each other.  The file is bounded: when loading finds more than twice
 * HISTORY_MAX lines, it is rewritten with the last HISTORY_MAX, through a
 * temporary file renamed over it.  History is a convenience: a file that
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

void history_load(void)
{
    char **lines = NULL, *line = NULL;
    size_t n = 0, cap = 0, linecap = 0, first;
    ssize_t len;
    FILE *f;
    int r;

    hist.path = history_path();
    if (!hist.path)
        return;
    r = make_parents(hist.path);
    if (r < 0) {
        give_up("cannot create the directory of", -r);
        return;
    }
    f = fopen(hist.path, "re");
    if (!f) {
        if (errno != ENOENT)
            give_up("cannot read", errno);
        return;
    }
    /* All lines are read, but only the last 2 * HISTORY_MAX are held. */
    while ((len = getline(&line, &linecap, f)) >= 0) {
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        if (len == 0 || len > HISTORY_LINE_MAX)
            continue;
        if (n == 2 * HISTORY_MAX) {
            free(lines[0]);
            memmove(lines, lines + 1, (n - 1) * sizeof *lines);
            n--;
        }
        if (n == cap) {
            size_t c = cap ? 2 * cap : 64;
            char **v = realloc(lines, c * sizeof *v);
            if (!v)
                break;
            lines = v;
            cap = c;
        }
        lines[n] = strdup(line);
        if (!lines[n])
            break;
        n++;
    }
    free(line);
    /* Rewritten once it has grown to twice the bound. */
    if (n == 2 * HISTORY_MAX)
        rewrite(lines, n, HISTORY_MAX);
    fclose(f);
    first = n > HISTORY_MAX ? n - HISTORY_MAX : 0;
    for (size_t i = first; i < n; i++)
        lineedit_add_history(lines[i]);
    if (n > 0)
        hist.last = strdup(lines[n - 1]);
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
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
