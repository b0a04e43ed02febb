/*
 * kv_replica.c — a replica's side of the store: REPL_GET (a coordinator's)
 * and KV_READ (a client's direct read) answer from the local copy (the
 * version only, unless the full value is asked for), and
 * REPL_PUT applies a write only if its version is newer than the stored
 * one, acknowledging it only once the write is durable, since the
 * acknowledgement counts towards the coordinator's write quorum. A
 * REPL_PUT that carries a patch applies only to the copy it was made
 * against (otherwise the coordinator sends the whole value).
 */
#include "kv_i.h"

#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The reply of type `type` to m, filled from our own copy (the value only
 * in WIRE_READ_FULL mode), or NULL after answering a failed read.
 */
static wire_msg_t *local_read(node_t *n, const uint8_t *ident, size_t ident_len,
                              const wire_msg_t *m, uint8_t type)
{
    store_rec_t rec;
    /* The value goes out in the reply (node_send copies it with store_value_copy). */
    int rc = m->read_mode == WIRE_READ_FULL
                 ? store_get_to_copy(n->store, m->key_bytes, m->key_len, &rec)
                 : store_head(n->store, m->key_bytes, m->key_len, &rec);
    if (rc < 0 && rc != -ENOENT) {
        node_reply_error(n, ident, ident_len, m->req_id, -rc, "store read failed: %s",
                         strerror(-rc));
        return NULL;
    }
    wire_msg_t *r = &n->out;
    wire_init(r, type, m->req_id);
    if (rc == 0) {
        r->found = true;
        r->version = rec.version;
        r->flags = rec.flags;
        r->opid = rec.opid;
        if (m->read_mode == WIRE_READ_FULL) {
            r->value = rec.value;
            r->value_len = rec.value_len;
        }
    }
    return r;
}

void kv_replica_serve_get(node_t *n, const uint8_t *ident, size_t ident_len, const wire_msg_t *m)
{
    wire_msg_t *r = local_read(n, ident, ident_len, m, WIRE_REPL_GET | WIRE_REPLY);
    if (!r)
        return;
    /* The writer's identity lets a coordinator recognise a retried write. */
    r->has_opid = r->found && kv_opid_is_set(r->opid);
    node_send(n, ident, ident_len, r);
}

/*
 * A client's read of our own copy, one of the R it sends itself (a
 * quorum read without a coordinator's extra hop). Only the key's
 * authority can vouch for who the replicas are, as it coordinates the
 * key's writes: it names the rest of its replica set (done: its own copy
 * is one of them) or, under token placement when it holds no copy, the
 * whole set (not done, the client does not count its answer). The client
 * accepts the answers only if the others it asked are in that set and
 * all agree, and falls back to a coordinated KV_GET otherwise.
 */
void kv_replica_serve_read(node_t *n, const uint8_t *ident, size_t ident_len, const wire_msg_t *m)
{
    wire_msg_t *r = local_read(n, ident, ident_len, m, WIRE_KV_READ | WIRE_REPLY);
    if (!r)
        return;
    ring_id_t pos = store_pos(n->store, m->key_bytes, m->key_len);
    if (ring_state_owns(n->rs, pos)) {
        node_read_set_t rs;
        node_key_read_set(n, pos, &rs);
        /*
         * Not while the key's copies move (its old sets must be asked too)
         * nor before it knows the ring's members (token placement).
         */
        bool vouch = rs.nold == 0 && (!node_place_on(n) || node_members_complete(n));
        for (size_t i = 0; i < rs.ncur; i++)
            r->done |= vouch && rs.id[i] == n->self;
        for (size_t i = 0; i < rs.ncur && vouch && r->nsucc < WIRE_SUCC_MAX; i++)
            if (rs.id[i] != n->self)
                node_fill(n, &r->succ[r->nsucc++], rs.id[i]);
    }
    node_send(n, ident, ident_len, r);
}

typedef struct {
    node_t *n;
    uint8_t ident[IDENT_MAX];
    size_t ident_len;
    uint64_t req_id;
    bool applied;
    kv_version_t version;
} repl_ack_t;

