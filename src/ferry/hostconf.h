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
 * Read the configuration (file: -F's, or NULL for the default files) and
 * gather the settings for `host` (the name as given, without a port).
 * 0, or -1 after the error was printed (FILE:LINE: ...).  A default file
 * that does not exist is not an error; -F's is.
 */
int hostconf_load(const char *file, const char *host, struct hostconf *out);

void hostconf_free(struct hostconf *hc);

/*
 * The members of the group `name` (every `Group NAME MEMBER...` line of
 * the files hostconf_load reads, in order), joined with commas: a host
 * list for hostlist_add, the members may use its ranges.  0 and
 * *members (malloc'd); 1 when no file names the group (nothing printed);
 * -1 after an error was printed.
 */
int hostconf_group(const char *file, const char *name, char **members);

/* The key's name as `ferry config` prints it ("address", ...). */
const char *hostconf_key_name(enum hostconf_key k);

#endif
