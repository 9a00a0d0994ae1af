/*
 * launch.c - how the command runner's process comes to be (the contract
 * is in launch.h).
 *
 * A command is started with posix_spawn (vfork-like in glibc, so starting
 * is cheap even from a large daemon, and exec failures come back as its
 * return value).  The child's side is built entirely from file actions and
 * attributes: cwd by fchdir to a directory we opened and checked first, the
 * pipes dup2'ed onto 0/1/2, everything else closed, a fresh process group,
 * an empty signal mask and default dispositions (the daemon ignores SIGPIPE,
 * and ignored signals survive exec).
 */
#include "launch.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errbuf.h"
#include "errcode.h"
#include "fdio.h"
#include "ferry/error.h"

/* posix_spawn_file_actions_addclosefrom_np arrived in glibc 2.34 (and
 * addfchdir_np in 2.29, which we require).  Without closefrom we rely on
 * every descriptor being close-on-exec, which ferry guarantees for its own. */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
#define HAVE_ADDCLOSEFROM 1
#endif

#define DEFAULT_PATH     "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define DEFAULT_LANG     "C.UTF-8"

/* ---- pipes ------------------------------------------------------------- */

int launch_pipe(int p[2], int parent_end)
{
    int rc;

    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    for (int i = 0; i < 2; i++) {
        if (p[i] < 3) {
            int fd = fcntl(p[i], F_DUPFD_CLOEXEC, 3);

            if (fd < 0)
                goto fail;
            close(p[i]);
            p[i] = fd;
        }
    }
    /* A new pipe's end has no status flags to keep (F_SETFL ignores the
     * access mode): one call, not a read and a write, per command. */
    if (fcntl(p[parent_end], F_SETFL, O_NONBLOCK) < 0)
        goto fail;
    return 0;

fail:
    rc = -errno;
    fdio_close(&p[0]);
    fdio_close(&p[1]);
    return rc;
}

/* ---- the child's account and environment ------------------------------- */

/* The daemon user's passwd entry, copied (getpwuid is not thread-safe and
 * each worker thread may start commands). */
struct launch_account {
    struct passwd pw;
    char *buf;          /* owns the strings pw points into */
    bool found;
};

static int account_load(struct launch_account *a)
{
    long hint = sysconf(_SC_GETPW_R_SIZE_MAX);
    size_t size = hint > 0 ? (size_t)hint : 4096;
    struct passwd *res = NULL;

    for (;;) {
        char *nb = realloc(a->buf, size);

        if (!nb)
            return -ENOMEM;
        a->buf = nb;
        int rc = getpwuid_r(getuid(), &a->pw, a->buf, size, &res);
        if (rc == ERANGE && size < (1u << 20)) {
            size *= 2;
            continue;
        }
        /* No entry (or a broken NSS) is not fatal: defaults below. */
        a->found = rc == 0 && res != NULL;
        return 0;
    }
}

int launch_account_load(struct launch_account **out)
{
    struct launch_account *a = calloc(1, sizeof *a);
    int rc = a ? account_load(a) : -ENOMEM;

    if (rc < 0) {
        launch_account_free(a);
        a = NULL;
    }
    *out = a;
    return rc;
}

void launch_account_free(struct launch_account *a)
{
    if (a) {
        free(a->buf);
        free(a);
    }
}

static const char *account_home(const struct launch_account *a)
{
    return a->found && a->pw.pw_dir && a->pw.pw_dir[0] ? a->pw.pw_dir : "/";
}

