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

static void draw(struct progress *p, int64_t t)
{
    char line[512], size[16], rate[16], eta[32];
    double pct = p->total ? 100.0 * (double)p->done / (double)p->total : 100.0;
    const char *name, *dots = "";
    int name_w, n;

    /* The rate over the last second or so, smoothed, so a stall shows. */
    if (t - p->rate_t >= REDRAW_NS) {
        double inst = (double)(p->done - p->rate_done) * 1e9 / (double)(t - p->rate_t);

        p->rate = p->rate_t == p->t0 ? inst : 0.7 * p->rate + 0.3 * inst;
        p->rate_done = p->done;
        p->rate_t = t;
    }
    human(size, (double)p->done, "");
    human(rate, p->rate, "");
    if (p->rate > 0 && p->total > p->done) {
        double secs = (double)(p->total - p->done) / p->rate;

        if (secs < 100 * 3600)
            snprintf(eta, sizeof eta, "%02d:%02d:%02d ETA", (int)secs / 3600,
                     ((int)secs / 60) % 60, (int)secs % 60);
        else
            snprintf(eta, sizeof eta, "--:--:-- ETA");
    } else {
        snprintf(eta, sizeof eta, "--:--:-- ETA");
    }
    /* The name takes what the numbers leave of the line (one column
     * spare, so the cursor never wraps). */
    name_w = p->width - 1 - 42;
    if (name_w < 8)
        name_w = 8;
    if (name_w > (int)sizeof p->name - 1)
        name_w = (int)sizeof p->name - 1;
    /* A long path keeps its end, where the file's own name is. */
    name = p->name;
    if ((int)strlen(name) > name_w) {
        name += strlen(name) - (size_t)(name_w - 3);
        dots = "...";
    }
    n = snprintf(line, sizeof line, "\r%s%-*s %4.0f%% %9s %11s/s %s\033[K", dots,
                 name_w - (int)strlen(dots), name, pct, size, rate, eta);
    if (n > 0)
        put_stderr(line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
    p->last_draw = t;
}

/* Whether bars and the summary are drawn at all. */
static int drawing(void)
{
    const char *force = getenv("FERRY_PROGRESS");

    return enabled && (isatty(STDERR_FILENO) || (force && strcmp(force, "force") == 0));
}

/* Control bytes in a name would garble the terminal. */
static void defang(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
}

struct progress *progress_start(const char *name, uint64_t total, uint64_t done)
{
    struct winsize ws;
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
    p->width = 80;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        p->width = ws.ws_col;
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
