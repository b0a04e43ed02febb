/*
 * kv_coord.c — the coordinator: the authority of a key (it owns
 * (pred, self]) serves clients' KV_GET/KV_PUT. It asks every replica
 * (itself and the next N-1 successors; the others answer reads with
 * versions only), answers once R (reads) or W (writes) succeeded, fetching
 * the value only if a remote replica holds a newer version than its own,
 * and repairs replicas that answered with something older.
 *
 * Versions come from the coordinator's hybrid logical clock with its id as
 * tie-break, so concurrent writers leave all replicas with one winner.
 * Writes to one key are serialised at its authority; a conditional write
 * (put-if-absent, put-if-version) is a quorum read, the check, then a write
 * whose version is above everything the read saw. A patch (bytes at an
 * offset of the value) is applied the same way to the newest copy, and
 * the replicas get only the bytes, with the version they patch. Two nodes
 * that both believe they own a key (during a membership change) can each
 * admit one conditional write; the version order still makes every
 * replica converge on one of them.
 *
 * Exactly-once writes: a client write carries its identity (kv_opid_t).
 * The coordinator remembers recent identities (kv_dedup): a retry of a
 * write it finished is answered with the first answer, a retry of one
 * still queued or running is attached to it and answered with its
 * outcome. Replicas store the identity with the version, so a retry that
 * reaches a coordinator that never saw the first attempt (authority
 * change, forgotten entry) and finds its identity on the newest version
 * answers success with that version instead of failing its condition.
 * Only outcomes that say what happened are remembered (applied, or the
 * condition failed); a write refused or cut short may run again, and the
 * identity check then decides.
 */
#include "kv_i.h"

#include "log.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { OP_GET, OP_PUT } op_kind_t;

struct kv_op;
typedef struct {
    struct kv_op *op;
    unsigned phase;
    unsigned idx;
    bool patch; /* a REPL_PUT carrying only the patch */
} op_call_t;

/* A retry attached to the write it repeats: answered with its outcome. */
typedef struct joiner {
    struct joiner *next;
    uint8_t ident[IDENT_MAX];
    size_t ident_len;
    uint64_t req_id;
} joiner_t;

enum {
    /* Writes queued on one key beyond the one running; more are refused (EAGAIN). */
    QUEUE_MAX = 64,
    /* What the coordinator remembers of client writes (kv_dedup.h). */
    DEDUP_CLIENTS = 1024,
    DEDUP_PER_CLIENT = 256,
    /* The longest a client write waits for a slow replica (op_replica_timeout). */
    REPLICA_WAIT_MAX_MS = 60000,
};

typedef struct kv_op {
    node_t *n;
    struct kv_op *next;    /* in kv->busy (conditional ops on one key) */
    struct kv_op *waiting; /* conditional ops queued behind this one */
    uint8_t ident[IDENT_MAX];
    size_t ident_len;
    uint64_t req_id;
    op_kind_t kind;
    uint8_t key[WIRE_KEY_MAX];
    uint16_t key_len;
    uint8_t cond;
    kv_version_t cond_version;
    uint32_t patch_off;      /* WIRE_COND_PATCH: where pending_value goes in the newest value */
    kv_version_t patch_base; /* the version the patch was applied to (zero: none) */
    /* PUT: the value to write. GET and a conditional put's read: the newest
     * value seen so far. */
    uint8_t *value;
    size_t value_len;
    uint8_t flags;
    /* A conditional put's own value, kept aside during its read phase. */
    uint8_t *pending_value;
    size_t pending_len;
    uint8_t pending_flags;
    kv_version_t version;
    bool have_best;
    unsigned nrep;
    ring_id_t rep[KV_QUORUM_MAX];
    /*
     * rep[0..ncur) is the key's replica set; while placement moves, the
     * read phase also asks rep[ncur..nrep), the rest of its sets before
     * (bit i of old[k]: rep[i] is in the k-th). Writes go to rep[0..ncur).
     */
    unsigned ncur, nold;
    unsigned old[NODE_PLACE_FROM_MAX];
    /*
     * A read that found nothing while placement moves asks every other
     * member too (op_scatter): rep[scatter_from..nrep), scatter_left of
     * them not answered yet (one more while op_scatter is sending).
     */
    bool scattered;
    unsigned scatter_from, scatter_left;
    _Static_assert(1 + NODE_PLACE_FROM_MAX <= KV_QUORUM_GROUPS, "a group per set a read asks");
    kv_quorum_t q;
    unsigned phase; /* 0 read (versions), 1 write, 2 fetch the newest value */
    op_call_t calls[3][KV_QUORUM_MAX];
    /* The newest version seen is held by replica best_idx, whose value we
     * have not got yet (remote replicas answer reads with versions only). */
    bool best_needs_fetch;
    unsigned best_idx;
    bool fetch_tried[KV_QUORUM_MAX];
    unsigned outstanding;
    bool answered;
    bool busy; /* holds the key's conditional slot */
    int worst_rc;
    /* The client write's identity, if it has one, and its entry in kv->dedup. */
    bool has_opid, in_dedup, earlier_unknown;
    kv_opid_t opid;
    /* Read phase: identity of the write that made the newest version seen. */
    kv_opid_t best_opid;
    /* Write phase: write op->version as it is (an earlier attempt's version). */
    bool keep_version;
    /* Loop clock after which the client has given up (0: no budget given). */
    uint64_t deadline_ms;
    joiner_t *joiners;
    /* kv_known: what the op learns is recorded against this ticket. */
    bool has_ticket;
    uint64_t ticket;
    /* Write phase: our copy holds op->version; replicas that took it; one had newer. */
    bool local_ok, acked, newer_seen;
    unsigned wrote;
    uint64_t t0_us; /* arrival, for the latency metric */
    /*
     * Clock from which the op's view of its key holds (0: none): when its
     * quorum read began, or for a view from the known table the last
     * maintenance tick (the tick forgets the table after a stall).
     */
    uint64_t view_ms;
} kv_op_t;

static void op_step(kv_op_t *op);
static void op_begin(kv_op_t *op);
static void op_decide(kv_op_t *op);
static void op_start_phase(kv_op_t *op, unsigned phase);
static void op_maybe_free(kv_op_t *op);
static unsigned op_replica_timeout(const kv_op_t *op);
static void op_fill_repl_put(const kv_op_t *op, wire_msg_t *req, op_call_t *c, bool whole);

