/*
 * fleet.h - one command on many hosts from one process: `ferry exec -w`,
 * and the engine under `ferry put -w` / `get -w` (a job instead of the
 * command: fleet_xfer.h).
 *
 * One loop (client_loop()) drives every connection; each host goes
 * through its own small state machine:
 *
 *   waiting -> the name looked up (at once, or by a lookup thread:
 *   lookup.h) -> connecting (non-blocking, each address of the name in
 *   turn) -> TLS or plaintext + the handshake (dial_hs.c) -> the exec
 *   request, its output and exit frames (or the job's requests and
 *   frames) -> done
 *
 * At most `fanout` hosts are past "waiting" at once; a host that cannot be
 * reached, authenticates slowly or hangs holds only its own slot, for at
 * most its connect timeout (its name's lookup included; --timeout,
 * --keepalive as for one host).  What is the same for many hosts is made
 * once: the host configuration read, the key, and the TLS configuration
 * of every distinct set of key and TLS options.
 */
#ifndef FERRY_CLIENT_FLEET_H
#define FERRY_CLIENT_FLEET_H

#include <stddef.h>

#include <jansson.h>

#include "dial.h"
#include "fleet_output.h"
#include "hostlist.h"

#define FLEET_DEFAULT_FANOUT 64
#define FLEET_MAX_FANOUT 4096

struct client_session;
struct ferry_frame_event;

/*
 * A job other than exec, run on each host once its session is
 * authenticated (fleet_put.c, fleet_get.c: one file per host).  The engine
 * connects, authenticates, counts slots and reports; the job speaks its
 * requests.  Its callbacks never wait: they queue frames and note what
 * arrived, and the engine calls advance after every wake-up (a frame, the
 * connection drained, closed).  The connection's on_drain wakes the loop
 * once ferry_conn_want_drain was asked for.
 */
struct fleet_job {
    /* Begin on host's authenticated session s; per-host state in *state.
     * 0, or -1 with the reason in err. */
    int (*start)(void *arg, const char *host, struct client_session *s, void **state,
                 char *err, size_t errlen);
    /* A frame event of the session (HEADER's header is the job's to free). */
    void (*frame)(void *state, struct client_session *s, struct ferry_frame_event *ev);
    /* Move on: 0 going on, 1 done, -1 failed with the reason in err. */
    int (*advance)(void *state, struct client_session *s, char *err, size_t errlen);
    /* The host is over (ok: advance said done); the session is closed
     * already.  Release the state (remove what a failure left). */
    void (*end)(void *state, int ok);
    void *arg;
    const char *why;                /* the summary's words for a failed host */
};

struct fleet_opts {
    const struct dial_opts *dial;   /* the command line's; each host adds its configuration */
    const struct fleet_job *job;    /* NULL: exec the request */
    size_t fanout;                  /* -f */
    enum fleet_mode mode;           /* lines, -b, --json */
    int forward_stdin;              /* spool stdin to every host (the request wants it) */
    struct hostconf_db *conf;       /* the host configuration if read already
                                     * (fleet_hosts), else NULL: read once here */
};

/*
 * Run `request` (an exec header) on every host of `hosts`, in their order
 * as slots free up.  Returns the exit status: 0 when every host's command
 * exited 0, else the largest status among them (255 for a host that could
 * not be reached or authenticated; 128+N when ferry left it on signal N;
 * 141 and no summary when our stdout was closed).
 */
int fleet_exec(const struct hostlist *hosts, json_t *request, const struct fleet_opts *fo);

/* The same with fo->job instead of a command on each host (request NULL):
 * 0 when every host's job succeeded, else 255; a signal ends the jobs
 * in flight (128+N). */
#define fleet_run_job(hosts, fo) fleet_exec((hosts), NULL, (fo))

/*
 * The hosts of -w, -g and -x (kind[i] says which lists[i] is), in the
 * order given; each -x removes from what every -w and -g named.  The
 * host configuration is read into *conf for the first -g (NULL stays
 * NULL without one): the caller passes it on in fleet_opts and frees it
 * (hostconf_db_free).  0, or an exit status after a usage error said for
 * `cmd` ("ferry exec").
 */
struct hostconf_db;
int fleet_hosts(const char *cmd, const char *config_file, struct hostconf_db **conf,
                const char **lists, const char *kind, int n, struct hostlist *hl);

/* -f N: 0 and *out, or a usage error's status for cmd. */
int fleet_fanout(const char *cmd, const char *arg, size_t *out);

#endif
