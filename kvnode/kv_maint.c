/*
 * kv_maint.c — the store's maintenance: every sync period the authority of
 * a range compares it with each replica and streams over what a replica
 * lacks (kv_stream.c), and asks its successor to do the same towards it
 * (which is how a newcomer receives its range, and a restarted node what
 * it missed). After a clean round it purges old tombstones everywhere and
 * tells the node just past the replica set to hand back and drop its extra
 * copy. A leaving node streams everything to its successors first.
 */
#include "kv_i.h"

#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t older_than_hlc;
    unsigned count;
    uint16_t key_len[PURGE_BATCH];
    kv_version_t version[PURGE_BATCH];
    uint8_t key[PURGE_BATCH][WIRE_KEY_MAX];
    /* the last record visited: where the next round's scan resumes */
    ring_id_t last_pos;
    uint16_t last_len;
    uint8_t last_key[WIRE_KEY_MAX];
} purge_t;

static int collect_purge(const uint8_t *key, size_t key_len, ring_id_t pos, const store_rec_t *rec,
                         void *arg)
{
    purge_t *p = arg;
    p->last_pos = pos;
    p->last_len = (uint16_t)key_len;
    memcpy(p->last_key, key, key_len);
    if (!(rec->flags & WIRE_FLAG_TOMBSTONE) || rec->version.hlc >= p->older_than_hlc)
        return 0;
    memcpy(p->key[p->count], key, key_len);
    p->key_len[p->count] = (uint16_t)key_len;
    p->version[p->count] = rec->version;
    return ++p->count == PURGE_BATCH;
}

bool kv_maint_purge_local(node_t *n, const uint8_t *key, size_t key_len, kv_version_t version)
{
    store_rec_t rec;
    return store_head(n->store, key, key_len, &rec) == 0 && (rec.flags & WIRE_FLAG_TOMBSTONE) &&
           kv_version_cmp(rec.version, version) == 0 && store_remove(n->store, key, key_len) == 0;
}

/*
 * Tombstones older than the grace period are forgotten, on every replica at
 * once, but only after a round found every replica in sync: a replica that
 * missed the delete would otherwise hand the old value back. (One that is
 * away for longer than the grace period still can: the grace period is the
 * longest outage a delete survives, as with Cassandra's gc_grace.)
 *
 * Each round looks at no more than PURGE_SCAN records, resuming after the
 * last one the previous round looked at and starting over at the range's
 * start once it reached the end: the loop's work per round is bounded
 * however many records the range holds.
 */
void kv_maint_purge(node_t *n, ring_id_t lo, ring_id_t hi, const ring_id_t *reps, size_t nrep)
{
    uint64_t now = kv_wall_ms();
    uint64_t grace = (uint64_t)n->cfg.tombstone_grace_s * 1000u;
    if (now <= grace)
        return;
    purge_t *p = calloc(1, sizeof *p);
    if (!p)
        return;
    p->older_than_hlc = (now - grace) << 16;
    struct kv *kv = n->kv;
    bool resume = kv->purge_has_cursor && kv->purge_lo == lo && kv->purge_hi == hi;
    /* Collect first: removing inside the scan would invalidate its cursor. */
    int visited = store_scan(n->store, lo, hi, kv->purge_pos, resume ? kv->purge_key : NULL,
                             kv->purge_len, PURGE_SCAN, collect_purge, p);
    if (visited < 0 || (visited < PURGE_SCAN && p->count < PURGE_BATCH)) {
        kv->purge_has_cursor = false; /* reached the end: start over next time */
    } else {
        kv->purge_has_cursor = true;
        kv->purge_lo = lo;
        kv->purge_hi = hi;
        kv->purge_pos = p->last_pos;
        kv->purge_len = p->last_len;
        memcpy(kv->purge_key, p->last_key, p->last_len);
    }
    for (unsigned k = 0; k < p->count; k++) {
        wire_msg_t req;
        wire_init(&req, WIRE_REPL_PUT, 0);
        req.key_bytes = p->key[k];
        req.key_len = p->key_len[k];
        req.version = p->version[k];
        req.flags = WIRE_FLAG_TOMBSTONE | WIRE_FLAG_PURGE;
        for (size_t i = 0; i < nrep; i++) {
            const char *addr = reps[i] == n->self ? NULL : node_book_get(n, reps[i]);
            if (addr)
                rpc_call(n->rpc, addr, &req, n->cfg.timeout_ms, rpc_ignore_answer,
                         "tombstone purge");
        }
        kv_maint_purge_local(n, p->key[k], p->key_len[k], p->version[k]);
    }
    if (p->count)
        log_info("kv", "purged %u tombstones older than %u s", p->count, n->cfg.tombstone_grace_s);
    free(p);
}

