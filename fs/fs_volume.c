/*
 * fs_volume.c — opening a volume (its record and root directory) and
 * asking the ring how much room it has.
 */
#include "fs_ops.h"
#include "log.h"
#include "kvclient.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_CHUNK_SIZE (64 * 1024)

static int root_open(fs_t *fs, fs_node_t *root);

int fs_volume_open(fs_t *fs, uint32_t chunk_size)
{
    char key[FS_KEY_MAX];
    fs_key_super(key, fs->vol);
    fs_super_t want = {chunk_size ? chunk_size : DEFAULT_CHUNK_SIZE};
    for (int attempt = 0; attempt < 3; attempt++) {
        uint8_t *value;
        size_t len;
        int rc = fs_get(fs->kvc, key, &value, &len, NULL);
        if (rc == 0) {
            fs_super_t s;
            rc = fs_super_decode(value, len, &s);
            free(value);
            if (rc < 0) {
                log_error("fs", "volume %s: undecodable volume record", fs->vol);
                return -EIO;
            }
            if (chunk_size && s.chunk_size != chunk_size)
                log_warn("fs", "volume %s exists with %u KiB chunks; chunk_kb=%u ignored", fs->vol,
                         s.chunk_size / 1024, chunk_size / 1024);
            fs->chunk_size = s.chunk_size;
            break;
        }
        if (rc != -ENOENT)
            return fs_store_errno(rc);
        uint8_t buf[64];
        len = fs_super_encode(&want, buf, sizeof(buf));
        rc = fs_put(fs->kvc, key, buf, len, KVC_PUT_IF_ABSENT, (kv_version_t){0, 0}, NULL);
        if (rc == 0) {
            log_info("fs", "created volume %s (%u KiB chunks)", fs->vol, want.chunk_size / 1024);
            fs->chunk_size = want.chunk_size;
            break;
        }
        if (rc != -EEXIST)
            return fs_store_errno(rc);
    }
    if (!fs->chunk_size)
        return -EIO;

    fs_node_t *root = fs_node_get(fs, FS_ROOT_INO);
    if (!root)
        return -ENOMEM;
    int rc = root_open(fs, root);
    fs_node_put(fs, root);
    return rc;
}

/* Read the root directory's record, or make the root of a new volume. */
static int root_open(fs_t *fs, fs_node_t *root)
{
    int rc = fs_node_load(fs, root, true);
    if (rc != -ENOENT)
        return rc;
    /* A new volume: the root's bucket first, so an existing root always has one. */
    rc = fs_dir_create(fs, FS_ROOT_INO);
    if (rc < 0)
        return rc;
    struct timespec now = fs_now();
    fs_inode_t in;
    memset(&in, 0, sizeof(in));
    in.ino = FS_ROOT_INO;
    in.mode = S_IFDIR | 0755;
    in.uid = geteuid();
    in.gid = getegid();
    in.nlink = 2;
    in.parent = FS_ROOT_INO;
    in.atime_s = in.mtime_s = in.ctime_s = now.tv_sec;
    in.atime_ns = in.mtime_ns = in.ctime_ns = (uint32_t)now.tv_nsec;
    rc = fs_node_create(fs, root, &in);
    if (rc == -EIO) /* created by another mount meanwhile */
        rc = fs_node_load(fs, root, true);
    return rc;
}

/* ---- capacity ---- */

typedef struct {
    bool done;
    int rc;
    fiber_t *waiter;
    kvc_ring_stats_t stats;
} stats_call_t;

static void on_ring_stats(int rc, const kvc_ring_stats_t *stats, void *arg)
{
    stats_call_t *c = arg;
    c->rc = rc;
    if (rc == 0)
        c->stats = *stats;
    c->done = true;
    if (c->waiter)
        fiber_wake(c->waiter);
}

/*
 * The ring's file systems added up (kvclient walks the ring and caches the
 * sum for a couple of seconds, so a df does not ask every node each time);
 * every byte is stored N times, so the volume holds a third of that with
 * three replicas. Nodes sharing one disk count it once each, so a ring on
 * one machine reports that disk's size.
 */
int fs_ring_capacity(fs_t *fs, struct statvfs *sv)
{
    stats_call_t c = {false, 0, NULL, {0}};
    int rc = kvc_ring_stats(fs->kvc, on_ring_stats, &c);
    if (rc < 0)
        return rc;
    while (!c.done) {
        c.waiter = fiber_self();
        fiber_park();
    }
    if (c.rc < 0)
        return -EIO;
    unsigned replicas = c.stats.replicas ? c.stats.replicas : 1;
    uint64_t cap_total = c.stats.disk_total / replicas, cap_avail = c.stats.disk_free / replicas;
    memset(sv, 0, sizeof(*sv));
    sv->f_bsize = fs->chunk_size;
    sv->f_frsize = 4096;
    sv->f_blocks = cap_total / sv->f_frsize;
    sv->f_bfree = sv->f_bavail = cap_avail / sv->f_frsize;
    /* Inodes are keys: as many as the space allows. */
    sv->f_files = sv->f_blocks;
    sv->f_ffree = sv->f_favail = sv->f_bfree;
    sv->f_namemax = FS_NAME_MAX;
    return 0;
}
