/*
 * echo_upper - the tutorials' upper-casing echo server, on libferry.
 *
 * Every chunk a client sends comes back upper-cased (ASCII only, like
 * Python's bytes.upper()).  One event-style handler serves all three
 * concurrency models; --udp serves the datagram variant instead.
 *
 *   echo_upper [--listen ADDR] [--model event|thread|fork] [--udp] ...
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/ferry.h"
#include "cli.h"

#define DEFAULT_LISTEN "127.0.0.1:8080"

static void upper_copy(uint8_t *dst, const uint8_t *src, size_t len)
{
    for (size_t i = 0; i < len; i++)
        /* ASCII a-z only; bytes >= 0x80 (UTF-8, Latin-1) pass unchanged.
         * Masking with 0x7f would turn 0xe4 into 0xc4 and break UTF-8. */
        dst[i] = (src[i] >= 'a' && src[i] <= 'z') ? (uint8_t)(src[i] - 'a' + 'A') : src[i];
}

/* Upper-case in pieces small enough for the stack; ferry_conn_write
 * copies what the socket does not take at once, and the server stops
 * reading this client while its replies are backed up. */
static int on_data(struct ferry_conn *c, const void *data, size_t len, void *arg)
{
    const uint8_t *in = data;
    uint8_t out[4096];
    (void)arg;

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

static void on_datagram(const struct ferry_datagram *d, void *arg)
{
    uint8_t out[65536];
    (void)arg;
    upper_copy(out, d->data, d->len);
    ferry_datagram_reply(d, out, d->len);
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: echo_upper [OPTIONS]\n"
        "Echo every chunk a client sends back upper-cased (TCP, or UDP with --udp).\n"
        "\n"
        "  -l, --listen ADDR        endpoint: HOST:PORT, [V6]:PORT or unix:/PATH (default " DEFAULT_LISTEN ")\n"
        "  -u, --udp                serve the UDP echo instead of TCP\n"
        CLI_SERVER_USAGE
        "  -h, --help               show this help\n"
        "  -V, --version            show the version\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "listen", required_argument, NULL, 'l' },
        { "udp", no_argument, NULL, 'u' },
        CLI_SERVER_LONGOPTS,
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    struct ferry_server_opts opts = { .handle_signals = 1 };
    struct ferry_handler h = { 0 };
    struct ferry_server *s = NULL;
    const char *listen = DEFAULT_LISTEN;
    int udp = 0, opt, r;

    ferry_log_set_ident("echo_upper");
    while ((opt = getopt_long(argc, argv, "l:uhV" CLI_SERVER_SHORTOPTS, longopts, NULL)) != -1) {
        int used = cli_server_option("echo_upper", opt, optarg, &opts);
        if (used < 0)
            return 2;
        if (used)
            continue;
        switch (opt) {
        case 'l': listen = optarg; break;
        case 'u': udp = 1; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("echo_upper (ferry) %s\n", FERRY_VERSION); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }

    if (udp)
        h.on_datagram = on_datagram;
    else
        h.on_data = on_data;

    r = ferry_server_new(&opts, &s);
    if (r < 0)
        goto fail;
    r = ferry_server_listen(s, listen, udp ? FERRY_SOCK_DGRAM : FERRY_SOCK_STREAM, &h, NULL);
    if (r < 0)
        goto fail;
    r = ferry_server_run(s);
    if (r < 0)
        goto fail;
    ferry_server_free(s);
    return 0;

fail:
    fprintf(stderr, "echo_upper: %s: %s\n", listen, ferry_strerror(r));
    ferry_server_free(s);
    return 1;
}
