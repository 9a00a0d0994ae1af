/*
 * master.c - `ferry master [OPTIONS] HOST`: its command line, its socket
 * and lock, --background, --check and --stop (master.h says what a master
 * is; master_pool.c runs one, master_worker.c its workers).
 *
 * One master per socket: a lock file beside the socket is held for the
 * master's life, so two commands that start one at the same moment agree
 * on which runs, and a socket left by a master that died is replaced.
 */
#include "master.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "dial_hs.h"
#include "ferry/ferry.h"
#include "hostconf.h"
#include "master_int.h"

/* The lock says one master per socket; then the socket (a stale one left
 * by a master that died is replaced).  0, 1 when another master runs, or
 * -1 (printed). */
static int take_socket(struct master *m)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    char lock[160];
    mode_t old;
    int r;

    snprintf(lock, sizeof lock, "%s.lock", m->path);
    m->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (m->lock_fd < 0) {
        cli_error("%s: %s", lock, strerror(errno));
        return -1;
    }
    if (flock(m->lock_fd, LOCK_EX | LOCK_NB) < 0)
        return errno == EWOULDBLOCK ? 1 : (cli_error("%s: %s", lock, strerror(errno)), -1);
    unlink(m->path);
    m->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (m->listen_fd < 0) {
        cli_error("socket: %s", strerror(errno));
        return -1;
    }
    memcpy(sa.sun_path, m->path, strlen(m->path) + 1);   /* fits: master_socket_path */
    old = umask(077);
    r = bind(m->listen_fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    if (r < 0 || listen(m->listen_fd, 64) < 0) {
        cli_error("%s: %s", m->path, strerror(errno));
        return -1;
    }
    return 0;
}

/* --background: the caller returns once the first spare is up (0) or has
 * failed (255); the master goes on in its own session.  Returns in the
 * master (0) or -1 when it could not detach; exits in the caller. */
static int detach(struct master *m)
{
    int p[2];
    pid_t pid;
    char what = 0;

    if (pipe2(p, O_CLOEXEC) < 0) {
        cli_error("pipe: %s", strerror(errno));
        return -1;
    }
    pid = fork();
    if (pid < 0) {
        cli_error("fork: %s", strerror(errno));
        return -1;
    }
    if (pid > 0) {
        close(p[1]);
        while (read(p[0], &what, 1) < 0 && errno == EINTR)
            ;
        _exit(what == 'y' ? 0 : FERRY_EXIT_ERROR);
    }
    close(p[0]);
    m->ready_fd = p[1];
    setsid();
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: ferry master [OPTIONS] HOST\n"
        "Keep an authenticated connection to HOST ready, as ssh's ControlMaster: later\n"
        "commands to HOST with the same key and options (exec, shell, put, get, ls,\n"
        "...) take it instead of connecting, loading the key and making a TLS\n"
        "handshake themselves.  A command that finds no master, or one that does not\n"
        "answer, connects by itself.  Runs in the foreground until stopped.\n"
        "\n"
        "  -b, --background         detach once the first connection is up (the exit\n"
        "                           status says whether it came up)\n"
        "      --persist S          stop after S seconds without a session (0: never;\n"
        "                           default: the host's Persist, else never)\n"
        "      --check              exit 0 if a master for HOST runs (its pid on\n"
        "                           stdout), 1 if none\n"
        "      --stop               stop the master for HOST (running sessions go on)\n"
        DIAL_CONNECT_HELP
        DIAL_VERBOSE_HELP
        CLI_COMMON_HELP);
}

/* --check and --stop: ask the master. */
static int ask(const char *path, const char *op, int timeout_ms)
{
    struct master_info info;
    char why[256];
    int r = master_request(path, op, timeout_ms, &info, NULL, why, sizeof why);

    if (r == MASTER_NONE) {
        if (strcmp(op, "stop") == 0)
            cli_error("no master runs for these options");
        return 1;
    }
    if (r < 0) {
        cli_error("%s", why);
        return FERRY_EXIT_ERROR;
    }
    if (strcmp(op, "check") == 0)
        printf("master running (pid %ld) for %s\n", info.pid, info.peer);
    return 0;
}

