/*
 * kv-load.c — closed-loop load generator for the dhtfs store (kvclient), with
 * the same load against memcached for reference.
 *
 *   kv-load --peer EP[,EP..] | --memcached HOST:PORT
 *           --op put|get [--size BYTES=1024] [--keys K=1000] [--concurrency C=1]
 *           [--seconds S] [--ops N] [--prefix P=kvl] [--seed X=1] [--warmup W]
 *           [--timeout-ms MS=2000] [--label L] [--test T] [--run R] [--key FILE]
 *
 * C operations are kept in flight from one thread (one event loop): each
 * completion starts the next operation. Operation j (counting warm-up ones)
 * uses key "<P>-<j mod K>"; the value of key i is a pure function of (X, i,
 * BYTES): a 16-byte header (magic, seed, i) followed by bytes of a seeded
 * random buffer at an offset that depends on i. So a get run with the same
 * --prefix/--seed/--size/--keys as an earlier put run knows exactly what every
 * key must hold, and checks every byte ("wrong" if not, "missing" if the key
 * is absent). The first W operations (default 5*C) are not timed. The run
 * stops issuing after S seconds or N timed operations, whichever first (with
 * neither: N = K), and waits for what is in flight.
 *
 * dhtfs: kvc_new(rpc, loop, peers, n, timeout_ms), kvc_put(KVC_PUT_ALWAYS) /
 * kvc_get, as dhtfs itself will use them (kvnode/kvclient.h). --key FILE: the
 * secret key presented to a secured ring (peers given as tcp://HOST:PORT#KEY).
 * memcached: one TCP connection per concurrent operation, text protocol
 * ("set K 0 0 LEN", "get K"), non-blocking sockets polled by one poll() loop;
 * the same keys, values, verification and timing. (memcached needs -I 2m for
 * 1 MiB values: an item holds the key and the header too.)
 *
 * Output: a human line, then a RESULT line in ../shared/bench format:
 *   RESULT label=dhtfs run=R fstype=- test=put_1KiB_c4 unit=ops/s value=OPS
 *     lat_mean_us=.. lat_p99_us=.. lat_p50_us=.. MiBps=.. n=.. errors=..
 *     timeouts=.. missing=.. wrong=.. size=.. conc=.. keys_written=.. secs=..
 *     lat_max_us=.. client_cpu_us_per_op=.. client_minflt_per_op=.. direct=.. coordinated=..
 * (errors = every operation that did not return the expected result:
 * timeouts + missing + wrong + other). keys_written (put): how many distinct
 * keys 0..keys_written-1 hold their value (min(ops issued, K)) — give it as
 * --keys to the get run. client_*_per_op: this process's CPU time (user+sys)
 * and minor page faults over the whole run (setup and warm-up included) per
 * operation issued. direct / coordinated (dhtfs gets, warm-up included;
 * "-" otherwise): answered by R replicas read directly / handed to the key's
 * authority after a direct read (kvc_read_counts). Exit 0 if errors == 0, 1
 * otherwise, 2 usage/setup.
 *
 * Build (bench/kv-bench.sh does this; nothing in CMake):
 *   cc -O2 -std=c11 -D_GNU_SOURCE -I kvnode -I ringlib -o kv-load bench/kv-load.c \
 *      build-kvbench/kvnode/libkvio.a build-kvbench/ringlib/libring.a -lzmq -lsodium -lm
 */
#include "kvclient.h"
#include "log.h"
#include "loop.h"
#include "rpc.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

/*
 * Weak: kv-ab.sh and ae-bench.sh build this file against the libraries of
 * older trees, which lack it (their RESULT lines then say "-").
 */
extern void kvc_read_counts(const kvc_t *c, uint64_t *direct, uint64_t *coordinated)
    __attribute__((weak));

enum { HDR = 16, OFF_SPAN = 65536, MAX_CONC = 256 };

/* ------------------------------------------------------------ settings */

static struct {
    const char *peers, *memcached, *prefix, *label, *test, *run, *key;
    bool put;
    size_t size;
    long keys, ops, warmup, conc;
    double seconds;
    uint64_t seed;
    unsigned timeout_ms;
} cfg = {.prefix = "kvl",
         .size = 1024,
         .keys = 1000,
         .conc = 1,
         .seed = 1,
         .timeout_ms = 2000,
         .warmup = -1};

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* ------------------------------------------------------------ values */

