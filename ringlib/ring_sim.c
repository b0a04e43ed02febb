/*
 * ring_sim.c — in-process Chord ring for simulation and tests.
 *
 * Nodes are kept sorted by id so that the exact successor of any point is a
 * binary search away; that is only used to build the converged starting
 * state. Lookups and joins never peek at the global array: they hop through
 * ring_state_route() like the daemon does.
 */
#include "ring_sim.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct ring_sim {
    unsigned m;
    unsigned succ_max;
    size_t n, cap;
    ring_state_t **nodes; /* sorted by id */
};

static int cmp_id(const void *a, const void *b)
{
    ring_id_t x = *(const ring_id_t *)a, y = *(const ring_id_t *)b;
    return x < y ? -1 : x > y;
}

/* Index of the first node with id >= key, wrapping to 0. */
static size_t successor_index(const ring_sim_t *sim, ring_id_t key)
{
    size_t lo = 0, hi = sim->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ring_state_self(sim->nodes[mid]) < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo == sim->n ? 0 : lo;
}

static void build_exact(ring_sim_t *sim, size_t k)
{
    ring_state_t *st = sim->nodes[k];
    size_t n = sim->n;
    ring_state_set_pred(st, ring_state_self(sim->nodes[(k + n - 1) % n]));
    ring_id_t succ[RING_SUCC_MAX];
    size_t ns = 0;
    for (size_t j = 1; j < n && ns < sim->succ_max; j++)
        succ[ns++] = ring_state_self(sim->nodes[(k + j) % n]);
    if (ns)
        ring_state_set_succ_list(st, succ[0], succ + 1, ns - 1);
    for (unsigned i = 0; i < sim->m; i++) {
        size_t s = successor_index(sim, ring_state_finger_start(st, i));
        ring_state_set_finger(st, i, ring_state_self(sim->nodes[s]));
    }
}

ring_sim_t *ring_sim_new(unsigned m, unsigned succ_max, const ring_id_t *ids, size_t n)
{
    if (!ring_bits_valid(m) || n == 0)
        return NULL;
    ring_id_t *sorted = malloc(n * sizeof *sorted);
    ring_sim_t *sim = calloc(1, sizeof *sim);
    if (!sorted || !sim)
        goto fail;
    memcpy(sorted, ids, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, cmp_id);
    for (size_t i = 1; i < n; i++)
        if (sorted[i] == sorted[i - 1])
            goto fail;
    sim->m = m;
    sim->succ_max = succ_max;
    sim->cap = n + 8;
    sim->nodes = calloc(sim->cap, sizeof *sim->nodes);
    if (!sim->nodes)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        sim->nodes[i] = ring_state_new(sorted[i], m, succ_max);
        if (!sim->nodes[i])
            goto fail;
        sim->n++;
    }
    for (size_t i = 0; i < n; i++)
        build_exact(sim, i);
    free(sorted);
    return sim;
fail:
    free(sorted);
    ring_sim_destroy(&sim);
    return NULL;
}

void ring_sim_destroy(ring_sim_t **psim)
{
    if (!psim || !*psim)
        return;
    ring_sim_t *sim = *psim;
    for (size_t i = 0; i < sim->n; i++)
        ring_state_destroy(&sim->nodes[i]);
    free(sim->nodes);
    free(sim);
    *psim = NULL;
}

size_t ring_sim_size(const ring_sim_t *sim)
{
    return sim->n;
}

ring_state_t *ring_sim_at(ring_sim_t *sim, size_t i)
{
    return i < sim->n ? sim->nodes[i] : NULL;
}

ring_state_t *ring_sim_node(ring_sim_t *sim, ring_id_t id)
{
    size_t k = successor_index(sim, id);
    if (sim->n && ring_state_self(sim->nodes[k]) == id)
        return sim->nodes[k];
    return NULL;
}

int ring_sim_lookup(ring_sim_t *sim, ring_id_t from, ring_id_t key, ring_sim_lookup_t *out)
{
    ring_state_t *cur = ring_sim_node(sim, from);
    if (!cur)
        return -ENOENT;
    unsigned hops = 0;
    /* Each hop moves strictly clockwise, so more hops than nodes is a loop. */
    size_t bound = sim->n + 2u * sim->m + 2;
    for (size_t step = 0; step < bound; step++) {
        ring_route_t r = ring_state_route(cur, key, NULL, 0);
        switch (r.kind) {
        case RING_ROUTE_SELF: {
            ring_id_t pred = ring_state_self(cur);
            ring_state_pred(cur, &pred);
            *out = (ring_sim_lookup_t){ring_state_self(cur), pred, hops};
            return 0;
        }
        case RING_ROUTE_SUCC:
            *out = (ring_sim_lookup_t){r.next, ring_state_self(cur), hops};
            return 0;
        case RING_ROUTE_FORWARD:
            cur = ring_sim_node(sim, r.next);
            if (!cur)
                return -ENOENT;
            hops++;
            break;
        }
    }
    return -ELOOP;
}

