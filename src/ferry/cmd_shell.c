/*
 * cmd_shell.c - `ferry shell [OPTIONS] HOST`: the tutorials' interactive
 * client, on one authenticated session.
 *
 * Each line runs as a command line on the server with its output
 * streamed; the command's stdin is /dev/null, since our stdin is where the
 * next lines come from.  `cd` is not a command at all (a child's chdir
 * dies with the child, the tutorials' unsolved problem): it changes the
 * session's directory with a chdir request.  On a terminal lines are
 * edited with libedit (lineedit.c) and a ">>: " prompt; otherwise they are read plainly,
 * so a script can pipe commands in.
 *
 * put, get, ls, stat, mkdir and rm are the file subcommands without HOST
 * (cmd_files.c), their words split as a shell would (quotes, backslash:
 * shellwords.c), as cd's operand is;
 * lcd and lpwd are ours, on this process's own directory; `!CMD` and lls
 * run here (shell_local.c).  A line that starts with `!t ` runs the rest
 * on a terminal on the server (as `ferry exec -t`), for vim, top and the
 * like.  At a terminal, Tab completes (complete.c) and the lines are kept
 * across sessions (history.c).
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "complete.h"
#include "history.h"
#include "lineedit.h"
#include "shell_local.h"
#include "shellwords.h"
#include "script.h"
#include "dial.h"
#include "ferry/ferry.h"
#include "cmd_files.h"
#include "proto.h"
#include "escape.h"
#include "exec_stream.h"
#include "tty.h"

#define PROMPT ">>: "
/* --keep-going's getopt id, past the connection options' (dial.h). */
#define OPT_KEEP_GOING 0x200

struct shell {
    struct client_session *s;
    const char *host;             /* to reopen the session (cmd_files_shell) */
    const struct dial_opts *so;
    int interactive;
    int keep_going;   /* --keep-going: a script goes on after a failing line */
    char *home;       /* the session's first directory: where a bare cd goes */
    struct script script;   /* the lines, when stdin is not a terminal */
};

static void usage(FILE *f)
{
    fprintf(f,
        "usage: ferry shell [OPTIONS] HOST\n"
        "Run command lines on the ferryd at HOST, one per line, over one session.\n"
        "On a terminal each line is prompted for (>>: ) and can be edited; otherwise\n"
        "lines are read from stdin, so commands can be piped in.\n"
        "\n"
        "  cd [DIR]     change the session's directory (no DIR: the first one); DIR\n"
        "               is one word with sh's quoting (cd 'a b', cd a\\ b), or with\n"
        "               no quote or backslash in it, as typed (cd a b)\n"
        "  exit [N], quit [N]   leave, with status N (else the last line's); so\n"
        "               does end of input\n"
        "  put [-r] [-p] [--resume] LOCAL... [REMOTE]    upload (as 'ferry put')\n"
        "  get [-r] [-p] [--resume] REMOTE... [LOCAL]    download (as 'ferry get')\n"
        "  ls [PATH], stat PATH, mkdir [-p] PATH..., rm [-r] PATH...\n"
        "               the file commands; COMMAND --help tells more.  Their remote\n"
        "               paths are relative to the server's file root, not to the\n"
        "               directory cd changes (that one is for commands)\n"
        "  lcd [DIR], lpwd   change or show the local directory (for put and get)\n"
        "  lls [ARGS]   ls here, in that directory\n"
        "  !t COMMAND   run COMMAND on a terminal on the server (vim, top, less...),\n"
        "               as 'ferry exec -t'; ~. at the start of a line disconnects\n"
        "  !CMD         run CMD here with /bin/sh -c (a bare !: $SHELL)\n"
        "  anything else runs with /bin/sh -c in the session's directory, its stdin\n"
        "  being /dev/null; Ctrl-C is forwarded to it.  To run a remote program\n"
        "  named like a file command, say so: 'command ls -l', 'command rm x'.\n"
        "\n"
        "HOST is NAME, NAME:PORT, [V6ADDR]:PORT or unix:/PATH (default port %d).\n"
        "\n"
        "At a terminal, Tab completes commands and paths (remote ones for ls, stat,\n"
        "rm, mkdir, get's first operand and put's later ones, local ones otherwise),\n"
        "and the lines are kept in $XDG_STATE_HOME/ferry/history (default\n"
        "~/.local/state/ferry/history) for the next session's up arrow.\n"
        "\n"
        "Read from a pipe or a file, the lines are a script: it stops at the first\n"
        "line that fails, with that line's status, as 'sh -e' would.\n"
        "\n"
        "      --keep-going         run a script's every line whatever the ones\n"
        "                           before returned\n"
        DIAL_OPTS_HELP
        CLI_COMMON_HELP
        "\n"
        "Exit status: the last line's (0 if none ran; a failed cd counts as 1), so a\n"
        "script's first failing line's; 255 if ferry itself failed, with a one-line\n"
        "message; 2 for a bad command line.\n",
        FERRY_DEFAULT_PORT);
}

