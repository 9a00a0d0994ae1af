/*
 * cmd_files.c - command lines of the file subcommands (cmd_files.h), and the
 * output of ls and stat (each field shown as fsformat.c says).
 *
 * The subcommand and the shell line share one parser: `ferry put -r h d`
 * and `>>: put -r d` differ only in the session options and HOST.
 */
#include "cmd_files.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "signals.h"
#include "ferry/ferry.h"
#include "fleet_xfer.h"
#include "fsformat.h"
#include "remotefs.h"
#include "progress.h"
#include "proto.h"
#include "transfer.h"

/* Options, as bits of what each subcommand accepts. */
enum {
    F_R = 1 << 0,          /* -r: recursive (put, get, rm) */
    F_P = 1 << 1,          /* -p: preserve (put, get) / parents (mkdir) */
    F_RESUME = 1 << 2,
    F_Q = 1 << 3,
    F_CHECKSUM = 1 << 4,
    F_FSYNC = 1 << 5,
    F_JSON = 1 << 6,
    F_FORCE = 1 << 7,      /* --force: get - writes binary to a terminal */
    F_GLOB = 1 << 8,       /* remote operands may be patterns the server expands */
    F_FLEET = 1 << 9,      /* -w, -g, -x, -f: many hosts (put, get; not in the shell) */
    F_NEVER = 1 << 10,     /* no command has it: an option the shell refuses */
};
enum { OPT_RESUME = DIAL_OPT_BASE + 0x20, OPT_CHECKSUM, OPT_FSYNC, OPT_JSON, OPT_FORCE };

struct fsargs {
    struct transfer_opts x;
    int quiet, json, parents;
    int in_shell;          /* a `ferry shell` line: stdin is the shell's */
    char **ops;            /* operands after HOST (patterns expanded: see expand) */
    int nops;
    int globbed;           /* some operand was a pattern */
    char **expanded;       /* the array ops points at after an expansion */
    json_t *matches;       /* ... whose strings it borrows */
    const char **lists;    /* -w, -g, -x: their arguments, ... */
    char *kinds;           /* ... and which each is */
    int nlists;
    size_t fanout;         /* -f */
};

struct files_cmd;
typedef int (*fs_run_fn)(struct client_session **sp, const char *host, const struct dial_opts *so,
                         struct fsargs *a);

struct files_cmd {
    const char *name;
    unsigned flags;
    int min_ops, max_ops;      /* operands after HOST; max -1: any */
    const char *synopsis;      /* after "ferry NAME [OPTIONS] HOST " */
    const char *help;
    fs_run_fn run;
};

#define XFER_HELP                                                                    \
    "  -r                       copy directories and their contents (symlinks and\n"  \
    "                           special files inside them are skipped, with a word)\n" \
    "  -p                       keep mode and modification time (without it a new\n"  \
    "                           file gets the source's permissions less the umask)\n"  \
    "      --resume             go on from what an interrupted transfer left (the\n"  \
    "                           bytes already there are verified, not trusted)\n"      \
    "      --checksum ALG       xxh3-128 (default) or sha256\n"                         \
    "      --fsync              make the file durable before it is committed\n"        \
    "  -q                       no progress bar, no summary line\n"

/* A connection-level failure of a small request: say it once, 255. */
static int lost_status(const struct fs_error *err)
{
    cli_error("%s", err->message);
    return FERRY_EXIT_ERROR;
}

/* ---- remote patterns ------------------------------------------------------------ */

static int push_op(struct fsargs *a, int *cap, char *op)
{
    if (a->nops == *cap) {
        int ncap = *cap ? *cap * 2 : 8;
        char **v = realloc(a->expanded, (size_t)ncap * sizeof *v);

        if (!v)
            return -1;
        a->expanded = v;
        *cap = ncap;
    }
    a->expanded[a->nops++] = op;
    return 0;
}

