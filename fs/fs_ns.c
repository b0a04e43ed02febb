/*
 * fs_ns.c — the namespace: names in directory buckets and the link counts,
 * parent times and ".." they keep in step.
 *
 * Orders that keep a crashed client from doing harm (see ARCHITECTURE.md):
 * a new inode is written before the name that points to it; a link count
 * goes up before a new name and down after a removed one; rename writes the
 * new name before removing the old one, so a file always has a name.
 *
 * No FUSE types here: the caller parses requests and sends replies.
 */
#include "fs_ns.h"
#include "fs_acl.h"
#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/stat.h>

int fs_ns_check_name(size_t len)
{
    if (len == 0)
        return -EINVAL;
    return len > FS_NAME_MAX ? -ENAMETOOLONG : 0;
}

static void set_time(int64_t *s, uint32_t *ns, struct timespec ts)
{
    *s = ts.tv_sec;
    *ns = (uint32_t)ts.tv_nsec;
}

/* ---- directory entry edits ---- */

typedef struct {
    const char *name;
    size_t len;
    uint64_t ino;
    uint8_t type;
    bool exclusive; /* fail with EEXIST if the name exists */
    bool check_old; /* the name must currently point at old_ino (0: be absent) */
    uint64_t old_ino;
} put_edit_t;

static int edit_put(fs_bucket_t *b, void *arg)
{
    put_edit_t *p = arg;
    ssize_t i = fs_bucket_find(b, p->name, p->len);
    if (p->exclusive && i >= 0)
        return -EEXIST;
    if (p->check_old) {
        uint64_t cur = i >= 0 ? b->ents[i].ino : 0;
        if (cur != p->old_ino)
            return -EAGAIN;
    }
    return fs_bucket_put(b, p->name, p->len, p->ino, p->type);
}

typedef struct {
    const char *name;
    size_t len;
    uint64_t ino; /* remove only if the name points here */
} del_edit_t;

static int edit_del(fs_bucket_t *b, void *arg)
{
    del_edit_t *d = arg;
    ssize_t i = fs_bucket_find(b, d->name, d->len);
    if (i < 0 || b->ents[i].ino != d->ino)
        return -ENOENT;
    return fs_bucket_remove(b, d->name, d->len);
}

static int dir_remove(fs_t *fs, uint64_t dir, const char *name, size_t len, uint64_t ino)
{
    del_edit_t d = {name, len, ino};
    return fs_dir_edit(fs, dir, name, len, edit_del, &d);
}

/* ---- inode record edits ---- */

typedef struct {
    int nlink_delta;
    struct timespec now;
    bool behind;     /* the toucher's write: times only move forward */
    bool ctime_only; /* a renamed entry's new ctime: the mtime stays */
} parent_edit_t;

static int mutate_parent(fs_inode_t *in, void *arg)
{
    parent_edit_t *p = arg;
    in->nlink = (uint32_t)((int64_t)in->nlink + p->nlink_delta);
    /*
     * Times written behind (the toucher) never go back: a change written at
     * once meanwhile (a mkdir's link count, a rename) may carry later ones.
     */
    if (!p->ctime_only && (!p->behind || fs_ts_cmp(in->mtime_s, in->mtime_ns, p->now) < 0))
        set_time(&in->mtime_s, &in->mtime_ns, p->now);
    if (!p->behind || fs_ts_cmp(in->ctime_s, in->ctime_ns, p->now) < 0)
        set_time(&in->ctime_s, &in->ctime_ns, p->now);
    return 0;
}

static int parent_touch(fs_t *fs, uint64_t dir, int nlink_delta)
{
    fs_node_t *n = fs_node_get(fs, dir);
    if (!n)
        return -ENOMEM;
    parent_edit_t p = {nlink_delta, fs_now(), false, false};
    fiber_mutex_lock(&n->lock);
    int rc = fs_node_update(fs, n, mutate_parent, &p);
    fiber_mutex_unlock(&n->lock);
    fs_node_put(fs, n);
    return rc;
}

typedef struct {
    int delta;
    uint64_t parent; /* directories moved elsewhere: the new ".." (0: unchanged) */
    struct timespec now;
} link_edit_t;

static int mutate_links(fs_inode_t *in, void *arg)
{
    link_edit_t *l = arg;
    if (l->delta < 0 && in->nlink < (uint32_t)-l->delta)
        in->nlink = 0;
    else
        in->nlink = (uint32_t)((int64_t)in->nlink + l->delta);
    if (l->parent)
        in->parent = l->parent;
    set_time(&in->ctime_s, &in->ctime_ns, l->now);
    return 0;
}

