/*
 * test_fs_layout.c — keys, record codecs, directory buckets and chunk math.
 *
 * The codecs face bytes from other nodes, so besides round trips every
 * decoder is fed each truncation of a valid record, every single-bit flip
 * and seeded random garbage: none may crash, truncations must fail, and
 * whatever a decoder accepts must re-encode to exactly the bytes it read
 * (the encodings are canonical). Randomness is a fixed-seed xorshift so a
 * failure replays.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs_layout.h"

#define KiB 1024ULL
#define MiB (1024ULL * KiB)
#define GiB (1024ULL * MiB)

/* ---- helpers ---- */

static uint64_t rng_state;

static void rng_seed(uint64_t seed)
{
    rng_state = seed ? seed : 1;
}

static uint64_t rng_next(void)
{
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static size_t rng_below(size_t n)
{
    return (size_t)(rng_next() % n);
}

/* Name bytes: anything but '/' and NUL, high bytes included. */
static char rng_name_byte(void)
{
    for (;;) {
        unsigned c = (unsigned)rng_below(255) + 1;
        if (c != '/')
            return (char)c;
    }
}

/* A random name made unique by a hex counter at its end. */
static size_t rng_unique_name(char *buf, size_t serial)
{
    size_t n = 1 + rng_below(40);
    for (size_t i = 0; i < n; i++)
        buf[i] = rng_name_byte();
    return n + (size_t)snprintf(buf + n, 20, "-%zx", serial);
}

/* A little-endian record builder for hand-made (often malformed) inputs. */
typedef struct {
    uint8_t *p;
    size_t n;
} bld_t;

static void bld_le(bld_t *b, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        b->p[b->n++] = (uint8_t)(v >> (8 * i));
}

static void bld_bytes(bld_t *b, const void *src, size_t n)
{
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void bld_str(bld_t *b, const char *s)
{
    bld_bytes(b, s, strlen(s));
}

/* format byte and an all-zero fixed part of an inode record */
static void bld_inode_head(bld_t *b)
{
    bld_le(b, 1, 1);
    for (int i = 0; i < 96; i++)
        bld_le(b, 0, 1);
}

static void bld_entry(bld_t *b, uint64_t ino, uint8_t type, const char *name, size_t len)
{
    bld_le(b, ino, 8);
    bld_le(b, type, 1);
    bld_le(b, len, 1);
    bld_bytes(b, name, len);
}

static void fill_inode(fs_inode_t *in)
{
    memset(in, 0, sizeof *in);
    in->ino = 0x123456789abcdefULL;
    in->mode = 0100644;
    in->uid = 1000;
    in->gid = 0xffffffffu;
    in->nlink = 3;
    in->flags = FS_INODE_INLINE;
    in->size = 5 * GiB + 17;
    in->rdev = 0x0801;
    in->parent = FS_ROOT_INO;
    in->atime_s = -1;
    in->mtime_s = INT64_MIN;
    in->ctime_s = INT64_MAX;
    in->atime_ns = 0;
    in->mtime_ns = 999999999;
    in->ctime_ns = 1;
}

/* A chunk index with short and long runs, small and huge indices. */
static void fill_ext(fs_inode_t *in)
{
    assert_int_equal(fs_extents_add(&in->ext, 0, 3), 0);
    assert_int_equal(fs_extents_add(&in->ext, 200, 201), 0);
    assert_int_equal(fs_extents_add(&in->ext, 1ULL << 44, (1ULL << 44) + 81921), 0);
    assert_int_equal(fs_extents_add(&in->ext, UINT64_MAX - 1, UINT64_MAX), 0);
}

static void assert_inode_equal(const fs_inode_t *a, const fs_inode_t *b)
{
    assert_int_equal(a->ino, b->ino);
    assert_int_equal(a->mode, b->mode);
    assert_int_equal(a->uid, b->uid);
    assert_int_equal(a->gid, b->gid);
    assert_int_equal(a->nlink, b->nlink);
    assert_int_equal(a->flags, b->flags);
    assert_int_equal(a->size, b->size);
    assert_int_equal(a->rdev, b->rdev);
    assert_int_equal(a->parent, b->parent);
    assert_false(a->ext_unknown);
    assert_false(b->ext_unknown);
    assert_int_equal(a->ext.count, b->ext.count);
    for (uint32_t i = 0; i < a->ext.count; i++) {
        assert_int_equal(a->ext.v[i].start, b->ext.v[i].start);
        assert_int_equal(a->ext.v[i].end, b->ext.v[i].end);
    }
    assert_true(a->atime_s == b->atime_s);
    assert_true(a->mtime_s == b->mtime_s);
    assert_true(a->ctime_s == b->ctime_s);
    assert_int_equal(a->atime_ns, b->atime_ns);
    assert_int_equal(a->mtime_ns, b->mtime_ns);
    assert_int_equal(a->ctime_ns, b->ctime_ns);
    if (a->target || b->target) {
        assert_non_null(a->target);
        assert_non_null(b->target);
        assert_string_equal(a->target, b->target);
    }
    assert_int_equal(a->nxattrs, b->nxattrs);
    for (uint32_t i = 0; i < a->nxattrs; i++) {
        assert_string_equal((const char *)a->xattrs[i].name, (const char *)b->xattrs[i].name);
        assert_int_equal(a->xattrs[i].value_len, b->xattrs[i].value_len);
        assert_non_null(a->xattrs[i].value);
        assert_non_null(b->xattrs[i].value);
        assert_memory_equal(a->xattrs[i].value, b->xattrs[i].value, a->xattrs[i].value_len);
    }
    assert_int_equal(a->data_len, b->data_len);
    if (a->data_len)
        assert_memory_equal(a->data, b->data, a->data_len);
}

/* Encode, check the advertised size, decode, compare; returns the bytes. */
static uint8_t *inode_roundtrip(const fs_inode_t *in, size_t *len)
{
    size_t need = fs_inode_encoded_size(in);
    uint8_t *buf = malloc(need);
    assert_non_null(buf);
    assert_int_equal(fs_inode_encode(in, buf, need), need);
    fs_inode_t out;
    assert_int_equal(fs_inode_decode(buf, need, &out), 0);
    assert_inode_equal(in, &out);
    fs_inode_free(&out);
    *len = need;
    return buf;
}

static bool dirent_less(const fs_dirent_t *a, const fs_dirent_t *b)
{
    if (a->hash != b->hash)
        return a->hash < b->hash;
    size_t n = a->name_len < b->name_len ? a->name_len : b->name_len;
    int c = memcmp(a->name, b->name, n);
    return c < 0 || (c == 0 && a->name_len < b->name_len);
}

/* The invariants a stored bucket must satisfy. */
static void assert_bucket_valid(const fs_bucket_t *b)
{
    for (size_t i = 0; i < b->count; i++) {
        const fs_dirent_t *e = &b->ents[i];
        assert_int_equal(e->hash, fs_name_hash(e->name, e->name_len));
        assert_true(fs_bucket_covers(b->depth, b->prefix, e->hash));
        assert_int_equal(e->name[e->name_len], '\0');
        if (i > 0)
            assert_true(dirent_less(&b->ents[i - 1], e));
    }
}

/* Field by field: bytes past the name and padding are unspecified. */
static void assert_dirent_equal(const fs_dirent_t *a, const fs_dirent_t *b)
{
    assert_int_equal(a->hash, b->hash);
    assert_int_equal(a->ino, b->ino);
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->name_len, b->name_len);
    assert_memory_equal(a->name, b->name, a->name_len + 1u);
}

static void assert_bucket_equal(const fs_bucket_t *a, const fs_bucket_t *b)
{
    assert_int_equal(a->state, b->state);
    assert_int_equal(a->depth, b->depth);
    assert_int_equal(a->prefix, b->prefix);
    assert_int_equal(a->count, b->count);
    for (size_t i = 0; i < a->count; i++)
        assert_dirent_equal(&a->ents[i], &b->ents[i]);
}

static void put_ok(fs_bucket_t *b, const char *name, uint64_t ino)
{
    assert_int_equal(fs_bucket_put(b, name, strlen(name), ino, 8), 0);
}

/* Encode b into a fresh buffer of exactly the advertised size. */
static uint8_t *bucket_bytes(const fs_bucket_t *b, size_t *len)
{
    size_t need = fs_bucket_encoded_size(b);
    uint8_t *buf = malloc(need);
    assert_non_null(buf);
    assert_int_equal(fs_bucket_encode(b, buf, need), need);
    *len = need;
    return buf;
}

/* Two names, returned so that *lo sorts before *hi. */
static void ordered_pair(const char **lo, const char **hi)
{
    const char *a = "alpha", *b = "beta";
    bool a_first = fs_name_hash(a, 5) < fs_name_hash(b, 4);
    *lo = a_first ? a : b;
    *hi = a_first ? b : a;
}

/* A name whose hash has the given top bit (at depth 1). */
static void name_with_top_bit(char *buf, unsigned bit)
{
    for (unsigned i = 0;; i++) {
        snprintf(buf, 32, "n%u", i);
        if (fs_hash_prefix(fs_name_hash(buf, strlen(buf)), 1) == bit)
            return;
    }
}

/*
 * Decode every truncation (must fail) and every single-bit flip (must not
 * crash; if accepted it must re-encode to the flipped bytes).
 */
static void bucket_fuzz_bytes(const uint8_t *buf, size_t len, unsigned depth, uint64_t prefix)
{
    fs_bucket_t b;
    for (size_t n = 0; n < len; n++) {
        assert_int_equal(fs_bucket_decode(buf, n, depth, prefix, &b), -EBADMSG);
        assert_int_equal(b.count, 0);
        fs_bucket_free(&b);
    }
    uint8_t *m = malloc(len);
    uint8_t *re = malloc(len);
    assert_non_null(m);
    assert_non_null(re);
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(m, buf, len);
            m[i] ^= (uint8_t)(1u << bit);
            int rc = fs_bucket_decode(m, len, depth, prefix, &b);
            if (rc == 0) {
                assert_bucket_valid(&b);
                assert_int_equal(fs_bucket_encode(&b, re, len), len);
                assert_memory_equal(re, m, len);
            } else {
                assert_int_equal(rc, -EBADMSG);
            }
            fs_bucket_free(&b);
        }
    }
    free(m);
    free(re);
}

/* ---- keys ---- */

/* n is evaluated before k is read, so the call happens first. */
static void assert_key(size_t n, const char *k, const char *want)
{
    assert_string_equal(k, want);
    assert_int_equal(n, strlen(want));
}

static void test_fs_key_formats(void **state)
{
    (void)state;
    char k[FS_KEY_MAX];
    size_t n = fs_key_super(k, "default");
    assert_key(n, k, "v/default/super");
    n = fs_key_next(k, "default");
    assert_key(n, k, "v/default/next");
    n = fs_key_inode(k, "default", FS_ROOT_INO);
    assert_key(n, k, "v/default/i/1");
    n = fs_key_bucket(k, "default", 1, 0, 0);
    assert_key(n, k, "v/default/d/1/0/0");
    n = fs_key_chunk(k, "default", 0x2a, 3);
    assert_key(n, k, "v/default/c/2a/3");
}

static void test_fs_key_hex_lowercase_no_leading_zeros(void **state)
{
    (void)state;
    char k[FS_KEY_MAX];
    fs_key_inode(k, "v", 0);
    assert_string_equal(k, "v/v/i/0");
    fs_key_inode(k, "v", 0xABCDEF0ULL);
    assert_string_equal(k, "v/v/i/abcdef0");
    fs_key_bucket(k, "v", 0x10, 62, (1ULL << 62) - 1);
    assert_string_equal(k, "v/v/d/10/3e/3fffffffffffffff");
    fs_key_chunk(k, "v", UINT64_MAX, 0x100);
    assert_string_equal(k, "v/v/c/ffffffffffffffff/100");
}

static void test_fs_key_longest_volume_fits(void **state)
{
    (void)state;
    char vol[65];
    memset(vol, 'x', 64);
    vol[64] = '\0';
    char k[FS_KEY_MAX];
    size_t n = fs_key_bucket(k, vol, UINT64_MAX, 62, UINT64_MAX);
    assert_true(n > 64 && n < FS_KEY_MAX);
    assert_int_equal(n, strlen(k));
    n = fs_key_chunk(k, vol, UINT64_MAX, UINT64_MAX);
    assert_true(n > 64 && n < FS_KEY_MAX);
    assert_int_equal(n, strlen(k));
    n = fs_key_super(k, vol);
    assert_int_equal(n, strlen(k));
}

static void test_fs_key_bad_volume_is_empty(void **state)
{
    (void)state;
    char k[FS_KEY_MAX];
    memset(k, 'z', sizeof k);
    assert_int_equal(fs_key_inode(k, "a/b", 1), 0);
    assert_string_equal(k, "");
    assert_int_equal(fs_key_super(k, ""), 0);
    assert_int_equal(fs_key_next(k, NULL), 0);
    assert_int_equal(fs_key_chunk(k, "..", 1, 2), 0);
    char vol[66];
    memset(vol, 'x', 65);
    vol[65] = '\0';
    assert_int_equal(fs_key_bucket(k, vol, 1, 0, 0), 0);
    assert_string_equal(k, "");
}

static void test_fs_volume_name_ok_accepts(void **state)
{
    (void)state;
    char vol[65];
    memset(vol, 'Z', 64);
    vol[64] = '\0';
    assert_true(fs_volume_name_ok(vol));
    assert_true(fs_volume_name_ok("a"));
    assert_true(fs_volume_name_ok("default"));
    assert_true(fs_volume_name_ok("My-Vol_2.0"));
    assert_true(fs_volume_name_ok("..."));
    assert_true(fs_volume_name_ok(".hidden"));
}

static void test_fs_volume_name_ok_rejects(void **state)
{
    (void)state;
    char vol[66];
    memset(vol, 'a', 65);
    vol[65] = '\0';
    assert_false(fs_volume_name_ok(vol));
    assert_false(fs_volume_name_ok(NULL));
    assert_false(fs_volume_name_ok(""));
    assert_false(fs_volume_name_ok("."));
    assert_false(fs_volume_name_ok(".."));
    assert_false(fs_volume_name_ok("a/b"));
    assert_false(fs_volume_name_ok("a b"));
    assert_false(fs_volume_name_ok("a\n"));
    assert_false(fs_volume_name_ok("caf\xc3\xa9"));
    assert_false(fs_volume_name_ok("x:y"));
}

/* ---- volume record ---- */

static void test_fs_super_roundtrip_all_sizes(void **state)
{
    (void)state;
    for (uint32_t cs = 4096; cs <= 4 * MiB; cs *= 2) {
        fs_super_t s = {cs}, out = {0};
        uint8_t buf[16];
        size_t n = fs_super_encode(&s, buf, sizeof buf);
        assert_int_equal(n, 5);
        assert_int_equal(buf[0], 1);
        assert_int_equal(buf[1], cs & 0xff);
        assert_int_equal(buf[2], (cs >> 8) & 0xff);
        assert_int_equal(fs_super_decode(buf, n, &out), 0);
        assert_int_equal(out.chunk_size, cs);
    }
}

