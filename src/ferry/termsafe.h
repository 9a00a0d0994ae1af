/*
 * termsafe.h - text from a server or a filesystem made safe to show on a
 * terminal: no escape sequence, line break or other control of its own
 * reaches it (cli.c's messages, progress.c's bars, fsformat.c's names).
 */
#ifndef FERRY_CLIENT_TERMSAFE_H
#define FERRY_CLIENT_TERMSAFE_H

#include <stddef.h>

/* In place, the n bytes of s: each C0 control and DEL becomes '?', and
 * each C1 control in UTF-8 (U+0080 to U+009F, two bytes; U+009B is a CSI
 * to terminals that obey C1) becomes "??".  Other text, UTF-8 or not, is
 * left as it is. */
void termsafe_defang(char *s, size_t n);

/* Whether the string s holds a control termsafe_defang would change. */
int termsafe_has_control(const char *s);

#endif
