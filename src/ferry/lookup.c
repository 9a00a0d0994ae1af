/*
 * lookup.c - host names to addresses without blocking a loop (lookup.h):
 * the answers that need no network, the worker threads for the others,
 * and the pipe that brings their answers to the loop.
 */
#include "lookup.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define SYSTEM_HOSTS "/etc/hosts"
#define SYSTEM_NSSWITCH "/etc/nsswitch.conf"
/* A hosts file larger than this (ad-blocking lists reach a few MB) is
 * not indexed: its names go to the workers like any other. */
#define HOSTS_FILE_MAX (16u << 20)

enum lookup_state { Q_QUEUED, Q_RUNNING, Q_DONE };

struct lookup {
    struct lookup *next;         /* on the queue or the done list */
    struct lookup_pool *pool;
    enum lookup_state state;     /* under the pool's mutex */
    int cancelled;               /* Q_RUNNING: the worker frees it */
    lookup_cb *cb;
    void *arg;
    uint16_t port;
    int max;
    int n;                       /* the answer, written by the worker */
    struct ferry_addr addrs[LOOKUP_MAX_ADDRS];
    char name[LOOKUP_NAME_MAX + 1];
};

/* A worker's place in the pool: what its thread is given. */
struct worker_slot {
    struct lookup_pool *pool;
    pthread_t tid;
    int busy;                    /* in resolve(), under the pool's mutex */
};

struct lookup_pool {
    /* Shared with the workers, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned refs;               /* the owner's, and one per worker */
    unsigned threads, idle, queued, max_threads;
    struct worker_slot slots[LOOKUP_MAX_THREADS];   /* [0, threads) */
    int stopping;                /* the owner has let go */
    int wfd;                     /* the pipe's write end; -1 once closed */
    struct lookup *queue, *queue_tail, *done, *done_tail;
    /* The loop's thread only. */
    struct ferry_loop *loop;
    int rfd;
    char *hosts_text;            /* the hosts file's names, NUL-separated */
    const char **hosts;          /* ... sorted (strcasecmp) */
    size_t nhosts;
};

/* ---- answers ------------------------------------------------------------------ */

/* res's IPv4 and IPv6 addresses with port, in the resolver's order: the
 * count (at most max), or FERRY_EADDR when none. */
static int take_addrs(const struct addrinfo *res, uint16_t port, struct ferry_addr *out, int max)
{
    int n = 0;

    for (const struct addrinfo *ai = res; ai && n < max; ai = ai->ai_next) {
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            ai->ai_addrlen > sizeof out[n].ss)
            continue;
        memset(&out[n], 0, sizeof out[n]);
        memcpy(&out[n].ss, ai->ai_addr, ai->ai_addrlen);
        out[n].len = ai->ai_addrlen;
        if (ai->ai_family == AF_INET)
            ((struct sockaddr_in *)&out[n].ss)->sin_port = htons(port);
        else
            ((struct sockaddr_in6 *)&out[n].ss)->sin6_port = htons(port);
        n++;
    }
    return n > 0 ? n : FERRY_EADDR;
}

/* getaddrinfo with flags: the count, FERRY_EADDR, or (numeric only) 0
 * when name is not an address. */
static int resolve(const char *name, int flags, uint16_t port, struct ferry_addr *out, int max)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = flags }, *res = NULL;
    int rc = getaddrinfo(name, NULL, &hints, &res);

    if (rc == EAI_NONAME && (flags & AI_NUMERICHOST))
        return 0;
    if (rc != 0)
        return FERRY_EADDR;
    rc = take_addrs(res, port, out, max);
    freeaddrinfo(res);
    return rc;
}

/* ---- the hosts file -------------------------------------------------------------- */

/* Does nsswitch.conf send host names to the hosts file first?  Only then
 * does getaddrinfo answer a name it lists without asking DNS. */
static int files_first(void)
{
    char line[512];
    FILE *f = fopen(SYSTEM_NSSWITCH, "re");
    int yes = 0;

    if (!f)
        return 0;
    while (fgets(line, sizeof line, f)) {
        char *p = line + strspn(line, " \t");

        if (strncmp(p, "hosts:", 6) != 0)
            continue;
        p += 6 + strspn(p + 6, " \t");
        yes = strncmp(p, "files", 5) == 0 && (!p[5] || isspace((unsigned char)p[5]));
        break;
    }
    fclose(f);
    return yes;
}

static int cmp_names(const void *a, const void *b)
{
    return strcasecmp(*(const char *const *)a, *(const char *const *)b);
}

/* The whole of path (a regular file within HOSTS_FILE_MAX), or NULL. */
static char *slurp(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    struct stat st;
    char *text = NULL;
    size_t have = 0;

    if (fd < 0)
        return NULL;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size < HOSTS_FILE_MAX &&
        (text = malloc((size_t)st.st_size + 1)) != NULL) {
        while (have < (size_t)st.st_size) {
            ssize_t n = read(fd, text + have, (size_t)st.st_size - have);

            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            have += (size_t)n;
        }
        text[have] = '\0';
    }
    close(fd);
    return text;
}