static void test_fs_super_decode_rejects_bad_chunk_size(void **state)
{
    (void)state;
    const uint32_t bad[] = {0, 1, 2048, 4095, 4097, 3 * 4096, 8 * MiB, 0x80000000u, 0xffffffffu};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t buf[5] = {1, (uint8_t)bad[i], (uint8_t)(bad[i] >> 8), (uint8_t)(bad[i] >> 16),
                          (uint8_t)(bad[i] >> 24)};
        fs_super_t out = {0};
        assert_int_equal(fs_super_decode(buf, sizeof buf, &out), -EBADMSG);
        fs_super_t s = {bad[i]};
        assert_int_equal(fs_super_encode(&s, buf, sizeof buf), 0);
    }
}

static void test_fs_super_decode_rejects_framing(void **state)
{
    (void)state;
    fs_super_t s = {64 * 1024}, out;
    uint8_t buf[8] = {0};
    assert_int_equal(fs_super_encode(&s, buf, 4), 0);
    assert_int_equal(fs_super_encode(&s, buf, sizeof buf), 5);
    for (size_t n = 0; n < 5; n++)
        assert_int_equal(fs_super_decode(buf, n, &out), -EBADMSG);
    assert_int_equal(fs_super_decode(buf, 6, &out), -EBADMSG);
    assert_int_equal(fs_super_decode(NULL, 0, &out), -EBADMSG);
    buf[0] = 2;
    assert_int_equal(fs_super_decode(buf, 5, &out), -EBADMSG);
    buf[0] = 0;
    assert_int_equal(fs_super_decode(buf, 5, &out), -EBADMSG);
}

/* ---- inode record ---- */

static void test_fs_inode_roundtrip_plain(void **state)
{
    (void)state;
    fs_inode_t in;
    fill_inode(&in);
    size_t len;
    uint8_t *buf = inode_roundtrip(&in, &len);
    assert_int_equal(buf[0], 2);
    /* ino follows the format byte, little-endian */
    assert_int_equal(buf[1], 0xef);
    assert_int_equal(buf[8], 0x01);
    free(buf);
    fs_inode_free(&in);
}

static void test_fs_inode_roundtrip_zero(void **state)
{
    (void)state;
    fs_inode_t in;
    memset(&in, 0, sizeof in);
    size_t len;
    free(inode_roundtrip(&in, &len));
}

static void test_fs_inode_roundtrip_symlink(void **state)
{
    (void)state;
    fs_inode_t in;
    fill_inode(&in);
    in.mode = 0120777;
    in.target = strdup("../some/where/else");
    size_t len;
    free(inode_roundtrip(&in, &len));
    fs_inode_free(&in);
}

static void test_fs_inode_symlink_max_length(void **state)
{
    (void)state;
    fs_inode_t in;
    fill_inode(&in);
    in.target = malloc(FS_SYMLINK_MAX + 2);
    memset(in.target, 't', FS_SYMLINK_MAX);
    in.target[FS_SYMLINK_MAX] = '\0';
    size_t len;
    free(inode_roundtrip(&in, &len));
    in.target[FS_SYMLINK_MAX] = 'u';
    in.target[FS_SYMLINK_MAX + 1] = '\0';
    uint8_t *buf = malloc(fs_inode_encoded_size(&in));
    assert_int_equal(fs_inode_encode(&in, buf, fs_inode_encoded_size(&in)), 0);
    free(buf);
    fs_inode_free(&in);
}

static void test_fs_inode_empty_target_is_none(void **state)
{
    (void)state;
    fs_inode_t in, out;
    fill_inode(&in);
    in.target = strdup("");
    uint8_t buf[256];
    size_t n = fs_inode_encode(&in, buf, sizeof buf);
    assert_true(n > 0);
    assert_int_equal(fs_inode_decode(buf, n, &out), 0);
    assert_null(out.target);
    fs_inode_free(&out);
    fs_inode_free(&in);
}

static void test_fs_inode_roundtrip_xattrs(void **state)
{
    (void)state;
    fs_inode_t in;
    fill_inode(&in);
    in.target = strdup("t");
    const uint8_t bin[] = {0, 1, 2, 0xff, 0, '/'};
    assert_int_equal(fs_xattr_set(&in, "user.b", bin, sizeof bin), 0);
    assert_int_equal(fs_xattr_set(&in, "user.a", "hello", 5), 0);
    assert_int_equal(fs_xattr_set(&in, "security.selinux", "", 0), 0);
    size_t len;
    free(inode_roundtrip(&in, &len));
    fs_inode_free(&in);
}

static void test_fs_inode_decode_every_truncation_fails(void **state)
{
    (void)state;
    fs_inode_t in, out;
    fill_inode(&in);
    fill_ext(&in);
    in.target = strdup("/target");
    assert_int_equal(fs_xattr_set(&in, "user.x", "12345", 5), 0);
    assert_int_equal(fs_xattr_set(&in, "user.empty", NULL, 0), 0);
    size_t len;
    uint8_t *buf = inode_roundtrip(&in, &len);
    for (size_t n = 0; n < len; n++) {
        /* A private copy of exactly n bytes, so ASan sees any over-read. */
        uint8_t *cut = malloc(n ? n : 1);
        memcpy(cut, buf, n);
        assert_int_equal(fs_inode_decode(cut, n, &out), -EBADMSG);
        assert_null(out.target);
        assert_null(out.xattrs);
        assert_int_equal(out.nxattrs, 0);
        free(cut);
    }
    free(buf);
    fs_inode_free(&in);
}

static void test_fs_inode_decode_trailing_garbage(void **state)
{
    (void)state;
    fs_inode_t in, out;
    fill_inode(&in);
    uint8_t buf[512];
    size_t n = fs_inode_encode(&in, buf, sizeof buf);
    assert_true(n > 0);
    buf[n] = 0;
    assert_int_equal(fs_inode_decode(buf, n + 1, &out), -EBADMSG);
    assert_int_equal(fs_inode_decode(buf, n, &out), 0);
    fs_inode_free(&out);
}

static void test_fs_inode_decode_bit_flips_never_crash(void **state)
{
    (void)state;
    fs_inode_t in, out;
    fill_inode(&in);
    fill_ext(&in);
    in.target = strdup("abc");
    assert_int_equal(fs_xattr_set(&in, "user.a", "v1", 2), 0);
    assert_int_equal(fs_xattr_set(&in, "user.b", "v22", 3), 0);
    size_t len;
    uint8_t *buf = inode_roundtrip(&in, &len);
    uint8_t *m = malloc(len), *re = malloc(len);
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(m, buf, len);
            m[i] ^= (uint8_t)(1u << bit);
            int rc = fs_inode_decode(m, len, &out);
            if (rc == 0) {
                assert_int_equal(fs_inode_encode(&out, re, len), len);
                assert_memory_equal(re, m, len);
            } else {
                assert_int_equal(rc, -EBADMSG);
            }
            fs_inode_free(&out);
        }
    }
    free(m);
    free(re);
    free(buf);
    fs_inode_free(&in);
}

static void test_fs_inode_decode_random_garbage(void **state)
{
    (void)state;
    rng_seed(0x1d0de);
    uint8_t buf[300];
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = rng_below(sizeof buf + 1);
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)rng_next();
        if (len && iter % 2)
            buf[0] = 1;
        fs_inode_t out;
        uint8_t *exact = malloc(len ? len : 1);
        memcpy(exact, buf, len);
        int rc = fs_inode_decode(exact, len, &out);
        assert_true(rc == 0 || rc == -EBADMSG);
        fs_inode_free(&out);
        free(exact);
    }
}

static void test_fs_inode_decode_rejects_format(void **state)
{
    (void)state;
    fs_inode_t in, out;
    fill_inode(&in);
    uint8_t buf[256];
    size_t n = fs_inode_encode(&in, buf, sizeof buf);
    assert_int_equal(buf[0], 2);
    buf[0] = 3;
    assert_int_equal(fs_inode_decode(buf, n, &out), -EBADMSG);
    buf[0] = 0;
    assert_int_equal(fs_inode_decode(buf, n, &out), -EBADMSG);
}

static void test_fs_inode_decode_rejects_bad_target(void **state)
{
    (void)state;
    static uint8_t raw[8192];
    fs_inode_t out;
    char t[FS_SYMLINK_MAX + 1];
    memset(t, 'a', sizeof t);

    bld_t b = {raw, 0};
    bld_inode_head(&b);
    bld_le(&b, FS_SYMLINK_MAX + 1, 2);
    bld_bytes(&b, t, FS_SYMLINK_MAX + 1);
    bld_le(&b, 0, 4);
    bld_le(&b, 0, 4); /* no inline data */
    assert_int_equal(fs_inode_decode(raw, b.n, &out), -EBADMSG);

    b.n = 0;
    bld_inode_head(&b);
    bld_le(&b, 3, 2);
    bld_bytes(&b, "a\0b", 3);
    bld_le(&b, 0, 4);
    bld_le(&b, 0, 4); /* no inline data */
    assert_int_equal(fs_inode_decode(raw, b.n, &out), -EBADMSG);

    /* target length beyond the record */
    b.n = 0;
    bld_inode_head(&b);
    bld_le(&b, 0xffff, 2);
    bld_le(&b, 0, 4);
    bld_le(&b, 0, 4); /* no inline data */
    assert_int_equal(fs_inode_decode(raw, b.n, &out), -EBADMSG);

    b.n = 0;
    bld_inode_head(&b);
    bld_le(&b, FS_SYMLINK_MAX, 2);
    bld_bytes(&b, t, FS_SYMLINK_MAX);
    bld_le(&b, 0, 4);
    bld_le(&b, 0, 4); /* no inline data */
    assert_int_equal(fs_inode_decode(raw, b.n, &out), 0);
    assert_int_equal(strlen(out.target), FS_SYMLINK_MAX);
    fs_inode_free(&out);
}

static void test_fs_inode_decode_rejects_bad_xattrs(void **state)
{
    (void)state;
    static uint8_t raw[1024];
    fs_inode_t out;
    bld_t b = {raw, 0};

    /* empty name */
    bld_inode_head(&b);
    bld_le(&b, 0, 2);
    bld_le(&b, 1, 4);
    bld_le(&b, 0, 1);
    bld_le(&b, 0, 4);
    bld_le(&b, 0, 4); /* no inline data */
    assert_int_equal(fs_inode_decode(raw, b.n, &out), -EBADMSG);

    /* NUL inside a name */
    b.n = 0;
    bld_inode_head(&b);
    bld_le(&b, 0, 2);
    bld_le(&b, 1, 4);
    bld_le(&b, 3, 1);
    bld_bytes(&b, "a\0b", 3);
    bld_le(&b, 0, 4);
    bld_le(&b, 0, 4); /* no inline data */
    assert_int_equal(fs_inode_decode(raw, b.n, &out), -EBADMSG);

    /* out of order, then duplicate, then in order */
    const char *names[3][2] = {{"user.b", "user.a"}, {"user.a", "user.a"}, {"user.a", "user.b"}};
    for (int k = 0; k < 3; k++) {
        b.n = 0;
        bld_inode_head(&b);
        bld_le(&b, 0, 2);
        bld_le(&b, 2, 4);
        for (int j = 0; j < 2; j++) {
            bld_le(&b, strlen(names[k][j]), 1);
            bld_str(&b, names[k][j]);
            bld_le(&b, 1, 4);
            bld_str(&b, "v");
        }
        bld_le(&b, 0, 4); /* no inline data */
        assert_int_equal(fs_inode_decode(raw, b.n, &out), k == 2 ? 0 : -EBADMSG);
        fs_inode_free(&out);
    }

    /* a prefix sorts before the longer name */
    b.n = 0;
    bld_inode_head(&b);
    bld_le(&b, 0, 2);
    bld_le(&b, 2, 4);
    bld_le(&b, 2, 1);
    bld_str(&b, "ab");
    bld_le(&b, 0, 4);
    bld_le(&b, 1, 1);
    bld_str(&b, "a");
    bld_le(&b, 0, 4);
    bld_le(&b, 0, 4); /* no inline data */
    assert_int_equal(fs_inode_decode(raw, b.n, &out), -EBADMSG);

    /* a count that the remaining bytes cannot hold, without allocating it */
    b.n = 0;
    bld_inode_head(&b);
    bld_le(&b, 0, 2);
    bld_le(&b, 0xffffffffu, 4);
    bld_le(&b, 0, 4); /* no inline data */
    assert_int_equal(fs_inode_decode(raw, b.n, &out), -EBADMSG);

    /* a value length beyond the record */
    b.n = 0;
    bld_inode_head(&b);
    bld_le(&b, 0, 2);
    bld_le(&b, 1, 4);
    bld_le(&b, 1, 1);
    bld_str(&b, "a");
    bld_le(&b, 0xfffffff0u, 4);
    bld_str(&b, "vvvv");
    bld_le(&b, 0, 4); /* no inline data */
    assert_int_equal(fs_inode_decode(raw, b.n, &out), -EBADMSG);
}

static void test_fs_inode_decode_rejects_xattr_total(void **state)
{
    (void)state;
    size_t cap = FS_XATTR_TOTAL_MAX + 512;
    uint8_t *raw = calloc(1, cap);
    uint8_t *val = calloc(1, FS_XATTR_TOTAL_MAX);
    fs_inode_t out;
    for (int over = 0; over <= 1; over++) {
        bld_t b = {raw, 0};
        bld_inode_head(&b);
        bld_le(&b, 0, 2);
        bld_le(&b, 2, 4);
        bld_le(&b, 1, 1);
        bld_str(&b, "a");
        bld_le(&b, FS_XATTR_TOTAL_MAX - 2 + over, 4);
        bld_bytes(&b, val, FS_XATTR_TOTAL_MAX - 2 + over);
        bld_le(&b, 1, 1);
        bld_str(&b, "b");
        bld_le(&b, 0, 4);
        bld_le(&b, 0, 4); /* no inline data */
        assert_int_equal(fs_inode_decode(raw, b.n, &out), over ? -EBADMSG : 0);
        fs_inode_free(&out);
    }
    free(raw);
    free(val);
}

static void test_fs_inode_encode_cap(void **state)
{
    (void)state;
    fs_inode_t in;
    fill_inode(&in);
    in.target = strdup("x");
    assert_int_equal(fs_xattr_set(&in, "user.k", "vv", 2), 0);
    size_t need = fs_inode_encoded_size(&in);
    /* format 2: 89 fixed bytes, ..., and a one-byte empty chunk index */
    assert_int_equal(need, 89 + 2 + 1 + 4 + (1 + 6 + 4 + 2) + 4 + 1);
    uint8_t *buf = malloc(need);
    assert_int_equal(fs_inode_encode(&in, buf, need - 1), 0);
    assert_int_equal(fs_inode_encode(&in, buf, 0), 0);
    assert_int_equal(fs_inode_encode(&in, buf, need), need);
    free(buf);
    fs_inode_free(&in);
}

