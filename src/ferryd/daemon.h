/*
 * daemon.h - what ferryd's main hands to its two services: the
 * authenticated session protocol (sessionsvc.h, docs/PROTOCOL.md section
 * 2) and the tutorials' classic protocol (classic.h, section 3).
 */
#ifndef FERRYD_DAEMON_H
#define FERRYD_DAEMON_H

#include "ferry/server.h"
#include "fspath.h"
#include "keyfile.h"
#include "keys.h"

/* How long a stop (SIGTERM) lets running commands and transfers finish
 * (the server's shutdown grace); a session still busy shortly before it
 * ends tells its client so, where the grace's end would only cut it. */
#define FERRYD_STOP_GRACE_MS 5000
#define FERRYD_STOP_NOTICE_MS (FERRYD_STOP_GRACE_MS - 250)

struct daemon_config {
    struct ferry_key key;        /* --key-file: the key named KEYS_DEFAULT_NAME */
    int have_key;
    const char *keys_file;       /* --keys: named keys, read at every lookup */
    int no_auth;                 /* --insecure-no-auth: loopback only, plaintext */
    int plaintext;               /* --plaintext (or --insecure-no-auth) */
    struct ferry_tls *tls;       /* the main listeners' TLS; NULL when plaintext */
    struct fsroot *root;         /* --root: what the file service serves */
    int idle_timeout_ms;         /* --idle-timeout: sessions judge idleness themselves */
};

#endif
