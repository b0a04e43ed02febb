/*
 * ring_place against brute force and sampling: replica sets on distinct
 * nodes and zones, weights, the exact shares and moved fractions against
 * counted keys, the plain Chord placement with one token and one probe,
 * determinism. Ids and keys come from a seeded splitmix64.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "ring_place.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { M = 64, R = 3, SAMPLES = 200000 };

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* n nodes with random distinct ids (64-bit draws: collisions are not a concern), weight 1. */
static ring_place_node_t *random_nodes(uint64_t *seed, size_t n, unsigned m)
{
    ring_place_node_t *v = calloc(n, sizeof *v);
    assert_non_null(v);
    for (size_t i = 0; i < n; i++)
        v[i] = (ring_place_node_t){splitmix64(seed) & ring_mask(m), 1, (uint32_t)i};
    return v;
}

static ring_place_t *place(const ring_place_node_t *v, size_t n, unsigned tokens, unsigned probes)
{
    ring_place_params_t p = {M, tokens, probes};
    ring_place_t *pl = NULL;
    assert_int_equal(ring_place_new(&p, v, n, &pl), 0);
    assert_non_null(pl);
    return pl;
}

static void test_ring_place_token_deterministic(void **state)
{
    (void)state;
    assert_true(ring_place_token(0x1234, 0, 64) == 0x1234);
    assert_true(ring_place_token(0x1234, 1, 64) == ring_place_token(0x1234, 1, 64));
    assert_true(ring_place_token(0x1234, 1, 64) != ring_place_token(0x1234, 2, 64));
    assert_true(ring_place_token(0x1234, 1, 64) != ring_place_token(0x1235, 1, 64));
    assert_true(ring_place_token(0x1234, 7, 6) < 64);
    assert_true(ring_place_probe(99, 0, 64) == 99);
    assert_true(ring_place_probe(99, 3, 10) < 1024);

    /* The same members in another order place every key alike. */
    uint64_t seed = 7;
    ring_place_node_t *v = random_nodes(&seed, 20, M);
    ring_place_node_t w[20];
    for (size_t i = 0; i < 20; i++)
        w[i] = v[19 - i];
    ring_place_t *a = place(v, 20, 16, 21), *b = place(w, 20, 16, 21);
    for (int q = 0; q < 5000; q++) {
        ring_id_t key = splitmix64(&seed);
        size_t sa[R], sb[R];
        assert_int_equal(ring_place_replicas(a, key, R, sa), R);
        assert_int_equal(ring_place_replicas(b, key, R, sb), R);
        for (int k = 0; k < R; k++)
            assert_true(v[sa[k]].id == w[sb[k]].id);
    }
    ring_place_destroy(&a);
    ring_place_destroy(&b);
    assert_null(a);
    free(v);
}

static void test_ring_place_new_rejects(void **state)
{
    (void)state;
    ring_place_node_t v[2] = {{1, 1, 0}, {1, 1, 1}};
    ring_place_params_t p = {M, 4, 1};
    ring_place_t *pl = NULL;
    assert_int_equal(ring_place_new(&p, v, 2, &pl), -EINVAL); /* duplicate id */
    v[1].id = 2;
    v[1].weight = 0;
    assert_int_equal(ring_place_new(&p, v, 2, &pl), -EINVAL);
    v[1].weight = 1;
    assert_int_equal(ring_place_new(&p, v, 0, &pl), -EINVAL);
    p.tokens = 0;
    assert_int_equal(ring_place_new(&p, v, 2, &pl), -EINVAL);
    p = (ring_place_params_t){6, 4, 1};
    v[1].id = 64; /* does not fit in 6 bits */
    assert_int_equal(ring_place_new(&p, v, 2, &pl), -EINVAL);
    assert_null(pl);
    v[1].id = 63;
    assert_int_equal(ring_place_new(&p, v, 2, &pl), 0);
    assert_int_equal(ring_place_size(pl), 2);
    assert_int_equal(ring_place_token_count(pl), 8);
    ring_place_destroy(&pl);
}

static void test_ring_place_replicas_distinct_nodes(void **state)
{
    (void)state;
    uint64_t seed = 11;
    for (size_t n = 1; n <= 8; n++) {
        ring_place_node_t *v = random_nodes(&seed, n, M);
        for (size_t i = 0; i < n; i++)
            v[i].zone = 0; /* one zone: distinct nodes only */
        ring_place_t *pl = place(v, n, 16, 21);
        for (int q = 0; q < 3000; q++) {
            size_t set[R];
            size_t got = ring_place_replicas(pl, splitmix64(&seed), R, set);
            assert_int_equal(got, n < R ? n : R);
            for (size_t i = 0; i < got; i++)
                for (size_t j = i + 1; j < got; j++)
                    assert_true(set[i] != set[j]);
        }
        ring_place_destroy(&pl);
        free(v);
    }
}

