/*
 * test_wire.c — the peer protocol codec.
 *
 * Every message type is round-tripped with its fields filled (and with the
 * largest lists and endpoints the grammar allows); every way a frame can be
 * malformed is built from a valid encoding by patching or cutting it, so the
 * refusal under test is the only thing wrong with the frame.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

/* Offsets in the 12-byte header: 'D' 'H' version type req_id(8). */
enum { OFF_MAGIC0 = 0, OFF_MAGIC1 = 1, OFF_VERSION = 2, OFF_TYPE = 3, OFF_BODY = 12 };

static const uint8_t all_types[] = {
    WIRE_PING,
    WIRE_PING | WIRE_REPLY,
    WIRE_INFO,
    WIRE_INFO | WIRE_REPLY,
    WIRE_NOTIFY,
    WIRE_NOTIFY | WIRE_REPLY,
    WIRE_FIND,
    WIRE_FIND | WIRE_REPLY,
    WIRE_FINGERS,
    WIRE_FINGERS | WIRE_REPLY,
    WIRE_UPDATE,
    WIRE_UPDATE | WIRE_REPLY,
    WIRE_LEAVE,
    WIRE_LEAVE | WIRE_REPLY,
    WIRE_MEMBERS,
    WIRE_MEMBERS | WIRE_REPLY,
    WIRE_ERROR,
    WIRE_KV_GET,
    WIRE_KV_GET | WIRE_REPLY,
    WIRE_KV_PUT,
    WIRE_KV_PUT | WIRE_REPLY,
    WIRE_REPL_GET,
    WIRE_REPL_GET | WIRE_REPLY,
    WIRE_REPL_PUT,
    WIRE_REPL_PUT | WIRE_REPLY,
    WIRE_SYNC_DIGEST,
    WIRE_SYNC_DIGEST | WIRE_REPLY,
    WIRE_SYNC_OFFER,
    WIRE_SYNC_OFFER | WIRE_REPLY,
    WIRE_SYNC_PULL,
    WIRE_SYNC_PULL | WIRE_REPLY,
    WIRE_STATS,
    WIRE_STATS | WIRE_REPLY,
    WIRE_SYNC_DROP,
    WIRE_SYNC_DROP | WIRE_REPLY,
    WIRE_KV_READ,
    WIRE_KV_READ | WIRE_REPLY,
    WIRE_REDIRECT,
};
enum { NTYPES = sizeof all_types / sizeof all_types[0] };

/* Type bytes the grammar leaves unassigned. */
static const uint8_t unknown_types[] = {0x00, 0x09, 0x0f, 0x1b, 0x1f, 0x20, 0x40, 0x60,
                                        0x7d, 0x80, 0x89, 0x9b, 0xa0, 0xfe, 0xff};

/* The types whose messages travel with a value frame. */
static const uint8_t value_types[] = {WIRE_KV_PUT,
                                      WIRE_REPL_PUT,
                                      WIRE_KV_GET | WIRE_REPLY,
                                      WIRE_REPL_GET | WIRE_REPLY,
                                      WIRE_KV_READ | WIRE_REPLY,
                                      WIRE_SYNC_SUMS,
                                      WIRE_SYNC_SUMS | WIRE_REPLY};

/*
 * Binary key bytes (NUL and 0xff included) that messages borrow; offers
 * point at different places in it, so keys may overlap.
 */
static uint8_t key_pattern[WIRE_KEY_MAX];

static const uint8_t *keys(void)
{
    for (size_t k = 0; k < WIRE_KEY_MAX; k++)
        key_pattern[k] = (uint8_t)(k * 37 + 11);
    key_pattern[1] = 0x00;
    key_pattern[2] = 0xff;
    return key_pattern;
}

/* A version with every byte distinct, so byte order mistakes show. */
static kv_version_t test_version(unsigned salt)
{
    kv_version_t v = {0x0102030405060708ull + salt, 0xf1e2d3c4b5a69788ull - salt};
    return v;
}

/* The lowest flag bit the grammar does not define. */
static uint8_t unknown_flag(void)
{
    for (unsigned bit = 1; bit < 0x100; bit <<= 1)
        if (!(bit & WIRE_FLAGS_KNOWN))
            return (uint8_t)bit;
    fail_msg("every flag bit is known");
    return 0;
}

/* Messages are tens of KiB: keep them off the stack. */
static wire_msg_t *msg_new(void)
{
    wire_msg_t *m = calloc(1, sizeof *m);
    assert_non_null(m);
    return m;
}

static void long_addr(char buf[ENDPOINT_MAX], char fill, size_t len)
{
    memcpy(buf, "tcp://", 6);
    memset(buf + 6, fill, len - 6);
    buf[len] = '\0';
}

/*
 * A message of the given type with every field its type carries set to
 * something non-zero; `big` selects full lists and 127-character endpoints.
 */
static void fill_msg(wire_msg_t *m, uint8_t type, bool big)
{
    wire_init(m, type, 0x0102030405060708ull);
    char addr[ENDPOINT_MAX];
    if (big)
        long_addr(addr, 'n', ENDPOINT_MAX - 1);
    else
        strcpy(addr, "tcp://10.0.0.1:7001");
    uint8_t nsucc = big ? WIRE_SUCC_MAX : 3;
    switch (type) {
    case WIRE_INFO | WIRE_REPLY:
        m->id_bits = 64;
        m->replicas = 3;
        m->write_quorum = 2;
        m->read_quorum = 2;
        m->keys = 0xfedcba9876543210ull;
        /* fall through */
    case WIRE_LEAVE:
    case WIRE_FIND | WIRE_REPLY:
        wire_node_set(&m->node, 0xaaaaaaaaaaaaaaaaull, addr);
        m->has_pred = true;
        wire_node_set(&m->pred, 0x1111, big ? addr : "[::1]:7002");
        m->nsucc = nsucc;
        for (uint8_t k = 0; k < nsucc; k++) {
            char a[ENDPOINT_MAX];
            strcpy(a, addr);
            a[6] = (char)('a' + k);
            wire_node_set(&m->succ[k], 0x2000u + k, a);
        }
        if (type == (WIRE_FIND | WIRE_REPLY)) {
            m->done = true;
            m->hops = 17;
        }
        break;
    case WIRE_NOTIFY:
        wire_node_set(&m->node, UINT64_MAX, addr);
        m->role = WIRE_NOTIFY_SUCCESSOR;
        break;
    case WIRE_UPDATE:
        m->index = 63;
        wire_node_set(&m->node, 42, addr);
        break;
    case WIRE_UPDATE | WIRE_REPLY:
        m->applied = true;
        break;
    case WIRE_FIND:
        m->key = 0x8000000000000001ull;
        m->mode = WIRE_FIND_RECURSIVE;
        m->hops = 255;
        break;
    case WIRE_FINGERS | WIRE_REPLY:
        m->id_bits = 64;
        wire_node_set(&m->node, 7, addr);
        m->nfingers = big ? WIRE_FINGERS_MAX : 6;
        for (uint8_t i = 0; i < m->nfingers; i++) {
            wire_finger_t *f = &m->fingers[i];
            f->i = i;
            f->start = 7 + ((uint64_t)1 << i);
            /* A few entries are unknown. */
            f->has_node = i % 5 != 3;
            if (f->has_node)
                wire_node_set(&f->node, 1000 + i, addr);
        }
        break;
    case WIRE_KV_GET:
    case WIRE_REPL_GET:
    case WIRE_KV_READ:
        m->key_bytes = keys();
        m->key_len = big ? WIRE_KEY_MAX : 11;
        if (type != WIRE_KV_GET)
            m->read_mode = big ? WIRE_READ_FULL : WIRE_READ_VERSION;
        break;
    case WIRE_KV_READ | WIRE_REPLY:
        m->found = true;
        m->version = test_version(6);
        m->done = true;
        m->nsucc = nsucc;
        for (uint8_t k = 0; k < nsucc; k++)
            wire_node_set(&m->succ[k], 0x3000u + k, addr);
        break;
    case WIRE_KV_GET | WIRE_REPLY:
    case WIRE_REPL_GET | WIRE_REPLY:
        m->found = true;
        m->version = test_version(1);
        m->flags = WIRE_FLAG_TOMBSTONE;
        break;
    case WIRE_KV_PUT:
        m->key_bytes = keys();
        m->key_len = big ? WIRE_KEY_MAX : 11;
        m->flags = WIRE_FLAG_TOMBSTONE;
        m->cond = WIRE_COND_VERSION;
        m->cond_version = test_version(2);
        break;
    case WIRE_KV_PUT | WIRE_REPLY:
        m->version = test_version(3);
        break;
    case WIRE_REPL_PUT:
        m->key_bytes = keys();
        m->key_len = big ? WIRE_KEY_MAX : 11;
        m->version = test_version(4);
        m->flags = WIRE_FLAG_TOMBSTONE;
        break;
    case WIRE_REPL_PUT | WIRE_REPLY:
        m->applied = true;
        m->version = test_version(5);
        break;
    case WIRE_SYNC_PULL:
    case WIRE_SYNC_DROP:
        wire_node_set(&m->node, 0x9999999999999999ull, addr);
        /* fall through */
    case WIRE_SYNC_DIGEST:
        m->lo = 0xfedcba9876543210ull;
        m->hi = 0x0123456789abcdefull;
        break;
    case WIRE_SYNC_DIGEST | WIRE_REPLY:
        m->count = 0x1112131415161718ull;
        m->digest[0] = 0x2122232425262728ull;
        m->digest[1] = 0x3132333435363738ull;
        break;
    case WIRE_SYNC_OFFER:
        /*
         * The full count, but short keys even when big: the truncation and
         * EMSGSIZE tests cut at every offset. A frame of the largest keys
         * has its own test.
         */
        m->noffers = big ? WIRE_OFFER_MAX : 5;
        for (unsigned i = 0; i < m->noffers; i++) {
            m->offers[i].key = keys() + i % 7;
            m->offers[i].key_len = (uint16_t)(1 + i % 17);
            m->offers[i].version = test_version(i);
        }
        break;
    case WIRE_SYNC_OFFER | WIRE_REPLY:
        m->nwant = big ? WIRE_OFFER_MAX : 4;
        for (unsigned i = 0; i < m->nwant; i++)
            m->want[i] = (uint16_t)(i * 2 + 1);
        m->want[m->nwant - 1] = 0xffff;
        break;
    case WIRE_STATS | WIRE_REPLY:
        m->primary_keys = 0x4142434445464748ull;
        m->stored_keys = 0x5152535455565758ull;
        m->under_replicated = 0x6162636465666768ull;
        m->bytes = UINT64_MAX;
        break;
    case WIRE_REDIRECT:
        wire_node_set(&m->node, 0x7777777777777777ull, addr);
        break;
    case WIRE_MEMBERS:
        m->has_after = true;
        m->after = 0x8877665544332211ull;
        break;
    case WIRE_MEMBERS | WIRE_REPLY:
        m->epoch = 0x0f0e0d0c0b0a0908ull;
        m->members = 0x01020304u;
        m->more = true;
        m->nmember = big ? WIRE_MEMBERS_PAGE : 3;
        for (unsigned i = 0; i < m->nmember; i++) {
            wire_member_t *e = &m->member[i];
            wire_node_set(&e->node, 0x4000u + i, addr);
            e->weight = (uint16_t)(1 + i % WIRE_WEIGHT_MAX);
            if (big)
                memset(e->zone, 'z', WIRE_ZONE_MAX - 1);
            else if (i % 2)
                strcpy(e->zone, "rack-1");
            e->state = (uint8_t)(i % (RING_MEMBER_STATE_MAX + 1));
            e->incarnation = 0xa1a2a3a4a5a6a7a8ull - i;
        }
        break;
    case WIRE_ERROR:
        m->err_code = ENOENT;
        if (big) {
            memset(m->err_msg, 'e', WIRE_ERRMSG_MAX - 1);
            m->err_msg[WIRE_ERRMSG_MAX - 1] = '\0';
        } else {
            strcpy(m->err_msg, "no such key: caf\xc3\xa9 \x01\x7f");
        }
        break;
    default:
        break;
    }
}

static void assert_version_equal(kv_version_t a, kv_version_t b)
{
    assert_true(a.hlc == b.hlc);
    assert_true(a.node == b.node);
}

static void assert_node_equal(const wire_node_t *a, const wire_node_t *b)
{
    assert_true(a->id == b->id);
    assert_string_equal(a->addr, b->addr);
}