static uint8_t *base; /* cfg.size + OFF_SPAN seeded random bytes */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static void make_base(void)
{
    size_t n = cfg.size + OFF_SPAN + 8;
    base = malloc(n);
    if (!base) {
        fprintf(stderr, "kv-load: out of memory\n");
        exit(2);
    }
    uint64_t s = mix64(cfg.seed ^ 0x5eed5eed5eedull) | 1;
    for (size_t i = 0; i + 8 <= n; i += 8) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        memcpy(base + i, &s, 8);
    }
}

static size_t body_off(long i)
{
    return (size_t)(mix64((uint64_t)i * 0x9e3779b97f4a7c15ull + cfg.seed) % OFF_SPAN);
}

static void make_header(long i, uint8_t h[HDR])
{
    uint32_t magic = 0x314c564b; /* "KVL1" */
    uint32_t seed = (uint32_t)cfg.seed;
    uint64_t k = (uint64_t)i;
    memcpy(h, &magic, 4);
    memcpy(h + 4, &seed, 4);
    memcpy(h + 8, &k, 8);
}

/* The value of key i into out (cfg.size bytes). */
static void make_value(long i, uint8_t *out)
{
    uint8_t h[HDR];
    make_header(i, h);
    size_t hl = cfg.size < HDR ? cfg.size : HDR;
    memcpy(out, h, hl);
    if (cfg.size > HDR)
        memcpy(out + HDR, base + body_off(i), cfg.size - HDR);
}

static bool value_ok(long i, const uint8_t *v, size_t len)
{
    if (len != cfg.size)
        return false;
    uint8_t h[HDR];
    make_header(i, h);
    size_t hl = cfg.size < HDR ? cfg.size : HDR;
    if (memcmp(v, h, hl) != 0)
        return false;
    return cfg.size <= HDR || memcmp(v + HDR, base + body_off(i), cfg.size - HDR) == 0;
}

static void make_key(long i, char *key, size_t cap)
{
    snprintf(key, cap, "%s-%ld", cfg.prefix, i);
}

/* ------------------------------------------------------------ the run */

typedef struct slot {
    int idx;
    long op_no; /* operation number, warm-up included */
    long key;
    bool timed;
    double t0;
    uint8_t *val; /* put: the value being written */
    /* memcached connection */
    int fd;
    char cmd[640];
    struct iovec iov[3];
    int niov;
    size_t out_left;
    uint8_t *rbuf;
    size_t rcap, rlen;
    bool busy;
} slot_t;

static struct {
    long issued; /* operations started, warm-up included */
    long timed_started;
    long active;    /* operations in flight */
    double t_first; /* first timed start */
    double t_last;  /* last timed completion */
    double t_stop;  /* no new operation after this (0: none) */
    double *lat;
    long nlat, cap;
    long errors, timeouts, missing, wrong, other;
    int shown;
    bool stopping;
    bool counted;                 /* kvc_read_counts ran (dhtfs gets) */
    uint64_t direct, coordinated; /* its counts, at the end */
} run;

static void note_error(const char *what, long key, const char *detail)
{
    if (run.shown++ < 5)
        fprintf(stderr, "kv-load: %s %s-%ld: %s\n", cfg.put ? "put" : "get", cfg.prefix, key,
                detail ? detail : what);
    (void)what;
}

/* Next operation for a slot, or false when the run is over. */
static bool next_op(slot_t *s)
{
    long limit = cfg.ops > 0 ? cfg.ops : (cfg.seconds > 0 ? -1 : cfg.keys);
    if (run.stopping)
        return false;
    if (run.issued >= cfg.warmup) {
        if (limit >= 0 && run.timed_started >= limit)
            return false;
        double t = now_us();
        if (run.timed_started == 0) {
            run.t_first = t;
            if (cfg.seconds > 0)
                run.t_stop = t + cfg.seconds * 1e6;
        } else if (run.t_stop > 0 && t >= run.t_stop) {
            return false;
        }
        s->timed = true;
        run.timed_started++;
    } else {
        s->timed = false;
    }
    s->op_no = run.issued++;
    s->key = s->op_no % cfg.keys;
    return true;
}

static void record(slot_t *s, double t1)
{
    if (!s->timed)
        return;
    if (run.nlat == run.cap) {
        run.cap = run.cap ? run.cap * 2 : 4096;
        run.lat = realloc(run.lat, sizeof *run.lat * (size_t)run.cap);
        if (!run.lat) {
            fprintf(stderr, "kv-load: out of memory\n");
            exit(2);
        }
    }
    run.lat[run.nlat++] = t1 - s->t0;
    run.t_last = t1;
}

