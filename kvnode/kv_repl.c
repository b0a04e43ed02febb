/*
 * kv_repl.c — delivery of a coordinator's writes to each replica, so that
 * the copies a write quorum did not wait for still arrive while the
 * replica is alive, instead of waiting for anti-entropy (a round every
 * 8 x stabilize that cannot finish under load).
 *
 * Per replica (by ring id) it keeps:
 *  - the number of the coordinator's REPL_PUTs in flight to it, bounded by
 *    REPL_DIRECT_MAX: a replica that falls that far behind gets the rest
 *    as hints, and a write whose quorum cannot be reached through
 *    replicas with room is refused with EBUSY before anything is applied
 *    (kv_coord.c), which slows writers down instead of timing them out;
 *  - a hint queue (ringlib/kv_hint.h) of (key, version) whose REPL_PUT
 *    failed or was not sent. A drain resends them, HINT_WINDOW at a time,
 *    re-reading the value from the local store (so memory holds keys, not
 *    values), backing off after failures. Hints are background work: a
 *    replica's hints go only while fewer than HINT_DIRECT_IDLE foreground
 *    REPL_PUTs are in flight to it.
 * Hints are given up — anti-entropy takes over — when the queue overflows
 * or the replica is declared failed (node_peer_failed).
 *
 * What it does not do: persist hints (a restarted coordinator relies on
 * anti-entropy, like a lost hint).
 */
#include "kv_i.h"

#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum {
    REPL_DIRECT_MAX = 512, /* foreground REPL_PUTs in flight to one replica */
    HINT_DIRECT_IDLE = 64, /* hints wait while more than this are in flight */
    HINT_CAP = 100000,     /* hints per replica (keys, not values) */
    HINT_WINDOW = 16,      /* hints in flight per replica */
    HINT_BACKOFF_MIN_MS = 50,
    HINT_BACKOFF_MAX_MS = 2000,
    HINT_POLL_MS = 20, /* retry a drain held back by foreground traffic */
};

typedef struct repl_peer {
    struct repl_peer *next;
    ring_id_t id;
    unsigned direct;
    kv_hintq_t *q;
} repl_peer_t;

typedef struct {
    node_t *n;
    ring_id_t id;
    kv_hint_t *h;
} hint_call_t;

static repl_peer_t *peer_find(struct kv *kv, ring_id_t id, bool create)
{
    for (repl_peer_t *p = kv->repl_peers; p; p = p->next)
        if (p->id == id)
            return p;
    if (!create)
        return NULL;
    repl_peer_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->q = kv_hintq_new(HINT_CAP, HINT_WINDOW, HINT_BACKOFF_MIN_MS, HINT_BACKOFF_MAX_MS);
    if (!p->q) {
        free(p);
        return NULL;
    }
    p->id = id;
    p->next = kv->repl_peers;
    kv->repl_peers = p;
    return p;
}

static void drain(loop_t *loop, void *arg);

/* Make sure the drain runs within delay_ms. */
static void kick(node_t *n, uint64_t delay_ms)
{
    struct kv *kv = n->kv;
    uint64_t at = loop_now_ms(n->loop) + delay_ms;
    if (kv->repl_timer && kv->repl_timer_at <= at)
        return;
    if (kv->repl_timer)
        loop_timer_cancel(n->loop, kv->repl_timer);
    kv->repl_timer = loop_timer_add(n->loop, delay_ms, drain, n);
    kv->repl_timer_at = at;
}

static void on_hint_reply(int rc, const wire_msg_t *r, void *arg)
{
    (void)r;
    hint_call_t *c = arg;
    node_t *n = c->n;
    if (rc == -ECANCELED || !n->kv) {
        free(c->h);
        free(c);
        return;
    }
    repl_peer_t *p = peer_find(n->kv, c->id, false);
    if (p) {
        if (rc < 0)
            log_debug("kv", "hint not delivered: %s", strerror(-rc));
        kv_hintq_done(p->q, c->h, rc == 0, loop_now_ms(n->loop));
        kick(n, 0);
    } else {
        free(c->h);
    }
    free(c);
}

/* Send one hint; false if it could not be sent (it is back in the queue). */
static bool send_hint(node_t *n, repl_peer_t *p, const char *addr, kv_hint_t *h)
{
    uint64_t now = loop_now_ms(n->loop);
    store_rec_t rec;
    int rc = store_get(n->store, h->key, h->key_len, &rec);
    if (rc == -ENOENT) {
        /* Purged or handed away since: nothing left to deliver. */
        kv_hintq_done(p->q, h, true, now);
        return true;
    }
    hint_call_t *c = rc == 0 ? malloc(sizeof *c) : NULL;
    if (!c) {
        kv_hintq_done(p->q, h, false, now);
        return false;
    }
    *c = (hint_call_t){n, p->id, h};
    /* Our newest record: it supersedes the hint's version if newer. */
    wire_msg_t req;
    wire_init(&req, WIRE_REPL_PUT, 0);
    req.key_bytes = h->key;
    req.key_len = h->key_len;
    req.version = rec.version;
    req.flags = rec.flags;
    req.value = rec.value;
    req.value_len = rec.value_len;
    req.has_opid = kv_opid_is_set(rec.opid); /* copies keep the writer's identity */
    req.opid = rec.opid;
    if (rpc_call(n->rpc, addr, &req, n->cfg.timeout_ms * 4, on_hint_reply, c) < 0) {
        free(c);
        kv_hintq_done(p->q, h, false, now);
        return false;
    }
    kv_moved(n->kv, h->key_len, rec.value_len);
    return true;
}

