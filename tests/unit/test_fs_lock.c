/* test_fs_lock.c — lock conflicts, range split/merge and the record codec. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>

#include "fs_layout.h"
#include "fs_lock.h"

static fs_lock_ent_t px(uint64_t mount, uint64_t owner, bool excl, uint64_t start, uint64_t end)
{
    fs_lock_ent_t e = {.mount = mount,
                       .owner = owner,
                       .pid = 100 + (uint32_t)owner,
                       .kind = FS_LOCK_POSIX,
                       .excl = excl,
                       .start = start,
                       .end = end};
    return e;
}

static fs_lock_ent_t fl(uint64_t mount, uint64_t owner, bool excl)
{
    fs_lock_ent_t e = px(mount, owner, excl, 0, FS_LOCK_EOF);
    e.kind = FS_LOCK_FLOCK;
    return e;
}

static fs_lock_rec_t *rec_new(void)
{
    fs_lock_rec_t *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    return r;
}

static void set(fs_lock_rec_t *r, fs_lock_ent_t e)
{
    bool changed;
    assert_int_equal(fs_lock_apply(r, &e, false, &changed), 0);
}

static void unset(fs_lock_rec_t *r, fs_lock_ent_t e)
{
    bool changed;
    assert_int_equal(fs_lock_apply(r, &e, true, &changed), 0);
}

/* The entry of (mount, owner) covering byte b, or NULL. */
static const fs_lock_ent_t *at(const fs_lock_rec_t *r, uint64_t mount, uint64_t owner, uint64_t b)
{
    for (size_t i = 0; i < r->count; i++)
        if (r->ent[i].mount == mount && r->ent[i].owner == owner && r->ent[i].start <= b &&
            b <= r->ent[i].end)
            return &r->ent[i];
    return NULL;
}

static void test_conflict_shared_and_exclusive(void **state)
{
    (void)state;
    fs_lock_rec_t *r = rec_new();
    set(r, px(1, 1, false, 0, 99));
    fs_lock_ent_t rd = px(2, 1, false, 50, 60), wr = px(2, 1, true, 50, 60);
    assert_int_equal(fs_lock_conflict(r, &rd), -1);
    assert_int_equal(fs_lock_conflict(r, &wr), 0);
    fs_lock_ent_t apart = px(2, 1, true, 100, 200);
    assert_int_equal(fs_lock_conflict(r, &apart), -1);
    /* the same owner never conflicts with itself; another owner of the same mount does */
    fs_lock_ent_t self = px(1, 1, true, 0, 10), sib = px(1, 2, true, 0, 10);
    assert_int_equal(fs_lock_conflict(r, &self), -1);
    assert_int_equal(fs_lock_conflict(r, &sib), 0);
    free(r);
}

static void test_conflict_kinds_independent(void **state)
{
    (void)state;
    fs_lock_rec_t *r = rec_new();
    set(r, fl(1, 7, true));
    fs_lock_ent_t p = px(2, 1, true, 0, 10), f = fl(2, 9, false), f_same = fl(1, 7, false);
    assert_int_equal(fs_lock_conflict(r, &p), -1);
    assert_int_equal(fs_lock_conflict(r, &f), 0);
    assert_int_equal(fs_lock_conflict(r, &f_same), -1);
    /* converting the own flock to shared replaces it */
    set(r, f_same);
    assert_int_equal(r->count, 1);
    assert_false(r->ent[0].excl);
    assert_int_equal(fs_lock_conflict(r, &f), -1);
    free(r);
}

static void test_apply_split_middle(void **state)
{
    (void)state;
    fs_lock_rec_t *r = rec_new();
    set(r, px(1, 1, true, 0, 99));
    unset(r, px(1, 1, false, 40, 59));
    assert_int_equal(r->count, 2);
    assert_non_null(at(r, 1, 1, 39));
    assert_null(at(r, 1, 1, 40));
    assert_null(at(r, 1, 1, 59));
    assert_non_null(at(r, 1, 1, 60));
    assert_int_equal(at(r, 1, 1, 0)->end, 39);
    assert_int_equal(at(r, 1, 1, 99)->start, 60);
    free(r);
}

