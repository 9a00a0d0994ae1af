/*
 * fuzz_tmp.h - the per-process temporary directory the file-touching
 * harnesses work in: $FUZZ_TMPDIR, else /dev/shm (a tmpfs: the harnesses
 * create and remove files at every input, and a disk-backed /tmp made
 * fuzz_keys twenty times slower), else /tmp.
 */
#ifndef FERRY_FUZZ_TMP_H
#define FERRY_FUZZ_TMP_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* mkdtemp of DIR/<name>.XXXXXX into buf; aborts on failure. */
static inline void fuzz_mkdtemp(char *buf, size_t len, const char *name)
{
    const char *dir = getenv("FUZZ_TMPDIR");

    if (!dir || !*dir)
        dir = access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : "/tmp";
    if ((size_t)snprintf(buf, len, "%s/%s.XXXXXX", dir, name) >= len || !mkdtemp(buf))
        abort();
}

#endif
