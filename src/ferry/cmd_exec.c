/*
 * cmd_exec.c - `ferry exec [OPTIONS] HOST [--] COMMAND [ARG...]`.
 *
 * Options come before HOST and everything after it is the command, as with
 * ssh, so `ferry exec h ls -l` passes -l to ls.  Unlike ssh there is no
 * quoting trap: one operand is a command line for the remote /bin/sh -c,
 * several are the exact argv, which the server runs without re-parsing.
 * -t runs it on a terminal on the server (tty.c, escape.c), and without
 * a command starts the account's login shell, as `ssh HOST` does.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "dial.h"
#include "ferry/ferry.h"
#include "proto.h"
#include "escape.h"
#include "exec_stream.h"
#include "fleet.h"
#include "hostconf.h"
#include "hostlist.h"
#include "tty.h"

#define MAX_TIMEOUT_S (365.0 * 24 * 3600)

enum { OPT_TIMEOUT = DIAL_OPT_BASE + 0x10, OPT_CWD, OPT_ENV, OPT_JSON };

static void usage(FILE *f)
{
    fprintf(f,
        "usage: ferry exec [OPTIONS] HOST [--] COMMAND [ARG...]\n"
        "       ferry exec [-t] [OPTIONS] HOST\n"
        "       ferry exec -w HOSTS|-g GROUP [-x HOSTS] [-f N] [-b|--json] [OPTIONS] [--] COMMAND...\n"
        "Run COMMAND on the ferryd at HOST, streaming its stdout and stderr here and\n"
        "this program's stdin there, and exit with its status.  Without COMMAND, start\n"
        "the account's login shell (on a terminal when stdin is one).\n"
        "\n"
        "One operand is a command line for the remote /bin/sh -c:\n"
        "    ferry exec h 'ls *.c | wc -l'\n"
        "Several operands are the exact argv, looked up in PATH, never re-parsed:\n"
        "    ferry exec h -- printf '%%s|' 'a b' c      prints a b|c|\n"
        "Options go before HOST; everything after HOST belongs to the command.\n"
        "\n"
        "HOST is NAME, NAME:PORT, [V6ADDR]:PORT or unix:/PATH (default port %d).\n"
        "\n"
        "  -t                       run on a terminal on the server, for interactive\n"
        "                           programs (vim, top, less, a shell); our terminal is\n"
        "                           raw meanwhile.  When stdin is not a terminal,\n"
        "                           said and run without one, as ssh; -tt forces one\n"
        "  -T                       never a terminal (also not for the login shell)\n"
        "  -e CHAR|none             the escape character on a terminal (default ~);\n"
        "                           at the start of a line: CHAR. disconnects (the\n"
        "                           remote command is killed), CHAR? lists the\n"
        "                           sequences, CHARCHAR sends CHAR itself; ^X names a\n"
        "                           control character\n"
        "  -n, --no-stdin           do not forward stdin (the command reads /dev/null)\n"
        "      --timeout S          kill the command after S seconds (exit status 124)\n"
        "      --cwd DIR            run in DIR on the server\n"
        "      --env NAME=VALUE     set a variable for the command (repeatable)\n"
        "\n"
        "Many hosts (no HOST operand: everything after the options is the command):\n"
        "  -w HOSTS                 run on these hosts (repeatable): a comma list with\n"
        "                           pdsh's ranges, web[01-20,31],db1; a bracket group of\n"
        "                           digits, '-' and ',' only is a range, so IPv6\n"
        "                           literals such as [::1]:7171 stay as they are\n"
        "  -g GROUP                 ... and on the members of a Group of the host\n"
        "                           configuration (repeatable)\n"
        "  -x HOSTS                 but not on these (same syntax; repeatable)\n"
        "  -f N                     at most N hosts at once (default %d)\n"
        "  -b                       gather hosts whose stdout is the same under one\n"
        "                           header (web[01-03,05]); each host's kept up to\n"
        "                           1 MiB, the rest dropped and said in the header;\n"
        "                           past 256 MiB of distinct outputs a new one is\n"
        "                           printed at once under its own header\n"
        "      --json               one JSON object per host and line: host, status,\n"
        "                           stdout, stderr, duration (s), error; a stream that\n"
        "                           is not UTF-8 is null, its bytes in STREAM_base64;\n"
        "                           each kept up to 1 MiB (\"truncated\": true beyond)\n"
        "  Output lines are 'HOST: line' on stdout or stderr as the host wrote them;\n"
        "  stdin (unless a terminal, or -n) goes to every host.  Exit status: 0 when\n"
        "  every host exited 0, else the largest status (255: unreachable); a\n"
        "  summary of the failures on stderr.  The first Ctrl-C is forwarded to every\n"
        "  command (no more hosts start), a second one hangs up on all.\n"
        DIAL_OPTS_HELP
        CLI_COMMON_HELP
        "\n"
        "Exit status: the command's own; 128+N if a signal N killed it; 124 if\n"
        "--timeout did; 141 if our stdout was closed under it (the remote command gets\n"
        "SIGTERM); 255 if ferry itself failed (cannot connect, authentication failed,\n"
        "protocol error), with a one-line message; 2 for a bad command line.\n"
        "SIGINT, SIGTERM, SIGHUP and SIGQUIT are forwarded to the remote command; a\n"
        "second one hangs up (128+N), and ferryd ends the command.\n"
        "\n"
        "On a terminal the remote command gets TERM, our window's size (again after\n"
        "every change) and our terminal's modes; Ctrl-C reaches its foreground job\n"
        "as on a local terminal.  When our stderr is not a terminal\n"
        "(ferry exec -t h cmd 2>err.log) the remote stderr stays a separate stream\n"
        "and arrives there; otherwise it is the terminal too.  The exit status is\n"
        "as without a terminal; 255 after CHAR. (as ssh); 128+N when a signal N\n"
        "(SIGHUP, SIGTERM, ...) makes ferry leave the session.\n",
        FERRY_DEFAULT_PORT, FLEET_DEFAULT_FANOUT);
}

/* An environment name as PROTOCOL.md 2.2 allows: [A-Za-z_][A-Za-z0-9_]*. */
static int valid_env_name(const char *name, size_t len)
{
    if (len == 0 || (name[0] >= '0' && name[0] <= '9'))
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];

        if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9')))
            return 0;
    }
    return 1;
}