/*
 * Replace the first nremote operands that are patterns ("*.gz" in logs) by
 * the paths the server matches (PROTOCOL.md 2.4, glob); the operands after
 * them are kept as they are.  A pattern that matches nothing is reported
 * ("no match for 'PATTERN'", *failed set) and dropped.  A server too old
 * to expand gets the operands as they were written.  0, or an exit status
 * (the connection failed).
 */
static int expand(struct client_session **sp, const char *host, const struct dial_opts *so,
                  const char *cmd, struct fsargs *a, int nremote, int *failed)
{
    char **ops = a->ops;
    int nops = a->nops, cap = 0, any = 0;

    for (int i = 0; i < nremote && !any; i++)
        any = remotefs_is_pattern(ops[i]);
    if (!any)
        return 0;
    if (!*sp && !(*sp = dial_open(host, so)))
        return FERRY_EXIT_ERROR;
    if (!(*sp)->glob)
        return 0;
    a->matches = json_array();
    if (!a->matches)
        goto oom;
    a->globbed = 1;
    a->nops = 0;
    for (int i = 0; i < nops; i++) {
        struct fs_error err = { 0 };
        json_t *paths = NULL, *p;
        char *pattern;
        size_t j;
        int r;

        if (i >= nremote || !remotefs_is_pattern(ops[i])) {
            if (push_op(a, &cap, ops[i]) < 0)
                goto oom;
            continue;
        }
        pattern = remotefs_canon(ops[i]);
        if (!pattern)
            goto oom;
        r = remotefs_glob(*sp, pattern, &paths, &err);
        free(pattern);
        if (r == FERRY_EREMOTE) {
            cli_error("%s %s: remote: %s", cmd, ops[i], remotefs_error_text(&err));
            *failed = 1;
            continue;
        }
        if (r < 0)
            return lost_status(&err);
        if (json_array_size(paths) == 0) {
            cli_error("%s: no match for '%s'", cmd, ops[i]);
            *failed = 1;
        }
        json_array_foreach(paths, j, p) {
            if (push_op(a, &cap, (char *)json_string_value(p)) < 0) {
                json_decref(paths);
                goto oom;
            }
        }
        if (json_array_append_new(a->matches, paths) < 0)
            goto oom;
    }
    a->ops = a->expanded;
    return 0;
oom:
    cli_error("out of memory");
    return FERRY_EXIT_ERROR;
}

/* ---- ls, stat, mkdir, rm -------------------------------------------------------- */

/* ls of a pattern: one entry per match, named by its path (as `ls -d`
 * shows a shell's expansion). */
static int stat_each(struct client_session *s, const struct fsargs *a, json_t **entries,
                     struct fs_error *err)
{
    json_t *all = json_array();

    if (!all)
        return session_lost(s, err, "out of memory");
    for (int i = 0; i < a->nops; i++) {
        struct fs_meta m;
        json_t *ans = NULL;
        int r = remotefs_stat(s, a->ops[i], &m, &ans, err);

        if (r == 0) {
            json_object_del(ans, "type");
            json_object_del(ans, "path");
            if (json_object_set_new(ans, "name", json_string(a->ops[i])) < 0 ||
                json_array_append(all, ans) < 0)
                r = session_lost(s, err, "out of memory");
            json_decref(ans);
        }
        if (r < 0) {
            json_decref(all);
            return r;
        }
    }
    *entries = all;
    return 0;
}

static int run_ls(struct client_session **sp, const char *host, const struct dial_opts *so,
                  struct fsargs *a)
{
    const char *arg = a->nops ? a->ops[0] : ".";
    char *path = remotefs_canon(arg);
    struct fs_error err = { 0 };
    json_t *entries = NULL, *e, **sorted = NULL;
    size_t n = 0, i;
    int status = FERRY_EXIT_ERROR, r, width = 1, tty = isatty(STDOUT_FILENO);

