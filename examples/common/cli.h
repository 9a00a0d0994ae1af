/*
 * cli.h - small command-line helpers the example programs share.
 */
#ifndef FERRY_EXAMPLE_CLI_H
#define FERRY_EXAMPLE_CLI_H

#include <getopt.h>

#include "ferry/server.h"

/* The options every example server shares, for its getopt_long table and
 * its usage text; cli_server_option() applies them. */
#define CLI_SERVER_SHORTOPTS "m:w:v"
#define CLI_OPT_MAX_CONNS    0x100
#define CLI_OPT_IDLE_TIMEOUT 0x101
#define CLI_SERVER_LONGOPTS                                                  \
    { "model", required_argument, NULL, 'm' },                               \
    { "workers", required_argument, NULL, 'w' },                             \
    { "max-conns", required_argument, NULL, CLI_OPT_MAX_CONNS },             \
    { "idle-timeout", required_argument, NULL, CLI_OPT_IDLE_TIMEOUT },       \
    { "verbose", no_argument, NULL, 'v' }
#define CLI_SERVER_USAGE                                                             \
    "  -m, --model MODEL        event (default), thread or fork\n"                   \
    "  -w, --workers N          event model: loop threads (default 1)\n"             \
    "      --max-conns N        concurrent connections (default 1024)\n"             \
    "      --idle-timeout S     close connections silent for S seconds (default: never)\n" \
    "  -v, --verbose            log every connection\n"

/* Apply one of the shared server options to *o.  Returns 1 when opt was
 * one of them, 0 when it is not, -1 after printing why arg is bad. */
int cli_server_option(const char *prog, int opt, const char *arg, struct ferry_server_opts *o);

/* Parse a whole decimal integer in [min, max].  Returns 0, or -1 after
 * printing "PROG: bad value for OPTION: TEXT" to stderr. */
int cli_int(const char *prog, const char *option, const char *text, long min, long max, long *out);

#endif
