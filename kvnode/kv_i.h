/*
 * kv_i.h — internals shared by the store's modules (not a public interface):
 *
 *  kv.c         init, dispatch of KV_*, REPL_*, SYNC_* and STATS requests, stats
 *  kv_coord.c   coordinator: quorum reads and writes, read repair, conditional writes
 *  kv_replica.c replica: REPL_GET / REPL_PUT on the local store
 *  kv_stream.c  range streams: one kv_sync session per (range, target), serving digests,
 *               offers and pulls
 *  kv_maint.c   maintenance: anti-entropy rounds, tombstone purge, dropping extra copies,
 *               the leave hand-off
 *  kv_repl.c    per-replica delivery: REPL_PUTs in flight per replica, hinted hand-off
 */
#ifndef KV_I_H
#define KV_I_H

#include "node_i.h"

#include "kv_dedup.h"
#include "kv_known.h"
#include "kv_patch.h"
#include "kv_hint.h"
#include "kv_quorum.h"
#include "kv_sync.h"

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

enum {
    SYNC_SERVE_MAX = 8,       /* sessions served for other nodes' pulls */
    HANDOFF_LIMIT_MS = 30000, /* a leave waits at most this for its hand-off */
};

/* One range stream to one node: kv_sync's decisions plus the I/O. */
typedef struct sync {
    node_t *n;
    struct sync *next;
    ring_id_t target;
    char addr[ENDPOINT_MAX];
    kv_sync_t *ks;
    uint64_t min_hlc; /* records older than this are not offered (0: all) */
    uint64_t start_timer;
    bool finishing;
    void (*done)(struct sync *s);
    void *arg;           /* the caller's, for done */
    uint64_t peer_count; /* records the target said it holds in the whole range */
} sync_t;

enum {
    PURGE_BATCH = 512,  /* tombstones purged per anti-entropy round, at most */
    PURGE_SCAN = 16384, /* records looked at per round, at most */
    DROP_BATCH = 512,   /* records a dropped range loses per loop iteration */
};

struct kv {
    node_t *n;
    struct kv_op *busy; /* kv_coord.c: ops holding their key's write slot */
    kv_dedup_t *dedup;  /* kv_coord.c: recent client writes (created on first use) */
    kv_known_t *known;  /* kv_coord.c: newest versions known here (created on first use) */
    sync_t *sessions;
    unsigned served;
    /* the current anti-entropy round */
    bool round_active;
    unsigned round_pending;
    uint64_t round_missing;
    uint64_t round_primary;
    bool round_short; /* fewer distinct nodes than replicas */
    ring_id_t round_lo, round_hi;
    ring_id_t round_reps[KV_QUORUM_MAX];
    size_t round_nrep;
    /* where the tombstone purge of (purge_lo, purge_hi] resumes */
    bool purge_has_cursor;
    ring_id_t purge_lo, purge_hi, purge_pos;
    uint16_t purge_len;
    uint8_t purge_key[WIRE_KEY_MAX];
    /* the replica set the last finished round confirmed */
    ring_id_t last_reps[KV_QUORUM_MAX];
    size_t last_nrep;
    uint64_t last_round_ms;
    /* results of the last finished round */
    uint64_t primary_keys;
    uint64_t under_replicated;
    struct kv_drop *drops;  /* kv_maint.c: dropped ranges being forgotten */
    struct kv_parts *parts; /* kv_parts.c: token placement's pass (created on first use) */
    /* kv_repl.c: per-replica delivery */
    struct repl_peer *repl_peers;
    uint64_t repl_timer, repl_timer_at;
    uint64_t repl_lost_extra; /* hints lost for want of memory */
    /* hints lost before the start of the round now running / last finished */
    uint64_t repl_lost_round, repl_lost_checked;
    /* leave */
    void (*handoff_done)(node_t *n);
    unsigned handoff_pending;
    uint64_t handoff_timer;
    /* progress: records and key+value bytes sent by hints and range streams */
    uint64_t moved_keys, moved_bytes;
};

/* A record of key_len + value_len bytes went out to another node (hint or stream). */
static inline void kv_moved(struct kv *kv, size_t key_len, size_t value_len)
{
    kv->moved_keys++;
    kv->moved_bytes += key_len + value_len;
}

static inline uint64_t kv_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

enum {
    /* How far ahead of our wall clock another node's version may be. */
    CLOCK_SKEW_MAX_MS = 60 * 1000,
};

/* Versions from further in the future than clock skew explains are refused. */
static inline bool kv_version_plausible(kv_version_t v)
{
    return (v.hlc >> 16) <= kv_wall_ms() + CLOCK_SKEW_MAX_MS;
}

/* kv_coord.c: a client's KV_GET / KV_PUT at the key's authority. */
void kv_coord_serve(node_t *n, const uint8_t *ident, size_t ident_len, const wire_msg_t *m);