static void test_fs_inode_encode_refuses_unsorted_xattrs(void **state)
{
    (void)state;
    fs_inode_t in;
    fill_inode(&in);
    assert_int_equal(fs_xattr_set(&in, "user.a", "1", 1), 0);
    assert_int_equal(fs_xattr_set(&in, "user.b", "2", 1), 0);
    fs_xattr_t tmp = in.xattrs[0];
    in.xattrs[0] = in.xattrs[1];
    in.xattrs[1] = tmp;
    uint8_t buf[512];
    assert_int_equal(fs_inode_encode(&in, buf, sizeof buf), 0);
    fs_inode_free(&in);
}

static void test_fs_inode_copy_is_deep(void **state)
{
    (void)state;
    fs_inode_t src, dst;
    fill_inode(&src);
    src.target = strdup("link");
    assert_int_equal(fs_xattr_set(&src, "user.a", "abc", 3), 0);
    assert_int_equal(fs_xattr_set(&src, "user.z", "", 0), 0);
    assert_int_equal(fs_inode_copy(&dst, &src), 0);
    assert_inode_equal(&src, &dst);
    assert_ptr_not_equal(dst.target, src.target);
    assert_ptr_not_equal(dst.xattrs, src.xattrs);
    assert_ptr_not_equal(dst.xattrs[0].name, src.xattrs[0].name);
    assert_ptr_not_equal(dst.xattrs[0].value, src.xattrs[0].value);

    fs_inode_t keep;
    assert_int_equal(fs_inode_copy(&keep, &src), 0);
    assert_int_equal(fs_xattr_set(&src, "user.a", "changed", 7), 0);
    src.target[0] = 'L';
    fs_inode_free(&src);
    assert_inode_equal(&dst, &keep);
    assert_string_equal(dst.target, "link");
    assert_memory_equal(dst.xattrs[0].value, "abc", 3);
    fs_inode_free(&dst);
    fs_inode_free(&keep);
}

static void test_fs_inode_copy_plain(void **state)
{
    (void)state;
    fs_inode_t src, dst;
    fill_inode(&src);
    assert_int_equal(fs_inode_copy(&dst, &src), 0);
    assert_inode_equal(&src, &dst);
    assert_null(dst.target);
    assert_null(dst.xattrs);
    fs_inode_free(&dst);
}

static void test_fs_inode_free_zeroes(void **state)
{
    (void)state;
    fs_inode_t in, zero;
    memset(&zero, 0, sizeof zero);
    fill_inode(&in);
    in.target = strdup("t");
    assert_int_equal(fs_xattr_set(&in, "user.a", "1", 1), 0);
    fs_inode_free(&in);
    assert_memory_equal(&in, &zero, sizeof in);
    fs_inode_free(&in);
    fs_inode_free(NULL);
}

/* ---- extended attributes ---- */

static void test_fs_xattr_set_find(void **state)
{
    (void)state;
    fs_inode_t in;
    fill_inode(&in);
    assert_null(fs_xattr_find(&in, "user.a"));
    assert_int_equal(fs_xattr_set(&in, "user.a", "value", 5), 0);
    const fs_xattr_t *x = fs_xattr_find(&in, "user.a");
    assert_non_null(x);
    assert_int_equal(x->value_len, 5);
    assert_memory_equal(x->value, "value", 5);
    assert_string_equal((const char *)x->name, "user.a");
    assert_null(fs_xattr_find(&in, "user.b"));
    assert_null(fs_xattr_find(&in, "user."));
    fs_inode_free(&in);
}

static void test_fs_xattr_set_replaces(void **state)
{
    (void)state;
    fs_inode_t in;
    fill_inode(&in);
    assert_int_equal(fs_xattr_set(&in, "user.a", "one", 3), 0);
    assert_int_equal(fs_xattr_set(&in, "user.b", "two", 3), 0);
    assert_int_equal(fs_xattr_set(&in, "user.a", "replaced", 8), 0);
    assert_int_equal(in.nxattrs, 2);
    const fs_xattr_t *x = fs_xattr_find(&in, "user.a");
    assert_int_equal(x->value_len, 8);
    assert_memory_equal(x->value, "replaced", 8);
    assert_int_equal(fs_xattr_set(&in, "user.a", NULL, 0), 0);
    x = fs_xattr_find(&in, "user.a");
    assert_int_equal(x->value_len, 0);
    assert_non_null(x->value);
    fs_inode_free(&in);
}

static void test_fs_xattr_sorted_canonical(void **state)
{
    (void)state;
    rng_seed(42);
    fs_inode_t a, b;
    fill_inode(&a);
    fill_inode(&b);
    char names[64][16];
    for (int i = 0; i < 64; i++)
        snprintf(names[i], sizeof names[i], "user.%02x", (unsigned)(i * 37 % 64));
    for (int i = 0; i < 64; i++)
        assert_int_equal(fs_xattr_set(&a, names[i], names[i], 3), 0);
    for (int i = 63; i >= 0; i--)
        assert_int_equal(fs_xattr_set(&b, names[i], names[i], 3), 0);
    for (uint32_t i = 1; i < a.nxattrs; i++)
        assert_true(strcmp((const char *)a.xattrs[i - 1].name, (const char *)a.xattrs[i].name) < 0);
    size_t na = fs_inode_encoded_size(&a);
    assert_int_equal(na, fs_inode_encoded_size(&b));
    uint8_t *ea = malloc(na), *eb = malloc(na);
    assert_int_equal(fs_inode_encode(&a, ea, na), na);
    assert_int_equal(fs_inode_encode(&b, eb, na), na);
    assert_memory_equal(ea, eb, na);
    free(ea);
    free(eb);
    fs_inode_free(&a);
    fs_inode_free(&b);
}

static void test_fs_xattr_remove(void **state)
{
    (void)state;
    fs_inode_t in;
    fill_inode(&in);
    assert_int_equal(fs_xattr_remove(&in, "user.a"), -ENODATA);
    assert_int_equal(fs_xattr_set(&in, "user.a", "1", 1), 0);
    assert_int_equal(fs_xattr_set(&in, "user.b", "2", 1), 0);
    assert_int_equal(fs_xattr_set(&in, "user.c", "3", 1), 0);
    assert_int_equal(fs_xattr_remove(&in, "user.b"), 0);
    assert_int_equal(fs_xattr_remove(&in, "user.b"), -ENODATA);
    assert_int_equal(in.nxattrs, 2);
    assert_non_null(fs_xattr_find(&in, "user.a"));
    assert_non_null(fs_xattr_find(&in, "user.c"));
    assert_int_equal(fs_xattr_remove(&in, "user.a"), 0);
    assert_int_equal(fs_xattr_remove(&in, "user.c"), 0);
    assert_int_equal(in.nxattrs, 0);
    assert_null(in.xattrs);
    fs_inode_free(&in);
}

static void test_fs_xattr_list(void **state)
{
    (void)state;
    fs_inode_t in;
    fill_inode(&in);
    assert_int_equal(fs_xattr_list(&in, NULL, 0), 0);
    assert_int_equal(fs_xattr_set(&in, "user.bb", "1", 1), 0);
    assert_int_equal(fs_xattr_set(&in, "user.a", "2", 1), 0);
    const char want[] = "user.a\0user.bb";
    size_t need = sizeof want;
    assert_int_equal(fs_xattr_list(&in, NULL, 0), need);
    char buf[32];
    memset(buf, '#', sizeof buf);
    assert_int_equal(fs_xattr_list(&in, buf, need - 1), need);
    assert_int_equal(buf[0], '#');
    assert_int_equal(fs_xattr_list(&in, buf, need), need);
    assert_memory_equal(buf, want, need);
    assert_int_equal(buf[need], '#');
    fs_inode_free(&in);
}

static void test_fs_xattr_enospc_limit(void **state)
{
    (void)state;
    fs_inode_t in;
    fill_inode(&in);
    uint8_t *v = calloc(1, FS_XATTR_TOTAL_MAX + 1);
    const size_t nl = strlen("user.big");
    assert_int_equal(fs_xattr_set(&in, "user.big", v, FS_XATTR_TOTAL_MAX - nl + 1), -ENOSPC);
    assert_int_equal(in.nxattrs, 0);
    assert_int_equal(fs_xattr_set(&in, "user.big", v, FS_XATTR_TOTAL_MAX - nl), 0);
    assert_int_equal(fs_xattr_set(&in, "u", NULL, 0), -ENOSPC);
    assert_int_equal(in.nxattrs, 1);
    /* Replacing counts the new value instead of the old one. */
    assert_int_equal(fs_xattr_set(&in, "user.big", v, FS_XATTR_TOTAL_MAX - nl), 0);
    assert_int_equal(fs_xattr_set(&in, "user.big", v, FS_XATTR_TOTAL_MAX - nl + 1), -ENOSPC);
    assert_int_equal(fs_xattr_find(&in, "user.big")->value_len, FS_XATTR_TOTAL_MAX - nl);
    assert_int_equal(fs_xattr_set(&in, "user.big", v, FS_XATTR_TOTAL_MAX - nl - 1), 0);
    assert_int_equal(fs_xattr_set(&in, "u", NULL, 0), 0);
    assert_int_equal(fs_xattr_set(&in, "w", NULL, 0), -ENOSPC);
    assert_int_equal(fs_xattr_set(&in, "user.small", v, (size_t)1 << 40), -ENOSPC);

    /* A record at the limit still encodes and decodes. */
    size_t len;
    free(inode_roundtrip(&in, &len));
    free(v);
    fs_inode_free(&in);
}

static void test_fs_xattr_name_length(void **state)
{
    (void)state;
    fs_inode_t in;
    fill_inode(&in);
    char name[FS_NAME_MAX + 2];
    memset(name, 'n', FS_NAME_MAX);
    name[FS_NAME_MAX] = '\0';
    assert_int_equal(fs_xattr_set(&in, name, "v", 1), 0);
    assert_non_null(fs_xattr_find(&in, name));
    name[FS_NAME_MAX] = 'n';
    name[FS_NAME_MAX + 1] = '\0';
    assert_int_equal(fs_xattr_set(&in, name, "v", 1), -ERANGE);
    assert_int_equal(fs_xattr_set(&in, "", "v", 1), -ERANGE);
    assert_int_equal(in.nxattrs, 1);
    size_t len;
    free(inode_roundtrip(&in, &len));
    fs_inode_free(&in);
}

/* ---- hashing ---- */

static void test_fs_name_hash_known_values(void **state)
{
    (void)state;
    /* From an independent SipHash-2-4 (key all zero), output LE >> 2. */
    assert_int_equal(fs_name_hash("", 0), 0x07a492e75cddc035ULL);
    assert_int_equal(fs_name_hash("a", 1), 0x25b082183364e892ULL);
    assert_int_equal(fs_name_hash("hello", 5), 0x233057576cbdd4aeULL);
    assert_int_equal(fs_name_hash("lost+found", 10), 0x2612b81929e76a67ULL);
    assert_int_equal(fs_name_hash("0123456789abcdef", 16), 0x2530dd012a47e9edULL);
    /* length, not NUL, ends the name */
    assert_int_equal(fs_name_hash("hello world", 5), 0x233057576cbdd4aeULL);
}

static void test_fs_name_hash_62_bits(void **state)
{
    (void)state;
    rng_seed(7);
    uint64_t all = 0;
    char name[64];
    for (int i = 0; i < 2000; i++) {
        size_t n = rng_unique_name(name, (size_t)i);
        uint64_t h = fs_name_hash(name, n);
        assert_int_equal(h >> FS_HASH_BITS, 0);
        all |= h;
    }
    assert_int_equal(all, (1ULL << FS_HASH_BITS) - 1);
}

static void test_fs_hash_prefix_math(void **state)
{
    (void)state;
    const uint64_t top = 1ULL << 61;
    const uint64_t h = 0x2aaaaaaaaaaaaaaaULL; /* 10 10 10 ... over 62 bits */
    assert_int_equal(fs_hash_prefix(h, 0), 0);
    assert_int_equal(fs_hash_prefix(h, 1), 1);
    assert_int_equal(fs_hash_prefix(h, 2), 2);
    assert_int_equal(fs_hash_prefix(h, 3), 5);
    assert_int_equal(fs_hash_prefix(h, 62), h);
    assert_int_equal(fs_hash_prefix(top - 1, 1), 0);
    assert_int_equal(fs_hash_prefix(top, 1), 1);

    assert_int_equal(fs_bucket_first_hash(0, 0), 0);
    assert_int_equal(fs_bucket_first_hash(1, 1), top);
    assert_int_equal(fs_bucket_first_hash(2, 3), 3 * (top >> 1));
    assert_int_equal(fs_bucket_first_hash(62, 12345), 12345);
    for (unsigned d = 0; d <= FS_HASH_BITS; d++) {
        uint64_t p = fs_hash_prefix(h, d);
        assert_int_equal(fs_hash_prefix(fs_bucket_first_hash(d, p), d), p);
        assert_true(fs_bucket_first_hash(d, p) <= h);
    }
}

static void test_fs_bucket_covers_edges(void **state)
{
    (void)state;
    const uint64_t top = 1ULL << 61;
    const uint64_t max = (1ULL << FS_HASH_BITS) - 1;
    assert_true(fs_bucket_covers(0, 0, 0));
    assert_true(fs_bucket_covers(0, 0, max));
    assert_false(fs_bucket_covers(0, 0, max + 1));
    assert_false(fs_bucket_covers(0, 0, UINT64_MAX));
    assert_true(fs_bucket_covers(1, 1, top));
    assert_false(fs_bucket_covers(1, 1, top - 1));
    assert_true(fs_bucket_covers(1, 0, top - 1));
    assert_true(fs_bucket_covers(1, 1, max));
    assert_true(fs_bucket_covers(62, 77, 77));
    assert_false(fs_bucket_covers(62, 77, 78));
    /* the two children of (2, 1) split its range without overlap */
    for (uint64_t hh = 0; hh < 64; hh++) {
        uint64_t x = hh << 56;
        bool l = fs_bucket_covers(3, 2, x), r = fs_bucket_covers(3, 3, x);
        assert_false(l && r);
        assert_true((l || r) == fs_bucket_covers(2, 1, x));
    }
}

/* ---- buckets ---- */

static void test_fs_bucket_init_free(void **state)
{
    (void)state;
    fs_bucket_t b;
    fs_bucket_init(&b, 3, 5);
    assert_int_equal(b.state, FS_BUCKET_NORMAL);
    assert_int_equal(b.depth, 3);
    assert_int_equal(b.prefix, 5);
    assert_int_equal(b.count, 0);
    assert_null(b.ents);
    fs_bucket_init(&b, 0, 0);
    put_ok(&b, "x", 1);
    fs_bucket_free(&b);
    assert_null(b.ents);
    assert_int_equal(b.count, 0);
    fs_bucket_free(&b);
    fs_bucket_free(NULL);
}

static void test_fs_bucket_put_find(void **state)
{
    (void)state;
    fs_bucket_t b;
    fs_bucket_init(&b, 0, 0);
    assert_int_equal(fs_bucket_find(&b, "a", 1), -1);
    put_ok(&b, "a", 10);
    put_ok(&b, "bb", 20);
    put_ok(&b, "ccc", 30);
    assert_int_equal(b.count, 3);
    assert_bucket_valid(&b);
    ssize_t i = fs_bucket_find(&b, "bb", 2);
    assert_true(i >= 0);
    assert_int_equal(b.ents[i].ino, 20);
    assert_int_equal(b.ents[i].type, 8);
    assert_string_equal(b.ents[i].name, "bb");
    assert_int_equal(b.ents[i].hash, fs_name_hash("bb", 2));
    assert_int_equal(fs_bucket_find(&b, "b", 1), -1);
    assert_int_equal(fs_bucket_find(&b, "bbb", 3), -1);
    assert_int_equal(fs_bucket_find(&b, "bbx", 2), i);
    assert_int_equal(fs_bucket_find(&b, "", 0), -1);
    fs_bucket_free(&b);
}

