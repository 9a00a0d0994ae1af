/*
 * ferryd - the ferry daemon: authenticated remote command execution and
 * file transfer over the ferry session protocol, and optionally the
 * tutorials' classic protocol on a second, loopback address.
 *
 * This file turns the options (options.c: -f's file, then the command
 * line) into a ferry_server: it loads and checks the key, refuses unsafe
 * combinations (no key, a key others can read, unauthenticated or
 * classic service beyond loopback without an explicit flag), binds every
 * address or takes the sockets systemd passed, tells systemd it is ready,
 * and runs.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ferry/ferry.h"
#include "classic.h"
#include "conffile.h"
#include "daemon.h"
#include "fdio.h"
#include "sdlisten.h"
#include "sdnotify.h"
#include "sessionsvc.h"
#include "stopsig.h"
#include "sweeper.h"
#include "tlsconf.h"
#include "options.h"
#include "proto.h"

/* An address that must stay on this machine. */
static int require_loopback(const char *addr, const char *why)
{
    struct ferry_addr a;
    int r = ferry_addr_parse(addr, FERRY_DEFAULT_PORT, &a);
    if (r < 0) {
        fprintf(stderr, "ferryd: %s: %s\n", addr, ferry_strerror(r));
        return -1;
    }
    if (!ferry_addr_is_loopback(&a)) {
        fprintf(stderr, "ferryd: refusing %s on %s: %s\n", why, addr,
                "it is not a loopback address");
        return -1;
    }
    return 0;
}

/* A listen address with the default port filled in when it has none. */
static const char *with_port(const char *addr, char *buf, size_t len)
{
    struct ferry_addr a;
    if (ferry_addr_parse(addr, -1, &a) == 0)
        return addr;
    if (ferry_addr_parse(addr, FERRY_DEFAULT_PORT, &a) < 0)
        return addr;   /* let the listen call report it */
    ferry_addr_format((const struct sockaddr *)&a.ss, a.len, buf);
    (void)len;
    return buf;
}

/* The key, into cfg; *used is the file it came from (the caller's to
 * free), for say_auth. */
static int load_key(struct options *o, struct daemon_config *cfg, char **used)
{
    struct errbuf err;
    char *path = o->key_file ? strdup(o->key_file) : keyfile_default_path(0);
    int r;

    if (!path) {
        fprintf(stderr, "ferryd: no key file given and no home directory to look in; "
                        "use --key-file FILE\n");
        return -1;
    }
    r = keyfile_load(path, 1, &cfg->key, &err);
    if (r < 0) {
        /* One line, the remedy with the cause, as ferry says it. */
        if (!o->key_file)
            fprintf(stderr, "ferryd: %s; make a key with 'ferry keygen' (or pass --key-file "
                            "FILE, or --insecure-no-auth for a loopback-only test)\n",
                    errbuf_msg(&err, r));
        else if (r == -ENOENT)
            fprintf(stderr, "ferryd: %s; make it with 'ferry keygen %s'\n", errbuf_msg(&err, r),
                    path);
        else
            fprintf(stderr, "ferryd: %s\n", errbuf_msg(&err, r));
    } else {
        cfg->have_key = 1;
        *used = path;
        path = NULL;
    }
    free(path);
    return r;
}

/*
 * What authenticates clients, and the listeners' TLS.  Refuses what cannot
 * work or would be unsafe: two key sources, certificates without TLS, a
 * server nobody could authenticate to.  Says nothing of what it set up
 * (say_auth does, once the start cannot fail).  0, or the exit status;
 * *nkeys is the keys file's count, *key_path the key file's name.
 */
