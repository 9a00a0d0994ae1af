/*
 * buf.c - bounded byte queues, read-only slices and iovec stepping.
 *
 * This is the only file in libferry that does arithmetic on byte pointers;
 * everything else asks it to.  Every size computed here is checked for
 * overflow, and no allocation is made that would take a buffer past its
 * ceiling.
 */
#include "buf.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Small first allocation so tiny headers don't realloc byte by byte. */
#define BUF_MIN_CAP 64u

void ferry_buf_init(struct ferry_buf *b, size_t max)
{
    b->data = NULL;
    b->pos = 0;
    b->len = 0;
    b->cap = 0;
    b->max = max ? max : SIZE_MAX / 2;
}

void ferry_buf_free(struct ferry_buf *b)
{
    free(b->data);
    ferry_buf_init(b, b->max);
}

void ferry_buf_burn(struct ferry_buf *b)
{
    /* explicit_bzero, unlike memset, cannot be dropped as a dead store. */
    if (b->data)
        explicit_bzero(b->data, b->cap);
    ferry_buf_free(b);
}

size_t ferry_buf_len(const struct ferry_buf *b)
{
    return b->len - b->pos;
}

const uint8_t *ferry_buf_head(const struct ferry_buf *b)
{
    return b->data ? b->data + b->pos : NULL;
}

/* Move the unconsumed bytes to the front so the tail room is contiguous. */
static void compact(struct ferry_buf *b)
{
    size_t avail = b->len - b->pos;

    if (b->pos == 0)
        return;
    if (avail > 0)
        memmove(b->data, b->data + b->pos, avail);
    b->pos = 0;
    b->len = avail;
}

int ferry_buf_reserve(struct ferry_buf *b, size_t n)
{
    size_t avail = b->len - b->pos;
    size_t need, cap;
    uint8_t *p;

    /* avail <= max always holds, so this cannot wrap. */
    if (n > b->max - avail)
        return -ENOBUFS;
    if (b->cap - b->len >= n)
        return 0;
    need = avail + n;
    if (b->cap >= need) {
        compact(b);
        return 0;
    }

    /* Geometric growth, clamped to the ceiling (need <= max, so the
     * result always fits). */
    cap = b->cap < BUF_MIN_CAP ? BUF_MIN_CAP : b->cap;
    while (cap < need)
        cap = cap <= SIZE_MAX / 2 ? cap * 2 : SIZE_MAX;
    if (cap > b->max)
        cap = b->max;

    /* cap was sized for the live bytes alone, so they must start at 0. */
    compact(b);
    p = realloc(b->data, cap);
    if (!p)
        return -ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

uint8_t *ferry_buf_tail(struct ferry_buf *b)
{
    return b->data ? b->data + b->len : NULL;
}

size_t ferry_buf_tailroom(const struct ferry_buf *b)
{
    return b->cap - b->len;
}

void ferry_buf_commit(struct ferry_buf *b, size_t n)
{
    assert(n <= b->cap - b->len);
    b->len += n;
}

int ferry_buf_append(struct ferry_buf *b, const void *p, size_t n)
{
    int rc;

    if (n == 0)
        return 0;
    rc = ferry_buf_reserve(b, n);
    if (rc < 0)
        return rc;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void ferry_buf_consume(struct ferry_buf *b, size_t n)
{
    assert(n <= b->len - b->pos);
    b->pos += n;
    /* An empty queue restarts at offset 0: no memmove needed later. */
    if (b->pos == b->len)
        b->pos = b->len = 0;
}

void ferry_buf_clear(struct ferry_buf *b)
{
    b->pos = 0;
    b->len = 0;
}

struct ferry_slice ferry_slice_make(const void *p, size_t len)
{
    struct ferry_slice s = { .p = p, .len = len };
    return s;
}

void ferry_slice_advance(struct ferry_slice *s, size_t n)
{
    assert(n <= s->len);
    if (n == 0)
        return;   /* also keeps a NULL, empty slice free of NULL + 0 */
    s->p += n;
    s->len -= n;
}

struct ferry_slice ferry_slice_head(struct ferry_slice s, size_t n)
{
    assert(n <= s.len);
    s.len = n;
    return s;
}

void ferry_iov_advance(struct iovec **iov, int *iovcnt, size_t n)
{
    struct iovec *v = *iov;
    int cnt = *iovcnt;

    while (cnt > 0 && n >= v->iov_len) {
        n -= v->iov_len;
        v++;
        cnt--;
    }
    assert(cnt > 0 || n == 0);
    if (cnt > 0 && n > 0) {
        v->iov_base = (uint8_t *)v->iov_base + n;
        v->iov_len -= n;
    }
    *iov = v;
    *iovcnt = cnt;
}

uint32_t ferry_le32_read(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void ferry_le32_write(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}
