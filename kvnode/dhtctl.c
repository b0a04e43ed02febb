/*
 * dhtctl — admin and client CLI for a dhtfs ring.
 *
 * Each command is a short sequence of requests made through the same async
 * RPC layer the daemon uses, driven by a private event loop that runs until
 * the answer (or the timeout) arrives. Output formats and exit codes are a
 * contract (BRIEF.md section 5): 0 success, 1 not found, 2 usage error,
 * 3 unavailable.
 */
#include "log.h"
#include "loop.h"
#include "rpc.h"
#include "wire.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

enum {
    EXIT_NOTFOUND = 1,
    EXIT_USAGE = 2,
    EXIT_UNAVAILABLE = 3,
    RING_WALK_MAX = 100000,
};

typedef struct {
    void *zctx;
    loop_t *loop;
    rpc_t *rpc;
    unsigned timeout_ms;
    bool json;
} ctl_t;

typedef struct {
    loop_t *loop;
    int rc;
    wire_msg_t *reply;
} wait_t;

static void usage(FILE *f)
{
    fprintf(f, "usage: dhtctl [--peer EP] [--timeout-ms MS] COMMAND [--json]\n"
               "commands:\n"
               "  ring [--json]                         every node in ring order\n"
               "  fingers [--json]                      the peer's finger table\n"
               "  lookup KEY [--iterative|--recursive] [--json]\n"
               "--peer defaults to $DHT_PEER, then tcp://127.0.0.1:7000.\n"
               "exit status: 0 ok, 1 not found, 2 usage error, 3 unavailable\n");
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "dhtctl: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    usage(stderr);
    return EXIT_USAGE;
}

static void on_done(int rc, const wire_msg_t *reply, void *arg)
{
    wait_t *w = arg;
    w->rc = rc;
    if (reply)
        *w->reply = *reply;
    loop_stop(w->loop);
}

/* One request, waited for. Returns 0 or -errno (reply->err_msg on peer errors). */
static int call(ctl_t *ctl, const char *addr, wire_msg_t *req, wire_msg_t *reply)
{
    wait_t w = {ctl->loop, -EINPROGRESS, reply};
    reply->err_msg[0] = '\0';
    int rc = rpc_call(ctl->rpc, addr, req, ctl->timeout_ms, on_done, &w);
    if (rc < 0)
        return rc;
    loop_run(ctl->loop);
    return w.rc;
}

static int report_failure(const char *what, const char *addr, int rc, const wire_msg_t *reply)
{
    if (rc == -ETIMEDOUT)
        fprintf(stderr, "dhtctl: %s: no answer from %s within the timeout\n", what, addr);
    else if (reply && reply->type == WIRE_ERROR && reply->err_msg[0])
        fprintf(stderr, "dhtctl: %s: %s answered: %s\n", what, addr, reply->err_msg);
    else
        fprintf(stderr, "dhtctl: %s: %s: %s\n", what, addr, strerror(-rc));
    return EXIT_UNAVAILABLE;
}

