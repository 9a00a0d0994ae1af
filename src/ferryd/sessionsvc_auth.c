/*
 * sessionsvc_auth.c - the session's handshake (PROTOCOL.md 2.1): which
 * authentication the connection needs (none, TLS's own, or the HMAC proofs),
 * the key's lookup with its restrictions (from=, root=: keyopts.h), the
 * refusal that reads the same for an unknown name and a wrong key, and the
 * audit line of the session.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/crypto.h>

#include "ferry/ferry.h"
#include "audit.h"
#include "auth.h"
#include "daemon.h"
#include "sessionsvc_int.h"
#include "tlsconf.h"
#include "runner.h"
#include "filesvc.h"
#include "proto.h"

static int refuse(struct session *s, const char *why, const char *name, const char *reason);

/* ---- the handshake ------------------------------------------------------------- */


/* The client's address for from= (NULL when it cannot be had, which
 * from= treats as elsewhere). */
static const struct sockaddr *peer_addr(struct session *s, struct sockaddr_storage *ss)
{
    socklen_t len = sizeof *ss;
    int fd = ferry_transport_fd(ferry_conn_transport(s->c));

    if (fd < 0 || getpeername(fd, (struct sockaddr *)ss, &len) < 0)
        return NULL;
    return (const struct sockaddr *)ss;
}

const struct keyopts sessionsvc_no_opts;

void sessionsvc_drop_opts(struct session *s)
{
    if (s->opts != &sessionsvc_no_opts)
        free((void *)s->opts);
    s->opts = &sessionsvc_no_opts;
}

/* Keep the key's restrictions o: a copy when there are any.  0 or -ENOMEM. */
static int keep_opts(struct session *s, const struct keyopts *o)
{
    struct keyopts *copy = NULL;

    sessionsvc_drop_opts(s);
    if (!keyopts_any(o))
        return 0;
    copy = malloc(sizeof *copy);
    if (!copy)
        return -ENOMEM;
    *copy = *o;
    s->opts = copy;
    return 0;
}

/* How this connection authenticates: TLS may have done it already (a PSK,
 * or a client certificate that verified), else the key's HMAC proofs.
 * A PSK's restrictions are read again here: 0, or -1 when the key went
 * from the file since the handshake. */
static int choose_auth(struct session *s)
{
    struct ferry_tls_info info;
    struct sockaddr_storage ss;
    struct ferry_key key;
    struct keyopts opts;

    if (s->cfg->no_auth) {
        s->auth = AUTH_KIND_NONE;
    } else if (ferry_conn_tls_info(s->c, &info) == 0 && info.psk_identity) {
        s->auth = AUTH_KIND_TLS;
        snprintf(s->tls_who, sizeof s->tls_who, "key '%s' (TLS PSK, %s)",
                 FERRY_LOG_Q(info.psk_identity), info.group[0] ? info.group : "no key exchange");
        s->id_key = "key";
        snprintf(s->id, sizeof s->id, "%s", info.psk_identity);
        int r = tlsconf_find_key(s->cfg, info.psk_identity, peer_addr(s, &ss), &key, &opts);
        key_wipe(&key);
        if (r <= 0 || keep_opts(s, &opts) < 0)
            return -1;
    } else if (ferry_conn_tls_info(s->c, &info) == 0 && info.peer_verified) {
        s->auth = AUTH_KIND_TLS;
        snprintf(s->tls_who, sizeof s->tls_who, "certificate %s", FERRY_LOG_Q(info.peer_subject));
        s->id_key = "subject";
        snprintf(s->id, sizeof s->id, "%s", info.peer_subject);
    } else {
        s->auth = AUTH_KIND_HMAC;
    }
    return 0;
}