/* Index the names the hosts file lists ("ADDRESS NAME ALIAS... # ...").
 * Without it (unreadable, too big, out of memory) every name goes to a
 * worker: slower for those names, never wrong. */
static void load_hosts(struct lookup_pool *p, const char *path)
{
    char *text = slurp(path), *save = NULL;
    size_t cap = 0;

    if (!text)
        return;
    p->hosts_text = text;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *wsave = NULL, *w;

        line[strcspn(line, "#")] = '\0';
        if (!strtok_r(line, " \t\r", &wsave))
            continue;   /* blank, or only the address */
        while ((w = strtok_r(NULL, " \t\r", &wsave)) != NULL) {
            if (p->nhosts == cap) {
                size_t ncap = cap ? cap * 2 : 64;
                const char **g = realloc(p->hosts, ncap * sizeof *g);

                if (!g) {
                    free(p->hosts);
                    p->hosts = NULL;
                    p->nhosts = 0;
                    return;
                }
                p->hosts = g;
                cap = ncap;
            }
            p->hosts[p->nhosts++] = w;
        }
    }
    if (p->nhosts)
        qsort(p->hosts, p->nhosts, sizeof *p->hosts, cmp_names);
}

static int in_hosts_file(const struct lookup_pool *p, const char *name)
{
    return p->nhosts && bsearch(&name, p->hosts, p->nhosts, sizeof *p->hosts, cmp_names);
}

/* ---- the shared part ----------------------------------------------------------- */

static void free_list(struct lookup *q)
{
    while (q) {
        struct lookup *next = q->next;

        free(q);
        q = next;
    }
}

/* Let go of one reference (mu held, and released here); the last one
 * frees the pool's shared part. */
static void unref_locked(struct lookup_pool *p)
{
    int last = --p->refs == 0;

    pthread_mutex_unlock(&p->mu);
    if (!last)
        return;
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* ---- the workers --------------------------------------------------------------- */

static void *worker(void *arg)
{
    struct worker_slot *self = arg;
    struct lookup_pool *p = self->pool;

    pthread_mutex_lock(&p->mu);
    for (;;) {
        struct lookup *q;
        int n;

        while (!p->stopping && !p->queue) {
            p->idle++;
            pthread_cond_wait(&p->cv, &p->mu);
            p->idle--;
        }
        if (p->stopping)
            break;
        q = p->queue;
        p->queue = q->next;
        if (!p->queue)
            p->queue_tail = NULL;
        p->queued--;
        q->state = Q_RUNNING;
        self->busy = 1;
        pthread_mutex_unlock(&p->mu);

        /* The only slow part, with nothing held: q is ours alone now. */
        n = resolve(q->name, 0, q->port, q->addrs, q->max);

        pthread_mutex_lock(&p->mu);
        self->busy = 0;
        if (q->cancelled || p->stopping) {
            free(q);
            continue;
        }
        q->n = n;
        q->state = Q_DONE;
        q->next = NULL;
        if (p->done_tail)
            p->done_tail->next = q;
        else
            p->done = q;
        p->done_tail = q;
        if (p->wfd >= 0) {
            ssize_t w;

            do {
                w = write(p->wfd, "", 1);
            } while (w < 0 && errno == EINTR);
            /* A full pipe (EAGAIN) has its wake-up waiting already. */
        }
    }
    unref_locked(p);
    return NULL;
}

/* Another worker, with every signal blocked: signals are the main
 * thread's (signals.c).  Joinable: lookup_pool_free joins the idle ones
 * and detaches those still in a lookup.  0 or -errno.  mu held. */
static int add_worker(struct lookup_pool *p)
{
    struct worker_slot *w = &p->slots[p->threads];
    sigset_t all, old;
    int rc;

    w->pool = p;
    w->busy = 0;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&w->tid, NULL, worker, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return -rc;
    p->threads++;
    p->refs++;
    return 0;
}

/* ---- the loop's side ------------------------------------------------------------- */

/* Answers are in: hand each to its callback, one at a time, so that a
 * callback may cancel any other request. */
static void on_answers(struct ferry_loop *loop, int fd, unsigned events, void *arg)
{
    struct lookup_pool *p = arg;
    char drain[64];

    (void)loop;
    (void)events;
    while (read(fd, drain, sizeof drain) > 0)
        ;
    for (;;) {
        struct lookup *q;

        pthread_mutex_lock(&p->mu);
        q = p->done;
        if (q) {
            p->done = q->next;
            if (!p->done)
                p->done_tail = NULL;
        }
        pthread_mutex_unlock(&p->mu);
        if (!q)
            break;
        q->cb(q->arg, q->n, q->addrs);
        free(q);
    }
}

int lookup_pool_new(struct ferry_loop *loop, unsigned max_threads, const char *hosts_file,
                    struct lookup_pool **out)
{
    struct lookup_pool *p = calloc(1, sizeof *p);
    int fds[2], rc;

    *out = NULL;
    if (!p)
        return -ENOMEM;
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0) {
        rc = -errno;
        free(p);
        return rc;
    }
    p->rfd = fds[0];
    p->wfd = fds[1];
    p->loop = loop;
    p->refs = 1;
    p->max_threads = max_threads < 1 ? 1
                   : max_threads > LOOKUP_MAX_THREADS ? LOOKUP_MAX_THREADS : max_threads;
    rc = pthread_mutex_init(&p->mu, NULL);
    if (rc == 0 && (rc = pthread_cond_init(&p->cv, NULL)) != 0)
        pthread_mutex_destroy(&p->mu);
    if (rc != 0) {
        close(fds[0]);
        close(fds[1]);
        free(p);
        return -rc;
    }
    rc = ferry_loop_add(loop, p->rfd, FERRY_READABLE, on_answers, p);
    if (rc < 0) {
        lookup_pool_free(p);   /* its remove of the unwatched fd is harmless */
        return rc;
    }
    if (!hosts_file && files_first())
        load_hosts(p, SYSTEM_HOSTS);
    else if (hosts_file && hosts_file[0])
        load_hosts(p, hosts_file);
    *out = p;
    return 0;
}

