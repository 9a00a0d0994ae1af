/*
 * dial.c - from a HOST string to an authenticated session (dial.h).
 *
 * The handshake follows docs/PROTOCOL.md 2.1 exactly through the shared
 * state machine (src/shared/handshake.c, its proofs auth.c's), so ferry,
 * ferry-bench and ferryd cannot disagree on a byte of it; here its frames
 * are moved over the session's connection.  Every way it can fail ends in
 * one line on stderr.
 */
#include "dial.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include "auth.h"
#include "cli.h"
#include "errcode.h"
#include "handshake.h"
#include "hostconf.h"
#include "ferry/ferry.h"
#include "keyfile.h"
#include "keys.h"
#include "proto.h"

#define MAX_CONNECT_TIMEOUT_S 3600.0

void dial_opts_init(struct dial_opts *o)
{
    *o = (struct dial_opts){ .connect_timeout = DEFAULT_CONNECT_TIMEOUT_S,
                             .keepalive = DEFAULT_KEEPALIVE_S };
}

int dial_opts_apply(struct dial_opts *o, const char *help_cmd, int opt, const char *arg)
{
    switch (opt) {
    case 'k':
        o->key_file = arg;
        return 1;
    case 'v':
        o->verbose = 1;
        ferry_log_set_ident("ferry");
        ferry_log_set_level(FERRY_LOG_DEBUG);
        return 1;
    case 'F':
        o->config_file = arg;
        return 1;
    case OPT_CONNECT_TIMEOUT:
        if (cli_seconds(help_cmd, "--connect-timeout", arg, MAX_CONNECT_TIMEOUT_S,
                        &o->connect_timeout) < 0)
            return -1;
        o->set |= DIAL_SET_CONNECT_TIMEOUT;
        return 1;
    case OPT_KEEPALIVE:
        o->set |= DIAL_SET_KEEPALIVE;
        if (strcmp(arg, "0") == 0) {
            o->keepalive = 0;
            return 1;
        }
        if (cli_seconds(help_cmd, "--keepalive", arg, MAX_CONNECT_TIMEOUT_S, &o->keepalive) < 0)
            return -1;
        return 1;
    case OPT_INSECURE_NO_AUTH:
        o->insecure_no_auth = 1;
        return 1;
    case OPT_KEY_NAME:
        if (!keys_name_ok(arg)) {
            cli_usage_error(help_cmd, "--key-name: '%s' is not a key name (printable, no "
                            "spaces, at most %d bytes)", arg, KEYS_NAME_MAX);
            return -1;
        }
        o->key_name = arg;
        return 1;
    case OPT_PLAINTEXT:
        o->plaintext = 1;
        return 1;
    case OPT_CA:
        o->ca_file = arg;
        return 1;
    case OPT_CERT:
        o->cert_file = arg;
        return 1;
    case OPT_CERT_KEY:
        o->cert_key_file = arg;
        return 1;
    default:
        return 0;
    }
}

/* -k, else $FERRY_KEY_FILE, else the per-user default.  0 and *used (the
 * path, to free, for messages; unless used is NULL), or -1 (printed). */
static int load_key(const struct dial_opts *o, struct ferry_key *key, char **used)
{
    struct errbuf err;
    char *path = o->key_file ? strdup(o->key_file) : keyfile_default_path(1);
    int rc = -1;

    if (!path) {
        cli_error("no key file: use -k FILE or set $FERRY_KEY_FILE (HOME is not set)");
        return -1;
    }
    ferry_log_debug("key file %s", path);
    if (keyfile_load(path, 1, key, &err) == 0) {
        if (used) {
            *used = path;
            return 0;
        }
        rc = 0;
    } else if (access(path, F_OK) < 0 && errno == ENOENT)
        cli_error("%s (make one with 'ferry keygen %s' and give ferryd the same key)", err.msg, path);
    else
        cli_error("%s", err.msg);
    free(path);
    return rc;
}

/* A string member, or NULL when it is missing or not a string. */
static const char *member_str(const json_t *h, const char *name)
{
    return json_string_value(json_object_get(h, name));
}

