/*
 * byteq.h - a queue of copied byte chunks drained into a non-blocking
 * descriptor with writev: what the command runner keeps of a command's
 * stdin that the pipe has not taken yet.
 *
 * Apart from the runner because it is a data structure with its own
 * invariants (pending is the sum of what the chunks still hold), not part
 * of driving a process.  Unbounded: whoever pushes bounds it (runner.h).
 */
#ifndef FERRYD_BYTEQ_H
#define FERRYD_BYTEQ_H

#include <stdbool.h>
#include <stddef.h>

struct byteq_chunk;   /* bytes of one or more pushes */

struct byteq {
    struct byteq_chunk *head, *tail;
    size_t pending;   /* bytes queued and not yet written */
};

/* An empty queue is all zeros. */
static inline bool byteq_empty(const struct byteq *q)
{
    return q->head == NULL;
}

/*
 * Queue a copy of len bytes at the tail: 0, or -ENOMEM (nothing queued).
 * Small pushes share chunks (the tail's room is filled first, and a new
 * chunk has room for BYTEQ_CHUNK_MIN bytes at least), so what the queue
 * holds stays close to pending however the bytes come: a client's stdin
 * sent one byte a frame made a 48-byte allocation of every byte.
 */
int byteq_push(struct byteq *q, const void *data, size_t len);

/* Write as much as fd takes, head first.  0 when the queue is empty, 1
 * when fd is full (EAGAIN), or -errno (-EPIPE: the reader is gone); on an
 * error the queue is left as it was after the last successful write. */
int byteq_flush(struct byteq *q, int fd);

/* Drop everything queued. */
void byteq_clear(struct byteq *q);

#endif
