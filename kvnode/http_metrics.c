/*
 * http_metrics.c — `GET /metrics` over HTTP/1.x on the event loop.
 *
 * Each connection is a small state machine: READ (collect the request
 * head, at most HTTP_METRICS_REQ_MAX bytes) → WRITE (the whole response,
 * built at once; what the socket does not take is retried from a timer,
 * as the loop watches input only) → DRAIN (our side shut down, the
 * client's remaining bytes read and dropped until it closes, so that
 * closing does not reset the connection and destroy the response the
 * client has not read yet). One timer bounds a connection's whole life.
 *
 * Deliberately not here: keep-alive, chunked bodies, request bodies, TLS.
 * A scrape is one small request per connection, and Prometheus copes.
 */
#include "http_metrics.h"

#include "log.h"
#include "tcp_listen.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum {
    WRITE_RETRY_MS = 5,
    LISTEN_BACKLOG = 64,
    REFUSING_MAX = 16,     /* connections past the bound being answered 503 */
    ACCEPT_PAUSE_MS = 100, /* after accept fails for want of fds or memory */
};

typedef enum { CONN_READ, CONN_WRITE, CONN_DRAIN } conn_state_t;

typedef struct conn {
    struct conn *next, *prev;
    http_metrics_t *h;
    int fd;
    conn_state_t state;
    char in[HTTP_METRICS_REQ_MAX];
    size_t inlen;
    char *out; /* the response, owned */
    size_t outlen, outoff;
    uint64_t life_timer, retry_timer;
} conn_t;

struct http_metrics {
    loop_t *loop;
    int fd;
    unsigned port;
    http_metrics_collect_fn collect;
    void *arg;
    conn_t *conns;
    unsigned nconns;
    uint64_t scrapes, refused;
    uint64_t resume_timer;
};

static void conn_close(conn_t *c)
{
    http_metrics_t *h = c->h;
    loop_remove_fd(h->loop, c->fd);
    close(c->fd);
    loop_timer_cancel(h->loop, c->life_timer);
    loop_timer_cancel(h->loop, c->retry_timer);
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    h->nconns--;
    free(c->out);
    free(c);
}

static void on_life_timeout(loop_t *loop, void *arg)
{
    (void)loop;
    conn_t *c = arg;
    c->life_timer = 0;
    conn_close(c);
}

static void conn_write(conn_t *c);

static void on_retry(loop_t *loop, void *arg)
{
    (void)loop;
    conn_t *c = arg;
    c->retry_timer = 0;
    conn_write(c);
}

/* Send what the socket takes; the rest from a timer. Then drain. */
static void conn_write(conn_t *c)
{
    while (c->outoff < c->outlen) {
        ssize_t w = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
        if (w > 0) {
            c->outoff += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            c->retry_timer = loop_timer_add(c->h->loop, WRITE_RETRY_MS, on_retry, c);
            if (!c->retry_timer)
                conn_close(c);
            return;
        }
        conn_close(c); /* the client went away */
        return;
    }
    free(c->out);
    c->out = NULL;
    c->state = CONN_DRAIN;
    shutdown(c->fd, SHUT_WR);
}

static const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Error";
    }
}

/* Build the whole response (head + body) and start writing it. */
static void conn_respond(conn_t *c, int status, const char *ctype, const char *body,
                         size_t body_len, bool head_only)
{
    char hdr[512];
    int n = snprintf(hdr, sizeof hdr,
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Type: %s\r\n"
                     "Content-Length: %zu\r\n"
                     "%s"
                     "Connection: close\r\n\r\n",
                     status, reason(status), ctype, body_len,
                     status == 405 ? "Allow: GET, HEAD\r\n" : "");
    size_t send_body = head_only ? 0 : body_len;
    c->out = malloc((size_t)n + send_body);
    if (!c->out) {
        conn_close(c);
        return;
    }
    memcpy(c->out, hdr, (size_t)n);
    if (send_body)
        memcpy(c->out + n, body, send_body);
    c->outlen = (size_t)n + send_body;
    c->outoff = 0;
    c->state = CONN_WRITE;
    conn_write(c);
}

static void respond_text(conn_t *c, int status, const char *msg)
{
    conn_respond(c, status, "text/plain; charset=utf-8", msg, strlen(msg), false);
}

