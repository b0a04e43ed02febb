/*
 * test_ring_members.c — the member table: validation, merge by incarnation
 * in any order, the own entry's refutation, graceful leave marks, the
 * epoch, paging cursors and the size bound.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ring_members.h"

static ring_member_t entry(ring_id_t id, uint32_t weight, const char *zone, uint64_t inc)
{
    ring_member_t e;
    memset(&e, 0, sizeof e);
    e.id = id;
    snprintf(e.addr, sizeof e.addr, "tcp://127.0.0.1:%u", (unsigned)(7000 + id % 1000));
    e.weight = weight;
    snprintf(e.zone, sizeof e.zone, "%s", zone);
    e.state = RING_MEMBER_UP;
    e.incarnation = inc;
    return e;
}

static ring_members_t *table(ring_id_t self, size_t cap)
{
    ring_member_t me = entry(self, 1, "", 100);
    ring_members_t *t = NULL;
    assert_int_equal(ring_members_new(&me, 64, cap, &t), 0);
    return t;
}

static void test_ring_members_zone_valid(void **state)
{
    (void)state;
    assert_true(ring_members_zone_valid(""));
    assert_true(ring_members_zone_valid("rack-1.a_b"));
    assert_true(ring_members_zone_valid("0123456789012345678901234567890")); /* 31 */
    assert_false(ring_members_zone_valid("01234567890123456789012345678901"));
    assert_false(ring_members_zone_valid("a b"));
    assert_false(ring_members_zone_valid("a/b"));
    assert_false(ring_members_zone_valid(NULL));
    assert_int_equal(ring_members_zone_hash(""), 0);
    assert_int_not_equal(ring_members_zone_hash("a"), 0);
    assert_int_not_equal(ring_members_zone_hash("a"), ring_members_zone_hash("b"));
    assert_int_equal(ring_members_zone_hash("rack1"), ring_members_zone_hash("rack1"));
}

static void test_ring_members_new_invalid(void **state)
{
    (void)state;
    ring_members_t *t = NULL;
    ring_member_t e = entry(5, 0, "", 1);
    assert_int_equal(ring_members_new(&e, 64, 0, &t), -EINVAL);
    e = entry(5, RING_MEMBERS_WEIGHT_MAX + 1, "", 1);
    assert_int_equal(ring_members_new(&e, 64, 0, &t), -EINVAL);
    e = entry(64, 1, "", 1); /* not below 2^6 */
    assert_int_equal(ring_members_new(&e, 6, 0, &t), -EINVAL);
    e = entry(5, 1, "bad zone", 1);
    assert_int_equal(ring_members_new(&e, 64, 0, &t), -EINVAL);
    e = entry(5, 1, "", 1);
    e.addr[0] = '\0';
    assert_int_equal(ring_members_new(&e, 64, 0, &t), -EINVAL);
    e = entry(5, 1, "", 1);
    e.state = 4;
    assert_int_equal(ring_members_new(&e, 64, 0, &t), -EINVAL);
    e = entry(5, 1, "", RING_MEMBERS_INCARNATION_LIMIT);
    assert_int_equal(ring_members_new(&e, 64, 0, &t), -EINVAL);
    assert_null(t);
    ring_members_destroy(&t); /* NULL is fine */
}

static void test_ring_members_merge_by_incarnation(void **state)
{
    (void)state;
    ring_members_t *t = table(50, 0);
    ring_member_t a = entry(10, 2, "z1", 7);
    assert_int_equal(ring_members_merge(t, &a), 1);
    assert_int_equal(ring_members_merge(t, &a), 0); /* the same again */
    assert_int_equal(ring_members_count(t), 2);
    assert_int_equal(ring_members_find(t, 10)->weight, 2);
    assert_int_equal(ring_members_find(t, 10)->zone_hash, ring_members_zone_hash("z1"));
    /* Older: ignored. Newer: replaces. */
    ring_member_t old = entry(10, 5, "z9", 6);
    assert_int_equal(ring_members_merge(t, &old), 0);
    assert_int_equal(ring_members_find(t, 10)->weight, 2);
    ring_member_t nw = entry(10, 3, "z2", 8);
    assert_int_equal(ring_members_merge(t, &nw), 1);
    assert_int_equal(ring_members_find(t, 10)->weight, 3);
    assert_string_equal(ring_members_find(t, 10)->zone, "z2");
    /* Invalid entries change nothing. */
    ring_member_t bad = entry(11, 0, "", 1);
    assert_int_equal(ring_members_merge(t, &bad), -EINVAL);
    assert_int_equal(ring_members_count(t), 2);
    ring_members_destroy(&t);
    assert_null(t);
}

