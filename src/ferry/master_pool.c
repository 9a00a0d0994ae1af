/*
 * master_pool.c - the master process of `ferry master` (master_int.h):
 * accept clients, pass each to an idle worker, keep workers coming.
 *
 * When to connect is the one policy here.  A worker connects (a TLS
 * handshake on both ends) when a client waits and no worker is free, and
 * once at start.  When every worker is busy and none waits, a new one is
 * made only after SPARE_DELAY_MS: a command that ends within that time
 * frees its worker for the next one, and the handshake does not compete
 * for the CPU with the command it would have served (on a small machine
 * that made commands slower, not faster).  A long command gets a spare
 * beside it.  Workers that fail to connect SPARE_TRIES times in a row stop
 * the master: clients then connect by themselves and say what is wrong.
 */
#include "master_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "ferry/ferry.h"
#include "monoclock.h"

#define SPARE_DELAY_MS 100
#define SPARE_TRIES 3
#define SPARE_RETRY_MS 1000
/* An idle worker beyond the first ends after this long: a burst of
 * parallel commands leaves no crowd of sessions open on the server. */
#define EXTRA_IDLE_MS 30000
/* How long a client waits when every worker holds a session. */
#define FULL_WAIT_MS 1000

void master_say_ready(struct master *m, char what)
{
    if (m->ready_fd < 0)
        return;
    if (write(m->ready_fd, &what, 1) < 0)
        ferry_log_debug("the waiting caller is gone: %s", strerror(errno));
    close(m->ready_fd);
    m->ready_fd = -1;
    /* The caller has its answer (and saw the first worker's words); from
     * now on nobody reads our output, and the caller's pipes must close. */
    master_quiet_stdio();
}

static size_t count(const struct master *m, enum worker_state st)
{
    size_t n = 0;

    for (size_t i = 0; i < m->nw; i++)
        n += m->w[i].state == st;
    return n;
}

static void start_worker(struct master *m)
{
    int sv[2];
    pid_t pid;

    m->retry_at = 0;
    if (m->nw >= MASTER_WORKERS)
        return;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        ferry_log_warn("socketpair: %s", strerror(errno));
        m->retry_at = monoclock_ms() + SPARE_RETRY_MS;
        return;
    }
    pid = fork();
    if (pid == 0) {
        close(sv[0]);
        master_worker_main(m, sv[1]);
    }
    close(sv[1]);
    if (pid < 0) {
        ferry_log_warn("fork: %s", strerror(errno));
        close(sv[0]);
        m->retry_at = monoclock_ms() + SPARE_RETRY_MS;
        return;
    }
    m->w[m->nw++] = (struct worker){ .pid = pid, .ctl = sv[0], .state = W_STARTING,
                                     .since = monoclock_ms() };
}

/* A worker could not connect (or lost its connection at once). */
static void failed(struct master *m)
{
    if (!m->ever_ready || ++m->failures >= SPARE_TRIES) {
        if (m->ever_ready)
            ferry_log_warn("%s: no connection after %d tries; the master stops", m->host,
                           m->failures);
        m->stop = 1;
        return;
    }
    m->retry_at = monoclock_ms() + SPARE_RETRY_MS;
}

static void forget(struct master *m, size_t i)
{
    close(m->w[i].ctl);
    m->w[i] = m->w[--m->nw];
}

/* Pass the client fd to worker i: 0, or -1 when the worker is gone. */
static int hand_over(struct master *m, size_t i, int fd)
{
    char c = 'c', ctrl[CMSG_SPACE(sizeof(int))] = { 0 };
    struct iovec iov = { .iov_base = &c, .iov_len = 1 };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl,
                         .msg_controllen = sizeof ctrl };
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof fd);
    if (sendmsg(m->w[i].ctl, &mh, MSG_NOSIGNAL) < 0)
        return -1;
    m->w[i].state = W_BUSY;
    return 0;
}

/* Close waiting client q (passed on, given up, or gone). */
static void unqueue(struct master *m, size_t q)
{
    close(m->queue[q].fd);
    memmove(m->queue + q, m->queue + q + 1, (--m->nq - q) * sizeof m->queue[0]);
}

static int first_idle(const struct master *m)
{
    for (size_t i = 0; i < m->nw; i++)
        if (m->w[i].state == W_IDLE)
            return (int)i;
    return -1;
}

/* check and stop are the master's own business (PROTOCOL.md 2.9), so it
 * answers them itself: they work while every worker is busy.  1 when the
 * client was answered (then let go), 0 when it is a worker's (a session,
 * or a request not all here yet: the worker reads it). */