/*
 * The request head is complete (in[0..inlen) holds "\r\n\r\n" or "\n\n"):
 * look at the request line only — METHOD SP TARGET SP HTTP/1.x.
 */
static void conn_serve(conn_t *c)
{
    char *eol = memchr(c->in, '\n', c->inlen);
    size_t linelen = (size_t)(eol - c->in);
    if (linelen && c->in[linelen - 1] == '\r')
        linelen--;
    char line[HTTP_METRICS_REQ_MAX + 1];
    memcpy(line, c->in, linelen);
    line[linelen] = '\0';
    char *sp1 = strchr(line, ' ');
    char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp1 || !sp2 || sp1 == line || sp2 == sp1 + 1 || strchr(sp2 + 1, ' ') ||
        strncmp(sp2 + 1, "HTTP/1.", 7) != 0 || strlen(sp2 + 1) != 8 ||
        (sp2[8] != '0' && sp2[8] != '1')) {
        respond_text(c, 400, "bad request\n");
        return;
    }
    *sp1 = *sp2 = '\0';
    const char *method = line, *target = sp1 + 1;
    for (const char *p = method; *p; p++)
        if (*p < 'A' || *p > 'Z') {
            respond_text(c, 400, "bad request\n");
            return;
        }
    bool head = strcmp(method, "HEAD") == 0;
    if (strcmp(method, "GET") != 0 && !head) {
        respond_text(c, 405, "only GET and HEAD\n");
        return;
    }
    size_t plen = strcspn(target, "?#");
    if (plen != strlen("/metrics") || memcmp(target, "/metrics", plen) != 0) {
        respond_text(c, 404, "not found: try /metrics\n");
        return;
    }
    http_metrics_t *h = c->h;
    h->scrapes++;
    mx_buf_t b;
    mx_buf_init(&b);
    h->collect(&b, h->arg);
    mx_family(&b, "http_metrics_scrapes_total", MX_COUNTER,
              "Scrapes of this metrics endpoint, this one included.");
    mx_sample_u64(&b, "http_metrics_scrapes_total", NULL, 0, h->scrapes);
    mx_family(&b, "http_metrics_refused_connections_total", MX_COUNTER,
              "Connections to this endpoint refused (too many open).");
    mx_sample_u64(&b, "http_metrics_refused_connections_total", NULL, 0, h->refused);
    if (mx_buf_failed(&b))
        respond_text(c, 500, "out of memory\n");
    else
        conn_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len, head);
    mx_buf_free(&b);
}

static bool head_complete(const char *in, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (in[i] == '\n' && in[i + 1] == '\n')
            return true;
        if (i + 3 < len && memcmp(in + i, "\r\n\r\n", 4) == 0)
            return true;
    }
    return false;
}