/* Field by field: decode leaves what a type does not carry at zero (arrays: up to their counts). */
static void assert_msg_equal(const wire_msg_t *a, const wire_msg_t *b)
{
    assert_int_equal(a->type, b->type);
    assert_true(a->req_id == b->req_id);
    assert_int_equal(a->id_bits, b->id_bits);
    assert_int_equal(a->replicas, b->replicas);
    assert_int_equal(a->write_quorum, b->write_quorum);
    assert_int_equal(a->read_quorum, b->read_quorum);
    assert_true(a->keys == b->keys);
    assert_node_equal(&a->node, &b->node);
    assert_int_equal(a->has_pred, b->has_pred);
    assert_node_equal(&a->pred, &b->pred);
    assert_int_equal(a->nsucc, b->nsucc);
    /* the tail's arrays only up to their counts: decode leaves the rest as it was */
    for (unsigned k = 0; k < a->nsucc; k++)
        assert_node_equal(&a->succ[k], &b->succ[k]);
    assert_int_equal(a->role, b->role);
    assert_true(a->key == b->key);
    assert_int_equal(a->mode, b->mode);
    assert_int_equal(a->hops, b->hops);
    assert_int_equal(a->done, b->done);
    assert_int_equal(a->index, b->index);
    assert_int_equal(a->applied, b->applied);
    assert_int_equal(a->nfingers, b->nfingers);
    for (unsigned i = 0; i < a->nfingers; i++) {
        assert_int_equal(a->fingers[i].i, b->fingers[i].i);
        assert_true(a->fingers[i].start == b->fingers[i].start);
        assert_int_equal(a->fingers[i].has_node, b->fingers[i].has_node);
        if (a->fingers[i].has_node)
            assert_node_equal(&a->fingers[i].node, &b->fingers[i].node);
    }
    assert_int_equal(a->err_code, b->err_code);
    assert_string_equal(a->err_msg, b->err_msg);

    assert_int_equal(a->key_len, b->key_len);
    assert_int_equal(a->key_bytes == NULL, b->key_bytes == NULL);
    if (a->key_len)
        assert_memory_equal(a->key_bytes, b->key_bytes, a->key_len);
    assert_version_equal(a->version, b->version);
    assert_int_equal(a->flags, b->flags);
    assert_int_equal(a->found, b->found);
    assert_int_equal(a->cond, b->cond);
    assert_version_equal(a->cond_version, b->cond_version);
    assert_int_equal(a->patch_off, b->patch_off);
    assert_int_equal(a->has_patch, b->has_patch);
    assert_version_equal(a->patch_base, b->patch_base);
    assert_int_equal(a->read_mode, b->read_mode);
    assert_true(a->value == b->value);
    assert_int_equal(a->value_len, b->value_len);
    assert_true(a->lo == b->lo);
    assert_true(a->hi == b->hi);
    assert_true(a->count == b->count);
    assert_true(a->digest[0] == b->digest[0]);
    assert_true(a->digest[1] == b->digest[1]);
    assert_int_equal(a->noffers, b->noffers);
    for (unsigned i = 0; i < a->noffers; i++) {
        const wire_offer_t *oa = &a->offers[i], *ob = &b->offers[i];
        assert_int_equal(oa->key_len, ob->key_len);
        assert_int_equal(oa->key == NULL, ob->key == NULL);
        if (oa->key_len)
            assert_memory_equal(oa->key, ob->key, oa->key_len);
        assert_version_equal(oa->version, ob->version);
    }
    assert_int_equal(a->nwant, b->nwant);
    for (unsigned i = 0; i < a->nwant; i++)
        assert_int_equal(a->want[i], b->want[i]);
    assert_int_equal(a->has_opid, b->has_opid);
    assert_true(a->opid.client == b->opid.client);
    assert_true(a->opid.seq == b->opid.seq);
    assert_true(a->budget_ms == b->budget_ms);
    assert_int_equal(a->earlier_unknown, b->earlier_unknown);
    assert_true(a->primary_keys == b->primary_keys);
    assert_true(a->stored_keys == b->stored_keys);
    assert_true(a->under_replicated == b->under_replicated);
    assert_true(a->bytes == b->bytes);
    assert_true(a->disk_total == b->disk_total);
    assert_true(a->disk_free == b->disk_free);
    assert_int_equal(a->has_progress, b->has_progress);
    assert_true(a->hint_keys == b->hint_keys);
    assert_true(a->streams == b->streams);
    assert_true(a->stream_keys_left == b->stream_keys_left);
    assert_true(a->left_bytes == b->left_bytes);
    assert_true(a->moved_keys == b->moved_keys);
    assert_true(a->moved_bytes == b->moved_bytes);
    assert_int_equal(a->has_security, b->has_security);
    assert_int_equal(a->secured, b->secured);
    assert_true(a->peer_keys == b->peer_keys);
    assert_true(a->client_keys == b->client_keys);
    assert_true(a->restricted_keys == b->restricted_keys);
    assert_int_equal(a->has_epoch, b->has_epoch);
    assert_true(a->epoch == b->epoch);
    assert_int_equal(a->members, b->members);
    assert_int_equal(a->weight, b->weight);
    assert_string_equal(a->zone, b->zone);
    assert_int_equal(a->has_place, b->has_place);
    assert_int_equal(a->tokens, b->tokens);
    assert_int_equal(a->probes, b->probes);
    assert_int_equal(a->has_after, b->has_after);
    assert_true(a->after == b->after);
    assert_int_equal(a->more, b->more);
    assert_int_equal(a->nmember, b->nmember);
    for (unsigned i = 0; i < a->nmember; i++) {
        const wire_member_t *ea = &a->member[i], *eb = &b->member[i];
        assert_node_equal(&ea->node, &eb->node);
        assert_int_equal(ea->weight, eb->weight);
        assert_string_equal(ea->zone, eb->zone);
        assert_int_equal(ea->state, eb->state);
        assert_true(ea->incarnation == eb->incarnation);
    }
}

/* Keys of a decoded message point into the frame it was decoded from. */
static void assert_keys_borrowed(const wire_msg_t *out, const uint8_t *buf, size_t len)
{
    if (out->key_bytes) {
        assert_true(out->key_bytes >= buf && out->key_bytes + out->key_len <= buf + len);
    }
    for (unsigned i = 0; i < out->noffers; i++) {
        const wire_offer_t *o = &out->offers[i];
        assert_true(o->key >= buf && o->key + o->key_len <= buf + len);
    }
}

static uint8_t frame[WIRE_FRAME_MAX + 64];

static size_t encode_ok(const wire_msg_t *m)
{
    int n = wire_encode(m, frame, WIRE_FRAME_MAX);
    if (n <= 0)
        fail_msg("encode of type 0x%02x failed: %d", m->type, n);
    assert_true(n >= WIRE_HEADER_LEN && n <= WIRE_FRAME_MAX);
    return (size_t)n;
}

static void assert_decode(const uint8_t *buf, size_t len, int want)
{
    wire_msg_t *out = msg_new();
    int rc = wire_decode(buf, len, out);
    if (rc != want)
        fail_msg("decode of %zu bytes (type 0x%02x): %d, expected %d", len,
                 len > OFF_TYPE ? buf[OFF_TYPE] : 0, rc, want);
    free(out);
}

static void roundtrip(uint8_t type, bool big)
{
    wire_msg_t *m = msg_new(), *out = msg_new();
    fill_msg(m, type, big);
    size_t n = encode_ok(m);
    assert_int_equal(frame[OFF_MAGIC0], 'D');
    assert_int_equal(frame[OFF_MAGIC1], 'H');
    assert_int_equal(frame[OFF_VERSION], WIRE_VERSION);
    assert_int_equal(frame[OFF_TYPE], type);
    memset(out, 0x5a, sizeof *out);
    assert_int_equal(wire_decode(frame, n, out), 0);
    assert_msg_equal(m, out);
    assert_keys_borrowed(out, frame, n);
    free(m);
    free(out);
}

static void test_wire_encode_roundtrip_every_type(void **state)
{
    (void)state;
    for (size_t t = 0; t < NTYPES; t++)
        roundtrip(all_types[t], false);
}

static void test_wire_encode_roundtrip_max_sizes(void **state)
{
    (void)state;
    for (size_t t = 0; t < NTYPES; t++)
        roundtrip(all_types[t], true);
}

static void test_wire_encode_header_only(void **state)
{
    (void)state;
    /* Requests without a body are exactly the header, in network byte order. */
    wire_msg_t *m = msg_new();
    wire_init(m, WIRE_PING, 0x0102030405060708ull);
    assert_int_equal(encode_ok(m), WIRE_HEADER_LEN);
    const uint8_t want[WIRE_HEADER_LEN] = {'D', 'H', WIRE_VERSION, WIRE_PING, 1, 2, 3, 4, 5, 6,
                                           7,   8};
    assert_memory_equal(frame, want, WIRE_HEADER_LEN);
    free(m);
}

static void test_wire_encode_body_layout(void **state)
{
    (void)state;
    /* NOTIFY: id (u64 BE), length (u8), endpoint bytes, role (u8). */
    wire_msg_t *m = msg_new();
    wire_init(m, WIRE_NOTIFY, 1);
    wire_node_set(&m->node, 0x1122334455667788ull, "h:1");
    m->role = WIRE_NOTIFY_SUCCESSOR;
    assert_int_equal(encode_ok(m), OFF_BODY + 8 + 1 + 3 + 1);
    const uint8_t body[] = {
        0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 3, 'h', ':', '1', WIRE_NOTIFY_SUCCESSOR};
    assert_memory_equal(frame + OFF_BODY, body, sizeof body);
    free(m);
}

static void test_wire_encode_roundtrip_edge_values(void **state)
{
    (void)state;
    wire_msg_t *m = msg_new(), *out = msg_new();
    /* Negative error codes, an empty message, an absent predecessor. */
    wire_init(m, WIRE_ERROR, UINT64_MAX);
    m->err_code = INT32_MIN;
    size_t n = encode_ok(m);
    assert_int_equal(wire_decode(frame, n, out), 0);
    assert_msg_equal(m, out);

    wire_init(m, WIRE_LEAVE, 0);
    wire_node_set(&m->node, 0, "!");
    n = encode_ok(m);
    assert_int_equal(wire_decode(frame, n, out), 0);
    assert_msg_equal(m, out);

    wire_init(m, WIRE_FIND, 3);
    m->mode = WIRE_FIND_ITERATIVE;
    n = encode_ok(m);
    assert_int_equal(wire_decode(frame, n, out), 0);
    assert_msg_equal(m, out);

    /* Every printable byte is allowed in an endpoint. */
    wire_init(m, WIRE_NOTIFY, 3);
    for (int c = 0x21; c <= 0x7e; c++)
        m->node.addr[c - 0x21] = (char)c;
    n = encode_ok(m);
    assert_int_equal(wire_decode(frame, n, out), 0);
    assert_msg_equal(m, out);
    free(m);
    free(out);
}

static void test_wire_decode_overwrites_output(void **state)
{
    (void)state;
    wire_msg_t *m = msg_new(), *out = msg_new();
    fill_msg(m, WIRE_INFO | WIRE_REPLY, true);
    size_t n = encode_ok(m);
    assert_int_equal(wire_decode(frame, n, out), 0);
    /* A smaller message decoded into the same struct leaves nothing behind. */
    wire_init(m, WIRE_PING, 9);
    n = encode_ok(m);
    assert_int_equal(wire_decode(frame, n, out), 0);
    assert_msg_equal(m, out);
    free(m);
    free(out);
}

static void test_wire_decode_bad_magic(void **state)
{
    (void)state;
    wire_msg_t *m = msg_new();
    fill_msg(m, WIRE_NOTIFY, false);
    size_t n = encode_ok(m);
    frame[OFF_MAGIC0] = 'X';
    assert_decode(frame, n, -EBADMSG);
    frame[OFF_MAGIC0] = 'D';
    frame[OFF_MAGIC1] = 'h';
    assert_decode(frame, n, -EBADMSG);
    frame[OFF_MAGIC1] = 'H';
    assert_decode(frame, n, 0);
    assert_decode(NULL, 0, -EBADMSG);
    free(m);
}

static void test_wire_decode_wrong_version(void **state)
{
    (void)state;
    wire_msg_t *m = msg_new(), *out = msg_new();
    for (size_t t = 0; t < NTYPES; t++) {
        fill_msg(m, all_types[t], false);
        size_t n = encode_ok(m);
        /*
         * Version 2 exists only for the types with a write identity, and
         * STATS; version 3 for STATS...
         */
        bool stats = all_types[t] == WIRE_STATS || all_types[t] == (WIRE_STATS | WIRE_REPLY);
        bool v2 = all_types[t] == WIRE_KV_PUT || all_types[t] == WIRE_REPL_PUT ||
                  all_types[t] == (WIRE_REPL_GET | WIRE_REPLY) || stats ||
                  all_types[t] == WIRE_INFO || all_types[t] == (WIRE_INFO | WIRE_REPLY);
        /* ...and for KV_PUT and REPL_PUT (a patch), and INFO (placement). */
        bool v3 = stats || all_types[t] == WIRE_KV_PUT || all_types[t] == WIRE_REPL_PUT ||
                  all_types[t] == WIRE_INFO || all_types[t] == (WIRE_INFO | WIRE_REPLY);
        const uint8_t versions[] = {0,
                                    v3   ? WIRE_VERSION_PATCH + 1
                                    : v2 ? WIRE_VERSION_OPID + 1
                                         : WIRE_VERSION_OPID,
                                    0xff};
        for (size_t v = 0; v < sizeof versions; v++) {
            frame[OFF_VERSION] = versions[v];
            assert_int_equal(wire_decode(frame, n, out), -EPROTONOSUPPORT);
            /* Enough to address an ERROR reply. */
            assert_int_equal(out->type, all_types[t]);
            assert_true(out->req_id == 0x0102030405060708ull);
        }
    }
    /* The version is checked before the body: a header alone is enough. */
    wire_init(m, WIRE_FIND, 77);
    m->mode = WIRE_FIND_RECURSIVE;
    encode_ok(m);
    frame[OFF_VERSION] = 2;
    assert_int_equal(wire_decode(frame, WIRE_HEADER_LEN, out), -EPROTONOSUPPORT);
    assert_int_equal(out->type, WIRE_FIND);
    assert_int_equal(out->req_id, 77);
    free(m);
    free(out);
}

