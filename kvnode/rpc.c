/*
 * rpc.c — request/reply bookkeeping over per-peer DEALER sockets.
 *
 * A request id encodes the pending slot that waits for it (low 16 bits) and
 * a per-process sequence (high bits), so a reply finds its call in O(1) and
 * a late reply to a timed-out call (whose slot was reused) is recognised by
 * the mismatching sequence and dropped. The sequence starts at a random
 * value so that a restarted process does not accept replies meant for its
 * previous incarnation.
 *
 * A call that misses its deadline fails alone: a busy peer answers late,
 * and resetting its connection then would fail every other call queued to
 * it (under load one slow reply used to cascade into hundreds of failed
 * replications). The connection is reset when a call times out, the peer
 * has answered nothing on it since that call was sent, and no other call
 * on it has time left; or when the failure detector gives the peer up
 * (rpc_reset_peer): ZeroMQ would otherwise keep the abandoned requests
 * queued for a dead peer, and deliver them (stale) to a process listening
 * at its address later.
 *
 * Each peer may have two connections, one per lane: RPC_LANE_DATA for
 * store traffic and RPC_LANE_CTL for ring maintenance (stabilize, pings,
 * notifications). The peer's ROUTER fair-queues between connections, so a
 * heartbeat does not wait behind thousands of queued replications.
 *
 * CURVE: an address with a "#KEY" suffix is a secured node; its DEALER is
 * a CURVE client that expects that server key and presents this process's
 * key (rpc_set_key; without one, a random key of this process, which a
 * secured ring refuses like any unlisted key). Such a connection also has
 * a socket monitor on the loop: when the server refuses the handshake (its
 * ZAP handler said no, or it speaks no CURVE), the calls waiting on it fail
 * at once with -EACCES instead of waiting out their deadlines. Clients also
 * watch their plain connections (rpc_watch_plain): a secured node answers a
 * plain handshake with a mechanism mismatch, and the calls fail at once
 * with -EPROTO ("this node requires CURVE") rather than time out. Nodes do
 * not: a monitor costs two more sockets per connection, and a node of an
 * unsecured ring only talks to its own kind.
 */
#include "rpc.h"

#include "endpoint.h"
#include "log.h"
#include "sec_key.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

enum {
    RPC_SLOTS = 4096,
    RPC_CONNS_MAX = 128,
    RPC_TICK_MS = 20,
};

typedef struct conn {
    char addr[ENDPOINT_MAX];
    rpc_lane_t lane;
    void *sock;
    void *mon;           /* handshake monitor of a CURVE connection, or NULL */
    uint64_t last_rx_ms; /* last reply of any kind on it (0: none yet) */
    uint64_t generation; /* bumped whenever sock is closed */
    uint64_t last_used;
    struct conn *next;
} conn_t;

typedef struct {
    uint64_t req_id; /* 0: free */
    uint64_t deadline;
    unsigned timeout_ms;
    conn_t *conn;
    rpc_done_fn done;
    void *arg;
    uint8_t type;
} slot_t;

struct rpc {
    void *zctx;
    loop_t *loop;
    conn_t *conns;
    size_t nconns;
    slot_t *slots;
    size_t npending;
    uint32_t next_slot;
    uint64_t seq;
    uint64_t tick_timer;
    uint64_t mon_seq;
    bool has_key;
    bool watch_plain; /* monitor plain connections' handshakes too */
    /* The last address whose handshake said it requires CURVE (until it answers plain). */
    char plain_refused[ENDPOINT_MAX];
    sec_keypair_t key;    /* presented to CURVE servers */
    wire_msg_t scratch;   /* decoded reply, lent to the callback */
    zmq_msg_t *cur_value; /* its value frame, while the callback runs */
};

static void tick(loop_t *loop, void *arg);

void *rpc_ctx_new(void)
{
    void *zctx = zmq_ctx_new();
    if (!zctx)
        return NULL;
    int n = RPC_IO_THREADS;
    const char *env = getenv("DHTFS_IO_THREADS");
    if (env && *env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (*end == '\0' && v >= 1 && v <= 16)
            n = (int)v;
    }
    zmq_ctx_set(zctx, ZMQ_IO_THREADS, n);
    return zctx;
}

rpc_t *rpc_new(void *zctx, loop_t *loop)
{
    rpc_t *rpc = calloc(1, sizeof *rpc);
    if (!rpc)
        return NULL;
    rpc->slots = calloc(RPC_SLOTS, sizeof *rpc->slots);
    if (!rpc->slots) {
        free(rpc);
        return NULL;
    }
    rpc->zctx = zctx;
    rpc->loop = loop;
    rpc->seq = randombytes_random() | 1u;
    return rpc;
}

