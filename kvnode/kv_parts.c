/*
 * kv_parts.c — the store's maintenance under token placement (node_place.c):
 * anti-entropy and data moves per partition (a contiguous range of
 * positions, ring_place_part_range) instead of per Chord range.
 *
 * Every sync period a node makes a pass over the partitions, at most
 * PART_JOBS jobs at a time. It first sends each member it shares
 * partitions with one SYNC_SUMS: the (count, digest) of every partition
 * the member belongs to and it is the primary of, or holds records of as
 * another member; the member answers with its own sums of those that
 * differ. Then:
 *
 * - Of a partition whose primary it is and that differs somewhere (or a
 *   member did not answer), and of one slice of the partitions (every
 *   PART_SLICES-th, the next slice each pass) whatever their sums, it
 *   streams over what each other member of the replica set lacks
 *   (kv_stream.c) and asks one of them in turn to stream back what it
 *   lacks itself (a new primary after a join, a primary back from a
 *   restart). After a clean job the partition's old tombstones are purged
 *   on every member; the slice is what brings every partition to that.
 * - Of a partition it is another member of and that differs somewhere, it
 *   streams over what the other members lack (and only that): copies are
 *   remade even while the primaries change faster than their passes run.
 * - Of a partition it holds records of but is not a member of (a join put
 *   others in its place, a member left, the data directory was written
 *   under another placement), it streams every record to every member and
 *   then forgets its copy: the hand-off. Meanwhile it refuses replica
 *   writes to the partition (kv_parts_draining), so no copy it is about to
 *   drop counts towards a write quorum, and its streams start after the
 *   writes accepted before are committed; it drops only if every record was
 *   confirmed and it is still no member, and only after the placement has
 *   been stable for a while, so that a node whose member table is still
 *   filling does not move data back and forth. Until then it streams its
 *   records to the members every pass without dropping anything (a push):
 *   no copy waits on a node that is no member while the members die.
 *
 * Joins and leaves therefore move data between the nodes whose tokens
 * neighbour the newcomer's (or the leaver's): many nodes, each a share.
 */
#include "kv_i.h"

#include "log.h"
#include "ring_place.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum {
    PART_JOBS = 4, /* partitions worked on at once */
    /*
     * Besides the partitions whose sums differ, a pass gives a job to every
     * PART_SLICES-th partition (the next slice each time), so each gets its
     * tombstone purge every PART_SLICES sync periods (128 s at the default
     * period, against an hour's tombstone grace): a job for every partition
     * every period cost an idle 5-node ring 18 times the requests of Chord
     * placement's one range per node (docs/BENCHMARKS.md). A leave's pass
     * covers everything.
     */
    PART_SLICES = 64, /* at most: fewer when the tombstone grace is short (slices()) */
    /* Members a pass sends sums to; partitions shared with more get jobs. */
    SUMS_PEERS_MAX = 64,
    /* The placement must have been stable this many sync periods before a hand-off. */
    HANDOFF_STABLE_PERIODS = 2,
    /*
     * Reads stop asking the sets before a change only in a clean pass that
     * began this many sync periods after it: every node's hand-offs have
     * had HANDOFF_STABLE_PERIODS to start and the rest to go through.
     */
    MOVE_SETTLE_PERIODS = HANDOFF_STABLE_PERIODS + 4,
    /* Members a leave remembers as failed (more: the leave's time limit decides). */
    LEAVE_FAILED_MAX = 32,
};

/* The sums' verdict per partition (kv_parts.clean). */
enum { SUMS_UNKNOWN = 0, SUMS_CLEAN = 1, SUMS_DIFFER = 2 };

typedef struct part_job {
    struct kv_parts *ps;
    struct part_job *prev, *next; /* the jobs in flight */
    uint32_t part;
    ring_id_t lo, hi;
    bool handoff; /* not a member: hand everything over, then forget it */
    bool primary; /* of a member: the primary's job also counts, fetches back and purges */
    bool nowhere; /* a hand-off no member could be asked to take */
    uint64_t count;
    uint64_t peer_max;  /* the most records a member said it holds */
    unsigned pending;   /* stream sessions still running */
    unsigned confirmed; /* members that confirmed every record */
    uint64_t missing;   /* keys some member may still lack */
    ring_id_t reps[KV_QUORUM_MAX];
    size_t nrep;
} part_job_t;

