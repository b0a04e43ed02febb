/*
 * fs_data.c — file data: chunks in the store, a clean-chunk LRU cache,
 * dirty chunks written back in the background, read-ahead.
 *
 * A dirty chunk holds the whole chunk as this mount sees it (old content
 * read once, then overwritten in place), and the span of the bytes
 * written. Writing it back sends only that span, as a patch (kvc_patch)
 * the key's authority applies to its copy and passes on as such, when
 * the span lies within data the stored chunk already had; otherwise (new
 * data, appends) one put of the whole value. When the old content is not
 * at hand (not cached: reading it would cost a store round trip inside
 * write()), a "partial" chunk holds just one contiguous span of writes
 * over existing data; a read outside the span or a write apart from it
 * first makes the chunk whole (one read). The sequence number tells a put
 * that finished whether the chunk changed meanwhile. Chunks are written
 * before the inode record that makes their bytes part of the file, so a
 * reader never sees a size whose data is not there yet.
 *
 * The record's chunk index is updated *before* a chunk it does not list
 * yet is written (once per flush batch, and once per reservation of
 * chunks ahead for a sequential writer), so whatever a crash cuts short,
 * the index lists every stored chunk and removal finds them all. It may
 * list chunks that were never written; that costs a delete of an absent
 * key, nothing more. Index updates are compare-and-set unions, so mounts
 * writing one file never drop each other's chunks from it.
 */
#include "fs_i.h"
#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct fs_dchunk {
    fs_node_t *node;
    uint64_t index;
    uint64_t id;   /* unique per dirty chunk, to know it after parking */
    uint8_t *data; /* chunk_size bytes */
    uint32_t len;  /* bytes of file data in the chunk */
    uint64_t seq;  /* bumped by every write */
    bool in_flight;
    /*
     * data[lo, hi) spans every byte written; a partial chunk knows only
     * those. base_valid: the file's bytes in the stored chunk when this
     * one became dirty (0: nothing stored, or all of it rewritten).
     */
    bool partial;
    uint32_t lo, hi, base_valid;
    fs_dchunk_t *next, *prev;
};

/* One read of a chunk from the store, shared by every fiber that needs it. */
typedef struct {
    fs_t *fs;
    uint64_t ino, index;
    uint64_t gen;
    int rc;
    uint8_t *data;
    size_t len;
    bool done;
    unsigned refs;
    size_t nwait, capwait;
    fiber_t **waiters;
} fetch_t;

typedef struct {
    uint64_t ino, index, gen;
} cache_key_t;

static cache_key_t ckey(const fs_node_t *n, uint64_t index)
{
    cache_key_t k;
    memset(&k, 0, sizeof(k));
    k.ino = n->ino;
    k.index = index;
    k.gen = n->gen;
    return k;
}

/* The data changed now: newer than any time set and deferred before. */
static void node_touch(fs_node_t *n, struct timespec now)
{
    n->mtime = now;
    n->over.set &= ~(unsigned)(FS_SET_MTIME | FS_SET_CTIME);
}

bool fs_data_dirty(const fs_node_t *n)
{
    return n->dirty_head != NULL || n->meta_dirty || n->meta_flushing;
}

void fs_data_invalidate(fs_t *fs, fs_node_t *n)
{
    /* Entries under the old generation are unreachable and age out of the LRU. */
    n->gen = ++fs->gen_next;
    n->ra_until = 0;
}

/* ---- reading chunks ---- */

static void fetch_unref(fetch_t *f)
{
    if (--f->refs > 0)
        return;
    free(f->data);
    free(f->waiters);
    free(f);
}

static void fetch_fiber(void *arg)
{
    fetch_t *f = arg;
    fs_t *fs = f->fs;
    char key[FS_KEY_MAX];
    fs_key_chunk(key, fs->vol, f->ino, f->index);
    fs_op_t op;
    fs_op_get(fs->kvc, &op, key);
    f->rc = fs_op_wait(&op);
    if (f->rc == 0) {
        f->data = op.value;
        f->len = op.len;
        cache_key_t k = {.ino = f->ino, .index = f->index, .gen = f->gen};
        /*
         * Written meanwhile: what was read may predate the write-back. A
         * fetch nobody waits for (read-ahead) hands its buffer to the cache
         * instead of a copy: no one reads f->data after this.
         */
        if (!fs_map_get(fs->dirty, f->ino, f->index)) {
            if (f->refs == 1 && f->data &&
                kv_cache_put_owned(fs->chunks, &k, sizeof(k), op.version, 0, f->data, f->len) == 0)
                f->data = NULL;
            else
                kv_cache_put(fs->chunks, &k, sizeof(k), op.version, 0, f->data, f->len);
        }
    } else {
        fs_op_clear(&op);
        if (f->rc == -ENOENT) /* a hole */
            f->rc = 0;
        else
            f->rc = fs_store_errno(f->rc);
    }
    f->done = true;
    fs_map_remove(fs->fetching, f->ino, f->index);
    for (size_t i = 0; i < f->nwait; i++)
        fiber_wake(f->waiters[i]);
    fetch_unref(f);
}

/* Start (or join) the read of chunk index; returns a reference, or NULL on ENOMEM. */
static fetch_t *fetch_start(fs_t *fs, fs_node_t *n, uint64_t index)
{
    fetch_t *f = fs_map_get(fs->fetching, n->ino, index);
    if (f && f->gen == n->gen) {
        f->refs++;
        return f;
    }
    f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->fs = fs;
    f->ino = n->ino;
    f->index = index;
    f->gen = n->gen;
    f->refs = 2; /* the fetching fiber's and the caller's */
    f->capwait = 4;
    f->waiters = calloc(f->capwait, sizeof(fiber_t *));
    if (!f->waiters || fs_map_put(fs->fetching, n->ino, index, f) < 0) {
        free(f->waiters);
        free(f);
        return NULL;
    }
    if (fiber_spawn(fetch_fiber, f) < 0) {
        fs_map_remove(fs->fetching, n->ino, index);
        free(f->waiters);
        free(f);
        return NULL;
    }
    return f;
}

static int fetch_wait(fetch_t *f)
{
    while (!f->done) {
        if (f->nwait == f->capwait) {
            fiber_t **w = realloc(f->waiters, 2 * f->capwait * sizeof(*w));
            if (!w)
                return -ENOMEM;
            f->waiters = w;
            f->capwait *= 2;
        }
        f->waiters[f->nwait++] = fiber_self();
        fiber_park();
    }
    return f->rc;
}

/* Copy bytes [from, from+len) of a chunk's stored value into out, zero-filling past its end. */
static void copy_part(uint8_t *out, const uint8_t *value, size_t value_len, uint32_t from,
                      uint32_t len)
{
    size_t have = value_len > from ? value_len - from : 0;
    if (have > len)
        have = len;
    if (have)
        memcpy(out, value + from, have);
    memset(out + have, 0, len - have);
}

