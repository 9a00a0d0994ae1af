/*
 * sessionsvc.h - the session service: ferryd's side of the authenticated
 * session protocol (docs/PROTOCOL.md section 2), one event-style handler
 * for every listener of the main address.
 */
#ifndef FERRYD_SESSIONSVC_H
#define FERRYD_SESSIONSVC_H

#include "ferry/server.h"

/* arg is the struct daemon_config (daemon.h). */
extern const struct ferry_handler sessionsvc_handler;

#endif