int rpc_set_key(rpc_t *rpc, const sec_keypair_t *kp)
{
    rpc->key = *kp;
    rpc->has_key = true;
    return 0;
}

static void close_conn(rpc_t *rpc, conn_t *c)
{
    if (!c->sock)
        return; /* a callback may have closed it already */
    if (c->mon) {
        loop_remove_socket(rpc->loop, c->mon);
        zmq_close(c->mon);
        c->mon = NULL;
    }
    loop_remove_socket(rpc->loop, c->sock);
    zmq_close(c->sock);
    c->sock = NULL;
    c->generation++;
}

static void finish(rpc_t *rpc, slot_t *s, int rc, const wire_msg_t *reply)
{
    rpc_done_fn done = s->done;
    void *arg = s->arg;
    *s = (slot_t){0};
    rpc->npending--;
    done(rc, reply, arg);
}

/*
 * Detach c's pending calls: they fail at the next tick, from the loop, never
 * from inside rpc_call (whose caller may be in the middle of building a
 * request).
 */
static void detach_conn_calls(rpc_t *rpc, conn_t *c)
{
    for (size_t i = 0; i < RPC_SLOTS; i++)
        if (rpc->slots[i].req_id && rpc->slots[i].conn == c) {
            rpc->slots[i].conn = NULL;
            rpc->slots[i].deadline = 0;
        }
}

static void fail_conn_calls(rpc_t *rpc, conn_t *c, int rc)
{
    for (size_t i = 0; i < RPC_SLOTS; i++)
        if (rpc->slots[i].req_id && rpc->slots[i].conn == c)
            finish(rpc, &rpc->slots[i], rc, NULL);
}

static bool conn_has_time_left(const rpc_t *rpc, const conn_t *c, uint64_t now)
{
    for (size_t i = 0; i < RPC_SLOTS; i++)
        if (rpc->slots[i].req_id && rpc->slots[i].conn == c && rpc->slots[i].deadline > now)
            return true;
    return false;
}

void rpc_destroy(rpc_t **prpc)
{
    if (!prpc || !*prpc)
        return;
    rpc_t *rpc = *prpc;
    for (size_t i = 0; i < RPC_SLOTS; i++)
        if (rpc->slots[i].req_id)
            finish(rpc, &rpc->slots[i], -ECANCELED, NULL);
    conn_t *c = rpc->conns;
    while (c) {
        conn_t *next = c->next;
        if (c->sock)
            close_conn(rpc, c);
        free(c);
        c = next;
    }
    if (rpc->tick_timer)
        loop_timer_cancel(rpc->loop, rpc->tick_timer);
    free(rpc->slots);
    sodium_memzero(&rpc->key, sizeof rpc->key);
    free(rpc);
    *prpc = NULL;
}

int rpc_recv_frames(void *zsock, zmq_msg_t *parts, int cap)
{
    int total = 0;
    bool more = true;
    while (more) {
        zmq_msg_t tmp;
        zmq_msg_init(&tmp);
        if (zmq_msg_recv(&tmp, zsock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&tmp);
            break;
        }
        more = zmq_msg_more(&tmp);
        if (total < cap)
            parts[total] = tmp;
        else
            zmq_msg_close(&tmp);
        total++;
    }
    return total;
}

