/*
 * server.c - the server object: options, listeners, stop, and the pieces
 * every concurrency model shares (accepting with its limits, serving
 * datagrams).  The models themselves live in model_event.c,
 * model_thread.c and model_fork.c; connections in conn.c.
 */
#include "server_int.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <time.h>
#include <unistd.h>

#include "ferry/error.h"
#include "ferry/log.h"

/* The server that SIGINT/SIGTERM stop.  One at a time per process, which is
 * what signals allow anyway. */
static struct ferry_server *_Atomic signal_target;

uint64_t ferry__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int ferry_model_parse(const char *name, enum ferry_model *out)
{
    static const char *const names[] = { "event", "thread", "fork" };
    for (int i = 0; i < 3; i++) {
        if (strcmp(name, names[i]) == 0) {
            *out = (enum ferry_model)i;
            return 0;
        }
    }
    return -EINVAL;
}

const char *ferry_model_name(enum ferry_model model)
{
    switch (model) {
    case FERRY_MODEL_EVENT:  return "event";
    case FERRY_MODEL_THREAD: return "thread";
    case FERRY_MODEL_FORK:   return "fork";
    }
    return "unknown";
}

int ferry__handler_is_event(const struct ferry_handler *h)
{
    return h->on_open || h->on_data || h->on_frame;
}

int ferry_server_new(const struct ferry_server_opts *opts, struct ferry_server **out)
{
    struct ferry_server *s = NULL;
    int r = 0;

    s = calloc(1, sizeof *s);
    if (!s) {
        r = -ENOMEM;
        goto fail;
    }
    s->stop_pipe[0] = s->stop_pipe[1] = -1;
    s->auth_notify_fd = -1;
    if (opts)
        s->opts = *opts;
    if (s->opts.workers <= 0)
        s->opts.workers = 1;
    if (s->opts.max_conns <= 0)
        s->opts.max_conns = FERRY_DEFAULT_MAX_CONNS;
    if (s->opts.shutdown_grace_ms <= 0)
        s->opts.shutdown_grace_ms = FERRY_DEFAULT_GRACE_MS;
    if (s->opts.write_high_water == 0)
        s->opts.write_high_water = FERRY_DEFAULT_HIGH_WATER;
    if (s->opts.model > FERRY_MODEL_FORK) {
        r = -EINVAL;
        goto fail;
    }
    if (pipe2(s->stop_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        r = -errno;
        goto fail;
    }
    /* A peer that goes away mid-write must cost us an EPIPE, not the process. */
    signal(SIGPIPE, SIG_IGN);
    *out = s;
    return 0;

fail:
    ferry_server_free(s);
    *out = NULL;
    return r;
}

/* A unix socket path that nobody answers on is a leftover from a server
 * that died; one that answers belongs to a live server and must be left. */
static int unix_path_is_stale(const struct ferry_addr *a)
{
    int fd = ferry_connect(a, 1000);
    if (fd >= 0) {
        close(fd);
        return 0;
    }
    return fd == -ECONNREFUSED;
}

int ferry_server_listen(struct ferry_server *s, const char *endpoint, enum ferry_sock_type type,
                        const struct ferry_handler *h, char bound[FERRY_ADDRSTRLEN])
{
    return ferry_server_listen_tls(s, endpoint, type, h, NULL, bound);
}

int ferry_server_listen_tls(struct ferry_server *s, const char *endpoint,
                            enum ferry_sock_type type, const struct ferry_handler *h,
                            struct ferry_tls *tls, char bound[FERRY_ADDRSTRLEN])
{
    struct ferry_listen_opts lo = { .backlog = s->opts.backlog, .reuse_port = s->opts.reuse_port };
    struct listener *l = NULL, **grown;
    struct ferry_addr addr;
    int r;

    if (type == FERRY_SOCK_STREAM && !h->serve && !ferry__handler_is_event(h))
        return -EINVAL;
    if (type == FERRY_SOCK_DGRAM && !h->on_datagram)
        return -EINVAL;
    if (type == FERRY_SOCK_STREAM && !ferry__handler_is_event(h) && s->opts.model == FERRY_MODEL_EVENT)
        return FERRY_EUNSUPPORTED;
    if (h->on_data && h->on_frame)
        return -EINVAL;
    if (tls && type != FERRY_SOCK_STREAM)
        return FERRY_EUNSUPPORTED;   /* DTLS is not offered */

    r = ferry_addr_parse(endpoint, -1, &addr);
    if (r < 0)
        return r;

    l = calloc(1, sizeof *l);
    if (!l)
        return -ENOMEM;
    l->server = s;
    l->type = type;
    l->h = *h;
    l->tls = tls;

    l->fd = ferry_listen(&addr, type, &lo);
    if (l->fd == -EADDRINUSE && addr.ss.ss_family == AF_UNIX && unix_path_is_stale(&addr)) {
        lo.unlink_existing = 1;
        l->fd = ferry_listen(&addr, type, &lo);
    }
    if (l->fd < 0) {
        r = l->fd;
        goto fail;
    }
    if (addr.ss.ss_family == AF_UNIX) {
        const struct sockaddr_un *sun = (const struct sockaddr_un *)&addr.ss;
        snprintf(l->unix_path, sizeof l->unix_path, "%s", sun->sun_path);
    }
    r = ferry_sock_name(l->fd, l->name);
    if (r < 0)
        goto fail;

    grown = realloc(s->listeners, (s->nlisteners + 1) * sizeof *grown);
    if (!grown) {
        r = -ENOMEM;
        goto fail;
    }
    s->listeners = grown;
    s->listeners[s->nlisteners++] = l;
    if (bound)
        memcpy(bound, l->name, FERRY_ADDRSTRLEN);
    return 0;

fail:
    if (l->fd >= 0)
        close(l->fd);
    free(l);
    return r;
}

static void on_signal(int sig)
{
    struct ferry_server *s = atomic_load(&signal_target);
    (void)sig;
    if (s)
        ferry_server_stop(s);
}

void ferry__catch_stop_signal(struct ferry_server *s, int sig)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    atomic_store(&signal_target, s);
    sigaction(sig, &sa, NULL);
}

