/*
 * Bucketed range digests (kv_digest) against a brute-force digest of the
 * same records: every range, wrapping or not, whole ring, small and full
 * identifier spaces, after adds and removes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "kv_digest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { NREC = 600 };

typedef struct {
    ring_id_t pos;
    uint64_t h[2];
    bool present;
} rec_t;

static uint64_t rng_state = 12345;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* The table's answer for (lo, hi], with the edge spans filled in from recs. */
static kv_digest_t table_range(const kv_digest_table_t *t, const rec_t *recs, size_t n,
                               ring_id_t lo, ring_id_t hi)
{
    kv_digest_t d;
    kv_digest_span_t edges[KV_DIGEST_SPANS_MAX];
    size_t ne = kv_digest_table_range(t, lo, hi, &d, edges);
    assert_true(ne <= KV_DIGEST_SPANS_MAX);
    for (size_t e = 0; e < ne; e++) {
        assert_true(edges[e].from <= edges[e].to);
        /* An edge never spans more than one bucket. */
        assert_int_equal(kv_digest_table_bucket_of(t, edges[e].from),
                         kv_digest_table_bucket_of(t, edges[e].to));
        for (size_t i = 0; i < n; i++)
            if (recs[i].present && recs[i].pos >= edges[e].from && recs[i].pos <= edges[e].to)
                kv_digest_add(&d, recs[i].h);
    }
    return d;
}

static kv_digest_t brute_range(const rec_t *recs, size_t n, ring_id_t lo, ring_id_t hi)
{
    kv_digest_t d = {0, {0, 0}};
    for (size_t i = 0; i < n; i++)
        if (recs[i].present && kv_digest_in_range(recs[i].pos, lo, hi))
            kv_digest_add(&d, recs[i].h);
    return d;
}

static void check_space(unsigned m, unsigned bucket_bits)
{
    kv_digest_table_t *t = kv_digest_table_new(m, bucket_bits);
    assert_non_null(t);
    rec_t *recs = calloc(NREC, sizeof *recs);
    assert_non_null(recs);
    ring_id_t mask = ring_mask(m);
    for (size_t i = 0; i < NREC; i++) {
        char key[32];
        snprintf(key, sizeof key, "k%zu", i);
        recs[i].pos = rnd() & mask;
        kv_digest_record((const uint8_t *)key, strlen(key), (kv_version_t){i + 1, 7}, recs[i].h);
        recs[i].present = true;
        kv_digest_table_add(t, recs[i].pos, recs[i].h);
    }
    /* Take a third out again: XOR undoes the add. */
    for (size_t i = 0; i < NREC; i += 3) {
        kv_digest_table_sub(t, recs[i].pos, recs[i].h);
        recs[i].present = false;
    }
    for (int r = 0; r < 3000; r++) {
        ring_id_t lo = rnd() & mask, hi = rnd() & mask;
        if (r % 7 == 0)
            hi = lo;
        if (r % 11 == 0)
            lo = mask;
        if (r % 13 == 0)
            hi = 0;
        if (r % 17 == 0)
            hi = (lo + 1) & mask;
        kv_digest_t a = table_range(t, recs, NREC, lo, hi), b = brute_range(recs, NREC, lo, hi);
        if (!kv_digest_equal(&a, &b))
            fail_msg("m=%u b=%u range (%llu, %llu]: count %llu vs %llu", m, bucket_bits,
                     (unsigned long long)lo, (unsigned long long)hi, (unsigned long long)a.count,
                     (unsigned long long)b.count);
    }
    free(recs);
    kv_digest_table_destroy(&t);
    assert_null(t);
}

static void test_kv_digest_table_range_small_space(void **state)
{
    (void)state;
    check_space(3, 2);
    check_space(6, 3);
    check_space(8, 8);
    check_space(8, 14); /* fewer positions than buckets asked for */
}

static void test_kv_digest_table_range_full_space(void **state)
{
    (void)state;
    check_space(64, 14);
    check_space(64, 0);
    check_space(40, 10);
}

static void test_kv_digest_order_independent(void **state)
{
    (void)state;
    uint64_t h1[2], h2[2];
    kv_digest_record((const uint8_t *)"a", 1, (kv_version_t){1, 2}, h1);
    kv_digest_record((const uint8_t *)"b", 1, (kv_version_t){1, 2}, h2);
    kv_digest_t x = {0, {0, 0}}, y = {0, {0, 0}};
    kv_digest_add(&x, h1);
    kv_digest_add(&x, h2);
    kv_digest_add(&y, h2);
    kv_digest_add(&y, h1);
    assert_true(kv_digest_equal(&x, &y));
    assert_int_equal(x.count, 2);
    kv_digest_sub(&x, h1);
    kv_digest_sub(&x, h2);
    assert_int_equal(x.count, 0);
    assert_true(x.x[0] == 0 && x.x[1] == 0);
    /* The version is part of the hash. */
    uint64_t h3[2];
    kv_digest_record((const uint8_t *)"a", 1, (kv_version_t){1, 3}, h3);
    assert_false(h1[0] == h3[0] && h1[1] == h3[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kv_digest_table_range_small_space),
        cmocka_unit_test(test_kv_digest_table_range_full_space),
        cmocka_unit_test(test_kv_digest_order_independent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
