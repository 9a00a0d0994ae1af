/*
 * ferry-bench - the load generator of ferry's benchmark suite (issue 5).
 *
 *   ferry-bench echo  ADDR [-c N] [-t N] [-s BYTES] [-d S | -n COUNT] [--hold N] [--json]
 *   ferry-bench frame ADDR ...      framed request/response (u32 LE | JSON | body)
 *   ferry-bench hold  ADDR --hold N [-d S] [-k KEYFILE]
 *   ferry-bench exec  ADDR -k KEYFILE [--fresh] [-c N] [-d S | -n N] [-- CMD...]
 *   ferry-bench put   ADDR -k KEYFILE [-c N] [-s BYTES] [-d S | -n N] [--remote-dir DIR] [--seed N]
 *   ferry-bench get   ADDR -k KEYFILE -p PATH [-c N] [-d S | -n N]
 *
 * This file is the command line and the orchestration: it resolves the
 * target once, loads the key once, encodes the request once (in put and
 * get modes: makes and hashes the file's content once, bench_xfer.c),
 * raises the descriptor limit, starts the threads (bench_loop.c) and
 * prints what they measured (bench_report.c).
 * It must never be what limits the numbers it prints, so the request path
 * makes no allocation and no more system calls than the exchange needs.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include "ferry/ferry.h"
#include "bench.h"
#include "bench_exec.h"
#include "bench_xfer.h"

#define MAX_THREADS     256u
#define MAX_CONNS       1000000u
#define MAX_SIZE        (64u * 1024u * 1024u)
#define MAX_PUT_SIZE    (64ull << 30)         /* put: the file is held in memory */
#define DEFAULT_PUT_SIZE (64u * 1024u * 1024u)
#define MAX_REMOTE_PATH 4000u                 /* the protocol's paths are under 4096 bytes */
#define MAX_REQUESTS    1000000000000ull   /* keeps quota arithmetic in 64 bits */
#define SPARE_FDS       64u                /* stdio, epolls, eventfds, the resolver */

enum { OPT_HOLD = 0x100, OPT_WARMUP, OPT_CONNECT_TIMEOUT, OPT_JSON, OPT_NO_AUTH, OPT_FRESH,
       OPT_REMOTE_DIR, OPT_SEED, OPT_CHECKSUM };

/* The stop eventfd, for the signal handler; written once before any
 * handler is installed. */
static int stop_fd = -1;

