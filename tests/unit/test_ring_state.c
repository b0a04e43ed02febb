/*
 * test_ring_state.c — one node's routing state and the Chord decisions over
 * it: successor-list reconciliation, notify/stabilize, removal of a failed
 * node, the lecture's finger update rules, and the routing step.
 *
 * Most cases use m = 6 and node 10 so that every expected value can be
 * checked by hand: its finger starts are 11, 12, 14, 18, 26 and 42.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>

#include "ring_state.h"

enum { M = 6, SELF = 10 };

static ring_state_t *node_new(ring_id_t self, unsigned succ_max)
{
    ring_state_t *st = ring_state_new(self, M, succ_max);
    assert_non_null(st);
    return st;
}

static void assert_succ_list(const ring_state_t *st, const ring_id_t *want, size_t n)
{
    ring_id_t got[RING_SUCC_MAX + 1];
    size_t len = ring_state_succ_list(st, got, RING_SUCC_MAX + 1);
    assert_int_equal(len, n);
    for (size_t k = 0; k < n; k++)
        assert_int_equal(got[k], want[k]);
    assert_int_equal(ring_state_succ(st), n ? want[0] : ring_state_self(st));
}

/* The invariants ring_state.h promises for any input list. */
static void assert_succ_invariants(const ring_state_t *st)
{
    ring_id_t s[RING_SUCC_MAX];
    size_t n = ring_state_succ_list(st, s, RING_SUCC_MAX);
    ring_id_t self = ring_state_self(st);
    assert_true(n <= ring_state_succ_max(st));
    ring_id_t prev = self;
    for (size_t k = 0; k < n; k++) {
        assert_true(s[k] != self);
        /* Strictly clockwise from self, which also rules out duplicates. */
        if (k > 0)
            assert_true(ring_in_oo(s[k], prev, self));
        prev = s[k];
    }
}

/* True when got[0..n) is a subsequence of first:rest that keeps first. */
static bool is_subsequence(const ring_id_t *got, size_t n, ring_id_t first, const ring_id_t *rest,
                           size_t rest_len)
{
    if (n == 0)
        return true;
    if (got[0] != first)
        return false;
    size_t k = 1;
    for (size_t r = 0; r < rest_len && k < n; r++)
        if (rest[r] == got[k])
            k++;
    return k == n;
}

/* A converged view of node 10 in the ring {5, 10, 20, 30, 40, 50}, m = 6. */
static ring_state_t *converged_node10(void)
{
    ring_state_t *st = node_new(SELF, 3);
    ring_state_set_pred(st, 5);
    ring_state_set_succ_list(st, 20, (ring_id_t[]){30, 40}, 2);
    /* starts 11, 12, 14, 18, 26, 42 */
    const ring_id_t fingers[M] = {20, 20, 20, 20, 30, 50};
    for (unsigned i = 0; i < M; i++)
        ring_state_set_finger(st, i, fingers[i]);
    return st;
}

static void test_ring_state_new_defaults(void **state)
{
    (void)state;
    ring_state_t *st = ring_state_new(SELF, M, 4);
    assert_non_null(st);
    assert_int_equal(ring_state_self(st), SELF);
    assert_int_equal(ring_state_bits(st), M);
    assert_int_equal(ring_state_succ_max(st), 4);
    assert_false(ring_state_pred(st, NULL));
    assert_int_equal(ring_state_succ(st), SELF);
    ring_id_t f;
    for (unsigned i = 0; i < M; i++)
        assert_false(ring_state_finger(st, i, &f));
    ring_state_destroy(&st);
    assert_null(st);
    ring_state_destroy(&st);
    ring_state_destroy(NULL);
}

static void test_ring_state_new_rejects(void **state)
{
    (void)state;
    assert_null(ring_state_new(1, 2, 4));
    assert_null(ring_state_new(1, 65, 4));
    assert_null(ring_state_new(64, M, 4));
    ring_state_t *st = ring_state_new(UINT64_MAX, 64, 4);
    assert_non_null(st);
    ring_state_destroy(&st);
}

static void test_ring_state_new_clamps_succ_max(void **state)
{
    (void)state;
    ring_state_t *st = node_new(SELF, 0);
    assert_int_equal(ring_state_succ_max(st), 1);
    ring_state_destroy(&st);
    st = node_new(SELF, 1000);
    assert_int_equal(ring_state_succ_max(st), RING_SUCC_MAX);
    ring_state_destroy(&st);
}

