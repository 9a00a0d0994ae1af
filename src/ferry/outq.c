/*
 * outq.c - the outgoing byte queue (outq.h).
 */
#include "outq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "ferry/error.h"
#include "ferry/transport.h"

int outq_append(struct outq *q, const void *p, size_t n)
{
    if (n > SIZE_MAX - q->len)
        return -ENOMEM;
    if (q->cap - q->len < n) {
        /* Not enough room even after compaction: grow (doubling keeps
         * appends amortised O(1)). */
        size_t want = q->len + n, cap = q->cap ? q->cap : 4096;
        uint8_t *d;

        while (cap < want)
            cap = cap > SIZE_MAX / 2 ? want : cap * 2;
        d = malloc(cap);
        if (!d)
            return -ENOMEM;
        if (q->len)
            memcpy(d, q->data + q->head, q->len);
        free(q->data);
        q->data = d;
        q->cap = cap;
        q->head = 0;
    } else if (q->cap - q->head - q->len < n) {
        /* Room exists, but behind the sent bytes at the front. */
        memmove(q->data, q->data + q->head, q->len);
        q->head = 0;
    }
    memcpy(q->data + q->head + q->len, p, n);
    q->len += n;
    q->appended += n;
    return 0;
}

int outq_flush(struct outq *q, struct ferry_transport *t)
{
    while (q->len > 0) {
        struct iovec iov = { .iov_base = q->data + q->head, .iov_len = q->len };
        ssize_t n = ferry_transport_writev(t, &iov, 1);

        if (n == -EAGAIN)
            return 0;
        if (n < 0)
            return (int)n;
        q->head += (size_t)n;
        q->len -= (size_t)n;
        q->sent += (uint64_t)n;
    }
    q->head = 0;   /* empty: the next append starts at the front */
    return 0;
}

int outq_sent_past(const struct outq *q, uint64_t mark)
{
    return q->sent >= mark;
}

void outq_clear(struct outq *q)
{
    q->sent += q->len;   /* as far as marks go, dropped bytes are done with */
    q->head = 0;
    q->len = 0;
}

void outq_free(struct outq *q)
{
    free(q->data);
    *q = (struct outq){ 0 };
}