static void repl_put_committed(int rc, void *arg)
{
    repl_ack_t *a = arg;
    if (rc < 0) {
        node_reply_error(a->n, a->ident, a->ident_len, a->req_id, -rc, "%s",
                         rc == -ENOSPC ? "no space left on the node's disk"
                                       : "store commit failed");
    } else {
        wire_msg_t r;
        wire_init(&r, WIRE_REPL_PUT | WIRE_REPLY, a->req_id);
        r.applied = a->applied;
        r.version = a->version;
        node_send(a->n, a->ident, a->ident_len, &r);
    }
    free(a);
}

/* Forget a tombstone, if it is still the one the authority purged. */
static void serve_purge(node_t *n, const uint8_t *ident, size_t ident_len, const wire_msg_t *m)
{
    wire_msg_t r;
    wire_init(&r, WIRE_REPL_PUT | WIRE_REPLY, m->req_id);
    r.applied = kv_maint_purge_local(n, m->key_bytes, m->key_len, m->version);
    r.version = m->version;
    node_send(n, ident, ident_len, &r);
}

void kv_replica_serve_put(node_t *n, const uint8_t *ident, size_t ident_len, const wire_msg_t *m)
{
    if (kv_version_is_zero(m->version)) {
        node_reply_error(n, ident, ident_len, m->req_id, EINVAL, "a write needs a version");
        return;
    }
    if (!kv_version_plausible(m->version)) {
        node_reply_error(n, ident, ident_len, m->req_id, EINVAL,
                         "version from more than %d s in the future (clock skew?)",
                         CLOCK_SKEW_MAX_MS / 1000);
        return;
    }
    if (m->flags & WIRE_FLAG_PURGE) {
        serve_purge(n, ident, ident_len, m);
        return;
    }
    if (node_place_on(n) && kv_parts_draining(n, store_pos(n->store, m->key_bytes, m->key_len))) {
        /*
         * We are handing this partition over and will drop our copy: an
         * acknowledgement now would count towards a write quorum a copy
         * that is about to go. The sender takes it as a copy not made.
         */
        node_reply_error(n, ident, ident_len, m->req_id, EXDEV,
                         "handing this partition to its replica set");
        return;
    }
    kv_clock_observe(&n->clock, m->version.hlc);
    /* Someone else coordinates writes to our range: what we knew may be stale. */
    if (m->version.node != n->self &&
        ring_state_owns(n->rs, store_pos(n->store, m->key_bytes, m->key_len)))
        kv_coord_forget(n);
    kv_version_t current;
    kv_opid_t opid = m->has_opid ? m->opid : (kv_opid_t){0, 0};
    int rc;
    if (m->has_patch) {
        /*
         * A patch applies to the copy it was made against; one we already
         * have (or something newer) is acknowledged as any repeated write.
         * Any other copy needs the whole value: ESTALE asks for it.
         */
        rc = store_patch_opid(n->store, m->key_bytes, m->key_len, m->version, opid, m->patch_base,
                              m->patch_off, m->value, m->value_len, &current);
        if (rc == -ESTALE) {
            n->metrics.patches[1]++;
            node_reply_error(n, ident, ident_len, m->req_id, ESTALE,
                             "patch made against another version: send the whole value");
            return;
        }
        if (rc == -EFBIG) {
            node_reply_error(n, ident, ident_len, m->req_id, EFBIG,
                             "a patch may not reach past %u bytes", (unsigned)WIRE_VALUE_MAX);
            return;
        }
        if (rc == 1)
            n->metrics.patches[0]++;
    } else {
        rc = store_put_opid(n->store, m->key_bytes, m->key_len, m->version, m->flags, opid,
                            m->value, m->value_len, &current);
    }
    if (rc < 0) {
        node_reply_error(n, ident, ident_len, m->req_id, -rc, "%s",
                         rc == -ENOSPC ? "no space left on the node's disk" : strerror(-rc));
        return;
    }
    repl_ack_t *a = malloc(sizeof *a);
    if (!a) {
        node_reply_error(n, ident, ident_len, m->req_id, ENOMEM, "out of memory");
        return;
    }
    a->n = n;
    memcpy(a->ident, ident, ident_len);
    a->ident_len = ident_len;
    a->req_id = m->req_id;
    a->applied = rc == 1;
    a->version = current;
    /* Acknowledge only once durable: the ack counts towards a write quorum. */
    if (store_after_commit(n->store, repl_put_committed, a) < 0) {
        free(a);
        node_reply_error(n, ident, ident_len, m->req_id, ENOMEM, "out of memory");
    }
}