int sessionsvc_handle_hello(struct session *s, json_t *msg)
{
    char nonce_hex[AUTH_HEX_LEN + 1];
    const char *method;

    if (json_integer_value(json_object_get(msg, "version")) != PROTO_VERSION)
        return session_protocol_error(s, "unsupported protocol version");
    if (choose_auth(s) < 0)
        return refuse(s, "the key is no longer in the keys file (or not allowed from this address)",
                      NULL, "key not allowed");
    s->state = AWAIT_AUTH;
    method = s->auth == AUTH_KIND_NONE ? AUTH_METHOD_NONE
           : s->auth == AUTH_KIND_TLS  ? AUTH_METHOD_TLS : AUTH_METHOD;
    if (s->auth != AUTH_KIND_HMAC)
        return session_send_msg(s, json_pack("{s:s, s:i, s:s, s:s, s:b, s:b, s:b, s:b, s:b}",
                                     "type", MSG_HELLO,
                                     "version", PROTO_VERSION, "server", "ferryd " FERRY_VERSION,
                                     "auth", method, "keepalive", 1, "pipeline", 1,
                                     "put_stream", 1, "glob", 1, "put_ack", 1));
    if (auth_nonce(s->server_nonce) < 0)
        return -EIO;
    hex_encode(s->server_nonce, AUTH_NONCE_LEN, nonce_hex);
    return session_send_msg(s, json_pack("{s:s, s:i, s:s, s:s, s:s, s:b, s:b, s:b, s:b, s:b}",
                                 "type", MSG_HELLO,
                                 "version", PROTO_VERSION, "server", "ferryd " FERRY_VERSION,
                                 "auth", method, "nonce", nonce_hex, "keepalive", 1,
                                 "pipeline", 1, "put_stream", 1, "glob", 1, "put_ack", 1));
}

/* name: the key name the client gave (NULL: none usable); reason: the
 * audit's short why. */
static int refuse(struct session *s, const char *why, const char *name, const char *reason)
{
    ferry_log_info("session %s: authentication failed: %s", ferry_conn_peer(s->c), why);
    s->audited = 1;
    s->who.id_key = name ? "key" : NULL;   /* who it claimed to be */
    s->who.id_value = name;
    audit_session(&s->who, "hmac", "denied", reason);
    s->who.id_key = s->who.id_value = NULL;   /* name is the message's */
    session_send_error(s, ERR_AUTH, "authentication failed");
    ferry_conn_close(s->c);
    return 0;
}

/* root= in the keys file: this session's file service serves that
 * directory instead of --root.  The service is idle (nothing before
 * authentication reaches it), so it is simply made anew. */
static int apply_root(struct session *s)
{
    struct filesvc *files;
    char err[512];

    if (!s->opts->root[0])
        return 0;
    if (fsroot_open(s->opts->root, 0, &s->key_root, err, sizeof err) < 0) {
        ferry_log_error("session %s: root=%s: %s", ferry_conn_peer(s->c), s->opts->root, err);
        return -1;
    }
    files = filesvc_new(s->c, s->key_root, &s->who, s->files_idle, s);
    if (!files)
        return -1;
    filesvc_free(s->files);
    s->files = files;
    return 0;
}