/*
 * Every replica of our range is in sync. The node just past the replica
 * set (successor N-1) held the range before a join pushed it out of the
 * set: tell it to hand back anything we lack and then forget the range.
 */
static void drop_extra_copies(node_t *n, ring_id_t lo, ring_id_t hi)
{
    ring_id_t succ[RING_SUCC_MAX];
    size_t ns = ring_state_succ_list(n->rs, succ, RING_SUCC_MAX);
    if (n->cfg.replicas < 1 || ns < n->cfg.replicas)
        return;
    ring_id_t target = succ[n->cfg.replicas - 1];
    const char *addr = node_book_get(n, target);
    if (!addr || target == n->self)
        return;
    wire_msg_t req;
    wire_init(&req, WIRE_SYNC_DROP, 0);
    req.lo = lo;
    req.hi = hi;
    node_fill(n, &req.node, n->self);
    rpc_call(n->rpc, addr, &req, n->cfg.timeout_ms, rpc_ignore_answer, "drop request");
}

static void round_account(struct kv *kv, uint64_t missing)
{
    kv->round_missing += missing;
    if (--kv->round_pending == 0) {
        kv->round_active = false;
        kv->repl_lost_checked = kv->repl_lost_round; /* this round looked for them */
        kv->primary_keys = kv->round_primary;
        uint64_t under = kv->round_short ? kv->round_primary : kv->round_missing;
        kv->under_replicated = under < kv->round_primary ? under : kv->round_primary;
        memcpy(kv->last_reps, kv->round_reps, sizeof kv->last_reps);
        kv->last_nrep = kv->round_nrep;
        if (kv->under_replicated == 0 && !kv->round_short) {
            kv_maint_purge(kv->n, kv->round_lo, kv->round_hi, kv->round_reps, kv->round_nrep);
            drop_extra_copies(kv->n, kv->round_lo, kv->round_hi);
        }
    }
}

/*
 * Forgetting a dropped range: DROP_BATCH records per loop iteration, each
 * batch resuming after the last record removed, so a large range never
 * holds the loop for long and is walked once, not once per batch.
 */
struct kv_drop {
    node_t *n;
    struct kv_drop *next;
    ring_id_t lo, hi;
    uint64_t timer;
    unsigned total;
    unsigned count;
    bool has_cursor;
    ring_id_t cursor_pos;
    uint16_t key_len[DROP_BATCH];
    ring_id_t pos[DROP_BATCH];
    uint8_t key[DROP_BATCH][WIRE_KEY_MAX];
};

static int collect_drop(const uint8_t *key, size_t key_len, ring_id_t pos, const store_rec_t *rec,
                        void *arg)
{
    (void)rec;
    struct kv_drop *d = arg;
    memcpy(d->key[d->count], key, key_len);
    d->key_len[d->count] = (uint16_t)key_len;
    d->pos[d->count] = pos;
    return ++d->count == DROP_BATCH;
}

static void drop_free(struct kv_drop *d)
{
    struct kv_drop **pp = &d->n->kv->drops;
    while (*pp && *pp != d)
        pp = &(*pp)->next;
    if (*pp)
        *pp = d->next;
    if (d->timer)
        loop_timer_cancel(d->n->loop, d->timer);
    free(d);
}

void kv_maint_fini(node_t *n)
{
    while (n->kv->drops)
        drop_free(n->kv->drops);
}

