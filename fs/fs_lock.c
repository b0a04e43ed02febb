/*
 * fs_lock.c — conflicts, range arithmetic and the codec of a file's lock
 * record (see fs_lock.h and docs/PROTOCOL.md for the bytes).
 *
 * Pure: the record comes in, a decision or a new record goes out. The
 * caller writes the result with compare-and-set on the version it read,
 * so nothing here has to think about other mounts changing the record
 * meanwhile: a lost race is retried from a fresh read.
 *
 * Invariant kept by fs_lock_apply and checked by the decoder: one owner's
 * entries of one kind never overlap, and an flock entry covers the whole
 * file. Entries of one owner of the same type that touch are merged, so
 * a lock taken byte by byte does not grow the record byte by byte.
 * Applying the same request twice gives the same record: a retry after a
 * lost answer is harmless, which is why no request identity is stored.
 */
#include "fs_lock.h"
#include "fs_layout.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FS_LOCK_FORMAT 1
#define FLAG_FLOCK 1u
#define FLAG_EXCL 2u

static bool same_owner(const fs_lock_ent_t *a, const fs_lock_ent_t *b)
{
    return a->mount == b->mount && a->owner == b->owner && a->kind == b->kind;
}

static bool overlap(uint64_t s1, uint64_t e1, uint64_t s2, uint64_t e2)
{
    return s1 <= e2 && s2 <= e1;
}

/* Overlapping or adjacent (careful: end may be FS_LOCK_EOF, end + 1 wraps). */
static bool touch(const fs_lock_ent_t *a, const fs_lock_ent_t *b)
{
    if (overlap(a->start, a->end, b->start, b->end))
        return true;
    return (a->end != FS_LOCK_EOF && a->end + 1 == b->start) ||
           (b->end != FS_LOCK_EOF && b->end + 1 == a->start);
}

int fs_lock_conflict(const fs_lock_rec_t *r, const fs_lock_ent_t *want)
{
    for (size_t i = 0; i < r->count; i++) {
        const fs_lock_ent_t *e = &r->ent[i];
        if (same_owner(e, want) || e->kind != want->kind)
            continue;
        if ((e->excl || want->excl) && overlap(e->start, e->end, want->start, want->end))
            return (int)i;
    }
    return -1;
}