static void test_apply_downgrade_middle(void **state)
{
    (void)state;
    fs_lock_rec_t *r = rec_new();
    set(r, px(1, 1, true, 0, FS_LOCK_EOF));
    set(r, px(1, 1, false, 10, 19));
    assert_int_equal(r->count, 3);
    assert_true(at(r, 1, 1, 9)->excl);
    assert_false(at(r, 1, 1, 10)->excl);
    assert_false(at(r, 1, 1, 19)->excl);
    assert_true(at(r, 1, 1, 20)->excl);
    assert_int_equal(at(r, 1, 1, 20)->end, FS_LOCK_EOF);
    /* upgrading it back merges the three into one */
    set(r, px(1, 1, true, 10, 19));
    assert_int_equal(r->count, 1);
    assert_int_equal(r->ent[0].start, 0);
    assert_int_equal(r->ent[0].end, FS_LOCK_EOF);
    free(r);
}

static void test_apply_merge_adjacent_and_overlap(void **state)
{
    (void)state;
    fs_lock_rec_t *r = rec_new();
    set(r, px(1, 1, false, 0, 9));
    set(r, px(1, 1, false, 20, 29));
    assert_int_equal(r->count, 2);
    set(r, px(1, 1, false, 10, 19)); /* touches both */
    assert_int_equal(r->count, 1);
    assert_int_equal(r->ent[0].start, 0);
    assert_int_equal(r->ent[0].end, 29);
    set(r, px(1, 1, false, 25, 40));
    assert_int_equal(r->count, 1);
    assert_int_equal(r->ent[0].end, 40);
    /* another owner's adjacent lock is not merged */
    set(r, px(1, 2, false, 41, 50));
    assert_int_equal(r->count, 2);
    free(r);
}

static void test_apply_idempotent_and_unlock_nothing(void **state)
{
    (void)state;
    fs_lock_rec_t *r = rec_new();
    bool changed;
    fs_lock_ent_t e = px(1, 1, true, 5, 6);
    assert_int_equal(fs_lock_apply(r, &e, true, &changed), 0);
    assert_false(changed);
    assert_int_equal(fs_lock_apply(r, &e, false, &changed), 0);
    assert_true(changed);
    assert_int_equal(fs_lock_apply(r, &e, false, &changed), 0);
    assert_false(changed);
    assert_int_equal(r->count, 1);
    fs_lock_ent_t bad = px(1, 1, true, 7, 6);
    assert_int_equal(fs_lock_apply(r, &bad, false, &changed), -EINVAL);
    free(r);
}

static void test_apply_unlock_at_eof_edges(void **state)
{
    (void)state;
    fs_lock_rec_t *r = rec_new();
    set(r, px(1, 1, true, 0, FS_LOCK_EOF));
    unset(r, px(1, 1, true, 100, FS_LOCK_EOF));
    assert_int_equal(r->count, 1);
    assert_int_equal(r->ent[0].end, 99);
    unset(r, px(1, 1, true, 0, 0));
    assert_int_equal(r->count, 1);
    assert_int_equal(r->ent[0].start, 1);
    unset(r, px(1, 1, true, 0, FS_LOCK_EOF));
    assert_int_equal(r->count, 0);
    free(r);
}

static void test_apply_full_record(void **state)
{
    (void)state;
    fs_lock_rec_t *r = rec_new();
    for (uint64_t i = 0; i < FS_LOCK_MAX; i++)
        set(r, px(1, 1, true, 2 * i, 2 * i)); /* gaps: never merged */
    assert_int_equal(r->count, FS_LOCK_MAX);
    bool changed = true;
    fs_lock_ent_t more = px(1, 2, true, 10000, 10000);
    assert_int_equal(fs_lock_apply(r, &more, false, &changed), -ENOLCK);
    assert_false(changed);
    assert_int_equal(r->count, FS_LOCK_MAX);
    /* a split that would need one more entry is refused too */
    fs_lock_ent_t hole = px(1, 1, false, 4, 4);
    set(r, hole); /* same count: one entry changes type */
    assert_int_equal(r->count, FS_LOCK_MAX);
    /* filling a gap merges three into one */
    set(r, px(1, 1, true, 1, 1));
    assert_int_equal(r->count, FS_LOCK_MAX - 1);
    free(r);
}

