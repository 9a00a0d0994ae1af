/*
 * options.c - ferryd's command line and its configuration file (-f, the
 * same long options as `KEY VALUE` lines): --help, parsing and checking
 * each value, and what a bad one says (options.h).
 */
#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classic.h"
#include "conffile.h"
#include "daemon.h"
#include "proto.h"


/* Where complain() writes: stderr, or (while the configuration file is
 * read) the errbuf conffile_read puts FILE:LINE before. */
static struct errbuf *complain_to;

__attribute__((format(printf, 1, 2)))
static void complain(const char *fmt, ...)
{
    char msg[ERRBUF_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (complain_to)
        errbuf_set(complain_to, -EINVAL, "%s", msg);
    else
        fprintf(stderr, "ferryd: %s\n", msg);
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: ferryd [OPTIONS]\n"
        "Serve authenticated remote command execution (ferry exec, ferry shell) and\n"
        "files (ferry put, get, ls, rm, mkdir, stat).\n"
        "\n"
        "  -f, --config FILE        read settings from FILE first: one 'KEY VALUE' per\n"
        "                           line, KEY a long option below (yes/no for those\n"
        "                           without a value); the command line wins\n"
        "  -l, --listen ADDR        address to serve (repeatable; default 127.0.0.1:%d)\n"
        "                           HOST:PORT, [V6]:PORT, *:PORT (all interfaces) or unix:/PATH;\n"
        "                           ignored when systemd passes the sockets (ferryd.socket)\n"
        "  -k, --key-file FILE      the shared key, known as 'ferry' (default:\n"
        "                           ~/.config/ferry/key; make one with: ferry keygen)\n"
        "      --keys FILE          named keys instead, one 'NAME HEX [OPTION,...]' per\n"
        "                           line; read at every connection, so deleting a line\n"
        "                           revokes it.  Options restrict the key: files-only,\n"
        "                           read-only (stat, list, get), command=\"CMD\" (runs\n"
        "                           CMD whatever is asked, the request in\n"
        "                           $FERRY_ORIGINAL_COMMAND; no files), root=DIR (its\n"
        "                           file service serves DIR instead of --root),\n"
        "                           from=CIDR[,...] (quoted when a list)\n"
        "      --cert FILE          TLS certificate chain (PEM) for clients that verify\n"
        "                           the server with ferry --ca; PSK clients still work\n"
        "      --cert-key FILE      its private key (PEM)\n"
        "      --client-ca FILE     accept client certificates signed by this CA (PEM)\n"
        "                           in place of a key\n"
        "      --plaintext          no TLS: the key still authenticates both sides but\n"
        "                           traffic travels in the clear (ferry --plaintext)\n"
        "  -r, --root DIR           the directory the file service serves; clients can\n"
        "                           reach nothing outside it (default %s, created\n"
        "                           if missing)\n"
        "      --no-sweep           do not look through the root for the temporaries\n"
        "                           of unfinished uploads (by default ferryd does,\n"
        "                           once, beside serving, on local filesystems only)\n"
        "  -m, --model MODEL        event (default: one loop serves every connection)\n"
        "                           or fork (a process per connection, as sshd)\n"
        "  -w, --workers N          event model: loop threads (default 1; no effect\n"
        "                           with fork)\n"
        "      --max-conns N        concurrent connections (default 1024)\n"
        "      --max-unauth N       of those, how many may be waiting to authenticate\n"
        "                           (default 256); when all are held, the oldest\n"
        "                           waiting connection of the source holding the most\n"
        "                           is closed to make room\n"
        "      --max-unauth-per-source N  of those, how many one source may hold\n"
        "                           (default 0: no cap)\n"
        "      --unauth-netblock V4:V6  prefix lengths that make one source (default\n"
        "                           32:128, one address; 24:64 counts networks)\n"
        "      --unauth-early-drop START:RATE  from START waiting on, drop a new\n"
        "                           connection of a source that already has one waiting\n"
        "                           with RATE%% chance, rising to 100%% at --max-unauth\n"
        "                           (default 3/4 of --max-unauth:30; 0 = never)\n"
        "      --unauth-penalty S   refuse a source for S seconds after one of its\n"
        "                           waiting connections was evicted (default 1; 0 = no)\n"
        "      --unauth-timeout-penalty S  the same after one reached --auth-timeout\n"
        "                           (default 0: no; a shared address, NAT, may suffer)\n"
        "      --auth-timeout S     close connections not authenticated within S seconds\n"
        "                           (default 10)\n"
        "      --idle-timeout S     close connections idle for S seconds (default: never);\n"
        "                           a running command or a transfer is not idle\n"
        "      --classic ADDR       also serve the tutorials' unauthenticated protocol on\n"
        "                           ADDR (loopback only unless --insecure)\n"
        "      --classic-max-conns N\n"
        "                           classic connections at once (default %d), on top\n"
        "                           of --max-conns, so they never take its slots\n"
        "      --classic-idle-timeout S\n"
        "                           close classic connections with nothing to do for\n"
        "                           S seconds (default %d)\n"
        "      --classic-max-output MIB\n"
        "                           command output all classic connections may hold\n"
        "                           at once (default %u); a command that finds it\n"
        "                           spent is killed and its reply says so\n"
        "      --insecure           allow --classic on a non-loopback address\n"
        "      --insecure-no-auth   serve without authentication or TLS (loopback\n"
        "                           addresses only)\n"
        "  -v, --verbose            log every connection and command\n"
        "  -q, --quiet              log only warnings, errors and the audit trail\n"
        "      --no-audit           no audit lines (sessions, commands, file operations)\n"
        "  -h, --help               show this help\n"
        "  -V, --version            show the version\n"
        "\n"
        "Every connection is TLS 1.3 unless --plaintext: keyed by the shared key (an\n"
        "external PSK with an (EC)DHE exchange) or by --cert. Commands run, and files\n"
        "are written, as the user ferryd runs as: a key gives its holder that user's\n"
        "power. Commands are not confined to --root.\n",
        FERRY_DEFAULT_PORT, FERRYD_DEFAULT_ROOT, CLASSIC_DEFAULT_MAX_CONNS,
        CLASSIC_DEFAULT_IDLE_TIMEOUT_MS / 1000, CLASSIC_DEFAULT_MAX_OUTPUT >> 20);
}

