/*
 * fs_ahead.c — stat-ahead (fs_ahead.h).
 *
 * A run per directory walked (at most FS_AHEAD_RUNS at once, the one
 * steered least recently giving way) lists its directory once, sorts the
 * names, and loads records from the name after the last lookup on, at
 * most FS_AHEAD_WINDOW past it; each lookup of a later name moves the
 * window. A lookup of an earlier name means the walk is not in name order
 * (or has started over): the run stops. A run holds a reference to each
 * node it loaded until a lookup used it or FS_AHEAD_HOLD_MS (at most the
 * TTL) passed, so the kernel's FORGET of the nodes it dropped does not
 * throw the records away before they are asked for. A node kept so keeps
 * its chunk cache generation, as nodes the kernel still holds do: a
 * changed record (version, size, mtime) drops its cached chunks.
 *
 * What it costs when the guess is wrong: a walk that is not in name order
 * never starts a run (8 ascending misses in a row are needed), and one
 * that stops being in order stops its run at the next lookup, with at most
 * a window's records loaded for nothing.
 */
#include "fs_ahead.h"
#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t ino;
    uint32_t off; /* the name's place in run_t.names */
    uint8_t len;
} ahead_ent_t;

typedef struct run run_t;
struct run {
    fs_t *fs;
    run_t *next; /* fs_ahead_t.runs */
    uint64_t dir;
    bool steered; /* lookups of dir move it; false: it loads no more (stopped, or done) */
    uint64_t steered_ms;
    bool listed;
    /* the directory's names, sorted (once listed) */
    ahead_ent_t *ents;
    size_t count;
    char *names;
    size_t names_len;
    /* the last name looked up, until listed; then pos: the index after it */
    char last[FS_NAME_MAX];
    size_t last_len;
    size_t pos;
    size_t loaded_to; /* the names below this were loaded (or passed by the lookups) */
    /* nodes loaded and still referenced */
    fs_node_t **held;
    size_t nheld, cap;
    /* waiting for a lookup or a timer */
    fiber_t *fiber;
    bool parked, timed_out;
    uint64_t timer;
};

/* Misses in ascending name order in one directory: how many, the last one. */
typedef struct {
    uint64_t dir;
    unsigned count;
    uint64_t last_ms;
    char last[FS_NAME_MAX];
    size_t last_len;
} streak_t;

typedef struct fs_ahead {
    streak_t streaks[2 * FS_AHEAD_RUNS]; /* of the directories with misses last */
    fiber_mutex_t loading;               /* held by a run while it loads a batch */
    run_t *runs;                         /* every run not yet ended */
    bool stopped;
    /* a directory too big to list (FS_AHEAD_LIST_MAX), not tried again until then */
    uint64_t big_dir, big_until_ms;
    uint64_t loaded, used;
} fs_ahead_t;

static int name_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c != 0)
        return c;
    return alen < blen ? -1 : alen > blen;
}

static int ent_cmp(const void *x, const void *y, void *names)
{
    const ahead_ent_t *a = x, *b = y;
    const char *base = names;
    return name_cmp(base + a->off, a->len, base + b->off, b->len);
}

