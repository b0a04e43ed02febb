/*
 * fs_layout.c — key names, record codecs, directory hashing and chunk
 * arithmetic of a dhtfs volume.
 *
 * Pure: no I/O, no clocks, no randomness, no logging, so the same code runs
 * in the client, in unit tests and under a fuzzer.
 *
 * Records are little-endian and start with a format byte, so a later format
 * can be told apart (and is refused here rather than misread). Decoders walk
 * a bounds-checked cursor, check every length against the bytes left before
 * using it, and accept only what the encoders produce: a record that decodes
 * re-encodes to the same bytes (except an inode record of format 1, read
 * for old volumes and always written back in the current format). Encoders refuse (return 0) to
 * write what the decoders would reject, so a bad in-memory record never reaches the store.
 *
 * Invariants the mutators keep and the decoders check:
 *   - xattrs are sorted by name bytes, names unique, 1..FS_NAME_MAX bytes,
 *     Σ(name length + value length) ≤ FS_XATTR_TOTAL_MAX;
 *   - bucket entries are sorted by (hash, name bytes), unique, each hash is
 *     fs_name_hash(name) and lies inside the bucket's (depth, prefix);
 *   - bytes of a chunk at or past the file size are zero (or absent), which
 *     is why growing a file needs no chunk rewrite;
 *   - a chunk index is sorted, its extents non-empty, neither overlapping
 *     nor touching, at most FS_EXTENTS_MAX of them (one set, one encoding).
 *
 * Deliberately not here: which bucket to read next, CAS retries, caching —
 * that is the metadata layer's job.
 */
#include "fs_layout.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define FS_FORMAT 1
/*
 * Inode records have their own format: 2 added the chunk index (and
 * dropped format 1's chunk count estimate); format-1 records are still read.
 */
#define FS_INODE_FORMAT 2
#define FS_INODE_FORMAT_NO_INDEX 1

#define CHUNK_MIN (4u * 1024)
#define CHUNK_MAX (4u * 1024 * 1024)

/* format, chunk size */
#define SUPER_LEN (1 + 4)
/* format, ino, mode..flags, size/rdev/parent, 3 × time_s, 3 × time_ns */
#define INODE_FIXED_LEN (1 + 8 + 5 * 4 + 3 * 8 + 3 * 8 + 3 * 4)
/* format 1 also had a chunk count (8 bytes) after parent */
#define INODE_V1_CHUNKS_LEN 8
#define VARINT_MAX 10
/* name length, name (≥ 1 byte), value length */
#define XATTR_MIN_LEN (1 + 1 + 4)
/* format, state */
#define BUCKET_HEAD_LEN 2
/* ino, type, name length, before the name */
#define ENTRY_FIXED_LEN (8 + 1 + 1)
#define ENTRY_MIN_LEN (ENTRY_FIXED_LEN + 1)

/* ---- cursors ---- */

/*
 * Offsets rather than pointers, so an empty (possibly NULL) buffer never
 * takes part in pointer arithmetic.
 */
typedef struct {
    const uint8_t *buf;
    size_t len, off;
    bool bad;
} rcur_t;

static const uint8_t *take(rcur_t *r, size_t n)
{
    if (r->bad || r->len - r->off < n) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *p = r->buf + r->off;
    r->off += n;
    return p;
}

static size_t left_bytes(const rcur_t *r)
{
    return r->bad ? 0 : r->len - r->off;
}

static uint64_t get_le(rcur_t *r, size_t n)
{
    const uint8_t *p = take(r, n);
    uint64_t v = 0;
    if (!p)
        return 0;
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static uint8_t get_u8(rcur_t *r)
{
    return (uint8_t)get_le(r, 1);
}

static uint16_t get_u16(rcur_t *r)
{
    return (uint16_t)get_le(r, 2);
}

static uint32_t get_u32(rcur_t *r)
{
    return (uint32_t)get_le(r, 4);
}

static uint64_t get_u64(rcur_t *r)
{
    return get_le(r, 8);
}

/* Writers assume the caller already checked the room against the exact size. */
static uint8_t *put_le(uint8_t *p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
    return p + n;
}

static uint8_t *put_bytes(uint8_t *p, const void *src, size_t n)
{
    if (n)
        memcpy(p, src, n);
    return p + n;
}

/* LEB128, 7 bits a byte, least significant first. */
static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static uint8_t *put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/*
 * Only the shortest form is accepted (no trailing zero groups, nothing
 * past 64 bits), so every value has one encoding and a decoded record
 * re-encodes to the same bytes.
 */
static uint64_t get_varint(rcur_t *r)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < VARINT_MAX; i++) {
        const uint8_t *p = take(r, 1);
        if (!p)
            return 0;
        uint64_t bits = *p & 0x7f;
        if (i == VARINT_MAX - 1 && bits > 1)
            break; /* beyond 64 bits */
        v |= bits << (7 * i);
        if (!(*p & 0x80)) {
            if (i > 0 && bits == 0)
                break; /* overlong */
            return v;
        }
    }
    r->bad = true;
    return 0;
}

/* Bytewise order of two NUL-free byte strings, shorter first on a tie. */
static int bytes_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c)
        return c;
    return (alen > blen) - (alen < blen);
}

/* ---- keys ---- */

/*
 * A key that does not fit, or whose volume name could alias another
 * volume's keys (a '/' in it), comes back empty: an empty key is never
 * valid, whereas a truncated one could name someone else's record.
 */
static size_t key_done(char *buf, int n)
{
    if (n < 0 || n >= FS_KEY_MAX) {
        buf[0] = '\0';
        return 0;
    }
    return (size_t)n;
}

size_t fs_key_super(char *buf, const char *vol)
{
    if (!fs_volume_name_ok(vol))
        return key_done(buf, -1);
    return key_done(buf, snprintf(buf, FS_KEY_MAX, "v/%s/super", vol));
}

size_t fs_key_next(char *buf, const char *vol)
{
    if (!fs_volume_name_ok(vol))
        return key_done(buf, -1);
    return key_done(buf, snprintf(buf, FS_KEY_MAX, "v/%s/next", vol));
}

