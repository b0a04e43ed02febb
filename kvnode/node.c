/*
 * node.c — the Chord peer daemon's protocol logic.
 *
 * Join follows the lecture: learn our successor and predecessor from any
 * peer, link both pointers, then build our finger table by lookups and send
 * update(i, self) to the peer at or before self - 2^i for every i; each peer
 * that applies it passes it to its predecessor. That alone is not correct
 * under concurrent joins and failures, so the node also runs Zave's repair
 * protocol: periodic stabilize (adopt our successor's predecessor when it
 * lies between us, reconcile the successor list from the successor's),
 * notify, fix-fingers and check-predecessor. A peer that misses a deadline
 * is removed from every table at once; stabilize then falls through to the
 * next entry of the successor list, which is why its length is >= replicas+1.
 *
 * Every outgoing request is asynchronous (rpc.c); handlers never wait.
 * What this file does not do: store keys (the quorum store sits on top).
 */
#include "node.h"
#include "node_i.h"

#include "log.h"
#include "ring_place.h"
#include "ring_state.h"
#include "rpc.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

/* ---------------------------------------------------------------- helpers */

void node_config_defaults(node_config_t *cfg)
{
    if (!cfg->id_bits)
        cfg->id_bits = 64;
    if (!cfg->replicas)
        cfg->replicas = 3;
    if (!cfg->write_quorum)
        cfg->write_quorum = 2;
    if (!cfg->read_quorum)
        cfg->read_quorum = 2;
    if (!cfg->cache_mb)
        cfg->cache_mb = 64;
    if (!cfg->stabilize_ms)
        cfg->stabilize_ms = 250;
    if (!cfg->timeout_ms)
        cfg->timeout_ms = 1000;
    if (!cfg->tombstone_grace_s)
        cfg->tombstone_grace_s = 3600;
    if (!cfg->fail_after_ms)
        cfg->fail_after_ms = 2 * cfg->timeout_ms;
    if (!cfg->weight)
        cfg->weight = 1;
    if (cfg->tokens && !cfg->probes)
        cfg->probes = RING_PLACE_PROBES_DEFAULT;
}

const char *node_hex(const node_t *n, ring_id_t id, char buf[RING_ID_HEX_MAX])
{
    ring_id_to_hex(id, n->cfg.id_bits, buf);
    return buf;
}

static bool book_referenced(const node_t *n, ring_id_t id)
{
    ring_id_t x, list[RING_SUCC_MAX];
    size_t ns = ring_state_succ_list(n->rs, list, RING_SUCC_MAX);
    for (size_t k = 0; k < ns; k++)
        if (list[k] == id)
            return true;
    for (unsigned i = 0; i < n->cfg.id_bits; i++)
        if (ring_state_finger(n->rs, i, &x) && x == id)
            return true;
    return ring_state_pred(n->rs, &x) && x == id;
}

static void book_put(node_t *n, ring_id_t id, const char *addr)
{
    if (id == n->self)
        return;
    book_entry_t *free_slot = NULL;
    for (size_t i = 0; i < BOOK_MAX; i++) {
        book_entry_t *e = &n->book[i];
        if (e->used && e->id == id) {
            if (strcmp(e->addr, addr) != 0)
                e->info_v1_until = 0; /* another process: ask it layout 2 again */
            snprintf(e->addr, sizeof e->addr, "%s", addr);
            return;
        }
        if (!e->used && !free_slot)
            free_slot = e;
    }
    if (!free_slot) {
        /*
         * Full: give up one entry the routing state does not refer to, a
         * failed one if there is one. Only one: the book is also the list
         * an isolated node rejoins through (rejoin_isolated), and every
         * live node it holds is a way back.
         */
        for (int pass = 0; pass < 2 && !free_slot; pass++)
            for (size_t i = 0; i < BOOK_MAX && !free_slot; i++) {
                book_entry_t *e = &n->book[(n->rejoin_cursor + i) % BOOK_MAX];
                if ((pass == 1 || e->failed) && !book_referenced(n, e->id))
                    free_slot = e;
            }
        if (!free_slot)
            return;
    }
    *free_slot = (book_entry_t){.used = true, .id = id};
    snprintf(free_slot->addr, sizeof free_slot->addr, "%s", addr);
}

const char *node_book_get(const node_t *n, ring_id_t id)
{
    if (id == n->self)
        return n->cfg.listen;
    for (size_t i = 0; i < BOOK_MAX; i++)
        if (n->book[i].used && n->book[i].id == id)
            return n->book[i].addr;
    /* A replica under token placement may be no neighbour or finger of ours. */
    const ring_member_t *e =
        node_place_on(n) && n->members ? ring_members_find(n->members, id) : NULL;
    return e ? e->addr : NULL;
}

void node_fill(const node_t *n, wire_node_t *w, ring_id_t id)
{
    const char *addr = node_book_get(n, id);
    wire_node_set(w, id, addr ? addr : "tcp://unknown:1");
}

/*
 * Linked into a ring (or the ring's first node). A node that lost every
 * successor and is rejoining stays a member: it holds keys and serves.
 */
static bool node_member(const node_t *n)
{
    return n->join_phase >= JOIN_LINK || n->rejoining;
}

static bool id_ok(const node_t *n, ring_id_t id)
{
    return id <= ring_mask(n->cfg.id_bits);
}

/* Record a node named in a message; refuses ids outside our ring. */
bool node_learn(node_t *n, const wire_node_t *w)
{
    if (!id_ok(n, w->id))
        return false;
    char norm[ENDPOINT_MAX];
    if (endpoint_normalize(w->addr, norm, sizeof norm, NULL) < 0)
        return false;
    book_put(n, w->id, norm);
    return true;
}

static book_entry_t *book_find(node_t *n, ring_id_t id)
{
    for (size_t i = 0; i < BOOK_MAX; i++)
        if (n->book[i].used && n->book[i].id == id)
            return &n->book[i];
    return NULL;
}

bool node_speaks_info2(node_t *n, ring_id_t id)
{
    const book_entry_t *e = book_find(n, id);
    return !e || e->info_v1_until <= n->ticks;
}

void node_refused_info2(node_t *n, ring_id_t id)
{
    book_entry_t *e = book_find(n, id);
    if (e)
        e->info_v1_until = n->ticks + 240; /* about a minute at the default period */
}

bool node_peer_down(const node_t *n, ring_id_t id)
{
    for (size_t i = 0; i < BOOK_MAX; i++)
        if (n->book[i].used && n->book[i].id == id)
            return n->book[i].failed;
    return false;
}

bool node_peer_suspect(const node_t *n, ring_id_t id)
{
    for (size_t i = 0; i < BOOK_MAX; i++)
        if (n->book[i].used && n->book[i].id == id)
            return n->book[i].misses > 0;
    return false;
}

void node_peer_alive(node_t *n, ring_id_t id)
{
    book_entry_t *e = book_find(n, id);
    if (e) {
        e->misses = 0;
        e->first_miss_ms = 0;
        if (e->failed)
            n->place.down_changed_ms = loop_now_ms(n->loop);
        e->failed = false;
    }
}

