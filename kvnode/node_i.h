/*
 * node_i.h — internals of a node shared by its modules (node.c: membership
 * and routing; kv.c: the replicated store). Not a public interface.
 */
#ifndef NODE_I_H
#define NODE_I_H

#include "node.h"
#include "node_metrics.h"
#include "kv_quorum.h"
#include "kv_version.h"
#include "ring_members.h"
#include "ring_state.h"
#include "rpc.h"
#include "store.h"
#include "wire.h"

#include <stddef.h>
#include <stdint.h>

enum {
    BOOK_MAX = 512,
    JOIN_ATTEMPTS = 3,
    FIND_ATTEMPTS = 3,
    IDENT_MAX = 256,
    LEAVE_WAIT_MS = 2000,
    /* Deadlines a peer may miss in a row before it is taken as failed. */
    PEER_MISSES_MAX = 3,
    /* Placements before the current one whose sets reads still ask while copies move. */
    NODE_PLACE_FROM_MAX = 5,
};

typedef struct {
    bool used;
    ring_id_t id;
    char addr[ENDPOINT_MAX];
    unsigned misses;        /* consecutive deadlines missed */
    uint64_t first_miss_ms; /* when the first of them was missed */
    bool failed;            /* declared failed and not heard from since */
    /* It answered INFO layout 2 with EPROTONOSUPPORT (built before it):
     * it is asked version 1 until this tick. */
    unsigned info_v1_until;
} book_entry_t;

/* One placement built from the member table (node_place.c). */
typedef struct {
    struct ring_place *pl;         /* NULL: no member is up (or Chord placement) */
    ring_id_t *ids;                /* placement node index -> id */
    struct ring_place_node *nodes; /* what it was built from (same order) */
    size_t n;
    uint64_t lived_ms; /* an older placement: how long it was the current one */
    /*
     * Each partition's replica set (placement node indexes) for memo_want
     * copies, computed on first use: a placement never changes, and the
     * multi-probe walk would run for every request the node coordinates.
     * Per partition, [0] is 0 (not yet) or 1 + the count, then the indexes.
     */
    uint32_t *memo;
    size_t memo_want;
} node_placement_t;

typedef enum {
    JOIN_NONE,
    JOIN_INFO,
    JOIN_FIND,
    JOIN_LINK,
    JOIN_DONE,
} join_phase_t;

struct node {
    node_config_t cfg;
    void *zctx;
    loop_t *loop;
    rpc_t *rpc;
    void *router;
    int lock_fd;
    ring_state_t *rs;
    ring_id_t self;
    char self_hex[RING_ID_HEX_MAX];
    book_entry_t book[BOOK_MAX];

    join_phase_t join_phase;
    unsigned join_attempts;
    /* Other ring members the bootstrap named, to join through if it leaves. */
    char join_alt[WIRE_SUCC_MAX][ENDPOINT_MAX];
    unsigned njoin_alt;
    /*
     * Alone after all our successors failed: rejoining through every node
     * in the book and the configured seed (--join as given: cfg.join is
     * overwritten by each attempt), round-robin, one per attempt.
     */
    bool rejoining;
    unsigned rejoin_cursor;  /* 0..BOOK_MAX-1: a book slot; BOOK_MAX: the seed */
    char seed[ENDPOINT_MAX]; /* "" without --join */
    unsigned ticks;
    uint64_t tick_ms; /* loop clock of the last maintenance tick (0: none yet) */
    /* Loop clock when the last stall (frozen, starved) was noticed (0: never). */
    uint64_t stall_seen_ms;
    unsigned next_finger;
    bool fixing;
    bool stabilizing;
    ring_id_t stabilize_target; /* the successor asked */
    bool checking_pred;
    ring_id_t ping_target; /* the predecessor pinged */
    bool probing;
    ring_id_t probe_target; /* a failed node others still name, pinged */
    uint64_t tick_timer;

    bool leaving;
    unsigned leave_waiting;
    int exit_status;

    wire_msg_t in, out; /* scratch for the request being served */