int sessionsvc_handle_auth(struct session *s, json_t *msg)
{
    static const struct ferry_frame_limits after_auth = { .max_header = PROTO_MAX_HEADER };
    uint8_t client_nonce[AUTH_NONCE_LEN], proof[AUTH_PROOF_LEN], binding[AUTH_BINDING_LEN];
    char proof_hex[AUTH_HEX_LEN + 1], who[200];
    int bound = FERRY_EUNSUPPORTED;
    const char *cn = json_string_value(json_object_get(msg, "nonce"));
    const char *name = json_string_value(json_object_get(msg, "key"));
    struct sockaddr_storage ss;
    struct ferry_key key;
    struct keyopts opts;
    int r, ok;

    if (s->auth == AUTH_KIND_HMAC) {
        if (!name)
            name = KEYS_DEFAULT_NAME;
        /* An unknown name gets a stand-in key and the same checks as a
         * wrong key, so the answer and its timing are the same. */
        r = tlsconf_find_key(s->cfg, name, peer_addr(s, &ss), &key, &opts);
        if (r < 0)
            return refuse(s, "the keys file cannot be read", name, "keys file unreadable");
        /* Over TLS the proofs are bound to this connection (auth.h). */
        bound = ferry_transport_tls_exporter(ferry_conn_transport(s->c), AUTH_BINDING_LABEL,
                                             binding, sizeof binding);
        if (bound < 0 && bound != FERRY_EUNSUPPORTED) {
            key_wipe(&key);
            return refuse(s, "no TLS channel binding", name, "no TLS channel binding");
        }
        ok = cn && hex_decode(cn, client_nonce, sizeof client_nonce) == 0 &&
             auth_check(&key, AUTH_CLIENT, s->server_nonce, client_nonce,
                        bound == 0 ? binding : NULL,
                        json_string_value(json_object_get(msg, "proof")));
        if (!ok || r == 0) {
            key_wipe(&key);
            if (!keys_name_ok(name))
                snprintf(who, sizeof who, "malformed key name");
            else
                snprintf(who, sizeof who, r ? "wrong proof for key '%s'" : "unknown key name "
                         "'%s' (or not allowed from this address)", FERRY_LOG_Q(name));
            return refuse(s, who, name, !keys_name_ok(name) ? "malformed key name"
                                        : r ? "wrong proof" : "unknown key");
        }
        auth_proof(&key, AUTH_SERVER, s->server_nonce, client_nonce, bound == 0 ? binding : NULL,
                   proof);
        key_wipe(&key);
        if (keep_opts(s, &opts) < 0)
            return refuse(s, "out of memory", name, "out of memory");
        hex_encode(proof, AUTH_PROOF_LEN, proof_hex);
        snprintf(who, sizeof who, "key '%s' (%s)", FERRY_LOG_Q(name),
                 s->cfg->plaintext ? "plaintext, HMAC" : "HMAC over TLS");
    }
    if (apply_root(s) < 0)
        return refuse(s, "the key's root= cannot be opened", name, "root unavailable");
    s->state = READY;
    ferry_conn_set_authenticated(s->c);
    ferry_conn_set_frame_limits(s->c, &after_auth);
    ferry_log_info("session %s: authenticated with %s%s%s%s%s%s", ferry_conn_peer(s->c),
                   s->auth == AUTH_KIND_HMAC ? who
                   : s->auth == AUTH_KIND_TLS ? s->tls_who : "no key (--insecure-no-auth)",
                   keyopts_any(s->opts) ? "; restricted:" : "",
                   s->opts->flags & KEYOPT_FILES_ONLY ? " files-only" : "",
                   s->opts->flags & KEYOPT_READ_ONLY ? " read-only" : "",
                   s->opts->command[0] ? " command=" : "", s->opts->root[0] ? " root=" : "");
    s->audited = 1;
    if (s->auth == AUTH_KIND_HMAC) {
        s->id_key = "key";
        snprintf(s->id, sizeof s->id, "%s", name);
    }
    if (s->auth != AUTH_KIND_NONE) {
        /* From here on every line of the session says who it is. */
        s->who.id_key = s->id_key;
        s->who.id_value = s->id;
    }
    audit_session(&s->who, s->auth == AUTH_KIND_HMAC ? "hmac"
                           : s->auth == AUTH_KIND_NONE ? "none"
                           : strcmp(s->id_key, "key") == 0 ? "tls-psk" : "certificate",
                  "ok", NULL);
    if (s->auth != AUTH_KIND_HMAC)
        return session_send_msg(s, json_pack("{s:s}", "type", MSG_WELCOME));
    r = session_send_msg(s, json_pack("{s:s, s:s}", "type", MSG_WELCOME, "proof", proof_hex));
    OPENSSL_cleanse(proof_hex, sizeof proof_hex);
    return r;
}
