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
    WIRE_PING,    WIRE_PING | WIRE_REPLY,    WIRE_INFO,   WIRE_INFO | WIRE_REPLY,
    WIRE_NOTIFY,  WIRE_NOTIFY | WIRE_REPLY,  WIRE_FIND,   WIRE_FIND | WIRE_REPLY,
    WIRE_FINGERS, WIRE_FINGERS | WIRE_REPLY, WIRE_UPDATE, WIRE_UPDATE | WIRE_REPLY,
    WIRE_LEAVE,   WIRE_LEAVE | WIRE_REPLY,   WIRE_ERROR,
};
enum { NTYPES = sizeof all_types / sizeof all_types[0] };

/* Type bytes the grammar leaves unassigned. */
static const uint8_t unknown_types[] = {0x00, 0x08, 0x0f, 0x20, 0x40, 0x60, 0x80, 0x88, 0xa0, 0xff};

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

static void assert_node_equal(const wire_node_t *a, const wire_node_t *b)
{
    assert_true(a->id == b->id);
    assert_string_equal(a->addr, b->addr);
}

/* Field by field: decode leaves what a type does not carry at zero. */
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
    for (unsigned k = 0; k < WIRE_SUCC_MAX; k++)
        assert_node_equal(&a->succ[k], &b->succ[k]);
    assert_int_equal(a->role, b->role);
    assert_true(a->key == b->key);
    assert_int_equal(a->mode, b->mode);
    assert_int_equal(a->hops, b->hops);
    assert_int_equal(a->done, b->done);
    assert_int_equal(a->index, b->index);
    assert_int_equal(a->applied, b->applied);
    assert_int_equal(a->nfingers, b->nfingers);
    for (unsigned i = 0; i < WIRE_FINGERS_MAX; i++) {
        assert_int_equal(a->fingers[i].i, b->fingers[i].i);
        assert_true(a->fingers[i].start == b->fingers[i].start);
        assert_int_equal(a->fingers[i].has_node, b->fingers[i].has_node);
        assert_node_equal(&a->fingers[i].node, &b->fingers[i].node);
    }
    assert_int_equal(a->err_code, b->err_code);
    assert_string_equal(a->err_msg, b->err_msg);
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
        const uint8_t versions[] = {0, WIRE_VERSION + 1, 0xff};
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
    for (size_t k = 0; k < sizeof unknown_types; k++) {
        frame[OFF_TYPE] = unknown_types[k];
        assert_decode(frame, n, -EBADMSG);
        /* A body does not make it known. */
        memset(frame + n, 0, 32);
        assert_decode(frame, n + 32, -EBADMSG);
    }
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
    assert_string_equal(wire_type_name(0x08), "?");
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wire_encode_roundtrip_every_type),
        cmocka_unit_test(test_wire_encode_roundtrip_max_sizes),
        cmocka_unit_test(test_wire_encode_header_only),
        cmocka_unit_test(test_wire_encode_body_layout),
        cmocka_unit_test(test_wire_encode_roundtrip_edge_values),
        cmocka_unit_test(test_wire_decode_overwrites_output),
        cmocka_unit_test(test_wire_decode_bad_magic),
        cmocka_unit_test(test_wire_decode_wrong_version),
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
    };
    return cmocka_run_group_tests_name("wire", tests, NULL, NULL);
}