/*
 * Make a partial dirty chunk whole: read the stored value (afresh, not a
 * read started before the chunk was written) and fill in the file's bytes
 * outside the written range. The chunk may be written back and freed
 * while this parks; then there is nothing left to do.
 */
static int dchunk_fill(fs_t *fs, fs_node_t *n, fs_dchunk_t *dc)
{
    uint64_t id = dc->id, index = dc->index;
    char key[FS_KEY_MAX];
    fs_key_chunk(key, fs->vol, n->ino, index);
    fs_op_t op;
    fs_op_get(fs->kvc, &op, key);
    int rc = fs_op_wait(&op);
    if (rc < 0 && rc != -ENOENT) {
        fs_op_clear(&op);
        return fs_store_errno(rc);
    }
    dc = fs_map_get(fs->dirty, n->ino, index);
    if (dc && dc->id == id && dc->partial) {
        /* Bytes past base_valid are not the file's (a failed write's): zeros, as data holds. */
        copy_part(dc->data, op.value, op.len, 0, dc->lo);
        if (dc->base_valid > dc->hi)
            copy_part(dc->data + dc->hi, op.value, op.len, dc->hi, dc->base_valid - dc->hi);
        dc->partial = false;
    }
    fs_op_clear(&op);
    return 0;
}

/*
 * Read part of chunk index as this mount sees it (dirty data first, then
 * the cache, then the store). Bytes past valid (the file's data in this
 * chunk) read as zeros whatever the stored value holds.
 */
static int chunk_read(fs_t *fs, fs_node_t *n, uint64_t index, uint32_t from, uint32_t len,
                      uint8_t *out)
{
    uint32_t valid = fs_chunk_valid_len(n->size, index, fs->chunk_size);
    fs_dchunk_t *dc = fs_map_get(fs->dirty, n->ino, index);
    while (dc && dc->partial && (from < dc->lo || from + len > dc->hi)) {
        int rc = dchunk_fill(fs, n, dc);
        if (rc < 0)
            return rc;
        valid = fs_chunk_valid_len(n->size, index, fs->chunk_size);
        dc = fs_map_get(fs->dirty, n->ino, index);
    }
    if (dc) {
        copy_part(out, dc->data, dc->len < valid ? dc->len : valid, from, len);
        return 0;
    }
    if (valid <= from) {
        memset(out, 0, len);
        return 0;
    }
    if ((n->in.flags & FS_INODE_INLINE) && !fs_extents_has(&n->written, index)) {
        /*
         * Everything the file holds is in its record; the rest is a hole.
         * Not so once a flush that moves the file to chunks stored this
         * one (and dropped it from the dirty ones) and has yet to write
         * the record: then the chunk is read below.
         */
        uint32_t have = index == 0 ? n->in.data_len : 0;
        copy_part(out, n->in.data, have < valid ? have : valid, from, len);
        return 0;
    }
    if (!fs_extents_has(&n->in.ext, index)) {
        /*
         * Never stored (the index lists every stored chunk, and this
         * mount lists its own before writing them): a hole, no store
         * read. Another mount's newer chunk shows after the next open,
         * which reads the record afresh (close-to-open).
         */
        memset(out, 0, len);
        return 0;
    }
    cache_key_t k = ckey(n, index);
    kv_cache_hit_t hit;
    if (kv_cache_get(fs->chunks, &k, sizeof(k), &hit) == 0) {
        copy_part(out, hit.value, hit.value_len < valid ? hit.value_len : valid, from, len);
        return 0;
    }
    fetch_t *f = fetch_start(fs, n, index);
    if (!f)
        return -ENOMEM;
    int rc = fetch_wait(f);
    if (rc == 0) {
        /* The file may have shrunk while we waited. */
        valid = fs_chunk_valid_len(n->size, index, fs->chunk_size);
        copy_part(out, f->data, f->len < valid ? f->len : valid, from, len);
    }
    fetch_unref(f);
    return rc;
}

static bool chunk_cached(fs_t *fs, fs_node_t *n, uint64_t index)
{
    /* (An unlisted chunk is a hole: nothing to fetch.) */
    if ((n->in.flags & FS_INODE_INLINE) || !fs_extents_has(&n->in.ext, index) ||
        fs_map_get(fs->dirty, n->ino, index) || fs_map_get(fs->fetching, n->ino, index))
        return true;
    cache_key_t k = ckey(n, index);
    kv_cache_hit_t hit;
    return kv_cache_get(fs->chunks, &k, sizeof(k), &hit) == 0;
}

static void read_ahead(fs_t *fs, fs_node_t *n, uint64_t off, size_t size)
{
    bool sequential = off == n->ra_next;
    n->ra_next = off + size;
    if (!sequential || fs->readahead_chunks == 0)
        return;
    uint64_t last = fs_chunk_count(n->size, fs->chunk_size);
    uint64_t from = (off + size) / fs->chunk_size;
    if (from < n->ra_until)
        from = n->ra_until;
    uint64_t until = (off + size) / fs->chunk_size + 1 + fs->readahead_chunks;
    if (until > last)
        until = last;
    for (uint64_t i = from; i < until; i++) {
        if (chunk_cached(fs, n, i))
            continue;
        fetch_t *f = fetch_start(fs, n, i);
        if (!f)
            break;
        fetch_unref(f);
    }
    if (until > n->ra_until)
        n->ra_until = until;
}

int fs_data_read(fs_t *fs, fs_node_t *n, uint64_t off, size_t size, uint8_t *out, size_t *got)
{
    *got = 0;
    if (off >= n->size)
        return 0;
    if (size > n->size - off)
        size = (size_t)(n->size - off);
    read_ahead(fs, n, off, size);
    /* Start every missing chunk of the range first so they arrive together. */
    for (uint64_t at = off; at < off + size;) {
        fs_span_t sp = fs_chunk_span(at, off + size - at, fs->chunk_size);
        if (!chunk_cached(fs, n, sp.index) &&
            fs_chunk_valid_len(n->size, sp.index, fs->chunk_size) > sp.offset) {
            fetch_t *f = fetch_start(fs, n, sp.index);
            if (f)
                fetch_unref(f);
        }
        at += sp.len;
    }
    for (uint64_t at = off; at < off + size;) {
        fs_span_t sp = fs_chunk_span(at, off + size - at, fs->chunk_size);
        int rc = chunk_read(fs, n, sp.index, sp.offset, sp.len, out + (at - off));
        if (rc < 0)
            return rc;
        at += sp.len;
    }
    *got = size;
    return 0;
}

/* ---- writing back ---- */

static void dchunk_unlink(fs_t *fs, fs_dchunk_t *dc)
{
    fs_node_t *n = dc->node;
    if (dc->prev)
        dc->prev->next = dc->next;
    else
        n->dirty_head = dc->next;
    if (dc->next)
        dc->next->prev = dc->prev;
    fs_map_remove(fs->dirty, n->ino, dc->index);
    fs->dirty_bytes -= fs->chunk_size;
    free(dc->data);
    free(dc);
}

