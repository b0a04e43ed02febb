/*
 * ringsim — lookup path lengths and key balance of a simulated Chord ring.
 *
 * Runs ringlib's real routing (ring_state_route via ring_sim) over N nodes
 * with random ids, so the hop counts are those the daemon would produce on a
 * converged ring. The load figure is the largest node's share of the
 * identifier space over the mean share (what it owns of uniformly hashed
 * keys in expectation); the sampled variant counts the lookup keys.
 */
#include "ring_sim.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
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
    fprintf(f, "usage: ringsim --nodes N --lookups L [--seed S] [--id-bits M] [--json]\n");
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

int main(int argc, char **argv)
{
    uint64_t nodes = 0, lookups = 0, seed = 1, bits = 64;
    bool json = false;
    static const struct option opts[] = {
        {"nodes", required_argument, NULL, 'n'},
        {"lookups", required_argument, NULL, 'l'},
        {"seed", required_argument, NULL, 's'},
        {"id-bits", required_argument, NULL, 'm'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        uint64_t *dst = c == 'n' ? &nodes : c == 'l' ? &lookups : c == 's' ? &seed : &bits;
        switch (c) {
        case 'n':
        case 'l':
        case 's':
        case 'm':
            if (parse_u64(optarg, dst) < 0) {
                fprintf(stderr, "ringsim: --%s needs a non-negative integer, got '%s'\n",
                        opts[c == 'n'   ? 0
                             : c == 'l' ? 1
                             : c == 's' ? 2
                                        : 3]
                            .name,
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

    /* Exact share of the identifier space: node k owns (id[k-1], id[k]]. */
    uint64_t max_arc = 0;
    for (size_t k = 0; k < nodes; k++) {
        ring_id_t prev = ids[(k + nodes - 1) % nodes];
        uint64_t arc = nodes == 1 ? ring_mask(m) : ring_distance(prev, ids[k], m);
        if (arc > max_arc)
            max_arc = arc;
    }
    double mean_arc = ((double)ring_mask(m) + 1.0) / (double)nodes;
    double max_load_ratio = (double)max_arc / mean_arc;

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
        ring_id_t *pos = bsearch(&r.owner, ids, nodes, sizeof *ids, cmp_u64);
        owned[pos - ids]++;
    }
    double avg = lookups ? sum / (double)lookups : 0;
    unsigned p99 = 0, max_hops = 0;
    uint32_t max_owned = 0;
    if (lookups) {
        qsort(hops, lookups, sizeof *hops, cmp_uint);
        size_t idx = (size_t)ceil(0.99 * (double)lookups) - 1;
        p99 = hops[idx];
        max_hops = hops[lookups - 1];
    }
    for (size_t k = 0; k < nodes; k++)
        if (owned[k] > max_owned)
            max_owned = owned[k];
    double sampled = lookups ? (double)max_owned / ((double)lookups / (double)nodes) : 0;
    double half_log = 0.5 * log2((double)nodes);

    if (json)
        printf("{\"nodes\":%" PRIu64 ",\"lookups\":%" PRIu64 ",\"seed\":%" PRIu64
               ",\"id_bits\":%u,\"avg_hops\":%.3f,\"p99_hops\":%u,\"max_hops\":%u,"
               "\"half_log2_n\":%.3f,\"max_load_ratio\":%.3f,\"max_load_ratio_sampled\":%.3f}\n",
               nodes, lookups, seed, m, avg, p99, max_hops, half_log, max_load_ratio, sampled);
    else
        printf("nodes %" PRIu64 "  lookups %" PRIu64 "  seed %" PRIu64 "\n"
               "avg hops %.3f (1/2 log2 N = %.3f)  p99 %u  max %u\n"
               "max load ratio %.3f (space)  %.3f (sampled keys)\n",
               nodes, lookups, seed, avg, half_log, p99, max_hops, max_load_ratio, sampled);
    free(hops);
    free(owned);
    free(ids);
    ring_sim_destroy(&sim);
    return 0;
}
