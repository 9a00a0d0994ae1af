/*
 * options.h - ferryd's command line and configuration file (-f): one set
 * of options, the file's settings first and the command line over them,
 * every value checked as it is read (options.c).  main.c turns them into
 * a server.
 */
#ifndef FERRYD_OPTIONS_H
#define FERRYD_OPTIONS_H

#include <stddef.h>

#include "ferry/ferry.h"

#define MAX_LISTEN 16
/* Silent or slow peers may hold this many connections before the handshake;
 * more are turned away so they cannot lock authenticated users out. */
#define FERRYD_DEFAULT_MAX_UNAUTH 256
/* Fair admission among them (see admit_policy.h): random early drop from
 * three quarters of --max-unauth on (rounded up, so a small cap of 2 or 3
 * never drops at random), 30% rising to 100% (sshd's MaxStartups
 * 10:30:100 shape), and a source whose waiting connection was evicted is
 * refused for a second (sshd's PerSourcePenalties noauth). */
#define FERRYD_DEFAULT_EARLY_DROP_RATE 30
#define FERRYD_DEFAULT_UNAUTH_PENALTY_MS 1000
#define FERRYD_DEFAULT_ROOT "./ferry-root"

struct options {
    const char *listen[MAX_LISTEN];
    int nlisten;
    const char *classic[MAX_LISTEN];
    int nclassic;
    const char *key_file;
    const char *keys_file;
    const char *cert, *cert_key, *client_ca;
    const char *root;
    int plaintext;
    int no_sweep;
    int insecure_no_auth;
    int insecure_classic;
    int classic_max_conns;
    int classic_idle_timeout_ms;
    int classic_max_output_mib;
    int workers_given;
    int classic_tuned;     /* a --classic-* limit was given */
    /* -f: settings read from a file come first; an address list given on
     * the command line replaces the file's rather than adding to it. */
    const char *config;
    int in_file, listen_from_file, classic_from_file;
    int key_from_file;         /* key_file or keys_file came from the file */
    char **kept;               /* the file's values, which those above point to */
    size_t nkept;
    struct ferry_server_opts server;
};

/* The defaults, before the file and the command line. */
void options_init(struct options *o);

/* -f's file, then the command line, into *o.  0 to go on, -1 after --help
 * or --version (exit 0), or the exit status of a usage error (said on
 * stderr). */
int options_parse(int argc, char **argv, struct options *o);

/* What the file's values needed (the strings *o points to). */
void options_free(struct options *o);

#endif
