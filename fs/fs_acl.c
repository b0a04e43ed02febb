/*
 * fs_acl.c — POSIX ACL arithmetic on the xattr encoding (see fs_acl.h).
 *
 * Everything works on the encoded bytes: an ACL is checked once when it
 * comes in (fs_acl_check), so the other functions may assume the three
 * base entries exist. Permissions are the low three bits of each entry;
 * the mode's group bits mirror the mask when there is one (POSIX 1003.1e),
 * else the owning group's entry.
 */
#include "fs_acl.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define ACL_VERSION 2
#define TAG_USER_OBJ 0x01
#define TAG_USER 0x02
#define TAG_GROUP_OBJ 0x04
#define TAG_GROUP 0x08
#define TAG_MASK 0x10
#define TAG_OTHER 0x20
#define HEAD 4
#define ENTRY 8

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

int fs_acl_check(const uint8_t *value, size_t len)
{
    if (len < HEAD || (len - HEAD) % ENTRY != 0 || rd32(value) != ACL_VERSION)
        return -EINVAL;
    size_t n = (len - HEAD) / ENTRY;
    unsigned seen = 0, named = 0;
    uint16_t last_tag = 0;
    uint32_t last_id = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *e = value + HEAD + i * ENTRY;
        uint16_t tag = rd16(e), perm = rd16(e + 2);
        uint32_t id = rd32(e + 4);
        if (perm & ~7u || tag < last_tag)
            return -EINVAL;
        switch (tag) {
        case TAG_USER_OBJ:
        case TAG_GROUP_OBJ:
        case TAG_MASK:
        case TAG_OTHER:
            if (seen & tag)
                return -EINVAL; /* one of each */
            seen |= tag;
            break;
        case TAG_USER:
        case TAG_GROUP:
            if (tag == last_tag && id <= last_id)
                return -EINVAL; /* sorted by id, no duplicates */
            named++;
            break;
        default:
            return -EINVAL;
        }
        last_tag = tag;
        last_id = id;
    }
    unsigned base = TAG_USER_OBJ | TAG_GROUP_OBJ | TAG_OTHER;
    if ((seen & base) != base || (named > 0 && !(seen & TAG_MASK)))
        return -EINVAL;
    return 0;
}

/* The entry with tag (a base tag or the mask), or NULL. */
static uint8_t *find(uint8_t *value, size_t len, uint16_t tag)
{
    for (size_t off = HEAD; off + ENTRY <= len; off += ENTRY)
        if (rd16(value + off) == tag)
            return value + off;
    return NULL;
}

int fs_acl_to_mode(const uint8_t *value, size_t len, uint32_t *mode)
{
    if (fs_acl_check(value, len) < 0)
        return -EINVAL;
    uint8_t *v = (uint8_t *)value; /* find does not write */
    uint8_t *mask = find(v, len, TAG_MASK);
    uint32_t u = rd16(find(v, len, TAG_USER_OBJ) + 2);
    uint32_t g = rd16((mask ? mask : find(v, len, TAG_GROUP_OBJ)) + 2);
    uint32_t o = rd16(find(v, len, TAG_OTHER) + 2);
    *mode = (*mode & ~0777u) | u << 6 | g << 3 | o;
    return (len - HEAD) / ENTRY == 3 ? 1 : 0;
}

void fs_acl_chmod(uint8_t *value, size_t len, uint32_t mode)
{
    uint8_t *mask = find(value, len, TAG_MASK);
    wr16(find(value, len, TAG_USER_OBJ) + 2, (uint16_t)((mode >> 6) & 7));
    wr16((mask ? mask : find(value, len, TAG_GROUP_OBJ)) + 2, (uint16_t)((mode >> 3) & 7));
    wr16(find(value, len, TAG_OTHER) + 2, (uint16_t)(mode & 7));
}

int fs_acl_inherit(const uint8_t *def, size_t len, uint32_t *mode, uint8_t **access,
                   size_t *access_len)
{
    *access = NULL;
    *access_len = 0;
    if (fs_acl_check(def, len) < 0)
        return -EINVAL;
    uint8_t *a = malloc(len);
    if (!a)
        return -ENOMEM;
    memcpy(a, def, len);
    /* posix_acl_create: the requested mode limits the base entries (and the mask). */
    uint8_t *mask = find(a, len, TAG_MASK);
    uint8_t *e = find(a, len, TAG_USER_OBJ);
    wr16(e + 2, (uint16_t)(rd16(e + 2) & ((*mode >> 6) & 7)));
    e = mask ? mask : find(a, len, TAG_GROUP_OBJ);
    wr16(e + 2, (uint16_t)(rd16(e + 2) & ((*mode >> 3) & 7)));
    e = find(a, len, TAG_OTHER);
    wr16(e + 2, (uint16_t)(rd16(e + 2) & (*mode & 7)));
    int rc = fs_acl_to_mode(a, len, mode);
    if (rc == 1) {
        free(a);
        return 0;
    }
    *access = a;
    *access_len = len;
    return 0;
}
