/*
 * fs_locks.c — flock and fcntl locks that hold across mounts.
 *
 * A locked file has one record in the store (v/VOL/lock/INO, fs_lock.c)
 * listing every lock any mount holds on it. Taking or dropping a lock
 * reads the record, decides with fs_lock.c and writes it back with
 * compare-and-set on the version read; a lost race re-reads. Every change
 * is idempotent (the same request applied twice gives the same record), so
 * a write whose answer was lost is simply retried.
 *
 * Cost follows use: a file nobody locked has no record, and this mount
 * touches the store at close only for files where it holds entries
 * (lockfile_t.held). The heartbeat starts with the mount's first lock.
 *
 * A record this mount empties stays, empty, for KEEP_MS after its last
 * unlock there, and is deleted then (on its version: anyone's change
 * meanwhile makes it theirs). SQLite locks and unlocks its database for
 * every transaction: on a kept record the next transaction's first lock
 * is a compare-and-set on the version this mount knows, and no other
 * mount can have locked in between without changing that version, so the
 * grant can be quiet (one round trip; see fs_ops.c, lk_revalidate). On a
 * deleted record it is a read, a put-if-absent and then a revalidation
 * read, and an absence proves nothing about who came and went.
 *
 * Liveness: a mount holding locks rewrites v/VOL/mount/ID every lease/3.
 * A mount that meets another mount's conflicting lock watches that
 * heartbeat's version on its own monotonic clock; unchanged for a whole
 * lease (the longer of ours and the one the holder wrote into its
 * heartbeat) means the holder is gone, and its entries are removed from
 * the record. A holder cut off from the ring for a lease therefore loses
 * its locks — as with NFS leases. It notices (fs_lk_check_lease: its last
 * renewal that landed is a lease old; or a record read back lacks its
 * entries) and, as an NFSv4 client does, marks the files lost: their
 * handles that took locks answer EIO (fs_ops.c), and it logs a warning.
 *
 * Waiting (F_SETLKW, flock without LOCK_NB) parks the fiber and polls
 * with back-off 50 ms → 1 s; a release within this mount wakes the local
 * waiters of that file at once. Never blocks the loop.
 */
#include "fs_i.h"
#include "fs_lock.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 1000
#define CAS_TRIES 64
#define IO_TRIES 4
#define KEEP_MS 5000
#define KEEP_MAX 64 /* empty records kept at once (each keeps its ~12 KiB cache) */

/* What this mount knows about one file's lock record. */
typedef struct {
    fs_t *fs;
    uint64_t ino;
    fiber_mutex_t mu;   /* this mount's changes of the record, one at a time */
    unsigned held;      /* our entries in the record after our last write */
    bool held_known;    /* held is what the store said, not a guess after a lost answer */
    unsigned users;     /* fibers using this struct */
    fs_lk_wait_t *wait; /* parked local waiters */
    /*
     * The record as our last write left it (or our last read found it),
     * to write the next change of this mount on without reading first:
     * the compare-and-set catches a record changed meanwhile. Never the
     * ground for refusing a lock: a conflict seen here is read again.
     */
    fs_lock_rec_t *cache;
    kv_version_t cache_ver;
    bool cache_valid, cache_absent;
    /*
     * Every change of the record since this mount's last grant on it was
     * this mount's own, written on the cached record under its version:
     * no other mount's lock change (nor the writes and name changes it
     * ordered) can have come between. Set at a grant, whose caller then
     * revalidates the file; cleared by anything else.
     */
    bool coherent;
    uint64_t keep_timer; /* armed while this mount keeps the record empty */
    /*
     * (owner, open file) of every fcntl lock taken here. A process's
     * locks go at its next close (FLUSH names the owner); an open file
     * description's own locks (F_OFD_SETLK: the owner is the open file)
     * go when the open file is released, which names no owner: what
     * this list remembers. A flush forgets its owner, so a release
     * drops only owners that no flush could name.
     */
    struct lk_pair {
        uint64_t owner, fh;
    } * pairs;
    size_t npairs, cap;
} lockfile_t;

/* Another mount's heartbeat as this mount last saw it. */
typedef struct {
    kv_version_t ver;
    uint64_t since_ms; /* our clock when ver was first seen */
    unsigned lease_ms;
} lease_t;