size_t fs_key_inode(char *buf, const char *vol, uint64_t ino)
{
    if (!fs_volume_name_ok(vol))
        return key_done(buf, -1);
    return key_done(buf, snprintf(buf, FS_KEY_MAX, "v/%s/i/%" PRIx64, vol, ino));
}

size_t fs_key_bucket(char *buf, const char *vol, uint64_t dir, unsigned depth, uint64_t prefix)
{
    if (!fs_volume_name_ok(vol))
        return key_done(buf, -1);
    return key_done(
        buf, snprintf(buf, FS_KEY_MAX, "v/%s/d/%" PRIx64 "/%x/%" PRIx64, vol, dir, depth, prefix));
}

size_t fs_key_chunk(char *buf, const char *vol, uint64_t ino, uint64_t index)
{
    if (!fs_volume_name_ok(vol))
        return key_done(buf, -1);
    return key_done(buf, snprintf(buf, FS_KEY_MAX, "v/%s/c/%" PRIx64 "/%" PRIx64, vol, ino, index));
}

bool fs_volume_name_ok(const char *vol)
{
    if (!vol)
        return false;
    size_t n = 0;
    for (; vol[n]; n++) {
        char c = vol[n];
        /* Explicit ranges: isalnum() would follow the locale. */
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok || n == 64)
            return false;
    }
    return n > 0 && strcmp(vol, ".") != 0 && strcmp(vol, "..") != 0;
}

/* ---- volume record ---- */

static bool chunk_size_ok(uint32_t cs)
{
    return cs >= CHUNK_MIN && cs <= CHUNK_MAX && (cs & (cs - 1)) == 0;
}

size_t fs_super_encode(const fs_super_t *s, uint8_t *buf, size_t cap)
{
    if (!chunk_size_ok(s->chunk_size) || cap < SUPER_LEN)
        return 0;
    uint8_t *p = put_le(buf, FS_FORMAT, 1);
    put_le(p, s->chunk_size, 4);
    return SUPER_LEN;
}

int fs_super_decode(const uint8_t *buf, size_t len, fs_super_t *out)
{
    rcur_t r = {buf, len, 0, false};
    uint8_t format = get_u8(&r);
    uint32_t cs = get_u32(&r);
    if (r.bad || r.off != len || format != FS_FORMAT || !chunk_size_ok(cs))
        return -EBADMSG;
    out->chunk_size = cs;
    return 0;
}

/* ---- chunk index ---- */

void fs_extents_free(fs_extents_t *e)
{
    if (!e)
        return;
    free(e->v);
    memset(e, 0, sizeof *e);
}

int fs_extents_copy(fs_extents_t *dst, const fs_extents_t *src)
{
    memset(dst, 0, sizeof *dst);
    if (src->count == 0)
        return 0;
    dst->v = malloc(src->count * sizeof *dst->v);
    if (!dst->v)
        return -ENOMEM;
    memcpy(dst->v, src->v, src->count * sizeof *dst->v);
    dst->count = dst->cap = src->count;
    return 0;
}

