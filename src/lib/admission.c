/*
 * admission.c - accepting connections and serving datagrams for every
 * model (see admission.h).  The accept burst and its back-off are written
 * once here; the slot counts they take are given back through slots.h.
 */
#include "admission.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include "ferry/log.h"
#include "clock.h"

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

/* Close a refused connection; counted for the summary, not logged each. */
static void refuse(struct ferry_server *s, int why, int fd)
{
    if (why == ADMIT_NVERDICTS + 1)
        close(fd);              /* the verify hook's refusal says nothing */
    else
        close_refused(s, fd);
    atomic_fetch_add(&s->refused[why], 1);
}

/*
 * Log what was refused since the last summary, unless that was under a
 * second ago (then 0: still due).  1 when nothing is left to tell.  One
 * line a second at most across the server, whichever loop writes it.
 */
static int log_summary(struct ferry_server *s)
{
    static const char *const why[ADMIT_NVERDICTS + 2] = {
        [ADMIT_EVICT] = "evicted (the oldest waiting of the source holding the most)",
        [ADMIT_DROP_PENALTY] = "refused (source under penalty)",
        [ADMIT_DROP_SOURCE] = "refused (the source holds its share of the waiting slots)",
        [ADMIT_DROP_EARLY] = "refused (random early drop)",
        [ADMIT_DROP_FULL] = "refused (connections already waiting to authenticate hold every slot)",
        [ADMIT_NVERDICTS] = "refused (connection limit reached)",
        [ADMIT_NVERDICTS + 1] = "refused by the verify hook",
    };
    uint64_t now = ferry__now_ms();
    uint64_t last = atomic_load(&s->refused_logged_ms);
    uint64_t n[ADMIT_NVERDICTS + 2], total = 0;
    char line[512];
    size_t off = 0;

    for (int i = 0; i < ADMIT_NVERDICTS + 2; i++)
        total += atomic_load(&s->refused[i]);
    if (total == 0)
        return 1;
    if ((last != 0 && now - last < 1000) ||
        !atomic_compare_exchange_strong(&s->refused_logged_ms, &last, now))
        return 0;
    for (int i = 0; i < ADMIT_NVERDICTS + 2; i++) {
        n[i] = atomic_exchange(&s->refused[i], 0);
        if (n[i] && why[i] && off < sizeof line) {
            int w = snprintf(line + off, sizeof line - off, "%s%llu %s", off ? ", " : "",
                             (unsigned long long)n[i], why[i]);
            if (w > 0)
                off += (size_t)w;
        }
    }
    if (off)
        ferry_log_warn("admission since the last summary: %s (limits: "
                       "%d connections, %d waiting to authenticate)", line, s->opts.max_conns,
                       s->opts.max_unauthenticated);
    return 1;
}

static void on_summary(struct ferry_loop *loop, struct ferry_timer *t, void *arg)
{
    struct admission *a = arg;

    (void)loop;
    if (log_summary(a->server) || a->stopped) {
        ferry_timer_cancel(t);
        a->summary_timer = NULL;
    } else {
        ferry_timer_restart(t, 250);
    }
}

/*
 * A Unix socket's client has no address of its own (it shows as a bare
 * "unix:"), so the log would not say who connected: name it by the
 * credentials the kernel recorded at connect() instead, as
 * "unix:uid:UID,pid:PID" (no '=', so an audit value stays bare).  Left as
 * it was when the kernel does not tell.
 */