/* One SYNC_SUMS in flight: the sums sent to one member. */
typedef struct sums_req {
    struct kv_parts *ps;
    unsigned gen; /* the sums phase it belongs to (kv_parts.sums_gen) */
    ring_id_t peer;
    size_t n, cap;
    wire_sum_t *sums; /* ascending partitions */
} sums_req_t;

struct kv_parts {
    node_t *n;
    bool active;
    bool leaving;       /* the pass is the leave's hand-off */
    bool leave_pending; /* the leave's pass starts when this one ends */
    part_job_t *live;   /* jobs in flight (freed at shutdown with their sessions) */
    uint32_t next;      /* the partition the pass looks at next */
    unsigned jobs;      /* in flight */
    unsigned turn;      /* which other member a primary asks to stream back */
    unsigned slice;     /* the partitions of this pass: those equal to it mod slices() */
    uint64_t start_ms, last_ms;
    uint64_t acc_primary, acc_missing, acc_lacking;
    bool acc_short;
    bool acc_kept;      /* records of a partition we are no member of stay here for now */
    bool acc_unchecked; /* a member went unchecked (even of an empty partition of ours) */
    unsigned handed;
    /*
     * The leave: per partition, whether it is handed over (a later pass of
     * the leave skips it); partitions kept by this pass; the timer of the
     * next pass; members a stream of the leave failed to (the next passes
     * go around them).
     */
    uint8_t *left;
    unsigned left_kept, left_nowhere;
    uint64_t left_timer;
    ring_id_t left_failed[LEAVE_FAILED_MAX];
    size_t nleft_failed;
    /*
     * The pass's sums: per partition, SUMS_CLEAN (we summed it as a member
     * and every other member answered the same: no job), SUMS_DIFFER (one
     * answered otherwise) or SUMS_UNKNOWN (not summed, or a member did not
     * answer), and then our record count; sums_pending SYNC_SUMS still out.
     */
    uint8_t *clean;
    uint64_t *own;
    unsigned sums_pending;
    unsigned sums_gen; /* answers of an abandoned sums phase are ignored */
    /*
     * The last finished pass: keys short of copies, keys our members hold
     * beyond our own copy (a new primary still filling), when it began.
     */
    uint64_t last_under, last_lacking, last_began;
    bool counted; /* a pass has finished */
};

/*
 * Slices per sweep: PART_SLICES, or fewer so that a sweep takes at most
 * half the tombstone grace (a tombstone then goes within 1.5 graces, as
 * under Chord placement, whose rounds purge every range every period).
 */
/* The sync period: a pass starts at most once per period. */
static uint64_t period_ms(const node_t *n)
{
    return (uint64_t)n->cfg.stabilize_ms * 8;
}

static unsigned slices(const node_t *n)
{
    uint64_t period = period_ms(n);
    uint64_t fit = (uint64_t)n->cfg.tombstone_grace_s * 1000 / 2 / (period ? period : 1);
    return fit >= PART_SLICES ? PART_SLICES : fit ? (unsigned)fit : 1;
}

static struct kv_parts *parts(node_t *n)
{
    if (!n->kv->parts) {
        n->kv->parts = calloc(1, sizeof *n->kv->parts);
        if (n->kv->parts)
            n->kv->parts->n = n;
    }
    return n->kv->parts;
}

/* Jobs in flight belong to their sessions' callbacks, which never run after this. */
void kv_parts_fini(node_t *n)
{
    struct kv_parts *ps = n->kv->parts;
    if (!ps)
        return;
    while (ps->live) {
        part_job_t *j = ps->live;
        ps->live = j->next;
        free(j);
    }
    if (ps->left_timer)
        loop_timer_cancel(n->loop, ps->left_timer);
    free(ps->left);
    free(ps->clean);
    free(ps->own);
    free(ps);
    n->kv->parts = NULL;
}

