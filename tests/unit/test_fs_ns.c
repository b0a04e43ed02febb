/*
 * test_fs_ns.c — the namespace (fs_ns.c over fs_meta.c) against an
 * in-memory store that loses answers.
 *
 * The store seam is replaced at link time: this file defines the
 * functions of fs_store.h, queues every operation, and completes them from
 * a scheduler loop the test drives (fiber_run_ready, then one completion),
 * so the real fibers, retries and read-backs run deterministically. A fault
 * plan makes the Nth write of a run apply and lose its answer (-ETIMEDOUT),
 * apply and answer as the store client's retry would (the condition now
 * fails: -ESTALE / -EEXIST), or time out without applying. Each scenario is
 * replayed with the fault at every write index, and after each run the
 * store is checked: every name points to a record of its type, every
 * record's nlink equals its names (directories: 2 + subdirectories, ".."
 * the directory holding the name), every bucket decodes, and no inode
 * record was written more than once by one operation.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs_ahead.h"
#include "fs_i.h"
#include "fs_ns.h"
#include "kv_patch.h"

/* ---- the fake store ---- */

typedef enum {
    FATE_OK,
    FATE_LOST,  /* applied, the answer lost: -ETIMEDOUT */
    FATE_RETRY, /* applied, then the client's retry fails the condition */
    FATE_DROP,  /* not applied: -ETIMEDOUT */
} fate_t;

enum { KIND_GET, KIND_PUT, KIND_DEL, KIND_PATCH };

typedef struct {
    char *key;
    uint8_t *val;
    size_t len;
    kv_version_t ver;
    unsigned writes; /* applied writes in the current operation */
    unsigned gets;   /* gets asked for */
} kv_t;

typedef struct {
    fs_op_t *op;
    int kind;
    char *key;
    uint8_t *val;
    size_t len;
    kvc_cond_t cond;
    kv_version_t ifv;
    uint32_t off; /* KIND_PATCH */
} pending_t;

#define KV_MAX 4096
#define PENDING_MAX 512

static kv_t kvs[KV_MAX];
static size_t nkvs;
static pending_t pending[PENDING_MAX];
static size_t npending;
static uint64_t clock_hlc;
static unsigned writes_seen; /* writes completed in this run, the fault plan's index */
static int fault_at = -1;
static fate_t fault_fate;
static uint64_t rng = 1;   /* 0: complete in order; else a seeded random order */
static bool patch_refused; /* answer patches as a node of an older version does */
static unsigned drop_next; /* the next writes fail (-ETIMEDOUT, not applied) */
static unsigned patches_seen;

static uint64_t rng_next(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545F4914F6CDD1DULL;
}

static kv_t *kv_find(const char *key)
{
    for (size_t i = 0; i < nkvs; i++)
        if (kvs[i].key && strcmp(kvs[i].key, key) == 0)
            return &kvs[i];
    return NULL;
}

static void store_reset(void)
{
    for (size_t i = 0; i < nkvs; i++) {
        free(kvs[i].key);
        free(kvs[i].val);
    }
    memset(kvs, 0, sizeof(kvs));
    nkvs = 0;
    writes_seen = 0;
    fault_at = -1;
    drop_next = 0;
}

static void kv_set(const char *key, const uint8_t *val, size_t len)
{
    kv_t *kv = kv_find(key);
    if (!kv) {
        assert_true(nkvs < KV_MAX);
        kv = &kvs[nkvs++];
        kv->key = strdup(key);
    }
    free(kv->val);
    kv->val = malloc(len ? len : 1);
    memcpy(kv->val, val, len);
    kv->len = len;
    kv->ver = (kv_version_t){++clock_hlc, 7};
    kv->writes++;
}

static void kv_unset(kv_t *kv)
{
    free(kv->key);
    free(kv->val);
    kv->key = NULL;
    kv->val = NULL;
}

/* What the store does with a write whose condition holds or not: rc. */
static int apply(pending_t *p)
{
    kv_t *kv = kv_find(p->key);
    if (p->cond == KVC_PUT_IF_ABSENT && kv)
        return -EEXIST;
    if (p->cond == KVC_PUT_IF_VERSION && (!kv || kv_version_cmp(kv->ver, p->ifv) != 0))
        return kv ? -ESTALE : -ENOENT;
    if (p->kind == KIND_DEL) {
        if (!kv)
            return -ENOENT;
        kv_unset(kv);
        return 0;
    }
    if (p->kind == KIND_PATCH) {
        size_t len;
        uint8_t *v =
            kv_patch_apply(kv ? kv->val : NULL, kv ? kv->len : 0, p->off, p->val, p->len, &len);
        assert_non_null(v);
        free(p->val);
        p->val = v;
        p->len = len;
    }
    kv_set(p->key, p->val, p->len);
    if (p->op)
        p->op->version = kv_find(p->key)->ver;
    return 0;
}

static void complete(size_t i)
{
    pending_t p = pending[i];
    pending[i] = pending[--npending];
    fs_op_t *op = p.op;
    if (p.kind == KIND_GET) {
        kv_t *kv = kv_find(p.key);
        if (kv) {
            op->rc = 0;
            op->value = malloc(kv->len ? kv->len : 1);
            memcpy(op->value, kv->val, kv->len);
            op->len = kv->len;
            op->version = kv->ver;
        } else {
            op->rc = -ENOENT;
        }
    } else if (p.kind == KIND_PATCH && patch_refused) {
        op->rc = -EPROTONOSUPPORT;
    } else {
        patches_seen += p.kind == KIND_PATCH;
        fate_t fate = (int)writes_seen++ == fault_at ? fault_fate : FATE_OK;
        if (drop_next > 0) {
            drop_next--;
            fate = FATE_DROP;
        }
        if (fate == FATE_DROP) {
            op->rc = -ETIMEDOUT;
        } else {
            int rc = apply(&p);
            if (fate == FATE_LOST && rc == 0)
                rc = -ETIMEDOUT;
            else if (fate == FATE_RETRY && rc == 0 && p.cond != KVC_PUT_ALWAYS)
                rc = p.cond == KVC_PUT_IF_ABSENT ? -EEXIST : -ESTALE;
            else if (fate == FATE_RETRY && rc == 0)
                rc = -ETIMEDOUT; /* an unconditional write has no condition to fail */
            op->rc = rc;
        }
    }
    free(p.key);
    free(p.val);
    op->done = true;
    if (op->waiter)
        fiber_wake(op->waiter);
}

static void enqueue(fs_op_t *op, int kind, const char *key, const void *val, size_t len,
                    kvc_cond_t cond, kv_version_t ifv)
{
    memset(op, 0, sizeof(*op));
    assert_true(npending < PENDING_MAX);
    pending_t *p = &pending[npending++];
    *p = (pending_t){op, kind, strdup(key), NULL, len, cond, ifv, 0};
    if (val) {
        p->val = malloc(len ? len : 1);
        memcpy(p->val, val, len);
    }
}

void fs_op_get(kvc_t *kvc, fs_op_t *op, const char *key)
{
    (void)kvc;
    kv_t *kv = kv_find(key);
    if (kv)
        kv->gets++;
    enqueue(op, KIND_GET, key, NULL, 0, KVC_PUT_ALWAYS, (kv_version_t){0, 0});
}

