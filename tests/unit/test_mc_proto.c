/*
 * test_mc_proto.c — the memcached text protocol parser, the item record,
 * expiry and incr/decr rules, and the reply formatter.
 *
 * Error lines are compared with memcached's exact wording, and partial
 * input is checked byte by byte: every proper prefix of a request must say
 * "need more" and consume nothing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mc_proto.h"

static mc_req_t req; /* large: not on the stack */

static mc_parse_rc_t parse(const char *s, size_t *used, size_t *swallow, const char **err)
{
    return mc_parse((const uint8_t *)s, strlen(s), &req, used, swallow, err);
}

static void expect_ok(const char *s, mc_cmd_t cmd)
{
    size_t used, sw;
    const char *err;
    assert_int_equal(parse(s, &used, &sw, &err), MC_PARSE_OK);
    assert_int_equal(req.cmd, cmd);
    assert_int_equal(used, strlen(s));
}

static void expect_err(const char *s, const char *want, size_t want_used, size_t want_swallow)
{
    size_t used, sw;
    const char *err;
    assert_int_equal(parse(s, &used, &sw, &err), MC_PARSE_ERROR);
    assert_string_equal(err, want);
    assert_int_equal(used, want_used);
    assert_int_equal(sw, want_swallow);
}

static bool key_is(size_t i, const char *k)
{
    return req.keys[i].len == strlen(k) && memcmp(req.keys[i].p, k, req.keys[i].len) == 0;
}

static void test_mc_parse_get_many_keys(void **state)
{
    (void)state;
    expect_ok("get a bb ccc\r\n", MC_GET);
    assert_int_equal(req.nkeys, 3);
    assert_true(key_is(0, "a") && key_is(1, "bb") && key_is(2, "ccc"));
    expect_ok("gets x\n", MC_GETS); /* a bare \n ends a line too */
    assert_int_equal(req.nkeys, 1);
    expect_ok("gat 100 k1 k2\r\n", MC_GAT);
    assert_int_equal(req.exptime, 100);
    assert_int_equal(req.nkeys, 2);
    expect_ok("gats -1 k\r\n", MC_GATS);
    assert_int_equal(req.exptime, -1);
    expect_err("get\r\n", "ERROR", 5, 0);
    expect_err("gat 10\r\n", "ERROR", 8, 0);
    expect_err("gat x k\r\n", "CLIENT_ERROR invalid exptime argument", 9, 0);
}

static void test_mc_parse_storage(void **state)
{
    (void)state;
    expect_ok("set k 7 30 5\r\nhello\r\n", MC_SET);
    assert_true(key_is(0, "k"));
    assert_int_equal(req.flags, 7);
    assert_int_equal(req.exptime, 30);
    assert_int_equal(req.data_len, 5);
    assert_memory_equal(req.data, "hello", 5);
    assert_false(req.noreply);
    expect_ok("add k 0 0 0 noreply\r\n\r\n", MC_ADD);
    assert_true(req.noreply);
    assert_int_equal(req.data_len, 0);
    expect_ok("replace k 0 0 1\r\nx\r\n", MC_REPLACE);
    expect_ok("append k 0 0 1\r\nx\r\n", MC_APPEND);
    expect_ok("prepend k 0 0 1\r\nx\r\n", MC_PREPEND);
    expect_ok("cas k 1 2 3 18446744073709551615\r\nabc\r\n", MC_CAS);
    assert_true(req.cas == UINT64_MAX);
    expect_ok("cas k 1 2 3 99 noreply\r\nabc\r\n", MC_CAS);
    assert_true(req.noreply);
    /* data may contain \r\n: only the byte count decides */
    expect_ok("set k 0 0 4\r\na\r\nb\r\n", MC_SET);
    assert_memory_equal(req.data, "a\r\nb", 4);
}

