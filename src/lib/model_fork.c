/*
 * model_fork.c - FERRY_MODEL_FORK: a process per connection, as sshd and
 * dropbear do.
 *
 * Children are tracked by pidfd (Linux 5.3+): the acceptor loop watches
 * each one and reaps exactly that child when it becomes readable, so we
 * never reap a process we did not start.  Where pidfd_open is missing, a
 * short periodic timer polls our own children with waitpid(pid, WNOHANG).
 * Children learn of a graceful stop through the server's stop pipe, which
 * they share; when the grace period is over the stragglers get SIGKILL.
 */
#include "acceptor.h"
#include "conn_int.h"
#include "stop.h"
#include "loop_int.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ferry/error.h"
#include "ferry/log.h"

#define REAP_POLL_MS 200

struct child {
    pid_t pid;
    int pidfd;                  /* -1 when polling instead */
    /* Read end of the pipe whose write end the child closes when its
     * connection authenticates (or it exits): until then the child holds a
     * not-yet-authenticated slot.  -1 once the slot is given back. */
    int auth_fd;
    struct fork_model *fm;
    struct list_node link;      /* in fm->children */
};

struct fork_model {
    struct acceptor a;
    int new_auth_fd;            /* read end of the auth pipe while forking, else -1 */
    struct list_node children;  /* struct child.link */
    size_t nchildren;
    struct ferry_timer *poll_timer;
};

static int open_pidfd(pid_t pid)
{
#ifdef SYS_pidfd_open
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd >= 0) {
        /* pidfd_open sets CLOEXEC itself. */
        return fd;
    }
#endif
    (void)pid;
    return -1;
}

static void remove_child(struct fork_model *fm, struct child *ch)
{
    if (ch->pidfd >= 0) {
        ferry_loop_remove(fm->a.loop, ch->pidfd);
        close(ch->pidfd);
    }
    list_unlink(&ch->link);
    fm->nchildren--;
    if (ch->auth_fd >= 0) {
        ferry_loop_remove(fm->a.loop, ch->auth_fd);
        close(ch->auth_fd);
    }
    if (ch->auth_fd >= 0)
        ferry__slot_unauth_release_pid(&fm->a.server->slots, ch->pid);
    ferry__slot_release(&fm->a.server->slots, 0, -1);
    free(ch);
}

/* Reap ch if it has exited; returns 1 when it was reaped. */
static int try_reap(struct fork_model *fm, struct child *ch)
{
    int status;
    pid_t r;

    do {
        r = waitpid(ch->pid, &status, WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == 0)
        return 0;
    if (r > 0 && WIFSIGNALED(status))
        ferry_log_debug("connection process %d killed by signal %d", (int)ch->pid, WTERMSIG(status));
    remove_child(fm, ch);
    return 1;
}

/* The child closed its end: its connection authenticated (or it is gone). */
static void on_auth_pipe(struct ferry_loop *loop, int fd, unsigned events, void *arg)
{
    struct child *ch = arg;
    char byte;
    ssize_t n = read(fd, &byte, 1);
    (void)events;

    if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR)))
        return;   /* nothing is ever written; only the end counts */
    ferry_loop_remove(loop, fd);
    close(fd);
    ch->auth_fd = -1;
    ferry__slot_unauth_release_pid(&ch->fm->a.server->slots, ch->pid);
}

static void on_pidfd(struct ferry_loop *loop, int fd, unsigned events, void *arg)
{
    struct child *ch = arg;
    struct fork_model *fm = ch->fm;
    (void)loop;
    (void)fd;
    (void)events;
    if (try_reap(fm, ch))
        ferry__acceptor_check_done(&fm->a);
}

static void on_poll_timer(struct ferry_loop *loop, struct ferry_timer *t, void *arg)
{
    struct fork_model *fm = arg;
    struct list_node *n, *tmp;
    (void)loop;

    list_for_each_safe(n, tmp, &fm->children) {
        struct child *ch = list_entry(n, struct child, link);
        if (ch->pidfd < 0)
            try_reap(fm, ch);
    }
    ferry_timer_restart(t, REAP_POLL_MS);
    ferry__acceptor_check_done(&fm->a);
}

/* In a new child: close what the parent's accepting side owns (listeners,
 * its loop, the pidfds of the other children), so a connection process
 * holds only its connection, the stop pipe and what the program itself
 * opened.  Descriptors the embedding program owns are its business. */
static void drop_parent_descriptors(struct fork_model *fm)
{
    struct ferry_server *s = fm->a.server;
    struct list_node *n;

    for (size_t i = 0; i < s->nlisteners; i++)
        close(s->listeners[i]->fd);
    list_for_each(n, &fm->children) {
        struct child *ch = list_entry(n, struct child, link);
        if (ch->pidfd >= 0)
            close(ch->pidfd);
        if (ch->auth_fd >= 0)
            close(ch->auth_fd);
    }
    if (fm->new_auth_fd >= 0)
        close(fm->new_auth_fd);
    ferry__loop_forget_after_fork(fm->a.loop);
    close(s->stop_pipe[0]);
    close(s->stop_pipe[1]);
    s->stop_pipe[0] = s->stop_pipe[1] = -1;
}

/* In the child: serve one connection and exit without returning into the
 * parent's stack. */