static void test_wire_decode_unknown_type(void **state)
{
    (void)state;
    wire_msg_t *m = msg_new();
    wire_init(m, WIRE_PING, 1);
    size_t n = encode_ok(m);
    /* Zero, gaps in the type space, a bare REPLY bit, and ERROR | REPLY. */
    wire_msg_t *out = msg_new();
    for (size_t k = 0; k < sizeof unknown_types; k++) {
        frame[OFF_TYPE] = unknown_types[k];
        assert_decode(frame, n, -EOPNOTSUPP);
        /* A body does not make it known. */
        memset(frame + n, 0, 32);
        assert_decode(frame, n + 32, -EOPNOTSUPP);
        /* The receiver can still answer it: type and request id are set. */
        assert_int_equal(wire_decode(frame, n, out), -EOPNOTSUPP);
        assert_int_equal(out->type, unknown_types[k]);
        assert_int_equal(out->req_id, 1);
    }
    /* Bad magic stays malformed whatever the type. */
    frame[0] = 'X';
    assert_decode(frame, n, -EBADMSG);
    free(out);
    free(m);
}

static void test_wire_decode_truncated_everywhere(void **state)
{
    (void)state;
    wire_msg_t *m = msg_new();
    for (int big = 0; big <= 1; big++)
        for (size_t t = 0; t < NTYPES; t++) {
            fill_msg(m, all_types[t], big);
            size_t n = encode_ok(m);
            for (size_t cut = 0; cut < n; cut++)
                assert_decode(frame, cut, -EBADMSG);
            assert_decode(frame, n, 0);
        }
    free(m);
}

static void test_wire_decode_trailing_byte(void **state)
{
    (void)state;
    wire_msg_t *m = msg_new();
    for (size_t t = 0; t < NTYPES; t++) {
        fill_msg(m, all_types[t], false);
        size_t n = encode_ok(m);
        frame[n] = 0;
        assert_decode(frame, n + 1, -EBADMSG);
        frame[n] = 'x';
        assert_decode(frame, n + 1, -EBADMSG);
    }
    free(m);
}

/* Append a node (id, length, bytes) to frame at *n. */
static void append_node(size_t *n, uint64_t id, const char *addr)
{
    for (int b = 7; b >= 0; b--)
        frame[(*n)++] = (uint8_t)(id >> (8 * b));
    size_t len = strlen(addr);
    frame[(*n)++] = (uint8_t)len;
    memcpy(frame + *n, addr, len);
    *n += len;
}

static void test_wire_decode_succ_count_over_limit(void **state)
{
    (void)state;
    /*
     * LEAVE: node, has_pred = 0, count, nodes. Encode 16 successors, then
     * raise the count to 17 and append a well-formed 17th.
     */
    wire_msg_t *m = msg_new();
    wire_init(m, WIRE_LEAVE, 5);
    wire_node_set(&m->node, 1, "a:1");
    m->nsucc = WIRE_SUCC_MAX;
    for (unsigned k = 0; k < WIRE_SUCC_MAX; k++)
        wire_node_set(&m->succ[k], 100 + k, "b:2");
    size_t n = encode_ok(m);
    size_t count_at = OFF_BODY + 8 + 1 + 3 + 1;
    assert_int_equal(frame[count_at], WIRE_SUCC_MAX);
    append_node(&n, 999, "c:3");
    frame[count_at] = WIRE_SUCC_MAX + 1;
    assert_decode(frame, n, -EBADMSG);
    frame[count_at] = 0xff;
    assert_decode(frame, n, -EBADMSG);
    free(m);
}

static void test_wire_decode_finger_count_over_limit(void **state)
{
    (void)state;
    /* FINGERS reply: id_bits, node, count, then (i, start, opt node) each. */
    wire_msg_t *m = msg_new();
    wire_init(m, WIRE_FINGERS | WIRE_REPLY, 5);
    m->id_bits = 64;
    wire_node_set(&m->node, 1, "a:1");
    m->nfingers = WIRE_FINGERS_MAX;
    for (unsigned i = 0; i < WIRE_FINGERS_MAX; i++) {
        m->fingers[i].i = (uint8_t)i;
        m->fingers[i].start = i;
    }
    size_t n = encode_ok(m);
    size_t count_at = OFF_BODY + 1 + 8 + 1 + 3;
    assert_int_equal(frame[count_at], WIRE_FINGERS_MAX);
    /* A 65th entry: i, start, absent node. */
    frame[n++] = 64;
    for (int b = 0; b < 8; b++)
        frame[n++] = 0;
    frame[n++] = 0;
    frame[count_at] = WIRE_FINGERS_MAX + 1;
    assert_decode(frame, n, -EBADMSG);
    free(m);
}

static void test_wire_decode_endpoint_length(void **state)
{
    (void)state;
    size_t n;
    /* NOTIFY with an empty endpoint. */
    memcpy(frame, "DH\x01\x03\0\0\0\0\0\0\0\x01", WIRE_HEADER_LEN);
    n = WIRE_HEADER_LEN;
    append_node(&n, 1, "");
    frame[n++] = WIRE_NOTIFY_PREDECESSOR;
    assert_decode(frame, n, -EBADMSG);
    /* 127 characters are fine, 128 are not even when all present. */
    char addr[ENDPOINT_MAX + 1];
    memset(addr, 'a', ENDPOINT_MAX - 1);
    addr[ENDPOINT_MAX - 1] = '\0';
    n = WIRE_HEADER_LEN;
    append_node(&n, 1, addr);
    frame[n++] = WIRE_NOTIFY_PREDECESSOR;
    assert_decode(frame, n, 0);
    memset(addr, 'a', ENDPOINT_MAX);
    addr[ENDPOINT_MAX] = '\0';
    n = WIRE_HEADER_LEN;
    append_node(&n, 1, addr);
    frame[n++] = WIRE_NOTIFY_PREDECESSOR;
    assert_decode(frame, n, -EBADMSG);
    /* The length byte at its maximum. */
    n = WIRE_HEADER_LEN + 8;
    frame[n++] = 0xff;
    memset(frame + n, 'a', 0xff);
    n += 0xff;
    frame[n++] = WIRE_NOTIFY_PREDECESSOR;
    assert_decode(frame, n, -EBADMSG);
}

static void test_wire_decode_endpoint_not_printable(void **state)
{
    (void)state;
    wire_msg_t *m = msg_new();
    wire_init(m, WIRE_NOTIFY, 1);
    wire_node_set(&m->node, 1, "tcp://h:1");
    size_t n = encode_ok(m);
    size_t addr_at = OFF_BODY + 8 + 1;
    const uint8_t bad[] = {0x00, 0x01, 0x09, 0x0a, 0x1f, 0x20, 0x7f, 0x80, 0xc3, 0xff};
    for (size_t k = 0; k < sizeof bad; k++)
        for (size_t pos = 0; pos < strlen("tcp://h:1"); pos += 4) {
            uint8_t saved = frame[addr_at + pos];
            frame[addr_at + pos] = bad[k];
            assert_decode(frame, n, -EBADMSG);
            frame[addr_at + pos] = saved;
        }
    assert_decode(frame, n, 0);
    free(m);
}

static void test_wire_decode_bool_two(void **state)
{
    (void)state;
    wire_msg_t *m = msg_new();
    size_t n;
    /* UPDATE reply: applied. */
    wire_init(m, WIRE_UPDATE | WIRE_REPLY, 1);
    n = encode_ok(m);
    frame[OFF_BODY] = 2;
    assert_decode(frame, n, -EBADMSG);
    frame[OFF_BODY] = 1;
    assert_decode(frame, n, 0);
    /* FIND reply: done. */
    fill_msg(m, WIRE_FIND | WIRE_REPLY, false);
    n = encode_ok(m);
    frame[OFF_BODY] = 2;
    assert_decode(frame, n, -EBADMSG);
    /* LEAVE: has_pred (after node "a:1"). */
    wire_init(m, WIRE_LEAVE, 1);
    wire_node_set(&m->node, 1, "a:1");
    n = encode_ok(m);
    size_t at = OFF_BODY + 8 + 1 + 3;
    assert_int_equal(frame[at], 0);
    frame[at] = 2;
    assert_decode(frame, n, -EBADMSG);
    /* FINGERS reply: an entry's has_node. */
    wire_init(m, WIRE_FINGERS | WIRE_REPLY, 1);
    wire_node_set(&m->node, 1, "a:1");
    m->nfingers = 1;
    n = encode_ok(m);
    at = n - 1;
    assert_int_equal(frame[at], 0);
    frame[at] = 2;
    assert_decode(frame, n, -EBADMSG);
    free(m);
}

static void test_wire_decode_find_mode(void **state)
{
    (void)state;
    wire_msg_t *m = msg_new(), *out = msg_new();
    wire_init(m, WIRE_FIND, 1);
    size_t n = encode_ok(m);
    size_t at = OFF_BODY + 8;
    for (unsigned mode = 0; mode < 256; mode++) {
        frame[at] = (uint8_t)mode;
        int rc = wire_decode(frame, n, out);
        assert_int_equal(rc, mode <= WIRE_FIND_RECURSIVE ? 0 : -EBADMSG);
        if (rc == 0)
            assert_int_equal(out->mode, mode);
    }
    free(m);
    free(out);
}

static void test_wire_decode_notify_role(void **state)
{
    (void)state;
    wire_msg_t *m = msg_new(), *out = msg_new();
    wire_init(m, WIRE_NOTIFY, 1);
    wire_node_set(&m->node, 1, "a:1");
    size_t n = encode_ok(m);
    size_t at = n - 1;
    for (unsigned role = 0; role < 256; role++) {
        frame[at] = (uint8_t)role;
        int rc = wire_decode(frame, n, out);
        assert_int_equal(rc, role <= WIRE_NOTIFY_SUCCESSOR ? 0 : -EBADMSG);
        if (rc == 0)
            assert_int_equal(out->role, role);
    }
    free(m);
    free(out);
}

static void test_wire_decode_error_message(void **state)
{
    (void)state;
    wire_msg_t *m = msg_new(), *out = msg_new();
    wire_init(m, WIRE_ERROR, 1);
    m->err_code = EIO;
    strcpy(m->err_msg, "ab_cd");
    size_t n = encode_ok(m);
    /* err_code (4), length (2), bytes: an embedded NUL is refused. */
    size_t text = OFF_BODY + 4 + 2;
    frame[text + 2] = '\0';
    assert_decode(frame, n, -EBADMSG);
    frame[text + 4] = '\0';
    frame[text + 2] = '_';
    assert_decode(frame, n, -EBADMSG);
    frame[text + 4] = 'd';
    assert_decode(frame, n, 0);
    /* 255 bytes are the limit (WIRE_ERRMSG_MAX with its NUL). */
    n = OFF_BODY + 4;
    frame[n++] = 0;
    frame[n++] = WIRE_ERRMSG_MAX - 1;
    memset(frame + n, 'z', WIRE_ERRMSG_MAX - 1);
    n += WIRE_ERRMSG_MAX - 1;
    assert_int_equal(wire_decode(frame, n, out), 0);
    assert_int_equal(strlen(out->err_msg), WIRE_ERRMSG_MAX - 1);
    n = OFF_BODY + 4;
    frame[n++] = WIRE_ERRMSG_MAX >> 8;
    frame[n++] = WIRE_ERRMSG_MAX & 0xff;
    memset(frame + n, 'z', WIRE_ERRMSG_MAX);
    n += WIRE_ERRMSG_MAX;
    assert_decode(frame, n, -EBADMSG);
    free(m);
    free(out);
}

static void test_wire_encode_emsgsize(void **state)
{
    (void)state;
    wire_msg_t *m = msg_new();
    uint8_t *buf = malloc(WIRE_FRAME_MAX + 16);
    assert_non_null(buf);
    for (int big = 0; big <= 1; big++)
        for (size_t t = 0; t < NTYPES; t++) {
            fill_msg(m, all_types[t], big);
            size_t n = encode_ok(m);
            for (size_t cap = 0; cap < n; cap++) {
                /* Nothing is written past cap. */
                memset(buf, 0xee, n + 16);
                int rc = wire_encode(m, buf, cap);
                if (rc != -EMSGSIZE)
                    fail_msg("type 0x%02x cap %zu of %zu: %d", all_types[t], cap, n, rc);
                for (size_t k = cap; k < n + 16; k++)
                    assert_int_equal(buf[k], 0xee);
            }
            assert_int_equal(wire_encode(m, buf, n), (int)n);
            assert_memory_equal(buf, frame, n);
        }
    free(buf);
    free(m);
}

