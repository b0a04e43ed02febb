/*
 * test_kv_cache.c — the byte-bounded LRU value cache.
 *
 * The cache counts each entry as key + value + a fixed per-entry overhead
 * (its header). The header size is not part of the contract, so the tests
 * measure it once from an empty cache and then check every bound against
 * the sizes it implies: how many entries fit, which ones go first, and that
 * kv_cache_bytes() never exceeds the bound.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_cache.h"

static kv_version_t ver(uint64_t hlc, uint64_t node)
{
    kv_version_t v = {hlc, node};
    return v;
}

static kv_cache_t *cache_new(size_t max_bytes)
{
    kv_cache_t *c = kv_cache_new(max_bytes);
    assert_non_null(c);
    assert_int_equal(kv_cache_bytes(c), 0);
    assert_int_equal(kv_cache_count(c), 0);
    return c;
}

/* Bytes the cache charges for one entry on top of its key and value. */
static size_t overhead(void)
{
    kv_cache_t *c = cache_new(1 << 20);
    assert_int_equal(kv_cache_put(c, "k", 1, ver(1, 1), 0, "v", 1), 0);
    size_t o = kv_cache_bytes(c) - 2;
    kv_cache_destroy(&c);
    return o;
}

/* Keys "k0000".."k9999...": all the same length, so entries are the same size. */
static size_t key_of(unsigned i, char buf[16])
{
    return (size_t)snprintf(buf, 16, "k%07u", i);
}

static int put_i(kv_cache_t *c, unsigned i, size_t value_len)
{
    char key[16];
    size_t klen = key_of(i, key);
    uint8_t value[256];
    assert_true(value_len <= sizeof value);
    memset(value, (int)(i & 0xff), value_len);
    return kv_cache_put(c, key, klen, ver(i, 7), (uint8_t)(i & 1), value, value_len);
}

static bool has_i(kv_cache_t *c, unsigned i)
{
    char key[16];
    size_t klen = key_of(i, key);
    kv_cache_hit_t hit;
    return kv_cache_get(c, key, klen, &hit) == 0;
}

static void assert_hit(kv_cache_t *c, const void *key, size_t key_len, kv_version_t v,
                       uint8_t flags, const void *value, size_t value_len)
{
    kv_cache_hit_t hit;
    memset(&hit, 0x5a, sizeof hit);
    assert_int_equal(kv_cache_get(c, key, key_len, &hit), 0);
    assert_true(hit.version.hlc == v.hlc && hit.version.node == v.node);
    assert_int_equal(hit.flags, flags);
    assert_int_equal(hit.value_len, value_len);
    if (value_len)
        assert_memory_equal(hit.value, value, value_len);
}

static void assert_miss(kv_cache_t *c, const void *key, size_t key_len)
{
    kv_cache_hit_t hit;
    assert_int_equal(kv_cache_get(c, key, key_len, &hit), -ENOENT);
}

static void test_kv_cache_new_destroy(void **state)
{
    (void)state;
    kv_cache_t *c = cache_new(4096);
    assert_int_equal(kv_cache_hits(c), 0);
    assert_int_equal(kv_cache_misses(c), 0);
    kv_cache_destroy(&c);
    assert_null(c);
    /* Destroying twice, or nothing, is harmless. */
    kv_cache_destroy(&c);
    kv_cache_destroy(NULL);
    /* A cache with entries frees them all (the sanitizer build checks). */
    c = cache_new(1 << 20);
    for (unsigned i = 0; i < 100; i++)
        assert_int_equal(put_i(c, i, 10), 0);
    kv_cache_destroy(&c);
    assert_null(c);
}

static void test_kv_cache_get_empty_misses(void **state)
{
    (void)state;
    kv_cache_t *c = cache_new(4096);
    assert_miss(c, "a", 1);
    assert_miss(c, "", 0);
    assert_int_equal(kv_cache_misses(c), 2);
    assert_int_equal(kv_cache_hits(c), 0);
    kv_cache_destroy(&c);
}

static void test_kv_cache_put_get_copies(void **state)
{
    (void)state;
    kv_cache_t *c = cache_new(1 << 16);
    char key[] = "user/42";
    uint8_t value[] = {0, 1, 2, 0xff, 0, 'x'};
    assert_int_equal(kv_cache_put(c, key, 7, ver(0x1234, 99), 0xa5, value, sizeof value), 0);
    /* The cache owns copies: changing the caller's buffers changes nothing. */
    uint8_t orig[sizeof value];
    memcpy(orig, value, sizeof value);
    memset(value, 0xee, sizeof value);
    memcpy(key, "XXXXXXX", 7);
    assert_miss(c, key, 7);
    assert_hit(c, "user/42", 7, ver(0x1234, 99), 0xa5, orig, sizeof orig);
    assert_int_equal(kv_cache_count(c), 1);
    kv_cache_destroy(&c);
}

