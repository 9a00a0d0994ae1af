/*
 * bench_xfer.h - ferry-bench's put and get modes: ferryd's file transfers
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
 * and get request).  Each connection keeps a fixed-size struct bench_xfer_conn,
 * and bench_request.c calls in where a transfer starts (bench_xfer_start), where
 * the transport can take bytes (bench_xfer_send), where a whole answer header has
 * arrived (bench_xfer_header) and where body bytes of a download pass
 * (bench_xfer_body).  The data path allocates only a header's worth per
 * 16 MiB frame.
 */
#ifndef FERRY_BENCH_XFER_H
#define FERRY_BENCH_XFER_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "digest.h"

struct ferry_transport;

/* put/get read the socket this much at a time: large enough that system
 * calls are not the cost of a download. */
#define BENCH_XFER_READ_LEN (1024u * 1024u)

/* A data frame's prefix and {"type":"data","offset":N,"size":M}: 4 + at
 * most 71 bytes. */
#define BENCH_XFER_HEAD_MAX 96u

/* What a run asks for, from the command line. */
struct bench_xfer_opts {
    const char *path;        /* get: the remote file (-p) */
    const char *remote_dir;  /* put: the directory the files go to; NULL: the root */
    uint64_t seed;           /* put: the content's --seed */
    enum digest_alg alg;     /* --checksum */
};

/* Made once by bench_xfer_shared_init, read-only during the run. */
struct bench_xfer_shared {
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
enum bench_xfer_phase {
    XP_IDLE = 0,
    XP_REQUEST,   /* sending the put or get request */
    XP_READY,     /* waiting for put-ready / get-ready */
    XP_DATA,      /* put: sending data and put-end; get: receiving data */
    XP_OK,        /* put: everything sent, waiting for put-ok */
    XP_DONE,      /* the final answer is in */
};

struct bench_xfer_conn {
    uint8_t phase;             /* enum bench_xfer_phase */
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
    uint8_t head[BENCH_XFER_HEAD_MAX];
};

/* What one answer frame means for the transfer (as exec.h's exec_frame). */
struct bench_xfer_frame {
    int last;        /* the transfer's final answer */
    int fail;        /* 0, or FERRY_ECHECKSUM: the transfer is over but did not verify */
    int send;        /* put-ready arrived: the data may now be sent */
};

/*
 * Build what every connection shares: for put, size bytes of content from
 * seed (bench_xfer_fill), its checksum and the put-end frame; for get, the
 * request for o->path.  Returns 0, or -ENOMEM (or a frame encoder's code);
 * on failure xs holds nothing to free.
 */
int bench_xfer_shared_init(struct bench_xfer_shared *xs, int put, uint64_t size, const struct bench_xfer_opts *o);
void bench_xfer_shared_free(struct bench_xfer_shared *xs);

/* The content of an upload: splitmix64 from seed, each 64-bit output
 * stored little-endian, the last one cut to fit.  Reproducible anywhere
 * (the tests recompute it), fast, and far from all zeros. */
void bench_xfer_fill(uint8_t *buf, uint64_t len, uint64_t seed);

/* The remote name a put connection writes: DIR/bench-put-<index>.bin.
 * Returns what snprintf returns. */
int bench_xfer_put_path(const struct bench_xfer_shared *xs, unsigned index, char *out, size_t cap);

/* Set up connection number index (global, from 0): its put request, or
 * its running checksum for get.  0 or -ENOMEM; bench_xfer_conn_free either way. */
int bench_xfer_conn_init(struct bench_xfer_conn *x, const struct bench_xfer_shared *xs, unsigned index);
void bench_xfer_conn_free(struct bench_xfer_conn *x);

/* A new transfer on x: its request is the next thing to send. */
void bench_xfer_start(const struct bench_xfer_shared *xs, struct bench_xfer_conn *x);

/* Send what the transfer has to send until the transport takes no more
 * (header and body gathered into one write, straight from the content).
 * 0 (done, or the next EPOLLOUT resumes) or a negative code. */
int bench_xfer_send(const struct bench_xfer_shared *xs, struct bench_xfer_conn *x,
                    struct ferry_transport *t);

/* 1 when nothing is left to send for this transfer. */
int bench_xfer_sent(const struct bench_xfer_shared *xs, const struct bench_xfer_conn *x);

/*
 * Classify one answer header, as libferry's frame parser decoded it, with
 * the size of the body that follows.  Offsets and sizes are checked
 * against the transfer before *f says what follows.  Returns 0, or a
 * negative code that ends the connection: FERRY_EREMOTE (ferryd refused;
 * its message is copied to why, when not NULL), FERRY_EUNEXPECTED, -EPROTO.
 */
int bench_xfer_header(const struct bench_xfer_shared *xs, struct bench_xfer_conn *x, const json_t *h,
                      uint64_t body, struct bench_xfer_frame *f, char *why, size_t why_len);

/* Body bytes of a download's data frame (never more than the header
 * announced): hashed where they lie, then dropped. */
void bench_xfer_body(struct bench_xfer_conn *x, const uint8_t *p, size_t n);

#endif
