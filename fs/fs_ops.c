/*
 * fs_ops.c — the FUSE low-level operations.
 *
 * Each request's arguments are copied into an op and the request runs as a
 * fiber, so many requests wait on the store at once while the loop goes on.
 * Replies are sent from the fiber when its work is done. What a change of
 * names does to the store is fs_ns.c's business; this file only parses
 * requests, pins the nodes they use and answers them.
 */
#include "fs_ops.h"
#include "fs_fuse_io.h"
#include "fs_acl.h"
#include "fs_ahead.h"
#include "fs_i.h"
#include "fs_names.h"
#include "fs_ns.h"
#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/file.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <stddef.h>
#include <stdio.h>

#define XATTR_VALUE_MAX (64 * 1024)

typedef struct op op_t;
struct op {
    fs_t *fs;
    fuse_req_t req;
    void (*run)(op_t *);
    fuse_ino_t ino, ino2;
    char *name, *name2;
    size_t len, len2;
    mode_t mode;
    dev_t rdev;
    int flags, to_set;
    struct stat attr;
    off_t off;
    size_t size;
    struct fuse_file_info fi;
    struct fuse_file_info fi2; /* copy_file_range's destination (with off2) */
    off_t off2;
    bool has_fi;
    uint8_t *buf;
    bool plus;
    fs_node_t *pins[6]; /* nodes this request holds, given back when it ends */
    unsigned npins;
    struct flock lk; /* getlk/setlk/flock: the lock asked for */
    bool lk_flock, lk_sleep;
    fs_lk_wait_t lk_wait;
    bool kill; /* the caller may not keep set-id bits (fs_fuse_io.h, caller_may_not_keep_setid) */
};

typedef struct {
    fs_node_t *node;
    int flags;
    /*
     * A lock was granted through this open file (when fs_t.lk_lost_seq
     * was lock_seq); once its file's locks are found lost, reads, writes
     * and fsync through it answer EIO until it is closed (lost: sticky).
     */
    bool locked, lost;
    uint64_t lock_seq;
} handle_t;

static fs_t *fs_of(fuse_req_t req)
{
    return fuse_req_userdata(req);
}

/* Time spent per kind of request, for the exit log (where does a create go?). */
typedef struct {
    const void *run;
    uint64_t count, usec;
    uint64_t serial; /* store round trips waited for one after another (fiber_serial), summed */
    fs_store_stats_t store; /* the store operations these requests started */
} op_time_t;
static op_time_t op_times[32];

static uint64_t usec_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static op_time_t *op_time_slot(void (*run)(op_t *))
{
    for (size_t i = 0; i < sizeof(op_times) / sizeof(op_times[0]); i++) {
        if (op_times[i].run == (const void *)run || !op_times[i].run) {
            op_times[i].run = (const void *)run;
            return &op_times[i];
        }
    }
    return NULL;
}

static void op_fiber(void *arg)
{
    op_t *o = arg;
    uint64_t t0 = usec_now();
    op_time_t *slot = op_time_slot(o->run);
    fiber_set_tag(slot ? &slot->store : NULL);
    fiber_serial_set(0);
    o->run(o);
    if (slot) {
        slot->count++;
        slot->serial += fiber_serial();
        slot->usec += usec_now() - t0;
    }
    for (unsigned i = 0; i < o->npins; i++)
        fs_node_put(o->fs, o->pins[i]);
    free(o->name);
    free(o->name2);
    free(o->buf);
    free(o);
}

static op_t *op_new(fuse_req_t req, void (*run)(op_t *))
{
    op_t *o = calloc(1, sizeof(*o));
    if (!o) {
        fuse_reply_err(req, ENOMEM);
        return NULL;
    }
    o->fs = fs_of(req);
    o->req = req;
    o->run = run;
    return o;
}

static void op_go(op_t *o)
{
    if (fiber_spawn(op_fiber, o) < 0) {
        fuse_reply_err(o->req, ENOMEM);
        free(o->name);
        free(o->name2);
        free(o->buf);
        free(o);
    }
}

/* The node of ino, held until the request ends. */
static fs_node_t *op_node(op_t *o, uint64_t ino)
{
    if (o->npins == sizeof(o->pins) / sizeof(o->pins[0]))
        return NULL;
    fs_node_t *n = fs_node_get(o->fs, ino);
    if (n)
        o->pins[o->npins++] = n;
    return n;
}

static bool op_name(op_t *o, const char *name, char **dst, size_t *len)
{
    *len = strlen(name);
    *dst = strdup(name);
    if (!*dst) {
        fuse_reply_err(o->req, ENOMEM);
        free(o);
        return false;
    }
    return true;
}

/* A request about name in directory parent. */
static void op_in_dir(fuse_req_t req, fuse_ino_t parent, const char *name, void (*run)(op_t *))
{
    op_t *o = op_new(req, run);
    if (!o || !op_name(o, name, &o->name, &o->len))
        return;
    o->ino = parent;
    op_go(o);
}

/* For the metrics endpoint: error replies per kind of request (as op_times) and per errno. */
static uint64_t op_errors[sizeof(op_times) / sizeof(op_times[0])];
static uint64_t err_codes[192]; /* the last slot: any other */

static void reply_err(fuse_req_t req, int rc)
{
    int e = rc < 0 ? -rc : rc;
    if (e) {
        /* An op fiber's tag is its op_times slot's store counters (op_fiber). */
        const fs_store_stats_t *tag = fiber_tag();
        for (size_t i = 0; tag && i < sizeof(op_times) / sizeof(op_times[0]); i++)
            if (&op_times[i].store == tag)
                op_errors[i]++;
        size_t n = sizeof err_codes / sizeof err_codes[0];
        err_codes[(size_t)e < n - 1 ? (size_t)e : n - 1]++;
    }
    fuse_reply_err(req, e);
}

static handle_t *handle_of(const struct fuse_file_info *fi)
{
    return (handle_t *)(uintptr_t)fi->fh;
}

/*
 * Were the locks taken through h lost (another mount took this mount for
 * dead and removed them)? Then, as NFSv4 does, I/O through it fails until
 * it is closed: its process believes it still excludes the others.
 */
static bool handle_lost(fs_t *fs, handle_t *h)
{
    if (!h->locked)
        return false;
    if (!h->lost) {
        fs_lk_check_lease(fs);
        h->lost = h->node->lk_lost_seq > h->lock_seq;
    }
    return h->lost;
}

static void fill_entry(fs_t *fs, fs_node_t *n, struct fuse_entry_param *e)
{
    memset(e, 0, sizeof(*e));
    e->ino = n->ino;
    e->generation = 1;
    fs_node_to_stat(fs, n, &e->attr);
    e->attr_timeout = fs->attr_timeout;
    e->entry_timeout = fs->entry_timeout;
}

/*
 * The kernel is given name in dir, to trust for the entry timeout: noted
 * so that a lock granted on a file of dir can take it back (lk_names).
 * The kernel starts its timeout when it reads the answer, a little after
 * this; the second of margin covers that.
 */
static void names_note(fs_t *fs, uint64_t dir, const char *name, size_t len)
{
    if (fs->names && fs->entry_timeout > 0)
        fs_names_note(fs->names, dir, name, len, fs_now_ms(fs),
                      (uint64_t)(fs->entry_timeout * 1000) + 1000);
}

/* n's name in dir goes to the kernel. */
static void entry_given(fs_t *fs, fs_node_t *n, uint64_t dir, const char *name, size_t len)
{
    n->nlookup++;
    n->parent = dir;
    names_note(fs, dir, name, len);
}

static void reply_entry(op_t *o, fs_node_t *n, uint64_t dir, const char *name, size_t len)
{
    struct fuse_entry_param e;
    fill_entry(o->fs, n, &e);
    if (fuse_reply_entry(o->req, &e) == 0)
        entry_given(o->fs, n, dir, name, len);
}

/*
 * Did a lock coherence point of dir pass since since_ms? Then what a
 * lookup that started at since_ms found may predate it: the kernel gets
 * it with an entry timeout of 0, to be asked again at its next use.
 */
static bool names_checked_since(fs_t *fs, uint64_t dir, uint64_t since_ms)
{
    return fs->names && fs_names_checked_at(fs->names, dir) >= since_ms;
}

static void set_time(int64_t *s, uint32_t *ns, struct timespec ts)
{
    *s = ts.tv_sec;
    *ns = (uint32_t)ts.tv_nsec;
}

/*
 * What a write or truncate by a caller without CAP_FSETID takes away when
 * we handle it (FUSE_HANDLE_KILLPRIV_V2, fs_fuse_io.h), as the kernel's
 * VFS does (setattr_should_drop_suidgid, Linux 6.2 on): set-user-ID, and
 * set-group-ID when group execute is on or the caller is not in the
 * file's group.
 */
static uint32_t mode_killed(uint32_t mode, bool in_group)
{
    mode &= ~(uint32_t)S_ISUID;
    if ((mode & S_ISGID) && ((mode & S_IXGRP) || !in_group))
        mode &= ~(uint32_t)S_ISGID;
    return mode;
}

