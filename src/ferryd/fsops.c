/*
 * fsops.c - metadata, mkdir, rm and the atomic upload, beneath the root
 * (the contract is in fsops.h).
 */
#include "fsops.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <unistd.h>

#include "fdio.h"
#include "ferry/log.h"
#include "filecommit.h"

/* ---- metadata ------------------------------------------------------------- */

static const char *kind_name(mode_t m)
{
    if (S_ISREG(m))  return "file";
    if (S_ISDIR(m))  return "dir";
    if (S_ISLNK(m))  return "link";
    if (S_ISFIFO(m)) return "fifo";
    if (S_ISSOCK(m)) return "socket";
    if (S_ISCHR(m))  return "char";
    return "block";
}

json_t *fsops_meta(const struct stat *st)
{
    return json_pack("{s:s, s:i, s:I, s:I, s:i}", "kind", kind_name(st->st_mode),
                     "mode", (int)(st->st_mode & 07777), "filesize", (json_int_t)st->st_size,
                     "mtime", (json_int_t)st->st_mtim.tv_sec, "mtime_nsec", (int)st->st_mtim.tv_nsec);
}

json_t *fsops_meta_at(int dirfd, const char *name, const struct stat *st)
{
    json_t *meta = fsops_meta(st), *target;
    char text[PATH_MAX];
    ssize_t n;

    if (!meta || !S_ISLNK(st->st_mode))
        return meta;
    /* A link replaced since the lstat says EINVAL, a removed one ENOENT:
     * either way there is no target to show, and the entry is still true
     * of the moment it was looked at.  A text that fills the buffer may be
     * cut short: better none than a wrong one. */
    n = readlinkat(dirfd, name, text, sizeof text);
    if (n < 0 || (size_t)n == sizeof text)
        return meta;
    target = json_stringn(text, (size_t)n);
    /* NULL: not UTF-8, as a name in a listing may not be either (or no
     * memory: a target is only ever shown, never acted on). */
    if (target && json_object_set_new(meta, "target", target) < 0) {
        json_decref(meta);
        return NULL;
    }
    return meta;
}

const char *fsops_error_code(int code, const char **errno_name)
{
    *errno_name = NULL;
    if (code <= FERRY_EPATH_EMPTY && code >= FERRY_EPATH_DEPTH)
        return "path";
    if (code < 0 && code > -4096) {
        *errno_name = strerrorname_np(-code);
        if (!*errno_name)
            *errno_name = "EIO";
    }
    return "fs";
}

/* ---- mkdir ------------------------------------------------------------------ */

static int mkdir_one(const struct fsroot *root, const char *path, int exist_ok)
{
    const char *name;
    int dirfd, r = fspath_parent(root, path, &dirfd, &name);

    if (r < 0)
        return r;
    if (mkdirat(dirfd, name, 0777) < 0) {
        r = -errno;
        if (r == -EEXIST && exist_ok) {
            /* Only a directory (reached without leaving the root) will do. */
            int fd;
            r = fspath_open(root, path, O_PATH | O_DIRECTORY, 0, &fd);
            if (r == 0)
                close(fd);
            else if (r == -ENOTDIR)
                r = -EEXIST;
        }
    }
    close(dirfd);
    return r;
}

int fsops_mkdir(const struct fsroot *root, const char *path, int parents)
{
    char err[128];
    int r = fspath_check(path, err, sizeof err);

    if (r < 0)
        return r;
    if (!parents)
        return mkdir_one(root, path, 0);
    /* mkdir -p: every prefix in turn ("a", "a/b", "a/b/c"). */
    char *prefix = strdup(path);
    if (!prefix)
        return -ENOMEM;
    for (char *slash = prefix;; slash++) {
        slash = strchr(slash, '/');
        if (slash)
            *slash = '\0';
        r = mkdir_one(root, prefix, 1);
        /* A file on the way: what mkdir -p says, not that it exists. */
        if (r == -EEXIST && slash)
            r = -ENOTDIR;
        if (r < 0 || !slash)
            break;
        *slash = '/';
    }
    free(prefix);
    return r;
}

/* ---- rm --------------------------------------------------------------------- */

