/*
 * test_kv_quorum.c — the coordinator's count of replica answers.
 *
 * The main case is the default configuration (3 replicas, quorum 2), run
 * through every order in which the replicas can answer and every mix of
 * successes and failures, and checked after each answer against a count
 * made here independently. The rest covers the edges: duplicate and
 * out-of-range answers, every (n, need) for the failure rule, and which
 * answers count as newest and as stale for read repair, and the groups a
 * read needs a quorum of each while placement moves (kv_quorum_require).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdint.h>

#include "kv_quorum.h"

static kv_version_t ver(uint64_t hlc, uint64_t node)
{
    kv_version_t v = {hlc, node};
    return v;
}

static const kv_version_t NOVER = {0, 0};

static kv_quorum_t make(unsigned n, unsigned need)
{
    kv_quorum_t q;
    assert_int_equal(kv_quorum_init(&q, n, need), 0);
    assert_int_equal(kv_quorum_state(&q), KV_QUORUM_PENDING);
    return q;
}

static kv_quorum_state_t reply_ok(kv_quorum_t *q, unsigned idx, uint64_t hlc, uint64_t node)
{
    return kv_quorum_on_reply(q, idx, true, true, ver(hlc, node));
}

static kv_quorum_state_t reply_absent(kv_quorum_t *q, unsigned idx)
{
    return kv_quorum_on_reply(q, idx, true, false, NOVER);
}

static kv_quorum_state_t reply_fail(kv_quorum_t *q, unsigned idx)
{
    return kv_quorum_on_reply(q, idx, false, false, NOVER);
}

static void assert_stale(const kv_quorum_t *q, const unsigned *want, size_t n)
{
    unsigned got[KV_QUORUM_MAX + 1];
    size_t len = kv_quorum_stale(q, got, KV_QUORUM_MAX + 1);
    assert_int_equal(len, n);
    for (size_t k = 0; k < n; k++)
        assert_int_equal(got[k], want[k]);
}

static void test_kv_quorum_init_bounds(void **state)
{
    (void)state;
    kv_quorum_t q;
    assert_int_equal(kv_quorum_init(&q, 0, 0), -EINVAL);
    assert_int_equal(kv_quorum_init(&q, 0, 1), -EINVAL);
    assert_int_equal(kv_quorum_init(&q, 3, 0), -EINVAL);
    assert_int_equal(kv_quorum_init(&q, 3, 4), -EINVAL);
    assert_int_equal(kv_quorum_init(&q, KV_QUORUM_MAX + 1, 1), -EINVAL);
    assert_int_equal(kv_quorum_init(&q, UINT_MAX, 1), -EINVAL);
    assert_int_equal(kv_quorum_init(&q, 1, 1), 0);
    assert_int_equal(kv_quorum_init(&q, KV_QUORUM_MAX, KV_QUORUM_MAX), 0);
    assert_int_equal(kv_quorum_init(&q, KV_QUORUM_MAX, 1), 0);
}

static void test_kv_quorum_init_resets(void **state)
{
    (void)state;
    /* Reusing a struct forgets the previous operation. */
    kv_quorum_t q = make(3, 2);
    reply_ok(&q, 0, 5, 1);
    reply_ok(&q, 1, 6, 1);
    assert_int_equal(kv_quorum_state(&q), KV_QUORUM_MET);
    assert_int_equal(kv_quorum_init(&q, 3, 2), 0);
    assert_int_equal(kv_quorum_state(&q), KV_QUORUM_PENDING);
    assert_int_equal(kv_quorum_newest(&q), -1);
    assert_stale(&q, NULL, 0);
    /* Replica 0 may answer again. */
    reply_ok(&q, 0, 5, 1);
    assert_int_equal(kv_quorum_state(&q), KV_QUORUM_PENDING);
    assert_int_equal(kv_quorum_newest(&q), 0);
}

