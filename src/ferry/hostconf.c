/*
 * hostconf.c - reading the host configuration files (hostconf.h).
 *
 * Every file is read whole, line by line, and every line is checked even
 * in blocks that do not apply to the host at hand, so a mistake shows the
 * first time any command reads the file, not the day someone uses the
 * host it is under.  What the lines say is kept in memory in their order
 * (struct hostconf_db), so that a fleet reads the files once and asks
 * for each of its hosts without touching the disk again.
 */
#include "hostconf.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "keys.h"

#define SYSTEM_CONFIG "/etc/ferry/config"
#define LINE_MAX_LEN 4096

static const char *const key_names[HC_NKEYS] = {
    [HC_ADDRESS] = "Address",         [HC_PORT] = "Port",
    [HC_KEYFILE] = "KeyFile",         [HC_KEYNAME] = "KeyName",
    [HC_PLAINTEXT] = "Plaintext",     [HC_CA] = "CA",
    [HC_CERT] = "Cert",               [HC_CERTKEY] = "CertKey",
    [HC_CONNECTTIMEOUT] = "ConnectTimeout", [HC_KEEPALIVE] = "Keepalive",
    [HC_PERSIST] = "Persist",
};

const char *hostconf_key_name(enum hostconf_key k)
{
    static char lower[HC_NKEYS][24];

    if (!lower[k][0])
        for (size_t i = 0; key_names[k][i] && i + 1 < sizeof lower[k]; i++)
            lower[k][i] = (char)tolower((unsigned char)key_names[k][i]);
    return lower[k];
}

void hostconf_free(struct hostconf *hc)
{
    for (int k = 0; k < HC_NKEYS; k++)
        free(hc->values[k]);
    free(hc->groups);
    *hc = (struct hostconf){ 0 };
}

/*
 * What the files say, kept in their order: one entry per line that
 * matters.  Words (a Host line's patterns, a Group's name and members)
 * are stored NUL-separated, the last followed by an empty one.
 */
enum entry_kind {
    E_FILE,    /* a file starts: its first lines apply to every host */
    E_HOST,    /* Host PATTERN...: text holds the patterns */
    E_GROUP,   /* Group NAME MEMBER...: text holds NAME, then the members */
    E_SET,     /* Key Value: text holds the value (a path with ~ expanded) */
};

struct entry {
    struct entry *next;
    enum entry_kind kind;
    enum hostconf_key key;   /* E_SET's */
    char text[];
};

struct hostconf_db {
    struct entry *head, **tail;
};

/* Where one file is being read, for messages. */
struct reader {
    const char *path;
    unsigned line;
    struct hostconf_db *db;
};

