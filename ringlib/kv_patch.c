/*
 * kv_patch.c — see kv_patch.h.
 */
#include "kv_patch.h"

#include <stdlib.h>
#include <string.h>

size_t kv_patch_len(size_t old_len, uint32_t off, size_t len)
{
    size_t end = (size_t)off + len;
    return old_len > end ? old_len : end;
}

/* The patch over value's first len bytes, value already long enough for it. */
static void patch_over(uint8_t *value, size_t len, uint32_t off, const uint8_t *bytes, size_t blen)
{
    if (off > len)
        memset(value + len, 0, off - len);
    if (blen)
        memcpy(value + off, bytes, blen);
}

void kv_patch_write(uint8_t *dst, const uint8_t *old, size_t old_len, uint32_t off,
                    const uint8_t *bytes, size_t len)
{
    if (old_len)
        memcpy(dst, old, old_len);
    patch_over(dst, old_len, off, bytes, len);
}

uint8_t *kv_patch_in_place(uint8_t *value, size_t len, uint32_t off, const uint8_t *bytes,
                           size_t blen, size_t *out_len)
{
    size_t total = kv_patch_len(len, off, blen);
    uint8_t *v = total > len || !value ? realloc(value, total ? total : 1) : value;
    if (!v)
        return NULL;
    patch_over(v, len, off, bytes, blen);
    *out_len = total;
    return v;
}

uint8_t *kv_patch_apply(const uint8_t *old, size_t old_len, uint32_t off, const uint8_t *bytes,
                        size_t len, size_t *out_len)
{
    size_t total = kv_patch_len(old_len, off, len);
    uint8_t *v = malloc(total ? total : 1);
    if (!v)
        return NULL;
    kv_patch_write(v, old, old_len, off, bytes, len);
    *out_len = total;
    return v;
}
