/*
 * ring_members.h — a node's member table: every physical node it has heard
 * of, with the facts placement needs (id, address, weight, zone) and the
 * bookkeeping that lets tables learned from different peers converge
 * (state, incarnation). docs/PLACEMENT.md, step 1.
 *
 * Pure logic: no I/O, no clock, no logging. The caller decides when to
 * merge (a page of a peer's MEMBERS reply) and where incarnations come from.
 *
 * Merge rule (a join-semilattice, so any order of merges converges):
 * per id, the entry with the higher incarnation wins; at equal
 * incarnations with different contents, the higher state wins, then the
 * larger canonical encoding (a deterministic tie-break; only a buggy or
 * hostile peer makes two such entries). The table's own entry (the node
 * that holds it) is never replaced from outside: an outside entry for it
 * with an incarnation at or above its own is refuted by raising its own
 * incarnation past it, as in SWIM.
 *
 * Crashes are not modelled here on purpose: a node the failure detector
 * gives up on stays in the table as it was (PLACEMENT.md: a crash must not
 * change placement). Only the node itself (leaving) or a node that saw
 * its graceful LEAVE (left, one incarnation higher) changes its state.
 */
#ifndef RING_MEMBERS_H
#define RING_MEMBERS_H

#include "endpoint.h"
#include "ring_id.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    /* Zone names: 1..31 bytes of [A-Za-z0-9._-]; "" = no zone. NUL included. */
    RING_MEMBERS_ZONE_MAX = 32,
    /* Weights: 1..64, as ring_place accepts (RING_PLACE_WEIGHT_MAX). */
    RING_MEMBERS_WEIGHT_MAX = 64,
    /* Default bound of a table (entries, left ones included). */
    RING_MEMBERS_CAP_DEFAULT = 4096,
};

/* Incarnations are below this (2^63). */
#define RING_MEMBERS_INCARNATION_LIMIT (UINT64_C(1) << 63)

typedef enum {
    RING_MEMBER_JOINING = 0, /* reserved for the data move of PLACEMENT.md step 3 */
    RING_MEMBER_UP = 1,
    RING_MEMBER_LEAVING = 2, /* handing its data on (graceful leave under way) */
    RING_MEMBER_LEFT = 3,    /* left gracefully; kept so that no stale copy revives it */
    RING_MEMBER_STATE_MAX = RING_MEMBER_LEFT,
} ring_member_state_t;

/* One entry. A transparent value type; copied in and out. */
typedef struct {
    ring_id_t id;
    char addr[ENDPOINT_MAX];          /* non-empty, printable */
    uint32_t weight;                  /* 1..RING_MEMBERS_WEIGHT_MAX */
    char zone[RING_MEMBERS_ZONE_MAX]; /* "" = none */
    uint32_t zone_hash;               /* ring_members_zone_hash(zone); set by the table */
    uint8_t state;                    /* a ring_member_state_t */
    uint64_t incarnation;             /* larger = newer, per id; below 2^63 */
} ring_member_t;

typedef struct ring_members ring_members_t;

/* True for "" (no zone) and for 1..31 bytes of [A-Za-z0-9._-]. */
bool ring_members_zone_valid(const char *zone);

/*
 * The zone's 32-bit value for ring_place: 0 for "", else the first 4 bytes
 * of BLAKE2b(name) big-endian, never 0 (0 becomes 1).
 */
uint32_t ring_members_zone_hash(const char *zone);

/* Name of a state for logs and JSON ("up", "left", "?"). */
const char *ring_members_state_name(uint8_t state);

/*
 * Whether e may enter a table of an m-bit ring: id < 2^m, addr non-empty and
 * NUL-terminated, weight in range, zone valid, state known, incarnation
 * below RING_MEMBERS_INCARNATION_LIMIT (so that the +1 of a refutation or a
 * left mark cannot wrap; wall-clock milliseconds are near 2^41).
 */
bool ring_members_entry_valid(const ring_member_t *e, unsigned m);

/*
 * A table holding only `self` (copied; its zone_hash is recomputed), for an
 * m-bit ring, bounded to cap entries (0: RING_MEMBERS_CAP_DEFAULT; at least
 * 1). Returns 0 and *out (free with ring_members_destroy), -EINVAL when self
 * is not valid, -ENOMEM.
 */
int ring_members_new(const ring_member_t *self, unsigned m, size_t cap, ring_members_t **out);
/* Free and set *t to NULL; NULL and *t == NULL are fine. */
void ring_members_destroy(ring_members_t **t);

/*
 * Merge one entry learned from a peer (by the rule above). Returns 1 when
 * the table changed, 0 when e was older or equal, -EINVAL when e is not
 * valid (table unchanged), -ENOSPC when e is new and the table is full of
 * entries that are not left (a left entry, the oldest, makes room first).
 */
int ring_members_merge(ring_members_t *t, const ring_member_t *e);

/*
 * Change the own entry's state (and weight/zone are kept): its incarnation
 * goes up by one. Returns 0, -EINVAL for an unknown state.
 */
int ring_members_set_self_state(ring_members_t *t, uint8_t state);

/*
 * Mark a peer left after its graceful LEAVE: its entry gets state left and
 * incarnation + 1, so the mark wins over every copy of the entry the leaver
 * had published. Returns 1 when changed, 0 when id is unknown, already left,
 * or the table's own id.
 */
int ring_members_mark_left(ring_members_t *t, ring_id_t id);

/* The table's own entry (borrowed; valid until the next change). */
const ring_member_t *ring_members_self(const ring_members_t *t);

/* Entries held, left ones included. */
size_t ring_members_count(const ring_members_t *t);

/* Entry i in id order, i < count (borrowed; valid until the next change). */
const ring_member_t *ring_members_at(const ring_members_t *t, size_t i);

/* The entry of id, or NULL (borrowed; valid until the next change). */
const ring_member_t *ring_members_find(const ring_members_t *t, ring_id_t id);

/*
 * Index of the first entry with an id greater than `after` (0 when
 * from_start): where a MEMBERS page that continues after `after` begins.
 * Equal to count when there is none.
 */
size_t ring_members_index_after(const ring_members_t *t, bool from_start, ring_id_t after);

/*
 * The epoch: a 64-bit BLAKE2b of every entry's canonical encoding (all
 * fields but zone_hash, which follows from zone) in id order. Equal tables
 * have equal epochs; two nodes compare epochs to know whether to pull.
 * Recomputed lazily after a change (O(entries)).
 */
uint64_t ring_members_epoch(ring_members_t *t);

#endif
