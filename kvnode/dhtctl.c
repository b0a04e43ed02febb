/*
 * dhtctl — admin and client CLI for a dhtfs ring.
 *
 * Each command is a short sequence of requests made through the same async
 * RPC layer the daemon uses, driven by a private event loop that runs until
 * the answer (or the timeout) arrives. Output formats and exit codes are a
 * contract (BRIEF.md section 5): 0 success, 1 not found, 2 usage error,
 * 3 unavailable.
 */
#include "endpoint.h"
#include "kvclient.h"
#include "log.h"
#include "loop.h"
#include "progress.h"
#include "ring_place.h"
#include "rpc.h"
#include "sec_key.h"
#include "wire.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
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
    kvc_t *kvc;
    unsigned timeout_ms;
    bool json;
    kvc_cond_t cond;
    kv_version_t if_version;
} ctl_t;

typedef struct {
    loop_t *loop;
    int rc;
    wire_msg_t *reply;
} wait_t;

static void usage(FILE *f)
{
    fprintf(f, "usage: dhtctl [--peer EP] [--key FILE] [--timeout-ms MS] COMMAND [--json]\n"
               "commands:\n"
               "  ring [--json]                         every node in ring order\n"
               "  fingers [--json]                      the peer's finger table\n"
               "  lookup KEY... [--iterative|--recursive] [--json]\n"
               "  put KEY [VALUE] [--if-absent|--if-version V]  value from stdin if omitted\n"
               "  get KEY                               value to stdout; exit 1 if absent\n"
               "  del KEY [--if-version V]\n"
               "  status [--json] [--watch [SECONDS]] [--count N]\n"
               "                                        nodes, keys, under-replicated keys,\n"
               "                                        repair/hand-off progress; --watch\n"
               "                                        refreshes every SECONDS (1) until ^C\n"
               "                                        or N refreshes\n"
               "  replicas KEY --json                   what each replica holds, no repair\n"
               "  members [--json]                      the peer's member table (weights,\n"
               "                                        zones, states, epoch)\n"
               "  keygen FILE                           new CURVE key: FILE (secret, 0600), "
               "FILE.pub\n"
               "--peer defaults to $DHT_PEER, then tcp://127.0.0.1:7000. A secured node's\n"
               "endpoint carries its public key: tcp://HOST:PORT#KEY (see OPERATIONS.md).\n"
               "--key FILE: the secret key this client presents to a secured ring\n"
               "(default $DHT_KEY).\n"
               "--log-level error|warn|info|debug: what the client logs to stderr (error).\n"
               "exit status: 0 ok, 1 not found (or condition failed), 2 usage error,\n"
               "             3 unavailable (no quorum, no answer in time, disk full)\n");
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Seconds for --watch: a number in 0.1..86400. */
static int parse_seconds(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !(v >= 0.1 && v <= 86400))
        return -1;
    *out = v;
    return 0;
}

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
    /* The value frame is the transport's only during this callback: keep a copy. */
    static uint8_t *held;
    static size_t held_cap;
    wait_t *w = arg;
    w->rc = rc;
    if (reply) {
        *w->reply = *reply;
        if (reply->value_len > held_cap) {
            uint8_t *p = realloc(held, reply->value_len);
            if (!p) {
                w->rc = -ENOMEM;
                w->reply->value = NULL;
                w->reply->value_len = 0;
                loop_stop(w->loop);
                return;
            }
            held = p;
            held_cap = reply->value_len;
        }
        if (reply->value_len)
            memcpy(held, reply->value, reply->value_len);
        w->reply->value = reply->value_len ? held : NULL;
    }
    loop_stop(w->loop);
}

/*
 * One request, waited for. Returns 0 or -errno (reply->err_msg on peer
 * errors); reply->value stays valid until the next call.
 */
static void on_nap(loop_t *loop, void *arg)
{
    (void)arg;
    loop_stop(loop);
}

static int call(ctl_t *ctl, const char *addr, wire_msg_t *req, wire_msg_t *reply)
{
    wait_t w = {ctl->loop, -EINPROGRESS, reply};
    reply->err_msg[0] = '\0';
    uint64_t end = loop_clock_ms() + ctl->timeout_ms;
    int rc;
    /*
     * -EAGAIN: the connection cannot take the request now (its handshake
     * failing, the peer not draining). Let the loop run a little — the
     * connection's monitor may tell why (rpc_call then says -EPROTO) —
     * and try again within the timeout.
     */
    for (;;) {
        uint64_t now = loop_clock_ms();
        unsigned left = end > now ? (unsigned)(end - now) : 1;
        rc = rpc_call(ctl->rpc, addr, req, left, on_done, &w);
        if (rc != -EAGAIN || now >= end)
            break;
        if (!loop_timer_add(ctl->loop, 20, on_nap, NULL))
            break;
        loop_run(ctl->loop);
    }
    if (rc < 0)
        return rc == -EAGAIN ? -ETIMEDOUT : rc;
    loop_run(ctl->loop);
    return w.rc;
}