static void free_strv(char **v)
{
    if (!v)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

static bool valid_env_name(const char *s, size_t n)
{
    if (n == 0 || !(s[0] == '_' || (s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z')))
        return false;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];

        if (!(c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
            return false;
    }
    return true;
}

/* Index of NAME= in env[0..n), or n. */
static size_t env_find(char **env, size_t n, const char *name, size_t namelen)
{
    for (size_t i = 0; i < n; i++)
        if (strncmp(env[i], name, namelen) == 0 && env[i][namelen] == '=')
            return i;
    return n;
}

static const char *env_get(char *const *env, const char *name)
{
    size_t len = strlen(name);

    for (; *env; env++)
        if (strncmp(*env, name, len) == 0 && (*env)[len] == '=')
            return *env + len + 1;
    return NULL;
}

/* The child's environment: defaults, then the extras (validated; later
 * entries override earlier ones).  *out is a NULL-terminated array of owned
 * strings (free_strv). */
static int build_env(const struct launch_account *a, char *const *extra, char ***out,
                     char *err, size_t errlen)
{
    size_t nextra = 0, n = 0;
    char **env = NULL;
    const char *lang = getenv("LANG");
    int rc;

    while (extra && extra[nextra])
        nextra++;
    env = calloc(7 + nextra, sizeof(*env));   /* 6 defaults + extras + NULL */
    if (!env)
        return -ENOMEM;

#define ENV_ADD(...)                                                          \
    do {                                                                      \
        if (asprintf(&env[n], __VA_ARGS__) < 0) {                             \
            env[n] = NULL;                                                    \
            rc = -ENOMEM;                                                     \
            goto fail;                                                        \
        }                                                                     \
        n++;                                                                  \
    } while (0)

    ENV_ADD("PATH=%s", DEFAULT_PATH);
    ENV_ADD("HOME=%s", account_home(a));
    if (a->found && a->pw.pw_name && a->pw.pw_name[0]) {
        ENV_ADD("USER=%s", a->pw.pw_name);
        ENV_ADD("LOGNAME=%s", a->pw.pw_name);
    }
    ENV_ADD("SHELL=%s", a->found && a->pw.pw_shell && a->pw.pw_shell[0] ? a->pw.pw_shell : "/bin/sh");
    ENV_ADD("LANG=%s", lang && lang[0] ? lang : DEFAULT_LANG);
#undef ENV_ADD

    for (size_t i = 0; i < nextra; i++) {
        const char *eq = strchr(extra[i], '=');
        size_t namelen = eq ? (size_t)(eq - extra[i]) : strlen(extra[i]);
        char *copy;

        if (!eq || !valid_env_name(extra[i], namelen)) {
            errbuf_format(err, errlen, "bad environment variable name: %.*s",
                          (int)(namelen > 64 ? 64 : namelen), extra[i]);
            rc = -EINVAL;
            goto fail;
        }
        copy = strdup(extra[i]);
        if (!copy) {
            rc = -ENOMEM;
            goto fail;
        }
        size_t at = env_find(env, n, extra[i], namelen);
        if (at < n) {
            free(env[at]);
            env[at] = copy;
        } else {
            env[n++] = copy;
        }
    }
    *out = env;
    return 0;

fail:
    free_strv(env);
    if (rc == -ENOMEM)
        errbuf_format(err, errlen, "out of memory");
    return rc;
}

/* ---- program lookup ---------------------------------------------------- */

/*
 * Find NAME in the child's PATH as execvp would, but against the child's
 * PATH and cwd (dirfd) instead of ours.  Empty or relative PATH entries are
 * relative to the child's cwd, so the candidate is checked with *at() calls
 * on dirfd and passed to posix_spawn as it stands (the child has already
 * changed directory when it execs).  Directories are skipped; a file found
 * only without execute permission gives -EACCES, nothing at all -ENOENT.
 */
static int find_program(const char *name, const char *path, int dirfd, char **out)
{
    bool denied = false;
    size_t namelen = strlen(name);
    const char *p = path;

    if (namelen == 0)
        return -ENOENT;
    for (;;) {
        const char *colon = strchr(p, ':');
        size_t dlen = colon ? (size_t)(colon - p) : strlen(p);
        char *cand;
        struct stat st;

        if (dlen == 0)
            cand = strdup(name);
        else if (asprintf(&cand, "%.*s/%s", (int)dlen, p, name) < 0)
            cand = NULL;
        if (!cand)
            return -ENOMEM;
        if (fstatat(dirfd, cand, &st, 0) == 0 && !S_ISDIR(st.st_mode)) {
            if (faccessat(dirfd, cand, X_OK, 0) == 0) {
                *out = cand;
                return 0;
            }
            if (errno == EACCES)
                denied = true;
        }
        free(cand);
        if (!colon)
            break;
        p = colon + 1;
    }
    return denied ? -EACCES : -ENOENT;
}

/* Open and check the working directory.  The child fchdir()s to exactly
 * this directory, so what we checked is what it gets; the search-permission
 * check keeps a bad cwd from surfacing as posix_spawn's EACCES, which would
 * read as "permission denied" on the command. */
static int open_cwd(const char *cwd, int *out, char *err, size_t errlen)
{
    int fd = open(cwd, O_PATH | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0 || access(cwd, X_OK) < 0) {
        int e = errno;

        if (fd >= 0)
            close(fd);
        errbuf_format(err, errlen, "cd %s: %s", cwd, ferry_strerror(-e));
        return FERRY_ECWD;
    }
    *out = fd;
    return 0;
}

/* ---- spawning ---------------------------------------------------------- */

/* Message for a posix_spawn failure, in the shell's words. */
static void spawn_error(int rc, const char *name, bool looked_up, char *err, size_t errlen)
{
    switch (rc) {
    case -ENOENT:
        errbuf_format(err, errlen, "%s: %s", name,
                      looked_up ? "command not found" : "No such file or directory");
        break;
    case -EACCES:
        errbuf_format(err, errlen, "%s: permission denied", name);
        break;
    case -ENOEXEC:
        errbuf_format(err, errlen, "%s: cannot execute: Exec format error", name);
        break;
    default:
        errbuf_format(err, errlen, "%s: %s", name, ferry_strerror(rc));
        break;
    }
}

/* posix_spawn with the child set up as runner.h promises.  child_fd are
 * the child's ends for 0, 1, 2 (child_fd[0] < 0: /dev/null). */
static int spawn(pid_t *pid, const char *path, char *const *argv, char *const *envp,
                 int dirfd, const int child_fd[3], const char *tty)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    bool fa_ok = false, attr_ok = false;
    sigset_t set;
    int rc;

    rc = posix_spawn_file_actions_init(&fa);
    if (rc)
        goto out;
    fa_ok = true;
    /* fchdir first: later actions (and the exec) resolve relative paths
     * from the new directory. */
    rc = posix_spawn_file_actions_addfchdir_np(&fa, dirfd);
    if (rc)
        goto out;
    if (tty) {
        /* Attributes come before file actions in the child, so this open
         * happens after setsid: without O_NOCTTY, the first terminal a
         * session leader opens becomes its controlling terminal (Linux),
         * which is what TIOCSCTTY would do. */
        rc = posix_spawn_file_actions_addopen(&fa, 0, tty, O_RDWR, 0);
        if (!rc)
            rc = posix_spawn_file_actions_adddup2(&fa, 0, 1);
        if (!rc)
            rc = posix_spawn_file_actions_adddup2(&fa, child_fd[2] >= 0 ? child_fd[2] : 0, 2);
    } else {
        if (child_fd[0] >= 0)
            rc = posix_spawn_file_actions_adddup2(&fa, child_fd[0], 0);
        else
            rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        /* dup2 clears close-on-exec on 0-2; the child ends (all >= 3) go. */
        for (int i = 1; i <= 2 && !rc; i++)
            rc = posix_spawn_file_actions_adddup2(&fa, child_fd[i], i);
    }
    if (rc)
        goto out;
#ifdef HAVE_ADDCLOSEFROM
    /* Also descriptors some library opened without O_CLOEXEC. */
    rc = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    if (rc)
        goto out;
#endif

    rc = posix_spawnattr_init(&attr);
    if (rc)
        goto out;
    attr_ok = true;
    /* A fresh process group led by the command, so signals and the final
     * SIGKILL reach everything it starts; the daemon's mask and ignored
     * signals (SIGPIPE!) must not leak into it. */
    /* On a terminal, a session of its own instead (its leader is also
     * the leader of a new group; setpgid would then fail with EPERM). */
    rc = posix_spawnattr_setflags(&attr, (tty ? POSIX_SPAWN_SETSID : POSIX_SPAWN_SETPGROUP) |
                                         POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    if (!rc && !tty)
        rc = posix_spawnattr_setpgroup(&attr, 0);
    if (!rc) {
        sigemptyset(&set);
        rc = posix_spawnattr_setsigmask(&attr, &set);
    }
    if (!rc) {
        /* Every signal we may name; glibc's own two internal signals are
         * excluded by sigfillset and set to SIG_IGN by posix_spawn itself
         * when handled here (harmless: programs do not use them). */
        sigfillset(&set);
        sigdelset(&set, SIGKILL);
        sigdelset(&set, SIGSTOP);
        rc = posix_spawnattr_setsigdefault(&attr, &set);
    }
    if (rc)
        goto out;

    rc = posix_spawn(pid, path, &fa, &attr, argv, envp);

out:
    if (attr_ok)
        posix_spawnattr_destroy(&attr);
    if (fa_ok)
        posix_spawn_file_actions_destroy(&fa);
    return -rc;
}

/* ---- the launch as a whole --------------------------------------------- */

/* The account's shell (/bin/sh without one), started as a login shell:
 * argv[0] is its name after a '-', which is how shells know to read the
 * profile.  l->found owns the path, l->login_argv[0] the name. */
static int login_shell(struct launch *l, const struct launch_account *a)
{
    const char *sh = a->found && a->pw.pw_shell && a->pw.pw_shell[0] == '/' ? a->pw.pw_shell
                                                                           : "/bin/sh";
    const char *base = strrchr(sh, '/') + 1;

    l->found = strdup(sh);
    if (!l->found || asprintf(&l->login_argv[0], "-%s", base) < 0) {
        l->login_argv[0] = NULL;
        return -ENOMEM;
    }
    l->login_argv[1] = NULL;
    l->argv = l->login_argv;
    l->path = l->found;
    return 0;
}

void launch_init(struct launch *l)
{
    memset(l, 0, sizeof *l);
    l->dirfd = -1;
}

void launch_cannot_start(const char *name, int rc, char *err, size_t errlen)
{
    errbuf_format(err, errlen, "cannot start %s: %s", name, ferry_strerror(rc));
}

int launch_prepare(struct launch *l, const struct launch_account *account, char *const *argv,
                   const char *shell, const char *cwd, char *const *env, char *err, size_t errlen)
{
    struct launch_account own = { .buf = NULL };
    const struct launch_account *a = account;
    int rc = 0;

    launch_init(l);
    l->name = shell ? "/bin/sh" : argv ? argv[0] : "the login shell";
    if (!a) {
        rc = account_load(&own);
        a = &own;
    }
    if (rc < 0) {
        launch_cannot_start(l->name, rc, err, errlen);
        goto out;
    }
    rc = build_env(a, env, &l->envp, err, errlen);
    if (rc < 0)
        goto out;
    if (cwd) {
        rc = open_cwd(cwd, &l->dirfd, err, errlen);
    } else {
        /* As sshd does: a user whose home is missing (daemon accounts often
         * have /nonexistent) still gets to run commands, from /. */
        rc = open_cwd(account_home(a), &l->dirfd, err, errlen);
        if (rc < 0)
            rc = open_cwd("/", &l->dirfd, err, errlen);
    }
    if (rc < 0)
        goto out;

    if (!shell && !argv) {
        rc = login_shell(l, a);
        if (rc < 0)
            launch_cannot_start(l->name, rc, err, errlen);
    } else if (shell) {
        /* posix_spawn does not write to argv; the cast only satisfies its
         * historical prototype. */
        memcpy(l->sh_name, "sh", 3);
        memcpy(l->sh_opt, "-c", 3);
        l->sh_argv[0] = l->sh_name;
        l->sh_argv[1] = l->sh_opt;
        l->sh_argv[2] = (char *)shell;
        l->sh_argv[3] = NULL;
        l->argv = l->sh_argv;
        l->path = "/bin/sh";
    } else {
        l->argv = argv;
        if (strchr(l->name, '/')) {
            l->path = l->name;
        } else {
            const char *child_path = env_get(l->envp, "PATH");

            rc = find_program(l->name, child_path ? child_path : "", l->dirfd, &l->found);
            if (rc < 0) {
                spawn_error(rc, l->name, true, err, errlen);
                goto out;
            }
            l->path = l->found;
        }
    }
out:
    free(own.buf);
    if (rc < 0)
        launch_release(l);
    return rc;
}

int launch_spawn(struct launch *l, const int child_fd[3], pid_t *pid, char *err, size_t errlen)
{
    int rc = spawn(pid, l->path, l->argv, l->envp, l->dirfd, child_fd, l->tty);

    if (rc < 0)
        spawn_error(rc, l->name, false, err, errlen);
    return rc;
}

void launch_release(struct launch *l)
{
    fdio_close(&l->dirfd);
    free(l->found);
    free(l->login_argv[0]);
    free_strv(l->envp);
    launch_init(l);
}
