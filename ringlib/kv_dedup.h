/*
 * kv_dedup.h — a coordinator's memory of recent client writes, so a retry
 * is answered with the first attempt's outcome instead of running again
 * (Raft's client sessions, Ongaro's thesis §6.3, without the session
 * registration: a client's id is random and the table forgets it in LRU
 * order).
 *
 * Keyed by a write's identity (kv_opid_t: client id, sequence number). Per
 * client the table keeps the last `per_client` operations, for at most
 * `max_clients` clients. An entry is RUNNING (the first attempt is queued
 * or in progress; the caller keeps an opaque owner pointer, to which a
 * retry is attached) or DONE (its outcome is kept). Only DONE entries are
 * evicted: a RUNNING one must stay findable, or a retry of it would run
 * a second time; when nothing can be evicted kv_dedup_begin refuses with
 * -EAGAIN, which the coordinator answers without running the write.
 *
 * Pure: no I/O, no clock; memory grows with the clients seen, up to
 * max_clients x per_client entries.
 */
#ifndef KV_DEDUP_H
#define KV_DEDUP_H

#include "kv_version.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct kv_dedup kv_dedup_t;

typedef enum {
    KV_DEDUP_NEW,     /* not seen: now RUNNING with the given owner; run it */
    KV_DEDUP_RUNNING, /* the first attempt is still running: attach to *owner */
    KV_DEDUP_DONE,    /* finished: answer with *outcome */
} kv_dedup_state_t;

typedef struct {
    int rc;               /* 0 or a negative errno */
    kv_version_t version; /* rc == 0: the version written */
} kv_dedup_outcome_t;

/* A table with both bounds at least 1. NULL when out of memory or a bound is 0. */
kv_dedup_t *kv_dedup_new(size_t max_clients, size_t per_client);
/* Frees the table (owners are the caller's) and sets *d to NULL. */
void kv_dedup_destroy(kv_dedup_t **d);

/*
 * Look id up; if unknown, record it as RUNNING with owner (borrowed, not
 * dereferenced). Returns a kv_dedup_state_t: for KV_DEDUP_RUNNING *owner_out
 * gets the first attempt's owner, for KV_DEDUP_DONE *outcome its outcome.
 * -EAGAIN when id is new and no entry can be evicted (all of the client's
 * entries, or all clients, are running); -ENOMEM; -EINVAL for an unset id.
 * The client becomes the most recently used.
 */
int kv_dedup_begin(kv_dedup_t *d, kv_opid_t id, void *owner, void **owner_out,
                   kv_dedup_outcome_t *outcome);

/*
 * The running op id ended with rc (and version when rc == 0): later
 * lookups get this outcome. Returns 0, or -ENOENT if id is not running.
 */
int kv_dedup_finish(kv_dedup_t *d, kv_opid_t id, int rc, kv_version_t version);

/*
 * Forget id (running or done): a retry of it will run again. For outcomes
 * that do not say whether the write applied (no quorum), where running
 * again — with the stored record's identity check — is the way to find out.
 * Returns 0 or -ENOENT.
 */
int kv_dedup_forget(kv_dedup_t *d, kv_opid_t id);

/* Look id up without changing anything. Returns a kv_dedup_state_t (NEW: unknown). */
kv_dedup_state_t kv_dedup_peek(const kv_dedup_t *d, kv_opid_t id, kv_dedup_outcome_t *outcome);

/* Clients and entries held (for tests and stats). */
size_t kv_dedup_clients(const kv_dedup_t *d);
size_t kv_dedup_entries(const kv_dedup_t *d);

#endif
