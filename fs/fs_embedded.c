/*
 * fs_embedded.c — the embedded default ring: three kvnode children on
 * loopback, owned by one dhtfs process for the life of its mount.
 *
 * Layout of DATA_DIR:
 *   lock          flock()ed by the owning dhtfs for the whole lifetime of
 *                 fs_embedded_t; holds that dhtfs's pid and what it is doing
 *                 (starting, mounted on a path, stopping), so a second dhtfs
 *                 can wait for one that is stopping (see take_lock).
 *   dhtfs.log     the daemonized dhtfs's messages (e.g. what its unmount
 *                 still had to finish), appended to.
 *   ring.conf     ports and node ids, so a restart brings back the same
 *                 nodes in front of the same data (format below).
 *   nodeI/        node I's --data directory (kvnode creates its store there).
 *   nodeI.log     node I's stdout and stderr, appended to.
 *   nodeI.pid     node I's pid while it runs; lets the next start stop a
 *                 node orphaned by a dhtfs that died without cleaning up.
 *   keys/         (mode 0700) the ring is secured with CURVE, so other local
 *                 users cannot reach it: node.key (+ .pub), the key all three
 *                 nodes share; client.key (+ .pub), the one dhtfs presents;
 *                 peers.list and clients.list, the nodes' allow-lists. Made on
 *                 the first start (also of a ring made before keys existed:
 *                 ids come from ring.conf, so the data stays where it is);
 *                 an operator may add keys to clients.list (then SIGHUP the
 *                 nodes, or remount).
 *
 * ring.conf is line-oriented text, written atomically (temp file + rename):
 *   # comment lines and blank lines are ignored
 *   node INDEX PORT ID
 * one line per node, INDEX 0..2, PORT the TCP port on 127.0.0.1, ID the
 * node's 64-bit ring id as 0x-hex (passed to kvnode --id). The ids are
 * spaced a third of the ring apart from a random origin, so each node owns
 * a third of the keys.
 *
 * Invariants: a remembered port is never silently replaced (the node id
 * and the data under nodeI belong to that endpoint in the ring); children
 * run in their own session, so a terminal's Ctrl-C reaches dhtfs only and
 * dhtfs decides when the nodes leave; nothing here installs signal
 * handlers or reaps children except through fs_embedded_stop().
 *
 * The caller may fork after fs_embedded_start() (fuse_daemonize): the lock
 * fd is inherited and stays held, and fs_embedded_stop() in the child, which
 * cannot waitpid() its siblings, polls them through /proc instead (a zombie
 * counts as gone; init reaps it). The pid in DATA_DIR/lock is then the pre-fork one.
 *
 * Ring formation is checked through the client library (a ring walk from
 * each node), each check in a ZeroMQ context of its own that is terminated
 * before it returns, so the caller can create its ZeroMQ context after the
 * fork()s with nothing inherited.
 */
#include "fs_embedded.h"

#include "kvclient.h"
#include "loop.h"
#include "rpc.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

enum {
    START_LIMIT_MS = 20000, /* the whole ring must form within this */
    STOP_GRACE_MS = 15000,  /* a leaving node may hand its keys on this long */
    ABORT_GRACE_MS = 5000,  /* nodes of a failed start get this long */
    POLL_MS = 100,          /* between ring checks */
    WALK_TIMEOUT_MS = 1000, /* one request of a ring walk */
    WALK_LIMIT_MS = 8000,   /* a whole ring walk */
    LOG_ROTATE_BYTES = 16 << 20,
    TAIL_LINES = 5,
};

/* Written to a node's log before each start; a failure's tail begins after it. */
#define LOG_MARK "---- dhtfs: kvnode started "

struct fs_embedded {
    char dir[PATH_MAX];
    char kvnode[PATH_MAX];
    int lock_fd;
    unsigned port[FS_EMBEDDED_NODES];
    uint64_t id[FS_EMBEDDED_NODES];
    char ep[FS_EMBEDDED_NODES][FS_EMBEDDED_EP_MAX];   /* what node i listens on */
    char addr[FS_EMBEDDED_NODES][FS_EMBEDDED_EP_MAX]; /* ep[i]#NODEKEY: how it is reached */
    pid_t pid[FS_EMBEDDED_NODES];                     /* 0: not running */
    sec_keypair_t client;
    char node_key[PATH_MAX], peer_list[PATH_MAX], client_list[PATH_MAX];
};

/* ------------------------------------------------------------- helpers */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static int fmt_path(char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fmt_path(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

/* mkdir -p; new directories get mode. */
static int mkdir_p(const char *path, mode_t mode)
{
    char tmp[PATH_MAX];
    if (fmt_path(tmp, sizeof tmp, "%s", path) < 0)
        return -ENAMETOOLONG;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, mode) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(tmp, mode) < 0 && errno != EEXIST)
        return -errno;
    struct stat sb;
    if (stat(tmp, &sb) < 0)
        return -errno;
    return S_ISDIR(sb.st_mode) ? 0 : -ENOTDIR;
}

static bool is_exec_file(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && access(path, X_OK) == 0;
}

/*
 * Find a helper program: next to the running executable (an installed
 * tree), then ../kvnode/NAME from it (the build tree: build/fs/dhtfs next
 * to build/kvnode/), then on $PATH.
 */