void node_peer_missed(node_t *n, ring_id_t id, const char *why)
{
    char a[RING_ID_HEX_MAX];
    /*
     * Before anything decides it is only busy: while we cannot hear a peer,
     * it may stop hearing us and take over our range; forgetting now
     * happens well before it could (it waits fail_after_ms after its first
     * miss).
     */
    kv_coord_forget(n);
    book_entry_t *e = book_find(n, id);
    const ring_member_t *me =
        node_place_on(n) && n->members ? ring_members_find(n->members, id) : NULL;
    if (!e && me && id != n->self) {
        /* A member we know only from the table (a replica under token placement). */
        book_put(n, id, me->addr);
        e = book_find(n, id);
    }
    uint64_t now = loop_now_ms(n->loop);
    /*
     * A peer that answered anything (a replication ack, an error) within
     * the last timeout is busy, not gone: under load its replies are late,
     * and counting those as misses used to declare live nodes dead.
     */
    const char *addr = node_book_get(n, id);
    uint64_t heard = addr ? rpc_last_reply_ms(n->rpc, addr) : 0;
    if (e && heard && now - heard < n->cfg.timeout_ms) {
        log_debug("ring", "peer %s missed a deadline (%s) but answered %llu ms ago",
                  node_hex(n, id, a), why, (unsigned long long)(now - heard));
        e->misses = 0;
        e->first_miss_ms = 0;
        return;
    }
    if (e) {
        if (e->misses++ == 0)
            e->first_miss_ms = now;
        if (e->misses < PEER_MISSES_MAX || now - e->first_miss_ms < n->cfg.fail_after_ms) {
            log_debug("ring", "peer %s missed a deadline (%s), %u in %llu ms", node_hex(n, id, a),
                      why, e->misses, (unsigned long long)(now - e->first_miss_ms));
            return;
        }
    }
    node_peer_failed(n, id, why);
}

/* Drop a failed peer everywhere so routing goes around it. */
void node_peer_failed(node_t *n, ring_id_t id, const char *why)
{
    if (id == n->self)
        return;
    book_entry_t *e = book_find(n, id);
    if (e) {
        e->misses = 0;
        e->first_miss_ms = 0;
        if (!e->failed)
            n->place.down_changed_ms = loop_now_ms(n->loop);
        e->failed = true; /* kept: it may come back, and it is someone to rejoin through */
    }
    char a[RING_ID_HEX_MAX], b[RING_ID_HEX_MAX];
    ring_id_t old_succ = ring_state_succ(n->rs);
    ring_state_remove(n->rs, id);
    const char *addr = node_book_get(n, id);
    if (addr)
        rpc_reset_peer(n->rpc, addr);
    kv_repl_peer_failed(n, id);
    if (old_succ == id)
        log_warn("ring", "successor %s failed (%s); next is %s", node_hex(n, id, a), why,
                 node_hex(n, ring_state_succ(n->rs), b));
    else
        log_info("ring", "peer %s failed (%s)", node_hex(n, id, a), why);
}

static void fill_succ_list(const node_t *n, wire_msg_t *m)
{
    ring_id_t succ[RING_SUCC_MAX];
    size_t ns = ring_state_succ_list(n->rs, succ, RING_SUCC_MAX);
    m->nsucc = (uint8_t)ns;
    for (size_t i = 0; i < ns; i++)
        node_fill(n, &m->succ[i], succ[i]);
}

static void fill_pred(const node_t *n, wire_msg_t *m)
{
    ring_id_t pred;
    m->has_pred = ring_state_pred(n->rs, &pred);
    if (m->has_pred)
        node_fill(n, &m->pred, pred);
}

int node_send(node_t *n, const uint8_t *ident, size_t ident_len, const wire_msg_t *m)
{
    /* One loop per process: one encode buffer. */
    static uint8_t buf[WIRE_FRAME_MAX];
    int len = wire_encode(m, buf, sizeof buf);
    if (len < 0) {
        log_error("net", "cannot encode %s: %s", wire_type_name(m->type), strerror(-len));
        return len;
    }
    bool with_value = wire_type_has_value(m->type);
    if (m->type == WIRE_ERROR)
        node_metrics_error(&n->metrics, m->err_code);
    loop_touch(n->loop, n->router);
    zmq_msg_t value;
    if (with_value) {
        if (zmq_msg_init_size(&value, m->value_len) < 0)
            return -ENOMEM;
        /* A value found in the store is read from its file, not its map. */
        if (m->value_len)
            store_value_copy(n->store, m->value, m->value_len, zmq_msg_data(&value));
    }
    if (zmq_send(n->router, ident, ident_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(n->router, buf, (size_t)len, ZMQ_DONTWAIT | (with_value ? ZMQ_SNDMORE : 0)) < 0 ||
        (with_value && zmq_msg_send(&value, n->router, ZMQ_DONTWAIT) < 0)) {
        int err = zmq_errno();
        log_debug("net", "reply %s not sent: %s", wire_type_name(m->type), zmq_strerror(err));
        if (with_value)
            zmq_msg_close(&value);
        return -err;
    }
    return 0;
}

void node_reply_error(node_t *n, const uint8_t *ident, size_t ident_len, uint64_t req_id, int err,
                      const char *fmt, ...)
{
    wire_msg_t m;
    wire_init(&m, WIRE_ERROR, req_id);
    m.err_code = err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m.err_msg, sizeof m.err_msg, fmt, ap);
    va_end(ap);
    node_send(n, ident, ident_len, &m);
}

/* ------------------------------------------------------------- lookups */

/*
 * One routing decision for key, as the FIND reply our caller gets when the
 * answer is known here: done with the owner, its predecessor (the node
 * with key in (pred, owner]) and the replica set (owner + successors).
 */
static bool answer_locally(node_t *n, ring_id_t key, const ring_id_t *avoid, size_t navoid,
                           wire_msg_t *r, ring_id_t *next)
{
    ring_route_t rt = ring_state_route(n->rs, key, avoid, navoid);
    ring_id_t succ[RING_SUCC_MAX];
    size_t ns = ring_state_succ_list(n->rs, succ, RING_SUCC_MAX);
    unsigned want = n->cfg.replicas;
    if (rt.kind == RING_ROUTE_FORWARD) {
        *next = rt.next;
        return false;
    }
    r->done = true;
    if (rt.kind == RING_ROUTE_SELF) {
        node_fill(n, &r->node, n->self);
        fill_pred(n, r);
        node_fill(n, &r->succ[0], n->self);
        r->nsucc = 1;
        for (size_t i = 0; i < ns && r->nsucc < want; i++)
            node_fill(n, &r->succ[r->nsucc++], succ[i]);
        return true;
    }
    node_fill(n, &r->node, rt.next);
    r->has_pred = true;
    node_fill(n, &r->pred, n->self);
    size_t k = 0;
    while (k < ns && succ[k] != rt.next)
        k++;
    r->nsucc = 0;
    node_fill(n, &r->succ[r->nsucc++], rt.next);
    for (size_t i = k + 1; i < ns && r->nsucc < want; i++)
        node_fill(n, &r->succ[r->nsucc++], succ[i]);
    /* The ring may be smaller than the replica count: we are a replica too. */
    if (r->nsucc < want && rt.next != n->self) {
        bool have = false;
        for (size_t i = 0; i < r->nsucc; i++)
            have |= r->succ[i].id == n->self;
        if (!have)
            node_fill(n, &r->succ[r->nsucc++], n->self);
    }
    return true;
}

/* A recursive FIND that we forwarded and must relay back. */
typedef struct {
    node_t *node;
    uint8_t ident[IDENT_MAX];
    size_t ident_len;
    uint64_t req_id;
    ring_id_t key;
    uint8_t hops;
    unsigned attempts;
    ring_id_t tried[FIND_ATTEMPTS];
    ring_id_t next;
    /* Local lookups (fix-fingers, join) finish here instead of replying. */
    void (*local_done)(node_t *n, int rc, const wire_msg_t *r, void *arg);
    void *local_arg;
} find_t;

static void find_step(find_t *f);

static void find_finish(find_t *f, int rc, const wire_msg_t *r)
{
    node_t *n = f->node;
    if (f->local_done) {
        f->local_done(n, rc, r, f->local_arg);
    } else if (rc == 0) {
        wire_msg_t out = *r;
        out.req_id = f->req_id;
        node_send(n, f->ident, f->ident_len, &out);
    } else {
        node_reply_error(n, f->ident, f->ident_len, f->req_id, -rc,
                         "lookup failed: no live next hop (%s)", strerror(-rc));
    }
    free(f);
}