/* fs_bucket_scan on the encoded bytes finds what fs_bucket_find finds in the decoded bucket. */
static void test_fs_bucket_scan(void **state)
{
    (void)state;
    fs_bucket_t b;
    fs_bucket_init(&b, 0, 0);
    char name[16];
    for (unsigned i = 0; i < 300; i++) {
        snprintf(name, sizeof name, "f%u", i * 7);
        put_ok(&b, name, 1000 + i);
    }
    put_ok(&b, "bb", 20);
    uint8_t buf[FS_BUCKET_MAX];
    size_t len = fs_bucket_encode(&b, buf, sizeof buf);
    assert_true(len > 0);
    fs_dirent_t e;
    for (unsigned i = 0; i < 2200; i++) {
        snprintf(name, sizeof name, "f%u", i);
        ssize_t at = fs_bucket_find(&b, name, strlen(name));
        memset(&e, 0xaa, sizeof e);
        int rc = fs_bucket_scan(buf, len, name, strlen(name), &e);
        assert_int_equal(rc, at >= 0 ? 1 : 0);
        if (at >= 0) {
            assert_int_equal(e.ino, b.ents[at].ino);
            assert_int_equal(e.type, b.ents[at].type);
            assert_int_equal(e.hash, b.ents[at].hash);
            assert_int_equal(e.name_len, b.ents[at].name_len);
            assert_string_equal(e.name, name);
        }
    }
    assert_int_equal(fs_bucket_scan(buf, len, "bb", 2, &e), 1);
    assert_int_equal(e.ino, 20);
    assert_int_equal(fs_bucket_scan(buf, len, "b", 1, &e), 0);
    assert_int_equal(fs_bucket_scan(buf, len, "bbb", 3, &e), 0);
    /* Cut anywhere, the bytes do not parse ("zz" is not there to be found before the cut). */
    for (size_t cut = 0; cut < len; cut += 37) {
        int rc = fs_bucket_scan(buf, cut, "zz", 2, &e);
        assert_int_equal(rc, -EBADMSG);
    }
    buf[0] ^= 0xff;
    assert_int_equal(fs_bucket_scan(buf, len, "bb", 2, &e), -EBADMSG);
    fs_bucket_free(&b);
    /* A split marker is not searched: the caller descends from it. */
    fs_bucket_init(&b, 1, 0);
    b.state = FS_BUCKET_SPLIT;
    len = fs_bucket_encode(&b, buf, sizeof buf);
    assert_int_equal(fs_bucket_scan(buf, len, "bb", 2, &e), -EBADMSG);
    fs_bucket_free(&b);
}

static void test_fs_bucket_put_replace_in_place(void **state)
{
    (void)state;
    fs_bucket_t b;
    fs_bucket_init(&b, 0, 0);
    put_ok(&b, "one", 1);
    put_ok(&b, "two", 2);
    put_ok(&b, "three", 3);
    ssize_t i = fs_bucket_find(&b, "two", 3);
    assert_int_equal(fs_bucket_put(&b, "two", 3, 222, 4), 0);
    assert_int_equal(b.count, 3);
    assert_int_equal(fs_bucket_find(&b, "two", 3), i);
    assert_int_equal(b.ents[i].ino, 222);
    assert_int_equal(b.ents[i].type, 4);
    assert_bucket_valid(&b);
    fs_bucket_free(&b);
}

static void test_fs_bucket_put_name_length(void **state)
{
    (void)state;
    fs_bucket_t b;
    fs_bucket_init(&b, 0, 0);
    char name[FS_NAME_MAX + 2];
    memset(name, 'q', sizeof name);
    assert_int_equal(fs_bucket_put(&b, name, FS_NAME_MAX + 1, 1, 8), -ENAMETOOLONG);
    assert_int_equal(fs_bucket_put(&b, name, 0, 1, 8), -EINVAL);
    assert_int_equal(b.count, 0);
    assert_int_equal(fs_bucket_put(&b, name, FS_NAME_MAX, 7, 8), 0);
    ssize_t i = fs_bucket_find(&b, name, FS_NAME_MAX);
    assert_true(i >= 0);
    assert_int_equal(b.ents[i].name_len, FS_NAME_MAX);
    assert_int_equal(strlen(b.ents[i].name), FS_NAME_MAX);
    assert_int_equal(fs_bucket_find(&b, name, FS_NAME_MAX + 1), -1);
    assert_int_equal(fs_bucket_remove(&b, name, FS_NAME_MAX + 1), -ENOENT);

    size_t len;
    uint8_t *buf = bucket_bytes(&b, &len);
    fs_bucket_t out;
    assert_int_equal(fs_bucket_decode(buf, len, 0, 0, &out), 0);
    assert_bucket_equal(&b, &out);
    free(buf);
    fs_bucket_free(&out);
    fs_bucket_free(&b);
}

static void test_fs_bucket_put_rejects_bad_bytes(void **state)
{
    (void)state;
    fs_bucket_t b;
    fs_bucket_init(&b, 0, 0);
    assert_int_equal(fs_bucket_put(&b, "a/b", 3, 1, 8), -EINVAL);
    assert_int_equal(fs_bucket_put(&b, "/", 1, 1, 8), -EINVAL);
    assert_int_equal(fs_bucket_put(&b, "a\0b", 3, 1, 8), -EINVAL);
    assert_int_equal(b.count, 0);
    /* '.' and high bytes are ordinary name bytes here */
    assert_int_equal(fs_bucket_put(&b, "\xff\x80.", 3, 1, 8), 0);
    fs_bucket_free(&b);
}

static void test_fs_bucket_put_outside_prefix(void **state)
{
    (void)state;
    char n0[32], n1[32];
    name_with_top_bit(n0, 0);
    name_with_top_bit(n1, 1);
    fs_bucket_t b;
    fs_bucket_init(&b, 1, 1);
    assert_int_equal(fs_bucket_put(&b, n0, strlen(n0), 1, 8), -EINVAL);
    assert_int_equal(fs_bucket_put(&b, n1, strlen(n1), 1, 8), 0);
    assert_int_equal(b.count, 1);
    fs_bucket_free(&b);
}

static void test_fs_bucket_remove(void **state)
{
    (void)state;
    fs_bucket_t b;
    fs_bucket_init(&b, 0, 0);
    assert_int_equal(fs_bucket_remove(&b, "x", 1), -ENOENT);
    const char *names[] = {"a", "b", "c", "d", "e", "f"};
    for (size_t i = 0; i < 6; i++)
        put_ok(&b, names[i], i + 1);
    assert_int_equal(fs_bucket_remove(&b, "c", 1), 0);
    assert_int_equal(fs_bucket_remove(&b, "c", 1), -ENOENT);
    assert_int_equal(fs_bucket_remove(&b, "", 0), -ENOENT);
    assert_int_equal(b.count, 5);
    assert_bucket_valid(&b);
    for (size_t i = 0; i < 6; i++)
        assert_true((fs_bucket_find(&b, names[i], 1) >= 0) == (i != 2));
    fs_bucket_free(&b);
}

static void test_fs_bucket_10000_random_names(void **state)
{
    (void)state;
    enum { N = 10000 };
    rng_seed(0xd1c7);
    static char names[N][64];
    static size_t lens[N];
    fs_bucket_t b;
    fs_bucket_init(&b, 0, 0);
    for (size_t i = 0; i < N; i++) {
        lens[i] = rng_unique_name(names[i], i);
        assert_int_equal(fs_bucket_put(&b, names[i], lens[i], i + 1, (uint8_t)(i % 16)), 0);
    }
    assert_int_equal(b.count, N);
    assert_bucket_valid(&b);
    for (size_t i = 0; i < N; i++) {
        ssize_t at = fs_bucket_find(&b, names[i], lens[i]);
        assert_true(at >= 0);
        assert_int_equal(b.ents[at].ino, i + 1);
    }

    /* Replace every third: same slot, new ino, count unchanged. */
    for (size_t i = 0; i < N; i += 3) {
        ssize_t at = fs_bucket_find(&b, names[i], lens[i]);
        assert_int_equal(fs_bucket_put(&b, names[i], lens[i], 1000000 + i, 4), 0);
        assert_int_equal(fs_bucket_find(&b, names[i], lens[i]), at);
        assert_int_equal(b.ents[at].ino, 1000000 + i);
    }
    assert_int_equal(b.count, N);
    assert_bucket_valid(&b);

    /* Remove the odd ones. */
    for (size_t i = 1; i < N; i += 2)
        assert_int_equal(fs_bucket_remove(&b, names[i], lens[i]), 0);
    assert_int_equal(b.count, N / 2);
    assert_bucket_valid(&b);
    for (size_t i = 0; i < N; i++) {
        ssize_t at = fs_bucket_find(&b, names[i], lens[i]);
        if (i % 2) {
            assert_int_equal(at, -1);
        } else {
            assert_true(at >= 0);
            assert_int_equal(b.ents[at].ino, i % 3 ? i + 1 : 1000000 + i);
        }
    }

    size_t len;
    uint8_t *buf = bucket_bytes(&b, &len);
    fs_bucket_t out;
    assert_int_equal(fs_bucket_decode(buf, len, 0, 0, &out), 0);
    assert_bucket_equal(&b, &out);
    free(buf);
    fs_bucket_free(&out);
    fs_bucket_free(&b);
}

static void test_fs_bucket_lower_bound(void **state)
{
    (void)state;
    fs_bucket_t b;
    fs_bucket_init(&b, 0, 0);
    assert_int_equal(fs_bucket_lower_bound(&b, 0), 0);
    assert_int_equal(fs_bucket_lower_bound(&b, UINT64_MAX), 0);
    char name[32];
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof name, "f%d", i);
        put_ok(&b, name, (uint64_t)i + 1);
    }
    assert_int_equal(fs_bucket_lower_bound(&b, 0), 0);
    assert_int_equal(fs_bucket_lower_bound(&b, UINT64_MAX), b.count);
    for (size_t i = 0; i < b.count; i++) {
        assert_int_equal(fs_bucket_lower_bound(&b, b.ents[i].hash), i);
        assert_int_equal(fs_bucket_lower_bound(&b, b.ents[i].hash + 1), i + 1);
    }
    fs_bucket_free(&b);
}

static void test_fs_bucket_roundtrip_states(void **state)
{
    (void)state;
    uint8_t buf[64];
    fs_bucket_t b, out;

    fs_bucket_init(&b, 0, 0);
    assert_int_equal(fs_bucket_encoded_size(&b), 6);
    assert_int_equal(fs_bucket_encode(&b, buf, sizeof buf), 6);
    assert_int_equal(buf[0], 1);
    assert_int_equal(buf[1], FS_BUCKET_NORMAL);
    assert_int_equal(fs_bucket_decode(buf, 6, 0, 0, &out), 0);
    assert_bucket_equal(&b, &out);
    fs_bucket_free(&out);

    b.state = FS_BUCKET_SPLIT;
    assert_int_equal(fs_bucket_encoded_size(&b), 2);
    assert_int_equal(fs_bucket_encode(&b, buf, sizeof buf), 2);
    assert_int_equal(fs_bucket_decode(buf, 2, 0, 0, &out), 0);
    assert_int_equal(out.state, FS_BUCKET_SPLIT);
    assert_int_equal(out.count, 0);
    fs_bucket_free(&out);

    /* A SPLIT marker holds nothing. */
    put_ok(&b, "x", 1);
    assert_int_equal(fs_bucket_encode(&b, buf, sizeof buf), 0);

    b.state = FS_BUCKET_SPLITTING;
    put_ok(&b, "y", 2);
    size_t n = fs_bucket_encode(&b, buf, sizeof buf);
    assert_int_equal(n, fs_bucket_encoded_size(&b));
    assert_int_equal(n, 6 + 2 * 11);
    assert_int_equal(fs_bucket_encode(&b, buf, n - 1), 0);
    assert_int_equal(fs_bucket_decode(buf, n, 0, 0, &out), 0);
    assert_bucket_equal(&b, &out);
    fs_bucket_free(&out);
    fs_bucket_free(&b);
}

static void test_fs_bucket_roundtrip_deep_prefix(void **state)
{
    (void)state;
    fs_bucket_t b, out;
    fs_bucket_init(&b, 3, 5);
    char name[32];
    for (int i = 0; b.count < 40; i++) {
        snprintf(name, sizeof name, "deep%d", i);
        if (fs_bucket_covers(3, 5, fs_name_hash(name, strlen(name))))
            put_ok(&b, name, (uint64_t)i);
    }
    size_t len;
    uint8_t *buf = bucket_bytes(&b, &len);
    assert_int_equal(fs_bucket_decode(buf, len, 3, 5, &out), 0);
    assert_bucket_equal(&b, &out);
    fs_bucket_free(&out);
    /* The same bytes read as another bucket fail: wrong prefix. */
    assert_int_equal(fs_bucket_decode(buf, len, 3, 4, &out), -EBADMSG);
    assert_int_equal(fs_bucket_decode(buf, len, 2, 2, &out), 0);
    fs_bucket_free(&out);
    assert_int_equal(fs_bucket_decode(buf, len, 4, 10, &out), -EBADMSG);
    free(buf);
    fs_bucket_free(&b);
}

static void test_fs_bucket_decode_recomputes_hash(void **state)
{
    (void)state;
    uint8_t raw[64];
    bld_t w = {raw, 0};
    bld_le(&w, 1, 1);
    bld_le(&w, 0, 1);
    bld_le(&w, 1, 4);
    bld_entry(&w, 99, 4, "hello", 5);
    fs_bucket_t out;
    assert_int_equal(fs_bucket_decode(raw, w.n, 0, 0, &out), 0);
    assert_int_equal(out.count, 1);
    assert_int_equal(out.ents[0].hash, 0x233057576cbdd4aeULL);
    assert_int_equal(out.ents[0].ino, 99);
    assert_int_equal(out.ents[0].type, 4);
    assert_string_equal(out.ents[0].name, "hello");
    fs_bucket_free(&out);
}

static void test_fs_bucket_decode_rejects_unsorted(void **state)
{
    (void)state;
    const char *lo, *hi;
    ordered_pair(&lo, &hi);
    uint8_t raw[64];
    fs_bucket_t out;
    for (int k = 0; k < 3; k++) {
        const char *first = k == 0 ? hi : lo;
        const char *second = k == 1 ? lo : (k == 0 ? lo : hi);
        bld_t w = {raw, 0};
        bld_le(&w, 1, 1);
        bld_le(&w, 0, 1);
        bld_le(&w, 2, 4);
        bld_entry(&w, 1, 8, first, strlen(first));
        bld_entry(&w, 2, 8, second, strlen(second));
        /* k 0: reversed, k 1: duplicate, k 2: in order */
        assert_int_equal(fs_bucket_decode(raw, w.n, 0, 0, &out), k == 2 ? 0 : -EBADMSG);
        fs_bucket_free(&out);
    }
}

