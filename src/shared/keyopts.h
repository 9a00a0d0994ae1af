/*
 * keyopts.h - the restrictions a line of ferryd's keys file may put on its
 * key, as ssh's authorized_keys options, comma-separated after the key:
 *
 *     NAME HEX [OPTION[,OPTION...]]
 *
 *   files-only         the file service only: no exec, no shell
 *   read-only          stat, list and get only (no put, mkdir, rm, and no
 *                      exec: a command could write anything)
 *   command="CMD"      exec runs CMD (with /bin/sh -c) whatever the client
 *                      asked for; the client's command is in the
 *                      FERRY_ORIGINAL_COMMAND variable, as ssh does; no file
 *                      service
 *   root=DIR           the file service serves DIR (absolute) instead of
 *                      ferryd's --root
 *   from=CIDR[,...]    only from these addresses (quote a list with commas:
 *                      from="127.0.0.2/32,::1/128"); from elsewhere the
 *                      key is as unknown
 *
 * A value is a bare word up to the next comma, or a double-quoted string in
 * which \" and \\ stand for " and \.  Parsing is strict: an unknown option,
 * a repeated one, or a bad value is an error.
 */
#ifndef FERRY_KEYOPTS_H
#define FERRY_KEYOPTS_H

#include <limits.h>
#include <stdint.h>
#include <sys/socket.h>

#define KEYOPT_FILES_ONLY  0x1u
#define KEYOPT_READ_ONLY   0x2u
#define KEYOPT_COMMAND_MAX 1024      /* bytes of command=, NUL included */
#define KEYOPT_FROM_MAX    16        /* networks in one from= */

struct keyopt_net {
    int family;                      /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    int prefix;                      /* bits that must match */
};

struct keyopts {
    unsigned flags;                  /* KEYOPT_* */
    char command[KEYOPT_COMMAND_MAX];   /* "" = the client's own command */
    char root[PATH_MAX];             /* "" = ferryd's --root */
    int nfrom;                       /* 0 = from anywhere */
    struct keyopt_net from[KEYOPT_FROM_MAX];
};

/* Parse the options text (after the key, trailing blanks removed) into o
 * (zeroed first).  0, or -EINVAL with a reason (no file or line: the
 * caller adds those) in why. */
int keyopts_parse(const char *text, struct keyopts *o, char *why, size_t why_len);

/* Whether a client at peer may use a key with these options: 1 when there
 * is no from= or peer is in one of its networks, 0 otherwise (peer NULL,
 * unknown, counts as elsewhere).  An IPv4-mapped IPv6 peer counts as IPv4. */
int keyopts_from_ok(const struct keyopts *o, const struct sockaddr *peer);

/* Whether any restriction applies. */
int keyopts_any(const struct keyopts *o);

#endif
