/*
 * fuzz_server.c - libFuzzer harness for what ferryd parses from a peer:
 * the server's half of the session handshake (sessionsvc.c), the file
 * service's requests and upload bodies (filesvc*.c, fsops.c), and the
 * classic listener's detector and framed uploads (classic_put.c).
 *
 * Each process runs one in-process ferry server (a thread, the event
 * model) on three unix sockets in its own temporary directory, serving a
 * temporary root:
 *   byte 0 % 3 == 0  "session": sessionsvc itself, with a key.  Only the
 *                    handshake is reachable: the fuzzer cannot forge the
 *                    proof over the server's random nonce, so exec (which
 *                    would run its input as commands) stays out of reach;
 *   byte 0 % 3 == 1  "files": the file service as sessionsvc drives it
 *                    after authentication (frames to filesvc_on_header /
 *                    filesvc_on_body, limits as after auth), without exec;
 *   byte 0 % 3 == 2  "classic": the detector and, for a framed upload, the
 *                    upload parser; a command line (which the real
 *                    listener would run) closes the connection instead.
 * The rest of the input is written to the connection, which is then shut
 * for writing; the harness reads the server's answer until it closes.
 * Properties: no crash, leak or hang (libFuzzer's -timeout), and nothing
 * is created outside the root (the directory beside it must stay empty);
 * the root is emptied every 256 inputs so it does not grow without bound.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <dirent.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "fuzz_tmp.h"
#include "audit.h"
#include "classic_put.h"
#include "daemon.h"
#include "ferry/conn.h"
#include "ferry/server.h"
#include "filesvc.h"
#include "proto.h"
#include "sessionsvc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char base[64], root_dir[128], beside[128], socks[3][128];
static struct daemon_config cfg;
static struct ferry_server *server;

/* ---- "files": the file service without the session around it ------------ */

struct files_conn {
    struct filesvc *f;
    struct audit_who who;   /* as a session keeps it, for the audit lines */
    int body;       /* the current frame's body goes to the file service */
};

static int files_open(struct ferry_conn *c, void *arg)
{
    static const struct ferry_frame_limits after_auth = { .max_header = PROTO_MAX_HEADER };
    struct files_conn *fc = calloc(1, sizeof *fc);

    (void)arg;
    if (!fc)
        return -ENOMEM;
    fc->who = (struct audit_who){ .peer = ferry_conn_peer(c), .listener = "main",
                                  .id_key = "key", .id_value = "fuzz" };
    fc->f = filesvc_new(c, cfg.root, &fc->who, NULL, NULL);
    if (!fc->f) {
        free(fc);
        return -ENOMEM;
    }
    ferry_conn_set_data(c, fc);
    ferry_conn_set_authenticated(c);
    ferry_conn_set_frame_limits(c, &after_auth);
    return 0;
}

static int files_frame(struct ferry_conn *c, struct ferry_frame_event *ev, void *arg)
{
    struct files_conn *fc = ferry_conn_data(c);
    const char *type, *why = NULL;
    int r;

    (void)arg;
    switch (ev->type) {
    case FERRY_FRAME_HEADER:
        type = json_string_value(json_object_get(ev->header, "type"));
        fc->body = 0;
        if (!type || !filesvc_handles(type) || filesvc_sending(fc->f)) {
            json_decref(ev->header);
            return -EPROTO;
        }
        r = filesvc_on_header(fc->f, type, ev->header, ev->body_size, &why);
        json_decref(ev->header);
        if (r == 1)
            return -EPROTO;
        if (r == 0 && ev->body_size > 0)
            fc->body = 1;
        return r;
    case FERRY_FRAME_BODY:
        return fc->body ? filesvc_on_body(fc->f, ev->chunk, ev->chunk_len) : 0;
    case FERRY_FRAME_END:
        fc->body = 0;
        return 0;
    default:
        return -EPROTO;
    }
}

static void files_drain(struct ferry_conn *c, void *arg)
{
    struct files_conn *fc = ferry_conn_data(c);

    (void)arg;
    if (fc)
        filesvc_on_drain(fc->f);
}

static void files_close(struct ferry_conn *c, int reason, void *arg)
{
    struct files_conn *fc = ferry_conn_data(c);

    (void)reason;
    (void)arg;
    if (fc) {
        filesvc_free(fc->f);
        free(fc);
    }
}

static const struct ferry_handler files_handler = {
    .on_open = files_open,
    .on_frame = files_frame,
    .on_drain = files_drain,
    .on_close = files_close,
};

