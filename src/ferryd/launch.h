/*
 * launch.h - setting up and spawning the process of a command the runner
 * (runner.h) then drives: the daemon user's account, the child's clean
 * environment, its checked working directory, argv[0] looked up in the
 * child's PATH, and posix_spawn with the child's descriptors, process
 * group and signals set as runner.h promises.
 *
 * Apart from the runner so that how a process is made (accounts, PATH,
 * cwd, spawn attributes) and how it is driven (pipes on a loop, reaping,
 * timeouts) can each be read on their own.  Calls go one way:
 * runner.c -> launch.c, and a session (sessionsvc.c) keeps the account
 * it looked up here for its commands.
 *
 * Errors: 0 or a negative code, with a one-line reason in the caller's
 * (err, errlen) buffer in the shell's words (see runner_start in runner.h
 * for the codes).
 */
#ifndef FERRYD_LAUNCH_H
#define FERRYD_LAUNCH_H

#include <stddef.h>
#include <sys/types.h>

/* A command ready to spawn (launch_prepare), owning what it holds until
 * launch_release. */
struct launch {
    char *const *argv;   /* the child's argv */
    const char *path;    /* what is executed (relative paths from dirfd) */
    const char *name;    /* how messages name the command */
    char **envp;         /* the child's environment (owned) */
    int dirfd;           /* the checked working directory, O_PATH (owned) */
    char *found;         /* argv[0] as found in PATH (owned), or NULL */
    char sh_name[3], sh_opt[3];
    char *sh_argv[4];    /* shell mode: sh -c LINE */
    char *login_argv[2]; /* login mode: "-sh" (owned) */
    /* Set by the caller before launch_spawn, or NULL: the path of a
     * terminal the child opens as 0, 1 and 2 (and as its controlling
     * terminal, in a session of its own); child_fd[2] >= 0 still makes
     * stderr that pipe. */
    const char *tty;
};

/* The daemon user's passwd entry, as a command sees it (HOME, USER,
 * LOGNAME, SHELL, the login shell, the default directory).  A session
 * looks it up once, as sshd does at login, rather than once per command
 * (a file opened, read and parsed each time).  A user without an entry is
 * not an error (defaults apply); 0 or -ENOMEM. */
struct launch_account;
int launch_account_load(struct launch_account **out);
void launch_account_free(struct launch_account *a);   /* NULL allowed */

/* An empty launch that owns nothing (safe to release). */
void launch_init(struct launch *l);

/*
 * Everything short of the spawn, as account says (NULL: looked up now),
 * for at most one of argv (exact, argv[0]
 * looked up in the child's PATH unless it has a '/') and shell (a
 * /bin/sh -c line); neither: the account's login shell, argv[0] its name
 * after a '-' (as login(1) and sshd start it); cwd NULL means the daemon user's home, else /; env
 * extra NAME=VALUE entries over the defaults (NULL-terminated, or NULL).
 * On failure l owns nothing.
 */
int launch_prepare(struct launch *l, const struct launch_account *account, char *const *argv,
                   const char *shell, const char *cwd, char *const *env, char *err, size_t errlen);

/* posix_spawn the prepared command with child_fd as its 0, 1 and 2
 * (child_fd[0] < 0: /dev/null), or on l->tty; *pid is also its process
 * group (and, on a terminal, its session). */
int launch_spawn(struct launch *l, const int child_fd[3], pid_t *pid, char *err, size_t errlen);

/* Free what l holds; l is empty afterwards. */
void launch_release(struct launch *l);

/*
 * A pipe for a child's standard descriptor: the child end blocking and
 * above 2 (so dup2 onto 0/1/2 can never clobber another pipe end, even in
 * a daemon started with 0-2 closed), the parent end (p[parent_end])
 * non-blocking, both close-on-exec.  p[0] is the read end, as with pipe(2).
 */
int launch_pipe(int p[2], int parent_end);

/* "cannot start NAME: REASON", for a failure around the spawn itself
 * (memory, pipes). */
void launch_cannot_start(const char *name, int rc, char *err, size_t errlen);

#endif