enum { KNOWN_BYTES = 16u << 20 };

/*
 * The newest versions this authority knows (kv_known.h): a conditional
 * write whose key's entry still equals our copy checks its condition
 * against that copy, one replica round trip (its write) instead of two.
 * Created on first use; NULL (no memory) only means every op reads a quorum.
 */
static kv_known_t *known(node_t *n)
{
    struct kv *kv = n->kv;
    if (!kv->known)
        kv->known = kv_known_new(KNOWN_BYTES);
    if (!kv->known)
        return NULL;
    kv_known_set_epoch(kv->known, ring_state_epoch(n->rs));
    /*
     * Our maintenance tick is late (we were frozen or starved, and a
     * request may run before the tick notices): the others may have taken
     * our range meanwhile. Nothing is used or learnt until it runs again.
     * (On the clock: the loop's cached time may be from before a freeze.)
     */
    if (!n->tick_ms || loop_clock_ms() - n->tick_ms > node_tick_stall_ms(n)) {
        kv_known_forget(kv->known);
        return NULL;
    }
    return kv->known;
}

void kv_coord_forget(node_t *n)
{
    if (n->kv->known)
        kv_known_forget(n->kv->known);
}

static void known_drop(kv_op_t *op)
{
    if (op->n->kv->known)
        kv_known_drop(op->n->kv->known, op->key, op->key_len);
}

/*
 * The op is over (answered, nothing outstanding): what it saw of every
 * replica may make its key's newest version known.
 */
static void op_known_finish(kv_op_t *op)
{
    kv_known_t *k = op->n->kv->known;
    if (!k || !op->has_ticket)
        return;
    if (op->kind == OP_PUT) {
        if (op->phase != 1 || !op->acked)
            return;
        if (op->newer_seen)
            kv_known_drop(k, op->key, op->key_len);
        else if (op->local_ok && op->wrote == op->nrep)
            kv_known_all_took(k, op->key, op->key_len, op->ticket, op->version);
        return;
    }
    if (op->phase != 0 || op->nrep == 0)
        return;
    for (unsigned i = 0; i < op->nrep; i++) {
        if (!op->q.success[i] || op->q.found[i] != op->have_best ||
            (op->have_best && kv_version_cmp(op->q.version[i], op->version) != 0))
            return;
    }
    store_rec_t rec;
    int rc = store_head(op->n->store, op->key, op->key_len, &rec);
    if (rc == 0 || rc == -ENOENT)
        kv_known_all_agree(k, op->key, op->key_len, op->ticket, op->have_best, op->version, rc == 0,
                           rc == 0 ? rec.version : (kv_version_t){0, 0});
}