static lockfile_t *lockfile_get(fs_t *fs, uint64_t ino)
{
    lockfile_t *lf = fs_map_get(fs->lockfiles, ino, 0);
    if (!lf) {
        lf = calloc(1, sizeof(*lf));
        if (!lf)
            return NULL;
        lf->fs = fs;
        lf->ino = ino;
        if (fs_map_put(fs->lockfiles, ino, 0, lf) < 0) {
            free(lf); /* no cache yet */
            return NULL;
        }
    }
    lf->users++;
    return lf;
}

static void lockfile_free(lockfile_t *lf)
{
    free(lf->cache);
    free(lf->pairs);
    free(lf);
}

static void pair_add(lockfile_t *lf, uint64_t owner, uint64_t fh)
{
    for (size_t i = 0; i < lf->npairs; i++)
        if (lf->pairs[i].owner == owner && lf->pairs[i].fh == fh)
            return;
    if (lf->npairs == lf->cap) {
        size_t cap = lf->cap ? lf->cap * 2 : 4;
        struct lk_pair *p = realloc(lf->pairs, cap * sizeof(*p));
        if (!p)
            return; /* at worst an OFD lock stays until unmount or the lease */
        lf->pairs = p;
        lf->cap = cap;
    }
    lf->pairs[lf->npairs++] = (struct lk_pair){owner, fh};
}

/*
 * Forget the pairs of owner (any fh), or with by_fh those of fh, whose
 * owners go to out: at most cap a call (the rest stay for the next call).
 */
static size_t pair_take(lockfile_t *lf, uint64_t id, bool by_fh, uint64_t *out, size_t cap)
{
    size_t k = 0, n = 0;
    for (size_t i = 0; i < lf->npairs; i++) {
        bool hit = by_fh ? lf->pairs[i].fh == id : lf->pairs[i].owner == id;
        if (hit && by_fh && n == cap)
            hit = false; /* kept for the caller's next round */
        if (hit && by_fh)
            out[n++] = lf->pairs[i].owner;
        else if (!hit)
            lf->pairs[k++] = lf->pairs[i];
    }
    lf->npairs = k;
    return n;
}

static void lockfile_put(fs_t *fs, lockfile_t *lf)
{
    if (--lf->users == 0 && lf->held == 0 && !lf->wait && !lf->mu.held && !lf->keep_timer) {
        fs_map_remove(fs->lockfiles, lf->ino, 0);
        lockfile_free(lf);
    }
}

static void cache_set(lockfile_t *lf, const fs_lock_rec_t *r, kv_version_t ver, bool absent)
{
    if (!lf->cache && !(lf->cache = malloc(sizeof(*lf->cache)))) {
        lf->cache_valid = false;
        return;
    }
    lf->cache->count = r->count;
    memcpy(lf->cache->ent, r->ent, r->count * sizeof(r->ent[0]));
    lf->cache_ver = ver;
    lf->cache_absent = absent;
    lf->cache_valid = true;
}

bool fs_lk_holds(fs_t *fs, uint64_t ino)
{
    lockfile_t *lf = fs->lockfiles ? fs_map_get(fs->lockfiles, ino, 0) : NULL;
    return lf && lf->held > 0;
}

bool fs_lk_may_be_quiet(fs_t *fs, uint64_t ino)
{
    lockfile_t *lf = fs->lockfiles ? fs_map_get(fs->lockfiles, ino, 0) : NULL;
    /* rec_update_q keeps coherent only through a write on a cached, present record. */
    return lf && lf->coherent && lf->cache_valid && !lf->cache_absent;
}

/* ---- waiting ---- */

static void wait_timer(loop_t *loop, void *arg)
{
    (void)loop;
    fs_lk_wait_t *w = arg;
    if (!w->sleeping)
        return;
    w->sleeping = false;
    w->timer = 0;
    fiber_wake(w->fiber);
}

static void wait_end(fs_lk_wait_t *w)
{
    if (!w->sleeping)
        return;
    w->sleeping = false;
    if (w->timer)
        loop_timer_cancel(w->loop, w->timer);
    w->timer = 0;
    fiber_wake(w->fiber);
}

void fs_lk_interrupt(fs_lk_wait_t *w)
{
    w->interrupted = true;
    wait_end(w);
}

