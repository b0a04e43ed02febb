/*
 * test_sec_key.c — key files, Z85, allow-lists and fingerprints.
 *
 * Key files go to a private temp dir. Besides round trips, every refusal
 * the operator can meet is checked: an existing file, a secret readable by
 * others, a malformed key, a malformed line in a list (with its number),
 * and the volume grants of a client list.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sec_key.h"

static char dir[] = "/tmp/test_sec_key.XXXXXX";

static void path_in(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

/* The test vector of ZeroMQ RFC 32. */
static void test_z85_rfc_vector(void **state)
{
    (void)state;
    uint8_t key[SEC_KEY_BYTES] = {0};
    const uint8_t hello[8] = {0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B};
    memcpy(key, hello, sizeof hello);
    char z[SEC_Z85_LEN + 1];
    sec_z85_encode(key, z);
    assert_memory_equal(z, "HelloWorld", 10);
    assert_int_equal(strlen(z), SEC_Z85_LEN);
    uint8_t back[SEC_KEY_BYTES];
    assert_int_equal(sec_z85_decode(z, strlen(z), back), 0);
    assert_memory_equal(back, key, sizeof key);
}

static void test_z85_decode_malformed(void **state)
{
    (void)state;
    uint8_t out[SEC_KEY_BYTES];
    char good[SEC_Z85_LEN + 1];
    uint8_t key[SEC_KEY_BYTES];
    for (size_t i = 0; i < sizeof key; i++)
        key[i] = (uint8_t)(i * 7 + 3);
    sec_z85_encode(key, good);
    assert_int_equal(sec_z85_decode(good, SEC_Z85_LEN, out), 0);
    assert_int_equal(sec_z85_decode(good, SEC_Z85_LEN - 1, out), -EINVAL);
    assert_int_equal(sec_z85_decode(good, 0, out), -EINVAL);
    assert_int_equal(sec_z85_decode(NULL, SEC_Z85_LEN, out), -EINVAL);
    char bad[SEC_Z85_LEN + 1];
    memcpy(bad, good, sizeof bad);
    bad[7] = ' '; /* not in the alphabet */
    assert_int_equal(sec_z85_decode(bad, SEC_Z85_LEN, out), -EINVAL);
    bad[7] = '"';
    assert_int_equal(sec_z85_decode(bad, SEC_Z85_LEN, out), -EINVAL);
    bad[7] = '\0';
    assert_int_equal(sec_z85_decode(bad, SEC_Z85_LEN, out), -EINVAL);
    /* "#####" is 85^5 - 1, over 2^32 - 1. */
    memcpy(bad, good, sizeof bad);
    memcpy(bad, "#####", 5);
    assert_int_equal(sec_z85_decode(bad, SEC_Z85_LEN, out), -EINVAL);
}

static void test_keypair_save_load_roundtrip(void **state)
{
    (void)state;
    sec_keypair_t kp, back;
    assert_int_equal(sec_keypair_generate(&kp), 0);
    char path[PATH_MAX], pub_path[PATH_MAX + 8];
    path_in(path, sizeof path, "node.key");
    snprintf(pub_path, sizeof pub_path, "%s.pub", path);
    mode_t old = umask(0);
    assert_int_equal(sec_keypair_save(path, &kp), 0);
    umask(old);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, SEC_Z85_LEN + 1);
    assert_int_equal(stat(pub_path, &st), 0);
    assert_int_equal(st.st_size, SEC_Z85_LEN + 1);

    assert_int_equal(sec_keypair_load(path, &back), 0);
    assert_memory_equal(back.secret, kp.secret, SEC_KEY_BYTES);
    /* The public key is derived from the secret, and matches FILE.pub. */
    assert_memory_equal(back.pub.b, kp.pub.b, SEC_KEY_BYTES);
    sec_pub_t pub;
    assert_int_equal(sec_pub_load(pub_path, &pub), 0);
    assert_memory_equal(pub.b, kp.pub.b, SEC_KEY_BYTES);
    unlink(path);
    unlink(pub_path);
}