static int find_program(const char *name, char *out, size_t cap)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = '\0';
            if (fmt_path(out, cap, "%s/%s", self, name) == 0 && is_exec_file(out))
                return 0;
            if (fmt_path(out, cap, "%s/../kvnode/%s", self, name) == 0 && is_exec_file(out))
                return 0;
        }
    }
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        size_t len = strcspn(path, ":");
        int rc = len ? fmt_path(out, cap, "%.*s/%s", (int)len, path, name)
                     : fmt_path(out, cap, "./%s", name);
        if (rc == 0 && is_exec_file(out))
            return 0;
        path += len;
        if (*path == ':')
            path++;
    }
    return -ENOENT;
}

/* ---------------------------------------------------------- processes */

static void child_close_from(int lowfd)
{
    if (close_range((unsigned)lowfd, ~0U, 0) == 0)
        return;
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 65536)
        max = 65536;
    for (int fd = lowfd; fd < max; fd++)
        close(fd);
}

/*
 * fork + execv argv[0] with stdin from in_fd, stdout to out_fd, stderr to
 * err_fd and no other descriptor. Signal dispositions and the mask are
 * reset: the child must see SIGTERM even if the caller ignores or blocks
 * it. An exec failure comes back through a close-on-exec pipe, so the
 * caller gets its errno instead of a child that exits 127.
 */
static int spawn(char *const argv[], int in_fd, int out_fd, int err_fd, bool new_session,
                 pid_t *out_pid)
{
    int ep[2];
    if (pipe2(ep, O_CLOEXEC) < 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(ep[0]);
        close(ep[1]);
        return -e;
    }
    if (pid == 0) {
        /* Move everything above the targets first so dup2 order cannot clobber. */
        int in = fcntl(in_fd, F_DUPFD, 10), out = fcntl(out_fd, F_DUPFD, 10);
        int err = fcntl(err_fd, F_DUPFD, 10), report = fcntl(ep[1], F_DUPFD, 10);
        int e = 0, rfd = report >= 0 ? report : ep[1];
        if (in < 0 || out < 0 || err < 0 || report < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 ||
            dup2(err, 2) < 0 || dup3(report, 3, O_CLOEXEC) < 0)
            e = errno;
        if (e == 0) {
            rfd = 3;
            child_close_from(4);
            sigset_t all;
            sigemptyset(&all);
            sigprocmask(SIG_SETMASK, &all, NULL);
            for (int s = 1; s < NSIG; s++)
                if (s != SIGKILL && s != SIGSTOP)
                    signal(s, SIG_DFL);
            if (new_session)
                setsid();
            execv(argv[0], argv);
            e = errno;
        }
        while (write(rfd, &e, sizeof e) < 0 && errno == EINTR)
            ;
        _exit(127);
    }
    close(ep[1]);
    int e = 0;
    ssize_t r;
    while ((r = read(ep[0], &e, sizeof e)) < 0 && errno == EINTR)
        ;
    close(ep[0]);
    if (r == (ssize_t)sizeof e) {
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        return -(e ? e : EIO);
    }
    *out_pid = pid;
    return 0;
}

/* pid exists and is not a zombie (a zombie nobody reaped yet has exited). */
static bool process_alive(pid_t pid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return kill(pid, 0) == 0 || errno != ESRCH;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    /* "pid (comm) S ...": comm may hold spaces and parentheses; the state follows the last ')'. */
    const char *rp = strrchr(buf, ')');
    return !(rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X'));
}

/*
 * Has pid exited? Reaps it if it is our child. A pid that is not our
 * child (the caller forked after starting us, e.g. to daemonize) is
 * polled through /proc instead.
 */
static bool child_gone(pid_t pid, int *status)
{
    int st = 0;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) {
        if (status)
            *status = st;
        return true;
    }
    if (r < 0 && errno == ECHILD) {
        if (status)
            *status = 0;
        return !process_alive(pid);
    }
    return false;
}