static int report_failure(const char *what, const char *addr, int rc, const wire_msg_t *reply)
{
    if (rc == -ETIMEDOUT)
        fprintf(stderr, "dhtctl: %s: no answer from %s within the timeout\n", what, addr);
    else if (rc == -EPROTO)
        fprintf(stderr,
                "dhtctl: %s: %s requires CURVE: give --key FILE and the node's address as "
                "EP#KEY (its public key, the .pub of its --key; kvnode logs it)\n",
                what, addr);
    else if (rc == -EACCES && !(reply && reply->type == WIRE_ERROR && reply->err_msg[0]))
        fprintf(stderr, "dhtctl: %s: %s refused this client's key (access denied)\n", what, addr);
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

/* INFO asking for layout 2 (member epoch, weight, zone); an older node gets version 1. */
static int info_call(ctl_t *ctl, const char *addr, wire_msg_t *info)
{
    wire_msg_t req;
    /* The newest layout first (3: placement; 2: member epoch), then older ones. */
    int rc = -EPROTONOSUPPORT;
    for (int layout = 3; layout >= 1 && rc == -EPROTONOSUPPORT; layout--) {
        wire_init(&req, WIRE_INFO, 0);
        req.has_epoch = layout >= 2;
        req.has_place = layout == 3;
        rc = call(ctl, addr, &req, info);
    }
    return rc;
}

/* ------------------------------------------------------------- members */

enum { MEMBERS_TRIES = 5 };

/*
 * The peer's member table, page by page (MEMBERS), into *all (the caller
 * frees it) and *n, under one epoch: a table that changes between pages
 * (another epoch on a later page) is read again from the start, up to
 * MEMBERS_TRIES times. Returns 0 or an exit status (reported as `what`).
 */
static int read_members(ctl_t *ctl, const char *what, const char *peer, wire_member_t **all,
                        size_t *n, uint64_t *epoch)
{
    wire_msg_t *r = malloc(sizeof *r), req;
    size_t cap = 0;
    int rc = 0;
    *all = NULL;
    *n = 0;
    if (!r)
        return 1;
    bool done = false;
    for (int attempt = 0; attempt < MEMBERS_TRIES && !done; attempt++) {
        *n = 0;
        bool has_after = false, same = true;
        ring_id_t after = 0;
        for (;;) {
            wire_init(&req, WIRE_MEMBERS, 0);
            req.has_after = has_after;
            req.after = after;
            rc = call(ctl, peer, &req, r);
            if (rc == -EOPNOTSUPP) {
                fprintf(stderr, "dhtctl: %s: %s keeps no member table (built before MEMBERS)\n",
                        what, peer);
                rc = EXIT_UNAVAILABLE;
                goto out;
            }
            if (rc < 0) {
                rc = report_failure(what, peer, rc, r);
                goto out;
            }
            if (!has_after)
                *epoch = r->epoch;
            else if (r->epoch != *epoch)
                same = false;
            if (*n + r->nmember > cap) {
                size_t ncap = cap ? 2 * cap : 64;
                while (ncap < *n + r->nmember)
                    ncap *= 2;
                wire_member_t *grown = realloc(*all, ncap * sizeof **all);
                if (!grown) {
                    rc = 1;
                    goto out;
                }
                *all = grown;
                cap = ncap;
            }
            memcpy(*all + *n, r->member, r->nmember * sizeof **all);
            *n += r->nmember;
            if (!r->more || r->nmember == 0 || !same)
                break;
            has_after = true;
            after = r->member[r->nmember - 1].node.id;
        }
        done = same;
    }
    rc = 0;
    if (!done) {
        fprintf(stderr, "dhtctl: %s: %s's table kept changing while read\n", what, peer);
        rc = EXIT_UNAVAILABLE;
    }
out:
    free(r);
    if (rc != 0) {
        free(*all);
        *all = NULL;
        *n = 0;
    }
    return rc;
}

/* members: the peer's member table, as read_members gets it. */
static int cmd_members(ctl_t *ctl, const char *peer)
{
    wire_msg_t *info = malloc(sizeof *info);
    wire_member_t *all = NULL;
    size_t n = 0;
    int rc = 0;
    uint64_t epoch = 0;
    if (!info) {
        rc = 1;
        goto out;
    }
    rc = info_call(ctl, peer, info);
    if (rc < 0) {
        rc = report_failure("members", peer, rc, info);
        goto out;
    }
    unsigned m = info->id_bits;
    rc = read_members(ctl, "members", peer, &all, &n, &epoch);
    if (rc != 0)
        goto out;
    char a[RING_ID_HEX_MAX];
    if (ctl->json) {
        printf("{\"id\":\"%s\",\"epoch\":\"%016" PRIx64 "\",\"members\":[",
               idhex(info->node.id, m, a), epoch);
        for (size_t i = 0; i < n; i++) {
            const wire_member_t *e = &all[i];
            printf("%s{\"id\":\"%s\",\"addr\":", i ? "," : "", idhex(e->node.id, m, a));
            json_string(e->node.addr);
            printf(",\"weight\":%u,\"zone\":", e->weight);
            if (e->zone[0])
                json_string(e->zone);
            else
                printf("null");
            printf(",\"state\":\"%s\",\"incarnation\":%" PRIu64 "}",
                   ring_members_state_name(e->state), e->incarnation);
        }
        printf("]}\n");
    } else {
        printf("members of %s (%s): %zu, epoch %016" PRIx64 "\n", idhex(info->node.id, m, a),
               info->node.addr, n, epoch);
        for (size_t i = 0; i < n; i++) {
            const wire_member_t *e = &all[i];
            printf("  %s  %-8s weight %-3u zone %-12s %s\n", idhex(e->node.id, m, a),
                   ring_members_state_name(e->state), e->weight, e->zone[0] ? e->zone : "-",
                   e->node.addr);
        }
    }
    rc = 0;
out:
    free(all);
    free(info);
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

typedef struct {
    loop_t *loop;
    bool finished;
    int rc;
    size_t n;
    ring_id_t ids[WIRE_SUCC_MAX];
    char addrs[WIRE_SUCC_MAX][ENDPOINT_MAX];
} lookup_wait_t;

static int placement_set(ctl_t *ctl, const char *what, const char *peer, ring_id_t pos,
                         lookup_wait_t *w);

/* One key's lookup through peer (ring width m), its answer printed. */
static int lookup_one(ctl_t *ctl, const char *peer, unsigned m, const char *key, bool iterative,
                      wire_msg_t *r)
{
    wire_msg_t req;
    ring_id_t pos = ring_hash(key, strlen(key), m);
    char cur[ENDPOINT_MAX];
    snprintf(cur, sizeof cur, "%s", peer);
    unsigned hops = 0;
    for (;;) {
        wire_init(&req, WIRE_FIND, 0);
        req.key = pos;
        req.mode = iterative ? WIRE_FIND_ITERATIVE : WIRE_FIND_RECURSIVE;
        req.hops = 0;
        int rc = call(ctl, cur, &req, r);
        if (rc < 0)
            return report_failure("lookup", cur, rc, r);
        if (r->done)
            break;
        if (++hops > 2 * m + 16) {
            fprintf(stderr, "dhtctl: lookup: no answer after %u hops\n", hops);
            return EXIT_UNAVAILABLE;
        }
        snprintf(cur, sizeof cur, "%s", r->node.addr);
    }
    if (!iterative)
        hops = r->hops;
    /* Where the copies live: the successors, or the placement's set under token placement. */
    lookup_wait_t w = {.n = r->nsucc};
    for (size_t i = 0; i < w.n; i++) {
        w.ids[i] = r->succ[i].id;
        snprintf(w.addrs[i], sizeof w.addrs[i], "%s", r->succ[i].addr);
    }
    int rc = placement_set(ctl, "lookup", r->node.addr, pos, &w);
    if (rc != 0)
        return rc;
    r->nsucc = (uint8_t)w.n;
    for (size_t i = 0; i < w.n; i++)
        wire_node_set(&r->succ[i], w.ids[i], w.addrs[i]);
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
    return 0;
}

/*
 * lookup KEY...: one answer per key, in order (one JSON object per line
 * with --json); the first key that fails ends the command with its status.
 */
static int cmd_lookup(ctl_t *ctl, const char *peer, char *const *keys, int nkeys, bool iterative)
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
    rc = 0;
    for (int k = 0; k < nkeys && rc == 0; k++)
        rc = lookup_one(ctl, peer, m, keys[k], iterative, r);
    free(r);
    return rc;
}

/* ------------------------------------------------------------ store */

typedef struct {
    loop_t *loop;
    bool finished;
    int rc;
    kv_version_t version;
    uint8_t *value;
    size_t value_len;
    char message[WIRE_ERRMSG_MAX];
} kv_wait_t;

static void on_kv_done(const kvc_result_t *res, void *arg)
{
    kv_wait_t *w = arg;
    w->finished = true;
    w->rc = res->rc;
    w->version = res->version;
    if (res->message)
        snprintf(w->message, sizeof w->message, "%s", res->message);
    if (res->rc == 0 && res->value) {
        w->value = malloc(res->value_len ? res->value_len : 1);
        if (w->value) {
            memcpy(w->value, res->value, res->value_len);
            w->value_len = res->value_len;
        }
    }
    loop_stop(w->loop);
}

static int kv_client(ctl_t *ctl, const char *peer)
{
    if (!ctl->kvc) {
        const char *seeds[] = {peer};
        ctl->kvc = kvc_new(ctl->rpc, ctl->loop, seeds, 1, ctl->timeout_ms);
    }
    return ctl->kvc ? 0 : -ENOMEM;
}

static int kv_wait(ctl_t *ctl, kv_wait_t *w, int submit_rc)
{
    if (submit_rc < 0)
        return submit_rc;
    while (!w->finished)
        loop_run(ctl->loop);
    return w->rc;
}

static int kv_exit(const char *what, const char *key, int rc, const char *message)
{
    const char *why = message && message[0] ? message : strerror(-rc);
    switch (rc) {
    case 0:
        return 0;
    case -ENOENT:
        fprintf(stderr, "dhtctl: %s %s: not found\n", what, key);
        return EXIT_NOTFOUND;
    case -EEXIST:
    case -ESTALE:
        fprintf(stderr, "dhtctl: %s %s: condition failed: %s\n", what, key, why);
        return EXIT_NOTFOUND;
    case -EINVAL:
    case -EFBIG:
        fprintf(stderr, "dhtctl: %s %s: refused: %s\n", what, key, why);
        return EXIT_USAGE;
    case -EACCES:
        fprintf(stderr, "dhtctl: %s %s: access denied: %s\n", what, key, why);
        return EXIT_UNAVAILABLE;
    case -EPROTO:
        fprintf(stderr, "dhtctl: %s %s: %s\n", what, key, why);
        return EXIT_UNAVAILABLE;
    default:
        fprintf(stderr, "dhtctl: %s %s: unavailable: %s\n", what, key, why);
        return EXIT_UNAVAILABLE;
    }
}

/* Read all of stdin, refusing more than the largest value. */
static int read_stdin(uint8_t **out, size_t *len)
{
    size_t cap = 65536, n = 0;
    uint8_t *buf = malloc(cap);
    if (!buf)
        return -ENOMEM;
    for (;;) {
        if (n == cap) {
            if (cap > WIRE_VALUE_MAX) {
                free(buf);
                return -EFBIG;
            }
            cap *= 2;
            uint8_t *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                return -ENOMEM;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, stdin);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(stdin)) {
        free(buf);
        return -EIO;
    }
    if (n > WIRE_VALUE_MAX) {
        free(buf);
        return -EFBIG;
    }
    *out = buf;
    *len = n;
    return 0;
}

static int cmd_put(ctl_t *ctl, const char *peer, const char *key, const char *value, bool del)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    if (!del && value) {
        len = strlen(value);
        if (len > WIRE_VALUE_MAX)
            return kv_exit("put", key, -EFBIG, "value larger than 4 MiB");
    } else if (!del) {
        int rc = read_stdin(&buf, &len);
        if (rc < 0)
            return kv_exit("put", key, rc, rc == -EFBIG ? "value larger than 4 MiB" : NULL);
    }
    if (kv_client(ctl, peer) < 0) {
        free(buf);
        return 1;
    }
    kv_wait_t w = {.loop = ctl->loop};
    int rc = del ? kvc_del(ctl->kvc, key, strlen(key), ctl->cond, ctl->if_version, on_kv_done, &w)
                 : kvc_put(ctl->kvc, key, strlen(key), buf ? (const void *)buf : value, len,
                           ctl->cond, ctl->if_version, on_kv_done, &w);
    if (rc == -EINVAL)
        snprintf(w.message, sizeof w.message, "keys are 1 to %d bytes", WIRE_KEY_MAX);
    rc = kv_wait(ctl, &w, rc);
    free(buf);
    free(w.value);
    if (rc == 0 && ctl->json) {
        char v[KV_VERSION_STR_MAX];
        kv_version_to_str(w.version, v);
        printf("{\"key\":");
        json_string(key);
        printf(",\"version\":\"%s\"}\n", v);
    }
    return kv_exit(del ? "del" : "put", key, rc, w.message);
}

