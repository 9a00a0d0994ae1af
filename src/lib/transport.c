/*
 * transport.c - connection I/O behind an ops table.
 *
 * Two tables live here: one for sockets (sendmsg with MSG_NOSIGNAL, a
 * real half-close) and one for other stream descriptors such as pipes
 * (writev with SIGPIPE held off); the kind is detected once, when the
 * transport is created.  The third, TLS, is in tls.c.  The generic layer
 * above the ops (EINTR, timeouts, waiting for a self-polling transport,
 * the *_full loops) is shared by all three.  Zero copy both ways lives
 * with the sockets: sendfile out, and splice through a pipe the transport
 * keeps for recvfile in.
 */
#include "ferry/transport.h"
#include "ferry/error.h"
#include "buf.h"
#include "clock.h"
#include "transport_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/sendfile.h>
#endif

/*
 * writev and sendfile have no MSG_NOSIGNAL, so SIGPIPE is blocked for this
 * thread around the call, and a SIGPIPE the call raised is collected
 * before unblocking.  One that was already pending beforehand belongs to
 * someone else and is left alone.
 */
/* Set once the process ignores SIGPIPE for good: the guard is then three
 * system calls per write for nothing. */
static atomic_int sigpipe_ignored;

void ferry_ignore_sigpipe(void)
{
    signal(SIGPIPE, SIG_IGN);
    atomic_store(&sigpipe_ignored, 1);
}

void ferry__sigpipe_hold(struct sigpipe_guard *g)
{
    sigset_t pipe_set, pending;

    g->skip = atomic_load_explicit(&sigpipe_ignored, memory_order_relaxed);
    if (g->skip)
        return;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigpending(&pending);
    g->was_pending = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &g->old);
}