static void test_ring_place_replicas_distinct_zones(void **state)
{
    (void)state;
    uint64_t seed = 13;
    /* 3 zones of 2 nodes: every key's 3 copies in 3 zones. */
    ring_place_node_t *v = random_nodes(&seed, 6, M);
    for (size_t i = 0; i < 6; i++)
        v[i].zone = (uint32_t)(i / 2);
    ring_place_t *pl = place(v, 6, 16, 21);
    assert_int_equal(ring_place_zone_count(pl), 3);
    for (int q = 0; q < 20000; q++) {
        size_t set[R];
        assert_int_equal(ring_place_replicas(pl, splitmix64(&seed), R, set), R);
        assert_true(v[set[0]].zone != v[set[1]].zone);
        assert_true(v[set[0]].zone != v[set[2]].zone);
        assert_true(v[set[1]].zone != v[set[2]].zone);
    }
    /* Each zone holds a copy of every key, so each node about half of them. */
    double copies[6];
    assert_int_equal(ring_place_shares(pl, R, NULL, copies), 0);
    for (size_t i = 0; i < 6; i += 2)
        assert_true(fabs(copies[i] + copies[i + 1] - 1.0) < 1e-9);
    ring_place_destroy(&pl);

    /* Only 2 zones for 3 copies: distinct nodes, both zones used. */
    for (size_t i = 0; i < 6; i++)
        v[i].zone = (uint32_t)(i % 2);
    pl = place(v, 6, 16, 21);
    for (int q = 0; q < 20000; q++) {
        size_t set[R];
        assert_int_equal(ring_place_replicas(pl, splitmix64(&seed), R, set), R);
        assert_true(set[0] != set[1] && set[0] != set[2] && set[1] != set[2]);
    }
    ring_place_destroy(&pl);
    free(v);
}

static void test_ring_place_weights(void **state)
{
    (void)state;
    uint64_t seed = 17;
    ring_place_node_t *v = random_nodes(&seed, 5, M);
    for (size_t i = 0; i < 5; i++)
        v[i].zone = 0; /* one zone: copies on distinct nodes */
    v[4].weight = 2;
    ring_place_t *pl = place(v, 5, RING_PLACE_TOKENS_DEFAULT, RING_PLACE_PROBES_DEFAULT);
    assert_int_equal(ring_place_token_count(pl), 6 * RING_PLACE_TOKENS_DEFAULT);
    double primary[5];
    assert_int_equal(ring_place_shares(pl, 1, primary, NULL), 0);
    double others = (primary[0] + primary[1] + primary[2] + primary[3]) / 4;
    /* Fair: 2/6 and 1/6. */
    assert_true(fabs(primary[4] - 2.0 / 6) < 0.05);
    assert_true(primary[4] / others > 1.7 && primary[4] / others < 2.3);
    /*
     * Copies: the heavy node's fair share of 3 is 3 * 2/6, a copy of every
     * key — it is in every set, and the 4 others share the other 2 copies.
     */
    double copies[5];
    assert_int_equal(ring_place_shares(pl, R, NULL, copies), 0);
    assert_true(fabs(copies[4] - 1.0) < 1e-9);
    for (size_t i = 0; i < 4; i++)
        assert_true(copies[i] > 0.4 && copies[i] < 0.6);
    unsigned count[5] = {0};
    for (int q = 0; q < SAMPLES; q++) {
        size_t set[R];
        assert_int_equal(ring_place_replicas(pl, splitmix64(&seed), R, set), R);
        for (int k = 0; k < R; k++) {
            count[set[k]]++;
            for (int l = 0; l < k; l++)
                assert_true(set[k] != set[l]);
        }
    }
    assert_int_equal(count[4], SAMPLES);
    for (size_t i = 0; i < 4; i++)
        assert_true(fabs(copies[i] - (double)count[i] / SAMPLES) < 0.006);
    ring_place_destroy(&pl);

    /*
     * Zones: a zone of two nodes among four zones of weight 2,1,1,1 holds
     * 3 * 2/5 of 3 copies, more than one of every key: it is in every set.
     */
    uint32_t zone[5] = {7, 7, 8, 9, 10};
    for (size_t i = 0; i < 5; i++) {
        v[i].zone = zone[i];
        v[i].weight = 1;
    }
    pl = place(v, 5, RING_PLACE_TOKENS_DEFAULT, RING_PLACE_PROBES_DEFAULT);
    assert_int_equal(ring_place_shares(pl, R, NULL, copies), 0);
    assert_true(fabs(copies[0] + copies[1] - 1.0) < 1e-9);
    for (int q = 0; q < SAMPLES / 10; q++) {
        size_t set[R];
        assert_int_equal(ring_place_replicas(pl, splitmix64(&seed), R, set), R);
        unsigned in7 = 0;
        for (int k = 0; k < R; k++)
            in7 += set[k] <= 1;
        assert_int_equal(in7, 1);
    }
    ring_place_destroy(&pl);
    free(v);
}

