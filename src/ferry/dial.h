/*
 * dial.h - reaching ferryd: HOST syntax, the key, the connection and
 * the handshake (docs/PROTOCOL.md 2.1), shared by `ferry exec` and
 * `ferry shell`.
 *
 * For one host the TCP connect blocks (within the connect timeout;
 * fleet.c connects many without blocking, with the same pieces); from there the
 * connection is libferry's, on the client's loop (client_session.h): TLS
 * and the handshake (its logic is src/shared/handshake.c) run there,
 * together within the connect timeout again, and dial_open runs the loop
 * until they are done.
 */
#ifndef FERRY_CLIENT_DIAL_H
#define FERRY_CLIENT_DIAL_H

#include <getopt.h>
#include <stddef.h>
#include <stdint.h>

#include "client_session.h"

#define DEFAULT_CONNECT_TIMEOUT_S 10
/* --keepalive: like ssh's ServerAliveInterval, but on by default. */
#define DEFAULT_KEEPALIVE_S 15

/* The options every connecting subcommand takes. */
struct dial_opts {
    const char *key_file;     /* -k; NULL: $FERRY_KEY_FILE, else ~/.config/ferry/key */
    const char *key_name;     /* --key-name; NULL: KEYS_DEFAULT_NAME */
    double connect_timeout;   /* seconds, for connect and handshake together */
    double keepalive;         /* seconds of silence before a ping; 0 = never */
    int insecure_no_auth;     /* accept a server that runs without a key (plaintext) */
    int plaintext;            /* --plaintext: no TLS */
    const char *ca_file;      /* --ca: verify the server's certificate, not a PSK */
    const char *cert_file;    /* --cert / --cert-key: our own certificate */
    const char *cert_key_file;
    int verbose;
    const char *config_file;  /* -F: the only host configuration file read */
    double persist;           /* --persist: start a master lasting this idle (s); 0 = none */
    int no_master;            /* --no-master: connect by ourselves even if a master runs */
    unsigned set;             /* DIAL_SET_*: given on the command line */
};

/* Options whose defaults are values, so that the command line can be told
 * from the default when the host configuration has its own. */
#define DIAL_SET_CONNECT_TIMEOUT 1u
#define DIAL_SET_KEEPALIVE 2u
#define DIAL_SET_PERSIST 4u

/* getopt_long pieces for the options above, for the subcommands to splice
 * into their own tables; ids are >= DIAL_OPT_BASE except -k and -v. */