static int cmd_get(ctl_t *ctl, const char *peer, const char *key)
{
    if (kv_client(ctl, peer) < 0)
        return 1;
    kv_wait_t w = {.loop = ctl->loop};
    int rc = kv_wait(ctl, &w, kvc_get(ctl->kvc, key, strlen(key), on_kv_done, &w));
    if (rc == -EINVAL)
        snprintf(w.message, sizeof w.message, "keys are 1 to %d bytes", WIRE_KEY_MAX);
    if (rc == 0) {
        if (ctl->json) {
            char v[KV_VERSION_STR_MAX];
            kv_version_to_str(w.version, v);
            fprintf(stderr, "version %s\n", v);
        }
        if (w.value_len && fwrite(w.value, 1, w.value_len, stdout) != w.value_len)
            rc = -EIO;
    }
    free(w.value);
    return kv_exit("get", key, rc, w.message);
}

/* One physical node as status saw it: the copies it stores, what it still moves. */
typedef struct {
    ring_id_t id;
    char addr[ENDPOINT_MAX];
    bool answered;
    uint64_t keys, bytes;
    uint64_t primary;       /* keys it is the primary (Chord: authority) of */
    bool has_progress;      /* it answered STATS layout 2 */
    progress_sample_t prog; /* when has_progress */
    uint64_t at_ms;         /* when its STATS answer came */
    bool has_member;        /* it answered INFO layout 2: */
    uint16_t weight;        /* its own weight and zone ("" = none), */
    char zone[WIRE_ZONE_MAX];
    uint64_t epoch;     /* its member table's epoch */
    uint32_t members;   /* and size */
    progress_est_t est; /* against the previous sample of the same node */
} status_row_t;

