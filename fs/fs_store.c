/*
 * fs_store.c — fiber-blocking wrappers over the asynchronous kvclient.
 */
#include "fs_store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static fs_store_stats_t stats;

static void op_done(const kvc_result_t *res, void *arg)
{
    fs_op_t *op = arg;
    op->rc = res->rc;
    if (res->rc == -ESTALE || res->rc == -EEXIST) {
        stats.conflicts++;
        if (op->tag)
            op->tag->conflicts++;
    }
    op->version = res->version;
    if (res->rc == 0 && res->value && res->value_len > 0) {
        op->value = malloc(res->value_len);
        if (op->value) {
            memcpy(op->value, res->value, res->value_len);
            op->len = res->value_len;
        } else {
            op->rc = -ENOMEM;
        }
    }
    op->done = true;
    if (op->waiter)
        fiber_wake(op->waiter);
}

void fs_store_get_stats(fs_store_stats_t *out)
{
    *out = stats;
}

/* Count an operation in the totals and in the running fiber's tag. */
static void op_start(fs_op_t *op, bool get, bool put, bool del, bool cond, bool patch)
{
    memset(op, 0, sizeof(*op));
    op->tag = fiber_tag();
    op->serial = fiber_serial();
    op->sent = true;
    fs_store_stats_t *c[2] = {&stats, op->tag};
    for (int i = 0; i < 2 && c[i]; i++) {
        c[i]->gets += get;
        c[i]->puts += put;
        c[i]->dels += del;
        c[i]->conditional += cond;
        c[i]->patches += patch;
    }
}

static void op_failed(fs_op_t *op, int rc)
{
    op->rc = rc;
    op->done = true;
    op->sent = false;
}

void fs_op_get(kvc_t *kvc, fs_op_t *op, const char *key)
{
    op_start(op, true, false, false, false, false);
    int rc = kvc_get(kvc, key, strlen(key), op_done, op);
    if (rc < 0)
        op_failed(op, rc);
}

void fs_op_put(kvc_t *kvc, fs_op_t *op, const char *key, const void *value, size_t len,
               kvc_cond_t cond, kv_version_t if_version)
{
    op_start(op, false, true, false, cond != KVC_PUT_ALWAYS, false);
    int rc = kvc_put(kvc, key, strlen(key), value, len, cond, if_version, op_done, op);
    if (rc < 0)
        op_failed(op, rc);
}

void fs_op_patch(kvc_t *kvc, fs_op_t *op, const char *key, uint32_t off, const void *bytes,
                 size_t len)
{
    op_start(op, false, true, false, false, true);
    int rc = kvc_patch(kvc, key, strlen(key), off, bytes, len, op_done, op);
    if (rc < 0)
        op_failed(op, rc);
}

void fs_op_del(kvc_t *kvc, fs_op_t *op, const char *key, kvc_cond_t cond, kv_version_t if_version)
{
    op_start(op, false, false, true, cond != KVC_PUT_ALWAYS, false);
    int rc = kvc_del(kvc, key, strlen(key), cond, if_version, op_done, op);
    if (rc < 0)
        op_failed(op, rc);
}

int fs_op_wait(fs_op_t *op)
{
    while (!op->done) {
        op->waiter = fiber_self();
        fiber_park();
    }
    op->waiter = NULL;
    /* Waiting for it puts its round trip on this fiber's path (fiber_serial). */
    if (op->sent && op->serial + 1 > fiber_serial())
        fiber_serial_set(op->serial + 1);
    return op->rc;
}

void fs_op_clear(fs_op_t *op)
{
    free(op->value);
    op->value = NULL;
    op->len = 0;
}

int fs_get(kvc_t *kvc, const char *key, uint8_t **value, size_t *len, kv_version_t *version)
{
    fs_op_t op;
    fs_op_get(kvc, &op, key);
    int rc = fs_op_wait(&op);
    if (rc == 0) {
        *value = op.value;
        *len = op.len;
        if (version)
            *version = op.version;
        return 0;
    }
    fs_op_clear(&op);
    return rc;
}

int fs_put(kvc_t *kvc, const char *key, const void *value, size_t len, kvc_cond_t cond,
           kv_version_t if_version, kv_version_t *version)
{
    fs_op_t op;
    fs_op_put(kvc, &op, key, value, len, cond, if_version);
    int rc = fs_op_wait(&op);
    if (rc == 0 && version)
        *version = op.version;
    return rc;
}

int fs_del(kvc_t *kvc, const char *key, kvc_cond_t cond, kv_version_t if_version)
{
    fs_op_t op;
    fs_op_del(kvc, &op, key, cond, if_version);
    return fs_op_wait(&op);
}

int fs_store_errno(int rc)
{
    switch (rc) {
    case 0:
    case -ENOENT:
    case -EEXIST:
    case -ENOSPC:
    case -EFBIG:
    case -ENOMEM:
    case -EINVAL:
    case -EACCES: /* a secured ring refused (or revoked) this client's key */
        return rc;
    case -EPROTO: /* a secured ring reached without a key: no retry can help */
        return -EACCES;
    default:
        /* No quorum, no answer in time, cancelled, a garbled reply: the data is unreachable. */
        return -EIO;
    }
}
