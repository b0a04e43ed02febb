/*
 * kv_cache.c — chained hash table plus a doubly linked LRU list.
 *
 * Each entry is one allocation holding the key and value after its header
 * (or the key, with a value buffer the cache was given: kv_cache_put_owned),
 * and its size (header included) is what the byte bound counts, so the
 * bound covers the real memory in use, not just payload bytes.
 */
#include "kv_cache.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    struct entry *hnext;
    struct entry *prev, *next; /* LRU: head = most recent */
    uint64_t hash;
    kv_version_t version;
    uint8_t flags;
    bool owned; /* value is a buffer of its own (kv_cache_put_owned) */
    size_t key_len, value_len;
    uint8_t *value; /* after the key in data, or that buffer */
    uint8_t data[]; /* key, then value */
} entry_t;

struct kv_cache {
    size_t max_bytes, bytes, count;
    entry_t **buckets;
    size_t nbuckets;
    entry_t *head, *tail;
    uint64_t hits, misses;
    uint32_t *door; /* doorkeeper fingerprints (0: empty), ndoor a power of two */
    size_t ndoor;
};

static uint64_t hash_bytes(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* One doorkeeper slot per this many bytes of the bound. */
enum { DOOR_BYTES = 4096 };

static size_t entry_size(size_t key_len, size_t value_len)
{
    return sizeof(entry_t) + key_len + value_len;
}

static void entry_free(entry_t *e)
{
    if (e->owned)
        free(e->value);
    free(e);
}

kv_cache_t *kv_cache_new(size_t max_bytes)
{
    kv_cache_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->max_bytes = max_bytes;
    c->nbuckets = 1024;
    c->buckets = calloc(c->nbuckets, sizeof *c->buckets);
    for (c->ndoor = 64; c->ndoor < max_bytes / DOOR_BYTES; c->ndoor *= 2)
        ;
    c->door = calloc(c->ndoor, sizeof *c->door);
    if (!c->buckets || !c->door) {
        free(c->buckets);
        free(c->door);
        free(c);
        return NULL;
    }
    return c;
}

void kv_cache_destroy(kv_cache_t **pc)
{
    if (!pc || !*pc)
        return;
    kv_cache_t *c = *pc;
    entry_t *e = c->head;
    while (e) {
        entry_t *next = e->next;
        entry_free(e);
        e = next;
    }
    free(c->buckets);
    free(c->door);
    free(c);
    *pc = NULL;
}

static void lru_unlink(kv_cache_t *c, entry_t *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_front(kv_cache_t *c, entry_t *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head)
        c->head->prev = e;
    c->head = e;
    if (!c->tail)
        c->tail = e;
}

static entry_t **find_slot(kv_cache_t *c, const void *key, size_t key_len, uint64_t h)
{
    entry_t **pp = &c->buckets[h & (c->nbuckets - 1)];
    for (; *pp; pp = &(*pp)->hnext) {
        entry_t *e = *pp;
        if (e->hash == h && e->key_len == key_len && memcmp(e->data, key, key_len) == 0)
            return pp;
    }
    return pp;
}

static void drop(kv_cache_t *c, entry_t **slot)
{
    entry_t *e = *slot;
    *slot = e->hnext;
    lru_unlink(c, e);
    c->bytes -= entry_size(e->key_len, e->value_len);
    c->count--;
    entry_free(e);
}

static void grow_table(kv_cache_t *c)
{
    size_t n = c->nbuckets * 2;
    entry_t **b = calloc(n, sizeof *b);
    if (!b)
        return; /* stay at the current size: slower chains, still correct */
    for (size_t i = 0; i < c->nbuckets; i++) {
        entry_t *e = c->buckets[i];
        while (e) {
            entry_t *next = e->hnext;
            e->hnext = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(c->buckets);
    c->buckets = b;
    c->nbuckets = n;
}

int kv_cache_get(kv_cache_t *c, const void *key, size_t key_len, kv_cache_hit_t *hit)
{
    uint64_t h = hash_bytes(key, key_len);
    entry_t *e = *find_slot(c, key, key_len, h);
    if (!e) {
        c->misses++;
        return -ENOENT;
    }
    c->hits++;
    lru_unlink(c, e);
    lru_push_front(c, e);
    hit->version = e->version;
    hit->flags = e->flags;
    hit->value = e->value;
    hit->value_len = e->value_len;
    return 0;
}

void kv_cache_remove(kv_cache_t *c, const void *key, size_t key_len)
{
    uint64_t h = hash_bytes(key, key_len);
    entry_t **slot = find_slot(c, key, key_len, h);
    if (*slot)
        drop(c, slot);
}

/*
 * Insert key's entry (value not yet set), evicting to make room: the entry,
 * NULL when out of memory or too large (*rc 1 or -ENOMEM). inline_value:
 * the value goes after the key.
 */
static entry_t *insert(kv_cache_t *c, const void *key, size_t key_len, kv_version_t version,
                       uint8_t flags, size_t value_len, bool inline_value, int *rc)
{
    kv_cache_remove(c, key, key_len);
    size_t size = entry_size(key_len, value_len);
    *rc = 1;
    if (size > c->max_bytes / 8)
        return NULL;
    *rc = -ENOMEM;
    entry_t *e = malloc(inline_value ? size : entry_size(key_len, 0));
    if (!e)
        return NULL;
    *rc = 0;
    while (c->bytes + size > c->max_bytes && c->tail) {
        entry_t *victim = c->tail;
        drop(c, find_slot(c, victim->data, victim->key_len, victim->hash));
    }
    e->hash = hash_bytes(key, key_len);
    e->version = version;
    e->flags = flags;
    e->key_len = key_len;
    e->value_len = value_len;
    e->owned = false;
    e->value = e->data + key_len;
    memcpy(e->data, key, key_len);
    if (c->count + 1 > c->nbuckets)
        grow_table(c);
    entry_t **slot = &c->buckets[e->hash & (c->nbuckets - 1)];
    e->hnext = *slot;
    *slot = e;
    e->prev = e->next = NULL;
    lru_push_front(c, e);
    c->bytes += size;
    c->count++;
    return e;
}

int kv_cache_put(kv_cache_t *c, const void *key, size_t key_len, kv_version_t version,
                 uint8_t flags, const void *value, size_t value_len)
{
    int rc;
    entry_t *e = insert(c, key, key_len, version, flags, value_len, true, &rc);
    if (e && value_len)
        memcpy(e->value, value, value_len);
    return rc;
}

int kv_cache_put_owned(kv_cache_t *c, const void *key, size_t key_len, kv_version_t version,
                       uint8_t flags, uint8_t *value, size_t value_len)
{
    int rc;
    entry_t *e = insert(c, key, key_len, version, flags, value_len, false, &rc);
    if (e) {
        e->owned = true;
        e->value = value;
    }
    return rc;
}

int kv_cache_offer(kv_cache_t *c, const void *key, size_t key_len, kv_version_t version,
                   uint8_t flags, const void *value, size_t value_len)
{
    uint64_t h = hash_bytes(key, key_len);
    if (!*find_slot(c, key, key_len, h)) {
        /* The slot from the low bits, the fingerprint from the high ones. */
        uint32_t *slot = &c->door[h & (c->ndoor - 1)];
        uint32_t fp = (uint32_t)(h >> 32) | 1;
        if (*slot != fp) {
            *slot = fp;
            return 1;
        }
    }
    return kv_cache_put(c, key, key_len, version, flags, value, value_len);
}

void kv_cache_clear(kv_cache_t *c)
{
    entry_t *e = c->head;
    while (e) {
        entry_t *next = e->next;
        entry_free(e);
        e = next;
    }
    memset(c->buckets, 0, c->nbuckets * sizeof *c->buckets);
    memset(c->door, 0, c->ndoor * sizeof *c->door);
    c->head = c->tail = NULL;
    c->bytes = 0;
    c->count = 0;
}

size_t kv_cache_bytes(const kv_cache_t *c)
{
    return c->bytes;
}

size_t kv_cache_count(const kv_cache_t *c)
{
    return c->count;
}

uint64_t kv_cache_hits(const kv_cache_t *c)
{
    return c->hits;
}

uint64_t kv_cache_misses(const kv_cache_t *c)
{
    return c->misses;
}
