/*
 * fs_lock.h — file locks shared by every mount of a volume: the pure part.
 *
 * One record per locked file (key v/VOL/l/INO) lists every lock held on
 * it by any mount. This module decides conflicts, applies a lock or an
 * unlock for one owner (splitting and merging its ranges as POSIX asks),
 * drops an owner's or a dead mount's entries, and encodes and decodes the
 * record. No I/O, clocks or logging: the compare-and-set loop, leases and
 * waiting live in fs_locks.c.
 */
#ifndef FS_LOCK_H
#define FS_LOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Entries one record may hold; a lock that would need more fails with ENOLCK. */
#define FS_LOCK_MAX 256
/* Bytes of one encoded entry and of the record's header. */
#define FS_LOCK_ENT_LEN 37
#define FS_LOCK_HEAD_LEN 3
#define FS_LOCK_REC_MAX (FS_LOCK_HEAD_LEN + FS_LOCK_MAX * FS_LOCK_ENT_LEN)
/* The last byte a lock can cover ("to the end of the file, however long"). */
#define FS_LOCK_EOF UINT64_MAX

/*
 * flock(2) and fcntl(2) locks live side by side and never conflict with
 * each other, as on a local Linux file system.
 */
typedef enum { FS_LOCK_POSIX = 0, FS_LOCK_FLOCK = 1 } fs_lock_kind_t;

/* One lock: who holds which bytes [start, end] (inclusive) how. */
typedef struct {
    uint64_t mount; /* the holding mount's id (random, non-zero) */
    uint64_t owner; /* the kernel's lock owner within that mount */
    uint32_t pid;   /* the locking process, as that mount's kernel saw it */
    uint8_t kind;   /* fs_lock_kind_t */
    bool excl;      /* write lock / LOCK_EX */
    uint64_t start, end;
} fs_lock_ent_t;

/* A file's locks; entries of one (mount, owner, kind) never overlap or touch with one type. */
typedef struct {
    size_t count;
    fs_lock_ent_t ent[FS_LOCK_MAX];
} fs_lock_rec_t;

/*
 * The first entry that keeps want from being granted: another owner's
 * (mount or owner differs) of the same kind whose range overlaps and
 * where either side is exclusive. Its index, or -1 when none.
 */
int fs_lock_conflict(const fs_lock_rec_t *r, const fs_lock_ent_t *want);

/*
 * Set want for its (mount, owner, kind): the owner's own bytes in
 * [start, end] take want's type (split where the range cuts one of its
 * entries; merged with the owner's adjacent or overlapping entries of the
 * same type), or are removed when unlock. Does not check conflicts (call
 * fs_lock_conflict first). *changed (may be NULL) says whether r differs.
 * 0, -EINVAL (start > end), -ENOLCK (more than FS_LOCK_MAX entries; r
 * unchanged).
 */
int fs_lock_apply(fs_lock_rec_t *r, const fs_lock_ent_t *want, bool unlock, bool *changed);

/* Remove every entry of (mount, owner, kind). The number removed. */
size_t fs_lock_drop_owner(fs_lock_rec_t *r, uint64_t mount, uint64_t owner, fs_lock_kind_t kind);
/* Remove every entry of mount (a mount that unmounted or whose lease ran out). */
size_t fs_lock_drop_mount(fs_lock_rec_t *r, uint64_t mount);
/* Entries held by mount. */
size_t fs_lock_count_mount(const fs_lock_rec_t *r, uint64_t mount);

/*
 * Lost locks, from the holder's side. Other mounts take a mount's locks
 * once its heartbeat stood still for a lease on their clocks, which starts
 * no earlier than the last renewal that landed was sent. So the holder
 * counts from when it sent that renewal (renewed_ms, its own clock) and
 * gives up an eighth of the lease for clocks that run at different rates:
 * true when now_ms - renewed_ms >= lease_ms * 7/8.
 */
bool fs_lock_lease_lapsed(uint64_t now_ms, uint64_t renewed_ms, unsigned lease_ms);
/*
 * A record read from the store no longer holds any entry of mount, which
 * held `held` entries there as far as it knew for sure: another mount
 * removed them (it took this mount for dead). held 0: false.
 */
bool fs_lock_entries_lost(const fs_lock_rec_t *r, uint64_t mount, size_t held);

/*
 * Keys (buf of FS_KEY_MAX bytes, NUL-terminated; the length, or 0 for a
 * bad volume name): a file's lock record v/VOL/lock/INO and a mount's
 * heartbeat v/VOL/mount/ID (both hex).
 */
size_t fs_lock_key(char *buf, const char *vol, uint64_t ino);
size_t fs_lock_key_mount(char *buf, const char *vol, uint64_t mount);

/*
 * Encode r into buf (at least FS_LOCK_REC_MAX bytes). The length, or 0
 * if r breaks an invariant that decode checks.
 */
size_t fs_lock_encode(const fs_lock_rec_t *r, uint8_t *buf, size_t cap);
/*
 * Decode a record read from the store (any bytes: hostile input is
 * refused, never trusted). 0 or -EBADMSG.
 */
int fs_lock_decode(const uint8_t *buf, size_t len, fs_lock_rec_t *r);

#endif
