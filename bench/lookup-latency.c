/*
 * lookup-latency.c — time real Chord lookups against running kvnode processes.
 *
 * Build (bench/lookup-bench.sh does this into $BIN_DIR; nothing in CMake):
 *   cc -O2 -std=c11 -D_GNU_SOURCE -I ringlib -o lookup-latency bench/lookup-latency.c \
 *      build-bench/ringlib/libring.a $(pkg-config --cflags --libs libzmq libsodium)
 *
 * Modes (EP is a node, e.g. tcp://127.0.0.1:PORT; requests go out one at a time):
 *   lookup-latency ping      EP [N=10000]
 *       PING -> PING_R over one DEALER socket: the node's per-request floor
 *       (its event loop + ROUTER) on top of the raw ZeroMQ round trip.
 *   lookup-latency recursive EP [N=10000]
 *       FIND{key, mode=recursive, hops=0} over one DEALER socket; the entry node
 *       forwards node to node and relays the owner back (FIND_R done=1).
 *   lookup-latency iterative EP [N=10000]
 *       FIND{mode=iterative} to EP; every FIND_R done=0 names the next hop, which
 *       the client asks itself (one cached DEALER per node), until done=1.
 *   lookup-latency exec      EP [N=200] DHTCTL [--iterative]
 *       posix_spawn `DHTCTL --peer EP lookup KEY [--iterative]` per lookup and
 *       wait for it: process start + ZMQ context + connect + INFO + FIND.
 *   lookup-latency spawn     EP [N=200] DHTCTL
 *       the same with `DHTCTL --help`: process start and dynamic linking only,
 *       the floor under `exec`.
 *
 * Keys are "bench-<i>" hashed with ringlib's ring_hash (as dhtctl does), so
 * every run asks the same positions. Before timing, the ring is walked with
 * INFO (successor pointers) and every FIND answer is checked against the
 * successor of the key in that membership ("wrong"); timeouts (2 s) count as
 * "fail". 200 untimed warm-up requests precede the N timed ones (10 for exec).
 *
 * Output: a human line and a RESULT line in the shared bench format
 *   RESULT label=dhtfs run=.. fstype=- test=lookup_recursive unit=ops/s value=..
 *          lat_mean_us=.. lat_p99_us=.. lat_p50_us=.. hops_avg=.. rtts_avg=.. n=..
 *          fail=.. wrong=.. nodes=.. [h<K>_n=.. h<K>_p50_us=..]...
 * (the h<K> fields split the FIND latencies by K node-to-node forwards).
 * Exit status 0 when every lookup succeeded and matched, 1 otherwise.
 */
#include "ring_id.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

extern char **environ;

enum { MAX_CONNS = 64, MAX_NODES = 256, RCV_TIMEOUT_MS = 2000, WARM = 200 };

static void *zctx;
static uint64_t next_req = 1;
static unsigned id_bits;
static ring_id_t members[MAX_NODES];
static size_t nmembers;

typedef struct {
    char addr[ENDPOINT_MAX];
    void *sock;
} conn_t;
static conn_t conns[MAX_CONNS];
static size_t nconns;

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int cmp_id(const void *a, const void *b)
{
    ring_id_t x = *(const ring_id_t *)a, y = *(const ring_id_t *)b;
    return x < y ? -1 : x > y;
}

static void *open_sock(const char *addr)
{
    void *s = zmq_socket(zctx, ZMQ_DEALER);
    int linger = 0, tmo = RCV_TIMEOUT_MS;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    if (zmq_connect(s, addr) < 0) {
        fprintf(stderr, "lookup-latency: connect %s: %s\n", addr, zmq_strerror(zmq_errno()));
        exit(2);
    }
    return s;
}

static conn_t *get_conn(const char *addr)
{
    for (size_t i = 0; i < nconns; i++)
        if (strcmp(conns[i].addr, addr) == 0)
            return &conns[i];
    if (nconns == MAX_CONNS) {
        fprintf(stderr, "lookup-latency: more than %d peers\n", MAX_CONNS);
        exit(2);
    }
    conn_t *c = &conns[nconns++];
    snprintf(c->addr, sizeof c->addr, "%s", addr);
    c->sock = open_sock(addr);
    return c;
}

/*
 * One request, one reply on addr's DEALER. Returns 0, -ETIMEDOUT (socket
 * reopened so a late reply cannot be mistaken), -EBADMSG, or -err for an
 * ERROR reply (printed once).
 */
