/*
 * tlsconf.h - ferryd's keys and TLS configuration: which key a name stands
 * for (the PSK identity of a TLS session, or the "key" of a plaintext auth
 * message), and the ferry_tls the main listeners use.
 */
#ifndef FERRYD_TLSCONF_H
#define FERRYD_TLSCONF_H

#include <sys/socket.h>

#include "daemon.h"

/* Draw the secret unknown names' stand-in keys derive from.  At start,
 * before --model fork's children exist, so that they all share it (a
 * name's stand-in is the same on every connection). */
void tlsconf_prepare(void);

/* The key called `name` (--keys, or the --key-file key under its default
 * name) for a client at peer (NULL: unknown): 1 with *key and *opts (its
 * restrictions; opts may be NULL); 0 when there is none or its from=
 * leaves peer out, *key then being a stand-in to check against so that the
 * work and the answer are those of a wrong key; a negative code when the
 * keys file cannot be read (logged).  Thread-safe: it runs during
 * handshakes. */
int tlsconf_find_key(const struct daemon_config *cfg, const char *name,
                     const struct sockaddr *peer, struct ferry_key *key, struct keyopts *opts);

/* Build cfg->tls from the certificate options (each may be NULL) and the
 * keys.  0, or -1 after printing why. */
int tlsconf_setup(struct daemon_config *cfg, const char *cert, const char *cert_key,
                  const char *client_ca);

#endif
