/*
 * store.c — LMDB-backed record store with an LRU read cache.
 *
 * LMDB keys are [position: 8 bytes big-endian][key bytes], so byte order is
 * ring order; LMDB values are [hlc 8][node 8][flags 1][value bytes], or,
 * with REC_OPID set in the flags byte (never on the wire),
 * [hlc 8][node 8][flags 1][client 8][seq 8][value bytes]: the identity of
 * the client write that made the version. Records written before
 * identities existed simply lack the bit. The cache holds the same
 * payload (identity, then value) so both paths decode alike.
 *
 * One write transaction accumulates every write of an event-loop iteration;
 * store_commit() (the loop's before-poll hook) makes them durable with one
 * fsync and then releases the acknowledgements waiting for it. A failed
 * commit (disk full) aborts the whole batch, reports -ENOSPC to every waiter
 * and flushes the cache, which may hold values of the lost batch.
 * Reads inside an iteration go through the write transaction when one is
 * open, so a "newer than stored" check sees writes staged just before.
 */
#include "store.h"

#include "kv_cache.h"
#include "log.h"
#include "wire.h"

#include <errno.h>
#include <limits.h>
#include <lmdb.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

enum {
    REC_HEADER = 17,
    REC_OPID = 0x80, /* a stored-flags bit: the payload starts with a 16-byte opid */
    REC_OPID_LEN = 16,
    DBKEY_MAX = 8 + WIRE_KEY_MAX,
};

typedef struct {
    store_commit_fn fn;
    void *arg;
} waiter_t;

