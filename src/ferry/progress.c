/*
 * progress.c - the transfer progress bar (progress.h).
 */
#include "progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "monoclock.h"
#include "termsafe.h"

#define REDRAW_NS 100000000LL   /* ~10 redraws a second at most */

struct progress {
    char name[256];
    uint64_t total, start_done, done;
    int64_t t0, last_draw;
    double rate;                /* bytes/s, smoothed */
    uint64_t rate_done;         /* done at the last rate sample */
    int64_t rate_t;
    int width;                  /* terminal columns */
};

static int enabled = 1;

void progress_enable(int on)
{
    enabled = on;
}

/* "1.7GiB" (sep "") or "1.7 GiB": at most 9 characters. */
static void human(char out[16], double v, const char *sep)
{
    static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
    int u = 0;

    while (v >= 1024.0 && u < 6) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(out, 16, "%.0f%s%s", v, sep, units[u]);
    else
        snprintf(out, 16, "%.1f%s%s", v, sep, units[u]);
}

/* Best effort, as for any diagnostic output: a full or closed stderr is
 * no reason to fail a transfer. */
static void put_stderr(const char *s, size_t n)
{
    if (write(STDERR_FILENO, s, n) < 0)
        return;
}

/* The numbers after the name, with their leading space: each fixed in
 * width, so they stay put while the line is redrawn. */
enum { PCT_W = 6, SIZE_W = 10, RATE_W = 14, ETA_W = 13 };
#define MIN_NAME 8
#define MAX_NAME 255   /* more would only pad a wide terminal with blanks */

int progress_format(char *out, size_t cap, int width, const char *name, uint64_t total,
                    uint64_t done, double rate)
{
    char size[16], speed[16], eta[32], cols[4][40];
    double pct = total ? 100.0 * (double)done / (double)total : 100.0;
    const int col_w[4] = { PCT_W, SIZE_W, RATE_W, ETA_W };
    /* The last column stays empty: a cursor there wraps on some terminals. */
    int avail = width - 1, fixed = 0, ncols = 4, name_w, n;
    size_t name_len = strlen(name);
    const char *dots = "";

    if (cap == 0)
        return 0;
    human(size, (double)done, "");
    human(speed, rate, "");
    if (rate > 0 && total > done && (double)(total - done) / rate < 100 * 3600) {
        int secs = (int)((double)(total - done) / rate);

        snprintf(eta, sizeof eta, "%02d:%02d:%02d ETA", secs / 3600, (secs / 60) % 60, secs % 60);
    } else {
        snprintf(eta, sizeof eta, "--:--:-- ETA");
    }
    snprintf(cols[0], sizeof cols[0], " %4.0f%%", pct > 100.0 ? 100.0 : pct);
    snprintf(cols[1], sizeof cols[1], " %9s", size);
    snprintf(cols[2], sizeof cols[2], " %11s/s", speed);
    snprintf(cols[3], sizeof cols[3], " %s", eta);
    /* On a narrow terminal the least telling numbers go first (ETA, rate,
     * size) until the name has MIN_NAME columns; the percentage stays. */
    for (int i = 0; i < 4; i++)
        fixed += col_w[i];
    while (ncols > 1 && avail - fixed < MIN_NAME)
        fixed -= col_w[--ncols];
    name_w = avail - fixed;
    if (name_w > MAX_NAME)
        name_w = MAX_NAME;
    if (name_w < 0) {
        /* Not even the percentage fits: as much of it as does. */
        n = snprintf(out, cap, "%.*s", avail > 0 ? avail : 0, cols[0] + 1);
        return n < 0 ? 0 : (int)((size_t)n < cap ? (size_t)n : cap - 1);
    }
    /* A long path keeps its end, where the file's own name is. */
    if ((int)name_len > name_w) {
        if (name_w > 3) {
            dots = "...";
            name += name_len - (size_t)(name_w - 3);
        } else {
            name += name_len - (size_t)name_w;
        }
    }
    n = snprintf(out, cap, "%s%-*s%s%s%s%s", dots, name_w - (int)strlen(dots), name,
                 cols[0], ncols > 1 ? cols[1] : "", ncols > 2 ? cols[2] : "",
                 ncols > 3 ? cols[3] : "");
    return n < 0 ? 0 : (int)((size_t)n < cap ? (size_t)n : cap - 1);
}

/* The terminal's width now: it may be resized while a file moves. */
static int term_width(int fallback)
{
    struct winsize ws;

    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    return fallback;
}

static void draw(struct progress *p, int64_t t)
{
    char line[MAX_NAME + 128];
    int n;

    /* The rate over the last second or so, smoothed, so a stall shows. */
    if (t - p->rate_t >= REDRAW_NS) {
        double inst = (double)(p->done - p->rate_done) * 1e9 / (double)(t - p->rate_t);

        p->rate = p->rate_t == p->t0 ? inst : 0.7 * p->rate + 0.3 * inst;
        p->rate_done = p->done;
        p->rate_t = t;
    }
    p->width = term_width(p->width);
    line[0] = '\r';
    n = 1 + progress_format(line + 1, sizeof line - 1 - 3, p->width, p->name, p->total, p->done,
                            p->rate);
    memcpy(line + n, "\033[K", 3);
    put_stderr(line, (size_t)n + 3);
    p->last_draw = t;
}

/* Whether bars and the summary are drawn at all. */
static int drawing(void)
{
    const char *force = getenv("FERRY_PROGRESS");

    return enabled && (isatty(STDERR_FILENO) || (force && strcmp(force, "force") == 0));
}

/* Control bytes in a name (the server's, in get -r) would garble the
 * terminal, or drive it. */
static void defang(char *s)
{
    termsafe_defang(s, strlen(s));
}

struct progress *progress_start(const char *name, uint64_t total, uint64_t done)
{
    struct progress *p;

    if (!drawing())
        return NULL;
    p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    snprintf(p->name, sizeof p->name, "%s", name);
    defang(p->name);
    p->total = total;
    p->done = p->start_done = p->rate_done = done;
    p->width = 80;   /* FERRY_PROGRESS=force on a pipe */
    p->t0 = p->rate_t = monoclock_ns();
    draw(p, p->t0);
    return p;
}

void progress_update(struct progress *p, uint64_t done)
{
    int64_t t;

    if (!p)
        return;
    p->done = done;
    t = monoclock_ns();
    if (t - p->last_draw >= REDRAW_NS)
        draw(p, t);
}

void progress_end(struct progress *p)
{
    static const char erase[] = "\r\033[K";

    if (!p)
        return;
    put_stderr(erase, sizeof erase - 1);
    free(p);
}

void progress_summary(const char *what, uint64_t bytes, int64_t ns)
{
    char line[1200], shown[1024], size[16], rate[16];
    double secs = (double)(ns > 0 ? ns : 1) / 1e9;
    int n;

    if (!drawing())
        return;
    snprintf(shown, sizeof shown, "%s", what);
    defang(shown);
    human(size, (double)bytes, " ");
    human(rate, (double)bytes / secs, " ");
    n = snprintf(line, sizeof line, "%s %s in %.*f s, %s/s, verified\n", shown, size,
                 secs < 10 ? 2 : 1, secs, rate);
    if (n > 0 && (size_t)n < sizeof line)
        put_stderr(line, (size_t)n);
}
