/*
 * version.h - libferry's version: the one place it is written.
 *
 * The build reads FERRY_VERSION_MAJOR/MINOR/PATCH from this file (the
 * top-level CMakeLists.txt), so the shared library's version and soname,
 * ferry.pc and the programs' --version (FERRY_VERSION) all follow it.  The
 * soname changes with MAJOR: a new MAJOR is a new ABI.
 *
 * FERRY_VERSION is the version of the headers a program was compiled
 * against; ferry_version() is the version of the library it runs with.
 * With the shared library the two can differ, as uv_version_string() and
 * UV_VERSION_* can.
 */
#ifndef FERRY_VERSION_H
#define FERRY_VERSION_H

#include "ferry/common.h"

FERRY_BEGIN_DECLS

#define FERRY_VERSION_MAJOR 0
#define FERRY_VERSION_MINOR 1
#define FERRY_VERSION_PATCH 0

#define FERRY_VERSION_STR_(x) #x
#define FERRY_VERSION_STR(x)  FERRY_VERSION_STR_(x)
/* "MAJOR.MINOR.PATCH", e.g. "0.1.0". */
#define FERRY_VERSION                                                          \
    FERRY_VERSION_STR(FERRY_VERSION_MAJOR) "." FERRY_VERSION_STR(FERRY_VERSION_MINOR) "." \
    FERRY_VERSION_STR(FERRY_VERSION_PATCH)

/* The version of the running library, "MAJOR.MINOR.PATCH": a static string,
 * never freed. */
FERRY_EXPORT const char *ferry_version(void);

FERRY_END_DECLS

#endif
