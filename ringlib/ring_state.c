/*
 * ring_state.c — a node's routing table and the Chord decisions over it.
 *
 * Correctness under churn comes from the successor list, not the fingers:
 * fingers are only shortcuts, so routing may use a stale finger as long as
 * it still precedes the key (progress is guaranteed because every hop moves
 * strictly clockwise towards the key). The successor list is rebuilt from
 * the successor's own list on every stabilize round (Zave's "reconcile"),
 * which is what repairs the ring after crashes.
 */
#include "ring_state.h"

#include <stdlib.h>
#include <string.h>

struct ring_state {
    ring_id_t self;
    unsigned m;
    unsigned succ_max;
    bool has_pred;
    ring_id_t pred;
    unsigned succ_len;
    ring_id_t succ[RING_SUCC_MAX];
    uint64_t finger_valid; /* bit i set: finger[i] holds a node */
    ring_id_t finger[RING_ID_BITS_MAX];
    uint64_t epoch; /* bumped on every change of pred or succ list */
};

ring_state_t *ring_state_new(ring_id_t self, unsigned m, unsigned succ_max)
{
    if (!ring_bits_valid(m) || self > ring_mask(m))
        return NULL;
    ring_state_t *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->self = self;
    st->m = m;
    st->succ_max = succ_max < 1 ? 1 : succ_max > RING_SUCC_MAX ? RING_SUCC_MAX : succ_max;
    return st;
}

void ring_state_destroy(ring_state_t **st)
{
    if (st && *st) {
        free(*st);
        *st = NULL;
    }
}

ring_id_t ring_state_self(const ring_state_t *st)
{
    return st->self;
}

unsigned ring_state_bits(const ring_state_t *st)
{
    return st->m;
}

bool ring_state_pred(const ring_state_t *st, ring_id_t *pred)
{
    if (st->has_pred && pred)
        *pred = st->pred;
    return st->has_pred;
}

uint64_t ring_state_epoch(const ring_state_t *st)
{
    return st->epoch;
}

static void pred_assign(ring_state_t *st, bool has, ring_id_t pred)
{
    if (has != st->has_pred || (has && pred != st->pred))
        st->epoch++;
    st->has_pred = has;
    if (has)
        st->pred = pred;
}

void ring_state_set_pred(ring_state_t *st, ring_id_t pred)
{
    pred_assign(st, pred != st->self, pred);
}

void ring_state_clear_pred(ring_state_t *st)
{
    pred_assign(st, false, 0);
}

ring_id_t ring_state_succ(const ring_state_t *st)
{
    return st->succ_len ? st->succ[0] : st->self;
}

size_t ring_state_succ_list(const ring_state_t *st, ring_id_t *out, size_t cap)
{
    size_t n = st->succ_len < cap ? st->succ_len : cap;
    memcpy(out, st->succ, n * sizeof *out);
    return n;
}

unsigned ring_state_succ_max(const ring_state_t *st)
{
    return st->succ_max;
}

void ring_state_set_succ_list(ring_state_t *st, ring_id_t first, const ring_id_t *rest,
                              size_t rest_len)
{
    unsigned n = 0;
    ring_id_t prev = st->self, old[RING_SUCC_MAX];
    unsigned old_len = st->succ_len;
    memcpy(old, st->succ, old_len * sizeof *old);
    for (size_t i = 0; i <= rest_len && n < st->succ_max; i++) {
        ring_id_t c = i == 0 ? first : rest[i - 1];
        /*
         * Keep strictly clockwise order from self: a list reported by the
         * successor wraps past us when the ring is smaller than the list,
         * and everything from self on would be a repeat.
         */
        if (c == st->self || (n > 0 && !ring_in_oo(c, prev, st->self)))
            break;
        st->succ[n++] = c;
        prev = c;
    }
    st->succ_len = n;
    if (n != old_len || memcmp(old, st->succ, n * sizeof *old) != 0)
        st->epoch++;
}

bool ring_state_stabilize_candidate(const ring_state_t *st, ring_id_t succ_pred, ring_id_t *adopt)
{
    if (succ_pred == st->self)
        return false;
    if (st->succ_len == 0 || ring_in_oo(succ_pred, st->self, st->succ[0])) {
        *adopt = succ_pred;
        return true;
    }
    return false;
}

bool ring_state_notify(ring_state_t *st, ring_id_t cand)
{
    if (cand == st->self)
        return false;
    if (st->succ_len == 0) {
        st->succ[0] = cand;
        st->succ_len = 1;
        st->epoch++;
    }
    if (!st->has_pred || ring_in_oo(cand, st->pred, st->self)) {
        pred_assign(st, true, cand);
        return true;
    }
    return false;
}

