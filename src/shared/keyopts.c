/*
 * keyopts.c - parsing and checking the per-key restrictions of ferryd's
 * keys file (keyopts.h).
 *
 * The grammar is small on purpose (no spaces outside quotes, one value
 * syntax for every option), so that a typo is an error at the line where
 * it is rather than a restriction silently not applied.
 */
#include "keyopts.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Bytes of one value: the longest is root= */
#define VALUE_MAX PATH_MAX

__attribute__((format(printf, 3, 4)))
static int fail(char *why, size_t why_len, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* One value at *p (bare up to ',' or the end, or double-quoted) into out;
 * *p is left after it.  0, or -EINVAL. */
static int take_value(const char **p, char *out, size_t out_len, const char *opt,
                      char *why, size_t why_len)
{
    const char *s = *p;
    size_t n = 0;

    if (*s == '"') {
        for (s++; *s != '"'; s++) {
            if (*s == '\0')
                return fail(why, why_len, "%s: the quote is not closed", opt);
            if (*s == '\\' && (s[1] == '"' || s[1] == '\\'))
                s++;
            if ((unsigned char)*s < ' ' || *s == 0x7f)
                return fail(why, why_len, "%s: a control character in the value", opt);
            if (n + 1 >= out_len)
                return fail(why, why_len, "%s: the value is too long", opt);
            out[n++] = *s;
        }
        s++;
    } else {
        for (; *s && *s != ','; s++) {
            if ((unsigned char)*s <= ' ' || *s == '"' || *s == 0x7f)
                return fail(why, why_len, "%s: a blank, quote or control character in an "
                            "unquoted value (quote it)", opt);
            if (n + 1 >= out_len)
                return fail(why, why_len, "%s: the value is too long", opt);
            out[n++] = *s;
        }
    }
    out[n] = '\0';
    *p = s;
    return 0;
}

/* "ADDR" or "ADDR/BITS", with no bits set past the prefix. */
static int parse_net(const char *text, struct keyopt_net *net)
{
    char addr[INET6_ADDRSTRLEN + 1];
    const char *slash = strchr(text, '/');
    size_t len = slash ? (size_t)(slash - text) : strlen(text);
    int max, bits = -1;

    if (len == 0 || len >= sizeof addr)
        return -EINVAL;
    memcpy(addr, text, len);
    addr[len] = '\0';
    memset(net, 0, sizeof *net);
    if (inet_pton(AF_INET, addr, net->addr) == 1) {
        net->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, addr, net->addr) == 1) {
        net->family = AF_INET6;
        max = 128;
    } else {
        return -EINVAL;
    }
    if (slash) {
        const char *b = slash + 1;
        if (!*b || strlen(b) > 3 || strspn(b, "0123456789") != strlen(b) || (b[0] == '0' && b[1]))
            return -EINVAL;
        bits = 0;
        for (; *b; b++)
            bits = bits * 10 + (*b - '0');
        if (bits > max)
            return -EINVAL;
    }
    net->prefix = bits < 0 ? max : bits;
    /* 127.0.0.1/8 is most likely a mistake for 127.0.0.0/8 or /32. */
    for (int i = net->prefix; i < max; i++)
        if (net->addr[i / 8] & (0x80 >> (i % 8)))
            return -EINVAL;
    return 0;
}

static int parse_from(const char *value, struct keyopts *o, char *why, size_t why_len)
{
    char item[VALUE_MAX];
    const char *p = value;

    for (;;) {
        size_t n = strcspn(p, ",");
        if (n == 0 || n >= sizeof item)
            return fail(why, why_len, "from=\"%s\": an empty or overlong network", value);
        if (o->nfrom == KEYOPT_FROM_MAX)
            return fail(why, why_len, "from=\"%s\": more than 16 networks", value);
        memcpy(item, p, n);
        item[n] = '\0';
        if (parse_net(item, &o->from[o->nfrom]) < 0)
            return fail(why, why_len, "from: '%s' is not an address or ADDR/BITS network "
                        "(with no bits set past the prefix)", item);
        o->nfrom++;
        p += n;
        if (!*p)
            return 0;
        p++;
    }
}

