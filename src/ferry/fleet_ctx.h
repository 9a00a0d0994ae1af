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

/* Every address target (dial_resolve's HOST[:PORT], [V6]:PORT or
 * unix:/PATH) stands for, in the resolver's order (ferry_connect_host
 * tries them the same way): the count (at most max), or FERRY_EADDR. */
int fleet_resolve(const char *target, struct ferry_addr *out, int max);

#endif
