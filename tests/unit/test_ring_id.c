/*
 * test_ring_id.c — identifier arithmetic, interval tests, hashing and parsing.
 *
 * The interval tests are checked exhaustively at small m against a naive
 * reference that walks the circle one step at a time from a, so wrap-around
 * and the a == b conventions of ring_id.h are covered by construction rather
 * than by hand-picked cases. m = 64 is covered separately near the wrap point
 * because 2^64 positions cannot be walked.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "ring_id.h"

enum { SMALL_M_MIN = 3, SMALL_M_MAX = 6, SMALL_SIZE_MAX = 1 << SMALL_M_MAX };

typedef enum { IV_OO, IV_OC, IV_CO, IV_CO_STRICT } iv_kind_t;

/*
 * Reference membership of every x for the interval (a, b) of kind k: walk
 * clockwise from a for distance(a, b) steps, or a whole lap when a == b
 * (ring_id.h: (a, a), (a, a] and [a, a) cover the ring, [a, a) strict is
 * empty). Step 0 is a, the last step is b.
 */
static void ref_members(iv_kind_t k, unsigned m, uint64_t a, uint64_t b,
                        bool member[SMALL_SIZE_MAX])
{
    uint64_t size = (uint64_t)1 << m;
    uint64_t len = (b + size - a) % size;
    if (len == 0 && k != IV_CO_STRICT)
        len = size;
    bool incl_a = k == IV_CO || k == IV_CO_STRICT;
    bool incl_b = k == IV_OC;
    memset(member, 0, SMALL_SIZE_MAX * sizeof member[0]);
    for (uint64_t step = 0; step <= len; step++) {
        uint64_t p = (a + step) % size;
        bool inside = (step > 0 || incl_a) && (step < len || incl_b);
        if (inside)
            member[p] = true;
    }
}

static bool call_iv(iv_kind_t k, ring_id_t x, ring_id_t a, ring_id_t b)
{
    switch (k) {
    case IV_OO:
        return ring_in_oo(x, a, b);
    case IV_OC:
        return ring_in_oc(x, a, b);
    case IV_CO:
        return ring_in_co(x, a, b);
    case IV_CO_STRICT:
        return ring_in_co_strict(x, a, b);
    }
    fail();
    return false;
}

static void check_exhaustive(iv_kind_t k)
{
    static const char *const names[] = {"oo", "oc", "co", "co_strict"};
    bool member[SMALL_SIZE_MAX];
    for (unsigned m = SMALL_M_MIN; m <= SMALL_M_MAX; m++) {
        uint64_t size = (uint64_t)1 << m;
        for (uint64_t a = 0; a < size; a++)
            for (uint64_t b = 0; b < size; b++) {
                ref_members(k, m, a, b, member);
                for (uint64_t x = 0; x < size; x++)
                    if (call_iv(k, x, a, b) != member[x])
                        fail_msg("ring_in_%s(x=%llu, a=%llu, b=%llu) at m=%u: expected %d",
                                 names[k], (unsigned long long)x, (unsigned long long)a,
                                 (unsigned long long)b, m, (int)member[x]);
            }
    }
}

static void test_ring_in_oo_exhaustive(void **state)
{
    (void)state;
    check_exhaustive(IV_OO);
}

static void test_ring_in_oc_exhaustive(void **state)
{
    (void)state;
    check_exhaustive(IV_OC);
}

static void test_ring_in_co_exhaustive(void **state)
{
    (void)state;
    check_exhaustive(IV_CO);
}

static void test_ring_in_co_strict_exhaustive(void **state)
{
    (void)state;
    check_exhaustive(IV_CO_STRICT);
}

static void test_ring_in_oo_wraparound(void **state)
{
    (void)state;
    /* m = 6: (60, 4) is 61, 62, 63, 0, 1, 2, 3. */
    assert_true(ring_in_oo(61, 60, 4));
    assert_true(ring_in_oo(0, 60, 4));
    assert_true(ring_in_oo(3, 60, 4));
    assert_false(ring_in_oo(60, 60, 4));
    assert_false(ring_in_oo(4, 60, 4));
    assert_false(ring_in_oo(30, 60, 4));
}

