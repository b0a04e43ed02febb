/*
 * fs_i.h — the dhtfs client's shared state, internal to fs/.
 *
 * fs_meta.c: inode records (cache, compare-and-set updates, inode number
 *            ranges) and directories (bucket trie, lookup, insert, remove,
 *            split, iteration).
 * fs_data.c: file data (clean chunk cache, write-back of dirty chunks,
 *            read-ahead, truncation).
 * fs_ns.c:   the namespace (create, link, rename, remove), no FUSE types.
 * fs_ops.c:  the FUSE low-level operations, each one a fiber.
 * fs_fuse_io.c: our own reads and writes of /dev/fuse (fs_fuse_io.h).
 *
 * Nothing here needs FUSE: the namespace and metadata code (and their unit
 * tests) build without its headers; only fs_ops.h brings them in.
 */
#ifndef FS_I_H
#define FS_I_H

#include "fiber.h"
#include "fs_layout.h"
#include "fs_map.h"
#include "fs_store.h"
#include "kv_cache.h"
#include "kvclient.h"
#include "loop.h"
#include "rpc.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

typedef struct fs_dchunk fs_dchunk_t;
typedef struct fs_lk_wait fs_lk_wait_t;
struct fuse_session;

/*
 * Attribute changes (chmod, chown, utimens) of a file whose record is to
 * be written anyway: they ride with that write (fs_node_defer_attrs). The
 * fields are absolute values, so applying them twice is harmless.
 */
enum {
    FS_SET_MODE = 1 << 0,
    FS_SET_UID = 1 << 1,
    FS_SET_GID = 1 << 2,
    FS_SET_ATIME = 1 << 3,
    FS_SET_MTIME = 1 << 4,
    FS_SET_CTIME = 1 << 5,
};
typedef struct {
    unsigned set;  /* FS_SET_* */
    uint32_t mode; /* permission bits only */
    uint32_t uid, gid;
    struct timespec atime, mtime, ctime;
} fs_attr_edit_t;

/* What this mount knows about one inode. */
typedef struct {
    uint64_t ino;
    fs_inode_t in;      /* the record as last read from or written to the store */
    kv_version_t ver;   /* its store version (compare-and-set token) */
    fs_stamps_t stamps; /* the last changes' tokens, as stored with the record */
    bool have;          /* in/ver are valid */
    uint64_t fetched_ms;
    uint64_t nlookup;     /* the kernel's references */
    unsigned refs;        /* fibers holding this node across parks */
    unsigned open;        /* open handles in this mount */
    uint64_t parent;      /* the directory through which the kernel last got this node's name */
    uint64_t lk_lost_seq; /* this mount's locks on the file were lost (fs_t.lk_lost_seq then) */
    bool orphan;          /* no names left while open here: free data at last close */
    bool remote_change;   /* another mount changed the data since the kernel cached it */
    fiber_mutex_t lock;   /* this mount's updates of the record, one at a time */
    /* a directory's new mtime/ctime from creates and unlinks, written behind */
    bool touch_pending, touch_running;
    struct timespec touch_time;
    bool touch_ctime_only; /* ... only a new ctime (a renamed entry's), no mtime */
    /* write-back */
    uint64_t size;      /* size including writes not yet flushed */
    bool meta_dirty;    /* size and mtime still to be written */
    bool meta_flushing; /* ... and being written right now */
    /*
     * Created by this mount's CREATE, whose handle is still open, and the
     * record not read or written since: its first flush is as good a
     * place for an attribute change as any (SQLite's fchown of a journal
     * it just created, before writing it).
     */
    bool just_created;
    /*
     * Deferred attribute changes (set only while meta_dirty, under lock),
     * shown by fs_node_to_stat and written by the next record update;
     * over_seq counts them, so an update clears only what it wrote.
     */
    fs_attr_edit_t over;
    uint64_t over_seq;
    /*
     * Chunks this mount stored since its last record update. The index
     * already held them before each put; the next update unions them in
     * again, so a truncation by another mount meanwhile cannot leave a
     * chunk of ours outside the index.
     */
    fs_extents_t written;
    bool reserving; /* a sequential writer's index reservation is under way */
    struct timespec mtime;
    fs_dchunk_t *dirty_head; /* dirty chunks of this file */
    unsigned flushing;       /* chunk puts in flight */
    fiber_t *flush_waiter;
    bool wb_hold; /* being discarded: finished puts start no more */
    int wb_error; /* a background flush failed: reported by the next fsync/close */
    uint64_t
        gen; /* chunk cache generation: new for each node, bumped when another mount changed data */
    uint64_t ra_next;  /* read-ahead: where a sequential reader goes next */
    uint64_t ra_until; /* chunks below this were already requested */
    /* stat-ahead (fs_ahead.c) is loading the record, or loaded it and no lookup used it yet */
    enum { FS_AHEAD_NONE, FS_AHEAD_LOADING, FS_AHEAD_LOADED } ahead;
} fs_node_t;