static int node_links(fs_t *fs, fs_node_t *n, int delta, uint64_t parent)
{
    link_edit_t l = {delta, parent, fs_now()};
    fiber_mutex_lock(&n->lock);
    int rc = fs_node_update(fs, n, mutate_links, &l);
    fiber_mutex_unlock(&n->lock);
    return rc;
}

/* Two things at once: a directory entry edit and its parent's times. */
typedef struct {
    fs_t *fs;
    uint64_t dir;
    int nlink_delta;
    int rc;
} touch_job_t;

static void touch_job(void *arg)
{
    touch_job_t *j = arg;
    j->rc = parent_touch(j->fs, j->dir, j->nlink_delta);
}

typedef struct {
    fs_t *fs;
    fs_node_t *dir;
} toucher_t;

static void toucher_fiber(void *arg)
{
    toucher_t *t = arg;
    fs_node_t *n = t->dir;
    while (n->touch_pending) {
        if (t->fs->touch_delay_ms > 0) {
            fiber_sleep(t->fs->loop, t->fs->touch_delay_ms);
            if (!n->touch_pending)
                break; /* times set explicitly meanwhile (fs_ns_times_set) */
        }
        n->touch_pending = false;
        parent_edit_t p = {0, n->touch_time, true, n->touch_ctime_only};
        fiber_mutex_lock(&n->lock);
        int rc = fs_node_update(t->fs, n, mutate_parent, &p);
        fiber_mutex_unlock(&n->lock);
        /* -ENOENT: removed meanwhile (a state file rewritten by rename over and over). */
        if (rc < 0 && rc != -ENOENT)
            log_info("fs", "inode %llx: writing its new times failed: %s",
                     (unsigned long long)n->ino, strerror(-rc));
    }
    n->touch_running = false;
    fs_node_put(t->fs, n);
    free(t);
}

/*
 * A name came or went in dir: its mtime and ctime change. This mount sees
 * the new times at once; the record is written behind, touch_delay_ms
 * after the first change, one write for any number of creates and unlinks
 * that arrive meanwhile, so a create in a busy directory is not a second
 * write to one hot key (and, one after another, not a second write each).
 * ctime_only: a renamed file (never a directory: directories get the
 * full touch), whose ctime alone changes, written behind the same way so
 * that a rename is one round trip (rsync's and editors' temporary files).
 */
static void node_touch_later(fs_t *fs, uint64_t ino, bool ctime_only)
{
    fs_node_t *n = fs_node_get(fs, ino);
    if (!n)
        return;
    struct timespec now = fs_now();
    if (n->have) {
        if (!ctime_only)
            set_time(&n->in.mtime_s, &n->in.mtime_ns, now);
        set_time(&n->in.ctime_s, &n->in.ctime_ns, now);
    }
    /* A deferred chmod's ctime (fs_node_defer_attrs) is older: shown and written as now. */
    if ((n->over.set & FS_SET_CTIME) &&
        fs_ts_cmp(n->over.ctime.tv_sec, (uint32_t)n->over.ctime.tv_nsec, now) < 0) {
        n->over.ctime = now;
        n->over_seq++;
    }
    /* (A node is a directory or not for good: the flag never has to merge two kinds.) */
    n->touch_ctime_only = ctime_only;
    n->touch_time = now;
    n->touch_pending = true;
    toucher_t *t = n->touch_running ? NULL : malloc(sizeof(*t));
    if (t) {
        *t = (toucher_t){fs, n};
        n->touch_running = true;
        if (fiber_spawn(toucher_fiber, t) == 0)
            return; /* the toucher holds the reference */
        n->touch_running = false;
        free(t);
    }
    fs_node_put(fs, n);
}

void fs_ns_times_set(fs_node_t *dir)
{
    dir->touch_pending = false;
    dir->touch_time = (struct timespec){0, 0};
}

/*
 * Run edit on dir's entries while the parent's times change: written behind
 * when only times change, alongside when its link count changes too.
 */
static int dir_edit_and_touch(fs_t *fs, uint64_t dir, const char *name, size_t len, fs_edit_fn edit,
                              void *arg, int nlink_delta, int *touch_rc)
{
    if (nlink_delta == 0) {
        *touch_rc = 0;
        int rc = fs_dir_edit(fs, dir, name, len, edit, arg);
        if (rc == 0)
            node_touch_later(fs, dir, false);
        return rc;
    }
    fiber_group_t g = {0, NULL, 0};
    touch_job_t tj = {fs, dir, nlink_delta, 0};
    if (fiber_group_spawn(&g, touch_job, &tj) < 0)
        tj.rc = -ENOMEM;
    int rc = fs_dir_edit(fs, dir, name, len, edit, arg);
    fiber_group_wait(&g);
    *touch_rc = tj.rc;
    return rc;
}

