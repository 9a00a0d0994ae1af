/*
 * echo_client - the tutorials' echo client, for echo_upper (and any echo).
 *
 *   echo_client [--udp] [--wait SEC] ADDR [MESSAGE...]
 *
 * Each message (an argument, else each line of stdin, with a ">>: " prompt
 * on a terminal) is sent and its echo printed.  Over TCP the client reads
 * back exactly as many bytes as it sent: an echo preserves length, and
 * counting is what cures the tutorials' sticky packets.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ferry/ferry.h"
#include "cli.h"
#include "prompt.h"

#define REPLY_TIMEOUT_MS 5000

struct client {
    int fd;
    int udp;
    /* Every byte goes through it, for UDP too: on a connected datagram
     * socket a write is one datagram and a read takes one. */
    struct ferry_transport *t;
    char *reply;
    size_t reply_cap;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Connect, retrying for up to wait_ms while nobody listens yet (so a
 * script can start a server and this client together). */
static int connect_tcp(const char *target, long wait_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)wait_ms;
    for (;;) {
        /* Every address the name has, in turn (localhost may be ::1 first). */
        int fd = ferry_connect_host(target, 8080, 5000, NULL);
        if (fd >= 0 || (fd != -ECONNREFUSED && fd != -ENOENT) || now_ms() >= deadline)
            return fd;
        poll(NULL, 0, 50);
    }
}

static int open_udp(const struct ferry_addr *a)
{
    int fd = socket(a->ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

static int exchange(struct client *cl, const char *msg, size_t len)
{
    int r;

    if (len == 0)
        return 0;   /* an empty message has no echo to wait for */
    if (len + 1 > cl->reply_cap) {
        char *p = realloc(cl->reply, len + 1);
        if (!p)
            return -ENOMEM;
        cl->reply = p;
        cl->reply_cap = len + 1;
    }
    if (cl->udp) {
        /* One datagram out, one back (cut to our length, as recv would);
         * the transport's timeout bounds the wait (-ETIMEDOUT). */
        struct iovec iov = { (void *)msg, len };
        ssize_t n = ferry_transport_writev(cl->t, &iov, 1);
        if (n >= 0)
            n = ferry_transport_read(cl->t, cl->reply, len);
        if (n < 0)
            return (int)n;
        len = (size_t)n;
    } else {
        r = ferry_transport_write_full(cl->t, msg, len);
        if (r == 0)
            r = ferry_transport_read_full(cl->t, cl->reply, len);
        if (r < 0)
            return r;
    }
    fwrite(cl->reply, 1, len, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: echo_client [OPTIONS] ADDR [MESSAGE...]\n"
        "Send each MESSAGE (else each line of stdin; a >>: prompt on a terminal) to the\n"
        "echo server at ADDR and print the reply.  'quit' leaves the prompt.\n"
        "\n"
        "  -u, --udp          use UDP\n"
        "  -w, --wait SEC     keep retrying the connection for up to SEC seconds\n"
        "  -h, --help         show this help\n"
        "  -V, --version      show the version\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "udp", no_argument, NULL, 'u' },
        { "wait", required_argument, NULL, 'w' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    struct client cl = { .fd = -1 };
    struct ferry_addr addr;
    char *line = NULL;
    size_t cap = 0;
    long wait_s = 0;
    int opt, r, status = 1;

    while ((opt = getopt_long(argc, argv, "uw:hV", longopts, NULL)) != -1) {
        switch (opt) {
        case 'u': cl.udp = 1; break;
        case 'w':
            if (cli_int("echo_client", "--wait", optarg, 0, 3600, &wait_s) < 0)
                return 2;
            break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("echo_client (ferry) %s\n", FERRY_VERSION); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    const char *target = argv[optind++];
    r = ferry_addr_parse(target, 8080, &addr);
    if (r < 0) {
        fprintf(stderr, "echo_client: %s: %s\n", target, ferry_strerror(r));
        return 2;
    }
    cl.fd = cl.udp ? open_udp(&addr) : connect_tcp(target, wait_s * 1000);
    if (cl.fd >= 0 && ferry_transport_new_fd(cl.fd, &cl.t) < 0) {
        close(cl.fd);
        cl.fd = -ENOMEM;
    }
    if (cl.t && cl.udp)
        ferry_transport_set_timeout(cl.t, REPLY_TIMEOUT_MS);   /* UDP may lose either way */
    if (cl.fd < 0) {
        fprintf(stderr, "echo_client: cannot connect to %s: %s\n", target, ferry_strerror(cl.fd));
        return 1;
    }

    r = 0;
    if (optind < argc) {
        for (int i = optind; i < argc && r == 0; i++)
            r = exchange(&cl, argv[i], strlen(argv[i]));
    } else {
        ssize_t n;
        while (r == 0 && (n = prompt_line(&line, &cap)) >= 0) {
            if (prompt_interactive() && strcmp(line, "quit") == 0)
                break;
            r = exchange(&cl, line, (size_t)n);
        }
    }
    if (r < 0)
        fprintf(stderr, "echo_client: %s: %s\n", target, ferry_strerror(r));
    else
        status = 0;

    free(line);
    free(cl.reply);
    ferry_transport_free(cl.t);   /* closes fd */
    return status;
}
