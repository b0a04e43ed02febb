/*
 * fs_map.c — linear probing with backward-shift deletion (no tombstones,
 * so lookups stay short however many removals there were).
 */
#include "fs_map.h"

#include <errno.h>
#include <stdlib.h>

typedef struct {
    uint64_t a, b;
    void *value; /* NULL: empty slot */
} slot_t;

struct fs_map {
    slot_t *slots;
    size_t cap; /* power of two */
    size_t count;
};

static size_t slot_of(const fs_map_t *m, uint64_t a, uint64_t b)
{
    uint64_t h = a * 0x9E3779B97F4A7C15ULL ^ (b + 0x632BE59BD9B4E019ULL) * 0xC2B2AE3D27D4EB4FULL;
    h ^= h >> 29;
    return (size_t)h & (m->cap - 1);
}

fs_map_t *fs_map_new(void)
{
    fs_map_t *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->cap = 64;
    m->slots = calloc(m->cap, sizeof(slot_t));
    if (!m->slots) {
        free(m);
        return NULL;
    }
    return m;
}

void fs_map_destroy(fs_map_t **mp)
{
    if (!*mp)
        return;
    free((*mp)->slots);
    free(*mp);
    *mp = NULL;
}

static slot_t *find(const fs_map_t *m, uint64_t a, uint64_t b)
{
    for (size_t i = slot_of(m, a, b);; i = (i + 1) & (m->cap - 1)) {
        slot_t *s = &m->slots[i];
        if (!s->value)
            return NULL;
        if (s->a == a && s->b == b)
            return s;
    }
}

void *fs_map_get(const fs_map_t *m, uint64_t a, uint64_t b)
{
    slot_t *s = find(m, a, b);
    return s ? s->value : NULL;
}

static int grow(fs_map_t *m)
{
    slot_t *old = m->slots;
    size_t old_cap = m->cap;
    slot_t *slots = calloc(old_cap * 2, sizeof(slot_t));
    if (!slots)
        return -ENOMEM;
    m->slots = slots;
    m->cap = old_cap * 2;
    for (size_t i = 0; i < old_cap; i++) {
        if (!old[i].value)
            continue;
        size_t j = slot_of(m, old[i].a, old[i].b);
        while (m->slots[j].value)
            j = (j + 1) & (m->cap - 1);
        m->slots[j] = old[i];
    }
    free(old);
    return 0;
}

int fs_map_put(fs_map_t *m, uint64_t a, uint64_t b, void *value)
{
    slot_t *s = find(m, a, b);
    if (s) {
        s->value = value;
        return 0;
    }
    if ((m->count + 1) * 4 > m->cap * 3 && grow(m) < 0)
        return -ENOMEM;
    size_t i = slot_of(m, a, b);
    while (m->slots[i].value)
        i = (i + 1) & (m->cap - 1);
    m->slots[i] = (slot_t){a, b, value};
    m->count++;
    return 0;
}

void *fs_map_remove(fs_map_t *m, uint64_t a, uint64_t b)
{
    slot_t *s = find(m, a, b);
    if (!s)
        return NULL;
    void *value = s->value;
    size_t hole = (size_t)(s - m->slots);
    /* Shift later members of the probe run back so no lookup stops early at the hole. */
    for (size_t i = (hole + 1) & (m->cap - 1); m->slots[i].value; i = (i + 1) & (m->cap - 1)) {
        size_t home = slot_of(m, m->slots[i].a, m->slots[i].b);
        size_t dist_i = (i - home) & (m->cap - 1);
        size_t dist_hole = (hole - home) & (m->cap - 1);
        if (dist_hole <= dist_i) {
            m->slots[hole] = m->slots[i];
            hole = i;
        }
    }
    m->slots[hole] = (slot_t){0, 0, NULL};
    m->count--;
    return value;
}

size_t fs_map_count(const fs_map_t *m)
{
    return m->count;
}

int fs_map_each(const fs_map_t *m, int (*fn)(uint64_t a, uint64_t b, void *value, void *arg),
                void *arg)
{
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slots[i].value) {
            int rc = fn(m->slots[i].a, m->slots[i].b, m->slots[i].value, arg);
            if (rc)
                return rc;
        }
    }
    return 0;
}
