/*
 * test_ring_sim.c — the simulated ring against brute force.
 *
 * Every lookup is checked against the successor computed by scanning a
 * sorted copy of the ids, from every node, for many keys; joins are checked
 * against a ring built from scratch on the same ids. Rings come from a seeded
 * splitmix64 so a failure names the seed that reproduces it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ring_sim.h"

enum { SUCC_MAX = 4, KEYS_PER_NODE = 64 };

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int cmp_id(const void *a, const void *b)
{
    ring_id_t x = *(const ring_id_t *)a, y = *(const ring_id_t *)b;
    return x < y ? -1 : x > y;
}

/* n distinct random ids below 2^m, sorted. Caller frees. */
static ring_id_t *random_ids(uint64_t *seed, unsigned m, size_t n)
{
    ring_id_t *ids = malloc(n * sizeof *ids);
    assert_non_null(ids);
    size_t have = 0;
    while (have < n) {
        ring_id_t c = splitmix64(seed) & ring_mask(m);
        bool dup = false;
        for (size_t k = 0; k < have && !dup; k++)
            dup = ids[k] == c;
        if (!dup)
            ids[have++] = c;
    }
    qsort(ids, n, sizeof *ids, cmp_id);
    return ids;
}

/* Brute force: the first id clockwise at or after key (ids sorted). */
static size_t brute_successor(const ring_id_t *ids, size_t n, ring_id_t key)
{
    for (size_t k = 0; k < n; k++)
        if (ids[k] >= key)
            return k;
    return 0;
}

static void check_lookup(ring_sim_t *sim, const ring_id_t *ids, size_t n, unsigned m,
                         ring_id_t from, ring_id_t key, uint64_t seed)
{
    size_t s = brute_successor(ids, n, key);
    ring_sim_lookup_t lk;
    int rc = ring_sim_lookup(sim, from, key, &lk);
    if (rc != 0 || lk.owner != ids[s] || lk.answerer != ids[(s + n - 1) % n] || lk.hops > m)
        fail_msg("seed %llu m %u n %zu: lookup(from %llu, key %llu) rc %d owner %llu "
                 "answerer %llu hops %u; expected owner %llu answerer %llu hops <= %u",
                 (unsigned long long)seed, m, n, (unsigned long long)from, (unsigned long long)key,
                 rc, (unsigned long long)lk.owner, (unsigned long long)lk.answerer, lk.hops,
                 (unsigned long long)ids[s], (unsigned long long)ids[(s + n - 1) % n], m);
}

/* Lookups from every node: random keys plus each id and its neighbours. */
static void check_ring(unsigned m, size_t n, uint64_t seed, bool all_keys)
{
    uint64_t s = seed;
    ring_id_t *ids = random_ids(&s, m, n);
    ring_sim_t *sim = ring_sim_new(m, SUCC_MAX, ids, n);
    assert_non_null(sim);
    assert_int_equal(ring_sim_size(sim), n);
    for (size_t a = 0; a < n; a++) {
        ring_id_t from = ids[a];
        if (all_keys) {
            for (ring_id_t key = 0; key <= ring_mask(m); key++)
                check_lookup(sim, ids, n, m, from, key, seed);
            continue;
        }
        for (int k = 0; k < KEYS_PER_NODE; k++)
            check_lookup(sim, ids, n, m, from, splitmix64(&s) & ring_mask(m), seed);
        for (size_t b = 0; b < n; b++) {
            check_lookup(sim, ids, n, m, from, ids[b], seed);
            check_lookup(sim, ids, n, m, from, ring_add(ids[b], 1, m), seed);
            check_lookup(sim, ids, n, m, from, ring_sub(ids[b], 1, m), seed);
        }
    }
    ring_sim_destroy(&sim);
    free(ids);
}

/* Every node of sim has the fingers, predecessor and successor of ref. */
static void assert_same_fingers(ring_sim_t *sim, ring_sim_t *ref, uint64_t seed)
{
    assert_int_equal(ring_sim_size(sim), ring_sim_size(ref));
    for (size_t k = 0; k < ring_sim_size(ref); k++) {
        ring_state_t *b = ring_sim_at(ref, k);
        ring_state_t *a = ring_sim_at(sim, k);
        assert_int_equal(ring_state_self(a), ring_state_self(b));
        unsigned m = ring_state_bits(b);
        for (unsigned i = 0; i < m; i++) {
            ring_id_t fa = 0, fb = 0;
            bool ha = ring_state_finger(a, i, &fa);
            assert_true(ring_state_finger(b, i, &fb));
            if (!ha || fa != fb)
                fail_msg("seed %llu: node %llu finger %u (start %llu) is %s%llu, expected %llu",
                         (unsigned long long)seed, (unsigned long long)ring_state_self(a), i,
                         (unsigned long long)ring_state_finger_start(a, i), ha ? "" : "unset ",
                         (unsigned long long)fa, (unsigned long long)fb);
        }
    }
}

