/*
 * reap.c - waiting for a command's process by its pid alone (reap.h).
 */
#include "reap.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ferry/error.h"
#include "ferry/log.h"

int reap_pidfd_open(pid_t pid)
{
#ifdef SYS_pidfd_open
    /* The pidfd is close-on-exec by definition. */
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

static void *reaper_main(void *arg)
{
    pid_t pid = (pid_t)(intptr_t)arg;

    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    return NULL;
}

void reap_detached(pid_t pid)
{
    pthread_attr_t attr;
    pthread_t tid;
    sigset_t all, old;
    int rc;

    rc = pthread_attr_init(&attr);
    if (rc == 0) {
        rc = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (rc == 0) {
            /* The reaper inherits a full mask: process signals must keep
             * going to the threads that handle them. */
            sigfillset(&all);
            pthread_sigmask(SIG_SETMASK, &all, &old);
            rc = pthread_create(&tid, &attr, reaper_main, (void *)(intptr_t)pid);
            pthread_sigmask(SIG_SETMASK, &old, NULL);
        }
        pthread_attr_destroy(&attr);
    }
    if (rc != 0)
        ferry_log_error("exec: cannot start a reaper thread for pid %d (%s); it stays a zombie",
                        (int)pid, ferry_strerror(-rc));
}