static void test_ring_state_set_pred_self_clears(void **state)
{
    (void)state;
    ring_state_t *st = node_new(SELF, 4);
    ring_id_t p = 0;
    ring_state_set_pred(st, 5);
    assert_true(ring_state_pred(st, &p));
    assert_int_equal(p, 5);
    ring_state_set_pred(st, SELF);
    assert_false(ring_state_pred(st, &p));
    ring_state_set_pred(st, 7);
    ring_state_clear_pred(st);
    assert_false(ring_state_pred(st, &p));
    ring_state_destroy(&st);
}

static void test_ring_state_set_succ_list_plain(void **state)
{
    (void)state;
    ring_state_t *st = node_new(SELF, 4);
    ring_state_set_succ_list(st, 20, (ring_id_t[]){30, 40}, 2);
    assert_succ_list(st, (ring_id_t[]){20, 30, 40}, 3);
    /* A later call replaces the list entirely. */
    ring_state_set_succ_list(st, 15, NULL, 0);
    assert_succ_list(st, (ring_id_t[]){15}, 1);
    ring_state_destroy(&st);
}

static void test_ring_state_set_succ_list_drops_self(void **state)
{
    (void)state;
    ring_state_t *st = node_new(SELF, 8);
    /* A small ring: the successor's list comes back round through us. */
    ring_state_set_succ_list(st, 20, (ring_id_t[]){30, SELF, 20, 30}, 4);
    assert_succ_list(st, (ring_id_t[]){20, 30}, 2);
    /* The successor itself being us means we are alone. */
    ring_state_set_succ_list(st, SELF, (ring_id_t[]){20}, 1);
    assert_succ_list(st, NULL, 0);
    ring_state_destroy(&st);
}

static void test_ring_state_set_succ_list_duplicates(void **state)
{
    (void)state;
    ring_state_t *st = node_new(SELF, 8);
    const ring_id_t rest[] = {20, 30, 30, 40};
    ring_state_set_succ_list(st, 20, rest, 4);
    assert_succ_invariants(st);
    ring_id_t got[RING_SUCC_MAX];
    size_t n = ring_state_succ_list(st, got, RING_SUCC_MAX);
    assert_true(n >= 1);
    assert_int_equal(got[0], 20);
    assert_true(is_subsequence(got, n, 20, rest, 4));
    ring_state_destroy(&st);
}

static void test_ring_state_set_succ_list_out_of_order(void **state)
{
    (void)state;
    ring_state_t *st = node_new(SELF, 8);
    const ring_id_t rest[] = {30, 25, 40, 5, 50};
    ring_state_set_succ_list(st, 20, rest, 5);
    assert_succ_invariants(st);
    ring_id_t got[RING_SUCC_MAX];
    size_t n = ring_state_succ_list(st, got, RING_SUCC_MAX);
    /* The well-ordered prefix 20, 30 is kept; 25 is never after 30. */
    assert_true(n >= 2);
    assert_int_equal(got[0], 20);
    assert_int_equal(got[1], 30);
    assert_true(is_subsequence(got, n, 20, rest, 5));
    for (size_t k = 0; k < n; k++)
        assert_true(got[k] != 25);
    ring_state_destroy(&st);
}

static void test_ring_state_set_succ_list_truncates(void **state)
{
    (void)state;
    ring_state_t *st = node_new(SELF, 3);
    ring_state_set_succ_list(st, 20, (ring_id_t[]){30, 40, 50, 60}, 4);
    assert_succ_list(st, (ring_id_t[]){20, 30, 40}, 3);
    ring_state_destroy(&st);

    st = node_new(SELF, RING_SUCC_MAX);
    ring_id_t rest[2 * RING_SUCC_MAX];
    for (size_t k = 0; k < 2 * RING_SUCC_MAX; k++)
        rest[k] = SELF + 2 + (ring_id_t)k;
    ring_state_set_succ_list(st, SELF + 1, rest, 2 * RING_SUCC_MAX);
    ring_id_t got[RING_SUCC_MAX];
    assert_int_equal(ring_state_succ_list(st, got, RING_SUCC_MAX), RING_SUCC_MAX);
    for (size_t k = 0; k < RING_SUCC_MAX; k++)
        assert_int_equal(got[k], SELF + 1 + k);
    /* A short output buffer gets a prefix. */
    assert_int_equal(ring_state_succ_list(st, got, 2), 2);
    assert_int_equal(got[1], SELF + 2);
    ring_state_destroy(&st);
}