static void find_on_reply(int rc, const wire_msg_t *r, void *arg)
{
    find_t *f = arg;
    node_t *n = f->node;
    if (rc == 0)
        node_peer_alive(n, f->next);
    if (rc == 0 && r->done && node_learn(n, &r->node)) {
        for (size_t i = 0; i < r->nsucc; i++)
            node_learn(n, &r->succ[i]);
        find_finish(f, 0, r);
        return;
    }
    if (rc == -ETIMEDOUT || rc == -EHOSTUNREACH) {
        if (rc == -ETIMEDOUT)
            node_peer_missed(n, f->next, "lookup timed out");
        find_step(f);
        return;
    }
    if (rc == 0)
        rc = -EBADMSG; /* a recursive FIND must come back done */
    find_finish(f, rc, NULL);
}

static void find_step(find_t *f)
{
    node_t *n = f->node;
    wire_msg_t r;
    wire_init(&r, WIRE_FIND | WIRE_REPLY, f->req_id);
    r.hops = f->hops;
    ring_id_t next;
    if (answer_locally(n, f->key, f->tried, f->attempts, &r, &next)) {
        find_finish(f, 0, &r);
        return;
    }
    const char *addr = node_book_get(n, next);
    if (f->attempts >= FIND_ATTEMPTS || !addr) {
        find_finish(f, -EHOSTUNREACH, NULL);
        return;
    }
    f->tried[f->attempts++] = next;
    f->next = next;
    wire_msg_t req;
    wire_init(&req, WIRE_FIND, 0);
    req.key = f->key;
    req.mode = WIRE_FIND_RECURSIVE;
    req.hops = (uint8_t)(f->hops + 1);
    int rc = rpc_call(n->rpc, addr, &req, n->cfg.timeout_ms * 2, find_on_reply, f);
    if (rc < 0)
        find_finish(f, rc, NULL);
}

/* Resolve key from this node, calling done(n, rc, reply, arg) once. */
static void find_local(node_t *n, ring_id_t key,
                       void (*done)(node_t *n, int rc, const wire_msg_t *r, void *arg), void *arg)
{
    find_t *f = calloc(1, sizeof *f);
    if (!f) {
        done(n, -ENOMEM, NULL, arg);
        return;
    }
    f->node = n;
    f->key = key;
    f->local_done = done;
    f->local_arg = arg;
    find_step(f);
}

/* ------------------------------------------------------------ handlers */

static void handle_find(node_t *n, const uint8_t *ident, size_t ident_len, const wire_msg_t *m)
{
    if (!id_ok(n, m->key)) {
        node_reply_error(n, ident, ident_len, m->req_id, EINVAL,
                         "key position outside this %u-bit ring", n->cfg.id_bits);
        return;
    }
    /* Hop counts are bounded: each hop moves clockwise, so more is a loop. */
    if (m->hops > 2 * n->cfg.id_bits + 16) {
        node_reply_error(n, ident, ident_len, m->req_id, ELOOP, "lookup exceeded the hop limit");
        return;
    }
    if (m->mode == WIRE_FIND_ITERATIVE) {
        wire_msg_t *r = &n->out;
        wire_init(r, WIRE_FIND | WIRE_REPLY, m->req_id);
        r->hops = m->hops;
        ring_id_t next;
        if (!answer_locally(n, m->key, NULL, 0, r, &next)) {
            r->done = false;
            node_fill(n, &r->node, next);
        }
        node_send(n, ident, ident_len, r);
        return;
    }
    find_t *f = calloc(1, sizeof *f);
    if (!f || ident_len > IDENT_MAX) {
        free(f);
        node_reply_error(n, ident, ident_len, m->req_id, ENOMEM, "out of memory");
        return;
    }
    f->node = n;
    memcpy(f->ident, ident, ident_len);
    f->ident_len = ident_len;
    f->req_id = m->req_id;
    f->key = m->key;
    f->hops = m->hops;
    find_step(f);
}

static void handle_info(node_t *n, const wire_msg_t *m, wire_msg_t *r)
{
    if (m->has_epoch)
        node_members_fill_info(n, r);
    if (m->has_place) {
        r->has_place = true;
        r->tokens = (uint16_t)n->cfg.tokens;
        r->probes = (uint8_t)n->cfg.probes;
    }
    r->id_bits = (uint8_t)n->cfg.id_bits;
    r->replicas = (uint8_t)n->cfg.replicas;
    r->write_quorum = (uint8_t)n->cfg.write_quorum;
    r->read_quorum = (uint8_t)n->cfg.read_quorum;
    node_fill(n, &r->node, n->self);
    fill_pred(n, r);
    fill_succ_list(n, r);
    r->keys = store_count(n->store);
}

static void handle_fingers(node_t *n, wire_msg_t *r)
{
    r->id_bits = (uint8_t)n->cfg.id_bits;
    node_fill(n, &r->node, n->self);
    r->nfingers = (uint8_t)n->cfg.id_bits;
    for (unsigned i = 0; i < n->cfg.id_bits; i++) {
        wire_finger_t *f = &r->fingers[i];
        ring_id_t id;
        f->i = (uint8_t)i;
        f->start = ring_state_finger_start(n->rs, i);
        f->has_node = ring_state_finger(n->rs, i, &id);
        if (f->has_node)
            node_fill(n, &f->node, id);
    }
}

static void on_update_passed(int rc, const wire_msg_t *r, void *arg)
{
    (void)arg;
    if (rc < 0)
        log_debug("ring", "passing an update on failed: %s", strerror(-rc));
    else
        log_debug("ring", "update passed on: %s", r->applied ? "applied" : "no update needed");
}

static void handle_update(node_t *n, const wire_msg_t *m, wire_msg_t *r)
{
    char a[RING_ID_HEX_MAX], b[RING_ID_HEX_MAX];
    bool applied = ring_state_update_finger(n->rs, m->index, m->node.id);
    r->applied = applied;
    ring_id_t pred;
    if (!applied) {
        /* What the entry holds says why (ring_lecture reads it). */
        ring_id_t cur;
        bool have = ring_state_finger(n->rs, m->index, &cur);
        log_debug("ring", "update(i=%u, new-peer=%s): no update needed (finger %u is %s)", m->index,
                  node_hex(n, m->node.id, a), m->index, have ? node_hex(n, cur, b) : "unset");
        return;
    }
    if (!ring_state_pred(n->rs, &pred) || pred == m->node.id || !node_book_get(n, pred)) {
        log_debug("ring", "update(i=%u, new-peer=%s): applied", m->index,
                  node_hex(n, m->node.id, a));
        return;
    }
    log_debug("ring", "update(i=%u, new-peer=%s): applied, passed to %s", m->index,
              node_hex(n, m->node.id, a), node_hex(n, pred, b));
    wire_msg_t fwd;
    wire_init(&fwd, WIRE_UPDATE, 0);
    fwd.index = m->index;
    fwd.node = m->node;
    rpc_call(n->rpc, node_book_get(n, pred), &fwd, n->cfg.timeout_ms, on_update_passed, NULL);
}

static bool admissible(node_t *n, ring_id_t id);

static void handle_leave(node_t *n, const wire_msg_t *m)
{
    char a[RING_ID_HEX_MAX];
    ring_id_t leaver = m->node.id;
    bool was_succ = ring_state_succ(n->rs) == leaver;
    ring_id_t pred;
    bool was_pred = ring_state_pred(n->rs, &pred) && pred == leaver;
    ring_state_remove(n->rs, leaver);
    node_members_left(n, leaver);
    if (was_succ) {
        ring_id_t list[WIRE_SUCC_MAX];
        size_t k = 0;
        for (size_t i = 0; i < m->nsucc; i++)
            if (m->succ[i].id != leaver && node_learn(n, &m->succ[i]) &&
                admissible(n, m->succ[i].id))
                list[k++] = m->succ[i].id;
        ring_id_t mine[RING_SUCC_MAX];
        size_t nmine = ring_state_succ_list(n->rs, mine, RING_SUCC_MAX);
        if (k > 0)
            ring_state_set_succ_list(n->rs, list[0], list + 1, k - 1);
        else if (nmine > 0)
            ring_state_set_succ_list(n->rs, mine[0], mine + 1, nmine - 1);
    }
    if (was_pred && m->has_pred && m->pred.id != n->self && node_learn(n, &m->pred))
        ring_state_set_pred(n->rs, m->pred.id);
    log_info("ring", "peer %s left%s%s", node_hex(n, leaver, a), was_succ ? " (was successor)" : "",
             was_pred ? " (was predecessor)" : "");
}

