/*
 * ring_sim.h — a simulated Chord ring of ring_state_t nodes, no sockets.
 *
 * Messages are function calls, so the routing and join code under test is
 * exactly ringlib's. Used by ringsim (hop statistics for 100,000 nodes) and
 * by the unit tests that replay the lecture's join example.
 */
#ifndef RING_SIM_H
#define RING_SIM_H

#include "ring_state.h"

#include <stddef.h>

typedef struct ring_sim ring_sim_t;

/*
 * Build a converged ring of n distinct ids: every node gets its exact
 * predecessor, successor list and finger table. ids need not be sorted.
 * Returns NULL on duplicate ids, bad m or no memory.
 */
ring_sim_t *ring_sim_new(unsigned m, unsigned succ_max, const ring_id_t *ids, size_t n);
void ring_sim_destroy(ring_sim_t **sim);

size_t ring_sim_size(const ring_sim_t *sim);
/* The i-th node in id order (i < size); NULL otherwise. */
ring_state_t *ring_sim_at(ring_sim_t *sim, size_t i);
/* The node with this id, or NULL. Borrowed: valid until the next join. */
ring_state_t *ring_sim_node(ring_sim_t *sim, ring_id_t id);

typedef struct {
    ring_id_t owner;    /* successor(key) */
    ring_id_t answerer; /* the node p with key in (p, owner] */
    unsigned hops;      /* node-to-node forwards */
} ring_sim_lookup_t;

/*
 * Route a lookup for key from node `from` using each node's ring_state_route().
 * Returns 0, -ENOENT when `from` is not a node, -ELOOP when routing does not
 * terminate within a bound (a routing bug, reported rather than spun on).
 */
int ring_sim_lookup(ring_sim_t *sim, ring_id_t from, ring_id_t key, ring_sim_lookup_t *out);

/* One update(target, new-peer) message of the lecture's join, as delivered. */
typedef struct {
    ring_id_t to;       /* the peer that received it */
    unsigned i;         /* finger index */
    ring_id_t target;   /* n - 2^i */
    ring_id_t new_peer; /* the newcomer */
    bool applied;       /* the peer changed its entry i (and passed it on) */
} ring_sim_update_t;

/*
 * The lecture's join of `newcomer` through `bootstrap`: build its finger table
 * by lookups, link successor and predecessor, then send update(i) to the peer
 * preceding newcomer - 2^i for every i, each passed on to predecessors while
 * they apply it. Up to cap delivered messages are logged in order; *nlog gets
 * the total. Returns 0, -EEXIST if the id is taken, -ENOENT for an unknown
 * bootstrap, -ENOMEM.
 */
int ring_sim_join(ring_sim_t *sim, ring_id_t newcomer, ring_id_t bootstrap, ring_sim_update_t *log,
                  size_t cap, size_t *nlog);

#endif