/*
 * Is the caller of req in group gid (its own or a supplementary one), or
 * root (in_group_or_capable)? Supplementary groups are read from /proc, so
 * only for a set-group-ID file without group execute; a caller whose
 * groups cannot be read counts as outside (the bit goes).
 */
static bool caller_in_group(fuse_req_t req, uint32_t gid)
{
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    if (ctx->uid == 0 || ctx->gid == gid)
        return true;
    gid_t some[64], *groups = some;
    int cap = 64, n = fuse_req_getgroups(req, cap, some);
    if (n > cap && (groups = malloc((size_t)n * sizeof(*groups))) != NULL) {
        cap = n;
        n = fuse_req_getgroups(req, cap, groups);
    } else if (!groups) {
        groups = some;
    }
    bool in = false;
    for (int i = 0; i < n && i < cap && !in; i++)
        in = groups[i] == gid;
    if (groups != some)
        free(groups);
    return in;
}

#define XATTR_CAPS "security.capability"

typedef struct {
    fuse_req_t req;
    bool setid;   /* clear the set-id bits too (not only file capabilities) */
    bool changed; /* out: the record changed */
    struct timespec now;
} killpriv_t;

/* The mode a change by k's caller leaves (in: the record's mode and group). */
static uint32_t killpriv_mode(const killpriv_t *k, uint32_t mode, uint32_t gid)
{
    if (!k->setid || !(mode & (S_ISUID | S_ISGID)))
        return mode;
    return mode_killed(mode, (mode & S_IXGRP) || caller_in_group(k->req, gid));
}

static int mutate_killpriv(fs_inode_t *in, void *arg)
{
    killpriv_t *k = arg;
    uint32_t mode = killpriv_mode(k, in->mode, in->gid);
    bool caps = fs_xattr_find(in, XATTR_CAPS) != NULL;
    if (mode == in->mode && !caps)
        return 1; /* nothing to take: no write */
    in->mode = mode;
    if (caps)
        fs_xattr_remove(in, XATTR_CAPS);
    set_time(&in->ctime_s, &in->ctime_ns, k->now);
    k->changed = true;
    return 0;
}

/*
 * Before a write, a copy into the file or an fallocate that changes it
 * (the VFS's file_remove_privs comes first too), or at an O_TRUNC open of
 * an empty file: take the set-id bits if setid, and file capabilities.
 * Almost every file has neither: that is decided on the record at hand
 * (with a mode change still deferred), and only a file that has them pays
 * a record update.
 */
static int kill_privs(fs_t *fs, fuse_req_t req, fs_node_t *n, bool setid)
{
    killpriv_t k = {req, setid, false, fs_now()};
    uint32_t mode = fs_node_mode(n);
    uint32_t gid = (n->over.set & FS_SET_GID) ? n->over.gid : n->in.gid;
    if (killpriv_mode(&k, mode, gid) == mode && !fs_xattr_find(&n->in, XATTR_CAPS))
        return 0;
    fiber_mutex_lock(&n->lock);
    int rc = fs_node_update(fs, n, mutate_killpriv, &k);
    fiber_mutex_unlock(&n->lock);
    /*
     * The reply to a write or an open carries no attributes: the kernel
     * must read the new mode again (told before the reply, so that the
     * caller's next stat sees it).
     */
    if (rc == 0 && k.changed)
        fuse_lowlevel_notify_inval_inode(fs->se, n->ino, -1, 0);
    return rc;
}

/*
 * copy_file_range and fallocate come without the kernel's word on
 * CAP_FSETID (it sends that only with writes and O_TRUNC opens): the
 * caller may keep set-id bits if it is root.
 */
static bool caller_may_not_keep_setid(fuse_req_t req)
{
    return fuse_req_ctx(req)->uid != 0;
}

/* ---- lookup, attributes ---- */

static fs_node_t *node_or_reply(op_t *o, uint64_t ino, bool fresh)
{
    fs_node_t *n = op_node(o, ino);
    if (!n) {
        reply_err(o->req, -ENOMEM);
        return NULL;
    }
    int rc = fs_node_load(o->fs, n, fresh);
    if (rc < 0) {
        reply_err(o->req, rc == -ENOENT ? -ESTALE : rc);
        return NULL;
    }
    return n;
}

static void run_lookup(op_t *o)
{
    fs_t *fs = o->fs;
    int rc = fs_ns_check_name(o->len);
    if (rc < 0) {
        reply_err(o->req, rc);
        return;
    }
    fs_dirent_t ent;
    uint64_t t0 = fs_now_ms(fs);
    rc = fs_dir_lookup(fs, o->ino, o->name, o->len, false, &ent);
    if (rc == -ENOENT) {
        /* A negative entry lets the kernel remember the miss for entry_timeout. */
        struct fuse_entry_param e;
        memset(&e, 0, sizeof(e));
        e.entry_timeout = names_checked_since(fs, o->ino, t0) ? 0 : fs->entry_timeout;
        if (fuse_reply_entry(o->req, &e) == 0 && e.entry_timeout > 0)
            names_note(fs, o->ino, o->name, o->len);
        return;
    }
    if (rc < 0) {
        reply_err(o->req, rc);
        return;
    }
    fs_node_t *n = op_node(o, ent.ino);
    if (!n) {
        reply_err(o->req, -ENOMEM);
        return;
    }
    fs_ahead_lookup(fs, o->ino, o->name, o->len, n);
    rc = fs_node_load(fs, n, false);
    if (rc < 0) {
        reply_err(o->req, rc);
        return;
    }
    struct fuse_entry_param e;
    fill_entry(fs, n, &e);
    if (names_checked_since(fs, o->ino, t0))
        e.entry_timeout = 0;
    if (fuse_reply_entry(o->req, &e) == 0)
        entry_given(fs, n, o->ino, o->name, o->len);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    op_in_dir(req, parent, name, run_lookup);
}

static void forget_one(fs_t *fs, fuse_ino_t ino, uint64_t nlookup)
{
    fs_node_t *n = fs_node_find(fs, ino);
    if (!n)
        return;
    n->nlookup = n->nlookup > nlookup ? n->nlookup - nlookup : 0;
    fs_node_maybe_free(fs, n);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
    forget_one(fs_of(req), ino, nlookup);
    fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
    for (size_t i = 0; i < count; i++)
        forget_one(fs_of(req), forgets[i].ino, forgets[i].nlookup);
    fuse_reply_none(req);
}

static void reply_attr(fs_t *fs, fuse_req_t req, fs_node_t *n)
{
    struct stat st;
    fs_node_to_stat(fs, n, &st);
    fuse_reply_attr(req, &st, fs->attr_timeout);
}

static void run_getattr(op_t *o)
{
    fs_node_t *n = node_or_reply(o, o->ino, false);
    if (n)
        reply_attr(o->fs, o->req, n);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)fi;
    op_t *o = op_new(req, run_getattr);
    if (!o)
        return;
    o->ino = ino;
    op_go(o);
}

/*
 * The change of a setattr but its size, as an edit of absolute values.
 * false if it asks for anything else than a size and those, so that it
 * cannot be deferred (fs_node_defer_attrs).
 */
static bool setattr_as_edit(const op_t *o, struct timespec now, fs_attr_edit_t *e)
{
    int set = o->to_set;
    *e = (fs_attr_edit_t){.set = FS_SET_CTIME,
                          .mode = (uint32_t)o->attr.st_mode & 07777,
                          .uid = (uint32_t)o->attr.st_uid,
                          .gid = (uint32_t)o->attr.st_gid,
                          .atime = set & FUSE_SET_ATTR_ATIME_NOW ? now : o->attr.st_atim,
                          .mtime = set & FUSE_SET_ATTR_MTIME_NOW ? now : o->attr.st_mtim,
                          .ctime = set & FUSE_SET_ATTR_CTIME ? o->attr.st_ctim : now};
    if (set & FUSE_SET_ATTR_MODE)
        e->set |= FS_SET_MODE;
    if (set & FUSE_SET_ATTR_UID)
        e->set |= FS_SET_UID;
    if (set & FUSE_SET_ATTR_GID)
        e->set |= FS_SET_GID;
    if (set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW))
        e->set |= FS_SET_ATIME;
    if (set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW))
        e->set |= FS_SET_MTIME;
    const int known = FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID |
                      FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME |
                      FUSE_SET_ATTR_MTIME_NOW | FUSE_SET_ATTR_CTIME;
    return !(set & ~known);
}

typedef struct {
    op_t *o;
    struct timespec now;
    uint32_t chunk_size;
} setattr_edit_t;