typedef struct {
    fs_t *fs;
    fs_dchunk_t *dc;
} put_job_t;

static void wb_pump(fs_t *fs, fs_node_t *n);

static void put_fiber(void *arg)
{
    put_job_t *job = arg;
    fs_t *fs = job->fs;
    fs_dchunk_t *dc = job->dc; /* stays while in flight: only this fiber frees it then */
    fs_node_t *n = dc->node;
    free(job);
    uint64_t seq = dc->seq;
    char key[FS_KEY_MAX];
    fs_key_chunk(key, fs->vol, n->ino, dc->index);
    fs_op_t op;
    int rc = 0;
    bool sent = false;
    /* A patch when the span is within what the stored chunk had, and smaller than the whole. */
    bool patch = dc->partial ||
                 (dc->base_valid > 0 && dc->hi <= dc->base_valid && dc->hi - dc->lo < dc->len);
    if (patch && !fs->no_patch) {
        fs_op_patch(fs->kvc, &op, key, dc->lo, dc->data + dc->lo, dc->hi - dc->lo);
        rc = fs_op_wait(&op);
        sent = rc != -EPROTONOSUPPORT;
        if (!sent) {
            log_warn("fs", "a node cannot patch values (an older version): writing whole "
                           "chunks from now on");
            fs->no_patch = true;
            rc = 0;
        }
    }
    if (!sent && dc->partial)
        rc = dchunk_fill(fs, n, dc);
    if (!sent && rc == 0) {
        fs_op_put(fs->kvc, &op, key, dc->data, dc->len, KVC_PUT_ALWAYS, (kv_version_t){0, 0});
        rc = fs_op_wait(&op);
    }
    dc->in_flight = false;
    if (rc < 0) {
        if (!n->wb_error)
            n->wb_error = fs_store_errno(rc);
        log_warn("fs", "inode %llx chunk %llu: write-back failed: %s", (unsigned long long)n->ino,
                 (unsigned long long)dc->index, strerror(-rc));
    } else if (fs_extents_add(&n->written, dc->index, dc->index + 1) < 0) {
        /* Harmless: the index listed the chunk before the put. */
    }
    if (rc == 0 && dc->seq == seq) {
        cache_key_t k = ckey(n, dc->index);
        if (dc->partial)
            kv_cache_remove(fs->chunks, &k, sizeof(k)); /* older than the patched value */
        else if (dc->len == fs->chunk_size &&
                 kv_cache_put_owned(fs->chunks, &k, sizeof(k), op.version, 0, dc->data, dc->len) ==
                     0)
            dc->data = NULL; /* the cache has the (whole) buffer; freed with its entry */
        else
            kv_cache_put(fs->chunks, &k, sizeof(k), op.version, 0, dc->data, dc->len);
        dchunk_unlink(fs, dc);
    }
    n->flushing--;
    fs->puts_in_flight--;
    if (rc == 0)
        wb_pump(fs, n);
    /* Every completion: a flush waits for none in flight, a throttled writer for room. */
    if (n->flush_waiter) {
        fiber_t *f = n->flush_waiter;
        n->flush_waiter = NULL;
        fiber_wake(f);
    }
    fs_node_maybe_free(fs, n);
}

static int put_start(fs_t *fs, fs_dchunk_t *dc);

/*
 * A put of n's finished: start the next chunk of n that a sequential
 * writer has finished (written up to its end) and the index lists, while
 * there is room. Without this, a chunk finished while puts_max were in
 * flight waited for the flush at dirty_max, which then started every
 * such chunk at once (hundreds of puts, hundreds of 64 KiB messages
 * queued at a time) while the writer stood still; now write-back runs
 * steadily beside the writer.
 */
static void wb_pump(fs_t *fs, fs_node_t *n)
{
    if ((n->in.flags & FS_INODE_INLINE) || n->wb_hold)
        return;
    for (fs_dchunk_t *dc = n->dirty_head; dc && fs->puts_in_flight < fs->puts_max; dc = dc->next) {
        if (!dc->in_flight && dc->hi == fs->chunk_size && fs_extents_has(&n->in.ext, dc->index) &&
            put_start(fs, dc) < 0)
            break;
    }
}

static int put_start(fs_t *fs, fs_dchunk_t *dc)
{
    put_job_t *job = malloc(sizeof(*job));
    if (!job)
        return -ENOMEM;
    job->fs = fs;
    job->dc = dc;
    dc->in_flight = true;
    dc->node->flushing++;
    fs->puts_in_flight++;
    if (fiber_spawn(put_fiber, job) < 0) {
        dc->in_flight = false;
        dc->node->flushing--;
        fs->puts_in_flight--;
        free(job);
        return -ENOMEM;
    }
    return 0;
}

/* Wait until none of n's chunk puts is in flight. */
static void wait_puts(fs_node_t *n)
{
    while (n->flushing > 0) {
        /* One waiter at a time per node: callers hold n->lock. Woken by every completion. */
        n->flush_waiter = fiber_self();
        fiber_park();
    }
}

/*
 * Over dirty_max: let n's puts in flight bring the dirty data back under
 * it before the writer goes on, and flush only what write-back cannot
 * reach (chunks not finished, other files' data). Returns 0 or -errno.
 */
static int wb_throttle(fs_t *fs, fs_node_t *n)
{
    if (fs->dirty_bytes <= fs->dirty_max)
        return 0;
    /* Writes of one file run in parallel; flush_waiter is the lock holder's. */
    fiber_mutex_lock(&n->lock);
    while (fs->dirty_bytes > fs->dirty_max && n->flushing > 0) {
        n->flush_waiter = fiber_self();
        fiber_park();
    }
    fiber_mutex_unlock(&n->lock);
    if (fs->dirty_bytes > fs->dirty_max)
        return fs_data_flush(fs, n);
    return 0;
}

typedef struct {
    fs_node_t *node;
    const fs_dchunk_t *inline_chunk; /* the data when the file stays inline, else NULL */
    bool keep_inline;                /* stays inline with its record's data (nothing written) */
    uint32_t chunk_size;
} written_t;

