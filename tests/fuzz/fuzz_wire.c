/*
 * fuzz_wire.c — libFuzzer target for the wire decoder.
 *
 * Besides "never crash, never read out of bounds" (the sanitizers' job), it
 * checks that decoding is the inverse of encoding on everything the decoder
 * accepts: a decoded message must re-encode (the decoder accepted nothing
 * the grammar cannot carry), to exactly the input bytes (the encoding is
 * canonical, so a node can hash or compare frames), and decode again to the
 * same fields. Any other decode result must be one of the documented errors.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what)
{
    fprintf(stderr, "fuzz_wire: %s\n", what);
    abort();
}

static bool node_equal(const wire_node_t *a, const wire_node_t *b)
{
    return a->id == b->id && strcmp(a->addr, b->addr) == 0;
}

/* Keys are borrowed from the frame: compare the bytes, not the pointers. */
static bool bytes_equal(const uint8_t *a, uint16_t alen, const uint8_t *b, uint16_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static bool version_equal(kv_version_t a, kv_version_t b)
{
    return kv_version_cmp(a, b) == 0;
}

static bool store_fields_equal(const wire_msg_t *a, const wire_msg_t *b)
{
    if (!bytes_equal(a->key_bytes, a->key_len, b->key_bytes, b->key_len) ||
        !version_equal(a->version, b->version) || a->flags != b->flags || a->found != b->found ||
        a->cond != b->cond || a->read_mode != b->read_mode ||
        !version_equal(a->cond_version, b->cond_version) || a->lo != b->lo || a->hi != b->hi ||
        a->count != b->count || a->digest[0] != b->digest[0] || a->digest[1] != b->digest[1] ||
        a->noffers != b->noffers || a->nwant != b->nwant || a->primary_keys != b->primary_keys ||
        a->stored_keys != b->stored_keys || a->under_replicated != b->under_replicated ||
        a->bytes != b->bytes || a->has_opid != b->has_opid || a->opid.client != b->opid.client ||
        a->opid.seq != b->opid.seq || a->budget_ms != b->budget_ms ||
        a->earlier_unknown != b->earlier_unknown || a->disk_total != b->disk_total ||
        a->disk_free != b->disk_free || a->has_progress != b->has_progress ||
        a->hint_keys != b->hint_keys || a->streams != b->streams ||
        a->stream_keys_left != b->stream_keys_left || a->left_bytes != b->left_bytes ||
        a->moved_keys != b->moved_keys || a->moved_bytes != b->moved_bytes ||
        a->patch_off != b->patch_off || a->has_patch != b->has_patch ||
        !version_equal(a->patch_base, b->patch_base) || a->has_epoch != b->has_epoch ||
        a->epoch != b->epoch || a->members != b->members || a->weight != b->weight ||
        strcmp(a->zone, b->zone) != 0 || a->has_after != b->has_after || a->after != b->after ||
        a->more != b->more || a->nmember != b->nmember)
        return false;
    for (unsigned i = 0; i < a->nmember; i++) {
        const wire_member_t *ea = &a->member[i], *eb = &b->member[i];
        if (!node_equal(&ea->node, &eb->node) || ea->weight != eb->weight ||
            strcmp(ea->zone, eb->zone) != 0 || ea->state != eb->state ||
            ea->incarnation != eb->incarnation)
            return false;
    }
    for (unsigned i = 0; i < a->noffers; i++)
        if (!bytes_equal(a->offers[i].key, a->offers[i].key_len, b->offers[i].key,
                         b->offers[i].key_len) ||
            !version_equal(a->offers[i].version, b->offers[i].version))
            return false;
    for (unsigned i = 0; i < a->nwant; i++)
        if (a->want[i] != b->want[i])
            return false;
    return true;
}

static bool msg_equal(const wire_msg_t *a, const wire_msg_t *b)
{
    if (!store_fields_equal(a, b))
        return false;
    if (a->type != b->type || a->req_id != b->req_id || a->id_bits != b->id_bits ||
        a->replicas != b->replicas || a->write_quorum != b->write_quorum ||
        a->read_quorum != b->read_quorum || a->keys != b->keys || !node_equal(&a->node, &b->node) ||
        a->has_pred != b->has_pred || !node_equal(&a->pred, &b->pred) || a->nsucc != b->nsucc ||
        a->role != b->role || a->key != b->key || a->mode != b->mode || a->hops != b->hops ||
        a->done != b->done || a->index != b->index || a->applied != b->applied ||
        a->nfingers != b->nfingers || a->err_code != b->err_code ||
        strcmp(a->err_msg, b->err_msg) != 0)
        return false;
    /* the tail's arrays carry meaning only up to their counts (wire.h) */
    for (unsigned k = 0; k < a->nsucc; k++)
        if (!node_equal(&a->succ[k], &b->succ[k]))
            return false;
    for (unsigned i = 0; i < a->nfingers; i++) {
        const wire_finger_t *fa = &a->fingers[i], *fb = &b->fingers[i];
        if (fa->i != fb->i || fa->start != fb->start || fa->has_node != fb->has_node ||
            (fa->has_node && !node_equal(&fa->node, &fb->node)))
            return false;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static wire_msg_t first, second;
    static uint8_t buf[WIRE_FRAME_MAX];
    static wire_sum_t sums[1024];

    /* The same bytes as SYNC_SUMS's value frame (a 1,024-partition ring). */
    int ns = wire_sums_decode(data, size, 1024, sums, 1024);
    if (ns >= 0) {
        for (int i = 0; i < ns; i++)
            if (sums[i].part >= 1024 || (i && sums[i].part <= sums[i - 1].part))
                die("decoded sums out of range or order");
        if (wire_sums_encode(sums, (size_t)ns, buf) != 0 || (size_t)ns * WIRE_SUM_BYTES != size ||
            memcmp(buf, data, size) != 0)
            die("sums do not re-encode to their input");
    } else if (ns != -EBADMSG) {
        die("sums decode returned an undocumented error");
    }

    int rc = wire_decode(data, size, &first);
    if (rc == -EBADMSG || rc == -EPROTONOSUPPORT || rc == -EOPNOTSUPP)
        return 0;
    if (rc != 0)
        die("decode returned an undocumented error");
    /* Every decoded string must be terminated inside its array. */
    if (strnlen(first.node.addr, ENDPOINT_MAX) == ENDPOINT_MAX ||
        strnlen(first.pred.addr, ENDPOINT_MAX) == ENDPOINT_MAX ||
        strnlen(first.err_msg, WIRE_ERRMSG_MAX) == WIRE_ERRMSG_MAX)
        die("decoded string not terminated");
    if (strnlen(first.zone, WIRE_ZONE_MAX) == WIRE_ZONE_MAX)
        die("decoded zone not terminated");
    for (unsigned i = 0; i < first.nmember && i < WIRE_MEMBERS_PAGE; i++)
        if (strnlen(first.member[i].node.addr, ENDPOINT_MAX) == ENDPOINT_MAX ||
            strnlen(first.member[i].zone, WIRE_ZONE_MAX) == WIRE_ZONE_MAX)
            die("decoded member string not terminated");
    if (first.nsucc > WIRE_SUCC_MAX || first.nfingers > WIRE_FINGERS_MAX ||
        first.nmember > WIRE_MEMBERS_PAGE)
        die("decoded count over its limit");

    int n = wire_encode(&first, buf, sizeof buf);
    if (n < 0)
        die("decoded message does not re-encode");
    if ((size_t)n != size || memcmp(buf, data, size) != 0)
        die("re-encoding differs from the input");
    rc = wire_decode(buf, (size_t)n, &second);
    if (rc != 0)
        die("re-encoded message does not decode");
    if (!msg_equal(&first, &second))
        die("second decode differs from the first");
    return 0;
}
