/*
 * kvclient.h — asynchronous client of the replicated store (used by dhtctl
 * and dhtfs).
 *
 * The client caches the ring (ids and endpoints learned from lookups and
 * redirects) and sends each request straight to the node it believes is
 * the key's authority, so a request usually costs one round trip. A node
 * that is not the authority answers "not mine" with a better node; an
 * unreachable node is dropped from the cache and the key looked up again
 * through any known node. A get reads R replicas itself when it can (one
 * round trip, the authority vouching for whom it asked); under token
 * placement the client keeps each partition's replica set as an authority
 * last named it, to know whom to read. Every operation completes exactly
 * once.
 */
#ifndef KVCLIENT_H
#define KVCLIENT_H

#include "kv_version.h"
#include "loop.h"
#include "rpc.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct kvc kvc_t;

typedef struct {
    /*
     * 0 (a write: applied exactly once, even if retried); -ENOENT (get: no
     * such key); definite failures, where the write was not applied:
     * -EEXIST / -ESTALE (a conditional put's condition failed — also after
     * retries: a retry that finds this write's own identity on the stored
     * version reports 0 instead), -EINVAL / -EFBIG (bad request),
     * -ECANCELED (client shut down, or the write was dropped unapplied at
     * the coordinator after its time ran out); and -ETIMEDOUT: the outcome
     * is unknown (no quorum, no answer in time, a retry's condition
     * failed after an unanswered attempt, or another coordinator may have
     * overtaken a conditional write) — a write may or may not have
     * been applied, and a caller must re-read rather than assume either;
     * -ENOSPC (replicas out of disk; like -ETIMEDOUT, some replicas may
     * hold the write); -EIO; -EACCES (a secured ring refused this
     * client's key, or the key may not do this, e.g. a key outside its
     * volumes: nothing was applied); -EPROTO (a seed given without
     * "#KEY" requires CURVE, when the rpc watches plain handshakes).
     */
    int rc;
    kv_version_t version; /* get: the value's; put: the one written */
    const uint8_t *value; /* get: borrowed for the callback only */
    size_t value_len;
    const char *message; /* the node's explanation of an error, or NULL */
} kvc_result_t;

typedef void (*kvc_done_fn)(const kvc_result_t *res, void *arg);

/*
 * A client over rpc (borrowed, outlives the client) that knows the ring by
 * the endpoints in seeds (copied; at least one). timeout_ms bounds each
 * attempt; an operation retries, backing off, for at most 4 x timeout_ms
 * (at least 5 s) before it fails with -ETIMEDOUT.
 */
kvc_t *kvc_new(rpc_t *rpc, loop_t *loop, const char *const *seeds, size_t nseeds,
               unsigned timeout_ms);
/*
 * Operations still waiting complete with -ECANCELED. Destroy the rpc first:
 * its cancellations complete the operations that have a call in flight.
 */
void kvc_destroy(kvc_t **c);

/* Key and value are copied. Returns 0 (done will run later) or -EINVAL/-EFBIG/-ENOMEM. */
int kvc_get(kvc_t *c, const void *key, size_t key_len, kvc_done_fn done, void *arg);

typedef enum {
    KVC_PUT_ALWAYS,
    KVC_PUT_IF_ABSENT,
    KVC_PUT_IF_VERSION,
} kvc_cond_t;

int kvc_put(kvc_t *c, const void *key, size_t key_len, const void *value, size_t value_len,
            kvc_cond_t cond, kv_version_t if_version, kvc_done_fn done, void *arg);
/*
 * Each put/del gets this client's identity (a random 64-bit id per kvc_t)
 * and the next sequence number, sent unchanged on every retry, so the
 * store applies it at most once (ARCHITECTURE.md, "Exactly-once writes").
 * Test hook: with DHT_TEST_LOSE_PUT_ANSWER_PCT=P in the environment, the
 * first answer of P% of writes is thrown away as if lost and the write is
 * retried (tests only).
 */
/*
 * Write len bytes at byte off of the key's value, the rest kept (an absent
 * value counts as empty; a gap up to off reads as zeros): the coordinator
 * applies it to the newest copy, so only the changed bytes travel from
 * here. Applied once like a put. A node older than this answers
 * -EPROTONOSUPPORT (layout 3 is new to it); the caller then writes the
 * whole value.
 */
int kvc_patch(kvc_t *c, const void *key, size_t key_len, uint32_t off, const void *bytes,
              size_t len, kvc_done_fn done, void *arg);
/* Delete = write a tombstone (conditions as for put). */
int kvc_del(kvc_t *c, const void *key, size_t key_len, kvc_cond_t cond, kv_version_t if_version,
            kvc_done_fn done, void *arg);

/* The ring's id width once known (0 before the first answer). */
unsigned kvc_id_bits(const kvc_t *c);

/*
 * Gets answered by R replicas read directly, and gets whose direct read
 * fell back to the authority's coordinated read, since kvc_new.
 */
void kvc_read_counts(const kvc_t *c, uint64_t *direct, uint64_t *coordinated);

/*
 * Resolve key's replica set through the ring (recursive lookup). done gets
 * rc and, on success, the replicas' ids and endpoints (borrowed).
 */
typedef void (*kvc_lookup_fn)(int rc, size_t n, const ring_id_t *ids, const char *const *addrs,
                              void *arg);
int kvc_lookup(kvc_t *c, const void *key, size_t key_len, kvc_lookup_fn done, void *arg);

/* The ring's STATS added up over its nodes. */
typedef struct {
    unsigned nodes;    /* nodes that answered STATS */
    unsigned replicas; /* N, from the ring's INFO */
    uint64_t primary_keys, stored_keys, under_replicated, bytes;
    uint64_t disk_total, disk_free; /* sums of the nodes' file systems (statvfs) */
} kvc_ring_stats_t;

enum {
    /* How long kvc_ring_stats() answers from its last walk of the ring. */
    KVC_RING_STATS_TTL_MS = 2000,
    /* Nodes visited per walk, at most. */
    KVC_RING_WALK_MAX = 4096,
};

/*
 * done(rc, stats, arg): rc 0 and the ring's totals (stats borrowed for the
 * call), or -ETIMEDOUT when no seed answered, -EACCES (key refused),
 * -EPROTO (a secured seed reached without CURVE), or -ECANCELED at
 * kvc_destroy(). The sum comes from a walk of the ring by successors
 * (INFO and STATS of each node) and is reused for KVC_RING_STATS_TTL_MS,
 * so frequent callers (statfs) cost the ring nothing most of the time;
 * callers arriving during a walk share it. done always runs later, from
 * the loop. Returns 0 or -ENOMEM.
 */
typedef void (*kvc_stats_fn)(int rc, const kvc_ring_stats_t *stats, void *arg);
int kvc_ring_stats(kvc_t *c, kvc_stats_fn done, void *arg);

#endif
