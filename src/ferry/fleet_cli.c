/*
 * fleet_cli.c - the command-line pieces every many-host command shares
 * (exec -w, put -w, get -w): the host lists of -w, -g and -x, and -f;
 * and put -w / get -w's command line checked and run.
 */
#include "fleet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fleet_xfer.h"
#include "hostconf.h"
#include "proto.h"
#include "remotefs.h"

int fleet_hosts(const char *cmd, const char *config_file, struct hostconf_db **conf,
                const char **lists, const char *kind, int n, struct hostlist *hl)
{
    char err[512];

    /* Every -x after every -w and -g: what -x names is never run on,
     * wherever it stands on the line. */
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < n; i++) {
            char *members = NULL;
            int r;

            if ((kind[i] == 'x') != (pass == 1))
                continue;
            if (kind[i] == 'g') {
                if (!*conf && hostconf_db_read(config_file, conf) < 0)
                    return FERRY_EXIT_ERROR;
                r = hostconf_db_group(*conf, lists[i], &members);
                if (r < 0)
                    return FERRY_EXIT_ERROR;
                if (r > 0)
                    return cli_usage_error(cmd, "-g %s: no such group in the host "
                                           "configuration (a line 'Group %s HOST...')",
                                           lists[i], lists[i]);
            }
            r = kind[i] == 'x' ? hostlist_remove(hl, lists[i], err, sizeof err)
                               : hostlist_add(hl, members ? members : lists[i], err, sizeof err);
            free(members);
            if (r < 0)
                return cli_usage_error(cmd, "-%c %s: %s", kind[i], lists[i], err);
        }
    }
    if (hl->n == 0)
        return cli_usage_error(cmd, "no hosts left to run on (-x excluded them all)");
    return 0;
}

int fleet_fanout(const char *cmd, const char *arg, size_t *out)
{
    char *end;
    long n = strtol(arg, &end, 10);

    if (*end || end == arg || n < 1 || n > FLEET_MAX_FANOUT)
        return cli_usage_error(cmd, "bad -f '%s': expected a number of hosts from 1 to %d", arg,
                               FLEET_MAX_FANOUT);
    *out = (size_t)n;
    return 0;
}

int fleet_xfer_main(const struct dial_opts *so, struct fleet_xfer_cmd *c)
{
    const char *cmd = c->cmd;
    struct fleet_opts fo = { .dial = so, .fanout = c->fanout, .mode = FLEET_LINES };
    struct hostlist hl;
    int status;

    c->xo.src = c->ops[0];
    c->xo.dest = c->nops > 1 ? c->ops[1] : ".";
    if (c->recursive || c->resume)
        return cli_usage_error(cmd, "%s is not supported with -w or -g (one regular file per "
                               "host)", c->recursive ? "-r" : "--resume");
    if (c->nops > 2)
        return cli_usage_error(cmd, "with -w or -g, one FILE and one %s", c->put ? "DEST" : "DIR");
    if (strcmp(c->xo.src, "-") == 0 || strcmp(c->xo.dest, "-") == 0)
        return cli_usage_error(cmd, "'-' (stdin or stdout) is not supported with -w or -g");
    /* The server expands patterns for one host's get; with many, each
     * host could match other files: not supported. */
    if (!c->put && strpbrk(c->xo.src, "*?[\\"))
        return cli_usage_error(cmd, "patterns are not supported with -w or -g: name one file");
    /* "f/" names a directory, which no host's get could fetch; the slash
     * would be dropped on the way and a file f fetched. */
    if (!c->put && remotefs_names_dir(c->xo.src))
        return cli_usage_error(cmd, "%s names a directory (it ends in '/'); with -w or -g, "
                               "name one file", c->xo.src);
    hostlist_init(&hl);
    status = fleet_hosts(cmd, so->config_file, &fo.conf, c->lists, c->kinds, c->nlists, &hl);
    if (status == 0)
        status = c->put ? fleet_put(&hl, &fo, &c->xo) : fleet_get(&hl, &fo, &c->xo);
    /* Failures have their summary; success is quiet unless asked (-v). */
    if (status == 0 && so->verbose)
        fprintf(stderr, "ferry: %s %s: %zu of %zu host%s done\n", c->put ? "put" : "get",
                c->xo.src, hl.n, hl.n, hl.n == 1 ? "" : "s");
    hostlist_free(&hl);
    hostconf_db_free(fo.conf);
    return status;
}