static void test_kv_cache_put_empty_value(void **state)
{
    (void)state;
    /* Tombstones travel with an empty value, possibly without a buffer. */
    kv_cache_t *c = cache_new(1 << 16);
    assert_int_equal(kv_cache_put(c, "gone", 4, ver(5, 5), 1, NULL, 0), 0);
    assert_int_equal(kv_cache_put(c, "also", 4, ver(6, 6), 1, "", 0), 0);
    kv_cache_hit_t hit;
    assert_int_equal(kv_cache_get(c, "gone", 4, &hit), 0);
    assert_int_equal(hit.value_len, 0);
    assert_int_equal(hit.flags, 1);
    assert_true(hit.version.hlc == 5);
    assert_hit(c, "also", 4, ver(6, 6), 1, NULL, 0);
    assert_int_equal(kv_cache_bytes(c), 2 * (overhead() + 4));
    kv_cache_destroy(&c);
}

static void test_kv_cache_keys_are_binary(void **state)
{
    (void)state;
    /* Keys that differ only in length or after a NUL are distinct. */
    kv_cache_t *c = cache_new(1 << 16);
    const uint8_t k1[] = {'a', 0, 'b'};
    const uint8_t k2[] = {'a', 0, 'c'};
    assert_int_equal(kv_cache_put(c, k1, 3, ver(1, 0), 0, "one", 3), 0);
    assert_int_equal(kv_cache_put(c, k2, 3, ver(2, 0), 0, "two", 3), 0);
    assert_int_equal(kv_cache_put(c, k1, 2, ver(3, 0), 0, "three", 5), 0);
    assert_int_equal(kv_cache_put(c, k1, 1, ver(4, 0), 0, "four", 4), 0);
    assert_int_equal(kv_cache_count(c), 4);
    assert_hit(c, k1, 3, ver(1, 0), 0, "one", 3);
    assert_hit(c, k2, 3, ver(2, 0), 0, "two", 3);
    assert_hit(c, k1, 2, ver(3, 0), 0, "three", 5);
    assert_hit(c, k1, 1, ver(4, 0), 0, "four", 4);
    assert_miss(c, "ab", 2);
    kv_cache_destroy(&c);
}

static void test_kv_cache_bytes_include_overhead(void **state)
{
    (void)state;
    size_t o = overhead();
    /* Some overhead is charged: the bound covers real memory. */
    assert_true(o > 0);
    kv_cache_t *c = cache_new(1 << 20);
    assert_int_equal(kv_cache_put(c, "key", 3, ver(1, 1), 0, "value", 5), 0);
    assert_int_equal(kv_cache_bytes(c), o + 8);
    assert_int_equal(kv_cache_put(c, "other key", 9, ver(1, 1), 0, NULL, 0), 0);
    assert_int_equal(kv_cache_bytes(c), 2 * o + 8 + 9);
    uint8_t big[1000] = {0};
    assert_int_equal(kv_cache_put(c, "k3", 2, ver(1, 1), 0, big, sizeof big), 0);
    assert_int_equal(kv_cache_bytes(c), 3 * o + 8 + 9 + 1002);
    assert_int_equal(kv_cache_count(c), 3);
    kv_cache_destroy(&c);
}

static void test_kv_cache_put_evicts_lru_order(void **state)
{
    (void)state;
    /* Room for exactly 10 entries of one size. */
    size_t esize = overhead() + 8 + 16;
    size_t bound = 10 * esize;
    kv_cache_t *c = cache_new(bound);
    for (unsigned i = 0; i < 10; i++)
        assert_int_equal(put_i(c, i, 16), 0);
    assert_int_equal(kv_cache_count(c), 10);
    assert_int_equal(kv_cache_bytes(c), bound);
    /* Each new entry pushes out the oldest one, in insertion order. */
    for (unsigned i = 10; i < 30; i++) {
        assert_int_equal(put_i(c, i, 16), 0);
        assert_int_equal(kv_cache_count(c), 10);
        assert_int_equal(kv_cache_bytes(c), bound);
        assert_false(has_i(c, i - 10));
    }
    /* has_i() refreshes what it finds; check the survivors oldest first. */
    for (unsigned i = 20; i < 30; i++)
        assert_true(has_i(c, i));
    kv_cache_destroy(&c);
}

