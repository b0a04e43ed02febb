/*
 * kvclient.c — routing and retries of store requests.
 *
 * State per operation: which node to ask next and how many attempts are
 * left. Transport failures (no answer) drop the node from the ring cache
 * and fall back to a lookup through a seed; "not mine" moves on to the
 * named node; EBUSY ("replicas busy, nothing written") is retried at the
 * same node with back-off, within the budget, and so is EAGAIN (the key's
 * queue is full) and ETIMEDOUT (no quorum in the coordinator's time: slow
 * replicas look like absent ones, and a slow ring must make operations
 * slower, not failed); other answers with an error code from a coordinator
 * (condition failed, disk full) are final, because the coordinator already
 * did what any retry would do.
 *
 * Every write carries this client's random id and its own sequence
 * number, the same on every retry, so a coordinator answers a retry with
 * the first attempt's outcome instead of applying the write twice. A
 * retry after an unanswered attempt says so (earlier_unknown), so a
 * condition that fails for a reason the coordinator cannot tie to this
 * write comes back as an unknown outcome (-ETIMEDOUT), never as a
 * conflict the caller would resolve by applying its change again.
 */
#include "kvclient.h"

#include "log.h"
#include "ring_place.h"
#include "wire.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    CACHE_MAX = 4096,
    /* Retries back off from 25 ms to 800 ms until the operation's budget is spent. */
    RETRY_DELAY_MS = 25,
    RETRY_DELAY_MAX_MS = 800,
    /* Budget of one operation, in attempt timeouts (at least BUDGET_MIN_MS). */
    BUDGET_TIMEOUTS = 4,
    BUDGET_MIN_MS = 5000,
    /* A read asks R replicas itself when R is at most this; else its authority coordinates. */
    DIRECT_MAX = 7,
    /*
     * A direct read not settled by then goes to the authority (which asks
     * all N and answers at R): one slow replica, or a node that does not
     * know KV_READ, costs this, not a request timeout.
     */
    DIRECT_HEDGE_MS = 50,
    /* A node that did not answer a direct read is not read directly for this long. */
    DIRECT_PENALTY_MS = 5000,
    DIRECT_UNSUPPORTED_MS = 60000,
    /* R reads and, under token placement, the authority's vouching when it holds no copy. */
    DREAD_MAX = DIRECT_MAX + 1,
};

typedef struct {
    ring_id_t id;
    char addr[ENDPOINT_MAX];
    uint64_t no_direct_until; /* loop clock, ms */
} cnode_t;

/*
 * Under token placement: a partition's replica set as its authority last
 * named it (n == 0: not known yet). Only a guess of whom to read: the
 * authority still vouches for every direct read.
 */
typedef struct {
    uint8_t n;
    ring_id_t id[RING_PLACE_REPLICAS_MAX];
} pset_t;

typedef enum { K_GET, K_PUT, K_LOOKUP } kind_t;

struct op;
struct dset;

/* One of the R reads of a direct read: where it went and what came back. */
typedef struct {
    struct dset *set;
    ring_id_t id;
    char addr[ENDPOINT_MAX];
    bool answered;
    int rc;
    bool found;
    uint8_t flags;
    kv_version_t version;
    bool vouched; /* the authority named this node in its replica set */
} dread_t;

/*
 * A direct read's calls. Its own allocation: the get may settle (answer,
 * or go to the authority) before every call is back, and the set lives
 * until the last one is.
 */
typedef struct dset {
    struct op *op; /* NULL once the get no longer waits for these calls */
    unsigned dn, dpending;
    unsigned full; /* the read asked for the value: 0 (the authority) or 1 */
    pset_t *ps;    /* the key's partition under token placement, else NULL */
    uint64_t hedge_timer;
    bool hedged;           /* given up on at DIRECT_HEDGE_MS: who has not answered is slow */
    dread_t dr[DREAD_MAX]; /* dr[0]: the authority */
} dset_t;

typedef struct op {
    kvc_t *c;
    struct op *prev, *next; /* all live ops */
    bool waiting_info;
    kind_t kind;
    uint8_t key[WIRE_KEY_MAX];
    uint16_t key_len;
    uint8_t *value;
    size_t value_len;
    uint8_t flags, cond;
    kv_version_t cond_version;
    uint32_t patch_off;
    unsigned attempts, redirects;
    uint64_t deadline_ms;
    char target[ENDPOINT_MAX];
    char next_hint[ENDPOINT_MAX]; /* where the retry goes, if known */
    uint64_t timer;
    kvc_done_fn done;
    kvc_lookup_fn ldone;
    void *arg;
    /* Writes: identity (same on every retry); an attempt went unanswered. */
    kv_opid_t opid;
    bool unknown;
    bool hook_dropped;
    /* Gets: the direct read, tried once; then the authority coordinates. */
    bool direct_tried;
    dset_t *ds;
    char redirect[ENDPOINT_MAX]; /* the authority said "not mine: ask this node" */
    bool held;                   /* held: the value read, until the others are in */
    zmq_msg_t held_value;
} op_t;

typedef struct {
    kvc_stats_fn fn;
    void *arg;
} stats_waiter_t;

/* A walk of the ring for kvc_ring_stats(), and its last result. */
typedef struct {
    bool active;
    stats_waiter_t *waiters;
    size_t nwaiters, capwaiters;
    uint64_t timer;      /* delivers a fresh cached result */
    uint64_t fail_timer; /* settles a call that could not be sent */
    int fail_rc;
    uint8_t pending; /* type of the call in flight */
    size_t seed_tries, visited;
    ring_id_t first;
    char addr[ENDPOINT_MAX];
    kvc_ring_stats_t acc;
    kvc_ring_stats_t last;
    uint64_t last_ms; /* 0: none yet */
} walk_t;

