/*
 * stop.h - how a server is told to stop: one byte into its stop pipe,
 * whose read end every loop and every blocked reader of the server polls
 * (forked children share it), from ferry_server_stop, from a model that
 * failed, or from SIGINT/SIGTERM.
 */
#ifndef FERRY_STOP_H
#define FERRY_STOP_H

#include <signal.h>

struct ferry_server;

/* Begin a graceful stop (once; later calls do nothing).  Async-signal-
 * and thread-safe. */
void ferry__stop_request(struct ferry_server *s);

/* A server-wide loop (an EVENT worker's, the THREAD or FORK acceptor's)
 * has seen the stop: the first one calls ferry_server_on_stop's function,
 * before any connection hears of it. */
void ferry__stop_tell(struct ferry_server *s);

/* Make sig stop s (one server per process: the last one asked); the
 * previous disposition into *old when old is not NULL. */
void ferry__stop_catch_signal(struct ferry_server *s, int sig, struct sigaction *old);

/* Put sig back as *old was, and forget the server signals stop. */
void ferry__stop_restore_signal(int sig, const struct sigaction *old);

#endif