static int bad(const struct reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int bad(const struct reader *r, const char *fmt, ...)
{
    char what[320];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    cli_error("%s:%u: %s", r->path, r->line, what);
    return -1;
}

/* Append an entry holding len bytes of text (copied, then a NUL and an
 * empty word's NUL).  0 or -1 (printed). */
static int add_entry(struct hostconf_db *db, enum entry_kind kind, enum hostconf_key key,
                     const char *text, size_t len)
{
    struct entry *e = malloc(sizeof *e + len + 2);

    if (!e) {
        cli_error("out of memory");
        return -1;
    }
    e->next = NULL;
    e->kind = kind;
    e->key = key;
    memcpy(e->text, text, len);
    e->text[len] = e->text[len + 1] = '\0';
    *db->tail = e;
    db->tail = &e->next;
    return 0;
}

/* The words of v (space- or tab-separated) as an entry.  The number of
 * words, or -1 (printed). */
static int add_words(struct hostconf_db *db, enum entry_kind kind, char *v)
{
    char *w = v, *save = NULL;
    size_t len = 0;
    int n = 0;

    /* Packed in place: each word moves down over the blanks before it. */
    for (char *t = strtok_r(v, " \t", &save); t; t = strtok_r(NULL, " \t", &save), n++) {
        size_t tl = strlen(t) + 1;

        memmove(w + len, t, tl);
        len += tl;
    }
    if (n == 0)
        return 0;
    return add_entry(db, kind, 0, w, len - 1) < 0 ? -1 : n;
}

/* The next word after w (the empty word ends the list). */
static const char *next_word(const char *w)
{
    return w + strlen(w) + 1;
}

/* Does `Host p1 p2 ...` apply (its patterns as stored)?  Some positive
 * pattern matches and no negated one does (ssh_config's rule). */
static int block_applies(const char *host, const char *patterns)
{
    int yes = 0;

    for (const char *p = patterns; *p; p = next_word(p)) {
        int neg = p[0] == '!';

        if (fnmatch(p + neg, host, FNM_CASEFOLD) == 0) {
            if (neg)
                return 0;
            yes = 1;
        }
    }
    return yes;
}

/* ~/ at the start of a path is $HOME's. */
static char *expand_path(const char *v)
{
    const char *home = getenv("HOME");
    char *out = NULL;

    if (v[0] == '~' && v[1] == '/' && home && *home)
        return asprintf(&out, "%s%s", home, v + 1) < 0 ? NULL : out;
    return strdup(v);
}

static int parse_seconds(const char *v, int zero_ok, double *out)
{
    char *end;
    double d;

    errno = 0;
    d = strtod(v, &end);
    if (errno || end == v || *end || d < 0 || (!zero_ok && d == 0) || d > 3600)
        return -1;
    *out = d;
    return 0;
}

/* Check a setting's value whether or not its block applies. */
static int check_value(const struct reader *r, enum hostconf_key k, const char *v)
{
    double d;
    char *end;
    long n;

    switch (k) {
    case HC_PORT:
        errno = 0;
        n = strtol(v, &end, 10);
        if (errno || end == v || *end || n < 1 || n > 65535)
            return bad(r, "Port: expected a port number (1-65535), got '%s'", v);
        return 0;
    case HC_PLAINTEXT:
        if (strcasecmp(v, "yes") != 0 && strcasecmp(v, "no") != 0)
            return bad(r, "Plaintext: expected yes or no, got '%s'", v);
        return 0;
    case HC_CONNECTTIMEOUT:
        if (parse_seconds(v, 0, &d) < 0)
            return bad(r, "ConnectTimeout: expected seconds (above 0, at most 3600), got '%s'", v);
        return 0;
    case HC_KEEPALIVE:
        if (parse_seconds(v, 1, &d) < 0)
            return bad(r, "Keepalive: expected seconds (0: never; at most 3600), got '%s'", v);
        return 0;
    case HC_PERSIST:
        errno = 0;
        d = strtod(v, &end);
        if (errno || end == v || *end || !(d >= 0 && d <= 86400))
            return bad(r, "Persist: expected seconds a master lasts idle (0: no master; at most "
                       "86400), got '%s'", v);
        return 0;
    case HC_KEYNAME:
        if (!keys_name_ok(v))
            return bad(r, "KeyName: '%s' is not a key name (printable, no spaces)", v);
        return 0;
    case HC_ADDRESS:
        if (strpbrk(v, " \t"))
            return bad(r, "Address: expected one host name or address, got '%s'", v);
        return 0;
    default:
        return 0;
    }
}

static int set_value(struct reader *r, enum hostconf_key k, const char *v)
{
    char *value;
    int rc;

    if (check_value(r, k, v) < 0)
        return -1;
    value = (k == HC_KEYFILE || k == HC_CA || k == HC_CERT || k == HC_CERTKEY)
            ? expand_path(v) : strdup(v);
    if (!value) {
        cli_error("out of memory");
        return -1;
    }
    rc = add_entry(r->db, E_SET, k, value, strlen(value));
    free(value);
    return rc;
}

static int group_name_ok(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("_.-", *s))
            return 0;
    return 1;
}

/* Append word to the list *list, after sep unless it is the first.  0 or
 * -1 (printed). */