/* Add NAME=VALUE to the env object.  0, or a usage error's status. */
static int add_env(json_t *env, const char *arg)
{
    const char *eq = strchr(arg, '=');
    json_t *value;
    char *name;

    if (!eq || !valid_env_name(arg, (size_t)(eq - arg)))
        return cli_usage_error("ferry exec", "bad --env '%s': expected NAME=VALUE with NAME "
                               "made of letters, digits and _, not starting with a digit", arg);
    value = json_string(eq + 1);
    if (!value)
        return cli_usage_error("ferry exec", "bad --env '%s': the value is not valid UTF-8", arg);
    name = strndup(arg, (size_t)(eq - arg));
    if (!name || json_object_set_new(env, name, value) < 0) {
        free(name);
        cli_error("out of memory");
        return FERRY_EXIT_ERROR;
    }
    free(name);
    return 0;
}

/* The command operands as the request's "shell" or "argv" member.  0, or
 * a usage error's status. */
static int set_command(json_t *req, char **ops, int n)
{
    json_t *argv = NULL;

    /* ferryd would refuse both as a protocol error (exit 255) after a whole
     * handshake; they are the command line's mistakes, so said here. */
    if (n >= 1 && ops[0][0] == '\0')
        return cli_usage_error("ferry exec", n == 1 ? "the command is empty (omit it for the "
                                                      "login shell)"
                                                    : "the command's name (its first "
                                                      "argument) is empty");
    if (n == 1) {
        json_t *line = json_string(ops[0]);

        if (!line)
            return cli_usage_error("ferry exec", "the command is not valid UTF-8 text");
        return json_object_set_new(req, "shell", line) < 0 ? FERRY_EXIT_ERROR : 0;
    }
    if (n > PROTO_MAX_ARGS)
        return cli_usage_error("ferry exec", "too many arguments (%d; at most %d)", n,
                               PROTO_MAX_ARGS);
    argv = json_array();
    if (!argv || json_object_set_new(req, "argv", argv) < 0)
        return FERRY_EXIT_ERROR;
    for (int i = 0; i < n; i++) {
        json_t *a = json_string(ops[i]);

        if (!a)
            return cli_usage_error("ferry exec", "argument %d is not valid UTF-8 text", i + 1);
        if (json_array_append_new(argv, a) < 0)
            return FERRY_EXIT_ERROR;
    }
    return 0;
}

/*
 * Whether `word` names one of exec's own options (long, with or without
 * "=VALUE", or a short one with its value attached or not), as
 * "ferry exec h --timeout 1 sleep 5" puts one after HOST by mistake.
 */