/* Set by Ctrl-C at the prompt (the signal is not forwarded then: no
 * command is running). */
static volatile sig_atomic_t prompt_interrupted;

static void on_prompt_sigint(int signo)
{
    (void)signo;
    prompt_interrupted = 1;
}

/* Ctrl-C at the prompt abandons the line being typed, as in any shell,
 * rather than ending the session.  The handler is in place only around
 * the line editor; exec_stream.c installs its own, forwarding one, while commands run. */
static char *read_interactive(void)
{
    struct sigaction sa = { .sa_handler = on_prompt_sigint }, old;
    char *line;

    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, &old) < 0)
        return lineedit_read(PROMPT);
    for (;;) {
        prompt_interrupted = 0;
        line = lineedit_read(PROMPT);
        if (!prompt_interrupted)
            break;
        free(line);
        fputc('\n', stdout);
    }
    sigaction(SIGINT, &old, NULL);
    return line;
}

/* The next line, without its newline, or NULL at end of input.  The
 * result is the caller's to free. */
static char *next_line(struct shell *sh)
{
    char *line = NULL;

    if (sh->interactive) {
        line = read_interactive();
        if (line && *line)
            history_add(line);
        return line;
    }
    if (script_line(&sh->script, 1, &line) == -ENOMEM)
        cli_error("out of memory");
    return line;
}

/* The next line if a whole one is there already (never waits), else NULL
 * (and next_line will wait for it). */
static char *line_ready(struct shell *sh)
{
    char *line = NULL;

    return !sh->interactive && script_line(&sh->script, 0, &line) == 1 ? line : NULL;
}

