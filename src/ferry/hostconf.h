/*
 * hostconf.h - the host configuration file (ferry-config(5), README),
 * on ssh_config's model:
 *
 *     # ~/.config/ferry/config
 *     Host web1
 *         Address 10.0.0.5
 *     Host web* !web-test
 *         Port 7272
 *         KeyFile ~/.config/ferry/web.key
 *     Group web web1 web2 web3
 *
 * Files: -F FILE alone, else $XDG_CONFIG_HOME/ferry/config (or
 * ~/.config/ferry/config) and then /etc/ferry/config, each optional.
 * `Host PATTERN...` starts a block that applies to the host names the
 * patterns match (fnmatch globs; a `!` pattern excludes); lines before the
 * first Host apply to every host.  For each setting the first value met
 * wins, and the command line wins over every file.  Keys are
 * case-insensitive; `Key Value` or `Key=Value`; `#` starts a comment.  A
 * line that cannot be read, an unknown key, or a file others can write
 * is an error (FILE:LINE: what was expected), never ignored.
 */
#ifndef FERRY_HOSTCONF_H
#define FERRY_HOSTCONF_H

enum hostconf_key {
    HC_ADDRESS,
    HC_PORT,
    HC_KEYFILE,
    HC_KEYNAME,
    HC_PLAINTEXT,
    HC_CA,
    HC_CERT,
    HC_CERTKEY,
    HC_CONNECTTIMEOUT,
    HC_KEEPALIVE,
    HC_PERSIST,
    HC_NKEYS
};

/* The settings for one host: values[k] NULL where no file set key k.
 * Strings are the files' text (paths with ~ expanded), owned here. */
struct hostconf {
    char *values[HC_NKEYS];
    char *groups;       /* the groups naming this host, space-separated ("" none) */
};

/*
 * The files read once, every line checked, and kept in memory: a fleet
 * asks for each of its hosts without reading them again.  file: -F's, or
 * NULL for the default files.  0 and *db, or -1 after the error was
 * printed (FILE:LINE: ...).  A default file that does not exist is not an
 * error; -F's is.
 */
struct hostconf_db;
int hostconf_db_read(const char *file, struct hostconf_db **db);
void hostconf_db_free(struct hostconf_db *db);   /* NULL allowed */

/* The settings for `host` (the name as given, without a port) into *out
 * (freed with hostconf_free).  0, or -1 after "out of memory" was printed. */
int hostconf_db_host(const struct hostconf_db *db, const char *host, struct hostconf *out);

/*
 * The members of the group `name` (every `Group NAME MEMBER...` line, in
 * order), joined with commas: a host list for hostlist_add, the members
 * may use its ranges.  0 and *members (malloc'd); 1 when no line names
 * the group (nothing printed); -1 after an error was printed.
 */
int hostconf_db_group(const struct hostconf_db *db, const char *name, char **members);

/* One host's settings with the files read for that alone
 * (hostconf_db_read, then hostconf_db_host): what a command about one
 * host does.  Returns as those do. */
int hostconf_load(const char *file, const char *host, struct hostconf *out);

void hostconf_free(struct hostconf *hc);

/* The key's name as `ferry config` prints it ("address", ...). */
const char *hostconf_key_name(enum hostconf_key k);

#endif
