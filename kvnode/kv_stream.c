/*
 * kv_stream.c — range streams: one kv_sync session moves the records of a
 * range to one target (compare digests; if they differ, offer keys in
 * bounded batches and send the records the target lacks, a window at a
 * time). Anti-entropy rounds, pulls, drops and the leave hand-off are all
 * such streams; kv_sync makes the decisions, this file does the I/O. It
 * also serves the other side: digests, offers and pull requests.
 */
#include "kv_i.h"

#include "log.h"
#include "ring_place.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void kv_stream_free(sync_t *s)
{
    if (s->start_timer)
        loop_timer_cancel(s->n->loop, s->start_timer);
    kv_sync_destroy(&s->ks);
    free(s);
}

static void sync_drive(sync_t *s, kv_sync_step_t step);

static void sync_finish(sync_t *s)
{
    if (s->finishing)
        return;
    s->finishing = true;
    struct kv *kv = s->n->kv;
    sync_t **pp = &kv->sessions;
    while (*pp && *pp != s)
        pp = &(*pp)->next;
    if (*pp)
        *pp = s->next;
    if (kv_sync_sent(s->ks) || kv_sync_failed(s->ks))
        log_info("kv", "sync to %s: %llu keys sent, %llu missing%s (%llu digests, %llu offered)",
                 s->addr, (unsigned long long)kv_sync_sent(s->ks),
                 (unsigned long long)kv_sync_missing(s->ks),
                 kv_sync_failed(s->ks) ? " (peer unreachable)" : "",
                 (unsigned long long)kv_sync_digests(s->ks),
                 (unsigned long long)kv_sync_offered(s->ks));
    if (s->done)
        s->done(s);
    kv_stream_free(s);
}

static void on_sync_digest(int rc, const wire_msg_t *r, void *arg)
{
    sync_t *s = arg;
    if (rc == -ECANCELED)
        return;
    if (r)
        node_peer_alive(s->n, s->target);
    uint64_t count = 0, digest[2] = {0, 0};
    ring_id_t lo, hi;
    kv_sync_span(s->ks, &lo, &hi);
    if (rc == 0 && lo == kv_sync_lo(s->ks) && hi == kv_sync_hi(s->ks) && r->count > s->peer_count)
        s->peer_count = r->count;
    if (rc == 0 && store_digest(s->n->store, lo, hi, &count, digest) < 0) {
        sync_drive(s, kv_sync_abort(s->ks));
        return;
    }
    sync_drive(s, kv_sync_on_digest(s->ks, rc, count, digest, rc == 0 ? r->count : 0,
                                    rc == 0 ? r->digest : digest));
}

static void on_sync_offer(int rc, const wire_msg_t *r, void *arg)
{
    sync_t *s = arg;
    if (rc == -ECANCELED)
        return;
    sync_drive(s, kv_sync_on_want(s->ks, rc, rc == 0 ? r->want : NULL, rc == 0 ? r->nwant : 0));
}

static void on_sync_put(int rc, const wire_msg_t *r, void *arg)
{
    (void)r;
    sync_t *s = arg;
    if (rc == -ECANCELED)
        return;
    sync_drive(s, kv_sync_on_put(s->ks, rc));
}

static int collect_offer(const uint8_t *key, size_t key_len, ring_id_t pos, const store_rec_t *rec,
                         void *arg)
{
    sync_t *s = arg;
    if (rec->version.hlc < s->min_hlc)
        return 0;
    return kv_sync_add(s->ks, key, (uint16_t)key_len, pos, rec->version) ? 0 : 1;
}

/* Send one wanted record; returns the step if it was settled at once. */
static bool sync_send_put(sync_t *s, const uint8_t *key, uint16_t key_len, kv_sync_step_t *step)
{
    node_t *n = s->n;
    store_rec_t rec;
    if (store_get(n->store, key, key_len, &rec) < 0) {
        *step = kv_sync_on_put(s->ks, -ENOENT); /* removed meanwhile */
        return true;
    }
    wire_msg_t req;
    wire_init(&req, WIRE_REPL_PUT, 0);
    req.key_bytes = key;
    req.key_len = key_len;
    req.version = rec.version;
    req.flags = rec.flags;
    req.value = rec.value;
    req.value_len = rec.value_len;
    req.has_opid = kv_opid_is_set(rec.opid); /* copies keep the writer's identity */
    req.opid = rec.opid;
    int rc = rpc_call(n->rpc, s->addr, &req, n->cfg.timeout_ms * 4, on_sync_put, s);
    if (rc < 0) {
        *step = kv_sync_on_put(s->ks, rc);
        return true;
    }
    kv_moved(n->kv, key_len, rec.value_len);
    return false;
}