static void test_drop_owner_and_mount(void **state)
{
    (void)state;
    fs_lock_rec_t *r = rec_new();
    set(r, px(1, 1, true, 0, 9));
    set(r, px(1, 1, true, 20, 29));
    set(r, fl(1, 1, true));
    set(r, px(1, 2, false, 40, 49));
    set(r, px(2, 1, false, 40, 49));
    assert_int_equal(fs_lock_count_mount(r, 1), 4);
    assert_int_equal(fs_lock_drop_owner(r, 1, 1, FS_LOCK_POSIX), 2);
    assert_int_equal(r->count, 3);
    assert_int_equal(fs_lock_drop_mount(r, 1), 2);
    assert_int_equal(r->count, 1);
    assert_int_equal(r->ent[0].mount, 2);
    free(r);
}

static void test_codec_roundtrip(void **state)
{
    (void)state;
    fs_lock_rec_t *r = rec_new(), *d = rec_new();
    set(r, px(0x1122334455667788ull, 0xdeadbeefcafef00dull, true, 7, FS_LOCK_EOF));
    set(r, fl(3, 4, false));
    r->ent[1].pid = 0x7fffffff;
    uint8_t *buf = malloc(FS_LOCK_REC_MAX);
    size_t len = fs_lock_encode(r, buf, FS_LOCK_REC_MAX);
    assert_int_equal(len, FS_LOCK_HEAD_LEN + 2 * FS_LOCK_ENT_LEN);
    assert_int_equal(fs_lock_decode(buf, len, d), 0);
    assert_int_equal(d->count, 2);
    assert_memory_equal(&d->ent[0], &r->ent[0], sizeof(d->ent[0]));
    /* re-encoding gives the same bytes */
    uint8_t *again = malloc(FS_LOCK_REC_MAX);
    assert_int_equal(fs_lock_encode(d, again, FS_LOCK_REC_MAX), len);
    assert_memory_equal(buf, again, len);
    /* an empty record is 3 bytes */
    r->count = 0;
    assert_int_equal(fs_lock_encode(r, buf, FS_LOCK_REC_MAX), FS_LOCK_HEAD_LEN);
    assert_int_equal(fs_lock_decode(buf, FS_LOCK_HEAD_LEN, d), 0);
    assert_int_equal(d->count, 0);
    free(buf);
    free(again);
    free(r);
    free(d);
}

static void test_codec_hostile(void **state)
{
    (void)state;
    fs_lock_rec_t *r = rec_new(), *d = rec_new();
    set(r, px(1, 1, true, 10, 20));
    set(r, px(1, 2, true, 30, 40));
    uint8_t buf[FS_LOCK_REC_MAX], bad[FS_LOCK_REC_MAX];
    size_t len = fs_lock_encode(r, buf, sizeof buf);
    assert_int_not_equal(len, 0);
    /* every truncation and one byte too many */
    for (size_t l = 0; l < len; l++)
        assert_int_equal(fs_lock_decode(buf, l, d), -EBADMSG);
    memcpy(bad, buf, len);
    bad[len] = 0;
    assert_int_equal(fs_lock_decode(bad, len + 1, d), -EBADMSG);
    /* unknown format, unknown flag bits, a count beyond the maximum */
    memcpy(bad, buf, len);
    bad[0] = 2;
    assert_int_equal(fs_lock_decode(bad, len, d), -EBADMSG);
    memcpy(bad, buf, len);
    bad[FS_LOCK_HEAD_LEN + 20] |= 0x80;
    assert_int_equal(fs_lock_decode(bad, len, d), -EBADMSG);
    memcpy(bad, buf, len);
    bad[1] = 0xff;
    bad[2] = 0xff;
    assert_int_equal(fs_lock_decode(bad, len, d), -EBADMSG);
    /* start after end */
    memcpy(bad, buf, len);
    bad[FS_LOCK_HEAD_LEN + 21] = 0xff;
    assert_int_equal(fs_lock_decode(bad, len, d), -EBADMSG);
    /* mount 0 */
    memcpy(bad, buf, len);
    memset(bad + FS_LOCK_HEAD_LEN, 0, 8);
    assert_int_equal(fs_lock_decode(bad, len, d), -EBADMSG);
    /* an flock entry that does not cover the whole file */
    memcpy(bad, buf, len);
    bad[FS_LOCK_HEAD_LEN + 20] |= 1;
    assert_int_equal(fs_lock_decode(bad, len, d), -EBADMSG);
    /* one owner's entries overlapping (owner of entry 2 made 1, ranges made to meet) */
    memcpy(bad, buf, len);
    bad[FS_LOCK_HEAD_LEN + FS_LOCK_ENT_LEN + 8] = 1;
    bad[FS_LOCK_HEAD_LEN + FS_LOCK_ENT_LEN + 21] = 15;
    assert_int_equal(fs_lock_decode(bad, len, d), -EBADMSG);
    assert_int_equal(d->count, 0);
    /* random bytes never crash and, when accepted, re-encode to themselves */
    srand(12);
    for (int round = 0; round < 20000; round++) {
        size_t l = (size_t)rand() % (FS_LOCK_HEAD_LEN + 3 * FS_LOCK_ENT_LEN + 2);
        for (size_t i = 0; i < l; i++)
            bad[i] = (uint8_t)rand();
        if (l >= 3 && round % 2) {
            bad[0] = 1;
            bad[1] = (uint8_t)((l - FS_LOCK_HEAD_LEN) / FS_LOCK_ENT_LEN);
            bad[2] = 0;
        }
        if (fs_lock_decode(bad, l, d) == 0) {
            uint8_t re[FS_LOCK_REC_MAX];
            assert_int_equal(fs_lock_encode(d, re, sizeof re), l);
            assert_memory_equal(re, bad, l);
        }
    }
    /* the encoder refuses what the decoder would */
    r->ent[0].start = 50;
    assert_int_equal(fs_lock_encode(r, buf, sizeof buf), 0);
    free(r);
    free(d);
}

