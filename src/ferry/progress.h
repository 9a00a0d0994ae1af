/*
 * progress.h - the one-line progress bar of a file transfer on stderr:
 *
 *     big.iso                   42%  1.7GiB  112.4MiB/s  00:21 ETA
 *
 * redrawn in place with '\r' at most ten times a second and erased when
 * the file ends, so a finished transfer leaves nothing behind (errors, if
 * any, are printed on a clean line).  Nothing is drawn unless stderr is a
 * terminal, or FERRY_PROGRESS=force is set in the environment (for tests,
 * which read stderr from a pipe), and never after progress_enable(0) (-q).
 * When the command ends, one summary line says what was done.
 */
#ifndef FERRY_CLIENT_PROGRESS_H
#define FERRY_CLIENT_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

struct progress;   /* opaque */

/* Allow bars at all (0 for -q).  Default: allowed. */
void progress_enable(int on);

/* Start a bar for `name`, of `total` bytes of which `done` are already
 * there (a resumed transfer).  NULL when no bar is drawn (disabled, not a
 * terminal, or out of memory); every call below accepts NULL. */
struct progress *progress_start(const char *name, uint64_t total, uint64_t done);

/* `done` bytes are there now (redraws if the last draw is 100 ms old). */
void progress_update(struct progress *p, uint64_t done);

/* The bar's text for a terminal `width` columns wide (no '\r', no
 * erase), into out (cap bytes, NUL-terminated): fewer than `width`
 * characters whatever the width, so it never wraps.  Narrow terminals
 * lose the ETA, then the rate, then the size before the name gets under
 * 8 columns; a long name keeps its end.  `rate` in bytes/s (0: unknown).
 * Returns the length written.  Pure, for tests. */
int progress_format(char *out, size_t cap, int width, const char *name, uint64_t total,
                    uint64_t done, double rate);

/* Erase the bar and free it. */
void progress_end(struct progress *p);

/* After a transfer, one line on the same terms as a bar (a terminal, or
 * FERRY_PROGRESS=force; never after progress_enable(0)):
 *     put a.iso -> h:a.iso 4.2 GiB in 3.1 s, 1.4 GiB/s, verified
 * `what` is the part before the size; ns the time the transfer took. */
void progress_summary(const char *what, uint64_t bytes, int64_t ns);

#endif
