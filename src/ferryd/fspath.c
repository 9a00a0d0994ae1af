/*
 * fspath.c - client paths to descriptors beneath the served root; the
 * contract, and why it takes openat2, are in fspath.h.
 *
 * Two resolvers sit behind one entry point (open_beneath):
 *   - openat2 with RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS: one kernel walk
 *     that refuses to leave the root however the tree changes during it;
 *   - the fallback, for kernels or sandboxes without openat2: our own walk,
 *     one openat(O_NOFOLLOW) per component, each relative to the directory
 *     descriptor the previous step returned.  Because every step is taken
 *     from a descriptor (never by re-walking a name) and never follows a
 *     symlink, a concurrent swap can only make a step fail, not redirect it.
 *     ".." never reaches either resolver (fspath_check rejects it), so the
 *     fallback only ever walks down.
 *
 * The string check runs first in every entry point, so neither resolver
 * ever sees an absolute path, a "..", or an empty component.
 */
#include "fspath.h"
#include "errbuf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ferry/error.h"
#include "ferry/log.h"
#include "fdio.h"

/* openat2 answers EAGAIN when a concurrent rename might have let a ".."
 * (inside a symlink's target) escape; the walk is simply retried. */
#define OPENAT2_TRIES 8

int fspath_force_fallback;

/* Set once openat2 has answered ENOSYS: the kernel will not grow it later. */
static atomic_int openat2_missing;

struct fsroot {
    int fd;     /* O_PATH | O_DIRECTORY | O_CLOEXEC */
};


/* ---- the root ------------------------------------------------------------ */

/* mkdir dir (not -p): EEXIST is fine, whether it is a directory is left
 * to the O_DIRECTORY open that follows.  A missing parent is named: the
 * administrator's typo in --root, which mkdir -p served as a new tree. */
static int mkdir_last(const char *dir, char *err, size_t errlen)
{
    size_t len = strlen(dir), plen;
    int rc;

    if (mkdir(dir, 0755) == 0 || errno == EEXIST)
        return 0;
    rc = -errno;
    if (rc != -ENOENT) {
        errbuf_format(err, errlen, "mkdir %s: %s", dir, ferry_strerror(rc));
        return rc;
    }
    /* The parent: dir less its trailing slashes and last component. */
    while (len > 1 && dir[len - 1] == '/')
        len--;
    plen = len;
    while (plen > 0 && dir[plen - 1] != '/')
        plen--;
    while (plen > 1 && dir[plen - 1] == '/')
        plen--;
    errbuf_format(err, errlen, "%s: its parent %.*s does not exist (only the last directory "
                  "is made)", dir, (int)(plen ? plen : 1), plen ? dir : ".");
    return rc;
}

int fsroot_open(const char *dir, int create, struct fsroot **out,
                char *err, size_t errlen)
{
    struct fsroot *root = NULL;
    int fd = -1;
    int rc;

    *out = NULL;
    if (!dir || dir[0] == '\0') {
        errbuf_format(err, errlen, "empty root directory name");
        return -EINVAL;
    }
    if (create) {
        rc = mkdir_last(dir, err, errlen);
        if (rc < 0)
            goto fail;
    }
    fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        errbuf_format(err, errlen, "%s: %s", dir, ferry_strerror(rc));
        goto fail;
    }
    root = malloc(sizeof *root);
    if (!root) {
        rc = -ENOMEM;
        errbuf_format(err, errlen, "%s: %s", dir, ferry_strerror(rc));
        goto fail;
    }
    root->fd = fd;
    *out = root;
    return 0;

fail:
    fdio_close(&fd);
    return rc;
}

void fsroot_close(struct fsroot *root)
{
    if (!root)
        return;
    fdio_close(&root->fd);
    free(root);
}

int fsroot_fd(const struct fsroot *root)
{
    return root->fd;
}

/* ---- the string check ---------------------------------------------------- */