static void test_kv_quorum_on_reply_every_order_n3_need2(void **state)
{
    (void)state;
    const unsigned perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    for (unsigned p = 0; p < 6; p++)
        for (unsigned mask = 0; mask < 8; mask++) {
            /* Bit k of mask: the k-th answer is a success. */
            kv_quorum_t q = make(3, 2);
            unsigned oks = 0, fails = 0;
            kv_quorum_state_t prev = KV_QUORUM_PENDING;
            for (unsigned k = 0; k < 3; k++) {
                bool success = (mask >> k) & 1;
                unsigned idx = perms[p][k];
                kv_quorum_state_t st =
                    kv_quorum_on_reply(&q, idx, success, success, ver(100 + idx, idx));
                if (success)
                    oks++;
                else
                    fails++;
                kv_quorum_state_t want = oks >= 2     ? KV_QUORUM_MET
                                         : fails >= 2 ? KV_QUORUM_FAILED
                                                      : KV_QUORUM_PENDING;
                if (st != want || kv_quorum_state(&q) != want)
                    fail_msg("order %u%u%u mask %u answer %u: state %d, expected %d", perms[p][0],
                             perms[p][1], perms[p][2], mask, k, (int)st, (int)want);
                /* A decided operation stays decided. */
                if (prev != KV_QUORUM_PENDING)
                    assert_int_equal(st, prev);
                prev = st;
            }
            /* Three answers always decide a 3/2 quorum. */
            assert_int_not_equal(prev, KV_QUORUM_PENDING);
            assert_int_equal(q.ok + q.failed, 3);
        }
}

static void test_kv_quorum_on_reply_met_then_failure(void **state)
{
    (void)state;
    kv_quorum_t q = make(3, 2);
    assert_int_equal(reply_ok(&q, 2, 1, 1), KV_QUORUM_PENDING);
    assert_int_equal(reply_ok(&q, 0, 1, 1), KV_QUORUM_MET);
    /* The third replica failing afterwards changes nothing. */
    assert_int_equal(reply_fail(&q, 1), KV_QUORUM_MET);
}

static void test_kv_quorum_on_reply_failed_then_success(void **state)
{
    (void)state;
    kv_quorum_t q = make(3, 2);
    assert_int_equal(reply_fail(&q, 1), KV_QUORUM_PENDING);
    assert_int_equal(reply_fail(&q, 2), KV_QUORUM_FAILED);
    /* A late success cannot reach 2 any more. */
    assert_int_equal(reply_ok(&q, 0, 1, 1), KV_QUORUM_FAILED);
}

static void test_kv_quorum_on_reply_duplicates_ignored(void **state)
{
    (void)state;
    kv_quorum_t q = make(3, 2);
    /* The same replica's success counted once. */
    assert_int_equal(reply_ok(&q, 1, 10, 1), KV_QUORUM_PENDING);
    assert_int_equal(reply_ok(&q, 1, 10, 1), KV_QUORUM_PENDING);
    assert_int_equal(reply_ok(&q, 1, 99, 1), KV_QUORUM_PENDING);
    assert_int_equal(q.ok, 1);
    /* ... and its first answer's version kept. */
    assert_int_equal(kv_quorum_newest(&q), 1);
    assert_true(q.version[1].hlc == 10);
    /* A later failure from it is ignored too. */
    assert_int_equal(reply_fail(&q, 1), KV_QUORUM_PENDING);
    assert_int_equal(q.failed, 0);

    /* The same replica's failure counted once. */
    assert_int_equal(reply_fail(&q, 0), KV_QUORUM_PENDING);
    assert_int_equal(reply_fail(&q, 0), KV_QUORUM_PENDING);
    assert_int_equal(q.failed, 1);
    /* ... and not turned into a success. */
    assert_int_equal(reply_ok(&q, 0, 50, 0), KV_QUORUM_PENDING);
    assert_int_equal(q.ok, 1);
    assert_int_equal(kv_quorum_newest(&q), 1);

    assert_int_equal(reply_ok(&q, 2, 5, 2), KV_QUORUM_MET);
}

