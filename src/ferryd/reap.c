/*
 * reap.c - waiting for a command's process by its pid alone (reap.h).
 */
#include "reap.h"

#include <errno.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bgthread.h"
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
    int rc = bgthread_start(reaper_main, (void *)(intptr_t)pid);

    if (rc < 0)
        ferry_log_error("exec: cannot start a reaper thread for pid %d (%s); it stays a zombie",
                        (int)pid, ferry_strerror(rc));
}