int fspath_check(const char *path, char *err, size_t errlen)
{
    const char *comp;
    size_t len, i;

    if (!path || path[0] == '\0') {
        errbuf_format(err, errlen, "empty path");
        return FERRY_EPATH_EMPTY;
    }
    /* strnlen: a hostile path is never scanned further than this. */
    len = strnlen(path, PATH_MAX);
    if (len >= PATH_MAX) {
        errbuf_format(err, errlen, "path is longer than %d bytes", PATH_MAX - 1);
        return FERRY_EPATH_LONG;
    }
    if (path[0] == '/') {
        errbuf_format(err, errlen, "absolute path: paths are relative to the served root");
        return FERRY_EPATH_ABSOLUTE;
    }
    if (strcmp(path, ".") == 0)
        return 0;

    comp = path;
    for (i = 0; i <= len; i++) {
        unsigned char c = (unsigned char)path[i];
        size_t n;

        if (c != '/' && c != '\0') {
            if (c < 0x20 || c == 0x7f) {
                errbuf_format(err, errlen, "control character 0x%02x at byte %zu of the path",
                              c, i);
                return FERRY_EPATH_CONTROL;
            }
            continue;
        }
        /* End of a component: comp .. path + i. */
        n = (size_t)(path + i - comp);
        if (n == 0) {
            errbuf_format(err, errlen, "empty component (repeated or trailing '/') in the path");
            return FERRY_EPATH_SLASH;
        }
        if (n == 2 && comp[0] == '.' && comp[1] == '.') {
            errbuf_format(err, errlen, "'..' is not allowed in a path");
            return FERRY_EPATH_DOTDOT;
        }
        if (n == 1 && comp[0] == '.') {
            errbuf_format(err, errlen, "'.' is only allowed as the whole path");
            return FERRY_EPATH_DOT;
        }
        if (n > NAME_MAX) {
            errbuf_format(err, errlen, "a file name in the path is longer than %d bytes", NAME_MAX);
            return FERRY_EPATH_NAMELONG;
        }
        comp = path + i + 1;
    }
    return 0;
}

/* ---- resolution ----------------------------------------------------------- */

static int creates(int flags)
{
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE;
}

/* openat2's answer as our code; -ENOSYS is passed through for the caller. */
static int open_openat2(int rootfd, const char *path, int flags, mode_t mode,
                        int *fd_out)
{
    struct open_how how;
    int tries = 0;

    memset(&how, 0, sizeof how);
    how.flags = (unsigned long long)(unsigned)flags;
    /* openat2, unlike openat, refuses a mode it would not use. */
    how.mode = creates(flags) ? mode : 0;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;

    for (;;) {
        long fd = syscall(SYS_openat2, rootfd, path, &how, sizeof how);
        int e;

        if (fd >= 0) {
            *fd_out = (int)fd;
            return 0;
        }
        e = errno;
        if (e == EINTR || (e == EAGAIN && ++tries < OPENAT2_TRIES))
            continue;
        if (e == EXDEV)
            return FERRY_EPATH_ESCAPE;
        /* ELOOP: the final component is a symlink under O_NOFOLLOW, a magic
         * link was refused (RESOLVE_NO_MAGICLINKS), or symlinks loop.  The
         * kernel does not say which; all three are "a symlink we do not
         * follow", which reads better than "too many levels". */
        if (e == ELOOP)
            return FERRY_EPATH_SYMLINK;
        return -e;
    }
}

static int openat_retry(int dirfd, const char *name, int flags, mode_t mode)
{
    int fd;

    do
        fd = openat(dirfd, name, flags, mode);
    while (fd < 0 && errno == EINTR);
    return fd;
}

/* One step of the fallback walk: the directory `name` inside dirfd, never
 * through a symlink.  O_PATH|O_NOFOLLOW opens a symlink as itself, so the
 * fstat on what we got (not a second lookup by name) says what it was. */
static int fallback_step(int dirfd, const char *name, int *next)
{
    struct stat st;
    int fd;

    fd = openat_retry(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0) {
        int rc = -errno;

        close(fd);
        return rc;
    }
    if (!S_ISDIR(st.st_mode)) {
        close(fd);
        return S_ISLNK(st.st_mode) ? FERRY_EPATH_SYMLINK : -ENOTDIR;
    }
    *next = fd;
    return 0;
}

/* The final component, after the real open failed with e: the open itself
 * never followed anything (O_NOFOLLOW); this lstat only picks the message. */