static void handle_notify(node_t *n, const wire_msg_t *m)
{
    char a[RING_ID_HEX_MAX];
    if (m->node.id == n->self)
        return;
    if (ring_state_notify(n->rs, m->node.id))
        log_info("ring", "predecessor is now %s", node_hex(n, m->node.id, a));
    /*
     * The joiner also tells its predecessor "I may be your successor"; the
     * check is stabilize's, so a stale or hostile claim changes nothing that
     * the next stabilize round would not change as well.
     */
    ring_id_t adopt;
    if (m->role == WIRE_NOTIFY_SUCCESSOR &&
        ring_state_stabilize_candidate(n->rs, m->node.id, &adopt)) {
        ring_id_t list[RING_SUCC_MAX];
        size_t k = ring_state_succ_list(n->rs, list, RING_SUCC_MAX);
        ring_state_set_succ_list(n->rs, adopt, list, k);
        log_info("ring", "successor is now %s", node_hex(n, adopt, a));
    }
}

/*
 * On a secured node, whether the sender (user_id: the key its connection
 * authenticated with) may send m; if not, it is answered EACCES. The lists
 * are asked again for every message, so a key removed on SIGHUP is refused
 * from its next message on, on connections opened before.
 */
static bool allowed(node_t *n, const uint8_t *ident, size_t ident_len, const wire_msg_t *m,
                    const char *user_id)
{
    if (!n->cfg.auth)
        return true;
    char why[WIRE_ERRMSG_MAX];
    if (auth_check(n->cfg.auth, user_id, m, why, sizeof why))
        return true;
    node_reply_error(n, ident, ident_len, m->req_id, EACCES, "%s", why);
    return false;
}

/*
 * Whether the loop is just back from a stall (frozen, starved): its
 * maintenance tick is overdue, or was when it last ran. NOW is read on the
 * clock, not the loop's cached time: a freeze can land inside a callback,
 * and the rest of that callback runs with the time from before it (seen: a
 * conditional write applied after a 5 s freeze over what others wrote).
 */
static void note_stall(node_t *n, uint64_t now)
{
    if (n->leaving)
        return; /* its ticks have stopped: not a stall */
    if (n->tick_ms && now - n->tick_ms > node_tick_stall_ms(n) && n->stall_seen_ms <= n->tick_ms) {
        n->stall_seen_ms = now;
        log_warn("node",
                 "resumed after a %llu ms stall; refusing client writes that waited through it",
                 (unsigned long long)(now - n->tick_ms));
    }
}

bool node_stalled_since(node_t *n, uint64_t t)
{
    note_stall(n, loop_clock_ms());
    return n->stall_seen_ms > t;
}

/*
 * Client writes read right after a stall may have waited through it in our
 * socket buffers, and their senders may have given up on them, retried
 * through another node and written newer values since: applied now, under
 * a version newer than those, they would bring old data back. They are
 * refused as busy — nothing written, so a sender still waiting retries it
 * here — for a short window in which the buffered backlog is read.
 */
static bool refuse_after_stall(node_t *n, const uint8_t *ident, size_t ident_len,
                               const wire_msg_t *m)
{
    if (m->type != WIRE_KV_PUT)
        return false;
    uint64_t now = loop_clock_ms();
    note_stall(n, now);
    uint64_t window = n->cfg.timeout_ms / 4 > 100 ? n->cfg.timeout_ms / 4 : 100;
    if (!n->stall_seen_ms || now - n->stall_seen_ms >= window)
        return false;
    n->metrics.stale_refused++;
    node_reply_error(n, ident, ident_len, m->req_id, EBUSY,
                     "this node just resumed after a stall; a write that waited through it is "
                     "refused (its sender may have given up): try again");
    return true;
}

static void serve_msg(node_t *n, const uint8_t *ident, size_t ident_len, const uint8_t *data,
                      size_t len, zmq_msg_t *value, const char *user_id)
{
    wire_msg_t *m = &n->in;
    int rc = wire_decode(data, len, m);
    if (rc == 0 && (value != NULL) != wire_type_has_value(m->type)) {
        log_warn("net", "dropped %s with %s value frame", wire_type_name(m->type),
                 value ? "an unexpected" : "no");
        return;
    }
    if (value) {
        m->value = zmq_msg_data(value);
        m->value_len = zmq_msg_size(value);
    }
    if (rc == -EPROTONOSUPPORT) {
        log_warn("net", "dropped a message of protocol version %u (we speak %u)",
                 len > 2 ? data[2] : 0, WIRE_VERSION);
        node_reply_error(n, ident, ident_len, m->req_id, EPROTONOSUPPORT,
                         "protocol version %u not supported (this node speaks %u)",
                         len > 2 ? data[2] : 0, WIRE_VERSION);
        return;
    }
    if (rc == -EOPNOTSUPP && !(m->type & WIRE_REPLY) && m->type != WIRE_ERROR &&
        m->type != WIRE_REDIRECT) {
        /*
         * A request this build does not know, from a newer peer or client
         * (a rolling upgrade): say so at once, so the sender falls back
         * instead of waiting out its timeout.
         */
        node_reply_error(n, ident, ident_len, m->req_id, EOPNOTSUPP,
                         "message type 0x%02x not supported by this node (protocol %u)", m->type,
                         WIRE_VERSION);
        return;
    }
    if (rc < 0) {
        log_warn("net", "dropped a malformed message (%zu bytes)", len);
        n->metrics.malformed++;
        return;
    }
    if (m->type & WIRE_REPLY || m->type == WIRE_ERROR) {
        log_warn("net", "dropped an unsolicited %s", wire_type_name(m->type));
        return;
    }
    node_metrics_request(&n->metrics, m->type);
    n->metrics.serving = m->type;
    if (!allowed(n, ident, ident_len, m, user_id))
        return;
    if (n->leaving && m->type != WIRE_PING && m->type != WIRE_INFO && m->type != WIRE_MEMBERS) {
        node_reply_error(n, ident, ident_len, m->req_id, ESHUTDOWN, "node is leaving the ring");
        return;
    }
    /* Nodes named in requests must belong to our ring. */
    if ((m->type == WIRE_NOTIFY || m->type == WIRE_UPDATE || m->type == WIRE_LEAVE ||
         m->type == WIRE_SYNC_PULL || m->type == WIRE_SYNC_DROP) &&
        !node_learn(n, &m->node)) {
        node_reply_error(n, ident, ident_len, m->req_id, EINVAL,
                         "node id or endpoint invalid for this %u-bit ring", n->cfg.id_bits);
        return;
    }
    if (m->type == WIRE_UPDATE && m->index >= n->cfg.id_bits) {
        node_reply_error(n, ident, ident_len, m->req_id, EINVAL, "finger index %u out of range",
                         m->index);
        return;
    }

    if (refuse_after_stall(n, ident, ident_len, m) || kv_serve(n, ident, ident_len, m))
        return;
    wire_msg_t *r = &n->out;
    wire_init(r, (uint8_t)(m->type | WIRE_REPLY), m->req_id);
    switch (m->type) {
    case WIRE_PING:
        break;
    case WIRE_INFO:
        handle_info(n, m, r);
        break;
    case WIRE_MEMBERS:
        if (!node_members_complete(n)) {
            /* A newcomer pulling from us would take our few members for the whole ring. */
            node_reply_error(n, ident, ident_len, m->req_id, EAGAIN,
                             "this node is still learning the ring's members");
            return;
        }
        node_members_serve(n, m, r);
        break;
    case WIRE_NOTIFY:
        handle_notify(n, m);
        break;
    case WIRE_FIND:
        if (!node_member(n)) {
            /*
             * Not in a ring yet: as a ring of one we would answer "mine",
             * and a newcomer would join us and be left alone if our own
             * join fails (seen in ring_churn). It should wait for us.
             */
            node_reply_error(n, ident, ident_len, m->req_id, EAGAIN,
                             "this node is still joining the ring");
            return;
        }
        handle_find(n, ident, ident_len, m);
        return;
    case WIRE_FINGERS:
        handle_fingers(n, r);
        break;
    case WIRE_UPDATE:
        handle_update(n, m, r);
        break;
    case WIRE_LEAVE:
        handle_leave(n, m);
        break;
    default:
        node_reply_error(n, ident, ident_len, m->req_id, EOPNOTSUPP, "unsupported request %s",
                         wire_type_name(m->type));
        return;
    }
    node_send(n, ident, ident_len, r);
}

