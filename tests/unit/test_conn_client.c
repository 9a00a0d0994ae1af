/*
 * test_conn_client.c - connections a client opens on its own loop
 * (ferry_conn_open), receive-side zero copy (ferry_transport_recvfile) and
 * bodies stored straight into files (ferry_conn_recv_body_to_file), over
 * real loopback sockets against a libferry server on a thread.
 *
 * Every test counts the process's descriptors before it starts its server
 * and after it has stopped it: the client side must leave none behind
 * (its transports, recvfile's pipe, the loop's state).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "ferry/ferry.h"
#include "unit_util.h"

#define SAFETY_S 10
#define BIG_BODY (3u * 1024u * 1024u + 777u)   /* several pipes' and read chunks' worth */

static const uint8_t psk_key[32] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                     17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32 };

static uint8_t pattern_byte(uint64_t i)
{
    return (uint8_t)(i * 131u + i / 251u);
}

static uint8_t *pattern(size_t len)
{
    uint8_t *p = malloc(len ? len : 1);

    assert_non_null(p);
    for (size_t i = 0; i < len; i++)
        p[i] = pattern_byte(i);
    return p;
}

/* An unlinked temporary file. */
static int temp_file(void)
{
    char path[] = "/tmp/ferry-conn-client-XXXXXX";
    int fd = mkstemp(path);

    assert_true(fd >= 0);
    unlink(path);
    return fd;
}

/* ---- the server: echo, and blobs on request ------------------------------------- */

/* Server side, per connection: the frame being received. */
struct srv_frame {
    char cmd[16];
    uint64_t n;          /* blob: body bytes asked for */
    uint8_t *body;
    size_t len;
};

static int srv_on_frame(struct ferry_conn *c, struct ferry_frame_event *ev, void *arg)
{
    struct srv_frame *f = ferry_conn_data(c);
    (void)arg;

    if (!f) {
        f = calloc(1, sizeof *f);
        if (!f)
            return -ENOMEM;
        ferry_conn_set_data(c, f);
    }
    switch (ev->type) {
    case FERRY_FRAME_HEADER: {
        const char *cmd = json_string_value(json_object_get(ev->header, "cmd"));
        snprintf(f->cmd, sizeof f->cmd, "%s", cmd ? cmd : "");
        f->n = (uint64_t)json_integer_value(json_object_get(ev->header, "n"));
        json_decref(ev->header);
        f->len = 0;
        f->body = realloc(f->body, ev->body_size ? ev->body_size : 1);
        return f->body ? 0 : -ENOMEM;
    }
    case FERRY_FRAME_BODY:
        memcpy(f->body + f->len, ev->chunk, ev->chunk_len);
        f->len += ev->chunk_len;
        return 0;
    case FERRY_FRAME_END: {
        json_t *h = json_pack("{s:s}", "cmd", f->cmd);
        int r;
        if (strcmp(f->cmd, "blob") == 0) {
            uint8_t *blob = pattern((size_t)f->n);
            r = ferry_conn_write_frame(c, h, blob, (size_t)f->n);
            free(blob);
        } else {
            r = ferry_conn_write_frame(c, h, f->body, f->len);
        }
        json_decref(h);
        return r;
    }
    default:
        return 0;
    }
}

static void srv_on_close(struct ferry_conn *c, int reason, void *arg)
{
    struct srv_frame *f = ferry_conn_data(c);
    (void)reason;
    (void)arg;
    if (f)
        free(f->body);
    free(f);
}

struct running {
    struct ferry_server *s;
    struct ferry_tls *tls;   /* the server's configuration, or NULL */
    char bound[FERRY_ADDRSTRLEN];
    pthread_t thread;
    int result;
};

static void *run_thread(void *arg)
{
    struct running *r = arg;
    r->result = ferry_server_run(r->s);
    return NULL;
}

static int psk_lookup(const char *identity, uint8_t key[FERRY_TLS_PSK_MAX], void *arg)
{
    (void)arg;
    if (strcmp(identity, "ferry") != 0)
        return 0;
    memcpy(key, psk_key, sizeof psk_key);
    return (int)sizeof psk_key;
}

