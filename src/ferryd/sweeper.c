/*
 * sweeper.c - the start-up sweep's thread (sweeper.h): it walks each root
 * once, in turn, logs what it did, and ends; sweeper_stop cuts a long
 * walk short when ferryd stops.
 */
#include "sweeper.h"

#include <errno.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "bgthread.h"
#include "ferry/ferry.h"
#include "errcode.h"
#include "monoclock.h"
#include "proto.h"

struct sweeper {
    struct sweeper_root *roots;
    size_t n;
    atomic_int stop;
    /* Posted by the thread as its last act: the thread is detached
     * (bgthread.h), so sweeper_stop waits on this instead of joining. */
    sem_t done;
};

/* Sweep one root and log what it did. */
static void sweep_one(struct sweeper *sw, const struct sweeper_root *sr)
{
    struct fspath_sweep out = { .stop = &sw->stop };
    int64_t t0 = monoclock_ns();
    int r = fspath_sweep_temporaries(sr->root, PROTO_PART_SUFFIX, &out);
    double secs = (double)(monoclock_ns() - t0) / 1e9;

    if (r < 0)
        ferry_log_warn("root %s: cleaning up unfinished uploads: %s", sr->dir, app_strerror(r));
    if (out.stopped)
        ferry_log_info("root %s: the sweep for unfinished uploads stopped early (ferryd is "
                       "stopping) after %lu director%s and %.1f s; removed %u", sr->dir,
                       out.dirs, out.dirs == 1 ? "y" : "ies", secs, out.removed);
    else
        ferry_log_info("root %s: swept for unfinished uploads: %lu director%s in %.1f s, "
                       "removed %u; %u mount%s of other filesystems not entered", sr->dir,
                       out.dirs, out.dirs == 1 ? "y" : "ies", secs, out.removed,
                       out.mounts_skipped, out.mounts_skipped == 1 ? "" : "s");
}

static void *sweeper_main(void *arg)
{
    struct sweeper *sw = arg;

    /* A stop ends the walk under way (its line says so); the roots after
     * it are not begun. */
    for (size_t i = 0; i < sw->n && !atomic_load(&sw->stop); i++)
        sweep_one(sw, &sw->roots[i]);
    sem_post(&sw->done);
    return NULL;
}

int sweeper_start(const struct sweeper_root *roots, size_t n, struct sweeper **out)
{
    struct sweeper *sw = calloc(1, sizeof *sw);
    int rc;

    *out = NULL;
    if (!sw || !(sw->roots = calloc(n ? n : 1, sizeof *sw->roots))) {
        free(sw);
        return -ENOMEM;
    }
    memcpy(sw->roots, roots, n * sizeof *roots);
    sw->n = n;
    atomic_init(&sw->stop, 0);
    if (sem_init(&sw->done, 0, 0) < 0) {
        rc = errno;
        free(sw->roots);
        free(sw);
        return -rc;
    }
    rc = bgthread_start(sweeper_main, sw);
    if (rc < 0) {
        sem_destroy(&sw->done);
        free(sw->roots);
        free(sw);
        return rc;
    }
    *out = sw;
    return 0;
}

void sweeper_stop(struct sweeper **sw)
{
    if (!*sw)
        return;
    atomic_store(&(*sw)->stop, 1);
    while (sem_wait(&(*sw)->done) < 0 && errno == EINTR)
        ;
    sem_destroy(&(*sw)->done);
    free((*sw)->roots);
    free(*sw);
    *sw = NULL;
}
