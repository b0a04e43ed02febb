/*
 * test_kv_patch.c — the three ways to apply a patch (a new value, into a
 * caller's buffer, in place) give the same bytes as a plain reference:
 * the coordinator patches in place and the replicas into their records,
 * and their copies must agree to the byte.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kv_patch.h"

/* What a patch means, spelled out: old, zeros up to off, bytes at off. */
static size_t reference(const uint8_t *old, size_t old_len, uint32_t off, const uint8_t *bytes,
                        size_t len, uint8_t *out)
{
    size_t total = 0;
    for (size_t i = 0; i < old_len; i++)
        out[total++] = old[i];
    while (total < off)
        out[total++] = 0;
    for (size_t i = 0; i < len; i++) {
        out[off + i] = bytes[i];
        if (off + i + 1 > total)
            total = off + i + 1;
    }
    return total;
}

static void test_kv_patch_ways_agree(void **state)
{
    (void)state;
    const uint8_t old[] = "0123456789";
    const uint8_t bytes[] = "abcdefg";
    const size_t old_lens[] = {0, 5, 10};
    const uint32_t offs[] = {0, 3, 5, 8, 12};
    const size_t lens[] = {0, 2, 7};
    for (size_t a = 0; a < 3; a++)
        for (size_t b = 0; b < 5; b++)
            for (size_t c = 0; c < 3; c++) {
                size_t ol = old_lens[a], len = lens[c];
                uint32_t off = offs[b];
                uint8_t want[32];
                size_t want_len = reference(old, ol, off, bytes, len, want);
                assert_int_equal(kv_patch_len(ol, off, len), want_len);

                size_t got_len = 99;
                uint8_t *v = kv_patch_apply(ol ? old : NULL, ol, off, bytes, len, &got_len);
                assert_non_null(v);
                assert_int_equal(got_len, want_len);
                if (want_len)
                    assert_memory_equal(v, want, want_len);
                free(v);

                uint8_t buf[32];
                memset(buf, 0xee, sizeof buf);
                kv_patch_write(buf, ol ? old : NULL, ol, off, bytes, len);
                if (want_len)
                    assert_memory_equal(buf, want, want_len);
                assert_int_equal(buf[want_len], 0xee); /* nothing past the value */

                uint8_t *own = NULL;
                if (ol) {
                    own = malloc(ol);
                    assert_non_null(own);
                    memcpy(own, old, ol);
                }
                got_len = 99;
                v = kv_patch_in_place(own, ol, off, bytes, len, &got_len);
                assert_non_null(v);
                assert_int_equal(got_len, want_len);
                if (want_len)
                    assert_memory_equal(v, want, want_len);
                free(v);
            }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kv_patch_ways_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
