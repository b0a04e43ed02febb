/*
 * kv_hint.c — the hinted hand-off queue (kv_hint.h).
 *
 * A singly linked FIFO with head and tail. A failed hint returns to the
 * head so that one replica's writes are retried in their original order
 * (the order does not matter for correctness — versions decide — but it
 * keeps the oldest missing copy from starving). The back-off is per queue,
 * not per hint: a failure means the replica is busy or away, and every
 * other hint to it would fail the same way.
 */
#include "kv_hint.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct kv_hintq {
    kv_hint_t *head, *tail;
    size_t queued, inflight, cap;
    unsigned window, backoff_min, backoff_max, backoff;
    uint64_t retry_at;
    uint64_t gen;
    uint64_t lost;
};

kv_hintq_t *kv_hintq_new(size_t cap, unsigned window, unsigned backoff_min_ms,
                         unsigned backoff_max_ms)
{
    if (cap == 0 || window == 0)
        return NULL;
    kv_hintq_t *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->cap = cap;
    q->window = window;
    q->backoff_min = backoff_min_ms ? backoff_min_ms : 1;
    q->backoff_max = backoff_max_ms > q->backoff_min ? backoff_max_ms : q->backoff_min;
    return q;
}

static void drop_queued(kv_hintq_t *q)
{
    kv_hint_t *h = q->head;
    while (h) {
        kv_hint_t *next = h->next;
        free(h);
        h = next;
    }
    q->head = q->tail = NULL;
    q->queued = 0;
}

void kv_hintq_destroy(kv_hintq_t **pq)
{
    if (!pq || !*pq)
        return;
    drop_queued(*pq);
    free(*pq);
    *pq = NULL;
}

int kv_hintq_push(kv_hintq_t *q, const uint8_t *key, size_t key_len, kv_version_t version)
{
    if (!key || key_len == 0 || key_len > UINT16_MAX)
        return -EINVAL;
    kv_hint_t *t = q->tail;
    if (t && t->key_len == key_len && memcmp(t->key, key, key_len) == 0) {
        /* A key rewritten in a burst needs one delivery, of its newest version. */
        if (kv_version_cmp(version, t->version) > 0)
            t->version = version;
        return 0;
    }
    if (q->queued + q->inflight >= q->cap) {
        q->lost++;
        return -ENOSPC;
    }
    kv_hint_t *h = malloc(sizeof *h + key_len);
    if (!h)
        return -ENOMEM;
    h->next = NULL;
    h->gen = 0;
    h->version = version;
    h->key_len = (uint16_t)key_len;
    memcpy(h->key, key, key_len);
    if (q->tail)
        q->tail->next = h;
    else
        q->head = h;
    q->tail = h;
    q->queued++;
    return 0;
}

kv_hint_t *kv_hintq_take(kv_hintq_t *q, uint64_t now_ms)
{
    if (!q->head || q->inflight >= q->window || now_ms < q->retry_at)
        return NULL;
    kv_hint_t *h = q->head;
    q->head = h->next;
    if (!q->head)
        q->tail = NULL;
    h->next = NULL;
    h->gen = q->gen;
    q->queued--;
    q->inflight++;
    return h;
}

void kv_hintq_done(kv_hintq_t *q, kv_hint_t *h, bool delivered, uint64_t now_ms)
{
    q->inflight--;
    if (delivered) {
        q->backoff = 0;
        q->retry_at = 0;
        free(h);
        return;
    }
    if (h->gen != q->gen) {
        q->lost++;
        free(h);
        return;
    }
    q->backoff = q->backoff ? q->backoff * 2 : q->backoff_min;
    if (q->backoff > q->backoff_max)
        q->backoff = q->backoff_max;
    q->retry_at = now_ms + q->backoff;
    h->next = q->head;
    q->head = h;
    if (!q->tail)
        q->tail = h;
    q->queued++;
}

size_t kv_hintq_clear(kv_hintq_t *q)
{
    size_t dropped = q->queued;
    drop_queued(q);
    q->lost += dropped;
    q->gen++;
    q->backoff = 0;
    q->retry_at = 0;
    return dropped;
}

uint64_t kv_hintq_due_ms(const kv_hintq_t *q, uint64_t now_ms)
{
    if (!q->head || q->inflight >= q->window)
        return UINT64_MAX;
    return q->retry_at > now_ms ? q->retry_at : now_ms;
}

size_t kv_hintq_len(const kv_hintq_t *q)
{
    return q->queued + q->inflight;
}

size_t kv_hintq_inflight(const kv_hintq_t *q)
{
    return q->inflight;
}

uint64_t kv_hintq_lost(const kv_hintq_t *q)
{
    return q->lost;
}
