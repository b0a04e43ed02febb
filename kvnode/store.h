/*
 * store.h — a node's durable key-value store: LMDB on disk, an LRU cache
 * in front, and group commit.
 *
 * Records are ordered by ring position (BLAKE2b of the key, m bits) and then
 * by key, so every range of the ring is one cursor scan: that is what join
 * hand-over, anti-entropy digests and leave use. Each record holds the
 * value's version, flags (tombstone) and bytes.
 *
 * Writes are staged in one write transaction per event-loop iteration and
 * made durable together by store_commit() (one fsync for the batch);
 * whoever must not acknowledge before durability registers with
 * store_after_commit().
 */
#ifndef STORE_H
#define STORE_H

#include "kv_version.h"
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
 * Open (creating) the store in dir for an id_bits ring with a cache of
 * cache_mb MiB. Returns NULL with a message in err on failure.
 */
store_t *store_open(const char *dir, unsigned id_bits, size_t cache_mb, char *err, size_t errcap);
/* Commits staged writes (best effort) and closes. */
void store_close(store_t **st);

/* 0 and *rec filled, -ENOENT, or -EIO. Sees staged (uncommitted) writes. */
int store_get(store_t *st, const uint8_t *key, size_t key_len, store_rec_t *rec);

/*
 * Stage a write if version is newer than what the store holds for key.
 * Returns 1 staged, 0 not newer (nothing done; *current, if non-NULL, gets
 * the stored version), -ENOSPC, -EIO.
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

/* Stage the physical removal of key (garbage collection, not a delete). */
int store_remove(store_t *st, const uint8_t *key, size_t key_len);

typedef void (*store_commit_fn)(int rc, void *arg);
/*
 * Run fn(rc, arg) after the staged writes are committed: rc is 0 when they
 * are durable, or -ENOSPC / -EIO when the commit failed (all staged writes
 * are then lost). With nothing staged, fn runs at the next commit as well.
 */
int store_after_commit(store_t *st, store_commit_fn fn, void *arg);
/* Commit staged writes and run the after-commit callbacks. */
int store_commit(store_t *st);
bool store_dirty(const store_t *st);

/*
 * Visit records with ring position in (lo, hi] (the whole ring when
 * lo == hi), in position order, starting strictly after (after_pos,
 * after_key) when after_key is non-NULL. Stops after max records or when fn
 * returns non-zero. Returns the number visited, or -EIO. fn's pointers are
 * valid during the call only.
 */
typedef int (*store_scan_fn)(const uint8_t *key, size_t key_len, ring_id_t pos,
                             const store_rec_t *rec, void *arg);
int store_scan(store_t *st, ring_id_t lo, ring_id_t hi, ring_id_t after_pos,
               const uint8_t *after_key, size_t after_len, size_t max, store_scan_fn fn, void *arg);

/* Count and order-independent digest of the (key, version) pairs in (lo, hi]. */
int store_digest(store_t *st, ring_id_t lo, ring_id_t hi, uint64_t *count, uint64_t digest[2]);

/* Records stored, and bytes of values. */
uint64_t store_count(store_t *st);
uint64_t store_bytes(store_t *st);
ring_id_t store_pos(const store_t *st, const uint8_t *key, size_t key_len);

#endif