static void name_unix_peer(int fd, char peer[FERRY_ADDRSTRLEN])
{
    struct ucred cred;
    socklen_t len = sizeof cred;

    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && len == sizeof cred)
        snprintf(peer, FERRY_ADDRSTRLEN, "unix:uid:%u,pid:%d", (unsigned)cred.uid, (int)cred.pid);
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
    if (ss.ss_family == AF_UNIX)
        name_unix_peer(fd, peer);
    if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) {
        /* Replies are coalesced in our own output queue and leave in as few
         * writes as possible; Nagle on top of that only adds the 40 ms
         * delayed-ACK stall to request/response traffic. */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }

    if (s->opts.verify && s->opts.verify((struct sockaddr *)&ss, len, s->opts.verify_arg) != 0) {
        refuse(s, ADMIT_NVERDICTS + 1, fd);
        return -EAGAIN;
    }
    if (atomic_fetch_add(&k->live, 1) >= s->opts.max_conns) {
        atomic_fetch_sub(&k->live, 1);
        refuse(s, ADMIT_NVERDICTS, fd);
        return -EAGAIN;
    }
    if (k->unauth_capped) {
        const struct ferry_server_opts *o = &s->opts;
        struct admit_limits lim = { .full = o->max_unauthenticated, .start = o->unauth_start,
                                    .rate = o->unauth_rate, .per_source = o->max_unauth_per_source };
        struct slot_source src;
        enum admit_verdict v;

        ferry__slot_source((struct sockaddr *)&ss, len, o->unauth_v4_bits, o->unauth_v6_bits, &src);
        v = ferry__slot_unauth_take(k, &lim, fd, &src, arc4random(), ferry__now_ms());
        if (v == ADMIT_EVICT)
            atomic_fetch_add(&s->refused[v], 1);   /* counted; fd is admitted */
        else if (v != ADMIT_ACCEPT) {
            atomic_fetch_sub(&k->live, 1);
            refuse(s, v, fd);
            return -EAGAIN;
        }
    }
    return fd;
}

/* 64 KiB holds any UDP payload, so nothing is silently truncated.  The
 * buffer is the loop's (struct admission), made once: as static
 * thread-local storage it was zeroed by the start of every thread of every
 * program linking libferry, datagrams or not. */
#define DGRAM_MAX 65536

static void serve_datagrams(struct admission *a, struct listener *l)
{
    uint8_t *dgram_buf = a->dgram_buf;
    struct ferry_server *s = l->server;

    for (int i = 0; i < DATAGRAM_BURST; i++) {
        struct ferry_datagram d = { .fd = l->fd };
        ssize_t n;

        d.peer.len = sizeof d.peer.ss;
        n = recvfrom(l->fd, dgram_buf, DGRAM_MAX, MSG_DONTWAIT,
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
        serve_datagrams(a, l);
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
            break;
        a->start(a->arg, l, cfd, peer);
    }
    /* Refusals are told at once when the last summary is a second old,
     * else by the timer when it is. */
    if (!log_summary(a->server) && !a->summary_timer && !a->stopped)
        a->summary_timer = ferry_loop_timer(loop, 250, on_summary, a);
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

        if (s->listeners[i]->type == FERRY_SOCK_DGRAM && !a->dgram_buf &&
            !(a->dgram_buf = malloc(DGRAM_MAX)))
            return -ENOMEM;

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
    ferry_timer_cancel(a->summary_timer);
    a->summary_timer = NULL;
    for (size_t i = 0; i < a->server->nlisteners; i++)
        ferry_loop_remove(a->loop, a->server->listeners[i]->fd);
}

void ferry__admission_destroy(struct admission *a)
{
    ferry_timer_cancel(a->resume_timer);
    a->resume_timer = NULL;
    ferry_timer_cancel(a->summary_timer);
    a->summary_timer = NULL;
    free(a->watches);
    a->watches = NULL;
    free(a->dgram_buf);
    a->dgram_buf = NULL;
}

void ferry__admission_log_ready(const struct ferry_server *s, const char *model)
{
    for (size_t i = 0; i < s->nlisteners; i++) {
        const struct listener *l = s->listeners[i];
        int is_unix = l->unix_path[0] != '\0' || strncmp(l->name, "unix:", 5) == 0;
        const char *proto = l->type == FERRY_SOCK_DGRAM ? (is_unix ? "unixgram" : "udp")
                                                        : (is_unix ? "unix" : "tcp");
        /* An adopted socket says whose it is: an administrator reading
         * the log of a socket-activated service looks for its unit. */
        ferry_log_info("listening on %s %s (%s%s%s%s model)", proto, l->name,
                       l->origin[0] ? "from " : "", l->origin, l->origin[0] ? ", " : "", model);
    }
}