/* The closed-form shares against counted keys, with and without probes. */
static void test_ring_place_shares_match_samples(void **state)
{
    (void)state;
    unsigned probes[] = {1, 21};
    for (size_t c = 0; c < 2; c++) {
        uint64_t seed = 19;
        enum { N = 10 };
        ring_place_node_t *v = random_nodes(&seed, N, M);
        ring_place_t *pl = place(v, N, 4, probes[c]);
        double primary[N], copies[N], sp = 0, sc = 0;
        assert_int_equal(ring_place_shares(pl, R, primary, copies), 0);
        unsigned count_p[N] = {0}, count_c[N] = {0};
        for (int q = 0; q < SAMPLES; q++) {
            size_t set[R];
            assert_int_equal(ring_place_replicas(pl, splitmix64(&seed), R, set), R);
            count_p[set[0]]++;
            for (int k = 0; k < R; k++)
                count_c[set[k]]++;
        }
        for (size_t i = 0; i < N; i++) {
            sp += primary[i];
            sc += copies[i];
            /* 200,000 samples: a few standard deviations is < 0.005. */
            assert_true(fabs(primary[i] - (double)count_p[i] / SAMPLES) < 0.005);
            assert_true(fabs(copies[i] - (double)count_c[i] / SAMPLES) < 0.006);
        }
        assert_true(fabs(sp - 1.0) < 1e-9);
        assert_true(fabs(sc - R) < 1e-9);
        ring_place_destroy(&pl);
        free(v);
    }
}

/* One token, one probe: successor of the key and the next nodes by id. */
static void test_ring_place_plain_chord(void **state)
{
    (void)state;
    ring_place_node_t v[] = {{8, 1, 0}, {16, 1, 1}, {32, 1, 2}, {40, 1, 3}, {48, 1, 4}, {61, 1, 5}};
    ring_place_params_t p = {6, 1, 1};
    ring_place_t *pl = NULL;
    assert_int_equal(ring_place_new(&p, v, 6, &pl), 0);
    for (ring_id_t key = 0; key < 64; key++) {
        size_t set[R];
        assert_int_equal(ring_place_replicas(pl, key, R, set), R);
        size_t succ = 0;
        while (succ < 6 && v[succ].id < key)
            succ++;
        for (size_t k = 0; k < R; k++)
            assert_int_equal(set[k], (succ + k) % 6);
    }
    double primary[6];
    assert_int_equal(ring_place_shares(pl, 1, primary, NULL), 0);
    assert_true(fabs(primary[0] - 11.0 / 64) < 1e-12); /* (61, 8] */
    assert_true(fabs(primary[2] - 16.0 / 64) < 1e-12); /* (16, 32] */
    ring_place_destroy(&pl);
}

/*
 * Partitions: 2^min(m, 10) contiguous ranges covering the ring once, each
 * position in the one part_of names; with m <= 10 every position is its
 * own partition, so one token and one probe place partitions exactly as
 * Chord places keys.
 */