static void test_ring_state_set_succ_list_wrap(void **state)
{
    (void)state;
    /* Node 60: its successors wrap past 0. */
    ring_state_t *st = node_new(60, 8);
    ring_state_set_succ_list(st, 62, (ring_id_t[]){2, 5, 30, 59}, 4);
    assert_succ_list(st, (ring_id_t[]){62, 2, 5, 30, 59}, 5);
    assert_succ_invariants(st);
    /* A ring of three: the list comes back round. */
    ring_state_set_succ_list(st, 2, (ring_id_t[]){30, 60, 2, 30}, 4);
    assert_succ_list(st, (ring_id_t[]){2, 30}, 2);
    /* 61 lies before 2 as seen from 60: it cannot follow 2. */
    ring_state_set_succ_list(st, 2, (ring_id_t[]){61}, 1);
    assert_succ_list(st, (ring_id_t[]){2}, 1);
    ring_state_destroy(&st);
}

static void test_ring_state_notify_lone_takes_successor(void **state)
{
    (void)state;
    ring_state_t *st = node_new(SELF, 4);
    ring_id_t p = 0;
    assert_true(ring_state_notify(st, 30));
    assert_true(ring_state_pred(st, &p));
    assert_int_equal(p, 30);
    assert_int_equal(ring_state_succ(st), 30);
    /* No longer alone: a second notifier does not replace the successor. */
    assert_true(ring_state_notify(st, 5));
    assert_int_equal(ring_state_succ(st), 30);
    assert_true(ring_state_pred(st, &p));
    assert_int_equal(p, 5);
    ring_state_destroy(&st);
}

static void test_ring_state_notify_self_ignored(void **state)
{
    (void)state;
    ring_state_t *st = node_new(SELF, 4);
    assert_false(ring_state_notify(st, SELF));
    assert_false(ring_state_pred(st, NULL));
    assert_int_equal(ring_state_succ(st), SELF);
    ring_state_destroy(&st);
}

static void test_ring_state_notify_pred_interval(void **state)
{
    (void)state;
    ring_state_t *st = node_new(SELF, 4);
    ring_state_set_succ_list(st, 20, NULL, 0);
    ring_id_t p = 0;
    /* No predecessor yet: anyone but self is taken; the successor stays. */
    assert_true(ring_state_notify(st, 30));
    assert_true(ring_state_pred(st, &p));
    assert_int_equal(p, 30);
    assert_int_equal(ring_state_succ(st), 20);
    /* (30, 10) wraps: 5 and 40 are inside, 20 and 30 are not. */
    assert_false(ring_state_notify(st, 20));
    assert_false(ring_state_notify(st, 30));
    assert_true(ring_state_notify(st, 40));
    assert_true(ring_state_notify(st, 5));
    assert_true(ring_state_pred(st, &p));
    assert_int_equal(p, 5);
    assert_false(ring_state_notify(st, 40));
    assert_false(ring_state_notify(st, 5));
    assert_true(ring_state_notify(st, 9));
    assert_false(ring_state_notify(st, SELF));
    assert_true(ring_state_pred(st, &p));
    assert_int_equal(p, 9);
    assert_succ_list(st, (ring_id_t[]){20}, 1);
    ring_state_destroy(&st);
}

static void test_ring_state_stabilize_candidate_lone(void **state)
{
    (void)state;
    ring_state_t *st = node_new(SELF, 4);
    ring_id_t adopt = 0;
    assert_true(ring_state_stabilize_candidate(st, 40, &adopt));
    assert_int_equal(adopt, 40);
    assert_true(ring_state_stabilize_candidate(st, 5, &adopt));
    assert_int_equal(adopt, 5);
    adopt = 99;
    assert_false(ring_state_stabilize_candidate(st, SELF, &adopt));
    assert_int_equal(adopt, 99);
    ring_state_destroy(&st);
}

