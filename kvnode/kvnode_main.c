/*
 * kvnode — the dhtfs peer daemon: parse the command line, then run one event
 * loop that serves the node's ROUTER socket, its outgoing requests, its
 * timers and a signalfd (SIGTERM/SIGINT = graceful leave, SIGHUP = re-read
 * the key lists).
 *
 * Safe by default: without --key the node is unauthenticated and clear
 * text, so it may listen only where nobody else can reach it (loopback or
 * ipc://), unless the operator says --insecure.
 *
 * --config FILE: the file's "NAME = VALUE" lines (ringlib/conf.h) become
 * "--NAME=VALUE" arguments placed before the command line's own, so one
 * getopt loop checks both and a flag on the command line wins over the file.
 */
#include "auth.h"
#include "conf.h"
#include "http_metrics.h"
#include "log.h"
#include "loop.h"
#include "mc_server.h"
#include "node.h"
#include "node_metrics.h"
#include "ring_place.h"
#include "rpc.h"
#include "wire.h"

#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <zmq.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: kvnode [--config FILE] --listen EP [--join EP] --data DIR [--replicas N]\n"
               "              [--write-quorum W] [--read-quorum R] [--id-bits M] [--id ID]\n"
               "              [--cache-mb MB]"
               " [--log-level error|warn|info|debug]\n"
               "              [--stabilize-ms MS] [--timeout-ms MS]\n"
               "              [--fail-after-ms MS] [--tombstone-grace-s S] [--metrics HOST:PORT]\n"
               "              [--key FILE [--peer-keys LIST] [--client-keys LIST]] [--insecure]\n"
               "              [--memcached HOST:PORT] [--weight W] [--zone NAME]\n"
               "              [--tokens T [--probes P]] [--spin-us US]\n"
               "EP is a ZeroMQ endpoint (tcp://HOST:PORT, HOST:PORT or ipc://PATH); a secured\n"
               "node's endpoint ends in #KEY, its public key (--join tcp://HOST:PORT#KEY).\n"
               "--key FILE: secret key (dhtctl keygen); CURVE on every connection, and only\n"
               "keys in LIST files (one Z85 public key per line) get in. Without --key the\n"
               "node listens only on loopback or ipc:// unless --insecure is given.\n"
               "--metrics HOST:PORT: serve GET /metrics (Prometheus text) over HTTP there;\n"
               "loopback only, like --listen, unless the node is secured or --insecure.\n"
               "SIGTERM makes the node leave the ring gracefully and exit 0; SIGHUP re-reads\n"
               "the key lists.\n"
               "--memcached HOST:PORT: also speak memcached's text protocol there (items in\n"
               "the replicated store under mc/); loopback only unless --insecure.\n"
               "--weight W: the node's capacity weight, 1..64 (default 1); --zone NAME: its\n"
               "failure domain (1..31 of A-Z a-z 0-9 . _ -; default none). Both are published\n"
               "in the ring's member table (dhtctl members) and used by token placement.\n"
               "--tokens T: place keys by T tokens per unit of weight (1..4096, default 64), in\n"
               "partitions, on distinct nodes and zones; 0: on the key's Chord successor and\n"
               "the next nodes (the placement of versions before token placement). --probes P:\n"
               "probes per partition, 1..64 (default 21). Both are ring-wide: a node whose\n"
               "values differ from the ring's is refused at join.\n"
               "--spin-us US: before sleeping, look for the next message this long (0..10000,\n"
               "default 200; sched_yield() between looks): a reply or request that close is\n"
               "taken without a wake-up, for the CPU spent looking; 0 sleeps at once.\n"
               "--config FILE: take flags from FILE, one NAME = VALUE per line (NAME a long\n"
               "flag without --, e.g. listen = tcp://127.0.0.1:7000; insecure = true; # starts\n"
               "a comment line); flags on the command line override the file.\n");
}

/* What a metrics scrape reads: the node, and the memcached front end if any. */
typedef struct {
    node_t *node;
    mc_server_t *mc;
} scrape_ctx_t;

static void collect_metrics(mx_buf_t *b, void *arg)
{
    scrape_ctx_t *x = arg;
    node_metrics_collect(b, x->node);
    if (x->mc)
        mc_server_metrics(x->mc, b);
}

/*
 * The --config file's arguments and the merged argument list, for the
 * process's lifetime (optarg points into them); freed at exit.
 */
static const char *conf_path;
static conf_args_t conf_args;
static char **all_args;
/* The option being parsed: its index in all_args, 0 when none. */
static int cur_opt;