static void test_fs_bucket_decode_rejects_wrong_prefix(void **state)
{
    (void)state;
    char n0[32], n1[32];
    name_with_top_bit(n0, 0);
    name_with_top_bit(n1, 1);
    uint8_t raw[64];
    bld_t w = {raw, 0};
    bld_le(&w, 1, 1);
    bld_le(&w, 0, 1);
    bld_le(&w, 1, 4);
    bld_entry(&w, 1, 8, n0, strlen(n0));
    fs_bucket_t out;
    assert_int_equal(fs_bucket_decode(raw, w.n, 1, 0, &out), 0);
    fs_bucket_free(&out);
    assert_int_equal(fs_bucket_decode(raw, w.n, 1, 1, &out), -EBADMSG);
    assert_int_equal(out.count, 0);
    assert_int_equal(out.depth, 1);
    assert_int_equal(out.prefix, 1);
    fs_bucket_free(&out);
}

static void test_fs_bucket_decode_rejects_bad_names(void **state)
{
    (void)state;
    struct {
        const char *name;
        size_t len;
    } bad[] = {{"", 0}, {"a/b", 3}, {"/", 1}, {"a\0b", 3}, {"\0", 1}};
    uint8_t raw[64];
    fs_bucket_t out;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bld_t w = {raw, 0};
        bld_le(&w, 1, 1);
        bld_le(&w, 0, 1);
        bld_le(&w, 1, 4);
        bld_entry(&w, 1, 8, bad[i].name, bad[i].len);
        assert_int_equal(fs_bucket_decode(raw, w.n, 0, 0, &out), -EBADMSG);
        fs_bucket_free(&out);
    }
}

static void test_fs_bucket_decode_rejects_long_name(void **state)
{
    (void)state;
    /*
     * The length is one byte, so a name over FS_NAME_MAX cannot be written;
     * a length byte that claims more than the record holds must fail.
     */
    static uint8_t raw[600];
    char name[300];
    memset(name, 'L', sizeof name);
    bld_t w = {raw, 0};
    bld_le(&w, 1, 1);
    bld_le(&w, 0, 1);
    bld_le(&w, 1, 4);
    bld_le(&w, 7, 8);
    bld_le(&w, 8, 1);
    bld_le(&w, 255, 1);
    bld_bytes(&w, name, 254);
    fs_bucket_t out;
    assert_int_equal(fs_bucket_decode(raw, w.n, 0, 0, &out), -EBADMSG);
    bld_bytes(&w, name, 1);
    assert_int_equal(fs_bucket_decode(raw, w.n, 0, 0, &out), 0);
    assert_int_equal(out.ents[0].name_len, 255);
    fs_bucket_free(&out);
    bld_bytes(&w, name, 1);
    assert_int_equal(fs_bucket_decode(raw, w.n, 0, 0, &out), -EBADMSG);
}

static void test_fs_bucket_decode_rejects_framing(void **state)
{
    (void)state;
    fs_bucket_t out;
    uint8_t split[3] = {1, FS_BUCKET_SPLIT, 0};
    assert_int_equal(fs_bucket_decode(split, 2, 0, 0, &out), 0);
    assert_int_equal(fs_bucket_decode(split, 3, 0, 0, &out), -EBADMSG);
    assert_int_equal(out.state, FS_BUCKET_NORMAL);

    uint8_t bad_state[6] = {1, FS_BUCKET_DEAD + 1, 0, 0, 0, 0};
    assert_int_equal(fs_bucket_decode(bad_state, 6, 0, 0, &out), -EBADMSG);
    uint8_t bad_format[6] = {2, 0, 0, 0, 0, 0};
    assert_int_equal(fs_bucket_decode(bad_format, 6, 0, 0, &out), -EBADMSG);
    bad_format[0] = 0;
    assert_int_equal(fs_bucket_decode(bad_format, 6, 0, 0, &out), -EBADMSG);

    /* SPLIT with a count and an entry: a marker holds nothing */
    uint8_t raw[64];
    bld_t w = {raw, 0};
    bld_le(&w, 1, 1);
    bld_le(&w, FS_BUCKET_SPLIT, 1);
    bld_le(&w, 1, 4);
    bld_entry(&w, 1, 8, "x", 1);
    assert_int_equal(fs_bucket_decode(raw, w.n, 0, 0, &out), -EBADMSG);

    /* huge count, small record: refused before allocating */
    uint8_t huge[8] = {1, 0, 0xff, 0xff, 0xff, 0xff, 0, 0};
    assert_int_equal(fs_bucket_decode(huge, sizeof huge, 0, 0, &out), -EBADMSG);

    /* trailing byte after a normal bucket */
    uint8_t empty[7] = {1, 0, 0, 0, 0, 0, 0};
    assert_int_equal(fs_bucket_decode(empty, 6, 0, 0, &out), 0);
    assert_int_equal(fs_bucket_decode(empty, 7, 0, 0, &out), -EBADMSG);
    assert_int_equal(fs_bucket_decode(NULL, 0, 0, 0, &out), -EBADMSG);
}

static void test_fs_bucket_decode_rejects_bad_coordinates(void **state)
{
    (void)state;
    uint8_t empty[6] = {1, 0, 0, 0, 0, 0};
    fs_bucket_t out;
    assert_int_equal(fs_bucket_decode(empty, 6, 62, (1ULL << 62) - 1, &out), 0);
    assert_int_equal(fs_bucket_decode(empty, 6, 63, 0, &out), -EBADMSG);
    assert_int_equal(fs_bucket_decode(empty, 6, 0, 1, &out), -EBADMSG);
    assert_int_equal(fs_bucket_decode(empty, 6, 2, 4, &out), -EBADMSG);
    assert_int_equal(fs_bucket_decode(empty, 6, 62, 1ULL << 62, &out), -EBADMSG);
}

static void test_fs_bucket_encode_refuses_invalid(void **state)
{
    (void)state;
    char n0[32], n1[32];
    name_with_top_bit(n0, 0);
    name_with_top_bit(n1, 1);
    uint8_t buf[128];
    fs_bucket_t b;
    fs_bucket_init(&b, 0, 0);
    put_ok(&b, n0, 1);
    put_ok(&b, n1, 2);
    assert_true(fs_bucket_encode(&b, buf, sizeof buf) > 0);

    /* entries the bucket does not cover */
    b.depth = 1;
    b.prefix = 0;
    assert_int_equal(fs_bucket_encode(&b, buf, sizeof buf), 0);
    b.depth = 0;

    /* out of order */
    fs_dirent_t tmp = b.ents[0];
    b.ents[0] = b.ents[1];
    b.ents[1] = tmp;
    assert_int_equal(fs_bucket_encode(&b, buf, sizeof buf), 0);
    b.ents[1] = b.ents[0];
    b.ents[0] = tmp;

    /* a hash outside 62 bits */
    uint64_t h = b.ents[1].hash;
    b.ents[1].hash = UINT64_MAX;
    assert_int_equal(fs_bucket_encode(&b, buf, sizeof buf), 0);
    b.ents[1].hash = h;

    b.state = (fs_bucket_state_t)(FS_BUCKET_DEAD + 1);
    assert_int_equal(fs_bucket_encode(&b, buf, sizeof buf), 0);
    b.state = FS_BUCKET_DEAD; /* a removed directory's bucket holds no names */
    assert_int_equal(fs_bucket_encode(&b, buf, sizeof buf), 0);
    b.state = FS_BUCKET_NORMAL;
    assert_true(fs_bucket_encode(&b, buf, sizeof buf) > 0);
    fs_bucket_free(&b);
}

static void test_fs_bucket_decode_every_truncation_fails(void **state)
{
    (void)state;
    fs_bucket_t b;
    fs_bucket_init(&b, 0, 0);
    char name[32];
    for (int i = 0; i < 12; i++) {
        snprintf(name, sizeof name, "entry-%d", i);
        put_ok(&b, name, (uint64_t)i * 1000);
    }
    size_t len;
    uint8_t *buf = bucket_bytes(&b, &len);
    for (size_t n = 0; n < len; n++) {
        uint8_t *cut = malloc(n ? n : 1);
        memcpy(cut, buf, n);
        fs_bucket_t out;
        assert_int_equal(fs_bucket_decode(cut, n, 0, 0, &out), -EBADMSG);
        fs_bucket_free(&out);
        free(cut);
    }
    free(buf);
    fs_bucket_free(&b);
}

static void test_fs_bucket_decode_bit_flips_never_crash(void **state)
{
    (void)state;
    fs_bucket_t b;
    fs_bucket_init(&b, 0, 0);
    const char *names[] = {"a", "bb", "ccc", "README.md", "x.c"};
    for (size_t i = 0; i < 5; i++)
        put_ok(&b, names[i], i + 1);
    size_t len;
    uint8_t *buf = bucket_bytes(&b, &len);
    bucket_fuzz_bytes(buf, len, 0, 0);
    free(buf);

    uint8_t split[2] = {1, FS_BUCKET_SPLIT};
    bucket_fuzz_bytes(split, 2, 0, 0);
    b.state = FS_BUCKET_SPLITTING;
    buf = bucket_bytes(&b, &len);
    bucket_fuzz_bytes(buf, len, 0, 0);
    free(buf);
    fs_bucket_free(&b);
}

static void test_fs_bucket_decode_random_garbage(void **state)
{
    (void)state;
    rng_seed(0xbadc0de);
    uint8_t buf[128];
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = rng_below(sizeof buf + 1);
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)rng_next();
        /* Mostly plausible headers, so the entry parser gets exercised. */
        if (len > 6 && iter % 4) {
            buf[0] = 1;
            buf[1] = (uint8_t)(iter % 3);
            buf[2] = (uint8_t)rng_below(4);
            buf[3] = buf[4] = buf[5] = 0;
        }
        uint8_t *exact = malloc(len ? len : 1);
        memcpy(exact, buf, len);
        fs_bucket_t out;
        int rc = fs_bucket_decode(exact, len, 0, 0, &out);
        assert_true(rc == 0 || rc == -EBADMSG);
        if (rc == 0)
            assert_bucket_valid(&out);
        fs_bucket_free(&out);
        free(exact);
    }
}

static void check_split(const fs_bucket_t *b)
{
    fs_bucket_t l, r;
    assert_int_equal(fs_bucket_split(b, &l, &r), 0);
    assert_int_equal(l.depth, b->depth + 1);
    assert_int_equal(r.depth, b->depth + 1);
    assert_int_equal(l.prefix, b->prefix * 2);
    assert_int_equal(r.prefix, b->prefix * 2 + 1);
    assert_int_equal(l.state, FS_BUCKET_NORMAL);
    assert_int_equal(r.state, FS_BUCKET_NORMAL);
    assert_int_equal(l.count + r.count, b->count);
    unsigned shift = FS_HASH_BITS - (b->depth + 1);
    for (size_t i = 0; i < l.count; i++) {
        assert_int_equal((l.ents[i].hash >> shift) & 1, 0);
        assert_true(fs_bucket_covers(l.depth, l.prefix, l.ents[i].hash));
        assert_dirent_equal(&l.ents[i], &b->ents[i]);
    }
    for (size_t i = 0; i < r.count; i++) {
        assert_int_equal((r.ents[i].hash >> shift) & 1, 1);
        assert_true(fs_bucket_covers(r.depth, r.prefix, r.ents[i].hash));
        assert_dirent_equal(&r.ents[i], &b->ents[l.count + i]);
    }
    assert_bucket_valid(&l);
    assert_bucket_valid(&r);

    /* The children are ordinary buckets: they round-trip and take puts. */
    size_t len;
    uint8_t *buf = bucket_bytes(&l, &len);
    fs_bucket_t out;
    assert_int_equal(fs_bucket_decode(buf, len, l.depth, l.prefix, &out), 0);
    assert_bucket_equal(&l, &out);
    free(buf);
    fs_bucket_free(&out);
    fs_bucket_free(&l);
    fs_bucket_free(&r);
}

static void test_fs_bucket_split_by_next_bit(void **state)
{
    (void)state;
    rng_seed(99);
    char name[64];
    fs_bucket_t b;
    fs_bucket_init(&b, 0, 0);
    for (size_t i = 0; i < 3000; i++) {
        size_t n = rng_unique_name(name, i);
        assert_int_equal(fs_bucket_put(&b, name, n, i, 8), 0);
    }
    check_split(&b);

    fs_bucket_t l, r;
    assert_int_equal(fs_bucket_split(&b, &l, &r), 0);
    /* a fair hash splits roughly in half */
    assert_true(l.count > 1200 && r.count > 1200);
    check_split(&l);
    check_split(&r);
    fs_bucket_t rl, rr;
    assert_int_equal(fs_bucket_split(&r, &rl, &rr), 0);
    assert_int_equal(rl.prefix, 2);
    assert_int_equal(rr.prefix, 3);
    check_split(&rr);
    fs_bucket_free(&rl);
    fs_bucket_free(&rr);
    fs_bucket_free(&l);
    fs_bucket_free(&r);
    fs_bucket_free(&b);
}

static void test_fs_bucket_split_empty_and_max_depth(void **state)
{
    (void)state;
    fs_bucket_t b, l, r;
    fs_bucket_init(&b, 5, 17);
    check_split(&b);
    fs_bucket_init(&b, FS_HASH_BITS, 3);
    assert_int_equal(fs_bucket_split(&b, &l, &r), -ENOSPC);
    assert_int_equal(l.count, 0);
    assert_int_equal(r.count, 0);
    fs_bucket_free(&l);
    fs_bucket_free(&r);
}

static void test_fs_bucket_full_near_16k(void **state)
{
    (void)state;
    fs_bucket_t b;
    fs_bucket_init(&b, 0, 0);
    char name[32];
    size_t prev = fs_bucket_encoded_size(&b);
    assert_false(fs_bucket_full(&b));
    for (int i = 0;; i++) {
        snprintf(name, sizeof name, "photo-%05d.jpg", i);
        put_ok(&b, name, (uint64_t)i);
        size_t now = fs_bucket_encoded_size(&b);
        if (fs_bucket_full(&b)) {
            assert_true(prev <= FS_BUCKET_MAX);
            assert_true(now > FS_BUCKET_MAX);
            assert_true(now < FS_BUCKET_MAX + 10 + FS_NAME_MAX);
            break;
        }
        prev = now;
    }
    /* A full bucket still encodes (it is written as SPLITTING). */
    size_t len;
    b.state = FS_BUCKET_SPLITTING;
    free(bucket_bytes(&b, &len));
    assert_int_equal(fs_bucket_remove(&b, name, strlen(name)), 0);
    assert_false(fs_bucket_full(&b));
    fs_bucket_free(&b);
}

/* ---- readdir offsets ---- */