/* ---- freeing ---- */

typedef struct {
    fs_t *fs;
    uint64_t ino;
    fs_extents_t chunks; /* the file's chunk index, owned */
    bool record_gone;
} reap_t;

static void reap_fiber(void *arg)
{
    reap_t *r = arg;
    int rc = fs_node_destroy(r->fs, r->ino, &r->chunks, !r->record_gone);
    fs_extents_free(&r->chunks);
    if (rc < 0)
        log_warn("fs", "inode %llx: freeing its data failed (%s); left as garbage",
                 (unsigned long long)r->ino, strerror(-rc));
    free(r);
}

/* A file's last name is gone: free it now, or at its last close here. */
void fs_ns_file_unlinked(fs_t *fs, fs_node_t *n)
{
    if (n->in.nlink > 0)
        return;
    if (n->open > 0) {
        n->orphan = true;
        return;
    }
    fs_data_discard(fs, n);
    reap_t *r = malloc(sizeof(*r));
    if (!r)
        return;
    /* The index lists every chunk stored (inline data goes with the record). */
    *r = (reap_t){fs, n->ino, {0}, !n->have};
    if (fs_extents_copy(&r->chunks, &n->in.ext) < 0 ||
        fs_extents_union(&r->chunks, &n->written) < 0) {
        fs_extents_free(&r->chunks);
        free(r);
        return; /* the record stays: its chunks stay findable */
    }
    n->have = false;
    if (r->chunks.count == 0 && r->record_gone) {
        free(r);
        return;
    }
    if (fiber_spawn(reap_fiber, r) < 0) {
        fs_extents_free(&r->chunks);
        free(r);
    }
}

/* Remove an empty directory (already marked dying) for good. */
static void dir_free(fs_t *fs, fs_node_t *n)
{
    int rc = fs_dir_destroy(fs, n->ino);
    if (rc == 0)
        rc = fs_node_destroy(fs, n->ino, NULL, true);
    if (rc < 0)
        log_warn("fs", "directory %llx: freeing it failed (%s); left as garbage",
                 (unsigned long long)n->ino, strerror(-rc));
    n->have = false;
}

/* ---- creating ---- */

typedef struct {
    fs_t *fs;
    fs_node_t *node;
    const fs_inode_t *in;
    int rc;
} create_job_t;

static void create_job(void *arg)
{
    create_job_t *j = arg;
    j->rc = fs_node_create(j->fs, j->node, j->in);
}

/*
 * A new node in a directory with a default ACL gets it (limited by the
 * requested mode) as its access ACL, and a new directory keeps it as its
 * own default; without one the umask applies (posix_acl_create).
 */
static int inherit_acl(const fs_inode_t *dir, fs_inode_t *in, uint32_t umask)
{
    const fs_xattr_t *def = fs_xattr_find(dir, FS_ACL_DEFAULT);
    if (!def) {
        in->mode &= ~(umask & 0777);
        return 0;
    }
    uint32_t mode = in->mode;
    uint8_t *access;
    size_t alen;
    int rc = fs_acl_inherit(def->value, def->value_len, &mode, &access, &alen);
    if (rc == -EINVAL) {
        in->mode &= ~(umask & 0777); /* a malformed stored ACL is ignored, as if absent */
        return 0;
    }
    if (rc < 0)
        return rc;
    in->mode = mode;
    if (access)
        rc = fs_xattr_set(in, FS_ACL_ACCESS, access, alen);
    free(access);
    if (rc == 0 && S_ISDIR(in->mode))
        rc = fs_xattr_set(in, FS_ACL_DEFAULT, def->value, def->value_len);
    return rc;
}

/* The xattrs inherit_acl gave a record being created (the store and the node have copies). */
static void xattrs_free(fs_inode_t *in)
{
    for (uint32_t i = 0; i < in->nxattrs; i++) {
        free(in->xattrs[i].name);
        free(in->xattrs[i].value);
    }
    free(in->xattrs);
    in->xattrs = NULL;
    in->nxattrs = 0;
}

/*
 * Make a new inode named name in parent: record, then (for directories)
 * its first bucket, then the name, then the parent's times and link count.
 * A parent found dying after the name went in takes the name back out.
 */
