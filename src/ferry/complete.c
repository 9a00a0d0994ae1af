/*
 * complete.c - Tab completion for ferry shell (complete.h).
 *
 * Which side a word is on follows sftp: ls, stat, rm and mkdir take remote
 * paths; get's first operand is remote and the ones after it local; put's
 * first is local and the ones after it remote; lcd, lls and `!` lines take
 * local paths (not `!t` lines: those run on the server); cd's operand
 * is a directory where commands run, asked of the server (cd-names).  The first word completes to the shell's own commands.  A
 * remote directory is listed once per session with a list request (the
 * file service, so paths are relative to the server's file root, as the
 * file commands' are) and kept; complete_forget drops what a command may
 * have changed.  Words are split at blanks not escaped by a backslash,
 * without quotes; an offered name is escaped so that the line's own
 * splitting (shellwords.c, or sh for a `!` line) gives it back whole ("a b"
 * is offered as "a\ b"), cd's too (an escaped operand is one word).
 */
#include "complete.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lineedit.h"
#include "remotefs.h"
#include "termsafe.h"

/* Directories remembered at once; the oldest goes first. */
#define CACHE_DIRS 64

enum side { NONE, LOCAL, REMOTE, COMMAND, CD };

struct dir_entry {
    char *name;
    int is_dir;
};

struct cached_dir {
    char *path;                 /* canonical remote path ("." for the root) */
    struct dir_entry *e;
    size_t n;
};

static struct {
    struct client_session **sp;
    struct cached_dir dirs[CACHE_DIRS];
    size_t ndirs;
} cc;

static void drop_dir(struct cached_dir *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->e[i].name);
    free(d->e);
    free(d->path);
    memset(d, 0, sizeof *d);
}

void complete_forget(void)
{
    for (size_t i = 0; i < cc.ndirs; i++)
        drop_dir(&cc.dirs[i]);
    cc.ndirs = 0;
}

/* The listing of remote directory `path`, from the cache or the server;
 * NULL when it cannot be listed (not a directory, no session). */
static const struct cached_dir *remote_dir(const char *path)
{
    struct client_session *s = cc.sp ? *cc.sp : NULL;
    struct cached_dir d = { 0 };
    struct fs_error err;
    json_t *entries = NULL, *e;
    size_t i;

    for (i = 0; i < cc.ndirs; i++)
        if (strcmp(cc.dirs[i].path, path) == 0)
            return &cc.dirs[i];
    if (!s || s->broken || remotefs_list(s, path, &entries, &err) < 0)
        return NULL;
    d.path = strdup(path);
    d.e = calloc(json_array_size(entries) + 1, sizeof *d.e);
    if (!d.path || !d.e) {
        drop_dir(&d);
        json_decref(entries);
        return NULL;
    }
    json_array_foreach(entries, i, e) {
        const char *name = json_string_value(json_object_get(e, "name"));
        const char *kind = json_string_value(json_object_get(e, "kind"));

        if (!name || !(d.e[d.n].name = strdup(name)))
            continue;
        d.e[d.n++].is_dir = kind && strcmp(kind, "dir") == 0;
    }
    json_decref(entries);
    if (cc.ndirs == CACHE_DIRS) {
        drop_dir(&cc.dirs[0]);
        memmove(cc.dirs, cc.dirs + 1, (CACHE_DIRS - 1) * sizeof cc.dirs[0]);
        cc.ndirs--;
    }
    cc.dirs[cc.ndirs] = d;
    return &cc.dirs[cc.ndirs++];
}

/* What a backslash must guard in a word for the shell's splitting and for
 * sh (a `!` line): blanks, quotes, the backslash, sh's metacharacters. */
#define ESCAPED " \t\n\\'\"$`&;|<>()*?[]{}#~!"

/* Append s[0..n) to out at *o, each ESCAPED character after a backslash. */
static void put_escaped(char *out, size_t *o, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strchr(ESCAPED, s[i]))
            out[(*o)++] = '\\';
        out[(*o)++] = s[i];
    }
}

/* Offer dir_part + name (+ "/" for a directory) when name starts with
 * prefix; names starting with '.' only when the prefix does.  A name
 * with a control character is never offered: libedit prints a list of
 * matches as it is, so a server's name would drive the terminal (an OSC,
 * a CSI), and no such name can be asked for. */
static void offer(struct lineedit_matches *m, const char *dir_part, size_t dir_len,
                  const char *prefix, const char *name, int is_dir)
{
    size_t plen = strlen(prefix), nlen = strlen(name), o = 0;
    char *word;

    if (strncmp(name, prefix, plen) != 0 || (name[0] == '.' && prefix[0] != '.') ||
        strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || termsafe_has_control(name))
        return;
    word = malloc(2 * (dir_len + nlen) + 2);
    if (!word)
        return;
    put_escaped(word, &o, dir_part, dir_len);
    put_escaped(word, &o, name, nlen);
    if (is_dir)
        word[o++] = '/';
    word[o] = '\0';
    (void)lineedit_match(m, word);
    free(word);
}

