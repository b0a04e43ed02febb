/*
 * fs_layout.h — how a dhtfs volume is laid out in the key-value store.
 * Pure logic (no I/O): key names, the inode record and directory bucket
 * codecs, the directory's extendible hashing, and chunk arithmetic.
 *
 * Keys of volume V (all under "v/V/"):
 *   v/V/super            volume record: format, chunk size (put-if-absent once)
 *   v/V/next             next free inode range (compare-and-set)
 *   v/V/i/<ino>          inode record
 *   v/V/d/<ino>/<d>/<p>  directory bucket at depth d, hash prefix p
 *   v/V/c/<ino>/<n>      data chunk n of a file
 * Numbers are lowercase hex.
 *
 * A file's record carries its chunk index: the ranges of chunk numbers
 * that may be stored (a superset of the chunks that exist, never a
 * subset), so truncating or removing a file touches only those keys.
 *
 * A directory is a trie of buckets over the top bits of a 62-bit name hash.
 * Bucket (0,0) is created with the directory. A bucket that grows past
 * FS_BUCKET_MAX bytes is frozen (SPLITTING), its two children at depth d+1
 * are written, then it becomes an empty SPLIT marker; buckets never merge,
 * so a SPLIT marker is immutable and can be cached forever. Entries in a
 * bucket are sorted by hash, so walking the trie left to right visits
 * names in hash order and a readdir offset can be the next hash.
 */
#ifndef FS_LAYOUT_H
#define FS_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define FS_NAME_MAX 255
#define FS_KEY_MAX 160
#define FS_HASH_BITS 62
#define FS_BUCKET_MAX (16 * 1024)
#define FS_XATTR_TOTAL_MAX (256 * 1024)
#define FS_SYMLINK_MAX 4095
#define FS_ROOT_INO 1ULL

/* ---- keys ---- */

/* Each writes a NUL-terminated key into buf[FS_KEY_MAX] and returns its length. */
size_t fs_key_super(char *buf, const char *vol);
size_t fs_key_next(char *buf, const char *vol);
size_t fs_key_inode(char *buf, const char *vol, uint64_t ino);
size_t fs_key_bucket(char *buf, const char *vol, uint64_t dir, unsigned depth, uint64_t prefix);
size_t fs_key_chunk(char *buf, const char *vol, uint64_t ino, uint64_t index);
/* A volume name: 1..64 bytes of [A-Za-z0-9._-]. */
bool fs_volume_name_ok(const char *vol);

/* ---- volume record ---- */

typedef struct {
    uint32_t chunk_size; /* bytes, a power of two from 4 KiB to 4 MiB */
} fs_super_t;

size_t fs_super_encode(const fs_super_t *s, uint8_t *buf, size_t cap);
int fs_super_decode(const uint8_t *buf, size_t len, fs_super_t *out);

/* ---- chunk index ---- */

/* Chunks [start, end) of a file, start < end. */
typedef struct {
    uint64_t start, end;
} fs_extent_t;

/*
 * The chunks a file may have stored: sorted, disjoint, non-adjacent
 * extents (so one set has exactly one representation and one encoding).
 * Zero-initialised is the empty set.
 */
typedef struct {
    fs_extent_t *v; /* owned */
    uint32_t count, cap;
} fs_extents_t;

/*
 * At most this many extents in a record (about 20 bytes each at worst).
 * A file scattered over more runs gets its closest runs joined: the gap
 * between them joins the index, which stays a superset of what is stored
 * but then costs a delete per bridged hole on removal.
 */
#define FS_EXTENTS_MAX 512

void fs_extents_free(fs_extents_t *e);
/* Deep copy (dst is overwritten, not freed); 0 or -ENOMEM (dst left empty). */
int fs_extents_copy(fs_extents_t *dst, const fs_extents_t *src);
/* Is chunk index in the set? */
bool fs_extents_has(const fs_extents_t *e, uint64_t index);
/* Are all of chunks [start, end) in the set? */
bool fs_extents_covers(const fs_extents_t *e, uint64_t start, uint64_t end);
/*
 * Add chunks [start, end) (start < end), merging with neighbours; past
 * FS_EXTENTS_MAX extents the two separated by the smallest gap are joined
 * (see above). 0 or -ENOMEM (e unchanged).
 */