static void test_fs_off_helpers(void **state)
{
    (void)state;
    const uint64_t max = (1ULL << FS_HASH_BITS) - 1;
    assert_true(fs_off_from_hash(0) > FS_OFF_FIRST_ENTRY);
    assert_int_equal(fs_off_next_hash(fs_off_from_hash(0)), 1);
    assert_int_equal(fs_off_next_hash(fs_off_from_hash(12345)), 12346);
    /* right after "..", resume from the very first hash */
    assert_int_equal(fs_off_next_hash(FS_OFF_FIRST_ENTRY), 0);
    /* the largest offset still fits a signed off_t */
    assert_true(fs_off_from_hash(max) <= (uint64_t)INT64_MAX);
    assert_int_equal(fs_off_next_hash(fs_off_from_hash(max)), max + 1);
    assert_false(fs_bucket_covers(0, 0, fs_off_next_hash(fs_off_from_hash(max))));
}

static void test_fs_off_readdir_walk(void **state)
{
    (void)state;
    fs_bucket_t b;
    fs_bucket_init(&b, 0, 0);
    char name[32];
    for (int i = 0; i < 500; i++) {
        snprintf(name, sizeof name, "w%d", i);
        put_ok(&b, name, (uint64_t)i);
    }
    /* Page through with a few entries per call, resuming from the offset. */
    uint64_t off = FS_OFF_FIRST_ENTRY;
    size_t seen = 0;
    for (;;) {
        size_t at = fs_bucket_lower_bound(&b, fs_off_next_hash(off));
        if (at == b.count)
            break;
        for (size_t k = 0; k < 7 && at < b.count; k++, at++) {
            assert_int_equal(at, seen);
            seen++;
            off = fs_off_from_hash(b.ents[at].hash);
        }
    }
    assert_int_equal(seen, b.count);
    fs_bucket_free(&b);
}

/* ---- chunks ---- */

static void assert_span(fs_span_t s, uint64_t index, uint32_t offset, uint32_t len)
{
    assert_int_equal(s.index, index);
    assert_int_equal(s.offset, offset);
    assert_int_equal(s.len, len);
}

static void test_fs_chunk_span_boundaries(void **state)
{
    (void)state;
    const uint32_t cs = 4096;
    assert_span(fs_chunk_span(0, 1, cs), 0, 0, 1);
    assert_span(fs_chunk_span(0, cs, cs), 0, 0, cs);
    assert_span(fs_chunk_span(0, cs + 1, cs), 0, 0, cs);
    assert_span(fs_chunk_span(cs - 1, 1, cs), 0, cs - 1, 1);
    assert_span(fs_chunk_span(cs - 1, 10, cs), 0, cs - 1, 1);
    assert_span(fs_chunk_span(cs, 10, cs), 1, 0, 10);
    assert_span(fs_chunk_span(cs, cs, cs), 1, 0, cs);
    assert_span(fs_chunk_span(cs + 100, cs, cs), 1, 100, cs - 100);
    assert_span(fs_chunk_span(0, UINT64_MAX, cs), 0, 0, cs);
}

static void test_fs_chunk_span_beyond_4g(void **state)
{
    (void)state;
    const uint32_t cs = 4 * MiB;
    assert_span(fs_chunk_span(5 * GiB, 1, cs), 1280, 0, 1);
    assert_span(fs_chunk_span(5 * GiB + 7, 100, cs), 1280, 7, 100);
    assert_span(fs_chunk_span(5 * GiB + 7, 8 * MiB, cs), 1280, 7, cs - 7);
    assert_span(fs_chunk_span(4 * GiB - 1, 2, 4096), (4 * GiB) / 4096 - 1, 4095, 1);
    assert_span(fs_chunk_span(UINT64_MAX, 1, cs), UINT64_MAX / cs, cs - 1, 1);
    /* lengths above 4 GiB are clamped to the chunk, not truncated to 32 bits */
    assert_span(fs_chunk_span(0, 4 * GiB + 5, 4096), 0, 0, 4096);
    assert_span(fs_chunk_span(10, 4 * GiB + 5, cs), 0, 10, cs - 10);
}

static void test_fs_chunk_span_iteration(void **state)
{
    (void)state;
    rng_seed(5);
    for (uint32_t cs = 4096; cs <= 4 * MiB; cs *= 2) {
        for (int iter = 0; iter < 200; iter++) {
            uint64_t off = rng_next() % (8 * GiB);
            uint64_t len = 1 + rng_next() % (3ULL * cs + 5);
            uint64_t pos = off, left = len, prev_index = 0;
            bool first = true;
            while (left) {
                fs_span_t s = fs_chunk_span(pos, left, cs);
                assert_true(s.len > 0);
                assert_true((uint64_t)s.offset + s.len <= cs);
                assert_int_equal(s.index * cs + s.offset, pos);
                if (!first) {
                    assert_int_equal(s.index, prev_index + 1);
                    assert_int_equal(s.offset, 0);
                }
                first = false;
                prev_index = s.index;
                pos += s.len;
                left -= s.len;
            }
            assert_int_equal(pos, off + len);
        }
    }
}

static void test_fs_chunk_count(void **state)
{
    (void)state;
    const uint32_t cs = 4096;
    assert_int_equal(fs_chunk_count(0, cs), 0);
    assert_int_equal(fs_chunk_count(1, cs), 1);
    assert_int_equal(fs_chunk_count(cs - 1, cs), 1);
    assert_int_equal(fs_chunk_count(cs, cs), 1);
    assert_int_equal(fs_chunk_count(cs + 1, cs), 2);
    assert_int_equal(fs_chunk_count(5 * GiB, cs), 1310720);
    assert_int_equal(fs_chunk_count(5 * GiB + 1, 4 * MiB), 1281);
    assert_int_equal(fs_chunk_count(UINT64_MAX, cs), 1ULL << 52);
    assert_int_equal(fs_chunk_count(UINT64_MAX, 4 * MiB), 1ULL << 42);
}

static void test_fs_chunk_valid_len(void **state)
{
    (void)state;
    const uint32_t cs = 4096;
    assert_int_equal(fs_chunk_valid_len(0, 0, cs), 0);
    assert_int_equal(fs_chunk_valid_len(1, 0, cs), 1);
    assert_int_equal(fs_chunk_valid_len(cs, 0, cs), cs);
    assert_int_equal(fs_chunk_valid_len(cs, 1, cs), 0);
    assert_int_equal(fs_chunk_valid_len(cs + 1, 0, cs), cs);
    assert_int_equal(fs_chunk_valid_len(cs + 1, 1, cs), 1);
    assert_int_equal(fs_chunk_valid_len(cs + 1, 2, cs), 0);
    assert_int_equal(fs_chunk_valid_len(5 * GiB + 100, 1280, 4 * MiB), 100);
    assert_int_equal(fs_chunk_valid_len(5 * GiB + 100, 1279, 4 * MiB), 4 * MiB);
    assert_int_equal(fs_chunk_valid_len(5 * GiB + 100, 1281, 4 * MiB), 0);
    /* index * chunk_size would wrap here */
    assert_int_equal(fs_chunk_valid_len(5 * GiB, UINT64_MAX, cs), 0);
    assert_int_equal(fs_chunk_valid_len(5 * GiB, 1ULL << 53, cs), 0);
    assert_int_equal(fs_chunk_valid_len(UINT64_MAX, (1ULL << 52) - 1, cs), cs - 1);

    rng_seed(11);
    for (uint32_t c = 4096; c <= 4 * MiB; c *= 2) {
        uint64_t size = rng_next() % (20ULL * c);
        uint64_t sum = 0;
        for (uint64_t i = 0; i <= fs_chunk_count(size, c); i++)
            sum += fs_chunk_valid_len(size, i, c);
        assert_int_equal(sum, size);
    }
}

typedef struct {
    uint64_t first, end, partial;
    uint32_t keep;
    bool rewrite;
} plan_t;

static plan_t plan(uint64_t old_size, uint64_t new_size, uint32_t cs)
{
    plan_t p;
    p.rewrite =
        fs_chunk_truncate_plan(old_size, new_size, cs, &p.first, &p.end, &p.partial, &p.keep);
    assert_true(p.first <= p.end);
    assert_true(p.rewrite == (p.keep != 0));
    return p;
}

static void test_fs_chunk_truncate_to_zero(void **state)
{
    (void)state;
    plan_t p = plan(10000, 0, 4096);
    assert_int_equal(p.first, 0);
    assert_int_equal(p.end, 3);
    assert_false(p.rewrite);
    assert_int_equal(p.keep, 0);
    p = plan(0, 0, 4096);
    assert_int_equal(p.first, 0);
    assert_int_equal(p.end, 0);
    assert_false(p.rewrite);
}

static void test_fs_chunk_truncate_mid_chunk(void **state)
{
    (void)state;
    plan_t p = plan(10000, 5000, 4096);
    assert_int_equal(p.first, 2);
    assert_int_equal(p.end, 3);
    assert_true(p.rewrite);
    assert_int_equal(p.partial, 1);
    assert_int_equal(p.keep, 5000 - 4096);
    /* inside the last chunk: nothing dies, the tail is cut */
    p = plan(10000, 9000, 4096);
    assert_int_equal(p.first, 3);
    assert_int_equal(p.end, 3);
    assert_true(p.rewrite);
    assert_int_equal(p.partial, 2);
    assert_int_equal(p.keep, 9000 - 8192);
    p = plan(4096, 1, 4096);
    assert_int_equal(p.first, 1);
    assert_int_equal(p.end, 1);
    assert_int_equal(p.partial, 0);
    assert_int_equal(p.keep, 1);
}

static void test_fs_chunk_truncate_exact_boundary(void **state)
{
    (void)state;
    plan_t p = plan(10000, 8192, 4096);
    assert_int_equal(p.first, 2);
    assert_int_equal(p.end, 3);
    assert_false(p.rewrite);
    assert_int_equal(p.keep, 0);
    p = plan(3 * 4 * MiB, 4 * MiB, 4 * MiB);
    assert_int_equal(p.first, 1);
    assert_int_equal(p.end, 3);
    assert_false(p.rewrite);
}

static void test_fs_chunk_truncate_grow_or_same(void **state)
{
    (void)state;
    const uint64_t sizes[][2] = {{10000, 10000}, {100, 200},   {100, 10000},
                                 {0, 5 * GiB},   {8192, 8192}, {1, 4096}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        plan_t p = plan(sizes[i][0], sizes[i][1], 4096);
        assert_int_equal(p.first, p.end);
        assert_false(p.rewrite);
        assert_int_equal(p.keep, 0);
    }
}

static void test_fs_chunk_truncate_beyond_4g(void **state)
{
    (void)state;
    const uint32_t cs = 4 * MiB;
    plan_t p = plan(6 * GiB + 1, 5 * GiB + 5, cs);
    assert_int_equal(p.first, 1281);
    assert_int_equal(p.end, 1537);
    assert_true(p.rewrite);
    assert_int_equal(p.partial, 1280);
    assert_int_equal(p.keep, 5);
    p = plan(6 * GiB, 4 * GiB, cs);
    assert_int_equal(p.first, 1024);
    assert_int_equal(p.end, 1536);
    assert_false(p.rewrite);
    p = plan(UINT64_MAX, 4 * GiB + 1, 4096);
    assert_int_equal(p.first, (4 * GiB) / 4096 + 1);
    assert_int_equal(p.end, 1ULL << 52);
    assert_int_equal(p.partial, (4 * GiB) / 4096);
    assert_int_equal(p.keep, 1);
}

/* The plan agrees with valid_len: what shrinks is either dropped or cut. */
static void test_fs_chunk_truncate_matches_valid_len(void **state)
{
    (void)state;
    rng_seed(2024);
    for (uint32_t cs = 4096; cs <= 4 * MiB; cs *= 2) {
        for (int iter = 0; iter < 300; iter++) {
            uint64_t old_size = rng_next() % (40ULL * cs);
            uint64_t new_size = iter % 5 ? rng_next() % (old_size + 1) : old_size + iter;
            if (iter % 7 == 0)
                new_size -= new_size % cs;
            plan_t p = plan(old_size, new_size, cs);
            uint64_t n_old = fs_chunk_count(old_size, cs);
            for (uint64_t i = 0; i < n_old; i++) {
                uint32_t was = fs_chunk_valid_len(old_size, i, cs);
                uint32_t now = fs_chunk_valid_len(new_size, i, cs);
                bool dead = i >= p.first && i < p.end;
                bool cut = p.rewrite && i == p.partial;
                if (dead)
                    assert_int_equal(now, 0);
                if (cut) {
                    assert_int_equal(now, p.keep);
                    assert_true(p.keep < was);
                }
                if (now < was)
                    assert_true(dead || cut);
                else
                    assert_false(dead || cut);
            }
        }
    }
}

/* Small files keep their bytes in the record; the decoder holds the limits the writer keeps. */
static void test_fs_inode_inline_data(void **state)
{
    (void)state;
    fs_inode_t in, out;
    fill_inode(&in);
    uint8_t data[FS_INLINE_MAX + 1];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 7);
    in.size = 100;
    in.data = data;
    in.data_len = 100;
    uint8_t buf[4 * FS_INLINE_MAX];
    size_t len = fs_inode_encode(&in, buf, sizeof buf);
    assert_true(len > 100);
    assert_int_equal(fs_inode_decode(buf, len, &out), 0);
    assert_inode_equal(&in, &out);
    fs_inode_t copy;
    assert_int_equal(fs_inode_copy(&copy, &out), 0);
    assert_inode_equal(&in, &copy);
    fs_inode_free(&copy);
    fs_inode_free(&out);

    in.size = 99; /* more data than the file is long */
    assert_int_equal(fs_inode_encode(&in, buf, sizeof buf), 0);
    in.size = 5 * GiB; /* inline data and a long hole after it */
    assert_true(fs_inode_encode(&in, buf, sizeof buf) > 0);
    in.flags = 0; /* data without the inline flag */
    assert_int_equal(fs_inode_encode(&in, buf, sizeof buf), 0);
    in.flags = FS_INODE_INLINE;
    in.data_len = FS_INLINE_MAX + 1;
    assert_int_equal(fs_inode_encode(&in, buf, sizeof buf), 0);
    in.data_len = FS_INLINE_MAX;
    len = fs_inode_encode(&in, buf, sizeof buf);
    assert_true(len > FS_INLINE_MAX);
    /* The same record with the flag bit cleared by hand must be refused. */
    in.flags = 0;
    in.data_len = 0;
    size_t plain = fs_inode_encoded_size(&in);
    (void)plain;
    for (size_t cut = 0; cut < len; cut += 97)
        assert_int_not_equal(fs_inode_decode(buf, cut, &out), 0);
}

/* A removed directory's buckets are DEAD: empty, and encoded and decoded as such. */
static void test_fs_bucket_dead_state(void **state)
{
    (void)state;
    fs_bucket_t b, out;
    fs_bucket_init(&b, 3, 5);
    b.state = FS_BUCKET_DEAD;
    uint8_t buf[64];
    size_t len = fs_bucket_encode(&b, buf, sizeof buf);
    assert_true(len > 0);
    assert_int_equal(fs_bucket_decode(buf, len, 3, 5, &out), 0);
    assert_int_equal(out.state, FS_BUCKET_DEAD);
    assert_int_equal(out.count, 0);
    fs_bucket_free(&out);
    buf[1] = FS_BUCKET_DEAD + 1;
    assert_int_not_equal(fs_bucket_decode(buf, len, 3, 5, &out), 0);
    fs_bucket_free(&b);
}

