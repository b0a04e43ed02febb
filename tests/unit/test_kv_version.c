/*
 * test_kv_version.c — version ordering, the textual form, and the hybrid
 * logical clock.
 *
 * Clock readings are (wall_ms << 16) + logical counter; the cases below feed
 * wall times that go forwards, stand still and go backwards, and fold in
 * remote readings, and check the one promise that matters for replication:
 * every tick is strictly greater than anything returned or observed before.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "kv_version.h"

static kv_version_t ver(uint64_t hlc, uint64_t node)
{
    kv_version_t v = {hlc, node};
    return v;
}

static uint64_t phys(uint64_t wall_ms)
{
    return wall_ms << 16;
}

static void test_kv_version_cmp_hlc_first(void **state)
{
    (void)state;
    /* A larger hlc wins whatever the nodes. */
    assert_true(kv_version_cmp(ver(1, UINT64_MAX), ver(2, 0)) < 0);
    assert_true(kv_version_cmp(ver(2, 0), ver(1, UINT64_MAX)) > 0);
    assert_true(kv_version_cmp(ver(0, 0), ver(UINT64_MAX, 0)) < 0);
    assert_true(kv_version_cmp(ver(UINT64_MAX - 1, 9), ver(UINT64_MAX, 1)) < 0);
}

static void test_kv_version_cmp_node_breaks_ties(void **state)
{
    (void)state;
    assert_true(kv_version_cmp(ver(5, 1), ver(5, 2)) < 0);
    assert_true(kv_version_cmp(ver(5, 2), ver(5, 1)) > 0);
    assert_true(kv_version_cmp(ver(5, 0), ver(5, UINT64_MAX)) < 0);
    assert_int_equal(kv_version_cmp(ver(5, 7), ver(5, 7)), 0);
    assert_int_equal(kv_version_cmp(ver(0, 0), ver(0, 0)), 0);
    assert_int_equal(kv_version_cmp(ver(UINT64_MAX, UINT64_MAX), ver(UINT64_MAX, UINT64_MAX)), 0);
}

static void test_kv_version_cmp_total_order(void **state)
{
    (void)state;
    /* Antisymmetric and consistent with the (hlc, node) lexicographic order. */
    const uint64_t vals[] = {0, 1, 2, 0x7fffffffffffffffull, 0x8000000000000000ull, UINT64_MAX};
    enum { NV = sizeof vals / sizeof vals[0] };
    for (size_t a = 0; a < NV * NV; a++)
        for (size_t b = 0; b < NV * NV; b++) {
            kv_version_t x = ver(vals[a / NV], vals[a % NV]);
            kv_version_t y = ver(vals[b / NV], vals[b % NV]);
            int c = kv_version_cmp(x, y);
            int r = kv_version_cmp(y, x);
            /* Indexes enumerate the pairs in lexicographic order. */
            int want = a < b ? -1 : a > b ? 1 : 0;
            assert_int_equal(c < 0 ? -1 : c > 0 ? 1 : 0, want);
            assert_int_equal(r < 0 ? -1 : r > 0 ? 1 : 0, -want);
        }
}

static void test_kv_version_is_zero_values(void **state)
{
    (void)state;
    assert_true(kv_version_is_zero(ver(0, 0)));
    assert_false(kv_version_is_zero(ver(1, 0)));
    assert_false(kv_version_is_zero(ver(0, 1)));
    assert_false(kv_version_is_zero(ver(UINT64_MAX, UINT64_MAX)));
}

static void test_kv_version_to_str_format(void **state)
{
    (void)state;
    char buf[KV_VERSION_STR_MAX];
    kv_version_to_str(ver(0, 0), buf);
    assert_string_equal(buf, "0000000000000000.0000000000000000");
    kv_version_to_str(ver(0x0123456789abcdefull, 0xfedcba9876543210ull), buf);
    assert_string_equal(buf, "0123456789abcdef.fedcba9876543210");
    kv_version_to_str(ver(UINT64_MAX, 1), buf);
    assert_string_equal(buf, "ffffffffffffffff.0000000000000001");
    assert_int_equal(strlen(buf), KV_VERSION_STR_MAX - 1);
}

static void test_kv_version_to_str_stays_in_buffer(void **state)
{
    (void)state;
    char buf[KV_VERSION_STR_MAX + 8];
    memset(buf, 'Z', sizeof buf);
    kv_version_to_str(ver(UINT64_MAX, UINT64_MAX), buf);
    assert_int_equal(buf[KV_VERSION_STR_MAX - 1], '\0');
    for (size_t k = KV_VERSION_STR_MAX; k < sizeof buf; k++)
        assert_int_equal(buf[k], 'Z');
}

static void test_kv_version_parse_roundtrip(void **state)
{
    (void)state;
    const kv_version_t vs[] = {
        ver(0, 0),
        ver(1, 2),
        ver(0x0123456789abcdefull, 0xfedcba9876543210ull),
        ver(UINT64_MAX, UINT64_MAX),
        ver(phys(1700000000000ull) + 3, 0xa0157c9212cea591ull),
    };
    for (size_t k = 0; k < sizeof vs / sizeof vs[0]; k++) {
        char buf[KV_VERSION_STR_MAX];
        kv_version_t out = ver(42, 42);
        kv_version_to_str(vs[k], buf);
        assert_int_equal(kv_version_parse(buf, &out), 0);
        assert_int_equal(kv_version_cmp(out, vs[k]), 0);
    }
}

