/*
 * sdnotify.h - telling the service manager how ferryd is doing
 * (sd_notify(3): READY=1, STOPPING=1, STATUS=...), for Type=notify.
 */
#ifndef FERRYD_SDNOTIFY_H
#define FERRYD_SDNOTIFY_H

/*
 * Take NOTIFY_SOCKET from the environment (and remove it, so the commands
 * ferryd runs cannot speak for it) and connect a datagram socket to it.
 * 0 when there is no manager to tell (no variable) or it is connected; a
 * negative code for a variable that names no usable socket.
 */
int sdnotify_open(void);

/*
 * Send one message ("READY=1\nSTATUS=...") to the manager; 0 (also when
 * there is none), or a negative code.  Async-signal-safe.
 */
int sdnotify_send(const char *msg);

/* Close the socket; NOTIFY_SOCKET is not restored. */
void sdnotify_close(void);

#endif
