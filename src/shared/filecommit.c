/*
 * filecommit.c - temporary, fsync, rename, directory fsync (the contract
 * is in filecommit.h).
 */
#include "filecommit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "proto.h"

/* Longest part of the final name kept in a temporary's name, so that
 * ".NAME.XXXXXXXX.ferry-part" fits in NAME_MAX. */
#define TMP_NAME_KEEP (NAME_MAX - (int)sizeof(PROTO_PART_SUFFIX) - 11)

void filecommit_tmp_name(char out[NAME_MAX + 1], const char *name, const uint32_t *tag)
{
    if (tag)
        snprintf(out, NAME_MAX + 1, ".%.*s.%08x%s", TMP_NAME_KEEP, name, (unsigned)*tag,
                 PROTO_PART_SUFFIX);
    else
        snprintf(out, NAME_MAX + 1, ".%.*s%s", TMP_NAME_KEEP, name, PROTO_PART_SUFFIX);
}

int filecommit_prepare(int fd, mode_t mode, const struct timespec times[2], int sync)
{
    if (fchmod(fd, mode & 0777) < 0)
        return -errno;
    if (times && futimens(fd, times) < 0)
        return -errno;
    if (sync && fsync(fd) < 0)
        return -errno;
    return 0;
}

int filecommit_rename(int dirfd, const char *tmp, const char *name)
{
    return renameat(dirfd, tmp, dirfd, name) < 0 ? -errno : 0;
}

int filecommit_sync_dir(int dirfd, const char *dir)
{
    int fd = openat(dirfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r = 0;

    if (fd < 0)
        return -errno;
    if (fsync(fd) < 0)
        r = -errno;
    close(fd);
    return r;
}
