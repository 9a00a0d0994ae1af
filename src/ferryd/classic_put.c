/*
 * classic_put.c - the tutorials' FTP upload, saved atomically under the
 * root (see classic_put.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/ferry.h"
#include "audit.h"
#include "classic_put.h"
#include "fsops.h"
#include "proto.h"

/* The tutorial's header is a few dozen bytes; its size lives in
 * "filesize", which is what announces the body here. */
static const struct ferry_frame_limits put_limits = { .max_header = 4096, .size_key = "filesize" };

struct classic_put {
    struct ferry_conn *c;
    const struct fsroot *root;
    struct ferry_frame_parser *parser;
    struct fsops_upload up;     /* the file being received (fd >= 0) */
    uint64_t expected;
    int failed;                 /* this file's bytes are being discarded */
    struct audit_who who;       /* every audit line's peer and listener */
};

int classic_put_detect(const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len && i < 4; i++)
        if (data[i] == 0)
            return 1;
    return 0;
}

struct classic_put *classic_put_new(struct ferry_conn *c, const struct fsroot *root)
{
    struct classic_put *p = calloc(1, sizeof *p);

    if (!p)
        return NULL;
    p->c = c;
    p->root = root;
    p->who = (struct audit_who){ .peer = ferry_conn_peer(c), .listener = "classic" };
    fsops_upload_init(&p->up);
    if (ferry_frame_parser_new(&put_limits, &p->parser) < 0) {
        free(p);
        return NULL;
    }
    return p;
}

void classic_put_free(struct classic_put *p)
{
    if (!p)
        return;
    fsops_upload_abandon(&p->up, 0);
    ferry_frame_parser_free(p->parser);
    free(p);
}

/* The name the file is saved under: the last component of what the client
 * sent, as the tutorial's client itself sends os.path.basename. */
static const char *base_name(const char *filename)
{
    const char *slash = strrchr(filename, '/');
    return slash ? slash + 1 : filename;
}

/* The file service's rule (filesvc.c): ".NAME.ferry-part" and
 * ".NAME.XXXXXXXX.ferry-part" are the temporaries of transfers in
 * progress, the server's own; a client may not name them, or it could
 * replace another upload's temporary or leave a file nobody can list. */
static int is_reserved(const char *name)
{
    size_t len = strlen(name), sl = sizeof PROTO_PART_SUFFIX - 1;
    return len > sl + 1 && name[0] == '.' && memcmp(name + len - sl, PROTO_PART_SUFFIX, sl) == 0;
}

static void begin_file(struct classic_put *p, json_t *h, uint64_t size)
{
    const char *cmd = json_string_value(json_object_get(h, "cmd"));
    const char *filename = json_string_value(json_object_get(h, "filename"));
    const char *peer = ferry_conn_peer(p->c);
    const char *name;
    uint64_t have;
    char why[128];
    int r;

    p->expected = size;
    p->failed = 1;   /* until the temporary is open */
    if (!cmd || strcmp(cmd, "put") != 0) {
        /* The tutorial's server ignores a command it has no method for. */
        ferry_log_info("classic %s: ignoring cmd %s", peer, FERRY_LOG_Q(cmd));
        return;
    }
    if (!filename) {
        ferry_log_info("classic %s: put without a filename; discarded", peer);
        return;
    }
    name = base_name(filename);
    r = fspath_check(name, why, sizeof why);
    if (r == 0 && strcmp(name, ".") == 0)
        r = FERRY_EPATH_DOT;
    if (r == 0 && is_reserved(name)) {
        ferry_log_info("classic %s: put refused: names of the form .NAME" PROTO_PART_SUFFIX
                       " are reserved for transfers in progress", peer);
        return;
    }
    if (r == 0)
        r = fsops_upload_open(p->root, name, 0, &p->up, &have);
    if (r < 0) {
        audit_file(&p->who, "put", filename, -1, "error", app_strerror(r));
        return;
    }
    p->failed = 0;
}

static void end_file(struct classic_put *p)
{
    int r;

    if (p->failed)
        return;
    char name[sizeof p->up.name];
    memcpy(name, p->up.name, sizeof name);   /* commit releases p->up */
    r = fsops_upload_commit(&p->up, 0644, NULL, 0, 0);
    if (r < 0)
        audit_file(&p->who, "put", name, -1, "error", strerror(-r));
    else
        audit_file(&p->who, "put", name, (int64_t)p->expected, "ok", NULL);
}

int classic_put_feed(struct classic_put *p, const uint8_t *data, size_t len)
{
    /* Until the parser wants more: the END of a body that ends the input
     * comes from a call that consumes nothing. */
    for (;;) {
        struct ferry_frame_event ev;
        size_t used = 0;
        int r = ferry_frame_parser_feed(p->parser, data, len, &used, &ev);

        if (r < 0) {
            ferry_log_info("classic %s: upload stream broken: %s", ferry_conn_peer(p->c),
                           ferry_strerror(r));
            return r;
        }
        data += used;
        len -= used;
        if (ev.type == FERRY_FRAME_NEED_MORE)
            return 0;
        switch (ev.type) {
        case FERRY_FRAME_HEADER:
            begin_file(p, ev.header, ev.body_size);
            json_decref(ev.header);
            break;
        case FERRY_FRAME_BODY:
            if (!p->failed) {
                r = fsops_upload_write(&p->up, ev.chunk, ev.chunk_len);
                if (r < 0) {
                    /* Nobody to tell in this protocol: log it, drop the
                     * file, and keep the stream in step. */
                    audit_file(&p->who, "put", p->up.name, -1, "error",
                               strerror(-r));
                    fsops_upload_abandon(&p->up, 0);
                    p->failed = 1;
                }
            }
            break;
        case FERRY_FRAME_END:
            end_file(p);
            break;
        default:
            break;
        }
    }
}