/* A refused key, named by its name and file, in the server's place: it
 * cannot tell a wrong key from an unknown name, and the TLS alert's words
 * (illegal parameter, decrypt error) would only mislead. */
/* The key file a message names: -k's (dial_open puts the one it loaded
 * there), else where load_key looks by default (*fallback, to free). */
static const char *key_file_named(const struct dial_opts *o, char **fallback)
{
    *fallback = o->key_file ? NULL : keyfile_default_path(1);
    return o->key_file ? o->key_file : *fallback ? *fallback : "the default key file";
}

static void report_refused_key(const struct client_session *s, const struct dial_opts *o)
{
    char *fallback;
    const char *path = key_file_named(o, &fallback);

    cli_error("authentication failed: %s refused key '%s' from %s (it holds another key "
              "under that name, or none by it)", s->peer,
              o->key_name ? o->key_name : KEYS_DEFAULT_NAME, path);
    free(fallback);
}

/* The other way round: the server could not prove it holds our key. */
static void report_wrong_server_proof(const struct client_session *s, const struct dial_opts *o)
{
    char *fallback;
    const char *path = key_file_named(o, &fallback);

    ferry_log_debug("the server's proof is wrong: it does not hold our key");
    cli_error("authentication failed: %s does not hold key '%s' from %s (its proof is wrong: "
              "is it the server you meant?)", s->peer,
              o->key_name ? o->key_name : KEYS_DEFAULT_NAME, path);
    free(fallback);
}

/* A TLS 1.3 server with --client-ca says it wants a certificate with this
 * alert, after the client's side of the handshake is over. */
static int certificate_required(const struct client_session *s)
{
    return strstr(s->tls_error, "certificate required") != NULL;
}

static void report_certificate_required(const struct client_session *s)
{
    cli_error("authentication failed: %s requires a client certificate: give --cert FILE "
              "--cert-key FILE (signed by the CA of its --client-ca), with --ca", s->peer);
}

/* Words for a failed TLS handshake that point at the likely cause. */
static void report_tls_failure(const struct client_session *s, const struct dial_opts *o, int r)
{
    const char *why = s->tls_error;
    const char *name = o->key_name ? o->key_name : KEYS_DEFAULT_NAME;

    if (s->closing[0])
        cli_error("%s refused the connection: %s", s->peer, s->closing);
    else if (r == FERRY_ENOTTLS)
        cli_error("%s did not answer with TLS (if it runs ferryd --plaintext, add --plaintext)",
                  s->peer);
    else if (r == -ETIMEDOUT)
        cli_error("%s: no answer during the TLS handshake within the connect timeout "
                  "(the server stopped answering, or it is not ferryd)", s->peer);
    else if (!o->ca_file && strstr(why, "certificate verify failed"))
        cli_error("authentication failed: %s did not accept key '%s' and presented a "
                  "certificate instead: verify it with --ca FILE (and if it takes client "
                  "certificates, --client-ca, give --cert and --cert-key)", s->peer, name);
    else if (certificate_required(s))
        report_certificate_required(s);
    else if (!o->ca_file && (strstr(why, "alert decrypt error") ||
                             strstr(why, "alert handshake failure") ||
                             strstr(why, "alert illegal parameter")))
        report_refused_key(s, o);
    else if (r == FERRY_EEOF || r == -ECONNRESET)
        cli_error("connection closed by %s during the TLS handshake (if it runs ferryd "
                  "--plaintext, add --plaintext)", s->peer);
    else
        cli_error("TLS handshake with %s failed: %s", s->peer, why[0] ? why : ferry_strerror(r));
}

/* Wait for one handshake message's header (pre-auth headers are small;
 * the handshake judges a body).  Failures are printed, except a hang-up
 * when the caller has a better word for it; a TLS handshake that failed
 * is worded by report_tls_failure. */
