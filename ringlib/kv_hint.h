/*
 * kv_hint.h — a bounded queue of writes one replica has not acknowledged
 * yet (hinted hand-off), and the decisions of draining it: which hint goes
 * next, how many are in flight at once (the window), how long to back off
 * after a failure. Pure: no I/O, the caller passes the time.
 *
 * A hint is a key and the version that was written, not the value: the
 * sender re-reads the value from its own store when it sends (a newer
 * version found there supersedes the hint), so memory stays bounded by
 * `cap` keys however large the values are.
 */
#ifndef KV_HINT_H
#define KV_HINT_H

#include "kv_version.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct kv_hint {
    struct kv_hint *next; /* the queue's link (internal) */
    uint64_t gen;         /* the queue generation it was taken in (internal) */
    kv_version_t version;
    uint16_t key_len;
    uint8_t key[];
} kv_hint_t;

typedef struct kv_hintq kv_hintq_t;

/*
 * At most cap hints (queued and in flight together), at most window in
 * flight; after a failed delivery the queue waits backoff_min_ms, doubling
 * on each further failure up to backoff_max_ms; a delivery resets it.
 * NULL on bad arguments (cap or window 0) or out of memory.
 */
kv_hintq_t *kv_hintq_new(size_t cap, unsigned window, unsigned backoff_min_ms,
                         unsigned backoff_max_ms);
/* Frees the queued hints; hints in flight stay the caller's to free(). */
void kv_hintq_destroy(kv_hintq_t **q);

/*
 * Queue (key, version) (key copied). A hint for the same key as the last
 * one queued is merged into it (the newer version kept). Returns 0, -EINVAL
 * (empty key), -ENOSPC when the queue is full (the hint is counted as lost:
 * anti-entropy has to find that copy), -ENOMEM.
 */
int kv_hintq_push(kv_hintq_t *q, const uint8_t *key, size_t key_len, kv_version_t version);

/*
 * The next hint to send at now_ms, or NULL: nothing queued, the window is
 * full, or the queue is backing off. The caller owns the hint until it
 * passes it back to kv_hintq_done.
 */
kv_hint_t *kv_hintq_take(kv_hintq_t *q, uint64_t now_ms);

/*
 * A taken hint's outcome. delivered (or superseded, nothing left to send):
 * freed, the back-off reset. Otherwise it goes back to the head of the
 * queue and the queue backs off — unless the queue was cleared since it
 * was taken, then it is freed and counted as lost.
 */
void kv_hintq_done(kv_hintq_t *q, kv_hint_t *h, bool delivered, uint64_t now_ms);

/*
 * Drop every queued hint (counted as lost) and make those in flight be
 * dropped if they fail: the peer was declared failed, anti-entropy takes
 * over. Returns the number dropped now.
 */
size_t kv_hintq_clear(kv_hintq_t *q);

/*
 * When kv_hintq_take may next return a hint: now_ms or later (backing
 * off), UINT64_MAX if nothing can go before a push or a done.
 */
uint64_t kv_hintq_due_ms(const kv_hintq_t *q, uint64_t now_ms);

/* Hints queued plus in flight. */
size_t kv_hintq_len(const kv_hintq_t *q);
size_t kv_hintq_inflight(const kv_hintq_t *q);
/* Hints dropped so far (overflow or clear). */
uint64_t kv_hintq_lost(const kv_hintq_t *q);

#endif
