/*
 * kv.c — the replicated quorum store on top of the ring.
 *
 * Roles, all in this one process:
 *  - coordinator: the authority of a key (it owns (pred, self]) serves
 *    clients' KV_GET/KV_PUT. It asks every replica (itself and the next
 *    N-1 successors; the others answer reads with versions only), answers
 *    once R (reads) or W (writes) succeeded, fetching the value only if a
 *    remote replica holds a newer version than its own, and repairs
 *    replicas that answered with something older. A node asked about a key
 *    it does not own answers REDIRECT with a better node.
 *  - replica: REPL_GET/REPL_PUT on the local store; a REPL_PUT is applied
 *    only if its version is newer, and acknowledged only once durable.
 *  - anti-entropy: every sync period the authority compares a digest of its
 *    range with each replica and streams over, in bounded batches, what a
 *    replica lacks; it also asks its successor to do the same towards it
 *    (which is how a newcomer receives its range, and a restarted node what
 *    it missed). A leaving node streams everything to its successors first.
 *
 * Versions come from the coordinator's hybrid logical clock with its id as
 * tie-break, so concurrent writers leave all replicas with one winner.
 * Writes to one key are serialised at its authority; a conditional write
 * (put-if-absent, put-if-version) is a quorum read, the check, then a write
 * whose version is above everything the read saw. Two nodes that both
 * believe they own a key (during a membership change) can each admit one
 * conditional write; the version order still makes every replica converge
 * on one of them.
 */
#include "node_i.h"

#include "kv_quorum.h"
#include "kv_sync.h"
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

enum {
    SYNC_BATCH = 256,         /* keys per SYNC_OFFER */
    SYNC_KEYBUF = 128 * 1024, /* key bytes per SYNC_OFFER */
    SYNC_WINDOW = 16,         /* REPL_PUTs in flight per session */
    SYNC_SERVE_MAX = 8,       /* sessions served for other nodes' pulls */
    HANDOFF_LIMIT_MS = 30000, /* a leave waits at most this for its hand-off */
};

typedef enum { OP_GET, OP_PUT } op_kind_t;

struct kv_op;
typedef struct {
    struct kv_op *op;
    unsigned phase;
    unsigned idx;
} op_call_t;

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
} kv_op_t;

/* One range stream to one node: kv_sync's decisions plus the I/O. */
typedef struct sync {
    node_t *n;
    struct sync *next;
    ring_id_t target;
    char addr[ENDPOINT_MAX];
    kv_sync_t *ks;
    uint64_t min_hlc; /* records older than this are not offered (0: all) */
    uint64_t start_timer;
    bool finishing;
    void (*done)(struct sync *s);
} sync_t;

enum {
    PURGE_BATCH = 512, /* tombstones purged per anti-entropy round */
};

struct kv {
    node_t *n;
    kv_op_t *busy;
    sync_t *sessions;
    unsigned served;
    /* the current anti-entropy round */
    bool round_active;
    unsigned round_pending;
    uint64_t round_missing;
    uint64_t round_primary;
    bool round_short; /* fewer distinct nodes than replicas */
    ring_id_t round_lo, round_hi;
    ring_id_t round_reps[KV_QUORUM_MAX];
    size_t round_nrep;
    /* the replica set the last finished round confirmed */
    ring_id_t last_reps[KV_QUORUM_MAX];
    size_t last_nrep;
    uint64_t last_round_ms;
    /* results of the last finished round */
    uint64_t primary_keys;
    uint64_t under_replicated;
    /* leave */
    void (*handoff_done)(node_t *n);
    unsigned handoff_pending;
    uint64_t handoff_timer;
};

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

enum {
    /* How far ahead of our wall clock another node's version may be. */
    CLOCK_SKEW_MAX_MS = 60 * 1000,
};

/* Versions from further in the future than clock skew explains are refused. */
static bool version_plausible(kv_version_t v)
{
    return (v.hlc >> 16) <= wall_ms() + CLOCK_SKEW_MAX_MS;
}

int kv_init(node_t *n)
{
    n->kv = calloc(1, sizeof *n->kv);
    if (!n->kv)
        return -ENOMEM;
    n->kv->n = n;
    return 0;
}

static void sync_free(sync_t *s)
{
    if (s->start_timer)
        loop_timer_cancel(s->n->loop, s->start_timer);
    kv_sync_destroy(&s->ks);
    free(s);
}

void kv_fini(node_t *n)
{
    if (!n->kv)
        return;
    /* Pending rpc callbacks were cancelled by rpc_destroy before this. */
    sync_t *s = n->kv->sessions;
    while (s) {
        sync_t *next = s->next;
        sync_free(s);
        s = next;
    }
    free(n->kv);
    n->kv = NULL;
}

