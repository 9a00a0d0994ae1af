/*
 * ttymodes.c - terminal modes and window sizes to and from JSON
 * (ttymodes.h, docs/PROTOCOL.md 2.8).
 *
 * Modes travel by name, not as raw termios words: the bits of c_lflag and
 * the slots of c_cc differ between systems, the names do not (ssh sends
 * its modes the same way, as opcodes).  A name we do not know is skipped
 * so that a newer client can send more; a value that cannot be right is an
 * error, and then nothing is applied at all.
 */
#include "ttymodes.h"

#include <errno.h>
#include <string.h>

#include "errbuf.h"

enum mode_kind { MODE_CHAR, MODE_IFLAG, MODE_OFLAG, MODE_CFLAG, MODE_LFLAG };

struct mode {
    const char *name;
    enum mode_kind kind;
    tcflag_t bit;        /* flags: the bit; MODE_CHAR: the c_cc index */
};

#define CC(n)    { #n, MODE_CHAR, n }
#define IFL(n)   { #n, MODE_IFLAG, n }
#define OFL(n)   { #n, MODE_OFLAG, n }
#define CFL(n)   { #n, MODE_CFLAG, n }
#define LFL(n)   { #n, MODE_LFLAG, n }

static const struct mode table[] = {
    CC(VINTR), CC(VQUIT), CC(VERASE), CC(VKILL), CC(VEOF), CC(VEOL), CC(VEOL2),
    CC(VSTART), CC(VSTOP), CC(VSUSP), CC(VREPRINT), CC(VWERASE), CC(VLNEXT),
    CC(VDISCARD),
    IFL(IGNPAR), IFL(PARMRK), IFL(INPCK), IFL(ISTRIP), IFL(INLCR), IFL(IGNCR),
    IFL(ICRNL), IFL(IXON), IFL(IXANY), IFL(IXOFF), IFL(IMAXBEL), IFL(IUTF8),
    LFL(ISIG), LFL(ICANON), LFL(ECHO), LFL(ECHOE), LFL(ECHOK), LFL(ECHONL),
    LFL(NOFLSH), LFL(TOSTOP), LFL(IEXTEN), LFL(ECHOCTL), LFL(ECHOKE), LFL(PENDIN),
    OFL(OPOST), OFL(ONLCR), OFL(OCRNL), OFL(ONOCR), OFL(ONLRET),
    CFL(PARENB), CFL(PARODD),
};
#define N_MODES (sizeof table / sizeof table[0])

static tcflag_t *flags_of(struct termios *t, enum mode_kind kind)
{
    switch (kind) {
    case MODE_IFLAG: return &t->c_iflag;
    case MODE_OFLAG: return &t->c_oflag;
    case MODE_CFLAG: return &t->c_cflag;
    case MODE_LFLAG: return &t->c_lflag;
    default:         return NULL;
    }
}

static const struct mode *find(const char *name)
{
    for (size_t i = 0; i < N_MODES; i++)
        if (strcmp(table[i].name, name) == 0)
            return &table[i];
    return NULL;
}

json_t *ttymodes_to_json(const struct termios *t)
{
    json_t *o = json_object();
    struct termios copy = *t;

    for (size_t i = 0; o && i < N_MODES; i++) {
        json_int_t v;

        if (table[i].kind == MODE_CHAR)
            v = (unsigned char)copy.c_cc[table[i].bit];
        else
            v = (*flags_of(&copy, table[i].kind) & table[i].bit) != 0;
        if (json_object_set_new(o, table[i].name, json_integer(v)) < 0) {
            json_decref(o);
            o = NULL;
        }
    }
    return o;
}

