/*
 * fleet_output.c - the output of `ferry exec -w` (fleet_output.h).
 *
 * Lines are assembled per host and stream, then written in batches of
 * whole lines (one write per batch, never a line split between two), so
 * hosts that write at the same time come out line by line.  --json writes
 * "stdout"/"stderr" as strings when the bytes are UTF-8, and as null with
 * "stdout_base64"/"stderr_base64" (the exact bytes) when they are not: no
 * byte is lost or replaced.
 */
#include "fleet_output.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "cli.h"
#include "fdio.h"
#include "hostlist.h"

#define BATCH_MAX (64 * 1024)

struct fleet_group {
    uint8_t *p;                 /* the output (stdout) these hosts share */
    size_t len;
    int truncated;
    uint64_t hash;
    const char **hosts;
    size_t n, cap;
};

/* Whole lines waiting for one write to fd. */
struct batch {
    struct fleet_out *o;
    int fd;
    size_t len;
    char b[BATCH_MAX];
};

void fleet_out_init(struct fleet_out *o, enum fleet_mode mode)
{
    *o = (struct fleet_out){ .mode = mode };
}

static void batch_flush(struct batch *b)
{
    int r;

    if (b->len == 0)
        return;
    if (b->fd == STDOUT_FILENO && !b->o->stdout_err) {
        r = fdio_write_all(STDOUT_FILENO, b->b, b->len, NULL);
        if (r < 0) {
            /* EPIPE (`ferry exec -w ... | head -1`) ends the run quietly
             * (fleet.c hangs up); anything else is said once. */
            b->o->stdout_err = -r;
            if (r != -EPIPE)
                cli_error("cannot write output: %s", strerror(-r));
        }
    } else if (b->fd == STDERR_FILENO && !b->o->stderr_dead) {
        if (fdio_write_all(STDERR_FILENO, b->b, b->len, NULL) < 0)
            b->o->stderr_dead = 1;
    }
    b->len = 0;
}

/* "HOST: " + line + "\n" into the batch, whole. */
static void emit_line(struct batch *b, const char *host, const uint8_t *p, size_t n)
{
    size_t hl = strlen(host), need = hl + 2 + n + 1;

    if (b->len + need > sizeof b->b)
        batch_flush(b);
    memcpy(b->b + b->len, host, hl);
    memcpy(b->b + b->len + hl, ": ", 2);
    memcpy(b->b + b->len + hl + 2, p, n);
    b->b[b->len + need - 1] = '\n';
    b->len += need;
}

static int buf_reserve(struct fleet_buf *f, size_t want)
{
    uint8_t *p;
    size_t cap;

    if (f->cap >= want)
        return 0;
    cap = f->cap ? f->cap : 4096;
    while (cap < want)
        cap *= 2;
    p = realloc(f->p, cap);
    if (!p)
        return -1;
    f->p = p;
    f->cap = cap;
    return 0;
}

/* Lines of p[0..n) after what f holds of the current one. */
static void take_lines(struct batch *b, struct fleet_buf *f, const char *host, const uint8_t *p,
                       size_t n)
{
    while (n > 0) {
        const uint8_t *nl = memchr(p, '\n', n);
        size_t seg = nl ? (size_t)(nl - p) : n;
        size_t room = FLEET_LINE_MAX - f->len;
        int ends = nl != NULL;

        if (seg > room) {
            seg = room;
            ends = 0;
        }
        if (f->len == 0 && ends) {
            emit_line(b, host, p, seg);   /* a whole line: no copy */
        } else {
            if (buf_reserve(f, FLEET_LINE_MAX) < 0) {
                emit_line(b, host, p, seg);   /* no memory: the piece as it is */
                seg = seg ? seg : 1;
                p += seg;
                n -= seg;
                continue;
            }
            memcpy(f->p + f->len, p, seg);
            f->len += seg;
            if (ends || f->len == FLEET_LINE_MAX) {
                emit_line(b, host, f->p, f->len);
                f->len = 0;
            }
        }
        p += seg;
        n -= seg;
        if (ends) {
            p++;
            n--;
        }
    }
}

/* Keep p[0..n) (-b, --json) up to FLEET_KEEP_MAX. */
static void keep(struct fleet_buf *f, const uint8_t *p, size_t n)
{
    size_t room = FLEET_KEEP_MAX - f->len;

    if (n > room) {
        n = room;
        f->truncated = 1;
    }
    if (n == 0)
        return;
    if (buf_reserve(f, f->len + n) < 0) {
        f->truncated = 1;
        return;
    }
    memcpy(f->p + f->len, p, n);
    f->len += n;
}

void fleet_out_data(struct fleet_out *o, struct fleet_hostout *h, const char *host, int stream,
                    const uint8_t *p, size_t n)
{
    struct batch *b;

    if (o->mode == FLEET_JSON || (o->mode == FLEET_GATHER && stream == 0)) {
        keep(&h->st[stream], p, n);
        return;
    }
    b = malloc(sizeof *b);
    if (!b)
        return;
    b->o = o;
    b->fd = stream ? STDERR_FILENO : STDOUT_FILENO;
    b->len = 0;
    take_lines(b, &h->st[stream], host, p, n);
    batch_flush(b);
    free(b);
}

