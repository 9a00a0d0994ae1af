/*
 * addr.c - endpoint strings to socket addresses and back, and the listen and
 * connect helpers built on them.  The accepted syntax is described in addr.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ferry/addr.h"
#include "ferry/error.h"
#include "clock.h"

#define UNIX_PREFIX     "unix:"
#define UNIX_PREFIX_LEN (sizeof(UNIX_PREFIX) - 1)

/* ---- parsing ----------------------------------------------------------- */

static int parse_port(const char *s, uint16_t *port)
{
    unsigned long v = 0;

    if (!*s)
        return FERRY_EADDR;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return FERRY_EADDR;
        v = v * 10 + (unsigned long)(*s - '0');
        if (v > 65535)
            return FERRY_EADDR;
    }
    *port = (uint16_t)v;
    return 0;
}

static int parse_unix(const char *path, struct ferry_addr *out)
{
    struct sockaddr_un *sun = (struct sockaddr_un *)&out->ss;
    size_t len = strlen(path);

    /* Keep room for the NUL: not every system accepts an unterminated path. */
    if (len == 0 || len >= sizeof(sun->sun_path))
        return FERRY_EADDR;
    memset(out, 0, sizeof(*out));
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, path, len + 1);
    out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
    return 0;
}

static void set_port(struct ferry_addr *a, uint16_t port)
{
    if (a->ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&a->ss)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)&a->ss)->sin6_port = htons(port);
}

static void set_wildcard(struct ferry_addr *out, uint16_t port)
{
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;

    memset(out, 0, sizeof(*out));
    sin6->sin6_family = AF_INET6;
    sin6->sin6_addr = in6addr_any;
    out->len = sizeof(*sin6);
    set_port(out, port);
}

/* v6_literal: the host was written in brackets, so only an IPv6 address
 * (optionally with a %scope) is acceptable, never a name. */
static int resolve(const char *host, bool v6_literal, uint16_t port, struct ferry_addr *out)
{
    /* No AI_ADDRCONFIG: it drops loopback results on a host whose only
     * interface is lo, which is exactly the offline case. */
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct addrinfo *res = NULL;
    int rc = FERRY_EADDR;

    if (v6_literal) {
        hints.ai_family = AF_INET6;
        hints.ai_flags = AI_NUMERICHOST;
    }
    if (getaddrinfo(host, NULL, &hints, &res) != 0)
        goto out;
    if ((res->ai_family != AF_INET && res->ai_family != AF_INET6) ||
        res->ai_addrlen > sizeof(out->ss))
        goto out;
    memset(out, 0, sizeof(*out));
    memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
    out->len = res->ai_addrlen;
    set_port(out, port);
    rc = 0;
out:
    if (res)
        freeaddrinfo(res);
    return rc;
}

/* An endpoint split into its parts; host is empty for the wildcard. */
struct endpoint {
    char host[NI_MAXHOST];
    uint16_t port;
    bool bracketed;
    bool wildcard;
};

static int split_endpoint(const char *text, int default_port, struct endpoint *ep)
{
    const char *start = text, *port_str = NULL;
    size_t hostlen;

    memset(ep, 0, sizeof(*ep));
    if (text[0] == '[') {
        const char *close = strchr(text, ']');

        if (!close)
            return FERRY_EADDR;
        ep->bracketed = true;
        start = text + 1;
        hostlen = (size_t)(close - start);
        if (close[1] == ':')
            port_str = close + 2;
        else if (close[1] != '\0')
            return FERRY_EADDR;
        if (hostlen == 0)
            return FERRY_EADDR;
    } else {
        const char *colon = strchr(text, ':');

        /* "::1:80" is ambiguous; IPv6 literals must be bracketed. */
        if (colon && strchr(colon + 1, ':'))
            return FERRY_EADDR;
        hostlen = colon ? (size_t)(colon - text) : strlen(text);
        if (colon)
            port_str = colon + 1;
    }
    if (hostlen >= sizeof(ep->host))
        return FERRY_EADDR;
    memcpy(ep->host, start, hostlen);
    ep->host[hostlen] = '\0';

    if (port_str) {
        if (parse_port(port_str, &ep->port) < 0)
            return FERRY_EADDR;
    } else if (default_port >= 0 && default_port <= 65535) {
        ep->port = (uint16_t)default_port;
    } else {
        return FERRY_EADDR;
    }
    ep->wildcard = !ep->bracketed && (hostlen == 0 || strcmp(ep->host, "*") == 0);
    return 0;
}

