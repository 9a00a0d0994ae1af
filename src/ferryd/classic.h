/*
 * classic.h - the tutorials' own "simple ssh" protocol (docs/PROTOCOL.md
 * section 3), served by `ferryd --classic ADDR` on a loopback address.
 */
#ifndef FERRYD_CLASSIC_H
#define FERRYD_CLASSIC_H

#include "ferry/server.h"

/* arg is the struct daemon_config (daemon.h). */
extern const struct ferry_handler classic_handler;

#endif
