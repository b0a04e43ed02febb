/*
 * kv_known.c — the authority's known newest versions (kv_known.h), kept in
 * a kv_cache of keys without values; "absent" is the zero version.
 */
#include "kv_known.h"

#include "kv_cache.h"

#include <stdlib.h>

struct kv_known {
    kv_cache_t *c;
    uint64_t epoch;
    bool has_epoch;
    uint64_t gen; /* bumped by every kv_known_forget that dropped something */
    uint64_t hits, misses;
};

kv_known_t *kv_known_new(size_t max_bytes)
{
    kv_known_t *k = calloc(1, sizeof *k);
    if (!k)
        return NULL;
    k->c = kv_cache_new(max_bytes);
    if (!k->c) {
        free(k);
        return NULL;
    }
    return k;
}

void kv_known_destroy(kv_known_t **k)
{
    if (!k || !*k)
        return;
    kv_cache_destroy(&(*k)->c);
    free(*k);
    *k = NULL;
}

void kv_known_forget(kv_known_t *k)
{
    /* Even an empty table moves on: an op in flight may be about to record. */
    kv_cache_clear(k->c);
    k->gen++;
}

void kv_known_set_epoch(kv_known_t *k, uint64_t epoch)
{
    if (k->has_epoch && k->epoch == epoch)
        return;
    kv_known_forget(k);
    k->epoch = epoch;
    k->has_epoch = true;
}

void kv_known_drop(kv_known_t *k, const void *key, size_t key_len)
{
    kv_cache_remove(k->c, key, key_len);
}

uint64_t kv_known_ticket(const kv_known_t *k)
{
    return k->gen;
}

static bool lookup(kv_known_t *k, const void *key, size_t key_len, kv_version_t *v)
{
    kv_cache_hit_t hit;
    if (kv_cache_get(k->c, key, key_len, &hit) < 0)
        return false;
    *v = hit.version;
    return true;
}

static void record(kv_known_t *k, const void *key, size_t key_len, kv_version_t v)
{
    /* Not cached (too large, no memory) only costs a quorum read later. */
    (void)kv_cache_put(k->c, key, key_len, v, 0, NULL, 0);
}

bool kv_known_check(kv_known_t *k, const void *key, size_t key_len, bool local_found,
                    kv_version_t local_version)
{
    kv_version_t v;
    bool ok = lookup(k, key, key_len, &v) &&
              (kv_version_is_zero(v) ? !local_found
                                     : local_found && kv_version_cmp(v, local_version) == 0);
    if (ok)
        k->hits++;
    else
        k->misses++;
    return ok;
}

void kv_known_written(kv_known_t *k, const void *key, size_t key_len, uint64_t ticket,
                      kv_version_t v)
{
    kv_version_t cur;
    if (ticket != k->gen || !lookup(k, key, key_len, &cur))
        return;
    /* A retry that rewrites an earlier attempt's version does not move it back. */
    if (kv_version_cmp(v, cur) > 0)
        record(k, key, key_len, v);
}

void kv_known_all_took(kv_known_t *k, const void *key, size_t key_len, uint64_t ticket,
                       kv_version_t v)
{
    kv_version_t cur;
    if (ticket != k->gen)
        return;
    /* A later write of ours may have moved the entry on already. */
    if (lookup(k, key, key_len, &cur) && kv_version_cmp(cur, v) >= 0)
        return;
    record(k, key, key_len, v);
}

void kv_known_all_agree(kv_known_t *k, const void *key, size_t key_len, uint64_t ticket, bool found,
                        kv_version_t v, bool local_found, kv_version_t local_version)
{
    kv_version_t cur;
    if (ticket != k->gen || lookup(k, key, key_len, &cur))
        return;
    /*
     * Our copy must still say the same: a write of ours that went to it
     * after the replicas answered is newer than what they agreed on.
     */
    if (found != local_found || (found && kv_version_cmp(v, local_version) != 0))
        return;
    record(k, key, key_len, found ? v : (kv_version_t){0, 0});
}

size_t kv_known_count(const kv_known_t *k)
{
    return kv_cache_count(k->c);
}

uint64_t kv_known_hits(const kv_known_t *k)
{
    return k->hits;
}

uint64_t kv_known_misses(const kv_known_t *k)
{
    return k->misses;
}
