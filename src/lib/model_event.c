/*
 * model_event.c - FERRY_MODEL_EVENT: N worker threads, one loop each.
 *
 * Every worker admits on every listener (admission.c); the kernel wakes
 * them and whichever accepts first owns the connection for its whole life, so a connection is
 * only ever touched by one thread and needs no locks.  The calling thread
 * runs worker 0 itself.
 */
#include "admission.h"
#include "conn_int.h"
#include "stop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/error.h"
#include "ferry/log.h"

struct worker {
    struct conn_loop cl;
    struct admission adm;               /* every listener, on this worker's loop */
    struct ferry_server *server;
    pthread_t thread;
    int started;
    int result;
};

/* An admitted connection lives on this worker's loop for good. */
static void start_conn(void *arg, struct listener *l, int fd, const char *peer)
{
    struct worker *w = arg;

    ferry__conn_start_event(&w->cl, l, fd, peer);
}

static void stop_accepting(struct conn_loop *cl)
{
    struct worker *w = cl->owner;

    ferry__admission_stop(&w->adm);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    w->result = ferry_loop_run(w->cl.loop);
    /* A failed loop must not leave the others waiting for it. */
    if (w->result < 0) {
        ferry_log_error("event loop failed: %s", ferry_strerror(w->result));
        ferry__stop_request(w->server);
    }
    ferry__conn_loop_abort_all(&w->cl, 1);
    return NULL;
}

static int worker_init(struct worker *w, struct ferry_server *s)
{
    int r;

    memset(w, 0, sizeof *w);
    w->server = s;
    r = ferry__conn_loop_init(&w->cl, s);
    if (r < 0)
        return r;
    w->cl.owner = w;
    w->cl.on_stop = stop_accepting;
    return ferry__admission_init(&w->adm, s, w->cl.loop, 1, start_conn, w);
}

int ferry__run_event(struct ferry_server *s)
{
    int n = s->opts.workers, r = 0;
    struct worker *workers = calloc((size_t)n, sizeof *workers);

    if (!workers)
        return -ENOMEM;
    for (int i = 0; i < n; i++) {
        r = worker_init(&workers[i], s);
        if (r < 0)
            goto out;
    }
    ferry__admission_log_ready(s, "event");
    for (int i = 1; i < n; i++) {
        r = -pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]);
        if (r < 0) {
            ferry__stop_request(s);
            break;
        }
        workers[i].started = 1;
    }
    worker_main(&workers[0]);
    if (workers[0].result < 0 && r == 0)
        r = workers[0].result;
    for (int i = 1; i < n; i++) {
        if (!workers[i].started)
            continue;
        pthread_join(workers[i].thread, NULL);
        if (workers[i].result < 0 && r == 0)
            r = workers[i].result;
    }

out:
    for (int i = 0; i < n; i++) {
        if (workers[i].cl.loop)
            ferry__admission_destroy(&workers[i].adm);
        ferry__conn_loop_destroy(&workers[i].cl);
    }
    free(workers);
    return r;
}
