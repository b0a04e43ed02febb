/*
 * mc_server.c — memcached connections on the node's loop.
 *
 * One epoll set holds the listener and every connection; the loop watches
 * the epoll fd, so thousands of connections cost the loop one poll item,
 * and writability (EPOLLOUT) is available although the loop only polls
 * for input. Nothing blocks: reads and writes are non-blocking, and store
 * operations are kvclient calls whose callbacks continue the request.
 *
 * A connection is a small state machine: it parses requests from its input
 * buffer (mc_proto.h) and runs them one at a time, in order, so a pipelined
 * "set k ... get k" sees its own set, as with memcached. A multi-key get
 * runs GET_WINDOW store reads at once. Input is bounded (one command line
 * plus one item), and so is output: while more than OUT_HIGH bytes wait
 * for a client that does not read, the connection stops reading requests
 * and a multi-key get waits before its next window.
 *
 * Read-modify-write commands (add, replace, append, prepend, cas,
 * incr/decr, touch, gat, delete) read the item and write it back with a
 * conditional put on the version they read; a conflict with another
 * writer reads again after a random pause that doubles each time (writers
 * that collided would otherwise collide again), at most RMW_ATTEMPTS times
 * (cas reports EXISTS).
 *
 * flush_all writes a marker key ("mc!flush") whose version is the flush
 * time; items written before it read as misses once it is due. Each node
 * re-reads the marker every FLUSH_REFRESH_MS, so a flush through one node
 * takes effect on the others within that time.
 */
#include "mc_server.h"

#include "log.h"
#include "mc_proto.h"
#include "tcp_listen.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum {
    CONN_MAX = 4096,
    FD_RESERVE = 256,      /* descriptors left to the node (peers, LMDB, logs) */
    ACCEPT_PAUSE_MS = 200, /* out of descriptors: stop accepting this long */
    IN_CAP = MC_LINE_MAX + MC_VALUE_MAX + 2,
    IN_START = 16 * 1024,
    OUT_HIGH = 4 * 1024 * 1024,
    GET_WINDOW = 16,
    RMW_ATTEMPTS = 16,
    RMW_PAUSE_MAX_MS = 64, /* the random pause before a retry: 1..2^attempt ms, up to this */
    FLUSH_REFRESH_MS = 1000,
    EVENTS_MAX = 64,
    NS_LEN = 3, /* "mc/" */
};

static const char NS[] = "mc/";
static const char FLUSH_KEY[] = "mc!flush";
static const char VERSION_STR[] = "1.6.0-dhtfs";

typedef struct mc_conn mc_conn_t;

/* One key's store work within the current request. */
typedef struct {
    mc_conn_t *c;
    size_t idx; /* key index in the request */
    unsigned attempts;
    bool present; /* the store holds a record (maybe expired or flushed) */
    bool live;    /* ... and it is an item a client may see */
    kv_version_t ver;
    uint8_t *rec; /* copy of the stored record */
    size_t rec_len;
    mc_item_t it;   /* decoded from rec when live */
    uint64_t timer; /* a retry waits (and holds the connection) */
    int err;        /* multi-key commands: this key failed */
    char errmsg[120];
} job_t;

typedef struct {
    mc_server_t *s; /* NULL once the server is gone */
} flush_op_t;

struct mc_conn {
    mc_server_t *s;
    mc_conn_t *prev, *next;
    int fd;
    uint8_t *in;
    size_t in_len, in_off, in_cap; /* in_cap grows to IN_CAP for a large item */
    size_t swallow;
    mc_out_t out;
    size_t out_off;
    uint32_t events; /* current epoll interest */
    bool busy;       /* a request is running */
    bool closing;    /* close once the output is sent */
    bool closed;     /* fd closed; freed when pending reaches 0 */
    bool wait_drain; /* a multi-get waits for the output to drain */
    bool in_start;   /* request_start() is on the stack */
    bool eof;        /* the client shut its side: answer what it sent, then close */
    unsigned pending;
    size_t used; /* bytes of the running request */
    mc_req_t req;
    /* request state */
    mc_cmd_t eff; /* effective command (ms maps to a storage command) */
    bool has_cas;
    uint64_t cas;
    int64_t exp_abs;
    bool ma_vivify; /* ma N: create a missing counter with ma_initial */
    uint64_t ma_initial;
    int64_t ma_ttl;
    size_t next_key, window, window_done;
    job_t jobs[GET_WINDOW];
};

typedef struct {
    uint64_t curr_conns, total_conns, rejected_conns;
    uint64_t cmd_get, cmd_set, cmd_touch, cmd_flush;
    uint64_t get_hits, get_misses, get_expired, get_flushed;
    uint64_t delete_hits, delete_misses, incr_hits, incr_misses, decr_hits, decr_misses;
    uint64_t cas_hits, cas_misses, cas_badval, touch_hits, touch_misses;
    uint64_t bytes_read, bytes_written;
} stats_t;

struct mc_server {
    loop_t *loop;
    kvc_t *kvc;
    int lfd, ep;
    mc_conn_t *conns;
    stats_t st;
    uint64_t started_s;
    uint64_t flush_hlc; /* items with a smaller version are flushed once due; 0 none */
    uint64_t flush_timer;
    flush_op_t *flush_op; /* refresh in flight */
    size_t conn_max;
    uint64_t accept_timer; /* accepting paused (out of descriptors) */
};

static void conn_process(mc_conn_t *c);
static void conn_flush(mc_conn_t *c);
static void job_read(job_t *j);
static void request_done(mc_conn_t *c);

static int64_t wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---------------------------------------------------------- connection */

static void conn_set_events(mc_conn_t *c)
{
    if (c->closed)
        return;
    uint32_t ev = 0;
    size_t unsent = c->out.len - c->out_off;
    if (!c->busy && !c->closing && !c->eof && unsent < OUT_HIGH)
        ev |= EPOLLIN;
    if (unsent)
        ev |= EPOLLOUT;
    if (ev == c->events)
        return;
    struct epoll_event e = {.events = ev, .data.ptr = c};
    epoll_ctl(c->s->ep, EPOLL_CTL_MOD, c->fd, &e);
    c->events = ev;
}

static void conn_free(mc_conn_t *c)
{
    for (size_t i = 0; i < GET_WINDOW; i++)
        free(c->jobs[i].rec);
    free(c->in);
    mc_out_free(&c->out);
    free(c);
}

