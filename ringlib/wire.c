/*
 * wire.c — bounds-checked encoder and decoder for the peer protocol.
 *
 * Both directions go through a cursor (pos/end) that refuses to move past
 * its end; every variable-length item is length-prefixed and checked against
 * both the remaining bytes and its own fixed limit before it is copied.
 * The decoder never trusts a count to size a loop beyond the array it fills.
 */
#include "wire.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

typedef struct {
    uint8_t *pos, *end;
    bool overflow; /* ran out of room */
    bool invalid;  /* the message holds what the grammar cannot carry */
} wbuf_t;

typedef struct {
    const uint8_t *pos, *end;
    bool bad;
} rbuf_t;

static void put_bytes(wbuf_t *w, const void *p, size_t n)
{
    if (w->overflow || (size_t)(w->end - w->pos) < n) {
        w->overflow = true;
        return;
    }
    memcpy(w->pos, p, n);
    w->pos += n;
}

static void put_u8(wbuf_t *w, uint8_t v)
{
    put_bytes(w, &v, 1);
}

static void put_u16(wbuf_t *w, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    put_bytes(w, b, 2);
}

static void put_u32(wbuf_t *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    put_bytes(w, b, 4);
}

static void put_u64(wbuf_t *w, uint64_t v)
{
    put_u32(w, (uint32_t)(v >> 32));
    put_u32(w, (uint32_t)v);
}

static const void *get_bytes(rbuf_t *r, size_t n)
{
    if (r->bad || (size_t)(r->end - r->pos) < n) {
        r->bad = true;
        return NULL;
    }
    const void *p = r->pos;
    r->pos += n;
    return p;
}

static uint8_t get_u8(rbuf_t *r)
{
    const uint8_t *p = get_bytes(r, 1);
    return p ? p[0] : 0;
}

static uint16_t get_u16(rbuf_t *r)
{
    const uint8_t *p = get_bytes(r, 2);
    return p ? (uint16_t)(p[0] << 8 | p[1]) : 0;
}

static uint32_t get_u32(rbuf_t *r)
{
    const uint8_t *p = get_bytes(r, 4);
    return p ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3] : 0;
}

static uint64_t get_u64(rbuf_t *r)
{
    uint64_t hi = get_u32(r);
    return hi << 32 | get_u32(r);
}

static bool get_bool(rbuf_t *r)
{
    uint8_t v = get_u8(r);
    if (v > 1)
        r->bad = true;
    return v == 1;
}

/* Endpoints: u8 length (1..ENDPOINT_MAX-1), printable ASCII, no NUL. */
static void put_node(wbuf_t *w, const wire_node_t *n)
{
    size_t len = strnlen(n->addr, ENDPOINT_MAX);
    if (len == 0 || len >= ENDPOINT_MAX) {
        w->invalid = true;
        return;
    }
    for (size_t i = 0; i < len; i++)
        if ((uint8_t)n->addr[i] < 0x21 || (uint8_t)n->addr[i] > 0x7e) {
            w->invalid = true;
            return;
        }
    put_u64(w, n->id);
    put_u8(w, (uint8_t)len);
    put_bytes(w, n->addr, len);
}

static void put_key(wbuf_t *w, const uint8_t *key, uint16_t len)
{
    if (len == 0 || len > WIRE_KEY_MAX || !key) {
        w->invalid = true;
        return;
    }
    put_u16(w, len);
    put_bytes(w, key, len);
}

static const uint8_t *get_key(rbuf_t *r, uint16_t *len)
{
    *len = get_u16(r);
    if (*len == 0 || *len > WIRE_KEY_MAX) {
        r->bad = true;
        return NULL;
    }
    return get_bytes(r, *len);
}

static void put_flags(wbuf_t *w, uint8_t flags)
{
    if (flags & ~WIRE_FLAGS_KNOWN)
        w->invalid = true;
    put_u8(w, flags);
}

static void put_version(wbuf_t *w, kv_version_t v)
{
    put_u64(w, v.hlc);
    put_u64(w, v.node);
}

static kv_version_t get_version(rbuf_t *r)
{
    kv_version_t v;
    v.hlc = get_u64(r);
    v.node = get_u64(r);
    return v;
}

static uint8_t get_flags(rbuf_t *r)
{
    uint8_t f = get_u8(r);
    if (f & ~WIRE_FLAGS_KNOWN)
        r->bad = true;
    return f;
}

