/*
 * sessionsvc_cwd.c - the session's directory (PROTOCOL.md 2.3): where it
 * starts (the daemon user's home), how the client's paths are taken
 * relative to it, chdir, and the names `ferry shell` completes a cd with
 * (cd-names).  Not the file service's root: commands run here.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ferry/ferry.h"
#include "audit.h"
#include "keyopts.h"
#include "proto.h"
#include "sessionsvc_int.h"

/* At most this many names in one cd-names answer (a completion, not a
 * listing: the client says which ones start with what was typed). */
#define CD_NAMES_MAX 1000
/* ... and at most this many entries looked at for them. */
#define CD_SCAN_MAX 100000

static char home_cache[PATH_MAX] = "/";

static void find_home(void)
{
    struct passwd pw, *found = NULL;
    char buf[4096];

    if (getpwuid_r(getuid(), &pw, buf, sizeof buf, &found) == 0 && found && found->pw_dir &&
        found->pw_dir[0] == '/')
        snprintf(home_cache, sizeof home_cache, "%s", found->pw_dir);
}

/* The daemon user's home, where sessions start: the password database's
 * answer, as launch.c uses for a command's default directory, so both agree.
 * Looked up once (getpwuid_r, thread-safe) and kept. */
const char *sessionsvc_home_dir(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, find_home);
    return home_cache;
}

/* A path from the client, taken relative to the session's directory.
 * Returns a malloc'd absolute path. */
char *sessionsvc_path(const struct session *s, const char *path)
{
    char *out = NULL;
    if (path[0] == '/')
        return strdup(path);
    if (asprintf(&out, "%s/%s", s->cwd ? s->cwd : sessionsvc_home_dir(), path) < 0)
        return NULL;
    return out;
}

/* Whether the session's key may not run commands of its choosing
 * (files-only, read-only, or a forced command=). */
static int may_not_run_commands(const struct session *s)
{
    return (s->opts->flags & (KEYOPT_FILES_ONLY | KEYOPT_READ_ONLY)) || s->opts->command[0];
}

int sessionsvc_handle_chdir(struct session *s, json_t *msg)
{
    const char *path = json_string_value(json_object_get(msg, "path"));
    char *joined = NULL, *real = NULL, reason[PATH_MAX + 128];
    json_t *answer;
    struct stat st;
    int r, e = 0;

    if (!path)
        return session_protocol_error(s, "chdir needs a \"path\" string");
    /* A key that may not run commands has no directory to move in, and a
     * chdir looks at any path on the machine (realpath, stat): a
     * files-only key confined by root= could probe what exists outside
     * it and where symlinks lead.  Refused as cd-names is. */
    if (may_not_run_commands(s)) {
        audit_denied(&s->who, "chdir", path, "key may not run commands");
        return session_send_error(s, ERR_DENIED, "this key may not run commands, so it has no "
                                  "directory to change");
    }
    if (*path == '\0')
        path = sessionsvc_home_dir();
    joined = sessionsvc_path(s, path);
    if (!joined)
        return -ENOMEM;
    real = realpath(joined, NULL);
    if (!real)
        e = errno;
    else if (stat(real, &st) < 0)
        e = errno;
    else if (!S_ISDIR(st.st_mode))
        e = ENOTDIR;
    else if (access(real, X_OK) < 0)
        e = errno;
    if (e) {
        snprintf(reason, sizeof reason, "cd %s: %s", path, strerror(e));
        r = session_send_error(s, ERR_REQUEST, reason);
        goto out;
    }
    /* A directory whose full name is not UTF-8 cannot be said in the
     * answer: refused as any other directory we cannot move to, rather
     * than ending the session (json_pack fails on it). */
    answer = json_pack("{s:s, s:s}", "type", MSG_CWD, "path", real);
    if (!answer) {
        snprintf(reason, sizeof reason, "cd %s: the directory's full name is not valid UTF-8, "
                 "which the protocol cannot carry", path);
        r = session_send_error(s, ERR_REQUEST, reason);
        goto out;
    }
    free(s->cwd);
    s->cwd = real;
    real = NULL;
    r = session_send_msg(s, answer);
out:
    free(joined);
    free(real);
    return r;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The directories in DIR (relative to the session's directory), starting
 * with `prefix`, for completing a cd: only for keys that may run commands
 * (a files-only key's session has no directory to move in). */
int sessionsvc_handle_cd_names(struct session *s, json_t *msg)
{
    const char *path = json_string_value(json_object_get(msg, "path"));
    const char *prefix = json_string_value(json_object_get(msg, "prefix"));
    char *joined = NULL, *names[CD_NAMES_MAX], reason[PATH_MAX + 64];
    size_t n = 0, plen, scanned = 0;
    int truncated = 0, r, fd;
    json_t *list = NULL;
    struct dirent *d;
    DIR *dir = NULL;

    if (!path || !prefix)
        return session_protocol_error(s, "cd-names needs \"path\" and \"prefix\" strings");
    if (may_not_run_commands(s))
        return session_send_error(s, ERR_DENIED, "this key may not run commands, so it has no "
                                  "directory to change");
    plen = strlen(prefix);
    joined = sessionsvc_path(s, *path ? path : ".");
    if (!joined)
        return -ENOMEM;
    fd = open(joined, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || !(dir = fdopendir(fd))) {
        snprintf(reason, sizeof reason, "cd %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        free(joined);
        return session_send_error(s, ERR_REQUEST, reason);
    }
    while ((d = readdir(dir)) != NULL) {
        struct stat st;

        if (++scanned > CD_SCAN_MAX) {
            truncated = 1;
            break;
        }
        if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0 ||
            strncmp(d->d_name, prefix, plen) != 0)
            continue;
        /* A symbolic link to a directory is one to cd into. */
        if (d->d_type != DT_DIR &&
            ((d->d_type != DT_LNK && d->d_type != DT_UNKNOWN) ||
             fstatat(dirfd(dir), d->d_name, &st, 0) < 0 || !S_ISDIR(st.st_mode)))
            continue;
        if (n == CD_NAMES_MAX) {
            truncated = 1;
            break;
        }
        if (!(names[n] = strdup(d->d_name)))
            break;
        n++;
    }
    closedir(dir);
    free(joined);
    qsort(names, n, sizeof names[0], cmp_names);
    list = json_array();
    for (size_t i = 0; list && i < n; i++) {
        /* A name that is not UTF-8 cannot be said in JSON (nor typed
         * after a cd): left out, not the end of the session. */
        json_t *name = json_string(names[i]);

        if (name && json_array_append_new(list, name) < 0) {
            json_decref(list);
            list = NULL;
        }
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    if (!list)
        return -ENOMEM;
    r = session_send_msg(s, json_pack("{s:s, s:o, s:b}", "type", MSG_CD_NAMES, "names", list,
                                       "truncated", truncated));
    return r;
}