static void test_ring_sim_new_rejects(void **state)
{
    (void)state;
    const ring_id_t dup[] = {3, 9, 3};
    assert_null(ring_sim_new(6, SUCC_MAX, dup, 3));
    const ring_id_t ok[] = {3, 9};
    assert_null(ring_sim_new(2, SUCC_MAX, ok, 2));
    assert_null(ring_sim_new(65, SUCC_MAX, ok, 2));
    assert_null(ring_sim_new(6, SUCC_MAX, ok, 0));
}

static void test_ring_sim_new_sorted_and_exact(void **state)
{
    (void)state;
    const ring_id_t ids[] = {40, 8, 61, 16, 48, 32};
    ring_sim_t *sim = ring_sim_new(6, 3, ids, 6);
    assert_non_null(sim);
    const ring_id_t sorted[] = {8, 16, 32, 40, 48, 61};
    for (size_t k = 0; k < 6; k++)
        assert_int_equal(ring_state_self(ring_sim_at(sim, k)), sorted[k]);
    assert_null(ring_sim_at(sim, 6));
    assert_null(ring_sim_node(sim, 9));
    assert_null(ring_sim_node(sim, 62));
    ring_state_t *st = ring_sim_node(sim, 61);
    assert_non_null(st);
    ring_id_t pred = 0, succ[RING_SUCC_MAX];
    assert_true(ring_state_pred(st, &pred));
    assert_int_equal(pred, 48);
    assert_int_equal(ring_state_succ_list(st, succ, RING_SUCC_MAX), 3);
    assert_int_equal(succ[0], 8);
    assert_int_equal(succ[1], 16);
    assert_int_equal(succ[2], 32);
    ring_sim_destroy(&sim);
    assert_null(sim);
    ring_sim_destroy(&sim);
}

static void test_ring_sim_new_single_node(void **state)
{
    (void)state;
    const ring_id_t ids[] = {17};
    ring_sim_t *sim = ring_sim_new(8, SUCC_MAX, ids, 1);
    assert_non_null(sim);
    ring_state_t *st = ring_sim_node(sim, 17);
    assert_false(ring_state_pred(st, NULL));
    assert_int_equal(ring_state_succ(st), 17);
    ring_sim_lookup_t lk;
    for (ring_id_t key = 0; key < 256; key++) {
        assert_int_equal(ring_sim_lookup(sim, 17, key, &lk), 0);
        assert_int_equal(lk.owner, 17);
        assert_int_equal(lk.hops, 0);
    }
    ring_sim_destroy(&sim);
}

static void test_ring_sim_lookup_unknown_from(void **state)
{
    (void)state;
    const ring_id_t ids[] = {3, 9, 30};
    ring_sim_t *sim = ring_sim_new(6, SUCC_MAX, ids, 3);
    ring_sim_lookup_t lk;
    assert_int_equal(ring_sim_lookup(sim, 4, 10, &lk), -ENOENT);
    ring_sim_destroy(&sim);
}

static void test_ring_sim_lookup_m8_all_keys(void **state)
{
    (void)state;
    const size_t sizes[] = {2, 3, 5, 8, 16, 40, 100, 256};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++)
        for (uint64_t seed = 1; seed <= 4; seed++)
            check_ring(8, sizes[k], seed * 1000 + sizes[k], true);
}

static void test_ring_sim_lookup_small_m(void **state)
{
    (void)state;
    for (unsigned m = 3; m <= 6; m++)
        for (size_t n = 1; n <= ((size_t)1 << m); n += 1 + n / 4)
            check_ring(m, n, 77 * m + n, true);
}

static void test_ring_sim_lookup_m16_random(void **state)
{
    (void)state;
    check_ring(16, 50, 160050, false);
    check_ring(16, 500, 160500, false);
}

static void test_ring_sim_lookup_m64_random(void **state)
{
    (void)state;
    check_ring(64, 1, 640001, false);
    check_ring(64, 7, 640007, false);
    check_ring(64, 64, 640064, false);
    check_ring(64, 400, 640400, false);
}