static void test_lease_lapsed(void **state)
{
    (void)state;
    /* lease 8000: lapsed from 7000 ms after the renewal was sent */
    assert_false(fs_lock_lease_lapsed(1000, 1000, 8000));
    assert_false(fs_lock_lease_lapsed(7999, 1000, 8000));
    assert_true(fs_lock_lease_lapsed(8000, 1000, 8000));
    assert_true(fs_lock_lease_lapsed(100000, 1000, 8000));
    /* a renewal sent "after" now (a caller's race) is no lapse */
    assert_false(fs_lock_lease_lapsed(500, 1000, 8000));
    /* heartbeats every lease/3 never lapse */
    assert_false(fs_lock_lease_lapsed(1000 + 8000 / 3 * 2, 1000, 8000));
}

static void test_entries_lost(void **state)
{
    (void)state;
    fs_lock_rec_t *r = rec_new();
    set(r, px(1, 7, true, 0, 9));
    set(r, fl(2, 8, false));
    assert_false(fs_lock_entries_lost(r, 1, 1));
    assert_false(fs_lock_entries_lost(r, 1, 5)); /* some left: not taken for dead */
    assert_false(fs_lock_entries_lost(r, 3, 0)); /* held nothing: nothing to lose */
    assert_true(fs_lock_entries_lost(r, 3, 1));
    fs_lock_drop_mount(r, 1);
    assert_true(fs_lock_entries_lost(r, 1, 1));
    free(r);
}

static void test_keys(void **state)
{
    (void)state;
    char k[FS_KEY_MAX];
    assert_int_equal(fs_lock_key(k, "vol", 0x2a), strlen("v/vol/lock/2a"));
    assert_string_equal(k, "v/vol/lock/2a");
    fs_lock_key_mount(k, "vol", 0xabcdef);
    assert_string_equal(k, "v/vol/mount/abcdef");
    assert_int_equal(fs_lock_key(k, "bad/name", 1), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conflict_shared_and_exclusive),
        cmocka_unit_test(test_conflict_kinds_independent),
        cmocka_unit_test(test_apply_split_middle),
        cmocka_unit_test(test_apply_downgrade_middle),
        cmocka_unit_test(test_apply_merge_adjacent_and_overlap),
        cmocka_unit_test(test_apply_idempotent_and_unlock_nothing),
        cmocka_unit_test(test_apply_unlock_at_eof_edges),
        cmocka_unit_test(test_apply_full_record),
        cmocka_unit_test(test_drop_owner_and_mount),
        cmocka_unit_test(test_codec_roundtrip),
        cmocka_unit_test(test_codec_hostile),
        cmocka_unit_test(test_lease_lapsed),
        cmocka_unit_test(test_entries_lost),
        cmocka_unit_test(test_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
