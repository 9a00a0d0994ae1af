/*
 * byteq.c - the chunk queue behind a command's stdin (byteq.h).
 */
#include "byteq.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#define BYTEQ_IOV 16   /* chunks per writev */
#define BYTEQ_CHUNK_MIN 4096   /* room of a new chunk, at least */

struct byteq_chunk {
    struct byteq_chunk *next;
    size_t len;         /* bytes in data */
    size_t off;         /* bytes of data already written */
    size_t cap;         /* room in data */
    uint8_t data[];
};

int byteq_push(struct byteq *q, const void *data, size_t len)
{
    struct byteq_chunk *t = q->tail, *c;

    /* The tail's room first: a stream of small pushes fills chunks
     * instead of making one (and a malloc header) each. */
    if (t && t->cap > t->len) {
        size_t n = t->cap - t->len < len ? t->cap - t->len : len;

        memcpy(t->data + t->len, data, n);
        t->len += n;
        q->pending += n;
        data = (const uint8_t *)data + n;
        len -= n;
    }
    if (len == 0)
        return 0;
    size_t cap = len > BYTEQ_CHUNK_MIN ? len : BYTEQ_CHUNK_MIN;

    c = malloc(sizeof(*c) + cap);
    if (!c)
        return -ENOMEM;
    c->next = NULL;
    c->len = len;
    c->off = 0;
    c->cap = cap;
    memcpy(c->data, data, len);
    if (t)
        t->next = c;
    else
        q->head = c;
    q->tail = c;
    q->pending += len;
    return 0;
}

int byteq_flush(struct byteq *q, int fd)
{
    while (q->head) {
        struct iovec iov[BYTEQ_IOV];
        int cnt = 0;

        for (struct byteq_chunk *c = q->head; c && cnt < BYTEQ_IOV; c = c->next, cnt++) {
            iov[cnt].iov_base = c->data + c->off;
            iov[cnt].iov_len = c->len - c->off;
        }
        ssize_t n = writev(fd, iov, cnt);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 1;
            return -errno;
        }
        q->pending -= (size_t)n;
        while (n > 0) {
            struct byteq_chunk *c = q->head;
            size_t left = c->len - c->off;

            if ((size_t)n < left) {
                c->off += (size_t)n;
                break;
            }
            n -= (ssize_t)left;
            q->head = c->next;
            free(c);
        }
        if (!q->head)
            q->tail = NULL;
    }
    return 0;
}

void byteq_clear(struct byteq *q)
{
    struct byteq_chunk *c = q->head;

    while (c) {
        struct byteq_chunk *next = c->next;

        free(c);
        c = next;
    }
    q->head = q->tail = NULL;
    q->pending = 0;
}
