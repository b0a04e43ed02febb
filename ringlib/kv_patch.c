/*
 * kv_patch.c — see kv_patch.h.
 */
#include "kv_patch.h"

#include <stdlib.h>
#include <string.h>

uint8_t *kv_patch_apply(const uint8_t *old, size_t old_len, uint32_t off, const uint8_t *bytes,
                        size_t len, size_t *out_len)
{
    size_t end = (size_t)off + len;
    size_t total = old_len > end ? old_len : end;
    uint8_t *v = malloc(total ? total : 1);
    if (!v)
        return NULL;
    if (old_len)
        memcpy(v, old, old_len);
    if (off > old_len)
        memset(v + old_len, 0, off - old_len);
    if (len)
        memcpy(v + off, bytes, len);
    *out_len = total;
    return v;
}
