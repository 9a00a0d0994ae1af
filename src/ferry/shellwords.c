/*
 * shellwords.c - the words of ferry shell's own command lines, as sh
 * would split them (shellwords.h).  The lines the server runs are not
 * split here: /bin/sh there reads them.
 */
#include "shellwords.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

int shellwords_split(const char *line, char **store, char ***words, int *count)
{
    size_t len = strlen(line);
    char *out = malloc(len + 1), **w = calloc(len / 2 + 2, sizeof *w), *o = out;
    const char *p = line;
    int n = 0;

    if (!out || !w) {
        free(out);
        free(w);
        return -ENOMEM;
    }
    while (*p) {
        char quote = 0;

        while (isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        w[n++] = o;
        while (*p && (quote || !isspace((unsigned char)*p))) {
            if (quote == '\'' && *p == '\'') {
                quote = 0;
            } else if (quote == '"' && *p == '"') {
                quote = 0;
            } else if (!quote && (*p == '\'' || *p == '"')) {
                quote = *p;
            } else if (*p == '\\' && p[1] && quote != '\'' &&
                       (!quote || p[1] == '"' || p[1] == '\\')) {
                *o++ = *++p;
            } else {
                *o++ = *p;
            }
            p++;
        }
        if (quote) {
            free(out);
            free(w);
            return quote;
        }
        *o++ = '\0';
    }
    w[n] = NULL;
    *store = out;
    *words = w;
    *count = n;
    return 0;
}

int shellwords_cd_operand(const char *arg, char **dir, int *from_home)
{
    char *store = NULL, **words = NULL;
    const char *word = arg;
    int n = 1, r = 0;

    *dir = NULL;
    /* Only an operand that asks for sh's reading gets it: "cd my dir" kept
     * working, as it always did, since the README promised it. */
    if (strpbrk(arg, "\\'\"")) {
        r = shellwords_split(arg, &store, &words, &n);
        if (r != 0)
            return r;
        word = n > 0 ? words[0] : "";
    }
    if (n > 1) {
        r = -E2BIG;
    } else if (store && *word == '\0') {
        r = -ENOENT;
    } else {
        /* The ~ is unquoted when it starts the typed text itself. */
        *from_home = *arg == '\0' || (arg[0] == '~' && (arg[1] == '\0' || arg[1] == '/'));
        *dir = strdup(*from_home && *word ? word + 1 : word);
        if (!*dir)
            r = -ENOMEM;
    }
    free(store);
    free(words);
    return r;
}