/* The first index whose name is > name (after: true) or >= name. */
static size_t run_bound(const run_t *r, const char *name, size_t len, bool after)
{
    size_t lo = 0, hi = r->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const ahead_ent_t *e = &r->ents[mid];
        int c = name_cmp(r->names + e->off, e->len, name, len);
        if (c < 0 || (after && c == 0))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void run_wake(run_t *r)
{
    if (r->parked) {
        r->parked = false;
        fiber_wake(r->fiber);
    }
}

static void run_timer(loop_t *loop, void *arg)
{
    (void)loop;
    run_t *r = arg;
    r->timer = 0;
    r->timed_out = true;
    run_wake(r);
}

/* Park until a lookup moves the window (1) or ms pass (0); -ENOMEM. */
static int run_wait(run_t *r, uint64_t ms)
{
    r->timed_out = false;
    r->timer = loop_timer_add(r->fs->loop, ms > 0 ? ms : 1, run_timer, r);
    if (r->timer == 0)
        return -ENOMEM;
    r->fiber = fiber_self();
    r->parked = true;
    fiber_park();
    if (r->timer) {
        loop_timer_cancel(r->fs->loop, r->timer);
        r->timer = 0;
    }
    return !r->timed_out;
}

/* List the directory and sort its names. 0 or -errno (too big: -EFBIG). */
static int run_list(run_t *r)
{
    fs_t *fs = r->fs;
    size_t cap = 0, names_cap = 0;
    uint64_t from = 0;
    while (from != UINT64_MAX && r->steered) {
        fs_dirent_t *ents;
        size_t n;
        int rc = fs_dir_read(fs, r->dir, &from, false, &ents, &n);
        if (rc < 0)
            return rc;
        if (r->count + n > FS_AHEAD_LIST_MAX) {
            free(ents);
            return -EFBIG;
        }
        if (r->count + n > cap) {
            size_t c = (r->count + n) * 2;
            ahead_ent_t *e = realloc(r->ents, c * sizeof(*e));
            if (!e) {
                free(ents);
                return -ENOMEM;
            }
            r->ents = e;
            cap = c;
        }
        for (size_t i = 0; i < n; i++) {
            if (r->names_len + ents[i].name_len > names_cap) {
                size_t c = (r->names_len + ents[i].name_len) * 2 + 4096;
                char *p = realloc(r->names, c);
                if (!p) {
                    free(ents);
                    return -ENOMEM;
                }
                r->names = p;
                names_cap = c;
            }
            memcpy(r->names + r->names_len, ents[i].name, ents[i].name_len);
            r->ents[r->count++] =
                (ahead_ent_t){ents[i].ino, (uint32_t)r->names_len, ents[i].name_len};
            r->names_len += ents[i].name_len;
        }
        free(ents);
    }
    if (!r->steered)
        return -ECANCELED;
    qsort_r(r->ents, r->count, sizeof(*r->ents), ent_cmp, r->names);
    r->pos = run_bound(r, r->last, r->last_len, true);
    r->listed = true;
    return 0;
}

static int held_push(run_t *r, fs_node_t *n)
{
    if (r->nheld == r->cap) {
        size_t c = r->cap ? r->cap * 2 : FS_AHEAD_WINDOW;
        fs_node_t **h = realloc(r->held, c * sizeof(*h));
        if (!h)
            return -ENOMEM;
        r->held = h;
        r->cap = c;
    }
    r->held[r->nheld++] = n;
    return 0;
}

/*
 * Give back the nodes that a lookup used, or that were held for
 * FS_AHEAD_HOLD_MS or the TTL, whichever is shorter (all of them if all
 * is set). The milliseconds until the next one is due, 0 if none is left.
 */
static uint64_t held_release(run_t *r, bool all)
{
    fs_t *fs = r->fs;
    uint64_t now = fs_now_ms(fs);
    uint64_t hold = fs->ttl_ms < FS_AHEAD_HOLD_MS ? fs->ttl_ms : FS_AHEAD_HOLD_MS;
    uint64_t due = 0;
    size_t kept = 0;
    for (size_t i = 0; i < r->nheld; i++) {
        fs_node_t *n = r->held[i];
        if (!all && n->ahead == FS_AHEAD_LOADED && now - n->fetched_ms < hold) {
            uint64_t left = n->fetched_ms + hold - now;
            if (due == 0 || left < due)
                due = left;
            r->held[kept++] = n;
            continue;
        }
        if (n->ahead == FS_AHEAD_LOADED)
            n->ahead = FS_AHEAD_NONE;
        fs_node_put(fs, n);
    }
    r->nheld = kept;
    return due;
}

/*
 * Room for a whole batch in the window? Loading in whole batches keeps
 * the store's work per record low: a lookup that moves the window by one
 * name must not cost a load of one record.
 */
static bool run_room(const run_t *r)
{
    return r->loaded_to - r->pos + FS_AHEAD_BATCH <= FS_AHEAD_WINDOW;
}

/* Load the records of the next batch of names. false: out of memory, nothing done. */
static bool run_load(run_t *r)
{
    fs_t *fs = r->fs;
    fs_node_t *nodes[FS_AHEAD_BATCH];
    size_t k = 0, from = r->loaded_to;
    while (k < FS_AHEAD_BATCH && r->loaded_to < r->count) {
        fs_node_t *n = fs_node_get(fs, r->ents[r->loaded_to].ino);
        if (!n)
            break;
        r->loaded_to++;
        if (fs_node_fresh(fs, n) || n->ahead == FS_AHEAD_LOADING) {
            fs_node_put(fs, n);
        } else {
            n->ahead = FS_AHEAD_LOADING;
            nodes[k++] = n;
        }
    }
    if (k == 0)
        return r->loaded_to > from;
    fiber_mutex_lock(&fs->ahead->loading);
    fs_nodes_load(fs, nodes, k);
    fiber_mutex_unlock(&fs->ahead->loading);
    for (size_t i = 0; i < k; i++) {
        fs_node_t *n = nodes[i];
        n->ahead = FS_AHEAD_NONE;
        if (fs_node_fresh(fs, n) && held_push(r, n) == 0) {
            n->ahead = FS_AHEAD_LOADED;
            fs->ahead->loaded++;
        } else {
            fs_node_put(fs, n);
        }
    }
    return true;
}

static void run_free(run_t *r)
{
    free(r->held);
    free(r->ents);
    free(r->names);
    free(r);
}

static void run_end(run_t *r)
{
    fs_ahead_t *a = r->fs->ahead;
    for (run_t **p = &a->runs; *p; p = &(*p)->next) {
        if (*p == r) {
            *p = r->next;
            break;
        }
    }
    run_free(r);
}

static void run_fiber(void *arg)
{
    run_t *r = arg;
    fs_t *fs = r->fs;
    /* Its loads are no request's round trips (the metrics' per-request counts). */
    fiber_set_tag(NULL);
    int rc = run_list(r);
    if (rc < 0 && rc != -ECANCELED)
        log_debug("fs", "stat-ahead of directory %llx not started: %s", (unsigned long long)r->dir,
                  strerror(-rc));
    while (rc == 0 && r->steered) {
        held_release(r, false);
        if (r->loaded_to < r->pos)
            r->loaded_to = r->pos;
        if (r->loaded_to >= r->count)
            break;
        if (run_room(r)) {
            if (!run_load(r))
                break;
        } else if (run_wait(r, fs->ttl_ms) < 0 || fs_now_ms(fs) - r->steered_ms >= fs->ttl_ms) {
            break; /* no lookup in the directory for a whole TTL: the walk is over */
        }
    }
    if (rc == -EFBIG) {
        fs->ahead->big_dir = r->dir;
        fs->ahead->big_until_ms = fs_now_ms(fs) + FS_AHEAD_BIG_MS;
    }
    /* Lookups no longer steer it: the listing goes; wait for the rest to be used or go stale. */
    r->steered = false;
    free(r->ents);
    free(r->names);
    r->ents = NULL;
    r->names = NULL;
    r->count = 0;
    uint64_t ms;
    bool all = false;
    while ((ms = held_release(r, all || fs->ahead->stopped)) > 0)
        all = run_wait(r, ms) < 0;
    run_end(r);
}

static void run_stop(run_t *r)
{
    r->steered = false;
    run_wake(r);
}

/* The run that lookups of dir steer, if any. */
static run_t *run_of(fs_ahead_t *a, uint64_t dir)
{
    for (run_t *r = a->runs; r; r = r->next)
        if (r->steered && r->dir == dir)
            return r;
    return NULL;
}

static void run_start(fs_t *fs, uint64_t dir, const char *name, size_t len)
{
    fs_ahead_t *a = fs->ahead;
    run_t *oldest = NULL;
    unsigned steered = 0;
    for (run_t *r = a->runs; r; r = r->next) {
        if (!r->steered)
            continue;
        steered++;
        if (!oldest || r->steered_ms < oldest->steered_ms)
            oldest = r;
    }
    if (steered >= FS_AHEAD_RUNS)
        run_stop(oldest);
    run_t *r = calloc(1, sizeof(*r));
    if (!r)
        return;
    r->fs = fs;
    r->dir = dir;
    r->steered = true;
    r->steered_ms = fs_now_ms(fs);
    memcpy(r->last, name, len);
    r->last_len = len;
    r->next = a->runs;
    a->runs = r;
    if (fiber_spawn(run_fiber, r) < 0)
        run_end(r);
}

/* A lookup in the run's directory: move its window, or stop it if the walk went back. */
static void run_steer(run_t *r, const char *name, size_t len)
{
    r->steered_ms = fs_now_ms(r->fs);
    if (!r->listed) {
        if (name_cmp(name, len, r->last, r->last_len) > 0) {
            memcpy(r->last, name, len);
            r->last_len = len;
        }
        return;
    }
    size_t i = run_bound(r, name, len, false);
    if (i < r->count && name_cmp(r->names + r->ents[i].off, r->ents[i].len, name, len) == 0)
        i++; /* the index after the name */
    if (i >= r->pos) {
        r->pos = i;
        if (r->loaded_to < r->pos || run_room(r))
            run_wake(r);
    } else if (i + 1 < r->pos) {
        /* Back before the previous lookup: not a walk in name order (any more). */
        run_stop(r);
    }
}

void fs_ahead_lookup(fs_t *fs, uint64_t dir, const char *name, size_t len, fs_node_t *n)
{
    if (len == 0 || len > FS_NAME_MAX)
        return;
    if (!fs->ahead && !(fs->ahead = calloc(1, sizeof(*fs->ahead))))
        return;
    fs_ahead_t *a = fs->ahead;
    if (n->ahead == FS_AHEAD_LOADING) {
        /* Its record is on the way: wait for that load rather than ask for it twice. */
        fiber_mutex_lock(&a->loading);
        fiber_mutex_unlock(&a->loading);
    }
    bool fresh = fs_node_fresh(fs, n);
    if (n->ahead == FS_AHEAD_LOADED) {
        n->ahead = FS_AHEAD_NONE;
        a->used += fresh;
    }
    run_t *r = run_of(a, dir);
    if (r) {
        run_steer(r, name, len);
        return;
    }
    uint64_t now = fs_now_ms(fs);
    if (fresh || a->stopped || (dir == a->big_dir && now < a->big_until_ms))
        return;
    /* The directory's streak, or the stalest one's place. */
    streak_t *s = &a->streaks[0];
    for (size_t i = 0; i < sizeof(a->streaks) / sizeof(a->streaks[0]); i++) {
        streak_t *t = &a->streaks[i];
        if (t->count > 0 && t->dir == dir) {
            s = t;
            break;
        }
        if (t->count == 0 || t->last_ms < s->last_ms)
            s = t;
    }
    if (s->count > 0 && s->dir == dir && now - s->last_ms < fs->ttl_ms &&
        name_cmp(name, len, s->last, s->last_len) > 0)
        s->count++;
    else
        s->count = 1;
    s->dir = dir;
    s->last_ms = now;
    memcpy(s->last, name, len);
    s->last_len = len;
    if (s->count >= FS_AHEAD_TRIGGER) {
        s->count = 0;
        run_start(fs, dir, name, len);
    }
}

void fs_ahead_stats(const fs_t *fs, uint64_t *loaded, uint64_t *used)
{
    *loaded = fs->ahead ? fs->ahead->loaded : 0;
    *used = fs->ahead ? fs->ahead->used : 0;
}

void fs_ahead_stop(fs_t *fs)
{
    fs_ahead_t *a = fs->ahead;
    if (!a)
        return;
    a->stopped = true;
    for (run_t *r = a->runs; r; r = r->next)
        run_stop(r);
}

void fs_ahead_free(fs_t *fs)
{
    fs_ahead_t *a = fs->ahead;
    if (!a)
        return;
    /* The nodes are freed with the others (fs_release_all), whatever their references. */
    while (a->runs) {
        run_t *r = a->runs;
        a->runs = r->next;
        run_free(r);
    }
    free(a);
    fs->ahead = NULL;
}
