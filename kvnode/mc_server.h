/*
 * mc_server.h — the node's memcached endpoint: memcached's text protocol
 * (and its basic meta commands) on a TCP port, served from the node's
 * event loop, with every item stored in the replicated store under "mc/".
 *
 * Items go through a kvclient (kvclient.h) on the same loop, so any node
 * answers for any key: the client routes each key to its authority and
 * retries on redirects. See docs/PROTOCOL.md, "memcached front end", for
 * the key layout, the record and the differences from memcached.
 */
#ifndef MC_SERVER_H
#define MC_SERVER_H

#include "kvclient.h"
#include "loop.h"
#include "metrics.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct mc_server mc_server_t;

/*
 * Listen on hostport ("HOST:PORT", "[V6]:PORT"; HOST a name or an address)
 * and serve from loop through kvc (both borrowed; they outlive the server).
 * Unless allow_remote, HOST must be a loopback address (the protocol has no
 * authentication). Returns NULL with a message in err (errcap bytes).
 */
mc_server_t *mc_server_new(loop_t *loop, kvc_t *kvc, const char *hostport, bool allow_remote,
                           char *err, size_t errcap);
/*
 * Close the listener and every connection. Store operations still in flight
 * complete later into nothing; destroy the kvc after the server.
 */
void mc_server_destroy(mc_server_t **s);

/*
 * The front end's counters (those `stats` reports) as Prometheus metrics
 * (kvnode --metrics): connections, commands, hits and misses, bytes.
 */
void mc_server_metrics(const mc_server_t *s, mx_buf_t *b);

#endif
