/*
 * bench_report.c - ferry-bench's results: the threads' histograms and counters
 * merged, then printed as a short human summary or as one JSON object
 * (--json) for scripts such as bench/run.sh.  put and get runs keep the
 * same shape (a transfer is a request) and add a "transfer" object with
 * the bytes moved and the rates, in bytes/s, MB/s and GB/s (10^6, 10^9
 * bytes, as bench/throughput.py counts).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include "ferry/ferry.h"
#include "bench.h"

struct totals {
    struct bench_hist hist;
    uint64_t done;
    struct bench_tally req_err;      /* active: failed after connecting */
    struct bench_tally conn_err;     /* active: failed to connect */
    struct bench_tally hold_err;
    unsigned hold_connected, hold_dropped;
    double elapsed;            /* measured seconds */
    double connect_ms;         /* the burst, first connect issued to last completed */
    int fatal;                 /* the first thread's setup error, if any */
    uint64_t bytes;            /* put, get: file bytes of the measured transfers */
    uint64_t file_size;        /* ... the file's length */
    const char *checksum;      /* ... as last verified ("" if none was) */
    const char *server_error;  /* the first refusal ferryd explained ("" if none) */
};

static const char *mode_name(enum bench_mode m)
{
    switch (m) {
    case MODE_ECHO:  return "echo";
    case MODE_FRAME: return "frame";
    case MODE_HOLD:  return "hold";
    case MODE_EXEC:  return "exec";
    case MODE_PUT:   return "put";
    case MODE_GET:   return "get";
    }
    return "?";
}

static void merge(const struct bench_opts *o, const struct worker *w, unsigned nw, struct totals *t)
{
    uint64_t meas_start = UINT64_MAX, meas_end = 0;
    uint64_t burst_start = UINT64_MAX, burst_end = 0;

    t->checksum = "";
    t->server_error = "";
    for (unsigned i = 0; i < nw; i++) {
        t->bytes += w[i].bytes;
        if (w[i].file_size > t->file_size)
            t->file_size = w[i].file_size;
        if (!t->checksum[0])
            t->checksum = w[i].checksum;
        if (!t->server_error[0])
            t->server_error = w[i].server_error;
        bench_hist_merge(&t->hist, &w[i].hist);
        t->done += w[i].done;
        bench_tally_merge(&t->req_err, &w[i].req_err);
        bench_tally_merge(&t->conn_err, &w[i].conn_err);
        bench_tally_merge(&t->hold_err, &w[i].hold_err);
        t->hold_connected += w[i].hold_connected;
        t->hold_dropped += w[i].hold_dropped;
        if (w[i].fatal && !t->fatal)
            t->fatal = w[i].fatal;
        /* Measured time spans the threads that made requests (all of them
         * when none did: a hold run measures how long it held). */
        if (w[i].t_meas_end > 0 && (w[i].n_active > 0 || o->conns == 0)) {
            if (w[i].t_meas_start < meas_start)
                meas_start = w[i].t_meas_start;
            if (w[i].t_meas_end > meas_end)
                meas_end = w[i].t_meas_end;
        }
        if (w[i].n_hold > 0) {
            if (w[i].t_burst_start < burst_start)
                burst_start = w[i].t_burst_start;
            if (w[i].t_burst_end > burst_end)
                burst_end = w[i].t_burst_end;
        }
    }
    if (meas_end > meas_start)
        t->elapsed = (double)(meas_end - meas_start) / 1e9;
    if (burst_end > burst_start)
        t->connect_ms = (double)(burst_end - burst_start) / 1e6;
}

static double us(uint64_t ns)
{
    return (double)ns / 1e3;
}

/* What a connection does before it counts as connected. */
static const char *auth_name(const struct bench_opts *o)
{
    if (!o->session)
        return "none (not ferryd)";
    if (o->hs.have_key && o->hs.allow_none)
        return "hmac-sha256 or none";
    return o->hs.have_key ? "hmac-sha256" : "none";
}

