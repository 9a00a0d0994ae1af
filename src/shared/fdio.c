/*
 * fdio.c - whole-buffer writes and close (the contract is in fdio.h).
 */
#include "fdio.h"

#include <errno.h>
#include <poll.h>
#include <unistd.h>

/* What one failed or short attempt means: 1 try again, else the code. */
static int retry_or_fail(ssize_t w, int fd, const volatile sig_atomic_t *stop)
{
    if (w == 0)
        return -EIO;
    if (errno == EINTR)
        return stop && *stop ? -EINTR : 1;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        struct pollfd pfd = { .fd = fd, .events = POLLOUT };

        if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
            return -errno;
        return 1;
    }
    return -errno;
}

int fdio_write_all(int fd, const void *buf, size_t len, const volatile sig_atomic_t *stop)
{
    const uint8_t *p = buf;

    while (len > 0) {
        ssize_t w = write(fd, p, len);

        if (w <= 0) {
            int r = retry_or_fail(w, fd, stop);
            if (r < 0)
                return r;
            continue;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int fdio_pwrite_all(int fd, const void *buf, size_t len, uint64_t off,
                    const volatile sig_atomic_t *stop)
{
    const uint8_t *p = buf;

    while (len > 0) {
        ssize_t w = pwrite(fd, p, len, (off_t)off);

        if (w <= 0) {
            int r = retry_or_fail(w, fd, stop);
            if (r < 0)
                return r;
            continue;
        }
        p += w;
        len -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

void fdio_close(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}