struct store {
    char dir[PATH_MAX];
    MDB_env *env;
    MDB_dbi dbi;
    MDB_txn *rtxn; /* reused read transaction (reset between calls) */
    bool rtxn_live;
    MDB_txn *wtxn; /* staged writes, or NULL */
    unsigned id_bits;
    kv_cache_t *cache;
    size_t cache_bytes;
    waiter_t *waiters;
    size_t nwaiters, capwaiters;
    uint64_t count, bytes;              /* committed */
    int64_t staged_count, staged_bytes; /* deltas of the open write txn */
    uint8_t keybuf[DBKEY_MAX];
    uint8_t *recbuf;
    size_t reccap;
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

static MDB_val db_key(store_t *st, const uint8_t *key, size_t key_len)
{
    ring_id_t pos = store_pos(st, key, key_len);
    for (int i = 0; i < 8; i++)
        st->keybuf[i] = (uint8_t)(pos >> (56 - 8 * i));
    memcpy(st->keybuf + 8, key, key_len);
    return (MDB_val){8 + key_len, st->keybuf};
}

static ring_id_t dbkey_pos(const MDB_val *k)
{
    const uint8_t *p = k->mv_data;
    ring_id_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
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

static int decode_rec(const MDB_val *v, store_rec_t *rec)
{
    if (v->mv_size < REC_HEADER)
        return -EIO;
    const uint8_t *p = v->mv_data;
    kv_version_t version = {get_be64(p), get_be64(p + 8)};
    return decode_payload(version, p[16], p + REC_HEADER, v->mv_size - REC_HEADER, rec);
}

/* The transaction reads go through: the staged one, else the read one. */
static MDB_txn *read_txn(store_t *st)
{
    if (st->wtxn)
        return st->wtxn;
    if (st->rtxn_live)
        mdb_txn_reset(st->rtxn);
    if (mdb_txn_renew(st->rtxn) != MDB_SUCCESS)
        return NULL;
    st->rtxn_live = true;
    return st->rtxn;
}

static int count_all(store_t *st)
{
    MDB_txn *txn = read_txn(st);
    MDB_cursor *cur;
    if (!txn || mdb_cursor_open(txn, st->dbi, &cur) != MDB_SUCCESS)
        return -EIO;
    MDB_val k, v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == MDB_SUCCESS) {
        st->count++;
        store_rec_t rec;
        st->bytes += decode_rec(&v, &rec) == 0 ? rec.value_len : 0;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : -EIO;
}

store_t *store_open(const char *dir, unsigned id_bits, size_t cache_mb, char *err, size_t errcap)
{
    store_t *st = calloc(1, sizeof *st);
    if (!st) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    st->id_bits = id_bits;
    snprintf(st->dir, sizeof st->dir, "%s", dir);
    st->cache_bytes = cache_mb << 20;
    st->cache = kv_cache_new(st->cache_bytes);
    int rc = mdb_env_create(&st->env);
    if (rc == MDB_SUCCESS)
        rc = mdb_env_set_mapsize(st->env, (size_t)256 << 30);
    if (rc == MDB_SUCCESS)
        rc = mdb_env_set_maxdbs(st->env, 4);
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
    if (rc != MDB_SUCCESS || !st->cache) {
        snprintf(err, errcap, "cannot initialise the store in %s: %s", dir,
                 rc ? mdb_strerror(rc) : "out of memory");
        goto fail;
    }
    mdb_txn_reset(st->rtxn);
    if (count_all(st) < 0) {
        snprintf(err, errcap, "cannot read the store in %s", dir);
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
    if (st->wtxn)
        store_commit(st);
    if (st->rtxn)
        mdb_txn_abort(st->rtxn);
    if (st->env)
        mdb_env_close(st->env);
    kv_cache_destroy(&st->cache);
    free(st->waiters);
    free(st->recbuf);
    free(st);
    *pst = NULL;
}

int store_get(store_t *st, const uint8_t *key, size_t key_len, store_rec_t *rec)
{
    if (key_len == 0 || key_len > WIRE_KEY_MAX)
        return -EINVAL;
    kv_cache_hit_t hit;
    if (kv_cache_get(st->cache, key, key_len, &hit) == 0)
        return decode_payload(hit.version, hit.flags, hit.value, hit.value_len, rec);
    MDB_txn *txn = read_txn(st);
    if (!txn)
        return -EIO;
    MDB_val k = db_key(st, key, key_len), v;
    int rc = mdb_get(txn, st->dbi, &k, &v);
    if (rc != MDB_SUCCESS)
        return mdb_to_errno(rc);
    rc = decode_rec(&v, rec);
    if (rc == 0) {
        const uint8_t *p = v.mv_data;
        kv_cache_put(st->cache, key, key_len, rec->version, p[16], p + REC_HEADER,
                     v.mv_size - REC_HEADER);
    }
    return rc;
}

static int begin_write(store_t *st)
{
    if (st->wtxn)
        return 0;
    if (st->rtxn_live) {
        mdb_txn_reset(st->rtxn);
        st->rtxn_live = false;
    }
    return mdb_to_errno(mdb_txn_begin(st->env, NULL, 0, &st->wtxn));
}

int store_put(store_t *st, const uint8_t *key, size_t key_len, kv_version_t version, uint8_t flags,
              const void *value, size_t value_len, kv_version_t *current)
{
    return store_put_opid(st, key, key_len, version, flags, (kv_opid_t){0, 0}, value, value_len,
                          current);
}

int store_put_opid(store_t *st, const uint8_t *key, size_t key_len, kv_version_t version,
                   uint8_t flags, kv_opid_t opid, const void *value, size_t value_len,
                   kv_version_t *current)
{
    if (key_len == 0 || key_len > WIRE_KEY_MAX || value_len > WIRE_VALUE_MAX)
        return -EINVAL;
    int rc = begin_write(st);
    if (rc < 0)
        return rc;
    MDB_val k = db_key(st, key, key_len), v;
    bool existed = false;
    size_t old_len = 0;
    rc = mdb_get(st->wtxn, st->dbi, &k, &v);
    if (rc == MDB_SUCCESS) {
        store_rec_t old;
        if (decode_rec(&v, &old) == 0 && kv_version_cmp(version, old.version) <= 0) {
            if (current)
                *current = old.version;
            return 0;
        }
        existed = true;
        old_len = old.value_len;
    } else if (rc != MDB_NOTFOUND) {
        return mdb_to_errno(rc);
    }
    size_t idlen = kv_opid_is_set(opid) ? REC_OPID_LEN : 0;
    /* MDB_RESERVE lets LMDB hand us the destination: one copy of the value. */
    MDB_val out = {REC_HEADER + idlen + value_len, NULL};
    rc = mdb_put(st->wtxn, st->dbi, &k, &out, MDB_RESERVE);
    if (rc != MDB_SUCCESS)
        return mdb_to_errno(rc);
    uint8_t *p = out.mv_data;
    put_be64(p, version.hlc);
    put_be64(p + 8, version.node);
    p[16] = (uint8_t)(flags | (idlen ? REC_OPID : 0));
    if (idlen) {
        put_be64(p + REC_HEADER, opid.client);
        put_be64(p + REC_HEADER + 8, opid.seq);
    }
    if (value_len)
        memcpy(p + REC_HEADER + idlen, value, value_len);
    st->staged_count += existed ? 0 : 1;
    st->staged_bytes += (int64_t)value_len - (int64_t)old_len;
    kv_cache_put(st->cache, key, key_len, version, p[16], p + REC_HEADER, idlen + value_len);
    if (current)
        *current = version;
    return 1;
}

int store_remove(store_t *st, const uint8_t *key, size_t key_len)
{
    int rc = begin_write(st);
    if (rc < 0)
        return rc;
    MDB_val k = db_key(st, key, key_len), v;
    rc = mdb_get(st->wtxn, st->dbi, &k, &v);
    if (rc != MDB_SUCCESS)
        return mdb_to_errno(rc);
    store_rec_t old;
    size_t len = decode_rec(&v, &old) == 0 ? old.value_len : 0;
    rc = mdb_del(st->wtxn, st->dbi, &k, NULL);
    if (rc != MDB_SUCCESS)
        return mdb_to_errno(rc);
    st->staged_count--;
    st->staged_bytes -= (int64_t)len;
    kv_cache_remove(st->cache, key, key_len);
    return 0;
}

int store_after_commit(store_t *st, store_commit_fn fn, void *arg)
{
    if (st->nwaiters == st->capwaiters) {
        size_t cap = st->capwaiters ? st->capwaiters * 2 : 64;
        waiter_t *w = realloc(st->waiters, cap * sizeof *w);
        if (!w)
            return -ENOMEM;
        st->waiters = w;
        st->capwaiters = cap;
    }
    st->waiters[st->nwaiters++] = (waiter_t){fn, arg};
    return 0;
}

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

bool store_dirty(const store_t *st)
{
    return st->wtxn != NULL || st->nwaiters > 0;
}

int store_commit(store_t *st)
{
    int rc = 0;
    if (st->wtxn) {
        int64_t staged = st->staged_bytes;
        int mrc = mdb_txn_commit(st->wtxn);
        rc = mdb_to_errno(mrc);
        if (rc == -EIO && disk_nearly_full(st, staged))
            rc = -ENOSPC;
        if (rc < 0)
            log_warn("store", "commit failed: %s; %zu writes lost", mdb_strerror(mrc),
                     st->nwaiters);
        st->wtxn = NULL;
        if (rc == 0) {
            st->count += (uint64_t)st->staged_count;
            st->bytes += (uint64_t)st->staged_bytes;
        } else {
            /* The batch is gone; so must be any cached value from it. */
            kv_cache_clear(st->cache);
        }
        st->staged_count = 0;
        st->staged_bytes = 0;
    }
    /* Callbacks may stage new writes and wait again: take this batch only. */
    size_t n = st->nwaiters;
    waiter_t *batch = st->waiters;
    st->waiters = NULL;
    st->nwaiters = st->capwaiters = 0;
    for (size_t i = 0; i < n; i++)
        batch[i].fn(rc, batch[i].arg);
    free(batch);
    return rc;
}

/*
 * Visit positions from `from` (exclusive unless from_inclusive) to `to`
 * (inclusive, to >= from), resuming strictly after (after_pos, after_key)
 * when after_key is non-NULL (the caller passes it only to the segment that
 * contains it).
 */
static int scan_segment(MDB_cursor *cur, ring_id_t from, bool from_inclusive, ring_id_t to,
                        ring_id_t after_pos, const uint8_t *after_key, size_t after_len, size_t max,
                        size_t *visited, store_scan_fn fn, void *arg)
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
        store_rec_t rec;
        if (decode_rec(&v, &rec) < 0)
            return -EIO;
        (*visited)++;
        if (fn(((const uint8_t *)k.mv_data) + 8, k.mv_size - 8, pos, &rec, arg))
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
        rc = scan_segment(cur, lo, false, hi, after_pos, after_key, after_len, max, &visited, fn,
                          arg);
    } else {
        /* Wraps past zero, or the whole ring when lo == hi: (lo, top] then [0, hi]. */
        bool in_first = after_key && after_pos > lo;
        if ((!after_key || in_first) && lo < top)
            rc = scan_segment(cur, lo, false, top, after_pos, in_first ? after_key : NULL,
                              after_len, max, &visited, fn, arg);
        if (rc == 0)
            rc = scan_segment(cur, 0, true, hi, after_pos, in_first ? NULL : after_key, after_len,
                              max, &visited, fn, arg);
    }
    mdb_cursor_close(cur);
    return rc < 0 ? rc : (int)visited;
}

typedef struct {
    uint64_t count;
    uint64_t digest[2];
} digest_acc_t;

static int digest_one(const uint8_t *key, size_t key_len, ring_id_t pos, const store_rec_t *rec,
                      void *arg)
{
    (void)pos;
    digest_acc_t *acc = arg;
    crypto_generichash_state h;
    uint8_t ver[16], out[16];
    put_be64(ver, rec->version.hlc);
    put_be64(ver + 8, rec->version.node);
    crypto_generichash_init(&h, NULL, 0, sizeof out);
    crypto_generichash_update(&h, key, key_len);
    crypto_generichash_update(&h, ver, sizeof ver);
    crypto_generichash_final(&h, out, sizeof out);
    /* XOR makes the digest independent of visiting order. */
    acc->digest[0] ^= get_be64(out);
    acc->digest[1] ^= get_be64(out + 8);
    acc->count++;
    return 0;
}

int store_digest(store_t *st, ring_id_t lo, ring_id_t hi, uint64_t *count, uint64_t digest[2])
{
    digest_acc_t acc = {0, {0, 0}};
    int rc = store_scan(st, lo, hi, 0, NULL, 0, SIZE_MAX, digest_one, &acc);
    if (rc < 0)
        return rc;
    *count = acc.count;
    digest[0] = acc.digest[0];
    digest[1] = acc.digest[1];
    return 0;
}

uint64_t store_count(store_t *st)
{
    return st->count + (uint64_t)st->staged_count;
}

uint64_t store_bytes(store_t *st)
{
    return st->bytes + (uint64_t)st->staged_bytes;
}
