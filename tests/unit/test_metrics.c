/*
 * test_metrics.c — the Prometheus text format: HELP/TYPE lines, samples
 * with and without labels, escaping of label values and help text,
 * histograms (cumulative buckets, +Inf, _sum/_count, labels before le),
 * doubles (shortest exact form, NaN/Inf), names.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "metrics.h"

static void test_family_help_type(void **state)
{
    (void)state;
    mx_buf_t b;
    mx_buf_init(&b);
    mx_family(&b, "kvnode_requests_total", MX_COUNTER, "Requests served.");
    mx_family(&b, "kvnode_keys", MX_GAUGE, "Keys stored.");
    mx_family(&b, "kvnode_op_seconds", MX_HISTOGRAM, "Latency.");
    assert_false(mx_buf_failed(&b));
    assert_string_equal(b.data, "# HELP kvnode_requests_total Requests served.\n"
                                "# TYPE kvnode_requests_total counter\n"
                                "# HELP kvnode_keys Keys stored.\n"
                                "# TYPE kvnode_keys gauge\n"
                                "# HELP kvnode_op_seconds Latency.\n"
                                "# TYPE kvnode_op_seconds histogram\n");
    assert_int_equal(b.len, strlen(b.data));
    mx_buf_free(&b);
    assert_null(b.data);
}

static void test_sample_labels(void **state)
{
    (void)state;
    mx_buf_t b;
    mx_buf_init(&b);
    mx_sample_u64(&b, "a_total", NULL, 0, 18446744073709551615ull);
    mx_label_t l[2] = {{"type", "KV_GET"}, {"code", "EIO"}};
    mx_sample_u64(&b, "b_total", l, 2, 7);
    mx_sample_double(&b, "c", l, 1, 0.25);
    assert_string_equal(b.data, "a_total 18446744073709551615\n"
                                "b_total{type=\"KV_GET\",code=\"EIO\"} 7\n"
                                "c{type=\"KV_GET\"} 0.25\n");
    mx_buf_free(&b);
}

static void test_escaping(void **state)
{
    (void)state;
    mx_buf_t b;
    mx_buf_init(&b);
    mx_family(&b, "x", MX_GAUGE, "back\\slash \"quotes\" and\nnewline");
    mx_label_t l[1] = {{"path", "a\\b\"c\nd"}};
    mx_sample_u64(&b, "x", l, 1, 1);
    /* HELP escapes \ and newline but not "; label values all three. */
    assert_string_equal(b.data, "# HELP x back\\\\slash \"quotes\" and\\nnewline\n"
                                "# TYPE x gauge\n"
                                "x{path=\"a\\\\b\\\"c\\nd\"} 1\n");
    mx_buf_free(&b);
}

static const double bounds[] = {0.001, 0.005, 0.1, 1};

static void test_hist_cumulative(void **state)
{
    (void)state;
    mx_hist_t h;
    mx_hist_init(&h, bounds, 4);
    mx_hist_observe(&h, 0.0005); /* le 0.001 */
    mx_hist_observe(&h, 0.001);  /* on the bound: le 0.001 */
    mx_hist_observe(&h, 0.05);   /* le 0.1 */
    mx_hist_observe(&h, 7);      /* only +Inf */
    assert_int_equal(h.count, 4);
    mx_buf_t b;
    mx_buf_init(&b);
    mx_label_t l[1] = {{"op", "get"}};
    mx_hist_write(&b, "lat_seconds", l, 1, &h);
    assert_string_equal(b.data, "lat_seconds_bucket{op=\"get\",le=\"0.001\"} 2\n"
                                "lat_seconds_bucket{op=\"get\",le=\"0.005\"} 2\n"
                                "lat_seconds_bucket{op=\"get\",le=\"0.1\"} 3\n"
                                "lat_seconds_bucket{op=\"get\",le=\"1\"} 3\n"
                                "lat_seconds_bucket{op=\"get\",le=\"+Inf\"} 4\n"
                                "lat_seconds_sum{op=\"get\"} 7.0515\n"
                                "lat_seconds_count{op=\"get\"} 4\n");
    mx_buf_free(&b);
}

static void test_hist_no_labels_empty(void **state)
{
    (void)state;
    mx_hist_t h;
    mx_hist_init(&h, bounds, 1);
    mx_buf_t b;
    mx_buf_init(&b);
    mx_hist_write(&b, "h", NULL, 0, &h);
    assert_string_equal(b.data, "h_bucket{le=\"0.001\"} 0\n"
                                "h_bucket{le=\"+Inf\"} 0\n"
                                "h_sum 0\n"
                                "h_count 0\n");
    mx_buf_free(&b);
}

static void test_doubles(void **state)
{
    (void)state;
    mx_buf_t b;
    mx_buf_init(&b);
    mx_sample_double(&b, "a", NULL, 0, NAN);
    mx_sample_double(&b, "a", NULL, 0, INFINITY);
    mx_sample_double(&b, "a", NULL, 0, -INFINITY);
    mx_sample_double(&b, "a", NULL, 0, 0.1 + 0.2); /* needs 17 digits to read back */
    mx_sample_double(&b, "a", NULL, 0, 1e300);
    assert_string_equal(b.data, "a NaN\na +Inf\na -Inf\na 0.30000000000000004\na 1e+300\n");
    mx_buf_free(&b);
}

static void test_growth(void **state)
{
    (void)state;
    mx_buf_t b;
    mx_buf_init(&b);
    char value[200];
    memset(value, 'v', sizeof value - 1);
    value[sizeof value - 1] = '\0';
    mx_label_t l[1] = {{"k", value}};
    for (int i = 0; i < 1000; i++)
        mx_sample_u64(&b, "big", l, 1, (uint64_t)i);
    assert_false(mx_buf_failed(&b));
    assert_int_equal(b.len, strlen(b.data));
    assert_non_null(strstr(b.data, "} 999\n"));
    mx_buf_free(&b);
}

static void test_name_ok(void **state)
{
    (void)state;
    assert_true(mx_name_ok("kvnode_requests_total"));
    assert_true(mx_name_ok("_x9"));
    assert_false(mx_name_ok("9x"));
    assert_false(mx_name_ok(""));
    assert_false(mx_name_ok("a-b"));
    assert_false(mx_name_ok("a b"));
    assert_false(mx_name_ok(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_family_help_type),
        cmocka_unit_test(test_sample_labels),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_hist_cumulative),
        cmocka_unit_test(test_hist_no_labels_empty),
        cmocka_unit_test(test_doubles),
        cmocka_unit_test(test_growth),
        cmocka_unit_test(test_name_ok),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