static void test_ring_place_partitions(void **state)
{
    (void)state;
    assert_int_equal(ring_place_part_count(64), 1024);
    assert_int_equal(ring_place_part_count(6), 64);
    ring_id_t lo, hi;
    ring_place_part_range(0, 64, &lo, &hi);
    assert_true(lo == UINT64_MAX && hi == (UINT64_C(1) << 54) - 1);
    ring_place_part_range(1023, 64, &lo, &hi);
    assert_true(lo == (UINT64_C(1023) << 54) - 1);
    assert_true(hi == UINT64_MAX);
    uint64_t seed = 7;
    for (int q = 0; q < 10000; q++) {
        ring_id_t pos = splitmix64(&seed);
        uint32_t part = ring_place_part_of(pos, 64);
        ring_place_part_range(part, 64, &lo, &hi);
        assert_true(pos > lo || part == 0);
        assert_true(pos <= hi);
        assert_true(ring_place_part_pos(part, 64) == lo + 1);
        if (part > 0)
            assert_int_equal(ring_place_part_of(lo, 64), part - 1);
    }
    /* Consecutive partitions tile the ring: each starts where the previous ended. */
    for (uint32_t part = 1; part < 1024; part++) {
        ring_id_t plo, phi;
        ring_place_part_range(part - 1, 64, &plo, &phi);
        ring_place_part_range(part, 64, &lo, &hi);
        assert_true(lo == phi);
    }
    /* m = 6: one position per partition, placed as Chord places the key. */
    ring_place_node_t v[] = {{8, 1, 0}, {16, 1, 1}, {32, 1, 2}, {40, 1, 3}, {48, 1, 4}, {61, 1, 5}};
    ring_place_params_t p = {6, 1, 1};
    ring_place_t *pl = NULL;
    assert_int_equal(ring_place_new(&p, v, 6, &pl), 0);
    for (ring_id_t key = 0; key < 64; key++) {
        uint32_t part = ring_place_part_of(key, 6);
        assert_int_equal(part, key);
        ring_place_part_range(part, 6, &lo, &hi);
        assert_true(hi == key && lo == ((key + 63) & 63));
        size_t a[R], b[R];
        assert_int_equal(ring_place_replicas(pl, ring_place_part_pos(part, 6), R, a), R);
        assert_int_equal(ring_place_replicas(pl, key, R, b), R);
        assert_memory_equal(a, b, sizeof a);
    }
    ring_place_destroy(&pl);
}

static double sampled_moved(const ring_place_t *a, const ring_place_node_t *va,
                            const ring_place_t *b, const ring_place_node_t *vb, uint64_t seed)
{
    unsigned moved = 0;
    for (int q = 0; q < SAMPLES; q++) {
        ring_id_t key = splitmix64(&seed);
        size_t sa[R], sb[R];
        size_t na = ring_place_replicas(a, key, R, sa), nb = ring_place_replicas(b, key, R, sb);
        bool same = na == nb;
        for (size_t i = 0; i < na && same; i++) {
            bool found = false;
            for (size_t j = 0; j < nb; j++)
                found = found || va[sa[i]].id == vb[sb[j]].id;
            same = found;
        }
        moved += !same;
    }
    return (double)moved / SAMPLES;
}

static void test_ring_place_moved_on_join_and_leave(void **state)
{
    (void)state;
    size_t sizes[] = {5, 20, 100};
    for (size_t c = 0; c < 3; c++) {
        size_t n = sizes[c];
        uint64_t seed = 23 + c;
        ring_place_node_t *v = random_nodes(&seed, n + 1, M);
        ring_place_t *small = place(v, n, RING_PLACE_TOKENS_DEFAULT, RING_PLACE_PROBES_DEFAULT);
        ring_place_t *big = place(v, n + 1, RING_PLACE_TOKENS_DEFAULT, RING_PLACE_PROBES_DEFAULT);
        double exact;
        assert_int_equal(ring_place_moved(small, big, R, &exact), 0);
        double ideal = (double)R / (double)(n + 1);
        assert_true(exact <= 1.2 * ideal);
        assert_true(exact >= 0.8 * ideal);
        /* The exact figure is what counting keys finds. */
        double counted = sampled_moved(small, v, big, v, seed);
        assert_true(fabs(counted - exact) < 0.005);
        /* The joiner is in every set that changed: its copy share is the figure. */
        double copies[101];
        assert_int_equal(ring_place_shares(big, R, NULL, copies), 0);
        assert_true(fabs(copies[n] - exact) < 1e-9);
        /* Leave is the same comparison read the other way; not a superset. */
        assert_int_equal(ring_place_moved(big, small, R, &exact), -EINVAL);
        /* A re-weight is not a join. */
        v[0].weight = 2;
        ring_place_t *heavier =
            place(v, n + 1, RING_PLACE_TOKENS_DEFAULT, RING_PLACE_PROBES_DEFAULT);
        assert_int_equal(ring_place_moved(small, heavier, R, &exact), -EINVAL);
        ring_place_destroy(&heavier);
        ring_place_destroy(&small);
        ring_place_destroy(&big);
        free(v);
    }
}