static void test_kv_cache_get_refreshes_recency(void **state)
{
    (void)state;
    /* Room for 8 entries (the fewest that pass the bound / 8 rule). */
    size_t esize = overhead() + 8 + 16;
    kv_cache_t *c = cache_new(8 * esize);
    for (unsigned i = 0; i < 8; i++)
        assert_int_equal(put_i(c, i, 16), 0);
    /* Oldest first: 0 1 2 3 4 5 6 7. Touching 0 and 1 leaves 2 the oldest. */
    assert_true(has_i(c, 0));
    assert_true(has_i(c, 1));
    assert_int_equal(put_i(c, 8, 16), 0);
    /* A miss does not change the order, so probing is safe. */
    assert_false(has_i(c, 2));
    assert_int_equal(put_i(c, 9, 16), 0);
    assert_false(has_i(c, 3));
    /* Now 4 5 6 7 0 1 8 9; touching 4 makes 5 the oldest. */
    assert_true(has_i(c, 4));
    assert_int_equal(put_i(c, 10, 16), 0);
    assert_false(has_i(c, 5));
    assert_int_equal(kv_cache_count(c), 8);
    const unsigned live[] = {6, 7, 0, 1, 8, 9, 4, 10};
    for (size_t k = 0; k < 8; k++)
        assert_true(has_i(c, live[k]));
    kv_cache_destroy(&c);
}

/*
 * A reference LRU over entries of one size, driven by the same random
 * operations as the cache: every get must hit exactly when the model does.
 */
enum { MODEL_CAP = 16, MODEL_KEYS = 40 };

typedef struct {
    unsigned keys[MODEL_CAP]; /* keys[0] is the most recent */
    size_t n;
} lru_model_t;

static int model_find(const lru_model_t *m, unsigned key)
{
    for (size_t k = 0; k < m->n; k++)
        if (m->keys[k] == key)
            return (int)k;
    return -1;
}

static void model_drop(lru_model_t *m, size_t at)
{
    memmove(&m->keys[at], &m->keys[at + 1], (m->n - at - 1) * sizeof m->keys[0]);
    m->n--;
}

static void model_front(lru_model_t *m, unsigned key)
{
    memmove(&m->keys[1], &m->keys[0], m->n * sizeof m->keys[0]);
    m->keys[0] = key;
    m->n++;
}

static void test_kv_cache_matches_lru_model(void **state)
{
    (void)state;
    size_t esize = overhead() + 8 + 16;
    kv_cache_t *c = cache_new(MODEL_CAP * esize);
    lru_model_t m = {{0}, 0};
    uint64_t seed = 7, hits = 0, misses = 0;
    for (unsigned step = 0; step < 50000; step++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        unsigned key = (unsigned)(seed >> 33) % MODEL_KEYS;
        unsigned op = (unsigned)(seed >> 20) % 10;
        int at = model_find(&m, key);
        if (op < 5) {
            /* get */
            bool hit = has_i(c, key);
            if (hit != (at >= 0))
                fail_msg("step %u: get %u %s, model says %s", step, key, hit ? "hit" : "missed",
                         at >= 0 ? "hit" : "miss");
            if (at >= 0) {
                model_drop(&m, (size_t)at);
                model_front(&m, key);
                hits++;
            } else {
                misses++;
            }
        } else if (op < 9) {
            /* put */
            assert_int_equal(put_i(c, key, 16), 0);
            if (at >= 0)
                model_drop(&m, (size_t)at);
            else if (m.n == MODEL_CAP)
                m.n--;
            model_front(&m, key);
        } else {
            char buf[16];
            kv_cache_remove(c, buf, key_of(key, buf));
            if (at >= 0)
                model_drop(&m, (size_t)at);
        }
        assert_int_equal(kv_cache_count(c), m.n);
        assert_int_equal(kv_cache_bytes(c), m.n * esize);
    }
    assert_int_equal(kv_cache_hits(c), hits);
    assert_int_equal(kv_cache_misses(c), misses);
    kv_cache_destroy(&c);
}