/* ------------------------------------------------------------ dhtfs */

static kvc_t *kvc;
static loop_t *loop;

static void dht_start(slot_t *s);

static void dht_done(const kvc_result_t *res, void *arg)
{
    slot_t *s = arg;
    double t1 = now_us();
    run.active--;
    if (res->rc == 0) {
        if (!cfg.put && !value_ok(s->key, res->value, res->value_len)) {
            run.wrong++;
            run.errors++;
            char d[96];
            snprintf(d, sizeof d, "wrong value (%zu bytes, want %zu)", res->value_len, cfg.size);
            note_error("wrong", s->key, d);
        }
    } else {
        run.errors++;
        if (res->rc == -ENOENT)
            run.missing++;
        else if (res->rc == -ETIMEDOUT)
            run.timeouts++;
        else
            run.other++;
        char d[400];
        snprintf(d, sizeof d, "%s%s%s", strerror(-res->rc), res->message ? ": " : "",
                 res->message ? res->message : "");
        note_error("error", s->key, d);
    }
    record(s, t1);
    dht_start(s);
    if (run.active == 0)
        loop_stop(loop);
}

static void dht_start(slot_t *s)
{
    if (!next_op(s))
        return;
    char key[512];
    make_key(s->key, key, sizeof key);
    int rc;
    s->t0 = now_us();
    if (cfg.put) {
        make_value(s->key, s->val);
        rc = kvc_put(kvc, key, strlen(key), s->val, cfg.size, KVC_PUT_ALWAYS, (kv_version_t){0, 0},
                     dht_done, s);
    } else {
        rc = kvc_get(kvc, key, strlen(key), dht_done, s);
    }
    if (rc < 0) {
        fprintf(stderr, "kv-load: cannot submit: %s\n", strerror(-rc));
        exit(2);
    }
    run.active++;
}

static int run_dhtfs(slot_t *slots)
{
    log_set_level(LOG_ERROR);
    char *list = strdup(cfg.peers);
    const char *seeds[32];
    size_t nseeds = 0;
    for (char *tok = strtok(list, ","); tok && nseeds < 32; tok = strtok(NULL, ","))
        seeds[nseeds++] = tok;
    void *zctx = rpc_ctx_new();
    loop = loop_new();
    rpc_t *rpc = rpc_new(zctx, loop);
    if (rpc && cfg.key) {
        sec_keypair_t kp;
        int krc = sec_keypair_load(cfg.key, &kp);
        if (krc < 0 || rpc_set_key(rpc, &kp) < 0) {
            fprintf(stderr, "kv-load: --key %s: %s\n", cfg.key, strerror(krc < 0 ? -krc : EINVAL));
            return 2;
        }
    }
    kvc = rpc ? kvc_new(rpc, loop, seeds, nseeds, cfg.timeout_ms) : NULL;
    if (!zctx || !loop || !kvc) {
        fprintf(stderr, "kv-load: cannot initialise the client\n");
        return 2;
    }
    for (long i = 0; i < cfg.conc; i++)
        dht_start(&slots[i]);
    if (run.active > 0)
        loop_run(loop);
    run.counted = !cfg.put && kvc_read_counts;
    if (run.counted)
        kvc_read_counts(kvc, &run.direct, &run.coordinated);
    rpc_destroy(&rpc);
    kvc_destroy(&kvc);
    loop_destroy(&loop);
    zmq_ctx_term(zctx);
    free(list);
    return 0;
}

/* ------------------------------------------------------------ memcached */

static int mc_connect(const char *hostport)
{
    char host[256];
    snprintf(host, sizeof host, "%s", hostport);
    char *colon = strrchr(host, ':');
    if (!colon)
        return -1;
    *colon = '\0';
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(host, colon + 1, &hints, &ai) != 0)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        freeaddrinfo(ai);
        close(fd);
        return -1;
    }
    freeaddrinfo(ai);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