static void test_kv_version_parse_rejects_bad_strings(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        ".",
        "0",
        "0000000000000000",
        "0000000000000000.",
        ".0000000000000000",
        "0000000000000000.000000000000000",    /* 15 digits after the dot */
        "000000000000000.00000000000000000",   /* dot one place early */
        "00000000000000000.000000000000000",   /* dot one place late */
        "0000000000000000.00000000000000000",  /* one digit too many */
        "0000000000000000 0000000000000000",   /* no dot */
        "0000000000000000:0000000000000000",   /* another separator */
        "000000000000000000000000000000000",   /* no separator at all */
        "0000000000000000..000000000000000",   /* two dots */
        "000000000000000g.0000000000000000",   /* not hex */
        "0000000000000000.000000000000000g",   /* not hex, last digit */
        "0x00000000000000.0000000000000000",   /* a 0x prefix */
        " 000000000000000.0000000000000000",   /* leading space */
        "0000000000000000.000000000000000 ",   /* trailing space */
        "0000000000000000.0000000000000000\n", /* trailing newline */
        "-000000000000001.0000000000000000",   /* a sign */
        "+000000000000001.0000000000000000",
        "000000000000000\x01.0000000000000000",
        "0000000000000000.000000000000000\xff",
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        kv_version_t out = ver(42, 43);
        if (kv_version_parse(bad[k], &out) != -EINVAL)
            fail_msg("accepted \"%s\"", bad[k]);
        /* Left alone on failure. */
        assert_true(out.hlc == 42 && out.node == 43);
    }
    kv_version_t out = ver(42, 43);
    assert_int_equal(kv_version_parse(NULL, &out), -EINVAL);
    assert_true(out.hlc == 42 && out.node == 43);
}

static void test_kv_version_parse_embedded_nul(void **state)
{
    (void)state;
    /* The string ends at the NUL: what follows does not count. */
    char buf[KV_VERSION_STR_MAX + 1];
    kv_version_to_str(ver(1, 2), buf);
    buf[20] = '\0';
    kv_version_t out = ver(42, 43);
    assert_int_equal(kv_version_parse(buf, &out), -EINVAL);
    assert_true(out.hlc == 42 && out.node == 43);
}

static void test_kv_clock_tick_follows_wall_clock(void **state)
{
    (void)state;
    kv_clock_t c = {0};
    assert_true(kv_clock_tick(&c, 1000) == phys(1000));
    assert_true(kv_clock_tick(&c, 1001) == phys(1001));
    /* A jump ahead is followed at once, with the counter back at zero. */
    assert_true(kv_clock_tick(&c, 5000) == phys(5000));
    assert_true(c.last == phys(5000));
}

static void test_kv_clock_tick_same_millisecond_counts(void **state)
{
    (void)state;
    kv_clock_t c = {0};
    uint64_t first = kv_clock_tick(&c, 1000);
    for (uint64_t k = 1; k <= 100; k++)
        assert_true(kv_clock_tick(&c, 1000) == first + k);
    /* Still close to wall time: the millisecond part is unchanged. */
    assert_true(c.last >> 16 == 1000);
}

static void test_kv_clock_tick_counter_overflows_into_ms(void **state)
{
    (void)state;
    /* 65536 readings in one millisecond borrow from the next one. */
    kv_clock_t c = {0};
    uint64_t prev = kv_clock_tick(&c, 7);
    for (unsigned k = 0; k < 0x10000; k++) {
        uint64_t t = kv_clock_tick(&c, 7);
        assert_true(t == prev + 1);
        prev = t;
    }
    assert_true(prev == phys(8));
    /* The wall clock reaching that millisecond must not repeat it. */
    assert_true(kv_clock_tick(&c, 8) == phys(8) + 1);
    assert_true(kv_clock_tick(&c, 9) == phys(9));
}

static void test_kv_clock_tick_wall_goes_backwards(void **state)
{
    (void)state;
    kv_clock_t c = {0};
    uint64_t t0 = kv_clock_tick(&c, 10000);
    /* The wall clock steps back by a second: readings keep increasing. */
    uint64_t t1 = kv_clock_tick(&c, 9000);
    uint64_t t2 = kv_clock_tick(&c, 9001);
    uint64_t t3 = kv_clock_tick(&c, 0);
    assert_true(t1 == t0 + 1);
    assert_true(t2 == t1 + 1);
    assert_true(t3 == t2 + 1);
    /* Back at the old time: still greater than everything before. */
    uint64_t t4 = kv_clock_tick(&c, 10000);
    assert_true(t4 == t3 + 1);
    /* Once wall time is ahead again, readings return to it. */
    assert_true(kv_clock_tick(&c, 10001) == phys(10001));
}

