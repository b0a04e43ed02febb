/*
 * kvkeys — write or check a numbered set of keys in one process, the way
 * the ring tests' put_keys/check_keys did with one dhtctl per key.
 *
 *   kvkeys --peer EP[,EP...] put PREFIX COUNT
 *   kvkeys --peer EP[,EP...] check PREFIX COUNT
 *
 * Key PREFIX-i holds value-PREFIX-i. Key i enters the ring through the
 * i-th peer of the list (round robin), each peer with its own client, as
 * consecutive dhtctl calls through rotating nodes did; a few operations
 * are in flight at once. A dhtctl start costs ~0.1 s under ASan, and the
 * tests read thousands of keys, so this keeps the sanitizer run short.
 * Every failure is reported (the first 10 in full); exit 0 when every put
 * was acknowledged or every key read back its value, 1 otherwise, 2 on
 * bad usage.
 */
#include "endpoint.h"
#include "kvclient.h"
#include "log.h"
#include "loop.h"
#include "rpc.h"

#include <errno.h>
#include <getopt.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

enum { PEERS_MAX = 16, IN_FLIGHT = 16, REPORT_MAX = 10 };

typedef struct {
    loop_t *loop;
    kvc_t *kvc[PEERS_MAX];
    char peer[PEERS_MAX][ENDPOINT_MAX];
    size_t npeers;
    bool put;
    const char *prefix;
    long count, next, done;
    unsigned failed;
} run_t;

typedef struct {
    run_t *r;
    long i;
} op_t;

static void start_next(run_t *r);

static void failure(run_t *r, long i, const char *what, const char *msg)
{
    if (r->failed++ < REPORT_MAX)
        fprintf(stderr, "kvkeys: %s %s-%ld through %s: %s%s%s\n", r->put ? "put" : "get", r->prefix,
                i, r->peer[(size_t)i % r->npeers], what, msg ? ": " : "", msg ? msg : "");
}

static void on_done(const kvc_result_t *res, void *arg)
{
    op_t *op = arg;
    run_t *r = op->r;
    if (res->rc < 0) {
        failure(r, op->i, strerror(-res->rc), res->message);
    } else if (!r->put) {
        char want[256];
        int n = snprintf(want, sizeof want, "value-%s-%ld", r->prefix, op->i);
        if ((size_t)n != res->value_len || memcmp(want, res->value, (size_t)n) != 0) {
            char got[80];
            int len = res->value_len < 64 ? (int)res->value_len : 64;
            snprintf(got, sizeof got, "read '%.*s'", len, (const char *)res->value);
            failure(r, op->i, got, NULL);
        }
    }
    free(op);
    r->done++;
    start_next(r);
}

static void start_next(run_t *r)
{
    if (r->done == r->count) {
        loop_stop(r->loop);
        return;
    }
    if (r->next == r->count)
        return;
    long i = r->next++;
    op_t *op = malloc(sizeof *op);
    char key[256], value[256];
    int klen = snprintf(key, sizeof key, "%s-%ld", r->prefix, i);
    int vlen = snprintf(value, sizeof value, "value-%s-%ld", r->prefix, i);
    int rc = -ENOMEM;
    if (op) {
        *op = (op_t){.r = r, .i = i};
        kvc_t *kvc = r->kvc[(size_t)i % r->npeers];
        rc = r->put ? kvc_put(kvc, key, (size_t)klen, value, (size_t)vlen, KVC_PUT_ALWAYS,
                              (kv_version_t){0}, on_done, op)
                    : kvc_get(kvc, key, (size_t)klen, on_done, op);
    }
    if (rc < 0) {
        free(op);
        failure(r, i, strerror(-rc), "not sent");
        r->done++;
        start_next(r);
    }
}

int main(int argc, char **argv)
{
    run_t r = {0};
    char *list = NULL;
    if (argc != 6 || strcmp(argv[1], "--peer") != 0)
        goto usage;
    r.put = strcmp(argv[3], "put") == 0;
    if (!r.put && strcmp(argv[3], "check") != 0)
        goto usage;
    r.prefix = argv[4];
    char *end;
    r.count = strtol(argv[5], &end, 10);
    if (*end || r.count < 1 || r.count > 1000000 || strlen(r.prefix) > 128)
        goto usage;
    list = strdup(argv[2]);
    if (!list)
        return 1;
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        const char *why;
        if (r.npeers == PEERS_MAX)
            goto usage;
        if (endpoint_normalize(tok, r.peer[r.npeers], ENDPOINT_MAX, &why) < 0) {
            fprintf(stderr, "kvkeys: bad endpoint '%s': %s\n", tok, why);
            goto usage;
        }
        r.npeers++;
    }
    if (r.npeers == 0 || sodium_init() < 0)
        goto usage;
    log_set_level(LOG_ERROR);

    void *zctx = zmq_ctx_new();
    r.loop = loop_new();
    rpc_t *rpc = r.loop ? rpc_new(zctx, r.loop) : NULL;
    if (!rpc)
        return 1;
    for (size_t p = 0; p < r.npeers; p++) {
        /* dhtctl's --timeout-ms 2000 of lib.sh's ctl. */
        const char *seed = r.peer[p];
        r.kvc[p] = kvc_new(rpc, r.loop, &seed, 1, 2000);
        if (!r.kvc[p])
            return 1;
    }
    for (int k = 0; k < IN_FLIGHT; k++)
        start_next(&r);
    loop_run(r.loop);
    rpc_destroy(&rpc);
    for (size_t p = 0; p < r.npeers; p++)
        kvc_destroy(&r.kvc[p]);
    loop_destroy(&r.loop);
    zmq_ctx_term(zctx);
    free(list);
    if (r.failed)
        fprintf(stderr, "kvkeys: %u of %ld %s failed\n", r.failed, r.count,
                r.put ? "puts" : "reads");
    return r.failed ? 1 : 0;
usage:
    free(list);
    fprintf(stderr, "usage: kvkeys --peer EP[,EP...] put|check PREFIX COUNT\n");
    return 2;
}
