/*
 * sec_key.c — key files, allow-lists and fingerprints (sec_key.h).
 *
 * Z85 (ZeroMQ RFC 32) is implemented here rather than taken from libzmq so
 * that ringlib stays free of the socket library; it is a text encoding like
 * hex, not cryptography. The keys themselves come from libsodium: a CURVE
 * key pair is a crypto_box (X25519) key pair, and the public half of a
 * secret is crypto_scalarmult_base of it.
 *
 * A list is a sorted array searched by bsearch: lists hold at most a few
 * thousand keys and are re-read whole on SIGHUP, so nothing fancier pays.
 *
 * A client key may carry volumes (a grant): it then reaches only the store
 * keys under "v/VOL/" of those volumes. The grant is kept with the key
 * so one lookup answers both "who is this" and "what may it touch".
 *
 * Deliberately not done: no locking of key files, no key expiry, no
 * grants finer than a volume (a path inside one, read-only).
 */
#include "sec_key.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char z85_chars[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                ".-:+=^!/*?&<>()[]{}@%$#";

/* Value of a Z85 character, or -1. */
static int z85_value(char c)
{
    const char *p = c ? strchr(z85_chars, c) : NULL;
    return p ? (int)(p - z85_chars) : -1;
}

void sec_z85_encode(const uint8_t in[SEC_KEY_BYTES], char out[SEC_Z85_LEN + 1])
{
    size_t o = 0;
    for (size_t i = 0; i < SEC_KEY_BYTES; i += 4) {
        uint32_t v = (uint32_t)in[i] << 24 | (uint32_t)in[i + 1] << 16 | (uint32_t)in[i + 2] << 8 |
                     in[i + 3];
        for (int d = 4; d >= 0; d--) {
            out[o + (size_t)d] = z85_chars[v % 85];
            v /= 85;
        }
        o += 5;
    }
    out[o] = '\0';
}

int sec_z85_decode(const char *s, size_t len, uint8_t out[SEC_KEY_BYTES])
{
    if (!s || len != SEC_Z85_LEN)
        return -EINVAL;
    uint8_t tmp[SEC_KEY_BYTES];
    for (size_t g = 0; g < SEC_Z85_LEN / 5; g++) {
        uint64_t v = 0;
        for (size_t d = 0; d < 5; d++) {
            int x = z85_value(s[g * 5 + d]);
            if (x < 0)
                return -EINVAL;
            v = v * 85 + (uint64_t)x;
        }
        /* Five digits reach 85^5 - 1 > 2^32 - 1: such a group encodes nothing. */
        if (v > UINT32_MAX)
            return -EINVAL;
        tmp[g * 4] = (uint8_t)(v >> 24);
        tmp[g * 4 + 1] = (uint8_t)(v >> 16);
        tmp[g * 4 + 2] = (uint8_t)(v >> 8);
        tmp[g * 4 + 3] = (uint8_t)v;
    }
    memcpy(out, tmp, sizeof tmp);
    sodium_memzero(tmp, sizeof tmp);
    return 0;
}

int sec_keypair_generate(sec_keypair_t *kp)
{
    if (sodium_init() < 0)
        return -EIO;
    if (crypto_box_keypair(kp->pub.b, kp->secret) != 0)
        return -EIO;
    return 0;
}

/* Write all of buf to fd. 0 or -errno. */
static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Create path exclusively with mode and write one line of Z85. 0 or -errno. */
static int write_key_file(const char *path, mode_t mode, const uint8_t key[SEC_KEY_BYTES])
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return -errno;
    /* The umask may have removed bits but never adds any: force the mode. */
    int rc = fchmod(fd, mode) < 0 ? -errno : 0;
    char line[SEC_Z85_LEN + 2];
    sec_z85_encode(key, line);
    line[SEC_Z85_LEN] = '\n';
    if (rc == 0)
        rc = write_all(fd, line, SEC_Z85_LEN + 1);
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    sodium_memzero(line, sizeof line);
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    return rc;
}