void fs_op_put(kvc_t *kvc, fs_op_t *op, const char *key, const void *value, size_t len,
               kvc_cond_t cond, kv_version_t if_version)
{
    (void)kvc;
    enqueue(op, KIND_PUT, key, value, len, cond, if_version);
}

void fs_op_patch(kvc_t *kvc, fs_op_t *op, const char *key, uint32_t off, const void *bytes,
                 size_t len)
{
    (void)kvc;
    enqueue(op, KIND_PATCH, key, bytes, len, KVC_PUT_ALWAYS, (kv_version_t){0, 0});
    pending[npending - 1].off = off;
}

void fs_op_del(kvc_t *kvc, fs_op_t *op, const char *key, kvc_cond_t cond, kv_version_t if_version)
{
    (void)kvc;
    enqueue(op, KIND_DEL, key, NULL, 0, cond, if_version);
}

int fs_op_wait(fs_op_t *op)
{
    while (!op->done) {
        op->waiter = fiber_self();
        fiber_park();
    }
    op->waiter = NULL;
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

void fs_store_get_stats(fs_store_stats_t *out)
{
    memset(out, 0, sizeof(*out));
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
        return rc;
    default:
        return -EIO;
    }
}

/* Run fibers and complete store operations until nothing is left to do. */
static void run_until_idle(void)
{
    for (long guard = 0; guard < 10000000; guard++) {
        fiber_run_ready();
        if (npending == 0)
            return;
        complete(rng ? (size_t)(rng_next() % npending) : 0);
    }
    fail_msg("the store never went idle");
}

/* ---- a mount ---- */

static fs_t fs;

static void put_record(const fs_inode_t *in)
{
    uint8_t buf[512];
    size_t len = fs_inode_encode(in, buf, sizeof(buf));
    assert_true(len > 0);
    char key[FS_KEY_MAX];
    fs_key_inode(key, fs.vol, in->ino);
    kv_set(key, buf, len);
}

static void mount_new(void)
{
    store_reset();
    memset(&fs, 0, sizeof(fs));
    fs.loop = loop_new();
    strcpy(fs.vol, "t");
    fs.chunk_size = 64 * 1024;
    fs.ttl_ms = 1000;
    fs.nodes = fs_map_new();
    fs.dirty = fs_map_new();
    fs.fetching = fs_map_new();
    fs.chunks = kv_cache_new(1u << 20);
    fs.buckets = kv_cache_new(1u << 20);
    fs.dirty_max = 1u << 20;
    fs.puts_max = 8;
    fs_inode_t root;
    memset(&root, 0, sizeof(root));
    root.ino = FS_ROOT_INO;
    root.mode = S_IFDIR | 0755;
    root.nlink = 2;
    root.parent = FS_ROOT_INO;
    put_record(&root);
    fs_bucket_t b;
    fs_bucket_init(&b, 0, 0);
    uint8_t buf[64];
    size_t len = fs_bucket_encode(&b, buf, sizeof(buf));
    char key[FS_KEY_MAX];
    fs_key_bucket(key, fs.vol, FS_ROOT_INO, 0, 0);
    kv_set(key, buf, len);
}

static void mount_free(void)
{
    run_until_idle();
    fs_release_all(&fs);
    loop_destroy(&fs.loop);
    store_reset();
}

/* ---- operations, each run in a fiber to completion ---- */

typedef struct {
    int kind;
    uint64_t dir, dir2;
    const char *name, *name2;
    mode_t mode;
    unsigned flags;
    uint64_t ino; /* link: the file; out: the node made */
    int rc;
} call_t;

enum { C_MAKE, C_UNLINK, C_RMDIR, C_LINK, C_RENAME };

static void call_fiber(void *arg)
{
    call_t *c = arg;
    fs_node_t *n = NULL;
    fs_ns_cred_t cred = {1000, 1000, 0};
    switch (c->kind) {
    case C_MAKE:
        c->rc = fs_ns_make(&fs, c->dir, c->name, strlen(c->name), c->mode, 0,
                           S_ISLNK(c->mode) ? "target" : NULL, cred, &n);
        break;
    case C_UNLINK:
        c->rc = fs_ns_unlink(&fs, c->dir, c->name, strlen(c->name));
        break;
    case C_RMDIR:
        c->rc = fs_ns_rmdir(&fs, c->dir, c->name, strlen(c->name));
        break;
    case C_LINK:
        c->rc = fs_ns_link(&fs, c->ino, c->dir, c->name, strlen(c->name), &n);
        break;
    case C_RENAME:
        c->rc = fs_ns_rename(&fs, c->dir, c->name, strlen(c->name), c->dir2, c->name2,
                             strlen(c->name2), c->flags);
        break;
    }
    if (n) {
        c->ino = n->ino;
        fs_node_put(&fs, n);
    }
}

static void calls_run(call_t *calls, size_t count)
{
    for (size_t i = 0; i < nkvs; i++)
        kvs[i].writes = 0;
    for (size_t i = 0; i < count; i++)
        assert_int_equal(fiber_spawn(call_fiber, &calls[i]), 0);
    run_until_idle();
}

/* ---- invariants ---- */

typedef struct {
    uint64_t ino;
    fs_inode_t in;
    unsigned names, subdirs;
    uint64_t named_in;
} rec_t;

#define REC_MAX 512
static bool check_writes = true; /* off while calls run in parallel: each may touch a parent */
static rec_t recs[REC_MAX];
static size_t nrecs;

static rec_t *rec_find(uint64_t ino)
{
    for (size_t i = 0; i < nrecs; i++)
        if (recs[i].ino == ino)
            return &recs[i];
    return NULL;
}

static void walk_dir(rec_t *d, unsigned level);

static void walk_bucket(uint64_t dir, unsigned depth, uint64_t prefix, rec_t *d, unsigned level)
{
    char key[FS_KEY_MAX];
    fs_key_bucket(key, fs.vol, dir, depth, prefix);
    kv_t *kv = kv_find(key);
    if (!kv)
        fail_msg("directory %" PRIx64 ": bucket %u/%" PRIx64 " missing", dir, depth, prefix);
    fs_stamps_t st;
    size_t body;
    assert_int_equal(fs_stamps_decode(kv->val, kv->len, &st, &body), 0);
    fs_bucket_t b;
    if (fs_bucket_decode(kv->val + body, kv->len - body, depth, prefix, &b) < 0)
        fail_msg("%s: corrupt bucket", key);
    if (b.state == FS_BUCKET_SPLIT) {
        walk_bucket(dir, depth + 1, prefix * 2, d, level);
        walk_bucket(dir, depth + 1, prefix * 2 + 1, d, level);
    }
    for (size_t i = 0; i < b.count; i++) {
        rec_t *r = rec_find(b.ents[i].ino);
        if (!r)
            fail_msg("name %s in %" PRIx64 " points to missing inode %" PRIx64, b.ents[i].name, dir,
                     b.ents[i].ino);
        if (b.ents[i].type != IFTODT(r->in.mode))
            fail_msg("name %s: entry type differs from the record", b.ents[i].name);
        r->names++;
        r->named_in = dir;
        if (S_ISDIR(r->in.mode)) {
            d->subdirs++;
            walk_dir(r, level + 1);
        }
    }
    fs_bucket_free(&b);
}

/* Directories are walked from the root: an unreachable one is garbage, its buckets may be gone. */
static void walk_dir(rec_t *d, unsigned level)
{
    if (level > 32)
        fail_msg("directory %" PRIx64 " is inside itself", d->ino);
    walk_bucket(d->ino, 0, 0, d, level);
}

