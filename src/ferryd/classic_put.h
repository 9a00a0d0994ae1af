/*
 * classic_put.h - the tutorials' FTP upload (seed 002) on the --classic
 * listener (docs/PROTOCOL.md 3.2): frames of a u32 little-endian header
 * length, {"cmd":"put","filename":NAME,"filesize":N}, then N bytes, any
 * number of them on one connection, with no reply.  Each file is saved
 * under the root by its base name, committed the way every upload is
 * (fsops.h: a temporary, renamed only once all N bytes are in).
 */
#ifndef FERRYD_CLASSIC_PUT_H
#define FERRYD_CLASSIC_PUT_H

#include <stddef.h>
#include <stdint.h>

#include "ferry/server.h"
#include "fspath.h"

struct classic_put;   /* opaque */

/* Whether a connection's first bytes are a framed upload rather than a
 * command line: a header length below 16 MiB has a NUL in its top byte,
 * and command text never contains NUL. */
int classic_put_detect(const uint8_t *data, size_t len);

/* NULL on allocation failure. */
struct classic_put *classic_put_new(struct ferry_conn *c, const struct fsroot *root);

/* Everything the connection receives from now on.  0, or a negative code
 * when the stream broke framing (the caller closes the connection). */
int classic_put_feed(struct classic_put *p, const uint8_t *data, size_t len);

/* Free; an upload cut off part way leaves nothing under its name. */
void classic_put_free(struct classic_put *p);

#endif