/* kv_replica.c */
void kv_replica_serve_get(node_t *n, const uint8_t *ident, size_t ident_len, const wire_msg_t *m);
void kv_replica_serve_read(node_t *n, const uint8_t *ident, size_t ident_len, const wire_msg_t *m);
void kv_replica_serve_put(node_t *n, const uint8_t *ident, size_t ident_len, const wire_msg_t *m);

/* kv_stream.c */
/*
 * Start streaming our records of (lo, hi] to target (lo == hi: all of them).
 * done(s) runs once, from the loop — never before kv_stream_start returns,
 * so the caller can count the session first — when kv_sync says it is over.
 * NULL if a stream of that range to that target is already under way, or
 * out of memory.
 */
sync_t *kv_stream_start(node_t *n, ring_id_t target, const char *addr, ring_id_t lo, ring_id_t hi,
                        void (*done)(sync_t *s));
void kv_stream_free(sync_t *s);
void kv_stream_serve_digest(node_t *n, const uint8_t *ident, size_t ident_len, const wire_msg_t *m);
void kv_stream_serve_offer(node_t *n, const uint8_t *ident, size_t ident_len, const wire_msg_t *m);
void kv_stream_serve_pull(node_t *n, const uint8_t *ident, size_t ident_len, const wire_msg_t *m);
/* SYNC_SUMS: answer with our sums of the listed partitions that differ from the sender's. */
void kv_stream_serve_sums(node_t *n, const uint8_t *ident, size_t ident_len, const wire_msg_t *m);

/* kv_repl.c */
/*
 * A coordinator's REPL_PUT to replica id is about to go out: false if the
 * replica already has REPL_DIRECT_MAX in flight (then hint it instead),
 * else counted until kv_repl_end.
 */
bool kv_repl_begin(node_t *n, ring_id_t id);
/* Whether kv_repl_begin would accept a write to id now. */
bool kv_repl_has_room(node_t *n, ring_id_t id);
/* The REPL_PUT counted by kv_repl_begin ended with rc; a failure becomes a hint. */
void kv_repl_end(node_t *n, ring_id_t id, int rc, const uint8_t *key, size_t key_len,
                 kv_version_t version);
/* Queue (key, version) for replica id (key copied); overflow is left to anti-entropy. */
void kv_repl_hint(node_t *n, ring_id_t id, const uint8_t *key, size_t key_len,
                  kv_version_t version);
/* Hints queued or in flight, over every replica: copies known to be missing. */
uint64_t kv_repl_backlog(const node_t *n);
/* Hints given up so far (overflow, failed peers, no memory). */
uint64_t kv_repl_lost(const node_t *n);
void kv_repl_fini(node_t *n);

/* kv_maint.c */
/* Remove key if it still is this tombstone. Returns true if removed. */
bool kv_maint_purge_local(node_t *n, const uint8_t *key, size_t key_len, kv_version_t version);
void kv_maint_serve_drop(node_t *n, const uint8_t *ident, size_t ident_len, const wire_msg_t *m);
/* Stop forgetting dropped ranges (node shutdown). */
void kv_maint_fini(node_t *n);
/*
 * Tombstones of (lo, hi] older than the grace period are forgotten here and
 * at the other members of reps (called once a round found them all in sync).
 */
void kv_maint_purge(node_t *n, ring_id_t lo, ring_id_t hi, const ring_id_t *reps, size_t nrep);
/* Forget our copy of (lo, hi], in batches off the request path. */
void kv_maint_drop(node_t *n, ring_id_t lo, ring_id_t hi);
/* True while a dropped range holding pos is being forgotten. */
bool kv_maint_dropping(const node_t *n, ring_id_t pos);
/* The leave's hand-off is over (or given up): run its done callback once. */
void kv_handoff_finish(node_t *n);

/* kv_parts.c: maintenance under token placement (node_place_on) */
/* From kv_tick: run or continue the pass over the partitions. */
void kv_parts_tick(node_t *n);
/*
 * Leaving: hand every partition we hold to its replica set (we are out of
 * the placement), in passes until each is handed over. Returns non-zero
 * when there is something to hand over (0: nothing to do);
 * kv_handoff_finish runs when the last partition is through (or the
 * leave's time limit in kv_handoff runs out first).
 */
unsigned kv_parts_handoff(node_t *n);
/*
 * True while we hand over (and then forget) the partition holding pos: a
 * replica's write there is refused rather than acknowledged.
 */
bool kv_parts_draining(const node_t *n, ring_id_t pos);
/* Keys we are the placement's primary for and how many lack copies, as last counted. */
void kv_parts_stats(node_t *n, uint64_t *primary, uint64_t *under);
void kv_parts_fini(node_t *n);

#endif
