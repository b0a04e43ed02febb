/*
 * node_place.c — where a key's copies live when the ring runs token
 * placement (--tokens T > 0; docs/PLACEMENT.md, step 2): the partition of
 * the key's position is placed by ringlib/ring_place over the member
 * table's nodes that are up (a crashed node stays in, as placement must
 * not move on a restart; a leaving or left one is out).
 *
 * Placement decides only where copies live. Who coordinates a key's
 * operations is unchanged: the Chord successor of its position, which
 * every client and node already routes to and which takes over at once
 * when a node fails. The coordinator then sends to the placement's
 * replica set, of which it need not be a member.
 *
 * The placement is rebuilt whenever the table's epoch changes; two nodes
 * with different tables may disagree for a few stabilize rounds, as two
 * nodes with different successor lists do under Chord placement.
 */
#include "node_i.h"

#include "log.h"
#include "ring_place.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

bool node_place_on(const node_t *n)
{
    return n->cfg.tokens > 0;
}

void node_place_fini(node_t *n)
{
    ring_place_destroy(&n->place.pl);
    free(n->place.ids);
    free(n->place.nodes);
    n->place.ids = NULL;
    n->place.nodes = NULL;
    n->place.n = 0;
    n->place.built = false;
}

/* Bring the placement up to the member table's epoch. False: none can be built. */
static bool place_current(node_t *n)
{
    uint64_t epoch = ring_members_epoch(n->members);
    if (n->place.built && n->place.epoch == epoch)
        return n->place.pl != NULL;
    size_t count = ring_members_count(n->members);
    ring_place_node_t *nodes = calloc(count ? count : 1, sizeof *nodes);
    ring_id_t *ids = calloc(count ? count : 1, sizeof *ids);
    if (!nodes || !ids) {
        free(nodes);
        free(ids);
        return n->place.pl != NULL; /* keep the old placement: no memory is not a change */
    }
    /*
     * A leaving member keeps its place until it has left: until its
     * hand-off is through it holds copies the others may lack, and reads
     * must still find them (it refuses new copies meanwhile). Only the
     * leaver itself places without itself, to know where to hand over.
     */
    size_t k = 0;
    for (size_t i = 0; i < count; i++) {
        const ring_member_t *e = ring_members_at(n->members, i);
        bool placed = e->state == RING_MEMBER_UP || e->state == RING_MEMBER_JOINING ||
                      (e->state == RING_MEMBER_LEAVING && e->id != n->self);
        if (!placed)
            continue;
        nodes[k] = (ring_place_node_t){e->id, e->weight, e->zone_hash};
        ids[k++] = e->id;
    }
    /* Another incarnation or address changes the epoch but not where anything lives. */
    bool same = n->place.pl && k == n->place.n;
    for (size_t i = 0; same && i < k; i++)
        same = ids[i] == n->place.ids[i] && nodes[i].weight == n->place.nodes[i].weight &&
               nodes[i].zone == n->place.nodes[i].zone;
    if (same) {
        free(nodes);
        free(ids);
        n->place.epoch = epoch;
        return true;
    }
    ring_place_params_t p = {n->cfg.id_bits, n->cfg.tokens, n->cfg.probes};
    ring_place_t *pl = NULL;
    int rc = k ? ring_place_new(&p, nodes, k, &pl) : -EINVAL;
    if (rc < 0 && rc != -EINVAL) {
        free(nodes);
        free(ids);
        return n->place.pl != NULL;
    }
    node_place_fini(n);
    n->place.pl = pl;
    n->place.nodes = pl ? nodes : (free(nodes), NULL);
    n->place.ids = pl ? ids : (free(ids), NULL);
    n->place.n = pl ? k : 0;
    n->place.epoch = epoch;
    n->place.built = true;
    n->place.changed_ms = loop_now_ms(n->loop);
    log_debug("place", "placement over %zu nodes (epoch %016llx)", k, (unsigned long long)epoch);
    return pl != NULL;
}

/*
 * A member this node's failure detector declared failed is passed over and
 * replaced by the next node of a longer walk, as a Chord successor list
 * skips a dead successor: its copies are made again elsewhere (and handed
 * back from there once it answers again) without a change of placement.
 * The members that are up keep their places at the front, so a quorum read
 * still finds the copies they hold (with a whole zone down, the plain
 * walk over the remaining zones would name other nodes).
 */
static bool listed(const ring_id_t *ids, size_t n, ring_id_t id)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id)
            return true;
    return false;
}

size_t node_place_part(node_t *n, uint32_t part, ring_id_t *out, size_t cap)
{
    if (!place_current(n))
        return 0;
    size_t want = n->cfg.replicas < cap ? n->cfg.replicas : cap;
    if (want > RING_PLACE_REPLICAS_MAX)
        want = RING_PLACE_REPLICAS_MAX;
    ring_id_t pos = ring_place_part_pos(part, n->cfg.id_bits);
    size_t idx[RING_PLACE_REPLICAS_MAX];
    size_t got = ring_place_replicas(n->place.pl, pos, want, idx), k = 0;
    for (size_t i = 0; i < got; i++) {
        ring_id_t id = n->place.ids[idx[i]];
        if (id == n->self || !node_peer_down(n, id))
            out[k++] = id;
    }
    if (k == got)
        return k;
    got = ring_place_replicas(n->place.pl, pos, RING_PLACE_REPLICAS_MAX, idx);
    for (size_t i = 0; i < got && k < want; i++) {
        ring_id_t id = n->place.ids[idx[i]];
        if (!listed(out, k, id) && (id == n->self || !node_peer_down(n, id)))
            out[k++] = id;
    }
    return k;
}

size_t node_key_replicas(node_t *n, ring_id_t pos, ring_id_t *out, size_t cap)
{
    if (!node_place_on(n))
        return node_replica_set(n, out, cap);
    return node_place_part(n, ring_place_part_of(pos, n->cfg.id_bits), out, cap);
}

uint64_t node_place_stable_ms(node_t *n)
{
    place_current(n);
    return loop_now_ms(n->loop) - n->place.changed_ms;
}

static void on_probe(int rc, const wire_msg_t *r, void *arg)
{
    node_t *n = arg;
    n->place.probing = false;
    if (rc == -ECANCELED)
        return;
    if (r)
        node_peer_alive(n, n->place.probe_id);
    else if (!node_peer_down(n, n->place.probe_id))
        node_peer_missed(n, n->place.probe_id, "member probe"); /* (a down one stays down) */
}

/*
 * Under token placement a node shares partitions with most members, not
 * only its ring neighbours, so it needs to know which of them are down:
 * every tick one member in turn that has not answered anything for a
 * timeout gets a PING (one at a time; the usual miss counting decides).
 */
void node_place_tick(node_t *n)
{
    if (!node_place_on(n) || n->place.probing || n->leaving)
        return;
    size_t count = ring_members_count(n->members);
    uint64_t now = loop_now_ms(n->loop);
    for (size_t k = 0; k < count; k++) {
        const ring_member_t *e = ring_members_at(n->members, n->place.probe_next++ % count);
        if (e->id == n->self || e->state == RING_MEMBER_LEFT)
            continue;
        uint64_t heard = rpc_last_reply_ms(n->rpc, e->addr);
        if (heard && now - heard < n->cfg.timeout_ms && !node_peer_down(n, e->id))
            continue;
        wire_msg_t req;
        wire_init(&req, WIRE_PING, 0);
        n->place.probe_id = e->id;
        if (rpc_call(n->rpc, e->addr, &req, n->cfg.timeout_ms, on_probe, n) == 0)
            n->place.probing = true;
        return;
    }
}