static int read_message(struct client_session *s, const struct dial_opts *o, const char *step,
                        int quiet_hangup, json_t **out, uint64_t *body_size)
{
    int r;

    while (!s->hdr && !s->gone)
        (void)session_wait(s);
    if (s->hdr) {
        *out = s->hdr;
        *body_size = s->hdr_body;
        s->hdr = NULL;
        if (s->conn)
            ferry_conn_resume_read(s->conn);
        return 0;
    }
    r = s->close_reason ? s->close_reason : FERRY_EEOF;
    if (s->tls && !s->opened) {
        report_tls_failure(s, o, r);
        return r;
    }
    if (certificate_required(s)) {
        report_certificate_required(s);
        return r;
    }
    if (quiet_hangup && (r == FERRY_EEOF || r == FERRY_ETRUNCATED || r == -ECONNRESET))
        return r;
    if (s->closing[0]) {
        cli_error("connection closed by server %s: %s", step, s->closing);
        return r;
    }
    if (r == FERRY_EEOF || r == -ECONNRESET) {
        cli_error("connection closed by server %s", step);
        return r;
    }
    if (r == -ETIMEDOUT || r == -EAGAIN) {
        cli_error("%s: no answer from the server %s (is it ferryd?)", s->peer, step);
        return r;
    }
    cli_error("protocol error: %s %s: %s", s->peer, step, ferry_strerror(r));
    return r;
}

/* The server refused us with an error message: report it as PROTOCOL.md
 * words it ("authentication failed" for a wrong key). */
static void report_refusal(const struct client_session *s, const struct dial_opts *o, int r,
                           const json_t *h)
{
    const char *msg = member_str(h, "message");

    if (r == FERRY_EAUTH && !o->insecure_no_auth)
        report_refused_key(s, o);
    else if (r == FERRY_EAUTH)
        cli_error("authentication failed");
    else if (r == FERRY_ETLS_REQUIRED)
        cli_error("the server requires TLS: run ferry without --plaintext");
    else
        cli_error("server refused the session: %s", msg ? msg : "(no message)");
}

/* One line for a hello the handshake (handshake.c) would not take. */
static void report_bad_hello(const struct client_session *s, const struct dial_opts *o, int r,
                             const json_t *hello)
{
    const char *method = member_str(hello, "auth");

    switch (r) {
    case FERRY_EAUTH:
    case FERRY_ETLS_REQUIRED:
    case FERRY_EREMOTE:
        report_refusal(s, o, r, hello);
        break;
    case FERRY_EHS_BODY:
        cli_error("protocol error: %s sent a body before its greeting", s->peer);
        break;
    case FERRY_EHS_NOT_HELLO:
        cli_error("protocol error: %s did not greet with hello (is it ferryd?)", s->peer);
        break;
    case FERRY_EHS_VERSION:
        cli_error("protocol error: %s speaks an unknown protocol version", s->peer);
        break;
    case FERRY_EAUTH_MISMATCH:
        cli_error("%s runs without authentication; refusing (use --insecure-no-auth to "
                  "accept that)", s->peer);
        break;
    case FERRY_EHS_TLS_CLAIM:
        cli_error("protocol error: %s claims TLS authentication on a plaintext "
                  "connection", s->peer);
        break;
    case FERRY_EHS_METHOD:
        cli_error("protocol error: %s offers unknown authentication '%s'", s->peer,
                  method ? method : "(none given)");
        break;
    case FERRY_EHS_NONCE:
        cli_error("protocol error: %s sent a malformed nonce", s->peer);
        break;
    case -EIO:
        cli_error("cannot get random bytes for a nonce");
        break;
    default:
        cli_error("protocol error: %s: %s", s->peer, app_strerror(r));
        break;
    }
}

