/*
 * prompt.h - the tutorials' ">>: " prompt, shared by the example clients.
 *
 * On a terminal each line is prompted for, like the tutorials' input('>>: ');
 * otherwise lines are read silently from stdin, so the same client works in
 * a pipe or a script.
 */
#ifndef FERRY_EXAMPLE_PROMPT_H
#define FERRY_EXAMPLE_PROMPT_H

#include <stddef.h>
#include <sys/types.h>

#define PROMPT_TEXT ">>: "

/* Read one line (without its newline) into *line (malloc'd, grown as
 * needed; the caller frees).  Returns its length, or -1 at end of input. */
ssize_t prompt_line(char **line, size_t *cap);

/* True when stdin is a terminal (interactive use). */
int prompt_interactive(void);

#endif