static json_t *tally_json(const struct bench_tally *t)
{
    json_t *o = json_object();

    for (unsigned i = 0; o && i < t->used; i++)
        json_object_set_new(o, bench_tally_name(t->code[i]), json_integer((json_int_t)t->n[i]));
    return o;
}

static void tally_text(const char *label, const struct bench_tally *t)
{
    if (t->total == 0)
        return;
    printf("  %-12s %" PRIu64 " (", label, t->total);
    for (unsigned i = 0; i < t->used; i++)
        printf("%s%s %" PRIu64, i ? ", " : "", bench_tally_name(t->code[i]), t->n[i]);
    printf(")\n");
}

static double per_s(double v, double seconds)
{
    return seconds > 0 ? v / seconds : 0.0;
}

/* The file's length as the run knows it: -s for put, the server's for get. */
static uint64_t file_size(const struct bench_opts *o, const struct totals *t)
{
    return o->mode == MODE_PUT ? (uint64_t)o->size : t->file_size;
}

/* put, get: what moved, how fast, and which names it went under. */
static json_t *transfer_json(const struct bench_opts *o, const struct bench_shared *sh,
                             const struct totals *t)
{
    const struct bench_xfer_shared *xs = sh->xs;
    const char *sum = o->mode == MODE_PUT ? xs->sum : t->checksum;
    json_t *x, *paths = NULL;
    char name[4096 + 64];

    x = json_pack("{s:s, s:I, s:I, s:f, s:f, s:f, s:s, s:o}",
                  "direction", mode_name(o->mode),
                  "file_size", (json_int_t)file_size(o, t),
                  "bytes", (json_int_t)t->bytes,
                  "bytes_per_s", per_s((double)t->bytes, t->elapsed),
                  "mb_per_s", per_s((double)t->bytes, t->elapsed) / 1e6,
                  "gb_per_s", per_s((double)t->bytes, t->elapsed) / 1e9,
                  "checksum_alg", digest_name(xs->alg),
                  "checksum", sum[0] ? json_string(sum) : json_null());
    if (!x)
        return NULL;
    if (o->mode == MODE_GET) {
        if (json_object_set_new(x, "path", json_string(o->xfer.path)) < 0)
            goto fail;
        return x;
    }
    if (json_object_set_new(x, "seed", json_integer((json_int_t)o->xfer.seed)) < 0)
        goto fail;
    paths = json_array();
    if (!paths || json_object_set_new(x, "paths", paths) < 0)
        goto fail;
    for (unsigned i = 0; i < o->conns; i++) {
        bench_xfer_put_path(xs, i, name, sizeof name);
        if (json_array_append_new(paths, json_string(name)) < 0)
            goto fail;
    }
    return x;
fail:
    json_decref(x);
    return NULL;
}

static json_t *latency_json(const struct bench_hist *h)
{
    if (h->count == 0)
        return json_null();
    return json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:f}",
                     "min", us(h->min),
                     "mean", us(h->sum / h->count),
                     "p50", us(bench_hist_percentile(h, 50.0)),
                     "p90", us(bench_hist_percentile(h, 90.0)),
                     "p99", us(bench_hist_percentile(h, 99.0)),
                     "p99_9", us(bench_hist_percentile(h, 99.9)),
                     "max", us(h->max));
}