static void free_config(void)
{
    free(all_args);
    all_args = NULL;
    conf_args_free(&conf_args);
}

/* Blames the file's line when the option being parsed came from --config. */
static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int bad(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "kvnode: ");
    if (conf_path && cur_opt >= 1 && (size_t)cur_opt <= conf_args.argc)
        fprintf(stderr, "%s:%u: ", conf_path, conf_args.lines[cur_opt - 1]);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    usage(stderr);
    return NODE_EXIT_USAGE;
}

static int parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
    if (!s || !*s)
        return -EINVAL;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9')
            return -EINVAL;
    errno = 0;
    unsigned long v = strtoul(s, NULL, 10);
    if (errno || v < lo || v > hi)
        return -ERANGE;
    *out = (unsigned)v;
    return 0;
}

enum {
    /* A config file is a few lines; anything near this is not one. */
    CONF_FILE_MAX = 1 << 20,
    /*
     * µs the loop looks for input before it sleeps. A put's authority waits
     * about one ZeroMQ round trip (~90 µs here) for its replica, and a busy
     * client's next request is often closer; on a VM a thread woken on a
     * halted vCPU waits for the hypervisor (docs/BENCHMARKS.md, "kvnode
     * looks before it sleeps").
     */
    DEFAULT_SPIN_US = 200,
};

/* FILE's bytes into a fresh buffer (*len of them); -errno, -EFBIG if too big. */
static int read_file(const char *path, char **buf, size_t *len)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -errno;
    char *b = malloc(CONF_FILE_MAX + 1);
    if (!b) {
        fclose(f);
        return -ENOMEM;
    }
    size_t n = fread(b, 1, CONF_FILE_MAX + 1, f);
    int rc = ferror(f) ? -EIO : n > CONF_FILE_MAX ? -EFBIG : 0;
    fclose(f);
    if (rc < 0) {
        free(b);
        return rc;
    }
    *buf = b;
    *len = n;
    return 0;
}

/*
 * Take --config FILE (or --config=FILE) out of argv and put FILE's
 * arguments in front of the rest: *args and *nargs become the list for getopt.
 * Without --config, argv itself. Returns 0 or an exit status (a bad or
 * unreadable file is a usage error naming FILE and, if it applies, LINE).
 */
static int merge_config(int argc, char **argv, const struct option *opts, char ***args, int *nargs)
{
    int at = 0, span = 0;
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        const char *p = NULL;
        int n = 1;
        if (strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc)
                return bad("--config needs a FILE");
            p = argv[i + 1];
            n = 2;
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            p = argv[i] + 9;
        }
        if (!p)
            continue;
        if (conf_path)
            return bad("--config given twice ('%s' and '%s')", conf_path, p);
        if (!*p)
            return bad("--config needs a FILE");
        conf_path = p;
        at = i;
        span = n;
        i += n - 1;
    }
    if (!conf_path) {
        *args = argv;
        *nargs = argc;
        return 0;
    }
    /* Every flag but --help may be set from the file. */
    conf_key_t keys[64];
    size_t nkeys = 0;
    for (const struct option *o = opts; o->name && nkeys < sizeof keys / sizeof keys[0]; o++)
        if (strcmp(o->name, "help") != 0)
            keys[nkeys++] = (conf_key_t){o->name, o->has_arg != no_argument};
    char *text = NULL;
    size_t len = 0;
    int rc = read_file(conf_path, &text, &len);
    if (rc < 0) {
        fprintf(stderr, "kvnode: --config %s: %s\n", conf_path,
                rc == -EFBIG ? "larger than 1 MiB, not a config file" : strerror(-rc));
        return NODE_EXIT_USAGE;
    }
    unsigned line = 0;
    char err[CONF_ERR_MAX];
    rc = conf_parse(text, len, keys, nkeys, &conf_args, &line, err);
    free(text);
    atexit(free_config);
    if (rc < 0) {
        if (rc == -ENOMEM) {
            fprintf(stderr, "kvnode: --config %s: %s\n", conf_path, err);
            return NODE_EXIT_FAILURE;
        }
        fprintf(stderr, "kvnode: %s:%u: %s\n", conf_path, line, err);
        fprintf(stderr, "kvnode: a config file holds NAME = VALUE lines, NAME a long flag "
                        "without -- (see kvnode --help)\n");
        return NODE_EXIT_USAGE;
    }
    /* argv[0], the file's arguments, then the command line without --config. */
    size_t n = 1 + conf_args.argc + (size_t)(argc - 1 - span);
    all_args = calloc(n + 1, sizeof *all_args);
    if (!all_args) {
        fprintf(stderr, "kvnode: out of memory\n");
        return NODE_EXIT_FAILURE;
    }
    size_t k = 0;
    all_args[k++] = argv[0];
    for (size_t i = 0; i < conf_args.argc; i++)
        all_args[k++] = conf_args.argv[i];
    for (int i = 1; i < argc; i++)
        if (i < at || i >= at + span)
            all_args[k++] = argv[i];
    all_args[k] = NULL;
    *args = all_args;
    *nargs = (int)k;
    return 0;
}

