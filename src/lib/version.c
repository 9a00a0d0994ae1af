/*
 * version.c - ferry_version(): the library's own FERRY_VERSION, compiled in
 * here so that a program linked against the shared library can ask which
 * one it got.
 */
#include "ferry/version.h"

const char *ferry_version(void)
{
    return FERRY_VERSION;
}