static int mutate_written(fs_inode_t *in, void *arg)
{
    written_t *w = arg;
    fs_node_t *n = w->node;
    if (w->inline_chunk) {
        uint8_t *data = NULL;
        uint32_t len = w->inline_chunk->len;
        /*
         * A write while a conflict had this update retried may have taken
         * the file past what a record holds: this update writes the first
         * FS_INLINE_MAX bytes, and the flush that the write made owed
         * moves the file to chunks.
         */
        uint64_t size = n->size < FS_INLINE_MAX ? n->size : FS_INLINE_MAX;
        if (len > size)
            len = (uint32_t)size;
        if (len && !(data = malloc(len)))
            return -ENOMEM;
        if (len)
            memcpy(data, w->inline_chunk->data, len);
        free(in->data);
        in->data = data;
        in->data_len = len;
        in->size = size;
        in->flags |= FS_INODE_INLINE;
    } else if (w->keep_inline) {
        /*
         * Only attributes owed (a just-created file's deferred fchown):
         * nothing was written, so the record's data and times stay.
         */
        return 0;
    } else {
        if (n->size > in->size)
            in->size = n->size;
        if (fs_extents_union(&in->ext, &n->written) < 0)
            return -ENOMEM;
        free(in->data);
        in->data = NULL;
        in->data_len = 0;
        in->flags &= ~FS_INODE_INLINE;
    }
    /* An mtime set since the last write (fs_node_update applied it) is newer. */
    if (!(n->over.set & FS_SET_MTIME)) {
        in->mtime_s = n->mtime.tv_sec;
        in->mtime_ns = (uint32_t)n->mtime.tv_nsec;
    }
    /* The later of the writes' and the record's (a chmod's or a link's since). */
    if (fs_ts_cmp(in->ctime_s, in->ctime_ns, n->mtime) < 0) {
        in->ctime_s = n->mtime.tv_sec;
        in->ctime_ns = (uint32_t)n->mtime.tv_nsec;
    }
    return 0;
}

static int dchunk_get(fs_t *fs, fs_node_t *n, fs_span_t sp, fs_dchunk_t **out);

/* ---- the chunk index ---- */

/* A sequential writer's reservation: as long as its run so far, within these bounds. */
#define RESERVE_MIN 16
#define RESERVE_MAX 1024

static int mutate_cover(fs_inode_t *in, void *arg)
{
    const fs_extents_t *add = arg;
    bool need = false;
    for (uint32_t k = 0; k < add->count && !need; k++)
        need = !fs_extents_covers(&in->ext, add->v[k].start, add->v[k].end);
    if (!need)
        return 1; /* listed already (by another mount, or an update that raced ours) */
    return fs_extents_union(&in->ext, add);
}

/*
 * Make the record's index list every dirty chunk of n, and `ahead` chunks
 * from ahead_from, before any of them is written: one record update for
 * the whole batch, none when the index lists them already. Chunks made
 * dirty while this parks are not covered: callers put only listed chunks.
 */
static int index_cover(fs_t *fs, fs_node_t *n, uint64_t ahead_from, uint64_t ahead)
{
    fs_extents_t add = {0};
    int rc = 0;
    for (fs_dchunk_t *dc = n->dirty_head; dc && rc == 0; dc = dc->next) {
        if (!fs_extents_has(&n->in.ext, dc->index))
            rc = fs_extents_add(&add, dc->index, dc->index + 1);
    }
    if (rc == 0 && ahead > 0)
        rc = fs_extents_add(&add, ahead_from, ahead_from + ahead);
    if (rc == 0 && add.count > 0)
        rc = fs_node_update(fs, n, mutate_cover, &add);
    fs_extents_free(&add);
    return rc;
}

/*
 * Chunk index was written to its end and the index does not list it yet.
 * A sequential writer (the chunk before is listed or dirty) gets the index
 * extended ahead of it, so it streams on with one record update per
 * reservation; the reservation grows with its run, so chunks listed but
 * never written stay fewer than those written. Anything else waits for
 * its flush batch. Returns true when index is listed now.
 */
static bool index_reserve(fs_t *fs, fs_node_t *n, uint64_t index)
{
    /*
     * The kernel sends a streaming writer's requests in parallel: one
     * reservation at a time per file, or they would all compare-and-set
     * the same record at once. The others leave their chunks dirty.
     */
    if (n->reserving)
        return false;
    if (index > 0 && !fs_extents_has(&n->in.ext, index - 1) &&
        !fs_map_get(fs->dirty, n->ino, index - 1))
        return false;
    uint64_t ahead = fs_extents_run_to(&n->in.ext, index);
    if (ahead < RESERVE_MIN)
        ahead = RESERVE_MIN;
    if (ahead > RESERVE_MAX)
        ahead = RESERVE_MAX;
    n->reserving = true;
    int rc = index_cover(fs, n, index, ahead);
    n->reserving = false;
    if (rc < 0) {
        log_warn("fs", "inode %llx: extending its chunk index failed: %s",
                 (unsigned long long)n->ino, strerror(-rc));
        return false; /* the flush will try again and report the error */
    }
    return fs_extents_has(&n->in.ext, index);
}

/*
 * Can the file's data stay in its record? Only while everything written
 * lies in chunk 0 and within FS_INLINE_MAX.
 */
static const fs_dchunk_t *inline_candidate(const fs_node_t *n)
{
    if (!(n->in.flags & FS_INODE_INLINE) || n->size > FS_INLINE_MAX)
        return NULL;
    const fs_dchunk_t *dc = n->dirty_head;
    if (dc && (dc->next || dc->index != 0 || dc->in_flight))
        return NULL;
    return dc;
}

int fs_data_flush(fs_t *fs, fs_node_t *n)
{
    fiber_mutex_lock(&n->lock);
    int rc = 0;
    written_t w = {n, NULL, false, fs->chunk_size};
    bool stay_inline = false;
    if (n->meta_dirty && (n->in.flags & FS_INODE_INLINE)) {
        w.inline_chunk = inline_candidate(n);
        stay_inline = w.inline_chunk || (!n->dirty_head && n->size <= FS_INLINE_MAX);
        w.keep_inline = stay_inline && !w.inline_chunk;
        if (!stay_inline && n->in.data_len > 0 && !fs_map_get(fs->dirty, n->ino, 0) &&
            !fs_extents_has(&n->written, 0)) {
            /*
             * Leaving the record: its bytes become chunk 0 (unless an
             * earlier flush, whose record update failed, stored it already).
             */
            fs_dchunk_t *dc;
            fs_span_t sp = {0, 0, 0};
            rc = dchunk_get(fs, n, sp, &dc);
        }
    }
    for (int round = 0; rc == 0 && !stay_inline && round < 16 && n->dirty_head; round++) {
        if ((rc = index_cover(fs, n, 0, 0)) < 0) {
            log_warn("fs", "inode %llx: updating its chunk index failed: %s",
                     (unsigned long long)n->ino, strerror(-rc));
            wait_puts(n); /* never return with this file's puts in flight */
            break;
        }
        for (fs_dchunk_t *dc = n->dirty_head; dc; dc = dc->next) {
            if (!dc->in_flight && fs_extents_has(&n->in.ext, dc->index) &&
                (rc = put_start(fs, dc)) < 0)
                break;
        }
        wait_puts(n);
        if (rc < 0 || n->wb_error)
            break;
    }
    if (rc == 0 && n->wb_error) {
        rc = n->wb_error;
        n->wb_error = 0;
    }
    if (rc == 0 && n->dirty_head && !stay_inline)
        rc = -EIO; /* rewritten faster than it could be flushed: try again later */
    if (rc == 0 && n->meta_dirty) {
        /*
         * Cleared first: a write while the update is under way sets it
         * again. meta_flushing keeps the node dirty meanwhile, so a record
         * read now cannot shrink the size this mount has written.
         */
        n->meta_dirty = false;
        n->meta_flushing = true;
        fs_dchunk_t *dc = stay_inline ? n->dirty_head : NULL;
        uint64_t seq = dc ? dc->seq : 0;
        uint64_t written = fs_extents_total(&n->written, UINT64_MAX);
        rc = fs_node_update(fs, n, mutate_written, &w);
        n->meta_flushing = false;
        if (rc < 0) {
            n->meta_dirty = true;
        } else {
            /* The set only grows, so the same total means nothing was added meanwhile. */
            if (fs_extents_total(&n->written, UINT64_MAX) == written)
                fs_extents_free(&n->written);
            if (dc && dc == n->dirty_head && dc->seq == seq)
                dchunk_unlink(fs, dc);
        }
    }
    fiber_mutex_unlock(&n->lock);
    return rc;
}

