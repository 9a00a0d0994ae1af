/*
 * admission.c - accepting connections and serving datagrams for every
 * model (see admission.h).  The accept burst and its back-off are written
 * once here; the slot counts they take are given back through slots.h.
 */
#include "admission.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include "ferry/log.h"

/* Connections accepted per wakeup, so accepting never starves the
 * connections a loop already serves. */
#define ACCEPT_BURST 64
/* Datagrams served per wakeup, for the same reason. */
#define DATAGRAM_BURST 16

/* Close a connection refused for a limit, after the server's refusal
 * (opts.refusal), best effort and never blocking: what the peer already
 * sent is read away first, so that closing does not answer it with a
 * reset that could destroy the refusal in flight. */
static void close_refused(struct ferry_server *s, int fd)
{
    uint8_t sink[2048];

    if (s->opts.refusal_len > 0 &&
        send(fd, s->opts.refusal, s->opts.refusal_len, MSG_NOSIGNAL | MSG_DONTWAIT) > 0) {
        for (int i = 0; i < 4 && recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0; i++)
            ;
        (void)shutdown(fd, SHUT_WR);
    }
    close(fd);
}

/*
 * Accept one connection from a stream listener, with the accept4 flags,
 * the verify hook, the connection cap and the not-yet-authenticated cap.
 * Returns the fd (>= 0) holding its slots, -EAGAIN when there is nothing
 * (more) to take now, or -EMFILE/-ENFILE to back off.
 */
static int admit_one(struct listener *l, int nonblock, char peer[FERRY_ADDRSTRLEN])
{
    struct ferry_server *s = l->server;
    struct ferry_slots *k = &s->slots;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int fd;

    do {
        fd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0));
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        int e = errno;
        if (e == EMFILE || e == ENFILE) {
            if (!atomic_exchange(&s->emfile_logged, 1))
                ferry_log_warn("accept on %s: %s; pausing accepts", l->name, strerror(e));
            return -e;
        }
        /* Errors that belong to one aborted handshake (ECONNABORTED,
         * EPROTO, ...) must not stop the listener: report "nothing now". */
        if (e != EAGAIN && e != EWOULDBLOCK)
            ferry_log_debug("accept on %s: %s", l->name, strerror(e));
        return -EAGAIN;
    }
    atomic_store(&s->emfile_logged, 0);
    ferry_addr_format((struct sockaddr *)&ss, len, peer);
    if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) {
        /* Replies are coalesced in our own output queue and leave in as few
         * writes as possible; Nagle on top of that only adds the 40 ms
         * delayed-ACK stall to request/response traffic. */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }

    if (s->opts.verify && s->opts.verify((struct sockaddr *)&ss, len, s->opts.verify_arg) != 0) {
        ferry_log_info("%s: connection from %s refused by verify hook", l->name, peer);
        close(fd);
        return -EAGAIN;
    }
    if (atomic_fetch_add(&k->live, 1) >= s->opts.max_conns) {
        atomic_fetch_sub(&k->live, 1);
        ferry_log_warn("%s: connection from %s closed: limit of %d connections reached",
                       l->name, peer, s->opts.max_conns);
        close_refused(s, fd);
        return -EAGAIN;
    }
    if (k->unauth_capped && atomic_fetch_add(&k->unauth, 1) >= s->opts.max_unauthenticated) {
        atomic_fetch_sub(&k->unauth, 1);
        atomic_fetch_sub(&k->live, 1);
        ferry_log_warn("%s: connection from %s closed: %d connections are already waiting "
                       "to authenticate", l->name, peer, s->opts.max_unauthenticated);
        close_refused(s, fd);
        return -EAGAIN;
    }
    return fd;
}

static void serve_datagrams(struct listener *l)
{
    /* 64 KiB holds any UDP payload, so nothing is silently truncated. */
    static _Thread_local uint8_t dgram_buf[65536];
    struct ferry_server *s = l->server;

    for (int i = 0; i < DATAGRAM_BURST; i++) {
        struct ferry_datagram d = { .fd = l->fd };
        ssize_t n;

        d.peer.len = sizeof d.peer.ss;
        n = recvfrom(l->fd, dgram_buf, sizeof dgram_buf, MSG_DONTWAIT,
                     (struct sockaddr *)&d.peer.ss, &d.peer.len);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                ferry_log_debug("recvfrom on %s: %s", l->name, strerror(errno));
            return;
        }
        if (s->opts.verify && s->opts.verify((struct sockaddr *)&d.peer.ss, d.peer.len, s->opts.verify_arg) != 0)
            continue;
        d.data = dgram_buf;
        d.len = (size_t)n;
        l->h.on_datagram(&d, l->h.arg);
    }
}

