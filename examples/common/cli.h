/*
 * cli.h - small command-line helpers the example programs share.
 */
#ifndef FERRY_EXAMPLE_CLI_H
#define FERRY_EXAMPLE_CLI_H

/* Parse a whole decimal integer in [min, max].  Returns 0, or -1 after
 * printing "PROG: bad value for OPTION: TEXT" to stderr. */
int cli_int(const char *prog, const char *option, const char *text, long min, long max, long *out);

#endif