/* Close now; the memory goes when the last store operation has answered. */
static void conn_close(mc_conn_t *c)
{
    if (c->closed)
        return;
    mc_server_t *s = c->s;
    epoll_ctl(s->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->closed = true;
    s->st.curr_conns--;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    if (c->pending == 0)
        conn_free(c);
}

/*
 * Every entry into a connection (an epoll event, a store answer) holds it
 * through `pending`, so a close inside never frees it under the caller.
 */
static void conn_hold(mc_conn_t *c)
{
    c->pending++;
}

static void conn_release(mc_conn_t *c)
{
    if (--c->pending == 0 && c->closed)
        conn_free(c);
}

static void out_line(mc_conn_t *c, const char *line)
{
    if (mc_out_line(&c->out, line) < 0)
        c->closing = true;
}

static void out_server_error(mc_conn_t *c, int rc, const char *msg)
{
    if (mc_out_printf(&c->out, "SERVER_ERROR %s\r\n", msg ? msg : strerror(-rc)) < 0)
        c->closing = true;
}

static void conn_flush(mc_conn_t *c)
{
    while (c->out_off < c->out.len) {
        ssize_t n = send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            conn_close(c);
            return;
        }
        c->out_off += (size_t)n;
        c->s->st.bytes_written += (uint64_t)n;
    }
    if (c->out_off == c->out.len) {
        c->out.len = c->out_off = 0;
        if (c->out.cap > 64 * 1024) {
            mc_out_free(&c->out); /* a big reply's buffer is not kept */
        }
        if (c->closing) {
            conn_close(c);
            return;
        }
    } else if (c->out_off > c->out.len / 2) {
        mc_out_consume(&c->out, c->out_off);
        c->out_off = 0;
    }
    conn_set_events(c);
}

/* --------------------------------------------------------------- items */

static size_t store_key(const mc_span_t *k, uint8_t *buf)
{
    memcpy(buf, NS, NS_LEN);
    memcpy(buf + NS_LEN, k->p, k->len);
    return NS_LEN + k->len;
}

static bool flushed(const mc_server_t *s, kv_version_t v)
{
    return s->flush_hlc && wall_ms() >= (s->flush_hlc >> 16) && v.hlc < s->flush_hlc;
}

static void ignore_done(const kvc_result_t *res, void *arg)
{
    (void)res;
    (void)arg;
}

/* Expired and flushed items are deleted when a read finds them. */
static void lazy_delete(mc_server_t *s, const mc_span_t *k, kv_version_t v)
{
    uint8_t key[NS_LEN + MC_KEY_MAX];
    size_t n = store_key(k, key);
    kvc_del(s->kvc, key, n, KVC_PUT_IF_VERSION, v, ignore_done, NULL);
}

static void job_reset(job_t *j)
{
    free(j->rec);
    j->rec = NULL;
    j->rec_len = 0;
    j->present = j->live = false;
    j->err = 0;
}

static bool multi_key(const mc_conn_t *c)
{
    return c->eff == MC_GET || c->eff == MC_GETS || c->eff == MC_MG || c->eff == MC_GAT ||
           c->eff == MC_GATS;
}

static void window_next(mc_conn_t *c);

/*
 * A key's store operation failed. A single-key command answers at once; a
 * multi-key one records it, and the window reports it when all its keys
 * are done (the other reads are still in flight).
 */
static void job_fail(job_t *j, int rc, const char *msg)
{
    mc_conn_t *c = j->c;
    if (!msg)
        msg = strerror(-rc);
    if (!multi_key(c)) {
        if (mc_out_printf(&c->out, "SERVER_ERROR %s\r\n", msg) < 0)
            c->closing = true;
        request_done(c);
        return;
    }
    j->err = rc ? rc : -EIO;
    snprintf(j->errmsg, sizeof j->errmsg, "%s", msg);
    if (++c->window_done == c->window)
        window_next(c);
}

static bool conflict(int rc)
{
    return rc == -EEXIST || rc == -ESTALE;
}

/* A write lost to a concurrent one: read again, a bounded number of times. */
static void on_retry_timer(loop_t *loop, void *arg)
{
    (void)loop;
    job_t *j = arg;
    mc_conn_t *c = j->c;
    j->timer = 0;
    if (!c->closed)
        job_read(j);
    conn_release(c);
}

static void job_retry(job_t *j)
{
    mc_conn_t *c = j->c;
    if (++j->attempts >= RMW_ATTEMPTS) {
        job_fail(j, -EAGAIN, "too many concurrent changes to this key");
        return;
    }
    unsigned span = 1u << (j->attempts < 7 ? j->attempts : 7);
    if (span > RMW_PAUSE_MAX_MS)
        span = RMW_PAUSE_MAX_MS;
    j->timer = loop_timer_add(c->s->loop, 1 + (unsigned)rand() % span, on_retry_timer, j);
    if (!j->timer) {
        job_read(j);
        return;
    }
    conn_hold(c);
}

/* ---------------------------------------------------------- responses */

static const mc_span_t *jkey(const job_t *j)
{
    return &j->c->req.keys[j->idx];
}

static bool quiet(const mc_conn_t *c)
{
    return c->req.noreply;
}

static void reply(mc_conn_t *c, const char *line)
{
    if (!quiet(c))
        out_line(c, line);
}

/* Meta return flags (k, O, c, f, s, t) in request order. */
static void meta_flags(mc_conn_t *c, const job_t *j, bool hit, kv_version_t v)
{
    const mc_req_t *r = &c->req;
    for (size_t i = 0; i < r->nmflags; i++) {
        const mc_span_t *f = &r->mflags[i];
        switch (f->p[0]) {
        case 'k':
            mc_out_printf(&c->out, " k%.*s", (int)jkey(j)->len, jkey(j)->p);
            break;
        case 'O':
            mc_out_printf(&c->out, " %.*s", (int)f->len, f->p);
            break;
        case 'c':
            if (hit)
                mc_out_printf(&c->out, " c%llu", (unsigned long long)v.hlc);
            break;
        case 'f':
            if (hit && c->req.cmd != MC_MS)
                mc_out_printf(&c->out, " f%u", j->it.flags);
            break;
        case 's':
            if (hit && c->req.cmd != MC_MS)
                mc_out_printf(&c->out, " s%zu", j->it.len);
            break;
        case 't':
            if (hit && c->req.cmd != MC_MS) {
                long long ttl = j->it.exptime ? (long long)(j->it.exptime - wall_s()) : -1;
                mc_out_printf(&c->out, " t%lld", ttl < -1 ? 0 : ttl);
            }
            break;
        default:
            break;
        }
    }
}