/* Index of the first extent ending after index (count if none). */
static uint32_t ext_first_after(const fs_extents_t *e, uint64_t index)
{
    uint32_t lo = 0, hi = e->count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (e->v[mid].end <= index)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

bool fs_extents_has(const fs_extents_t *e, uint64_t index)
{
    uint32_t i = ext_first_after(e, index);
    return i < e->count && e->v[i].start <= index;
}

/* Extents are never adjacent, so a covered range lies inside one of them. */
bool fs_extents_covers(const fs_extents_t *e, uint64_t start, uint64_t end)
{
    if (start >= end)
        return true;
    uint32_t i = ext_first_after(e, start);
    return i < e->count && e->v[i].start <= start && e->v[i].end >= end;
}

/* Join the two neighbours with the smallest gap between them (count >= 2). */
static void ext_join_closest(fs_extents_t *e)
{
    uint32_t best = 0;
    uint64_t gap = UINT64_MAX;
    for (uint32_t k = 0; k + 1 < e->count; k++) {
        uint64_t g = e->v[k + 1].start - e->v[k].end;
        if (g < gap) {
            gap = g;
            best = k;
        }
    }
    e->v[best].end = e->v[best + 1].end;
    memmove(&e->v[best + 1], &e->v[best + 2], (e->count - best - 2) * sizeof *e->v);
    e->count--;
}

/* Room for one more extent: 0, or -ENOMEM with e unchanged. */
static int extents_room(fs_extents_t *e)
{
    if (e->count < e->cap)
        return 0;
    uint32_t cap = e->cap ? 2 * e->cap : 4;
    fs_extent_t *v = realloc(e->v, cap * sizeof *v);
    if (!v)
        return -ENOMEM;
    e->v = v;
    e->cap = cap;
    return 0;
}

int fs_extents_add(fs_extents_t *e, uint64_t start, uint64_t end)
{
    assert(start < end);
    /* Room first, so a failure leaves e as it was. */
    if (extents_room(e) < 0)
        return -ENOMEM;
    /* Extents [i, j) overlap or touch [start, end) and merge with it. */
    uint32_t i = start > 0 ? ext_first_after(e, start - 1) : 0;
    uint32_t j = i;
    while (j < e->count && e->v[j].start <= end)
        j++;
    if (i < j) {
        if (e->v[i].start < start)
            start = e->v[i].start;
        if (e->v[j - 1].end > end)
            end = e->v[j - 1].end;
        e->v[i] = (fs_extent_t){start, end};
        memmove(&e->v[i + 1], &e->v[j], (e->count - j) * sizeof *e->v);
        e->count -= j - i - 1;
    } else {
        memmove(&e->v[i + 1], &e->v[i], (e->count - i) * sizeof *e->v);
        e->v[i] = (fs_extent_t){start, end};
        e->count++;
    }
    if (e->count > FS_EXTENTS_MAX)
        ext_join_closest(e);
    return 0;
}

int fs_extents_union(fs_extents_t *e, const fs_extents_t *other)
{
    for (uint32_t k = 0; k < other->count; k++) {
        int rc = fs_extents_add(e, other->v[k].start, other->v[k].end);
        if (rc < 0)
            return rc;
    }
    return 0;
}

void fs_extents_truncate(fs_extents_t *e, uint64_t end)
{
    uint32_t i = ext_first_after(e, end);
    /* Extents before i end at or before `end`; v[i] may straddle it. */
    if (i < e->count && e->v[i].start < end) {
        e->v[i].end = end;
        i++;
    }
    e->count = i;
}

uint64_t fs_extents_run_to(const fs_extents_t *e, uint64_t index)
{
    if (index == 0)
        return 0;
    uint32_t i = ext_first_after(e, index - 1);
    if (i == e->count || e->v[i].start > index - 1)
        return 0;
    return index - e->v[i].start;
}

uint64_t fs_extents_total(const fs_extents_t *e, uint64_t below)
{
    uint64_t total = 0;
    for (uint32_t k = 0; k < e->count && e->v[k].start < below; k++)
        total += (e->v[k].end < below ? e->v[k].end : below) - e->v[k].start;
    return total;
}

int fs_extents_remove(fs_extents_t *e, uint64_t start, uint64_t end)
{
    assert(start < end);
    uint32_t i = ext_first_after(e, start);
    if (i == e->count || e->v[i].start >= end)
        return 0; /* nothing listed in the range */
    if (e->v[i].start < start && e->v[i].end > end) {
        /* The range lies strictly inside one extent: it splits in two. */
        if (extents_room(e) < 0)
            return -ENOMEM;
        memmove(&e->v[i + 1], &e->v[i], (e->count - i) * sizeof *e->v);
        e->count++;
        e->v[i].end = start;
        e->v[i + 1].start = end;
        return 0;
    }
    /* Otherwise extents [i, j) lose their part in the range; those wholly inside vanish. */
    if (e->v[i].start < start) {
        e->v[i].end = start;
        i++;
    }
    uint32_t j = i;
    while (j < e->count && e->v[j].end <= end)
        j++;
    if (j < e->count && e->v[j].start < end)
        e->v[j].start = end;
    memmove(&e->v[i], &e->v[j], (e->count - j) * sizeof *e->v);
    e->count -= j - i;
    /* Shrinking keeps the set at or under FS_EXTENTS_MAX except for the one split above. */
    return 0;
}

/* Canonical: sorted, non-empty, neither overlapping nor touching, bounded. */
static bool ext_valid(const fs_extents_t *e)
{
    if (e->count > FS_EXTENTS_MAX || (e->count && !e->v))
        return false;
    for (uint32_t k = 0; k < e->count; k++) {
        if (e->v[k].start >= e->v[k].end)
            return false;
        if (k > 0 && e->v[k].start <= e->v[k - 1].end)
            return false;
    }
    return true;
}

/* count, then per extent (gap after the previous end, or start; length) */
static size_t ext_encoded_size(const fs_extents_t *e)
{
    size_t n = varint_len(e->count);
    uint64_t prev = 0;
    for (uint32_t k = 0; k < e->count; k++) {
        n += varint_len(e->v[k].start - prev) + varint_len(e->v[k].end - e->v[k].start);
        prev = e->v[k].end;
    }
    return n;
}

static uint8_t *ext_encode(uint8_t *p, const fs_extents_t *e)
{
    p = put_varint(p, e->count);
    uint64_t prev = 0;
    for (uint32_t k = 0; k < e->count; k++) {
        p = put_varint(p, e->v[k].start - prev);
        p = put_varint(p, e->v[k].end - e->v[k].start);
        prev = e->v[k].end;
    }
    return p;
}

static int ext_decode(rcur_t *r, fs_extents_t *out)
{
    uint64_t count = get_varint(r);
    /* Each extent takes at least 2 bytes: bound the count before allocating. */
    if (r->bad || count > FS_EXTENTS_MAX || count > left_bytes(r) / 2)
        return -EBADMSG;
    if (count == 0)
        return 0;
    out->v = malloc(count * sizeof *out->v);
    if (!out->v)
        return -ENOMEM;
    out->cap = (uint32_t)count;
    uint64_t prev = 0;
    for (uint32_t k = 0; k < count; k++) {
        uint64_t gap = get_varint(r);
        uint64_t len = get_varint(r);
        if (r->bad || len == 0 || (k > 0 && gap == 0) || gap > UINT64_MAX - prev ||
            len > UINT64_MAX - prev - gap)
            return -EBADMSG;
        out->v[k].start = prev + gap;
        out->v[k].end = prev = prev + gap + len;
        out->count = k + 1;
    }
    return 0;
}

/* ---- inode record ---- */

/* Zero bytes of value still get a real allocation so callers may memcpy it. */
static uint8_t *dup_bytes(const void *src, size_t n, size_t extra)
{
    uint8_t *p = malloc(n + extra ? n + extra : 1);
    if (!p)
        return NULL;
    if (n)
        memcpy(p, src, n);
    memset(p + n, 0, extra);
    return p;
}

static uint64_t xattr_total(const fs_inode_t *in)
{
    uint64_t total = 0;
    for (uint32_t i = 0; i < in->nxattrs; i++)
        total += strlen((const char *)in->xattrs[i].name) + in->xattrs[i].value_len;
    return total;
}

/* What the decoder would refuse; see the invariants at the top. */
static bool inode_encodable(const fs_inode_t *in)
{
    if (in->target && strlen(in->target) > FS_SYMLINK_MAX)
        return false;
    if (in->nxattrs && !in->xattrs)
        return false;
    const char *prev = NULL;
    for (uint32_t i = 0; i < in->nxattrs; i++) {
        const fs_xattr_t *x = &in->xattrs[i];
        const char *name = (const char *)x->name;
        if (!name || name[0] == '\0' || strlen(name) > FS_NAME_MAX)
            return false;
        if (x->value_len && !x->value)
            return false;
        if (prev && strcmp(prev, name) >= 0)
            return false;
        prev = name;
    }
    if (in->data_len > FS_INLINE_MAX || (in->data_len && !in->data) ||
        (in->data_len && !(in->flags & FS_INODE_INLINE)) || in->data_len > in->size)
        return false;
    if (in->ext_unknown || !ext_valid(&in->ext))
        return false;
    return xattr_total(in) <= FS_XATTR_TOTAL_MAX;
}

size_t fs_inode_encoded_size(const fs_inode_t *in)
{
    size_t n = INODE_FIXED_LEN + 2 + (in->target ? strlen(in->target) : 0) + 4;
    for (uint32_t i = 0; i < in->nxattrs; i++)
        n += 1 + strlen((const char *)in->xattrs[i].name) + 4 + in->xattrs[i].value_len;
    return n + 4 + in->data_len + ext_encoded_size(&in->ext);
}

/*
 * An empty target is stored as no target: Linux cannot create an empty
 * symlink, and one length field then says both "whether" and "how long".
 */
size_t fs_inode_encode(const fs_inode_t *in, uint8_t *buf, size_t cap)
{
    if (!inode_encodable(in))
        return 0;
    size_t need = fs_inode_encoded_size(in);
    if (cap < need)
        return 0;
    uint8_t *p = put_le(buf, FS_INODE_FORMAT, 1);
    p = put_le(p, in->ino, 8);
    p = put_le(p, in->mode, 4);
    p = put_le(p, in->uid, 4);
    p = put_le(p, in->gid, 4);
    p = put_le(p, in->nlink, 4);
    p = put_le(p, in->flags, 4);
    p = put_le(p, in->size, 8);
    p = put_le(p, in->rdev, 8);
    p = put_le(p, in->parent, 8);
    p = put_le(p, (uint64_t)in->atime_s, 8);
    p = put_le(p, (uint64_t)in->mtime_s, 8);
    p = put_le(p, (uint64_t)in->ctime_s, 8);
    p = put_le(p, in->atime_ns, 4);
    p = put_le(p, in->mtime_ns, 4);
    p = put_le(p, in->ctime_ns, 4);
    size_t tlen = in->target ? strlen(in->target) : 0;
    p = put_le(p, tlen, 2);
    p = put_bytes(p, in->target, tlen);
    p = put_le(p, in->nxattrs, 4);
    for (uint32_t i = 0; i < in->nxattrs; i++) {
        const fs_xattr_t *x = &in->xattrs[i];
        size_t nl = strlen((const char *)x->name);
        p = put_le(p, nl, 1);
        p = put_bytes(p, x->name, nl);
        p = put_le(p, x->value_len, 4);
        p = put_bytes(p, x->value, x->value_len);
    }
    p = put_le(p, in->data_len, 4);
    p = put_bytes(p, in->data, in->data_len);
    p = ext_encode(p, &in->ext);
    assert((size_t)(p - buf) == need);
    return need;
}

/* On failure *out is left empty (all zero), so freeing it is always safe. */
int fs_inode_decode(const uint8_t *buf, size_t len, fs_inode_t *out)
{
    int rc = -EBADMSG;
    rcur_t r = {buf, len, 0, false};
    memset(out, 0, sizeof *out);

    uint8_t format = get_u8(&r);
    if (format != FS_INODE_FORMAT && format != FS_INODE_FORMAT_NO_INDEX)
        goto fail;
    out->ino = get_u64(&r);
    out->mode = get_u32(&r);
    out->uid = get_u32(&r);
    out->gid = get_u32(&r);
    out->nlink = get_u32(&r);
    out->flags = get_u32(&r);
    out->size = get_u64(&r);
    out->rdev = get_u64(&r);
    out->parent = get_u64(&r);
    if (format == FS_INODE_FORMAT_NO_INDEX) {
        /* Its chunk count was an estimate for st_blocks: no help in finding chunks. */
        take(&r, INODE_V1_CHUNKS_LEN);
        out->ext_unknown = true;
    }
    out->atime_s = (int64_t)get_u64(&r);
    out->mtime_s = (int64_t)get_u64(&r);
    out->ctime_s = (int64_t)get_u64(&r);
    out->atime_ns = get_u32(&r);
    out->mtime_ns = get_u32(&r);
    out->ctime_ns = get_u32(&r);

    uint16_t tlen = get_u16(&r);
    if (tlen > FS_SYMLINK_MAX)
        goto fail;
    const uint8_t *target = take(&r, tlen);
    if (r.bad)
        goto fail;
    if (tlen) {
        /* The target becomes a C string: an inner NUL would silently cut it. */
        if (memchr(target, 0, tlen))
            goto fail;
        out->target = (char *)dup_bytes(target, tlen, 1);
        if (!out->target)
            goto nomem;
    }

    uint32_t nx = get_u32(&r);
    /* Bound the count by the bytes left before it sizes an allocation. */
    if (r.bad || nx > left_bytes(&r) / XATTR_MIN_LEN)
        goto fail;
    if (nx) {
        out->xattrs = calloc(nx, sizeof *out->xattrs);
        if (!out->xattrs)
            goto nomem;
    }
    uint64_t total = 0;
    const uint8_t *prev = NULL;
    size_t prev_len = 0;
    for (uint32_t i = 0; i < nx; i++) {
        uint8_t nl = get_u8(&r);
        const uint8_t *name = take(&r, nl);
        uint32_t vl = get_u32(&r);
        const uint8_t *value = take(&r, vl);
        if (r.bad || nl == 0 || memchr(name, 0, nl))
            goto fail;
        total += (uint64_t)nl + vl;
        if (total > FS_XATTR_TOTAL_MAX)
            goto fail;
        if (prev && bytes_cmp(prev, prev_len, name, nl) >= 0)
            goto fail;
        prev = name;
        prev_len = nl;
        fs_xattr_t *x = &out->xattrs[i];
        x->name = dup_bytes(name, nl, 1);
        x->value = dup_bytes(value, vl, 0);
        out->nxattrs = i + 1;
        if (!x->name || !x->value)
            goto nomem;
        x->value_len = vl;
    }
    uint32_t dl = get_u32(&r);
    const uint8_t *data = take(&r, dl);
    if (r.bad || dl > FS_INLINE_MAX || dl > out->size || (dl && !(out->flags & FS_INODE_INLINE)))
        goto fail;
    if (dl) {
        out->data = dup_bytes(data, dl, 0);
        if (!out->data)
            goto nomem;
        out->data_len = dl;
    }
    if (format == FS_INODE_FORMAT) {
        int erc = ext_decode(&r, &out->ext);
        if (erc == -ENOMEM)
            goto nomem;
        if (erc < 0)
            goto fail;
    }
    if (r.off != len)
        goto fail;
    return 0;

nomem:
    rc = -ENOMEM;
fail:
    fs_inode_free(out);
    return rc;
}

/* On failure *dst is left empty (all zero). */
int fs_inode_copy(fs_inode_t *dst, const fs_inode_t *src)
{
    *dst = *src;
    dst->target = NULL;
    dst->xattrs = NULL;
    dst->nxattrs = 0;
    dst->data = NULL;
    dst->data_len = 0;
    if (fs_extents_copy(&dst->ext, &src->ext) < 0)
        goto nomem;
    if (src->data_len) {
        dst->data = dup_bytes(src->data, src->data_len, 0);
        if (!dst->data)
            goto nomem;
        dst->data_len = src->data_len;
    }
    if (src->target) {
        dst->target = (char *)dup_bytes(src->target, strlen(src->target), 1);
        if (!dst->target)
            goto nomem;
    }
    if (src->nxattrs) {
        dst->xattrs = calloc(src->nxattrs, sizeof *dst->xattrs);
        if (!dst->xattrs)
            goto nomem;
    }
    for (uint32_t i = 0; i < src->nxattrs; i++) {
        const fs_xattr_t *s = &src->xattrs[i];
        fs_xattr_t *d = &dst->xattrs[i];
        d->name = dup_bytes(s->name, strlen((const char *)s->name), 1);
        d->value = dup_bytes(s->value, s->value_len, 0);
        dst->nxattrs = i + 1;
        if (!d->name || !d->value)
            goto nomem;
        d->value_len = s->value_len;
    }
    return 0;

nomem:
    fs_inode_free(dst);
    return -ENOMEM;
}

void fs_inode_free(fs_inode_t *in)
{
    if (!in)
        return;
    free(in->target);
    for (uint32_t i = 0; i < in->nxattrs; i++) {
        free(in->xattrs[i].name);
        free(in->xattrs[i].value);
    }
    free(in->xattrs);
    free(in->data);
    fs_extents_free(&in->ext);
    memset(in, 0, sizeof *in);
}

/* ---- extended attributes ---- */

/* Binary search; *at is the match or the insertion point. */
static bool xattr_search(const fs_inode_t *in, const char *name, uint32_t *at)
{
    uint32_t lo = 0, hi = in->nxattrs;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = strcmp((const char *)in->xattrs[mid].name, name);
        if (c == 0) {
            *at = mid;
            return true;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *at = lo;
    return false;
}

const fs_xattr_t *fs_xattr_find(const fs_inode_t *in, const char *name)
{
    uint32_t at;
    return xattr_search(in, name, &at) ? &in->xattrs[at] : NULL;
}

/*
 * Names that are empty or longer than FS_NAME_MAX give -ERANGE, as
 * setxattr(2) does. The limit counts name and value bytes of every xattr;
 * a replaced value's old bytes are not counted against the new one.
 * Nothing changes on failure.
 */
int fs_xattr_set(fs_inode_t *in, const char *name, const void *value, size_t len)
{
    size_t nl = strlen(name);
    if (nl == 0 || nl > FS_NAME_MAX)
        return -ERANGE;
    uint32_t at;
    bool found = xattr_search(in, name, &at);
    uint64_t total = xattr_total(in);
    if (found)
        total -= nl + in->xattrs[at].value_len;
    if (len > FS_XATTR_TOTAL_MAX || total + nl + len > FS_XATTR_TOTAL_MAX)
        return -ENOSPC;

    uint8_t *v = dup_bytes(value, len, 0);
    if (!v)
        return -ENOMEM;
    if (found) {
        free(in->xattrs[at].value);
        in->xattrs[at].value = v;
        in->xattrs[at].value_len = (uint32_t)len;
        return 0;
    }
    uint8_t *n = dup_bytes(name, nl, 1);
    fs_xattr_t *xs = n ? realloc(in->xattrs, (in->nxattrs + 1) * sizeof *xs) : NULL;
    if (!xs) {
        free(n);
        free(v);
        return -ENOMEM;
    }
    in->xattrs = xs;
    memmove(&xs[at + 1], &xs[at], (in->nxattrs - at) * sizeof *xs);
    xs[at] = (fs_xattr_t){.name = n, .value = v, .value_len = (uint32_t)len};
    in->nxattrs++;
    return 0;
}

int fs_xattr_remove(fs_inode_t *in, const char *name)
{
    uint32_t at;
    if (!xattr_search(in, name, &at))
        return -ENODATA;
    free(in->xattrs[at].name);
    free(in->xattrs[at].value);
    memmove(&in->xattrs[at], &in->xattrs[at + 1], (in->nxattrs - at - 1) * sizeof *in->xattrs);
    in->nxattrs--;
    if (in->nxattrs == 0) {
        free(in->xattrs);
        in->xattrs = NULL;
    }
    return 0;
}

size_t fs_xattr_list(const fs_inode_t *in, char *buf, size_t cap)
{
    size_t need = 0;
    for (uint32_t i = 0; i < in->nxattrs; i++)
        need += strlen((const char *)in->xattrs[i].name) + 1;
    if (!buf || cap < need)
        return need;
    for (uint32_t i = 0; i < in->nxattrs; i++) {
        size_t n = strlen((const char *)in->xattrs[i].name) + 1;
        memcpy(buf, in->xattrs[i].name, n);
        buf += n;
    }
    return need;
}

/* ---- directory buckets ---- */

/*
 * SipHash-2-4 named explicitly (not crypto_shorthash) because the hash is
 * part of the on-store format; the key is fixed because every client must
 * place a name in the same bucket.
 */
uint64_t fs_name_hash(const char *name, size_t len)
{
    static const unsigned char key[crypto_shorthash_siphash24_KEYBYTES];
    unsigned char out[crypto_shorthash_siphash24_BYTES];
    crypto_shorthash_siphash24(out, (const unsigned char *)name, len, key);
    uint64_t h = 0;
    for (size_t i = 0; i < sizeof out; i++)
        h |= (uint64_t)out[i] << (8 * i);
    /* 62 bits leave room for readdir's three reserved offsets in an off_t. */
    return h >> (64 - FS_HASH_BITS);
}

/* Depths past FS_HASH_BITS are clamped rather than shifting by a negative count. */
uint64_t fs_hash_prefix(uint64_t hash, unsigned depth)
{
    if (depth == 0)
        return 0;
    if (depth >= FS_HASH_BITS)
        return hash;
    return hash >> (FS_HASH_BITS - depth);
}

bool fs_bucket_covers(unsigned depth, uint64_t prefix, uint64_t hash)
{
    return (hash >> FS_HASH_BITS) == 0 && fs_hash_prefix(hash, depth) == prefix;
}

uint64_t fs_bucket_first_hash(unsigned depth, uint64_t prefix)
{
    if (depth == 0)
        return 0;
    if (depth >= FS_HASH_BITS)
        return prefix;
    return prefix << (FS_HASH_BITS - depth);
}

void fs_bucket_init(fs_bucket_t *b, unsigned depth, uint64_t prefix)
{
    *b = (fs_bucket_t){.state = FS_BUCKET_NORMAL, .depth = depth, .prefix = prefix};
}

void fs_bucket_free(fs_bucket_t *b)
{
    if (!b)
        return;
    free(b->ents);
    memset(b, 0, sizeof *b);
}

static bool name_ok(const char *name, size_t len)
{
    return len >= 1 && len <= FS_NAME_MAX && !memchr(name, '/', len) && !memchr(name, '\0', len);
}

static int ent_cmp(const fs_dirent_t *e, uint64_t hash, const char *name, size_t len)
{
    if (e->hash != hash)
        return e->hash < hash ? -1 : 1;
    return bytes_cmp(e->name, e->name_len, name, len);
}

/* Binary search on (hash, name); *at is the match or the insertion point. */
static bool ent_search(const fs_bucket_t *b, uint64_t hash, const char *name, size_t len,
                       size_t *at)
{
    size_t lo = 0, hi = b->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = ent_cmp(&b->ents[mid], hash, name, len);
        if (c == 0) {
            *at = mid;
            return true;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *at = lo;
    return false;
}

/*
 * A SPLIT bucket is empty by definition and immutable, so its record is the
 * two header bytes with no count: there are many of them and they are
 * cached forever.
 */
size_t fs_bucket_encoded_size(const fs_bucket_t *b)
{
    if (b->state == FS_BUCKET_SPLIT)
        return BUCKET_HEAD_LEN;
    size_t n = BUCKET_HEAD_LEN + 4;
    for (size_t i = 0; i < b->count; i++)
        n += ENTRY_FIXED_LEN + b->ents[i].name_len;
    return n;
}

/*
 * The hash is not stored: it is a pure function of the name, so storing it
 * would add 8 bytes to every entry (a third of a typical one, meaning more
 * splits) and a second source of truth that could disagree with the name.
 * The decoder recomputes it and checks order and prefix against that.
 */
size_t fs_bucket_encode(const fs_bucket_t *b, uint8_t *buf, size_t cap)
{
    if ((unsigned)b->state > FS_BUCKET_DEAD || b->depth > FS_HASH_BITS)
        return 0;
    if ((b->state == FS_BUCKET_SPLIT || b->state == FS_BUCKET_DEAD) ? b->count != 0
                                                                    : b->count > UINT32_MAX)
        return 0;
    for (size_t i = 0; i < b->count; i++) {
        const fs_dirent_t *e = &b->ents[i];
        if (!name_ok(e->name, e->name_len) || !fs_bucket_covers(b->depth, b->prefix, e->hash))
            return 0;
        if (i > 0 && ent_cmp(&b->ents[i - 1], e->hash, e->name, e->name_len) >= 0)
            return 0;
    }
    size_t need = fs_bucket_encoded_size(b);
    if (cap < need)
        return 0;
    uint8_t *p = put_le(buf, FS_FORMAT, 1);
    p = put_le(p, (uint8_t)b->state, 1);
    if (b->state != FS_BUCKET_SPLIT) {
        p = put_le(p, b->count, 4);
        for (size_t i = 0; i < b->count; i++) {
            const fs_dirent_t *e = &b->ents[i];
            p = put_le(p, e->ino, 8);
            p = put_le(p, e->type, 1);
            p = put_le(p, e->name_len, 1);
            p = put_bytes(p, e->name, e->name_len);
        }
    }
    assert((size_t)(p - buf) == need);
    return need;
}

/*
 * On failure *out is an empty bucket at (depth, prefix), safe to free.
 * The name length is one byte, so a name longer than FS_NAME_MAX cannot
 * even be expressed.
 */
int fs_bucket_decode(const uint8_t *buf, size_t len, unsigned depth, uint64_t prefix,
                     fs_bucket_t *out)
{
    int rc = -EBADMSG;
    rcur_t r = {buf, len, 0, false};
    fs_bucket_init(out, depth, prefix);
    if (depth > FS_HASH_BITS || (prefix >> depth) != 0)
        goto fail;

    uint8_t format = get_u8(&r);
    uint8_t state = get_u8(&r);
    if (r.bad || format != FS_FORMAT || state > FS_BUCKET_DEAD)
        goto fail;
    out->state = (fs_bucket_state_t)state;
    if (state == FS_BUCKET_SPLIT) {
        if (r.off != len)
            goto fail;
        return 0;
    }

    uint32_t count = get_u32(&r);
    if (r.bad || count > left_bytes(&r) / ENTRY_MIN_LEN || (state == FS_BUCKET_DEAD && count))
        goto fail;
    if (count) {
        out->ents = malloc(count * sizeof *out->ents);
        if (!out->ents)
            goto nomem;
        out->cap = count;
    }
    for (uint32_t i = 0; i < count; i++) {
        fs_dirent_t *e = &out->ents[i];
        e->ino = get_u64(&r);
        e->type = get_u8(&r);
        e->name_len = get_u8(&r);
        const uint8_t *name = take(&r, e->name_len);
        if (r.bad || !name_ok((const char *)name, e->name_len))
            goto fail;
        memcpy(e->name, name, e->name_len);
        e->name[e->name_len] = '\0';
        e->hash = fs_name_hash(e->name, e->name_len);
        if (!fs_bucket_covers(depth, prefix, e->hash))
            goto fail;
        if (i > 0 && ent_cmp(&out->ents[i - 1], e->hash, e->name, e->name_len) >= 0)
            goto fail;
        out->count = i + 1;
    }
    if (r.off != len)
        goto fail;
    return 0;

nomem:
    rc = -ENOMEM;
fail:
    fs_bucket_free(out);
    fs_bucket_init(out, depth, prefix);
    return rc;
}

int fs_bucket_scan(const uint8_t *buf, size_t len, const char *name, size_t name_len,
                   fs_dirent_t *out)
{
    rcur_t r = {buf, len, 0, false};
    uint8_t format = get_u8(&r);
    uint8_t state = get_u8(&r);
    if (r.bad || format != FS_FORMAT || state > FS_BUCKET_DEAD)
        return -EBADMSG;
    if (state == FS_BUCKET_SPLIT)
        return -EBADMSG;
    uint32_t count = get_u32(&r);
    for (uint32_t i = 0; i < count && !r.bad; i++) {
        uint64_t ino = get_u64(&r);
        uint8_t type = get_u8(&r);
        uint8_t n = get_u8(&r);
        const uint8_t *p = take(&r, n);
        if (!r.bad && n == name_len && memcmp(p, name, n) == 0) {
            out->hash = fs_name_hash(name, name_len);
            out->ino = ino;
            out->type = type;
            out->name_len = n;
            memcpy(out->name, name, n);
            out->name[n] = '\0';
            return 1;
        }
    }
    return r.bad ? -EBADMSG : 0;
}

ssize_t fs_bucket_find(const fs_bucket_t *b, const char *name, size_t len)
{
    size_t at;
    if (len == 0 || len > FS_NAME_MAX)
        return -1;
    return ent_search(b, fs_name_hash(name, len), name, len, &at) ? (ssize_t)at : -1;
}

/*
 * A name whose hash the bucket does not cover is refused (-EINVAL) rather
 * than stored, since the bucket could then no longer be encoded.
 */
int fs_bucket_put(fs_bucket_t *b, const char *name, size_t len, uint64_t ino, uint8_t type)
{
    if (len == 0)
        return -EINVAL;
    if (len > FS_NAME_MAX)
        return -ENAMETOOLONG;
    if (!name_ok(name, len))
        return -EINVAL;
    uint64_t hash = fs_name_hash(name, len);
    if (!fs_bucket_covers(b->depth, b->prefix, hash))
        return -EINVAL;
    size_t at;
    if (ent_search(b, hash, name, len, &at)) {
        b->ents[at].ino = ino;
        b->ents[at].type = type;
        return 0;
    }
    if (b->count == b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 16;
        fs_dirent_t *ents = realloc(b->ents, ncap * sizeof *ents);
        if (!ents)
            return -ENOMEM;
        b->ents = ents;
        b->cap = ncap;
    }
    memmove(&b->ents[at + 1], &b->ents[at], (b->count - at) * sizeof *b->ents);
    fs_dirent_t *e = &b->ents[at];
    e->hash = hash;
    e->ino = ino;
    e->type = type;
    e->name_len = (uint8_t)len;
    memcpy(e->name, name, len);
    e->name[len] = '\0';
    b->count++;
    return 0;
}

int fs_bucket_remove(fs_bucket_t *b, const char *name, size_t len)
{
    ssize_t at = fs_bucket_find(b, name, len);
    if (at < 0)
        return -ENOENT;
    memmove(&b->ents[at], &b->ents[at + 1], (b->count - (size_t)at - 1) * sizeof *b->ents);
    b->count--;
    return 0;
}

bool fs_bucket_full(const fs_bucket_t *b)
{
    return fs_bucket_encoded_size(b) > FS_BUCKET_MAX;
}

static int bucket_take_range(fs_bucket_t *dst, const fs_dirent_t *src, size_t n)
{
    if (n == 0)
        return 0;
    dst->ents = malloc(n * sizeof *dst->ents);
    if (!dst->ents)
        return -ENOMEM;
    memcpy(dst->ents, src, n * sizeof *dst->ents);
    dst->count = dst->cap = n;
    return 0;
}

/*
 * Entries are sorted by hash and the left child covers the lower half of
 * the parent's range, so the split point is one lower_bound and both halves
 * stay sorted. A bucket at FS_HASH_BITS cannot be split: -ENOSPC, the
 * directory cannot take more names of that hash. -ENOMEM otherwise; on
 * failure both children are empty and safe to free.
 */
int fs_bucket_split(const fs_bucket_t *b, fs_bucket_t *left, fs_bucket_t *right)
{
    fs_bucket_init(left, b->depth + 1, b->prefix << 1);
    fs_bucket_init(right, b->depth + 1, (b->prefix << 1) | 1);
    if (b->depth >= FS_HASH_BITS)
        return -ENOSPC;
    size_t mid = fs_bucket_lower_bound(b, fs_bucket_first_hash(right->depth, right->prefix));
    if (bucket_take_range(left, b->ents, mid) < 0 ||
        bucket_take_range(right, b->ents + mid, b->count - mid) < 0) {
        fs_bucket_free(left);
        fs_bucket_free(right);
        fs_bucket_init(left, b->depth + 1, b->prefix << 1);
        fs_bucket_init(right, b->depth + 1, (b->prefix << 1) | 1);
        return -ENOMEM;
    }
    return 0;
}

size_t fs_bucket_lower_bound(const fs_bucket_t *b, uint64_t h)
{
    size_t lo = 0, hi = b->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (b->ents[mid].hash < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* ---- chunks ---- */

/*
 * chunk_size is a validated fs_super_t value; zero would divide by zero,
 * and a zero-length span would make the caller's loop spin forever.
 */
fs_span_t fs_chunk_span(uint64_t off, uint64_t len, uint32_t chunk_size)
{
    assert(chunk_size != 0);
    uint32_t in = (uint32_t)(off % chunk_size);
    uint32_t room = chunk_size - in;
    return (fs_span_t){
        .index = off / chunk_size,
        .offset = in,
        .len = len < room ? (uint32_t)len : room,
    };
}

/* Not (size + cs - 1) / cs: that wraps for sizes near UINT64_MAX. */
uint64_t fs_chunk_count(uint64_t size, uint32_t chunk_size)
{
    assert(chunk_size != 0);
    return size / chunk_size + (size % chunk_size != 0);
}

/*
 * Growing (new_size >= old_size) drops nothing and rewrites nothing, since
 * chunk bytes past the old size are already zero; the dead range is then
 * empty with *end_dead == *first_dead rather than inverted.
 */
bool fs_chunk_truncate_plan(uint64_t old_size, uint64_t new_size, uint32_t chunk_size,
                            uint64_t *first_dead, uint64_t *end_dead, uint64_t *partial,
                            uint32_t *keep_len)
{
    uint64_t first = fs_chunk_count(new_size, chunk_size);
    uint64_t end = fs_chunk_count(old_size, chunk_size);
    *first_dead = first;
    *end_dead = end > first ? end : first;
    if (new_size < old_size && new_size % chunk_size != 0) {
        *partial = new_size / chunk_size;
        *keep_len = (uint32_t)(new_size % chunk_size);
        return true;
    }
    *partial = 0;
    *keep_len = 0;
    return false;
}

/* Compared by index, never index * chunk_size, which can wrap. */
uint32_t fs_chunk_valid_len(uint64_t size, uint64_t index, uint32_t chunk_size)
{
    assert(chunk_size != 0);
    if (index < size / chunk_size)
        return chunk_size;
    if (index == size / chunk_size)
        return (uint32_t)(size % chunk_size);
    return 0;
}

void fs_chunk_punch_plan(uint64_t off, uint64_t len, uint64_t size, uint32_t chunk_size,
                         uint64_t *whole_start, uint64_t *whole_end)
{
    assert(chunk_size != 0);
    *whole_start = *whole_end = 0;
    if (len == 0 || off >= size)
        return;
    uint64_t end = len > size - off ? size : off + len; /* clipped, without wrapping */
    uint64_t first = fs_chunk_count(off, chunk_size);   /* first chunk starting at or after off */
    /* Chunks ending at or before `end`, plus the last one when end reaches the size. */
    uint64_t last = end == size ? fs_chunk_count(size, chunk_size) : end / chunk_size;
    if (first < last) {
        *whole_start = first;
        *whole_end = last;
    }
}

int fs_chunk_seek(const fs_extents_t *chunks, uint64_t size, uint32_t chunk_size, uint64_t off,
                  bool data, uint64_t *out)
{
    assert(chunk_size != 0);
    if (off >= size)
        return -ENXIO;
    uint64_t index = off / chunk_size;
    uint32_t i = ext_first_after(chunks, index);
    bool in_data = i < chunks->count && chunks->v[i].start <= index;
    if (data) {
        if (in_data) {
            *out = off;
            return 0;
        }
        if (i == chunks->count)
            return -ENXIO;
        /* The next extent; its start lies past index, so it begins after off. */
        uint64_t start = chunks->v[i].start;
        if (start >= fs_chunk_count(size, chunk_size))
            return -ENXIO; /* listed beyond the end (a reservation): no data there */
        *out = start * chunk_size;
        return 0;
    }
    if (!in_data) {
        *out = off;
        return 0;
    }
    /* Extents never touch, so the one holding index ends at a hole (or the file's end). */
    uint64_t end = chunks->v[i].end;
    *out = end >= fs_chunk_count(size, chunk_size) ? size : end * chunk_size;
    return 0;
}

/* ---- change stamps ---- */

size_t fs_stamps_encoded_size(const fs_stamps_t *s)
{
    return s->count ? 2 + 8 * (size_t)s->count : 0;
}

size_t fs_stamps_encode(const fs_stamps_t *s, uint8_t *buf, size_t cap)
{
    size_t need = fs_stamps_encoded_size(s);
    if (need == 0 || s->count > FS_STAMPS_MAX || cap < need)
        return 0;
    uint8_t *p = put_le(buf, FS_STAMP_FORMAT, 1);
    p = put_le(p, s->count, 1);
    for (uint32_t i = 0; i < s->count; i++)
        p = put_le(p, s->tok[i], 8);
    return need;
}

int fs_stamps_decode(const uint8_t *buf, size_t len, fs_stamps_t *out, size_t *body_off)
{
    memset(out, 0, sizeof(*out));
    *body_off = 0;
    rcur_t r = {buf, len, 0, false};
    if (len == 0 || buf[0] != FS_STAMP_FORMAT)
        return 0; /* a bare record (or garbage its own decoder rejects) */
    get_u8(&r);
    uint32_t count = get_u8(&r);
    if (r.bad || count == 0 || count > FS_STAMPS_MAX)
        return -EBADMSG;
    for (uint32_t i = 0; i < count; i++) {
        out->tok[i] = get_u64(&r);
        if (out->tok[i] == 0)
            r.bad = true;
    }
    /* An envelope around nothing, or around another envelope, is no record. */
    if (r.bad || left_bytes(&r) == 0 || buf[r.off] == FS_STAMP_FORMAT) {
        memset(out, 0, sizeof(*out));
        return -EBADMSG;
    }
    out->count = count;
    *body_off = r.off;
    return 0;
}

void fs_stamps_push(fs_stamps_t *s, uint64_t tok)
{
    uint32_t keep = s->count < FS_STAMPS_MAX ? s->count : FS_STAMPS_MAX - 1;
    memmove(&s->tok[1], &s->tok[0], keep * sizeof(s->tok[0]));
    s->tok[0] = tok;
    s->count = keep + 1;
}

bool fs_stamps_has(const fs_stamps_t *s, uint64_t tok)
{
    for (uint32_t i = 0; i < s->count && i < FS_STAMPS_MAX; i++)
        if (s->tok[i] == tok)
            return true;
    return false;
}
