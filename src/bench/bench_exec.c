/*
 * bench_exec.c - ferry-bench's exec mode: the request, and the classification of
 * ferryd's answer frames (see bench_exec.h).
 */
#include "bench_exec.h"

#include <errno.h>
#include <string.h>

#include "ferry/frame.h"
#include "proto.h"
#include "bench_tally.h"

json_t *bench_exec_request(char *const *argv, int argc)
{
    json_t *req, *args;

    /* stdin false: the command gets /dev/null, and the round trip is the
     * request and its answer alone, no stdin-eof. */
    if (argc == 0)
        return json_pack("{s:s, s:s, s:b}", "type", MSG_EXEC, "shell", "true", "stdin", 0);
    args = json_array();
    for (int i = 0; args && i < argc; i++) {
        if (json_array_append_new(args, json_string(argv[i])) < 0) {
            json_decref(args);
            return NULL;
        }
    }
    if (!args)
        return NULL;
    req = json_pack("{s:s, s:o, s:b}", "type", MSG_EXEC, "argv", args, "stdin", 0);
    return req;
}

/* {"type":"stdout","size":N} / stderr, as ferryd writes them: *body = N.
 * 1 when hdr is exactly that, else 0 (and the caller decodes it). */
static int output_frame(const uint8_t *hdr, uint32_t len, uint64_t *body)
{
    static const char out[] = "{\"type\":\"stdout\",\"size\":";
    static const char err[] = "{\"type\":\"stderr\",\"size\":";
    const size_t pre = sizeof out - 1;
    uint64_t v = 0;
    size_t i;

    if (len < pre + 2 || hdr[len - 1] != '}' ||
        (memcmp(hdr, out, pre) != 0 && memcmp(hdr, err, pre) != 0))
        return 0;
    /* At most 18 digits: cannot overflow; a leading 0 only for 0 itself. */
    if (len - 1 - pre > 18 || (hdr[pre] == '0' && len - 1 - pre > 1))
        return 0;
    for (i = pre; i < len - 1; i++) {
        if (hdr[i] < '0' || hdr[i] > '9')
            return 0;
        v = v * 10 + (uint64_t)(hdr[i] - '0');
    }
    *body = v;
    return 1;
}

/* The slow path: any header, validated as the frame parser would. */
static int decoded_frame(const uint8_t *hdr, uint32_t len, struct bench_exec_frame *f)
{
    json_t *h = NULL;
    const char *type;
    int r = 0;

    if (ferry_frame_decode_header(hdr, len, NULL, &h, &f->body) < 0)
        return -EPROTO;
    type = json_string_value(json_object_get(h, "type"));
    if (!type) {
        r = -EPROTO;
    } else if (strcmp(type, MSG_EXIT) == 0) {
        json_t *status = json_object_get(h, "status");

        f->last = 1;
        if (json_is_integer(status))
            f->fail = json_integer_value(status) == 0 ? 0 : FERRY_EEXIT_STATUS;
        else if (json_is_integer(json_object_get(h, "signal")))
            f->fail = FERRY_EEXIT_SIGNAL;
        else
            r = -EPROTO;
    } else if (strcmp(type, MSG_ERROR) == 0) {
        const char *code = json_string_value(json_object_get(h, "code"));

        /* A command that cannot start is answered by an error and then
         * its exit (127 or 126), which is what counts; any other error
         * has no exit after it, so the request cannot be timed. */
        if (!code || strcmp(code, ERR_SPAWN) != 0)
            r = FERRY_EREMOTE;
    } else if (strcmp(type, MSG_STDOUT) != 0 && strcmp(type, MSG_STDERR) != 0 &&
               strcmp(type, MSG_STDIN_ACK) != 0) {
        r = FERRY_EUNEXPECTED;
    }
    json_decref(h);
    return r;
}

int bench_exec_header(const uint8_t *hdr, uint32_t len, struct bench_exec_frame *f)
{
    static const char exit0[] = "{\"type\":\"exit\",\"status\":0}";

    f->body = 0;
    f->last = 0;
    f->fail = 0;
    if (len == sizeof exit0 - 1 && memcmp(hdr, exit0, len) == 0) {
        f->last = 1;
        return 0;
    }
    if (output_frame(hdr, len, &f->body))
        return 0;
    return decoded_frame(hdr, len, f);
}
