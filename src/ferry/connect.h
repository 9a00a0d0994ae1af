/*
 * connect.h - reaching ferryd: HOST syntax, the key, the connection and
 * the handshake (docs/PROTOCOL.md 2.1), shared by `ferry exec` and
 * `ferry shell`.
 *
 * The handshake is blocking (with the connect timeout as its deadline);
 * afterwards the socket is non-blocking and run.c drives it.
 */
#ifndef FERRY_CLIENT_CONNECT_H
#define FERRY_CLIENT_CONNECT_H

#include <getopt.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry/frame.h"
#include "outq.h"

#define DEFAULT_CONNECT_TIMEOUT_S 10
/* Room for the largest header (64 KiB) and its prefix with some to spare:
 * the file service reads whole headers out of this buffer (files.c). */
#define SESSION_RBUF_SIZE (128 * 1024)

/* The options every connecting subcommand takes. */
struct session_opts {
    const char *key_file;     /* -k; NULL: $FERRY_KEY_FILE, else ~/.config/ferry/key */
    double connect_timeout;   /* seconds, for connect and handshake together */
    int insecure_no_auth;     /* accept a server that runs without a key */
    int verbose;
};

/* getopt_long pieces for the options above, for the subcommands to splice
 * into their own tables; ids are >= SESSION_OPT_BASE except -k and -v. */
enum {
    SESSION_OPT_BASE = 0x100,
    OPT_CONNECT_TIMEOUT = SESSION_OPT_BASE,
    OPT_INSECURE_NO_AUTH,
};
#define SESSION_LONGOPTS                                                   \
    { "key-file", required_argument, NULL, 'k' },                          \
    { "connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT },   \
    { "insecure-no-auth", no_argument, NULL, OPT_INSECURE_NO_AUTH },       \
    { "verbose", no_argument, NULL, 'v' }
#define SESSION_SHORTOPTS "k:v"
/* Help text lines for those options. */
#define SESSION_OPTS_HELP                                                              \
    "  -k, --key-file FILE      the shared key (default: $FERRY_KEY_FILE, else\n"      \
    "                           $XDG_CONFIG_HOME/ferry/key or ~/.config/ferry/key)\n"  \
    "      --connect-timeout S  give up connecting and authenticating after S\n"       \
    "                           seconds (default 10)\n"                                \
    "      --insecure-no-auth   accept a server started with --insecure-no-auth\n"     \
    "  -v, --verbose            log the session's steps on stderr\n"

void session_opts_init(struct session_opts *o);

/* Apply one of the options above.  Returns 1 if `opt` was one of them
 * (0 otherwise), or -1 after a usage error was printed. */
int session_opts_apply(struct session_opts *o, const char *help_cmd, int opt, const char *arg);

/* A connected, authenticated session. */
struct session {
    struct ferry_transport *t;
    struct ferry_frame_parser *parser;
    char peer[128];                  /* "127.0.0.1:7171", for messages */
    uint8_t rbuf[SESSION_RBUF_SIZE]; /* received bytes not yet parsed are */
    size_t rpos, rlen;               /* rbuf[rpos..rlen) */
    struct outq out;
    int broken;                      /* the connection can carry nothing more */
};

/*
 * Resolve `host`, load the key, connect and authenticate.  On failure the
 * reason has been printed ("ferry: cannot connect to ...", "ferry:
 * authentication failed", ...) and NULL is returned.
 */
struct session *session_open(const char *host, const struct session_opts *o);

/* Close the connection and free.  NULL is allowed. */
void session_close(struct session *s);

#endif