static void meta_reply(mc_conn_t *c, const job_t *j, const char *code, bool hit, kv_version_t v)
{
    /* q hides the common answers: HD, and NF of md */
    bool success =
        code[0] == 'H' || ((c->req.cmd == MC_MD || c->req.cmd == MC_MA) && strcmp(code, "NF") == 0);
    if (c->req.noreply && success)
        return;
    mc_out_printf(&c->out, "%s", code);
    meta_flags(c, j, hit, v);
    mc_out_bytes(&c->out, "\r\n", 2);
}

/* A get-like job finished: format its hit or miss. */
static void format_get(mc_conn_t *c, job_t *j)
{
    const mc_span_t *k = jkey(j);
    mc_server_t *s = c->s;
    if (c->req.cmd == MC_MG) {
        if (!j->live) {
            if (!c->req.noreply)
                out_line(c, "EN");
            return;
        }
        if (mc_req_mflag(&c->req, 'v')) {
            mc_out_printf(&c->out, "VA %zu", j->it.len);
            meta_flags(c, j, true, j->ver);
            mc_out_bytes(&c->out, "\r\n", 2);
            mc_out_bytes(&c->out, j->it.data, j->it.len);
            mc_out_bytes(&c->out, "\r\n", 2);
        } else {
            mc_out_printf(&c->out, "HD");
            meta_flags(c, j, true, j->ver);
            mc_out_bytes(&c->out, "\r\n", 2);
        }
        return;
    }
    if (!j->live) {
        s->st.get_misses++;
        return;
    }
    s->st.get_hits++;
    bool with_cas = c->req.cmd == MC_GETS || c->req.cmd == MC_GATS;
    if (mc_out_value(&c->out, k->p, k->len, j->it.flags, j->it.data, j->it.len, with_cas,
                     j->ver.hlc) < 0)
        c->closing = true;
}

/* ------------------------------------------------------------- writes */

static void on_write(const kvc_result_t *res, void *arg);

static void job_put(job_t *j, const uint8_t *data, size_t len, uint32_t flags, int64_t exp,
                    kvc_cond_t cond)
{
    mc_conn_t *c = j->c;
    if (len > MC_VALUE_MAX) {
        out_line(c, "SERVER_ERROR object too large for cache");
        request_done(c);
        return;
    }
    uint8_t *rec = malloc(MC_RECORD_HDR + len);
    if (!rec) {
        job_fail(j, -ENOMEM, "out of memory storing object");
        return;
    }
    size_t n = mc_record_encode(rec, flags, exp, data, len);
    uint8_t key[NS_LEN + MC_KEY_MAX];
    size_t kn = store_key(jkey(j), key);
    int rc = kvc_put(c->s->kvc, key, kn, rec, n, cond, j->ver, on_write, j);
    free(rec);
    if (rc < 0) {
        job_fail(j, rc, NULL);
        return;
    }
    c->pending++;
}

static void job_del(job_t *j)
{
    mc_conn_t *c = j->c;
    uint8_t key[NS_LEN + MC_KEY_MAX];
    size_t kn = store_key(jkey(j), key);
    int rc = kvc_del(c->s->kvc, key, kn, KVC_PUT_IF_VERSION, j->ver, on_write, j);
    if (rc < 0) {
        out_server_error(c, rc, NULL);
        request_done(c);
        return;
    }
    c->pending++;
}

/* The answer to a write (put or delete) of job j. */
static void write_done(job_t *j, const kvc_result_t *res)
{
    mc_conn_t *c = j->c;
    mc_server_t *s = c->s;
    int rc = res->rc;
    if (rc < 0 && !conflict(rc)) {
        job_fail(j, rc, rc == -EFBIG ? "object too large for cache" : res->message);
        return;
    }
    switch (c->eff) {
    case MC_SET:
        if (c->req.cmd == MC_MS)
            meta_reply(c, j, rc == 0 ? "HD" : "NS", rc == 0, res->version);
        else
            reply(c, rc == 0 ? "STORED" : "NOT_STORED");
        break;
    case MC_ADD:
        if (conflict(rc)) {
            job_retry(j); /* someone else wrote: read again (a live item means NOT_STORED) */
            return;
        }
        if (c->req.cmd == MC_MS)
            meta_reply(c, j, "HD", true, res->version);
        else
            reply(c, "STORED");
        break;
    case MC_CAS:
        if (conflict(rc))
            s->st.cas_badval++;
        else
            s->st.cas_hits++;
        if (c->req.cmd == MC_MS)
            meta_reply(c, j, rc == 0 ? "HD" : "EX", rc == 0, res->version);
        else
            reply(c, rc == 0 ? "STORED" : "EXISTS");
        break;
    case MC_REPLACE:
    case MC_APPEND:
    case MC_PREPEND:
        if (conflict(rc)) {
            job_retry(j);
            return;
        }
        if (c->req.cmd == MC_MS)
            meta_reply(c, j, "HD", true, res->version);
        else
            reply(c, "STORED");
        break;
    case MC_INCR:
    case MC_DECR: {
        if (conflict(rc)) {
            job_retry(j);
            return;
        }
        if (c->eff == MC_INCR)
            s->st.incr_hits++;
        else
            s->st.decr_hits++;
        if (c->req.cmd == MC_MA && mc_req_mflag(&c->req, 'v')) {
            char num[24];
            int n = snprintf(num, sizeof num, "%llu", (unsigned long long)c->cas);
            mc_out_printf(&c->out, "VA %d", n);
            meta_flags(c, j, true, res->version);
            mc_out_printf(&c->out, "\r\n%s\r\n", num);
        } else if (c->req.cmd == MC_MA) {
            meta_reply(c, j, "HD", true, res->version);
        } else if (!quiet(c)) {
            mc_out_printf(&c->out, "%llu\r\n", (unsigned long long)c->cas);
        }
        break;
    }
    case MC_TOUCH:
        if (conflict(rc)) {
            job_retry(j);
            return;
        }
        s->st.touch_hits++;
        reply(c, "TOUCHED");
        break;
    case MC_GAT:
    case MC_GATS:
        if (conflict(rc)) {
            job_reset(j);
            job_retry(j);
            return;
        }
        j->ver = res->version;
        j->it.exptime = c->exp_abs;
        if (++c->window_done == c->window)
            window_next(c);
        return;
    case MC_DELETE:
        if (conflict(rc)) {
            job_retry(j);
            return;
        }
        s->st.delete_hits++;
        if (c->req.cmd == MC_MD)
            meta_reply(c, j, "HD", false, res->version);
        else
            reply(c, "DELETED");
        break;
    default:
        break;
    }
    request_done(c);
}

