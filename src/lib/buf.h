/*
 * buf.h - the one place that does pointer arithmetic on byte buffers.
 *
 * A ferry_buf is a growable byte queue with a hard ceiling (max): bytes are
 * appended at the tail and consumed from the head.  Everything that
 * buffers network data goes through it, so every length is checked against
 * a bound before memory is committed.  A ferry_slice is a borrowed,
 * read-only view that can only move forward.
 *
 * Internal to libferry (not installed).
 */
#ifndef FERRY_BUF_H
#define FERRY_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct ferry_buf {
    uint8_t *data;   /* owned; NULL until the first reserve */
    size_t pos;      /* first unconsumed byte */
    size_t len;      /* end of valid bytes (pos <= len <= cap) */
    size_t cap;      /* allocated bytes */
    size_t max;      /* ceiling on len - pos + reserve; 0 = SIZE_MAX/2 */
};

struct ferry_slice {
    const uint8_t *p;
    size_t len;
};

void ferry_buf_init(struct ferry_buf *b, size_t max);
void ferry_buf_free(struct ferry_buf *b);
/* Zero the memory before freeing it (secrets). */
void ferry_buf_burn(struct ferry_buf *b);

/* Bytes waiting to be consumed, and where they start. */
size_t ferry_buf_len(const struct ferry_buf *b);
const uint8_t *ferry_buf_head(const struct ferry_buf *b);

/* Make room for n more bytes at the tail (compacting or growing).
 * -ENOBUFS when that would pass max, -ENOMEM on allocation failure. */
int ferry_buf_reserve(struct ferry_buf *b, size_t n);
/* The writable tail after a reserve, and marking n of it written. */
uint8_t *ferry_buf_tail(struct ferry_buf *b);
size_t ferry_buf_tailroom(const struct ferry_buf *b);
void ferry_buf_commit(struct ferry_buf *b, size_t n);

/* reserve + copy + commit. */
int ferry_buf_append(struct ferry_buf *b, const void *p, size_t n);
/* Drop n bytes from the head (n <= len). */
void ferry_buf_consume(struct ferry_buf *b, size_t n);
void ferry_buf_clear(struct ferry_buf *b);

/* Slices. */
struct ferry_slice ferry_slice_make(const void *p, size_t len);
/* Advance by n (n <= len). */
void ferry_slice_advance(struct ferry_slice *s, size_t n);
/* A view of the first n bytes (n <= len). */
struct ferry_slice ferry_slice_head(struct ferry_slice s, size_t n);

/* Step an iovec array past n written bytes (n <= the bytes it holds):
 * wholly written entries are skipped, a partly written one is trimmed in
 * place, and *iov / *iovcnt describe what is left (*iovcnt may reach 0). */
void ferry_iov_advance(struct iovec **iov, int *iovcnt, size_t n);

/* Little-endian u32 at p (4 bytes), and its encoding. */
uint32_t ferry_le32_read(const uint8_t *p);
void ferry_le32_write(uint8_t *p, uint32_t v);

#endif
