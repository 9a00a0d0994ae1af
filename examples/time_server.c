/*
 * time_server - the tutorial's UDP time server, on libferry, plus the two
 * standard time services the tutorial's "NTP server" is named after.
 *
 *   time_server [--listen ADDR] [--rfc868 ADDR] [--sntp ADDR]
 *
 * One ferry_server carries every service, each listener with its handler:
 *
 *   --listen  the tutorial's service (UDP): a datagram holds a strftime(3)
 *             format, empty meaning "%Y-%m-%d %X"; the reply is the local
 *             time in that format, or a short "error: ..." text.
 *   --rfc868  RFC 868 Time protocol on TCP and UDP (same port): 4 bytes,
 *             big-endian seconds since 1900-01-01 UTC.
 *   --sntp    an SNTP server (RFC 4330) on UDP.
 *
 * A UDP service answers whatever source address a datagram claims, so a
 * forged source turns it into a reflector aimed at someone else.  None of
 * these replies may be much bigger than the request that caused it: see
 * reply_limit() for the strftime service; RFC 868 answers 4 bytes and SNTP
 * 48 bytes to at least 48.
 */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ferry/ferry.h"

#define DEFAULT_LISTEN "127.0.0.1:9000"   /* the tutorial's ip_port */
#define DEFAULT_FORMAT "%Y-%m-%d %X"      /* what an empty datagram asks for */

#define REPLY_MAX    512   /* no strftime reply is ever longer */
#define REPLY_FLOOR   64   /* every request may have this much... */
#define REPLY_FACTOR   4   /* ...or this many bytes per request byte */

/* Seconds from 1900-01-01 (RFC 868 and NTP) to 1970-01-01 (Unix). */
#define EPOCH_1900_OFFSET 2208988800u

#define NTP_PACKET_LEN   48
#define NTP_MODE_CLIENT   3
#define NTP_MODE_SERVER   4
/* Stratum 1 with reference "LOCL" is RFC 4330's "uncalibrated local
 * clock": the server vouches for nothing beyond its host's clock. */
#define NTP_STRATUM       1
/* log2 seconds: about a microsecond, what a user process reading
 * CLOCK_REALTIME and answering a datagram can honestly claim. */
#define NTP_PRECISION   (-20)