/* One walk of the ring. */
typedef struct {
    unsigned m;
    status_row_t *rows;
    size_t nrows, cap;
    uint64_t nodes, keys, under, stored, bytes, silent, open_nodes;
    uint64_t prog_nodes;     /* nodes that reported progress */
    progress_sample_t total; /* their sum */
    progress_est_t est;      /* the ring's estimate */
    /* The allow-lists of the node asked (the walk's first), when it said (STATS layout 3). */
    bool has_lists;
    uint64_t peer_keys, client_keys, restricted_keys;
    /* The placement of the walk's first node, when it said (INFO layout 3). */
    bool has_place;
    unsigned tokens, probes;
} status_snap_t;

static void snap_free(status_snap_t *s)
{
    free(s->rows);
    *s = (status_snap_t){0};
}

/*
 * STATS of one node, asking for progress and its allow-lists (layout 3);
 * an older node gets a version-2, then a version-1 STATS.
 */
static int stats_call(ctl_t *ctl, const char *addr, wire_msg_t *st)
{
    wire_msg_t req;
    wire_init(&req, WIRE_STATS, 0);
    req.has_progress = true;
    req.has_security = true;
    int rc = call(ctl, addr, &req, st);
    if (rc == -EPROTONOSUPPORT) {
        wire_init(&req, WIRE_STATS, 0);
        req.has_progress = true;
        rc = call(ctl, addr, &req, st);
    }
    if (rc == -EPROTONOSUPPORT) {
        wire_init(&req, WIRE_STATS, 0);
        rc = call(ctl, addr, &req, st);
    }
    return rc;
}

/* Walk the ring from peer, STATS of every node. 0, or an exit code. */
static int status_walk(ctl_t *ctl, const char *peer, status_snap_t *s)
{
    wire_msg_t *info = malloc(sizeof *info), *st = malloc(sizeof *st);
    int rc = 0;
    *s = (status_snap_t){0};
    if (!info || !st) {
        rc = 1;
        goto out;
    }
    rc = info_call(ctl, peer, info);
    if (rc < 0) {
        rc = report_failure("status", peer, rc, info);
        goto out;
    }
    s->m = info->id_bits;
    ring_id_t first = info->node.id;
    char addr[ENDPOINT_MAX];
    snprintf(addr, sizeof addr, "%s", info->node.addr);
    for (unsigned guard = 0; guard < RING_WALK_MAX; guard++) {
        /*
         * A node seen before means successor pointers loop without the start
         * (a ring still converging): stop rather than count it twice.
         */
        bool seen = false;
        for (size_t i = 0; i < s->nrows && !seen; i++)
            seen = s->rows[i].id == info->node.id;
        if (seen) {
            fprintf(stderr, "dhtctl: status: successor pointers loop without returning to the "
                            "start (the ring is still converging)\n");
            break;
        }
        if (s->nrows == s->cap) {
            size_t ncap = s->cap ? 2 * s->cap : 16;
            status_row_t *grown = realloc(s->rows, ncap * sizeof *s->rows);
            if (!grown) {
                rc = 1;
                goto out;
            }
            s->rows = grown;
            s->cap = ncap;
        }
        if (s->nrows == 0 && info->has_place) {
            s->has_place = true;
            s->tokens = info->tokens;
            s->probes = info->probes;
        }
        status_row_t *row = &s->rows[s->nrows++];
        *row = (status_row_t){.id = info->node.id};
        snprintf(row->addr, sizeof row->addr, "%s", addr);
        if (info->has_epoch) {
            row->has_member = true;
            row->weight = info->weight;
            snprintf(row->zone, sizeof row->zone, "%s", info->zone);
            row->epoch = info->epoch;
            row->members = info->members;
        }
        /* A secured node is known by an address that carries its key. */
        char base[ENDPOINT_MAX];
        uint8_t key[SEC_KEY_BYTES];
        if (endpoint_split_key(addr, base, key) != 1)
            s->open_nodes++;
        if (stats_call(ctl, addr, st) == 0) {
            s->keys += st->primary_keys;
            s->under += st->under_replicated;
            s->stored += st->stored_keys;
            s->bytes += st->bytes;
            row->answered = true;
            row->keys = st->stored_keys;
            row->bytes = st->bytes;
            row->primary = st->primary_keys;
            row->at_ms = loop_clock_ms();
            if (s->nrows == 1 && st->has_security && st->secured) {
                s->has_lists = true;
                s->peer_keys = st->peer_keys;
                s->client_keys = st->client_keys;
                s->restricted_keys = st->restricted_keys;
            }
            if (st->has_progress) {
                row->has_progress = true;
                row->prog = (progress_sample_t){
                    .keys_left = st->hint_keys + st->stream_keys_left,
                    .bytes_left = st->left_bytes,
                    .streams = st->streams,
                    .moved_keys = st->moved_keys,
                    .moved_bytes = st->moved_bytes,
                };
                s->prog_nodes++;
                s->total.keys_left += row->prog.keys_left;
                s->total.bytes_left += row->prog.bytes_left;
                s->total.streams += row->prog.streams;
                s->total.moved_keys += row->prog.moved_keys;
                s->total.moved_bytes += row->prog.moved_bytes;
            }
        } else {
            s->silent++;
        }
        s->nodes++;
        bool moved = false;
        wire_msg_t cur = *info;
        for (size_t k = 0; k < cur.nsucc && !moved; k++) {
            if (cur.succ[k].id == first)
                break;
            if (info_call(ctl, cur.succ[k].addr, info) == 0) {
                moved = info->node.id != first;
                snprintf(addr, sizeof addr, "%s", info->node.addr);
            }
        }
        if (!moved)
            break;
    }
    rc = 0;
out:
    free(info);
    free(st);
    if (rc != 0)
        snap_free(s);
    return rc;
}

/* Estimates of cur against prev (NULL: the first sample, no rates). */
static void status_estimate(status_snap_t *cur, const status_snap_t *prev)
{
    progress_est_t *parts = cur->nrows ? calloc(cur->nrows, sizeof *parts) : NULL;
    size_t nparts = 0;
    for (size_t i = 0; i < cur->nrows; i++) {
        status_row_t *r = &cur->rows[i];
        if (!r->has_progress)
            continue;
        const status_row_t *p = NULL;
        for (size_t j = 0; prev && j < prev->nrows && !p; j++)
            if (prev->rows[j].id == r->id && prev->rows[j].has_progress)
                p = &prev->rows[j];
        progress_estimate(p ? &p->prog : NULL, &r->prog,
                          p && r->at_ms > p->at_ms ? r->at_ms - p->at_ms : 0, &r->est);
        if (parts)
            parts[nparts++] = r->est;
    }
    progress_combine(&cur->total, parts, nparts, &cur->est);
    free(parts);
}