/* Park until ms passed, a local release or an interrupt. */
static void wait_sleep(fs_t *fs, lockfile_t *lf, fs_lk_wait_t *w, unsigned ms)
{
    w->loop = fs->loop;
    w->fiber = fiber_self();
    w->timer = loop_timer_add(fs->loop, ms, wait_timer, w);
    if (!w->timer)
        return;
    w->sleeping = true;
    w->next = lf->wait;
    lf->wait = w;
    while (w->sleeping)
        fiber_park();
    for (fs_lk_wait_t **p = &lf->wait; *p; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            break;
        }
    }
}

static void wake_local(lockfile_t *lf)
{
    for (fs_lk_wait_t *w = lf->wait; w; w = w->next)
        wait_end(w);
}

/* ---- heartbeat ---- */

/* ---- lost locks ---- */

static void lost_file(fs_t *fs, uint64_t ino, const char *why)
{
    fs_node_t *n = fs_node_find(fs, ino);
    if (n)
        n->lk_lost_seq = fs->lk_lost_seq;
    log_warn("fs",
             "inode %llx: this mount's locks are lost (%s): its processes get EIO on the "
             "files they locked until they close them",
             (unsigned long long)ino, why);
    if (fs->lk_lost_hook)
        fs->lk_lost_hook(fs, ino);
}

static int lose_each(uint64_t a, uint64_t b, void *value, void *arg)
{
    (void)b;
    fs_t *fs = arg;
    lockfile_t *lf = value;
    if (lf->held > 0)
        lost_file(fs, a, "heartbeat not renewed for a lease");
    return 0;
}

void fs_lk_check_lease(fs_t *fs)
{
    if (!fs->hb_started || fs->lk_stopping || fs->hb_lapse_ms == fs->hb_ok_ms + 1)
        return;
    if (!fs_lock_lease_lapsed(loop_now_ms(fs->loop), fs->hb_ok_ms, fs->lease_ms))
        return;
    fs->hb_lapse_ms = fs->hb_ok_ms + 1; /* once per lapse */
    fs->lk_lost_seq++;
    fs_map_each(fs->lockfiles, lose_each, fs);
}

/* ---- heartbeat ---- */

/*
 * Renew the heartbeat. Each put is conditional on the version our last
 * one left (the first on the key being absent): a put still in flight
 * when the unmount deletes the key, however late it lands, then fails its
 * condition instead of bringing the key back for good. After a failed
 * condition or an unknown outcome the version is read first, unless the
 * mount is stopping (then the key is the unmount's to delete).
 */
static int hb_put(fs_t *fs)
{
    char key[FS_KEY_MAX], val[64];
    fs_lock_key_mount(key, fs->vol, fs->mount_id);
    int len = snprintf(val, sizeof val, "dhtfs lease_ms=%u pid=%d", fs->lease_ms, (int)getpid());
    int rc = -EINTR;
    for (int attempt = 0; attempt < 2 && !fs->lk_stopping; attempt++) {
        if (fs->hb_ver_state == FS_HB_UNKNOWN) {
            uint8_t *cur = NULL;
            size_t n = 0;
            rc = fs_get(fs->kvc, key, &cur, &n, &fs->hb_ver);
            free(cur);
            if (rc < 0 && rc != -ENOENT)
                return rc;
            fs->hb_ver_state = rc == 0 ? FS_HB_KNOWN : FS_HB_NEW;
            if (fs->lk_stopping)
                return -EINTR;
        }
        /* Others count a lease from no earlier than when this put is sent. */
        uint64_t sent = loop_now_ms(fs->loop);
        kv_version_t wrote = {0};
        rc = fs_put(fs->kvc, key, val, (size_t)len,
                    fs->hb_ver_state == FS_HB_KNOWN ? KVC_PUT_IF_VERSION : KVC_PUT_IF_ABSENT,
                    fs->hb_ver, &wrote);
        if (rc == 0) {
            fs->hb_ver = wrote;
            fs->hb_ver_state = FS_HB_KNOWN;
            /* Renewed too late? Then others may have taken our locks meanwhile. */
            fs_lk_check_lease(fs);
            fs->hb_ok_ms = sent;
            return 0;
        }
        fs->hb_ver_state = FS_HB_UNKNOWN;
        if (rc != -ESTALE && rc != -EEXIST)
            return rc; /* no answer: the next tick reads the version first */
    }
    return rc;
}