static int insert_node(ring_sim_t *sim, ring_state_t *st)
{
    if (sim->n == sim->cap) {
        size_t cap = sim->cap * 2;
        ring_state_t **nodes = realloc(sim->nodes, cap * sizeof *nodes);
        if (!nodes)
            return -ENOMEM;
        sim->nodes = nodes;
        sim->cap = cap;
    }
    ring_id_t id = ring_state_self(st);
    size_t k = 0;
    while (k < sim->n && ring_state_self(sim->nodes[k]) < id)
        k++;
    memmove(&sim->nodes[k + 1], &sim->nodes[k], (sim->n - k) * sizeof *sim->nodes);
    sim->nodes[k] = st;
    sim->n++;
    return 0;
}

static void record(ring_sim_update_t *log, size_t cap, size_t *nlog, ring_sim_update_t u)
{
    if (*nlog < cap)
        log[*nlog] = u;
    (*nlog)++;
}

int ring_sim_join(ring_sim_t *sim, ring_id_t newcomer, ring_id_t bootstrap, ring_sim_update_t *log,
                  size_t cap, size_t *nlog)
{
    *nlog = 0;
    if (ring_sim_node(sim, newcomer))
        return -EEXIST;
    if (!ring_sim_node(sim, bootstrap))
        return -ENOENT;
    ring_state_t *st = ring_state_new(newcomer, sim->m, sim->succ_max);
    if (!st)
        return -ENOMEM;

    /* Successor and predecessor pointers first (step 2 below needs them). */
    ring_sim_lookup_t lk;
    int rc = ring_sim_lookup(sim, bootstrap, newcomer, &lk);
    if (rc < 0) {
        ring_state_destroy(&st);
        return rc;
    }
    ring_state_t *succ = ring_sim_node(sim, lk.owner);
    ring_state_t *pred = ring_sim_node(sim, lk.answerer);
    ring_id_t rest[RING_SUCC_MAX];
    size_t nrest = ring_state_succ_list(succ, rest, RING_SUCC_MAX);
    ring_state_set_succ_list(st, lk.owner, rest, nrest);
    ring_state_set_pred(st, lk.answerer);
    /*
     * 1. The newcomer's own table, by asking the bootstrap peer. Starts in
     *    (pred, newcomer] are the newcomer's own: the ring it asks does not
     *    contain it yet, so it must not take their answer.
     */
    ring_id_t new_pred = lk.answerer;
    ring_sim_lookup_t fk;
    for (unsigned i = 0; i < sim->m;) {
        ring_id_t start = ring_state_finger_start(st, i);
        if (ring_in_oc(start, new_pred, newcomer)) {
            ring_state_set_finger(st, i, newcomer);
            i++;
            continue;
        }
        rc = ring_sim_lookup(sim, bootstrap, start, &fk);
        if (rc < 0) {
            ring_state_destroy(&st);
            return rc;
        }
        ring_state_set_finger(st, i, fk.owner);
        i = ring_state_spread_finger(st, i);
    }
    /* 2. Link: tell the successor and the predecessor. */
    ring_state_notify(succ, newcomer);
    ring_id_t adopt;
    if (ring_state_stabilize_candidate(pred, newcomer, &adopt)) {
        ring_id_t mine[RING_SUCC_MAX];
        size_t nmine = ring_state_succ_list(st, mine, RING_SUCC_MAX);
        ring_state_set_succ_list(pred, adopt, mine, nmine);
    }
    rc = insert_node(sim, st);
    if (rc < 0) {
        ring_state_destroy(&st);
        return rc;
    }

    /*
     * 3. (Moving the keys in (pred, newcomer] happens here in the daemon.)
     * 4. update(target = n - 2^i, new-peer = n) to the peer at or before the
     *    target; each receiver that applies it passes it to its predecessor.
     */
    for (unsigned i = 0; i < sim->m; i++) {
        ring_id_t target = ring_join_update_target(newcomer, i, sim->m);
        rc = ring_sim_lookup(sim, newcomer, ring_join_update_key(newcomer, i, sim->m), &lk);
        if (rc < 0)
            return rc;
        ring_id_t to = lk.answerer;
        while (to != newcomer) {
            ring_state_t *p = ring_sim_node(sim, to);
            bool applied = ring_state_update_finger(p, i, newcomer);
            record(log, cap, nlog, (ring_sim_update_t){to, i, target, newcomer, applied});
            ring_id_t pp;
            if (!applied || !ring_state_pred(p, &pp))
                break;
            to = pp;
        }
    }
    return 0;
}
