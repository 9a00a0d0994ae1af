/*
 * master.h - a connection master per host, as ssh's ControlMaster: a
 * background process that keeps an authenticated session to one ferryd
 * ready, so that a command to that host starts without loading a key,
 * building a TLS context or making a handshake of its own (docs/DESIGN.md
 * "Connection masters").
 *
 * A master listens on a unix socket in a private directory
 * ($XDG_RUNTIME_DIR/ferry, else /tmp/ferry-UID, mode 0700, ours), named
 * after everything that decides which server and which credentials a
 * session has (the address, the key file and name, TLS or not, the CA and
 * certificate).  A client that finds it asks for a session; the master
 * hands it an already authenticated connection and relays its bytes, and
 * from then on the client speaks the ordinary protocol (PROTOCOL.md 2.8
 * has the master's two frames).  Anything that goes wrong before the
 * session is handed over makes the client connect by itself, as if there
 * were no master: a master can make a command faster, never make it fail.
 *
 * master_client.c is the client's side (finding, asking, starting one in
 * the background); master.c is `ferry master` itself; master_relay.c the
 * byte pump of a handed-over session.
 */
#ifndef FERRY_CLIENT_MASTER_H
#define FERRY_CLIENT_MASTER_H

#include <stddef.h>

#include "dial.h"

struct ferry_transport;

/* The longest idle time a master may be given (--persist, Persist). */
#define MASTER_PERSIST_MAX_S 86400.0

/* What the master says of the session it hands over: its server's
 * capabilities (as that server's hello said) and its address. */
struct master_info {
    long pid;                /* the master's */
    int pipeline, put_stream, glob, keepalive, put_ack;
    char peer[128];
};

/* The master's socket path for these effective options and target
 * (dial_resolve's), without looking at the file system: 0, or -1 when the
 * path would not fit a unix socket (with the reason in why). */
int master_socket_path(const struct dial_opts *eff, const char *target, char *path, size_t len,
                       char *why, size_t whylen);

/* Whether the masters' directory exists at all (one lstat): when it does
 * not, no master runs, and a command need not work out a socket name. */
int master_dir_exists(void);

/* The socket's directory must be ours alone (a directory, our uid, mode
 * 0700); create: make it if missing (a master does; a command only looks).
 * 0, 1 when it is missing (and not created), or -1 with the reason. */
int master_dir_check(const char *path, int create, char *why, size_t whylen);

/* Results of master_request besides 0 and -1. */
#define MASTER_NONE 1        /* no master runs for these options */

/*
 * Ask the master at `path` for `op` ("session", "check" or "stop") within
 * timeout_ms.  0: it answered (*info filled; for "session" *t is the
 * connection, now carrying an authenticated session: the caller owns it);
 * MASTER_NONE: nobody listens there; -1: a master that did not answer as
 * it should (why says how; the caller connects by itself).
 */
int master_request(const char *path, const char *op, int timeout_ms, struct master_info *info,
                   struct ferry_transport **t, char *why, size_t whylen);

/*
 * Start `ferry master --persist S` for `host` in the background, detached
 * from us (its own session, stdio on /dev/null), with the effective
 * options spelled out so that it finds the same server with the same
 * credentials.  Fire and forget: this command does not wait for it.
 */
void master_spawn(const char *host, const struct dial_opts *eff);

/* The key file these options use, as an absolute path (malloc'd), or NULL
 * when there is none (--ca, --insecure-no-auth) or no memory. */
char *master_key_path(const struct dial_opts *eff);

/* `ferry master` (master.c). */
int cmd_master(int argc, char **argv);

/* Relay bytes both ways between the client's connection and the server's
 * authenticated one until either ends (master_relay.c).  0 when one side
 * ended cleanly, else a negative code. */
int master_relay(struct ferry_transport *client, struct ferry_transport *server);

/* Fault the relay's buffers in ahead of its first session. */
void master_relay_prepare(void);

#endif