static void test_kv_cache_put_evicts_enough_for_larger(void **state)
{
    (void)state;
    /* A larger entry evicts as many old ones as it takes, oldest first. */
    size_t o = overhead();
    size_t small = o + 8 + 10;
    size_t bound = 40 * small;
    kv_cache_t *c = cache_new(bound);
    for (unsigned i = 0; i < 40; i++)
        assert_int_equal(put_i(c, i, 10), 0);
    assert_int_equal(kv_cache_bytes(c), bound);
    /* A value of 3 small entries' worth (still under bound / 8). */
    size_t vlen = 3 * small - o - 3;
    assert_true(o + 3 + vlen <= bound / 8);
    uint8_t *v = calloc(1, vlen);
    assert_non_null(v);
    assert_int_equal(kv_cache_put(c, "big", 3, ver(1, 1), 0, v, vlen), 0);
    free(v);
    assert_int_equal(kv_cache_count(c), 38);
    assert_int_equal(kv_cache_bytes(c), bound);
    for (unsigned i = 0; i < 3; i++)
        assert_false(has_i(c, i));
    for (unsigned i = 3; i < 40; i++)
        assert_true(has_i(c, i));
    kv_cache_destroy(&c);
}

static void test_kv_cache_bytes_never_exceed_bound(void **state)
{
    (void)state;
    /* Entries of varied sizes; the bound is not a multiple of any of them. */
    size_t bound = 20011;
    kv_cache_t *c = cache_new(bound);
    uint64_t seed = 99;
    for (unsigned i = 0; i < 5000; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        size_t vlen = (size_t)(seed >> 33) % 257;
        assert_int_equal(put_i(c, (unsigned)(seed >> 40) % 700, vlen > 256 ? 256 : vlen), 0);
        assert_true(kv_cache_bytes(c) <= bound);
        assert_true(kv_cache_count(c) > 0);
    }
    kv_cache_destroy(&c);
}

static void test_kv_cache_put_oversize_not_cached(void **state)
{
    (void)state;
    size_t o = overhead();
    size_t bound = 8 * (o + 1 + 100);
    kv_cache_t *c = cache_new(bound);
    uint8_t v[128] = {0};
    /* Exactly an eighth of the bound is cached... */
    assert_int_equal(kv_cache_put(c, "a", 1, ver(1, 1), 0, v, 100), 0);
    assert_int_equal(kv_cache_count(c), 1);
    /* ... one byte more is not, and changes nothing. */
    size_t before = kv_cache_bytes(c);
    assert_int_equal(kv_cache_put(c, "b", 1, ver(1, 1), 0, v, 101), 1);
    assert_int_equal(kv_cache_count(c), 1);
    assert_int_equal(kv_cache_bytes(c), before);
    assert_miss(c, "b", 1);
    /* A key too long counts the same as a value too long. */
    assert_int_equal(kv_cache_put(c, "bb", 2, ver(1, 1), 0, v, 100), 1);
    assert_miss(c, "bb", 2);
    assert_hit(c, "a", 1, ver(1, 1), 0, v, 100);
    kv_cache_destroy(&c);
}

static void test_kv_cache_put_oversize_drops_old_entry(void **state)
{
    (void)state;
    /* The new value is not cached, so the old one must not be served. */
    size_t o = overhead();
    kv_cache_t *c = cache_new(8 * (o + 1 + 100));
    uint8_t v[128] = {0};
    assert_int_equal(kv_cache_put(c, "a", 1, ver(1, 1), 0, "old", 3), 0);
    assert_int_equal(kv_cache_put(c, "a", 1, ver(2, 1), 0, v, sizeof v), 1);
    assert_miss(c, "a", 1);
    assert_int_equal(kv_cache_count(c), 0);
    assert_int_equal(kv_cache_bytes(c), 0);
    kv_cache_destroy(&c);
}

static void test_kv_cache_put_zero_bound(void **state)
{
    (void)state;
    kv_cache_t *c = cache_new(0);
    assert_int_equal(kv_cache_put(c, "a", 1, ver(1, 1), 0, NULL, 0), 1);
    assert_int_equal(kv_cache_count(c), 0);
    assert_int_equal(kv_cache_bytes(c), 0);
    assert_miss(c, "a", 1);
    kv_cache_destroy(&c);
}

