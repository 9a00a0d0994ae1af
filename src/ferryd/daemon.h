/*
 * daemon.h - what ferryd's main hands to its two services: the
 * authenticated session protocol (session.c with files.c for its file
 * service, docs/PROTOCOL.md section 2) and the tutorials' classic protocol
 * (classic.c, section 3).
 */
#ifndef FERRYD_DAEMON_H
#define FERRYD_DAEMON_H

#include "ferry/server.h"
#include "fspath.h"
#include "keyfile.h"

struct daemon_config {
    struct ferry_key key;
    int no_auth;                 /* --insecure-no-auth: loopback only */
    struct fsroot *root;         /* --root: what the file service serves */
};

/* Event-style handlers; arg is the struct daemon_config. */
extern const struct ferry_handler session_handler;
extern const struct ferry_handler classic_handler;

#endif
