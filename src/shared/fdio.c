/*
 * fdio.c - whole-buffer writes, close and the standard descriptors (the
 * contract is in fdio.h).
 */
#include "fdio.h"

#include <errno.h>
#include <fcntl.h>
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

int fdio_std_open(void)
{
    for (int fd = 0; fd <= 2; fd++) {
        int got;

        if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
            continue;
        /* The lowest free number, which is fd: those below it are open. */
        got = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
        if (got < 0)
            return -errno;
        if (got != fd) {
            close(got);
            return -EBADF;
        }
    }
    return 0;
}