static void on_readable(loop_t *loop, void *zsock, int fd, void *arg)
{
    (void)fd;
    rpc_t *rpc = arg;
    conn_t *c = rpc->conns;
    while (c && c->sock != zsock)
        c = c->next;
    if (!c)
        return;
    c->last_rx_ms = loop_now_ms(loop);
    if (strcmp(c->addr, rpc->plain_refused) == 0)
        rpc->plain_refused[0] = '\0';
    /*
     * A callback may reset this very connection; the generation tells us to
     * stop reading from a socket that no longer exists.
     */
    uint64_t gen = c->generation;
    /* Drain a bounded batch; the loop asks the socket again for the rest. */
    for (int n = 0; n < 256 && c->generation == gen; n++) {
        zmq_msg_t parts[2];
        int total = rpc_recv_frames(zsock, parts, 2);
        if (total == 0) {
            loop_idle(loop, zsock);
            return;
        }
        int nparts = total < 2 ? total : 2;
        bool extra = total > 2;
        wire_msg_t *m = &rpc->scratch;
        int rc = wire_decode(zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]), m);
        bool want_value = rc == 0 && wire_type_has_value(m->type);
        if (rc == 0 && (extra || (nparts == 2) != want_value))
            rc = -EBADMSG;
        if (rc == 0 && want_value) {
            m->value = zmq_msg_data(&parts[1]);
            m->value_len = zmq_msg_size(&parts[1]);
        }
        slot_t *s = &rpc->slots[m->req_id % RPC_SLOTS];
        if (rc < 0 && rc != -EPROTONOSUPPORT) {
            log_warn("rpc", "dropped a malformed reply (%s)", strerror(-rc));
        } else if (s->req_id != m->req_id || s->conn != c) {
            log_debug("rpc", "late or unknown reply %s id %llx dropped", wire_type_name(m->type),
                      (unsigned long long)m->req_id);
        } else if (rc == -EPROTONOSUPPORT) {
            finish(rpc, s, -EPROTONOSUPPORT, NULL);
        } else if (m->type == WIRE_ERROR) {
            finish(rpc, s, m->err_code > 0 ? -m->err_code : -EIO, m);
        } else if (m->type == WIRE_REDIRECT) {
            finish(rpc, s, -EREMOTE, m);
        } else if (m->type != (s->type | WIRE_REPLY)) {
            finish(rpc, s, -EBADMSG, NULL);
        } else {
            rpc->cur_value = want_value ? &parts[1] : NULL;
            finish(rpc, s, 0, m);
            rpc->cur_value = NULL;
        }
        for (int i = 0; i < nparts; i++)
            zmq_msg_close(&parts[i]);
    }
}

int rpc_take_value(rpc_t *rpc, zmq_msg_t *dst)
{
    if (!rpc->cur_value)
        return -ENOENT;
    zmq_msg_init(dst);
    return zmq_msg_move(dst, rpc->cur_value) == 0 ? 0 : -errno;
}

/*
 * A connection's monitor reported. On a CURVE connection a refused
 * handshake fails its calls with -EACCES. On a plain one (rpc_watch_plain)
 * only a mechanism mismatch does, with -EPROTO: the node speaks CURVE and
 * we offered none, which no retry can change. Other protocol errors on a
 * plain connection are left to ZeroMQ's reconnects and the calls' deadlines.
 */
static void on_monitor(loop_t *loop, void *zsock, int fd, void *arg)
{
    (void)fd;
    rpc_t *rpc = arg;
    conn_t *c = rpc->conns;
    while (c && c->mon != zsock)
        c = c->next;
    if (!c)
        return;
    bool secured = strchr(c->addr, '#') != NULL;
    for (;;) {
        zmq_msg_t parts[2];
        int total = rpc_recv_frames(zsock, parts, 2);
        if (total == 0) {
            loop_idle(loop, zsock);
            return;
        }
        uint16_t event = 0;
        uint32_t value = 0;
        if (total >= 1 && zmq_msg_size(&parts[0]) == 6) {
            memcpy(&event, zmq_msg_data(&parts[0]), 2);
            memcpy(&value, (uint8_t *)zmq_msg_data(&parts[0]) + 2, 4);
        }
        for (int i = 0; i < (total < 2 ? total : 2); i++)
            zmq_msg_close(&parts[i]);
        bool failed =
            event & (ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL);
        bool mismatch = event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL &&
                        value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH;
        if (secured && failed) {
            log_warn("rpc", "%s refused our key (CURVE handshake failed: %s %u)", c->addr,
                     event & ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ? "auth status" : "protocol error",
                     (unsigned)value);
        } else if (!secured && mismatch) {
            log_warn("rpc", "%s requires CURVE: give a key and its address as EP#KEY", c->addr);
            snprintf(rpc->plain_refused, sizeof rpc->plain_refused, "%s", c->addr);
        } else {
            continue;
        }
        /* Closing ends the monitor too: stop reading from it now. */
        close_conn(rpc, c);
        fail_conn_calls(rpc, c, secured ? -EACCES : -EPROTO);
        return;
    }
}

/* Watch s's handshakes on the loop through a socket monitor. 0, or -errno. */
static int watch_conn(rpc_t *rpc, conn_t *c, void *s)
{
    char name[64];
    snprintf(name, sizeof name, "inproc://rpc-mon-%p-%llu", (void *)rpc,
             (unsigned long long)++rpc->mon_seq);
    if (zmq_socket_monitor(
            s, name, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) < 0)
        return -zmq_errno();
    void *mon = zmq_socket(rpc->zctx, ZMQ_PAIR);
    if (!mon)
        return -zmq_errno();
    int linger = 0;
    zmq_setsockopt(mon, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_connect(mon, name) < 0 || loop_add_socket(rpc->loop, mon, on_monitor, rpc) < 0) {
        zmq_close(mon);
        return -EIO;
    }
    c->mon = mon;
    return 0;
}