static void test_wire_encode_einval(void **state)
{
    (void)state;
    wire_msg_t *m = msg_new();
    uint8_t buf[64];
    /* Unknown types. */
    for (size_t k = 0; k < sizeof unknown_types; k++) {
        wire_init(m, unknown_types[k], 1);
        assert_int_equal(wire_encode(m, frame, WIRE_FRAME_MAX), -EINVAL);
    }
    /* Lists over their limits. */
    fill_msg(m, WIRE_INFO | WIRE_REPLY, false);
    m->nsucc = WIRE_SUCC_MAX + 1;
    assert_int_equal(wire_encode(m, frame, WIRE_FRAME_MAX), -EINVAL);
    fill_msg(m, WIRE_LEAVE, false);
    m->nsucc = 0xff;
    assert_int_equal(wire_encode(m, frame, WIRE_FRAME_MAX), -EINVAL);
    fill_msg(m, WIRE_FINGERS | WIRE_REPLY, false);
    m->nfingers = WIRE_FINGERS_MAX + 1;
    assert_int_equal(wire_encode(m, frame, WIRE_FRAME_MAX), -EINVAL);
    /* Empty or unterminated endpoints, wherever a node is carried. */
    fill_msg(m, WIRE_NOTIFY, false);
    m->node.addr[0] = '\0';
    assert_int_equal(wire_encode(m, frame, WIRE_FRAME_MAX), -EINVAL);
    fill_msg(m, WIRE_UPDATE, false);
    memset(m->node.addr, 'x', ENDPOINT_MAX);
    assert_int_equal(wire_encode(m, frame, WIRE_FRAME_MAX), -EINVAL);
    fill_msg(m, WIRE_FIND | WIRE_REPLY, false);
    m->succ[2].addr[0] = '\0';
    assert_int_equal(wire_encode(m, frame, WIRE_FRAME_MAX), -EINVAL);
    fill_msg(m, WIRE_LEAVE, false);
    m->pred.addr[0] = '\0';
    assert_int_equal(wire_encode(m, frame, WIRE_FRAME_MAX), -EINVAL);
    fill_msg(m, WIRE_FINGERS | WIRE_REPLY, false);
    memset(m->fingers[1].node.addr, 'x', ENDPOINT_MAX);
    assert_int_equal(wire_encode(m, frame, WIRE_FRAME_MAX), -EINVAL);
    /* Invalid beats too small: the message is wrong whatever the room. */
    fill_msg(m, WIRE_NOTIFY, false);
    m->node.addr[0] = '\0';
    assert_int_equal(wire_encode(m, buf, 4), -EINVAL);
    /* Fields a type does not carry are not checked: a PING has no node. */
    wire_init(m, WIRE_PING, 1);
    assert_int_equal(wire_encode(m, frame, WIRE_FRAME_MAX), WIRE_HEADER_LEN);
    /* An absent predecessor's endpoint is not checked either. */
    fill_msg(m, WIRE_LEAVE, false);
    m->has_pred = false;
    m->pred.addr[0] = '\0';
    assert_true(wire_encode(m, frame, WIRE_FRAME_MAX) > 0);
    free(m);
}

/* wire_encode() succeeds only on what wire_decode() accepts back. */
static void assert_encode_decodable(const wire_msg_t *m, const char *what)
{
    wire_msg_t *out = msg_new();
    int rc = wire_encode(m, frame, WIRE_FRAME_MAX);
    if (rc >= 0 && wire_decode(frame, (size_t)rc, out) != 0)
        fail_msg("%s: encoded into %d bytes that wire_decode() refuses", what, rc);
    if (rc < 0)
        assert_int_equal(rc, -EINVAL);
    free(out);
}

static void test_wire_encode_refuses_undecodable(void **state)
{
    (void)state;
    wire_msg_t *m = msg_new();
    wire_init(m, WIRE_FIND, 1);
    m->mode = 2;
    assert_encode_decodable(m, "FIND mode 2");
    wire_init(m, WIRE_NOTIFY, 1);
    wire_node_set(&m->node, 1, "tcp://h:1");
    m->role = 2;
    assert_encode_decodable(m, "NOTIFY role 2");
    const char *addrs[] = {"tcp://a b:1", "ipc:///tmp/x", "ipc:///tmp/cafÃ©", "ipc:///tmp/del"};
    for (size_t k = 0; k < sizeof addrs / sizeof addrs[0]; k++) {
        wire_init(m, WIRE_NOTIFY, 1);
        wire_node_set(&m->node, 1, addrs[k]);
        assert_encode_decodable(m, addrs[k]);
    }
    free(m);
}

static void test_wire_encode_error_truncates_message(void **state)
{
    (void)state;
    wire_msg_t *m = msg_new(), *out = msg_new();
    wire_init(m, WIRE_ERROR, 1);
    memset(m->err_msg, 'q', WIRE_ERRMSG_MAX);
    size_t n = encode_ok(m);
    assert_int_equal(n, OFF_BODY + 4 + 2 + WIRE_ERRMSG_MAX - 1);
    assert_int_equal(wire_decode(frame, n, out), 0);
    assert_int_equal(strlen(out->err_msg), WIRE_ERRMSG_MAX - 1);
    free(m);
    free(out);
}

static void test_wire_type_name_values(void **state)
{
    (void)state;
    assert_string_equal(wire_type_name(WIRE_PING), "PING");
    assert_string_equal(wire_type_name(WIRE_FIND), "FIND");
    assert_string_equal(wire_type_name(WIRE_FIND | WIRE_REPLY), "FIND_R");
    assert_string_equal(wire_type_name(WIRE_LEAVE | WIRE_REPLY), "LEAVE_R");
    assert_string_equal(wire_type_name(WIRE_ERROR), "ERROR");
    assert_string_equal(wire_type_name(0), "?");
    assert_string_equal(wire_type_name(0x80), "?");
    assert_string_equal(wire_type_name(0xff), "?");
    assert_string_equal(wire_type_name(0x09), "?");
    for (size_t t = 0; t < NTYPES; t++)
        assert_string_not_equal(wire_type_name(all_types[t]), "?");
}

static void test_wire_node_set_truncates(void **state)
{
    (void)state;
    wire_node_t node;
    char addr[2 * ENDPOINT_MAX];
    memset(addr, 'a', sizeof addr - 1);
    addr[sizeof addr - 1] = '\0';
    wire_node_set(&node, 5, addr);
    assert_int_equal(node.id, 5);
    assert_int_equal(strlen(node.addr), ENDPOINT_MAX - 1);
    wire_node_set(&node, 6, NULL);
    assert_int_equal(node.id, 6);
    assert_string_equal(node.addr, "");
    wire_node_set(&node, 7, "tcp://h:1");
    assert_string_equal(node.addr, "tcp://h:1");
}

/* Hand-built frames: a header, then fields appended in network byte order. */
static size_t put_header(uint8_t type)
{
    const uint8_t h[WIRE_HEADER_LEN] = {'D', 'H', WIRE_VERSION, type, 0, 0, 0, 0, 0, 0, 0, 1};
    memcpy(frame, h, WIRE_HEADER_LEN);
    return WIRE_HEADER_LEN;
}

static void append_u16(size_t *n, uint16_t v)
{
    frame[(*n)++] = (uint8_t)(v >> 8);
    frame[(*n)++] = (uint8_t)v;
}

static void append_u64(size_t *n, uint64_t v)
{
    for (int b = 7; b >= 0; b--)
        frame[(*n)++] = (uint8_t)(v >> (8 * b));
}

/* A key field claiming key_len bytes, all of them present. */
static void append_key(size_t *n, size_t key_len)
{
    append_u16(n, (uint16_t)key_len);
    memset(frame + *n, 'k', key_len);
    *n += key_len;
}

/*
 * A frame of a keyed type whose key field claims key_len bytes and whose
 * other fields are valid; for SYNC_OFFER, one offer.
 */
static size_t key_frame(uint8_t type, size_t key_len)
{
    size_t n = put_header(type);
    if (type == WIRE_SYNC_OFFER)
        append_u16(&n, 1);
    append_key(&n, key_len);
    switch (type) {
    case WIRE_KV_PUT:
        frame[n++] = 0; /* flags */
        frame[n++] = WIRE_COND_NONE;
        append_u64(&n, 0);
        append_u64(&n, 0);
        break;
    case WIRE_REPL_PUT:
        append_u64(&n, 1);
        append_u64(&n, 2);
        frame[n++] = 0;
        break;
    case WIRE_REPL_GET:
    case WIRE_KV_READ:
        frame[n++] = WIRE_READ_VERSION;
        break;
    case WIRE_SYNC_OFFER:
        append_u64(&n, 1);
        append_u64(&n, 2);
        break;
    default:
        break;
    }
    return n;
}

static const uint8_t keyed_types[] = {WIRE_KV_GET,   WIRE_KV_PUT,  WIRE_REPL_GET,
                                      WIRE_REPL_PUT, WIRE_KV_READ, WIRE_SYNC_OFFER};

static void test_wire_decode_key_length(void **state)
{
    (void)state;
    wire_msg_t *out = msg_new();
    for (size_t t = 0; t < sizeof keyed_types; t++) {
        uint8_t type = keyed_types[t];
        const size_t good[] = {1, 2, WIRE_KEY_MAX - 1, WIRE_KEY_MAX};
        for (size_t k = 0; k < sizeof good / sizeof good[0]; k++) {
            size_t n = key_frame(type, good[k]);
            assert_int_equal(wire_decode(frame, n, out), 0);
            const uint8_t *key = type == WIRE_SYNC_OFFER ? out->offers[0].key : out->key_bytes;
            uint16_t len = type == WIRE_SYNC_OFFER ? out->offers[0].key_len : out->key_len;
            assert_int_equal(len, good[k]);
            /* Borrowed: right after its length in the frame. */
            assert_ptr_equal(key, frame + OFF_BODY + (type == WIRE_SYNC_OFFER ? 4 : 2));
        }
        /* Empty keys, one byte over the limit, and the largest u16. */
        const size_t bad[] = {0, WIRE_KEY_MAX + 1, 511, 512, 0xffff};
        for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
            size_t n = key_frame(type, bad[k]);
            int rc = wire_decode(frame, n, out);
            if (rc != -EBADMSG)
                fail_msg("%s with a %zu-byte key: %d", wire_type_name(type), bad[k], rc);
        }
    }
    free(out);
}

static void test_wire_encode_key_einval(void **state)
{
    (void)state;
    wire_msg_t *m = msg_new();
    for (size_t t = 0; t < sizeof keyed_types; t++) {
        uint8_t type = keyed_types[t];
        const uint16_t bad_len[] = {0, WIRE_KEY_MAX + 1, 0xffff};
        for (size_t k = 0; k < sizeof bad_len / sizeof bad_len[0]; k++) {
            fill_msg(m, type, false);
            if (type == WIRE_SYNC_OFFER)
                m->offers[2].key_len = bad_len[k];
            else
                m->key_len = bad_len[k];
            int rc = wire_encode(m, frame, WIRE_FRAME_MAX);
            if (rc != -EINVAL)
                fail_msg("%s with key_len %u: %d", wire_type_name(type), bad_len[k], rc);
        }
        /* A length without bytes. */
        fill_msg(m, type, false);
        if (type == WIRE_SYNC_OFFER)
            m->offers[4].key = NULL;
        else
            m->key_bytes = NULL;
        assert_int_equal(wire_encode(m, frame, WIRE_FRAME_MAX), -EINVAL);
        /* Invalid beats too small here as well. */
        fill_msg(m, type, false);
        m->key_len = 0;
        m->offers[0].key_len = 0;
        assert_int_equal(wire_encode(m, frame, OFF_BODY + 1), -EINVAL);
    }
    free(m);
}

static void test_wire_encode_body_layout_kv(void **state)
{
    (void)state;
    wire_msg_t *m = msg_new();
    /* KV_PUT: key (u16 length, bytes), flags, cond, cond_version (hlc, node). */
    wire_init(m, WIRE_KV_PUT, 1);
    m->key_bytes = (const uint8_t *)"a\0b";
    m->key_len = 3;
    m->flags = WIRE_FLAG_TOMBSTONE;
    m->cond = WIRE_COND_ABSENT;
    m->cond_version.hlc = 0x0102030405060708ull;
    m->cond_version.node = 0x1112131415161718ull;
    const uint8_t put[] = {0,
                           3,
                           'a',
                           0,
                           'b',
                           WIRE_FLAG_TOMBSTONE,
                           WIRE_COND_ABSENT,
                           0x01,
                           0x02,
                           0x03,
                           0x04,
                           0x05,
                           0x06,
                           0x07,
                           0x08,
                           0x11,
                           0x12,
                           0x13,
                           0x14,
                           0x15,
                           0x16,
                           0x17,
                           0x18};
    assert_int_equal(encode_ok(m), OFF_BODY + sizeof put);
    assert_memory_equal(frame + OFF_BODY, put, sizeof put);

    /* REPL_PUT: key, version, flags. */
    wire_init(m, WIRE_REPL_PUT, 1);
    m->key_bytes = (const uint8_t *)"k";
    m->key_len = 1;
    m->version.hlc = 0xa0a1a2a3a4a5a6a7ull;
    m->version.node = 0xb0b1b2b3b4b5b6b7ull;
    const uint8_t rput[] = {0,    1,    'k',  0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6,
                            0xa7, 0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0};
    assert_int_equal(encode_ok(m), OFF_BODY + sizeof rput);
    assert_memory_equal(frame + OFF_BODY, rput, sizeof rput);

    /* KV_GET reply: found, version, flags. */
    wire_init(m, WIRE_KV_GET | WIRE_REPLY, 1);
    m->found = true;
    m->version.hlc = 1;
    m->version.node = 2;
    const uint8_t getr[] = {1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0};
    assert_int_equal(encode_ok(m), OFF_BODY + sizeof getr);
    assert_memory_equal(frame + OFF_BODY, getr, sizeof getr);

    /* SYNC_OFFER: u16 count, then (key, version) each; reply: u16 count, u16 each. */
    wire_init(m, WIRE_SYNC_OFFER, 1);
    m->noffers = 1;
    m->offers[0].key = (const uint8_t *)"xy";
    m->offers[0].key_len = 2;
    m->offers[0].version.hlc = 3;
    m->offers[0].version.node = 4;
    const uint8_t offer[] = {0, 1, 0, 2, 'x', 'y', 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 4};
    assert_int_equal(encode_ok(m), OFF_BODY + sizeof offer);
    assert_memory_equal(frame + OFF_BODY, offer, sizeof offer);
    wire_init(m, WIRE_SYNC_OFFER | WIRE_REPLY, 1);
    m->nwant = 2;
    m->want[0] = 0x0102;
    m->want[1] = 0xfffe;
    const uint8_t want[] = {0, 2, 0x01, 0x02, 0xff, 0xfe};
    assert_int_equal(encode_ok(m), OFF_BODY + sizeof want);
    assert_memory_equal(frame + OFF_BODY, want, sizeof want);

    /* Requests and replies without a body. */
    const uint8_t empty[] = {WIRE_STATS, WIRE_SYNC_PULL | WIRE_REPLY};
    for (size_t k = 0; k < sizeof empty; k++) {
        wire_init(m, empty[k], 1);
        assert_int_equal(encode_ok(m), WIRE_HEADER_LEN);
    }
    free(m);
}