static int print_json(const struct bench_opts *o, const struct bench_shared *sh,
                      const struct totals *t, unsigned nw, double cpu_percent)
{
    json_t *root, *hold = NULL, *xfer = NULL;
    int r = -1;

    root = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:f, s:f, s:I, s:o, s:f, s:I, s:o, s:o, s:o, s:f}",
                     "tool", "ferry-bench",
                     "version", FERRY_VERSION,
                     "mode", mode_name(o->mode),
                     "target", o->target,
                     "connections", (json_int_t)o->conns,
                     "threads", (json_int_t)nw,
                     "size", (json_int_t)(MODE_IS_XFER(o->mode) ? file_size(o, t) : o->size),
                     "warmup_s", o->warmup,
                     "duration_s", t->elapsed,
                     "requests", (json_int_t)t->done,
                     "requests_asked", o->requests ? json_integer((json_int_t)o->requests) : json_null(),
                     "requests_per_s", t->elapsed > 0 ? (double)t->done / t->elapsed : 0.0,
                     "errors", (json_int_t)(t->req_err.total + t->conn_err.total),
                     "request_errors", tally_json(&t->req_err),
                     "connect_errors", tally_json(&t->conn_err),
                     "latency_us", latency_json(&t->hist),
                     "cpu_percent", cpu_percent);
    if (!root)
        goto out;
    if (json_object_set_new(root, "auth", json_string(auth_name(o))) < 0 ||
        json_object_set_new(root, "fresh", json_boolean(o->fresh)) < 0)
        goto out;
    if (o->hold > 0) {
        hold = json_pack("{s:I, s:I, s:I, s:o, s:f, s:I, s:I}",
                         "requested", (json_int_t)o->hold,
                         "connected", (json_int_t)t->hold_connected,
                         "failed", (json_int_t)t->hold_err.total,
                         "failures", tally_json(&t->hold_err),
                         "connect_ms", t->connect_ms,
                         "dropped", (json_int_t)t->hold_dropped,
                         "held", (json_int_t)(t->hold_connected - t->hold_dropped));
        if (!hold || json_object_set_new(root, "hold", hold) < 0)
            goto out;
    }
    if (MODE_IS_XFER(o->mode)) {
        xfer = transfer_json(o, sh, t);
        if (!xfer || json_object_set_new(root, "transfer", xfer) < 0)
            goto out;
    }
    if (json_dumpf(root, stdout, JSON_COMPACT) < 0 || putchar('\n') == EOF)
        goto out;
    r = 0;
out:
    json_decref(root);
    return r;
}

static uint64_t tally_count(const struct bench_tally *t, int code)
{
    for (unsigned i = 0; i < t->used; i++)
        if (t->code[i] == code)
            return t->n[i];
    return 0;
}

/* One line on stderr per kind of ferryd failure that has a plain cause.
 * Returns how many lines it printed. */
