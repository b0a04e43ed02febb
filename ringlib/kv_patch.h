/*
 * kv_patch.h — applying a patch to a value: bytes written at an offset of
 * it, the rest kept. The coordinator applies a client's patch to the newest
 * copy, and a replica the coordinator's patch to the copy it was made
 * against, so both must agree to the byte.
 */
#ifndef KV_PATCH_H
#define KV_PATCH_H

#include <stddef.h>
#include <stdint.h>

/*
 * A new value: old (old_len bytes; NULL if 0) with the len bytes at off
 * replaced by bytes; a gap between old's end and off reads as zeros, and
 * the value is max(old_len, off + len) long. Returns it (malloc'd, the
 * caller frees) with its length in *out_len, or NULL when out of memory.
 */
uint8_t *kv_patch_apply(const uint8_t *old, size_t old_len, uint32_t off, const uint8_t *bytes,
                        size_t len, size_t *out_len);

/* The length of that value: max(old_len, off + len). */
size_t kv_patch_len(size_t old_len, uint32_t off, size_t len);

/*
 * kv_patch_apply into dst (kv_patch_len bytes), for a caller that builds
 * the value inside a larger record. dst must not overlap old or bytes.
 */
void kv_patch_write(uint8_t *dst, const uint8_t *old, size_t old_len, uint32_t off,
                    const uint8_t *bytes, size_t len);

/*
 * kv_patch_apply to a value the caller owns (malloc'd, len bytes; NULL if
 * 0), in place: it is reallocated only when the patch makes it longer.
 * Returns it, or NULL when out of memory (value is then left as it was).
 */
uint8_t *kv_patch_in_place(uint8_t *value, size_t len, uint32_t off, const uint8_t *bytes,
                           size_t blen, size_t *out_len);

#endif