int fs_ns_make(fs_t *fs, uint64_t parent, const char *name, size_t len, mode_t mode, dev_t rdev,
               const char *target, fs_ns_cred_t cred, fs_node_t **out)
{
    int rc = fs_ns_check_name(len);
    if (rc < 0)
        return rc;
    fs_node_t *pn = fs_node_get(fs, parent);
    if (!pn)
        return -ENOMEM;
    rc = fs_node_load(fs, pn, false);
    if (rc == 0 && !S_ISDIR(pn->in.mode))
        rc = -ENOTDIR;
    if (rc == 0 && pn->in.nlink == 0)
        rc = -ENOENT;
    uint64_t ino = 0;
    if (rc == 0)
        rc = fs_ino_alloc(fs, &ino);
    if (rc < 0) {
        fs_node_put(fs, pn);
        return rc;
    }
    struct timespec now = fs_now();
    fs_inode_t in;
    memset(&in, 0, sizeof(in));
    in.ino = ino;
    in.mode = mode;
    in.uid = cred.uid;
    in.gid = cred.gid;
    if (pn->in.mode & S_ISGID) {
        in.gid = pn->in.gid;
        if (S_ISDIR(mode))
            in.mode |= S_ISGID;
    }
    /* in owns the ACL xattrs this adds (freed below); target stays borrowed. */
    rc = S_ISLNK(mode) ? 0 : inherit_acl(&pn->in, &in, cred.umask);
    fs_node_put(fs, pn);
    if (rc < 0) {
        xattrs_free(&in);
        return rc;
    }
    in.nlink = S_ISDIR(mode) ? 2 : 1;
    in.rdev = rdev;
    in.parent = S_ISDIR(mode) ? parent : 0;
    set_time(&in.atime_s, &in.atime_ns, now);
    set_time(&in.mtime_s, &in.mtime_ns, now);
    set_time(&in.ctime_s, &in.ctime_ns, now);
    if (target) {
        in.target = (char *)target;
        in.size = strlen(target);
    }
    if (S_ISREG(mode))
        in.flags |= FS_INODE_INLINE;
    fs_node_t *n = fs_node_get(fs, ino);
    if (!n) {
        xattrs_free(&in);
        return -ENOMEM;
    }
    /* A directory's first bucket exists before anything can find the directory. */
    if (S_ISDIR(mode) && (rc = fs_dir_create(fs, ino)) < 0) {
        xattrs_free(&in);
        fs_node_put(fs, n);
        return rc;
    }
    /*
     * The record, the name and the parent's times are written at once: one
     * round trip. Until the record lands the name reads as absent (lookup
     * finds no inode), the state a create that has not returned yet may have.
     */
    fiber_group_t g = {0, NULL, 0};
    create_job_t cj = {fs, n, &in, 0};
    if (fiber_group_spawn(&g, create_job, &cj) < 0)
        cj.rc = -ENOMEM;
    put_edit_t p = {name, len, ino, (uint8_t)IFTODT(mode), true, false, 0};
    int touch_rc;
    rc = dir_edit_and_touch(fs, parent, name, len, edit_put, &p, S_ISDIR(mode) ? 1 : 0, &touch_rc);
    fiber_group_wait(&g);
    xattrs_free(&in);
    /*
     * An undo must never free what a name may point to. The name's outcome
     * unknown (EIO after fs_dir_edit's own read-backs), read it once more:
     * there and ours, the create succeeded; unreadable, everything stays
     * (garbage at worst, never a name without its record or buckets).
     */
    bool name_maybe = false;
    if (rc == -EIO) {
        fs_dirent_t ent;
        int lrc = fs_dir_lookup(fs, parent, name, len, true, &ent);
        if (lrc == 0 && ent.ino == ino)
            rc = 0;
        else if (lrc != 0 && lrc != -ENOENT)
            name_maybe = true;
    }
    if (rc == 0 && (touch_rc < 0 || cj.rc < 0)) {
        /* Only a removal known to be done frees the record and buckets below. */
        name_maybe = dir_remove(fs, parent, name, len, ino) < 0;
        rc = cj.rc < 0 ? cj.rc : touch_rc;
    }
    if (rc < 0 && touch_rc == 0 && S_ISDIR(mode) && !name_maybe)
        parent_touch(fs, parent, -1);
    if (rc < 0) {
        if (name_maybe)
            log_warn("fs",
                     "create of inode %llx: its name's outcome stayed unknown; kept its record",
                     (unsigned long long)ino);
        if (S_ISDIR(mode) && !name_maybe)
            fs_dir_destroy(fs, ino);
        if (cj.rc == 0 && !name_maybe)
            fs_node_destroy(fs, ino, NULL, true);
        n->have = false;
        fs_node_put(fs, n);
        return rc;
    }
    *out = n;
    return 0;
}

/* ---- removing ---- */

typedef struct {
    const char *name;
    size_t len;
    bool want_dir;
    fs_dirent_t removed;
} unlink_edit_t;

