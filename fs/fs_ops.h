/*
 * fs_ops.h — dhtfs's FUSE low-level operations and volume set-up.
 */
#ifndef FS_OPS_H
#define FS_OPS_H

#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>

#include "fs_i.h"
#include "metrics.h"

#include <sys/statvfs.h>

extern const struct fuse_lowlevel_ops fs_ops;

/* Log, per kind of request, how many ran and their mean time (at info level). */
void fs_ops_log_times(void);
/*
 * The same counters for the metrics endpoint (-o metrics=): per kind of
 * request, the requests, their errors and time, and the store round trips
 * they started; error replies per errno.
 */
void fs_ops_metrics(mx_buf_t *b);

/*
 * Open volume fs->vol on the ring: read its record (creating it with
 * chunk_size when new; 0 keeps the default) and its root directory. Runs
 * in a fiber. 0 or -errno.
 */
int fs_volume_open(fs_t *fs, uint32_t chunk_size);

/* Capacity and use of the ring's disks, as statfs(2) reports them. Runs in a fiber. */
int fs_ring_capacity(fs_t *fs, struct statvfs *sv);

#endif
