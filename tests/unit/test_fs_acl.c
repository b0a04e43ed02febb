/* test_fs_acl.c — POSIX ACL arithmetic on the xattr encoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>

#include "fs_acl.h"

typedef struct {
    uint16_t tag, perm;
    uint32_t id;
} ent_t;

/* Encode entries into buf (version 2 header); returns the length. */
static size_t enc(uint8_t *buf, const ent_t *e, size_t n)
{
    buf[0] = 2;
    buf[1] = buf[2] = buf[3] = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t *p = buf + 4 + 8 * i;
        p[0] = (uint8_t)e[i].tag;
        p[1] = (uint8_t)(e[i].tag >> 8);
        p[2] = (uint8_t)e[i].perm;
        p[3] = 0;
        for (int k = 0; k < 4; k++)
            p[4 + k] = (uint8_t)(e[i].id >> (8 * k));
    }
    return 4 + 8 * n;
}

static uint16_t perm_of(const uint8_t *buf, size_t len, uint16_t tag)
{
    for (size_t off = 4; off + 8 <= len; off += 8)
        if ((buf[off] | buf[off + 1] << 8) == tag)
            return buf[off + 2];
    return 0xffff;
}

static void test_fs_acl_check_cases(void **state)
{
    (void)state;
    uint8_t b[128];
    const ent_t base[] = {{1, 6, 0}, {4, 4, 0}, {0x20, 4, 0}};
    assert_int_equal(fs_acl_check(b, enc(b, base, 3)), 0);
    const ent_t ext[] = {{1, 7, 0}, {2, 6, 1000}, {2, 4, 1001},
                         {4, 5, 0}, {0x10, 7, 0}, {0x20, 0, 0}};
    assert_int_equal(fs_acl_check(b, enc(b, ext, 6)), 0);
    /* named entries without a mask */
    const ent_t nomask[] = {{1, 7, 0}, {2, 6, 1000}, {4, 5, 0}, {0x20, 0, 0}};
    assert_int_equal(fs_acl_check(b, enc(b, nomask, 4)), -EINVAL);
    /* unsorted ids, duplicate owner, missing other, bad perm, bad version, truncated */
    const ent_t unsorted[] = {{1, 7, 0}, {2, 6, 1001}, {2, 4, 1000},
                              {4, 5, 0}, {0x10, 7, 0}, {0x20, 0, 0}};
    assert_int_equal(fs_acl_check(b, enc(b, unsorted, 6)), -EINVAL);
    const ent_t dup[] = {{1, 7, 0}, {1, 7, 0}, {4, 5, 0}, {0x20, 0, 0}};
    assert_int_equal(fs_acl_check(b, enc(b, dup, 4)), -EINVAL);
    const ent_t noother[] = {{1, 7, 0}, {4, 5, 0}};
    assert_int_equal(fs_acl_check(b, enc(b, noother, 2)), -EINVAL);
    const ent_t badperm[] = {{1, 8, 0}, {4, 5, 0}, {0x20, 0, 0}};
    assert_int_equal(fs_acl_check(b, enc(b, badperm, 3)), -EINVAL);
    size_t len = enc(b, base, 3);
    b[0] = 1;
    assert_int_equal(fs_acl_check(b, len), -EINVAL);
    b[0] = 2;
    assert_int_equal(fs_acl_check(b, len - 1), -EINVAL);
    assert_int_equal(fs_acl_check(b, 3), -EINVAL);
}

static void test_fs_acl_to_mode_and_chmod(void **state)
{
    (void)state;
    uint8_t b[128];
    uint32_t mode = 0100000 | 04000 | 0777;
    const ent_t base[] = {{1, 6, 0}, {4, 4, 0}, {0x20, 0, 0}};
    size_t len = enc(b, base, 3);
    assert_int_equal(fs_acl_to_mode(b, len, &mode), 1);
    assert_int_equal(mode, 0100000 | 04000 | 0640);
    /* extended: the group bits are the mask's */
    const ent_t ext[] = {{1, 7, 0}, {2, 6, 1000}, {4, 4, 0}, {0x10, 6, 0}, {0x20, 1, 0}};
    len = enc(b, ext, 5);
    assert_int_equal(fs_acl_to_mode(b, len, &mode), 0);
    assert_int_equal(mode & 07777, 04000 | 0761);
    /* chmod changes the mask, not the owning group's entry */
    fs_acl_chmod(b, len, 0750);
    assert_int_equal(perm_of(b, len, 1), 7);
    assert_int_equal(perm_of(b, len, 0x10), 5);
    assert_int_equal(perm_of(b, len, 4), 4);
    assert_int_equal(perm_of(b, len, 0x20), 0);
    assert_int_equal(fs_acl_check(b, len), 0);
    /* without a mask, the owning group's entry */
    len = enc(b, base, 3);
    fs_acl_chmod(b, len, 0705);
    assert_int_equal(perm_of(b, len, 4), 0);
    assert_int_equal(perm_of(b, len, 0x20), 5);
}

static void test_fs_acl_inherit_cases(void **state)
{
    (void)state;
    uint8_t b[128];
    uint8_t *acc;
    size_t alen;
    /* default: owner rwx, user 1000 rw, group r-x, mask rwx, other --- */
    const ent_t def[] = {{1, 7, 0}, {2, 6, 1000}, {4, 5, 0}, {0x10, 7, 0}, {0x20, 0, 0}};
    size_t len = enc(b, def, 5);
    uint32_t mode = 0100000 | 0666; /* creat(…, 0666) */
    assert_int_equal(fs_acl_inherit(b, len, &mode, &acc, &alen), 0);
    assert_non_null(acc);
    assert_int_equal(alen, len);
    assert_int_equal(mode, 0100000 | 0660); /* owner rw, mask rw, other none */
    assert_int_equal(perm_of(acc, alen, 1), 6);
    assert_int_equal(perm_of(acc, alen, 2), 6);
    assert_int_equal(perm_of(acc, alen, 0x10), 6);
    assert_int_equal(perm_of(acc, alen, 4), 5); /* the owning group's entry is kept */
    free(acc);
    /* a default with only base entries: the mode says it all, nothing to store */
    const ent_t base[] = {{1, 7, 0}, {4, 5, 0}, {0x20, 5, 0}};
    len = enc(b, base, 3);
    mode = 040000 | 0777;
    assert_int_equal(fs_acl_inherit(b, len, &mode, &acc, &alen), 0);
    assert_null(acc);
    assert_int_equal(mode, 040000 | 0755);
    b[0] = 9;
    assert_int_equal(fs_acl_inherit(b, len, &mode, &acc, &alen), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fs_acl_check_cases),
        cmocka_unit_test(test_fs_acl_to_mode_and_chmod),
        cmocka_unit_test(test_fs_acl_inherit_cases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