/* Check the store; returns how many records no name reaches (garbage). */
static size_t check_invariants(void)
{
    for (size_t i = 0; i < nrecs; i++)
        fs_inode_free(&recs[i].in);
    nrecs = 0;
    char prefix[FS_KEY_MAX];
    size_t plen = (size_t)snprintf(prefix, sizeof(prefix), "v/%s/i/", fs.vol);
    for (size_t i = 0; i < nkvs; i++) {
        if (!kvs[i].key || strncmp(kvs[i].key, prefix, plen) != 0)
            continue;
        assert_true(nrecs < REC_MAX);
        rec_t *r = &recs[nrecs++];
        memset(r, 0, sizeof(*r));
        r->ino = strtoull(kvs[i].key + plen, NULL, 16);
        fs_stamps_t st;
        size_t body;
        assert_int_equal(fs_stamps_decode(kvs[i].val, kvs[i].len, &st, &body), 0);
        if (fs_inode_decode(kvs[i].val + body, kvs[i].len - body, &r->in) < 0)
            fail_msg("%s: corrupt record", kvs[i].key);
    }
    rec_t *root = rec_find(FS_ROOT_INO);
    assert_non_null(root);
    walk_dir(root, 0);
    size_t garbage = 0;
    for (size_t i = 0; i < nrecs; i++) {
        rec_t *r = &recs[i];
        if (r->ino == FS_ROOT_INO) {
            assert_int_equal(r->names, 0);
        } else if (r->names == 0) {
            garbage++;
            continue;
        }
        if (S_ISDIR(r->in.mode)) {
            if (r->ino != FS_ROOT_INO && r->names != 1)
                fail_msg("directory %" PRIx64 " has %u names", r->ino, r->names);
            if (r->in.nlink != 2 + r->subdirs)
                fail_msg("directory %" PRIx64 ": nlink %u, %u subdirectories", r->ino, r->in.nlink,
                         r->subdirs);
            if (r->ino != FS_ROOT_INO && r->in.parent != r->named_in)
                fail_msg("directory %" PRIx64 ": '..' is %" PRIx64 ", named in %" PRIx64, r->ino,
                         r->in.parent, r->named_in);
        } else if (r->in.nlink != r->names) {
            fail_msg("inode %" PRIx64 ": nlink %u, %u names", r->ino, r->in.nlink, r->names);
        }
    }
    /* No operation wrote one inode record twice (times, link counts: once each). */
    for (size_t i = 0; i < nkvs && check_writes; i++)
        if (kvs[i].key && strncmp(kvs[i].key, prefix, plen) == 0 && kvs[i].writes > 1)
            fail_msg("%s written %u times by one operation", kvs[i].key, kvs[i].writes);
    return garbage;
}

/* The namespace as a sorted string "dir/name→type,nlink;..." to compare runs. */
static void shape(char *out, size_t cap)
{
    check_invariants();
    out[0] = 0;
    size_t used = 0;
    for (size_t i = 0; i < nrecs; i++) {
        if (recs[i].names == 0 && recs[i].ino != FS_ROOT_INO)
            continue;
        used += (size_t)snprintf(out + used, cap - used, "%o:%u:%u;", recs[i].in.mode,
                                 recs[i].in.nlink, recs[i].names);
    }
}

/* ---- scenarios ---- */

/*
 * The script: every kind of namespace change, with hard links and a
 * directory moved across parents. Returns the number of writes it made.
 */
static unsigned script(bool expect_ok)
{
    call_t c;
    c = (call_t){C_MAKE, FS_ROOT_INO, 0, "d", NULL, S_IFDIR | 0755, 0, 0, 0};
    calls_run(&c, 1);
    uint64_t d = c.ino;
    if (expect_ok)
        assert_int_equal(c.rc, 0);
    check_invariants();
    if (c.rc < 0)
        return writes_seen;
    c = (call_t){C_MAKE, d, 0, "f", NULL, S_IFREG | 0644, 0, 0, 0};
    calls_run(&c, 1);
    uint64_t f = c.ino;
    if (expect_ok)
        assert_int_equal(c.rc, 0);
    check_invariants();
    call_t steps[] = {
        {C_LINK, FS_ROOT_INO, 0, "g", NULL, 0, 0, f, 0},
        {C_RENAME, FS_ROOT_INO, d, "g", "h", 0, 0, 0, 0},
        {C_MAKE, FS_ROOT_INO, 0, "e", NULL, S_IFDIR | 0755, 0, 0, 0},
        {C_MAKE, FS_ROOT_INO, 0, "s", NULL, S_IFLNK | 0777, 0, 0, 0},
        {C_UNLINK, d, 0, "f", NULL, 0, 0, 0, 0},
        {C_RENAME, d, FS_ROOT_INO, "h", "x", 0, 0, 0, 0},
        {C_RENAME, FS_ROOT_INO, 0, "d", "d2", 0, 0, 0, 0},
        {C_RENAME, FS_ROOT_INO, FS_ROOT_INO, "x", "s", 0, 0, 0, 0},
        {C_RENAME, FS_ROOT_INO, FS_ROOT_INO, "s", "e", 0, RENAME_EXCHANGE, 0, 0},
        {C_RMDIR, FS_ROOT_INO, 0, "d2", NULL, 0, 0, 0, 0},
        {C_UNLINK, FS_ROOT_INO, 0, "e", NULL, 0, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        if (steps[i].kind == C_RENAME && steps[i].dir2 == 0)
            steps[i].dir2 = FS_ROOT_INO;
        calls_run(&steps[i], 1);
        if (expect_ok && steps[i].rc != 0)
            fail_msg("step %zu (%s): %s", i, steps[i].name, strerror(-steps[i].rc));
        check_invariants();
    }
    return writes_seen;
}

static void test_script_no_faults(void **state)
{
    (void)state;
    rng = 0;
    mount_new();
    unsigned writes = script(true);
    assert_true(writes > 20);
    assert_int_equal(check_invariants(), 0);
    mount_free();
}

/* Every write of the script in turn has its answer lost (or the retry's conflict, or drops). */
static void replay(fate_t fate)
{
    rng = 0;
    mount_new();
    unsigned writes = script(true);
    char want[4096], got[4096];
    shape(want, sizeof(want));
    mount_free();
    for (unsigned k = 0; k < writes; k++) {
        mount_new();
        fault_fate = fate;
        fault_at = (int)k;
        script(true);
        shape(got, sizeof(got));
        if (strcmp(want, got) != 0)
            fail_msg("fault at write %u: namespace %s, want %s", k, got, want);
        mount_free();
    }
}

static void test_lost_answer_applied_once(void **state)
{
    (void)state;
    replay(FATE_LOST);
}

static void test_retry_conflict_applied_once(void **state)
{
    (void)state;
    replay(FATE_RETRY);
}

static void test_timeout_not_applied_is_redone(void **state)
{
    (void)state;
    replay(FATE_DROP);
}

/* Parallel creates, links and removals in one directory, completing in random orders. */
static void test_parallel_reordered(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 40; seed++) {
        rng = seed;
        mount_new();
        call_t mk[] = {
            {C_MAKE, FS_ROOT_INO, 0, "a", NULL, S_IFREG | 0644, 0, 0, 0},
            {C_MAKE, FS_ROOT_INO, 0, "b", NULL, S_IFREG | 0644, 0, 0, 0},
            {C_MAKE, FS_ROOT_INO, 0, "c", NULL, S_IFDIR | 0755, 0, 0, 0},
            {C_MAKE, FS_ROOT_INO, 0, "a", NULL, S_IFREG | 0644, 0, 0, 0},
        };
        check_writes = false;
        calls_run(mk, 4);
        assert_int_equal(mk[1].rc, 0);
        assert_int_equal(mk[2].rc, 0);
        /* Two creates of "a": exactly one wins. */
        assert_true((mk[0].rc == 0) != (mk[3].rc == 0));
        uint64_t a = mk[0].rc == 0 ? mk[0].ino : mk[3].ino;
        assert_int_equal(check_invariants(), 0);
        fault_fate = FATE_LOST;
        fault_at = (int)writes_seen + (int)(seed % 5);
        call_t ch[] = {
            {C_LINK, mk[2].ino, 0, "a2", NULL, 0, 0, a, 0},
            {C_LINK, FS_ROOT_INO, 0, "a3", NULL, 0, 0, a, 0},
            {C_UNLINK, FS_ROOT_INO, 0, "b", NULL, 0, 0, 0, 0},
            {C_MAKE, mk[2].ino, 0, "sub", NULL, S_IFDIR | 0755, 0, 0, 0},
        };
        calls_run(ch, 4);
        for (size_t i = 0; i < 4; i++)
            if (ch[i].rc != 0)
                fail_msg("seed %" PRIu64 ": call %zu: %s", seed, i, strerror(-ch[i].rc));
        check_invariants();
        rec_t *r = rec_find(a);
        assert_non_null(r);
        assert_int_equal(r->in.nlink, 3);
        mount_free();
    }
    check_writes = true;
}

