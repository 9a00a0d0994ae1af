/*
 * sdlisten.c - socket activation: the descriptors systemd (or
 * systemd-socket-activate, or any manager speaking sd_listen_fds(3)'s
 * protocol) passes to ferryd.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include "sdlisten.h"

/* A decimal number in 1..max, nothing else around it. */
static long parse_positive(const char *s, long max)
{
    char *end = NULL;
    long v;

    if (!s || !*s)
        return -EINVAL;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || v < 1 || v > max)
        return -EINVAL;
    return v;
}

int sdlisten_take(void)
{
    const char *pid_s = getenv("LISTEN_PID"), *fds_s = getenv("LISTEN_FDS");
    long pid, n;
    int r = 0;

    if (!pid_s || !fds_s)
        goto out;
    pid = parse_positive(pid_s, LONG_MAX);
    n = parse_positive(fds_s, INT_MAX - SDLISTEN_FIRST_FD);
    if (pid < 0 || n < 0) {
        r = -EINVAL;
        goto out;
    }
    if ((pid_t)pid != getpid())
        goto out;   /* inherited from whoever was activated: not ours */
    for (int fd = SDLISTEN_FIRST_FD; fd < SDLISTEN_FIRST_FD + n; fd++) {
        int flags = fcntl(fd, F_GETFD);
        if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0) {
            r = -errno;
            goto out;
        }
    }
    r = (int)n;
out:
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    return r;
}