static void mc_start(slot_t *s)
{
    s->busy = false;
    if (!next_op(s))
        return;
    char key[512];
    make_key(s->key, key, sizeof key);
    s->t0 = now_us();
    s->rlen = 0;
    if (cfg.put) {
        make_value(s->key, s->val);
        int n = snprintf(s->cmd, sizeof s->cmd, "set %s 0 0 %zu\r\n", key, cfg.size);
        s->iov[0] = (struct iovec){s->cmd, (size_t)n};
        s->iov[1] = (struct iovec){s->val, cfg.size};
        s->iov[2] = (struct iovec){"\r\n", 2};
        s->niov = 3;
        s->out_left = (size_t)n + cfg.size + 2;
    } else {
        int n = snprintf(s->cmd, sizeof s->cmd, "get %s\r\n", key);
        s->iov[0] = (struct iovec){s->cmd, (size_t)n};
        s->niov = 1;
        s->out_left = (size_t)n;
    }
    s->busy = true;
    run.active++;
}

static void mc_flush(slot_t *s)
{
    while (s->out_left > 0) {
        int first = 0;
        while (first < s->niov && s->iov[first].iov_len == 0)
            first++;
        ssize_t w = writev(s->fd, s->iov + first, s->niov - first);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            fprintf(stderr, "kv-load: memcached write: %s\n", strerror(errno));
            exit(2);
        }
        s->out_left -= (size_t)w;
        for (int i = first; i < s->niov && w > 0; i++) {
            size_t k = (size_t)w < s->iov[i].iov_len ? (size_t)w : s->iov[i].iov_len;
            s->iov[i].iov_base = (char *)s->iov[i].iov_base + k;
            s->iov[i].iov_len -= k;
            w -= (ssize_t)k;
        }
    }
}

/* 1 when the reply is complete (and accounted), 0 when more bytes are needed. */
static int mc_parse(slot_t *s)
{
    char *eol = memmem(s->rbuf, s->rlen, "\r\n", 2);
    if (!eol)
        return 0;
    size_t line = (size_t)(eol - (char *)s->rbuf) + 2;
    int bad = 0, miss = 0;
    const uint8_t *val = NULL;
    size_t vlen = 0;
    if (cfg.put) {
        if (line != 8 || memcmp(s->rbuf, "STORED\r\n", 8) != 0)
            bad = 1;
    } else if (line == 5 && memcmp(s->rbuf, "END\r\n", 5) == 0) {
        miss = 1;
    } else if (s->rlen >= 6 && memcmp(s->rbuf, "VALUE ", 6) == 0) {
        /* VALUE <key> <flags> <bytes>\r\n<data>\r\nEND\r\n */
        char *sp = memrchr(s->rbuf, ' ', line);
        vlen = strtoul(sp + 1, NULL, 10);
        if (s->rlen < line + vlen + 7)
            return 0;
        val = s->rbuf + line;
        if (memcmp(val + vlen, "\r\nEND\r\n", 7) != 0)
            bad = 1;
    } else {
        bad = 1;
    }
    double t1 = now_us();
    run.active--;
    if (bad) {
        run.errors++;
        run.other++;
        char d[64];
        snprintf(d, sizeof d, "unexpected reply '%.40s'", (char *)s->rbuf);
        for (char *p = d; *p; p++)
            if (*p == '\r' || *p == '\n')
                *p = ' ';
        note_error("error", s->key, d);
    } else if (miss) {
        run.errors++;
        run.missing++;
        note_error("missing", s->key, "not found");
    } else if (!cfg.put && !value_ok(s->key, val, vlen)) {
        run.errors++;
        run.wrong++;
        note_error("wrong", s->key, "wrong value");
    }
    record(s, t1);
    return 1;
}

