/*
 * shell_local.h - ferry shell's commands run on this machine rather than
 * the server: `!CMD` (sftp's habit) and `lls`.  Both run in the
 * foreground with the shell's stdin, stdout and stderr; Ctrl-C stops the
 * child, not the shell.
 */
#ifndef FERRY_CLIENT_SHELL_LOCAL_H
#define FERRY_CLIENT_SHELL_LOCAL_H

/* `!CMD`: CMD (the text after '!') with /bin/sh -c; a bare `!` starts
 * $SHELL (else /bin/sh) until it exits.  Returns CMD's status (128+N when
 * killed by signal N, 127 when it could not be run). */
int shell_bang(const char *cmdline);

/* `lls [ARGS...]`: ls with ARGS (argv[0] is "lls"), in the local
 * directory lcd sets.  Returns ls's status. */
int shell_lls(int argc, char **argv);

#endif
