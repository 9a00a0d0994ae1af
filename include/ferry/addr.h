/*
 * addr.h - endpoints from one string, and the sockets behind them.
 *
 *   HOST:PORT       127.0.0.1:7171, localhost:0, *:8080 (all interfaces)
 *   [V6ADDR]:PORT   [::1]:7171, [::]:7171 (dual-stack: v4 too)
 *   unix:/PATH      a Unix stream (or datagram) socket at PATH
 *
 * A default port may be supplied for strings that omit it ("HOST").
 * Port 0 asks the kernel for an ephemeral port; read it back with
 * ferry_addr_format() on the bound socket's address.
 */
#ifndef FERRY_ADDR_H
#define FERRY_ADDR_H

#include "ferry/common.h"

#include <stddef.h>
#include <sys/socket.h>

FERRY_BEGIN_DECLS

struct ferry_addr {
    struct sockaddr_storage ss;
    socklen_t len;
};

enum ferry_sock_type { FERRY_SOCK_STREAM = 0, FERRY_SOCK_DGRAM = 1 };

#define FERRY_ADDRSTRLEN 128   /* enough for "unix:" + sun_path or "[v6%scope]:65535" */

/*
 * Parse `text` into *out.  Host names are resolved (first result,
 * preferring what getaddrinfo returns first); "*" or an empty host means
 * the IPv6 wildcard with dual-stack.  default_port (< 0: none) is used when
 * the string has no ":PORT".  Returns 0 or FERRY_EADDR (bad syntax, port
 * out of range, path too long, unknown host).
 */
FERRY_EXPORT FERRY_NODISCARD int ferry_addr_parse(const char *text, int default_port, struct ferry_addr *out);

/* Render an address as the same syntax ferry_addr_parse accepts.
 * buf must hold FERRY_ADDRSTRLEN bytes.  Returns buf. */
FERRY_EXPORT char *ferry_addr_format(const struct sockaddr *sa, socklen_t len, char *buf);

/* True for loopback (127/8, ::1, v4-mapped loopback) and unix: addresses. */
FERRY_EXPORT int ferry_addr_is_loopback(const struct ferry_addr *a);

struct ferry_listen_opts {
    int backlog;         /* 0 means SOMAXCONN */
    int reuse_port;      /* SO_REUSEPORT (TCP/UDP only) */
    int no_reuse_addr;   /* SO_REUSEADDR is on unless this is set */
    int unlink_existing; /* unix: remove a stale socket file first (only if it is a socket) */
};

/* Create, bind and (for streams) listen; CLOEXEC and non-blocking.
 * Returns the fd or a negative error. opts may be NULL. */
FERRY_EXPORT FERRY_NODISCARD int ferry_listen(const struct ferry_addr *a, enum ferry_sock_type type,
                 const struct ferry_listen_opts *opts);

/* Connect a stream socket (blocking, CLOEXEC), with a timeout in ms
 * (0 = the system's).  Returns the fd or a negative error. */
FERRY_EXPORT FERRY_NODISCARD int ferry_connect(const struct ferry_addr *a, int timeout_ms);

/*
 * Connect without waiting, for a loop with many connects in flight.
 * ferry_connect_start makes a non-blocking, CLOEXEC stream socket (with
 * TCP_NODELAY for TCP) into *fd and starts connecting it to a; it returns
 *   0                          connected already (as a unix socket is),
 *   FERRY_CONNECT_IN_PROGRESS  under way: watch *fd for FERRY_WRITABLE,
 *                              then ask ferry_connect_finish how it went,
 *   < 0                        failed (no fd): -ECONNREFUSED, ...; a unix
 *                              listener whose backlog is full gives -EAGAIN.
 * "In progress" is a positive result, never an error code.  The socket
 * stays non-blocking.  ferry_connect_finish returns 0 when the connect
 * succeeded, else the -errno it failed with (SO_ERROR); the caller closes
 * the fd either way on failure.
 */
#define FERRY_CONNECT_IN_PROGRESS 1
FERRY_EXPORT FERRY_NODISCARD int ferry_connect_start(const struct ferry_addr *a, int *fd);
FERRY_EXPORT FERRY_NODISCARD int ferry_connect_finish(int fd);

/* Connect a stream socket to an endpoint given as text (addr.h syntax),
 * trying every address a name resolves to, in the resolver's order, until
 * one answers (timeout_ms applies to each attempt).  Returns the fd and, if
 * connected != NULL, the address that answered; or FERRY_EADDR when the
 * text is bad or resolves to nothing, else the last attempt's -errno. */
FERRY_EXPORT FERRY_NODISCARD int ferry_connect_host(const char *text, int default_port, int timeout_ms, struct ferry_addr *connected);

/* The locally bound address of fd, formatted; returns 0 or -errno. */
FERRY_EXPORT int ferry_sock_name(int fd, char buf[FERRY_ADDRSTRLEN]);

FERRY_END_DECLS

#endif
