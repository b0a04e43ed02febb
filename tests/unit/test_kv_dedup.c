/*
 * test_kv_dedup.c — the coordinator's table of recent client writes:
 * a retry of a finished write gets the first outcome, a retry of a
 * running one its owner, and the bounds evict only finished entries.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdint.h>

#include "kv_dedup.h"

static kv_opid_t id(uint64_t client, uint64_t seq)
{
    return (kv_opid_t){client, seq};
}

static const kv_version_t V = {0x1234, 7};

static void test_kv_dedup_new_bounds(void **state)
{
    (void)state;
    assert_null(kv_dedup_new(0, 4));
    assert_null(kv_dedup_new(4, 0));
    kv_dedup_t *d = kv_dedup_new(1, 1);
    assert_non_null(d);
    kv_dedup_destroy(&d);
    assert_null(d);
    kv_dedup_destroy(&d);
}

static void test_kv_dedup_begin_insert_and_lookup(void **state)
{
    (void)state;
    kv_dedup_t *d = kv_dedup_new(8, 8);
    int owner;
    void *got = NULL;
    kv_dedup_outcome_t out;
    assert_int_equal(kv_dedup_peek(d, id(1, 1), NULL), KV_DEDUP_NEW);
    assert_int_equal(kv_dedup_begin(d, id(1, 1), &owner, &got, &out), KV_DEDUP_NEW);
    assert_int_equal(kv_dedup_peek(d, id(1, 1), NULL), KV_DEDUP_RUNNING);
    /* Another sequence number of the same client is another write. */
    assert_int_equal(kv_dedup_peek(d, id(1, 2), NULL), KV_DEDUP_NEW);
    /* The same sequence number of another client too. */
    assert_int_equal(kv_dedup_peek(d, id(2, 1), NULL), KV_DEDUP_NEW);
    assert_int_equal(kv_dedup_finish(d, id(1, 1), 0, V), 0);
    assert_int_equal(kv_dedup_begin(d, id(1, 1), NULL, &got, &out), KV_DEDUP_DONE);
    assert_int_equal(out.rc, 0);
    assert_true(kv_version_cmp(out.version, V) == 0);
    assert_int_equal(kv_dedup_clients(d), 1);
    assert_int_equal(kv_dedup_entries(d), 1);
    kv_dedup_destroy(&d);
}

static void test_kv_dedup_begin_retry_joins_running(void **state)
{
    (void)state;
    kv_dedup_t *d = kv_dedup_new(8, 8);
    int first, second;
    void *got = NULL;
    assert_int_equal(kv_dedup_begin(d, id(5, 9), &first, &got, NULL), KV_DEDUP_NEW);
    /* The retry arrives while the first attempt is queued or running. */
    assert_int_equal(kv_dedup_begin(d, id(5, 9), &second, &got, NULL), KV_DEDUP_RUNNING);
    assert_ptr_equal(got, &first);
    /* Once it ends, a further retry gets its outcome (errors too). */
    assert_int_equal(kv_dedup_finish(d, id(5, 9), -ESTALE, V), 0);
    kv_dedup_outcome_t out;
    assert_int_equal(kv_dedup_begin(d, id(5, 9), &second, &got, &out), KV_DEDUP_DONE);
    assert_int_equal(out.rc, -ESTALE);
    assert_true(kv_version_is_zero(out.version));
    /* Finishing twice is a caller's mistake, reported. */
    assert_int_equal(kv_dedup_finish(d, id(5, 9), 0, V), -ENOENT);
    assert_int_equal(kv_dedup_finish(d, id(5, 10), 0, V), -ENOENT);
    kv_dedup_destroy(&d);
}

static void test_kv_dedup_begin_unset_id(void **state)
{
    (void)state;
    kv_dedup_t *d = kv_dedup_new(8, 8);
    assert_int_equal(kv_dedup_begin(d, id(0, 1), NULL, NULL, NULL), -EINVAL);
    assert_int_equal(kv_dedup_entries(d), 0);
    kv_dedup_destroy(&d);
}

