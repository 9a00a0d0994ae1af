/*
 * cmd_keygen.c - `ferry keygen [--force] [FILE]`: make the shared key.
 *
 * The work (random bytes, 64 hex digits, mode 0600, atomic replacement)
 * is keyfile_create()'s, shared with ferryd's first-run key; this is only
 * the command line around it.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ferry/ferry.h"
#include "keyfile.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: ferry keygen [--force] [FILE]\n"
        "Write a new random 256-bit key to FILE as 64 hex digits and a newline, readable\n"
        "by its owner only (mode 0600), and print its path.  ferryd (--key-file) and\n"
        "every ferry client must hold the same key.\n"
        "\n"
        "FILE defaults to $XDG_CONFIG_HOME/ferry/key, else ~/.config/ferry/key, which\n"
        "is where ferry exec and ferry shell look when neither -k nor $FERRY_KEY_FILE\n"
        "says otherwise.  Missing directories are created (mode 0700).\n"
        "\n"
        "  -f, --force              replace an existing key (without it, never)\n"
        CLI_COMMON_HELP
        "\n"
        "Exit status: 0 when the key was written, 1 when it was not, 2 for a bad\n"
        "command line.\n");
}

int cmd_keygen(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "force", no_argument, NULL, 'f' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    struct errbuf err;
    char *path = NULL;
    int opt, force = 0, status = 1;

    opterr = 0;
    while ((opt = getopt_long(argc, argv, "+:fhV", longopts, NULL)) != -1) {
        switch (opt) {
        case 'f': force = 1; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("ferry %s\n", FERRY_VERSION); return 0;
        default: return cli_bad_option("ferry keygen", opt, argv);
        }
    }
    if (argc - optind > 1)
        return cli_usage_error("ferry keygen", "too many operands (one FILE at most)");

    /* Not $FERRY_KEY_FILE: a variable naming the key to use should not
     * decide where a new one is written. */
    if (optind < argc) {
        path = strdup(argv[optind]);
        if (!path) {
            cli_error("out of memory");
            goto out;
        }
    } else {
        path = keyfile_default_path(0);
        if (!path) {
            cli_error("no default key path (HOME is not set); name the FILE");
            goto out;
        }
    }
    if (keyfile_create(path, force, &err) < 0) {
        cli_error("%s", err.msg);
        goto out;
    }
    printf("new key written to %s\n", path);
    status = fflush(stdout) == 0 ? 0 : 1;
out:
    free(path);
    return status;
}
