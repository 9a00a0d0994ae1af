/*
 * time_client - the tutorial's UDP time client, for time_server (or the
 * tutorial's own Python server).
 *
 *   time_client [--timeout SEC] ADDR [FORMAT...]
 *
 * Each FORMAT (an argument, else each line of stdin, with a ">>: " prompt
 * on a terminal) goes to the server as one datagram, an empty one asking
 * for the server's default; the reply, the time in that format, is
 * printed.  Like the tutorial's input().strip(), lines lose surrounding
 * whitespace; arguments are sent exactly as given.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ferry/ferry.h"
#include "cli.h"
#include "prompt.h"

#define DEFAULT_PORT     9000   /* the tutorial's */
#define DEFAULT_TIMEOUT  2      /* seconds */
#define SENDS            3      /* a request goes out at most this often */
/* time_server's replies to formats it refuses start so. */
#define ERROR_PREFIX     "error: "
#define ERROR_PREFIX_LEN (sizeof ERROR_PREFIX - 1)

enum exit_code { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A connected datagram socket: only the server's replies reach it, and a
 * closed port shows up as ECONNREFUSED instead of a silent timeout.  Its
 * bytes go through a transport like any connection's (a write is one
 * datagram, a read takes one), non-blocking: ask() does its own waiting,
 * for a deadline that spans resends.  0 and *out, or a negative code. */
static int open_socket(const struct ferry_addr *a, struct ferry_transport **out)
{
    int fd = socket(a->ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int r;

    *out = NULL;
    if (fd < 0)
        return -errno;
    /* A unix datagram client needs an address of its own to be answered
     * at; binding just the family asks Linux for an abstract one. */
    if (a->ss.ss_family == AF_UNIX) {
        sa_family_t family = AF_UNIX;
        if (bind(fd, (const struct sockaddr *)&family, sizeof family) < 0)
            goto fail;
    }
    if (connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0)
        goto fail;
    r = ferry_transport_new_fd(fd, out);
    if (r < 0) {
        close(fd);
        return r;
    }
    return 0;

fail:
    r = -errno;
    close(fd);
    return r;
}

/* Throw away replies that came too late for an earlier request (or
 * duplicates of them), so they are not taken for the next one's. */
static void drain(struct ferry_transport *t)
{
    char junk[1];
    ssize_t n;

    while ((n = ferry_transport_read(t, junk, sizeof junk)) >= 0 || n == -ECONNREFUSED)
        ;
}

/* Wait until fd is ready for events or the time is `until`: 1 ready, 0
 * not yet (time is up, or a signal), or -errno. */
static int wait_for(int fd, short events, uint64_t until)
{
    struct pollfd pfd = { .fd = fd, .events = events };
    uint64_t now = now_ms();
    int r;

    if (now >= until)
        return 0;
    r = poll(&pfd, 1, (int)(until - now));
    if (r < 0)
        return errno == EINTR ? 0 : -errno;
    return r > 0;
}

/* One datagram out; a full socket buffer is waited for (blocking send's
 * behaviour), at most until `until`. */
static int send_datagram(struct ferry_transport *t, const char *msg, size_t len, uint64_t until)
{
    struct iovec iov = { (void *)msg, len };

    for (;;) {
        ssize_t n = ferry_transport_writev(t, &iov, 1);
        int r;

        if (n >= 0)
            return 0;
        if (n != -EAGAIN)
            return (int)n;
        r = wait_for(ferry_transport_fd(t), POLLOUT, until);
        if (r < 0)
            return r;
        if (r == 0 && now_ms() >= until)
            return -ETIMEDOUT;
    }
}

/* Print a reply as text, but never let a server send control sequences to
 * our terminal: bytes below space other than tab and newline become '?'. */
static void print_reply(FILE *f, const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        int ch = p[i];
        if ((ch < 0x20 && ch != '\t' && ch != '\n') || ch == 0x7f)
            ch = '?';
        putc(ch, f);
    }
    putc('\n', f);
    fflush(f);
}

/*
 * Send one format and print the reply.  UDP may lose the request or the
 * reply, so the request is sent again every timeout/SENDS until a reply
 * arrives; -ETIMEDOUT once the whole timeout has passed without one.
 * Returns 0 for a time printed, 1 when the server answered with an error
 * (written to stderr), or a negative code.
 */
