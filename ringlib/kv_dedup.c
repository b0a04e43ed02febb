/*
 * kv_dedup.c — the table of recent client writes (kv_dedup.h).
 *
 * Clients hang in a chained hash on their id (random, so its low bits are
 * a fine hash) and on an LRU list. A client's entries are one array of
 * per_client slots searched linearly: a client rarely has more than a few
 * hundred writes remembered, and a scan of a small array costs less than
 * keeping a second index consistent. Eviction takes the oldest DONE entry
 * (by insertion stamp) of the client, and the least recently used client
 * with no RUNNING entry; RUNNING entries are never evicted, because the
 * whole point is that a retry of a running write finds it.
 */
#include "kv_dedup.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

typedef enum { E_FREE, E_RUNNING, E_DONE } estate_t;

typedef struct {
    uint64_t seq;
    uint64_t stamp; /* insertion order within the client */
    estate_t state;
    void *owner;
    kv_dedup_outcome_t outcome;
} entry_t;

typedef struct client {
    uint64_t id;
    struct client *hnext;               /* hash chain */
    struct client *lru_prev, *lru_next; /* lru_prev towards the most recent */
    size_t used, running;
    uint64_t stamp;
    entry_t *e;
} client_t;

struct kv_dedup {
    size_t max_clients, per_client;
    size_t nclients, nentries;
    size_t nbuckets; /* power of two */
    client_t **buckets;
    client_t *mru, *lru;
};

kv_dedup_t *kv_dedup_new(size_t max_clients, size_t per_client)
{
    if (max_clients == 0 || per_client == 0)
        return NULL;
    kv_dedup_t *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->max_clients = max_clients;
    d->per_client = per_client;
    d->nbuckets = 16;
    while (d->nbuckets < max_clients && d->nbuckets < ((size_t)1 << 20))
        d->nbuckets <<= 1;
    d->buckets = calloc(d->nbuckets, sizeof *d->buckets);
    if (!d->buckets) {
        free(d);
        return NULL;
    }
    return d;
}

static client_t **bucket(const kv_dedup_t *d, uint64_t id)
{
    return &d->buckets[(id ^ (id >> 32)) & (d->nbuckets - 1)];
}

static client_t *client_find(const kv_dedup_t *d, uint64_t id)
{
    for (client_t *c = *bucket(d, id); c; c = c->hnext)
        if (c->id == id)
            return c;
    return NULL;
}

static void lru_unlink(kv_dedup_t *d, client_t *c)
{
    if (c->lru_prev)
        c->lru_prev->lru_next = c->lru_next;
    else
        d->mru = c->lru_next;
    if (c->lru_next)
        c->lru_next->lru_prev = c->lru_prev;
    else
        d->lru = c->lru_prev;
    c->lru_prev = c->lru_next = NULL;
}

static void lru_push(kv_dedup_t *d, client_t *c)
{
    c->lru_next = d->mru;
    if (d->mru)
        d->mru->lru_prev = c;
    d->mru = c;
    if (!d->lru)
        d->lru = c;
}

static void client_free(kv_dedup_t *d, client_t *c)
{
    client_t **pp = bucket(d, c->id);
    while (*pp != c)
        pp = &(*pp)->hnext;
    *pp = c->hnext;
    lru_unlink(d, c);
    d->nentries -= c->used;
    d->nclients--;
    free(c->e);
    free(c);
}

void kv_dedup_destroy(kv_dedup_t **pd)
{
    if (!pd || !*pd)
        return;
    kv_dedup_t *d = *pd;
    while (d->mru)
        client_free(d, d->mru);
    free(d->buckets);
    free(d);
    *pd = NULL;
}

static entry_t *entry_find(const client_t *c, uint64_t seq, size_t per_client)
{
    for (size_t i = 0; i < per_client; i++)
        if (c->e[i].state != E_FREE && c->e[i].seq == seq)
            return &c->e[i];
    return NULL;
}