static void test_wire_encode_roundtrip_kv_edge_values(void **state)
{
    (void)state;
    wire_msg_t *m = msg_new(), *out = msg_new();
    const uint8_t types[] = {WIRE_KV_GET | WIRE_REPLY, WIRE_REPL_GET | WIRE_REPLY};
    /* "Not found" with a zero version, and every known flags value. */
    for (size_t t = 0; t < sizeof types; t++)
        for (unsigned f = 0; f <= WIRE_FLAGS_KNOWN; f++) {
            if (f & ~WIRE_FLAGS_KNOWN)
                continue;
            wire_init(m, types[t], 0);
            m->flags = (uint8_t)f;
            size_t n = encode_ok(m);
            assert_int_equal(wire_decode(frame, n, out), 0);
            assert_msg_equal(m, out);
        }
    /* Every condition, and extreme versions. */
    for (unsigned cond = WIRE_COND_NONE; cond <= WIRE_COND_VERSION; cond++) {
        fill_msg(m, WIRE_KV_PUT, false);
        m->cond = (uint8_t)cond;
        m->flags = 0;
        m->cond_version.hlc = cond == WIRE_COND_VERSION ? UINT64_MAX : 0;
        m->cond_version.node = UINT64_MAX;
        size_t n = encode_ok(m);
        assert_int_equal(wire_decode(frame, n, out), 0);
        assert_msg_equal(m, out);
    }
    /* A REPL_PUT reply that was not applied. */
    wire_init(m, WIRE_REPL_PUT | WIRE_REPLY, 5);
    m->version.hlc = UINT64_MAX;
    size_t n = encode_ok(m);
    assert_int_equal(wire_decode(frame, n, out), 0);
    assert_msg_equal(m, out);
    /* Empty offers and an empty want list. */
    wire_init(m, WIRE_SYNC_OFFER, 6);
    n = encode_ok(m);
    assert_int_equal(n, OFF_BODY + 2);
    assert_int_equal(wire_decode(frame, n, out), 0);
    assert_msg_equal(m, out);
    wire_init(m, WIRE_SYNC_OFFER | WIRE_REPLY, 7);
    n = encode_ok(m);
    assert_int_equal(n, OFF_BODY + 2);
    assert_int_equal(wire_decode(frame, n, out), 0);
    assert_msg_equal(m, out);
    /* Ranges: lo == hi (the whole ring) and lo > hi (wrapping). */
    wire_init(m, WIRE_SYNC_DIGEST, 8);
    m->lo = m->hi = 12345;
    n = encode_ok(m);
    assert_int_equal(wire_decode(frame, n, out), 0);
    assert_msg_equal(m, out);
    fill_msg(m, WIRE_SYNC_PULL, false);
    m->lo = UINT64_MAX;
    m->hi = 0;
    n = encode_ok(m);
    assert_int_equal(wire_decode(frame, n, out), 0);
    assert_msg_equal(m, out);
    free(m);
    free(out);
}

static void test_wire_encode_roundtrip_offer_max_frame(void **state)
{
    (void)state;
    /* The largest first frame: a full offer of the longest keys. */
    wire_msg_t *m = msg_new(), *out = msg_new();
    wire_init(m, WIRE_SYNC_OFFER, 1);
    m->noffers = WIRE_OFFER_MAX;
    for (unsigned i = 0; i < WIRE_OFFER_MAX; i++) {
        m->offers[i].key = keys();
        m->offers[i].key_len = WIRE_KEY_MAX;
        m->offers[i].version = test_version(i);
    }
    size_t n = encode_ok(m);
    assert_int_equal(n, OFF_BODY + 2 + WIRE_OFFER_MAX * (2 + WIRE_KEY_MAX + 16));
    assert_true(n <= WIRE_FRAME_MAX);
    assert_int_equal(wire_decode(frame, n, out), 0);
    assert_msg_equal(m, out);
    assert_keys_borrowed(out, frame, n);
    /* Truncated at each offer's boundaries and in its middle. */
    for (unsigned i = 0; i < WIRE_OFFER_MAX; i += 37) {
        size_t at = OFF_BODY + 2 + i * (2 + WIRE_KEY_MAX + 16);
        const size_t cuts[] = {at,
                               at + 1,
                               at + 2,
                               at + 2 + WIRE_KEY_MAX / 2,
                               at + 2 + WIRE_KEY_MAX,
                               at + 2 + WIRE_KEY_MAX + 15};
        for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++)
            assert_decode(frame, cuts[k], -EBADMSG);
    }
    assert_decode(frame, n - 1, -EBADMSG);
    free(m);
    free(out);
}

static void test_wire_decode_flags_unknown_bits(void **state)
{
    (void)state;
    wire_msg_t *m = msg_new(), *out = msg_new();
    const uint8_t types[] = {WIRE_KV_GET | WIRE_REPLY, WIRE_REPL_GET | WIRE_REPLY, WIRE_KV_PUT,
                             WIRE_REPL_PUT};
    for (size_t t = 0; t < sizeof types; t++) {
        fill_msg(m, types[t], false);
        size_t n = encode_ok(m);
        /* KV_PUT: flags right after the key; the others: the last byte. */
        size_t at = types[t] == WIRE_KV_PUT ? (size_t)OFF_BODY + 2 + m->key_len : n - 1;
        assert_int_equal(frame[at], m->flags);
        for (unsigned f = 0; f < 256; f++) {
            frame[at] = (uint8_t)f;
            int rc = wire_decode(frame, n, out);
            int want = (f & ~WIRE_FLAGS_KNOWN) ? -EBADMSG : 0;
            if (rc != want)
                fail_msg("%s flags 0x%02x: %d, expected %d", wire_type_name(types[t]), f, rc, want);
            if (rc == 0)
                assert_int_equal(out->flags, f);
        }
    }
    free(m);
    free(out);
}

static void test_wire_decode_kv_put_cond(void **state)
{
    (void)state;
    wire_msg_t *m = msg_new(), *out = msg_new();
    fill_msg(m, WIRE_KV_PUT, false);
    size_t n = encode_ok(m);
    size_t at = OFF_BODY + 2 + m->key_len + 1;
    assert_int_equal(frame[at], WIRE_COND_VERSION);
    for (unsigned cond = 0; cond < 256; cond++) {
        frame[at] = (uint8_t)cond;
        int rc = wire_decode(frame, n, out);
        assert_int_equal(rc, cond <= WIRE_COND_VERSION ? 0 : -EBADMSG);
        if (rc == 0)
            assert_int_equal(out->cond, cond);
    }
    free(m);
    free(out);
}

/* A patch: layout 3 (the version-2 body, then the offset), and nothing else in layout 3. */
static void test_wire_kv_put_patch(void **state)
{
    (void)state;
    wire_msg_t *m = msg_new(), *out = msg_new();
    fill_msg(m, WIRE_KV_PUT, false);
    m->cond = WIRE_COND_PATCH;
    m->flags = 0;
    m->has_opid = true;
    m->opid = (kv_opid_t){9, 10};
    m->budget_ms = 1234;
    m->patch_off = 0xfedcba98u;
    size_t n = encode_ok(m);
    assert_int_equal(frame[OFF_VERSION], WIRE_VERSION_PATCH);
    /* The offset is the last four bytes, big-endian like every integer. */
    assert_int_equal(frame[n - 4], 0xfe);
    assert_int_equal(frame[n - 1], 0x98);
    assert_int_equal(wire_decode(frame, n, out), 0);
    assert_msg_equal(m, out);
    assert_int_equal(out->patch_off, 0xfedcba98u);
    /* Layout 3 without the patch condition, or the patch condition in layout 2: malformed. */
    size_t at = OFF_BODY + 2 + m->key_len + 1;
    frame[at] = WIRE_COND_VERSION;
    assert_int_equal(wire_decode(frame, n, out), -EBADMSG);
    frame[at] = WIRE_COND_PATCH;
    frame[OFF_VERSION] = WIRE_VERSION_OPID;
    assert_int_equal(wire_decode(frame, n - 4, out), -EBADMSG);
    /* A patch without an identity, or with flags, cannot be encoded. */
    m->has_opid = false;
    assert_int_equal(wire_encode(m, frame, WIRE_FRAME_MAX), -EINVAL);
    m->has_opid = true;
    m->flags = WIRE_FLAG_TOMBSTONE;
    assert_int_equal(wire_encode(m, frame, WIRE_FRAME_MAX), -EINVAL);
    /* A flag byte in a patch frame is refused. */
    m->flags = 0;
    n = encode_ok(m);
    frame[OFF_BODY + 2 + m->key_len] = WIRE_FLAG_TOMBSTONE;
    assert_int_equal(wire_decode(frame, n, out), -EBADMSG);
    free(m);
    free(out);
}

/* A replica's patch: layout 3 is the version-2 body, the base version and the offset. */
static void test_wire_repl_put_patch(void **state)
{
    (void)state;
    wire_msg_t *m = msg_new(), *out = msg_new();
    fill_msg(m, WIRE_REPL_PUT, false);
    m->flags = 0;
    m->has_opid = true;
    m->opid = (kv_opid_t){3, 4};
    m->has_patch = true;
    m->patch_base = (kv_version_t){0x0102030405060708ull, 0x1112131415161718ull};
    m->patch_off = 65535;
    size_t n = encode_ok(m);
    assert_int_equal(frame[OFF_VERSION], WIRE_VERSION_PATCH);
    assert_int_equal(frame[n - 20], 0x01); /* base.hlc first */
    assert_int_equal(frame[n - 1], 0xff);
    assert_int_equal(wire_decode(frame, n, out), 0);
    assert_msg_equal(m, out);
    assert_true(out->has_patch);
    assert_version_equal(out->patch_base, m->patch_base);
    /* Cut short: malformed. Without the identity or with a flag: not encodable. */
    assert_int_equal(wire_decode(frame, n - 1, out), -EBADMSG);
    m->has_opid = false;
    assert_int_equal(wire_encode(m, frame, WIRE_FRAME_MAX), -EINVAL);
    m->has_opid = true;
    m->flags = WIRE_FLAG_TOMBSTONE;
    assert_int_equal(wire_encode(m, frame, WIRE_FRAME_MAX), -EINVAL);
    /* Only REPL_PUT carries has_patch. */
    fill_msg(m, WIRE_REPL_GET, false);
    m->has_patch = true;
    assert_int_equal(wire_encode(m, frame, WIRE_FRAME_MAX), -EINVAL);
    free(m);
    free(out);
}

static void test_wire_encode_kv_put_einval(void **state)
{
    (void)state;
    wire_msg_t *m = msg_new();
    const uint8_t bad_cond[] = {WIRE_COND_VERSION + 1, 0x80, 0xff};
    for (size_t k = 0; k < sizeof bad_cond; k++) {
        fill_msg(m, WIRE_KV_PUT, false);
        m->cond = bad_cond[k];
        assert_int_equal(wire_encode(m, frame, WIRE_FRAME_MAX), -EINVAL);
    }
    fill_msg(m, WIRE_KV_PUT, false);
    m->flags = unknown_flag();
    assert_int_equal(wire_encode(m, frame, WIRE_FRAME_MAX), -EINVAL);
    fill_msg(m, WIRE_KV_PUT, false);
    m->flags = 0xff;
    assert_int_equal(wire_encode(m, frame, WIRE_FRAME_MAX), -EINVAL);
    free(m);
}

static void test_wire_decode_kv_bools(void **state)
{
    (void)state;
    wire_msg_t *m = msg_new();
    /* found (KV_GET and REPL_GET replies) and applied (REPL_PUT reply) lead the body. */
    const uint8_t types[] = {WIRE_KV_GET | WIRE_REPLY, WIRE_REPL_GET | WIRE_REPLY,
                             WIRE_REPL_PUT | WIRE_REPLY};
    for (size_t t = 0; t < sizeof types; t++) {
        fill_msg(m, types[t], false);
        size_t n = encode_ok(m);
        assert_int_equal(frame[OFF_BODY], 1);
        const uint8_t bad[] = {2, 0x80, 0xff};
        for (size_t k = 0; k < sizeof bad; k++) {
            frame[OFF_BODY] = bad[k];
            assert_decode(frame, n, -EBADMSG);
        }
        frame[OFF_BODY] = 0;
        assert_decode(frame, n, 0);
    }
    free(m);
}

