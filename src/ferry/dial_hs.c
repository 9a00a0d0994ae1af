/*
 * dial_hs.c - the session handshake on the connection's events, and
 * every way it can fail in one line (dial_hs.h).
 *
 * The handshake follows docs/PROTOCOL.md 2.1 exactly through the shared
 * state machine (src/shared/handshake.c, its proofs auth.c's), so ferry,
 * ferry-bench and ferryd cannot disagree on a byte of it.  The words point
 * at the likely cause: a wrong key, a plaintext server, a server that
 * wants a certificate.
 */
#include "dial_hs.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "auth.h"
#include "errcode.h"
#include "ferry/ferry.h"
#include "keys.h"
#include "proto.h"

__attribute__((format(printf, 2, 3)))
static void say(struct dial_hs *d, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(d->err, sizeof d->err, fmt, ap);
    va_end(ap);
    d->done = -1;
}

int dial_load_key(const struct dial_opts *o, struct ferry_key *key, char **used, char *err,
                  size_t errlen)
{
    struct errbuf eb;
    char *path = o->key_file ? strdup(o->key_file) : keyfile_default_path(1);
    int rc = -1;

    if (!path) {
        snprintf(err, errlen, "no key file: use -k FILE or set $FERRY_KEY_FILE (HOME is not set)");
        return -1;
    }
    ferry_log_debug("key file %s", path);
    if (keyfile_load(path, 1, key, &eb) == 0) {
        if (used) {
            *used = path;
            return 0;
        }
        rc = 0;
    } else if (access(path, F_OK) < 0 && errno == ENOENT)
        snprintf(err, errlen, "%s (make one with 'ferry keygen %s' and give ferryd the same key)",
                 eb.msg, path);
    else
        snprintf(err, errlen, "%s", eb.msg);
    free(path);
    return rc;
}

int dial_check_opts(const struct dial_opts *o, char *err, size_t errlen)
{
    const char *why = NULL;

    if (o->insecure_no_auth && (o->ca_file || o->cert_file))
        why = "--insecure-no-auth means no TLS: it takes no --ca or --cert";
    else if (!o->cert_file != !o->cert_key_file)
        why = "--cert and --cert-key go together";
    else if (o->cert_file && !o->ca_file)
        why = "--cert needs --ca (a client certificate is for a server verified by certificate)";
    else if (o->plaintext && o->ca_file)
        why = "--ca and --cert are for TLS; drop --plaintext to use them";
    if (why)
        snprintf(err, errlen, "%s", why);
    return why ? -1 : 0;
}

/* A string member, or NULL when it is missing or not a string. */
static const char *member_str(const json_t *h, const char *name)
{
    return json_string_value(json_object_get(h, name));
}

/* A refused key, named by its name and file, in the server's place: it
 * cannot tell a wrong key from an unknown name, and the TLS alert's words
 * (illegal parameter, decrypt error) would only mislead.  The key file is
 * -k's (dial_open puts the one it loaded there), else where the key is
 * looked for by default. */
static void refused_key(struct dial_hs *d, const struct client_session *s, int server_wrong)
{
    const struct dial_opts *o = d->o;
    char *fallback = o->key_file ? NULL : keyfile_default_path(1);
    const char *path = o->key_file ? o->key_file : fallback ? fallback : "the default key file";
    const char *name = o->key_name ? o->key_name : KEYS_DEFAULT_NAME;

    if (server_wrong)
        say(d, "authentication failed: %s does not hold key '%s' from %s (its proof is wrong: "
            "is it the server you meant?)", s->peer, name, path);
    else
        say(d, "authentication failed: %s refused key '%s' from %s (it holds another key "
            "under that name, or none by it)", s->peer, name, path);
    free(fallback);
}

/* A TLS 1.3 server with --client-ca says it wants a certificate with this
 * alert, after the client's side of the handshake is over. */
static int certificate_required(const struct client_session *s)
{
    return strstr(s->tls_error, "certificate required") != NULL;
}

static void need_certificate(struct dial_hs *d, const struct client_session *s)
{
    say(d, "authentication failed: %s requires a client certificate: give --cert FILE "
        "--cert-key FILE (signed by the CA of its --client-ca), with --ca", s->peer);
}