void ferry__sigpipe_release(struct sigpipe_guard *g, int err)
{
    if (g->skip)
        return;
    if (err == EPIPE && !g->was_pending) {
        static const struct timespec zero = { 0, 0 };
        sigset_t pipe_set;
        sigemptyset(&pipe_set);
        sigaddset(&pipe_set, SIGPIPE);
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* ---- sockets ------------------------------------------------------------- */

static ssize_t sock_read(struct ferry_transport *t, void *buf, size_t len, int dontwait)
{
    ssize_t n = recv(t->fd, buf, len, dontwait ? MSG_DONTWAIT : 0);
    return n < 0 ? -errno : n;
}

static ssize_t sock_writev(struct ferry_transport *t, const struct iovec *iov, int iovcnt,
                           int dontwait)
{
    struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt };
    ssize_t n = sendmsg(t->fd, &msg, MSG_NOSIGNAL | (dontwait ? MSG_DONTWAIT : 0));
    return n < 0 ? -errno : n;
}

static int sock_shutdown_write(struct ferry_transport *t)
{
    return shutdown(t->fd, SHUT_WR) < 0 ? -errno : 0;
}

/* Linux closes the descriptor even when close() reports EINTR, so it is
 * never retried: a retry could close a descriptor another thread just got. */
static void fd_close(struct ferry_transport *t)
{
    close(t->fd);
}

#ifdef __linux__
/* sendfile(2) to a socket whose peer is gone raises SIGPIPE like write(2);
 * it takes no MSG_NOSIGNAL, so the signal is held off around it. */
static ssize_t sock_sendfile(struct ferry_transport *t, int in_fd, off_t *off, size_t len)
{
    struct sigpipe_guard g;
    ssize_t n;
    int saved;

    ferry__sigpipe_hold(&g);
    n = sendfile(t->fd, in_fd, off, len);
    saved = n < 0 ? errno : 0;
    ferry__sigpipe_release(&g, saved);
    return n < 0 ? -saved : n;
}
#define SOCK_SENDFILE sock_sendfile
#else
#define SOCK_SENDFILE NULL
#endif

#ifdef __linux__
/* What recvfile's pipe is grown to where the system allows it
 * (fs.pipe-max-size, 1 MiB by default): one splice pair moves up to this. */
#define SPLICE_PIPE_SIZE (1024 * 1024)

static void splice_pipe_close(struct ferry_transport *t)
{
    if (t->splice_cap == 0)
        return;
    close(t->splice_pipe[0]);
    close(t->splice_pipe[1]);
    t->splice_cap = 0;
}

static int splice_pipe_open(struct ferry_transport *t)
{
    int size;

    if (t->splice_cap > 0)
        return 0;
    if (pipe2(t->splice_pipe, O_CLOEXEC) < 0)
        return -errno;
    (void)fcntl(t->splice_pipe[1], F_SETPIPE_SZ, SPLICE_PIPE_SIZE);   /* best effort */
    size = fcntl(t->splice_pipe[1], F_GETPIPE_SZ);
    t->splice_cap = size > 0 ? (size_t)size : 64 * 1024;
    return 0;
}

/* The copying fallbacks' buffer: the transport's own, made when first
 * needed (most transports never copy).  As static thread-local storage
 * it was zeroed by the start of every thread of every program linking
 * libferry, a fresh `ferry` command's among them. */
#define COPY_BUF_SIZE (64 * 1024)

static uint8_t *copy_buffer(struct ferry_transport *t)
{
    if (!t->copy_buf)
        t->copy_buf = malloc(COPY_BUF_SIZE);
    return t->copy_buf;
}

/* The pipe's `left` bytes into out_fd at *off by read and pwrite, for a
 * file system that takes no splice.  0 or the file's -errno. */
static int drain_pipe_by_copy(struct ferry_transport *t, int out_fd, off_t *off, size_t left)
{
    uint8_t *buf = copy_buffer(t);

    if (!buf)
        return -ENOMEM;
    while (left > 0) {
        ssize_t got = read(t->splice_pipe[0], buf, left < COPY_BUF_SIZE ? left : COPY_BUF_SIZE);
        int r;

        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return got < 0 ? -errno : -EIO;
        r = ferry__pwrite_all(out_fd, buf, (size_t)got, (uint64_t)*off);
        if (r < 0)
            return r;
        *off += got;
        left -= (size_t)got;
    }
    return 0;
}

/*
 * Socket -> pipe, then pipe -> file until the pipe is empty again, so each
 * call starts with an empty pipe and the pipe holds exactly the bytes this
 * call took.  Only the socket side may block (as recv would): the pipe has
 * room for everything asked of it.
 */
static ssize_t sock_recvfile(struct ferry_transport *t, int out_fd, uint64_t *offset, size_t len,
                             int *file_err)
{
    off_t off = (off_t)*offset;
    ssize_t got;
    size_t left;
    int r = splice_pipe_open(t);

    if (r < 0)
        return r;
    do
        got = splice(t->fd, NULL, t->splice_pipe[1], NULL, len < t->splice_cap ? len : t->splice_cap,
                     SPLICE_F_MOVE);
    while (got < 0 && errno == EINTR);
    if (got < 0) {
        /* Nothing was taken: the caller can still read these bytes. */
        if (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)
            return FERRY_EUNSUPPORTED;
        return -errno;
    }
    for (left = (size_t)got; left > 0;) {
        loff_t pos = (loff_t)off;
        ssize_t w = splice(t->splice_pipe[0], NULL, out_fd, &pos, left, SPLICE_F_MOVE);

        if (w > 0) {
            off += w;
            left -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        r = w == 0 ? -EIO : -errno;
        /* A file system without splice: these bytes by copy. */
        if (r == -EINVAL || r == -EOPNOTSUPP || r == -ENOSYS)
            r = drain_pipe_by_copy(t, out_fd, &off, left);
        if (r < 0) {
            /* What is left in the pipe is lost with it: start clean. */
            splice_pipe_close(t);
            *offset = (uint64_t)off;
            *file_err = r;
            return r;
        }
        break;
    }
    *offset = (uint64_t)off;
    return got;
}
#define SOCK_RECVFILE sock_recvfile

/* Pipe -> socket (ferry_transport_sendpipe).  The pages move by reference
 * (splice(2) into a TCP socket takes no copy), so the command's bytes are
 * copied once, when it writes them into its pipe. */
static ssize_t sock_sendpipe(struct ferry_transport *t, int pipe_fd, size_t len)
{
    struct sigpipe_guard g;
    ssize_t n;
    int saved;

    ferry__sigpipe_hold(&g);
    do
        n = splice(pipe_fd, NULL, t->fd, NULL, len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    while (n < 0 && errno == EINTR);
    saved = n < 0 ? errno : 0;
    ferry__sigpipe_release(&g, saved);
    if (n < 0 && (saved == EINVAL || saved == ENOSYS || saved == EOPNOTSUPP))
        return FERRY_EUNSUPPORTED;
    return n < 0 ? -saved : n;
}

/* Socket -> pipe (ferry_transport_recvpipe).  The pipe side blocks while
 * the pipe is full, as write(2) to it would: that is the backpressure.  A
 * non-blocking pipe is refused: its "full" would read as "no input yet". */
static ssize_t sock_recvpipe(struct ferry_transport *t, int pipe_fd, size_t len)
{
    struct sigpipe_guard g;
    ssize_t n;
    int saved, fl = fcntl(pipe_fd, F_GETFL);

    if (fl < 0)
        return -errno;
    if (fl & O_NONBLOCK)
        return FERRY_EUNSUPPORTED;
    ferry__sigpipe_hold(&g);
    do
        n = splice(t->fd, NULL, pipe_fd, NULL, len, SPLICE_F_MOVE);
    while (n < 0 && errno == EINTR);
    saved = n < 0 ? errno : 0;
    ferry__sigpipe_release(&g, saved);
    if (n < 0 && (saved == EINVAL || saved == ENOSYS || saved == EOPNOTSUPP))
        return FERRY_EUNSUPPORTED;
    return n < 0 ? -saved : n;
}
#define SOCK_SENDPIPE sock_sendpipe
#define SOCK_RECVPIPE sock_recvpipe
#else
#define SOCK_SENDPIPE NULL
#define SOCK_RECVPIPE NULL
#define SOCK_RECVFILE NULL
static void splice_pipe_close(struct ferry_transport *t)
{
    (void)t;
}
#endif

static const struct transport_ops socket_ops = {
    .read = sock_read,
    .writev = sock_writev,
    .shutdown_write = sock_shutdown_write,
    .close = fd_close,
    .sendfile = SOCK_SENDFILE,
    .recvfile = SOCK_RECVFILE,
    .sendpipe = SOCK_SENDPIPE,
    .recvpipe = SOCK_RECVPIPE,
};

/* ---- other stream descriptors (pipes, ttys, files) ------------------------ */

static ssize_t plain_read(struct ferry_transport *t, void *buf, size_t len, int dontwait)
{
    ssize_t n = read(t->fd, buf, len);
    return n < 0 ? -errno : n;
}

static ssize_t plain_writev(struct ferry_transport *t, const struct iovec *iov, int iovcnt,
                            int dontwait)
{
    struct sigpipe_guard g;
    ssize_t n;
    int saved;

    (void)dontwait;
    ferry__sigpipe_hold(&g);
    n = writev(t->fd, iov, iovcnt);
    saved = n < 0 ? errno : 0;
    ferry__sigpipe_release(&g, saved);
    return n < 0 ? -saved : n;
}

static int plain_shutdown_write(struct ferry_transport *t)
{
    return FERRY_EUNSUPPORTED;
}

static const struct transport_ops plain_ops = {
    .read = plain_read,
    .writev = plain_writev,
    .shutdown_write = plain_shutdown_write,
    .close = fd_close,
};

/* ---- generic layer ------------------------------------------------------- */

int ferry_transport_new_fd(int fd, struct ferry_transport **out)
{
    struct ferry_transport *t = calloc(1, sizeof *t);
    struct stat st;

    *out = NULL;
    if (!t)
        return -ENOMEM;
    t->ops = fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) ? &socket_ops : &plain_ops;
    t->fd = fd;
    *out = t;
    return 0;
}

void ferry_transport_free(struct ferry_transport *t)
{
    if (!t)
        return;
    splice_pipe_close(t);
    t->ops->close(t);
    free(t->copy_buf);
    free(t);
}

int ferry_transport_fd(const struct ferry_transport *t)
{
    return t->fd;
}

static int is_nonblocking(const struct ferry_transport *t)
{
    int flags;

    if (t->self_polling)
        return t->nonblocking;
    flags = fcntl(t->fd, F_GETFL);
    return flags >= 0 && (flags & O_NONBLOCK);
}

int ferry_transport_set_nonblocking(struct ferry_transport *t, int on)
{
    int flags;

    if (t->self_polling) {
        t->nonblocking = on != 0;
        return 0;
    }
    flags = fcntl(t->fd, F_GETFL);
    if (flags < 0 || fcntl(t->fd, F_SETFL, on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

void ferry_transport_set_timeout(struct ferry_transport *t, int timeout_ms)
{
    /* A non-blocking transport already never waits: polling would make it. */
    if (timeout_ms < 0 || is_nonblocking(t))
        timeout_ms = 0;
    t->timeout_ms = timeout_ms;
}

/* Wait until fd is ready for `events` or the deadline passes (-1: never).
 * Readiness includes errors and hang-ups: the following I/O call reports
 * those. */
int ferry__transport_wait(const struct ferry_transport *t, short events, int64_t deadline)
{
    struct pollfd pfd = { .fd = t->fd, .events = events };

    for (;;) {
        int64_t left = deadline < 0 ? -1 : deadline - (int64_t)ferry__now_ms();
        int n;

        if (deadline >= 0 && left <= 0)
            return -ETIMEDOUT;
        n = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -errno;
    }
}

/*
 * One read or write through the ops, with the transport's blocking
 * behaviour.  A plain descriptor with a timeout is polled first and then
 * tried without blocking; one without blocks in the kernel.  A
 * self-polling transport (TLS) is tried first: its ops may have buffered
 * what is asked for, and only they know which way they must wait.
 */
enum io_dir { IO_READ, IO_WRITE };

static ssize_t do_io(struct ferry_transport *t, enum io_dir dir, void *buf, size_t len,
                     const struct iovec *iov, int iovcnt)
{
    int timed = t->timeout_ms > 0;
    int64_t deadline = timed ? (int64_t)ferry__now_ms() + t->timeout_ms : -1;
    short plain_events = dir == IO_READ ? POLLIN : POLLOUT;

    for (;;) {
        ssize_t n;

        if (timed && !t->self_polling) {
            int rc = ferry__transport_wait(t, plain_events, deadline);
            if (rc < 0)
                return rc;
        }
        n = dir == IO_READ ? t->ops->read(t, buf, len, timed)
                           : t->ops->writev(t, iov, iovcnt, timed);
        if (n == -EINTR)
            continue;
        if (n == -EAGAIN && t->self_polling && !t->nonblocking) {
            int rc = ferry__transport_wait(t, t->want, deadline);
            if (rc < 0)
                return rc;
            continue;
        }
        /* With a timeout, EAGAIN means poll's readiness was stale. */
        if (n == -EAGAIN && timed && !t->self_polling)
            continue;
        if (n == -EAGAIN && !t->self_polling)
            t->want = plain_events;
        return n;
    }
}

ssize_t ferry_transport_read(struct ferry_transport *t, void *buf, size_t len)
{
    return do_io(t, IO_READ, buf, len, NULL, 0);
}

ssize_t ferry_transport_writev(struct ferry_transport *t, const struct iovec *iov, int iovcnt)
{
    /* More than IOV_MAX entries would fail outright; a short write of the
     * first IOV_MAX is what the caller's loop expects anyway. */
    if (iovcnt > IOV_MAX)
        iovcnt = IOV_MAX;
    return do_io(t, IO_WRITE, NULL, 0, iov, iovcnt);
}

int ferry_transport_handshake(struct ferry_transport *t)
{
    int64_t deadline = t->timeout_ms > 0 ? (int64_t)ferry__now_ms() + t->timeout_ms : -1;

    if (!t->ops->handshake)
        return 0;
    for (;;) {
        int r = t->ops->handshake(t);

        if (r == -EINTR)
            continue;
        if (r != -EAGAIN || t->nonblocking)
            return r;
        r = ferry__transport_wait(t, t->want, deadline);
        if (r < 0)
            return r;
    }
}

short ferry_transport_wants(const struct ferry_transport *t)
{
    return t->want ? t->want : POLLIN;
}

int ferry_transport_pending(const struct ferry_transport *t)
{
    return t->ops->pending ? t->ops->pending(t) : 0;
}

int ferry_transport_read_full(struct ferry_transport *t, void *buf, size_t len)
{
    /* A one-entry iovec is a writable cursor that buf.c knows how to move. */
    struct iovec one = { .iov_base = buf, .iov_len = len };
    struct iovec *left = &one;
    int cnt = len > 0;

    while (cnt > 0) {
        ssize_t n = ferry_transport_read(t, left->iov_base, left->iov_len);

        if (n < 0)
            return (int)n;
        if (n == 0)
            return left->iov_len == len ? FERRY_EEOF : FERRY_ETRUNCATED;
        ferry_iov_advance(&left, &cnt, (size_t)n);
    }
    return 0;
}

int ferry_transport_write_full(struct ferry_transport *t, const void *buf, size_t len)
{
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

    return ferry_transport_writev_full(t, &iov, 1);
}

int ferry_transport_writev_full(struct ferry_transport *t, struct iovec *iov, int iovcnt)
{
    /* Drop leading empty entries so "nothing left" is iovcnt == 0. */
    ferry_iov_advance(&iov, &iovcnt, 0);
    while (iovcnt > 0) {
        ssize_t n = ferry_transport_writev(t, iov, iovcnt);

        if (n < 0)
            return (int)n;
        /* A stream write that moves nothing would spin forever. */
        if (n == 0)
            return -EIO;
        ferry_iov_advance(&iov, &iovcnt, (size_t)n);
    }
    return 0;
}

int ferry_transport_shutdown_write(struct ferry_transport *t)
{
    return t->ops->shutdown_write(t);
}

/* Without a zero-copy path: one pread into a bounded buffer, one write. */
static ssize_t read_then_write(struct ferry_transport *t, int in_fd, off_t *off, size_t len)
{
    uint8_t *buf = copy_buffer(t);
    struct iovec iov;
    ssize_t n;

    if (!buf)
        return -ENOMEM;
    if (len > COPY_BUF_SIZE)
        len = COPY_BUF_SIZE;
    do
        n = pread(in_fd, buf, len, *off);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return n < 0 ? -errno : 0;
    iov = (struct iovec){ buf, (size_t)n };
    n = t->ops->writev(t, &iov, 1, 1);
    if (n > 0)
        *off += n;
    return n;
}

ssize_t ferry_transport_sendfile(struct ferry_transport *t, int in_fd, uint64_t *offset, size_t len)
{
    int64_t deadline;
    off_t off;
    ssize_t n;

    if (*offset > (uint64_t)INT64_MAX || len > (size_t)SSIZE_MAX)
        return -EINVAL;
    if (len == 0)
        return 0;
    off = (off_t)*offset;
    deadline = t->timeout_ms > 0 ? (int64_t)ferry__now_ms() + t->timeout_ms : -1;
    for (;;) {
        n = t->ops->sendfile ? t->ops->sendfile(t, in_fd, &off, len) : FERRY_EUNSUPPORTED;
        if (n == FERRY_EUNSUPPORTED)
            n = read_then_write(t, in_fd, &off, len);
        if (n == -EINTR)
            continue;
        if (n == -EAGAIN && t->self_polling && !t->nonblocking) {
            int r = ferry__transport_wait(t, t->want, deadline);
            if (r < 0)
                return r;
            continue;
        }
        break;
    }
    if (n > 0)
        *offset = (uint64_t)off;
    return n;
}

int ferry__pwrite_all(int fd, const void *data, size_t len, uint64_t off)
{
    struct ferry_slice left = ferry_slice_make(data, len);

    while (left.len > 0) {
        ssize_t w = pwrite(fd, left.p, left.len, (off_t)off);

        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        if (w == 0)
            return -EIO;
        ferry_slice_advance(&left, (size_t)w);
        off += (uint64_t)w;
    }
    return 0;
}

ssize_t ferry_transport_recvfile(struct ferry_transport *t, int out_fd, uint64_t *offset, size_t len,
                                 int *file_err)
{
    int ignored;

    if (!file_err)
        file_err = &ignored;
    *file_err = 0;
    if (*offset > (uint64_t)INT64_MAX || len > (size_t)SSIZE_MAX)
        return -EINVAL;
    if (len == 0)
        return 0;
    if (!t->ops->recvfile)
        return FERRY_EUNSUPPORTED;
    return t->ops->recvfile(t, out_fd, offset, len, file_err);
}

ssize_t ferry_transport_sendpipe(struct ferry_transport *t, int pipe_fd, size_t len)
{
    if (len > (size_t)SSIZE_MAX)
        return -EINVAL;
    if (!t->ops->sendpipe)
        return FERRY_EUNSUPPORTED;
    if (len == 0)
        return 0;
    return t->ops->sendpipe(t, pipe_fd, len);
}

ssize_t ferry_transport_recvpipe(struct ferry_transport *t, int pipe_fd, size_t len)
{
    if (len > (size_t)SSIZE_MAX)
        return -EINVAL;
    if (!t->ops->recvpipe)
        return FERRY_EUNSUPPORTED;
    if (len == 0)
        return 0;
    return t->ops->recvpipe(t, pipe_fd, len);
}

int ferry__transport_sends_pipes(const struct ferry_transport *t)
{
    return t->ops->sendpipe != NULL;
}