static int append_word(char **list, const char *word, char sep)
{
    size_t have = *list ? strlen(*list) : 0, add = strlen(word) + 2;
    char *g = realloc(*list, have + add);

    if (!g) {
        cli_error("out of memory");
        return -1;
    }
    *list = g;
    snprintf(g + have, add, "%s%s", have ? (char[]){ sep, 0 } : "", word);
    return 0;
}

/* Group NAME MEMBER...: checked and kept, whoever asks. */
static int take_group(struct reader *r, char *v)
{
    size_t nlen = strcspn(v, " \t");
    const char *members = v + nlen + strspn(v + nlen, " \t");
    char sep = v[nlen];

    v[nlen] = '\0';
    if (!group_name_ok(v))
        return bad(r, "Group: expected a name (letters, digits, _ . -) and its hosts");
    if (!*members)
        return bad(r, "Group %s: expected the hosts it names", v);
    v[nlen] = sep;
    return add_words(r->db, E_GROUP, v) < 0 ? -1 : 0;
}

/* One line: "Key Value" or "Key=Value", blank, or a comment. */
static int take_line(struct reader *r, char *line)
{
    char *key, *v, *end;
    size_t klen;

    line[strcspn(line, "\r\n")] = '\0';
    key = line + strspn(line, " \t");
    if (!*key || *key == '#')
        return 0;
    klen = strcspn(key, " \t=");
    v = key + klen;
    v += strspn(v, " \t");
    if (*v == '=')
        v++;
    v += strspn(v, " \t");
    key[klen] = '\0';
    end = v + strlen(v);
    while (end > v && isspace((unsigned char)end[-1]))
        *--end = '\0';
    if (end - v >= 2 && v[0] == '"' && end[-1] == '"') {
        end[-1] = '\0';
        v++;
    }
    if (!*v)
        return bad(r, "%s: expected a value", key);
    if (strcasecmp(key, "Host") == 0)
        return add_words(r->db, E_HOST, v) < 0 ? -1 : 0;
    if (strcasecmp(key, "Group") == 0)
        return take_group(r, v);
    for (int k = 0; k < HC_NKEYS; k++)
        if (strcasecmp(key, key_names[k]) == 0)
            return set_value(r, (enum hostconf_key)k, v);
    /* The list from the table, so that no keyword is left out of it
     * (Persist was, once written by hand). */
    char known[256] = "Host, Group";
    size_t n = strlen(known);

    for (int k = 0; k < HC_NKEYS && n < sizeof known; k++)
        n += (size_t)snprintf(known + n, sizeof known - n, "%s%s",
                              k + 1 < HC_NKEYS ? ", " : " or ", key_names[k]);
    return bad(r, "unknown key '%s' (%s)", key, known);
}

/* A configuration others could change would let them point us at their
 * server, or at their key: refused, as ssh refuses its. */
static int check_owner(const char *path, int fd)
{
    struct stat st;

    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        cli_error("%s: not a regular file", path);
        return -1;
    }
    if (st.st_mode & 022) {
        cli_error("%s: others can write it (mode %03o): run chmod go-w %s", path,
                  (unsigned)(st.st_mode & 0777), path);
        return -1;
    }
    if (st.st_uid != getuid() && st.st_uid != 0) {
        cli_error("%s: owned by another user (uid %u)", path, (unsigned)st.st_uid);
        return -1;
    }
    return 0;
}

/* 0 (also for a missing file when !must_exist), or -1 (printed).  What
 * the file says is added to r->db, after an E_FILE entry. */