static void on_write(const kvc_result_t *res, void *arg)
{
    job_t *j = arg;
    mc_conn_t *c = j->c;
    if (!c->closed)
        write_done(j, res);
    conn_release(c);
}

/* -------------------------------------------------------------- reads */

/* What the read found decides the write (or the reply). */
static void job_decide(job_t *j)
{
    mc_conn_t *c = j->c;
    mc_server_t *s = c->s;
    const mc_req_t *r = &c->req;
    switch (c->eff) {
    case MC_GET:
    case MC_GETS:
    case MC_MG:
        if (++c->window_done == c->window)
            window_next(c);
        return;
    case MC_GAT:
    case MC_GATS:
        if (!j->live) {
            if (++c->window_done == c->window)
                window_next(c);
            return;
        }
        s->st.touch_hits++;
        job_put(j, j->it.data, j->it.len, j->it.flags, c->exp_abs, KVC_PUT_IF_VERSION);
        return;
    case MC_SET:
        job_put(j, r->data, r->data_len, r->flags, c->exp_abs, KVC_PUT_ALWAYS);
        return;
    case MC_ADD:
        if (j->live) {
            if (r->cmd == MC_MS)
                meta_reply(c, j, "NS", false, j->ver);
            else
                reply(c, "NOT_STORED");
            request_done(c);
            return;
        }
        job_put(j, r->data, r->data_len, r->flags, c->exp_abs,
                j->present ? KVC_PUT_IF_VERSION : KVC_PUT_IF_ABSENT);
        return;
    case MC_CAS:
        if (!j->live) {
            s->st.cas_misses++;
            if (r->cmd == MC_MS)
                meta_reply(c, j, "NF", false, j->ver);
            else
                reply(c, "NOT_FOUND");
            request_done(c);
            return;
        }
        if (j->ver.hlc != c->cas) {
            s->st.cas_badval++;
            if (r->cmd == MC_MS)
                meta_reply(c, j, "EX", false, j->ver);
            else
                reply(c, "EXISTS");
            request_done(c);
            return;
        }
        job_put(j, r->data, r->data_len, r->flags, c->exp_abs, KVC_PUT_IF_VERSION);
        return;
    case MC_REPLACE:
    case MC_APPEND:
    case MC_PREPEND: {
        if (!j->live) {
            if (r->cmd == MC_MS)
                meta_reply(c, j, "NS", false, j->ver);
            else
                reply(c, "NOT_STORED");
            request_done(c);
            return;
        }
        if (c->eff == MC_REPLACE) {
            job_put(j, r->data, r->data_len, r->flags, c->exp_abs, KVC_PUT_IF_VERSION);
            return;
        }
        size_t n = j->it.len + r->data_len;
        if (n > MC_VALUE_MAX) {
            out_line(c, "SERVER_ERROR object too large for cache");
            request_done(c);
            return;
        }
        uint8_t *v = malloc(n ? n : 1);
        if (!v) {
            out_server_error(c, -ENOMEM, "out of memory storing object");
            request_done(c);
            return;
        }
        if (c->eff == MC_APPEND) {
            memcpy(v, j->it.data, j->it.len);
            memcpy(v + j->it.len, r->data, r->data_len);
        } else {
            memcpy(v, r->data, r->data_len);
            memcpy(v + r->data_len, j->it.data, j->it.len);
        }
        /* append/prepend keep the item's flags and expiry, like memcached */
        job_put(j, v, n, j->it.flags, j->it.exptime, KVC_PUT_IF_VERSION);
        free(v);
        return;
    }
    case MC_INCR:
    case MC_DECR: {
        bool ma = r->cmd == MC_MA;
        char num[24];
        if (!j->live && ma && c->ma_vivify) {
            /* ma N: a missing counter starts at J (not incremented, like memcached) */
            c->cas = c->ma_initial;
            int n = snprintf(num, sizeof num, "%llu", (unsigned long long)c->cas);
            j->it.flags = 0;
            j->it.exptime = mc_exptime_abs(c->ma_ttl, wall_s());
            j->it.len = (size_t)n;
            job_put(j, (const uint8_t *)num, (size_t)n, 0, j->it.exptime,
                    j->present ? KVC_PUT_IF_VERSION : KVC_PUT_IF_ABSENT);
            return;
        }
        if (!j->live) {
            if (c->eff == MC_INCR)
                s->st.incr_misses++;
            else
                s->st.decr_misses++;
            if (ma)
                meta_reply(c, j, "NF", false, j->ver);
            else
                reply(c, "NOT_FOUND");
            request_done(c);
            return;
        }
        if (ma && c->has_cas && j->ver.hlc != c->cas) {
            meta_reply(c, j, "EX", false, j->ver);
            request_done(c);
            return;
        }
        uint64_t v;
        if (mc_arith(j->it.data, j->it.len, r->delta, c->eff == MC_DECR, &v) < 0) {
            out_line(c, "CLIENT_ERROR cannot increment or decrement non-numeric value");
            request_done(c);
            return;
        }
        c->cas = v; /* the reply */
        int n = snprintf(num, sizeof num, "%llu", (unsigned long long)v);
        if (ma && mc_req_mflag(r, 'T'))
            j->it.exptime = c->exp_abs;
        j->it.len = (size_t)n;
        job_put(j, (const uint8_t *)num, (size_t)n, j->it.flags, j->it.exptime, KVC_PUT_IF_VERSION);
        return;
    }
    case MC_TOUCH:
        if (!j->live) {
            s->st.touch_misses++;
            reply(c, "NOT_FOUND");
            request_done(c);
            return;
        }
        job_put(j, j->it.data, j->it.len, j->it.flags, c->exp_abs, KVC_PUT_IF_VERSION);
        return;
    case MC_DELETE:
        if (!j->live || (c->has_cas && j->ver.hlc != c->cas)) {
            bool exists = j->live;
            if (!exists)
                s->st.delete_misses++;
            if (r->cmd == MC_MD)
                meta_reply(c, j, exists ? "EX" : "NF", false, j->ver);
            else
                reply(c, "NOT_FOUND");
            request_done(c);
            return;
        }
        job_del(j);
        return;
    default:
        request_done(c);
        return;
    }
}