/* ---- file data: patched and partial write-back ---- */

#define DATA_SIZE (4 * 64 * 1024 - 3000)
static uint8_t model[DATA_SIZE];
/* Writes started so far and writes under way: a read that overlapped one proves nothing. */
static unsigned writes_started, writes_busy;

typedef struct {
    fs_node_t *node;
    uint64_t seed;
    int rc;
    unsigned part;
} writer_t;

/* Random small writes (adjacent, apart, overlapping) and reads checked against the model. */
static void writer_fiber(void *arg)
{
    writer_t *w = arg;
    uint64_t r = w->seed;
    uint8_t buf[6000], got[6000];
    for (int i = 0; i < 60 && w->rc == 0; i++) {
        r = r * 6364136223846793005ULL + 1442695040888963407ULL;
        size_t len = 1 + (size_t)((r >> 33) % sizeof buf);
        /* Writers own disjoint thirds (their order on shared bytes is not defined); reads roam. */
        uint64_t third = DATA_SIZE / 3, lo = w->part * third,
                 hi = w->part == 2 ? DATA_SIZE : lo + third;
        bool read = (r >> 11) % 4 == 0;
        uint64_t off = read ? (r >> 17) % DATA_SIZE : lo + (r >> 17) % (hi - lo);
        uint64_t end = read ? DATA_SIZE : hi;
        if (off + len > end)
            len = end - off;
        if (read) {
            size_t n;
            unsigned before = writes_started;
            bool quiet = writes_busy == 0;
            w->rc = fs_data_read(&fs, w->node, off, len, got, &n);
            quiet = quiet && writes_busy == 0 && writes_started == before;
            if (w->rc == 0 && quiet && (n != len || memcmp(got, model + off, len) != 0))
                fail_msg("read %zu at %" PRIu64 " differs from the model", len, off);
            continue;
        }
        for (size_t k = 0; k < len; k++)
            buf[k] = (uint8_t)(r >> (k % 56));
        memcpy(model + off, buf, len);
        writes_started++;
        writes_busy++;
        w->rc = fs_data_write(&fs, w->node, off, buf, len);
        writes_busy--;
        if (w->rc == 0 && (r >> 7) % 8 == 0)
            w->rc = fs_data_flush(&fs, w->node);
    }
    if (w->rc == 0)
        w->rc = fs_data_flush(&fs, w->node);
}

static void fill_fiber(void *arg)
{
    writer_t *w = arg;
    w->rc = fs_data_write(&fs, w->node, 0, model, DATA_SIZE);
    if (w->rc == 0)
        w->rc = fs_data_flush(&fs, w->node);
}

/*
 * A new mount (the fake store answering in the order seed draws; 0: in
 * order), and in it a new file "f".
 */
static fs_node_t *mount_with_file(uint64_t seed, mode_t mode)
{
    rng = seed;
    mount_new();
    call_t mk = {C_MAKE, FS_ROOT_INO, 0, "f", NULL, S_IFREG | mode, 0, 0, 0};
    calls_run(&mk, 1);
    assert_int_equal(mk.rc, 0);
    fs_node_t *n = fs_node_get(&fs, mk.ino);
    assert_non_null(n);
    return n;
}

/*
 * A stored file, then writers in parallel (store answers in a random order)
 * on a mount whose chunk cache starts empty: every chunk in the store ends
 * as the model says, patches were sent (unless refused: then whole chunks).
 */
static void data_run(uint64_t seed, bool refuse)
{
    fs_node_t *n = mount_with_file(seed, 0644);
    for (size_t k = 0; k < DATA_SIZE; k++)
        model[k] = (uint8_t)(k * 31 + seed);
    writer_t fill = {n, 0, 0, 0};
    assert_int_equal(fiber_spawn(fill_fiber, &fill), 0);
    run_until_idle();
    assert_int_equal(fill.rc, 0);
    kv_cache_clear(fs.chunks);
    patches_seen = 0;
    patch_refused = refuse;
    writer_t w[3];
    for (int i = 0; i < 3; i++) {
        w[i] = (writer_t){n, seed * 3 + (uint64_t)i, 0, (unsigned)i};
        assert_int_equal(fiber_spawn(writer_fiber, &w[i]), 0);
    }
    run_until_idle();
    for (int i = 0; i < 3; i++)
        if (w[i].rc != 0)
            fail_msg("seed %" PRIu64 ": writer %d: %s", seed, i, strerror(-w[i].rc));
    for (uint64_t idx = 0; idx * fs.chunk_size < DATA_SIZE; idx++) {
        char key[FS_KEY_MAX];
        fs_key_chunk(key, fs.vol, n->ino, idx);
        kv_t *kv = kv_find(key);
        assert_non_null(kv);
        size_t want = DATA_SIZE - idx * fs.chunk_size;
        if (want > fs.chunk_size)
            want = fs.chunk_size;
        if (kv->len != want || memcmp(kv->val, model + idx * fs.chunk_size, want) != 0)
            fail_msg("seed %" PRIu64 ": chunk %" PRIu64 " (%zu bytes) differs from the model", seed,
                     idx, kv->len);
    }
    if (refuse)
        assert_int_equal(patches_seen, 0);
    else if (patches_seen == 0)
        fail_msg("seed %" PRIu64 ": no write went out as a patch", seed);
    patch_refused = false;
    fs_node_put(&fs, n);
    mount_free();
}

static void test_data_patches(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 20; seed++)
        data_run(seed, false);
}

static void test_data_patches_refused(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 5; seed++)
        data_run(seed, true);
}

/* ---- attribute changes deferred to the flush (fs_node_defer_attrs) ---- */