static void test_ring_in_all_equal_ends(void **state)
{
    (void)state;
    /* a == b: (a, a) is all but a; (a, a] and [a, a) are all; strict is empty. */
    for (ring_id_t x = 0; x < 16; x++) {
        assert_int_equal(ring_in_oo(x, 5, 5), x != 5);
        assert_true(ring_in_oc(x, 5, 5));
        assert_true(ring_in_co(x, 5, 5));
        assert_false(ring_in_co_strict(x, 5, 5));
    }
}

static void test_ring_in_all_m64_wrap(void **state)
{
    (void)state;
    const ring_id_t top = UINT64_MAX;
    /* (top - 2, 3) crosses the 2^64 wrap point. */
    assert_true(ring_in_oo(top, top - 2, 3));
    assert_true(ring_in_oo(0, top - 2, 3));
    assert_true(ring_in_oo(2, top - 2, 3));
    assert_false(ring_in_oo(3, top - 2, 3));
    assert_false(ring_in_oo(top - 2, top - 2, 3));
    assert_false(ring_in_oo(top - 3, top - 2, 3));
    assert_false(ring_in_oo((ring_id_t)1 << 63, top - 2, 3));
    assert_true(ring_in_oc(3, top - 2, 3));
    assert_false(ring_in_oc(top - 2, top - 2, 3));
    assert_true(ring_in_co(top - 2, top - 2, 3));
    assert_false(ring_in_co(3, top - 2, 3));
    assert_true(ring_in_co_strict(0, top, 1));
    assert_false(ring_in_co_strict(1, top, 1));
    /* Half the ring: (0, 2^63) holds 2^63 - 1 but not 2^63 + 1. */
    ring_id_t half = (ring_id_t)1 << 63;
    assert_true(ring_in_oo(half - 1, 0, half));
    assert_false(ring_in_oo(half + 1, 0, half));
    assert_true(ring_in_oo(half + 1, half, 0));
    assert_true(ring_in_oc(0, half, 0));
    assert_false(ring_in_oo(top, top, top));
    assert_true(ring_in_oo(0, top, top));
    assert_true(ring_in_oo(half, top, top));
}

static void test_ring_bits_valid_range(void **state)
{
    (void)state;
    assert_false(ring_bits_valid(0));
    assert_false(ring_bits_valid(2));
    assert_true(ring_bits_valid(3));
    assert_true(ring_bits_valid(32));
    assert_true(ring_bits_valid(64));
    assert_false(ring_bits_valid(65));
}

static void test_ring_mask_values(void **state)
{
    (void)state;
    assert_int_equal(ring_mask(3), 7);
    assert_int_equal(ring_mask(6), 63);
    assert_int_equal(ring_mask(32), 0xffffffffu);
    assert_true(ring_mask(63) == UINT64_MAX >> 1);
    assert_true(ring_mask(64) == UINT64_MAX);
}

static void test_ring_add_sub_distance_exhaustive(void **state)
{
    (void)state;
    for (unsigned m = SMALL_M_MIN; m <= SMALL_M_MAX; m++) {
        uint64_t size = (uint64_t)1 << m;
        for (uint64_t a = 0; a < size; a++)
            for (uint64_t b = 0; b < size; b++) {
                assert_int_equal(ring_add(a, b, m), (a + b) % size);
                assert_int_equal(ring_sub(a, b, m), (a + size - b) % size);
                assert_int_equal(ring_distance(a, b, m), (b + size - a) % size);
                /* Walking distance(a, b) steps from a lands on b. */
                assert_int_equal(ring_add(a, ring_distance(a, b, m), m), b);
            }
        /* Offsets of a full lap or more are reduced too. */
        assert_int_equal(ring_add(3, size + 2, m), 5 % size);
        assert_int_equal(ring_sub(3, size + 4, m), (3 + size - 4) % size);
    }
}