    /* node_members.c: the member table and the pull in progress (one at a time) */
    ring_members_t *members;
    struct {
        bool active;
        ring_id_t from;
        char addr[ENDPOINT_MAX];
        bool has_cursor;
        ring_id_t cursor; /* the page asked starts after this id */
        unsigned pages;
        unsigned changed;     /* entries this pull changed */
        bool probing;         /* an INFO to a finger is out, */
        ring_id_t probe;      /* to this node */
        unsigned next_finger; /* the finger asked next */
    } pull;
    uint64_t members_saved; /* the epoch last written to DATA/members */

    /*
     * node_members.c: a node that joined with no member table of its own
     * (no DATA/members) until its first pull has gone through: it places
     * from a table that lacks most members, so it coordinates nothing yet.
     */
    bool members_partial;

    /* node_place.c: token placement (cfg.tokens > 0), built from the member table */
    struct {
        node_placement_t cur;
        /*
         * While placement moves: the placements before cur that copies were
         * written under (newest first), whose replica sets reads also ask
         * until the copies have moved (node_key_read_set).
         */
        node_placement_t from[NODE_PLACE_FROM_MAX];
        size_t nfrom;
        bool fresh; /* a newcomer (members_partial at start) before its first whole table */
        bool built;
        uint64_t epoch;           /* of the member table it was built from */
        uint64_t changed_ms;      /* loop clock when it last changed */
        uint64_t down_changed_ms; /* loop clock when a peer was last declared failed or back */
        size_t probe_next;        /* the member table index probed next */
        bool probing;             /* a probe is out, */
        ring_id_t probe_id;       /* to this member */
    } place;

    store_t *store;
    kv_clock_t clock;
    struct kv *kv; /* kv.c's state */
    node_metrics_t metrics;
};

/* Helpers node.c offers to kv.c. */
const char *node_hex(const node_t *n, ring_id_t id, char buf[RING_ID_HEX_MAX]);
const char *node_book_get(const node_t *n, ring_id_t id);
void node_fill(const node_t *n, wire_node_t *w, ring_id_t id);
bool node_learn(node_t *n, const wire_node_t *w);
/* False while the peer is known to refuse INFO layout 2 (the book remembers it). */
bool node_speaks_info2(node_t *n, ring_id_t id);
/* The peer answered INFO layout 2 with EPROTONOSUPPORT: ask it version 1 for a while. */
void node_refused_info2(node_t *n, ring_id_t id);
/* The peer is gone (it says so, or it missed PEER_MISSES_MAX deadlines). */
void node_peer_failed(node_t *n, ring_id_t id, const char *why);
/*
 * The peer missed one deadline. A single miss is not a failure (a paused
 * or busy process is slow, not gone): PEER_MISSES_MAX misses in a row,
 * spread over at least cfg.fail_after_ms, are. A miss by a peer that sent
 * any reply within the last cfg.timeout_ms (rpc_last_reply_ms) is not
 * counted and forgives the earlier ones: it is busy, not gone.
 */