size_t node_replica_set(const node_t *n, ring_id_t *out, size_t cap)
{
    ring_id_t succ[RING_SUCC_MAX];
    size_t ns = ring_state_succ_list(n->rs, succ, RING_SUCC_MAX);
    size_t k = 0;
    size_t want = n->cfg.replicas < cap ? n->cfg.replicas : cap;
    out[k++] = n->self;
    for (size_t i = 0; i < ns && k < want; i++)
        out[k++] = succ[i];
    return k;
}

/* ------------------------------------------------------------ replicas */

static void serve_repl_get(node_t *n, const uint8_t *ident, size_t ident_len, const wire_msg_t *m)
{
    store_rec_t rec;
    int rc = store_get(n->store, m->key_bytes, m->key_len, &rec);
    if (rc < 0 && rc != -ENOENT) {
        node_reply_error(n, ident, ident_len, m->req_id, -rc, "store read failed: %s",
                         strerror(-rc));
        return;
    }
    wire_msg_t *r = &n->out;
    wire_init(r, WIRE_REPL_GET | WIRE_REPLY, m->req_id);
    if (rc == 0) {
        r->found = true;
        r->version = rec.version;
        r->flags = rec.flags;
        if (m->read_mode == WIRE_READ_FULL) {
            r->value = rec.value;
            r->value_len = rec.value_len;
        }
    }
    node_send(n, ident, ident_len, r);
}

typedef struct {
    node_t *n;
    uint8_t ident[IDENT_MAX];
    size_t ident_len;
    uint64_t req_id;
    bool applied;
    kv_version_t version;
} repl_ack_t;

static void repl_put_committed(int rc, void *arg)
{
    repl_ack_t *a = arg;
    if (rc < 0) {
        node_reply_error(a->n, a->ident, a->ident_len, a->req_id, -rc, "%s",
                         rc == -ENOSPC ? "no space left on the node's disk"
                                       : "store commit failed");
    } else {
        wire_msg_t r;
        wire_init(&r, WIRE_REPL_PUT | WIRE_REPLY, a->req_id);
        r.applied = a->applied;
        r.version = a->version;
        node_send(a->n, a->ident, a->ident_len, &r);
    }
    free(a);
}

static bool purge_local(node_t *n, const uint8_t *key, size_t key_len, kv_version_t version);

/* Forget a tombstone, if it is still the one the authority purged. */
static void serve_purge(node_t *n, const uint8_t *ident, size_t ident_len, const wire_msg_t *m)
{
    wire_msg_t r;
    wire_init(&r, WIRE_REPL_PUT | WIRE_REPLY, m->req_id);
    r.applied = purge_local(n, m->key_bytes, m->key_len, m->version);
    r.version = m->version;
    node_send(n, ident, ident_len, &r);
}

static void serve_repl_put(node_t *n, const uint8_t *ident, size_t ident_len, const wire_msg_t *m)
{
    if (kv_version_is_zero(m->version)) {
        node_reply_error(n, ident, ident_len, m->req_id, EINVAL, "a write needs a version");
        return;
    }
    if (!version_plausible(m->version)) {
        node_reply_error(n, ident, ident_len, m->req_id, EINVAL,
                         "version from more than %d s in the future (clock skew?)",
                         CLOCK_SKEW_MAX_MS / 1000);
        return;
    }
    if (m->flags & WIRE_FLAG_PURGE) {
        serve_purge(n, ident, ident_len, m);
        return;
    }
    kv_clock_observe(&n->clock, m->version.hlc);
    kv_version_t current;
    int rc = store_put(n->store, m->key_bytes, m->key_len, m->version, m->flags, m->value,
                       m->value_len, &current);
    if (rc < 0) {
        node_reply_error(n, ident, ident_len, m->req_id, -rc, "%s",
                         rc == -ENOSPC ? "no space left on the node's disk" : strerror(-rc));
        return;
    }
    repl_ack_t *a = malloc(sizeof *a);
    if (!a) {
        node_reply_error(n, ident, ident_len, m->req_id, ENOMEM, "out of memory");
        return;
    }
    a->n = n;
    memcpy(a->ident, ident, ident_len);
    a->ident_len = ident_len;
    a->req_id = m->req_id;
    a->applied = rc == 1;
    a->version = current;
    /* Acknowledge only once durable: the ack counts towards a write quorum. */
    if (store_after_commit(n->store, repl_put_committed, a) < 0) {
        free(a);
        node_reply_error(n, ident, ident_len, m->req_id, ENOMEM, "out of memory");
    }
}