enum exit_code { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Both protocols count seconds in 32 bits from 1900, which wraps in 2036:
 * reducing modulo 2^32 is what NTP's era 1 and RFC 868 clients expect. */
static uint32_t seconds_since_1900(time_t unix_seconds)
{
    return (uint32_t)((uint64_t)unix_seconds + EPOCH_1900_OFFSET);
}

static void send_reply(const struct ferry_datagram *d, const void *buf, size_t len)
{
    int r = ferry_datagram_reply(d, buf, len);
    if (r < 0) {
        char peer[FERRY_ADDRSTRLEN];
        ferry_log_debug("reply to %s: %s",
                        ferry_addr_format((const struct sockaddr *)&d->peer.ss, d->peer.len, peer),
                        ferry_strerror(r));
    }
}

/* ---- the tutorial's strftime service ------------------------------------- */

/*
 * The most a reply to a req_len-byte request may carry: max(64, 4 * req_len)
 * bytes, and never over 512.  Every datagram also carries at least 28 bytes
 * of IPv4 and UDP headers, so counted on the wire a reply is under 4 times
 * its request (an empty request is 28 bytes, its reply at most 92), while
 * every everyday format fits: the default needs 19 bytes, "%c" 24.
 */
static size_t reply_limit(size_t req_len)
{
    size_t limit = req_len >= REPLY_MAX / REPLY_FACTOR ? REPLY_MAX : req_len * REPLY_FACTOR;
    return limit < REPLY_FLOOR ? REPLY_FLOOR : limit;
}

/* Length of the multi-byte UTF-8 sequence starting at p, or 0 when it is
 * malformed (truncated, overlong, a surrogate, past U+10FFFF) or encodes
 * a C1 control character (U+0080..U+009F). */
static size_t utf8_char_len(const uint8_t *p, size_t avail)
{
    uint32_t cp;
    size_t n;

    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        n = 2;
        cp = p[0] & 0x1fu;
    } else if ((p[0] & 0xf0) == 0xe0) {
        n = 3;
        cp = p[0] & 0x0fu;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        n = 4;
        cp = p[0] & 0x07u;
    } else {
        return 0;
    }
    if (avail < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3fu);
    }
    if (cp < 0xa0 || (n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/*
 * The tutorial decodes the datagram as UTF-8 and hands it to strftime.  We
 * accept printable UTF-8 text whose conversions are all ones glibc
 * documents: %[flag][width][E|O]conversion, the width at most 3 digits.
 * Anything else is refused rather than passed to libc to interpret.
 * Returns NULL for a good format, else the error text to send back.
 */
static const char *check_format(const uint8_t *p, size_t len)
{
    static const char flags[] = "_-0^#";
    static const char conversions[] = "aAbBcCdDeFgGhHIjklmMnpPrRsStTuUVwWxXyYzZ%";
    size_t i = 0;

    while (i < len) {
        if (p[i] == '%') {
            size_t digits = 0;
            i++;
            while (i < len && p[i] != '\0' && strchr(flags, p[i]))
                i++;
            while (i < len && p[i] >= '0' && p[i] <= '9') {
                if (++digits > 3)
                    return "error: field width too large";
                i++;
            }
            if (i < len && (p[i] == 'E' || p[i] == 'O'))
                i++;
            if (i >= len || p[i] == '\0' || !strchr(conversions, p[i]))
                return "error: invalid conversion in format";
            i++;
        } else if (p[i] < 0x20 || p[i] == 0x7f) {
            return "error: format must be printable text";
        } else if (p[i] < 0x80) {
            i++;
        } else {
            size_t n = utf8_char_len(p + i, len - i);
            if (n == 0)
                return "error: format must be printable UTF-8";
            i += n;
        }
    }
    return NULL;
}

static void on_strftime(const struct ferry_datagram *d, void *arg)
{
    /* Both with room for a leading sentinel byte and the terminating NUL. */
    char fmt[1 + REPLY_MAX + 1];
    char out[1 + REPLY_MAX + 1];
    const char *err = NULL;
    size_t limit = reply_limit(d->len), n;
    time_t now = time(NULL);
    struct tm tm;
    (void)arg;

    if (d->len > REPLY_MAX) {
        err = "error: format too long";
        goto fail;
    }
    err = check_format(d->data, d->len);
    if (err)
        goto fail;
    if (!localtime_r(&now, &tm)) {
        err = "error: cannot read the local time";
        goto fail;
    }

    /* strftime returns 0 both for an empty result ("%p" in some locales)
     * and for one that does not fit; a sentinel byte in front of the
     * format makes every result non-empty, so 0 can only mean "too long". */
    fmt[0] = '#';
    if (d->len == 0) {
        memcpy(fmt + 1, DEFAULT_FORMAT, sizeof DEFAULT_FORMAT);
    } else {
        memcpy(fmt + 1, d->data, d->len);
        fmt[1 + d->len] = '\0';
    }
    /* The format comes from the network by design; check_format vetted it. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    n = strftime(out, 1 + limit + 1, fmt, &tm);
#pragma GCC diagnostic pop
    if (n == 0) {
        err = "error: format output too long";
        goto fail;
    }
    send_reply(d, out + 1, n - 1);
    return;

fail:
    /* Every error text is shorter than REPLY_FLOOR, so refusing never
     * amplifies more than answering would. */
    if (ferry_log_get_level() >= FERRY_LOG_DEBUG) {
        char peer[FERRY_ADDRSTRLEN];
        ferry_log_debug("strftime request of %zu bytes from %s refused: %s", d->len,
                        ferry_addr_format((const struct sockaddr *)&d->peer.ss, d->peer.len, peer),
                        err);
    }
    send_reply(d, err, strlen(err));
}

/* ---- RFC 868 Time protocol ------------------------------------------------ */

/* TCP: the time, then close; the protocol has the client send nothing. */
static int on_rfc868_open(struct ferry_conn *c, void *arg)
{
    uint8_t msg[4];
    int r;
    (void)arg;

    put_be32(msg, seconds_since_1900(time(NULL)));
    r = ferry_conn_write(c, msg, sizeof msg);
    if (r < 0)
        return r;
    ferry_conn_close(c);   /* after the 4 bytes are flushed */
    return 0;
}

/* Whatever a TCP client sends anyway is ignored. */
static int on_rfc868_data(struct ferry_conn *c, const void *data, size_t len, void *arg)
{
    (void)c, (void)data, (void)len, (void)arg;
    return 0;
}

/* UDP: any datagram, even an empty one, is a request. */
static void on_rfc868_datagram(const struct ferry_datagram *d, void *arg)
{
    uint8_t msg[4];
    (void)arg;

    put_be32(msg, seconds_since_1900(time(NULL)));
    send_reply(d, msg, sizeof msg);
}

/* ---- SNTP (RFC 4330) ------------------------------------------------------ */

/* The NTP 64-bit timestamp of now: seconds since 1900 and a binary
 * fraction of a second. */
static void ntp_timestamp(uint8_t out[8])
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    put_be32(out, seconds_since_1900(ts.tv_sec));
    /* tv_nsec < 10^9, so tv_nsec * 2^32 stays below 2^62. */
    put_be32(out + 4, (uint32_t)(((uint64_t)ts.tv_nsec << 32) / 1000000000u));
}

/*
 * A request is at least 48 bytes (more when it carries extension fields or
 * a MAC, which we ignore), mode 3, version 3 or 4; anything else is dropped
 * without a word, as RFC 4330 lets a server do.  The reply is always 48
 * bytes, so it never outweighs its request.
 */
static void on_sntp(const struct ferry_datagram *d, void *arg)
{
    uint8_t reply[NTP_PACKET_LEN] = { 0 };
    uint8_t received[8];
    unsigned version, mode;
    (void)arg;

    ntp_timestamp(received);   /* first: as near to the arrival as we can see */
    if (d->len < NTP_PACKET_LEN)
        return;
    version = (d->data[0] >> 3) & 7u;
    mode = d->data[0] & 7u;
    if (mode != NTP_MODE_CLIENT || (version != 3 && version != 4))
        return;

    reply[0] = (uint8_t)(0u << 6 | version << 3 | NTP_MODE_SERVER);   /* LI 0: no warning */
    reply[1] = NTP_STRATUM;
    reply[2] = d->data[2];                 /* poll interval: copied from the request */
    reply[3] = (uint8_t)(int8_t)NTP_PRECISION;
    /* Root delay and dispersion (bytes 4..11) stay 0: we are the reference. */
    memcpy(reply + 12, "LOCL", 4);
    memcpy(reply + 16, received, 8);       /* reference: the local clock, read just now */
    memcpy(reply + 24, d->data + 40, 8);   /* originate: the client's transmit time */
    memcpy(reply + 32, received, 8);
    ntp_timestamp(reply + 40);             /* transmit: last, just before sending */
    send_reply(d, reply, sizeof reply);
}

/* ---- main ----------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
        "usage: time_server [OPTIONS]\n"
        "Serve the time over UDP like the tutorial's time server: each datagram is a\n"
        "strftime format (empty: \"%%Y-%%m-%%d %%X\") and the reply is the local time in it.\n"
        "Formats must be printable UTF-8 using glibc's conversions; a reply never exceeds\n"
        "max(64, 4 x request) bytes nor %d, so the service cannot be used to amplify\n"
        "traffic: a format whose output is longer gets \"error: format output too long\".\n"
        "\n"
        "  -l, --listen ADDR   the strftime service, UDP (default " DEFAULT_LISTEN ")\n"
        "  -r, --rfc868 ADDR   also serve RFC 868 Time on TCP and UDP at ADDR (port 37)\n"
        "  -s, --sntp ADDR     also serve SNTP (RFC 4330) on UDP at ADDR (port 123)\n"
        "  -v, --verbose       log every refused request\n"
        "  -h, --help          show this help\n"
        "  -V, --version       show the version\n"
        "\n"
        "ADDR is HOST:PORT, [V6]:PORT or *:PORT; port 0 picks a free one.  SIGINT or\n"
        "SIGTERM stops the server; it exits 0 then, 1 on errors, 2 on bad usage.\n",
        REPLY_MAX);
}

/* Bind one service and say where it is, so a script that asked for port 0
 * can read the real port back. */
static int add_service(struct ferry_server *s, const char *service, const char *endpoint,
                       enum ferry_sock_type type, const struct ferry_handler *h,
                       char bound[FERRY_ADDRSTRLEN])
{
    const char *proto = type == FERRY_SOCK_DGRAM ? "udp" : "tcp";
    int r = ferry_server_listen(s, endpoint, type, h, bound);

    if (r < 0) {
        ferry_log_error("cannot serve %s on %s %s: %s", service, proto, endpoint, ferry_strerror(r));
        return r;
    }
    ferry_log_info("%s service on %s %s", service, proto, bound);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "listen", required_argument, NULL, 'l' },
        { "rfc868", required_argument, NULL, 'r' },
        { "sntp", required_argument, NULL, 's' },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    static const struct ferry_handler strftime_handler = { .on_datagram = on_strftime };
    static const struct ferry_handler rfc868_tcp_handler = {
        .on_open = on_rfc868_open, .on_data = on_rfc868_data,
    };
    static const struct ferry_handler rfc868_udp_handler = { .on_datagram = on_rfc868_datagram };
    static const struct ferry_handler sntp_handler = { .on_datagram = on_sntp };
    /* One event loop is plenty: no handler here ever blocks. */
    struct ferry_server_opts opts = { .model = FERRY_MODEL_EVENT, .handle_signals = 1 };
    const char *listen = DEFAULT_LISTEN, *rfc868 = NULL, *sntp = NULL;
    char bound[FERRY_ADDRSTRLEN], rfc868_bound[FERRY_ADDRSTRLEN];
    struct ferry_server *s = NULL;
    int status = EXIT_RUNTIME, opt, r;

    ferry_log_set_ident("time_server");
    while ((opt = getopt_long(argc, argv, "l:r:s:vhV", longopts, NULL)) != -1) {
        switch (opt) {
        case 'l': listen = optarg; break;
        case 'r': rfc868 = optarg; break;
        case 's': sntp = optarg; break;
        case 'v': ferry_log_set_level(FERRY_LOG_DEBUG); break;
        case 'h': usage(stdout); return EXIT_OK;
        case 'V': printf("time_server (ferry) %s\n", FERRY_VERSION); return EXIT_OK;
        default:
            fprintf(stderr, "time_server: try 'time_server --help'\n");
            return EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "time_server: unexpected argument '%s' (try --help)\n", argv[optind]);
        return EXIT_USAGE;
    }
    const struct { const char *option, *text; } endpoints[] = {
        { "--listen", listen }, { "--rfc868", rfc868 }, { "--sntp", sntp },
    };
    /* A malformed endpoint is bad usage, told apart from a bind that fails. */
    for (size_t i = 0; i < sizeof endpoints / sizeof endpoints[0]; i++) {
        struct ferry_addr a;
        if (endpoints[i].text && (r = ferry_addr_parse(endpoints[i].text, -1, &a)) < 0) {
            fprintf(stderr, "time_server: %s '%s': %s\n", endpoints[i].option, endpoints[i].text,
                    ferry_strerror(r));
            return EXIT_USAGE;
        }
    }
    tzset();   /* localtime_r need not read TZ itself */

    r = ferry_server_new(&opts, &s);
    if (r < 0) {
        ferry_log_error("cannot create the server: %s", ferry_strerror(r));
        goto out;
    }
    if (add_service(s, "strftime", listen, FERRY_SOCK_DGRAM, &strftime_handler, bound) < 0)
        goto out;
    if (rfc868) {
        if (add_service(s, "rfc868", rfc868, FERRY_SOCK_STREAM, &rfc868_tcp_handler, rfc868_bound) < 0)
            goto out;
        /* UDP on the port TCP got, as RFC 868 has both on port 37: this
         * matters when port 0 asked for an ephemeral one. */
        if (add_service(s, "rfc868", rfc868_bound, FERRY_SOCK_DGRAM, &rfc868_udp_handler, bound) < 0)
            goto out;
    }
    if (sntp && add_service(s, "sntp", sntp, FERRY_SOCK_DGRAM, &sntp_handler, bound) < 0)
        goto out;

    r = ferry_server_run(s);
    if (r < 0) {
        ferry_log_error("server failed: %s", ferry_strerror(r));
        goto out;
    }
    status = EXIT_OK;

out:
    ferry_server_free(s);
    return status;
}
