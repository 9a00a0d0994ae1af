/*
 * lineedit.c - libedit, loaded on first use (lineedit.h says why).
 *
 * Only libedit's readline-compatible entry points are used, resolved by
 * name; the library's soname is fixed at build time (FERRY_LIBEDIT_SONAME,
 * the runtime package's file).  If it cannot be loaded the shell still
 * works, without editing or recall.
 */
#include "lineedit.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#ifndef FERRY_LIBEDIT_SONAME
#define FERRY_LIBEDIT_SONAME "libedit.so.2"
#endif

static struct {
    int tried;
    char *(*readline)(const char *prompt);
    int (*add_history)(const char *line);
} ed;

static void load(void)
{
    void *h;

    if (ed.tried)
        return;
    ed.tried = 1;
    h = dlopen(FERRY_LIBEDIT_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return;
    /* POSIX dlsym returns object pointers; the conversion to a function
     * pointer is what dlsym is for. */
    *(void **)&ed.readline = dlsym(h, "readline");
    *(void **)&ed.add_history = dlsym(h, "add_history");
    if (!ed.readline || !ed.add_history) {
        ed.readline = NULL;
        ed.add_history = NULL;
        dlclose(h);
    }
    /* Kept loaded for the life of the process: the shell reads till its end. */
}

/* The prompt, then a plain line from stdin. */
static char *read_plain(const char *prompt)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;

    fputs(prompt, stdout);
    fflush(stdout);
    n = getline(&line, &cap, stdin);
    if (n < 0) {
        clearerr(stdin);   /* a Ctrl-C (EINTR) is not the end of input */
        free(line);
        return NULL;
    }
    if (n > 0 && line[n - 1] == '\n')
        line[n - 1] = '\0';
    return line;
}

char *lineedit_read(const char *prompt)
{
    load();
    return ed.readline ? ed.readline(prompt) : read_plain(prompt);
}

void lineedit_add_history(const char *line)
{
    load();
    if (ed.add_history)
        ed.add_history(line);
}
