/*
 * transfer.h - put and get (docs/PROTOCOL.md 2.4): files and trees streamed
 * over a session with a whole-file checksum, resumable, committed
 * atomically on the receiving side (the server for put, us for get).
 *
 * One struct transfer carries the options and the session for a whole
 * command (or one shell line).  A file that fails is reported on its own
 * line ("ferry: put a.txt: No space left on device") and the others go
 * on; when a failure leaves the connection unusable (a file that shrank
 * while being sent, a local disk error mid-download) a new one is opened
 * for the next file.
 */
#ifndef FERRY_CLIENT_TRANSFER_H
#define FERRY_CLIENT_TRANSFER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "dial.h"
#include "digest.h"
#include "remotefs.h"

/* The transfer buffer: large enough that syscalls are not the cost; small
 * enough to stay in cache while it is hashed. */
#define TRANSFER_BUF_SIZE (1024 * 1024)

struct transfer_opts {
    int recursive;          /* -r */
    int preserve;           /* -p: mode and mtime */
    int resume;             /* --resume */
    int fsync;              /* --fsync */
    enum digest_alg alg;    /* --checksum */
    int force;              /* --force: get - writes binary to a terminal too */
};

struct transfer {
    struct client_session **sp;            /* replaced when it has to be reopened */
    const char *host;               /* for reopening */
    const struct dial_opts *so;
    struct transfer_opts o;
    mode_t umask;
    struct digest *d;
    uint8_t *buf;
    size_t buf_len;
    const char *op;                 /* "put" or "get", for the summary */
    int64_t t0;                     /* when the command began (monoclock ns) */
    uint64_t done_bytes;            /* verified and committed so far */
    int done_files;
    char *done_src, *done_dst;      /* the first file's, for the summary */
    int failed;                     /* some file failed */
    int fatal;                      /* no session could be had: stop */
};

/* 0, or -ENOMEM (printed).  *sp may be NULL: a session is opened when the
 * first file needs one. */
int transfer_init(struct transfer *x, struct client_session **sp, const char *host,
              const struct dial_opts *so, const struct transfer_opts *o);
void transfer_free(struct transfer *x);

/*
 * Upload locals[0..n) to `remote` (cp semantics: into it when it is a
 * directory, ends in '/', or n > 1; else as that name), or download
 * remotes[0..n) to `local`.  Returns the exit status: 0 when every file
 * arrived and verified, 1 when some failed, 255 when no connection could
 * be had, 128+N when signal N interrupted the transfer.
 */
int transfer_put(struct transfer *x, char *const *locals, int n, const char *remote);
int transfer_get(struct transfer *x, char *const *remotes, int n, const char *local);

/* ---- for transfer_put.c and transfer_get.c ------------------------------------ */

/* One line for a file that failed ("ferry: put a.txt: reason"); the
 * command then exits 1. */
void transfer_report(struct transfer *x, const char *op, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void transfer_report_err(struct transfer *x, const char *op, const char *name,
                         const struct fs_error *err);

/* The same for a put whose REMOTE side failed: a refusal of the server's
 * names the remote path ("put big.bin: remote nodir/: No such file or
 * directory": a missing parent is named, not the file being created);
 * a connection's failure is said as it is. */
void transfer_report_remote(struct transfer *x, const char *op, const char *name,
                            const char *remote, const struct fs_error *err);

/* A file arrived and verified: src -> dst, bytes long (for the summary). */
void transfer_done(struct transfer *x, const char *src, const char *dst, uint64_t bytes);

/* The summary line on a terminal (progress.h), once the command is over. */
void transfer_summary(const struct transfer *x);

/* `-` (transfer_stdio.c): stdin uploaded to remote (canonical), and
 * remote downloaded to stdout (remote_arg: as the user wrote it, for
 * messages). */
void transfer_put_stdin(struct transfer *x, const char *remote);
void transfer_get_stdout(struct transfer *x, const char *remote_arg, const char *remote);

/* A usable session in *x->sp, reopened if the last one broke.  0, or -1
 * when none can be had (already printed; the whole command stops). */
int transfer_need_session(struct transfer *x);

/* During an upload: 0 while the server has said nothing, FERRY_EREMOTE
 * (err filled) when it refused the put, other negatives when the
 * connection is gone. */
int transfer_check_incoming(struct client_session *s, struct fs_error *err);

/* After a failed send: the server's error, if it sent one, into err. */
void transfer_prefer_server_error(struct client_session *s, struct fs_error *err);

/* True once the command must stop: no session, or a signal. */
int transfer_stopped(const struct transfer *x);

/* An integer member in [lo, hi]; *ok is cleared when it is not one. */
int64_t transfer_int_member(const json_t *h, const char *name, int64_t lo, int64_t hi, int *ok);

int transfer_ends_in_slash(const char *p);

/* Whether the file open on fd is no longer as `before` (its size or its
 * modification time), or cannot be looked at: an upload that read it
 * while it was written would commit a mix of two versions, so it is not
 * committed ("file changed while being sent", as tar says it). */
int transfer_source_changed(int fd, const struct stat *before);

/* A local directory a download writes in, `name` in parentfd, made if
 * missing (mode 0777 less the umask): its descriptor (O_PATH), or -errno.
 * Unless follow, a symlink there is not followed (-ELOOP): below what
 * the user named, neither another user (a directory swapped for a link
 * to /etc while the download runs) nor the server steers the download
 * out of the tree (rsync, too, writes through no symlink of the
 * destination unless told, -K). */
int transfer_open_local_dir(int parentfd, const char *name, int follow);

/* What to say of transfer_open_local_dir's error. */
const char *transfer_local_dir_error(int r);

/* A source's own name for use under a target directory (malloc'd); NULL
 * when the source is ".", ".." or "/", whose contents go into the target
 * itself. */
char *transfer_own_name(const char *path);

/* The command's exit status, as transfer_put and transfer_get return it. */
int transfer_status(const struct transfer *x);

#endif