static void test_kv_quorum_on_reply_duplicate_failures_do_not_fail(void **state)
{
    (void)state;
    /* One replica timing out twice is one failure, not the two of 3/2. */
    kv_quorum_t q = make(3, 2);
    assert_int_equal(reply_fail(&q, 2), KV_QUORUM_PENDING);
    assert_int_equal(reply_fail(&q, 2), KV_QUORUM_PENDING);
    assert_int_equal(reply_fail(&q, 2), KV_QUORUM_PENDING);
    assert_int_equal(reply_ok(&q, 0, 1, 1), KV_QUORUM_PENDING);
    assert_int_equal(reply_ok(&q, 0, 1, 1), KV_QUORUM_PENDING);
    assert_int_equal(reply_ok(&q, 1, 1, 1), KV_QUORUM_MET);
}

static void test_kv_quorum_on_reply_out_of_range(void **state)
{
    (void)state;
    kv_quorum_t q = make(3, 2);
    const unsigned bad[] = {3, 4, KV_QUORUM_MAX - 1, KV_QUORUM_MAX, KV_QUORUM_MAX + 1, UINT_MAX};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        assert_int_equal(reply_ok(&q, bad[k], 1000, 9), KV_QUORUM_PENDING);
        assert_int_equal(reply_fail(&q, bad[k]), KV_QUORUM_PENDING);
    }
    assert_int_equal(q.ok, 0);
    assert_int_equal(q.failed, 0);
    assert_int_equal(kv_quorum_newest(&q), -1);
    /* Out-of-range answers also leave a decided state alone. */
    reply_ok(&q, 0, 1, 1);
    reply_fail(&q, 1);
    assert_int_equal(reply_fail(&q, 3), KV_QUORUM_PENDING);
    assert_int_equal(reply_fail(&q, UINT_MAX), KV_QUORUM_PENDING);
    assert_int_equal(reply_ok(&q, 2, 2, 2), KV_QUORUM_MET);
    assert_int_equal(reply_fail(&q, 7), KV_QUORUM_MET);
    assert_int_equal(kv_quorum_newest(&q), 2);
}

static void test_kv_quorum_state_failed_after_n_minus_need_plus_one(void **state)
{
    (void)state;
    for (unsigned n = 1; n <= KV_QUORUM_MAX; n++)
        for (unsigned need = 1; need <= n; need++) {
            kv_quorum_t q = make(n, need);
            unsigned limit = n - need + 1;
            for (unsigned f = 1; f <= limit; f++) {
                kv_quorum_state_t st = reply_fail(&q, f - 1);
                kv_quorum_state_t want = f == limit ? KV_QUORUM_FAILED : KV_QUORUM_PENDING;
                if (st != want)
                    fail_msg("n %u need %u after %u failures: state %d", n, need, f, (int)st);
            }
            /* The others answering successfully cannot rescue it. */
            for (unsigned i = limit; i < n; i++)
                assert_int_equal(reply_ok(&q, i, 1, i), KV_QUORUM_FAILED);
        }
}

static void test_kv_quorum_state_met_after_need_successes(void **state)
{
    (void)state;
    for (unsigned n = 1; n <= KV_QUORUM_MAX; n++)
        for (unsigned need = 1; need <= n; need++) {
            kv_quorum_t q = make(n, need);
            /* As many failures as can be tolerated, first. */
            for (unsigned i = 0; i < n - need; i++)
                assert_int_equal(reply_fail(&q, n - 1 - i), KV_QUORUM_PENDING);
            for (unsigned s = 1; s <= need; s++) {
                kv_quorum_state_t st = reply_ok(&q, s - 1, s, 0);
                kv_quorum_state_t want = s == need ? KV_QUORUM_MET : KV_QUORUM_PENDING;
                if (st != want)
                    fail_msg("n %u need %u after %u successes: state %d", n, need, s, (int)st);
            }
        }
}

static void test_kv_quorum_state_absent_counts_as_success(void **state)
{
    (void)state;
    /* "I do not have the key" is an answer: it counts towards the quorum. */
    kv_quorum_t q = make(3, 2);
    assert_int_equal(reply_absent(&q, 0), KV_QUORUM_PENDING);
    assert_int_equal(reply_absent(&q, 1), KV_QUORUM_MET);
    assert_int_equal(kv_quorum_newest(&q), -1);
    assert_stale(&q, NULL, 0);
}

