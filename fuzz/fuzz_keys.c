/*
 * fuzz_keys.c - libFuzzer harness for ferryd's keys file
 * (src/shared/keys.c): the whole input is the file.  keys_check and
 * keys_find must agree: a file keys_check accepts finds every name it
 * can be asked for the same way twice, and one it refuses finds nothing.
 * The file lives in a temporary directory made once per process.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "errbuf.h"
#include "keys.h"
#include "fuzz_tmp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[64];

static void cleanup(void)
{
    char dir[64];

    unlink(path);
    snprintf(dir, sizeof dir, "%.*s", (int)(strrchr(path, '/') - path), path);
    rmdir(dir);
}

static const char *file_path(void)
{
    if (path[0] == '\0') {
        char dir[48];

        fuzz_mkdtemp(dir, sizeof dir, "fuzz_keys");
        snprintf(path, sizeof path, "%s/keys", dir);
        atexit(cleanup);
    }
    return path;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = file_path();
    struct ferry_key a, b;
    struct keyopts oa, ob;
    struct errbuf err;
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int count = -1, checked, ra, rb;

    if (fd < 0)
        abort();
    if (size > 0 && write(fd, data, size) != (ssize_t)size)
        abort();
    close(fd);

    errbuf_clear(&err);
    checked = keys_check(p, &count, &err);
    if (checked == 0 && count < 0)
        abort();
    /* A name taken from the input, and the default one. */
    {
        char name[KEYS_NAME_MAX + 2];
        size_t n = 0;

        while (n < size && n < sizeof name - 1 && data[n] != ' ' && data[n] != '\n')
            n++;
        memcpy(name, data, n);
        name[n] = '\0';
        for (int i = 0; i < 2; i++) {
            const char *want = i ? KEYS_DEFAULT_NAME : name;

            memset(&oa, 0, sizeof oa);
            memset(&ob, 0, sizeof ob);
            errbuf_clear(&err);
            ra = keys_find(p, want, &a, &oa, &err);
            errbuf_clear(&err);
            rb = keys_find(p, want, &b, &ob, &err);
            if (ra != rb || (ra == 1 && (memcmp(&a, &b, sizeof a) != 0 ||
                                         memcmp(&oa, &ob, sizeof oa) != 0)))
                abort();
            if (checked < 0 && ra == 1)
                abort();
        }
    }
    return 0;
}