/* One line for a welcome the handshake would not take. */
static void report_bad_welcome(const struct client_session *s, const struct dial_opts *o, int r,
                               const json_t *welcome)
{
    const char *type = member_str(welcome, "type");

    switch (r) {
    case FERRY_EAUTH:
    case FERRY_ETLS_REQUIRED:
    case FERRY_EREMOTE:
        report_refusal(s, o, r, welcome);
        break;
    case FERRY_EHS_BODY:
        cli_error("protocol error: %s sent a body during authentication", s->peer);
        break;
    case FERRY_EHS_NOT_WELCOME:
        cli_error("protocol error: %s answered authentication with '%s'", s->peer,
                  type ? type : "(no type)");
        break;
    case FERRY_EBADPROOF:
        report_wrong_server_proof(s, o);
        break;
    default:
        cli_error("protocol error: %s: %s", s->peer, app_strerror(r));
        break;
    }
}

/* Queue one handshake message (it goes once TLS is up).  0 or -1
 * (printed).  A connection already gone is not an error here: the wait
 * for the answer says what happened to it. */
static int send_message(struct client_session *s, json_t *m)
{
    int r = session_write_frame(s, m, NULL, 0);

    if (r < 0 && !s->gone) {
        cli_error("cannot send to %s: %s", s->peer, ferry_strerror(r));
        return -1;
    }
    return 0;
}

/* Our auth once the server's hello named the method (unless it went with
 * our hello): the key's proofs, bound to this TLS connection over TLS.
 * 0 or -1 (printed). */
static int send_auth(struct client_session *s, const struct dial_opts *o, struct handshake *hs,
                     struct ferry_key *key, int *have_key, uint8_t binding[AUTH_BINDING_LEN])
{
    json_t *auth = NULL;
    int r;

    if (hs->method == HANDSHAKE_BY_HMAC) {
        if (!*have_key && load_key(o, key, NULL) < 0)
            return -1;
        *have_key = 1;
        if (s->tls && (!s->conn ||
                       ferry_transport_tls_exporter(ferry_conn_transport(s->conn),
                                                    AUTH_BINDING_LABEL, binding,
                                                    AUTH_BINDING_LEN) < 0)) {
            cli_error("TLS: cannot derive the channel binding");
            return -1;
        }
    }
    r = handshake_auth(hs, *have_key ? key : NULL, o->key_name, s->tls ? binding : NULL, &auth);
    if (r < 0) {
        cli_error("out of memory");
        return -1;
    }
    r = send_message(s, auth);
    json_decref(auth);
    return r;
}

/*
 * PROTOCOL.md 2.1 through the shared state machine (handshake.h): this
 * function only moves its messages and words its verdicts.  `key` is
 * loaded here if the server asks for one and none was (--ca).
 */
