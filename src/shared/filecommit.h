/*
 * filecommit.h - the atomic commit of a received file, as ferryd (uploads)
 * and ferry (downloads) both do it: the bytes go to a temporary in the
 * destination directory, which gets its final mode and times, is fsynced
 * when asked, and is renamed over the final name; then the directory is
 * fsynced so the rename itself survives a crash.  A reader of the final
 * name sees the old file or the whole new one, never a part.
 *
 * The steps are separate calls because callers check things in between
 * (ferryd makes sure the temporary's name still leads to the file it
 * wrote).  Errors: 0 or -errno.
 */
#ifndef FERRY_SHARED_FILECOMMIT_H
#define FERRY_SHARED_FILECOMMIT_H

#include <limits.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

/*
 * The temporary's name for the final name `name`: ".NAME.ferry-part", or
 * with a tag ".NAME.XXXXXXXX.ferry-part" (the tag in hex: a private
 * temporary nobody else will pick).  NAME is cut so the whole fits in
 * NAME_MAX; names that share the kept bytes share a temporary, so whoever
 * resumes one must verify its content, not trust its name.
 */
void filecommit_tmp_name(char out[NAME_MAX + 1], const char *name, const uint32_t *tag);

/*
 * Give the temporary fd its final permission bits (mode & 0777: set-id and
 * sticky bits are never set by a commit) and, when times is not NULL, its
 * access and modification times (futimens: UTIME_NOW and UTIME_OMIT
 * work); then fsync it when sync is not 0.
 */
int filecommit_prepare(int fd, mode_t mode, const struct timespec times[2], int sync);

/* Rename (dirfd, tmp) over (dirfd, name); dirfd may be AT_FDCWD. */
int filecommit_rename(int dirfd, const char *tmp, const char *name);

/*
 * fsync the directory (dirfd, dir), "." for dirfd itself (which may be an
 * O_PATH descriptor).  After the rename: a failure here means the file is
 * in place but its name may not survive a crash, which callers report as a
 * warning, not as a failed transfer.
 */
int filecommit_sync_dir(int dirfd, const char *dir);

#endif