void node_peer_missed(node_t *n, ring_id_t id, const char *why);
/* The peer answered: its misses are forgiven. */
void node_peer_alive(node_t *n, ring_id_t id);
/* True while the peer is declared failed and has not answered since. */
bool node_peer_down(const node_t *n, ring_id_t id);
/* True while the peer has missed a deadline and not answered since. */
bool node_peer_suspect(const node_t *n, ring_id_t id);
/* Send a reply (with its value frame when the type has one). */
int node_send(node_t *n, const uint8_t *ident, size_t ident_len, const wire_msg_t *m);
void node_reply_error(node_t *n, const uint8_t *ident, size_t ident_len, uint64_t req_id, int err,
                      const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/*
 * The replica set of position pos as this node sees it when it is the
 * authority: self and the next distinct successors, up to `replicas`.
 */
size_t node_replica_set(const node_t *n, ring_id_t *out, size_t cap);

/* node_members.c */
/* The table with our own entry (cfg weight, zone; incarnation from the wall clock). 0 or -errno. */
int node_members_init(node_t *n, char *err, size_t errcap);
void node_members_fini(node_t *n);
/* INFO layout 2: our epoch, table size, weight and zone into the reply. */
void node_members_fill_info(node_t *n, wire_msg_t *r);
/* MEMBERS: the page of our table after m->after into r. */
void node_members_serve(node_t *n, const wire_msg_t *m, wire_msg_t *r);
/* A peer (at addr) reported this epoch: pull its table if it differs from ours. */
void node_members_seen(node_t *n, ring_id_t peer, const char *addr, uint64_t epoch);
/* Every maintenance tick: every other one, ask a finger (in turn) for its epoch. */
void node_members_tick(node_t *n);
/* The peer left gracefully (its LEAVE): mark it left. */
void node_members_left(node_t *n, ring_id_t id);
/* False while this node is a newcomer that has not had a whole member table yet. */
bool node_members_complete(const node_t *n);
/* We are leaving: our own entry says so. */
void node_members_leaving(node_t *n);

/* node_place.c */
/* The ring places partitions by tokens (cfg.tokens > 0), not by successor lists. */
bool node_place_on(const node_t *n);
/*
 * The replica set (ids, primary first) of partition part under token
 * placement, from the member table as it is now: up to cfg.replicas
 * distinct nodes, 0 when no member is up. Token placement only.
 */
size_t node_place_part(node_t *n, uint32_t part, ring_id_t *out, size_t cap);
/*
 * The replica set of the key at position pos: the placement's under token
 * placement (this node need not be in it), else node_replica_set()'s (the
 * caller is the key's authority).
 */
size_t node_key_replicas(node_t *n, ring_id_t pos, ring_id_t *out, size_t cap);
/*
 * The replicas a coordinated read of a key asks: its replica set
 * (id[0..ncur)) and, while placement moves, the members of the sets it had
 * under the placements before (place.from) that are not in it; bit i of
 * old[k] is set when id[i] is in the k-th of those sets. A read needs a
 * quorum of each set: the copies may not have moved yet.
 */
typedef struct {
    size_t n, ncur;
    ring_id_t id[KV_QUORUM_MAX];
    size_t nold;
    unsigned old[NODE_PLACE_FROM_MAX];
} node_read_set_t;
void node_key_read_set(node_t *n, ring_id_t pos, node_read_set_t *rs);
/* The copies have moved (kv_parts): reads stop asking the sets before the change. */
void node_place_moved(node_t *n);
/* How long (ms) the placement has been what it is now. */
uint64_t node_place_stable_ms(node_t *n);
/* Every maintenance tick: probe one member we have not heard from lately. */
void node_place_tick(node_t *n);
void node_place_fini(node_t *n);

/* kv.c */
int kv_init(node_t *n);
void kv_fini(node_t *n);
/* Serve a KV_*, REPL_*, SYNC_* or STATS request; false if not one of those. */
bool kv_serve(node_t *n, const uint8_t *ident, size_t ident_len, const wire_msg_t *m);
/* Periodic anti-entropy, from the node's maintenance tick. */
void kv_tick(node_t *n);
/* Hand every key to the successors before leaving; done() runs once. */
void kv_handoff(node_t *n, void (*done)(node_t *n));
/* kv_repl.c: the peer was declared failed; its hints are given up (anti-entropy's job). */
void kv_repl_peer_failed(node_t *n, ring_id_t id);
/*
 * kv_coord.c: another node may be taking over part of our range (a peer
 * missed a deadline, our loop stalled, our successor does not name us its
 * predecessor, another coordinator wrote to our range): forget every newest
 * version this authority knew (ringlib/kv_known.h).
 */
void kv_coord_forget(node_t *n);
/*
 * Whether the loop stalled (frozen, starved: its maintenance tick overdue)
 * after loop time t, noticing a stall under way now too.
 */
bool node_stalled_since(node_t *n, uint64_t t);
/*
 * Longest gap between maintenance ticks that is not a stall: past it the
 * node may have looked dead to the others (kv_coord_forget).
 */
static inline uint64_t node_tick_stall_ms(const node_t *n)
{
    return n->cfg.stabilize_ms + n->cfg.timeout_ms / 2;
}
/* Keys stored, primary keys and under-replicated keys as last counted. */
void kv_stats(node_t *n, wire_msg_t *reply);

#endif
