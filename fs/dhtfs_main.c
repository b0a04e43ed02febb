/*
 * dhtfs_main.c — `dhtfs [--peer EP[,EP…]] [--volume NAME] [-f] [-o OPTS] MOUNTPOINT`
 *
 * Parses the command line, starts the embedded ring when no peer is
 * given, daemonizes (unless -f) with a pipe that carries the outcome of
 * the mount back to the shell, and runs the one event loop: the FUSE
 * device, the store's sockets and the timers.
 */
#include "fs_ahead.h"
#include "fs_embedded.h"
#include "fs_fuse_io.h"
#include "fs_names.h"
#include "fs_ops.h"
#include "http_metrics.h"
#include "log.h"
#include "rpc.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sodium.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#define DEFAULT_CACHE_MB 256
#define DEFAULT_TIMEOUT_MS 2000
#define PEERS_MAX 32
#define DRAIN_MS 30000
#define DEFAULT_LOCK_LEASE_MS 15000
/*
 * 50 µs of looking before sleeping: longer than the gap between a
 * process's FUSE requests in a loop of small reads or writes, shorter than
 * a store round trip (~130 µs), through which a longer look would hold a
 * CPU at every wait (BENCHMARKS: "Looking before sleeping").
 */
#define DEFAULT_SPIN_US 50

typedef struct {
    char *peers[PEERS_MAX];
    size_t npeers;
    const char *volume;
    const char *mountpoint;
    char *key_path; /* --key / -o key=: secret key presented to a secured ring */
    bool foreground;
    bool has_key;
    sec_keypair_t key;
    unsigned cache_mb, chunk_kb, timeout_ms, dirty_mb, readahead_kb, lock_lease_ms, wb_puts;
    unsigned spin_us;
    double attr_timeout;
    log_level_t log_level;
    struct fuse_args fuse_args;
    char *fuse_opts; /* -o options for libfuse, comma-separated */
    char *metrics;   /* -o metrics=HOST:PORT, or NULL */
} opts_t;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: dhtfs [--peer EP[,EP...]] [--key FILE] [--volume NAME] [-f] [-o OPTIONS] "
            "MOUNTPOINT\n"
            "\n"
            "Mount volume NAME (default \"default\") of the dhtfs ring at MOUNTPOINT.\n"
            "  --peer EP[,EP...]  ring nodes to start from (tcp://HOST:PORT or HOST:PORT);\n"
            "                     default $DHT_PEER; with neither, start a private ring of\n"
            "                     three kvnodes (data in /var/lib/dhtfs as root, else\n"
            "                     $XDG_DATA_HOME/dhtfs) and stop it on unmount\n"
            "  --key FILE         secret key presented to a secured ring (default $DHT_KEY);\n"
            "                     its endpoints carry their key: tcp://HOST:PORT#KEY\n"
            "  --volume NAME      volume to mount ([A-Za-z0-9._-], at most 64 bytes)\n"
            "  -f                 stay in the foreground\n"
            "  -d                 foreground with debug logging\n"
            "  -o OPTIONS         comma-separated; dhtfs's own:\n"
            "       cache_mb=N      client chunk cache (default %d)\n"
            "       dirty_mb=N      unwritten data held before writers wait (default 64)\n"
            "       readahead_kb=N  sequential read-ahead (default 4096)\n"
            "       wb_puts=N       chunk write-backs in flight per mount (default 32)\n"
            "       chunk_kb=N      chunk size of a NEW volume (default 64)\n"
            "       timeout_ms=N    per-request timeout to the ring (default %d)\n"
            "       attr_timeout=S  seconds the kernel may cache names and attributes (default 1)\n"
            "       spin_us=N       look for the next request or reply this long before\n"
            "                       sleeping (default %d; 0: sleep at once, less CPU)\n"
            "       metrics=HOST:PORT  serve GET /metrics (Prometheus text) there; loopback\n"
            "                       only unless a key is given (--key)\n"
            "       lock_lease_ms=N a crashed mount's file locks are freed after N ms without\n"
            "                       its heartbeat (default %d; use one value on every mount)\n"
            "       volume=NAME, peer=EP, key=FILE  as the flags\n"
            "     anything else is passed to FUSE (e.g. ro, allow_other, default_permissions)\n",
            DEFAULT_CACHE_MB, DEFAULT_TIMEOUT_MS, DEFAULT_SPIN_US, DEFAULT_LOCK_LEASE_MS);
}

