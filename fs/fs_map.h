/*
 * fs_map.h — a hash map from a pair of 64-bit numbers (an inode, or an
 * inode and a chunk index) to a pointer. Open addressing, grows by
 * doubling. Pure memory structure.
 */
#ifndef FS_MAP_H
#define FS_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct fs_map fs_map_t;

fs_map_t *fs_map_new(void);
/* Frees the map, not the values. NULL-safe. */
void fs_map_destroy(fs_map_t **m);
void *fs_map_get(const fs_map_t *m, uint64_t a, uint64_t b);
/* Insert or replace. 0 or -ENOMEM. */
int fs_map_put(fs_map_t *m, uint64_t a, uint64_t b, void *value);
/* Remove and return the value (NULL if absent). */
void *fs_map_remove(fs_map_t *m, uint64_t a, uint64_t b);
size_t fs_map_count(const fs_map_t *m);
/*
 * Visit every entry (order unspecified); fn may not modify the map. Stops
 * early when fn returns non-zero, which is returned.
 */
int fs_map_each(const fs_map_t *m, int (*fn)(uint64_t a, uint64_t b, void *value, void *arg),
                void *arg);

#endif
