/*
 * frame_echo - the simplest server of ferry's own framing.
 *
 * Every frame (u32 LE header_len | JSON object header | body of "size"
 * bytes) comes back with the same header and the same body.  Bodies are
 * streamed chunk by chunk as they arrive, never held whole, so a body of
 * any declared size (past 4 GiB) passes through bounded memory; the server
 * stops reading a client whose replies are backed up.  One event-style
 * handler serves all three concurrency models.
 *
 *   frame_echo [--listen ADDR] [--model event|thread|fork] ...
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/ferry.h"
#include "cli.h"

#define DEFAULT_LISTEN "127.0.0.1:8081"

struct echo_conn {
    uint64_t body_left;   /* body bytes of the current frame still to echo */
    int in_frame;         /* a header was echoed and its body is not done */
    int stop_at_boundary; /* the server is stopping: close after this frame */
};

static int on_open(struct ferry_conn *c, void *arg)
{
    struct echo_conn *ec = calloc(1, sizeof *ec);
    (void)arg;

    if (!ec)
        return -ENOMEM;
    ferry_conn_set_data(c, ec);
    return 0;
}

/* The header goes back as it came, byte for byte: the parser has already
 * held it to the limits and checked it is a JSON object with a valid size,
 * so it is a frame our own parser accepts, and nothing is re-encoded.  The
 * prefix is the header's length, u32 little-endian (PROTOCOL.md 1.1). */
static int echo_header(struct ferry_conn *c, struct echo_conn *ec, struct ferry_frame_event *ev)
{
    uint32_t n = (uint32_t)ev->raw_header_len;
    uint8_t prefix[4] = { (uint8_t)n, (uint8_t)(n >> 8), (uint8_t)(n >> 16), (uint8_t)(n >> 24) };
    struct iovec iov[2] = { { prefix, sizeof prefix }, { (void *)ev->raw_header, ev->raw_header_len } };
    int r = ferry_conn_writev(c, iov, 2);

    if (r < 0)
        return r;
    ec->body_left = ev->body_size;
    ec->in_frame = ev->body_size > 0;
    return 0;
}

static int send_error(struct ferry_conn *c, int err)
{
    json_t *h = json_pack("{s:s, s:s}", "error", ferry_err_name(err), "message", ferry_strerror(err));
    int r;

    if (!h)
        return -ENOMEM;
    r = ferry_conn_write_frame(c, h, NULL, 0);
    json_decref(h);
    return r;
}

static int on_frame(struct ferry_conn *c, struct ferry_frame_event *ev, void *arg)
{
    struct echo_conn *ec = ferry_conn_data(c);
    int r = 0;
    (void)arg;

    switch (ev->type) {
    case FERRY_FRAME_HEADER:
        r = echo_header(c, ec, ev);
        json_decref(ev->header);
        break;
    case FERRY_FRAME_BODY:
        /* The chunk is borrowed from the read buffer: ferry_conn_write
         * copies whatever the socket does not take now, and the server
         * pauses reading this client while that queue is over its mark. */
        r = ferry_conn_write(c, ev->chunk, ev->chunk_len);
        ec->body_left -= ev->chunk_len;   /* the parser never passes the declared size */
        if (ec->body_left == 0)
            ec->in_frame = 0;
        break;
    case FERRY_FRAME_ERROR:
        /* The peer broke framing: say why in a frame of our own; the server
         * closes the connection once it is sent. */
        r = send_error(c, ev->error);
        break;
    case FERRY_FRAME_END:
    case FERRY_FRAME_NEED_MORE:
        break;
    }
    if (r < 0)
        return r;
    /* The frame boundary is counted here rather than taken from the END
     * event, so a stop is honoured as soon as the last body byte is echoed. */
    if (!ec->in_frame && ec->stop_at_boundary)
        ferry_conn_close(c);
    return 0;
}

/* A graceful stop must not cut a reply in half: a client in the middle of
 * a frame gets the rest of it echoed first. */
static void on_shutdown(struct ferry_conn *c, void *arg)
{
    struct echo_conn *ec = ferry_conn_data(c);
    (void)arg;

    if (!ec->in_frame) {
        ferry_conn_close(c);
        return;
    }
    ec->stop_at_boundary = 1;
    ferry_log_info("conn %llu (%s): stopping after the frame in progress (%llu body bytes left)",
                   (unsigned long long)ferry_conn_id(c), ferry_conn_peer(c),
                   (unsigned long long)ec->body_left);
}

static void on_close(struct ferry_conn *c, int reason, void *arg)
{
    (void)reason;
    (void)arg;
    free(ferry_conn_data(c));
    ferry_conn_set_data(c, NULL);
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: frame_echo [OPTIONS]\n"
        "Answer every ferry frame (u32 LE length | JSON header | body) with the same\n"
        "header and body.  Bodies stream through; any declared size is fine.\n"
        "\n"
        "  -l, --listen ADDR        endpoint: HOST:PORT, [V6]:PORT or unix:/PATH (default " DEFAULT_LISTEN ")\n"
        "      --max-header BYTES   largest accepted JSON header (default 65536)\n"
        CLI_SERVER_USAGE
        "  -h, --help               show this help\n"
        "  -V, --version            show the version\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "listen", required_argument, NULL, 'l' },
        { "max-header", required_argument, NULL, 'H' },
        CLI_SERVER_LONGOPTS,
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    struct ferry_server_opts opts = { .handle_signals = 1 };
    struct ferry_handler h = {
        .on_open = on_open,
        .on_frame = on_frame,
        .on_shutdown = on_shutdown,
        .on_close = on_close,
    };
    struct ferry_server *s = NULL;
    const char *listen = DEFAULT_LISTEN;
    int opt, r;
    long n;

    ferry_log_set_ident("frame_echo");
    while ((opt = getopt_long(argc, argv, "l:hV" CLI_SERVER_SHORTOPTS, longopts, NULL)) != -1) {
        int used = cli_server_option("frame_echo", opt, optarg, &opts);
        if (used < 0)
            return 2;
        if (used)
            continue;
        switch (opt) {
        case 'l': listen = optarg; break;
        case 'H':
            /* The parser holds up to this much per connection: keep it sane. */
            if (cli_int("frame_echo", "--max-header", optarg, 2, 16L * 1024 * 1024, &n) < 0)
                return 2;
            opts.frame_limits.max_header = (uint32_t)n;
            break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("frame_echo (ferry) %s\n", FERRY_VERSION); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    r = ferry_server_new(&opts, &s);
    if (r < 0)
        goto fail;
    r = ferry_server_listen(s, listen, FERRY_SOCK_STREAM, &h, NULL);
    if (r < 0)
        goto fail;
    r = ferry_server_run(s);
    if (r < 0)
        goto fail;
    ferry_server_free(s);
    return 0;

fail:
    fprintf(stderr, "frame_echo: %s: %s\n", listen, ferry_strerror(r));
    ferry_server_free(s);
    return 1;
}
