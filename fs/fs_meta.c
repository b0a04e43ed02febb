/*
 * fs_meta.c — inode records and directories on the store.
 *
 * Every change is a compare-and-set on one key (an inode record or one
 * directory bucket), retried on conflict, so mounts that change the same
 * directory or inode at once never lose each other's changes. Cached
 * records and buckets answer lookups for ttl_ms (the kernel's own entry and
 * attribute timeouts); changes always start from the cached version and
 * learn of newer ones from a failed condition.
 *
 * Applied once: the store client retries a write whose answer was lost,
 * so a failed condition may mean "my first attempt landed", and a timeout
 * says nothing either way. Each change therefore writes a token among the
 * value's stamps (fs_layout.h); after a conflict or an unknown outcome the
 * value is read back and the change is re-applied only if its token is
 * not there. Re-applying carries the same token, so whichever of a late
 * first attempt and the re-application lands, the other fails its
 * condition and the read-back finds the token.
 */
#include "fs_acl.h"
#include "fs_ahead.h"
#include "fs_i.h"
#include "fs_names.h"
#include "log.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define INO_RANGE 4096
#define INO_FIRST 16
#define CAS_ATTEMPTS 100
/* Writes whose outcome stayed unknown before giving up with EIO (each costs a store timeout). */
#define UNKNOWN_ATTEMPTS 2

struct timespec fs_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts;
}

uint64_t fs_now_ms(fs_t *fs)
{
    return loop_now_ms(fs->loop);
}

uint64_t fs_token_new(fs_t *fs)
{
    if (fs->tok_next == 0)
        randombytes_buf(&fs->tok_next, sizeof(fs->tok_next));
    if (++fs->tok_next == 0)
        fs->tok_next++;
    return fs->tok_next;
}

bool fs_outcome_unknown(int rc)
{
    /* A failed condition is a definite answer (the write was not applied), not EIO. */
    return rc < 0 && rc != -ESTALE && fs_store_errno(rc) == -EIO;
}

/* ---- nodes ---- */

fs_node_t *fs_node_find(fs_t *fs, uint64_t ino)
{
    return fs_map_get(fs->nodes, ino, 0);
}

fs_node_t *fs_node_get(fs_t *fs, uint64_t ino)
{
    fs_node_t *n = fs_node_find(fs, ino);
    if (!n) {
        n = calloc(1, sizeof(*n));
        if (!n)
            return NULL;
        n->ino = ino;
        /*
         * A node forgotten by the kernel and made again must not trust
         * chunks cached before: another mount may have changed the file.
         */
        n->gen = ++fs->gen_next;
        if (fs_map_put(fs->nodes, ino, 0, n) < 0) {
            free(n);
            return NULL;
        }
    }
    n->refs++;
    return n;
}

void fs_node_put(fs_t *fs, fs_node_t *n)
{
    if (!n)
        return;
    n->refs--;
    fs_node_maybe_free(fs, n);
}

void fs_node_maybe_free(fs_t *fs, fs_node_t *n)
{
    if (n->refs > 0 || n->nlookup > 0 || n->open > 0 || n->lock.held || fs_data_dirty(n) ||
        n->flushing > 0)
        return;
    fs_map_remove(fs->nodes, n->ino, 0);
    fs_inode_free(&n->in);
    fs_extents_free(&n->written);
    free(n);
}

static int free_node(uint64_t a, uint64_t b, void *value, void *arg)
{
    (void)a;
    (void)b;
    (void)arg;
    fs_node_t *n = value;
    fs_inode_free(&n->in);
    fs_extents_free(&n->written);
    free(n);
    return 0;
}

void fs_release_all(fs_t *fs)
{
    if (fs->nodes)
        fs_map_each(fs->nodes, free_node, NULL);
    fs_map_destroy(&fs->nodes);
    fs_map_destroy(&fs->dirty);
    fs_map_destroy(&fs->fetching);
    kv_cache_destroy(&fs->chunks);
    kv_cache_destroy(&fs->buckets);
    fs_ahead_free(fs);
}

static void node_set(fs_t *fs, fs_node_t *n, fs_inode_t *in, kv_version_t ver,
                     const fs_stamps_t *st)
{
    n->stamps = *st;
    fs_inode_free(&n->in);
    n->in = *in;
    n->in.ino = n->ino;
    memset(in, 0, sizeof(*in));
    n->ver = ver;
    n->have = true;
    n->just_created = false;
    n->fetched_ms = fs_now_ms(fs);
    if (!fs_data_dirty(n) || n->in.size > n->size)
        n->size = n->in.size;
    /* Times this mount gave the directory and has not written yet stay visible. */
    if (n->touch_pending || n->touch_running) {
        if (!n->touch_ctime_only && fs_ts_cmp(n->in.mtime_s, n->in.mtime_ns, n->touch_time) < 0) {
            n->in.mtime_s = n->touch_time.tv_sec;
            n->in.mtime_ns = (uint32_t)n->touch_time.tv_nsec;
        }
        if (fs_ts_cmp(n->in.ctime_s, n->in.ctime_ns, n->touch_time) < 0) {
            n->in.ctime_s = n->touch_time.tv_sec;
            n->in.ctime_ns = (uint32_t)n->touch_time.tv_nsec;
        }
    }
}

bool fs_node_fresh(fs_t *fs, const fs_node_t *n)
{
    return n->have && fs_now_ms(fs) - n->fetched_ms < fs->ttl_ms;
}

static int node_loaded(fs_t *fs, fs_node_t *n, uint8_t *value, size_t len, kv_version_t ver);

