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
#include "keys.h"

struct daemon_config {
    struct ferry_key key;        /* --key-file: the key named KEYS_DEFAULT_NAME */
    int have_key;
    const char *keys_file;       /* --keys: named keys, read at every lookup */
    int no_auth;                 /* --insecure-no-auth: loopback only, plaintext */
    int plaintext;               /* --plaintext (or --insecure-no-auth) */
    struct ferry_tls *tls;       /* the main listeners' TLS; NULL when plaintext */
    struct fsroot *root;         /* --root: what the file service serves */
};

/* tlsconf.c: the key called `name` (--keys, or the --key-file key under
 * its default name): 1 and *key, 0 when there is none, -1 when the keys
 * file cannot be read (logged).  Thread-safe: it runs during handshakes. */
int daemon_find_key(const struct daemon_config *cfg, const char *name, struct ferry_key *key);

/* tlsconf.c: build cfg->tls from the certificate options (each may be
 * NULL) and the keys.  0, or -1 after printing why. */
int daemon_tls_setup(struct daemon_config *cfg, const char *cert, const char *cert_key,
                     const char *client_ca);

/* Event-style handlers; arg is the struct daemon_config. */
extern const struct ferry_handler session_handler;
extern const struct ferry_handler classic_handler;

#endif
