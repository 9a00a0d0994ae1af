/*
 * fleet.h - one command on many hosts from one process: `ferry exec -w`.
 *
 * One loop (client_loop()) drives every connection; each host goes
 * through its own small state machine:
 *
 *   waiting -> connecting (non-blocking, each address of the name in
 *   turn) -> TLS or plaintext + the handshake (dial_hs.c) -> the exec
 *   request, its output and exit frames -> done
 *
 * At most `fanout` hosts are past "waiting" at once; a host that cannot be
 * reached, authenticates slowly or hangs holds only its own slot, for at
 * most its connect timeout (and --timeout, --keepalive as for one host).
 * What is the same for many hosts is made once: the key, and the TLS
 * configuration of every distinct set of key and TLS options.
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

struct fleet_opts {
    const struct dial_opts *dial;   /* the command line's; each host adds its configuration */
    size_t fanout;                  /* -f */
    enum fleet_mode mode;           /* lines, -b, --json */
    int forward_stdin;              /* spool stdin to every host (the request wants it) */
};

/*
 * Run `request` (an exec header) on every host of `hosts`, in their order
 * as slots free up.  Returns the exit status: 0 when every host's command
 * exited 0, else the largest status among them (255 for a host that could
 * not be reached or authenticated; 128+N when ferry left it on signal N;
 * 141 and no summary when our stdout was closed).
 */
int fleet_exec(const struct hostlist *hosts, json_t *request, const struct fleet_opts *fo);

#endif
