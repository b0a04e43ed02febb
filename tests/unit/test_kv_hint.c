/*
 * test_kv_hint.c — the hinted hand-off queue: order, the window, the
 * bound and what overflow loses, merging a rewritten key, back-off after
 * failures and its reset, and clearing with hints in flight.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kv_hint.h"

static kv_version_t ver(uint64_t hlc)
{
    kv_version_t v = {hlc, 7};
    return v;
}

static int push(kv_hintq_t *q, const char *key, uint64_t hlc)
{
    return kv_hintq_push(q, (const uint8_t *)key, strlen(key), ver(hlc));
}

static void assert_key(const kv_hint_t *h, const char *key)
{
    assert_non_null(h);
    assert_int_equal(h->key_len, strlen(key));
    assert_memory_equal(h->key, key, h->key_len);
}

static void test_kv_hintq_new_bad_args(void **state)
{
    (void)state;
    assert_null(kv_hintq_new(0, 4, 10, 100));
    assert_null(kv_hintq_new(4, 0, 10, 100));
}

static void test_kv_hintq_fifo_and_window(void **state)
{
    (void)state;
    kv_hintq_t *q = kv_hintq_new(10, 2, 10, 100);
    assert_int_equal(push(q, "a", 1), 0);
    assert_int_equal(push(q, "b", 2), 0);
    assert_int_equal(push(q, "c", 3), 0);
    assert_int_equal(kv_hintq_len(q), 3);
    kv_hint_t *a = kv_hintq_take(q, 0), *b = kv_hintq_take(q, 0);
    assert_key(a, "a");
    assert_key(b, "b");
    assert_null(kv_hintq_take(q, 0)); /* window of 2 full */
    assert_int_equal(kv_hintq_due_ms(q, 0), UINT64_MAX);
    assert_int_equal(kv_hintq_inflight(q), 2);
    kv_hintq_done(q, a, true, 0);
    assert_int_equal(kv_hintq_due_ms(q, 5), 5);
    kv_hint_t *c = kv_hintq_take(q, 0);
    assert_key(c, "c");
    kv_hintq_done(q, b, true, 0);
    kv_hintq_done(q, c, true, 0);
    assert_int_equal(kv_hintq_len(q), 0);
    assert_null(kv_hintq_take(q, 0));
    assert_int_equal(kv_hintq_due_ms(q, 0), UINT64_MAX);
    assert_int_equal(kv_hintq_lost(q), 0);
    kv_hintq_destroy(&q);
    assert_null(q);
}

static void test_kv_hintq_bound_counts_in_flight(void **state)
{
    (void)state;
    kv_hintq_t *q = kv_hintq_new(2, 4, 10, 100);
    assert_int_equal(push(q, "a", 1), 0);
    kv_hint_t *a = kv_hintq_take(q, 0);
    assert_int_equal(push(q, "b", 1), 0);
    assert_int_equal(push(q, "c", 1), -ENOSPC);
    assert_int_equal(kv_hintq_lost(q), 1);
    kv_hintq_done(q, a, true, 0);
    assert_int_equal(push(q, "c", 1), 0);
    assert_int_equal(kv_hintq_len(q), 2);
    assert_int_equal(kv_hintq_push(q, (const uint8_t *)"", 0, ver(1)), -EINVAL);
    kv_hintq_destroy(&q);
}

static void test_kv_hintq_merges_rewritten_key(void **state)
{
    (void)state;
    kv_hintq_t *q = kv_hintq_new(1, 4, 10, 100);
    assert_int_equal(push(q, "k", 5), 0);
    assert_int_equal(push(q, "k", 9), 0); /* merged: no room needed */
    assert_int_equal(push(q, "k", 3), 0); /* older: the newer one stays */
    assert_int_equal(kv_hintq_len(q), 1);
    kv_hint_t *h = kv_hintq_take(q, 0);
    assert_key(h, "k");
    assert_int_equal(h->version.hlc, 9);
    /* In flight, it is no longer the tail: a new write queues anew. */
    assert_int_equal(push(q, "k", 10), -ENOSPC);
    kv_hintq_done(q, h, true, 0);
    kv_hintq_destroy(&q);
}

static void test_kv_hintq_backoff_doubles_and_resets(void **state)
{
    (void)state;
    kv_hintq_t *q = kv_hintq_new(10, 4, 10, 35);
    push(q, "a", 1);
    push(q, "b", 1);
    kv_hint_t *a = kv_hintq_take(q, 100);
    kv_hintq_done(q, a, false, 100);
    assert_null(kv_hintq_take(q, 109));
    assert_int_equal(kv_hintq_due_ms(q, 100), 110);
    a = kv_hintq_take(q, 110);
    assert_key(a, "a"); /* back at the head */
    kv_hintq_done(q, a, false, 110);
    assert_int_equal(kv_hintq_due_ms(q, 110), 130); /* 20 ms */
    a = kv_hintq_take(q, 130);
    kv_hintq_done(q, a, false, 130);
    assert_int_equal(kv_hintq_due_ms(q, 130), 165); /* capped at 35 */
    a = kv_hintq_take(q, 165);
    kv_hintq_done(q, a, true, 165);
    assert_int_equal(kv_hintq_due_ms(q, 166), 166); /* reset */
    kv_hint_t *b = kv_hintq_take(q, 166);
    assert_key(b, "b");
    kv_hintq_done(q, b, true, 166);
    assert_int_equal(kv_hintq_lost(q), 0);
    kv_hintq_destroy(&q);
}

static void test_kv_hintq_clear_drops_queued_and_failed_in_flight(void **state)
{
    (void)state;
    kv_hintq_t *q = kv_hintq_new(10, 4, 10, 100);
    push(q, "a", 1);
    push(q, "b", 1);
    push(q, "c", 1);
    kv_hint_t *a = kv_hintq_take(q, 0), *b = kv_hintq_take(q, 0);
    assert_int_equal(kv_hintq_clear(q), 1);
    assert_int_equal(kv_hintq_len(q), 2);
    kv_hintq_done(q, a, false, 0); /* dropped, not requeued */
    kv_hintq_done(q, b, true, 0);
    assert_int_equal(kv_hintq_len(q), 0);
    assert_int_equal(kv_hintq_lost(q), 2);
    /* Hints queued after the clear are delivered as usual. */
    push(q, "d", 1);
    kv_hint_t *d = kv_hintq_take(q, 0);
    kv_hintq_done(q, d, false, 0);
    assert_int_equal(kv_hintq_len(q), 1);
    kv_hintq_destroy(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kv_hintq_new_bad_args),
        cmocka_unit_test(test_kv_hintq_fifo_and_window),
        cmocka_unit_test(test_kv_hintq_bound_counts_in_flight),
        cmocka_unit_test(test_kv_hintq_merges_rewritten_key),
        cmocka_unit_test(test_kv_hintq_backoff_doubles_and_resets),
        cmocka_unit_test(test_kv_hintq_clear_drops_queued_and_failed_in_flight),
    };
    return cmocka_run_group_tests_name("kv_hint", tests, NULL, NULL);
}