static void read_done(job_t *j, const kvc_result_t *res)
{
    mc_conn_t *c = j->c;
    mc_server_t *s = c->s;
    job_reset(j);
    if (res->rc < 0 && res->rc != -ENOENT) {
        job_fail(j, res->rc, res->message);
        return;
    }
    if (res->rc == 0) {
        j->present = true;
        j->ver = res->version;
        j->rec = malloc(res->value_len ? res->value_len : 1);
        if (!j->rec) {
            job_fail(j, -ENOMEM, "out of memory");
            return;
        }
        memcpy(j->rec, res->value, res->value_len);
        j->rec_len = res->value_len;
        if (mc_record_decode(j->rec, j->rec_len, &j->it) == 0) {
            if (mc_expired(j->it.exptime, wall_s())) {
                s->st.get_expired++;
                lazy_delete(s, jkey(j), j->ver);
            } else if (flushed(s, j->ver)) {
                s->st.get_flushed++;
                lazy_delete(s, jkey(j), j->ver);
            } else {
                j->live = true;
            }
        }
    }
    job_decide(j);
}

static void on_read(const kvc_result_t *res, void *arg)
{
    job_t *j = arg;
    mc_conn_t *c = j->c;
    if (!c->closed)
        read_done(j, res);
    conn_release(c);
}

static void job_read(job_t *j)
{
    mc_conn_t *c = j->c;
    uint8_t key[NS_LEN + MC_KEY_MAX];
    size_t kn = store_key(jkey(j), key);
    int rc = kvc_get(c->s->kvc, key, kn, on_read, j);
    if (rc < 0) {
        job_fail(j, rc, NULL);
        return;
    }
    c->pending++;
}

/*
 * Multi-key reads: format the window that just finished, then start the
 * next one (after the output drained below OUT_HIGH).
 */
static void window_next(mc_conn_t *c)
{
    for (size_t i = 0; i < c->window; i++) {
        if (c->jobs[i].err) {
            /* memcached ends a failed multi-get with the error, without END */
            mc_out_printf(&c->out, "SERVER_ERROR %s\r\n", c->jobs[i].errmsg);
            for (size_t k = 0; k < c->window; k++)
                job_reset(&c->jobs[k]);
            c->window = c->window_done = 0;
            request_done(c);
            return;
        }
    }
    for (size_t i = 0; i < c->window; i++) {
        format_get(c, &c->jobs[i]);
        job_reset(&c->jobs[i]);
    }
    c->window = c->window_done = 0;
    if (c->next_key == c->req.nkeys) {
        if (c->req.cmd != MC_MG)
            out_line(c, "END");
        request_done(c);
        return;
    }
    if (c->out.len - c->out_off >= OUT_HIGH) {
        conn_flush(c);
        if (c->closed)
            return;
        if (c->out.len - c->out_off >= OUT_HIGH) {
            c->wait_drain = true; /* conn_event resumes once the client read enough */
            return;
        }
    }
    size_t n = c->req.nkeys - c->next_key;
    if (n > GET_WINDOW)
        n = GET_WINDOW;
    c->window = n;
    for (size_t i = 0; i < n; i++) {
        job_t *j = &c->jobs[i];
        j->c = c;
        j->idx = c->next_key++;
        j->attempts = 0;
        j->err = 0;
    }
    for (size_t i = 0; i < n && !c->closed; i++)
        job_read(&c->jobs[i]);
}

/* ------------------------------------------------------------ requests */

static void stats_reply(mc_conn_t *c)
{
    mc_server_t *s = c->s;
    const stats_t *st = &s->st;
    mc_out_t *o = &c->out;
    if (c->req.arg.len) {
        if (c->req.arg.len == 5 && memcmp(c->req.arg.p, "reset", 5) == 0) {
            uint64_t cur = s->st.curr_conns, tot = s->st.total_conns;
            s->st = (stats_t){0};
            s->st.curr_conns = cur;
            s->st.total_conns = tot;
            out_line(c, "RESET");
            return;
        }
        out_line(c, "END"); /* settings, items, slabs...: nothing to say */
        return;
    }
    int64_t now = wall_s();
#define S(name, v) mc_out_printf(o, "STAT %s %llu\r\n", name, (unsigned long long)(v))
    S("pid", getpid());
    S("uptime", (uint64_t)now - s->started_s);
    S("time", now);
    mc_out_printf(o, "STAT version %s\r\n", VERSION_STR);
    S("pointer_size", sizeof(void *) * 8);
    S("curr_connections", st->curr_conns);
    S("total_connections", st->total_conns);
    S("rejected_connections", st->rejected_conns);
    S("cmd_get", st->cmd_get);
    S("cmd_set", st->cmd_set);
    S("cmd_flush", st->cmd_flush);
    S("cmd_touch", st->cmd_touch);
    S("get_hits", st->get_hits);
    S("get_misses", st->get_misses);
    S("get_expired", st->get_expired);
    S("get_flushed", st->get_flushed);
    S("delete_misses", st->delete_misses);
    S("delete_hits", st->delete_hits);
    S("incr_misses", st->incr_misses);
    S("incr_hits", st->incr_hits);
    S("decr_misses", st->decr_misses);
    S("decr_hits", st->decr_hits);
    S("cas_misses", st->cas_misses);
    S("cas_hits", st->cas_hits);
    S("cas_badval", st->cas_badval);
    S("touch_hits", st->touch_hits);
    S("touch_misses", st->touch_misses);
    S("bytes_read", st->bytes_read);
    S("bytes_written", st->bytes_written);
    S("limit_maxbytes", 0);
    S("threads", 1);
#undef S
    out_line(c, "END");
}

static void flush_written(mc_conn_t *c, const kvc_result_t *res)
{
    if (res->rc < 0) {
        out_server_error(c, res->rc, res->message);
    } else {
        uint64_t at = res->version.hlc + (c->req.delta * 1000u << 16);
        if (at > c->s->flush_hlc)
            c->s->flush_hlc = at;
        reply(c, "OK");
    }
    request_done(c);
}

static void on_flush_written(const kvc_result_t *res, void *arg)
{
    job_t *j = arg;
    mc_conn_t *c = j->c;
    if (!c->closed)
        flush_written(c, res);
    conn_release(c);
}

static void start_flush(mc_conn_t *c)
{
    uint8_t v[8];
    /* like exptimes: more than 30 days is a unix time */
    int64_t now = wall_s();
    uint64_t d = c->req.delta;
    if (d > MC_REL_EXPTIME_MAX)
        d = (int64_t)d > now ? d - (uint64_t)now : 0;
    if (d > MC_REL_EXPTIME_MAX)
        d = MC_REL_EXPTIME_MAX;
    c->req.delta = d;
    for (int i = 0; i < 8; i++)
        v[i] = (uint8_t)(d >> (56 - 8 * i));
    job_t *j = &c->jobs[0];
    j->c = c;
    int rc = kvc_put(c->s->kvc, FLUSH_KEY, sizeof FLUSH_KEY - 1, v, sizeof v, KVC_PUT_ALWAYS,
                     (kv_version_t){0, 0}, on_flush_written, j);
    if (rc < 0) {
        out_server_error(c, rc, NULL);
        request_done(c);
        return;
    }
    c->pending++;
}

