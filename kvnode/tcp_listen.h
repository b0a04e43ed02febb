/*
 * tcp_listen.h — the plain TCP listening socket of a kvnode or dhtfs side
 * service (the --metrics HTTP endpoint, the --memcached front end).
 */
#ifndef TCP_LISTEN_H
#define TCP_LISTEN_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Listen on spec, "HOST:PORT" or "[IPV6]:PORT" (endpoint_split_hostport;
 * port 0 picks a free one): the first address HOST resolves to, with a
 * non-blocking, close-on-exec socket, SO_REUSEADDR and the given backlog.
 * With loopback_only, an address that is not loopback is refused.
 *
 * Returns the socket (the caller owns it and closes it) and, when port is
 * not NULL, the port actually bound in *port. On failure returns -EINVAL
 * (malformed spec), -EADDRNOTAVAIL (HOST does not resolve), -EPERM (not
 * loopback while loopback_only) or the -errno of socket/bind/listen, and
 * writes the reason to err (errcap bytes, without the spec: the caller
 * says which option it was).
 */
int tcp_listen(const char *spec, bool loopback_only, int backlog, unsigned *port, char *err,
               size_t errcap);

#endif
