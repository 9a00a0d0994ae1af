/*
 * fuzz_client.c - libFuzzer harness for the client's parsing of what a
 * server sends (src/ferry: dial.c's handshake, client_session.c's frames,
 * remotefs.c's answers, transfer_get.c's downloads, exec_stream.c's
 * output frames): a hostile server.
 *
 * The client cannot be driven without a socket, so each process listens on
 * a unix socket in its own temporary directory and a thread plays the
 * server: it accepts the client's connection, writes the whole input to it
 * (the server's side of the conversation: its hello, its welcome and the
 * replies, as frames), shuts its side down and reads whatever the client
 * says until it hangs up.  Any further connection (a transfer reopening
 * its session) is closed at once.  The client connects with
 * --insecure-no-auth semantics (a plaintext unix socket), then byte 0 of
 * the input picks what it asks: stat, list (or glob), mkdir, rm, get (into the
 * temporary directory, emptied afterwards), get -r, or an exec.
 * Everything the client prints goes to stdout/stderr (-close_fd_mask=3
 * silences it).  Properties: no crash, no leak, no hang (libFuzzer's
 * -timeout), and a download never writes outside its target directory
 * (the directory beside it must stay empty).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "fuzz_tmp.h"
#include "client_session.h"
#include "dial.h"
#include "exec_stream.h"
#include "remotefs.h"
#include "transfer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char base[64], host[128], sock_path[128], down[128], beside[128];
static int listen_fd = -1;

struct server {
    const uint8_t *data;
    size_t size;
    int stop;       /* a byte written to this pipe ends the thread */
};

static void write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;     /* the client hung up first */
        }
        p += w;
        n -= (size_t)w;
    }
}

static void *serve(void *arg)
{
    struct server *sv = arg;
    int first = 1;

    for (;;) {
        fd_set rd;
        int fd, maxfd = listen_fd > sv->stop ? listen_fd : sv->stop;

        FD_ZERO(&rd);
        FD_SET(listen_fd, &rd);
        FD_SET(sv->stop, &rd);
        if (select(maxfd + 1, &rd, NULL, NULL, NULL) < 0) {
            if (errno == EINTR)
                continue;
            abort();
        }
        if (FD_ISSET(sv->stop, &rd))
            return NULL;
        fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        if (first) {
            char sink[4096];

            first = 0;
            write_all(fd, sv->data, sv->size);
            shutdown(fd, SHUT_WR);
            while (read(fd, sink, sizeof sink) > 0)
                ;
        }
        close(fd);
    }
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    if (ftw->level > 0)
        remove(path);
    return 0;
}

static void empty_dir(const char *dir)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void cleanup(void)
{
    char cmd[128];

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz_client: could not remove %s\n", base);
}

static void setup(void)
{
    char tmpl[48];
    struct sockaddr_un sa = { .sun_family = AF_UNIX };

    fuzz_mkdtemp(tmpl, sizeof tmpl, "fuzz_client");
    snprintf(base, sizeof base, "%s", tmpl);
    snprintf(sock_path, sizeof sock_path, "%s/sock", base);
    snprintf(host, sizeof host, "unix:%s", sock_path);
    snprintf(down, sizeof down, "%s/down", base);
    snprintf(beside, sizeof beside, "%s/beside", base);
    if (mkdir(down, 0700) < 0 || mkdir(beside, 0700) < 0)
        abort();
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock_path);
    listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        listen(listen_fd, 8) < 0)
        abort();
    atexit(cleanup);
}

static int dir_is_empty(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d;
    struct dirent *e;
    int empty = 1;

    if (fd < 0)
        abort();
    d = fdopendir(fd);
    if (!d)
        abort();
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            empty = 0;
    closedir(d);
    return empty;
}

static void ask(struct client_session **sp, const struct dial_opts *o, uint8_t op)
{
    struct fs_error err;
    struct fs_meta m;
    json_t *answer = NULL, *entries = NULL;

    switch (op % 7) {
    case 0:
        if (remotefs_stat(*sp, "a/b.txt", &m, &answer, &err) == 0 && !answer)
            abort();
        json_decref(answer);
        break;
    case 1:
        /* Bit 7 (free in the seeds' op bytes): the glob's answer instead. */
        if ((op & 0x80 ? remotefs_glob(*sp, "a/*", &entries, &err)
                       : remotefs_list(*sp, "a", &entries, &err)) == 0 &&
            !json_is_array(entries))
            abort();
        json_decref(entries);
        break;
    case 2:
        remotefs_mkdir(*sp, "a/b", 1, &err);
        break;
    case 3:
        remotefs_rm(*sp, "a", 1, &err);
        break;
    case 4:
    case 5: {
        struct transfer_opts to = { .recursive = op % 7 == 5, .preserve = (op >> 3) & 1,
                                    .resume = (op >> 4) & 1 };
        char *remotes[] = { "a" };
        struct transfer x;

        if (transfer_init(&x, sp, host, o, &to) < 0)
            abort();
        transfer_get(&x, remotes, 1, down);
        transfer_free(&x);
        break;
    }
    default: {
        json_t *req = json_pack("{s:s, s:[s], s:b}", "type", "exec", "argv", "true",
                                "stdin", 0);

        if (!req)
            abort();
        exec_stream_run(*sp, req, 0, 0);
        json_decref(req);
        break;
    }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct server sv;
    struct dial_opts o;
    struct client_session *s;
    pthread_t th;
    int stop[2];

    if (size < 1)
        return 0;
    if (!base[0])
        setup();
    if (pipe2(stop, O_CLOEXEC) < 0)
        abort();
    sv.data = data + 1;
    sv.size = size - 1;
    sv.stop = stop[0];
    if (pthread_create(&th, NULL, serve, &sv) != 0)
        abort();

    dial_opts_init(&o);
    o.insecure_no_auth = 1;
    o.connect_timeout = 2;
    s = dial_open(host, &o);
    if (s) {
        ask(&s, &o, data[0]);
        client_session_close(s);
    }

    if (write(stop[1], "x", 1) != 1)
        abort();
    pthread_join(th, NULL);
    close(stop[0]);
    close(stop[1]);
    if (!dir_is_empty(beside))
        abort();
    empty_dir(down);
    return 0;
}
