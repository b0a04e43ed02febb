/*
 * The store (kvnode/store.c) on a real LMDB in a temp dir, with its
 * committer thread and a real loop: staged writes are visible at once,
 * acknowledgements wait for durability, the loop keeps running while a
 * (simulated, DHT_TEST_COMMIT_DELAY_MS) slow commit is under way, batches
 * pipeline, digests stay equal to a full recount, and a reopen finds
 * everything acknowledged. The tests that do not need the thread also run
 * with commits on the loop (STORE_COMMIT_LOOP, a store in memory), where a
 * callback's own writes commit in the same store_commit().
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "kv_digest.h"
#include "loop.h"
#include "store.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <unistd.h>

typedef struct {
    char dir[64];
    store_commit_mode_t mode;
    loop_t *loop;
    store_t *st;
} fixture_t;

static void before_poll(loop_t *loop, void *arg)
{
    (void)loop;
    store_t *st = arg;
    if (store_dirty(st))
        store_commit(st);
}

static void reopen(fixture_t *f)
{
    char err[256] = "";
    store_close(&f->st);
    f->st = store_open(f->dir, 64, 4, f->mode, f->loop, err, sizeof err);
    if (!f->st)
        fail_msg("store_open: %s", err);
    loop_set_before_poll(f->loop, before_poll, f->st);
}

static int setup_in(void **state, const char *parent, store_commit_mode_t mode)
{
    fixture_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "%s/test_store.XXXXXX", parent);
    assert_non_null(mkdtemp(f->dir));
    f->mode = mode;
    f->loop = loop_new();
    reopen(f);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_in(state, "/tmp", STORE_COMMIT_THREAD);
}

static int setup_on_loop(void **state)
{
    return setup_in(state, "/tmp", STORE_COMMIT_LOOP);
}

/* AUTO on tmpfs (NULL state when there is none to use: the test skips). */
static int setup_auto_tmpfs(void **state)
{
    struct statfs sf;
    if (statfs("/dev/shm", &sf) < 0 || sf.f_type != TMPFS_MAGIC || access("/dev/shm", W_OK) < 0) {
        *state = NULL;
        return 0;
    }
    return setup_in(state, "/dev/shm", STORE_COMMIT_AUTO);
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    store_close(&f->st);
    loop_destroy(&f->loop);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static int teardown_maybe(void **state)
{
    return *state ? teardown(state) : 0;
}

typedef struct {
    loop_t *loop;
    int *done; /* stop when *done >= want */
    int want;
    unsigned ticks;
} waiter_t;

static void tick(loop_t *loop, void *arg)
{
    waiter_t *w = arg;
    w->ticks++;
    if (*w->done >= w->want || w->ticks > 2000)
        loop_stop(loop);
    else
        loop_timer_add(loop, 1, tick, w);
}

/* Run the loop until *done reaches want; returns the 1 ms ticks seen meanwhile. */
static unsigned run_until(fixture_t *f, int *done, int want)
{
    waiter_t w = {f->loop, done, want, 0};
    loop_timer_add(f->loop, 1, tick, &w);
    loop_run(f->loop);
    assert_true(*done >= want);
    return w.ticks;
}

static int order[16];
static int norder;

static void on_commit(int rc, void *arg)
{
    assert_int_equal(rc, 0);
    order[norder++] = (int)(intptr_t)arg;
}

static int put(store_t *st, const char *key, uint64_t hlc, const char *value)
{
    return store_put(st, (const uint8_t *)key, strlen(key), (kv_version_t){hlc, 1}, 0, value,
                     strlen(value), NULL);
}

static void test_store_staged_visible_and_acked_when_durable(void **state)
{
    fixture_t *f = *state;
    norder = 0;
    assert_int_equal(put(f->st, "a", 10, "one"), 1);
    assert_int_equal(put(f->st, "a", 9, "older"), 0);
    store_rec_t rec;
    assert_int_equal(store_get(f->st, (const uint8_t *)"a", 1, &rec), 0);
    assert_int_equal(rec.value_len, 3);
    assert_memory_equal(rec.value, "one", 3);
    assert_int_equal(store_count(f->st), 1);
    assert_int_equal(store_after_commit(f->st, on_commit, (void *)1), 0);
    assert_int_equal(norder, 0); /* not before the commit */
    run_until(f, &norder, 1);
    reopen(f);
    assert_int_equal(store_get(f->st, (const uint8_t *)"a", 1, &rec), 0);
    assert_memory_equal(rec.value, "one", 3);
    assert_int_equal(store_count(f->st), 1);
    assert_int_equal(store_bytes(f->st), 3);
}

static void stage_second(loop_t *loop, void *arg)
{
    (void)loop;
    fixture_t *f = arg;
    /* The first batch is with the committer now: this one waits behind it. */
    assert_true(store_dirty(f->st));
    assert_int_equal(put(f->st, "b", 20, "two"), 1);
    assert_int_equal(put(f->st, "a", 30, "three"), 1);
    store_rec_t rec;
    assert_int_equal(store_get(f->st, (const uint8_t *)"a", 1, &rec), 0);
    assert_memory_equal(rec.value, "three", 5);
    assert_int_equal(store_after_commit(f->st, on_commit, (void *)2), 0);
}

/* A callback that writes once more and waits for that write too. */
static void on_commit_write_again(int rc, void *arg)
{
    fixture_t *f = arg;
    assert_int_equal(rc, 0);
    order[norder++] = 1;
    assert_int_equal(put(f->st, "c", 40, "four"), 1);
    assert_int_equal(store_after_commit(f->st, on_commit, (void *)2), 0);
}

static void test_store_on_loop_commits_in_commit(void **state)
{
    fixture_t *f = *state;
    norder = 0;
    assert_int_equal(put(f->st, "a", 10, "one"), 1);
    assert_int_equal(store_after_commit(f->st, on_commit_write_again, f), 0);
    assert_true(store_dirty(f->st));
    store_commit(f->st);
    /* Both batches are durable and acknowledged when store_commit returns. */
    assert_int_equal(norder, 2);
    assert_int_equal(order[0], 1);
    assert_int_equal(order[1], 2);
    assert_false(store_dirty(f->st));
    reopen(f);
    store_rec_t rec;
    assert_int_equal(store_get(f->st, (const uint8_t *)"c", 1, &rec), 0);
    assert_memory_equal(rec.value, "four", 4);
    assert_int_equal(store_count(f->st), 2);
}

/* AUTO commits on the loop on tmpfs, and keeps the thread when a slow disk is simulated. */
static void test_store_auto_mode(void **state)
{
    fixture_t *f = *state;
    if (!f)
        skip();
    norder = 0;
    assert_int_equal(put(f->st, "a", 10, "one"), 1);
    assert_int_equal(store_after_commit(f->st, on_commit, (void *)1), 0);
    store_commit(f->st);
    assert_int_equal(norder, 1);
    setenv(STORE_TEST_COMMIT_DELAY_ENV, "1", 1);
    reopen(f);
    unsetenv(STORE_TEST_COMMIT_DELAY_ENV);
    assert_int_equal(put(f->st, "b", 20, "two"), 1);
    assert_int_equal(store_after_commit(f->st, on_commit, (void *)2), 0);
    store_commit(f->st);
    assert_int_equal(norder, 1); /* with the committer thread */
    run_until(f, &norder, 2);
    assert_int_equal(order[1], 2);
}

static void test_store_slow_commit_does_not_block_loop(void **state)
{
    fixture_t *f = *state;
    setenv(STORE_TEST_COMMIT_DELAY_ENV, "200", 1);
    reopen(f);
    unsetenv(STORE_TEST_COMMIT_DELAY_ENV);
    norder = 0;
    assert_int_equal(put(f->st, "a", 10, "one"), 1);
    assert_int_equal(store_after_commit(f->st, on_commit, (void *)1), 0);
    loop_timer_add(f->loop, 50, stage_second, f);
    unsigned ticks = run_until(f, &norder, 2);
    /* Two 200 ms commits in a row; the loop ran its 1 ms timer throughout. */
    assert_true(ticks > 100);
    assert_int_equal(order[0], 1);
    assert_int_equal(order[1], 2);
    reopen(f);
    store_rec_t rec;
    assert_int_equal(store_get(f->st, (const uint8_t *)"a", 1, &rec), 0);
    assert_memory_equal(rec.value, "three", 5);
    assert_int_equal(store_get(f->st, (const uint8_t *)"b", 1, &rec), 0);
    assert_int_equal(store_count(f->st), 2);
}

typedef struct {
    uint64_t count;
    uint64_t x[2];
} acc_t;

static int acc_one(const uint8_t *key, size_t key_len, ring_id_t pos, const store_rec_t *rec,
                   void *arg)
{
    (void)pos;
    acc_t *a = arg;
    uint64_t h[2];
    kv_digest_record(key, key_len, rec->version, h);
    a->count++;
    a->x[0] ^= h[0];
    a->x[1] ^= h[1];
    return 0;
}

static void check_digests(store_t *st)
{
    ring_id_t cuts[] = {0,
                        1,
                        0x4000000000000000ull,
                        0x8000000000000000ull,
                        0xfff0000000000000ull,
                        0xffffffffffffffffull,
                        0x1234567890abcdefull};
    size_t nc = sizeof cuts / sizeof cuts[0];
    for (size_t i = 0; i < nc; i++)
        for (size_t j = 0; j < nc; j++) {
            uint64_t count, d[2];
            assert_int_equal(store_digest(st, cuts[i], cuts[j], &count, d), 0);
            acc_t a = {0, {0, 0}};
            assert_true(store_scan(st, cuts[i], cuts[j], 0, NULL, 0, SIZE_MAX, acc_one, &a) >= 0);
            assert_int_equal(count, a.count);
            assert_true(d[0] == a.x[0] && d[1] == a.x[1]);
        }
}

static void test_store_digest_matches_scan(void **state)
{
    fixture_t *f = *state;
    norder = 0;
    char key[32];
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        assert_int_equal(put(f->st, key, 100 + (uint64_t)i, "v"), 1);
    }
    for (int i = 0; i < 3000; i += 5) {
        snprintf(key, sizeof key, "key-%d", i);
        assert_int_equal(store_remove(f->st, (const uint8_t *)key, strlen(key)), 0);
    }
    assert_int_equal(store_count(f->st), 2400);
    assert_int_equal(store_after_commit(f->st, on_commit, (void *)1), 0);
    run_until(f, &norder, 1);
    check_digests(f->st);
    /* Pending changes of existing keys count in digests and scans alike. */
    for (int i = 1; i < 3000; i += 7) {
        snprintf(key, sizeof key, "key-%d", i);
        if (i % 5)
            assert_int_equal(put(f->st, key, 10000 + (uint64_t)i, "w"), 1);
    }
    check_digests(f->st);
    uint64_t count, d[2];
    assert_int_equal(store_digest(f->st, 0, 0, &count, d), 0);
    assert_int_equal(count, 2400);
    reopen(f);
    uint64_t count2, d2[2];
    assert_int_equal(store_digest(f->st, 0, 0, &count2, d2), 0);
    assert_int_equal(count2, count);
    assert_true(d[0] == d2[0] && d[1] == d2[1]);
    check_digests(f->st);
}