static void test_ring_state_stabilize_candidate_between(void **state)
{
    (void)state;
    ring_state_t *st = node_new(SELF, 4);
    ring_state_set_succ_list(st, 30, NULL, 0);
    ring_id_t adopt = 99;
    assert_true(ring_state_stabilize_candidate(st, 20, &adopt));
    assert_int_equal(adopt, 20);
    assert_true(ring_state_stabilize_candidate(st, 11, &adopt));
    assert_int_equal(adopt, 11);
    adopt = 99;
    assert_false(ring_state_stabilize_candidate(st, 30, &adopt));
    assert_false(ring_state_stabilize_candidate(st, 40, &adopt));
    assert_false(ring_state_stabilize_candidate(st, 5, &adopt));
    assert_false(ring_state_stabilize_candidate(st, SELF, &adopt));
    assert_int_equal(adopt, 99);
    ring_state_destroy(&st);

    /* Wrap: node 60 with successor 5. */
    st = node_new(60, 4);
    ring_state_set_succ_list(st, 5, NULL, 0);
    assert_true(ring_state_stabilize_candidate(st, 62, &adopt));
    assert_int_equal(adopt, 62);
    assert_true(ring_state_stabilize_candidate(st, 0, &adopt));
    assert_int_equal(adopt, 0);
    assert_false(ring_state_stabilize_candidate(st, 10, &adopt));
    assert_false(ring_state_stabilize_candidate(st, 59, &adopt));
    ring_state_destroy(&st);
}

static void test_ring_state_remove_pred(void **state)
{
    (void)state;
    ring_state_t *st = converged_node10();
    ring_state_remove(st, 5);
    assert_false(ring_state_pred(st, NULL));
    assert_succ_list(st, (ring_id_t[]){20, 30, 40}, 3);
    ring_state_destroy(&st);
}

static void test_ring_state_remove_successors(void **state)
{
    (void)state;
    ring_state_t *st = converged_node10();
    ring_state_remove(st, 30);
    assert_succ_list(st, (ring_id_t[]){20, 40}, 2);
    ring_state_remove(st, 20);
    assert_succ_list(st, (ring_id_t[]){40}, 1);
    ring_id_t p = 0;
    assert_true(ring_state_pred(st, &p));
    assert_int_equal(p, 5);
    ring_state_remove(st, 40);
    assert_succ_list(st, NULL, 0);
    /* Removing an unknown node or self changes nothing. */
    ring_state_remove(st, 33);
    ring_state_remove(st, SELF);
    assert_true(ring_state_pred(st, &p));
    ring_state_destroy(&st);
}

static void test_ring_state_remove_fingers(void **state)
{
    (void)state;
    ring_state_t *st = converged_node10();
    ring_state_remove(st, 20);
    ring_id_t f = 0;
    for (unsigned i = 0; i < 4; i++)
        assert_false(ring_state_finger(st, i, &f));
    assert_true(ring_state_finger(st, 4, &f));
    assert_int_equal(f, 30);
    assert_true(ring_state_finger(st, 5, &f));
    assert_int_equal(f, 50);
    assert_succ_list(st, (ring_id_t[]){30, 40}, 2);
    ring_state_destroy(&st);
}

static void test_ring_state_finger_start_values(void **state)
{
    (void)state;
    ring_state_t *st = node_new(SELF, 1);
    const ring_id_t starts[M] = {11, 12, 14, 18, 26, 42};
    for (unsigned i = 0; i < M; i++)
        assert_int_equal(ring_state_finger_start(st, i), starts[i]);
    ring_state_destroy(&st);
    st = node_new(60, 1);
    assert_int_equal(ring_state_finger_start(st, 2), 0);
    assert_int_equal(ring_state_finger_start(st, 5), 28);
    ring_state_destroy(&st);
    st = ring_state_new(UINT64_MAX, 64, 1);
    assert_non_null(st);
    assert_true(ring_state_finger_start(st, 0) == 0);
    assert_true(ring_state_finger_start(st, 63) == ((ring_id_t)1 << 63) - 1);
    ring_state_destroy(&st);
}

static void test_ring_state_set_finger_bounds(void **state)
{
    (void)state;
    ring_state_t *st = node_new(SELF, 1);
    ring_id_t f = 99;
    ring_state_set_finger(st, M, 20);
    assert_false(ring_state_finger(st, M, &f));
    ring_state_set_finger(st, 2, 20);
    assert_true(ring_state_finger(st, 2, &f));
    assert_int_equal(f, 20);
    ring_state_destroy(&st);
}

