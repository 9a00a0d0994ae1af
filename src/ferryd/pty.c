/*
 * pty.c - allocating and driving a command's pseudo-terminal (pty.h).
 *
 * On Linux the termios and window-size ioctls on a master act on its
 * slave (the kernel looks up the pair), so everything is done through the
 * master and ferryd never opens the slave itself: if it did, the terminal
 * would stay open after the command's last process is gone, and the end of
 * output (EIO on the master) would never come.
 */
#include "pty.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "errbuf.h"
#include "fdio.h"
#include "ttymodes.h"

int pty_open(const struct pty_spec *spec, int *master, char *name, size_t namelen,
             char *err, size_t errlen)
{
    struct termios t;
    int fd, rc;

    *master = -1;
    fd = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        rc = -errno;
        errbuf_format(err, errlen, "cannot allocate a terminal: %s", strerror(-rc));
        return rc;
    }
    errno = 0;
    if (grantpt(fd) < 0 || unlockpt(fd) < 0 || (errno = ptsname_r(fd, name, namelen)) != 0 ||
        tcgetattr(fd, &t) < 0) {
        rc = errno > 0 ? -errno : -EIO;
        errbuf_format(err, errlen, "cannot allocate a terminal: %s", strerror(-rc));
        goto fail;
    }
    if (spec->modes) {
        rc = ttymodes_apply(spec->modes, &t, err, errlen);
        if (rc < 0)
            goto fail;
    }
    /* 8-bit and UTF-8 clean whatever the client said: the data is opaque
     * to us, and a 7-bit terminal would mangle every wide character. */
    t.c_cflag = (t.c_cflag & ~(tcflag_t)CSIZE) | CS8;
    if (tcsetattr(fd, TCSANOW, &t) < 0 || ioctl(fd, TIOCSWINSZ, &spec->size) < 0) {
        rc = -errno;
        errbuf_format(err, errlen, "cannot set up the terminal: %s", strerror(-rc));
        goto fail;
    }
    *master = fd;
    return 0;

fail:
    fdio_close(&fd);
    return rc;
}

int pty_resize(int master, const struct winsize *ws)
{
    return ioctl(master, TIOCSWINSZ, ws) < 0 ? -errno : 0;
}

ssize_t pty_read(int master, uint8_t *buf, size_t cap)
{
    size_t got = 0;

    while (got < cap) {
        ssize_t n = read(master, buf + got, cap - got);

        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (got > 0)
            break;      /* EAGAIN or the end: deliver this first */
        if (n == 0 || errno == EIO)
            return 0;
        return -errno;
    }
    return (ssize_t)got;
}

int pty_eof_char(int master)
{
    struct termios t;

    if (tcgetattr(master, &t) < 0 || !(t.c_lflag & ICANON) || t.c_cc[VEOF] == _POSIX_VDISABLE)
        return -1;
    return t.c_cc[VEOF];
}

/* The session of /proc/<name>/stat, or -1. */
static pid_t session_of(int procfd, const char *name)
{
    char path[64], buf[512];
    const char *p;
    long sid = -1;
    ssize_t n;
    int fd;

    snprintf(path, sizeof path, "%s/stat", name);
    fd = openat(procfd, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    /* pid (comm) state ppid pgrp session ...: comm may hold anything, so
     * the fields are counted after its last ')'. */
    p = strrchr(buf, ')');
    if (!p || sscanf(p + 1, " %*c %*d %*d %ld", &sid) != 1)
        return -1;
    return (pid_t)sid;
}

void pty_kill_session(pid_t sid)
{
    int procfd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = procfd >= 0 ? fdopendir(procfd) : NULL;
    struct dirent *de;

    if (!d) {
        if (procfd >= 0)
            close(procfd);
        return;
    }
    while ((de = readdir(d)) != NULL) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);

        if (*end || pid <= 0 || pid == sid)
            continue;
        if (session_of(procfd, de->d_name) == sid)
            (void)kill((pid_t)pid, SIGKILL);
    }
    closedir(d);
}
