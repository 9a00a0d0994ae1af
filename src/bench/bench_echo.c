/*
 * bench-echo - the ceiling of this machine for request/response: the
 * smallest epoll echo we could write, for issue 5's benchmarks to measure
 * ferry's servers against.  No framework on the request path: each thread
 * has its own SO_REUSEPORT listener (the kernel spreads connections over
 * them) and its own level-triggered epoll, and every readable connection
 * costs one read() and one write() of what was read.  Only a write the
 * socket does not take whole is kept (the connection then stops being read
 * until it is flushed), so a slow reader cannot make it buffer much.
 *
 *   bench-echo [-l ADDR] [-t THREADS]
 *
 * It prints "listening on tcp HOST:PORT" to stderr once ready (port 0
 * gives an ephemeral port; the real one is printed) and exits on SIGINT or
 * SIGTERM.  libferry is used only to parse the address and bind.
 */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ferry/ferry.h"

#define BUF_LEN        (64u * 1024u)
#define MAX_EVENTS     256
#define ACCEPT_BATCH   64
#define MAX_THREADS    256
#define PAUSE_MS       100     /* out of descriptors: stop accepting this long */

struct conn {
    int fd;
    uint8_t *pend;             /* what a short write left, or NULL */
    size_t off, len;
    struct conn *prev, *next;  /* the thread's connections, to close at exit */
};

struct echo_thread {
    pthread_t thread;
    int epfd;
    int lfd;
    int stop_fd;
    int unix_sock;             /* no TCP_NODELAY on a Unix socket */
    struct conn *conns;
    uint8_t *buf;
};

/* Registration tags for the two descriptors that are not connections. */
static char listener_tag, stop_tag;

static void conn_close(struct echo_thread *t, struct conn *c)
{
    close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        t->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c->pend);
    free(c);
}

static int watch(struct echo_thread *t, int op, int fd, uint32_t events, void *ptr)
{
    struct epoll_event ev = { .events = events, .data.ptr = ptr };

    return epoll_ctl(t->epfd, op, fd, &ev) < 0 ? -errno : 0;
}

/* Accept a batch; returns -EMFILE (or -ENFILE) when out of descriptors. */
static int accept_some(struct echo_thread *t)
{
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int one = 1, fd = accept4(t->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        struct conn *c;

        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE)
                return -errno;
            /* EAGAIN: another thread took it, or the queue is empty;
             * ECONNABORTED and friends: that client is gone.  Either way
             * level triggering brings us back if more are waiting. */
            return 0;
        }
        c = calloc(1, sizeof *c);
        if (!c || (!t->unix_sock && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)) {
            free(c);
            close(fd);
            continue;
        }
        c->fd = fd;
        if (watch(t, EPOLL_CTL_ADD, fd, EPOLLIN, c) < 0) {
            free(c);
            close(fd);
            continue;
        }
        c->next = t->conns;
        if (c->next)
            c->next->prev = c;
        t->conns = c;
    }
    return 0;
}

/* Flush a kept remainder; back to reading once it is gone. */
static void flush_pending(struct echo_thread *t, struct conn *c)
{
    ssize_t n = send(c->fd, c->pend + c->off, c->len - c->off, MSG_NOSIGNAL);

    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            conn_close(t, c);
        return;
    }
    c->off += (size_t)n;
    if (c->off < c->len)
        return;
    free(c->pend);
    c->pend = NULL;
    if (watch(t, EPOLL_CTL_MOD, c->fd, EPOLLIN, c) < 0)
        conn_close(t, c);
}

/* The whole request path: one read, one write of what was read. */
static void echo_once(struct echo_thread *t, struct conn *c)
{
    ssize_t n = read(c->fd, t->buf, BUF_LEN), w;

    if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            conn_close(t, c);
        return;
    }
    w = send(c->fd, t->buf, (size_t)n, MSG_NOSIGNAL);
    if (w == n)
        return;
    if (w < 0) {
        if (errno != EAGAIN && errno != EINTR) {
            conn_close(t, c);
            return;
        }
        w = 0;
    }
    c->len = (size_t)(n - w);
    c->off = 0;
    c->pend = malloc(c->len);
    if (!c->pend) {
        conn_close(t, c);
        return;
    }
    memcpy(c->pend, t->buf + w, c->len);
    if (watch(t, EPOLL_CTL_MOD, c->fd, EPOLLOUT, c) < 0)
        conn_close(t, c);
}

static void *serve(void *arg)
{
    struct echo_thread *t = arg;
    struct epoll_event ev[MAX_EVENTS];
    int paused = 0;

    for (;;) {
        int n = epoll_wait(t->epfd, ev, MAX_EVENTS, paused ? PAUSE_MS : -1);

        if (n < 0 && errno != EINTR)
            break;
        if (n == 0 && paused) {
            if (watch(t, EPOLL_CTL_ADD, t->lfd, EPOLLIN | EPOLLEXCLUSIVE, &listener_tag) < 0)
                break;
            paused = 0;
        }
        for (int i = 0; i < n; i++) {
            void *p = ev[i].data.ptr;

            if (p == &stop_tag)
                goto out;
            if (p != &listener_tag) {
                struct conn *c = p;
                if (c->pend)
                    flush_pending(t, c);
                else
                    echo_once(t, c);
            } else if (accept_some(t) < 0 && !paused) {
                /* Out of descriptors: a level-triggered listener would
                 * spin, so it is left out of the set for a while. */
                if (watch(t, EPOLL_CTL_DEL, t->lfd, 0, NULL) < 0)
                    goto out;
                paused = 1;
            }
        }
    }
out:
    while (t->conns)
        conn_close(t, t->conns);
    return NULL;
}