static void test_ring_state_update_finger_unset(void **state)
{
    (void)state;
    ring_state_t *st = node_new(SELF, 1);
    ring_id_t f = 0;
    /* An empty entry takes any other node, even one that is not closer. */
    assert_true(ring_state_update_finger(st, 3, 40));
    assert_true(ring_state_finger(st, 3, &f));
    assert_int_equal(f, 40);
    assert_false(ring_state_update_finger(st, 2, SELF));
    assert_false(ring_state_finger(st, 2, &f));
    assert_false(ring_state_update_finger(st, M, 20));
    ring_state_destroy(&st);
}

static void test_ring_state_update_finger_closer(void **state)
{
    (void)state;
    ring_state_t *st = node_new(SELF, 1);
    ring_id_t f = 0;
    /* Entry 3 starts at 18. */
    ring_state_set_finger(st, 3, 40);
    assert_false(ring_state_update_finger(st, 3, 40));
    assert_false(ring_state_update_finger(st, 3, 50));
    assert_false(ring_state_update_finger(st, 3, 15));
    assert_false(ring_state_update_finger(st, 3, 17));
    assert_false(ring_state_update_finger(st, 3, SELF));
    assert_true(ring_state_update_finger(st, 3, 30));
    assert_true(ring_state_finger(st, 3, &f));
    assert_int_equal(f, 30);
    assert_true(ring_state_update_finger(st, 3, 18));
    assert_true(ring_state_finger(st, 3, &f));
    assert_int_equal(f, 18);
    /* A finger sitting on its start is exact: [18, 18) is empty. */
    for (ring_id_t n = 0; n < 64; n++)
        assert_false(ring_state_update_finger(st, 3, n));
    assert_true(ring_state_finger(st, 3, &f));
    assert_int_equal(f, 18);
    ring_state_destroy(&st);
}

static void test_ring_state_update_finger_wrap(void **state)
{
    (void)state;
    ring_state_t *st = node_new(SELF, 1);
    ring_id_t f = 0;
    /* Entry 5 starts at 42; its node 5 lies past 0. [42, 5) wraps. */
    ring_state_set_finger(st, 5, 5);
    assert_false(ring_state_update_finger(st, 5, 7));
    assert_false(ring_state_update_finger(st, 5, 30));
    assert_false(ring_state_update_finger(st, 5, 41));
    assert_true(ring_state_update_finger(st, 5, 2));
    assert_true(ring_state_update_finger(st, 5, 60));
    assert_true(ring_state_update_finger(st, 5, 42));
    assert_true(ring_state_finger(st, 5, &f));
    assert_int_equal(f, 42);
    ring_state_destroy(&st);
}

static void test_ring_state_update_finger_from_self(void **state)
{
    (void)state;
    ring_state_t *st = node_new(SELF, 1);
    ring_id_t f = 0;
    /* A lone node's entry points at itself: any node in [start, self) is closer. */
    ring_state_set_finger(st, 5, SELF);
    assert_false(ring_state_update_finger(st, 5, 11));
    assert_false(ring_state_update_finger(st, 5, 41));
    assert_true(ring_state_update_finger(st, 5, 50));
    assert_true(ring_state_finger(st, 5, &f));
    assert_int_equal(f, 50);
    ring_state_set_finger(st, 0, SELF);
    assert_true(ring_state_update_finger(st, 0, 11));
    assert_true(ring_state_finger(st, 0, &f));
    assert_int_equal(f, 11);
    ring_state_set_finger(st, 2, SELF);
    assert_true(ring_state_update_finger(st, 2, 9));
    assert_true(ring_state_finger(st, 2, &f));
    assert_int_equal(f, 9);
    ring_state_destroy(&st);
}

static void test_ring_state_offer_all_fingers(void **state)
{
    (void)state;
    ring_state_t *st = node_new(SELF, 1);
    for (unsigned i = 0; i < M; i++)
        ring_state_set_finger(st, i, SELF);
    ring_state_offer(st, 20);
    /*
     * In the ring {10, 20}: starts 11, 12, 14 and 18 now have successor 20;
     * starts 26 and 42 still wrap round to self.
     */
    const ring_id_t want20[M] = {20, 20, 20, 20, SELF, SELF};
    ring_id_t f = 0;
    for (unsigned i = 0; i < M; i++) {
        assert_true(ring_state_finger(st, i, &f));
        assert_int_equal(f, want20[i]);
    }
    /* Ring {10, 20, 30}: only start 26 moves (to 30). */
    ring_state_offer(st, 30);
    const ring_id_t want30[M] = {20, 20, 20, 20, 30, SELF};
    for (unsigned i = 0; i < M; i++) {
        assert_true(ring_state_finger(st, i, &f));
        assert_int_equal(f, want30[i]);
    }
    /* Ring {10, 20, 30, 50}: start 42 moves to 50; 60 would not beat 50. */
    ring_state_offer(st, 50);
    ring_state_offer(st, 60);
    assert_true(ring_state_finger(st, 5, &f));
    assert_int_equal(f, 50);
    ring_state_destroy(&st);
}