enum {
    DIAL_OPT_BASE = 0x100,
    OPT_CONNECT_TIMEOUT = DIAL_OPT_BASE,
    OPT_INSECURE_NO_AUTH,
    OPT_KEY_NAME,
    OPT_PLAINTEXT,
    OPT_CA,
    OPT_CERT,
    OPT_CERT_KEY,
    OPT_KEEPALIVE,
    OPT_PERSIST,
    OPT_NO_MASTER,
};
/* -F FILE has a short name: it is ssh's. */
#define DIAL_LONGOPTS                                                   \
    { "key-file", required_argument, NULL, 'k' },                          \
    { "key-name", required_argument, NULL, OPT_KEY_NAME },                 \
    { "connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT },   \
    { "keepalive", required_argument, NULL, OPT_KEEPALIVE },               \
    { "insecure-no-auth", no_argument, NULL, OPT_INSECURE_NO_AUTH },       \
    { "plaintext", no_argument, NULL, OPT_PLAINTEXT },                     \
    { "ca", required_argument, NULL, OPT_CA },                             \
    { "cert", required_argument, NULL, OPT_CERT },                         \
    { "cert-key", required_argument, NULL, OPT_CERT_KEY },                 \
    { "config", required_argument, NULL, 'F' },                            \
    { "persist", required_argument, NULL, OPT_PERSIST },                   \
    { "no-master", no_argument, NULL, OPT_NO_MASTER },                     \
    { "verbose", no_argument, NULL, 'v' }
#define DIAL_SHORTOPTS "k:vF:"
/* Help text lines for those options: all of them, or (for ferry master,
 * whose --persist is its own and which has no --no-master) the others. */
#define DIAL_OPTS_HELP DIAL_CONNECT_HELP DIAL_MASTER_HELP DIAL_VERBOSE_HELP
#define DIAL_CONNECT_HELP                                                           \
    "  -k, --key-file FILE      the shared key (default: $FERRY_KEY_FILE, else\n"      \
    "                           $XDG_CONFIG_HOME/ferry/key or ~/.config/ferry/key)\n"  \
    "      --key-name NAME      the name ferryd knows the key by (its --keys file;\n"   \
    "                           default 'ferry')\n"                                   \
    "      --ca FILE            verify the server's TLS certificate against this CA\n"  \
    "                           (PEM) and the host name, instead of using the key\n"   \
    "      --cert FILE          with --ca: our client certificate (PEM), for a\n"     \
    "      --cert-key FILE      server with --client-ca, and its private key\n"       \
    "      --plaintext          no TLS, for a server started with --plaintext (the\n"  \
    "                           key still authenticates; traffic is in the clear)\n"  \
    "      --connect-timeout S  give up connecting and authenticating after S\n"       \
    "                           seconds (default 10)\n"                                \
    "      --keepalive S        after S seconds without a word from the server, ping\n" \
    "                           it; give up if S more pass without an answer\n"       \
    "                           (default 15; 0: never; never with older servers)\n" \
    "      --insecure-no-auth   accept a server started with --insecure-no-auth\n"     \
    "                           (no key, no TLS)\n"                                   \
    "  -F, --config FILE        read the host configuration from FILE only (default:\n" \
    "                           ~/.config/ferry/config, then /etc/ferry/config)\n"
#define DIAL_MASTER_HELP                                                            \
    "      --persist S          when no connection master runs for HOST, start one\n" \
    "                           that lasts S idle seconds (ferry master; 0: none)\n" \
    "      --no-master          connect by ourselves even if a master runs\n"
#define DIAL_VERBOSE_HELP                                                           \
    "  -v, --verbose            log the session's steps on stderr\n"

void dial_opts_init(struct dial_opts *o);

/* Apply one of the options above.  Returns 1 if `opt` was one of them
 * (0 otherwise), or -1 after a usage error was printed. */
int dial_opts_apply(struct dial_opts *o, const char *help_cmd, int opt, const char *arg);

/* What the host configuration makes of `host` and the command line's
 * options: *eff (strings borrowed from o or from *hc, which the caller
 * frees with hostconf_free) and the address to connect to (target:
 * HOST[:PORT] as ferry_connect_host takes it).  conf: the configuration
 * read already (a fleet's, hostconf_db_read), or NULL to read o's files
 * now.  0, or -1 (printed). */
struct hostconf;
struct hostconf_db;
int dial_resolve(const char *host, const struct dial_opts *o, const struct hostconf_db *conf,
                 struct dial_opts *eff, struct hostconf *hc, char *target, size_t target_len);

/* HOST[:PORT] / [V6]:PORT / unix:/PATH into the name and the port ("" when
 * none is given). */
void dial_split_host(const char *host, char *name, size_t name_len, char *port, size_t port_len);

/* Why FERRY_EADDR for target (HOST[:PORT]): the port when PORT is
 * not a number from 1 to 65535, else "bad address or unknown host". */
const char *dial_addr_error(const char *target);

/* OpenSSL set up once, before its first use, with only what ferry uses
 * (not the system's openssl.cnf unless $OPENSSL_CONF names one);
 * certificates: whether --ca or --cert may be used, whose errors need
 * libcrypto's error strings. */
void dial_crypto_init(int certificates);

/* The TLS configuration for o: the key as a PSK, or --ca (and our own
 * --cert).  One serves any number of connections with the same options.
 * 0, or -1 with the reason in err. */
struct ferry_tls;
struct ferry_key;
int dial_tls_new(const struct dial_opts *o, const struct ferry_key *key, struct ferry_tls **tls,
                 char *err, size_t errlen);

/* The transport over the connected fd (taken: closed on failure) to
 * `target` (dial_resolve's; `host` as the user named it, for messages):
 * TLS with tls (the server's name from target, for --ca), or plaintext
 * when tls is NULL.  0, or -1 with the reason in err. */
struct ferry_transport;
int dial_transport(int fd, const struct dial_opts *o, struct ferry_tls *tls, const char *host,
                   const char *target, struct ferry_transport **t, char *err, size_t errlen);

/*
 * Resolve `host` (through the host configuration), load the key, connect
 * and authenticate.  On failure the
 * reason has been printed ("ferry: cannot connect to ...", "ferry:
 * authentication failed", ...) and NULL is returned.
 */
struct client_session *dial_open(const char *host, const struct dial_opts *o);

#endif