/* The record of ino as the store holds it now. */
static void stored_inode(uint64_t ino, fs_inode_t *in)
{
    char key[FS_KEY_MAX];
    fs_key_inode(key, fs.vol, ino);
    kv_t *kv = kv_find(key);
    assert_non_null(kv);
    fs_stamps_t st;
    size_t body;
    assert_int_equal(fs_stamps_decode(kv->val, kv->len, &st, &body), 0);
    assert_int_equal(fs_inode_decode(kv->val + body, kv->len - body, in), 0);
}

typedef struct {
    fs_node_t *node;
    int step; /* 0 write, 1 defer, 2 flush, 3 load */
    const char *data;
    fs_attr_edit_t edit;
    int rc;
} attr_call_t;

static void attr_fiber(void *arg)
{
    attr_call_t *c = arg;
    if (c->step == 0)
        c->rc =
            fs_data_write(&fs, c->node, c->node->size, (const uint8_t *)c->data, strlen(c->data));
    else if (c->step == 1)
        c->rc = fs_node_defer_attrs(c->node, &c->edit) ? 1 : 0;
    else if (c->step == 2)
        c->rc = fs_data_flush(&fs, c->node);
    else
        c->rc = fs_node_load(&fs, c->node, false);
}

static int attr_run(fs_node_t *n, int step, const char *data, const fs_attr_edit_t *e)
{
    attr_call_t c = {n, step, data, e ? *e : (fs_attr_edit_t){0}, -1};
    assert_int_equal(fiber_spawn(attr_fiber, &c), 0);
    run_until_idle();
    return c.rc;
}

/* A new mount, and in it a new file (mode 0600) loaded and open here. */
static fs_node_t *new_open_file(void)
{
    fs_node_t *n = mount_with_file(0, 0600);
    assert_int_equal(attr_run(n, 3, NULL, NULL), 0);
    n->open = 1;
    return n;
}

/*
 * chmod, chown and utimens of a file open with unflushed writes cost no
 * store write: shown at once, written by the flush in the same record
 * write, also when that write's answer is lost, applied twice or dropped;
 * a write after a time was set is newer; nothing is deferred once the
 * record is clean or the file is not open.
 */
static void test_deferred_attrs(void **state)
{
    (void)state;
    const struct timespec t = {981173106, 123456789};
    const fate_t fates[] = {FATE_OK, FATE_LOST, FATE_RETRY, FATE_DROP};
    for (size_t k = 0; k < sizeof(fates) / sizeof(fates[0]); k++) {
        fs_node_t *n = new_open_file();
        fs_attr_edit_t e = {.set =
                                FS_SET_MODE | FS_SET_UID | FS_SET_GID | FS_SET_MTIME | FS_SET_CTIME,
                            .mode = 0640,
                            .uid = 4321,
                            .gid = 8765,
                            .mtime = t,
                            .ctime = fs_now()};
        assert_int_equal(attr_run(n, 1, NULL, &e), 0); /* nothing to flush yet */
        assert_int_equal(attr_run(n, 0, "hello", NULL), 0);
        const struct timespec tc = fs_now(); /* a setattr's ctime: after the write */
        e.ctime = tc;
        unsigned before = writes_seen;
        assert_int_equal(attr_run(n, 1, NULL, &e), 1);
        assert_int_equal(writes_seen, before);
        struct stat st;
        fs_node_to_stat(&fs, n, &st);
        assert_int_equal(st.st_mode, S_IFREG | 0640);
        assert_int_equal(st.st_uid, 4321);
        assert_int_equal(st.st_gid, 8765);
        assert_int_equal(st.st_mtim.tv_sec, t.tv_sec);
        assert_int_equal(st.st_mtim.tv_nsec, t.tv_nsec);
        assert_int_equal(st.st_ctim.tv_sec, tc.tv_sec);
        fs_inode_t in;
        stored_inode(n->ino, &in);
        assert_int_equal(in.mode, S_IFREG | 0600);
        fs_inode_free(&in);

        fault_at = (int)writes_seen;
        fault_fate = fates[k];
        assert_int_equal(attr_run(n, 2, NULL, NULL), 0);
        assert_int_equal(n->over.set, 0);
        stored_inode(n->ino, &in);
        assert_int_equal(in.mode, S_IFREG | 0640);
        assert_int_equal(in.uid, 4321);
        assert_int_equal(in.gid, 8765);
        assert_int_equal(in.mtime_s, t.tv_sec);
        assert_int_equal(in.mtime_ns, t.tv_nsec);
        assert_int_equal(in.ctime_s, tc.tv_sec);
        assert_int_equal(in.ctime_ns, tc.tv_nsec);
        assert_int_equal(in.size, 5);
        assert_int_equal(in.data_len, 5);
        assert_memory_equal(in.data, "hello", 5);
        fs_inode_free(&in);
        /* Clean now: a change is written by the caller. */
        assert_int_equal(attr_run(n, 1, NULL, &e), 0);

        /* A time set, then a write: the write's time is the file's. */
        assert_int_equal(attr_run(n, 0, " again", NULL), 0);
        fs_attr_edit_t e2 = {.set = FS_SET_MTIME | FS_SET_CTIME, .mtime = t, .ctime = fs_now()};
        assert_int_equal(attr_run(n, 1, NULL, &e2), 1);
        assert_int_equal(attr_run(n, 0, "!", NULL), 0);
        fs_node_to_stat(&fs, n, &st);
        assert_true(st.st_mtim.tv_sec > t.tv_sec);
        assert_int_equal(attr_run(n, 2, NULL, NULL), 0);
        stored_inode(n->ino, &in);
        assert_true(in.mtime_s > t.tv_sec);
        assert_int_equal(in.size, 12);
        assert_int_equal(in.mode, S_IFREG | 0640);
        fs_inode_free(&in);

        /* Not open here: no flush is sure to come. */
        assert_int_equal(attr_run(n, 0, "?", NULL), 0);
        n->open = 0;
        assert_int_equal(attr_run(n, 1, NULL, &e), 0);
        assert_int_equal(attr_run(n, 2, NULL, NULL), 0);
        fs_node_put(&fs, n);
        mount_free();
    }
}

static int mutate_mode660(fs_inode_t *in, void *arg)
{
    (void)arg;
    in->mode = (in->mode & S_IFMT) | 0660; /* as a setfacl's update does */
    return 0;
}

static void mode660_fiber(void *arg)
{
    fs_node_t *n = arg;
    assert_int_equal(fs_node_update(&fs, n, mutate_mode660, NULL), 0);
}

static bool ts_before(int64_t s, uint32_t ns, struct timespec t)
{
    return s < t.tv_sec || (s == t.tv_sec && ns < (uint32_t)t.tv_nsec);
}

/*
 * Deferred changes and other record updates before the flush, in the
 * order made: a file past one chunk (the flush lists its last chunk in the
 * index first); a link in between, whose later ctime stays; an update of
 * the mode in between (a setfacl's), which the flush does not undo.
 */
