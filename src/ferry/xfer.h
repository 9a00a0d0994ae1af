/*
 * xfer.h - put and get (docs/PROTOCOL.md 2.4): files and trees streamed
 * over a session with a whole-file checksum, resumable, committed
 * atomically on the receiving side (the server for put, us for get).
 *
 * One struct xfer carries the options and the session for a whole
 * command (or one shell line).  A file that fails is reported on its own
 * line ("ferry: put a.txt: No space left on device") and the others go
 * on; when a failure leaves the connection unusable (a file that shrank
 * while being sent, a local disk error mid-download) a new one is opened
 * for the next file.
 */
#ifndef FERRY_CLIENT_XFER_H
#define FERRY_CLIENT_XFER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "connect.h"
#include "digest.h"
#include "files.h"

struct xfer_opts {
    int recursive;          /* -r */
    int preserve;           /* -p: mode and mtime */
    int resume;             /* --resume */
    int fsync;              /* --fsync */
    enum digest_alg alg;    /* --checksum */
};

struct xfer {
    struct session **sp;            /* replaced when it has to be reopened */
    const char *host;               /* for reopening */
    const struct session_opts *so;
    struct xfer_opts o;
    mode_t umask;
    struct digest *d;
    uint8_t *buf;
    size_t buf_len;
    struct files_splice splice;     /* get: bodies spliced into the file */
    int failed;                     /* some file failed */
    int fatal;                      /* no session could be had: stop */
};

/* 0, or -ENOMEM (printed).  *sp may be NULL: a session is opened when the
 * first file needs one. */
int xfer_init(struct xfer *x, struct session **sp, const char *host,
              const struct session_opts *so, const struct xfer_opts *o);
void xfer_free(struct xfer *x);

/*
 * Upload locals[0..n) to `remote` (cp semantics: into it when it is a
 * directory, ends in '/', or n > 1; else as that name), or download
 * remotes[0..n) to `local`.  Returns the exit status: 0 when every file
 * arrived and verified, 1 when some failed, 255 when no connection could
 * be had, 128+N when signal N interrupted the transfer.
 */
int xfer_put(struct xfer *x, char *const *locals, int n, const char *remote);
int xfer_get(struct xfer *x, char *const *remotes, int n, const char *local);

#endif