    (void)host;
    (void)so;
    if (!path) {
        cli_error("out of memory");
        goto out;
    }
    r = a->globbed ? stat_each(*sp, a, &entries, &err) : remotefs_list(*sp, path, &entries, &err);
    if (r == FERRY_EREMOTE) {
        cli_error("ls %s: %s", arg, remotefs_error_text(&err));
        status = 1;
        goto out;
    }
    if (r < 0) {
        status = lost_status(&err);
        goto out;
    }
    n = json_array_size(entries);
    sorted = calloc(n ? n : 1, sizeof *sorted);
    if (!sorted) {
        cli_error("out of memory");
        goto out;
    }
    json_array_foreach(entries, i, e)
        sorted[i] = e;
    qsort(sorted, n, sizeof *sorted, fsformat_by_name);
    if (a->json) {
        json_t *arr = json_array();
        char *text;

        for (i = 0; arr && i < n; i++)
            if (json_array_append(arr, sorted[i]) < 0)
                break;
        text = arr && i == n ? json_dumps(arr, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
        json_decref(arr);
        if (!text) {
            cli_error("out of memory");
            goto out;
        }
        printf("%s\n", text);
        free(text);
    } else {
        for (i = 0; i < n; i++) {
            int w = snprintf(NULL, 0, "%lld",
                             (long long)json_integer_value(json_object_get(sorted[i], "filesize")));
            if (w > width)
                width = w;
        }
        for (i = 0; i < n; i++) {
            const json_t *en = sorted[i];
            char mode[11], when[32];

            fsformat_mode(json_string_value(json_object_get(en, "kind")),
                          (unsigned)json_integer_value(json_object_get(en, "mode")), mode);
            fsformat_time(json_integer_value(json_object_get(en, "mtime")), when, sizeof when,
                          FSF_MINUTES);
            printf("%s %*lld %s ", mode, width,
                   (long long)json_integer_value(json_object_get(en, "filesize")), when);
            fsformat_name(json_string_value(json_object_get(en, "name")), tty);
            fsformat_target(json_string_value(json_object_get(en, "target")), tty);
            putchar('\n');
        }
    }
    status = fflush(stdout) == 0 ? 0 : 1;
out:
    free(sorted);
    json_decref(entries);
    free(path);
    return status;
}

static int run_stat(struct client_session **sp, const char *host, const struct dial_opts *so,
                    struct fsargs *a)
{
    int status = 0;

