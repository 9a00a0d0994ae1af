/*
 * proto.h - the names and limits of the ferry session protocol, shared by
 * ferryd and ferry.  docs/PROTOCOL.md (section 2) is the specification;
 * this header only keeps the two programs spelling it the same way.
 *
 * Every message is one ferry frame (frame.h) whose JSON header has a
 * "type" member; stdout, stderr and stdin data travel as frame bodies.
 */
#ifndef FERRY_PROTO_H
#define FERRY_PROTO_H

#define FERRY_DEFAULT_PORT 7171
#define PROTO_VERSION 1

/* Before authentication a peer may send only small headers and no body. */
#define PROTO_PREAUTH_MAX_HEADER 4096
#define PROTO_MAX_HEADER         (64 * 1024)
/* Largest stdin/stdout/stderr chunk in one frame. */
#define PROTO_MAX_CHUNK          (256 * 1024)
/* stdin flow control: a client may have at most this many stdin bytes
 * sent and not yet acknowledged by stdin-ack.  The server never has to
 * stop reading the connection for a slow command, so signals and a
 * vanished client are always noticed. */
#define PROTO_STDIN_WINDOW       (1024 * 1024)
#define PROTO_MAX_ARGS           4096
#define PROTO_AUTH_TIMEOUT_MS    10000

/* server -> client */
#define MSG_HELLO    "hello"     /* client first: {version}; server: {version, server, auth, nonce?} */
#define MSG_WELCOME  "welcome"   /* {proof} (no proof under auth "none") */
#define MSG_STDOUT   "stdout"    /* body: command output */
#define MSG_STDERR   "stderr"    /* body: command error output */
#define MSG_EXIT     "exit"      /* {status} | {signal, core}; "timeout": true when --timeout fired */
#define MSG_CWD      "cwd"       /* {path}: answer to chdir */
#define MSG_STDIN_ACK "stdin-ack" /* {bytes}: that much stdin was consumed; the window reopens */
#define MSG_ERROR    "error"     /* {code, message} */
#define MSG_CLOSING  "closing"   /* {reason, message}: why the server closes now (PROTOCOL.md 2.7) */
#define MSG_PONG     "pong"      /* answer to ping */
#define MSG_SKIPPED  "skipped"   /* an exec with "only_after_success" after a command that failed */

/* client -> server */
#define MSG_AUTH     "auth"      /* {version, key?, nonce, proof} | {version} (auth tls, none) */
#define MSG_EXEC     "exec"      /* {argv: [..]} | {shell: ".."} | {login: true}, cwd?, env?,
                                  * timeout?, stdin?, only_after_success?, tty? (PROTOCOL.md 2.8) */
#define MSG_STDIN    "stdin"     /* body: bytes for the command's stdin */
#define MSG_STDIN_EOF "stdin-eof"
#define MSG_SIGNAL   "signal"    /* {signal: "INT"|"TERM"|"HUP"|"QUIT"|"KILL"} */
#define MSG_CHDIR    "chdir"     /* {path} */
#define MSG_CD_NAMES "cd-names"  /* {path, prefix} -> {names, truncated}: completing a cd */
#define MSG_RESIZE   "resize"    /* {rows, cols, xpixel?, ypixel?}: the terminal's new size */
#define MSG_PING     "ping"      /* keepalive: answered with pong; not activity (PROTOCOL.md 2.7) */

/* file service (PROTOCOL.md 2.4), client -> server */
#define MSG_STAT     "stat"      /* {path} -> stat {path, kind, mode, filesize, mtime, mtime_nsec} */
#define MSG_LIST     "list"      /* {path} -> entries {entries: [..]}..., list-end {count} */
#define MSG_MKDIR    "mkdir"     /* {path, parents} -> ok */
#define MSG_RM       "rm"        /* {path, recursive} -> ok */
#define MSG_PUT      "put"       /* {path, filesize, mode, checksum, resume, fsync, mtime?, mtime_nsec?,
                                  * ack_ms? (to a server whose hello says put_ack)} */