/* Parse a meta flag's numeric argument. */
static bool mflag_num(const mc_span_t *f, int64_t *out, bool sign)
{
    if (f->len < 2 || f->len > 21)
        return false;
    char buf[24];
    memcpy(buf, f->p + 1, f->len - 1);
    buf[f->len - 1] = '\0';
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (errno || *end || (!sign && v < 0) || buf[0] == '+' || buf[0] == ' ')
        return false;
    *out = v;
    return true;
}

static bool mflag_u64(const mc_span_t *f, uint64_t *out)
{
    /* The flag letter, then its number. */
    mc_span_t num = {f->p + 1, f->len ? f->len - 1 : 0};
    return f->len >= 2 && mc_parse_u64(&num, out);
}

/* Map ms/mg/md flags onto the request; false: bad flags (error sent). */
static bool meta_setup(mc_conn_t *c)
{
    mc_req_t *r = &c->req;
    const mc_span_t *f;
    int64_t n;
    if ((f = mc_req_mflag(r, 'C'))) {
        if (!mflag_u64(f, &c->cas))
            return false;
        c->has_cas = true;
    }
    if ((f = mc_req_mflag(r, 'T'))) {
        if (!mflag_num(f, &n, true))
            return false;
        r->exptime = n;
    }
    if (r->cmd == MC_MG) {
        c->eff = f ? MC_GAT : MC_MG;
        return true;
    }
    if (r->cmd == MC_MD) {
        c->eff = MC_DELETE;
        return true;
    }
    if (r->cmd == MC_MA) {
        c->eff = MC_INCR;
        r->delta = 1;
        if ((f = mc_req_mflag(r, 'D')) && !mflag_u64(f, &r->delta))
            return false;
        if ((f = mc_req_mflag(r, 'M'))) {
            if (f->len != 2)
                return false;
            char m = f->p[1];
            if (m == 'I' || m == 'i' || m == '+')
                c->eff = MC_INCR;
            else if (m == 'D' || m == 'd' || m == '-')
                c->eff = MC_DECR;
            else
                return false;
        }
        c->ma_vivify = false;
        c->ma_initial = 0;
        if ((f = mc_req_mflag(r, 'N'))) {
            if (!mflag_num(f, &c->ma_ttl, true))
                return false;
            c->ma_vivify = true;
        }
        if ((f = mc_req_mflag(r, 'J')) && !mflag_u64(f, &c->ma_initial))
            return false;
        return true;
    }
    /* ms */
    if ((f = mc_req_mflag(r, 'F'))) {
        if (!mflag_num(f, &n, false) || n > UINT32_MAX)
            return false;
        r->flags = (uint32_t)n;
    }
    c->eff = MC_SET;
    if ((f = mc_req_mflag(r, 'M'))) {
        if (f->len != 2)
            return false;
        switch (f->p[1]) {
        case 'S':
        case 's':
            c->eff = MC_SET;
            break;
        case 'E':
        case 'e':
            c->eff = MC_ADD;
            break;
        case 'A':
        case 'a':
            c->eff = MC_APPEND;
            break;
        case 'P':
        case 'p':
            c->eff = MC_PREPEND;
            break;
        case 'R':
        case 'r':
            c->eff = MC_REPLACE;
            break;
        default:
            return false;
        }
    }
    if (c->has_cas) {
        if (c->eff != MC_SET)
            return false; /* a compare with another mode: not supported */
        c->eff = MC_CAS;
    }
    return true;
}

static void request_start(mc_conn_t *c)
{
    mc_server_t *s = c->s;
    mc_req_t *r = &c->req;
    c->busy = true;
    c->eff = r->cmd;
    c->has_cas = false;
    c->cas = r->cas;
    c->wait_drain = false;
    c->next_key = c->window = c->window_done = 0;
    if (r->cmd == MC_CAS)
        c->has_cas = true;
    switch (r->cmd) {
    case MC_VERSION:
        mc_out_printf(&c->out, "VERSION %s\r\n", VERSION_STR);
        request_done(c);
        return;
    case MC_VERBOSITY:
        reply(c, "OK");
        request_done(c);
        return;
    case MC_STATS:
        stats_reply(c);
        request_done(c);
        return;
    case MC_QUIT:
        c->closing = true;
        request_done(c);
        return;
    case MC_MN:
        out_line(c, "MN");
        request_done(c);
        return;
    case MC_FLUSH_ALL:
        s->st.cmd_flush++;
        start_flush(c);
        return;
    case MC_MG:
    case MC_MS:
    case MC_MD:
    case MC_MA:
        if (!meta_setup(c)) {
            r->noreply = false;
            out_line(c, "CLIENT_ERROR bad command line format");
            request_done(c);
            return;
        }
        break;
    default:
        break;
    }
    c->exp_abs = mc_exptime_abs(r->exptime, wall_s());
    switch (c->eff) {
    case MC_GET:
    case MC_GETS:
    case MC_MG:
    case MC_GAT:
    case MC_GATS:
        s->st.cmd_get += r->nkeys;
        if (c->eff == MC_GAT || c->eff == MC_GATS)
            s->st.cmd_touch += r->nkeys;
        window_next(c);
        return;
    case MC_TOUCH:
        s->st.cmd_touch++;
        break;
    case MC_SET:
    case MC_ADD:
    case MC_REPLACE:
    case MC_APPEND:
    case MC_PREPEND:
    case MC_CAS:
        s->st.cmd_set++;
        break;
    default:
        break;
    }
    job_t *j = &c->jobs[0];
    job_reset(j);
    j->c = c;
    j->idx = 0;
    j->attempts = 0;
    if (c->eff == MC_SET) {
        job_decide(j); /* a plain set needs no read */
        return;
    }
    job_read(j);
}

/* The running request has its whole answer in the output: go on with the next. */
static void request_done(mc_conn_t *c)
{
    c->busy = false;
    c->in_off += c->used;
    c->used = 0;
    if (c->closed || c->in_start)
        return; /* conn_process's loop goes on by itself */
    conn_process(c);
}

static void drop_input(mc_conn_t *c)
{
    if (c->in_off == 0)
        return;
    memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
    c->in_len -= c->in_off;
    c->in_off = 0;
}