/* Exact copies against counted keys with zones (picks inside further zones). */
static void test_ring_place_zone_shares_match_samples(void **state)
{
    (void)state;
    unsigned probes[] = {1, 21};
    for (size_t c = 0; c < 2; c++) {
        uint64_t seed = 29;
        enum { N = 12 };
        ring_place_node_t *v = random_nodes(&seed, N, M);
        for (size_t i = 0; i < N; i++)
            v[i].zone = (uint32_t)(100 + i % 4); /* 4 zones of 3: more zones than copies */
        ring_place_t *pl = place(v, N, 4, probes[c]);
        double copies[N], sc = 0;
        assert_int_equal(ring_place_shares(pl, R, NULL, copies), 0);
        unsigned count_c[N] = {0};
        for (int q = 0; q < SAMPLES; q++) {
            size_t set[R];
            assert_int_equal(ring_place_replicas(pl, splitmix64(&seed), R, set), R);
            for (int k = 0; k < R; k++)
                count_c[set[k]]++;
        }
        for (size_t i = 0; i < N; i++) {
            sc += copies[i];
            assert_true(fabs(copies[i] - (double)count_c[i] / SAMPLES) < 0.006);
        }
        assert_true(fabs(sc - R) < 1e-9);
        ring_place_destroy(&pl);
        free(v);
    }
}

/* Copies stay balanced with zones (each further zone picks by its own probes). */
static void test_ring_place_zone_balance(void **state)
{
    (void)state;
    uint64_t seed = 31;
    enum { N = 99 };
    ring_place_node_t *v = random_nodes(&seed, N, M);
    for (size_t i = 0; i < N; i++)
        v[i].zone = (uint32_t)(i % 3);
    ring_place_t *pl = place(v, N, RING_PLACE_TOKENS_DEFAULT, RING_PLACE_PROBES_DEFAULT);
    double copies[N];
    assert_int_equal(ring_place_shares(pl, R, NULL, copies), 0);
    for (size_t i = 0; i < N; i++)
        assert_true(copies[i] / ((double)R / N) <= 1.25);
    ring_place_destroy(&pl);
    free(v);
}

/* Exact moved fractions with zones against counted keys. */
static void test_ring_place_moved_zones(void **state)
{
    (void)state;
    /* nodes, zones of the first n nodes, zone of the joiner */
    struct {
        size_t n;
        uint32_t zones, joiner_zone;
    } cases[] = {
        {12, 3, 0}, /* 3 zones in both */
        {8, 4, 1},  /* 4 zones for 3 copies */
        {6, 2, 2},  /* 2 zones (distinct nodes) -> 3 zones (distinct zones) */
    };
    for (size_t c = 0; c < 3; c++) {
        uint64_t seed = 37 + c;
        size_t n = cases[c].n;
        ring_place_node_t *v = random_nodes(&seed, n + 1, M);
        for (size_t i = 0; i < n; i++)
            v[i].zone = (uint32_t)(i % cases[c].zones);
        v[n].zone = cases[c].joiner_zone;
        ring_place_t *small = place(v, n, 4, RING_PLACE_PROBES_DEFAULT);
        ring_place_t *big = place(v, n + 1, 4, RING_PLACE_PROBES_DEFAULT);
        double exact;
        assert_int_equal(ring_place_moved(small, big, R, &exact), 0);
        double counted = sampled_moved(small, v, big, v, seed);
        assert_true(fabs(counted - exact) < 0.006);
        assert_true(exact > 0);
        ring_place_destroy(&small);
        ring_place_destroy(&big);
        free(v);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_place_token_deterministic),
        cmocka_unit_test(test_ring_place_new_rejects),
        cmocka_unit_test(test_ring_place_replicas_distinct_nodes),
        cmocka_unit_test(test_ring_place_replicas_distinct_zones),
        cmocka_unit_test(test_ring_place_weights),
        cmocka_unit_test(test_ring_place_shares_match_samples),
        cmocka_unit_test(test_ring_place_plain_chord),
        cmocka_unit_test(test_ring_place_partitions),
        cmocka_unit_test(test_ring_place_moved_on_join_and_leave),
        cmocka_unit_test(test_ring_place_zone_shares_match_samples),
        cmocka_unit_test(test_ring_place_zone_balance),
        cmocka_unit_test(test_ring_place_moved_zones),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
