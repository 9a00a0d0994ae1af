/*
 * shell_local.c - ferry shell's commands that run on this machine
 * (shell_local.h): `!CMD` and `lls`.
 *
 * The child runs in the foreground on our terminal, as under sftp: a
 * Ctrl-C reaches it (same process group) and must not end the shell, so
 * the shell ignores SIGINT and SIGQUIT while it waits, and the child gets
 * the default dispositions back before exec.
 */
#include "shell_local.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

/*
 * Run argv (argv[0] looked up in PATH) and wait for it.  Returns its exit
 * status, 128+N if signal N killed it, 127 if it could not be run (as a
 * shell says), or 1 if it could not be started at all (printed).
 */
static int run_local(char *const argv[])
{
    struct sigaction ign = { .sa_handler = SIG_IGN }, old_int, old_quit;
    int status = 1, wstatus;
    pid_t pid;

    /* Our buffered output first, so it does not come after the child's. */
    fflush(stdout);
    sigemptyset(&ign.sa_mask);
    if (sigaction(SIGINT, &ign, &old_int) < 0 || sigaction(SIGQUIT, &ign, &old_quit) < 0) {
        cli_error("%s: %s", argv[0], strerror(errno));
        return 1;
    }
    pid = fork();
    if (pid == 0) {
        signal(SIGINT, SIG_DFL);
        signal(SIGQUIT, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        execvp(argv[0], argv);
        fprintf(stderr, "ferry: %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    if (pid < 0) {
        cli_error("%s: cannot start: %s", argv[0], strerror(errno));
    } else {
        pid_t w;

        while ((w = waitpid(pid, &wstatus, 0)) < 0 && errno == EINTR)
            ;
        if (w == pid)
            status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus)
                     : WIFSIGNALED(wstatus) ? 128 + WTERMSIG(wstatus) : 1;
        else
            cli_error("%s: %s", argv[0], strerror(errno));
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGQUIT, &old_quit, NULL);
    return status;
}

int shell_bang(const char *cmdline)
{
    /* A bare "!" starts an interactive shell, as sftp's does. */
    const char *shell = getenv("SHELL");
    char *sh_argv[] = { (char *)"/bin/sh", (char *)"-c", (char *)cmdline, NULL };
    char *login_argv[] = { (char *)(shell && *shell == '/' ? shell : "/bin/sh"), NULL };

    while (*cmdline == ' ' || *cmdline == '\t')
        cmdline++;
    sh_argv[2] = (char *)cmdline;
    return run_local(*cmdline ? sh_argv : login_argv);
}

int shell_lls(int argc, char **argv)
{
    char **ls_argv = calloc((size_t)argc + 1, sizeof *ls_argv);
    int status;

    if (!ls_argv) {
        cli_error("out of memory");
        return 1;
    }
    ls_argv[0] = (char *)"ls";
    for (int i = 1; i < argc; i++)
        ls_argv[i] = argv[i];
    status = run_local(ls_argv);
    free(ls_argv);
    return status;
}
