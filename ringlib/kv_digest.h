/*
 * kv_digest.h — order-independent digests of sets of records, kept per
 * bucket of ring positions so that a range's digest costs O(buckets), not
 * O(records).
 *
 * A record's hash is BLAKE2b-128(key ‖ hlc ‖ node) split into two u64
 * (docs/PROTOCOL.md, SYNC_DIGEST). A digest is (count, XOR of the hashes):
 * XOR makes it independent of order and lets a record be taken out again
 * by XOR-ing its hash a second time, so the table is updated in O(1) on
 * every put and remove, and undone the same way.
 *
 * The table splits the 2^m positions into 2^b equal buckets (b =
 * min(bucket_bits, m)), bucket i holding positions [i << (m - b),
 * ((i + 1) << (m - b)) - 1]. kv_digest_table_range() sums the buckets that
 * lie wholly inside a range and returns the (at most four) partial edge
 * spans the caller must scan record by record; each holds at most one
 * bucket's share of the records.
 *
 * Pure: no I/O, no allocation after kv_digest_table_new().
 */
#ifndef KV_DIGEST_H
#define KV_DIGEST_H

#include "kv_version.h"
#include "ring_id.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t count;
    uint64_t x[2];
} kv_digest_t;

/* An inclusive span [from, to] of positions (from <= to, no wrap). */
typedef struct {
    ring_id_t from, to;
} kv_digest_span_t;

enum {
    KV_DIGEST_SPANS_MAX = 4,
};

/* The hash of one record: BLAKE2b-128 of key ‖ be64(hlc) ‖ be64(node). */
void kv_digest_record(const uint8_t *key, size_t key_len, kv_version_t version, uint64_t h[2]);

/* Put a record's hash into d / take it out again. */
void kv_digest_add(kv_digest_t *d, const uint64_t h[2]);
void kv_digest_sub(kv_digest_t *d, const uint64_t h[2]);
/* d += o (counts add, hashes XOR). */
void kv_digest_merge(kv_digest_t *d, const kv_digest_t *o);
bool kv_digest_equal(const kv_digest_t *a, const kv_digest_t *b);

/* True when pos lies in (lo, hi] (lo == hi: the whole ring). */
bool kv_digest_in_range(ring_id_t pos, ring_id_t lo, ring_id_t hi);

typedef struct kv_digest_table kv_digest_table_t;

/* A table of 2^min(bucket_bits, id_bits) empty buckets; NULL when out of memory. */
kv_digest_table_t *kv_digest_table_new(unsigned id_bits, unsigned bucket_bits);
void kv_digest_table_destroy(kv_digest_table_t **t);
/* Empty every bucket. */
void kv_digest_table_clear(kv_digest_table_t *t);

size_t kv_digest_table_buckets(const kv_digest_table_t *t);
size_t kv_digest_table_bucket_of(const kv_digest_table_t *t, ring_id_t pos);
/* Bucket i's digest; borrowed while the table lives. */
const kv_digest_t *kv_digest_table_bucket(const kv_digest_table_t *t, size_t i);

/* A record with hash h at position pos came / went. */
void kv_digest_table_add(kv_digest_table_t *t, ring_id_t pos, const uint64_t h[2]);
void kv_digest_table_sub(kv_digest_table_t *t, ring_id_t pos, const uint64_t h[2]);

/*
 * The range (lo, hi] (lo == hi: the whole ring): *full gets the sum of the
 * buckets wholly inside it; edges[] gets the partial spans whose records
 * the caller must add itself. Returns the number of spans (0..4).
 */
size_t kv_digest_table_range(const kv_digest_table_t *t, ring_id_t lo, ring_id_t hi,
                             kv_digest_t *full, kv_digest_span_t edges[KV_DIGEST_SPANS_MAX]);

#endif