static int ask(struct ferry_transport *t, const char *fmt, size_t len, int timeout_ms)
{
    /* Any UDP payload fits, so no reply is ever cut short unnoticed. */
    static uint8_t reply[65536];
    uint64_t start = now_ms(), deadline = start + (uint64_t)timeout_ms;
    int r;

    drain(t);
    for (int i = 1; i <= SENDS; i++) {
        uint64_t until = start + (uint64_t)timeout_ms * (uint64_t)i / SENDS;

        r = send_datagram(t, fmt, len, deadline);
        if (r < 0)
            return r;
        while (now_ms() < until) {
            ssize_t n;

            r = wait_for(ferry_transport_fd(t), POLLIN, until);
            if (r < 0)
                return r;
            if (r == 0)
                continue;
            n = ferry_transport_read(t, reply, sizeof reply);
            if (n == -EAGAIN)
                continue;
            if (n < 0)
                return (int)n;
            /* The protocol's only error signal is the reply's text: a
             * format that itself starts so is not taken for one. */
            if ((size_t)n >= ERROR_PREFIX_LEN && memcmp(reply, ERROR_PREFIX, ERROR_PREFIX_LEN) == 0 &&
                !(len >= ERROR_PREFIX_LEN && memcmp(fmt, ERROR_PREFIX, ERROR_PREFIX_LEN) == 0)) {
                fflush(stdout);
                fputs("time_client: the server answered: ", stderr);
                print_reply(stderr, reply, (size_t)n);
                return 1;
            }
            print_reply(stdout, reply, (size_t)n);   /* 0: an empty datagram */
            return 0;
        }
    }
    return -ETIMEDOUT;
}

/* Like Python's str.strip(): drop leading and trailing whitespace. */
static char *strip(char *s, size_t *len)
{
    size_t n = *len;
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    s[n] = '\0';
    while (n > 0 && isspace((unsigned char)*s)) {
        s++;
        n--;
    }
    *len = n;
    return s;
}

static void report(const char *target, int err, long timeout_s)
{
    if (err == -ETIMEDOUT)
        fprintf(stderr, "time_client: no reply from %s within %ld s\n", target, timeout_s);
    else
        fprintf(stderr, "time_client: %s: %s\n", target, ferry_strerror(err));
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: time_client [OPTIONS] ADDR [FORMAT...]\n"
        "Ask the time server at ADDR (HOST[:PORT], default port %d) for the time in each\n"
        "strftime FORMAT (else each line of stdin; a >>: prompt on a terminal, Ctrl-D\n"
        "ends it) and print the replies.  An empty format asks for the server's default.\n"
        "\n"
        "  -t, --timeout SEC   give up on a request after SEC seconds (default %d); it is\n"
        "                      resent twice meanwhile in case a datagram was lost\n"
        "  -h, --help          show this help\n"
        "  -V, --version       show the version\n"
        "\n"
        "Exit status: 0 when every request was answered with a time, 1 when one was\n"
        "not or the server answered with an error (or on errors), 2 on bad usage.\n",
        DEFAULT_PORT, DEFAULT_TIMEOUT);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "timeout", required_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    struct ferry_addr addr;
    const char *target;
    char *line = NULL;
    size_t cap = 0;
    long timeout_s = DEFAULT_TIMEOUT;
    struct ferry_transport *t = NULL;
    int status = EXIT_RUNTIME, timeout_ms, opt, r;

    while ((opt = getopt_long(argc, argv, "t:hV", longopts, NULL)) != -1) {
        switch (opt) {
        case 't':
            if (cli_int("time_client", "--timeout", optarg, 1, 3600, &timeout_s) < 0)
                return EXIT_USAGE;
            break;
        case 'h': usage(stdout); return EXIT_OK;
        case 'V': printf("time_client (ferry) %s\n", FERRY_VERSION); return EXIT_OK;
        default:
            fprintf(stderr, "time_client: try 'time_client --help'\n");
            return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "time_client: missing ADDR (try --help)\n");
        return EXIT_USAGE;
    }
    target = argv[optind++];
    r = ferry_addr_parse(target, DEFAULT_PORT, &addr);
    if (r < 0) {
        fprintf(stderr, "time_client: %s: %s\n", target, ferry_strerror(r));
        return EXIT_USAGE;
    }
    r = open_socket(&addr, &t);
    if (r < 0) {
        report(target, r, timeout_s);
        return EXIT_RUNTIME;
    }

    timeout_ms = (int)timeout_s * 1000;
    if (optind < argc) {
        /* A refused format does not stop the others; the status says it. */
        status = EXIT_OK;
        for (r = 0; optind < argc && r >= 0; optind++) {
            r = ask(t, argv[optind], strlen(argv[optind]), timeout_ms);
            if (r != 0)
                status = EXIT_RUNTIME;
        }
        if (r < 0)
            report(target, r, timeout_s);
    } else {
        /* In a pipe the first unanswered request ends the run; at the
         * prompt it is reported and the user may try again. */
        ssize_t n;
        status = EXIT_OK;
        while ((n = prompt_line(&line, &cap)) >= 0) {
            size_t len = (size_t)n;
            char *fmt = strip(line, &len);
            r = ask(t, fmt, len, timeout_ms);
            if (r > 0)
                status = EXIT_RUNTIME;
            if (r < 0) {
                report(target, r, timeout_s);
                status = EXIT_RUNTIME;
                if (!prompt_interactive())
                    break;
            }
        }
    }

    free(line);
    ferry_transport_free(t);   /* closes the socket */
    return status;
}
