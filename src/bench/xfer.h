/*
 * xfer.h - ferry-bench's put and get modes: ferryd's file transfers
 * (PROTOCOL.md 2.4) over warm sessions, one transfer in flight per
 * connection, back to back.
 *
 *   put: put -> put-ready, data frames (at most 16 MiB each) and put-end
 *        with the content's checksum -> put-ok
 *   get: get -> get-ready, data frames, get-end with the server's checksum,
 *        which is checked against the checksum of what arrived
 *
 * What every connection shares is made once, before the run (struct
 * xfer_shared: the upload's content and its checksum, the encoded put-end
 * and get request).  Each connection keeps a fixed-size struct xfer_conn,
 * and worker.c calls in where a transfer starts (xfer_start), where the
 * socket can take bytes (xfer_send), where a whole answer header has
 * arrived (xfer_header) and where body bytes of a download pass
 * (xfer_body).  Nothing is allocated per transfer on the data path.
 */
#ifndef FERRY_BENCH_XFER_H
#define FERRY_BENCH_XFER_H

#include <stddef.h>
#include <stdint.h>

#include "digest.h"

/* put/get read the socket this much at a time: large enough that system
 * calls are not the cost of a download. */
#define XFER_READ_LEN (1024u * 1024u)

/* A data frame's prefix and {"type":"data","offset":N,"size":M}: 4 + at
 * most 71 bytes. */
#define XFER_HEAD_MAX 96u

/* What a run asks for, from the command line. */
struct xfer_opts {
    const char *path;        /* get: the remote file (-p) */
    const char *remote_dir;  /* put: the directory the files go to; NULL: the root */
    uint64_t seed;           /* put: the content's --seed */
    enum digest_alg alg;     /* --checksum */
};

/* Made once by xfer_shared_init, read-only during the run. */
struct xfer_shared {
    int put;                  /* 1: put mode, 0: get mode */
    enum digest_alg alg;
    uint64_t size;            /* put: the file's length */
    uint8_t *data;            /* put: its content */
    char sum[DIGEST_HEX_MAX]; /* put: its checksum */
    uint8_t *end;             /* put: the put-end frame */
    size_t end_len;
    uint8_t *req;             /* get: the get request frame */
    size_t req_len;
    char *dir;                /* put: remote_dir without trailing '/'; NULL: the root */
};

/* Where one connection's transfer is. */
enum xfer_phase {
    XP_IDLE = 0,
    XP_REQUEST,   /* sending the put or get request */
    XP_READY,     /* waiting for put-ready / get-ready */
    XP_DATA,      /* put: sending data and put-end; get: receiving data */
    XP_OK,        /* put: everything sent, waiting for put-ok */
    XP_DONE,      /* the final answer is in */
};

struct xfer_conn {
    uint8_t phase;             /* enum xfer_phase */
    const uint8_t *hp;         /* the frame header being sent: a request, or head[] */
    uint32_t hlen, hsent;
    uint64_t size;             /* the file's length (put: -s; get: from get-ready) */
    uint64_t pos;              /* file bytes sent (put) or received (get) */
    uint64_t frame_end;        /* put: where the data frame being sent ends */
    size_t end_sent;           /* put: bytes of put-end sent */
    struct digest *d;          /* get: the checksum of what arrived */
    uint8_t *req;              /* put: this connection's request, encoded once */
    size_t req_len;
    char sum[DIGEST_HEX_MAX];  /* the checksum of the last transfer that verified */
    uint8_t head[XFER_HEAD_MAX];
};

/* What one answer frame means for the transfer (as exec.h's exec_frame). */
struct xfer_frame {
    uint64_t body;   /* body bytes that follow (a download's data) */
    int last;        /* the transfer's final answer */
    int fail;        /* 0, or TALLY_CHECKSUM: the transfer is over but did not verify */
    int send;        /* put-ready arrived: the data may now be sent */
};

/*
 * Build what every connection shares: for put, size bytes of content from
 * seed (xfer_fill), its checksum and the put-end frame; for get, the
 * request for o->path.  Returns 0, or -ENOMEM (or a frame encoder's code);
 * on failure xs holds nothing to free.
 */
int xfer_shared_init(struct xfer_shared *xs, int put, uint64_t size, const struct xfer_opts *o);
void xfer_shared_free(struct xfer_shared *xs);

/* The content of an upload: splitmix64 from seed, each 64-bit output
 * stored little-endian, the last one cut to fit.  Reproducible anywhere
 * (the tests recompute it), fast, and far from all zeros. */
void xfer_fill(uint8_t *buf, uint64_t len, uint64_t seed);

/* The remote name a put connection writes: DIR/bench-put-<index>.bin.
 * Returns what snprintf returns. */
int xfer_put_path(const struct xfer_shared *xs, unsigned index, char *out, size_t cap);

/* Set up connection number index (global, from 0): its put request, or
 * its running checksum for get.  0 or -ENOMEM; xfer_conn_free either way. */
int xfer_conn_init(struct xfer_conn *x, const struct xfer_shared *xs, unsigned index);
void xfer_conn_free(struct xfer_conn *x);

/* A new transfer on x: its request is the next thing to send. */
void xfer_start(const struct xfer_shared *xs, struct xfer_conn *x);

/* Send what the transfer has to send until the socket takes no more
 * (header and body gathered into one sendmsg, straight from the content).
 * 0 (done, or the next EPOLLOUT resumes) or -errno. */
int xfer_send(const struct xfer_shared *xs, struct xfer_conn *x, int fd);

/* 1 when nothing is left to send for this transfer. */
int xfer_sent(const struct xfer_shared *xs, const struct xfer_conn *x);

/*
 * Classify one whole answer header (len is bounded by the caller).  Data
 * headers are recognised by their exact bytes as ferryd writes them,
 * without allocating; anything else is decoded and validated in full.
 * Offsets and sizes are checked against the transfer before *f says what
 * follows.  Returns 0, or a negative code that ends the connection:
 * -TALLY_ERRFRAME (ferryd refused; its message is copied to why, when
 * not NULL), -TALLY_UNEXPECTED, -EPROTO.
 */
int xfer_header(const struct xfer_shared *xs, struct xfer_conn *x, const uint8_t *hdr,
                uint32_t len, struct xfer_frame *f, char *why, size_t why_len);

/* Body bytes of a download's data frame (never more than the header
 * announced): hashed where they lie, then dropped. */
void xfer_body(struct xfer_conn *x, const uint8_t *p, size_t n);

#endif