static int mutate_setattr(fs_inode_t *in, void *arg)
{
    setattr_edit_t *s = arg;
    op_t *o = s->o;
    int set = o->to_set;
    if (set & FUSE_SET_ATTR_SIZE) {
        uint64_t old_size = in->size;
        in->size = (uint64_t)o->attr.st_size;
        if (in->size == 0 && S_ISREG(in->mode))
            in->flags |= FS_INODE_INLINE; /* no chunks left: small again */
        if ((in->flags & FS_INODE_INLINE) && in->data_len > in->size)
            in->data_len = (uint32_t)in->size;
        /* fs_data_truncate deleted the listed chunks past the new end first. */
        if (in->size < old_size)
            fs_extents_truncate(&in->ext, fs_chunk_count(in->size, s->chunk_size));
        set_time(&in->mtime_s, &in->mtime_ns, s->now);
    }
    /* After the size: a time set explicitly wins over the truncation's. */
    fs_attr_edit_t e;
    setattr_as_edit(o, s->now, &e);
    uint32_t gid = in->gid; /* the group a chown's caller is checked against: the old one */
    int rc = fs_attr_edit_apply(in, &e);
    /*
     * Ours to do when we handle it (fs_fuse_io.h): a chown or truncate
     * that asks (FATTR_KILL_SUIDGID, libfuse's KILL_SUID bit) clears the
     * set-id bits; both remove file capabilities.
     */
    if (rc == 0 && (set & FUSE_SET_ATTR_KILL_SUID)) {
        killpriv_t k = {o->req, true, false, s->now};
        in->mode = killpriv_mode(&k, in->mode, gid);
    }
    if (rc == 0 && o->fs->killpriv &&
        (set & (FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) &&
        fs_xattr_find(in, XATTR_CAPS))
        fs_xattr_remove(in, XATTR_CAPS);
    return rc;
}

static void run_setattr(op_t *o)
{
    fs_t *fs = o->fs;
    /*
     * A size change cuts the chunks the file holds now, so it reads the
     * inode afresh. Anything else updates it by compare-and-set, which
     * reloads and applies the change again if the copy we have is stale:
     * the copy we already have is as good a start, one round trip less.
     */
    fs_node_t *n = node_or_reply(o, o->ino, (o->to_set & FUSE_SET_ATTR_SIZE) != 0);
    if (!n)
        return;
    if ((o->to_set & FUSE_SET_ATTR_SIZE) && !S_ISREG(n->in.mode)) {
        reply_err(o->req, S_ISDIR(n->in.mode) ? -EISDIR : -EINVAL);
        return;
    }
    /*
     * On a file with unflushed writes, the change rides with their flush.
     * A chown asks to take privileges (fs_fuse_io.h) from every file:
     * most have none, and then it may ride too; the record it is applied
     * to otherwise decides (mutate_setattr).
     */
    int to_set = o->to_set;
    uint32_t mode = fs_node_mode(n);
    if (!(mode & (S_ISUID | S_ISGID)) && !fs_xattr_find(&n->in, XATTR_CAPS))
        o->to_set &= ~FUSE_SET_ATTR_KILL_SUID;
    fs_attr_edit_t e;
    bool deferred = setattr_as_edit(o, fs_now(), &e) && fs_node_defer_attrs(n, &e);
    o->to_set = to_set;
    if (deferred) {
        n->remote_change = false;
        reply_attr(fs, o->req, n);
        return;
    }
    /*
     * Pending writes first: a new size must cut what the file really holds,
     * and times set now must not be overwritten by those writes' flush.
     */
    int rc = fs_data_dirty(n) ? fs_data_flush(fs, n) : 0;
    if (rc == 0 && (o->to_set & FUSE_SET_ATTR_SIZE))
        rc = fs_data_truncate(fs, n, n->size, (uint64_t)o->attr.st_size);
    if (rc == 0) {
        setattr_edit_t s = {o, fs_now(), fs->chunk_size};
        fiber_mutex_lock(&n->lock);
        if (S_ISDIR(n->in.mode) && (o->to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)))
            fs_ns_times_set(n);
        rc = fs_node_update(fs, n, mutate_setattr, &s);
        fiber_mutex_unlock(&n->lock);
    }
    if (rc < 0) {
        reply_err(o->req, rc);
        return;
    }
    /* Our own writes stay in step with the kernel's cache. */
    n->remote_change = false;
    reply_attr(fs, o->req, n);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
    (void)fi;
    op_t *o = op_new(req, run_setattr);
    if (!o)
        return;
    o->ino = ino;
    o->attr = *attr;
    o->to_set = to_set;
    op_go(o);
}

static void run_readlink(op_t *o)
{
    fs_node_t *n = node_or_reply(o, o->ino, false);
    if (!n)
        return;
    if (!S_ISLNK(n->in.mode) || !n->in.target)
        reply_err(o->req, -EINVAL);
    else
        fuse_reply_readlink(o->req, n->in.target);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
    op_t *o = op_new(req, run_readlink);
    if (!o)
        return;
    o->ino = ino;
    op_go(o);
}

/* ---- creating ---- */

static fs_ns_cred_t op_cred(op_t *o)
{
    const struct fuse_ctx *ctx = fuse_req_ctx(o->req);
    /* With FUSE_CAP_DONT_MASK the umask is ours to apply (unless a default ACL rules). */
    return (fs_ns_cred_t){ctx->uid, ctx->gid, o->fs->apply_umask ? (uint32_t)ctx->umask : 0};
}

/* Hold a node handed over with a reference until the request ends. */
static void op_adopt(op_t *o, fs_node_t *n)
{
    if (o->npins == sizeof(o->pins) / sizeof(o->pins[0])) {
        /* Every caller pins few nodes; a request holding this many is a bug. */
        fs_node_put(o->fs, n);
        return;
    }
    o->pins[o->npins++] = n;
}

static void run_mknod(op_t *o)
{
    fs_node_t *n;
    int rc = fs_ns_make(o->fs, o->ino, o->name, o->len, o->mode, o->rdev, o->name2, op_cred(o), &n);
    if (rc < 0) {
        reply_err(o->req, rc);
        return;
    }
    op_adopt(o, n);
    reply_entry(o, n, o->ino, o->name, o->len);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
    op_t *o = op_new(req, run_mknod);
    if (!o || !op_name(o, name, &o->name, &o->len))
        return;
    o->ino = parent;
    o->mode = mode;
    o->rdev = rdev;
    op_go(o);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    op_t *o = op_new(req, run_mknod);
    if (!o || !op_name(o, name, &o->name, &o->len))
        return;
    o->ino = parent;
    o->mode = (mode & 07777) | S_IFDIR;
    op_go(o);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
    if (strlen(link) > FS_SYMLINK_MAX) {
        fuse_reply_err(req, ENAMETOOLONG);
        return;
    }
    op_t *o = op_new(req, run_mknod);
    if (!o || !op_name(o, name, &o->name, &o->len))
        return;
    if (!(o->name2 = strdup(link))) {
        free(o->name);
        free(o);
        fuse_reply_err(req, ENOMEM);
        return;
    }
    o->ino = parent;
    o->mode = S_IFLNK | 0777;
    op_go(o);
}

static int open_node(op_t *o, fs_node_t *n, struct fuse_file_info *fi);

static void run_create(op_t *o)
{
    fs_t *fs = o->fs;
    fs_node_t *n;
    int rc = fs_ns_make(fs, o->ino, o->name, o->len, o->mode, 0, NULL, op_cred(o), &n);
    if (rc == 0)
        op_adopt(o, n);
    if (rc == -EEXIST && !(o->fi.flags & O_EXCL)) {
        /*
         * Another mount made the name while this kernel trusted its
         * absence. Opening that file here would skip the kernel's check
         * of the file's permissions (it checked the directory only):
         * ESTALE has the VFS look the name up again (LOOKUP_REVAL) and
         * open what it finds the usual way. (Telling the kernel to drop
         * its entry now would wait for the directory lock this create
         * holds.)
         */
        reply_err(o->req, -ESTALE);
        return;
    }
    if (rc == 0)
        rc = open_node(o, n, &o->fi);
    if (rc < 0) {
        reply_err(o->req, rc);
        return;
    }
    struct fuse_entry_param e;
    fill_entry(fs, n, &e);
    if (fuse_reply_create(o->req, &e, &o->fi) == 0) {
        n->just_created = n->open == 1;
        entry_given(fs, n, o->ino, o->name, o->len);
    } else {
        /* The kernel never got the handle. */
        n->open--;
        free(handle_of(&o->fi));
    }
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
    op_t *o = op_new(req, run_create);
    if (!o || !op_name(o, name, &o->name, &o->len))
        return;
    o->ino = parent;
    o->mode = (mode & 07777) | S_IFREG;
    o->fi = *fi;
    op_go(o);
}
/* ---- removing, links and renames ---- */

static void run_unlink(op_t *o)
{
    reply_err(o->req, fs_ns_unlink(o->fs, o->ino, o->name, o->len));
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    op_in_dir(req, parent, name, run_unlink);
}

static void run_rmdir(op_t *o)
{
    reply_err(o->req, fs_ns_rmdir(o->fs, o->ino, o->name, o->len));
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    op_in_dir(req, parent, name, run_rmdir);
}

