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

static void placement_free(node_placement_t *p)
{
    ring_place_destroy(&p->pl);
    free(p->ids);
    free(p->nodes);
    free(p->memo);
    *p = (node_placement_t){NULL, NULL, NULL, 0, 0, NULL, 0};
}

enum { MEMO_STRIDE = 1 + RING_PLACE_REPLICAS_MAX };

/* ring_place_replicas at partition part's first position, through p's memo. */
static size_t placement_replicas(const node_t *n, node_placement_t *p, uint32_t part, size_t want,
                                 size_t *idx)
{
    ring_id_t pos = ring_place_part_pos(part, n->cfg.id_bits);
    if (!p->memo) {
        p->memo =
            calloc((size_t)ring_place_part_count(n->cfg.id_bits) * MEMO_STRIDE, sizeof *p->memo);
        p->memo_want = want;
    }
    if (!p->memo || want != p->memo_want)
        return ring_place_replicas(p->pl, pos, want, idx);
    uint32_t *e = p->memo + (size_t)part * MEMO_STRIDE;
    if (e[0] == 0) {
        size_t got = ring_place_replicas(p->pl, pos, want, idx);
        for (size_t i = 0; i < got; i++)
            e[1 + i] = (uint32_t)idx[i];
        e[0] = (uint32_t)got + 1;
        return got;
    }
    for (size_t i = 0; i + 1 < e[0]; i++)
        idx[i] = e[1 + i];
    return e[0] - 1;
}

static void place_from_free(node_t *n)
{
    for (size_t k = 0; k < n->place.nfrom; k++)
        placement_free(&n->place.from[k]);
    n->place.nfrom = 0;
}

void node_place_fini(node_t *n)
{
    placement_free(&n->place.cur);
    place_from_free(n);
    n->place.built = false;
}

/*
 * The placement over nodes[0..k) (ids alongside), without skip if it is
 * among them; takes nodes and ids. -ENOMEM, or -EINVAL when none is left.
 */
static int placement_build(const node_t *n, ring_place_node_t *nodes, ring_id_t *ids, size_t k,
                           const ring_id_t *skip, node_placement_t *out)
{
    size_t j = 0;
    for (size_t i = 0; i < k; i++) {
        if (skip && ids[i] == *skip)
            continue;
        nodes[j] = nodes[i];
        ids[j++] = ids[i];
    }
    ring_place_params_t p = {n->cfg.id_bits, n->cfg.tokens, n->cfg.probes};
    ring_place_t *pl = NULL;
    int rc = j ? ring_place_new(&p, nodes, j, &pl) : -EINVAL;
    if (rc < 0) {
        free(nodes);
        free(ids);
        return rc;
    }
    *out = (node_placement_t){pl, ids, nodes, j, 0, NULL, 0};
    return 0;
}

/* p becomes the newest of the placements copies may still sit under. */
static void place_from_push(node_t *n, node_placement_t p)
{
    if (n->place.nfrom == NODE_PLACE_FROM_MAX) {
        /*
         * Full (churn faster than copies move): forget the placement that
         * was current for the shortest time, which took the fewest writes
         * — never the oldest, which holds everything written before.
         */
        size_t k = 0;
        for (size_t i = 1; i + 1 < n->place.nfrom; i++)
            if (n->place.from[i].lived_ms < n->place.from[k].lived_ms)
                k = i;
        log_warn("place",
                 "placement changed %d times while copies moved: reads no longer ask the "
                 "sets of one that was current for %llu ms",
                 NODE_PLACE_FROM_MAX + 1, (unsigned long long)n->place.from[k].lived_ms);
        placement_free(&n->place.from[k]);
        memmove(&n->place.from[k], &n->place.from[k + 1],
                (--n->place.nfrom - k) * sizeof n->place.from[0]);
    }
    memmove(&n->place.from[1], &n->place.from[0], n->place.nfrom * sizeof n->place.from[0]);
    n->place.from[0] = p;
    n->place.nfrom++;
}

/*
 * The placement is replaced: from now on copies move (kv_parts), and until
 * they have, reads also ask the sets of the placements before
 * (node_key_read_set) — every one since the copies last settled, as writes
 * went to each in its time. A newcomer's placements before its first whole
 * member table (if any were built) placed no copies: the copies were where
 * the ring without it puts them.
 */
static void place_moves(node_t *n, node_placement_t *next)
{
    /* While fresh, cur (if any) was built from a partial table: it placed nothing. */
    if (n->place.cur.pl && !n->place.fresh) {
        n->place.cur.lived_ms = loop_now_ms(n->loop) - n->place.changed_ms;
        place_from_push(n, n->place.cur);
    } else {
        placement_free(&n->place.cur);
        if (n->place.fresh && node_members_complete(n) && next->pl) {
            n->place.fresh = false;
            ring_place_node_t *nodes = malloc(next->n * sizeof *nodes);
            ring_id_t *ids = malloc(next->n * sizeof *ids);
            node_placement_t before;
            if (nodes && ids) {
                memcpy(nodes, next->nodes, next->n * sizeof *nodes);
                memcpy(ids, next->ids, next->n * sizeof *ids);
                if (placement_build(n, nodes, ids, next->n, &n->self, &before) == 0)
                    place_from_push(n, before);
            } else {
                free(nodes);
                free(ids);
            }
        }
    }
    n->place.cur = *next;
    n->place.changed_ms = loop_now_ms(n->loop);
}