static int cmp_start(const void *a, const void *b)
{
    const fs_lock_ent_t *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static bool ent_eq(const fs_lock_ent_t *a, const fs_lock_ent_t *b)
{
    return a->mount == b->mount && a->owner == b->owner && a->pid == b->pid && a->kind == b->kind &&
           a->excl == b->excl && a->start == b->start && a->end == b->end;
}

int fs_lock_apply(fs_lock_rec_t *r, const fs_lock_ent_t *want, bool unlock, bool *changed)
{
    if (changed)
        *changed = false;
    if (want->start > want->end)
        return -EINVAL;
    /* The owner's entries before (old) and after (mine); at most one split adds one. */
    fs_lock_ent_t *old = malloc(sizeof(fs_lock_ent_t) * (FS_LOCK_MAX + 2) * 2);
    if (!old)
        return -ENOMEM;
    fs_lock_ent_t *mine = old + FS_LOCK_MAX + 2;
    size_t nold = 0, nmine = 0, others = 0;
    for (size_t i = 0; i < r->count; i++) {
        if (same_owner(&r->ent[i], want))
            old[nold++] = r->ent[i];
        else
            others++;
    }
    for (size_t i = 0; i < nold; i++) {
        fs_lock_ent_t e = old[i];
        if (!overlap(e.start, e.end, want->start, want->end)) {
            mine[nmine++] = e;
            continue;
        }
        /* Keep what lies outside want's range: a left piece, a right piece, or both (a split). */
        if (e.start < want->start) {
            fs_lock_ent_t l = e;
            l.end = want->start - 1;
            mine[nmine++] = l;
        }
        if (e.end > want->end) {
            fs_lock_ent_t rt = e;
            rt.start = want->end + 1;
            mine[nmine++] = rt;
        }
    }
    if (!unlock) {
        fs_lock_ent_t n = *want;
        /* Merge with the owner's touching entries of the same type (they now lie outside n). */
        size_t k = 0;
        for (size_t i = 0; i < nmine; i++) {
            if (mine[i].excl == n.excl && touch(&mine[i], &n)) {
                if (mine[i].start < n.start)
                    n.start = mine[i].start;
                if (mine[i].end > n.end)
                    n.end = mine[i].end;
            } else {
                mine[k++] = mine[i];
            }
        }
        nmine = k;
        mine[nmine++] = n;
    }
    qsort(old, nold, sizeof(*old), cmp_start);
    qsort(mine, nmine, sizeof(*mine), cmp_start);
    bool same = nold == nmine;
    for (size_t i = 0; same && i < nold; i++)
        same = ent_eq(&old[i], &mine[i]);
    int rc = 0;
    if (same) {
        /* nothing to write */
    } else if (others + nmine > FS_LOCK_MAX) {
        rc = -ENOLCK;
    } else {
        size_t k = 0;
        for (size_t i = 0; i < r->count; i++)
            if (!same_owner(&r->ent[i], want))
                r->ent[k++] = r->ent[i];
        memcpy(&r->ent[k], mine, nmine * sizeof(*mine));
        r->count = k + nmine;
        if (changed)
            *changed = true;
    }
    free(old);
    return rc;
}

size_t fs_lock_drop_owner(fs_lock_rec_t *r, uint64_t mount, uint64_t owner, fs_lock_kind_t kind)
{
    size_t k = 0, dropped = 0;
    for (size_t i = 0; i < r->count; i++) {
        const fs_lock_ent_t *e = &r->ent[i];
        if (e->mount == mount && e->owner == owner && e->kind == kind)
            dropped++;
        else
            r->ent[k++] = *e;
    }
    r->count = k;
    return dropped;
}

size_t fs_lock_drop_mount(fs_lock_rec_t *r, uint64_t mount)
{
    size_t k = 0, dropped = 0;
    for (size_t i = 0; i < r->count; i++) {
        if (r->ent[i].mount == mount)
            dropped++;
        else
            r->ent[k++] = r->ent[i];
    }
    r->count = k;
    return dropped;
}

size_t fs_lock_count_mount(const fs_lock_rec_t *r, uint64_t mount)
{
    size_t n = 0;
    for (size_t i = 0; i < r->count; i++)
        n += r->ent[i].mount == mount;
    return n;
}

/* ---- keys ---- */

static size_t key_fmt(char *buf, const char *vol, const char *what, uint64_t id)
{
    int n =
        fs_volume_name_ok(vol) ? snprintf(buf, FS_KEY_MAX, "v/%s/%s/%" PRIx64, vol, what, id) : -1;
    if (n < 0 || n >= FS_KEY_MAX) {
        buf[0] = '\0';
        return 0;
    }
    return (size_t)n;
}

size_t fs_lock_key(char *buf, const char *vol, uint64_t ino)
{
    return key_fmt(buf, vol, "lock", ino);
}

size_t fs_lock_key_mount(char *buf, const char *vol, uint64_t mount)
{
    return key_fmt(buf, vol, "mount", mount);
}

/* ---- codec ---- */

static bool ent_ok(const fs_lock_ent_t *e)
{
    if (e->mount == 0 || e->start > e->end || e->kind > FS_LOCK_FLOCK)
        return false;
    return e->kind != FS_LOCK_FLOCK || (e->start == 0 && e->end == FS_LOCK_EOF);
}

/* The record's invariants: valid entries, one owner's entries of one kind disjoint. */
static bool rec_ok(const fs_lock_rec_t *r)
{
    if (r->count > FS_LOCK_MAX)
        return false;
    for (size_t i = 0; i < r->count; i++) {
        if (!ent_ok(&r->ent[i]))
            return false;
        for (size_t j = i + 1; j < r->count; j++)
            if (same_owner(&r->ent[i], &r->ent[j]) &&
                overlap(r->ent[i].start, r->ent[i].end, r->ent[j].start, r->ent[j].end))
                return false;
    }
    return true;
}

static uint8_t *put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        *p++ = (uint8_t)(v >> (8 * i));
    return p;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

size_t fs_lock_encode(const fs_lock_rec_t *r, uint8_t *buf, size_t cap)
{
    size_t need = FS_LOCK_HEAD_LEN + r->count * FS_LOCK_ENT_LEN;
    if (!rec_ok(r) || cap < need)
        return 0;
    uint8_t *p = buf;
    *p++ = FS_LOCK_FORMAT;
    *p++ = (uint8_t)r->count;
    *p++ = (uint8_t)(r->count >> 8);
    for (size_t i = 0; i < r->count; i++) {
        const fs_lock_ent_t *e = &r->ent[i];
        p = put_u64(p, e->mount);
        p = put_u64(p, e->owner);
        for (int b = 0; b < 4; b++)
            *p++ = (uint8_t)(e->pid >> (8 * b));
        *p++ = (uint8_t)((e->kind == FS_LOCK_FLOCK ? FLAG_FLOCK : 0) | (e->excl ? FLAG_EXCL : 0));
        p = put_u64(p, e->start);
        p = put_u64(p, e->end);
    }
    return (size_t)(p - buf);
}

int fs_lock_decode(const uint8_t *buf, size_t len, fs_lock_rec_t *r)
{
    r->count = 0;
    if (len < FS_LOCK_HEAD_LEN || buf[0] != FS_LOCK_FORMAT)
        return -EBADMSG;
    size_t count = (size_t)buf[1] | (size_t)buf[2] << 8;
    if (count > FS_LOCK_MAX || len != FS_LOCK_HEAD_LEN + count * FS_LOCK_ENT_LEN)
        return -EBADMSG;
    const uint8_t *p = buf + FS_LOCK_HEAD_LEN;
    for (size_t i = 0; i < count; i++, p += FS_LOCK_ENT_LEN) {
        fs_lock_ent_t *e = &r->ent[i];
        uint8_t flags = p[20];
        if (flags & ~(FLAG_FLOCK | FLAG_EXCL))
            return -EBADMSG;
        e->mount = get_u64(p);
        e->owner = get_u64(p + 8);
        e->pid =
            (uint32_t)p[16] | (uint32_t)p[17] << 8 | (uint32_t)p[18] << 16 | (uint32_t)p[19] << 24;
        e->kind = (flags & FLAG_FLOCK) ? FS_LOCK_FLOCK : FS_LOCK_POSIX;
        e->excl = (flags & FLAG_EXCL) != 0;
        e->start = get_u64(p + 21);
        e->end = get_u64(p + 29);
    }
    r->count = count;
    if (!rec_ok(r)) {
        r->count = 0;
        return -EBADMSG;
    }
    return 0;
}

bool fs_lock_lease_lapsed(uint64_t now_ms, uint64_t renewed_ms, unsigned lease_ms)
{
    uint64_t margin = lease_ms / 8;
    return now_ms >= renewed_ms && now_ms - renewed_ms >= (uint64_t)lease_ms - margin;
}

bool fs_lock_entries_lost(const fs_lock_rec_t *r, uint64_t mount, size_t held)
{
    return held > 0 && fs_lock_count_mount(r, mount) == 0;
}
