/*
 * kv_sync.c — bookkeeping of one range stream (see kv_sync.h).
 *
 * The batch owns copies of its keys (one buffer, offers point into it), so
 * the caller's scan may reuse its memory at once. The cursor is the last
 * key added, which makes a batch resume strictly after what was offered
 * even if the store changed in between.
 *
 * Spans still to compare wait on a stack, depth first: splitting pushes
 * KV_SYNC_FANOUT - 1 siblings per level and a level divides the width by
 * KV_SYNC_FANOUT, so 64 / log2(FANOUT) levels bound it (SPANS_MAX).
 */
#include "kv_sync.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum { FANOUT_BITS = 4, SPANS_MAX = (64 / FANOUT_BITS) * (KV_SYNC_FANOUT - 1) + 1 };
_Static_assert(KV_SYNC_FANOUT == 1 << FANOUT_BITS, "FANOUT_BITS must match KV_SYNC_FANOUT");

typedef struct {
    ring_id_t lo, hi;
} span_t;

struct kv_sync {
    ring_id_t lo, hi;
    unsigned id_bits;
    bool done, failed, counted;
    uint64_t local_count; /* the whole range's, from the first digest */
    uint64_t sent, missing, digests, offered;
    uint64_t wanted;    /* records the receiver asked for */
    uint64_t settled;   /* local records of spans finished (matched or scanned) */
    uint64_t cur_local; /* local records of cur, from its digest */

    span_t cur;             /* the span being compared or scanned */
    span_t todo[SPANS_MAX]; /* spans still to compare, the next on top */
    size_t ntodo;

    bool has_cursor;
    ring_id_t cursor_pos;
    uint16_t cursor_len;
    uint8_t cursor_key[WIRE_KEY_MAX];

    uint8_t keybuf[KV_SYNC_KEYBUF];
    size_t keybuf_used;
    wire_offer_t offers[KV_SYNC_BATCH];
    size_t noffers;

    uint16_t want[KV_SYNC_BATCH];
    size_t nwant, next_want;
    unsigned inflight;
};

kv_sync_t *kv_sync_new(ring_id_t lo, ring_id_t hi, unsigned id_bits)
{
    if (id_bits < 1 || id_bits > 64)
        return NULL;
    kv_sync_t *s = calloc(1, sizeof *s);
    if (s) {
        s->lo = lo;
        s->hi = hi;
        s->id_bits = id_bits;
    }
    return s;
}

void kv_sync_destroy(kv_sync_t **s)
{
    if (s && *s) {
        free(*s);
        *s = NULL;
    }
}

ring_id_t kv_sync_lo(const kv_sync_t *s)
{
    return s->lo;
}

ring_id_t kv_sync_hi(const kv_sync_t *s)
{
    return s->hi;
}

void kv_sync_span(const kv_sync_t *s, ring_id_t *lo, ring_id_t *hi)
{
    *lo = s->cur.lo;
    *hi = s->cur.hi;
}

kv_sync_step_t kv_sync_start(kv_sync_t *s)
{
    s->cur = (span_t){s->lo, s->hi};
    s->ntodo = 0;
    return KV_SYNC_SEND_DIGEST;
}

/*
 * Push cur's KV_SYNC_FANOUT sub-spans, the first on top. False when cur is
 * too narrow to split (fewer positions than sub-spans).
 */
static bool split(kv_sync_t *s)
{
    ring_id_t mask = s->id_bits == 64 ? ~(ring_id_t)0 : ((ring_id_t)1 << s->id_bits) - 1;
    ring_id_t step;
    if (s->cur.lo == s->cur.hi) /* the whole ring: 2^id_bits positions */
        step = s->id_bits > FANOUT_BITS ? (ring_id_t)1 << (s->id_bits - FANOUT_BITS) : 0;
    else
        step = ((s->cur.hi - s->cur.lo) & mask) / KV_SYNC_FANOUT;
    if (step == 0 || s->ntodo + KV_SYNC_FANOUT > SPANS_MAX)
        return false;
    for (unsigned i = KV_SYNC_FANOUT; i-- > 0;) {
        ring_id_t lo = (s->cur.lo + i * step) & mask;
        ring_id_t hi = i == KV_SYNC_FANOUT - 1 ? s->cur.hi : (lo + step) & mask;
        s->todo[s->ntodo++] = (span_t){lo, hi};
    }
    return true;
}

/* cur is settled: compare the next span waiting, or finish. */
static kv_sync_step_t next_span(kv_sync_t *s)
{
    if (s->ntodo == 0) {
        s->done = true;
        return KV_SYNC_DONE;
    }
    s->cur = s->todo[--s->ntodo];
    return KV_SYNC_SEND_DIGEST;
}

static kv_sync_step_t fail(kv_sync_t *s)
{
    s->failed = true;
    /* Whatever was not confirmed is missing on the receiver, as far as we know. */
    uint64_t floor = s->local_count > s->sent ? s->local_count - s->sent : 0;
    if (s->missing < floor)
        s->missing = floor;
    if (s->missing == 0)
        s->missing = 1;
    s->done = s->inflight == 0;
    return s->done ? KV_SYNC_DONE : KV_SYNC_WAIT;
}

