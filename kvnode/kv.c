/*
 * kv.c — the replicated quorum store on top of the ring: its state, the
 * dispatch of store requests to the module of each role (kv_i.h lists
 * them), and the node's counters for STATS.
 */
#include "kv_i.h"

#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

int kv_init(node_t *n)
{
    n->kv = calloc(1, sizeof *n->kv);
    if (!n->kv)
        return -ENOMEM;
    n->kv->n = n;
    return 0;
}

void kv_fini(node_t *n)
{
    if (!n->kv)
        return;
    kv_maint_fini(n);
    kv_parts_fini(n);
    /* Pending rpc callbacks were cancelled by rpc_destroy before this. */
    kv_repl_fini(n);
    sync_t *s = n->kv->sessions;
    while (s) {
        sync_t *next = s->next;
        kv_stream_free(s);
        s = next;
    }
    if (n->kv->known)
        log_info("kv",
                 "known newest versions: %llu conditional writes checked against our copy, "
                 "%llu read a quorum first",
                 (unsigned long long)kv_known_hits(n->kv->known),
                 (unsigned long long)kv_known_misses(n->kv->known));
    kv_dedup_destroy(&n->kv->dedup);
    kv_known_destroy(&n->kv->known);
    free(n->kv);
    n->kv = NULL;
}

size_t node_replica_set(const node_t *n, ring_id_t *out, size_t cap)
{
    ring_id_t succ[RING_SUCC_MAX];
    size_t ns = ring_state_succ_list(n->rs, succ, RING_SUCC_MAX);
    size_t k = 0;
    size_t want = n->cfg.replicas < cap ? n->cfg.replicas : cap;
    out[k++] = n->self;
    for (size_t i = 0; i < ns && k < want; i++)
        out[k++] = succ[i];
    return k;
}
/*
 * What this node still has to move and what it has moved (the STATS
 * layout-2 fields): all kept incrementally, no scan. Bytes left are an
 * estimate from the mean stored record; hints hold no value size.
 */
static void kv_progress(node_t *n, wire_msg_t *r)
{
    struct kv *kv = n->kv;
    r->hint_keys = kv_repl_backlog(n);
    for (sync_t *s = kv->sessions; s; s = s->next) {
        r->streams++;
        r->stream_keys_left += kv_sync_left(s->ks);
    }
    uint64_t left = r->hint_keys + r->stream_keys_left;
    r->left_bytes = r->stored_keys ? left * (r->bytes / r->stored_keys) : 0;
    r->moved_keys = kv->moved_keys;
    r->moved_bytes = kv->moved_bytes;
}

/*
 * Keys of our range (primary keys), and how many of them are not known to
 * have N healthy copies. Under Chord placement: counted now, and the last
 * round's shortfall, or all of them while the replica set differs from the
 * one that round confirmed or one of its members is missing deadlines (a
 * round has not looked yet). Under token placement: as kv_parts counts
 * them over its partitions.
 */
static void primary_under(node_t *n, uint64_t *primary, uint64_t *under)
{
    struct kv *kv = n->kv;
    if (node_place_on(n)) {
        kv_parts_stats(n, primary, under);
        return;
    }
    ring_id_t pred;
    uint64_t digest[2];
    *primary = kv->primary_keys;
    bool alone = ring_state_succ(n->rs) == n->self;
    if (alone)
        pred = n->self;
    if ((alone || ring_state_pred(n->rs, &pred)) &&
        store_digest(n->store, pred, n->self, primary, digest) < 0)
        *primary = kv->primary_keys;
    ring_id_t reps[KV_QUORUM_MAX];
    size_t nrep = node_replica_set(n, reps, KV_QUORUM_MAX);
    bool unconfirmed = nrep < n->cfg.replicas || nrep != kv->last_nrep ||
                       memcmp(reps, kv->last_reps, nrep * sizeof *reps) != 0;
    for (size_t i = 1; i < nrep && !unconfirmed; i++)
        unconfirmed = node_peer_suspect(n, reps[i]);
    *under = unconfirmed ? *primary : kv->under_replicated;
}

/*
 * STATS: primary and under-replicated keys (primary_under), plus the
 * copies known to be on their way (queued hints) and the hints given up
 * since the last round started looking, so the count follows writes at
 * once instead of a round later; what this node stores, moves, and its
 * disk.
 */
void kv_stats(node_t *n, wire_msg_t *r)
{
    struct kv *kv = n->kv;
    uint64_t primary, under;
    primary_under(n, &primary, &under);
    under += kv_repl_backlog(n) + (kv_repl_lost(n) - kv->repl_lost_checked);
    r->primary_keys = primary;
    r->under_replicated = under < primary ? under : primary;
    r->stored_keys = store_count(n->store);
    r->bytes = store_bytes(n->store);
    kv_progress(n, r);
    struct statvfs sv;
    if (statvfs(n->cfg.data_dir, &sv) == 0) {
        r->disk_total = (uint64_t)sv.f_blocks * sv.f_frsize;
        r->disk_free = (uint64_t)sv.f_bavail * sv.f_frsize;
    }
}

bool kv_serve(node_t *n, const uint8_t *ident, size_t ident_len, const wire_msg_t *m)
{
    if ((m->type == WIRE_KV_PUT || m->type == WIRE_REPL_PUT) && m->value_len > WIRE_VALUE_MAX) {
        node_reply_error(n, ident, ident_len, m->req_id, EFBIG,
                         "value of %zu bytes is larger than the %d-byte limit", m->value_len,
                         WIRE_VALUE_MAX);
        return true;
    }
    switch (m->type) {
    case WIRE_KV_GET:
    case WIRE_KV_PUT:
        kv_coord_serve(n, ident, ident_len, m);
        return true;
    case WIRE_REPL_GET:
        kv_replica_serve_get(n, ident, ident_len, m);
        return true;
    case WIRE_KV_READ:
        kv_replica_serve_read(n, ident, ident_len, m);
        return true;
    case WIRE_REPL_PUT:
        kv_replica_serve_put(n, ident, ident_len, m);
        return true;
    case WIRE_SYNC_DIGEST:
        kv_stream_serve_digest(n, ident, ident_len, m);
        return true;
    case WIRE_SYNC_OFFER:
        kv_stream_serve_offer(n, ident, ident_len, m);
        return true;
    case WIRE_SYNC_PULL:
        kv_stream_serve_pull(n, ident, ident_len, m);
        return true;
    case WIRE_SYNC_SUMS:
        kv_stream_serve_sums(n, ident, ident_len, m);
        return true;
    case WIRE_SYNC_DROP:
        kv_maint_serve_drop(n, ident, ident_len, m);
        return true;
    case WIRE_STATS: {
        wire_msg_t *r = &n->out;
        wire_init(r, WIRE_STATS | WIRE_REPLY, m->req_id);
        kv_stats(n, r);
        r->has_progress = m->has_progress; /* layout 2 answers layout 2 */
        r->has_security = m->has_security; /* and 3 answers 3 */
        if (m->has_security && n->cfg.auth) {
            r->secured = true;
            r->peer_keys = (uint32_t)auth_peer_count(n->cfg.auth);
            r->client_keys = (uint32_t)auth_client_count(n->cfg.auth);
            r->restricted_keys = (uint32_t)auth_restricted_count(n->cfg.auth);
        }
        node_send(n, ident, ident_len, r);
        return true;
    }
    default:
        return false;
    }
}
