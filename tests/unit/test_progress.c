/*
 * test_progress.c — dhtctl status's progress arithmetic: idle, the rate from
 * two samples of the cumulative counters, time left, counters that go
 * backwards, and the duration and size formats.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "progress.h"

static void test_idle(void **state)
{
    (void)state;
    progress_sample_t a = {0}, b = {0};
    progress_est_t e;
    progress_estimate(&a, &b, 1000, &e);
    assert_true(e.idle);
    assert_true(e.eta_known);
    assert_true(e.eta_s == 0);
    assert_true(e.rate_known);
    assert_true(e.keys_per_s == 0);
    /* A stream still comparing digests is not idle, even with nothing counted left. */
    b.streams = 1;
    progress_estimate(&a, &b, 1000, &e);
    assert_false(e.idle);
    assert_false(e.eta_known); /* its size is not known yet */
}

static void test_rate_and_eta(void **state)
{
    (void)state;
    progress_sample_t a = {.keys_left = 3000, .moved_keys = 100, .moved_bytes = 1000};
    progress_sample_t b = {.keys_left = 2000,
                           .bytes_left = 20000,
                           .streams = 2,
                           .moved_keys = 1100,
                           .moved_bytes = 11000};
    progress_est_t e;
    progress_estimate(&a, &b, 500, &e);
    assert_false(e.idle);
    assert_true(e.rate_known);
    assert_true(fabs(e.keys_per_s - 2000.0) < 1e-9);
    assert_true(fabs(e.bytes_per_s - 20000.0) < 1e-9);
    assert_true(e.eta_known);
    assert_true(fabs(e.eta_s - 1.0) < 1e-9);
}

static void test_no_rate(void **state)
{
    (void)state;
    progress_sample_t a = {.keys_left = 10, .moved_keys = 50};
    progress_sample_t b = {.keys_left = 10, .moved_keys = 50};
    progress_est_t e;
    /* One sample only. */
    progress_estimate(NULL, &b, 1000, &e);
    assert_false(e.rate_known);
    assert_false(e.eta_known);
    /* No time between them. */
    progress_estimate(&a, &b, 0, &e);
    assert_false(e.rate_known);
    /* Stalled: rate 0, time left unknown. */
    progress_estimate(&a, &b, 1000, &e);
    assert_true(e.rate_known);
    assert_true(e.keys_per_s == 0);
    assert_false(e.eta_known);
    /* A node restarted: its counters went back; no negative rate. */
    b.moved_keys = 3;
    progress_estimate(&a, &b, 1000, &e);
    assert_false(e.rate_known);
    assert_false(e.eta_known);
}

static void test_combine(void **state)
{
    (void)state;
    progress_sample_t total = {.keys_left = 900, .streams = 1};
    progress_est_t parts[3] = {
        {.rate_known = true, .keys_per_s = 100, .bytes_per_s = 1000},
        {.rate_known = false, .keys_per_s = 5000}, /* not comparable: left out */
        {.rate_known = true, .keys_per_s = 200, .bytes_per_s = 3000},
    };
    progress_est_t e;
    progress_combine(&total, parts, 3, &e);
    assert_false(e.idle);
    assert_true(e.rate_known);
    assert_true(fabs(e.keys_per_s - 300) < 1e-9);
    assert_true(fabs(e.bytes_per_s - 4000) < 1e-9);
    assert_true(e.eta_known && fabs(e.eta_s - 3.0) < 1e-9);
    progress_combine(&total, parts + 1, 1, &e);
    assert_false(e.rate_known);
    assert_false(e.eta_known);
    total = (progress_sample_t){0};
    progress_combine(&total, NULL, 0, &e);
    assert_true(e.idle && e.eta_known && e.eta_s == 0);
}

static void test_formats(void **state)
{
    (void)state;
    char buf[32];
    assert_string_equal(progress_duration(0, buf, sizeof buf), "0s");
    assert_string_equal(progress_duration(41.2, buf, sizeof buf), "42s");
    assert_string_equal(progress_duration(187, buf, sizeof buf), "3m07s");
    assert_string_equal(progress_duration(7500, buf, sizeof buf), "2h05m");
    assert_string_equal(progress_duration(86400 * 3 + 3600 * 4, buf, sizeof buf), "3d04h");
    assert_string_equal(progress_duration(-1, buf, sizeof buf), "unknown");
    assert_string_equal(progress_duration(NAN, buf, sizeof buf), "unknown");
    assert_string_equal(progress_bytes(512, buf, sizeof buf), "512 B");
    assert_string_equal(progress_bytes(1536, buf, sizeof buf), "1.5 KiB");
    assert_string_equal(progress_bytes(20.0 * 1024 * 1024, buf, sizeof buf), "20.0 MiB");
    assert_string_equal(progress_bytes(-5, buf, sizeof buf), "0 B");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idle),    cmocka_unit_test(test_rate_and_eta),
        cmocka_unit_test(test_no_rate), cmocka_unit_test(test_combine),
        cmocka_unit_test(test_formats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
