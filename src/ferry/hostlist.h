/*
 * hostlist.h - lists of host names in pdsh's syntax, and folding them
 * back into it (`ferry exec -w`, docs/DESIGN.md "Many hosts").
 *
 *   web[01-20,31],db1      web01 ... web20, web31, db1 (zero padding kept:
 *                          a bound written with a leading zero sets the
 *                          width of every number of its range)
 *   rack[1-2]-n[1-3]       every combination, rack1-n1 ... rack2-n3
 *   [::1]:7171, [fe80::1%lo]
 *                          literals: a bracket group is a range only when
 *                          it holds nothing but digits, '-' and ','; an
 *                          IPv6 address always holds a ':'
 *
 * Items are separated by commas outside brackets.  A list keeps the order
 * hosts were first named in and drops later duplicates.  Everything is
 * bounded: at most HOSTLIST_MAX hosts in a list (a bigger range is an
 * error, found before anything is allocated for it), names of at most
 * HOSTLIST_NAME_MAX bytes.  Pure functions: no I/O, errors are words in a
 * caller's buffer.
 */
#ifndef FERRY_HOSTLIST_H
#define FERRY_HOSTLIST_H

#include <stddef.h>

#define HOSTLIST_MAX 65536
#define HOSTLIST_NAME_MAX 255

struct hostlist {
    char **names;       /* names[0..n), in first-named order */
    size_t n, cap;
    size_t *slots;      /* a hash set of indexes + 1 into names (0: empty) */
    size_t nslots;
};

void hostlist_init(struct hostlist *l);
void hostlist_free(struct hostlist *l);

/* Add the hosts `spec` names (duplicates dropped).  0, or -1 with the
 * reason in err: nothing of spec was added for a syntax error or a spec
 * that names more than HOSTLIST_MAX hosts; the list is over HOSTLIST_MAX
 * (and of no further use) when the names it adds would make it so. */
int hostlist_add(struct hostlist *l, const char *spec, char *err, size_t errlen);

/* Remove the hosts `spec` names (names not in l are ignored).  0 or -1
 * (err). */
int hostlist_remove(struct hostlist *l, const char *spec, char *err, size_t errlen);

/* Whether name is in l. */
int hostlist_has(const struct hostlist *l, const char *name);

/* names[0..n) folded into the same syntax: "web[01-03,05],db1" (sorted,
 * as clush -b and dshbak -c print them).  Names of the same shape fold on
 * the one run of digits that differs among them (127.0.0.[2-9]:7171),
 * else on their last; names with brackets or commas ([::1]:7171) are kept
 * as they are.  A malloc'd string, or NULL when out of memory. */
char *hostlist_fold(const char *const *names, size_t n);

#endif
