/*
 * node.h — a Chord peer: membership, routing and the periodic repair
 * protocol, served on one ROUTER socket from the process's event loop.
 */
#ifndef NODE_H
#define NODE_H

#include "auth.h"
#include "loop.h"
#include "ring_id.h"
#include "ring_members.h"
#include "endpoint.h"
#include "sec_key.h"

#include <limits.h>
#include <stdbool.h>

typedef struct {
    /*
     * Normalized; on a secured node the address it is known by, ending in
     * "#KEY" (its public key): the ROUTER binds the part before it, and
     * the id is the hash of that part, so a new key does not move data.
     */
    char listen[ENDPOINT_MAX];
    bool has_join;
    char join[ENDPOINT_MAX]; /* normalized */
    char data_dir[PATH_MAX];
    unsigned id_bits;
    bool has_id;
    ring_id_t id;
    unsigned replicas, write_quorum, read_quorum;
    unsigned cache_mb;
    unsigned stabilize_ms;      /* period of stabilize / fix-fingers / check-pred */
    unsigned timeout_ms;        /* deadline of one request to a peer */
    unsigned fail_after_ms;     /* a peer missing deadlines this long has failed */
    unsigned tombstone_grace_s; /* deleted keys are forgotten after this */
    /* The node's own member entry (docs/PLACEMENT.md): capacity weight
     * 1..RING_MEMBERS_WEIGHT_MAX (0: 1) and zone ("" = none; checked with
     * ring_members_zone_valid); placement uses them with tokens > 0. */
    unsigned weight;
    char zone[RING_MEMBERS_ZONE_MAX];
    /*
     * Placement, a ring-wide parameter like replicas (a joining node must
     * match): tokens per unit of weight, 0 for Chord placement (a key's
     * copies on its successor and the next nodes); probes per partition
     * (0: RING_PLACE_PROBES_DEFAULT). docs/PLACEMENT.md.
     */
    unsigned tokens, probes;
    /*
     * Secured node: its key pair (the ROUTER is a CURVE server with it, and
     * it is presented to peers) and the allow-lists (borrowed; they must
     * outlive the node and be created before it). Both NULL: unsecured.
     */
    const sec_keypair_t *key;
    auth_t *auth;
} node_config_t;

typedef struct node node_t;

/* Exit statuses the daemon reports (also documented in OPERATIONS.md). */
enum {
    NODE_EXIT_OK = 0,
    NODE_EXIT_FAILURE = 1,
    NODE_EXIT_USAGE = 2,
    NODE_EXIT_UNAVAILABLE = 3,
};

/* Defaults applied to any zero field by node_config_defaults(). */
void node_config_defaults(node_config_t *cfg);

/*
 * Create the node: lock the data directory, bind the listen endpoint. zctx and
 * loop are borrowed and must outlive the node. Returns NULL with *err set to
 * a message (static or in a buffer owned by the caller of size errcap).
 */
node_t *node_new(const node_config_t *cfg, void *zctx, loop_t *loop, char *err, size_t errcap);
void node_destroy(node_t **node);

/* Start serving; with a join endpoint, start the join (asynchronous). */
int node_start(node_t *node);

/*
 * Begin a graceful leave: hand our neighbours to each other and stop the
 * loop once both acknowledged (or after a bounded wait).
 */
void node_leave(node_t *node);

/* The status the process should exit with once the loop has stopped. */
int node_exit_status(const node_t *node);

#endif