/*
 * The owner lets go.  Idle workers are joined: each ends at once, and a
 * thread joined has finished all of its ending (the C library frees its
 * resolver state last), so nothing of it is left half-freed when the
 * program exits right after (LeakSanitizer caught that race).  A worker
 * still in a lookup is detached instead: a DNS answer may take its whole
 * timeout, which the program must not wait for; it frees its lookup and
 * its share of the pool when the answer comes, or dies with the process.
 */
void lookup_pool_free(struct lookup_pool *p)
{
    pthread_t idle[LOOKUP_MAX_THREADS];
    unsigned nidle = 0;

    if (!p)
        return;
    (void)ferry_loop_remove(p->loop, p->rfd);
    close(p->rfd);
    free(p->hosts);
    free(p->hosts_text);
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    free_list(p->queue);
    free_list(p->done);
    p->queue = p->queue_tail = p->done = p->done_tail = NULL;
    close(p->wfd);   /* under mu: no worker writes to it, or to its number reused */
    p->wfd = -1;
    pthread_cond_broadcast(&p->cv);
    for (unsigned i = 0; i < p->threads; i++) {
        if (p->slots[i].busy)
            (void)pthread_detach(p->slots[i].tid);
        else
            idle[nidle++] = p->slots[i].tid;
    }
    unref_locked(p);   /* p may be gone from here: the last worker frees it */
    for (unsigned i = 0; i < nidle; i++)
        (void)pthread_join(idle[i], NULL);
}

int lookup_start(struct lookup_pool *p, const char *name, uint16_t port, struct ferry_addr *out,
                 int max, lookup_cb *cb, void *arg, struct lookup **qp)
{
    struct lookup *q;
    int rc = 0;

    *qp = NULL;
    if (max > LOOKUP_MAX_ADDRS)
        max = LOOKUP_MAX_ADDRS;
    if (!name[0] || strlen(name) > LOOKUP_NAME_MAX || max < 1)
        return FERRY_EADDR;
    rc = resolve(name, AI_NUMERICHOST, port, out, max);
    if (rc != 0)
        return rc;
    if (in_hosts_file(p, name))
        return resolve(name, 0, port, out, max);
    q = calloc(1, sizeof *q);
    if (!q)
        return -ENOMEM;
    *q = (struct lookup){ .pool = p, .state = Q_QUEUED, .cb = cb, .arg = arg, .port = port,
                          .max = max };
    memcpy(q->name, name, strlen(name) + 1);
    pthread_mutex_lock(&p->mu);
    if (p->idle <= p->queued && p->threads < p->max_threads)
        rc = add_worker(p);
    if (rc < 0 && p->threads == 0) {
        pthread_mutex_unlock(&p->mu);
        free(q);
        return rc;
    }
    rc = 0;   /* with a worker at least, the name waits its turn */
    if (p->queue_tail)
        p->queue_tail->next = q;
    else
        p->queue = q;
    p->queue_tail = q;
    p->queued++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    *qp = q;
    return 0;
}

/* Unlink q from the list at *head (tail kept).  1 if it was there. */
static int unlink_from(struct lookup **head, struct lookup **tail, struct lookup *q)
{
    struct lookup *prev = NULL;

    for (struct lookup *it = *head; it; prev = it, it = it->next) {
        if (it != q)
            continue;
        if (prev)
            prev->next = q->next;
        else
            *head = q->next;
        if (*tail == q)
            *tail = prev;
        return 1;
    }
    return 0;
}

void lookup_cancel(struct lookup *q)
{
    struct lookup_pool *p;

    if (!q)
        return;
    p = q->pool;
    pthread_mutex_lock(&p->mu);
    switch (q->state) {
    case Q_QUEUED:
        if (unlink_from(&p->queue, &p->queue_tail, q))
            p->queued--;
        free(q);
        break;
    case Q_RUNNING:
        q->cancelled = 1;   /* the worker frees it */
        break;
    case Q_DONE:
        (void)unlink_from(&p->done, &p->done_tail, q);
        free(q);
        break;
    }
    pthread_mutex_unlock(&p->mu);
}