static void test_ring_state_spread_finger_copies(void **state)
{
    (void)state;
    ring_state_t *st = node_new(SELF, 1);
    ring_id_t f = 0;
    ring_state_set_finger(st, 0, 20);
    /* starts 12, 14, 18 lie in (10, 20]; 26 does not. */
    assert_int_equal(ring_state_spread_finger(st, 0), 4);
    for (unsigned i = 1; i < 4; i++) {
        assert_true(ring_state_finger(st, i, &f));
        assert_int_equal(f, 20);
    }
    assert_false(ring_state_finger(st, 4, &f));
    /* Exactly on a start counts: 26 in (10, 26]. */
    ring_state_set_finger(st, 3, 26);
    assert_int_equal(ring_state_spread_finger(st, 3), 5);
    assert_true(ring_state_finger(st, 4, &f));
    assert_int_equal(f, 26);
    ring_state_destroy(&st);
}

static void test_ring_state_spread_finger_edges(void **state)
{
    (void)state;
    ring_state_t *st = node_new(SELF, 1);
    ring_id_t f = 0;
    /* An unset entry needs its own lookup. */
    assert_int_equal(ring_state_spread_finger(st, 2), 2);
    /* A finger pointing past 0 covers every later start: the table is complete. */
    ring_state_set_finger(st, 0, 5);
    assert_int_equal(ring_state_spread_finger(st, 0), M);
    for (unsigned i = 0; i < M; i++) {
        assert_true(ring_state_finger(st, i, &f));
        assert_int_equal(f, 5);
    }
    ring_state_destroy(&st);
    /* A lone node's self finger is not copied forward. */
    st = node_new(SELF, 1);
    ring_state_set_finger(st, 0, SELF);
    assert_int_equal(ring_state_spread_finger(st, 0), 1);
    assert_false(ring_state_finger(st, 1, &f));
    /* The last entry has no following entry. */
    ring_state_set_finger(st, M - 1, 50);
    assert_int_equal(ring_state_spread_finger(st, M - 1), M);
    ring_state_destroy(&st);
}

static void test_ring_join_update_target_values(void **state)
{
    (void)state;
    assert_int_equal(ring_join_update_target(2, 5, M), 34);
    assert_int_equal(ring_join_update_key(2, 5, M), 35);
    assert_int_equal(ring_join_update_target(2, 1, M), 0);
    assert_int_equal(ring_join_update_key(2, 1, M), 1);
    assert_int_equal(ring_join_update_target(2, 2, M), 62);
    assert_int_equal(ring_join_update_key(63, 0, M), 63);
    assert_true(ring_join_update_target(0, 0, 64) == UINT64_MAX);
    assert_true(ring_join_update_key(0, 0, 64) == 0);
}

static void test_ring_state_route_lone_owns_all(void **state)
{
    (void)state;
    ring_state_t *st = node_new(SELF, 4);
    for (ring_id_t key = 0; key < 64; key++) {
        ring_route_t r = ring_state_route(st, key, NULL, 0);
        assert_int_equal(r.kind, RING_ROUTE_SELF);
        assert_int_equal(r.next, SELF);
        assert_true(ring_state_owns(st, key));
    }
    ring_state_destroy(&st);
}

static void test_ring_state_route_self(void **state)
{
    (void)state;
    ring_state_t *st = converged_node10();
    for (ring_id_t key = 6; key <= SELF; key++) {
        ring_route_t r = ring_state_route(st, key, NULL, 0);
        assert_int_equal(r.kind, RING_ROUTE_SELF);
        assert_int_equal(r.next, SELF);
    }
    ring_state_destroy(&st);
}

static void test_ring_state_route_succ(void **state)
{
    (void)state;
    ring_state_t *st = converged_node10();
    for (ring_id_t key = 11; key <= 20; key++) {
        ring_route_t r = ring_state_route(st, key, NULL, 0);
        assert_int_equal(r.kind, RING_ROUTE_SUCC);
        assert_int_equal(r.next, 20);
    }
    ring_state_destroy(&st);
}

