/*
 * ring_id.c — modular arithmetic on the identifier circle.
 *
 * All arithmetic is done in uint64_t and masked, so m = 64 (where 2^m does
 * not fit) needs no special case: unsigned wrap-around is the modulus.
 * Interval tests compare clockwise distances from the left end, which makes
 * wrap-around (a > b) the same code path as the plain case.
 */
#include "ring_id.h"

#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool ring_bits_valid(unsigned m)
{
    return m >= RING_ID_BITS_MIN && m <= RING_ID_BITS_MAX;
}

uint64_t ring_mask(unsigned m)
{
    return m >= 64 ? UINT64_MAX : ((uint64_t)1 << m) - 1;
}

ring_id_t ring_add(ring_id_t a, uint64_t b, unsigned m)
{
    return (a + b) & ring_mask(m);
}

ring_id_t ring_sub(ring_id_t a, uint64_t b, unsigned m)
{
    return (a - b) & ring_mask(m);
}

uint64_t ring_distance(ring_id_t a, ring_id_t b, unsigned m)
{
    return (b - a) & ring_mask(m);
}

/*
 * The interval tests need no m: for ids below 2^m, "x - a" modulo 2^64 orders
 * points clockwise from a exactly as modulo 2^m does, because every id is
 * below 2^m and the subtraction never crosses a second lap.
 * Careful: that holds only if the differences are compared, never summed.
 */
static uint64_t cw(ring_id_t from, ring_id_t to)
{
    return to - from;
}

bool ring_in_oo(ring_id_t x, ring_id_t a, ring_id_t b)
{
    if (a == b)
        return x != a;
    return x != a && cw(a, x) < cw(a, b);
}

bool ring_in_oc(ring_id_t x, ring_id_t a, ring_id_t b)
{
    if (a == b)
        return true;
    return x != a && cw(a, x) <= cw(a, b);
}

bool ring_in_co(ring_id_t x, ring_id_t a, ring_id_t b)
{
    if (a == b)
        return true;
    return cw(a, x) < cw(a, b);
}

bool ring_in_co_strict(ring_id_t x, ring_id_t a, ring_id_t b)
{
    return a != b && ring_in_co(x, a, b);
}

ring_id_t ring_hash(const void *data, size_t len, unsigned m)
{
    unsigned char digest[8];
    crypto_generichash(digest, sizeof digest, data, len, NULL, 0);
    uint64_t v = 0;
    for (size_t i = 0; i < sizeof digest; i++)
        v = (v << 8) | digest[i];
    return v & ring_mask(m);
}

unsigned ring_hex_width(unsigned m)
{
    return (m + 3) / 4;
}

void ring_id_to_hex(ring_id_t id, unsigned m, char buf[RING_ID_HEX_MAX])
{
    snprintf(buf, RING_ID_HEX_MAX, "%0*" PRIx64, (int)ring_hex_width(m), id & ring_mask(m));
}

static int parse_digits(const char *s, int base, unsigned m, ring_id_t *out)
{
    if (!s || !*s)
        return -EINVAL;
    for (const char *p = s; *p; p++) {
        bool ok = base == 16 ? (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') ||
                                   (*p >= 'A' && *p <= 'F')
                             : (*p >= '0' && *p <= '9');
        if (!ok)
            return -EINVAL;
    }
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, base);
    if (errno == ERANGE)
        return -ERANGE;
    if (*end)
        return -EINVAL;
    if ((uint64_t)v > ring_mask(m))
        return -ERANGE;
    *out = (ring_id_t)v;
    return 0;
}

int ring_id_parse(const char *s, unsigned m, ring_id_t *out)
{
    if (!s)
        return -EINVAL;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        return parse_digits(s + 2, 16, m, out);
    return parse_digits(s, 10, m, out);
}

int ring_id_parse_hex(const char *s, unsigned m, ring_id_t *out)
{
    if (!s || strlen(s) > ring_hex_width(m))
        return -EINVAL;
    return parse_digits(s, 16, m, out);
}
