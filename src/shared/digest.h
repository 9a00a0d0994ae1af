/*
 * digest.h - the whole-file checksums of the file service (PROTOCOL.md 2.4):
 * xxh3-128 by default, sha256 on request.
 *
 * Both ends hash the bytes as they stream past, so a transfer is read once.
 * xxh3-128 (Debian's libxxhash, as rsync 3.2 chose) runs at memory speed
 * and catches corruption; sha256 (libcrypto) is for people who want a
 * cryptographic digest they can compare with sha256sum.  Neither is a MAC:
 * the session's authentication, not the checksum, keeps strangers out.
 */
#ifndef FERRY_DIGEST_H
#define FERRY_DIGEST_H

#include <stddef.h>
#include <stdint.h>

enum digest_alg { DIGEST_XXH3_128 = 0, DIGEST_SHA256 = 1 };

/* Longest hex form, with its NUL. */
#define DIGEST_HEX_MAX 65

struct digest;   /* opaque; one running checksum */

/* "xxh3-128" / "sha256" <-> alg.  parse returns 0, or -EINVAL for any other
 * name (NULL included). */
int digest_parse(const char *name, enum digest_alg *out);
const char *digest_name(enum digest_alg alg);

/* Start a checksum.  NULL on allocation failure.  Free with digest_free. */
struct digest *digest_new(enum digest_alg alg);
void digest_free(struct digest *d);              /* NULL allowed */
enum digest_alg digest_alg(const struct digest *d);
/* Forget everything hashed so far (same algorithm). */
void digest_reset(struct digest *d);
void digest_update(struct digest *d, const void *data, size_t len);
/* The checksum of everything so far, as lowercase hex (32 or 64 digits and
 * a NUL), without ending it: more may be added after. */
void digest_hex(const struct digest *d, char out[DIGEST_HEX_MAX]);

/* Constant-length compare of two hex checksums; 1 when equal. */
int digest_hex_equal(const char *a, const char *b);

/*
 * Hash the first len bytes of fd (from offset 0, with pread, so the file
 * position is left alone) into d.  Returns 0, -EIO... (-errno) on a read
 * error, or FERRY_ETRUNCATED when the file is shorter than len.
 * Blocking: fine for a client; the daemon hashes in slices instead
 * (digest_file_slice).
 */
int digest_file(struct digest *d, int fd, uint64_t len);

/* Hash at most max bytes of fd starting at *off and not past end, advancing
 * *off.  Returns 0 (call again while *off < end), -errno, or
 * FERRY_ETRUNCATED at an early end of file. */
int digest_file_slice(struct digest *d, int fd, uint64_t *off, uint64_t end, uint64_t max);

#endif
