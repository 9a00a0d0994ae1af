/*
 * fleet_ctx.c - what the hosts of a fleet share, and their addresses
 * (fleet_ctx.h).
 */
#include "fleet_ctx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli.h"
#include "hostconf.h"
#include "proto.h"

static int same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static char *dup_or_null(const char *s, int *oom)
{
    char *d = s ? strdup(s) : NULL;

    if (s && !d)
        *oom = 1;
    return d;
}

static void ctx_free(struct fleet_ctx *c)
{
    free(c->key_file);
    free(c->key_name);
    free(c->ca);
    free(c->cert);
    free(c->cert_key);
    free(c->key_path);
    key_wipe(&c->key);
    ferry_tls_free(c->tls);
    free(c);
}

/* The shared key and TLS configuration for o's options (made on first
 * use); NULL when out of memory. */
struct fleet_ctx *fleet_ctx_get(struct fleet_ctx **list, const struct dial_opts *o)
{
    struct fleet_ctx *c;
    int oom = 0;

    for (c = *list; c; c = c->next)
        if (same(c->key_file, o->key_file) && same(c->key_name, o->key_name) &&
            same(c->ca, o->ca_file) && same(c->cert, o->cert_file) &&
            same(c->cert_key, o->cert_key_file) && c->plaintext == o->plaintext &&
            c->insecure == o->insecure_no_auth)
            return c;
    c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->key_file = dup_or_null(o->key_file, &oom);
    c->key_name = dup_or_null(o->key_name, &oom);
    c->ca = dup_or_null(o->ca_file, &oom);
    c->cert = dup_or_null(o->cert_file, &oom);
    c->cert_key = dup_or_null(o->cert_key_file, &oom);
    c->plaintext = o->plaintext;
    c->insecure = o->insecure_no_auth;
    c->next = *list;
    *list = c;
    if (oom)
        snprintf(c->err, sizeof c->err, "out of memory");
    else if (dial_check_opts(o, c->err, sizeof c->err) < 0)
        return c;
    /* With --ca the key is loaded only if a server asks for it (dial_hs). */
    else if (!o->insecure_no_auth && !o->ca_file &&
             dial_load_key(o, &c->key, &c->key_path, c->err, sizeof c->err) < 0)
        return c;
    else
        c->have_key = !o->insecure_no_auth && !o->ca_file;
    if (!c->err[0] && !o->plaintext && !o->insecure_no_auth)
        (void)dial_tls_new(o, c->have_key ? &c->key : NULL, &c->tls, c->err, sizeof c->err);
    return c;
}

/* The host configuration, read once for every host; and what is wrong
 * for the first host (a missing key) is most likely wrong for all: said
 * once, before any connect. */
int fleet_preflight(const char *first, const struct dial_opts *o, struct hostconf_db **conf,
                    struct fleet_ctx **list)
{
    struct hostconf hc = { 0 };
    struct dial_opts eff;
    struct fleet_ctx *c;
    char target[320];

    if ((!*conf && hostconf_db_read(o->config_file, conf) < 0) ||
        dial_resolve(first, o, *conf, &eff, &hc, target, sizeof target) < 0)
        return -1;
    c = fleet_ctx_get(list, &eff);
    hostconf_free(&hc);
    if (!c || c->err[0]) {
        cli_error("%s", c ? c->err : "out of memory");
        return -1;
    }
    return 0;
}

/* Every address target (dial_resolve's) stands for, in the resolver's
 * order, as ferry_connect_host tries them: at once, or through the pool
 * (lookup.h). */
int fleet_resolve(struct lookup_pool *pool, const char *target, struct ferry_addr *out, int max,
                  lookup_cb *cb, void *arg, struct lookup **q)
{
    char name[256], port[16], *end;
    long p = FERRY_DEFAULT_PORT;

    *q = NULL;
    if (strncmp(target, "unix:", 5) == 0 || target[0] == '[')
        return ferry_addr_parse(target, FERRY_DEFAULT_PORT, &out[0]) == 0 ? 1 : FERRY_EADDR;
    dial_split_host(target, name, sizeof name, port, sizeof port);
    if (port[0]) {
        p = strtol(port, &end, 10);
        if (*end || p < 1 || p > 65535)
            return FERRY_EADDR;
    }
    if (!name[0] || strcmp(name, "*") == 0)
        return FERRY_EADDR;
    return lookup_start(pool, name, (uint16_t)p, out, max, cb, arg, q);
}

void fleet_ctx_free_all(struct fleet_ctx **list)
{
    while (*list) {
        struct fleet_ctx *c = *list;

        *list = c->next;
        ctx_free(c);
    }
}

/* Each host in flight holds a socket: raise the soft limit on descriptors
 * to what -f needs (past it, hosts would fail as they open their
 * sockets), within the hard limit; beyond the hard limit, -f is cut to
 * what fits, and said. */
size_t fleet_fit_fanout(size_t fanout, size_t spare)
{
    rlim_t want = (rlim_t)fanout + spare;
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want)
        return fanout;
    rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want ? rl.rlim_max : want;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0 && getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return fanout;
    if (rl.rlim_cur >= want)
        return fanout;
    fanout = rl.rlim_cur > spare + 1 ? (size_t)(rl.rlim_cur - spare) : 1;
    cli_error("-f: only %llu descriptors may be open (ulimit -n): at most %zu hosts at once",
              (unsigned long long)rl.rlim_cur, fanout);
    return fanout;
}
