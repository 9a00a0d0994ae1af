/*
 * hostlist.c - pdsh's host list syntax, expanded and folded (hostlist.h).
 *
 * A spec is read twice: once to check it and count what it expands to
 * (so a range of a million hosts is refused before anything is
 * allocated for it), once to produce the names.  Folding sorts the names
 * by (prefix, suffix, number) around their last run of digits and joins
 * runs of consecutive numbers whose text the range would give back
 * exactly, so a fold always expands to the very names it came from.
 */
#include "hostlist.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_GROUPS 8          /* range groups in one item */
#define MAX_DIGITS 9          /* a bound below 10^9 */

/* One element of a range group: lo-hi (lo == hi for a single number). */
struct elem {
    unsigned long lo, hi;
    int width;                /* zero-padded to this many digits; 0 = none */
};

/* One item between commas: literal text and range groups in turn. */
struct item {
    const char *text;
    size_t len;
    size_t ngroups;
    const char *gstart[MAX_GROUPS];   /* after '[' */
    size_t glen[MAX_GROUPS];          /* up to ']' */
};

__attribute__((format(printf, 3, 4)))
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* A bracket group is a range when it holds digits, '-' and ',' only. */
static int is_range(const char *p, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || p[i] == '-' || p[i] == ','))
            return 0;
    return 1;
}

static int parse_number(const char *p, size_t n, unsigned long *v)
{
    if (n == 0 || n > MAX_DIGITS)
        return -1;
    *v = 0;
    for (size_t i = 0; i < n; i++)
        *v = *v * 10 + (unsigned long)(p[i] - '0');
    return 0;
}

/* The k-th element of a range group (k counted from 0): 1 and *e, 0 past
 * the last, -1 on bad syntax. */
static int group_elem(const char *g, size_t glen, size_t k, struct elem *e)
{
    const char *p = g, *end = g + glen;

    for (;;) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        const char *dash = memchr(p, '-', (size_t)(stop - p));

        if (k-- == 0) {
            size_t lo_len = dash ? (size_t)(dash - p) : (size_t)(stop - p);

            if (parse_number(p, lo_len, &e->lo) < 0)
                return -1;
            e->hi = e->lo;
            if (dash && (memchr(dash + 1, '-', (size_t)(stop - dash - 1)) ||
                         parse_number(dash + 1, (size_t)(stop - dash - 1), &e->hi) < 0))
                return -1;
            e->width = lo_len > 1 && p[0] == '0' ? (int)lo_len : 0;
            return e->hi >= e->lo ? 1 : -1;
        }
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

/* Split one item into its range groups and check them; *count is the
 * number of names it gives (capped at HOSTLIST_MAX + 1) and *maxlen the
 * longest. */
static int parse_item(struct item *it, size_t *count, size_t *maxlen, char *err, size_t errlen)
{
    size_t lit = 0, digits = 0;
    unsigned long long total = 1;

    it->ngroups = 0;
    for (size_t i = 0; i < it->len; i++) {
        const char *close;
        size_t glen;

        if (it->text[i] == ']')
            return fail(err, errlen, "'%.*s': ']' without '['", (int)it->len, it->text);
        if (it->text[i] != '[') {
            lit++;
            continue;
        }
        close = memchr(it->text + i + 1, ']', it->len - i - 1);
        if (!close)
            return fail(err, errlen, "'%.*s': '[' without ']'", (int)it->len, it->text);
        glen = (size_t)(close - (it->text + i + 1));
        if (memchr(it->text + i + 1, '[', glen))
            return fail(err, errlen, "'%.*s': brackets inside brackets", (int)it->len, it->text);
        if (!is_range(it->text + i + 1, glen)) {
            lit += glen + 2;   /* [::1], [fe80::1%lo]: text as it is */
            i += glen + 1;
            continue;
        }
        if (it->ngroups == MAX_GROUPS)
            return fail(err, errlen, "'%.*s': more than %d ranges in one name", (int)it->len,
                        it->text, MAX_GROUPS);
        {
            unsigned long long n = 0;
            size_t widest = 0;
            struct elem e;
            int r;

            for (size_t k = 0; (r = group_elem(it->text + i + 1, glen, k, &e)) == 1; k++) {
                size_t w = (size_t)snprintf(NULL, 0, "%lu", e.hi);

                n += e.hi - e.lo + 1;
                widest = w > widest ? w : widest;
                widest = (size_t)e.width > widest ? (size_t)e.width : widest;
                if (n > HOSTLIST_MAX)
                    break;
            }
            if (r < 0)
                return fail(err, errlen, "'%.*s': bad range [%.*s] (expected numbers of at "
                            "most %d digits, LOW-HIGH with LOW <= HIGH, separated by commas)",
                            (int)it->len, it->text, (int)glen, it->text + i + 1, MAX_DIGITS);
            total *= n;
            if (total > HOSTLIST_MAX)
                total = HOSTLIST_MAX + 1;
            digits += widest;
        }
        it->gstart[it->ngroups] = it->text + i + 1;
        it->glen[it->ngroups++] = glen;
        i += glen + 1;
    }
    if (it->len == 0)
        return fail(err, errlen, "empty host name in the list");
    *count = (size_t)total;
    *maxlen = lit + digits;
    if (*maxlen > HOSTLIST_NAME_MAX)
        return fail(err, errlen, "'%.*s': a host name longer than %d bytes", (int)it->len,
                    it->text, HOSTLIST_NAME_MAX);
    return 0;
}

/* The next item of spec from *pos (SIZE_MAX once past the end): 1, or
 * 0 at the end.  "a,,b" and "a," have an empty item, which the caller
 * refuses. */
static int next_item(const char *spec, size_t *pos, struct item *it)
{
    size_t i = *pos, depth = 0;

    if (i == SIZE_MAX)
        return 0;
    it->text = spec + i;
    for (; spec[i] && !(spec[i] == ',' && depth == 0); i++) {
        if (spec[i] == '[')
            depth++;
        else if (spec[i] == ']' && depth > 0)
            depth--;
    }
    it->len = (size_t)(spec + i - it->text);
    *pos = spec[i] ? i + 1 : SIZE_MAX;
    return 1;
}

/* ---- the set ---------------------------------------------------------------- */

static size_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return (size_t)h;
}