static void test_kv_cache_put_replace_updates(void **state)
{
    (void)state;
    size_t o = overhead();
    kv_cache_t *c = cache_new(1 << 16);
    assert_int_equal(kv_cache_put(c, "key", 3, ver(1, 1), 0, "short", 5), 0);
    assert_int_equal(kv_cache_put(c, "other", 5, ver(1, 2), 0, "x", 1), 0);
    assert_int_equal(kv_cache_bytes(c), 2 * o + 8 + 6);
    /* Longer value, new version and flags: one entry, bytes follow the value. */
    assert_int_equal(kv_cache_put(c, "key", 3, ver(2, 1), 1, "a longer value", 14), 0);
    assert_int_equal(kv_cache_count(c), 2);
    assert_int_equal(kv_cache_bytes(c), 2 * o + 17 + 6);
    assert_hit(c, "key", 3, ver(2, 1), 1, "a longer value", 14);
    /* Shorter again. */
    assert_int_equal(kv_cache_put(c, "key", 3, ver(3, 1), 0, "s", 1), 0);
    assert_int_equal(kv_cache_count(c), 2);
    assert_int_equal(kv_cache_bytes(c), 2 * o + 4 + 6);
    assert_hit(c, "key", 3, ver(3, 1), 0, "s", 1);
    assert_hit(c, "other", 5, ver(1, 2), 0, "x", 1);
    kv_cache_destroy(&c);
}

static void test_kv_cache_put_replace_refreshes_recency(void **state)
{
    (void)state;
    size_t esize = overhead() + 8 + 16;
    kv_cache_t *c = cache_new(8 * esize);
    for (unsigned i = 0; i < 8; i++)
        assert_int_equal(put_i(c, i, 16), 0);
    /* Rewriting 0 makes it the most recent: 1 goes first. */
    assert_int_equal(put_i(c, 0, 16), 0);
    assert_int_equal(kv_cache_count(c), 8);
    assert_int_equal(put_i(c, 8, 16), 0);
    assert_false(has_i(c, 1));
    for (unsigned i = 0; i <= 8; i++)
        if (i != 1)
            assert_true(has_i(c, i));
    kv_cache_destroy(&c);
}

static void test_kv_cache_put_replace_when_full(void **state)
{
    (void)state;
    /* Growing an entry in a full cache evicts others, never the entry itself. */
    size_t esize = overhead() + 8 + 16;
    kv_cache_t *c = cache_new(16 * esize);
    for (unsigned i = 0; i < 16; i++)
        assert_int_equal(put_i(c, i, 16), 0);
    assert_int_equal(put_i(c, 0, 48), 0);
    assert_true(kv_cache_bytes(c) <= 16 * esize);
    /* 15 old entries and the new one would be 32 bytes too many: 1 goes. */
    assert_int_equal(kv_cache_count(c), 15);
    assert_false(has_i(c, 1));
    for (unsigned i = 2; i < 16; i++)
        assert_true(has_i(c, i));
    uint8_t want[48];
    memset(want, 0, sizeof want);
    assert_hit(c, "k0000000", 8, ver(0, 7), 0, want, sizeof want);
    kv_cache_destroy(&c);
}

static void test_kv_cache_remove_entries(void **state)
{
    (void)state;
    size_t o = overhead();
    kv_cache_t *c = cache_new(1 << 16);
    assert_int_equal(kv_cache_put(c, "a", 1, ver(1, 1), 0, "1", 1), 0);
    assert_int_equal(kv_cache_put(c, "b", 1, ver(1, 1), 0, "22", 2), 0);
    assert_int_equal(kv_cache_put(c, "c", 1, ver(1, 1), 0, "333", 3), 0);
    /* The middle of the LRU list, then its ends. */
    kv_cache_remove(c, "b", 1);
    assert_int_equal(kv_cache_count(c), 2);
    assert_int_equal(kv_cache_bytes(c), 2 * o + 2 + 4);
    assert_miss(c, "b", 1);
    kv_cache_remove(c, "a", 1);
    kv_cache_remove(c, "c", 1);
    assert_int_equal(kv_cache_count(c), 0);
    assert_int_equal(kv_cache_bytes(c), 0);
    /* Removing what is not there is a no-op, and does not count a miss. */
    uint64_t misses = kv_cache_misses(c);
    kv_cache_remove(c, "a", 1);
    kv_cache_remove(c, "zz", 2);
    assert_int_equal(kv_cache_misses(c), misses);
    /* The list is still sound after emptying: reuse it. */
    assert_int_equal(kv_cache_put(c, "b", 1, ver(2, 2), 0, "new", 3), 0);
    assert_hit(c, "b", 1, ver(2, 2), 0, "new", 3);
    assert_int_equal(kv_cache_count(c), 1);
    kv_cache_destroy(&c);
}