/* Take a name out whatever it points at (unlink) or only a directory (rmdir). */
static int edit_unlink(fs_bucket_t *b, void *arg)
{
    unlink_edit_t *u = arg;
    ssize_t i = fs_bucket_find(b, u->name, u->len);
    if (i < 0)
        return -ENOENT;
    bool is_dir = b->ents[i].type == DT_DIR;
    if (is_dir != u->want_dir)
        return is_dir ? -EISDIR : -ENOTDIR;
    u->removed = b->ents[i];
    return fs_bucket_remove(b, u->name, u->len);
}

typedef struct {
    fs_t *fs;
    uint64_t ino;
} unlinked_job_t;

/*
 * One name of a file is gone: drop its link count, or, for its last name
 * and no open handle here, delete the record outright (a conditional delete,
 * so a link made meanwhile by another mount wins) and its chunks after it.
 */
static void file_lost_name(void *arg)
{
    unlinked_job_t *j = arg;
    fs_t *fs = j->fs;
    fs_node_t *n = fs_node_get(fs, j->ino);
    if (!n)
        return;
    bool fresh = false;
    for (int attempt = 0; attempt < 20; attempt++) {
        int lrc = fs_node_load(fs, n, fresh);
        if (lrc == -ENOENT && fresh) {
            /* Our delete whose answer was lost (or another mount's) took the record. */
            n->in.nlink = 0;
            n->have = false;
            fs_ns_file_unlinked(fs, n);
            break;
        }
        if (lrc < 0)
            break;
        if (n->in.nlink > 1 || n->open > 0) {
            if (node_links(fs, n, -1, 0) == 0)
                fs_ns_file_unlinked(fs, n);
            break;
        }
        char key[FS_KEY_MAX];
        fs_key_inode(key, fs->vol, n->ino);
        int rc = fs_del(fs->kvc, key, KVC_PUT_IF_VERSION, n->ver);
        /* A conflict or a lost answer: read back whether the record is still there. */
        if (rc == -ESTALE || (fs_outcome_unknown(rc) && attempt < 3)) {
            fresh = true;
            continue;
        }
        if (rc == 0) {
            n->in.nlink = 0;
            n->have = false; /* the record is gone already */
            fs_ns_file_unlinked(fs, n);
        }
        break;
    }
    fs_node_put(fs, n);
}

static void file_lost_name_bg(void *arg)
{
    file_lost_name(arg);
    free(arg);
}

int fs_ns_unlink(fs_t *fs, uint64_t parent, const char *name, size_t len)
{
    int rc = fs_ns_check_name(len);
    unlink_edit_t u = {name, len, false, {0}};
    if (rc == 0) {
        int touch_rc;
        rc = dir_edit_and_touch(fs, parent, name, len, edit_unlink, &u, 0, &touch_rc);
    }
    if (rc < 0)
        return rc;
    unlinked_job_t j = {fs, u.removed.ino};
    fs_node_t *n = fs_node_find(fs, j.ino);
    if (n && n->in.nlink <= 1 && n->open == 0 && fs_node_fresh(fs, n)) {
        /*
         * Its last name is gone and nothing here has it open: nobody can
         * reach the file any more, so its record and data go in the
         * background (the job starts at the next turn, after the reply).
         */
        unlinked_job_t *bg = malloc(sizeof(*bg));
        if (bg) {
            *bg = j;
            if (fiber_spawn(file_lost_name_bg, bg) < 0)
                free(bg);
            return 0;
        }
    }
    file_lost_name(&j);
    return 0;
}

typedef struct {
    fs_t *fs;
    fs_node_t *n; /* a reference, given back when done */
} dir_free_job_t;

static void dir_free_bg(void *arg)
{
    dir_free_job_t *j = arg;
    dir_free(j->fs, j->n);
    fs_node_put(j->fs, j->n);
    free(j);
}

/* Neither the record nor the first bucket of directory ino exists. */
static bool dir_vanished(fs_t *fs, uint64_t ino)
{
    fs_node_t *n = fs_node_get(fs, ino);
    if (!n)
        return false;
    int rc = fs_node_load(fs, n, true);
    fs_node_put(fs, n);
    return rc == -ENOENT;
}