static int handshake(struct client_session *s, const struct dial_opts *o, struct ferry_key *key,
                     int have_key)
{
    uint8_t binding[AUTH_BINDING_LEN];
    json_t *ours = NULL, *hello = NULL, *auth = NULL, *welcome = NULL;
    uint64_t body_size = 0;
    struct handshake hs;
    int r, rc = -1;

    /* The client speaks first, so a TLS server can tell a plaintext
     * client at once (and say so) rather than wait for a ClientHello. */
    handshake_init(&hs, s->tls != NULL, o->insecure_no_auth);
    if (handshake_hello(&hs, &ours) < 0) {
        cli_error("out of memory");
        goto out;
    }
    if (send_message(s, ours) < 0)
        goto out;
    /* Over TLS keyed by the PSK, TLS has authenticated both sides: the
     * auth goes with the hello, a round trip sooner (PROTOCOL.md 2.1). */
    if (s->tls && !o->ca_file) {
        if (handshake_auth_early(&hs, &auth) < 0) {
            cli_error("out of memory");
            goto out;
        }
        if (send_message(s, auth) < 0)
            goto out;
    }
    if (read_message(s, o, "before its greeting", 0, &hello, &body_size) < 0)
        goto out;
    r = handshake_on_hello(&hs, hello, body_size);
    if (r < 0) {
        report_bad_hello(s, o, r, hello);
        goto out;
    }
    if (s->tls && o->verbose && s->conn) {
        struct ferry_tls_info info;

        if (ferry_conn_tls_info(s->conn, &info) == 0)
            ferry_log_debug("%s %s%s%s%s%s", info.version, info.cipher,
                            info.group[0] ? ", " : "", info.group,
                            info.psk_identity ? ", PSK " : ", certificate verified",
                            info.psk_identity ? info.psk_identity : "");
    }
    ferry_log_debug("connected to %s (%s)", s->peer,
                    member_str(hello, "server") ? member_str(hello, "server") : "unknown server");

    if (!hs.early && send_auth(s, o, &hs, key, &have_key, binding) < 0)
        goto out;
    /* A server that rejects the proof may hang up before we read its
     * error frame; either way the verdict is the same. */
    r = read_message(s, o, "during authentication", 1, &welcome, &body_size);
    if (s->closing[0] && r < 0) {
        cli_error("connection closed by server during authentication: %s", s->closing);
        goto out;
    }
    if (r == FERRY_EEOF || r == -ECONNRESET || r == FERRY_ETRUNCATED) {
        if (have_key)
            report_refused_key(s, o);
        else
            cli_error("authentication failed");
        goto out;
    }
    if (r < 0)
        goto out;
    r = handshake_on_welcome(&hs, have_key ? key : NULL, welcome, body_size);
    if (r < 0) {
        report_bad_welcome(s, o, r, welcome);
        goto out;
    }
    /* Only a server that says it answers pings gets them: an older one
     * would take "ping" for a protocol error and close. */
    s->pipeline = json_is_true(json_object_get(hello, "pipeline"));
    s->put_stream = json_is_true(json_object_get(hello, "put_stream"));
    s->glob = json_is_true(json_object_get(hello, "glob"));
    session_authenticated(s, json_is_true(json_object_get(hello, "keepalive"))
                             ? (uint64_t)(o->keepalive * 1000.0 + 0.5) : 0);
    ferry_log_debug("authenticated (%s)", hs.method == HANDSHAKE_BY_NONE
                                          ? "no key: --insecure-no-auth"
                                          : hs.method == HANDSHAKE_BY_TLS ? "by TLS"
                                          : "HMAC proofs");
    rc = 0;
out:
    handshake_wipe(&hs);
    OPENSSL_cleanse(binding, sizeof binding);
    json_decref(ours);
    json_decref(hello);
    json_decref(auth);
    json_decref(welcome);
    return rc;
}

/* The host part of HOST[:PORT] / [V6]:PORT, for certificate checks; ""
 * for unix sockets. */
static void host_part(const char *text, char *out, size_t len)
{
    const char *colon = strchr(text, ':');

    out[0] = '\0';
    if (strncmp(text, "unix:", 5) == 0)
        return;
    if (text[0] == '[') {
        const char *end = strchr(text, ']');
        if (end)
            snprintf(out, len, "%.*s", (int)(end - text - 1), text + 1);
        return;
    }
    if (colon && !strchr(colon + 1, ':'))
        snprintf(out, len, "%.*s", (int)(colon - text), text);
    else
        snprintf(out, len, "%s", text);   /* a bare name, or a bare IPv6 address */
}

/* HOST's name and its port, if it has one: "web1:7000" -> "web1", "7000";
 * "[::1]:7000" -> "::1", "7000"; "web1" and "::1" -> no port.  unix:/PATH
 * is left whole. */
static void split_host(const char *text, char *name, size_t name_len, char *port, size_t port_len)
{
    const char *colon = strrchr(text, ':'), *bracket = strchr(text, ']');

    port[0] = '\0';
    if (strncmp(text, "unix:", 5) == 0) {
        snprintf(name, name_len, "%s", text);
        return;
    }
    host_part(text, name, name_len);
    if (text[0] == '[' ? bracket && bracket[1] == ':' : colon && colon == strchr(text, ':'))
        snprintf(port, port_len, "%s", colon + 1);
}

void dial_split_host(const char *host, char *name, size_t name_len, char *port, size_t port_len)
{
    split_host(host, name, name_len, port, port_len);
}

int dial_resolve(const char *host, const struct dial_opts *o, struct dial_opts *eff,
                 struct hostconf *hc, char *target, size_t target_len)
{
    char name[256], port[16];
    const char *const *v = (const char *const *)hc->values;
    const char *addr;
    double d;