static void test_kv_cache_remove_then_evict(void **state)
{
    (void)state;
    /* Removing the oldest and newest must keep eviction order for the rest. */
    size_t esize = overhead() + 8 + 16;
    kv_cache_t *c = cache_new(8 * esize);
    for (unsigned i = 0; i < 8; i++)
        assert_int_equal(put_i(c, i, 16), 0);
    char key[16];
    kv_cache_remove(c, key, key_of(0, key));
    kv_cache_remove(c, key, key_of(7, key));
    assert_int_equal(kv_cache_count(c), 6);
    assert_int_equal(kv_cache_bytes(c), 6 * esize);
    /* Two free slots: no eviction yet. */
    assert_int_equal(put_i(c, 8, 16), 0);
    assert_int_equal(put_i(c, 9, 16), 0);
    assert_int_equal(kv_cache_count(c), 8);
    /* Oldest first: 1 2 3 4 5 6 8 9. */
    assert_int_equal(put_i(c, 10, 16), 0);
    assert_false(has_i(c, 1));
    assert_false(has_i(c, 0));
    assert_false(has_i(c, 7));
    for (unsigned i = 2; i <= 10; i++)
        if (i != 7)
            assert_true(has_i(c, i));
    kv_cache_destroy(&c);
}

static void test_kv_cache_put_many_grows_table(void **state)
{
    (void)state;
    /* Far more entries than the initial table has buckets. */
    enum { N = 20000 };
    kv_cache_t *c = cache_new((size_t)64 << 20);
    for (unsigned i = 0; i < N; i++)
        assert_int_equal(put_i(c, i, 1 + i % 32), 0);
    assert_int_equal(kv_cache_count(c), N);
    for (unsigned i = 0; i < N; i++) {
        char key[16];
        size_t klen = key_of(i, key);
        uint8_t want[32];
        memset(want, (int)(i & 0xff), sizeof want);
        assert_hit(c, key, klen, ver(i, 7), (uint8_t)(i & 1), want, 1 + i % 32);
    }
    assert_int_equal(kv_cache_hits(c), N);
    /* Remove every other one; the rest are still found. */
    for (unsigned i = 0; i < N; i += 2) {
        char key[16];
        kv_cache_remove(c, key, key_of(i, key));
    }
    assert_int_equal(kv_cache_count(c), N / 2);
    for (unsigned i = 0; i < N; i++)
        assert_int_equal(has_i(c, i), i % 2 == 1);
    kv_cache_destroy(&c);
}

static void test_kv_cache_many_with_eviction(void **state)
{
    (void)state;
    /* Long chains under constant eviction: only the most recent survive. */
    size_t esize = overhead() + 8 + 4;
    enum { KEEP = 3000, N = 12000 };
    kv_cache_t *c = cache_new(KEEP * esize);
    for (unsigned i = 0; i < N; i++)
        assert_int_equal(put_i(c, i, 4), 0);
    assert_int_equal(kv_cache_count(c), KEEP);
    assert_int_equal(kv_cache_bytes(c), KEEP * esize);
    for (unsigned i = 0; i < N - KEEP; i++)
        assert_false(has_i(c, i));
    for (unsigned i = N - KEEP; i < N; i++)
        assert_true(has_i(c, i));
    kv_cache_destroy(&c);
}

static void test_kv_cache_hits_misses_counters(void **state)
{
    (void)state;
    kv_cache_t *c = cache_new(1 << 16);
    kv_cache_hit_t hit;
    assert_int_equal(kv_cache_get(c, "a", 1, &hit), -ENOENT);
    assert_int_equal(kv_cache_put(c, "a", 1, ver(1, 1), 0, "x", 1), 0);
    assert_int_equal(kv_cache_get(c, "a", 1, &hit), 0);
    assert_int_equal(kv_cache_get(c, "a", 1, &hit), 0);
    assert_int_equal(kv_cache_get(c, "b", 1, &hit), -ENOENT);
    assert_int_equal(kv_cache_hits(c), 2);
    assert_int_equal(kv_cache_misses(c), 2);
    /* Puts, removes and rejected puts count neither. */
    assert_int_equal(kv_cache_put(c, "b", 1, ver(1, 1), 0, "y", 1), 0);
    kv_cache_remove(c, "a", 1);
    uint8_t big[8192] = {0};
    assert_int_equal(kv_cache_put(c, "c", 1, ver(1, 1), 0, big, sizeof big), 1);
    assert_int_equal(kv_cache_hits(c), 2);
    assert_int_equal(kv_cache_misses(c), 2);
    /* An entry gone by removal is a miss again. */
    assert_int_equal(kv_cache_get(c, "a", 1, &hit), -ENOENT);
    assert_int_equal(kv_cache_misses(c), 3);
    kv_cache_destroy(&c);
}

