/*
 * endpoint.c — validation and normalization of node endpoints.
 *
 * Strict on purpose: a typo in --join or --peer should be reported at once
 * with the reason, not surface later as a silent connect that never answers
 * (ZeroMQ connects lazily and accepts many strings it cannot reach).
 */
#include "endpoint.h"
#include "sec_key.h"

#include <errno.h>
#include <netinet/in.h>
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

/*
 * The address without its "#KEY" suffix: base gets at most ENDPOINT_MAX
 * bytes. Returns 1 with key set when a suffix is present, 0 when none,
 * -EINVAL for a malformed suffix or a too long address.
 */
static int split_key(const char *in, char base[ENDPOINT_MAX], uint8_t key[SEC_KEY_BYTES])
{
    size_t len = strlen(in);
    if (len >= ENDPOINT_MAX)
        return -EINVAL;
    const char *hash = strchr(in, '#');
    /* An ipc path may itself contain '#': only a well-formed key suffix counts. */
    if (strncmp(in, "ipc://", 6) == 0) {
        if (len < 6 + 1 + SEC_Z85_LEN + 1 || in[len - SEC_Z85_LEN - 1] != '#' ||
            sec_z85_decode(in + len - SEC_Z85_LEN, SEC_Z85_LEN, key) < 0)
            hash = NULL;
        else
            hash = in + len - SEC_Z85_LEN - 1;
    }
    if (!hash) {
        memcpy(base, in, len + 1);
        return 0;
    }
    if (sec_z85_decode(hash + 1, strlen(hash + 1), key) < 0)
        return -EINVAL;
    memcpy(base, in, (size_t)(hash - in));
    base[hash - in] = '\0';
    return 1;
}

int endpoint_split_key(const char *ep, char base[ENDPOINT_MAX], uint8_t key[32])
{
    if (!ep)
        return -EINVAL;
    return split_key(ep, base, key);
}

static int normalize_base(const char *in, char *out, size_t cap, const char **why);

int endpoint_normalize(const char *in, char *out, size_t cap, const char **why)
{
    if (!in || !*in)
        return fail(why, "empty endpoint");
    if (strlen(in) >= ENDPOINT_MAX)
        return fail(why, "endpoint too long");
    char base[ENDPOINT_MAX];
    uint8_t key[SEC_KEY_BYTES];
    int k = split_key(in, base, key);
    if (k < 0)
        return fail(why, "malformed #KEY suffix (expected '#' and a 40-character Z85 public key)");
    char norm[ENDPOINT_MAX];
    int rc = normalize_base(base, norm, sizeof norm, why);
    if (rc < 0)
        return rc;
    char z[SEC_Z85_LEN + 1] = "";
    if (k)
        sec_z85_encode(key, z);
    int n = snprintf(out, cap, "%s%s%s", norm, k ? "#" : "", z);
    if (n < 0 || (size_t)n >= cap || (size_t)n >= ENDPOINT_MAX)
        return fail(why, "endpoint too long");
    return 0;
}

bool endpoint_is_local(const char *ep)
{
    char base[ENDPOINT_MAX];
    uint8_t key[SEC_KEY_BYTES];
    if (!ep || split_key(ep, base, key) < 0)
        return false;
    if (strncmp(base, "ipc://", 6) == 0)
        return true;
    const char *hp = strncmp(base, "tcp://", 6) == 0 ? base + 6 : base;
    const char *colon = strrchr(hp, ':');
    if (!colon)
        return false;
    size_t hlen = (size_t)(colon - hp);
    if (hlen == 5 && strncmp(hp, "[::1]", 5) == 0)
        return true;
    if (hlen == 9 && strncmp(hp, "localhost", 9) == 0)
        return true;
    /* 127.0.0.0/8 written as a dotted quad: four numbers, the first 127. */
    unsigned a, b, c, d;
    char tail;
    char host[64];
    if (hlen >= sizeof host)
        return false;
    memcpy(host, hp, hlen);
    host[hlen] = '\0';
    return sscanf(host, "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) == 4 && a == 127 && b < 256 &&
           c < 256 && d < 256;
}

static int normalize_base(const char *in, char *out, size_t cap, const char **why)
{
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

int endpoint_split_hostport(const char *spec, char *host, size_t hostcap,
                            char port[ENDPOINT_PORT_MAX], const char **why)
{
    const char *hs = spec, *he, *colon;
    if (*spec == '[') {
        he = strchr(spec, ']');
        if (!he || he[1] != ':')
            return fail(why, "expected [IPV6]:PORT");
        hs = spec + 1;
        colon = he + 1;
    } else {
        /* one colon only: a bare IPv6 address needs its brackets */
        colon = strrchr(spec, ':');
        if (!colon || strchr(spec, ':') != colon)
            return fail(why, "expected HOST:PORT");
        he = colon;
    }
    size_t hl = (size_t)(he - hs);
    const char *p = colon + 1;
    size_t pl = strlen(p);
    if (hl == 0 || hl >= hostcap)
        return fail(why, "missing or overlong host");
    if (pl == 0 || pl >= ENDPOINT_PORT_MAX || strspn(p, "0123456789") != pl || atoi(p) > 65535)
        return fail(why, "port must be a number from 0 to 65535");
    memcpy(host, hs, hl);
    host[hl] = '\0';
    memcpy(port, p, pl + 1);
    return 0;
}

bool endpoint_sockaddr_is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return false;
}
