/*
 * transport_int.h - what transport.c (the generic layer, sockets, other
 * descriptors) and tls.c (the TLS ops) share: the transport struct and the
 * ops table every kind of transport fills in.
 */
#ifndef FERRY_TRANSPORT_INT_H
#define FERRY_TRANSPORT_INT_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "ferry/transport.h"

struct tls_conn;

/*
 * One attempt each; -errno on failure (including -EINTR and -EAGAIN, which
 * the generic layer handles).  `dontwait` asks for a non-blocking attempt
 * after poll() said the descriptor is ready, so a timeout cannot be
 * overrun by a call that then blocks; ops that cannot honour it ignore it.
 */
struct transport_ops {
    ssize_t (*read)(struct ferry_transport *t, void *buf, size_t len, int dontwait);
    ssize_t (*writev)(struct ferry_transport *t, const struct iovec *iov, int iovcnt,
                      int dontwait);
    int (*shutdown_write)(struct ferry_transport *t);
    void (*close)(struct ferry_transport *t);
    /* Optional: file bytes to the peer without a copy through user space.
     * NULL: the generic layer reads and writes. */
    ssize_t (*sendfile)(struct ferry_transport *t, int in_fd, off_t *off, size_t len);
    /* Set for transports whose socket is always non-blocking (TLS): their
     * ops return -EAGAIN with t->want set, and the generic layer does the
     * waiting when the transport is blocking.  Also optional: */
    int (*handshake)(struct ferry_transport *t);
    /* Optional: peer bytes into a file without a copy through user space
     * (ferry_transport_recvfile; NULL: FERRY_EUNSUPPORTED). */
    ssize_t (*recvfile)(struct ferry_transport *t, int out_fd, uint64_t *offset, size_t len,
                        int *file_err);
    int (*pending)(const struct ferry_transport *t);
    /* Optional: pipe bytes to the peer and peer bytes into a pipe without
     * a copy through user space (ferry_transport_sendpipe, _recvpipe;
     * NULL: FERRY_EUNSUPPORTED). */
    ssize_t (*sendpipe)(struct ferry_transport *t, int pipe_fd, size_t len);
    ssize_t (*recvpipe)(struct ferry_transport *t, int pipe_fd, size_t len);
};

struct ferry_transport {
    const struct transport_ops *ops;
    int fd;
    int timeout_ms;            /* 0: wait forever */
    int self_polling;          /* ops never block; the generic layer waits */
    int nonblocking;           /* self_polling only: the caller's view */
    short want;                /* self_polling: POLLIN/POLLOUT after -EAGAIN */
    struct tls_conn *tls;      /* tls.c's per-connection state, or NULL */
    int splice_pipe[2];        /* recvfile's pipe, made on first use; valid when splice_cap */
    size_t splice_cap;         /* its capacity; 0: no pipe */
    uint8_t *copy_buf;         /* COPY_BUF_SIZE for the copying fallbacks, made on first use */
};

/* Whether t has sendpipe at all (asked before a frame's header commits
 * to a body that is to follow by splice). */
int ferry__transport_sends_pipes(const struct ferry_transport *t);

/* Wait until t's descriptor is ready for `events` (poll flags) or the
 * monotonic deadline in ms passes (-1: never): 0, -ETIMEDOUT or -errno. */
int ferry__transport_wait(const struct ferry_transport *t, short events, int64_t deadline);

/* All of len bytes into fd at off (pwrite: fd's position is not used),
 * EINTR retried.  0 or -errno. */
int ferry__pwrite_all(int fd, const void *data, size_t len, uint64_t off);

/* SIGPIPE held off around a call that writes to a socket without
 * MSG_NOSIGNAL (writev, sendfile, OpenSSL's socket BIO). */
struct sigpipe_guard {
    sigset_t old;
    int was_pending;
    int skip;           /* the process ignores SIGPIPE (ferry_ignore_sigpipe) */
};
void ferry__sigpipe_hold(struct sigpipe_guard *g);
void ferry__sigpipe_release(struct sigpipe_guard *g, int err);

#endif