static void test_ring_state_route_forward(void **state)
{
    (void)state;
    ring_state_t *st = converged_node10();
    /* The closest preceding known node, fingers and successors alike. */
    const struct {
        ring_id_t key, next;
    } cases[] = {{21, 20}, {30, 20}, {31, 30}, {40, 30}, {41, 40},
                 {50, 40}, {51, 50}, {63, 50}, {0, 50},  {5, 50}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        ring_route_t r = ring_state_route(st, cases[k].key, NULL, 0);
        assert_int_equal(r.kind, RING_ROUTE_FORWARD);
        if (r.next != cases[k].next)
            fail_msg("key %llu: next %llu, expected %llu", (unsigned long long)cases[k].key,
                     (unsigned long long)r.next, (unsigned long long)cases[k].next);
    }
    ring_state_destroy(&st);
}

static void test_ring_state_route_avoid_dead_successor(void **state)
{
    (void)state;
    ring_state_t *st = converged_node10();
    const ring_id_t dead[] = {20};
    /* With 20 unreachable, 30 is the first live successor and owns (10, 30]. */
    for (ring_id_t key = 11; key <= 30; key++) {
        ring_route_t r = ring_state_route(st, key, dead, 1);
        assert_int_equal(r.kind, RING_ROUTE_SUCC);
        assert_int_equal(r.next, 30);
    }
    const ring_id_t dead2[] = {20, 30};
    ring_route_t r = ring_state_route(st, 25, dead2, 2);
    assert_int_equal(r.kind, RING_ROUTE_SUCC);
    assert_int_equal(r.next, 40);
    /* The authority check does not depend on the avoid list. */
    r = ring_state_route(st, 7, dead2, 2);
    assert_int_equal(r.kind, RING_ROUTE_SELF);
    ring_state_destroy(&st);
}

static void test_ring_state_route_avoid_dead_finger(void **state)
{
    (void)state;
    ring_state_t *st = converged_node10();
    const ring_id_t dead50[] = {50};
    ring_route_t r = ring_state_route(st, 60, dead50, 1);
    assert_int_equal(r.kind, RING_ROUTE_FORWARD);
    assert_int_equal(r.next, 40);
    const ring_id_t dead40[] = {40};
    r = ring_state_route(st, 45, dead40, 1);
    assert_int_equal(r.kind, RING_ROUTE_FORWARD);
    assert_int_equal(r.next, 30);
    const ring_id_t dead_many[] = {40, 50, 30};
    r = ring_state_route(st, 60, dead_many, 3);
    assert_int_equal(r.kind, RING_ROUTE_FORWARD);
    assert_int_equal(r.next, 20);
    ring_state_destroy(&st);
}

static void test_ring_state_route_never_forwards_backwards(void **state)
{
    (void)state;
    /* Every FORWARD moves strictly towards the key, whatever is avoided. */
    ring_state_t *st = converged_node10();
    const ring_id_t known[] = {20, 30, 40, 50};
    for (unsigned mask = 0; mask < 16; mask++) {
        ring_id_t avoid[4];
        size_t na = 0;
        for (unsigned k = 0; k < 4; k++)
            if (mask >> k & 1)
                avoid[na++] = known[k];
        for (ring_id_t key = 0; key < 64; key++) {
            ring_route_t r = ring_state_route(st, key, avoid, na);
            if (r.kind != RING_ROUTE_FORWARD)
                continue;
            assert_true(ring_in_oo(r.next, SELF, key));
            for (size_t k = 0; k < na; k++)
                assert_true(r.next != avoid[k]);
        }
    }
    ring_state_destroy(&st);
}

static void test_ring_state_owns_interval(void **state)
{
    (void)state;
    ring_state_t *st = converged_node10();
    assert_false(ring_state_owns(st, 5));
    assert_true(ring_state_owns(st, 6));
    assert_true(ring_state_owns(st, SELF));
    assert_false(ring_state_owns(st, 11));
    assert_false(ring_state_owns(st, 40));
    /* Not alone and no predecessor: nothing is known to be ours. */
    ring_state_clear_pred(st);
    for (ring_id_t key = 0; key < 64; key++)
        assert_false(ring_state_owns(st, key));
    ring_state_destroy(&st);

    /* Wrap: node 3 with predecessor 60 owns 61..63, 0..3. */
    st = node_new(3, 2);
    ring_state_set_pred(st, 60);
    ring_state_set_succ_list(st, 20, NULL, 0);
    for (ring_id_t key = 0; key < 64; key++)
        assert_int_equal(ring_state_owns(st, key), key > 60 || key <= 3);
    ring_state_destroy(&st);
}