typedef struct fs fs_t;
/*
 * The most a directory's new times wait to be written behind (fs_t
 * touch_delay_ms): 50 ms batch ~20 creates of one process into one write.
 */
#define FS_TOUCH_DELAY_MS 50

struct fs {
    loop_t *loop;
    kvc_t *kvc;
    struct fuse_session *se;
    char vol[72];
    uint32_t chunk_size;
    bool apply_umask; /* the kernel sends the umask for us to apply (POSIX ACLs on) */
    /* We clear set-id bits and file capabilities, not the kernel (fs_fuse_io.h). */
    bool killpriv;
    struct {
        uint64_t init_unique; /* the INIT request's, until its reply is written */
        bool init_pending;    /* that reply is still to be written */
        bool offered;         /* the kernel offered FUSE_HANDLE_KILLPRIV_V2 */
        bool kill;            /* the request being dispatched asks to clear set-id bits */
    } io;
    double attr_timeout, entry_timeout;
    uint64_t ttl_ms; /* how long cached metadata may answer lookups */
    /*
     * A directory's new times (a name came or went) are written this long
     * after the first change, one write for every change meanwhile (0: at
     * the next turn; dhtfs: FS_TOUCH_DELAY_MS, at most a quarter of ttl_ms).
     */
    unsigned touch_delay_ms;
    uint64_t ino_next, ino_end;
    uint64_t tok_next; /* change tokens: a random start per mount, then counting */
    fiber_mutex_t ino_lock;
    fs_map_t *nodes;      /* ino → fs_node_t */
    uint64_t gen_next;    /* chunk cache generations are never reused */
    fs_map_t *dirty;      /* (ino, chunk) → fs_dchunk_t */
    uint64_t dchunk_next; /* dirty chunk ids, never reused */
    bool no_patch;        /* the ring cannot patch values (an older node): write whole chunks */
    fs_map_t *fetching;   /* (ino, chunk) → in-flight chunk read */
    kv_cache_t *chunks;   /* clean chunks: (ino, chunk, gen) → bytes */
    kv_cache_t *buckets;
    size_t dirty_bytes, dirty_max;
    unsigned puts_in_flight, puts_max;
    unsigned readahead_chunks;
    /* the ring, for statfs */
    rpc_t *rpc;
    char **peers;
    size_t npeers;
    unsigned timeout_ms;
    /* file locks shared by the mounts (fs_locks.c) */
    uint64_t mount_id;   /* random, chosen at the first lock */
    unsigned lease_ms;   /* how long a silent mount keeps its locks (-o lock_lease_ms) */
    fs_map_t *lockfiles; /* ino → what we know of its lock record */
    fs_map_t *leases;    /* mount id → its heartbeat as last seen */
    bool hb_started, hb_inflight, lk_stopping;
    uint64_t hb_timer;
    uint64_t hb_ok_ms;    /* when the last heartbeat put that landed was started */
    uint64_t hb_lapse_ms; /* the hb_ok_ms whose lapse was already reported */
    /* the heartbeat's version as our last put left it (fs_locks.c, hb_put) */
    kv_version_t hb_ver;
    enum { FS_HB_NEW, FS_HB_KNOWN, FS_HB_UNKNOWN } hb_ver_state;
    uint64_t lk_lost_seq; /* counts the times locks were found lost */
    uint64_t lk_grants;   /* counts the locks granted by this mount */
    unsigned lk_kept;     /* lock records this mount keeps empty (fs_locks.c) */
    /* called (on the loop) for each file whose locks were found lost */
    void (*lk_lost_hook)(fs_t *fs, uint64_t ino);
    struct fs_names *names; /* names the kernel may still trust (fs_names.h) */
    struct fs_ahead *ahead; /* stat-ahead (fs_ahead.h), made at the first lookup */
};

/* ---- time ---- */
struct timespec fs_now(void);
/* A record's time (s, ns) against t: <0, 0, >0. */
int fs_ts_cmp(int64_t s, uint32_t ns, struct timespec t);
uint64_t fs_now_ms(fs_t *fs);

