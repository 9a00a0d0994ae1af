/*
 * auth_client - the tutorial's HMAC-authenticated echo client.
 *
 *   auth_client --key-file FILE [--digest sha256|md5] ADDR [MESSAGE...]
 *
 * Reads the server's 32-byte challenge, answers HMAC(key, challenge), then
 * sends each message (an argument, else each line of stdin, with a ">>: "
 * prompt on a terminal) and prints the upper-cased echo.  The protocol has
 * no verdict message: a server that rejects us just hangs up, which shows
 * as end of stream before the first reply.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/crypto.h>

#include "ferry/ferry.h"
#include "cli.h"
#include "hmac_auth.h"
#include "prompt.h"

#define DEFAULT_PORT     9999
#define CONNECT_TIMEOUT_MS 5000
#define REPLY_TIMEOUT_MS 10000

struct client {
    struct ferry_transport *t;
    int replied;        /* a reply came back, so the server accepted our answer */
    char *reply;
    size_t reply_cap;
};

/* Hanging up before the first reply is how the server says "wrong key". */
static int is_hangup(int err)
{
    return err == FERRY_EEOF || err == FERRY_ETRUNCATED || err == -ECONNRESET || err == -EPIPE;
}

static int answer_challenge(struct client *cl, const EVP_MD *md, const struct auth_key *key)
{
    uint8_t nonce[AUTH_NONCE_LEN], digest[EVP_MAX_MD_SIZE];
    size_t len;
    int r;

    r = ferry_transport_read_full(cl->t, nonce, sizeof nonce);
    if (r < 0)
        goto out;
    len = auth_answer(md, key, nonce, digest);
    if (len == 0) {
        r = -EIO;
        goto out;
    }
    r = ferry_transport_write_full(cl->t, digest, len);
out:
    OPENSSL_cleanse(digest, sizeof digest);
    return r;
}

/* Send one message and print its echo, which has the same length
 * (upper-casing preserves it): reading exactly that much is what keeps
 * replies from sticking together. */
static int exchange(struct client *cl, const char *msg, size_t len)
{
    int r;

    if (len == 0)
        return 0;   /* like the tutorial: nothing to send, nothing to wait for */
    if (len + 1 > cl->reply_cap) {
        char *p = realloc(cl->reply, len + 1);
        if (!p)
            return -ENOMEM;
        cl->reply = p;
        cl->reply_cap = len + 1;
    }
    r = ferry_transport_write_full(cl->t, msg, len);
    if (r == 0)
        r = ferry_transport_read_full(cl->t, cl->reply, len);
    if (r < 0)
        return r;
    cl->replied = 1;
    fwrite(cl->reply, 1, len, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    return 0;
}

/* Interactive only: notice a rejection before the user types a line.
 * The server says nothing before our first message, so its end of stream
 * shows as the descriptor's read hang-up, which poll() reports without a
 * byte being read past the transport.  Best effort; exchange() catches
 * whatever this misses. */
static int server_hung_up(struct client *cl)
{
    struct pollfd pfd = { .fd = ferry_transport_fd(cl->t), .events = POLLRDHUP };

    return poll(&pfd, 1, 0) > 0 && (pfd.revents & POLLRDHUP);
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: auth_client --key-file FILE [OPTIONS] ADDR [MESSAGE...]\n"
        "Authenticate to the auth_echo server at ADDR (default port 9999) with\n"
        "HMAC(key, challenge), then send each MESSAGE (else each line of stdin; a >>:\n"
        "prompt on a terminal) and print the reply.  'quit' leaves the prompt.\n"
        "\n"
        "  -k, --key-file FILE  the shared key: the file's exact bytes (required)\n"
        "  -d, --digest NAME    sha256 (default) or md5 (the tutorial's Python default)\n"
        "  -h, --help           show this help\n"
        "  -V, --version        show the version\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "key-file", required_argument, NULL, 'k' },
        { "digest", required_argument, NULL, 'd' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    struct client cl = { 0 };
    struct auth_key key = { 0 };
    const EVP_MD *md = EVP_sha256();
    const char *key_file = NULL, *target;
    struct ferry_addr addr;
    char *line = NULL;
    size_t cap = 0;
    int opt, r, fd, status = 1;

    while ((opt = getopt_long(argc, argv, "k:d:hV", longopts, NULL)) != -1) {
        switch (opt) {
        case 'k': key_file = optarg; break;
        case 'd':
            if (auth_digest_parse(optarg, &md) < 0) {
                fprintf(stderr, "auth_client: unknown digest '%s' (sha256 or md5)\n", optarg);
                return 2;
            }
            break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("auth_client (ferry) %s\n", FERRY_VERSION); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!key_file || optind >= argc) {
        if (!key_file)
            fprintf(stderr, "auth_client: --key-file is required\n");
        usage(stderr);
        return 2;
    }
    target = argv[optind++];
    r = ferry_addr_parse(target, DEFAULT_PORT, &addr);
    if (r < 0) {
        fprintf(stderr, "auth_client: %s: %s\n", target, ferry_strerror(r));
        return 2;
    }
    if (auth_key_load("auth_client", key_file, &key) < 0)
        goto out;
    /* As auth_echo: the tutorial keeps its key in the source, so a loose
     * file is no worse; said, not refused. */
    if (key.others_can_read)
        fprintf(stderr, "auth_client: warning: key file %s is readable by group or others "
                        "(chmod 600 it)\n", key_file);

    /* Every address the name has, in turn (localhost may be ::1 first). */
    fd = ferry_connect_host(target, DEFAULT_PORT, CONNECT_TIMEOUT_MS, NULL);
    if (fd < 0) {
        fprintf(stderr, "auth_client: cannot connect to %s: %s\n", target, ferry_strerror(fd));
        goto out;
    }
    if (ferry_transport_new_fd(fd, &cl.t) < 0) {
        close(fd);
        fprintf(stderr, "auth_client: %s\n", ferry_strerror(-ENOMEM));
        goto out;
    }
    /* A server that never answers must not hang us forever. */
    ferry_transport_set_timeout(cl.t, REPLY_TIMEOUT_MS);

    r = answer_challenge(&cl, md, &key);
    if (r < 0) {
        fprintf(stderr, "auth_client: %s: no challenge from the server: %s\n", target,
                ferry_strerror(r));
        goto out;
    }

    if (optind < argc) {
        for (int i = optind; i < argc && r == 0; i++)
            r = exchange(&cl, argv[i], strlen(argv[i]));
    } else {
        ssize_t n;
        while (r == 0) {
            if (prompt_interactive() && !cl.replied && server_hung_up(&cl)) {
                r = FERRY_EEOF;
                break;
            }
            n = prompt_line(&line, &cap);
            if (n < 0 || (prompt_interactive() && strcmp(line, "quit") == 0))
                break;
            r = exchange(&cl, line, (size_t)n);
        }
    }
    if (r < 0 && !cl.replied && is_hangup(r))
        fprintf(stderr, "auth_client: authentication failed\n");
    else if (r < 0)
        fprintf(stderr, "auth_client: %s: %s\n", target, ferry_strerror(r));
    else
        status = 0;

out:
    free(line);
    free(cl.reply);
    ferry_transport_free(cl.t);   /* closes the socket; NULL allowed */
    auth_key_free(&key);
    return status;
}