static void run_link(op_t *o)
{
    fs_node_t *n;
    int rc = fs_ns_link(o->fs, o->ino, o->ino2, o->name, o->len, &n);
    if (rc < 0) {
        reply_err(o->req, rc);
        return;
    }
    op_adopt(o, n);
    reply_entry(o, n, o->ino2, o->name, o->len);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
    op_t *o = op_new(req, run_link);
    if (!o || !op_name(o, newname, &o->name, &o->len))
        return;
    o->ino = ino;
    o->ino2 = newparent;
    op_go(o);
}

static void run_rename(op_t *o)
{
    int rc = fs_ns_rename(o->fs, o->ino, o->name, o->len, o->ino2, o->name2, o->len2,
                          (unsigned)o->flags);
    if (rc == 0) {
        /* The kernel moves its entry to the new name, and trusts it as long as before. */
        names_note(o->fs, o->ino2, o->name2, o->len2);
        if (o->flags & RENAME_EXCHANGE)
            names_note(o->fs, o->ino, o->name, o->len);
    }
    reply_err(o->req, rc);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags)
{
    op_t *o = op_new(req, run_rename);
    if (!o || !op_name(o, name, &o->name, &o->len))
        return;
    o->len2 = strlen(newname);
    if (!(o->name2 = strdup(newname))) {
        free(o->name);
        free(o);
        fuse_reply_err(req, ENOMEM);
        return;
    }
    o->ino = parent;
    o->ino2 = newparent;
    o->flags = (int)flags;
    op_go(o);
}

/* ---- files ---- */

static int open_node(op_t *o, fs_node_t *n, struct fuse_file_info *fi)
{
    fs_t *fs = o->fs;
    bool trunc = (fi->flags & O_TRUNC) && (fi->flags & O_ACCMODE) != O_RDONLY;
    if (trunc && n->size == 0 && fs->killpriv) {
        /* Nothing to cut, but what a truncate takes away still goes. */
        int rc = kill_privs(fs, o->req, n, o->kill);
        if (rc < 0)
            return rc;
    } else if (trunc && n->size > 0) {
        /* The mode the kernel holds: with a change still deferred. */
        uint32_t mode = fs_node_mode(n);
        int rc = fs_data_truncate(fs, n, n->size, 0);
        if (rc == 0) {
            o->to_set = FUSE_SET_ATTR_SIZE | (o->kill ? FUSE_SET_ATTR_KILL_SUID : 0);
            o->attr.st_size = 0;
            setattr_edit_t s = {o, fs_now(), fs->chunk_size};
            fiber_mutex_lock(&n->lock);
            rc = fs_node_update(fs, n, mutate_setattr, &s);
            fiber_mutex_unlock(&n->lock);
        }
        if (rc < 0)
            return rc;
        if (n->in.mode != mode) /* an open's reply has no attributes */
            fuse_lowlevel_notify_inval_inode(fs->se, n->ino, -1, 0);
    }
    handle_t *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    h->node = n;
    h->flags = fi->flags;
    n->open++;
    fi->fh = (uint64_t)(uintptr_t)h;
    /* The kernel may keep its page cache unless another mount changed the file. */
    fi->keep_cache = !n->remote_change;
    n->remote_change = false;
    return 0;
}

static void run_open(op_t *o)
{
    /* Close-to-open: every open reads the record afresh. */
    fs_node_t *n = node_or_reply(o, o->ino, true);
    if (!n)
        return;
    if (S_ISDIR(n->in.mode)) {
        reply_err(o->req, -EISDIR);
        return;
    }
    bool changed = n->remote_change;
    int rc = open_node(o, n, &o->fi);
    if (rc < 0) {
        reply_err(o->req, rc);
        return;
    }
    if (fuse_reply_open(o->req, &o->fi) != 0) {
        n->open--;
        free(handle_of(&o->fi));
        return;
    }
    if (changed)
        fuse_lowlevel_notify_inval_inode(o->fs->se, n->ino, -1, 0);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    op_t *o = op_new(req, run_open);
    if (!o)
        return;
    o->ino = ino;
    o->fi = *fi;
    o->kill = fs_io_take_kill(o->fs);
    op_go(o);
}

static void run_read(op_t *o)
{
    handle_t *h = handle_of(&o->fi);
    if (handle_lost(o->fs, h)) {
        reply_err(o->req, -EIO);
        return;
    }
    uint8_t *buf = malloc(o->size ? o->size : 1);
    if (!buf) {
        reply_err(o->req, -ENOMEM);
        return;
    }
    size_t got;
    int rc = fs_data_read(o->fs, h->node, (uint64_t)o->off, o->size, buf, &got);
    if (rc < 0)
        reply_err(o->req, rc);
    else
        fuse_reply_buf(o->req, (const char *)buf, got);
    free(buf);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    (void)ino;
    op_t *o = op_new(req, run_read);
    if (!o)
        return;
    o->fi = *fi;
    o->size = size;
    o->off = off;
    op_go(o);
}

static void run_write(op_t *o)
{
    handle_t *h = handle_of(&o->fi);
    if (handle_lost(o->fs, h)) {
        reply_err(o->req, -EIO);
        return;
    }
    int rc = o->fs->killpriv ? kill_privs(o->fs, o->req, h->node, o->kill) : 0;
    if (rc == 0)
        rc = fs_data_write(o->fs, h->node, (uint64_t)o->off, o->buf, o->size);
    if (rc < 0)
        reply_err(o->req, rc);
    else
        fuse_reply_write(o->req, o->size);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    (void)ino;
    op_t *o = op_new(req, run_write);
    if (!o)
        return;
    o->buf = malloc(size ? size : 1);
    if (!o->buf) {
        free(o);
        fuse_reply_err(req, ENOMEM);
        return;
    }
    memcpy(o->buf, buf, size);
    o->fi = *fi;
    o->size = size;
    o->off = off;
    o->kill = fs_io_take_kill(o->fs);
    op_go(o);
}

/* FLUSH (each close) and, with o->flags set, FSYNC. */
static void run_flush(op_t *o)
{
    handle_t *h = handle_of(&o->fi);
    bool lost = handle_lost(o->fs, h);
    if (lost && o->flags) {
        reply_err(o->req, -EIO);
        return;
    }
    int rc = fs_data_flush(o->fs, h->node);
    /* A change after a close is not deferred to the release, whose error reaches nobody. */
    h->node->just_created = false;
    /* close() drops the process's fcntl locks on the file (POSIX), on every mount's view. */
    if (o->fi.flush && fs_lk_holds(o->fs, h->node->ino)) {
        int lrc = fs_lk_drop_owner(o->fs, h->node->ino, o->fi.lock_owner, FS_LOCK_POSIX);
        if (lrc < 0)
            log_warn("fs", "inode %llx: dropping locks at close failed: %s",
                     (unsigned long long)h->node->ino, strerror(-lrc));
    }
    /* close(2) reports the lost lock too: the process's exclusion did not hold. */
    reply_err(o->req, lost && rc == 0 ? -EIO : rc);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    op_t *o = op_new(req, run_flush);
    if (!o)
        return;
    o->fi = *fi;
    op_go(o);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    (void)ino;
    (void)datasync;
    op_t *o = op_new(req, run_flush);
    if (!o)
        return;
    o->fi = *fi;
    o->flags = 1;
    op_go(o);
}

static void run_release(op_t *o)
{
    fs_t *fs = o->fs;
    handle_t *h = handle_of(&o->fi);
    fs_node_t *n = h->node;
    free(h);
    int rc = 0;
    /* The last close of an open file description drops its flock and its OFD locks. */
    if (fs_lk_holds(fs, n->ino)) {
        int lrc = fs_lk_release_file(fs, n->ino, o->fi.fh);
        if (lrc == 0 && o->fi.flock_release)
            lrc = fs_lk_drop_owner(fs, n->ino, o->fi.lock_owner, FS_LOCK_FLOCK);
        if (lrc < 0)
            log_warn("fs", "inode %llx: dropping locks at the last close failed: %s",
                     (unsigned long long)n->ino, strerror(-lrc));
    }
    if (n->orphan && n->open == 1) {
        n->open = 0;
        n->orphan = false;
        fs_ns_file_unlinked(fs, n);
    } else {
        /* flush() normally wrote everything; a failed one left data to retry. */
        if (fs_data_dirty(n))
            rc = fs_data_flush(fs, n);
        n->open--;
    }
    n->just_created = false;
    reply_err(o->req, rc);
    fs_node_maybe_free(fs, n);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    op_t *o = op_new(req, run_release);
    if (!o)
        return;
    o->fi = *fi;
    op_go(o);
}

/* ---- holes: fallocate and lseek ---- */

/*
 * fallocate(2). A ring cannot set space aside for one file, so mode 0
 * and KEEP_SIZE reserve nothing: mode 0 grows the size (the new range is
 * a hole, st_blocks unchanged) and KEEP_SIZE alone only checks the file;
 * a later write can still fail with ENOSPC when the nodes are full.
 * PUNCH_HOLE (with KEEP_SIZE, as the kernel requires) and ZERO_RANGE
 * both make the range a hole: whole chunks leave the store, edges are
 * zeroed in place. The kernel drops its cached pages of the range itself.
 */
