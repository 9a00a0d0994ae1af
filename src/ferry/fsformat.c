/*
 * fsformat.c - how ls and stat show remote metadata (fsformat.h).
 */
#include "fsformat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "termsafe.h"

void fsformat_mode(const char *kind, unsigned mode, char out[11])
{
    static const char rwx[] = "rwxrwxrwx";
    char k = '?';

    if (strcmp(kind, "file") == 0) k = '-';
    else if (strcmp(kind, "dir") == 0) k = 'd';
    else if (strcmp(kind, "link") == 0) k = 'l';
    else if (strcmp(kind, "fifo") == 0) k = 'p';
    else if (strcmp(kind, "socket") == 0) k = 's';
    else if (strcmp(kind, "char") == 0) k = 'c';
    else if (strcmp(kind, "block") == 0) k = 'b';
    out[0] = k;
    for (int i = 0; i < 9; i++)
        out[1 + i] = (mode & (0400u >> i)) ? rwx[i] : '-';
    if (mode & 04000) out[3] = (mode & 0100) ? 's' : 'S';
    if (mode & 02000) out[6] = (mode & 0010) ? 's' : 'S';
    if (mode & 01000) out[9] = (mode & 0001) ? 't' : 'T';
    out[10] = '\0';
}

void fsformat_time(int64_t t, char *out, size_t cap, enum fsformat_style style)
{
    time_t tt = (time_t)t;
    struct tm tm;
    size_t n = 0;

    if (localtime_r(&tt, &tm)) {
        if (style == FSF_MINUTES)
            n = strftime(out, cap, "%Y-%m-%d %H:%M", &tm);
        else if (style == FSF_SECONDS)
            n = strftime(out, cap, "%Y-%m-%d %H:%M:%S", &tm);
        else
            n = strftime(out, cap, "%z", &tm);
    }
    if (n == 0)
        snprintf(out, cap, "%lld", (long long)t);
}

void fsformat_name(const char *name, int tty)
{
    char *shown;

    /* The server's names: on a terminal, none of its controls (C1 in
     * UTF-8 too) get to drive it.  A pipe gets them as they are, as ls
     * gives them. */
    if (!tty || !(shown = strdup(name))) {
        for (const char *p = name; *p; p++)
            putchar(tty && ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f) ? '?' : *p);
        return;
    }
    termsafe_defang(shown, strlen(shown));
    fputs(shown, stdout);
    free(shown);
}

void fsformat_target(const char *target, int tty)
{
    if (!target)
        return;
    fputs(" -> ", stdout);
    fsformat_name(target, tty);
}

int fsformat_by_name(const void *a, const void *b)
{
    const json_t *const *x = a, *const *y = b;

    return strcmp(json_string_value(json_object_get(*x, "name")),
                  json_string_value(json_object_get(*y, "name")));
}