/*
 * Make s a CURVE client of the server whose public key is server_key, with a
 * monitor for refused handshakes. 0, or -errno.
 */
static int secure_conn(rpc_t *rpc, conn_t *c, void *s, const uint8_t *server_key)
{
    if (!rpc->has_key) {
        /* No key of our own: a throwaway one (encrypted, and refused as unlisted). */
        if (sec_keypair_generate(&rpc->key) < 0)
            return -EIO;
        rpc->has_key = true;
    }
    if (zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, server_key, SEC_KEY_BYTES) < 0 ||
        zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, rpc->key.pub.b, SEC_KEY_BYTES) < 0 ||
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, rpc->key.secret, SEC_KEY_BYTES) < 0)
        return -zmq_errno();
    return watch_conn(rpc, c, s);
}

void rpc_watch_plain(rpc_t *rpc)
{
    rpc->watch_plain = true;
}

static conn_t *get_conn(rpc_t *rpc, const char *addr, rpc_lane_t lane)
{
    conn_t *c = rpc->conns, *lru = NULL, *closed = NULL;
    for (; c; c = c->next) {
        if (c->lane == lane && strcmp(c->addr, addr) == 0)
            break;
        if (!c->sock && !closed)
            closed = c;
        if (c->sock && (!lru || c->last_used < lru->last_used))
            lru = c;
    }
    if (!c) {
        if (closed) {
            c = closed; /* an entry whose socket is gone: reuse it */
        } else if (rpc->nconns >= RPC_CONNS_MAX && lru) {
            /* Evict the least recently used peer; its calls fail at the next tick. */
            detach_conn_calls(rpc, lru);
            close_conn(rpc, lru);
            c = lru;
        } else {
            c = calloc(1, sizeof *c);
            if (!c)
                return NULL;
            c->next = rpc->conns;
            rpc->conns = c;
            rpc->nconns++;
        }
        snprintf(c->addr, sizeof c->addr, "%s", addr);
        c->lane = lane;
        c->last_rx_ms = 0;
    }
    if (!c->sock) {
        void *s = zmq_socket(rpc->zctx, ZMQ_DEALER);
        if (!s)
            return NULL;
        int linger = 0, hwm = 10000;
        int64_t maxmsg = 64 << 20;
        zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
        zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
        zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
        zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
        char base[ENDPOINT_MAX];
        uint8_t server_key[SEC_KEY_BYTES];
        int k = endpoint_split_key(addr, base, server_key);
        int rc = k < 0              ? -EINVAL
                 : k == 1           ? secure_conn(rpc, c, s, server_key)
                 : rpc->watch_plain ? watch_conn(rpc, c, s)
                                    : 0;
        if (rc < 0 || zmq_connect(s, base) < 0) {
            log_warn("rpc", "cannot connect to %s: %s", addr,
                     rc < 0 ? strerror(-rc) : zmq_strerror(zmq_errno()));
            if (c->mon) {
                loop_remove_socket(rpc->loop, c->mon);
                zmq_close(c->mon);
                c->mon = NULL;
            }
            zmq_close(s);
            return NULL;
        }
        if (loop_add_socket(rpc->loop, s, on_readable, rpc) < 0) {
            if (c->mon) {
                loop_remove_socket(rpc->loop, c->mon);
                zmq_close(c->mon);
                c->mon = NULL;
            }
            zmq_close(s);
            return NULL;
        }
        c->sock = s;
    }
    c->last_used = loop_now_ms(rpc->loop);
    return c;
}

static void tick(loop_t *loop, void *arg)
{
    rpc_t *rpc = arg;
    rpc->tick_timer = 0;
    uint64_t now = loop_now_ms(loop);
    for (size_t i = 0; i < RPC_SLOTS; i++) {
        slot_t *s = &rpc->slots[i];
        if (!s->req_id || s->deadline > now)
            continue;
        conn_t *c = s->conn;
        /* Decided before the callback, which may send on c or reuse it. */
        bool silent = c && c->sock && c->last_rx_ms < s->deadline - s->timeout_ms;
        uint64_t gen = c ? c->generation : 0;
        log_debug("rpc", "%s to %s timed out", wire_type_name(s->type), c ? c->addr : "?");
        finish(rpc, s, -ETIMEDOUT, NULL);
        /*
         * A peer that answered nothing on this connection since the call
         * was sent may be down, and the call may still sit in ZeroMQ's
         * queue for it, to be delivered to whatever listens there next — a
         * restarted node would apply a write the caller has given up on and
         * retried elsewhere, over newer ones. Once no call on it has time
         * left, closing drops that queue and costs nothing. A call that
         * still has time (a longer deadline: a replica's commit, a stream;
         * or one its callback just sent) keeps the connection: busy is not
         * down, and the caller stops sending to a dead peer soon enough.
         */
        if (silent && c->sock && c->generation == gen && !conn_has_time_left(rpc, c, now)) {
            log_debug("rpc", "%s silent since the call was sent: connection reset", c->addr);
            close_conn(rpc, c);
            fail_conn_calls(rpc, c, -ETIMEDOUT);
        }
    }
    if (rpc->npending && !rpc->tick_timer)
        rpc->tick_timer = loop_timer_add(loop, RPC_TICK_MS, tick, rpc);
}

