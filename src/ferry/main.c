/*
 * main.c - ferry, the client of ferryd: subcommand dispatch.
 *
 *   ferry keygen [--force] [FILE]
 *   ferry exec [OPTIONS] HOST [--] COMMAND [ARG...]
 *   ferry shell [OPTIONS] HOST
 *   ferry put|get|ls|stat|mkdir|rm [OPTIONS] HOST ...
 *
 * Each subcommand lives in its own file and parses its own options.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "ferry/ferry.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: ferry COMMAND [OPTIONS] [ARGS]\n"
        "Run commands on a ferryd server, streaming their output, with their exit status.\n"
        "\n"
        "  ferry keygen [--force] [FILE]                  make the shared key\n"
        "  ferry exec [OPTIONS] HOST [--] COMMAND [ARG...] run one command\n"
        "  ferry shell [OPTIONS] HOST                     run command lines interactively\n"
        "  ferry put [OPTIONS] HOST LOCAL... [REMOTE]     upload files (-r: directories)\n"
        "  ferry get [OPTIONS] HOST REMOTE... [LOCAL]     download files (-r: directories)\n"
        "  ferry ls [--json] HOST [PATH]                  list a remote directory\n"
        "  ferry stat [--json] HOST PATH...               show a remote file's metadata\n"
        "  ferry mkdir [-p] HOST PATH...                  make remote directories\n"
        "  ferry rm [-r] HOST PATH...                     remove remote files\n"
        "\n"
        "'ferry COMMAND --help' describes each.  The key is read from -k FILE, else\n"
        "$FERRY_KEY_FILE, else ~/.config/ferry/key; the server must hold the same one.\n"
        "\n"
        "  -h, --help      show this help\n"
        "  -V, --version   show the version\n"
        "\n"
        "Exit status of exec and shell: the remote command's; 255 when ferry itself\n"
        "fails (cannot connect, authentication failed, protocol error); 2 for a bad\n"
        "command line.  Of the file commands: 0 when every file arrived and verified,\n"
        "1 when some failed, 255 when the connection failed.  Remote paths are\n"
        "relative to the server's file root (ferryd --root).\n");
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
    };
    const char *cmd = argc > 1 ? argv[1] : NULL;

    ferry_log_set_ident("ferry");
    /* A closed stdout or socket must show up as EPIPE where it is written,
     * so it can be handled (run.c), not end the process on the spot. */
    signal(SIGPIPE, SIG_IGN);

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
                           "stat, mkdir or rm)", cmd);
}