/* Remove name (in dirfd) and everything beneath it, at any depth, without
 * recursing on the C stack.  Directories are entered with O_NOFOLLOW, so a
 * symlink is removed as itself and whatever it points to is never looked
 * at.
 *
 * The walk holds at most RM_WINDOW directories open (a window onto the
 * path from name down to where it works), so memory and descriptors stay
 * bounded however deep the tree is.  Each step empties the deepest open
 * directory of everything but subdirectories, then enters the first
 * subdirectory left; a directory found empty is removed from its parent
 * and the walk steps back up.  When the window has slid past the parent,
 * the walk starts again from name: everything already removed is gone,
 * so the first subdirectory at each level leads back down to the work
 * left, and no name or position needs remembering.  ".." is never used:
 * a directory moved meanwhile cannot lead the walk out of the tree. */
#define RM_WINDOW 128

struct rm_level {
    int fd;                     /* O_RDONLY | O_DIRECTORY */
    char name[NAME_MAX + 1];    /* its name in the level above */
};

/* Unlink every entry of fd that is not a directory; 1 with the first
 * subdirectory's name in sub, 0 when nothing is left, or an error. */
static int rm_clear(int fd, char sub[NAME_MAX + 1])
{
    int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), r = 0;
    DIR *d;

    if (dfd < 0)
        return -errno;
    d = fdopendir(dfd);
    if (!d) {
        r = -errno;
        close(dfd);
        return r;
    }
    for (struct dirent *e; (errno = 0, e = readdir(d)) != NULL;) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (unlinkat(fd, e->d_name, 0) == 0 || errno == ENOENT)
            continue;
        /* Linux says EISDIR for a directory (POSIX allows EPERM). */
        if (errno != EISDIR && errno != EPERM) {
            r = -errno;
            break;
        }
        snprintf(sub, NAME_MAX + 1, "%s", e->d_name);
        r = 1;
        break;
    }
    if (r == 0 && errno != 0)
        r = -errno;
    closedir(d);
    return r;
}

static int rm_enter(int dirfd, const char *name, struct rm_level *lv)
{
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

    /* Not a directory after unlink said it was: a file we may not
     * remove (EPERM), or a symlink put there since (ELOOP, ENOTDIR). */
    if (fd < 0)
        return errno == ENOTDIR || errno == ELOOP ? -EPERM : -errno;
    lv->fd = fd;
    snprintf(lv->name, sizeof lv->name, "%s", name);
    return 0;
}

static int rm_tree(int dirfd, const char *name)
{
    struct rm_level *lv;
    unsigned n = 0;         /* levels open: lv[0] .. lv[n - 1] */
    int top = 1;            /* lv[0] is name itself, not a level below it */
    int r;

    if (unlinkat(dirfd, name, 0) == 0)
        return 0;
    if (errno != EISDIR && errno != EPERM)
        return -errno;
    lv = malloc(RM_WINDOW * sizeof *lv);
    if (!lv)
        return -ENOMEM;
    for (;;) {
        char sub[NAME_MAX + 1];

        if (n == 0) {
            /* (Re)start from name: what is left is all that was not removed. */
            r = rm_enter(dirfd, name, &lv[0]);
            if (r < 0)
                break;
            n = 1;
            top = 1;
        }
        r = rm_clear(lv[n - 1].fd, sub);
        if (r < 0)
            break;
        if (r == 1) {
            if (n == RM_WINDOW) {
                /* Slide the window down: the top level is let go. */
                close(lv[0].fd);
                memmove(&lv[0], &lv[1], (RM_WINDOW - 1) * sizeof *lv);
                n--;
                top = 0;
            }
            r = rm_enter(lv[n - 1].fd, sub, &lv[n]);
            if (r < 0)
                break;
            n++;
            continue;
        }
        /* lv[n - 1] is empty: remove it from the level above. */
        close(lv[n - 1].fd);
        n--;
        if (n > 0) {
            if (unlinkat(lv[n - 1].fd, lv[n].name, AT_REMOVEDIR) < 0 && errno != ENOENT) {
                r = -errno;
                break;
            }
        } else if (top) {
            r = unlinkat(dirfd, name, AT_REMOVEDIR) < 0 ? -errno : 0;
            break;
        }
        /* n == 0 below the top: the parent was let go; start again. */
    }
    while (n > 0)
        close(lv[--n].fd);
    free(lv);
    return r;
}

