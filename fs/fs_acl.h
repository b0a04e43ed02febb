/*
 * fs_acl.h — POSIX ACLs in their xattr form (pure logic, no I/O).
 *
 * The kernel hands ACLs to a FUSE file system as the values of the
 * system.posix_acl_access and system.posix_acl_default xattrs, in the
 * Linux xattr encoding: a little-endian u32 version (2), then entries of
 * u16 tag, u16 perm, u32 id. With FUSE_CAP_POSIX_ACL the kernel checks
 * access against them; the file system stores them, keeps the mode's
 * permission bits and the access ACL in step (setxattr and chmod), and
 * gives new nodes their directory's default ACL. This module does the
 * arithmetic of those three duties; fs_ops.c and fs_ns.c do the storing.
 */
#ifndef FS_ACL_H
#define FS_ACL_H

#include <stddef.h>
#include <stdint.h>

#define FS_ACL_ACCESS "system.posix_acl_access"
#define FS_ACL_DEFAULT "system.posix_acl_default"

/*
 * Is value a well-formed ACL: version 2, entries sorted by tag (and by id
 * within named users and groups, no duplicates), exactly one owner, owning
 * group and other entry, and a mask when named entries exist? 0 or -EINVAL.
 */
int fs_acl_check(const uint8_t *value, size_t len);
/*
 * The permission bits an access ACL gives the mode (owner, mask or owning
 * group, other) are put into the low 9 bits of *mode (the rest is kept).
 * Returns 1 when the ACL says no more than those bits (three entries: it
 * need not be stored), 0 when it is extended, -EINVAL when malformed.
 */
int fs_acl_to_mode(const uint8_t *value, size_t len, uint32_t *mode);
/*
 * chmod of a file with an access ACL: the owner, mask (or owning group,
 * without a mask) and other entries of value (a valid ACL, changed in
 * place) take the permission bits of mode.
 */
void fs_acl_chmod(uint8_t *value, size_t len, uint32_t mode);
/*
 * A new node in a directory whose default ACL is def (valid): its access
 * ACL is def with the owner, mask (or owning group) and other entries
 * limited by the requested *mode, whose permission bits are then set from
 * that ACL (no umask applies). On 0 *access (malloc'd, len *access_len) is
 * the ACL to store, or NULL when the result is equivalent to the mode.
 * -EINVAL (def malformed), -ENOMEM.
 */
int fs_acl_inherit(const uint8_t *def, size_t len, uint32_t *mode, uint8_t **access,
                   size_t *access_len);

#endif