static int offer_i(kv_cache_t *c, unsigned i, size_t value_len)
{
    char key[16];
    size_t klen = key_of(i, key);
    uint8_t value[256];
    memset(value, (int)(i & 0xff), value_len);
    return kv_cache_offer(c, key, klen, ver(i, 7), 0, value, value_len);
}

/* A key is cached the second time it is offered, not the first. */
static void test_kv_cache_offer_admits_second_time(void **state)
{
    (void)state;
    kv_cache_t *c = cache_new(1 << 20);
    assert_int_equal(offer_i(c, 1, 10), 1);
    assert_false(has_i(c, 1));
    assert_int_equal(kv_cache_count(c), 0);
    assert_int_equal(offer_i(c, 1, 10), 0);
    assert_true(has_i(c, 1));
    char key[16];
    size_t klen = key_of(1, key);
    uint8_t v[10];
    memset(v, 1, sizeof v);
    assert_hit(c, key, klen, ver(1, 7), 0, v, sizeof v);
    kv_cache_destroy(&c);
}

/* A cached key is updated by an offer at once; a removed one is readmitted at once. */
static void test_kv_cache_offer_cached_key_updates(void **state)
{
    (void)state;
    kv_cache_t *c = cache_new(1 << 20);
    assert_int_equal(kv_cache_put(c, "a", 1, ver(1, 1), 0, "x", 1), 0);
    assert_int_equal(kv_cache_offer(c, "a", 1, ver(2, 1), 3, "yz", 2), 0);
    assert_hit(c, "a", 1, ver(2, 1), 3, "yz", 2);
    /* Offered before (remembered by the doorkeeper), then removed (a write). */
    assert_int_equal(kv_cache_offer(c, "b", 1, ver(1, 1), 0, "p", 1), 1);
    assert_int_equal(kv_cache_offer(c, "b", 1, ver(1, 1), 0, "p", 1), 0);
    kv_cache_remove(c, "b", 1);
    assert_miss(c, "b", 1);
    assert_int_equal(kv_cache_offer(c, "b", 1, ver(2, 1), 0, "q", 1), 0);
    assert_hit(c, "b", 1, ver(2, 1), 0, "q", 1);
    kv_cache_destroy(&c);
}

/*
 * A stream of keys offered once each (a file read end to end) leaves the
 * hot entries alone, however long it is.
 */
static void test_kv_cache_offer_stream_keeps_hot(void **state)
{
    (void)state;
    kv_cache_t *c = cache_new(1 << 16);
    for (unsigned i = 0; i < 8; i++) {
        offer_i(c, i, 100);
        assert_int_equal(offer_i(c, i, 100), 0);
    }
    for (unsigned i = 1000; i < 101000; i++)
        offer_i(c, i, 200);
    for (unsigned i = 0; i < 8; i++)
        assert_true(has_i(c, i));
    /* A few stream keys may share a doorkeeper slot's fingerprint by chance; not more. */
    assert_true(kv_cache_count(c) < 8 + 16);
    kv_cache_destroy(&c);
}

/* Clearing forgets what the doorkeeper saw too. */
static void test_kv_cache_offer_after_clear(void **state)
{
    (void)state;
    kv_cache_t *c = cache_new(1 << 20);
    assert_int_equal(offer_i(c, 5, 10), 1);
    kv_cache_clear(c);
    assert_int_equal(offer_i(c, 5, 10), 1);
    assert_int_equal(offer_i(c, 5, 10), 0);
    kv_cache_destroy(&c);
}

static uint8_t *owned_buf(size_t len, uint8_t fill)
{
    uint8_t *b = malloc(len ? len : 1);
    assert_non_null(b);
    memset(b, fill, len);
    return b;
}

/*
 * A value handed over is kept as it is (the hit lends that very buffer),
 * counted like a copy, and freed with its entry however the entry goes
 * (replaced, evicted, removed, cleared, destroyed: ASan checks the frees);
 * one too large to cache stays the caller's.
 */