/* Whole seconds, into milliseconds; 0 too when zero_ok (it means none,
 * as the message then says). */
static int parse_seconds(const char *opt, const char *text, int zero_ok, int *ms)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    /* Milliseconds must fit an int: about 24 days is the most. */
    if (errno || end == text || *end || v < !zero_ok || v > INT_MAX / 1000) {
        complain("bad value for %s: '%s' (whole seconds, %d..%d%s)", opt, text, !zero_ok,
                 INT_MAX / 1000, zero_ok ? "; 0: none" : "");
        return -1;
    }
    *ms = (int)(v * 1000);
    return 0;
}

/* "A:B" (named so in the message: "START:RATE"), each in lo..hi. */
static int parse_pair(const char *opt, const char *names, const char *text, long lo, long hi,
                      int *a, int *b)
{
    char *end = NULL;
    errno = 0;
    long x = strtol(text, &end, 10), y = 0;
    int ok = !errno && end != text && *end == ':' && x >= lo && x <= hi;
    if (ok) {
        const char *t = end + 1;
        y = strtol(t, &end, 10);
        ok = !errno && end != t && !*end && y >= lo && y <= hi;
    }
    if (!ok) {
        complain("bad value for %s: '%s' (%s, each %ld..%ld)", opt, text, names, lo, hi);
        return -1;
    }
    *a = (int)x;
    *b = (int)y;
    return 0;
}