static void hb_tick(loop_t *loop, void *arg);

static void hb_fiber(void *arg)
{
    fs_t *fs = arg;
    fs->hb_inflight = true;
    int rc = hb_put(fs);
    fs->hb_inflight = false;
    fs_lk_check_lease(fs);
    uint64_t now = loop_now_ms(fs->loop);
    if (rc < 0 && now - fs->hb_ok_ms >= fs->lease_ms)
        log_warn("fs",
                 "lock heartbeat not renewed for %llu ms (%s): other mounts may take "
                 "this mount's locks",
                 (unsigned long long)(now - fs->hb_ok_ms), strerror(-fs_store_errno(rc)));
}

/*
 * The cadence does not wait for the puts: a slow put must not stretch
 * the interval others measure (one put at a time, though).
 */
static void hb_tick(loop_t *loop, void *arg)
{
    (void)loop;
    fs_t *fs = arg;
    fs->hb_timer = 0;
    if (fs->lk_stopping)
        return;
    fs->hb_timer = loop_timer_add(fs->loop, fs->lease_ms / 3, hb_tick, fs);
    fs_lk_check_lease(fs);
    if (!fs->hb_inflight)
        fiber_spawn(hb_fiber, fs);
}

/* The heartbeat exists before our first entry does, so a waiter never mistakes us for dead. */
static int hb_start(fs_t *fs)
{
    if (fs->hb_started)
        return 0;
    if (fs->mount_id == 0) {
        while (fs->mount_id == 0)
            randombytes_buf(&fs->mount_id, sizeof fs->mount_id);
    }
    fs->hb_started = true;
    fs->hb_ok_ms = loop_now_ms(fs->loop); /* not a lapse: there was nothing to renew */
    int rc = hb_put(fs);
    if (rc < 0) {
        fs->hb_started = false;
        return fs_store_errno(rc);
    }
    log_info("fs", "mount id %016llx: lock heartbeat every %u ms", (unsigned long long)fs->mount_id,
             fs->lease_ms / 3);
    fs->hb_timer = loop_timer_add(fs->loop, fs->lease_ms / 3, hb_tick, fs);
    return 0;
}

/* Has mount's heartbeat stood still for a whole lease on our clock? */
static bool lease_expired(fs_t *fs, uint64_t mount)
{
    char key[FS_KEY_MAX];
    fs_lock_key_mount(key, fs->vol, mount);
    uint8_t *val = NULL;
    size_t len = 0;
    kv_version_t ver = {0};
    int rc = fs_get(fs->kvc, key, &val, &len, &ver);
    if (rc < 0 && rc != -ENOENT)
        return false; /* cannot tell: never take a lock on a guess */
    unsigned theirs = 0;
    if (rc == 0) {
        char s[64];
        size_t n = len < sizeof s - 1 ? len : sizeof s - 1;
        memcpy(s, val, n);
        s[n] = '\0';
        const char *p = strstr(s, "lease_ms=");
        if (p)
            theirs = (unsigned)strtoul(p + 9, NULL, 10);
        free(val);
    }
    if (rc == -ENOENT)
        memset(&ver, 0, sizeof ver);
    uint64_t now = loop_now_ms(fs->loop);
    lease_t *l = fs_map_get(fs->leases, mount, 0);
    if (!l) {
        l = calloc(1, sizeof(*l));
        if (!l || fs_map_put(fs->leases, mount, 0, l) < 0) {
            free(l);
            return false;
        }
        l->ver = ver;
        l->since_ms = now;
    } else if (kv_version_cmp(l->ver, ver) != 0) {
        l->ver = ver;
        l->since_ms = now;
    }
    l->lease_ms = fs->lease_ms;
    if (theirs > l->lease_ms && theirs <= 3600u * 1000)
        l->lease_ms = theirs;
    return now - l->since_ms >= l->lease_ms;
}

/* ---- the record ---- */

static bool kept_empty(const lockfile_t *lf)
{
    return lf->cache_valid && !lf->cache_absent && lf->cache->count == 0;
}