/* serve_msg, with the error replies it sends counted against its request type. */
static void serve(node_t *n, const uint8_t *ident, size_t ident_len, const uint8_t *data,
                  size_t len, zmq_msg_t *value, const char *user_id)
{
    n->metrics.serving = 0;
    serve_msg(n, ident, ident_len, data, len, value, user_id);
    n->metrics.serving = 0;
}

static void on_router(loop_t *loop, void *zsock, int fd, void *arg)
{
    (void)fd;
    node_t *n = arg;
    for (int batch = 0; batch < 256; batch++) {
        /* [identity][message][value?]; anything longer is dropped whole. */
        zmq_msg_t parts[3];
        int total = rpc_recv_frames(zsock, parts, 3);
        int nparts = total < 3 ? total : 3;
        if (total == 0) {
            loop_idle(loop, zsock);
            return;
        }
        if (total < 2 || total > 3 || zmq_msg_size(&parts[0]) > IDENT_MAX) {
            log_warn("net", "dropped a message of %d frames (expected 1 or 2)", total - 1);
        } else {
            /* CURVE connections carry the key they authenticated with. */
            const char *user_id = n->cfg.auth ? zmq_msg_gets(&parts[1], "User-Id") : NULL;
            serve(n, zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]), zmq_msg_data(&parts[1]),
                  zmq_msg_size(&parts[1]), total == 3 ? &parts[2] : NULL, user_id);
        }
        for (int i = 0; i < nparts; i++)
            zmq_msg_close(&parts[i]);
    }
}

/* ----------------------------------------------------- periodic repair */

static void send_notify(node_t *n, ring_id_t to, uint8_t role);

static void on_probe(int rc, const wire_msg_t *r, void *arg)
{
    node_t *n = arg;
    n->probing = false;
    /* Only the node itself: another process may listen at its address now. */
    if (rc == 0 && r->node.id == n->probe_target)
        node_peer_alive(n, n->probe_target);
}

/*
 * Whether a node another peer names (as its predecessor or in its successor
 * list) may enter our successor list. Not one we declared failed and have
 * not heard from since: neighbours notice a crash at different times, and
 * the successor still naming the dead node would otherwise put it back at
 * every round until it notices too. It is asked for its INFO instead (one
 * at a time), and an answer from that id makes it welcome again at the
 * next round.
 */
static bool admissible(node_t *n, ring_id_t id)
{
    const book_entry_t *e = book_find(n, id);
    if (!e || !e->failed)
        return true;
    wire_msg_t req;
    wire_init(&req, WIRE_INFO, 0); /* layout 1: its answer names the node */
    if (!n->probing &&
        rpc_call_lane(n->rpc, e->addr, RPC_LANE_CTL, &req, n->cfg.timeout_ms, on_probe, n) == 0) {
        n->probing = true;
        n->probe_target = id;
    }
    return false;
}

static void on_stabilize(int rc, const wire_msg_t *r, void *arg)
{
    node_t *n = arg;
    n->stabilizing = false;
    ring_id_t succ = n->stabilize_target;
    if (rc == -EPROTONOSUPPORT) {
        /* Built before INFO layout 2: ask version 1 for a while; it is alive. */
        node_refused_info2(n, succ);
        node_peer_alive(n, succ);
        return;
    }
    if (rc < 0) {
        if (rc == -ECANCELED)
            return;
        node_peer_missed(n, succ, rc == -ETIMEDOUT ? "stabilize timed out" : strerror(-rc));
        return;
    }
    node_peer_alive(n, succ);
    if (r->has_epoch && r->node.id == succ)
        node_members_seen(n, succ, node_book_get(n, succ), r->epoch);
    if (!r->has_pred || r->pred.id != n->self)
        kv_coord_forget(n); /* it does not count us as its predecessor (now) */
    if (succ != ring_state_succ(n->rs))
        return; /* the successor changed meanwhile; the next round asks it */
    if (r->node.id != succ) {
        /* Another node now answers at that endpoint: the old one is gone. */
        node_peer_failed(n, succ, "endpoint answered with another id");
        return;
    }
    ring_id_t list[WIRE_SUCC_MAX];
    size_t k = 0;
    for (size_t i = 0; i < r->nsucc; i++)
        if (node_learn(n, &r->succ[i]) && admissible(n, r->succ[i].id))
            list[k++] = r->succ[i].id;
    ring_id_t adopt;
    char a[RING_ID_HEX_MAX];
    if (r->has_pred && node_learn(n, &r->pred) &&
        ring_state_stabilize_candidate(n->rs, r->pred.id, &adopt) && admissible(n, adopt)) {
        ring_id_t rest[WIRE_SUCC_MAX + 1];
        rest[0] = succ;
        memcpy(rest + 1, list, k * sizeof *list);
        ring_state_set_succ_list(n->rs, adopt, rest, k + 1);
        log_info("ring", "successor is now %s", node_hex(n, adopt, a));
    } else {
        ring_state_set_succ_list(n->rs, succ, list, k);
    }
    send_notify(n, ring_state_succ(n->rs), WIRE_NOTIFY_PREDECESSOR);
}

static void stabilize(node_t *n)
{
    ring_id_t succ = ring_state_succ(n->rs);
    if (succ == n->self || n->stabilizing)
        return;
    const char *addr = node_book_get(n, succ);
    if (!addr) {
        node_peer_failed(n, succ, "no address known");
        return;
    }
    wire_msg_t req;
    wire_init(&req, WIRE_INFO, 0);
    req.has_epoch = node_speaks_info2(n, succ);
    if (rpc_call_lane(n->rpc, addr, RPC_LANE_CTL, &req, n->cfg.timeout_ms, on_stabilize, n) == 0) {
        n->stabilizing = true;
        n->stabilize_target = succ;
    }
}

static void send_notify(node_t *n, ring_id_t to, uint8_t role)
{
    const char *addr = node_book_get(n, to);
    if (to == n->self || !addr)
        return;
    wire_msg_t req;
    wire_init(&req, WIRE_NOTIFY, 0);
    node_fill(n, &req.node, n->self);
    req.role = role;
    rpc_call_lane(n->rpc, addr, RPC_LANE_CTL, &req, n->cfg.timeout_ms, rpc_ignore_answer, "notify");
}

static void on_pred_ping(int rc, const wire_msg_t *r, void *arg)
{
    (void)r;
    node_t *n = arg;
    n->checking_pred = false;
    ring_id_t pred;
    if (rc == 0)
        node_peer_alive(n, n->ping_target);
    else if (rc == -ETIMEDOUT && ring_state_pred(n->rs, &pred) && pred == n->ping_target)
        node_peer_missed(n, pred, "ping timed out");
}

