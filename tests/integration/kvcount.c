/*
 * kvcount — a read-modify-write counter incremented by several clients
 * with conditional puts, the way dhtfs updates link counts.
 *
 *   kvcount --peer EP[,EP...] --counter K [--clients C] [--increments N] [--key FILE]
 *   kvcount --peer EP[,EP...] --counter K --read [--key FILE]
 *
 * Each of C clients (its own kvc_t, so its own client id) reads the
 * counter and writes value + 1 with put-if-version (put-if-absent for the
 * first), re-reading on a conflict, until it has N increments applied.
 * Run with DHT_TEST_LOSE_PUT_ANSWER_PCT set, the first answer of writes
 * is thrown away and the write retried: without exactly-once writes a
 * retry of an applied increment fails its condition, the client re-reads
 * and increments again, and the counter ends above the increments made.
 * Prints "applied A unknown U errors E"; with --read, the counter's value.
 * --key FILE: the client key for a secured ring (peers given as EP#KEY),
 * as dhtctl's; the counter's store key is --counter's (it was --key).
 * Exit 0, or 1 if a write ended with an unknown outcome or an error, 2 on
 * bad usage or a key file that cannot be used.
 */
#include "kvclient.h"
#include "log.h"
#include "loop.h"
#include "rpc.h"

#include <errno.h>
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

typedef struct run run_t;

typedef struct {
    run_t *r;
    kvc_t *kvc;
    unsigned applied;
    kv_version_t version;
    bool exists;
    unsigned long value;
} client_t;

struct run {
    loop_t *loop;
    const char *key;
    unsigned increments;
    int active;
    unsigned unknown, errors;
    bool read_only;
    long read_value;
};

static void start_read(client_t *c);

static void client_done(client_t *c)
{
    if (--c->r->active == 0)
        loop_stop(c->r->loop);
}

static void on_put(const kvc_result_t *res, void *arg)
{
    client_t *c = arg;
    if (res->rc == 0) {
        c->applied++;
    } else if (res->rc == -ETIMEDOUT) {
        /* Unknown outcome: this client cannot tell whether it counted. */
        c->r->unknown++;
        fprintf(stderr, "kvcount: unknown outcome: %s\n", res->message ? res->message : "");
    } else if (res->rc != -ESTALE && res->rc != -EEXIST) {
        c->r->errors++;
        fprintf(stderr, "kvcount: put failed: %s (%s)\n", strerror(-res->rc),
                res->message ? res->message : "");
    }
    if (c->applied >= c->r->increments || c->r->unknown || c->r->errors > 20) {
        client_done(c);
        return;
    }
    start_read(c);
}

static void on_get(const kvc_result_t *res, void *arg)
{
    client_t *c = arg;
    if (res->rc != 0 && res->rc != -ENOENT) {
        c->r->errors++;
        if (c->r->errors > 20) {
            client_done(c);
            return;
        }
        start_read(c);
        return;
    }
    c->exists = res->rc == 0;
    c->value = 0;
    if (c->exists) {
        char buf[32];
        size_t n = res->value_len < sizeof buf - 1 ? res->value_len : sizeof buf - 1;
        memcpy(buf, res->value, n);
        buf[n] = '\0';
        c->value = strtoul(buf, NULL, 10);
        c->version = res->version;
    }
    if (c->r->read_only) {
        c->r->read_value = c->exists ? (long)c->value : 0;
        client_done(c);
        return;
    }
    char next[32];
    int len = snprintf(next, sizeof next, "%lu", c->value + 1);
    int rc = kvc_put(c->kvc, c->r->key, strlen(c->r->key), next, (size_t)len,
                     c->exists ? KVC_PUT_IF_VERSION : KVC_PUT_IF_ABSENT, c->version, on_put, c);
    if (rc < 0) {
        c->r->errors++;
        client_done(c);
    }
}

static void start_read(client_t *c)
{
    if (kvc_get(c->kvc, c->r->key, strlen(c->r->key), on_get, c) < 0) {
        c->r->errors++;
        client_done(c);
    }
}

int main(int argc, char **argv)
{
    const char *peers = NULL, *key_path = NULL;
    run_t r = {0};
    int clients = 2;
    long increments = 20;
    static const struct option opts[] = {
        {"peer", required_argument, NULL, 'p'},
        {"counter", required_argument, NULL, 'k'},
        {"clients", required_argument, NULL, 'c'},
        {"increments", required_argument, NULL, 'n'},
        {"read", no_argument, NULL, 'r'},
        {"key", required_argument, NULL, 'K'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'p':
            peers = optarg;
            break;
        case 'k':
            r.key = optarg;
            break;
        case 'c':
            clients = atoi(optarg);
            break;
        case 'n':
            increments = atol(optarg);
            break;
        case 'r':
            r.read_only = true;
            break;
        case 'K':
            key_path = optarg;
            break;
        default:
            goto usage;
        }
    }
    if (!peers || !r.key || clients < 1 || clients > 32 || increments < 1 || increments > 100000)
        goto usage;
    if (r.read_only)
        clients = 1;
    r.increments = (unsigned)increments;
    if (sodium_init() < 0)
        return 2;
    sec_keypair_t key;
    if (key_path) {
        int krc = sec_keypair_load(key_path, &key);
        if (krc < 0) {
            fprintf(stderr, "kvcount: --key %s: %s\n", key_path,
                    krc == -EPERM ? "group or others may access it (chmod 600)" : strerror(-krc));
            return 2;
        }
    }
    log_set_level(LOG_WARN); /* shows that the test hook is active */
    char *list = strdup(peers);
    const char *seeds[16];
    size_t nseeds = 0;
    for (char *tok = strtok(list, ","); tok && nseeds < 16; tok = strtok(NULL, ","))
        seeds[nseeds++] = tok;

    void *zctx = zmq_ctx_new();
    r.loop = loop_new();
    rpc_t *rpc = rpc_new(zctx, r.loop);
    if (rpc && key_path) {
        int krc = rpc_set_key(rpc, &key);
        sodium_memzero(&key, sizeof key);
        if (krc < 0) {
            fprintf(stderr, "kvcount: --key %s: %s\n", key_path, strerror(-krc));
            return 2;
        }
    }
    client_t *cs = calloc((size_t)clients, sizeof *cs);
    if (!r.loop || !rpc || !cs)
        return 2;
    r.active = clients;
    for (int i = 0; i < clients; i++) {
        cs[i].r = &r;
        cs[i].kvc = kvc_new(rpc, r.loop, seeds, nseeds, 1000);
        if (!cs[i].kvc)
            return 2;
    }
    for (int i = 0; i < clients; i++)
        start_read(&cs[i]);
    loop_run(r.loop);

    unsigned applied = 0;
    for (int i = 0; i < clients; i++)
        applied += cs[i].applied;
    if (r.read_only)
        printf("%ld\n", r.read_value);
    else
        printf("applied %u unknown %u errors %u\n", applied, r.unknown, r.errors);
    rpc_destroy(&rpc);
    for (int i = 0; i < clients; i++)
        kvc_destroy(&cs[i].kvc);
    loop_destroy(&r.loop);
    zmq_ctx_term(zctx);
    free(cs);
    free(list);
    return r.unknown || r.errors ? 1 : 0;
usage:
    fprintf(stderr, "usage: kvcount --peer EP[,EP...] --counter K [--clients C] [--increments N] "
                    "[--read] [--key FILE]\n");
    return 2;
}
