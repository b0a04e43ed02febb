/*
 * endpoint.h — the ZeroMQ endpoints nodes listen on and are known by.
 *
 * Pure string handling: "HOST:PORT" is shorthand for "tcp://HOST:PORT";
 * ipc:// paths are accepted for local clusters. A node's id is the hash of
 * its normalized endpoint, so normalization must be deterministic.
 */
#ifndef ENDPOINT_H
#define ENDPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
 *
 * Any of these may end in "#KEY": the CURVE public key (40 characters of
 * Z85) of the node serving there, the address of a secured node. The key
 * is kept (re-encoded, so canonical) after the normalized endpoint. For
 * ipc:// only a well-formed key suffix counts (a path may contain '#').
 */
int endpoint_normalize(const char *in, char *out, size_t cap, const char **why);

/*
 * Split an address into the ZeroMQ endpoint (base, without the "#KEY"
 * suffix) and the server's public key (32 bytes). Returns 1 when a key was
 * present, 0 when not (base is then the whole address), -EINVAL for a
 * malformed key or an address of ENDPOINT_MAX bytes or more.
 */
int endpoint_split_key(const char *ep, char base[ENDPOINT_MAX], uint8_t key[32]);

/*
 * Whether ep (with or without a key suffix) can only be reached from this
 * machine: ipc://, or a tcp host of 127.0.0.0/8, [::1] or "localhost".
 * What an unsecured node may listen on (kvnode without --key).
 */
bool endpoint_is_local(const char *ep);

enum {
    /* Room for a listening port as text: up to 5 digits and the NUL. */
    ENDPOINT_PORT_MAX = 6,
};

/*
 * Split a plain TCP listening address (the kvnode --metrics and --memcached
 * kind, not a ZeroMQ endpoint): "HOST:PORT" or "[IPV6]:PORT", HOST a name
 * or numeric address (not checked here: the resolver does), PORT 0..65535
 * in decimal (0: any free port). host gets at most hostcap bytes, port a
 * NUL-terminated copy of the digits. Returns 0, or -EINVAL with *why (may
 * be NULL) set to a static explanation; nothing is resolved.
 */
int endpoint_split_hostport(const char *spec, char *host, size_t hostcap,
                            char port[ENDPOINT_PORT_MAX], const char **why);

struct sockaddr;
/* Whether a resolved address is loopback: 127.0.0.0/8, ::1 or ::ffff:127.x. */
bool endpoint_sockaddr_is_loopback(const struct sockaddr *sa);

#endif