/* ---- change tokens (fs_meta.c) ---- */
/*
 * A token no other change of any mount carries (non-zero): a random start
 * per mount, then counting, so "did my change land?" can be answered by
 * reading the record or bucket back and looking for it among its stamps.
 */
uint64_t fs_token_new(fs_t *fs);
/* A store error after which a write may or may not have been applied. */
bool fs_outcome_unknown(int rc);

/* ---- nodes and inode records (fs_meta.c) ---- */
/* Free every node and cache at exit (after the loop and its fibers are gone). */
void fs_release_all(fs_t *fs);
/*
 * The node of ino (created empty if unknown; NULL on ENOMEM), with a
 * reference that keeps it alive across parks: give it back with fs_node_put.
 */
fs_node_t *fs_node_get(fs_t *fs, uint64_t ino);
void fs_node_put(fs_t *fs, fs_node_t *n);
fs_node_t *fs_node_find(fs_t *fs, uint64_t ino);
/* Drop a node nobody refers to any more. */
void fs_node_maybe_free(fs_t *fs, fs_node_t *n);
/*
 * Make sure n holds the record: from the store if fresh is set, if it is
 * older than the metadata TTL, or if missing. 0, -ENOENT, -EIO.
 */
int fs_node_load(fs_t *fs, fs_node_t *n, bool fresh);
/* n holds a record younger than the metadata TTL (fs_node_load would not read it). */
bool fs_node_fresh(fs_t *fs, const fs_node_t *n);
/*
 * Change the record with mutate(in, arg) and write it with compare-and-set,
 * re-reading and re-applying on conflicts. The write carries a fresh token:
 * after a conflict or a lost answer the record is read back, and if the
 * token is there the change landed and is not applied again (a link count
 * moves once per call). mutate returns 0, or an errno to give up (nothing
 * written). -EIO when the outcome stayed unknown. With n->lock held by the
 * caller if locked.
 */
typedef int (*fs_mutate_fn)(fs_inode_t *in, void *arg);
int fs_node_update(fs_t *fs, fs_node_t *n, fs_mutate_fn mutate, void *arg);
/*
 * An attribute change (no size) for a file whose record this mount is to
 * write anyway: a regular file open here with writes not yet flushed
 * (meta_dirty), whose flush at close or fsync writes the record, or one it
 * just created and has not written (just_created: the change makes that
 * flush owed, so the round trip moves from the setattr to the close or
 * fsync, which SQLite's journal has anyway). Then the
 * change is shown at once and written by that flush (or by any update of
 * the record before it, before that update's own change), not by a
 * compare-and-set of its own:
 * tar's futimens, fchown and fchmod of a file it just wrote cost no round
 * trip, and reach other mounts with the file's data (close-to-open). A
 * mode change is not deferred while this mount knows of an access ACL on
 * the file (getxattr reads the record; the write updates the ACL in any
 * case). Takes n->lock. true: deferred; false: the caller updates the
 * record itself.
 */
bool fs_node_defer_attrs(fs_node_t *n, const fs_attr_edit_t *e);
/* Apply the changes in e to a record (a mode change updates its access ACL). 0 or -ENOMEM. */
int fs_attr_edit_apply(fs_inode_t *in, const fs_attr_edit_t *e);
/*
 * Write a brand new record (put-if-absent). 0 also when an attempt whose
 * answer was lost had written it; -EIO when the record may or may not
 * exist (never delete it then: a name may point to it).
 */
int fs_node_create(fs_t *fs, fs_node_t *n, const fs_inode_t *in);
/* Load several records at once (those not fresh), in parallel. */
void fs_nodes_load(fs_t *fs, fs_node_t **nodes, size_t count);
/*
 * Delete the chunks of ino that the index `chunks` lists at or after
 * `first` (absent ones are fine): one delete per listed chunk, never one
 * per chunk of the file's size. chunks is borrowed and must stay unchanged
 * until the call returns (pass a copy, not a node's record, which may be
 * replaced while this parks). 0 or the first error.
 */
int fs_chunks_delete(fs_t *fs, uint64_t ino, const fs_extents_t *chunks, uint64_t first);
/*
 * Delete the chunks listed in `chunks` (NULL: none; borrowed as above) and
 * then, if record, the inode record of ino.
 */