/* Words for a failed TLS handshake that point at the likely cause. */
static void tls_failure(struct dial_hs *d, const struct client_session *s, int r)
{
    const char *why = s->tls_error;
    const char *name = d->o->key_name ? d->o->key_name : KEYS_DEFAULT_NAME;

    if (s->closing[0])
        say(d, "%s refused the connection: %s", s->peer, s->closing);
    else if (r == FERRY_ENOTTLS)
        say(d, "%s did not answer with TLS (if it runs ferryd --plaintext, add --plaintext)",
            s->peer);
    else if (r == -ETIMEDOUT)
        say(d, "%s: no answer during the TLS handshake within the connect timeout "
            "(the server stopped answering, or it is not ferryd)", s->peer);
    else if (!d->o->ca_file && strstr(why, "certificate verify failed"))
        say(d, "authentication failed: %s did not accept key '%s' and presented a "
            "certificate instead: verify it with --ca FILE (and if it takes client "
            "certificates, --client-ca, give --cert and --cert-key)", s->peer, name);
    else if (certificate_required(s))
        need_certificate(d, s);
    else if (!d->o->ca_file && (strstr(why, "alert decrypt error") ||
                                strstr(why, "alert handshake failure") ||
                                strstr(why, "alert illegal parameter")))
        refused_key(d, s, 0);
    else if (r == FERRY_EEOF || r == -ECONNRESET)
        say(d, "connection closed by %s during the TLS handshake (if it runs ferryd "
            "--plaintext, add --plaintext)", s->peer);
    else if (strstr(why, "alert internal error"))
        /* Ours was fine; the server could not go on (ferryd: a keys file
         * it can no longer read), and only its log can say more. */
        say(d, "TLS handshake with %s failed: the server had an internal error (its log "
            "says why; for ferryd, a keys file it cannot read is one)", s->peer);
    else
        say(d, "TLS handshake with %s failed: %s", s->peer, why[0] ? why : ferry_strerror(r));
}

void dial_hs_gone(struct dial_hs *d, struct client_session *s)
{
    int r = s->close_reason ? s->close_reason : FERRY_EEOF;
    int authenticating = d->hs.state == HANDSHAKE_WAIT_WELCOME;
    const char *step = authenticating ? "during authentication" : "before its greeting";
    int hangup = r == FERRY_EEOF || r == -ECONNRESET || r == FERRY_ETRUNCATED;

    if (s->tls && !s->opened)
        tls_failure(d, s, r);
    else if (certificate_required(s))
        need_certificate(d, s);
    else if (s->closing[0])
        say(d, "connection closed by server %s: %s", step, s->closing);
    else if (authenticating && hangup) {
        /* A server that rejects the proof may hang up before we read its
         * error frame; either way the verdict is the same. */
        if (d->key)
            refused_key(d, s, 0);
        else
            say(d, "authentication failed");
    } else if (hangup)
        say(d, "connection closed by server %s", step);
    else if (r == -ETIMEDOUT || r == -EAGAIN)
        say(d, "%s: no answer from the server %s (is it ferryd?)", s->peer, step);
    else
        say(d, "protocol error: %s %s: %s", s->peer, step, ferry_strerror(r));
}

/* The server refused us with an error message: as PROTOCOL.md words it
 * ("authentication failed" for a wrong key). */
static void refusal(struct dial_hs *d, const struct client_session *s, int r, const json_t *h)
{
    const char *msg = member_str(h, "message");

    if (r == FERRY_EAUTH && !d->o->insecure_no_auth)
        refused_key(d, s, 0);
    else if (r == FERRY_EAUTH)
        say(d, "authentication failed");
    else if (r == FERRY_ETLS_REQUIRED)
        say(d, "the server requires TLS: run ferry without --plaintext");
    else
        say(d, "server refused the session: %s", msg ? msg : "(no message)");
}

