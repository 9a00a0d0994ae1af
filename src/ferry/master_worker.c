/*
 * master_worker.c - one worker of `ferry master` (master_int.h): a child
 * that connects and authenticates exactly as a command would (dial_open:
 * every check and every message), then serves the clients the master
 * passes it, one at a time, over that one connection.
 *
 * While idle a worker dies with the master (PR_SET_PDEATHSIG) and watches
 * its connection: a server that speaks unasked is closing it (idle
 * timeout, shutdown).  While it relays a session it does not: a command
 * running through it goes on when the master stops, as the command would
 * have without a master.
 */
#include "master_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include "ferry/ferry.h"
#include "master.h"

static const struct ferry_frame_limits ask_limits = { .max_header = 4096, .max_body = 1 };

void master_quiet_stdio(void)
{
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);

    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        close(null);
    }
}

static void tell(int ctl, enum worker_news what)
{
    char c = (char)what;

    /* If the master is gone there is no one to tell. */
    if (send(ctl, &c, 1, MSG_NOSIGNAL) < 0)
        ferry_log_debug("cannot tell the master: %s", strerror(errno));
}

static int reply(struct ferry_transport *t, const struct client_session *s, pid_t master,
                 int ok, const char *message)
{
    json_t *h = json_pack("{s:s, s:b, s:I, s:s, s:b, s:b, s:b, s:b, s:b}", "type", "master",
                          "ok", ok, "pid", (json_int_t)master, "peer", s->peer,
                          "pipeline", s->pipeline, "put_stream", s->put_stream, "glob", s->glob,
                          "keepalive", s->answers_ping, "put_ack", s->put_ack);
    int r;

    if (!h)
        return -ENOMEM;
    if (message)
        json_object_set_new(h, "message", json_string(message));
    r = ferry_frame_write(t, h, NULL, 0, &ask_limits);
    json_decref(h);
    return r;
}

/* The next client from the master: its descriptor, -2 when the master
 * has gone (its end closed), -1 for nothing usable this time. */
static int take_client(int ctl)
{
    char c, ctrl[CMSG_SPACE(sizeof(int))];
    struct iovec iov = { .iov_base = &c, .iov_len = 1 };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl,
                         .msg_controllen = sizeof ctrl };
    struct cmsghdr *cm;
    ssize_t n = recvmsg(ctl, &mh, MSG_CMSG_CLOEXEC);
    int fd;

    if (n == 0)
        return -2;
    if (n < 0)
        return errno == EINTR || errno == EAGAIN ? -1 : -2;
    cm = CMSG_FIRSTHDR(&mh);
    if (!cm || cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS ||
        cm->cmsg_len != CMSG_LEN(sizeof(int)))
        return -1;
    memcpy(&fd, CMSG_DATA(cm), sizeof fd);
    return fd;
}

enum served { SERVED_AGAIN, SERVED_STOP, SERVED_END };

/* The server said something while no one asked it anything: it is going
 * away (or gone).  TLS may also just have taken a ticket: -EAGAIN. */
static int server_still_there(struct ferry_transport *t)
{
    uint8_t b[256];
    ssize_t n = ferry_transport_read(t, b, sizeof b);

    return n == -EAGAIN;
}

/* Nothing came from the server since we last looked (an idle server
 * never speaks unasked): 1, or 0 when it did (it is closing). */
static int server_quiet(struct ferry_transport *t)
{
    struct pollfd p = { .fd = ferry_transport_fd(t), .events = POLLIN };

    return (poll(&p, 1, 0) == 0 && ferry_transport_pending(t) == 0) || server_still_there(t);
}

/* A client asks (PROTOCOL.md 2.9): for our session (relayed here), or
 * whether we run, or that the master stop (which the master answers
 * itself, unless the request was not all there when it looked).  The
 * master checked that the client is our user. */
static enum served serve(struct master *m, int ctl, struct client_session *s,
                         struct ferry_transport *st, int fd)
{
    struct ferry_transport *t = NULL;
    json_t *req = NULL;
    uint64_t body = 0;
    const char *op;
    enum served rc = SERVED_AGAIN;
    int r;

