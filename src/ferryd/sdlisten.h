/*
 * sdlisten.h - the listening sockets systemd hands over (socket activation).
 *
 * The protocol of sd_listen_fds(3): the sockets are descriptors 3, 4, ...,
 * LISTEN_FDS says how many, LISTEN_PID says for which process (a variable
 * inherited by a child is not meant for it).  Implemented here rather than
 * linked from libsystemd: see docs/DESIGN.md, "systemd without libsystemd".
 */
#ifndef FERRYD_SDLISTEN_H
#define FERRYD_SDLISTEN_H

/* The first descriptor systemd passes (SD_LISTEN_FDS_START). */
#define SDLISTEN_FIRST_FD 3

/*
 * How many sockets were passed to this process (0: none, or they were
 * meant for another process); they are SDLISTEN_FIRST_FD onwards, now
 * close-on-exec.  LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES are removed
 * from the environment either way, so the commands ferryd runs never
 * believe they were activated.  A negative code for a malformed variable.
 */
int sdlisten_take(void);

#endif
