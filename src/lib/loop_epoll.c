/*
 * loop_epoll.c - the Linux loop backend: one level-triggered epoll set.
 * The interface and the "registered only while interested" rule are in
 * loop_int.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "loop_int.h"

struct ferry_backend {
    int epfd;
    struct epoll_event *events;   /* grown on demand in wait, never shrunk */
    int cap;
};

static uint32_t to_epoll(unsigned events)
{
    uint32_t ev = 0;

    /* RDHUP only with read interest: a half-closed peer would otherwise wake
     * a write-only watcher on every pass. */
    if (events & FERRY_READABLE)
        ev |= EPOLLIN | EPOLLRDHUP;
    if (events & FERRY_WRITABLE)
        ev |= EPOLLOUT;
    return ev;
}

static unsigned from_epoll(uint32_t ev)
{
    unsigned events = 0;

    if (ev & EPOLLIN)
        events |= FERRY_READABLE;
    if (ev & EPOLLOUT)
        events |= FERRY_WRITABLE;
    if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        events |= FERRY_HANGUP | FERRY_READABLE;
    return events;
}

static int ctl(struct ferry_backend *b, int op, int fd, unsigned events)
{
    struct epoll_event ev = { .events = to_epoll(events), .data.fd = fd };

    return epoll_ctl(b->epfd, op, fd, &ev) < 0 ? -errno : 0;
}

int ferry_backend_init(struct ferry_backend **out)
{
    struct ferry_backend *b = calloc(1, sizeof(*b));

    if (!b)
        return -ENOMEM;
    b->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (b->epfd < 0) {
        int rc = -errno;

        free(b);
        return rc;
    }
    *out = b;
    return 0;
}

void ferry_backend_forget(struct ferry_backend *b)
{
    if (b && b->epfd >= 0) {
        close(b->epfd);
        b->epfd = -1;
    }
}

void ferry_backend_free(struct ferry_backend *b)
{
    if (!b)
        return;
    close(b->epfd);
    free(b->events);
    free(b);
}

int ferry_backend_add(struct ferry_backend *b, int fd, unsigned events)
{
    int rc;

    if (events)
        return ctl(b, EPOLL_CTL_ADD, fd, events);
    /* Nothing wanted yet, so nothing stays registered (epoll reports a
     * hangup even to an empty interest set).  But whether epoll can watch
     * fd at all is said now, as ferry_loop_add promises: a regular file or
     * /dev/null (EPERM) must not look watchable until its first modify. */
    rc = ctl(b, EPOLL_CTL_ADD, fd, 0);
    return rc < 0 ? rc : ctl(b, EPOLL_CTL_DEL, fd, 0);
}

int ferry_backend_modify(struct ferry_backend *b, int fd, unsigned old, unsigned now)
{
    if (old == now)
        return 0;
    if (!old)
        return ctl(b, EPOLL_CTL_ADD, fd, now);
    if (!now)
        return ferry_backend_remove(b, fd, old);
    return ctl(b, EPOLL_CTL_MOD, fd, now);
}

int ferry_backend_remove(struct ferry_backend *b, int fd, unsigned old)
{
    int rc;

    if (!old)
        return 0;
    rc = ctl(b, EPOLL_CTL_DEL, fd, 0);
    /* Closing an fd already took it out of the set. */
    if (rc == -EBADF || rc == -ENOENT)
        rc = 0;
    return rc;
}

int ferry_backend_wait(struct ferry_backend *b, struct ferry_ready *ready, int max,
                       int timeout_ms)
{
    int n;

    if (max > b->cap) {
        struct epoll_event *ev = realloc(b->events, (size_t)max * sizeof(*ev));

        /* Without memory, wait for fewer events: level triggering keeps the
         * rest for the next pass. */
        if (ev) {
            b->events = ev;
            b->cap = max;
        } else if (b->cap == 0) {
            return -ENOMEM;
        }
    }
    n = epoll_wait(b->epfd, b->events, max < b->cap ? max : b->cap, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    for (int i = 0; i < n; i++) {
        ready[i].fd = b->events[i].data.fd;
        ready[i].events = from_epoll(b->events[i].events);
    }
    return n;
}

const char *ferry_backend_name(void)
{
    return "epoll";
}