static void test_wire_decode_offer_count_over_limit(void **state)
{
    (void)state;
    wire_msg_t *m = msg_new();
    /* 512 offers, then a well-formed 513th and the count raised to match. */
    fill_msg(m, WIRE_SYNC_OFFER, true);
    assert_int_equal(m->noffers, WIRE_OFFER_MAX);
    size_t n = encode_ok(m);
    assert_int_equal(frame[OFF_BODY], WIRE_OFFER_MAX >> 8);
    assert_int_equal(frame[OFF_BODY + 1], WIRE_OFFER_MAX & 0xff);
    size_t full = n;
    append_key(&n, 1);
    append_u64(&n, 1);
    append_u64(&n, 2);
    size_t count_at = OFF_BODY;
    frame[count_at] = (WIRE_OFFER_MAX + 1) >> 8;
    frame[count_at + 1] = (WIRE_OFFER_MAX + 1) & 0xff;
    assert_decode(frame, n, -EBADMSG);
    frame[count_at] = frame[count_at + 1] = 0xff;
    assert_decode(frame, n, -EBADMSG);
    /* A count smaller than the offers present leaves trailing bytes. */
    frame[count_at] = (WIRE_OFFER_MAX - 1) >> 8;
    frame[count_at + 1] = (WIRE_OFFER_MAX - 1) & 0xff;
    assert_decode(frame, full, -EBADMSG);
    frame[count_at] = WIRE_OFFER_MAX >> 8;
    frame[count_at + 1] = WIRE_OFFER_MAX & 0xff;
    assert_decode(frame, full, 0);

    /* The want list of the reply: same limit. */
    fill_msg(m, WIRE_SYNC_OFFER | WIRE_REPLY, true);
    n = encode_ok(m);
    assert_int_equal(n, OFF_BODY + 2 + 2 * WIRE_OFFER_MAX);
    append_u16(&n, 7);
    frame[count_at] = (WIRE_OFFER_MAX + 1) >> 8;
    frame[count_at + 1] = (WIRE_OFFER_MAX + 1) & 0xff;
    assert_decode(frame, n, -EBADMSG);
    frame[count_at] = frame[count_at + 1] = 0xff;
    assert_decode(frame, n, -EBADMSG);
    /* A large count with nothing behind it. */
    n = put_header(WIRE_SYNC_OFFER | WIRE_REPLY);
    append_u16(&n, 3);
    append_u16(&n, 0);
    append_u16(&n, 1);
    assert_decode(frame, n, -EBADMSG);
    free(m);
}

static void test_wire_encode_offer_count_einval(void **state)
{
    (void)state;
    wire_msg_t *m = msg_new();
    fill_msg(m, WIRE_SYNC_OFFER, true);
    m->noffers = WIRE_OFFER_MAX + 1;
    assert_int_equal(wire_encode(m, frame, WIRE_FRAME_MAX), -EINVAL);
    m->noffers = 0xffff;
    assert_int_equal(wire_encode(m, frame, WIRE_FRAME_MAX), -EINVAL);
    fill_msg(m, WIRE_SYNC_OFFER | WIRE_REPLY, true);
    m->nwant = WIRE_OFFER_MAX + 1;
    assert_int_equal(wire_encode(m, frame, WIRE_FRAME_MAX), -EINVAL);
    m->nwant = 0xffff;
    assert_int_equal(wire_encode(m, frame, WIRE_FRAME_MAX), -EINVAL);
    free(m);
}

/* SYNC_PULL and REDIRECT carry a node: the usual endpoint rules apply. */
static size_t node_frame(uint8_t type, const char *addr)
{
    size_t n = put_header(type);
    if (type == WIRE_SYNC_PULL) {
        append_u64(&n, 10);
        append_u64(&n, 20);
    }
    append_node(&n, 0x42, addr);
    return n;
}

static void test_wire_decode_node_of_pull_and_redirect(void **state)
{
    (void)state;
    wire_msg_t *out = msg_new();
    const uint8_t types[] = {WIRE_SYNC_PULL, WIRE_REDIRECT};
    char addr[ENDPOINT_MAX + 1];
    for (size_t t = 0; t < sizeof types; t++) {
        uint8_t type = types[t];
        size_t n = node_frame(type, "tcp://10.0.0.9:7000");
        assert_int_equal(wire_decode(frame, n, out), 0);
        assert_true(out->node.id == 0x42);
        assert_string_equal(out->node.addr, "tcp://10.0.0.9:7000");
        if (type == WIRE_SYNC_PULL) {
            assert_true(out->lo == 10);
            assert_true(out->hi == 20);
        }
        /* Non-printable bytes anywhere in the endpoint. */
        size_t addr_at = n - strlen("tcp://10.0.0.9:7000");
        const uint8_t bad[] = {0x00, 0x20, 0x7f, 0xff};
        for (size_t k = 0; k < sizeof bad; k++)
            for (size_t pos = 0; pos < strlen("tcp://10.0.0.9:7000"); pos += 3) {
                uint8_t saved = frame[addr_at + pos];
                frame[addr_at + pos] = bad[k];
                assert_decode(frame, n, -EBADMSG);
                frame[addr_at + pos] = saved;
            }
        /* Empty; 127 characters (fine); 128 (refused). */
        assert_decode(frame, node_frame(type, ""), -EBADMSG);
        memset(addr, 'a', ENDPOINT_MAX - 1);
        addr[ENDPOINT_MAX - 1] = '\0';
        assert_decode(frame, node_frame(type, addr), 0);
        memset(addr, 'a', ENDPOINT_MAX);
        addr[ENDPOINT_MAX] = '\0';
        assert_decode(frame, node_frame(type, addr), -EBADMSG);
        /* No node at all. */
        n = node_frame(type, "h:1");
        assert_decode(frame, n - 4, -EBADMSG);
        assert_decode(frame, n - 12, -EBADMSG);
    }
    free(out);
}

static void test_wire_encode_node_of_pull_and_redirect_einval(void **state)
{
    (void)state;
    wire_msg_t *m = msg_new();
    const uint8_t types[] = {WIRE_SYNC_PULL, WIRE_REDIRECT};
    for (size_t t = 0; t < sizeof types; t++) {
        /* A zeroed message has an empty endpoint. */
        wire_init(m, types[t], 1);
        assert_int_equal(wire_encode(m, frame, WIRE_FRAME_MAX), -EINVAL);
        fill_msg(m, types[t], false);
        memset(m->node.addr, 'x', ENDPOINT_MAX);
        assert_int_equal(wire_encode(m, frame, WIRE_FRAME_MAX), -EINVAL);
        fill_msg(m, types[t], false);
        m->node.addr[3] = ' ';
        assert_encode_decodable(m, wire_type_name(types[t]));
        assert_int_equal(wire_encode(m, frame, WIRE_FRAME_MAX), -EINVAL);
    }
    free(m);
}

static void test_wire_decode_redirect_is_not_a_request(void **state)
{
    (void)state;
    /* REDIRECT has no reply form; neither body nor type bit makes one. */
    wire_msg_t *m = msg_new(), *out = msg_new();
    fill_msg(m, WIRE_REDIRECT, false);
    size_t n = encode_ok(m);
    assert_int_equal(wire_decode(frame, n, out), 0);
    assert_int_equal(out->type, WIRE_REDIRECT);
    assert_string_equal(wire_type_name(out->type), "REDIRECT");
    frame[OFF_TYPE] = WIRE_REDIRECT | WIRE_REPLY;
    assert_decode(frame, n, -EOPNOTSUPP); /* an unknown type (a node drops it: REPLY bit) */
    wire_init(m, WIRE_REDIRECT | WIRE_REPLY, 1);
    wire_node_set(&m->node, 1, "h:1");
    assert_int_equal(wire_encode(m, frame, WIRE_FRAME_MAX), -EINVAL);
    assert_string_equal(wire_type_name(WIRE_REDIRECT | WIRE_REPLY), "?");
    /* A REDIRECT body is not a valid ERROR, nor the other way round. */
    fill_msg(m, WIRE_REDIRECT, false);
    n = encode_ok(m);
    frame[OFF_TYPE] = WIRE_ERROR;
    assert_decode(frame, n, -EBADMSG);
    free(m);
    free(out);
}

static void test_wire_encode_value_not_encoded(void **state)
{
    (void)state;
    /* The value is the transport's second frame: it changes nothing here. */
    static uint8_t encoded[WIRE_FRAME_MAX];
    static const uint8_t value[] = "the value bytes";
    wire_msg_t *m = msg_new(), *out = msg_new();
    for (size_t t = 0; t < NTYPES; t++) {
        fill_msg(m, all_types[t], false);
        size_t n = encode_ok(m);
        memcpy(encoded, frame, n);
        m->value = value;
        m->value_len = sizeof value;
        assert_int_equal(encode_ok(m), n);
        assert_memory_equal(frame, encoded, n);
        /* ... and decoding never invents one. */
        memset(out, 0x5a, sizeof *out);
        assert_int_equal(wire_decode(frame, n, out), 0);
        assert_null(out->value);
        assert_int_equal(out->value_len, 0);
    }
    free(m);
    free(out);
}

static void test_wire_type_has_value_types(void **state)
{
    (void)state;
    for (unsigned t = 0; t < 256; t++) {
        bool want = false;
        for (size_t k = 0; k < sizeof value_types; k++)
            want = want || t == value_types[k];
        if (wire_type_has_value((uint8_t)t) != want)
            fail_msg("wire_type_has_value(0x%02x) != %d", t, want);
    }
    /* In particular: the requests of GETs and the replies of PUTs carry none. */
    assert_false(wire_type_has_value(WIRE_KV_GET));
    assert_false(wire_type_has_value(WIRE_REPL_GET));
    assert_false(wire_type_has_value(WIRE_KV_PUT | WIRE_REPLY));
    assert_false(wire_type_has_value(WIRE_REPL_PUT | WIRE_REPLY));
    assert_false(wire_type_has_value(WIRE_ERROR));
    assert_false(wire_type_has_value(WIRE_REDIRECT));
}

static void test_wire_type_name_kv_values(void **state)
{
    (void)state;
    const struct {
        uint8_t type;
        const char *name;
    } names[] = {
        {WIRE_KV_GET, "KV_GET"},
        {WIRE_KV_GET | WIRE_REPLY, "KV_GET_R"},
        {WIRE_KV_PUT, "KV_PUT"},
        {WIRE_KV_PUT | WIRE_REPLY, "KV_PUT_R"},
        {WIRE_REPL_GET, "REPL_GET"},
        {WIRE_REPL_GET | WIRE_REPLY, "REPL_GET_R"},
        {WIRE_REPL_PUT, "REPL_PUT"},
        {WIRE_REPL_PUT | WIRE_REPLY, "REPL_PUT_R"},
        {WIRE_SYNC_DIGEST, "SYNC_DIGEST"},
        {WIRE_SYNC_DIGEST | WIRE_REPLY, "SYNC_DIGEST_R"},
        {WIRE_SYNC_OFFER, "SYNC_OFFER"},
        {WIRE_SYNC_OFFER | WIRE_REPLY, "SYNC_OFFER_R"},
        {WIRE_SYNC_PULL, "SYNC_PULL"},
        {WIRE_SYNC_PULL | WIRE_REPLY, "SYNC_PULL_R"},
        {WIRE_STATS, "STATS"},
        {WIRE_STATS | WIRE_REPLY, "STATS_R"},
        {WIRE_SYNC_DROP, "SYNC_DROP"},
        {WIRE_SYNC_DROP | WIRE_REPLY, "SYNC_DROP_R"},
        {WIRE_KV_READ, "KV_READ"},
        {WIRE_KV_READ | WIRE_REPLY, "KV_READ_R"},
        {WIRE_SYNC_SUMS, "SYNC_SUMS"},
        {WIRE_SYNC_SUMS | WIRE_REPLY, "SYNC_SUMS_R"},
        {WIRE_REDIRECT, "REDIRECT"},
    };
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
        assert_string_equal(wire_type_name(names[k].type), names[k].name);
    /* Unknown types get "?", and every byte gets a name (no out-of-range read). */
    for (size_t k = 0; k < sizeof unknown_types; k++)
        assert_string_equal(wire_type_name(unknown_types[k]), "?");
    for (unsigned t = 0; t < 256; t++)
        assert_non_null(wire_type_name((uint8_t)t));
}

static void test_wire_decode_offer_keys_borrowed(void **state)
{
    (void)state;
    /* Each offer's key points at its bytes in the frame, not at a copy. */
    wire_msg_t *m = msg_new(), *out = msg_new();
    fill_msg(m, WIRE_SYNC_OFFER, false);
    size_t n = encode_ok(m);
    assert_int_equal(wire_decode(frame, n, out), 0);
    size_t at = OFF_BODY + 2;
    for (unsigned i = 0; i < out->noffers; i++) {
        assert_ptr_equal(out->offers[i].key, frame + at + 2);
        at += 2 + out->offers[i].key_len + 16;
    }
    assert_int_equal(at, n);
    /* Unused offer slots stay empty. */
    assert_null(out->offers[out->noffers].key);
    assert_int_equal(out->offers[out->noffers].key_len, 0);
    free(m);
    free(out);
}

/* The version-2 layouts: a version-1 body, then the write identity. */
static void fill_opid(wire_msg_t *m, uint8_t type, bool big)
{
    fill_msg(m, type, big);
    m->has_opid = true;
    m->opid.client = big ? UINT64_MAX : 0x8182838485868788ull;
    m->opid.seq = big ? UINT64_MAX : 0x9192939495969798ull;
    if (type == WIRE_KV_PUT) {
        m->budget_ms = big ? UINT32_MAX : 0xa1a2a3a4u;
        m->earlier_unknown = !big;
    }
}

static const uint8_t opid_types[] = {WIRE_KV_PUT, WIRE_REPL_PUT, WIRE_REPL_GET | WIRE_REPLY};

static void test_wire_encode_roundtrip_opid(void **state)
{
    (void)state;
    wire_msg_t *m = msg_new(), *out = msg_new();
    for (int big = 0; big <= 1; big++)
        for (size_t t = 0; t < sizeof opid_types; t++) {
            fill_opid(m, opid_types[t], big);
            size_t n = encode_ok(m);
            assert_int_equal(frame[OFF_VERSION], WIRE_VERSION_OPID);
            memset(out, 0x5a, sizeof *out);
            assert_int_equal(wire_decode(frame, n, out), 0);
            assert_msg_equal(m, out);
            /* Every cut and any trailing byte is refused. */
            for (size_t cut = 0; cut < n; cut++)
                assert_decode(frame, cut, -EBADMSG);
            frame[n] = 0;
            assert_decode(frame, n + 1, -EBADMSG);
        }
    /* Without an identity the same types stay version 1. */
    for (size_t t = 0; t < sizeof opid_types; t++) {
        fill_msg(m, opid_types[t], false);
        encode_ok(m);
        assert_int_equal(frame[OFF_VERSION], WIRE_VERSION);
    }
    free(m);
    free(out);
}