static int thread_setup(struct echo_thread *t)
{
    t->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (t->epfd < 0)
        return -errno;
    t->buf = malloc(BUF_LEN);
    if (!t->buf)
        return -ENOMEM;
    /* EPOLLEXCLUSIVE matters only for a Unix listener, which all threads
     * share; a TCP thread has a listener of its own. */
    if (watch(t, EPOLL_CTL_ADD, t->lfd, EPOLLIN | EPOLLEXCLUSIVE, &listener_tag) < 0 ||
        watch(t, EPOLL_CTL_ADD, t->stop_fd, EPOLLIN, &stop_tag) < 0)
        return -errno;
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: bench-echo [-l ADDR] [-t THREADS]\n"
        "The benchmark's minimal epoll echo: one read and one write per request.\n"
        "\n"
        "  -l, --listen ADDR     HOST:PORT, [V6]:PORT or unix:/PATH (default 127.0.0.1:0)\n"
        "  -t, --threads N       threads, each with its own SO_REUSEPORT listener (default 1)\n"
        "  -h, --help            show this help\n"
        "  -V, --version         show the version\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "listen", required_argument, NULL, 'l' },
        { "threads", required_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    struct ferry_listen_opts lopts = { .reuse_port = 1, .unlink_existing = 1 };
    struct echo_thread *th = NULL;
    struct ferry_addr a;
    const char *listen = "127.0.0.1:0";
    char name[FERRY_ADDRSTRLEN];
    long nthreads = 1;
    int opt, r = 0, started = 0, status = 1, stop_fd = -1, is_unix, sig;
    uint64_t one = 1;
    sigset_t set;
    char *end;

    while ((opt = getopt_long(argc, argv, "l:t:hV", longopts, NULL)) != -1) {
        switch (opt) {
        case 'l': listen = optarg; break;
        case 't':
            errno = 0;
            nthreads = strtol(optarg, &end, 10);
            if (errno || *end || end == optarg || nthreads < 1 || nthreads > MAX_THREADS) {
                fprintf(stderr, "bench-echo: bad value for -t: '%s'\n", optarg);
                return 2;
            }
            break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("bench-echo (ferry) %s\n", FERRY_VERSION); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    if (ferry_addr_parse(listen, -1, &a) < 0) {
        fprintf(stderr, "bench-echo: bad address '%s'\n", listen);
        return 2;
    }
    is_unix = a.ss.ss_family == AF_UNIX;

    /* Signals are taken by sigwait() here, never by the threads. */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    r = pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (r != 0) {
        fprintf(stderr, "bench-echo: pthread_sigmask: %s\n", strerror(r));
        return 1;
    }
    th = calloc((size_t)nthreads, sizeof *th);
    stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (!th || stop_fd < 0) {
        fprintf(stderr, "bench-echo: %s\n", strerror(th ? errno : ENOMEM));
        goto out;
    }
    for (long i = 0; i < nthreads; i++) {
        th[i].epfd = th[i].lfd = -1;
        th[i].stop_fd = stop_fd;
        th[i].unix_sock = is_unix;
    }
    for (long i = 0; i < nthreads; i++) {
        if (is_unix && i > 0) {
            th[i].lfd = th[0].lfd;   /* no SO_REUSEPORT for Unix sockets: share one */
        } else {
            r = ferry_listen(&a, FERRY_SOCK_STREAM, &lopts);
            if (r < 0) {
                fprintf(stderr, "bench-echo: %s: %s\n", listen, ferry_strerror(r));
                goto out;
            }
            th[i].lfd = r;
        }
        if (i == 0 && !is_unix) {
            /* Port 0: the other threads bind the port the kernel chose. */
            a.len = sizeof a.ss;
            if (getsockname(th[0].lfd, (struct sockaddr *)&a.ss, &a.len) < 0) {
                fprintf(stderr, "bench-echo: getsockname: %s\n", strerror(errno));
                goto out;
            }
        }
        r = thread_setup(&th[i]);
        if (r < 0) {
            fprintf(stderr, "bench-echo: %s\n", strerror(-r));
            goto out;
        }
    }
    for (; started < nthreads; started++) {
        r = pthread_create(&th[started].thread, NULL, serve, &th[started]);
        if (r != 0) {
            fprintf(stderr, "bench-echo: cannot start thread: %s\n", strerror(r));
            goto out;
        }
    }
    r = ferry_sock_name(th[0].lfd, name);
    fprintf(stderr, "bench-echo: listening on %s %s (%ld thread%s)\n", is_unix ? "unix" : "tcp",
            r < 0 ? listen : name, nthreads, nthreads == 1 ? "" : "s");
    if (sigwait(&set, &sig) != 0)
        goto out;
    status = 0;

out:
    if (started > 0 && write(stop_fd, &one, sizeof one) < 0) {
        fprintf(stderr, "bench-echo: cannot stop the threads: %s\n", strerror(errno));
        _exit(1);
    }
    for (int i = 0; i < started; i++)
        pthread_join(th[i].thread, NULL);
    for (long i = 0; th && i < nthreads; i++) {
        if (th[i].epfd >= 0)
            close(th[i].epfd);
        if (th[i].lfd >= 0 && !(is_unix && i > 0))
            close(th[i].lfd);
        free(th[i].buf);
    }
    free(th);
    if (stop_fd >= 0)
        close(stop_fd);
    if (is_unix && started > 0)
        unlink(((struct sockaddr_un *)&a.ss)->sun_path);   /* ours: we bound it */
    return status;
}
