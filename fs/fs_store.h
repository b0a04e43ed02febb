/*
 * fs_store.h — store operations as seen from a fiber.
 *
 * An fs_op_t is one get, put or delete in flight: start several, then wait
 * for each (they proceed in parallel), or use the one-call forms that start
 * and wait. Errors are negative errno values as the file system reports
 * them: -ENOENT (no such key), -EEXIST / -ESTALE (a condition failed),
 * -EIO (no quorum or no answer in time), -ENOSPC (nodes full).
 */
#ifndef FS_STORE_H
#define FS_STORE_H

#include "fiber.h"
#include "kvclient.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int rc;
    kv_version_t version;
    uint8_t *value; /* get: owned by the op until fs_op_take_value or fs_op_clear */
    size_t len;
    /* private */
    bool done;
    bool sent; /* went to the store (not failed at once) */
    fiber_t *waiter;
    struct fs_store_stats *tag; /* counts this op's conflict, if set */
    unsigned serial;            /* the starting fiber's fiber_serial when it started */
} fs_op_t;

/* Start an operation (key and value are copied). The op must stay put until waited for. */
void fs_op_get(kvc_t *kvc, fs_op_t *op, const char *key);
void fs_op_put(kvc_t *kvc, fs_op_t *op, const char *key, const void *value, size_t len,
               kvc_cond_t cond, kv_version_t if_version);
/* Write len bytes at byte off of the value, the rest kept (kvc_patch). */
void fs_op_patch(kvc_t *kvc, fs_op_t *op, const char *key, uint32_t off, const void *bytes,
                 size_t len);
void fs_op_del(kvc_t *kvc, fs_op_t *op, const char *key, kvc_cond_t cond, kv_version_t if_version);
/* Park until op completes; returns op->rc. */
int fs_op_wait(fs_op_t *op);
/* Free the op's value. */
void fs_op_clear(fs_op_t *op);

/* Start-and-wait forms. fs_get hands over the value (free it). */
int fs_get(kvc_t *kvc, const char *key, uint8_t **value, size_t *len, kv_version_t *version);
int fs_put(kvc_t *kvc, const char *key, const void *value, size_t len, kvc_cond_t cond,
           kv_version_t if_version, kv_version_t *version);
int fs_del(kvc_t *kvc, const char *key, kvc_cond_t cond, kv_version_t if_version);

/*
 * Operations started since the process began (for the exit log and
 * benchmarks). A fiber whose tag (fiber_set_tag) is an fs_store_stats_t
 * also counts the operations it and the fibers it spawned start there.
 */
typedef struct fs_store_stats {
    uint64_t gets, puts, dels, conditional, conflicts;
    uint64_t patches; /* puts that were patches (fs_op_patch) */
} fs_store_stats_t;
void fs_store_get_stats(fs_store_stats_t *out);

/* Map a store error to the errno a file system call should fail with. */
int fs_store_errno(int rc);

#endif