static int patch(store_t *st, const char *key, uint64_t hlc, uint64_t base, uint32_t off,
                 const char *bytes, kv_version_t *current)
{
    return store_patch_opid(st, (const uint8_t *)key, strlen(key), (kv_version_t){hlc, 1},
                            (kv_opid_t){7, hlc}, (kv_version_t){base, 1}, off, bytes, strlen(bytes),
                            current);
}

static void assert_value(store_t *st, const char *key, uint64_t hlc, const void *want, size_t len)
{
    store_rec_t rec;
    assert_int_equal(store_get(st, (const uint8_t *)key, strlen(key), &rec), 0);
    assert_int_equal(rec.version.hlc, hlc);
    assert_int_equal(rec.flags, 0);
    assert_int_equal(rec.value_len, len);
    assert_memory_equal(rec.value, want, len);
}

/* A patch is built from the copy it names, staged or committed, and only from that copy. */
static void test_store_patch(void **state)
{
    fixture_t *f = *state;
    norder = 0;
    kv_version_t cur;
    assert_int_equal(put(f->st, "a", 10, "hello world"), 1);
    /* On the staged record, twice (the second replaces the overlay entry it reads). */
    assert_int_equal(patch(f->st, "a", 11, 10, 6, "there", &cur), 1);
    assert_int_equal(cur.hlc, 11);
    assert_int_equal(patch(f->st, "a", 12, 11, 0, "J", NULL), 1);
    assert_value(f->st, "a", 12, "Jello there", 11);
    store_rec_t rec;
    assert_int_equal(store_get(f->st, (const uint8_t *)"a", 1, &rec), 0);
    assert_int_equal(rec.opid.client, 7);
    assert_int_equal(rec.opid.seq, 12);
    /* Made against another version, or for one the store already holds: nothing changes. */
    assert_int_equal(patch(f->st, "a", 13, 11, 0, "X", NULL), -ESTALE);
    assert_int_equal(patch(f->st, "a", 12, 11, 0, "X", &cur), 0);
    assert_int_equal(cur.hlc, 12);
    assert_int_equal(patch(f->st, "b", 13, 12, 0, "X", NULL), -ESTALE);
    assert_int_equal(patch(f->st, "a", 13, 12, WIRE_VALUE_MAX, "X", NULL), -EFBIG);
    assert_value(f->st, "a", 12, "Jello there", 11);
    /* A tombstone is no copy to patch. */
    assert_int_equal(store_put(f->st, (const uint8_t *)"t", 1, (kv_version_t){5, 1},
                               WIRE_FLAG_TOMBSTONE, "", 0, NULL),
                     1);
    assert_int_equal(patch(f->st, "t", 6, 5, 0, "X", NULL), -ESTALE);
    assert_int_equal(store_after_commit(f->st, on_commit, (void *)1), 0);
    run_until(f, &norder, 1);
    /* On the committed record, past its end: the gap reads as zeros. */
    assert_int_equal(patch(f->st, "a", 14, 12, 13, "!", NULL), 1);
    assert_value(f->st, "a", 14, "Jello there\0\0!", 14);
    check_digests(f->st);
    assert_int_equal(store_after_commit(f->st, on_commit, (void *)2), 0);
    run_until(f, &norder, 2);
    reopen(f);
    assert_value(f->st, "a", 14, "Jello there\0\0!", 14);
    assert_int_equal(store_bytes(f->st), 14);
    check_digests(f->st);
}

