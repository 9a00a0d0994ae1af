/*
 * remotefs.h - the file service (docs/PROTOCOL.md 2.4) as seen from the
 * client: remote paths in the one spelling the server accepts, file
 * metadata, the server's errors in words, and the small requests (stat,
 * list, mkdir, rm) over a session (client_session.h, whose return codes
 * these follow).
 */
#ifndef FERRY_CLIENT_REMOTEFS_H
#define FERRY_CLIENT_REMOTEFS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "client_session.h"

/* File metadata as PROTOCOL.md 2.4 sends it. */
struct fs_meta {
    char kind[8];         /* "file", "dir", "link", "fifo", "socket", "char", "block" */
    unsigned mode;        /* permission bits, & 07777 */
    uint64_t size;
    int64_t mtime;
    long mtime_nsec;
};

/* What to print after "ferry: put NAME: " for an error: for an fs error the
 * system's text for its errno name ("No space left on device"), so the
 * server's own spelling of the path does not repeat ours, unless the
 * server's message says more than that text (it does not end with it:
 * the ESTALE of an upload whose temporary was removed); otherwise the
 * server's or our message. */
const char *remotefs_error_text(const struct fs_error *err);

/* The local errno value for err->errname, or 0 when unknown. */
int remotefs_error_errno(const struct fs_error *err);

/*
 * Canonical remote path (PROTOCOL.md 2.4): empty and "." components and
 * trailing slashes dropped ("./a//b/" -> "a/b"), nothing left -> ".".  A
 * leading "/" is kept so the server refuses it with its own message rather
 * than our guessing what was meant; ".." is kept for the same reason.
 * Returns a malloc'd string or NULL (out of memory).
 */
char *remotefs_canon(const char *path);

/* a + "/" + b canonically ("." + "b" -> "b").  malloc'd or NULL. */
char *remotefs_join(const char *a, const char *b);

/* The last component of a path, ignoring trailing slashes, as a new
 * string ("a/b/" -> "b", "." -> ".", "/" -> "/").  NULL: out of memory. */
char *remotefs_basename(const char *path);

/* A metadata object (stat answer, list entry, get-ready) into *m.
 * 0, or FERRY_ELOST when a member is missing or out of range.  A
 * symlink's "target", which is only shown, is checked (a string under
 * PATH_MAX bytes, without NUL) but stays in obj. */
int remotefs_parse_meta(struct client_session *s, const json_t *obj, struct fs_meta *m,
                     struct fs_error *err);

/* ---- small requests ------------------------------------------------------ */

/* stat: *m filled; *answer (may be NULL) gets the whole message. */
int remotefs_stat(struct client_session *s, const char *path, struct fs_meta *m, json_t **answer,
               struct fs_error *err);

/* Whether an operand is spelled as a directory: it ends in '/' after a
 * name ("a/", not "/", which the server refuses as absolute). */
int remotefs_names_dir(const char *arg);

/*
 * For an operand spelled as a directory (remotefs_names_dir), which
 * remotefs_canon turns into the bare name: whether it is one, as the
 * kernel's path walk would say ("file/" is ENOTDIR).  0 when it is a
 * directory, a symbolic link (the server resolves those itself) or
 * missing (the request that follows says so); FERRY_EREMOTE with err as
 * the server's ENOTDIR would be; or a lost session's code.
 */
int remotefs_check_dir(struct client_session *s, const char *arg, struct fs_error *err);

/* Most entries one listing (or glob) may have, most bytes of names and
 * link targets it may hold, and most levels get -r descends: what a
 * server sends is bounded before it is held (a name is at most NAME_MAX
 * bytes, a path or target under PATH_MAX, as PROTOCOL.md says). */
#define REMOTEFS_LIST_MAX  (1 << 20)
#define REMOTEFS_LIST_BYTES ((size_t)64 << 20)
#define REMOTEFS_TREE_DEPTH 64

/* list: every entry, in one new JSON array (*entries), validated (each has
 * a string "name" without '/', and valid metadata). */
int remotefs_list(struct client_session *s, const char *path, json_t **entries, struct fs_error *err);

/* The directories under `dir` (relative to the session's directory, not
 * the file root: where commands run) whose names start with `prefix`, as
 * a JSON array of strings in *names (the caller's reference), for
 * completing the shell's cd (PROTOCOL.md 2.3).  0 or a negative code
 * (err says why). */
int remotefs_cd_names(struct client_session *s, const char *dir, const char *prefix, json_t **names,
                      struct fs_error *err);

/* Whether an operand is a pattern for the server to expand: it has a
 * metacharacter (* ? [) or a backslash escaping one. */
int remotefs_is_pattern(const char *arg);

/* glob (PROTOCOL.md 2.4): the paths the server's root has for pattern
 * (canonical), in one new JSON array of strings (*paths), possibly empty.
 * Only for a server whose hello said "glob" (s->glob). */
int remotefs_glob(struct client_session *s, const char *pattern, json_t **paths,
                  struct fs_error *err);

int remotefs_mkdir(struct client_session *s, const char *path, int parents, struct fs_error *err);
int remotefs_rm(struct client_session *s, const char *path, int recursive, struct fs_error *err);

#endif