/* ---- writing ---- */

/*
 * Can a write of sp start a partial chunk instead of reading the old
 * content first? Only over data the file already has (so nothing past its
 * end is ever patched in), in a stored chunk that is not at hand.
 */
static bool patch_fits(fs_t *fs, fs_node_t *n, fs_span_t sp, uint32_t valid)
{
    if (fs->no_patch || (n->in.flags & FS_INODE_INLINE) || sp.offset + sp.len > valid ||
        !fs_extents_has(&n->in.ext, sp.index) || fs_map_get(fs->fetching, n->ino, sp.index))
        return false;
    cache_key_t k = ckey(n, sp.index);
    kv_cache_hit_t hit;
    return kv_cache_get(fs->chunks, &k, sizeof(k), &hit) != 0;
}

static int dchunk_get(fs_t *fs, fs_node_t *n, fs_span_t sp, fs_dchunk_t **out)
{
    fs_dchunk_t *dc = fs_map_get(fs->dirty, n->ino, sp.index);
    if (dc) {
        *out = dc;
        return 0;
    }
    uint32_t valid = fs_chunk_valid_len(n->size, sp.index, fs->chunk_size);
    uint8_t *data = malloc(fs->chunk_size);
    if (!data)
        return -ENOMEM;
    bool need_old = valid > 0 && !(sp.offset == 0 && sp.len >= valid);
    bool partial = need_old && patch_fits(fs, n, sp, valid);
    if (partial) {
        memset(data, 0, fs->chunk_size);
    } else if (need_old) {
        int rc = chunk_read(fs, n, sp.index, 0, valid, data);
        if (rc < 0) {
            free(data);
            return rc;
        }
        /* Another writer of this file may have made the chunk dirty while we read. */
        dc = fs_map_get(fs->dirty, n->ino, sp.index);
        if (dc) {
            free(data);
            *out = dc;
            return 0;
        }
        memset(data + valid, 0, fs->chunk_size - valid);
    } else {
        valid = 0;
        if (sp.offset > 0 || sp.len < fs->chunk_size)
            memset(data, 0, fs->chunk_size);
    }
    dc = calloc(1, sizeof(*dc));
    if (!dc || fs_map_put(fs->dirty, n->ino, sp.index, dc) < 0) {
        free(dc);
        free(data);
        return -ENOMEM;
    }
    dc->node = n;
    dc->index = sp.index;
    dc->id = ++fs->dchunk_next;
    dc->data = data;
    dc->len = valid;
    dc->partial = partial;
    dc->lo = sp.offset;
    dc->hi = sp.offset + sp.len;
    /* (valid is 0 here when the chunk is rewritten from its start to its end.) */
    if (!(n->in.flags & FS_INODE_INLINE) && fs_extents_has(&n->in.ext, sp.index))
        dc->base_valid = valid;
    dc->next = n->dirty_head;
    if (dc->next)
        dc->next->prev = dc;
    n->dirty_head = dc;
    fs->dirty_bytes += fs->chunk_size;
    *out = dc;
    return 0;
}

int fs_data_write(fs_t *fs, fs_node_t *n, uint64_t off, const uint8_t *buf, size_t size)
{
    for (uint64_t at = off; at < off + size;) {
        fs_span_t sp = fs_chunk_span(at, off + size - at, fs->chunk_size);
        fs_dchunk_t *dc;
        int rc = dchunk_get(fs, n, sp, &dc);
        if (rc < 0)
            return rc;
        if (dc->partial && (sp.offset > dc->hi || sp.offset + sp.len < dc->lo)) {
            /* Not contiguous with the known range: make the chunk whole, then look again. */
            if ((rc = dchunk_fill(fs, n, dc)) < 0)
                return rc;
            continue;
        }
        if (sp.offset < dc->lo)
            dc->lo = sp.offset;
        if (sp.offset + sp.len > dc->hi)
            dc->hi = sp.offset + sp.len;
        memcpy(dc->data + sp.offset, buf + (at - off), sp.len);
        if (sp.offset + sp.len > dc->len)
            dc->len = sp.offset + sp.len;
        dc->seq++;
        at += sp.len;
        if (at > n->size)
            n->size = at;
        n->meta_dirty = true;
        node_touch(n, fs_now());
        /*
         * A chunk written up to its end is done for a sequential writer:
         * list it (a reservation ahead) and send it now if there is room,
         * else a put that finishes sends it (wb_pump).
         */
        if (sp.offset + sp.len == fs->chunk_size && !dc->in_flight &&
            !(n->in.flags & FS_INODE_INLINE)) {
            if (!fs_extents_has(&n->in.ext, sp.index)) {
                /* This parks: the chunk may have been written back (and freed) meanwhile. */
                if (!index_reserve(fs, n, sp.index) ||
                    !(dc = fs_map_get(fs->dirty, n->ino, sp.index)) || dc->in_flight)
                    continue;
            }
            if (fs->puts_in_flight < fs->puts_max && (rc = put_start(fs, dc)) < 0)
                return rc;
        }
    }
    if (n->wb_error) {
        int rc = n->wb_error;
        n->wb_error = 0;
        return rc;
    }
    /*
     * Grown past its first chunk while its data lives in its record: move
     * the data to chunks now, so the chunks can stream. A file that
     * outgrew its record but still fits chunk 0 waits for its flush, which
     * moves it anyway: SQLite's journal of a one-row transaction (8.7 KiB)
     * paid two round trips inside a write for bytes it fsyncs moments later.
     */
    if ((n->in.flags & FS_INODE_INLINE) && n->size > fs->chunk_size)
        return fs_data_flush(fs, n);
    return wb_throttle(fs, n);
}

