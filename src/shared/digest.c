/*
 * digest.c - running xxh3-128 / sha256 checksums over streams and files.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <xxhash.h>

#include "ferry/error.h"
#include "auth.h"
#include "digest.h"

struct digest {
    enum digest_alg alg;
    XXH3_state_t *xxh;
    EVP_MD_CTX *sha;
    unsigned char *file_buf;    /* FILE_BUF_SIZE for digest_file_slice, made on first use */
};

/* As static thread-local storage this buffer was zeroed by the start of
 * every thread of ferry and ferryd (a fresh command's among them),
 * whether it hashed a file or not. */
#define FILE_BUF_SIZE (256 * 1024)

int digest_parse(const char *name, enum digest_alg *out)
{
    if (name && strcmp(name, "xxh3-128") == 0)
        *out = DIGEST_XXH3_128;
    else if (name && strcmp(name, "sha256") == 0)
        *out = DIGEST_SHA256;
    else
        return -EINVAL;
    return 0;
}

const char *digest_name(enum digest_alg alg)
{
    return alg == DIGEST_SHA256 ? "sha256" : "xxh3-128";
}

struct digest *digest_new(enum digest_alg alg)
{
    struct digest *d = calloc(1, sizeof *d);

    if (!d)
        return NULL;
    d->alg = alg;
    if (alg == DIGEST_SHA256)
        d->sha = EVP_MD_CTX_new();
    else
        d->xxh = XXH3_createState();
    if (!d->sha && !d->xxh) {
        free(d);
        return NULL;
    }
    digest_reset(d);
    return d;
}

void digest_free(struct digest *d)
{
    if (!d)
        return;
    EVP_MD_CTX_free(d->sha);
    XXH3_freeState(d->xxh);
    free(d->file_buf);
    free(d);
}

enum digest_alg digest_alg(const struct digest *d)
{
    return d->alg;
}

void digest_reset(struct digest *d)
{
    /* Neither can fail with a valid state and a built-in algorithm. */
    if (d->sha)
        EVP_DigestInit_ex(d->sha, EVP_sha256(), NULL);
    else
        XXH3_128bits_reset(d->xxh);
}

void digest_update(struct digest *d, const void *data, size_t len)
{
    if (len == 0)
        return;
    if (d->sha)
        EVP_DigestUpdate(d->sha, data, len);
    else
        XXH3_128bits_update(d->xxh, data, len);
}

void digest_hex(const struct digest *d, char out[DIGEST_HEX_MAX])
{
    if (d->sha) {
        /* Finalise a copy, so the running state can take more. */
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        EVP_MD_CTX *copy = EVP_MD_CTX_new();
        if (!copy || !EVP_MD_CTX_copy_ex(copy, d->sha) || !EVP_DigestFinal_ex(copy, md, &n))
            n = 0;
        EVP_MD_CTX_free(copy);
        if (n == 0) {
            out[0] = '\0';   /* never equal to a real checksum */
            return;
        }
        hex_encode(md, n, out);
    } else {
        XXH128_canonical_t canon;
        XXH128_canonicalFromHash(&canon, XXH3_128bits_digest(d->xxh));
        hex_encode(canon.digest, sizeof canon.digest, out);
    }
}

int digest_hex_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned diff = (unsigned)(la ^ lb);

    if (la == 0 || la != lb)
        return 0;
    for (size_t i = 0; i < la; i++)
        diff |= (unsigned)(a[i] ^ b[i]);
    return diff == 0;
}

int digest_file_slice(struct digest *d, int fd, uint64_t *off, uint64_t end, uint64_t max)
{
    unsigned char *buf;
    uint64_t stop;

    if (*off >= end)
        return 0;
    if (!d->file_buf && !(d->file_buf = malloc(FILE_BUF_SIZE)))
        return -ENOMEM;
    buf = d->file_buf;
    stop = end - *off > max ? *off + max : end;

    while (*off < stop) {
        size_t want = stop - *off > FILE_BUF_SIZE ? FILE_BUF_SIZE : (size_t)(stop - *off);
        ssize_t n = pread(fd, buf, want, (off_t)*off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return FERRY_ETRUNCATED;
        digest_update(d, buf, (size_t)n);
        *off += (uint64_t)n;
    }
    return 0;
}

int digest_file(struct digest *d, int fd, uint64_t len)
{
    uint64_t off = 0;
    return digest_file_slice(d, fd, &off, len, len);
}
