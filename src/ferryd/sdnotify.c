/*
 * sdnotify.c - the notification protocol of sd_notify(3): one datagram per
 * message on the AF_UNIX socket NOTIFY_SOCKET names (a path, or '@' for
 * the abstract namespace), newline-separated VAR=value assignments.
 * Implemented here rather than linked from libsystemd: see docs/DESIGN.md,
 * "systemd without libsystemd".
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fdio.h"
#include "sdnotify.h"

static int notify_fd = -1;

int sdnotify_open(void)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    size_t len;
    socklen_t salen;
    int fd = -1, r = 0;

    if (!path)
        return 0;
    len = strlen(path);
    /* A path, or an abstract name (leading '@' for the NUL); a vsock
     * address ("vsock:...", for virtual machines) is not supported. */
    if ((path[0] != '/' && path[0] != '@') || len < 2 || len >= sizeof sun.sun_path) {
        r = -EINVAL;
        goto out;
    }
    memcpy(sun.sun_path, path, len);
    if (sun.sun_path[0] == '@')
        sun.sun_path[0] = '\0';
    salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (path[0] == '/'));
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        r = -errno;
        goto out;
    }
    if (connect(fd, (const struct sockaddr *)&sun, salen) < 0) {
        r = -errno;
        fdio_close(&fd);
        goto out;
    }
    notify_fd = fd;
out:
    unsetenv("NOTIFY_SOCKET");
    return r;
}

int sdnotify_send(const char *msg)
{
    size_t len = strlen(msg);
    ssize_t n;

    if (notify_fd < 0)
        return 0;
    /* MSG_NOSIGNAL: the manager going away must not kill us. */
    do
        n = send(notify_fd, msg, len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    return (size_t)n == len ? 0 : -EMSGSIZE;
}

void sdnotify_close(void)
{
    fdio_close(&notify_fd);
}