int rpc_call_lane(rpc_t *rpc, const char *addr, rpc_lane_t lane, wire_msg_t *req,
                  unsigned timeout_ms, rpc_done_fn done, void *arg)
{
    if (!rpc)
        return -ESHUTDOWN;
    if (rpc->npending >= RPC_SLOTS)
        return -EAGAIN;
    uint32_t idx = rpc->next_slot;
    while (rpc->slots[idx].req_id)
        idx = (idx + 1) % RPC_SLOTS;
    rpc->next_slot = (idx + 1) % RPC_SLOTS;

    bool with_value = wire_type_has_value(req->type);
    if (with_value && req->value_len > WIRE_VALUE_MAX)
        return -EFBIG;
    conn_t *c = get_conn(rpc, addr, lane);
    if (!c)
        return -EINVAL;
    rpc->seq++;
    req->req_id = rpc->seq * RPC_SLOTS + idx;
    /* One loop per process, so one encode buffer serves every call; it is
     * filled only after everything that could run other code. */
    static uint8_t buf[WIRE_FRAME_MAX];
    int len = wire_encode(req, buf, sizeof buf);
    if (len < 0)
        return len;
    loop_touch(rpc->loop, c->sock);
    if (zmq_send(c->sock, buf, (size_t)len, ZMQ_DONTWAIT | (with_value ? ZMQ_SNDMORE : 0)) < 0 ||
        (with_value && zmq_send(c->sock, req->value_len ? req->value : (const void *)"",
                                req->value_len, ZMQ_DONTWAIT) < 0)) {
        int err = zmq_errno();
        /*
         * A plain connection to a node that requires CURVE loses its only
         * pipe as soon as the handshake fails, which can be before the
         * first send: say so once the monitor has told us. Otherwise a
         * full queue means the peer is not draining: treat as unreachable.
         */
        if (err == EAGAIN && strcmp(addr, rpc->plain_refused) == 0)
            return -EPROTO;
        return err == EAGAIN ? -EAGAIN : -err;
    }
    /*
     * The clock itself, not the loop's reading from its last poll: a call
     * sent by a callback that ran after a stall (a frozen process, a
     * stopped VM) would otherwise start with the stall already spent.
     */
    rpc->slots[idx] =
        (slot_t){req->req_id, loop_clock_ms() + timeout_ms, timeout_ms, c, done, arg, req->type};
    rpc->npending++;
    if (!rpc->tick_timer)
        rpc->tick_timer = loop_timer_add(rpc->loop, RPC_TICK_MS, tick, rpc);
    return 0;
}

int rpc_call(rpc_t *rpc, const char *addr, wire_msg_t *req, unsigned timeout_ms, rpc_done_fn done,
             void *arg)
{
    return rpc_call_lane(rpc, addr, RPC_LANE_DATA, req, timeout_ms, done, arg);
}

void rpc_ignore_answer(int rc, const wire_msg_t *reply, void *what)
{
    (void)reply;
    if (rc < 0 && rc != -ECANCELED)
        log_debug("rpc", "%s not acknowledged: %s", (const char *)what, strerror(-rc));
}

void rpc_reset_peer(rpc_t *rpc, const char *addr)
{
    for (conn_t *c = rpc->conns; c; c = c->next)
        if (c->sock && strcmp(c->addr, addr) == 0) {
            /* Close first: the failed calls' callbacks may send to it again. */
            close_conn(rpc, c);
            fail_conn_calls(rpc, c, -ETIMEDOUT);
        }
}

uint64_t rpc_last_reply_ms(const rpc_t *rpc, const char *addr)
{
    uint64_t last = 0;
    for (const conn_t *c = rpc->conns; c; c = c->next)
        if (c->sock && c->last_rx_ms > last && strcmp(c->addr, addr) == 0)
            last = c->last_rx_ms;
    return last;
}

size_t rpc_pending(const rpc_t *rpc)
{
    return rpc->npending;
}