static void test_ring_sim_lookup_m64_extreme_ids(void **state)
{
    (void)state;
    /* Ids hugging both ends of the 64-bit circle. */
    ring_id_t ids[] = {0, 1, 2, UINT64_MAX, UINT64_MAX - 1, (ring_id_t)1 << 63};
    size_t n = sizeof ids / sizeof ids[0];
    qsort(ids, n, sizeof ids[0], cmp_id);
    ring_sim_t *sim = ring_sim_new(64, SUCC_MAX, ids, n);
    assert_non_null(sim);
    const ring_id_t keys[] = {0,
                              1,
                              2,
                              3,
                              UINT64_MAX,
                              UINT64_MAX - 1,
                              UINT64_MAX - 2,
                              (ring_id_t)1 << 63,
                              ((ring_id_t)1 << 63) + 1,
                              ((ring_id_t)1 << 63) - 1};
    for (size_t a = 0; a < n; a++)
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
            check_lookup(sim, ids, n, 64, ids[a], keys[k], 0);
    ring_sim_destroy(&sim);
}

/*
 * Join newcomers one after another through random bootstraps; after each
 * join every finger table must equal that of a ring built from scratch on
 * the union, the newcomer must be linked to its neighbours, and lookups
 * must still agree with brute force.
 */
static void check_joins(unsigned m, size_t n0, size_t joins, uint64_t seed)
{
    uint64_t s = seed;
    ring_id_t *all = random_ids(&s, m, n0 + joins);
    /* Shuffle so newcomers land anywhere, then split base and newcomers. */
    for (size_t k = n0 + joins - 1; k > 0; k--) {
        size_t j = splitmix64(&s) % (k + 1);
        ring_id_t t = all[k];
        all[k] = all[j];
        all[j] = t;
    }
    ring_sim_t *sim = ring_sim_new(m, SUCC_MAX, all, n0);
    assert_non_null(sim);
    ring_id_t *cur = malloc((n0 + joins) * sizeof *cur);
    assert_non_null(cur);
    memcpy(cur, all, n0 * sizeof *cur);
    size_t n = n0;
    for (size_t j = 0; j < joins; j++) {
        ring_id_t newcomer = all[n0 + j];
        ring_id_t bootstrap = cur[splitmix64(&s) % n];
        ring_sim_update_t log[8];
        size_t nlog = 0;
        int rc = ring_sim_join(sim, newcomer, bootstrap, log, 8, &nlog);
        if (rc != 0)
            fail_msg("seed %llu: join of %llu via %llu returned %d", (unsigned long long)seed,
                     (unsigned long long)newcomer, (unsigned long long)bootstrap, rc);
        cur[n++] = newcomer;
        qsort(cur, n, sizeof *cur, cmp_id);

        ring_sim_t *ref = ring_sim_new(m, SUCC_MAX, cur, n);
        assert_non_null(ref);
        assert_same_fingers(sim, ref, seed);
        ring_sim_destroy(&ref);

        size_t at = brute_successor(cur, n, newcomer);
        ring_id_t pred_id = cur[(at + n - 1) % n], succ_id = cur[(at + 1) % n];
        ring_state_t *st = ring_sim_node(sim, newcomer);
        assert_non_null(st);
        ring_id_t p = 0;
        assert_true(ring_state_pred(st, &p));
        assert_int_equal(p, pred_id);
        assert_int_equal(ring_state_succ(st), succ_id);
        assert_int_equal(ring_state_succ(ring_sim_node(sim, pred_id)), newcomer);
        assert_true(ring_state_pred(ring_sim_node(sim, succ_id), &p));
        assert_int_equal(p, newcomer);

        for (size_t a = 0; a < n; a++)
            for (int k = 0; k < 16; k++)
                check_lookup(sim, cur, n, m, cur[a], splitmix64(&s) & ring_mask(m), seed);
    }
    free(cur);
    free(all);
    ring_sim_destroy(&sim);
}

static void test_ring_sim_join_matches_rebuilt_m8(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 20; seed++)
        check_joins(8, 6, 6, seed);
    check_joins(8, 30, 10, 8030);
}

static void test_ring_sim_join_matches_rebuilt_m64(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 5; seed++)
        check_joins(64, 20, 8, 6400 + seed);
    check_joins(64, 200, 5, 64200);
}

