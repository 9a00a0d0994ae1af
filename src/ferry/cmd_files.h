/*
 * cmd_files.h - the file subcommands (put, get, ls, rm, mkdir, stat): their
 * command lines, for `ferry CMD [OPTIONS] HOST ...` (cli.h's cmd_put ...)
 * and for the same lines without HOST at the `ferry shell` prompt.
 */
#ifndef FERRY_CLIENT_CMD_FILES_H
#define FERRY_CLIENT_CMD_FILES_H

#include "dial.h"

/* True when `name` is one of the file subcommands. */
int cmd_files_is(const char *name);

/*
 * Run argv (argv[0] being the subcommand's name, no HOST) on the shell's
 * session *sp, which is replaced when it had to be reopened (host and so
 * say how).  Returns the command's exit status.
 */
int cmd_files_shell(struct client_session **sp, const char *host, const struct dial_opts *so,
                int argc, char **argv);

#endif
