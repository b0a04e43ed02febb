/*
 * The lecture's m = 6 join example, replayed on ringlib's real code.
 *
 * Ring before the join (BRIEF.md section 2): peer 4 at 8, peer 2 at 16,
 * peer 3 at 32, peer 1 at 40, peer 6 at 48, peer 5 at 61. Peer 7 joins at 2.
 *
 * One deliberate difference from the slides: they print the newcomer's
 * entries 3..5 with starts 14, 30 and 46, which n + 2^i cannot produce for
 * n = 2 (it gives 10, 18 and 34; the same slides use n + 2^i for peers 32 and
 * 48). Nodes for entries 0..4 agree with the slides either way; entry 5
 * is successor(34) = 40 by the definition both the slides and BRIEF.md give.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "ring_sim.h"

enum { M = 6 };

static ring_sim_t *lecture_ring(void)
{
    const ring_id_t ids[] = {8, 16, 32, 40, 48, 61};
    return ring_sim_new(M, 4, ids, sizeof ids / sizeof ids[0]);
}

static void assert_table(ring_state_t *st, const ring_id_t starts[M], const ring_id_t nodes[M])
{
    for (unsigned i = 0; i < M; i++) {
        ring_id_t node = 99;
        assert_int_equal(ring_state_finger_start(st, i), starts[i]);
        assert_true(ring_state_finger(st, i, &node));
        assert_int_equal(node, nodes[i]);
    }
}

static const ring_sim_update_t *find_update(const ring_sim_update_t *log, size_t n, ring_id_t to,
                                            unsigned i)
{
    for (size_t k = 0; k < n; k++)
        if (log[k].to == to && log[k].i == i)
            return &log[k];
    return NULL;
}

static void test_lecture_tables_before_join(void **state)
{
    (void)state;
    ring_sim_t *sim = lecture_ring();
    assert_non_null(sim);
    assert_table(ring_sim_node(sim, 32), (ring_id_t[]){33, 34, 36, 40, 48, 0},
                 (ring_id_t[]){40, 40, 40, 40, 48, 8});
    assert_table(ring_sim_node(sim, 48), (ring_id_t[]){49, 50, 52, 56, 0, 16},
                 (ring_id_t[]){61, 61, 61, 61, 8, 16});
    ring_sim_destroy(&sim);
}

static void test_lecture_join_peer7(void **state)
{
    (void)state;
    ring_sim_t *sim = lecture_ring();
    ring_sim_update_t log[64];
    size_t n = 0;
    assert_int_equal(ring_sim_join(sim, 2, 40, log, 64, &n), 0);
    assert_true(n <= 64);

    /* The newcomer's table: 3->8, 4->8, 6->8, then 16, 32, and successor(34). */
    ring_state_t *p7 = ring_sim_node(sim, 2);
    assert_non_null(p7);
    assert_table(p7, (ring_id_t[]){3, 4, 6, 10, 18, 34}, (ring_id_t[]){8, 8, 8, 16, 32, 40});

    /* Authority for (61, 2]; neighbours linked. */
    ring_id_t pred;
    assert_true(ring_state_pred(p7, &pred));
    assert_int_equal(pred, 61);
    assert_int_equal(ring_state_succ(p7), 8);
    assert_true(ring_state_owns(p7, 62));
    assert_true(ring_state_owns(p7, 0));
    assert_true(ring_state_owns(p7, 2));
    assert_false(ring_state_owns(p7, 3));
    assert_int_equal(ring_state_succ(ring_sim_node(sim, 61)), 2);
    assert_true(ring_state_pred(ring_sim_node(sim, 8), &pred));
    assert_int_equal(pred, 2);

    /* update(target=32, new-peer=2), i = 5: applied by 32, passed to 16, which needs none. */
    const ring_sim_update_t *u = find_update(log, n, 32, 5);
    assert_non_null(u);
    assert_true(u->applied);
    assert_int_equal(u->new_peer, 2);
    assert_int_equal(u->target, 34);
    u = find_update(log, n, 16, 5);
    assert_non_null(u);
    assert_false(u->applied);
    assert_null(find_update(log, n, 8, 5));

    /* update(target=48, new-peer=2), i = 4: applied by 48, passed to 40, which needs none. */
    u = find_update(log, n, 48, 4);
    assert_non_null(u);
    assert_true(u->applied);
    assert_int_equal(u->target, 50);
    u = find_update(log, n, 40, 4);
    assert_non_null(u);
    assert_false(u->applied);
    assert_null(find_update(log, n, 32, 4));

    /* Every chain ends at the first peer that needs no update. */
    for (size_t k = 0; k + 1 < n; k++)
        if (!log[k].applied)
            assert_true(log[k + 1].i != log[k].i);

    /* Final tables of peers 32 and 48, exactly as on the slides. */
    assert_table(ring_sim_node(sim, 32), (ring_id_t[]){33, 34, 36, 40, 48, 0},
                 (ring_id_t[]){40, 40, 40, 40, 48, 2});
    assert_table(ring_sim_node(sim, 48), (ring_id_t[]){49, 50, 52, 56, 0, 16},
                 (ring_id_t[]){61, 61, 61, 61, 2, 16});
    ring_sim_destroy(&sim);
}

static void test_lecture_join_matches_rebuilt_ring(void **state)
{
    (void)state;
    /* After the join every finger table equals a ring built from scratch. */
    ring_sim_t *sim = lecture_ring();
    ring_sim_update_t log[64];
    size_t n;
    assert_int_equal(ring_sim_join(sim, 2, 8, log, 64, &n), 0);
    const ring_id_t all[] = {2, 8, 16, 32, 40, 48, 61};
    ring_sim_t *ref = ring_sim_new(M, 4, all, 7);
    for (size_t k = 0; k < 7; k++) {
        ring_state_t *a = ring_sim_node(sim, all[k]), *b = ring_sim_node(ref, all[k]);
        for (unsigned i = 0; i < M; i++) {
            ring_id_t fa, fb;
            assert_true(ring_state_finger(a, i, &fa));
            assert_true(ring_state_finger(b, i, &fb));
            assert_int_equal(fa, fb);
        }
    }
    ring_sim_destroy(&ref);
    ring_sim_destroy(&sim);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lecture_tables_before_join),
        cmocka_unit_test(test_lecture_join_peer7),
        cmocka_unit_test(test_lecture_join_matches_rebuilt_ring),
    };
    return cmocka_run_group_tests_name("lecture", tests, NULL, NULL);
}