typedef struct {
    node_t *node;
    auth_t *auth;
} sig_ctx_t;

static void on_signal(loop_t *loop, void *zsock, int fd, void *arg)
{
    (void)loop;
    (void)zsock;
    sig_ctx_t *sc = arg;
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo != SIGHUP) {
            node_leave(sc->node);
            continue;
        }
        if (!sc->auth) {
            log_info("auth", "SIGHUP: no key lists to re-read (node not secured)");
            continue;
        }
        char err[512] = "";
        if (auth_reload(sc->auth, err, sizeof err) < 0)
            log_error("auth", "SIGHUP: %s; the previous lists stay in force", err);
        else
            log_info("auth", "SIGHUP: key lists re-read (%zu peer keys, %zu client keys)",
                     auth_peer_count(sc->auth), auth_client_count(sc->auth));
    }
}

/* Why a secret key file was refused, as a usage error. */
static int key_refused(const char *path, int rc)
{
    if (rc == -EPERM)
        fprintf(stderr,
                "kvnode: --key %s: group or others may access this secret key; "
                "run chmod 600 %s\n",
                path, path);
    else if (rc == -EINVAL)
        fprintf(stderr, "kvnode: --key %s: not a key file (one line of 40 Z85 characters)\n", path);
    else
        fprintf(stderr, "kvnode: --key %s: %s\n", path, strerror(-rc));
    return NODE_EXIT_USAGE;
}