void ferry_server_stop(struct ferry_server *s)
{
    int saved = errno;   /* we may run inside a signal handler */
    if (!atomic_exchange(&s->stopping, 1)) {
        /* The read end stays readable from now on: every loop and every
         * blocked reader polling it learns of the stop, including forked
         * children, which share the pipe. */
        ssize_t w = write(s->stop_pipe[1], "x", 1);
        (void)w;
    }
    errno = saved;
}

int ferry_server_run(struct ferry_server *s)
{
    struct sigaction sa, old_int, old_term;
    int r;

    if (s->nlisteners == 0)
        return -EINVAL;
    if (atomic_exchange(&s->running, 1))
        return FERRY_ESTATE;

    if (s->opts.handle_signals) {
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        atomic_store(&signal_target, s);
        sigaction(SIGINT, &sa, &old_int);
        sigaction(SIGTERM, &sa, &old_term);
    }
    switch (s->opts.model) {
    case FERRY_MODEL_EVENT:  r = ferry__run_event(s); break;
    case FERRY_MODEL_THREAD: r = ferry__run_thread(s); break;
    case FERRY_MODEL_FORK:   r = ferry__run_fork(s); break;
    default:                 r = -EINVAL; break;
    }

    if (s->opts.handle_signals) {
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
        atomic_store(&signal_target, NULL);
    }
    atomic_store(&s->running, 0);
    return r;
}

void ferry_server_free(struct ferry_server *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nlisteners; i++) {
        struct listener *l = s->listeners[i];
        if (l->fd >= 0)
            close(l->fd);
        if (l->unix_path[0])
            unlink(l->unix_path);
        free(l);
    }
    free(s->listeners);
    if (s->stop_pipe[0] >= 0)
        close(s->stop_pipe[0]);
    if (s->stop_pipe[1] >= 0)
        close(s->stop_pipe[1]);
    free(s);
}

void ferry__log_ready(const struct ferry_server *s)
{
    for (size_t i = 0; i < s->nlisteners; i++) {
        const struct listener *l = s->listeners[i];
        int is_unix = l->unix_path[0] != '\0' || strncmp(l->name, "unix:", 5) == 0;
        const char *proto = l->type == FERRY_SOCK_DGRAM ? (is_unix ? "unixgram" : "udp")
                                                        : (is_unix ? "unix" : "tcp");
        ferry_log_info("listening on %s %s (%s model)", proto, l->name,
                       ferry_model_name(s->opts.model));
    }
}

int ferry__unauth_enabled(const struct ferry_server *s)
{
    return s->opts.max_unauthenticated > 0 && s->opts.handshake_timeout_ms > 0;
}

void ferry__unauth_release(struct ferry_server *s)
{
    atomic_fetch_sub(&s->nunauth, 1);
}

void ferry__conn_released(struct ferry_server *s, int unauth_held)
{
    if (unauth_held)
        ferry__unauth_release(s);
    atomic_fetch_sub(&s->nconns, 1);
}

int ferry__accept(struct listener *l, int nonblock, char peer[FERRY_ADDRSTRLEN])
{
    struct ferry_server *s = l->server;
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
    if (atomic_fetch_add(&s->nconns, 1) >= s->opts.max_conns) {
        atomic_fetch_sub(&s->nconns, 1);
        ferry_log_warn("%s: connection from %s closed: limit of %d connections reached",
                       l->name, peer, s->opts.max_conns);
        close(fd);
        return -EAGAIN;
    }
    if (ferry__unauth_enabled(s) &&
        atomic_fetch_add(&s->nunauth, 1) >= s->opts.max_unauthenticated) {
        atomic_fetch_sub(&s->nunauth, 1);
        atomic_fetch_sub(&s->nconns, 1);
        ferry_log_warn("%s: connection from %s closed: %d connections are already waiting "
                       "to authenticate", l->name, peer, s->opts.max_unauthenticated);
        close(fd);
        return -EAGAIN;
    }
    return fd;
}

void ferry__serve_datagrams(struct listener *l)
{
    /* 64 KiB holds any UDP payload, so nothing is silently truncated. */
    static _Thread_local uint8_t dgram_buf[65536];
    struct ferry_server *s = l->server;

    for (int i = 0; i < 16; i++) {
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

int ferry_datagram_reply(const struct ferry_datagram *d, const void *buf, size_t len)
{
    ssize_t n;
    do {
        n = sendto(d->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL,
                   (const struct sockaddr *)&d->peer.ss, d->peer.len);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : 0;
}