static void get_node(rbuf_t *r, wire_node_t *n)
{
    n->id = get_u64(r);
    uint8_t len = get_u8(r);
    if (len == 0 || len >= ENDPOINT_MAX) {
        r->bad = true;
        return;
    }
    const uint8_t *p = get_bytes(r, len);
    if (!p)
        return;
    for (size_t i = 0; i < len; i++)
        if (p[i] < 0x21 || p[i] > 0x7e) {
            r->bad = true;
            return;
        }
    memcpy(n->addr, p, len);
    n->addr[len] = '\0';
}

static void put_opt_node(wbuf_t *w, bool present, const wire_node_t *n)
{
    put_u8(w, present ? 1 : 0);
    if (present)
        put_node(w, n);
}

static bool get_opt_node(rbuf_t *r, wire_node_t *n)
{
    bool present = get_bool(r);
    if (present)
        get_node(r, n);
    return present;
}

static void put_list(wbuf_t *w, uint8_t count, const wire_node_t *nodes)
{
    if (count > WIRE_SUCC_MAX) {
        w->invalid = true;
        return;
    }
    put_u8(w, count);
    for (uint8_t i = 0; i < count; i++)
        put_node(w, &nodes[i]);
}

static uint8_t get_list(rbuf_t *r, wire_node_t *nodes)
{
    uint8_t count = get_u8(r);
    if (count > WIRE_SUCC_MAX) {
        r->bad = true;
        return 0;
    }
    for (uint8_t i = 0; i < count && !r->bad; i++)
        get_node(r, &nodes[i]);
    return count;
}

/* Zeroes the head only: see the tail's note in wire.h. */
static void msg_clear(wire_msg_t *m)
{
    memset(m, 0, offsetof(wire_msg_t, succ));
}

void wire_init(wire_msg_t *m, uint8_t type, uint64_t req_id)
{
    msg_clear(m);
    m->type = type;
    m->req_id = req_id;
}

void wire_node_set(wire_node_t *n, ring_id_t id, const char *addr)
{
    n->id = id;
    size_t len = addr ? strnlen(addr, ENDPOINT_MAX - 1) : 0;
    memcpy(n->addr, addr ? addr : "", len);
    n->addr[len] = '\0';
}

/* Types with a layout version 2: a write identity after the version-1 body. */
static bool has_opid_layout(uint8_t t)
{
    return t == WIRE_KV_PUT || t == WIRE_REPL_PUT || t == (WIRE_REPL_GET | WIRE_REPLY);
}

/* Types with a layout version 2 that adds the member epoch (and weight, zone). */
static bool has_epoch_layout(uint8_t t)
{
    return t == WIRE_INFO || t == (WIRE_INFO | WIRE_REPLY);
}

/* Zones: u8 length (0..WIRE_ZONE_MAX-1), the characters ring_members allows. */
static void put_zone(wbuf_t *w, const char *zone)
{
    if (!ring_members_zone_valid(zone)) {
        w->invalid = true;
        return;
    }
    size_t len = strlen(zone);
    put_u8(w, (uint8_t)len);
    put_bytes(w, zone, len);
}

static void get_zone(rbuf_t *r, char *zone)
{
    uint8_t len = get_u8(r);
    if (len >= WIRE_ZONE_MAX) {
        r->bad = true;
        return;
    }
    const uint8_t *p = get_bytes(r, len);
    if (!p)
        return;
    memcpy(zone, p, len);
    zone[len] = '\0';
    if (strlen(zone) != len || !ring_members_zone_valid(zone))
        r->bad = true;
}

static void put_weight(wbuf_t *w, uint16_t weight)
{
    if (weight < 1 || weight > WIRE_WEIGHT_MAX)
        w->invalid = true;
    put_u16(w, weight);
}

static uint16_t get_weight(rbuf_t *r)
{
    uint16_t v = get_u16(r);
    if (v < 1 || v > WIRE_WEIGHT_MAX)
        r->bad = true;
    return v;
}

static void put_member(wbuf_t *w, const wire_member_t *e)
{
    put_node(w, &e->node);
    put_weight(w, e->weight);
    put_zone(w, e->zone);
    if (e->state > RING_MEMBER_STATE_MAX)
        w->invalid = true;
    put_u8(w, e->state);
    put_u64(w, e->incarnation);
}

static void get_member(rbuf_t *r, wire_member_t *e)
{
    get_node(r, &e->node);
    e->weight = get_weight(r);
    get_zone(r, e->zone);
    e->state = get_u8(r);
    if (e->state > RING_MEMBER_STATE_MAX)
        r->bad = true;
    e->incarnation = get_u64(r);
}

/* Types with a layout version 2 that adds progress counters. */
static bool has_progress_layout(uint8_t t)
{
    return t == WIRE_STATS || t == (WIRE_STATS | WIRE_REPLY);
}

