/*
 * sessionsvc_int.h - what the parts of the session service share: a
 * session's state, the replies every part sends (sessionsvc_reply.c) and
 * the handshake's two steps (sessionsvc_auth.c).  sessionsvc.c, the
 * dispatch, calls down into both; they never call back up.
 */
#ifndef FERRYD_SESSIONSVC_INT_H
#define FERRYD_SESSIONSVC_INT_H

#include <stdint.h>

#include <jansson.h>

#include "ferry/ferry.h"
#include "audit.h"
#include "auth.h"
#include "keyopts.h"

struct filesvc;
struct fsroot;
struct runner;

/* Pings a download may owe pongs for (sessionsvc.c); a client that sends
 * more during one is owed no more (none of ours sends more than two). */
#define PONGS_OWED_MAX 64

enum session_state { AWAIT_HELLO, AWAIT_AUTH, READY };
enum auth_kind { AUTH_KIND_NONE, AUTH_KIND_TLS, AUTH_KIND_HMAC };
enum rx_route { RX_NONE, RX_STDIN, RX_FILE, RX_DISCARD };

struct session {
    struct ferry_conn *c;
    const struct daemon_config *cfg;
    enum session_state state;
    enum auth_kind auth;
    char tls_who[300];          /* who TLS says the client is (auth tls), escaped */
    const char *id_key;         /* who it is, for the audit: "key" or "subject" */
    char id[256];               /* ... and the name or subject, raw */
    struct audit_who who;       /* every audit line's peer, listener and, once
                                 * authenticated, id_key=id (audit.h) */
    int audited;                /* the session's audit line is written */
    int auth_timed_out;         /* closed by --auth-timeout (on_auth_timeout) */
    struct audit_cmd cmd;       /* the running command's audit record */
    /* The key's restrictions (keyopts.h): &sessionsvc_no_opts, or a copy
     * owned here when the key has some.  Not a struct member: a keyopts
     * is 5.5 KiB, and a session's size is what 10,000 held connections
     * or a flood of unauthenticated ones multiply. */
    const struct keyopts *opts;
    struct fsroot *key_root;    /* its root=, open once authenticated */
    uint8_t server_nonce[AUTH_NONCE_LEN];
    struct runner *exec;          /* the running command, if any */
    int tty;                      /* ... runs on a terminal (sessionsvc_tty.c) */
    json_t *queued;             /* an exec request waiting for it (PROTOCOL.md 2.2), owned */
    struct launch_account *account;   /* the daemon user's, for commands (launch.h), owned */
    int last_failed;            /* the last command did not exit 0 (only_after_success) */
    struct filesvc *files;        /* the file service (a transfer may be running) */
    void (*files_idle)(void *);   /* its idle callback, for a service made anew (root=) */
    char *cwd;                  /* the session's directory; NULL = home */
    enum rx_route rx;           /* where the body of the frame being read goes */
    uint64_t stdin_received;    /* stdin bytes taken from the client for this command */
    uint64_t stdin_acked;       /* ... and acknowledged with stdin-ack */
    int stop_when_idle;         /* the server is stopping: close after the command */
    int pongs_owed;             /* pings that came during a download (PONGS_OWED_MAX at most) */
    struct ferry_timer *idle_timer;   /* --idle-timeout, judged here (on_idle_timer) */
    struct ferry_timer *stop_timer;   /* stopping: the notice before the grace ends */
    uint64_t last_active;       /* loop ms of the last request, command or transfer */
};

/* The restrictions of a key that has none. */
extern const struct keyopts sessionsvc_no_opts;
/* Free what s->opts owns, if anything. */
void sessionsvc_drop_opts(struct session *s);

/* Send one frame without a body; msg is taken (NULL: -ENOMEM). */
int session_send_msg(struct session *s, json_t *msg);
/* A request error: {type error, code, message}; the session goes on. */
int session_send_error(struct session *s, const char *code, const char *message);
/* A protocol error ends the session: say why, then close once it is sent. */
int session_protocol_error(struct session *s, const char *message);

/* Terminals (PROTOCOL.md 2.8): an exec's "tty" member into pty and the
 * TERM to set (borrowed from tty); NULL, or the request error to send
 * (err, or a constant).  And a resize message. */
struct pty_spec;
const char *sessionsvc_tty_parse(const json_t *tty, struct pty_spec *pty, const char **term,
                                 char *err, size_t errlen);
int sessionsvc_handle_resize(struct session *s, json_t *msg);

/* The session's directory (sessionsvc_cwd.c): the daemon user's home
 * (where sessions start), a client's path taken relative to the session's
 * directory (malloc'd, absolute), chdir, and cd-names. */
const char *sessionsvc_home_dir(void);
char *sessionsvc_path(const struct session *s, const char *path);
int sessionsvc_handle_chdir(struct session *s, json_t *msg);
int sessionsvc_handle_cd_names(struct session *s, json_t *msg);

/* The handshake (PROTOCOL.md 2.1): the client's hello, then its auth. */
int sessionsvc_handle_hello(struct session *s, json_t *msg);
int sessionsvc_handle_auth(struct session *s, json_t *msg);

#endif
