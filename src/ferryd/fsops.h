/*
 * fsops.h - the file service's operations on the served tree: metadata,
 * mkdir, rm, and the temporary-then-rename upload that both the session's
 * put and the classic protocol's put commit through.
 *
 * Everything acts through descriptors that fspath.h handed out, so no path
 * is walked twice and nothing outside the root is touched.  No protocol
 * here: callers turn the codes into messages (fsops_error_code).
 *
 * Errors: 0 or a negative code: errcode.h's FERRY_EPATH_* for paths the sandbox
 * refuses, -errno for the filesystem's answers.
 */
#ifndef FERRYD_FSOPS_H
#define FERRYD_FSOPS_H

#include <limits.h>
#include <stdint.h>
#include <sys/stat.h>
#include <jansson.h>

#include "fspath.h"

/* Metadata as PROTOCOL.md 2.4 spells it: kind, mode, size, mtime,
 * mtime_nsec (a new object; NULL on allocation failure). */
json_t *fsops_meta(const struct stat *st);

/* fsops_meta of name in dirfd, whose lstat is st, plus a symlink's
 * "target": the link's own text, read (never followed) with readlinkat.
 * The target is left out when it cannot be read whole (the link went
 * since the lstat, or its text is PATH_MAX bytes or more) or is not UTF-8,
 * which the protocol cannot carry.  NULL on allocation failure. */
json_t *fsops_meta_at(int dirfd, const char *name, const struct stat *st);

/* Which "error" a code becomes: "path" for the sandbox's refusals, "fs"
 * with the errno's symbolic name in *errno_name for the rest. */
const char *fsops_error_code(int code, const char **errno_name);

int fsops_mkdir(const struct fsroot *root, const char *path, int parents);

/* Remove a file, a symlink (never its target) or an empty directory; with
 * recursive, a whole tree at any depth, walked by descriptor without
 * following symlinks, with a bounded number of descriptors and bounded
 * memory (no recursion). "." is FERRY_EPATH_DOT. */
int fsops_rm(const struct fsroot *root, const char *path, int recursive);

/*
 * An upload in progress: bytes go to a temporary beside the final name and
 * only fsops_upload_commit puts them under it.
 *
 * The temporary is ".NAME.ferry-part", held with an exclusive flock for as
 * long as the upload lives, so an interrupted resumable upload can be found
 * and continued; when another upload holds it, a private
 * ".NAME.XXXXXXXX.ferry-part" (never resumable, locked as well, so that a
 * sweep spares it) is used instead, so two
 * uploads of one name never write the same file: the last to commit wins,
 * whole.  Temporaries that outlive their upload are removed when ferryd
 * starts (fspath_sweep_temporaries with PROTO_PART_SUFFIX, in sweeper.c's
 * thread, while uploads already run: their locks keep them from it).
 */
struct fsops_upload {
    int dirfd;                 /* O_PATH: the target's directory */
    int fd;                    /* the temporary, O_RDWR */
    char name[NAME_MAX + 1];   /* final name in dirfd */
    char tmp[NAME_MAX + 1];    /* temporary's name in dirfd */
    int shared_name;           /* tmp is ".NAME.ferry-part" (resumable) */
};

/*
 * Start an upload to path.  With resume, an existing ".NAME.ferry-part" is
 * kept and *have says how many bytes it holds (the caller verifies them);
 * otherwise the temporary starts empty and *have is 0.  The temporary is
 * created mode 0600: nobody reads a half-written file.  On failure
 * nothing is left behind and u owns nothing.
 */
int fsops_upload_open(const struct fsroot *root, const char *path, int resume,
                      struct fsops_upload *u, uint64_t *have);

/* Cut the temporary back to empty (a resume whose prefix did not match). */
int fsops_upload_restart(struct fsops_upload *u);

/* Write all of buf at the temporary's current end.  -errno (ENOSPC,
 * EFBIG, EIO...) on failure. */
int fsops_upload_write(struct fsops_upload *u, const void *buf, size_t len);

/*
 * Give the temporary its final mode (permission bits only: set-id and
 * sticky bits are never set for a client) and, when mtime_sec is not
 * NULL, its mtime; fsync it and the directory when asked; rename it over
 * the final name; release everything.  On failure the temporary is
 * removed; -ESTALE means the temporary's name no longer leads to the file
 * written (someone removed or replaced it), and nothing was committed.  A
 * directory fsync that fails after the rename is only logged: the file is
 * saved.  Either way u owns nothing afterwards.
 */
int fsops_upload_commit(struct fsops_upload *u, mode_t mode, const int64_t *mtime_sec,
                        long mtime_nsec, int do_fsync);

/* Give up: remove the temporary, or keep it (keep != 0, only when it is
 * the resumable one) for a later resume.  u owns nothing afterwards.
 * Safe on a u that fsops_upload_init set up, or that is already finished. */
void fsops_upload_abandon(struct fsops_upload *u, int keep);

/* A zeroed struct fsops_upload that owns nothing (fds -1). */
void fsops_upload_init(struct fsops_upload *u);

#endif