void ring_state_remove(ring_state_t *st, ring_id_t node)
{
    if (node == st->self)
        return;
    if (st->has_pred && st->pred == node)
        pred_assign(st, false, 0);
    unsigned w = 0;
    for (unsigned r = 0; r < st->succ_len; r++)
        if (st->succ[r] != node)
            st->succ[w++] = st->succ[r];
    if (w != st->succ_len)
        st->epoch++;
    st->succ_len = w;
    for (unsigned i = 0; i < st->m; i++)
        if ((st->finger_valid >> i & 1) && st->finger[i] == node)
            st->finger_valid &= ~((uint64_t)1 << i);
}

ring_id_t ring_state_finger_start(const ring_state_t *st, unsigned i)
{
    return ring_add(st->self, (uint64_t)1 << i, st->m);
}

bool ring_state_finger(const ring_state_t *st, unsigned i, ring_id_t *node)
{
    if (i >= st->m || !(st->finger_valid >> i & 1))
        return false;
    *node = st->finger[i];
    return true;
}

void ring_state_set_finger(ring_state_t *st, unsigned i, ring_id_t node)
{
    if (i >= st->m)
        return;
    st->finger[i] = node;
    st->finger_valid |= (uint64_t)1 << i;
}

bool ring_state_update_finger(ring_state_t *st, unsigned i, ring_id_t node)
{
    if (i >= st->m || node == st->self)
        return false;
    ring_id_t start = ring_state_finger_start(st, i);
    if (!(st->finger_valid >> i & 1)) {
        ring_state_set_finger(st, i, node);
        return true;
    }
    ring_id_t cur = st->finger[i];
    /* [start, start) is empty here: a finger sitting on its start is exact. */
    if (node != cur && ring_in_co_strict(node, start, cur)) {
        st->finger[i] = node;
        return true;
    }
    /*
     * The entry may point at self (a lone node's table); any other node
     * between start and self is closer.
     */
    if (cur == st->self && ring_in_co(node, start, cur)) {
        st->finger[i] = node;
        return true;
    }
    return false;
}

unsigned ring_state_spread_finger(ring_state_t *st, unsigned i)
{
    ring_id_t node;
    if (!ring_state_finger(st, i, &node))
        return i;
    unsigned j = i + 1;
    for (; j < st->m; j++) {
        ring_id_t start = ring_state_finger_start(st, j);
        if (node == st->self || !ring_in_oc(start, st->self, node))
            break;
        ring_state_set_finger(st, j, node);
    }
    return j;
}

ring_id_t ring_join_update_target(ring_id_t n, unsigned i, unsigned m)
{
    return ring_sub(n, (uint64_t)1 << i, m);
}

ring_id_t ring_join_update_key(ring_id_t n, unsigned i, unsigned m)
{
    return ring_add(ring_join_update_target(n, i, m), 1, m);
}

void ring_state_offer(ring_state_t *st, ring_id_t node)
{
    for (unsigned i = 0; i < st->m; i++)
        ring_state_update_finger(st, i, node);
}

bool ring_state_owns(const ring_state_t *st, ring_id_t key)
{
    if (st->succ_len == 0)
        return true;
    return st->has_pred && ring_in_oc(key, st->pred, st->self);
}

static bool avoided(ring_id_t id, const ring_id_t *avoid, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (avoid[i] == id)
            return true;
    return false;
}

ring_route_t ring_state_route(const ring_state_t *st, ring_id_t key, const ring_id_t *avoid,
                              size_t avoid_len)
{
    ring_route_t r = {RING_ROUTE_SELF, st->self};
    if (ring_state_owns(st, key))
        return r;
    /*
     * (self, succ]: the first successor not known to be unreachable owns the
     * key — skipping a dead successor is what keeps lookups answering while
     * stabilize repairs the list.
     */
    for (unsigned k = 0; k < st->succ_len; k++) {
        ring_id_t s = st->succ[k];
        if (avoided(s, avoid, avoid_len))
            continue;
        if (ring_in_oc(key, st->self, s)) {
            r.kind = RING_ROUTE_SUCC;
            r.next = s;
            return r;
        }
        break;
    }
    /* Closest preceding node: the known id in (self, key) nearest to key. */
    uint64_t best = 0;
    ring_id_t best_id = st->self;
    for (unsigned i = 0; i < st->m; i++) {
        if (!(st->finger_valid >> i & 1))
            continue;
        ring_id_t f = st->finger[i];
        uint64_t d = ring_distance(st->self, f, st->m);
        if (ring_in_oo(f, st->self, key) && d > best && !avoided(f, avoid, avoid_len)) {
            best = d;
            best_id = f;
        }
    }
    for (unsigned k = 0; k < st->succ_len; k++) {
        ring_id_t s = st->succ[k];
        uint64_t d = ring_distance(st->self, s, st->m);
        if (ring_in_oo(s, st->self, key) && d > best && !avoided(s, avoid, avoid_len)) {
            best = d;
            best_id = s;
        }
    }
    if (best_id == st->self) {
        /* Nothing precedes the key that we could reach: the successor owns it. */
        r.kind = RING_ROUTE_SUCC;
        r.next = ring_state_succ(st);
        return r;
    }
    r.kind = RING_ROUTE_FORWARD;
    r.next = best_id;
    return r;
}
