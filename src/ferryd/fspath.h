/*
 * fspath.h - client paths to descriptors, safely beneath the served root.
 *
 * The file service (ferryd --root DIR) lets a client name paths; whatever it
 * sends, nothing outside the root may be read, written, listed or deleted.
 * Checking the string is not enough: "a/b" is harmless text, but if the
 * client (or anyone with write access to the tree) makes "a" a symlink to
 * /etc, an open of "a/b" reads /etc/b.  Resolving the path in user space and
 * then opening it is not enough either: between our check of "a" and the
 * kernel's second walk over it, "a" can be swapped for such a symlink (the
 * classic check-then-use race).  openat2(2) with RESOLVE_BENEATH closes that
 * race: the kernel itself refuses, during the one walk it does, any step
 * that leaves the starting directory, whether through "..", an absolute
 * symlink or a relative symlink that climbs out.
 *
 * So every operation goes through a descriptor:
 *   1. fspath_check validates the string (no filesystem access): relative,
 *      no "..", no control bytes, within NAME_MAX / PATH_MAX, one canonical
 *      spelling.
 *   2. fspath_open opens it beneath the root's descriptor with openat2;
 *      fspath_parent opens its parent directory the same way and hands back
 *      the final name, for mkdirat / unlinkat / renameat / creating a
 *      temporary (the *at calls then act on one entry of a directory we
 *      hold, so no later path walk can be redirected).
 *   3. fspath_sweep_temporaries removes leftover upload temporaries
 *      (ferryd runs it once, beside serving, at start: sweeper.h),
 *      walking only by descriptor and never following symlinks.
 *
 * Symlinks.  With openat2 a symlink inside the root is followed if its
 * target stays inside (a relative target such as "sub/file" or
 * "../sibling" from a subdirectory); an absolute target, even one that
 * happens to name a place inside the root, and anything that climbs out,
 * fail with FERRY_EPATH_ESCAPE.  Magic links (/proc/PID/fd/N and the like) are
 * never followed (RESOLVE_NO_MAGICLINKS; FERRY_EPATH_SYMLINK).  Mount points inside the root ARE
 * crossed (no RESOLVE_NO_XDEV): a root may legitimately span filesystems,
 * and a mount beneath the root was put there by the administrator, who can
 * already expose anything; RESOLVE_BENEATH still stops every escape by
 * name.  When a flag creates the final component (O_CREAT), that component
 * itself is never followed (O_NOFOLLOW is added): a symlink planted there,
 * dangling or not, fails with FERRY_EPATH_SYMLINK instead of creating its
 * target.
 *
 * Fallback.  Where openat2 is missing (Linux < 5.6, or a seccomp policy that
 * answers ENOSYS), the path is walked one component at a time with
 * openat(O_NOFOLLOW) from the root's descriptor, and EVERY symlink, inside
 * or not, fails with FERRY_EPATH_SYMLINK: without the kernel's help we cannot
 * follow one without re-creating the race above.  Each step opens a child
 * of a directory we already hold, so a directory swapped for a symlink
 * mid-walk is seen as a symlink and refused.  The first ENOSYS switches the
 * whole process to the fallback for good (and logs a warning once); other
 * errors, EPERM included, are answers about the path and are returned.
 *
 * What neither resolver can stop: a local user with write access both
 * inside and outside the root who moves a directory OUT of the root while a
 * walk is inside it; the walk then finishes in that directory.  A client
 * cannot do this (everything it names stays beneath the root), and the
 * walk still cannot climb from there: the fallback resolves no "..", and
 * openat2 re-checks every ".." against the root when renames happened.
 *
 * Slashes.  A path is rejected (FERRY_EPATH_SLASH), not normalised, when it has
 * an empty component: repeated ("a//b") or trailing ("a/") slashes.  Every
 * file then has exactly one spelling, so the name a caller derives (a
 * temporary's name, the target of fspath_parent) is always a plain
 * component.  The client strips them; what a trailing "/" on REMOTE means
 * ("into that directory") is decided on the client side anyway.
 *
 * Threading: everything is thread-safe; a struct fsroot may be shared by
 * any number of threads once opened, and closed when none uses it.
 * Every descriptor handed out is close-on-exec and owned by the caller.
 */
#ifndef FERRYD_FSPATH_H
#define FERRYD_FSPATH_H

#include <stdatomic.h>
#include <stddef.h>
#include <sys/types.h>

#include "errcode.h"

struct fsroot;  /* opaque */

/* Errors are the FERRY_EPATH_* codes of errcode.h (app_strerror). */

/*
 * TEST ONLY: nonzero makes every call use the component-by-component
 * fallback, as if openat2 were missing.  Set it before any thread uses this
 * module; the daemon never touches it.
 */
extern int fspath_force_fallback;

/* A message for any code returned here: fspath's own, -errno, or FERRY_E*. */

/*
 * Open the directory the file service serves.  dir is the administrator's
 * (trusted, may be absolute, may be or contain a symlink).  With create,
 * a missing dir is made first (mode 0755, less the umask), as mkdir
 * without -p: its parent must exist, so a mistyped path is refused rather
 * than served as a new empty tree.  The root is held as an O_PATH
 * descriptor, so it keeps meaning the same directory even if dir is
 * renamed later.  Returns 0 and *out (free with fsroot_close), or -errno
 * with a one-line reason in err ("mkdir DIR: Permission denied", "DIR: Not
 * a directory", "DIR: its parent PARENT does not exist").
 */
