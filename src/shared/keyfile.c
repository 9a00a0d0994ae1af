/*
 * keyfile.c - reading, checking and creating ferry key files (keyfile.h).
 */
#include "keyfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "auth.h"

void key_wipe(struct ferry_key *key)
{
    OPENSSL_cleanse(key, sizeof *key);
}

char *keyfile_default_path(int use_env)
{
    const char *env = use_env ? getenv("FERRY_KEY_FILE") : NULL;
    const char *xdg = getenv("XDG_CONFIG_HOME");
    const char *home = getenv("HOME");
    char *path = NULL;
    int n;

    if (env && *env)
        return strdup(env);
    if (xdg && *xdg == '/')
        n = asprintf(&path, "%s/ferry/key", xdg);
    else if (home && *home)
        n = asprintf(&path, "%s/.config/ferry/key", home);
    else
        return NULL;
    return n < 0 ? NULL : path;
}

int keyfile_open_private(const char *path, const char *what, int strict_mode, struct stat *st,
                         char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

    if (fd < 0) {
        snprintf(err, errlen, "cannot read %s %s: %s", what, path, strerror(errno));
        return -1;
    }
    if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
        snprintf(err, errlen, "%s %s is not a regular file", what, path);
        close(fd);
        return -1;
    }
    if (strict_mode && (st->st_mode & 077)) {
        snprintf(err, errlen, "%s %s is accessible by others (mode %03o); run: chmod 600 %s",
                 what, path, (unsigned)(st->st_mode & 0777), path);
        close(fd);
        return -1;
    }
    return fd;
}

int keyfile_load(const char *path, int strict_mode, struct ferry_key *key, char *err, size_t errlen)
{
    char text[130];   /* 64 hex digits, a newline, room to notice more */
    struct stat st;
    ssize_t n;
    size_t len;
    int fd = -1, rc = -1;

    fd = keyfile_open_private(path, "key file", strict_mode, &st, err, errlen);
    if (fd < 0)
        goto out;
    n = read(fd, text, sizeof text - 1);
    if (n < 0) {
        snprintf(err, errlen, "cannot read key file %s: %s", path, strerror(errno));
        goto out;
    }
    len = (size_t)n;
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
        len--;
    text[len] = '\0';
    if (len != 2 * KEY_LEN || hex_decode(text, key->bytes, KEY_LEN) < 0) {
        snprintf(err, errlen, "key file %s does not hold a ferry key (64 hex digits); "
                 "make one with: ferry keygen %s", path, path);
        goto out;
    }
    rc = 0;
out:
    OPENSSL_cleanse(text, sizeof text);
    if (fd >= 0)
        close(fd);
    return rc;
}

/* mkdir -p for the key's directory, new directories private to the owner. */
static int make_parents(const char *path, char *err, size_t errlen)
{
    char *dir = strdup(path);
    int rc = 0;

    if (!dir) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
            snprintf(err, errlen, "cannot create directory %s: %s", dir, strerror(errno));
            rc = -1;
            break;
        }
        *p = '/';
    }
    free(dir);
    return rc;
}

int keyfile_create(const char *path, int force, char *err, size_t errlen)
{
    struct ferry_key key;
    char text[2 * KEY_LEN + 2];
    char *tmp = NULL;
    int fd = -1, rc = -1;
    struct stat st;

    if (!force && lstat(path, &st) == 0) {
        snprintf(err, errlen, "%s already exists; not overwriting it (use --force to replace it)", path);
        return -1;
    }
    if (make_parents(path, err, errlen) < 0)
        return -1;
    if (RAND_bytes(key.bytes, KEY_LEN) != 1) {
        snprintf(err, errlen, "cannot get random bytes for a key");
        return -1;
    }
    hex_encode(key.bytes, KEY_LEN, text);
    text[2 * KEY_LEN] = '\n';
    text[2 * KEY_LEN + 1] = '\0';

    if (asprintf(&tmp, "%s.tmp.%ld", path, (long)getpid()) < 0) {
        tmp = NULL;
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    /* O_EXCL: never write through a planted symlink or someone else's file. */
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (write(fd, text, 2 * KEY_LEN + 1) != (ssize_t)(2 * KEY_LEN + 1) || fsync(fd) < 0) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno ? errno : EIO));
        goto out;
    }
    if (close(fd) < 0) {
        fd = -1;
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        goto out;
    }
    fd = -1;
    /* Without --force the name must still be free: link() fails if it is not,
     * where rename() would silently replace a key created meanwhile. */
    if (force ? rename(tmp, path) : link(tmp, path)) {
        if (errno == EEXIST)
            snprintf(err, errlen, "%s already exists; not overwriting it (use --force to replace it)", path);
        else
            snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (tmp) {
        if (rc < 0 || !force)
            unlink(tmp);
        free(tmp);
    }
    key_wipe(&key);
    OPENSSL_cleanse(text, sizeof text);
    return rc;
}
