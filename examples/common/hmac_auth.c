/*
 * hmac_auth.c - see hmac_auth.h.
 */
#include "hmac_auth.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>

int auth_digest_parse(const char *name, const EVP_MD **md)
{
    if (strcmp(name, "sha256") == 0)
        *md = EVP_sha256();
    else if (strcmp(name, "md5") == 0)
        *md = EVP_md5();
    else
        return -1;
    return 0;
}

int auth_key_load(const char *prog, const char *path, struct auth_key *key)
{
    uint8_t *buf = NULL;
    size_t got = 0;
    struct stat st;
    int fd = -1, rc = -1;
    const char *why = NULL;

    memset(key, 0, sizeof *key);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0) {
        why = strerror(errno);
        goto out;
    }
    /* One byte more than allowed, to tell "exactly at the limit" from "over". */
    buf = malloc(AUTH_MAX_KEY + 1);
    if (!buf) {
        why = strerror(ENOMEM);
        goto out;
    }
    while (got <= AUTH_MAX_KEY) {
        ssize_t n = read(fd, buf + got, AUTH_MAX_KEY + 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            why = strerror(errno);
            goto out;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    if (got == 0) {
        why = "key file is empty";
        goto out;
    }
    if (got > AUTH_MAX_KEY) {
        why = "key file is larger than 64 KiB";
        goto out;
    }
    key->bytes = buf;
    key->len = got;
    key->others_can_read = S_ISREG(st.st_mode) && (st.st_mode & (S_IRGRP | S_IROTH)) != 0;
    buf = NULL;
    rc = 0;

out:
    if (why)
        fprintf(stderr, "%s: %s: %s\n", prog, path, why);
    if (buf) {
        OPENSSL_cleanse(buf, AUTH_MAX_KEY + 1);
        free(buf);
    }
    if (fd >= 0)
        close(fd);
    return rc;
}

void auth_key_free(struct auth_key *key)
{
    if (key->bytes) {
        OPENSSL_cleanse(key->bytes, key->len);
        free(key->bytes);
    }
    memset(key, 0, sizeof *key);
}

size_t auth_answer(const EVP_MD *md, const struct auth_key *key,
                   const uint8_t nonce[AUTH_NONCE_LEN], uint8_t out[EVP_MAX_MD_SIZE])
{
    unsigned int len = 0;

    /* key->len <= AUTH_MAX_KEY, so the int conversion is exact. */
    if (!HMAC(md, key->bytes, (int)key->len, nonce, AUTH_NONCE_LEN, out, &len))
        return 0;
    return len;
}
