/*
 * conffile.c - reading ferryd's configuration file: the ownership and
 * mode check, then one callback per `KEY VALUE` line (conffile.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conffile.h"
#include "errcode.h"
#include "fdio.h"

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Split one line in place: 0 and *key, *value set; 1 for a line with
 * nothing to say; FERRY_ECONF_LINE for a key without a value. */
static int split(char *line, char **key, char **value)
{
    char *p = line, *end;

    while (is_blank(*p))
        p++;
    if (!*p || *p == '#')
        return 1;
    *key = p;
    while (*p && !is_blank(*p))
        p++;
    if (!*p)
        return FERRY_ECONF_LINE;
    *p++ = '\0';
    while (is_blank(*p))
        p++;
    end = p + strlen(p);
    while (end > p && is_blank(end[-1]))
        *--end = '\0';
    if (!*p)
        return FERRY_ECONF_LINE;
    *value = p;
    return 0;
}

static int check_file(int fd, const char *path, struct errbuf *eb)
{
    struct stat st;

    if (fstat(fd, &st) < 0)
        return errbuf_set(eb, -errno, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return errbuf_set(eb, -EINVAL, "%s: not a regular file", path);
    if ((st.st_uid != 0 && st.st_uid != geteuid()) || (st.st_mode & (S_IWGRP | S_IWOTH)))
        return errbuf_set(eb, FERRY_ECONF_EXPOSED, "%s: %s (owner uid %u, mode %04o); it must "
                          "belong to root or to us and be writable by its owner only "
                          "(chmod go-w %s)", path, app_strerror(FERRY_ECONF_EXPOSED),
                          (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777), path);
    return 0;
}

int conffile_read(const char *path, conffile_fn *fn, void *arg, struct errbuf *eb)
{
    char line[CONFFILE_MAX_LINE], *key = NULL, *value = NULL;
    struct errbuf inner;
    FILE *f = NULL;
    int fd, lineno = 0, r;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return errbuf_set(eb, -errno, "%s: %s", path, strerror(errno));
    r = check_file(fd, path, eb);
    if (r < 0)
        goto out;
    f = fdopen(fd, "r");
    if (!f) {
        r = errbuf_set(eb, -errno, "%s: %s", path, strerror(errno));
        goto out;
    }
    fd = -1;   /* f's now */
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            r = errbuf_set(eb, FERRY_ECONF_LINE, "%s:%d: line longer than %d bytes", path,
                           lineno, CONFFILE_MAX_LINE - 1);
            goto out;
        }
        r = split(line, &key, &value);
        if (r == 1)
            continue;
        if (r < 0) {
            r = errbuf_set(eb, r, "%s:%d: %s needs a value ('KEY VALUE')", path, lineno, key);
            goto out;
        }
        errbuf_clear(&inner);
        r = fn(key, value, arg, &inner);
        if (r < 0) {
            r = errbuf_set(eb, r, "%s:%d: %s", path, lineno, errbuf_msg(&inner, r));
            goto out;
        }
    }
    if (ferror(f))
        r = errbuf_set(eb, -EIO, "%s: read error", path);
    else
        r = 0;
out:
    if (f)
        fclose(f);
    fdio_close(&fd);
    return r;
}
