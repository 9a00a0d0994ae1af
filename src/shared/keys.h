/*
 * keys.h - ferryd's named keys (--keys FILE): one client key per line,
 *
 *     # comment
 *     NAME HEX [OPTION,...]
 *
 * NAME is printable ASCII without spaces (at most KEYS_NAME_MAX bytes) and
 * is the TLS PSK identity (or the "key" of a plaintext auth message); HEX
 * is the 64 hex digits `ferry keygen` writes; the options restrict what the
 * key may do (keyopts.h).  As with ssh's
 * authorized_keys, the file is read again for every lookup, so removing a
 * line revokes that key for every new session without a restart, and it
 * must be readable by its owner only.
 */
#ifndef FERRY_KEYS_H
#define FERRY_KEYS_H

#include <stddef.h>

#include "keyfile.h"
#include "keyopts.h"

#define KEYS_NAME_MAX   128
#define KEYS_FILE_MAX   (1024 * 1024)   /* a file larger than this is refused */
/* The name a single --key-file / -k key goes by. */
#define KEYS_DEFAULT_NAME "ferry"

/* Parse the whole file: 0 with *count named keys, or a negative code
 * (-errno, FERRY_EKEY_*, FERRY_EKEYS_LINE) with a one-line reason in err
 * (naming the line at fault). */
int keys_check(const char *path, int *count, struct errbuf *err);

/* Find `name`: 1 with *key (and *opts, unless NULL) filled, 0 when no line
 * names it, a negative code with err set when the file cannot be used (a
 * malformed file finds nothing). */
int keys_find(const char *path, const char *name, struct ferry_key *key, struct keyopts *opts,
              struct errbuf *err);

/* The root= directories of the file's lines, each once, in the file's
 * order: 0 with *roots (*n strings; keys_roots_free), or keys_check's
 * codes. */
int keys_roots(const char *path, char ***roots, size_t *n, struct errbuf *err);
void keys_roots_free(char **roots, size_t n);

/* Printable ASCII without spaces, 1..KEYS_NAME_MAX bytes. */
int keys_name_ok(const char *name);

#endif
