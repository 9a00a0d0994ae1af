/*
 * bgthread.h - a detached background thread for ferryd's side jobs (the
 * reaper of a stuck child, the start-up sweep): started with every signal
 * blocked, so process signals (SIGTERM, SIGCHLD...) keep going to the
 * threads that handle them, and detached, so an ended one is never a
 * thread that --model fork's children inherit unjoined.
 */
#ifndef FERRYD_BGTHREAD_H
#define FERRYD_BGTHREAD_H

/* Run fn(arg) in such a thread.  0, or -errno and nothing runs. */
int bgthread_start(void *(*fn)(void *), void *arg);

#endif
