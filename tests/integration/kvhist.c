/*
 * kvhist — concurrent clients against the store, with a history checker.
 *
 *   kvhist --peer EP[,EP...] [--clients C] [--keys K] [--seconds S] [--log FILE] [--cas]
 *          [--key FILE] [--prefix P]
 *
 * C clients (one event loop, each with one operation in flight) do random
 * puts and gets on K keys for S seconds. Every operation's invocation and
 * response time, result, value and version are recorded. The checker then
 * verifies, per key:
 *  - every value read was written by some put invoked before the read
 *    returned (no invented or mixed values);
 *  - no read returned a version older than a put that had completed
 *    successfully before the read was invoked (no stale reads), and no
 *    read found the key absent after such a put.
 * Operations that failed (no quorum while a node is down) are allowed:
 * they constrain nothing, except that a failed put's value may be read.
 *
 * --cas: the clients instead increment K counters by read-modify-write: get
 * the counter, put its value + 1 if its version is still the one read (if
 * absent when it was absent), and again. After the run every counter is
 * read once more, and the checker verifies, per counter, that no two
 * acknowledged increments wrote the same value (a lost update: two writes
 * whose condition held against the same version) and that the final value
 * lies between the acknowledged increments and those plus the ones whose
 * outcome is unknown (a write that failed without saying whether it
 * applied), and is at least the largest acknowledged value.
 *
 * --key FILE: the client key for a secured ring (peers given as EP#KEY).
 * --prefix P: keys are named P + "hist-key-N" (a key restricted to a
 * volume reaches only "v/VOL/..."). Refused operations count as failed.
 *
 * Prints a summary line "N passed, M failed" (checked operations, violations)
 * and exits 1 on any violation.
 */
#include "kvclient.h"
#include "log.h"
#include "loop.h"
#include "rpc.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

typedef struct {
    int client;
    bool is_put;
    bool is_final; /* --cas: the read after the run */
    int key;
    uint64_t start_us, end_us;
    int rc;
    char value[32];
    kv_version_t version;
} rec_t;

typedef struct hist hist_t;

typedef struct {
    hist_t *h;
    int id;
    unsigned seq;
    size_t cur; /* index into recs of the op in flight */
    /* --cas: the counter read, to be written back incremented */
    bool have_read, read_found;
    long read_value;
    kv_version_t read_version;
} client_t;

struct hist {
    loop_t *loop;
    kvc_t *kvc;
    rec_t *recs;
    size_t nrecs, cap;
    int keys;
    uint64_t end_ms;
    int active;
    client_t *clients;
    uint64_t rng;
    unsigned errors;
    bool cas;
    const char *prefix;
    int final_next; /* --cas: the next counter the final read looks at */
};

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t next_rand(hist_t *h)
{
    h->rng ^= h->rng << 13;
    h->rng ^= h->rng >> 7;
    h->rng ^= h->rng << 17;
    return h->rng;
}

static void start_op(client_t *c);
static void start_final(hist_t *h);

static void on_done(const kvc_result_t *res, void *arg)
{
    client_t *c = arg;
    hist_t *h = c->h;
    rec_t *r = &h->recs[c->cur];
    r->end_us = now_us();
    r->rc = res->rc;
    if (res->rc == 0) {
        r->version = res->version;
        if (!r->is_put) {
            size_t n = res->value_len < sizeof r->value - 1 ? res->value_len : sizeof r->value - 1;
            memcpy(r->value, res->value, n);
            r->value[n] = '\0';
        }
    } else if (res->rc != -ENOENT && !(h->cas && (res->rc == -EEXIST || res->rc == -ESTALE))) {
        h->errors++; /* a failed condition is a counter's normal race */
    }
    if (h->cas && !r->is_put) {
        c->have_read = res->rc == 0 || res->rc == -ENOENT;
        c->read_found = res->rc == 0;
        c->read_value = res->rc == 0 ? strtol(r->value, NULL, 10) : 0;
        c->read_version = res->version;
    } else {
        c->have_read = false;
    }
    if (r->is_final)
        start_final(h);
    else
        start_op(c);
}