static void op_answer_error(kv_op_t *op, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Start an op that waited for its key: conditional ones read first. One
 * whose client gave up while it waited is dropped, never applied: running
 * it would apply a write the client may already report as failed and
 * replace by another.
 */
static void op_start_queued(loop_t *loop, void *arg)
{
    (void)loop;
    kv_op_t *op = arg;
    if (op->deadline_ms && loop_clock_ms() > op->deadline_ms)
        op_answer_error(op, ECANCELED,
                        "dropped unapplied: the client's time ran out while the write was queued");
    else
        op_begin(op);
    op_maybe_free(op);
}

static void op_maybe_free(kv_op_t *op)
{
    if (!op->answered || op->outstanding)
        return;
    op_known_finish(op);
    free(op->value);
    free(op->pending_value);
    free(op);
}

/*
 * Record the outcome of an identified write for its retries. Remembered:
 * applied (rc 0) and a failed condition or invalid request, which say what
 * happened. Forgotten, so a retry runs again: everything that leaves the
 * write unapplied (queue full, dropped, shutting down) or its fate unknown
 * (no quorum, disk full) — running again is then safe, because a
 * conditional write's read finds its own identity if it did land.
 */
static void op_dedup_end(kv_op_t *op, int rc, kv_version_t version)
{
    if (!op->in_dedup)
        return;
    op->in_dedup = false;
    kv_dedup_t *d = op->n->kv->dedup;
    if (rc == 0 || rc == -EEXIST || rc == -ESTALE || rc == -EINVAL)
        kv_dedup_finish(d, op->opid, rc, version);
    else
        kv_dedup_forget(d, op->opid);
}

static void op_free_joiners(kv_op_t *op)
{
    while (op->joiners) {
        joiner_t *j = op->joiners;
        op->joiners = j->next;
        free(j);
    }
}

/* Release the key's conditional slot and start the next op queued on it. */
static void op_release(kv_op_t *op)
{
    if (!op->busy)
        return;
    struct kv *kv = op->n->kv;
    op->busy = false;
    kv_op_t **pp = &kv->busy;
    while (*pp && *pp != op)
        pp = &(*pp)->next;
    if (*pp)
        *pp = op->next;
    kv_op_t *next = op->waiting;
    if (next) {
        /*
         * The next op holds the slot at once (later arrivals queue behind
         * it) but starts from the loop: starting it here could finish it at
         * once and release the next, one stack frame per queued op.
         */
        next->busy = true;
        next->next = kv->busy;
        kv->busy = next;
        if (!loop_timer_add(op->n->loop, 0, op_start_queued, next))
            op_start_queued(op->n->loop, next);
    }
}

static void op_answer_error(kv_op_t *op, int err, const char *fmt, ...)
{
    if (op->answered)
        return;
    op->answered = true;
    node_metrics_coord(&op->n->metrics, op->kind == OP_GET, false, node_metrics_usec() - op->t0_us);
    /* Answered later than its request's handler ran: name the request type. */
    uint8_t serving = op->n->metrics.serving;
    op->n->metrics.serving = op->kind == OP_GET ? WIRE_KV_GET : WIRE_KV_PUT;
    char msg[WIRE_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    op_dedup_end(op, -err, (kv_version_t){0, 0});
    if (op->kind == OP_PUT && op->phase == 1)
        known_drop(op); /* the write may have landed on some replicas */
    node_reply_error(op->n, op->ident, op->ident_len, op->req_id, err, "%s", msg);
    for (joiner_t *j = op->joiners; j; j = j->next)
        node_reply_error(op->n, j->ident, j->ident_len, j->req_id, err, "%s", msg);
    op->n->metrics.serving = serving;
    op_free_joiners(op);
    op_release(op);
}

static void op_answer(kv_op_t *op, wire_msg_t *r)
{
    if (op->answered)
        return;
    op->answered = true;
    node_metrics_coord(&op->n->metrics, op->kind == OP_GET, true, node_metrics_usec() - op->t0_us);
    if (op->kind == OP_PUT)
        op_dedup_end(op, 0, r->version);
    r->req_id = op->req_id;
    node_send(op->n, op->ident, op->ident_len, r);
    for (joiner_t *j = op->joiners; j; j = j->next) {
        r->req_id = j->req_id;
        node_send(op->n, j->ident, j->ident_len, r);
    }
    op_free_joiners(op);
    op_release(op);
}

/*
 * A write decided on a view of its key that another coordinator may have
 * overtaken: it wrote the key after this write was decided (a copy
 * answered newer), or may have (this node stalled since, long enough to be
 * taken over). A conditional write's outcome is then unknown: its retry
 * would find the condition failing whether or not it applied. A patch is
 * answered as an unreached quorum instead: its retry (same identity)
 * re-applies its bytes onto the newest value, or finds its own version
 * newest — it cannot apply twice.
 */
static void op_overtaken(kv_op_t *op)
{
    known_drop(op);
    op->n->metrics.overtaken++;
    if (op->cond == WIRE_COND_PATCH)
        op_answer_error(op, ETIMEDOUT,
                        "another coordinator may have written the key after this patch was "
                        "decided: not settled, retry");
    else
        op_answer_error(op, ENOTRECOVERABLE,
                        "outcome unknown: another coordinator may have written the key after "
                        "this write was decided, without seeing it");
}

static void quorum_failed(kv_op_t *op)
{
    const char *what = op->phase == 0 ? "read" : "write";
    unsigned need = op->q.need;
    if (op->phase == 1 && op->view_ms && op->newer_seen)
        op_overtaken(op);
    else if (op->worst_rc == -ENOSPC)
        op_answer_error(op, ENOSPC, "no space left on %s replica disks", "the");
    else
        op_answer_error(op, ETIMEDOUT, "%s quorum not reached: %u of %u replicas answered, need %u",
                        what, op->q.ok, op->nrep, need);
}

/* A replica's answer, remote or local. */
static void op_on_reply(kv_op_t *op, unsigned phase, unsigned idx, int rc, const wire_msg_t *r,
                        const store_rec_t *local)
{
    if (phase != op->phase)
        return;
    if (rc == -ENOSPC || (rc < 0 && op->worst_rc == 0))
        op->worst_rc = rc;
    if (phase == 0 && op->scatter_left && idx >= op->scatter_from && !op->q.replied[idx])
        op->scatter_left--;
    bool found = false;
    kv_version_t version = {0, 0};
    if (rc == 0 && phase == 0) {
        found = local ? true : r->found;
        version = local ? local->version : r->version;
        uint8_t flags = local ? local->flags : r->flags;
        kv_opid_t opid = local ? local->opid : r->has_opid ? r->opid : (kv_opid_t){0, 0};
        if (found && !kv_version_plausible(version)) {
            log_warn("kv", "a replica answered with a version from the future; ignored");
            rc = -EBADMSG;
            found = false;
        }
        if (found) {
            kv_clock_observe(&op->n->clock, version.hlc);
            if (!op->have_best || kv_version_cmp(version, op->version) > 0) {
                free(op->value);
                op->value = NULL;
                op->value_len = 0;
                op->version = version;
                op->flags = flags;
                op->have_best = true;
                op->best_idx = idx;
                op->best_opid = opid;
                /* Only our own copy comes with its value (a tombstone has none). */
                op->best_needs_fetch = local == NULL && !(flags & WIRE_FLAG_TOMBSTONE);
                if (local) {
                    op->value = malloc(local->value_len ? local->value_len : 1);
                    if (op->value) {
                        memcpy(op->value, local->value, local->value_len);
                        op->value_len = local->value_len;
                    } else {
                        op->best_needs_fetch = true;
                    }
                }
            } else if (kv_version_cmp(version, op->version) == 0 &&
                       !kv_opid_is_set(op->best_opid)) {
                /* One write, one version: a copy made by anti-entropy may lack the identity. */
                op->best_opid = opid;
            }
        }
    }
    kv_quorum_on_reply(&op->q, idx, rc == 0, found, version);
    op_step(op);
}

static void on_remote_reply(int rc, const wire_msg_t *r, void *arg)
{
    op_call_t *c = arg;
    kv_op_t *op = c->op;
    op->outstanding--;
    if (c->patch && r && (rc == -ESTALE || rc == -EPROTONOSUPPORT) && c->phase == op->phase) {
        /* The replica lacks the patch's base (or patches): the same write, whole. */
        wire_msg_t req;
        wire_init(&req, WIRE_REPL_PUT, 0);
        req.key_bytes = op->key;
        req.key_len = op->key_len;
        op_fill_repl_put(op, &req, c, true);
        const char *addr = node_book_get(op->n, op->rep[c->idx]);
        if (addr &&
            rpc_call(op->n->rpc, addr, &req, op_replica_timeout(op), on_remote_reply, c) == 0) {
            op->outstanding++;
            return;
        }
        rc = -EHOSTUNREACH;
        r = NULL;
    }
    if (rc == -ETIMEDOUT)
        node_peer_missed(op->n, op->rep[c->idx], "replica timed out");
    else if (r)
        node_peer_alive(op->n, op->rep[c->idx]);
    bool superseded = false;
    if (c->phase == 1 && rc == 0 && c->phase == op->phase) {
        int cmp = kv_version_cmp(r->version, op->version);
        if (r->applied || cmp == 0)
            op->wrote++;
        else if (cmp > 0)
            op->newer_seen = superseded = true;
    }
    /* A copy that did not arrive becomes a hint, answered or not. */
    if (c->phase == 1)
        kv_repl_end(op->n, op->rep[c->idx], rc, op->key, op->key_len, op->version);
    /*
     * A replica already holding a newer version than a write decided on a
     * view of its key (a condition, a patch's base) does not count towards
     * its quorum: that version's coordinator may have decided it without
     * seeing this write, which would then be lost although acknowledged
     * (this node froze after its stamp, another took the key over). For a
     * plain write, newer just means overwritten: it counts.
     */
    if (superseded && op->view_ms)
        op_on_reply(op, c->phase, c->idx, -ESTALE, NULL, NULL);
    else
        op_on_reply(op, c->phase, c->idx, rc, r, NULL);
    op_maybe_free(op);
}

static void on_local_commit(int rc, void *arg)
{
    op_call_t *c = arg;
    kv_op_t *op = c->op;
    op->outstanding--;
    if (rc < 0)
        kv_coord_forget(op->n); /* our copy lost a write the replicas may have */
    else if (op->local_ok)
        op->wrote++;
    else if (op->view_ms)
        rc = -ESTALE; /* our copy is newer: as a replica's in on_remote_reply */
    op_on_reply(op, c->phase, c->idx, rc, NULL, NULL);
    op_maybe_free(op);
}

/* Read repair: bring replicas that answered with older data up to date. */
static void op_repair(kv_op_t *op)
{
    unsigned stale[KV_QUORUM_MAX];
    size_t ns = kv_quorum_stale(&op->q, stale, KV_QUORUM_MAX);
    for (size_t i = 0; i < ns; i++) {
        if (stale[i] >= op->ncur)
            continue; /* the old set: its copies are moving away */
        ring_id_t id = op->rep[stale[i]];
        if (id == op->n->self) {
            store_put(op->n->store, op->key, op->key_len, op->version, op->flags, op->value,
                      op->value_len, NULL);
            continue;
        }
        const char *addr = node_book_get(op->n, id);
        if (!addr)
            continue;
        wire_msg_t req;
        wire_init(&req, WIRE_REPL_PUT, 0);
        req.key_bytes = op->key;
        req.key_len = op->key_len;
        req.version = op->version;
        req.flags = op->flags;
        req.value = op->value;
        req.value_len = op->value_len;
        rpc_call(op->n->rpc, addr, &req, op->n->cfg.timeout_ms, rpc_ignore_answer, "read repair");
    }
}

/*
 * How long to wait for one replica. A client write that said how long it
 * waits (its budget) waits for slow replicas that long, less half a
 * request timeout to carry the answer back: a replica that is busy (a
 * loaded machine, a slow disk) must make the write slower, not fail it
 * (its retries join this op meanwhile). Anything else: one request
 * timeout. A replica that is really gone does not hold the answer up: the
 * quorum of the others answers, and its copy becomes a hint.
 */
static unsigned op_replica_timeout(const kv_op_t *op)
{
    unsigned t = op->n->cfg.timeout_ms;
    uint64_t now = loop_clock_ms(), margin = t / 2;
    if (!op->deadline_ms || op->deadline_ms <= now + margin + t)
        return t;
    uint64_t wait = op->deadline_ms - now - margin;
    return wait > REPLICA_WAIT_MAX_MS ? REPLICA_WAIT_MAX_MS : (unsigned)wait;
}

/*
 * The write phase's REPL_PUT for call c: the patch alone when there is
 * one and the replica may hold the copy it was made against (a replica
 * that does not answers ESTALE and gets the whole value), else (or when
 * whole) the value.
 */
static void op_fill_repl_put(const kv_op_t *op, wire_msg_t *req, op_call_t *c, bool whole)
{
    req->version = op->version;
    req->flags = op->flags;
    req->has_opid = op->has_opid;
    req->opid = op->opid;
    c->patch = !whole && op->cond == WIRE_COND_PATCH && op->pending_value && op->has_opid &&
               !kv_version_is_zero(op->patch_base) && !op->keep_version;
    if (c->patch) {
        req->has_patch = true;
        req->patch_base = op->patch_base;
        req->patch_off = op->patch_off;
        req->value = op->pending_value;
        req->value_len = op->pending_len;
    } else {
        req->value = op->value;
        req->value_len = op->value_len;
    }
}

static void op_send_all(kv_op_t *op)
{
    node_t *n = op->n;
    /* Local answers may complete the op: hold it until every call is out. */
    op->outstanding++;
    for (unsigned i = 0; i < op->nrep; i++) {
        op_call_t *c = &op->calls[op->phase][i];
        *c = (op_call_t){op, op->phase, i, false};
        if (op->rep[i] == n->self) {
            if (op->phase == 0) {
                store_rec_t rec;
                int rc = store_get(n->store, op->key, op->key_len, &rec);
                if (rc == -ENOENT) {
                    kv_quorum_on_reply(&op->q, i, true, false, (kv_version_t){0, 0});
                    continue;
                }
                op_on_reply(op, 0, i, rc, NULL, rc == 0 ? &rec : NULL);
            } else {
                kv_version_t cur = op->version;
                int rc = store_put_opid(n->store, op->key, op->key_len, op->version, op->flags,
                                        op->opid, op->value, op->value_len, &cur);
                int cmp = kv_version_cmp(cur, op->version);
                op->local_ok = rc == 1 || (rc == 0 && cmp == 0);
                op->newer_seen |= rc == 0 && cmp > 0;
                if (rc < 0) {
                    kv_coord_forget(n);
                    log_warn("kv", "local write failed: %s", strerror(-rc));
                    op_on_reply(op, 1, i, rc, NULL, NULL);
                    continue;
                }
                op->outstanding++;
                if (store_after_commit(n->store, on_local_commit, c) < 0) {
                    op->outstanding--;
                    op_on_reply(op, 1, i, -ENOMEM, NULL, NULL);
                }
            }
            continue;
        }
        const char *addr = node_book_get(n, op->rep[i]);
        if (op->phase == 1 && !kv_repl_begin(n, op->rep[i])) {
            /* The replica is that far behind: its copy follows as a hint. */
            kv_repl_hint(n, op->rep[i], op->key, op->key_len, op->version);
            kv_quorum_on_reply(&op->q, i, false, false, (kv_version_t){0, 0});
            continue;
        }
        wire_msg_t req;
        wire_init(&req, op->phase == 0 ? WIRE_REPL_GET : WIRE_REPL_PUT, 0);
        req.key_bytes = op->key;
        req.key_len = op->key_len;
        req.read_mode = WIRE_READ_VERSION;
        if (op->phase == 1)
            op_fill_repl_put(op, &req, c, false);
        int rc = addr ? rpc_call(n->rpc, addr, &req, op_replica_timeout(op), on_remote_reply, c)
                      : -EHOSTUNREACH;
        if (rc < 0) {
            if (op->phase == 1)
                kv_repl_end(n, op->rep[i], rc, op->key, op->key_len, op->version);
            kv_quorum_on_reply(&op->q, i, false, false, (kv_version_t){0, 0});
            continue;
        }
        op->outstanding++;
    }
    op->outstanding--;
}

/*
 * Test hooks DHT_TEST_FREEZE_SERVING=P1,P2,... and DHT_TEST_FREEZE_STAMPED=...:
 * for each listed prefix (at most 32), the first conditional write (or
 * patch: its whole new value) whose value starts with it stops the whole
 * process (SIGSTOP) inside the loop's callback, before its op starts or
 * right after its version is stamped; the test thaws it (SIGCONT). A
 * freeze inside a callback, not in poll(2), is what the stall guards must
 * also catch: the rest of the callback runs with the loop's time from
 * before it.
 */
typedef struct {
    const char *var;
    const char *list; /* the variable's value, read once; NULL: unset */
    bool read;
    uint32_t fired; /* bit i: the list's value i has stopped us */
} test_freeze_t;

static test_freeze_t freeze_serving = {.var = "DHT_TEST_FREEZE_SERVING"};
static test_freeze_t freeze_stamped = {.var = "DHT_TEST_FREEZE_STAMPED"};

static void test_freeze(test_freeze_t *h, const uint8_t *value, size_t len)
{
    if (!h->read) {
        h->list = getenv(h->var);
        h->read = true;
    }
    const char *list = h->list;
    for (unsigned i = 0; list && *list && i < 32; i++) {
        size_t n = strcspn(list, ",");
        if (n && n <= len && memcmp(list, value, n) == 0 && !(h->fired & 1u << i)) {
            h->fired |= 1u << i;
            log_warn("kv", "test hook %s: stopping this process", h->var);
            raise(SIGSTOP);
            return;
        }
        list += n + (list[n] == ',');
    }
}

static void op_start_phase(kv_op_t *op, unsigned phase)
{
    if (phase == 0)
        op->view_ms = loop_clock_ms();
    node_t *n = op->n;
    op->phase = phase;
    unsigned need = phase == 0 ? n->cfg.read_quorum : n->cfg.write_quorum;
    if (op->ncur < need) {
        op_answer_error(op, ETIMEDOUT, "only %u of %u replicas are in the ring, a quorum needs %u",
                        op->ncur, n->cfg.replicas, need);
        return;
    }
    if (phase == 1)
        op->nrep = op->ncur; /* the old set's members take no new copies */
    if (phase == 1) {
        /*
         * Back-pressure: if too few replicas can take another write now,
         * refuse it before anything is applied; the client retries later
         * (EBUSY), instead of the write timing out half done.
         */
        unsigned room = 0;
        for (unsigned i = 0; i < op->nrep; i++)
            room += op->rep[i] == n->self || kv_repl_has_room(n, op->rep[i]);
        if (room < need) {
            op_answer_error(op, EBUSY,
                            "replicas busy (%u of %u can take a write, need %u); "
                            "nothing written, retry later",
                            room, op->nrep, need);
            return;
        }
    }
    kv_quorum_init(&op->q, op->nrep, need);
    if (phase == 0 && op->nold) {
        /*
         * A quorum of each set: the copies may be in any of them. (Cannot
         * fail: 1 + NODE_PLACE_FROM_MAX groups, masks below nrep.)
         */
        kv_quorum_require(&op->q, (1u << op->ncur) - 1, need);
        for (unsigned k = 0; k < op->nold; k++)
            kv_quorum_require(&op->q, op->old[k], need);
    }
    if (phase == 1) {
        if (!op->keep_version) {
            op->version.hlc = kv_clock_tick(&n->clock, kv_wall_ms());
            op->version.node = n->self;
        }
        /*
         * A write decided on a view of its key (a condition, a patch's base)
         * that this node stalled (frozen, starved) after taking: the view
         * may be from before the stall, and another coordinator may have
         * written newer values meanwhile, which this version, newer than
         * theirs, would undo (seen: 259 acknowledged increments lost after
         * a 5 s freeze). Checked after the stamp, so a stall between the
         * check and the stamp cannot slip through (a re-write of an
         * earlier attempt's version is checked too). Nothing is written:
         * the sender tries again and reads afresh.
         */
        if (op->view_ms && node_stalled_since(n, op->view_ms)) {
            n->metrics.stale_refused++;
            op_answer_error(op, EBUSY,
                            "this node stalled after it read the key; nothing written: try again");
            return;
        }
        if (op->view_ms && !op->keep_version)
            test_freeze(&freeze_stamped, op->value, op->value_len);
    }
    op_send_all(op);
    op_step(op);
}

static void on_fetch_reply(int rc, const wire_msg_t *r, void *arg);

/*
 * The newest version is on a remote replica: get its value, from the
 * replica that reported it or, failing that, another that reported the
 * same version.
 */
static void op_fetch(kv_op_t *op)
{
    node_t *n = op->n;
    op->phase = 2;
    for (unsigned k = 0; k <= op->nrep; k++) {
        unsigned i = k == 0 ? op->best_idx : k - 1;
        if (k > 0 && (i == op->best_idx || !op->q.success[i] || !op->q.found[i] ||
                      kv_version_cmp(op->q.version[i], op->version) != 0))
            continue;
        if (op->fetch_tried[i] || op->rep[i] == n->self)
            continue;
        op->fetch_tried[i] = true;
        const char *addr = node_book_get(n, op->rep[i]);
        if (!addr)
            continue;
        op_call_t *c = &op->calls[2][i];
        *c = (op_call_t){op, 2, i, false};
        wire_msg_t req;
        wire_init(&req, WIRE_REPL_GET, 0);
        req.key_bytes = op->key;
        req.key_len = op->key_len;
        req.read_mode = WIRE_READ_FULL;
        if (rpc_call(n->rpc, addr, &req, n->cfg.timeout_ms, on_fetch_reply, c) == 0) {
            op->outstanding++;
            return;
        }
    }
    op_answer_error(op, ETIMEDOUT, "the newest value could not be fetched from its replicas");
}

static void on_fetch_reply(int rc, const wire_msg_t *r, void *arg)
{
    op_call_t *c = arg;
    kv_op_t *op = c->op;
    op->outstanding--;
    if (rc == 0 && r->found && kv_version_plausible(r->version) &&
        kv_version_cmp(r->version, op->version) >= 0) {
        uint8_t *copy = malloc(r->value_len ? r->value_len : 1);
        if (copy) {
            memcpy(copy, r->value, r->value_len);
            free(op->value);
            op->value = copy;
            op->value_len = r->value_len;
            op->version = r->version;
            op->flags = r->flags;
            op->best_needs_fetch = false;
            op_step(op);
            op_maybe_free(op);
            return;
        }
    }
    if (!op->answered && rc != -ECANCELED)
        op_fetch(op);
    else
        op_answer_error(op, ECANCELED, "shutting down");
    op_maybe_free(op);
}

/* Decide what happens next from the quorum's state. */
/*
 * A quorum of every set said "absent" while placement moves: under churn
 * faster than copies move (sets of placements no longer kept, hand-offs
 * to sets since replaced) a copy may sit on any member, so before a read
 * answers "not found" (or a conditional write takes a key for absent) it
 * asks every other member it knows up; their answers count when all are
 * in. Returns how many were asked.
 */
static unsigned op_scatter(kv_op_t *op)
{
    node_t *n = op->n;
    op->scattered = true;
    op->scatter_from = op->nrep;
    size_t count = ring_members_count(n->members);
    for (size_t i = 0; i < count && op->nrep < KV_QUORUM_MAX; i++) {
        const ring_member_t *e = ring_members_at(n->members, i);
        bool asked = false;
        for (unsigned k = 0; k < op->nrep && !asked; k++)
            asked = op->rep[k] == e->id;
        if (asked || e->state == RING_MEMBER_LEFT || (e->id != n->self && node_peer_down(n, e->id)))
            continue;
        op->rep[op->nrep++] = e->id;
    }
    unsigned added = op->nrep - op->scatter_from;
    if (added == 0 || kv_quorum_extend(&op->q, op->nrep) < 0) {
        op->nrep = op->scatter_from;
        return 0;
    }
    /* One more than asked: no answer decides before every call is out. */
    op->scatter_left = added + 1;
    op->outstanding++;
    for (unsigned i = op->scatter_from; i < op->nrep; i++) {
        op_call_t *c = &op->calls[0][i];
        *c = (op_call_t){op, 0, i, false};
        if (op->rep[i] == n->self) {
            store_rec_t rec;
            int rc = store_get(n->store, op->key, op->key_len, &rec);
            if (rc == -ENOENT) {
                op->scatter_left--;
                kv_quorum_on_reply(&op->q, i, true, false, (kv_version_t){0, 0});
                continue;
            }
            op_on_reply(op, 0, i, rc, NULL, rc == 0 ? &rec : NULL);
            continue;
        }
        const char *addr = node_book_get(n, op->rep[i]);
        wire_msg_t req;
        wire_init(&req, WIRE_REPL_GET, 0);
        req.key_bytes = op->key;
        req.key_len = op->key_len;
        req.read_mode = WIRE_READ_VERSION;
        if (!addr || rpc_call(n->rpc, addr, &req, n->cfg.timeout_ms, on_remote_reply, c) < 0) {
            op_on_reply(op, 0, i, -EHOSTUNREACH, NULL, NULL);
            continue;
        }
        op->outstanding++;
    }
    op->outstanding--;
    if (--op->scatter_left == 0)
        op_step(op);
    return added;
}

static void op_step(kv_op_t *op)
{
    if (op->answered) {
        if (op->kind == OP_GET && op->outstanding == 0 && op->phase != 1 && !op->best_needs_fetch)
            op_repair(op);
        return;
    }
    if (op->phase == 0 && op->scatter_left)
        return; /* every member asked answers first */
    kv_quorum_state_t st = kv_quorum_state(&op->q);
    if (st == KV_QUORUM_PENDING)
        return;
    if (st == KV_QUORUM_FAILED) {
        quorum_failed(op);
        return;
    }
    if (op->phase == 0 && !op->have_best && op->nold && !op->scattered && op_scatter(op) > 0)
        return; /* op_scatter steps on once every member it asked answered */
    wire_msg_t r;
    if (op->phase == 1) {
        if (op->view_ms && (op->newer_seen || node_stalled_since(op->n, op->view_ms))) {
            /*
             * The quorum may be our copy and a replica the other write has
             * not reached yet; that write, decided without seeing ours,
             * will replace it everywhere.
             */
            op_overtaken(op);
            return;
        }
        /* A quorum holds our version: a known newest version moves to it. */
        op->acked = true;
        if (op->has_ticket && op->local_ok && !op->newer_seen)
            kv_known_written(op->n->kv->known, op->key, op->key_len, op->ticket, op->version);
        else
            known_drop(op);
        wire_init(&r, WIRE_KV_PUT | WIRE_REPLY, 0);
        r.version = op->version;
        op_answer(op, &r);
        return;
    }
    bool live = op->have_best && !(op->flags & WIRE_FLAG_TOMBSTONE);
    if ((op->kind == OP_GET || op->cond == WIRE_COND_PATCH) && live && op->best_needs_fetch) {
        op_fetch(op);
        return;
    }
    if (op->kind == OP_GET) {
        wire_init(&r, WIRE_KV_GET | WIRE_REPLY, 0);
        r.found = live;
        if (live) {
            r.version = op->version;
            r.flags = op->flags;
            r.value = op->value;
            r.value_len = op->value_len;
        }
        op_answer(op, &r);
        if (op->outstanding == 0)
            op_repair(op);
        return;
    }
    op_decide(op);
}

/*
 * A patch: the newest value (op->value, none if !live) with the patch
 * bytes written at patch_off becomes the value to write. The bytes are
 * kept: replicas holding the copy it was made against (patch_base) get
 * only them.
 */
static int op_apply_patch(kv_op_t *op, bool live)
{
    if (!live) {
        free(op->value);
        op->value = NULL;
        op->value_len = 0;
    }
    /* op->value is the op's own copy of the newest value: patched where it lies. */
    size_t len;
    uint8_t *v = kv_patch_in_place(op->value, op->value_len, op->patch_off, op->pending_value,
                                   op->pending_len, &len);
    if (!v)
        return -ENOMEM;
    op->patch_base = live ? op->version : (kv_version_t){0, 0};
    op->value = v;
    op->value_len = len;
    op->flags = 0;
    return 0;
}

/* A conditional put or a patch whose read is done (op->version etc. hold the newest copy). */
static void op_decide(kv_op_t *op)
{
    bool live = op->have_best && !(op->flags & WIRE_FLAG_TOMBSTONE);
    if (op->has_opid && op->have_best && kv_opid_equal(op->best_opid, op->opid)) {
        /*
         * The newest version is this very write, made by an earlier attempt
         * whose answer was lost (at another coordinator, or one we forgot):
         * it was applied, so its condition held then. It may sit on fewer
         * than W replicas if that attempt was cut short, so write it again
         * under the same version — replicas holding it keep it, the others
         * take the same bytes — and answer that version. (A patch's
         * newest value already holds its bytes: it is written as it is.)
         */
        if (op->cond == WIRE_COND_PATCH) {
            free(op->pending_value);
            op->pending_value = NULL;
            op->keep_version = true;
            op_start_phase(op, 1);
            return;
        }
        free(op->value);
        op->value = op->pending_value;
        op->value_len = op->pending_len;
        op->pending_value = NULL;
        op->flags = op->pending_flags;
        op->keep_version = true;
        op_start_phase(op, 1);
        return;
    }
    bool failed = (op->cond == WIRE_COND_ABSENT && live) ||
                  (op->cond == WIRE_COND_VERSION &&
                   (!live || kv_version_cmp(op->version, op->cond_version) != 0));
    if (failed && op->earlier_unknown) {
        /*
         * Not our identity on the newest version, and no first answer
         * remembered: an unanswered earlier attempt may have applied and
         * been overwritten since, or never have run. Saying "conflict"
         * would make the client apply its change again; and unlike "no
         * quorum" (ETIMEDOUT) no retry can tell more, hence its own code.
         */
        op_answer_error(op, ENOTRECOVERABLE,
                        "outcome unknown: the condition fails now, and an earlier attempt of "
                        "this write (unanswered) may have applied");
        return;
    }
    if (op->cond == WIRE_COND_ABSENT && live) {
        char v[KV_VERSION_STR_MAX];
        kv_version_to_str(op->version, v);
        op_answer_error(op, EEXIST, "key exists (version %s)", v);
        return;
    }
    if (op->cond == WIRE_COND_VERSION &&
        (!live || kv_version_cmp(op->version, op->cond_version) != 0)) {
        char v[KV_VERSION_STR_MAX];
        kv_version_to_str(op->version, v);
        op_answer_error(op, ESTALE, "version mismatch: the key is at %s", live ? v : "(absent)");
        return;
    }
    if (op->cond == WIRE_COND_PATCH) {
        if (op_apply_patch(op, live) < 0)
            op_answer_error(op, ENOMEM, "out of memory");
        else
            op_start_phase(op, 1);
        return;
    }
    /* The read's value is not needed any more: the op writes its own. */
    free(op->value);
    op->value = op->pending_value;
    op->value_len = op->pending_len;
    op->pending_value = NULL;
    op->flags = op->pending_flags;
    op_start_phase(op, 1);
}

/*
 * Start an op. A read reads a quorum: only a quorum answering shows that
 * this node still speaks for the key (a partitioned authority must not
 * answer from its copy while the others have moved on), and a write does
 * the same with its write quorum. A conditional write whose key's newest
 * version is known and is our copy (kv_known.h) checks its condition
 * against that copy and goes straight to its write quorum; any other
 * conditional write reads a quorum first.
 */
static void op_begin(kv_op_t *op)
{
    /*
     * Under token placement the coordinator may hold no copy of the key:
     * "our copy is the newest" then means nothing, so it reads a quorum.
     */
    bool holds = false;
    for (unsigned i = 0; i < op->ncur; i++)
        holds |= op->rep[i] == op->n->self;
    kv_known_t *k = holds ? known(op->n) : NULL;
    if (k) {
        op->has_ticket = true;
        op->ticket = kv_known_ticket(k);
    }
    if (op->kind == OP_GET || op->cond == WIRE_COND_NONE) {
        op_start_phase(op, op->kind == OP_GET ? 0 : 1);
        return;
    }
    store_rec_t rec;
    int rc = store_head(op->n->store, op->key, op->key_len, &rec);
    bool found = rc == 0;
    bool known_ok =
        k && (rc == 0 || rc == -ENOENT) &&
        kv_known_check(k, op->key, op->key_len, found, found ? rec.version : (kv_version_t){0, 0});
    if (!known_ok) {
        op_start_phase(op, 0);
        return;
    }
    op->view_ms = op->n->tick_ms;
    op->have_best = found;
    if (found) {
        op->version = rec.version;
        op->flags = rec.flags;
        op->best_opid = rec.opid;
        if (op->cond == WIRE_COND_PATCH) {
            /* A patch needs the bytes too, not only the version. */
            op->value = malloc(rec.value_len ? rec.value_len : 1);
            if (!op->value) {
                op_answer_error(op, ENOMEM, "out of memory");
                return;
            }
            memcpy(op->value, rec.value, rec.value_len);
            op->value_len = rec.value_len;
        }
    }
    op_decide(op);
}

/*
 * Test hook DHT_TEST_COORD_FORGETS: keep no table, as a coordinator that
 * never saw the first attempt (after an authority change) would; only
 * the identity stored with the record then stops a double application.
 */
static bool coord_forgets(void)
{
    static int forgets = -1;
    if (forgets < 0)
        forgets = getenv("DHT_TEST_COORD_FORGETS") != NULL;
    return forgets == 1;
}

/*
 * An identified write the table already knows: answer a finished one with
 * its first answer, attach a running one's retry to it. Returns true if
 * the request is taken care of (answered, attached or refused).
 */
static bool op_dedup_begin(kv_op_t *op, const wire_msg_t *m)
{
    node_t *n = op->n;
    void *owner = NULL;
    kv_dedup_outcome_t out;
    int st = kv_dedup_begin(n->kv->dedup, op->opid, op, &owner, &out);
    if (st == KV_DEDUP_NEW) {
        op->in_dedup = true;
        return false;
    }
    if (st == KV_DEDUP_DONE && out.rc == 0) {
        wire_msg_t r;
        wire_init(&r, WIRE_KV_PUT | WIRE_REPLY, op->req_id);
        r.version = out.version;
        node_send(n, op->ident, op->ident_len, &r);
    } else if (st == KV_DEDUP_DONE) {
        node_reply_error(n, op->ident, op->ident_len, op->req_id, -out.rc,
                         "%s (the answer to this write's first attempt)", strerror(-out.rc));
    } else if (st == KV_DEDUP_RUNNING) {
        kv_op_t *first = owner;
        joiner_t *j = calloc(1, sizeof *j);
        if (!j) {
            node_reply_error(n, op->ident, op->ident_len, op->req_id, ENOMEM, "out of memory");
            return true;
        }
        memcpy(j->ident, op->ident, op->ident_len);
        j->ident_len = op->ident_len;
        j->req_id = op->req_id;
        j->next = first->joiners;
        first->joiners = j;
        /* The client still waits: a queued first attempt may run until this retry's end. */
        if (m->budget_ms && first->deadline_ms) {
            uint64_t until = loop_clock_ms() + m->budget_ms;
            if (until > first->deadline_ms)
                first->deadline_ms = until;
        }
    } else {
        node_reply_error(n, op->ident, op->ident_len, op->req_id, -st, "%s",
                         st == -EAGAIN ? "too many writes of this client in flight; retry later"
                                       : "out of memory");
    }
    return true;
}

void kv_coord_serve(node_t *n, const uint8_t *ident, size_t ident_len, const wire_msg_t *m)
{
    ring_id_t pos = store_pos(n->store, m->key_bytes, m->key_len);
    if (!ring_state_owns(n->rs, pos)) {
        /* "Not mine": name the node our routing would go to next. */
        ring_route_t rt = ring_state_route(n->rs, pos, NULL, 0);
        wire_msg_t r;
        wire_init(&r, WIRE_REDIRECT, m->req_id);
        node_fill(n, &r.node, rt.next);
        node_send(n, ident, ident_len, &r);
        return;
    }
    if (node_place_on(n) && !node_members_complete(n)) {
        /* Placed from a table of a few members, a read would miss copies that exist. */
        node_reply_error(n, ident, ident_len, m->req_id, EAGAIN,
                         "this node has just joined and is still learning the ring's members; "
                         "retry");
        return;
    }
    kv_op_t *op = calloc(1, sizeof *op);
    if (!op) {
        node_reply_error(n, ident, ident_len, m->req_id, ENOMEM, "out of memory");
        return;
    }
    op->n = n;
    op->t0_us = node_metrics_usec();
    memcpy(op->ident, ident, ident_len);
    op->ident_len = ident_len;
    op->req_id = m->req_id;
    op->kind = m->type == WIRE_KV_GET ? OP_GET : OP_PUT;
    memcpy(op->key, m->key_bytes, m->key_len);
    op->key_len = m->key_len;
    node_read_set_t rs;
    node_key_read_set(n, pos, &rs);
    op->nrep = (unsigned)rs.n;
    op->ncur = (unsigned)rs.ncur;
    op->nold = (unsigned)rs.nold;
    memcpy(op->rep, rs.id, rs.n * sizeof rs.id[0]);
    memcpy(op->old, rs.old, rs.nold * sizeof rs.old[0]);
    if (op->kind == OP_PUT) {
        if (m->flags & ~WIRE_FLAG_TOMBSTONE) {
            free(op);
            node_reply_error(n, ident, ident_len, m->req_id, EINVAL,
                             "a client write may only carry the tombstone flag");
            return;
        }
        if (m->flags & WIRE_FLAG_TOMBSTONE && m->value_len) {
            free(op);
            node_reply_error(n, ident, ident_len, m->req_id, EINVAL, "a delete carries no value");
            return;
        }
        if (m->cond == WIRE_COND_PATCH && m->patch_off > WIRE_VALUE_MAX - m->value_len) {
            free(op);
            node_reply_error(n, ident, ident_len, m->req_id, EFBIG,
                             "a patch may not reach past %u bytes", (unsigned)WIRE_VALUE_MAX);
            return;
        }
        uint8_t *copy = malloc(m->value_len ? m->value_len : 1);
        if (!copy) {
            free(op);
            node_reply_error(n, ident, ident_len, m->req_id, ENOMEM, "out of memory");
            return;
        }
        memcpy(copy, m->value, m->value_len);
        op->has_opid = m->has_opid;
        op->earlier_unknown = m->has_opid && m->earlier_unknown;
        op->opid = m->has_opid ? m->opid : (kv_opid_t){0, 0};
        if (m->has_opid && m->budget_ms)
            op->deadline_ms = loop_clock_ms() + m->budget_ms;
        if (op->has_opid && !coord_forgets() &&
            (n->kv->dedup ||
             (n->kv->dedup = kv_dedup_new(DEDUP_CLIENTS, DEDUP_PER_CLIENT)) != NULL)) {
            if (op_dedup_begin(op, m)) {
                free(copy);
                free(op);
                return;
            }
        }
        op->cond = m->cond;
        op->cond_version = m->cond_version;
        op->patch_off = m->patch_off;
        if (op->cond == WIRE_COND_NONE) {
            op->value = copy;
            op->value_len = m->value_len;
            op->flags = m->flags;
        } else {
            op->pending_value = copy;
            op->pending_len = m->value_len;
            op->pending_flags = m->flags;
        }
        /*
         * One write per key at a time, at its authority: a plain write that
         * slipped between a conditional write's read and its write would be
         * overwritten by a check made against an older version.
         */
        for (kv_op_t *b = n->kv->busy; b; b = b->next) {
            if (b->key_len == op->key_len && memcmp(b->key, op->key, op->key_len) == 0) {
                /* Bounded, so a hot key cannot hold unbounded memory or delay. */
                unsigned queued = 0;
                kv_op_t **tail = &b->waiting;
                while (*tail) {
                    tail = &(*tail)->waiting;
                    queued++;
                }
                if (queued >= QUEUE_MAX) {
                    op->answered = true;
                    node_metrics_coord(&n->metrics, false, false, node_metrics_usec() - op->t0_us);
                    op_dedup_end(op, -EAGAIN, (kv_version_t){0, 0});
                    node_reply_error(n, ident, ident_len, m->req_id, EAGAIN,
                                     "%u writes already queued on this key; retry later", queued);
                    op_maybe_free(op);
                    return;
                }
                *tail = op;
                return;
            }
        }
        op->busy = true;
        op->next = n->kv->busy;
        n->kv->busy = op;
        if (op->cond != WIRE_COND_NONE)
            test_freeze(&freeze_serving, op->pending_value, op->pending_len);
    }
    op_begin(op);
    op_maybe_free(op);
}