/* Rewrite chunk index keeping only its first keep bytes. */
static int chunk_trim(fs_t *fs, fs_node_t *n, uint64_t index, uint32_t keep)
{
    char key[FS_KEY_MAX];
    fs_key_chunk(key, fs->vol, n->ino, index);
    uint8_t *value;
    size_t len;
    int rc = fs_get(fs->kvc, key, &value, &len, NULL);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return fs_store_errno(rc);
    if (len > keep)
        rc = fs_put(fs->kvc, key, value, keep, KVC_PUT_ALWAYS, (kv_version_t){0, 0}, NULL);
    free(value);
    return fs_store_errno(rc);
}

int fs_data_truncate(fs_t *fs, fs_node_t *n, uint64_t old_size, uint64_t size)
{
    int rc = fs_data_flush(fs, n);
    if (rc < 0)
        return rc;
    fiber_mutex_lock(&n->lock);
    /*
     * Only chunks the index lists are touched: a copy, since the record
     * may be replaced while the deletes park. The caller's update of the
     * record then cuts the index (and an inline file's data) to the size;
     * a crash in between leaves the index listing deleted chunks, which
     * is harmless.
     */
    fs_extents_t listed;
    bool chunked = !(n->in.flags & FS_INODE_INLINE);
    rc = fs_extents_copy(&listed, &n->in.ext);
    if (rc == 0)
        rc = fs_extents_union(&listed, &n->written);
    if (rc < 0) {
        /* nothing deleted */
    } else if (size < old_size) {
        uint64_t first_dead, end_dead, partial;
        uint32_t keep;
        bool trim = fs_chunk_truncate_plan(old_size, size, fs->chunk_size, &first_dead, &end_dead,
                                           &partial, &keep);
        /* Past the old end too: reservations and writes cut short may be listed there. */
        rc = fs_chunks_delete(fs, n->ino, &listed, first_dead);
        if (rc == 0 && trim && chunked && fs_extents_has(&listed, partial))
            rc = chunk_trim(fs, n, partial, keep);
    } else if (size > old_size && chunked && old_size % fs->chunk_size != 0 &&
               fs_extents_has(&listed, old_size / fs->chunk_size)) {
        /* Bytes a failed write left past the old end must not reappear as data. */
        rc = chunk_trim(fs, n, old_size / fs->chunk_size, (uint32_t)(old_size % fs->chunk_size));
    }
    fs_extents_free(&listed);
    fs_data_invalidate(fs, n);
    if (rc == 0 && size < old_size)
        fs_extents_truncate(&n->written, fs_chunk_count(size, fs->chunk_size));
    if (rc == 0)
        n->size = size;
    fiber_mutex_unlock(&n->lock);
    return rc;
}

void fs_data_discard(fs_t *fs, fs_node_t *n)
{
    fiber_mutex_lock(&n->lock);
    n->wb_hold = true;
    wait_puts(n);
    n->wb_hold = false;
    while (n->dirty_head)
        dchunk_unlink(fs, n->dirty_head);
    n->meta_dirty = false;
    n->over.set = 0; /* the file is going: nothing more to write */
    n->wb_error = 0;
    fiber_mutex_unlock(&n->lock);
}

/* ---- holes: punching, zeroing, growing, seeking ---- */

typedef struct {
    uint64_t start, end; /* whole chunks dropped */
    uint32_t chunk_size;
    struct timespec now;
} punch_t;

static int mutate_punch(fs_inode_t *in, void *arg)
{
    punch_t *p = arg;
    if (p->start < p->end) {
        int rc = fs_extents_remove(&in->ext, p->start, p->end);
        if (rc < 0)
            return rc;
        uint64_t from = p->start * p->chunk_size, to = p->end * p->chunk_size;
        if ((in->flags & FS_INODE_INLINE) && from < in->data_len) {
            /* The record's bytes are the first chunk(s): bytes past data_len read as zeros. */
            if (to >= in->data_len)
                in->data_len = (uint32_t)from;
            else
                memset(in->data + from, 0, to - from);
        }
    }
    /* The new mtime is what tells other mounts to drop their cached chunks. */
    in->mtime_s = in->ctime_s = p->now.tv_sec;
    in->mtime_ns = in->ctime_ns = (uint32_t)p->now.tv_nsec;
    return 0;
}

/* Is chunk index stored (or held in the record) as far as this mount knows? */
static bool chunk_stored(const fs_t *fs, const fs_node_t *n, uint64_t index)
{
    if (n->in.flags & FS_INODE_INLINE)
        return index * fs->chunk_size < n->in.data_len;
    return fs_extents_has(&n->in.ext, index) || fs_extents_has(&n->written, index) ||
           fs_map_get(fs->dirty, n->ino, index) != NULL;
}

/* Zero [off, end) inside stored chunks through the write-back path (at most two chunks). */
static int zero_edges(fs_t *fs, fs_node_t *n, uint64_t off, uint64_t end)
{
    static const uint8_t zeros[64 * 1024];
    for (uint64_t at = off; at < end;) {
        fs_span_t sp = fs_chunk_span(at, end - at, fs->chunk_size);
        if (chunk_stored(fs, n, sp.index)) {
            /* A hole stays a hole: only stored chunks are rewritten. */
            for (uint32_t done = 0; done < sp.len;) {
                uint32_t step = sp.len - done;
                if (step > sizeof(zeros))
                    step = sizeof(zeros);
                int rc = fs_data_write(fs, n, at + done, zeros, step);
                if (rc < 0)
                    return rc;
                done += step;
            }
        }
        at += sp.len;
    }
    return 0;
}

int fs_data_zero(fs_t *fs, fs_node_t *n, uint64_t off, uint64_t len)
{
    int rc = fs_data_flush(fs, n);
    if (rc < 0 || len == 0 || off >= n->size)
        return rc;
    uint64_t end = len > n->size - off ? n->size : off + len;
    uint64_t a, b;
    fs_chunk_punch_plan(off, len, n->size, fs->chunk_size, &a, &b);
    if (a == b) {
        rc = zero_edges(fs, n, off, end);
    } else {
        rc = zero_edges(fs, n, off, a * fs->chunk_size);
        if (rc == 0 && b * fs->chunk_size < end)
            rc = zero_edges(fs, n, b * fs->chunk_size, end);
    }
    /* The edges are written back before whole chunks go, so a failure leaves no half state. */
    if (rc == 0)
        rc = fs_data_flush(fs, n);
    if (rc < 0)
        return rc;
    fiber_mutex_lock(&n->lock);
    fs_extents_t dead;
    rc = fs_extents_copy(&dead, &n->in.ext);
    if (rc == 0)
        rc = fs_extents_union(&dead, &n->written);
    if (rc == 0 && a < b) {
        /*
         * Deleted first, unlisted after (as truncation does): a crash in
         * between leaves the index listing absent chunks, which is
         * harmless, never stored chunks it does not list.
         */
        fs_extents_truncate(&dead, b);
        if (a > 0)
            rc = fs_extents_remove(&dead, 0, a);
        if (rc == 0)
            rc = fs_chunks_delete(fs, n->ino, &dead, 0);
    }
    fs_extents_free(&dead);
    if (rc == 0) {
        punch_t p = {a, b, fs->chunk_size, fs_now()};
        rc = fs_node_update(fs, n, mutate_punch, &p);
        if (rc == 0 && a < b)
            rc = fs_extents_remove(&n->written, a, b);
        if (rc == 0)
            node_touch(n, p.now);
    }
    /* Cached copies of deleted chunks must not answer reads any more. */
    fs_data_invalidate(fs, n);
    fiber_mutex_unlock(&n->lock);
    return rc;
}