static int fallback_final_error(int dirfd, const char *name, int e)
{
    struct stat st;

    if (e == ELOOP)
        return FERRY_EPATH_SYMLINK;
    if (e == ENOTDIR && fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISLNK(st.st_mode))
        return FERRY_EPATH_SYMLINK;
    return -e;
}

static int open_fallback(int rootfd, const char *path, int flags, mode_t mode,
                         int *fd_out)
{
    char name[NAME_MAX + 1];
    const char *p = path;
    const char *slash;
    int dirfd = -1;     /* the directory walked so far; -1 means the root */
    int fd = -1;
    int rc;

    while ((slash = strchr(p, '/')) != NULL) {
        size_t n = (size_t)(slash - p);   /* <= NAME_MAX: fspath_check */
        int next = -1;

        memcpy(name, p, n);
        name[n] = '\0';
        rc = fallback_step(dirfd >= 0 ? dirfd : rootfd, name, &next);
        if (rc < 0)
            goto out;
        fdio_close(&dirfd);
        dirfd = next;
        p = slash + 1;
    }

    fd = openat_retry(dirfd >= 0 ? dirfd : rootfd, p, flags | O_NOFOLLOW, mode);
    if (fd < 0) {
        rc = fallback_final_error(dirfd >= 0 ? dirfd : rootfd, p, errno);
        goto out;
    }
    /* O_PATH|O_NOFOLLOW succeeds on a symlink, opening the link itself. */
    if (flags & O_PATH) {
        struct stat st;

        if (fstat(fd, &st) < 0) {
            rc = -errno;
            goto out;
        }
        if (S_ISLNK(st.st_mode)) {
            rc = FERRY_EPATH_SYMLINK;
            goto out;
        }
    }
    *fd_out = fd;
    fd = -1;
    rc = 0;
out:
    fdio_close(&fd);
    fdio_close(&dirfd);
    return rc;
}

/* path has passed fspath_check. */
static int open_beneath(int rootfd, const char *path, int flags, mode_t mode,
                        int *fd_out)
{
    flags |= O_CLOEXEC;
    /* Creating never goes through a symlink at the final component: one
     * planted there (dangling or not) must not decide where we write. */
    if (creates(flags))
        flags |= O_NOFOLLOW;

    if (!fspath_force_fallback &&
        !atomic_load_explicit(&openat2_missing, memory_order_relaxed)) {
        int rc = open_openat2(rootfd, path, flags, mode, fd_out);

        if (rc != -ENOSYS)
            return rc;
        if (!atomic_exchange(&openat2_missing, 1))
            ferry_log_warn("openat2 is not available: paths under the root are "
                           "resolved without following any symlink");
    }
    return open_fallback(rootfd, path, flags, mode, fd_out);
}

int fspath_open(const struct fsroot *root, const char *path, int flags,
                mode_t mode, int *fd_out)
{
    int rc;

    *fd_out = -1;
    rc = fspath_check(path, NULL, 0);
    if (rc < 0)
        return rc;
    return open_beneath(root->fd, path, flags, mode, fd_out);
}

