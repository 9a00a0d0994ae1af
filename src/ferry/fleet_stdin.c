/*
 * fleet_stdin.c - stdin spooled for every host of a fleet (fleet_stdin.h).
 */
#include "fleet_stdin.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fdio.h"
#include "ferry/ferry.h"

#define CHUNK (64 * 1024)

/* An unlinked file in $TMPDIR (else /tmp): O_TMPFILE where the file
 * system has it, else mkstemp and unlink at once. */
static int spool_file(void)
{
    const char *dir = getenv("TMPDIR");
    char path[4096];
    int fd;

    if (!dir || dir[0] != '/')
        dir = "/tmp";
#ifdef O_TMPFILE
    fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;
#endif
    if ((size_t)snprintf(path, sizeof path, "%s/ferry-stdin.XXXXXX", dir) >= sizeof path)
        return -ENAMETOOLONG;
    fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0)
        return -errno;
    (void)unlink(path);
    return fd;
}

/* One piece of fd 0 into the spool. */
static void read_some(struct fleet_stdin *in)
{
    static char buf[CHUNK];
    ssize_t n = read(STDIN_FILENO, buf, sizeof buf);

    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n < 0)
        ferry_log_debug("stdin: %s; ending the commands' input", strerror(errno));
    if (n <= 0) {
        in->eof = 1;
        fleet_stdin_want(in, 0);
    } else if (fdio_pwrite_all(in->spool, buf, (size_t)n, in->len, NULL) < 0) {
        ferry_log_warn("cannot spool stdin: %s; ending the commands' input", strerror(errno));
        in->eof = 1;
        fleet_stdin_want(in, 0);
    } else {
        in->len += (uint64_t)n;
    }
    in->on_data(in->arg);
}

static void on_readable(struct ferry_loop *loop, int fd, unsigned events, void *arg)
{
    (void)loop;
    (void)fd;
    (void)events;
    read_some(arg);
}

static void on_timer(struct ferry_loop *loop, struct ferry_timer *t, void *arg)
{
    struct fleet_stdin *in = arg;

    (void)loop;
    (void)t;
    in->reading = 0;
    read_some(in);   /* the fleet asks for the next turn (fleet_stdin_want) */
}

int fleet_stdin_open(struct fleet_stdin *in, struct ferry_loop *loop, void (*on_data)(void *),
                     void *arg)
{
    struct stat st;
    off_t at;

    *in = (struct fleet_stdin){ .loop = loop, .spool = -1, .on_data = on_data, .arg = arg };
    if (fstat(STDIN_FILENO, &st) == 0 && S_ISREG(st.st_mode) &&
        (at = lseek(STDIN_FILENO, 0, SEEK_CUR)) >= 0) {
        in->spool = STDIN_FILENO;
        in->direct = 1;
        in->base = (uint64_t)at;
        in->len = st.st_size > at ? (uint64_t)(st.st_size - at) : 0;
        in->eof = 1;
        return 0;
    }
    in->spool = spool_file();
    if (in->spool < 0)
        return in->spool;
    /* epoll takes no /dev/null: such a stdin is read in turns. */
    in->watch = ferry_loop_add(loop, STDIN_FILENO, 0, on_readable, in) == 0 ? 1 : 2;
    return 0;
}

void fleet_stdin_want(struct fleet_stdin *in, int want)
{
    want = want && !in->eof && !in->direct && in->spool >= 0;
    if (want == in->reading)
        return;
    in->reading = want;
    if (in->watch == 1) {
        ferry_loop_modify(in->loop, STDIN_FILENO, want ? FERRY_READABLE : 0);
    } else if (in->watch == 2 && want) {
        if (in->timer)
            ferry_timer_restart(in->timer, 0);
        else
            in->timer = ferry_loop_timer(in->loop, 0, on_timer, in);
        if (!in->timer) {
            in->eof = 1;   /* no memory for a timer: the input ends here */
            in->reading = 0;
        }
    }
}

ssize_t fleet_stdin_read(struct fleet_stdin *in, uint64_t off, void *buf, size_t n)
{
    ssize_t r;

    if (in->spool < 0 || off >= in->len)
        return 0;
    if (n > in->len - off)
        n = (size_t)(in->len - off);
    do
        r = pread(in->spool, buf, n, (off_t)(in->base + off));
    while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : r;
}

void fleet_stdin_close(struct fleet_stdin *in)
{
    if (in->watch == 1)
        ferry_loop_remove(in->loop, STDIN_FILENO);
    ferry_timer_cancel(in->timer);
    in->timer = NULL;
    if (!in->direct && in->spool >= 0)
        close(in->spool);
    in->spool = -1;
    in->watch = 0;
}