static void job_link(struct kv_parts *ps, part_job_t *j)
{
    j->prev = NULL;
    j->next = ps->live;
    if (ps->live)
        ps->live->prev = j;
    ps->live = j;
    ps->jobs++;
}

static void job_unlink(struct kv_parts *ps, part_job_t *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        ps->live = j->next;
    if (j->next)
        j->next->prev = j->prev;
    ps->jobs--;
}

/* Whether this node is in the replica set reps[0..nrep). */
static bool is_member(const node_t *n, const ring_id_t *reps, size_t nrep)
{
    for (size_t i = 0; i < nrep; i++)
        if (reps[i] == n->self)
            return true;
    return false;
}

static void pump(struct kv_parts *ps);
static void pass_start(struct kv_parts *ps, bool leaving);

static void on_leave_again(loop_t *loop, void *arg)
{
    (void)loop;
    struct kv_parts *ps = arg;
    ps->left_timer = 0;
    if (ps->n->kv->handoff_done) /* the leave's time limit has not run out */
        pass_start(ps, true);
}

/*
 * A leave's pass ends: the node goes once every partition is handed over.
 * Partitions kept (a member of the new set did not confirm: killed and not
 * yet known to be, busy, short of space) get another pass a little later,
 * until the leave's time limit (kv_handoff) lets the node go anyway: a
 * copy dropped after one failed pass was sometimes the last one, when the
 * set's other members were killed nodes. It goes at once when no member of
 * any partition left can be asked (all leaving too, or failed).
 */
static void leave_pass_end(struct kv_parts *ps)
{
    node_t *n = ps->n;
    if (ps->left_kept == ps->left_nowhere && ps->left_nowhere > 0)
        log_warn("kv",
                 "leave: %u partitions kept: no member of their sets can take them (leaving too, "
                 "or unreachable)",
                 ps->left_nowhere);
    /* All that is left has nobody to go to (a whole ring stopped): nothing to wait for. */
    if (ps->left_kept == ps->left_nowhere || !n->kv->handoff_done) {
        kv_handoff_finish(n);
        return;
    }
    log_info("kv", "leave: %u partitions not handed over yet; trying again", ps->left_kept);
    ps->left_timer = loop_timer_add(n->loop, period_ms(n), on_leave_again, ps);
    if (!ps->left_timer)
        kv_handoff_finish(n);
}

static void pass_end(struct kv_parts *ps)
{
    node_t *n = ps->n;
    ps->active = false;
    ps->last_ms = loop_now_ms(n->loop);
    if (ps->leave_pending) {
        ps->leave_pending = false;
        pass_start(ps, true);
        return;
    }
    if (ps->leaving) {
        leave_pass_end(ps);
        return;
    }
    ps->last_under =
        ps->acc_short || ps->acc_missing > ps->acc_primary ? ps->acc_primary : ps->acc_missing;
    /*
     * Placement moved (node_key_read_set): reads stop asking the old sets
     * once nothing here waits to move — our partitions whole on every
     * member, nothing kept for a hand-off — in a pass that began well after
     * every node's hand-offs could start (they wait for a stable placement
     * first, and others run theirs on the same schedule as ours). What
     * other nodes still hold is not known here: docs/PLACEMENT.md.
     */
    uint64_t changed = loop_now_ms(n->loop) - node_place_stable_ms(n);
    if (n->place.nfrom && ps->acc_missing == 0 && !ps->acc_kept && !ps->acc_unchecked &&
        ps->start_ms >= changed + MOVE_SETTLE_PERIODS * period_ms(n))
        node_place_moved(n);
    ps->last_lacking = ps->acc_lacking;
    ps->last_began = ps->start_ms;
    ps->counted = true;
    ps->slice = (ps->slice + 1) % slices(n);
    n->kv->repl_lost_checked = n->kv->repl_lost_round;
    if (ps->handed)
        log_info("kv", "handed %u partitions to their replica sets", ps->handed);
}