static void test_kv_clock_tick_zero_wall_time(void **state)
{
    (void)state;
    /* Even a fresh clock at wall time 0 gives a non-zero reading. */
    kv_clock_t c = {0};
    uint64_t t0 = kv_clock_tick(&c, 0);
    assert_true(t0 > 0);
    assert_true(kv_clock_tick(&c, 0) > t0);
}

static void test_kv_clock_tick_strictly_increasing(void **state)
{
    (void)state;
    /* A wall clock that jitters back and forth, sometimes by a lot. */
    kv_clock_t c = {0};
    uint64_t wall = 1700000000000ull, prev = 0, seed = 12345;
    for (unsigned k = 0; k < 100000; k++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        int step = (int)((seed >> 33) % 2001) - 1000;
        wall = (uint64_t)((int64_t)wall + step);
        uint64_t t = kv_clock_tick(&c, wall);
        assert_true(t > prev);
        /* Never behind the wall clock. */
        assert_true(t >= phys(wall));
        prev = t;
    }
}

static void test_kv_clock_observe_larger_remote(void **state)
{
    (void)state;
    kv_clock_t c = {0};
    kv_clock_tick(&c, 1000);
    /* Another node is 5 s ahead and has counted 7 readings. */
    uint64_t remote = phys(6000) + 7;
    kv_clock_observe(&c, remote);
    assert_true(c.last == remote);
    /* Our wall clock is behind it: we continue from the remote reading. */
    assert_true(kv_clock_tick(&c, 1001) == remote + 1);
    assert_true(kv_clock_tick(&c, 6000) == remote + 2);
    /* Wall time passing it brings us back to our own clock. */
    assert_true(kv_clock_tick(&c, 6001) == phys(6001));
}

static void test_kv_clock_observe_smaller_remote(void **state)
{
    (void)state;
    kv_clock_t c = {0};
    uint64_t t0 = kv_clock_tick(&c, 5000);
    kv_clock_observe(&c, phys(4000));
    kv_clock_observe(&c, 0);
    assert_true(c.last == t0);
    assert_true(kv_clock_tick(&c, 5000) == t0 + 1);
}

static void test_kv_clock_observe_equal_remote(void **state)
{
    (void)state;
    /* A remote reading equal to ours: the next tick must still exceed it. */
    kv_clock_t c = {0};
    uint64_t t0 = kv_clock_tick(&c, 5000);
    kv_clock_observe(&c, t0);
    assert_true(kv_clock_tick(&c, 5000) > t0);
}

static void test_kv_clock_observe_fresh_clock(void **state)
{
    (void)state;
    /* Observing before the first tick: the first tick exceeds the reading. */
    kv_clock_t c = {0};
    kv_clock_observe(&c, phys(2000) + 3);
    assert_true(kv_clock_tick(&c, 1000) == phys(2000) + 4);
}

static void test_kv_clock_observe_then_tick_exceeds_all(void **state)
{
    (void)state;
    /* Two nodes writing alternately, each folding in what the other wrote. */
    kv_clock_t a = {0}, b = {0};
    uint64_t last = 0;
    for (unsigned k = 0; k < 1000; k++) {
        /* b's wall clock is 3 s behind a's. */
        uint64_t ta = kv_clock_tick(&a, 10000 + k / 10);
        assert_true(ta > last);
        kv_clock_observe(&b, ta);
        uint64_t tb = kv_clock_tick(&b, 7000 + k / 10);
        assert_true(tb > ta);
        kv_clock_observe(&a, tb);
        last = tb;
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kv_version_cmp_hlc_first),
        cmocka_unit_test(test_kv_version_cmp_node_breaks_ties),
        cmocka_unit_test(test_kv_version_cmp_total_order),
        cmocka_unit_test(test_kv_version_is_zero_values),
        cmocka_unit_test(test_kv_version_to_str_format),
        cmocka_unit_test(test_kv_version_to_str_stays_in_buffer),
        cmocka_unit_test(test_kv_version_parse_roundtrip),
        cmocka_unit_test(test_kv_version_parse_rejects_bad_strings),
        cmocka_unit_test(test_kv_version_parse_embedded_nul),
        cmocka_unit_test(test_kv_clock_tick_follows_wall_clock),
        cmocka_unit_test(test_kv_clock_tick_same_millisecond_counts),
        cmocka_unit_test(test_kv_clock_tick_counter_overflows_into_ms),
        cmocka_unit_test(test_kv_clock_tick_wall_goes_backwards),
        cmocka_unit_test(test_kv_clock_tick_zero_wall_time),
        cmocka_unit_test(test_kv_clock_tick_strictly_increasing),
        cmocka_unit_test(test_kv_clock_observe_larger_remote),
        cmocka_unit_test(test_kv_clock_observe_smaller_remote),
        cmocka_unit_test(test_kv_clock_observe_equal_remote),
        cmocka_unit_test(test_kv_clock_observe_fresh_clock),
        cmocka_unit_test(test_kv_clock_observe_then_tick_exceeds_all),
    };
    return cmocka_run_group_tests_name("kv_version", tests, NULL, NULL);
}