static void test_kv_dedup_per_client_evicts_oldest_done(void **state)
{
    (void)state;
    kv_dedup_t *d = kv_dedup_new(8, 3);
    for (uint64_t s = 1; s <= 3; s++) {
        assert_int_equal(kv_dedup_begin(d, id(1, s), NULL, NULL, NULL), KV_DEDUP_NEW);
        assert_int_equal(kv_dedup_finish(d, id(1, s), 0, V), 0);
    }
    /* A fourth write pushes out the oldest: seq 1. */
    assert_int_equal(kv_dedup_begin(d, id(1, 4), NULL, NULL, NULL), KV_DEDUP_NEW);
    assert_int_equal(kv_dedup_peek(d, id(1, 1), NULL), KV_DEDUP_NEW);
    assert_int_equal(kv_dedup_peek(d, id(1, 2), NULL), KV_DEDUP_DONE);
    assert_int_equal(kv_dedup_entries(d), 3);
    /* Running entries are never evicted: 4 stays; 2 then 3 go. */
    assert_int_equal(kv_dedup_begin(d, id(1, 5), NULL, NULL, NULL), KV_DEDUP_NEW);
    assert_int_equal(kv_dedup_begin(d, id(1, 6), NULL, NULL, NULL), KV_DEDUP_NEW);
    assert_int_equal(kv_dedup_peek(d, id(1, 2), NULL), KV_DEDUP_NEW);
    assert_int_equal(kv_dedup_peek(d, id(1, 3), NULL), KV_DEDUP_NEW);
    assert_int_equal(kv_dedup_peek(d, id(1, 4), NULL), KV_DEDUP_RUNNING);
    /* All three running: a new write of this client is refused, not run. */
    assert_int_equal(kv_dedup_begin(d, id(1, 7), NULL, NULL, NULL), -EAGAIN);
    /* Other clients are not affected. */
    assert_int_equal(kv_dedup_begin(d, id(2, 7), NULL, NULL, NULL), KV_DEDUP_NEW);
    /* A retry of a running one still joins it. */
    assert_int_equal(kv_dedup_begin(d, id(1, 4), NULL, NULL, NULL), KV_DEDUP_RUNNING);
    kv_dedup_destroy(&d);
}

static void test_kv_dedup_clients_lru(void **state)
{
    (void)state;
    kv_dedup_t *d = kv_dedup_new(3, 4);
    for (uint64_t c = 1; c <= 3; c++) {
        assert_int_equal(kv_dedup_begin(d, id(c, 1), NULL, NULL, NULL), KV_DEDUP_NEW);
        assert_int_equal(kv_dedup_finish(d, id(c, 1), 0, V), 0);
    }
    /* Client 1 is used again, so client 2 is now the least recent. */
    assert_int_equal(kv_dedup_begin(d, id(1, 1), NULL, NULL, NULL), KV_DEDUP_DONE);
    assert_int_equal(kv_dedup_begin(d, id(4, 1), NULL, NULL, NULL), KV_DEDUP_NEW);
    assert_int_equal(kv_dedup_clients(d), 3);
    assert_int_equal(kv_dedup_peek(d, id(2, 1), NULL), KV_DEDUP_NEW);
    assert_int_equal(kv_dedup_peek(d, id(1, 1), NULL), KV_DEDUP_DONE);
    assert_int_equal(kv_dedup_peek(d, id(3, 1), NULL), KV_DEDUP_DONE);
    /* A client with a running write is not evicted: 3 is idle and goes. */
    assert_int_equal(kv_dedup_begin(d, id(1, 2), NULL, NULL, NULL), KV_DEDUP_NEW);
    assert_int_equal(kv_dedup_begin(d, id(5, 1), NULL, NULL, NULL), KV_DEDUP_NEW);
    assert_int_equal(kv_dedup_peek(d, id(3, 1), NULL), KV_DEDUP_NEW);
    assert_int_equal(kv_dedup_peek(d, id(1, 2), NULL), KV_DEDUP_RUNNING);
    /* 1, 4 and 5 all running: no room for a sixth client. */
    assert_int_equal(kv_dedup_begin(d, id(6, 1), NULL, NULL, NULL), -EAGAIN);
    assert_int_equal(kv_dedup_clients(d), 3);
    assert_int_equal(kv_dedup_finish(d, id(4, 1), 0, V), 0);
    assert_int_equal(kv_dedup_begin(d, id(6, 1), NULL, NULL, NULL), KV_DEDUP_NEW);
    assert_int_equal(kv_dedup_peek(d, id(4, 1), NULL), KV_DEDUP_NEW);
    kv_dedup_destroy(&d);
}

