/*
 * bench_exec.h - ferry-bench's exec mode: the one exec request a run sends over
 * and over, and the reading of ferryd's answers to it (PROTOCOL.md 2.2:
 * stdout/stderr frames, then exit).
 */
#ifndef FERRY_BENCH_EXEC_H
#define FERRY_BENCH_EXEC_H

#include <stdint.h>

#include <jansson.h>

/* The exec request's header: {"type":"exec","shell":"true","stdin":false}
 * without a command, else {"type":"exec","argv":[...],"stdin":false}.
 * A new reference, or NULL when out of memory. */
json_t *bench_exec_request(char *const *argv, int argc);

/* What one frame of the answer means for the request it answers. */
struct bench_exec_frame {
    int last;          /* the answer ends with this frame */
    int fail;          /* 0, or the code of a failed command (counted, not fatal):
                          FERRY_EEXIT_STATUS, FERRY_EEXIT_SIGNAL */
};

/*
 * Classify one header of ferryd's answer, as libferry's frame parser
 * decoded it (its body, output to discard, is the parser's to skip).
 * Returns 0, or a negative code that ends the connection: FERRY_EREMOTE
 * (an error other than "spawn", e.g. "busy" or "protocol"),
 * FERRY_EUNEXPECTED, -EPROTO.
 */
int bench_exec_header(const json_t *h, struct bench_exec_frame *f);

#endif