static void on_signal(int sig)
{
    uint64_t one = 1;
    int saved = errno;
    (void)sig;

    /* write() is async-signal-safe; a failure leaves nothing to do here. */
    if (write(stop_fd, &one, sizeof one) < 0) {
    }
    errno = saved;
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: ferry-bench MODE ADDR [OPTIONS] [-- CMD [ARG...]]\n"
        "Load generator for ferry's benchmarks.  MODE is one of\n"
        "  echo    raw echo: send SIZE bytes, wait for SIZE bytes back, repeat\n"
        "  frame   one ferry frame ({\"type\":\"echo\",\"size\":SIZE} + body) out, one frame back\n"
        "  hold    only open --hold N idle connections at once and keep them -d seconds\n"
        "          (with -k or --insecure-no-auth: N authenticated ferryd sessions)\n"
        "  exec    ferryd command round trips: every connection authenticates once, then\n"
        "          runs CMD (default: the shell line \"true\"; stdin /dev/null) back to back;\n"
        "          latency is request sent -> exit frame in, output read and discarded\n"
        "  put     ferryd uploads: every connection authenticates once, then uploads a file of\n"
        "          -s BYTES (made in memory once from --seed) as bench-put-<conn>.bin under\n"
        "          --remote-dir, over and over; latency is put sent -> put-ok in\n"
        "  get     ferryd downloads: every connection fetches -p PATH over and over, checking\n"
        "          each download's checksum; latency is get sent -> get-end in\n"
        "ADDR is HOST:PORT, [V6]:PORT or unix:/PATH.\n"
        "\n"
        "  -c, --connections N      active request/response connections (default 1; 0 for hold)\n"
        "  -t, --threads N          threads, each with its own epoll and share of connections (default 1)\n"
        "  -s, --size BYTES         message (echo), body (frame) or file (put) size; K, M, G\n"
        "                           suffixes are powers of 1024 (default 64; put: 64M)\n"
        "  -d, --duration S         measure for S seconds (default 10 unless -n is given)\n"
        "  -n, --requests N         stop after N measured requests, or transfers in put and get\n"
        "                           modes (with -d: whichever comes first;\n"
        "                           alone: at most %.0f s)\n"
        "  -w, --warmup S           run S seconds before measuring (default 0)\n"
        "      --hold N             also open N idle connections in one burst before the run\n"
        "                           and hold them to its end; reports the time to connect them all\n"
        "      --connect-timeout S  give up on a connect (and handshake) after S seconds (default 10)\n"
        "  -k, --key-file FILE      ferryd's shared key: every connection (active and held) first\n"
        "                           completes the handshake, and only then counts as connected\n"
        "      --insecure-no-auth   accept a ferryd started with --insecure-no-auth\n"
        "      --fresh              exec: one new connection and handshake per request, timed from\n"
        "                           the connect (the cost of a first command on a new connection)\n"
        "  -p, --path PATH          get: the file to download, relative to ferryd's --root\n"
        "      --remote-dir DIR     put: the directory under ferryd's --root the files go to\n"
        "                           (default: the root itself)\n"
        "      --seed N             put: the seed of the file's pseudo-random content (default 0)\n"
        "      --checksum ALG       put, get: xxh3-128 (default) or sha256\n"
        "      --json               print one JSON object instead of the summary\n"
        "  -h, --help               show this help\n"
        "  -V, --version            show the version\n"
        "\n"
        "In exec mode a command that exits non-zero or is killed still completes its round\n"
        "trip (timed and counted) and is counted as an error.  In put and get modes a request\n"
        "is one whole transfer, and a transfer whose checksum does not match is an error, not\n"
        "a transfer.  Against ferryd, --hold N needs ferryd --max-conns and --max-unauth above N.\n"
        "\n"
        "Exit status: 0 when every request and connection succeeded, 1 when any failed\n"
        "(the report is still printed), 2 for a bad command line.\n",
        BENCH_MAX_SECONDS);
}

static int bad_value(const char *opt, const char *text)
{
    fprintf(stderr, "ferry-bench: bad value for %s: '%s' (try --help)\n", opt, text);
    return -1;
}

static int parse_u64(const char *opt, const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long v;

    errno = 0;
    if (text[0] < '0' || text[0] > '9')
        return bad_value(opt, text);
    v = strtoull(text, &end, 10);
    if (errno || *end || v < min || v > max)
        return bad_value(opt, text);
    *out = v;
    return 0;
}

static int parse_unsigned(const char *opt, const char *text, unsigned min, unsigned max, unsigned *out)
{
    uint64_t v;

    if (parse_u64(opt, text, min, max, &v) < 0)
        return -1;
    *out = (unsigned)v;
    return 0;
}

/* A byte count with an optional K, M, G or T suffix (powers of 1024, as
 * head -c takes them). */
static int parse_size(const char *opt, const char *text, uint64_t max, uint64_t *out)
{
    static const char units[] = "KMGT";
    char digits[32], *end;
    const char *u;
    size_t n = strlen(text);
    uint64_t v;
    int shift = 0;

    /* n > 0: text[n - 1] is not the NUL that strchr would also find. */
    if (n > 0 && n < sizeof digits && (u = strchr(units, text[n - 1])) != NULL) {
        shift = 10 * (int)(u - units + 1);
        memcpy(digits, text, n - 1);
        digits[n - 1] = '\0';
        /* Quiet: a complaint names the whole text, suffix included. */
        if (digits[0] < '0' || digits[0] > '9')
            return bad_value(opt, text);
        errno = 0;
        v = strtoull(digits, &end, 10);
        if (errno || *end || v > max >> shift)
            return bad_value(opt, text);
        *out = v << shift;
        return 0;
    }
    return parse_u64(opt, text, 0, max, out);
}

static int parse_seconds(const char *opt, const char *text, double min, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(text, &end);
    if (errno || end == text || *end || !isfinite(v) || v < min || v > 86400.0)
        return bad_value(opt, text);
    *out = v;
    return 0;
}