static void describe_status(int st, char *buf, size_t cap)
{
    if (WIFEXITED(st))
        snprintf(buf, cap, "exited with status %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(buf, cap, "was killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else
        snprintf(buf, cap, "stopped");
}

/* ------------------------------------------------------------- files */

static int node_path(const fs_embedded_t *e, unsigned i, const char *suffix, char *buf, size_t cap)
{
    return fmt_path(buf, cap, "%s/node%u%s", e->dir, i, suffix);
}

/* Print the last few lines of node i's log, to show why it failed. */
static void print_log_tail(const fs_embedded_t *e, unsigned i)
{
    char path[PATH_MAX];
    if (node_path(e, i, ".log", path, sizeof path) < 0)
        return;
    fprintf(stderr, "dhtfs:   node %u log: %s\n", i, path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char buf[4096];
    off_t size = lseek(fd, 0, SEEK_END);
    off_t from = size > (off_t)sizeof buf - 1 ? size - (off_t)(sizeof buf - 1) : 0;
    ssize_t n = from >= 0 ? pread(fd, buf, sizeof buf - 1, from) : -1;
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    /* Only what this start wrote: from the line after the last marker. */
    char *text = buf;
    for (char *m; (m = strstr(text, LOG_MARK));) {
        char *eol = strchr(m, '\n');
        text = eol ? eol + 1 : m + strlen(m);
    }
    size_t len = strlen(text);
    while (len > 0 && text[len - 1] == '\n')
        text[--len] = '\0';
    char *start = text;
    int lines = 0;
    for (char *p = text + len; p > text; p--) {
        if (p[-1] == '\n' && ++lines == TAIL_LINES) {
            start = p;
            break;
        }
    }
    char *save = NULL;
    for (char *line = strtok_r(start, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        fprintf(stderr, "dhtfs:     | %s\n", line);
}

static void print_started_log_tails(const fs_embedded_t *e)
{
    for (unsigned i = 0; i < FS_EMBEDDED_NODES; i++)
        if (e->pid[i] > 0)
            print_log_tail(e, i);
}

/* Write path atomically: a temp file next to it, fsync, rename. */
static int write_atomic(const char *path, const char *text)
{
    char tmp[PATH_MAX];
    if (fmt_path(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) < 0)
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    size_t len = strlen(text), off = 0;
    int rc = 0;
    while (off < len && rc == 0) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno != EINTR)
            rc = -errno;
        else if (w > 0)
            off += (size_t)w;
    }
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc < 0)
        unlink(tmp);
    return rc;
}

static int conf_save(const fs_embedded_t *e, const char *path)
{
    char text[1024];
    int n = snprintf(text, sizeof text,
                     "# dhtfs embedded ring: remembered so that each node finds its data again.\n"
                     "# One line per node: node INDEX PORT ID  (PORT on 127.0.0.1, ID 0x-hex).\n"
                     "# Changing a port or id orphans that node's data under nodeINDEX/.\n");
    for (unsigned i = 0; i < FS_EMBEDDED_NODES; i++)
        n += snprintf(text + n, sizeof text - (size_t)n, "node %u %u 0x%016" PRIx64 "\n", i,
                      e->port[i], e->id[i]);
    int rc = write_atomic(path, text);
    if (rc < 0)
        fprintf(stderr, "dhtfs: cannot write %s: %s\n", path, strerror(-rc));
    return rc;
}

/* 0: loaded; -ENOENT: no file yet; -EINVAL: malformed (message printed). */
static int conf_load(fs_embedded_t *e, const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        if (errno == ENOENT)
            return -ENOENT;
        int err = errno;
        fprintf(stderr, "dhtfs: cannot read %s: %s\n", path, strerror(err));
        return -err;
    }
    bool seen[FS_EMBEDDED_NODES] = {false};
    char line[256];
    unsigned lineno = 0;
    int rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        char *p = line + strspn(line, " \t");
        if (*p == '#' || *p == '\n' || *p == '\0')
            continue;
        unsigned idx, port;
        char idstr[32], extra;
        char *end = NULL;
        if (sscanf(p, "node %u %u %31s %c", &idx, &port, idstr, &extra) != 3 ||
            idx >= FS_EMBEDDED_NODES || seen[idx] || port == 0 || port > 65535 ||
            strncmp(idstr, "0x", 2) != 0 || strlen(idstr) > 18) {
            rc = -EINVAL;
            break;
        }
        errno = 0;
        uint64_t id = strtoull(idstr + 2, &end, 16);
        if (errno || end == idstr + 2 || *end) {
            rc = -EINVAL;
            break;
        }
        seen[idx] = true;
        e->port[idx] = port;
        e->id[idx] = id;
    }
    fclose(f);
    for (unsigned i = 0; rc == 0 && i < FS_EMBEDDED_NODES; i++) {
        if (!seen[i])
            rc = -EINVAL;
        for (unsigned j = 0; rc == 0 && j < i; j++)
            if (e->port[i] == e->port[j] || e->id[i] == e->id[j])
                rc = -EINVAL;
    }
    if (rc < 0) {
        if (lineno && rc == -EINVAL)
            fprintf(stderr,
                    "dhtfs: %s is malformed (expected three lines 'node INDEX PORT 0xID' with "
                    "distinct ports and ids); fix it, or remove it to start a new ring\n",
                    path);
        else
            fprintf(stderr, "dhtfs: %s is empty; remove it to start a new ring\n", path);
    }
    return rc;
}

static bool port_free(unsigned port);

/*
 * Three distinct free loopback ports below the kernel's ephemeral range
 * (32768 and up), so an outgoing connection can never have taken one when
 * the ring starts again on the ports remembered in ring.conf.
 */
static int pick_ports(unsigned port[FS_EMBEDDED_NODES])
{
    enum { LOW = 20000, HIGH = 32000 };
    unsigned seed = (unsigned)getpid() ^ (unsigned)time(NULL);
    unsigned n = 0;
    for (unsigned tries = 0; n < FS_EMBEDDED_NODES && tries < 2000; tries++) {
        unsigned p = LOW + rand_r(&seed) % (HIGH - LOW);
        bool dup = false;
        for (unsigned i = 0; i < n; i++)
            dup |= port[i] == p;
        if (!dup && port_free(p))
            port[n++] = p;
    }
    if (n < FS_EMBEDDED_NODES) {
        fprintf(stderr, "dhtfs: cannot find free loopback ports in %d-%d\n", LOW, HIGH);
        return -EADDRINUSE;
    }
    return 0;
}

/*
 * Is the port free for a listener on 127.0.0.1? SO_REUSEADDR as ZeroMQ
 * sets it, so connections of our own previous run lingering in TIME_WAIT
 * do not count as busy.
 */