static int explain(const struct bench_opts *o, const struct totals *t)
{
    const struct bench_tally *all[] = { &t->conn_err, &t->req_err, &t->hold_err };
    uint64_t refused = 0, badproof = 0, mismatch = 0, tls = 0, eof = 0, status = 0, sums, errframes;
    int lines;

    for (unsigned i = 0; i < sizeof all / sizeof all[0]; i++) {
        refused += tally_count(all[i], FERRY_EAUTH);
        badproof += tally_count(all[i], FERRY_EBADPROOF);
        mismatch += tally_count(all[i], FERRY_EAUTH_MISMATCH);
        tls += tally_count(all[i], FERRY_ETLS_REQUIRED);
        status += tally_count(all[i], FERRY_EEXIT_STATUS) + tally_count(all[i], FERRY_EEXIT_SIGNAL);
    }
    eof = tally_count(&t->conn_err, FERRY_EEOF) + tally_count(&t->hold_err, FERRY_EEOF);
    sums = tally_count(&t->req_err, FERRY_ECHECKSUM);
    errframes = tally_count(&t->req_err, FERRY_EREMOTE);
    lines = (refused > 0) + (badproof > 0) + (mismatch > 0) + (tls > 0) + (eof && o->session) + (status > 0) +
            (sums > 0) + (errframes && t->server_error[0]);
    if (refused)
        fprintf(stderr, "ferry-bench: authentication failed on %" PRIu64 " connection%s: ferryd "
                "refused the key in %s (not the server's key?)\n", refused, refused == 1 ? "" : "s",
                o->key_path ? o->key_path : "(none)");
    if (badproof)
        fprintf(stderr, "ferry-bench: the server's proof was wrong on %" PRIu64 " connection%s: "
                "it does not hold the key in %s\n", badproof, badproof == 1 ? "" : "s", o->key_path);
    if (mismatch)
        fprintf(stderr, "ferry-bench: %" PRIu64 " connection%s not authenticated: %s\n", mismatch,
                mismatch == 1 ? "" : "s", o->hs.have_key
                ? "the server runs without authentication (add --insecure-no-auth)"
                : "the server wants a key (-k FILE)");
    if (tls)
        fprintf(stderr, "ferry-bench: ferryd requires TLS (%" PRIu64 " connection%s refused); ferry-bench "
                "speaks the plaintext protocol only: start ferryd with --plaintext\n", tls,
                tls == 1 ? "" : "s");
    if (eof && o->session)
        fprintf(stderr, "ferry-bench: ferryd closed %" PRIu64 " connection%s before the handshake "
                "ended (its --max-conns or --max-unauth too low?)\n", eof, eof == 1 ? "" : "s");
    if (status)
        fprintf(stderr, "ferry-bench: %" PRIu64 " command%s failed (non-zero exit status or a signal)\n",
                status, status == 1 ? "" : "s");
    if (sums)
        fprintf(stderr, "ferry-bench: %" PRIu64 " %s failed %s checksum check: %s\n", sums,
                o->mode == MODE_GET ? (sums == 1 ? "download" : "downloads") : (sums == 1 ? "upload" : "uploads"),
                sums == 1 ? "its" : "their",
                o->mode == MODE_GET ? "the bytes that arrived are not the server's file"
                                    : "ferryd did not store what was sent");
    if (errframes && t->server_error[0])
        fprintf(stderr, "ferry-bench: ferryd refused %" PRIu64 " %s%s%s: %s\n", errframes,
                MODE_IS_XFER(o->mode) ? "transfer" : "request", errframes == 1 ? "" : "s",
                errframes == 1 ? "" : " (the first said)", t->server_error);
    return lines;
}

/* put, get: the first line's description of the file. */
static void print_file(const struct bench_opts *o, const struct bench_shared *sh,
                       const struct totals *t)
{
    char name[4096 + 64];

    if (o->mode == MODE_GET) {
        if (t->done > 0)
            printf(", %s (%" PRIu64 " bytes, %s)", o->xfer.path, t->file_size, digest_name(sh->xs->alg));
        else
            printf(", %s (%s)", o->xfer.path, digest_name(sh->xs->alg));
        return;
    }
    bench_xfer_put_path(sh->xs, 0, name, sizeof name);
    printf(", %zu-byte file (%s) as %s", o->size, digest_name(sh->xs->alg), name);
    if (o->conns > 1)
        printf(" ... bench-put-%u.bin", o->conns - 1);
}

