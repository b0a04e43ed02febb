/*
 * ring_state.h — one node's view of the Chord ring and the routing decisions
 * made from it: predecessor, successor list, finger table.
 *
 * The state knows identifiers only. Mapping an id to an endpoint, timing out
 * a peer and sending messages is the caller's business (kvnode's peer table,
 * or ringsim's arrays), which is what lets the simulator and the unit tests
 * run exactly the code the daemon runs.
 *
 * Invariants kept by every function here:
 *  - succ[0..succ_len) holds distinct ids, none equal to self, in clockwise
 *    order from self; succ_len == 0 means "I am alone" (successor = self);
 *  - a finger entry that is not valid is ignored by routing;
 *  - nothing here allocates after ring_state_new().
 */
#ifndef RING_STATE_H
#define RING_STATE_H

#include "ring_id.h"

#include <stdbool.h>
#include <stddef.h>

enum {
    /* Longest successor list kept; replicas + 1 must fit. */
    RING_SUCC_MAX = 16,
};

typedef struct ring_state ring_state_t;

typedef enum {
    RING_ROUTE_SELF,    /* key in (pred, self]: this node is the authority */
    RING_ROUTE_SUCC,    /* key in (self, succ]: the successor is */
    RING_ROUTE_FORWARD, /* ask `next`, the closest known node preceding key */
} ring_route_kind_t;

typedef struct {
    ring_route_kind_t kind;
    ring_id_t next; /* SELF: self; SUCC: the successor; FORWARD: next hop */
} ring_route_t;

/*
 * Allocate the state of node `self` in an m-bit ring, keeping up to
 * succ_max successors (clamped to 1..RING_SUCC_MAX). It starts alone: no
 * predecessor, no successors, no fingers. Returns NULL on bad m or no memory.
 */
ring_state_t *ring_state_new(ring_id_t self, unsigned m, unsigned succ_max);
void ring_state_destroy(ring_state_t **st);

ring_id_t ring_state_self(const ring_state_t *st);
unsigned ring_state_bits(const ring_state_t *st);

/* Predecessor: returns false when unknown. */
bool ring_state_pred(const ring_state_t *st, ring_id_t *pred);
void ring_state_set_pred(ring_state_t *st, ring_id_t pred);
void ring_state_clear_pred(ring_state_t *st);

/*
 * A counter that changes whenever the predecessor or the successor list
 * does: what this node owns and which nodes replicate it may have moved, so
 * anything it concluded about its range before must be checked again.
 */
uint64_t ring_state_epoch(const ring_state_t *st);

/* The successor, self when alone. */
ring_id_t ring_state_succ(const ring_state_t *st);

/* Copies up to cap successors into out (clockwise order); returns the count. */
size_t ring_state_succ_list(const ring_state_t *st, ring_id_t *out, size_t cap);
unsigned ring_state_succ_max(const ring_state_t *st);

/*
 * Replace the successor list by `first` followed by `rest` (the list that
 * `first` reported), dropping self, duplicates and anything that would break
 * clockwise order, truncated to succ_max. This is Zave's "reconcile" step.
 */
void ring_state_set_succ_list(ring_state_t *st, ring_id_t first, const ring_id_t *rest,
                              size_t rest_len);

/*
 * Stabilize decision: our successor reported `succ_pred` as its predecessor.
 * Returns true (and sets *adopt) when succ_pred lies strictly between us and
 * the successor, i.e. it should become our successor. When alone, any other
 * node is adopted.
 */
bool ring_state_stabilize_candidate(const ring_state_t *st, ring_id_t succ_pred, ring_id_t *adopt);

/*
 * Notify: `cand` thinks it might be our predecessor. Adopt it when we have
 * none or it lies in (pred, self). Returns true when the predecessor changed.
 * A lone node also takes cand as its successor, which is how the second node
 * of a ring gets linked in.
 */
bool ring_state_notify(ring_state_t *st, ring_id_t cand);

/* Forget a node (it failed or left): pred, successor list, fingers. */
void ring_state_remove(ring_state_t *st, ring_id_t node);

/* Finger i (0 <= i < m) starts at self + 2^i. */
ring_id_t ring_state_finger_start(const ring_state_t *st, unsigned i);
bool ring_state_finger(const ring_state_t *st, unsigned i, ring_id_t *node);
void ring_state_set_finger(ring_state_t *st, unsigned i, ring_id_t node);

/*
 * The lecture's update(target, new-peer) handler for entry i: replace finger
 * i by `node` when node lies in [start_i, finger_i) — it is a closer
 * successor of start_i than the current entry. An empty or unset entry takes
 * it too. Returns true when the entry changed; the caller then passes the
 * warning on to its predecessor, and stops when this returns false.
 */
bool ring_state_update_finger(ring_state_t *st, unsigned i, ring_id_t node);

/*
 * After finger i was found by a lookup, copy it into the following entries
 * whose start lies in (self, finger_i]: nothing sits between those starts
 * and finger_i, so they need no lookup of their own (the lecture's shortcut
 * when building the newcomer's table). Returns the next index that does
 * need a lookup (m when the table is complete).
 */
unsigned ring_state_spread_finger(ring_state_t *st, unsigned i);

/*
 * The lecture's update step for a newcomer n: entry i of the peers at or
 * before n - 2^i may now point to n. Those peers are found as the
 * predecessor of ring_join_update_key() = n - 2^i + 1 (so that a peer
 * sitting exactly on n - 2^i is included).
 */
ring_id_t ring_join_update_target(ring_id_t n, unsigned i, unsigned m);
ring_id_t ring_join_update_key(ring_id_t n, unsigned i, unsigned m);

/* Offer a newly seen live node to every finger (update_finger for each i). */
void ring_state_offer(ring_state_t *st, ring_id_t node);

/*
 * The routing step for key: authority check against (pred, self], then
 * (self, succ], else the closest preceding node among fingers and
 * successors. `avoid` (may be NULL) lists ids the caller knows to be
 * unreachable right now; they are skipped as next hops.
 */
ring_route_t ring_state_route(const ring_state_t *st, ring_id_t key, const ring_id_t *avoid,
                              size_t avoid_len);

/* True when key is in (pred, self]; false when the predecessor is unknown. */
bool ring_state_owns(const ring_state_t *st, ring_id_t key);

#endif