/*
 * Run the requests already buffered, one at a time; stop when one waits for
 * the store, the input runs out, or the client is not reading its answers.
 */
static void conn_process(mc_conn_t *c)
{
    /* Guards against deep recursion: synchronous requests loop here instead. */
    while (!c->busy && !c->closing && !c->closed && c->out.len - c->out_off < OUT_HIGH) {
        size_t avail = c->in_len - c->in_off;
        if (c->swallow) {
            size_t n = c->swallow < avail ? c->swallow : avail;
            c->swallow -= n;
            c->in_off += n;
            if (c->swallow)
                break;
            continue;
        }
        size_t used, swallow;
        const char *err;
        mc_parse_rc_t rc = mc_parse(c->in + c->in_off, avail, &c->req, &used, &swallow, &err);
        if (rc == MC_PARSE_MORE)
            break;
        if (rc == MC_PARSE_CLOSE) {
            out_line(c, err);
            c->closing = true;
            break;
        }
        if (rc == MC_PARSE_ERROR) {
            out_line(c, err);
            c->in_off += used;
            c->swallow = swallow;
            continue;
        }
        c->used = used;
        c->in_start = true;
        request_start(c); /* may finish at once: then the loop goes on */
        c->in_start = false;
    }
    if (c->closed)
        return;
    if (!c->busy) {
        drop_input(c);
        if (c->in_len == 0 && c->in_cap > IN_START) {
            free(c->in); /* a large item's buffer is not kept */
            c->in = NULL;
            c->in_cap = 0;
        }
        if (c->eof && c->out.len - c->out_off < OUT_HIGH)
            c->closing =
                true; /* everything it sent is answered (a partial request never will be) */
    }
    conn_flush(c);
}

static void conn_read(mc_conn_t *c)
{
    for (;;) {
        if (c->in_len == c->in_cap && c->in_off)
            drop_input(c);
        if (c->in_len == c->in_cap) {
            if (c->in_cap == IN_CAP)
                break; /* cannot happen: the parser refuses longer requests */
            size_t cap = c->in_cap ? c->in_cap * 4 : IN_START;
            if (cap > IN_CAP)
                cap = IN_CAP;
            uint8_t *p = realloc(c->in, cap);
            if (!p) {
                conn_close(c);
                return;
            }
            c->in = p;
            c->in_cap = cap;
        }
        ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n == 0) {
            c->eof = true;
            break;
        }
        if (n < 0) {
            conn_close(c);
            return;
        }
        c->in_len += (size_t)n;
        c->s->st.bytes_read += (uint64_t)n;
        if (c->in_len < c->in_cap)
            break; /* process before reading more: keeps pipelined floods bounded */
    }
    conn_process(c);
}

static void accept_resume(loop_t *loop, void *arg)
{
    (void)loop;
    mc_server_t *s = arg;
    s->accept_timer = 0;
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = s};
    epoll_ctl(s->ep, EPOLL_CTL_ADD, s->lfd, &e);
}

static void accept_all(mc_server_t *s)
{
    for (;;) {
        int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0 && (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)) {
            /*
             * The listener stays readable while the backlog waits: without a
             * pause the loop would spin. Connections wait in the backlog.
             */
            log_warn("mc", "cannot accept connections: %s; pausing %d ms", strerror(errno),
                     ACCEPT_PAUSE_MS);
            s->accept_timer = loop_timer_add(s->loop, ACCEPT_PAUSE_MS, accept_resume, s);
            if (s->accept_timer)
                epoll_ctl(s->ep, EPOLL_CTL_DEL, s->lfd, NULL);
            return;
        }
        if (fd < 0)
            return;
        if (s->st.curr_conns >= s->conn_max) {
            static const char msg[] = "SERVER_ERROR Too many open connections\r\n";
            ssize_t w = send(fd, msg, sizeof msg - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)w;
            close(fd);
            s->st.rejected_conns++;
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        mc_conn_t *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->s = s;
        c->fd = fd;
        c->events = EPOLLIN;
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &e) < 0) {
            close(fd);
            free(c);
            continue;
        }
        c->next = s->conns;
        if (s->conns)
            s->conns->prev = c;
        s->conns = c;
        s->st.curr_conns++;
        s->st.total_conns++;
    }
}

static void conn_event(mc_conn_t *c, uint32_t events)
{
    if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
        conn_flush(c);
        if (c->closed)
            return;
        if (c->wait_drain && c->out.len - c->out_off < OUT_HIGH) {
            c->wait_drain = false;
            window_next(c);
            if (c->closed)
                return;
        }
    }
    if (events & EPOLLERR) {
        conn_close(c);
        return;
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP)) {
        if (c->busy || c->closing || c->eof)
            return;
        conn_read(c);
    }
}

static void on_epoll(loop_t *loop, void *zsock, int fd, void *arg)
{
    (void)loop;
    (void)zsock;
    (void)fd;
    mc_server_t *s = arg;
    struct epoll_event ev[EVENTS_MAX];
    int n = epoll_wait(s->ep, ev, EVENTS_MAX, 0);
    for (int i = 0; i < n; i++) {
        if (ev[i].data.ptr == s) {
            accept_all(s);
            continue;
        }
        /* epoll reports an fd once per wait, and only its own event closes a connection */
        mc_conn_t *c = ev[i].data.ptr;
        conn_hold(c);
        conn_event(c, ev[i].events);
        conn_release(c);
    }
}

/* ------------------------------------------------------------ flush marker */

static void flush_refresh(loop_t *loop, void *arg);

static void on_flush_marker(const kvc_result_t *res, void *arg)
{
    flush_op_t *op = arg;
    mc_server_t *s = op->s;
    free(op);
    if (!s)
        return;
    s->flush_op = NULL;
    if (res->rc == 0 && res->value_len == 8) {
        uint64_t d = 0;
        for (int i = 0; i < 8; i++)
            d = d << 8 | res->value[i];
        if (d <= MC_REL_EXPTIME_MAX) { /* as start_flush writes it; no overflow below */
            uint64_t at = res->version.hlc + (d * 1000u << 16);
            if (at > s->flush_hlc)
                s->flush_hlc = at;
        }
    }
    s->flush_timer = loop_timer_add(s->loop, FLUSH_REFRESH_MS, flush_refresh, s);
}