static int run_memcached(slot_t *slots)
{
    for (long i = 0; i < cfg.conc; i++) {
        slots[i].fd = mc_connect(cfg.memcached);
        if (slots[i].fd < 0) {
            fprintf(stderr, "kv-load: cannot connect to memcached at %s\n", cfg.memcached);
            return 2;
        }
        slots[i].rcap = cfg.size + 1024;
        slots[i].rbuf = malloc(slots[i].rcap);
    }
    struct pollfd pfd[MAX_CONC];
    for (long i = 0; i < cfg.conc; i++) {
        mc_start(&slots[i]);
        if (slots[i].busy)
            mc_flush(&slots[i]);
    }
    while (run.active > 0) {
        for (long i = 0; i < cfg.conc; i++) {
            slot_t *s = &slots[i];
            pfd[i].fd = s->busy ? s->fd : -1;
            pfd[i].events = (short)(POLLIN | (s->out_left ? POLLOUT : 0));
            pfd[i].revents = 0;
        }
        int n = poll(pfd, (nfds_t)cfg.conc, 10000);
        if (n < 0 && errno != EINTR) {
            perror("kv-load: poll");
            return 2;
        }
        if (n == 0) {
            fprintf(stderr, "kv-load: memcached silent for 10 s\n");
            return 2;
        }
        for (long i = 0; i < cfg.conc; i++) {
            slot_t *s = &slots[i];
            if (!s->busy)
                continue;
            if (pfd[i].revents & POLLOUT)
                mc_flush(s);
            if (pfd[i].revents & (POLLIN | POLLERR | POLLHUP)) {
                for (;;) {
                    if (s->rlen == s->rcap) {
                        fprintf(stderr, "kv-load: memcached reply too large\n");
                        return 2;
                    }
                    ssize_t r = read(s->fd, s->rbuf + s->rlen, s->rcap - s->rlen);
                    if (r == 0) {
                        fprintf(stderr, "kv-load: memcached closed the connection\n");
                        return 2;
                    }
                    if (r < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                            break;
                        perror("kv-load: memcached read");
                        return 2;
                    }
                    s->rlen += (size_t)r;
                    if (mc_parse(s)) {
                        mc_start(s);
                        if (s->busy)
                            mc_flush(s);
                        break;
                    }
                }
            }
        }
    }
    for (long i = 0; i < cfg.conc; i++) {
        close(slots[i].fd);
        free(slots[i].rbuf);
    }
    return 0;
}

/* ------------------------------------------------------------ main */

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: kv-load --peer EP[,EP..] | --memcached HOST:PORT  --op put|get\n"
            "               [--size BYTES] [--keys K] [--concurrency C] [--seconds S | --ops N]\n"
            "               [--prefix P] [--seed X] [--warmup W] [--timeout-ms MS]\n"
            "               [--label L] [--test T] [--run R] [--key FILE]\n");
}