static void put_opid(wbuf_t *w, kv_opid_t id)
{
    if (!kv_opid_is_set(id))
        w->invalid = true;
    put_u64(w, id.client);
    put_u64(w, id.seq);
}

static kv_opid_t get_opid(rbuf_t *r)
{
    kv_opid_t id;
    id.client = get_u64(r);
    id.seq = get_u64(r);
    if (!kv_opid_is_set(id))
        r->bad = true;
    return id;
}

static bool known_type(uint8_t t)
{
    uint8_t base = t == WIRE_ERROR || t == WIRE_REDIRECT ? t : (uint8_t)(t & ~WIRE_REPLY);
    switch (base) {
    case WIRE_PING:
    case WIRE_INFO:
    case WIRE_NOTIFY:
    case WIRE_FIND:
    case WIRE_FINGERS:
    case WIRE_UPDATE:
    case WIRE_LEAVE:
    case WIRE_MEMBERS:
    case WIRE_KV_GET:
    case WIRE_KV_PUT:
    case WIRE_REPL_GET:
    case WIRE_REPL_PUT:
    case WIRE_SYNC_DIGEST:
    case WIRE_SYNC_OFFER:
    case WIRE_SYNC_PULL:
    case WIRE_STATS:
    case WIRE_SYNC_DROP:
    case WIRE_KV_READ:
    case WIRE_SYNC_SUMS:
        return true;
    case WIRE_ERROR:
        return t == WIRE_ERROR;
    case WIRE_REDIRECT:
        return t == WIRE_REDIRECT;
    default:
        return false;
    }
}