int sec_keypair_save(const char *path, const sec_keypair_t *kp)
{
    char pub_path[PATH_MAX];
    if (!path || !*path)
        return -EINVAL;
    if ((size_t)snprintf(pub_path, sizeof pub_path, "%s.pub", path) >= sizeof pub_path)
        return -ENAMETOOLONG;
    struct stat st;
    /* Checked first so that an existing FILE.pub leaves no new FILE behind. */
    if (lstat(pub_path, &st) == 0)
        return -EEXIST;
    int rc = write_key_file(path, 0600, kp->secret);
    if (rc < 0) {
        if (rc != -EEXIST)
            unlink(path);
        return rc;
    }
    rc = write_key_file(pub_path, 0644, kp->pub.b);
    if (rc < 0) {
        if (rc != -EEXIST)
            unlink(pub_path);
        unlink(path);
    }
    return rc;
}

/*
 * Read a small file whole (at most cap - 1 bytes; more is -EINVAL: no key
 * file is that long), NUL-terminated. st_out, if not NULL, gets its fstat.
 * Returns the length or -errno.
 */
static ssize_t read_small(const char *path, char *buf, size_t cap, struct stat *st_out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return -EINVAL;
    }
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int e = -errno;
            close(fd);
            return e;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len == cap - 1) {
            char extra;
            ssize_t more = read(fd, &extra, 1);
            close(fd);
            return more == 0 ? (ssize_t)len : -EINVAL;
        }
    }
    close(fd);
    buf[len] = '\0';
    if (st_out)
        *st_out = st;
    return (ssize_t)len;
}

/* A key file's text: exactly one Z85 key, optionally followed by "\n". */
static int parse_key_text(const char *buf, size_t len, uint8_t out[SEC_KEY_BYTES])
{
    if (len == SEC_Z85_LEN + 1 && buf[SEC_Z85_LEN] == '\n')
        len--;
    return sec_z85_decode(buf, len, out);
}

int sec_keypair_load(const char *path, sec_keypair_t *kp)
{
    char buf[128];
    struct stat st;
    ssize_t len = read_small(path, buf, sizeof buf, &st);
    if (len < 0)
        return (int)len;
    int rc = 0;
    if (st.st_mode & 077)
        rc = -EPERM;
    else
        rc = parse_key_text(buf, (size_t)len, kp->secret);
    sodium_memzero(buf, sizeof buf);
    if (rc < 0)
        return rc;
    if (sodium_init() < 0 || crypto_scalarmult_base(kp->pub.b, kp->secret) != 0) {
        sodium_memzero(kp->secret, sizeof kp->secret);
        return -EINVAL;
    }
    return 0;
}

int sec_pub_load(const char *path, sec_pub_t *pub)
{
    char buf[128];
    ssize_t len = read_small(path, buf, sizeof buf, NULL);
    if (len < 0)
        return (int)len;
    return parse_key_text(buf, (size_t)len, pub->b);
}

void sec_fingerprint(const sec_pub_t *pub, char out[SEC_FP_SIZE])
{
    uint8_t h[8];
    crypto_generichash(h, sizeof h, pub->b, sizeof pub->b, NULL, 0);
    sodium_bin2hex(out, SEC_FP_SIZE, h, sizeof h);
}

/*
 * One listed key. vols is NULL for a key with every volume, else the
 * names of its volumes, each NUL-terminated, in vols_len bytes.
 */
typedef struct {
    sec_pub_t pub; /* first: bsearch compares the key's bytes */
    char *vols;
    size_t vols_len;
} entry_t;

struct sec_keylist {
    entry_t *keys; /* sorted by memcmp of pub, distinct */
    size_t count, cap;
};

sec_keylist_t *sec_keylist_new(void)
{
    return calloc(1, sizeof(sec_keylist_t));
}

void sec_keylist_destroy(sec_keylist_t **list)
{
    if (!list || !*list)
        return;
    for (size_t i = 0; i < (*list)->count; i++)
        free((*list)->keys[i].vols);
    free((*list)->keys);
    free(*list);
    *list = NULL;
}