typedef struct {
    uint64_t size;
    struct timespec now;
} grow_t;

static int mutate_grow(fs_inode_t *in, void *arg)
{
    grow_t *g = arg;
    if (in->size >= g->size)
        return 1; /* another mount made it as long already */
    in->size = g->size;
    in->mtime_s = in->ctime_s = g->now.tv_sec;
    in->mtime_ns = in->ctime_ns = (uint32_t)g->now.tv_nsec;
    return 0;
}

int fs_data_extend(fs_t *fs, fs_node_t *n, uint64_t size)
{
    int rc = fs_data_flush(fs, n);
    if (rc < 0 || size <= n->size)
        return rc;
    /* Cuts bytes a failed write may have left past the old end, as truncate up does. */
    rc = fs_data_truncate(fs, n, n->size, size);
    if (rc < 0)
        return rc;
    grow_t g = {size, fs_now()};
    fiber_mutex_lock(&n->lock);
    rc = fs_node_update(fs, n, mutate_grow, &g);
    fiber_mutex_unlock(&n->lock);
    return rc;
}

/*
 * The index may list chunks that were never written (a sequential
 * writer's reservation ahead of it, a write cut short), so lseek asks the
 * store about the listed chunks its answer depends on, PROBE at a time in
 * parallel and at most PROBE_ROUNDS times; past that a listed chunk counts
 * as data, which lseek(2) allows. Chunks this mount wrote or holds in its
 * cache are known to be there and cost nothing.
 */
#define PROBE 64
#define PROBE_ROUNDS 16

/* Which of chunks [lo, hi) (hi - lo <= PROBE) are stored: bit k of *present for lo + k. */
static int probe_chunks(fs_t *fs, fs_node_t *n, uint64_t lo, uint64_t hi, uint64_t *present)
{
    fs_op_t ops[PROBE];
    bool asked[PROBE] = {false};
    *present = 0;
    for (uint64_t i = lo; i < hi; i++) {
        cache_key_t k = ckey(n, i);
        kv_cache_hit_t hit;
        if (fs_extents_has(&n->written, i) || kv_cache_get(fs->chunks, &k, sizeof(k), &hit) == 0) {
            *present |= 1ull << (i - lo);
            continue;
        }
        char key[FS_KEY_MAX];
        fs_key_chunk(key, fs->vol, n->ino, i);
        fs_op_get(fs->kvc, &ops[i - lo], key);
        asked[i - lo] = true;
    }
    int first_err = 0;
    for (uint64_t i = lo; i < hi; i++) {
        if (!asked[i - lo])
            continue;
        int rc = fs_op_wait(&ops[i - lo]);
        fs_op_clear(&ops[i - lo]);
        if (rc == 0)
            *present |= 1ull << (i - lo);
        else if (rc != -ENOENT && !first_err)
            first_err = fs_store_errno(rc);
    }
    return first_err;
}

static int seek_stored(fs_t *fs, fs_node_t *n, fs_extents_t *stored, uint64_t off, bool data,
                       uint64_t *out)
{
    uint64_t cs = fs->chunk_size;
    for (int round = 0;; round++) {
        int rc = fs_chunk_seek(stored, n->size, fs->chunk_size, off, data, out);
        if (rc < 0 || round == PROBE_ROUNDS)
            return rc;
        /* The listed chunks the answer rests on: from the data found, or off's run up to the hole.
         */
        uint64_t lo = data ? *out / cs : off / cs;
        uint64_t hi =
            data ? fs_chunk_count(n->size, fs->chunk_size) : fs_chunk_count(*out, fs->chunk_size);
        if (!data && *out == off)
            return 0; /* off is in an unlisted chunk: a hole for sure */
        if (hi > lo + PROBE)
            hi = lo + PROBE;
        uint64_t present;
        if ((rc = probe_chunks(fs, n, lo, hi, &present)) < 0)
            return rc;
        uint64_t k = 0;
        while (k < hi - lo && ((present >> k) & 1) != (uint64_t)data)
            k++;
        if (k < hi - lo) {
            /* data: chunks [lo, lo + k) are not there, lo + k is; hole: the reverse. */
            uint64_t at = (lo + k) * cs;
            *out = at > off ? at : off;
            return 0;
        }
        /* All absent (data) or all present (hole): look further. */
        if (data) {
            if ((rc = fs_extents_remove(stored, lo, hi)) < 0)
                return rc;
        } else if (hi * cs >= *out) {
            return 0; /* the whole run is stored: the hole is where the index says */
        } else {
            off = hi * cs;
        }
    }
}

int fs_data_seek(fs_t *fs, fs_node_t *n, uint64_t off, bool data, uint64_t *out)
{
    int rc = fs_data_dirty(n) ? fs_data_flush(fs, n) : 0;
    if (rc < 0)
        return rc;
    fs_extents_t stored = {0};
    if (n->in.flags & FS_INODE_INLINE) {
        if (n->in.data_len > 0)
            rc = fs_extents_add(&stored, 0, fs_chunk_count(n->in.data_len, fs->chunk_size));
        if (rc == 0)
            rc = fs_chunk_seek(&stored, n->size, fs->chunk_size, off, data, out);
    } else {
        rc = fs_extents_copy(&stored, &n->in.ext);
        if (rc == 0)
            rc = fs_extents_union(&stored, &n->written);
        if (rc == 0)
            rc = seek_stored(fs, n, &stored, off, data, out);
    }
    fs_extents_free(&stored);
    return rc;
}

/* ---- copy_file_range ---- */

/* Chunks copied store to store at once (each batch holds this many values in memory). */
#define COPY_BATCH 16
/* The normal path's buffer. */
#define COPY_BUF (1024 * 1024)

/* Copy [off_in, off_in+len) through the client: read, then write as a write(2) would. */
static int copy_bytes(fs_t *fs, fs_node_t *src, uint64_t off_in, fs_node_t *dst, uint64_t off_out,
                      uint64_t len)
{
    uint8_t *buf = malloc(len < COPY_BUF ? len : COPY_BUF);
    if (!buf)
        return -ENOMEM;
    int rc = 0;
    for (uint64_t done = 0; done < len && rc == 0;) {
        size_t step = len - done < COPY_BUF ? (size_t)(len - done) : COPY_BUF, got;
        rc = fs_data_read(fs, src, off_in + done, step, buf, &got);
        if (rc == 0 && got < step)
            memset(buf + got, 0, step - got); /* cannot happen within src's size */
        if (rc == 0)
            rc = fs_data_write(fs, dst, off_out + done, buf, step);
        done += step;
    }
    free(buf);
    return rc;
}