/* Delete the record this mount left empty, unless anyone changed it since. */
static void keep_delete(fs_t *fs, lockfile_t *lf)
{
    fiber_mutex_lock(&lf->mu);
    if (kept_empty(lf) && lf->held == 0) {
        char key[FS_KEY_MAX];
        fs_lock_key(key, fs->vol, lf->ino);
        int rc = fs_del(fs->kvc, key, KVC_PUT_IF_VERSION, lf->cache_ver);
        if (fs_outcome_unknown(rc)) /* once more: one that landed fails its condition */
            rc = fs_del(fs->kvc, key, KVC_PUT_IF_VERSION, lf->cache_ver);
        if (rc == 0)
            lf->cache_absent = true;
        else
            lf->cache_valid = false;
        lf->coherent = false;
    }
    fiber_mutex_unlock(&lf->mu);
}

static void keep_fiber(void *arg)
{
    lockfile_t *lf = arg;
    keep_delete(lf->fs, lf);
    lockfile_put(lf->fs, lf);
}

static void keep_expired(loop_t *loop, void *arg)
{
    (void)loop;
    lockfile_t *lf = arg;
    fs_t *fs = lf->fs;
    lf->keep_timer = 0;
    fs->lk_kept--;
    lf->users++;
    if (fiber_spawn(keep_fiber, lf) < 0)
        lockfile_put(fs, lf); /* left behind: an empty record costs others nothing */
}

static void keep_cancel(fs_t *fs, lockfile_t *lf)
{
    if (lf->keep_timer) {
        loop_timer_cancel(fs->loop, lf->keep_timer);
        lf->keep_timer = 0;
        fs->lk_kept--;
    }
}

/* May this mount keep lf's record, empty, for a while? Not while unmounting. */
static bool keep_may(fs_t *fs, const lockfile_t *lf)
{
    return !fs->lk_stopping && (lf->keep_timer || fs->lk_kept < KEEP_MAX);
}

/* Keep the record just left (or found) empty for KEEP_MS more (from now). */
static void keep_arm(fs_t *fs, lockfile_t *lf)
{
    keep_cancel(fs, lf);
    lf->keep_timer = loop_timer_add(fs->loop, KEEP_MS, keep_expired, lf);
    if (lf->keep_timer)
        fs->lk_kept++;
}

/* Read-decide-write of one record; edit returns 0 (see *changed) or an errno to stop. */
typedef int (*edit_fn)(fs_t *fs, fs_lock_rec_t *r, void *arg, bool *changed);

static bool cas_lost(int rc)
{
    return rc == -ESTALE || rc == -EEXIST || rc == -ENOENT || rc == -ENOTRECOVERABLE;
}

/*
 * Read (or take from the cache), edit, compare-and-set. *quiet (may be
 * NULL) tells whether lf->coherent still held once the change was written.
 */