static void drain(loop_t *loop, void *arg)
{
    node_t *n = arg;
    struct kv *kv = n->kv;
    kv->repl_timer = 0;
    uint64_t now = loop_now_ms(loop), next = UINT64_MAX;
    for (repl_peer_t *p = kv->repl_peers; p; p = p->next) {
        if (kv_hintq_len(p->q) == 0)
            continue;
        const char *addr = node_book_get(n, p->id);
        if (!addr) {
            kv_hintq_clear(p->q); /* forgotten peer: anti-entropy's job */
            continue;
        }
        /* Foreground writes to this replica first. */
        if (p->direct > HINT_DIRECT_IDLE) {
            next = now + HINT_POLL_MS < next ? now + HINT_POLL_MS : next;
            continue;
        }
        kv_hint_t *h;
        while ((h = kv_hintq_take(p->q, now)))
            if (!send_hint(n, p, addr, h))
                break;
        uint64_t due = kv_hintq_due_ms(p->q, now);
        if (due < next)
            next = due;
    }
    if (next != UINT64_MAX)
        kick(n, next > now ? next - now : 0);
}

bool kv_repl_begin(node_t *n, ring_id_t id)
{
    repl_peer_t *p = peer_find(n->kv, id, true);
    if (!p)
        return true; /* out of memory for accounting: do not refuse writes for it */
    if (p->direct >= REPL_DIRECT_MAX)
        return false;
    p->direct++;
    return true;
}

bool kv_repl_has_room(node_t *n, ring_id_t id)
{
    repl_peer_t *p = peer_find(n->kv, id, false);
    return !p || p->direct < REPL_DIRECT_MAX;
}

void kv_repl_hint(node_t *n, ring_id_t id, const uint8_t *key, size_t key_len, kv_version_t version)
{
    repl_peer_t *p = peer_find(n->kv, id, true);
    int rc = p ? kv_hintq_push(p->q, key, key_len, version) : -ENOMEM;
    if (rc < 0) {
        char a[RING_ID_HEX_MAX];
        log_debug("kv", "hint for %s lost (%s): left to anti-entropy", node_hex(n, id, a),
                  strerror(-rc));
        if (!p)
            n->kv->repl_lost_extra++;
        return;
    }
    kick(n, 0);
}

void kv_repl_end(node_t *n, ring_id_t id, int rc, const uint8_t *key, size_t key_len,
                 kv_version_t version)
{
    if (!n->kv)
        return;
    repl_peer_t *p = peer_find(n->kv, id, false);
    if (p && p->direct)
        p->direct--;
    if (rc < 0 && rc != -ECANCELED)
        kv_repl_hint(n, id, key, key_len, version);
    else if (p && kv_hintq_len(p->q) && p->direct <= HINT_DIRECT_IDLE)
        kick(n, 0);
}

void kv_repl_peer_failed(node_t *n, ring_id_t id)
{
    if (!n->kv)
        return;
    repl_peer_t *p = peer_find(n->kv, id, false);
    if (p && kv_hintq_len(p->q)) {
        char a[RING_ID_HEX_MAX];
        size_t dropped = kv_hintq_clear(p->q);
        log_info("kv", "%zu hints for failed peer %s left to anti-entropy", dropped,
                 node_hex(n, id, a));
    }
}

uint64_t kv_repl_backlog(const node_t *n)
{
    uint64_t sum = 0;
    for (repl_peer_t *p = n->kv->repl_peers; p; p = p->next)
        sum += kv_hintq_len(p->q);
    return sum;
}

uint64_t kv_repl_lost(const node_t *n)
{
    uint64_t sum = n->kv->repl_lost_extra;
    for (repl_peer_t *p = n->kv->repl_peers; p; p = p->next)
        sum += kv_hintq_lost(p->q);
    return sum;
}

void kv_repl_fini(node_t *n)
{
    struct kv *kv = n->kv;
    if (kv->repl_timer)
        loop_timer_cancel(n->loop, kv->repl_timer);
    kv->repl_timer = 0;
    repl_peer_t *p = kv->repl_peers;
    while (p) {
        repl_peer_t *next = p->next;
        kv_hintq_destroy(&p->q);
        free(p);
        p = next;
    }
    kv->repl_peers = NULL;
}
