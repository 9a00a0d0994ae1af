/*
 * sweeper.c - the start-up sweep's thread (sweeper.h): it walks the root
 * once, logs what it did, and ends; sweeper_stop cuts a long walk short
 * when ferryd stops.
 */
#include "sweeper.h"

#include <errno.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "bgthread.h"
#include "ferry/ferry.h"
#include "errcode.h"
#include "monoclock.h"
#include "proto.h"

struct sweeper {
    const struct fsroot *root;
    const char *dir;
    atomic_int stop;
    /* Posted by the thread as its last act: the thread is detached
     * (bgthread.h), so sweeper_stop waits on this instead of joining. */
    sem_t done;
};

static void *sweeper_main(void *arg)
{
    struct sweeper *sw = arg;
    struct fspath_sweep out = { .stop = &sw->stop };
    int64_t t0 = monoclock_ns();
    int r = fspath_sweep_temporaries(sw->root, PROTO_PART_SUFFIX, &out);
    double secs = (double)(monoclock_ns() - t0) / 1e9;

    if (r < 0)
        ferry_log_warn("root %s: cleaning up unfinished uploads: %s", sw->dir, app_strerror(r));
    if (out.stopped)
        ferry_log_info("root %s: the sweep for unfinished uploads stopped early (ferryd is "
                       "stopping) after %lu director%s and %.1f s; removed %u", sw->dir,
                       out.dirs, out.dirs == 1 ? "y" : "ies", secs, out.removed);
    else
        ferry_log_info("root %s: swept for unfinished uploads: %lu director%s in %.1f s, "
                       "removed %u; %u mount%s of other filesystems not entered", sw->dir,
                       out.dirs, out.dirs == 1 ? "y" : "ies", secs, out.removed,
                       out.mounts_skipped, out.mounts_skipped == 1 ? "" : "s");
    sem_post(&sw->done);
    return NULL;
}

int sweeper_start(const struct fsroot *root, const char *dir, struct sweeper **out)
{
    struct sweeper *sw = calloc(1, sizeof *sw);
    int rc;

    *out = NULL;
    if (!sw)
        return -ENOMEM;
    sw->root = root;
    sw->dir = dir;
    atomic_init(&sw->stop, 0);
    if (sem_init(&sw->done, 0, 0) < 0) {
        rc = errno;
        free(sw);
        return -rc;
    }
    rc = bgthread_start(sweeper_main, sw);
    if (rc < 0) {
        sem_destroy(&sw->done);
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
    free(*sw);
    *sw = NULL;
}