static void run_fallocate(op_t *o)
{
    fs_t *fs = o->fs;
    handle_t *h = handle_of(&o->fi);
    fs_node_t *n = h->node;
    int mode = o->flags;
    uint64_t off = (uint64_t)o->off, len = o->size;
    int rc = 0;
    if (!S_ISREG(n->in.mode))
        rc = -ENODEV;
    else if (len > (uint64_t)INT64_MAX - off)
        rc = -EFBIG;
    /* Only what changes the file takes privileges away (as the kernel's file_modified). */
    if (rc == 0 && fs->killpriv &&
        (!(mode & FALLOC_FL_KEEP_SIZE) || (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))))
        rc = kill_privs(fs, o->req, n, o->kill);
    if (rc == 0 && (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)))
        rc = fs_data_zero(fs, n, off, len);
    if (rc == 0 && !(mode & FALLOC_FL_KEEP_SIZE))
        rc = fs_data_extend(fs, n, off + len);
    if (rc == 0)
        n->remote_change = false; /* our own change: the kernel's cache is in step */
    reply_err(o->req, rc);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                         struct fuse_file_info *fi)
{
    (void)ino;
    const int known = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE;
    /* Punching must keep the size (fallocate(2)); punching and zeroing at once means nothing. */
    if ((mode & ~known) || ((mode & FALLOC_FL_PUNCH_HOLE) &&
                            (!(mode & FALLOC_FL_KEEP_SIZE) || (mode & FALLOC_FL_ZERO_RANGE)))) {
        fuse_reply_err(req, EOPNOTSUPP);
        return;
    }
    if (offset < 0 || length <= 0) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    op_t *o = op_new(req, run_fallocate);
    if (!o)
        return;
    o->fi = *fi;
    o->flags = mode;
    o->off = offset;
    o->size = (size_t)length;
    o->kill = caller_may_not_keep_setid(req);
    op_go(o);
}

static void run_lseek(op_t *o)
{
    handle_t *h = handle_of(&o->fi);
    uint64_t out;
    int rc = fs_data_seek(o->fs, h->node, (uint64_t)o->off, o->flags == SEEK_DATA, &out);
    if (rc < 0)
        reply_err(o->req, rc);
    else
        fuse_reply_lseek(o->req, (off_t)out);
}

static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
                     struct fuse_file_info *fi)
{
    (void)ino;
    /* The kernel answers SEEK_SET, SEEK_CUR and SEEK_END itself. */
    if (whence != SEEK_DATA && whence != SEEK_HOLE) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    if (off < 0) {
        fuse_reply_err(req, ENXIO);
        return;
    }
    op_t *o = op_new(req, run_lseek);
    if (!o)
        return;
    o->fi = *fi;
    o->flags = whence;
    o->off = off;
    op_go(o);
}

/* ---- copy_file_range ---- */

static void run_copy(op_t *o)
{
    handle_t *in = handle_of(&o->fi);
    handle_t *out = handle_of(&o->fi2);
    uint64_t copied;
    int rc = 0;
    if (!S_ISREG(in->node->in.mode) || !S_ISREG(out->node->in.mode))
        rc = -EINVAL;
    if (rc == 0 && o->fs->killpriv)
        rc = kill_privs(o->fs, o->req, out->node, o->kill);
    if (rc == 0)
        rc = fs_data_copy(o->fs, in->node, (uint64_t)o->off, out->node, (uint64_t)o->off2, o->size,
                          &copied);
    if (rc < 0) {
        reply_err(o->req, rc);
        return;
    }
    out->node->remote_change = false;
    fuse_reply_write(o->req, (size_t)copied);
}

static void op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
                               struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
                               struct fuse_file_info *fi_out, size_t len, int flags)
{
    (void)ino_in;
    (void)ino_out;
    if (flags != 0 || off_in < 0 || off_out < 0) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    if (len > (uint64_t)INT64_MAX - (uint64_t)off_out)
        len = (size_t)((uint64_t)INT64_MAX - (uint64_t)off_out);
    op_t *o = op_new(req, run_copy);
    if (!o)
        return;
    o->fi = *fi_in;
    o->off = off_in;
    o->fi2 = *fi_out;
    o->off2 = off_out;
    o->size = len;
    o->kill = caller_may_not_keep_setid(req);
    op_go(o);
}

/* ---- directories ---- */

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    fi->fh = 0;
    fi->cache_readdir = 0;
    fuse_reply_open(req, fi);
}

static size_t add_entry(fuse_req_t req, bool plus, char *buf, size_t rem, const char *name,
                        const struct fuse_entry_param *e, off_t off)
{
    if (plus)
        return fuse_add_direntry_plus(req, buf, rem, name, e, off);
    return fuse_add_direntry(req, buf, rem, name, &e->attr, off);
}

static void run_readdir(op_t *o)
{
    fs_t *fs = o->fs;
    char *buf = malloc(o->size);
    if (!buf) {
        reply_err(o->req, -ENOMEM);
        return;
    }
    size_t used = 0;
    uint64_t off = (uint64_t)o->off;
    struct fuse_entry_param e;
    memset(&e, 0, sizeof(e));
    e.attr.st_mode = S_IFDIR;
    int rc = 0;
    if (off == 0) {
        e.attr.st_ino = o->ino;
        used += add_entry(o->req, o->plus, buf + used, o->size - used, ".", &e, 1);
        off = 1;
    }
    if (off == 1) {
        size_t sz = add_entry(o->req, o->plus, NULL, 0, "..", &e, 2);
        if (used + sz <= o->size) {
            e.attr.st_ino = FS_ROOT_INO;
            used += add_entry(o->req, o->plus, buf + used, o->size - used, "..", &e, 2);
            off = 2;
        }
    }
    uint64_t from = off <= FS_OFF_FIRST_ENTRY ? 0 : fs_off_next_hash(off);
    bool full = off < 2;
    while (!full && from != UINT64_MAX) {
        fs_dirent_t *ents;
        size_t count;
        uint64_t next = from;
        rc = fs_dir_read(fs, o->ino, &next, o->off == 0, &ents, &count);
        if (rc < 0)
            break;
        fs_node_t **nodes = NULL;
        if (o->plus && count > 0) {
            nodes = calloc(count, sizeof(*nodes));
            size_t k = 0;
            /* Only as many attributes as can fit in the reply. */
            size_t room = used;
            for (; nodes && k < count; k++) {
                room += fuse_add_direntry_plus(o->req, NULL, 0, ents[k].name, NULL, 0);
                if (room > o->size)
                    break;
                nodes[k] = fs_node_get(fs, ents[k].ino);
                if (!nodes[k])
                    break;
            }
            if (nodes)
                fs_nodes_load(fs, nodes, k);
        }
        size_t i = 0;
        while (i < count) {
            /* Names sharing a hash share an offset: send all of them or none. */
            size_t j = i + 1;
            while (j < count && ents[j].hash == ents[i].hash)
                j++;
            size_t need = 0;
            for (size_t k = i; k < j; k++)
                need += add_entry(o->req, o->plus, NULL, 0, ents[k].name, &e, 0);
            if (used + need > o->size) {
                full = true;
                break;
            }
            for (size_t k = i; k < j; k++) {
                struct fuse_entry_param pe;
                memset(&pe, 0, sizeof(pe));
                fs_node_t *n = nodes ? nodes[k] : NULL;
                if (n && n->have) {
                    fill_entry(fs, n, &pe);
                } else {
                    pe.attr.st_ino = ents[k].ino;
                    pe.attr.st_mode = (mode_t)DTTOIF(ents[k].type);
                }
                used += add_entry(o->req, o->plus, buf + used, o->size - used, ents[k].name, &pe,
                                  (off_t)fs_off_from_hash(ents[k].hash));
                if (o->plus && pe.ino)
                    entry_given(fs, n, o->ino, ents[k].name, ents[k].name_len);
            }
            i = j;
        }
        if (nodes) {
            for (size_t k = 0; k < count; k++)
                fs_node_put(fs, nodes[k]);
            free(nodes);
        }
        free(ents);
        if (!full)
            from = next;
    }
    if (rc < 0 && used == 0)
        reply_err(o->req, rc);
    else
        fuse_reply_buf(o->req, buf, used);
    free(buf);
}

static void op_readdir_any(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus)
{
    op_t *o = op_new(req, run_readdir);
    if (!o)
        return;
    o->ino = ino;
    o->size = size;
    o->off = off;
    o->plus = plus;
    op_go(o);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    (void)fi;
    op_readdir_any(req, ino, size, off, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                           struct fuse_file_info *fi)
{
    (void)fi;
    op_readdir_any(req, ino, size, off, true);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    (void)fi;
    fuse_reply_err(req, 0);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    (void)ino;
    (void)datasync;
    (void)fi;
    /* Directory changes are acknowledged by a write quorum before they return. */
    fuse_reply_err(req, 0);
}

/* ---- extended attributes ---- */

static int xattr_name_ok(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > 255)
        return -ERANGE;
    /* Of system.* only the ACLs are ours; others mean a feature we lack. */
    if (strncmp(name, "system.", 7) == 0 && strcmp(name, FS_ACL_ACCESS) != 0 &&
        strcmp(name, FS_ACL_DEFAULT) != 0)
        return -EOPNOTSUPP;
    return 0;
}