static void watch_streams(struct admission *a, unsigned events)
{
    struct ferry_server *s = a->server;

    /* Datagram endpoints need no descriptors to be served: never paused. */
    for (size_t i = 0; i < s->nlisteners; i++)
        if (s->listeners[i]->type == FERRY_SOCK_STREAM)
            ferry_loop_modify(a->loop, s->listeners[i]->fd, events);
}

static void on_resume(struct ferry_loop *loop, struct ferry_timer *t, void *arg)
{
    struct admission *a = arg;

    (void)loop;
    ferry_timer_cancel(t);
    a->resume_timer = NULL;
    if (!a->stopped)
        watch_streams(a, FERRY_READABLE);
}

static void on_listener(struct ferry_loop *loop, int fd, unsigned events, void *arg)
{
    struct admission_watch *w = arg;
    struct admission *a = w->adm;
    struct listener *l = w->l;
    char peer[FERRY_ADDRSTRLEN];

    (void)fd;
    (void)events;
    if (l->type == FERRY_SOCK_DGRAM) {
        serve_datagrams(l);
        return;
    }
    for (int i = 0; i < ACCEPT_BURST && !a->stopped; i++) {
        int cfd = admit_one(l, a->nonblock, peer);
        if (cfd == -EMFILE || cfd == -ENFILE) {
            /* Out of descriptors: keep serving what we have and try again
             * shortly, instead of spinning on a listener we cannot drain. */
            watch_streams(a, 0);
            if (!a->resume_timer)
                a->resume_timer = ferry_loop_timer(loop, FERRY_EMFILE_BACKOFF_MS, on_resume, a);
            return;
        }
        if (cfd < 0)
            return;
        a->start(a->arg, l, cfd, peer);
    }
}

int ferry__admission_init(struct admission *a, struct ferry_server *s, struct ferry_loop *loop,
                          int nonblock, admission_start_fn *start, void *arg)
{
    memset(a, 0, sizeof *a);
    a->server = s;
    a->loop = loop;
    a->nonblock = nonblock;
    a->start = start;
    a->arg = arg;
    a->watches = calloc(s->nlisteners ? s->nlisteners : 1, sizeof *a->watches);
    if (!a->watches)
        return -ENOMEM;
    for (size_t i = 0; i < s->nlisteners; i++) {
        int r;

        a->watches[i] = (struct admission_watch){ .adm = a, .l = s->listeners[i] };
        r = ferry_loop_add(loop, s->listeners[i]->fd, FERRY_READABLE, on_listener, &a->watches[i]);
        if (r < 0)
            return r;
    }
    return 0;
}

void ferry__admission_stop(struct admission *a)
{
    a->stopped = 1;
    ferry_timer_cancel(a->resume_timer);
    a->resume_timer = NULL;
    for (size_t i = 0; i < a->server->nlisteners; i++)
        ferry_loop_remove(a->loop, a->server->listeners[i]->fd);
}

void ferry__admission_destroy(struct admission *a)
{
    ferry_timer_cancel(a->resume_timer);
    a->resume_timer = NULL;
    free(a->watches);
    a->watches = NULL;
}

void ferry__admission_log_ready(const struct ferry_server *s, const char *model)
{
    for (size_t i = 0; i < s->nlisteners; i++) {
        const struct listener *l = s->listeners[i];
        int is_unix = l->unix_path[0] != '\0' || strncmp(l->name, "unix:", 5) == 0;
        const char *proto = l->type == FERRY_SOCK_DGRAM ? (is_unix ? "unixgram" : "udp")
                                                        : (is_unix ? "unix" : "tcp");
        ferry_log_info("listening on %s %s (%s model)", proto, l->name, model);
    }
}