/* One attempt of fs_ns_rmdir, with the name as cached or read afresh. */
static int rmdir_try(fs_t *fs, uint64_t parent, const char *name, size_t len, bool fresh)
{
    fs_dirent_t ent;
    int rc = fs_dir_lookup(fs, parent, name, len, fresh, &ent);
    if (rc == 0 && ent.type != DT_DIR)
        rc = -ENOTDIR;
    /* Claimed, the directory takes no new names from any mount. */
    if (rc == 0)
        rc = fs_dir_claim_empty(fs, ent.ino);
    if (rc == -ENOENT && fresh && dir_vanished(fs, ent.ino)) {
        /*
         * A name left by a mkdir cut short (record and buckets never made
         * or already freed): nothing to free but the name, or it could
         * never be removed.
         */
        del_edit_t d = {name, len, ent.ino};
        int touch_rc;
        rc = dir_edit_and_touch(fs, parent, name, len, edit_del, &d, -1, &touch_rc);
        if (rc < 0 && touch_rc == 0)
            parent_touch(fs, parent, +1); /* the name went meanwhile: the link count stays */
        return rc;
    }
    if (rc < 0)
        return rc;
    del_edit_t d = {name, len, ent.ino};
    int touch_rc;
    rc = dir_edit_and_touch(fs, parent, name, len, edit_del, &d, -1, &touch_rc);
    if (rc < 0) {
        if (touch_rc == 0)
            parent_touch(fs, parent, +1);
        fs_dir_unclaim(fs, ent.ino);
        return rc;
    }
    fs_node_t *n = fs_node_get(fs, ent.ino);
    if (!n)
        return 0;
    /*
     * Claimed dead and without its name, the directory is out of every
     * mount's reach: its buckets and record go in the background, after
     * the reply (an unmount waits for them).
     */
    dir_free_job_t *j = malloc(sizeof(*j));
    if (j) {
        *j = (dir_free_job_t){fs, n};
        if (fiber_spawn(dir_free_bg, j) == 0)
            return 0;
        free(j);
    }
    dir_free(fs, n);
    fs_node_put(fs, n);
    return 0;
}

int fs_ns_rmdir(fs_t *fs, uint64_t parent, const char *name, size_t len)
{
    int rc = fs_ns_check_name(len);
    if (rc < 0)
        return rc;
    /*
     * First with the name as this mount has it cached (the kernel has just
     * looked it up): the removal's compare-and-set on the leaf checks that
     * it still names the directory claimed, one round trip less than
     * reading it first. A failure that a stale name could explain (another
     * mount replaced, moved or removed the directory: its buckets may be
     * gone, -EIO) is tried again afresh.
     */
    rc = rmdir_try(fs, parent, name, len, false);
    if (rc == -ENOENT || rc == -ENOTDIR || rc == -ENOTEMPTY || rc == -EIO)
        rc = rmdir_try(fs, parent, name, len, true);
    return rc;
}

/* ---- links and renames ---- */

int fs_ns_link(fs_t *fs, uint64_t ino, uint64_t newparent, const char *name, size_t len,
               fs_node_t **out)
{
    int rc = fs_ns_check_name(len);
    if (rc < 0)
        return rc;
    fs_node_t *n = fs_node_get(fs, ino);
    if (!n)
        return -ENOMEM;
    /*
     * The copy this mount has (within the TTL) will do: the link count's
     * compare-and-set proves it current or reads it afresh, and a file's
     * type never changes. One round trip less than reading it first.
     */
    rc = fs_node_load(fs, n, false);
    if (rc == 0 && S_ISDIR(n->in.mode))
        rc = -EPERM;
    if (rc == 0)
        rc = node_links(fs, n, +1, 0);
    if (rc == -ENOENT)
        rc = -ESTALE; /* the kernel's inode is gone */
    if (rc == 0) {
        put_edit_t p = {name, len, n->ino, (uint8_t)IFTODT(n->in.mode), true, false, 0};
        int touch_rc;
        rc = dir_edit_and_touch(fs, newparent, name, len, edit_put, &p, 0, &touch_rc);
        if (rc < 0)
            node_links(fs, n, -1, 0);
    }
    if (rc < 0) {
        fs_node_put(fs, n);
        return rc;
    }
    *out = n;
    return 0;
}

/* The replaced target of a rename lost a name. */
static void target_replaced(fs_t *fs, const fs_dirent_t *dst)
{
    if (dst->type == DT_DIR) {
        fs_node_t *n = fs_node_get(fs, dst->ino);
        if (!n)
            return;
        dir_free(fs, n);
        fs_node_put(fs, n);
        return;
    }
    unlinked_job_t j = {fs, dst->ino};
    file_lost_name(&j);
}

typedef struct {
    uint64_t sdir, ddir;
    const char *name, *name2;
    size_t len, len2;
    unsigned flags;
} rename_t;

/*
 * A rename within one leaf bucket: the new name in (as edit_put) and the
 * old one out if it still names the file (as edit_del; if not, another
 * mount renamed or removed it meanwhile and the new name stays, as in the
 * two-step rename). apart: the two names belong to different leaves
 * (nothing changed; the caller edits them one at a time).
 */
