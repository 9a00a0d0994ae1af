/*
 * errcode.h - the codes ferryd, ferry and ferry-bench add to libferry's.
 *
 * One convention for the whole project: a failure is a negative code.
 * -errno values and libferry's FERRY_E* (-4001 ..., include/ferry/error.h)
 * are the library's; what only the programs can fail at (a path the
 * sandbox refuses, a request the server turned down, a connection lost
 * mid-transfer) lives in the one table below, from -4100 down, so every
 * code in the project has exactly one name and one message, and
 * app_strerror() describes any of them.
 */
#ifndef FERRY_SHARED_ERRCODE_H
#define FERRY_SHARED_ERRCODE_H

/* X(name, value, message) */
#define FERRY_APP_ERRNO_MAP(X)                                                         \
    /* ferryd: starting a command */                                                  \
    X(CWD,           -4100, "the working directory cannot be used")                   \
    /* ferryd: paths beneath the served root */                                       \
    X(PATH_EMPTY,    -4200, "empty path")                                             \
    X(PATH_ABSOLUTE, -4201, "absolute path (paths are relative to the served root)")  \
    X(PATH_DOTDOT,   -4202, "'..' is not allowed in a path")                          \
    X(PATH_CONTROL,  -4203, "control character in path")                              \
    X(PATH_NAMELONG, -4204, "file name too long")                                     \
    X(PATH_LONG,     -4205, "path too long")                                          \
    X(PATH_SLASH,    -4206, "repeated or trailing '/' in path")                       \
    X(PATH_DOT,      -4207, "'.' or '..' cannot be used here")                        \
    X(PATH_ESCAPE,   -4208, "path leaves the served root")                            \
    X(PATH_SYMLINK,  -4209, "path goes through a symbolic link that is not followed") \
    X(PATH_DEPTH,    -4210, "directory tree too deep")                                \
    /* the client side of a session */                                                \
    X(REMOTE,        -4300, "the server refused the request")                         \
    X(LOST,          -4301, "the connection was lost")                                \
    X(BADPROOF,      -4302, "the server's proof is wrong: it does not hold our key")  \
    X(AUTH_MISMATCH, -4303, "the server's authentication setting does not match ours") \
    X(TLS_REQUIRED,  -4304, "the server requires TLS")                                \
    X(KEEPALIVE,     -4305, "the server stopped answering (no reply to keepalive)")   \
    /* the client's handshake (handshake.c) */                                        \
    X(HS_NOT_HELLO,  -4310, "the server did not greet with hello")                    \
    X(HS_VERSION,    -4311, "the server speaks an unknown protocol version")          \
    X(HS_BODY,       -4312, "the server sent a body before authentication")           \
    X(HS_TLS_CLAIM,  -4313, "the server claims TLS authentication on a plaintext connection") \
    X(HS_METHOD,     -4314, "the server offers an unknown authentication method")     \
    X(HS_NONCE,      -4315, "the server sent a malformed nonce")                      \
    X(HS_NOT_WELCOME, -4316, "the server answered authentication with something else") \
    /* the key file and the keys file */                                           \
    X(KEY_NOTFILE,   -4500, "the key file is not a regular file")                     \
    X(KEY_EXPOSED,   -4501, "the key file is accessible by others")                   \
    X(KEY_FORMAT,    -4502, "the file does not hold a ferry key (64 hex digits)")     \
    X(KEYS_LINE,     -4503, "a line of the keys file is not 'NAME HEX'")             \
    /* ferryd's configuration file */                                             \
    X(CONF_EXPOSED,  -4510, "the configuration file can be changed by others")       \
    X(CONF_LINE,     -4511, "a line of the configuration file is not 'KEY VALUE'")   \
    /* ferry-bench: outcomes counted by kind */                                       \
    X(UNEXPECTED,    -4400, "a reply nobody asked for, or of the wrong size")         \
    X(EXIT_STATUS,   -4401, "the command exited with a status other than 0")          \
    X(EXIT_SIGNAL,   -4402, "the command was killed by a signal")                     \
    X(CHECKSUM,      -4403, "the checksum did not match")                             \
    X(OTHER,         -4404, "another failure")

enum ferry_app_errno {
#define APP_ERR_ENUM_(name, value, msg) FERRY_E##name = (value),
    FERRY_APP_ERRNO_MAP(APP_ERR_ENUM_)
#undef APP_ERR_ENUM_
};

/* A one-line message for any code in the project: the table above, then
 * libferry's codes and -errno (ferry_strerror).  Static strings. */
const char *app_strerror(int err);

/* The symbolic name ("FERRY_EPATH_ESCAPE", "ENOENT"); "UNKNOWN" if none. */
const char *app_err_name(int err);

#endif