int keyopts_parse(const char *text, struct keyopts *o, char *why, size_t why_len)
{
    char local[VALUE_MAX];
    const char *p = text;
    int seen_from = 0;

    memset(o, 0, sizeof *o);
    while (*p) {
        size_t n = strspn(p, "abcdefghijklmnopqrstuvwxyz-");
        char opt[16];

        if (n == 0 || n >= sizeof opt)
            return fail(why, why_len, "an option name expected at '%.40s'", p);
        memcpy(opt, p, n);
        opt[n] = '\0';
        p += n;
        if (strcmp(opt, "files-only") == 0 || strcmp(opt, "read-only") == 0) {
            unsigned bit = opt[0] == 'f' ? KEYOPT_FILES_ONLY : KEYOPT_READ_ONLY;
            if (*p == '=')
                return fail(why, why_len, "%s takes no value", opt);
            if (o->flags & bit)
                return fail(why, why_len, "%s given twice", opt);
            o->flags |= bit;
        } else if (strcmp(opt, "command") == 0 || strcmp(opt, "root") == 0 ||
                   strcmp(opt, "from") == 0) {
            if (*p++ != '=')
                return fail(why, why_len, "%s needs a value", opt);
            if (take_value(&p, local, sizeof local, opt, why, why_len) < 0)
                return -EINVAL;
            if (opt[0] == 'c') {
                if (o->command[0])
                    return fail(why, why_len, "%s given twice", opt);
                if (!local[0] || strlen(local) >= sizeof o->command)
                    return fail(why, why_len, "%s: empty, or over 1023 bytes", opt);
                memcpy(o->command, local, strlen(local) + 1);
            } else if (opt[0] == 'r') {
                if (o->root[0])
                    return fail(why, why_len, "%s given twice", opt);
                if (local[0] != '/')
                    return fail(why, why_len, "root=%s: not an absolute path", local);
                memcpy(o->root, local, strlen(local) + 1);
            } else {
                if (seen_from++)
                    return fail(why, why_len, "%s given twice", opt);
                if (parse_from(local, o, why, why_len) < 0)
                    return -EINVAL;
            }
        } else {
            return fail(why, why_len, "unknown option '%s' (files-only, read-only, command=, "
                        "root=, from=)", opt);
        }
        if (*p == ',' && p[1])
            p++;
        else if (*p)
            return fail(why, why_len, "',' or the end of the line expected at '%.40s'", p);
    }
    return 0;
}

int keyopts_from_ok(const struct keyopts *o, const struct sockaddr *peer)
{
    static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    uint8_t addr[16];
    int family;

    if (o->nfrom == 0)
        return 1;
    if (!peer)
        return 0;
    if (peer->sa_family == AF_INET) {
        family = AF_INET;
        memcpy(addr, &((const struct sockaddr_in *)(const void *)peer)->sin_addr, 4);
    } else if (peer->sa_family == AF_INET6) {
        const uint8_t *a6 = ((const struct sockaddr_in6 *)(const void *)peer)->sin6_addr.s6_addr;
        family = memcmp(a6, mapped, sizeof mapped) == 0 ? AF_INET : AF_INET6;
        memcpy(addr, family == AF_INET ? a6 + 12 : a6, family == AF_INET ? 4 : 16);
    } else {
        return 0;
    }
    for (int i = 0; i < o->nfrom; i++) {
        const struct keyopt_net *net = &o->from[i];
        int bits = net->prefix, whole = bits / 8, rest = bits % 8;
        if (net->family != family || memcmp(net->addr, addr, (size_t)whole) != 0)
            continue;
        if (rest && ((net->addr[whole] ^ addr[whole]) & (0xff00 >> rest) & 0xff))
            continue;
        return 1;
    }
    return 0;
}

int keyopts_any(const struct keyopts *o)
{
    return o->flags || o->command[0] || o->root[0] || o->nfrom;
}
