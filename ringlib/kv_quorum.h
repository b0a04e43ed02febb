/*
 * kv_quorum.h — bookkeeping of one replicated operation at its coordinator.
 *
 * The coordinator asks every replica and feeds each answer (or failure) in;
 * this decides when the operation succeeded (need answers), when it can no
 * longer succeed (too many failures), which answer is the newest and which
 * replicas answered with something older (read repair targets).
 */
#ifndef KV_QUORUM_H
#define KV_QUORUM_H

#include "kv_version.h"

#include <stdbool.h>
#include <stddef.h>

enum {
    KV_QUORUM_MAX = 16,
    KV_QUORUM_GROUPS = 6, /* kv_quorum_require: at most this many groups */
};

typedef enum {
    KV_QUORUM_PENDING,
    KV_QUORUM_MET,    /* `need` replicas answered successfully */
    KV_QUORUM_FAILED, /* too many failures for `need` to be reachable */
} kv_quorum_state_t;

typedef struct {
    unsigned members; /* bit i: replica i */
    unsigned size, need, ok, failed;
} kv_quorum_group_t;

typedef struct {
    unsigned n, need;
    unsigned ok, failed;
    bool replied[KV_QUORUM_MAX];
    bool success[KV_QUORUM_MAX];
    bool found[KV_QUORUM_MAX];
    kv_version_t version[KV_QUORUM_MAX];
    unsigned ngroups;
    kv_quorum_group_t group[KV_QUORUM_GROUPS];
} kv_quorum_t;

/* n replicas asked (1..KV_QUORUM_MAX), need of them must answer (1..n). */
int kv_quorum_init(kv_quorum_t *q, unsigned n, unsigned need);

/*
 * Besides `need` of all, `need` of the replicas in members (bit i: replica
 * i; the same need for each group) must answer successfully: a read while
 * placement moves asks the new replica set and the old one together and
 * needs a quorum of each, so that it meets every write either one took.
 * need is capped at the group's size. -EINVAL: no such replica, an empty
 * group, more than KV_QUORUM_GROUPS, or answers already counted.
 */
int kv_quorum_require(kv_quorum_t *q, unsigned members, unsigned need);
/*
 * n grows to more (up to KV_QUORUM_MAX): replicas asked after the others,
 * none of which has answered yet; need and the groups are unchanged.
 * -EINVAL if more is smaller than n or too large.
 */
int kv_quorum_extend(kv_quorum_t *q, unsigned more);
/*
 * Replica idx answered: success (found tells whether it holds the key, and
 * version which one) or failure (timeout, error). A second answer from the
 * same replica is ignored. Returns the state after this answer.
 */
kv_quorum_state_t kv_quorum_on_reply(kv_quorum_t *q, unsigned idx, bool success, bool found,
                                     kv_version_t version);
kv_quorum_state_t kv_quorum_state(const kv_quorum_t *q);

/* Index of the successful answer with the newest version; -1 if none found it. */
int kv_quorum_newest(const kv_quorum_t *q);

/*
 * Replicas that answered successfully with an older version than the newest
 * (or without the key while another had it). Writes up to cap indexes.
 */
size_t kv_quorum_stale(const kv_quorum_t *q, unsigned *out, size_t cap);

#endif
