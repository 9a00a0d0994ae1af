/*
 * fsops_glob.h - a client's pattern (every "*.gz" in "logs", say) expanded
 * into the paths it matches beneath the served root, as a shell would, but
 * on the server (PROTOCOL.md 2.4, glob).
 *
 * The pattern is a path in the canonical spelling fspath_check accepts
 * (so it can neither start at "/" nor climb with ".."); each component is
 * matched with fnmatch(3) against the names of one directory level, with
 * FNM_PERIOD (a leading '.' only matches a '.' written out, as in sh) and
 * backslash escapes ("a\*b" names "a*b").  Directories are opened through
 * fspath_open, so a symlink that leads out of the root is never entered,
 * and "." and ".." never match.  No protocol here.
 */
#ifndef FERRYD_FSOPS_GLOB_H
#define FERRYD_FSOPS_GLOB_H

#include <stddef.h>

#include "fspath.h"

/* Bounds of one expansion: matches (held in memory, then sent), their
 * bytes in all (what a client that never reads the answer makes the
 * connection hold: 10000 matches of 4 KiB each were 40 MiB, per
 * connection), and the directory entries looked at (the work the loop
 * does before it answers). */
#define FSOPS_GLOB_MAX_MATCHES  10000
#define FSOPS_GLOB_MAX_BYTES    (1 << 20)
#define FSOPS_GLOB_MAX_SCANNED  (1 << 20)

/* Whether a component has a metacharacter (*, ? or [) not escaped by a
 * backslash: only those are matched against directory entries. */
int fsops_glob_magic(const char *s, size_t len);

/*
 * Expand pattern (which must pass fspath_check) beneath root.  Names that
 * begin with '.' and end with hide_suffix (the transfers' temporaries) are
 * never matched.  On success *paths holds *n malloc'd paths in byte order
 * (an array the caller frees with fsops_glob_free), possibly none.
 * Returns 0, -ENOMEM, or -E2BIG when a bound above was passed.
 */
int fsops_glob(const struct fsroot *root, const char *pattern, const char *hide_suffix,
               char ***paths, size_t *n);

void fsops_glob_free(char **paths, size_t n);

#endif
