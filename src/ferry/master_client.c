/*
 * master_client.c - the client's side of connection masters (master.h):
 * where a master for a host listens, asking it for a session, and starting
 * one in the background.
 *
 * The directory is checked before anything in it is trusted: ours, a
 * real directory, no one else's bits.  Only we (and root) can then have
 * made a socket there, so a session it hands out is one our key made; the
 * listening process must be ours as well (SO_PEERCRED).
 */
#include "master.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>
#include <xxhash.h>

#include "ferry/ferry.h"
#include "keyfile.h"
#include "keys.h"

/* The master's frames are small; anything larger is not a master. */
static const struct ferry_frame_limits master_limits = { .max_header = 4096, .max_body = 1 };

/* $XDG_RUNTIME_DIR/ferry (a per-user tmpfs that systemd empties at
 * logout), else /tmp/ferry-UID.  Nothing is looked at here. */
static int dir_name(char *dir, size_t len)
{
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    int n;

    if (xdg && xdg[0] == '/')
        n = snprintf(dir, len, "%s/ferry", xdg);
    else
        n = snprintf(dir, len, "/tmp/ferry-%u", (unsigned)getuid());
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

int master_dir_exists(void)
{
    char dir[PATH_MAX];
    struct stat st;

    return dir_name(dir, sizeof dir) == 0 && lstat(dir, &st) == 0;
}

int master_dir_check(const char *path, int create, char *why, size_t whylen)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    struct stat st;

    if (!slash || (size_t)(slash - path) >= sizeof dir) {
        snprintf(why, whylen, "%s: not a path in a directory", path);
        return -1;
    }
    memcpy(dir, path, (size_t)(slash - path));
    dir[slash - path] = '\0';
    /* Only a master makes the directory: a command that merely looks for
     * one leaves no trace. */
    if (create && mkdir(dir, 0700) < 0 && errno != EEXIST) {
        snprintf(why, whylen, "cannot make %s: %s", dir, strerror(errno));
        return -1;
    }
    if (lstat(dir, &st) < 0) {
        if (errno == ENOENT && !create)
            return 1;
        snprintf(why, whylen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode) || st.st_uid != getuid() || (st.st_mode & 077)) {
        snprintf(why, whylen, "%s is not a private directory of ours (a directory, owned by "
                 "uid %u, mode 0700): not used for masters", dir, (unsigned)getuid());
        return -1;
    }
    return 0;
}

char *master_key_path(const struct dial_opts *eff)
{
    char *path, *abs;

    if (eff->ca_file || eff->insecure_no_auth)
        return NULL;
    path = eff->key_file ? strdup(eff->key_file) : keyfile_default_path(1);
    if (!path)
        return NULL;
    abs = realpath(path, NULL);
    if (abs) {
        free(path);
        return abs;
    }
    return path;   /* missing: the connection will say so */
}

/* Append s and its terminating NUL (NULL as an empty string). */
static size_t put(char *buf, size_t at, size_t cap, const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (at + n + 1 > cap)
        return cap + 1;
    if (n)
        memcpy(buf + at, s, n);
    buf[at + n] = '\0';
    return at + n + 1;
}

int master_socket_path(const struct dial_opts *eff, const char *target, char *path, size_t len,
                       char *why, size_t whylen)
{
    char dir[PATH_MAX], id[4 * PATH_MAX + 512];
    char *key = master_key_path(eff);
    size_t at = 0;
    int n;

    /* Everything that decides the server and how we prove ourselves to
     * it: a different key, name or mode is a different master. */
    at = put(id, at, sizeof id, "ferry-master-1");
    at = put(id, at, sizeof id, target);
    at = put(id, at, sizeof id, key);
    at = put(id, at, sizeof id, eff->key_name ? eff->key_name : KEYS_DEFAULT_NAME);
    at = put(id, at, sizeof id, eff->plaintext ? "plaintext" : eff->insecure_no_auth ? "none" : "tls");
    at = put(id, at, sizeof id, eff->ca_file);
    at = put(id, at, sizeof id, eff->cert_file);
    at = put(id, at, sizeof id, eff->cert_key_file);
    free(key);
    if (at > sizeof id) {
        snprintf(why, whylen, "the options are too long to name a master by");
        return -1;
    }
    if (dir_name(dir, sizeof dir) < 0) {
        snprintf(why, whylen, "the directory for masters would be too long a path");
        return -1;
    }
    n = snprintf(path, len, "%s/%016llx", dir, (unsigned long long)XXH3_64bits(id, at));
    if (n < 0 || (size_t)n >= len || (size_t)n >= sizeof ((struct sockaddr_un *)0)->sun_path) {
        snprintf(why, whylen, "%s is too long a path for a unix socket", dir);
        return -1;
    }
    return 0;
}

static int flag(const json_t *h, const char *name)
{
    return json_is_true(json_object_get(h, name));
}