typedef struct {
    put_edit_t *put;
    del_edit_t del;
    bool strict; /* the old name must still name the file: else -EAGAIN, nothing changed */
    bool apart, removed;
} move_edit_t;

static int edit_move(fs_bucket_t *b, void *arg)
{
    move_edit_t *m = arg;
    m->apart = false;
    m->removed = false;
    uint64_t h = fs_name_hash(m->del.name, m->del.len);
    if (fs_hash_prefix(h, b->depth) != b->prefix) {
        m->apart = true;
        return 1; /* no change */
    }
    int rc = edit_put(b, m->put);
    if (rc < 0)
        return rc;
    rc = edit_del(b, &m->del);
    m->removed = rc == 0;
    if (rc == -ENOENT && m->strict)
        return -EAGAIN;
    return rc == -ENOENT ? 0 : rc;
}

/* Run fn(arg) as a fiber of g, or here and now if no fiber can be had. */
static void group_run(fiber_group_t *g, void (*fn)(void *), void *arg)
{
    if (fiber_group_spawn(g, fn, arg) < 0)
        fn(arg);
}

typedef struct {
    fs_t *fs;
    uint64_t dir;
    const char *name;
    size_t len;
    fs_dirent_t ent;
    int rc;
} lookup_job_t;

static void lookup_job(void *arg)
{
    lookup_job_t *j = arg;
    j->rc = fs_dir_lookup(j->fs, j->dir, j->name, j->len, true, &j->ent);
}

/*
 * A rename within one directory first trusts the leaf this mount cached
 * (the kernel looked both names up just before): the one compare-and-set
 * that moves the name fails if the leaf changed since, and then, as when
 * the cache cannot settle it (a name missing, a directory replaced, the
 * names in two leaves), the rename starts over from the store.
 */
static bool rename_cached_lookups(fs_t *fs, const rename_t *o, fs_dirent_t *src, fs_dirent_t *dst,
                                  bool *have_dst)
{
    if (o->sdir != o->ddir || (o->flags & RENAME_EXCHANGE))
        return false;
    if (fs_dir_lookup_cached(fs, o->sdir, o->name, o->len, src) < 0)
        return false;
    int rc = fs_dir_lookup_cached(fs, o->ddir, o->name2, o->len2, dst);
    if (rc < 0 && rc != -ENOENT)
        return false;
    *have_dst = rc == 0;
    return !(*have_dst && dst->type == DT_DIR);
}

/* A renamed entry's inode: a new ctime, and a directory moved elsewhere a new "..". */
typedef struct {
    fs_t *fs;
    uint64_t ino, parent;
} relink_job_t;

static void relink_job(void *arg)
{
    relink_job_t *j = arg;
    fs_node_t *n = fs_node_get(j->fs, j->ino);
    if (n) {
        node_links(j->fs, n, 0, j->parent);
        fs_node_put(j->fs, n);
    }
}

typedef struct {
    fs_t *fs;
    fs_dirent_t dst;
} replaced_job_t;

static void replaced_job(void *arg)
{
    replaced_job_t *j = arg;
    target_replaced(j->fs, &j->dst);
}

/* A directory's link count changes with its times; only times change: written behind. */
static void rename_touch(fs_t *fs, fiber_group_t *g, touch_job_t *tj, uint64_t dir, int delta)
{
    if (delta == 0) {
        node_touch_later(fs, dir, false);
        return;
    }
    *tj = (touch_job_t){fs, dir, delta, 0};
    group_run(g, touch_job, tj);
}

