/*
 * auth_echo - the tutorial's HMAC-authenticated echo server, on libferry.
 *
 * On connect the server sends 32 random bytes; the client must answer
 * HMAC(key, those bytes) (32 bytes with sha256, 16 with md5, the
 * tutorial's old Python default).  A wrong answer closes the connection
 * with nothing served; a right one turns it into the upper-casing echo.
 * One event-style handler (awaiting digest -> echo) serves every model.
 *
 *   auth_echo --key-file FILE [--digest sha256|md5] [--listen ADDR] ...
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "ferry/ferry.h"
#include "cli.h"
#include "hmac_auth.h"

#define DEFAULT_LISTEN       "127.0.0.1:9999"
#define DEFAULT_AUTH_TIMEOUT 10

struct auth_config {
    const EVP_MD *md;
    struct auth_key key;
};

struct auth_conn {
    uint8_t expect[EVP_MAX_MD_SIZE];   /* HMAC(key, nonce) */
    uint8_t got[EVP_MAX_MD_SIZE];      /* the client's answer so far */
    size_t digest_len;                 /* bytes of each, <= EVP_MAX_MD_SIZE */
    size_t got_len;
    int authenticated;
};

static void upper_copy(uint8_t *dst, const uint8_t *src, size_t len)
{
    /* ASCII only, like Python's bytes.upper(): other bytes pass unchanged. */
    for (size_t i = 0; i < len; i++)
        dst[i] = (src[i] >= 'a' && src[i] <= 'z') ? (uint8_t)(src[i] - 'a' + 'A') : src[i];
}

static int echo_upper(struct ferry_conn *c, const uint8_t *in, size_t len)
{
    uint8_t out[4096];

    while (len > 0) {
        size_t n = len < sizeof out ? len : sizeof out;
        upper_copy(out, in, n);
        int r = ferry_conn_write(c, out, n);
        if (r < 0)
            return r;
        in += n;
        len -= n;
    }
    return 0;
}

static void conn_wipe_free(struct auth_conn *ac)
{
    if (!ac)
        return;
    OPENSSL_cleanse(ac, sizeof *ac);
    free(ac);
}

/* Send the challenge and keep only the answer it calls for: the nonce
 * itself need not outlive this function. */
static int on_open(struct ferry_conn *c, void *arg)
{
    const struct auth_config *cfg = arg;
    struct auth_conn *ac = NULL;
    uint8_t nonce[AUTH_NONCE_LEN];
    int r = 0;

    ac = calloc(1, sizeof *ac);
    if (!ac) {
        r = -ENOMEM;
        goto out;
    }
    if (RAND_bytes(nonce, sizeof nonce) != 1) {
        ferry_log_error("conn %llu (%s): no random bytes for the challenge",
                        (unsigned long long)ferry_conn_id(c), ferry_conn_peer(c));
        r = -EIO;
        goto out;
    }
    ac->digest_len = auth_answer(cfg->md, &cfg->key, nonce, ac->expect);
    if (ac->digest_len == 0) {
        ferry_log_error("conn %llu (%s): HMAC failed", (unsigned long long)ferry_conn_id(c),
                        ferry_conn_peer(c));
        r = -EIO;
        goto out;
    }
    r = ferry_conn_write(c, nonce, sizeof nonce);
    if (r < 0)
        goto out;
    ferry_conn_set_data(c, ac);
    ac = NULL;

out:
    OPENSSL_cleanse(nonce, sizeof nonce);
    conn_wipe_free(ac);
    return r;
}

static int on_data(struct ferry_conn *c, const void *data, size_t len, void *arg)
{
    struct auth_conn *ac = ferry_conn_data(c);
    const uint8_t *in = data;
    (void)arg;

    if (!ac->authenticated) {
        /* The answer may arrive in pieces, and data may follow it in the
         * same read: take no more than the digest's length. */
        size_t take = ac->digest_len - ac->got_len;
        if (take > len)
            take = len;
        memcpy(ac->got + ac->got_len, in, take);
        ac->got_len += take;
        in += take;
        len -= take;
        if (ac->got_len < ac->digest_len)
            return 0;
        if (CRYPTO_memcmp(ac->got, ac->expect, ac->digest_len) != 0) {
            ferry_log_info("conn %llu (%s): authentication failed",
                           (unsigned long long)ferry_conn_id(c), ferry_conn_peer(c));
            return FERRY_EAUTH;   /* closes at once: nothing is served */
        }
        ac->authenticated = 1;
        ferry_conn_set_authenticated(c);
        ferry_log_debug("conn %llu (%s): authenticated", (unsigned long long)ferry_conn_id(c),
                        ferry_conn_peer(c));
    }
    return echo_upper(c, in, len);
}

