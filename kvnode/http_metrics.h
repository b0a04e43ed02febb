/*
 * http_metrics.h — a minimal HTTP/1.x server on the process's event loop
 * that serves `GET /metrics` (and HEAD) in the Prometheus text format.
 *
 * Every request is answered once and the connection closed (Connection:
 * close): 200 for /metrics, 404 for any other path, 405 for any other
 * method, 400 for a malformed request line, 431 for a request head over
 * HTTP_METRICS_REQ_MAX bytes, 503 beyond HTTP_METRICS_CONN_MAX connections,
 * 500 if the text could not be built. Nothing blocks: sockets are
 * non-blocking, a reply the socket cannot take at once is retried from a
 * timer, and a connection that has not finished within
 * HTTP_METRICS_IDLE_MS is closed.
 */
#ifndef HTTP_METRICS_H
#define HTTP_METRICS_H

#include "loop.h"
#include "metrics.h"

#include <stdbool.h>
#include <stddef.h>

enum {
    HTTP_METRICS_REQ_MAX = 8192,  /* bytes of request line + headers */
    HTTP_METRICS_CONN_MAX = 64,   /* connections open at once */
    HTTP_METRICS_IDLE_MS = 10000, /* a connection's whole life, at most */
    HTTP_METRICS_ADDR_MAX = 300,
};

typedef struct http_metrics http_metrics_t;

/*
 * Write the current metrics into b (called on the loop, once per scrape;
 * must not block). Out of memory is recorded in b (metrics.h).
 */
typedef void (*http_metrics_collect_fn)(mx_buf_t *b, void *arg);

/*
 * Listen on spec and serve from loop. spec is HOST:PORT or [V6]:PORT (an
 * http:// prefix is accepted); HOST is a name or a numeric address,
 * resolved once, here (the first address it resolves to is bound). With
 * allow_remote false an address that is not loopback is refused.
 * collect(b, arg) runs for every scrape; loop and arg are borrowed and must
 * outlive the server. Returns the server, or NULL with a message in err.
 */
http_metrics_t *http_metrics_new(loop_t *loop, const char *spec, bool allow_remote,
                                 http_metrics_collect_fn collect, void *arg, char *err,
                                 size_t errcap);
/* The port listened on (useful with port 0). */
unsigned http_metrics_port(const http_metrics_t *h);
/* Close the listener and every connection; sets *h to NULL. */
void http_metrics_destroy(http_metrics_t **h);

#endif