static void test_keypair_save_refuses_overwrite(void **state)
{
    (void)state;
    sec_keypair_t kp, other, back;
    assert_int_equal(sec_keypair_generate(&kp), 0);
    assert_int_equal(sec_keypair_generate(&other), 0);
    char path[PATH_MAX], pub_path[PATH_MAX + 8];
    path_in(path, sizeof path, "once.key");
    snprintf(pub_path, sizeof pub_path, "%s.pub", path);
    assert_int_equal(sec_keypair_save(path, &kp), 0);
    assert_int_equal(sec_keypair_save(path, &other), -EEXIST);
    assert_int_equal(sec_keypair_load(path, &back), 0);
    assert_memory_equal(back.secret, kp.secret, SEC_KEY_BYTES);
    /* An existing FILE.pub alone also refuses, and leaves no FILE behind. */
    unlink(path);
    assert_int_equal(sec_keypair_save(path, &other), -EEXIST);
    assert_int_equal(access(path, F_OK), -1);
    unlink(pub_path);
}

static void test_keypair_load_wrong_permissions(void **state)
{
    (void)state;
    sec_keypair_t kp, back;
    assert_int_equal(sec_keypair_generate(&kp), 0);
    char path[PATH_MAX], pub_path[PATH_MAX + 8];
    path_in(path, sizeof path, "open.key");
    snprintf(pub_path, sizeof pub_path, "%s.pub", path);
    assert_int_equal(sec_keypair_save(path, &kp), 0);
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(sec_keypair_load(path, &back), -EPERM);
    assert_int_equal(chmod(path, 0660), 0);
    assert_int_equal(sec_keypair_load(path, &back), -EPERM);
    assert_int_equal(chmod(path, 0400), 0);
    assert_int_equal(sec_keypair_load(path, &back), 0);
    unlink(path);
    unlink(pub_path);
}

static void test_keypair_load_malformed(void **state)
{
    (void)state;
    sec_keypair_t back;
    sec_pub_t pub;
    char path[PATH_MAX];
    path_in(path, sizeof path, "bad.key");
    const char *bad[] = {
        "",
        "\n",
        "tooshort\n",
        "0123456789012345678901234567890123456789\n\n",
        "0123456789012345678901234567890123456789 \n",
        " 0123456789012345678901234567890123456789\n",
        "012345678901234567890123456789012345678\"\n",
        "01234567890123456789012345678901234567890\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(path, bad[i], 0600);
        if (sec_keypair_load(path, &back) != -EINVAL)
            fail_msg("secret key file #%zu accepted", i);
        if (sec_pub_load(path, &pub) != -EINVAL)
            fail_msg("public key file #%zu accepted", i);
        unlink(path);
    }
    /* Both spellings of one key: with and without the newline. */
    write_file(path, "0123456789012345678901234567890123456789", 0600);
    assert_int_equal(sec_keypair_load(path, &back), 0);
    unlink(path);
    assert_int_equal(sec_keypair_load(path, &back), -ENOENT);
    assert_int_equal(sec_pub_load(dir, &pub), -EINVAL); /* a directory */
}

static void test_fingerprint_stable_and_distinct(void **state)
{
    (void)state;
    sec_keypair_t a, b;
    assert_int_equal(sec_keypair_generate(&a), 0);
    assert_int_equal(sec_keypair_generate(&b), 0);
    char fa[SEC_FP_SIZE], fa2[SEC_FP_SIZE], fb[SEC_FP_SIZE];
    sec_fingerprint(&a.pub, fa);
    sec_fingerprint(&a.pub, fa2);
    sec_fingerprint(&b.pub, fb);
    assert_int_equal(strlen(fa), SEC_FP_SIZE - 1);
    assert_string_equal(fa, fa2);
    assert_string_not_equal(fa, fb);
    for (size_t i = 0; fa[i]; i++)
        assert_non_null(strchr("0123456789abcdef", fa[i]));
}