static bool port_free(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return true; /* cannot tell; kvnode will say */
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 || errno != EADDRINUSE;
    close(fd);
    return ok;
}

static uint64_t random_u64(void)
{
    uint64_t r;
    if (getrandom(&r, sizeof r, 0) == (ssize_t)sizeof r)
        return r;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((uint64_t)ts.tv_nsec << 32) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 16);
}

/* ------------------------------------------------------------- locking */

/*
 * The lock file says what its holder is doing, one line:
 *   PID starting | PID mounted MOUNTPOINT | PID stopping
 * A dhtfs that finds the lock held waits while the holder is stopping (its
 * mount is gone and it is finishing background work and stopping the
 * nodes: seconds, or tens of seconds after heavy work), so `fusermount3 -u
 * M; dhtfs M` just works; a holder whose mount is still there is a real
 * conflict and is reported at once.
 */
static int write_state(int fd, const char *state, const char *mountpoint)
{
    char buf[PATH_MAX + 64];
    int len = snprintf(buf, sizeof buf, "%ld %s%s%s\n", (long)getpid(), state,
                       mountpoint ? " " : "", mountpoint ? mountpoint : "");
    if (len < 0 || (size_t)len >= sizeof buf)
        return -ENAMETOOLONG;
    if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)len, 0) != len)
        return -errno;
    return 0;
}

typedef struct {
    long pid;
    char state[16];
    char mountpoint[PATH_MAX];
} holder_t;

static void read_holder(int fd, holder_t *h)
{
    char buf[PATH_MAX + 64];
    memset(h, 0, sizeof *h);
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return;
    buf[n] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    char *end;
    h->pid = strtol(buf, &end, 10);
    if (*end == ' ')
        end++;
    size_t sl = strcspn(end, " ");
    if (sl < sizeof h->state) {
        memcpy(h->state, end, sl);
        h->state[sl] = '\0';
    }
    if (end[sl] == ' ')
        snprintf(h->mountpoint, sizeof h->mountpoint, "%s", end + sl + 1);
}

/* Undo the octal escapes (\040 and the like) of a /proc/self/mountinfo field. */
static void unescape_mount_field(char *s)
{
    char *w = s;
    for (char *r = s; *r; r++) {
        if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
            r[3] >= '0' && r[3] <= '7') {
            *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
            r += 3;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
}

/* Is a FUSE dhtfs file system mounted on path? (Unknown counts as yes.) */
static bool dhtfs_mounted_on(const char *path)
{
    FILE *f = fopen("/proc/self/mountinfo", "r");
    if (!f)
        return true;
    char line[2 * PATH_MAX + 256];
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) {
        /* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPER */
        char *save = NULL, *tok = strtok_r(line, " ", &save);
        char *mp = NULL;
        for (int i = 0; tok && i < 4; i++)
            tok = strtok_r(NULL, " ", &save);
        mp = tok;
        while (tok && strcmp(tok, "-") != 0)
            tok = strtok_r(NULL, " ", &save);
        char *fstype = tok ? strtok_r(NULL, " ", &save) : NULL;
        if (!mp || !fstype || strcmp(fstype, "fuse.dhtfs") != 0)
            continue;
        unescape_mount_field(mp);
        found = strcmp(mp, path) == 0;
    }
    fclose(f);
    return found;
}

enum {
    TAKEOVER_WAIT_MS = 180000, /* longest wait for a previous dhtfs to stop */
    UNMOUNT_NOTICE_MS = 3000,  /* a holder may take this long to notice its unmount */
};

static int take_lock(fs_embedded_t *e)
{
    char path[PATH_MAX];
    if (fmt_path(path, sizeof path, "%s/lock", e->dir) < 0)
        return -ENAMETOOLONG;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        int err = errno;
        fprintf(stderr, "dhtfs: cannot open %s: %s\n", path, strerror(err));
        return -err;
    }
    int64_t start = now_ms(), gone_since = 0;
    bool told = false;
    while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int err = errno;
        if (err == EINTR)
            continue;
        if (err != EWOULDBLOCK) {
            fprintf(stderr, "dhtfs: cannot lock %s: %s\n", path, strerror(err));
            close(fd);
            return -err;
        }
        holder_t h;
        read_holder(fd, &h);
        int64_t now = now_ms();
        bool stopping = strcmp(h.state, "stopping") == 0;
        if (!stopping && strcmp(h.state, "mounted") == 0 && !dhtfs_mounted_on(h.mountpoint)) {
            /* Unmounted a moment ago; the holder is about to say it is stopping. */
            if (!gone_since)
                gone_since = now;
            stopping = now - gone_since < UNMOUNT_NOTICE_MS;
        }
        if (!stopping) {
            if (h.mountpoint[0])
                fprintf(stderr,
                        "dhtfs: the embedded ring in %s is in use by another dhtfs (pid %ld, "
                        "mounted on %s)\n",
                        e->dir, h.pid, h.mountpoint);
            else if (h.pid > 0)
                fprintf(stderr,
                        "dhtfs: the embedded ring in %s is in use by another dhtfs (pid %ld)\n",
                        e->dir, h.pid);
            else
                fprintf(stderr, "dhtfs: the embedded ring in %s is in use by another dhtfs\n",
                        e->dir);
            close(fd);
            return -EBUSY;
        }
        if (now - start >= TAKEOVER_WAIT_MS) {
            fprintf(stderr,
                    "dhtfs: the previous dhtfs (pid %ld) is still stopping the embedded ring in "
                    "%s after %d s; try again later (its log: %s/dhtfs.log)\n",
                    h.pid, e->dir, TAKEOVER_WAIT_MS / 1000, e->dir);
            close(fd);
            return -EBUSY;
        }
        if (!told && now - start >= 200) {
            fprintf(stderr,
                    "dhtfs: waiting for the previous dhtfs (pid %ld) to finish stopping the "
                    "embedded ring in %s\n",
                    h.pid, e->dir);
            told = true;
        }
        sleep_ms(50);
    }
    if (write_state(fd, "starting", NULL) < 0)
        fprintf(stderr, "dhtfs: warning: cannot record our pid in %s: %s\n", path, strerror(errno));
    e->lock_fd = fd;
    return 0;
}

