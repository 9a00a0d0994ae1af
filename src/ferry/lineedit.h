/*
 * lineedit.h - line editing for `ferry shell` on a terminal.
 *
 * libedit is loaded when the shell first asks for a line, not linked:
 * every other command (a fresh `ferry exec` above all) would otherwise
 * load it and the three libraries it pulls in at every start, for nothing.
 * Without libedit the line is read plainly after the prompt.
 */
#ifndef FERRY_LINEEDIT_H
#define FERRY_LINEEDIT_H

/* The next line typed after `prompt`, without its newline, malloc'd (the
 * caller frees), or NULL at end of input. */
char *lineedit_read(const char *prompt);

/* Remember a line for recall with the arrow keys (nothing without libedit). */
void lineedit_add_history(const char *line);

#endif