__attribute__((format(printf, 1, 2))) static int bad(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "dhtfs: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see dhtfs --help)\n");
    va_end(ap);
    return 2;
}

static int add_peers(opts_t *o, const char *list)
{
    char *copy = strdup(list);
    if (!copy)
        return -ENOMEM;
    char *save = NULL;
    for (char *ep = strtok_r(copy, ",", &save); ep; ep = strtok_r(NULL, ",", &save)) {
        if (o->npeers == PEERS_MAX) {
            free(copy);
            return -E2BIG;
        }
        char buf[300];
        if (strncmp(ep, "tcp://", 6) != 0) {
            snprintf(buf, sizeof(buf), "tcp://%s", ep);
            ep = buf;
        }
        o->peers[o->npeers++] = strdup(ep);
    }
    free(copy);
    return o->npeers > 0 ? 0 : -EINVAL;
}

static bool parse_uint(const char *s, unsigned min, unsigned max, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return false;
    *out = (unsigned)v;
    return true;
}

static int append_fuse_opt(opts_t *o, const char *opt)
{
    size_t old = o->fuse_opts ? strlen(o->fuse_opts) : 0;
    char *n = realloc(o->fuse_opts, old + strlen(opt) + 2);
    if (!n)
        return -ENOMEM;
    if (old)
        n[old++] = ',';
    strcpy(n + old, opt);
    o->fuse_opts = n;
    return 0;
}

/* Take dhtfs's own options out of an -o list; pass the rest to FUSE. */
static int parse_o(opts_t *o, const char *list)
{
    char *copy = strdup(list);
    char *save = NULL;
    int rc = 0;
    for (char *opt = strtok_r(copy, ",", &save); opt && rc == 0; opt = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(opt, '=');
        const char *val = eq ? eq + 1 : "";
        size_t klen = eq ? (size_t)(eq - opt) : strlen(opt);
#define IS(k) (klen == strlen(k) && strncmp(opt, k, klen) == 0)
        if (IS("cache_mb")) {
            if (!parse_uint(val, 1, 1 << 20, &o->cache_mb))
                rc = bad("cache_mb must be a number of MiB from 1, got '%s'", val);
        } else if (IS("dirty_mb")) {
            if (!parse_uint(val, 1, 1 << 20, &o->dirty_mb))
                rc = bad("dirty_mb must be a number of MiB from 1, got '%s'", val);
        } else if (IS("readahead_kb")) {
            if (!parse_uint(val, 0, 1 << 20, &o->readahead_kb))
                rc = bad("readahead_kb must be a number of KiB, got '%s'", val);
        } else if (IS("spin_us")) {
            if (!parse_uint(val, 0, 10000, &o->spin_us))
                rc = bad("spin_us must be from 0 to 10000 (µs), got '%s'", val);
        } else if (IS("wb_puts")) {
            if (!parse_uint(val, 1, 1024, &o->wb_puts))
                rc = bad("wb_puts must be from 1 to 1024, got '%s'", val);
        } else if (IS("chunk_kb")) {
            if (!parse_uint(val, 4, 4096, &o->chunk_kb) || (o->chunk_kb & (o->chunk_kb - 1)))
                rc = bad("chunk_kb must be a power of two from 4 to 4096, got '%s'", val);
        } else if (IS("timeout_ms")) {
            if (!parse_uint(val, 50, 600000, &o->timeout_ms))
                rc = bad("timeout_ms must be from 50 to 600000, got '%s'", val);
        } else if (IS("lock_lease_ms")) {
            if (!parse_uint(val, 300, 3600000, &o->lock_lease_ms))
                rc = bad("lock_lease_ms must be from 300 to 3600000, got '%s'", val);
        } else if (IS("attr_timeout")) {
            char *end;
            o->attr_timeout = strtod(val, &end);
            if (end == val || *end || o->attr_timeout < 0 || o->attr_timeout > 3600)
                rc = bad("attr_timeout must be seconds from 0 to 3600, got '%s'", val);
        } else if (IS("metrics")) {
            free(o->metrics);
            o->metrics = strdup(val);
        } else if (IS("volume")) {
            o->volume = strdup(val);
        } else if (IS("peer")) {
            if (add_peers(o, val) < 0)
                rc = bad("bad peer list '%s'", val);
        } else if (IS("key")) {
            free(o->key_path);
            o->key_path = strdup(val);
        } else if (IS("log_level")) {
            if (log_parse_level(val, &o->log_level) < 0)
                rc = bad("log_level must be error, warn, info or debug, got '%s'", val);
        } else {
            rc = append_fuse_opt(o, opt) < 0 ? 1 : 0;
        }
#undef IS
    }
    free(copy);
    return rc;
}

