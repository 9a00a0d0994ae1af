/*
 * cli.h - what the ferry client's subcommands share: the exit statuses,
 * one way to print an error, and option-value parsing.
 *
 * Exit statuses: a remote command's own status passes through untouched,
 * so ferry keeps only three for itself: 2 for a command line it cannot
 * understand (nothing was attempted), 255 for its own failures at run time
 * (as ssh does), and 124 when --timeout killed the command (as timeout(1)
 * does).
 */
#ifndef FERRY_CLIENT_CLI_H
#define FERRY_CLIENT_CLI_H

#include "proto.h"

#define EXIT_USAGE 2

/* The options every subcommand takes, in every --help alike (those that
 * connect add dial.h's DIAL_OPTS_HELP before them). */
#define CLI_COMMON_HELP                                          \
    "  -h, --help               show this help\n"                \
    "  -V, --version            show the version\n"
/* FERRY_EXIT_ERROR (255) and FERRY_EXIT_TIMEOUT (124) come from proto.h. */

/* "ferry: <message>\n" on stderr, in one write so lines from concurrent
 * processes never interleave. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A usage error: the message, then a hint naming `help_cmd`'s --help.
 * Returns EXIT_USAGE so callers can `return cli_usage_error(...)`. */
int cli_usage_error(const char *help_cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Report what getopt_long (run with opterr = 0 and a leading ':' in its
 * optstring) did not like about the option it returned as `opt` ('?' or
 * ':').  Returns EXIT_USAGE. */
int cli_bad_option(const char *help_cmd, int opt, char **argv);

/* Parse a number of seconds, > 0 and at most max_s (fractions allowed).
 * Returns 0, or -1 after printing what was wrong (with help_cmd's hint). */
int cli_seconds(const char *help_cmd, const char *option, const char *text, double max_s,
                double *out);

/* The same where 0 means none (--keepalive, --persist), as the message
 * then says. */
int cli_seconds_or_0(const char *help_cmd, const char *option, const char *text, double max_s,
                     double *out);

/* The subcommands: each gets argv[0] = its own name and returns the
 * process's exit status. */
int cmd_keygen(int argc, char **argv);
int cmd_exec(int argc, char **argv);
int cmd_shell(int argc, char **argv);
/* The file service (cmd_files.c): put, get, ls, stat, mkdir, rm. */
int cmd_put(int argc, char **argv);
int cmd_get(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_stat(int argc, char **argv);
int cmd_mkdir(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_config(int argc, char **argv);

#endif