int ferry_addr_parse(const char *text, int default_port, struct ferry_addr *out)
{
    struct endpoint ep;
    int rc;

    if (!text || !out || !*text)
        return FERRY_EADDR;
    if (strncmp(text, UNIX_PREFIX, UNIX_PREFIX_LEN) == 0)
        return parse_unix(text + UNIX_PREFIX_LEN, out);
    rc = split_endpoint(text, default_port, &ep);
    if (rc < 0)
        return rc;
    if (ep.wildcard) {
        set_wildcard(out, ep.port);
        return 0;
    }
    return resolve(ep.host, ep.bracketed, ep.port, out);
}

int ferry_connect_host(const char *text, int default_port, int timeout_ms, struct ferry_addr *connected)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct addrinfo *res = NULL;
    struct ferry_addr a;
    struct endpoint ep;
    int fd = FERRY_EADDR;

    if (!text || !*text)
        return FERRY_EADDR;
    if (strncmp(text, UNIX_PREFIX, UNIX_PREFIX_LEN) == 0 || text[0] == '[') {
        fd = ferry_addr_parse(text, default_port, &a);
        if (fd == 0)
            fd = ferry_connect(&a, timeout_ms);
        goto out;
    }
    fd = split_endpoint(text, default_port, &ep);
    if (fd < 0 || ep.wildcard) {
        fd = FERRY_EADDR;
        goto out;
    }
    if (getaddrinfo(ep.host, NULL, &hints, &res) != 0) {
        fd = FERRY_EADDR;
        goto out;
    }
    /* A name may stand for several addresses (localhost: ::1 and
     * 127.0.0.1); a server listening on only one of them must still be
     * found, so try each in the resolver's order, as ssh does. */
    fd = FERRY_EADDR;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) || ai->ai_addrlen > sizeof(a.ss))
            continue;
        memset(&a, 0, sizeof(a));
        memcpy(&a.ss, ai->ai_addr, ai->ai_addrlen);
        a.len = ai->ai_addrlen;
        set_port(&a, ep.port);
        fd = ferry_connect(&a, timeout_ms);
        if (fd >= 0)
            break;
    }
out:
    if (res)
        freeaddrinfo(res);
    if (fd >= 0 && connected)
        *connected = a;
    return fd;
}

/* ---- formatting -------------------------------------------------------- */

char *ferry_addr_format(const struct sockaddr *sa, socklen_t len, char *buf)
{
    char ip[INET6_ADDRSTRLEN];

    if (sa && sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
        snprintf(buf, FERRY_ADDRSTRLEN, "%s:%u", ip, (unsigned)ntohs(sin->sin_port));
    } else if (sa && sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        char scope[IF_NAMESIZE + 12] = "";

        inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
        if (sin6->sin6_scope_id != 0) {
            char name[IF_NAMESIZE];

            if (if_indextoname(sin6->sin6_scope_id, name))
                snprintf(scope, sizeof(scope), "%%%s", name);
            else
                snprintf(scope, sizeof(scope), "%%%u", (unsigned)sin6->sin6_scope_id);
        }
        snprintf(buf, FERRY_ADDRSTRLEN, "[%s%s]:%u", ip, scope, (unsigned)ntohs(sin6->sin6_port));
    } else if (sa && sa->sa_family == AF_UNIX) {
        const struct sockaddr_un *sun = (const struct sockaddr_un *)sa;
        size_t off = offsetof(struct sockaddr_un, sun_path);
        size_t max = len > off ? len - off : 0;

        if (max > sizeof(sun->sun_path))
            max = sizeof(sun->sun_path);
        /* Unnamed peers (and abstract names, which we never create) carry
         * no path to show. */
        if (max == 0 || sun->sun_path[0] == '\0')
            snprintf(buf, FERRY_ADDRSTRLEN, UNIX_PREFIX);
        else
            snprintf(buf, FERRY_ADDRSTRLEN, UNIX_PREFIX "%.*s",
                     (int)strnlen(sun->sun_path, max), sun->sun_path);
    } else {
        snprintf(buf, FERRY_ADDRSTRLEN, "?");
    }
    return buf;
}