static int cmp_pub(const void *a, const void *b)
{
    return memcmp(a, b, SEC_KEY_BYTES);
}

static entry_t *find(const sec_keylist_t *list, const uint8_t key[SEC_KEY_BYTES])
{
    if (!list || list->count == 0)
        return NULL;
    return bsearch(key, list->keys, list->count, sizeof(entry_t), cmp_pub);
}

bool sec_keylist_contains(const sec_keylist_t *list, const uint8_t key[SEC_KEY_BYTES])
{
    return find(list, key) != NULL;
}

/* Insert pub (not yet listed) with every volume; its entry, or NULL when out of memory. */
static entry_t *insert(sec_keylist_t *list, const sec_pub_t *pub)
{
    if (list->count == list->cap) {
        size_t cap = list->cap ? list->cap * 2 : 16;
        entry_t *keys = realloc(list->keys, cap * sizeof *keys);
        if (!keys)
            return NULL;
        list->keys = keys;
        list->cap = cap;
    }
    size_t i = list->count;
    while (i > 0 && memcmp(&list->keys[i - 1].pub, pub, sizeof *pub) > 0) {
        list->keys[i] = list->keys[i - 1];
        i--;
    }
    list->keys[i] = (entry_t){.pub = *pub};
    list->count++;
    return &list->keys[i];
}

int sec_keylist_add(sec_keylist_t *list, const sec_pub_t *pub)
{
    entry_t *e = find(list, pub->b);
    if (e)
        return e->vols ? -EINVAL : 0;
    return insert(list, pub) ? 0 : -ENOMEM;
}