static size_t parse_size(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (*end == 'k' || *end == 'K')
        v *= 1024;
    else if (*end == 'm' || *end == 'M')
        v *= 1048576;
    return (size_t)v;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"peer", required_argument, NULL, 'p'},    {"memcached", required_argument, NULL, 'm'},
        {"op", required_argument, NULL, 'o'},      {"size", required_argument, NULL, 'z'},
        {"keys", required_argument, NULL, 'k'},    {"concurrency", required_argument, NULL, 'c'},
        {"seconds", required_argument, NULL, 's'}, {"ops", required_argument, NULL, 'n'},
        {"prefix", required_argument, NULL, 'P'},  {"seed", required_argument, NULL, 'S'},
        {"warmup", required_argument, NULL, 'w'},  {"timeout-ms", required_argument, NULL, 't'},
        {"label", required_argument, NULL, 'L'},   {"test", required_argument, NULL, 'T'},
        {"run", required_argument, NULL, 'R'},     {"key", required_argument, NULL, 'K'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    const char *op = NULL;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'p':
            cfg.peers = optarg;
            break;
        case 'm':
            cfg.memcached = optarg;
            break;
        case 'o':
            op = optarg;
            break;
        case 'z':
            cfg.size = parse_size(optarg);
            break;
        case 'k':
            cfg.keys = atol(optarg);
            break;
        case 'c':
            cfg.conc = atol(optarg);
            break;
        case 's':
            cfg.seconds = atof(optarg);
            break;
        case 'n':
            cfg.ops = atol(optarg);
            break;
        case 'P':
            cfg.prefix = optarg;
            break;
        case 'S':
            cfg.seed = strtoull(optarg, NULL, 0);
            break;
        case 'w':
            cfg.warmup = atol(optarg);
            break;
        case 't':
            cfg.timeout_ms = (unsigned)atol(optarg);
            break;
        case 'L':
            cfg.label = optarg;
            break;
        case 'T':
            cfg.test = optarg;
            break;
        case 'R':
            cfg.run = optarg;
            break;
        case 'K':
            cfg.key = optarg;
            break;
        default:
            usage();
            return 2;
        }
    }
    if (!op || (strcmp(op, "put") && strcmp(op, "get")) || !!cfg.peers == !!cfg.memcached ||
        cfg.size < 1 || cfg.size > 4 * 1048576 || cfg.keys < 1 || cfg.conc < 1 ||
        cfg.conc > MAX_CONC || strlen(cfg.prefix) > 200) {
        usage();
        return 2;
    }
    cfg.put = strcmp(op, "put") == 0;
    if (cfg.warmup < 0)
        cfg.warmup = 5 * cfg.conc;
    if (sodium_init() < 0)
        return 2;
    make_base();

    slot_t *slots = calloc((size_t)cfg.conc, sizeof *slots);
    for (long i = 0; i < cfg.conc; i++) {
        slots[i].idx = (int)i;
        slots[i].val = malloc(cfg.size);
        if (!slots[i].val)
            return 2;
    }
    int rc = cfg.memcached ? run_memcached(slots) : run_dhtfs(slots);
    if (rc)
        return rc;

    long n = run.nlat;
    char sz[32];
    if (cfg.size % 1048576 == 0)
        snprintf(sz, sizeof sz, "%zuMiB", cfg.size / 1048576);
    else if (cfg.size % 1024 == 0)
        snprintf(sz, sizeof sz, "%zuKiB", cfg.size / 1024);
    else
        snprintf(sz, sizeof sz, "%zuB", cfg.size);
    char test[128];
    if (cfg.test)
        snprintf(test, sizeof test, "%s", cfg.test);
    else
        snprintf(test, sizeof test, "%s_%s_c%ld", op, sz, cfg.conc);
    const char *label = cfg.label ? cfg.label : cfg.memcached ? "memcached" : "dhtfs";
    double secs = n ? (run.t_last - run.t_first) / 1e6 : 0;
    double ops = secs > 0 ? (double)n / secs : 0, mean = 0, p50 = 0, p99 = 0, mx = 0;
    if (n) {
        for (long i = 0; i < n; i++)
            mean += run.lat[i];
        mean /= (double)n;
        qsort(run.lat, (size_t)n, sizeof *run.lat, cmpd);
        p50 = run.lat[n / 2];
        long k = (long)ceil(0.99 * (double)n) - 1;
        p99 = run.lat[k < 0 ? 0 : k];
        mx = run.lat[n - 1];
    }
    long written = run.issued < cfg.keys ? run.issued : cfg.keys;
    /* The client's own CPU time and page faults (whole run, warm-up included). */
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu_us = (double)ru.ru_utime.tv_sec * 1e6 + (double)ru.ru_utime.tv_usec +
                    (double)ru.ru_stime.tv_sec * 1e6 + (double)ru.ru_stime.tv_usec;
    long all_ops = run.issued > 0 ? run.issued : 1;
    double mibps = ops * (double)cfg.size / 1048576.0;
    double load1 = 0;
    FILE *la = fopen("/proc/loadavg", "r");
    if (la) {
        if (fscanf(la, "%lf", &load1) != 1)
            load1 = 0;
        fclose(la);
    }
    printf("%-10s %-18s n=%ld in %.2f s: %.0f ops/s (%.1f MiB/s)  mean %.0f us  p50 %.0f us  "
           "p99 %.0f us  max %.0f us  errors %ld (timeouts %ld missing %ld wrong %ld other %ld)\n",
           label, test, n, secs, ops, mibps, mean, p50, p99, mx, run.errors, run.timeouts,
           run.missing, run.wrong, run.other);
    char counts[64] = "direct=- coordinated=-";
    if (run.counted)
        snprintf(counts, sizeof counts, "direct=%" PRIu64 " coordinated=%" PRIu64, run.direct,
                 run.coordinated);
    char runbuf[32];
    if (!cfg.run)
        snprintf(runbuf, sizeof runbuf, "%ld", (long)time(NULL));
    printf("RESULT label=%s run=%s fstype=- test=%s unit=ops/s value=%.1f lat_mean_us=%.1f "
           "lat_p99_us=%.1f lat_p50_us=%.1f load1=%.2f MiBps=%.2f n=%ld errors=%ld timeouts=%ld "
           "missing=%ld wrong=%ld other=%ld size=%zu conc=%ld keys_written=%ld secs=%.3f "
           "lat_max_us=%.0f client_cpu_us_per_op=%.1f client_minflt_per_op=%.2f %s\n",
           label, cfg.run ? cfg.run : runbuf, test, ops, mean, p99, p50, load1, mibps, n,
           run.errors, run.timeouts, run.missing, run.wrong, run.other, cfg.size, cfg.conc,
           cfg.put ? written : cfg.keys, secs, mx, cpu_us / (double)all_ops,
           (double)ru.ru_minflt / (double)all_ops, counts);
    for (long i = 0; i < cfg.conc; i++)
        free(slots[i].val);
    free(slots);
    free(run.lat);
    free(base);
    return run.errors ? 1 : 0;
}
