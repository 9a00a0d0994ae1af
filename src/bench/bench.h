/*
 * bench.h - what ferry-bench's parts share: the options of a run, and the
 * per-thread worker that main.c starts, bench_loop.c runs (its connections
 * in bench_conn.c and bench_request.c) and bench_report.c sums.
 *
 * A run has two phases.  First every thread opens its share of the --hold
 * connections in one burst and waits until each has connected or failed;
 * then, once every thread is through its burst, its share of the -c
 * active connections run request/response while the held ones stay open.
 * Against ferryd (exec, put and get modes, or -k) a connection counts as
 * connected only once it has also completed the handshake
 * (bench_handshake.h).
 * In put and get modes a "request" is one whole file transfer
 * (bench_xfer.h).
 */
#ifndef FERRY_BENCH_BENCH_H
#define FERRY_BENCH_BENCH_H

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "ferry/addr.h"
#include "bench_hist.h"
#include "bench_handshake.h"
#include "bench_tally.h"
#include "bench_xfer.h"

enum bench_mode { MODE_ECHO, MODE_FRAME, MODE_HOLD, MODE_EXEC, MODE_PUT, MODE_GET };

/* put and get: the file modes, run by bench_xfer.c through bench_request.c. */
#define MODE_IS_XFER(m) ((m) == MODE_PUT || (m) == MODE_GET)

/* With -n and no -d, a run still ends after this long. */
#define BENCH_MAX_SECONDS 600.0

struct bench_opts {
    enum bench_mode mode;
    const char *target;          /* ADDR as given */
    struct ferry_addr addr;      /* ADDR resolved, once */
    unsigned conns;              /* -c: active connections */
    unsigned threads;            /* -t */
    unsigned hold;               /* --hold: idle connections */
    size_t size;                 /* -s: message (echo), body (frame) or file (put) bytes */
    uint64_t requests;           /* -n: measured requests; 0 = bounded by time only */
    double duration;             /* -d seconds; 0 = not given */
    double warmup;               /* --warmup seconds */
    double connect_timeout;      /* seconds a connect (and handshake) may take */
    int json;
    int session;                 /* every connection first authenticates to ferryd */
    int fresh;                   /* exec: a new connection and handshake per request */
    const char *key_path;        /* -k */
    struct bench_hs_config hs;   /* the key, loaded once */
    char **cmd;                  /* exec: the command after --, argv style */
    int cmd_len;                 /* ... 0: the default shell line "true" */
    struct bench_xfer_opts xfer;       /* put and get: -p, --remote-dir, --seed, --checksum */
};

/* What every thread shares: read-only after start, except the counters. */
struct bench_shared {
    const struct bench_opts *opts;
    const uint8_t *req;          /* one request, encoded once */
    size_t req_len;
    const uint8_t *req_hdr;      /* frame mode: the request's JSON header */
    size_t req_hdr_len;
    size_t reply_len;            /* echo mode: bytes that make a whole reply */
    const struct bench_xfer_shared *xs; /* put and get: content, checksum, encoded messages */
    int go_fd;                   /* eventfd: readable once every burst is over */
    int stop_fd;                 /* eventfd: readable when every thread must stop */
    atomic_uint burst_left;      /* threads still in their hold burst */
    atomic_uint active_left;     /* threads still running active connections */
};

struct worker {
    unsigned id;
    struct bench_shared *sh;
    pthread_t thread;
    int epfd;
    uint8_t *scratch;            /* receive buffer, shared by this thread's connections */
    size_t scratch_len;          /* its size: larger in put and get modes */
    unsigned first_conn;         /* global number of this thread's first active connection */

    unsigned n_active, n_hold;
    struct bench_active_conn *active;
    struct bench_hold_conn *held;
    struct bench_handshake *hold_hs; /* with --hold against ferryd: held[i]'s handshake */

    uint64_t quota;              /* measured requests this thread may start */
    uint64_t issued;             /* measured requests started */
    unsigned live;               /* active connections not yet dead */
    unsigned connecting;         /* active connections still connecting (or authenticating) */
    unsigned inflight;           /* requests sent and not yet answered */
    unsigned hold_pending;       /* held connections still connecting (or authenticating) */
    uint64_t t_end;              /* no request starts at or after this */

    /* Results, read by main after the thread is joined. */
    struct bench_hist hist;
    uint64_t done;               /* measured requests completed */
    uint64_t bytes;              /* put and get: file bytes of the measured transfers */
    uint64_t file_size;          /* ... the file's length, as last transferred */
    char checksum[DIGEST_HEX_MAX]; /* ... its checksum, as last verified */
    char server_error[256];      /* the first refusal ferryd explained, for the report */
    struct bench_tally req_err;        /* active connections that failed after connecting */
    struct bench_tally conn_err;       /* active connections' connects that failed */
    struct bench_tally hold_err;       /* held connections' connects that failed */
    unsigned hold_connected;     /* held connections that connected */
    unsigned hold_dropped;       /* ... and were later closed by the peer */
    uint64_t t_burst_start;      /* first hold connect issued (ns, CLOCK_MONOTONIC) */
    uint64_t t_burst_end;        /* last hold connect completed */
    uint64_t t_meas_start;       /* warmup over: measured time starts */
    uint64_t t_meas_end;         /* measured time ends */
    int fatal;                   /* a setup error (negative errno) that ended the thread */
};

/* CLOCK_MONOTONIC in nanoseconds: read through the vDSO, and it cannot
 * fail with a valid clock id and pointer.  Here, not in bench_loop.c, so
 * the connection code below the loop does not call back up into it. */
static inline uint64_t bench_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t bench_seconds_ns(double s)
{
    return (uint64_t)llround(s * 1e9);
}

/* pthread entry point; arg is a struct worker. */
void *bench_loop_main(void *arg);

/* Count one thread out of the hold burst (also for a thread that never
 * started); the last one opens the active phase for all. */
int bench_loop_burst_done(struct bench_shared *sh);

/* Print the merged results (human text, or one JSON object with --json)
 * to stdout.  cpu_seconds is this process's user+system time over
 * wall_seconds.  Returns 0 when the run did what was asked (no failures,
 * the whole -n count), 1 otherwise. */
int bench_report(const struct bench_opts *o, const struct bench_shared *sh, const struct worker *w,
           unsigned nw, double cpu_seconds, double wall_seconds);

#endif