static int rec_update_q(fs_t *fs, lockfile_t *lf, edit_fn edit, void *arg, bool *quiet)
{
    if (quiet)
        *quiet = false;
    char key[FS_KEY_MAX];
    fs_lock_key(key, fs->vol, lf->ino);
    fs_lock_rec_t *r = malloc(sizeof(*r));
    uint8_t *buf = malloc(FS_LOCK_REC_MAX);
    int rc = -ENOMEM;
    if (!r || !buf)
        goto out;
    int io_fail = 0;
    for (int tries = 0; tries < CAS_TRIES; tries++) {
        fiber_mutex_lock(&lf->mu);
        kv_version_t ver = {0};
        bool absent, cached = lf->cache_valid;
        if (cached) {
            r->count = lf->cache->count;
            memcpy(r->ent, lf->cache->ent, r->count * sizeof(r->ent[0]));
            ver = lf->cache_ver;
            absent = lf->cache_absent;
        } else {
            uint8_t *val = NULL;
            size_t len = 0;
            rc = fs_get(fs->kvc, key, &val, &len, &ver);
            absent = rc == -ENOENT;
            if (rc < 0 && !absent) {
                fiber_mutex_unlock(&lf->mu);
                if (++io_fail >= IO_TRIES)
                    break;
                fiber_sleep(fs->loop, BACKOFF_MIN_MS);
                continue;
            }
            r->count = 0;
            if (rc == 0) {
                rc = fs_lock_decode(val, len, r);
                free(val);
                if (rc < 0) {
                    /* Never overwrite what we cannot read: another mount's locks may be in it. */
                    log_warn("fs", "%s: undecodable lock record", key);
                    fiber_mutex_unlock(&lf->mu);
                    rc = -EIO;
                    goto out;
                }
            }
            if (lf->held_known && fs_lock_entries_lost(r, fs->mount_id, lf->held)) {
                /* Only another mount that took us for dead removes our entries. */
                fs->lk_lost_seq++;
                lost_file(fs, lf->ino, "another mount removed them");
                lf->held = 0;
            }
            if (absent)
                memset(&ver, 0, sizeof ver);
        }
        /* An absent record may have been created and deleted meanwhile. */
        if (!cached || absent)
            lf->coherent = false;
        bool changed = false;
        rc = edit(fs, r, arg, &changed);
        if (cached && (rc == -EAGAIN || (rc == 0 && !changed))) {
            /* A refusal or a "nothing to do" must rest on the record as it is now. */
            lf->cache_valid = false;
            fiber_mutex_unlock(&lf->mu);
            continue;
        }
        if (rc < 0 || !changed) {
            if (rc == 0) {
                lf->held = (unsigned)fs_lock_count_mount(r, fs->mount_id);
                lf->held_known = true;
                cache_set(lf, r, ver, absent);
                /* Left empty (by a write of ours whose answer was lost?): delete it in a while. */
                if (r->count == 0 && !absent && keep_may(fs, lf))
                    keep_arm(fs, lf);
            }
            fiber_mutex_unlock(&lf->mu);
            goto out;
        }
        kv_version_t wrote = {0};
        bool gone = r->count == 0;
        bool keep = gone && !absent && keep_may(fs, lf);
        if (gone && !keep) {
            rc = absent ? 0 : fs_del(fs->kvc, key, KVC_PUT_IF_VERSION, ver);
        } else {
            size_t n = fs_lock_encode(r, buf, FS_LOCK_REC_MAX);
            rc = n == 0 ? -EINVAL
                        : fs_put(fs->kvc, key, buf, n,
                                 absent ? KVC_PUT_IF_ABSENT : KVC_PUT_IF_VERSION, ver, &wrote);
        }
        if (rc == 0) {
            lf->held = (unsigned)fs_lock_count_mount(r, fs->mount_id);
            lf->held_known = true;
            cache_set(lf, r, wrote, gone && !keep);
            /* (Unmounting meanwhile: unmount_fiber deletes it once this returns.) */
            if (keep && !fs->lk_stopping)
                keep_arm(fs, lf);
            if (quiet)
                *quiet = lf->coherent;
        } else {
            lf->cache_valid = false;
            lf->coherent = false;
            /*
             * A failed condition may mean that this very write landed at an
             * earlier attempt whose answer was lost. Only if we hold entries
             * whether it landed or not does a record without any of ours
             * prove that another mount removed them.
             */
            if (lf->held == 0 || fs_lock_count_mount(r, fs->mount_id) == 0)
                lf->held_known = false;
        }
        fiber_mutex_unlock(&lf->mu);
        if (rc == 0 || rc == -EINVAL)
            goto out;
        if (cas_lost(rc))
            continue;
        /*
         * No answer: the write may have landed. held is only a hint that
         * makes close and unmount look at the record, so err on "maybe".
         */
        if (lf->held == 0)
            lf->held = 1;
        lf->held_known = false;
        if (++io_fail >= IO_TRIES)
            break;
        fiber_sleep(fs->loop, BACKOFF_MIN_MS);
    }
    rc = cas_lost(rc) ? -EIO : fs_store_errno(rc);
out:
    free(buf);
    free(r);
    return rc;
}

static int rec_update(fs_t *fs, lockfile_t *lf, edit_fn edit, void *arg)
{
    return rec_update_q(fs, lf, edit, arg, NULL);
}

typedef struct {
    const fs_lock_ent_t *want;
    bool unlock;
    fs_lock_ent_t conflict; /* set when edit_set answers -EAGAIN */
} set_t;