static void test_mc_parse_storage_errors(void **state)
{
    (void)state;
    /* wrong number of tokens: memcached says ERROR and cannot know the data length */
    expect_err("set k 0 0\r\n", "ERROR", 11, 0);
    expect_err("cas k 0 0 1\r\nx\r\n", "ERROR", 13, 0);
    /* a bad byte count: nothing to swallow */
    expect_err("set k 0 0 -1\r\n", "CLIENT_ERROR bad command line format", 14, 0);
    expect_err("set k 0 0 x\r\n", "CLIENT_ERROR bad command line format", 13, 0);
    /* bad flags: the data block is swallowed */
    expect_err("set k x 0 3\r\nabc\r\n", "CLIENT_ERROR bad command line format", 13, 5);
    expect_err("set k 4294967296 0 3\r\nabc\r\n", "CLIENT_ERROR bad command line format", 22, 5);
    /* too large: memcached's message, data swallowed even if not here yet */
    expect_err("set k 0 0 1048577\r\n", "SERVER_ERROR object too large for cache", 19, 1048579);
    /* the block must end in \r\n */
    expect_err("set k 0 0 3\r\nabcd\r\n", "CLIENT_ERROR bad data chunk", 18, 0);
    /* too long key */
    char line[400];
    memset(line, 0, sizeof line);
    strcpy(line, "set ");
    memset(line + 4, 'k', 251);
    strcat(line, " 0 0 1\r\nx\r\n");
    expect_err(line, "CLIENT_ERROR bad command line format", strlen(line) - 3, 3);
    /* exactly 250 is fine */
    line[4 + 250] = ' ';
    line[4 + 250 + 1] = '\0';
    strcat(line, "0 0 1\r\nx\r\n");
    expect_ok(line, MC_SET);
    assert_int_equal(req.keys[0].len, 250);
}

static void test_mc_parse_partial_input(void **state)
{
    (void)state;
    const char *reqs[] = {
        "set key 1 2 10\r\n0123456789\r\n",
        "get a b c\r\n",
        "ms k 2 T5 F1\r\nhi\r\n",
        "cas k 0 0 2 5\r\nab\r\n",
    };
    for (size_t r = 0; r < sizeof reqs / sizeof reqs[0]; r++) {
        size_t n = strlen(reqs[r]);
        for (size_t i = 0; i < n; i++) {
            size_t used = 99, sw = 99;
            const char *err;
            assert_int_equal(mc_parse((const uint8_t *)reqs[r], i, &req, &used, &sw, &err),
                             MC_PARSE_MORE);
            assert_int_equal(used, 0);
        }
        size_t used, sw;
        const char *err;
        assert_int_equal(mc_parse((const uint8_t *)reqs[r], n, &req, &used, &sw, &err),
                         MC_PARSE_OK);
        assert_int_equal(used, n);
    }
}

static void test_mc_parse_pipelined(void **state)
{
    (void)state;
    const char *s = "set a 0 0 1\r\nx\r\nget a\r\nbogus\r\ndelete a\r\nversion\r\n";
    const uint8_t *p = (const uint8_t *)s;
    size_t left = strlen(s), used, sw;
    const char *err;
    mc_cmd_t want[] = {MC_SET, MC_GET, (mc_cmd_t)-1, MC_DELETE, MC_VERSION};
    for (size_t i = 0; i < 5; i++) {
        mc_parse_rc_t rc = mc_parse(p, left, &req, &used, &sw, &err);
        if (want[i] == (mc_cmd_t)-1) {
            assert_int_equal(rc, MC_PARSE_ERROR);
            assert_string_equal(err, "ERROR");
        } else {
            assert_int_equal(rc, MC_PARSE_OK);
            assert_int_equal(req.cmd, want[i]);
        }
        p += used;
        left -= used;
    }
    assert_int_equal(left, 0);
    assert_int_equal(mc_parse(p, 0, &req, &used, &sw, &err), MC_PARSE_MORE);
}

static void test_mc_parse_other_commands(void **state)
{
    (void)state;
    expect_ok("delete k\r\n", MC_DELETE);
    expect_ok("delete k noreply\r\n", MC_DELETE);
    assert_true(req.noreply);
    expect_ok("delete k 0\r\n", MC_DELETE);
    expect_err("delete k 5\r\n",
               "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]", 12, 0);
    expect_ok("incr k 18446744073709551615\r\n", MC_INCR);
    assert_true(req.delta == UINT64_MAX);
    expect_ok("decr k 1 noreply\r\n", MC_DECR);
    assert_true(req.noreply);
    expect_err("incr k -1\r\n", "CLIENT_ERROR invalid numeric delta argument", 11, 0);
    expect_err("incr k 18446744073709551616\r\n", "CLIENT_ERROR invalid numeric delta argument", 29,
               0);
    expect_ok("touch k 10\r\n", MC_TOUCH);
    assert_int_equal(req.exptime, 10);
    expect_err("touch k x\r\n", "CLIENT_ERROR invalid exptime argument", 11, 0);
    expect_ok("flush_all\r\n", MC_FLUSH_ALL);
    expect_ok("flush_all 10\r\n", MC_FLUSH_ALL);
    assert_int_equal(req.delta, 10);
    expect_ok("flush_all noreply\r\n", MC_FLUSH_ALL);
    assert_true(req.noreply);
    expect_err("flush_all x\r\n", "CLIENT_ERROR bad command line format", 13, 0);
    expect_ok("version\r\n", MC_VERSION);
    expect_ok("verbosity 1\r\n", MC_VERBOSITY);
    expect_ok("stats\r\n", MC_STATS);
    assert_int_equal(req.arg.len, 0);
    expect_ok("stats settings\r\n", MC_STATS);
    assert_int_equal(req.arg.len, 8);
    expect_ok("quit\r\n", MC_QUIT);
    expect_err("\r\n", "ERROR", 2, 0);
    expect_err("GET k\r\n", "ERROR", 7, 0); /* commands are case-sensitive */
    expect_ok("get k\001\r\n", MC_GET);     /* memcached takes control bytes in keys */
}

