/*
 * keyfile.h - ferry's shared key: 32 random bytes stored as 64 hex digits
 * and a newline, in a file only its owner may read.
 *
 * Used by ferryd (--key-file) and ferry (-k, $FERRY_KEY_FILE,
 * ~/.config/ferry/key) alike.  Errors: a negative code (-errno, or
 * errcode.h's FERRY_EKEY_*) and one line in a struct errbuf for the program
 * to print, so both report the same problem the same way.
 */
#ifndef FERRY_KEYFILE_H
#define FERRY_KEYFILE_H

#include <stddef.h>
#include <stdint.h>

#include "errbuf.h"

#define KEY_LEN 32

struct ferry_key {
    uint8_t bytes[KEY_LEN];
};

/* Where the key lives when nothing says otherwise: $FERRY_KEY_FILE if set
 * (only when use_env), else $XDG_CONFIG_HOME/ferry/key, else
 * ~/.config/ferry/key.  Returns a malloc'd path (caller frees) or NULL. */
char *keyfile_default_path(int use_env);

/*
 * Read a key.  With strict_mode, a file that group or others may read (or
 * that is not a regular file) is refused, as ssh refuses such private keys.
 * Returns 0, or a negative code (-ENOENT when there is no such file,
 * FERRY_EKEY_*) with a one-line reason in err.
 */
int keyfile_load(const char *path, int strict_mode, struct ferry_key *key, struct errbuf *err);

/*
 * Open a file that holds secrets (`what` names it in messages: "key file",
 * "keys file"): it must be a regular file and, with strict_mode, readable by
 * its owner only.  Returns the descriptor (*st filled; the caller closes it),
 * or a negative code (-errno, FERRY_EKEY_NOTFILE, FERRY_EKEY_EXPOSED) with a
 * one-line reason in err.
 */
struct stat;
int keyfile_open_private(const char *path, const char *what, int strict_mode, struct stat *st,
                         struct errbuf *err);

/*
 * Create a new random key at path (mode 0600, parent directories 0700
 * created as needed).  Refuses to replace an existing file unless force;
 * a replacement is written to a temporary file and renamed, so a crash
 * never leaves a half-written key.  Returns 0, or a negative code (-EEXIST
 * for a file already there, -errno) with err set.
 */
int keyfile_create(const char *path, int force, struct errbuf *err);

/* Wipe key material. */
void key_wipe(struct ferry_key *key);

#endif