static void test_deferred_attrs_kept(void **state)
{
    (void)state;
    const struct timespec t = {981173106, 123456789};
    for (int other = 0; other < 3; other++) {
        fs_node_t *n = new_open_file();
        static char piece[10 * 1024 + 1];
        memset(piece, 'x', sizeof(piece) - 1);
        for (int i = 0; i < 10; i++)
            assert_int_equal(attr_run(n, 0, piece, NULL), 0);
        fs_attr_edit_t e = {.set = FS_SET_MODE | FS_SET_MTIME | FS_SET_CTIME,
                            .mode = 0640,
                            .mtime = t,
                            .ctime = fs_now()};
        assert_int_equal(attr_run(n, 1, NULL, &e), 1);
        struct timespec before = fs_now();
        if (other == 1) {
            call_t ln = {C_LINK, FS_ROOT_INO, 0, "g", NULL, 0, 0, n->ino, 0};
            calls_run(&ln, 1);
            assert_int_equal(ln.rc, 0);
        } else if (other == 2) {
            assert_int_equal(fiber_spawn(mode660_fiber, n), 0);
            run_until_idle();
        }
        assert_int_equal(attr_run(n, 2, NULL, NULL), 0);
        fs_inode_t in;
        stored_inode(n->ino, &in);
        assert_int_equal(in.size, 10 * (sizeof(piece) - 1));
        mode_t mode = other == 2 ? 0660 : 0640;
        assert_int_equal(in.mode, S_IFREG | mode);
        assert_int_equal(in.mtime_s, t.tv_sec);
        assert_int_equal(in.mtime_ns, t.tv_nsec);
        /* The chmod's ctime, or the link's after it: never the older write's. */
        if (other == 1)
            assert_false(ts_before(in.ctime_s, in.ctime_ns, before));
        else
            assert_int_equal(in.ctime_ns, e.ctime.tv_nsec);
        fs_inode_free(&in);
        struct stat st;
        fs_node_to_stat(&fs, n, &st);
        assert_int_equal(st.st_mtim.tv_sec, t.tv_sec);
        assert_int_equal(st.st_mode, S_IFREG | mode);
        fs_node_put(&fs, n);
        mount_free();
    }
}

/*
 * A file that outgrows its record but fits its first chunk moves to
 * chunks at its flush, not in the write (no store write before the
 * flush); one written past its first chunk moves at once.
 */
static void test_inline_outgrown(void **state)
{
    (void)state;
    fs_node_t *n = new_open_file();
    static char piece[9 * 1024 + 1];
    memset(piece, 'y', sizeof(piece) - 1);
    unsigned before = writes_seen;
    assert_int_equal(attr_run(n, 0, piece, NULL), 0);
    assert_int_equal(writes_seen, before);
    fs_inode_t in;
    stored_inode(n->ino, &in);
    assert_true(in.flags & FS_INODE_INLINE);
    assert_int_equal(in.size, 0);
    fs_inode_free(&in);
    assert_int_equal(attr_run(n, 2, NULL, NULL), 0);
    stored_inode(n->ino, &in);
    assert_false(in.flags & FS_INODE_INLINE);
    assert_int_equal(in.size, sizeof(piece) - 1);
    assert_true(fs_extents_has(&in.ext, 0));
    fs_inode_free(&in);
    char key[FS_KEY_MAX];
    fs_key_chunk(key, fs.vol, n->ino, 0);
    kv_t *kv = kv_find(key);
    assert_non_null(kv);
    assert_int_equal(kv->len, sizeof(piece) - 1);
    assert_memory_equal(kv->val, piece, sizeof(piece) - 1);
    fs_node_put(&fs, n);
    mount_free();

    n = new_open_file();
    for (int i = 0; i < 8; i++) /* 72 KiB: past the first chunk */
        assert_int_equal(attr_run(n, 0, piece, NULL), 0);
    stored_inode(n->ino, &in);
    assert_false(in.flags & FS_INODE_INLINE);
    fs_inode_free(&in);
    assert_int_equal(attr_run(n, 2, NULL, NULL), 0);
    stored_inode(n->ino, &in);
    assert_int_equal(in.size, 8 * (sizeof(piece) - 1));
    fs_inode_free(&in);
    fs_node_put(&fs, n);
    mount_free();
}

typedef struct {
    fs_node_t *node;
    uint8_t buf[20 * 1024];
    size_t got;
    int rc;
} reader_t;

static void reader_fiber(void *arg)
{
    reader_t *r = arg;
    r->rc = fs_data_read(&fs, r->node, 0, sizeof(r->buf), r->buf, &r->got);
}

/*
 * A file with data in its record, written to 20 KiB, flushed: between
 * the put of its chunk 0 and the record update that ends its inline
 * days, a read of the file sees the new bytes (not the record's old ones
 * and zeros); and when that record update fails, the next flush keeps
 * the stored chunk 0 instead of rebuilding it from the old record.
 */
static void test_inline_leaving_window(void **state)
{
    (void)state;
    for (int fail = 0; fail < 2; fail++) {
        rng = 0; /* in order: a put completes before the next is sent */
        fs_node_t *n = new_open_file();
        static uint8_t data[20 * 1024];
        memset(data, 'o', 5 * 1024);
        assert_int_equal(fs_data_write(&fs, n, 0, data, 5 * 1024), 0);
        assert_int_equal(attr_run(n, 2, NULL, NULL), 0);
        assert_true(n->in.flags & FS_INODE_INLINE);
        for (size_t k = 0; k < sizeof(data); k++)
            data[k] = (uint8_t)('a' + k % 26);
        assert_int_equal(fs_data_write(&fs, n, 0, data, sizeof(data)), 0);
        attr_call_t flush = {n, 2, NULL, {0}, -1};
        assert_int_equal(fiber_spawn(attr_fiber, &flush), 0);
        /* Step until chunk 0 is stored and the record update is on its way. */
        bool window = false;
        for (int guard = 0; guard < 100 && !window; guard++) {
            fiber_run_ready();
            window = (n->in.flags & FS_INODE_INLINE) && !fs_map_get(fs.dirty, n->ino, 0) &&
                     fs_extents_has(&n->written, 0) && npending > 0;
            if (!window && npending > 0)
                complete(0);
        }
        assert_true(window);
        reader_t *r = calloc(1, sizeof(*r));
        assert_non_null(r);
        r->node = n;
        assert_int_equal(fiber_spawn(reader_fiber, r), 0);
        if (fail)
            drop_next = 8; /* the record update, every attempt */
        run_until_idle();
        drop_next = 0;
        assert_int_equal(r->rc, 0);
        assert_int_equal(r->got, sizeof(data));
        assert_memory_equal(r->buf, data, sizeof(data));
        free(r);
        if (fail) {
            assert_true(flush.rc < 0);
            assert_int_equal(attr_run(n, 2, NULL, NULL), 0); /* the retry */
        } else {
            assert_int_equal(flush.rc, 0);
        }
        fs_inode_t in;
        stored_inode(n->ino, &in);
        assert_false(in.flags & FS_INODE_INLINE);
        assert_int_equal(in.size, sizeof(data));
        fs_inode_free(&in);
        char key[FS_KEY_MAX];
        fs_key_chunk(key, fs.vol, n->ino, 0);
        kv_t *kv = kv_find(key);
        assert_non_null(kv);
        assert_int_equal(kv->len, sizeof(data));
        assert_memory_equal(kv->val, data, sizeof(data));
        fs_node_put(&fs, n);
        mount_free();
    }
}

/*
 * A file this mount just created and has not written (SQLite's journal,
 * fchown'ed before its first write): the change is deferred too, and the
 * flush then owed writes it and the record's own times, the file staying
 * inline and empty; data written after it rides with the next flush.
 */
