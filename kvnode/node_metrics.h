/*
 * node_metrics.h — what a kvnode counts for its metrics endpoint
 * (`kvnode --metrics HOST:PORT`, served by http_metrics) and the writer of
 * the scrape.
 *
 * The counters are plain fields of the node (one loop, one thread): the
 * node's modules bump them through the inline helpers below at the few
 * places where a request arrives, an error is answered and a coordinated
 * get or put answers. Everything else in a scrape (keys, bytes, hints,
 * peers) is read from the node's state when the scrape runs.
 */
#ifndef NODE_METRICS_H
#define NODE_METRICS_H

#include "metrics.h"

#include <stdbool.h>
#include <stdint.h>

enum {
    NODE_METRICS_TYPES = 128, /* request types are 7-bit (wire.h) */
    NODE_METRICS_ERRNO_MAX = 192,
};

typedef struct {
    uint64_t requests[NODE_METRICS_TYPES];        /* decoded requests, per type */
    uint64_t request_errors[NODE_METRICS_TYPES];  /* error replies, per request type */
    uint64_t error_codes[NODE_METRICS_ERRNO_MAX]; /* error replies, per errno (last: other) */
    uint64_t malformed;                           /* messages dropped undecoded */
    uint64_t stale_refused;                       /* client writes refused right after a stall */
    uint64_t overtaken;                           /* view-based writes maybe overtaken */
    uint64_t patches[2];   /* REPL_PUT patches [applied to our copy, refused: base differs] */
    uint8_t serving;       /* the request type whose handler runs now (0: none) */
    mx_hist_t coord[2][2]; /* coordinated [get, put][ok, error]: seconds until answered */
} node_metrics_t;

/* Set up the histograms. */
void node_metrics_init(node_metrics_t *m);

static inline void node_metrics_request(node_metrics_t *m, uint8_t type)
{
    m->requests[type & (NODE_METRICS_TYPES - 1)]++;
}

/* An error reply with errno code goes out, for request type m->serving (0: unknown). */
static inline void node_metrics_error(node_metrics_t *m, int code)
{
    m->request_errors[m->serving & (NODE_METRICS_TYPES - 1)]++;
    m->error_codes[code > 0 && code < NODE_METRICS_ERRNO_MAX - 1 ? code
                                                                 : NODE_METRICS_ERRNO_MAX - 1]++;
}

/* A coordinated get (is_get) or put answered, ok or not, after usec microseconds. */
static inline void node_metrics_coord(node_metrics_t *m, bool is_get, bool ok, uint64_t usec)
{
    mx_hist_observe(&m->coord[is_get ? 0 : 1][ok ? 0 : 1], (double)usec / 1e6);
}

/* Monotonic microseconds, for node_metrics_coord. */
uint64_t node_metrics_usec(void);

/*
 * The scrape: write every kvnode metric into b. arg is the node_t
 * (http_metrics_collect_fn's signature); runs on the node's loop.
 */
void node_metrics_collect(mx_buf_t *b, void *arg);

#endif
