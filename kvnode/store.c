/*
 * store.c — LMDB-backed record store with an LRU read cache, an overlay of
 * pending writes, and a committer thread.
 *
 * LMDB keys are [position: 8 bytes big-endian][key bytes], so byte order is
 * ring order; LMDB values are [hlc 8][node 8][flags 1][value bytes], or,
 * with REC_OPID set in the flags byte (never on the wire),
 * [hlc 8][node 8][flags 1][client 8][seq 8][value bytes]: the identity of
 * the client write that made the version. Records written before
 * identities existed simply lack the bit. The cache holds the same
 * payload (identity, then value) so both paths decode alike.
 *
 * Why a thread: mdb_txn_commit fsyncs, and on a real disk that takes
 * milliseconds to (under load) seconds. On the loop it stalled heartbeats,
 * reads and other replicas' traffic, and the failure detector then took
 * healthy peers out. Now the loop only stages: each write becomes an op in
 * the open batch (a copy of the record) and an entry in the overlay
 * (key -> latest op). store_commit() hands the batch's pointer to the
 * committer (a slot under a mutex, a condition variable to wake it); the
 * committer writes and commits it in its own write transaction, puts the
 * pointer in the done slot and writes an eventfd the loop polls. Ownership
 * of a batch moves with the pointer, so the two threads share nothing
 * mutable but the two slots and LMDB (one writer thread, readers on the
 * loop: what LMDB supports). Not a ZeroMQ inproc pair: each message there
 * costs both threads several system calls in libzmq's signalling.
 * At most one batch commits at a time; the next one accumulates meanwhile,
 * so a slow fsync just makes the next batch larger.
 *
 * A store in memory (tmpfs, ramfs) has no fsync to wait for: its commit is
 * a copy of the batch into the map, and the handoff cost more than that —
 * two thread wake-ups per batch on every replica, ~12 % of a small put's
 * latency and ~18 % of the nodes' CPU per put (docs/BENCHMARKS.md). Such
 * a store commits on the loop, in the before-poll hook (STORE_COMMIT_AUTO).
 *
 * Reads go cache -> overlay -> LMDB: the overlay holds every write that
 * LMDB may not have yet, so a "newer than stored" check and a coordinator's
 * read of its own copy see writes staged just before. An overlay entry is
 * dropped when the batch of its op is durable (unless a later op of the
 * key replaced it), by which time LMDB's next read snapshot has the write.
 *
 * Counts, bytes and the digest table change with every staged op and keep
 * what undoing it takes (old presence, length and hash): a failed commit
 * (disk full) undoes its batch and the one behind it, empties the overlay,
 * flushes the cache (which may hold lost values) and reports the error to
 * every waiter of both.
 */
#include "store.h"

#include "kv_cache.h"
#include "kv_digest.h"
#include "kv_patch.h"
#include "log.h"
#include "wire.h"

#include <errno.h>
#include <limits.h>
#include <lmdb.h>
#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

enum {
    REC_HEADER = 17,
    REC_OPID = 0x80, /* a stored-flags bit: the payload starts with a 16-byte opid */
    REC_OPID_LEN = 16,
    DBKEY_MAX = 8 + WIRE_KEY_MAX,
    /* 2^14 buckets of 24 bytes: 384 KiB per store, a range sum in ~20 us. */
    DIGEST_BUCKET_BITS = 14,
    /*
     * Larger values are not cached: copying one into the cache costs more
     * than reading it from LMDB's map again (1 MiB gets ran at 0.4 x with
     * the cache, BENCHMARKS "The node's cache"), and the clients cache the
     * chunks they read.
     */
    CACHE_VALUE_MAX = 16 << 10,
};

/* LMDB's map: the most a data file can grow to (sparse; the map costs address space only). */
#define MAP_SIZE ((size_t)256 << 30)

typedef struct {
    store_commit_fn fn;
    void *arg;
} waiter_t;

/* One staged write: a put (present) or a removal of key. */
typedef struct op {
    ring_id_t pos;
    bool present, old_present;
    size_t old_len;
    uint64_t old_hash[2], new_hash[2];
    uint8_t *rec; /* [hlc][node][flags][identity?][value] when present */
    size_t rec_len;
    size_t dbkey_len;
    uint8_t dbkey[]; /* [pos 8][key] */
} op_t;

typedef struct batch {
    op_t **ops;
    size_t nops, capops;
    waiter_t *waiters;
    size_t nwaiters, capwaiters;
    int64_t bytes; /* value bytes written, for telling a full disk from a broken one */
    int rc;        /* set by the committer */
} batch_t;

typedef struct oentry {
    struct oentry *next;
    uint64_t hash;
    op_t *op;
} oentry_t;

struct store {
    char dir[PATH_MAX];
    MDB_env *env;
    MDB_dbi dbi;
    MDB_txn *rtxn; /* the loop's reused read transaction (reset between calls) */
    /* LMDB's read-only map (MAP_SIZE bytes) of the data file, and the file (store_value_copy) */
    const uint8_t *map;
    int map_fd;
    bool rtxn_live;
    unsigned id_bits;
    kv_cache_t *cache;
    /* committer */
    loop_t *loop;
    pthread_mutex_t mu; /* guards todo, done, quit */
    pthread_cond_t cv;  /* todo set or quit */
    batch_t *todo;      /* for the committer */
    batch_t *done;      /* committed, for the loop */
    bool quit;
    int efd; /* eventfd: the committer put a batch in done */
    bool sync_init;
    pthread_t thread;
    bool thread_started;
    bool on_loop; /* commits run in store_commit(), no committer thread */
    unsigned test_delay_ms;
    batch_t *stage;    /* accumulating, or NULL */
    batch_t *inflight; /* with the committer, or NULL */
    /* overlay: key -> latest pending op */
    oentry_t **obuckets;
    size_t nobuckets, noverlay;
    uint8_t hkey[crypto_shorthash_KEYBYTES];
    /* state of everything staged, kept per op */
    uint64_t count, bytes;
    kv_digest_table_t *digests;
    uint8_t keybuf[DBKEY_MAX];
};