/* The slot holding name, or the empty one where it would go. */
static size_t find_slot(const struct hostlist *l, const char *name)
{
    size_t i = hash(name) & (l->nslots - 1);

    while (l->slots[i] && strcmp(l->names[l->slots[i] - 1], name) != 0)
        i = (i + 1) & (l->nslots - 1);
    return i;
}

static int rehash(struct hostlist *l, size_t nslots)
{
    size_t *slots = calloc(nslots, sizeof *slots);

    if (!slots)
        return -1;
    free(l->slots);
    l->slots = slots;
    l->nslots = nslots;
    for (size_t k = 0; k < l->n; k++)
        l->slots[find_slot(l, l->names[k])] = k + 1;
    return 0;
}

void hostlist_init(struct hostlist *l)
{
    *l = (struct hostlist){ 0 };
}

void hostlist_free(struct hostlist *l)
{
    for (size_t k = 0; k < l->n; k++)
        free(l->names[k]);
    free(l->names);
    free(l->slots);
    hostlist_init(l);
}

int hostlist_has(const struct hostlist *l, const char *name)
{
    return l->nslots > 0 && l->slots[find_slot(l, name)] != 0;
}

/* Add one name (a copy) unless it is there.  0 or -1 (out of memory). */
static int add_name(struct hostlist *l, const char *name)
{
    size_t i;

    if ((l->n + 1) * 2 > l->nslots && rehash(l, l->nslots ? l->nslots * 2 : 64) < 0)
        return -1;
    i = find_slot(l, name);
    if (l->slots[i])
        return 0;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        char **names = realloc(l->names, cap * sizeof *names);

        if (!names)
            return -1;
        l->names = names;
        l->cap = cap;
    }
    l->names[l->n] = strdup(name);
    if (!l->names[l->n])
        return -1;
    l->slots[i] = ++l->n;
    return 0;
}

/* Every name of one checked item, odometer-wise over its groups. */
static int expand_item(struct hostlist *l, const struct item *it)
{
    size_t k[MAX_GROUPS] = { 0 };
    unsigned long v[MAX_GROUPS];
    struct elem e[MAX_GROUPS];
    char name[HOSTLIST_NAME_MAX + 1];

    for (size_t g = 0; g < it->ngroups; g++) {
        (void)group_elem(it->gstart[g], it->glen[g], 0, &e[g]);
        v[g] = e[g].lo;
    }
    for (;;) {
        size_t at = 0, g = 0;
        const char *p = it->text, *end = it->text + it->len;

        while (p < end) {
            if (g < it->ngroups && p == it->gstart[g] - 1) {
                at += (size_t)snprintf(name + at, sizeof name - at, "%0*lu", e[g].width, v[g]);
                p = it->gstart[g] + it->glen[g] + 1;
                g++;
            } else {
                name[at++] = *p++;
            }
        }
        name[at] = '\0';
        if (add_name(l, name) < 0)
            return -1;
        /* The last group turns fastest: web[1-2]-[a] order as pdsh's. */
        for (g = it->ngroups; g-- > 0;) {
            if (v[g] < e[g].hi) {
                v[g]++;
                break;
            }
            if (group_elem(it->gstart[g], it->glen[g], ++k[g], &e[g]) == 1) {
                v[g] = e[g].lo;
                break;
            }
            k[g] = 0;
            (void)group_elem(it->gstart[g], it->glen[g], 0, &e[g]);
            v[g] = e[g].lo;
        }
        if (g == (size_t)-1)
            return 0;
    }
}

