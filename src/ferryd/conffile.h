/*
 * conffile.h - ferryd's configuration file (ferryd -f FILE): one
 * `KEY VALUE` per line, the keys being ferryd's long option names.
 *
 * This file reads lines and checks who may change the file; what a key
 * means is the caller's (main.c gives each key to the same code as the
 * option of that name), so the file can never drift from the command line.
 */
#ifndef FERRYD_CONFFILE_H
#define FERRYD_CONFFILE_H

#include "errbuf.h"

/* Longest line accepted, newline included. */
#define CONFFILE_MAX_LINE 4096

/*
 * Called for each `KEY VALUE` line, in order: key is the first word,
 * value the rest of the line with the blanks around it removed (never
 * empty).  Returns 0, or a negative code with eb describing the problem
 * (conffile_read puts FILE:LINE before it).
 */
typedef int conffile_fn(const char *key, const char *value, void *arg, struct errbuf *eb);

/*
 * Read path and call fn for each setting.  Blank lines and lines whose
 * first non-blank is '#' are skipped.  The file must be a regular file
 * owned by root or by us that neither its group nor others can write
 * (FERRY_ECONF_EXPOSED): whoever can change it can change what ferryd
 * runs and serves, as with sshd_config.  0, or the first negative code
 * (fn's, -errno, FERRY_ECONF_LINE) with eb saying "FILE:LINE: ...".
 */
int conffile_read(const char *path, conffile_fn *fn, void *arg, struct errbuf *eb);

#endif