static void test_ring_add_m64_wrap(void **state)
{
    (void)state;
    assert_true(ring_add(UINT64_MAX, 1, 64) == 0);
    assert_true(ring_add(UINT64_MAX - 1, 5, 64) == 3);
    assert_true(ring_add((ring_id_t)1 << 63, (ring_id_t)1 << 63, 64) == 0);
    assert_true(ring_sub(0, 1, 64) == UINT64_MAX);
    assert_true(ring_sub(2, 5, 64) == UINT64_MAX - 2);
    assert_true(ring_distance(UINT64_MAX, 0, 64) == 1);
    assert_true(ring_distance(0, UINT64_MAX, 64) == UINT64_MAX);
    assert_true(ring_distance(10, 10, 64) == 0);
    assert_true(ring_distance(UINT64_MAX - 1, 3, 64) == 5);
    /* m = 63 masks the top bit away. */
    assert_true(ring_add(ring_mask(63), 1, 63) == 0);
    assert_true(ring_sub(0, 1, 63) == ring_mask(63));
}

static void test_ring_hash_deterministic(void **state)
{
    (void)state;
    const char *s = "tcp://127.0.0.1:7001";
    assert_true(ring_hash(s, strlen(s), 64) == ring_hash(s, strlen(s), 64));
    assert_true(ring_hash(s, strlen(s), 64) != ring_hash(s, strlen(s) - 1, 64));
    /* BLAKE2b with an 8-byte digest, read big-endian (python3 hashlib.blake2b). */
    assert_true(ring_hash("", 0, 64) == 0xe4a6a0577479b2b4ull);
    assert_true(ring_hash("abc", 3, 64) == 0xd8bb14d833d59559ull);
    assert_true(ring_hash(s, strlen(s), 64) == 0xa0157c9212cea591ull);
}

static void test_ring_hash_truncation(void **state)
{
    (void)state;
    const char *inputs[] = {"", "abc", "tcp://127.0.0.1:7001", "ipc:///tmp/n0"};
    for (size_t k = 0; k < sizeof inputs / sizeof inputs[0]; k++) {
        size_t len = strlen(inputs[k]);
        ring_id_t full = ring_hash(inputs[k], len, 64);
        for (unsigned m = RING_ID_BITS_MIN; m <= RING_ID_BITS_MAX; m++) {
            ring_id_t h = ring_hash(inputs[k], len, m);
            assert_true(h <= ring_mask(m));
            assert_true(h == (full & ring_mask(m)));
        }
    }
    assert_int_equal(ring_hash("abc", 3, 6), 0x59 & 63);
}

static void test_ring_hex_width_values(void **state)
{
    (void)state;
    assert_int_equal(ring_hex_width(3), 1);
    assert_int_equal(ring_hex_width(4), 1);
    assert_int_equal(ring_hex_width(5), 2);
    assert_int_equal(ring_hex_width(6), 2);
    assert_int_equal(ring_hex_width(8), 2);
    assert_int_equal(ring_hex_width(9), 3);
    assert_int_equal(ring_hex_width(63), 16);
    assert_int_equal(ring_hex_width(64), 16);
}

static void test_ring_id_to_hex_padding(void **state)
{
    (void)state;
    char buf[RING_ID_HEX_MAX];
    ring_id_to_hex(5, 6, buf);
    assert_string_equal(buf, "05");
    ring_id_to_hex(0, 6, buf);
    assert_string_equal(buf, "00");
    ring_id_to_hex(63, 6, buf);
    assert_string_equal(buf, "3f");
    ring_id_to_hex(0xab, 8, buf);
    assert_string_equal(buf, "ab");
    ring_id_to_hex(7, 3, buf);
    assert_string_equal(buf, "7");
    ring_id_to_hex(0, 64, buf);
    assert_string_equal(buf, "0000000000000000");
    ring_id_to_hex(0xabcdef, 64, buf);
    assert_string_equal(buf, "0000000000abcdef");
    ring_id_to_hex(UINT64_MAX, 64, buf);
    assert_string_equal(buf, "ffffffffffffffff");
    /* Ids wider than m are printed truncated to m bits. */
    ring_id_to_hex(0xff, 6, buf);
    assert_string_equal(buf, "3f");
}