    if (ferry_transport_new_fd(fd, &t) < 0) {
        close(fd);
        return SERVED_AGAIN;
    }
    ferry_transport_set_timeout(t, MASTER_ASK_MS);
    r = ferry_frame_read(t, &ask_limits, &req, &body);
    op = r == 0 && body == 0 ? json_string_value(json_object_get(req, "op")) : NULL;
    if (!op) {
        /* not a client of ours */
    } else if (strcmp(op, "check") == 0) {
        (void)reply(t, s, m->pid, 1, NULL);
    } else if (strcmp(op, "stop") == 0) {
        (void)reply(t, s, m->pid, 1, NULL);
        rc = SERVED_STOP;
    } else if (strcmp(op, "session") == 0 && !server_quiet(st)) {
        /* Gone while we waited (and before we heard): the client connects
         * by itself, and we end. */
        (void)reply(t, s, m->pid, 0, "the server closed the connection");
        tell(ctl, WORKER_LOST);
        rc = SERVED_END;
    } else if (strcmp(op, "session") == 0) {
        /* From here the session is the client's: it goes on if the master
         * stops, and ends (the server then kills what runs) if it leaves. */
        prctl(PR_SET_PDEATHSIG, 0);
        tell(ctl, WORKER_SESSION);
        rc = SERVED_END;
        if (reply(t, s, m->pid, 1, NULL) == 0) {
            ferry_transport_set_timeout(t, 0);
            if (master_relay(t, st) == 1)
                rc = SERVED_AGAIN;   /* released at rest: ready for the next */
        }
    } else {
        (void)reply(t, s, m->pid, 0, "unknown request");
    }
    json_decref(req);
    ferry_transport_free(t);
    return rc;
}

/* Die with the master while idle; 0, or -1 when it is gone already. */
static int bind_to_master(const struct master *m)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    return getppid() == m->pid ? 0 : -1;
}

void master_worker_main(struct master *m, int ctl)
{
    struct client_session *s;
    struct ferry_transport *st;
    int code = 1;

    /* The master's descriptors are not ours (only our control socket is). */
    close(m->listen_fd);
    close(m->lock_fd);
    close(m->sig_fd);
    if (m->ready_fd >= 0)
        close(m->ready_fd);
    for (size_t i = 0; i < m->nw; i++)
        close(m->w[i].ctl);
    for (size_t i = 0; i < m->nq; i++)
        close(m->queue[i].fd);
    signal(SIGCHLD, SIG_DFL);
    sigprocmask(SIG_SETMASK, &m->old_mask, NULL);
    /* Out of the master's process group: Ctrl-C on a foreground master
     * stops the master (which then closes the idle workers), not the
     * sessions running through it. */
    setpgid(0, 0);
    if (bind_to_master(m) < 0)
        _exit(1);
    s = dial_open(m->host, m->o);
    if (!s) {
        tell(ctl, WORKER_FAILED);
        _exit(1);
    }
    master_relay_prepare();
    st = ferry_conn_transport(s->conn);
    if (m->background)
        master_quiet_stdio();   /* the caller's pipes: it waits for them to close */
    tell(ctl, WORKER_READY);
    for (;;) {
        struct pollfd p[2] = { { .fd = ctl, .events = POLLIN },
                               { .fd = ferry_transport_fd(st), .events = POLLIN } };
        enum served r;
        int fd;

        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[1].revents && !server_still_there(st)) {
            tell(ctl, WORKER_LOST);
            break;
        }
        if (!p[0].revents)
            continue;
        fd = take_client(ctl);
        if (fd == -2) {
            code = 0;   /* the master is gone */
            break;
        }
        if (fd < 0)
            continue;
        r = serve(m, ctl, s, st, fd);
        if (r == SERVED_STOP) {
            tell(ctl, WORKER_STOP);
            code = 0;
            break;
        }
        if (r == SERVED_END) {
            code = 0;
            break;
        }
        if (bind_to_master(m) < 0)
            break;
        tell(ctl, WORKER_READY);
    }
    /* close_notify, then out: the session's loop never runs again here. */
    (void)ferry_transport_shutdown_write(st);
    _exit(code);
}