/* One line for a hello the handshake (handshake.c) would not take. */
static void bad_hello(struct dial_hs *d, const struct client_session *s, int r, const json_t *hello)
{
    const char *method = member_str(hello, "auth");

    switch (r) {
    case FERRY_EAUTH:
    case FERRY_ETLS_REQUIRED:
    case FERRY_EREMOTE:
        refusal(d, s, r, hello);
        break;
    case FERRY_EHS_BODY:
        say(d, "protocol error: %s sent a body before its greeting", s->peer);
        break;
    case FERRY_EHS_NOT_HELLO:
        say(d, "protocol error: %s did not greet with hello (is it ferryd?)", s->peer);
        break;
    case FERRY_EHS_VERSION:
        say(d, "protocol error: %s speaks an unknown protocol version", s->peer);
        break;
    case FERRY_EAUTH_MISMATCH:
        say(d, "%s runs without authentication; refusing (use --insecure-no-auth to "
            "accept that)", s->peer);
        break;
    case FERRY_EHS_TLS_CLAIM:
        say(d, "protocol error: %s claims TLS authentication on a plaintext connection", s->peer);
        break;
    case FERRY_EHS_METHOD:
        say(d, "protocol error: %s offers unknown authentication '%s'", s->peer,
            method ? method : "(none given)");
        break;
    case FERRY_EHS_NONCE:
        say(d, "protocol error: %s sent a malformed nonce", s->peer);
        break;
    case -EIO:
        say(d, "cannot get random bytes for a nonce");
        break;
    default:
        say(d, "protocol error: %s: %s", s->peer, app_strerror(r));
        break;
    }
}

/* One line for a welcome the handshake would not take. */
static void bad_welcome(struct dial_hs *d, const struct client_session *s, int r,
                        const json_t *welcome)
{
    const char *type = member_str(welcome, "type");

    switch (r) {
    case FERRY_EAUTH:
    case FERRY_ETLS_REQUIRED:
    case FERRY_EREMOTE:
        refusal(d, s, r, welcome);
        break;
    case FERRY_EHS_BODY:
        say(d, "protocol error: %s sent a body during authentication", s->peer);
        break;
    case FERRY_EHS_NOT_WELCOME:
        say(d, "protocol error: %s answered authentication with '%s'", s->peer,
            type ? type : "(no type)");
        break;
    case FERRY_EBADPROOF:
        ferry_log_debug("the server's proof is wrong: it does not hold our key");
        refused_key(d, s, 1);
        break;
    default:
        say(d, "protocol error: %s: %s", s->peer, app_strerror(r));
        break;
    }
}

/* Queue one handshake message (it goes once TLS is up); the reference is
 * the caller's.  A connection already gone is not an error here: its end
 * says what happened (dial_hs_gone). */
static int send_message(struct dial_hs *d, struct client_session *s, json_t *m)
{
    int r = session_write_frame(s, m, NULL, 0);

    if (r < 0 && !s->gone) {
        say(d, "cannot send to %s: %s", s->peer, ferry_strerror(r));
        return -1;
    }
    return 0;
}

/* Our auth once the server's hello named the method (unless it went with
 * our hello): the key's proofs, bound to this TLS connection over TLS. */
static int send_auth(struct dial_hs *d, struct client_session *s)
{
    uint8_t binding[AUTH_BINDING_LEN];
    json_t *auth = NULL;
    int r;

    if (d->hs.method == HANDSHAKE_BY_HMAC) {
        if (!d->key) {
            if (dial_load_key(d->o, &d->own_key, NULL, d->err, sizeof d->err) < 0) {
                d->done = -1;
                return -1;
            }
            d->key = &d->own_key;
        }
        if (s->tls && (!s->conn ||
                       ferry_transport_tls_exporter(ferry_conn_transport(s->conn),
                                                    AUTH_BINDING_LABEL, binding,
                                                    AUTH_BINDING_LEN) < 0)) {
            say(d, "TLS: cannot derive the channel binding");
            return -1;
        }
    }
    r = handshake_auth(&d->hs, d->key, d->o->key_name, s->tls ? binding : NULL, &auth);
    OPENSSL_cleanse(binding, sizeof binding);
    if (r < 0) {
        say(d, "out of memory");
        return -1;
    }
    r = send_message(d, s, auth);
    json_decref(auth);
    return r;
}

