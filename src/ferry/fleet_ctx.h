/*
 * fleet_ctx.h - what the hosts of a fleet share, and their addresses.
 *
 * A TLS configuration costs about 2 ms to build (and a key a file read):
 * hosts whose key and TLS options are the same (most fleets: all of them)
 * share one, made when the first of them starts.
 */
#ifndef FERRY_CLIENT_FLEET_CTX_H
#define FERRY_CLIENT_FLEET_CTX_H

#include "dial.h"
#include "dial_hs.h"
#include "ferry/ferry.h"
#include "keyfile.h"
#include "lookup.h"

#define FLEET_ADDRS 8

/* What every host with the same key and TLS options shares: made once. */
struct fleet_ctx {
    struct fleet_ctx *next;
    char *key_file, *key_name, *ca, *cert, *cert_key;
    int plaintext, insecure;
    struct ferry_key key;
    int have_key;
    char *key_path;              /* the key file used, for messages */
    struct ferry_tls *tls;       /* NULL: plaintext */
    char err[DIAL_HS_ERR_MAX];   /* set: no host with these options can be tried */
};

/* The shared key and TLS configuration for o's options from *list, made
 * and added on first use; NULL when out of memory.  A set of options that
 * cannot work (a missing key, --cert without --ca) gives a context with
 * err set: every host using it fails with those words. */
struct fleet_ctx *fleet_ctx_get(struct fleet_ctx **list, const struct dial_opts *o);

void fleet_ctx_free_all(struct fleet_ctx **list);

/* The host configuration read once into *conf unless it was already (the
 * caller frees it: hostconf_db_free), and
 * the first host's key and TLS configuration made into *list: what is
 * wrong for it (a configuration file, a missing key) is most likely wrong
 * for all, and is said once, before any connect.  0 or -1 (printed). */
struct hostconf_db;
int fleet_preflight(const char *first, const struct dial_opts *o, struct hostconf_db **conf,
                    struct fleet_ctx **list);

/* Every address target (dial_resolve's HOST[:PORT], [V6]:PORT or
 * unix:/PATH) stands for, in the resolver's order (ferry_connect_host
 * tries them the same way), as lookup_start answers: the count (at most
 * max) or FERRY_EADDR at once, or 0 and cb later (*q the request), or a
 * negative error. */
int fleet_resolve(struct lookup_pool *pool, const char *target, struct ferry_addr *out, int max,
                  lookup_cb *cb, void *arg, struct lookup **q);

/* -f within the descriptors we may open (`spare` of them besides the
 * hosts' sockets): the soft limit raised as far as needed and allowed,
 * else -f cut to fit (said on stderr). */
size_t fleet_fit_fanout(size_t fanout, size_t spare);

#endif
