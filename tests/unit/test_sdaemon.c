/*
 * test_sdaemon.c - ferryd's side of systemd's two protocols
 * (src/ferryd/sdlisten.c, sdnotify.c): which LISTEN_* variables count,
 * that they and NOTIFY_SOCKET leave the environment, that passed sockets
 * become close-on-exec, and that a notification arrives on a path and in
 * the abstract namespace.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sdlisten.h"
#include "sdnotify.h"

static void set_listen(const char *pid, const char *fds)
{
    setenv("LISTEN_PID", pid, 1);
    setenv("LISTEN_FDS", fds, 1);
    setenv("LISTEN_FDNAMES", "ferryd.socket", 1);
}

static void assert_listen_env_gone(void)
{
    assert_null(getenv("LISTEN_PID"));
    assert_null(getenv("LISTEN_FDS"));
    assert_null(getenv("LISTEN_FDNAMES"));
}

static void test_listen_fds(void **state)
{
    char pid[32];
    int fd;
    (void)state;

    assert_int_equal(sdlisten_take(), 0);   /* nothing passed */
    snprintf(pid, sizeof pid, "%ld", (long)getpid());

    /* Descriptor 3, inheritable as a manager passes it. */
    /* Whatever the test runner left at descriptor 3 is set aside and put
     * back at the end. */
    int saved = fcntl(SDLISTEN_FIRST_FD, F_DUPFD_CLOEXEC, 10);
    int saved_flags = fcntl(SDLISTEN_FIRST_FD, F_GETFD);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    if (fd != SDLISTEN_FIRST_FD) {
        assert_int_equal(dup2(fd, SDLISTEN_FIRST_FD), SDLISTEN_FIRST_FD);
        close(fd);
    }
    set_listen(pid, "1");
    assert_int_equal(sdlisten_take(), 1);
    assert_listen_env_gone();
    assert_true(fcntl(SDLISTEN_FIRST_FD, F_GETFD) & FD_CLOEXEC);
    assert_int_equal(sdlisten_take(), 0);   /* taken once */

    set_listen("1", "1");                     /* another process's */
    assert_int_equal(sdlisten_take(), 0);
    assert_listen_env_gone();

    set_listen(pid, "0");
    assert_int_equal(sdlisten_take(), -EINVAL);
    set_listen(pid, "1x");
    assert_int_equal(sdlisten_take(), -EINVAL);
    set_listen("", "1");
    assert_int_equal(sdlisten_take(), -EINVAL);
    assert_listen_env_gone();
    close(SDLISTEN_FIRST_FD);
    if (saved >= 0) {
        assert_int_equal(dup2(saved, SDLISTEN_FIRST_FD), SDLISTEN_FIRST_FD);
        assert_int_equal(fcntl(SDLISTEN_FIRST_FD, F_SETFD, saved_flags), 0);
        close(saved);
    }
}

static void notify_round_trip(const char *name, const struct sockaddr_un *sun, socklen_t len)
{
    char buf[64];
    int rx = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ssize_t n;

    assert_true(rx >= 0);
    assert_int_equal(bind(rx, (const struct sockaddr *)sun, len), 0);
    setenv("NOTIFY_SOCKET", name, 1);
    assert_int_equal(sdnotify_open(), 0);
    assert_null(getenv("NOTIFY_SOCKET"));
    assert_int_equal(sdnotify_send("READY=1\nSTATUS=serving"), 0);
    n = recv(rx, buf, sizeof buf - 1, 0);
    assert_int_equal(n, strlen("READY=1\nSTATUS=serving"));
    buf[n] = '\0';
    assert_string_equal(buf, "READY=1\nSTATUS=serving");
    sdnotify_close();
    assert_int_equal(sdnotify_send("STOPPING=1"), 0);   /* closed: nobody to tell */
    close(rx);
}

static void test_notify(void **state)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    char dir[] = "/tmp/test_sdaemon.XXXXXX", name[108];
    (void)state;

    unsetenv("NOTIFY_SOCKET");
    assert_int_equal(sdnotify_open(), 0);                 /* no manager */
    assert_int_equal(sdnotify_send("READY=1"), 0);

    assert_non_null(mkdtemp(dir));
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s/notify", dir);
    notify_round_trip(sun.sun_path, &sun, sizeof sun);
    unlink(sun.sun_path);
    rmdir(dir);

    snprintf(name, sizeof name, "@test_sdaemon-%ld", (long)getpid());
    memset(sun.sun_path, 0, sizeof sun.sun_path);
    memcpy(sun.sun_path + 1, name + 1, strlen(name) - 1);
    notify_round_trip(name, &sun,
                      (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name)));

    setenv("NOTIFY_SOCKET", "relative/path", 1);
    assert_int_equal(sdnotify_open(), -EINVAL);
    assert_null(getenv("NOTIFY_SOCKET"));
    setenv("NOTIFY_SOCKET", "/nonexistent/notify", 1);
    assert_int_equal(sdnotify_open(), -ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listen_fds),
        cmocka_unit_test(test_notify),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