static void __attribute__((noreturn)) child_main(struct fork_model *fm, struct listener *l,
                                                 int fd, const char *peer, const sigset_t *saved_mask)
{
    struct ferry_server *s = fm->a.server;
    struct sigaction sa;

    /*
     * A stop of our own: SIGTERM (the parent sends it when the server stops,
     * and a service manager may send it to everyone) stops this connection
     * gracefully on its own stop pipe, so the handler's on_shutdown and
     * on_close run and whatever it started (ferryd's commands) is ended,
     * not orphaned.  SIGINT from a terminal reaches the whole process group;
     * the parent turns it into that SIGTERM, so it is ignored here.  SIGTERM
     * stays blocked (since before fork) until the new pipe is in place.
     */
    drop_parent_descriptors(fm);
    atomic_store(&s->stopping, 0);
    if (pipe2(s->stop_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        ferry_log_error("connection process: cannot make its stop pipe: %s", strerror(errno));
        _exit(1);
    }
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGINT, &sa, NULL);
    ferry__stop_catch_signal(s, SIGTERM, NULL);
    sigprocmask(SIG_SETMASK, saved_mask, NULL);

    if (ferry__handler_is_event(&l->h))
        ferry__conn_run_private(s, l, fd, peer);
    else
        ferry__conn_run_blocking(s, l, fd, peer, NULL, NULL);
    _exit(0);
}

static void start_child(struct acceptor *a, struct listener *l, int fd, const char *peer)
{
    struct fork_model *fm = a->model;
    struct ferry_server *s = a->server;
    struct child *ch = calloc(1, sizeof *ch);
    int auth_pipe[2] = { -1, -1 };
    pid_t pid;

    if (!ch) {
        ferry_log_warn("cannot serve %s: out of memory", peer);
        goto fail;
    }
    ch->auth_fd = -1;
    if (s->slots.unauth_capped && pipe2(auth_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        ferry_log_warn("cannot serve %s: %s", peer, strerror(errno));
        goto fail;
    }
    /* The child inherits both: it keeps the write end (closed at
     * authentication, see ferry_conn_set_authenticated) and drops the read
     * end with the rest of the parent's descriptors. */
    s->auth_notify_fd = auth_pipe[1];
    fm->new_auth_fd = auth_pipe[0];
    sigset_t term, saved;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigprocmask(SIG_BLOCK, &term, &saved);
    pid = fork();
    if (pid == 0)
        child_main(fm, l, fd, peer, &saved);
    sigprocmask(SIG_SETMASK, &saved, NULL);
    s->auth_notify_fd = -1;
    fm->new_auth_fd = -1;
    if (auth_pipe[1] >= 0)
        close(auth_pipe[1]);
    if (pid < 0) {
        ferry_log_warn("cannot fork for %s: %s", peer, strerror(errno));
        goto fail;
    }

    /* The slot follows the connection into the child (evicted by pid). */
    ferry__slot_unauth_to_pid(&s->slots, fd, pid);
    close(fd);
    ch->pid = pid;
    ch->fm = fm;
    if (auth_pipe[0] >= 0) {
        ch->auth_fd = auth_pipe[0];
        auth_pipe[0] = -1;
        if (ferry_loop_add(a->loop, ch->auth_fd, FERRY_READABLE, on_auth_pipe, ch) < 0) {
            close(ch->auth_fd);   /* cannot track it: give the slot back now */
            ch->auth_fd = -1;
            ferry__slot_unauth_release_pid(&s->slots, pid);
        }
    }
    ch->pidfd = open_pidfd(pid);
    if (ch->pidfd >= 0 && ferry_loop_add(a->loop, ch->pidfd, FERRY_READABLE, on_pidfd, ch) < 0) {
        close(ch->pidfd);
        ch->pidfd = -1;
    }
    if (ch->pidfd < 0 && !fm->poll_timer)
        fm->poll_timer = ferry_loop_timer(a->loop, REAP_POLL_MS, on_poll_timer, fm);
    list_push(&fm->children, &ch->link);
    fm->nchildren++;
    return;

fail:
    if (auth_pipe[0] >= 0)
        close(auth_pipe[0]);
    free(ch);
    ferry__slot_release(&s->slots, s->slots.unauth_capped, fd);   /* before the close */
    close(fd);
}

static size_t live_children(struct acceptor *a)
{
    struct fork_model *fm = a->model;
    return fm->nchildren;
}

static void stop_children(struct acceptor *a)
{
    struct fork_model *fm = a->model;
    struct list_node *n;

    list_for_each(n, &fm->children)
        kill(list_entry(n, struct child, link)->pid, SIGTERM);
}

static void kill_children(struct acceptor *a)
{
    struct fork_model *fm = a->model;
    struct list_node *n;

    list_for_each(n, &fm->children)
        kill(list_entry(n, struct child, link)->pid, SIGKILL);
}

static const struct acceptor_ops fork_ops = {
    .start = start_child,
    .live = live_children,
    .stopping = stop_children,
    .force = kill_children,
    /* A child's own grace timer starts a moment after ours; let it end
     * first, so it is the child that ends its connection cleanly. */
    .extra_grace_ms = 1000,
};

int ferry__run_fork(struct ferry_server *s)
{
    struct fork_model fm;
    int r;

    memset(&fm, 0, sizeof fm);
    list_init(&fm.children);
    fm.new_auth_fd = -1;
    r = ferry__acceptor_init(&fm.a, s, &fork_ops, &fm);
    if (r == 0) {
        ferry__admission_log_ready(s, "fork");
        r = ferry__acceptor_run(&fm.a);
    }
    /* Normally every child has been reaped by now; after a loop failure,
     * make sure none is left behind. */
    while (!list_empty(&fm.children)) {
        struct child *ch = list_entry(fm.children.next, struct child, link);
        kill(ch->pid, SIGKILL);
        while (waitpid(ch->pid, NULL, 0) < 0 && errno == EINTR)
            ;
        remove_child(&fm, ch);
    }
    ferry_timer_cancel(fm.poll_timer);
    ferry__acceptor_destroy(&fm.a);
    return r;
}
