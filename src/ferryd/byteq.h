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

struct byteq_chunk;   /* one push's bytes */

struct byteq {
    struct byteq_chunk *head, *tail;
    size_t pending;   /* bytes queued and not yet written */
};

/* An empty queue is all zeros. */
static inline bool byteq_empty(const struct byteq *q)
{
    return q->head == NULL;
}

/* A copy of len (> 0) bytes, ready to append; NULL when out of memory.
 * Freed with free() if it is not appended after all. */
struct byteq_chunk *byteq_chunk_new(const void *data, size_t len);

/* Put c at the tail; the queue owns it from now on. */
void byteq_append(struct byteq *q, struct byteq_chunk *c);

/* Write as much as fd takes, head first.  0 when the queue is empty, 1
 * when fd is full (EAGAIN), or -errno (-EPIPE: the reader is gone); on an
 * error the queue is left as it was after the last successful write. */
int byteq_flush(struct byteq *q, int fd);

/* Drop everything queued. */
void byteq_clear(struct byteq *q);

#endif