    (void)host;
    (void)so;
    for (int i = 0; i < a->nops; i++) {
        char *path = remotefs_canon(a->ops[i]), mode[11], when[64], zone[16];
        struct fs_error err = { 0 };
        struct fs_meta m;
        json_t *ans = NULL;
        int r;

        if (!path) {
            cli_error("out of memory");
            return FERRY_EXIT_ERROR;
        }
        r = remotefs_stat(*sp, path, &m, &ans, &err);
        free(path);
        if (r == FERRY_EREMOTE) {
            cli_error("stat %s: %s", a->ops[i], remotefs_error_text(&err));
            status = 1;
            continue;
        }
        if (r < 0)
            return lost_status(&err);
        if (a->json) {
            char *text;

            json_object_del(ans, "type");
            text = json_dumps(ans, JSON_COMPACT | JSON_ENSURE_ASCII);
            json_decref(ans);
            if (!text) {
                cli_error("out of memory");
                return FERRY_EXIT_ERROR;
            }
            printf("%s\n", text);
            free(text);
            continue;
        }
        fsformat_mode(m.kind, m.mode, mode);
        fsformat_time(m.mtime, when, sizeof when, FSF_SECONDS);
        fsformat_time(m.mtime, zone, sizeof zone, FSF_ZONE);
        if (i > 0)
            putchar('\n');
        printf("  path: ");
        fsformat_name(a->ops[i], isatty(STDOUT_FILENO));
        fsformat_target(json_string_value(json_object_get(ans, "target")), isatty(STDOUT_FILENO));
        printf("\n  kind: %s\n  mode: %04o (%s)\n  size: %llu\n mtime: %s.%09ld %s\n", m.kind,
               m.mode, mode, (unsigned long long)m.size, when, m.mtime_nsec, zone);
        json_decref(ans);
    }
    if (fflush(stdout) != 0 && status == 0)
        status = 1;
    return status;
}

/* mkdir and rm: one request per operand, a line for each that fails, on
 * to the next; a lost connection ends the command. */
static int run_each(struct client_session **sp, struct fsargs *a, const char *name, int flag,
                    int (*request)(struct client_session *, const char *, int, struct fs_error *))
{
    int status = 0;

    for (int i = 0; i < a->nops; i++) {
        char *path = remotefs_canon(a->ops[i]);
        struct fs_error err = { 0 };
        int r;

        if (!path) {
            cli_error("out of memory");
            return FERRY_EXIT_ERROR;
        }
        r = request(*sp, path, flag, &err);
        free(path);
        if (r == FERRY_EREMOTE) {
            cli_error("%s %s: %s", name, a->ops[i], remotefs_error_text(&err));
            status = 1;
        } else if (r < 0) {
            return lost_status(&err);
        }
    }
    return status;
}

static int run_mkdir(struct client_session **sp, const char *host, const struct dial_opts *so,
                     struct fsargs *a)
{
    (void)host;
    (void)so;
    return run_each(sp, a, "mkdir", a->parents, remotefs_mkdir);
}

static int run_rm(struct client_session **sp, const char *host, const struct dial_opts *so,
                  struct fsargs *a)
{
    (void)host;
    (void)so;
    return run_each(sp, a, "rm", a->x.recursive, remotefs_rm);
}

/* ---- put, get ------------------------------------------------------------------- */

static int run_xfer(struct client_session **sp, const char *host, const struct dial_opts *so,
                    struct fsargs *a, int put)
{
    /* One operand: the other side is "." (the root, or here). */
    const char *dest = a->nops > 1 ? a->ops[a->nops - 1] : ".";
    int nsrc = a->nops > 1 ? a->nops - 1 : 1, status, failed = 0;
    struct transfer x;