void fleet_out_note(struct fleet_out *o, const char *host, const char *text)
{
    (void)o;
    cli_error("%s: %s", host, text);
}

void fleet_out_host_drop(struct fleet_hostout *h)
{
    for (int i = 0; i < 2; i++) {
        free(h->st[i].p);
        h->st[i] = (struct fleet_buf){ 0 };
    }
}

/* A stream as JSON: the text when it is UTF-8, else null and its bytes
 * in base64 under NAME_base64. */
static int json_stream(json_t *obj, const char *name, const struct fleet_buf *f)
{
    json_t *text = json_stringn(f->p ? (const char *)f->p : "", f->len);
    char b64name[32];
    unsigned char *enc;
    int r;

    if (text)
        return json_object_set_new(obj, name, text);
    enc = malloc(4 * ((f->len + 2) / 3) + 1);
    if (!enc)
        return -1;
    EVP_EncodeBlock(enc, f->p, (int)f->len);
    snprintf(b64name, sizeof b64name, "%s_base64", name);
    r = json_object_set_new(obj, name, json_null()) |
        json_object_set_new(obj, b64name, json_string((const char *)enc));
    free(enc);
    return r;
}

static void write_json(struct fleet_out *o, struct fleet_hostout *h, const struct fleet_result *r)
{
    json_t *obj = json_pack("{s:s, s:o, s:f, s:o}", "host", r->host,
                            "status", json_integer(r->status),
                            "duration", r->duration,
                            "error", r->error ? json_string(r->error) :
                                     !r->ran && r->why ? json_string(r->why) : json_null());
    char *line = NULL;

    if (obj && json_stream(obj, "stdout", &h->st[0]) == 0 &&
        json_stream(obj, "stderr", &h->st[1]) == 0 &&
        (!(h->st[0].truncated || h->st[1].truncated) ||
         json_object_set_new(obj, "truncated", json_true()) == 0))
        line = json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(6));
    json_decref(obj);
    if (!line) {
        cli_error("%s: out of memory", r->host);
        return;
    }
    if (!o->stdout_err) {
        size_t n = strlen(line);
        int w;

        line[n] = '\n';
        w = fdio_write_all(STDOUT_FILENO, line, n + 1, NULL);
        if (w < 0)
            o->stdout_err = -w;
    }
    free(line);
}

static uint64_t hash_bytes(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;

    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static void print_group(struct fleet_out *o, const struct fleet_group *g);

/* -b: the host's stdout joins the group with the same output. */
static void gather(struct fleet_out *o, struct fleet_buf *f, const char *host)
{
    uint64_t h = hash_bytes(f->p, f->len);
    struct fleet_group *g = NULL;

    if (f->len == 0)
        return;   /* nothing to show, as clush -b */
    for (size_t i = 0; i < o->ngroups && !g; i++)
        if (o->groups[i].hash == h && o->groups[i].len == f->len &&
            o->groups[i].truncated == f->truncated && memcmp(o->groups[i].p, f->p, f->len) == 0)
            g = &o->groups[i];
    if (!g && o->kept + f->len > FLEET_GATHER_TOTAL) {
        /* Memory stays bounded: a new output beyond what may be kept is
         * shown at once, under its own header. */
        struct fleet_group alone = { .p = f->p, .len = f->len, .truncated = f->truncated,
                                     .hosts = &host, .n = 1 };

        print_group(o, &alone);
        return;
    }
    if (!g) {
        if (o->ngroups == o->capgroups) {
            size_t cap = o->capgroups ? o->capgroups * 2 : 8;
            struct fleet_group *gs = realloc(o->groups, cap * sizeof *gs);

            if (!gs)
                goto oom;
            o->groups = gs;
            o->capgroups = cap;
        }
        g = &o->groups[o->ngroups++];
        *g = (struct fleet_group){ .p = f->p, .len = f->len, .truncated = f->truncated, .hash = h };
        f->p = NULL;   /* the group's now */
        o->kept += g->len;
    }
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 4;
        const char **hs = realloc(g->hosts, cap * sizeof *hs);

        if (!hs)
            goto oom;
        g->hosts = hs;
        g->cap = cap;
    }
    g->hosts[g->n++] = host;
    return;
oom:
    cli_error("%s: out of memory for its output", host);
}

