/*
 * audit.c - the audit trail's lines (audit.h): the fields in a fixed order,
 * the short ones first so that a line cut at the logger's limit keeps them,
 * every value through ferry_log_quote.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/log.h"
#include "audit.h"
#include "monoclock.h"

#define Q FERRY_LOG_Q

/* The fields every line starts with: event, peer, listener and, once
 * known, key= or subject=. */
#define WHO_FMT "event=%s peer=%s listener=%s%s%s%s%s"
#define WHO_ARGS(event, w) (event), Q((w)->peer), Q((w)->listener), \
    (w)->id_key && (w)->id_value ? " " : "", \
    (w)->id_key && (w)->id_value ? (w)->id_key : "", \
    (w)->id_key && (w)->id_value ? "=" : "", \
    (w)->id_key && (w)->id_value ? Q((w)->id_value) : ""

void audit_session(const struct audit_who *who, const char *auth, const char *result,
                   const char *reason)
{
    ferry_log_audit(WHO_FMT " result=%s%s%s%s%s", WHO_ARGS("session", who), Q(result),
                    auth ? " auth=" : "", auth ? Q(auth) : "",
                    reason ? " reason=" : "", reason ? Q(reason) : "");
}

/* The words of argv, each quoted as a value is, space-separated; stops
 * once the line could not hold more (the logger marks the cut). */
static char *join_words(char *const *argv)
{
    size_t len = 0, cap = 256;
    char *out = malloc(cap), word[FERRY_LOG_VALUE_MAX];

    if (!out)
        return NULL;
    out[0] = '\0';
    for (size_t i = 0; argv[i] && len < FERRY_LOG_VALUE_MAX; i++) {
        size_t n = strlen(ferry_log_quote(word, sizeof word, argv[i]));
        if (len + n + 2 > cap) {
            char *grown = realloc(out, cap = len + n + 2 + cap);
            if (!grown) {
                free(out);
                return NULL;
            }
            out = grown;
        }
        if (i > 0)
            out[len++] = ' ';
        memcpy(out + len, word, n + 1);
        len += n;
    }
    return out;
}

int audit_cmd_begin(struct audit_cmd *a, char *const *argv, const char *shell, const char *cwd,
                    const char *original, pid_t pid)
{
    memset(a, 0, sizeof *a);
    a->argv = argv ? join_words(argv) : NULL;
    a->shell = shell ? strdup(shell) : NULL;
    a->cwd = cwd ? strdup(cwd) : NULL;
    a->original = original ? strdup(original) : NULL;
    a->started_ns = monoclock_ns();
    a->pid = pid;
    if ((argv && !a->argv) || (shell && !a->shell) || (cwd && !a->cwd) ||
        (original && !a->original)) {
        free(a->argv);
        free(a->shell);
        free(a->cwd);
        free(a->original);
        memset(a, 0, sizeof *a);
        return -ENOMEM;
    }
    return 0;
}

void audit_cmd_end(struct audit_cmd *a, const struct audit_who *who,
                   const struct runner_result *res, const char *reason)
{
    char outcome[96];
    int64_t ms = (monoclock_ns() - a->started_ns) / 1000000;

    if (res && res->signaled)
        snprintf(outcome, sizeof outcome, "result=signal signal=%d%s%s", res->signal,
                 res->core ? " core=1" : "", res->timed_out ? " timeout=1" : "");
    else if (res)
        snprintf(outcome, sizeof outcome, "result=exit status=%d%s", res->status,
                 res->timed_out ? " timeout=1" : "");
    else
        snprintf(outcome, sizeof outcome, "result=%s", reason ? "error" : "aborted");
    /* original= last: the client chose it, and it may be long. */
    ferry_log_audit(WHO_FMT " pid=%ld %s duration_ms=%" PRId64 "%s%s%s cwd=%s %s=%s%s%s",
                    WHO_ARGS("exec", who), (long)a->pid, outcome, ms < 0 ? 0 : ms,
                    reason ? " reason=" : "", reason ? Q(reason) : "", a->tty ? " tty=1" : "",
                    a->cwd ? Q(a->cwd) : "~", a->shell ? "shell" : "argv",
                    Q(a->shell ? a->shell : a->argv ? a->argv : ""),
                    a->original ? " original=" : "", a->original ? Q(a->original) : "");
    free(a->argv);
    free(a->shell);
    free(a->cwd);
    free(a->original);
    memset(a, 0, sizeof *a);
}

void audit_file(const struct audit_who *who, const char *op, const char *path, int64_t bytes,
                const char *result, const char *reason)
{
    char nbytes[32] = "";

    if (bytes >= 0)
        snprintf(nbytes, sizeof nbytes, " bytes=%" PRId64, bytes);
    ferry_log_audit(WHO_FMT " op=%s result=%s%s%s%s path=%s", WHO_ARGS("file", who), Q(op), Q(result), nbytes, reason ? " reason=" : "",
                    reason ? Q(reason) : "", Q(path));
}

void audit_denied(const struct audit_who *who, const char *op, const char *path,
                  const char *reason)
{
    if (!path)
        ferry_log_audit(WHO_FMT " result=denied reason=%s", WHO_ARGS("exec", who), Q(reason));
    else
        audit_file(who, op, path, -1, "denied", reason);
}
