/*
 * error.h - one error convention for all of libferry.
 *
 * Every function that can fail returns 0 (or a non-negative count) on
 * success and a negative code on failure.  System errors are negative errno
 * values (-ECONNRESET, -ENOMEM, ...); libferry's own conditions live in a
 * reserved block from -4000 down so they can never collide with errno.
 * "Need more input" is never an error: parsers report it as a distinct,
 * non-negative result (see frame.h).
 */
#ifndef FERRY_ERROR_H
#define FERRY_ERROR_H

#include "ferry/common.h"

FERRY_BEGIN_DECLS

/* X(name, value, message): the single list the enum, ferry_strerror() and
 * ferry_err_name() are generated from. */
#define FERRY_ERRNO_MAP(X)                                                    \
    X(EOF,        -4001, "connection closed by peer")                         \
    X(TRUNCATED,  -4002, "connection closed in the middle of a frame")        \
    X(HDR_EMPTY,  -4003, "frame header length is zero")                       \
    X(HDR_TOOBIG, -4004, "frame header length exceeds the limit")             \
    X(JSON,       -4005, "frame header is not valid JSON")                    \
    X(UTF8,       -4006, "frame header is not valid UTF-8")                   \
    X(NOT_OBJECT, -4007, "frame header is not a JSON object")                 \
    X(DUP_KEY,    -4008, "frame header has a duplicate key")                  \
    X(SIZE_TYPE,  -4009, "frame size is not a number")                        \
    X(SIZE_NEG,   -4010, "frame size is negative")                            \
    X(SIZE_FRAC,  -4011, "frame size is not a whole number")                  \
    X(SIZE_RANGE, -4012, "frame size is out of range")                        \
    X(NUM_RANGE,  -4013, "number in frame header exceeds 64 bits")           \
    X(BODY_TOOBIG,-4014, "frame body exceeds the limit")                      \
    X(ADDR,       -4015, "invalid address")                                   \
    X(AUTH,       -4016, "authentication failed")                             \
    X(PROTO,      -4017, "protocol error")                                    \
    X(BUSY,       -4018, "too many connections")                              \
    X(CLOSED,     -4019, "connection is closed")                              \
    X(STATE,      -4020, "operation not valid in this state")                 \
    X(UNSUPPORTED,-4021, "operation not supported by this transport or model") \
    X(TLS,        -4022, "TLS handshake or record failure")                   \
    X(NOTTLS,     -4023, "peer does not speak TLS")

enum ferry_errno {
#define FERRY_ERR_ENUM_(name, value, msg) FERRY_E##name = (value),
    FERRY_ERRNO_MAP(FERRY_ERR_ENUM_)
#undef FERRY_ERR_ENUM_
};

/* A human-readable, one-line message for any code this library returns
 * (ferry codes and negative errno values alike).  The string is static. */
FERRY_EXPORT const char *ferry_strerror(int err);

/* The symbolic name ("FERRY_EHDR_TOOBIG", "ECONNRESET") of a code, for logs
 * and tests.  The string is static; unknown codes give "UNKNOWN". */
FERRY_EXPORT const char *ferry_err_name(int err);

FERRY_END_DECLS

#endif
