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

/* The candidates a completer offers (opaque; see lineedit_match). */
struct lineedit_matches;

/*
 * A completer for the Tab key: `line` is the whole line being edited and
 * the word to complete is its bytes [start, end).  It offers each full
 * replacement of that word with lineedit_match; offering none leaves the
 * line as it is (no fallback to file names).
 */
typedef void lineedit_completer_fn(void *arg, const char *line, int start, int end,
                                   struct lineedit_matches *m);

/* Complete with fn from now on (NULL: no completion).  Nothing happens
 * without libedit or when it lacks the completion entry points. */
void lineedit_set_completer(lineedit_completer_fn *fn, void *arg);

/* Offer `word`; a word ending in '/' (a directory) is completed without
 * the space that follows any other, so the next Tab goes inside it.
 * 0, or -1 out of memory (the offer is dropped). */
int lineedit_match(struct lineedit_matches *m, const char *word);

#endif
