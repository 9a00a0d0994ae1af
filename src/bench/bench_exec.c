/*
 * bench_exec.c - ferry-bench's exec mode: the request, and the meaning of
 * ferryd's answer frames (see bench_exec.h).
 */
#include "bench_exec.h"

#include <errno.h>
#include <string.h>

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

int bench_exec_header(const json_t *h, struct bench_exec_frame *f)
{
    const char *type;
    int r = 0;

    f->last = 0;
    f->fail = 0;
    type = json_string_value(json_object_get(h, "type"));
    if (!type) {
        r = -EPROTO;
    } else if (strcmp(type, MSG_EXIT) == 0) {
        const json_t *status = json_object_get(h, "status");

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
    return r;
}