static void test_wire_encode_body_layout_opid(void **state)
{
    (void)state;
    wire_msg_t *m = msg_new();
    wire_init(m, WIRE_KV_PUT, 1);
    m->key_bytes = (const uint8_t *)"k";
    m->key_len = 1;
    m->has_opid = true;
    m->opid.client = 0x0102030405060708ull;
    m->opid.seq = 0x1112131415161718ull;
    m->budget_ms = 0x21222324u;
    m->earlier_unknown = true;
    /* key, flags, cond, cond_version (16 zero bytes), client, seq, budget, earlier_unknown. */
    uint8_t put[2 + 1 + 1 + 1 + 16 + 8 + 8 + 4 + 1] = {0, 1, 'k'};
    const uint8_t tail[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x11, 0x12, 0x13,
                            0x14, 0x15, 0x16, 0x17, 0x18, 0x21, 0x22, 0x23, 0x24, 0x01};
    memcpy(put + sizeof put - sizeof tail, tail, sizeof tail);
    assert_int_equal(encode_ok(m), OFF_BODY + sizeof put);
    assert_int_equal(frame[OFF_VERSION], 2);
    assert_memory_equal(frame + OFF_BODY, put, sizeof put);

    wire_init(m, WIRE_REPL_GET | WIRE_REPLY, 1);
    m->found = true;
    m->has_opid = true;
    m->opid.client = 5;
    m->opid.seq = 6;
    /* found, version (16 zero bytes), flags, client, seq. */
    uint8_t getr[1 + 16 + 1 + 16] = {1};
    getr[1 + 16 + 1 + 7] = 5;
    getr[1 + 16 + 1 + 15] = 6;
    assert_int_equal(encode_ok(m), OFF_BODY + sizeof getr);
    assert_memory_equal(frame + OFF_BODY, getr, sizeof getr);
    free(m);
}

static void test_wire_opid_client_zero_refused(void **state)
{
    (void)state;
    wire_msg_t *m = msg_new();
    for (size_t t = 0; t < sizeof opid_types; t++) {
        fill_opid(m, opid_types[t], false);
        size_t n = encode_ok(m);
        /* client is the first u64 after the version-1 body */
        size_t at = opid_types[t] == WIRE_KV_PUT ? n - 21 : n - 16;
        memset(frame + at, 0, 8);
        assert_decode(frame, n, -EBADMSG);
        if (opid_types[t] == WIRE_KV_PUT) {
            /* earlier_unknown is a bool: 2 is malformed */
            encode_ok(m);
            frame[n - 1] = 2;
            assert_decode(frame, n, -EBADMSG);
        }
        m->opid.client = 0;
        assert_int_equal(wire_encode(m, frame, WIRE_FRAME_MAX), -EINVAL);
    }
    free(m);
}

static void test_wire_opid_only_where_defined(void **state)
{
    (void)state;
    wire_msg_t *m = msg_new(), *out = msg_new();
    for (size_t t = 0; t < NTYPES; t++) {
        uint8_t type = all_types[t];
        if (memchr(opid_types, type, sizeof opid_types) || type == WIRE_STATS ||
            type == (WIRE_STATS | WIRE_REPLY) || type == WIRE_INFO ||
            type == (WIRE_INFO | WIRE_REPLY))
            continue; /* STATS, INFO: layout 2 has progress, the epoch (tests below) */
        fill_msg(m, type, false);
        m->has_opid = true;
        m->opid.client = 1;
        assert_int_equal(wire_encode(m, frame, WIRE_FRAME_MAX), -EINVAL);
        /* A version-2 frame of such a type is a version this node lacks. */
        m->has_opid = false;
        size_t n = encode_ok(m);
        frame[OFF_VERSION] = WIRE_VERSION_OPID;
        assert_int_equal(wire_decode(frame, n, out), -EPROTONOSUPPORT);
        assert_int_equal(out->type, type);
    }
    /* A version-1 body announced as version 2 is truncated, not misread. */
    for (size_t t = 0; t < sizeof opid_types; t++) {
        fill_msg(m, opid_types[t], false);
        size_t n = encode_ok(m);
        frame[OFF_VERSION] = WIRE_VERSION_OPID;
        assert_decode(frame, n, -EBADMSG);
    }
    free(m);
    free(out);
}

static void test_wire_stats_progress(void **state)
{
    (void)state;
    wire_msg_t *m = msg_new(), *out = msg_new();
    /* The request: layout 2 asks for progress, with an empty body. */
    wire_init(m, WIRE_STATS, 9);
    m->has_progress = true;
    size_t n = encode_ok(m);
    assert_int_equal(n, WIRE_HEADER_LEN);
    assert_int_equal(frame[OFF_VERSION], 2);
    assert_int_equal(wire_decode(frame, n, out), 0);
    assert_true(out->has_progress);
    assert_false(out->has_opid);
    /* The reply: the version-1 body, then six u64 counters. */
    fill_msg(m, WIRE_STATS | WIRE_REPLY, false);
    size_t n1 = encode_ok(m);
    m->has_progress = true;
    m->hint_keys = 0x0101010101010101ull;
    m->streams = 2;
    m->stream_keys_left = 0x0303030303030303ull;
    m->left_bytes = UINT64_MAX;
    m->moved_keys = 5;
    m->moved_bytes = 0x0606060606060606ull;
    n = encode_ok(m);
    assert_int_equal(n, n1 + 6 * 8);
    assert_int_equal(frame[OFF_VERSION], 2);
    memset(out, 0x5a, sizeof *out);
    assert_int_equal(wire_decode(frame, n, out), 0);
    assert_msg_equal(m, out);
    assert_int_equal(frame[n1 + 8 + 7], 2); /* streams, big-endian */
    for (size_t cut = 0; cut < n; cut++)
        assert_decode(frame, cut, -EBADMSG);
    frame[n] = 0;
    assert_decode(frame, n + 1, -EBADMSG);
    /* A version-1 reply body announced as version 2 is truncated, not misread. */
    m->has_progress = false;
    n = encode_ok(m);
    frame[OFF_VERSION] = 2;
    assert_decode(frame, n, -EBADMSG);
    /* Version 1 still decodes without progress. */
    n = encode_ok(m);
    assert_int_equal(wire_decode(frame, n, out), 0);
    assert_false(out->has_progress);
    assert_true(out->moved_keys == 0);
    /* Progress on any other type cannot be encoded. */
    for (size_t t = 0; t < NTYPES; t++) {
        if (all_types[t] == WIRE_STATS || all_types[t] == (WIRE_STATS | WIRE_REPLY))
            continue;
        fill_msg(m, all_types[t], false);
        m->has_progress = true;
        assert_int_equal(wire_encode(m, frame, WIRE_FRAME_MAX), -EINVAL);
    }
    free(m);
    free(out);
}

static void test_wire_stats_security(void **state)
{
    (void)state;
    wire_msg_t *m = msg_new(), *out = msg_new();
    /* The request: layout 3 asks for progress and the allow-lists, empty body. */
    wire_init(m, WIRE_STATS, 9);
    m->has_progress = true;
    m->has_security = true;
    size_t n = encode_ok(m);
    assert_int_equal(n, WIRE_HEADER_LEN);
    assert_int_equal(frame[OFF_VERSION], 3);
    assert_int_equal(wire_decode(frame, n, out), 0);
    assert_true(out->has_security);
    assert_true(out->has_progress);
    /* The reply: the version-2 body, then bool secured and three u32. */
    fill_msg(m, WIRE_STATS | WIRE_REPLY, false);
    m->has_progress = true;
    m->moved_keys = 5;
    size_t n2 = encode_ok(m);
    m->has_security = true;
    m->secured = true;
    m->peer_keys = 3;
    m->client_keys = 0x01020304;
    m->restricted_keys = 2;
    n = encode_ok(m);
    assert_int_equal(n, n2 + 1 + 3 * 4);
    assert_int_equal(frame[OFF_VERSION], 3);
    assert_int_equal(frame[n2], 1);
    assert_int_equal(frame[n2 + 5], 1); /* client_keys, big-endian */
    assert_int_equal(frame[n2 + 8], 4);
    memset(out, 0x5a, sizeof *out);
    assert_int_equal(wire_decode(frame, n, out), 0);
    assert_msg_equal(m, out);
    for (size_t cut = 0; cut < n; cut++)
        assert_decode(frame, cut, -EBADMSG);
    frame[n] = 0;
    assert_decode(frame, n + 1, -EBADMSG);
    /* secured is a bool. */
    n = encode_ok(m);
    frame[n2] = 2;
    assert_decode(frame, n, -EBADMSG);
    /* A version-2 reply body announced as version 3 is truncated, not misread. */
    m->has_security = false;
    n = encode_ok(m);
    frame[OFF_VERSION] = 3;
    assert_decode(frame, n, -EBADMSG);
    /* Layout 3 without progress, or on any other type, cannot be encoded. */
    m->has_security = true;
    m->has_progress = false;
    assert_int_equal(wire_encode(m, frame, WIRE_FRAME_MAX), -EINVAL);
    for (size_t t = 0; t < NTYPES; t++) {
        if (all_types[t] == WIRE_STATS || all_types[t] == (WIRE_STATS | WIRE_REPLY))
            continue;
        fill_msg(m, all_types[t], false);
        m->has_progress = false;
        m->has_security = true;
        assert_int_equal(wire_encode(m, frame, WIRE_FRAME_MAX), -EINVAL);
        /*
         * and a version-3 header on it is a version this build does not
         * speak — but for KV_PUT and REPL_PUT, where it is a patch, and
         * INFO_R, where it adds the placement (a version-1 body under
         * either is malformed), and INFO, an empty body either way.
         */
        m->has_security = false;
        n = encode_ok(m);
        frame[OFF_VERSION] = 3;
        bool longer = all_types[t] == WIRE_KV_PUT || all_types[t] == WIRE_REPL_PUT ||
                      all_types[t] == (WIRE_INFO | WIRE_REPLY);
        assert_decode(frame, n,
                      all_types[t] == WIRE_INFO ? 0
                      : longer                  ? -EBADMSG
                                                : -EPROTONOSUPPORT);
    }
    free(m);
    free(out);
}

static void test_wire_info_epoch(void **state)
{
    (void)state;
    wire_msg_t *m = msg_new(), *out = msg_new();
    /* The request: layout 2 asks for the epoch, with an empty body. */
    wire_init(m, WIRE_INFO, 9);
    m->has_epoch = true;
    size_t n = encode_ok(m);
    assert_int_equal(n, WIRE_HEADER_LEN);
    assert_int_equal(frame[OFF_VERSION], 2);
    assert_int_equal(wire_decode(frame, n, out), 0);
    assert_true(out->has_epoch);
    assert_false(out->has_progress);
    /* The reply: the version-1 body, then epoch, members, weight, zone. */
    fill_msg(m, WIRE_INFO | WIRE_REPLY, false);
    size_t n1 = encode_ok(m);
    m->has_epoch = true;
    m->epoch = 0x0102030405060708ull;
    m->members = 5;
    m->weight = 2;
    strcpy(m->zone, "zb");
    n = encode_ok(m);
    assert_int_equal(n, n1 + 8 + 4 + 2 + 1 + 2);
    assert_int_equal(frame[OFF_VERSION], 2);
    const uint8_t tail[] = {1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 5, 0, 2, 2, 'z', 'b'};
    assert_memory_equal(frame + n1, tail, sizeof tail);
    memset(out, 0x5a, sizeof *out);
    assert_int_equal(wire_decode(frame, n, out), 0);
    assert_msg_equal(m, out);
    for (size_t cut = 0; cut < n; cut++)
        assert_decode(frame, cut, -EBADMSG);
    frame[n] = 0;
    assert_decode(frame, n + 1, -EBADMSG);
    /* No zone: length 0. */
    m->zone[0] = '\0';
    n = encode_ok(m);
    assert_int_equal(frame[n - 1], 0);
    assert_int_equal(wire_decode(frame, n, out), 0);
    assert_string_equal(out->zone, "");
    /* Weight 0 or over the limit, a zone with a bad byte: refused both ways. */
    m->weight = 0;
    assert_int_equal(wire_encode(m, frame, WIRE_FRAME_MAX), -EINVAL);
    m->weight = WIRE_WEIGHT_MAX + 1;
    assert_int_equal(wire_encode(m, frame, WIRE_FRAME_MAX), -EINVAL);
    m->weight = 1;
    strcpy(m->zone, "a b");
    assert_int_equal(wire_encode(m, frame, WIRE_FRAME_MAX), -EINVAL);
    strcpy(m->zone, "ab");
    n = encode_ok(m);
    frame[n - 1] = ' ';
    assert_decode(frame, n, -EBADMSG);
    frame[n - 1] = 'b';
    frame[n - 4] = 0; /* weight 0 */
    assert_decode(frame, n, -EBADMSG);
    frame[n - 4] = WIRE_WEIGHT_MAX + 1;
    assert_decode(frame, n, -EBADMSG);
    frame[n - 4] = 1;
    frame[n - 3] = WIRE_ZONE_MAX; /* zone length over the limit */
    assert_decode(frame, n, -EBADMSG);
    /* A version-1 reply announced as version 2 is truncated, not misread. */
    m->has_epoch = false;
    n = encode_ok(m);
    frame[OFF_VERSION] = 2;
    assert_decode(frame, n, -EBADMSG);
    /* The epoch on any other type cannot be encoded. */
    for (size_t t = 0; t < NTYPES; t++) {
        if (all_types[t] == WIRE_INFO || all_types[t] == (WIRE_INFO | WIRE_REPLY))
            continue;
        fill_msg(m, all_types[t], false);
        m->has_epoch = true;
        assert_int_equal(wire_encode(m, frame, WIRE_FRAME_MAX), -EINVAL);
        m->has_place = true;
        assert_int_equal(wire_encode(m, frame, WIRE_FRAME_MAX), -EINVAL);
    }
    free(m);
    free(out);
}