int fs_node_destroy(fs_t *fs, uint64_t ino, const fs_extents_t *chunks, bool record);
/* A fresh inode number, never used by any mount of the volume. */
int fs_ino_alloc(fs_t *fs, uint64_t *ino);
void fs_node_to_stat(const fs_t *fs, const fs_node_t *n, struct stat *st);
/* n's mode as fs_node_to_stat shows it: with a change still deferred (n->over). */
uint32_t fs_node_mode(const fs_node_t *n);

/* ---- directories (fs_meta.c) ---- */
int fs_dir_create(fs_t *fs, uint64_t dir);
/* fresh: ignore cached buckets. 0 (ent filled), -ENOENT, -EIO. */
int fs_dir_lookup(fs_t *fs, uint64_t dir, const char *name, size_t len, bool fresh,
                  fs_dirent_t *ent);
/*
 * name in dir as this mount's cached leaf has it, a miss included (read
 * from the store only when the leaf is not cached or older than ttl_ms):
 * for callers whose compare-and-set on that leaf catches a stale answer.
 */
int fs_dir_lookup_cached(fs_t *fs, uint64_t dir, const char *name, size_t len, fs_dirent_t *ent);

/*
 * Change the entries of the bucket holding name: edit(bucket, arg) modifies
 * the bucket in place and returns 0, 1 (nothing to write), or an errno.
 * Splits full buckets on the way. Like fs_node_update, the change carries
 * a token and is applied once: after a conflict or a lost answer the leaf
 * is read back first. edit's side effects (what it found) are those of the
 * attempt that landed. -EIO: the outcome stayed unknown.
 */
typedef int (*fs_edit_fn)(fs_bucket_t *b, void *arg);
int fs_dir_edit(fs_t *fs, uint64_t dir, const char *name, size_t len, fs_edit_fn edit, void *arg);
/*
 * Claim an empty directory for removal: its buckets refuse new names from
 * then on. 0, -ENOTEMPTY (nothing claimed), or -errno.
 */
int fs_dir_claim_empty(fs_t *fs, uint64_t dir);
/* Give a claimed directory back (a removal that could not finish). */
void fs_dir_unclaim(fs_t *fs, uint64_t dir);
/* Delete the buckets of an empty, dying directory. */
int fs_dir_destroy(fs_t *fs, uint64_t dir);

/*
 * Iterate names with hash >= *from in hash order: fills ents (up to max)
 * with the rest of one bucket and sets *from to where the next call starts
 * (UINT64_MAX at the end). fresh: bypass the bucket cache.
 */
int fs_dir_read(fs_t *fs, uint64_t dir, uint64_t *from, bool fresh, fs_dirent_t **ents,
                size_t *count);

/* ---- file data (fs_data.c) ---- */
int fs_data_read(fs_t *fs, fs_node_t *n, uint64_t off, size_t size, uint8_t *out, size_t *got);
int fs_data_write(fs_t *fs, fs_node_t *n, uint64_t off, const uint8_t *buf, size_t size);
/* Write back every dirty chunk of n, then its size and mtime. */
int fs_data_flush(fs_t *fs, fs_node_t *n);
/*
 * Cut or extend the file's data to size: deletes the chunks the index
 * lists past the new end (a cost in listed chunks, not in size). The
 * caller then updates the record, whose size change cuts the index.
 */
int fs_data_truncate(fs_t *fs, fs_node_t *n, uint64_t old_size, uint64_t size);
/*
 * Make bytes [off, off+len) read as zeros (hole punching and zeroing):
 * chunks wholly inside the range (clipped to the size) are deleted from
 * the store and dropped from the index, so st_blocks goes down; the edge
 * chunks, when stored, are rewritten with the range zeroed. Dirty data is
 * written back first, so the write-back cache never resurrects punched
 * bytes. Never changes the size. 0 or -errno (-EIO, -ENOSPC, -ENOMEM).
 */
int fs_data_zero(fs_t *fs, fs_node_t *n, uint64_t off, uint64_t len);
/*
 * Grow the file to size if it is smaller (fallocate without KEEP_SIZE):
 * no data is written and nothing is reserved. 0 or -errno.
 */
int fs_data_extend(fs_t *fs, fs_node_t *n, uint64_t size);
/*
 * SEEK_DATA (data true) or SEEK_HOLE from off, from the chunks the index
 * lists (after writing back dirty data, so they are listed too). 0 and
 * *out, -ENXIO, or -errno.
 */
