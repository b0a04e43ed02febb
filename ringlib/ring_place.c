/*
 * ring_place.c — tokens, multi-probe primaries and replica walks.
 *
 * Why tokens and probes together. With one position per node the largest
 * node owns O(log N) times the mean share. Random tokens (virtual nodes)
 * shrink that only as 1/sqrt(T): at 100,000 nodes about 400 tokens per node
 * are needed for max/mean <= 1.25, i.e. 40 million tokens to hash, sort and
 * hold. Multi-probe consistent hashing (Appleton and O'Reilly, 2015) looks at
 * k probe positions per key and takes the probe closest to its successor
 * token: a token with a long arc no longer collects keys in proportion to the
 * arc, and a token's expected share is at most (k + 1) / k times the mean
 * whatever N is. A few tokens per node are then still worth having: weights
 * are token counts, and a joining or leaving node's data comes from or goes to
 * many nodes instead of one neighbour.
 *
 * Zones. With at least r zones the walk from the primary token only chooses
 * the further zones; the node inside each is a multi-probe pick over that
 * zone's tokens. Taking the first token of the zone met by the walk instead
 * would be one-probe hashing inside the zone, and measured 1.6 x the mean
 * copies at 100 nodes in 3 zones. The pick's probes are salted by the zone
 * value: independent of the primary's, and equal in every placement that
 * has the zone, which is what keeps the closed forms below exact.
 *
 * Invariants: tokens are sorted by (position, node id, token index), so two
 * placements of overlapping member lists order their common tokens alike (the
 * merge in ring_place_moved relies on it). A replica set never names a node
 * twice; with at least r zones it never names a zone twice.
 *
 * Exact shares. Treating the probes as independent uniform positions, a
 * probe's distance D to its successor token has P(D > d) = G(d) =
 * sum over arcs a_j > d of (a_j - d) / S. The key goes to token t when some
 * probe lands in t's arc at distance d and the other k - 1 are farther, so
 * share(t) = integral over [0, a_t) of (k / S) G(d)^(k-1). G is linear between
 * sorted arc lengths, which gives the integral piece by piece in closed form:
 * (G(x0)^k - G(x1)^k) / c on a piece where c arcs exceed d. With k = 1 this is
 * a_t / S, the plain arc share.
 *
 * Deliberately not here: membership, transfer of data, any I/O.
 */
#include "ring_place.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    ring_id_t pos;     /* radix key: first member */
    ring_id_t node_id; /* the order of tokens at one position */
    uint32_t node;     /* index into pl->nodes */
    uint32_t index;
} place_token_t;

struct ring_place {
    ring_place_params_t p;
    size_t n;
    ring_place_node_t *nodes;
    size_t nzones;
    size_t nt;
    place_token_t *tok; /* sorted, see the invariants above */
    uint32_t *zone_ix;  /* per node: its zone's index, 0..nzones-1 */
    uint32_t *zval;     /* per zone index: the zone value, ascending */
    uint32_t *znodes;   /* per zone: how many nodes */
    size_t *zstart;     /* per zone: its tokens are ztok[zstart[z] .. zstart[z + 1]) */
    uint32_t *ztok;     /* token indexes grouped by zone, in ring order within a zone */
    /*
     * Capped weights: bit w of sat[i] is set when node i's fair share of w
     * copies, w * weight / total (after the larger capped nodes are taken
     * out), reaches one copy of every key; nsat[w] counts them. zsat and
     * nzsat: the same for zones (a zone's weight is its nodes').
     */
    uint32_t *sat, *zsat;
    uint8_t nsat[RING_PLACE_REPLICAS_MAX + 1], nzsat[RING_PLACE_REPLICAS_MAX + 1];
};

ring_id_t ring_place_token(ring_id_t node, uint32_t index, unsigned m)
{
    if (index == 0)
        return node & ring_mask(m);
    uint8_t buf[12];
    for (int b = 0; b < 8; b++)
        buf[b] = (uint8_t)(node >> (8 * b));
    for (int b = 0; b < 4; b++)
        buf[8 + b] = (uint8_t)(index >> (8 * b));
    return ring_hash(buf, sizeof buf, m);
}

ring_id_t ring_place_probe(ring_id_t pos, unsigned j, unsigned m)
{
    if (j == 0)
        return pos & ring_mask(m);
    uint64_t z = pos + (uint64_t)j * 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return z & ring_mask(m);
}

