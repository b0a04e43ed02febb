/*
 * store.h — a node's durable key-value store: LMDB on disk, an LRU cache
 * in front, and group commit on a committer thread (on the loop for a
 * store in memory).
 *
 * Records are ordered by ring position (BLAKE2b of the key, m bits) and then
 * by key, so every range of the ring is one cursor scan: that is what join
 * hand-over, anti-entropy and leave use. Each record holds the value's
 * version, flags (tombstone) and bytes.
 *
 * Writes are staged on the loop into a batch; store_commit() (the loop's
 * before-poll hook) hands the batch to the committer thread, which writes
 * it in its own LMDB transaction and fsyncs it, while the next batch
 * accumulates (a store in memory commits in store_commit() instead: no
 * fsync to keep off the loop). Whoever must not acknowledge before
 * durability registers with store_after_commit(); those callbacks run on
 * the loop when their batch is durable. Reads on the loop never wait for
 * the committer: they see staged and committing writes through an
 * in-memory overlay.
 *
 * Counts, bytes and per-bucket digests are kept up to date on every write,
 * so store_count(), store_bytes() and store_digest() cost O(buckets), not
 * O(records).
 *
 * All functions must be called from the loop's thread.
 */
#ifndef STORE_H
#define STORE_H

#include "kv_version.h"
#include "loop.h"
#include "ring_id.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct store store_t;

typedef struct {
    kv_version_t version;
    uint8_t flags;        /* WIRE_FLAG_TOMBSTONE */
    const uint8_t *value; /* borrowed until the next store_* call */
    size_t value_len;
    kv_opid_t opid; /* the client write that made this version (client 0: unknown) */
} store_rec_t;

/*
 * Test hook: with DHT_TEST_COMMIT_DELAY_MS=N in the environment at
 * store_open(), every commit sleeps N ms (a slow fsync), on whichever
 * thread commits; STORE_COMMIT_AUTO then keeps the committer thread even
 * for a store in memory. Only tests and benchmarks set it.
 */
#define STORE_TEST_COMMIT_DELAY_ENV "DHT_TEST_COMMIT_DELAY_MS"

/*
 * Where commits run. THREAD: on the committer thread, so that an fsync
 * never stalls the loop. LOOP: in store_commit() itself, for a store whose
 * commits cost no more than a copy (in memory). AUTO: LOOP when dir is on
 * tmpfs or ramfs (and no commit delay is simulated), else THREAD.
 */
typedef enum { STORE_COMMIT_AUTO, STORE_COMMIT_THREAD, STORE_COMMIT_LOOP } store_commit_mode_t;

/*
 * Open (creating) the store in dir for an id_bits ring with a cache of
 * cache_mb MiB; unless it commits on the loop (mode), start its committer
 * thread and watch the committer's answers (an eventfd) in loop. Counts
 * and digests are rebuilt from disk here, once (O(records), before the node
 * serves). Returns NULL with a message in err on failure.
 */
store_t *store_open(const char *dir, unsigned id_bits, size_t cache_mb, store_commit_mode_t mode,
                    loop_t *loop, char *err, size_t errcap);
/* store_flush(), then stop the committer and close. Sets *st to NULL. */
void store_close(store_t **st);

/*
 * 0 and *rec filled, -ENOENT, -EINVAL (bad key) or -EIO. Sees staged and
 * committing writes; never waits for the committer.
 */
int store_get(store_t *st, const uint8_t *key, size_t key_len, store_rec_t *rec);
/*
 * store_get for a caller that wants the version and flags, not the value
 * (a version-only read, a condition's check): rec->value is still set, but
 * a large value's pages are not mapped in and the value is not cached.
 */
int store_head(store_t *st, const uint8_t *key, size_t key_len, store_rec_t *rec);
/*
 * store_get for a caller that only copies the value out, with
 * store_value_copy (a reply): a large value's pages are not mapped in.
 */
int store_get_to_copy(store_t *st, const uint8_t *key, size_t key_len, store_rec_t *rec);
/*
 * Copy len bytes of a value from rec->value (of store_get_to_copy, or of
 * any lookup, with no store call in between) to dst: a large value in
 * LMDB's map is read from the data file with pread(2), anything else is
 * copied with memcpy. Also takes values that are not the store's (st may
 * be NULL).
 */