    split_host(host, name, sizeof name, port, sizeof port);
    if (strlen(host) >= sizeof name - 8) {
        cli_error("%s: host name too long", host);
        return -1;
    }
    if (hostconf_load(o->config_file, name, hc) < 0)
        return -1;
    *eff = *o;
    /* The command line first, then the files (first value wins there). */
    if (!o->key_file && v[HC_KEYFILE])
        eff->key_file = v[HC_KEYFILE];
    if (!o->key_name && v[HC_KEYNAME])
        eff->key_name = v[HC_KEYNAME];
    if (!o->plaintext && v[HC_PLAINTEXT] && strcasecmp(v[HC_PLAINTEXT], "yes") == 0)
        eff->plaintext = 1;
    if (!o->ca_file && v[HC_CA])
        eff->ca_file = v[HC_CA];
    if (!o->cert_file && v[HC_CERT])
        eff->cert_file = v[HC_CERT];
    if (!o->cert_key_file && v[HC_CERTKEY])
        eff->cert_key_file = v[HC_CERTKEY];
    if (!(o->set & DIAL_SET_CONNECT_TIMEOUT) && v[HC_CONNECTTIMEOUT])
        eff->connect_timeout = (d = strtod(v[HC_CONNECTTIMEOUT], NULL)) > 0 ? d : eff->connect_timeout;
    if (!(o->set & DIAL_SET_KEEPALIVE) && v[HC_KEEPALIVE])
        eff->keepalive = strtod(v[HC_KEEPALIVE], NULL);
    addr = v[HC_ADDRESS] ? v[HC_ADDRESS] : name;
    if (!port[0] && v[HC_PORT])
        snprintf(port, sizeof port, "%s", v[HC_PORT]);
    if (strncmp(addr, "unix:", 5) == 0 || !port[0])
        snprintf(target, target_len, strchr(addr, ':') && strncmp(addr, "unix:", 5) != 0
                                     ? "[%s]" : "%s", addr);
    else
        snprintf(target, target_len, strchr(addr, ':') ? "[%s]:%s" : "%s:%s", addr, port);
    return 0;
}

/* The TLS configuration for this connection: the key as a PSK, or --ca
 * (and our own --cert).  0 or -1 (printed). */
static int tls_config(struct client_session *s, const struct dial_opts *o, const struct ferry_key *key)
{
    struct ferry_tls_opts to = {
        .role = FERRY_TLS_CLIENT,
        .ca_file = o->ca_file,
        .cert_file = o->cert_file,
        .key_file = o->cert_key_file,
    };
    char err[512];

    if (!o->ca_file) {
        to.psk = key->bytes;
        to.psk_len = KEY_LEN;
        to.psk_identity = o->key_name ? o->key_name : KEYS_DEFAULT_NAME;
    }
    if (ferry_tls_new(&to, err, sizeof err, &s->tls) < 0) {
        cli_error("%s", err);
        return -1;
    }
    return 0;
}


/*
 * OpenSSL set up before its first use, without the system's openssl.cnf:
 * reading and applying it is a good part of a fresh command's start, and
 * ferry's TLS parameters are its own (TLS 1.3, its suites, security level
 * 2 at least: libferry sets them).  An OPENSSL_CONF the user sets is still
 * read (a FIPS provider, say).  The legacy name tables OpenSSL builds at
 * start-up stay: certificate checks look digests up in them.
 */
static void crypto_init(void)
{
    if (!OPENSSL_init_ssl(getenv("OPENSSL_CONF") ? 0 : OPENSSL_INIT_NO_LOAD_CONFIG, NULL))
        ferry_log_debug("OpenSSL initialisation failed; its first use will say why");
}

/* Small frames (a signal, an exec request) must not wait for Nagle. */
static void set_nodelay(int fd)
{
    int one = 1;

    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
        ferry_log_debug("TCP_NODELAY: %s", strerror(errno));
}