/* --------------------------------------------------------- coordinator */

static void op_step(kv_op_t *op);
static void op_start_phase(kv_op_t *op, unsigned phase);
static void op_maybe_free(kv_op_t *op);

/* Start an op that waited for its key: conditional ones read first. */
static void op_start_queued(loop_t *loop, void *arg)
{
    (void)loop;
    kv_op_t *op = arg;
    op_start_phase(op, op->cond == WIRE_COND_NONE ? 1 : 0);
    op_maybe_free(op);
}

static void op_maybe_free(kv_op_t *op)
{
    if (!op->answered || op->outstanding)
        return;
    free(op->value);
    free(op->pending_value);
    free(op);
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
    __attribute__((format(printf, 3, 4)));

static void op_answer_error(kv_op_t *op, int err, const char *fmt, ...)
{
    if (op->answered)
        return;
    op->answered = true;
    char msg[WIRE_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    node_reply_error(op->n, op->ident, op->ident_len, op->req_id, err, "%s", msg);
    op_release(op);
}

static void op_answer(kv_op_t *op, wire_msg_t *r)
{
    if (op->answered)
        return;
    op->answered = true;
    r->req_id = op->req_id;
    node_send(op->n, op->ident, op->ident_len, r);
    op_release(op);
}

static void quorum_failed(kv_op_t *op)
{
    const char *what = op->phase == 0 ? "read" : "write";
    unsigned need = op->q.need;
    if (op->worst_rc == -ENOSPC)
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
    bool found = false;
    kv_version_t version = {0, 0};
    if (rc == 0 && phase == 0) {
        found = local ? true : r->found;
        version = local ? local->version : r->version;
        uint8_t flags = local ? local->flags : r->flags;
        if (found && !version_plausible(version)) {
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
    if (rc == -ETIMEDOUT)
        node_peer_missed(op->n, op->rep[c->idx], "replica timed out");
    else if (r)
        node_peer_alive(op->n, op->rep[c->idx]);
    op_on_reply(op, c->phase, c->idx, rc, r, NULL);
    op_maybe_free(op);
}

static void on_local_commit(int rc, void *arg)
{
    op_call_t *c = arg;
    kv_op_t *op = c->op;
    op->outstanding--;
    op_on_reply(op, c->phase, c->idx, rc, NULL, NULL);
    op_maybe_free(op);
}

/* Read repair: bring replicas that answered with older data up to date. */
static void op_repair(kv_op_t *op)
{
    unsigned stale[KV_QUORUM_MAX];
    size_t ns = kv_quorum_stale(&op->q, stale, KV_QUORUM_MAX);
    for (size_t i = 0; i < ns; i++) {
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

static void op_send_all(kv_op_t *op)
{
    node_t *n = op->n;
    /* Local answers may complete the op: hold it until every call is out. */
    op->outstanding++;
    for (unsigned i = 0; i < op->nrep; i++) {
        op_call_t *c = &op->calls[op->phase][i];
        *c = (op_call_t){op, op->phase, i};
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
                int rc = store_put(n->store, op->key, op->key_len, op->version, op->flags,
                                   op->value, op->value_len, NULL);
                if (rc < 0) {
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
        wire_msg_t req;
        wire_init(&req, op->phase == 0 ? WIRE_REPL_GET : WIRE_REPL_PUT, 0);
        req.key_bytes = op->key;
        req.key_len = op->key_len;
        req.read_mode = WIRE_READ_VERSION;
        if (op->phase == 1) {
            req.version = op->version;
            req.flags = op->flags;
            req.value = op->value;
            req.value_len = op->value_len;
        }
        int rc = addr ? rpc_call(n->rpc, addr, &req, n->cfg.timeout_ms, on_remote_reply, c)
                      : -EHOSTUNREACH;
        if (rc < 0) {
            kv_quorum_on_reply(&op->q, i, false, false, (kv_version_t){0, 0});
            continue;
        }
        op->outstanding++;
    }
    op->outstanding--;
}

static void op_start_phase(kv_op_t *op, unsigned phase)
{
    node_t *n = op->n;
    op->phase = phase;
    unsigned need = phase == 0 ? n->cfg.read_quorum : n->cfg.write_quorum;
    if (op->nrep < need) {
        op_answer_error(op, ETIMEDOUT, "only %u of %u replicas are in the ring, a quorum needs %u",
                        op->nrep, n->cfg.replicas, need);
        return;
    }
    kv_quorum_init(&op->q, op->nrep, need);
    if (phase == 1) {
        op->version.hlc = kv_clock_tick(&n->clock, wall_ms());
        op->version.node = n->self;
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
        *c = (op_call_t){op, 2, i};
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
    if (rc == 0 && r->found && version_plausible(r->version) &&
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
static void op_step(kv_op_t *op)
{
    if (op->answered) {
        if (op->kind == OP_GET && op->outstanding == 0 && op->phase != 1 && !op->best_needs_fetch)
            op_repair(op);
        return;
    }
    kv_quorum_state_t st = kv_quorum_state(&op->q);
    if (st == KV_QUORUM_PENDING)
        return;
    if (st == KV_QUORUM_FAILED) {
        quorum_failed(op);
        return;
    }
    wire_msg_t r;
    if (op->phase == 1) {
        wire_init(&r, WIRE_KV_PUT | WIRE_REPLY, 0);
        r.version = op->version;
        op_answer(op, &r);
        return;
    }
    bool live = op->have_best && !(op->flags & WIRE_FLAG_TOMBSTONE);
    if (op->kind == OP_GET && live && op->best_needs_fetch) {
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
    /* A conditional put after its read phase. */
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
    /* The read's value is not needed any more: the op writes its own. */
    free(op->value);
    op->value = op->pending_value;
    op->value_len = op->pending_len;
    op->pending_value = NULL;
    op->flags = op->pending_flags;
    op_start_phase(op, 1);
}

static void serve_kv(node_t *n, const uint8_t *ident, size_t ident_len, const wire_msg_t *m)
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
    kv_op_t *op = calloc(1, sizeof *op);
    if (!op) {
        node_reply_error(n, ident, ident_len, m->req_id, ENOMEM, "out of memory");
        return;
    }
    op->n = n;
    memcpy(op->ident, ident, ident_len);
    op->ident_len = ident_len;
    op->req_id = m->req_id;
    op->kind = m->type == WIRE_KV_GET ? OP_GET : OP_PUT;
    memcpy(op->key, m->key_bytes, m->key_len);
    op->key_len = m->key_len;
    op->nrep = (unsigned)node_replica_set(n, op->rep, KV_QUORUM_MAX);
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
        uint8_t *copy = malloc(m->value_len ? m->value_len : 1);
        if (!copy) {
            free(op);
            node_reply_error(n, ident, ident_len, m->req_id, ENOMEM, "out of memory");
            return;
        }
        memcpy(copy, m->value, m->value_len);
        op->cond = m->cond;
        op->cond_version = m->cond_version;
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
                kv_op_t **tail = &b->waiting;
                while (*tail)
                    tail = &(*tail)->waiting;
                *tail = op;
                return;
            }
        }
        op->busy = true;
        op->next = n->kv->busy;
        n->kv->busy = op;
    }
    op_start_phase(op, op->kind == OP_PUT && op->cond == WIRE_COND_NONE ? 1 : 0);
    op_maybe_free(op);
}

/* ------------------------------------------------------- anti-entropy */

static void sync_drive(sync_t *s, kv_sync_step_t step);

static void sync_finish(sync_t *s)
{
    if (s->finishing)
        return;
    s->finishing = true;
    struct kv *kv = s->n->kv;
    sync_t **pp = &kv->sessions;
    while (*pp && *pp != s)
        pp = &(*pp)->next;
    if (*pp)
        *pp = s->next;
    if (kv_sync_sent(s->ks) || kv_sync_failed(s->ks))
        log_info("kv", "sync to %s: %llu keys sent, %llu missing%s", s->addr,
                 (unsigned long long)kv_sync_sent(s->ks),
                 (unsigned long long)kv_sync_missing(s->ks),
                 kv_sync_failed(s->ks) ? " (peer unreachable)" : "");
    if (s->done)
        s->done(s);
    sync_free(s);
}

static void on_sync_digest(int rc, const wire_msg_t *r, void *arg)
{
    sync_t *s = arg;
    if (rc == -ECANCELED)
        return;
    if (r)
        node_peer_alive(s->n, s->target);
    uint64_t count = 0, digest[2] = {0, 0};
    if (rc == 0 &&
        store_digest(s->n->store, kv_sync_lo(s->ks), kv_sync_hi(s->ks), &count, digest) < 0) {
        sync_drive(s, kv_sync_abort(s->ks));
        return;
    }
    sync_drive(s, kv_sync_on_digest(s->ks, rc, count, digest, rc == 0 ? r->count : 0,
                                    rc == 0 ? r->digest : digest));
}

static void on_sync_offer(int rc, const wire_msg_t *r, void *arg)
{
    sync_t *s = arg;
    if (rc == -ECANCELED)
        return;
    sync_drive(s, kv_sync_on_want(s->ks, rc, rc == 0 ? r->want : NULL, rc == 0 ? r->nwant : 0));
}

static void on_sync_put(int rc, const wire_msg_t *r, void *arg)
{
    (void)r;
    sync_t *s = arg;
    if (rc == -ECANCELED)
        return;
    sync_drive(s, kv_sync_on_put(s->ks, rc));
}

static int collect_offer(const uint8_t *key, size_t key_len, ring_id_t pos, const store_rec_t *rec,
                         void *arg)
{
    sync_t *s = arg;
    if (rec->version.hlc < s->min_hlc)
        return 0;
    return kv_sync_add(s->ks, key, (uint16_t)key_len, pos, rec->version) ? 0 : 1;
}

/* Send one wanted record; returns the step if it was settled at once. */
static bool sync_send_put(sync_t *s, const uint8_t *key, uint16_t key_len, kv_sync_step_t *step)
{
    node_t *n = s->n;
    store_rec_t rec;
    if (store_get(n->store, key, key_len, &rec) < 0) {
        *step = kv_sync_on_put(s->ks, -ENOENT); /* removed meanwhile */
        return true;
    }
    wire_msg_t req;
    wire_init(&req, WIRE_REPL_PUT, 0);
    req.key_bytes = key;
    req.key_len = key_len;
    req.version = rec.version;
    req.flags = rec.flags;
    req.value = rec.value;
    req.value_len = rec.value_len;
    int rc = rpc_call(n->rpc, s->addr, &req, n->cfg.timeout_ms * 4, on_sync_put, s);
    if (rc < 0) {
        *step = kv_sync_on_put(s->ks, rc);
        return true;
    }
    return false;
}

/* Carry out kv_sync's steps until one has to wait for an answer. */
static void sync_drive(sync_t *s, kv_sync_step_t step)
{
    node_t *n = s->n;
    for (;;) {
        switch (step) {
        case KV_SYNC_SEND_DIGEST: {
            wire_msg_t req;
            wire_init(&req, WIRE_SYNC_DIGEST, 0);
            req.lo = kv_sync_lo(s->ks);
            req.hi = kv_sync_hi(s->ks);
            int rc = rpc_call(n->rpc, s->addr, &req, n->cfg.timeout_ms * 4, on_sync_digest, s);
            if (rc == 0)
                return;
            step = kv_sync_abort(s->ks);
            break;
        }
        case KV_SYNC_SCAN: {
            ring_id_t pos = 0;
            const uint8_t *after = NULL;
            uint16_t after_len = 0;
            kv_sync_cursor(s->ks, &pos, &after, &after_len);
            int rc = store_scan(n->store, kv_sync_lo(s->ks), kv_sync_hi(s->ks), pos, after,
                                after_len, KV_SYNC_BATCH, collect_offer, s);
            step = rc < 0 ? kv_sync_abort(s->ks) : kv_sync_scanned(s->ks);
            break;
        }
        case KV_SYNC_SEND_OFFER: {
            wire_msg_t *req = malloc(sizeof *req);
            size_t noffers;
            const wire_offer_t *offers = kv_sync_offers(s->ks, &noffers);
            int rc = -ENOMEM;
            if (req) {
                wire_init(req, WIRE_SYNC_OFFER, 0);
                req->noffers = (uint16_t)noffers;
                memcpy(req->offers, offers, noffers * sizeof *offers);
                rc = rpc_call(n->rpc, s->addr, req, n->cfg.timeout_ms * 2, on_sync_offer, s);
                free(req);
            }
            if (rc == 0)
                return;
            step = kv_sync_on_want(s->ks, rc, NULL, 0);
            break;
        }
        case KV_SYNC_SEND_PUTS: {
            const uint8_t *key;
            uint16_t key_len;
            bool settled = false;
            kv_sync_step_t next = KV_SYNC_WAIT;
            while (kv_sync_next_put(s->ks, &key, &key_len)) {
                kv_sync_step_t now;
                if (sync_send_put(s, key, key_len, &now)) {
                    settled = true;
                    next = now;
                }
            }
            /* Puts settled on the spot may have finished the batch. */
            if (!settled || next == KV_SYNC_SEND_PUTS || next == KV_SYNC_WAIT)
                return;
            step = next;
            break;
        }
        case KV_SYNC_WAIT:
            return;
        case KV_SYNC_DONE:
            sync_finish(s);
            return;
        }
    }
}

static void sync_begin(loop_t *loop, void *arg)
{
    (void)loop;
    sync_t *s = arg;
    s->start_timer = 0;
    sync_drive(s, kv_sync_start(s->ks));
}

/*
 * Start streaming our records of (lo, hi] to target (lo == hi: all of them).
 * done(s) runs once, from the loop — never before sync_start returns, so
 * the caller can count the session first — when kv_sync says it is over.
 */
static sync_t *sync_start(node_t *n, ring_id_t target, const char *addr, ring_id_t lo, ring_id_t hi,
                          void (*done)(sync_t *s))
{
    for (sync_t *s = n->kv->sessions; s; s = s->next)
        if (s->target == target && kv_sync_lo(s->ks) == lo && kv_sync_hi(s->ks) == hi)
            return NULL; /* already under way */
    sync_t *s = calloc(1, sizeof *s);
    if (!s || !(s->ks = kv_sync_new(lo, hi))) {
        free(s);
        return NULL;
    }
    s->n = n;
    s->target = target;
    snprintf(s->addr, sizeof s->addr, "%s", addr);
    s->done = done;
    s->start_timer = loop_timer_add(n->loop, 0, sync_begin, s);
    if (!s->start_timer) {
        sync_free(s);
        return NULL;
    }
    s->next = n->kv->sessions;
    n->kv->sessions = s;
    return s;
}

static void serve_sync_digest(node_t *n, const uint8_t *ident, size_t ident_len,
                              const wire_msg_t *m)
{
    wire_msg_t *r = &n->out;
    wire_init(r, WIRE_SYNC_DIGEST | WIRE_REPLY, m->req_id);
    int rc = store_digest(n->store, m->lo, m->hi, &r->count, r->digest);
    if (rc < 0) {
        node_reply_error(n, ident, ident_len, m->req_id, -rc, "digest failed");
        return;
    }
    node_send(n, ident, ident_len, r);
}

static void serve_sync_offer(node_t *n, const uint8_t *ident, size_t ident_len, const wire_msg_t *m)
{
    wire_msg_t *r = &n->out;
    wire_init(r, WIRE_SYNC_OFFER | WIRE_REPLY, m->req_id);
    for (unsigned i = 0; i < m->noffers; i++) {
        store_rec_t rec;
        int rc = store_get(n->store, m->offers[i].key, m->offers[i].key_len, &rec);
        if (rc == -ENOENT || (rc == 0 && kv_version_cmp(rec.version, m->offers[i].version) < 0))
            r->want[r->nwant++] = (uint16_t)i;
    }
    node_send(n, ident, ident_len, r);
}

static void on_served_sync_done(sync_t *s)
{
    s->n->kv->served--;
}

static void serve_sync_pull(node_t *n, const uint8_t *ident, size_t ident_len, const wire_msg_t *m)
{
    wire_msg_t *r = &n->out;
    wire_init(r, WIRE_SYNC_PULL | WIRE_REPLY, m->req_id);
    if (n->kv->served < SYNC_SERVE_MAX && m->node.id != n->self &&
        sync_start(n, m->node.id, m->node.addr, m->lo, m->hi, on_served_sync_done))
        n->kv->served++;
    node_send(n, ident, ident_len, r);
}

typedef struct {
    uint64_t older_than_hlc;
    unsigned count;
    uint16_t key_len[PURGE_BATCH];
    kv_version_t version[PURGE_BATCH];
    uint8_t key[PURGE_BATCH][WIRE_KEY_MAX];
} purge_t;

static int collect_purge(const uint8_t *key, size_t key_len, ring_id_t pos, const store_rec_t *rec,
                         void *arg)
{
    (void)pos;
    purge_t *p = arg;
    if (!(rec->flags & WIRE_FLAG_TOMBSTONE) || rec->version.hlc >= p->older_than_hlc)
        return 0;
    memcpy(p->key[p->count], key, key_len);
    p->key_len[p->count] = (uint16_t)key_len;
    p->version[p->count] = rec->version;
    return ++p->count == PURGE_BATCH;
}

/* Remove key if it still is this tombstone. Returns true if removed. */
static bool purge_local(node_t *n, const uint8_t *key, size_t key_len, kv_version_t version)
{
    store_rec_t rec;
    return store_get(n->store, key, key_len, &rec) == 0 && (rec.flags & WIRE_FLAG_TOMBSTONE) &&
           kv_version_cmp(rec.version, version) == 0 && store_remove(n->store, key, key_len) == 0;
}

/*
 * Tombstones older than the grace period are forgotten, on every replica at
 * once, but only after a round found every replica in sync: a replica that
 * missed the delete would otherwise hand the old value back. (One that is
 * away for longer than the grace period still can: the grace period is the
 * longest outage a delete survives, as with Cassandra's gc_grace.)
 */
static void purge_tombstones(node_t *n, ring_id_t lo, ring_id_t hi)
{
    uint64_t now = wall_ms();
    uint64_t grace = (uint64_t)n->cfg.tombstone_grace_s * 1000u;
    if (now <= grace)
        return;
    purge_t *p = calloc(1, sizeof *p);
    if (!p)
        return;
    p->older_than_hlc = (now - grace) << 16;
    /* Collect first: removing inside the scan would invalidate its cursor. */
    store_scan(n->store, lo, hi, 0, NULL, 0, SIZE_MAX, collect_purge, p);
    ring_id_t reps[KV_QUORUM_MAX];
    size_t nrep = node_replica_set(n, reps, KV_QUORUM_MAX);
    for (unsigned k = 0; k < p->count; k++) {
        wire_msg_t req;
        wire_init(&req, WIRE_REPL_PUT, 0);
        req.key_bytes = p->key[k];
        req.key_len = p->key_len[k];
        req.version = p->version[k];
        req.flags = WIRE_FLAG_TOMBSTONE | WIRE_FLAG_PURGE;
        for (size_t i = 1; i < nrep; i++) {
            const char *addr = node_book_get(n, reps[i]);
            if (addr)
                rpc_call(n->rpc, addr, &req, n->cfg.timeout_ms, rpc_ignore_answer,
                         "tombstone purge");
        }
        purge_local(n, p->key[k], p->key_len[k], p->version[k]);
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
        kv->primary_keys = kv->round_primary;
        uint64_t under = kv->round_short ? kv->round_primary : kv->round_missing;
        kv->under_replicated = under < kv->round_primary ? under : kv->round_primary;
        memcpy(kv->last_reps, kv->round_reps, sizeof kv->last_reps);
        kv->last_nrep = kv->round_nrep;
        if (kv->under_replicated == 0 && !kv->round_short) {
            purge_tombstones(kv->n, kv->round_lo, kv->round_hi);
            drop_extra_copies(kv->n, kv->round_lo, kv->round_hi);
        }
    }
}

typedef struct {
    ring_id_t lo, hi;
    unsigned count;
    uint16_t key_len[PURGE_BATCH];
    uint8_t key[PURGE_BATCH][WIRE_KEY_MAX];
} drop_t;

static int collect_drop(const uint8_t *key, size_t key_len, ring_id_t pos, const store_rec_t *rec,
                        void *arg)
{
    (void)pos;
    (void)rec;
    drop_t *d = arg;
    memcpy(d->key[d->count], key, key_len);
    d->key_len[d->count] = (uint16_t)key_len;
    return ++d->count == PURGE_BATCH;
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
    drop_t *d = calloc(1, sizeof *d);
    if (!d)
        return;
    unsigned total = 0;
    do {
        d->count = 0;
        store_scan(n->store, kv_sync_lo(s->ks), kv_sync_hi(s->ks), 0, NULL, 0, PURGE_BATCH,
                   collect_drop, d);
        for (unsigned k = 0; k < d->count; k++)
            if (store_remove(n->store, d->key[k], d->key_len[k]) == 0)
                total++;
    } while (d->count == PURGE_BATCH);
    free(d);
    if (total)
        log_info("kv", "dropped %u records no longer replicated here", total);
}

static void serve_sync_drop(node_t *n, const uint8_t *ident, size_t ident_len, const wire_msg_t *m)
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
        (s = sync_start(n, m->node.id, m->node.addr, m->lo, m->hi, on_drop_synced))) {
        n->kv->served++;
        /*
         * Hand back only records younger than the tombstone grace period:
         * the authority may have purged the delete of anything older, and
         * an old copy offered now would bring the deleted value back.
         */
        uint64_t now = wall_ms(), grace = (uint64_t)n->cfg.tombstone_grace_s * 1000u;
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
    uint64_t now = loop_now_ms(n->loop);
    uint64_t period = n->cfg.stabilize_ms * 8;
    if (kv->round_active || now - kv->last_round_ms < period || n->leaving)
        return;
    kv->last_round_ms = now;
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
        if (addr && sync_start(n, reps[i], addr, pred, n->self, on_round_session))
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

/* --------------------------------------------------------------- leave */

static void handoff_finish(node_t *n)
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
        handoff_finish(s->n);
}

static void on_handoff_timeout(loop_t *loop, void *arg)
{
    (void)loop;
    node_t *n = arg;
    n->kv->handoff_timer = 0;
    log_warn("kv", "hand-off did not finish in time; leaving anyway");
    handoff_finish(n);
}

void kv_handoff(node_t *n, void (*done)(node_t *n))
{
    struct kv *kv = n->kv;
    kv->handoff_done = done;
    kv->handoff_pending = 0;
    ring_id_t succ[RING_SUCC_MAX];
    size_t ns = ring_state_succ_list(n->rs, succ, RING_SUCC_MAX);
    /* Without us, each key's replica set extends by one more successor. */
    size_t targets = ns < n->cfg.replicas ? ns : n->cfg.replicas;
    if (store_count(n->store) > 0) {
        for (size_t i = 0; i < targets; i++) {
            const char *addr = node_book_get(n, succ[i]);
            if (addr && sync_start(n, succ[i], addr, n->self, n->self, on_handoff_session))
                kv->handoff_pending++;
        }
    }
    if (kv->handoff_pending == 0) {
        handoff_finish(n);
        return;
    }
    log_info("kv", "handing %llu keys to %u successors", (unsigned long long)store_count(n->store),
             kv->handoff_pending);
    kv->handoff_timer = loop_timer_add(n->loop, HANDOFF_LIMIT_MS, on_handoff_timeout, n);
}

/* --------------------------------------------------------------- serve */

/*
 * Keys of our range, counted now, and how many of them are not known to
 * have N healthy copies: the last round's shortfall, or all of them while
 * the replica set differs from the one that round confirmed or one of its
 * members is missing deadlines (a round has not looked yet).
 */
void kv_stats(node_t *n, wire_msg_t *r)
{
    struct kv *kv = n->kv;
    ring_id_t pred;
    uint64_t primary = kv->primary_keys, digest[2];
    bool alone = ring_state_succ(n->rs) == n->self;
    if (alone)
        pred = n->self;
    if ((alone || ring_state_pred(n->rs, &pred)) &&
        store_digest(n->store, pred, n->self, &primary, digest) < 0)
        primary = kv->primary_keys;
    ring_id_t reps[KV_QUORUM_MAX];
    size_t nrep = node_replica_set(n, reps, KV_QUORUM_MAX);
    bool unconfirmed = nrep < n->cfg.replicas || nrep != kv->last_nrep ||
                       memcmp(reps, kv->last_reps, nrep * sizeof *reps) != 0;
    for (size_t i = 1; i < nrep && !unconfirmed; i++)
        unconfirmed = node_peer_suspect(n, reps[i]);
    uint64_t under = unconfirmed ? primary : kv->under_replicated;
    r->primary_keys = primary;
    r->under_replicated = under < primary ? under : primary;
    r->stored_keys = store_count(n->store);
    r->bytes = store_bytes(n->store);
    struct statvfs sv;
    if (statvfs(n->cfg.data_dir, &sv) == 0) {
        r->disk_total = (uint64_t)sv.f_blocks * sv.f_frsize;
        r->disk_free = (uint64_t)sv.f_bavail * sv.f_frsize;
    }
}

bool kv_serve(node_t *n, const uint8_t *ident, size_t ident_len, const wire_msg_t *m)
{
    if ((m->type == WIRE_KV_PUT || m->type == WIRE_REPL_PUT) && m->value_len > WIRE_VALUE_MAX) {
        node_reply_error(n, ident, ident_len, m->req_id, EFBIG,
                         "value of %zu bytes is larger than the %d-byte limit", m->value_len,
                         WIRE_VALUE_MAX);
        return true;
    }
    switch (m->type) {
    case WIRE_KV_GET:
    case WIRE_KV_PUT:
        serve_kv(n, ident, ident_len, m);
        return true;
    case WIRE_REPL_GET:
        serve_repl_get(n, ident, ident_len, m);
        return true;
    case WIRE_REPL_PUT:
        serve_repl_put(n, ident, ident_len, m);
        return true;
    case WIRE_SYNC_DIGEST:
        serve_sync_digest(n, ident, ident_len, m);
        return true;
    case WIRE_SYNC_OFFER:
        serve_sync_offer(n, ident, ident_len, m);
        return true;
    case WIRE_SYNC_PULL:
        serve_sync_pull(n, ident, ident_len, m);
        return true;
    case WIRE_SYNC_DROP:
        serve_sync_drop(n, ident, ident_len, m);
        return true;
    case WIRE_STATS: {
        wire_msg_t *r = &n->out;
        wire_init(r, WIRE_STATS | WIRE_REPLY, m->req_id);
        kv_stats(n, r);
        node_send(n, ident, ident_len, r);
        return true;
    }
    default:
        return false;
    }
}
