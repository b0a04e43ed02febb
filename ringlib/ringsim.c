/*
 * ringsim — lookup path lengths and key balance of a simulated Chord ring.
 *
 * Runs ringlib's real routing (ring_state_route via ring_sim) over N nodes
 * with random ids, so the hop counts are those the daemon would produce on a
 * converged ring (routing is over the nodes' Chord ids, one per node). Key
 * balance is that of ring_place (tokens per node, probes per key): the load
 * figure is the largest physical node's exact share of uniformly hashed keys
 * as primary over the mean share; the sampled variant counts the lookup
 * keys' primaries. moved_on_join / moved_on_leave are the exact fractions of
 * keys whose replica set changes when one node joins / the first one leaves.
 * max_load_ratio_one_id keeps the old figure: one position per node.
 */
#include "ring_place.h"
#include "ring_sim.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_uint(const void *a, const void *b)
{
    unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
    return x < y ? -1 : x > y;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ringsim --nodes N --lookups L [--seed S] [--id-bits M] [--tokens T]\n"
            "               [--probes K] [--replicas R] [--zones Z] [--heavy H] [--json]\n"
            "  --tokens T    positions per node (default %d)\n"
            "  --probes K    probe positions per key (default %d; 1 = plain consistent hashing)\n"
            "  --replicas R  copies per key for the copy balance and moved fractions (default 3)\n"
            "  --zones Z     node i (in id order) in zone i mod Z (default: one zone per node)\n"
            "  --heavy H     the first H nodes (in id order) have weight 2, the others 1;\n"
            "                load ratios are then over each node's fair (weighted) share\n",
            RING_PLACE_TOKENS_DEFAULT, RING_PLACE_PROBES_DEFAULT);
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-')
        return -EINVAL;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || *end)
        return -EINVAL;
    *out = v;
    return 0;
}

/* The simulated members: zones and weights are functions of the id order. */
typedef struct {
    unsigned m, tokens, probes;
    size_t zones; /* node i in zone i mod zones; 0: each node its own */
    size_t heavy; /* nodes 0 .. heavy-1 (in id order) have weight 2, the others 1 */
    size_t r;     /* replicas */
} sim_cfg_t;

static uint32_t sim_weight(const sim_cfg_t *c, size_t i)
{
    return i < c->heavy ? 2 : 1;
}

typedef struct {
    ring_place_t *pl; /* the placement of all nodes; the caller destroys it */
    /* Shares over the fair share (weight / total weight), max and min. */
    double max_primary, min_primary, max_copies, min_copies;
    /* Mean primary share of a weight-2 node over that of a weight-1 node; 0 if none. */
    double heavy_ratio;
    bool have_join; /* false when the id space has no room for one more node */
    double moved_on_join, moved_on_leave;
    double ideal_join, ideal_leave; /* r x the joiner's (leaver's) fair share */
} ring_place_metrics_t;

static int build_place(const sim_cfg_t *c, const ring_id_t *ids, size_t n, size_t skip,
                       ring_id_t extra, bool with_extra, ring_place_t **out)
{
    size_t zones = c->zones;
    ring_place_node_t *nv = malloc((n + 1) * sizeof *nv);
    if (!nv)
        return -ENOMEM;
    /*
     * Zones: node i (in id order) is in zone i mod zones; zones == 0 gives
     * each node its own, so replicas are simply on distinct nodes. The
     * joiner is node n.
     */
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (i != skip)
            nv[k++] =
                (ring_place_node_t){ids[i], sim_weight(c, i), (uint32_t)(zones ? i % zones : i)};
    if (with_extra)
        nv[k++] = (ring_place_node_t){extra, 1, (uint32_t)(zones ? n % zones : n)};
    ring_place_params_t p = {c->m, c->tokens, c->probes};
    int rc = ring_place_new(&p, nv, k, out);
    free(nv);
    return rc;
}

/*
 * Balance and movement of ring_place over these ids (sorted, distinct). The
 * joining id and the leaving node come from their own stream of the seed, so
 * the lookups (and their hop counts) are those of earlier versions.
 */