void store_value_copy(const store_t *st, const void *value, size_t len, void *dst);

/*
 * Stage a write if version is newer than what the store holds for key.
 * Returns 1 staged, 0 not newer (nothing done; *current, if non-NULL, gets
 * the stored version), -EINVAL, -ENOMEM, -EIO. A full disk shows only at
 * commit (store_after_commit's rc).
 */
int store_put(store_t *st, const uint8_t *key, size_t key_len, kv_version_t version, uint8_t flags,
              const void *value, size_t value_len, kv_version_t *current);

/*
 * store_put, remembering opid (the client write that made version; may be
 * unset) with the record, so a retry of that write can recognise it.
 */
int store_put_opid(store_t *st, const uint8_t *key, size_t key_len, kv_version_t version,
                   uint8_t flags, kv_opid_t opid, const void *value, size_t value_len,
                   kv_version_t *current);

/*
 * store_put_opid of a patch made against the stored version base: the value
 * becomes the stored value with len bytes written at off (kv_patch_write),
 * built straight into the staged record. Returns 1 staged, 0 when the store
 * already holds version or newer (as store_put), -ESTALE when it holds no
 * live value of version base, -EFBIG when off + len passes WIRE_VALUE_MAX,
 * -EINVAL, -ENOMEM, -EIO.
 */
int store_patch_opid(store_t *st, const uint8_t *key, size_t key_len, kv_version_t version,
                     kv_opid_t opid, kv_version_t base, uint32_t off, const void *bytes, size_t len,
                     kv_version_t *current);

/* Stage the physical removal of key (garbage collection, not a delete). 0 or -ENOENT. */
int store_remove(store_t *st, const uint8_t *key, size_t key_len);

typedef void (*store_commit_fn)(int rc, void *arg);
/*
 * Run fn(rc, arg) on the loop once every write staged so far is durable:
 * rc is 0, or -ENOSPC / -EIO when the commit failed. A failed commit loses
 * its batch and (with a committer thread) the batch staged behind it
 * (whose "newer than" decisions were made against the lost writes): every
 * waiter of both gets the error, and nothing is left of their writes.
 * With nothing staged, fn runs after the next commit as well. fn may
 * stage writes and wait again.
 * 0 or -ENOMEM.
 */
int store_after_commit(store_t *st, store_commit_fn fn, void *arg);
/*
 * Hand the staged batch to the committer if it is idle (else it waits for
 * the batch being committed); never waits for a disk. A store that commits
 * on the loop commits here and runs the callbacks. Also ends the loop's LMDB read
 * snapshot, so that pointers from store_get() do not outlive an iteration.
 */
void store_commit(store_t *st);
/* Block until everything staged is durable and its callbacks ran (shutdown). */
void store_flush(store_t *st);
/* Writes staged or committing, or callbacks waiting. */
bool store_dirty(const store_t *st);

/*
 * Visit records with ring position in (lo, hi] (the whole ring when
 * lo == hi), in position order, starting strictly after (after_pos,
 * after_key) when after_key is non-NULL. Stops after max records or when fn
 * returns non-zero. Returns the number visited, or -EIO. fn's pointers are
 * valid during the call only. Records whose first write is still staged or
 * committing are not visited yet (the overlay is not ordered); changed and
 * removed ones are shown as they are now.
 */
typedef int (*store_scan_fn)(const uint8_t *key, size_t key_len, ring_id_t pos,
                             const store_rec_t *rec, void *arg);
int store_scan(store_t *st, ring_id_t lo, ring_id_t hi, ring_id_t after_pos,
               const uint8_t *after_key, size_t after_len, size_t max, store_scan_fn fn, void *arg);

/*
 * Count and order-independent digest (kv_digest.h) of the (key, version)
 * pairs in (lo, hi], staged writes included: the sum of the digest buckets
 * inside the range plus a scan of the two partial buckets at its edges.
 * 0 or -EIO.
 */
int store_digest(store_t *st, ring_id_t lo, ring_id_t hi, uint64_t *count, uint64_t digest[2]);

/* Records stored, and bytes of values, staged writes included. O(1). */
uint64_t store_count(store_t *st);
uint64_t store_bytes(store_t *st);
ring_id_t store_pos(const store_t *st, const uint8_t *key, size_t key_len);

#endif