static int read_file(const char *path, int must_exist, struct reader *r)
{
    char line[LINE_MAX_LEN + 2];
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY), rc = 0;
    FILE *f;

    r->path = path;
    r->line = 0;
    if (fd < 0) {
        if (errno == ENOENT && !must_exist)
            return 0;
        cli_error("cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    if (check_owner(path, fd) < 0) {
        close(fd);
        return -1;
    }
    f = fdopen(fd, "r");
    if (!f) {
        close(fd);
        cli_error("cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    rc = add_entry(r->db, E_FILE, 0, "", 0);
    while (rc == 0 && fgets(line, sizeof line, f)) {
        r->line++;
        if (strlen(line) > LINE_MAX_LEN)
            rc = bad(r, "a line over %d bytes", LINE_MAX_LEN);
        else
            rc = take_line(r, line);
    }
    if (rc == 0 && ferror(f)) {
        cli_error("cannot read %s: %s", path, strerror(errno));
        rc = -1;
    }
    fclose(f);
    return rc;
}

/* Read -F's file, or the default ones in turn, into r->db.  0 or -1. */
static int read_files(const char *file, struct reader *r)
{
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    char *user = NULL;
    int rc;

    if (file)
        return read_file(file, 1, r);
    if (xdg && *xdg == '/')
        rc = asprintf(&user, "%s/ferry/config", xdg);
    else if (home && *home)
        rc = asprintf(&user, "%s/.config/ferry/config", home);
    else
        rc = 0;
    if (rc < 0) {
        cli_error("out of memory");
        return -1;
    }
    rc = user ? read_file(user, 0, r) : 0;
    if (rc == 0)
        rc = read_file(SYSTEM_CONFIG, 0, r);
    free(user);
    return rc;
}

int hostconf_db_read(const char *file, struct hostconf_db **out)
{
    struct hostconf_db *db = calloc(1, sizeof *db);
    struct reader r = { .db = db };

    *out = NULL;
    if (!db) {
        cli_error("out of memory");
        return -1;
    }
    db->tail = &db->head;
    if (read_files(file, &r) < 0) {
        hostconf_db_free(db);
        return -1;
    }
    *out = db;
    return 0;
}

void hostconf_db_free(struct hostconf_db *db)
{
    if (!db)
        return;
    while (db->head) {
        struct entry *e = db->head;

        db->head = e->next;
        free(e);
    }
    free(db);
}

int hostconf_db_host(const struct hostconf_db *db, const char *host, struct hostconf *out)
{
    int active = 1, rc = 0;

    *out = (struct hostconf){ 0 };
    for (const struct entry *e = db->head; e && rc == 0; e = e->next) {
        switch (e->kind) {
        case E_FILE:
            active = 1;   /* lines before the first Host apply to every host */
            break;
        case E_HOST:
            active = block_applies(host, e->text);
            break;
        case E_GROUP:
            /* A Group line names its members wherever it stands. */
            for (const char *m = next_word(e->text); *m; m = next_word(m))
                if (strcasecmp(m, host) == 0) {
                    rc = append_word(&out->groups, e->text, ' ');
                    break;
                }
            break;
        case E_SET:
            if (active && !out->values[e->key] && !(out->values[e->key] = strdup(e->text))) {
                cli_error("out of memory");   /* the first value met wins */
                rc = -1;
            }
            break;
        }
    }
    if (rc == 0 && !out->groups && !(out->groups = strdup(""))) {
        cli_error("out of memory");
        rc = -1;
    }
    if (rc < 0)
        hostconf_free(out);
    return rc;
}

int hostconf_db_group(const struct hostconf_db *db, const char *name, char **members)
{
    *members = NULL;
    for (const struct entry *e = db->head; e; e = e->next) {
        if (e->kind != E_GROUP || strcasecmp(e->text, name) != 0)
            continue;
        for (const char *m = next_word(e->text); *m; m = next_word(m))
            if (append_word(members, m, ',') < 0) {
                free(*members);
                *members = NULL;
                return -1;
            }
    }
    return *members ? 0 : 1;
}

int hostconf_load(const char *file, const char *host, struct hostconf *out)
{
    struct hostconf_db *db;
    int rc;

    *out = (struct hostconf){ 0 };
    if (hostconf_db_read(file, &db) < 0)
        return -1;
    rc = hostconf_db_host(db, host, out);
    hostconf_db_free(db);
    return rc;
}
