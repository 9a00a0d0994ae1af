/*
 * fsformat.h - how ls and stat show remote metadata (cmd_files.c): the
 * "-rw-r--r--" column, times, names and symlink targets on a terminal,
 * and the order of a listing.
 */
#ifndef FERRY_CLIENT_FSFORMAT_H
#define FERRY_CLIENT_FSFORMAT_H

#include <stddef.h>
#include <stdint.h>

enum fsformat_style {
    FSF_MINUTES,           /* 2026-12-07 19:18 (ls) */
    FSF_SECONDS,           /* 2026-12-07 19:18:42 (stat) */
    FSF_ZONE,              /* +0000 */
};

/* "-rw-r--r--" for a kind (struct fs_meta's) and permission bits. */
void fsformat_mode(const char *kind, unsigned mode, char out[11]);

/* t (seconds since the epoch) in local time as `style` says; the bare
 * number when it cannot be shown so. */
void fsformat_time(int64_t t, char *out, size_t cap, enum fsformat_style style);

/* A name on stdout as a terminal should show it: control bytes as '?', as
 * ls does (tty 0: as it is). */
void fsformat_name(const char *name, int tty);

/* A symlink's target after its name, as ls -l shows it (" -> target"),
 * shown as fsformat_name shows names; nothing when target is NULL (not a
 * link, or a server that does not say). */
void fsformat_target(const char *target, int tty);

/* qsort comparator of list entries (json_t *) by their "name". */
int fsformat_by_name(const void *a, const void *b);

#endif