static void on_close(struct ferry_conn *c, int reason, void *arg)
{
    (void)reason;
    (void)arg;
    conn_wipe_free(ferry_conn_data(c));
    ferry_conn_set_data(c, NULL);
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: auth_echo --key-file FILE [OPTIONS]\n"
        "Challenge each client with 32 random bytes, require HMAC(key, challenge) back,\n"
        "then echo what it sends upper-cased.  Wrong answers are disconnected.\n"
        "\n"
        "  -k, --key-file FILE      the shared key: the file's exact bytes (required)\n"
        "  -d, --digest NAME        sha256 (default) or md5 (the tutorial's Python default)\n"
        "  -l, --listen ADDR        endpoint: HOST:PORT, [V6]:PORT or unix:/PATH (default " DEFAULT_LISTEN ")\n"
        "      --auth-timeout S     close clients that have not answered in S seconds (default 10)\n"
        CLI_SERVER_USAGE
        "  -h, --help               show this help\n"
        "  -V, --version            show the version\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "key-file", required_argument, NULL, 'k' },
        { "digest", required_argument, NULL, 'd' },
        { "listen", required_argument, NULL, 'l' },
        { "auth-timeout", required_argument, NULL, 'A' },
        CLI_SERVER_LONGOPTS,
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    struct ferry_server_opts opts = {
        .handle_signals = 1,
        .handshake_timeout_ms = DEFAULT_AUTH_TIMEOUT * 1000,
    };
    struct auth_config cfg = { .md = EVP_sha256() };
    struct ferry_handler h = {
        .on_open = on_open,
        .on_data = on_data,
        .on_close = on_close,
        .arg = &cfg,
    };
    struct ferry_server *s = NULL;
    const char *listen = DEFAULT_LISTEN, *key_file = NULL;
    int opt, r, status = 1;
    long n;

    ferry_log_set_ident("auth_echo");
    while ((opt = getopt_long(argc, argv, "k:d:l:hV" CLI_SERVER_SHORTOPTS, longopts, NULL)) != -1) {
        int used = cli_server_option("auth_echo", opt, optarg, &opts);
        if (used < 0)
            return 2;
        if (used)
            continue;
        switch (opt) {
        case 'k': key_file = optarg; break;
        case 'd':
            if (auth_digest_parse(optarg, &cfg.md) < 0) {
                fprintf(stderr, "auth_echo: unknown digest '%s' (sha256 or md5)\n", optarg);
                return 2;
            }
            break;
        case 'l': listen = optarg; break;
        case 'A':
            if (cli_int("auth_echo", "--auth-timeout", optarg, 1, 3600, &n) < 0)
                return 2;
            opts.handshake_timeout_ms = (int)n * 1000;
            break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("auth_echo (ferry) %s\n", FERRY_VERSION); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc || !key_file) {
        if (!key_file && optind == argc)
            fprintf(stderr, "auth_echo: --key-file is required\n");
        usage(stderr);
        return 2;
    }

    if (auth_key_load("auth_echo", key_file, &cfg.key) < 0)
        goto out;
    /* The tutorial hard-codes its key in the source, so a readable file is
     * no worse than what it replaces: warn, do not refuse. */
    if (cfg.key.others_can_read)
        ferry_log_warn("key file %s is readable by group or others (chmod 600 it)", key_file);

    r = ferry_server_new(&opts, &s);
    if (r < 0)
        goto fail;
    r = ferry_server_listen(s, listen, FERRY_SOCK_STREAM, &h, NULL);
    if (r < 0)
        goto fail;
    r = ferry_server_run(s);
    if (r < 0)
        goto fail;
    status = 0;
    goto out;

fail:
    fprintf(stderr, "auth_echo: %s: %s\n", listen, ferry_strerror(r));
out:
    ferry_server_free(s);
    auth_key_free(&cfg.key);
    return status;
}