int fs_node_load(fs_t *fs, fs_node_t *n, bool fresh)
{
    if (!fresh && fs_node_fresh(fs, n))
        return 0;
    char key[FS_KEY_MAX];
    fs_key_inode(key, fs->vol, n->ino);
    uint8_t *value;
    size_t len;
    kv_version_t ver;
    int rc = fs_get(fs->kvc, key, &value, &len, &ver);
    if (rc < 0)
        return fs_store_errno(rc);
    return node_loaded(fs, n, value, len, ver);
}

void fs_nodes_load(fs_t *fs, fs_node_t **nodes, size_t count)
{
    fs_op_t *ops = calloc(count, sizeof(*ops));
    if (!ops)
        return;
    for (size_t i = 0; i < count; i++) {
        if (fs_node_fresh(fs, nodes[i])) {
            ops[i].done = true;
            ops[i].rc = 1;
            continue;
        }
        char key[FS_KEY_MAX];
        fs_key_inode(key, fs->vol, nodes[i]->ino);
        fs_op_get(fs->kvc, &ops[i], key);
    }
    for (size_t i = 0; i < count; i++) {
        if (fs_op_wait(&ops[i]) == 0) {
            node_loaded(fs, nodes[i], ops[i].value, ops[i].len, ops[i].version);
            ops[i].value = NULL;
        }
        fs_op_clear(&ops[i]);
    }
    free(ops);
}

/*
 * A format-1 record has no chunk index: its chunks may be anywhere below
 * its size, as the old per-chunk loops assumed. Listing exactly that
 * keeps removal and truncation as correct (and as costly) as they were
 * for such files; the next update of the record stores the index.
 */
static int index_resolve(fs_t *fs, fs_inode_t *in)
{
    if (!in->ext_unknown)
        return 0;
    in->ext_unknown = false;
    uint64_t count = fs_chunk_count(in->size, fs->chunk_size);
    if (!S_ISREG(in->mode) || (in->flags & FS_INODE_INLINE) || count == 0)
        return 0;
    return fs_extents_add(&in->ext, 0, count);
}

/*
 * Take a record read from the store (value is consumed). A read answered
 * after a newer version got here (our own update, or a read sent later)
 * is older news: kept out, or it would roll the node back.
 */
static int node_loaded(fs_t *fs, fs_node_t *n, uint8_t *value, size_t len, kv_version_t ver)
{
    if (n->have && kv_version_cmp(ver, n->ver) < 0) {
        free(value);
        return 0;
    }
    fs_inode_t in;
    fs_stamps_t st;
    size_t body;
    int rc = fs_stamps_decode(value, len, &st, &body);
    if (rc == 0)
        rc = fs_inode_decode(value + body, len - body, &in);
    free(value);
    if (rc < 0) {
        log_warn("fs", "inode %llx: undecodable record", (unsigned long long)n->ino);
        return -EIO;
    }
    if ((rc = index_resolve(fs, &in)) < 0) {
        fs_inode_free(&in);
        return rc;
    }
    bool changed = n->have && kv_version_cmp(ver, n->ver) != 0;
    bool data_changed = changed && (in.size != n->in.size || in.mtime_s != n->in.mtime_s ||
                                    in.mtime_ns != n->in.mtime_ns);
    node_set(fs, n, &in, ver, &st);
    if (data_changed && !fs_data_dirty(n)) {
        fs_data_invalidate(fs, n);
        n->remote_change = true;
    }
    return 0;
}

/* Encode a record and put it under the key of ino. The store's error, or 0 and *ver. */
static int inode_put(fs_t *fs, uint64_t ino, const fs_inode_t *in, const fs_stamps_t *st,
                     kvc_cond_t cond, kv_version_t if_version, kv_version_t *ver)
{
    size_t head = fs_stamps_encoded_size(st);
    size_t need = head + fs_inode_encoded_size(in);
    uint8_t *buf = malloc(need);
    if (!buf)
        return -ENOMEM;
    fs_stamps_encode(st, buf, head);
    size_t len = fs_inode_encode(in, buf + head, need - head);
    len = len ? head + len : 0;
    char key[FS_KEY_MAX];
    fs_key_inode(key, fs->vol, ino);
    int rc = len ? fs_put(fs->kvc, key, buf, len, cond, if_version, ver) : -EINVAL;
    free(buf);
    return rc;
}

int fs_ts_cmp(int64_t s, uint32_t ns, struct timespec t)
{
    if (s != t.tv_sec)
        return s < t.tv_sec ? -1 : 1;
    return ns < (uint32_t)t.tv_nsec ? -1 : ns > (uint32_t)t.tv_nsec;
}

int fs_attr_edit_apply(fs_inode_t *in, const fs_attr_edit_t *e)
{
    if (e->set & FS_SET_MODE) {
        in->mode = (in->mode & S_IFMT) | (e->mode & 07777);
        /* POSIX: chmod sets the ACL's owner, mask (or group) and other entries. */
        const fs_xattr_t *acl = fs_xattr_find(in, FS_ACL_ACCESS);
        if (acl && fs_acl_check(acl->value, acl->value_len) == 0) {
            uint8_t *v = malloc(acl->value_len);
            if (!v)
                return -ENOMEM;
            memcpy(v, acl->value, acl->value_len);
            fs_acl_chmod(v, acl->value_len, in->mode);
            int rc = fs_xattr_set(in, FS_ACL_ACCESS, v, acl->value_len);
            free(v);
            if (rc < 0)
                return rc;
        }
    }
    if (e->set & FS_SET_UID)
        in->uid = e->uid;
    if (e->set & FS_SET_GID)
        in->gid = e->gid;
    if (e->set & FS_SET_ATIME) {
        in->atime_s = e->atime.tv_sec;
        in->atime_ns = (uint32_t)e->atime.tv_nsec;
    }
    if (e->set & FS_SET_MTIME) {
        in->mtime_s = e->mtime.tv_sec;
        in->mtime_ns = (uint32_t)e->mtime.tv_nsec;
    }
    if (e->set & FS_SET_CTIME) {
        in->ctime_s = e->ctime.tv_sec;
        in->ctime_ns = (uint32_t)e->ctime.tv_nsec;
    }
    return 0;
}

