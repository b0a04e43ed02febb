/*
 * fs_fuse_io.h — dhtfs reads and writes /dev/fuse itself (libfuse's custom
 * I/O) to take on FUSE_HANDLE_KILLPRIV_V2, which libfuse 3.14 neither
 * negotiates nor passes on.
 *
 * Without it the kernel asks us for security.capability (a GETXATTR round
 * trip) before every write(2), to learn whether the write must remove it:
 * a second request for every small write. With it the kernel stops asking
 * once an inode has no set-id bit (SB_NOSEC), and the file system clears
 * set-id bits and removes file capabilities itself (fs_ops.c): on a write
 * or an O_TRUNC open whose request says the caller lacks CAP_FSETID, on a
 * truncate or chown that asks it (FATTR_KILL_SUIDGID); capabilities on
 * every write, truncate and chown. The kernel offers it from Linux 5.11.
 * One case the protocol leaves out: chown(f, -1, -1), which the VFS lets
 * clear set-user-ID, reaches us as a SETATTR that asks nothing (the kernel
 * sends the same when a root write finds only a capability to remove), so
 * the bit stays.
 */
#ifndef FS_FUSE_IO_H
#define FS_FUSE_IO_H

#include "fs_i.h"

#include <stdbool.h>

/*
 * Read and write fd (fuse_session_fd) through our hooks: after the mount,
 * before the first request. 0 or -errno.
 */
int fs_io_install(fs_t *fs, int fd);

/*
 * For the request being dispatched (called from its libfuse callback): a
 * WRITE or OPEN that asks the file system to clear the set-id bits.
 */
bool fs_io_take_kill(fs_t *fs);

#endif
