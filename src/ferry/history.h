/*
 * history.h - ferry shell's history across sessions: the lines typed at
 * the prompt, in $XDG_STATE_HOME/ferry/history (default
 * ~/.local/state/ferry/history), mode 0600, at most a few thousand lines.
 * Recalled with the arrow keys when libedit is there (lineedit.h); kept in
 * the file either way.
 */
#ifndef FERRY_CLIENT_HISTORY_H
#define FERRY_CLIENT_HISTORY_H

/* Find the file (creating its directories), trim it if it grew too long,
 * and recall its last lines.  A failure is one warning; the shell goes on
 * without keeping history. */
void history_load(void);

/* A line entered at the prompt: recalled from now on and appended to the
 * file.  Empty lines and a repeat of the line before are skipped. */
void history_add(const char *line);

void history_free(void);

#endif