static bool defer_ok(const fs_node_t *n, const fs_attr_edit_t *e)
{
    return n->have && S_ISREG(n->in.mode) && (n->meta_dirty || n->just_created) && n->open > 0 &&
           !((e->set & FS_SET_MODE) && fs_xattr_find(&n->in, FS_ACL_ACCESS));
}

bool fs_node_defer_attrs(fs_node_t *n, const fs_attr_edit_t *e)
{
    /* Most setattrs cannot be deferred: they need not wait for the lock to learn it. */
    if (!defer_ok(n, e))
        return false;
    fiber_mutex_lock(&n->lock);
    /* Under the lock no flush is under way, so meta_dirty means one is still owed. */
    bool ok = defer_ok(n, e);
    if (ok && !n->meta_dirty) {
        /* Just created, never written: the flush now owed writes the record's own mtime. */
        n->mtime = (struct timespec){(time_t)n->in.mtime_s, (long)n->in.mtime_ns};
        n->meta_dirty = true;
    }
    if (ok) {
        fs_attr_edit_t *o = &n->over;
        if (e->set & FS_SET_MODE)
            o->mode = e->mode & 07777;
        if (e->set & FS_SET_UID)
            o->uid = e->uid;
        if (e->set & FS_SET_GID)
            o->gid = e->gid;
        if (e->set & FS_SET_ATIME)
            o->atime = e->atime;
        if (e->set & FS_SET_MTIME)
            o->mtime = e->mtime;
        if (e->set & FS_SET_CTIME)
            o->ctime = e->ctime;
        o->set |= e->set;
        n->over_seq++;
    }
    fiber_mutex_unlock(&n->lock);
    return ok;
}

/*
 * An update wrote the deferred changes, then its own (in that order, as
 * they were made): they are no longer owed, if every attempt carried the
 * same ones (a change deferred meanwhile stays, applied by the next
 * update; its values are absolute). The write-back's record update
 * writes n->mtime later: an explicit mtime that is still the record's
 * moves there, so that it is not replaced by an older write's time.
 */
static void over_written(fs_node_t *n, uint64_t seq, bool same)
{
    fs_attr_edit_t *o = &n->over;
    if (!o->set || !same || n->over_seq != seq)
        return;
    if ((o->set & FS_SET_MTIME) && fs_ts_cmp(n->in.mtime_s, n->in.mtime_ns, o->mtime) == 0)
        n->mtime = o->mtime;
    o->set = 0;
}

int fs_node_update(fs_t *fs, fs_node_t *n, fs_mutate_fn mutate, void *arg)
{
    uint64_t tok = fs_token_new(fs);
    bool fresh = false;
    int unknown = 0;
    uint64_t over_seq = n->over_seq;
    bool over_same = true;
    for (int attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
        int rc = fs_node_load(fs, n, fresh);
        if (rc < 0)
            return unknown && rc == -ENOENT ? -EIO : rc;
        if (fresh && fs_stamps_has(&n->stamps, tok)) {
            over_written(n, over_seq, over_same);
            return 0; /* an attempt whose answer was lost did land */
        }
        fs_inode_t copy;
        if (fs_inode_copy(&copy, &n->in) < 0)
            return -ENOMEM;
        /* Deferred attribute changes were made before this one: applied first. */
        rc = n->over.set ? fs_attr_edit_apply(&copy, &n->over) : 0;
        over_same = over_same && n->over_seq == over_seq;
        if (rc == 0)
            rc = mutate(&copy, arg);
        if (rc != 0) {
            fs_inode_free(&copy);
            return rc > 0 ? 0 : rc;
        }
        fs_stamps_t st = n->stamps;
        fs_stamps_push(&st, tok);
        kv_version_t ver;
        rc = inode_put(fs, n->ino, &copy, &st, KVC_PUT_IF_VERSION, n->ver, &ver);
        if (rc == 0) {
            node_set(fs, n, &copy, ver, &st);
            over_written(n, over_seq, over_same);
            return 0;
        }
        fs_inode_free(&copy);
        if (fs_outcome_unknown(rc) && ++unknown > UNKNOWN_ATTEMPTS)
            return -EIO;
        if (rc != -ESTALE && !fs_outcome_unknown(rc))
            return fs_store_errno(rc);
        fresh = true;
    }
    log_warn("fs", "inode %llx: gave up after %d conflicting updates", (unsigned long long)n->ino,
             CAS_ATTEMPTS);
    return -EIO;
}

int fs_node_create(fs_t *fs, fs_node_t *n, const fs_inode_t *in)
{
    fs_stamps_t st = {0};
    fs_stamps_push(&st, fs_token_new(fs));
    for (int attempt = 0; attempt <= UNKNOWN_ATTEMPTS; attempt++) {
        /*
         * The inode number is this mount's alone (fs_ino_alloc claims
         * ranges by compare-and-set), so the first attempt needs no
         * condition, and its authority no quorum read to check one: one
         * replica round trip instead of two. A retry after an unknown
         * outcome must not overwrite what another mount may have changed
         * since the name appeared: put-if-absent, and a record that is
         * there and ours means the first attempt landed.
         */
        kvc_cond_t cond = attempt == 0 ? KVC_PUT_ALWAYS : KVC_PUT_IF_ABSENT;
        kv_version_t ver;
        int rc = inode_put(fs, n->ino, in, &st, cond, (kv_version_t){0, 0}, &ver);
        if (rc == 0) {
            fs_inode_t copy;
            if (fs_inode_copy(&copy, in) < 0)
                return -ENOMEM;
            node_set(fs, n, &copy, ver, &st);
            return 0;
        }
        if (rc != -EEXIST && !fs_outcome_unknown(rc))
            return fs_store_errno(rc);
        /*
         * The inode number is this mount's alone, so a record under it that
         * carries our token is ours: an attempt whose answer was lost.
         */
        int lrc = fs_node_load(fs, n, true);
        if (lrc == 0)
            return fs_stamps_has(&n->stamps, st.tok[0]) ? 0 : -EIO;
        if (lrc != -ENOENT || rc == -EEXIST)
            return -EIO;
    }
    return -EIO;
}