bool sec_volume_name_ok(const char *s, size_t len)
{
    if (len == 0 || len > SEC_VOLUME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static bool has_volume(const entry_t *e, const char *vol, size_t len)
{
    for (size_t off = 0; off < e->vols_len;) {
        size_t n = strlen(e->vols + off);
        if (n == len && memcmp(e->vols + off, vol, len) == 0)
            return true;
        off += n + 1;
    }
    return false;
}

/* Grant vol (a valid name) to the restricted entry e. 0 or -ENOMEM. */
static int add_volume(entry_t *e, const char *vol, size_t len)
{
    if (has_volume(e, vol, len))
        return 0;
    char *v = realloc(e->vols, e->vols_len + len + 1);
    if (!v)
        return -ENOMEM;
    memcpy(v + e->vols_len, vol, len);
    v[e->vols_len + len] = '\0';
    e->vols = v;
    e->vols_len += len + 1;
    return 0;
}

bool sec_keylist_restricted(const sec_keylist_t *list, const uint8_t key[SEC_KEY_BYTES])
{
    const entry_t *e = find(list, key);
    return e && e->vols;
}

bool sec_keylist_allows(const sec_keylist_t *list, const uint8_t key[SEC_KEY_BYTES],
                        const uint8_t *skey, size_t skey_len)
{
    const entry_t *e = find(list, key);
    if (!e)
        return false;
    if (!e->vols)
        return true;
    /*
     * "v/VOL/..." and nothing else: a volume name holds no '/', so the
     * first '/' after "v/" ends it and "v/VOLx/" or "v/VOL" alone (not a
     * key dhtfs writes) never pass for VOL.
     */
    if (skey_len < 4 || skey[0] != 'v' || skey[1] != '/')
        return false;
    const uint8_t *name = skey + 2, *slash = memchr(name, '/', skey_len - 2);
    if (!slash)
        return false;
    return has_volume(e, (const char *)name, (size_t)(slash - name));
}

size_t sec_keylist_volumes(const sec_keylist_t *list, const uint8_t key[SEC_KEY_BYTES], char *buf,
                           size_t cap)
{
    const entry_t *e = find(list, key);
    size_t n = 0;
    if (cap == 0)
        return 0;
    buf[0] = '\0';
    for (size_t off = 0; e && e->vols && off < e->vols_len;) {
        const char *v = e->vols + off;
        int w = snprintf(buf + n, cap - n, "%s%s", n ? " " : "", v);
        if (w < 0 || (size_t)w >= cap - n) {
            buf[cap - 1] = '\0';
            return strlen(buf);
        }
        n += (size_t)w;
        off += strlen(v) + 1;
    }
    return n;
}

size_t sec_keylist_count(const sec_keylist_t *list)
{
    return list ? list->count : 0;
}

size_t sec_keylist_restricted_count(const sec_keylist_t *list)
{
    size_t n = 0;
    for (size_t i = 0; list && i < list->count; i++)
        n += list->keys[i].vols != NULL;
    return n;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* The next word of text[*p, b): *p moves to its start; returns its end (*p when there is none). */
static size_t next_word(const char *text, size_t *p, size_t b)
{
    while (*p < b && is_blank(text[*p]))
        (*p)++;
    size_t q = *p;
    while (q < b && !is_blank(text[q]))
        q++;
    return q;
}

/*
 * One line's words (text[a, b): no comment, no surrounding blanks): the key
 * and, with SEC_LIST_VOLUMES, its volumes. 0, -EINVAL or -ENOMEM.
 */
static int parse_line(sec_keylist_t *list, const char *text, size_t a, size_t b, unsigned flags)
{
    size_t k = next_word(text, &a, b);
    sec_pub_t pub;
    int rc = sec_z85_decode(text + a, k - a, pub.b);
    if (rc < 0)
        return rc;
    if (k == b)
        return sec_keylist_add(list, &pub);
    if (!(flags & SEC_LIST_VOLUMES))
        return -EINVAL;
    /* Validate every name first: a malformed line must not leave half a grant. */
    for (size_t p = k, q = next_word(text, &p, b); q > p; p = q, q = next_word(text, &p, b))
        if (!sec_volume_name_ok(text + p, q - p))
            return -EINVAL;
    entry_t *e = find(list, pub.b);
    if (e && !e->vols)
        return -EINVAL; /* listed before with every volume */
    if (!e && !(e = insert(list, &pub)))
        return -ENOMEM;
    for (size_t p = k, q = next_word(text, &p, b); q > p; p = q, q = next_word(text, &p, b))
        if ((rc = add_volume(e, text + p, q - p)) < 0)
            return rc;
    return 0;
}

int sec_keylist_parse(const char *text, size_t text_len, unsigned flags, sec_keylist_t **out,
                      unsigned *bad_line)
{
    sec_keylist_t *list = sec_keylist_new();
    if (!list)
        return -ENOMEM;
    unsigned line_no = 0;
    size_t pos = 0;
    while (pos < text_len) {
        line_no++;
        size_t end = pos;
        while (end < text_len && text[end] != '\n')
            end++;
        size_t a = pos, b = end;
        /*
         * '#' is also a Z85 digit, so it starts a comment only at the start
         * of a line or after a blank: a key never contains a blank.
         */
        for (size_t i = a; i < b; i++)
            if (text[i] == '#' && (i == a || is_blank(text[i - 1]))) {
                b = i;
                break;
            }
        while (a < b && is_blank(text[a]))
            a++;
        while (b > a && is_blank(text[b - 1]))
            b--;
        if (b > a) {
            int rc = parse_line(list, text, a, b, flags);
            if (rc < 0) {
                if (rc == -EINVAL && bad_line)
                    *bad_line = line_no;
                sec_keylist_destroy(&list);
                return rc;
            }
        }
        pos = end + 1;
    }
    *out = list;
    return 0;
}

int sec_keylist_load(const char *path, unsigned flags, sec_keylist_t **out, unsigned *bad_line)
{
    /* A list of 10,000 keys with comments fits well within 1 MiB. */
    enum { LIST_MAX = 1 << 20 };
    char *buf = malloc(LIST_MAX + 1);
    if (!buf)
        return -ENOMEM;
    ssize_t len = read_small(path, buf, LIST_MAX + 1, NULL);
    int rc = len < 0 ? (int)len : sec_keylist_parse(buf, (size_t)len, flags, out, bad_line);
    if (len == -EINVAL && bad_line)
        *bad_line = 0;
    free(buf);
    return rc;
}