int dial_hs_begin(struct dial_hs *d, struct client_session *s, const struct dial_opts *o,
                  const struct ferry_key *key)
{
    json_t *m = NULL;
    int r;

    *d = (struct dial_hs){ .o = o, .key = key };
    /* The client speaks first, so a TLS server can tell a plaintext
     * client at once (and say so) rather than wait for a ClientHello. */
    handshake_init(&d->hs, s->tls != NULL, o->insecure_no_auth);
    if (handshake_hello(&d->hs, &m) < 0) {
        say(d, "out of memory");
        return -1;
    }
    r = send_message(d, s, m);
    json_decref(m);
    m = NULL;
    /* Over TLS keyed by the PSK, TLS has authenticated both sides: the
     * auth goes with the hello, a round trip sooner (PROTOCOL.md 2.1). */
    if (r == 0 && s->tls && !o->ca_file) {
        if (handshake_auth_early(&d->hs, &m) < 0) {
            say(d, "out of memory");
            return -1;
        }
        r = send_message(d, s, m);
        json_decref(m);
    }
    return r;
}

/* The server's hello arrived: check it, say who we talk to, send our auth. */
static void on_hello(struct dial_hs *d, struct client_session *s, const json_t *hello,
                     uint64_t body)
{
    int r = handshake_on_hello(&d->hs, hello, body);

    if (r < 0) {
        bad_hello(d, s, r, hello);
        return;
    }
    if (s->tls && d->o->verbose && s->conn) {
        struct ferry_tls_info info;

        if (ferry_conn_tls_info(s->conn, &info) == 0)
            ferry_log_debug("%s %s%s%s%s%s", info.version, info.cipher,
                            info.group[0] ? ", " : "", info.group,
                            info.psk_identity ? ", PSK " : ", certificate verified",
                            info.psk_identity ? info.psk_identity : "");
    }
    ferry_log_debug("connected to %s (%s)", s->peer,
                    member_str(hello, "server") ? member_str(hello, "server") : "unknown server");
    /* What the server offers; only one that says it answers pings gets
     * them: an older one would take "ping" for a protocol error. */
    s->pipeline = json_is_true(json_object_get(hello, "pipeline"));
    s->put_stream = json_is_true(json_object_get(hello, "put_stream"));
    s->glob = json_is_true(json_object_get(hello, "glob"));
    s->put_ack = json_is_true(json_object_get(hello, "put_ack"));
    s->answers_ping = json_is_true(json_object_get(hello, "keepalive"));
    s->keepalive_ms = s->answers_ping
                      ? (uint64_t)(d->o->keepalive * 1000.0 + 0.5) : 0;
    if (!d->hs.early)
        (void)send_auth(d, s);
}

static void on_welcome(struct dial_hs *d, struct client_session *s, const json_t *welcome,
                       uint64_t body)
{
    int r = handshake_on_welcome(&d->hs, d->key, welcome, body);

    if (r < 0) {
        bad_welcome(d, s, r, welcome);
        return;
    }
    session_authenticated(s, s->keepalive_ms);
    ferry_log_debug("authenticated (%s)", d->hs.method == HANDSHAKE_BY_NONE
                                          ? "no key: --insecure-no-auth"
                                          : d->hs.method == HANDSHAKE_BY_TLS ? "by TLS"
                                          : "HMAC proofs");
    d->done = 1;
}

void dial_hs_on_frame(struct dial_hs *d, struct client_session *s, struct ferry_frame_event *ev)
{
    if (d->done) {
        if (ev->type == FERRY_FRAME_HEADER)
            json_decref(ev->header);
        return;
    }
    switch (ev->type) {
    case FERRY_FRAME_HEADER:
        if (d->hs.state == HANDSHAKE_WAIT_HELLO)
            on_hello(d, s, ev->header, ev->body_size);
        else if (d->hs.state == HANDSHAKE_WAIT_WELCOME)
            on_welcome(d, s, ev->header, ev->body_size);
        else
            say(d, "protocol error: %s spoke out of turn during the handshake", s->peer);
        json_decref(ev->header);
        break;
    case FERRY_FRAME_ERROR:
        /* Before any frame of ours came back, the likely cause is another
         * service on that port (an sshd's banner is no frame header). */
        say(d, "protocol error: %s %s: %s%s", s->peer,
            d->hs.state == HANDSHAKE_WAIT_WELCOME ? "during authentication" : "before its greeting",
            ferry_strerror(ev->error),
            d->hs.state == HANDSHAKE_WAIT_WELCOME ? "" : " (is it ferryd?)");
        break;
    default:
        break;   /* a body: the step above has refused it already */
    }
}

void dial_hs_end(struct dial_hs *d)
{
    handshake_wipe(&d->hs);
    key_wipe(&d->own_key);
}