/* A count from lo (0: off, as the message then says) to max. */
static int parse_range(const char *opt, const char *text, long lo, long max, int *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < lo || v > max) {
        complain("bad value for %s: '%s' (%ld..%ld%s)", opt, text, lo, max,
                 lo == 0 ? "; 0: off" : "");
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int parse_count(const char *opt, const char *text, long max, int *out)
{
    return parse_range(opt, text, 1, max, out);
}

static int parse_count0(const char *opt, const char *text, long max, int *out)
{
    return parse_range(opt, text, 0, max, out);
}

enum { OPT_MAX_CONNS = 256, OPT_MAX_UNAUTH, OPT_AUTH_TIMEOUT, OPT_IDLE_TIMEOUT, OPT_CLASSIC, OPT_INSECURE,
       OPT_NO_AUTH, OPT_KEYS, OPT_CERT, OPT_CERT_KEY, OPT_CLIENT_CA, OPT_PLAINTEXT,
       OPT_PER_SOURCE, OPT_NETBLOCK, OPT_EARLY_DROP, OPT_PENALTY, OPT_TIMEOUT_PENALTY,
       OPT_CLASSIC_MAX_CONNS, OPT_CLASSIC_IDLE_TIMEOUT, OPT_CLASSIC_MAX_OUTPUT, OPT_NO_AUDIT, OPT_NO_SWEEP };
static const struct option longopts[] = {
    { "config", required_argument, NULL, 'f' },
    { "listen", required_argument, NULL, 'l' },
    { "key-file", required_argument, NULL, 'k' },
    { "keys", required_argument, NULL, OPT_KEYS },
    { "cert", required_argument, NULL, OPT_CERT },
    { "cert-key", required_argument, NULL, OPT_CERT_KEY },
    { "client-ca", required_argument, NULL, OPT_CLIENT_CA },
    { "plaintext", no_argument, NULL, OPT_PLAINTEXT },
    { "root", required_argument, NULL, 'r' },
    { "no-sweep", no_argument, NULL, OPT_NO_SWEEP },
    { "model", required_argument, NULL, 'm' },
    { "workers", required_argument, NULL, 'w' },
    { "max-conns", required_argument, NULL, OPT_MAX_CONNS },
    { "max-unauth", required_argument, NULL, OPT_MAX_UNAUTH },
    { "max-unauth-per-source", required_argument, NULL, OPT_PER_SOURCE },
    { "unauth-netblock", required_argument, NULL, OPT_NETBLOCK },
    { "unauth-early-drop", required_argument, NULL, OPT_EARLY_DROP },
    { "unauth-penalty", required_argument, NULL, OPT_PENALTY },
    { "unauth-timeout-penalty", required_argument, NULL, OPT_TIMEOUT_PENALTY },
    { "auth-timeout", required_argument, NULL, OPT_AUTH_TIMEOUT },
    { "idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT },
    { "classic", required_argument, NULL, OPT_CLASSIC },
    { "classic-max-conns", required_argument, NULL, OPT_CLASSIC_MAX_CONNS },
    { "classic-idle-timeout", required_argument, NULL, OPT_CLASSIC_IDLE_TIMEOUT },
    { "classic-max-output", required_argument, NULL, OPT_CLASSIC_MAX_OUTPUT },
    { "insecure", no_argument, NULL, OPT_INSECURE },
    { "insecure-no-auth", no_argument, NULL, OPT_NO_AUTH },
    { "verbose", no_argument, NULL, 'v' },
    { "quiet", no_argument, NULL, 'q' },
    { "no-audit", no_argument, NULL, OPT_NO_AUDIT },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 },
};

/* One option, from the command line or the configuration file.  0, -1
 * to exit at once with status 0 (--help, --version), or the exit status. */
static int apply_option(struct options *o, int opt, const char *arg)
{
    switch (opt) {
    case 'l':
    case OPT_CLASSIC: {
        const char **list = opt == 'l' ? o->listen : o->classic;
        int *n = opt == 'l' ? &o->nlisten : &o->nclassic;
        int *from_file = opt == 'l' ? &o->listen_from_file : &o->classic_from_file;
        if (o->in_file) {
            *from_file = 1;
        } else if (*from_file) {
            *n = 0;   /* the command line's list replaces the file's */
            *from_file = 0;
        }
        if (*n == MAX_LISTEN) {
            complain("at most %d addresses per option", MAX_LISTEN);
            return 2;
        }
        list[(*n)++] = arg;
        break;
    }
    case 'f': o->config = arg; break;
    case 'k':
    case OPT_KEYS:
        /* The command line's key or keys replaces the file's (the shipped
         * one has key-file): "not both" would name an option not typed. */
        if (!o->in_file && o->key_from_file)
            o->key_file = o->keys_file = NULL;
        o->key_from_file = o->in_file;
        if (opt == 'k')
            o->key_file = arg;
        else
            o->keys_file = arg;
        break;
    case OPT_CERT: o->cert = arg; break;
    case OPT_CERT_KEY: o->cert_key = arg; break;
    case OPT_CLIENT_CA: o->client_ca = arg; break;
    case OPT_PLAINTEXT: o->plaintext = 1; break;
    case 'r': o->root = arg; break;
    case OPT_NO_SWEEP: o->no_sweep = 1; break;
    case 'm':
        if (ferry_model_parse(arg, &o->server.model) < 0 || o->server.model == FERRY_MODEL_THREAD) {
            complain("unknown model '%s' (event or fork)", arg);
            return 2;
        }
        break;
    case 'w':
        if (parse_count("--workers", arg, 256, &o->server.workers) < 0)
            return 2;
        o->workers_given = 1;
        break;
    case OPT_MAX_CONNS:
        if (parse_count("--max-conns", arg, 1000000, &o->server.max_conns) < 0)
            return 2;
        break;
    case OPT_MAX_UNAUTH:
        if (parse_count("--max-unauth", arg, 1000000, &o->server.max_unauthenticated) < 0)
            return 2;
        break;
    case OPT_PER_SOURCE:
        if (parse_count0("--max-unauth-per-source", arg, 1000000,
                         &o->server.max_unauth_per_source) < 0)
            return 2;
        break;
    case OPT_NETBLOCK:
        if (parse_pair("--unauth-netblock", "V4:V6", arg, 1, 128,
                       &o->server.unauth_v4_bits, &o->server.unauth_v6_bits) < 0)
            return 2;
        if (o->server.unauth_v4_bits > 32) {
            complain("bad value for --unauth-netblock: '%s' (V4:V6, V4 1..32, V6 1..128)", arg);
            return 2;
        }
        break;
    case OPT_EARLY_DROP:
        if (strcmp(arg, "0") == 0) {
            o->server.unauth_start = 0;
            break;
        }
        if (parse_pair("--unauth-early-drop", "START:RATE (0: never)", arg, 0, 1000000,
                       &o->server.unauth_start, &o->server.unauth_rate) < 0)
            return 2;
        if (o->server.unauth_rate > 100) {
            complain("bad value for --unauth-early-drop: '%s' (START:RATE, RATE a percentage "
                     "0..100)", arg);
            return 2;
        }
        break;
    case OPT_PENALTY:
        if (parse_seconds("--unauth-penalty", arg, 1, &o->server.unauth_penalty_ms) < 0)
            return 2;
        break;
    case OPT_TIMEOUT_PENALTY:
        if (parse_seconds("--unauth-timeout-penalty", arg, 1,
                          &o->server.unauth_timeout_penalty_ms) < 0)
            return 2;
        break;
    case OPT_AUTH_TIMEOUT:
        if (parse_seconds("--auth-timeout", arg, 0, &o->server.handshake_timeout_ms) < 0)
            return 2;
        break;
    case OPT_IDLE_TIMEOUT:
        if (parse_seconds("--idle-timeout", arg, 0, &o->server.idle_timeout_ms) < 0)
            return 2;
        break;
    case OPT_CLASSIC_MAX_CONNS:
        if (parse_count("--classic-max-conns", arg, 100000, &o->classic_max_conns) < 0)
            return 2;
        o->classic_tuned = 1;
        break;
    case OPT_CLASSIC_IDLE_TIMEOUT:
        if (parse_seconds("--classic-idle-timeout", arg, 0, &o->classic_idle_timeout_ms) < 0)
            return 2;
        o->classic_tuned = 1;
        break;
    case OPT_CLASSIC_MAX_OUTPUT:
        if (parse_count("--classic-max-output", arg, 1 << 20, &o->classic_max_output_mib) < 0)
            return 2;
        o->classic_tuned = 1;
        break;
    case OPT_INSECURE: o->insecure_classic = 1; break;
    case OPT_NO_AUTH: o->insecure_no_auth = 1; break;
    case 'v': ferry_log_set_level(FERRY_LOG_DEBUG); break;
    case 'q': ferry_log_set_level(FERRY_LOG_WARN); break;
    case OPT_NO_AUDIT: ferry_log_set_audit(0); break;
    case 'h': usage(stdout); return -1;
    case 'V':
        printf("ferryd %s (%s; kernel TLS %s)\n", FERRY_VERSION, ferry_tls_library(),
               ferry_tls_ktls_available() ? "available: downloads are zero-copy"
                                          : "not available: records are sealed in user space");
        return -1;
    default:
        fprintf(stderr, "Try 'ferryd --help' for more information.\n");
        return 2;
    }
    return 0;
}

/* A copy of *value that lives as long as the options; *value then
 * points at it. */
static int keep(struct options *o, const char **value)
{
    char *copy = strdup(*value), **grown;

    if (!copy)
        return -ENOMEM;
    grown = realloc(o->kept, (o->nkept + 1) * sizeof *grown);
    if (!grown) {
        free(copy);
        return -ENOMEM;
    }
    o->kept = grown;
    o->kept[o->nkept++] = copy;
    *value = copy;
    return 0;
}

void options_free(struct options *o)
{
    for (size_t i = 0; i < o->nkept; i++)
        free(o->kept[i]);
    free(o->kept);
}

/* A configuration file's `KEY VALUE`: the option of that name. */
static int apply_setting(const char *key, const char *value, void *arg, struct errbuf *eb)
{
    struct options *o = arg;
    const struct option *lo = longopts;
    int r;

    while (lo->name && strcmp(lo->name, key) != 0)
        lo++;
    if (!lo->name || lo->val == 'f' || lo->val == 'h' || lo->val == 'V')
        return errbuf_set(eb, FERRY_ECONF_LINE, "unknown key '%s' (the keys are the long "
                          "options of ferryd --help, without --config, help and version)", key);
    if (lo->has_arg == no_argument) {
        if (strcmp(value, "no") == 0)
            return 0;
        if (strcmp(value, "yes") != 0)
            return errbuf_set(eb, FERRY_ECONF_LINE, "%s takes yes or no, not '%s'", key, value);
        value = NULL;
    }
    /* The line is gone after this call; the options keep pointers. */
    if (value && keep(o, &value) < 0)
        return -ENOMEM;
    complain_to = eb;
    r = apply_option(o, lo->val, value);
    complain_to = NULL;
    return r == 0 ? 0 : FERRY_ECONF_LINE;   /* complain() said why */
}

/* Returns 0 to go on, or the exit status (0 after --help). */
int options_parse(int argc, char **argv, struct options *o)
{
    /* ':' first: a missing value is told apart from an unknown option,
     * both said below as "ferryd: ..." rather than by getopt under the
     * path the program was started by. */
    static const char shortopts[] = ":f:l:k:r:m:w:vqhV";
    struct errbuf err;
    int opt, r;

    /* The file first, so that the command line can override it: find -f
     * without acting on (or complaining about) anything else. */
    opterr = 0;
    while ((opt = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1)
        if (opt == 'f')
            o->config = optarg;
    optind = 0;   /* glibc: start again from scratch */
    if (o->config) {
        o->in_file = 1;
        r = conffile_read(o->config, apply_setting, o, &err);
        o->in_file = 0;
        if (r < 0) {
            fprintf(stderr, "ferryd: %s\n", errbuf_msg(&err, r));
            return 2;
        }
    }
    while ((opt = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        if (opt == '?' || opt == ':') {
            const char *word = argv[optind - 1];
            const char *what = opt == ':' ? "needs a value" : "is not known";

            /* A short option may sit inside a cluster (-vx): named by optopt. */
            if (strncmp(word, "--", 2) == 0)
                fprintf(stderr, "ferryd: option '%s' %s\n", word, what);
            else
                fprintf(stderr, "ferryd: option '-%c' %s\n", optopt, what);
            fprintf(stderr, "Try 'ferryd --help' for more information.\n");
            return 2;
        }
        r = apply_option(o, opt, optarg);
        if (r != 0)
            return r;
    }
    if (optind != argc) {
        fprintf(stderr, "ferryd: unexpected argument '%s'\nTry 'ferryd --help' for more information.\n",
                argv[optind]);
        return 2;
    }
    /* Said rather than ignored: whoever asked for loop threads expects
     * them, and the fork model has a process per connection instead. */
    if (o->workers_given && o->server.model == FERRY_MODEL_FORK)
        fprintf(stderr, "ferryd: -w/--workers has no effect with --model fork "
                        "(a process serves each connection)\n");
    /* The same for what only --classic uses: --insecure, read as "serve
     * without authentication", would otherwise pass for done. */
    if (o->nclassic == 0 && o->insecure_classic)
        fprintf(stderr, "ferryd: --insecure has no effect without --classic (it allows --classic "
                        "on an address that is not loopback)\n");
    if (o->nclassic == 0 && o->classic_tuned)
        fprintf(stderr, "ferryd: the --classic-* limits have no effect without --classic\n");
    return 0;
}

void options_init(struct options *o)
{
    *o = (struct options){ .server = { .handshake_timeout_ms = PROTO_AUTH_TIMEOUT_MS,
                                       .max_unauthenticated = FERRYD_DEFAULT_MAX_UNAUTH,
                                       .unauth_start = -1,   /* 3/4 of max_unauthenticated */
                                       .unauth_rate = FERRYD_DEFAULT_EARLY_DROP_RATE,
                                       .unauth_penalty_ms = FERRYD_DEFAULT_UNAUTH_PENALTY_MS,
                                       .shutdown_grace_ms = FERRYD_STOP_GRACE_MS,
                                       .frame_limits = { .max_header = PROTO_PREAUTH_MAX_HEADER } },
                           .classic_max_conns = CLASSIC_DEFAULT_MAX_CONNS,
                           .classic_idle_timeout_ms = CLASSIC_DEFAULT_IDLE_TIMEOUT_MS,
                           .classic_max_output_mib = CLASSIC_DEFAULT_MAX_OUTPUT >> 20 };
}