int wire_encode(const wire_msg_t *m, uint8_t *buf, size_t cap)
{
    if (!known_type(m->type) || (m->has_opid && !has_opid_layout(m->type)) ||
        (m->has_progress && !has_progress_layout(m->type)) ||
        (m->has_security && (!has_progress_layout(m->type) || !m->has_progress)) ||
        (m->has_epoch && !has_epoch_layout(m->type)) || (m->has_place && !m->has_epoch))
        return -EINVAL;
    wbuf_t w = {buf, buf + cap, false, false};
    put_u8(&w, 'D');
    put_u8(&w, 'H');
    bool patch = (m->type == WIRE_KV_PUT && m->cond == WIRE_COND_PATCH) ||
                 (m->type == WIRE_REPL_PUT && m->has_patch);
    if (m->has_patch && m->type != WIRE_REPL_PUT)
        return -EINVAL;
    put_u8(&w, patch                                            ? WIRE_VERSION_PATCH
               : m->has_security                                ? WIRE_VERSION_SEC
               : m->has_place                                   ? WIRE_VERSION_PLACE
               : m->has_opid || m->has_progress || m->has_epoch ? WIRE_VERSION_OPID
                                                                : WIRE_VERSION);
    put_u8(&w, m->type);
    put_u64(&w, m->req_id);

    switch (m->type) {
    case WIRE_PING:
    case WIRE_PING | WIRE_REPLY:
    case WIRE_INFO:
    case WIRE_NOTIFY | WIRE_REPLY:
    case WIRE_FINGERS:
    case WIRE_LEAVE | WIRE_REPLY:
    case WIRE_SYNC_PULL | WIRE_REPLY:
    case WIRE_SYNC_DROP | WIRE_REPLY:
    case WIRE_SYNC_SUMS:
    case WIRE_SYNC_SUMS | WIRE_REPLY:
    case WIRE_STATS:
        break;
    case WIRE_KV_GET:
        put_key(&w, m->key_bytes, m->key_len);
        break;
    case WIRE_REPL_GET:
    case WIRE_KV_READ:
        if (m->read_mode > WIRE_READ_VERSION)
            return -EINVAL;
        put_key(&w, m->key_bytes, m->key_len);
        put_u8(&w, m->read_mode);
        break;
    case WIRE_KV_READ | WIRE_REPLY:
        put_u8(&w, m->found ? 1 : 0);
        put_version(&w, m->version);
        put_flags(&w, m->flags);
        put_u8(&w, m->done ? 1 : 0);
        put_list(&w, m->nsucc, m->succ);
        break;
    case WIRE_KV_GET | WIRE_REPLY:
    case WIRE_REPL_GET | WIRE_REPLY:
        put_u8(&w, m->found ? 1 : 0);
        put_version(&w, m->version);
        put_flags(&w, m->flags);
        if (m->has_opid)
            put_opid(&w, m->opid);
        break;
    case WIRE_KV_PUT:
        put_key(&w, m->key_bytes, m->key_len);
        if (m->cond > WIRE_COND_PATCH || (m->flags & ~WIRE_FLAGS_KNOWN) ||
            (m->cond == WIRE_COND_PATCH && (m->flags || !m->has_opid)))
            return -EINVAL;
        put_flags(&w, m->flags);
        put_u8(&w, m->cond);
        put_version(&w, m->cond_version);
        if (m->has_opid) {
            put_opid(&w, m->opid);
            put_u32(&w, m->budget_ms);
            put_u8(&w, m->earlier_unknown ? 1 : 0);
        }
        if (m->cond == WIRE_COND_PATCH)
            put_u32(&w, m->patch_off);
        break;
    case WIRE_KV_PUT | WIRE_REPLY:
        put_version(&w, m->version);
        break;
    case WIRE_REPL_PUT:
        put_key(&w, m->key_bytes, m->key_len);
        put_version(&w, m->version);
        put_flags(&w, m->flags);
        if (patch && (!m->has_opid || m->flags))
            return -EINVAL;
        if (m->has_opid)
            put_opid(&w, m->opid);
        if (patch) {
            put_version(&w, m->patch_base);
            put_u32(&w, m->patch_off);
        }
        break;
    case WIRE_REPL_PUT | WIRE_REPLY:
        put_u8(&w, m->applied ? 1 : 0);
        put_version(&w, m->version);
        break;
    case WIRE_SYNC_DIGEST:
        put_u64(&w, m->lo);
        put_u64(&w, m->hi);
        break;
    case WIRE_SYNC_PULL:
    case WIRE_SYNC_DROP:
        put_u64(&w, m->lo);
        put_u64(&w, m->hi);
        put_node(&w, &m->node);
        break;
    case WIRE_SYNC_DIGEST | WIRE_REPLY:
        put_u64(&w, m->count);
        put_u64(&w, m->digest[0]);
        put_u64(&w, m->digest[1]);
        break;
    case WIRE_SYNC_OFFER:
        if (m->noffers > WIRE_OFFER_MAX)
            return -EINVAL;
        put_u16(&w, m->noffers);
        for (unsigned i = 0; i < m->noffers; i++) {
            put_key(&w, m->offers[i].key, m->offers[i].key_len);
            put_version(&w, m->offers[i].version);
        }
        break;
    case WIRE_SYNC_OFFER | WIRE_REPLY:
        if (m->nwant > WIRE_OFFER_MAX)
            return -EINVAL;
        put_u16(&w, m->nwant);
        for (unsigned i = 0; i < m->nwant; i++)
            put_u16(&w, m->want[i]);
        break;
    case WIRE_STATS | WIRE_REPLY:
        put_u64(&w, m->primary_keys);
        put_u64(&w, m->stored_keys);
        put_u64(&w, m->under_replicated);
        put_u64(&w, m->bytes);
        put_u64(&w, m->disk_total);
        put_u64(&w, m->disk_free);
        if (m->has_progress) {
            put_u64(&w, m->hint_keys);
            put_u64(&w, m->streams);
            put_u64(&w, m->stream_keys_left);
            put_u64(&w, m->left_bytes);
            put_u64(&w, m->moved_keys);
            put_u64(&w, m->moved_bytes);
        }
        if (m->has_security) {
            put_u8(&w, m->secured ? 1 : 0);
            put_u32(&w, m->peer_keys);
            put_u32(&w, m->client_keys);
            put_u32(&w, m->restricted_keys);
        }
        break;
    case WIRE_REDIRECT:
        put_node(&w, &m->node);
        break;
    case WIRE_INFO | WIRE_REPLY:
        put_u8(&w, m->id_bits);
        put_u8(&w, m->replicas);
        put_u8(&w, m->write_quorum);
        put_u8(&w, m->read_quorum);
        put_node(&w, &m->node);
        put_opt_node(&w, m->has_pred, &m->pred);
        put_list(&w, m->nsucc, m->succ);
        put_u64(&w, m->keys);
        if (m->has_epoch) {
            put_u64(&w, m->epoch);
            put_u32(&w, m->members);
            put_weight(&w, m->weight);
            put_zone(&w, m->zone);
        }
        if (m->has_place) {
            if (m->tokens > WIRE_TOKENS_MAX || m->probes > WIRE_PROBES_MAX ||
                (m->tokens == 0) != (m->probes == 0))
                return -EINVAL;
            put_u16(&w, m->tokens);
            put_u8(&w, m->probes);
        }
        break;
    case WIRE_MEMBERS:
        put_u8(&w, m->has_after ? 1 : 0);
        put_u64(&w, m->after);
        break;
    case WIRE_MEMBERS | WIRE_REPLY:
        if (m->nmember > WIRE_MEMBERS_PAGE)
            return -EINVAL;
        put_u64(&w, m->epoch);
        put_u32(&w, m->members);
        put_u8(&w, m->more ? 1 : 0);
        put_u8(&w, m->nmember);
        for (unsigned i = 0; i < m->nmember; i++)
            put_member(&w, &m->member[i]);
        break;
    case WIRE_NOTIFY:
        put_node(&w, &m->node);
        if (m->role > WIRE_NOTIFY_SUCCESSOR)
            return -EINVAL;
        put_u8(&w, m->role);
        break;
    case WIRE_FIND:
        if (m->mode > WIRE_FIND_RECURSIVE)
            return -EINVAL;
        put_u64(&w, m->key);
        put_u8(&w, m->mode);
        put_u8(&w, m->hops);
        break;
    case WIRE_FIND | WIRE_REPLY:
        put_u8(&w, m->done ? 1 : 0);
        put_u8(&w, m->hops);
        put_node(&w, &m->node);
        put_opt_node(&w, m->has_pred, &m->pred);
        put_list(&w, m->nsucc, m->succ);
        break;
    case WIRE_FINGERS | WIRE_REPLY:
        if (m->nfingers > WIRE_FINGERS_MAX)
            return -EINVAL;
        put_u8(&w, m->id_bits);
        put_node(&w, &m->node);
        put_u8(&w, m->nfingers);
        for (unsigned i = 0; i < m->nfingers; i++) {
            put_u8(&w, m->fingers[i].i);
            put_u64(&w, m->fingers[i].start);
            put_opt_node(&w, m->fingers[i].has_node, &m->fingers[i].node);
        }
        break;
    case WIRE_UPDATE:
        put_u8(&w, m->index);
        put_node(&w, &m->node);
        break;
    case WIRE_UPDATE | WIRE_REPLY:
        put_u8(&w, m->applied ? 1 : 0);
        break;
    case WIRE_LEAVE:
        put_node(&w, &m->node);
        put_opt_node(&w, m->has_pred, &m->pred);
        put_list(&w, m->nsucc, m->succ);
        break;
    case WIRE_ERROR: {
        size_t len = strnlen(m->err_msg, WIRE_ERRMSG_MAX - 1);
        put_u32(&w, (uint32_t)m->err_code);
        put_u16(&w, (uint16_t)len);
        put_bytes(&w, m->err_msg, len);
        break;
    }
    default:
        return -EINVAL;
    }
    if (w.invalid)
        return -EINVAL;
    if (w.overflow)
        return -EMSGSIZE;
    return (int)(w.pos - buf);
}