static void start_op(client_t *c)
{
    hist_t *h = c->h;
    if (loop_clock_ms() >= h->end_ms || h->nrecs == h->cap) {
        if (--h->active == 0)
            loop_stop(h->loop);
        return;
    }
    rec_t *r = &h->recs[h->nrecs];
    size_t prev = c->cur;
    c->cur = h->nrecs++;
    memset(r, 0, sizeof *r);
    r->client = c->id;
    r->is_put = h->cas ? c->have_read : next_rand(h) % 2;
    r->key = h->cas && c->have_read ? h->recs[prev].key : (int)(next_rand(h) % (uint64_t)h->keys);
    char key[128];
    snprintf(key, sizeof key, "%shist-key-%d", h->prefix, r->key);
    r->start_us = now_us();
    int rc;
    if (h->cas && r->is_put) {
        snprintf(r->value, sizeof r->value, "%ld", c->read_value + 1);
        rc = kvc_put(h->kvc, key, strlen(key), r->value, strlen(r->value),
                     c->read_found ? KVC_PUT_IF_VERSION : KVC_PUT_IF_ABSENT, c->read_version,
                     on_done, c);
    } else if (r->is_put) {
        snprintf(r->value, sizeof r->value, "c%d-%u", c->id, c->seq++);
        rc = kvc_put(h->kvc, key, strlen(key), r->value, strlen(r->value), KVC_PUT_ALWAYS,
                     (kv_version_t){0, 0}, on_done, c);
    } else {
        rc = kvc_get(h->kvc, key, strlen(key), on_done, c);
    }
    if (rc < 0) {
        fprintf(stderr, "kvhist: cannot submit: %s\n", strerror(-rc));
        exit(2);
    }
}

/* --cas: read every counter once more, one after the other. */
static void start_final(hist_t *h)
{
    if (h->final_next == h->keys || h->nrecs == h->cap) {
        loop_stop(h->loop);
        return;
    }
    client_t *c = &h->clients[0];
    rec_t *r = &h->recs[h->nrecs];
    c->cur = h->nrecs++;
    memset(r, 0, sizeof *r);
    r->is_final = true;
    r->key = h->final_next++;
    char key[128];
    snprintf(key, sizeof key, "%shist-key-%d", h->prefix, r->key);
    r->start_us = now_us();
    if (kvc_get(h->kvc, key, strlen(key), on_done, c) < 0) {
        fprintf(stderr, "kvhist: cannot submit\n");
        exit(2);
    }
}

static unsigned check_cas(const hist_t *h, unsigned *checked)
{
    unsigned bad = 0;
    *checked = 0;
    for (int k = 0; k < h->keys; k++) {
        long acked = 0, unknown = 0, max_acked = 0, final = -1;
        for (size_t i = 0; i < h->nrecs; i++) {
            const rec_t *w = &h->recs[i];
            if (w->key != k)
                continue;
            if (w->is_final) {
                final = w->rc == 0 ? strtol(w->value, NULL, 10) : w->rc == -ENOENT ? 0 : -1;
                continue;
            }
            if (!w->is_put)
                continue;
            if (w->rc == -ETIMEDOUT || w->rc == -ENOSPC) {
                unknown++;
                continue;
            }
            if (w->rc != 0)
                continue;
            (*checked)++;
            acked++;
            long v = strtol(w->value, NULL, 10);
            if (v > max_acked)
                max_acked = v;
            for (size_t j = i + 1; j < h->nrecs; j++) {
                const rec_t *o = &h->recs[j];
                if (o->key == k && o->is_put && !o->is_final && o->rc == 0 &&
                    strcmp(o->value, w->value) == 0) {
                    printf("violation: counter %d: two acknowledged increments wrote %s "
                           "(clients %d and %d): an update was lost\n",
                           k, w->value, w->client, o->client);
                    bad++;
                }
            }
        }
        printf("kvhist: counter %d: %ld acknowledged increments, %ld unknown, final value %ld\n", k,
               acked, unknown, final);
        if (final < 0) {
            printf("violation: counter %d could not be read after the run\n", k);
            bad++;
        } else if (final < acked || final < max_acked || final > acked + unknown) {
            printf("violation: counter %d ends at %ld: expected %ld..%ld (and >= %ld)\n", k, final,
                   acked, acked + unknown, max_acked);
            bad++;
        }
    }
    return bad;
}

