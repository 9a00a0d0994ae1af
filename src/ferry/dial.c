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
#include "dial_hs.h"
#include "handshake.h"
#include "hostconf.h"
#include "ferry/ferry.h"
#include "keyfile.h"
#include "keys.h"
#include "master.h"
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
        if (cli_seconds_or_0(help_cmd, "--keepalive", arg, MAX_CONNECT_TIMEOUT_S,
                             &o->keepalive) < 0)
            return -1;
        return 1;
    case OPT_PERSIST:
        o->set |= DIAL_SET_PERSIST;
        if (cli_seconds_or_0(help_cmd, "--persist", arg, MASTER_PERSIST_MAX_S, &o->persist) < 0)
            return -1;
        return 1;
    case OPT_NO_MASTER:
        o->no_master = 1;
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

/* The handshake's events while dial_open waits for it (dial_hs.c). */
static int on_handshake_frame(struct client_session *s, struct ferry_frame_event *ev, void *arg)
{
    struct dial_hs *d = arg;

    dial_hs_on_frame(d, s, ev);
    if (d->done)
        session_wake(s);
    return 0;
}

/*
 * PROTOCOL.md 2.1, event by event (dial_hs.c), run here until it is
 * over: 0, or -1 after the one line that says why.  `key` NULL: loaded
 * if the server asks for one (--ca).
 */
