/*
 * util.h - a small helper ferryd's modules share.
 */
#ifndef FERRYD_UTIL_H
#define FERRYD_UTIL_H

#include <stddef.h>

/* Format a one-line reason into err (nothing when err is NULL or errlen 0). */
void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
