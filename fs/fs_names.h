/*
 * fs_names.h — which names of which directories the kernel may still hold
 * from this mount's answers: the pure part of a lock's name coherence.
 *
 * The kernel keeps every name (positive or negative) that a LOOKUP,
 * CREATE, MKNOD, LINK or READDIRPLUS answer gave it, and trusts it until
 * the entry timeout runs out; only then does it ask again. When a lock
 * makes this mount coherent with the others, the names of the locked
 * file's directory that are still trusted must be dropped (the rest will
 * be asked for anyway). This table remembers the names handed out within
 * the last entry timeout, bounded: a name pushed out before its timeout
 * ran out makes its directory "incomplete" until then, and the caller
 * must wait for that instant instead (see fs_names_each).
 *
 * No I/O, clocks or logging: times are the caller's monotonic ms.
 */
#ifndef FS_NAMES_H
#define FS_NAMES_H

#include <stddef.h>
#include <stdint.h>

typedef struct fs_names fs_names_t;

/* A table of at most cap names (cap >= 1). NULL on ENOMEM. */
fs_names_t *fs_names_new(size_t cap);
/* Free the table and set *t to NULL. NULL-safe. */
void fs_names_destroy(fs_names_t **t);

/*
 * The kernel was given name (len bytes, 1..255, not NUL-terminated) in
 * directory dir at now_ms and may trust it until now_ms + ttl_ms. A name
 * noted again is moved to the newest place (one slot per name). When the
 * table is full the oldest name is pushed out; if it was still trusted,
 * dir of that name becomes incomplete until its expiry.
 */
void fs_names_note(fs_names_t *t, uint64_t dir, const char *name, size_t len, uint64_t now_ms,
                   uint64_t ttl_ms);

/*
 * Call visit(name, len, arg) for every name of dir the kernel may still
 * trust at now_ms (name is valid during the call only). Returns 0 when
 * that list is complete, else the instant (ms) until which a name of dir
 * pushed out of the table may still be trusted: the caller waits until
 * then or treats every name of dir as unknown.
 */
uint64_t fs_names_each(const fs_names_t *t, uint64_t dir, uint64_t now_ms,
                       void (*visit)(const char *name, size_t len, void *arg), void *arg);

/*
 * A lock coherence point of dir at now_ms: its names cached before then
 * are not to be trusted (fs_names_checked_at). A few directories are
 * remembered; the oldest pushed out counts for every directory from then
 * on (more re-reading, never less).
 */
void fs_names_checked(fs_names_t *t, uint64_t dir, uint64_t now_ms);
/* The last coherence point of dir (0: none known). */
uint64_t fs_names_checked_at(const fs_names_t *t, uint64_t dir);

#endif
