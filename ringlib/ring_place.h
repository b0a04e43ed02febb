/*
 * ring_place.h — where the copies of a key live: several positions (tokens)
 * per physical node, multi-probe choice of the primary, replica sets on
 * distinct nodes (and distinct zones when there are enough), capacity weights.
 *
 * Pure logic: no I/O, no randomness, no clock. A placement is a deterministic
 * function of the member list (node ids, weights, zones) and the parameters,
 * so every node and client that knows the members computes the same replica
 * sets. With tokens = 1 and probes = 1 it is the plain Chord placement: token
 * 0 of a node is its own id, so a key's replica set is its successor and the
 * next distinct nodes clockwise.
 *
 * Small identifier spaces (a few bits) make tokens collide: tokens at one
 * position are ordered by node id, so the lowest id takes such a position's
 * keys. Use tokens = 1, probes = 1 there (the lecture's m = 6 ring).
 *
 * The live ring uses it when its nodes run with --tokens (kvnode/node_place.c):
 * it then places fixed partitions of the position space, not single keys
 * (the ring_place_part_* functions below), so that anti-entropy and data
 * moves work on contiguous ranges. ringsim measures it per key.
 */
#ifndef RING_PLACE_H
#define RING_PLACE_H

#include "ring_id.h"

#include <stddef.h>
#include <stdint.h>

typedef struct ring_place ring_place_t;

enum {
    /*
     * Defaults chosen by measurement (docs/BENCHMARKS.md, "Balanced
     * placement"): 16 tokens meet every ringsim target, but the copies of
     * a 5–6 node ring need 64 to stay within 1.3 x the mean on every ring.
     */
    RING_PLACE_TOKENS_DEFAULT = 64,
    RING_PLACE_PROBES_DEFAULT = 21,
    RING_PLACE_TOKENS_MAX = 4096, /* per unit of weight */
    RING_PLACE_PROBES_MAX = 64,
    RING_PLACE_WEIGHT_MAX = 64,
    RING_PLACE_REPLICAS_MAX = 16,
    /* Partitions of the live ring: 2^min(m, this) (docs/PLACEMENT.md, step 2). */
    RING_PLACE_PART_BITS = 10,
};

/* One physical node as the members know it. */
typedef struct ring_place_node {
    ring_id_t id;    /* its Chord id (< 2^m); ids are distinct */
    uint32_t weight; /* capacity weight, 1..RING_PLACE_WEIGHT_MAX: weight x tokens tokens */
    uint32_t zone;   /* failure domain; nodes with equal values share one */
} ring_place_node_t;

typedef struct {
    unsigned m;      /* id bits, 3..64 */
    unsigned tokens; /* tokens per unit of weight, 1..RING_PLACE_TOKENS_MAX */
    unsigned probes; /* probe positions per key, 1..RING_PLACE_PROBES_MAX */
} ring_place_params_t;

/*
 * Position of token `index` of node `node`: index 0 is the node's id itself;
 * index i > 0 is BLAKE2b(node id as 8 little-endian bytes, i as 4
 * little-endian bytes) truncated to m bits, as ring_hash() does for keys.
 */
ring_id_t ring_place_token(ring_id_t node, uint32_t index, unsigned m);

/*
 * Probe j of a key at position pos: probe 0 is pos itself, probe j > 0 a
 * fixed 64-bit mix of (pos, j) truncated to m bits (pos is already a BLAKE2b
 * output, so a cheap bijective mixer spreads the probes as well as a hash).
 */
ring_id_t ring_place_probe(ring_id_t pos, unsigned j, unsigned m);

/*
 * Build the placement of n nodes (copied; the caller keeps its array).
 * Returns 0 and *out, -EINVAL for bad parameters, n == 0, a weight out of
 * range or duplicate node ids, -ENOMEM. Cost O(T log T) for T tokens.
 */
int ring_place_new(const ring_place_params_t *p, const ring_place_node_t *nodes, size_t n,
                   ring_place_t **out);
/* Free and set *pl to NULL; NULL and *pl == NULL are fine. */
void ring_place_destroy(ring_place_t **pl);

size_t ring_place_size(const ring_place_t *pl);        /* physical nodes */
size_t ring_place_token_count(const ring_place_t *pl); /* tokens of all nodes */
/* Number of distinct zones among the nodes. */
size_t ring_place_zone_count(const ring_place_t *pl);

/*
 * The replica set of the key at position pos: up to r node indexes (indexes
 * into the array given to ring_place_new), primary first.
 *
 * The primary token: of the key's probes, the one with the shortest clockwise
 * distance to its successor token (ties: the lower probe index); that token's
 * node is the primary. With fewer than r zones, tokens are then walked
 * clockwise from it, skipping tokens of nodes already chosen. With at least
 * r zones the same walk chooses the r - 1 further zones (the first distinct
 * zones met), and inside each zone the node is picked by a multi-probe over
 * that zone's tokens with probes salted by the zone value. Returns the count
 * written: min(r, nodes). r is at most RING_PLACE_REPLICAS_MAX (more is
 * clamped).
 */
size_t ring_place_replicas(const ring_place_t *pl, ring_id_t pos, size_t r, size_t *out);

/*
 * Exact shares of uniformly hashed keys, per node (arrays of size()):
 * primary[i] = fraction of keys whose primary is node i, copies[i] =
 * fraction of keys of which node i holds a copy with r replicas (sums to
 * min(r, nodes)). Either array may be NULL. Computed in closed form from the
 * token arcs (no sampling), treating a key's probes as independent uniform
 * positions. Returns 0 or -ENOMEM.
 */
int ring_place_shares(const ring_place_t *pl, size_t r, double *primary, double *copies);

/*
 * Exact fraction of uniformly hashed keys whose replica set (as a set, r
 * replicas) differs between `small` and `big`, where big's nodes are small's
 * (same weights and zones) plus some more, with equal parameters (a join;
 * read the other way, a leave). Returns 0 and *fraction, -EINVAL when big is
 * not such a superset, -ENOMEM. Exact under the same hashing assumption as
 * ring_place_shares (probes independent and uniform).
 */
int ring_place_moved(const ring_place_t *small, const ring_place_t *big, size_t r,
                     double *fraction);

/*
 * Partitions: the live ring places ranges of positions, not keys. An m-bit
 * ring has 2^q partitions, q = min(m, RING_PLACE_PART_BITS); partition i
 * holds the positions whose top q bits are i, and is placed as the key at
 * its first position (ring_place_replicas(pl, ring_place_part_pos(i), ...)).
 * With q = m every position is its own partition, so tokens = probes = 1
 * places every key exactly as plain Chord does.
 */
uint32_t ring_place_part_count(unsigned m);
uint32_t ring_place_part_of(ring_id_t pos, unsigned m);
/* The first position of partition part. */
ring_id_t ring_place_part_pos(uint32_t part, unsigned m);
/* Partition part as the ring range (lo, hi] (lo wraps for partition 0). */
void ring_place_part_range(uint32_t part, unsigned m, ring_id_t *lo, ring_id_t *hi);

#endif
