/* test_fs_names.c — the names the kernel may still trust, per directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fs_names.h"

typedef struct {
    char got[64][256];
    size_t n;
} seen_t;

static void visit(const char *name, size_t len, void *arg)
{
    seen_t *s = arg;
    assert_true(s->n < 64);
    memcpy(s->got[s->n], name, len);
    s->got[s->n][len] = '\0';
    s->n++;
}

static bool has(const seen_t *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->got[i], name) == 0)
            return true;
    return false;
}

static void note(fs_names_t *t, uint64_t dir, const char *name, uint64_t now, uint64_t ttl)
{
    fs_names_note(t, dir, name, strlen(name), now, ttl);
}

static void test_names_per_dir_and_expiry(void **state)
{
    (void)state;
    fs_names_t *t = fs_names_new(16);
    assert_non_null(t);
    note(t, 1, "db", 100, 1000);
    note(t, 1, "db-journal", 200, 1000);
    note(t, 2, "other", 200, 1000);
    seen_t s = {0};
    assert_int_equal(fs_names_each(t, 1, 300, visit, &s), 0);
    assert_int_equal(s.n, 2);
    assert_true(has(&s, "db") && has(&s, "db-journal"));
    /* db expires at 1100, the journal at 1200 */
    memset(&s, 0, sizeof s);
    assert_int_equal(fs_names_each(t, 1, 1150, visit, &s), 0);
    assert_int_equal(s.n, 1);
    assert_true(has(&s, "db-journal"));
    /* a timeout of 0 is never trusted by the kernel: not noted */
    note(t, 3, "x", 100, 0);
    memset(&s, 0, sizeof s);
    assert_int_equal(fs_names_each(t, 3, 100, visit, &s), 0);
    assert_int_equal(s.n, 0);
    fs_names_destroy(&t);
    assert_null(t);
}

static void test_names_noted_again_take_one_slot(void **state)
{
    (void)state;
    fs_names_t *t = fs_names_new(4);
    assert_non_null(t);
    /* SQLite looks its journal up before every transaction */
    for (uint64_t i = 0; i < 100; i++)
        note(t, 1, "db-journal", 1000 + i, 1000);
    note(t, 1, "a", 1100, 1000);
    note(t, 1, "b", 1100, 1000);
    seen_t s = {0};
    assert_int_equal(fs_names_each(t, 1, 1100, visit, &s), 0);
    assert_int_equal(s.n, 3);
    /* the renewed name lives until its last answer's expiry */
    memset(&s, 0, sizeof s);
    assert_int_equal(fs_names_each(t, 1, 2050, visit, &s), 0);
    assert_int_equal(s.n, 3);
    memset(&s, 0, sizeof s);
    assert_int_equal(fs_names_each(t, 1, 2100, visit, &s), 0);
    assert_int_equal(s.n, 0);
    fs_names_destroy(&t);
}

static void test_names_pushed_out_make_dir_incomplete(void **state)
{
    (void)state;
    fs_names_t *t = fs_names_new(4);
    assert_non_null(t);
    char name[16];
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "n%d", i);
        note(t, 7, name, 100 + (uint64_t)i, 1000);
    }
    /* a fifth name in another directory pushes out n0 (trusted until 1100) */
    note(t, 8, "z", 200, 1000);
    seen_t s = {0};
    assert_int_equal(fs_names_each(t, 7, 300, visit, &s), 1100);
    assert_int_equal(s.n, 3);
    assert_false(has(&s, "n0"));
    memset(&s, 0, sizeof s);
    assert_int_equal(fs_names_each(t, 8, 300, visit, &s), 0); /* 8 lost nothing */
    assert_int_equal(s.n, 1);
    /* once n0's timeout ran out, directory 7 is complete again */
    assert_int_equal(fs_names_each(t, 7, 1100, visit, &s), 0);
    /* expired names are pushed out without making anything incomplete */
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "m%d", i);
        note(t, 9, name, 5000, 1000);
    }
    assert_int_equal(fs_names_each(t, 7, 5000, visit, &s), 0);
    assert_int_equal(fs_names_each(t, 8, 5000, visit, &s), 0);
    fs_names_destroy(&t);
}

static void test_names_many_lost_dirs(void **state)
{
    (void)state;
    /* more directories lose names than are remembered: all are incomplete until the latest */
    fs_names_t *t = fs_names_new(1);
    assert_non_null(t);
    for (uint64_t d = 1; d <= 40; d++)
        note(t, d, "x", 100 + d, 1000);
    seen_t s = {0};
    /* directories 1..16 are remembered; 17..39 make every directory incomplete until 1139 */
    assert_int_equal(fs_names_each(t, 1000, 200, visit, &s), 1139);
    assert_int_equal(fs_names_each(t, 39, 200, visit, &s), 1139);
    assert_int_equal(s.n, 0);
    memset(&s, 0, sizeof s);
    assert_int_equal(fs_names_each(t, 40, 200, visit, &s), 1139);
    assert_int_equal(s.n, 1);
    assert_int_equal(fs_names_each(t, 1, 1120, visit, &s), 1139);
    assert_int_equal(fs_names_each(t, 40, 1200, visit, &s), 0);
    fs_names_destroy(&t);
}

static void test_names_checked(void **state)
{
    (void)state;
    fs_names_t *t = fs_names_new(4);
    assert_non_null(t);
    assert_int_equal(fs_names_checked_at(t, 1), 0);
    fs_names_checked(t, 1, 500);
    fs_names_checked(t, 2, 600);
    fs_names_checked(t, 1, 700);
    assert_int_equal(fs_names_checked_at(t, 1), 700);
    assert_int_equal(fs_names_checked_at(t, 2), 600);
    assert_int_equal(fs_names_checked_at(t, 3), 0);
    /* 64 directories are remembered; the oldest pushed out counts for all */
    for (uint64_t d = 100; d < 163; d++)
        fs_names_checked(t, d, 1000 + d);
    assert_int_equal(fs_names_checked_at(t, 3), 600);
    assert_int_equal(fs_names_checked_at(t, 2), 600);
    assert_int_equal(fs_names_checked_at(t, 1), 700);
    assert_int_equal(fs_names_checked_at(t, 162), 1162);
    fs_names_destroy(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_per_dir_and_expiry),
        cmocka_unit_test(test_names_noted_again_take_one_slot),
        cmocka_unit_test(test_names_pushed_out_make_dir_incomplete),
        cmocka_unit_test(test_names_many_lost_dirs),
        cmocka_unit_test(test_names_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
