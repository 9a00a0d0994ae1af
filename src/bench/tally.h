/*
 * tally.h - failures counted by kind (errno name, or one of ferry-bench's
 * own kinds), in a fixed table: counting never allocates.
 */
#ifndef FERRY_BENCH_TALLY_H
#define FERRY_BENCH_TALLY_H

#include <stdint.h>

/* ferry-bench's own kinds, numbered above every errno value so that both
 * travel as one negative return code (-EPROTO, -TALLY_EOF). */
#define TALLY_EOF        10001  /* the peer closed the connection */
#define TALLY_ERRFRAME   10002  /* a framed server answered with {"error": ...} */
#define TALLY_UNEXPECTED 10003  /* bytes nobody asked for, or a reply of the wrong size */
#define TALLY_OTHER      10004  /* the table is full: anything else */
#define TALLY_AUTH       10005  /* ferryd refused our proof: a wrong key */
#define TALLY_BADPROOF   10006  /* ferryd's proof is wrong: it does not hold our key */
#define TALLY_NOAUTH     10007  /* -k and --insecure-no-auth do not match the server's setting */
#define TALLY_EXIT_STATUS 10008 /* exec: the command exited with a status other than 0 */
#define TALLY_EXIT_SIGNAL 10009 /* exec: the command was killed by a signal */
#define TALLY_CHECKSUM   10010  /* put/get: a transfer's checksum did not match */
#define TALLY_TLS        10011  /* ferryd requires TLS, which ferry-bench does not speak */

#define TALLY_KINDS 16

struct tally {
    uint64_t total;
    int code[TALLY_KINDS];
    uint64_t n[TALLY_KINDS];
    unsigned used;
};

void tally_add(struct tally *t, int code, uint64_t n);
void tally_merge(struct tally *dst, const struct tally *src);

/* "ECONNREFUSED", "EOF", ... for a code tally_add was given. */
const char *tally_name(int code);

#endif