#define MSG_PUT_END  "put-end"   /* {checksum} | {abort: true} */
#define MSG_GET      "get"       /* {path, checksum, offset?, prefix?} */
#define MSG_GLOB     "glob"      /* {path: pattern} -> matches {paths: [..]}..., glob-end {count} */
#define MSG_DATA     "data"      /* {offset, size} + body: file bytes, both directions.
                                    * A file's size is "filesize" everywhere: "size"
                                    * in a header always announces a body. */
/* ... server -> client */
#define MSG_ENTRIES  "entries"
#define MSG_LIST_END "list-end"
#define MSG_MATCHES  "matches"
#define MSG_GLOB_END "glob-end"
#define MSG_OK       "ok"
#define MSG_PUT_READY "put-ready" /* {offset, prefix?} */
#define MSG_PUT_OK   "put-ok"    /* {filesize, checksum} */
#define MSG_PUT_ACK  "put-ack"   /* {offset}: bytes of the upload taken so far (asked by ack_ms) */
#define MSG_GET_READY "get-ready" /* {filesize, offset, mode, mtime, mtime_nsec} */
#define MSG_GET_END  "get-end"   /* {checksum} */

/* Largest body of one data frame; a transfer is a run of them. */
#define PROTO_DATA_SEGMENT       (16 * 1024 * 1024)
/* Most entries in one "entries" frame ... */
#define PROTO_LIST_BATCH         256
/* ... and at most this many bytes of entries, as JSON: a name (255 bytes)
 * with a symlink's target (under 4096) is under 27 KiB even when every
 * byte is escaped (\u0001), so one entry always fits, and a frame stays
 * below the 64 KiB a receiver takes. */
#define PROTO_LIST_BATCH_BYTES   (56 * 1024)
/* A "matches" frame ends once its paths reach this many bytes (or
 * PROTO_LIST_BATCH paths): with JSON's escapes, still far below 64 KiB. */
#define PROTO_GLOB_BATCH_BYTES   8192
/* put's "ack_ms": how often, at most, the server says how far an upload
 * got (put-ack).  The range a request may ask for, and the server's floor
 * (a faster rate would only cost it frames). */
#define PROTO_PUT_ACK_MAX_MS     3600000
#define PROTO_PUT_ACK_MIN_MS     10
/* Suffix of upload and download temporaries. */
#define PROTO_PART_SUFFIX        ".ferry-part"

/* error codes ({"type":"error","code":...}) */
#define ERR_AUTH     "auth"       /* authentication failed; the connection closes */
#define ERR_PROTOCOL "protocol"   /* malformed or unexpected message; the connection closes */
#define ERR_REQUEST  "request"    /* a well-formed request that cannot be done (bad cwd, ...) */
#define ERR_SPAWN    "spawn"      /* the command could not be started; an exit follows */
#define ERR_BUSY     "busy"       /* a command or transfer is already running on this connection */
#define ERR_DENIED   "denied"     /* the key's restrictions (ferryd's keys file) forbid the request */
#define ERR_PATH     "path"       /* a path the sandbox refuses (.., absolute, escaping symlink, ...) */
#define ERR_FS       "fs"         /* a filesystem error; "errno" names it (ENOENT, ENOSPC, ...) */
#define ERR_CHECKSUM "checksum"   /* the data did not match its checksum; nothing was committed */
#define ERR_TLS_REQUIRED "tls-required" /* sent in the clear to a plaintext client of a TLS listener */

/* Reasons in a closing message. */
#define CLOSE_IDLE      "idle"          /* --idle-timeout: nothing ran, nothing moved */
#define CLOSE_SHUTDOWN  "shutdown"      /* the server is stopping */
#define CLOSE_BUSY      "busy"          /* a connection limit: sent in the clear, before TLS */
#define CLOSE_AUTH_TIMEOUT "auth-timeout" /* not authenticated within --auth-timeout */

/* Auth methods in hello: the key's HMAC proofs (auth.h), TLS having
 * authenticated the client already (PSK or client certificate), none. */
#define AUTH_METHOD_TLS  "tls"
#define AUTH_METHOD_NONE "none"

/* The status a client exits with for its own failures (as ssh does). */
#define FERRY_EXIT_ERROR 255
/* ... and when --timeout killed the command (as timeout(1) does). */
#define FERRY_EXIT_TIMEOUT 124

#endif
