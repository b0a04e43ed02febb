/*
 * ring_members.c — the member table: a sorted array of entries, merged by
 * incarnation, with a lazily recomputed epoch.
 *
 * Invariants: entries sorted by id, ids distinct, every entry valid for the
 * table's m, the own entry always present (it is never evicted or replaced
 * from outside), count <= cap. Inserting is O(count) (a memmove); that is
 * fine for tables that change when nodes join or leave, not per request.
 * Does not: decide who is failed (crashes leave the table as it is), talk
 * to peers, or compute placement (ring_place does, from these entries).
 */
#include "ring_members.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

struct ring_members {
    unsigned m;
    size_t cap, count;
    ring_id_t self;
    bool epoch_valid;
    uint64_t epoch;
    ring_member_t *e; /* cap entries, count used, sorted by id */
};

bool ring_members_zone_valid(const char *zone)
{
    if (!zone)
        return false;
    size_t len = strnlen(zone, RING_MEMBERS_ZONE_MAX);
    if (len >= RING_MEMBERS_ZONE_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = zone[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

uint32_t ring_members_zone_hash(const char *zone)
{
    if (!zone || !*zone)
        return 0;
    uint8_t h[8];
    crypto_generichash(h, sizeof h, (const uint8_t *)zone, strlen(zone), NULL, 0);
    uint32_t v = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
    return v ? v : 1;
}

const char *ring_members_state_name(uint8_t state)
{
    switch (state) {
    case RING_MEMBER_JOINING:
        return "joining";
    case RING_MEMBER_UP:
        return "up";
    case RING_MEMBER_LEAVING:
        return "leaving";
    case RING_MEMBER_LEFT:
        return "left";
    default:
        return "?";
    }
}

bool ring_members_entry_valid(const ring_member_t *e, unsigned m)
{
    if (!e || !ring_bits_valid(m) || (e->id & ~ring_mask(m)) != 0)
        return false;
    size_t len = strnlen(e->addr, ENDPOINT_MAX);
    if (len == 0 || len >= ENDPOINT_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((uint8_t)e->addr[i] < 0x21 || (uint8_t)e->addr[i] > 0x7e)
            return false;
    return e->weight >= 1 && e->weight <= RING_MEMBERS_WEIGHT_MAX &&
           ring_members_zone_valid(e->zone) && e->state <= RING_MEMBER_STATE_MAX &&
           e->incarnation < RING_MEMBERS_INCARNATION_LIMIT;
}

/* The entry as hashed and compared: every field but zone_hash, fixed order. */
static size_t canon(const ring_member_t *e, uint8_t *out)
{
    size_t k = 0;
    for (int s = 56; s >= 0; s -= 8)
        out[k++] = (uint8_t)(e->id >> s);
    size_t alen = strnlen(e->addr, ENDPOINT_MAX - 1);
    out[k++] = (uint8_t)alen;
    memcpy(out + k, e->addr, alen);
    k += alen;
    for (int s = 24; s >= 0; s -= 8)
        out[k++] = (uint8_t)(e->weight >> s);
    size_t zlen = strnlen(e->zone, RING_MEMBERS_ZONE_MAX - 1);
    out[k++] = (uint8_t)zlen;
    memcpy(out + k, e->zone, zlen);
    k += zlen;
    out[k++] = e->state;
    for (int s = 56; s >= 0; s -= 8)
        out[k++] = (uint8_t)(e->incarnation >> s);
    return k;
}

enum { CANON_MAX = 8 + 1 + ENDPOINT_MAX + 4 + 1 + RING_MEMBERS_ZONE_MAX + 1 + 8 };

/* >0 when a should win over b (same id), <0 when b should, 0 when equal. */
static int newer(const ring_member_t *a, const ring_member_t *b)
{
    if (a->incarnation != b->incarnation)
        return a->incarnation > b->incarnation ? 1 : -1;
    if (a->state != b->state)
        return a->state > b->state ? 1 : -1;
    uint8_t ca[CANON_MAX], cb[CANON_MAX];
    size_t la = canon(a, ca), lb = canon(b, cb);
    int c = memcmp(ca, cb, la < lb ? la : lb);
    if (c != 0)
        return c > 0 ? 1 : -1;
    return la == lb ? 0 : la > lb ? 1 : -1;
}

/* Index of id, or of where it would go (*found says which). */
static size_t locate(const ring_members_t *t, ring_id_t id, bool *found)
{
    size_t lo = 0, hi = t->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->e[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < t->count && t->e[lo].id == id;
    return lo;
}

static void put_entry(ring_member_t *dst, const ring_member_t *src)
{
    *dst = *src;
    dst->addr[ENDPOINT_MAX - 1] = '\0';
    dst->zone[RING_MEMBERS_ZONE_MAX - 1] = '\0';
    dst->zone_hash = ring_members_zone_hash(dst->zone);
}

int ring_members_new(const ring_member_t *self, unsigned m, size_t cap, ring_members_t **out)
{
    *out = NULL;
    if (!ring_members_entry_valid(self, m))
        return -EINVAL;
    if (cap == 0)
        cap = RING_MEMBERS_CAP_DEFAULT;
    ring_members_t *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->e = calloc(cap, sizeof *t->e);
    if (!t->e) {
        free(t);
        return -ENOMEM;
    }
    t->m = m;
    t->cap = cap;
    t->self = self->id;
    t->count = 1;
    put_entry(&t->e[0], self);
    *out = t;
    return 0;
}

void ring_members_destroy(ring_members_t **pt)
{
    if (!pt || !*pt)
        return;
    free((*pt)->e);
    free(*pt);
    *pt = NULL;
}

static void remove_at(ring_members_t *t, size_t i)
{
    memmove(&t->e[i], &t->e[i + 1], (t->count - i - 1) * sizeof *t->e);
    t->count--;
}

/* Drop the oldest left entry (never our own) to make room; false if none. */
static bool evict_left(ring_members_t *t)
{
    size_t victim = t->count;
    for (size_t i = 0; i < t->count; i++)
        if (t->e[i].state == RING_MEMBER_LEFT && t->e[i].id != t->self &&
            (victim == t->count || t->e[i].incarnation < t->e[victim].incarnation))
            victim = i;
    if (victim == t->count)
        return false;
    remove_at(t, victim);
    return true;
}

int ring_members_merge(ring_members_t *t, const ring_member_t *e)
{
    if (!ring_members_entry_valid(e, t->m))
        return -EINVAL;
    bool found;
    size_t i = locate(t, e->id, &found);
    if (e->id == t->self) {
        /* Our own entry wins: refute a copy that claims to be as new or newer. */
        if (e->incarnation < t->e[i].incarnation || newer(e, &t->e[i]) == 0)
            return 0;
        t->e[i].incarnation = e->incarnation + 1;
        t->epoch_valid = false;
        return 1;
    }
    if (found) {
        if (newer(e, &t->e[i]) <= 0)
            return 0;
        put_entry(&t->e[i], e);
        t->epoch_valid = false;
        return 1;
    }
    if (t->count == t->cap) {
        if (!evict_left(t))
            return -ENOSPC;
        i = locate(t, e->id, &found);
    }
    memmove(&t->e[i + 1], &t->e[i], (t->count - i) * sizeof *t->e);
    put_entry(&t->e[i], e);
    t->count++;
    t->epoch_valid = false;
    return 1;
}

int ring_members_set_self_state(ring_members_t *t, uint8_t state)
{
    if (state > RING_MEMBER_STATE_MAX)
        return -EINVAL;
    bool found;
    size_t i = locate(t, t->self, &found);
    t->e[i].state = state;
    t->e[i].incarnation++;
    t->epoch_valid = false;
    return 0;
}

int ring_members_mark_left(ring_members_t *t, ring_id_t id)
{
    bool found;
    size_t i = locate(t, id, &found);
    if (!found || id == t->self || t->e[i].state == RING_MEMBER_LEFT)
        return 0;
    t->e[i].state = RING_MEMBER_LEFT;
    t->e[i].incarnation++;
    t->epoch_valid = false;
    return 1;
}

const ring_member_t *ring_members_self(const ring_members_t *t)
{
    return ring_members_find(t, t->self);
}

size_t ring_members_count(const ring_members_t *t)
{
    return t->count;
}

const ring_member_t *ring_members_at(const ring_members_t *t, size_t i)
{
    return i < t->count ? &t->e[i] : NULL;
}

const ring_member_t *ring_members_find(const ring_members_t *t, ring_id_t id)
{
    bool found;
    size_t i = locate(t, id, &found);
    return found ? &t->e[i] : NULL;
}

size_t ring_members_index_after(const ring_members_t *t, bool from_start, ring_id_t after)
{
    if (from_start)
        return 0;
    bool found;
    size_t i = locate(t, after, &found);
    return found ? i + 1 : i;
}

uint64_t ring_members_epoch(ring_members_t *t)
{
    if (t->epoch_valid)
        return t->epoch;
    crypto_generichash_state st;
    uint8_t h[8];
    crypto_generichash_init(&st, NULL, 0, sizeof h);
    for (size_t i = 0; i < t->count; i++) {
        uint8_t c[CANON_MAX];
        size_t len = canon(&t->e[i], c);
        crypto_generichash_update(&st, c, len);
    }
    crypto_generichash_final(&st, h, sizeof h);
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | h[i];
    t->epoch = v;
    t->epoch_valid = true;
    return v;
}