/* Returns 0, 1 after --help/--version, or -1 after a message (exit 2). */
static int parse_args(int argc, char **argv, struct bench_opts *o)
{
    static const struct option longopts[] = {
        { "connections", required_argument, NULL, 'c' },
        { "threads", required_argument, NULL, 't' },
        { "size", required_argument, NULL, 's' },
        { "duration", required_argument, NULL, 'd' },
        { "requests", required_argument, NULL, 'n' },
        { "warmup", required_argument, NULL, 'w' },
        { "hold", required_argument, NULL, OPT_HOLD },
        { "connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT },
        { "json", no_argument, NULL, OPT_JSON },
        { "key-file", required_argument, NULL, 'k' },
        { "insecure-no-auth", no_argument, NULL, OPT_NO_AUTH },
        { "fresh", no_argument, NULL, OPT_FRESH },
        { "path", required_argument, NULL, 'p' },
        { "remote-dir", required_argument, NULL, OPT_REMOTE_DIR },
        { "seed", required_argument, NULL, OPT_SEED },
        { "checksum", required_argument, NULL, OPT_CHECKSUM },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    int opt, conns_given = 0, size_given = 0, seed_given = 0, alg_given = 0;
    uint64_t size = 64;

    while ((opt = getopt_long(argc, argv, "c:t:s:d:n:w:k:p:hV", longopts, NULL)) != -1) {
        int r = 0;

        switch (opt) {
        case 'c': r = parse_unsigned("-c", optarg, 0, MAX_CONNS, &o->conns); conns_given = 1; break;
        case 't': r = parse_unsigned("-t", optarg, 1, MAX_THREADS, &o->threads); break;
        case 's': r = parse_size("-s", optarg, MAX_PUT_SIZE, &size); size_given = 1; break;
        case 'd': r = parse_seconds("-d", optarg, 0.001, &o->duration); break;
        case 'n': r = parse_u64("-n", optarg, 1, MAX_REQUESTS, &o->requests); break;
        case 'w': r = parse_seconds("--warmup", optarg, 0.0, &o->warmup); break;
        case OPT_HOLD: r = parse_unsigned("--hold", optarg, 0, MAX_CONNS, &o->hold); break;
        case OPT_CONNECT_TIMEOUT: r = parse_seconds("--connect-timeout", optarg, 0.001, &o->connect_timeout); break;
        case OPT_JSON: o->json = 1; break;
        case 'k': o->key_path = optarg; break;
        case OPT_NO_AUTH: o->hs.allow_none = 1; break;
        case OPT_FRESH: o->fresh = 1; break;
        case 'p': o->xfer.path = optarg; break;
        case OPT_REMOTE_DIR: o->xfer.remote_dir = optarg; break;
        case OPT_SEED: r = parse_u64("--seed", optarg, 0, UINT64_MAX, &o->xfer.seed); seed_given = 1; break;
        case OPT_CHECKSUM:
            r = digest_parse(optarg, &o->xfer.alg) < 0 ? bad_value("--checksum", optarg) : 0;
            alg_given = 1;
            break;
        case 'h': usage(stdout); return 1;
        case 'V': printf("ferry-bench (ferry) %s\n", FERRY_VERSION); return 1;
        default:
            fprintf(stderr, "ferry-bench: try --help\n");
            return -1;
        }
        if (r < 0)
            return -1;
    }
    if (argc - optind < 2) {
        fprintf(stderr, "ferry-bench: expected MODE and ADDR (try --help)\n");
        return -1;
    }
    o->target = argv[optind + 1];
    o->cmd = argv + optind + 2;
    o->cmd_len = argc - optind - 2;
    if (strcmp(argv[optind], "echo") == 0) {
        o->mode = MODE_ECHO;
    } else if (strcmp(argv[optind], "frame") == 0) {
        o->mode = MODE_FRAME;
    } else if (strcmp(argv[optind], "hold") == 0) {
        o->mode = MODE_HOLD;
    } else if (strcmp(argv[optind], "exec") == 0) {
        o->mode = MODE_EXEC;
    } else if (strcmp(argv[optind], "put") == 0) {
        o->mode = MODE_PUT;
    } else if (strcmp(argv[optind], "get") == 0) {
        o->mode = MODE_GET;
    } else {
        fprintf(stderr, "ferry-bench: unknown mode '%s' (echo, frame, hold, exec, put or get)\n",
                argv[optind]);
        return -1;
    }
    if (o->mode != MODE_PUT && size > MAX_SIZE) {
        fprintf(stderr, "ferry-bench: -s is at most %u bytes outside put mode\n", MAX_SIZE);
        return -1;
    }
    if (o->mode == MODE_PUT && !size_given)
        size = DEFAULT_PUT_SIZE;
    o->size = (size_t)size;
    o->session = o->key_path || o->hs.allow_none;
    if (o->cmd_len > 0 && o->mode != MODE_EXEC) {
        fprintf(stderr, "ferry-bench: a command (after MODE ADDR) is for exec mode only\n");
        return -1;
    }
    if (o->session && (o->mode == MODE_ECHO || o->mode == MODE_FRAME)) {
        fprintf(stderr, "ferry-bench: -k and --insecure-no-auth are for ferryd (exec, put, get and hold modes)\n");
        return -1;
    }
    if ((o->mode == MODE_EXEC || MODE_IS_XFER(o->mode)) && !o->session) {
        fprintf(stderr, "ferry-bench: %s mode needs ferryd's key (-k FILE) or --insecure-no-auth\n",
                argv[optind]);
        return -1;
    }
    if (o->fresh && o->mode != MODE_EXEC) {
        fprintf(stderr, "ferry-bench: --fresh is for exec mode\n");
        return -1;
    }
    if ((o->mode == MODE_EXEC || o->mode == MODE_GET) && size_given) {
        fprintf(stderr, "ferry-bench: -s has no meaning in %s mode%s\n", argv[optind],
                o->mode == MODE_GET ? " (the file's size is the server's)" : "");
        return -1;
    }
    if (o->mode == MODE_EXEC || o->mode == MODE_GET)
        o->size = 0;
    if (o->mode == MODE_GET && !o->xfer.path) {
        fprintf(stderr, "ferry-bench: get mode needs -p PATH, a file under ferryd's --root\n");
        return -1;
    }
    if (o->xfer.path && o->mode != MODE_GET) {
        fprintf(stderr, "ferry-bench: -p is for get mode\n");
        return -1;
    }
    if ((o->xfer.remote_dir || seed_given) && o->mode != MODE_PUT) {
        fprintf(stderr, "ferry-bench: --remote-dir and --seed are for put mode\n");
        return -1;
    }
    if (alg_given && !MODE_IS_XFER(o->mode)) {
        fprintf(stderr, "ferry-bench: --checksum is for put and get modes\n");
        return -1;
    }
    if ((o->xfer.path && strlen(o->xfer.path) > MAX_REMOTE_PATH) ||
        (o->xfer.remote_dir && strlen(o->xfer.remote_dir) > MAX_REMOTE_PATH)) {
        fprintf(stderr, "ferry-bench: a remote path is at most %u bytes\n", MAX_REMOTE_PATH);
        return -1;
    }

    if (o->mode == MODE_HOLD) {
        if ((conns_given && o->conns > 0) || o->requests) {
            fprintf(stderr, "ferry-bench: hold mode makes no requests; use echo, frame or exec with --hold for both\n");
            return -1;
        }
        if (o->hold == 0) {
            fprintf(stderr, "ferry-bench: hold mode needs --hold N\n");
            return -1;
        }
        o->conns = 0;
    } else {
        if (!conns_given)
            o->conns = 1;
        if (o->conns == 0 && o->hold == 0) {
            fprintf(stderr, "ferry-bench: nothing to do: -c 0 and no --hold\n");
            return -1;
        }
        if (o->conns == 0 && o->requests) {
            fprintf(stderr, "ferry-bench: -n needs active connections (-c)\n");
            return -1;
        }
        if (o->mode == MODE_ECHO && o->size == 0) {
            fprintf(stderr, "ferry-bench: echo mode needs -s of at least 1 byte\n");
            return -1;
        }
    }
    if (o->duration == 0 && o->requests == 0)
        o->duration = 10.0;
    if (ferry_addr_parse(o->target, -1, &o->addr) < 0) {
        fprintf(stderr, "ferry-bench: bad or unknown address '%s' (HOST:PORT, [V6]:PORT or unix:/PATH)\n",
                o->target);
        return -1;
    }
    return 0;
}

/* One descriptor per connection plus a few: raise the soft limit (and the
 * hard one, which only a privileged process may do) or say plainly why
 * the run cannot have them. */
static int raise_nofile(const struct bench_opts *o)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)o->conns + o->hold + SPARE_FDS;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        fprintf(stderr, "ferry-bench: getrlimit(RLIMIT_NOFILE): %s\n", strerror(errno));
        return -1;
    }
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
        return 0;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
        struct rlimit want = { need, need };

        if (setrlimit(RLIMIT_NOFILE, &want) == 0)
            return 0;
        fprintf(stderr, "ferry-bench: %u connections need %llu descriptors but the hard limit "
                "(RLIMIT_NOFILE) is %llu; raise it (ulimit -Hn as root, LimitNOFILE= for a "
                "service) or ask for fewer\n", o->conns + o->hold,
                (unsigned long long)need, (unsigned long long)rl.rlim_max);
        return -1;
    }
    rl.rlim_cur = need;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
        fprintf(stderr, "ferry-bench: setrlimit(RLIMIT_NOFILE, %llu): %s\n",
                (unsigned long long)need, strerror(errno));
        return -1;
    }
    return 0;
}