int fs_extents_add(fs_extents_t *e, uint64_t start, uint64_t end);
/* e ∪= other. 0 or -ENOMEM (e holds part of the union, still a superset of e). */
int fs_extents_union(fs_extents_t *e, const fs_extents_t *other);
/* Drop every chunk >= end (a truncation to fs_chunk_count(size) chunks). */
void fs_extents_truncate(fs_extents_t *e, uint64_t end);
/* How many chunks right before index are in the set without a gap (0 if index - 1 is not). */
uint64_t fs_extents_run_to(const fs_extents_t *e, uint64_t index);
/* Number of chunks in the set below `below` (UINT64_MAX: all of them). */
uint64_t fs_extents_total(const fs_extents_t *e, uint64_t below);
/*
 * Remove chunks [start, end) (start < end) from the set, splitting an
 * extent that straddles the range. 0 or -ENOMEM (e unchanged).
 */
int fs_extents_remove(fs_extents_t *e, uint64_t start, uint64_t end);

/* ---- inode record ---- */

/* A file whose data (at most FS_INLINE_MAX bytes) lives in its record, not in chunks. */
#define FS_INODE_INLINE 2u
#define FS_INLINE_MAX (8 * 1024)

typedef struct {
    uint8_t *name;  /* NUL-terminated, owned */
    uint8_t *value; /* owned */
    uint32_t value_len;
} fs_xattr_t;

typedef struct {
    uint64_t ino;
    uint32_t mode, uid, gid, nlink, flags;
    uint64_t size, rdev, parent; /* parent: directories only, for ".." */
    /*
     * Chunks that may be stored (regular files; may be non-empty for an
     * inline file whose move to chunks was cut short). ext_unknown: read
     * from a format-1 record, which had no index: any chunk below
     * fs_chunk_count(size) may exist and ext is empty; the client turns
     * that into the extent [0, count) before using it.
     */
    fs_extents_t ext;
    bool ext_unknown;
    int64_t atime_s, mtime_s, ctime_s;
    uint32_t atime_ns, mtime_ns, ctime_ns;
    char *target; /* symlink target, owned, or NULL */
    fs_xattr_t *xattrs;
    uint32_t nxattrs;
    uint8_t *data;     /* inline data (FS_INODE_INLINE), owned, or NULL */
    uint32_t data_len; /* <= size; bytes past it up to size read as zeros */
} fs_inode_t;

/* Bytes fs_inode_encode needs. */
size_t fs_inode_encoded_size(const fs_inode_t *in);
size_t fs_inode_encode(const fs_inode_t *in, uint8_t *buf, size_t cap);
/*
 * Fills out (owning copies); 0 or -EBADMSG. Reads the current format and
 * format 1 (no chunk index: ext_unknown set). Encoding always writes the
 * current format, and refuses ext_unknown.
 */
int fs_inode_decode(const uint8_t *buf, size_t len, fs_inode_t *out);
/* Deep copy; 0 or -ENOMEM. */
int fs_inode_copy(fs_inode_t *dst, const fs_inode_t *src);
void fs_inode_free(fs_inode_t *in);

/* Extended attributes of an inode (names are compared bytewise). */
const fs_xattr_t *fs_xattr_find(const fs_inode_t *in, const char *name);
/* 0, -ENOMEM, or -ENOSPC when the record's xattrs would exceed FS_XATTR_TOTAL_MAX. */
int fs_xattr_set(fs_inode_t *in, const char *name, const void *value, size_t len);
/* 0 or -ENODATA. */
int fs_xattr_remove(fs_inode_t *in, const char *name);
/* NUL-separated names; returns the size needed (writes only if cap suffices). */
size_t fs_xattr_list(const fs_inode_t *in, char *buf, size_t cap);

/* ---- directory buckets ---- */

typedef enum {
    FS_BUCKET_NORMAL = 0,
    FS_BUCKET_SPLITTING = 1, /* frozen, still authoritative for lookups */
    FS_BUCKET_SPLIT = 2,     /* empty; the children at depth + 1 hold the names */
    FS_BUCKET_DEAD = 3,      /* empty, of a directory being removed: takes no names */
} fs_bucket_state_t;