static void test_kv_dedup_forget(void **state)
{
    (void)state;
    kv_dedup_t *d = kv_dedup_new(4, 4);
    assert_int_equal(kv_dedup_begin(d, id(1, 1), NULL, NULL, NULL), KV_DEDUP_NEW);
    assert_int_equal(kv_dedup_begin(d, id(1, 2), NULL, NULL, NULL), KV_DEDUP_NEW);
    assert_int_equal(kv_dedup_finish(d, id(1, 2), -ETIMEDOUT, V), 0);
    /* A running write forgotten (no quorum: outcome unknown) may run again. */
    assert_int_equal(kv_dedup_forget(d, id(1, 1)), 0);
    assert_int_equal(kv_dedup_begin(d, id(1, 1), NULL, NULL, NULL), KV_DEDUP_NEW);
    assert_int_equal(kv_dedup_forget(d, id(1, 2)), 0);
    assert_int_equal(kv_dedup_forget(d, id(1, 2)), -ENOENT);
    assert_int_equal(kv_dedup_forget(d, id(1, 1)), 0);
    /* The client's last entry gone, the client is gone. */
    assert_int_equal(kv_dedup_clients(d), 0);
    assert_int_equal(kv_dedup_entries(d), 0);
    kv_dedup_destroy(&d);
}

/* Many clients through a small table: counts stay within the bounds. */
static void test_kv_dedup_bounds_hold_under_churn(void **state)
{
    (void)state;
    kv_dedup_t *d = kv_dedup_new(16, 8);
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        kv_opid_t o = id(1 + x % 40, (x >> 8) % 32);
        int rc = kv_dedup_begin(d, o, NULL, NULL, NULL);
        assert_true(rc == KV_DEDUP_NEW || rc == KV_DEDUP_DONE || rc == KV_DEDUP_RUNNING ||
                    rc == -EAGAIN);
        if (rc == KV_DEDUP_NEW || rc == KV_DEDUP_RUNNING) {
            if ((x >> 20) % 4 == 0)
                kv_dedup_forget(d, o);
            else
                kv_dedup_finish(d, o, 0, V);
        }
        assert_true(kv_dedup_clients(d) <= 16);
        assert_true(kv_dedup_entries(d) <= 16 * 8);
    }
    kv_dedup_destroy(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kv_dedup_new_bounds),
        cmocka_unit_test(test_kv_dedup_begin_insert_and_lookup),
        cmocka_unit_test(test_kv_dedup_begin_retry_joins_running),
        cmocka_unit_test(test_kv_dedup_begin_unset_id),
        cmocka_unit_test(test_kv_dedup_per_client_evicts_oldest_done),
        cmocka_unit_test(test_kv_dedup_clients_lru),
        cmocka_unit_test(test_kv_dedup_forget),
        cmocka_unit_test(test_kv_dedup_bounds_hold_under_churn),
    };
    return cmocka_run_group_tests_name("kv_dedup", tests, NULL, NULL);
}
