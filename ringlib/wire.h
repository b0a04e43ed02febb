/*
 * wire.h — the dhtfs peer protocol codec (docs/PROTOCOL.md is its grammar).
 *
 * Encoding and decoding only: no sockets, no state. A message travels as one
 * ZeroMQ frame (after the ROUTER envelope) holding a 12-byte header and a
 * type-specific body in network byte order. wire_decode() is the libFuzzer
 * entry point: it validates every length, count and enum and never reads
 * outside [buf, buf + len).
 */
#ifndef WIRE_H
#define WIRE_H

#include "endpoint.h"
#include "kv_version.h"
#include "ring_id.h"
#include "ring_members.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    /*
     * The header's version byte is the layout version of the message: 1
     * for every type; 2 exists only for KV_PUT, REPL_PUT and REPL_GET_R,
     * which then carry a write identity (and KV_PUT the client's budget),
     * and for STATS and STATS_R (the reply then adds progress counters),
     * and for INFO and INFO_R (the reply then adds the sender's member
     * epoch, table size, weight and zone); 3 for STATS and STATS_R (the
     * reply adds, after the version-2 body, what the node's allow-lists
     * hold), for KV_PUT and REPL_PUT (a patch) and for INFO and INFO_R (the
     * reply adds, after the version-2 body, the ring's placement). A node that speaks only 1 (or 2)
     * answers a version-2 (or 3) message with ERROR EPROTONOSUPPORT instead of misreading it.
     */
    WIRE_VERSION = 1,
    WIRE_VERSION_OPID = 2,
    /* Layout 3 means one thing per type (PROTOCOL.md): */
    WIRE_VERSION_PATCH = 3, /* KV_PUT and REPL_PUT: a patch */
    WIRE_VERSION_SEC = 3,   /* STATS and its reply: the allow-lists' counts */
    WIRE_VERSION_PLACE = 3, /* INFO and its reply: layout 2 plus the ring's placement */
    WIRE_TOKENS_MAX = 4096, /* RING_PLACE_TOKENS_MAX */
    WIRE_PROBES_MAX = 64,   /* RING_PLACE_PROBES_MAX */
    WIRE_HEADER_LEN = 12,
    WIRE_SUCC_MAX = 16,
    WIRE_FINGERS_MAX = 64,
    WIRE_ERRMSG_MAX = 256, /* NUL included */
    WIRE_KEY_MAX = 480,    /* LMDB keys are at most 511 bytes, 8 of them the position */
    WIRE_OFFER_MAX = 512,
    /* Entries of one MEMBERS reply page: ~3 KB of every wire_msg_t's tail,
     * which callers (dhtfs fibers too) keep on their stacks. */
    WIRE_MEMBERS_PAGE = 16,
    WIRE_ZONE_MAX = RING_MEMBERS_ZONE_MAX, /* NUL included */
    WIRE_WEIGHT_MAX = RING_MEMBERS_WEIGHT_MAX,
    /* Upper bound of any encoded first frame (an offer of long keys). */
    WIRE_FRAME_MAX = 1024 * 1024,
    /* Largest value a second frame may carry. */
    WIRE_VALUE_MAX = 4 * 1024 * 1024,
};

typedef enum {
    WIRE_PING = 0x01,
    WIRE_INFO = 0x02,
    WIRE_NOTIFY = 0x03,
    WIRE_FIND = 0x04,
    WIRE_FINGERS = 0x05,
    WIRE_UPDATE = 0x06,
    WIRE_LEAVE = 0x07,
    WIRE_MEMBERS = 0x08,  /* a page of the receiver's member table */
    WIRE_KV_GET = 0x10,   /* client -> coordinator */
    WIRE_KV_PUT = 0x11,   /* client -> coordinator (also delete, conditional) */
    WIRE_REPL_GET = 0x12, /* coordinator -> replica */
    WIRE_REPL_PUT = 0x13, /* coordinator or syncing node -> replica */
    WIRE_SYNC_DIGEST = 0x14,
    WIRE_SYNC_OFFER = 0x15,
    WIRE_SYNC_PULL = 0x16,
    WIRE_STATS = 0x17,
    WIRE_SYNC_DROP = 0x18, /* "you are no longer a replica of (lo, hi]" */
    WIRE_KV_READ = 0x19,   /* client -> one replica: its own copy (a client-side quorum read) */
    WIRE_SYNC_SUMS =
        0x1a, /* partitions' (count, digest) in the value frame; reply: those that differ */
    WIRE_REDIRECT = 0x7e, /* reply: "not mine", with a better node to ask */
    WIRE_ERROR = 0x7f,
    WIRE_REPLY = 0x80, /* or-ed into a request type for its reply */
} wire_type_t;

typedef enum {
    WIRE_FIND_ITERATIVE = 0,
    WIRE_FIND_RECURSIVE = 1,
} wire_find_mode_t;

/* NOTIFY roles: what the sender believes it is to the receiver. */
typedef enum {
    WIRE_NOTIFY_PREDECESSOR = 0,
    WIRE_NOTIFY_SUCCESSOR = 1,
} wire_notify_role_t;

typedef struct {
    ring_id_t id;
    char addr[ENDPOINT_MAX];
} wire_node_t;

/* Value flags. */
enum {
    WIRE_FLAG_TOMBSTONE = 0x01,
    /* REPL_PUT only: remove the record if it is this very tombstone. */
    WIRE_FLAG_PURGE = 0x02,
    WIRE_FLAGS_KNOWN = 0x03,
};

/* REPL_GET read modes. */
typedef enum {
    WIRE_READ_FULL = 0,
    WIRE_READ_VERSION = 1, /* version and flags only; the value frame is empty */
} wire_read_mode_t;

/* Conditions of a KV_PUT. */
typedef enum {
    WIRE_COND_NONE = 0,
    WIRE_COND_ABSENT = 1,  /* only if no live value exists */
    WIRE_COND_VERSION = 2, /* only if the current version equals cond_version */
    /* Not a condition: write the value at byte patch_off of the current one. */
    WIRE_COND_PATCH = 3,
} wire_cond_t;

/* One (key, version) pair of a SYNC_OFFER; key borrowed from the frame. */
typedef struct {
    const uint8_t *key;
    uint16_t key_len;
    kv_version_t version;
} wire_offer_t;

/* One member-table entry of a MEMBERS reply (ringlib/ring_members.h). */
typedef struct {
    wire_node_t node;
    uint16_t weight;          /* 1..WIRE_WEIGHT_MAX */
    char zone[WIRE_ZONE_MAX]; /* "" = none; else [A-Za-z0-9._-]{1,31} */
    uint8_t state;            /* a ring_member_state_t */
    uint64_t incarnation;
} wire_member_t;

typedef struct {
    uint8_t i;
    ring_id_t start;
    bool has_node;
    wire_node_t node;
} wire_finger_t;

/*
 * One decoded message. Which fields carry meaning depends on `type`
 * (PROTOCOL.md lists them); the rest are zero after wire_decode(), except
 * the array entries at or past their counts (see the tail below).
 */
typedef struct {
    uint8_t type;
    uint64_t req_id;

    /* INFO reply: the sender's configuration and state */
    uint8_t id_bits, replicas, write_quorum, read_quorum;
    uint64_t keys;

    /* NOTIFY, UPDATE: the node offered; INFO/FINGERS reply: the sender;
     * FIND reply: the owner (done) or the next hop; LEAVE: the leaver;
     * SYNC_PULL: the node that wants the range; SYNC_DROP: the range's
     * authority; REDIRECT: who to ask */
    wire_node_t node;
    /* INFO reply, LEAVE: predecessor; FIND reply: the node that answered */
    bool has_pred;
    wire_node_t pred;
    /* INFO reply, LEAVE: successor list; FIND reply: the replica set;
     * KV_READ reply from the key's authority (done): the other members of
     * its replica set (entries in succ[], at the tail) */
    uint8_t nsucc;

    /* NOTIFY: a wire_notify_role_t */
    uint8_t role;

    /* FIND */
    ring_id_t key;
    uint8_t mode;
    uint8_t hops;
    bool done; /* FIND reply: node is the owner, not a next hop; KV_READ reply: the key's authority
                */

    /* UPDATE: finger index; UPDATE reply: whether it was applied */
    uint8_t index;
    bool applied;

    /* FINGERS reply (entries in fingers[], at the tail) */
    uint8_t nfingers;

    /* ERROR: a positive errno value and a human-readable reason */
    int32_t err_code;
    char err_msg[WIRE_ERRMSG_MAX];

    /* KV_*, REPL_*: the key (borrowed from the decoded frame) */
    const uint8_t *key_bytes;
    uint16_t key_len;
    /* the value's version and flags (replies and REPL_PUT), found (GET replies) */
    kv_version_t version;
    uint8_t flags;
    bool found;
    /* REPL_GET, KV_READ: a wire_read_mode_t */
    uint8_t read_mode;
    /* KV_PUT condition; with WIRE_COND_PATCH, where the value goes in the current one */
    uint8_t cond;
    kv_version_t cond_version;
    uint32_t patch_off;
    /* REPL_PUT in layout 3: the value is a patch at patch_off of the copy at patch_base. */
    bool has_patch;
    kv_version_t patch_base;
    /*
     * KV_PUT, REPL_PUT, REPL_GET_R in layout version 2 (has_opid): the
     * identity of the client write (KV_PUT: this one; REPL_*: the one that
     * made `version`), client never 0. KV_PUT only: the client's remaining
     * budget in ms from receipt (0: none given); a write still queued when
     * it runs out is dropped, never applied; and whether an earlier attempt
     * of this write went unanswered (it may have applied), so a failed
     * condition that the coordinator cannot attribute is reported as an
     * unknown outcome rather than a conflict.
     */
    bool has_opid;
    kv_opid_t opid;
    uint32_t budget_ms;
    bool earlier_unknown;
    /* The value frame (types with wire_type_has_value); set by the transport. */
    const uint8_t *value;
    size_t value_len;

    /* SYNC_DIGEST, SYNC_PULL, SYNC_DROP: positions in (lo, hi] */
    ring_id_t lo, hi;
    /* SYNC_DIGEST reply */
    uint64_t count;
    uint64_t digest[2];
    /* SYNC_OFFER (entries in offers[]); its reply: indexes of the offers
     * the receiver wants (in want[]) */
    uint16_t noffers;
    uint16_t nwant;
    /* STATS reply */
    uint64_t primary_keys, stored_keys, under_replicated, bytes;
    uint64_t disk_total, disk_free; /* bytes of the file system holding the node's data */
    /*
     * STATS and STATS_R in layout version 2 (has_progress): a STATS asks
     * for, and its reply carries, what the node still has to move and what
     * it has moved. Gauges: hint_keys (hinted hand-off backlog), streams
     * (range streams this node is sending: join/leave hand-off, pulls,
     * anti-entropy), stream_keys_left (records of those ranges not yet
     * compared plus records wanted and not yet sent), left_bytes (estimate
     * for hint_keys + stream_keys_left from the node's mean record size).
     * Counters since start: moved_keys, moved_bytes (records and key+value
     * bytes sent by hints and streams).
     */
    bool has_progress;
    uint64_t hint_keys, streams, stream_keys_left, left_bytes;
    uint64_t moved_keys, moved_bytes;
    /*
     * STATS and STATS_R in layout version 3 (has_security, which implies
     * has_progress: the version-2 body comes first): a STATS asks for, and
     * its reply carries, whether the node runs secured (CURVE, --key) and
     * the keys its allow-lists hold now: peer_keys (its own included),
     * client_keys, and restricted_keys (client keys limited to volumes).
     * All 0 on an unsecured node.
     */
    bool has_security;
    bool secured;
    uint32_t peer_keys, client_keys, restricted_keys;

    /*
     * INFO and INFO_R in layout version 2 (has_epoch): an INFO asks for,
     * and its reply carries, the sender's member-table epoch and size and
     * its own weight and zone. MEMBERS_R: epoch and members (the table's
     * size) too.
     */
    bool has_epoch;
    uint64_t epoch;
    uint32_t members;
    uint16_t weight;
    char zone[WIRE_ZONE_MAX];
    /*
     * INFO and INFO_R in layout version 3 (has_place, which implies
     * has_epoch): the reply adds the ring's placement, tokens per unit of
     * weight (0: Chord placement) and probes.
     */
    bool has_place;
    uint16_t tokens;
    uint8_t probes;
    /* MEMBERS: the page starts after id `after` (from the start without has_after) */
    bool has_after;
    ring_id_t after;
    /* MEMBERS_R: more pages follow (ask again after the last entry's id);
     * entries in member[], at the tail */
    bool more;
    uint8_t nmember;

    /*
     * The tail: the arrays, ~29 KB of the ~30 KB struct, meaningful only up
     * to their counts above (nsucc, nfingers, noffers, nwant, nmember). wire_init()
     * and wire_decode() zero everything before `succ` but not the tail, so
     * a KV or REPL message, which uses none of them, costs a ~1 KB memset
     * instead of ~30 KB on every send and receive. Never read an entry at
     * or past its count. `succ` must stay the first tail member.
     */
    wire_node_t succ[WIRE_SUCC_MAX];
    wire_finger_t fingers[WIRE_FINGERS_MAX];
    wire_offer_t offers[WIRE_OFFER_MAX];
    uint16_t want[WIRE_OFFER_MAX];
    wire_member_t member[WIRE_MEMBERS_PAGE];
} wire_msg_t;

/*
 * True for the message types that travel with a second frame holding a
 * value (possibly empty): KV_PUT, REPL_PUT, and the replies of KV_GET,
 * REPL_GET and KV_READ; SYNC_SUMS and its reply (a list of partition sums).
 * Every other type is exactly one frame.
 */
bool wire_type_has_value(uint8_t type);

/*
 * SYNC_SUMS's value frame: a list of partition sums, each WIRE_SUM_BYTES
 * (u16 partition, u64 record count, u64 digest[2], big-endian like the
 * rest of the wire). Token placement's primary sends the sums of the
 * partitions it shares with the receiver; the receiver answers with its
 * own sums of those that differ from its copy.
 */
typedef struct {
    uint32_t part;
    uint64_t count;
    uint64_t digest[2];
} wire_sum_t;
enum { WIRE_SUM_BYTES = 26 };
/* Encode n sums into buf (n * WIRE_SUM_BYTES); -EINVAL if a partition exceeds 16 bits. */
int wire_sums_encode(const wire_sum_t *sums, size_t n, uint8_t *buf);
/*
 * Decode a value frame of len bytes into at most cap sums. Returns their
 * number, or -EBADMSG when len is not a whole number of sums, they are
 * more than cap, or a partition is >= part_count or not above the one
 * before it (a list is sorted and has no repeats).
 */
int wire_sums_decode(const uint8_t *buf, size_t len, uint32_t part_count, wire_sum_t *out,
                     size_t cap);

/* Zero a message (all but the tail's unused array entries) and set its type and request id. */
void wire_init(wire_msg_t *m, uint8_t type, uint64_t req_id);

/*
 * Encode m into buf, in layout version 2 when m->has_opid is set on a type
 * that has it (KV_PUT, REPL_PUT, REPL_GET_R), else 1. Returns the encoded length, -EMSGSIZE when
 * cap is too small, -EINVAL when m holds something the grammar cannot carry (unknown type, count
 * over its limit, endpoint not NUL-terminated in ENDPOINT_MAX, an identity with client 0 or on a
 * type without one).
 */
int wire_encode(const wire_msg_t *m, uint8_t *buf, size_t cap);

/*
 * Decode exactly len bytes into *out (fully overwritten). Keys in the result
 * point into buf: they are valid only while buf is. The value frame is not
 * part of buf; the transport sets out->value itself. Returns 0,
 * -EPROTONOSUPPORT for a layout version the type does not have, -EOPNOTSUPP
 * for a type this build does not know (a newer peer's request: in both cases
 * out->type and out->req_id are still set so the receiver can reply with an
 * error), or -EBADMSG for anything malformed: bad magic, truncated or
 * trailing bytes, a count over its limit, an endpoint that is empty, too long
 * or not printable, a boolean other than 0/1.
 */
int wire_decode(const uint8_t *buf, size_t len, wire_msg_t *out);

/* Name of a message type for logs ("FIND", "FIND_R", "?"). */
const char *wire_type_name(uint8_t type);

/* Copy a NUL-terminated endpoint into a wire node (truncated safely). */
void wire_node_set(wire_node_t *n, ring_id_t id, const char *addr);

#endif
