/*
 * test_kv_known.c — the authority's known newest versions: which facts make
 * an entry, which carry it forward, and which end it, including writes and
 * reads that finish out of order and a forget that happens while an op is
 * still in flight.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "kv_known.h"

#include <stdio.h>
#include <string.h>

static const kv_version_t V1 = {100, 1}, V2 = {200, 1}, V3 = {300, 1}, NONE = {0, 0};

#define K(k) "key", 3

static kv_known_t *fresh(void)
{
    kv_known_t *k = kv_known_new(1u << 20);
    assert_non_null(k);
    kv_known_set_epoch(k, 7);
    return k;
}

static void test_empty_table_knows_nothing(void **state)
{
    (void)state;
    kv_known_t *k = fresh();
    assert_false(kv_known_check(k, K(), true, V1));
    assert_false(kv_known_check(k, K(), false, NONE));
    assert_int_equal(kv_known_misses(k), 2);
    assert_int_equal(kv_known_hits(k), 0);
    kv_known_destroy(&k);
    assert_null(k);
}

static void test_all_took_makes_an_entry_that_must_equal_our_copy(void **state)
{
    (void)state;
    kv_known_t *k = fresh();
    kv_known_all_took(k, K(), kv_known_ticket(k), V1);
    assert_true(kv_known_check(k, K(), true, V1));
    /* Our copy moved on (repair, a hint, a stream): no longer known. */
    assert_false(kv_known_check(k, K(), true, V2));
    assert_false(kv_known_check(k, K(), false, NONE));
    assert_int_equal(kv_known_hits(k), 1);
    assert_int_equal(kv_known_misses(k), 2);
    kv_known_destroy(&k);
}

static void test_written_carries_an_entry_forward_only(void **state)
{
    (void)state;
    kv_known_t *k = fresh();
    /* A quorum write alone says nothing about the replicas it did not reach. */
    kv_known_written(k, K(), kv_known_ticket(k), V1);
    assert_false(kv_known_check(k, K(), true, V1));
    kv_known_all_took(k, K(), kv_known_ticket(k), V1);
    kv_known_written(k, K(), kv_known_ticket(k), V2);
    assert_true(kv_known_check(k, K(), true, V2));
    /* A retry that rewrites an earlier attempt's (older) version does not move it back. */
    kv_known_written(k, K(), kv_known_ticket(k), V1);
    assert_true(kv_known_check(k, K(), true, V2));
    kv_known_destroy(&k);
}

static void test_late_all_took_does_not_move_an_entry_back(void **state)
{
    (void)state;
    kv_known_t *k = fresh();
    uint64_t t1 = kv_known_ticket(k);
    kv_known_all_took(k, K(), t1, V1);
    uint64_t t2 = kv_known_ticket(k), t3 = kv_known_ticket(k);
    kv_known_written(k, K(), t2, V2);
    kv_known_written(k, K(), t3, V3);
    /* The second write's last replica answers after the third was acknowledged. */
    kv_known_all_took(k, K(), t2, V2);
    assert_true(kv_known_check(k, K(), true, V3));
    kv_known_destroy(&k);
}

static void test_out_of_order_writes_recover_the_entry(void **state)
{
    (void)state;
    kv_known_t *k = fresh();
    /* Writes back to back, each started before the one before had all replicas. */
    uint64_t t1 = kv_known_ticket(k);
    uint64_t t2 = kv_known_ticket(k);
    kv_known_written(k, K(), t2, V2); /* no entry yet: nothing to carry */
    kv_known_all_took(k, K(), t1, V1);
    assert_false(kv_known_check(k, K(), true, V2)); /* entry V1, our copy V2 */
    kv_known_all_took(k, K(), t2, V2);
    assert_true(kv_known_check(k, K(), true, V2));
    kv_known_destroy(&k);
}

static void test_forget_while_an_op_runs_discards_what_it_learnt(void **state)
{
    (void)state;
    kv_known_t *k = fresh();
    kv_known_all_took(k, K(), kv_known_ticket(k), V1);
    uint64_t t = kv_known_ticket(k);
    kv_known_forget(k); /* e.g. another coordinator wrote to our range */
    assert_false(kv_known_check(k, K(), true, V1));
    kv_known_all_took(k, K(), t, V2);
    kv_known_written(k, K(), t, V2);
    kv_known_all_agree(k, K(), t, true, V2, true, V2);
    assert_false(kv_known_check(k, K(), true, V2));
    assert_int_equal(kv_known_count(k), 0);
    /* Even forgetting an empty table invalidates tickets taken before it. */
    t = kv_known_ticket(k);
    kv_known_forget(k);
    kv_known_all_took(k, K(), t, V2);
    assert_int_equal(kv_known_count(k), 0);
    kv_known_destroy(&k);
}