static void print_text(const struct bench_opts *o, const struct bench_shared *sh,
                       const struct totals *t, unsigned nw, double cpu_percent)
{
    const struct bench_hist *h = &t->hist;
    int xfer = MODE_IS_XFER(o->mode);
    /* Transfers take milliseconds to seconds: their latencies read better in ms. */
    double unit = xfer ? 1e6 : 1e3;

    printf("ferry-bench %s %s: ", mode_name(o->mode), o->target);
    if (o->conns > 0)
        printf("%u connection%s, ", o->conns, o->conns == 1 ? "" : "s");
    printf("%u thread%s", nw, nw == 1 ? "" : "s");
    if (o->mode == MODE_EXEC)
        printf(", %s", o->fresh ? "a fresh connection per command" : "warm sessions");
    else if (xfer)
        print_file(o, sh, t);
    else if (o->mode != MODE_HOLD)
        printf(", %zu-byte %s", o->size, o->mode == MODE_FRAME ? "bodies" : "messages");
    if (o->session)
        printf(", auth %s", auth_name(o));
    printf(", %.2f s measured", t->elapsed);
    if (o->warmup > 0)
        printf(" after %.2f s warmup", o->warmup);
    printf("\n");
    if (o->conns > 0) {
        printf("  %-12s %" PRIu64, xfer ? "transfers" : "requests", t->done);
        if (o->requests)
            printf(" of %" PRIu64, o->requests);
        printf(xfer ? " (%.2f/s)\n" : " (%.0f/s)\n", per_s((double)t->done, t->elapsed));
        if (xfer)
            printf("  throughput   %.3f GB/s  (%.1f MB/s, %" PRIu64 " bytes in %.2f s)\n",
                   per_s((double)t->bytes, t->elapsed) / 1e9, per_s((double)t->bytes, t->elapsed) / 1e6,
                   t->bytes, t->elapsed);
        if (h->count > 0)
            printf("  latency %s   p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  (min %.1f, mean %.1f, max %.1f)\n",
                   xfer ? "ms" : "us",
                   (double)bench_hist_percentile(h, 50.0) / unit, (double)bench_hist_percentile(h, 90.0) / unit,
                   (double)bench_hist_percentile(h, 99.0) / unit, (double)bench_hist_percentile(h, 99.9) / unit,
                   (double)h->min / unit, (double)(h->sum / h->count) / unit, (double)h->max / unit);
        printf("  errors       %" PRIu64 "\n", t->req_err.total + t->conn_err.total);
        tally_text("  requests", &t->req_err);
        tally_text("  connects", &t->conn_err);
    }
    if (o->hold > 0) {
        printf("  hold         %u requested, %u connected in %.1f ms, %" PRIu64 " failed, %u dropped, %u held to the end\n",
               o->hold, t->hold_connected, t->connect_ms, t->hold_err.total, t->hold_dropped,
               t->hold_connected - t->hold_dropped);
        tally_text("  failures", &t->hold_err);
    }
    printf("  cpu          %.0f%% of one core (ferry-bench itself)\n", cpu_percent);
}

int bench_report(const struct bench_opts *o, const struct bench_shared *sh, const struct worker *w,
           unsigned nw, double cpu_seconds, double wall_seconds)
{
    struct totals *t;
    double cpu_percent = wall_seconds > 0 ? 100.0 * cpu_seconds / wall_seconds : 0.0;
    int failed, explained, out_err = 0;

    /* The merged histogram is 35 KiB: not for the stack. */
    t = calloc(1, sizeof *t);
    if (!t) {
        fprintf(stderr, "ferry-bench: out of memory\n");
        return 1;
    }
    bench_hist_init(&t->hist);
    merge(o, w, nw, t);
    if (o->json) {
        out_err = print_json(o, sh, t, nw, cpu_percent);
        if (out_err < 0)
            fprintf(stderr, "ferry-bench: cannot write the JSON report\n");
    } else {
        print_text(o, sh, t, nw, cpu_percent);
    }
    if (fflush(stdout) == EOF) {
        fprintf(stderr, "ferry-bench: stdout: write failed\n");
        out_err = -1;
    }
    explained = explain(o, t);
    if (t->fatal)
        fprintf(stderr, "ferry-bench: a thread stopped early: %s\n", ferry_strerror(t->fatal));
    /* Not after a line that already says why (a wrong key is one line). */
    if (o->requests && t->done < o->requests && !explained)
        fprintf(stderr, "ferry-bench: only %" PRIu64 " of %" PRIu64 " requests completed\n",
                t->done, o->requests);
    failed = out_err || t->fatal || t->req_err.total || t->conn_err.total || t->hold_err.total ||
             t->hold_dropped || (o->requests && t->done < o->requests) ||
             (o->conns > 0 && t->done == 0);
    free(t);
    return failed ? 1 : 0;
}