int ttymodes_apply(const json_t *modes, struct termios *t, char *err, size_t errlen)
{
    struct termios next = *t;
    const char *name;
    json_t *value;

    if (!json_is_object(modes))
        goto garbage;
    if (json_object_size(modes) > TTY_MAX_MODES) {
        errbuf_format(err, errlen, "bad terminal modes: more than %d of them", TTY_MAX_MODES);
        return -EINVAL;
    }
    /* jansson's iteration does not write; the cast only drops const. */
    json_object_foreach((json_t *)modes, name, value) {
        const struct mode *m = find(name);
        json_int_t v;

        if (!json_is_integer(value)) {
            errbuf_format(err, errlen, "bad terminal modes: %.32s is not an integer", name);
            return -EINVAL;
        }
        if (!m)
            continue;
        v = json_integer_value(value);
        if (m->kind == MODE_CHAR) {
            if (v < 0 || v > 255) {
                errbuf_format(err, errlen, "bad terminal modes: %s must be 0 to 255", m->name);
                return -EINVAL;
            }
            next.c_cc[m->bit] = (cc_t)v;
        } else {
            tcflag_t *f = flags_of(&next, m->kind);

            if (v != 0 && v != 1) {
                errbuf_format(err, errlen, "bad terminal modes: %s must be 0 or 1", m->name);
                return -EINVAL;
            }
            *f = v ? (*f | m->bit) : (*f & ~m->bit);
        }
    }
    *t = next;
    return 0;

garbage:
    errbuf_format(err, errlen, "bad terminal modes: \"modes\" must be an object of integers");
    return -EINVAL;
}

static int member(const json_t *msg, const char *name, int required, json_int_t max,
                  json_int_t min, unsigned short *out, char *err, size_t errlen)
{
    const json_t *v = json_object_get(msg, name);
    json_int_t n;

    if (!v && !required) {
        *out = 0;
        return 0;
    }
    if (!json_is_integer(v) || (n = json_integer_value(v)) < min || n > max) {
        errbuf_format(err, errlen, "bad window size: \"%s\" must be an integer from %lld to %lld",
                      name, (long long)min, (long long)max);
        return -EINVAL;
    }
    *out = (unsigned short)n;
    return 0;
}

int ttysize_from_json(const json_t *msg, struct winsize *ws, char *err, size_t errlen)
{
    struct winsize w;

    if (!json_is_object(msg) ||
        member(msg, "rows", 1, TTY_MAX_CELLS, 1, &w.ws_row, err, errlen) < 0 ||
        member(msg, "cols", 1, TTY_MAX_CELLS, 1, &w.ws_col, err, errlen) < 0 ||
        member(msg, "xpixel", 0, TTY_MAX_PIXELS, 0, &w.ws_xpixel, err, errlen) < 0 ||
        member(msg, "ypixel", 0, TTY_MAX_PIXELS, 0, &w.ws_ypixel, err, errlen) < 0) {
        if (!json_is_object(msg))
            errbuf_format(err, errlen, "bad window size: not an object");
        return -EINVAL;
    }
    *ws = w;
    return 0;
}

int ttysize_to_json(const struct winsize *ws, json_t *obj)
{
    /* A terminal that reports 0 x 0 (some serial consoles) gets the
     * classic 80 x 24 rather than a size the server would refuse. */
    unsigned rows = ws->ws_row ? ws->ws_row : 24, cols = ws->ws_col ? ws->ws_col : 80;

    if (rows > TTY_MAX_CELLS)
        rows = TTY_MAX_CELLS;
    if (cols > TTY_MAX_CELLS)
        cols = TTY_MAX_CELLS;
    if (json_object_set_new(obj, "rows", json_integer(rows)) < 0 ||
        json_object_set_new(obj, "cols", json_integer(cols)) < 0 ||
        json_object_set_new(obj, "xpixel", json_integer(ws->ws_xpixel)) < 0 ||
        json_object_set_new(obj, "ypixel", json_integer(ws->ws_ypixel)) < 0)
        return -ENOMEM;
    return 0;
}

int ttymodes_term_valid(const char *term)
{
    size_t n = term ? strlen(term) : 0;

    if (n == 0 || n > TTY_MAX_TERM)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = term[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '+' || c == '-'))
            return 0;
    }
    return 1;
}