static void test_keylist_parse_comments_blanks(void **state)
{
    (void)state;
    sec_keypair_t a, b, c;
    assert_int_equal(sec_keypair_generate(&a), 0);
    assert_int_equal(sec_keypair_generate(&b), 0);
    assert_int_equal(sec_keypair_generate(&c), 0);
    char za[SEC_Z85_LEN + 1], zb[SEC_Z85_LEN + 1];
    sec_z85_encode(a.pub.b, za);
    sec_z85_encode(b.pub.b, zb);
    char text[1024];
    snprintf(text, sizeof text,
             "# peers of ring one\n"
             "\n"
             "%s\n"
             "   \t\n"
             "  %s   # node two, rotated 2026-12\r\n"
             "%s", /* duplicate, no final newline */
             za, zb, za);
    sec_keylist_t *list = NULL;
    unsigned line = 99;
    assert_int_equal(sec_keylist_parse(text, strlen(text), 0, &list, &line), 0);
    assert_non_null(list);
    assert_int_equal(sec_keylist_count(list), 2);
    assert_true(sec_keylist_contains(list, a.pub.b));
    assert_true(sec_keylist_contains(list, b.pub.b));
    assert_false(sec_keylist_contains(list, c.pub.b));
    assert_int_equal(sec_keylist_add(list, &c.pub), 0);
    assert_int_equal(sec_keylist_add(list, &c.pub), 0);
    assert_int_equal(sec_keylist_count(list), 3);
    assert_true(sec_keylist_contains(list, c.pub.b));
    sec_keylist_destroy(&list);
    assert_null(list);
    sec_keylist_destroy(&list);

    /* '#' inside a key is a Z85 digit, not a comment. */
    const char *hashed = "#####0000000000000000000000000000000000\n";
    assert_int_equal(sec_keylist_parse(hashed + 5, 36, 0, &list, NULL), -EINVAL);
    const char *inner = "0000#00000000000000000000000000000000000 # c\n";
    assert_int_equal(sec_keylist_parse(inner, strlen(inner), 0, &list, NULL), 0);
    assert_int_equal(sec_keylist_count(list), 1);
    sec_keylist_destroy(&list);
    assert_false(sec_keylist_contains(NULL, a.pub.b));

    /* Only comments: a valid, empty list. */
    assert_int_equal(sec_keylist_parse("# nobody yet\n\n", 14, 0, &list, NULL), 0);
    assert_int_equal(sec_keylist_count(list), 0);
    assert_false(sec_keylist_contains(list, a.pub.b));
    sec_keylist_destroy(&list);
}

static void test_keylist_parse_malformed_line(void **state)
{
    (void)state;
    sec_keypair_t a;
    assert_int_equal(sec_keypair_generate(&a), 0);
    char za[SEC_Z85_LEN + 1];
    sec_z85_encode(a.pub.b, za);
    const char *tails[] = {
        "not-a-key\n",
        "0123456789012345678901234567890123456789 extra\n",
        "01234567890123456789012345678901234567890\n",
        "0123456789012345678901234567890123456789;\n",
    };
    for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) {
        char text[512];
        snprintf(text, sizeof text, "# list\n%s\n%s", za, tails[i]);
        sec_keylist_t *list = (sec_keylist_t *)&text; /* must stay untouched */
        unsigned line = 0;
        if (sec_keylist_parse(text, strlen(text), 0, &list, &line) != -EINVAL)
            fail_msg("list with line \"%s\" accepted", tails[i]);
        assert_ptr_equal(list, (sec_keylist_t *)&text);
        assert_int_equal(line, 3);
    }
}

static void test_keylist_load_file(void **state)
{
    (void)state;
    sec_keypair_t a;
    assert_int_equal(sec_keypair_generate(&a), 0);
    char za[SEC_Z85_LEN + 1], text[256], path[PATH_MAX];
    sec_z85_encode(a.pub.b, za);
    snprintf(text, sizeof text, "%s # me\n", za);
    path_in(path, sizeof path, "peers.list");
    write_file(path, text, 0644);
    sec_keylist_t *list = NULL;
    unsigned line = 0;
    assert_int_equal(sec_keylist_load(path, 0, &list, &line), 0);
    assert_true(sec_keylist_contains(list, a.pub.b));
    sec_keylist_destroy(&list);
    write_file(path, "# ok\nxx\n", 0644);
    assert_int_equal(sec_keylist_load(path, 0, &list, &line), -EINVAL);
    assert_int_equal(line, 2);
    assert_null(list);
    unlink(path);
    assert_int_equal(sec_keylist_load(path, 0, &list, &line), -ENOENT);
}