static int setup_auth(struct options *o, struct daemon_config *cfg, int *nkeys, char **key_path)
{
    struct errbuf err;
    int r;

    if (o->insecure_no_auth) {
        if (o->key_file || o->keys_file || o->cert || o->client_ca) {
            fprintf(stderr, "ferryd: --insecure-no-auth takes no keys or certificates\n");
            return 2;
        }
        cfg->no_auth = cfg->plaintext = 1;
        return 0;
    }
    if (o->key_file && o->keys_file) {
        fprintf(stderr, "ferryd: use --key-file or --keys, not both\n");
        return 2;
    }
    if (o->plaintext && (o->cert || o->cert_key || o->client_ca)) {
        fprintf(stderr, "ferryd: --cert, --cert-key and --client-ca are for TLS; drop "
                        "--plaintext to use them\n");
        return 2;
    }
    if (!o->cert != !o->cert_key) {
        fprintf(stderr, "ferryd: --cert and --cert-key go together\n");
        return 2;
    }
    if (o->client_ca && !o->cert) {
        fprintf(stderr, "ferryd: --client-ca needs --cert and --cert-key (the server's own)\n");
        return 2;
    }
    if (o->keys_file) {
        r = keys_check(o->keys_file, nkeys, &err);
        if (r < 0) {
            fprintf(stderr, "ferryd: %s\n", errbuf_msg(&err, r));
            return 1;
        }
        cfg->keys_file = o->keys_file;
    } else if (o->key_file || !o->client_ca) {
        /* Client certificates alone authenticate clients; otherwise a key
         * must. */
        if (load_key(o, cfg, key_path) < 0)
            return 1;
    }
    tlsconf_prepare();
    cfg->plaintext = o->plaintext;
    if (!cfg->plaintext && tlsconf_setup(cfg, o->cert, o->cert_key, o->client_ca) < 0)
        return 1;
    return 0;
}

/* What setup_auth set up, said once nothing at start can fail any more. */
static void say_auth(const struct options *o, const struct daemon_config *cfg, int nkeys,
                     const char *key_path)
{
    if (cfg->no_auth) {
        ferry_log_warn("authentication is OFF (--insecure-no-auth): anyone who can connect "
                       "can run commands as this user");
        return;
    }
    if (cfg->keys_file)
        ferry_log_info("keys: %s (%d key%s, read again for every connection)", cfg->keys_file,
                       nkeys, nkeys == 1 ? "" : "s");
    else if (key_path)
        ferry_log_info("key: %s (as '%s')", key_path, KEYS_DEFAULT_NAME);
    if (cfg->plaintext) {
        ferry_log_warn("--plaintext: sessions are authenticated but NOT encrypted; use it "
                       "only on networks you trust");
        return;
    }
    ferry_log_info("TLS 1.3: %s%s%s%s; kernel TLS %s", cfg->have_key || cfg->keys_file ?
                   "PSK from the key" : "", (cfg->have_key || cfg->keys_file) && o->cert ?
                   ", " : "", o->cert ? "certificate " : "", o->cert ? o->cert : "",
                   ferry_tls_ktls_available() ? "available" : "not available (the tls module "
                   "is not loaded): downloads are encrypted in user space");
    if (o->client_ca)
        ferry_log_info("client certificates signed by %s are accepted in place of a key",
                       o->client_ca);
}

/* Open (creating if need be) the served directory.  The temporaries of
 * uploads that never finished are swept later, beside serving. */
static int open_root(const char *dir, struct daemon_config *cfg)
{
    char err[PATH_MAX + 128];
    int r = fsroot_open(dir, 1, &cfg->root, err, sizeof err);

    if (r < 0) {
        fprintf(stderr, "ferryd: --root %s\n", err);
        return -1;
    }
    return 0;
}

/* The keys' root= directories, open for the sweep (it holds them). */
struct key_roots {
    char **dirs;
    struct fsroot **roots;      /* roots[i]: dirs[i] open, or NULL */
    size_t n;
};

static void key_roots_close(struct key_roots *k)
{
    for (size_t i = 0; k->roots && i < k->n; i++)
        fsroot_close(k->roots[i]);
    free(k->roots);
    keys_roots_free(k->dirs, k->n);
    *k = (struct key_roots){ 0 };
}

/*
 * Sweep --root, then every root= of the keys file: a key's uploads leave
 * their temporaries in its own root, which the sweep of --root never
 * reaches unless it lies inside it (then it is walked twice, harmlessly:
 * a temporary goes once).  A root= that cannot be opened is skipped (its
 * key is refused anyway: sessionsvc_auth.c).  Best effort, as the sweep
 * is: a failure is logged and serving goes on.
 */
static void start_sweep(const struct daemon_config *cfg, const char *dir, struct key_roots *k,
                        struct sweeper **sweep)
{
    struct sweeper_root *list;
    struct errbuf err;
    char why[512];
    size_t n = 0;
    int r;

