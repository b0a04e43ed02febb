/*
 * node_metrics.c — a kvnode's metrics scrape (see node_metrics.h).
 *
 * Counters that only moments can tell (requests, errors, latencies) are
 * bumped where they happen; the rest is read from the node's state here,
 * at scrape time, through the same functions STATS uses (kv_stats), so
 * the endpoint and `dhtctl status` never disagree. A scrape costs what a
 * STATS request costs plus one line per peer in the successor list.
 */
#include "node_metrics.h"

#include "kv_i.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* Seconds: 100 µs … 10 s, where a quorum op on loopback or a LAN lands. */
static const double coord_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                      0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};

void node_metrics_init(node_metrics_t *m)
{
    memset(m, 0, sizeof *m);
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 2; k++)
            mx_hist_init(&m->coord[i][k], coord_bounds,
                         sizeof coord_bounds / sizeof coord_bounds[0]);
}

uint64_t node_metrics_usec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void gauge(mx_buf_t *b, const char *name, const char *help, uint64_t v)
{
    mx_family(b, name, MX_GAUGE, help);
    mx_sample_u64(b, name, NULL, 0, v);
}

static void counter(mx_buf_t *b, const char *name, const char *help, uint64_t v)
{
    mx_family(b, name, MX_COUNTER, help);
    mx_sample_u64(b, name, NULL, 0, v);
}

static const char *type_label(uint8_t type, char buf[16])
{
    const char *s = wire_type_name(type);
    if (!s || !*s || strcmp(s, "?") == 0) {
        snprintf(buf, 16, "0x%02x", type);
        return buf;
    }
    return s;
}

static void per_type(mx_buf_t *b, const char *name, const char *help, const uint64_t *v)
{
    mx_family(b, name, MX_COUNTER, help);
    for (unsigned t = 0; t < NODE_METRICS_TYPES; t++) {
        if (!v[t])
            continue;
        char buf[16];
        mx_label_t l = {"type", t ? type_label((uint8_t)t, buf) : "other"};
        mx_sample_u64(b, name, &l, 1, v[t]);
    }
}

static void peer_line(mx_buf_t *b, const node_t *n, const char *name, ring_id_t id,
                      const char *role, unsigned pos, uint64_t v)
{
    char hex[RING_ID_HEX_MAX], p[12];
    const char *addr = node_book_get(n, id);
    snprintf(p, sizeof p, "%u", pos);
    mx_label_t l[4] = {{"peer", node_hex(n, id, hex)},
                       {"addr", addr ? addr : ""},
                       {"role", role},
                       {"position", p}};
    mx_sample_u64(b, name, l, 4, v);
}

static unsigned peer_misses(const node_t *n, ring_id_t id)
{
    for (size_t i = 0; i < BOOK_MAX; i++)
        if (n->book[i].used && n->book[i].id == id)
            return n->book[i].misses;
    return 0;
}

/* The member table (docs/PLACEMENT.md step 1): entries per state. */
static void members(mx_buf_t *b, node_t *n)
{
    uint64_t count[RING_MEMBER_STATE_MAX + 1] = {0};
    size_t total = ring_members_count(n->members);
    for (size_t i = 0; i < total; i++)
        count[ring_members_at(n->members, i)->state]++;
    mx_family(b, "kvnode_members", MX_GAUGE,
              "Entries of the node's member table, by state (a crashed node stays up).");
    for (unsigned s = 0; s <= RING_MEMBER_STATE_MAX; s++) {
        mx_label_t l = {"state", ring_members_state_name((uint8_t)s)};
        mx_sample_u64(b, "kvnode_members", &l, 1, count[s]);
    }
}