/* A key with its volumes, as a client list writes it. */
static sec_keylist_t *parse_ok(const char *text, unsigned flags)
{
    sec_keylist_t *list = NULL;
    unsigned line = 0;
    int rc = sec_keylist_parse(text, strlen(text), flags, &list, &line);
    if (rc != 0)
        fail_msg("list refused (rc %d, line %u):\n%s", rc, line, text);
    return list;
}

static bool allows(const sec_keylist_t *list, const sec_pub_t *pub, const char *skey)
{
    return sec_keylist_allows(list, pub->b, (const uint8_t *)skey, strlen(skey));
}

static void test_keylist_parse_volumes(void **state)
{
    (void)state;
    sec_keypair_t a, b, c, d;
    assert_int_equal(sec_keypair_generate(&a), 0);
    assert_int_equal(sec_keypair_generate(&b), 0);
    assert_int_equal(sec_keypair_generate(&c), 0);
    assert_int_equal(sec_keypair_generate(&d), 0);
    char za[SEC_Z85_LEN + 1], zb[SEC_Z85_LEN + 1], zc[SEC_Z85_LEN + 1], text[1024];
    sec_z85_encode(a.pub.b, za);
    sec_z85_encode(b.pub.b, zb);
    sec_z85_encode(c.pub.b, zc);
    snprintf(text, sizeof text,
             "%s\n"                      /* a: every volume */
             "%s  home\tproj.x-1  # b\n" /* b: two volumes, a comment */
             "%s   shared\r\n"           /* c: one, then one more below */
             "%s home\n",
             za, zb, zc, zc);
    sec_keylist_t *list = parse_ok(text, SEC_LIST_VOLUMES);
    assert_int_equal(sec_keylist_count(list), 3);
    assert_false(sec_keylist_restricted(list, a.pub.b));
    assert_true(sec_keylist_restricted(list, b.pub.b));
    assert_true(sec_keylist_restricted(list, c.pub.b));
    assert_false(sec_keylist_restricted(list, d.pub.b));
    /* c is listed twice: one restricted key, counted once. */
    assert_int_equal(sec_keylist_restricted_count(list), 2);
    assert_int_equal(sec_keylist_restricted_count(NULL), 0);

    /* Unrestricted: any key at all. */
    assert_true(allows(list, &a.pub, "mc/x"));
    assert_true(allows(list, &a.pub, "v/other/super"));
    assert_true(allows(list, &a.pub, ""));
    /* Restricted: "v/VOL/..." of its volumes, nothing else. */
    assert_true(allows(list, &b.pub, "v/home/super"));
    assert_true(allows(list, &b.pub, "v/home/c/2a/3"));
    assert_true(allows(list, &b.pub, "v/proj.x-1/i/1"));
    assert_false(allows(list, &b.pub, "v/shared/super"));
    assert_false(allows(list, &b.pub, "v/homeX/super"));
    assert_false(allows(list, &b.pub, "v/hom/super"));
    assert_false(allows(list, &b.pub, "v/home"));
    assert_false(allows(list, &b.pub, "v//home/x"));
    assert_false(allows(list, &b.pub, "mc/v/home/x"));
    assert_false(allows(list, &b.pub, "x/home/super"));
    assert_false(allows(list, &b.pub, "home/super"));
    assert_false(allows(list, &b.pub, ""));
    assert_false(sec_keylist_allows(list, b.pub.b, NULL, 0));
    /* Two lines of one key: the union. */
    assert_true(allows(list, &c.pub, "v/shared/next"));
    assert_true(allows(list, &c.pub, "v/home/next"));
    /* Unlisted: nothing. */
    assert_false(allows(list, &d.pub, "v/home/super"));
    assert_false(sec_keylist_allows(NULL, a.pub.b, (const uint8_t *)"k", 1));

    char vols[64];
    assert_int_equal(sec_keylist_volumes(list, b.pub.b, vols, sizeof vols),
                     strlen("home proj.x-1"));
    assert_string_equal(vols, "home proj.x-1");
    assert_int_equal(sec_keylist_volumes(list, a.pub.b, vols, sizeof vols), 0);
    assert_string_equal(vols, "");
    char tiny[6];
    assert_int_equal(sec_keylist_volumes(list, b.pub.b, tiny, sizeof tiny), 5);
    assert_string_equal(tiny, "home ");
    /* A restricted key cannot be widened by adding it bare. */
    assert_int_equal(sec_keylist_add(list, &b.pub), -EINVAL);
    sec_keylist_destroy(&list);

    /* A volume of exactly the longest name. */
    char longest[SEC_VOLUME_MAX + 1];
    memset(longest, 'v', SEC_VOLUME_MAX);
    longest[SEC_VOLUME_MAX] = '\0';
    snprintf(text, sizeof text, "%s %s\n", za, longest);
    list = parse_ok(text, SEC_LIST_VOLUMES);
    char skey[128];
    snprintf(skey, sizeof skey, "v/%s/super", longest);
    assert_true(allows(list, &a.pub, skey));
    sec_keylist_destroy(&list);
}

