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
        pl->nzones += scratch[i] != scratch[i - 1];

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

/* The replica set reached by walking clockwise from token `start`. */
static size_t walk(const ring_place_t *pl, size_t start, size_t r, size_t *out)
{
    if (r > RING_PLACE_REPLICAS_MAX)
        r = RING_PLACE_REPLICAS_MAX;
    size_t want = r < pl->n ? r : pl->n;
    bool zones = pl->nzones >= r;
    uint32_t zone[RING_PLACE_REPLICAS_MAX];
    size_t got = 0;
    for (size_t s = 0; s < pl->nt && got < want; s++) {
        const place_token_t *t = &pl->tok[(start + s) % pl->nt];
        bool skip = false;
        for (size_t k = 0; k < got && !skip; k++)
            skip = out[k] == t->node || (zones && zone[k] == pl->nodes[t->node].zone);
        if (skip)
            continue;
        zone[got] = pl->nodes[t->node].zone;
        out[got++] = t->node;
    }
    return got;
}

size_t ring_place_replicas(const ring_place_t *pl, ring_id_t pos, size_t r, size_t *out)
{
    return walk(pl, primary_token(pl, pos & ring_mask(pl->p.m)), r, out);
}

typedef struct {
    uint64_t arc; /* radix key: first member */
    uint64_t token;
} place_arc_t;

/* share[t] for every token: the closed form of the file comment. */
static int token_shares(const ring_place_t *pl, double *share)
{
    size_t nt = pl->nt;
    double S = ldexp(1.0, (int)pl->p.m);
    place_arc_t *arc = malloc(nt * sizeof *arc), *tmp = malloc(nt * sizeof *tmp);
    if (!arc || !tmp) {
        free(arc);
        free(tmp);
        return -ENOMEM;
    }
    if (nt == 1) {
        share[0] = 1;
        free(arc);
        free(tmp);
        return 0;
    }
    for (size_t t = 0; t < nt; t++) {
        ring_id_t prev = pl->tok[(t + nt - 1) % nt].pos;
        arc[t] = (place_arc_t){ring_distance(prev, pl->tok[t].pos, pl->p.m), t};
    }
    radix_sort(arc, tmp, nt, sizeof *arc);
    /*
     * Walk the pieces from d = 0 upwards; suffix = sum of arcs still > d.
     * Equal arcs get equal shares: the value at the end of their run.
     */
    double suffix = S, x0 = 0, h = 0;
    int k = (int)pl->p.probes;
    size_t run = 0;
    for (size_t i = 0; i < nt; i++) {
        double c = (double)(nt - i), x1 = (double)arc[i].arc;
        double g0 = (suffix - c * x0) / S, g1 = (suffix - c * x1) / S;
        if (g1 < 0)
            g1 = 0;
        h += (pow(g0, k) - pow(g1, k)) / c;
        suffix -= x1;
        x0 = x1;
        if (i + 1 == nt || arc[i + 1].arc != arc[i].arc) {
            for (; run <= i; run++)
                share[arc[run].token] = h;
        }
    }
    free(arc);
    free(tmp);
    return 0;
}

int ring_place_shares(const ring_place_t *pl, size_t r, double *primary, double *copies)
{
    double *share = malloc(pl->nt * sizeof *share);
    if (!share)
        return -ENOMEM;
    int rc = token_shares(pl, share);
    if (rc < 0) {
        free(share);
        return rc;
    }
    if (primary)
        memset(primary, 0, pl->n * sizeof *primary);
    if (copies)
        memset(copies, 0, pl->n * sizeof *copies);
    size_t set[RING_PLACE_REPLICAS_MAX];
    for (size_t t = 0; t < pl->nt; t++) {
        if (primary)
            primary[pl->tok[t].node] += share[t];
        if (copies) {
            size_t got = walk(pl, t, r, set);
            for (size_t k = 0; k < got; k++)
                copies[set[k]] += share[t];
        }
    }
    free(share);
    return 0;
}

static bool same_set(const ring_place_t *a, const size_t *sa, size_t na, const ring_place_t *b,
                     const size_t *sb, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++) {
        bool found = false;
        for (size_t j = 0; j < nb && !found; j++)
            found = a->nodes[sa[i]].id == b->nodes[sb[j]].id;
        if (!found)
            return false;
    }
    return true;
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

int ring_place_moved(const ring_place_t *small, const ring_place_t *big, size_t r, double *fraction)
{
    if (memcmp(&small->p, &big->p, sizeof small->p) != 0 || small->nt > big->nt)
        return -EINVAL;
    int rc = superset(small, big);
    if (rc < 0)
        return rc;
    double *share = malloc(big->nt * sizeof *share);
    if (!share)
        return -ENOMEM;
    rc = token_shares(big, share);
    if (rc < 0) {
        free(share);
        return rc;
    }
    /*
     * A key whose primary token in big is an old token t had t as its primary
     * token in small too (new tokens only shorten probe distances), so its
     * old set is small's walk from t; a key whose primary token is new moved.
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
        size_t nb = walk(big, t, r, set_b), ns = walk(small, s, r, set_s);
        if (!same_set(small, set_s, ns, big, set_b, nb))
            moved += share[t];
        s++;
        matched++;
    }
    free(share);
    if (matched != small->nt)
        return -EINVAL;
    *fraction = moved;
    return 0;
}