/* Trim surrounding white space in place; returns the start. */
static char *trim(char *p)
{
    char *end;

    while (isspace((unsigned char)*p))
        p++;
    end = p + strlen(p);
    while (end > p && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return p;
}

/*
 * `cd [DIR]`: DIR read as shellwords_cd_operand says (as typed unless it
 * is quoted or escaped: then one word, as sh reads it), a leading ~ or
 * nothing being the first directory.  Returns a status.
 */
static int do_cd(struct shell *sh, const char *arg)
{
    char *dir = NULL, *path = NULL;
    int from_home = 0, r = shellwords_cd_operand(arg, &dir, &from_home), status = 1;

    if (r == 0 && from_home && sh->home && asprintf(&path, "%s%s", sh->home, dir) < 0) {
        path = NULL;
        r = -ENOMEM;
    }
    if (r == -ENOMEM)
        cli_error("out of memory");
    else if (r == -E2BIG)
        cli_error("cd: too many arguments");
    else if (r == -ENOENT)
        cli_error("cd: the directory name is empty");
    else if (r > 0)
        cli_error("cd: unterminated %c quote", r);
    else if (from_home && !sh->home)
        cli_error("cd: the session's first directory is not known");
    else
        status = exec_stream_chdir(sh->s, from_home ? path : dir, NULL);
    free(path);
    free(dir);
    return status;
}

/* The exec request for a command line: the command's stdin is
 * /dev/null (ours holds the next lines).  ahead: sent while the line
 * before runs; unless the script keeps going, it must then run only if
 * that line succeeds (PROTOCOL.md 2.2).  NULL: not UTF-8 (printed). */
static json_t *command_request(const struct shell *sh, const char *line, int ahead)
{
    json_t *req = json_pack("{s:s, s:s, s:b}", "type", MSG_EXEC, "shell", line, "stdin", 0);

    if (!req)
        cli_error("the command is not valid UTF-8 text");
    else if (ahead && !sh->keep_going &&
             json_object_set_new(req, "only_after_success", json_true()) < 0) {
        json_decref(req);
        req = NULL;
        cli_error("out of memory");
    }
    return req;
}

/* Run a command line whose request is req (NULL: it went ahead with the
 * line before).  next: the following line's request, to send ahead, or
 * NULL. */
static int do_command(struct shell *sh, json_t *req, json_t *next)
{
    int status = next ? exec_stream_run_ahead(sh->s, req, next) : exec_stream_run(sh->s, req, 0, 0);

    /* The terminal echoed ^C; the next prompt belongs on a line of its own. */
    if (sh->interactive && status == 128 + SIGINT)
        fputc('\n', stdout);
    return status;
}

/* `!t LINE`: the line on a terminal, typed at from ours. */
static int do_tty_command(struct shell *sh, const char *line)
{
    json_t *req;
    int status;

    if (!isatty(STDIN_FILENO)) {
        cli_error("!t: stdin is not a terminal");
        return 1;
    }
    req = json_pack("{s:s, s:s}", "type", MSG_EXEC, "shell", line);
    if (!req) {
        cli_error("the command is not valid UTF-8 text");
        return 1;
    }
    if (tty_describe(req) < 0) {
        json_decref(req);
        cli_error("out of memory");
        return 1;
    }
    status = exec_stream_run_tty(sh->s, req, 1, '~');
    json_decref(req);
    return status;
}

/* Split a line into words (shellwords_split); 0, or -1 with a message
 * printed. */
static int split_words(const char *line, char **store, char ***words, int *count)
{
    int r = shellwords_split(line, store, words, count);

    if (r == -ENOMEM)
        cli_error("out of memory");
    else if (r > 0)
        cli_error("unterminated %c quote", r);
    return r == 0 ? 0 : -1;
}

/* lcd [DIR]: no DIR means $HOME, as cd does. */
static int do_lcd(char **argv, int argc)
{
    const char *dir = argc > 1 ? argv[1] : getenv("HOME");

    if (argc > 2) {
        cli_error("lcd: too many arguments");
        return 1;
    }
    if (!dir) {
        cli_error("lcd: HOME is not set");
        return 1;
    }
    if (chdir(dir) < 0) {
        cli_error("lcd %s: %s", dir, strerror(errno));
        return 1;
    }
    return 0;
}

static int do_lpwd(void)
{
    char *cwd = getcwd(NULL, 0);

    if (!cwd) {
        cli_error("lpwd: %s", strerror(errno));
        return 1;
    }
    printf("%s\n", cwd);
    fflush(stdout);
    free(cwd);
    return 0;
}

/* Whether the line is a file command, lcd, lpwd, lls or !CMD (ours, not
 * the server's). */
static int is_local(const char *cmd)
{
    size_t n = strcspn(cmd, " \t");

    return cmd[0] == '!' || (n == 3 && strncmp(cmd, "lls", 3) == 0) ||
           (n == 3 && strncmp(cmd, "lcd", 3) == 0) || (n == 4 && strncmp(cmd, "lpwd", 4) == 0) ||
           (n == 2 && (strncmp(cmd, "ls", 2) == 0 || strncmp(cmd, "rm", 2) == 0)) ||
           (n == 3 && (strncmp(cmd, "put", 3) == 0 || strncmp(cmd, "get", 3) == 0)) ||
           (n == 4 && strncmp(cmd, "stat", 4) == 0) || (n == 5 && strncmp(cmd, "mkdir", 5) == 0);
}

/* `exit [N]` or `quit [N]`: ours, whatever follows (a remote `sh -c
 * 'exit 3'` would leave nobody). */
static int is_exit(const char *cmd)
{
    size_t n = strcspn(cmd, " \t");

    return n == 4 && (strncmp(cmd, "exit", 4) == 0 || strncmp(cmd, "quit", 4) == 0);
}

/* The status `exit [N]` leaves with: N (0 to 255), else the last line's;
 * -1 for an N that is no status (said). */
static int exit_status(char *cmd, int last)
{
    char *arg = trim(cmd + 4), *end;
    long n;

    if (!*arg)
        return last;
    n = strtol(arg, &end, 10);
    if (*end || end == arg || n < 0 || n > 255 || !isdigit((unsigned char)*arg)) {
        cli_error("%.4s: '%s': expected a status from 0 to 255", cmd, arg);
        return -1;
    }
    return (int)n;
}

static int is_cd(const char *cmd)
{
    return strcmp(cmd, "cd") == 0 || (strncmp(cmd, "cd", 2) == 0 && isspace((unsigned char)cmd[2]));
}

/* `!t COMMAND`: COMMAND on a terminal (do_tty_command). */
static int is_tty_line(char *cmd)
{
    return strncmp(cmd, "!t", 2) == 0 && isspace((unsigned char)cmd[2]) && *trim(cmd + 2);
}

/* A line the server runs as a command line (trimmed). */
static int is_remote(char *cmd)
{
    return *cmd && !is_exit(cmd) && !is_cd(cmd) && !is_local(cmd) && !is_tty_line(cmd);
}

/* Whether a line may have changed what the server's file root lists, so
 * that completion must ask again: anything but cd, the reading file
 * commands and the local ones. */
static int may_change_remote(char *cmd)
{
    static const char *const keep[] = { "ls", "stat", "get", "lcd", "lpwd", "lls", "exit",
                                        "quit" };
    size_t n = strcspn(cmd, " \t");

    if (!*cmd || (cmd[0] == '!' && !is_tty_line(cmd)) || is_cd(cmd))
        return 0;
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
        if (n == strlen(keep[i]) && strncmp(cmd, keep[i], n) == 0)
            return 0;
    return 1;
}

/* A file command, lcd or lpwd: its status, or -1 when the line is none
 * of them (it then runs as a remote command line). */
static int do_local(struct shell *sh, const char *cmd)
{
    char *store = NULL, **argv = NULL;
    int argc = 0, status = -1;

    if (!is_local(cmd))
        return -1;
    if (cmd[0] == '!')
        return shell_bang(cmd + 1);
    if (split_words(cmd, &store, &argv, &argc) < 0)
        return 1;
    if (strcmp(argv[0], "lcd") == 0)
        status = do_lcd(argv, argc);
    else if (strcmp(argv[0], "lpwd") == 0)
        status = do_lpwd();
    else if (strcmp(argv[0], "lls") == 0)
        status = shell_lls(argc, argv);
    else if (cmd_files_is(argv[0]))
        status = cmd_files_shell(&sh->s, sh->host, sh->so, argc, argv);
    free(store);
    free(argv);
    return status;
}

/*
 * Lines one by one.  Read from a pipe or a file (not a terminal), a
 * command line's successor is read at once, and if it is a command line
 * too its request goes ahead, to wait at a server that queues one
 * (s->pipeline): it starts the moment the one before ends, with no round
 * trip between them, as a remote sh reading a script would.
 */
static int repl(struct shell *sh)
{
    int status = 0, sent = 0;   /* sent: line's request went ahead */
    char *line = next_line(sh), *next;

    while (line && sh->s && !sh->s->broken) {
        char *cmd = trim(line);
        int local;

        next = NULL;
        if (is_exit(cmd) && (local = exit_status(cmd, status)) >= 0) {
            free(line);
            return local;
        }
        if (is_exit(cmd)) {
            status = EXIT_USAGE;
        } else if (is_cd(cmd)) {
            status = do_cd(sh, trim(cmd + 2));
        } else if (is_tty_line(cmd)) {
            status = do_tty_command(sh, trim(cmd + 2));
        } else if ((local = do_local(sh, cmd)) >= 0) {
            status = local;
        } else if (*cmd) {
            json_t *req = sent ? NULL : command_request(sh, cmd, 0), *ahead = NULL;

            if (sent || req) {
                if (!sh->interactive && sh->s->pipeline) {
                    next = line_ready(sh);
                    if (next && is_remote(trim(next)))
                        ahead = command_request(sh, trim(next), 1);
                }
                status = do_command(sh, req, ahead);
            } else {
                status = 1;
            }
            sent = ahead != NULL;
            json_decref(req);
            json_decref(ahead);
        }
        if (sh->interactive && may_change_remote(cmd))
            complete_forget();
        if (status != 0 && !sh->interactive && !sh->keep_going) {
            /* A request sent ahead was conditional: the server skips it. */
            free(line);
            free(next);
            return status;
        }
        free(line);
        line = next ? next : next_line(sh);
    }
    free(line);
    /* End of input on a terminal: leave the cursor on a fresh line. */
    if (sh->interactive && sh->s && !sh->s->broken)
        fputc('\n', stdout);
    return status;
}

int cmd_shell(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { "keep-going", no_argument, NULL, OPT_KEEP_GOING },
        DIAL_LONGOPTS,
        { NULL, 0, NULL, 0 },
    };
    struct dial_opts so;
    struct shell sh = { .interactive = isatty(STDIN_FILENO), .so = &so };
    int opt, r, status = FERRY_EXIT_ERROR;

    dial_opts_init(&so);
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "+:hV" DIAL_SHORTOPTS, longopts, NULL)) != -1) {
        r = dial_opts_apply(&so, "ferry shell", opt, optarg);
        if (r < 0)
            return EXIT_USAGE;
        if (r > 0)
            continue;
        switch (opt) {
        case 'h': usage(stdout); return 0;
        case 'V': printf("ferry %s\n", FERRY_VERSION); return 0;
        case OPT_KEEP_GOING: sh.keep_going = 1; break;
        default: return cli_bad_option("ferry shell", opt, argv);
        }
    }
    if (optind >= argc)
        return cli_usage_error("ferry shell", "missing HOST");
    if (argc - optind > 1)
        return cli_usage_error("ferry shell", "too many operands (commands are read from stdin)");

    script_init(&sh.script, STDIN_FILENO);
    sh.host = argv[optind];
    sh.s = dial_open(sh.host, &so);
    if (!sh.s)
        goto out;
    /* Learn the starting directory, so that a bare `cd` can go back
     * there (a key that may not run commands has none). */
    if (exec_stream_cwd(sh.s, &sh.home) != 0 && sh.s->broken)
        goto out;
    if (sh.interactive) {
        history_load();
        complete_start(&sh.s);
    }
    status = repl(&sh);
    if ((!sh.s || sh.s->broken) && status == 0)
        status = FERRY_EXIT_ERROR;
out:
    if (sh.interactive) {
        complete_stop();
        history_free();
    }
    client_session_close(sh.s);
    free(sh.home);
    script_free(&sh.script);
    return status;
}
