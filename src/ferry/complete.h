/*
 * complete.h - Tab completion for ferry shell at a terminal: remote paths
 * for remote operands (asked of the server with list requests, each
 * directory once per session), local paths for local ones, the shell's
 * commands for the first word.  complete.c says which operand is which.
 */
#ifndef FERRY_CLIENT_COMPLETE_H
#define FERRY_CLIENT_COMPLETE_H

#include "client_session.h"

/* Complete from now on; *sp is the session remote directories are listed
 * on, read at each Tab (the shell may reopen it). */
void complete_start(struct client_session **sp);

/* Forget the remote directories listed so far: a command may have
 * changed them (put, rm, mkdir, or a command line). */
void complete_forget(void);

/* No more completion; the cache is freed. */
void complete_stop(void);

#endif