static void test_epoch_change_forgets(void **state)
{
    (void)state;
    kv_known_t *k = fresh();
    kv_known_all_took(k, K(), kv_known_ticket(k), V1);
    kv_known_set_epoch(k, 7); /* unchanged */
    assert_true(kv_known_check(k, K(), true, V1));
    uint64_t t = kv_known_ticket(k);
    kv_known_set_epoch(k, 8);
    assert_false(kv_known_check(k, K(), true, V1));
    kv_known_all_took(k, K(), t, V1);
    assert_int_equal(kv_known_count(k), 0);
    kv_known_destroy(&k);
}

static void test_all_agree(void **state)
{
    (void)state;
    kv_known_t *k = fresh();
    /* Our copy took a newer write after the replicas answered: not recorded. */
    kv_known_all_agree(k, K(), kv_known_ticket(k), true, V1, true, V2);
    assert_int_equal(kv_known_count(k), 0);
    kv_known_all_agree(k, K(), kv_known_ticket(k), true, V1, false, NONE);
    assert_int_equal(kv_known_count(k), 0);
    kv_known_all_agree(k, K(), kv_known_ticket(k), true, V1, true, V1);
    assert_true(kv_known_check(k, K(), true, V1));
    /* An entry already there is not replaced by a read's agreement. */
    kv_known_all_agree(k, K(), kv_known_ticket(k), true, V2, true, V2);
    assert_false(kv_known_check(k, K(), true, V2));
    /* Absent everywhere: known absent while our copy is absent too. */
    kv_known_all_agree(k, "other", 5, kv_known_ticket(k), false, NONE, false, NONE);
    assert_true(kv_known_check(k, "other", 5, false, NONE));
    assert_false(kv_known_check(k, "other", 5, true, V1));
    kv_known_destroy(&k);
}

static void test_drop_ends_one_key(void **state)
{
    (void)state;
    kv_known_t *k = fresh();
    kv_known_all_took(k, K(), kv_known_ticket(k), V1);
    kv_known_all_took(k, "other", 5, kv_known_ticket(k), V1);
    kv_known_drop(k, K());
    assert_false(kv_known_check(k, K(), true, V1));
    assert_true(kv_known_check(k, "other", 5, true, V1));
    /* A failed write dropped the entry: carrying forward needs a new fact. */
    kv_known_written(k, K(), kv_known_ticket(k), V2);
    assert_false(kv_known_check(k, K(), true, V2));
    kv_known_destroy(&k);
}

static void test_bounded(void **state)
{
    (void)state;
    kv_known_t *k = kv_known_new(16 * 1024);
    assert_non_null(k);
    char key[32];
    for (int i = 0; i < 10000; i++) {
        int n = snprintf(key, sizeof key, "key-%d", i);
        kv_known_all_took(k, key, (size_t)n, kv_known_ticket(k), V1);
    }
    assert_true(kv_known_count(k) > 0);
    assert_true(kv_known_count(k) < 1000);
    /* The newest entries stay. */
    int n = snprintf(key, sizeof key, "key-%d", 9999);
    assert_true(kv_known_check(k, key, (size_t)n, true, V1));
    kv_known_destroy(&k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_table_knows_nothing),
        cmocka_unit_test(test_all_took_makes_an_entry_that_must_equal_our_copy),
        cmocka_unit_test(test_written_carries_an_entry_forward_only),
        cmocka_unit_test(test_late_all_took_does_not_move_an_entry_back),
        cmocka_unit_test(test_out_of_order_writes_recover_the_entry),
        cmocka_unit_test(test_forget_while_an_op_runs_discards_what_it_learnt),
        cmocka_unit_test(test_epoch_change_forgets),
        cmocka_unit_test(test_all_agree),
        cmocka_unit_test(test_drop_ends_one_key),
        cmocka_unit_test(test_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
