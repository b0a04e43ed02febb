/*
 * kv_sync.h — the transfer protocol of one range stream, as a pure state
 * machine: which message to send next, given the answers so far.
 *
 * A sender streams its records of a ring range (lo, hi] to one receiver:
 *   1. compare digests (SYNC_DIGEST); equal → done, nothing to send; a
 *      span that differs and holds more than KV_SYNC_LEAF keys is split
 *      into KV_SYNC_FANOUT sub-spans whose digests are compared in turn
 *      (depth first, in ring order), so a few differing keys among
 *      millions cost a few digests per level, not an offer of every key;
 *      steps 2-4 run on each differing span that is no longer split;
 *   2. offer the next batch of (key, version) pairs in ring order
 *      (SYNC_OFFER), at most KV_SYNC_BATCH keys / KV_SYNC_KEYBUF key bytes;
 *   3. send the records the receiver wants (REPL_PUT), at most
 *      KV_SYNC_WINDOW in flight; when all are answered, go to 2;
 *   4. an offer batch that comes back empty from the scan ends the stream.
 * A failed digest or offer (no answer) ends it as failed; a failed put
 * counts one record as missing and the stream goes on.
 *
 * The caller does the I/O: scans its store into kv_sync_add(), sends what
 * the returned step says, and feeds the answers back. Nothing here blocks,
 * allocates after kv_sync_new(), or knows about sockets.
 */
#ifndef KV_SYNC_H
#define KV_SYNC_H

#include "ring_id.h"
#include "wire.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    KV_SYNC_BATCH = 256,
    KV_SYNC_KEYBUF = 64 * 1024,
    KV_SYNC_WINDOW = 16,
    KV_SYNC_FANOUT = 16, /* sub-spans per split (a power of two) */
    KV_SYNC_LEAF = 1024, /* a differing span of more keys than this is split */
};

typedef enum {
    KV_SYNC_SEND_DIGEST, /* ask the receiver for its digest of kv_sync_span() */
    KV_SYNC_SCAN,        /* scan kv_sync_span() after the cursor into kv_sync_add() */
    KV_SYNC_SEND_OFFER,  /* send kv_sync_offers() */
    KV_SYNC_SEND_PUTS,   /* send records while kv_sync_next_put() gives keys */
    KV_SYNC_WAIT,        /* answers outstanding: nothing to do until one comes */
    KV_SYNC_DONE,        /* finished (see kv_sync_failed / kv_sync_missing) */
} kv_sync_step_t;

typedef struct kv_sync kv_sync_t;

/*
 * A stream of (lo, hi] (lo == hi: the whole ring) on a ring of id_bits
 * bits (1..64). NULL when out of memory.
 */
kv_sync_t *kv_sync_new(ring_id_t lo, ring_id_t hi, unsigned id_bits);
void kv_sync_destroy(kv_sync_t **s);

/* The whole range of the stream. */
ring_id_t kv_sync_lo(const kv_sync_t *s);
ring_id_t kv_sync_hi(const kv_sync_t *s);
/*
 * The span the current step is about, (*lo, *hi] within the range: the one
 * whose digests SEND_DIGEST and kv_sync_on_digest() compare, and the one
 * SCAN covers.
 */
void kv_sync_span(const kv_sync_t *s, ring_id_t *lo, ring_id_t *hi);

/* The first step: always KV_SYNC_SEND_DIGEST. */
kv_sync_step_t kv_sync_start(kv_sync_t *s);

/*
 * The receiver's digest of kv_sync_span() (rc < 0: no answer) against
 * ours. Equal → the next span's SEND_DIGEST, or DONE after the last;
 * different → SEND_DIGEST of its first sub-span, or SCAN when it is not
 * split; failure → DONE, failed, with the whole range's local count (from
 * the first digest) missing.
 */
kv_sync_step_t kv_sync_on_digest(kv_sync_t *s, int rc, uint64_t local_count,
                                 const uint64_t local_digest[2], uint64_t remote_count,
                                 const uint64_t remote_digest[2]);

/*
 * Where the scan resumes: after (pos, key) when it returns true, else from
 * the start of the range. key is borrowed until the next kv_sync_* call.
 */
bool kv_sync_cursor(const kv_sync_t *s, ring_id_t *pos, const uint8_t **key, uint16_t *key_len);

/*
 * Add one scanned record to the batch (key copied). Returns false, adding
 * nothing, when the batch is full: stop the scan there.
 */
bool kv_sync_add(kv_sync_t *s, const uint8_t *key, uint16_t key_len, ring_id_t pos,
                 kv_version_t version);

/*
 * The scan of this batch is over: SEND_OFFER, or (nothing added: the span
 * is done) the next span's SEND_DIGEST, or DONE after the last.
 */
kv_sync_step_t kv_sync_scanned(kv_sync_t *s);

/* The batch to offer; borrowed until the next kv_sync_scanned(). */
const wire_offer_t *kv_sync_offers(const kv_sync_t *s, size_t *n);

/*
 * The receiver wants these offer indexes (rc < 0: no answer → DONE, failed).
 * Out-of-range or repeated indexes are ignored. SEND_PUTS, or SCAN if it
 * wants nothing.
 */
kv_sync_step_t kv_sync_on_want(kv_sync_t *s, int rc, const uint16_t *want, size_t nwant);

/*
 * The next wanted key to send, if the window allows: true and the key (borrowed
 * like the offers). Each key returned must be answered by kv_sync_on_put()
 * or skipped with kv_sync_on_put(s, -ENOENT) when the record vanished.
 */
bool kv_sync_next_put(kv_sync_t *s, const uint8_t **key, uint16_t *key_len);

/*
 * A put was answered: rc 0 (stored), -ENOENT (nothing to send after all),
 * or another error (counted missing). Returns SEND_PUTS (more to send),
 * WAIT, SCAN (batch finished) or DONE.
 */
kv_sync_step_t kv_sync_on_put(kv_sync_t *s, int rc);

/* The caller cannot go on (e.g. its store failed): the stream fails. */
kv_sync_step_t kv_sync_abort(kv_sync_t *s);

/* Records confirmed sent, records that could not be confirmed, failure. */
uint64_t kv_sync_sent(const kv_sync_t *s);
uint64_t kv_sync_missing(const kv_sync_t *s);
/* Digests compared and records offered so far (what the comparison cost). */
uint64_t kv_sync_digests(const kv_sync_t *s);
uint64_t kv_sync_offered(const kv_sync_t *s);
/* Records the receiver asked for so far (each is then sent or counted missing). */
uint64_t kv_sync_wanted(const kv_sync_t *s);
/*
 * Progress: the local records of the range not settled yet, i.e. in spans
 * neither found equal nor scanned to their end (an upper bound of what is
 * left to send; records being offered or sent are still in it). 0 before
 * the first digest (not known yet) and once the stream is done or failed.
 * Costs nothing: the digests already count the records of each span.
 */
uint64_t kv_sync_left(const kv_sync_t *s);
bool kv_sync_failed(const kv_sync_t *s);
bool kv_sync_done(const kv_sync_t *s);

#endif