static void test_kv_quorum_newest_none(void **state)
{
    (void)state;
    kv_quorum_t q = make(3, 2);
    assert_int_equal(kv_quorum_newest(&q), -1);
    reply_fail(&q, 0);
    assert_int_equal(kv_quorum_newest(&q), -1);
    reply_absent(&q, 1);
    assert_int_equal(kv_quorum_newest(&q), -1);
    reply_fail(&q, 2);
    assert_int_equal(kv_quorum_newest(&q), -1);
}

static void test_kv_quorum_newest_picks_largest_hlc(void **state)
{
    (void)state;
    kv_quorum_t q = make(5, 3);
    reply_ok(&q, 0, 10, 9);
    assert_int_equal(kv_quorum_newest(&q), 0);
    reply_ok(&q, 3, 30, 1);
    assert_int_equal(kv_quorum_newest(&q), 3);
    reply_ok(&q, 1, 20, UINT64_MAX);
    assert_int_equal(kv_quorum_newest(&q), 3);
    reply_absent(&q, 2);
    assert_int_equal(kv_quorum_newest(&q), 3);
    reply_ok(&q, 4, 31, 0);
    assert_int_equal(kv_quorum_newest(&q), 4);
}

static void test_kv_quorum_newest_ties_broken_by_node(void **state)
{
    (void)state;
    /* Same clock reading from two coordinators: the larger node id wins. */
    kv_quorum_t q = make(3, 2);
    reply_ok(&q, 0, 50, 7);
    reply_ok(&q, 1, 50, 3);
    assert_int_equal(kv_quorum_newest(&q), 0);
    reply_ok(&q, 2, 50, 8);
    assert_int_equal(kv_quorum_newest(&q), 2);

    /* Regardless of the order of the answers. */
    q = make(3, 2);
    reply_ok(&q, 2, 50, 8);
    reply_ok(&q, 1, 50, 3);
    reply_ok(&q, 0, 50, 7);
    assert_int_equal(kv_quorum_newest(&q), 2);
}

static void test_kv_quorum_newest_equal_versions(void **state)
{
    (void)state;
    /* Replicas in agreement: any of them is the newest; none is stale. */
    kv_quorum_t q = make(3, 3);
    reply_ok(&q, 2, 77, 4);
    reply_ok(&q, 0, 77, 4);
    reply_ok(&q, 1, 77, 4);
    int best = kv_quorum_newest(&q);
    assert_true(best >= 0 && best < 3);
    assert_true(q.version[best].hlc == 77 && q.version[best].node == 4);
    assert_stale(&q, NULL, 0);
}

static void test_kv_quorum_newest_ignores_failures(void **state)
{
    (void)state;
    /* A failed answer's version, however large, is not data. */
    kv_quorum_t q = make(3, 2);
    kv_quorum_on_reply(&q, 0, false, true, ver(UINT64_MAX, UINT64_MAX));
    reply_ok(&q, 1, 5, 1);
    assert_int_equal(kv_quorum_newest(&q), 1);
    /* Nor is an "absent" answer's version. */
    kv_quorum_on_reply(&q, 2, true, false, ver(UINT64_MAX, 1));
    assert_int_equal(kv_quorum_newest(&q), 1);
}

static void test_kv_quorum_stale_older_versions(void **state)
{
    (void)state;
    kv_quorum_t q = make(5, 3);
    reply_ok(&q, 0, 10, 1);
    reply_ok(&q, 1, 30, 2);
    reply_ok(&q, 2, 20, 3);
    reply_ok(&q, 3, 30, 1); /* same hlc, smaller node: older */
    reply_ok(&q, 4, 30, 2); /* same as the newest: up to date */
    assert_int_equal(kv_quorum_newest(&q), 1);
    const unsigned want[] = {0, 2, 3};
    assert_stale(&q, want, 3);
}