static void flush_refresh(loop_t *loop, void *arg)
{
    (void)loop;
    mc_server_t *s = arg;
    s->flush_timer = 0;
    flush_op_t *op = malloc(sizeof *op);
    if (op) {
        op->s = s;
        if (kvc_get(s->kvc, FLUSH_KEY, sizeof FLUSH_KEY - 1, on_flush_marker, op) == 0) {
            s->flush_op = op;
            return;
        }
        free(op);
    }
    s->flush_timer = loop_timer_add(s->loop, FLUSH_REFRESH_MS, flush_refresh, s);
}

/* ------------------------------------------------------------------ API */

mc_server_t *mc_server_new(loop_t *loop, kvc_t *kvc, const char *hostport, bool allow_remote,
                           char *err, size_t errcap)
{
    char why[128];
    int lfd = tcp_listen(hostport, !allow_remote, 1024, NULL, why, sizeof why);
    if (lfd == -EPERM) {
        snprintf(err, errcap,
                 "refusing to serve memcached on %s: the protocol has no authentication, so "
                 "anyone who can reach it could read and change every item. Use a loopback "
                 "address, or --insecure on a network you trust.",
                 hostport);
        return NULL;
    }
    if (lfd < 0) {
        snprintf(err, errcap, "--memcached %s: %s", hostport, why);
        return NULL;
    }
    mc_server_t *s = calloc(1, sizeof *s);
    if (!s) {
        close(lfd);
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    s->loop = loop;
    s->kvc = kvc;
    s->ep = -1;
    s->lfd = lfd;
    s->ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = s};
    if (s->ep < 0 || epoll_ctl(s->ep, EPOLL_CTL_ADD, s->lfd, &e) < 0 ||
        loop_add_fd(loop, s->ep, on_epoll, s) < 0) {
        snprintf(err, errcap, "--memcached: %s", strerror(errno));
        mc_server_destroy(&s);
        return NULL;
    }
    s->started_s = (uint64_t)wall_s();
    /* Room for CONN_MAX clients if the hard limit allows it (memcached's -c does the same). */
    struct rlimit rl;
    s->conn_max = 16;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rlim_t want = CONN_MAX + 2 * FD_RESERVE;
        if (rl.rlim_cur < want && rl.rlim_cur != RLIM_INFINITY) {
            rlim_t old = rl.rlim_cur;
            rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
            if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                rl.rlim_cur = old;
        }
        if (rl.rlim_cur > 2 * FD_RESERVE)
            s->conn_max = rl.rlim_cur - FD_RESERVE < CONN_MAX ? rl.rlim_cur - FD_RESERVE : CONN_MAX;
    }
    flush_refresh(loop, s);
    log_info("mc", "memcached protocol on %s (at most %zu connections)", hostport, s->conn_max);
    return s;
}

void mc_server_destroy(mc_server_t **ps)
{
    if (!ps || !*ps)
        return;
    mc_server_t *s = *ps;
    while (s->conns) {
        mc_conn_t *c = s->conns;
        conn_hold(c);
        for (size_t i = 0; i < GET_WINDOW; i++)
            if (c->jobs[i].timer) {
                loop_timer_cancel(s->loop, c->jobs[i].timer);
                c->jobs[i].timer = 0;
                c->pending--; /* the retry's hold */
            }
        conn_close(c);
        conn_release(c); /* conns with store calls in flight are freed by their answers */
    }
    if (s->flush_op)
        s->flush_op->s = NULL;
    if (s->flush_timer)
        loop_timer_cancel(s->loop, s->flush_timer);
    if (s->accept_timer)
        loop_timer_cancel(s->loop, s->accept_timer);
    if (s->ep >= 0) {
        loop_remove_fd(s->loop, s->ep);
        close(s->ep);
    }
    if (s->lfd >= 0)
        close(s->lfd);
    free(s);
    *ps = NULL;
}

void mc_server_metrics(const mc_server_t *s, mx_buf_t *b)
{
    const stats_t *st = &s->st;
    mx_family(b, "kvnode_memcached_connections", MX_GAUGE,
              "memcached front end: open connections.");
    mx_sample_u64(b, "kvnode_memcached_connections", NULL, 0, st->curr_conns);
    mx_family(b, "kvnode_memcached_connections_total", MX_COUNTER,
              "memcached front end: connections accepted.");
    mx_sample_u64(b, "kvnode_memcached_connections_total", NULL, 0, st->total_conns);
    mx_family(b, "kvnode_memcached_rejected_connections_total", MX_COUNTER,
              "memcached front end: connections refused (too many).");
    mx_sample_u64(b, "kvnode_memcached_rejected_connections_total", NULL, 0, st->rejected_conns);
    static const char cmds[] = "kvnode_memcached_commands_total";
    mx_family(b, cmds, MX_COUNTER, "memcached front end: commands, as stats counts them.");
    const struct {
        const char *cmd;
        uint64_t v;
    } c[] = {{"get", st->cmd_get},
             {"set", st->cmd_set},
             {"touch", st->cmd_touch},
             {"flush", st->cmd_flush}};
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        mx_label_t l = {"command", c[i].cmd};
        mx_sample_u64(b, cmds, &l, 1, c[i].v);
    }
    static const char res[] = "kvnode_memcached_results_total";
    mx_family(b, res, MX_COUNTER, "memcached front end: outcomes of key lookups, per command.");
    const struct {
        const char *cmd, *result;
        uint64_t v;
    } r[] = {
        {"get", "hit", st->get_hits},        {"get", "miss", st->get_misses},
        {"get", "expired", st->get_expired}, {"get", "flushed", st->get_flushed},
        {"delete", "hit", st->delete_hits},  {"delete", "miss", st->delete_misses},
        {"incr", "hit", st->incr_hits},      {"incr", "miss", st->incr_misses},
        {"decr", "hit", st->decr_hits},      {"decr", "miss", st->decr_misses},
        {"cas", "hit", st->cas_hits},        {"cas", "miss", st->cas_misses},
        {"cas", "badval", st->cas_badval},   {"touch", "hit", st->touch_hits},
        {"touch", "miss", st->touch_misses},
    };
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) {
        mx_label_t l[2] = {{"command", r[i].cmd}, {"result", r[i].result}};
        mx_sample_u64(b, res, l, 2, r[i].v);
    }
    mx_family(b, "kvnode_memcached_read_bytes_total", MX_COUNTER,
              "memcached front end: bytes read from clients.");
    mx_sample_u64(b, "kvnode_memcached_read_bytes_total", NULL, 0, st->bytes_read);
    mx_family(b, "kvnode_memcached_written_bytes_total", MX_COUNTER,
              "memcached front end: bytes written to clients.");
    mx_sample_u64(b, "kvnode_memcached_written_bytes_total", NULL, 0, st->bytes_written);
}