static void test_kv_cache_put_owned(void **state)
{
    (void)state;
    size_t o = overhead();
    kv_cache_t *c = cache_new(8 * (o + 2 + 1000));
    uint8_t *b = owned_buf(1000, 7);
    assert_int_equal(kv_cache_put_owned(c, "k1", 2, ver(5, 1), 3, b, 1000), 0);
    kv_cache_hit_t hit;
    assert_int_equal(kv_cache_get(c, "k1", 2, &hit), 0);
    assert_ptr_equal(hit.value, b);
    assert_int_equal(hit.value_len, 1000);
    assert_int_equal(hit.flags, 3);
    assert_int_equal(kv_cache_bytes(c), o + 2 + 1000);
    /* Replaced by a copy, then by another buffer; removed. */
    assert_int_equal(kv_cache_put(c, "k1", 2, ver(6, 1), 0, "v", 1), 0);
    assert_hit(c, "k1", 2, ver(6, 1), 0, "v", 1);
    assert_int_equal(kv_cache_put_owned(c, "k1", 2, ver(7, 1), 0, owned_buf(10, 1), 10), 0);
    assert_int_equal(kv_cache_put_owned(c, "k1", 2, ver(8, 1), 0, owned_buf(10, 2), 10), 0);
    uint8_t twos[10];
    memset(twos, 2, sizeof twos);
    assert_hit(c, "k1", 2, ver(8, 1), 0, twos, sizeof twos);
    kv_cache_remove(c, "k1", 2);
    assert_miss(c, "k1", 2);
    assert_int_equal(kv_cache_bytes(c), 0);
    kv_cache_destroy(&c);
    /* Evicted in LRU order among copies. */
    c = cache_new(8 * (o + 8 + 200));
    char key[16];
    for (unsigned i = 0; i < 12; i++) {
        size_t kl = key_of(i, key);
        if (i % 2)
            assert_int_equal(kv_cache_put_owned(c, key, kl, ver(i, 1), 0, owned_buf(200, 9), 200),
                             0);
        else
            assert_int_equal(put_i(c, i, 200), 0);
    }
    assert_int_equal(kv_cache_count(c), 8);
    assert_false(has_i(c, 0));
    assert_false(has_i(c, 3));
    assert_true(has_i(c, 4));
    assert_true(has_i(c, 11));
    /* Too large: not taken. */
    uint8_t *big = owned_buf(300, 0);
    assert_int_equal(kv_cache_put_owned(c, "big", 3, ver(1, 1), 0, big, 300), 1);
    free(big);
    kv_cache_clear(c);
    assert_int_equal(kv_cache_count(c), 0);
    assert_int_equal(kv_cache_put_owned(c, "k2", 2, ver(1, 1), 0, owned_buf(100, 4), 100), 0);
    kv_cache_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kv_cache_new_destroy),
        cmocka_unit_test(test_kv_cache_get_empty_misses),
        cmocka_unit_test(test_kv_cache_put_get_copies),
        cmocka_unit_test(test_kv_cache_put_owned),
        cmocka_unit_test(test_kv_cache_put_empty_value),
        cmocka_unit_test(test_kv_cache_keys_are_binary),
        cmocka_unit_test(test_kv_cache_bytes_include_overhead),
        cmocka_unit_test(test_kv_cache_put_evicts_lru_order),
        cmocka_unit_test(test_kv_cache_get_refreshes_recency),
        cmocka_unit_test(test_kv_cache_matches_lru_model),
        cmocka_unit_test(test_kv_cache_put_evicts_enough_for_larger),
        cmocka_unit_test(test_kv_cache_bytes_never_exceed_bound),
        cmocka_unit_test(test_kv_cache_put_oversize_not_cached),
        cmocka_unit_test(test_kv_cache_put_oversize_drops_old_entry),
        cmocka_unit_test(test_kv_cache_put_zero_bound),
        cmocka_unit_test(test_kv_cache_put_replace_updates),
        cmocka_unit_test(test_kv_cache_put_replace_refreshes_recency),
        cmocka_unit_test(test_kv_cache_put_replace_when_full),
        cmocka_unit_test(test_kv_cache_remove_entries),
        cmocka_unit_test(test_kv_cache_remove_then_evict),
        cmocka_unit_test(test_kv_cache_put_many_grows_table),
        cmocka_unit_test(test_kv_cache_many_with_eviction),
        cmocka_unit_test(test_kv_cache_hits_misses_counters),
        cmocka_unit_test(test_kv_cache_offer_admits_second_time),
        cmocka_unit_test(test_kv_cache_offer_cached_key_updates),
        cmocka_unit_test(test_kv_cache_offer_stream_keeps_hot),
        cmocka_unit_test(test_kv_cache_offer_after_clear),
    };
    return cmocka_run_group_tests_name("kv_cache", tests, NULL, NULL);
}
