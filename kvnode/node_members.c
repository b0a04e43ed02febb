/*
 * node_members.c — the node's member table (ringlib/ring_members) on the
 * wire: its own entry, the epoch in INFO layout 2, serving MEMBERS pages,
 * and pulling a successor's table when stabilize sees another epoch.
 *
 * Dissemination rides on stabilize (docs/PLACEMENT.md, step 1): each round
 * a node asks its successor INFO (layout 2), and when the epochs differ it
 * pulls the successor's table page by page and merges it. Merging is
 * monotone, so a pull cut short (a timeout, a table that changed between
 * pages) loses nothing: the epochs still differ and the next round pulls
 * again. Information flows from a node to its predecessors; every other
 * round a node also asks one of its fingers (in turn) for its epoch, so a
 * change also jumps back by powers of two, as a Chord broadcast does, and
 * reaches every node in O(log N) rounds rather than one round per node.
 *
 * Deliberately not here: failure handling. A crashed node stays in every
 * table as it was (placement must not move on a restart); only a graceful
 * leave (the node's own `leaving`, its neighbours' `left` on LEAVE)
 * changes an entry's state.
 *
 * The table is also kept in DATA/members (rewritten, without fsync, when
 * its epoch changes) and merged back at start: after a restart of the
 * whole ring every node places as before from its first request on,
 * instead of from the few members gossip has brought back so far — a
 * coordinator placing from a partial table reads from nodes that never
 * held the key and answers "not found" (token placement). A lost or
 * stale file costs only that: merging is by incarnation, and newer
 * entries from the peers win.
 */
#include "node_i.h"

#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum {
    /* Pages of one pull, at most: past the bound the peer is not converging. */
    PULL_PAGES_MAX = RING_MEMBERS_CAP_DEFAULT / WIRE_MEMBERS_PAGE + 4,
};

/* DATA/members (or .tmp) into path; false if it does not fit. */
static bool members_path(const node_t *n, const char *suffix, char path[PATH_MAX])
{
    int len = snprintf(path, PATH_MAX, "%s/members%s", n->cfg.data_dir, suffix);
    return len > 0 && len < PATH_MAX;
}