static struct ferry_tls *tls_config(enum ferry_tls_role role, const uint8_t *key)
{
    struct ferry_tls_opts o = { .role = role };
    struct ferry_tls *cfg = NULL;
    char err[256] = "";

    if (role == FERRY_TLS_SERVER) {
        o.psk_lookup = psk_lookup;
    } else {
        o.psk = key;
        o.psk_len = 32;
        o.psk_identity = "ferry";
    }
    assert_int_equal(ferry_tls_new(&o, err, sizeof err, &cfg), 0);
    return cfg;
}

static void start(struct running *r, int tls)
{
    static const struct ferry_handler h = { .on_frame = srv_on_frame, .on_close = srv_on_close };
    struct ferry_server_opts o = { .model = FERRY_MODEL_EVENT };

    memset(r, 0, sizeof *r);
    assert_int_equal(ferry_server_new(&o, &r->s), 0);
    if (tls) {
        r->tls = tls_config(FERRY_TLS_SERVER, NULL);
        assert_int_equal(ferry_server_listen_tls(r->s, "127.0.0.1:0", FERRY_SOCK_STREAM, &h,
                                                 r->tls, r->bound), 0);
    } else {
        assert_int_equal(ferry_server_listen(r->s, "127.0.0.1:0", FERRY_SOCK_STREAM, &h, r->bound), 0);
    }
    assert_int_equal(pthread_create(&r->thread, NULL, run_thread, r), 0);
}

static void stop(struct running *r)
{
    ferry_server_stop(r->s);
    pthread_join(r->thread, NULL);
    assert_int_equal(r->result, 0);
    ferry_server_free(r->s);
    ferry_tls_free(r->tls);
}

