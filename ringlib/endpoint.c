/*
 * endpoint.c — validation and normalization of node endpoints.
 *
 * Strict on purpose: a typo in --join or --peer should be reported at once
 * with the reason, not surface later as a silent connect that never answers
 * (ZeroMQ connects lazily and accepts many strings it cannot reach).
 */
#include "endpoint.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_';
}

static bool v6_char(char c)
{
    return (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || (c >= '0' && c <= '9') || c == ':' ||
           c == '.';
}

static int fail(const char **why, const char *msg)
{
    if (why)
        *why = msg;
    return -EINVAL;
}

int endpoint_normalize(const char *in, char *out, size_t cap, const char **why)
{
    if (!in || !*in)
        return fail(why, "empty endpoint");
    if (strlen(in) >= ENDPOINT_MAX)
        return fail(why, "endpoint too long");
    if (strncmp(in, "ipc://", 6) == 0) {
        if (!in[6])
            return fail(why, "ipc endpoint without a path");
        for (const char *p = in; *p; p++)
            if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
                return fail(why, "ipc path must be printable ASCII without spaces");
        if (strlen(in) >= cap)
            return fail(why, "endpoint too long");
        strcpy(out, in);
        return 0;
    }
    const char *hp = in;
    if (strncmp(in, "tcp://", 6) == 0)
        hp = in + 6;
    else if (strstr(in, "://"))
        return fail(why, "unsupported transport (use tcp:// or ipc://)");

    const char *colon = strrchr(hp, ':');
    if (!colon || colon == hp)
        return fail(why, "expected HOST:PORT");
    size_t hlen = (size_t)(colon - hp);
    if (hp[0] == '[') {
        if (hlen < 3 || hp[hlen - 1] != ']')
            return fail(why, "malformed [IPv6] host");
        for (size_t i = 1; i + 1 < hlen; i++)
            if (!v6_char(hp[i]))
                return fail(why, "malformed [IPv6] host");
    } else {
        for (size_t i = 0; i < hlen; i++)
            if (!host_char(hp[i]))
                return fail(why, "invalid character in host");
    }
    const char *port = colon + 1;
    if (!*port || strlen(port) > 5)
        return fail(why, "port must be a number from 1 to 65535");
    for (const char *p = port; *p; p++)
        if (*p < '0' || *p > '9')
            return fail(why, "port must be a number from 1 to 65535");
    long pn = strtol(port, NULL, 10);
    if (pn < 1 || pn > 65535)
        return fail(why, "port must be a number from 1 to 65535");
    int n = snprintf(out, cap, "tcp://%.*s:%ld", (int)hlen, hp, pn);
    if (n < 0 || (size_t)n >= cap || (size_t)n >= ENDPOINT_MAX)
        return fail(why, "endpoint too long");
    return 0;
}