static void test_ring_id_to_hex_roundtrip(void **state)
{
    (void)state;
    char buf[RING_ID_HEX_MAX];
    for (unsigned m = RING_ID_BITS_MIN; m <= 10; m++)
        for (ring_id_t id = 0; id <= ring_mask(m); id++) {
            ring_id_t back = ~(ring_id_t)0;
            ring_id_to_hex(id, m, buf);
            assert_int_equal(strlen(buf), ring_hex_width(m));
            for (const char *p = buf; *p; p++)
                assert_true((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'));
            assert_int_equal(ring_id_parse_hex(buf, m, &back), 0);
            assert_int_equal(back, id);
        }
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int k = 0; k < 1000; k++) {
        ring_id_t back = 0;
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        ring_id_to_hex(x, 64, buf);
        assert_int_equal(strlen(buf), 16);
        assert_int_equal(ring_id_parse_hex(buf, 64, &back), 0);
        assert_true(back == x);
    }
}

static void test_ring_id_parse_decimal(void **state)
{
    (void)state;
    ring_id_t v = 99;
    assert_int_equal(ring_id_parse("0", 6, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(ring_id_parse("63", 6, &v), 0);
    assert_int_equal(v, 63);
    assert_int_equal(ring_id_parse("007", 6, &v), 0);
    assert_int_equal(v, 7);
    assert_int_equal(ring_id_parse("18446744073709551615", 64, &v), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(ring_id_parse("9223372036854775807", 63, &v), 0);
    assert_true(v == ring_mask(63));
}

static void test_ring_id_parse_0x_prefix(void **state)
{
    (void)state;
    ring_id_t v = 99;
    assert_int_equal(ring_id_parse("0x3f", 6, &v), 0);
    assert_int_equal(v, 63);
    assert_int_equal(ring_id_parse("0X3F", 6, &v), 0);
    assert_int_equal(v, 63);
    assert_int_equal(ring_id_parse("0x0", 6, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(ring_id_parse("0x0000000000000000000000000000001", 64, &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(ring_id_parse("0xffffffffffffffff", 64, &v), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(ring_id_parse("0xDeadBeef", 32, &v), 0);
    assert_true(v == 0xdeadbeefu);
}

static void test_ring_id_parse_einval(void **state)
{
    (void)state;
    const char *bad[] = {"",   "0x",   "0X",  "-1",   "+1",   " 1",    "1 ",  "12a",
                         "1.", "0xg1", "x10", "0x-1", "0x 1", "0x0x1", "1e3", "\t7"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        ring_id_t v = 42;
        if (ring_id_parse(bad[k], 64, &v) != -EINVAL)
            fail_msg("ring_id_parse(\"%s\") should be -EINVAL", bad[k]);
        assert_int_equal(v, 42);
    }
    ring_id_t v = 42;
    assert_int_equal(ring_id_parse(NULL, 64, &v), -EINVAL);
}

static void test_ring_id_parse_erange(void **state)
{
    (void)state;
    ring_id_t v = 42;
    assert_int_equal(ring_id_parse("64", 6, &v), -ERANGE);
    assert_int_equal(ring_id_parse("0x40", 6, &v), -ERANGE);
    assert_int_equal(ring_id_parse("8", 3, &v), -ERANGE);
    assert_int_equal(ring_id_parse("9223372036854775808", 63, &v), -ERANGE);
    /* Beyond uint64_t itself. */
    assert_int_equal(ring_id_parse("18446744073709551616", 64, &v), -ERANGE);
    assert_int_equal(ring_id_parse("99999999999999999999999999", 64, &v), -ERANGE);
    assert_int_equal(ring_id_parse("0x10000000000000000", 64, &v), -ERANGE);
    assert_int_equal(ring_id_parse("0xfffffffffffffffffff", 64, &v), -ERANGE);
    assert_int_equal(v, 42);
}

static void test_ring_id_parse_hex_values(void **state)
{
    (void)state;
    ring_id_t v = 99;
    assert_int_equal(ring_id_parse_hex("3f", 6, &v), 0);
    assert_int_equal(v, 63);
    assert_int_equal(ring_id_parse_hex("5", 6, &v), 0);
    assert_int_equal(v, 5);
    assert_int_equal(ring_id_parse_hex("FF", 8, &v), 0);
    assert_int_equal(v, 255);
    assert_int_equal(ring_id_parse_hex("ffffffffffffffff", 64, &v), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(ring_id_parse_hex("0000000000000001", 64, &v), 0);
    assert_int_equal(v, 1);
}

static void test_ring_id_parse_hex_errors(void **state)
{
    (void)state;
    ring_id_t v = 42;
    /* More digits than ring_hex_width(m), even when the value would fit. */
    assert_int_equal(ring_id_parse_hex("03f", 6, &v), -EINVAL);
    assert_int_equal(ring_id_parse_hex("00000000000000001", 64, &v), -EINVAL);
    assert_int_equal(ring_id_parse_hex("", 6, &v), -EINVAL);
    assert_int_equal(ring_id_parse_hex(NULL, 6, &v), -EINVAL);
    assert_int_equal(ring_id_parse_hex("0x", 8, &v), -EINVAL);
    assert_int_equal(ring_id_parse_hex("0x1", 64, &v), -EINVAL);
    assert_int_equal(ring_id_parse_hex("g", 6, &v), -EINVAL);
    assert_int_equal(ring_id_parse_hex("-1", 6, &v), -EINVAL);
    assert_int_equal(ring_id_parse_hex(" 1", 6, &v), -EINVAL);
    /* Fits in the width but not in m bits. */
    assert_int_equal(ring_id_parse_hex("40", 6, &v), -ERANGE);
    assert_int_equal(ring_id_parse_hex("20", 5, &v), -ERANGE);
    assert_int_equal(ring_id_parse_hex("8", 3, &v), -ERANGE);
    assert_int_equal(v, 42);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_in_oo_exhaustive),
        cmocka_unit_test(test_ring_in_oc_exhaustive),
        cmocka_unit_test(test_ring_in_co_exhaustive),
        cmocka_unit_test(test_ring_in_co_strict_exhaustive),
        cmocka_unit_test(test_ring_in_oo_wraparound),
        cmocka_unit_test(test_ring_in_all_equal_ends),
        cmocka_unit_test(test_ring_in_all_m64_wrap),
        cmocka_unit_test(test_ring_bits_valid_range),
        cmocka_unit_test(test_ring_mask_values),
        cmocka_unit_test(test_ring_add_sub_distance_exhaustive),
        cmocka_unit_test(test_ring_add_m64_wrap),
        cmocka_unit_test(test_ring_hash_deterministic),
        cmocka_unit_test(test_ring_hash_truncation),
        cmocka_unit_test(test_ring_hex_width_values),
        cmocka_unit_test(test_ring_id_to_hex_padding),
        cmocka_unit_test(test_ring_id_to_hex_roundtrip),
        cmocka_unit_test(test_ring_id_parse_decimal),
        cmocka_unit_test(test_ring_id_parse_0x_prefix),
        cmocka_unit_test(test_ring_id_parse_einval),
        cmocka_unit_test(test_ring_id_parse_erange),
        cmocka_unit_test(test_ring_id_parse_hex_values),
        cmocka_unit_test(test_ring_id_parse_hex_errors),
    };
    return cmocka_run_group_tests_name("ring_id", tests, NULL, NULL);
}