static void job_end(part_job_t *j)
{
    struct kv_parts *ps = j->ps;
    node_t *n = ps->n;
    char a[RING_ID_HEX_MAX], b[RING_ID_HEX_MAX], c[RING_ID_HEX_MAX];
    log_debug("kv", "partition %u %s: %llu records, %llu missing, set %s %s %s", (unsigned)j->part,
              j->handoff   ? "hand-off"
              : j->primary ? "sync"
                           : "push",
              (unsigned long long)j->count, (unsigned long long)j->missing,
              j->nrep > 0 ? node_hex(n, j->reps[0], a) : "-",
              j->nrep > 1 ? node_hex(n, j->reps[1], b) : "-",
              j->nrep > 2 ? node_hex(n, j->reps[2], c) : "-");
    if (j->handoff) {
        ring_id_t reps[KV_QUORUM_MAX];
        size_t nrep = ps->leaving ? 0 : node_place_part(n, j->part, reps, KV_QUORUM_MAX);
        bool member = is_member(n, reps, nrep);
        ps->acc_kept |= j->missing > 0 && !ps->leaving && !member;
        /*
         * A leave goes around members that failed, but a partition counts
         * as handed over only with as many copies as a write needs.
         */
        size_t need = j->nrep < n->cfg.write_quorum ? j->nrep : n->cfg.write_quorum;
        if (ps->leaving && j->missing == 0 && j->confirmed < need)
            j->missing = j->count;
        if (j->missing == 0) {
            ps->handed++;
            if (ps->leaving && ps->left)
                ps->left[j->part] = 1;
            /* Every record was offered and is confirmed there (writes were refused meanwhile). */
            if (!ps->leaving && !member)
                kv_maint_drop(n, j->lo, j->hi);
        } else {
            ps->left_kept += ps->leaving;
            ps->left_nowhere += ps->leaving && j->nowhere;
            if (!ps->leaving) /* (a leave's passes log their count) */
                log_info("kv", "kept partition %u for now: hand-off incomplete", (unsigned)j->part);
        }
    } else if (j->primary) {
        /* Records a member holds beyond ours: we lack them (ask_back fetches them). */
        uint64_t lacking = j->peer_max > j->count ? j->peer_max - j->count : 0;
        ps->acc_primary += j->count + lacking;
        ps->acc_lacking += lacking;
        ps->acc_missing += j->missing + lacking;
        if (j->missing == 0 && j->nrep >= n->cfg.replicas)
            kv_maint_purge(n, j->lo, j->hi, j->reps, j->nrep);
    }
    job_unlink(ps, j);
    free(j);
    pump(ps);
}

static void leave_failed_add(struct kv_parts *ps, ring_id_t id)
{
    for (size_t i = 0; i < ps->nleft_failed; i++)
        if (ps->left_failed[i] == id)
            return;
    if (ps->nleft_failed < LEAVE_FAILED_MAX)
        ps->left_failed[ps->nleft_failed++] = id;
}

static void on_session(sync_t *s)
{
    part_job_t *j = s->arg;
    if (s->peer_count > j->peer_max)
        j->peer_max = s->peer_count;
    if (kv_sync_failed(s->ks) || kv_sync_missing(s->ks))
        j->missing += kv_sync_missing(s->ks) ? kv_sync_missing(s->ks) : j->count;
    else
        j->confirmed++;
    j->ps->acc_unchecked |= kv_sync_failed(s->ks);
    /*
     * A member a stream of the leave failed to (killed and not yet known to
     * be, refusing because it hands the partition over or leaves too) is
     * gone around by the leave's next passes; a leaving node runs no
     * failure detector of its own (no ticks), so the failure also counts a
     * miss (node_peer_missed ignores a busy member).
     */
    if (j->ps->leaving && kv_sync_failed(s->ks)) {
        leave_failed_add(j->ps, s->target);
        node_peer_missed(j->ps->n, s->target, "hand-off stream");
    }
    if (--j->pending == 0)
        job_end(j);
}