int fsops_rm(const struct fsroot *root, const char *path, int recursive)
{
    const char *name;
    int dirfd, r = fspath_parent(root, path, &dirfd, &name);

    if (r < 0)
        return r;
    if (recursive) {
        r = rm_tree(dirfd, name);
    } else if (unlinkat(dirfd, name, 0) < 0) {
        r = -errno;
        /* Linux says EISDIR for a directory (POSIX allows EPERM). */
        if (r == -EISDIR || r == -EPERM) {
            int was = r;
            if (unlinkat(dirfd, name, AT_REMOVEDIR) == 0)
                r = 0;
            else
                r = errno == EEXIST ? -ENOTEMPTY : errno == ENOTDIR ? was : -errno;
        }
    }
    close(dirfd);
    return r;
}

/* ---- uploads ------------------------------------------------------------------ */

void fsops_upload_init(struct fsops_upload *u)
{
    memset(u, 0, sizeof *u);
    u->dirfd = u->fd = -1;
}

static void upload_release(struct fsops_upload *u)
{
    if (u->fd >= 0)
        close(u->fd);
    if (u->dirfd >= 0)
        close(u->dirfd);
    fsops_upload_init(u);
}

/* Open and lock the shared temporary.  1: got it; 0: another upload holds
 * it; < 0: error. */
static int take_shared(struct fsops_upload *u)
{
    for (int tries = 0; tries < 8; tries++) {
        struct stat held, named;
        int fd = openat(u->dirfd, u->tmp, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);

        if (fd < 0)
            return errno == ELOOP ? FERRY_EPATH_SYMLINK : -errno;
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
            int e = errno;
            close(fd);
            return e == EWOULDBLOCK ? 0 : -e;
        }
        /* The lock is on an inode: make sure the name still leads to it,
         * not to a file its last holder has since renamed into place. */
        if (fstat(fd, &held) == 0 && fstatat(u->dirfd, u->tmp, &named, AT_SYMLINK_NOFOLLOW) == 0 &&
            held.st_dev == named.st_dev && held.st_ino == named.st_ino) {
            if (!S_ISREG(held.st_mode)) {
                close(fd);
                return -EINVAL;
            }
            if (held.st_nlink != 1) {
                /* A hard link planted on the name would make us write
                 * into some other file: leave it to whoever made it. */
                close(fd);
                return 0;
            }
            u->fd = fd;
            return 1;
        }
        close(fd);
    }
    return -EAGAIN;
}

/* A private temporary is locked as the shared one is: a start-up sweep
 * (another ferryd's, on this root) leaves a locked temporary alone, and
 * the shared temporary of a name that happens to look like ours
 * (".NAME.XXXXXXXX") cannot be taken from under us.  Someone who got the
 * fresh file's lock or name first keeps it, and we try another name. */
static int take_private(struct fsops_upload *u)
{
    int r = -EEXIST;

    for (int tries = 0; tries < 16 && r == -EEXIST; tries++) {
        struct stat held, named;
        uint32_t rnd;
        int fd;

        if (getrandom(&rnd, sizeof rnd, 0) != sizeof rnd) {
            r = -EIO;
            break;
        }
        filecommit_tmp_name(u->tmp, u->name, &rnd);
        fd = openat(u->dirfd, u->tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) {
            if (errno != EEXIST)
                r = -errno;
            continue;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
            /* Held: whoever took it keeps it.  Any other failure: the
             * file we just made is nobody's, so it goes. */
            if (errno != EWOULDBLOCK) {
                r = -errno;
                unlinkat(u->dirfd, u->tmp, 0);
            }
            close(fd);
            continue;
        }
        if (fstat(fd, &held) == 0 && fstatat(u->dirfd, u->tmp, &named, AT_SYMLINK_NOFOLLOW) == 0 &&
            held.st_dev == named.st_dev && held.st_ino == named.st_ino) {
            u->fd = fd;
            r = 0;
        } else {
            close(fd);
        }
    }
    return r;
}

int fsops_upload_open(const struct fsroot *root, const char *path, int resume,
                      struct fsops_upload *u, uint64_t *have)
{
    const char *name;
    struct stat st;
    int r;

