/* fsutil.h — the few file-system operations every moec file format goes through.
 *
 * Crash safety: a checkpoint or config written by moec is either the complete old file or the complete new
 * file, never a mixture or a truncated file. Every write goes to "PATH.tmp.<pid>" in the same directory, is
 * fsync'ed, renamed over PATH (atomic on POSIX file systems), and the directory is fsync'ed so the rename
 * itself survives a power loss. If anything fails, the temporary is removed and PATH is untouched.
 */
#ifndef MOEC_IO_FSUTIL_H
#define MOEC_IO_FSUTIL_H

#include <stddef.h>
#include "core/error.h"

/* Write n bytes to path atomically (see above). */
moec_status moec_write_file_atomic(const char *path, const void *data, size_t n);

/* Streaming form of the same, for files too large to assemble in memory (checkpoints):
 *   moec_atomic_file *f; MOEC_TRY(moec_atomic_open(&f, path));
 *   moec_atomic_write(f, ...) ...;  then exactly one of moec_atomic_commit(f) / moec_atomic_abort(f).
 * Both commit and abort free f, whatever they return; a failed commit leaves PATH untouched. After a failed
 * write the caller still calls abort (or commit, which then fails). */
typedef struct moec_atomic_file moec_atomic_file;
moec_status moec_atomic_open(moec_atomic_file **f, const char *path);
moec_status moec_atomic_write(moec_atomic_file *f, const void *data, size_t n);
moec_status moec_atomic_commit(moec_atomic_file *f);
void moec_atomic_abort(moec_atomic_file *f);

/* Read a whole file into a fresh malloc'ed buffer with a NUL appended (so text can be parsed in place);
 * *n excludes the NUL. Files larger than max_bytes are refused (a config.json of 1 GB is corruption). */
moec_status moec_read_file(const char *path, char **data, size_t *n, size_t max_bytes);

/* mkdir -p: create path and missing parents (mode 0777 & ~umask); an existing directory is fine. */
moec_status moec_mkdir_p(const char *path);

/* 1 if path exists (any type), else 0. */
int moec_path_exists(const char *path);

/* "dir/name" in a fresh malloc'ed string (NULL when out of memory). */
char *moec_path_join(const char *dir, const char *name);

/* Copy a file of at most max_bytes, writing the copy atomically. */
moec_status moec_copy_file(const char *from, const char *to, size_t max_bytes);

/* fsync the directory holding path, so a rename into it survives a power loss. Best effort on odd filesystems. */
void moec_sync_parent_dir(const char *path);

/* Remove a staging directory that we created (it holds only plain files of ours) and everything in it: the
 * clean-up of tools that build OUT.tmp-<pid> and rename it to OUT when complete. */
void moec_remove_staging_dir(const char *dir);

#endif