/*
 * Whether a leave hands a partition to this member now: not to one that is
 * leaving too (it would refuse), nor to one a stream of this leave failed
 * to (it may be dead, not yet declared failed: waiting for it kept the copy
 * here past the leave's end). The others must confirm, at least W of them.
 */
static bool leave_target(struct kv_parts *ps, ring_id_t id)
{
    node_t *n = ps->n;
    const ring_member_t *e = n->members ? ring_members_find(n->members, id) : NULL;
    if (e && (e->state == RING_MEMBER_LEAVING || e->state == RING_MEMBER_LEFT))
        return false;
    for (size_t i = 0; i < ps->nleft_failed; i++)
        if (ps->left_failed[i] == id)
            return false;
    return true;
}

/* Start the sessions of one partition's job; false when none could start. */
static bool job_start(struct kv_parts *ps, part_job_t *j)
{
    node_t *n = ps->n;
    for (size_t i = 0; i < j->nrep; i++) {
        if (j->reps[i] == n->self)
            continue;
        if (ps->leaving && !leave_target(ps, j->reps[i]))
            continue; /* the primaries' passes fill it in later */
        const char *addr = node_book_get(n, j->reps[i]);
        sync_t *s = addr ? kv_stream_start(n, j->reps[i], addr, j->lo, j->hi, on_session) : NULL;
        if (!s) {
            j->missing += j->count; /* this member goes unchecked this pass */
            ps->acc_unchecked = true;
            continue;
        }
        /*
         * A hand-off offers every record, however old (unlike a SYNC_DROP
         * hand-back to an authority that had them): the members may have
         * none of them, and only what was offered and confirmed is dropped.
         */
        s->arg = j;
        j->pending++;
    }
    return j->pending > 0;
}

/*
 * A hand-off's streams start once every replica write accepted before its
 * drain began is committed: a range scan does not see a record whose first
 * write is still committing, and the drop afterwards would. A node shutting
 * down (its rpc gone) leaves the job to kv_parts_fini.
 */
static void on_handoff_committed(int rc, void *arg)
{
    part_job_t *j = arg;
    struct kv_parts *ps = j->ps;
    if (!ps->n->rpc)
        return;
    if (rc < 0 || !job_start(ps, j)) {
        j->missing += j->count; /* not handed over: kept */
        j->nowhere = rc == 0;
        job_end(j);
    }
}

/* Ask one other member to stream back whatever of the partition it has and we lack. */
static void ask_back(struct kv_parts *ps, const part_job_t *j)
{
    node_t *n = ps->n;
    if (j->nrep < 2)
        return;
    ring_id_t from = j->reps[1 + ps->turn % (j->nrep - 1)];
    const char *addr = node_book_get(n, from);
    if (!addr)
        return;
    wire_msg_t req;
    wire_init(&req, WIRE_SYNC_PULL, 0);
    req.lo = j->lo;
    req.hi = j->hi;
    node_fill(n, &req.node, n->self);
    rpc_call(n->rpc, addr, &req, n->cfg.timeout_ms, rpc_ignore_answer, "pull request");
}

/* Whether placement and the failed set are as they were at time t. */
static bool place_unchanged_since(node_t *n, uint64_t t)
{
    return node_place_stable_ms(n) >= loop_now_ms(n->loop) - t && n->place.down_changed_ms < t;
}

