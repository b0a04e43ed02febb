/*
 * endpoint.h — the ZeroMQ endpoints nodes listen on and are known by.
 *
 * Pure string handling: "HOST:PORT" is shorthand for "tcp://HOST:PORT";
 * ipc:// paths are accepted for local clusters. A node's id is the hash of
 * its normalized endpoint, so normalization must be deterministic.
 */
#ifndef ENDPOINT_H
#define ENDPOINT_H

#include <stddef.h>

enum {
    /* Longest endpoint accepted, NUL included; also the wire's limit. */
    ENDPOINT_MAX = 128,
};

/*
 * Normalize `in` into out (cap bytes, at least ENDPOINT_MAX recommended).
 * Accepts tcp://HOST:PORT, HOST:PORT (host: hostname, dotted IPv4 or [IPv6];
 * port 1..65535) and ipc://PATH. Wildcard hosts and ports ("*") are refused:
 * an endpoint is also the address other nodes dial. Returns 0, or -EINVAL
 * with *why (may be NULL) set to a static explanation.
 */
int endpoint_normalize(const char *in, char *out, size_t cap, const char **why);

#endif