static int rename_once(fs_t *fs, const rename_t *o, bool try_cached)
{
    uint64_t sdir = o->sdir, ddir = o->ddir;
    fs_dirent_t src, dst;
    fiber_group_t g = {0, NULL, 0};
    bool have_dst = false;
    bool cached = try_cached && rename_cached_lookups(fs, o, &src, &dst, &have_dst);
    int rc = 0;
    if (!cached) {
        /* Both names at once: one round trip. */
        lookup_job_t lj = {fs, ddir, o->name2, o->len2, {0}, 0};
        group_run(&g, lookup_job, &lj);
        rc = fs_dir_lookup(fs, sdir, o->name, o->len, true, &src);
        fiber_group_wait(&g);
        if (rc < 0)
            return rc;
        rc = lj.rc;
        dst = lj.ent;
        if (rc < 0 && rc != -ENOENT)
            return rc;
        have_dst = rc == 0;
    }
    bool exchange = o->flags & RENAME_EXCHANGE;
    bool src_dir = src.type == DT_DIR;
    bool dst_dir = have_dst && dst.type == DT_DIR;
    /* Answers other than a move rest on the store, never on the cache. */
    if (cached && have_dst &&
        ((o->flags & RENAME_NOREPLACE) || dst.ino == src.ino || dst_dir != src_dir))
        return -EAGAIN;
    if (have_dst && (o->flags & RENAME_NOREPLACE))
        return -EEXIST;
    if (!have_dst && exchange)
        return -ENOENT;
    if (have_dst && dst.ino == src.ino)
        return 0;        /* two names of one file: POSIX says do nothing */
    bool victim = false; /* an empty directory replaced by the rename, claimed */
    if (have_dst && !exchange) {
        if (dst_dir && !src_dir)
            return -EISDIR;
        if (!dst_dir && src_dir)
            return -ENOTDIR;
        if (dst_dir) {
            rc = fs_dir_claim_empty(fs, dst.ino);
            if (rc < 0)
                return rc;
            victim = true;
        }
    }
    put_edit_t put = {o->name2, o->len2, src.ino, src.type, false, true, have_dst ? dst.ino : 0};
    /*
     * Both names in one leaf of one directory: one compare-and-set moves
     * the name (one round trip, and no crash can leave two names).
     */
    move_edit_t mv = {&put, {o->name, o->len, src.ino}, cached, false, false};
    bool moved = false;
    rc = 0;
    if (sdir == ddir && !exchange) {
        rc = fs_dir_edit(fs, ddir, o->name2, o->len2, edit_move, &mv);
        if (cached && rc == 0 && mv.apart)
            return -EAGAIN; /* two leaves: start over from the store */
        moved = rc == 0 && !mv.apart;
        if (moved && !mv.removed)
            log_info("fs", "rename: source changed during the rename; kept the new name");
    }
    /* Else the new name first: a crash between the two steps leaves two names, never none. */
    if (rc == 0 && !moved) {
        rc = fs_dir_edit(fs, ddir, o->name2, o->len2, edit_put, &put);
        if (rc == 0) {
            if (exchange) {
                put_edit_t back = {o->name, o->len, dst.ino, dst.type, false, true, src.ino};
                rc = fs_dir_edit(fs, sdir, o->name, o->len, edit_put, &back);
            } else {
                rc = dir_remove(fs, sdir, o->name, o->len, src.ino);
            }
            if (rc == -ENOENT || rc == -EAGAIN) {
                /* The source changed under us (another mount renamed or removed it). */
                log_info("fs", "rename: source changed during the rename; kept the new name");
                rc = 0;
            }
        }
    }
    if (rc < 0) {
        if (victim)
            fs_dir_unclaim(fs, dst.ino);
        return rc;
    }
    int sdelta = 0, ddelta = 0;
    if (sdir != ddir) {
        sdelta = (exchange && dst_dir ? 1 : 0) - (src_dir ? 1 : 0);
        ddelta = (src_dir ? 1 : 0) - (exchange && dst_dir ? 1 : 0);
    }
    if (victim)
        ddelta -= 1;
    /* The names are done; what follows touches other keys, all at once. */
    touch_job_t stj, dtj;
    rename_touch(fs, &g, &stj, sdir, sdelta);
    if (ddir != sdir || ddelta)
        rename_touch(fs, &g, &dtj, ddir, ddelta);
    /* A renamed file's new ctime is written behind, a directory's at once (with its ".."). */
    relink_job_t sj = {fs, src.ino, src_dir && sdir != ddir ? ddir : 0};
    if (src_dir)
        group_run(&g, relink_job, &sj);
    else
        node_touch_later(fs, src.ino, true);
    relink_job_t dj = {fs, dst.ino, dst_dir && sdir != ddir ? sdir : 0};
    replaced_job_t rj = {fs, dst};
    if (exchange && dst_dir)
        group_run(&g, relink_job, &dj);
    else if (exchange)
        node_touch_later(fs, dst.ino, true);
    else if (have_dst)
        group_run(&g, replaced_job, &rj);
    fiber_group_wait(&g);
    return 0;
}

int fs_ns_rename(fs_t *fs, uint64_t sdir, const char *name, size_t len, uint64_t ddir,
                 const char *newname, size_t newlen, unsigned flags)
{
    rename_t o = {sdir, ddir, name, newname, len, newlen, flags};
    int rc = fs_ns_check_name(len);
    if (rc == 0)
        rc = fs_ns_check_name(newlen);
    if (rc == 0 && (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE)))
        rc = -EINVAL;
    /* EAGAIN: the target changed between our look and our write; look again. */
    for (int attempt = 0; rc == 0 && attempt < 20; attempt++) {
        rc = rename_once(fs, &o, attempt == 0);
        if (rc != -EAGAIN)
            break;
        rc = 0;
    }
    return rc == -EAGAIN ? -EIO : rc;
}