static void pump(struct kv_parts *ps)
{
    node_t *n = ps->n;
    uint32_t count = ring_place_part_count(n->cfg.id_bits);
    bool may_hand = ps->leaving || node_place_stable_ms(n) >= HANDOFF_STABLE_PERIODS * period_ms(n);
    unsigned sweep = slices(n); /* ps->slice is below it: the configuration does not change */
    /* Sums compared against sets that changed since (a member down, a join) vouch for nothing. */
    bool same_place = place_unchanged_since(n, ps->start_ms);
    while (ps->active && ps->sums_pending == 0 && ps->jobs < PART_JOBS && ps->next < count) {
        uint32_t p = ps->next++;
        if (ps->leaving && ps->left && ps->left[p])
            continue; /* handed over in an earlier pass of the leave */
        ring_id_t reps[KV_QUORUM_MAX];
        size_t nrep = node_place_part(n, p, reps, KV_QUORUM_MAX);
        bool primary = nrep > 0 && reps[0] == n->self && !ps->leaving;
        if (primary && same_place && ps->clean && ps->clean[p] == SUMS_CLEAN &&
            p % sweep != ps->slice) {
            ps->acc_primary += ps->own[p]; /* the same records on every member */
            ps->acc_short |= nrep < n->cfg.replicas;
            continue;
        }
        bool member = is_member(n, reps, nrep);
        ring_id_t lo, hi;
        ring_place_part_range(p, n->cfg.id_bits, &lo, &hi);
        uint64_t records, digest[2];
        if (store_digest(n->store, lo, hi, &records, digest) < 0)
            records = 0;
        ps->acc_kept |= !primary && !member && records > 0 && !may_hand;
        /*
         * Pushes: another member streams what it holds where the sums
         * differ, and a node that is no member streams what it holds to
         * the members while the placement is too new to hand over and drop
         * (the hand-off waits for a stable placement, which churn may not
         * give for a long time). Otherwise a partition whose primaries
         * came and went (newcomers joining, then killed or leaving) was
         * refreshed by none while its holders died one by one, and was
         * lost (ring_churn under load, token placement).
         */
        bool push = !primary && !n->leaving && records > 0 && nrep > 0 &&
                    (member ? ps->clean && ps->clean[p] == SUMS_DIFFER : !may_hand);
        if (!primary && !push && (member || records == 0 || !may_hand || nrep == 0))
            continue;
        part_job_t *j = calloc(1, sizeof *j);
        if (!j) {
            ps->next = count; /* out of memory: end this pass, the next one tries again */
            break;
        }
        j->ps = ps;
        j->part = p;
        j->lo = lo;
        j->hi = hi;
        j->nrep = nrep;
        memcpy(j->reps, reps, nrep * sizeof *reps);
        j->count = records;
        j->primary = primary;
        if (push) {
            if (job_start(ps, j))
                job_link(ps, j);
            else
                free(j);
            continue;
        }
        if (!primary) {
            /* Draining from here on (kv_parts_draining): no new copy is acknowledged. */
            j->handoff = true;
            job_link(ps, j);
            if (store_after_commit(n->store, on_handoff_committed, j) < 0) {
                ps->left_kept += ps->leaving;
                job_unlink(ps, j);
                free(j);
            }
            continue;
        }
        /* Even an empty copy: the sessions' digests say what the members hold. */
        ps->acc_short |= j->nrep < n->cfg.replicas;
        ask_back(ps, j);
        if (!job_start(ps, j)) {
            /* Nothing could start: account it at once. */
            ps->acc_primary += j->count;
            ps->acc_missing += j->missing;
            free(j);
            continue;
        }
        job_link(ps, j);
    }
    if (ps->active && ps->sums_pending == 0 && ps->jobs == 0 && ps->next >= count)
        pass_end(ps);
}

/* A member we could not compare with: not clean, but not known to differ either. */
static void sums_unknown(struct kv_parts *ps, uint32_t part)
{
    if (ps->clean[part] == SUMS_CLEAN)
        ps->clean[part] = SUMS_UNKNOWN;
}

/* A member's answer to our sums: the partitions it holds otherwise need jobs. */
static void on_sums(int rc, const wire_msg_t *r, void *arg)
{
    sums_req_t *q = arg;
    struct kv_parts *ps = q->ps;
    /* No reply with ECANCELED: our rpc is shutting down (a peer's ERROR has one). */
    if ((rc == -ECANCELED && !r) || q->gen != ps->sums_gen) {
        free(q->sums);
        free(q);
        return;
    }
    node_t *n = ps->n;
    uint32_t count = ring_place_part_count(n->cfg.id_bits);
    wire_sum_t *theirs = rc == 0 ? malloc((q->n ? q->n : 1) * sizeof *theirs) : NULL;
    int k = theirs ? wire_sums_decode(r->value, r->value_len, count, theirs, q->n) : -1;
    if (rc == 0)
        node_peer_alive(n, q->peer);
    if (k < 0) {
        /* No answer, an older node, or one we cannot read: each the slow way. */
        for (size_t i = 0; i < q->n; i++)
            sums_unknown(ps, q->sums[i].part);
    }
    for (int i = 0; i < k; i++)
        ps->clean[theirs[i].part] = SUMS_DIFFER;
    free(theirs);
    free(q->sums);
    free(q);
    if (--ps->sums_pending == 0)
        pump(ps);
}

