/*
 * error.c - names and messages for every code libferry returns.
 *
 * libferry's own codes come from FERRY_ERRNO_MAP, so adding a code to
 * error.h is the whole job.  Negative errno values are described by the C
 * library, through calls that return static strings: both functions must be
 * safe to call from any thread (logging does, on every worker).
 */
#include "ferry/error.h"

#include <errno.h>
#include <string.h>

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
#define HAVE_STRERRORNAME_NP 1
#endif

#ifndef HAVE_STRERRORNAME_NP
/* Without glibc's *_np calls, name the errno values the library itself
 * produces; others print as "UNKNOWN". */
static const char *errno_name(int e)
{
    switch (e) {
#define NAME_(e_) case e_: return #e_;
    NAME_(EPERM) NAME_(ENOENT) NAME_(EINTR) NAME_(EIO) NAME_(EBADF)
    NAME_(EAGAIN) NAME_(ENOMEM) NAME_(EACCES) NAME_(EEXIST) NAME_(EINVAL)
    NAME_(EMFILE) NAME_(ENOSPC) NAME_(EPIPE) NAME_(ENOTSOCK) NAME_(EMSGSIZE)
    NAME_(EADDRINUSE) NAME_(EADDRNOTAVAIL) NAME_(ENETUNREACH) NAME_(ECONNABORTED)
    NAME_(ECONNRESET) NAME_(ENOBUFS) NAME_(ENOTCONN) NAME_(ETIMEDOUT)
    NAME_(ECONNREFUSED) NAME_(EHOSTUNREACH)
#undef NAME_
    }
    return NULL;
}
#endif

const char *ferry_strerror(int err)
{
    const char *s = NULL;

    switch (err) {
#define MSG_(name, value, msg) case value: return msg;
    FERRY_ERRNO_MAP(MSG_)
#undef MSG_
    }
    if (err == 0)
        return "success";
    if (err > 0)
        return "unknown error";
#ifdef HAVE_STRERRORNAME_NP
    s = strerrordesc_np(-err);
#else
    /* musl and the BSDs return static text for known values. */
    s = errno_name(-err) ? strerror(-err) : NULL;
#endif
    return s ? s : "unknown error";
}

const char *ferry_err_name(int err)
{
    const char *s = NULL;

    switch (err) {
#define NAME_(name, value, msg) case value: return "FERRY_E" #name;
    FERRY_ERRNO_MAP(NAME_)
#undef NAME_
    }
    if (err == 0)
        return "OK";
    if (err > 0)
        return "UNKNOWN";
#ifdef HAVE_STRERRORNAME_NP
    s = strerrorname_np(-err);
#else
    s = errno_name(-err);
#endif
    return s ? s : "UNKNOWN";
}