int fsroot_open(const char *dir, int create, struct fsroot **out,
                char *err, size_t errlen);

/* Close the root's descriptor and free it.  NULL allowed. */
void fsroot_close(struct fsroot *root);

/* The root's O_PATH|O_DIRECTORY descriptor (owned by root, do not close). */
int fsroot_fd(const struct fsroot *root);

/*
 * Validate a client path without touching the filesystem.  Accepted: "."
 * (the root itself, e.g. for listing), or one or more components separated
 * by single slashes, each neither "." nor "..", at most NAME_MAX bytes,
 * free of bytes 0x01-0x1f and 0x7f, the whole under PATH_MAX bytes.  Bytes
 * from 0x80 up are allowed (names are bytes; the protocol's JSON already
 * guarantees valid UTF-8).  Returns 0, or the first problem found as
 * FERRY_EPATH_EMPTY, FERRY_EPATH_LONG, FERRY_EPATH_ABSOLUTE, FERRY_EPATH_CONTROL,
 * FERRY_EPATH_SLASH, FERRY_EPATH_DOTDOT, FERRY_EPATH_DOT or FERRY_EPATH_NAMELONG, with a
 * one-line reason in err (if errlen > 0) that never echoes the path, so it
 * is safe to log or send back whatever the client sent.
 */
int fspath_check(const char *path, char *err, size_t errlen);

/*
 * Open path beneath root, as openat(2) would with flags and mode, but never
 * outside it (see the top of this file for what is followed).  O_CLOEXEC is
 * always added; with O_CREAT, O_NOFOLLOW is added too.  Combine with O_EXCL
 * to create only a new file.  path must pass fspath_check; "." opens the
 * root itself.  As with open(2), opening a FIFO for reading without
 * O_NONBLOCK waits for a writer: callers serving clients pass O_NONBLOCK
 * (or open with O_PATH and look at the type first).
 * Returns 0 and *fd_out, or:
 *   fspath_check's codes    the path itself is not acceptable
 *   FERRY_EPATH_ESCAPE          resolution would leave the root
 *   FERRY_EPATH_SYMLINK         a symlink met where none is followed: the final
 *                           component with O_CREAT (or O_NOFOLLOW), a magic
 *                           link, a symlink loop; any symlink, in the fallback
 *   -EAGAIN                 the kernel could not rule out a race with a
 *                           concurrent rename after a few tries (retry later)
 *   other -errno            ENOENT, EACCES, ENOTDIR, EISDIR, EEXIST, ...
 */
int fspath_open(const struct fsroot *root, const char *path, int flags,
                mode_t mode, int *fd_out);

/*
 * Open the directory that contains path's final component (beneath root,
 * same rules, as an O_PATH descriptor: enough for the *at calls) and point
 * *name_out at that component inside path: the caller then runs
 * mkdirat / unlinkat / renameat / openat(O_CREAT|O_EXCL|O_NOFOLLOW) on
 * (*dirfd_out, *name_out) and closes *dirfd_out.  A final component "." or
 * ".." (including the whole path ".") is FERRY_EPATH_DOT: it names no entry
 * that could be made, removed or replaced.  Otherwise returns fspath_open's
 * codes (for the parent; the final component is not looked at).
 */
int fspath_parent(const struct fsroot *root, const char *path,
                  int *dirfd_out, const char **name_out);

/* What a sweep did (fspath_sweep_temporaries fills every member but stop). */
struct fspath_sweep {
    const atomic_int *stop;     /* in: NULL, or set (non-zero) to end the walk early */
    unsigned removed;           /* temporaries removed */
    unsigned long dirs;         /* directories read */
    unsigned mounts_skipped;    /* mount points not entered (other filesystems) */
    int stopped;                /* the walk ended early, on stop */
};

/*
 * Remove leftover upload temporaries: every regular file beneath root
 * whose name starts with '.' and ends with suffix (non-empty, no '/'),
 * with at least one byte between, at any depth: the walk keeps an explicit
 * stack (a few bytes a level) and a bounded number of directories open,
 * never recursing.  Directories are entered by descriptor
 * with O_NOFOLLOW, so symlinks are neither followed nor removed and
 * nothing outside the root is touched.  Best effort: an unreadable
 * directory is skipped and the walk goes on.
 *
 * Filesystems: the walk stays on the root's filesystem, as find -xdev
 * does, except that it goes on into a mount of a local, writable
 * filesystem (ext4, xfs, btrfs, tmpfs...; fspath.c, sweep_crosses_into):
 * never into /proc, /sys, /dev, network, FUSE, overlay or read-only
 * mounts, nor into an automount point that is not mounted yet.
 *
 * Safe while uploads run (ferryd sweeps beside serving): a temporary
 * whose flock is held (an upload in flight, this ferryd's or another's on
 * the same root) is left, and a file that a concurrent writer turns into
 * a symlink is removed as that symlink at most, never through it.
 * out->stop, when set by another thread, ends the walk before its next
 * entry (out->stopped).  Returns 0, or the first problem met (-errno;
 * -EINVAL for a bad suffix) after walking everything else; out counts
 * what was done either way.
 */
int fspath_sweep_temporaries(const struct fsroot *root, const char *suffix,
                             struct fspath_sweep *out);

#endif
