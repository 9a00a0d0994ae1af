/*
 * fuzz_tty.c - libFuzzer harness for what `exec -t` parses: a terminal
 * request's modes and window size as ferryd reads them from a peer
 * (src/shared/ttymodes.c), and the escape-sequence state machine ferry
 * runs over every byte typed (src/ferry/escape.c).
 *
 * The input is read as JSON for the first two; whatever it is, it is also
 * typed, under `~` and under no escape character.  Properties: no crash
 * or leak; refused modes or sizes leave their output untouched; accepted
 * modes survive a round trip through ttymodes_to_json; the escape machine
 * never writes more than one byte past its input, consumes at least one
 * byte per call, and with no escape character passes everything as is.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "escape.h"
#include "ttymodes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void modes_and_size(const uint8_t *data, size_t size)
{
    json_t *j = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
    struct termios t, before, again;
    struct winsize ws, ws_before;
    char err[160];

    if (!j)
        return;
    memset(&t, 0x33, sizeof t);
    before = t;
    if (ttymodes_apply(j, &t, err, sizeof err) < 0) {
        if (memcmp(&t, &before, sizeof t) != 0)
            abort();
    } else {
        json_t *back = ttymodes_to_json(&t);

        memset(&again, 0x33, sizeof again);
        if (!back || ttymodes_apply(back, &again, err, sizeof err) != 0)
            abort();
        json_decref(back);
        /* Every mode in the table is in back, so both agree on them. */
        if (again.c_lflag != t.c_lflag || again.c_iflag != t.c_iflag ||
            again.c_oflag != t.c_oflag || memcmp(again.c_cc, t.c_cc, sizeof t.c_cc) != 0)
            abort();
    }
    memset(&ws, 0x44, sizeof ws);
    ws_before = ws;
    if (ttysize_from_json(j, &ws, err, sizeof err) < 0) {
        if (memcmp(&ws, &ws_before, sizeof ws) != 0)
            abort();
    } else if (ws.ws_row < 1 || ws.ws_row > TTY_MAX_CELLS || ws.ws_col < 1 ||
               ws.ws_col > TTY_MAX_CELLS) {
        abort();
    }
    json_decref(j);
}

static void typed(const uint8_t *data, size_t size, int ch)
{
    struct escape e;
    uint8_t *out = malloc(size + 1);
    size_t at = 0, total = 0;

    if (!out)
        return;
    escape_init(&e, ch);
    while (at < size) {
        size_t used = 0, n = 0;
        enum escape_action a = escape_feed(&e, data + at, size - at, &used, out, &n);

        if (used == 0 || used > size - at || n > used + 1)
            abort();
        if (ch == ESCAPE_OFF && (n != used || memcmp(out, data + at, n) != 0))
            abort();
        at += used;
        total += n;
        if (a == ESCAPE_DISCONNECT)
            break;
    }
    (void)total;
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    modes_and_size(data, size);
    typed(data, size, '~');
    typed(data, size, ESCAPE_OFF);
    return 0;
}
