/*
 * main.c - ferry, the client of ferryd: subcommand dispatch.
 *
 *   ferry keygen [--force] [FILE]
 *   ferry exec [OPTIONS] HOST [--] COMMAND [ARG...]
 *   ferry exec -w HOSTS|-g GROUP [OPTIONS] COMMAND...
 *   ferry shell [OPTIONS] HOST
 *   ferry put|get|ls|stat|mkdir|rm [OPTIONS] HOST ...
 *   ferry put|get -w HOSTS|-g GROUP [OPTIONS] FILE [DEST|DIR]
 *   ferry master [OPTIONS] HOST
 *
 * Each subcommand lives in its own file and parses its own options.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "fdio.h"
#include "master.h"
#include "ferry/ferry.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: ferry COMMAND [OPTIONS] [ARGS]\n"
        "Run commands on a ferryd server, streaming their output, with their exit status.\n"
        "\n"
        "  ferry keygen [--force] [FILE]                  make the shared key\n"
        "  ferry exec [OPTIONS] HOST [--] COMMAND [ARG...] run one command\n"
        "  ferry exec -w HOSTS|-g GROUP [OPTIONS] COMMAND... on many hosts at once\n"
        "  ferry shell [OPTIONS] HOST                     run command lines interactively\n"
        "  ferry put [OPTIONS] HOST LOCAL... [REMOTE]     upload files (-r: directories)\n"
        "  ferry get [OPTIONS] HOST REMOTE... [LOCAL]     download files (-r: directories)\n"
        "  ferry put -w HOSTS|-g GROUP [OPTIONS] FILE [DEST] one file to many hosts\n"
        "  ferry get -w HOSTS|-g GROUP [OPTIONS] FILE [DIR]  ... from many, in DIR/HOST/\n"
        "  ferry ls [--json] HOST [PATH]                  list a remote directory\n"
        "  ferry stat [--json] HOST PATH...               show a remote file's metadata\n"
        "  ferry mkdir [-p] HOST PATH...                  make remote directories\n"
        "  ferry rm [-r] HOST PATH...                     remove remote files\n"
        "  ferry config [OPTIONS] HOST                    show the settings for HOST\n"
        "  ferry master [OPTIONS] HOST                    keep a connection to HOST ready\n"
        "\n"
        "'ferry COMMAND --help' describes each.  HOST is a name or address, with\n"
        ":PORT if not 7171, or a name from the host configuration (-F FILE, else\n"
        "~/.config/ferry/config, then /etc/ferry/config: Host blocks as ssh_config's).\n"
        "The key is read from -k FILE, else the configuration's KeyFile, else\n"
        "$FERRY_KEY_FILE, else ~/.config/ferry/key; the server must hold the same one.\n"
        "Connections are TLS 1.3 keyed by it (or verified with --ca FILE).  Connection\n"
        "options (-k, --key-name, --ca, --cert, --cert-key, --plaintext,\n"
        "--connect-timeout, --keepalive, --insecure-no-auth, -F, --persist,\n"
        "--no-master, -v) may also come before COMMAND.\n"
        "\n"
        CLI_COMMON_HELP
        "\n"
        "Exit status of exec and shell: the remote command's; 255 when ferry itself\n"
        "fails (cannot connect, authentication failed, protocol error); 2 for a bad\n"
        "command line.  Of the file commands: 0 when every file arrived and verified,\n"
        "1 when some failed, 255 when the connection failed.  Remote paths are\n"
        "relative to the server's file root (ferryd --root).\n");
}

/*
 * `ferry --plaintext exec HOST ...`: connection options before the command
 * are moved after its name, where its own parser takes them.  Returns the
 * index of the command in argv (rearranged in place), or -1 after a usage
 * error.
 */
static int hoist_global_options(int argc, char **argv)
{
    static const struct { const char *name; int takes_arg; } globals[] = {
        { "-k", 1 }, { "--key-file", 1 }, { "--key-name", 1 }, { "--ca", 1 }, { "--cert", 1 },
        { "--cert-key", 1 }, { "--connect-timeout", 1 }, { "--keepalive", 1 },
        { "--plaintext", 0 },
        { "--insecure-no-auth", 0 }, { "-v", 0 }, { "--verbose", 0 },
        { "-F", 1 }, { "--config", 1 }, { "--persist", 1 }, { "--no-master", 0 },
    };
    int i = 1;

    while (i < argc && argv[i][0] == '-' && strcmp(argv[i], "-h") != 0 &&
           strcmp(argv[i], "--help") != 0 && strcmp(argv[i], "-V") != 0 &&
           strcmp(argv[i], "--version") != 0) {
        size_t k, n = sizeof globals / sizeof globals[0];
        for (k = 0; k < n; k++) {
            size_t len = strlen(globals[k].name);
            if (strncmp(argv[i], globals[k].name, len) == 0 &&
                (argv[i][len] == '\0' || (globals[k].takes_arg && argv[i][len] == '=')))
                break;
        }
        if (k == n) {
            cli_usage_error("ferry", "unknown option '%s' before the command", argv[i]);
            return -1;
        }
        if (globals[k].takes_arg && !strchr(argv[i], '=')) {
            if (i + 1 >= argc) {
                cli_usage_error("ferry", "option '%s' needs a value", argv[i]);
                return -1;
            }
            i++;
        }
        i++;
    }
    if (i > 1 && i < argc) {
        /* argv[1..i) are options, argv[i] the command: rotate the command
         * to the front. */
        char *cmd = argv[i];
        memmove(argv + 2, argv + 1, (size_t)(i - 1) * sizeof *argv);
        argv[1] = cmd;
        return 1;
    }
    if (i > 1) {
        cli_usage_error("ferry", "options but no command");
        return -1;
    }
    return 1;
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(int argc, char **argv);
    } commands[] = {
        { "keygen", cmd_keygen },
        { "exec", cmd_exec },
        { "shell", cmd_shell },
        { "put", cmd_put },
        { "get", cmd_get },
        { "ls", cmd_ls },
        { "stat", cmd_stat },
        { "mkdir", cmd_mkdir },
        { "rm", cmd_rm },
        { "config", cmd_config },
        { "master", cmd_master },
    };
    const char *cmd;

    /* Before anything opens a descriptor: a socket on 0 was read as
     * stdin (ferry exec h cat <&- failed, "out of memory"). */
    if (fdio_std_open() < 0)
        return FERRY_EXIT_ERROR;
    ferry_log_set_ident("ferry");
    /* ferry words every failure itself, on one line; libferry's notes on
     * its connections are for -v. */
    ferry_log_set_level(FERRY_LOG_WARN);
    if (hoist_global_options(argc, argv) < 0)
        return EXIT_USAGE;
    cmd = argc > 1 ? argv[1] : NULL;
    /* A closed stdout or socket must show up as EPIPE where it is written,
     * so it can be handled (exec_stream.c), not end the process on the spot. */
    ferry_ignore_sigpipe();

    if (!cmd) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0) {
        printf("ferry %s\n", FERRY_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(cmd, commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    }
    return cli_usage_error("ferry", "unknown command '%s' (keygen, exec, shell, put, get, ls, "
                           "stat, mkdir, rm, config or master)", cmd);
}