typedef struct {
    const char *name;
    const uint8_t *value;
    size_t size;
    int flags;
    bool remove;
    struct timespec now;
} xattr_edit_t;

/*
 * An access ACL and the mode's permission bits say the same thing: setting
 * the ACL sets the bits, and an ACL the bits express fully is not kept (as
 * `setfacl -b` leaves a plain file). A default ACL only makes sense on a
 * directory.
 */
static int mutate_acl(fs_inode_t *in, xattr_edit_t *x)
{
    bool access = strcmp(x->name, FS_ACL_ACCESS) == 0;
    if (!access && !S_ISDIR(in->mode))
        return x->remove ? -ENODATA : -EACCES;
    int rc = 0;
    if (x->remove) {
        rc = fs_xattr_remove(in, x->name);
    } else {
        bool exists = fs_xattr_find(in, x->name) != NULL;
        if ((x->flags & XATTR_CREATE) && exists)
            return -EEXIST;
        if ((x->flags & XATTR_REPLACE) && !exists)
            return -ENODATA;
        if (fs_acl_check(x->value, x->size) < 0)
            return -EINVAL;
        int plain = 0;
        if (access) {
            uint32_t mode = in->mode;
            plain = fs_acl_to_mode(x->value, x->size, &mode);
            in->mode = mode;
        }
        if (plain == 1) {
            rc = fs_xattr_remove(in, x->name);
            if (rc == -ENODATA)
                rc = 0;
        } else {
            rc = fs_xattr_set(in, x->name, x->value, x->size);
        }
    }
    if (rc == 0)
        set_time(&in->ctime_s, &in->ctime_ns, x->now);
    return rc;
}

static int mutate_xattr(fs_inode_t *in, void *arg)
{
    xattr_edit_t *x = arg;
    int rc;
    if (strcmp(x->name, FS_ACL_ACCESS) == 0 || strcmp(x->name, FS_ACL_DEFAULT) == 0)
        return mutate_acl(in, x);
    if (x->remove) {
        rc = fs_xattr_remove(in, x->name);
    } else {
        bool exists = fs_xattr_find(in, x->name) != NULL;
        if ((x->flags & XATTR_CREATE) && exists)
            return -EEXIST;
        if ((x->flags & XATTR_REPLACE) && !exists)
            return -ENODATA;
        rc = fs_xattr_set(in, x->name, x->value, x->size);
    }
    if (rc == 0)
        set_time(&in->ctime_s, &in->ctime_ns, x->now);
    return rc;
}

static void run_xattr_change(op_t *o)
{
    fs_node_t *n = node_or_reply(o, o->ino, false);
    if (!n)
        return;
    xattr_edit_t x = {o->name, o->buf, o->size, o->flags, o->buf == NULL, fs_now()};
    fiber_mutex_lock(&n->lock);
    int rc = fs_node_update(o->fs, n, mutate_xattr, &x);
    fiber_mutex_unlock(&n->lock);
    reply_err(o->req, rc == -ENOSPC ? -ENOSPC : rc);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                        size_t size, int flags)
{
    int rc = xattr_name_ok(name);
    if (rc == 0 && size > XATTR_VALUE_MAX)
        rc = -E2BIG;
    if (rc < 0) {
        reply_err(req, rc);
        return;
    }
    op_t *o = op_new(req, run_xattr_change);
    if (!o || !op_name(o, name, &o->name, &o->len))
        return;
    o->buf = malloc(size ? size : 1);
    if (!o->buf) {
        free(o->name);
        free(o);
        fuse_reply_err(req, ENOMEM);
        return;
    }
    memcpy(o->buf, value, size);
    o->ino = ino;
    o->size = size;
    o->flags = flags;
    op_go(o);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
    int rc = xattr_name_ok(name);
    if (rc < 0) {
        reply_err(req, rc);
        return;
    }
    op_t *o = op_new(req, run_xattr_change);
    if (!o || !op_name(o, name, &o->name, &o->len))
        return;
    o->ino = ino;
    op_go(o);
}

static void run_getxattr(op_t *o)
{
    fs_node_t *n = node_or_reply(o, o->ino, false);
    if (!n)
        return;
    if (!o->name) {
        size_t need = fs_xattr_list(&n->in, NULL, 0);
        if (o->size == 0) {
            fuse_reply_xattr(o->req, need);
        } else if (need > o->size) {
            reply_err(o->req, -ERANGE);
        } else {
            char *buf = malloc(need ? need : 1);
            if (!buf) {
                reply_err(o->req, -ENOMEM);
                return;
            }
            fs_xattr_list(&n->in, buf, need);
            fuse_reply_buf(o->req, buf, need);
            free(buf);
        }
        return;
    }
    const fs_xattr_t *x = fs_xattr_find(&n->in, o->name);
    if (!x)
        reply_err(o->req, -ENODATA);
    else if (o->size == 0)
        fuse_reply_xattr(o->req, x->value_len);
    else if (x->value_len > o->size)
        reply_err(o->req, -ERANGE);
    else
        fuse_reply_buf(o->req, (const char *)x->value, x->value_len);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
    int rc = xattr_name_ok(name);
    if (rc < 0) {
        reply_err(req, rc == -EOPNOTSUPP ? -ENODATA : rc);
        return;
    }
    op_t *o = op_new(req, run_getxattr);
    if (!o || !op_name(o, name, &o->name, &o->len))
        return;
    o->ino = ino;
    o->size = size;
    op_go(o);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
    op_t *o = op_new(req, run_getxattr);
    if (!o)
        return;
    o->ino = ino;
    o->size = size;
    op_go(o);
}

/* ---- the rest ---- */

static void run_access(op_t *o)
{
    fs_node_t *n = node_or_reply(o, o->ino, false);
    if (!n)
        return;
    const struct fuse_ctx *ctx = fuse_req_ctx(o->req);
    int mask = o->flags;
    int rc = 0;
    if (mask != F_OK) {
        struct stat st; /* with changes not yet written (fs_node_defer_attrs) */
        fs_node_to_stat(o->fs, n, &st);
        mode_t mode = st.st_mode;
        unsigned bits;
        if (ctx->uid == 0) {
            /* root may do anything but execute a file nobody may execute */
            bits = 06 | ((mode & 0111) ? 01 : 0);
        } else if (ctx->uid == st.st_uid) {
            bits = (mode >> 6) & 7;
        } else if (ctx->gid == st.st_gid) {
            bits = (mode >> 3) & 7;
        } else {
            bits = mode & 7;
        }
        if (((mask & R_OK) && !(bits & 4)) || ((mask & W_OK) && !(bits & 2)) ||
            ((mask & X_OK) && !(bits & 1)))
            rc = -EACCES;
    }
    reply_err(o->req, rc);
}

static void op_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
    op_t *o = op_new(req, run_access);
    if (!o)
        return;
    o->ino = ino;
    o->flags = mask;
    op_go(o);
}

static void run_statfs(op_t *o)
{
    fs_t *fs = o->fs;
    struct statvfs sv;
    int rc = fs_ring_capacity(fs, &sv);
    if (rc < 0)
        reply_err(o->req, rc);
    else
        fuse_reply_statfs(o->req, &sv);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
    op_t *o = op_new(req, run_statfs);
    if (!o)
        return;
    o->ino = ino;
    op_go(o);
}

/* ---- locks shared by every mount (fs_locks.c) ---- */

/*
 * Invalidate, from a thread, the kernel's pages and attributes of ino (if
 * inode) and the names of dir listed in names: the kernel may wait for a
 * page locked by a read, or (for a name) for its directory's lock held by
 * a lookup, that only this loop can answer, so the loop must keep running
 * meanwhile. The fiber waits, so the lock is granted only after the stale
 * pages and names are gone.
 */
typedef struct {
    struct fuse_session *se;
    fuse_ino_t ino, dir;
    bool inode;
    char *names; /* NUL-separated */
    size_t names_len;
    int fd[2];
    fiber_t *fiber;
    bool done;
} inval_t;

static void *inval_thread(void *arg)
{
    inval_t *iv = arg;
    if (iv->inode)
        fuse_lowlevel_notify_inval_inode(iv->se, iv->ino, 0, 0);
    for (size_t at = 0; at < iv->names_len;) {
        size_t len = strlen(iv->names + at);
        /* -ENOENT: the kernel no longer has it, which is as good. */
        fuse_lowlevel_notify_inval_entry(iv->se, iv->dir, iv->names + at, len);
        at += len + 1;
    }
    char c = 1;
    ssize_t w = write(iv->fd[1], &c, 1);
    (void)w;
    return NULL;
}

static void inval_done(loop_t *loop, void *zsock, int fd, void *arg)
{
    (void)loop;
    (void)zsock;
    inval_t *iv = arg;
    char c;
    if (read(fd, &c, 1) == 1 && !iv->done) {
        iv->done = true;
        fiber_wake(iv->fiber);
    }
}