static void json_double(bool known, double v)
{
    if (known)
        printf("%.1f", v);
    else
        printf("null");
}

static void json_progress(const progress_sample_t *p, const progress_est_t *e)
{
    printf("{\"idle\":%s,\"keys_left\":%" PRIu64 ",\"bytes_left\":%" PRIu64 ",\"streams\":%" PRIu64
           ",\"moved_keys\":%" PRIu64 ",\"moved_bytes\":%" PRIu64 ",\"keys_per_s\":",
           e->idle ? "true" : "false", p->keys_left, p->bytes_left, p->streams, p->moved_keys,
           p->moved_bytes);
    json_double(e->rate_known, e->keys_per_s);
    printf(",\"bytes_per_s\":");
    json_double(e->rate_known, e->bytes_per_s);
    printf(",\"eta_s\":");
    json_double(e->eta_known, e->eta_s);
    printf("}");
}

static void print_per_node(const status_snap_t *s)
{
    printf(",\"per_node\":[");
    for (size_t i = 0; i < s->nrows; i++) {
        const status_row_t *r = &s->rows[i];
        char hex[RING_ID_HEX_MAX];
        printf("%s{\"id\":\"%s\",\"addr\":", i ? "," : "", idhex(r->id, s->m, hex));
        json_string(r->addr);
        if (r->answered)
            printf(",\"keys\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"primary\":%" PRIu64, r->keys,
                   r->bytes, r->primary);
        else
            printf(",\"keys\":null,\"bytes\":null,\"primary\":null");
        if (r->has_member) {
            printf(",\"weight\":%u,\"zone\":", r->weight);
            if (r->zone[0])
                json_string(r->zone);
            else
                printf("null");
            printf(",\"epoch\":\"%016" PRIx64 "\",\"members\":%u", r->epoch, r->members);
        } else {
            printf(",\"weight\":null,\"zone\":null,\"epoch\":null,\"members\":null");
        }
        printf(",\"progress\":");
        if (r->has_progress)
            json_progress(&r->prog, &r->est);
        else
            printf("null");
        printf("}");
    }
    printf("]");
}

/* "idle" or "K keys (B) left, R keys/s (B/s), about T left". */
static void text_progress(const progress_sample_t *p, const progress_est_t *e)
{
    char b1[32], b2[32], b3[32];
    if (e->idle) {
        printf("idle");
        if (e->rate_known && e->keys_per_s > 0)
            printf(" (%.0f keys/s)", e->keys_per_s);
        return;
    }
    printf("%" PRIu64 " keys (%s) left in %" PRIu64 " stream%s + hints, ", p->keys_left,
           progress_bytes((double)p->bytes_left, b1, sizeof b1), p->streams,
           p->streams == 1 ? "" : "s");
    if (e->rate_known)
        printf("%.0f keys/s (%s/s), ", e->keys_per_s,
               progress_bytes(e->bytes_per_s, b2, sizeof b2));
    else
        printf("rate unknown, ");
    printf("%s left", e->eta_known ? progress_duration(e->eta_s, b3, sizeof b3) : "time unknown");
}

static void status_print(ctl_t *ctl, const status_snap_t *s)
{
    if (ctl->json) {
        printf("{\"nodes\":%llu,\"keys\":%llu,\"under_replicated\":%llu,\"stored\":%llu,"
               "\"bytes\":%llu,\"silent\":%llu,\"secured\":%s,\"unsecured_nodes\":%llu",
               (unsigned long long)s->nodes, (unsigned long long)s->keys,
               (unsigned long long)s->under, (unsigned long long)s->stored,
               (unsigned long long)s->bytes, (unsigned long long)s->silent,
               s->open_nodes == 0 ? "true" : "false", (unsigned long long)s->open_nodes);
        if (s->has_lists)
            printf(",\"peer_keys\":%llu,\"client_keys\":%llu,\"restricted_client_keys\":%llu",
                   (unsigned long long)s->peer_keys, (unsigned long long)s->client_keys,
                   (unsigned long long)s->restricted_keys);
        else
            printf(",\"peer_keys\":null,\"client_keys\":null,\"restricted_client_keys\":null");
        if (!s->has_place)
            printf(",\"placement\":null");
        else if (s->tokens)
            printf(",\"placement\":{\"kind\":\"tokens\",\"tokens\":%u,\"probes\":%u}", s->tokens,
                   s->probes);
        else
            printf(",\"placement\":{\"kind\":\"chord\"}");
        print_per_node(s);
        printf(",\"progress\":");
        json_progress(&s->total, &s->est);
        /* the ring's progress object also says how many nodes it covers */
        printf("}\n");
        return;
    }
    printf("nodes %llu  keys %llu  under-replicated %llu  stored copies %llu  bytes %llu  "
           "%s%s\n",
           (unsigned long long)s->nodes, (unsigned long long)s->keys, (unsigned long long)s->under,
           (unsigned long long)s->stored, (unsigned long long)s->bytes,
           s->open_nodes == 0 ? "secured (CURVE)" : "NOT secured",
           s->silent ? "  (some nodes did not answer)" : "");
    if (s->has_place && s->tokens)
        printf("placement: %u tokens per unit of weight, %u probes\n", s->tokens, s->probes);
    else if (s->has_place)
        printf("placement: Chord successors\n");
    if (s->has_lists)
        printf("allow-lists of %s: %llu peer keys, %llu client keys (%llu restricted to "
               "volumes)\n",
               s->rows[0].addr, (unsigned long long)s->peer_keys,
               (unsigned long long)s->client_keys, (unsigned long long)s->restricted_keys);
    for (size_t i = 0; i < s->nrows; i++) {
        char hex[RING_ID_HEX_MAX];
        const status_row_t *r = &s->rows[i];
        if (r->answered)
            printf("  %s  %s  keys %" PRIu64 "  bytes %" PRIu64, idhex(r->id, s->m, hex), r->addr,
                   r->keys, r->bytes);
        else
            printf("  %s  %s  (no answer)", idhex(r->id, s->m, hex), r->addr);
        if (r->has_member)
            printf("  weight %u  zone %s", r->weight, r->zone[0] ? r->zone : "-");
        printf("\n");
    }
    printf("progress: ");
    if (s->prog_nodes == 0)
        printf("not reported (nodes too old)");
    else
        text_progress(&s->total, &s->est);
    if (s->prog_nodes && s->prog_nodes < s->nodes - s->silent)
        printf("  (%llu of %llu nodes report progress)", (unsigned long long)s->prog_nodes,
               (unsigned long long)(s->nodes - s->silent));
    printf("\n");
    for (size_t i = 0; i < s->nrows; i++) {
        const status_row_t *r = &s->rows[i];
        if (!r->has_progress || r->est.idle)
            continue;
        char hex[RING_ID_HEX_MAX];
        printf("  %s  ", idhex(r->id, s->m, hex));
        text_progress(&r->prog, &r->est);
        printf("\n");
    }
}