static void peers(mx_buf_t *b, node_t *n)
{
    ring_id_t succ[RING_SUCC_MAX], pred;
    size_t ns = ring_state_succ_list(n->rs, succ, RING_SUCC_MAX);
    bool has_pred = ring_state_pred(n->rs, &pred) && pred != n->self;
    size_t nsucc = 0, known = 0;
    for (size_t i = 0; i < ns; i++)
        nsucc += succ[i] != n->self;
    for (size_t i = 0; i < BOOK_MAX; i++)
        known += n->book[i].used;
    gauge(b, "kvnode_ring_successors", "Other nodes in this node's successor list.", nsucc);
    gauge(b, "kvnode_ring_has_predecessor", "1 if this node knows a predecessor other than itself.",
          has_pred);
    gauge(b, "kvnode_peers_known", "Peers in this node's address book (alive or not).", known);
    static const char *const names[2] = {"kvnode_peer_suspect", "kvnode_peer_missed_deadlines"};
    static const char *const helps[2] = {
        "1 while a neighbour has missed a deadline and not answered since.",
        "Deadlines a neighbour has missed in a row (PEER_MISSES_MAX over fail-after-ms = failed)."};
    for (int k = 0; k < 2; k++) {
        mx_family(b, names[k], MX_GAUGE, helps[k]);
        for (size_t i = 0; i < ns; i++) {
            if (succ[i] == n->self)
                continue;
            unsigned miss = peer_misses(n, succ[i]);
            peer_line(b, n, names[k], succ[i], "successor", (unsigned)i, k == 0 ? miss > 0 : miss);
        }
        if (has_pred) {
            unsigned miss = peer_misses(n, pred);
            peer_line(b, n, names[k], pred, "predecessor", 0, k == 0 ? miss > 0 : miss);
        }
    }
}

static void coord(mx_buf_t *b, const node_metrics_t *m)
{
    static const char name[] = "kvnode_coordinated_request_duration_seconds";
    mx_family(b, name, MX_HISTOGRAM,
              "Coordinated gets and puts (KV_GET, KV_PUT at the key's authority): time from "
              "arrival to answer.");
    static const char *const ops[2] = {"get", "put"}, *const results[2] = {"ok", "error"};
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 2; k++) {
            mx_label_t l[2] = {{"op", ops[i]}, {"result", results[k]}};
            mx_hist_write(b, name, l, 2, &m->coord[i][k]);
        }
}