/* Orders for check(): by key, then completion (or value, then start). */
static int by_key_end(const void *a, const void *b)
{
    const rec_t *x = *(const rec_t *const *)a, *y = *(const rec_t *const *)b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->end_us < y->end_us ? -1 : x->end_us > y->end_us;
}

static int by_key_value(const void *a, const void *b)
{
    const rec_t *x = *(const rec_t *const *)a, *y = *(const rec_t *const *)b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    int c = strcmp(x->value, y->value);
    if (c)
        return c;
    return x->start_us < y->start_us ? -1 : x->start_us > y->start_us;
}

/* The first of n sorted entries not ordered before probe. */
static size_t lower_bound(const rec_t *const *v, size_t n, const rec_t *probe,
                          int (*cmp)(const void *, const void *))
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cmp(&v[mid], &probe) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/*
 * Returns the number of violations, printing each. Sorted indexes keep it
 * O(n log n): a quadratic scan took minutes on the histories of a 40 s run.
 */
static unsigned check(const hist_t *h, unsigned *checked)
{
    unsigned bad = 0;
    *checked = 0;
    /* done: acknowledged puts by (key, end), newest[i] the highest version of
     * its key among done[..i]; puts: every put by (key, value, start). */
    const rec_t **done = malloc((h->nrecs + 1) * sizeof *done);
    const rec_t **newest = malloc((h->nrecs + 1) * sizeof *newest);
    const rec_t **puts = malloc((h->nrecs + 1) * sizeof *puts);
    if (!done || !newest || !puts) {
        fprintf(stderr, "kvhist: out of memory for the check\n");
        exit(2);
    }
    size_t ndone = 0, nputs = 0;
    for (size_t i = 0; i < h->nrecs; i++) {
        const rec_t *w = &h->recs[i];
        if (!w->is_put)
            continue;
        puts[nputs++] = w;
        if (w->rc == 0)
            done[ndone++] = w;
    }
    qsort(done, ndone, sizeof *done, by_key_end);
    qsort(puts, nputs, sizeof *puts, by_key_value);
    for (size_t i = 0; i < ndone; i++)
        newest[i] = i > 0 && done[i - 1]->key == done[i]->key &&
                            kv_version_cmp(newest[i - 1]->version, done[i]->version) >= 0
                        ? newest[i - 1]
                        : done[i];
    for (size_t i = 0; i < h->nrecs; i++) {
        const rec_t *rd = &h->recs[i];
        if (rd->is_put || (rd->rc != 0 && rd->rc != -ENOENT))
            continue;
        (*checked)++;
        /* The newest put that completed before this read started. */
        rec_t probe = {.key = rd->key, .end_us = rd->start_us};
        size_t at = lower_bound(done, ndone, &probe, by_key_end);
        const rec_t *must = at > 0 && done[at - 1]->key == rd->key ? newest[at - 1] : NULL;
        if (rd->rc == 0) {
            /* A put of this value invoked before the read returned. */
            probe = (rec_t){.key = rd->key, .start_us = 0};
            memcpy(probe.value, rd->value, sizeof probe.value);
            at = lower_bound(puts, nputs, &probe, by_key_value);
            if (at == nputs || puts[at]->key != rd->key ||
                strcmp(puts[at]->value, rd->value) != 0 || puts[at]->start_us > rd->end_us) {
                printf("violation: read of key %d returned '%s', which no put wrote\n", rd->key,
                       rd->value);
                bad++;
                continue;
            }
        }
        if (must && rd->rc == -ENOENT) {
            printf("violation: read of key %d found nothing after put '%s' had completed\n",
                   rd->key, must->value);
            bad++;
        } else if (must && kv_version_cmp(rd->version, must->version) < 0) {
            printf("violation: read of key %d returned '%s', older than completed put '%s'\n",
                   rd->key, rd->value, must->value);
            bad++;
        }
    }
    free(done);
    free(newest);
    free(puts);
    return bad;
}

