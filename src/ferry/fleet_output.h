/*
 * fleet_output.h - what `ferry exec -w` writes: every host's output line
 * by line with its name in front, gathered by identical output (-b), or
 * one JSON object per host (--json); and the summary of the failures.
 *
 * Lines: "HOST: line" on stdout or stderr as the host wrote it.  A line
 * is written whole, in one piece, so lines of two hosts never mix; a line
 * longer than FLEET_LINE_MAX is cut into pieces that each get the prefix,
 * and a last line without a newline gets one when its host ends.
 *
 * Memory is bounded: FLEET_LINE_MAX per host and stream in line mode;
 * in -b and --json modes each host's output is kept up to FLEET_KEEP_MAX
 * per stream (what is beyond is dropped, and said: "truncated"), and -b
 * keeps one copy of each distinct output, FLEET_GATHER_TOTAL in all.  Writes
 * to our stdout block: while it is behind, the loop reads no connection,
 * so the servers stop reading their commands' output (as for one host).
 */
#ifndef FERRY_CLIENT_FLEET_OUTPUT_H
#define FERRY_CLIENT_FLEET_OUTPUT_H

#include <stddef.h>
#include <stdint.h>

#define FLEET_LINE_MAX 4096
#define FLEET_KEEP_MAX (1024 * 1024)
/* -b: distinct outputs kept until the end, at most this much in all; a
 * new one beyond it is printed at once under its own header. */
#define FLEET_GATHER_TOTAL (256 * 1024 * 1024)

enum fleet_mode { FLEET_LINES = 0, FLEET_GATHER, FLEET_JSON };

/* One stream's bytes of one host: the line being assembled, or what is
 * kept (-b, --json). */
struct fleet_buf {
    uint8_t *p;
    size_t len, cap;
    int truncated;
};

/* One host's output while it runs. */
struct fleet_hostout {
    struct fleet_buf st[2];     /* 0 stdout, 1 stderr */
};

struct fleet_group;

struct fleet_out {
    enum fleet_mode mode;
    int stdout_err;             /* errno of a failed write to stdout (EPIPE...) */
    int stderr_dead;
    struct fleet_group *groups; /* -b: the distinct outputs so far */
    size_t ngroups, capgroups;
    size_t kept;                /* ... their bytes */
};

/* How one host ended, for --json, -b and the summary. */
struct fleet_result {
    const char *host;
    int status;                 /* the exit status ferry counts for it */
    int ran;                    /* the command ran: status is its own */
    const char *error;          /* ferry's reason, or NULL */
    const char *why;            /* the summary's few words, or NULL */
    double duration;            /* seconds */
};

void fleet_out_init(struct fleet_out *o, enum fleet_mode mode);

/* Bytes of stream (0 stdout, 1 stderr) from host. */
void fleet_out_data(struct fleet_out *o, struct fleet_hostout *h, const char *host, int stream,
                    const uint8_t *p, size_t n);

/* A line of ferry's own about host (a spawn error, why it failed): on
 * stderr as "ferry: HOST: text". */
void fleet_out_note(struct fleet_out *o, const char *host, const char *text);

/* The host is over: its last lines, its JSON object, or its output to
 * its group (-b).  h's memory is released. */
void fleet_out_host_done(struct fleet_out *o, struct fleet_hostout *h, const struct fleet_result *r);

/* Release a host's buffers without writing them (we are hanging up). */
void fleet_out_host_drop(struct fleet_hostout *h);

/* The end of the run: -b's groups, each under its folded host list. */
void fleet_out_finish(struct fleet_out *o);

/* On stderr, when some host failed: "ferry: 2 of 20 hosts failed: exit 1:
 * web[03,07]; unreachable: db1 (connection refused)". */
void fleet_out_summary(const struct fleet_result *r, size_t n);

void fleet_out_free(struct fleet_out *o);

#endif