static void check_predecessor(node_t *n)
{
    ring_id_t pred;
    if (n->checking_pred || !ring_state_pred(n->rs, &pred))
        return;
    const char *addr = node_book_get(n, pred);
    if (!addr) {
        ring_state_clear_pred(n->rs);
        return;
    }
    wire_msg_t req;
    wire_init(&req, WIRE_PING, 0);
    if (rpc_call_lane(n->rpc, addr, RPC_LANE_CTL, &req, n->cfg.timeout_ms, on_pred_ping, n) == 0) {
        n->checking_pred = true;
        n->ping_target = pred;
    }
}

static void on_finger_found(node_t *n, int rc, const wire_msg_t *r, void *arg)
{
    unsigned i = (unsigned)(uintptr_t)arg;
    n->fixing = false;
    if (rc < 0 || n->leaving)
        return;
    ring_state_set_finger(n->rs, i, r->node.id);
    n->next_finger = ring_state_spread_finger(n->rs, i) % n->cfg.id_bits;
}

static void fix_fingers(node_t *n)
{
    if (n->fixing)
        return;
    n->fixing = true;
    unsigned i = n->next_finger;
    find_local(n, ring_state_finger_start(n->rs, i), on_finger_found, (void *)(uintptr_t)i);
}

static void rejoin_isolated(node_t *n);

static void tick(loop_t *loop, void *arg)
{
    node_t *n = arg;
    n->tick_timer = 0;
    if (n->leaving)
        return;
    /* One clock for both: a stall noted later than tick_ms would hide the next. */
    uint64_t now = loop_clock_ms();
    note_stall(n, now);
    if (n->tick_ms && n->stall_seen_ms > n->tick_ms)
        kv_coord_forget(n); /* stalled (frozen, starved): others may have moved on */
    n->tick_ms = now;
    if (++n->ticks % 8 == 0)
        rejoin_isolated(n);
    stabilize(n);
    check_predecessor(n);
    /* Several fingers per round: most of them collapse by spreading. */
    for (int k = 0; k < 4; k++)
        fix_fingers(n);
    node_members_tick(n);
    node_place_tick(n);
    kv_tick(n);
    n->tick_timer = loop_timer_add(loop, n->cfg.stabilize_ms, tick, n);
}

static void start_maintenance(node_t *n)
{
    if (!n->tick_timer)
        n->tick_timer = loop_timer_add(n->loop, n->cfg.stabilize_ms, tick, n);
}

/* ----------------------------------------------------------------- join */

static void join_fail(node_t *n, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void join_fail(node_t *n, int status, const char *fmt, ...)
{
    if (n->leaving)
        return; /* told to leave while joining: that is a clean exit */
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n->rejoining) {
        /* A failed rejoin is not fatal: we keep serving and try another peer later. */
        log_debug("ring", "rejoin through %s failed: %s", n->cfg.join, msg);
        n->rejoining = false;
        n->join_phase = JOIN_DONE;
        return;
    }
    log_error("join", "%s", msg);
    fprintf(stderr, "kvnode: %s\n", msg);
    n->exit_status = status;
    loop_stop(n->loop);
}

static void join_send_info(node_t *n);

static void on_update_sent(int rc, const wire_msg_t *r, void *arg)
{
    (void)arg;
    if (rc == 0)
        log_debug("join", "update answered: %s", r->applied ? "applied" : "no update needed");
}

/* Lecture step 4: update(target = self - 2^i, new-peer = self). */
static void on_update_target(node_t *n, int rc, const wire_msg_t *r, void *arg)
{
    unsigned i = (unsigned)(uintptr_t)arg;
    char a[RING_ID_HEX_MAX], b[RING_ID_HEX_MAX];
    if (rc < 0 || !r->has_pred || r->pred.id == n->self || n->leaving)
        return;
    log_debug("join", "update(target=%s, new-peer=%s) i=%u sent to %s",
              node_hex(n, ring_join_update_target(n->self, i, n->cfg.id_bits), a), n->self_hex, i,
              node_hex(n, r->pred.id, b));
    wire_msg_t req;
    wire_init(&req, WIRE_UPDATE, 0);
    req.index = (uint8_t)i;
    node_fill(n, &req.node, n->self);
    rpc_call(n->rpc, r->pred.addr, &req, n->cfg.timeout_ms, on_update_sent, NULL);
}

static void join_send_updates(node_t *n)
{
    for (unsigned i = 0; i < n->cfg.id_bits; i++)
        find_local(n, ring_join_update_key(n->self, i, n->cfg.id_bits), on_update_target,
                   (void *)(uintptr_t)i);
}

/* Lecture step 1, done once we are linked so lookups can go through us. */
static void on_join_finger(node_t *n, int rc, const wire_msg_t *r, void *arg);

static void join_find_finger(node_t *n, unsigned i)
{
    if (n->leaving)
        return;
    if (i < n->cfg.id_bits) {
        find_local(n, ring_state_finger_start(n->rs, i), on_join_finger, (void *)(uintptr_t)i);
        return;
    }
    log_info("join", "finger table built; sending updates");
    n->join_phase = JOIN_DONE;
    join_send_updates(n);
}

static void on_join_finger(node_t *n, int rc, const wire_msg_t *r, void *arg)
{
    unsigned i = (unsigned)(uintptr_t)arg;
    unsigned next = i + 1;
    if (rc == 0) {
        ring_state_set_finger(n->rs, i, r->node.id);
        next = ring_state_spread_finger(n->rs, i);
    }
    join_find_finger(n, next);
}

static void on_join_link(int rc, const wire_msg_t *r, void *arg)
{
    node_t *n = arg;
    char a[RING_ID_HEX_MAX], b[RING_ID_HEX_MAX];
    if (rc < 0) {
        join_fail(n, NODE_EXIT_UNAVAILABLE, "successor did not answer while joining: %s",
                  strerror(-rc));
        return;
    }
    if (n->rejoining)
        log_warn("ring", "was isolated; rejoined the ring through %s", n->cfg.join);
    n->rejoining = false;
    ring_id_t list[WIRE_SUCC_MAX];
    size_t k = 0;
    for (size_t i = 0; i < r->nsucc; i++)
        if (node_learn(n, &r->succ[i]))
            list[k++] = r->succ[i].id;
    ring_state_set_succ_list(n->rs, r->node.id, list, k);
    ring_id_t pred;
    /* Step 2: link both pointers, and tell both neighbours. */
    send_notify(n, r->node.id, WIRE_NOTIFY_PREDECESSOR);
    if (ring_state_pred(n->rs, &pred))
        send_notify(n, pred, WIRE_NOTIFY_SUCCESSOR);
    log_info("join", "joined: successor %s, predecessor %s", node_hex(n, r->node.id, a),
             ring_state_pred(n->rs, &pred) ? node_hex(n, pred, b) : "unknown");
    n->join_phase = JOIN_LINK;
    start_maintenance(n);
    join_find_finger(n, 0);
}

static void join_retry(loop_t *loop, void *arg)
{
    (void)loop;
    join_send_info(arg);
}