/* The epoch moves on every change of pred or successors, and only then. */
static void test_ring_state_epoch(void **state)
{
    (void)state;
    ring_state_t *st = node_new(10, 3);
    uint64_t e = ring_state_epoch(st);
    ring_id_t rest[] = {30, 40};
    ring_state_set_succ_list(st, 20, rest, 2);
    assert_true(ring_state_epoch(st) > e);
    e = ring_state_epoch(st);
    ring_state_set_succ_list(st, 20, rest, 2);
    assert_int_equal(ring_state_epoch(st), e);
    ring_state_set_pred(st, 5);
    assert_true(ring_state_epoch(st) > e);
    e = ring_state_epoch(st);
    ring_state_set_pred(st, 5);
    ring_state_notify(st, 3); /* not closer than 5: no change */
    ring_state_set_finger(st, 2, 20);
    ring_state_remove(st, 99); /* unknown node */
    assert_int_equal(ring_state_epoch(st), e);
    ring_state_notify(st, 7);
    assert_true(ring_state_epoch(st) > e);
    e = ring_state_epoch(st);
    ring_state_remove(st, 30);
    assert_true(ring_state_epoch(st) > e);
    e = ring_state_epoch(st);
    ring_state_remove(st, 7); /* the predecessor */
    assert_true(ring_state_epoch(st) > e);
    e = ring_state_epoch(st);
    ring_state_clear_pred(st);
    assert_int_equal(ring_state_epoch(st), e);
    ring_state_destroy(&st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_state_new_defaults),
        cmocka_unit_test(test_ring_state_new_rejects),
        cmocka_unit_test(test_ring_state_new_clamps_succ_max),
        cmocka_unit_test(test_ring_state_set_pred_self_clears),
        cmocka_unit_test(test_ring_state_set_succ_list_plain),
        cmocka_unit_test(test_ring_state_set_succ_list_drops_self),
        cmocka_unit_test(test_ring_state_set_succ_list_duplicates),
        cmocka_unit_test(test_ring_state_set_succ_list_out_of_order),
        cmocka_unit_test(test_ring_state_set_succ_list_truncates),
        cmocka_unit_test(test_ring_state_set_succ_list_wrap),
        cmocka_unit_test(test_ring_state_notify_lone_takes_successor),
        cmocka_unit_test(test_ring_state_notify_self_ignored),
        cmocka_unit_test(test_ring_state_notify_pred_interval),
        cmocka_unit_test(test_ring_state_stabilize_candidate_lone),
        cmocka_unit_test(test_ring_state_stabilize_candidate_between),
        cmocka_unit_test(test_ring_state_remove_pred),
        cmocka_unit_test(test_ring_state_remove_successors),
        cmocka_unit_test(test_ring_state_remove_fingers),
        cmocka_unit_test(test_ring_state_finger_start_values),
        cmocka_unit_test(test_ring_state_set_finger_bounds),
        cmocka_unit_test(test_ring_state_update_finger_unset),
        cmocka_unit_test(test_ring_state_update_finger_closer),
        cmocka_unit_test(test_ring_state_update_finger_wrap),
        cmocka_unit_test(test_ring_state_update_finger_from_self),
        cmocka_unit_test(test_ring_state_offer_all_fingers),
        cmocka_unit_test(test_ring_state_spread_finger_copies),
        cmocka_unit_test(test_ring_state_spread_finger_edges),
        cmocka_unit_test(test_ring_join_update_target_values),
        cmocka_unit_test(test_ring_state_route_lone_owns_all),
        cmocka_unit_test(test_ring_state_route_self),
        cmocka_unit_test(test_ring_state_route_succ),
        cmocka_unit_test(test_ring_state_route_forward),
        cmocka_unit_test(test_ring_state_route_avoid_dead_successor),
        cmocka_unit_test(test_ring_state_route_avoid_dead_finger),
        cmocka_unit_test(test_ring_state_route_never_forwards_backwards),
        cmocka_unit_test(test_ring_state_owns_interval),
        cmocka_unit_test(test_ring_state_epoch),
    };
    return cmocka_run_group_tests_name("ring_state", tests, NULL, NULL);
}
