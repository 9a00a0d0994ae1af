/*
 * classic.h - the tutorials' own "simple ssh" protocol (docs/PROTOCOL.md
 * section 3), served by `ferryd --classic ADDR` on a loopback address.
 */
#ifndef FERRYD_CLASSIC_H
#define FERRYD_CLASSIC_H

#include "ferry/server.h"
#include "classic_limits.h"
#include "daemon.h"

/* Defaults of --classic-max-conns, --classic-idle-timeout and
 * --classic-max-output. */
#define CLASSIC_DEFAULT_MAX_CONNS        64
#define CLASSIC_DEFAULT_IDLE_TIMEOUT_MS  60000
#define CLASSIC_DEFAULT_MAX_OUTPUT       (64u << 20)

/* The handler's arg: what every classic connection shares. */
struct classic_config {
    const struct daemon_config *daemon;
    struct classic_limits *limits;   /* connection cap and output budget */
    int idle_timeout_ms;             /* close a connection with nothing to do this long */
};

/* arg is a struct classic_config that outlives the server. */
extern const struct ferry_handler classic_handler;

#endif