static int call(const char *addr, wire_msg_t *req, wire_msg_t *rep)
{
    static uint8_t buf[WIRE_FRAME_MAX];
    conn_t *c = get_conn(addr);
    req->req_id = next_req++;
    int len = wire_encode(req, buf, sizeof buf);
    if (len < 0 || zmq_send(c->sock, buf, (size_t)len, 0) < 0)
        return -EIO;
    for (;;) {
        int n = zmq_recv(c->sock, buf, sizeof buf, 0);
        if (n < 0) {
            zmq_close(c->sock);
            c->sock = open_sock(addr);
            return -ETIMEDOUT;
        }
        if (n > (int)sizeof buf || wire_decode(buf, (size_t)n, rep) < 0)
            return -EBADMSG;
        if (rep->req_id != req->req_id)
            continue; /* a late reply to an earlier, timed-out request */
        if (rep->type == WIRE_ERROR) {
            static int shown;
            if (shown++ < 5)
                fprintf(stderr, "lookup-latency: %s answered ERROR %d: %s\n", addr, rep->err_code,
                        rep->err_msg);
            return rep->err_code > 0 ? -rep->err_code : -EIO;
        }
        if (rep->type != (req->type | WIRE_REPLY))
            return -EBADMSG;
        return 0;
    }
}

/* Membership by walking successor pointers from ep (INFO). */
static int walk_ring(const char *ep)
{
    wire_msg_t req, *r = malloc(sizeof *r);
    char cur[ENDPOINT_MAX];
    snprintf(cur, sizeof cur, "%s", ep);
    nmembers = 0;
    for (;;) {
        wire_init(&req, WIRE_INFO, 0);
        int rc = call(cur, &req, r);
        if (rc < 0) {
            fprintf(stderr, "lookup-latency: INFO to %s: %s\n", cur, strerror(-rc));
            free(r);
            return -1;
        }
        id_bits = r->id_bits;
        if (nmembers && r->node.id == members[0])
            break;
        if (nmembers == MAX_NODES) {
            free(r);
            return -1;
        }
        members[nmembers++] = r->node.id;
        if (r->nsucc == 0)
            break;
        snprintf(cur, sizeof cur, "%s", r->succ[0].addr);
    }
    free(r);
    qsort(members, nmembers, sizeof *members, cmp_id);
    return 0;
}

static ring_id_t expected_owner(ring_id_t pos)
{
    for (size_t i = 0; i < nmembers; i++)
        if (members[i] >= pos)
            return members[i];
    return members[0];
}

static ring_id_t key_pos(long i, char *key, size_t cap)
{
    snprintf(key, cap, "bench-%ld", i);
    return ring_hash(key, strlen(key), id_bits);
}

typedef struct {
    unsigned hops, rtts;
    int rc;
    bool wrong;
} one_t;

static one_t do_ping(const char *ep, long i)
{
    (void)i;
    wire_msg_t req, rep;
    wire_init(&req, WIRE_PING, 0);
    one_t o = {0, 1, call(ep, &req, &rep), false};
    return o;
}

static one_t do_find(const char *ep, long i, bool iterative)
{
    static wire_msg_t rep;
    wire_msg_t req;
    char key[64], cur[ENDPOINT_MAX];
    ring_id_t pos = key_pos(i, key, sizeof key);
    one_t o = {0, 0, 0, false};
    snprintf(cur, sizeof cur, "%s", ep);
    for (;;) {
        wire_init(&req, WIRE_FIND, 0);
        req.key = pos;
        req.mode = iterative ? WIRE_FIND_ITERATIVE : WIRE_FIND_RECURSIVE;
        req.hops = 0;
        o.rtts++;
        o.rc = call(cur, &req, &rep);
        if (o.rc < 0)
            return o;
        if (rep.done)
            break;
        if (!iterative || ++o.hops > 2 * id_bits + 16) {
            o.rc = -ELOOP;
            return o;
        }
        snprintf(cur, sizeof cur, "%s", rep.node.addr);
    }
    if (!iterative)
        o.hops = rep.hops;
    o.wrong = rep.node.id != expected_owner(pos);
    return o;
}

static const char *g_dhtctl;
static bool g_exec_iter, g_help_only;