static void drop_step(loop_t *loop, void *arg)
{
    struct kv_drop *d = arg;
    node_t *n = d->n;
    d->timer = 0;
    unsigned last = d->count;
    d->count = 0;
    /* The last key of the previous batch is still in d->key[last - 1]. */
    const uint8_t *after = d->has_cursor ? d->key[last - 1] : NULL;
    uint8_t after_key[WIRE_KEY_MAX];
    uint16_t after_len = d->has_cursor ? d->key_len[last - 1] : 0;
    if (after)
        memcpy(after_key, after, after_len);
    int rc = store_scan(n->store, d->lo, d->hi, d->cursor_pos, after ? after_key : NULL, after_len,
                        DROP_BATCH, collect_drop, d);
    for (unsigned k = 0; k < d->count; k++)
        if (store_remove(n->store, d->key[k], d->key_len[k]) == 0)
            d->total++;
    if (rc < 0 || d->count < DROP_BATCH || !(d->timer = loop_timer_add(loop, 0, drop_step, d))) {
        if (d->total)
            log_info("kv", "dropped %u records no longer replicated here", d->total);
        drop_free(d);
        return;
    }
    d->has_cursor = true;
    d->cursor_pos = d->pos[d->count - 1];
}

bool kv_maint_dropping(const node_t *n, ring_id_t pos)
{
    for (const struct kv_drop *d = n->kv->drops; d; d = d->next)
        if (ring_in_oc(pos, d->lo, d->hi))
            return true;
    return false;
}

void kv_maint_drop(node_t *n, ring_id_t lo, ring_id_t hi)
{
    struct kv_drop *d = calloc(1, sizeof *d);
    if (!d)
        return;
    d->n = n;
    d->lo = lo;
    d->hi = hi;
    d->next = n->kv->drops;
    n->kv->drops = d;
    drop_step(n->loop, d);
}

/* Our copy of (lo, hi] went back to its authority: forget it. */
static void on_drop_synced(sync_t *s)
{
    node_t *n = s->n;
    n->kv->served--;
    if (kv_sync_failed(s->ks) || kv_sync_missing(s->ks)) {
        log_info("kv", "kept a range for now: hand-back to %s incomplete", s->addr);
        return;
    }
    kv_maint_drop(n, kv_sync_lo(s->ks), kv_sync_hi(s->ks));
}

void kv_maint_serve_drop(node_t *n, const uint8_t *ident, size_t ident_len, const wire_msg_t *m)
{
    ring_id_t pred;
    /* Never our own range, and only with a known predecessor to check against. */
    if (!ring_state_pred(n->rs, &pred) || ring_in_oc(m->hi, pred, n->self) ||
        ring_in_oc(n->self, m->lo, m->hi) || m->node.id == n->self) {
        node_reply_error(n, ident, ident_len, m->req_id, EINVAL,
                         "refusing to drop a range this node is responsible for");
        return;
    }
    uint64_t count, digest[2];
    sync_t *s = NULL;
    if (store_digest(n->store, m->lo, m->hi, &count, digest) == 0 && count > 0 &&
        n->kv->served < SYNC_SERVE_MAX &&
        (s = kv_stream_start(n, m->node.id, m->node.addr, m->lo, m->hi, on_drop_synced))) {
        n->kv->served++;
        /*
         * Hand back only records younger than the tombstone grace period:
         * the authority may have purged the delete of anything older, and
         * an old copy offered now would bring the deleted value back.
         */
        uint64_t now = kv_wall_ms(), grace = (uint64_t)n->cfg.tombstone_grace_s * 1000u;
        s->min_hlc = now > grace ? (now - grace) << 16 : 0;
    }
    wire_msg_t r;
    wire_init(&r, WIRE_SYNC_DROP | WIRE_REPLY, m->req_id);
    node_send(n, ident, ident_len, &r);
}

static void on_round_session(sync_t *s)
{
    round_account(s->n->kv, kv_sync_missing(s->ks));
}