    errbuf_clear(&err);
    if (cfg->keys_file && (r = keys_roots(cfg->keys_file, &k->dirs, &k->n, &err)) < 0)
        ferry_log_warn("%s: the keys' root= directories are not swept", errbuf_msg(&err, r));
    if (k->n > 0 && !(k->roots = calloc(k->n, sizeof *k->roots)))
        key_roots_close(k);
    list = calloc(1 + k->n, sizeof *list);
    if (!list) {
        ferry_log_warn("root %s: cannot sweep for unfinished uploads: %s", dir,
                       ferry_strerror(-ENOMEM));
        return;
    }
    list[n++] = (struct sweeper_root){ cfg->root, dir };
    for (size_t i = 0; i < k->n; i++) {
        if (fsroot_open(k->dirs[i], 0, &k->roots[i], why, sizeof why) < 0)
            ferry_log_warn("root %s: not swept for unfinished uploads: %s", k->dirs[i], why);
        else
            list[n++] = (struct sweeper_root){ k->roots[i], k->dirs[i] };
    }
    r = sweeper_start(list, n, sweep);
    if (r < 0)
        ferry_log_warn("root %s: cannot sweep for unfinished uploads: %s", dir,
                       ferry_strerror(r));
    free(list);
}

int main(int argc, char **argv)
{
    static struct daemon_config cfg;
    /* Static, as cfg: what the file's values hang on stays reachable
     * through every early return. */
    static struct options o;
    struct classic_config ccfg = { .daemon = &cfg };
    struct ferry_handler session = sessionsvc_handler, classic = classic_handler;
    struct ferry_server *s = NULL;
    struct sweeper *sweep = NULL;
    struct key_roots key_roots = { 0 };
    json_t *refusal_hdr;
    uint8_t *refusal = NULL;
    size_t refusal_len = 0;
    char buf[FERRY_ADDRSTRLEN], classic_at[MAX_LISTEN][FERRY_ADDRSTRLEN];
    char *key_path = NULL;
    int r, status = 1, activated, nkeys = 0, listen_unused;

    /* Before anything opens a descriptor (the log writes to 2). */
    if (fdio_std_open() < 0)
        return 1;
    ferry_log_set_ident("ferryd");
    /* Taken before anything else, and taken out of the environment, so
     * that no command ferryd runs inherits them. */
    activated = sdlisten_take();
    r = sdnotify_open();
    if (r < 0)
        ferry_log_warn("NOTIFY_SOCKET: %s; systemd will not hear that ferryd is ready",
                       ferry_strerror(r));
    options_init(&o);
    r = options_parse(argc, argv, &o);
    if (r != 0)
        return r < 0 ? 0 : r;
    if (activated < 0) {
        fprintf(stderr, "ferryd: LISTEN_FDS or LISTEN_PID is malformed\n");
        return 2;
    }
    listen_unused = activated > 0 && o.nlisten > 0;
    if (activated == 0 && o.nlisten == 0)
        o.listen[o.nlisten++] = "127.0.0.1:7171";
    if (activated > 0)
        o.nlisten = 0;
    if (o.server.unauth_start < 0)
        o.server.unauth_start = o.server.max_unauthenticated - o.server.max_unauthenticated / 4;

    if (o.insecure_no_auth)
        for (int i = 0; i < o.nlisten; i++)
            if (require_loopback(with_port(o.listen[i], buf, sizeof buf), "--insecure-no-auth") < 0)
                return 2;
    /* What can fail comes first (the keys and certificates, then binding
     * every listener), before anything is made on disk (the root) and
     * before a line that says what serves: a start that fails is its one
     * line. */
    r = setup_auth(&o, &cfg, &nkeys, &key_path);
    if (r != 0) {
        status = r;
        goto out;
    }
    for (int i = 0; i < o.nclassic; i++) {
        if (!o.insecure_classic && require_loopback(o.classic[i], "--classic without --insecure") < 0) {
            status = 2;
            goto out;
        }
    }
    if (!o.root)
        o.root = FERRYD_DEFAULT_ROOT;
    /* A write past RLIMIT_FSIZE must fail with EFBIG for that one upload,
     * not kill the daemon. */
    signal(SIGXFSZ, SIG_IGN);

    if (o.nclassic > 0) {
        /* The classic listener's connections come on top of --max-conns
         * (the server's cap is the sum) and classic.c caps them itself, so
         * they never take a slot the main service counts on. */
        if (o.server.max_conns == 0)
            o.server.max_conns = 1024;   /* server.h: 0 means 1024 */
        o.server.max_conns += o.classic_max_conns;
        ccfg.idle_timeout_ms = o.classic_idle_timeout_ms;
        r = classic_limits_new(o.classic_max_conns, (size_t)o.classic_max_output_mib << 20,
                               &ccfg.limits);
        if (r < 0)
            goto fail;
    }
    /* A connection refused for a limit is told so, in the clear (before
     * TLS: PROTOCOL.md 2.7), rather than left to guess at a TLS failure. */
    refusal_hdr = json_pack("{s:s, s:s, s:s}", "type", MSG_CLOSING, "reason", CLOSE_BUSY,
                            "message", "the server is at its connection limit; try again later");
    if (refusal_hdr && ferry_frame_encode(refusal_hdr, 0, NULL, &refusal, &refusal_len) == 0) {
        o.server.refusal = refusal;
        o.server.refusal_len = refusal_len;
    }
    json_decref(refusal_hdr);
    r = ferry_server_new(&o.server, &s);
    if (r < 0)
        goto fail;
    cfg.idle_timeout_ms = o.server.idle_timeout_ms;
    session.arg = &cfg;
    classic.arg = &ccfg;
    for (int i = 0; i < activated; i++) {
        r = ferry_server_listen_fd_from(s, SDLISTEN_FIRST_FD + i, "systemd", &session, cfg.tls,
                                        NULL);
        if (r < 0) {
            fprintf(stderr, "ferryd: cannot serve the socket systemd passed as descriptor %d: "
                    "%s\n", SDLISTEN_FIRST_FD + i, ferry_strerror(r));
            goto out;
        }
    }
    for (int i = 0; i < o.nlisten; i++) {
        const char *addr = with_port(o.listen[i], buf, sizeof buf);
        r = ferry_server_listen_tls(s, addr, FERRY_SOCK_STREAM, &session, cfg.tls, NULL);
        if (r < 0) {
            fprintf(stderr, "ferryd: cannot listen on %s: %s\n", addr, ferry_strerror(r));
            /* An address that cannot be one is the command line's (ferryd(8):
             * 2); a port in use is the machine's. */
            if (r == FERRY_EADDR)
                status = 2;
            goto out;
        }
    }
    for (int i = 0; i < o.nclassic; i++) {
        r = ferry_server_listen(s, o.classic[i], FERRY_SOCK_STREAM, &classic, classic_at[i]);
        if (r < 0) {
            fprintf(stderr, "ferryd: cannot listen on %s: %s\n", o.classic[i], ferry_strerror(r));
            if (r == FERRY_EADDR)
                status = 2;
            goto out;
        }
    }
    if (open_root(o.root, &cfg) < 0)
        goto out;
    /* SIGINT, SIGTERM, SIGHUP: STOPPING=1, a line, then a graceful stop.
     * Caught before the lines that say ferryd serves: a stop asked for on
     * reading them must not find the default disposition. */
    r = stopsig_catch(s, o.server.shutdown_grace_ms);
    if (r < 0) {
        stopsig_release();
        goto fail;
    }
    /* The start can no longer fail: say what serves. */
    say_auth(&o, &cfg, nkeys, key_path);
    if (listen_unused)
        ferry_log_info("serving the %d socket%s systemd passed; --listen is not used", activated,
                       activated == 1 ? "" : "s");
    ferry_log_info("serving files from %s", o.root);
    for (int i = 0; i < o.nclassic; i++)
        ferry_log_warn("classic protocol on %s: UNAUTHENTICATED; anyone who can connect there "
                       "can run commands and upload files", classic_at[i]);
    /* Every socket is listening: connections queue from here on, so the
     * manager may start what depends on us (Type=notify). */
    sdnotify_send("READY=1\nSTATUS=serving");
    /* Beside serving, not before: a root of / takes minutes (sweeper.h). */
    if (o.no_sweep)
        ferry_log_info("root %s: no sweep for unfinished uploads (--no-sweep)", o.root);
    else
        start_sweep(&cfg, o.root, &key_roots, &sweep);
    r = ferry_server_run(s);
    sweeper_stop(&sweep);
    stopsig_release();
    sdnotify_send("STOPPING=1");   /* again, for a stop that was not a signal's */
    if (r < 0)
        goto fail;
    ferry_log_info("stopped");
    status = 0;
    goto out;

fail:
    fprintf(stderr, "ferryd: %s\n", ferry_strerror(r));
out:
    sweeper_stop(&sweep);
    key_roots_close(&key_roots);
    ferry_server_free(s);
    free(refusal);
    ferry_tls_free(cfg.tls);
    fsroot_close(cfg.root);
    classic_limits_free(ccfg.limits);
    key_wipe(&cfg.key);
    free(key_path);
    options_free(&o);
    sdnotify_close();
    return status;
}
