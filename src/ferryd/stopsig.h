/*
 * stopsig.h - the signals that stop ferryd (SIGINT, SIGTERM, SIGHUP): the service
 * manager hears STOPPING=1 at once, the log says the stop begins, then the
 * server stops gracefully.
 *
 * libferry's handle_signals would stop the server but tell nobody; the
 * manager should know from the first moment, not after the grace period
 * (sd_notify(3): "the service is beginning its shutdown").
 */
#ifndef FERRYD_STOPSIG_H
#define FERRYD_STOPSIG_H

#include "ferry/server.h"

/* From now on SIGINT, SIGTERM and SIGHUP send STOPPING=1 (sdnotify.h)
 * and stop s (ferry_server_stop), whose stop begins with one line
 * ("stopping on SIGTERM: 2 connections open; waiting up to 5 s ...",
 * grace_ms being its shutdown grace; ferry_server_on_stop is taken); s
 * must be made with handle_signals off.  0, or -errno. */
int stopsig_catch(struct ferry_server *s, int grace_ms);

/* Back to the default dispositions and forget s, before s is freed. */
void stopsig_release(void);

#endif
