/*
 * kv_cache.h — a memcached-style LRU cache of values, bounded in bytes.
 *
 * Keys and values are copied in (or a value buffer handed over); lookups lend pointers into the
 * cache that stay valid until the next call that modifies it. Pure memory structure: no locking
 * (one event loop per process), no I/O.
 */
#ifndef KV_CACHE_H
#define KV_CACHE_H

#include "kv_version.h"

#include <stddef.h>
#include <stdint.h>

typedef struct kv_cache kv_cache_t;

typedef struct {
    kv_version_t version;
    uint8_t flags;
    const uint8_t *value; /* borrowed, see above */
    size_t value_len;
} kv_cache_hit_t;

/* Cache holding at most max_bytes of keys, values and per-entry overhead. */
kv_cache_t *kv_cache_new(size_t max_bytes);
void kv_cache_destroy(kv_cache_t **c);

/* 0 and *hit filled on a hit (entry becomes most recent), -ENOENT on a miss. */
int kv_cache_get(kv_cache_t *c, const void *key, size_t key_len, kv_cache_hit_t *hit);

/*
 * Insert or replace, evicting least recently used entries to stay within
 * the bound. Entries larger than an eighth of the bound are not cached
 * (they would flush everything else); any old entry for the key is dropped.
 * Returns 0 (cached), 1 (too large, not cached) or -ENOMEM.
 */
int kv_cache_put(kv_cache_t *c, const void *key, size_t key_len, kv_version_t version,
                 uint8_t flags, const void *value, size_t value_len);

/*
 * kv_cache_put of a value the caller allocated (malloc) and no longer
 * needs: on 0 the cache keeps the buffer itself, no copy, and frees it
 * with the entry; on 1 or -ENOMEM the buffer stays the caller's. value_len
 * must be the buffer's size, which the bound counts.
 */
int kv_cache_put_owned(kv_cache_t *c, const void *key, size_t key_len, kv_version_t version,
                       uint8_t flags, uint8_t *value, size_t value_len);

void kv_cache_remove(kv_cache_t *c, const void *key, size_t key_len);

/*
 * Offer a value just read from below the cache: it is cached (as by
 * kv_cache_put) only if the key is cached already or was offered once
 * before and is still remembered (a doorkeeper, as in TinyLFU), so a key
 * read once, such as every chunk of a file read end to end, costs no copy
 * and evicts nothing hot. The doorkeeper remembers one fingerprint per
 * 4 KiB of the byte bound, direct-mapped. Returns 0 (cached), 1 (not
 * cached) or -ENOMEM.
 */
int kv_cache_offer(kv_cache_t *c, const void *key, size_t key_len, kv_version_t version,
                   uint8_t flags, const void *value, size_t value_len);

/* Drop every entry (counters are kept). */
void kv_cache_clear(kv_cache_t *c);

size_t kv_cache_bytes(const kv_cache_t *c);
size_t kv_cache_count(const kv_cache_t *c);
uint64_t kv_cache_hits(const kv_cache_t *c);
uint64_t kv_cache_misses(const kv_cache_t *c);

#endif