int master_request(const char *path, const char *op, int timeout_ms, struct master_info *info,
                   struct ferry_transport **t, char *why, size_t whylen)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct ferry_transport *tr = NULL;
    json_t *req = NULL, *rep = NULL;
    uint64_t body = 0;
    const char *type, *peer;
    struct ucred cred = { 0 };
    socklen_t credlen = sizeof cred;
    int fd, r, rc = -1;

    memset(info, 0, sizeof *info);
    if (t)
        *t = NULL;
    r = master_dir_check(path, 0, why, whylen);
    if (r != 0)
        return r > 0 ? MASTER_NONE : -1;
    if (strlen(path) >= sizeof sa.sun_path) {
        snprintf(why, whylen, "%s: too long for a unix socket", path);
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(why, whylen, "socket: %s", strerror(errno));
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = errno;
        close(fd);
        if (e == ENOENT || e == ECONNREFUSED)
            return MASTER_NONE;   /* none, or one that is gone */
        snprintf(why, whylen, "%s: %s", path, strerror(e));
        return -1;
    }
    /* The directory says only we could have put a socket there; the
     * socket's owner says so too, whatever happened to the directory
     * since we looked (a parent others may write to, a rename). */
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &credlen) < 0 || cred.uid != getuid()) {
        close(fd);
        snprintf(why, whylen, "%s is not our master (its uid is not ours): not used", path);
        return -1;
    }
    if (ferry_transport_new_fd(fd, &tr) < 0) {
        close(fd);
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    ferry_transport_set_timeout(tr, timeout_ms > 0 ? timeout_ms : 1);
    req = json_pack("{s:s, s:s}", "type", "master", "op", op);
    if (!req) {
        snprintf(why, whylen, "out of memory");
        goto out;
    }
    r = ferry_frame_write(tr, req, NULL, 0, &master_limits);
    if (r == 0)
        r = ferry_frame_read(tr, &master_limits, &rep, &body);
    if (r < 0) {
        /* A master that closes without a word had nothing to give (its
         * server is gone, say): the client connects by itself. */
        snprintf(why, whylen, "the master did not answer: %s", ferry_strerror(r));
        goto out;
    }
    type = json_string_value(json_object_get(rep, "type"));
    if (body != 0 || !type || strcmp(type, "master") != 0 || !flag(rep, "ok")) {
        const char *msg = json_string_value(json_object_get(rep, "message"));
        snprintf(why, whylen, "the master refused: %s", msg ? msg : "an answer not understood");
        goto out;
    }
    info->pid = (long)json_integer_value(json_object_get(rep, "pid"));
    info->pipeline = flag(rep, "pipeline");
    info->put_stream = flag(rep, "put_stream");
    info->glob = flag(rep, "glob");
    info->keepalive = flag(rep, "keepalive");
    info->put_ack = flag(rep, "put_ack");
    peer = json_string_value(json_object_get(rep, "peer"));
    snprintf(info->peer, sizeof info->peer, "%s", peer ? peer : path);
    ferry_transport_set_timeout(tr, 0);
    if (t) {
        *t = tr;
        tr = NULL;
    }
    rc = 0;
out:
    json_decref(req);
    json_decref(rep);
    ferry_transport_free(tr);
    return rc;
}

/* argv for the background master: the effective options, spelled out. */
static int spawn_argv(const char *host, const struct dial_opts *eff, char *key, char *persist,
                      char *timeout, const char **argv, size_t cap)
{
    size_t n = 0;

#define ARG(s) do { if (n + 1 >= cap) return -1; argv[n++] = (s); } while (0)
    ARG("ferry");
    ARG("master");
    ARG("--persist");
    ARG(persist);
    ARG("--connect-timeout");
    ARG(timeout);
    if (key) { ARG("-k"); ARG(key); }
    if (eff->key_name) { ARG("--key-name"); ARG(eff->key_name); }
    if (eff->plaintext) ARG("--plaintext");
    if (eff->insecure_no_auth) ARG("--insecure-no-auth");
    if (eff->ca_file) { ARG("--ca"); ARG(eff->ca_file); }
    if (eff->cert_file) { ARG("--cert"); ARG(eff->cert_file); }
    if (eff->cert_key_file) { ARG("--cert-key"); ARG(eff->cert_key_file); }
    if (eff->config_file) { ARG("-F"); ARG(eff->config_file); }
    ARG("--");
    ARG(host);
#undef ARG
    argv[n] = NULL;
    return 0;
}

void master_spawn(const char *host, const struct dial_opts *eff)
{
    char self[PATH_MAX], persist[32], timeout[32];
    char *key = master_key_path(eff);
    const char *argv[32];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    pid_t pid;
    int status;

    snprintf(persist, sizeof persist, "%g", eff->persist);
    snprintf(timeout, sizeof timeout, "%g", eff->connect_timeout);
    if (n <= 0 || spawn_argv(host, eff, key, persist, timeout, argv, 32) < 0) {
        free(key);
        return;
    }
    self[n] = '\0';
    /* Twice, so that the master is nobody's child here and its session is
     * its own: our terminal's signals and our exit do not reach it. */
    pid = fork();
    if (pid == 0) {
        sigset_t none;
        int null;

        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (fork() != 0)
            _exit(0);
        setsid();
        null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
            dup2(null, 2);
        }
        closefrom(3);
        execv(self, (char *const *)argv);
        _exit(127);
    }
    if (pid > 0)
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
    else
        ferry_log_debug("cannot start a master: fork: %s", strerror(errno));
    free(key);
}