/*
 * --watch ends on SIGINT or SIGTERM. They are blocked for the whole watch
 * and taken with sigtimedwait() in the pause between refreshes, so none is
 * lost: a handler that sets a flag tested before nanosleep() misses a
 * signal landing between the test and the sleep, and the pause then runs
 * to its end (up to a day with --watch 86400). One arriving during a ring
 * walk stays pending until the walk ends (each call is bounded by
 * --timeout-ms). There is no handler: nothing async-signal-unsafe can run.
 */
static sigset_t watch_sigs;
static bool watch_blocked; /* watch_sigs are blocked and waited for */
static bool interrupted;

/* Block SIGINT and SIGTERM for a --watch (before ZeroMQ starts threads: they inherit the mask). */
static void watch_block_signals(void)
{
    sigemptyset(&watch_sigs);
    sigaddset(&watch_sigs, SIGINT);
    sigaddset(&watch_sigs, SIGTERM);
    watch_blocked = pthread_sigmask(SIG_BLOCK, &watch_sigs, NULL) == 0;
}

/* Sleep ms; in a watch, less when SIGINT or SIGTERM comes (then interrupted is set). */
static void nap_ms(uint64_t ms)
{
    uint64_t end = loop_clock_ms() + ms;
    for (uint64_t now = loop_clock_ms(); !interrupted && now < end; now = loop_clock_ms()) {
        uint64_t left = end - now;
        struct timespec ts = {(time_t)(left / 1000), (long)(left % 1000) * 1000000L};
        if (!watch_blocked) {
            nanosleep(&ts, NULL);
            continue;
        }
        if (sigtimedwait(&watch_sigs, NULL, &ts) > 0)
            interrupted = true;
        else if (errno == EAGAIN)
            return;
        /* EINTR (a stop and continue, say): wait for what is left */
    }
}

enum { STATUS_RATE_SAMPLE_MS = 1000 };

/*
 * status: one walk. The text form, when something moves, walks again
 * STATUS_RATE_SAMPLE_MS later to show a rate; --json stays one quick
 * sample (scripts poll it) with the rate null. --watch: a walk every
 * watch_ms until interrupted (SIGINT exits 0) or count refreshes (0: no
 * limit), rates against the previous walk; the screen is cleared only on
 * a terminal, and --json prints one object per line.
 */
static int cmd_status(ctl_t *ctl, const char *peer, uint64_t watch_ms, unsigned long count)
{
    status_snap_t prev = {0}, cur = {0};
    bool have_prev = false;
    int rc = 0;
    if (watch_ms)
        watch_block_signals();
    bool tty = isatty(STDOUT_FILENO) == 1;
    for (unsigned long n = 0; !interrupted; n++) {
        rc = status_walk(ctl, peer, &cur);
        if (rc != 0) {
            if (!watch_ms)
                break;
            /* --watch rides out a node that stops answering */
            if (count && n + 1 >= count)
                break;
            nap_ms(watch_ms);
            continue;
        }
        status_estimate(&cur, have_prev ? &prev : NULL);
        if (!watch_ms && !ctl->json && !cur.est.idle && cur.prog_nodes) {
            snap_free(&prev);
            prev = cur;
            nap_ms(STATUS_RATE_SAMPLE_MS);
            rc = status_walk(ctl, peer, &cur);
            if (rc != 0)
                break;
            status_estimate(&cur, &prev);
        }
        if (watch_ms && tty && !ctl->json)
            printf("\033[H\033[2J");
        if (watch_ms && !ctl->json) {
            time_t now = time(NULL);
            struct tm tm;
            char when[32];
            strftime(when, sizeof when, "%H:%M:%S", localtime_r(&now, &tm));
            printf("dhtctl status  %s  every %.1fs  (^C to stop)\n", when,
                   (double)watch_ms / 1000.0);
        }
        status_print(ctl, &cur);
        fflush(stdout);
        snap_free(&prev);
        prev = cur;
        cur = (status_snap_t){0};
        have_prev = true;
        if (!watch_ms || (count && n + 1 >= count))
            break;
        nap_ms(watch_ms);
    }
    if (watch_ms && interrupted)
        rc = 0;
    snap_free(&prev);
    snap_free(&cur);
    return rc;
}

static void on_lookup_done(int rc, size_t n, const ring_id_t *ids, const char *const *addrs,
                           void *arg)
{
    lookup_wait_t *w = arg;
    w->finished = true;
    w->rc = rc;
    w->n = n;
    for (size_t i = 0; i < n; i++) {
        w->ids[i] = ids[i];
        snprintf(w->addrs[i], sizeof w->addrs[i], "%s", addrs[i]);
    }
    loop_stop(w->loop);
}

/*
 * On a ring with token placement the copies of the key at pos are not on
 * its Chord successors: replace w's list by the placement's replica set,
 * computed here from the peer's member table as the nodes compute it
 * (without their failure detectors' view: a member that is down is listed,
 * and shows no answer). Returns 0 or an exit status.
 */
static int placement_set(ctl_t *ctl, const char *what, const char *peer, ring_id_t pos,
                         lookup_wait_t *w)
{
    wire_msg_t *info = malloc(sizeof *info);
    if (!info)
        return 1;
    int rc = info_call(ctl, peer, info);
    if (rc < 0) {
        rc = report_failure(what, peer, rc, info);
        free(info);
        return rc;
    }
    ring_place_params_t p = {info->id_bits, info->tokens, info->probes};
    unsigned replicas = info->replicas;
    bool tokens = info->has_place && info->tokens > 0;
    free(info);
    if (!tokens)
        return 0;
    wire_member_t *all;
    size_t n, k = 0;
    uint64_t epoch;
    rc = read_members(ctl, what, peer, &all, &n, &epoch);
    if (rc != 0)
        return rc;
    ring_place_node_t *nodes = calloc(n ? n : 1, sizeof *nodes);
    ring_place_t *pl = NULL;
    for (size_t i = 0; nodes && i < n; i++)
        if (all[i].state == RING_MEMBER_UP || all[i].state == RING_MEMBER_JOINING)
            nodes[k++] = (ring_place_node_t){all[i].node.id, all[i].weight,
                                             ring_members_zone_hash(all[i].zone)};
    rc = nodes && k ? ring_place_new(&p, nodes, k, &pl) : -ENOMEM;
    if (rc == 0) {
        size_t idx[RING_PLACE_REPLICAS_MAX];
        uint32_t part = ring_place_part_of(pos, p.m);
        w->n = ring_place_replicas(pl, ring_place_part_pos(part, p.m), replicas, idx);
        for (size_t i = 0; i < w->n; i++) {
            w->ids[i] = nodes[idx[i]].id;
            for (size_t j = 0; j < n; j++)
                if (all[j].node.id == w->ids[i])
                    snprintf(w->addrs[i], sizeof w->addrs[i], "%s", all[j].node.addr);
        }
    } else {
        fprintf(stderr, "dhtctl: %s: no placement from %s's member table\n", what, peer);
        rc = EXIT_UNAVAILABLE;
    }
    ring_place_destroy(&pl);
    free(nodes);
    free(all);
    return rc;
}