static void on_join_find(int rc, const wire_msg_t *r, void *arg)
{
    node_t *n = arg;
    char a[RING_ID_HEX_MAX];
    if (rc < 0) {
        if (++n->join_attempts < JOIN_ATTEMPTS && rc == -ETIMEDOUT) {
            join_send_info(n);
            return;
        }
        if (rc == -EAGAIN && !n->rejoining && ++n->join_attempts < JOIN_ATTEMPTS * 10) {
            /* The bootstrap is joining itself: ask again once it may be done. */
            log_warn("join", "%s is still joining the ring; retrying", n->cfg.join);
            loop_timer_add(n->loop, n->cfg.timeout_ms, join_retry, n);
            return;
        }
        if (rc == -ESHUTDOWN && n->njoin_alt > 0) {
            /* The bootstrap is leaving: join through a node it named. */
            n->njoin_alt--;
            log_warn("join", "%s is leaving; joining through %s instead", n->cfg.join,
                     n->join_alt[n->njoin_alt]);
            snprintf(n->cfg.join, sizeof n->cfg.join, "%s", n->join_alt[n->njoin_alt]);
            n->join_attempts = 0;
            join_send_info(n);
            return;
        }
        join_fail(n, NODE_EXIT_UNAVAILABLE, "lookup of our id through %s failed: %s", n->cfg.join,
                  rc == -EAGAIN ? "it is still joining the ring" : strerror(-rc));
        return;
    }
    if (!r->done || !node_learn(n, &r->node)) {
        join_fail(n, NODE_EXIT_FAILURE, "bootstrap peer %s gave an invalid lookup answer",
                  n->cfg.join);
        return;
    }
    if (r->node.id == n->self && strcmp(r->node.addr, n->cfg.listen) != 0) {
        join_fail(n, NODE_EXIT_FAILURE, "id %s is already taken by %s; choose another --id",
                  node_hex(n, n->self, a), r->node.addr);
        return;
    }
    for (size_t i = 0; i < r->nsucc; i++)
        node_learn(n, &r->succ[i]);
    ring_id_t succ = r->node.id;
    if (succ == n->self) {
        /* Our previous incarnation is still linked in: take its neighbours. */
        succ = n->self;
        for (size_t i = 0; i < r->nsucc && succ == n->self; i++)
            succ = r->succ[i].id;
    }
    if (r->has_pred && r->pred.id != n->self && node_learn(n, &r->pred))
        ring_state_set_pred(n->rs, r->pred.id);
    const char *addr = node_book_get(n, succ);
    if (succ == n->self || !addr) {
        /*
         * Only our own dead incarnation was found (a ring of it alone, as far
         * as this peer knows): wait for the ring to notice, then ask again.
         */
        if (++n->join_attempts < JOIN_ATTEMPTS * 10) {
            log_warn("join", "the ring still lists this node's previous run; retrying");
            loop_timer_add(n->loop, n->cfg.timeout_ms, join_retry, n);
            return;
        }
        join_fail(n, NODE_EXIT_FAILURE, "no successor found through %s", n->cfg.join);
        return;
    }
    wire_msg_t req;
    wire_init(&req, WIRE_INFO, 0);
    if (rpc_call(n->rpc, addr, &req, n->cfg.timeout_ms, on_join_link, n) < 0)
        join_fail(n, NODE_EXIT_FAILURE, "cannot reach successor %s", addr);
}

static void join_send_info_v(node_t *n, bool place);

static void on_join_info(int rc, const wire_msg_t *r, void *arg)
{
    node_t *n = arg;
    if (rc == -EPROTONOSUPPORT && r) {
        /* A node built before token placement: its ring places by Chord. */
        if (n->cfg.tokens) {
            join_fail(n, NODE_EXIT_FAILURE,
                      "refusing to join: the ring at %s places keys by Chord successors "
                      "(a version without --tokens); this node has --tokens %u",
                      n->cfg.join, n->cfg.tokens);
            return;
        }
        join_send_info_v(n, false);
        return;
    }
    if (rc < 0) {
        if (++n->join_attempts < JOIN_ATTEMPTS && rc == -ETIMEDOUT) {
            log_warn("join", "%s did not answer; retrying", n->cfg.join);
            join_send_info(n);
            return;
        }
        join_fail(n, NODE_EXIT_UNAVAILABLE, "cannot join through %s: %s", n->cfg.join,
                  rc == -ETIMEDOUT ? "no answer (is a node running there?)" : strerror(-rc));
        return;
    }
    n->njoin_alt = 0;
    for (size_t i = 0; i < r->nsucc && n->njoin_alt < WIRE_SUCC_MAX; i++)
        if (r->succ[i].id != n->self && node_learn(n, &r->succ[i]) &&
            endpoint_normalize(r->succ[i].addr, n->join_alt[n->njoin_alt], ENDPOINT_MAX, NULL) == 0)
            n->njoin_alt++;
    const struct {
        const char *what;
        unsigned theirs, ours;
    } cmp[] = {
        {"--id-bits", r->id_bits, n->cfg.id_bits},
        {"--replicas", r->replicas, n->cfg.replicas},
        {"--write-quorum", r->write_quorum, n->cfg.write_quorum},
        {"--read-quorum", r->read_quorum, n->cfg.read_quorum},
        {"--tokens", r->has_place ? r->tokens : 0, n->cfg.tokens},
        {"--probes", r->has_place ? r->probes : 0, n->cfg.probes},
    };
    for (size_t i = 0; i < sizeof cmp / sizeof cmp[0]; i++)
        if (cmp[i].theirs != cmp[i].ours) {
            join_fail(n, NODE_EXIT_FAILURE,
                      "refusing to join: the ring at %s uses %s %u, this node %u", n->cfg.join,
                      cmp[i].what, cmp[i].theirs, cmp[i].ours);
            return;
        }
    n->join_phase = JOIN_FIND;
    wire_msg_t req;
    wire_init(&req, WIRE_FIND, 0);
    req.key = n->self;
    req.mode = WIRE_FIND_RECURSIVE;
    if (rpc_call(n->rpc, n->cfg.join, &req, n->cfg.timeout_ms * 4, on_join_find, n) < 0)
        join_fail(n, NODE_EXIT_FAILURE, "cannot send to %s", n->cfg.join);
}

/* place: ask INFO layout 3, which names the ring's placement (else layout 1). */
static void join_send_info_v(node_t *n, bool place)
{
    n->join_phase = JOIN_INFO;
    wire_msg_t req;
    wire_init(&req, WIRE_INFO, 0);
    req.has_epoch = req.has_place = place;
    if (rpc_call(n->rpc, n->cfg.join, &req, n->cfg.timeout_ms, on_join_info, n) < 0)
        join_fail(n, NODE_EXIT_FAILURE, "cannot send to %s", n->cfg.join);
}

static void join_send_info(node_t *n)
{
    join_send_info_v(n, true);
}

/*
 * Every successor we had failed within one detection period and we are
 * alone, though the ring may live on without us (Chord cannot re-merge
 * that by itself). Look ourselves up through a peer, as a join does; a
 * failure just means trying the next one at a later tick. The peers are
 * every node in the book (whatever we heard of: fingers, successor lists,
 * predecessors, notifiers, lookup answers; failed ones too, as they may
 * be back) and the configured seed, round-robin, for as long as we are
 * alone: when the last live node we know is the seed, or one we heard of
 * once, the ring still comes back.
 */
static void rejoin_isolated(node_t *n)
{
    if (n->join_phase != JOIN_DONE || n->rejoining || ring_state_succ(n->rs) != n->self)
        return;
    const char *to = NULL;
    for (unsigned k = 0; k <= BOOK_MAX && !to; k++) {
        unsigned c = (n->rejoin_cursor + k) % (BOOK_MAX + 1);
        if (c == BOOK_MAX)
            to = n->seed[0] && strcmp(n->seed, n->cfg.listen) != 0 ? n->seed : NULL;
        else
            to = n->book[c].used ? n->book[c].addr : NULL;
        if (to)
            n->rejoin_cursor = (c + 1) % (BOOK_MAX + 1);
    }
    if (!to)
        return;
    n->rejoining = true;
    n->join_phase = JOIN_FIND;
    n->join_attempts = JOIN_ATTEMPTS; /* no retries: the next tick tries another */
    snprintf(n->cfg.join, sizeof n->cfg.join, "%s", to);
    log_debug("ring", "alone; rejoining through %s", n->cfg.join);
    wire_msg_t req;
    wire_init(&req, WIRE_FIND, 0);
    req.key = n->self;
    req.mode = WIRE_FIND_RECURSIVE;
    if (rpc_call(n->rpc, n->cfg.join, &req, n->cfg.timeout_ms, on_join_find, n) < 0) {
        n->rejoining = false;
        n->join_phase = JOIN_DONE;
    }
}