/* Another master holds the lock: name it by its pid, which it tells when
 * asked (one still starting, or stuck, is named without). */
static void say_running(const struct master *m, int timeout_ms)
{
    struct master_info info;
    char why[256];

    if (master_request(m->path, "check", timeout_ms, &info, NULL, why, sizeof why) == 0)
        cli_error("a master for %s already runs (pid %ld)", m->host, info.pid);
    else
        cli_error("a master for %s already runs", m->host);
}

int cmd_master(int argc, char **argv)
{
    enum { OPT_CHECK = 0x200, OPT_STOP };
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { "background", no_argument, NULL, 'b' },
        { "check", no_argument, NULL, OPT_CHECK },
        { "stop", no_argument, NULL, OPT_STOP },
        DIAL_LONGOPTS,
        { NULL, 0, NULL, 0 },
    };
    struct master m = { .listen_fd = -1, .lock_fd = -1, .sig_fd = -1, .ready_fd = -1 };
    struct dial_opts o, eff;
    struct hostconf hc = { 0 };
    const char *op = NULL;
    char target[320], why[256];
    int opt, r, background = 0, rc = FERRY_EXIT_ERROR;
    sigset_t mask;

    dial_opts_init(&o);
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "+:hVb" DIAL_SHORTOPTS, longopts, NULL)) != -1) {
        r = dial_opts_apply(&o, "ferry master", opt, optarg);
        if (r < 0)
            return EXIT_USAGE;
        if (r > 0)
            continue;
        switch (opt) {
        case 'h': usage(stdout); return 0;
        case 'V': printf("ferry %s\n", FERRY_VERSION); return 0;
        case 'b': background = 1; break;
        case OPT_CHECK: op = "check"; break;
        case OPT_STOP: op = "stop"; break;
        default: return cli_bad_option("ferry master", opt, argv);
        }
    }
    if (optind >= argc)
        return cli_usage_error("ferry master", "missing HOST");
    if (argc - optind > 1)
        return cli_usage_error("ferry master", "one HOST at a time");
    if (o.no_master)
        return cli_usage_error("ferry master", "--no-master makes no sense here");
    m.host = argv[optind];
    /* The spares connect as a command would, never through a master. */
    o.no_master = 1;
    m.o = &o;
    if (dial_resolve(m.host, &o, NULL, &eff, &hc, target, sizeof target) < 0)
        return FERRY_EXIT_ERROR;
    r = dial_check_opts(&eff, why, sizeof why);
    if (r == 0)
        r = master_socket_path(&eff, target, m.path, sizeof m.path, why, sizeof why);
    if (r == 0 && !op)
        r = master_dir_check(m.path, 1, why, sizeof why);
    if (r < 0) {
        cli_error("%s", why);
        goto out;
    }
    if (op) {
        rc = ask(m.path, op, (int)(eff.connect_timeout * 1000.0 + 0.5));
        goto out;
    }
    r = take_socket(&m);
    if (r > 0) {
        /* Not an error (a script runs -b again and again), but said, with
         * -b too, as ssh -O check says it: silence read as "started", and
         * this command's --persist is not the running master's. */
        say_running(&m, (int)(eff.connect_timeout * 1000.0 + 0.5));
        rc = 0;
        goto out;
    }
    if (r < 0)
        goto out;
    m.background = background;
    if (background && detach(&m) < 0)
        goto out;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, &m.old_mask);
    m.sig_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (m.sig_fd < 0) {
        cli_error("signalfd: %s", strerror(errno));
        goto out;
    }
    m.pid = getpid();
    /* Each worker's OpenSSL starts from what is set up here, once. */
    dial_crypto_init(eff.ca_file || eff.cert_file);
    m.persist = (o.set & DIAL_SET_PERSIST) ? o.persist : eff.persist;
    rc = master_run(&m);
    master_say_ready(&m, 'n');
out:
    hostconf_free(&hc);
    if (m.listen_fd >= 0)
        close(m.listen_fd);
    if (m.lock_fd >= 0)
        close(m.lock_fd);
    if (m.sig_fd >= 0)
        close(m.sig_fd);
    return rc;
}
