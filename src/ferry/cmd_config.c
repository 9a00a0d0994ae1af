/*
 * cmd_config.c - `ferry config [OPTIONS] HOST`: the settings a command to
 * HOST would use, one per line, after the host configuration files and
 * the options given (as `ssh -G`).  Nothing is connected to.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "dial.h"
#include "ferry/ferry.h"
#include "hostconf.h"
#include "keyfile.h"
#include "keys.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: ferry config [OPTIONS] HOST\n"
        "Print the settings a command to HOST would use, one per line: what the host\n"
        "configuration (-F FILE, else ~/.config/ferry/config, then /etc/ferry/config)\n"
        "says for HOST, with the options given here over it.  Nothing is connected to.\n"
        "\n"
        DIAL_OPTS_HELP
        CLI_COMMON_HELP);
}

static const char *or_none(const char *s)
{
    return s ? s : "none";
}

int cmd_config(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        DIAL_LONGOPTS,
        { NULL, 0, NULL, 0 },
    };
    struct dial_opts o, eff;
    struct hostconf hc = { 0 };
    char target[320], name[256], addr[256], port[16];
    char *key_path = NULL;
    int opt, r;

    dial_opts_init(&o);
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "+:hV" DIAL_SHORTOPTS, longopts, NULL)) != -1) {
        r = dial_opts_apply(&o, "ferry config", opt, optarg);
        if (r < 0)
            return EXIT_USAGE;
        if (r > 0)
            continue;
        switch (opt) {
        case 'h': usage(stdout); return 0;
        case 'V': printf("ferry %s\n", FERRY_VERSION); return 0;
        default: return cli_bad_option("ferry config", opt, argv);
        }
    }
    if (optind >= argc)
        return cli_usage_error("ferry config", "missing HOST");
    if (argc - optind > 1)
        return cli_usage_error("ferry config", "one HOST at a time");
    if (dial_resolve(argv[optind], &o, NULL, &eff, &hc, target, sizeof target) < 0)
        return FERRY_EXIT_ERROR;
    dial_split_host(argv[optind], name, sizeof name, port, sizeof port);
    printf("host %s\n", name);
    dial_split_host(target, addr, sizeof addr, port, sizeof port);
    printf("address %s\n", addr);
    if (strncmp(addr, "unix:", 5) != 0)
        printf("port %s\n", port[0] ? port : "7171");
    key_path = eff.key_file ? strdup(eff.key_file) : keyfile_default_path(1);
    printf("keyfile %s\n", or_none(key_path));
    printf("keyname %s\n", eff.key_name ? eff.key_name : KEYS_DEFAULT_NAME);
    printf("plaintext %s\n", eff.plaintext ? "yes" : "no");
    printf("ca %s\n", or_none(eff.ca_file));
    printf("cert %s\n", or_none(eff.cert_file));
    printf("certkey %s\n", or_none(eff.cert_key_file));
    printf("connecttimeout %g\n", eff.connect_timeout);
    printf("keepalive %g\n", eff.keepalive);
    printf("persist %g\n", eff.persist);
    for (char *save = NULL, *g = strtok_r(hc.groups, " ", &save); g; g = strtok_r(NULL, " ", &save))
        printf("group %s\n", g);
    free(key_path);
    hostconf_free(&hc);
    return fflush(stdout) == 0 ? 0 : FERRY_EXIT_ERROR;
}