int wire_decode(const uint8_t *buf, size_t len, wire_msg_t *out)
{
    msg_clear(out);
    if (!buf || len < WIRE_HEADER_LEN || buf[0] != 'D' || buf[1] != 'H')
        return -EBADMSG;
    rbuf_t r = {buf + 4, buf + len, false};
    out->type = buf[3];
    out->req_id = get_u64(&r);
    if (buf[2] != WIRE_VERSION &&
        !(buf[2] == WIRE_VERSION_OPID &&
          (has_opid_layout(out->type) || has_progress_layout(out->type) ||
           has_epoch_layout(out->type))) &&
        !(buf[2] == WIRE_VERSION_PATCH &&
          (out->type == WIRE_KV_PUT || out->type == WIRE_REPL_PUT)) &&
        !(buf[2] == WIRE_VERSION_SEC && has_progress_layout(out->type)) &&
        !(buf[2] == WIRE_VERSION_PLACE && has_epoch_layout(out->type)))
        return -EPROTONOSUPPORT;
    if (!known_type(out->type))
        return -EOPNOTSUPP;
    bool patch =
        buf[2] == WIRE_VERSION_PATCH && (out->type == WIRE_KV_PUT || out->type == WIRE_REPL_PUT);
    out->has_opid = (buf[2] == WIRE_VERSION_OPID || patch) && has_opid_layout(out->type);
    out->has_security = buf[2] == WIRE_VERSION_SEC && has_progress_layout(out->type);
    out->has_progress =
        (buf[2] == WIRE_VERSION_OPID && has_progress_layout(out->type)) || out->has_security;
    out->has_place = buf[2] == WIRE_VERSION_PLACE && has_epoch_layout(out->type);
    out->has_epoch = (buf[2] == WIRE_VERSION_OPID && has_epoch_layout(out->type)) || out->has_place;

    switch (out->type) {
    case WIRE_PING:
    case WIRE_PING | WIRE_REPLY:
    case WIRE_INFO:
    case WIRE_NOTIFY | WIRE_REPLY:
    case WIRE_FINGERS:
    case WIRE_LEAVE | WIRE_REPLY:
    case WIRE_SYNC_PULL | WIRE_REPLY:
    case WIRE_SYNC_DROP | WIRE_REPLY:
    case WIRE_SYNC_SUMS:
    case WIRE_SYNC_SUMS | WIRE_REPLY:
    case WIRE_STATS:
        break;
    case WIRE_KV_GET:
        out->key_bytes = get_key(&r, &out->key_len);
        break;
    case WIRE_REPL_GET:
    case WIRE_KV_READ:
        out->key_bytes = get_key(&r, &out->key_len);
        out->read_mode = get_u8(&r);
        if (out->read_mode > WIRE_READ_VERSION)
            r.bad = true;
        break;
    case WIRE_KV_READ | WIRE_REPLY:
        out->found = get_bool(&r);
        out->version = get_version(&r);
        out->flags = get_flags(&r);
        out->done = get_bool(&r);
        out->nsucc = get_list(&r, out->succ);
        break;
    case WIRE_KV_GET | WIRE_REPLY:
    case WIRE_REPL_GET | WIRE_REPLY:
        out->found = get_bool(&r);
        out->version = get_version(&r);
        out->flags = get_flags(&r);
        if (out->has_opid)
            out->opid = get_opid(&r);
        break;
    case WIRE_KV_PUT:
        out->key_bytes = get_key(&r, &out->key_len);
        out->flags = get_flags(&r);
        out->cond = get_u8(&r);
        out->cond_version = get_version(&r);
        /* Layout 3 is a patch and nothing else; a patch carries no flags. */
        if (patch != (out->cond == WIRE_COND_PATCH) || out->cond > WIRE_COND_PATCH ||
            (patch && out->flags))
            r.bad = true;
        if (out->has_opid) {
            out->opid = get_opid(&r);
            out->budget_ms = get_u32(&r);
            out->earlier_unknown = get_bool(&r);
        }
        if (patch)
            out->patch_off = get_u32(&r);
        break;
    case WIRE_KV_PUT | WIRE_REPLY:
        out->version = get_version(&r);
        break;
    case WIRE_REPL_PUT:
        out->key_bytes = get_key(&r, &out->key_len);
        out->version = get_version(&r);
        out->flags = get_flags(&r);
        if (out->has_opid)
            out->opid = get_opid(&r);
        if (patch) {
            out->has_patch = true;
            out->patch_base = get_version(&r);
            out->patch_off = get_u32(&r);
            if (out->flags)
                r.bad = true;
        }
        break;
    case WIRE_REPL_PUT | WIRE_REPLY:
        out->applied = get_bool(&r);
        out->version = get_version(&r);
        break;
    case WIRE_SYNC_DIGEST:
        out->lo = get_u64(&r);
        out->hi = get_u64(&r);
        break;
    case WIRE_SYNC_PULL:
    case WIRE_SYNC_DROP:
        out->lo = get_u64(&r);
        out->hi = get_u64(&r);
        get_node(&r, &out->node);
        break;
    case WIRE_SYNC_DIGEST | WIRE_REPLY:
        out->count = get_u64(&r);
        out->digest[0] = get_u64(&r);
        out->digest[1] = get_u64(&r);
        break;
    case WIRE_SYNC_OFFER:
        out->noffers = get_u16(&r);
        if (out->noffers > WIRE_OFFER_MAX) {
            r.bad = true;
            break;
        }
        for (unsigned i = 0; i < out->noffers && !r.bad; i++) {
            out->offers[i].key = get_key(&r, &out->offers[i].key_len);
            out->offers[i].version = get_version(&r);
        }
        break;
    case WIRE_SYNC_OFFER | WIRE_REPLY:
        out->nwant = get_u16(&r);
        if (out->nwant > WIRE_OFFER_MAX) {
            r.bad = true;
            break;
        }
        for (unsigned i = 0; i < out->nwant && !r.bad; i++)
            out->want[i] = get_u16(&r);
        break;
    case WIRE_STATS | WIRE_REPLY:
        out->primary_keys = get_u64(&r);
        out->stored_keys = get_u64(&r);
        out->under_replicated = get_u64(&r);
        out->bytes = get_u64(&r);
        out->disk_total = get_u64(&r);
        out->disk_free = get_u64(&r);
        if (out->has_progress) {
            out->hint_keys = get_u64(&r);
            out->streams = get_u64(&r);
            out->stream_keys_left = get_u64(&r);
            out->left_bytes = get_u64(&r);
            out->moved_keys = get_u64(&r);
            out->moved_bytes = get_u64(&r);
        }
        if (out->has_security) {
            out->secured = get_bool(&r);
            out->peer_keys = get_u32(&r);
            out->client_keys = get_u32(&r);
            out->restricted_keys = get_u32(&r);
        }
        break;
    case WIRE_REDIRECT:
        get_node(&r, &out->node);
        break;
    case WIRE_INFO | WIRE_REPLY:
        out->id_bits = get_u8(&r);
        out->replicas = get_u8(&r);
        out->write_quorum = get_u8(&r);
        out->read_quorum = get_u8(&r);
        get_node(&r, &out->node);
        out->has_pred = get_opt_node(&r, &out->pred);
        out->nsucc = get_list(&r, out->succ);
        out->keys = get_u64(&r);
        if (out->has_epoch) {
            out->epoch = get_u64(&r);
            out->members = get_u32(&r);
            out->weight = get_weight(&r);
            get_zone(&r, out->zone);
        }
        if (out->has_place) {
            out->tokens = get_u16(&r);
            out->probes = get_u8(&r);
            /* As kvnode accepts them: probes only with tokens. */
            if (out->tokens > WIRE_TOKENS_MAX || out->probes > WIRE_PROBES_MAX ||
                (out->tokens == 0) != (out->probes == 0))
                r.bad = true;
        }
        break;
    case WIRE_MEMBERS:
        out->has_after = get_bool(&r);
        out->after = get_u64(&r);
        break;
    case WIRE_MEMBERS | WIRE_REPLY:
        out->epoch = get_u64(&r);
        out->members = get_u32(&r);
        out->more = get_bool(&r);
        out->nmember = get_u8(&r);
        if (out->nmember > WIRE_MEMBERS_PAGE) {
            r.bad = true;
            break;
        }
        for (unsigned i = 0; i < out->nmember && !r.bad; i++)
            get_member(&r, &out->member[i]);
        break;
    case WIRE_NOTIFY:
        get_node(&r, &out->node);
        out->role = get_u8(&r);
        if (out->role > WIRE_NOTIFY_SUCCESSOR)
            r.bad = true;
        break;
    case WIRE_FIND:
        out->key = get_u64(&r);
        out->mode = get_u8(&r);
        out->hops = get_u8(&r);
        if (out->mode > WIRE_FIND_RECURSIVE)
            r.bad = true;
        break;
    case WIRE_FIND | WIRE_REPLY:
        out->done = get_bool(&r);
        out->hops = get_u8(&r);
        get_node(&r, &out->node);
        out->has_pred = get_opt_node(&r, &out->pred);
        out->nsucc = get_list(&r, out->succ);
        break;
    case WIRE_FINGERS | WIRE_REPLY:
        out->id_bits = get_u8(&r);
        get_node(&r, &out->node);
        out->nfingers = get_u8(&r);
        if (out->nfingers > WIRE_FINGERS_MAX) {
            r.bad = true;
            break;
        }
        for (unsigned i = 0; i < out->nfingers && !r.bad; i++) {
            wire_finger_t *f = &out->fingers[i];
            f->i = get_u8(&r);
            f->start = get_u64(&r);
            f->has_node = get_opt_node(&r, &f->node);
        }
        break;
    case WIRE_UPDATE:
        out->index = get_u8(&r);
        get_node(&r, &out->node);
        break;
    case WIRE_UPDATE | WIRE_REPLY:
        out->applied = get_bool(&r);
        break;
    case WIRE_LEAVE:
        get_node(&r, &out->node);
        out->has_pred = get_opt_node(&r, &out->pred);
        out->nsucc = get_list(&r, out->succ);
        break;
    case WIRE_ERROR: {
        out->err_code = (int32_t)get_u32(&r);
        uint16_t n = get_u16(&r);
        if (n >= WIRE_ERRMSG_MAX) {
            r.bad = true;
            break;
        }
        const uint8_t *p = get_bytes(&r, n);
        if (p) {
            memcpy(out->err_msg, p, n);
            out->err_msg[n] = '\0';
            if (strlen(out->err_msg) != n)
                r.bad = true;
        }
        break;
    }
    default:
        r.bad = true;
    }
    if (r.bad || r.pos != r.end)
        return -EBADMSG;
    return 0;
}