static void test_kv_quorum_stale_absent_replicas(void **state)
{
    (void)state;
    /* A replica without the key while another has it needs the value. */
    kv_quorum_t q = make(3, 2);
    reply_absent(&q, 0);
    reply_ok(&q, 1, 10, 1);
    reply_absent(&q, 2);
    const unsigned want[] = {0, 2};
    assert_stale(&q, want, 2);
    /* Whatever version an "absent" answer happens to carry. */
    q = make(3, 2);
    kv_quorum_on_reply(&q, 0, true, false, ver(UINT64_MAX, UINT64_MAX));
    reply_ok(&q, 1, 10, 1);
    kv_quorum_on_reply(&q, 2, true, false, ver(10, 1));
    assert_int_equal(kv_quorum_newest(&q), 1);
    assert_stale(&q, want, 2);
}

static void test_kv_quorum_stale_excludes_failed_and_silent(void **state)
{
    (void)state;
    kv_quorum_t q = make(5, 2);
    reply_fail(&q, 0);
    reply_ok(&q, 1, 10, 1);
    reply_ok(&q, 2, 20, 1);
    /* 3 never answered; 4 failed with something that looks older. */
    kv_quorum_on_reply(&q, 4, false, true, ver(1, 1));
    const unsigned want[] = {1};
    assert_stale(&q, want, 1);
    assert_int_equal(kv_quorum_newest(&q), 2);
}

static void test_kv_quorum_stale_excludes_newest(void **state)
{
    (void)state;
    kv_quorum_t q = make(1, 1);
    reply_ok(&q, 0, 10, 1);
    assert_stale(&q, NULL, 0);
    q = make(2, 1);
    reply_ok(&q, 1, 10, 1);
    assert_stale(&q, NULL, 0);
}

static void test_kv_quorum_stale_none_found(void **state)
{
    (void)state;
    /* Everyone agrees the key is absent: nothing to repair. */
    kv_quorum_t q = make(3, 2);
    reply_absent(&q, 0);
    reply_absent(&q, 1);
    reply_absent(&q, 2);
    assert_stale(&q, NULL, 0);
    q = make(3, 2);
    assert_stale(&q, NULL, 0);
}

static void test_kv_quorum_stale_respects_cap(void **state)
{
    (void)state;
    kv_quorum_t q = make(KV_QUORUM_MAX, 1);
    for (unsigned i = 0; i < KV_QUORUM_MAX; i++)
        reply_ok(&q, i, i == 9 ? 100 : i, 1);
    unsigned got[KV_QUORUM_MAX + 4];
    for (size_t k = 0; k < sizeof got / sizeof got[0]; k++)
        got[k] = 0xdead;
    assert_int_equal(kv_quorum_stale(&q, got, 0), 0);
    assert_int_equal(got[0], 0xdead);
    assert_int_equal(kv_quorum_stale(&q, got, 3), 3);
    assert_int_equal(got[0], 0);
    assert_int_equal(got[1], 1);
    assert_int_equal(got[2], 2);
    assert_int_equal(got[3], 0xdead);
    /* Room for all of them: every replica but the newest, in index order. */
    assert_int_equal(kv_quorum_stale(&q, got, KV_QUORUM_MAX + 4), KV_QUORUM_MAX - 1);
    for (unsigned k = 0, i = 0; i < KV_QUORUM_MAX; i++) {
        if (i == 9)
            continue;
        assert_int_equal(got[k++], i);
    }
    assert_int_equal(got[KV_QUORUM_MAX - 1], 0xdead);
}

/* Groups: bad masks, too many, or added after answers are refused. */
static void test_kv_quorum_require_bounds(void **state)
{
    (void)state;
    kv_quorum_t q = make(5, 2);
    assert_int_equal(kv_quorum_require(&q, 0, 2), -EINVAL);
    assert_int_equal(kv_quorum_require(&q, 1u << 5, 1), -EINVAL);
    assert_int_equal(kv_quorum_require(&q, 0x07, 0), -EINVAL);
    assert_int_equal(kv_quorum_require(&q, 0x07, 2), 0);
    assert_int_equal(kv_quorum_require(&q, 0x1c, 2), 0);
    for (unsigned g = 2; g < KV_QUORUM_GROUPS; g++)
        assert_int_equal(kv_quorum_require(&q, 0x01u << (g % 5), 1), 0);
    assert_int_equal(kv_quorum_require(&q, 0x01, 1), -EINVAL);
    kv_quorum_t r = make(3, 2);
    reply_ok(&r, 0, 1, 1);
    assert_int_equal(kv_quorum_require(&r, 0x07, 2), -EINVAL);
}