struct client_session *dial_open(const char *host, const struct dial_opts *given)
{
    struct dial_opts eff;
    const struct dial_opts *o = &eff;
    struct hostconf hc = { 0 };
    char target[320];
    int timeout_ms;
    struct ferry_key key = { 0 };
    struct client_session *s = NULL;
    struct ferry_addr addr;
    char *key_path = NULL;
    int fd = -1, r, have_key = 0, ok = 0;

    if (dial_resolve(host, given, &eff, &hc, target, sizeof target) < 0)
        return NULL;
    timeout_ms = (int)(o->connect_timeout * 1000.0 + 0.5);
    crypto_init();
    if (o->insecure_no_auth && (o->ca_file || o->cert_file)) {
        cli_error("--insecure-no-auth means no TLS: it takes no --ca or --cert");
        goto out;
    }
    if (!o->cert_file != !o->cert_key_file) {
        cli_error("--cert and --cert-key go together");
        goto out;
    }
    if (o->cert_file && !o->ca_file) {
        cli_error("--cert needs --ca (a client certificate is for a server verified by "
                  "certificate)");
        goto out;
    }
    if (o->plaintext && o->ca_file) {
        cli_error("--ca and --cert are for TLS; drop --plaintext to use them");
        goto out;
    }
    /* Load the key before touching the network: a missing key is the
     * most common mistake and needs no server to diagnose.  With --ca it
     * is only needed if the server asks for it. */
    if (!o->insecure_no_auth && !o->ca_file) {
        if (load_key(o, &key, &key_path) < 0)
            goto out;
        eff.key_file = key_path;   /* the one used, for messages */
        have_key = 1;
    }
    s = calloc(1, sizeof *s);
    if (!s) {
        cli_error("out of memory");
        goto out;
    }
    if (strcmp(target, host) != 0)
        ferry_log_debug("%s is %s (host configuration)", host, target);
    fd = ferry_connect_host(target, FERRY_DEFAULT_PORT, timeout_ms > 0 ? timeout_ms : 1, &addr);
    if (fd == FERRY_EADDR) {
        cli_error("cannot connect to %s: bad address or unknown host", host);
        goto out;
    }
    if (fd < 0) {
        cli_error("cannot connect to %s: %s", host, ferry_strerror(fd));
        goto out;
    }
    ferry_addr_format((const struct sockaddr *)&addr.ss, addr.len, s->peer);
    if (addr.ss.ss_family != AF_UNIX)
        set_nodelay(fd);
    if (o->plaintext || o->insecure_no_auth) {
        if (ferry_transport_new_fd(fd, &s->t) < 0) {
            cli_error("out of memory");
            goto out;
        }
    } else {
        char name[256];
        if (tls_config(s, o, &key) < 0)
            goto out;
        host_part(target, name, sizeof name);
        if (o->ca_file && !name[0]) {
            cli_error("--ca checks the server's certificate against the host name, and %s has "
                      "none: use the key (without --ca) for unix: sockets", host);
            goto out;
        }
        r = ferry_transport_new_tls(fd, s->tls, name[0] ? name : NULL, &s->t);
        if (r < 0) {
            cli_error("cannot set up TLS: %s", ferry_strerror(r));
            goto out;
        }
    }
    fd = -1;   /* the transport's now */
    /* From here libferry drives the connection on the client's loop,
     * beside stdin, the signal pipe and any other connection: TLS, then
     * the handshake, within the connect timeout. */
    r = session_start(s, s->t, timeout_ms > 0 ? timeout_ms : 1);
    s->t = NULL;   /* the session's now, whatever happened */
    if (r < 0) {
        cli_error("cannot start the session: %s", ferry_strerror(r));
        goto out;
    }
    if (handshake(s, o, &key, have_key) < 0)
        goto out;
    ok = 1;
out:
    key_wipe(&key);
    free(key_path);
    hostconf_free(&hc);
    if (fd >= 0)
        close(fd);
    if (!ok) {
        client_session_close(s);
        s = NULL;
    }
    return s;
}
