/*
 * lineedit.c - libedit, loaded on first use (lineedit.h says why).
 *
 * Only libedit's readline-compatible entry points are used, resolved by
 * name; the library's soname is fixed at build time (FERRY_LIBEDIT_SONAME,
 * the runtime package's file).  If it cannot be loaded the shell still
 * works, without editing or recall; if only the completion entry points
 * are missing (an older libedit), without completion.
 *
 * Completion goes through rl_attempted_completion_function: the shell's
 * completer sees the whole line and offers full words, which are handed to
 * libedit through rl_completion_matches (it finds their common prefix).
 * The variables libedit reads (rl_line_buffer and the like) are found by
 * dlsym too: it returns their addresses.
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

typedef char *compentry_fn(const char *text, int state);
typedef char **completion_fn(const char *text, int start, int end);

static struct {
    int tried;
    char *(*readline)(const char *prompt);
    int (*add_history)(const char *line);
    /* Completion; all set, or all NULL. */
    char **(*completion_matches)(const char *text, compentry_fn *gen);
    completion_fn **attempted_completion_function;
    int *attempted_completion_over;
    char **line_buffer;
    int *append_character;
    const char **word_break_characters;
} ed;

struct lineedit_matches {
    char **v;
    size_t n, cap;
    size_t next;            /* the generator's place */
};

static lineedit_completer_fn *completer;
static void *completer_arg;
/* The candidates between our hook and libedit's calls of the generator. */
static struct lineedit_matches *pending;

/* Most candidates one Tab collects: a listing of a huge directory is cut
 * rather than held whole twice (ours, then libedit's copy). */
#define MATCHES_MAX 10000

static void load_completion(void *h)
{
    *(void **)&ed.completion_matches = dlsym(h, "rl_completion_matches");
    ed.attempted_completion_function = dlsym(h, "rl_attempted_completion_function");
    ed.attempted_completion_over = dlsym(h, "rl_attempted_completion_over");
    ed.line_buffer = dlsym(h, "rl_line_buffer");
    ed.append_character = dlsym(h, "rl_completion_append_character");
    ed.word_break_characters = dlsym(h, "rl_basic_word_break_characters");
    if (!ed.completion_matches || !ed.attempted_completion_function ||
        !ed.attempted_completion_over || !ed.line_buffer || !ed.append_character ||
        !ed.word_break_characters) {
        ed.completion_matches = NULL;
        ed.attempted_completion_function = NULL;
    }
}

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
        return;
    }
    load_completion(h);
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

int lineedit_match(struct lineedit_matches *m, const char *word)
{
    char *copy;

    if (m->n == MATCHES_MAX)
        return 0;
    if (m->n == m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 16;
        char **v = realloc(m->v, cap * sizeof *v);

        if (!v)
            return -1;
        m->v = v;
        m->cap = cap;
    }
    copy = strdup(word);
    if (!copy)
        return -1;
    m->v[m->n++] = copy;
    return 0;
}

/* libedit's generator protocol: state 0 starts over; each call hands one
 * malloc'd candidate over (libedit frees it), NULL at the end. */
static char *next_match(const char *text, int state)
{
    (void)text;
    if (!pending)
        return NULL;
    if (state == 0)
        pending->next = 0;
    if (pending->next == pending->n)
        return NULL;
    return pending->v[pending->next++];
}

static char **attempt(const char *text, int start, int end)
{
    struct lineedit_matches m = { 0 };
    char **result = NULL;

    /* Ours or nothing: libedit's own fallback completes local file names,
     * wrong for a remote argument. */
    *ed.attempted_completion_over = 1;
    if (!completer || !*ed.line_buffer)
        return NULL;
    completer(completer_arg, *ed.line_buffer, start, end, &m);
    if (m.n > 0) {
        /* One directory: no space after it, so Tab goes on inside. */
        size_t len = strlen(m.v[0]);

        *ed.append_character = m.n == 1 && len > 0 && m.v[0][len - 1] == '/' ? '\0' : ' ';
        pending = &m;
        result = ed.completion_matches(text, next_match);
        pending = NULL;
    }
    /* What the generator did not hand over is still ours. */
    for (size_t i = m.next; i < m.n; i++)
        free(m.v[i]);
    free(m.v);
    return result;
}

void lineedit_set_completer(lineedit_completer_fn *fn, void *arg)
{
    /* Words are split at blanks only: a path's '=' or '@' is part of it. */
    static const char breaks[] = " \t\n";

    load();
    completer = fn;
    completer_arg = arg;
    if (!ed.completion_matches)
        return;
    *ed.attempted_completion_function = fn ? attempt : NULL;
    *ed.word_break_characters = breaks;
}