/* An unconditional delete: repeating one whose answer was lost is harmless. 0 if absent. */
static int del_key(fs_t *fs, const char *key)
{
    int rc = 0;
    for (int attempt = 0; attempt <= UNKNOWN_ATTEMPTS; attempt++) {
        rc = fs_del(fs->kvc, key, KVC_PUT_ALWAYS, (kv_version_t){0, 0});
        if (!fs_outcome_unknown(rc))
            break;
    }
    return rc == -ENOENT ? 0 : fs_store_errno(rc);
}

int fs_chunks_delete(fs_t *fs, uint64_t ino, const fs_extents_t *chunks, uint64_t first)
{
    enum { BATCH = 32 };
    int first_err = 0;
    uint32_t k = 0;
    uint64_t next = first;
    while (chunks) {
        fs_op_t ops[BATCH];
        unsigned n = 0;
        /* The next BATCH listed chunks at or after `next`, across extents. */
        while (n < BATCH && k < chunks->count) {
            if (next < chunks->v[k].start)
                next = chunks->v[k].start;
            if (next >= chunks->v[k].end) {
                k++;
                continue;
            }
            char key[FS_KEY_MAX];
            fs_key_chunk(key, fs->vol, ino, next++);
            fs_op_del(fs->kvc, &ops[n++], key, KVC_PUT_ALWAYS, (kv_version_t){0, 0});
        }
        if (n == 0)
            break;
        for (unsigned i = 0; i < n; i++) {
            int rc = fs_op_wait(&ops[i]);
            if (rc < 0 && rc != -ENOENT && !first_err)
                first_err = fs_store_errno(rc);
        }
    }
    return first_err;
}

int fs_node_destroy(fs_t *fs, uint64_t ino, const fs_extents_t *chunks, bool record)
{
    int first_err = fs_chunks_delete(fs, ino, chunks, 0);
    if (first_err)
        return first_err; /* keep the record so the chunks stay findable */
    if (!record)
        return 0;
    char key[FS_KEY_MAX];
    fs_key_inode(key, fs->vol, ino);
    return del_key(fs, key);
}

