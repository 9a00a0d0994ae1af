/*
 * loop_poll.c - the portable loop backend: poll(2) over a dense pollfd
 * array, with an fd -> slot map so add, modify and remove are O(1).
 * The interface and the "registered only while interested" rule are in
 * loop_int.h.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>

#include "loop_int.h"

#define INITIAL_CAP 64

struct ferry_backend {
    struct pollfd *pfds;
    size_t npfds, pfds_cap;
    int *slot;                /* fd -> index into pfds, -1 if not registered */
    size_t slot_cap;
};

static short to_poll(unsigned events)
{
    short ev = 0;

    if (events & FERRY_READABLE) {
        ev |= POLLIN;
#ifdef POLLRDHUP
        /* Only with read interest, as in the epoll backend. */
        ev |= POLLRDHUP;
#endif
    }
    if (events & FERRY_WRITABLE)
        ev |= POLLOUT;
    return ev;
}

static unsigned from_poll(short rev)
{
    unsigned events = 0;
    short hangup = POLLHUP | POLLERR | POLLNVAL;

#ifdef POLLRDHUP
    hangup |= POLLRDHUP;
#endif
    if (rev & POLLIN)
        events |= FERRY_READABLE;
    if (rev & POLLOUT)
        events |= FERRY_WRITABLE;
    if (rev & hangup)
        events |= FERRY_HANGUP | FERRY_READABLE;
    return events;
}

static int reserve(struct ferry_backend *b, int fd)
{
    if ((size_t)fd >= b->slot_cap) {
        size_t cap = b->slot_cap;
        int *slot;

        while (cap <= (size_t)fd)
            cap *= 2;
        slot = realloc(b->slot, cap * sizeof(*slot));
        if (!slot)
            return -ENOMEM;
        for (size_t i = b->slot_cap; i < cap; i++)
            slot[i] = -1;
        b->slot = slot;
        b->slot_cap = cap;
    }
    if (b->npfds == b->pfds_cap) {
        size_t cap = b->pfds_cap * 2;
        struct pollfd *pfds = realloc(b->pfds, cap * sizeof(*pfds));

        if (!pfds)
            return -ENOMEM;
        b->pfds = pfds;
        b->pfds_cap = cap;
    }
    return 0;
}

int ferry_backend_init(struct ferry_backend **out)
{
    struct ferry_backend *b = calloc(1, sizeof(*b));

    if (!b)
        goto fail;
    b->pfds = malloc(INITIAL_CAP * sizeof(*b->pfds));
    b->slot = malloc(INITIAL_CAP * sizeof(*b->slot));
    if (!b->pfds || !b->slot)
        goto fail;
    b->pfds_cap = b->slot_cap = INITIAL_CAP;
    for (size_t i = 0; i < b->slot_cap; i++)
        b->slot[i] = -1;
    *out = b;
    return 0;

fail:
    ferry_backend_free(b);
    return -ENOMEM;
}

void ferry_backend_forget(struct ferry_backend *b)
{
    (void)b;   /* poll() keeps no descriptor of its own */
}

void ferry_backend_free(struct ferry_backend *b)
{
    if (!b)
        return;
    free(b->pfds);
    free(b->slot);
    free(b);
}

int ferry_backend_add(struct ferry_backend *b, int fd, unsigned events)
{
    int rc;

    if (!events)
        return 0;
    rc = reserve(b, fd);
    if (rc < 0)
        return rc;
    if (b->slot[fd] >= 0)
        return -EEXIST;
    b->slot[fd] = (int)b->npfds;
    b->pfds[b->npfds++] = (struct pollfd){ .fd = fd, .events = to_poll(events) };
    return 0;
}

int ferry_backend_modify(struct ferry_backend *b, int fd, unsigned old, unsigned now)
{
    if (old == now)
        return 0;
    if (!old)
        return ferry_backend_add(b, fd, now);
    if (!now)
        return ferry_backend_remove(b, fd, old);
    b->pfds[b->slot[fd]].events = to_poll(now);
    return 0;
}

int ferry_backend_remove(struct ferry_backend *b, int fd, unsigned old)
{
    size_t i;

    if (!old || (size_t)fd >= b->slot_cap || b->slot[fd] < 0)
        return 0;
    /* Keep the array dense by moving the last entry into the hole. */
    i = (size_t)b->slot[fd];
    b->pfds[i] = b->pfds[--b->npfds];
    b->slot[b->pfds[i].fd] = (int)i;
    b->slot[fd] = -1;
    return 0;
}

int ferry_backend_wait(struct ferry_backend *b, struct ferry_ready *ready, int max,
                       int timeout_ms)
{
    int n = poll(b->pfds, (nfds_t)b->npfds, timeout_ms);
    int count = 0;

    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    for (size_t i = 0; i < b->npfds && count < n && count < max; i++) {
        if (!b->pfds[i].revents)
            continue;
        ready[count].fd = b->pfds[i].fd;
        ready[count].events = from_poll(b->pfds[i].revents);
        count++;
    }
    return count;
}

const char *ferry_backend_name(void)
{
    return "poll";
}