/* ---- "classic": the detector and the framed upload only ------------------- */

struct classic_conn {
    int decided;
    struct classic_put *put;
};

static int classic_open(struct ferry_conn *c, void *arg)
{
    struct classic_conn *k = calloc(1, sizeof *k);

    (void)arg;
    if (!k)
        return -ENOMEM;
    ferry_conn_set_data(c, k);
    return 0;
}

static int classic_data(struct ferry_conn *c, const void *data, size_t len, void *arg)
{
    struct classic_conn *k = ferry_conn_data(c);

    (void)arg;
    if (!k->decided) {
        k->decided = 1;
        if (!classic_put_detect(data, len))
            return -EPROTO;     /* a command: never run one here */
        k->put = classic_put_new(c, cfg.root);
        if (!k->put)
            return -ENOMEM;
    }
    return k->put ? classic_put_feed(k->put, data, len) : -EPROTO;
}

static void classic_close(struct ferry_conn *c, int reason, void *arg)
{
    struct classic_conn *k = ferry_conn_data(c);

    (void)reason;
    (void)arg;
    if (k) {
        classic_put_free(k->put);
        free(k);
    }
}

static const struct ferry_handler classic_put_handler = {
    .on_open = classic_open,
    .on_data = classic_data,
    .on_close = classic_close,
};

/* ---- the server ----------------------------------------------------------------- */

static void *run_server(void *arg)
{
    (void)arg;
    if (ferry_server_run(server) < 0)
        abort();
    return NULL;
}

static void cleanup(void)
{
    char cmd[128];

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz_server: could not remove %s\n", base);
}

static void setup(void)
{
    static struct ferry_handler session;
    struct ferry_server_opts so = { .handshake_timeout_ms = PROTO_AUTH_TIMEOUT_MS,
                                    .frame_limits = { .max_header = PROTO_PREAUTH_MAX_HEADER } };
    const struct ferry_handler *handlers[3] = { &session, &files_handler, &classic_put_handler };
    char tmpl[48];
    pthread_t th;

    fuzz_mkdtemp(tmpl, sizeof tmpl, "fuzz_server");
    snprintf(base, sizeof base, "%s", tmpl);
    snprintf(root_dir, sizeof root_dir, "%s/root", base);
    snprintf(beside, sizeof beside, "%s/beside", base);
    if (mkdir(root_dir, 0700) < 0 || mkdir(beside, 0700) < 0)
        abort();
    memset(&cfg.key, 0x5a, sizeof cfg.key);
    cfg.have_key = 1;
    cfg.plaintext = 1;
    if (fsroot_open(root_dir, 0, &cfg.root, NULL, 0) < 0)
        abort();
    session = sessionsvc_handler;
    session.arg = &cfg;
    if (ferry_server_new(&so, &server) < 0)
        abort();
    for (int i = 0; i < 3; i++) {
        snprintf(socks[i], sizeof socks[i], "%s/s%d", base, i);
        char addr[160];
        snprintf(addr, sizeof addr, "unix:%s", socks[i]);
        if (ferry_server_listen(server, addr, FERRY_SOCK_STREAM, handlers[i], NULL) < 0)
            abort();
    }
    if (pthread_create(&th, NULL, run_server, NULL) != 0)
        abort();
    pthread_detach(th);
    atexit(cleanup);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    if (ftw->level > 0)
        remove(path);
    return 0;
}

static int dir_is_empty(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int empty = 1;

    if (!d)
        abort();
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            empty = 0;
    closedir(d);
    return empty;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static unsigned runs;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct timeval tv = { .tv_sec = 20 };
    const uint8_t *p;
    char sink[4096];
    size_t left;
    int fd;

    if (size < 1)
        return 0;
    if (!server)
        setup();
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", socks[data[0] % 3]);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        abort();
    /* A server that stops answering is a hang: libFuzzer's -timeout. */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    for (p = data + 1, left = size - 1; left > 0;) {
        ssize_t w = send(fd, p, left, MSG_NOSIGNAL);

        if (w < 0) {
            if (errno == EINTR)
                continue;
            break;      /* the server closed on us: fine */
        }
        p += w;
        left -= (size_t)w;
    }
    shutdown(fd, SHUT_WR);
    while (read(fd, sink, sizeof sink) > 0)
        ;
    close(fd);
    if (!dir_is_empty(beside))
        abort();
    if (++runs % 256 == 0)
        nftw(root_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}