typedef struct {
    uint64_t hash; /* fs_name_hash(name) */
    uint64_t ino;
    uint8_t type; /* DT_* */
    uint8_t name_len;
    char name[FS_NAME_MAX + 1];
} fs_dirent_t;

typedef struct {
    fs_bucket_state_t state;
    unsigned depth;
    uint64_t prefix;
    size_t count, cap;
    fs_dirent_t *ents; /* sorted by (hash, name) */
} fs_bucket_t;

/* A 62-bit hash of name (SipHash; stable across versions). */
uint64_t fs_name_hash(const char *name, size_t len);
/* The prefix of hash at depth (its top `depth` of FS_HASH_BITS bits). */
uint64_t fs_hash_prefix(uint64_t hash, unsigned depth);
/* Is hash inside the range of bucket (depth, prefix)? */
bool fs_bucket_covers(unsigned depth, uint64_t prefix, uint64_t hash);
/* The first hash a bucket covers. */
uint64_t fs_bucket_first_hash(unsigned depth, uint64_t prefix);

void fs_bucket_init(fs_bucket_t *b, unsigned depth, uint64_t prefix);
void fs_bucket_free(fs_bucket_t *b);
size_t fs_bucket_encoded_size(const fs_bucket_t *b);
size_t fs_bucket_encode(const fs_bucket_t *b, uint8_t *buf, size_t cap);
/* 0 or -EBADMSG (also when entries are out of order or outside the prefix). */
int fs_bucket_decode(const uint8_t *buf, size_t len, unsigned depth, uint64_t prefix,
                     fs_bucket_t *out);
/* Index of name, or -1. */
ssize_t fs_bucket_find(const fs_bucket_t *b, const char *name, size_t len);
/*
 * name in an encoded bucket (fs_bucket_encode's bytes), read in place
 * instead of decoded whole: 1 and *out filled (its hash included), 0 when
 * the bucket does not hold it, -EBADMSG when the bytes do not parse or
 * are a split marker (to descend from, not to search). For bytes this
 * client encoded itself (its cache): the entries' names, hashes and order
 * are not checked.
 */
int fs_bucket_scan(const uint8_t *buf, size_t len, const char *name, size_t name_len,
                   fs_dirent_t *out);
/*
 * Insert or replace name → (ino, type). 0, -EINVAL (len == 0, a '/' or NUL
 * in name, or a hash b does not cover), -ENAMETOOLONG (len > FS_NAME_MAX)
 * or -ENOMEM.
 */
int fs_bucket_put(fs_bucket_t *b, const char *name, size_t len, uint64_t ino, uint8_t type);
/* Remove name; 0 or -ENOENT. */
int fs_bucket_remove(fs_bucket_t *b, const char *name, size_t len);
/* Would b be too big to store as one value? */
bool fs_bucket_full(const fs_bucket_t *b);
/* Distribute b's entries over its two children (initialised here). */
int fs_bucket_split(const fs_bucket_t *b, fs_bucket_t *left, fs_bucket_t *right);
/* Index of the first entry with hash >= h (count if none). */
size_t fs_bucket_lower_bound(const fs_bucket_t *b, uint64_t h);

/*
 * Readdir offsets: 0 = start, 1 after ".", 2 after "..", then the hash of
 * the last entry returned + 3 (entries with one hash are never split over
 * two calls).
 */
#define FS_OFF_FIRST_ENTRY 2
static inline uint64_t fs_off_from_hash(uint64_t hash)
{
    return hash + 3;
}
/* The smallest hash still to return after offset off (> FS_OFF_FIRST_ENTRY). */
static inline uint64_t fs_off_next_hash(uint64_t off)
{
    return off - 2;
}

/* ---- chunks ---- */

/* A byte range [off, off+len) of a file split at chunk boundaries. */
typedef struct {
    uint64_t index;  /* chunk number */
    uint32_t offset; /* within the chunk */
    uint32_t len;
} fs_span_t;