static int own_option(const struct option *longopts, const char *shortopts, const char *word)
{
    if (word[0] != '-' || word[1] == '\0')
        return 0;
    if (word[1] == '-') {
        size_t len = strcspn(word + 2, "=");

        for (const struct option *o = longopts; o->name; o++)
            if (len > 0 && strlen(o->name) == len && strncmp(o->name, word + 2, len) == 0)
                return 1;
        return 0;
    }
    return word[1] != ':' && strchr(shortopts, word[1]) != NULL;
}

/* --timeout, --cwd and --env into the request.  0 or -1 (out of memory). */
static int request_options(json_t *req, double timeout, json_t *cwd, json_t *env)
{
    /* Whole seconds travel as an integer, for servers that want one. */
    if ((timeout > 0 &&
         json_object_set_new(req, "timeout", timeout == (double)(long long)timeout ?
                             json_integer((json_int_t)timeout) : json_real(timeout)) < 0) ||
        (cwd && json_object_set(req, "cwd", cwd) < 0) ||
        (json_object_size(env) > 0 && json_object_set(req, "env", env) < 0))
        return -1;
    return 0;
}

/* ferry exec -w/-g: the command on every host (fleet.c). */
static int run_fleet(const struct dial_opts *so, struct fleet_opts *fo, const char **lists,
                     const char *kind, int n, json_t *req, char **ops, int nops, int no_stdin,
                     int want_tty)
{
    struct hostlist hl;
    int status;

    if (nops > 0 && strcmp(ops[0], "--") == 0) {
        ops++;
        nops--;
    }
    if (want_tty)
        return cli_usage_error("ferry exec", "-t is for one host: a terminal cannot be shared "
                               "by many");
    if (nops == 0)
        return cli_usage_error("ferry exec", "missing COMMAND (with -w or -g, everything after "
                               "the options is the command)");
    status = set_command(req, ops, nops);
    if (status != 0)
        return status;
    /* As pdsh: a terminal's input is not shared out to every host. */
    fo->forward_stdin = !no_stdin && !isatty(STDIN_FILENO);
    if (!fo->forward_stdin && json_object_set_new(req, "stdin", json_false()) < 0)
        return FERRY_EXIT_ERROR;
    fo->dial = so;
    hostlist_init(&hl);
    status = fleet_hosts("ferry exec", so->config_file, &fo->conf, lists, kind, n, &hl);
    if (status == 0)
        status = fleet_exec(&hl, req, fo);
    hostlist_free(&hl);
    hostconf_db_free(fo->conf);
    fo->conf = NULL;
    return status;
}

