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
#include "errcode.h"
#include "fdio.h"

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
                         struct errbuf *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY), r;

    if (fd < 0)
        return errbuf_set(err, -errno, "cannot read %s %s: %s", what, path, strerror(errno));
    if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode))
        r = errbuf_set(err, FERRY_EKEY_NOTFILE, "%s %s is not a regular file", what, path);
    else if (strict_mode && (st->st_mode & 077))
        r = errbuf_set(err, FERRY_EKEY_EXPOSED,
                       "%s %s is accessible by others (mode %03o); run: chmod 600 %s", what, path,
                       (unsigned)(st->st_mode & 0777), path);
    else
        return fd;
    close(fd);
    return r;
}

int keyfile_load(const char *path, int strict_mode, struct ferry_key *key, struct errbuf *err)
{
    char text[130];   /* 64 hex digits, a newline, room to notice more */
    struct stat st;
    ssize_t n;
    size_t len;
    int fd, rc;

    fd = keyfile_open_private(path, "key file", strict_mode, &st, err);
    if (fd < 0)
        return fd;
    n = read(fd, text, sizeof text - 1);
    if (n < 0) {
        rc = errbuf_set(err, -errno, "cannot read key file %s: %s", path, strerror(errno));
        goto out;
    }
    len = (size_t)n;
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
        len--;
    text[len] = '\0';
    if (len != 2 * KEY_LEN || hex_decode(text, key->bytes, KEY_LEN) < 0) {
        rc = errbuf_set(err, FERRY_EKEY_FORMAT, "key file %s does not hold a ferry key "
                        "(64 hex digits); make one with: ferry keygen %s", path, path);
        goto out;
    }
    rc = 0;
out:
    OPENSSL_cleanse(text, sizeof text);
    close(fd);
    return rc;
}

/* mkdir -p for the key's directory, new directories private to the owner. */
static int make_parents(const char *path, struct errbuf *err)
{
    char *dir = strdup(path);
    int rc = 0;

    if (!dir)
        return errbuf_set(err, -ENOMEM, "out of memory");
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
            rc = errbuf_set(err, -errno, "cannot create directory %s: %s", dir, strerror(errno));
            break;
        }
        *p = '/';
    }
    free(dir);
    return rc;
}

int keyfile_create(const char *path, int force, struct errbuf *err)
{
    struct ferry_key key;
    char text[2 * KEY_LEN + 2];
    char *tmp = NULL;
    int fd = -1, rc;
    struct stat st;

    /* A directory is no key to replace, with --force or without. */
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return errbuf_set(err, -EISDIR, "%s is a directory: name the key file itself "
                          "(such as %s%skey)", path, path,
                          path[0] && path[strlen(path) - 1] == '/' ? "" : "/");
    if (!force && lstat(path, &st) == 0)
        return errbuf_set(err, -EEXIST, "%s already exists; not overwriting it "
                          "(use --force to replace it)", path);
    rc = make_parents(path, err);
    if (rc < 0)
        return rc;
    if (RAND_bytes(key.bytes, KEY_LEN) != 1)
        return errbuf_set(err, -EIO, "cannot get random bytes for a key");
    hex_encode(key.bytes, KEY_LEN, text);
    text[2 * KEY_LEN] = '\n';
    text[2 * KEY_LEN + 1] = '\0';

    if (asprintf(&tmp, "%s.tmp.%ld", path, (long)getpid()) < 0) {
        tmp = NULL;
        rc = errbuf_set(err, -ENOMEM, "out of memory");
        goto out;
    }
    /* O_EXCL: never write through a planted symlink or someone else's file. */
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        rc = errbuf_set(err, -errno, "cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    rc = fdio_write_all(fd, text, 2 * KEY_LEN + 1, NULL);
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    if (rc < 0) {
        rc = errbuf_set(err, rc, "cannot write %s: %s", tmp, strerror(-rc));
        goto out;
    }
    if (close(fd) < 0) {
        fd = -1;
        rc = errbuf_set(err, -errno, "cannot write %s: %s", tmp, strerror(errno));
        goto out;
    }
    fd = -1;
    /* Without --force the name must still be free: link() fails if it is not,
     * where rename() would silently replace a key created meanwhile. */
    if (force ? rename(tmp, path) : link(tmp, path)) {
        if (errno == EEXIST)
            rc = errbuf_set(err, -EEXIST, "%s already exists; not overwriting it "
                            "(use --force to replace it)", path);
        else
            rc = errbuf_set(err, -errno, "cannot create %s: %s", path, strerror(errno));
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