static void on_conn(loop_t *loop, void *zsock, int fd, void *arg)
{
    (void)loop;
    (void)zsock;
    conn_t *c = arg;
    for (;;) {
        char drop[4096];
        bool reading = c->state == CONN_READ;
        char *dst = reading ? c->in + c->inlen : drop;
        size_t room = reading ? sizeof c->in - c->inlen : sizeof drop;
        if (reading && room == 0) {
            respond_text(c, 431, "request head too large\n");
            return;
        }
        ssize_t r = recv(fd, dst, room, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (r < 0 || (r == 0 && c->state != CONN_WRITE)) {
            /* An error, a half-sent request, or a client done with our response. */
            conn_close(c);
            return;
        }
        if (r == 0) {
            /*
             * The client shut its side down after its request and our
             * response is still going out: stop watching (the fd stays
             * readable at EOF), the retry timer finishes the job.
             */
            loop_remove_fd(c->h->loop, fd);
            return;
        }
        if (!reading)
            continue; /* WRITE or DRAIN: the client's extra bytes are dropped */
        size_t before = c->inlen;
        c->inlen += (size_t)r;
        /* Search from just before the new bytes: the terminator may straddle reads. */
        size_t from = before > 3 ? before - 3 : 0;
        if (head_complete(c->in + from, c->inlen - from)) {
            conn_serve(c);
            return; /* c may be gone; a later wake-up drains */
        }
    }
}

static void on_accept(loop_t *loop, void *zsock, int fd, void *arg);

static void on_accept_resume(loop_t *loop, void *arg)
{
    http_metrics_t *h = arg;
    h->resume_timer = 0;
    loop_add_fd(loop, h->fd, on_accept, h);
}

static void on_accept(loop_t *loop, void *zsock, int fd, void *arg)
{
    (void)zsock;
    http_metrics_t *h = arg;
    for (int i = 0; i < 64; i++) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED)
                return;
            /*
             * Out of fds or memory: the listener stays readable, so stop
             * watching it for a moment instead of spinning the loop.
             */
            log_warn("metrics", "accept: %s; pausing the endpoint for %d ms", strerror(errno),
                     ACCEPT_PAUSE_MS);
            loop_remove_fd(loop, fd);
            h->resume_timer = loop_timer_add(loop, ACCEPT_PAUSE_MS, on_accept_resume, h);
            if (!h->resume_timer)
                loop_add_fd(loop, fd, on_accept, h);
            return;
        }
        /*
         * Past the bound a few more connections are taken only to be told
         * 503 through the usual path (its lingering close keeps the client's
         * unread request from turning the answer into a reset); past those,
         * plain closes.
         */
        bool busy = h->nconns >= HTTP_METRICS_CONN_MAX;
        conn_t *c = h->nconns < HTTP_METRICS_CONN_MAX + REFUSING_MAX ? calloc(1, sizeof *c) : NULL;
        if (busy)
            h->refused++;
        if (!c) {
            close(cfd);
            continue;
        }
        c->h = h;
        c->fd = cfd;
        c->next = h->conns;
        if (h->conns)
            h->conns->prev = c;
        h->conns = c;
        h->nconns++;
        c->life_timer = loop_timer_add(loop, HTTP_METRICS_IDLE_MS, on_life_timeout, c);
        if (!c->life_timer || loop_add_fd(loop, cfd, on_conn, c) < 0)
            conn_close(c);
        else if (busy)
            respond_text(c, 503, "too many connections\n");
    }
}

http_metrics_t *http_metrics_new(loop_t *loop, const char *spec, bool allow_remote,
                                 http_metrics_collect_fn collect, void *arg, char *err,
                                 size_t errcap)
{
    /* HOST:PORT or [V6]:PORT, optionally after http://, and no path */
    const char *addr = strncmp(spec, "http://", 7) == 0 ? spec + 7 : spec;
    if (strchr(addr, '/')) {
        snprintf(err, errcap,
                 "bad metrics address '%s': no path: the endpoint always serves /metrics", spec);
        return NULL;
    }
    http_metrics_t *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errcap, "cannot serve metrics on %s: out of memory", spec);
        return NULL;
    }
    char why[128];
    int fd = tcp_listen(addr, !allow_remote, LISTEN_BACKLOG, &h->port, why, sizeof why);
    if (fd < 0) {
        if (fd == -EINVAL)
            snprintf(err, errcap, "bad metrics address '%s': %s", spec, why);
        else if (fd == -EPERM)
            snprintf(err, errcap,
                     "refusing to serve metrics on %s: not a loopback address (secure the node "
                     "with --key or pass --insecure to serve them on a network you trust)",
                     spec);
        else
            snprintf(err, errcap, "cannot serve metrics on %s: %s", spec, why);
        free(h);
        return NULL;
    }
    h->loop = loop;
    h->fd = fd;
    h->collect = collect;
    h->arg = arg;
    int rc = loop_add_fd(loop, fd, on_accept, h);
    if (rc < 0) {
        snprintf(err, errcap, "cannot serve metrics on %s: %s", spec, strerror(-rc));
        close(fd);
        free(h);
        return NULL;
    }
    return h;
}

unsigned http_metrics_port(const http_metrics_t *h)
{
    return h->port;
}

void http_metrics_destroy(http_metrics_t **hp)
{
    http_metrics_t *h = *hp;
    if (!h)
        return;
    while (h->conns)
        conn_close(h->conns);
    loop_timer_cancel(h->loop, h->resume_timer);
    loop_remove_fd(h->loop, h->fd);
    close(h->fd);
    free(h);
    *hp = NULL;
}
