/*
 * outq.h - the client's queue of bytes waiting for the socket.
 *
 * One flat, owned buffer: frames are appended whole at the back and the
 * socket takes what it can from the front.  The queue itself never says
 * no to growth; the caller keeps it bounded by not reading stdin while
 * more than a limit is queued (exec_stream.c).
 */
#ifndef FERRY_CLIENT_OUTQ_H
#define FERRY_CLIENT_OUTQ_H

#include <stddef.h>
#include <stdint.h>

struct ferry_transport;

struct outq {
    uint8_t *data;
    size_t head;          /* first unsent byte */
    size_t len;           /* unsent bytes from head */
    size_t cap;
    uint64_t appended;    /* bytes ever appended: positions for outq_sent_past() */
    uint64_t sent;        /* bytes ever written to the socket */
};

/* Append n bytes.  0 or -ENOMEM. */
int outq_append(struct outq *q, const void *p, size_t n);

/* Write as much as the (non-blocking) transport takes now.  Returns 0
 * (whether or not bytes remain) or a negative error other than -EAGAIN. */
int outq_flush(struct outq *q, struct ferry_transport *t);

/* True once every byte up to stream position `mark` (a value of
 * q->appended) has been written. */
int outq_sent_past(const struct outq *q, uint64_t mark);

/* Drop whatever is queued (the peer will never read it). */
void outq_clear(struct outq *q);

void outq_free(struct outq *q);

#endif