static void json_string(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

static const char *idhex(ring_id_t id, unsigned m, char buf[RING_ID_HEX_MAX])
{
    ring_id_to_hex(id, m, buf);
    return buf;
}

/* ---------------------------------------------------------------- ring */

typedef struct {
    ring_id_t id;
    char addr[ENDPOINT_MAX];
    bool has_pred;
    ring_id_t pred;
    ring_id_t succ;
    uint64_t keys;
} ring_row_t;

static int cmp_row(const void *a, const void *b)
{
    ring_id_t x = ((const ring_row_t *)a)->id, y = ((const ring_row_t *)b)->id;
    return x < y ? -1 : x > y;
}

static int cmd_ring(ctl_t *ctl, const char *peer)
{
    wire_msg_t *info = malloc(sizeof *info), req;
    ring_row_t *rows = calloc(RING_WALK_MAX, sizeof *rows);
    if (!info || !rows) {
        free(info);
        free(rows);
        return 1;
    }
    wire_init(&req, WIRE_INFO, 0);
    int rc = call(ctl, peer, &req, info);
    if (rc < 0) {
        rc = report_failure("ring", peer, rc, info);
        goto out;
    }
    unsigned m = info->id_bits, replicas = info->replicas;
    ring_id_t first = info->node.id;
    size_t n = 0;
    bool broken = false;
    for (;;) {
        ring_row_t *row = &rows[n++];
        row->id = info->node.id;
        snprintf(row->addr, sizeof row->addr, "%s", info->node.addr);
        row->has_pred = info->has_pred;
        row->pred = info->pred.id;
        if (info->nsucc == 0 && !info->has_pred) {
            /* A lone node is its own predecessor: it owns the whole ring. */
            row->has_pred = true;
            row->pred = info->node.id;
        }
        row->succ = info->nsucc ? info->succ[0].id : info->node.id;
        row->keys = info->keys;
        if (info->nsucc == 0 || info->succ[0].id == first || n == RING_WALK_MAX)
            break;
        /* Walk on to the first successor that answers; dead ones are skipped. */
        wire_msg_t cur = *info;
        bool moved = false;
        for (size_t k = 0; k < cur.nsucc && !moved; k++) {
            if (cur.succ[k].id == first)
                break;
            bool seen = false;
            for (size_t j = 0; j < n && !seen; j++)
                seen = rows[j].id == cur.succ[k].id;
            if (seen) {
                broken = true;
                break;
            }
            wire_init(&req, WIRE_INFO, 0);
            if (call(ctl, cur.succ[k].addr, &req, info) == 0) {
                moved = info->node.id != first;
                if (!moved)
                    break;
            } else {
                fprintf(stderr, "dhtctl: ring: %s did not answer; skipping it\n", cur.succ[k].addr);
            }
        }
        if (!moved)
            break;
    }
    if (broken)
        fprintf(stderr, "dhtctl: ring: successor pointers loop without returning to the start "
                        "(the ring is still converging)\n");
    qsort(rows, n, sizeof *rows, cmp_row);
    char a[RING_ID_HEX_MAX], b[RING_ID_HEX_MAX], c[RING_ID_HEX_MAX];
    if (ctl->json) {
        printf("{\"id_bits\":%u,\"replicas\":%u,\"nodes\":[", m, replicas);
        for (size_t i = 0; i < n; i++) {
            printf("%s{\"id\":\"%s\",\"addr\":", i ? "," : "", idhex(rows[i].id, m, a));
            json_string(rows[i].addr);
            if (rows[i].has_pred)
                printf(",\"pred\":\"%s\"", idhex(rows[i].pred, m, b));
            else
                printf(",\"pred\":null");
            printf(",\"succ\":\"%s\",\"keys\":%" PRIu64 "}", idhex(rows[i].succ, m, c),
                   rows[i].keys);
        }
        printf("]}\n");
    } else {
        printf("%zu node%s, %u-bit ids, %u replicas\n", n, n == 1 ? "" : "s", m, replicas);
        printf("%-*s  %-*s  %-*s  %8s  %s\n", (int)ring_hex_width(m), "id", (int)ring_hex_width(m),
               "pred", (int)ring_hex_width(m), "succ", "keys", "addr");
        for (size_t i = 0; i < n; i++)
            printf("%s  %s  %s  %8" PRIu64 "  %s\n", idhex(rows[i].id, m, a),
                   rows[i].has_pred ? idhex(rows[i].pred, m, b) : "-", idhex(rows[i].succ, m, c),
                   rows[i].keys, rows[i].addr);
    }
    rc = broken ? EXIT_UNAVAILABLE : 0;
out:
    free(info);
    free(rows);
    return rc;
}

/* ------------------------------------------------------------- fingers */

static int cmd_fingers(ctl_t *ctl, const char *peer)
{
    wire_msg_t *r = malloc(sizeof *r), req;
    if (!r)
        return 1;
    wire_init(&req, WIRE_FINGERS, 0);
    int rc = call(ctl, peer, &req, r);
    if (rc < 0) {
        rc = report_failure("fingers", peer, rc, r);
        free(r);
        return rc;
    }
    unsigned m = r->id_bits;
    char a[RING_ID_HEX_MAX], b[RING_ID_HEX_MAX];
    if (ctl->json) {
        printf("{\"id\":\"%s\",\"addr\":", idhex(r->node.id, m, a));
        json_string(r->node.addr);
        printf(",\"fingers\":[");
        for (unsigned i = 0; i < r->nfingers; i++) {
            const wire_finger_t *f = &r->fingers[i];
            printf("%s{\"i\":%u,\"start\":\"%s\",", i ? "," : "", f->i, idhex(f->start, m, a));
            if (f->has_node) {
                printf("\"node\":\"%s\",\"addr\":", idhex(f->node.id, m, b));
                json_string(f->node.addr);
                printf("}");
            } else {
                printf("\"node\":null,\"addr\":null}");
            }
        }
        printf("]}\n");
    } else {
        printf("fingers of %s (%s)\n", idhex(r->node.id, m, a), r->node.addr);
        for (unsigned i = 0; i < r->nfingers; i++) {
            const wire_finger_t *f = &r->fingers[i];
            printf("%3u  %s -> %s  %s\n", f->i, idhex(f->start, m, a),
                   f->has_node ? idhex(f->node.id, m, b) : "-", f->has_node ? f->node.addr : "");
        }
    }
    free(r);
    return 0;
}

/* -------------------------------------------------------------- lookup */

static int cmd_lookup(ctl_t *ctl, const char *peer, const char *key, bool iterative)
{
    wire_msg_t *r = malloc(sizeof *r), req;
    if (!r)
        return 1;
    wire_init(&req, WIRE_INFO, 0);
    int rc = call(ctl, peer, &req, r);
    if (rc < 0) {
        rc = report_failure("lookup", peer, rc, r);
        free(r);
        return rc;
    }
    unsigned m = r->id_bits;
    ring_id_t pos = ring_hash(key, strlen(key), m);
    char cur[ENDPOINT_MAX];
    snprintf(cur, sizeof cur, "%s", peer);
    unsigned hops = 0;
    for (;;) {
        wire_init(&req, WIRE_FIND, 0);
        req.key = pos;
        req.mode = iterative ? WIRE_FIND_ITERATIVE : WIRE_FIND_RECURSIVE;
        req.hops = 0;
        rc = call(ctl, cur, &req, r);
        if (rc < 0) {
            rc = report_failure("lookup", cur, rc, r);
            free(r);
            return rc;
        }
        if (r->done)
            break;
        if (++hops > 2 * m + 16) {
            fprintf(stderr, "dhtctl: lookup: no answer after %u hops\n", hops);
            free(r);
            return EXIT_UNAVAILABLE;
        }
        snprintf(cur, sizeof cur, "%s", r->node.addr);
    }
    if (!iterative)
        hops = r->hops;
    char a[RING_ID_HEX_MAX], b[RING_ID_HEX_MAX];
    if (ctl->json) {
        printf("{\"key\":");
        json_string(key);
        printf(",\"pos\":\"%s\",\"owner\":\"%s\",\"owner_addr\":", idhex(pos, m, a),
               idhex(r->node.id, m, b));
        json_string(r->node.addr);
        printf(",\"replicas\":[");
        for (unsigned i = 0; i < r->nsucc; i++)
            printf("%s\"%s\"", i ? "," : "", idhex(r->succ[i].id, m, a));
        printf("],\"replica_addrs\":[");
        for (unsigned i = 0; i < r->nsucc; i++) {
            printf("%s", i ? "," : "");
            json_string(r->succ[i].addr);
        }
        printf("],\"hops\":%u,\"mode\":\"%s\"}\n", hops, iterative ? "iterative" : "recursive");
    } else {
        printf("key %s at %s: owner %s (%s), %u hop%s (%s)\nreplicas:", key, idhex(pos, m, a),
               idhex(r->node.id, m, b), r->node.addr, hops, hops == 1 ? "" : "s",
               iterative ? "iterative" : "recursive");
        for (unsigned i = 0; i < r->nsucc; i++)
            printf(" %s", idhex(r->succ[i].id, m, a));
        printf("\n");
    }
    free(r);
    return 0;
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    const char *peer_arg = getenv("DHT_PEER");
    if (!peer_arg || !*peer_arg)
        peer_arg = "tcp://127.0.0.1:7000";
    ctl_t ctl = {.timeout_ms = 3000};
    bool iterative = false, recursive = false;
    enum { O_PEER = 256, O_JSON, O_ITER, O_REC, O_TIMEOUT, O_HELP };
    static const struct option opts[] = {
        {"peer", required_argument, NULL, O_PEER},
        {"json", no_argument, NULL, O_JSON},
        {"iterative", no_argument, NULL, O_ITER},
        {"recursive", no_argument, NULL, O_REC},
        {"timeout-ms", required_argument, NULL, O_TIMEOUT},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_PEER:
            peer_arg = optarg;
            break;
        case O_JSON:
            ctl.json = true;
            break;
        case O_ITER:
            iterative = true;
            break;
        case O_REC:
            recursive = true;
            break;
        case O_TIMEOUT: {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || v < 1 || v > 600000)
                return usage_error("--timeout-ms must be 1..600000, got '%s'", optarg);
            ctl.timeout_ms = (unsigned)v;
            break;
        }
        case O_HELP:
            usage(stdout);
            return 0;
        default:
            return usage_error("unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return usage_error("missing command");
    if (iterative && recursive)
        return usage_error("--iterative and --recursive exclude each other");
    const char *cmd = argv[optind];
    int nargs = argc - optind - 1;
    char **args = argv + optind + 1;
    char peer[ENDPOINT_MAX];
    const char *why = NULL;
    if (endpoint_normalize(peer_arg, peer, sizeof peer, &why) < 0) {
        fprintf(stderr, "dhtctl: bad peer endpoint '%s': %s\n", peer_arg, why);
        return EXIT_USAGE;
    }
    bool known =
        strcmp(cmd, "ring") == 0 || strcmp(cmd, "fingers") == 0 || strcmp(cmd, "lookup") == 0;
    if (!known)
        return usage_error("unknown command '%s'", cmd);
    if (strcmp(cmd, "lookup") == 0 ? nargs != 1 : nargs != 0)
        return usage_error("wrong number of arguments for '%s'", cmd);
    if ((iterative || recursive) && strcmp(cmd, "lookup") != 0)
        return usage_error("--iterative/--recursive only apply to lookup, not '%s'", cmd);

    log_set_level(LOG_ERROR);
    if (sodium_init() < 0)
        return 1;
    ctl.zctx = zmq_ctx_new();
    ctl.loop = loop_new();
    ctl.rpc = ctl.loop ? rpc_new(ctl.zctx, ctl.loop) : NULL;
    if (!ctl.zctx || !ctl.rpc) {
        fprintf(stderr, "dhtctl: cannot initialise\n");
        return 1;
    }
    int rc;
    if (strcmp(cmd, "ring") == 0)
        rc = cmd_ring(&ctl, peer);
    else if (strcmp(cmd, "fingers") == 0)
        rc = cmd_fingers(&ctl, peer);
    else
        rc = cmd_lookup(&ctl, peer, args[0], iterative);
    fflush(stdout);
    rpc_destroy(&ctl.rpc);
    loop_destroy(&ctl.loop);
    zmq_ctx_term(ctl.zctx);
    return rc;
}