static int answer_here(struct master *m, int fd)
{
    static const struct ferry_frame_limits limits = { .max_header = 4096, .max_body = 1 };
    uint8_t in[4 + 4096], *out = NULL;
    json_t *req = NULL, *rep = NULL;
    ssize_t n = recv(fd, in, sizeof in, MSG_PEEK | MSG_DONTWAIT);
    uint64_t body = 1;
    uint32_t len;
    size_t outlen = 0;
    const char *op = NULL;
    int done = 0;

    if (n < 4)
        return 0;
    len = (uint32_t)in[0] | (uint32_t)in[1] << 8 | (uint32_t)in[2] << 16 | (uint32_t)in[3] << 24;
    if (len == 0 || len > limits.max_header || (size_t)n < 4 + (size_t)len ||
        ferry_frame_decode_header(in + 4, len, &limits, &req, &body) < 0)
        return 0;
    op = body == 0 ? json_string_value(json_object_get(req, "op")) : NULL;
    if (op && (strcmp(op, "check") == 0 || strcmp(op, "stop") == 0)) {
        rep = json_pack("{s:s, s:b, s:I, s:s}", "type", "master", "ok", 1, "pid",
                        (json_int_t)m->pid, "peer", m->host);
        /* The answer is small and the client waits for it: its socket
         * takes it at once, or the client has gone. */
        if (rep && ferry_frame_encode(rep, 0, &limits, &out, &outlen) == 0 &&
            send(fd, out, outlen, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
            ferry_log_debug("a client of the master went: %s", strerror(errno));
        if (strcmp(op, "stop") == 0)
            m->stop = 1;
        done = 1;
    }
    free(out);
    json_decref(rep);
    json_decref(req);
    return done;
}

/* Waiting clients that have spoken to idle workers, in order; workers for
 * those still waiting.  One that has not spoken yet waits here, not in a
 * worker (where it would hold a connection it may never use). */
static void dispatch(struct master *m)
{
    size_t spoke = 0;

    for (size_t q = 0; q < m->nq;) {
        int i;

        if (!m->queue[q].spoke) {
            q++;
            continue;
        }
        if (!m->queue[q].peeked++ && answer_here(m, m->queue[q].fd)) {
            unqueue(m, q);
            continue;
        }
        i = first_idle(m);
        if (i < 0) {
            spoke++;
            q++;
            continue;
        }
        if (hand_over(m, (size_t)i, m->queue[q].fd) < 0) {
            forget(m, (size_t)i);   /* its end is closed: it is gone */
            continue;
        }
        unqueue(m, q);
    }
    if (spoke > count(m, W_STARTING) && !m->stop && !m->retry_at) {
        start_worker(m);
    } else if (spoke > 0 && m->failures > 0 && !count(m, W_STARTING)) {
        /* Workers fail to connect (the server is down, say), and the next
         * try is a second away: those waiting connect by themselves now,
         * and say what is wrong, instead of waiting for it. */
        for (size_t q = m->nq; q-- > 0;)
            if (m->queue[q].spoke)
                unqueue(m, q);
    }
}

/* Only our own user may talk to us (the directory says so too). */
static int peer_is_us(int fd)
{
    struct ucred cred;
    socklen_t len = sizeof cred;

    return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.uid == getuid();
}

/* Whether fd has something to read (or has ended), now. */
static int readable(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };

    return poll(&p, 1, 0) > 0;
}

static void on_accept(struct master *m)
{
    for (;;) {
        int fd = accept4(m->listen_fd, NULL, NULL, SOCK_CLOEXEC);

        if (fd < 0)
            break;   /* EAGAIN; or gone before we took it */
        if (m->nq == MASTER_QUEUE || !peer_is_us(fd)) {
            close(fd);   /* the client connects by itself; or not ours */
            continue;
        }
        /* Ours write their request right after connecting: usually it is
         * here already. */
        m->queue[m->nq++] = (struct waiting){ .fd = fd, .since = monoclock_ms(),
                                              .spoke = readable(fd) };
    }
    dispatch(m);
}

/* Clients that said nothing for MASTER_ASK_MS are let go, and so are
 * those that waited FULL_WAIT_MS while every worker there may be holds a
 * session (long commands, shells): one of ours then connects by itself
 * rather than wait for one to end.  The next such time is folded into
 * *due. */
static void expire_waiting(struct master *m, uint64_t now, uint64_t *due)
{
    int full = m->nw == MASTER_WORKERS && !count(m, W_IDLE) && !count(m, W_STARTING);

    for (size_t q = 0; q < m->nq;) {
        uint64_t end = m->queue[q].since + (m->queue[q].spoke ? FULL_WAIT_MS : MASTER_ASK_MS);

        if (m->queue[q].spoke && !full) {
            q++;
        } else if (now >= end) {
            unqueue(m, q);
        } else {
            *due = end < *due ? end : *due;
            q++;
        }
    }
}

/* What worker i says; 0, or -1 when it has ended (forgotten). */
static int on_worker(struct master *m, size_t i)
{
    struct worker *w = &m->w[i];
    char c;
    ssize_t n = recv(w->ctl, &c, 1, MSG_DONTWAIT);

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (n <= 0) {
        /* Ended: a session it relayed is over, or it died. */
        if (w->state == W_STARTING)
            failed(m);
        forget(m, i);
        return -1;
    }
    switch (c) {
    case WORKER_READY:
        w->state = W_IDLE;
        w->idle_at = monoclock_ms();
        m->ever_ready = 1;
        m->failures = 0;
        master_say_ready(m, 'y');
        break;
    case WORKER_SESSION:
        w->state = W_SESSION;
        break;
    case WORKER_FAILED:
        w->state = W_BUSY;   /* it is ending; its close is not a second failure */
        failed(m);
        break;
    case WORKER_LOST:
        /* The server let an idle session go: only a failure if it does
         * that at once. */
        if (monoclock_ms() - w->since < SPARE_RETRY_MS)
            failed(m);
        w->state = W_BUSY;
        break;
    case WORKER_STOP:
        m->stop = 1;
        break;
    }
    return 0;
}

static void on_signal(struct master *m)
{
    struct signalfd_siginfo si;
    int status;

    while (read(m->sig_fd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGCHLD)
            while (waitpid(-1, &status, WNOHANG) > 0)
                ;
        else
            m->stop = 1;
    }
}

/* Idle workers beyond the first that have idled EXTRA_IDLE_MS end (their
 * control socket closed, they close their session); the next such time
 * is folded into *due. */
static void retire_extra(struct master *m, uint64_t now, uint64_t *due)
{
    size_t idle = count(m, W_IDLE);

    for (size_t i = m->nw; i-- > 0 && idle > 1;) {
        struct worker *w = &m->w[i];
        if (w->state != W_IDLE)
            continue;
        if (now >= w->idle_at + EXTRA_IDLE_MS) {
            forget(m, i);
            idle--;
        } else if (w->idle_at + EXTRA_IDLE_MS < *due) {
            *due = w->idle_at + EXTRA_IDLE_MS;
        }
    }
}

/* No idle worker and none on the way: one after SPARE_DELAY_MS. */
static void plan_spare(struct master *m, uint64_t now)
{
    if (m->stop || m->retry_at || count(m, W_IDLE) || count(m, W_STARTING))
        return;
    m->retry_at = now + SPARE_DELAY_MS;
}

/* A session runs or a client waits for a worker: not idle (a --check is
 * not a use; nor is a client that has not said what it wants). */
static int busy(const struct master *m)
{
    for (size_t q = 0; q < m->nq; q++)
        if (m->queue[q].spoke)
            return 1;
    return count(m, W_SESSION) > 0;
}

int master_run(struct master *m)
{
    struct pollfd p[2 + MASTER_WORKERS + MASTER_QUEUE];

    m->idle_since = monoclock_ms();
    start_worker(m);
    while (!m->stop) {
        uint64_t now = monoclock_ms(), due = m->retry_at ? m->retry_at : UINT64_MAX;
        int was_busy = busy(m), timeout = -1;
        size_t n = 2, nw = m->nw, nq;

        if (m->persist > 0 && !was_busy) {
            uint64_t end = m->idle_since + (uint64_t)(m->persist * 1000.0);
            if (now >= end) {
                ferry_log_debug("idle for %gs: the master stops", m->persist);
                break;
            }
            due = end < due ? end : due;
        }
        retire_extra(m, now, &due);
        expire_waiting(m, now, &due);
        nw = m->nw;
        nq = m->nq;
        if (due != UINT64_MAX)
            timeout = due <= now ? 0 : (due - now > 60000 ? 60000 : (int)(due - now));
        p[0] = (struct pollfd){ .fd = m->listen_fd, .events = POLLIN };
        p[1] = (struct pollfd){ .fd = m->sig_fd, .events = POLLIN };
        for (size_t i = 0; i < nw; i++)
            p[n++] = (struct pollfd){ .fd = m->w[i].ctl, .events = POLLIN };
        for (size_t q = 0; q < nq; q++)
            p[n++] = (struct pollfd){ .fd = m->queue[q].spoke ? -1 : m->queue[q].fd,
                                      .events = POLLIN };
        if (poll(p, n, timeout) < 0 && errno != EINTR)
            break;
        /* Before anything moves the queue: p[2 + nw + q] is queue[q]. */
        for (size_t q = 0; q < nq; q++)
            m->queue[q].spoke |= p[2 + nw + q].revents != 0;
        /* Workers first, from the last: forget() moves the last into i. */
        for (size_t i = nw; i-- > 0;)
            if (p[2 + i].revents)
                (void)on_worker(m, i);
        if (p[1].revents)
            on_signal(m);
        if (p[0].revents)
            on_accept(m);
        dispatch(m);
        now = monoclock_ms();
        if (m->retry_at && now >= m->retry_at && !m->stop) {
            if (!count(m, W_IDLE) && !count(m, W_STARTING))
                start_worker(m);
            else
                m->retry_at = 0;
        }
        plan_spare(m, now);
        if (was_busy && !busy(m))
            m->idle_since = now;
    }
    /* The socket goes first, so no client waits on a master that ends.
     * Idle workers end their sessions properly when their control socket
     * closes; one still connecting follows us (PR_SET_PDEATHSIG); a busy
     * one relays its session to its end. */
    unlink(m->path);
    for (size_t i = 0; i < m->nq; i++)
        close(m->queue[i].fd);
    m->nq = 0;
    while (m->nw > 0)
        forget(m, m->nw - 1);
    return m->ever_ready ? 0 : FERRY_EXIT_ERROR;
}