/* ---------------------------------------------------------------- leave */

static void on_leave_ack(int rc, const wire_msg_t *r, void *arg)
{
    (void)r;
    node_t *n = arg;
    if (rc < 0 && rc != -ECANCELED)
        log_warn("ring", "a neighbour did not acknowledge our leave: %s", strerror(-rc));
    if (n->leave_waiting && --n->leave_waiting == 0)
        loop_stop(n->loop);
}

static void on_leave_timeout(loop_t *loop, void *arg)
{
    (void)arg;
    log_warn("ring", "leave not acknowledged in time; exiting anyway");
    loop_stop(loop);
}

/* After the hand-off: tell both neighbours, exit once they acknowledged. */
static void leave_notify(node_t *n)
{
    ring_id_t succ = ring_state_succ(n->rs), pred;
    bool has_pred = ring_state_pred(n->rs, &pred);
    wire_msg_t req;
    wire_init(&req, WIRE_LEAVE, 0);
    node_fill(n, &req.node, n->self);
    fill_pred(n, &req);
    fill_succ_list(n, &req);
    ring_id_t to[2];
    size_t nto = 0;
    if (succ != n->self)
        to[nto++] = succ;
    if (has_pred && pred != succ)
        to[nto++] = pred;
    for (size_t i = 0; i < nto; i++) {
        const char *addr = node_book_get(n, to[i]);
        if (addr && rpc_call(n->rpc, addr, &req, LEAVE_WAIT_MS, on_leave_ack, n) == 0)
            n->leave_waiting++;
    }
    if (n->leave_waiting == 0)
        loop_stop(n->loop);
    else
        loop_timer_add(n->loop, LEAVE_WAIT_MS + 200, on_leave_timeout, n);
}

void node_leave(node_t *n)
{
    if (n->leaving)
        return;
    n->leaving = true;
    n->exit_status = NODE_EXIT_OK;
    if (n->tick_timer) {
        loop_timer_cancel(n->loop, n->tick_timer);
        n->tick_timer = 0;
    }
    log_info("ring", "leaving the ring");
    node_members_leaving(n);
    /* Keys first: until the successors confirm them, we are a replica. */
    kv_handoff(n, leave_notify);
}

/* ------------------------------------------------------------ lifecycle */

/*
 * Once per loop iteration: hand the writes staged in it to the committer
 * thread (one fsync for the batch, off the loop), or, for a store in
 * memory, commit them here.
 */
static void before_poll(loop_t *loop, void *arg)
{
    (void)loop;
    node_t *n = arg;
    if (store_dirty(n->store))
        store_commit(n->store);
}

static int lock_data_dir(const char *dir, char *err, size_t errcap)
{
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errcap, "cannot create data directory %s: %s", dir, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (stat(dir, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
        snprintf(err, errcap, "data path %s is not a directory", dir);
        return -1;
    }
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/LOCK", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errcap, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        snprintf(err, errcap, "data directory %s is in use by another kvnode", dir);
        close(fd);
        return -1;
    }
    return fd;
}

node_t *node_new(const node_config_t *cfg, void *zctx, loop_t *loop, char *err, size_t errcap)
{
    node_t *n = calloc(1, sizeof *n);
    if (n)
        node_metrics_init(&n->metrics);
    if (!n) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    n->cfg = *cfg;
    n->zctx = zctx;
    n->loop = loop;
    n->lock_fd = -1;
    n->exit_status = NODE_EXIT_OK;
    char bind_ep[ENDPOINT_MAX];
    uint8_t own_key[SEC_KEY_BYTES];
    if (endpoint_split_key(cfg->listen, bind_ep, own_key) < 0) {
        snprintf(err, errcap, "bad listen endpoint %s", cfg->listen);
        free(n);
        return NULL;
    }
    n->self = cfg->has_id ? cfg->id : ring_hash(bind_ep, strlen(bind_ep), cfg->id_bits);
    ring_id_to_hex(n->self, cfg->id_bits, n->self_hex);
    unsigned succ_len = cfg->replicas + 1 > 4 ? cfg->replicas + 1 : 4;
    n->rs = ring_state_new(n->self, cfg->id_bits, succ_len);
    n->rpc = rpc_new(zctx, loop);
    if (!n->rs || !n->rpc) {
        snprintf(err, errcap, "out of memory");
        goto fail;
    }
    n->lock_fd = lock_data_dir(cfg->data_dir, err, errcap);
    if (n->lock_fd < 0)
        goto fail;
    if (node_members_init(n, err, errcap) < 0)
        goto fail;
    n->store = store_open(cfg->data_dir, cfg->id_bits, cfg->cache_mb, STORE_COMMIT_AUTO, loop, err,
                          errcap);
    if (!n->store || kv_init(n) < 0)
        goto fail;
    loop_set_before_poll(loop, before_poll, n);
    n->router = zmq_socket(zctx, ZMQ_ROUTER);
    int linger = 0, hwm = 100000;
    int64_t maxmsg = 64 << 20;
    zmq_setsockopt(n->router, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(n->router, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(n->router, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(n->router, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    if (cfg->key) {
        int server = 1;
        if (zmq_setsockopt(n->router, ZMQ_CURVE_SERVER, &server, sizeof server) < 0 ||
            zmq_setsockopt(n->router, ZMQ_CURVE_SECRETKEY, cfg->key->secret, SEC_KEY_BYTES) < 0) {
            snprintf(err, errcap, "cannot secure the listening socket: %s",
                     zmq_strerror(zmq_errno()));
            goto fail;
        }
        rpc_set_key(n->rpc, cfg->key);
    }
    if (zmq_bind(n->router, bind_ep) < 0) {
        snprintf(err, errcap, "cannot listen on %s: %s", cfg->listen, zmq_strerror(zmq_errno()));
        goto fail;
    }
    if (loop_add_socket(loop, n->router, on_router, n) < 0) {
        snprintf(err, errcap, "out of memory");
        goto fail;
    }
    log_set_tag(n->self_hex);
    return n;
fail:
    node_destroy(&n);
    return NULL;
}

void node_destroy(node_t **pn)
{
    if (!pn || !*pn)
        return;
    node_t *n = *pn;
    loop_set_before_poll(n->loop, NULL, NULL);
    /* Acknowledge what is staged while the rpc can still carry follow-ups. */
    if (n->store)
        store_flush(n->store);
    rpc_destroy(&n->rpc);
    node_members_fini(n);
    node_place_fini(n);
    /* Closing commits staged writes, whose acks still need the router. */
    store_close(&n->store);
    kv_fini(n);
    if (n->router) {
        loop_remove_socket(n->loop, n->router);
        zmq_close(n->router);
    }
    if (n->tick_timer)
        loop_timer_cancel(n->loop, n->tick_timer);
    ring_state_destroy(&n->rs);
    if (n->lock_fd >= 0)
        close(n->lock_fd);
    free(n);
    *pn = NULL;
}

int node_start(node_t *n)
{
    log_info("node", "listening on %s as %s (%u-bit ring, N=%u W=%u R=%u)", n->cfg.listen,
             n->self_hex, n->cfg.id_bits, n->cfg.replicas, n->cfg.write_quorum, n->cfg.read_quorum);
    if (n->cfg.has_join)
        snprintf(n->seed, sizeof n->seed, "%s", n->cfg.join);
    if (!n->cfg.has_join || strcmp(n->cfg.join, n->cfg.listen) == 0) {
        n->join_phase = JOIN_DONE;
        start_maintenance(n);
        return 0;
    }
    join_send_info(n);
    return 0;
}

int node_exit_status(const node_t *n)
{
    return n->exit_status;
}