/*
 * A read while placement moves: new set {0,1,2}, old set {2,3,4} (one
 * replica in both), 2 of each. Every order of answers and every mix of
 * successes and failures, checked after each answer against a count made
 * here.
 */
static void test_kv_quorum_require_every_order_moving(void **state)
{
    (void)state;
    const unsigned n = 5, fresh = 0x07, old = 0x1c;
    unsigned perm[5] = {0, 1, 2, 3, 4};
    unsigned orders = 0;
    for (;;) {
        for (unsigned mix = 0; mix < 1u << n; mix++) {
            kv_quorum_t q = make(n, 2);
            assert_int_equal(kv_quorum_require(&q, fresh, 2), 0);
            assert_int_equal(kv_quorum_require(&q, old, 2), 0);
            unsigned ok = 0, failed = 0, ok_new = 0, ok_old = 0, bad_new = 0, bad_old = 0;
            kv_quorum_state_t st = KV_QUORUM_PENDING;
            for (unsigned k = 0; k < n && st == KV_QUORUM_PENDING; k++) {
                unsigned i = perm[k];
                bool success = mix >> i & 1u;
                st = success ? reply_absent(&q, i) : reply_fail(&q, i);
                ok += success;
                failed += !success;
                ok_new += success && (fresh >> i & 1u);
                ok_old += success && (old >> i & 1u);
                bad_new += !success && (fresh >> i & 1u);
                bad_old += !success && (old >> i & 1u);
                kv_quorum_state_t want = KV_QUORUM_PENDING;
                if (failed > n - 2 || bad_new > 1 || bad_old > 1)
                    want = KV_QUORUM_FAILED;
                else if (ok >= 2 && ok_new >= 2 && ok_old >= 2)
                    want = KV_QUORUM_MET;
                assert_int_equal(st, want);
            }
            /* Every answer in: met exactly when each set had two. */
            unsigned all_new = 0, all_old = 0;
            for (unsigned i = 0; i < n; i++) {
                all_new += (mix >> i & 1u) && (fresh >> i & 1u);
                all_old += (mix >> i & 1u) && (old >> i & 1u);
            }
            assert_int_equal(st == KV_QUORUM_MET, all_new >= 2 && all_old >= 2);
        }
        orders++;
        /* Next permutation (lexicographic). */
        int a = (int)n - 2;
        while (a >= 0 && perm[a] > perm[a + 1])
            a--;
        if (a < 0)
            break;
        int b = (int)n - 1;
        while (perm[b] < perm[a])
            b--;
        unsigned t = perm[a];
        perm[a] = perm[b];
        perm[b] = t;
        for (int l = a + 1, r = (int)n - 1; l < r; l++, r--) {
            t = perm[l];
            perm[l] = perm[r];
            perm[r] = t;
        }
    }
    assert_int_equal(orders, 120);
}

/*
 * The case groups are for: the new set's copies are not there yet, two of
 * the old set's are. Two answers from the new set alone (absent) do not
 * decide; the old set's copy is the newest.
 */
static void test_kv_quorum_require_old_set_copy_found(void **state)
{
    (void)state;
    kv_quorum_t q = make(6, 2);
    assert_int_equal(kv_quorum_require(&q, 0x07, 2), 0);
    assert_int_equal(kv_quorum_require(&q, 0x38, 2), 0);
    assert_int_equal(reply_absent(&q, 0), KV_QUORUM_PENDING);
    assert_int_equal(reply_absent(&q, 1), KV_QUORUM_PENDING);
    assert_int_equal(reply_ok(&q, 4, 7, 1), KV_QUORUM_PENDING);
    assert_int_equal(reply_ok(&q, 3, 5, 1), KV_QUORUM_MET);
    assert_int_equal(kv_quorum_newest(&q), 4);
    unsigned want[] = {0, 1, 3};
    assert_stale(&q, want, 3);
}

