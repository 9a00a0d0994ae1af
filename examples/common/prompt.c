/*
 * prompt.c - see prompt.h.
 */
#include "prompt.h"

#include <stdio.h>
#include <unistd.h>

int prompt_interactive(void)
{
    return isatty(STDIN_FILENO);
}

ssize_t prompt_line(char **line, size_t *cap)
{
    ssize_t n;

    if (prompt_interactive()) {
        fputs(PROMPT_TEXT, stdout);
        fflush(stdout);
    }
    n = getline(line, cap, stdin);
    if (n < 0) {
        if (prompt_interactive())
            fputc('\n', stdout);
        return -1;
    }
    if (n > 0 && (*line)[n - 1] == '\n')
        (*line)[--n] = '\0';
    if (n > 0 && (*line)[n - 1] == '\r')
        (*line)[--n] = '\0';
    return n;
}