/* How many of the pages of [p, p + len) this process has mapped (/proc/self/pagemap). */
static size_t pages_mapped(const void *p, size_t len)
{
    int fd = open("/proc/self/pagemap", O_RDONLY);
    assert_true(fd >= 0);
    size_t page = (size_t)sysconf(_SC_PAGESIZE), n = 0;
    for (uintptr_t a = (uintptr_t)p & ~(page - 1); a < (uintptr_t)p + len; a += page) {
        uint64_t e = 0;
        assert_int_equal(pread(fd, &e, sizeof e, (off_t)(a / page * sizeof e)), sizeof e);
        n += (e >> 63) & 1;
    }
    close(fd);
    return n;
}

/*
 * Reading a value for a reply: store_head and store_get_to_copy see what
 * store_get sees, and store_value_copy gives the same bytes, from the
 * overlay and from the map. A large committed value is read from the file:
 * its pages are not mapped in (store_get maps them all).
 */
static void test_store_value_copy(void **state)
{
    fixture_t *f = *state;
    norder = 0;
    enum { BIG = 1 << 20 };
    uint8_t *big = malloc(BIG), *out = malloc(BIG);
    assert_non_null(big);
    assert_non_null(out);
    for (size_t i = 0; i < BIG; i++)
        big[i] = (uint8_t)(i * 7 + i / 4096);
    const char *keys[] = {"big1", "big2"};
    for (int k = 0; k < 2; k++)
        assert_int_equal(store_put(f->st, (const uint8_t *)keys[k], 4, (kv_version_t){10 + k, 1}, 0,
                                   big, BIG, NULL),
                         1);
    assert_int_equal(put(f->st, "small", 5, "tiny"), 1);
    store_rec_t rec, head;
    /* Staged: from the overlay. */
    assert_int_equal(store_get_to_copy(f->st, (const uint8_t *)"big1", 4, &rec), 0);
    assert_int_equal(rec.value_len, BIG);
    store_value_copy(f->st, rec.value, rec.value_len, out);
    assert_memory_equal(out, big, BIG);
    assert_int_equal(store_after_commit(f->st, on_commit, (void *)1), 0);
    run_until(f, &norder, 1);

    assert_int_equal(store_head(f->st, (const uint8_t *)"big1", 4, &head), 0);
    assert_int_equal(head.version.hlc, 10);
    assert_int_equal(head.value_len, BIG);
    assert_int_equal(store_get_to_copy(f->st, (const uint8_t *)"big1", 4, &rec), 0);
    assert_int_equal(rec.version.hlc, 10);
    memset(out, 0, BIG);
    store_value_copy(f->st, rec.value, rec.value_len, out);
    assert_memory_equal(out, big, BIG);
    size_t pages = BIG / (size_t)sysconf(_SC_PAGESIZE);
    /* (A lookup maps the B-tree pages it walks, and the kernel maps a few around each.) */
    assert_true(pages_mapped(rec.value, rec.value_len) < pages / 4);
    assert_int_equal(store_get(f->st, (const uint8_t *)"big2", 4, &rec), 0);
    assert_true(pages_mapped(rec.value, rec.value_len) >= pages);
    assert_memory_equal(rec.value, big, BIG);

    assert_int_equal(store_get_to_copy(f->st, (const uint8_t *)"small", 5, &rec), 0);
    char tiny[4];
    store_value_copy(f->st, rec.value, rec.value_len, tiny);
    assert_memory_equal(tiny, "tiny", 4);
    store_value_copy(NULL, "byte", 4, tiny);
    assert_memory_equal(tiny, "byte", 4);
    assert_int_equal(store_head(f->st, (const uint8_t *)"none", 4, &head), -ENOENT);
    assert_int_equal(store_get_to_copy(f->st, (const uint8_t *)"none", 4, &rec), -ENOENT);
    free(big);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_store_staged_visible_and_acked_when_durable, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_store_slow_commit_does_not_block_loop, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_store_digest_matches_scan, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_staged_visible_and_acked_when_durable,
                                        setup_on_loop, teardown),
        cmocka_unit_test_setup_teardown(test_store_digest_matches_scan, setup_on_loop, teardown),
        cmocka_unit_test_setup_teardown(test_store_on_loop_commits_in_commit, setup_on_loop,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_store_auto_mode, setup_auto_tmpfs, teardown_maybe),
        cmocka_unit_test_setup_teardown(test_store_patch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_patch, setup_on_loop, teardown),
        cmocka_unit_test_setup_teardown(test_store_value_copy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_value_copy, setup_on_loop, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