static int edit_set(fs_t *fs, fs_lock_rec_t *r, void *arg, bool *changed)
{
    (void)fs;
    set_t *s = arg;
    if (!s->unlock) {
        int c = fs_lock_conflict(r, s->want);
        if (c >= 0) {
            s->conflict = r->ent[c];
            return -EAGAIN;
        }
    }
    return fs_lock_apply(r, s->want, s->unlock, changed);
}

typedef struct {
    uint64_t mount, owner;
    fs_lock_kind_t kind;
    bool whole_mount;
} drop_t;

static int edit_drop(fs_t *fs, fs_lock_rec_t *r, void *arg, bool *changed)
{
    (void)fs;
    drop_t *d = arg;
    size_t n = d->whole_mount ? fs_lock_drop_mount(r, d->mount)
                              : fs_lock_drop_owner(r, d->mount, d->owner, d->kind);
    *changed = n > 0;
    return 0;
}

int fs_lk_set(fs_t *fs, uint64_t ino, fs_lock_ent_t *want, bool unlock, uint64_t fh,
              fs_lk_wait_t *wait, bool *quiet)
{
    if (quiet)
        *quiet = false;
    if (unlock && !fs_lk_holds(fs, ino))
        return 0; /* we hold nothing there: nothing to drop, no store traffic */
    if (!unlock) {
        int rc = hb_start(fs);
        if (rc < 0)
            return rc;
    }
    want->mount = fs->mount_id;
    lockfile_t *lf = lockfile_get(fs, ino);
    if (!lf)
        return -ENOMEM;
    unsigned backoff = BACKOFF_MIN_MS;
    int rc;
    for (;;) {
        if (wait && wait->interrupted) {
            rc = -EINTR;
            break;
        }
        if (fs->lk_stopping && !unlock) {
            rc = -EINTR;
            break;
        }
        set_t s = {want, unlock, {0}};
        rc = rec_update_q(fs, lf, edit_set, &s, quiet);
        if (rc != -EAGAIN)
            break;
        if (s.conflict.mount != fs->mount_id && lease_expired(fs, s.conflict.mount)) {
            log_warn("fs",
                     "inode %llx: mount %016llx holds a lock but its heartbeat stood still "
                     "for a lease: removing its locks",
                     (unsigned long long)ino, (unsigned long long)s.conflict.mount);
            drop_t d = {.mount = s.conflict.mount, .whole_mount = true};
            rc = rec_update(fs, lf, edit_drop, &d);
            if (rc < 0)
                break;
            continue;
        }
        if (!wait)
            break;
        wait_sleep(fs, lf, wait, backoff);
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
    if (rc == 0 && !unlock) {
        lf->coherent = true; /* the caller revalidates the file now */
        fs->lk_grants++;
    }
    if (rc == 0 && !unlock && want->kind == FS_LOCK_POSIX)
        pair_add(lf, want->owner, fh);
    if (rc == 0 && unlock)
        wake_local(lf);
    lockfile_put(fs, lf);
    return rc;
}

int fs_lk_get(fs_t *fs, uint64_t ino, const fs_lock_ent_t *want, fs_lock_ent_t *conflict,
              bool *found)
{
    *found = false;
    char key[FS_KEY_MAX];
    fs_lock_key(key, fs->vol, ino);
    uint8_t *val = NULL;
    size_t len = 0;
    int rc = fs_get(fs->kvc, key, &val, &len, NULL);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return fs_store_errno(rc);
    fs_lock_rec_t *r = malloc(sizeof(*r));
    if (!r) {
        free(val);
        return -ENOMEM;
    }
    rc = fs_lock_decode(val, len, r);
    free(val);
    if (rc < 0) {
        free(r);
        return -EIO;
    }
    fs_lock_ent_t w = *want;
    w.mount = fs->mount_id; /* 0 before our first lock: no entry has it */
    int c = fs_lock_conflict(r, &w);
    if (c >= 0) {
        *conflict = r->ent[c];
        *found = true;
    }
    free(r);
    return 0;
}

int fs_lk_drop_owner(fs_t *fs, uint64_t ino, uint64_t owner, fs_lock_kind_t kind)
{
    if (!fs_lk_holds(fs, ino))
        return 0;
    lockfile_t *lf = lockfile_get(fs, ino);
    if (!lf)
        return -ENOMEM;
    if (kind == FS_LOCK_POSIX)
        pair_take(lf, owner, false, NULL, 0);
    drop_t d = {.mount = fs->mount_id, .owner = owner, .kind = kind};
    int rc = rec_update(fs, lf, edit_drop, &d);
    if (rc == 0)
        wake_local(lf);
    lockfile_put(fs, lf);
    return rc;
}

int fs_lk_release_file(fs_t *fs, uint64_t ino, uint64_t fh)
{
    if (!fs_lk_holds(fs, ino))
        return 0;
    lockfile_t *lf = lockfile_get(fs, ino);
    if (!lf)
        return -ENOMEM;
    uint64_t owners[16];
    size_t n;
    int rc = 0;
    do {
        n = pair_take(lf, fh, true, owners, 16);
        for (size_t i = 0; i < n; i++) {
            drop_t d = {.mount = fs->mount_id, .owner = owners[i], .kind = FS_LOCK_POSIX};
            int r = rec_update(fs, lf, edit_drop, &d);
            if (r < 0 && rc == 0)
                rc = r;
        }
        if (n > 0)
            wake_local(lf);
    } while (n == 16);
    lockfile_put(fs, lf);
    return rc;
}

typedef struct {
    uint64_t *inos;
    size_t n, cap;
} inos_t;

static int collect(uint64_t a, uint64_t b, void *value, void *arg)
{
    (void)b;
    inos_t *v = arg;
    lockfile_t *lf = value;
    for (fs_lk_wait_t *w = lf->wait; w; w = w->next)
        w->interrupted = true;
    wake_local(lf);
    keep_cancel(lf->fs, lf);
    if (lf->held == 0 && !kept_empty(lf))
        return 0;
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        uint64_t *p = realloc(v->inos, cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        v->inos = p;
        v->cap = cap;
    }
    v->inos[v->n++] = a;
    return 0;
}

static void unmount_fiber(void *arg)
{
    fs_t *fs = arg;
    inos_t v = {0};
    fs_map_each(fs->lockfiles, collect, &v);
    for (size_t i = 0; i < v.n; i++) {
        lockfile_t *lf = lockfile_get(fs, v.inos[i]);
        if (!lf)
            continue;
        drop_t d = {.mount = fs->mount_id, .whole_mount = true};
        int rc = lf->held > 0 ? rec_update(fs, lf, edit_drop, &d) : 0;
        if (rc < 0)
            log_warn("fs",
                     "inode %llx: could not remove this mount's locks (%s); other mounts "
                     "take them after the lease",
                     (unsigned long long)v.inos[i], strerror(-rc));
        /* An unlock under way when the unmount began may have kept the record since. */
        keep_cancel(fs, lf);
        keep_delete(fs, lf);
        lockfile_put(fs, lf);
    }
    free(v.inos);
    /*
     * A heartbeat still in flight is let finish; one that outlives this
     * wait fails its condition (hb_put) once the delete has landed.
     */
    for (int i = 0; fs->hb_inflight && i < 1000; i++)
        fiber_sleep(fs->loop, 10);
    char key[FS_KEY_MAX];
    fs_lock_key_mount(key, fs->vol, fs->mount_id);
    fs_del(fs->kvc, key, KVC_PUT_ALWAYS, (kv_version_t){0});
}

void fs_lk_stop(fs_t *fs)
{
    fs->lk_stopping = true;
    if (fs->hb_timer)
        loop_timer_cancel(fs->loop, fs->hb_timer);
    fs->hb_timer = 0;
    if (fs->hb_started)
        fiber_spawn(unmount_fiber, fs);
}

static int free_lockfile(uint64_t a, uint64_t b, void *value, void *arg)
{
    (void)a;
    (void)b;
    (void)arg;
    lockfile_free(value);
    return 0;
}

static int free_lease(uint64_t a, uint64_t b, void *value, void *arg)
{
    (void)a;
    (void)b;
    (void)arg;
    free(value);
    return 0;
}

void fs_lk_release_all(fs_t *fs)
{
    if (fs->leases)
        fs_map_each(fs->leases, free_lease, NULL);
    if (fs->lockfiles)
        fs_map_each(fs->lockfiles, free_lockfile, NULL);
    fs_map_destroy(&fs->leases);
    fs_map_destroy(&fs->lockfiles);
}