static void test_mc_parse_meta(void **state)
{
    (void)state;
    expect_ok("mn\r\n", MC_MN);
    expect_ok("mg k v f t c k Oabc q\r\n", MC_MG);
    assert_int_equal(req.nmflags, 7);
    assert_true(req.noreply); /* q */
    const mc_span_t *o = mc_req_mflag(&req, 'O');
    assert_non_null(o);
    assert_int_equal(o->len, 4);
    assert_null(mc_req_mflag(&req, 'T'));
    expect_ok("ms k 3 T10 F5 MA\r\nabc\r\n", MC_MS);
    assert_int_equal(req.data_len, 3);
    expect_ok("md k q\r\n", MC_MD);
    expect_ok("ma k N0 J5 D2 MI v\r\n", MC_MA);
    assert_int_equal(req.nmflags, 5);
    assert_non_null(mc_req_mflag(&req, 'J'));
    expect_err("mg\r\n", "CLIENT_ERROR bad command line format", 4, 0);
    expect_err("mg k 1\r\n", "CLIENT_ERROR bad command line format", 8, 0);
    expect_err("ms k 2 b\r\nhi\r\n", "CLIENT_ERROR bad command line format", 10, 4);
}

static void test_mc_parse_line_too_long(void **state)
{
    (void)state;
    size_t n = MC_LINE_MAX + 10;
    uint8_t *buf = malloc(n);
    memset(buf, 'g', n);
    size_t used, sw;
    const char *err;
    assert_int_equal(mc_parse(buf, MC_LINE_MAX - 1, &req, &used, &sw, &err), MC_PARSE_MORE);
    assert_int_equal(mc_parse(buf, n, &req, &used, &sw, &err), MC_PARSE_CLOSE);
    assert_string_equal(err, "CLIENT_ERROR line too long");
    free(buf);
}

static void test_mc_record_roundtrip(void **state)
{
    (void)state;
    uint8_t buf[64];
    size_t n = mc_record_encode(buf, 0xdeadbeef, 1700000000, (const uint8_t *)"value", 5);
    assert_int_equal(n, MC_RECORD_HDR + 5);
    mc_item_t it;
    assert_int_equal(mc_record_decode(buf, n, &it), 0);
    assert_true(it.flags == 0xdeadbeef);
    assert_true(it.exptime == 1700000000);
    assert_int_equal(it.len, 5);
    assert_memory_equal(it.data, "value", 5);
    assert_int_equal(mc_record_decode(buf, MC_RECORD_HDR - 1, &it), -EBADMSG);
    buf[0] = 'X';
    assert_int_equal(mc_record_decode(buf, n, &it), -EBADMSG);
    n = mc_record_encode(buf, 0, 0, NULL, 0);
    buf[0] = 'M';
    assert_int_equal(mc_record_decode(buf, n, &it), 0);
    assert_int_equal(it.len, 0);
}

static void test_mc_exptime_rules(void **state)
{
    (void)state;
    int64_t now = 1700000000;
    assert_true(mc_exptime_abs(0, now) == 0);
    assert_true(mc_exptime_abs(10, now) == now + 10);
    assert_true(mc_exptime_abs(MC_REL_EXPTIME_MAX, now) == now + MC_REL_EXPTIME_MAX);
    assert_true(mc_exptime_abs(MC_REL_EXPTIME_MAX + 1, now) == MC_REL_EXPTIME_MAX + 1);
    assert_true(mc_exptime_abs(-1, now) == -1);
    assert_false(mc_expired(0, now));
    assert_true(mc_expired(-1, now));
    assert_true(mc_expired(now, now));
    assert_false(mc_expired(now + 1, now));
    /* an absolute time in the past is expired at once */
    assert_true(mc_expired(mc_exptime_abs(MC_REL_EXPTIME_MAX + 1, now), now));
}