static void test_deferred_attrs_just_created(void **state)
{
    (void)state;
    const fate_t fates[] = {FATE_OK, FATE_LOST, FATE_RETRY, FATE_DROP};
    for (size_t k = 0; k < sizeof(fates) / sizeof(fates[0]); k++) {
        fs_node_t *n = new_open_file();
        fs_inode_t in;
        stored_inode(n->ino, &in);
        const int64_t mtime_s = in.mtime_s;
        const uint32_t mtime_ns = in.mtime_ns;
        fs_inode_free(&in);
        n->just_created = true; /* as run_create leaves it */
        fs_attr_edit_t e = {.set = FS_SET_UID | FS_SET_GID | FS_SET_CTIME,
                            .uid = 4321,
                            .gid = 8765,
                            .ctime = fs_now()};
        unsigned before = writes_seen;
        assert_int_equal(attr_run(n, 1, NULL, &e), 1);
        assert_int_equal(writes_seen, before);
        assert_true(fs_data_dirty(n));
        struct stat st;
        fs_node_to_stat(&fs, n, &st);
        assert_int_equal(st.st_uid, 4321);
        assert_int_equal(st.st_mtim.tv_sec, mtime_s);
        assert_int_equal(st.st_mtim.tv_nsec, mtime_ns);
        assert_int_equal(st.st_size, 0);

        fault_at = (int)writes_seen;
        fault_fate = fates[k];
        assert_int_equal(attr_run(n, 2, NULL, NULL), 0);
        if (fates[k] == FATE_OK)
            assert_int_equal(writes_seen, before + 1); /* the record, once */
        assert_false(fs_data_dirty(n));
        stored_inode(n->ino, &in);
        assert_int_equal(in.uid, 4321);
        assert_int_equal(in.gid, 8765);
        assert_int_equal(in.mode, S_IFREG | 0600);
        assert_int_equal(in.mtime_s, mtime_s);
        assert_int_equal(in.mtime_ns, mtime_ns);
        assert_int_equal(in.ctime_ns, e.ctime.tv_nsec);
        assert_int_equal(in.size, 0);
        assert_true(in.flags & FS_INODE_INLINE);
        fs_inode_free(&in);

        /* Written after: the data lands in the record by the next flush. */
        assert_int_equal(attr_run(n, 0, "journal", NULL), 0);
        assert_int_equal(attr_run(n, 2, NULL, NULL), 0);
        stored_inode(n->ino, &in);
        assert_int_equal(in.uid, 4321);
        assert_int_equal(in.size, 7);
        assert_int_equal(in.data_len, 7);
        assert_memory_equal(in.data, "journal", 7);
        fs_inode_free(&in);
        fs_node_put(&fs, n);
        mount_free();
    }
}

typedef struct {
    uint64_t ino;
    int rc;
    fs_inode_t stored; /* the record in the store when the rename returned */
    struct stat st;    /* and what this mount showed then */
} rename_snap_t;

static void rename_snap_fiber(void *arg)
{
    rename_snap_t *r = arg;
    r->rc = fs_ns_rename(&fs, FS_ROOT_INO, "f", 1, FS_ROOT_INO, "g", 1, 0);
    stored_inode(r->ino, &r->stored);
    fs_node_t *n = fs_node_get(&fs, r->ino);
    assert_non_null(n);
    fs_node_to_stat(&fs, n, &r->st);
    fs_node_put(&fs, n);
}

/*
 * A renamed file's new ctime is written behind the rename: when the
 * rename returns the record is as before (the rename was one write, its
 * name's), then the new ctime lands and the mtime stays.
 */
static void test_rename_ctime_behind(void **state)
{
    (void)state;
    fs_node_t *n = mount_with_file(0, 0644); /* held and loaded, as the kernel's lookup would */
    assert_int_equal(attr_run(n, 3, NULL, NULL), 0);
    /* Open with a write and a chmod deferred to its flush: the chmod's ctime is older. */
    n->open = 1;
    assert_int_equal(attr_run(n, 0, "x", NULL), 0);
    fs_attr_edit_t e = {.set = FS_SET_MODE | FS_SET_CTIME, .mode = 0600, .ctime = fs_now()};
    assert_int_equal(attr_run(n, 1, NULL, &e), 1);
    rename_snap_t r = {n->ino, -1, {0}, {0}};
    fs_inode_t before, after;
    stored_inode(r.ino, &before);
    while (fs_ts_cmp(e.ctime.tv_sec, (uint32_t)e.ctime.tv_nsec, fs_now()) >= 0)
        ; /* the rename's time must be later than the chmod's */
    assert_int_equal(fiber_spawn(rename_snap_fiber, &r), 0);
    run_until_idle();
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.stored.ctime_s, before.ctime_s);
    assert_int_equal(r.stored.ctime_ns, before.ctime_ns);
    /* Shown at once, also over the deferred chmod's older ctime. */
    assert_true(fs_ts_cmp(e.ctime.tv_sec, (uint32_t)e.ctime.tv_nsec, r.st.st_ctim) < 0);
    stored_inode(r.ino, &after);
    assert_int_equal(after.mtime_s, before.mtime_s);
    assert_int_equal(after.mtime_ns, before.mtime_ns);
    assert_true(fs_ts_cmp(before.ctime_s, before.ctime_ns,
                          (struct timespec){after.ctime_s, after.ctime_ns}) < 0);
    fs_inode_free(&before);
    fs_inode_free(&after);
    fs_inode_free(&r.stored);
    assert_int_equal(attr_run(n, 2, NULL, NULL), 0);
    n->open = 0;
    fs_node_put(&fs, n);
    mount_free();
}

/* ---- stat-ahead ---- */

#define AHEAD_FILES 400

static uint64_t ahead_inos[AHEAD_FILES];

static void ahead_name(char *buf, size_t i)
{
    snprintf(buf, 16, "f%04zu", i);
}

/* A mount whose root holds AHEAD_FILES files and no fresh record of them (the kernel forgot). */
static void mount_with_files(void)
{
    mount_new();
    fs.ttl_ms = 100;
    static char names[AHEAD_FILES][16];
    for (size_t i = 0; i < AHEAD_FILES; i += 20) {
        call_t calls[20];
        for (size_t k = 0; k < 20; k++) {
            ahead_name(names[i + k], i + k);
            calls[k] = (call_t){
                .kind = C_MAKE, .dir = FS_ROOT_INO, .name = names[i + k], .mode = S_IFREG | 0644};
        }
        calls_run(calls, 20);
        for (size_t k = 0; k < 20; k++) {
            assert_int_equal(calls[k].rc, 0);
            ahead_inos[i + k] = calls[k].ino;
        }
    }
    for (size_t i = 0; i < AHEAD_FILES; i++) {
        fs_node_t *n = fs_node_find(&fs, ahead_inos[i]);
        if (n)
            n->fetched_ms = fs_now_ms(&fs) - fs.ttl_ms;
    }
}

typedef struct {
    size_t i;
    bool hit;
    int rc;
} ahead_lookup_t;