int cmd_exec(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "no-stdin", no_argument, NULL, 'n' },
        { "timeout", required_argument, NULL, OPT_TIMEOUT },
        { "cwd", required_argument, NULL, OPT_CWD },
        { "env", required_argument, NULL, OPT_ENV },
        { "json", no_argument, NULL, OPT_JSON },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        DIAL_LONGOPTS,
        { NULL, 0, NULL, 0 },
    };
    struct dial_opts so;
    struct client_session *s = NULL;
    static const char shortopts[] = "+:ntTe:hVw:g:x:f:b" DIAL_SHORTOPTS;
    struct fleet_opts fo = { .fanout = FLEET_DEFAULT_FANOUT, .mode = FLEET_LINES };
    const char **lists = calloc((size_t)argc + 1, sizeof *lists);
    char *list_kind = calloc((size_t)argc + 1, 1);
    int nlists = 0;
    json_t *req = NULL, *env = NULL, *cwd = NULL;
    double timeout = 0;
    const char *host, *misplaced = NULL;
    int opt, r, no_stdin = 0, status = FERRY_EXIT_ERROR;
    int want_tty = 0, no_tty = 0, tty = 0, escape_ch = '~';

    dial_opts_init(&so);
    req = json_pack("{s:s}", "type", MSG_EXEC);
    env = json_object();
    if (!req || !env || !lists || !list_kind) {
        cli_error("out of memory");
        goto out;
    }
    /* "+": stop at the first operand (HOST); ":": report errors ourselves. */
    opterr = 0;
    while ((opt = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        r = dial_opts_apply(&so, "ferry exec", opt, optarg);
        if (r < 0) {
            status = EXIT_USAGE;
            goto out;
        }
        if (r > 0)
            continue;
        switch (opt) {
        case 'n': no_stdin = 1; break;
        case 't': want_tty++; break;
        case 'T': no_tty = 1; break;
        case 'e':
            if (escape_parse(optarg, &escape_ch) < 0) {
                status = cli_usage_error("ferry exec", "bad -e '%s': expected one character, "
                                         "^X or none", optarg);
                goto out;
            }
            break;
        case OPT_TIMEOUT:
            if (cli_seconds("ferry exec", "--timeout", optarg, MAX_TIMEOUT_S, &timeout) < 0) {
                status = EXIT_USAGE;
                goto out;
            }
            break;
        case OPT_CWD:
            json_decref(cwd);
            cwd = json_string(optarg);
            if (!cwd) {
                status = cli_usage_error("ferry exec", "bad --cwd: not valid UTF-8 text");
                goto out;
            }
            break;
        case OPT_ENV:
            r = add_env(env, optarg);
            if (r != 0) {
                status = r;
                goto out;
            }
            break;
        case 'w':
        case 'g':
        case 'x':
            list_kind[nlists] = (char)opt;
            lists[nlists++] = optarg;
            break;
        case 'f':
            if (fleet_fanout("ferry exec", optarg, &fo.fanout) != 0) {
                status = EXIT_USAGE;
                goto out;
            }
            break;
        case 'b': fo.mode = FLEET_GATHER; break;
        case OPT_JSON: fo.mode = FLEET_JSON; break;
        case 'h': usage(stdout); status = 0; goto out;
        case 'V': printf("ferry %s\n", FERRY_VERSION); status = 0; goto out;
        default:
            status = cli_bad_option("ferry exec", opt, argv);
            goto out;
        }
    }
    if (nlists > 0) {
        if (request_options(req, timeout, cwd, env) < 0) {
            cli_error("out of memory");
            goto out;
        }
        status = run_fleet(&so, &fo, lists, list_kind, nlists, req, argv + optind, argc - optind,
                           no_stdin, want_tty);
        goto out;
    }
    if (fo.mode != FLEET_LINES || fo.fanout != FLEET_DEFAULT_FANOUT) {
        status = cli_usage_error("ferry exec", "-f, -b and --json are for many hosts: give "
                                 "them with -w or -g");
        goto out;
    }
    if (optind >= argc) {
        status = cli_usage_error("ferry exec", "missing HOST and COMMAND");
        goto out;
    }
    host = argv[optind++];
    if (optind < argc && strcmp(argv[optind], "--") == 0)
        optind++;
    else if (optind < argc && own_option(longopts, shortopts, argv[optind]))
        misplaced = argv[optind];
    /* As ssh: a terminal when asked for, or for the login shell when we
     * are typed at; never one that stdin cannot feed, unless -tt. */
    if (!no_tty && (want_tty || optind >= argc)) {
        if (isatty(STDIN_FILENO) || want_tty >= 2)
            tty = 1;
        else if (want_tty)
            fprintf(stderr, "ferry: -t: stdin is not a terminal, so the command runs "
                            "without one (-tt forces one)\n");
    }
    if (optind >= argc)
        r = json_object_set_new(req, "login", json_true()) < 0 ? FERRY_EXIT_ERROR : 0;
    else
        r = set_command(req, argv + optind, argc - optind);
    if (r != 0) {
        status = r;
        goto out;
    }
    if (request_options(req, timeout, cwd, env) < 0 ||
        (no_stdin && json_object_set_new(req, "stdin", json_false()) < 0) ||
        (tty && tty_describe(req) < 0)) {
        cli_error("out of memory");
        goto out;
    }

    s = dial_open(host, &so);
    if (!s)
        goto out;
    status = tty ? exec_stream_run_tty(s, req, !no_stdin, escape_ch)
                 : exec_stream_run(s, req, !no_stdin, 1);
    /* Everything after HOST is the command, so an option there ran as one.
     * Said after the remote shell's "not found", as the last line, and only
     * then: a program really named so, or run with "--", stays quiet. */
    if (misplaced && status == 127)
        cli_error("hint: '%s' is an option of ferry exec, but everything after HOST is the "
                  "command: put options before HOST (ferry exec [OPTIONS] HOST COMMAND)",
                  misplaced);
out:
    /* After the exit frame, with nothing owed either way: the session
     * goes back to its master, if it came from one. */
    if (s && !s->broken)
        session_release(s);
    client_session_close(s);
    free(lists);
    free(list_kind);
    json_decref(req);
    json_decref(env);
    json_decref(cwd);
    return status;
}