    if (!put) {
        /* get's sources may be patterns; its destination is local. */
        a->nops = nsrc;
        status = expand(sp, host, so, "get", a, nsrc, &failed);
        if (status != 0)
            return status;
        nsrc = a->nops;
        if (nsrc == 0)
            return 1;
    }
    if (transfer_init(&x, sp, host, so, &a->x) < 0)
        return FERRY_EXIT_ERROR;
    progress_enable(!a->quiet);
    status = put ? transfer_put(&x, a->ops, nsrc, dest) : transfer_get(&x, a->ops, nsrc, dest);
    transfer_free(&x);
    return status == 0 && failed ? 1 : status;
}

static int run_put(struct client_session **sp, const char *host, const struct dial_opts *so,
                   struct fsargs *a)
{
    /* The shell reads its own lines from stdin: a file cannot come from it too. */
    if (a->in_shell && a->nops > 0 && strcmp(a->ops[0], "-") == 0) {
        cli_error("put -: stdin is where the shell's commands come from");
        return 1;
    }
    return run_xfer(sp, host, so, a, 1);
}

static int run_get(struct client_session **sp, const char *host, const struct dial_opts *so,
                   struct fsargs *a)
{
    return run_xfer(sp, host, so, a, 0);
}

static const struct files_cmd commands[] = {
    { "put", F_R | F_P | F_RESUME | F_Q | F_CHECKSUM | F_FSYNC | F_FLEET, 1, -1, "LOCAL... [REMOTE]",
      "Upload LOCAL files to the ferryd's file root.  REMOTE (default: the root) is\n"
      "relative to the root; when it is a directory, ends in '/', or several LOCALs\n"
      "are given, the files go into it under their own names.  Each file is written\n"
      "to a temporary and renamed into place only once its checksum matches.  LOCAL\n"
      "'-' uploads stdin to REMOTE (its size is said when it ends; still verified and\n"
      "committed only when whole): tar c dir | ferry put HOST - dir.tar\n",
      run_put },
    { "get", F_R | F_P | F_RESUME | F_Q | F_CHECKSUM | F_FSYNC | F_FORCE | F_GLOB | F_FLEET, 1, -1, "REMOTE... [LOCAL]",
      "Download REMOTE files (relative to the ferryd's file root) to LOCAL (default:\n"
      "the current directory).  When LOCAL is a directory, ends in '/', or several\n"
      "REMOTEs are given, the files go into it under their own names.  Each file is\n"
      "written to .NAME" PROTO_PART_SUFFIX " beside its target and renamed into place\n"
      "only once its checksum matches.  LOCAL '-' writes the one REMOTE to stdout,\n"
      "verified as it ends (not on a terminal if it looks binary, unless --force):\n"
      "ferry get HOST dir.tar - | tar t\n",
      run_get },
    { "ls", F_JSON | F_GLOB, 0, 1, "[PATH]",
      "List a directory of the ferryd's file root (default: the root itself), sorted\n"
      "by name: type and permissions, size, modification time, name (a symlink's\n"
      "as 'name -> target', its own text: never followed).\n",
      run_ls },
    { "stat", F_JSON | F_GLOB, 1, -1, "PATH...",
      "Show the type, permissions, size and modification time of PATHs (a final\n"
      "symlink is not followed: it is shown itself, as 'PATH -> target').\n",
      run_stat },
    { "mkdir", F_P, 1, -1, "PATH...",
      "Make directories under the ferryd's file root.\n",
      run_mkdir },
    { "rm", F_R | F_GLOB, 1, -1, "PATH...",
      "Remove files, symlinks and empty directories (with -r: whole trees) under the\n"
      "ferryd's file root.\n",
      run_rm },
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static const struct files_cmd *find(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

int cmd_files_is(const char *name)
{
    return find(name) != NULL;
}

static void usage(const struct files_cmd *c, int in_shell)
{
    printf("usage: %s%s [OPTIONS] %s%s\n%s\n", in_shell ? "" : "ferry ", c->name,
           in_shell ? "" : "HOST ", c->synopsis, c->help);
    if (!in_shell)
        printf("HOST is NAME, NAME:PORT, [V6ADDR]:PORT or unix:/PATH (default port %d).\n\n",
               FERRY_DEFAULT_PORT);
    if (c->flags & F_CHECKSUM)
        printf("%s", XFER_HELP);
    if (strcmp(c->name, "rm") == 0)
        printf("  -r                       remove directories and everything in them\n");
    if (strcmp(c->name, "mkdir") == 0)
        printf("  -p                       make missing parents; an existing directory is fine\n");
    if (c->flags & F_FORCE)
        printf("      --force              with LOCAL '-', write to a terminal even what\n"
               "                           looks binary (a NUL byte)\n");
    if (c->flags & F_JSON)
        printf("      --json               print JSON for scripts\n");
    if ((c->flags & F_FLEET) && !in_shell)
        printf(FLEET_XFER_HELP, c->name, c->run == run_put ? "FILE [DEST]" : "FILE [DIR]",
               FLEET_DEFAULT_FANOUT);
    if (!in_shell)
        printf("%s", DIAL_OPTS_HELP);
    /* In the shell the version is the shell's own business. */
    printf("%s", in_shell ? "  -h, --help               show this help\n" : CLI_COMMON_HELP);
    if (c->flags & F_GLOB)
        printf("\nREMOTE operands may be patterns the server expands (quote them): *, ? and\n"
               "[...] within one directory level, a backslash for a literal one; a pattern\n"
               "that matches nothing is an error.\n");
    if (!in_shell)
        printf("\nExit status: 0 when everything succeeded; 1 when something failed (one line\n"
               "on stderr for each); 255 when the connection or authentication failed;\n"
               "2 for a bad command line.\n");
    /* In the shell, before the next remote command writes to fd 1. */
    fflush(stdout);
}

/* An option the command does not take.  At the shell's prompt `ls -l` is
 * the file command, not the server's ls: said how to run that one. */
static int bad_option(const struct files_cmd *c, int in_shell, const char *help_cmd, int opt,
                      char **argv)
{
    int status = cli_bad_option(help_cmd, opt, argv);

    if (in_shell && c->run != run_put && c->run != run_get)
        cli_error("hint: %s here is ferry's file command; 'command %s ...' runs the "
                  "server's own", c->name, c->name);
    return status;
}

/* Parse argv.  0 and *a filled, or an exit status (> 0) to stop with, or
 * -1 when --help or --version was shown (status 0). */
/* An empty operand (an unset variable's "$DIR") names nothing, here or on
 * the server; sent, it read as the root ("."), which rm and mkdir refused
 * in words about dots, and stat and ls showed.  Refused before dialling. */
static int no_empty_path(const struct files_cmd *c, const char *help_cmd, const struct fsargs *a)
{
    for (int i = 0; i < a->nops; i++)
        if (a->ops[i][0] == '\0')
            return cli_usage_error(help_cmd, "%s: an empty path names nothing", c->name);
    return 0;
}

static int parse(const struct files_cmd *c, int in_shell, int argc, char **argv,
                 struct dial_opts *so, const char **host, struct fsargs *a)
{
    static const struct option longopts[] = {
        { "resume", no_argument, NULL, OPT_RESUME },
        { "checksum", required_argument, NULL, OPT_CHECKSUM },
        { "fsync", no_argument, NULL, OPT_FSYNC },
        { "json", no_argument, NULL, OPT_JSON },
        { "force", no_argument, NULL, OPT_FORCE },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        DIAL_LONGOPTS,
        { NULL, 0, NULL, 0 },
    };
    char help_cmd[32];
    int opt, r;

    snprintf(help_cmd, sizeof help_cmd, "%s%s", in_shell ? "" : "ferry ", c->name);
    *a = (struct fsargs){ .x.alg = DIGEST_XXH3_128, .in_shell = in_shell,
                          .fanout = FLEET_DEFAULT_FANOUT };
    opterr = 0;
    optind = 0;   /* glibc: start afresh (the shell parses many lines) */
    while ((opt = getopt_long(argc, argv, "+:rpqhVw:g:x:f:" DIAL_SHORTOPTS, longopts, NULL)) != -1) {
        unsigned need = 0;

        if (!in_shell) {
            r = dial_opts_apply(so, help_cmd, opt, optarg);
            if (r < 0)
                return EXIT_USAGE;
            if (r > 0)
                continue;
        }
        switch (opt) {
        case 'r': need = F_R; a->x.recursive = 1; break;
        case 'p': need = F_P; a->x.preserve = a->parents = 1; break;
        case 'q': need = F_Q; a->quiet = 1; break;
        case OPT_RESUME: need = F_RESUME; a->x.resume = 1; break;
        case OPT_FSYNC: need = F_FSYNC; a->x.fsync = 1; break;
        case OPT_JSON: need = F_JSON; a->json = 1; break;
        case OPT_FORCE: need = F_FORCE; a->x.force = 1; break;
        case 'w': case 'g': case 'x':
            need = in_shell ? F_NEVER : F_FLEET;   /* the shell has its one host */
            if (!(c->flags & need))
                break;
            if (!a->lists && (!(a->lists = calloc((size_t)argc, sizeof *a->lists)) ||
                              !(a->kinds = calloc((size_t)argc, 1))))
                return FERRY_EXIT_ERROR;
            a->kinds[a->nlists] = (char)opt;
            a->lists[a->nlists++] = optarg;
            break;
        case 'f':
            need = in_shell ? F_NEVER : F_FLEET;
            if ((c->flags & need) && fleet_fanout(help_cmd, optarg, &a->fanout) != 0)
                return EXIT_USAGE;
            break;
        case OPT_CHECKSUM:
            need = F_CHECKSUM;
            if ((c->flags & F_CHECKSUM) && digest_parse(optarg, &a->x.alg) < 0)
                return cli_usage_error(help_cmd, "bad --checksum '%s' (xxh3-128 or sha256)",
                                       optarg);
            break;
        case 'h':
            usage(c, in_shell);
            return -1;
        case 'V':
            if (in_shell)
                return cli_usage_error(help_cmd, "unknown option '%s'", argv[optind - 1]);
            printf("ferry %s\n", FERRY_VERSION);
            return -1;
        case 'k': case 'v': case OPT_CONNECT_TIMEOUT: case OPT_INSECURE_NO_AUTH:
            /* Session options in the shell: the session exists already. */
            return cli_usage_error(help_cmd, "'%s' applies to the whole session, not one line",
                                   argv[optind - 1]);
        default:
            return bad_option(c, in_shell, help_cmd, opt, argv);
        }
        if (!(c->flags & need)) {
            optopt = opt < 0x100 ? opt : 0;
            return bad_option(c, in_shell, help_cmd, '?', argv);
        }
    }
    if (a->nlists > 0) {
        /* No HOST operand: -w names them. */
        a->ops = argv + optind;
        a->nops = argc - optind;
        if (a->nops < 1)
            return cli_usage_error(help_cmd, "missing FILE");
        return no_empty_path(c, help_cmd, a);
    }
    if (a->fanout != FLEET_DEFAULT_FANOUT)
        return cli_usage_error(help_cmd, "-f is for many hosts: give it with -w or -g");
    if (!in_shell) {
        if (optind >= argc)
            return cli_usage_error(help_cmd, "missing HOST");
        *host = argv[optind++];
    }
    a->ops = argv + optind;
    a->nops = argc - optind;
    if (a->nops < c->min_ops)
        return cli_usage_error(help_cmd, "missing %s", c->synopsis);
    if (c->max_ops >= 0 && a->nops > c->max_ops)
        return cli_usage_error(help_cmd, "too many operands");
    return no_empty_path(c, help_cmd, a);
}

/* ls, stat and rm of an operand spelled as a directory ("a/") that is
 * something else: reported and dropped (remotefs_check_dir), where the
 * bare name the server gets would have listed or removed a file. */
static int drop_slashed_files(struct client_session **sp, const char *host,
                              const struct dial_opts *so, const char *cmd, struct fsargs *a,
                              int *failed)
{
    int kept = 0;

    for (int i = 0; i < a->nops; i++) {
        struct fs_error err = { 0 };
        int r = 0;

        if (remotefs_names_dir(a->ops[i]) && !remotefs_is_pattern(a->ops[i])) {
            if (!*sp && !(*sp = dial_open(host, so)))
                return FERRY_EXIT_ERROR;
            r = remotefs_check_dir(*sp, a->ops[i], &err);
        }
        if (r == FERRY_EREMOTE) {
            cli_error("%s %s: %s", cmd, a->ops[i], remotefs_error_text(&err));
            *failed = 1;
        } else if (r < 0) {
            return lost_status(&err);
        } else {
            a->ops[kept++] = a->ops[i];
        }
    }
    a->nops = kept;
    return 0;
}

/* Run a parsed command line: patterns among the remote operands of ls,
 * stat and rm expanded first (get expands its own: its last operand is
 * local), and what they name as directories checked. */
static int run_parsed(const struct files_cmd *c, struct client_session **sp, const char *host,
                      const struct dial_opts *so, struct fsargs *a)
{
    int failed = 0, status = 0;

    if ((c->flags & F_GLOB) && c->run != run_get)
        status = expand(sp, host, so, c->name, a, a->nops, &failed);
    if (status == 0 && (c->flags & F_GLOB) && c->run != run_get)
        status = drop_slashed_files(sp, host, so, c->name, a, &failed);
    if (status == 0 && !((a->globbed || failed) && a->nops == 0))
        status = c->run(sp, host, so, a);
    free(a->expanded);
    json_decref(a->matches);
    a->expanded = NULL;
    a->matches = NULL;
    return status == 0 && failed ? 1 : status;
}

/* `ferry put|get -w HOSTS ...` (fleet_cli.c checks the rest of the line). */
static int run_fleet(const struct files_cmd *c, const struct dial_opts *so,
                     const struct fsargs *a)
{
    char help_cmd[32];
    struct fleet_xfer_cmd fx = {
        .cmd = help_cmd, .put = c->run == run_put, .lists = a->lists, .kinds = a->kinds,
        .nlists = a->nlists, .fanout = a->fanout, .ops = a->ops, .nops = a->nops,
        .recursive = a->x.recursive, .resume = a->x.resume,
        .xo = { .alg = a->x.alg, .preserve = a->x.preserve, .fsync = a->x.fsync },
    };

    snprintf(help_cmd, sizeof help_cmd, "ferry %s", c->name);
    return fleet_xfer_main(so, &fx);
}

/* `ferry NAME [OPTIONS] HOST ...` */
static int run_cmd(const char *name, int argc, char **argv)
{
    const struct files_cmd *c = find(name);
    struct client_session *s = NULL;
    struct dial_opts so;
    struct fsargs a;
    const char *host = NULL;
    int status;

    dial_opts_init(&so);
    status = parse(c, 0, argc, argv, &so, &host, &a);
    if (status == 0 && a.nlists > 0) {
        /* -w, -g: many hosts, no HOST operand (fleet_put.c, fleet_get.c). */
        status = run_fleet(c, &so, &a);
    } else if (status == 0) {
        /* put and get connect when the first file needs it (and again
         * when a failure cost the connection); the others need one at
         * once. */
        if (c->run != run_put && c->run != run_get)
            s = dial_open(host, &so);
        if (s || c->run == run_put || c->run == run_get)
            status = run_parsed(c, &s, host, &so, &a);
        else
            status = FERRY_EXIT_ERROR;
        /* A session that ended at rest goes back to its master, if it
         * came from one (an interrupted transfer may not be at rest). */
        if (s && !s->broken && !signals_interrupted)
            session_release(s);
        client_session_close(s);
    }
    free(a.lists);
    free(a.kinds);
    return status < 0 ? 0 : status;
}

int cmd_put(int argc, char **argv) { return run_cmd("put", argc, argv); }
int cmd_get(int argc, char **argv) { return run_cmd("get", argc, argv); }
int cmd_ls(int argc, char **argv) { return run_cmd("ls", argc, argv); }
int cmd_stat(int argc, char **argv) { return run_cmd("stat", argc, argv); }
int cmd_mkdir(int argc, char **argv) { return run_cmd("mkdir", argc, argv); }
int cmd_rm(int argc, char **argv) { return run_cmd("rm", argc, argv); }

int cmd_files_shell(struct client_session **sp, const char *host, const struct dial_opts *so,
                int argc, char **argv)
{
    const struct files_cmd *c = find(argv[0]);
    struct fsargs a;
    int status;

    status = parse(c, 1, argc, argv, NULL, NULL, &a);
    if (status != 0)
        return status < 0 ? 0 : status;
    status = run_parsed(c, sp, host, so, &a);
    /* A transfer may have had to drop the connection (and a new one may
     * have failed): the shell goes on only with a working session. */
    if (!*sp || (*sp)->broken) {
        client_session_close(*sp);
        *sp = dial_open(host, so);
        if (!*sp)
            return FERRY_EXIT_ERROR;
    }
    return status;
}