static int mdb_to_errno(int rc)
{
    switch (rc) {
    case MDB_SUCCESS:
        return 0;
    case MDB_NOTFOUND:
        return -ENOENT;
    case MDB_MAP_FULL:
    case ENOSPC:
        return -ENOSPC;
    case ENOMEM:
        return -ENOMEM;
    default:
        return -EIO;
    }
}

ring_id_t store_pos(const store_t *st, const uint8_t *key, size_t key_len)
{
    return ring_hash(key, key_len, st->id_bits);
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static MDB_val db_key(store_t *st, const uint8_t *key, size_t key_len, ring_id_t pos)
{
    put_be64(st->keybuf, pos);
    memcpy(st->keybuf + 8, key, key_len);
    return (MDB_val){8 + key_len, st->keybuf};
}

static ring_id_t dbkey_pos(const MDB_val *k)
{
    return get_be64(k->mv_data);
}

/* Split a stored payload (optional identity, then the value). */
static int decode_payload(kv_version_t version, uint8_t flags, const uint8_t *p, size_t len,
                          store_rec_t *rec)
{
    rec->version = version;
    rec->flags = flags & (uint8_t)~REC_OPID;
    rec->opid = (kv_opid_t){0, 0};
    if (flags & REC_OPID) {
        if (len < REC_OPID_LEN)
            return -EIO;
        rec->opid.client = get_be64(p);
        rec->opid.seq = get_be64(p + 8);
        p += REC_OPID_LEN;
        len -= REC_OPID_LEN;
    }
    rec->value = p;
    rec->value_len = len;
    return 0;
}

static int decode_rec(const uint8_t *p, size_t len, store_rec_t *rec)
{
    if (len < REC_HEADER)
        return -EIO;
    kv_version_t version = {get_be64(p), get_be64(p + 8)};
    return decode_payload(version, p[16], p + REC_HEADER, len - REC_HEADER, rec);
}

/* The loop's read snapshot: always the newest committed state. */
static MDB_txn *read_txn(store_t *st)
{
    if (st->rtxn_live)
        mdb_txn_reset(st->rtxn);
    st->rtxn_live = false;
    if (mdb_txn_renew(st->rtxn) != MDB_SUCCESS)
        return NULL;
    st->rtxn_live = true;
    return st->rtxn;
}

/* ------------------------------------------------------------ overlay */

static uint64_t okey_hash(const store_t *st, const uint8_t *key, size_t key_len)
{
    uint8_t out[crypto_shorthash_BYTES];
    /* SipHash with a per-process key: clients choose keys, not collisions. */
    crypto_shorthash(out, key, key_len, st->hkey);
    return get_be64(out);
}

static const uint8_t *op_key(const op_t *op)
{
    return op->dbkey + 8;
}

static size_t op_key_len(const op_t *op)
{
    return op->dbkey_len - 8;
}

static oentry_t **overlay_slot(store_t *st, const uint8_t *key, size_t key_len, uint64_t h)
{
    oentry_t **pp = &st->obuckets[h & (st->nobuckets - 1)];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->hash == h && op_key_len((*pp)->op) == key_len &&
            memcmp(op_key((*pp)->op), key, key_len) == 0)
            return pp;
    return pp;
}

static const op_t *overlay_find(store_t *st, const uint8_t *key, size_t key_len)
{
    if (st->noverlay == 0)
        return NULL;
    oentry_t *e = *overlay_slot(st, key, key_len, okey_hash(st, key, key_len));
    return e ? e->op : NULL;
}