/* A free slot, or the oldest DONE entry's, emptied; NULL if all are running. */
static entry_t *entry_slot(kv_dedup_t *d, client_t *c)
{
    entry_t *oldest = NULL;
    for (size_t i = 0; i < d->per_client; i++) {
        entry_t *e = &c->e[i];
        if (e->state == E_FREE)
            return e;
        if (e->state == E_DONE && (!oldest || e->stamp < oldest->stamp))
            oldest = e;
    }
    if (oldest) {
        oldest->state = E_FREE;
        c->used--;
        d->nentries--;
    }
    return oldest;
}

/* A new client, evicting the least recently used idle one at the bound. */
static client_t *client_add(kv_dedup_t *d, uint64_t id, int *err)
{
    if (d->nclients >= d->max_clients) {
        client_t *victim = d->lru;
        while (victim && victim->running)
            victim = victim->lru_prev;
        if (!victim) {
            *err = -EAGAIN;
            return NULL;
        }
        client_free(d, victim);
    }
    client_t *c = calloc(1, sizeof *c);
    if (c)
        c->e = calloc(d->per_client, sizeof *c->e);
    if (!c || !c->e) {
        free(c);
        *err = -ENOMEM;
        return NULL;
    }
    c->id = id;
    client_t **b = bucket(d, id);
    c->hnext = *b;
    *b = c;
    lru_push(d, c);
    d->nclients++;
    return c;
}

int kv_dedup_begin(kv_dedup_t *d, kv_opid_t id, void *owner, void **owner_out,
                   kv_dedup_outcome_t *outcome)
{
    if (!kv_opid_is_set(id))
        return -EINVAL;
    client_t *c = client_find(d, id.client);
    if (c) {
        lru_unlink(d, c);
        lru_push(d, c);
        entry_t *e = entry_find(c, id.seq, d->per_client);
        if (e && e->state == E_RUNNING) {
            if (owner_out)
                *owner_out = e->owner;
            return KV_DEDUP_RUNNING;
        }
        if (e) {
            if (outcome)
                *outcome = e->outcome;
            return KV_DEDUP_DONE;
        }
    } else {
        int err = 0;
        c = client_add(d, id.client, &err);
        if (!c)
            return err;
    }
    entry_t *e = entry_slot(d, c);
    if (!e) {
        if (c->used == 0)
            client_free(d, c);
        return -EAGAIN;
    }
    *e = (entry_t){id.seq, c->stamp++, E_RUNNING, owner, {0, {0, 0}}};
    c->used++;
    c->running++;
    d->nentries++;
    return KV_DEDUP_NEW;
}

int kv_dedup_finish(kv_dedup_t *d, kv_opid_t id, int rc, kv_version_t version)
{
    client_t *c = client_find(d, id.client);
    entry_t *e = c ? entry_find(c, id.seq, d->per_client) : NULL;
    if (!e || e->state != E_RUNNING)
        return -ENOENT;
    e->state = E_DONE;
    e->owner = NULL;
    e->outcome.rc = rc;
    e->outcome.version = rc == 0 ? version : (kv_version_t){0, 0};
    c->running--;
    return 0;
}

int kv_dedup_forget(kv_dedup_t *d, kv_opid_t id)
{
    client_t *c = client_find(d, id.client);
    entry_t *e = c ? entry_find(c, id.seq, d->per_client) : NULL;
    if (!e)
        return -ENOENT;
    if (e->state == E_RUNNING)
        c->running--;
    e->state = E_FREE;
    e->owner = NULL;
    c->used--;
    d->nentries--;
    if (c->used == 0)
        client_free(d, c);
    return 0;
}

kv_dedup_state_t kv_dedup_peek(const kv_dedup_t *d, kv_opid_t id, kv_dedup_outcome_t *outcome)
{
    const client_t *c = client_find(d, id.client);
    const entry_t *e = c ? entry_find(c, id.seq, d->per_client) : NULL;
    if (!e)
        return KV_DEDUP_NEW;
    if (e->state == E_RUNNING)
        return KV_DEDUP_RUNNING;
    if (outcome)
        *outcome = e->outcome;
    return KV_DEDUP_DONE;
}

size_t kv_dedup_clients(const kv_dedup_t *d)
{
    return d->nclients;
}

size_t kv_dedup_entries(const kv_dedup_t *d)
{
    return d->nentries;
}
