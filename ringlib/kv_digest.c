/*
 * kv_digest.c — bucketed range digests (see kv_digest.h).
 *
 * Summing the whole buckets of a range walks the bucket array; with the
 * default 2^14 buckets that is a few tens of microseconds, independent of
 * how many records are stored. A prefix structure (Fenwick tree) would make
 * it O(b), but the array keeps updates trivially O(1) and is fast enough.
 */
#include "kv_digest.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

struct kv_digest_table {
    unsigned id_bits;
    unsigned shift; /* m - b: positions per bucket = 2^shift */
    size_t nbuckets;
    kv_digest_t b[];
};

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

void kv_digest_record(const uint8_t *key, size_t key_len, kv_version_t version, uint64_t h[2])
{
    crypto_generichash_state st;
    uint8_t ver[16], out[16];
    put_be64(ver, version.hlc);
    put_be64(ver + 8, version.node);
    crypto_generichash_init(&st, NULL, 0, sizeof out);
    crypto_generichash_update(&st, key, key_len);
    crypto_generichash_update(&st, ver, sizeof ver);
    crypto_generichash_final(&st, out, sizeof out);
    h[0] = get_be64(out);
    h[1] = get_be64(out + 8);
}

void kv_digest_add(kv_digest_t *d, const uint64_t h[2])
{
    d->count++;
    d->x[0] ^= h[0];
    d->x[1] ^= h[1];
}

void kv_digest_sub(kv_digest_t *d, const uint64_t h[2])
{
    d->count--;
    d->x[0] ^= h[0];
    d->x[1] ^= h[1];
}

void kv_digest_merge(kv_digest_t *d, const kv_digest_t *o)
{
    d->count += o->count;
    d->x[0] ^= o->x[0];
    d->x[1] ^= o->x[1];
}

bool kv_digest_equal(const kv_digest_t *a, const kv_digest_t *b)
{
    return a->count == b->count && a->x[0] == b->x[0] && a->x[1] == b->x[1];
}

bool kv_digest_in_range(ring_id_t pos, ring_id_t lo, ring_id_t hi)
{
    if (lo == hi)
        return true;
    if (lo < hi)
        return pos > lo && pos <= hi;
    return pos > lo || pos <= hi;
}

kv_digest_table_t *kv_digest_table_new(unsigned id_bits, unsigned bucket_bits)
{
    if (!ring_bits_valid(id_bits) || bucket_bits > 24)
        return NULL;
    unsigned b = bucket_bits < id_bits ? bucket_bits : id_bits;
    size_t n = (size_t)1 << b;
    kv_digest_table_t *t = calloc(1, sizeof *t + n * sizeof t->b[0]);
    if (!t)
        return NULL;
    t->id_bits = id_bits;
    t->shift = id_bits - b;
    t->nbuckets = n;
    return t;
}

void kv_digest_table_destroy(kv_digest_table_t **t)
{
    if (t && *t) {
        free(*t);
        *t = NULL;
    }
}

void kv_digest_table_clear(kv_digest_table_t *t)
{
    memset(t->b, 0, t->nbuckets * sizeof t->b[0]);
}

size_t kv_digest_table_buckets(const kv_digest_table_t *t)
{
    return t->nbuckets;
}

size_t kv_digest_table_bucket_of(const kv_digest_table_t *t, ring_id_t pos)
{
    /* shift may be 64 - 0 only when b == 0, which bucket_bits >= 0 allows. */
    return t->shift >= 64 ? 0 : (size_t)((pos & ring_mask(t->id_bits)) >> t->shift);
}

const kv_digest_t *kv_digest_table_bucket(const kv_digest_table_t *t, size_t i)
{
    return &t->b[i];
}

void kv_digest_table_add(kv_digest_table_t *t, ring_id_t pos, const uint64_t h[2])
{
    kv_digest_add(&t->b[kv_digest_table_bucket_of(t, pos)], h);
}

void kv_digest_table_sub(kv_digest_table_t *t, ring_id_t pos, const uint64_t h[2])
{
    kv_digest_sub(&t->b[kv_digest_table_bucket_of(t, pos)], h);
}

static ring_id_t bucket_first(const kv_digest_table_t *t, size_t i)
{
    return t->shift >= 64 ? 0 : (ring_id_t)i << t->shift;
}

static ring_id_t bucket_last(const kv_digest_table_t *t, size_t i)
{
    if (t->shift >= 64)
        return ring_mask(t->id_bits);
    return bucket_first(t, i) + (((ring_id_t)1 << t->shift) - 1);
}

/* One inclusive, non-wrapping span [a, b]: whole buckets into full, edges out. */
static size_t span(const kv_digest_table_t *t, ring_id_t a, ring_id_t b, kv_digest_t *full,
                   kv_digest_span_t *edges)
{
    size_t ba = kv_digest_table_bucket_of(t, a), bb = kv_digest_table_bucket_of(t, b);
    bool a_whole = a == bucket_first(t, ba), b_whole = b == bucket_last(t, bb);
    if (ba == bb) {
        if (a_whole && b_whole) {
            kv_digest_merge(full, &t->b[ba]);
            return 0;
        }
        edges[0] = (kv_digest_span_t){a, b};
        return 1;
    }
    size_t n = 0;
    if (a_whole)
        kv_digest_merge(full, &t->b[ba]);
    else
        edges[n++] = (kv_digest_span_t){a, bucket_last(t, ba)};
    for (size_t i = ba + 1; i < bb; i++)
        kv_digest_merge(full, &t->b[i]);
    if (b_whole)
        kv_digest_merge(full, &t->b[bb]);
    else
        edges[n++] = (kv_digest_span_t){bucket_first(t, bb), b};
    return n;
}

size_t kv_digest_table_range(const kv_digest_table_t *t, ring_id_t lo, ring_id_t hi,
                             kv_digest_t *full, kv_digest_span_t edges[KV_DIGEST_SPANS_MAX])
{
    ring_id_t top = ring_mask(t->id_bits);
    lo &= top;
    hi &= top;
    *full = (kv_digest_t){0, {0, 0}};
    if (lo == hi)
        return span(t, 0, top, full, edges);
    if (lo < hi)
        return span(t, lo + 1, hi, full, edges);
    /* Wraps past zero: (lo, top] then [0, hi]. */
    size_t n = 0;
    if (lo < top)
        n = span(t, lo + 1, top, full, edges);
    return n + span(t, 0, hi, full, edges + n);
}