/* The request to peer among reqs[0..*nreq), added if there is room. */
static sums_req_t *sums_req_for(struct kv_parts *ps, sums_req_t **reqs, size_t *nreq,
                                ring_id_t peer)
{
    for (size_t k = 0; k < *nreq; k++)
        if (reqs[k]->peer == peer)
            return reqs[k];
    if (*nreq == SUMS_PEERS_MAX)
        return NULL;
    sums_req_t *q = calloc(1, sizeof *q);
    if (q) {
        q->ps = ps;
        q->gen = ps->sums_gen;
        q->peer = peer;
        reqs[(*nreq)++] = q;
    }
    return q;
}

/*
 * Our sums of every partition whose primary we are, and of every other one
 * we are a member of and hold records of, to each other member in one
 * SYNC_SUMS; pump waits for the answers. The partitions of a member we
 * cannot ask get jobs.
 */
static void sums_send(struct kv_parts *ps)
{
    node_t *n = ps->n;
    uint32_t count = ring_place_part_count(n->cfg.id_bits);
    if (!ps->clean) {
        ps->clean = calloc(count, 1);
        ps->own = calloc(count, sizeof *ps->own);
        if (!ps->clean || !ps->own) {
            free(ps->clean);
            free(ps->own);
            ps->clean = NULL;
            ps->own = NULL;
            return; /* out of memory: this pass gives every partition a job */
        }
    }
    memset(ps->clean, SUMS_UNKNOWN, count);
    sums_req_t *reqs[SUMS_PEERS_MAX];
    size_t nreq = 0;
    for (uint32_t p = 0; p < count; p++) {
        ring_id_t reps[KV_QUORUM_MAX], lo, hi;
        size_t nrep = node_place_part(n, p, reps, KV_QUORUM_MAX);
        if (!is_member(n, reps, nrep))
            continue;
        wire_sum_t sum = {.part = p};
        ring_place_part_range(p, n->cfg.id_bits, &lo, &hi);
        if (store_digest(n->store, lo, hi, &sum.count, sum.digest) < 0)
            continue; /* not summed: a job */
        if (reps[0] != n->self && sum.count == 0)
            continue; /* another member's: nothing of ours to push */
        ps->clean[p] = SUMS_CLEAN;
        ps->own[p] = sum.count;
        for (size_t i = 0; i < nrep; i++) {
            if (reps[i] == n->self)
                continue;
            sums_req_t *q = sums_req_for(ps, reqs, &nreq, reps[i]);
            if (q && q->n == q->cap) {
                size_t cap = q->cap ? 2 * q->cap : 64;
                wire_sum_t *grown = realloc(q->sums, cap * sizeof *grown);
                if (grown) {
                    q->sums = grown;
                    q->cap = cap;
                }
            }
            if (q && q->n < q->cap)
                q->sums[q->n++] = sum;
            else
                ps->clean[p] = SUMS_UNKNOWN;
        }
    }
    for (size_t k = 0; k < nreq; k++) {
        sums_req_t *q = reqs[k];
        const char *addr = node_book_get(n, q->peer);
        uint8_t *buf = addr ? malloc(q->n * WIRE_SUM_BYTES + 1) : NULL;
        int rc = -ENOMEM;
        if (buf && wire_sums_encode(q->sums, q->n, buf) == 0) {
            wire_msg_t req;
            wire_init(&req, WIRE_SYNC_SUMS, 0);
            req.value = buf;
            req.value_len = q->n * WIRE_SUM_BYTES;
            /* Not the streams' 4 timeouts: every job of the pass waits for the answers. */
            rc = rpc_call(n->rpc, addr, &req, n->cfg.timeout_ms * 2, on_sums, q);
        }
        free(buf); /* a sent value was copied */
        if (rc == 0) {
            ps->sums_pending++;
            continue;
        }
        for (size_t i = 0; i < q->n; i++)
            sums_unknown(ps, q->sums[i].part);
        free(q->sums);
        free(q);
    }
}