/* Encode the one request every connection sends, once. */
static int build_request(const struct bench_opts *o, struct bench_shared *sh, uint8_t **buf)
{
    uint8_t *head = NULL, *req = NULL;
    size_t head_len = 0;
    json_t *hdr = NULL;
    int r = 0;

    *buf = NULL;
    /* put and get send what bench_xfer.c made (bench_xfer_shared), never this. */
    if (MODE_IS_XFER(o->mode))
        return 0;
    if (o->mode == MODE_FRAME || o->mode == MODE_EXEC) {
        hdr = o->mode == MODE_EXEC ? bench_exec_request(o->cmd, o->cmd_len) : json_pack("{s:s}", "type", "echo");
        if (!hdr) {
            r = -ENOMEM;
            goto out;
        }
        r = ferry_frame_encode(hdr, o->size, NULL, &head, &head_len);
        if (r < 0)
            goto out;
    }
    req = malloc(head_len + o->size + 1);   /* +1: malloc(0) may return NULL */
    if (!req) {
        r = -ENOMEM;
        goto out;
    }
    if (head_len)
        memcpy(req, head, head_len);
    /* Lower-case letters, so an upper-casing echo visibly answers. */
    for (size_t i = 0; i < o->size; i++)
        req[head_len + i] = (uint8_t)('a' + i % 26);
    sh->req = req;
    sh->req_len = head_len + o->size;
    sh->req_hdr = head_len ? req + FERRY_FRAME_PREFIX_LEN : NULL;
    sh->req_hdr_len = head_len ? head_len - FERRY_FRAME_PREFIX_LEN : 0;
    sh->reply_len = o->size;
    *buf = req;
out:
    free(head);
    json_decref(hdr);
    return r;
}