/* Carry out kv_sync's steps until one has to wait for an answer. */
static void sync_drive(sync_t *s, kv_sync_step_t step)
{
    node_t *n = s->n;
    for (;;) {
        switch (step) {
        case KV_SYNC_SEND_DIGEST: {
            wire_msg_t req;
            wire_init(&req, WIRE_SYNC_DIGEST, 0);
            kv_sync_span(s->ks, &req.lo, &req.hi);
            int rc = rpc_call(n->rpc, s->addr, &req, n->cfg.timeout_ms * 4, on_sync_digest, s);
            if (rc == 0)
                return;
            step = kv_sync_abort(s->ks);
            break;
        }
        case KV_SYNC_SCAN: {
            ring_id_t pos = 0;
            const uint8_t *after = NULL;
            uint16_t after_len = 0;
            ring_id_t lo, hi;
            kv_sync_span(s->ks, &lo, &hi);
            kv_sync_cursor(s->ks, &pos, &after, &after_len);
            int rc = store_scan(n->store, lo, hi, pos, after, after_len, KV_SYNC_BATCH,
                                collect_offer, s);
            step = rc < 0 ? kv_sync_abort(s->ks) : kv_sync_scanned(s->ks);
            break;
        }
        case KV_SYNC_SEND_OFFER: {
            wire_msg_t *req = malloc(sizeof *req);
            size_t noffers;
            const wire_offer_t *offers = kv_sync_offers(s->ks, &noffers);
            int rc = -ENOMEM;
            if (req) {
                wire_init(req, WIRE_SYNC_OFFER, 0);
                req->noffers = (uint16_t)noffers;
                memcpy(req->offers, offers, noffers * sizeof *offers);
                rc = rpc_call(n->rpc, s->addr, req, n->cfg.timeout_ms * 2, on_sync_offer, s);
                free(req);
            }
            if (rc == 0)
                return;
            step = kv_sync_on_want(s->ks, rc, NULL, 0);
            break;
        }
        case KV_SYNC_SEND_PUTS: {
            const uint8_t *key;
            uint16_t key_len;
            bool settled = false;
            kv_sync_step_t next = KV_SYNC_WAIT;
            while (kv_sync_next_put(s->ks, &key, &key_len)) {
                kv_sync_step_t now;
                if (sync_send_put(s, key, key_len, &now)) {
                    settled = true;
                    next = now;
                }
            }
            /* Puts settled on the spot may have finished the batch. */
            if (!settled || next == KV_SYNC_SEND_PUTS || next == KV_SYNC_WAIT)
                return;
            step = next;
            break;
        }
        case KV_SYNC_WAIT:
            return;
        case KV_SYNC_DONE:
            sync_finish(s);
            return;
        }
    }
}

static void sync_begin(loop_t *loop, void *arg)
{
    (void)loop;
    sync_t *s = arg;
    s->start_timer = 0;
    sync_drive(s, kv_sync_start(s->ks));
}

/*
 * Start streaming our records of (lo, hi] to target (lo == hi: all of them).
 * done(s) runs once, from the loop — never before sync_start returns, so
 * the caller can count the session first — when kv_sync says it is over.
 */
sync_t *kv_stream_start(node_t *n, ring_id_t target, const char *addr, ring_id_t lo, ring_id_t hi,
                        void (*done)(sync_t *s))
{
    for (sync_t *s = n->kv->sessions; s; s = s->next)
        if (s->target == target && kv_sync_lo(s->ks) == lo && kv_sync_hi(s->ks) == hi)
            return NULL; /* already under way */
    sync_t *s = calloc(1, sizeof *s);
    if (!s || !(s->ks = kv_sync_new(lo, hi, n->cfg.id_bits))) {
        free(s);
        return NULL;
    }
    s->n = n;
    s->target = target;
    snprintf(s->addr, sizeof s->addr, "%s", addr);
    s->done = done;
    s->start_timer = loop_timer_add(n->loop, 0, sync_begin, s);
    if (!s->start_timer) {
        kv_stream_free(s);
        return NULL;
    }
    s->next = n->kv->sessions;
    n->kv->sessions = s;
    return s;
}

/*
 * A copy we are handing over (or dropping) vouches for nothing: answered as
 * held, a node handing the same partition to us would drop its copy as we
 * drop ours (member tables that differ during churn can each put the other
 * in the partition's set), and no copy would be left. Streams under token
 * placement cover one partition, so one position tells.
 */