bool wire_type_has_value(uint8_t type)
{
    return type == WIRE_KV_PUT || type == WIRE_REPL_PUT || type == (WIRE_KV_GET | WIRE_REPLY) ||
           type == (WIRE_REPL_GET | WIRE_REPLY) || type == (WIRE_KV_READ | WIRE_REPLY) ||
           type == WIRE_SYNC_SUMS || type == (WIRE_SYNC_SUMS | WIRE_REPLY);
}

int wire_sums_encode(const wire_sum_t *sums, size_t n, uint8_t *buf)
{
    wbuf_t w = {buf, buf + n * WIRE_SUM_BYTES, false, false};
    for (size_t i = 0; i < n; i++) {
        if (sums[i].part > UINT16_MAX)
            return -EINVAL;
        put_u16(&w, (uint16_t)sums[i].part);
        put_u64(&w, sums[i].count);
        put_u64(&w, sums[i].digest[0]);
        put_u64(&w, sums[i].digest[1]);
    }
    return 0;
}

int wire_sums_decode(const uint8_t *buf, size_t len, uint32_t part_count, wire_sum_t *out,
                     size_t cap)
{
    if (len % WIRE_SUM_BYTES || len / WIRE_SUM_BYTES > cap)
        return -EBADMSG;
    rbuf_t r = {buf, buf + len, false};
    size_t n = len / WIRE_SUM_BYTES;
    for (size_t i = 0; i < n; i++) {
        out[i].part = get_u16(&r);
        out[i].count = get_u64(&r);
        out[i].digest[0] = get_u64(&r);
        out[i].digest[1] = get_u64(&r);
        if (out[i].part >= part_count || (i > 0 && out[i].part <= out[i - 1].part))
            return -EBADMSG;
    }
    return (int)n;
}

