/*
 * bgthread.c - detached threads with every signal blocked (bgthread.h).
 */
#include "bgthread.h"

#include <pthread.h>
#include <signal.h>

int bgthread_start(void *(*fn)(void *), void *arg)
{
    pthread_attr_t attr;
    pthread_t tid;
    sigset_t all, old;
    int rc = pthread_attr_init(&attr);

    if (rc != 0)
        return -rc;
    rc = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (rc == 0) {
        /* The new thread inherits the mask in force here. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        rc = pthread_create(&tid, &attr, fn, arg);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    pthread_attr_destroy(&attr);
    return -rc;
}