/* Bring the placement up to the member table's epoch. False: none can be built. */
static bool place_current(node_t *n)
{
    uint64_t epoch = ring_members_epoch(n->members);
    if (n->place.built && n->place.epoch == epoch)
        return n->place.cur.pl != NULL;
    size_t count = ring_members_count(n->members);
    ring_place_node_t *nodes = calloc(count ? count : 1, sizeof *nodes);
    ring_id_t *ids = calloc(count ? count : 1, sizeof *ids);
    if (!nodes || !ids) {
        free(nodes);
        free(ids);
        return n->place.cur.pl != NULL; /* keep the old placement: no memory is not a change */
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
    const node_placement_t *cur = &n->place.cur;
    bool same = cur->pl && k == cur->n;
    for (size_t i = 0; same && i < k; i++)
        same = ids[i] == cur->ids[i] && nodes[i].weight == cur->nodes[i].weight &&
               nodes[i].zone == cur->nodes[i].zone;
    if (same && !(n->place.fresh && node_members_complete(n))) {
        free(nodes);
        free(ids);
        n->place.epoch = epoch;
        return true;
    }
    node_placement_t next;
    int rc = placement_build(n, nodes, ids, k, NULL, &next);
    if (rc < 0 && rc != -EINVAL)
        return n->place.cur.pl != NULL;
    if (rc < 0)
        next = (node_placement_t){NULL, NULL, NULL, 0, 0, NULL, 0};
    place_moves(n, &next);
    n->place.epoch = epoch;
    n->place.built = true;
    log_debug("place", "placement over %zu nodes (epoch %016llx), %zu before it still asked", k,
              (unsigned long long)epoch, n->place.nfrom);
    return next.pl != NULL;
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

/* Partition part's set under placement p, as node_place_part describes it. */
static size_t placement_set(node_t *n, node_placement_t *p, uint32_t part, ring_id_t *out,
                            size_t cap, bool *whole)
{
    size_t want = n->cfg.replicas < cap ? n->cfg.replicas : cap;
    if (want > RING_PLACE_REPLICAS_MAX)
        want = RING_PLACE_REPLICAS_MAX;
    size_t idx[RING_PLACE_REPLICAS_MAX];
    size_t got = placement_replicas(n, p, part, want, idx), k = 0;
    for (size_t i = 0; i < got; i++) {
        ring_id_t id = p->ids[idx[i]];
        if (id == n->self || !node_peer_down(n, id))
            out[k++] = id;
    }
    *whole = k == got; /* no member passed over */
    if (k == got)
        return k;
    got = ring_place_replicas(p->pl, ring_place_part_pos(part, n->cfg.id_bits),
                              RING_PLACE_REPLICAS_MAX, idx);
    for (size_t i = 0; i < got && k < want; i++) {
        ring_id_t id = p->ids[idx[i]];
        if (!listed(out, k, id) && (id == n->self || !node_peer_down(n, id)))
            out[k++] = id;
    }
    return k;
}

size_t node_place_part(node_t *n, uint32_t part, ring_id_t *out, size_t cap)
{
    if (!place_current(n))
        return 0;
    bool whole;
    return placement_set(n, &n->place.cur, part, out, cap, &whole);
}

size_t node_key_replicas(node_t *n, ring_id_t pos, ring_id_t *out, size_t cap)
{
    if (!node_place_on(n))
        return node_replica_set(n, out, cap);
    return node_place_part(n, ring_place_part_of(pos, n->cfg.id_bits), out, cap);
}

void node_key_read_set(node_t *n, ring_id_t pos, node_read_set_t *rs)
{
    rs->n = rs->ncur = node_key_replicas(n, pos, rs->id, KV_QUORUM_MAX);
    rs->nold = 0;
    if (!node_place_on(n))
        return;
    uint32_t part = ring_place_part_of(pos, n->cfg.id_bits);
    unsigned cur = (1u << rs->ncur) - 1;
    for (size_t k = 0; k < n->place.nfrom; k++) {
        ring_id_t old[RING_PLACE_REPLICAS_MAX];
        bool whole;
        size_t nold =
            placement_set(n, &n->place.from[k], part, old, RING_PLACE_REPLICAS_MAX, &whole);
        unsigned mask = 0;
        for (size_t i = 0; i < nold; i++) {
            /* A member that left handed its copies over first: nothing to ask it. */
            const ring_member_t *e = ring_members_find(n->members, old[i]);
            size_t at = 0;
            while (at < rs->n && rs->id[at] != old[i])
                at++;
            if ((e && e->state == RING_MEMBER_LEFT) || at == KV_QUORUM_MAX) {
                whole = false; /* (16 replicas asked at most: 5 older sets of 3 can pass that) */
                continue;
            }
            if (at == rs->n)
                rs->id[rs->n++] = old[i];
            mask |= 1u << at;
        }
        /*
         * A set within the current one adds nothing when it is the whole
         * set its writes went to: W of its members took each, all of them
         * asked anyway (R + W > N). Not when a member was passed over (down,
         * left): the copy it held is not among the current set's. Nor does
         * a set asked already.
         */
        bool seen = mask == 0 || (whole && (mask & ~cur) == 0);
        for (size_t j = 0; j < rs->nold && !seen; j++)
            seen = rs->old[j] == mask;
        if (!seen)
            rs->old[rs->nold++] = mask;
    }
}

void node_place_moved(node_t *n)
{
    if (n->place.nfrom == 0)
        return;
    place_from_free(n);
    log_info("place", "copies are where the placement puts them: reads ask the new sets alone");
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