static void u64_le(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t le_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Claim the next range of inode numbers for this mount (compare-and-set on v/V/next). */
static int ino_claim(fs_t *fs)
{
    char key[FS_KEY_MAX];
    fs_key_next(key, fs->vol);
    int unknown = 0;
    for (int attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
        uint8_t *value = NULL;
        size_t len = 0;
        kv_version_t ver = {0, 0};
        int rc = fs_get(fs->kvc, key, &value, &len, &ver);
        uint64_t start;
        if (rc == -ENOENT) {
            start = INO_FIRST;
        } else if (rc < 0) {
            return fs_store_errno(rc);
        } else if (len != 8) {
            free(value);
            log_warn("fs", "%s: bad inode counter", key);
            return -EIO;
        } else {
            start = le_u64(value);
            free(value);
        }
        uint8_t next[8];
        u64_le(next, start + INO_RANGE);
        rc = fs_put(fs->kvc, key, next, sizeof(next),
                    rc == -ENOENT ? KVC_PUT_IF_ABSENT : KVC_PUT_IF_VERSION, ver, NULL);
        if (rc == 0) {
            fs->ino_next = start;
            fs->ino_end = start + INO_RANGE;
            return 0;
        }
        /*
         * A lost answer may have claimed the range for us; claiming the next
         * one is harmless (ranges are never reused, a few numbers go unused).
         */
        if (fs_outcome_unknown(rc) && ++unknown > UNKNOWN_ATTEMPTS)
            return -EIO;
        if (rc != -ESTALE && rc != -EEXIST && !fs_outcome_unknown(rc))
            return fs_store_errno(rc);
    }
    return -EIO;
}

int fs_ino_alloc(fs_t *fs, uint64_t *ino)
{
    fiber_mutex_lock(&fs->ino_lock);
    int rc = 0;
    if (fs->ino_next >= fs->ino_end)
        rc = ino_claim(fs);
    if (rc == 0)
        *ino = fs->ino_next++;
    fiber_mutex_unlock(&fs->ino_lock);
    return rc;
}

uint32_t fs_node_mode(const fs_node_t *n)
{
    return (n->over.set & FS_SET_MODE) ? (n->in.mode & S_IFMT) | n->over.mode : n->in.mode;
}

void fs_node_to_stat(const fs_t *fs, const fs_node_t *n, struct stat *st)
{
    const fs_inode_t *in = &n->in;
    memset(st, 0, sizeof(*st));
    st->st_ino = n->ino;
    st->st_mode = in->mode;
    st->st_nlink = in->nlink;
    st->st_uid = in->uid;
    st->st_gid = in->gid;
    st->st_rdev = in->rdev;
    st->st_size = (off_t)(S_ISREG(in->mode) ? n->size : in->size);
    st->st_blksize = (blksize_t)fs->chunk_size;
    /*
     * Allocated: the inline bytes, or the indexed chunks within the size
     * (holes take nothing). The index may list a chunk that is not stored
     * (a write cut short, a sequential writer's reservation), so this can
     * run a little high, never low for flushed data.
     */
    uint64_t used = st->st_size;
    if (S_ISREG(in->mode)) {
        uint64_t listed = fs_extents_total(&in->ext, fs_chunk_count(n->size, fs->chunk_size));
        if (in->flags & FS_INODE_INLINE)
            used =
                n->meta_dirty ? (uint64_t)st->st_size : in->data_len; /* unflushed writes count */
        else if (listed < UINT64_MAX / fs->chunk_size) /* else the product would wrap */
            used = listed * fs->chunk_size;
        if (used > (uint64_t)st->st_size)
            used = (uint64_t)st->st_size;
    }
    st->st_blocks = (blkcnt_t)((used + 511) / 512);
    st->st_atim.tv_sec = in->atime_s;
    st->st_atim.tv_nsec = in->atime_ns;
    st->st_mtim.tv_sec = in->mtime_s;
    st->st_mtim.tv_nsec = in->mtime_ns;
    st->st_ctim.tv_sec = in->ctime_s;
    st->st_ctim.tv_nsec = in->ctime_ns;
    if (S_ISREG(in->mode) && n->meta_dirty) {
        st->st_mtim = n->mtime;
        if (fs_ts_cmp(in->ctime_s, in->ctime_ns, n->mtime) < 0)
            st->st_ctim = n->mtime; /* as the flush will write it (mutate_written) */
    }
    /* Deferred changes are newer than both (a write since clears their times). */
    const fs_attr_edit_t *e = &n->over;
    st->st_mode = fs_node_mode(n);
    if (e->set & FS_SET_UID)
        st->st_uid = e->uid;
    if (e->set & FS_SET_GID)
        st->st_gid = e->gid;
    if (e->set & FS_SET_ATIME)
        st->st_atim = e->atime;
    if (e->set & FS_SET_MTIME)
        st->st_mtim = e->mtime;
    if (e->set & FS_SET_CTIME)
        st->st_ctim = e->ctime;
}

/* ---- directory buckets ---- */

/* A bucket value: its stamps' envelope, then the bucket (malloc'd; NULL on ENOMEM). */
static uint8_t *bucket_encode(const fs_bucket_t *b, const fs_stamps_t *st, size_t room, size_t *len)
{
    size_t head = fs_stamps_encoded_size(st);
    size_t need = head + fs_bucket_encoded_size(b);
    uint8_t *buf = malloc(room + need);
    if (!buf)
        return NULL;
    fs_stamps_encode(st, buf + room, head);
    *len = room + head + fs_bucket_encode(b, buf + room + head, need - head);
    return buf;
}

static int bucket_decode(const uint8_t *buf, size_t len, unsigned depth, uint64_t prefix,
                         fs_bucket_t *b, fs_stamps_t *st)
{
    size_t body;
    int rc = fs_stamps_decode(buf, len, st, &body);
    return rc < 0 ? rc : fs_bucket_decode(buf + body, len - body, depth, prefix, b);
}

static void bucket_cache_put(fs_t *fs, const char *key, const fs_bucket_t *b, const fs_stamps_t *st,
                             kv_version_t ver)
{
    size_t len;
    uint8_t *buf = bucket_encode(b, st, 8, &len);
    if (!buf)
        return;
    u64_le(buf, fs_now_ms(fs));
    kv_cache_put(fs->buckets, key, strlen(key), ver, (uint8_t)b->state, buf, len);
    free(buf);
}

/*
 * The cached value of bucket key of dir, if it may answer: always for a
 * SPLIT marker (they never change), for others unless fresh is set or it
 * is older than ttl_ms or than the directory's last lock coherence point.
 * hit's value starts with the time it was cached (8 bytes).
 */
static bool bucket_cached(fs_t *fs, uint64_t dir, const char *key, bool fresh, kv_cache_hit_t *hit)
{
    if (kv_cache_get(fs->buckets, key, strlen(key), hit) < 0 || hit->value_len < 8)
        return false;
    if (hit->flags == FS_BUCKET_SPLIT)
        return true;
    uint64_t cached = le_u64(hit->value);
    if (fresh || (fs->names && cached <= fs_names_checked_at(fs->names, dir)))
        return false;
    return fs_now_ms(fs) - cached < fs->ttl_ms;
}

/* Bucket key (depth, prefix) from the store, then cached. */
static int bucket_fetch(fs_t *fs, const char *key, unsigned depth, uint64_t prefix, fs_bucket_t *b,
                        kv_version_t *ver, fs_stamps_t *st)
{
    uint8_t *value;
    size_t len;
    int rc = fs_get(fs->kvc, key, &value, &len, ver);
    if (rc < 0) {
        if (rc == -ENOENT)
            kv_cache_remove(fs->buckets, key, strlen(key));
        return fs_store_errno(rc);
    }
    rc = bucket_decode(value, len, depth, prefix, b, st);
    free(value);
    if (rc < 0) {
        log_warn("fs", "%s: undecodable directory bucket", key);
        return -EIO;
    }
    bucket_cache_put(fs, key, b, st, *ver);
    return 0;
}

/*
 * Bucket (depth, prefix) of dir: from the cache if it may answer
 * (bucket_cached), else from the store.
 */
static int bucket_get(fs_t *fs, uint64_t dir, unsigned depth, uint64_t prefix, bool fresh,
                      fs_bucket_t *b, kv_version_t *ver, fs_stamps_t *st)
{
    fs_stamps_t ignored;
    if (!st)
        st = &ignored;
    char key[FS_KEY_MAX];
    fs_key_bucket(key, fs->vol, dir, depth, prefix);
    kv_cache_hit_t hit;
    if (bucket_cached(fs, dir, key, fresh, &hit) &&
        bucket_decode(hit.value + 8, hit.value_len - 8, depth, prefix, b, st) == 0) {
        *ver = hit.version;
        return 0;
    }
    return bucket_fetch(fs, key, depth, prefix, b, ver, st);
}

static int bucket_put(fs_t *fs, uint64_t dir, const fs_bucket_t *b, const fs_stamps_t *st,
                      kvc_cond_t cond, kv_version_t if_version, kv_version_t *ver)
{
    size_t len;
    uint8_t *buf = bucket_encode(b, st, 0, &len);
    if (!buf)
        return -ENOMEM;
    char key[FS_KEY_MAX];
    fs_key_bucket(key, fs->vol, dir, b->depth, b->prefix);
    kv_version_t got;
    int rc = fs_put(fs->kvc, key, buf, len, cond, if_version, &got);
    free(buf);
    if (rc == 0) {
        bucket_cache_put(fs, key, b, st, got);
        if (ver)
            *ver = got;
    } else if (rc == -ESTALE) {
        kv_cache_remove(fs->buckets, key, strlen(key));
    }
    return rc;
}

static int leaf_missing(uint64_t dir, unsigned depth, uint64_t prefix)
{
    log_warn("fs", "directory %llx: bucket %u/%llx missing under a split parent",
             (unsigned long long)dir, depth, (unsigned long long)prefix);
    return -EIO;
}

/* The leaf bucket whose range holds hash. */
static int leaf_find(fs_t *fs, uint64_t dir, uint64_t hash, bool fresh, fs_bucket_t *b,
                     kv_version_t *ver, fs_stamps_t *st)
{
    unsigned depth = 0;
    uint64_t prefix = 0;
    for (;;) {
        int rc = bucket_get(fs, dir, depth, prefix, fresh, b, ver, st);
        if (rc == -ENOENT && depth > 0)
            return leaf_missing(dir, depth, prefix);
        if (rc < 0)
            return rc;
        if (b->state != FS_BUCKET_SPLIT)
            return 0;
        fs_bucket_free(b);
        if (++depth > FS_HASH_BITS)
            return -EIO;
        prefix = fs_hash_prefix(hash, depth);
    }
}

/*
 * Finish the split of a frozen bucket: write its children (put-if-absent:
 * whoever helps writes the same children, and a child that exists already
 * may have been changed since), then turn it into an empty SPLIT marker.
 * The children inherit the frozen bucket's stamps: a change whose answer
 * was lost is still found in whichever child now holds its name.
 */
static int split_finish(fs_t *fs, uint64_t dir, const fs_bucket_t *b, const fs_stamps_t *st,
                        kv_version_t ver)
{
    static const fs_stamps_t none = {0};
    fs_bucket_t kids[2];
    int rc = fs_bucket_split(b, &kids[0], &kids[1]);
    if (rc < 0)
        return rc;
    for (int i = 0; i < 2 && rc == 0; i++) {
        rc = bucket_put(fs, dir, &kids[i], st, KVC_PUT_IF_ABSENT, (kv_version_t){0, 0}, NULL);
        if (rc == -EEXIST)
            rc = 0;
    }
    fs_bucket_free(&kids[0]);
    fs_bucket_free(&kids[1]);
    if (rc < 0)
        return fs_store_errno(rc);
    fs_bucket_t marker;
    fs_bucket_init(&marker, b->depth, b->prefix);
    marker.state = FS_BUCKET_SPLIT;
    rc = bucket_put(fs, dir, &marker, &none, KVC_PUT_IF_VERSION, ver, NULL);
    fs_bucket_free(&marker);
    /* A conflict means another mount finished this split first. */
    return rc == -ESTALE ? 0 : fs_store_errno(rc);
}

static int bucket_clone(fs_bucket_t *dst, const fs_bucket_t *src)
{
    *dst = *src;
    dst->ents = NULL;
    dst->cap = src->count;
    if (src->count == 0)
        return 0;
    dst->ents = malloc(src->count * sizeof(fs_dirent_t));
    if (!dst->ents)
        return -ENOMEM;
    memcpy(dst->ents, src->ents, src->count * sizeof(fs_dirent_t));
    return 0;
}

int fs_dir_create(fs_t *fs, uint64_t dir)
{
    fs_bucket_t b;
    fs_bucket_init(&b, 0, 0);
    fs_stamps_t none = {0};
    /*
     * The directory's inode number is this mount's alone and nothing can
     * find the directory before this returns: the first put needs no
     * condition (and its authority no quorum read). A lost answer is
     * settled by a put-if-absent of the same empty bucket.
     */
    int rc = bucket_put(fs, dir, &b, &none, KVC_PUT_ALWAYS, (kv_version_t){0, 0}, NULL);
    if (fs_outcome_unknown(rc))
        rc = bucket_put(fs, dir, &b, &none, KVC_PUT_IF_ABSENT, (kv_version_t){0, 0}, NULL);
    fs_bucket_free(&b);
    return rc == -EEXIST ? 0 : fs_store_errno(rc);
}

/*
 * name in dir as leaf_find's leaf has it: 0 (ent filled), -ENOENT or
 * -errno. A leaf the cache may answer for is searched in its encoded
 * bytes: decoding it would hash and copy each of its hundreds of names
 * for one lookup.
 */
static int leaf_lookup(fs_t *fs, uint64_t dir, const char *name, size_t len, bool fresh,
                       fs_dirent_t *ent)
{
    uint64_t hash = fs_name_hash(name, len);
    unsigned depth = 0;
    uint64_t prefix = 0;
    for (;;) {
        char key[FS_KEY_MAX];
        fs_key_bucket(key, fs->vol, dir, depth, prefix);
        kv_cache_hit_t hit;
        fs_stamps_t st;
        bool split = false;
        if (bucket_cached(fs, dir, key, fresh, &hit)) {
            size_t body;
            int rc;
            split = hit.flags == FS_BUCKET_SPLIT;
            if (!split && fs_stamps_decode(hit.value + 8, hit.value_len - 8, &st, &body) == 0 &&
                (rc = fs_bucket_scan(hit.value + 8 + body, hit.value_len - 8 - body, name, len,
                                     ent)) >= 0)
                return rc == 1 ? 0 : -ENOENT;
        }
        if (!split) {
            fs_bucket_t b;
            kv_version_t ver;
            int rc = bucket_fetch(fs, key, depth, prefix, &b, &ver, &st);
            if (rc == -ENOENT && depth > 0)
                return leaf_missing(dir, depth, prefix);
            if (rc < 0)
                return rc;
            split = b.state == FS_BUCKET_SPLIT;
            ssize_t i = split ? -1 : fs_bucket_find(&b, name, len);
            if (i >= 0)
                *ent = b.ents[i];
            fs_bucket_free(&b);
            if (!split)
                return i >= 0 ? 0 : -ENOENT;
        }
        if (++depth > FS_HASH_BITS)
            return -EIO;
        prefix = fs_hash_prefix(hash, depth);
    }
}

int fs_dir_lookup(fs_t *fs, uint64_t dir, const char *name, size_t len, bool fresh,
                  fs_dirent_t *ent)
{
    for (;;) {
        int rc = leaf_lookup(fs, dir, name, len, fresh, ent);
        if (rc != -ENOENT)
            return rc;
        /*
         * A miss is only believed from the store: a name another mount just
         * created must be found by the next open (close-to-open), however
         * recently this mount cached the bucket.
         */
        if (fresh)
            return -ENOENT;
        fresh = true;
    }
}

int fs_dir_lookup_cached(fs_t *fs, uint64_t dir, const char *name, size_t len, fs_dirent_t *ent)
{
    return leaf_lookup(fs, dir, name, len, false, ent);
}

int fs_dir_edit(fs_t *fs, uint64_t dir, const char *name, size_t len, fs_edit_fn edit, void *arg)
{
    uint64_t hash = fs_name_hash(name, len);
    uint64_t tok = fs_token_new(fs);
    bool fresh = false, check = false;
    int unknown = 0;
    for (int attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
        fs_bucket_t b, orig;
        fs_stamps_t st;
        kv_version_t ver;
        int rc = leaf_find(fs, dir, hash, fresh, &b, &ver, &st);
        if (rc < 0)
            return unknown && rc == -ENOENT ? -EIO : rc;
        if (check && fs_stamps_has(&st, tok)) {
            fs_bucket_free(&b);
            return 0; /* an attempt whose answer was lost did land */
        }
        if (b.state == FS_BUCKET_DEAD) {
            fs_bucket_free(&b);
            return -ENOENT; /* the directory is being removed */
        }
        if (b.state == FS_BUCKET_SPLITTING) {
            rc = split_finish(fs, dir, &b, &st, ver);
            fs_bucket_free(&b);
            if (rc < 0)
                return rc;
            fresh = true;
            continue;
        }
        if (bucket_clone(&orig, &b) < 0) {
            fs_bucket_free(&b);
            return -ENOMEM;
        }
        rc = edit(&b, arg);
        if (rc != 0) {
            fs_bucket_free(&b);
            fs_bucket_free(&orig);
            return rc > 0 ? 0 : rc;
        }
        if (fs_bucket_full(&b) && b.depth < FS_HASH_BITS) {
            /*
             * Freeze the bucket as it is stored, split it, then apply the
             * edit again. Freezing changes no name (the stamps stay), and a
             * lost answer to it is settled by the state read next time.
             */
            fs_bucket_free(&b);
            orig.state = FS_BUCKET_SPLITTING;
            kv_version_t frozen;
            rc = bucket_put(fs, dir, &orig, &st, KVC_PUT_IF_VERSION, ver, &frozen);
            if (rc == 0)
                rc = split_finish(fs, dir, &orig, &st, frozen);
            else if (rc == -ESTALE || (fs_outcome_unknown(rc) && ++unknown <= UNKNOWN_ATTEMPTS))
                rc = 0;
            else
                rc = fs_store_errno(rc);
            fs_bucket_free(&orig);
            if (rc < 0)
                return rc;
            fresh = true;
            continue;
        }
        fs_bucket_free(&orig);
        fs_stamps_push(&st, tok);
        rc = bucket_put(fs, dir, &b, &st, KVC_PUT_IF_VERSION, ver, NULL);
        unsigned depth = b.depth;
        uint64_t prefix = b.prefix;
        fs_bucket_free(&b);
        if (rc == 0)
            return 0;
        if (fs_outcome_unknown(rc)) {
            /* Drop the cached leaf: the read-back must come from the store. */
            char key[FS_KEY_MAX];
            fs_key_bucket(key, fs->vol, dir, depth, prefix);
            kv_cache_remove(fs->buckets, key, strlen(key));
            if (++unknown > UNKNOWN_ATTEMPTS)
                return -EIO;
        } else if (rc != -ESTALE) {
            return fs_store_errno(rc);
        }
        fresh = true;
        check = true;
    }
    log_warn("fs", "directory %llx: gave up after %d conflicting updates", (unsigned long long)dir,
             CAS_ATTEMPTS);
    return -EIO;
}

/*
 * Visit every bucket of dir depth first (fresh from the store). visit
 * returns 0 to go on or non-zero to stop with that value.
 */
static int dir_walk(fs_t *fs, uint64_t dir, int (*visit)(fs_t *, uint64_t, fs_bucket_t *, void *),
                    void *arg)
{
    typedef struct {
        unsigned depth;
        uint64_t prefix;
    } at_t;
    at_t stack[FS_HASH_BITS + 2];
    size_t top = 0;
    stack[top++] = (at_t){0, 0};
    while (top > 0) {
        at_t at = stack[--top];
        fs_bucket_t b;
        kv_version_t ver;
        int rc = bucket_get(fs, dir, at.depth, at.prefix, true, &b, &ver, NULL);
        if (rc < 0)
            return rc == -ENOENT && at.depth == 0 ? -ENOENT : (rc == -ENOENT ? -EIO : rc);
        rc = visit(fs, dir, &b, arg);
        bool split = b.state == FS_BUCKET_SPLIT;
        fs_bucket_free(&b);
        if (rc)
            return rc;
        if (split && at.depth < FS_HASH_BITS) {
            stack[top++] = (at_t){at.depth + 1, at.prefix * 2 + 1};
            stack[top++] = (at_t){at.depth + 1, at.prefix * 2};
        }
    }
    return 0;
}

/*
 * Mark every empty leaf bucket of dir DEAD (1), or stop at the first leaf
 * holding names (0); with dead false, mark them normal again. A DEAD
 * bucket refuses new names, so once every leaf is DEAD no mount can add a
 * name to the directory any more. It starts from the buckets this mount
 * has cached: after an rm -r emptied the directory they are current, and
 * the compare-and-set proves it, one round trip less than reading them
 * first. Anything concluded without a write rests on a fresh read.
 */
static int claim_walk(fs_t *fs, uint64_t dir, unsigned depth, uint64_t prefix, bool dead)
{
    int unknown = 0;
    bool fresh = false;
    for (int attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
        fs_bucket_t b;
        kv_version_t ver;
        fs_stamps_t st;
        int rc = bucket_get(fs, dir, depth, prefix, fresh, &b, &ver, &st);
        if (rc < 0)
            return rc == -ENOENT && depth > 0 ? -EIO : rc;
        fs_bucket_state_t state = b.state;
        size_t count = b.count;
        fs_bucket_free(&b);
        if (state == FS_BUCKET_SPLIT) {
            if (depth >= FS_HASH_BITS)
                return -EIO;
            rc = claim_walk(fs, dir, depth + 1, prefix * 2, dead);
            if (rc == 1)
                rc = claim_walk(fs, dir, depth + 1, prefix * 2 + 1, dead);
            return rc;
        }
        bool busy = dead && (state == FS_BUCKET_SPLITTING || count > 0);
        if ((busy || dead == (state == FS_BUCKET_DEAD)) && !fresh) {
            fresh = true;
            continue;
        }
        if (busy)
            return 0;
        if (dead == (state == FS_BUCKET_DEAD))
            return 1;
        fs_bucket_t nb;
        fs_bucket_init(&nb, depth, prefix);
        nb.state = dead ? FS_BUCKET_DEAD : FS_BUCKET_NORMAL;
        /* The stamps stay: a removal whose answer was lost must still be found. */
        rc = bucket_put(fs, dir, &nb, &st, KVC_PUT_IF_VERSION, ver, NULL);
        fs_bucket_free(&nb);
        if (rc == 0)
            return 1;
        fresh = true;
        /* A lost answer is settled by reading the state again: it is what we wrote, or not. */
        if (fs_outcome_unknown(rc) && ++unknown > UNKNOWN_ATTEMPTS)
            return -EIO;
        if (rc != -ESTALE && !fs_outcome_unknown(rc))
            return fs_store_errno(rc);
    }
    return -EIO;
}

int fs_dir_claim_empty(fs_t *fs, uint64_t dir)
{
    int rc = claim_walk(fs, dir, 0, 0, true);
    if (rc == 1)
        return 0;
    fs_dir_unclaim(fs, dir);
    return rc == 0 ? -ENOTEMPTY : rc;
}

void fs_dir_unclaim(fs_t *fs, uint64_t dir)
{
    if (claim_walk(fs, dir, 0, 0, false) < 0)
        log_warn("fs", "directory %llx: could not take back its removal marks",
                 (unsigned long long)dir);
}

static int visit_delete(fs_t *fs, uint64_t dir, fs_bucket_t *b, void *arg)
{
    (void)arg;
    char key[FS_KEY_MAX];
    fs_key_bucket(key, fs->vol, dir, b->depth, b->prefix);
    kv_cache_remove(fs->buckets, key, strlen(key));
    return del_key(fs, key);
}

int fs_dir_destroy(fs_t *fs, uint64_t dir)
{
    int rc = dir_walk(fs, dir, visit_delete, NULL);
    return rc == -ENOENT ? 0 : rc;
}

int fs_dir_read(fs_t *fs, uint64_t dir, uint64_t *from, bool fresh, fs_dirent_t **ents,
                size_t *count)
{
    fs_bucket_t b;
    kv_version_t ver;
    int rc = leaf_find(fs, dir, *from, fresh, &b, &ver, NULL);
    if (rc < 0)
        return rc;
    size_t first = fs_bucket_lower_bound(&b, *from);
    *count = b.count - first;
    *ents = NULL;
    if (*count > 0) {
        *ents = malloc(*count * sizeof(fs_dirent_t));
        if (!*ents) {
            fs_bucket_free(&b);
            return -ENOMEM;
        }
        memcpy(*ents, b.ents + first, *count * sizeof(fs_dirent_t));
    }
    uint64_t end = UINT64_MAX;
    if (b.depth > 0 && b.prefix + 1 < (1ULL << b.depth))
        end = fs_bucket_first_hash(b.depth, b.prefix + 1);
    *from = end;
    fs_bucket_free(&b);
    return 0;
}