static one_t do_exec(const char *ep, long i)
{
    char key[64];
    snprintf(key, sizeof key, "bench-%ld", i);
    char *argv[] = {(char *)g_dhtctl,
                    "--peer",
                    (char *)ep,
                    "lookup",
                    key,
                    g_exec_iter ? "--iterative" : "--recursive",
                    NULL};
    char *help[] = {(char *)g_dhtctl, "--help", NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    /* dhtctl recursive: INFO + FIND; iterative: INFO + hops+1 (unknown here) */
    one_t o = {0, g_help_only ? 0 : g_exec_iter ? 0 : 2, 0, false};
    if (posix_spawn(&pid, g_dhtctl, &fa, NULL, g_help_only ? help : argv, environ) != 0) {
        o.rc = -errno;
        posix_spawn_file_actions_destroy(&fa);
        return o;
    }
    posix_spawn_file_actions_destroy(&fa);
    int st;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        o.rc = -EIO;
    return o;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: lookup-latency ping|recursive|iterative EP [N]\n"
                        "       lookup-latency exec EP [N] DHTCTL [--iterative]\n"
                        "       lookup-latency spawn EP [N] DHTCTL\n");
        return 2;
    }
    const char *mode = argv[1], *ep = argv[2];
    g_help_only = strcmp(mode, "spawn") == 0;
    bool exec_mode = strcmp(mode, "exec") == 0 || g_help_only;
    long n = argc > 3 ? atol(argv[3]) : exec_mode ? 200 : 10000;
    if (n < 1)
        return 2;
    if (exec_mode) {
        if (argc < 5)
            return 2;
        g_dhtctl = argv[4];
        g_exec_iter = argc > 5 && strcmp(argv[5], "--iterative") == 0;
    }
    if (sodium_init() < 0)
        return 2;
    zctx = zmq_ctx_new();
    if (walk_ring(ep) < 0)
        return 3;

    one_t (*fn)(const char *, long);
    const char *test;
    int which;
    if (strcmp(mode, "ping") == 0)
        which = 0, test = "ping";
    else if (strcmp(mode, "recursive") == 0)
        which = 1, test = "lookup_recursive";
    else if (strcmp(mode, "iterative") == 0)
        which = 2, test = "lookup_iterative";
    else if (g_help_only)
        which = 3, test = "dhtctl_help_spawn";
    else if (exec_mode)
        which = 3, test = g_exec_iter ? "dhtctl_lookup_iterative" : "dhtctl_lookup_recursive";
    else
        return 2;
    fn = which == 3 ? do_exec : which == 0 ? do_ping : NULL;

    long warm = which == 3 ? 10 : WARM;
    double *lat = malloc(sizeof(double) * (size_t)n);
    /* the same latencies split by hop count (0..HMAX-1 forwards) */
    enum { HMAX = 8 };
    double *byh[HMAX];
    long nh[HMAX] = {0};
    for (int h = 0; h < HMAX; h++)
        byh[h] = malloc(sizeof(double) * (size_t)n);
    long fail = 0, wrong = 0;
    double hops = 0, rtts = 0;
    for (long i = -warm; i < n; i++) {
        long k = i < 0 ? 1000000 - i : i; /* warm-up keys differ from timed ones */
        double a = now_us();
        one_t o = fn ? fn(ep, k) : do_find(ep, k, which == 2);
        double d = now_us() - a;
        if (i < 0)
            continue;
        lat[i] = d;
        if (o.rc < 0)
            fail++;
        else if (o.hops < HMAX)
            byh[o.hops][nh[o.hops]++] = d;
        wrong += o.wrong;
        hops += o.hops;
        rtts += o.rtts;
    }
    double tot = 0, sum = 0;
    for (long i = 0; i < n; i++)
        tot += lat[i];
    sum = tot;
    qsort(lat, (size_t)n, sizeof *lat, cmpd);
    long i99 = (long)(0.99 * (double)n);
    double p50 = lat[n / 2], p99 = lat[i99 < n ? i99 : n - 1];
    double ops = (double)n / (tot / 1e6);
    printf("%-24s n=%ld nodes=%zu %.0f ops/s  mean %.1f us  p50 %.1f us  p99 %.1f us  max %.0f us"
           "  hops %.3f  rtts %.3f  fail %ld  wrong %ld\n",
           test, n, nmembers, ops, sum / (double)n, p50, p99, lat[n - 1], hops / (double)n,
           rtts / (double)n, fail, wrong);
    char extra[512] = "";
    size_t el = 0;
    if (which == 1 || which == 2) {
        printf("  by hops:");
        for (int h = 0; h < HMAX; h++) {
            if (!nh[h])
                continue;
            qsort(byh[h], (size_t)nh[h], sizeof(double), cmpd);
            double m = byh[h][nh[h] / 2];
            printf("  %d: n=%ld p50 %.1f us", h, nh[h], m);
            el += (size_t)snprintf(extra + el, sizeof extra - el, " h%d_n=%ld h%d_p50_us=%.2f", h,
                                   nh[h], h, m);
        }
        printf("\n");
    }
    printf("RESULT label=dhtfs run=%ld fstype=- test=%s unit=ops/s value=%.0f lat_mean_us=%.2f "
           "lat_p99_us=%.2f lat_p50_us=%.2f hops_avg=%.3f rtts_avg=%.3f n=%ld fail=%ld wrong=%ld "
           "nodes=%zu%s\n",
           (long)time(NULL), test, ops, sum / (double)n, p99, p50, hops / (double)n,
           rtts / (double)n, n, fail, wrong, nmembers, extra);
    for (int h = 0; h < HMAX; h++)
        free(byh[h]);
    for (size_t i = 0; i < nconns; i++)
        zmq_close(conns[i].sock);
    zmq_ctx_term(zctx);
    free(lat);
    return fail || wrong ? 1 : 0;
}