const char *wire_type_name(uint8_t type)
{
    static const char *const req[] = {
        [WIRE_PING] = "PING",
        [WIRE_INFO] = "INFO",
        [WIRE_NOTIFY] = "NOTIFY",
        [WIRE_FIND] = "FIND",
        [WIRE_FINGERS] = "FINGERS",
        [WIRE_UPDATE] = "UPDATE",
        [WIRE_LEAVE] = "LEAVE",
        [WIRE_MEMBERS] = "MEMBERS",
        [WIRE_KV_GET] = "KV_GET",
        [WIRE_KV_PUT] = "KV_PUT",
        [WIRE_REPL_GET] = "REPL_GET",
        [WIRE_REPL_PUT] = "REPL_PUT",
        [WIRE_SYNC_DIGEST] = "SYNC_DIGEST",
        [WIRE_SYNC_OFFER] = "SYNC_OFFER",
        [WIRE_SYNC_PULL] = "SYNC_PULL",
        [WIRE_SYNC_DROP] = "SYNC_DROP",
        [WIRE_STATS] = "STATS",
        [WIRE_KV_READ] = "KV_READ",
        [WIRE_SYNC_SUMS] = "SYNC_SUMS",
    };
    static const char *const rep[] = {
        [WIRE_PING] = "PING_R",
        [WIRE_INFO] = "INFO_R",
        [WIRE_NOTIFY] = "NOTIFY_R",
        [WIRE_FIND] = "FIND_R",
        [WIRE_FINGERS] = "FINGERS_R",
        [WIRE_UPDATE] = "UPDATE_R",
        [WIRE_LEAVE] = "LEAVE_R",
        [WIRE_MEMBERS] = "MEMBERS_R",
        [WIRE_KV_GET] = "KV_GET_R",
        [WIRE_KV_PUT] = "KV_PUT_R",
        [WIRE_REPL_GET] = "REPL_GET_R",
        [WIRE_REPL_PUT] = "REPL_PUT_R",
        [WIRE_SYNC_DIGEST] = "SYNC_DIGEST_R",
        [WIRE_SYNC_OFFER] = "SYNC_OFFER_R",
        [WIRE_SYNC_PULL] = "SYNC_PULL_R",
        [WIRE_SYNC_DROP] = "SYNC_DROP_R",
        [WIRE_STATS] = "STATS_R",
        [WIRE_KV_READ] = "KV_READ_R",
        [WIRE_SYNC_SUMS] = "SYNC_SUMS_R",
    };
    if (type == WIRE_ERROR)
        return "ERROR";
    if (type == WIRE_REDIRECT)
        return "REDIRECT";
    if (!known_type(type))
        return "?";
    uint8_t base = type & (uint8_t)~WIRE_REPLY;
    return (type & WIRE_REPLY) ? rep[base] : req[base];
}