int main(int argc, char **argv)
{
    /* Token placement unless --tokens 0 asks for Chord's (docs/PLACEMENT.md). */
    node_config_t cfg = {.tokens = RING_PLACE_TOKENS_DEFAULT};
    const char *listen = NULL, *join = NULL, *data = NULL, *id = NULL;
    const char *key_path = NULL, *peer_keys = NULL, *client_keys = NULL;
    const char *memcached = NULL;
    bool insecure = false;
    log_level_t level = LOG_INFO;
    const char *metrics_addr = NULL;
    unsigned spin_us = DEFAULT_SPIN_US;
    enum {
        O_LISTEN = 256,
        O_METRICS,
        O_JOIN,
        O_DATA,
        O_REPL,
        O_WQ,
        O_RQ,
        O_BITS,
        O_ID,
        O_CACHE,
        O_LOG,
        O_STAB,
        O_TIMEOUT,
        O_GRACE,
        O_FAIL,
        O_KEY,
        O_PEER_KEYS,
        O_CLIENT_KEYS,
        O_INSECURE,
        O_MEMCACHED,
        O_WEIGHT,
        O_ZONE,
        O_TOKENS,
        O_PROBES,
        O_SPIN,
        O_HELP
    };
    static const struct option opts[] = {
        {"listen", required_argument, NULL, O_LISTEN},
        {"metrics", required_argument, NULL, O_METRICS},
        {"join", required_argument, NULL, O_JOIN},
        {"data", required_argument, NULL, O_DATA},
        {"replicas", required_argument, NULL, O_REPL},
        {"write-quorum", required_argument, NULL, O_WQ},
        {"read-quorum", required_argument, NULL, O_RQ},
        {"id-bits", required_argument, NULL, O_BITS},
        {"id", required_argument, NULL, O_ID},
        {"cache-mb", required_argument, NULL, O_CACHE},
        {"log-level", required_argument, NULL, O_LOG},
        {"stabilize-ms", required_argument, NULL, O_STAB},
        {"timeout-ms", required_argument, NULL, O_TIMEOUT},
        {"tombstone-grace-s", required_argument, NULL, O_GRACE},
        {"fail-after-ms", required_argument, NULL, O_FAIL},
        {"key", required_argument, NULL, O_KEY},
        {"peer-keys", required_argument, NULL, O_PEER_KEYS},
        {"client-keys", required_argument, NULL, O_CLIENT_KEYS},
        {"insecure", no_argument, NULL, O_INSECURE},
        {"memcached", required_argument, NULL, O_MEMCACHED},
        {"weight", required_argument, NULL, O_WEIGHT},
        {"zone", required_argument, NULL, O_ZONE},
        {"tokens", required_argument, NULL, O_TOKENS},
        {"probes", required_argument, NULL, O_PROBES},
        {"spin-us", required_argument, NULL, O_SPIN},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    opterr = 0;
    int mrc = merge_config(argc, argv, opts, &argv, &argc);
    if (mrc != 0)
        return mrc;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        cur_opt = optind - 1;
        switch (c) {
        case O_LISTEN:
            listen = optarg;
            break;
        case O_METRICS:
            metrics_addr = optarg;
            break;
        case O_JOIN:
            join = optarg;
            break;
        case O_DATA:
            data = optarg;
            break;
        case O_ID:
            id = optarg;
            break;
        case O_REPL:
            if (parse_uint(optarg, 1, WIRE_SUCC_MAX - 1, &cfg.replicas) < 0)
                return bad("--replicas must be a number from 1 to 15, got '%s'", optarg);
            break;
        case O_WQ:
            if (parse_uint(optarg, 1, 255, &cfg.write_quorum) < 0)
                return bad("--write-quorum must be a positive number, got '%s'", optarg);
            break;
        case O_RQ:
            if (parse_uint(optarg, 1, 255, &cfg.read_quorum) < 0)
                return bad("--read-quorum must be a positive number, got '%s'", optarg);
            break;
        case O_BITS:
            if (parse_uint(optarg, RING_ID_BITS_MIN, RING_ID_BITS_MAX, &cfg.id_bits) < 0)
                return bad("--id-bits must be a number from 3 to 64, got '%s'", optarg);
            break;
        case O_CACHE:
            if (parse_uint(optarg, 1, 1u << 20, &cfg.cache_mb) < 0)
                return bad("--cache-mb must be a positive number of MiB, got '%s'", optarg);
            break;
        case O_LOG:
            if (log_parse_level(optarg, &level) < 0)
                return bad("--log-level must be error, warn, info or debug, got '%s'", optarg);
            break;
        case O_STAB:
            if (parse_uint(optarg, 10, 60000, &cfg.stabilize_ms) < 0)
                return bad("--stabilize-ms must be 10..60000, got '%s'", optarg);
            break;
        case O_TIMEOUT:
            if (parse_uint(optarg, 10, 600000, &cfg.timeout_ms) < 0)
                return bad("--timeout-ms must be 10..600000, got '%s'", optarg);
            break;
        case O_GRACE:
            if (parse_uint(optarg, 1, 100u * 365 * 86400, &cfg.tombstone_grace_s) < 0)
                return bad("--tombstone-grace-s must be a positive number of seconds, got '%s'",
                           optarg);
            break;
        case O_FAIL:
            if (parse_uint(optarg, 10, 3600000, &cfg.fail_after_ms) < 0)
                return bad("--fail-after-ms must be 10..3600000, got '%s'", optarg);
            break;
        case O_KEY:
            key_path = optarg;
            break;
        case O_PEER_KEYS:
            peer_keys = optarg;
            break;
        case O_CLIENT_KEYS:
            client_keys = optarg;
            break;
        case O_INSECURE:
            insecure = true;
            break;
        case O_MEMCACHED:
            memcached = optarg;
            break;
        case O_WEIGHT:
            if (parse_uint(optarg, 1, RING_MEMBERS_WEIGHT_MAX, &cfg.weight) < 0)
                return bad("--weight must be a number from 1 to %d, got '%s'",
                           RING_MEMBERS_WEIGHT_MAX, optarg);
            break;
        case O_ZONE:
            if (!*optarg || !ring_members_zone_valid(optarg))
                return bad("--zone must be 1 to %d characters of A-Z a-z 0-9 . _ -, got '%s'",
                           RING_MEMBERS_ZONE_MAX - 1, optarg);
            snprintf(cfg.zone, sizeof cfg.zone, "%s", optarg);
            break;
        case O_TOKENS:
            if (parse_uint(optarg, 0, RING_PLACE_TOKENS_MAX, &cfg.tokens) < 0)
                return bad("--tokens must be a number from 0 to %d, got '%s'",
                           RING_PLACE_TOKENS_MAX, optarg);
            break;
        case O_PROBES:
            if (parse_uint(optarg, 1, RING_PLACE_PROBES_MAX, &cfg.probes) < 0)
                return bad("--probes must be a number from 1 to %d, got '%s'",
                           RING_PLACE_PROBES_MAX, optarg);
            break;
        case O_SPIN:
            if (parse_uint(optarg, 0, 10000, &spin_us) < 0)
                return bad("--spin-us must be a number from 0 to 10000, got '%s'", optarg);
            break;
        case O_HELP:
            usage(stdout);
            return 0;
        default:
            return bad("unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    cur_opt = 0;
    if (optind < argc)
        return bad("unexpected argument '%s'", argv[optind]);
    if (!listen)
        return bad("--listen is required");
    if (!data)
        return bad("--data is required");
    if (cfg.probes && !cfg.tokens)
        return bad("--probes does not go with --tokens 0 (Chord placement has no probes)");
    node_config_defaults(&cfg);
    if (cfg.write_quorum > cfg.replicas || cfg.read_quorum > cfg.replicas) {
        fprintf(stderr, "kvnode: quorums must satisfy 1 <= W, R <= N (N=%u W=%u R=%u)\n",
                cfg.replicas, cfg.write_quorum, cfg.read_quorum);
        return NODE_EXIT_USAGE;
    }
    const char *why = NULL;
    if (endpoint_normalize(listen, cfg.listen, sizeof cfg.listen, &why) < 0)
        return bad("bad --listen endpoint '%s': %s", listen, why);
    char base[ENDPOINT_MAX];
    uint8_t suffix_key[SEC_KEY_BYTES];
    if (endpoint_split_key(cfg.listen, base, suffix_key) != 0)
        return bad("--listen takes no #KEY: the node adds its own public key (from --key)");
    if (join) {
        if (endpoint_normalize(join, cfg.join, sizeof cfg.join, &why) < 0)
            return bad("bad --join endpoint '%s': %s", join, why);
        cfg.has_join = true;
    }
    if ((peer_keys || client_keys) && !key_path)
        return bad("--peer-keys and --client-keys need --key");
    if (key_path && insecure)
        return bad("--insecure and --key exclude each other");
    sec_keypair_t key;
    if (key_path) {
        int krc = sec_keypair_load(key_path, &key);
        if (krc < 0)
            return key_refused(key_path, krc);
        /* Known to the ring as ENDPOINT#KEY: how peers and clients learn our key. */
        char z[SEC_Z85_LEN + 1];
        sec_z85_encode(key.pub.b, z);
        if ((size_t)snprintf(cfg.listen, sizeof cfg.listen, "%s#%s", base, z) >= sizeof cfg.listen)
            return bad("--listen endpoint too long to carry the key: '%s'", listen);
        if (cfg.has_join && endpoint_split_key(cfg.join, base, suffix_key) != 1)
            return bad("--join needs the seed's public key on a secured ring: "
                       "--join tcp://HOST:PORT#KEY (KEY from the seed's key file .pub)");
        cfg.key = &key;
    } else if (!endpoint_is_local(cfg.listen) && !insecure) {
        fprintf(stderr,
                "kvnode: refusing to listen on %s without --key: anyone who can reach it could "
                "read, change and delete every key, and join the ring.\n"
                "Secure the ring (--key FILE --peer-keys LIST --client-keys LIST, see "
                "docs/OPERATIONS.md), listen on loopback or ipc://, or pass --insecure on a "
                "network you trust.\n",
                cfg.listen);
        return NODE_EXIT_USAGE;
    }
    if (id) {
        int rc = ring_id_parse(id, cfg.id_bits, &cfg.id);
        if (rc == -ERANGE) {
            fprintf(stderr, "kvnode: --id %s is outside the %u-bit ring (0..%llu)\n", id,
                    cfg.id_bits, (unsigned long long)ring_mask(cfg.id_bits));
            return NODE_EXIT_USAGE;
        }
        if (rc < 0)
            return bad("--id must be a decimal or 0x-hex number, got '%s'", id);
        cfg.has_id = true;
    }
    if (strlen(data) >= sizeof cfg.data_dir)
        return bad("--data path too long: '%s'", data);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", data);
    log_set_level(level);
    if (sodium_init() < 0) {
        fprintf(stderr, "kvnode: libsodium failed to initialise\n");
        return NODE_EXIT_FAILURE;
    }

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, NULL);

    /*
     * Values (up to a chunk plus its header) pass through malloc several
     * times per message: keep them on the heap and the heap's top mapped, so
     * each one does not cost fresh page faults (as dhtfs does).
     */
    mallopt(M_MMAP_THRESHOLD, 8 << 20);
    mallopt(M_TRIM_THRESHOLD, 128 << 20);
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);

    void *zctx = rpc_ctx_new();
    loop_t *loop = loop_new();
    if (loop)
        loop_set_spin(loop, spin_us);
    char err[512] = "";
    sig_ctx_t sc = {0};
    if (key_path && zctx && loop) {
        /* Before the node: the ZAP handler must exist when the ROUTER binds. */
        sc.auth = auth_new(zctx, loop, &key, peer_keys, client_keys, err, sizeof err);
        if (!sc.auth) {
            fprintf(stderr, "kvnode: %s\n", err);
            loop_destroy(&loop);
            zmq_ctx_term(zctx);
            return NODE_EXIT_USAGE;
        }
        cfg.auth = sc.auth;
        char fp[SEC_FP_SIZE];
        sec_fingerprint(&key.pub, fp);
        log_info("auth", "secured: key %s, %zu peer keys, %zu client keys", fp,
                 auth_peer_count(sc.auth), auth_client_count(sc.auth));
    }
    node_t *node = zctx && loop && sfd >= 0 ? node_new(&cfg, zctx, loop, err, sizeof err) : NULL;
    if (!node) {
        fprintf(stderr, "kvnode: %s\n", err[0] ? err : "cannot initialise");
        auth_destroy(&sc.auth);
        loop_destroy(&loop);
        if (zctx)
            zmq_ctx_term(zctx);
        return NODE_EXIT_FAILURE;
    }
    http_metrics_t *hm = NULL;
    scrape_ctx_t scrape = {node, NULL};
    if (metrics_addr) {
        /* The same rule as --listen: loopback only unless secured or --insecure. */
        hm = http_metrics_new(loop, metrics_addr, key_path || insecure, collect_metrics, &scrape,
                              err, sizeof err);
        if (!hm) {
            fprintf(stderr, "kvnode: --metrics: %s\n", err);
            node_destroy(&node);
            auth_destroy(&sc.auth);
            loop_destroy(&loop);
            close(sfd);
            zmq_ctx_term(zctx);
            return NODE_EXIT_USAGE;
        }
        log_info("metrics", "serving GET /metrics on %s (port %u)", metrics_addr,
                 http_metrics_port(hm));
    }
    sc.node = node;
    loop_add_fd(loop, sfd, on_signal, &sc);
    /*
     * The memcached front end is a client of the ring like any other: its
     * own rpc and kvclient on this loop, seeded with this node, so keys go
     * straight to their authorities.
     */
    rpc_t *mc_rpc = NULL;
    kvc_t *mc_kvc = NULL;
    mc_server_t *mc = NULL;
    if (memcached) {
        const char *seed = cfg.listen;
        mc_rpc = rpc_new(zctx, loop);
        if (mc_rpc && key_path)
            rpc_set_key(mc_rpc, &key);
        mc_kvc = mc_rpc ? kvc_new(mc_rpc, loop, &seed, 1, cfg.timeout_ms) : NULL;
        mc = mc_kvc ? mc_server_new(loop, mc_kvc, memcached, insecure, err, sizeof err) : NULL;
        if (!mc) {
            fprintf(stderr, "kvnode: %s\n", err[0] ? err : "cannot start the memcached server");
            kvc_destroy(&mc_kvc);
            rpc_destroy(&mc_rpc);
            http_metrics_destroy(&hm);
            node_destroy(&node);
            auth_destroy(&sc.auth);
            loop_destroy(&loop);
            close(sfd);
            zmq_ctx_term(zctx);
            return NODE_EXIT_USAGE;
        }
        scrape.mc = mc;
    }
    node_start(node);
    int rc = loop_run(loop);
    int status = node_exit_status(node);
    if (rc < 0) {
        fprintf(stderr, "kvnode: event loop failed: %s\n", strerror(-rc));
        status = NODE_EXIT_FAILURE;
    }
    mc_server_destroy(&mc);
    rpc_destroy(&mc_rpc); /* cancels calls in flight: their operations complete */
    kvc_destroy(&mc_kvc);
    node_destroy(&node);
    auth_destroy(&sc.auth);
    http_metrics_destroy(&hm);
    if (key_path)
        sodium_memzero(&key, sizeof key);
    loop_destroy(&loop);
    close(sfd);
    zmq_ctx_term(zctx);
    return status;
}