struct kvc {
    rpc_t *rpc;
    loop_t *loop;
    unsigned timeout_ms;
    char (*seeds)[ENDPOINT_MAX];
    size_t nseeds, next_seed;
    unsigned m;
    unsigned replicas, read_quorum; /* from INFO; 0 until known */
    bool info_plain;                /* the seed answered INFO only in layout 1 */
    pset_t *psets;                  /* token placement (INFO's tokens > 0): per partition */
    uint64_t direct_reads, direct_fallbacks;
    bool info_in_flight;
    unsigned info_failures;
    cnode_t *cache;
    size_t ncache;
    op_t *ops;
    uint64_t client_id, next_seq;
    unsigned lose_pct; /* test hook: DHT_TEST_LOSE_PUT_ANSWER_PCT */
    walk_t walk;
};

static void dispatch(op_t *op);
static void direct_detach(op_t *op);
static void info_request(kvc_t *c);

/* ------------------------------------------------------------ ring cache */

static size_t cache_lower(const kvc_t *c, ring_id_t id)
{
    size_t lo = 0, hi = c->ncache;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->cache[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void cache_remove_addr(kvc_t *c, const char *addr)
{
    size_t w = 0;
    for (size_t r = 0; r < c->ncache; r++)
        if (strcmp(c->cache[r].addr, addr) != 0)
            c->cache[w++] = c->cache[r];
    c->ncache = w;
}

static void cache_add(kvc_t *c, const wire_node_t *n)
{
    char norm[ENDPOINT_MAX];
    if (c->m == 0 || n->id > ring_mask(c->m) ||
        endpoint_normalize(n->addr, norm, sizeof norm, NULL) < 0)
        return;
    size_t k = cache_lower(c, n->id);
    if (k < c->ncache && c->cache[k].id == n->id) {
        snprintf(c->cache[k].addr, sizeof c->cache[k].addr, "%s", norm);
        return;
    }
    /* One endpoint, one node: a restarted node may come back with a new id. */
    cache_remove_addr(c, norm);
    k = cache_lower(c, n->id);
    if (c->ncache == CACHE_MAX)
        return;
    memmove(&c->cache[k + 1], &c->cache[k], (c->ncache - k) * sizeof *c->cache);
    c->cache[k].id = n->id;
    snprintf(c->cache[k].addr, sizeof c->cache[k].addr, "%s", norm);
    c->cache[k].no_direct_until = 0;
    c->ncache++;
}

/* ------------------------------------------------------------ completion */

static void op_free(op_t *op)
{
    kvc_t *c = op->c;
    if (op->prev)
        op->prev->next = op->next;
    else
        c->ops = op->next;
    if (op->next)
        op->next->prev = op->prev;
    if (op->timer)
        loop_timer_cancel(c->loop, op->timer);
    if (op->held)
        zmq_msg_close(&op->held_value);
    if (op->ds)
        direct_detach(op);
    free(op->value);
    free(op);
}

static void complete(op_t *op, int rc, const wire_msg_t *r, const char *message)
{
    if (op->kind == K_LOOKUP) {
        ring_id_t ids[WIRE_SUCC_MAX];
        const char *addrs[WIRE_SUCC_MAX];
        size_t n = 0;
        if (rc == 0 && r)
            for (; n < r->nsucc; n++) {
                ids[n] = r->succ[n].id;
                addrs[n] = r->succ[n].addr;
            }
        op->ldone(rc, n, ids, addrs, op->arg);
    } else {
        kvc_result_t res = {rc, {0, 0}, NULL, 0, message};
        if (r && rc == 0) {
            res.version = r->version;
            if (op->kind == K_GET) {
                res.value = r->value;
                res.value_len = r->value_len;
            }
        }
        op->done(&res, op->arg);
    }
    op_free(op);
}

static void send_kv(op_t *op, const char *addr);

static void on_retry_timer(loop_t *loop, void *arg)
{
    (void)loop;
    op_t *op = arg;
    op->timer = 0;
    if (op->next_hint[0] && op->kind != K_LOOKUP) {
        char hint[ENDPOINT_MAX];
        snprintf(hint, sizeof hint, "%s", op->next_hint);
        op->next_hint[0] = '\0';
        send_kv(op, hint);
        return;
    }
    dispatch(op);
}

/*
 * Try again after a pause that doubles each time (the ring may be repairing
 * itself: a crashed node is only routed around once its neighbours agree it
 * failed), at `hint` if given, else wherever routing says. Gives up when
 * the operation's time budget is spent.
 */
static void retry_at(op_t *op, const char *hint, const char *why)
{
    unsigned shift = op->attempts < 5 ? op->attempts : 5;
    uint64_t delay = (uint64_t)RETRY_DELAY_MS << shift;
    if (delay > RETRY_DELAY_MAX_MS)
        delay = RETRY_DELAY_MAX_MS;
    op->attempts++;
    if (loop_clock_ms() + delay >= op->deadline_ms) {
        complete(op, -ETIMEDOUT, NULL, why);
        return;
    }
    snprintf(op->next_hint, sizeof op->next_hint, "%s", hint ? hint : "");
    op->target[0] = '\0';
    op->timer = loop_timer_add(op->c->loop, delay, on_retry_timer, op);
    if (!op->timer)
        complete(op, -ENOMEM, NULL, "out of memory");
}

static void retry(op_t *op, const char *why)
{
    retry_at(op, NULL, why);
}

/* ------------------------------------------------------------- requests */

static void on_kv_reply(int rc, const wire_msg_t *r, void *arg)
{
    op_t *op = arg;
    kvc_t *c = op->c;
    if (rc == -ECANCELED) {
        complete(op, rc, NULL, "client shut down");
        return;
    }
    if (op->kind == K_PUT && c->lose_pct && !op->hook_dropped && r &&
        (unsigned)rand() % 100 < c->lose_pct) {
        /* Test hook: behave as if this answer was lost on the way. */
        op->hook_dropped = true;
        op->unknown = true;
        retry(op, "test hook: answer dropped");
        return;
    }
    if (rc == 0) {
        if (op->kind == K_GET && !r->found)
            complete(op, -ENOENT, r, NULL);
        else
            complete(op, 0, r, NULL);
        return;
    }
    if (rc == -EREMOTE && r) {
        cache_add(c, &r->node);
        /*
         * A redirect or two is normal (a stale cache); more mean the nodes
         * disagree while the ring repairs itself: slow down until they agree.
         */
        if (++op->redirects <= 2 && strcmp(r->node.addr, op->target) != 0) {
            send_kv(op, r->node.addr);
            return;
        }
        retry_at(op, strcmp(r->node.addr, op->target) != 0 ? r->node.addr : NULL,
                 "the ring is changing; no node took the key");
        return;
    }
    if ((rc == -EBUSY || rc == -EAGAIN) && r) {
        /*
         * Refused before anything was applied (replicas busy, or the key's
         * queue full): back off and ask the same node again.
         */
        retry_at(op, op->target, r->err_msg[0] ? r->err_msg : "the ring is busy");
        return;
    }
    if (rc == -ENOTRECOVERABLE && r) {
        /*
         * The coordinator cannot tell whether the write applied (an earlier
         * attempt, or another coordinator overtaking it): a retry cannot either.
         */
        complete(op, -ETIMEDOUT, r, r->err_msg[0] ? r->err_msg : "outcome unknown");
        return;
    }
    if (rc == -ETIMEDOUT && r) {
        /*
         * The coordinator reached no quorum in its time: replicas that are
         * slow (a loaded machine, a disk) look the same as replicas that
         * are gone, so ask again until the budget is spent — busy is not
         * down. A write may have reached some replicas: its outcome is now
         * unknown, and the retry carries the same identity, so the
         * coordinator completes it rather than applying it twice.
         */
        if (op->kind == K_PUT)
            op->unknown = true;
        retry_at(op, op->target, r->err_msg[0] ? r->err_msg : "no quorum");
        return;
    }
    if (rc == -EACCES) {
        /* A secured ring refused our key: asking again or elsewhere cannot help. */
        complete(op, rc, r, r && r->err_msg[0] ? r->err_msg : "the ring refused this client's key");
        return;
    }
    if (!r || rc == -ESHUTDOWN) {
        /* No answer (or the node is leaving): forget it and look again. */
        if (!r)
            op->unknown = true; /* it may have been applied */
        cache_remove_addr(c, op->target);
        retry(op, rc == -ESHUTDOWN ? "node leaving" : "no answer from the ring");
        return;
    }
    complete(op, rc, r, r->err_msg[0] ? r->err_msg : NULL);
}

static void send_kv(op_t *op, const char *addr)
{
    kvc_t *c = op->c;
    wire_msg_t *req = malloc(sizeof *req);
    if (!req) {
        complete(op, -ENOMEM, NULL, "out of memory");
        return;
    }
    wire_init(req, op->kind == K_GET ? WIRE_KV_GET : WIRE_KV_PUT, 0);
    req->key_bytes = op->key;
    req->key_len = op->key_len;
    if (op->kind == K_PUT) {
        req->flags = op->flags;
        req->cond = op->cond;
        req->cond_version = op->cond_version;
        req->patch_off = op->patch_off;
        req->value = op->value;
        req->value_len = op->value_len;
        req->has_opid = true;
        req->opid = op->opid;
        req->earlier_unknown = op->unknown;
        uint64_t now = loop_clock_ms();
        uint64_t left = op->deadline_ms > now ? op->deadline_ms - now : 1;
        req->budget_ms = left > UINT32_MAX ? UINT32_MAX : (uint32_t)left;
    }
    snprintf(op->target, sizeof op->target, "%s", addr);
    int rc = rpc_call(c->rpc, addr, req, c->timeout_ms, on_kv_reply, op);
    free(req);
    if (rc < 0) {
        if (rc != -EAGAIN) /* our own calls in flight are at their limit: not the node's fault */
            cache_remove_addr(c, addr);
        retry(op, "cannot send");
        return;
    }
}

static void on_find_reply(int rc, const wire_msg_t *r, void *arg)
{
    op_t *op = arg;
    kvc_t *c = op->c;
    if (rc == -ECANCELED) {
        complete(op, rc, NULL, "client shut down");
        return;
    }
    if (rc == -EACCES) {
        complete(op, rc, r, r && r->err_msg[0] ? r->err_msg : "the ring refused this client's key");
        return;
    }
    if (rc < 0 || !r->done) {
        if (!r)
            cache_remove_addr(c, op->target);
        retry(op, "lookup failed");
        return;
    }
    cache_add(c, &r->node);
    for (unsigned i = 0; i < r->nsucc; i++)
        cache_add(c, &r->succ[i]);
    if (op->kind == K_LOOKUP) {
        complete(op, 0, r, NULL);
        return;
    }
    char owner[ENDPOINT_MAX];
    snprintf(owner, sizeof owner, "%s", r->node.addr);
    send_kv(op, owner);
}

/* Ask the ring who owns the key, through a seed or any cached node. */
static void find(op_t *op)
{
    kvc_t *c = op->c;
    const char *via;
    /* Alternate between seeds and cached nodes so one dead seed is not fatal. */
    if (c->ncache && (op->attempts % 2 == 1 || c->nseeds == 0))
        via = c->cache[(size_t)rand() % c->ncache].addr;
    else
        via = c->seeds[c->next_seed++ % c->nseeds];
    wire_msg_t req;
    wire_init(&req, WIRE_FIND, 0);
    req.key = ring_hash(op->key, op->key_len, c->m);
    req.mode = WIRE_FIND_RECURSIVE;
    snprintf(op->target, sizeof op->target, "%s", via);
    if (rpc_call(c->rpc, via, &req, c->timeout_ms * 2, on_find_reply, op) < 0) {
        retry(op, "cannot send");
        return;
    }
}

/* ---------------------------------------------------------- direct reads */

/*
 * A get asks R replicas itself, in parallel, instead of asking the key's
 * authority to ask them: one round trip instead of two, and the value
 * crosses the network once. The authority (which coordinates the key's
 * writes) names its replica set; one replica sends the value, the others
 * their version only. The answer stands only if the authority vouched
 * for every other node asked, and all R agree on the version: then the
 * newest version any write quorum left is among them (W + R > N), exactly
 * as when the authority asks. Anything else (a stale cache, a replica
 * behind, a write under way, a node silent) falls back to a coordinated
 * KV_GET, which also repairs what it finds.
 *
 * Whom to ask: under Chord placement the authority and the next R - 1
 * nodes of the ring cache, its successors. Under token placement the
 * replica set is not the authority's successors, nor need it include the
 * authority: the client keeps each partition's set as the authority last
 * named it, reads R of its members, and asks the authority as well only
 * for its vouching when it is not a member. A partition not known yet is
 * read as under Chord placement, which teaches its set.
 */

static const cnode_t *cache_find_id(const kvc_t *c, ring_id_t id)
{
    size_t k = cache_lower(c, id);
    return k < c->ncache && c->cache[k].id == id ? &c->cache[k] : NULL;
}

/* Remember the set an authority named: itself (if holder) and the list. */
static void pset_learn(pset_t *ps, const ring_id_t *holder, const wire_msg_t *r)
{
    if (!ps)
        return;
    unsigned n = 0;
    if (holder)
        ps->id[n++] = *holder;
    for (unsigned i = 0; i < r->nsucc && n < RING_PLACE_REPLICAS_MAX; i++)
        ps->id[n++] = r->succ[i].id;
    ps->n = (uint8_t)n;
}

static cnode_t *cache_find_addr(kvc_t *c, const char *addr)
{
    for (size_t i = 0; i < c->ncache; i++)
        if (strcmp(c->cache[i].addr, addr) == 0)
            return &c->cache[i];
    return NULL;
}

/* The get stops waiting for its direct calls; the set goes with the last answer. */
static void direct_detach(op_t *op)
{
    dset_t *ds = op->ds;
    op->ds = NULL;
    ds->op = NULL;
    if (ds->hedge_timer)
        loop_timer_cancel(op->c->loop, ds->hedge_timer);
    ds->hedge_timer = 0;
    /*
     * Whoever failed or was too slow to answer is not read directly for a
     * while, nor for longer a node that does not know direct reads (one
     * built before them, in a rolling upgrade). A node still on its way
     * when another's answer settled the read is not slow.
     */
    uint64_t now = loop_clock_ms();
    for (unsigned i = 0; i < ds->dn; i++) {
        const dread_t *d = &ds->dr[i];
        bool silent = !d->answered && (d->rc != 1 || ds->hedged); /* rc 1: still on its way */
        uint64_t pause = silent                 ? DIRECT_PENALTY_MS
                         : d->rc == -EOPNOTSUPP ? DIRECT_UNSUPPORTED_MS
                                                : 0;
        cnode_t *cn = pause ? cache_find_addr(op->c, d->addr) : NULL;
        if (cn)
            cn->no_direct_until = now + pause;
    }
    if (ds->dpending == 0)
        free(ds);
}

static void direct_fallback(op_t *op)
{
    kvc_t *c = op->c;
    dset_t *ds = op->ds;
    dread_t a = ds->dr[0];
    bool cancelled = false;
    for (unsigned i = 0; i < ds->dn; i++)
        cancelled |= ds->dr[i].rc == -ECANCELED;
    c->direct_fallbacks++;
    direct_detach(op);
    if (op->held) {
        zmq_msg_close(&op->held_value);
        op->held = false;
    }
    if (cancelled) {
        complete(op, -ECANCELED, NULL, "client shut down");
    } else if (a.rc == -EACCES) {
        complete(op, -EACCES, NULL,
                 "the ring refused this client's key (or this key outside its volumes)");
    } else if (a.rc == -EREMOTE && op->redirect[0]) {
        char to[ENDPOINT_MAX];
        snprintf(to, sizeof to, "%s", op->redirect);
        send_kv(op, to);
    } else if (a.rc == -ESHUTDOWN || (!a.answered && a.rc != 1)) {
        cache_remove_addr(c, a.addr); /* gone (or going): look again */
        retry(op, "no answer from the key's authority");
    } else {
        send_kv(op, a.addr); /* the authority coordinates (also when it was only slow) */
    }
}

/* All R reads are in and sound: answer, or fall back to the authority. */
static void direct_settle(op_t *op, const wire_msg_t *last)
{
    dset_t *ds = op->ds;
    const dread_t *a = &ds->dr[ds->full];
    bool ok = ds->dr[0].answered && ds->dr[0].rc == 0;
    for (unsigned i = 1; i < ds->dn && ok; i++) {
        const dread_t *d = &ds->dr[i];
        ok = d->answered && d->rc == 0 && d->vouched && d->found == a->found &&
             (!a->found || (kv_version_cmp(d->version, a->version) == 0 &&
                            (d->flags & WIRE_FLAG_TOMBSTONE) == (a->flags & WIRE_FLAG_TOMBSTONE)));
    }
    if (!ok) {
        direct_fallback(op);
        return;
    }
    op->c->direct_reads++;
    kv_version_t version = a->version;
    uint8_t flags = a->flags;
    bool found = a->found && !(flags & WIRE_FLAG_TOMBSTONE);
    direct_detach(op);
    if (!found) {
        complete(op, -ENOENT, NULL, NULL);
        return;
    }
    /* The value read: the reply in hand, or the value frame held from it. */
    wire_msg_t *r = malloc(sizeof *r);
    if (!r) {
        complete(op, -ENOMEM, NULL, "out of memory");
        return;
    }
    wire_init(r, WIRE_KV_GET | WIRE_REPLY, 0);
    r->found = true;
    r->version = version;
    r->flags = flags;
    if (last) {
        r->value = last->value;
        r->value_len = last->value_len;
    } else if (op->held) {
        r->value = zmq_msg_data(&op->held_value);
        r->value_len = zmq_msg_size(&op->held_value);
    }
    complete(op, 0, r, NULL);
    free(r);
}

/* Not settled within DIRECT_HEDGE_MS: the authority coordinates instead. */
static void on_direct_hedge(loop_t *loop, void *arg)
{
    (void)loop;
    op_t *op = arg;
    op->ds->hedge_timer = 0;
    op->ds->hedged = true;
    direct_fallback(op);
}

static void on_direct_reply(int rc, const wire_msg_t *r, void *arg)
{
    dread_t *d = arg;
    dset_t *ds = d->set;
    ds->dpending--;
    d->answered = r != NULL || rc == -ECANCELED;
    d->rc = rc == 0 && !r ? -EIO : rc;
    op_t *op = ds->op;
    if (!op) {
        /* Late: the get went on without this answer. */
        if (ds->dpending == 0)
            free(ds);
        return;
    }
    kvc_t *c = op->c;
    bool authority = d == &ds->dr[0];
    bool full = d == &ds->dr[ds->full];
    if (d->rc == 0) {
        d->found = r->found;
        d->version = r->version;
        d->flags = r->flags;
        if (authority) {
            /*
             * done: the authority, holding a copy, names the others; a list
             * without done: the authority holds no copy and names the whole
             * set; neither: not (or no longer) the authority, or not vouching
             * now (copies moving).
             */
            if (r->done || r->nsucc > 0)
                pset_learn(ds->ps, r->done ? &d->id : NULL, r);
            if (ds->full == 0 ? !r->done : r->nsucc == 0) /* full 1: it only vouches */
                d->rc = -EREMOTE;
            for (unsigned i = 0; i < r->nsucc; i++) {
                char norm[ENDPOINT_MAX];
                cache_add(c, &r->succ[i]);
                if (endpoint_normalize(r->succ[i].addr, norm, sizeof norm, NULL) < 0)
                    continue;
                for (unsigned k = 1; k < ds->dn; k++)
                    if (ds->dr[k].id == r->succ[i].id && strcmp(ds->dr[k].addr, norm) == 0)
                        ds->dr[k].vouched = true;
            }
        }
    } else if (rc == -EREMOTE && r && authority) {
        cache_add(c, &r->node);
        snprintf(op->redirect, sizeof op->redirect, "%s", r->node.addr);
    }
    /* A failed answer settles it at once: the authority has to coordinate. */
    if (d->rc != 0) {
        direct_fallback(op);
        return;
    }
    if (ds->dpending > 0) {
        /* Keep the value until the others are in (no copy). */
        if (full && r->found) {
            if (rpc_take_value(c->rpc, &op->held_value) == 0) {
                op->held = true;
            } else {
                d->rc = -ENOMEM;
                direct_fallback(op);
            }
        }
        return;
    }
    direct_settle(op, full ? r : NULL);
}

/*
 * Whom a direct read asks: pick[0] the authority (the cached owner, index
 * k), then the other replicas to read. Returns how many were picked, or 0
 * when R readable nodes cannot be named or one of them recently left a
 * direct read unanswered; *counts: the authority is one of the R.
 */
static unsigned direct_plan(kvc_t *c, pset_t *ps, size_t k, unsigned want, const cnode_t **pick,
                            bool *counts)
{
    uint64_t now = loop_clock_ms();
    pick[0] = &c->cache[k];
    if (pick[0]->no_direct_until > now)
        return 0;
    /*
     * A set too small to read R of, or naming a node the cache lost (gone,
     * or back with a new id), is learned again by a read of the old kind.
     */
    const cnode_t *member[RING_PLACE_REPLICAS_MAX];
    if (ps && ps->n < want)
        ps->n = 0;
    for (unsigned i = 0; ps && i < ps->n; i++)
        if (!(member[i] = cache_find_id(c, ps->id[i])))
            ps->n = 0;
    if (!ps || ps->n == 0) {
        for (unsigned i = 1; i < want; i++) {
            pick[i] = &c->cache[(k + i) % c->ncache];
            if (pick[i]->no_direct_until > now)
                return 0;
        }
        *counts = true;
        return want;
    }
    *counts = false;
    for (unsigned i = 0; i < ps->n; i++)
        *counts |= ps->id[i] == pick[0]->id;
    unsigned n = 1, readers = *counts;
    for (unsigned i = 0; i < ps->n && readers < want; i++)
        if (member[i] != pick[0] && member[i]->no_direct_until <= now) {
            pick[n++] = member[i];
            readers++;
        }
    return readers == want ? n : 0;
}

/*
 * Start a direct read of the key at position pos whose cached owner is at index k.
 * Returns false (nothing sent) when direct_plan finds no one to ask or no
 * call could be sent; the get then goes to the authority as usual.
 */
static bool direct_start(op_t *op, ring_id_t pos, size_t k)
{
    kvc_t *c = op->c;
    unsigned want = c->read_quorum;
    if (want < 2 || want > DIRECT_MAX || want > c->ncache || c->replicas < want)
        return false;
    const cnode_t *pick[DREAD_MAX];
    bool counts;
    pset_t *ps = c->psets ? &c->psets[ring_place_part_of(pos, c->m)] : NULL;
    unsigned n = direct_plan(c, ps, k, want, pick, &counts);
    if (n == 0)
        return false;
    dset_t *ds = calloc(1, sizeof *ds);
    wire_msg_t *req = malloc(sizeof *req);
    if (!ds || !req) {
        free(ds);
        free(req);
        return false;
    }
    ds->dn = n;
    ds->full = counts ? 0 : 1;
    ds->ps = ps;
    for (unsigned i = 0; i < n; i++) {
        /* rc 1: no answer yet */
        ds->dr[i] = (dread_t){.set = ds, .id = pick[i]->id, .rc = 1};
        snprintf(ds->dr[i].addr, sizeof ds->dr[i].addr, "%s", pick[i]->addr);
    }
    for (unsigned i = 0; i < n; i++) {
        wire_init(req, WIRE_KV_READ, 0);
        req->key_bytes = op->key;
        req->key_len = op->key_len;
        req->read_mode = i == ds->full ? WIRE_READ_FULL : WIRE_READ_VERSION;
        if (rpc_call(c->rpc, ds->dr[i].addr, req, c->timeout_ms, on_direct_reply, &ds->dr[i]) < 0) {
            ds->dn = i; /* the calls already sent still answer; the set waits for them */
            break;
        }
        ds->dpending++;
    }
    free(req);
    if (ds->dpending == 0) {
        free(ds);
        return false;
    }
    op->direct_tried = true;
    op->ds = ds;
    ds->op = op;
    if (ds->dn < n) {
        /* Not all asked: the authority coordinates; the calls out finish on their own. */
        direct_fallback(op);
        return true;
    }
    ds->hedge_timer = loop_timer_add(c->loop, DIRECT_HEDGE_MS, on_direct_hedge, op);
    return true;
}

static void dispatch(op_t *op)
{
    kvc_t *c = op->c;
    if (c->m == 0) {
        op->waiting_info = true;
        info_request(c);
        return;
    }
    if (op->kind == K_LOOKUP || c->ncache == 0) {
        find(op);
        return;
    }
    ring_id_t pos = ring_hash(op->key, op->key_len, c->m);
    size_t k = cache_lower(c, pos);
    if (k == c->ncache)
        k = 0;
    if (op->kind == K_GET && !op->direct_tried && direct_start(op, pos, k))
        return;
    send_kv(op, c->cache[k].addr);
}

/* ------------------------------------------------------- ring discovery */

static void on_info(int rc, const wire_msg_t *r, void *arg)
{
    kvc_t *c = arg;
    c->info_in_flight = false;
    if (rc == -ECANCELED)
        return;
    /* Refused, or a secured node reached without CURVE: asking again cannot help. */
    bool refused = rc == -EACCES || rc == -EPROTO;
    if (rc == -EPROTONOSUPPORT && !c->info_plain) {
        /* A node older than token placement: it places by Chord successors. */
        c->info_plain = true;
        info_request(c);
        return;
    }
    if (rc == 0 && ring_bits_valid(r->id_bits)) {
        c->m = r->id_bits;
        c->replicas = r->replicas;
        c->read_quorum = r->read_quorum;
        if (r->has_place && r->tokens > 0 && !c->psets)
            c->psets = calloc(ring_place_part_count(c->m), sizeof *c->psets);
        cache_add(c, &r->node);
        for (unsigned i = 0; i < r->nsucc; i++)
            cache_add(c, &r->succ[i]);
    } else if (!refused && ++c->info_failures < c->nseeds * 2) {
        info_request(c);
        return;
    }
    /* Release waiting ops: dispatched now, or failed if no seed answered. */
    op_t *op = c->ops;
    while (op) {
        op_t *next = op->next;
        if (op->waiting_info) {
            op->waiting_info = false;
            if (c->m)
                dispatch(op);
            else if (rc == -EPROTO)
                complete(op, -EPROTO, NULL,
                         "the node requires CURVE: give --key FILE and the node's address as "
                         "EP#KEY (its public key)");
            else if (refused)
                complete(op, -EACCES, NULL, "the ring refused this client's key");
            else
                complete(op, -ETIMEDOUT, NULL, "no seed node answered");
        }
        op = next;
    }
    c->info_failures = 0;
}

static void info_request(kvc_t *c)
{
    if (c->info_in_flight)
        return;
    wire_msg_t req;
    wire_init(&req, WIRE_INFO, 0);
    req.has_epoch = req.has_place = !c->info_plain; /* asks for the placement */
    const char *seed = c->seeds[c->next_seed++ % c->nseeds];
    int rc = rpc_call(c->rpc, seed, &req, c->timeout_ms, on_info, c);
    if (rc == 0)
        c->info_in_flight = true;
    else
        on_info(rc, NULL, c); /* counts as a failed seed; waiting ops are not left hanging */
}

/* ------------------------------------------------------------ ring stats */

/* Everyone waiting gets rc and stats; callbacks may ask again (a new walk). */
static void walk_deliver(kvc_t *c, int rc, const kvc_ring_stats_t *stats)
{
    walk_t *w = &c->walk;
    size_t n = w->nwaiters;
    stats_waiter_t *list = w->waiters;
    w->waiters = NULL;
    w->nwaiters = w->capwaiters = 0;
    kvc_ring_stats_t copy = stats ? *stats : (kvc_ring_stats_t){0};
    for (size_t i = 0; i < n; i++)
        list[i].fn(rc, stats ? &copy : NULL, list[i].arg);
    free(list);
}

static void walk_call(kvc_t *c, const char *addr, uint8_t type);

static void walk_finish(kvc_t *c, int rc)
{
    walk_t *w = &c->walk;
    w->active = false;
    if (rc == 0 && w->acc.nodes == 0)
        rc = -ETIMEDOUT; /* nobody answered STATS */
    if (rc == 0) {
        w->last = w->acc;
        w->last_ms = loop_clock_ms();
    }
    walk_deliver(c, rc, rc == 0 ? &w->last : NULL);
}

static void walk_first_info(kvc_t *c)
{
    walk_t *w = &c->walk;
    if (w->seed_tries++ >= c->nseeds) {
        walk_finish(c, -ETIMEDOUT);
        return;
    }
    walk_call(c, c->seeds[(c->next_seed + w->seed_tries) % c->nseeds], WIRE_INFO);
}

/*
 * The walk: INFO from a seed names the first node; then, per node, STATS
 * (added up) and INFO (its successor), until the successor is the first
 * node again. A node that does not answer STATS is left out; one that does
 * not answer INFO ends the walk with what was summed so far.
 */
static void on_walk_reply(int rc, const wire_msg_t *r, void *arg)
{
    kvc_t *c = arg;
    walk_t *w = &c->walk;
    if (rc == -ECANCELED) {
        w->active = false;
        walk_deliver(c, -ECANCELED, NULL);
        return;
    }
    if (rc == 0 && !r)
        rc = -EIO;
    if (rc == -EACCES || rc == -EPROTO) {
        w->active = false;
        walk_deliver(c, rc, NULL);
        return;
    }
    if (w->visited == 0) { /* a seed's INFO */
        if (rc < 0 || r->node.addr[0] == '\0') {
            walk_first_info(c);
            return;
        }
        w->first = r->node.id;
        w->acc.replicas = r->replicas ? r->replicas : 1;
        snprintf(w->addr, sizeof w->addr, "%s", r->node.addr);
        w->visited = 1;
        walk_call(c, w->addr, WIRE_STATS);
        return;
    }
    if (w->pending == WIRE_STATS) {
        if (rc == 0) {
            w->acc.nodes++;
            w->acc.primary_keys += r->primary_keys;
            w->acc.stored_keys += r->stored_keys;
            w->acc.under_replicated += r->under_replicated;
            w->acc.bytes += r->bytes;
            w->acc.disk_total += r->disk_total;
            w->acc.disk_free += r->disk_free;
        }
        walk_call(c, w->addr, WIRE_INFO);
        return;
    }
    if (rc < 0 || r->nsucc == 0 || r->succ[0].id == w->first || w->visited >= KVC_RING_WALK_MAX) {
        walk_finish(c, 0);
        return;
    }
    snprintf(w->addr, sizeof w->addr, "%s", r->succ[0].addr);
    w->visited++;
    walk_call(c, w->addr, WIRE_STATS);
}

static void on_walk_failed(loop_t *loop, void *arg)
{
    (void)loop;
    kvc_t *c = arg;
    c->walk.fail_timer = 0;
    on_walk_reply(c->walk.fail_rc, NULL, c);
}

static void walk_call(kvc_t *c, const char *addr, uint8_t type)
{
    walk_t *w = &c->walk;
    wire_msg_t req;
    wire_init(&req, type, 0);
    w->pending = type;
    int rc = rpc_call(c->rpc, addr, &req, c->timeout_ms, on_walk_reply, c);
    if (rc < 0) {
        /* Settled as a failed answer from the loop, so done never runs inside the call. */
        w->fail_rc = rc;
        w->fail_timer = loop_timer_add(c->loop, 0, on_walk_failed, c);
        if (!w->fail_timer) {
            w->active = false;
            walk_deliver(c, -ENOMEM, NULL);
        }
    }
}

static void on_walk_cached(loop_t *loop, void *arg)
{
    (void)loop;
    kvc_t *c = arg;
    c->walk.timer = 0;
    walk_deliver(c, 0, &c->walk.last);
}

int kvc_ring_stats(kvc_t *c, kvc_stats_fn done, void *arg)
{
    walk_t *w = &c->walk;
    if (w->nwaiters == w->capwaiters) {
        size_t cap = w->capwaiters ? w->capwaiters * 2 : 8;
        stats_waiter_t *p = realloc(w->waiters, cap * sizeof *p);
        if (!p)
            return -ENOMEM;
        w->waiters = p;
        w->capwaiters = cap;
    }
    w->waiters[w->nwaiters++] = (stats_waiter_t){done, arg};
    if (w->active || w->timer)
        return 0; /* joins the walk or the delivery under way */
    uint64_t now = loop_clock_ms();
    if (w->last_ms && now - w->last_ms < KVC_RING_STATS_TTL_MS) {
        w->timer = loop_timer_add(c->loop, 0, on_walk_cached, c);
        if (w->timer)
            return 0;
    }
    w->active = true;
    w->seed_tries = 0;
    w->visited = 0;
    w->acc = (kvc_ring_stats_t){0};
    walk_first_info(c);
    return 0;
}

/* ------------------------------------------------------------------ API */

kvc_t *kvc_new(rpc_t *rpc, loop_t *loop, const char *const *seeds, size_t nseeds,
               unsigned timeout_ms)
{
    if (nseeds == 0)
        return NULL;
    kvc_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->rpc = rpc;
    c->loop = loop;
    c->timeout_ms = timeout_ms;
    if (sodium_init() < 0) {
        free(c);
        return NULL;
    }
    /* Random, so two clients (or one restarted) never share an id; 0 means "none". */
    while (c->client_id == 0)
        randombytes_buf(&c->client_id, sizeof c->client_id);
    const char *lose = getenv("DHT_TEST_LOSE_PUT_ANSWER_PCT");
    if (lose && *lose) {
        c->lose_pct = (unsigned)strtoul(lose, NULL, 10);
        if (c->lose_pct > 100)
            c->lose_pct = 100;
        log_warn("kvc", "test hook: dropping the first answer of %u%% of writes", c->lose_pct);
    }
    c->seeds = calloc(nseeds, sizeof *c->seeds);
    c->cache = calloc(CACHE_MAX, sizeof *c->cache);
    if (!c->seeds || !c->cache) {
        kvc_destroy(&c);
        return NULL;
    }
    for (size_t i = 0; i < nseeds; i++)
        if (endpoint_normalize(seeds[i], c->seeds[c->nseeds], ENDPOINT_MAX, NULL) == 0)
            c->nseeds++;
    if (c->nseeds == 0) {
        kvc_destroy(&c);
        return NULL;
    }
    return c;
}

void kvc_destroy(kvc_t **pc)
{
    if (!pc || !*pc)
        return;
    kvc_t *c = *pc;
    if (c->direct_reads || c->direct_fallbacks)
        log_info("kvc",
                 "reads: %llu answered by R replicas directly, %llu coordinated by the authority",
                 (unsigned long long)c->direct_reads, (unsigned long long)c->direct_fallbacks);
    /* Ops with a call in flight are completed by the rpc's cancellation. */
    while (c->ops)
        complete(c->ops, -ECANCELED, NULL, "client shut down");
    if (c->walk.timer)
        loop_timer_cancel(c->loop, c->walk.timer);
    if (c->walk.fail_timer)
        loop_timer_cancel(c->loop, c->walk.fail_timer);
    walk_deliver(c, -ECANCELED, NULL);
    free(c->walk.waiters);
    free(c->seeds);
    free(c->cache);
    free(c->psets);
    free(c);
    *pc = NULL;
}

void kvc_read_counts(const kvc_t *c, uint64_t *direct, uint64_t *coordinated)
{
    *direct = c->direct_reads;
    *coordinated = c->direct_fallbacks;
}

unsigned kvc_id_bits(const kvc_t *c)
{
    return c->m;
}

static op_t *op_new(kvc_t *c, kind_t kind, const void *key, size_t key_len)
{
    if (!key || key_len == 0 || key_len > WIRE_KEY_MAX)
        return NULL;
    op_t *op = calloc(1, sizeof *op);
    if (!op)
        return NULL;
    op->c = c;
    op->kind = kind;
    uint64_t budget = (uint64_t)c->timeout_ms * BUDGET_TIMEOUTS;
    op->deadline_ms = loop_clock_ms() + (budget > BUDGET_MIN_MS ? budget : BUDGET_MIN_MS);
    memcpy(op->key, key, key_len);
    op->key_len = (uint16_t)key_len;
    op->next = c->ops;
    if (c->ops)
        c->ops->prev = op;
    c->ops = op;
    return op;
}

int kvc_get(kvc_t *c, const void *key, size_t key_len, kvc_done_fn done, void *arg)
{
    op_t *op = op_new(c, K_GET, key, key_len);
    if (!op)
        return key_len > WIRE_KEY_MAX || key_len == 0 ? -EINVAL : -ENOMEM;
    op->done = done;
    op->arg = arg;
    dispatch(op);
    return 0;
}

static uint8_t wire_cond(kvc_cond_t cond)
{
    return cond == KVC_PUT_IF_ABSENT    ? WIRE_COND_ABSENT
           : cond == KVC_PUT_IF_VERSION ? WIRE_COND_VERSION
                                        : WIRE_COND_NONE;
}

static int put_op(kvc_t *c, const void *key, size_t key_len, const void *value, size_t value_len,
                  uint8_t flags, uint8_t cond, kv_version_t if_version, uint32_t patch_off,
                  kvc_done_fn done, void *arg)
{
    if (value_len > WIRE_VALUE_MAX || patch_off > WIRE_VALUE_MAX - value_len)
        return -EFBIG;
    op_t *op = op_new(c, K_PUT, key, key_len);
    if (!op)
        return key_len > WIRE_KEY_MAX || key_len == 0 ? -EINVAL : -ENOMEM;
    op->value = malloc(value_len ? value_len : 1);
    if (!op->value) {
        op_free(op);
        return -ENOMEM;
    }
    if (value_len)
        memcpy(op->value, value, value_len);
    op->value_len = value_len;
    op->flags = flags;
    op->cond = cond;
    op->cond_version = if_version;
    op->patch_off = patch_off;
    op->opid = (kv_opid_t){c->client_id, ++c->next_seq};
    op->done = done;
    op->arg = arg;
    dispatch(op);
    return 0;
}

int kvc_put(kvc_t *c, const void *key, size_t key_len, const void *value, size_t value_len,
            kvc_cond_t cond, kv_version_t if_version, kvc_done_fn done, void *arg)
{
    return put_op(c, key, key_len, value, value_len, 0, wire_cond(cond), if_version, 0, done, arg);
}

int kvc_patch(kvc_t *c, const void *key, size_t key_len, uint32_t off, const void *bytes,
              size_t len, kvc_done_fn done, void *arg)
{
    return put_op(c, key, key_len, bytes, len, 0, WIRE_COND_PATCH, (kv_version_t){0, 0}, off, done,
                  arg);
}

int kvc_del(kvc_t *c, const void *key, size_t key_len, kvc_cond_t cond, kv_version_t if_version,
            kvc_done_fn done, void *arg)
{
    return put_op(c, key, key_len, NULL, 0, WIRE_FLAG_TOMBSTONE, wire_cond(cond), if_version, 0,
                  done, arg);
}

int kvc_lookup(kvc_t *c, const void *key, size_t key_len, kvc_lookup_fn done, void *arg)
{
    op_t *op = op_new(c, K_LOOKUP, key, key_len);
    if (!op)
        return -EINVAL;
    op->ldone = done;
    op->arg = arg;
    dispatch(op);
    return 0;
}