/* ---- chunk index ---- */

#define MODEL_N 3000

/* The set must be canonical and hold exactly the model's chunks. */
static void assert_ext_matches(const fs_extents_t *e, const bool *model)
{
    for (uint32_t k = 0; k < e->count; k++) {
        assert_true(e->v[k].start < e->v[k].end);
        if (k > 0)
            assert_true(e->v[k].start > e->v[k - 1].end); /* neither overlapping nor touching */
    }
    uint64_t total = 0;
    for (uint64_t i = 0; i < MODEL_N; i++) {
        assert_int_equal(fs_extents_has(e, i), model[i]);
        total += model[i];
        assert_int_equal(fs_extents_total(e, i + 1), total);
        uint64_t run = 0;
        while (run < i && model[i - 1 - run])
            run++;
        assert_int_equal(fs_extents_run_to(e, i), run);
    }
    assert_int_equal(fs_extents_total(e, UINT64_MAX), total);
}

static void test_fs_extents_add_merges(void **state)
{
    (void)state;
    fs_extents_t e = {0};
    assert_int_equal(fs_extents_add(&e, 10, 20), 0);
    assert_int_equal(fs_extents_add(&e, 30, 40), 0);
    assert_int_equal(e.count, 2);
    assert_int_equal(fs_extents_add(&e, 20, 30), 0); /* touches both: one extent */
    assert_int_equal(e.count, 1);
    assert_int_equal(e.v[0].start, 10);
    assert_int_equal(e.v[0].end, 40);
    assert_int_equal(fs_extents_add(&e, 0, 5), 0);
    assert_int_equal(fs_extents_add(&e, 50, 60), 0);
    assert_int_equal(fs_extents_add(&e, 12, 15), 0); /* inside: nothing changes */
    assert_int_equal(e.count, 3);
    assert_int_equal(fs_extents_add(&e, 3, 55), 0); /* swallows everything */
    assert_int_equal(e.count, 1);
    assert_int_equal(e.v[0].start, 0);
    assert_int_equal(e.v[0].end, 60);
    assert_true(fs_extents_covers(&e, 0, 60));
    assert_false(fs_extents_covers(&e, 59, 61));
    assert_true(fs_extents_covers(&e, 7, 7));
    fs_extents_truncate(&e, 25);
    assert_int_equal(e.count, 1);
    assert_int_equal(e.v[0].end, 25);
    fs_extents_truncate(&e, 0);
    assert_int_equal(e.count, 0);
    assert_false(fs_extents_has(&e, 0));
    assert_int_equal(fs_extents_add(&e, UINT64_MAX - 1, UINT64_MAX), 0);
    assert_true(fs_extents_has(&e, UINT64_MAX - 1));
    fs_extents_t c;
    assert_int_equal(fs_extents_copy(&c, &e), 0);
    assert_int_equal(c.count, 1);
    fs_extents_free(&e);
    fs_extents_free(&c);
    assert_null(c.v);
}

/* Random adds, unions and truncations against a bitmap. */
static void test_fs_extents_random_against_model(void **state)
{
    (void)state;
    static bool model[MODEL_N];
    rng_seed(0xe47e);
    for (int round = 0; round < 30; round++) {
        memset(model, 0, sizeof model);
        fs_extents_t e = {0};
        for (int op = 0; op < 60; op++) {
            size_t what = rng_below(10);
            if (what < 7) {
                uint64_t a = rng_below(MODEL_N - 1);
                uint64_t len = 1 + rng_below(what < 5 ? 4 : 200);
                if (a + len > MODEL_N)
                    len = MODEL_N - a;
                assert_int_equal(fs_extents_add(&e, a, a + len), 0);
                for (uint64_t i = a; i < a + len; i++)
                    model[i] = true;
            } else if (what < 9) {
                fs_extents_t o = {0};
                uint64_t a = rng_below(MODEL_N - 10);
                assert_int_equal(fs_extents_add(&o, a, a + 3), 0);
                assert_int_equal(fs_extents_add(&o, a + 5, a + 9), 0);
                assert_int_equal(fs_extents_union(&e, &o), 0);
                for (uint64_t i = a; i < a + 9; i++)
                    model[i] = model[i] || i < a + 3 || i >= a + 5;
                fs_extents_free(&o);
            } else {
                uint64_t t = rng_below(MODEL_N + 1);
                fs_extents_truncate(&e, t);
                for (uint64_t i = t; i < MODEL_N; i++)
                    model[i] = false;
            }
            assert_ext_matches(&e, model);
        }
        fs_extents_free(&e);
    }
}

/* Past FS_EXTENTS_MAX the closest runs are joined: still a superset, still bounded. */
static void test_fs_extents_bound_joins_closest(void **state)
{
    (void)state;
    fs_extents_t e = {0};
    /* Runs 1 000 chunks apart, except one pair only 3 apart. */
    for (uint64_t k = 0; k < FS_EXTENTS_MAX; k++)
        assert_int_equal(fs_extents_add(&e, k * 1000, k * 1000 + 1), 0);
    assert_int_equal(e.count, FS_EXTENTS_MAX);
    assert_int_equal(fs_extents_add(&e, 7000 + 4, 7000 + 5), 0);
    assert_int_equal(e.count, FS_EXTENTS_MAX);
    assert_true(fs_extents_covers(&e, 7000, 7005)); /* the 3-chunk gap joined */
    assert_int_equal(fs_extents_total(&e, UINT64_MAX), FS_EXTENTS_MAX + 4);
    /* Many more scattered chunks: bounded, and every one still listed. */
    rng_seed(77);
    uint64_t added[2000];
    for (int i = 0; i < 2000; i++) {
        added[i] = rng_next() >> 12;
        assert_int_equal(fs_extents_add(&e, added[i], added[i] + 1), 0);
        assert_true(e.count <= FS_EXTENTS_MAX);
    }
    for (int i = 0; i < 2000; i++)
        assert_true(fs_extents_has(&e, added[i]));
    for (uint64_t k = 0; k < FS_EXTENTS_MAX; k++)
        assert_true(fs_extents_has(&e, k * 1000));
    /* The record stays small enough to encode. */
    fs_inode_t in, out;
    fill_inode(&in);
    in.ext = e;
    size_t len;
    uint8_t *buf = inode_roundtrip(&in, &len);
    assert_true(len < 16 * 1024);
    assert_int_equal(fs_inode_decode(buf, len, &out), 0);
    assert_int_equal(out.ext.count, e.count);
    fs_inode_free(&out);
    free(buf);
    fs_inode_free(&in);
}

static void test_fs_inode_roundtrip_index(void **state)
{
    (void)state;
    fs_inode_t in;
    fill_inode(&in);
    in.flags = 0;
    size_t len;
    free(inode_roundtrip(&in, &len)); /* empty index */
    size_t empty = len;
    fill_ext(&in);
    free(inode_roundtrip(&in, &len));
    /* Varints: a dense file costs a few bytes, the huge extents at most 20 each. */
    assert_true(len - empty <= 4 * 20);
    fs_inode_free(&in);
}

/* A record of the format before the index: read, marked unknown, never written back as is. */
static void test_fs_inode_decode_format1(void **state)
{
    (void)state;
    static uint8_t raw[512];
    fs_inode_t out;
    bld_t b = {raw, 0};
    bld_le(&b, 1, 1);           /* format 1 */
    bld_le(&b, 77, 8);          /* ino */
    bld_le(&b, 0100644, 4);     /* mode */
    for (int i = 0; i < 4; i++) /* uid gid nlink flags */
        bld_le(&b, i == 2 ? 1 : 0, 4);
    bld_le(&b, 5 * GiB, 8); /* size */
    bld_le(&b, 0, 8);       /* rdev */
    bld_le(&b, 0, 8);       /* parent */
    bld_le(&b, 12345, 8);   /* chunk count estimate */
    for (int i = 0; i < 3; i++)
        bld_le(&b, 1700000000 + i, 8);
    for (int i = 0; i < 3; i++)
        bld_le(&b, 0, 4);
    bld_le(&b, 0, 2); /* no target */
    bld_le(&b, 0, 4); /* no xattrs */
    bld_le(&b, 0, 4); /* no inline data */
    assert_int_equal(fs_inode_decode(raw, b.n, &out), 0);
    assert_true(out.ext_unknown);
    assert_int_equal(out.ext.count, 0);
    assert_int_equal(out.ino, 77);
    assert_int_equal(out.size, 5 * GiB);
    assert_int_equal(out.nlink, 1);
    assert_int_equal(out.mtime_s, 1700000001);
    uint8_t re[512];
    assert_int_equal(fs_inode_encode(&out, re, sizeof re), 0); /* unknown is never stored */
    out.ext_unknown = false;
    size_t n = fs_inode_encode(&out, re, sizeof re);
    assert_int_equal(n, b.n - 8 + 1); /* no estimate, one byte of empty index */
    assert_int_equal(re[0], 2);
    fs_inode_free(&out);
    /* Format 1 had nothing after the data: an index there is garbage. */
    bld_le(&b, 0, 1);
    assert_int_equal(fs_inode_decode(raw, b.n, &out), -EBADMSG);
    for (size_t cut = 0; cut + 1 < b.n; cut++)
        assert_int_equal(fs_inode_decode(raw, cut, &out), -EBADMSG);
}

/* Hand-made index bytes at the end of an otherwise valid record. */
static int decode_with_index(const uint8_t *idx, size_t idx_len, fs_inode_t *out)
{
    fs_inode_t in;
    fill_inode(&in);
    in.flags = 0;
    /* Room for the record and the longest index a test hands in (beyond the 1 KiB encoded). */
    static uint8_t buf[4096];
    size_t n = fs_inode_encode(&in, buf, 1024);
    assert_true(n > 0);
    assert_int_equal(buf[n - 1], 0); /* the empty index */
    assert_true(n - 1 + idx_len <= sizeof buf);
    memcpy(buf + n - 1, idx, idx_len);
    uint8_t *exact = malloc(n - 1 + idx_len);
    memcpy(exact, buf, n - 1 + idx_len);
    int rc = fs_inode_decode(exact, n - 1 + idx_len, out);
    free(exact);
    return rc;
}

static void test_fs_inode_decode_rejects_bad_index(void **state)
{
    (void)state;
    fs_inode_t out;
    const uint8_t ok[] = {2, 5, 3, 1, 1}; /* [5, 8) [9, 10) */
    assert_int_equal(decode_with_index(ok, sizeof ok, &out), 0);
    assert_int_equal(out.ext.count, 2);
    assert_int_equal(out.ext.v[1].start, 9);
    fs_inode_free(&out);
    const uint8_t adjacent[] = {2, 5, 3, 0, 1};
    assert_int_equal(decode_with_index(adjacent, sizeof adjacent, &out), -EBADMSG);
    const uint8_t empty_ext[] = {1, 5, 0};
    assert_int_equal(decode_with_index(empty_ext, sizeof empty_ext, &out), -EBADMSG);
    const uint8_t overlong[] = {1, 0x85, 0x00, 3};
    assert_int_equal(decode_with_index(overlong, sizeof overlong, &out), -EBADMSG);
    const uint8_t overlong_count[] = {0x80, 0x00};
    assert_int_equal(decode_with_index(overlong_count, sizeof overlong_count, &out), -EBADMSG);
    const uint8_t count_past_bytes[] = {3, 5, 3, 1, 1};
    assert_int_equal(decode_with_index(count_past_bytes, sizeof count_past_bytes, &out), -EBADMSG);
    /* start 2^64 - 1, length 1: the end would wrap */
    const uint8_t wraps[] = {1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 1};
    assert_int_equal(decode_with_index(wraps, sizeof wraps, &out), -EBADMSG);
    /* start 2^64 - 2, length 1: fits */
    const uint8_t fits[] = {1, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 1};
    assert_int_equal(decode_with_index(fits, sizeof fits, &out), 0);
    assert_true(out.ext.v[0].end == UINT64_MAX);
    fs_inode_free(&out);
    /* a varint past 64 bits */
    const uint8_t too_big[] = {1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 1};
    assert_int_equal(decode_with_index(too_big, sizeof too_big, &out), -EBADMSG);
    /* more extents than a record may hold */
    static uint8_t many[2 + 2 * (FS_EXTENTS_MAX + 1)];
    size_t m = 0;
    many[m++] = (uint8_t)(0x80 | ((FS_EXTENTS_MAX + 1) & 0x7f));
    many[m++] = (uint8_t)((FS_EXTENTS_MAX + 1) >> 7);
    for (int i = 0; i <= FS_EXTENTS_MAX; i++) {
        many[m++] = 1;
        many[m++] = 1;
    }
    assert_int_equal(decode_with_index(many, m, &out), -EBADMSG);
    many[0] = (uint8_t)(0x80 | (FS_EXTENTS_MAX & 0x7f));
    many[1] = (uint8_t)(FS_EXTENTS_MAX >> 7);
    assert_int_equal(decode_with_index(many, m - 2, &out), 0);
    assert_int_equal(out.ext.count, FS_EXTENTS_MAX);
    fs_inode_free(&out);
}

static void test_fs_inode_encode_refuses_bad_index(void **state)
{
    (void)state;
    fs_inode_t in;
    fill_inode(&in);
    uint8_t buf[1024];
    fs_extent_t v[2] = {{10, 20}, {20, 30}};
    in.ext.v = v;
    in.ext.count = 2;
    assert_int_equal(fs_inode_encode(&in, buf, sizeof buf), 0); /* touching */
    v[1] = (fs_extent_t){5, 8};
    assert_int_equal(fs_inode_encode(&in, buf, sizeof buf), 0); /* unsorted */
    v[1] = (fs_extent_t){25, 25};
    assert_int_equal(fs_inode_encode(&in, buf, sizeof buf), 0); /* empty */
    v[1] = (fs_extent_t){25, 26};
    assert_true(fs_inode_encode(&in, buf, sizeof buf) > 0);
    in.ext.v = NULL;
    assert_int_equal(fs_inode_encode(&in, buf, sizeof buf), 0); /* count without extents */
    in.ext.count = 0;
    fs_inode_free(&in);
}

/* ---- change stamps ---- */

