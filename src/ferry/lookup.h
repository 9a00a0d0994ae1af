/*
 * lookup.h - host names to addresses without blocking a loop.
 *
 * getaddrinfo blocks for as long as the name service takes: seconds for a
 * slow or dead DNS server.  On a fleet's loop that would stall the I/O of
 * every host.  A lookup pool answers at once what needs no network:
 * numeric addresses (AI_NUMERICHOST), and names the hosts file lists when
 * the system reads that file first (nsswitch.conf "hosts: files ...",
 * Debian's default; getaddrinfo then answers from it at once).  Any other
 * name goes to a worker thread that calls getaddrinfo and reports on the
 * loop's thread through a pipe the loop watches.  At most max_threads
 * workers, started as names need them; more names wait in a queue.
 *
 * Threads: a worker touches only the pool's queues (under its mutex), the
 * write end of its pipe (under the mutex, and only while it is open) and
 * the request it took; callbacks run on the loop's thread and no worker
 * ever touches the loop.
 *
 * Ownership: a request belongs to the queue it is on.  One that a worker
 * is looking up is the worker's: cancelling it (or freeing the pool) only
 * marks it, and the worker frees it when getaddrinfo returns, however late.
 * The pool's shared part is counted: the owner holds one reference and
 * every worker thread one, and the last to let go frees it.  So freeing
 * the pool never waits for a lookup (an interrupted fleet ends at once),
 * and a lookup that ends after the pool was freed writes only to memory
 * it still holds.  Freeing the pool joins the idle workers (so none is
 * still ending when the program exits) and detaches those inside
 * getaddrinfo: one still there when the program exits is ended by the
 * exit.
 */
#ifndef FERRY_CLIENT_LOOKUP_H
#define FERRY_CLIENT_LOOKUP_H

#include <stdint.h>

#include "ferry/ferry.h"

#define LOOKUP_MAX_ADDRS 8
#define LOOKUP_MAX_THREADS 16
#define LOOKUP_NAME_MAX 255

struct lookup_pool;
struct lookup;

/* A lookup's answer, on the loop's thread: n addresses (their port set),
 * or n = FERRY_EADDR (unknown host, bad address).  The request is over
 * once this is called: its handle must not be used again. */
typedef void lookup_cb(void *arg, int n, const struct ferry_addr *addrs);

/*
 * A pool whose answers arrive on `loop` (watched until lookup_pool_free),
 * with at most max_threads workers (1 .. LOOKUP_MAX_THREADS).  hosts_file:
 * NULL for the system's (/etc/hosts, if nsswitch.conf reads it first), ""
 * for none (every name that is not an address goes to a worker).  0 and
 * *out, or a negative errno.
 */
int lookup_pool_new(struct ferry_loop *loop, unsigned max_threads, const char *hosts_file,
                    struct lookup_pool **out);

/* Cancel every request still queued or looked up, stop watching the loop,
 * and let go: workers still inside getaddrinfo finish on their own (see
 * above).  NULL allowed. */
void lookup_pool_free(struct lookup_pool *p);

/*
 * Look `name` up for a stream connection to `port`.  Answered at once:
 * the number of addresses written to out (at most max, at most
 * LOOKUP_MAX_ADDRS), or FERRY_EADDR.  Otherwise 0: the request is under way
 * (*q its handle) and cb(arg, ...) comes later from the loop, unless
 * lookup_cancel(*q) comes first.  -ENOMEM or a thread's -errno when it
 * cannot be started.
 */
int lookup_start(struct lookup_pool *p, const char *name, uint16_t port, struct ferry_addr *out,
                 int max, lookup_cb *cb, void *arg, struct lookup **q);

/* Forget a request under way: its callback will not be called.  On the
 * loop's thread, before its callback; NULL allowed. */
void lookup_cancel(struct lookup *q);

#endif
