/*
 * exec_stream.h - one request on an authenticated session, streamed to the end.
 *
 * For an exec request that means: stdout and stderr frames are written to
 * fds 1 and 2 as they arrive, stdin is forwarded if asked, SIGINT, SIGTERM,
 * SIGHUP and SIGQUIT are forwarded to the remote command, until the exit
 * frame arrives.  Memory stays bounded whatever the sizes involved: bodies
 * are streamed in pieces, and stdin is not read while the socket is behind.
 */
#ifndef FERRY_CLIENT_EXEC_STREAM_H
#define FERRY_CLIENT_EXEC_STREAM_H

#include <jansson.h>

#include "dial.h"

/* Largest stdin piece read and sent at once. */
#define RUN_STDIN_CHUNK (64 * 1024)
/* stdin is not read while this much is still waiting for the socket, so
 * a fast stdin and a slow command never make ferry buffer without bound. */
#define RUN_MAX_QUEUED (256 * 1024)

/*
 * Run the exec request `request` (an {"type":"exec",...} header) to its
 * exit frame.  forward_stdin: read fd 0 and send it (the request must not
 * carry "stdin": false then).  Returns the status ferry should exit with:
 * the command's own (0-255), 128+N when it was killed by signal N, 124
 * when its timeout killed it, 141 (as if killed by SIGPIPE) when our own
 * stdout was closed under it, or 255 for a failure, already reported on
 * stderr.  Afterwards s->broken says whether the session can go on.
 * SIGINT, SIGTERM, SIGHUP and SIGQUIT are forwarded to the command; with
 * second_hangs_up (ferry exec, as pdsh and -w do), a second one ends the
 * request with 128+N and the session broken, which makes ferryd kill the
 * command: one that ignores the first can still be left.
 */
int exec_stream_run(struct client_session *s, json_t *request, int forward_stdin,
                    int second_hangs_up);

/*
 * The same for a request with a "tty" member (tty.h): our terminal (fd 0,
 * if it is one) is raw until the request ends, typed bytes go through the
 * escape sequences of escape_ch (escape.h; `~.` ends the request with 255
 * and leaves the session broken, which makes ferryd kill the command), and
 * every SIGWINCH sends the window's new size.  SIGINT, SIGTERM, SIGHUP and
 * SIGQUIT are not forwarded: they end the request with 128+N, the session
 * broken (the keys that make them locally are typed on the remote terminal).
 */
int exec_stream_run_tty(struct client_session *s, json_t *request, int stdin_on, int escape_ch);

/*
 * As exec_stream_run without stdin, for a server that queues one request
 * (s->pipeline: its hello said so, PROTOCOL.md 2.2).  `request` is sent
 * unless NULL (it went ahead as the `next` of the call before), and
 * `next`, unless NULL, right after it: that one waits at the server while
 * this one runs and starts the moment it ends, so a session of commands
 * pays no round trip between them.  next must carry "stdin": false.
 */
int exec_stream_run_ahead(struct client_session *s, json_t *request, json_t *next);

/* An exit frame's status as a shell shows it: the command's own (0-255),
 * 128+N for signal N, 124 for its --timeout; -1 when it has none valid. */
int exec_exit_status(const json_t *exit_frame);

/*
 * Change the session's directory (PROTOCOL.md 2.3).  On success returns 0
 * and, if cwd is not NULL, the server's absolute path for it (malloc'd).
 * A refusal is printed ("ferry: cd /nope: No such file or directory") and
 * gives 1; a broken session gives 255.
 */
int exec_stream_chdir(struct client_session *s, const char *path, char **cwd);

/*
 * The session's directory (malloc'd, in *cwd): 0, or as exec_stream_chdir,
 * except that a key that has no directory (one that may not run commands:
 * the server answers "denied") gives 1 without a word.
 */
int exec_stream_cwd(struct client_session *s, char **cwd);

#endif
