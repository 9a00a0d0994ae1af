/*
 * server.c - the server object: options, listeners, running one of the
 * concurrency models, stopping.  It only calls down: into the models
 * (model_event.c, model_thread.c, model_fork.c), which admit connections
 * through admission.c and run them with conn.c, and into stop.c.
 */
#include "conn_int.h"
#include "ferry/transport.h"
#include "stop.h"

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

int ferry_model_parse(const char *name, enum ferry_model *out)
{
    static const char *const names[] = { "event", "thread", "fork" };
    for (int i = 0; name && i < 3; i++) {   /* NULL: getenv's unset variable */
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
    if (s->opts.max_unauthenticated > 0 && s->opts.handshake_timeout_ms > 0) {
        r = ferry__slots_init(&s->slots, s->opts.max_unauthenticated, s->opts.handshake_timeout_ms,
                              s->opts.unauth_penalty_ms, s->opts.unauth_timeout_penalty_ms);
        if (r < 0)
            goto fail;
    }
    if (s->opts.unauth_v4_bits <= 0 || s->opts.unauth_v4_bits > 32)
        s->opts.unauth_v4_bits = 32;
    if (s->opts.unauth_v6_bits <= 0 || s->opts.unauth_v6_bits > 128)
        s->opts.unauth_v6_bits = 128;
    if (s->opts.model > FERRY_MODEL_FORK) {
        r = -EINVAL;
        goto fail;
    }
    if (pipe2(s->stop_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        r = -errno;
        goto fail;
    }
    /* A peer that goes away mid-write must cost us an EPIPE, not the process. */
    ferry_ignore_sigpipe();
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

/* The checks a handler must pass for an endpoint of this type, whether
 * the server binds it or adopts it. */
static int check_handler(const struct ferry_server *s, enum ferry_sock_type type,
                         const struct ferry_handler *h, const struct ferry_tls *tls)
{
    if (!h)
        return -EINVAL;   /* a caller's slip: refused, not dereferenced */
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
    return 0;
}

/* Name a listener from its socket and append it to the server's list; on
 * failure nothing is kept and the caller still owns l and its fd. */
static int add_listener(struct ferry_server *s, struct listener *l, char bound[FERRY_ADDRSTRLEN])
{
    struct listener **grown;
    int r = ferry_sock_name(l->fd, l->name);

    if (r < 0)
        return r;
    grown = realloc(s->listeners, (s->nlisteners + 1) * sizeof *grown);
    if (!grown)
        return -ENOMEM;
    s->listeners = grown;
    s->listeners[s->nlisteners++] = l;
    if (bound)
        memcpy(bound, l->name, FERRY_ADDRSTRLEN);
    return 0;
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
    struct listener *l = NULL;
    struct ferry_addr addr;
    int r;

    r = check_handler(s, type, h, tls);
    if (r < 0)
        return r;
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
    r = add_listener(s, l, bound);
    if (r == 0)
        return 0;

fail:
    if (l->fd >= 0)
        close(l->fd);
    free(l);
    return r;
}

int ferry_server_listen_fd(struct ferry_server *s, int fd, const struct ferry_handler *h,
                           struct ferry_tls *tls, char bound[FERRY_ADDRSTRLEN])
{
    return ferry_server_listen_fd_from(s, fd, NULL, h, tls, bound);
}

int ferry_server_listen_fd_from(struct ferry_server *s, int fd, const char *origin,
                                const struct ferry_handler *h, struct ferry_tls *tls,
                                char bound[FERRY_ADDRSTRLEN])
{
    struct listener *l = NULL;
    int so_type = 0, accepting = 0, flags, r;
    socklen_t len = sizeof so_type;
    enum ferry_sock_type type;

    if (fd < 0)
        return -EBADF;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &so_type, &len) < 0)
        return -errno;   /* ENOTSOCK for anything but a socket */
    if (so_type == SOCK_STREAM) {
        len = sizeof accepting;
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) < 0)
            return -errno;
        if (!accepting)
            return -EINVAL;   /* a connected socket, or one never listen()ed on */
        type = FERRY_SOCK_STREAM;
    } else if (so_type == SOCK_DGRAM) {
        type = FERRY_SOCK_DGRAM;
    } else {
        return FERRY_EUNSUPPORTED;
    }
    r = check_handler(s, type, h, tls);
    if (r < 0)
        return r;
    /* Whoever bound it may have left it blocking or inheritable (systemd
     * does both unless told otherwise); every model polls before it
     * accepts and must never block in accept4, and no child may keep it. */
    flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return -errno;
    flags = fcntl(fd, F_GETFD);
    if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0)
        return -errno;

    l = calloc(1, sizeof *l);
    if (!l)
        return -ENOMEM;
    l->server = s;
    l->fd = fd;
    l->type = type;
    l->h = *h;
    l->tls = tls;
    if (origin)
        snprintf(l->origin, sizeof l->origin, "%s", origin);
    /* unix_path stays empty: a socket file we did not create is not ours
     * to unlink. */
    r = add_listener(s, l, bound);
    if (r < 0)
        free(l);   /* the fd stays the caller's */
    return r;
}

void ferry_server_stop(struct ferry_server *s)
{
    ferry__stop_request(s);
}

int ferry_server_connections(const struct ferry_server *s)
{
    return atomic_load(&s->slots.live);
}

void ferry_server_on_stop(struct ferry_server *s, void (*fn)(struct ferry_server *s, void *arg),
                          void *arg)
{
    s->on_stop = fn;
    s->on_stop_arg = arg;
}

int ferry_server_run(struct ferry_server *s)
{
    struct sigaction old_int, old_term;
    int r;

    if (s->nlisteners == 0)
        return -EINVAL;
    if (atomic_exchange(&s->running, 1))
        return FERRY_ESTATE;

    if (s->opts.handle_signals) {
        ferry__stop_catch_signal(s, SIGINT, &old_int);
        ferry__stop_catch_signal(s, SIGTERM, &old_term);
    }
    switch (s->opts.model) {
    case FERRY_MODEL_EVENT:  r = ferry__run_event(s); break;
    case FERRY_MODEL_THREAD: r = ferry__run_thread(s); break;
    case FERRY_MODEL_FORK:   r = ferry__run_fork(s); break;
    default:                 r = -EINVAL; break;
    }

    if (s->opts.handle_signals) {
        ferry__stop_restore_signal(SIGINT, &old_int);
        ferry__stop_restore_signal(SIGTERM, &old_term);
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
    ferry__slots_free(&s->slots);
    free(s);
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