/* One line per entry: id, weight, state, incarnation, zone ("-": none), address. */
static void members_save(node_t *n)
{
    char tmp[PATH_MAX], path[PATH_MAX];
    if (!members_path(n, ".tmp", tmp) || !members_path(n, "", path))
        return;
    uint64_t epoch = ring_members_epoch(n->members);
    FILE *f = fopen(tmp, "w");
    bool ok = f != NULL;
    for (size_t i = 0; ok && i < ring_members_count(n->members); i++) {
        const ring_member_t *e = ring_members_at(n->members, i);
        ok = fprintf(f, "%016" PRIx64 " %u %u %" PRIu64 " %s %s\n", e->id, e->weight,
                     (unsigned)e->state, e->incarnation, e->zone[0] ? e->zone : "-", e->addr) > 0;
    }
    if (f && fclose(f) != 0)
        ok = false;
    if (!ok || rename(tmp, path) != 0) {
        if (n->members_saved != epoch)
            log_warn("members", "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
    }
    n->members_saved = epoch; /* tried: again at the next change */
}

/* Merge DATA/members, if any, into the fresh table (our own entry excepted); false: none. */
static bool members_load(node_t *n)
{
    char path[PATH_MAX], line[ENDPOINT_MAX + RING_MEMBERS_ZONE_MAX + 128];
    FILE *f = members_path(n, "", path) ? fopen(path, "r") : NULL;
    if (!f)
        return false;
    unsigned merged = 0, bad = 0;
    while (fgets(line, sizeof line, f)) {
        ring_member_t e;
        memset(&e, 0, sizeof e);
        unsigned weight, state;
        char zone[RING_MEMBERS_ZONE_MAX];
        int used = 0;
        if (sscanf(line, "%" SCNx64 " %u %u %" SCNu64 " %31s %n", &e.id, &weight, &state,
                   &e.incarnation, zone, &used) != 5 ||
            used <= 0) {
            bad++;
            continue;
        }
        size_t len = strcspn(line + used, "\n");
        if (len == 0 || len >= sizeof e.addr) {
            bad++;
            continue;
        }
        memcpy(e.addr, line + used, len);
        e.weight = weight;
        e.state = (uint8_t)(state <= RING_MEMBER_STATE_MAX ? state : 0xff);
        if (strcmp(zone, "-") != 0)
            snprintf(e.zone, sizeof e.zone, "%s", zone);
        if (e.id == n->self)
            continue;
        if (!ring_members_entry_valid(&e, n->cfg.id_bits) || ring_members_merge(n->members, &e) < 0)
            bad++;
        else
            merged++;
    }
    fclose(f);
    log_info("members", "%u entries from %s%s", merged, path,
             bad ? " (some lines unreadable)" : "");
    n->members_saved = ring_members_epoch(n->members);
    return merged > 0;
}

int node_members_init(node_t *n, char *err, size_t errcap)
{
    ring_member_t self;
    memset(&self, 0, sizeof self);
    self.id = n->self;
    snprintf(self.addr, sizeof self.addr, "%s", n->cfg.listen);
    self.weight = n->cfg.weight ? n->cfg.weight : 1;
    snprintf(self.zone, sizeof self.zone, "%s", n->cfg.zone);
    self.state = RING_MEMBER_UP;
    /*
     * Wall-clock milliseconds: a restarted node (same id) starts above
     * every incarnation its earlier run or its neighbours' "left" mark
     * (one above) gave it, without storing a counter. A clock set back is
     * caught by the table: a newer copy of our own entry is refuted.
     */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    self.incarnation = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    int rc = ring_members_new(&self, n->cfg.id_bits, 0, &n->members);
    if (rc < 0) {
        snprintf(err, errcap, "%s",
                 rc == -ENOMEM ? "out of memory" : "invalid member entry (weight or zone)");
        return rc;
    }
    /* A newcomer knows only itself until its first pull: it must not place from that. */
    n->members_partial = !members_load(n) && n->cfg.join[0];
    n->place.fresh = n->members_partial;
    return 0;
}

bool node_members_complete(const node_t *n)
{
    return !n->members_partial;
}

void node_members_fini(node_t *n)
{
    ring_members_destroy(&n->members);
}

void node_members_fill_info(node_t *n, wire_msg_t *r)
{
    const ring_member_t *self = ring_members_self(n->members);
    r->has_epoch = true;
    r->epoch = ring_members_epoch(n->members);
    r->members = (uint32_t)ring_members_count(n->members);
    r->weight = (uint16_t)self->weight;
    snprintf(r->zone, sizeof r->zone, "%s", self->zone);
}

void node_members_serve(node_t *n, const wire_msg_t *m, wire_msg_t *r)
{
    size_t count = ring_members_count(n->members);
    size_t i = ring_members_index_after(n->members, !m->has_after, m->after);
    r->epoch = ring_members_epoch(n->members);
    r->members = (uint32_t)count;
    r->nmember = 0;
    for (; i < count && r->nmember < WIRE_MEMBERS_PAGE; i++) {
        const ring_member_t *e = ring_members_at(n->members, i);
        wire_member_t *w = &r->member[r->nmember++];
        wire_node_set(&w->node, e->id, e->addr);
        w->weight = (uint16_t)e->weight;
        snprintf(w->zone, sizeof w->zone, "%s", e->zone);
        w->state = e->state;
        w->incarnation = e->incarnation;
    }
    r->more = i < count;
}

static void pull_page(node_t *n, bool has_after, ring_id_t after);

static void pull_done(node_t *n)
{
    n->pull.active = false;
    if (n->pull.changed == 0)
        return;
    size_t count = ring_members_count(n->members), up = 0;
    for (size_t i = 0; i < count; i++)
        up += ring_members_at(n->members, i)->state == RING_MEMBER_UP;
    char a[RING_ID_HEX_MAX];
    log_info("members", "merged %u entries from %s: %zu members (%zu up), epoch %016" PRIx64,
             n->pull.changed, node_hex(n, n->pull.from, a), count, up,
             ring_members_epoch(n->members));
}

static void on_members_page(int rc, const wire_msg_t *r, void *arg)
{
    node_t *n = arg;
    if (rc == -ECANCELED || !n->members)
        return;
    if (rc < 0) {
        char a[RING_ID_HEX_MAX];
        log_debug("members", "pull from %s failed: %s", node_hex(n, n->pull.from, a),
                  strerror(-rc));
        pull_done(n);
        return;
    }
    ring_id_t last = 0;
    for (unsigned i = 0; i < r->nmember; i++) {
        const wire_member_t *w = &r->member[i];
        ring_member_t e;
        memset(&e, 0, sizeof e);
        e.id = w->node.id;
        snprintf(e.addr, sizeof e.addr, "%s", w->node.addr);
        e.weight = w->weight;
        snprintf(e.zone, sizeof e.zone, "%s", w->zone);
        e.state = w->state;
        e.incarnation = w->incarnation;
        /* Invalid for our ring (id >= 2^m): skipped, the rest still counts. */
        if (ring_members_merge(n->members, &e) > 0)
            n->pull.changed++;
        last = w->node.id;
    }
    /* The cursor must advance, and a pull is bounded: a peer cannot keep us paging. */
    bool advanced = r->nmember > 0 && (!n->pull.has_cursor || last > n->pull.cursor);
    if (r->more && advanced && ++n->pull.pages < PULL_PAGES_MAX && !n->leaving) {
        pull_page(n, true, last);
        return;
    }
    if (!r->more && n->members_partial) {
        /* (A peer whose own table is partial refuses MEMBERS: this one is whole.) */
        n->members_partial = false;
        n->place.built = false; /* rebuilt from the whole table even if its epoch is unchanged */
        log_info("members", "first member table merged: coordinating from now on");
    }
    pull_done(n);
}

static void pull_page(node_t *n, bool has_after, ring_id_t after)
{
    wire_msg_t req;
    wire_init(&req, WIRE_MEMBERS, 0);
    req.has_after = has_after;
    req.after = has_after ? after : 0;
    n->pull.has_cursor = has_after;
    n->pull.cursor = after;
    if (rpc_call_lane(n->rpc, n->pull.addr, RPC_LANE_CTL, &req, n->cfg.timeout_ms, on_members_page,
                      n) < 0)
        pull_done(n);
}

void node_members_seen(node_t *n, ring_id_t peer, const char *addr, uint64_t epoch)
{
    if (n->pull.active || n->leaving || !addr || epoch == ring_members_epoch(n->members))
        return;
    n->pull.active = true;
    n->pull.from = peer;
    snprintf(n->pull.addr, sizeof n->pull.addr, "%s", addr);
    n->pull.pages = 0;
    n->pull.changed = 0;
    pull_page(n, false, 0);
}

static void on_finger_info(int rc, const wire_msg_t *r, void *arg)
{
    node_t *n = arg;
    if (rc == -ECANCELED || !n->members)
        return;
    n->pull.probing = false;
    /* Errors are not failures here: stabilize and the pings judge those. */
    if (rc == -EPROTONOSUPPORT)
        node_refused_info2(n, n->pull.probe);
    if (rc == 0 && r->has_epoch && r->node.id == n->pull.probe)
        node_members_seen(n, r->node.id, node_book_get(n, r->node.id), r->epoch);
}

void node_members_tick(node_t *n)
{
    if (ring_members_epoch(n->members) != n->members_saved)
        members_save(n);
    if (n->pull.active || n->pull.probing || n->leaving || n->ticks % 2)
        return;
    ring_id_t succ = ring_state_succ(n->rs);
    for (unsigned k = 0; k < n->cfg.id_bits; k++) {
        unsigned i = n->pull.next_finger++ % n->cfg.id_bits;
        ring_id_t f;
        if (!ring_state_finger(n->rs, i, &f) || f == n->self || f == succ ||
            node_peer_suspect(n, f) || !node_speaks_info2(n, f))
            continue;
        const char *addr = node_book_get(n, f);
        if (!addr)
            continue;
        wire_msg_t req;
        wire_init(&req, WIRE_INFO, 0);
        req.has_epoch = true;
        if (rpc_call_lane(n->rpc, addr, RPC_LANE_CTL, &req, n->cfg.timeout_ms, on_finger_info, n) ==
            0) {
            n->pull.probing = true;
            n->pull.probe = f;
        }
        return;
    }
}

void node_members_left(node_t *n, ring_id_t id)
{
    char a[RING_ID_HEX_MAX];
    if (ring_members_mark_left(n->members, id) > 0)
        log_info("members", "%s marked left, epoch %016" PRIx64, node_hex(n, id, a),
                 ring_members_epoch(n->members));
}

void node_members_leaving(node_t *n)
{
    ring_members_set_self_state(n->members, RING_MEMBER_LEAVING);
}