static int handshake(struct client_session *s, const struct dial_opts *o,
                     const struct ferry_key *key)
{
    struct dial_hs d;
    int rc = -1;

    if (dial_hs_begin(&d, s, o, key) == 0) {
        session_set_receiver(s, on_handshake_frame, &d);
        while (!d.done && !s->gone)
            (void)session_wait(s);
        if (!d.done)
            dial_hs_gone(&d, s);
    }
    /* Frames after the welcome wait in the slot for the first request. */
    session_set_receiver(s, NULL, NULL);
    if (d.done < 0)
        cli_error("%s", d.err);
    else
        rc = 0;
    dial_hs_end(&d);
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

/* Whether target's PORT, when it has one, is a number from 1 to 65535
 * (port 0 would only ever be refused). */
static int port_ok(const char *target)
{
    char name[256], port[16];
    char *end;
    long p;

    if (strncmp(target, "unix:", 5) == 0)
        return 1;
    split_host(target, name, sizeof name, port, sizeof port);
    if (!port[0])
        return 1;
    errno = 0;
    p = strtol(port, &end, 10);
    return !*end && !errno && p >= 1 && p <= 65535;
}

const char *dial_addr_error(const char *target)
{
    return port_ok(target) ? "bad address or unknown host"
                           : "the port is not a number from 1 to 65535";
}

int dial_resolve(const char *host, const struct dial_opts *o, const struct hostconf_db *conf,
                 struct dial_opts *eff, struct hostconf *hc, char *target, size_t target_len)
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
    if ((conf ? hostconf_db_host(conf, name, hc) : hostconf_load(o->config_file, name, hc)) < 0)
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
    if (!(o->set & DIAL_SET_PERSIST) && v[HC_PERSIST])
        eff->persist = strtod(v[HC_PERSIST], NULL);
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

int dial_tls_new(const struct dial_opts *o, const struct ferry_key *key, struct ferry_tls **tls,
                 char *err, size_t errlen)
{
    struct ferry_tls_opts to = {
        .role = FERRY_TLS_CLIENT,
        .ca_file = o->ca_file,
        .cert_file = o->cert_file,
        .key_file = o->cert_key_file,
    };

    if (!o->ca_file) {
        to.psk = key->bytes;
        to.psk_len = KEY_LEN;
        to.psk_identity = o->key_name ? o->key_name : KEYS_DEFAULT_NAME;
    }
    return ferry_tls_new(&to, err, errlen, tls) < 0 ? -1 : 0;
}

int dial_transport(int fd, const struct dial_opts *o, struct ferry_tls *tls, const char *host,
                   const char *target, struct ferry_transport **t, char *err, size_t errlen)
{
    char name[256];
    int r;

    if (!tls) {
        r = ferry_transport_new_fd(fd, t);
        if (r < 0) {
            close(fd);
            snprintf(err, errlen, "out of memory");
        }
        return r < 0 ? -1 : 0;
    }
    host_part(target, name, sizeof name);
    if (o->ca_file && !name[0]) {
        close(fd);
        snprintf(err, errlen, "--ca checks the server's certificate against the host name, and "
                 "%s has none: use the key (without --ca) for unix: sockets", host);
        return -1;
    }
    r = ferry_transport_new_tls(fd, tls, name[0] ? name : NULL, t);
    if (r < 0) {
        close(fd);
        snprintf(err, errlen, "cannot set up TLS: %s", ferry_strerror(r));
        return -1;
    }
    return 0;
}

/*
 * OpenSSL set up before its first use with only what ferry uses: its
 * eager start-up is most of a fresh command's own cost (OpenSSL 3.0;
 * BENCHMARKS.md "A fresh command's OpenSSL start").  Never: the system's
 * openssl.cnf (ferry's TLS parameters are its own: TLS 1.3, its suites,
 * security level 2 at least, set by libferry; an OPENSSL_CONF the user
 * sets is still read, a FIPS provider say) and the clean-up at exit (the
 * process ends).  Only with certificates: the legacy tables naming every
 * cipher and digest (a certificate's signature is checked against the
 * security level through them; libssl fetches what a PSK session uses
 * from the provider by name) and libcrypto's error strings (files, PEM,
 * X.509: a PSK session's errors are libssl's, whose strings libssl loads
 * itself).  OpenSSL initialises once, so the first call decides.
 */
void dial_crypto_init(int certificates)
{
    uint64_t opts = OPENSSL_INIT_NO_ATEXIT;

    if (!getenv("OPENSSL_CONF"))
        opts |= OPENSSL_INIT_NO_LOAD_CONFIG;
    if (!certificates)
        opts |= OPENSSL_INIT_NO_ADD_ALL_CIPHERS | OPENSSL_INIT_NO_ADD_ALL_DIGESTS |
                OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS;
    if (!OPENSSL_init_crypto(opts, NULL) || !OPENSSL_init_ssl(opts, NULL))
        ferry_log_debug("OpenSSL initialisation failed; its first use will say why");
}

/* Small frames (a signal, an exec request) must not wait for Nagle. */
static void set_nodelay(int fd)
{
    int one = 1;

    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
        ferry_log_debug("TCP_NODELAY: %s", strerror(errno));
}

/*
 * A session from the master for these options, if one runs and hands one
 * over (master.h); NULL otherwise, with nothing printed: the caller then
 * connects by itself, and starts a master for next time when --persist
 * (or the host's Persist) asks for one and none runs.
 */
static struct client_session *via_master(const char *host, const struct dial_opts *o,
                                         const char *target, int timeout_ms)
{
    struct client_session *s;
    struct ferry_transport *t;
    struct master_info info;
    char path[128], why[256];
    int r;

    /* Every fresh command passes here: without the directory there is
     * nothing to find, and the key's real path need not be worked out. */
    if (o->persist <= 0 && !master_dir_exists())
        return NULL;
    if (master_socket_path(o, target, path, sizeof path, why, sizeof why) < 0) {
        ferry_log_debug("no master: %s", why);
        return NULL;
    }
    r = master_request(path, "session", timeout_ms > 0 ? timeout_ms : 1, &info, &t, why,
                       sizeof why);
    if (r != 0) {
        if (r == MASTER_NONE && o->persist > 0) {
            ferry_log_debug("no master for %s: starting one (--persist %g)", host, o->persist);
            master_spawn(host, o);
        } else if (r < 0) {
            ferry_log_debug("master %s: %s; connecting directly", path, why);
        }
        return NULL;
    }
    s = calloc(1, sizeof *s);
    if (!s) {
        ferry_transport_free(t);
        return NULL;
    }
    snprintf(s->peer, sizeof s->peer, "%s", info.peer);
    r = session_start(s, t, timeout_ms > 0 ? timeout_ms : 1);
    if (r < 0) {
        free(s);
        return NULL;
    }
    s->pipeline = info.pipeline;
    s->put_stream = info.put_stream;
    s->glob = info.glob;
    s->answers_ping = info.keepalive;
    s->put_ack = info.put_ack;
    s->via_master = 1;
    session_authenticated(s, info.keepalive ? (uint64_t)(o->keepalive * 1000.0 + 0.5) : 0);
    ferry_log_debug("connected to %s through master %ld (%s)", s->peer, info.pid, path);
    return s;
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
    char *key_path = NULL, err[DIAL_HS_ERR_MAX];
    int fd = -1, r, have_key = 0, ok = 0;

    if (dial_resolve(host, given, NULL, &eff, &hc, target, sizeof target) < 0)
        return NULL;
    timeout_ms = (int)(o->connect_timeout * 1000.0 + 0.5);
    if (dial_check_opts(o, err, sizeof err) < 0) {
        cli_error("%s", err);
        goto out;
    }
    if (!o->no_master) {
        s = via_master(host, o, target, timeout_ms);
        if (s) {
            hostconf_free(&hc);
            return s;
        }
    }
    dial_crypto_init(o->ca_file || o->cert_file);
    /* Load the key before touching the network: a missing key is the
     * most common mistake and needs no server to diagnose.  With --ca it
     * is only needed if the server asks for it. */
    if (!o->insecure_no_auth && !o->ca_file) {
        if (dial_load_key(o, &key, &key_path, err, sizeof err) < 0) {
            cli_error("%s", err);
            goto out;
        }
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
    fd = port_ok(target) ? ferry_connect_host(target, FERRY_DEFAULT_PORT,
                                              timeout_ms > 0 ? timeout_ms : 1, &addr)
                         : FERRY_EADDR;
    if (fd == FERRY_EADDR) {
        cli_error("cannot connect to %s: %s", host, dial_addr_error(target));
        goto out;
    }
    if (fd < 0) {
        cli_error("cannot connect to %s: %s", host, ferry_strerror(fd));
        goto out;
    }
    ferry_addr_format((const struct sockaddr *)&addr.ss, addr.len, s->peer);
    if (addr.ss.ss_family != AF_UNIX)
        set_nodelay(fd);
    if (!o->plaintext && !o->insecure_no_auth && dial_tls_new(o, &key, &s->tls, err, sizeof err) < 0) {
        cli_error("%s", err);
        goto out;
    }
    r = dial_transport(fd, o, s->tls, host, target, &s->t, err, sizeof err);
    fd = -1;   /* the transport's now, or closed */
    if (r < 0) {
        cli_error("%s", err);
        goto out;
    }
    /* From here libferry drives the connection on the client's loop,
     * beside stdin, the signal pipe and any other connection: TLS, then
     * the handshake, within the connect timeout. */
    r = session_start(s, s->t, timeout_ms > 0 ? timeout_ms : 1);
    s->t = NULL;   /* the session's now, whatever happened */
    if (r < 0) {
        cli_error("cannot start the session: %s", ferry_strerror(r));
        goto out;
    }
    if (handshake(s, o, have_key ? &key : NULL) < 0)
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
