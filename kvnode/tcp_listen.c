/*
 * tcp_listen.c — open the listening socket of a side service.
 *
 * The metrics endpoint and the memcached front end used to split HOST:PORT
 * and bind each in their own way (one took ports past 65535 to the
 * resolver, the other refused them); both now come through here, so the
 * address rules and the loopback check are the same for every port a
 * node opens besides its ZeroMQ one. What the socket then serves, and the
 * wording of the refusal, stay with the caller.
 */
#include "tcp_listen.h"

#include "endpoint.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int tcp_listen(const char *spec, bool loopback_only, int backlog, unsigned *port, char *err,
               size_t errcap)
{
    char host[256], portstr[ENDPOINT_PORT_MAX];
    const char *why = NULL;
    int rc = endpoint_split_hostport(spec, host, sizeof host, portstr, &why);
    if (rc < 0) {
        snprintf(err, errcap, "%s", why);
        return rc;
    }
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int grc = getaddrinfo(host, portstr, &hints, &ai);
    if (grc != 0 || !ai) {
        snprintf(err, errcap, "%s", grc ? gai_strerror(grc) : "no address");
        return -EADDRNOTAVAIL;
    }
    if (loopback_only && !endpoint_sockaddr_is_loopback(ai->ai_addr)) {
        snprintf(err, errcap, "not a loopback address");
        freeaddrinfo(ai);
        return -EPERM;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, backlog) < 0) {
        rc = -errno;
        snprintf(err, errcap, "%s", strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return rc;
    }
    freeaddrinfo(ai);
    if (port) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        *port = 0;
        if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
            *port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
    }
    return fd;
}