void fleet_out_host_done(struct fleet_out *o, struct fleet_hostout *h, const struct fleet_result *r)
{
    struct batch *b;

    if (o->mode == FLEET_JSON) {
        write_json(o, h, r);
    } else {
        if (o->mode == FLEET_GATHER)
            gather(o, &h->st[0], r->host);
        b = malloc(sizeof *b);
        for (int i = 0; i < 2 && b; i++) {
            /* A last line without a newline gets one. */
            if (h->st[i].len == 0 || (o->mode == FLEET_GATHER && i == 0))
                continue;
            b->o = o;
            b->fd = i ? STDERR_FILENO : STDOUT_FILENO;
            b->len = 0;
            emit_line(b, r->host, h->st[i].p, h->st[i].len);
            batch_flush(b);
        }
        free(b);
    }
    fleet_out_host_drop(h);
}

/* One -b group: its hosts folded between rules, then the output. */
static void print_group(struct fleet_out *o, const struct fleet_group *g)
{
    static const char rule[] = "---------------\n";
    char *names = hostlist_fold(g->hosts, g->n);
    char head[160];
    int w;

    if (o->stdout_err) {
        free(names);
        return;
    }
    snprintf(head, sizeof head, g->truncated ? " (output cut at %d bytes)\n" : "\n",
             FLEET_KEEP_MAX);
    w = fdio_write_all(STDOUT_FILENO, rule, sizeof rule - 1, NULL);
    if (w == 0 && names)
        w = fdio_write_all(STDOUT_FILENO, names, strlen(names), NULL);
    if (w == 0)
        w = fdio_write_all(STDOUT_FILENO, head, strlen(head), NULL);
    if (w == 0)
        w = fdio_write_all(STDOUT_FILENO, rule, sizeof rule - 1, NULL);
    if (w == 0)
        w = fdio_write_all(STDOUT_FILENO, g->p, g->len, NULL);
    if (w == 0 && g->p[g->len - 1] != '\n')
        w = fdio_write_all(STDOUT_FILENO, "\n", 1, NULL);
    if (w < 0)
        o->stdout_err = -w;
    free(names);
}

void fleet_out_finish(struct fleet_out *o)
{
    for (size_t i = 0; i < o->ngroups; i++)
        print_group(o, &o->groups[i]);
}

void fleet_out_free(struct fleet_out *o)
{
    for (size_t i = 0; i < o->ngroups; i++) {
        free(o->groups[i].p);
        free(o->groups[i].hosts);
    }
    free(o->groups);
    o->groups = NULL;
    o->ngroups = o->capgroups = 0;
}

/* ---- the summary ------------------------------------------------------------ */

/* What a failed host is counted under: "exit 1", or ferry's own kind. */
static void label(const struct fleet_result *r, char *buf, size_t len)
{
    if (r->ran)
        snprintf(buf, len, "exit %d", r->status);
    else
        snprintf(buf, len, "%s", r->why ? r->why : "failed");
}

static const struct fleet_result *sort_base;

static int by_label(const void *x, const void *y)
{
    const struct fleet_result *a = &sort_base[*(const size_t *)x];
    const struct fleet_result *b = &sort_base[*(const size_t *)y];
    char la[128], lb[128];

    if (a->ran != b->ran)
        return a->ran ? -1 : 1;
    if (a->ran && a->status != b->status)
        return a->status < b->status ? -1 : 1;
    label(a, la, sizeof la);
    label(b, lb, sizeof lb);
    return strcmp(la, lb);
}

void fleet_out_summary(const struct fleet_result *r, size_t n)
{
    size_t *idx = malloc((n ? n : 1) * sizeof *idx), nfail = 0;
    const char **names = malloc((n ? n : 1) * sizeof *names);
    char *text = NULL;
    size_t len = 0;
    FILE *f;

    if (!idx || !names)
        goto out;
    for (size_t i = 0; i < n; i++)
        if (r[i].status != 0)
            idx[nfail++] = i;
    if (nfail == 0)
        goto out;
    sort_base = r;
    qsort(idx, nfail, sizeof *idx, by_label);
    f = open_memstream(&text, &len);
    if (!f)
        goto out;
    fprintf(f, "ferry: %zu of %zu host%s failed: ", nfail, n, n == 1 ? "" : "s");
    for (size_t i = 0; i < nfail;) {
        char la[128], lb[128];
        size_t j = i, k = 0;
        char *folded;

        label(&r[idx[i]], la, sizeof la);
        while (j < nfail && (label(&r[idx[j]], lb, sizeof lb), strcmp(la, lb) == 0))
            names[k++] = r[idx[j++]].host;
        folded = hostlist_fold(names, k);
        /* "unreachable (connection refused)" reads as "unreachable: db1
         * (connection refused)". */
        {
            const char *paren = r[idx[i]].ran ? NULL : strstr(la, " (");

            if (paren)
                fprintf(f, "%s%.*s: %s%s", i ? "; " : "", (int)(paren - la), la,
                        folded ? folded : "?", paren);
            else
                fprintf(f, "%s%s: %s", i ? "; " : "", la, folded ? folded : "?");
        }
        free(folded);
        i = j;
    }
    fputc('\n', f);
    if (fclose(f) == 0 && text)
        (void)fdio_write_all(STDERR_FILENO, text, strlen(text), NULL);
out:
    free(text);
    free(idx);
    free(names);
}