static int is_dot_or_dotdot(const char *name)
{
    return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

int fspath_parent(const struct fsroot *root, const char *path,
                  int *dirfd_out, const char **name_out)
{
    const char *name;
    char *dir = NULL;
    int rc;

    *dirfd_out = -1;
    *name_out = NULL;
    rc = fspath_check(path, NULL, 0);
    if (rc < 0 && rc != FERRY_EPATH_DOT && rc != FERRY_EPATH_DOTDOT)
        return rc;
    name = strrchr(path, '/');
    name = name ? name + 1 : path;
    /* Say "not a target" rather than "not allowed in a path" when the
     * problem is the final component itself. */
    if (is_dot_or_dotdot(name))
        return FERRY_EPATH_DOT;
    if (rc < 0)
        return rc;

    if (name == path) {
        rc = open_beneath(root->fd, ".", O_PATH | O_DIRECTORY, 0, dirfd_out);
    } else {
        dir = strndup(path, (size_t)(name - 1 - path));
        if (!dir)
            return -ENOMEM;
        rc = open_beneath(root->fd, dir, O_PATH | O_DIRECTORY, 0, dirfd_out);
    }
    free(dir);
    if (rc < 0)
        return rc;
    *name_out = name;
    return 0;
}

/* ---- the sweep -------------------------------------------------------------- */

/* Directories the sweep holds open at once.  Deeper, the levels above are
 * let go and found again from the root when the walk climbs back. */
#define SWEEP_WINDOW 64

/* One level of the walk: the directory being read, its filesystem, and
 * the subdirectory being walked below it (its d_ino: how the level is
 * found again). */
struct sweep_level {
    DIR *d;          /* NULL once let go */
    dev_t dev;
    ino_t child;
};

struct sweep {
    const char *suffix;
    size_t suffix_len;
    int first_err;
    int rootfd;
    struct fspath_sweep *out;
    struct sweep_level *lv;     /* lv[0] is the root; grows with the depth */
    size_t cap;
};

static void sweep_fail(struct sweep *s, int code)
{
    if (s->first_err == 0)
        s->first_err = code;
}

/* A temporary's name: ".NAME" + suffix.  The leading dot is required, so
 * a user's own "notes.ferry-part" is never taken for one. */
static int is_temporary(const struct sweep *s, const char *name)
{
    size_t n = strlen(name);

    return name[0] == '.' && n > s->suffix_len + 1 &&
           memcmp(name + n - s->suffix_len, s->suffix, s->suffix_len) == 0;
}

/* The directory name in dirfd, for reading, never through a symlink: a
 * directory swapped for a symlink since readdir fails here (ELOOP or
 * ENOTDIR) instead of being entered.  *dev: the filesystem of what was
 * opened (fstat of the descriptor, not a second lookup of the name).
 * NULL with errno set. */
static DIR *sweep_open(int dirfd, const char *name, dev_t *dev)
{
    int fd = openat_retry(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0);
    struct stat st;
    DIR *d = NULL;

    if (fd < 0)
        return NULL;
    if (fstat(fd, &st) == 0) {
        *dev = st.st_dev;
        d = fdopendir(fd);
    }
    if (!d) {
        int e = errno;
        close(fd);
        errno = e;
    }
    return d;
}

/*
 * Whether the walk goes on into a directory on another filesystem than
 * its parent's (a mount point).  Only into local, writable filesystems of
 * the kinds a system's own files live on (docs/DESIGN.md, "The start-up
 * sweep"): those are where ferryd's uploads can have left temporaries.
 * Never into /proc, /sys, /dev, cgroups and the other kernel filesystems
 * (they hold no uploads, and walking them is slow and touches what the
 * sweep has no business in), network and FUSE filesystems (slow, and
 * another machine's), overlay, squashfs and the like, or anything mounted
 * read-only: a temporary there is left (find -xdev's rule), to be taken
 * over by the next upload of its name.
 */
static int sweep_crosses_into(int fd)
{
    static const unsigned long local[] = {
        0xEF53,         /* ext2, ext3, ext4 */
        0x58465342,     /* xfs */
        0x9123683E,     /* btrfs (a subvolume is a device of its own) */
        0xF2F52010,     /* f2fs */
        0x2FC12FC1,     /* zfs */
        0xCA451A4E,     /* bcachefs */
        0x3153464A,     /* jfs */
        0x01021994,     /* tmpfs: /tmp, /run, /dev/shm */
    };
    struct statfs sf;

    if (fstatfs(fd, &sf) < 0 || (sf.f_flags & ST_RDONLY))
        return 0;
    for (size_t i = 0; i < sizeof local / sizeof local[0]; i++)
        if ((unsigned long)sf.f_type == local[i])
            return 1;
    return 0;
}

/* Read d up to and including the entry whose inode is ino; NULL if gone. */
static struct dirent *sweep_find(DIR *d, ino_t ino)
{
    struct dirent *de;

    while ((de = readdir(d)) != NULL)
        if (de->d_ino == ino && !is_dot_or_dotdot(de->d_name))
            return de;
    return NULL;
}

/* Level k was let go (and with it every level above): walk down to it
 * again from the root by the recorded inodes, keeping the last
 * SWEEP_WINDOW levels open, each positioned just after the child walked
 * below it, so the walk resumes where it was.  -1 when the path has
 * changed since (a directory renamed or removed, or a filesystem mounted
 * or unmounted on it): that part is given up. */
static int sweep_reopen(struct sweep *s, size_t k)
{
    dev_t dev;
    DIR *d = sweep_open(s->rootfd, ".", &dev);

    for (size_t i = 0; d; i++) {
        struct dirent *de;
        DIR *next = NULL;

        if (dev != s->lv[i].dev) {
            closedir(d);
            break;
        }
        de = sweep_find(d, s->lv[i].child);
        if (i == k) {
            s->lv[k].d = d;     /* at its end if the child has gone */
            return 0;
        }
        next = de ? sweep_open(dirfd(d), de->d_name, &dev) : NULL;
        if (i + SWEEP_WINDOW > k)
            s->lv[i].d = d;
        else
            closedir(d);
        d = next;
    }
    return -1;
}

/* Remove the temporary `name` in dirfd unless an upload holds it: 1 when
 * removed, 0 when left (held, or gone meanwhile), else -errno.  Every
 * upload holds its temporary's flock for as long as it lives (fsops.c),
 * also one of another ferryd serving this root (a second listener, a
 * restart that overlaps the old daemon) and this ferryd's own, which run
 * while the sweep does: removing it would fail that upload at its
 * commit, after all its bytes came.  The lock is held across the unlink,
 * and only the name that still leads to the locked file goes (an upload
 * that creates a temporary checks the same after taking its lock, so one
 * the sweep removed between its create and its lock is made again). */
static int sweep_temporary(int dirfd, const char *name)
{
    struct stat held, named;
    int fd, r = 0;

    fd = openat_retry(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0);
    if (fd < 0) {
        /* ENOENT: gone meanwhile; ELOOP: it has just become a symlink,
         * which is nobody's upload.  EACCES/EPERM: another user's file
         * (mode 0600), so no upload of this daemon's: removed by name as
         * it always was (unlinkat removes the entry itself, never what a
         * symlink put there since would point to). */
        if (errno == EACCES || errno == EPERM)
            r = unlinkat(dirfd, name, 0) == 0 ? 1 : errno == ENOENT ? 0 : -errno;
        else if (errno != ENOENT && errno != ELOOP)
            r = -errno;
    } else {
        if (flock(fd, LOCK_EX | LOCK_NB) < 0)
            r = errno == EWOULDBLOCK ? 0 : -errno;
        else if (fstat(fd, &held) < 0)
            r = -errno;
        else if (fstatat(dirfd, name, &named, AT_SYMLINK_NOFOLLOW) == 0 &&
                 held.st_dev == named.st_dev && held.st_ino == named.st_ino)
            r = unlinkat(dirfd, name, 0) == 0 ? 1 : errno == ENOENT ? 0 : -errno;
        close(fd);
    }
    return r;
}

/* One entry of a directory: a temporary is removed; 1 for a directory to
 * enter, else 0.  An automount point not yet mounted is not a directory
 * to enter: opening it would mount it (statx with AT_NO_AUTOMOUNT looks
 * without mounting), and what it would mount is another filesystem. */
static int sweep_entry(struct sweep *s, DIR *d, const struct dirent *de)
{
    unsigned char type = de->d_type;

    if (is_dot_or_dotdot(de->d_name))
        return 0;
    if (type == DT_UNKNOWN || type == DT_DIR) {
        struct statx stx;

        if (statx(dirfd(d), de->d_name, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT,
                  STATX_TYPE, &stx) < 0) {
            if (errno != ENOENT)    /* gone meanwhile: nothing to do */
                sweep_fail(s, -errno);
            return 0;
        }
        if (S_ISDIR(stx.stx_mode) && (stx.stx_attributes & STATX_ATTR_AUTOMOUNT)) {
            s->out->mounts_skipped++;
            return 0;
        }
        type = S_ISDIR(stx.stx_mode) ? DT_DIR : S_ISREG(stx.stx_mode) ? DT_REG : DT_UNKNOWN;
    }
    if (type == DT_DIR)
        return 1;
    if (type == DT_REG && is_temporary(s, de->d_name)) {
        int r = sweep_temporary(dirfd(d), de->d_name);

        if (r > 0)
            s->out->removed++;
        else if (r < 0)
            sweep_fail(s, r);
    }
    return 0;
}

/* The subdirectory de of level depth, to walk next, or NULL: gone, not a
 * directory any more, or a filesystem the walk does not cross into. */
static DIR *sweep_descend(struct sweep *s, size_t depth, const struct dirent *de, dev_t *dev)
{
    DIR *sub = sweep_open(dirfd(s->lv[depth].d), de->d_name, dev);

    if (!sub) {
        if (errno != ENOENT && errno != ELOOP && errno != ENOTDIR)
            sweep_fail(s, -errno);
        return NULL;
    }
    /* The device of what was opened, as find -xdev compares it: a mount
     * put on the name since the statx is judged all the same. */
    if (*dev != s->lv[depth].dev && !sweep_crosses_into(dirfd(sub))) {
        s->out->mounts_skipped++;
        closedir(sub);
        return NULL;
    }
    s->out->dirs++;
    return sub;
}

/* Walk the whole tree below the root, depth first, without recursion:
 * s->lv is the explicit stack (a few bytes a level), at most SWEEP_WINDOW
 * of its directories open.  The stop flag is looked at before every
 * entry, so a stop is seen within one entry's work. */
static void sweep_walk(struct sweep *s)
{
    const atomic_int *stop = s->out->stop;
    size_t depth = 0;

    s->lv[0].d = sweep_open(s->rootfd, ".", &s->lv[0].dev);
    if (!s->lv[0].d) {
        sweep_fail(s, -errno);
        return;
    }
    s->out->dirs++;
    for (;;) {
        struct dirent *de;
        DIR *sub;
        dev_t dev;

        if (stop && atomic_load_explicit(stop, memory_order_relaxed)) {
            s->out->stopped = 1;
            return;
        }
        if (!s->lv[depth].d && sweep_reopen(s, depth) < 0) {
            /* Climbing back, the path down to this level has changed. */
            if (depth == 0)
                return;
            depth--;
            continue;
        }
        errno = 0;
        de = readdir(s->lv[depth].d);
        if (!de) {
            if (errno != 0)
                sweep_fail(s, -errno);
            closedir(s->lv[depth].d);
            s->lv[depth].d = NULL;
            if (depth == 0)
                return;
            depth--;
            continue;
        }
        if (!sweep_entry(s, s->lv[depth].d, de))
            continue;
        if (depth + 2 > s->cap) {
            size_t cap = s->cap * 2;
            struct sweep_level *lv = realloc(s->lv, cap * sizeof *lv);

            if (!lv) {
                sweep_fail(s, -ENOMEM);
                continue;
            }
            memset(lv + s->cap, 0, (cap - s->cap) * sizeof *lv);
            s->lv = lv;
            s->cap = cap;
        }
        sub = sweep_descend(s, depth, de, &dev);
        if (!sub)
            continue;
        s->lv[depth].child = de->d_ino;
        depth++;
        s->lv[depth].d = sub;
        s->lv[depth].dev = dev;
        if (depth >= SWEEP_WINDOW && s->lv[depth - SWEEP_WINDOW].d) {
            closedir(s->lv[depth - SWEEP_WINDOW].d);
            s->lv[depth - SWEEP_WINDOW].d = NULL;
        }
    }
}

int fspath_sweep_temporaries(const struct fsroot *root, const char *suffix,
                             struct fspath_sweep *out)
{
    struct sweep s = { .suffix = suffix, .rootfd = root->fd, .out = out, .cap = SWEEP_WINDOW };

    out->removed = 0;
    out->dirs = 0;
    out->mounts_skipped = 0;
    out->stopped = 0;
    /* An empty suffix would match every file. */
    if (!suffix || suffix[0] == '\0' || strchr(suffix, '/'))
        return -EINVAL;
    s.suffix_len = strlen(suffix);
    s.lv = calloc(s.cap, sizeof *s.lv);
    if (!s.lv)
        return -ENOMEM;
    /* The root's own descriptor is O_PATH, which cannot be read: the walk
     * opens the same directory for reading through it ("."). */
    sweep_walk(&s);
    for (size_t i = 0; i < s.cap; i++)
        if (s.lv[i].d)
            closedir(s.lv[i].d);
    free(s.lv);
    return s.first_err;
}