int main(int argc, char **argv)
{
    const char *peers = "tcp://127.0.0.1:7000", *log_path = NULL, *key_path = NULL, *prefix = "";
    int clients = 4, keys = 5, seconds = 10;
    bool cas = false;
    static const struct option opts[] = {
        {"peer", required_argument, NULL, 'p'},
        {"clients", required_argument, NULL, 'c'},
        {"keys", required_argument, NULL, 'k'},
        {"seconds", required_argument, NULL, 's'},
        {"log", required_argument, NULL, 'l'},
        {"cas", no_argument, NULL, 'C'},
        {"key", required_argument, NULL, 'K'},
        {"prefix", required_argument, NULL, 'P'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'p':
            peers = optarg;
            break;
        case 'c':
            clients = atoi(optarg);
            break;
        case 'k':
            keys = atoi(optarg);
            break;
        case 's':
            seconds = atoi(optarg);
            break;
        case 'l':
            log_path = optarg;
            break;
        case 'C':
            cas = true;
            break;
        case 'K':
            key_path = optarg;
            break;
        case 'P':
            prefix = optarg;
            break;
        default:
            fprintf(stderr, "usage: kvhist --peer EP[,EP...] [--clients C] [--keys K] "
                            "[--seconds S] [--log FILE] [--cas] [--key FILE] [--prefix P]\n");
            return 2;
        }
    }
    if (clients < 1 || clients > 64 || keys < 1 || seconds < 1 || seconds > 600 ||
        strlen(prefix) > 64) {
        fprintf(stderr, "kvhist: clients 1..64, keys >= 1, seconds 1..600, prefix <= 64 bytes\n");
        return 2;
    }
    if (sodium_init() < 0)
        return 2;
    sec_keypair_t key;
    if (key_path) {
        int krc = sec_keypair_load(key_path, &key);
        if (krc < 0) {
            fprintf(stderr, "kvhist: --key %s: %s\n", key_path,
                    krc == -EPERM ? "group or others may access it (chmod 600)" : strerror(-krc));
            return 2;
        }
    }
    log_set_level(LOG_ERROR);
    char *list = strdup(peers);
    const char *seeds[16];
    size_t nseeds = 0;
    for (char *tok = strtok(list, ","); tok && nseeds < 16; tok = strtok(NULL, ","))
        seeds[nseeds++] = tok;

    hist_t h = {0};
    void *zctx = zmq_ctx_new();
    h.loop = loop_new();
    rpc_t *rpc = rpc_new(zctx, h.loop);
    if (rpc && key_path) {
        rpc_set_key(rpc, &key);
        sodium_memzero(&key, sizeof key);
    }
    h.kvc = kvc_new(rpc, h.loop, seeds, nseeds, 1000);
    h.cap = 2000000;
    h.recs = calloc(h.cap, sizeof *h.recs);
    h.clients = calloc((size_t)clients, sizeof *h.clients);
    if (!h.kvc || !h.recs || !h.clients) {
        fprintf(stderr, "kvhist: cannot initialise\n");
        return 2;
    }
    h.keys = keys;
    h.cas = cas;
    h.prefix = prefix;
    h.rng = (uint64_t)now_us() | 1;
    h.end_ms = loop_clock_ms() + (uint64_t)seconds * 1000u;
    h.active = clients;
    for (int i = 0; i < clients; i++) {
        h.clients[i] = (client_t){.h = &h, .id = i};
        start_op(&h.clients[i]);
    }
    loop_run(h.loop);
    if (cas) {
        start_final(&h);
        loop_run(h.loop);
    }

    if (log_path) {
        FILE *f = fopen(log_path, "w");
        for (size_t i = 0; f && i < h.nrecs; i++) {
            const rec_t *r = &h.recs[i];
            char v[KV_VERSION_STR_MAX];
            kv_version_to_str(r->version, v);
            fprintf(f, "%d %s key%d %" PRIu64 " %" PRIu64 " rc=%d %s %s\n", r->client,
                    r->is_put ? "put" : "get", r->key, r->start_us, r->end_us, r->rc,
                    r->value[0] ? r->value : "-", v);
        }
        if (f)
            fclose(f);
    }
    unsigned checked, bad = cas ? check_cas(&h, &checked) : check(&h, &checked);
    printf("kvhist: %zu operations, %u failed (unavailable), %u reads checked\n", h.nrecs, h.errors,
           checked);
    printf("%u passed, %u failed\n", checked - bad, bad);
    rpc_destroy(&rpc);
    kvc_destroy(&h.kvc);
    loop_destroy(&h.loop);
    zmq_ctx_term(zctx);
    free(h.recs);
    free(h.clients);
    free(list);
    return bad ? 1 : 0;
}