static void inval_off_loop(fs_t *fs, inval_t *iv)
{
    iv->se = fs->se;
    iv->fiber = fiber_self();
    if (!fs->se || pipe2(iv->fd, O_CLOEXEC | O_NONBLOCK) < 0)
        return;
    pthread_t t;
    if (loop_add_fd(fs->loop, iv->fd[0], inval_done, iv) == 0) {
        if (pthread_create(&t, NULL, inval_thread, iv) == 0) {
            while (!iv->done)
                fiber_park();
            pthread_join(t, NULL);
        }
        loop_remove_fd(fs->loop, iv->fd[0]);
    }
    close(iv->fd[0]);
    close(iv->fd[1]);
}

typedef struct {
    char *buf;
    size_t len, cap;
    bool failed;
} names_buf_t;

static void names_collect(const char *name, size_t len, void *arg)
{
    names_buf_t *b = arg;
    if (b->failed)
        return;
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1024;
        while (cap < b->len + len + 1)
            cap *= 2;
        char *p = realloc(b->buf, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->buf = p;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, name, len);
    b->buf[b->len + len] = '\0';
    b->len += len + 1;
}

/*
 * The names of dir the kernel may still trust from before this coherence
 * point, into iv (to be dropped). Names are cheap to look up again, and
 * whether another mount changed the directory cannot be told without
 * reading every bucket, so all of them go: a lock grant costs one lookup
 * per name the kernel uses afterwards, in that directory only. When the
 * table lost some of dir's names, waits until the kernel stops trusting
 * them (at most the entry timeout).
 */
static void lk_names(fs_t *fs, uint64_t dir, inval_t *iv)
{
    if (!dir || fs->entry_timeout <= 0)
        return;
    if (fs->names)
        fs_names_checked(fs->names, dir, fs_now_ms(fs));
    names_buf_t b = {0};
    uint64_t until =
        fs->names ? fs_names_each(fs->names, dir, fs_now_ms(fs), names_collect, &b) : 0;
    if (b.failed || !fs->names) {
        /* Out of memory: wait until the kernel stops trusting any of them instead. */
        until = fs_now_ms(fs) + (uint64_t)(fs->entry_timeout * 1000) + 1000;
        b.len = 0;
    }
    uint64_t now = fs_now_ms(fs);
    if (until > now)
        fiber_sleep(fs->loop, (unsigned)(until - now));
    iv->dir = dir;
    iv->names = b.buf;
    iv->names_len = b.len;
}

/*
 * Locks are the coherence points between mounts (as NFS makes them):
 * before a lock is dropped our writes reach the store, and once one is
 * granted the file's record is read afresh, so a reader under a lock never
 * sees pages cached before another mount's writes under the same lock;
 * the names of the file's directory that the kernel holds are dropped
 * too, so that SQLite's access(2) of its journal under the lock sees
 * whether the journal exists now, not when the name was cached.
 *
 * quiet: n was read afresh after the request came in, and no other mount
 * changed the lock record since this mount's previous grant on the file
 * (fs_lk_set's quiet), when both the file and the names were revalidated:
 * every write or name change that another mount's unlock could order
 * before this grant came before that one, and the read sees the writes of
 * lockless writers up to this request. Otherwise both are revalidated now.
 */
static void lk_revalidate(op_t *o, fs_node_t *n, bool quiet)
{
    inval_t iv = {.ino = n->ino};
    if ((quiet || fs_node_load(o->fs, n, true) == 0) && n->remote_change) {
        n->remote_change = false;
        iv.inode = true;
    }
    if (!quiet)
        lk_names(o->fs, n->parent, &iv);
    if (iv.inode || iv.names_len > 0)
        inval_off_loop(o->fs, &iv);
    free(iv.names);
}

/* This mount's locks on ino were lost: the kernel's pages must not answer reads any more. */
typedef struct {
    fs_t *fs;
    uint64_t ino;
} lost_t;

static void lost_fiber(void *arg)
{
    lost_t *l = arg;
    inval_t iv = {.ino = l->ino, .inode = true};
    inval_off_loop(l->fs, &iv);
    free(l);
}

static void lk_lost_pages(fs_t *fs, uint64_t ino)
{
    lost_t *l = malloc(sizeof(*l));
    if (!l)
        return;
    *l = (lost_t){fs, ino};
    if (fiber_spawn(lost_fiber, l) < 0)
        free(l);
}

static void lk_interrupted(fuse_req_t req, void *data)
{
    (void)req;
    fs_lk_interrupt(data);
}

static fs_lock_ent_t lk_want(op_t *o)
{
    fs_lock_ent_t e = {.owner = o->fi.lock_owner, .pid = (uint32_t)o->lk.l_pid};
    if (o->lk_flock) {
        e.kind = FS_LOCK_FLOCK;
        e.start = 0;
        e.end = FS_LOCK_EOF;
    } else {
        e.kind = FS_LOCK_POSIX;
        /* The kernel hands ranges from SEEK_SET, l_len 0 meaning "to the end, however far". */
        e.start = o->lk.l_start < 0 ? 0 : (uint64_t)o->lk.l_start;
        e.end = o->lk.l_len <= 0 ? FS_LOCK_EOF : e.start + (uint64_t)o->lk.l_len - 1;
    }
    e.excl = o->lk.l_type == F_WRLCK;
    return e;
}

typedef struct {
    fs_t *fs;
    fs_node_t *n;
    int rc;
} reload_job_t;

static void reload_job(void *arg)
{
    reload_job_t *j = arg;
    j->rc = fs_node_load(j->fs, j->n, true);
}

static void run_setlk(op_t *o)
{
    handle_t *h = handle_of(&o->fi);
    fs_node_t *n = h->node;
    bool unlock = o->lk.l_type == F_UNLCK;
    fs_lock_ent_t want = lk_want(o);
    int rc = 0;
    if (unlock && fs_lk_holds(o->fs, n->ino))
        rc = fs_data_flush(o->fs, n);
    /*
     * A grant revalidates the file. The read goes out with the lock's
     * compare-and-set, not after it, and counts when no other mount
     * changed the lock record since our previous grant (lk_revalidate):
     * one round trip per lock instead of two, and SQLite's journal names
     * stay cached while no other mount locks the database. A grant that
     * cannot be quiet (fs_lk_may_be_quiet: e.g. this mount's first on
     * the file, or one after the record it kept empty was deleted) reads after
     * it instead: a read sent early would only be read again.
     */
    fiber_group_t g = {0, NULL, 0};
    reload_job_t rj = {o->fs, n, -EIO};
    uint64_t grants = o->fs->lk_grants;
    bool early = rc == 0 && !unlock && fs_lk_may_be_quiet(o->fs, n->ino) &&
                 fiber_group_spawn(&g, reload_job, &rj) == 0;
    bool quiet = false;
    if (rc == 0) {
        if (o->lk_sleep && !unlock)
            fuse_req_interrupt_func(o->req, lk_interrupted, &o->lk_wait);
        rc = fs_lk_set(o->fs, n->ino, &want, unlock, o->fi.fh, o->lk_sleep ? &o->lk_wait : NULL,
                       &quiet);
    }
    if (early)
        fiber_group_wait(&g);
    if (rc == 0 && !unlock) {
        if (!h->locked) {
            h->locked = true;
            h->lock_seq = o->fs->lk_lost_seq;
        }
        /*
         * Any other grant here meanwhile (this file's, or any, to keep it
         * simple) may have read the record after our read was sent and
         * vouched for a state our read predates.
         */
        lk_revalidate(o, n, early && quiet && rj.rc == 0 && o->fs->lk_grants == grants + 1);
    }
    if (!o->fs->se)
        return; /* unmounted meanwhile: nobody to answer */
    reply_err(o->req, rc);
}

static void op_lk_any(fuse_req_t req, struct fuse_file_info *fi, const struct flock *lock,
                      bool flock, int sleep, void (*run)(op_t *))
{
    op_t *o = op_new(req, run);
    if (!o)
        return;
    o->fi = *fi;
    o->lk = *lock;
    o->lk_flock = flock;
    o->lk_sleep = sleep != 0;
    op_go(o);
}

static void op_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lock,
                     int sleep)
{
    (void)ino;
    op_lk_any(req, fi, lock, false, sleep, run_setlk);
}

static void op_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op)
{
    (void)ino;
    struct flock lk = {.l_whence = SEEK_SET, .l_pid = fuse_req_ctx(req)->pid};
    switch (op & ~LOCK_NB) {
    case LOCK_SH:
        lk.l_type = F_RDLCK;
        break;
    case LOCK_EX:
        lk.l_type = F_WRLCK;
        break;
    case LOCK_UN:
        lk.l_type = F_UNLCK;
        break;
    default:
        fuse_reply_err(req, EINVAL);
        return;
    }
    op_lk_any(req, fi, &lk, true, !(op & LOCK_NB), run_setlk);
}

/*
 * F_GETLK. l_pid is the holder's pid only when the holder is this mount;
 * a pid from another mount (maybe another machine) would name an
 * unrelated local process, so it is reported as 0.
 */