/* Every order of the same merges gives the same table and epoch. */
static void test_ring_members_merge_converges(void **state)
{
    (void)state;
    ring_member_t es[6] = {
        entry(10, 1, "a", 1), entry(10, 2, "a", 2),
        entry(20, 1, "b", 5), entry(20, 1, "c", 5), /* a tie: decided by content */
        entry(30, 4, "", 1),  entry(10, 1, "a", 1),
    };
    es[4].state = RING_MEMBER_LEAVING;
    ring_members_t *x = table(50, 0), *y = table(50, 0);
    for (int i = 0; i < 6; i++)
        ring_members_merge(x, &es[i]);
    for (int i = 5; i >= 0; i--)
        ring_members_merge(y, &es[i]);
    assert_int_equal(ring_members_count(x), 4);
    assert_int_equal(ring_members_count(y), 4);
    assert_true(ring_members_epoch(x) == ring_members_epoch(y));
    assert_int_equal(ring_members_find(x, 10)->weight, 2);
    assert_string_equal(ring_members_find(x, 20)->zone, ring_members_find(y, 20)->zone);
    /* A state change at the same incarnation: the later state wins. */
    ring_member_t up = entry(30, 4, "", 1);
    assert_int_equal(ring_members_merge(x, &up), 0);
    assert_int_equal(ring_members_find(x, 30)->state, RING_MEMBER_LEAVING);
    ring_members_destroy(&x);
    ring_members_destroy(&y);
}

static void test_ring_members_self_refutes(void **state)
{
    (void)state;
    ring_members_t *t = table(50, 0);
    ring_member_t me = *ring_members_self(t);
    /* Our own entry as we publish it: no change. */
    assert_int_equal(ring_members_merge(t, &me), 0);
    /* A stale copy from an earlier run with a higher incarnation, marked left. */
    ring_member_t ghost = me;
    ghost.incarnation = UINT64_MAX; /* cannot be refuted without wrapping: refused */
    assert_int_equal(ring_members_merge(t, &ghost), -EINVAL);
    ghost.incarnation = 500;
    ghost.state = RING_MEMBER_LEFT;
    ghost.weight = 9;
    assert_int_equal(ring_members_merge(t, &ghost), 1);
    const ring_member_t *s = ring_members_self(t);
    assert_int_equal(s->state, RING_MEMBER_UP);
    assert_int_equal(s->weight, 1);
    assert_true(s->incarnation == 501);
    /* Others cannot mark us left either. */
    assert_int_equal(ring_members_mark_left(t, 50), 0);
    ring_members_destroy(&t);
}

static void test_ring_members_leave(void **state)
{
    (void)state;
    ring_members_t *t = table(50, 0);
    ring_member_t a = entry(10, 1, "", 7);
    ring_members_merge(t, &a);
    uint64_t e0 = ring_members_epoch(t);
    assert_int_equal(ring_members_mark_left(t, 10), 1);
    assert_int_equal(ring_members_find(t, 10)->state, RING_MEMBER_LEFT);
    assert_true(ring_members_find(t, 10)->incarnation == 8);
    assert_true(ring_members_epoch(t) != e0);
    assert_int_equal(ring_members_mark_left(t, 10), 0); /* already */
    assert_int_equal(ring_members_mark_left(t, 99), 0); /* unknown */
    /* The leaver's own published copy (its last one) does not revive it. */
    assert_int_equal(ring_members_merge(t, &a), 0);
    a.state = RING_MEMBER_LEAVING;
    a.incarnation = 8;
    assert_int_equal(ring_members_merge(t, &a), 0);
    assert_int_equal(ring_members_find(t, 10)->state, RING_MEMBER_LEFT);
    /* A restart of it (new incarnation) does. */
    ring_member_t back = entry(10, 1, "", 1000);
    assert_int_equal(ring_members_merge(t, &back), 1);
    assert_int_equal(ring_members_find(t, 10)->state, RING_MEMBER_UP);
    /* Our own graceful leave. */
    assert_int_equal(ring_members_set_self_state(t, RING_MEMBER_LEAVING), 0);
    assert_int_equal(ring_members_self(t)->state, RING_MEMBER_LEAVING);
    assert_true(ring_members_self(t)->incarnation == 101);
    assert_int_equal(ring_members_set_self_state(t, 9), -EINVAL);
    ring_members_destroy(&t);
}