/*
 * The first span of [off, off+len) (len > 0): the chunk holding off, and how
 * much of the range falls in it. Iterate by advancing off by span.len.
 */
fs_span_t fs_chunk_span(uint64_t off, uint64_t len, uint32_t chunk_size);
/* Number of chunks needed to hold size bytes. */
uint64_t fs_chunk_count(uint64_t size, uint32_t chunk_size);
/*
 * Truncating a file from old_size to new_size < old_size: chunks
 * [*first_dead, *end_dead) are dropped entirely, and when *keep_len is
 * non-zero chunk *partial keeps only its first *keep_len bytes (the tail is
 * zeroed). Returns true when a partial chunk must be rewritten.
 */
bool fs_chunk_truncate_plan(uint64_t old_size, uint64_t new_size, uint32_t chunk_size,
                            uint64_t *first_dead, uint64_t *end_dead, uint64_t *partial,
                            uint32_t *keep_len);
/*
 * How many bytes of chunk `index` hold file data when the file is size
 * bytes long (0 for chunks past the end).
 */
uint32_t fs_chunk_valid_len(uint64_t size, uint64_t index, uint32_t chunk_size);
/*
 * Punching (or zeroing) bytes [off, off+len) of a file of `size` bytes:
 * chunks [*whole_start, *whole_end) hold no file data outside the range
 * and can be dropped entirely (the last chunk counts as whole when the
 * range covers it up to the end of the file). The rest of the range, if
 * any, lies in at most two edge chunks to be zeroed in place. The range is
 * clipped to the size first; len == 0 or off >= size gives no chunks.
 */
void fs_chunk_punch_plan(uint64_t off, uint64_t len, uint64_t size, uint32_t chunk_size,
                         uint64_t *whole_start, uint64_t *whole_end);
/*
 * SEEK_DATA (data true) or SEEK_HOLE from off in a file of `size` bytes
 * whose stored chunks are `chunks` (a superset is fine: a listed chunk
 * that was never written is reported as data, which lseek(2) allows).
 * Every byte at or past size is a hole (the virtual hole at the end).
 * 0 and *out, or -ENXIO when off >= size, or for SEEK_DATA when no data
 * lies at or after off.
 */
int fs_chunk_seek(const fs_extents_t *chunks, uint64_t size, uint32_t chunk_size, uint64_t off,
                  bool data, uint64_t *out);

/* ---- change stamps ---- */

/*
 * Every metadata write carries the tokens of the last changes applied to
 * the record or bucket it replaces, newest first, so a writer whose answer
 * was lost can read the value back and see whether its change landed.
 * Stored as an envelope before the record's own bytes:
 *   0xf5 (1 byte), count (1 byte, 1..FS_STAMPS_MAX), count × u64 LE
 *   tokens (non-zero), then the record in its own encoding.
 * The marker is no record's format byte (records count their formats up
 * from 1), so a value starting with anything else is a bare record written
 * before stamps existed and stays readable; clients that predate stamps
 * refuse the marker as an unknown format rather than misread it.
 */
#define FS_STAMP_FORMAT 0xf5
#define FS_STAMPS_MAX 8

typedef struct {
    uint32_t count;
    uint64_t tok[FS_STAMPS_MAX]; /* newest first; never 0 */
} fs_stamps_t;

/* Bytes the envelope takes (0 when s has no stamps: the value is the bare record). */
size_t fs_stamps_encoded_size(const fs_stamps_t *s);
/* Write the envelope head into buf; returns its size, 0 if cap is too small or s is empty. */
size_t fs_stamps_encode(const fs_stamps_t *s, uint8_t *buf, size_t cap);
/*
 * Read the envelope of a stored value: fills out (count 0 without one) and
 * *body_off, where the record's own bytes start. 0 or -EBADMSG.
 */
int fs_stamps_decode(const uint8_t *buf, size_t len, fs_stamps_t *out, size_t *body_off);
/* Record tok (non-zero) as the newest change; the oldest falls off when full. */
void fs_stamps_push(fs_stamps_t *s, uint64_t tok);
bool fs_stamps_has(const fs_stamps_t *s, uint64_t tok);

#endif