static void pass_start(struct kv_parts *ps, bool leaving)
{
    node_t *n = ps->n;
    ps->active = true;
    ps->leaving = leaving;
    if (leaving && !ps->left) /* without it, every pass of the leave offers everything again */
        ps->left = calloc(ring_place_part_count(n->cfg.id_bits), 1);
    ps->next = 0;
    ps->turn++;
    ps->start_ms = loop_now_ms(n->loop);
    ps->acc_primary = ps->acc_missing = ps->acc_lacking = 0;
    ps->acc_short = false;
    ps->acc_kept = false;
    ps->acc_unchecked = false;
    ps->handed = 0;
    ps->left_kept = ps->left_nowhere = 0;
    n->kv->repl_lost_round = kv_repl_lost(n);
    if (!leaving)
        sums_send(ps);
    pump(ps);
}

void kv_parts_tick(node_t *n)
{
    struct kv_parts *ps = parts(n);
    /* A newcomer's partial member table would move data to the wrong places. */
    if (!ps || ps->active || n->leaving || !node_members_complete(n))
        return;
    if (ps->last_ms && loop_now_ms(n->loop) - ps->last_ms < period_ms(n))
        return;
    pass_start(ps, false);
}

unsigned kv_parts_handoff(node_t *n)
{
    struct kv_parts *ps = parts(n);
    if (!ps || store_count(n->store) == 0)
        return 0;
    if (ps->active && ps->sums_pending) {
        /* Still comparing sums, no job started: drop the pass for the leave's. */
        ps->sums_gen++;
        ps->sums_pending = 0;
        ps->active = false;
    } else if (ps->active) {
        /* A pass is under way: no new jobs; the leave's own pass starts when its jobs end. */
        ps->leave_pending = true;
        ps->next = ring_place_part_count(n->cfg.id_bits);
        return 1;
    }
    pass_start(ps, true);
    return ps->active ? 1 : 0;
}

bool kv_parts_draining(const node_t *n, ring_id_t pos)
{
    const struct kv_parts *ps = n->kv->parts;
    /* Leaving: every copy here is about to go, handed over or not yet. */
    if (n->leaving)
        return true;
    for (const part_job_t *j = ps ? ps->live : NULL; j; j = j->next)
        if (j->handoff && ring_in_oc(pos, j->lo, j->hi))
            return true;
    return kv_maint_dropping(n, pos);
}

void kv_parts_stats(node_t *n, uint64_t *primary, uint64_t *under)
{
    struct kv_parts *ps = parts(n);
    *primary = 0;
    *under = 0;
    if (!ps)
        return;
    /* Primary keys counted now: O(buckets) per partition, from the store's digests. */
    uint32_t count = ring_place_part_count(n->cfg.id_bits);
    for (uint32_t p = 0; p < count; p++) {
        ring_id_t reps[KV_QUORUM_MAX], lo, hi;
        uint64_t keys, digest[2];
        if (node_place_part(n, p, reps, KV_QUORUM_MAX) == 0 || reps[0] != n->self)
            continue;
        ring_place_part_range(p, n->cfg.id_bits, &lo, &hi);
        if (store_digest(n->store, lo, hi, &keys, digest) == 0)
            *primary += keys;
    }
    /*
     * Short of copies: as the last pass found, unless none has finished yet
     * or the placement changed since it began (then nothing is known to be
     * in place). Keys only our members hold yet count as ours (and as
     * short of a copy).
     */
    *primary += ps->last_lacking;
    bool confirmed = ps->counted && place_unchanged_since(n, ps->last_began);
    *under = !confirmed || ps->last_under > *primary ? *primary : ps->last_under;
}
