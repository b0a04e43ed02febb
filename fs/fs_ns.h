/*
 * fs_ns.h — the namespace: creating, linking, renaming and removing names.
 *
 * Plain arguments in, -errno and nodes out: no FUSE types, so the same
 * code runs under the FUSE layer (fs_ops.c) and under unit tests against
 * an in-memory store. Every function runs in a fiber and reaches the store
 * only through fs_store.h (via fs_meta.c).
 *
 * Names are 1..FS_NAME_MAX bytes (not NUL-terminated: len counts them);
 * -EINVAL for an empty name, -ENAMETOOLONG beyond. Store errors come back
 * as fs_store_errno() values (-EIO for an outcome that stayed unknown).
 */
#ifndef FS_NS_H
#define FS_NS_H

#include "fs_i.h"

#include <sys/types.h>

/*
 * Who asks: new nodes belong to uid and gid (or the setgid parent's
 * group). umask is applied to a new node's mode unless its directory has
 * a default ACL, which the node inherits instead (0: nothing to apply, the
 * kernel did it).
 */
typedef struct {
    uint32_t uid, gid;
    uint32_t umask;
} fs_ns_cred_t;

/* 0 for a usable name, -EINVAL (empty) or -ENAMETOOLONG. */
int fs_ns_check_name(size_t len);

/*
 * Make a new node name in parent: mode holds the type (S_IFREG, S_IFDIR,
 * S_IFLNK with target, or a device/FIFO/socket with rdev). On 0 *out is
 * the new node with a reference the caller gives back with fs_node_put.
 * -EEXIST when the name exists, -ENOTDIR, -ENOENT (parent gone or dying).
 */
int fs_ns_make(fs_t *fs, uint64_t parent, const char *name, size_t len, mode_t mode, dev_t rdev,
               const char *target, fs_ns_cred_t cred, fs_node_t **out);

/*
 * Remove name (not a directory) from parent. The file loses a link; its
 * last name gone and nothing here holding it open, its record and data
 * are freed in the background. -ENOENT, -EISDIR.
 */
int fs_ns_unlink(fs_t *fs, uint64_t parent, const char *name, size_t len);

/* Remove the empty directory name from parent. -ENOENT, -ENOTDIR, -ENOTEMPTY. */
int fs_ns_rmdir(fs_t *fs, uint64_t parent, const char *name, size_t len);

/*
 * A new name newname in newparent for file ino. On 0 *out is the file's
 * node with a reference (fs_node_put). -EPERM for a directory, -EEXIST.
 */
int fs_ns_link(fs_t *fs, uint64_t ino, uint64_t newparent, const char *name, size_t len,
               fs_node_t **out);

/*
 * rename(2)/renameat2(2): flags 0, RENAME_NOREPLACE or RENAME_EXCHANGE.
 * -ENOENT, -EEXIST, -EISDIR, -ENOTDIR, -ENOTEMPTY, -EINVAL (bad flags).
 */
int fs_ns_rename(fs_t *fs, uint64_t sdir, const char *name, size_t len, uint64_t ddir,
                 const char *newname, size_t newlen, unsigned flags);

/*
 * A file's names may all be gone (n->in.nlink == 0): free it now, or mark
 * it an orphan freed at its last close here (call again after that close).
 */
void fs_ns_file_unlinked(fs_t *fs, fs_node_t *n);
/*
 * Directory dir's mtime is being set explicitly (utimensat, touch -d,
 * tar and cp -a restoring it): times of creates and unlinks not written
 * yet must neither be written over it later nor shown instead of it.
 */
void fs_ns_times_set(fs_node_t *dir);

#endif
