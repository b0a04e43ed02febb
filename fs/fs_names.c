/*
 * fs_names.c — the names the kernel may still trust, per directory.
 *
 * A ring of slots in the order names were handed out, and a map from
 * (directory, name hash) to the slot, so that a name handed out again
 * (SQLite asks for its journal before every transaction) takes one slot,
 * not one per answer. Slots are never searched on the answer path: noting
 * a name is a map lookup and a copy. Listing one directory's names walks
 * the ring (cap slots): that happens only when a lock is granted.
 *
 * Pushed-out names: the oldest slot is reused when the ring is full; if
 * its name was still trusted the table no longer knows every name of that
 * directory, so fs_names_each reports until when. A few directories are
 * remembered that way; beyond them, every directory is incomplete until
 * the latest such expiry (never wrong, only slower).
 */
#include "fs_names.h"
#include "fs_layout.h"
#include "fs_map.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define LOST_DIRS 16
#define CHECKED_DIRS 64

typedef struct {
    uint64_t dir, hash, expiry;
    bool used;
    uint8_t len;
    char name[FS_NAME_MAX];
} slot_t;

struct fs_names {
    slot_t *slots;
    size_t cap, next; /* next: the slot to fill (the oldest when the ring is full) */
    fs_map_t *index;  /* (dir, hash) → slot index + 1 */
    struct {
        uint64_t dir, until;
    } lost[LOST_DIRS];
    uint64_t lost_all_until; /* every directory incomplete until then */
    struct {
        uint64_t dir, at;
    } checked[CHECKED_DIRS];
    uint64_t checked_all; /* the latest check pushed out: counts for every directory */
    bool checked_any;
};

fs_names_t *fs_names_new(size_t cap)
{
    fs_names_t *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->cap = cap ? cap : 1;
    t->slots = calloc(t->cap, sizeof(*t->slots));
    t->index = fs_map_new();
    if (!t->slots || !t->index) {
        fs_names_destroy(&t);
        return NULL;
    }
    return t;
}

void fs_names_destroy(fs_names_t **t)
{
    if (!t || !*t)
        return;
    free((*t)->slots);
    fs_map_destroy(&(*t)->index);
    free(*t);
    *t = NULL;
}

static void mark_lost(fs_names_t *t, uint64_t dir, uint64_t until, uint64_t now_ms)
{
    size_t free_i = LOST_DIRS;
    for (size_t i = 0; i < LOST_DIRS; i++) {
        if (t->lost[i].until > now_ms && t->lost[i].dir == dir) {
            if (t->lost[i].until < until)
                t->lost[i].until = until;
            return;
        }
        if (t->lost[i].until <= now_ms && free_i == LOST_DIRS)
            free_i = i;
    }
    if (free_i < LOST_DIRS) {
        t->lost[free_i].dir = dir;
        t->lost[free_i].until = until;
    } else if (t->lost_all_until < until) {
        t->lost_all_until = until;
    }
}

static void slot_clear(fs_names_t *t, size_t i, uint64_t now_ms)
{
    slot_t *s = &t->slots[i];
    if (!s->used)
        return;
    if ((uintptr_t)fs_map_get(t->index, s->dir, s->hash) == i + 1)
        fs_map_remove(t->index, s->dir, s->hash);
    s->used = false;
    if (s->expiry > now_ms)
        mark_lost(t, s->dir, s->expiry, now_ms);
}

void fs_names_note(fs_names_t *t, uint64_t dir, const char *name, size_t len, uint64_t now_ms,
                   uint64_t ttl_ms)
{
    if (len == 0 || len > FS_NAME_MAX || ttl_ms == 0)
        return; /* nothing the kernel will trust */
    uint64_t hash = fs_name_hash(name, len);
    uintptr_t at = (uintptr_t)fs_map_get(t->index, dir, hash);
    if (at) {
        slot_t *s = &t->slots[at - 1];
        if (s->len == len && memcmp(s->name, name, len) == 0) {
            /* Moved, not refreshed in place: the ring stays in expiry order. */
            fs_map_remove(t->index, dir, hash);
            s->used = false;
        }
    }
    size_t i = t->next;
    slot_clear(t, i, now_ms);
    slot_t *s = &t->slots[i];
    s->dir = dir;
    s->hash = hash;
    s->expiry = now_ms + ttl_ms;
    s->len = (uint8_t)len;
    memcpy(s->name, name, len);
    s->used = true;
    t->next = (i + 1) % t->cap;
    /* Out of memory: the name is only not found for dedup, and takes another slot later. */
    (void)fs_map_put(t->index, dir, hash, (void *)(uintptr_t)(i + 1));
}

uint64_t fs_names_each(const fs_names_t *t, uint64_t dir, uint64_t now_ms,
                       void (*visit)(const char *name, size_t len, void *arg), void *arg)
{
    for (size_t i = 0; i < t->cap; i++) {
        const slot_t *s = &t->slots[i];
        if (s->used && s->dir == dir && s->expiry > now_ms)
            visit(s->name, s->len, arg);
    }
    uint64_t until = t->lost_all_until > now_ms ? t->lost_all_until : 0;
    for (size_t i = 0; i < LOST_DIRS; i++)
        if (t->lost[i].dir == dir && t->lost[i].until > now_ms && t->lost[i].until > until)
            until = t->lost[i].until;
    return until;
}

void fs_names_checked(fs_names_t *t, uint64_t dir, uint64_t now_ms)
{
    t->checked_any = true;
    size_t oldest = 0;
    for (size_t i = 0; i < CHECKED_DIRS; i++) {
        if (t->checked[i].at && t->checked[i].dir == dir) {
            t->checked[i].at = now_ms;
            return;
        }
        if (t->checked[i].at < t->checked[oldest].at)
            oldest = i;
    }
    if (t->checked_all < t->checked[oldest].at)
        t->checked_all = t->checked[oldest].at;
    t->checked[oldest].dir = dir;
    t->checked[oldest].at = now_ms;
}

uint64_t fs_names_checked_at(const fs_names_t *t, uint64_t dir)
{
    if (!t->checked_any)
        return 0; /* no lock was ever granted: the lookup path pays nothing more */
    uint64_t at = t->checked_all;
    for (size_t i = 0; i < CHECKED_DIRS; i++)
        if (t->checked[i].at && t->checked[i].dir == dir && t->checked[i].at > at)
            at = t->checked[i].at;
    return at;
}
