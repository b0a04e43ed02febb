/*
 * kv_known.h — what a key's authority knows to be the newest version of a
 * key, so a conditional write can check its condition against the
 * authority's own copy instead of reading a quorum first.
 *
 * An entry (key -> version V, or "absent") says: no version of the key
 * newer than V exists anywhere — on a replica, in a hint queue, in flight —
 * other than what the write holding the key's slot at this authority
 * writes. Writes to a key are serialised at its authority, and each one
 * goes to the authority's own copy first (synchronously, before any
 * replica sees it), so an entry that still equals the authority's copy
 * means nobody wrote the key since: its copy is the newest version, and a
 * condition checked against it is checked against the truth.
 *
 * Entries are made and carried forward only by facts about every replica:
 *  - all N replicas took a write of ours (kv_known_all_took), or all N
 *    answered one read with the same version and so does our copy
 *    (kv_known_all_agree);
 *  - a write of ours that reached its quorum moves an existing entry to its
 *    version (kv_known_written): only the slot holder writes newer ones.
 * and they end with what ends that reasoning:
 *  - kv_known_forget (all entries): the predecessor or successors changed
 *    (kv_known_set_epoch), another coordinator wrote to our range, our own
 *    copy failed to take a write, or something suggests the others may
 *    have stopped hearing us and be about to take our range (a peer missed
 *    a deadline, our loop stalled, our successor does not name us its
 *    predecessor) — the caller's to detect;
 *  - kv_known_drop (one key): a write that failed part way, or a replica
 *    that holds a newer version than we wrote.
 * An op takes a ticket (kv_known_ticket) when it starts; whatever it learnt
 * is not recorded if entries were forgotten meanwhile.
 *
 * Pure: no I/O; bounded in bytes (least recently used entries go first).
 */
#ifndef KV_KNOWN_H
#define KV_KNOWN_H

#include "kv_version.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct kv_known kv_known_t;

/* A table of at most max_bytes; NULL without memory. */
kv_known_t *kv_known_new(size_t max_bytes);
void kv_known_destroy(kv_known_t **k);

/* Forget everything if epoch (ring_state_epoch) differs from the last one seen. */
void kv_known_set_epoch(kv_known_t *k, uint64_t epoch);
void kv_known_forget(kv_known_t *k);
void kv_known_drop(kv_known_t *k, const void *key, size_t key_len);

/* Taken when an op starts; handed back to record what it learnt. */
uint64_t kv_known_ticket(const kv_known_t *k);

/*
 * Whether our copy (local_found, local_version) is known to be the newest
 * version of key anywhere. Counts a hit or a miss.
 */
bool kv_known_check(kv_known_t *k, const void *key, size_t key_len, bool local_found,
                    kv_version_t local_version);

/* A write of ours (version v) reached its quorum: an existing entry moves to v. */
void kv_known_written(kv_known_t *k, const void *key, size_t key_len, uint64_t ticket,
                      kv_version_t v);

/* Every replica, our copy included, took our write of version v. */
void kv_known_all_took(kv_known_t *k, const void *key, size_t key_len, uint64_t ticket,
                       kv_version_t v);

/*
 * Every replica answered one read with (found, v), and our copy now holds
 * (local_found, local_version).
 */
void kv_known_all_agree(kv_known_t *k, const void *key, size_t key_len, uint64_t ticket, bool found,
                        kv_version_t v, bool local_found, kv_version_t local_version);

size_t kv_known_count(const kv_known_t *k);
uint64_t kv_known_hits(const kv_known_t *k);
uint64_t kv_known_misses(const kv_known_t *k);

#endif