static void complete_remote(struct lineedit_matches *m, const char *word)
{
    const char *slash = strrchr(word, '/');
    size_t dir_len = slash ? (size_t)(slash - word) + 1 : 0;
    char *dir = slash ? strndup(word, dir_len) : strdup(".");
    char *canon = dir ? remotefs_canon(dir) : NULL;
    const struct cached_dir *d = canon ? remote_dir(canon) : NULL;

    for (size_t i = 0; d && i < d->n; i++)
        offer(m, word, dir_len, word + dir_len, d->e[i].name, d->e[i].is_dir);
    free(canon);
    free(dir);
}

/* cd's operand: directories where commands run (the session's directory,
 * not the file root), asked each time (a cd moves the base). */
static void complete_cd(struct lineedit_matches *m, const char *word)
{
    struct client_session *s = cc.sp ? *cc.sp : NULL;
    const char *slash = strrchr(word, '/');
    size_t dir_len = slash ? (size_t)(slash - word) + 1 : 0;
    char *dir = slash ? strndup(word, dir_len) : strdup(".");
    json_t *names = NULL, *e;
    struct fs_error err;
    size_t i;

    if (dir && s && !s->broken &&
        remotefs_cd_names(s, dir, word + dir_len, &names, &err) == 0) {
        json_array_foreach(names, i, e)
            offer(m, word, dir_len, word + dir_len, json_string_value(e), 1);
        json_decref(names);
    }
    free(dir);
}

static void complete_local(struct lineedit_matches *m, const char *word)
{
    const char *slash = strrchr(word, '/');
    size_t dir_len = slash ? (size_t)(slash - word) + 1 : 0;
    char *dir = slash ? strndup(word, dir_len) : strdup(".");
    DIR *dp = dir ? opendir(dir) : NULL;
    struct dirent *de;

    while (dp && (de = readdir(dp)) != NULL) {
        struct stat st;
        int is_dir = de->d_type == DT_DIR;

        /* A link to a directory is one to complete into. */
        if (de->d_type == DT_LNK || de->d_type == DT_UNKNOWN)
            is_dir = fstatat(dirfd(dp), de->d_name, &st, 0) == 0 && S_ISDIR(st.st_mode);
        offer(m, word, dir_len, word + dir_len, de->d_name, is_dir);
    }
    if (dp)
        closedir(dp);
    free(dir);
}

static void complete_command(struct lineedit_matches *m, const char *word)
{
    static const char *const names[] = { "cd", "exit", "get", "lcd", "lls", "lpwd", "ls",
                                         "mkdir", "put", "quit", "rm", "stat" };

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strncmp(names[i], word, strlen(word)) == 0)
            (void)lineedit_match(m, names[i]);
}

/* Which side the word starting at `start` is on, from the words before it. */
static enum side side_of(const char *line, int start)
{
    char cmd[16] = "";
    int operand = 0, words = 0;

    for (int i = 0; i < start;) {
        int j = i;

        while (j < start && (line[j] == ' ' || line[j] == '\t'))
            j++;
        if (j == start)
            break;
        i = j;
        while (i < start && line[i] != ' ' && line[i] != '\t')
            i += line[i] == '\\' && i + 1 < start ? 2 : 1;
        if (words++ == 0)
            snprintf(cmd, sizeof cmd, "%.*s", i - j, line + j);
        else if (line[j] != '-')
            operand++;
    }
    while (*line == ' ' || *line == '\t')
        line++;
    /* "!t CMD" runs CMD on the server's terminal: its words are its own. */
    if (line[0] == '!' && line[1] == 't' && (line[2] == ' ' || line[2] == '\t'))
        return NONE;
    if (*line == '!')
        return words > 0 ? LOCAL : NONE;
    if (words == 0)
        return COMMAND;
    operand++;   /* the word being completed */
    if (!strcmp(cmd, "ls") || !strcmp(cmd, "stat") || !strcmp(cmd, "rm") || !strcmp(cmd, "mkdir"))
        return REMOTE;
    if (!strcmp(cmd, "get"))
        return operand == 1 ? REMOTE : LOCAL;
    if (!strcmp(cmd, "put"))
        return operand == 1 ? LOCAL : REMOTE;
    if (!strcmp(cmd, "lcd") || !strcmp(cmd, "lls"))
        return LOCAL;
    if (!strcmp(cmd, "cd"))
        return operand == 1 ? CD : NONE;
    return NONE;
}

static void complete(void *arg, const char *line, int start, int end, struct lineedit_matches *m)
{
    enum side side;
    char *word, *w;
    (void)arg;

    if (start < 0 || end < start || (size_t)end > strlen(line))
        return;
    word = strndup(line + start, (size_t)(end - start));
    if (!word)
        return;
    side = word[0] == '-' ? NONE : side_of(line, start);
    /* The word as the line's splitting will read it ("a\ b" is "a b"). */
    w = word;
    for (const char *r = word; *r; r++) {
        if (*r == '\\' && r[1])
            r++;
        *w++ = *r;
    }
    *w = '\0';
    switch (side) {
    case COMMAND: complete_command(m, word); break;
    case LOCAL: complete_local(m, word); break;
    case REMOTE: complete_remote(m, word); break;
    case CD: complete_cd(m, word); break;
    case NONE: break;
    }
    free(word);
}

void complete_start(struct client_session **sp)
{
    cc.sp = sp;
    lineedit_set_completer(complete, NULL);
}

void complete_stop(void)
{
    lineedit_set_completer(NULL, NULL);
    complete_forget();
    cc.sp = NULL;
}