kv_sync_step_t kv_sync_on_digest(kv_sync_t *s, int rc, uint64_t local_count,
                                 const uint64_t local_digest[2], uint64_t remote_count,
                                 const uint64_t remote_digest[2])
{
    if (!s->counted) {
        s->counted = true;
        s->local_count = local_count;
    }
    if (rc < 0)
        return fail(s);
    s->digests++;
    s->cur_local = local_count;
    if (local_count == remote_count && local_digest[0] == remote_digest[0] &&
        local_digest[1] == remote_digest[1]) {
        s->settled += local_count;
        return next_span(s);
    }
    uint64_t most = local_count > remote_count ? local_count : remote_count;
    if (most > KV_SYNC_LEAF && split(s))
        return next_span(s);
    s->has_cursor = false;
    return KV_SYNC_SCAN;
}

bool kv_sync_cursor(const kv_sync_t *s, ring_id_t *pos, const uint8_t **key, uint16_t *key_len)
{
    if (!s->has_cursor)
        return false;
    *pos = s->cursor_pos;
    *key = s->cursor_key;
    *key_len = s->cursor_len;
    return true;
}

bool kv_sync_add(kv_sync_t *s, const uint8_t *key, uint16_t key_len, ring_id_t pos,
                 kv_version_t version)
{
    if (key_len == 0 || key_len > WIRE_KEY_MAX || s->noffers == KV_SYNC_BATCH ||
        s->keybuf_used + key_len > KV_SYNC_KEYBUF)
        return false;
    uint8_t *copy = s->keybuf + s->keybuf_used;
    memcpy(copy, key, key_len);
    s->keybuf_used += key_len;
    s->offers[s->noffers++] = (wire_offer_t){copy, key_len, version};
    s->has_cursor = true;
    s->cursor_pos = pos;
    s->cursor_len = key_len;
    memcpy(s->cursor_key, key, key_len);
    return true;
}

kv_sync_step_t kv_sync_scanned(kv_sync_t *s)
{
    if (s->noffers == 0) {
        s->settled += s->cur_local; /* this leaf is scanned to its end */
        return next_span(s);
    }
    s->offered += s->noffers;
    return KV_SYNC_SEND_OFFER;
}

const wire_offer_t *kv_sync_offers(const kv_sync_t *s, size_t *n)
{
    *n = s->noffers;
    return s->offers;
}

static void reset_batch(kv_sync_t *s)
{
    s->noffers = 0;
    s->keybuf_used = 0;
    s->nwant = s->next_want = 0;
}

kv_sync_step_t kv_sync_on_want(kv_sync_t *s, int rc, const uint16_t *want, size_t nwant)
{
    if (rc < 0)
        return fail(s);
    bool seen[KV_SYNC_BATCH] = {false};
    s->nwant = s->next_want = 0;
    for (size_t i = 0; i < nwant; i++) {
        uint16_t idx = want[i];
        if (idx < s->noffers && !seen[idx]) {
            seen[idx] = true;
            s->want[s->nwant++] = idx;
        }
    }
    s->wanted += s->nwant;
    if (s->nwant == 0) {
        reset_batch(s);
        return KV_SYNC_SCAN;
    }
    return KV_SYNC_SEND_PUTS;
}

bool kv_sync_next_put(kv_sync_t *s, const uint8_t **key, uint16_t *key_len)
{
    if (s->failed || s->inflight >= KV_SYNC_WINDOW || s->next_want >= s->nwant)
        return false;
    const wire_offer_t *o = &s->offers[s->want[s->next_want++]];
    *key = o->key;
    *key_len = o->key_len;
    s->inflight++;
    return true;
}

kv_sync_step_t kv_sync_on_put(kv_sync_t *s, int rc)
{
    if (s->inflight)
        s->inflight--;
    if (rc == 0)
        s->sent++;
    else if (rc != -ENOENT)
        s->missing++;
    if (rc == -ETIMEDOUT && !s->failed)
        return fail(s); /* the receiver stopped answering */
    if (s->failed) {
        s->done = s->inflight == 0;
        return s->done ? KV_SYNC_DONE : KV_SYNC_WAIT;
    }
    if (s->next_want < s->nwant)
        return KV_SYNC_SEND_PUTS;
    if (s->inflight)
        return KV_SYNC_WAIT;
    reset_batch(s);
    return KV_SYNC_SCAN;
}

kv_sync_step_t kv_sync_abort(kv_sync_t *s)
{
    return fail(s);
}

uint64_t kv_sync_sent(const kv_sync_t *s)
{
    return s->sent;
}

uint64_t kv_sync_missing(const kv_sync_t *s)
{
    return s->missing;
}

uint64_t kv_sync_digests(const kv_sync_t *s)
{
    return s->digests;
}

uint64_t kv_sync_offered(const kv_sync_t *s)
{
    return s->offered;
}

uint64_t kv_sync_wanted(const kv_sync_t *s)
{
    return s->wanted;
}

uint64_t kv_sync_left(const kv_sync_t *s)
{
    if (s->done || s->failed || !s->counted)
        return 0;
    return s->local_count > s->settled ? s->local_count - s->settled : 0;
}

bool kv_sync_failed(const kv_sync_t *s)
{
    return s->failed;
}

bool kv_sync_done(const kv_sync_t *s)
{
    return s->done;
}