static int cmd_replicas(ctl_t *ctl, const char *peer, const char *key)
{
    if (kv_client(ctl, peer) < 0)
        return 1;
    lookup_wait_t w = {.loop = ctl->loop};
    int rc = kvc_lookup(ctl->kvc, key, strlen(key), on_lookup_done, &w);
    if (rc < 0)
        return kv_exit("replicas", key, rc, "keys are 1 to 480 bytes");
    while (!w.finished)
        loop_run(ctl->loop);
    if (w.rc < 0)
        return kv_exit("replicas", key, w.rc, NULL);
    unsigned m = kvc_id_bits(ctl->kvc);
    rc = placement_set(ctl, "replicas", w.addrs[0], ring_hash(key, strlen(key), m), &w);
    if (rc != 0)
        return rc;
    wire_msg_t *r = malloc(sizeof *r), req;
    if (!r)
        return 1;
    size_t denied = 0;
    printf("{\"key\":");
    json_string(key);
    printf(",\"replicas\":[");
    for (size_t i = 0; i < w.n; i++) {
        char id[RING_ID_HEX_MAX];
        printf("%s{\"node\":\"%s\",\"addr\":", i ? "," : "", idhex(w.ids[i], m, id));
        json_string(w.addrs[i]);
        wire_init(&req, WIRE_REPL_GET, 0);
        req.key_bytes = (const uint8_t *)key;
        req.key_len = (uint16_t)strlen(key);
        rc = call(ctl, w.addrs[i], &req, r);
        if (rc == -EACCES)
            denied++;
        if (rc < 0) {
            printf(",\"version\":null,\"value_sha\":null,\"error\":");
            json_string(rc == -ETIMEDOUT ? "no answer" : strerror(-rc));
        } else if (!r->found) {
            printf(",\"version\":null,\"value_sha\":null");
        } else {
            char v[KV_VERSION_STR_MAX], hex[2 * crypto_hash_sha256_BYTES + 1];
            unsigned char sha[crypto_hash_sha256_BYTES];
            kv_version_to_str(r->version, v);
            crypto_hash_sha256(sha, r->value ? r->value : (const uint8_t *)"", r->value_len);
            sodium_bin2hex(hex, sizeof hex, sha, sizeof sha);
            printf(",\"version\":\"%s\",\"value_sha\":\"%s\",\"deleted\":%s", v, hex,
                   r->flags & WIRE_FLAG_TOMBSTONE ? "true" : "false");
        }
        printf("}");
    }
    printf("]}\n");
    free(r);
    if (denied) {
        /* Reading replicas directly is a peer operation on a secured ring. */
        fprintf(stderr, "dhtctl: replicas %s: access denied by %zu replica(s): needs a peer key\n",
                key, denied);
        return EXIT_UNAVAILABLE;
    }
    return 0;
}

/* Write a new key pair: FILE (secret, 0600) and FILE.pub; print the public key. */
static int cmd_keygen(const char *path)
{
    sec_keypair_t kp;
    int rc = sec_keypair_generate(&kp);
    if (rc == 0)
        rc = sec_keypair_save(path, &kp);
    if (rc == -EEXIST) {
        fprintf(stderr, "dhtctl: keygen: %s or %s.pub already exists; not overwriting a key\n",
                path, path);
        return EXIT_USAGE;
    }
    if (rc < 0) {
        fprintf(stderr, "dhtctl: keygen: cannot write %s: %s\n", path, strerror(-rc));
        return 1;
    }
    char z[SEC_Z85_LEN + 1], fp[SEC_FP_SIZE];
    sec_z85_encode(kp.pub.b, z);
    sec_fingerprint(&kp.pub, fp);
    sodium_memzero(&kp, sizeof kp);
    printf("%s\n", z);
    fprintf(stderr, "dhtctl: wrote %s (secret, mode 0600) and %s.pub (fingerprint %s)\n", path,
            path, fp);
    return 0;
}