static void test_fs_stamps_round_trip_and_bare_records(void **state)
{
    (void)state;
    fs_stamps_t s = {0}, got;
    size_t body = 99;
    uint8_t bare[] = {1, 2, 3};
    /* A format-1 value has no envelope: read as is. */
    assert_int_equal(fs_stamps_decode(bare, sizeof(bare), &got, &body), 0);
    assert_int_equal(got.count, 0);
    assert_int_equal(body, 0);
    assert_int_equal(fs_stamps_encoded_size(&s), 0);
    for (uint64_t t = 1; t <= FS_STAMPS_MAX + 3; t++)
        fs_stamps_push(&s, t * 0x1111);
    assert_int_equal(s.count, FS_STAMPS_MAX);
    assert_true(fs_stamps_has(&s, (FS_STAMPS_MAX + 3) * 0x1111));
    assert_false(fs_stamps_has(&s, 3 * 0x1111)); /* the oldest fell off */
    uint8_t buf[2 + 8 * FS_STAMPS_MAX + 3];
    size_t head = fs_stamps_encode(&s, buf, sizeof(buf));
    assert_int_equal(head, fs_stamps_encoded_size(&s));
    memcpy(buf + head, bare, sizeof(bare));
    assert_int_equal(fs_stamps_decode(buf, head + sizeof(bare), &got, &body), 0);
    assert_int_equal(body, head);
    assert_memory_equal(got.tok, s.tok, sizeof(s.tok));
    /* Every truncation into the envelope or to an empty body is refused. */
    for (size_t cut = 1; cut <= head; cut++)
        assert_int_equal(fs_stamps_decode(buf, cut, &got, &body), -EBADMSG);
    /* A zero token, a zero or too large count, a nested envelope: refused. */
    uint8_t bad[2 + 8 + 1] = {FS_STAMP_FORMAT, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    assert_int_equal(fs_stamps_decode(bad, sizeof(bad), &got, &body), -EBADMSG);
    bad[2] = 5;
    assert_int_equal(fs_stamps_decode(bad, sizeof(bad), &got, &body), 0);
    bad[10] = FS_STAMP_FORMAT;
    assert_int_equal(fs_stamps_decode(bad, sizeof(bad), &got, &body), -EBADMSG);
    bad[10] = 1;
    bad[1] = 0;
    assert_int_equal(fs_stamps_decode(bad, sizeof(bad), &got, &body), -EBADMSG);
    bad[1] = FS_STAMPS_MAX + 1;
    assert_int_equal(fs_stamps_decode(bad, sizeof(bad), &got, &body), -EBADMSG);
}

/* ---- hole punching and SEEK_DATA / SEEK_HOLE ---- */

static void ext_set(fs_extents_t *e, const uint64_t (*v)[2], size_t n)
{
    fs_extents_free(e);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(fs_extents_add(e, v[i][0], v[i][1]), 0);
}

static void assert_ext(const fs_extents_t *e, const uint64_t (*v)[2], size_t n)
{
    assert_int_equal(e->count, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(e->v[i].start, v[i][0]);
        assert_int_equal(e->v[i].end, v[i][1]);
    }
}

static void test_fs_extents_remove_cases(void **state)
{
    (void)state;
    fs_extents_t e = {0};
    const uint64_t base[][2] = {{0, 10}, {20, 30}, {40, 50}};
    /* strictly inside one extent: it splits */
    ext_set(&e, base, 3);
    assert_int_equal(fs_extents_remove(&e, 3, 5), 0);
    const uint64_t split[][2] = {{0, 3}, {5, 10}, {20, 30}, {40, 50}};
    assert_ext(&e, split, 4);
    /* across extents: the ends are cut, the middle one vanishes */
    ext_set(&e, base, 3);
    assert_int_equal(fs_extents_remove(&e, 5, 45), 0);
    const uint64_t cut[][2] = {{0, 5}, {45, 50}};
    assert_ext(&e, cut, 2);
    /* exactly one extent */
    ext_set(&e, base, 3);
    assert_int_equal(fs_extents_remove(&e, 20, 30), 0);
    const uint64_t gone[][2] = {{0, 10}, {40, 50}};
    assert_ext(&e, gone, 2);
    /* a hole: nothing changes */
    ext_set(&e, base, 3);
    assert_int_equal(fs_extents_remove(&e, 10, 20), 0);
    assert_ext(&e, base, 3);
    /* past everything, and everything */
    assert_int_equal(fs_extents_remove(&e, 60, 70), 0);
    assert_ext(&e, base, 3);
    assert_int_equal(fs_extents_remove(&e, 0, UINT64_MAX), 0);
    assert_int_equal(e.count, 0);
    /* a prefix and a suffix of one extent */
    ext_set(&e, base, 3);
    assert_int_equal(fs_extents_remove(&e, 0, 2), 0);
    assert_int_equal(fs_extents_remove(&e, 48, 100), 0);
    const uint64_t ends[][2] = {{2, 10}, {20, 30}, {40, 48}};
    assert_ext(&e, ends, 3);
    assert_int_equal(fs_extents_total(&e, UINT64_MAX), 8 + 10 + 8);
    fs_extents_free(&e);
}

static void test_fs_chunk_punch_plan_cases(void **state)
{
    (void)state;
    uint64_t a, b;
    const uint32_t cs = 1024;
    /* aligned: exactly the chunks of the range */
    fs_chunk_punch_plan(1024, 4096, 100000, cs, &a, &b);
    assert_int_equal(a, 1);
    assert_int_equal(b, 5);
    /* unaligned edges are not whole */
    fs_chunk_punch_plan(1000, 3100, 100000, cs, &a, &b);
    assert_int_equal(a, 1);
    assert_int_equal(b, 4);
    /* inside one chunk: none whole */
    fs_chunk_punch_plan(10, 100, 100000, cs, &a, &b);
    assert_int_equal(a, b);
    /* the last, short chunk is whole when the range reaches the end of the file */
    fs_chunk_punch_plan(2048, 1 << 20, 2500, cs, &a, &b);
    assert_int_equal(a, 2);
    assert_int_equal(b, 3);
    fs_chunk_punch_plan(0, 2500, 2500, cs, &a, &b);
    assert_int_equal(a, 0);
    assert_int_equal(b, 3);
    /* ... but not when it stops short of it */
    fs_chunk_punch_plan(2048, 400, 2500, cs, &a, &b);
    assert_int_equal(a, b);
    /* past the end, empty, and a length that would wrap */
    fs_chunk_punch_plan(5000, 10, 2500, cs, &a, &b);
    assert_int_equal(a, b);
    fs_chunk_punch_plan(0, 0, 2500, cs, &a, &b);
    assert_int_equal(a, b);
    fs_chunk_punch_plan(1024, UINT64_MAX, 1ull << 40, cs, &a, &b);
    assert_int_equal(a, 1);
    assert_int_equal(b, (1ull << 40) / cs);
}

static void test_fs_chunk_seek_cases(void **state)
{
    (void)state;
    const uint32_t cs = 1024;
    fs_extents_t e = {0};
    /* data in chunks [2, 4) and [6, 7) and a reservation at [20, 30); size 7.5 chunks */
    const uint64_t v[][2] = {{2, 4}, {6, 7}, {20, 30}};
    ext_set(&e, v, 3);
    uint64_t size = 7 * cs + 512, out;
    assert_int_equal(fs_chunk_seek(&e, size, cs, 0, true, &out), 0);
    assert_int_equal(out, 2 * cs);
    assert_int_equal(fs_chunk_seek(&e, size, cs, 0, false, &out), 0);
    assert_int_equal(out, 0);
    assert_int_equal(fs_chunk_seek(&e, size, cs, 2 * cs + 7, true, &out), 0);
    assert_int_equal(out, 2 * cs + 7);
    assert_int_equal(fs_chunk_seek(&e, size, cs, 2 * cs + 7, false, &out), 0);
    assert_int_equal(out, 4 * cs);
    assert_int_equal(fs_chunk_seek(&e, size, cs, 4 * cs, true, &out), 0);
    assert_int_equal(out, 6 * cs);
    /* the chunk at 7 holds no data: from there only the end is left */
    assert_int_equal(fs_chunk_seek(&e, size, cs, 7 * cs, true, &out), -ENXIO);
    assert_int_equal(fs_chunk_seek(&e, size, cs, 7 * cs, false, &out), 0);
    assert_int_equal(out, 7 * cs);
    assert_int_equal(fs_chunk_seek(&e, size, cs, 6 * cs + 1, false, &out), 0);
    assert_int_equal(out, 6 * cs + 1024);
    /* at and past the end */
    assert_int_equal(fs_chunk_seek(&e, size, cs, size, true, &out), -ENXIO);
    assert_int_equal(fs_chunk_seek(&e, size, cs, size, false, &out), -ENXIO);
    /* a listed chunk at the end: its hole is the end of the file, not the chunk's end */
    const uint64_t w[][2] = {{0, 8}};
    ext_set(&e, w, 1);
    assert_int_equal(fs_chunk_seek(&e, size, cs, 100, false, &out), 0);
    assert_int_equal(out, size);
    /* a reservation past the end is no data */
    const uint64_t r[][2] = {{9, 12}};
    ext_set(&e, r, 1);
    assert_int_equal(fs_chunk_seek(&e, size, cs, 0, true, &out), -ENXIO);
    /* the empty set: all hole */
    fs_extents_free(&e);
    assert_int_equal(fs_chunk_seek(&e, size, cs, 5, true, &out), -ENXIO);
    assert_int_equal(fs_chunk_seek(&e, size, cs, 5, false, &out), 0);
    assert_int_equal(out, 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fs_key_formats),
        cmocka_unit_test(test_fs_inode_inline_data),
        cmocka_unit_test(test_fs_bucket_dead_state),
        cmocka_unit_test(test_fs_stamps_round_trip_and_bare_records),
        cmocka_unit_test(test_fs_key_hex_lowercase_no_leading_zeros),
        cmocka_unit_test(test_fs_key_longest_volume_fits),
        cmocka_unit_test(test_fs_key_bad_volume_is_empty),
        cmocka_unit_test(test_fs_volume_name_ok_accepts),
        cmocka_unit_test(test_fs_volume_name_ok_rejects),
        cmocka_unit_test(test_fs_super_roundtrip_all_sizes),
        cmocka_unit_test(test_fs_super_decode_rejects_bad_chunk_size),
        cmocka_unit_test(test_fs_super_decode_rejects_framing),
        cmocka_unit_test(test_fs_inode_roundtrip_plain),
        cmocka_unit_test(test_fs_inode_roundtrip_zero),
        cmocka_unit_test(test_fs_inode_roundtrip_symlink),
        cmocka_unit_test(test_fs_inode_symlink_max_length),
        cmocka_unit_test(test_fs_inode_empty_target_is_none),
        cmocka_unit_test(test_fs_inode_roundtrip_xattrs),
        cmocka_unit_test(test_fs_inode_decode_every_truncation_fails),
        cmocka_unit_test(test_fs_inode_decode_trailing_garbage),
        cmocka_unit_test(test_fs_inode_decode_bit_flips_never_crash),
        cmocka_unit_test(test_fs_inode_decode_random_garbage),
        cmocka_unit_test(test_fs_inode_decode_rejects_format),
        cmocka_unit_test(test_fs_inode_decode_rejects_bad_target),
        cmocka_unit_test(test_fs_inode_decode_rejects_bad_xattrs),
        cmocka_unit_test(test_fs_inode_decode_rejects_xattr_total),
        cmocka_unit_test(test_fs_inode_encode_cap),
        cmocka_unit_test(test_fs_inode_encode_refuses_unsorted_xattrs),
        cmocka_unit_test(test_fs_extents_add_merges),
        cmocka_unit_test(test_fs_extents_random_against_model),
        cmocka_unit_test(test_fs_extents_bound_joins_closest),
        cmocka_unit_test(test_fs_inode_roundtrip_index),
        cmocka_unit_test(test_fs_inode_decode_format1),
        cmocka_unit_test(test_fs_inode_decode_rejects_bad_index),
        cmocka_unit_test(test_fs_inode_encode_refuses_bad_index),
        cmocka_unit_test(test_fs_inode_copy_is_deep),
        cmocka_unit_test(test_fs_inode_copy_plain),
        cmocka_unit_test(test_fs_inode_free_zeroes),
        cmocka_unit_test(test_fs_xattr_set_find),
        cmocka_unit_test(test_fs_xattr_set_replaces),
        cmocka_unit_test(test_fs_xattr_sorted_canonical),
        cmocka_unit_test(test_fs_xattr_remove),
        cmocka_unit_test(test_fs_xattr_list),
        cmocka_unit_test(test_fs_xattr_enospc_limit),
        cmocka_unit_test(test_fs_xattr_name_length),
        cmocka_unit_test(test_fs_name_hash_known_values),
        cmocka_unit_test(test_fs_name_hash_62_bits),
        cmocka_unit_test(test_fs_hash_prefix_math),
        cmocka_unit_test(test_fs_bucket_covers_edges),
        cmocka_unit_test(test_fs_bucket_init_free),
        cmocka_unit_test(test_fs_bucket_put_find),
        cmocka_unit_test(test_fs_bucket_scan),
        cmocka_unit_test(test_fs_bucket_put_replace_in_place),
        cmocka_unit_test(test_fs_bucket_put_name_length),
        cmocka_unit_test(test_fs_bucket_put_rejects_bad_bytes),
        cmocka_unit_test(test_fs_bucket_put_outside_prefix),
        cmocka_unit_test(test_fs_bucket_remove),
        cmocka_unit_test(test_fs_bucket_10000_random_names),
        cmocka_unit_test(test_fs_bucket_lower_bound),
        cmocka_unit_test(test_fs_bucket_roundtrip_states),
        cmocka_unit_test(test_fs_bucket_roundtrip_deep_prefix),
        cmocka_unit_test(test_fs_bucket_decode_recomputes_hash),
        cmocka_unit_test(test_fs_bucket_decode_rejects_unsorted),
        cmocka_unit_test(test_fs_bucket_decode_rejects_wrong_prefix),
        cmocka_unit_test(test_fs_bucket_decode_rejects_bad_names),
        cmocka_unit_test(test_fs_bucket_decode_rejects_long_name),
        cmocka_unit_test(test_fs_bucket_decode_rejects_framing),
        cmocka_unit_test(test_fs_bucket_decode_rejects_bad_coordinates),
        cmocka_unit_test(test_fs_bucket_encode_refuses_invalid),
        cmocka_unit_test(test_fs_bucket_decode_every_truncation_fails),
        cmocka_unit_test(test_fs_bucket_decode_bit_flips_never_crash),
        cmocka_unit_test(test_fs_bucket_decode_random_garbage),
        cmocka_unit_test(test_fs_bucket_split_by_next_bit),
        cmocka_unit_test(test_fs_bucket_split_empty_and_max_depth),
        cmocka_unit_test(test_fs_bucket_full_near_16k),
        cmocka_unit_test(test_fs_off_helpers),
        cmocka_unit_test(test_fs_off_readdir_walk),
        cmocka_unit_test(test_fs_chunk_span_boundaries),
        cmocka_unit_test(test_fs_chunk_span_beyond_4g),
        cmocka_unit_test(test_fs_chunk_span_iteration),
        cmocka_unit_test(test_fs_chunk_count),
        cmocka_unit_test(test_fs_chunk_valid_len),
        cmocka_unit_test(test_fs_chunk_truncate_to_zero),
        cmocka_unit_test(test_fs_chunk_truncate_mid_chunk),
        cmocka_unit_test(test_fs_chunk_truncate_exact_boundary),
        cmocka_unit_test(test_fs_chunk_truncate_grow_or_same),
        cmocka_unit_test(test_fs_chunk_truncate_beyond_4g),
        cmocka_unit_test(test_fs_chunk_truncate_matches_valid_len),
        cmocka_unit_test(test_fs_extents_remove_cases),
        cmocka_unit_test(test_fs_chunk_punch_plan_cases),
        cmocka_unit_test(test_fs_chunk_seek_cases),
    };
    return cmocka_run_group_tests_name("fs_layout", tests, NULL, NULL);
}
