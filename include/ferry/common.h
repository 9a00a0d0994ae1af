/*
 * common.h - what every libferry header needs: the visibility of the
 * public API and the compiler's check that a result is used.
 *
 * libferry is built with hidden visibility, so a symbol is exported only
 * when its declaration here says FERRY_EXPORT: the headers under
 * include/ferry/ are the whole ABI.  FERRY_NODISCARD marks calls whose
 * result carries an error or a new object; ignoring it is a bug.
 * FERRY_BEGIN_DECLS / FERRY_END_DECLS give C++ callers C linkage.
 */
#ifndef FERRY_COMMON_H
#define FERRY_COMMON_H

#if defined(__GNUC__) || defined(__clang__)
#define FERRY_EXPORT    __attribute__((visibility("default")))
#define FERRY_NODISCARD __attribute__((warn_unused_result))
#else
#define FERRY_EXPORT
#define FERRY_NODISCARD
#endif

/* A C++ caller sees C linkage: each header's declarations sit between
 * these. */
#ifdef __cplusplus
#define FERRY_BEGIN_DECLS extern "C" {
#define FERRY_END_DECLS }
#else
#define FERRY_BEGIN_DECLS
#define FERRY_END_DECLS
#endif

#endif