static void test_keylist_parse_volumes_malformed(void **state)
{
    (void)state;
    sec_keypair_t a;
    assert_int_equal(sec_keypair_generate(&a), 0);
    char za[SEC_Z85_LEN + 1], longest[SEC_VOLUME_MAX + 2];
    sec_z85_encode(a.pub.b, za);
    memset(longest, 'v', SEC_VOLUME_MAX + 1);
    longest[SEC_VOLUME_MAX + 1] = '\0';
    char tails[6][128];
    snprintf(tails[0], sizeof tails[0], "%s a/b\n", za);        /* '/' would alias keys */
    snprintf(tails[1], sizeof tails[1], "%s home vol#1\n", za); /* '#' inside a word */
    snprintf(tails[2], sizeof tails[2], "%s %s\n", za, longest);
    snprintf(tails[3], sizeof tails[3], "%s home\n%s\n", za, za); /* restricted, then bare */
    snprintf(tails[4], sizeof tails[4], "%s\n%s home\n", za, za); /* bare, then restricted */
    snprintf(tails[5], sizeof tails[5], "%s caf\xc3\xa9\n", za);
    unsigned want_line[] = {2, 2, 2, 3, 3, 2};
    for (size_t i = 0; i < 6; i++) {
        char text[512];
        snprintf(text, sizeof text, "# clients\n%s", tails[i]);
        sec_keylist_t *list = (sec_keylist_t *)&text; /* must stay untouched */
        unsigned line = 0;
        if (sec_keylist_parse(text, strlen(text), SEC_LIST_VOLUMES, &list, &line) != -EINVAL)
            fail_msg("client list %zu accepted:\n%s", i, text);
        assert_ptr_equal(list, (sec_keylist_t *)&text);
        assert_int_equal(line, want_line[i]);
    }
    /* Without SEC_LIST_VOLUMES (a peer list) a volume is malformed. */
    char text[256];
    snprintf(text, sizeof text, "%s home\n", za);
    sec_keylist_t *list = NULL;
    unsigned line = 0;
    assert_int_equal(sec_keylist_parse(text, strlen(text), 0, &list, &line), -EINVAL);
    assert_int_equal(line, 1);
    assert_null(list);
    /* A "# comment" after the volumes is not a volume. */
    snprintf(text, sizeof text, "%s home # laptop of ann\n", za);
    list = parse_ok(text, SEC_LIST_VOLUMES);
    char vols[64];
    sec_keylist_volumes(list, a.pub.b, vols, sizeof vols);
    assert_string_equal(vols, "home");
    sec_keylist_destroy(&list);
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_z85_rfc_vector),
        cmocka_unit_test(test_z85_decode_malformed),
        cmocka_unit_test(test_keypair_save_load_roundtrip),
        cmocka_unit_test(test_keypair_save_refuses_overwrite),
        cmocka_unit_test(test_keypair_load_wrong_permissions),
        cmocka_unit_test(test_keypair_load_malformed),
        cmocka_unit_test(test_fingerprint_stable_and_distinct),
        cmocka_unit_test(test_keylist_parse_comments_blanks),
        cmocka_unit_test(test_keylist_parse_malformed_line),
        cmocka_unit_test(test_keylist_load_file),
        cmocka_unit_test(test_keylist_parse_volumes),
        cmocka_unit_test(test_keylist_parse_volumes_malformed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