int ferry_addr_is_loopback(const struct ferry_addr *a)
{
    if (!a)
        return 0;
    if (a->ss.ss_family == AF_UNIX)
        return 1;
    if (a->ss.ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&a->ss;

        return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
    }
    if (a->ss.ss_family == AF_INET6) {
        const struct in6_addr *in6 = &((const struct sockaddr_in6 *)&a->ss)->sin6_addr;

        return IN6_IS_ADDR_LOOPBACK(in6) || (IN6_IS_ADDR_V4MAPPED(in6) && in6->s6_addr[12] == 127);
    }
    return 0;
}

/* ---- sockets ----------------------------------------------------------- */

static int set_int_opt(int fd, int level, int name, int value)
{
    return setsockopt(fd, level, name, &value, sizeof(value)) < 0 ? -errno : 0;
}

static bool is_v6_wildcard(const struct ferry_addr *a)
{
    return a->ss.ss_family == AF_INET6 &&
           IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&a->ss)->sin6_addr);
}

static int remove_stale_socket(const struct ferry_addr *a)
{
    const struct sockaddr_un *sun = (const struct sockaddr_un *)&a->ss;
    char path[sizeof(sun->sun_path) + 1];
    struct stat st;

    snprintf(path, sizeof(path), "%.*s", (int)sizeof(sun->sun_path), sun->sun_path);
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    /* Anything but a socket is somebody's file: leave it and let bind fail. */
    if (!S_ISSOCK(st.st_mode))
        return 0;
    if (unlink(path) < 0 && errno != ENOENT)
        return -errno;
    return 0;
}

static int set_inet_listen_opts(int fd, const struct ferry_addr *a, const struct ferry_listen_opts *opts)
{
    int rc = 0;

    /* Lets a restarted server bind while old connections sit in TIME_WAIT. */
    if (!opts->no_reuse_addr)
        rc = set_int_opt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    if (rc == 0 && opts->reuse_port) {
#ifdef SO_REUSEPORT
        rc = set_int_opt(fd, SOL_SOCKET, SO_REUSEPORT, 1);
#else
        rc = -EOPNOTSUPP;
#endif
    }
    /* "[::]" and "*" promise v4 clients too, whatever the system default. */
    if (rc == 0 && is_v6_wildcard(a))
        rc = set_int_opt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 0);
    return rc;
}