/* Check the whole spec, then expand it into l. */
static int add_spec(struct hostlist *l, const char *spec, size_t limit, char *err, size_t errlen)
{
    size_t pos = 0, total = 0, count, maxlen;
    struct item it;

    if (!spec || !*spec)
        return fail(err, errlen, "empty host list");
    while (next_item(spec, &pos, &it)) {
        if (parse_item(&it, &count, &maxlen, err, errlen) < 0)
            return -1;
        total += count;
        if (total > limit)
            return fail(err, errlen, "'%s' names more than %d hosts", spec, HOSTLIST_MAX);
    }
    pos = 0;
    while (next_item(spec, &pos, &it)) {
        (void)parse_item(&it, &count, &maxlen, err, errlen);
        if (expand_item(l, &it) < 0)
            return fail(err, errlen, "out of memory");
    }
    return 0;
}

int hostlist_add(struct hostlist *l, const char *spec, char *err, size_t errlen)
{
    /* Counted before anything is allocated; duplicates of names already
     * there are only known once expanded. */
    int r = add_spec(l, spec, HOSTLIST_MAX, err, errlen);

    if (r == 0 && l->n > HOSTLIST_MAX)
        return fail(err, errlen, "more than %d hosts", HOSTLIST_MAX);
    return r;
}

int hostlist_remove(struct hostlist *l, const char *spec, char *err, size_t errlen)
{
    struct hostlist x;
    size_t kept = 0;
    int r;

    hostlist_init(&x);
    r = add_spec(&x, spec, HOSTLIST_MAX, err, errlen);
    if (r == 0) {
        for (size_t k = 0; k < l->n; k++) {
            if (hostlist_has(&x, l->names[k]))
                free(l->names[k]);
            else
                l->names[kept++] = l->names[k];
        }
        l->n = kept;
        if (l->nslots && rehash(l, l->nslots) < 0)
            r = fail(err, errlen, "out of memory");
    }
    hostlist_free(&x);
    return r;
}

/* ---- folding ---------------------------------------------------------------- */

struct parts {
    const char *name;
    size_t pre;               /* prefix length: the digits start here */
    size_t digits;            /* 0: nothing to fold on */
    unsigned long value;
};

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* The k-th run of digits of name (from 0): 1 with its start and length,
 * or 0 when it has fewer. */
static int digit_run(const char *name, size_t k, size_t *start, size_t *len)
{
    for (size_t i = 0; name[i];) {
        size_t j = i;

        if (!is_digit(name[i])) {
            i++;
            continue;
        }
        while (is_digit(name[j]))
            j++;
        if (k-- == 0) {
            *start = i;
            *len = j - i;
            return 1;
        }
        i = j;
    }
    return 0;
}

/* Names compared with every run of digits as one and the same token:
 * "127.0.0.2:7171" and "127.0.0.10:7171" have one shape. */
static int cmp_shape(const char *a, const char *b)
{
    while (*a || *b) {
        if (is_digit(*a) && is_digit(*b)) {
            while (is_digit(*a))
                a++;
            while (is_digit(*b))
                b++;
            continue;
        }
        if (*a != *b)
            return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
        a++;
        b++;
    }
    return 0;
}

static const char *const *shape_names;

static int by_shape(const void *x, const void *y)
{
    return cmp_shape(shape_names[*(const size_t *)x], shape_names[*(const size_t *)y]);
}

/* Which run of digits the names of one shape (idx[0..n)) fold on: the one
 * run that differs among them (the address in 127.0.0.[2-9]:7171), else
 * the last. */
static size_t fold_run(const char *const *names, const size_t *idx, size_t n)
{
    size_t runs = 0, varying = 0, which = 0, s0, l0, s1, l1;

    while (digit_run(names[idx[0]], runs, &s0, &l0))
        runs++;
    for (size_t k = 0; k < runs; k++) {
        (void)digit_run(names[idx[0]], k, &s0, &l0);
        for (size_t i = 1; i < n; i++) {
            if (digit_run(names[idx[i]], k, &s1, &l1) &&
                (l0 != l1 || memcmp(names[idx[0]] + s0, names[idx[i]] + s1, l0) != 0)) {
                varying++;
                which = k;
                break;
            }
        }
    }
    return varying == 1 ? which : runs > 0 ? runs - 1 : 0;
}