static int place_metrics(const sim_cfg_t *c, const ring_id_t *ids, size_t n, uint64_t seed,
                         ring_place_metrics_t *pm)
{
    unsigned m = c->m;
    size_t r = c->r;
    *pm = (ring_place_metrics_t){0};
    ring_place_t *pl = NULL, *other = NULL;
    double *primary = malloc(n * sizeof *primary), *copies = malloc(n * sizeof *copies);
    int rc = -ENOMEM;
    if (!primary || !copies)
        goto out;
    rc = build_place(c, ids, n, SIZE_MAX, 0, false, &pl);
    if (rc < 0)
        goto out;
    rc = ring_place_shares(pl, r, primary, copies);
    if (rc < 0)
        goto out;
    double total = 0, heavy_sum = 0, light_sum = 0, rr = (double)(r < n ? r : n);
    for (size_t i = 0; i < n; i++)
        total += sim_weight(c, i);
    pm->min_primary = pm->min_copies = INFINITY;
    for (size_t i = 0; i < n; i++) {
        double fair = sim_weight(c, i) / total;
        pm->max_primary = fmax(pm->max_primary, primary[i] / fair);
        pm->min_primary = fmin(pm->min_primary, primary[i] / fair);
        pm->max_copies = fmax(pm->max_copies, copies[i] / (rr * fair));
        pm->min_copies = fmin(pm->min_copies, copies[i] / (rr * fair));
        if (sim_weight(c, i) == 2)
            heavy_sum += primary[i];
        else
            light_sum += primary[i];
    }
    size_t heavy = c->heavy < n ? c->heavy : n;
    if (heavy && heavy < n)
        pm->heavy_ratio = (heavy_sum / (double)heavy) / (light_sum / (double)(n - heavy));
    pm->ideal_join = fmin(1.0, (double)r / (total + 1));

    uint64_t rng = seed ^ 0x6a6f696e6c656176ULL; /* "joinleav" */
    pm->have_join = m == 64 || n < ring_mask(m) + 1;
    if (pm->have_join) {
        ring_id_t extra;
        do
            extra = splitmix64(&rng) & ring_mask(m);
        while (bsearch(&extra, ids, n, sizeof *ids, cmp_u64));
        rc = build_place(c, ids, n, SIZE_MAX, extra, true, &other);
        if (rc == 0)
            rc = ring_place_moved(pl, other, r, &pm->moved_on_join);
        ring_place_destroy(&other);
        if (rc < 0)
            goto out;
    }
    if (n > 1) {
        size_t leaver = (size_t)(splitmix64(&rng) % n);
        pm->ideal_leave = fmin(1.0, (double)r * sim_weight(c, leaver) / total);
        rc = build_place(c, ids, n, leaver, 0, false, &other);
        if (rc == 0)
            rc = ring_place_moved(other, pl, r, &pm->moved_on_leave);
        ring_place_destroy(&other);
        if (rc < 0)
            goto out;
    } else {
        pm->moved_on_leave = pm->ideal_leave = 1;
    }
    pm->pl = pl;
    pl = NULL;
    rc = 0;
out:
    ring_place_destroy(&pl);
    free(primary);
    free(copies);
    return rc;
}