    fsops_upload_init(u);
    *have = 0;
    r = fspath_parent(root, path, &u->dirfd, &name);
    if (r < 0) {
        u->dirfd = -1;
        return r;
    }
    snprintf(u->name, sizeof u->name, "%s", name);
    /* Fail now rather than after the whole transfer, at the rename. */
    if (fstatat(u->dirfd, u->name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
        fsops_upload_abandon(u, 0);
        return -EISDIR;
    }
    /* Names that share the kept bytes share a resumable temporary; resume
     * verifies content, not names. */
    filecommit_tmp_name(u->tmp, u->name, NULL);
    r = take_shared(u);
    if (r == 1) {
        u->shared_name = 1;
        if (!resume && ftruncate(u->fd, 0) < 0)
            r = -errno;
        else if (fstat(u->fd, &st) < 0)
            r = -errno;
        else
            *have = (uint64_t)st.st_size;
    } else if (r == 0 || r == -EISDIR || r == -EINVAL) {
        /* Held by another upload, or something that is not a file sits
         * on the shared name: this upload goes to a private temporary. */
        r = take_private(u);
    }
    if (r >= 0 && lseek(u->fd, (off_t)*have, SEEK_SET) < 0)
        r = -errno;
    if (r < 0) {
        fsops_upload_abandon(u, 0);
        *have = 0;
        return r;
    }
    return 0;
}

int fsops_upload_restart(struct fsops_upload *u)
{
    if (ftruncate(u->fd, 0) < 0 || lseek(u->fd, 0, SEEK_SET) < 0)
        return -errno;
    return 0;
}

int fsops_upload_write(struct fsops_upload *u, const void *buf, size_t len)
{
    return fdio_write_all(u->fd, buf, len, NULL);
}

/* The rename goes by name: make sure the name still leads to the file we
 * wrote and hashed, not one a local user put in its place since. */
static int still_ours(const struct fsops_upload *u)
{
    struct stat held, named;
    int r = 0, gone = 0;

    if (fstat(u->fd, &held) < 0)
        r = -errno;
    else if (fstatat(u->dirfd, u->tmp, &named, AT_SYMLINK_NOFOLLOW) < 0) {
        gone = errno == ENOENT;
        r = gone ? -ESTALE : -errno;
    } else if (held.st_dev != named.st_dev || held.st_ino != named.st_ino)
        r = -ESTALE;
    /* Nothing in ferryd removes or replaces a temporary an upload holds:
     * the log says what happened, for whoever has to find what did it. */
    if (r == -ESTALE)
        ferry_log_warn("upload of %s: its temporary %s (inode %llu) was %s by something else "
                       "while it was written; nothing was saved", FERRY_LOG_Q(u->name),
                       FERRY_LOG_Q(u->tmp), (unsigned long long)held.st_ino,
                       gone ? "removed" : "replaced");
    return r;
}

int fsops_upload_commit(struct fsops_upload *u, mode_t mode, const int64_t *mtime_sec,
                        long mtime_nsec, int do_fsync)
{
    struct timespec times[2] = { { .tv_nsec = UTIME_NOW },
                                 { .tv_sec = mtime_sec ? (time_t)*mtime_sec : 0,
                                   .tv_nsec = mtime_nsec } };
    int r = filecommit_prepare(u->fd, mode, mtime_sec ? times : NULL, do_fsync);

    if (r == 0)
        r = still_ours(u);
    if (r == 0)
        r = filecommit_rename(u->dirfd, u->tmp, u->name);
    if (r < 0) {
        fsops_upload_abandon(u, r != -ESTALE ? 0 : -1);
        return r;
    }
    /* The file is in place: a directory that cannot be synced is worth a
     * warning, not a failure reported for a file that was saved. */
    if (do_fsync && (r = filecommit_sync_dir(u->dirfd, ".")) < 0)
        ferry_log_warn("fsync of the directory of %s: %s", FERRY_LOG_Q(u->name), strerror(-r));
    upload_release(u);
    return 0;
}

void fsops_upload_abandon(struct fsops_upload *u, int keep)
{
    /* keep < 0: the name is no longer ours (still_ours said so); whatever
     * is there now belongs to someone else. */
    if (u->fd >= 0 && keep >= 0 && !(keep && u->shared_name))
        unlinkat(u->dirfd, u->tmp, 0);
    upload_release(u);
}