/* INFO layout 3: the request is empty; the reply adds u16 tokens and u8 probes. */
static void test_wire_info_place(void **state)
{
    (void)state;
    wire_msg_t *m = msg_new(), *out = msg_new();
    wire_init(m, WIRE_INFO, 9);
    m->has_epoch = m->has_place = true;
    size_t n = encode_ok(m);
    assert_int_equal(n, WIRE_HEADER_LEN);
    assert_int_equal(frame[OFF_VERSION], 3);
    assert_int_equal(wire_decode(frame, n, out), 0);
    assert_true(out->has_place && out->has_epoch);
    /* Placement without the epoch layout under it cannot be encoded. */
    m->has_epoch = false;
    assert_int_equal(wire_encode(m, frame, WIRE_FRAME_MAX), -EINVAL);
    fill_msg(m, WIRE_INFO | WIRE_REPLY, false);
    m->has_epoch = true;
    m->epoch = 7;
    m->members = 3;
    m->weight = 1;
    size_t n2 = encode_ok(m);
    m->has_place = true;
    m->tokens = 0x0140;
    m->probes = 21;
    n = encode_ok(m);
    assert_int_equal(n, n2 + 3);
    assert_int_equal(frame[OFF_VERSION], 3);
    const uint8_t tail[] = {0x01, 0x40, 21};
    assert_memory_equal(frame + n2, tail, sizeof tail);
    memset(out, 0x5a, sizeof *out);
    assert_int_equal(wire_decode(frame, n, out), 0);
    assert_msg_equal(m, out);
    assert_int_equal(out->tokens, 0x0140);
    assert_int_equal(out->probes, 21);
    for (size_t cut = 0; cut < n; cut++)
        assert_decode(frame, cut, -EBADMSG);
    frame[n] = 0;
    assert_decode(frame, n + 1, -EBADMSG);
    /* Out of range, or probes without tokens (or tokens without probes): refused both ways. */
    const struct {
        uint16_t tokens;
        uint8_t probes;
    } bad[] = {{WIRE_TOKENS_MAX + 1, 21}, {64, WIRE_PROBES_MAX + 1}, {0, 21}, {64, 0}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        m->tokens = bad[i].tokens;
        m->probes = bad[i].probes;
        assert_int_equal(wire_encode(m, frame, WIRE_FRAME_MAX), -EINVAL);
        m->tokens = 64;
        m->probes = 21;
        n = encode_ok(m);
        frame[n - 3] = (uint8_t)(bad[i].tokens >> 8);
        frame[n - 2] = (uint8_t)bad[i].tokens;
        frame[n - 1] = bad[i].probes;
        assert_decode(frame, n, -EBADMSG);
    }
    /* Chord placement: 0 and 0. */
    m->tokens = 0;
    m->probes = 0;
    n = encode_ok(m);
    assert_int_equal(wire_decode(frame, n, out), 0);
    free(m);
    free(out);
}

/* SYNC_SUMS: a header of its own and a value frame holding sorted partition sums. */
static void test_wire_sync_sums(void **state)
{
    (void)state;
    assert_true(wire_type_has_value(WIRE_SYNC_SUMS));
    assert_true(wire_type_has_value(WIRE_SYNC_SUMS | WIRE_REPLY));
    wire_msg_t *m = msg_new(), *out = msg_new();
    const uint8_t types[] = {WIRE_SYNC_SUMS, WIRE_SYNC_SUMS | WIRE_REPLY};
    for (size_t t = 0; t < 2; t++) {
        wire_init(m, types[t], 77);
        size_t n = encode_ok(m);
        assert_int_equal(n, WIRE_HEADER_LEN);
        assert_int_equal(wire_decode(frame, n, out), 0);
        assert_int_equal(out->type, types[t]);
        assert_int_equal(out->req_id, 77);
    }
    assert_string_equal(wire_type_name(WIRE_SYNC_SUMS), "SYNC_SUMS");

    const wire_sum_t sums[] = {{3, 10, {1, 2}}, {700, 0, {0, 0}}, {1023, UINT64_MAX, {~0ull, 5}}};
    uint8_t buf[3 * WIRE_SUM_BYTES];
    assert_int_equal(wire_sums_encode(sums, 3, buf), 0);
    /* Big-endian: partition 3 in two bytes, then the count. */
    const uint8_t head[] = {0, 3, 0, 0, 0, 0, 0, 0, 0, 10};
    assert_memory_equal(buf, head, sizeof head);
    wire_sum_t got[4];
    assert_int_equal(wire_sums_decode(buf, sizeof buf, 1024, got, 4), 3);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(got[i].part, sums[i].part);
        assert_true(got[i].count == sums[i].count);
        assert_true(got[i].digest[0] == sums[i].digest[0] && got[i].digest[1] == sums[i].digest[1]);
    }
    assert_int_equal(wire_sums_decode(buf, 0, 1024, got, 4), 0);
    /* Not whole, more than the room, a partition past the ring's, out of order, repeated. */
    assert_int_equal(wire_sums_decode(buf, sizeof buf - 1, 1024, got, 4), -EBADMSG);
    assert_int_equal(wire_sums_decode(buf, sizeof buf, 1024, got, 2), -EBADMSG);
    assert_int_equal(wire_sums_decode(buf, sizeof buf, 1023, got, 4), -EBADMSG);
    const wire_sum_t unsorted[] = {{5, 1, {0, 0}}, {4, 1, {0, 0}}};
    assert_int_equal(wire_sums_encode(unsorted, 2, buf), 0);
    assert_int_equal(wire_sums_decode(buf, 2 * WIRE_SUM_BYTES, 1024, got, 4), -EBADMSG);
    const wire_sum_t twice[] = {{5, 1, {0, 0}}, {5, 1, {0, 0}}};
    assert_int_equal(wire_sums_encode(twice, 2, buf), 0);
    assert_int_equal(wire_sums_decode(buf, 2 * WIRE_SUM_BYTES, 1024, got, 4), -EBADMSG);
    const wire_sum_t wide[] = {{65536, 0, {0, 0}}};
    assert_int_equal(wire_sums_encode(wide, 1, buf), -EINVAL);
    free(m);
    free(out);
}

static void test_wire_members_page(void **state)
{
    (void)state;
    wire_msg_t *m = msg_new(), *out = msg_new();
    /* The request: bool has_after, u64 after. */
    wire_init(m, WIRE_MEMBERS, 3);
    assert_int_equal(encode_ok(m), WIRE_HEADER_LEN + 1 + 8);
    m->has_after = true;
    m->after = 0x1122334455667788ull;
    size_t n = encode_ok(m);
    const uint8_t req[] = {1, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};
    assert_memory_equal(frame + OFF_BODY, req, sizeof req);
    frame[OFF_BODY] = 2;
    assert_decode(frame, n, -EBADMSG);
    /* The reply: one entry, byte by byte. */
    wire_init(m, WIRE_MEMBERS | WIRE_REPLY, 3);
    m->epoch = 0x0102030405060708ull;
    m->members = 7;
    m->more = true;
    m->nmember = 1;
    wire_node_set(&m->member[0].node, 0x10, "h:1");
    m->member[0].weight = 3;
    strcpy(m->member[0].zone, "z");
    m->member[0].state = RING_MEMBER_LEFT;
    m->member[0].incarnation = 0x99;
    n = encode_ok(m);
    /* epoch, members, more, count; then id, addr, weight, zone, state, incarnation */
    const uint8_t head[] = {1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 7, 1, 1};
    const uint8_t entry[] = {
        0, 0, 0, 0, 0, 0, 0, 0x10, 3, 'h', ':', '1', 0, 3, 1, 'z', RING_MEMBER_LEFT,
        0, 0, 0, 0, 0, 0, 0, 0x99};
    assert_int_equal(n, OFF_BODY + sizeof head + sizeof entry);
    assert_memory_equal(frame + OFF_BODY, head, sizeof head);
    assert_memory_equal(frame + OFF_BODY + sizeof head, entry, sizeof entry);
    assert_int_equal(wire_decode(frame, n, out), 0);
    assert_msg_equal(m, out);
    /* A state out of range, a count over the page: refused. */
    frame[n - 9] = RING_MEMBER_STATE_MAX + 1;
    assert_decode(frame, n, -EBADMSG);
    frame[n - 9] = RING_MEMBER_LEFT;
    frame[OFF_BODY + 13] = WIRE_MEMBERS_PAGE + 1;
    assert_decode(frame, n, -EBADMSG);
    m->member[0].state = RING_MEMBER_STATE_MAX + 1;
    assert_int_equal(wire_encode(m, frame, WIRE_FRAME_MAX), -EINVAL);
    m->member[0].state = RING_MEMBER_UP;
    m->nmember = WIRE_MEMBERS_PAGE + 1;
    assert_int_equal(wire_encode(m, frame, WIRE_FRAME_MAX), -EINVAL);
    /* A full page of the largest entries fits a frame. */
    fill_msg(m, WIRE_MEMBERS | WIRE_REPLY, true);
    n = encode_ok(m);
    assert_int_equal(wire_decode(frame, n, out), 0);
    assert_msg_equal(m, out);
    for (size_t cut = 0; cut < n; cut += 7)
        assert_decode(frame, cut, -EBADMSG);
    assert_string_equal(wire_type_name(WIRE_MEMBERS), "MEMBERS");
    assert_string_equal(wire_type_name(WIRE_MEMBERS | WIRE_REPLY), "MEMBERS_R");
    free(m);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wire_encode_roundtrip_every_type),
        cmocka_unit_test(test_wire_info_epoch),
        cmocka_unit_test(test_wire_info_place),
        cmocka_unit_test(test_wire_members_page),
        cmocka_unit_test(test_wire_encode_roundtrip_max_sizes),
        cmocka_unit_test(test_wire_encode_header_only),
        cmocka_unit_test(test_wire_encode_body_layout),
        cmocka_unit_test(test_wire_encode_roundtrip_edge_values),
        cmocka_unit_test(test_wire_decode_overwrites_output),
        cmocka_unit_test(test_wire_decode_bad_magic),
        cmocka_unit_test(test_wire_decode_wrong_version),
        cmocka_unit_test(test_wire_kv_put_patch),
        cmocka_unit_test(test_wire_repl_put_patch),
        cmocka_unit_test(test_wire_decode_unknown_type),
        cmocka_unit_test(test_wire_decode_truncated_everywhere),
        cmocka_unit_test(test_wire_decode_trailing_byte),
        cmocka_unit_test(test_wire_decode_succ_count_over_limit),
        cmocka_unit_test(test_wire_decode_finger_count_over_limit),
        cmocka_unit_test(test_wire_decode_endpoint_length),
        cmocka_unit_test(test_wire_decode_endpoint_not_printable),
        cmocka_unit_test(test_wire_decode_bool_two),
        cmocka_unit_test(test_wire_decode_find_mode),
        cmocka_unit_test(test_wire_decode_notify_role),
        cmocka_unit_test(test_wire_decode_error_message),
        cmocka_unit_test(test_wire_encode_emsgsize),
        cmocka_unit_test(test_wire_encode_einval),
        cmocka_unit_test(test_wire_encode_refuses_undecodable),
        cmocka_unit_test(test_wire_encode_error_truncates_message),
        cmocka_unit_test(test_wire_type_name_values),
        cmocka_unit_test(test_wire_node_set_truncates),
        cmocka_unit_test(test_wire_decode_key_length),
        cmocka_unit_test(test_wire_encode_key_einval),
        cmocka_unit_test(test_wire_encode_body_layout_kv),
        cmocka_unit_test(test_wire_encode_roundtrip_kv_edge_values),
        cmocka_unit_test(test_wire_encode_roundtrip_offer_max_frame),
        cmocka_unit_test(test_wire_decode_flags_unknown_bits),
        cmocka_unit_test(test_wire_decode_kv_put_cond),
        cmocka_unit_test(test_wire_encode_kv_put_einval),
        cmocka_unit_test(test_wire_decode_kv_bools),
        cmocka_unit_test(test_wire_decode_offer_count_over_limit),
        cmocka_unit_test(test_wire_encode_offer_count_einval),
        cmocka_unit_test(test_wire_decode_node_of_pull_and_redirect),
        cmocka_unit_test(test_wire_encode_node_of_pull_and_redirect_einval),
        cmocka_unit_test(test_wire_decode_redirect_is_not_a_request),
        cmocka_unit_test(test_wire_encode_value_not_encoded),
        cmocka_unit_test(test_wire_type_has_value_types),
        cmocka_unit_test(test_wire_type_name_kv_values),
        cmocka_unit_test(test_wire_decode_offer_keys_borrowed),
        cmocka_unit_test(test_wire_encode_roundtrip_opid),
        cmocka_unit_test(test_wire_encode_body_layout_opid),
        cmocka_unit_test(test_wire_opid_client_zero_refused),
        cmocka_unit_test(test_wire_opid_only_where_defined),
        cmocka_unit_test(test_wire_stats_progress),
        cmocka_unit_test(test_wire_stats_security),
        cmocka_unit_test(test_wire_sync_sums),
    };
    return cmocka_run_group_tests_name("wire", tests, NULL, NULL);
}