/* Split n things over nw threads as evenly as possible: thread i's share. */
static unsigned share(unsigned n, unsigned nw, unsigned i)
{
    return n / nw + (i < n % nw ? 1u : 0u);
}

static int install_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    /* A second ^C kills at once, for a run that does not stop. */
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0)
        return -errno;
    return 0;
}

static double cpu_seconds(void)
{
    struct rusage ru;

    if (getrusage(RUSAGE_SELF, &ru) < 0)
        return 0.0;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
    struct bench_opts o = { .threads = 1, .connect_timeout = 10.0 };
    struct bench_shared sh;
    struct bench_xfer_shared xs;
    struct worker *w = NULL;
    uint8_t *req = NULL;
    unsigned nw, started = 0, active_threads = 0, cum = 0;
    uint64_t t_start;
    double cpu0;
    int r, status = 1;

    memset(&sh, 0, sizeof sh);
    memset(&xs, 0, sizeof xs);
    sh.go_fd = -1;
    sh.stop_fd = -1;
    r = parse_args(argc, argv, &o);
    if (r != 0)
        return r > 0 ? 0 : 2;
    sh.opts = &o;

    if (o.key_path) {
        struct errbuf err;

        if (keyfile_load(o.key_path, 1, &o.hs.key, &err) < 0) {
            fprintf(stderr, "ferry-bench: %s\n", err.msg);
            goto out;
        }
        o.hs.have_key = 1;
    }
    if (o.session) {
        r = bench_handshake_prepare(&o.hs);
        if (r < 0) {
            fprintf(stderr, "ferry-bench: cannot encode the handshake: %s\n", app_strerror(r));
            goto out;
        }
    }
    if (raise_nofile(&o) < 0)
        goto out;
    r = build_request(&o, &sh, &req);
    if (r < 0) {
        fprintf(stderr, "ferry-bench: cannot encode the request: %s\n", ferry_strerror(r));
        goto out;
    }
    if (MODE_IS_XFER(o.mode)) {
        /* Before the clock starts: making and hashing a large file takes
         * a while, and is not what is measured. */
        r = bench_xfer_shared_init(&xs, o.mode == MODE_PUT, o.size, &o.xfer);
        if (r < 0) {
            fprintf(stderr, "ferry-bench: cannot prepare the %s: %s\n",
                    o.mode == MODE_PUT ? "file to upload" : "request", ferry_strerror(r));
            goto out;
        }
        sh.xs = &xs;
    }
    sh.go_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    sh.stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (sh.go_fd < 0 || sh.stop_fd < 0) {
        fprintf(stderr, "ferry-bench: eventfd: %s\n", strerror(errno));
        goto out;
    }
    stop_fd = sh.stop_fd;
    r = install_signals();
    if (r < 0) {
        fprintf(stderr, "ferry-bench: sigaction: %s\n", strerror(-r));
        goto out;
    }

    /* No thread without a connection to look after. */
    nw = o.threads;
    if (nw > o.conns + o.hold)
        nw = o.conns + o.hold;
    w = calloc(nw, sizeof *w);
    if (!w) {
        fprintf(stderr, "ferry-bench: out of memory\n");
        goto out;
    }
    for (unsigned i = 0; i < nw; i++) {
        w[i].id = i;
        w[i].sh = &sh;
        w[i].epfd = -1;
        w[i].n_active = share(o.conns, nw, i);
        w[i].n_hold = share(o.hold, nw, i);
        w[i].first_conn = cum;
        /* -n is split in proportion to each thread's connections. */
        w[i].quota = UINT64_MAX;
        if (o.requests)
            w[i].quota = o.requests * (cum + w[i].n_active) / o.conns - o.requests * cum / o.conns;
        cum += w[i].n_active;
        if (w[i].n_active > 0)
            active_threads++;
    }
    atomic_init(&sh.burst_left, nw);
    atomic_init(&sh.active_left, active_threads);

    t_start = bench_now_ns();
    cpu0 = cpu_seconds();
    for (; started < nw; started++) {
        r = pthread_create(&w[started].thread, NULL, bench_loop_main, &w[started]);
        if (r != 0) {
            uint64_t one = 1;

            fprintf(stderr, "ferry-bench: cannot start thread %u: %s\n", started, strerror(r));
            /* Stand in for the threads that never ran, and stop the rest. */
            for (unsigned i = started; i < nw; i++)
                bench_loop_burst_done(&sh);
            if (write(sh.stop_fd, &one, sizeof one) < 0)
                fprintf(stderr, "ferry-bench: cannot stop the threads: %s\n", strerror(errno));
            break;
        }
    }
    for (unsigned i = 0; i < started; i++)
        pthread_join(w[i].thread, NULL);
    if (started < nw)
        goto out;
    status = bench_report(&o, &sh, w, nw, cpu_seconds() - cpu0, (double)(bench_now_ns() - t_start) / 1e9);

out:
    free(w);
    free(req);
    bench_xfer_shared_free(&xs);
    if (sh.go_fd >= 0)
        close(sh.go_fd);
    if (sh.stop_fd >= 0)
        close(sh.stop_fd);
    key_wipe(&o.hs.key);
    return status;
}