static void test_mc_arith(void **state)
{
    (void)state;
    uint64_t v;
    assert_int_equal(mc_arith((const uint8_t *)"10", 2, 5, false, &v), 0);
    assert_true(v == 15);
    assert_int_equal(mc_arith((const uint8_t *)"10", 2, 50, true, &v), 0);
    assert_true(v == 0);
    assert_int_equal(mc_arith((const uint8_t *)"18446744073709551615", 20, 2, false, &v), 0);
    assert_true(v == 1); /* wraps */
    assert_int_equal(mc_arith((const uint8_t *)"9  ", 3, 1, false, &v), 0);
    assert_true(v == 10);
    assert_int_equal(mc_arith((const uint8_t *)"abc", 3, 1, false, &v), -EINVAL);
    assert_int_equal(mc_arith((const uint8_t *)"", 0, 1, false, &v), -EINVAL);
    assert_int_equal(mc_arith((const uint8_t *)"-1", 2, 1, false, &v), -EINVAL);
}

static void test_mc_out_value_and_lines(void **state)
{
    (void)state;
    mc_out_t o = {0};
    assert_int_equal(mc_out_value(&o, "k", 1, 3, (const uint8_t *)"ab", 2, false, 0), 0);
    assert_int_equal(mc_out_value(&o, "kk", 2, 0, (const uint8_t *)"", 0, true, 42), 0);
    assert_int_equal(mc_out_line(&o, "END"), 0);
    const char *want = "VALUE k 3 2\r\nab\r\nVALUE kk 0 0 42\r\n\r\nEND\r\n";
    assert_int_equal(o.len, strlen(want));
    assert_memory_equal(o.p, want, o.len);
    mc_out_consume(&o, 13);
    assert_memory_equal(o.p, "ab\r\n", 4);
    mc_out_free(&o);
    assert_null(o.p);
}

static void test_mc_key_valid(void **state)
{
    (void)state;
    assert_true(mc_key_valid("a", 1));
    assert_false(mc_key_valid("", 0));
    assert_false(mc_key_valid("a b", 3));
    assert_false(mc_key_valid("a\nb", 3));
    assert_false(mc_key_valid("a\0b", 3));
    assert_true(mc_key_valid("\xc3\xa9t\xc3\xa9", 5)); /* UTF-8 is fine */
    /* memcached 1.6 takes control bytes in keys, and memaslap sends them */
    assert_true(mc_key_valid("a\x7f", 2));
    assert_true(mc_key_valid("a\tb\rc\x01\x1f", 7));
    assert_true(mc_key_valid("\x10\x11\xff", 3));
    char k[MC_KEY_MAX + 1];
    memset(k, 0x10, sizeof k);
    assert_true(mc_key_valid(k, MC_KEY_MAX));
    assert_false(mc_key_valid(k, MC_KEY_MAX + 1));
}

/* A get of keys with control bytes: they are parsed whole, spaces split them. */
static void test_mc_parse_control_byte_keys(void **state)
{
    (void)state;
    static const char line[] = "get a\x01"
                               "b \x10\x7f\xff\tc\rd\r\n";
    size_t used = 0, swallow = 0;
    const char *err = NULL;
    assert_int_equal(parse(line, &used, &swallow, &err), MC_PARSE_OK);
    assert_int_equal(used, sizeof line - 1);
    assert_int_equal(req.nkeys, 2);
    assert_int_equal(req.keys[0].len, 3);
    assert_memory_equal(req.keys[0].p,
                        "a\x01"
                        "b",
                        3);
    assert_int_equal(req.keys[1].len, 7);
    assert_memory_equal(req.keys[1].p, "\x10\x7f\xff\tc\rd", 7);
    /* but not NUL (memcached cuts the line there) */
    static const uint8_t nul[] = "get a\0b\r\n";
    assert_int_equal(mc_parse(nul, sizeof nul - 1, &req, &used, &swallow, &err), MC_PARSE_ERROR);
    assert_string_equal(err, "CLIENT_ERROR bad command line format");
    assert_int_equal(used, sizeof nul - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mc_parse_get_many_keys),
        cmocka_unit_test(test_mc_parse_storage),
        cmocka_unit_test(test_mc_parse_storage_errors),
        cmocka_unit_test(test_mc_parse_partial_input),
        cmocka_unit_test(test_mc_parse_pipelined),
        cmocka_unit_test(test_mc_parse_other_commands),
        cmocka_unit_test(test_mc_parse_meta),
        cmocka_unit_test(test_mc_parse_control_byte_keys),
        cmocka_unit_test(test_mc_parse_line_too_long),
        cmocka_unit_test(test_mc_record_roundtrip),
        cmocka_unit_test(test_mc_exptime_rules),
        cmocka_unit_test(test_mc_arith),
        cmocka_unit_test(test_mc_out_value_and_lines),
        cmocka_unit_test(test_mc_key_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