/*
 * LSD radix sort of n items of `size` bytes by the uint64_t key at their
 * start (8 passes of 8 bits, stable). qsort's comparisons dominated the build
 * of a 100,000-node placement; this is linear. tmp holds n items.
 */
static void radix_sort(void *items, void *tmp, size_t n, size_t size)
{
    unsigned char *src = items, *dst = tmp;
    for (unsigned shift = 0; shift < 64; shift += 8) {
        size_t count[257] = {0};
        for (size_t i = 0; i < n; i++) {
            uint64_t key;
            memcpy(&key, src + i * size, sizeof key);
            count[((key >> shift) & 0xff) + 1]++;
        }
        bool one_bucket = false;
        for (int b = 1; b <= 256 && !one_bucket; b++)
            one_bucket = count[b] == n;
        if (one_bucket)
            continue; /* every item has the same byte here: nothing moves */
        for (int b = 0; b < 256; b++)
            count[b + 1] += count[b];
        for (size_t i = 0; i < n; i++) {
            uint64_t key;
            memcpy(&key, src + i * size, sizeof key);
            memcpy(dst + count[(key >> shift) & 0xff]++ * size, src + i * size, size);
        }
        unsigned char *t = src;
        src = dst;
        dst = t;
    }
    if (src != items)
        memcpy(items, src, n * size);
}