void node_metrics_collect(mx_buf_t *b, void *arg)
{
    node_t *n = arg;
    node_metrics_t *m = &n->metrics;
    struct kv *kv = n->kv;

    mx_family(b, "kvnode_info", MX_GAUGE, "This node: its id, address and quorum settings.");
    char r[8], w[8], q[8];
    snprintf(r, sizeof r, "%u", n->cfg.replicas);
    snprintf(w, sizeof w, "%u", n->cfg.write_quorum);
    snprintf(q, sizeof q, "%u", n->cfg.read_quorum);
    mx_label_t info[5] = {{"id", n->self_hex},
                          {"listen", n->cfg.listen},
                          {"replicas", r},
                          {"write_quorum", w},
                          {"read_quorum", q}};
    mx_sample_u64(b, "kvnode_info", info, 5, 1);
    gauge(b, "kvnode_joined", "1 once the node has joined the ring (and is not rejoining).",
          n->join_phase == JOIN_DONE && !n->rejoining);
    gauge(b, "kvnode_leaving", "1 while the node leaves the ring.", n->leaving);

    per_type(b, "kvnode_requests_total",
             "Requests received and decoded, per wire message type (KV_READ: direct client "
             "reads).",
             m->requests);
    per_type(b, "kvnode_request_errors_total",
             "Error replies sent, per type of the request they answer (other: not known).",
             m->request_errors);
    mx_family(b, "kvnode_error_replies_total", MX_COUNTER, "Error replies sent, per errno.");
    for (int c = 1; c < NODE_METRICS_ERRNO_MAX; c++) {
        if (!m->error_codes[c])
            continue;
        const char *name = c < NODE_METRICS_ERRNO_MAX - 1 ? strerrorname_np(c) : NULL;
        char buf[16];
        if (!name) {
            snprintf(buf, sizeof buf, "%d", c);
            name = c < NODE_METRICS_ERRNO_MAX - 1 ? buf : "other";
        }
        mx_label_t l = {"code", name};
        mx_sample_u64(b, "kvnode_error_replies_total", &l, 1, m->error_codes[c]);
    }
    counter(b, "kvnode_malformed_messages_total", "Messages dropped because they did not decode.",
            m->malformed);
    counter(b, "kvnode_writes_refused_after_stall_total",
            "Client writes refused (busy) because the node had just resumed from a stall they may "
            "have waited through.",
            m->stale_refused);
    counter(b, "kvnode_writes_overtaken_total",
            "Conditional writes and patches not acknowledged because another coordinator may have "
            "written the key after they were decided (outcome unknown; patches retried).",
            m->overtaken);
    counter(b, "kvnode_replica_patches_total",
            "Writes this replica received as a patch of its copy and applied.", m->patches[0]);
    counter(b, "kvnode_replica_patches_refused_total",
            "Patches this replica refused (its copy was not their base): sent again whole.",
            m->patches[1]);
    coord(b, m);

    static wire_msg_t st; /* large; one loop per process */
    wire_init(&st, WIRE_STATS | WIRE_REPLY, 0);
    kv_stats(n, &st);
    gauge(b, "kvnode_stored_keys", "Records stored on this node (tombstones included).",
          st.stored_keys);
    gauge(b, "kvnode_stored_bytes", "Bytes of keys and values stored on this node.", st.bytes);
    gauge(b, "kvnode_primary_keys", "Keys whose authority is this node.", st.primary_keys);
    gauge(b, "kvnode_under_replicated_keys",
          "Primary keys not known to have N healthy copies (as dhtctl status counts them).",
          st.under_replicated);
    gauge(b, "kvnode_disk_total_bytes", "Size of the file system holding --data.", st.disk_total);
    gauge(b, "kvnode_disk_free_bytes", "Free bytes there (for unprivileged users).", st.disk_free);

    gauge(b, "kvnode_hint_backlog_keys",
          "Hinted hand-off: copies queued or in flight to replicas that missed them.",
          st.hint_keys);
    counter(b, "kvnode_hints_lost_total",
            "Hints given up (queue overflow, failed replica): left to anti-entropy.",
            kv_repl_lost(n));
    gauge(b, "kvnode_range_streams",
          "Range streams (repair, join and leave hand-off) this node is sending.", st.streams);
    gauge(b, "kvnode_range_stream_keys_left",
          "Records of the running range streams not compared or sent yet (upper bound).",
          st.stream_keys_left);
    gauge(b, "kvnode_progress_left_bytes",
          "Estimated bytes of hint backlog and range streams still to send.", st.left_bytes);
    counter(b, "kvnode_moved_keys_total",
            "Records sent to other nodes by hinted hand-off and range streams.", st.moved_keys);
    counter(b, "kvnode_moved_bytes_total", "Key and value bytes of those records.", st.moved_bytes);
    gauge(b, "kvnode_antientropy_round_active", "1 while an anti-entropy round runs.",
          kv->round_active);
    gauge(b, "kvnode_antientropy_round_streams_pending",
          "Streams of the running anti-entropy round not finished yet.",
          kv->round_active ? kv->round_pending : 0);
    gauge(b, "kvnode_antientropy_round_missing_keys",
          "Copies the running (or last) anti-entropy round found missing so far.",
          kv->round_missing);
    gauge(b, "kvnode_handoff_streams_pending",
          "Leave: hand-off streams still running (0 when not leaving).", kv->handoff_pending);
    mx_family(b, "kvnode_conditional_writes_total", MX_COUNTER,
              "Conditional writes, by how the authority checked the condition.");
    mx_label_t known[2] = {{"check", "known_newest"}, {"check", "quorum_read"}};
    mx_sample_u64(b, "kvnode_conditional_writes_total", &known[0], 1,
                  kv->known ? kv_known_hits(kv->known) : 0);
    mx_sample_u64(b, "kvnode_conditional_writes_total", &known[1], 1,
                  kv->known ? kv_known_misses(kv->known) : 0);
    peers(b, n);
    members(b, n);
}