/* What a LOOKUP does (fs_ops.c run_lookup), the node then forgotten at once. */
static void ahead_lookup_fiber(void *arg)
{
    ahead_lookup_t *l = arg;
    char name[16];
    ahead_name(name, l->i);
    fs_dirent_t ent;
    l->rc = fs_dir_lookup(&fs, FS_ROOT_INO, name, strlen(name), false, &ent);
    if (l->rc < 0)
        return;
    fs_node_t *n = fs_node_get(&fs, ent.ino);
    fs_ahead_lookup(&fs, FS_ROOT_INO, name, strlen(name), n);
    l->hit = fs_node_fresh(&fs, n);
    l->rc = fs_node_load(&fs, n, false);
    if (l->rc == 0 && (n->ino != ahead_inos[l->i] || !S_ISREG(n->in.mode)))
        l->rc = -EINVAL;
    fs_node_put(&fs, n);
}

/* Look up file i and let everything started settle: was its record loaded before it was asked? */
static bool ahead_lookup(size_t i)
{
    ahead_lookup_t l = {i, false, 0};
    assert_int_equal(fiber_spawn(ahead_lookup_fiber, &l), 0);
    run_until_idle();
    assert_int_equal(l.rc, 0);
    return l.hit;
}

static void stop_loop(loop_t *loop, void *arg)
{
    (void)arg;
    loop_stop(loop);
}

/* Let ms pass on the mount's loop (its timers fire), then run what they woke. */
static void loop_for(unsigned ms)
{
    assert_true(loop_timer_add(fs.loop, ms, stop_loop, NULL) > 0);
    assert_int_equal(loop_run(fs.loop), 0);
    run_until_idle();
}

static void assert_ahead(uint64_t loaded, uint64_t used)
{
    uint64_t l, u;
    fs_ahead_stats(&fs, &l, &u);
    assert_int_equal(l, loaded);
    assert_int_equal(u, used);
}

/*
 * Lookups in name order: the 8th miss starts a run, which loads one
 * window of records past it and no further until lookups move on; from
 * then on every lookup finds its record loaded. A name the walk skips
 * does not keep the used records behind it held; the records no lookup
 * used are given back when they go stale, and the nodes with them.
 */
static void test_stat_ahead_in_order(void **state)
{
    (void)state;
    mount_with_files();
    for (size_t i = 0; i < FS_AHEAD_TRIGGER; i++)
        assert_false(ahead_lookup(i));
    assert_ahead(FS_AHEAD_WINDOW, 0);
    const size_t upto = 300, skipped = 20;
    for (size_t i = FS_AHEAD_TRIGGER; i < upto; i++)
        if (i != skipped)
            assert_true(ahead_lookup(i));
    assert_ahead(AHEAD_FILES - FS_AHEAD_TRIGGER, upto - FS_AHEAD_TRIGGER - 1);
    assert_null(fs_node_find(&fs, ahead_inos[skipped + 1]));
    assert_null(fs_node_find(&fs, ahead_inos[100]));
    assert_non_null(fs_node_find(&fs, ahead_inos[skipped]));
    assert_non_null(fs_node_find(&fs, ahead_inos[upto]));
    assert_true(fiber_count() > 0); /* holding the unused ones */
    loop_for((unsigned)fs.ttl_ms + 50);
    assert_int_equal(fiber_count(), 0);
    for (size_t i = 0; i < AHEAD_FILES; i++)
        assert_null(fs_node_find(&fs, ahead_inos[i]));
    mount_free();
}

/*
 * A lookup whose record a run is loading waits for that load instead of
 * asking the store a second time.
 */
static void test_stat_ahead_no_double_get(void **state)
{
    (void)state;
    mount_with_files();
    for (size_t i = 0; i + 1 < FS_AHEAD_TRIGGER; i++)
        assert_false(ahead_lookup(i));
    ahead_lookup_t last = {FS_AHEAD_TRIGGER - 1, false, 0};
    assert_int_equal(fiber_spawn(ahead_lookup_fiber, &last), 0);
    /* Step until the run has asked for the next record, not yet answered. */
    fs_node_t *n = NULL;
    for (int guard = 0; guard < 10000 && !(n && n->ahead == FS_AHEAD_LOADING); guard++) {
        fiber_run_ready();
        n = fs_node_find(&fs, ahead_inos[FS_AHEAD_TRIGGER]);
        if (!(n && n->ahead == FS_AHEAD_LOADING) && npending > 0)
            complete(0);
    }
    assert_non_null(n);
    assert_int_equal(n->ahead, FS_AHEAD_LOADING);
    ahead_lookup_t next = {FS_AHEAD_TRIGGER, false, 0};
    assert_int_equal(fiber_spawn(ahead_lookup_fiber, &next), 0);
    run_until_idle();
    assert_int_equal(last.rc, 0);
    assert_int_equal(next.rc, 0);
    assert_true(next.hit);
    char key[FS_KEY_MAX];
    fs_key_inode(key, fs.vol, ahead_inos[FS_AHEAD_TRIGGER]);
    assert_int_equal(kv_find(key)->gets, 1);
    fs_ahead_stop(&fs);
    mount_free();
}

/*
 * Lookups out of name order start no run; a run stops when a lookup goes
 * back, and loads nothing more; fs_ahead_stop ends a waiting run at once.
 */
static void test_stat_ahead_out_of_order(void **state)
{
    (void)state;
    mount_with_files();
    for (size_t i = 0; i < 40; i++)
        assert_false(ahead_lookup(AHEAD_FILES - 1 - i));
    assert_ahead(0, 0);
    for (size_t i = 0; i < FS_AHEAD_TRIGGER; i++)
        assert_false(ahead_lookup(i));
    assert_ahead(FS_AHEAD_WINDOW, 0);
    assert_false(ahead_lookup(3));
    for (size_t i = FS_AHEAD_TRIGGER; i < FS_AHEAD_TRIGGER + FS_AHEAD_WINDOW; i++)
        assert_true(ahead_lookup(i));
    assert_false(ahead_lookup(FS_AHEAD_TRIGGER + FS_AHEAD_WINDOW));
    assert_ahead(FS_AHEAD_WINDOW, FS_AHEAD_WINDOW);
    /* A new walk from the start: its run waits for the window to move, until stopped. */
    loop_for((unsigned)fs.ttl_ms + 50);
    for (size_t i = 0; i < FS_AHEAD_TRIGGER; i++)
        assert_false(ahead_lookup(i));
    assert_ahead(2 * FS_AHEAD_WINDOW, FS_AHEAD_WINDOW);
    assert_true(fiber_count() > 0);
    fs_ahead_stop(&fs);
    run_until_idle();
    assert_int_equal(fiber_count(), 0);
    for (size_t i = 0; i < AHEAD_FILES; i++)
        assert_null(fs_node_find(&fs, ahead_inos[i]));
    mount_free();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_script_no_faults),
        cmocka_unit_test(test_lost_answer_applied_once),
        cmocka_unit_test(test_retry_conflict_applied_once),
        cmocka_unit_test(test_timeout_not_applied_is_redone),
        cmocka_unit_test(test_parallel_reordered),
        cmocka_unit_test(test_data_patches),
        cmocka_unit_test(test_data_patches_refused),
        cmocka_unit_test(test_deferred_attrs),
        cmocka_unit_test(test_deferred_attrs_kept),
        cmocka_unit_test(test_inline_outgrown),
        cmocka_unit_test(test_inline_leaving_window),
        cmocka_unit_test(test_deferred_attrs_just_created),
        cmocka_unit_test(test_rename_ctime_behind),
        cmocka_unit_test(test_stat_ahead_in_order),
        cmocka_unit_test(test_stat_ahead_no_double_get),
        cmocka_unit_test(test_stat_ahead_out_of_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