int fs_data_seek(fs_t *fs, fs_node_t *n, uint64_t off, bool data, uint64_t *out);
/*
 * copy_file_range within a volume: len bytes of src at off_in to dst at
 * off_out (clipped to src's size; *copied says how many). When the two
 * offsets are equal modulo the chunk size, every chunk wholly inside the
 * range is copied store to store (its value read and put under dst's
 * key, a hole in src becoming a hole in dst) without passing through the
 * kernel; the unaligned edges, and everything when the offsets do not
 * line up, go through fs_data_read/fs_data_write. Both files' dirty data
 * is written back first. 0 or -errno; on an error part of the range may
 * have been copied.
 */
int fs_data_copy(fs_t *fs, fs_node_t *src, uint64_t off_in, fs_node_t *dst, uint64_t off_out,
                 uint64_t len, uint64_t *copied);
/* Forget cached chunks of n (another mount changed the file). */
void fs_data_invalidate(fs_t *fs, fs_node_t *n);
bool fs_data_dirty(const fs_node_t *n);
/* Drop unwritten data of a file that no longer has a name. */
void fs_data_discard(fs_t *fs, fs_node_t *n);

/* ---- file locks across mounts (fs_locks.c; the record's logic in fs_lock.h) ---- */
#include "fs_lock.h"

/* A waiting lock request: parked between polls, woken early by an interrupt or a local release. */
struct fs_lk_wait {
    bool interrupted; /* the kernel interrupted the request: answer EINTR */
    bool sleeping;
    fiber_t *fiber;
    loop_t *loop;
    uint64_t timer;
    fs_lk_wait_t *next;
};
/* The request was interrupted (from the FUSE interrupt callback, on the loop). */
void fs_lk_interrupt(fs_lk_wait_t *w);
/*
 * Set (or, with unlock, drop) want on ino for want->owner and kind;
 * want->mount is filled in. Without wait a conflict answers -EAGAIN at
 * once; with wait the fiber parks and retries until granted, interrupted
 * (-EINTR) or the mount stops. A conflicting lock of a mount whose
 * heartbeat stood still for a lease is removed first. fh names the open
 * file the request came through (its release drops what no close can).
 * *quiet (may be NULL) says that no other mount changed ino's lock record
 * since this mount's previous grant on it: every change since, this one
 * included, was written at its first try on the record as this mount had
 * left it, under its version. 0, -EAGAIN,
 * -EINTR, -ENOLCK (record full), -EIO.
 */
int fs_lk_set(fs_t *fs, uint64_t ino, fs_lock_ent_t *want, bool unlock, uint64_t fh,
              fs_lk_wait_t *wait, bool *quiet);
/* F_GETLK: the first lock that would block want (*found), read afresh. 0 or -errno. */
int fs_lk_get(fs_t *fs, uint64_t ino, const fs_lock_ent_t *want, fs_lock_ent_t *conflict,
              bool *found);
/* Drop owner's locks of kind on ino (close, release). No store traffic unless we hold some there.
 */
int fs_lk_drop_owner(fs_t *fs, uint64_t ino, uint64_t owner, fs_lock_kind_t kind);
/*
 * The open file fh of ino is released: drop the fcntl locks taken through
 * it whose owner no close has named since (open-file-description locks).
 */
int fs_lk_release_file(fs_t *fs, uint64_t ino, uint64_t fh);
/* This mount holds entries in ino's record (as far as it knows). */
bool fs_lk_holds(fs_t *fs, uint64_t ino);
/*
 * Can a grant on ino now be quiet (fs_lk_set's *quiet)? Only when this
 * mount keeps a coherent, valid cache of a present record; otherwise
 * (e.g. the first grant after the record was deleted by the last unlock)
 * it cannot, and a read sent with the grant would be read again anyway.
 */
bool fs_lk_may_be_quiet(fs_t *fs, uint64_t ino);
/*
 * Has this mount's heartbeat gone unrenewed long enough that other mounts
 * may have taken its locks? If so (once per lapse) every file where it
 * held locks is marked lost (fs_node_t.lk_lost_seq, lk_lost_hook) and a
 * warning logged. Cheap: no store traffic.
 */
void fs_lk_check_lease(fs_t *fs);
/*
 * Unmount: stop the heartbeat, end local waiters (EINTR), and start a
 * fiber that removes this mount's entries and its heartbeat (run the loop
 * to let it finish).
 */
void fs_lk_stop(fs_t *fs);
/* Free the lock tables at exit. */
void fs_lk_release_all(fs_t *fs);

#endif
