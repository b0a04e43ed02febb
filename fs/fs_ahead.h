/*
 * fs_ahead.h — stat-ahead: the records of a directory's entries loaded
 * before the kernel looks them up.
 *
 * After the kernel's caches are dropped (or expire), a program that walks
 * a directory's names in sorted order (rsync, git status, a stat loop
 * over sorted names, a shell glob in the C locale) sends one LOOKUP per
 * entry, and each costs a store round trip for the entry's inode record. When the lookups of one
 * directory that miss the record cache come in ascending name order, the order such programs use, a
 * run lists the directory and loads the records of the names that follow in parallel, a bounded
 * window ahead of the last lookup, so those lookups are answered from memory. Records loaded ahead
 * answer lookups only while they are younger than the metadata TTL, like any cached record
 * (fs_meta.c); nothing here changes what a lookup may return.
 *
 * Part of fscore: runs on the mount's fibers, no FUSE types.
 */
#ifndef FS_AHEAD_H
#define FS_AHEAD_H

#include "fs_i.h"

/* Misses in ascending name order in one directory that start a run. */
#define FS_AHEAD_TRIGGER 8
/* Records a run keeps loaded ahead of the directory's last lookup. */
#define FS_AHEAD_WINDOW 256
/* Directories walked at once, each with its run. */
#define FS_AHEAD_RUNS 4
/* Records loaded at once (in parallel) by a run. */
#define FS_AHEAD_BATCH 32
/* Directories with more entries are not listed for a run, nor tried again for a while. */
#define FS_AHEAD_LIST_MAX 100000
#define FS_AHEAD_BIG_MS 60000
/* The longest a run keeps a record it loaded (never beyond the TTL) for a lookup to use. */
#define FS_AHEAD_HOLD_MS 10000

/*
 * The kernel looks up name (len bytes) in dir, whose entry is node n;
 * called (in a fiber) before n's record is loaded. Counts a record loaded
 * ahead as used, moves a run's window along, or starts a run. Parks only
 * while a run is loading n's record, so that it is not asked for twice.
 */
void fs_ahead_lookup(fs_t *fs, uint64_t dir, const char *name, size_t len, fs_node_t *n);

/* Records loaded ahead, and those a lookup then used. */
void fs_ahead_stats(const fs_t *fs, uint64_t *loaded, uint64_t *used);

/*
 * Stop every run: they give their records back and end at their next
 * turn (the unmount's drain waits for them as for other fibers).
 */
void fs_ahead_stop(fs_t *fs);

/* Free what is left (at exit, after the loop and its fibers are gone). */
void fs_ahead_free(fs_t *fs);

#endif