void kv_tick(node_t *n)
{
    struct kv *kv = n->kv;
    if (node_place_on(n)) {
        kv_parts_tick(n);
        return;
    }
    uint64_t now = loop_now_ms(n->loop);
    uint64_t period = n->cfg.stabilize_ms * 8;
    if (kv->round_active || now - kv->last_round_ms < period || n->leaving)
        return;
    kv->last_round_ms = now;
    kv->repl_lost_round = kv_repl_lost(n);
    ring_id_t pred;
    ring_id_t reps[KV_QUORUM_MAX];
    size_t nrep = node_replica_set(n, reps, KV_QUORUM_MAX);
    bool alone = ring_state_succ(n->rs) == n->self;
    if (!ring_state_pred(n->rs, &pred) && !alone)
        return; /* our range is unknown until stabilize finds a predecessor */
    if (alone)
        pred = n->self;
    uint64_t count, digest[2];
    if (store_digest(n->store, pred, n->self, &count, digest) < 0)
        return;
    kv->round_primary = count;
    kv->round_lo = pred;
    memcpy(kv->round_reps, reps, sizeof kv->round_reps);
    kv->round_nrep = nrep;
    kv->round_hi = n->self;
    kv->round_missing = 0;
    kv->round_short = nrep < n->cfg.replicas;
    kv->round_pending = 1; /* held until every session is started */
    kv->round_active = true;
    for (size_t i = 1; i < nrep; i++) {
        const char *addr = node_book_get(n, reps[i]);
        if (addr && kv_stream_start(n, reps[i], addr, pred, n->self, on_round_session))
            kv->round_pending++;
        else
            kv->round_missing += count; /* this replica goes unchecked this round */
    }
    /* Ask our successor for whatever of our range it has and we lack. */
    if (!alone) {
        const char *addr = node_book_get(n, ring_state_succ(n->rs));
        wire_msg_t req;
        wire_init(&req, WIRE_SYNC_PULL, 0);
        req.lo = pred;
        req.hi = n->self;
        node_fill(n, &req.node, n->self);
        if (addr)
            rpc_call(n->rpc, addr, &req, n->cfg.timeout_ms, rpc_ignore_answer, "pull request");
    }
    round_account(kv, 0);
}

void kv_handoff_finish(node_t *n)
{
    struct kv *kv = n->kv;
    if (!kv->handoff_done)
        return;
    void (*done)(node_t *) = kv->handoff_done;
    kv->handoff_done = NULL;
    if (kv->handoff_timer) {
        loop_timer_cancel(n->loop, kv->handoff_timer);
        kv->handoff_timer = 0;
    }
    done(n);
}

static void on_handoff_session(sync_t *s)
{
    struct kv *kv = s->n->kv;
    if (kv_sync_missing(s->ks))
        log_warn("kv", "hand-off to %s incomplete: %llu keys not confirmed", s->addr,
                 (unsigned long long)kv_sync_missing(s->ks));
    if (kv->handoff_pending && --kv->handoff_pending == 0)
        kv_handoff_finish(s->n);
}

static void on_handoff_timeout(loop_t *loop, void *arg)
{
    (void)loop;
    node_t *n = arg;
    n->kv->handoff_timer = 0;
    log_warn("kv", "hand-off did not finish in time; leaving anyway");
    kv_handoff_finish(n);
}

void kv_handoff(node_t *n, void (*done)(node_t *n))
{
    struct kv *kv = n->kv;
    kv->handoff_done = done;
    kv->handoff_pending = 0;
    if (node_place_on(n)) {
        /* Every partition we hold now belongs to others (we are out of the placement). */
        if (kv_parts_handoff(n) == 0) {
            kv_handoff_finish(n);
            return;
        }
        kv->handoff_timer = loop_timer_add(n->loop, HANDOFF_LIMIT_MS, on_handoff_timeout, n);
        return;
    }
    ring_id_t succ[RING_SUCC_MAX];
    size_t ns = ring_state_succ_list(n->rs, succ, RING_SUCC_MAX);
    /* Without us, each key's replica set extends by one more successor. */
    size_t targets = ns < n->cfg.replicas ? ns : n->cfg.replicas;
    if (store_count(n->store) > 0) {
        for (size_t i = 0; i < targets; i++) {
            const char *addr = node_book_get(n, succ[i]);
            if (addr && kv_stream_start(n, succ[i], addr, n->self, n->self, on_handoff_session))
                kv->handoff_pending++;
        }
    }
    if (kv->handoff_pending == 0) {
        kv_handoff_finish(n);
        return;
    }
    log_info("kv", "handing %llu keys to %u successors", (unsigned long long)store_count(n->store),
             kv->handoff_pending);
    kv->handoff_timer = loop_timer_add(n->loop, HANDOFF_LIMIT_MS, on_handoff_timeout, n);
}