static int parse_args(int argc, char **argv, opts_t *o)
{
    enum { O_PEER = 256, O_VOLUME, O_HELP, O_KEY };
    static const struct option longs[] = {
        {"peer", required_argument, NULL, O_PEER},
        {"key", required_argument, NULL, O_KEY},
        {"volume", required_argument, NULL, O_VOLUME},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+fdso:h", longs, NULL)) != -1) {
        switch (c) {
        case O_PEER:
            if (add_peers(o, optarg) < 0)
                return bad("bad --peer list '%s'", optarg);
            break;
        case O_VOLUME:
            o->volume = optarg;
            break;
        case O_KEY:
            free(o->key_path);
            o->key_path = strdup(optarg);
            break;
        case 'f':
            o->foreground = true;
            break;
        case 'd':
            o->foreground = true;
            o->log_level = LOG_DEBUG;
            break;
        case 's':
            break; /* always single-threaded: requests are fibers */
        case 'o': {
            int rc = parse_o(o, optarg);
            if (rc)
                return rc;
            break;
        }
        case 'h':
        case O_HELP:
            usage(stdout);
            exit(0);
        default:
            return bad("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind + 1 != argc) {
        usage(stderr);
        return 2;
    }
    o->mountpoint = argv[optind];
    if (!o->volume)
        o->volume = "default";
    if (!fs_volume_name_ok(o->volume))
        return bad("--volume must be 1-64 bytes of [A-Za-z0-9._-], got '%s'", o->volume);
    struct stat st;
    if (stat(o->mountpoint, &st) < 0 || !S_ISDIR(st.st_mode))
        return bad("mount point %s is not a directory", o->mountpoint);
    return 0;
}

/* ---- running ---- */

typedef struct {
    fs_t fs;
    opts_t *opts;
    int ready_fd; /* the waiting parent's pipe, or -1 */
    int exit_code;
    struct fuse_buf fbuf;
    int sig_fd;
    uint64_t drain_until;
    fs_embedded_t *emb; /* the embedded ring, or NULL */
} app_t;

static void tell_parent(app_t *a, char status)
{
    if (a->ready_fd < 0)
        return;
    ssize_t w = write(a->ready_fd, &status, 1);
    (void)w;
    close(a->ready_fd);
    a->ready_fd = -1;
}

static void on_fuse(loop_t *loop, void *zsock, int fd, void *arg)
{
    (void)zsock;
    (void)fd;
    app_t *a = arg;
    struct fuse_session *se = a->fs.se;
    /* A bounded batch per wake-up keeps the store's replies flowing too. */
    for (int i = 0; i < 64; i++) {
        int rc = fuse_session_receive_buf(se, &a->fbuf);
        if (rc == -EINTR || rc == -EAGAIN)
            return;
        if (rc <= 0 || fuse_session_exited(se)) {
            /* ENODEV: unmounted (fusermount3 -u). */
            log_info("fs", "unmounted");
            loop_stop(loop);
            return;
        }
        fuse_session_process_buf(se, &a->fbuf);
    }
}

static void on_signal(loop_t *loop, void *zsock, int fd, void *arg)
{
    (void)zsock;
    app_t *a = arg;
    struct signalfd_siginfo si;
    if (read(fd, &si, sizeof(si)) != (ssize_t)sizeof(si))
        return;
    log_info("fs", "signal %u: unmounting", si.ssi_signo);
    if (a->fs.se)
        fuse_session_exit(a->fs.se);
    loop_stop(loop);
}

static int mount_fuse(app_t *a)
{
    opts_t *o = a->opts;
    char fsname[400];
    snprintf(fsname, sizeof(fsname), "fsname=dhtfs:%s,subtype=dhtfs,default_permissions%s",
             o->volume, geteuid() == 0 ? ",allow_other" : "");
    struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
    if (fuse_opt_add_arg(&args, "dhtfs") < 0 || fuse_opt_add_arg(&args, "-o") < 0 ||
        fuse_opt_add_arg(&args, fsname) < 0)
        return -ENOMEM;
    if (o->fuse_opts &&
        (fuse_opt_add_arg(&args, "-o") < 0 || fuse_opt_add_arg(&args, o->fuse_opts) < 0))
        return -ENOMEM;
    a->fs.se = fuse_session_new(&args, &fs_ops, sizeof(fs_ops), &a->fs);
    fuse_opt_free_args(&args);
    if (!a->fs.se) {
        fprintf(stderr, "dhtfs: bad FUSE options\n");
        return -EINVAL;
    }
    if (fuse_session_mount(a->fs.se, o->mountpoint) != 0) {
        fprintf(stderr, "dhtfs: cannot mount on %s\n", o->mountpoint);
        fuse_session_destroy(a->fs.se);
        a->fs.se = NULL;
        return -EIO;
    }
    int fd = fuse_session_fd(a->fs.se);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    int rc = fs_io_install(&a->fs, fd);
    if (rc < 0)
        return rc;
    return loop_add_fd(a->fs.loop, fd, on_fuse, a);
}

static void start_fiber(void *arg)
{
    app_t *a = arg;
    int rc = fs_volume_open(&a->fs, a->opts->chunk_kb * 1024u);
    if (rc < 0) {
        fprintf(stderr, "dhtfs: cannot open volume '%s' on the ring: %s\n", a->opts->volume,
                rc == -EIO      ? "no answer (is the ring up?)"
                : rc == -EACCES ? "Permission denied (EACCES): the ring refused this client's key, "
                                  "the key is not granted this volume, or the ring requires "
                                  "CURVE (see --key, --volume, --peer EP#KEY)"
                                : strerror(-rc));
    } else if ((rc = mount_fuse(a)) == 0) {
        a->fs.readahead_chunks = a->opts->readahead_kb * 1024u / a->fs.chunk_size;
        log_info("fs", "mounted volume %s on %s (chunk %u KiB)", a->opts->volume,
                 a->opts->mountpoint, a->fs.chunk_size / 1024);
        fs_embedded_mounted(a->emb, a->opts->mountpoint);
        tell_parent(a, 0);
        if (!a->opts->foreground) {
            /* A daemon of the embedded ring keeps its messages next to the ring's logs. */
            char logpath[PATH_MAX];
            int null = open("/dev/null", O_RDWR);
            int err = a->emb && fs_embedded_log_path(a->emb, logpath, sizeof logpath) == 0
                          ? open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)
                          : -1;
            if (null >= 0) {
                dup2(null, 0);
                dup2(err >= 0 ? err : null, 1);
                dup2(err >= 0 ? err : null, 2);
                close(null);
            }
            if (err >= 0)
                close(err);
        }
        return;
    }
    a->exit_code = 1;
    loop_stop(a->fs.loop);
}

static void drain_check(loop_t *loop, void *arg)
{
    app_t *a = arg;
    if (fiber_count() == 0 || loop_now_ms(loop) >= a->drain_until) {
        loop_stop(loop);
        return;
    }
    loop_timer_add(loop, 20, drain_check, a);
}

/*
 * The mount is gone, but work it started may still be under way: files
 * unlinked a moment ago are being freed, write-back of a failed flush is
 * retried. Give it DRAIN_MS to finish so no chunk is left behind as garbage.
 */
static void drain(app_t *a)
{
    if (a->exit_code)
        return;
    size_t before = fiber_count();
    uint64_t start = loop_now_ms(a->fs.loop);
    a->drain_until = start + DRAIN_MS;
    loop_timer_add(a->fs.loop, 20, drain_check, a);
    loop_run(a->fs.loop);
    double secs = (double)(loop_now_ms(a->fs.loop) - start) / 1000;
    /* Reported whatever the log level: it is what the unmount left to do. */
    if (fiber_count() > 0)
        fprintf(stderr,
                "dhtfs: after unmounting %s: %zu of %zu background operations (frees, "
                "write-back) unfinished after %.1f s; what they would have freed stays as "
                "garbage in the store\n",
                a->opts->mountpoint, fiber_count(), before, secs);
    else
        fprintf(stderr,
                "dhtfs: after unmounting %s: finished %zu background operations in %.1f s\n",
                a->opts->mountpoint, before, secs);
}

/* The scrape of -o metrics=: the request counters, caches and write-back. */
static void collect_metrics(mx_buf_t *b, void *arg)
{
    fs_t *fs = arg;
    fs_ops_metrics(b);
    fs_store_stats_t st;
    fs_store_get_stats(&st);
    static const char tot[] = "dhtfs_store_operations_total";
    mx_family(b, tot, MX_COUNTER,
              "Store operations started by this mount, background work (write-back, frees) "
              "included.");
    mx_label_t k = {"kind", "get"};
    mx_sample_u64(b, tot, &k, 1, st.gets);
    k.value = "put";
    mx_sample_u64(b, tot, &k, 1, st.puts);
    k.value = "delete";
    mx_sample_u64(b, tot, &k, 1, st.dels);
    k.value = "conditional_put";
    mx_sample_u64(b, tot, &k, 1, st.conditional);
    k.value = "conflict";
    mx_sample_u64(b, tot, &k, 1, st.conflicts);
    k.value = "patch";
    mx_sample_u64(b, tot, &k, 1, st.patches);
    static const struct {
        const char *name, *help;
        int what;
    } caches[] = {
        {"dhtfs_cache_hits_total", "Lookups that found their entry in the cache.", 0},
        {"dhtfs_cache_misses_total", "Lookups that did not.", 1},
        {"dhtfs_cache_bytes", "Bytes held by the cache.", 2},
        {"dhtfs_cache_entries", "Entries held by the cache.", 3},
    };
    for (size_t i = 0; i < sizeof caches / sizeof caches[0]; i++) {
        mx_family(b, caches[i].name, caches[i].what < 2 ? MX_COUNTER : MX_GAUGE, caches[i].help);
        const kv_cache_t *c[2] = {fs->chunks, fs->buckets};
        static const char *const names[2] = {"chunks", "dir_buckets"};
        for (int j = 0; j < 2; j++) {
            mx_label_t l = {"cache", names[j]};
            uint64_t v = caches[i].what == 0   ? kv_cache_hits(c[j])
                         : caches[i].what == 1 ? kv_cache_misses(c[j])
                         : caches[i].what == 2 ? kv_cache_bytes(c[j])
                                               : kv_cache_count(c[j]);
            mx_sample_u64(b, caches[i].name, &l, 1, v);
        }
    }
    uint64_t loaded, used;
    fs_ahead_stats(fs, &loaded, &used);
    static const char sa[] = "dhtfs_statahead_records_total";
    mx_family(b, sa, MX_COUNTER,
              "Inode records stat-ahead loaded before a lookup asked (loaded), and those a "
              "lookup then used (used).");
    mx_label_t r = {"result", "loaded"};
    mx_sample_u64(b, sa, &r, 1, loaded);
    r.value = "used";
    mx_sample_u64(b, sa, &r, 1, used);
    mx_family(b, "dhtfs_dirty_bytes", MX_GAUGE, "Written data not yet stored on the ring.");
    mx_sample_u64(b, "dhtfs_dirty_bytes", NULL, 0, fs->dirty_bytes);
    mx_family(b, "dhtfs_dirty_limit_bytes", MX_GAUGE,
              "Dirty data held before writers wait (-o dirty_mb).");
    mx_sample_u64(b, "dhtfs_dirty_limit_bytes", NULL, 0, fs->dirty_max);
    mx_family(b, "dhtfs_fibers", MX_GAUGE,
              "Requests and background operations in flight (fibers).");
    mx_sample_u64(b, "dhtfs_fibers", NULL, 0, fiber_count());
}

/* Fork; the parent waits for the child's word that the mount is up. */
static int daemonize(app_t *a)
{
    int p[2];
    if (pipe(p) < 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid > 0) {
        close(p[1]);
        char status = 1;
        ssize_t r = read(p[0], &status, 1);
        _exit(r == 1 && status == 0 ? 0 : 1);
    }
    close(p[0]);
    setsid();
    if (chdir("/") < 0)
        return -errno;
    a->ready_fd = p[1];
    return 0;
}

static int run(opts_t *o)
{
    app_t a;
    memset(&a, 0, sizeof(a));
    a.opts = o;
    a.ready_fd = -1;
    a.sig_fd = -1;
    log_set_level(o->log_level);
    log_set_tag("dhtfs");

    /* Make the mount point absolute before a daemon chdirs to /. */
    char *mp = realpath(o->mountpoint, NULL);
    if (!mp) {
        fprintf(stderr, "dhtfs: %s: %s\n", o->mountpoint, strerror(errno));
        return 1;
    }
    o->mountpoint = mp;
    if (!o->foreground && daemonize(&a) < 0) {
        fprintf(stderr, "dhtfs: cannot daemonize: %s\n", strerror(errno));
        return 1;
    }

    fs_embedded_t *emb = NULL;
    char emb_peers[FS_EMBEDDED_NODES][FS_EMBEDDED_EP_MAX];
    if (o->npeers == 0) {
        char dir[PATH_MAX];
        const char *env = getenv("DHTFS_DATA_DIR");
        if (env && *env) {
            snprintf(dir, sizeof(dir), "%s", env);
        } else if (fs_embedded_default_dir(dir, sizeof(dir)) < 0) {
            fprintf(stderr, "dhtfs: no --peer, no $DHT_PEER, and no data directory for the "
                            "embedded ring (set $XDG_DATA_HOME or $HOME)\n");
            tell_parent(&a, 1);
            return 1;
        }
        if (fs_embedded_start(dir, &emb, emb_peers) < 0) {
            tell_parent(&a, 1);
            return 1;
        }
        for (int i = 0; i < FS_EMBEDDED_NODES; i++)
            o->peers[o->npeers++] = strdup(emb_peers[i]);
        a.emb = emb;
        /* The embedded ring is secured; --key, if given, is an extra client's key. */
        if (!o->has_key) {
            o->key = *fs_embedded_client_key(emb);
            o->has_key = true;
        }
    }

    /* Big read buffers must not be mmap'd and unmapped on every request. */
    mallopt(M_MMAP_THRESHOLD, 8 << 20);
    mallopt(M_TRIM_THRESHOLD, 128 << 20);

    fs_t *fs = &a.fs;
    snprintf(fs->vol, sizeof(fs->vol), "%s", o->volume);
    fs->attr_timeout = o->attr_timeout;
    fs->entry_timeout = o->attr_timeout;
    fs->ttl_ms = (uint64_t)(o->attr_timeout * 1000);
    fs->touch_delay_ms =
        (unsigned)(fs->ttl_ms / 4 < FS_TOUCH_DELAY_MS ? fs->ttl_ms / 4 : FS_TOUCH_DELAY_MS);
    fs->dirty_max = (size_t)o->dirty_mb << 20;
    fs->puts_max = o->wb_puts;
    fs->lease_ms = o->lock_lease_ms;
    fs->lockfiles = fs_map_new();
    fs->leases = fs_map_new();
    /*
     * 8192 names of 255 bytes at most: about 2.3 MiB, allocated once. A
     * tree copy hands out a few thousand names a second; with 1024 the
     * table overflowed within the entry timeout, and the first lock after
     * it waited up to that timeout for names it could no longer list
     * (SQLite right after an rsync: +1.4 s). A grant that is not quiet
     * walks the table: ~8 µs at 8192 (1 µs at 1024).
     */
    fs->names = fs_names_new(8192);
    void *zctx = rpc_ctx_new();
    fs->loop = loop_new();
    if (fs->loop)
        loop_set_spin(fs->loop, o->spin_us);
    fs->nodes = fs_map_new();
    fs->dirty = fs_map_new();
    fs->fetching = fs_map_new();
    fs->chunks = kv_cache_new((size_t)o->cache_mb << 20);
    fs->buckets = kv_cache_new(32u << 20);
    rpc_t *rpc = zctx && fs->loop ? rpc_new(zctx, fs->loop) : NULL;
    fs->rpc = rpc;
    fs->peers = o->peers;
    fs->npeers = o->npeers;
    fs->timeout_ms = o->timeout_ms;
    if (rpc && o->has_key)
        rpc_set_key(rpc, &o->key);
    if (rpc)
        rpc_watch_plain(rpc); /* a secured ring without --key: EACCES at once, not a timeout */
    if (rpc)
        fs->kvc = kvc_new(rpc, fs->loop, (const char *const *)o->peers, o->npeers, o->timeout_ms);
    if (!fs->kvc || !fs->nodes || !fs->dirty || !fs->fetching || !fs->chunks || !fs->buckets ||
        !fs->lockfiles || !fs->leases || fiber_init(fs->loop) < 0) {
        fprintf(stderr, "dhtfs: out of memory\n");
        tell_parent(&a, 1);
        fs_embedded_stop(&emb);
        return 1;
    }

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    sigprocmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    a.sig_fd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
    if (a.sig_fd >= 0)
        loop_add_fd(fs->loop, a.sig_fd, on_signal, &a);

    http_metrics_t *hm = NULL;
    if (o->metrics) {
        char err[512];
        hm = http_metrics_new(fs->loop, o->metrics, o->key_path != NULL, collect_metrics, fs, err,
                              sizeof err);
        if (!hm) {
            fprintf(stderr, "dhtfs: -o metrics: %s\n", err);
            a.exit_code = 1;
        }
    }
    if (!o->metrics || hm) {
        fiber_spawn(start_fiber, &a);
        loop_run(fs->loop);
    }

    if (fs->se) {
        int fd = fuse_session_fd(fs->se);
        loop_remove_fd(fs->loop, fd);
        fuse_session_unmount(fs->se);
        fuse_session_destroy(fs->se);
        fs->se = NULL;
    }
    tell_parent(&a, 1);
    fs_embedded_stopping(emb);
    fs_lk_stop(fs); /* its clean-up runs in drain */
    fs_ahead_stop(fs);
    drain(&a);
    fs_store_stats_t st;
    fs_store_get_stats(&st);
    log_info("fs",
             "store operations: %llu gets, %llu puts (%llu conditional, %llu conflicts, "
             "%llu patches), %llu deletes",
             (unsigned long long)st.gets, (unsigned long long)st.puts,
             (unsigned long long)st.conditional, (unsigned long long)st.conflicts,
             (unsigned long long)st.patches, (unsigned long long)st.dels);
    uint64_t loaded, used;
    fs_ahead_stats(fs, &loaded, &used);
    log_info("fs", "stat-ahead: %llu records loaded, %llu used by lookups",
             (unsigned long long)loaded, (unsigned long long)used);
    fs_ops_log_times();
    http_metrics_destroy(&hm);
    rpc_destroy(&rpc);
    kvc_destroy(&fs->kvc);
    if (a.sig_fd >= 0)
        close(a.sig_fd);
    loop_destroy(&fs->loop);
    zmq_ctx_term(zctx);
    fs_embedded_stop(&emb);
    free(a.fbuf.mem);
    fiber_shutdown();
    fs_release_all(fs);
    fs_lk_release_all(fs);
    fs_names_destroy(&fs->names);
    free(mp);
    return a.exit_code;
}

int main(int argc, char **argv)
{
    opts_t o;
    memset(&o, 0, sizeof(o));
    o.cache_mb = DEFAULT_CACHE_MB;
    o.dirty_mb = 64;
    o.readahead_kb = 4096;
    o.wb_puts = 32;
    o.spin_us = DEFAULT_SPIN_US;
    o.timeout_ms = DEFAULT_TIMEOUT_MS;
    o.lock_lease_ms = DEFAULT_LOCK_LEASE_MS;
    o.attr_timeout = 1.0;
    o.log_level = LOG_WARN;
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc;
    if (o.npeers == 0) {
        const char *env = getenv("DHT_PEER");
        if (env && *env && add_peers(&o, env) < 0)
            return bad("bad $DHT_PEER '%s'", env);
    }
    if (!o.key_path && o.npeers > 0) {
        /* Not for the embedded ring, which has its own key. */
        const char *env = getenv("DHT_KEY");
        if (env && *env)
            o.key_path = strdup(env);
    }
    if (o.key_path) {
        /* Checked before daemonizing, so that the error reaches the terminal. */
        rc = sec_keypair_load(o.key_path, &o.key);
        if (rc == -EPERM)
            return bad("--key %s: group or others may access this secret key; run chmod 600 %s",
                       o.key_path, o.key_path);
        if (rc == -EINVAL)
            return bad("--key %s: not a key file (one line of 40 Z85 characters)", o.key_path);
        if (rc < 0)
            return bad("--key %s: %s", o.key_path, strerror(-rc));
        o.has_key = true;
    }
    rc = run(&o);
    sodium_memzero(&o.key, sizeof o.key);
    free(o.key_path);
    for (size_t i = 0; i < o.npeers; i++)
        free(o.peers[i]);
    free(o.fuse_opts);
    free(o.metrics);
    return rc;
}