static int overlay_grow(store_t *st)
{
    size_t n = st->nobuckets ? st->nobuckets * 2 : 1024;
    oentry_t **b = calloc(n, sizeof *b);
    if (!b)
        return -ENOMEM;
    for (size_t i = 0; i < st->nobuckets; i++) {
        oentry_t *e = st->obuckets[i];
        while (e) {
            oentry_t *next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(st->obuckets);
    st->obuckets = b;
    st->nobuckets = n;
    return 0;
}

/* key's latest pending op is now op. */
static int overlay_set(store_t *st, op_t *op)
{
    if (st->noverlay >= st->nobuckets && overlay_grow(st) < 0 && st->nobuckets == 0)
        return -ENOMEM;
    uint64_t h = okey_hash(st, op_key(op), op_key_len(op));
    oentry_t **pp = overlay_slot(st, op_key(op), op_key_len(op), h);
    if (*pp) {
        (*pp)->op = op;
        return 0;
    }
    oentry_t *e = malloc(sizeof *e);
    if (!e)
        return -ENOMEM;
    *e = (oentry_t){NULL, h, op};
    *pp = e;
    st->noverlay++;
    return 0;
}

/* op is durable: forget it unless a later op of its key replaced it. */
static void overlay_release(store_t *st, const op_t *op)
{
    uint64_t h = okey_hash(st, op_key(op), op_key_len(op));
    oentry_t **pp = overlay_slot(st, op_key(op), op_key_len(op), h);
    if (*pp && (*pp)->op == op) {
        oentry_t *e = *pp;
        *pp = e->next;
        free(e);
        st->noverlay--;
    }
}

static void overlay_clear(store_t *st)
{
    for (size_t i = 0; i < st->nobuckets; i++) {
        oentry_t *e = st->obuckets[i];
        while (e) {
            oentry_t *next = e->next;
            free(e);
            e = next;
        }
        st->obuckets[i] = NULL;
    }
    st->noverlay = 0;
}

/* ------------------------------------------------------------ batches */

static void batch_free(batch_t *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->nops; i++) {
        free(b->ops[i]->rec);
        free(b->ops[i]);
    }
    free(b->ops);
    free(b->waiters);
    free(b);
}

static batch_t *stage(store_t *st)
{
    if (!st->stage)
        st->stage = calloc(1, sizeof *st->stage);
    return st->stage;
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 64;
    void *p = realloc(*arr, ncap * elem);
    if (!p)
        return -ENOMEM;
    *arr = p;
    *cap = ncap;
    return 0;
}

/* Bytes of value the op stores (its record less header and identity). */
static size_t op_value_len(const op_t *op)
{
    if (!op->present)
        return 0;
    return op->rec_len - REC_HEADER - ((op->rec[16] & REC_OPID) ? REC_OPID_LEN : 0);
}

/* The op's effect on counts and digests, or (undo) its reversal. */
static void op_account(store_t *st, const op_t *op, bool undo)
{
    const uint64_t *out = undo ? op->new_hash : op->old_hash;
    const uint64_t *in = undo ? op->old_hash : op->new_hash;
    bool out_present = undo ? op->present : op->old_present;
    bool in_present = undo ? op->old_present : op->present;
    size_t out_len = undo ? op_value_len(op) : op->old_len;
    size_t in_len = undo ? op->old_len : op_value_len(op);
    if (out_present) {
        kv_digest_table_sub(st->digests, op->pos, out);
        st->count--;
        st->bytes -= out_len;
    }
    if (in_present) {
        kv_digest_table_add(st->digests, op->pos, in);
        st->count++;
        st->bytes += in_len;
    }
}

/* Stage op (taking ownership) and account for it. */
static int stage_op(store_t *st, op_t *op)
{
    batch_t *b = stage(st);
    if (!b || grow((void **)&b->ops, &b->capops, b->nops + 1, sizeof *b->ops) < 0 ||
        overlay_set(st, op) < 0) {
        free(op->rec);
        free(op);
        return -ENOMEM;
    }
    b->ops[b->nops++] = op;
    b->bytes += (int64_t)op->rec_len;
    op_account(st, op, false);
    return 0;
}

static void run_waiters(batch_t *b, int rc)
{
    for (size_t i = 0; i < b->nwaiters; i++)
        b->waiters[i].fn(rc, b->waiters[i].arg);
}

/* The committer is done with b (the loop owns it again). */
static void batch_done(store_t *st, batch_t *b)
{
    st->inflight = NULL;
    if (b->rc == 0) {
        for (size_t i = 0; i < b->nops; i++)
            overlay_release(st, b->ops[i]);
        /* Callbacks may stage new writes and wait again: they go to the next batch. */
        run_waiters(b, 0);
        batch_free(b);
        return;
    }
    batch_t *next = st->stage;
    st->stage = NULL;
    log_warn("store", "commit failed: %s; %zu writes of %zu waiters lost", strerror(-b->rc),
             b->nops + (next ? next->nops : 0), b->nwaiters + (next ? next->nwaiters : 0));
    for (size_t i = next ? next->nops : 0; i-- > 0;)
        op_account(st, next->ops[i], true);
    for (size_t i = b->nops; i-- > 0;)
        op_account(st, b->ops[i], true);
    overlay_clear(st);
    /* The lost batches may be cached; LMDB has the truth. */
    kv_cache_clear(st->cache);
    run_waiters(b, b->rc);
    if (next)
        run_waiters(next, b->rc);
    batch_free(b);
    batch_free(next);
}

/* ------------------------------------------------------------ committer thread */

/*
 * LMDB turns a short write into EIO ("filesystem full?"), so a failed commit
 * is told apart from a broken disk by looking at the free space left.
 */
static bool disk_nearly_full(const store_t *st, int64_t staged)
{
    struct statvfs sv;
    if (statvfs(st->dir, &sv) < 0)
        return false;
    uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize;
    uint64_t need = (uint64_t)(staged > 0 ? staged : 0) + (4u << 20);
    return avail < need;
}

/* Runs on the committer thread (or the loop, when on_loop): only env, dbi, dir and the batch. */
static int write_batch(store_t *st, batch_t *b)
{
    if (b->nops == 0)
        return 0;
    MDB_txn *txn = NULL;
    int mrc = mdb_txn_begin(st->env, NULL, 0, &txn);
    for (size_t i = 0; i < b->nops && mrc == MDB_SUCCESS; i++) {
        op_t *op = b->ops[i];
        MDB_val k = {op->dbkey_len, op->dbkey};
        if (op->present) {
            MDB_val v = {op->rec_len, op->rec};
            mrc = mdb_put(txn, st->dbi, &k, &v, 0);
        } else {
            mrc = mdb_del(txn, st->dbi, &k, NULL);
            if (mrc == MDB_NOTFOUND)
                mrc = MDB_SUCCESS;
        }
    }
    if (mrc == MDB_SUCCESS && st->test_delay_ms) {
        struct timespec ts = {st->test_delay_ms / 1000,
                              (long)(st->test_delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (mrc == MDB_SUCCESS)
        mrc = mdb_txn_commit(txn);
    else if (txn)
        mdb_txn_abort(txn);
    int rc = mdb_to_errno(mrc);
    if (rc == -EIO && disk_nearly_full(st, b->bytes))
        rc = -ENOSPC;
    return rc;
}

static void *committer_main(void *arg)
{
    store_t *st = arg;
    for (;;) {
        pthread_mutex_lock(&st->mu);
        while (!st->todo && !st->quit)
            pthread_cond_wait(&st->cv, &st->mu);
        batch_t *b = st->todo;
        st->todo = NULL;
        pthread_mutex_unlock(&st->mu);
        if (!b)
            break;
        b->rc = write_batch(st, b);
        pthread_mutex_lock(&st->mu);
        st->done = b;
        pthread_mutex_unlock(&st->mu);
        uint64_t one = 1;
        while (write(st->efd, &one, sizeof one) < 0 && errno == EINTR)
            ;
    }
    return NULL;
}

/* The committed batch, if the committer has handed one back. */
static batch_t *take_done(store_t *st)
{
    uint64_t count;
    while (read(st->efd, &count, sizeof count) < 0 && errno == EINTR)
        ;
    pthread_mutex_lock(&st->mu);
    batch_t *b = st->done;
    st->done = NULL;
    pthread_mutex_unlock(&st->mu);
    return b;
}

/* On the loop: the committer handed a batch back. */
static void on_committer(loop_t *loop, void *zsock, int fd, void *arg)
{
    (void)loop;
    (void)zsock;
    (void)fd;
    store_t *st = arg;
    batch_t *b = take_done(st);
    if (b)
        batch_done(st, b);
}

static void send_stage(store_t *st)
{
    batch_t *b = st->stage;
    st->stage = NULL;
    st->inflight = b;
    pthread_mutex_lock(&st->mu);
    st->todo = b;
    pthread_cond_signal(&st->cv);
    pthread_mutex_unlock(&st->mu);
}

static void end_read_snapshot(store_t *st)
{
    /* The writer may reuse the snapshot's pages again. */
    if (st->rtxn_live) {
        mdb_txn_reset(st->rtxn);
        st->rtxn_live = false;
    }
}

/* Waiters may stage (reading the store) and wait again: that commits in the same call. */
static void commit_on_loop(store_t *st)
{
    while (st->stage) {
        end_read_snapshot(st);
        batch_t *b = st->stage;
        st->stage = NULL;
        st->inflight = b;
        b->rc = write_batch(st, b);
        batch_done(st, b);
    }
}

void store_commit(store_t *st)
{
    end_read_snapshot(st);
    if (st->on_loop)
        commit_on_loop(st);
    else if (!st->inflight && st->stage)
        send_stage(st);
}

void store_flush(store_t *st)
{
    if (st->on_loop) {
        store_commit(st);
        return;
    }
    if (!st->thread_started) {
        return;
    }
    while (st->inflight || st->stage) {
        if (!st->inflight)
            send_stage(st);
        struct pollfd p = {st->efd, POLLIN, 0};
        if (poll(&p, 1, -1) < 0 && errno != EINTR)
            break;
        batch_t *b = take_done(st);
        if (b)
            batch_done(st, b);
    }
}

bool store_dirty(const store_t *st)
{
    return st->stage != NULL || st->inflight != NULL || st->rtxn_live;
}

int store_after_commit(store_t *st, store_commit_fn fn, void *arg)
{
    batch_t *b = stage(st);
    if (!b || grow((void **)&b->waiters, &b->capwaiters, b->nwaiters + 1, sizeof *b->waiters) < 0)
        return -ENOMEM;
    b->waiters[b->nwaiters++] = (waiter_t){fn, arg};
    return 0;
}

/* ------------------------------------------------------------ open / close */

static int rebuild_state(store_t *st)
{
    MDB_txn *txn = read_txn(st);
    MDB_cursor *cur;
    if (!txn || mdb_cursor_open(txn, st->dbi, &cur) != MDB_SUCCESS)
        return -EIO;
    MDB_val k, v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == MDB_SUCCESS) {
        store_rec_t rec;
        if (k.mv_size <= 8 || decode_rec(v.mv_data, v.mv_size, &rec) < 0) {
            rc = -1;
            break;
        }
        uint64_t h[2];
        kv_digest_record((const uint8_t *)k.mv_data + 8, k.mv_size - 8, rec.version, h);
        kv_digest_table_add(st->digests, dbkey_pos(&k), h);
        st->count++;
        st->bytes += rec.value_len;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    mdb_txn_reset(st->rtxn);
    st->rtxn_live = false;
    return rc == MDB_NOTFOUND ? 0 : -EIO;
}

static int start_committer(store_t *st)
{
    st->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (st->efd < 0)
        return -errno;
    if (pthread_mutex_init(&st->mu, NULL) != 0)
        return -ENOMEM;
    if (pthread_cond_init(&st->cv, NULL) != 0) {
        pthread_mutex_destroy(&st->mu);
        return -ENOMEM;
    }
    st->sync_init = true;
    if (pthread_create(&st->thread, NULL, committer_main, st) != 0)
        return -EAGAIN;
    st->thread_started = true;
    if (loop_add_fd(st->loop, st->efd, on_committer, st) < 0)
        return -ENOMEM;
    return 0;
}

/* A filesystem whose fsync costs nothing, because it keeps no disk copy. */
static bool in_memory(const char *dir)
{
    struct statfs sf;
    return statfs(dir, &sf) == 0 && (sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC);
}

/*
 * Where LMDB mapped the data file (store_value_copy reads values in the map
 * from the file instead). LMDB does not say unless the map is fixed, so it
 * is the mapping of that file in /proc/self/maps from offset 0 and of the
 * map's whole size (no other mapping of the file can pass for it). Not
 * found: st->map stays NULL and values are copied from the map.
 */
static void map_locate(store_t *st)
{
    struct stat sb;
    int fd;
    if (mdb_env_get_fd(st->env, &fd) != 0 || fstat(fd, &sb) < 0)
        return;
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return;
    char line[PATH_MAX + 128];
    while (fgets(line, sizeof line, f)) {
        unsigned long long from, to, off, ino;
        unsigned maj, min;
        if (sscanf(line, "%llx-%llx %*s %llx %x:%x %llu", &from, &to, &off, &maj, &min, &ino) ==
                6 &&
            off == 0 && to - from == MAP_SIZE && ino == (unsigned long long)sb.st_ino &&
            maj == major(sb.st_dev) && min == minor(sb.st_dev)) {
            st->map = (const uint8_t *)(uintptr_t)from;
            st->map_fd = fd;
            break;
        }
    }
    fclose(f);
    if (!st->map)
        log_info("store", "%s: LMDB's map not found in /proc/self/maps: values are copied from it",
                 st->dir);
}

store_t *store_open(const char *dir, unsigned id_bits, size_t cache_mb, store_commit_mode_t mode,
                    loop_t *loop, char *err, size_t errcap)
{
    store_t *st = calloc(1, sizeof *st);
    if (!st || sodium_init() < 0) {
        snprintf(err, errcap, "out of memory");
        free(st);
        return NULL;
    }
    st->id_bits = id_bits;
    st->loop = loop;
    st->efd = -1;
    snprintf(st->dir, sizeof st->dir, "%s", dir);
    randombytes_buf(st->hkey, sizeof st->hkey);
    const char *delay = getenv(STORE_TEST_COMMIT_DELAY_ENV);
    if (delay && *delay)
        st->test_delay_ms = (unsigned)strtoul(delay, NULL, 10);
    st->cache = kv_cache_new(cache_mb << 20);
    st->digests = kv_digest_table_new(id_bits, DIGEST_BUCKET_BITS);
    int rc = mdb_env_create(&st->env);
    if (rc == MDB_SUCCESS)
        rc = mdb_env_set_mapsize(st->env, MAP_SIZE);
    if (rc == MDB_SUCCESS)
        rc = mdb_env_set_maxdbs(st->env, 4);
    /* MDB_NOTLS: the loop's read txn and the committer's write txn are per thread. */
    if (rc == MDB_SUCCESS)
        rc = mdb_env_open(st->env, dir, MDB_NOTLS | MDB_NORDAHEAD, 0600);
    if (rc != MDB_SUCCESS) {
        snprintf(err, errcap, "cannot open the store in %s: %s", dir, mdb_strerror(rc));
        goto fail;
    }
    MDB_txn *txn;
    rc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (rc == MDB_SUCCESS) {
        rc = mdb_dbi_open(txn, "kv", MDB_CREATE, &st->dbi);
        if (rc == MDB_SUCCESS)
            rc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
    }
    if (rc == MDB_SUCCESS)
        rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &st->rtxn);
    if (rc != MDB_SUCCESS || !st->cache || !st->digests) {
        snprintf(err, errcap, "cannot initialise the store in %s: %s", dir,
                 rc ? mdb_strerror(rc) : "out of memory");
        goto fail;
    }
    mdb_txn_reset(st->rtxn);
    map_locate(st);
    if (rebuild_state(st) < 0) {
        snprintf(err, errcap, "cannot read the store in %s", dir);
        goto fail;
    }
    /* The delay hook simulates a slow disk: that needs the thread. */
    st->on_loop = mode == STORE_COMMIT_LOOP ||
                  (mode == STORE_COMMIT_AUTO && !st->test_delay_ms && in_memory(dir));
    if (st->on_loop)
        log_info("store", "%s is in memory: commits run on the loop", dir);
    rc = st->on_loop ? 0 : start_committer(st);
    if (rc < 0) {
        snprintf(err, errcap, "cannot start the store's committer: %s", strerror(-rc));
        goto fail;
    }
    return st;
fail:
    store_close(&st);
    return NULL;
}

void store_close(store_t **pst)
{
    if (!pst || !*pst)
        return;
    store_t *st = *pst;
    store_flush(st);
    if (st->thread_started) {
        pthread_mutex_lock(&st->mu);
        st->quit = true;
        pthread_cond_signal(&st->cv);
        pthread_mutex_unlock(&st->mu);
        pthread_join(st->thread, NULL);
    }
    if (st->sync_init) {
        pthread_cond_destroy(&st->cv);
        pthread_mutex_destroy(&st->mu);
    }
    if (st->efd >= 0) {
        loop_remove_fd(st->loop, st->efd);
        close(st->efd);
    }
    batch_free(st->stage);
    overlay_clear(st);
    free(st->obuckets);
    if (st->rtxn)
        mdb_txn_abort(st->rtxn);
    if (st->env)
        mdb_env_close(st->env);
    kv_cache_destroy(&st->cache);
    kv_digest_table_destroy(&st->digests);
    free(st);
    *pst = NULL;
}

/* ------------------------------------------------------------ reads and writes */

/*
 * A large value read from the map is about to be read whole (by a
 * store_get caller: a coordinator's own copy, a hint, a stream; a reply
 * reads it from the file instead, store_value_copy). Its pages were
 * written with write(2) by the committer, so this
 * process has not mapped them yet: copying would take a page fault every
 * few pages (fault-around maps 16 at most), and a fault is far dearer
 * than a system call on the VMs we run on. One madvise(MADV_POPULATE_READ)
 * maps the whole range at once. Best effort: a kernel without it (before
 * 5.14) says EINVAL once and is not asked again.
 */
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#define POPULATE_MIN (16u << 10)

static void map_populate(const void *p, size_t len)
{
    static bool unsupported;
    if (len < POPULATE_MIN || unsupported)
        return;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t from = (uintptr_t)p & ~(page - 1);
    uintptr_t to = ((uintptr_t)p + len + page - 1) & ~(page - 1);
    if (madvise((void *)from, to - from, MADV_POPULATE_READ) < 0 && errno == EINVAL)
        unsupported = true;
}

/* What a caller of find() does with the value it is given. */
typedef enum {
    WANT_HEAD,  /* nothing: version and flags only */
    WANT_VALUE, /* reads it where it lies (large values mapped in at once) */
    WANT_COPY,  /* copies it out with store_value_copy (nothing mapped in) */
} want_t;

/* What the store holds for key now: cache, then overlay, then LMDB. */
static int find(store_t *st, const uint8_t *key, size_t key_len, ring_id_t pos, store_rec_t *rec,
                want_t want)
{
    kv_cache_hit_t hit;
    if (kv_cache_get(st->cache, key, key_len, &hit) == 0)
        return decode_payload(hit.version, hit.flags, hit.value, hit.value_len, rec);
    const op_t *op = overlay_find(st, key, key_len);
    if (op)
        return op->present ? decode_rec(op->rec, op->rec_len, rec) : -ENOENT;
    MDB_txn *txn = read_txn(st);
    if (!txn)
        return -EIO;
    MDB_val k = db_key(st, key, key_len, pos), v;
    int rc = mdb_get(txn, st->dbi, &k, &v);
    if (rc != MDB_SUCCESS)
        return mdb_to_errno(rc);
    if (want == WANT_VALUE || (want == WANT_COPY && !st->map))
        map_populate(v.mv_data, v.mv_size);
    rc = decode_rec(v.mv_data, v.mv_size, rec);
    /* Only values read are worth caching (a put or remove wants only the version). */
    if (rc == 0 && want != WANT_HEAD && rec->value_len <= CACHE_VALUE_MAX) {
        const uint8_t *p = v.mv_data;
        kv_cache_offer(st->cache, key, key_len, rec->version, p[16], p + REC_HEADER,
                       v.mv_size - REC_HEADER);
    }
    return rc;
}

static int lookup(store_t *st, const uint8_t *key, size_t key_len, store_rec_t *rec, want_t want)
{
    if (key_len == 0 || key_len > WIRE_KEY_MAX)
        return -EINVAL;
    return find(st, key, key_len, store_pos(st, key, key_len), rec, want);
}

int store_get(store_t *st, const uint8_t *key, size_t key_len, store_rec_t *rec)
{
    return lookup(st, key, key_len, rec, WANT_VALUE);
}

int store_head(store_t *st, const uint8_t *key, size_t key_len, store_rec_t *rec)
{
    return lookup(st, key, key_len, rec, WANT_HEAD);
}

int store_get_to_copy(store_t *st, const uint8_t *key, size_t key_len, store_rec_t *rec)
{
    return lookup(st, key, key_len, rec, WANT_COPY);
}

/*
 * A value in the map is read from the file instead: the kernel copies it
 * straight from the page cache, where a copy from the map would first have
 * to map its freshly written pages (map_populate) — dearer than the copy
 * itself. The caller made no store call since the lookup, so the read
 * snapshot that found the value is still open and LMDB reuses none of its
 * pages meanwhile. A failed read falls back to the map.
 */
void store_value_copy(const store_t *st, const void *value, size_t len, void *dst)
{
    const uint8_t *p = value;
    if (st && st->map && len >= POPULATE_MIN && len <= MAP_SIZE && p >= st->map &&
        (size_t)(p - st->map) <= MAP_SIZE - len) {
        off_t off = p - st->map;
        size_t done = 0;
        while (done < len) {
            ssize_t got = pread(st->map_fd, (uint8_t *)dst + done, len - done, off + (off_t)done);
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0)
                break;
            done += (size_t)got;
        }
        if (done == len)
            return;
    }
    memcpy(dst, value, len);
}

static op_t *op_new(const uint8_t *key, size_t key_len, ring_id_t pos, const store_rec_t *old)
{
    op_t *op = calloc(1, sizeof *op + 8 + key_len);
    if (!op)
        return NULL;
    op->pos = pos;
    put_be64(op->dbkey, pos);
    memcpy(op->dbkey + 8, key, key_len);
    op->dbkey_len = 8 + key_len;
    if (old) {
        op->old_present = true;
        op->old_len = old->value_len;
        kv_digest_record(key, key_len, old->version, op->old_hash);
    }
    return op;
}

int store_put(store_t *st, const uint8_t *key, size_t key_len, kv_version_t version, uint8_t flags,
              const void *value, size_t value_len, kv_version_t *current)
{
    return store_put_opid(st, key, key_len, version, flags, (kv_opid_t){0, 0}, value, value_len,
                          current);
}

/*
 * Test hook DHT_TEST_STORE_DROPS=PREFIX: writes of keys starting with
 * PREFIX are reported applied but never stored, so this node's copy stays
 * stale while the others move on: the replica a reader must not believe.
 */
static bool drops(const uint8_t *key, size_t key_len)
{
    static const char *prefix;
    static bool read;
    if (!read) {
        read = true;
        prefix = getenv("DHT_TEST_STORE_DROPS");
        if (prefix && *prefix)
            log_warn("store", "test hook: dropping every write of keys under '%s'", prefix);
        else
            prefix = NULL;
    }
    size_t len = prefix ? strlen(prefix) : 0;
    return prefix && key_len >= len && memcmp(key, prefix, len) == 0;
}

/* drops(key): the write of version is reported applied (*current, if set, is version). */
static bool dropped(const uint8_t *key, size_t key_len, kv_version_t version, kv_version_t *current)
{
    if (!drops(key, key_len))
        return false;
    if (current)
        *current = version;
    return true;
}

/*
 * Stage key's record: old_len bytes of old with the len bytes of bytes at
 * off (kv_patch_write; a whole value is old = NULL, off 0), under version.
 * prev is what the store held (NULL: nothing). Returns 1 or -ENOMEM.
 */
static int stage_put(store_t *st, const uint8_t *key, size_t key_len, ring_id_t pos,
                     const store_rec_t *prev, kv_version_t version, uint8_t flags, kv_opid_t opid,
                     const uint8_t *old, size_t old_len, uint32_t off, const void *bytes,
                     size_t len, kv_version_t *current)
{
    op_t *op = op_new(key, key_len, pos, prev);
    size_t idlen = kv_opid_is_set(opid) ? REC_OPID_LEN : 0;
    size_t value_len = kv_patch_len(old_len, off, len);
    uint8_t *p = malloc(REC_HEADER + idlen + value_len);
    if (!op || !p) {
        free(op);
        free(p);
        return -ENOMEM;
    }
    put_be64(p, version.hlc);
    put_be64(p + 8, version.node);
    p[16] = (uint8_t)(flags | (idlen ? REC_OPID : 0));
    if (idlen) {
        put_be64(p + REC_HEADER, opid.client);
        put_be64(p + REC_HEADER + 8, opid.seq);
    }
    /* Built before staging: old may point into the overlay entry this op replaces. */
    kv_patch_write(p + REC_HEADER + idlen, old, old_len, off, bytes, len);
    op->present = true;
    op->rec = p;
    op->rec_len = REC_HEADER + idlen + value_len;
    kv_digest_record(key, key_len, version, op->new_hash);
    int rc = stage_op(st, op);
    if (rc < 0)
        return rc;
    /*
     * Not copied into the cache: a value written is seldom read back soon
     * (a file's chunks), and the overlay answers for it until it is
     * committed. The key's next reads bring it in if it is hot.
     */
    kv_cache_remove(st->cache, key, key_len);
    if (current)
        *current = version;
    return 1;
}

/*
 * What a write of version to key finds: 1 go on (*pos is the key's
 * position, *have says whether *old holds the stored record), 0 the store
 * holds version or newer (*current set), or a negative errno.
 */
static int put_begin(store_t *st, const uint8_t *key, size_t key_len, kv_version_t version,
                     ring_id_t *pos, store_rec_t *old, bool *have, kv_version_t *current)
{
    *pos = store_pos(st, key, key_len);
    *have = false;
    int rc = find(st, key, key_len, *pos, old, WANT_HEAD);
    if (rc == 0 && kv_version_cmp(version, old->version) <= 0) {
        if (current)
            *current = old->version;
        return 0;
    }
    if (rc < 0 && rc != -ENOENT)
        return rc;
    *have = rc == 0;
    return 1;
}

int store_put_opid(store_t *st, const uint8_t *key, size_t key_len, kv_version_t version,
                   uint8_t flags, kv_opid_t opid, const void *value, size_t value_len,
                   kv_version_t *current)
{
    if (key_len == 0 || key_len > WIRE_KEY_MAX || value_len > WIRE_VALUE_MAX)
        return -EINVAL;
    if (dropped(key, key_len, version, current))
        return 1;
    ring_id_t pos;
    store_rec_t old;
    bool have;
    int rc = put_begin(st, key, key_len, version, &pos, &old, &have, current);
    if (rc <= 0)
        return rc;
    return stage_put(st, key, key_len, pos, have ? &old : NULL, version, flags, opid, NULL, 0, 0,
                     value, value_len, current);
}

int store_patch_opid(store_t *st, const uint8_t *key, size_t key_len, kv_version_t version,
                     kv_opid_t opid, kv_version_t base, uint32_t off, const void *bytes, size_t len,
                     kv_version_t *current)
{
    if (key_len == 0 || key_len > WIRE_KEY_MAX || len > WIRE_VALUE_MAX)
        return -EINVAL;
    ring_id_t pos;
    store_rec_t old;
    bool have;
    int rc = put_begin(st, key, key_len, version, &pos, &old, &have, current);
    if (rc <= 0)
        return rc;
    if (!have || kv_version_cmp(old.version, base) != 0 || (old.flags & WIRE_FLAG_TOMBSTONE))
        return -ESTALE;
    if (off > WIRE_VALUE_MAX - len)
        return -EFBIG;
    if (dropped(key, key_len, version, current))
        return 1;
    return stage_put(st, key, key_len, pos, &old, version, 0, opid, old.value, old.value_len, off,
                     bytes, len, current);
}

int store_remove(store_t *st, const uint8_t *key, size_t key_len)
{
    if (key_len == 0 || key_len > WIRE_KEY_MAX)
        return -EINVAL;
    ring_id_t pos = store_pos(st, key, key_len);
    store_rec_t old;
    int rc = find(st, key, key_len, pos, &old, WANT_HEAD);
    if (rc < 0)
        return rc;
    op_t *op = op_new(key, key_len, pos, &old);
    if (!op)
        return -ENOMEM;
    rc = stage_op(st, op);
    if (rc < 0)
        return rc;
    kv_cache_remove(st->cache, key, key_len);
    return 0;
}

/* ------------------------------------------------------------ scans and digests */

/*
 * Visit positions from `from` (exclusive unless from_inclusive) to `to`
 * (inclusive, to >= from), resuming strictly after (after_pos, after_key)
 * when after_key is non-NULL (the caller passes it only to the segment that
 * contains it). Pending changes replace what LMDB holds.
 */
static int scan_segment(store_t *st, MDB_cursor *cur, ring_id_t from, bool from_inclusive,
                        ring_id_t to, ring_id_t after_pos, const uint8_t *after_key,
                        size_t after_len, size_t max, size_t *visited, store_scan_fn fn, void *arg)
{
    uint8_t start[DBKEY_MAX];
    size_t start_len = 8;
    put_be64(start, from);
    if (after_key) {
        put_be64(start, after_pos);
        memcpy(start + 8, after_key, after_len);
        start_len = 8 + after_len;
    }
    MDB_val k = {start_len, start}, v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    for (; rc == MDB_SUCCESS && *visited < max; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        ring_id_t pos = dbkey_pos(&k);
        if (pos > to)
            return 0;
        if (!after_key && !from_inclusive && pos == from)
            continue;
        if (after_key && k.mv_size == start_len && memcmp(k.mv_data, start, start_len) == 0)
            continue;
        const uint8_t *key = (const uint8_t *)k.mv_data + 8;
        size_t key_len = k.mv_size - 8;
        store_rec_t rec;
        const op_t *op = overlay_find(st, key, key_len);
        if (op && !op->present)
            continue; /* removal pending */
        if (op ? decode_rec(op->rec, op->rec_len, &rec) < 0
               : decode_rec(v.mv_data, v.mv_size, &rec) < 0)
            return -EIO;
        (*visited)++;
        if (fn(key, key_len, pos, &rec, arg))
            return 1;
    }
    return rc == MDB_SUCCESS || rc == MDB_NOTFOUND ? 0 : -EIO;
}

int store_scan(store_t *st, ring_id_t lo, ring_id_t hi, ring_id_t after_pos,
               const uint8_t *after_key, size_t after_len, size_t max, store_scan_fn fn, void *arg)
{
    MDB_txn *txn = read_txn(st);
    MDB_cursor *cur;
    if (!txn || mdb_cursor_open(txn, st->dbi, &cur) != MDB_SUCCESS)
        return -EIO;
    size_t visited = 0;
    int rc = 0;
    ring_id_t top = ring_mask(st->id_bits);
    if (lo < hi) {
        rc = scan_segment(st, cur, lo, false, hi, after_pos, after_key, after_len, max, &visited,
                          fn, arg);
    } else {
        /* Wraps past zero, or the whole ring when lo == hi: (lo, top] then [0, hi]. */
        bool in_first = after_key && after_pos > lo;
        if ((!after_key || in_first) && lo < top)
            rc = scan_segment(st, cur, lo, false, top, after_pos, in_first ? after_key : NULL,
                              after_len, max, &visited, fn, arg);
        if (rc == 0)
            rc = scan_segment(st, cur, 0, true, hi, after_pos, in_first ? NULL : after_key,
                              after_len, max, &visited, fn, arg);
    }
    mdb_cursor_close(cur);
    return rc < 0 ? rc : (int)visited;
}

/*
 * The records of one edge span [a, b], pending ones included: LMDB's
 * records whose key has no pending op, then every pending put in the span
 * (the overlay holds at most two batches, so walking it is cheap).
 */
static int digest_span(store_t *st, MDB_cursor *cur, kv_digest_span_t sp, kv_digest_t *d)
{
    uint8_t start[8];
    put_be64(start, sp.from);
    MDB_val k = {sizeof start, start}, v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    for (; rc == MDB_SUCCESS; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (dbkey_pos(&k) > sp.to)
            break;
        const uint8_t *key = (const uint8_t *)k.mv_data + 8;
        size_t key_len = k.mv_size - 8;
        if (overlay_find(st, key, key_len))
            continue;
        store_rec_t rec;
        if (decode_rec(v.mv_data, v.mv_size, &rec) < 0)
            return -EIO;
        uint64_t h[2];
        kv_digest_record(key, key_len, rec.version, h);
        kv_digest_add(d, h);
    }
    if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
        return -EIO;
    for (size_t i = 0; st->noverlay && i < st->nobuckets; i++)
        for (const oentry_t *e = st->obuckets[i]; e; e = e->next)
            if (e->op->present && e->op->pos >= sp.from && e->op->pos <= sp.to)
                kv_digest_add(d, e->op->new_hash);
    return 0;
}

int store_digest(store_t *st, ring_id_t lo, ring_id_t hi, uint64_t *count, uint64_t digest[2])
{
    kv_digest_t d;
    kv_digest_span_t edges[KV_DIGEST_SPANS_MAX];
    size_t ne = kv_digest_table_range(st->digests, lo, hi, &d, edges);
    if (ne) {
        MDB_txn *txn = read_txn(st);
        MDB_cursor *cur;
        if (!txn || mdb_cursor_open(txn, st->dbi, &cur) != MDB_SUCCESS)
            return -EIO;
        int rc = 0;
        for (size_t i = 0; i < ne && rc == 0; i++)
            rc = digest_span(st, cur, edges[i], &d);
        mdb_cursor_close(cur);
        if (rc < 0)
            return rc;
    }
    *count = d.count;
    digest[0] = d.x[0];
    digest[1] = d.x[1];
    return 0;
}

uint64_t store_count(store_t *st)
{
    return st->count;
}

uint64_t store_bytes(store_t *st)
{
    return st->bytes;
}