static void test_ring_sim_join_self_finger(void **state)
{
    (void)state;
    /*
     * 25 joins the one-node ring {49} (m = 6). Its entry 5 starts at 57, and
     * nothing lies in [57, 25): successor(57) is 25 itself, as in a ring
     * built from scratch on {25, 49}, not the bootstrap 49.
     */
    const ring_id_t one[] = {49};
    ring_sim_t *sim = ring_sim_new(6, SUCC_MAX, one, 1);
    assert_non_null(sim);
    size_t nlog = 0;
    assert_int_equal(ring_sim_join(sim, 25, 49, NULL, 0, &nlog), 0);
    ring_state_t *st = ring_sim_node(sim, 25);
    ring_id_t f = 0;
    for (unsigned i = 0; i < 5; i++) {
        assert_true(ring_state_finger(st, i, &f));
        assert_int_equal(f, 49);
    }
    assert_int_equal(ring_state_finger_start(st, 5), 57);
    assert_true(ring_state_finger(st, 5, &f));
    assert_int_equal(f, 25);
    ring_sim_destroy(&sim);
}

static void test_ring_sim_join_into_small_rings(void **state)
{
    (void)state;
    /* Newcomers whose predecessor gap spans most of the ring. */
    for (uint64_t seed = 1; seed <= 20; seed++)
        check_joins(6, 1, 5, 600 + seed);
}

static void test_ring_sim_join_duplicate_id(void **state)
{
    (void)state;
    const ring_id_t ids[] = {8, 16, 32, 40, 48, 61};
    ring_sim_t *sim = ring_sim_new(6, SUCC_MAX, ids, 6);
    ring_sim_update_t log[4];
    size_t nlog = 99;
    assert_int_equal(ring_sim_join(sim, 32, 8, log, 4, &nlog), -EEXIST);
    assert_int_equal(nlog, 0);
    assert_int_equal(ring_sim_size(sim), 6);
    assert_int_equal(ring_sim_join(sim, 33, 7, log, 4, &nlog), -ENOENT);
    assert_int_equal(ring_sim_size(sim), 6);
    assert_int_equal(ring_sim_join(sim, 33, 8, log, 4, &nlog), 0);
    assert_int_equal(ring_sim_join(sim, 33, 40, log, 4, &nlog), -EEXIST);
    assert_int_equal(ring_sim_size(sim), 7);
    ring_sim_destroy(&sim);
}

static void test_ring_sim_join_log_cap(void **state)
{
    (void)state;
    const ring_id_t ids[] = {8, 16, 32, 40, 48, 61};
    ring_sim_t *sim = ring_sim_new(6, SUCC_MAX, ids, 6);
    /* One slot of room and a guard after it: the total still counts all. */
    ring_sim_update_t log[2];
    memset(log, 0xa5, sizeof log);
    size_t nlog = 0;
    assert_int_equal(ring_sim_join(sim, 2, 40, log, 1, &nlog), 0);
    assert_true(nlog > 1);
    unsigned char guard[sizeof log[1]];
    memset(guard, 0xa5, sizeof guard);
    assert_memory_equal(&log[1], guard, sizeof guard);
    assert_int_equal(log[0].new_peer, 2);
    ring_sim_destroy(&sim);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_sim_new_rejects),
        cmocka_unit_test(test_ring_sim_new_sorted_and_exact),
        cmocka_unit_test(test_ring_sim_new_single_node),
        cmocka_unit_test(test_ring_sim_lookup_unknown_from),
        cmocka_unit_test(test_ring_sim_lookup_m8_all_keys),
        cmocka_unit_test(test_ring_sim_lookup_small_m),
        cmocka_unit_test(test_ring_sim_lookup_m16_random),
        cmocka_unit_test(test_ring_sim_lookup_m64_random),
        cmocka_unit_test(test_ring_sim_lookup_m64_extreme_ids),
        cmocka_unit_test(test_ring_sim_join_matches_rebuilt_m8),
        cmocka_unit_test(test_ring_sim_join_matches_rebuilt_m64),
        cmocka_unit_test(test_ring_sim_join_self_finger),
        cmocka_unit_test(test_ring_sim_join_into_small_rings),
        cmocka_unit_test(test_ring_sim_join_duplicate_id),
        cmocka_unit_test(test_ring_sim_join_log_cap),
    };
    return cmocka_run_group_tests_name("ring_sim", tests, NULL, NULL);
}