static int mutate_copied(fs_inode_t *in, void *arg)
{
    grow_t *g = arg;
    if (in->size < g->size)
        in->size = g->size;
    in->mtime_s = in->ctime_s = g->now.tv_sec;
    in->mtime_ns = in->ctime_ns = (uint32_t)g->now.tv_nsec;
    return 0;
}

/* mutate_cover for a destination that may still be an empty inline file: it becomes chunked. */
static int mutate_copy_cover(fs_inode_t *in, void *arg)
{
    if (in->flags & FS_INODE_INLINE) {
        if (in->data_len > 0)
            return -EIO; /* another mount wrote bytes into the record meanwhile: retry the copy */
        in->flags &= ~FS_INODE_INLINE;
        int rc = fs_extents_union(&in->ext, arg);
        return rc;
    }
    return mutate_cover(in, arg);
}

/*
 * Copy src chunks [first, first+count) to dst chunks [to, to+count)
 * (count <= COPY_BATCH) store to store: the values in parallel, then the
 * puts in parallel, after dst's index lists them. A chunk src does not
 * store becomes a hole in dst.
 */
static int copy_chunks(fs_t *fs, fs_node_t *src, uint64_t first, fs_node_t *dst, uint64_t to,
                       uint64_t count)
{
    fs_op_t ops[COPY_BATCH];
    bool asked[COPY_BATCH] = {false};
    char key[FS_KEY_MAX];
    int rc = 0;
    for (uint64_t k = 0; k < count; k++) {
        if (!fs_extents_has(&src->in.ext, first + k) && !fs_extents_has(&src->written, first + k))
            continue; /* unlisted: a hole, nothing to read */
        fs_key_chunk(key, fs->vol, src->ino, first + k);
        fs_op_get(fs->kvc, &ops[k], key);
        asked[k] = true;
    }
    fs_extents_t add = {0};
    for (uint64_t k = 0; k < count; k++) {
        if (!asked[k])
            continue;
        int r = fs_op_wait(&ops[k]);
        if (r == -ENOENT) {
            asked[k] = false;
            fs_op_clear(&ops[k]);
        } else if (r < 0) {
            if (!rc)
                rc = fs_store_errno(r);
        } else if (rc == 0) {
            rc = fs_extents_add(&add, to + k, to + k + 1);
        }
    }
    /* dst's index lists the chunks before they are written (see the top of this file). */
    if (rc == 0 && add.count > 0) {
        fiber_mutex_lock(&dst->lock);
        rc = fs_node_update(fs, dst, mutate_copy_cover, &add);
        fiber_mutex_unlock(&dst->lock);
    }
    fs_op_t puts[COPY_BATCH];
    bool put[COPY_BATCH] = {false};
    for (uint64_t k = 0; k < count && rc == 0; k++) {
        if (!asked[k])
            continue;
        fs_key_chunk(key, fs->vol, dst->ino, to + k);
        fs_op_put(fs->kvc, &puts[k], key, ops[k].value, ops[k].len, KVC_PUT_ALWAYS,
                  (kv_version_t){0, 0});
        put[k] = true;
    }
    for (uint64_t k = 0; k < count; k++) {
        if (put[k]) {
            int r = fs_op_wait(&puts[k]);
            if (r < 0 && !rc)
                rc = fs_store_errno(r);
            else if (r == 0 && fs_extents_add(&dst->written, to + k, to + k + 1) < 0) {
                /* Harmless: the index listed the chunk before the put. */
            }
        }
        if (asked[k])
            fs_op_clear(&ops[k]);
    }
    fs_extents_free(&add);
    /* Holes of src: dst's chunks there must read as zeros too. */
    for (uint64_t k = 0; k < count && rc == 0;) {
        if (asked[k]) {
            k++;
            continue;
        }
        uint64_t j = k;
        while (j < count && !asked[j])
            j++;
        rc = fs_data_zero(fs, dst, (to + k) * fs->chunk_size, (j - k) * fs->chunk_size);
        k = j;
    }
    return rc;
}

int fs_data_copy(fs_t *fs, fs_node_t *src, uint64_t off_in, fs_node_t *dst, uint64_t off_out,
                 uint64_t len, uint64_t *copied)
{
    *copied = 0;
    int rc = fs_data_flush(fs, src);
    if (rc == 0 && dst != src)
        rc = fs_data_flush(fs, dst);
    if (rc < 0 || off_in >= src->size)
        return rc;
    if (len > src->size - off_in)
        len = src->size - off_in;
    uint64_t cs = fs->chunk_size;
    uint64_t end_out = off_out + len;
    /* Whole chunks only when both sides line up, and not between overlapping ranges of one file. */
    bool aligned = off_in % cs == off_out % cs && !(src->in.flags & FS_INODE_INLINE) &&
                   (src != dst || off_in + len <= off_out || off_out + len <= off_in);
    uint64_t head = aligned ? (cs - off_in % cs) % cs : len;
    /* A destination whose bytes live in its record is copied into through the normal path. */
    if (aligned && (dst->in.flags & FS_INODE_INLINE) && (dst->in.data_len > 0 || head > 0))
        aligned = false;
    if (!aligned)
        head = len;
    if (head > len)
        head = len;
    uint64_t whole = aligned ? (len - head) / cs : 0;
    if (head > 0 && (rc = copy_bytes(fs, src, off_in, dst, off_out, head)) < 0)
        return rc;
    if (whole > 0) {
        /*
         * Growing dst first means dst's chunks inside its new size are
         * what a reader sees; the flush puts any head bytes and dst's old
         * tail in the store before chunks are replaced under them.
         */
        if ((rc = fs_data_extend(fs, dst, end_out)) < 0)
            return rc;
        uint64_t first = (off_in + head) / cs, to = (off_out + head) / cs;
        for (uint64_t k = 0; k < whole && rc == 0; k += COPY_BATCH) {
            uint64_t count = whole - k < COPY_BATCH ? whole - k : COPY_BATCH;
            rc = copy_chunks(fs, src, first + k, dst, to + k, count);
        }
        /* Cached chunks of dst are stale now; the new mtime tells other mounts. */
        fs_data_invalidate(fs, dst);
        if (rc == 0) {
            grow_t g = {end_out, fs_now()};
            fiber_mutex_lock(&dst->lock);
            rc = fs_node_update(fs, dst, mutate_copied, &g);
            fiber_mutex_unlock(&dst->lock);
        }
        if (rc < 0)
            return rc;
    }
    uint64_t tail_at = head + whole * cs;
    if (tail_at < len &&
        (rc = copy_bytes(fs, src, off_in + tail_at, dst, off_out + tail_at, len - tail_at)) < 0)
        return rc;
    if ((rc = fs_data_flush(fs, dst)) < 0)
        return rc;
    *copied = len;
    return 0;
}