/* --------------------------------------------------------- leftovers */

/* Does /proc/pid/cmdline contain "--data NODEDIR"? */
static bool runs_on_dir(pid_t pid, const char *nodedir)
{
    char path[64], buf[8192];
    snprintf(path, sizeof path, "/proc/%ld/cmdline", (long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    bool prev_data = false;
    for (char *a = buf; a < buf + n; a += strlen(a) + 1) {
        if (prev_data && strcmp(a, nodedir) == 0)
            return true;
        if (strncmp(a, "--data=", 7) == 0 && strcmp(a + 7, nodedir) == 0)
            return true;
        prev_data = strcmp(a, "--data") == 0;
    }
    return false;
}

/*
 * A dhtfs that died without fs_embedded_stop() leaves its nodes running
 * (they are in their own session). We hold the ring's lock, so a kvnode
 * serving one of our node directories can only be such an orphan: ask it
 * to leave, as the dead dhtfs would have.
 */
static void stop_leftovers(fs_embedded_t *e)
{
    for (unsigned i = FS_EMBEDDED_NODES; i-- > 0;) {
        char pidfile[PATH_MAX], nodedir[PATH_MAX], buf[32] = "";
        if (node_path(e, i, ".pid", pidfile, sizeof pidfile) < 0 ||
            node_path(e, i, "", nodedir, sizeof nodedir) < 0)
            continue;
        int fd = open(pidfile, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        long pid = n > 0 ? strtol(buf, NULL, 10) : 0;
        if (pid > 1 && runs_on_dir((pid_t)pid, nodedir)) {
            fprintf(stderr,
                    "dhtfs: stopping kvnode %u (pid %ld) left running by an earlier dhtfs\n", i,
                    pid);
            kill((pid_t)pid, SIGTERM);
            int64_t deadline = now_ms() + STOP_GRACE_MS;
            while (kill((pid_t)pid, 0) == 0 && runs_on_dir((pid_t)pid, nodedir) &&
                   now_ms() < deadline)
                sleep_ms(50);
            if (kill((pid_t)pid, 0) == 0 && runs_on_dir((pid_t)pid, nodedir)) {
                kill((pid_t)pid, SIGKILL);
                sleep_ms(200);
            }
        }
        unlink(pidfile);
    }
}

/* ---------------------------------------------------------- the nodes */

static int open_log(const fs_embedded_t *e, unsigned i)
{
    char path[PATH_MAX], old[PATH_MAX];
    if (node_path(e, i, ".log", path, sizeof path) < 0 ||
        node_path(e, i, ".log.old", old, sizeof old) < 0)
        return -ENAMETOOLONG;
    struct stat sb;
    if (stat(path, &sb) == 0 && sb.st_size > LOG_ROTATE_BYTES)
        rename(path, old);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        int err = errno;
        fprintf(stderr, "dhtfs: cannot open %s: %s\n", path, strerror(err));
        return -err;
    }
    char mark[128], when[40] = "";
    time_t t = time(NULL);
    struct tm tm;
    if (localtime_r(&t, &tm))
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
    int n = snprintf(mark, sizeof mark, "%s%s\n", LOG_MARK, when);
    if (write(fd, mark, (size_t)n) < 0) {
        /* The log is for people; a node that cannot write it still runs. */
    }
    return fd;
}

/* Load key path into kp, first making it (and path.pub) if missing. 0 or -errno. */
static int own_key(const char *path, sec_keypair_t *kp)
{
    int rc = sec_keypair_load(path, kp);
    if (rc == -ENOENT) {
        if ((rc = sec_keypair_generate(kp)) == 0 && (rc = sec_keypair_save(path, kp)) == 0)
            rc = sec_keypair_load(path, kp);
    }
    if (rc < 0)
        fprintf(stderr, "dhtfs: embedded ring key %s: %s\n", path,
                rc == -EPERM ? "group or others may access it (chmod 600 it)" : strerror(-rc));
    return rc;
}

/* A list file holding one key, written only if missing. 0 or -errno. */
static int own_list(const char *path, const sec_keypair_t *kp, const char *who)
{
    if (access(path, F_OK) == 0)
        return 0;
    char z[SEC_Z85_LEN + 1], text[256];
    sec_z85_encode(kp->pub.b, z);
    snprintf(text, sizeof text,
             "# %s of this embedded dhtfs ring (one Z85 public key a line)\n%s\n", who, z);
    int rc = write_atomic(path, text);
    if (rc < 0)
        fprintf(stderr, "dhtfs: cannot write %s: %s\n", path, strerror(-rc));
    return rc;
}

/*
 * The ring's keys under DATA_DIR/keys, made on first use; fills e->client
 * and e->addr. 0 or -errno (message printed).
 */
static int ensure_keys(fs_embedded_t *e)
{
    char dir[PATH_MAX], client_key[PATH_MAX];
    int rc;
    if ((rc = fmt_path(dir, sizeof dir, "%s/keys", e->dir)) < 0 ||
        (rc = fmt_path(e->node_key, sizeof e->node_key, "%s/node.key", dir)) < 0 ||
        (rc = fmt_path(client_key, sizeof client_key, "%s/client.key", dir)) < 0 ||
        (rc = fmt_path(e->peer_list, sizeof e->peer_list, "%s/peers.list", dir)) < 0 ||
        (rc = fmt_path(e->client_list, sizeof e->client_list, "%s/clients.list", dir)) < 0) {
        fprintf(stderr, "dhtfs: data directory path too long: %s\n", e->dir);
        return rc;
    }
    if ((rc = mkdir_p(dir, 0700)) < 0) {
        fprintf(stderr, "dhtfs: cannot create %s: %s\n", dir, strerror(-rc));
        return rc;
    }
    sec_keypair_t node;
    if ((rc = own_key(e->node_key, &node)) < 0 || (rc = own_key(client_key, &e->client)) < 0 ||
        (rc = own_list(e->peer_list, &node, "peers")) < 0 ||
        (rc = own_list(e->client_list, &e->client, "clients")) < 0) {
        sodium_memzero(&node, sizeof node);
        return rc;
    }
    char z[SEC_Z85_LEN + 1];
    sec_z85_encode(node.pub.b, z);
    sodium_memzero(&node, sizeof node);
    for (unsigned i = 0; i < FS_EMBEDDED_NODES; i++) {
        int n = snprintf(e->addr[i], sizeof e->addr[i], "%s#%s", e->ep[i], z);
        if (n < 0 || (size_t)n >= sizeof e->addr[i])
            return -ENAMETOOLONG; /* cannot happen: ep is tcp://127.0.0.1:PORT */
    }
    return 0;
}

const sec_keypair_t *fs_embedded_client_key(const fs_embedded_t *e)
{
    return &e->client;
}

static int start_node(fs_embedded_t *e, unsigned i)
{
    char nodedir[PATH_MAX], idarg[32];
    if (node_path(e, i, "", nodedir, sizeof nodedir) < 0)
        return -ENAMETOOLONG;
    snprintf(idarg, sizeof idarg, "0x%016" PRIx64, e->id[i]);
    char *argv[] = {e->kvnode,      "--listen",    e->ep[i],     "--data",
                    nodedir,        "--id",        idarg,        "--key",
                    e->node_key,    "--peer-keys", e->peer_list, "--client-keys",
                    e->client_list, "--join",      e->addr[0],   NULL};
    if (i == 0)
        argv[13] = NULL;
    int logfd = open_log(e, i);
    if (logfd < 0)
        return logfd;
    int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (nullfd < 0) {
        int err = errno;
        close(logfd);
        fprintf(stderr, "dhtfs: cannot open /dev/null: %s\n", strerror(err));
        return -err;
    }
    pid_t pid = 0;
    int rc = spawn(argv, nullfd, logfd, logfd, true, &pid);
    close(nullfd);
    close(logfd);
    if (rc < 0) {
        fprintf(stderr, "dhtfs: cannot run %s: %s\n", e->kvnode, strerror(-rc));
        return rc;
    }
    e->pid[i] = pid;
    char pidfile[PATH_MAX], buf[32];
    if (node_path(e, i, ".pid", pidfile, sizeof pidfile) == 0) {
        snprintf(buf, sizeof buf, "%ld\n", (long)pid);
        write_atomic(pidfile, buf);
    }
    return 0;
}

/* 0 while every started node runs; -EIO (message printed) if one exited. */
static int check_nodes(fs_embedded_t *e)
{
    for (unsigned i = 0; i < FS_EMBEDDED_NODES; i++) {
        int st;
        if (e->pid[i] <= 0 || !child_gone(e->pid[i], &st))
            continue;
        char why[96];
        describe_status(st, why, sizeof why);
        fprintf(stderr, "dhtfs: kvnode %u of the embedded ring (%s, pid %ld) %s during start-up\n",
                i, e->ep[i], (long)e->pid[i], why);
        e->pid[i] = 0;
        print_log_tail(e, i);
        return -EIO;
    }
    return 0;
}

/* One ring walk's answer, for ring_count(). */
typedef struct {
    loop_t *loop;
    bool done;
    int rc;
    unsigned nodes;
} count_t;

static void on_ring_stats(int rc, const kvc_ring_stats_t *stats, void *arg)
{
    count_t *ct = arg;
    ct->done = true;
    ct->rc = rc;
    ct->nodes = rc == 0 ? stats->nodes : 0;
    loop_stop(ct->loop);
}

static void on_count_limit(loop_t *loop, void *arg)
{
    (void)arg;
    loop_stop(loop);
}

/*
 * The number of nodes a walk of the ring from ep visits (the client
 * library's ring walk, kvc_ring_stats), or -errno if ep did not answer.
 * Runs a private ZeroMQ context and loop to completion and terminates them
 * again, so nothing of ZeroMQ is left for the caller's fork() to inherit.
 */
static int ring_count(const fs_embedded_t *e, const char *ep)
{
    void *zctx = zmq_ctx_new();
    loop_t *loop = zctx ? loop_new() : NULL;
    rpc_t *rpc = loop ? rpc_new(zctx, loop) : NULL;
    if (rpc)
        rpc_set_key(rpc, &e->client);
    kvc_t *kvc = rpc ? kvc_new(rpc, loop, &ep, 1, WALK_TIMEOUT_MS) : NULL;
    count_t ct = {.loop = loop, .rc = -ENOMEM};
    if (kvc && kvc_ring_stats(kvc, on_ring_stats, &ct) == 0 &&
        loop_timer_add(loop, WALK_LIMIT_MS, on_count_limit, NULL) != 0) {
        loop_run(loop);
        if (!ct.done)
            ct.rc = -ETIMEDOUT;
    }
    rpc_destroy(&rpc); /* completes the walk's pending calls, then kvc may go */
    kvc_destroy(&kvc);
    loop_destroy(&loop);
    if (zctx)
        zmq_ctx_term(zctx); /* rpc sockets linger 0: returns at once */
    return ct.rc < 0 ? ct.rc : (int)ct.nodes;
}

/*
 * Wait until node i (and the ones before it) are in the ring as node 0
 * sees it, or, with i == FS_EMBEDDED_NODES, until every node sees the
 * whole ring. -ETIMEDOUT past deadline; -EIO if a node died.
 */
static int wait_ring(fs_embedded_t *e, unsigned i, int64_t deadline)
{
    bool done[FS_EMBEDDED_NODES] = {false};
    for (;;) {
        int rc = check_nodes(e);
        if (rc < 0)
            return rc;
        bool all = true;
        if (i < FS_EMBEDDED_NODES) {
            all = ring_count(e, e->addr[0]) >= (int)i + 1;
        } else {
            for (unsigned j = 0; j < FS_EMBEDDED_NODES; j++) {
                /* Only our nodes can be in this ring (private ports), so a
                 * walk that counts three from each node saw all of them. */
                if (!done[j])
                    done[j] = ring_count(e, e->addr[j]) == FS_EMBEDDED_NODES;
                all = all && done[j];
            }
        }
        if (all)
            return 0;
        if (now_ms() >= deadline)
            return -ETIMEDOUT;
        sleep_ms(POLL_MS);
    }
}

/*
 * Stop the nodes one at a time, last started first, each given grace_ms to
 * leave before SIGKILL. One at a time because a leaving node hands its keys
 * to its successors: with all three leaving at once nobody would be left to
 * take them (harmless here, as every node stores every key, but noisy), and
 * the last node, alone, leaves at once.
 */
static void stop_nodes(fs_embedded_t *e, int grace_ms, bool report)
{
    for (unsigned k = FS_EMBEDDED_NODES; k-- > 0;) {
        pid_t pid = e->pid[k];
        if (pid <= 0)
            continue;
        char log[PATH_MAX] = "";
        node_path(e, k, ".log", log, sizeof log);
        kill(pid, SIGTERM);
        int64_t deadline = now_ms() + grace_ms;
        int st = 0;
        bool gone;
        while (!(gone = child_gone(pid, &st)) && now_ms() < deadline)
            sleep_ms(20);
        if (!gone) {
            if (report)
                fprintf(stderr,
                        "dhtfs: kvnode %u (pid %ld) did not leave within %d s; killing it "
                        "(see %s)\n",
                        k, (long)pid, grace_ms / 1000, log);
            /* Its own session and process group (setsid): take along anything it forked. */
            if (kill(-pid, SIGKILL) < 0)
                kill(pid, SIGKILL);
            int64_t until = now_ms() + 2000;
            while (!child_gone(pid, NULL) && now_ms() < until)
                sleep_ms(20);
        } else if (report && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
            char why[96];
            describe_status(st, why, sizeof why);
            fprintf(stderr, "dhtfs: kvnode %u (pid %ld) %s; see %s\n", k, (long)pid, why, log);
        }
        e->pid[k] = 0;
        char pidfile[PATH_MAX];
        if (node_path(e, k, ".pid", pidfile, sizeof pidfile) == 0)
            unlink(pidfile);
    }
}

static void embedded_free(fs_embedded_t *e)
{
    if (e->lock_fd >= 0)
        close(e->lock_fd); /* releases the flock */
    sodium_memzero(&e->client, sizeof e->client);
    free(e);
}

/* ------------------------------------------------------------- public */

int fs_embedded_default_dir(char *buf, size_t cap)
{
    if (geteuid() == 0)
        return fmt_path(buf, cap, "/var/lib/dhtfs");
    const char *xdg = getenv("XDG_DATA_HOME");
    /* The XDG spec says relative values are to be ignored. */
    if (xdg && xdg[0] == '/')
        return fmt_path(buf, cap, "%s/dhtfs", xdg);
    const char *home = getenv("HOME");
    if (home && *home)
        return fmt_path(buf, cap, "%s/.local/share/dhtfs", home);
    return -ENOENT;
}

int fs_embedded_start(const char *data_dir, fs_embedded_t **out,
                      char peers[FS_EMBEDDED_NODES][FS_EMBEDDED_EP_MAX])
{
    *out = NULL;
    fs_embedded_t *e = calloc(1, sizeof *e);
    if (!e)
        return -ENOMEM;
    e->lock_fd = -1;
    int rc = mkdir_p(data_dir, 0700);
    if (rc < 0) {
        fprintf(stderr, "dhtfs: cannot create the data directory %s: %s\n", data_dir,
                strerror(-rc));
        goto fail;
    }
    /* Absolute, so the nodes' --data, the messages and pgrep agree. */
    char *abs = realpath(data_dir, NULL);
    if (!abs || fmt_path(e->dir, sizeof e->dir, "%s", abs) < 0) {
        rc = abs ? -ENAMETOOLONG : -errno;
        free(abs);
        fprintf(stderr, "dhtfs: bad data directory %s: %s\n", data_dir, strerror(-rc));
        goto fail;
    }
    free(abs);
    if ((rc = take_lock(e)) < 0)
        goto fail;
    if (find_program("kvnode", e->kvnode, sizeof e->kvnode) < 0) {
        rc = -ENOENT;
        fprintf(stderr, "dhtfs: cannot find kvnode (looked next to dhtfs, in ../kvnode/ and on "
                        "$PATH); it is needed for the embedded ring (or give --peer)\n");
        goto fail;
    }
    stop_leftovers(e);

    char conf[PATH_MAX];
    if ((rc = fmt_path(conf, sizeof conf, "%s/ring.conf", e->dir)) < 0)
        goto fail;
    rc = conf_load(e, conf);
    if (rc == -ENOENT) {
        if ((rc = pick_ports(e->port)) < 0)
            goto fail;
        uint64_t origin = random_u64(), step = UINT64_MAX / FS_EMBEDDED_NODES + 1;
        for (unsigned i = 0; i < FS_EMBEDDED_NODES; i++)
            e->id[i] = origin + i * step;
        if ((rc = conf_save(e, conf)) < 0)
            goto fail;
    } else if (rc < 0) {
        goto fail;
    } else {
        for (unsigned i = 0; i < FS_EMBEDDED_NODES; i++) {
            if (port_free(e->port[i]))
                continue;
            fprintf(stderr,
                    "dhtfs: port %u on 127.0.0.1, remembered for node %u of the embedded ring "
                    "in %s, is in use by another program.\n"
                    "dhtfs: free that port, or change it in %s (the node keeps its data and "
                    "id), then retry\n",
                    e->port[i], i, e->dir, conf);
            rc = -EADDRINUSE;
            goto fail;
        }
    }
    for (unsigned i = 0; i < FS_EMBEDDED_NODES; i++) {
        snprintf(e->ep[i], sizeof e->ep[i], "tcp://127.0.0.1:%u", e->port[i]);
        char nodedir[PATH_MAX];
        if ((rc = node_path(e, i, "", nodedir, sizeof nodedir)) < 0 ||
            (rc = mkdir_p(nodedir, 0700)) < 0) {
            fprintf(stderr, "dhtfs: cannot create %s/node%u: %s\n", e->dir, i, strerror(-rc));
            goto fail;
        }
    }
    if ((rc = ensure_keys(e)) < 0)
        goto fail;

    /* Node 0 first, alone; each next one joins through it once it is in. */
    int64_t deadline = now_ms() + START_LIMIT_MS;
    for (unsigned i = 0; i < FS_EMBEDDED_NODES; i++) {
        if ((rc = start_node(e, i)) < 0 || (rc = wait_ring(e, i, deadline)) < 0)
            break;
    }
    if (rc == 0)
        rc = wait_ring(e, FS_EMBEDDED_NODES, deadline);
    if (rc < 0) {
        if (rc == -ETIMEDOUT) {
            fprintf(stderr,
                    "dhtfs: the embedded ring in %s did not form within %d s; the nodes' "
                    "logs end with:\n",
                    e->dir, START_LIMIT_MS / 1000);
            print_started_log_tails(e);
        }
        stop_nodes(e, ABORT_GRACE_MS, false);
        goto fail;
    }
    for (unsigned i = 0; i < FS_EMBEDDED_NODES; i++)
        snprintf(peers[i], FS_EMBEDDED_EP_MAX, "%s", e->addr[i]);
    *out = e;
    return 0;

fail:
    embedded_free(e);
    return rc;
}

void fs_embedded_mounted(fs_embedded_t *e, const char *mountpoint)
{
    if (e && e->lock_fd >= 0 && write_state(e->lock_fd, "mounted", mountpoint) < 0)
        fprintf(stderr, "dhtfs: warning: cannot record the mount in %s/lock\n", e->dir);
}

void fs_embedded_stopping(fs_embedded_t *e)
{
    if (e && e->lock_fd >= 0 && write_state(e->lock_fd, "stopping", NULL) < 0)
        fprintf(stderr, "dhtfs: warning: cannot record the shutdown in %s/lock\n", e->dir);
}

int fs_embedded_log_path(const fs_embedded_t *e, char *buf, size_t cap)
{
    return fmt_path(buf, cap, "%s/dhtfs.log", e->dir);
}

void fs_embedded_stop(fs_embedded_t **ep)
{
    if (!ep || !*ep)
        return;
    fs_embedded_t *e = *ep;
    *ep = NULL;
    stop_nodes(e, STOP_GRACE_MS, true);
    embedded_free(e);
}