static bool refuse_draining(node_t *n, const uint8_t *ident, size_t ident_len, const wire_msg_t *m,
                            ring_id_t pos)
{
    if (!node_place_on(n) || !kv_parts_draining(n, pos))
        return false;
    node_reply_error(n, ident, ident_len, m->req_id, EXDEV,
                     "handing this partition to its replica set");
    return true;
}

void kv_stream_serve_digest(node_t *n, const uint8_t *ident, size_t ident_len, const wire_msg_t *m)
{
    if (refuse_draining(n, ident, ident_len, m, m->hi))
        return;
    wire_msg_t *r = &n->out;
    wire_init(r, WIRE_SYNC_DIGEST | WIRE_REPLY, m->req_id);
    int rc = store_digest(n->store, m->lo, m->hi, &r->count, r->digest);
    if (rc < 0) {
        node_reply_error(n, ident, ident_len, m->req_id, -rc, "digest failed");
        return;
    }
    node_send(n, ident, ident_len, r);
}

void kv_stream_serve_sums(node_t *n, const uint8_t *ident, size_t ident_len, const wire_msg_t *m)
{
    uint32_t parts = ring_place_part_count(n->cfg.id_bits);
    size_t cap = m->value_len / WIRE_SUM_BYTES;
    if (cap > parts) {
        node_reply_error(n, ident, ident_len, m->req_id, EINVAL, "more sums than partitions");
        return;
    }
    wire_sum_t *sums = malloc((cap ? cap : 1) * sizeof *sums);
    uint8_t *buf = malloc(cap ? cap * WIRE_SUM_BYTES : 1);
    int k = sums && buf ? wire_sums_decode(m->value, m->value_len, parts, sums, cap) : -ENOMEM;
    size_t differ = 0;
    for (int i = 0; i < k; i++) {
        wire_sum_t mine = {.part = sums[i].part};
        ring_id_t lo, hi;
        ring_place_part_range(mine.part, n->cfg.id_bits, &lo, &hi);
        if (store_digest(n->store, lo, hi, &mine.count, mine.digest) < 0) {
            k = -EIO;
            break;
        }
        /* A copy we are handing over does not make the partition clean (refuse_draining). */
        if (mine.count != sums[i].count || mine.digest[0] != sums[i].digest[0] ||
            mine.digest[1] != sums[i].digest[1] || (node_place_on(n) && kv_parts_draining(n, hi)))
            sums[differ++] = mine; /* differ <= i: entries still to read stay intact */
    }
    if (k < 0) {
        node_reply_error(n, ident, ident_len, m->req_id, k == -EBADMSG ? EINVAL : -k,
                         k == -EBADMSG ? "malformed partition sums" : "partition sums failed");
    } else {
        wire_sums_encode(sums, differ, buf);
        wire_msg_t *r = &n->out;
        wire_init(r, WIRE_SYNC_SUMS | WIRE_REPLY, m->req_id);
        r->value = buf;
        r->value_len = differ * WIRE_SUM_BYTES;
        node_send(n, ident, ident_len, r);
    }
    free(sums);
    free(buf);
}

void kv_stream_serve_offer(node_t *n, const uint8_t *ident, size_t ident_len, const wire_msg_t *m)
{
    if (m->noffers && refuse_draining(n, ident, ident_len, m,
                                      store_pos(n->store, m->offers[0].key, m->offers[0].key_len)))
        return;
    wire_msg_t *r = &n->out;
    wire_init(r, WIRE_SYNC_OFFER | WIRE_REPLY, m->req_id);
    for (unsigned i = 0; i < m->noffers; i++) {
        store_rec_t rec;
        int rc = store_head(n->store, m->offers[i].key, m->offers[i].key_len, &rec);
        if (rc == -ENOENT || (rc == 0 && kv_version_cmp(rec.version, m->offers[i].version) < 0))
            r->want[r->nwant++] = (uint16_t)i;
    }
    node_send(n, ident, ident_len, r);
}

static void on_served_sync_done(sync_t *s)
{
    s->n->kv->served--;
}

void kv_stream_serve_pull(node_t *n, const uint8_t *ident, size_t ident_len, const wire_msg_t *m)
{
    wire_msg_t *r = &n->out;
    wire_init(r, WIRE_SYNC_PULL | WIRE_REPLY, m->req_id);
    if (n->kv->served < SYNC_SERVE_MAX && m->node.id != n->self &&
        kv_stream_start(n, m->node.id, m->node.addr, m->lo, m->hi, on_served_sync_done))
        n->kv->served++;
    node_send(n, ident, ident_len, r);
}