static void run_getlk(op_t *o)
{
    handle_t *h = handle_of(&o->fi);
    fs_lock_ent_t want = lk_want(o), c;
    bool found;
    int rc = fs_lk_get(o->fs, h->node->ino, &want, &c, &found);
    if (rc < 0) {
        reply_err(o->req, rc);
        return;
    }
    struct flock out = {.l_type = F_UNLCK, .l_whence = SEEK_SET};
    if (found) {
        out.l_type = c.excl ? F_WRLCK : F_RDLCK;
        out.l_start = (off_t)(c.start > INT64_MAX ? INT64_MAX : c.start);
        out.l_len = c.end >= (uint64_t)INT64_MAX ? 0 : (off_t)(c.end - c.start + 1);
        out.l_pid = c.mount == o->fs->mount_id ? (pid_t)c.pid : 0;
    }
    fuse_reply_lock(o->req, &out);
}

static void op_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lock)
{
    (void)ino;
    op_lk_any(req, fi, lock, false, 0, run_getlk);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
    fs_t *fs = userdata;
    /* Writes are sent up to 1 MiB at a time (max_pages follows max_write). */
    conn->max_write = 1024 * 1024;
    conn->max_readahead = 1024 * 1024;
    /*
     * The first way of taking set-id bits off on our side (libfuse's
     * FUSE_CAP_HANDLE_KILLPRIV) stays off: fs_fuse_io.c negotiates the
     * second, which also spares every write a GETXATTR.
     */
    conn->want &= ~FUSE_CAP_HANDLE_KILLPRIV;
    /* Requests are read whole by fs_fuse_io.c, which must see every one. */
    conn->want &= ~FUSE_CAP_SPLICE_READ;
    if (conn->capable & FUSE_CAP_READDIRPLUS)
        conn->want |= FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO;
    if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
        conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
    conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
    fs->lk_lost_hook = lk_lost_pages;
    /* Locks go to us (fs_locks.c) so that they hold across mounts, not only in this kernel. */
    if (conn->capable & FUSE_CAP_POSIX_LOCKS)
        conn->want |= FUSE_CAP_POSIX_LOCKS;
    if (conn->capable & FUSE_CAP_FLOCK_LOCKS)
        conn->want |= FUSE_CAP_FLOCK_LOCKS;
    /*
     * POSIX ACLs: the kernel checks them (this turns default_permissions
     * on) and we store them, keep the mode in step and inherit default
     * ACLs. A default ACL replaces the umask, so the umask comes to us
     * (DONT_MASK) and fs_ns_make applies it when there is none.
     */
    if ((conn->capable & FUSE_CAP_POSIX_ACL) && (conn->capable & FUSE_CAP_DONT_MASK)) {
        conn->want |= FUSE_CAP_POSIX_ACL | FUSE_CAP_DONT_MASK;
        fs->apply_umask = true;
    }
}

/* The name of a kind of request, by its run function. */
static const char *op_kind_name(const void *run)
{
    static const struct {
        void (*run)(op_t *);
        const char *name;
    } names[] = {
        {run_lookup, "lookup"},
        {run_getattr, "getattr"},
        {run_setattr, "setattr"},
        {run_readlink, "readlink"},
        {run_mknod, "mknod"},
        {run_create, "create"},
        {run_unlink, "unlink"},
        {run_rmdir, "rmdir"},
        {run_link, "link"},
        {run_rename, "rename"},
        {run_open, "open"},
        {run_read, "read"},
        {run_write, "write"},
        {run_flush, "flush"},
        {run_release, "release"},
        {run_readdir, "readdir"},
        {run_xattr_change, "xattr_change"},
        {run_getxattr, "getxattr"},
        {run_access, "access"},
        {run_statfs, "statfs"},
        {run_fallocate, "fallocate"},
        {run_lseek, "lseek"},
        {run_copy, "copy_file_range"},
        {run_setlk, "setlk"},
        {run_getlk, "getlk"},
    };
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++)
        if ((const void *)names[k].run == run)
            return names[k].name;
    return "other";
}

void fs_ops_log_times(void)
{
    for (size_t i = 0; i < sizeof(op_times) / sizeof(op_times[0]) && op_times[i].run; i++) {
        const char *name = op_kind_name(op_times[i].run);
        const op_time_t *t = &op_times[i];
        if (!t->count)
            continue;
        double per = 1.0 / (double)t->count;
        log_info("fs",
                 "%-12s %8llu requests, mean %6llu us; store operations per request: "
                 "%.2f serial, %.2f gets, %.2f puts (%.2f conditional, %.2f patches), "
                 "%.2f deletes, %.2f conflicts",
                 name, (unsigned long long)t->count, (unsigned long long)(t->usec / t->count),
                 (double)t->serial * per, (double)t->store.gets * per, (double)t->store.puts * per,
                 (double)t->store.conditional * per, (double)t->store.patches * per,
                 (double)t->store.dels * per, (double)t->store.conflicts * per);
    }
}

void fs_ops_metrics(mx_buf_t *b)
{
    static const struct {
        const char *name, *help;
    } fam[] = {
        {"dhtfs_fuse_requests_total", "FUSE requests finished, per kind."},
        {"dhtfs_fuse_request_errors_total", "FUSE requests answered with an error, per kind."},
        {"dhtfs_fuse_request_seconds_total", "Time FUSE requests took in all, per kind."},
        {"dhtfs_store_requests_total",
         "Store round trips (get, put, delete) that FUSE requests started, per kind of request."},
        {"dhtfs_store_conditional_puts_total",
         "Conditional puts among them (metadata compare-and-set), per kind of request."},
        {"dhtfs_store_conflicts_total",
         "Conditional puts that found another version (and were retried), per kind of request."},
        {"dhtfs_store_serial_round_trips_total",
         "Store round trips FUSE requests waited for one after another, per kind of request."},
    };
    size_t nt = sizeof(op_times) / sizeof(op_times[0]);
    for (size_t f = 0; f < sizeof fam / sizeof fam[0]; f++) {
        mx_family(b, fam[f].name, MX_COUNTER, fam[f].help);
        for (size_t i = 0; i < nt && op_times[i].run; i++) {
            const op_time_t *t = &op_times[i];
            mx_label_t l[2] = {{"op", op_kind_name(t->run)}, {"kind", ""}};
            switch (f) {
            case 0:
                mx_sample_u64(b, fam[f].name, l, 1, t->count);
                break;
            case 1:
                mx_sample_u64(b, fam[f].name, l, 1, op_errors[i]);
                break;
            case 2:
                mx_sample_double(b, fam[f].name, l, 1, (double)t->usec / 1e6);
                break;
            case 3:
                l[1].value = "get";
                mx_sample_u64(b, fam[f].name, l, 2, t->store.gets);
                l[1].value = "put";
                mx_sample_u64(b, fam[f].name, l, 2, t->store.puts);
                l[1].value = "delete";
                mx_sample_u64(b, fam[f].name, l, 2, t->store.dels);
                break;
            case 4:
                mx_sample_u64(b, fam[f].name, l, 1, t->store.conditional);
                break;
            case 5:
                mx_sample_u64(b, fam[f].name, l, 1, t->store.conflicts);
                break;
            default:
                mx_sample_u64(b, fam[f].name, l, 1, t->serial);
                break;
            }
        }
    }
    mx_family(b, "dhtfs_fuse_errors_total", MX_COUNTER, "FUSE error replies, per errno.");
    size_t ne = sizeof err_codes / sizeof err_codes[0];
    for (size_t e = 1; e < ne; e++) {
        if (!err_codes[e])
            continue;
        char buf[16];
        const char *name = e < ne - 1 ? strerrorname_np((int)e) : "other";
        if (!name) {
            snprintf(buf, sizeof buf, "%zu", e);
            name = buf;
        }
        mx_label_t l = {"code", name};
        mx_sample_u64(b, "dhtfs_fuse_errors_total", &l, 1, err_codes[e]);
    }
}

const struct fuse_lowlevel_ops fs_ops = {
    .init = op_init,
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .readlink = op_readlink,
    .mknod = op_mknod,
    .mkdir = op_mkdir,
    .unlink = op_unlink,
    .rmdir = op_rmdir,
    .symlink = op_symlink,
    .rename = op_rename,
    .link = op_link,
    .open = op_open,
    .read = op_read,
    .write = op_write,
    .flush = op_flush,
    .release = op_release,
    .fsync = op_fsync,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .readdirplus = op_readdirplus,
    .releasedir = op_releasedir,
    .fsyncdir = op_fsyncdir,
    .statfs = op_statfs,
    .setxattr = op_setxattr,
    .getxattr = op_getxattr,
    .listxattr = op_listxattr,
    .removexattr = op_removexattr,
    .access = op_access,
    .create = op_create,
    .fallocate = op_fallocate,
    .lseek = op_lseek,
    .copy_file_range = op_copy_file_range,
    .getlk = op_getlk,
    .setlk = op_setlk,
    .flock = op_flock,
};