/* name around its k-th run of digits. */
static void split(const char *name, size_t k, struct parts *p)
{
    size_t start, len;

    p->name = name;
    p->digits = 0;
    p->pre = strlen(name);
    if (strpbrk(name, "[],") || !digit_run(name, k, &start, &len) || len > MAX_DIGITS)
        return;
    p->pre = start;
    p->digits = len;
    (void)parse_number(name + start, len, &p->value);
}

/* Same prefix and suffix (so they may share brackets). */
static int same_frame(const struct parts *a, const struct parts *b)
{
    return a->digits && b->digits && a->pre == b->pre &&
           strncmp(a->name, b->name, a->pre) == 0 &&
           strcmp(a->name + a->pre + a->digits, b->name + b->pre + b->digits) == 0;
}

static int cmp_parts(const void *x, const void *y)
{
    const struct parts *a = x, *b = y;
    size_t n = a->pre < b->pre ? a->pre : b->pre;
    int c = strncmp(a->name, b->name, n);

    if (c == 0 && a->pre != b->pre)
        c = a->pre < b->pre ? -1 : 1;
    if (c == 0)
        c = strcmp(a->name + a->pre + a->digits, b->name + b->pre + b->digits);
    if (c == 0 && a->digits && b->digits && a->value != b->value)
        c = a->value < b->value ? -1 : 1;
    if (c == 0)
        c = strcmp(a->name, b->name);
    return c;
}

struct out {
    char *buf;
    size_t len, cap;
    int oom;
};

static void put(struct out *o, const char *p, size_t n)
{
    if (o->oom)
        return;
    if (o->len + n + 1 > o->cap) {
        size_t cap = (o->len + n + 1) * 2;
        char *b = realloc(o->buf, cap);

        if (!b) {
            o->oom = 1;
            return;
        }
        o->buf = b;
        o->cap = cap;
    }
    memcpy(o->buf + o->len, p, n);
    o->len += n;
    o->buf[o->len] = '\0';
}

/* The digits of p as a range bound of width w would print them. */
static int renders_as(const struct parts *p, unsigned long v, int w)
{
    char text[MAX_DIGITS + 2];
    int n = snprintf(text, sizeof text, "%0*lu", w, v);

    return (size_t)n == p->digits && memcmp(text, p->name + p->pre, p->digits) == 0;
}

/* One frame's names (a[0..n), sorted) as PREFIX[r1,r2,...]SUFFIX. */
static void fold_frame(struct out *o, const struct parts *a, size_t n)
{
    const struct parts *f = &a[0];

    if (n == 1) {
        put(o, f->name, strlen(f->name));
        return;
    }
    put(o, f->name, f->pre);
    put(o, "[", 1);
    for (size_t i = 0; i < n;) {
        int w = a[i].digits > 1 && a[i].name[a[i].pre] == '0' ? (int)a[i].digits : 0;
        size_t j = i;

        while (j + 1 < n && a[j + 1].value == a[j].value + 1 && renders_as(&a[j + 1], a[j + 1].value, w))
            j++;
        if (i > 0)
            put(o, ",", 1);
        put(o, a[i].name + a[i].pre, a[i].digits);
        if (j > i) {
            put(o, "-", 1);
            put(o, a[j].name + a[j].pre, a[j].digits);
        }
        i = j + 1;
    }
    put(o, "]", 1);
    put(o, f->name + f->pre + f->digits, strlen(f->name + f->pre + f->digits));
}

char *hostlist_fold(const char *const *names, size_t n)
{
    struct parts *p = calloc(n ? n : 1, sizeof *p);
    size_t *idx = calloc(n ? n : 1, sizeof *idx);
    struct out o = { 0 };

    if (!p || !idx) {
        free(p);
        free(idx);
        return NULL;
    }
    put(&o, "", 0);
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    shape_names = names;
    qsort(idx, n, sizeof *idx, by_shape);
    for (size_t i = 0; i < n;) {
        size_t j = i + 1, k;

        while (j < n && cmp_shape(names[idx[i]], names[idx[j]]) == 0)
            j++;
        k = fold_run(names, idx + i, j - i);
        for (; i < j; i++)
            split(names[idx[i]], k, &p[i]);
    }
    free(idx);
    qsort(p, n, sizeof *p, cmp_parts);
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;

        while (j < n && same_frame(&p[i], &p[j]))
            j++;
        if (i > 0)
            put(&o, ",", 1);
        fold_frame(&o, p + i, j - i);
        i = j;
    }
    free(p);
    if (o.oom) {
        free(o.buf);
        return NULL;
    }
    return o.buf;
}