/* Explain why a key file was refused; the exit status for it. */
static int key_error(const char *what, const char *path, int rc)
{
    if (rc == -EPERM)
        fprintf(stderr,
                "dhtctl: %s %s: group or others may access this secret key; "
                "run chmod 600 %s\n",
                what, path, path);
    else if (rc == -EINVAL)
        fprintf(stderr, "dhtctl: %s %s: not a key file (one line of 40 Z85 characters)\n", what,
                path);
    else
        fprintf(stderr, "dhtctl: %s %s: %s\n", what, path, strerror(-rc));
    return EXIT_USAGE;
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    const char *peer_arg = getenv("DHT_PEER");
    if (!peer_arg || !*peer_arg)
        peer_arg = "tcp://127.0.0.1:7000";
    ctl_t ctl = {.timeout_ms = 3000};
    bool iterative = false, recursive = false;
    const char *key_path = getenv("DHT_KEY");
    if (key_path && !*key_path)
        key_path = NULL;
    enum {
        O_PEER = 256,
        O_JSON,
        O_ITER,
        O_REC,
        O_TIMEOUT,
        O_HELP,
        O_ABSENT,
        O_IFVER,
        O_KEY,
        O_LOG,
        O_WATCH,
        O_COUNT
    };
    double watch_s = 0; /* 0: no --watch */
    bool watch = false;
    unsigned long watch_count = 0;
    log_level_t level = LOG_ERROR;
    /* Options may follow the command; a value starting with '-' goes after "--". */
    static const struct option opts[] = {
        {"peer", required_argument, NULL, O_PEER},
        {"key", required_argument, NULL, O_KEY},
        {"json", no_argument, NULL, O_JSON},
        {"iterative", no_argument, NULL, O_ITER},
        {"recursive", no_argument, NULL, O_REC},
        {"timeout-ms", required_argument, NULL, O_TIMEOUT},
        {"if-absent", no_argument, NULL, O_ABSENT},
        {"if-version", required_argument, NULL, O_IFVER},
        {"log-level", required_argument, NULL, O_LOG},
        {"help", no_argument, NULL, O_HELP},
        {"watch", optional_argument, NULL, O_WATCH},
        {"count", required_argument, NULL, O_COUNT},
        {NULL, 0, NULL, 0},
    };
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_PEER:
            peer_arg = optarg;
            break;
        case O_KEY:
            key_path = optarg;
            break;
        case O_LOG:
            if (log_parse_level(optarg, &level) < 0)
                return usage_error("--log-level must be error, warn, info or debug, got '%s'",
                                   optarg);
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
        case O_ABSENT:
            ctl.cond = KVC_PUT_IF_ABSENT;
            break;
        case O_IFVER:
            if (kv_version_parse(optarg, &ctl.if_version) < 0)
                return usage_error("--if-version takes a version as printed by put --json, "
                                   "got '%s'",
                                   optarg);
            ctl.cond = KVC_PUT_IF_VERSION;
            break;
        case O_WATCH:
            watch = true;
            if (optarg && parse_seconds(optarg, &watch_s) < 0)
                return usage_error("--watch takes seconds (0.1..86400), got '%s'", optarg);
            break;
        case O_COUNT: {
            char *end;
            errno = 0;
            unsigned long v = strtoul(optarg, &end, 10);
            if (*end || end == optarg || optarg[0] == '-' || v < 1 || errno)
                return usage_error("--count takes a positive number of refreshes, got '%s'",
                                   optarg);
            watch_count = v;
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
    if (strcmp(cmd, "keygen") == 0) {
        if (nargs != 1)
            return usage_error("keygen takes one FILE");
        if (sodium_init() < 0)
            return 1;
        return cmd_keygen(args[0]);
    }
    sec_keypair_t key;
    if (key_path) {
        int krc = sec_keypair_load(key_path, &key);
        if (krc < 0)
            return key_error("--key", key_path, krc);
    }
    char peer[ENDPOINT_MAX];
    const char *why = NULL;
    if (endpoint_normalize(peer_arg, peer, sizeof peer, &why) < 0) {
        fprintf(stderr, "dhtctl: bad peer endpoint '%s': %s\n", peer_arg, why);
        return EXIT_USAGE;
    }
    char peer_base[ENDPOINT_MAX];
    uint8_t peer_key[SEC_KEY_BYTES];
    if (key_path && endpoint_split_key(peer, peer_base, peer_key) != 1) {
        fprintf(stderr, "dhtctl: --key needs a secured node's endpoint with its public key: "
                        "--peer tcp://HOST:PORT#KEY (the node's key file .pub; kvnode logs it)\n");
        return EXIT_USAGE;
    }
    static const struct {
        const char *name;
        int min_args, max_args;
    } cmds[] = {
        {"ring", 0, 0}, {"fingers", 0, 0}, {"lookup", 1, 4096}, {"put", 1, 2},     {"get", 1, 1},
        {"del", 1, 1},  {"status", 0, 1},  {"replicas", 1, 1},  {"members", 0, 0},
    };
    int which = -1;
    for (int i = 0; i < (int)(sizeof cmds / sizeof cmds[0]); i++)
        if (strcmp(cmd, cmds[i].name) == 0)
            which = i;
    if (which < 0)
        return usage_error("unknown command '%s'", cmd);
    if (nargs < cmds[which].min_args || nargs > cmds[which].max_args)
        return usage_error("wrong number of arguments for '%s'", cmd);
    if (ctl.cond != KVC_PUT_ALWAYS && strcmp(cmd, "put") != 0 && strcmp(cmd, "del") != 0)
        return usage_error("--if-absent/--if-version only apply to put and del, not '%s'", cmd);
    if ((iterative || recursive) && strcmp(cmd, "lookup") != 0)
        return usage_error("--iterative/--recursive only apply to lookup, not '%s'", cmd);
    if ((watch || watch_count) && strcmp(cmd, "status") != 0)
        return usage_error("--watch/--count only apply to status, not '%s'", cmd);
    if (watch_count && !watch)
        return usage_error("--count needs --watch");
    if (strcmp(cmd, "status") == 0 && nargs == 1) {
        /* status --watch SECONDS */
        if (!watch)
            return usage_error("status takes no argument (did you mean --watch %s?)", args[0]);
        if (watch_s > 0)
            return usage_error("--watch given seconds twice");
        if (parse_seconds(args[0], &watch_s) < 0)
            return usage_error("--watch takes seconds (0.1..86400), got '%s'", args[0]);
    }
    if (watch && watch_s == 0)
        watch_s = 1;

    log_set_level(level);
    if (sodium_init() < 0)
        return 1;
    ctl.zctx = zmq_ctx_new();
    ctl.loop = loop_new();
    ctl.rpc = ctl.loop ? rpc_new(ctl.zctx, ctl.loop) : NULL;
    if (ctl.rpc)
        rpc_watch_plain(ctl.rpc);
    if (!ctl.zctx || !ctl.rpc) {
        fprintf(stderr, "dhtctl: cannot initialise\n");
        return 1;
    }
    if (key_path) {
        rpc_set_key(ctl.rpc, &key);
        sodium_memzero(&key, sizeof key);
    }
    int rc;
    if (strcmp(cmd, "ring") == 0)
        rc = cmd_ring(&ctl, peer);
    else if (strcmp(cmd, "fingers") == 0)
        rc = cmd_fingers(&ctl, peer);
    else if (strcmp(cmd, "members") == 0)
        rc = cmd_members(&ctl, peer);
    else if (strcmp(cmd, "lookup") == 0)
        rc = cmd_lookup(&ctl, peer, args, nargs, iterative);
    else if (strcmp(cmd, "put") == 0)
        rc = cmd_put(&ctl, peer, args[0], nargs == 2 ? args[1] : NULL, false);
    else if (strcmp(cmd, "del") == 0)
        rc = cmd_put(&ctl, peer, args[0], NULL, true);
    else if (strcmp(cmd, "get") == 0)
        rc = cmd_get(&ctl, peer, args[0]);
    else if (strcmp(cmd, "status") == 0)
        rc = cmd_status(&ctl, peer, watch ? (uint64_t)(watch_s * 1000.0 + 0.5) : 0, watch_count);
    else
        rc = cmd_replicas(&ctl, peer, args[0]);
    if (fflush(stdout) != 0 && rc == 0)
        rc = 1;
    rpc_destroy(&ctl.rpc);
    kvc_destroy(&ctl.kvc);
    loop_destroy(&ctl.loop);
    zmq_ctx_term(ctl.zctx);
    return rc;
}