static int cmp_token_tie(const void *a, const void *b)
{
    const place_token_t *x = a, *y = b;
    if (x->node_id != y->node_id)
        return x->node_id < y->node_id ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* By position, then each run of equal positions (rare) by node id and index. */
static void sort_tokens(place_token_t *tok, place_token_t *tmp, size_t nt)
{
    radix_sort(tok, tmp, nt, sizeof *tok);
    for (size_t i = 0; i < nt;) {
        size_t j = i + 1;
        while (j < nt && tok[j].pos == tok[i].pos)
            j++;
        if (j - i > 1)
            qsort(tok + i, j - i, sizeof *tok, cmp_token_tie);
        i = j;
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/*
 * Which of n weights' fair share of w copies is every key, for each w: the
 * largest first, as long as w' * weight >= the weight left (w' the copies
 * left), the way a share above one copy is spread over the rest.
 */
static void cap_weights(const uint64_t *weight, size_t n, uint32_t *sat, uint8_t *nsat)
{
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += weight[i];
    size_t wmax = n < RING_PLACE_REPLICAS_MAX ? n : RING_PLACE_REPLICAS_MAX;
    for (size_t w = 1; w <= wmax; w++) {
        uint64_t left = total;
        size_t copies = w;
        uint32_t bit = UINT32_C(1) << w;
        while (copies > 0) {
            size_t best = n;
            for (size_t i = 0; i < n; i++)
                if (!(sat[i] & bit) && (best == n || weight[i] > weight[best]))
                    best = i;
            if (best == n || copies * weight[best] < left)
                break;
            sat[best] |= bit;
            nsat[w]++;
            left -= weight[best];
            copies--;
        }
    }
}

static bool params_valid(const ring_place_params_t *p)
{
    return p && ring_bits_valid(p->m) && p->tokens >= 1 && p->tokens <= RING_PLACE_TOKENS_MAX &&
           p->probes >= 1 && p->probes <= RING_PLACE_PROBES_MAX;
}

int ring_place_new(const ring_place_params_t *p, const ring_place_node_t *nodes, size_t n,
                   ring_place_t **out)
{
    *out = NULL;
    if (!params_valid(p) || n == 0 || n > UINT32_MAX / RING_PLACE_WEIGHT_MAX || !nodes)
        return -EINVAL;
    size_t nt = 0;
    for (size_t i = 0; i < n; i++) {
        if (nodes[i].weight < 1 || nodes[i].weight > RING_PLACE_WEIGHT_MAX ||
            nodes[i].id > ring_mask(p->m))
            return -EINVAL;
        nt += (size_t)nodes[i].weight * p->tokens;
    }
    int rc = -ENOMEM;
    ring_place_t *pl = calloc(1, sizeof *pl);
    uint64_t *scratch = malloc(n * sizeof *scratch);
    if (!pl || !scratch)
        goto fail;
    pl->p = *p;
    pl->n = n;
    pl->nodes = malloc(n * sizeof *pl->nodes);
    pl->tok = malloc(nt * sizeof *pl->tok);
    if (!pl->nodes || !pl->tok)
        goto fail;
    memcpy(pl->nodes, nodes, n * sizeof *nodes);

    rc = -EINVAL;
    for (size_t i = 0; i < n; i++)
        scratch[i] = nodes[i].id;
    qsort(scratch, n, sizeof *scratch, cmp_u64);
    for (size_t i = 1; i < n; i++)
        if (scratch[i] == scratch[i - 1])
            goto fail;
    for (size_t i = 0; i < n; i++)
        scratch[i] = nodes[i].zone;
    qsort(scratch, n, sizeof *scratch, cmp_u64);
    pl->nzones = 1;
    for (size_t i = 1; i < n; i++)
        if (scratch[i] != scratch[pl->nzones - 1])
            scratch[pl->nzones++] = scratch[i];
    rc = -ENOMEM;
    pl->zone_ix = malloc(n * sizeof *pl->zone_ix);
    pl->zval = malloc(pl->nzones * sizeof *pl->zval);
    pl->znodes = calloc(pl->nzones, sizeof *pl->znodes);
    pl->zstart = calloc(pl->nzones + 1, sizeof *pl->zstart);
    pl->ztok = malloc(nt * sizeof *pl->ztok);
    if (!pl->zone_ix || !pl->zval || !pl->znodes || !pl->zstart || !pl->ztok)
        goto fail;
    for (size_t z = 0; z < pl->nzones; z++)
        pl->zval[z] = (uint32_t)scratch[z];
    for (size_t i = 0; i < n; i++) {
        uint64_t zone = nodes[i].zone;
        const uint64_t *hit = bsearch(&zone, scratch, pl->nzones, sizeof *scratch, cmp_u64);
        pl->zone_ix[i] = (uint32_t)(hit - scratch);
        pl->znodes[pl->zone_ix[i]]++;
        pl->zstart[pl->zone_ix[i] + 1] += (size_t)nodes[i].weight * p->tokens;
    }
    for (size_t z = 0; z < pl->nzones; z++)
        pl->zstart[z + 1] += pl->zstart[z];

    for (size_t i = 0; i < n; i++) {
        uint32_t count = nodes[i].weight * p->tokens;
        for (uint32_t t = 0; t < count; t++)
            pl->tok[pl->nt++] = (place_token_t){ring_place_token(nodes[i].id, t, p->m), nodes[i].id,
                                                (uint32_t)i, t};
    }
    place_token_t *tmp = malloc(pl->nt * sizeof *tmp);
    rc = -ENOMEM;
    if (!tmp)
        goto fail;
    sort_tokens(pl->tok, tmp, pl->nt);
    free(tmp);
    /* Group the tokens by zone; scratch counts how many each zone got so far. */
    memset(scratch, 0, pl->nzones * sizeof *scratch);
    for (size_t t = 0; t < pl->nt; t++) {
        uint32_t z = pl->zone_ix[pl->tok[t].node];
        pl->ztok[pl->zstart[z] + scratch[z]++] = (uint32_t)t;
    }
    /* Capped weights, of nodes and of zones (scratch: the weights). */
    pl->sat = calloc(n, sizeof *pl->sat);
    pl->zsat = calloc(pl->nzones, sizeof *pl->zsat);
    if (!pl->sat || !pl->zsat)
        goto fail;
    for (size_t i = 0; i < n; i++)
        scratch[i] = nodes[i].weight;
    cap_weights(scratch, n, pl->sat, pl->nsat);
    memset(scratch, 0, pl->nzones * sizeof *scratch);
    for (size_t i = 0; i < n; i++)
        scratch[pl->zone_ix[i]] += nodes[i].weight;
    cap_weights(scratch, pl->nzones, pl->zsat, pl->nzsat);
    free(scratch);
    *out = pl;
    return 0;
fail:
    free(scratch);
    ring_place_destroy(&pl);
    return rc;
}

void ring_place_destroy(ring_place_t **ppl)
{
    if (!ppl || !*ppl)
        return;
    free((*ppl)->nodes);
    free((*ppl)->tok);
    free((*ppl)->zone_ix);
    free((*ppl)->zval);
    free((*ppl)->znodes);
    free((*ppl)->zstart);
    free((*ppl)->ztok);
    free((*ppl)->sat);
    free((*ppl)->zsat);
    free(*ppl);
    *ppl = NULL;
}

size_t ring_place_size(const ring_place_t *pl)
{
    return pl->n;
}

size_t ring_place_token_count(const ring_place_t *pl)
{
    return pl->nt;
}

size_t ring_place_zone_count(const ring_place_t *pl)
{
    return pl->nzones;
}

/* Index of the first token at or after x, wrapping to 0. */
static size_t successor_token(const ring_place_t *pl, ring_id_t x)
{
    size_t lo = 0, hi = pl->nt;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (pl->tok[mid].pos < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo == pl->nt ? 0 : lo;
}

static size_t primary_token(const ring_place_t *pl, ring_id_t pos)
{
    size_t best = 0;
    uint64_t best_d = 0;
    for (unsigned j = 0; j < pl->p.probes; j++) {
        ring_id_t probe = ring_place_probe(pos, j, pl->p.m);
        size_t t = successor_token(pl, probe);
        uint64_t d = ring_distance(probe, pl->tok[t].pos, pl->p.m);
        if (j == 0 || d < best_d) {
            best = t;
            best_d = d;
        }
    }
    return best;
}

static size_t clamp_r(const ring_place_t *pl, size_t r)
{
    if (r > RING_PLACE_REPLICAS_MAX)
        r = RING_PLACE_REPLICAS_MAX;
    return r < pl->n ? r : pl->n;
}

/* With at least r zones the copies go to distinct zones, else to distinct nodes. */
static bool zone_mode(const ring_place_t *pl, size_t r)
{
    if (r > RING_PLACE_REPLICAS_MAX)
        r = RING_PLACE_REPLICAS_MAX;
    return pl->nzones >= r;
}

/*
 * Walk clockwise from token `start`. In zone mode: the first distinct zones
 * met (zone indexes into out); otherwise the first distinct nodes (node
 * indexes), except that the nodes (zones) whose weight caps them at a copy
 * of every key are in every set and only the other slots go to the first
 * others met. Either way out[0] belongs to start's node. Returns the count.
 *
 * Without the cap, weights 1,1,1,1,2 and 3 copies gave the heavy node 1.5
 * times the copies of the others, not 2: its fair share is a copy of every
 * key, and a walk that takes the first distinct nodes reaches it only in
 * part. Nodes (zones) of equal weight are capped only when there are no
 * more of them than copies, where the walk takes them all in the same
 * order; a zone's weight is its nodes', so zones of unequal size can be
 * capped with equal node weights. In zone mode a capped zone's copy still
 * goes to the node its multi-probe picks.
 */
static size_t walk(const ring_place_t *pl, size_t start, size_t r, bool zones, size_t *out)
{
    size_t want = clamp_r(pl, r), got = 0, others = 0;
    size_t others_max = want - (zones ? pl->nzsat[want] : pl->nsat[want]);
    uint32_t bit = UINT32_C(1) << want;
    for (size_t s = 0; s < pl->nt && got < want; s++) {
        uint32_t node = pl->tok[(start + s) % pl->nt].node;
        size_t g = zones ? pl->zone_ix[node] : node;
        bool seen = false;
        for (size_t k = 0; k < got && !seen; k++)
            seen = out[k] == g;
        if (seen)
            continue;
        if (!((zones ? pl->zsat[g] : pl->sat[node]) & bit)) {
            if (got > 0 && others >= others_max)
                continue; /* the slots left are the capped nodes' */
            others++;
        }
        out[got++] = g;
    }
    return got;
}

/* First token of zone z at or after x, wrapping to the zone's first (a ztok index). */
static size_t zone_successor(const ring_place_t *pl, size_t z, ring_id_t x)
{
    size_t lo = pl->zstart[z], hi = pl->zstart[z + 1];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (pl->tok[pl->ztok[mid]].pos < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo == pl->zstart[z + 1] ? pl->zstart[z] : lo;
}

/*
 * The node of zone z that holds the key at pos (a copy that is not the
 * primary's): multi-probe over the zone's tokens, with probes salted by the
 * zone value, so they are independent of the primary's probes and the same
 * in every placement that has this zone.
 */
static uint32_t zone_pick(const ring_place_t *pl, size_t z, ring_id_t pos)
{
    if (pl->znodes[z] == 1)
        return pl->tok[pl->ztok[pl->zstart[z]]].node;
    ring_id_t salted = pos ^ ring_place_probe(pl->zval[z], 1, 64);
    size_t best = 0;
    uint64_t best_d = 0;
    for (unsigned j = 0; j < pl->p.probes; j++) {
        ring_id_t probe = ring_place_probe(salted, j + 1, pl->p.m);
        size_t t = zone_successor(pl, z, probe);
        uint64_t d = ring_distance(probe, pl->tok[pl->ztok[t]].pos, pl->p.m);
        if (j == 0 || d < best_d) {
            best = t;
            best_d = d;
        }
    }
    return pl->tok[pl->ztok[best]].node;
}

size_t ring_place_replicas(const ring_place_t *pl, ring_id_t pos, size_t r, size_t *out)
{
    pos &= ring_mask(pl->p.m);
    size_t start = primary_token(pl, pos);
    bool zones = zone_mode(pl, r);
    size_t got = walk(pl, start, r, zones, out);
    if (zones) {
        out[0] = pl->tok[start].node;
        for (size_t k = 1; k < got; k++)
            out[k] = zone_pick(pl, out[k], pos);
    }
    return got;
}

typedef struct {
    uint64_t arc; /* radix key: first member */
    uint64_t token;
} place_arc_t;

/*
 * share[i] for the tokens idx[0..cnt) (token indexes in ring order; NULL:
 * all tokens): the closed form of the file comment, arcs measured between
 * consecutive tokens of the subset.
 */
static int token_shares(const ring_place_t *pl, const uint32_t *idx, size_t cnt, double *share)
{
    double S = ldexp(1.0, (int)pl->p.m);
    if (cnt == 1) {
        share[0] = 1;
        return 0;
    }
    place_arc_t *arc = malloc(cnt * sizeof *arc), *tmp = malloc(cnt * sizeof *tmp);
    if (!arc || !tmp) {
        free(arc);
        free(tmp);
        return -ENOMEM;
    }
    for (size_t i = 0; i < cnt; i++) {
        size_t cur = idx ? idx[i] : i, prev = idx ? idx[(i + cnt - 1) % cnt] : (i + cnt - 1) % cnt;
        arc[i] = (place_arc_t){ring_distance(pl->tok[prev].pos, pl->tok[cur].pos, pl->p.m), i};
    }
    radix_sort(arc, tmp, cnt, sizeof *arc);
    /*
     * Walk the pieces from d = 0 upwards; suffix = sum of arcs still > d.
     * Equal arcs get equal shares: the value at the end of their run.
     */
    double suffix = S, x0 = 0, h = 0;
    int k = (int)pl->p.probes;
    size_t run = 0;
    for (size_t i = 0; i < cnt; i++) {
        double c = (double)(cnt - i), x1 = (double)arc[i].arc;
        double g0 = (suffix - c * x0) / S, g1 = (suffix - c * x1) / S;
        if (g1 < 0)
            g1 = 0;
        h += (pow(g0, k) - pow(g1, k)) / c;
        suffix -= x1;
        x0 = x1;
        if (i + 1 == cnt || arc[i + 1].arc != arc[i].arc) {
            for (; run <= i; run++)
                share[arc[run].token] = h;
        }
    }
    free(arc);
    free(tmp);
    return 0;
}

/* zs[i]: the chance that zone_pick of node i's zone picks node i. */
static int zone_node_shares(const ring_place_t *pl, double *zs)
{
    memset(zs, 0, pl->n * sizeof *zs);
    double *tmp = malloc(pl->nt * sizeof *tmp);
    if (!tmp)
        return -ENOMEM;
    for (size_t z = 0; z < pl->nzones; z++) {
        size_t lo = pl->zstart[z], cnt = pl->zstart[z + 1] - lo;
        if (pl->znodes[z] == 1) {
            zs[pl->tok[pl->ztok[lo]].node] = 1;
            continue;
        }
        int rc = token_shares(pl, pl->ztok + lo, cnt, tmp);
        if (rc < 0) {
            free(tmp);
            return rc;
        }
        for (size_t i = 0; i < cnt; i++)
            zs[pl->tok[pl->ztok[lo + i]].node] += tmp[i];
    }
    free(tmp);
    return 0;
}

int ring_place_shares(const ring_place_t *pl, size_t r, double *primary, double *copies)
{
    double *share = malloc(pl->nt * sizeof *share);
    double *zsec = calloc(pl->nzones, sizeof *zsec), *zs = malloc(pl->n * sizeof *zs);
    int rc = -ENOMEM;
    if (!share || !zsec || !zs)
        goto out;
    rc = token_shares(pl, NULL, pl->nt, share);
    if (rc < 0)
        goto out;
    if (primary)
        memset(primary, 0, pl->n * sizeof *primary);
    if (copies)
        memset(copies, 0, pl->n * sizeof *copies);
    bool zones = zone_mode(pl, r);
    size_t set[RING_PLACE_REPLICAS_MAX];
    for (size_t t = 0; t < pl->nt; t++) {
        if (primary)
            primary[pl->tok[t].node] += share[t];
        if (!copies)
            continue;
        size_t got = walk(pl, t, r, zones, set);
        if (!zones) {
            for (size_t k = 0; k < got; k++)
                copies[set[k]] += share[t];
            continue;
        }
        copies[pl->tok[t].node] += share[t];
        for (size_t k = 1; k < got; k++)
            zsec[set[k]] += share[t];
    }
    if (copies && zones) {
        /* A further zone's copy goes to its nodes by their in-zone shares. */
        rc = zone_node_shares(pl, zs);
        if (rc < 0)
            goto out;
        for (size_t i = 0; i < pl->n; i++)
            copies[i] += zsec[pl->zone_ix[i]] * zs[i];
    }
    rc = 0;
out:
    free(share);
    free(zsec);
    free(zs);
    return rc;
}

static int cmp_node_id(const void *a, const void *b)
{
    const ring_place_node_t *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

/*
 * Every node of small is in big with the same weight and zone: otherwise a
 * key could change primary token without changing replica set (a re-weight),
 * and the token merge below would not mean what it says.
 */
static int superset(const ring_place_t *small, const ring_place_t *big)
{
    ring_place_node_t *sorted = malloc(big->n * sizeof *sorted);
    if (!sorted)
        return -ENOMEM;
    memcpy(sorted, big->nodes, big->n * sizeof *sorted);
    qsort(sorted, big->n, sizeof *sorted, cmp_node_id);
    int rc = 0;
    for (size_t i = 0; i < small->n && rc == 0; i++) {
        const ring_place_node_t *b =
            bsearch(&small->nodes[i], sorted, big->n, sizeof *sorted, cmp_node_id);
        if (!b || b->weight != small->nodes[i].weight || b->zone != small->nodes[i].zone)
            rc = -EINVAL;
    }
    free(sorted);
    return rc;
}

typedef struct {
    ring_id_t id;
    size_t ix;
} place_id_ix_t;

static int cmp_id_ix(const void *a, const void *b)
{
    const place_id_ix_t *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* The nodes' (id, index) sorted by id; NULL on no memory. */
static place_id_ix_t *sorted_ids(const ring_place_t *pl)
{
    place_id_ix_t *v = malloc(pl->n * sizeof *v);
    if (!v)
        return NULL;
    for (size_t i = 0; i < pl->n; i++)
        v[i] = (place_id_ix_t){pl->nodes[i].id, i};
    qsort(v, pl->n, sizeof *v, cmp_id_ix);
    return v;
}

/* Index of the node with this id, or -1. */
static long find_node(const place_id_ix_t *sorted, size_t n, ring_id_t id)
{
    place_id_ix_t key = {id, 0};
    const place_id_ix_t *hit = bsearch(&key, sorted, n, sizeof *sorted, cmp_id_ix);
    return hit ? (long)hit->ix : -1;
}

int ring_place_moved(const ring_place_t *small, const ring_place_t *big, size_t r, double *fraction)
{
    if (memcmp(&small->p, &big->p, sizeof small->p) != 0 || small->nt > big->nt)
        return -EINVAL;
    int rc = superset(small, big);
    if (rc < 0)
        return rc;
    bool zs_mode = zone_mode(small, r), zb_mode = zone_mode(big, r);
    double *share = malloc(big->nt * sizeof *share), *zsb = malloc(big->n * sizeof *zsb);
    double *newshare = calloc(big->nzones, sizeof *newshare);
    place_id_ix_t *small_ids = sorted_ids(small), *big_ids = sorted_ids(big);
    long *to_big = malloc(small->n * sizeof *to_big);
    rc = -ENOMEM;
    if (!share || !zsb || !newshare || !small_ids || !big_ids || !to_big)
        goto out;
    rc = token_shares(big, NULL, big->nt, share);
    if (rc == 0 && zb_mode)
        rc = zone_node_shares(big, zsb);
    if (rc < 0)
        goto out;
    /* newshare[z]: the chance that zone z of big picks one of its new nodes. */
    if (zb_mode)
        for (size_t i = 0; i < big->n; i++)
            if (find_node(small_ids, small->n, big->nodes[i].id) < 0)
                newshare[big->zone_ix[i]] += zsb[i];
    for (size_t i = 0; i < small->n; i++)
        to_big[i] = find_node(big_ids, big->n, small->nodes[i].id); /* >= 0: superset */

    /*
     * A key whose primary token in big is an old token t had t as its primary
     * token in small too (new tokens only shorten probe distances); a key
     * whose primary token is new moved. For an old t, what changes is the
     * rest of the set: decided by the walks from t, and in zone mode by the
     * picks inside the further zones, which change only to a new node of
     * that zone (again: new tokens only shorten distances), independently
     * per zone.
     */
    size_t s = 0, matched = 0;
    double moved = 0;
    size_t set_b[RING_PLACE_REPLICAS_MAX], set_s[RING_PLACE_REPLICAS_MAX];
    for (size_t t = 0; t < big->nt; t++) {
        const place_token_t *bt = &big->tok[t];
        bool old = false;
        if (s < small->nt) {
            const place_token_t *st = &small->tok[s];
            old = st->pos == bt->pos && st->index == bt->index && st->node_id == bt->node_id;
        }
        if (!old) {
            moved += share[t];
            continue;
        }
        size_t nb = walk(big, t, r, zb_mode, set_b), ns = walk(small, s, r, zs_mode, set_s);
        s++;
        matched++;
        double same = 0;
        if (nb != ns) {
            same = 0;
        } else if (!zb_mode) {
            /* Distinct nodes in both: the walks decide. */
            same = 1;
            for (size_t i = 0; i < ns && same > 0; i++) {
                bool found = false;
                for (size_t j = 0; j < nb && !found; j++)
                    found = to_big[set_s[i]] == (long)set_b[j];
                same = found;
            }
        } else if (zs_mode) {
            /* Zones in both: the same zones, then no further zone picks a new node. */
            same = 1;
            for (size_t i = 0; i < ns && same > 0; i++) {
                bool found = false;
                for (size_t j = 0; j < nb && !found; j++)
                    found = small->zval[set_s[i]] == big->zval[set_b[j]];
                if (!found)
                    same = 0;
            }
            for (size_t j = 1; j < nb && same > 0; j++)
                same *= 1 - newshare[set_b[j]];
        } else {
            /*
             * Nodes in small, zones in big (the join brought the r-th zone):
             * small's set has r nodes in fewer than r zones, big's has one
             * per zone, so every set changed.
             */
            same = 0;
        }
        moved += share[t] * (1 - same);
    }
    rc = matched == small->nt ? 0 : -EINVAL;
    if (rc == 0)
        *fraction = moved;
out:
    free(share);
    free(zsb);
    free(newshare);
    free(small_ids);
    free(big_ids);
    free(to_big);
    return rc;
}

static unsigned part_shift(unsigned m)
{
    return m > RING_PLACE_PART_BITS ? m - RING_PLACE_PART_BITS : 0;
}

uint32_t ring_place_part_count(unsigned m)
{
    return (uint32_t)1 << (m - part_shift(m));
}

uint32_t ring_place_part_of(ring_id_t pos, unsigned m)
{
    return (uint32_t)((pos & ring_mask(m)) >> part_shift(m));
}

ring_id_t ring_place_part_pos(uint32_t part, unsigned m)
{
    return ((ring_id_t)part << part_shift(m)) & ring_mask(m);
}

void ring_place_part_range(uint32_t part, unsigned m, ring_id_t *lo, ring_id_t *hi)
{
    ring_id_t first = ring_place_part_pos(part, m);
    ring_id_t span = ((ring_id_t)1 << part_shift(m)) - 1;
    *lo = (first - 1) & ring_mask(m);
    *hi = first + span;
}
