/*
 * audit.h - ferryd's audit trail: one line per session, per command and per
 * file operation, on stderr with the other log lines (log.h), whatever the
 * log level.  Each is "audit:" then key=value pairs, event= first:
 *
 *   ... audit: event=session peer=127.0.0.1:50312 listener=main key=ci result=ok auth=hmac
 *   ... audit: event=exec peer=127.0.0.1:50312 listener=main key=ci pid=4242 result=exit status=0 ...
 *   ... audit: event=file peer=127.0.0.1:50312 listener=main key=ci op=put result=ok ... path=a/b.txt
 *
 * Every value a peer chose goes through ferry_log_quote, so a line is
 * never forged and always parses; docs/DESIGN.md ("The audit trail") has
 * the grammar and the fields.  The lines of one session share its peer=,
 * and once it has authenticated, who it is (key= or subject=): an admin
 * greps one key's doings without going back to its session's line.
 */
#ifndef FERRYD_AUDIT_H
#define FERRYD_AUDIT_H

#include <stdint.h>
#include <sys/types.h>

#include "runner.h"

/*
 * Who a line is about, kept by its session for the session's life.  peer:
 * the connection's address (ferry_conn_peer); listener: "main" or
 * "classic"; id_key and id_value: who it proved (or, on a session line,
 * claims) to be, "key" and a key name or "subject" and a certificate
 * subject; NULL until then, and always for classic and --insecure-no-auth.
 */
struct audit_who {
    const char *peer;
    const char *listener;
    const char *id_key;
    const char *id_value;
};

/*
 * A session's outcome.  auth: how it authenticated ("hmac", "tls-psk",
 * "certificate", "none"), or NULL when it never got that far; reason: why
 * it was denied (NULL when result is "ok").
 */
void audit_session(const struct audit_who *who, const char *auth, const char *result,
                   const char *reason);

/* A command from its start to its one audit line. */
struct audit_cmd {
    char *argv;          /* the words, each quoted as a value is; malloc'd */
    char *shell;         /* or the shell command line; malloc'd */
    char *cwd;           /* where it runs (NULL: the home directory) */
    char *original;      /* under a command= key, what the client asked for
                          * (the line says original=); malloc'd, or NULL */
    int64_t started_ns;
    pid_t pid;
    int tty;             /* it ran on a terminal (exec -t): the line says tty=1 */
};

/* Remembers what ran (argv or shell, one of them NULL), where, and under a
 * command= key what the client asked for (original; else NULL); 0 or
 * -ENOMEM.  A started command ends with exactly one audit_cmd_end. */
int audit_cmd_begin(struct audit_cmd *a, char *const *argv, const char *shell, const char *cwd,
                    const char *original, pid_t pid);
/*
 * The command's line, then a's memory is released.  res: how it ended; NULL
 * when it did not start (reason says why: result=error) or was killed
 * because its session ended (reason NULL: result=aborted).
 */
void audit_cmd_end(struct audit_cmd *a, const struct audit_who *who,
                   const struct runner_result *res, const char *reason);

/*
 * A file operation.  op: put, get, mkdir, rm; bytes < 0: not meaningful;
 * result: "ok", "error" (reason says which), "abandoned" (the client
 * gave up), "interrupted" (the session ended mid-transfer).
 */
void audit_file(const struct audit_who *who, const char *op, const char *path, int64_t bytes,
                const char *result, const char *reason);

/* A request the key's restrictions (keyopts.h) refused: event=exec or
 * event=file with op, path (NULL for exec), result=denied and the reason. */
void audit_denied(const struct audit_who *who, const char *op, const char *path,
                  const char *reason);

#endif
