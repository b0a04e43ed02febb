/*
 * kv_version.c — hybrid logical clock and version ordering.
 *
 * The clock is fed wall time by the caller (pure: no clock reads here). If
 * the wall clock steps backwards the logical part keeps counting, so
 * versions stay monotonic per node; observing remote readings keeps them
 * monotonic across nodes that talk to each other (a read-modify-write by
 * another coordinator always gets a larger version than what it read).
 */
#include "kv_version.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

int kv_version_cmp(kv_version_t a, kv_version_t b)
{
    if (a.hlc != b.hlc)
        return a.hlc < b.hlc ? -1 : 1;
    if (a.node != b.node)
        return a.node < b.node ? -1 : 1;
    return 0;
}

bool kv_version_is_zero(kv_version_t v)
{
    return v.hlc == 0 && v.node == 0;
}

void kv_version_to_str(kv_version_t v, char buf[KV_VERSION_STR_MAX])
{
    snprintf(buf, KV_VERSION_STR_MAX, "%016" PRIx64 ".%016" PRIx64, v.hlc, v.node);
}

static int hex16(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = s[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else
            return -EINVAL;
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

int kv_version_parse(const char *s, kv_version_t *out)
{
    if (!s || strlen(s) != 33 || s[16] != '.')
        return -EINVAL;
    kv_version_t v;
    if (hex16(s, &v.hlc) < 0 || hex16(s + 17, &v.node) < 0)
        return -EINVAL;
    *out = v;
    return 0;
}

uint64_t kv_clock_tick(kv_clock_t *c, uint64_t wall_ms)
{
    uint64_t phys = wall_ms << 16;
    /* Saturate rather than wrap: callers refuse readings from far ahead. */
    c->last = phys > c->last ? phys : c->last < UINT64_MAX ? c->last + 1 : c->last;
    return c->last;
}

void kv_clock_observe(kv_clock_t *c, uint64_t hlc)
{
    if (hlc > c->last)
        c->last = hlc;
}
