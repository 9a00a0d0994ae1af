/*
 * fleet_xfer.h - one regular file to or from many hosts on the fleet
 * engine (fleet.h): `ferry put -w HOSTS FILE DEST` and `ferry get -w
 * HOSTS FILE DIR/` (each host's copy in DIR/HOST/, as pdsh's rpdcp).
 *
 * Each host is one more job of the engine's state machine (connect,
 * handshake, then the job), so one loop drives them all and -f bounds
 * how many are in flight.  The protocol and the guarantees are the
 * single-host transfer's (transfer_put.c, transfer_get.c): an upload is
 * checked by the server's checksum of what it stored and committed
 * atomically by ferryd; a download goes to DIR/HOST/.NAME.ferry-part and
 * is renamed into place only once its checksum matches.  Nothing here
 * waits: the local file is read a piece at a time as each connection
 * drains (FLEET_XFER_QUEUED at most queued per host), and a download's
 * bytes go from the socket to the temporary as they arrive.
 */
#ifndef FERRY_CLIENT_FLEET_XFER_H
#define FERRY_CLIENT_FLEET_XFER_H

#include "digest.h"
#include "fleet.h"
#include "hostlist.h"

/* Bytes of file data queued on one host's connection at most (plus one
 * piece): a slow host holds this much of our memory, no more. */
#define FLEET_XFER_QUEUED (512 * 1024)
#define FLEET_XFER_PIECE (128 * 1024)

struct fleet_xfer_opts {
    const char *src;            /* put: the local file; get: the remote one */
    const char *dest;           /* put: the remote file or directory; get: the local DIR */
    enum digest_alg alg;        /* --checksum */
    int preserve;               /* -p: mode and mtime as the source's */
    int fsync;                  /* --fsync */
};

#define FLEET_XFER_HELP                                                              \
    "\nMany hosts: ferry %s -w HOSTS|-g GROUP [-x HOSTS] [-f N] [OPTIONS] %s\n"      \
    "  -w HOSTS                 these hosts (repeatable): a comma list with pdsh's\n"  \
    "                           ranges, web[01-20,31],db1\n"                           \
    "  -g GROUP                 ... and the members of a Group of the host\n"          \
    "                           configuration (repeatable)\n"                          \
    "  -x HOSTS                 but not these (same syntax; repeatable)\n"             \
    "  -f N                     at most N hosts at once (default %d)\n"                \
    "  One regular file, the same checks and atomic commit as for one host; one\n"    \
    "  client process drives every connection.  Not with -r, --resume, '-' or\n"     \
    "  patterns.  Quiet on success (-v: one line); 'ferry: HOST: ...' for each\n"    \
    "  host that failed, and a summary.  Exit status: 0 when every host\n"           \
    "  succeeded, else 255.  get: each host's copy in DIR/HOST/ (DIR must exist).\n\n"

/* A put or get command line with -w, -g or -x (cmd_files.c parsed it). */
struct fleet_xfer_cmd {
    const char *cmd;            /* "ferry put", for messages */
    int put;
    const char **lists;         /* -w, -g, -x ... */
    const char *kinds;          /* ... which each is */
    int nlists;
    size_t fanout;
    char **ops;                 /* FILE [DEST] */
    int nops;
    int recursive, resume;      /* -r, --resume: refused */
    struct fleet_xfer_opts xo;  /* src and dest set from ops here */
};

/* Check the line (one file, no -r, '-' or pattern), make the host list
 * and run fleet_put or fleet_get.  The exit status. */
int fleet_xfer_main(const struct dial_opts *so, struct fleet_xfer_cmd *c);

/* Upload xo->src to xo->dest on every host (fo->job is set here).  The
 * exit status: 0, 255 when a host failed, 128+N after signal N; 2 or
 * 255 with a message when the local file cannot be sent at all. */
int fleet_put(const struct hostlist *hosts, struct fleet_opts *fo,
              const struct fleet_xfer_opts *xo);

/* Download xo->src from every host into xo->dest/HOST/ (xo->dest must be
 * an existing directory; HOST/ is made).  The exit status as fleet_put's. */
int fleet_get(const struct hostlist *hosts, struct fleet_opts *fo,
              const struct fleet_xfer_opts *xo);

#endif
