/*
 * kv_version.h — versions that totally order the writes to one key.
 *
 * A version is a hybrid logical clock reading (milliseconds << 16 | a
 * logical counter) taken by the coordinating node, with that node's id as
 * the tie-break. Two writes never get the same version (the coordinator id
 * differs, or the clock advanced), so every replica keeps the same winner.
 */
#ifndef KV_VERSION_H
#define KV_VERSION_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    uint64_t hlc;
    uint64_t node;
} kv_version_t;

enum {
    KV_VERSION_STR_MAX = 34, /* "%016x.%016x" + NUL */
};

/*
 * The identity of one client write: a client instance's random id and the
 * operation's sequence number, the same on every retry of that operation.
 * Replicas keep the identity of the write that made a record's version, so
 * a retry that finds its own identity on the newest version knows it was
 * applied. client 0 means "no identity" (old clients, anti-entropy copies).
 */
typedef struct {
    uint64_t client;
    uint64_t seq;
} kv_opid_t;

static inline bool kv_opid_is_set(kv_opid_t id)
{
    return id.client != 0;
}

static inline bool kv_opid_equal(kv_opid_t a, kv_opid_t b)
{
    return a.client == b.client && a.seq == b.seq;
}

/* <0, 0, >0 like memcmp: hlc first, then node. */
int kv_version_cmp(kv_version_t a, kv_version_t b);
bool kv_version_is_zero(kv_version_t v);

/* Lowercase "hlc.node", 16 hex digits each. */
void kv_version_to_str(kv_version_t v, char buf[KV_VERSION_STR_MAX]);
/* Parse what kv_version_to_str printed. Returns 0 or -EINVAL. */
int kv_version_parse(const char *s, kv_version_t *out);

typedef struct {
    uint64_t last;
} kv_clock_t;

/*
 * Next clock reading at wall time wall_ms: strictly greater than every
 * reading returned or observed before, and close to wall time when the
 * wall clock is ahead.
 */
uint64_t kv_clock_tick(kv_clock_t *c, uint64_t wall_ms);
/*
 * Fold in a reading seen from another node, so later ticks exceed it. The
 * caller must refuse readings far ahead of its wall clock (a hostile or
 * broken peer could otherwise push the clock to its end, where it saturates).
 */
void kv_clock_observe(kv_clock_t *c, uint64_t hlc);

#endif