static void test_ring_members_epoch(void **state)
{
    (void)state;
    ring_members_t *x = table(50, 0), *y = table(50, 0);
    assert_true(ring_members_epoch(x) == ring_members_epoch(y));
    ring_member_t a = entry(10, 1, "", 7);
    ring_members_merge(x, &a);
    assert_true(ring_members_epoch(x) != ring_members_epoch(y));
    ring_members_merge(y, &a);
    assert_true(ring_members_epoch(x) == ring_members_epoch(y));
    /* Every field counts: the zone. */
    ring_member_t b = entry(20, 1, "z", 7), c = entry(20, 1, "y", 7);
    ring_members_merge(x, &b);
    ring_members_merge(y, &c);
    uint64_t ex = ring_members_epoch(x), ey = ring_members_epoch(y);
    assert_true(ex != ey);
    assert_true(ring_members_epoch(x) == ex); /* cached, stable */
    ring_members_destroy(&x);
    ring_members_destroy(&y);
}

static void test_ring_members_paging(void **state)
{
    (void)state;
    ring_members_t *t = table(50, 0);
    ring_id_t ids[] = {90, 10, 70, 30};
    for (int i = 0; i < 4; i++) {
        ring_member_t e = entry(ids[i], 1, "", 1);
        ring_members_merge(t, &e);
    }
    assert_int_equal(ring_members_count(t), 5);
    ring_id_t want[] = {10, 30, 50, 70, 90};
    for (size_t i = 0; i < 5; i++)
        assert_true(ring_members_at(t, i)->id == want[i]);
    assert_null(ring_members_at(t, 5));
    assert_int_equal(ring_members_index_after(t, true, 0), 0);
    assert_int_equal(ring_members_index_after(t, false, 30), 2);
    assert_int_equal(ring_members_index_after(t, false, 31), 2);
    assert_int_equal(ring_members_index_after(t, false, 5), 0);
    assert_int_equal(ring_members_index_after(t, false, 90), 5);
    ring_members_destroy(&t);
}

static void test_ring_members_bounded(void **state)
{
    (void)state;
    ring_members_t *t = table(50, 3);
    ring_member_t a = entry(10, 1, "", 1), b = entry(20, 1, "", 1), c = entry(30, 1, "", 1);
    assert_int_equal(ring_members_merge(t, &a), 1);
    assert_int_equal(ring_members_merge(t, &b), 1);
    assert_int_equal(ring_members_merge(t, &c), -ENOSPC);
    /* An update of a known entry still fits. */
    b.incarnation = 2;
    assert_int_equal(ring_members_merge(t, &b), 1);
    /* A left entry makes room. */
    assert_int_equal(ring_members_mark_left(t, 10), 1);
    assert_int_equal(ring_members_merge(t, &c), 1);
    assert_int_equal(ring_members_count(t), 3);
    assert_null(ring_members_find(t, 10));
    assert_non_null(ring_members_find(t, 30));
    assert_non_null(ring_members_self(t));
    ring_members_destroy(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_members_zone_valid),
        cmocka_unit_test(test_ring_members_new_invalid),
        cmocka_unit_test(test_ring_members_merge_by_incarnation),
        cmocka_unit_test(test_ring_members_merge_converges),
        cmocka_unit_test(test_ring_members_self_refutes),
        cmocka_unit_test(test_ring_members_leave),
        cmocka_unit_test(test_ring_members_epoch),
        cmocka_unit_test(test_ring_members_paging),
        cmocka_unit_test(test_ring_members_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