static int dial_fd(const char *bound)
{
    struct ferry_addr a;
    struct timeval tv = { .tv_sec = SAFETY_S };
    int fd;

    assert_int_equal(ferry_addr_parse(bound, -1, &a), 0);
    fd = ferry_connect(&a, 5000);
    assert_true(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static struct ferry_transport *dial(const char *bound, struct ferry_tls *tls)
{
    struct ferry_transport *t = NULL;
    int fd = dial_fd(bound);

    if (tls)
        assert_int_equal(ferry_transport_new_tls(fd, tls, NULL, &t), 0);
    else
        assert_int_equal(ferry_transport_new_fd(fd, &t), 0);
    return t;
}

/* ---- the client: one request, one reply ---------------------------------------- */

struct client {
    const char *cmd;
    const uint8_t *body;     /* echo: what to send */
    size_t body_len;
    uint64_t blob;           /* blob: what to ask for */
    int to_file;             /* store the reply's body in file_fd */
    int file_fd;

    int opened, closed, close_reason;
    int ends;
    uint8_t *got;            /* the reply's body, when not to a file */
    size_t got_len;
    uint64_t body_size;
    uint64_t spliced;        /* BODY bytes that came with chunk NULL */
    uint64_t copied;         /* BODY bytes that came with chunk set */
    int misplaced_to_file;   /* recv_body_to_file outside HEADER: its result */
    int file_error;          /* the FRAME_ERROR code, if any */
};

static int send_request(struct ferry_conn *c, struct client *cl)
{
    json_t *h = json_pack("{s:s, s:I}", "cmd", cl->cmd, "n", (json_int_t)cl->blob);
    int r = ferry_conn_write_frame(c, h, cl->body, cl->body_len);

    json_decref(h);
    return r;
}

static int cli_on_open(struct ferry_conn *c, void *arg)
{
    struct client *cl = arg;

    (void)c;
    cl->opened++;
    return 0;
}

static int cli_on_frame(struct ferry_conn *c, struct ferry_frame_event *ev, void *arg)
{
    struct client *cl = arg;

    assert_int_equal(cl->opened, 1);
    switch (ev->type) {
    case FERRY_FRAME_HEADER:
        json_decref(ev->header);
        cl->body_size = ev->body_size;
        if (cl->to_file && ev->body_size > 0)
            assert_int_equal(ferry_conn_recv_body_to_file(c, cl->file_fd, 0), 0);
        else
            cl->got = malloc(ev->body_size ? ev->body_size : 1);
        return 0;
    case FERRY_FRAME_BODY:
        if (ev->chunk) {
            if (!cl->to_file)
                memcpy(cl->got + cl->got_len, ev->chunk, ev->chunk_len);
            cl->copied += ev->chunk_len;
        } else {
            assert_true(cl->to_file);
            cl->spliced += ev->chunk_len;
        }
        cl->got_len += ev->chunk_len;
        cl->misplaced_to_file = ferry_conn_recv_body_to_file(c, cl->file_fd, 0);
        return 0;
    case FERRY_FRAME_END:
        cl->ends++;
        ferry_conn_close(c);
        return 0;
    case FERRY_FRAME_ERROR:
        cl->file_error = ev->error;
        return 0;
    default:
        return 0;
    }
}

static void cli_on_close(struct ferry_conn *c, int reason, void *arg)
{
    struct client *cl = arg;

    (void)c;
    cl->closed++;
    cl->close_reason = reason;
}

static const struct ferry_handler client_handler = {
    .on_open = cli_on_open, .on_frame = cli_on_frame, .on_close = cli_on_close,
};

/* Open a client connection for cl on loop; the request is queued at once,
 * before the loop runs (it goes out once the connection has started). */
static struct ferry_conn *open_client(struct ferry_loop *loop, struct running *srv,
                                      struct ferry_tls *tls, struct client *cl)
{
    struct ferry_handler h = client_handler;
    struct ferry_conn *c = NULL;

    h.arg = cl;
    cl->file_fd = cl->to_file ? cl->file_fd : -1;
    assert_int_equal(ferry_conn_open(loop, dial(srv->bound, tls), srv->bound, &h, NULL, &c), 0);
    assert_non_null(c);
    assert_non_null(ferry_conn_loop(c));
    assert_int_equal(ferry_conn_stopping(c), 0);
    assert_int_equal(send_request(c, cl), 0);
    assert_int_equal(cl->opened, 0);   /* never inside ferry_conn_open */
    return c;
}

static void check_reply_in_memory(const struct client *cl, const uint8_t *want, size_t len)
{
    assert_int_equal(cl->opened, 1);
    assert_int_equal(cl->ends, 1);
    assert_int_equal(cl->closed, 1);
    assert_int_equal(cl->close_reason, 0);
    assert_int_equal(cl->body_size, len);
    assert_int_equal(cl->got_len, len);
    assert_memory_equal(cl->got, want, len);
}

static void check_file(int fd, uint64_t off, const uint8_t *want, size_t len)
{
    uint8_t *have = malloc(len + 1);

    assert_non_null(have);
    assert_int_equal(pread(fd, have, len + 1, (off_t)off), (ssize_t)len);
    assert_memory_equal(have, want, len);
    free(have);
}

/* ---- tests ---------------------------------------------------------------------- */

static void test_client_exchanges_frames(void **state)
{
    int fds = count_fds();
    struct running srv;
    struct ferry_loop *loop = NULL;
    struct client cl = { .cmd = "echo", .body = (const uint8_t *)"hello, ferry", .body_len = 12 };
    (void)state;

    start(&srv, 0);
    assert_int_equal(ferry_loop_new(&loop), 0);
    open_client(loop, &srv, NULL, &cl);
    /* The loop returns by itself once the connection is gone. */
    assert_int_equal(ferry_loop_run(loop), 0);
    check_reply_in_memory(&cl, cl.body, cl.body_len);
    assert_int_equal(cl.spliced, 0);
    free(cl.got);
    ferry_loop_free(loop);
    stop(&srv);
    assert_int_equal(count_fds(), fds);
}

static void test_many_connections_one_loop(void **state)
{
    enum { N = 12 };
    int fds = count_fds();
    struct running srv;
    struct ferry_loop *loop = NULL;
    struct client cl[N];
    char bodies[N][32];
    (void)state;

    start(&srv, 0);
    assert_int_equal(ferry_loop_new(&loop), 0);
    /* Twice on the same loop: the shared state goes with the last
     * connection and comes back with the next. */
    for (int round = 0; round < 2; round++) {
        uint64_t ids[N];
        for (int i = 0; i < N; i++) {
            snprintf(bodies[i], sizeof bodies[i], "round %d conn %d", round, i);
            cl[i] = (struct client){ .cmd = "echo", .body = (const uint8_t *)bodies[i],
                                     .body_len = strlen(bodies[i]) };
            ids[i] = ferry_conn_id(open_client(loop, &srv, NULL, &cl[i]));
            for (int j = 0; j < i; j++)
                assert_true(ids[j] != ids[i]);
        }
        assert_int_equal(ferry_loop_run(loop), 0);
        for (int i = 0; i < N; i++) {
            check_reply_in_memory(&cl[i], cl[i].body, cl[i].body_len);
            free(cl[i].got);
        }
    }
    ferry_loop_free(loop);
    stop(&srv);
    assert_int_equal(count_fds(), fds);
}

static void test_client_over_tls(void **state)
{
    int fds = count_fds();
    struct running srv;
    struct ferry_loop *loop = NULL;
    struct ferry_tls *ctls = tls_config(FERRY_TLS_CLIENT, psk_key);
    uint8_t *big = pattern(BIG_BODY);
    struct client small = { .cmd = "echo", .body = (const uint8_t *)"over tls", .body_len = 8 };
    struct client blob = { .cmd = "blob", .blob = BIG_BODY };
    (void)state;

    start(&srv, 1);
    assert_int_equal(ferry_loop_new(&loop), 0);
    open_client(loop, &srv, ctls, &small);
    open_client(loop, &srv, ctls, &blob);
    assert_int_equal(ferry_loop_run(loop), 0);
    check_reply_in_memory(&small, small.body, small.body_len);
    check_reply_in_memory(&blob, big, BIG_BODY);
    free(small.got);
    free(blob.got);
    free(big);
    ferry_loop_free(loop);
    stop(&srv);
    ferry_tls_free(ctls);
    assert_int_equal(count_fds(), fds);
}

static void test_client_tls_handshake_fails(void **state)
{
    static const uint8_t wrong[32] = { 32, 31, 30 };   /* not the server's */
    int fds = count_fds();
    struct running srv;
    struct ferry_loop *loop = NULL;
    struct ferry_tls *ctls = tls_config(FERRY_TLS_CLIENT, wrong);
    struct client cl = { .cmd = "echo", .body = (const uint8_t *)"x", .body_len = 1 };
    (void)state;

    start(&srv, 1);
    assert_int_equal(ferry_loop_new(&loop), 0);
    open_client(loop, &srv, ctls, &cl);
    assert_int_equal(ferry_loop_run(loop), 0);
    assert_int_equal(cl.opened, 0);
    assert_int_equal(cl.closed, 1);
    assert_true(cl.close_reason < 0);
    ferry_loop_free(loop);
    stop(&srv);
    ferry_tls_free(ctls);
    assert_int_equal(count_fds(), fds);
}

static int dummy_serve(struct ferry_conn *c, void *arg)
{
    (void)c;
    (void)arg;
    return 0;
}

static int dummy_data(struct ferry_conn *c, const void *data, size_t len, void *arg)
{
    (void)c;
    (void)data;
    (void)len;
    (void)arg;
    return 0;
}

static void test_open_refuses_bad_handlers(void **state)
{
    struct ferry_loop *loop = NULL;
    struct ferry_transport *t = NULL;
    struct ferry_conn *c = (struct ferry_conn *)1;
    int sv[2];
    int fds = count_fds();
    (void)state;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(ferry_transport_new_fd(sv[0], &t), 0);
    assert_int_equal(ferry_loop_new(&loop), 0);
    struct ferry_handler serve = { .serve = dummy_serve };
    struct ferry_handler both = { .on_data = dummy_data, .on_frame = cli_on_frame };
    struct ferry_handler none = { .on_close = cli_on_close };
    assert_int_equal(ferry_conn_open(loop, t, "x", &serve, NULL, &c), -EINVAL);
    assert_null(c);
    assert_int_equal(ferry_conn_open(loop, t, "x", &both, NULL, &c), -EINVAL);
    assert_int_equal(ferry_conn_open(loop, t, "x", &none, NULL, &c), -EINVAL);
    /* t is still ours. */
    ferry_transport_free(t);
    close(sv[1]);
    ferry_loop_free(loop);
    assert_int_equal(count_fds(), fds);
}

/* A loop freed with connections still open closes them (on_close runs)
 * and keeps nothing. */
static void test_loop_freed_with_connections(void **state)
{
    int fds = count_fds();
    struct running srv;
    struct ferry_loop *loop = NULL;
    struct client cl[3] = {
        { .cmd = "echo", .body = (const uint8_t *)"a", .body_len = 1 },
        { .cmd = "echo", .body = (const uint8_t *)"b", .body_len = 1 },
        { .cmd = "echo", .body = (const uint8_t *)"c", .body_len = 1 },
    };
    (void)state;

    start(&srv, 0);
    assert_int_equal(ferry_loop_new(&loop), 0);
    for (int i = 0; i < 3; i++)
        open_client(loop, &srv, NULL, &cl[i]);
    ferry_loop_free(loop);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(cl[i].opened, 0);
        assert_int_equal(cl[i].closed, 1);
        assert_int_equal(cl[i].close_reason, FERRY_ECLOSED);
    }
    stop(&srv);
    assert_int_equal(count_fds(), fds);
}

/* Closed before the loop ran: what was queued still goes out, the handler
 * never meets the connection, and on_close still reports its end. */
static void test_close_before_start(void **state)
{
    int fds = count_fds();
    struct running srv;
    struct ferry_loop *loop = NULL;
    struct client cl = { .cmd = "echo", .body = (const uint8_t *)"bye", .body_len = 3 };
    struct client tls_cl = { .cmd = "echo", .body = (const uint8_t *)"bye", .body_len = 3 };
    struct ferry_tls *ctls = tls_config(FERRY_TLS_CLIENT, psk_key);
    (void)state;

    start(&srv, 0);
    assert_int_equal(ferry_loop_new(&loop), 0);
    ferry_conn_close(open_client(loop, &srv, NULL, &cl));
    assert_int_equal(ferry_loop_run(loop), 0);
    assert_int_equal(cl.opened, 0);
    assert_int_equal(cl.closed, 1);
    assert_int_equal(cl.close_reason, 0);
    ferry_loop_free(loop);
    stop(&srv);

    start(&srv, 1);
    assert_int_equal(ferry_loop_new(&loop), 0);
    ferry_conn_close(open_client(loop, &srv, ctls, &tls_cl));
    assert_int_equal(ferry_loop_run(loop), 0);
    assert_int_equal(tls_cl.opened, 0);
    assert_int_equal(tls_cl.closed, 1);
    ferry_loop_free(loop);
    stop(&srv);
    ferry_tls_free(ctls);
    assert_int_equal(count_fds(), fds);
}

/* ---- recvfile ------------------------------------------------------------------- */

struct writer {
    int fd;
    const uint8_t *data;
    size_t len;
};

static void *write_all_thread(void *arg)
{
    struct writer *w = arg;
    size_t done = 0;

    while (done < w->len) {
        ssize_t n = write(w->fd, w->data + done, w->len - done);
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    shutdown(w->fd, SHUT_WR);
    return NULL;
}

/* A connected TCP pair on loopback: *a and *b. */
static void tcp_pair(int *a, int *b)
{
    struct sockaddr_in sin = { .sin_family = AF_INET };
    socklen_t len = sizeof sin;
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(l >= 0);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(l, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(listen(l, 1), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&sin, &len), 0);
    *a = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(*a >= 0);
    assert_int_equal(connect(*a, (struct sockaddr *)&sin, sizeof sin), 0);
    *b = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    assert_true(*b >= 0);
    close(l);
}

/* Everything the peer sends lands in the file at the offset asked, byte
 * for byte, and the file's own position does not move. */
static void recvfile_moves_bytes(int tcp)
{
    int fds = count_fds();
    uint8_t *data = pattern(BIG_BODY);
    struct ferry_transport *t = NULL;
    struct writer w = { .data = data, .len = BIG_BODY };
    uint64_t off = 100, total = 0;
    int sv[2], file = temp_file(), file_err = 1;
    pthread_t th;

    if (tcp)
        tcp_pair(&sv[0], &sv[1]);
    else
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(ferry_transport_new_fd(sv[0], &t), 0);
    w.fd = sv[1];
    assert_int_equal(pthread_create(&th, NULL, write_all_thread, &w), 0);
    for (;;) {
        ssize_t n = ferry_transport_recvfile(t, file, &off, BIG_BODY, &file_err);
        assert_int_equal(file_err, 0);
        assert_true(n >= 0);
        if (n == 0)
            break;
        total += (uint64_t)n;
        assert_int_equal(off, 100 + total);
    }
    pthread_join(th, NULL);
    assert_int_equal(total, BIG_BODY);
    assert_int_equal(lseek(file, 0, SEEK_CUR), 0);
    check_file(file, 100, data, BIG_BODY);
    ferry_transport_free(t);
    close(sv[1]);
    close(file);
    free(data);
    assert_int_equal(count_fds(), fds);
}

static void test_recvfile_tcp(void **state)
{
    (void)state;
    recvfile_moves_bytes(1);
}

static void test_recvfile_unix(void **state)
{
    (void)state;
    recvfile_moves_bytes(0);
}

/* Non-blocking and nothing sent yet: -EAGAIN, nothing stored. */
static void test_recvfile_nonblocking_empty(void **state)
{
    struct ferry_transport *t = NULL;
    uint64_t off = 0;
    int sv[2], file = temp_file(), file_err = 1;
    (void)state;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(ferry_transport_new_fd(sv[0], &t), 0);
    assert_int_equal(ferry_transport_set_nonblocking(t, 1), 0);
    assert_int_equal(ferry_transport_recvfile(t, file, &off, 4096, &file_err), -EAGAIN);
    assert_int_equal(file_err, 0);
    assert_int_equal(off, 0);
    ferry_transport_free(t);
    close(sv[1]);
    close(file);
}

/* TLS decrypts in user space, a pipe is no socket: both say so, and take
 * nothing from the stream. */
static void test_recvfile_unsupported(void **state)
{
    int fds = count_fds();
    struct ferry_tls *ctls = tls_config(FERRY_TLS_CLIENT, psk_key);
    struct ferry_transport *t = NULL;
    uint64_t off = 0;
    int sv[2], p[2], file = temp_file(), file_err = 1;
    char c = 0;
    (void)state;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(write(sv[1], "z", 1), 1);
    assert_int_equal(ferry_transport_new_tls(sv[0], ctls, NULL, &t), 0);
    assert_int_equal(ferry_transport_recvfile(t, file, &off, 4096, &file_err), FERRY_EUNSUPPORTED);
    assert_int_equal(file_err, 0);
    assert_int_equal(off, 0);
    assert_int_equal(recv(sv[0], &c, 1, MSG_DONTWAIT), 1);   /* still there */
    assert_int_equal(c, 'z');
    ferry_transport_free(t);
    close(sv[1]);

    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    assert_int_equal(ferry_transport_new_fd(p[0], &t), 0);
    assert_int_equal(ferry_transport_recvfile(t, file, &off, 4096, NULL), FERRY_EUNSUPPORTED);
    ferry_transport_free(t);
    close(p[1]);
    close(file);
    ferry_tls_free(ctls);
    assert_int_equal(count_fds(), fds);
}

/* A file that cannot take the bytes is the file's error, told apart. */
static void test_recvfile_file_error(void **state)
{
    int fds = count_fds();
    struct ferry_transport *t = NULL;
    uint64_t off = 0;
    int sv[2], file = open("/dev/null", O_RDONLY | O_CLOEXEC), file_err = 0;
    ssize_t n;
    (void)state;

    assert_true(file >= 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(write(sv[1], "abcdef", 6), 6);
    assert_int_equal(ferry_transport_new_fd(sv[0], &t), 0);
    n = ferry_transport_recvfile(t, file, &off, 6, &file_err);
    assert_true(n < 0);
    assert_true(file_err < 0);
    assert_int_equal(n, file_err);
    /* The transport is still usable: its pipe starts clean. */
    int good = temp_file();
    assert_int_equal(write(sv[1], "ghi", 3), 3);
    off = 0;
    assert_int_equal(ferry_transport_recvfile(t, good, &off, 3, &file_err), 3);
    assert_int_equal(file_err, 0);
    check_file(good, 0, (const uint8_t *)"ghi", 3);
    ferry_transport_free(t);
    close(sv[1]);
    close(file);
    close(good);
    assert_int_equal(count_fds(), fds);
}

/* ---- bodies into files ---------------------------------------------------------- */

static void body_to_file(int tls)
{
    int fds = count_fds();
    struct running srv;
    struct ferry_loop *loop = NULL;
    struct ferry_tls *ctls = tls ? tls_config(FERRY_TLS_CLIENT, psk_key) : NULL;
    uint8_t *big = pattern(BIG_BODY);
    struct client cl = { .cmd = "blob", .blob = BIG_BODY, .to_file = 1, .file_fd = temp_file() };
    struct client empty = { .cmd = "blob", .blob = 0, .to_file = 1, .file_fd = cl.file_fd };

    start(&srv, tls);
    assert_int_equal(ferry_loop_new(&loop), 0);
    open_client(loop, &srv, ctls, &cl);
    open_client(loop, &srv, ctls, &empty);
    assert_int_equal(ferry_loop_run(loop), 0);
    assert_int_equal(cl.opened, 1);
    assert_int_equal(cl.ends, 1);
    assert_int_equal(cl.closed, 1);
    assert_int_equal(cl.close_reason, 0);
    assert_int_equal(cl.file_error, 0);
    assert_int_equal(cl.got_len, BIG_BODY);
    assert_int_equal(cl.spliced + cl.copied, BIG_BODY);
    assert_int_equal(cl.misplaced_to_file, -EINVAL);
    if (tls)
        assert_int_equal(cl.spliced, 0);
    else
        assert_true(cl.spliced > 0);   /* more than one read's worth came around the parser */
    check_file(cl.file_fd, 0, big, BIG_BODY);
    assert_int_equal(empty.ends, 1);
    assert_int_equal(empty.got_len, 0);
    free(empty.got);
    close(cl.file_fd);
    free(big);
    ferry_loop_free(loop);
    stop(&srv);
    ferry_tls_free(ctls);
    assert_int_equal(count_fds(), fds);
}

static void test_body_to_file_plain(void **state)
{
    (void)state;
    body_to_file(0);
}

static void test_body_to_file_tls(void **state)
{
    (void)state;
    body_to_file(1);
}

/* The file refuses the body: one FRAME_ERROR with the file's code, then
 * the connection closes. */
static void test_body_to_file_error(void **state)
{
    int fds = count_fds();
    struct running srv;
    struct ferry_loop *loop = NULL;
    struct client cl = { .cmd = "blob", .blob = BIG_BODY, .to_file = 1,
                         .file_fd = open("/dev/null", O_RDONLY | O_CLOEXEC) };
    (void)state;

    assert_true(cl.file_fd >= 0);
    start(&srv, 0);
    assert_int_equal(ferry_loop_new(&loop), 0);
    open_client(loop, &srv, NULL, &cl);
    assert_int_equal(ferry_loop_run(loop), 0);
    assert_int_equal(cl.file_error, -EBADF);
    assert_int_equal(cl.ends, 0);
    assert_int_equal(cl.closed, 1);
    close(cl.file_fd);
    ferry_loop_free(loop);
    stop(&srv);
    assert_int_equal(count_fds(), fds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_exchanges_frames),
        cmocka_unit_test(test_many_connections_one_loop),
        cmocka_unit_test(test_client_over_tls),
        cmocka_unit_test(test_client_tls_handshake_fails),
        cmocka_unit_test(test_open_refuses_bad_handlers),
        cmocka_unit_test(test_loop_freed_with_connections),
        cmocka_unit_test(test_close_before_start),
        cmocka_unit_test(test_recvfile_tcp),
        cmocka_unit_test(test_recvfile_unix),
        cmocka_unit_test(test_recvfile_nonblocking_empty),
        cmocka_unit_test(test_recvfile_unsupported),
        cmocka_unit_test(test_recvfile_file_error),
        cmocka_unit_test(test_body_to_file_plain),
        cmocka_unit_test(test_body_to_file_tls),
        cmocka_unit_test(test_body_to_file_error),
    };

    signal(SIGPIPE, SIG_IGN);
    ferry_log_set_level(FERRY_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