int ferry_listen(const struct ferry_addr *a, enum ferry_sock_type type,
                 const struct ferry_listen_opts *opts)
{
    static const struct ferry_listen_opts defaults;
    int fd = -1, rc, stype;

    if (!a || (type != FERRY_SOCK_STREAM && type != FERRY_SOCK_DGRAM))
        return -EINVAL;
    if (!opts)
        opts = &defaults;
    stype = type == FERRY_SOCK_DGRAM ? SOCK_DGRAM : SOCK_STREAM;

    fd = socket(a->ss.ss_family, stype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    /* Address reuse options mean nothing for unix sockets; reuse_port is
     * ignored there so one set of options can serve every listener. */
    if (a->ss.ss_family == AF_UNIX)
        rc = opts->unlink_existing ? remove_stale_socket(a) : 0;
    else
        rc = set_inet_listen_opts(fd, a, opts);
    if (rc < 0)
        goto out;
    if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0) {
        rc = -errno;
        goto out;
    }
    if (stype == SOCK_STREAM && listen(fd, opts->backlog > 0 ? opts->backlog : SOMAXCONN) < 0) {
        rc = -errno;
        goto out;
    }
    rc = fd;
    fd = -1;    /* now the caller's */
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

/* Finish a non-blocking TCP connect that returned EINPROGRESS (or EINTR,
 * after which the handshake carries on in the background). */
static int wait_connected(int fd, int timeout_ms)
{
    struct pollfd pfd = { .fd = fd, .events = POLLOUT };
    uint64_t deadline = ferry__now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    int err = 0;
    socklen_t len = sizeof(err);

    for (;;) {
        int wait = -1, n;

        if (timeout_ms > 0) {
            uint64_t now = ferry__now_ms();

            if (now >= deadline)
                return -ETIMEDOUT;
            wait = (int)(deadline - now);
        }
        n = poll(&pfd, 1, wait);
        if (n > 0)
            break;
        if (n == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return -errno;
    return -err;
}

/* A unix connect never reports EINPROGRESS: with the listener's backlog full
 * it fails with EAGAIN when non-blocking and waits otherwise.  So connect in
 * blocking mode and bound the wait with SO_SNDTIMEO, which Linux applies to
 * unix connects. */
static int connect_unix(int fd, const struct ferry_addr *a, int timeout_ms)
{
    struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
    struct timeval none = { 0 };
    bool interrupted = false;
    int rc = 0;

    if (timeout_ms > 0 && setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
        return -errno;
    while (connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0) {
        if (errno == EINTR) {
            interrupted = true;
            continue;
        }
        /* The interrupted attempt may have completed after all. */
        if (errno == EISCONN && interrupted)
            break;
        rc = (errno == EAGAIN || errno == EINPROGRESS) ? -ETIMEDOUT : -errno;
        break;
    }
    if (timeout_ms > 0 && setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof(none)) < 0 && rc == 0)
        rc = -errno;
    return rc;
}

static int connect_tcp(int fd, const struct ferry_addr *a, int timeout_ms)
{
    int flags, rc;

    /* Request/response frames are small; Nagle would only delay them. */
    rc = set_int_opt(fd, IPPROTO_TCP, TCP_NODELAY, 1);
    if (rc < 0)
        return rc;
    flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return -errno;
    if (connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0) {
        if (errno != EINPROGRESS && errno != EINTR)
            return -errno;
        rc = wait_connected(fd, timeout_ms);
        if (rc < 0)
            return rc;
    }
    if (fcntl(fd, F_SETFL, flags) < 0)
        return -errno;
    return 0;
}

int ferry_connect(const struct ferry_addr *a, int timeout_ms)
{
    int fd = -1, rc;

    if (!a || timeout_ms < 0)
        return -EINVAL;
    fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    if (a->ss.ss_family == AF_UNIX)
        rc = connect_unix(fd, a, timeout_ms);
    else
        rc = connect_tcp(fd, a, timeout_ms);
    if (rc < 0)
        goto out;
    rc = fd;
    fd = -1;    /* now the caller's */
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

int ferry_connect_start(const struct ferry_addr *a, int *fd)
{
    int s, rc = 0;

    if (!a || !fd)
        return -EINVAL;
    *fd = -1;
    s = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s < 0)
        return -errno;
    /* Request/response frames are small; Nagle would only delay them. */
    if (a->ss.ss_family != AF_UNIX)
        rc = set_int_opt(s, IPPROTO_TCP, TCP_NODELAY, 1);
    if (rc == 0 && connect(s, (const struct sockaddr *)&a->ss, a->len) < 0) {
        /* EINTR: the connect goes on in the background, as EINPROGRESS. */
        if (errno == EINPROGRESS || errno == EINTR)
            rc = FERRY_CONNECT_IN_PROGRESS;
        else
            rc = -errno;
    }
    if (rc < 0) {
        close(s);
        return rc;
    }
    *fd = s;
    return rc;
}

int ferry_connect_finish(int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return -errno;
    return -err;
}

int ferry_sock_name(int fd, char buf[FERRY_ADDRSTRLEN])
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -errno;
    ferry_addr_format((const struct sockaddr *)&ss, len, buf);
    return 0;
}
