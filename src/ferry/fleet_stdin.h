/*
 * fleet_stdin.h - our stdin for every host of `ferry exec -w`.
 *
 * Hosts start at different times (at most -f at once), yet each must get
 * all of stdin from its first byte.  So stdin is spooled, as it arrives,
 * to an unlinked temporary file (in $TMPDIR, else /tmp), and every host
 * sends from its own offset in it: a live stream still flows to the hosts
 * running, a host started later reads what the others had, and memory
 * stays bounded (the spool is on disk).  A stdin that is a regular file
 * is its own spool: read at offsets, never copied.
 *
 * Reading stops while the spool is FLEET_STDIN_AHEAD past the slowest
 * running host, so a command that never reads its stdin does not make us
 * copy an endless one (`yes |`) to disk.
 */
#ifndef FERRY_CLIENT_FLEET_STDIN_H
#define FERRY_CLIENT_FLEET_STDIN_H

#include <stdint.h>
#include <sys/types.h>

#include "ferry/loop.h"

#define FLEET_STDIN_AHEAD (4 * 1024 * 1024)

struct fleet_stdin {
    struct ferry_loop *loop;
    int spool;                  /* where hosts read from (-1: no stdin) */
    int direct;                 /* spool is stdin itself (a regular file) */
    uint64_t base;              /* direct: stdin's offset when we started */
    uint64_t len;               /* bytes in the spool */
    int eof;                    /* all of stdin is in it */
    int watch;                  /* 1: fd 0 on the loop; 2: read by a timer */
    int reading;                /* the watcher or timer is armed */
    struct ferry_timer *timer;
    void (*on_data)(void *arg); /* more is in the spool (or eof) */
    void *arg;
};

/* Start (from fd 0).  0, or -errno (no temporary file). */
int fleet_stdin_open(struct fleet_stdin *in, struct ferry_loop *loop, void (*on_data)(void *),
                     void *arg);

/* Read fd 0 into the spool while want (see FLEET_STDIN_AHEAD). */
void fleet_stdin_want(struct fleet_stdin *in, int want);

/* Up to n bytes of the spool from off: the count, 0 when none is there
 * (yet), or -errno. */
ssize_t fleet_stdin_read(struct fleet_stdin *in, uint64_t off, void *buf, size_t n);

void fleet_stdin_close(struct fleet_stdin *in);

#endif
