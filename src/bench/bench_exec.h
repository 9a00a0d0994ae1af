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
    uint64_t body;     /* body bytes to skip (output is read and discarded) */
    int last;          /* the answer ends with this frame */
    int fail;          /* 0, or the tally code of a failed command (counted, not fatal) */
};

/*
 * Classify one header of ferryd's answer.  The frames a command that
 * succeeds produces are recognised by their exact bytes (ferryd's encoder
 * is compact and puts "size" last), without parsing or allocating; any
 * other header is decoded and validated in full.  Returns 0, or a negative
 * code that ends the connection: FERRY_EREMOTE (an error other than
 * "spawn", e.g. "busy" or "protocol"), FERRY_EUNEXPECTED, -EPROTO.
 */
int bench_exec_header(const uint8_t *hdr, uint32_t len, struct bench_exec_frame *f);

#endif