/* A group smaller than need (the old set's other members down) needs all of it. */
static void test_kv_quorum_require_need_capped(void **state)
{
    (void)state;
    kv_quorum_t q = make(4, 2);
    assert_int_equal(kv_quorum_require(&q, 0x07, 2), 0);
    assert_int_equal(kv_quorum_require(&q, 0x08, 2), 0);
    assert_int_equal(reply_ok(&q, 0, 1, 1), KV_QUORUM_PENDING);
    assert_int_equal(reply_ok(&q, 1, 1, 1), KV_QUORUM_PENDING);
    assert_int_equal(reply_absent(&q, 3), KV_QUORUM_MET);
    kv_quorum_t r = make(4, 2);
    assert_int_equal(kv_quorum_require(&r, 0x08, 2), 0);
    assert_int_equal(reply_fail(&r, 3), KV_QUORUM_FAILED);
}

/* Replicas asked later: counted towards the newest, never making a met quorum fail. */
static void test_kv_quorum_extend(void **state)
{
    (void)state;
    kv_quorum_t q = make(3, 2);
    assert_int_equal(kv_quorum_extend(&q, 2), -EINVAL);
    assert_int_equal(kv_quorum_extend(&q, KV_QUORUM_MAX + 1), -EINVAL);
    assert_int_equal(reply_absent(&q, 0), KV_QUORUM_PENDING);
    assert_int_equal(reply_absent(&q, 1), KV_QUORUM_MET);
    assert_int_equal(reply_ok(&q, 4, 1, 1), KV_QUORUM_MET); /* not asked yet: ignored */
    assert_int_equal(kv_quorum_extend(&q, 6), 0);
    assert_int_equal(reply_fail(&q, 3), KV_QUORUM_MET);
    assert_int_equal(reply_fail(&q, 5), KV_QUORUM_MET);
    assert_int_equal(reply_ok(&q, 4, 9, 2), KV_QUORUM_MET);
    assert_int_equal(kv_quorum_newest(&q), 4);
    unsigned want[] = {0, 1};
    assert_stale(&q, want, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kv_quorum_init_bounds),
        cmocka_unit_test(test_kv_quorum_init_resets),
        cmocka_unit_test(test_kv_quorum_on_reply_every_order_n3_need2),
        cmocka_unit_test(test_kv_quorum_on_reply_met_then_failure),
        cmocka_unit_test(test_kv_quorum_on_reply_failed_then_success),
        cmocka_unit_test(test_kv_quorum_on_reply_duplicates_ignored),
        cmocka_unit_test(test_kv_quorum_on_reply_duplicate_failures_do_not_fail),
        cmocka_unit_test(test_kv_quorum_on_reply_out_of_range),
        cmocka_unit_test(test_kv_quorum_state_failed_after_n_minus_need_plus_one),
        cmocka_unit_test(test_kv_quorum_state_met_after_need_successes),
        cmocka_unit_test(test_kv_quorum_state_absent_counts_as_success),
        cmocka_unit_test(test_kv_quorum_newest_none),
        cmocka_unit_test(test_kv_quorum_newest_picks_largest_hlc),
        cmocka_unit_test(test_kv_quorum_newest_ties_broken_by_node),
        cmocka_unit_test(test_kv_quorum_newest_equal_versions),
        cmocka_unit_test(test_kv_quorum_newest_ignores_failures),
        cmocka_unit_test(test_kv_quorum_stale_older_versions),
        cmocka_unit_test(test_kv_quorum_stale_absent_replicas),
        cmocka_unit_test(test_kv_quorum_stale_excludes_failed_and_silent),
        cmocka_unit_test(test_kv_quorum_stale_excludes_newest),
        cmocka_unit_test(test_kv_quorum_stale_none_found),
        cmocka_unit_test(test_kv_quorum_stale_respects_cap),
        cmocka_unit_test(test_kv_quorum_require_bounds),
        cmocka_unit_test(test_kv_quorum_require_every_order_moving),
        cmocka_unit_test(test_kv_quorum_require_old_set_copy_found),
        cmocka_unit_test(test_kv_quorum_require_need_capped),
        cmocka_unit_test(test_kv_quorum_extend),
    };
    return cmocka_run_group_tests_name("kv_quorum", tests, NULL, NULL);
}