int main(int argc, char **argv)
{
    uint64_t nodes = 0, lookups = 0, seed = 1, bits = 64;
    uint64_t tokens = RING_PLACE_TOKENS_DEFAULT, probes = RING_PLACE_PROBES_DEFAULT, replicas = 3;
    uint64_t zones = 0, heavy = 0;
    bool json = false;
    static const struct option opts[] = {
        {"nodes", required_argument, NULL, 'n'},    {"lookups", required_argument, NULL, 'l'},
        {"seed", required_argument, NULL, 's'},     {"id-bits", required_argument, NULL, 'm'},
        {"tokens", required_argument, NULL, 't'},   {"probes", required_argument, NULL, 'k'},
        {"replicas", required_argument, NULL, 'r'}, {"zones", required_argument, NULL, 'z'},
        {"heavy", required_argument, NULL, 'w'},    {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        uint64_t *dst = c == 'n'   ? &nodes
                        : c == 'l' ? &lookups
                        : c == 's' ? &seed
                        : c == 't' ? &tokens
                        : c == 'k' ? &probes
                        : c == 'r' ? &replicas
                        : c == 'z' ? &zones
                        : c == 'w' ? &heavy
                                   : &bits;
        switch (c) {
        case 'n':
        case 'l':
        case 's':
        case 'm':
        case 't':
        case 'k':
        case 'r':
        case 'z':
        case 'w':
            if (parse_u64(optarg, dst) < 0) {
                const char *name = "id-bits";
                for (size_t o = 0; opts[o].name; o++)
                    if (opts[o].val == c)
                        name = opts[o].name;
                fprintf(stderr, "ringsim: --%s needs a non-negative integer, got '%s'\n", name,
                        optarg);
                return 2;
            }
            break;
        case 'j':
            json = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc || nodes == 0 || !ring_bits_valid((unsigned)bits)) {
        if (optind != argc)
            fprintf(stderr, "ringsim: unexpected argument '%s'\n", argv[optind]);
        else if (nodes == 0)
            fprintf(stderr, "ringsim: --nodes must be at least 1\n");
        else
            fprintf(stderr, "ringsim: --id-bits must be between 3 and 64\n");
        usage(stderr);
        return 2;
    }
    if (tokens < 1 || tokens > RING_PLACE_TOKENS_MAX || probes < 1 ||
        probes > RING_PLACE_PROBES_MAX || replicas < 1 || replicas > RING_PLACE_REPLICAS_MAX ||
        zones > UINT32_MAX) {
        fprintf(stderr,
                "ringsim: --tokens is 1..%d, --probes 1..%d, --replicas 1..%d, --zones "
                "below 2^32\n",
                RING_PLACE_TOKENS_MAX, RING_PLACE_PROBES_MAX, RING_PLACE_REPLICAS_MAX);
        return 2;
    }
    unsigned m = (unsigned)bits;
    if (m < 64 && nodes > ring_mask(m) + 1) {
        fprintf(stderr, "ringsim: %" PRIu64 " nodes do not fit in a %u-bit ring\n", nodes, m);
        return 2;
    }

    /* Distinct random ids: draw, sort, redraw the duplicates. */
    uint64_t rng = seed;
    ring_id_t *ids = malloc(nodes * sizeof *ids);
    if (!ids)
        return 1;
    size_t have = 0;
    while (have < nodes) {
        while (have < nodes)
            ids[have++] = splitmix64(&rng) & ring_mask(m);
        qsort(ids, have, sizeof *ids, cmp_u64);
        size_t w = 1;
        for (size_t i = 1; i < have; i++)
            if (ids[i] != ids[w - 1])
                ids[w++] = ids[i];
        have = w;
    }
    ring_sim_t *sim = ring_sim_new(m, 4, ids, nodes);
    if (!sim) {
        fprintf(stderr, "ringsim: out of memory building %" PRIu64 " nodes\n", nodes);
        free(ids);
        return 1;
    }

    /* The old figure: node k owns (id[k-1], id[k]] with one position each. */
    uint64_t max_arc = 0;
    for (size_t k = 0; k < nodes; k++) {
        ring_id_t prev = ids[(k + nodes - 1) % nodes];
        uint64_t arc = nodes == 1 ? ring_mask(m) : ring_distance(prev, ids[k], m);
        if (arc > max_arc)
            max_arc = arc;
    }
    double mean_arc = ((double)ring_mask(m) + 1.0) / (double)nodes;
    double max_load_one_id = (double)max_arc / mean_arc;

    ring_place_metrics_t pm;
    sim_cfg_t cfg = {
        m, (unsigned)tokens, (unsigned)probes, (size_t)zones, (size_t)heavy, (size_t)replicas};
    int prc = place_metrics(&cfg, ids, (size_t)nodes, seed, &pm);
    if (prc < 0) {
        fprintf(stderr, "ringsim: placement failed: %s\n", strerror(-prc));
        return 1;
    }
    ring_place_t *pl = pm.pl;

    unsigned *hops = malloc((lookups ? lookups : 1) * sizeof *hops);
    uint32_t *owned = calloc(nodes, sizeof *owned);
    if (!hops || !owned)
        return 1;
    double sum = 0;
    for (uint64_t q = 0; q < lookups; q++) {
        ring_id_t from = ids[splitmix64(&rng) % nodes];
        ring_id_t key = splitmix64(&rng) & ring_mask(m);
        ring_sim_lookup_t r;
        int rc = ring_sim_lookup(sim, from, key, &r);
        if (rc < 0) {
            fprintf(stderr,
                    "ringsim: lookup of %" PRIx64 " from %" PRIx64 " failed: %s (seed %" PRIu64
                    ")\n",
                    key, from, strerror(-rc), seed);
            return 1;
        }
        hops[q] = r.hops;
        sum += r.hops;
        size_t primary;
        if (ring_place_replicas(pl, key, 1, &primary) == 1)
            owned[primary]++;
    }
    double avg = lookups ? sum / (double)lookups : 0;
    unsigned p99 = 0, max_hops = 0;
    if (lookups) {
        qsort(hops, lookups, sizeof *hops, cmp_uint);
        size_t idx = (size_t)ceil(0.99 * (double)lookups) - 1;
        p99 = hops[idx];
        max_hops = hops[lookups - 1];
    }
    /* Counted keys over each node's fair (weighted) count. */
    double sampled = 0, total_weight = (double)nodes + (double)(heavy < nodes ? heavy : nodes);
    for (size_t k = 0; k < nodes && lookups; k++) {
        double fair = (double)lookups * sim_weight(&cfg, k) / total_weight;
        sampled = fmax(sampled, owned[k] / fair);
    }
    double half_log = 0.5 * log2((double)nodes);

    char moved_join[32] = "null";
    if (pm.have_join)
        snprintf(moved_join, sizeof moved_join, "%.6g", pm.moved_on_join);
    double ideal_join = pm.ideal_join, ideal_leave = pm.ideal_leave;
    char heavy_ratio[32] = "null";
    if (pm.heavy_ratio > 0)
        snprintf(heavy_ratio, sizeof heavy_ratio, "%.3f", pm.heavy_ratio);
    if (json)
        printf("{\"nodes\":%" PRIu64 ",\"lookups\":%" PRIu64 ",\"seed\":%" PRIu64
               ",\"id_bits\":%u,\"avg_hops\":%.3f,\"p99_hops\":%u,\"max_hops\":%u,"
               "\"half_log2_n\":%.3f,\"max_load_ratio\":%.3f,\"max_load_ratio_sampled\":%.3f,"
               "\"tokens\":%" PRIu64 ",\"probes\":%" PRIu64 ",\"replicas\":%" PRIu64
               ",\"zones\":%" PRIu64
               ",\"min_load_ratio\":%.3f,\"max_copies_ratio\":%.3f,\"min_copies_ratio\":%.3f,"
               "\"moved_on_join\":%s,\"moved_on_join_ideal\":%.6g,\"moved_on_leave\":%.6g,"
               "\"moved_on_leave_ideal\":%.6g,\"max_load_ratio_one_id\":%.3f,"
               "\"heavy\":%" PRIu64 ",\"heavy_ratio\":%s,"
               "\"routing\":\"chord over node ids\"}\n",
               nodes, lookups, seed, m, avg, p99, max_hops, half_log, pm.max_primary, sampled,
               tokens, probes, replicas, zones ? zones : nodes, pm.min_primary, pm.max_copies,
               pm.min_copies, moved_join, ideal_join, pm.moved_on_leave, ideal_leave,
               max_load_one_id, heavy, heavy_ratio);
    else
        printf("nodes %" PRIu64 "  lookups %" PRIu64 "  seed %" PRIu64 "  tokens %" PRIu64
               "  probes %" PRIu64 "  replicas %" PRIu64 "\n"
               "avg hops %.3f (1/2 log2 N = %.3f)  p99 %u  max %u\n"
               "max load ratio %.3f (exact)  %.3f (sampled keys)  min %.3f  "
               "(one id per node: max %.3f)\n"
               "copies max/mean %.3f  min/mean %.3f\n"
               "moved on join %s (ideal %.6g)  on leave %.6g (ideal %.6g)\n",
               nodes, lookups, seed, tokens, probes, replicas, avg, half_log, p99, max_hops,
               pm.max_primary, sampled, pm.min_primary, max_load_one_id, pm.max_copies,
               pm.min_copies, moved_join, ideal_join, pm.moved_on_leave, ideal_leave);
    ring_place_destroy(&pl);
    free(hops);
    free(owned);
    free(ids);
    ring_sim_destroy(&sim);
    return 0;
}
