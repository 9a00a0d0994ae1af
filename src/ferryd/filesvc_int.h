/*
 * filesvc_int.h - what the file service's files share: one session's
 * file-service state, the replies (filesvc_reply.c) and the transfers
 * (filesvc_xfer.c).  Private to src/ferryd/filesvc*.c.  Calls go down:
 * filesvc.c -> filesvc_xfer.c -> filesvc_reply.c.
 */
#ifndef FERRYD_FILESVC_INT_H
#define FERRYD_FILESVC_INT_H

#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "digest.h"
#include "filesvc.h"
#include "fsops.h"

enum filesvc_state {
    XFER_NONE,
    XFER_PUT_HASH,    /* hashing a resumable temporary's bytes, then put-ready */
    XFER_PUT_DATA,    /* put-ready sent: data frames, then put-end */
    XFER_PUT_FAILED,  /* the put's error was sent: discard data until put-end */
    XFER_GET_HASH,    /* hashing the prefix a resuming client claims */
    XFER_GET_SEND,    /* data frames going out */
    XFER_GET_PAD,     /* the file failed mid-frame: zeros finish the frame, then error */
    XFER_LIST,        /* a listing waits for the client to take the entries sent so far */
};

struct filesvc {
    struct ferry_conn *c;
    const struct fsroot *root;
    const struct audit_who *who;   /* the session's (audit.h) */
    void (*on_idle)(void *arg);
    void *idle_arg;

    /* The transfer in progress (state != XFER_NONE). */
    enum filesvc_state state;
    const char *op;              /* the request's audited operation (NULL: stat, list) */
    struct digest *digest;       /* over the whole file, in order */
    struct ferry_timer *slicer;  /* runs the next slice of a long hash */
    uint64_t size;               /* the file's size */
    uint64_t pos;                /* bytes written (put) or sent (get) */
    uint64_t hashed;             /* get: bytes hashed; ahead of pos by at most a slice */
    uint64_t frame_end;          /* end of the data frame under way */
    uint64_t resume_at;          /* put: bytes the temporary held at put-ready */
    int rx_data;                 /* the frame body being read belongs to the file */
    int first_data;              /* put: no data frame seen yet */

    /* put */
    struct fsops_upload up;
    int resume, do_fsync, has_mtime;
    int stream;                  /* size unknown until put-end (size: the bound meanwhile) */
    uint64_t ack_ms;             /* the put's "ack_ms": put-ack at most this often; 0 = none */
    uint64_t ack_at;             /* monotonic ms of the last put-ack (or put-ready) */
    mode_t mode;
    int64_t mtime_sec;
    long mtime_nsec;

    /* get */
    int fd;
    struct stat st;              /* the file as opened: its size is what is sent */
    int fail_code;               /* XFER_GET_PAD: why, once the padding is out */
    char *path;
    char prefix[DIGEST_HEX_MAX]; /* the resuming client's claim */

    /* list */
    DIR *dir;
    uint64_t listed;
};

/* Replies (filesvc_reply.c). */
int filesvc_reply_send(struct filesvc *f, json_t *msg);   /* takes msg's reference */
int filesvc_reply_error(struct filesvc *f, const char *code, const char *message);
/* An error for an operation code (fspath's or -errno) on path: sent, or
 * only built (a new reference; NULL on allocation failure). */
int filesvc_reply_op_error(struct filesvc *f, const char *path, int code);
json_t *filesvc_reply_op_error_msg(struct filesvc *f, const char *path, int code);
/* The same for a put's commit (fsops_upload_commit's code): its -ESTALE
 * is a temporary taken away, said in words of its own. */
json_t *filesvc_reply_commit_error_msg(struct filesvc *f, const char *path, int code);

/* Transfers (filesvc_xfer.c). */
int filesvc_xfer_put(struct filesvc *f, json_t *msg, const char **complaint);
int filesvc_xfer_get(struct filesvc *f, json_t *msg, const char **complaint);
int filesvc_xfer_data(struct filesvc *f, json_t *msg, uint64_t body_size, const char **complaint);
int filesvc_xfer_put_end(struct filesvc *f, json_t *msg, const char **complaint);
int filesvc_xfer_body(struct filesvc *f, const uint8_t *chunk, size_t len);
void filesvc_xfer_pump(struct filesvc *f);
/* End the transfer: free what it holds (an upload's temporary is removed
 * unless keep_upload and it is resumable) and go back to XFER_NONE. */
void filesvc_xfer_reset(struct filesvc *f, int keep_upload);

#endif
